//! The store's change [`Feed`]: a dedicated RESP3 connection with
//! `CLIENT TRACKING ON BCAST PREFIX <stamp key>`, so that every write of the stamp key, by this
//! crate or by Python durabledict's `INCR`, makes the server push an `invalidate` notice.
//!
//! Why client tracking and not keyspace notifications: tracking needs no server configuration
//! (`notify-keyspace-events` is off by default) and one connection suffices under RESP3 (the
//! RESP2 form, `REDIRECT` to a `SUBSCRIBE`d connection, needs two, and a broken tracking
//! connection goes unreported to the subscribed one).
//!
//! One thread and one connection per store handle (clones share them, and every dict on the
//! handle shares its feed), started by the first [`Store::feed`] call, stopped when the last
//! handle is dropped (within one [`PROBE_AFTER`]). The store says
//! [`feed_shares_reads`](durabledict_core::Store::feed_shares_reads): the dicts on a handle share the stamp check and the load a notice calls for, and their subscribers one
//! keeper thread, so a fleet of dicts belongs on clones of one handle (200 dicts hearing one
//! write: p99 1.6 ms there, 20.5 ms on 200 handles, where all 200 connections have the notice
//! within 0.01 ms but each dict sends its own requests from its own thread:
//! docs/PERFORMANCE.md, "Redis feed"). It marks the feed [`lost`](Feed::lost)
//! - at once when its connection breaks (a server restart, `CLIENT KILL`: the socket closes);
//! - when the server stays silent: after [`PROBE_AFTER`] without a message it sends a probe,
//!   and a probe unanswered for [`DEAD_AFTER`] counts as a broken connection, so a half-open
//!   connection (a host gone, a partition) is noticed within `PROBE_AFTER + DEAD_AFTER +
//!   PROBE_AFTER` (1.6 s) of its last message;
//! - at once when the store's epoch changes (a request of the store failed, or a new
//!   connection met another `run_id`: see [`continuity`](crate::continuity)); the thread then
//!   subscribes again on a new connection, which reaches whichever server answers now.
//!
//! It reconnects with back-off (from 50 ms, doubling, up to 2 s) and calls
//! [`restored`](Feed::restored) only once `CLIENT TRACKING` answered `OK` on the new connection.
//!
//! On a cluster the connection goes to the master owning the stamp key's slot (asked of the
//! seed nodes with `CLUSTER SLOTS`), and the probe is `EXISTS <stamp key>`: a node that no
//! longer owns the slot (a migration, a failover that demoted it) answers `MOVED`, which counts
//! as lost; the thread then asks the seeds again.
//!
//! Writes made through this crate in this process also notify every feed of the same server
//! URL and stamp key before they return ([`Peers`]), so a dict in this process never serves a
//! value older than a write another handle in this process completed, even before the
//! server's notice arrives.
//!
//! [`Store::feed`]: durabledict_core::Store::feed

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use durabledict_core::Feed;
use redis::{Connection, PushKind, RedisResult, Value};

use crate::continuity::{Continuity, Identity};

/// Silence after which the thread sends a probe.
pub(crate) const PROBE_AFTER: Duration = Duration::from_millis(400);
/// How long a probe may go unanswered before the connection counts as broken.
pub(crate) const DEAD_AFTER: Duration = Duration::from_millis(800);
/// The first pause before reconnecting; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Opens the feed's connection: RESP3, timeouts set, to the server holding the stamp key.
pub(crate) trait FeedConnect: Send + Sync + fmt::Debug {
    /// A RESP3 connection to the server that holds `stamp`, and who answered.
    fn connect(&self, stamp: &str) -> RedisResult<(Connection, Identity)>;

    /// The probe sent after a silence: one that a server no longer holding `stamp` refuses.
    fn probe(&self, stamp: &str) -> redis::Cmd;
}

/// The Redis client name of the feed connection for `stamp`: `durabledict-feed:` and the
/// stamp key, with bytes a client name cannot hold (spaces, controls, non-ASCII) as `_`.
pub(crate) fn client_name(stamp: &str) -> String {
    let key: String = stamp
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    format!("durabledict-feed:{key}")
}

