//! [`AsyncStamp`] (feature `aio`): the store's stamp read over async connections of its own, so
//! that an async dict's read under `Always` checks the stamp on its task (one round trip)
//! instead of on a blocking-pool thread (two thread hand-offs around the round trip).
//!
//! Why not redis-rs's `aio::MultiplexedConnection`: it sends every command through a driver
//! task, one more hand-off per request. Measured on the development machine (paired with a
//! sync `GET`, `crates/durabledict-aio/benches/rtt.rs`, docs/async.md): a multiplexed `GET`
//! cost 1.25–1.4× the sync one on a current-thread runtime and 1.7–2.9× on a multi-thread one;
//! `spawn_blocking` 1.8–2.4×; a socket read by the task itself 0.95–1.06× (current-thread). So this is a plain
//! tokio socket per concurrent check, speaking just enough RESP2 for `GET` and its handshake.
//!
//! # Continuity
//!
//! These connections keep the store's [epoch](durabledict_core::Store::epoch) as its pools do
//! (see `continuity.rs`), on the same counter:
//! - a new connection asks `INFO server` (pipelined with `AUTH` and `SELECT`) before anything
//!   else and reports who answered, so a connection to a restarted server (another `run_id`)
//!   bumps the epoch before its first `GET` is even sent;
//! - a request that fails in a way that may hide a restart (broken, refused, timed out,
//!   `LOADING`) bumps it before the error is handed over.
//!
//! A dict answers from its cache only when the stamp is its own and the epoch is the one its
//! cache was loaded in, read before and after the check; so a restart that counts the stamp
//! back from empty is seen here exactly as on the sync path.
//!
//! # Connections
//!
//! One connection per check in flight, idle ones kept up to the store's
//! [`max_idle`](crate::RedisStoreBuilder::max_idle), each bound to the tokio runtime that
//! opened it (a socket is registered with its runtime's I/O driver). A check cancelled
//! mid-way drops its connection: nothing half-read goes back to the pool. So does a check
//! whose reply is not a stamp, or has bytes read past it, or is a push or attribute reply
//! (never asked for): such a connection may be out of step, its next reply another
//! request's. Timeouts are the store's: connecting (with the handshake) within
//! `connect_timeout`, each reply within `io_timeout`. TLS (`rediss://`) and clusters have no async stamp (`async_stamp()` is
//! `None`): their reads use the blocking pool.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use durabledict_aio::{StampFuture, StampSource};
use durabledict_core::{StampValue, StoreError};
use redis::{ConnectionAddr, ConnectionLike, RedisError, RedisResult, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::{Handle, Id};

use crate::continuity::{self, Continuity};
use crate::error::{request_error, store_error};
use crate::reply;
use crate::store::RedisStore;

/// A reply larger than this is refused: a stamp or an `INFO server` is a few KiB at most.
const MAX_REPLY: usize = 1 << 20;
/// How deep a reply may nest; ours do not nest at all.
const MAX_DEPTH: usize = 8;

impl RedisStore {
    /// This store's stamp over async connections of its own, for `durabledict-aio`
    /// (`Builder::stamp_source`): a read that checks the stamp (`Always`) then stays on its
    /// task. `None` for a cluster and for `rediss://` (their checks run on the blocking pool).
    ///
    /// It needs a tokio runtime with I/O and time enabled (`enable_all()`, as `#[tokio::main]`
    /// sets). It shares the store's epoch: a restart it meets makes the dict reload, as one the
    /// store meets does (see the module docs of `aio.rs`, "Continuity").
    ///
    /// ```no_run
    /// use durabledict_aio::AsyncDict;
    /// use durabledict_core::Raw;
    /// use durabledict_redis::RedisStore;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::open("redis://127.0.0.1:6379/", "settings")?;
    /// let dict = AsyncDict::<String>::builder(store.clone(), Raw)
    ///     .stamp_source(store.async_stamp())
    ///     .build()
    ///     .await?;
    /// let mode = dict.get("mode").await?; // one async GET of the stamp, on this task
    /// # Ok(()) }
    /// ```
    pub fn async_stamp(&self) -> Option<AsyncStamp> {
        let (info, connect_timeout, io_timeout) = self.inner.reads.connector().server()?;
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp(host.clone(), *port),
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            _ => return None,
        };
        let settings = info.redis_settings();
        let mut hello = redis::pipe();
        if let Some(password) = settings.password() {
            let auth = hello.cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
        }
        if settings.db() != 0 {
            hello.cmd("SELECT").arg(settings.db());
        }
        hello.cmd("INFO").arg("server");
        let keys = &self.inner.keys;
        Some(AsyncStamp {
            inner: Arc::new(Shared {
                addr,
                hello_replies: hello.len(),
                hello: hello.get_packed_pipeline(),
                get_stamp: keys.get_stamp.clone(),
                stamp_key: keys.stamp.clone(),
                connect_timeout,
                io_timeout,
                continuity: Arc::clone(&self.inner.continuity),
                idle: Mutex::new(Vec::new()),
                max_idle: self.inner.reads.max_idle(),
            }),
        })
    }
}

