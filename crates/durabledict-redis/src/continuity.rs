//! The store's [epoch](durabledict_core::Store::epoch): a counter bumped whenever the server
//! behind the store may have lost what it held, so that a dict does not take an unchanged stamp
//! for unchanged contents.
//!
//! Why the stamp is not enough: a server restarted without persistence comes back empty, and
//! writers that count from nothing (Python durabledict's `INCR`: 1, 2, …) can bring the stamp
//! back to exactly the number a dict last synced at, with other values. Nothing in the keyspace
//! tells the two apart; what does is the connection: the restart broke every connection to the
//! old server, and the new server has another `run_id`.
//!
//! The epoch is bumped
//! - when a request fails without a reply in step: the connection broke, was refused, timed
//!   out, or the server said it cannot answer now (`LOADING`, `MASTERDOWN`, …): see
//!   [`interrupts`];
//! - when a new connection reaches a server whose `run_id` (from `INFO server`, asked once per
//!   new connection) differs from the one seen last. That covers a restart the store never saw
//!   fail, because it held no connection at the time (an empty pool, `max_idle(0)`).
//!
//! A server that refuses `INFO` (an ACL user without `+info`) has no identity to compare: then
//! every new connection after the store's first counts as a possible restart. That costs one
//! reload per new connection, which the pool keeps rare unless `max_idle` is 0.
//!
//! Bumps happen before the reply of the request that met the new server is handed over, so the
//! dict's read of the epoch after its stamp check sees them.
//!
//! Reported under the `tracing` target `durabledict::redis` (docs/observability.md): the first
//! failure of an outage at `warn` (the following ones at `debug`), the first new connection
//! after it at `info`, a server that answers with another `run_id` at `warn`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use redis::{ConnectionLike, RedisError, RedisResult, Value};

use durabledict_core::{Feed, StoreErrorKind};

use crate::error::kind_of;

/// The `tracing` target of the Redis store's events.
pub(crate) const TARGET: &str = "durabledict::redis";

/// Who answered on a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The server's `run_id`, new at every start.
    RunId(String),
    /// The server refused `INFO` (an ACL): unknown.
    Hidden,
    /// Not asked (a cluster client, whose connections to the nodes are its own).
    Untracked,
}

/// The epoch and the last server identity seen, shared by every pool of one store.
#[derive(Debug, Default)]
pub(crate) struct Continuity {
    epoch: AtomicU64,
    /// Who answered the last new connection; `None` before the first.
    last: Mutex<Option<Identity>>,
    /// The store's change feed, once started: lost whenever the epoch changes, since its
    /// connection may be to a server that is no longer the one answering (see `feed`).
    feed: OnceLock<Arc<Feed>>,
    /// Whether a failure that may hide a restart was seen and no new connection was made
    /// since: the outage is reported once, when it begins, and once when it ends.
    down: AtomicBool,
}

impl Continuity {
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The server may have lost what it held.
    pub(crate) fn lost(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(feed) = self.feed.get() {
            feed.lost();
        }
    }

    /// Marks `feed` lost at every later epoch change.
    pub(crate) fn watch(&self, feed: Arc<Feed>) {
        let _ = self.feed.set(feed);
    }

    /// A request failed with `error`: bumps the epoch when the failure may hide a restart.
    pub(crate) fn failed(&self, error: &RedisError) {
        if interrupts(error) {
            if self.down.swap(true, Ordering::AcqRel) {
                tracing::debug!(target: TARGET, %error, "the server is still unreachable");
            } else {
                tracing::warn!(
                    target: TARGET,
                    %error,
                    "lost the connection to the server: reconnecting on the next request"
                );
            }
            self.lost();
        }
    }