/// Every [`Peers`] of this process, by server URL (or cluster seeds) and stamp key.
type PeersByKey = HashMap<(String, String), Weak<Peers>>;

/// The feeds of every store handle in this process on one server URL and stamp key.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    feeds: Mutex<Vec<Weak<Feed>>>,
}

impl Peers {
    /// The peers of `target` (a server URL or cluster seeds) and `stamp`, shared by every
    /// handle built with the same.
    pub(crate) fn of(target: &str, stamp: &str) -> Arc<Peers> {
        static ALL: OnceLock<Mutex<PeersByKey>> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, peers| peers.strong_count() > 0);
        let key = (target.to_owned(), stamp.to_owned());
        if let Some(peers) = all.get(&key).and_then(Weak::upgrade) {
            return peers;
        }
        let peers = Arc::new(Peers::default());
        all.insert(key, Arc::downgrade(&peers));
        peers
    }

    fn join(&self, feed: &Arc<Feed>) {
        let mut feeds = self.lock();
        feeds.retain(|feed| feed.strong_count() > 0);
        feeds.push(Arc::downgrade(feed));
    }

    /// A write through this process returned: every feed's dicts check the stamp at their
    /// next read.
    pub(crate) fn wrote(&self) {
        let feeds: Vec<Arc<Feed>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        for feed in feeds {
            feed.notify();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Feed>>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A store's feed, started on first use; dropping it (with the last store handle) stops the
/// thread.
pub(crate) struct Tracking {
    connect: Arc<dyn FeedConnect>,
    stamp: String,
    continuity: Arc<Continuity>,
    peers: Arc<Peers>,
    started: OnceLock<Option<Started>>,
}

struct Started {
    feed: Arc<Feed>,
    stop: Arc<Stop>,
}

impl fmt::Debug for Tracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracking")
            .field(
                "feed",
                &self.started.get().and_then(|s| s.as_ref()).map(|s| &s.feed),
            )
            .finish_non_exhaustive()
    }
}

impl Tracking {
    pub(crate) fn new(
        connect: Arc<dyn FeedConnect>,
        stamp: String,
        continuity: Arc<Continuity>,
        peers: Arc<Peers>,
    ) -> Self {
        Tracking {
            connect,
            stamp,
            continuity,
            peers,
            started: OnceLock::new(),
        }
    }

    /// The feed, its thread started on the first call; `None` when no thread could be made.
    pub(crate) fn feed(&self) -> Option<Arc<Feed>> {
        self.started
            .get_or_init(|| self.start())
            .as_ref()
            .map(|started| Arc::clone(&started.feed))
    }

    /// A write through this handle returned.
    pub(crate) fn wrote(&self) {
        self.peers.wrote();
    }

    fn start(&self) -> Option<Started> {
        let feed = Arc::new(Feed::new());
        let stop = Arc::new(Stop::default());
        let worker = Worker {
            connect: Arc::clone(&self.connect),
            stamp: self.stamp.clone(),
            name: client_name(&self.stamp),
            continuity: Arc::clone(&self.continuity),
            feed: Arc::clone(&feed),
            stop: Arc::clone(&stop),
        };
        // Watched and joined before the thread can report the feed up: an epoch change or a
        // write through another handle of this process in between would otherwise not reach it.
        self.continuity.watch(Arc::clone(&feed));
        self.peers.join(&feed);
        std::thread::Builder::new()
            .name("durabledict-redis-feed".into())
            .spawn(move || worker.run())
            .ok()?;
        Some(Started { feed, stop })
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        if let Some(Some(started)) = self.started.get() {
            started.stop.set();
        }
    }
}