/// A [`RedisStore`]'s stamp read over async connections; made by
/// [`RedisStore::async_stamp`]. Cheap to clone (clones share the connections).
#[derive(Clone)]
pub struct AsyncStamp {
    inner: Arc<Shared>,
}

struct Shared {
    addr: Addr,
    /// `AUTH` and `SELECT` where the URL asks for them, then `INFO server`, packed once.
    hello: Vec<u8>,
    hello_replies: usize,
    /// `GET stamp`, packed once.
    get_stamp: Vec<u8>,
    stamp_key: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    /// The store's: one epoch for the pools, the feed and these connections.
    continuity: Arc<Continuity>,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

#[derive(Debug, Clone)]
enum Addr {
    Tcp(String, u16),
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

impl fmt::Debug for AsyncStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStamp")
            .field("addr", &self.inner.addr)
            .field("stamp", &self.inner.stamp_key)
            .field("idle", &self.inner.lock_idle().len())
            .finish_non_exhaustive()
    }
}

impl AsyncStamp {
    /// Reads the stamp (`GET`), on a pooled connection of the current runtime or a new one;
    /// `None` when it is missing. Must be awaited inside a tokio runtime with I/O and time
    /// enabled.
    pub async fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.inner.last_updated().await
    }

    /// The store's epoch (the same counter as [`Store::epoch`](durabledict_core::Store::epoch)).
    pub fn epoch(&self) -> u64 {
        self.inner.continuity.epoch()
    }
}

impl StampSource for AsyncStamp {
    fn last_updated(&self) -> StampFuture<'_> {
        Box::pin(self.inner.last_updated())
    }

    fn epoch(&self) -> u64 {
        self.inner.continuity.epoch()
    }
}

