//! A small pool of connections that re-opens them after the server went away.
//!
//! Why a pool and not one connection behind a mutex: every `Always` read sends one `GET`, and
//! with one connection all threads of a process would queue behind each other's round trips.
//! The pool lends each caller its own connection and holds its lock only to pop and push, so
//! threads never wait for each other's I/O; idle connections beyond `max_idle` are closed.
//!
//! Why not r2d2: its checkout either pings (a second round trip on the hot path) or does not
//! notice a dead connection at all; here the policy is per operation (see [`Replay`]).
//!
//! # What is sent twice
//!
//! A pooled connection can be dead without anyone knowing: the server restarted, or closed it.
//! The first command on it then fails with the connection lost, and whether it may be sent
//! again on a new connection depends on what a second run would do. A command that failed
//! that way may have run (the server can break the connection after running it, before the
//! reply arrives), so only a command whose second run leaves what one run leaves is re-sent:
//!
//! | operation | [`Replay`] | a second run |
//! |---|---|---|
//! | reads, `init` | [`Resend`](Replay::Resend) | changes nothing |
//! | `persist`, `persist_many`, `setdefault` | [`ResendWrite`](Replay::ResendWrite) | the same values, one more stamp bump |
//! | `depersist`, `pop`, `clear` | [`CheckIdle`](Replay::CheckIdle) | would answer "absent": never sent twice |
//!
//! "The same values" holds for the keys written. If the first send did run and another
//! client changed one of those keys before the second, the second overwrites that change: a
//! value-setting write is applied at least once (redis-py re-sends every command once after a
//! connection error). A `setdefault` run twice finds the value its first run inserted, which it
//! cannot tell from another client's insert of the same bytes, so it bumps the stamp again:
//! every dict reloads, its own included.
//!
//! A timeout is never a reason to send again (the server may be alive and slow, still to run
//! the first one). Neither is a connection that was just opened (the server is down). A cluster
//! answering `MOVED` did not run the command (the slot lives on another node): every kind is
//! sent once more on a new connection, which reads the new slot map. On a cluster, writes use
//! a client built never to send a command again by itself (see the builder).
//!
//! A connection found dead empties the pool of idle ones too: they went to the same server,
//! so after a restart only the first operation meets a dead connection.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::StoreError;
use redis::{ConnectionLike, RedisError, RedisResult};

use crate::continuity::{Continuity, Identity};
use crate::error::{request_error, store_error};

/// A connection of either kind (one server, or a cluster client holding one per node).
pub(crate) type Conn = Box<dyn ConnectionLike + Send>;

/// Opens a new connection, with the configured timeouts set on it, and says who answered
/// (see [`continuity`](crate::continuity)).
pub(crate) trait Connect: Send + Sync + fmt::Debug {
    fn connect(&self) -> RedisResult<(Conn, Identity)>;

    /// The one server's connection settings, connect timeout and I/O timeout, for the async
    /// stamp reader (`aio.rs`); `None` (the default) where there is no one server (a cluster).
    #[cfg(feature = "aio")]
    fn server(&self) -> Option<(&redis::ConnectionInfo, Duration, Duration)> {
        None
    }

    /// What a failed [`connect`](Self::connect) means, in words where the client's are vague.
    fn explain(&self, error: RedisError) -> StoreError {
        store_error(error)
    }
}

/// What may be done when a pooled connection turns out to be dead (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The command changes nothing, or changes nothing a second time (reads, `init`): when a
    /// connection taken from the pool fails with the connection lost, send it again once on a
    /// new connection. This is what makes the first read after a server restart succeed.
    Resend,
    /// The command sets values (`persist`, `persist_many`, `setdefault`): it may have run
    /// before the connection broke, and running it again leaves the same values and bumps the
    /// stamp once more, which only makes dicts reload. Sent again like [`Resend`](Self::Resend),
    /// so the first write after a server restart succeeds too.
    ResendWrite,
    /// The command removes (`depersist`, `pop`, `clear`): it is never sent twice, since a
    /// second run would answer "absent" for what the first removed. Instead a connection that
    /// sat idle for at least `check_idle_after` (by default zero: every pooled connection) is
    /// checked with a `PING` first, so a removal does not fail on a connection the server
    /// closed meanwhile.
    CheckIdle,
}

impl Replay {
    fn resends(self) -> bool {
        self != Replay::CheckIdle
    }

    fn writes(self) -> bool {
        self != Replay::Resend
    }
}