/// Tells the thread to end; wakes it from a back-off pause at once (a blocked read notices
/// within [`PROBE_AFTER`]).
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn set(&self) {
        self.stopped.store(true, Ordering::Release);
        drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleeps for `pause` or until stopped; `true` when stopped.
    fn sleep(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.is_set() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = self
                .wake
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// The feed thread.
struct Worker {
    connect: Arc<dyn FeedConnect>,
    stamp: String,
    name: String,
    continuity: Arc<Continuity>,
    feed: Arc<Feed>,
    stop: Arc<Stop>,
}

/// Why a subscription ended.
enum Ended {
    Stopped,
    Lost,
}

impl Worker {
    fn run(self) {
        let mut backoff = BACKOFF_MIN;
        while !self.stop.is_set() {
            match self.subscribe() {
                Ok((conn, epoch)) => {
                    backoff = BACKOFF_MIN;
                    self.feed.restored();
                    tracing::info!(target: crate::continuity::TARGET, stamp = %self.stamp, "change feed up");
                    let ended = self.listen(conn, epoch);
                    self.feed.lost();
                    if let Ended::Stopped = ended {
                        return;
                    }
                    tracing::warn!(target: crate::continuity::TARGET, stamp = %self.stamp, "change feed lost: dicts check the stamp on every read until it is back");
                }
                Err(_) => {
                    // Down (refused, `CLIENT TRACKING` refused by an ACL or a Redis before 6):
                    // dicts check the stamp meanwhile (the feed is down since it was made or
                    // lost); try again later, never in a loop.
                    if self.stop.sleep(backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// A new connection with tracking confirmed, and the epoch it was confirmed at.
    fn subscribe(&self) -> RedisResult<(Connection, u64)> {
        let (mut conn, identity) = self.connect.connect(&self.stamp)?;
        self.continuity.connected(identity);
        let epoch = self.continuity.epoch();
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.name)
            .exec(&mut conn)?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.stamp)
            .exec(&mut conn)?;
        conn.set_read_timeout(Some(PROBE_AFTER))?;
        // A probe that cannot even be sent within the bound means the same as no answer.
        conn.set_write_timeout(Some(DEAD_AFTER))?;
        Ok((conn, epoch))
    }

    /// Reads notices until the connection breaks, the epoch changes or the store is dropped.
    fn listen(&self, mut conn: Connection, epoch: u64) -> Ended {
        let probe = self.connect.probe(&self.stamp).get_packed_command();
        let mut probed: Option<Instant> = None;
        loop {
            if self.stop.is_set() {
                return Ended::Stopped;
            }
            if self.continuity.epoch() != epoch {
                return Ended::Lost;
            }
            match conn.recv_response() {
                Ok(Value::Push {
                    kind: PushKind::Invalidate,
                    ..
                }) => {
                    self.feed.notify();
                    probed = None;
                }
                // A cluster node that lost the slot (`MOVED`), or any refusal: resubscribe.
                Ok(Value::ServerError(_)) => return Ended::Lost,
                // A probe's answer, or another push: the server is there.
                Ok(_) => probed = None,
                Err(e) if e.is_timeout() => {
                    let now = Instant::now();
                    if probed.is_some_and(|sent| now.duration_since(sent) >= DEAD_AFTER) {
                        return Ended::Lost;
                    }
                    // Sent twice: the client counts a read that timed out as a reply still
                    // owed and drops the next non-push reply (redis 1.8, `messages_to_skip`),
                    // so one probe's answer would never be seen. Any answer counts as life,
                    // so a client that drops none is served as well.
                    if conn.send_packed_command(&probe).is_err()
                        || conn.send_packed_command(&probe).is_err()
                    {
                        return Ended::Lost;
                    }
                    probed.get_or_insert(now);
                }
                Err(_) => return Ended::Lost,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_hold_no_spaces() {
        assert_eq!(
            client_name("my keys\nlast_updated"),
            "durabledict-feed:my_keys_last_updated"
        );
        assert_eq!(client_name("ü"), "durabledict-feed:_");
    }

    #[test]
    fn peers_are_shared_by_target_and_stamp() {
        let a = Peers::of("redis://h/", "k");
        assert!(Arc::ptr_eq(&a, &Peers::of("redis://h/", "k")));
        assert!(!Arc::ptr_eq(&a, &Peers::of("redis://h/1", "k")));
        let feed = Arc::new(Feed::new());
        a.join(&feed);
        let before = feed.state();
        Peers::of("redis://h/", "k").wrote();
        assert_ne!(feed.state(), before);
    }
}