impl Shared {
    async fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        let runtime = Handle::try_current()
            .map_err(|e| StoreError::other(format!("an async stamp check outside tokio: {e}")))?
            .id();
        let (mut conn, reused) = match self.take(runtime) {
            Some(conn) => (conn, true),
            None => (self.open(runtime).await?, false),
        };
        match conn.exchange(&self.get_stamp, 1, self.io_timeout).await {
            Ok(mut replies) => {
                let reply = replies.pop().unwrap_or(Value::Nil);
                // Nothing may have been read past the reply: bytes there (a reply sent twice)
                // would answer the next check on this connection with an old stamp.
                let in_step = conn.buf.is_empty();
                match reply.extract_error() {
                    Ok(value) => {
                        // Ends an outage in the store's log, as its pools' replies do.
                        self.continuity.answered();
                        let stamp = reply::stamp(value, &self.stamp_key);
                        // A reply that is no stamp may be another request's (a shifted
                        // handshake): the connection is kept only after a stamp.
                        if in_step && stamp.is_ok() {
                            self.put(conn);
                        }
                        stamp
                    }
                    Err(e) => {
                        // A server's error reply leaves the connection in step: keep it.
                        if in_step {
                            self.put(conn);
                        }
                        self.continuity.failed(&e);
                        Err(request_error(e, false))
                    }
                }
            }
            Err(e) => {
                self.continuity.failed(&e);
                drop(conn);
                // The others went to the same server: after a restart, only one check meets a
                // dead connection.
                if reused && (e.is_io_error() || e.is_connection_dropped()) && !e.is_timeout() {
                    self.forget_idle();
                }
                Err(request_error(e, false))
            }
        }
    }

    /// A new connection, after the handshake; reports who answered (or the failure) to the
    /// store's continuity before anything is sent on it.
    async fn open(&self, runtime: Id) -> Result<Conn, StoreError> {
        let opened = tokio::time::timeout(self.connect_timeout, self.connect(runtime))
            .await
            .unwrap_or_else(|_| Err(timed_out("connecting")));
        match opened {
            Ok((conn, identity)) => {
                self.continuity.connected(identity);
                Ok(conn)
            }
            Err(e) => {
                self.continuity.failed(&e);
                Err(store_error(e))
            }
        }
    }

    async fn connect(&self, runtime: Id) -> RedisResult<(Conn, continuity::Identity)> {
        let stream = match &self.addr {
            Addr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            #[cfg(unix)]
            Addr::Unix(path) => Stream::Unix(tokio::net::UnixStream::connect(path).await?),
        };
        let mut conn = Conn {
            stream,
            buf: Vec::new(),
            runtime,
        };
        // The connect timeout covers the handshake, as the sync connections' does.
        let mut replies = conn
            .exchange(&self.hello, self.hello_replies, Duration::MAX)
            .await?;
        let info = replies.pop().unwrap_or(Value::Nil);
        for reply in replies {
            // `AUTH` or `SELECT` refused.
            reply.extract_error()?;
        }
        if !conn.buf.is_empty() {
            return Err(protocol("more replies than requests"));
        }
        let identity = continuity::identify(&mut Answered(Some(info)))?;
        Ok((conn, identity))
    }

    fn take(&self, runtime: Id) -> Option<Conn> {
        let mut idle = self.lock_idle();
        let at = idle.iter().rposition(|conn| conn.runtime == runtime)?;
        Some(idle.swap_remove(at))
    }

    /// Keeps `conn` for the next check, closing the oldest idle one beyond `max_idle` (outside
    /// the lock).
    fn put(&self, conn: Conn) {
        let evicted = {
            let mut idle = self.lock_idle();
            idle.push(conn);
            (idle.len() > self.max_idle).then(|| idle.remove(0))
        };
        drop(evicted);
    }

    fn forget_idle(&self) {
        let idle = std::mem::take(&mut *self.lock_idle());
        drop(idle);
    }

    fn lock_idle(&self) -> MutexGuard<'_, Vec<Conn>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn timed_out(what: &str) -> RedisError {
    RedisError::from(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what}: no reply within the timeout"),
    ))
}

/// One async connection, bound to the runtime that opened it.
struct Conn {
    stream: Stream,
    /// Bytes read past the last reply (none, in step) or of a reply still incomplete.
    buf: Vec<u8>,
    runtime: Id,
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Conn {
    /// Sends `request` and reads `replies` replies, each within `timeout`.
    async fn exchange(
        &mut self,
        request: &[u8],
        replies: usize,
        timeout: Duration,
    ) -> RedisResult<Vec<Value>> {
        let exchange = async {
            match &mut self.stream {
                Stream::Tcp(s) => s.write_all(request).await?,
                #[cfg(unix)]
                Stream::Unix(s) => s.write_all(request).await?,
            }
            let mut values = Vec::with_capacity(replies);
            for _ in 0..replies {
                values.push(self.reply().await?);
            }
            Ok(values)
        };
        if timeout == Duration::MAX {
            return exchange.await;
        }
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(timed_out("reading the stamp")))
    }

