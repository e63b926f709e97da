//! A small pool of connections that re-opens them after the server went away.
//!
//! Why a pool and not one connection behind a mutex: every `Always` read sends one `GET`, and
//! with one connection all threads of a process would queue behind each other's round trips.
//! The pool lends each caller its own connection and holds its lock only to pop and push, so
//! threads never wait for each other's I/O; idle connections beyond `max_idle` are closed.
//!
//! Why not r2d2: its checkout either pings (a second round trip on the hot path) or does not
//! notice a dead connection at all; here the policy is per operation (see [`Replay`]).

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::StoreError;
use redis::{ConnectionLike, RedisError, RedisResult};

use crate::error::store_error;

/// A connection of either kind (one server, or a cluster client holding one per node).
pub(crate) type Conn = Box<dyn ConnectionLike + Send>;

/// Opens a new connection, with the configured timeouts set on it.
pub(crate) trait Connect: Send + Sync + fmt::Debug {
    fn connect(&self) -> RedisResult<Conn>;
}

/// What may be done when a pooled connection turns out to be dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// The command changes nothing, or changes nothing a second time (reads, `init`): when a
    /// connection taken from the pool fails with an I/O error, send it again once on a new
    /// connection. This is what makes the first read after a server restart succeed.
    Resend,
    /// The command writes: it is never sent twice (the server may have run it before the
    /// connection broke, and a second `pop` would answer "absent"). Instead a connection that
    /// sat idle for longer than `check_idle_after` is checked with a `PING` first, so a write
    /// after a quiet period does not fail on a connection the server closed meanwhile.
    CheckIdle,
}

pub(crate) struct Pool {
    connector: Box<dyn Connect>,
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
        max_idle: usize,
        check_idle_after: Duration,
    ) -> Self {
        Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            max_idle,
            check_idle_after,
        }
    }

    /// Runs `request` on a pooled or new connection. A connection that failed with anything
    /// but a server's error reply is dropped (its stream may hold half a reply), so the next
    /// operation opens a new one: that is the whole reconnection logic.
    pub(crate) fn run<T>(
        &self,
        replay: Replay,
        mut request: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (mut conn, reused) = match self.take() {
            Some(idle)
                if replay == Replay::CheckIdle && idle.since.elapsed() >= self.check_idle_after =>
            {
                let mut conn = idle.conn;
                if ping(&mut *conn) {
                    (conn, true)
                } else {
                    (self.open()?, false)
                }
            }
            Some(idle) => (idle.conn, true),
            None => (self.open()?, false),
        };
        match request(&mut *conn) {
            Err(e) if reused && replay == Replay::Resend && connection_lost(&e) => {
                drop(conn);
                let mut conn = self.open()?;
                let result = request(&mut *conn);
                self.settle(conn, result)
            }
            result => self.settle(conn, result),
        }
    }

    /// Returns the connection to the pool unless the error says its stream is out of step.
    fn settle<T>(&self, conn: Conn, result: RedisResult<T>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                self.put(conn);
                Ok(value)
            }
            Err(e) => {
                if keeps_connection(&e) && conn.is_open() {
                    self.put(conn);
                }
                Err(store_error(e))
            }
        }
    }

    fn open(&self) -> Result<Conn, StoreError> {
        self.connector.connect().map_err(store_error)
    }

    fn take(&self) -> Option<Idle> {
        self.idle_guard().pop()
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

fn ping(conn: &mut dyn ConnectionLike) -> bool {
    redis::cmd("PING").query::<String>(conn).is_ok()
}

/// A server's error reply leaves the connection in step: keep it.
fn keeps_connection(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
    )
}

/// The connection broke (closed by the server, reset); not a timeout, which may mean the
/// server is alive but slow, where sending again would only double the wait.
fn connection_lost(e: &RedisError) -> bool {
    (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout()
}