    /// A request was answered: ends an outage that no new connection ended (a server that said
    /// it could not answer now, `LOADING`, answering again on the same connection). One relaxed
    /// load while nothing failed.
    #[inline]
    pub(crate) fn answered(&self) {
        if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(target: TARGET, "the server answers again");
        }
    }

    /// A new connection reached a server that identified itself as `identity`.
    pub(crate) fn connected(&self, identity: Identity) {
        if identity == Identity::Untracked {
            return;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = match (&*last, &identity) {
            (None, _) => false,
            // Same server, as far as it says.
            (Some(Identity::RunId(before)), Identity::RunId(now)) => before != now,
            // Nothing to compare with: any new connection may be to a restarted server.
            _ => true,
        };
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(target: TARGET, server = ?identity, "reconnected");
        } else {
            tracing::debug!(target: TARGET, server = ?identity, "new connection");
        }
        if changed {
            match (&*last, &identity) {
                (Some(Identity::RunId(before)), Identity::RunId(now)) => tracing::warn!(
                    target: TARGET,
                    before = %before,
                    now = %now,
                    "the server restarted (another run_id): dicts reload"
                ),
                _ => tracing::debug!(
                    target: TARGET,
                    "a new connection to a server that does not say who it is: dicts reload"
                ),
            }
            self.lost();
        }
        *last = Some(identity);
    }
}

/// Whether a failed request may mean the server went away (and may come back empty): anything
/// that is not an answer of a running server in step with us.
pub(crate) fn interrupts(error: &RedisError) -> bool {
    kind_of(error) == StoreErrorKind::Unavailable
}

/// Asks a new connection who answers: `INFO server`'s `run_id`, [`Identity::Hidden`] when the
/// server refuses (an ACL). A broken connection is an error.
pub(crate) fn identify(conn: &mut dyn ConnectionLike) -> RedisResult<Identity> {
    match redis::cmd("INFO").arg("server").query::<Value>(conn) {
        Ok(Value::BulkString(text)) => Ok(run_id(&text).map_or(Identity::Hidden, Identity::RunId)),
        Ok(Value::VerbatimString { text, .. }) => {
            Ok(run_id(text.as_bytes()).map_or(Identity::Hidden, Identity::RunId))
        }
        Ok(_) => Ok(Identity::Hidden),
        Err(e) if matches!(e.kind(), redis::ErrorKind::Server(_)) => Ok(Identity::Hidden),
        Err(e) => Err(e),
    }
}

fn run_id(info: &[u8]) -> Option<String> {
    String::from_utf8_lossy(info)
        .lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str) -> Identity {
        Identity::RunId(id.to_owned())
    }

    #[test]
    fn a_new_run_id_bumps_the_same_does_not() {
        let c = Continuity::default();
        c.connected(run("a"));
        assert_eq!(
            c.epoch(),
            0,
            "the first connection has nothing to compare with"
        );
        c.connected(run("a"));
        assert_eq!(c.epoch(), 0);
        c.connected(run("b"));
        assert_eq!(c.epoch(), 1);
        c.connected(Identity::Untracked);
        assert_eq!(c.epoch(), 1);
    }

    #[test]
    fn a_hidden_identity_counts_every_new_connection_after_the_first() {
        let c = Continuity::default();
        c.connected(Identity::Hidden);
        assert_eq!(c.epoch(), 0);
        c.connected(Identity::Hidden);
        assert_eq!(c.epoch(), 1);
        c.connected(run("a"));
        assert_eq!(c.epoch(), 2);
    }

    #[test]
    fn an_epoch_change_marks_the_feed_lost() {
        let c = Continuity::default();
        let feed = Arc::new(Feed::new());
        c.watch(Arc::clone(&feed));
        feed.restored();
        c.connected(run("a"));
        assert!(feed.state().is_up(), "the first server changes nothing");
        c.connected(run("b"));
        assert!(
            !feed.state().is_up(),
            "another run_id: the feed may miss notices"
        );
        feed.restored();
        c.failed(&RedisError::from((redis::ErrorKind::Io, "reset")));
        assert!(
            !feed.state().is_up(),
            "a broken request: the server may have restarted"
        );
    }

    #[test]
    fn run_id_from_info() {
        let info = b"# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info).as_deref(), Some("abc123"));
        assert_eq!(run_id(b"# Server\r\n"), None);
    }
}