pub(crate) struct Pool {
    connector: Box<dyn Connect>,
    /// Shared with the store's other pool (a cluster's writes).
    continuity: Arc<Continuity>,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    check_idle_after: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("connector", &self.connector)
            .field("idle", &self.idle_guard().len())
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl Pool {
    pub(crate) fn new(
        connector: Box<dyn Connect>,
        continuity: Arc<Continuity>,
        max_idle: usize,
        check_idle_after: Duration,
    ) -> Self {
        Pool {
            connector,
            continuity,
            idle: Mutex::new(Vec::new()),
            max_idle,
            check_idle_after,
        }
    }

    /// Runs `request` on a pooled or new connection, sending it a second time only as
    /// [`Replay`] allows. A connection that failed with anything but a server's error reply is
    /// dropped (its stream may hold half a reply), so the next operation opens a new one: that
    /// is the whole reconnection logic. Every failure that may hide a restart bumps the
    /// store's epoch, also one that a second send on a new connection then hides.
    pub(crate) fn run<T>(
        &self,
        replay: Replay,
        mut request: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (mut conn, reused) = self.checkout(replay)?;
        let mut result = request(&mut *conn);
        if let Err(e) = &result {
            self.continuity.failed(e);
            let lost = reused && connection_lost(e);
            if lost {
                self.forget_idle();
            }
            if moved(e) || (lost && replay.resends()) {
                drop(conn);
                conn = self.open()?;
                result = request(&mut *conn);
                if let Err(e) = &result {
                    self.continuity.failed(e);
                }
            }
        }
        self.settle(replay, conn, result)
    }

    /// A connection from the pool (`true`), or a new one.
    fn checkout(&self, replay: Replay) -> Result<(Conn, bool), StoreError> {
        let Some(Idle { mut conn, since }) = self.take() else {
            return Ok((self.open()?, false));
        };
        if replay == Replay::CheckIdle && since.elapsed() >= self.check_idle_after {
            match redis::cmd("PING").query::<String>(&mut *conn) {
                Ok(_) => {}
                Err(e) if e.is_timeout() => {
                    // A server too busy to answer in time would keep a new connection waiting
                    // too (a cluster client's connect waits without a timeout): nothing was
                    // sent.
                    self.continuity.failed(&e);
                    return Err(request_error(e, false));
                }
                Err(e) => {
                    self.continuity.failed(&e);
                    self.forget_idle();
                    return Ok((self.open()?, false));
                }
            }
        }
        Ok((conn, true))
    }

    /// Returns the connection to the pool unless the error says its stream is out of step.
    fn settle<T>(
        &self,
        replay: Replay,
        conn: Conn,
        result: RedisResult<T>,
    ) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.continuity.answered();
                self.put(conn);
                Ok(value)
            }
            Err(e) => {
                if keeps_connection(&e) && conn.is_open() {
                    self.put(conn);
                }
                Err(request_error(e, replay.writes()))
            }
        }
    }

    /// A new connection; a failure to connect, or a server other than the last one seen,
    /// bumps the epoch.
    fn open(&self) -> Result<Conn, StoreError> {
        match self.connector.connect() {
            Ok((conn, identity)) => {
                self.continuity.connected(identity);
                Ok(conn)
            }
            Err(e) => {
                self.continuity.failed(&e);
                Err(self.connector.explain(e))
            }
        }
    }

    /// What opens this pool's connections.
    #[cfg(feature = "aio")]
    pub(crate) fn connector(&self) -> &dyn Connect {
        &*self.connector
    }

    /// How many idle connections the pool keeps.
    #[cfg(feature = "aio")]
    pub(crate) fn max_idle(&self) -> usize {
        self.max_idle
    }

    fn take(&self) -> Option<Idle> {
        self.idle_guard().pop()
    }

    /// Closes every idle connection, outside the lock: closing a TLS connection writes its
    /// close notification, which other threads must not wait for.
    pub(crate) fn forget_idle(&self) {
        // The guard is a temporary of this `let`, dropped at its end; inside one expression
        // statement, `drop(take(&mut *guard))`, it would live until after the drop.
        let idle = std::mem::take(&mut *self.idle_guard());
        drop(idle);
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle_guard();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    fn idle_guard(&self) -> MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A server's error reply leaves the connection in step: keep it. Except a cluster's
/// redirection: that connection's slot map is out of date, a new one reads the current map.
fn keeps_connection(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    ) && e.redirect_node().is_none()
}

/// The cluster node does not serve the slot any more: it refused the command without running
/// it.
fn moved(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Moved)
}

/// The connection broke (closed by the server, reset); not a timeout, which may mean the
/// server is alive but slow, where sending again would only double the wait.
fn connection_lost(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{OnceLock, Weak};

    use redis::Value;

    use super::*;

    /// A connection that, when closed, records whether its pool's lock was held.
    struct Probe {
        pool: Arc<OnceLock<Weak<Pool>>>,
        closed_under_lock: Arc<AtomicBool>,
    }

    impl Drop for Probe {
        fn drop(&mut self) {
            if let Some(pool) = self.pool.get().and_then(Weak::upgrade) {
                let locked = pool.idle.try_lock().is_err();
                self.closed_under_lock.fetch_or(locked, Ordering::SeqCst);
            }
        }
    }

    impl ConnectionLike for Probe {
        fn req_packed_command(&mut self, _: &[u8]) -> RedisResult<Value> {
            Ok(Value::Nil)
        }
        fn req_packed_commands(&mut self, _: &[u8], _: usize, _: usize) -> RedisResult<Vec<Value>> {
            Ok(Vec::new())
        }
        fn get_db(&self) -> i64 {
            0
        }
        fn check_connection(&mut self) -> bool {
            true
        }
        fn is_open(&self) -> bool {
            true
        }
    }

    #[derive(Debug)]
    struct Never;

    impl Connect for Never {
        fn connect(&self) -> RedisResult<(Conn, Identity)> {
            Err(RedisError::from((
                redis::ErrorKind::Io,
                "no server in this test",
            )))
        }
    }

    #[test]
    fn idle_connections_are_closed_outside_the_lock() {
        let pool = Arc::new(Pool::new(
            Box::new(Never),
            Arc::default(),
            4,
            Duration::ZERO,
        ));
        let slot = Arc::new(OnceLock::new());
        slot.set(Arc::downgrade(&pool)).unwrap();
        let closed_under_lock = Arc::new(AtomicBool::new(false));
        for _ in 0..2 {
            pool.put(Box::new(Probe {
                pool: Arc::clone(&slot),
                closed_under_lock: Arc::clone(&closed_under_lock),
            }));
        }
        pool.forget_idle();
        assert!(pool.take().is_none());
        assert!(
            !closed_under_lock.load(Ordering::SeqCst),
            "an idle connection was closed while the pool was locked"
        );
    }
}