    /// Reads one whole reply (a server's error reply included, as [`Value::ServerError`]).
    async fn reply(&mut self) -> RedisResult<Value> {
        loop {
            if let Some(end) = frame_end(&self.buf, 0, 0)? {
                // Never asked for (no `HELLO 3`, no tracking): a push or an attribute says the
                // connection is not what we think, so its replies cannot be paired with ours.
                if matches!(self.buf[0], b'>' | b'|') {
                    return Err(protocol("a push or attribute reply, never asked for"));
                }
                let value = simple(&self.buf[..end])
                    .map_or_else(|| redis::parse_redis_value(&self.buf[..end]), Ok);
                self.buf.drain(..end);
                return value;
            }
            if self.buf.len() > MAX_REPLY {
                return Err(protocol("a reply larger than 1 MiB"));
            }
            let mut chunk = [0u8; 4096];
            let read = match &mut self.stream {
                Stream::Tcp(s) => s.read(&mut chunk).await?,
                #[cfg(unix)]
                Stream::Unix(s) => s.read(&mut chunk).await?,
            };
            if read == 0 {
                return Err(RedisError::from(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }
}

fn protocol(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Parse, "not a RESP reply", what.to_owned()))
}

/// The value of a whole reply of the kinds a stamp `GET` gets (`$n` text, `$-1` nil, `:n`),
/// read directly; `None` for any other (parsed by redis-rs). The common case skips the
/// general parser's set-up.
fn simple(frame: &[u8]) -> Option<Value> {
    let (&kind, rest) = frame.split_first()?;
    let cr = rest.iter().position(|&b| b == b'\r')?;
    let head = std::str::from_utf8(&rest[..cr]).ok()?;
    let after = rest.get(cr + 2..)?;
    match kind {
        b':' if after.is_empty() => head.parse().ok().map(Value::Int),
        b'$' => {
            let Ok(len) = usize::try_from(head.parse::<i64>().ok()?) else {
                return after.is_empty().then_some(Value::Nil);
            };
            let data = after.strip_suffix(b"\r\n")?;
            (data.len() == len).then(|| Value::BulkString(data.to_vec()))
        }
        _ => None,
    }
}

/// Where the RESP reply starting at `at` ends, `None` while it is incomplete.
fn frame_end(buf: &[u8], at: usize, depth: usize) -> RedisResult<Option<usize>> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some(cr) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[at + 1..at + cr];
    let after = at + cr + 2;
    let count = || -> RedisResult<i64> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| protocol("a length that is not a number"))
    };
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(after)),
        b'$' | b'=' | b'!' => match usize::try_from(count()?) {
            Err(_) => Ok(Some(after)),
            Ok(len) => {
                let end = after.saturating_add(len).saturating_add(2);
                Ok((buf.len() >= end).then_some(end))
            }
        },
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            if depth >= MAX_DEPTH {
                return Err(protocol("a reply nested too deep"));
            }
            let Ok(n) = usize::try_from(count()?) else {
                return Ok(Some(after));
            };
            let n = if matches!(kind, b'%' | b'|') {
                n * 2
            } else {
                n
            };
            let mut pos = after;
            for _ in 0..n {
                match frame_end(buf, pos, depth + 1)? {
                    Some(end) => pos = end,
                    None => return Ok(None),
                }
            }
            Ok(Some(pos))
        }
        _ => Err(protocol("an unknown reply type")),
    }
}

/// A connection that answers one request with a reply already read: hands the `INFO server`
/// reply of an async handshake to [`continuity::identify`], so both kinds of connection tell
/// who answered the same way.
struct Answered(Option<Value>);

impl ConnectionLike for Answered {
    fn req_packed_command(&mut self, _: &[u8]) -> RedisResult<Value> {
        self.0.take().ok_or_else(|| protocol("a second request"))
    }
    fn req_packed_commands(&mut self, _: &[u8], _: usize, _: usize) -> RedisResult<Vec<Value>> {
        Err(protocol("a pipeline"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let end = |bytes: &[u8]| frame_end(bytes, 0, 0).ok().flatten();
        assert_eq!(end(b"$2\r\n42\r\n"), Some(8));
        assert_eq!(end(b"$2\r\n42\r"), None);
        assert_eq!(end(b"$-1\r\n"), Some(5));
        assert_eq!(end(b"+OK\r\n$-1\r\n"), Some(5));
        assert_eq!(end(b":7\r\n"), Some(4));
        assert_eq!(end(b"-ERR no\r\n"), Some(9));
        assert_eq!(end(b"*2\r\n:1\r\n$1\r\na\r\n"), Some(15));
        assert_eq!(end(b"*2\r\n:1\r\n$1\r\na"), None);
        assert_eq!(end(b"%1\r\n+a\r\n:1\r\n"), Some(12));
        assert_eq!(end(b""), None);
        assert!(frame_end(b"?\r\n", 0, 0).is_err());
        assert!(frame_end(b"$x\r\n", 0, 0).is_err());
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1);
        assert!(frame_end(deep.as_bytes(), 0, 0).is_err());
    }

    #[test]
    fn simple_replies_read_as_the_general_parser_reads_them() {
        for frame in [
            &b"$2\r\n42\r\n"[..],
            b"$-1\r\n",
            b"$0\r\n\r\n",
            b"$4\r\na\r\nb\r\n",
            b":-7\r\n",
        ] {
            assert_eq!(
                simple(frame),
                redis::parse_redis_value(frame).ok(),
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
        assert_eq!(simple(b"+OK\r\n"), None);
        assert_eq!(simple(b"-ERR x\r\n"), None);
    }
}
