//! One memcached reached through the `memcache` crate, kept usable across restarts, and the
//! continuity epoch of what it serves.
//!
//! The crate's client runs over an r2d2 pool configured for a stamp check that is one `get`
//! round trip: the text protocol, `TCP_NODELAY`, and no `version` round trip before each
//! checkout (`test_on_check_out(false)`). Without that check a pooled connection that failed
//! stays in the pool (the crate never reports one as broken), so after a failed request the
//! whole client is replaced; the next command opens a new pool, and a restarted memcached is
//! used again at once.
//!
//! Every connection of a pool is opened when the pool is built (`min_idle` = size, no idle or
//! lifetime limit: r2d2 never opens one later), and the server's identity is read once per
//! pool, on a connection opened after them. If memcached restarted in between, the pool's
//! older connections fail at their first use, which counts as a lost continuity anyway.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use memcache::{ClientError, CommandError, ConnectionManager, Url};

use crate::error::MemcacheError;

/// The flags stored with a value Python clients should read as an integer (python-memcached's
/// and pymemcache's `FLAG_INTEGER`).
const FLAG_INTEGER: u32 = 2;

/// A stamp stored as a Python integer: decimal text with [`FLAG_INTEGER`].
struct PythonInt(String);

impl<W: std::io::Write> memcache::ToMemcacheValue<W> for PythonInt {
    fn get_flags(&self) -> u32 {
        FLAG_INTEGER
    }

    fn get_length(&self) -> usize {
        self.0.len()
    }

    fn write_to(&self, stream: &mut W) -> std::io::Result<()> {
        stream.write_all(self.0.as_bytes())
    }
}

/// Who a memcached is: its `pid` and start time (`time - uptime`). A restarted server differs
/// in one or both, even when it reuses the pid (in a container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerIdentity {
    pid: i64,
    started: i64,
}

/// The continuity epoch (see `Stamp::epoch`): changed by every failed request and by a new
/// pool that reaches a server other than the last one seen.
#[derive(Debug, Default)]
struct Continuity {
    epoch: AtomicU64,
    last_server: Mutex<Option<ServerIdentity>>,
}

impl Continuity {
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn lost(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Records the server a new pool reached.
    fn reached(&self, server: ServerIdentity) {
        let mut last = self
            .last_server
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| last != server) {
            self.lost();
        }
        *last = Some(server);
    }
}

/// The `memcache` crate's client for one key's server, replaced after a failure.
pub(crate) struct Connection {
    /// Resolved once per pool: the address a reachability probe connects to.
    addr: String,
    /// The pool's connections: text protocol, `TCP_NODELAY`, `io_timeout`.
    url: Url,
    /// The identity check's connection: the binary protocol, whose `stats` reads the whole
    /// reply (the crate's text `stats` stops after the first line).
    stats_url: Url,
    pool_size: u32,
    connect_timeout: Duration,
    client: RwLock<Option<Arc<memcache::Client>>>,
    continuity: Continuity,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .field("pool_size", &self.pool_size)
            .field("epoch", &self.continuity.epoch())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection to `addr` (`host:port`), `None` when it is not one. Connects at the first
    /// command.
    pub(crate) fn new(
        addr: String,
        pool_size: u32,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Option<Self> {
        let timeout = io_timeout.as_secs_f64();
        let url = |query: &str| {
            Url::parse(&format!("memcache://{addr}?{query}&timeout={timeout}"))
                .ok()
                .filter(|url| url.host_str().is_some() && url.port().is_some())
        };
        Some(Connection {
            url: url("protocol=ascii&tcp_nodelay=true")?,
            stats_url: url("tcp_nodelay=true")?,
            addr,
            pool_size: pool_size.max(1),
            connect_timeout,
            client: RwLock::new(None),
            continuity: Continuity::default(),
        })
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.continuity.epoch()
    }

    /// Runs `command` on the current client. A failed request changes the epoch and drops the
    /// client; when that client was not new (memcached may have restarted since), the command
    /// runs once more on a new one. A command that reached the old server before it failed
    /// runs twice: harmless here, since a stamp only has to change.
    fn call<T>(
        &self,
        command: &'static str,
        run: impl Fn(&memcache::Client) -> Result<T, memcache::MemcacheError>,
    ) -> Result<T, MemcacheError> {
        let (client, new) = self.client()?;
        match run(&client) {
            Err(error) if breaks(&error) && !new => {
                self.failed(&client);
                let (client, _) = self.client()?;
                run(&client).map_err(|error| self.error(&client, command, error))
            }
            result => result.map_err(|error| self.error(&client, command, error)),
        }
    }

    /// The current client, and whether this call made it.
    fn client(&self) -> Result<(Arc<memcache::Client>, bool), MemcacheError> {
        let current = self.client.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = current.as_ref() {
            return Ok((Arc::clone(client), false));
        }
        drop(current);
        // One thread connects; the others wait for its client.
        let mut current = self.client.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = current.as_ref() {
            return Ok((Arc::clone(client), false));
        }
        let client = Arc::new(self.connect().inspect_err(|_| self.continuity.lost())?);
        *current = Some(Arc::clone(&client));
        Ok((client, true))
    }

    /// A new client: its pool's connections opened, then the server's identity read.
    fn connect(&self) -> Result<memcache::Client, MemcacheError> {
        self.probe()?;
        let pool = self.pool(self.url.clone(), self.pool_size)?;
        let client = memcache::Client::with_pool(pool).map_err(unavailable)?;
        self.continuity.reached(self.identity()?);
        Ok(client)
    }

    /// One bounded connect, so that a refused or unreachable server fails within
    /// `connect_timeout` at once (r2d2 would retry until its timeout, and the crate's own
    /// connect has none).
    fn probe(&self) -> Result<(), MemcacheError> {
        let addrs: Vec<SocketAddr> = self
            .url
            .socket_addrs(|| None)
            .map_err(|e| MemcacheError::Unavailable(e.into()))?;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(MemcacheError::Unavailable(match last {
            Some(e) => e.into(),
            None => format!("{} resolves to no address", self.addr).into(),
        }))
    }

    /// An r2d2 pool of `size` connections, all opened now and never checked or replaced by
    /// r2d2 itself.
    fn pool(&self, url: Url, size: u32) -> Result<memcache::Pool, MemcacheError> {
        memcache::Pool::builder()
            .max_size(size)
            .min_idle(None)
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(self.connect_timeout)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(ConnectionManager::new(url))
            .map_err(|e| MemcacheError::Unavailable(e.into()))
    }

    /// The server's identity from `stats`, on a connection of its own.
    fn identity(&self) -> Result<ServerIdentity, MemcacheError> {
        let pool = self.pool(self.stats_url.clone(), 1)?;
        let client = memcache::Client::with_pool(pool).map_err(unavailable)?;
        let stats = client
            .stats()
            .map_err(|e| classify("stats", e))?
            .into_iter()
            .next()
            .map(|(_, stats)| stats)
            .unwrap_or_default();
        let number = |name: &str| stats.get(name).and_then(|v| v.trim().parse::<i64>().ok());
        match (number("pid"), number("time"), number("uptime")) {
            (Some(pid), Some(time), Some(uptime)) => Ok(ServerIdentity {
                pid,
                started: time - uptime,
            }),
            _ => Err(MemcacheError::Protocol(
                "stats did not report pid, time and uptime".into(),
            )),
        }
    }

    /// After a failed request on `client`: the epoch changes, and `client` is dropped unless
    /// another thread replaced it already.
    fn failed(&self, client: &Arc<memcache::Client>) {
        self.continuity.lost();
        let mut current = self.client.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            *current = None;
        }
    }

    /// Our error for `error` from `command` on `client`, which is dropped when the error
    /// leaves its connection out of step.
    fn error(
        &self,
        client: &Arc<memcache::Client>,
        command: &'static str,
        error: memcache::MemcacheError,
    ) -> MemcacheError {
        if breaks(&error) {
            self.failed(client);
        }
        classify(command, error)
    }

    /// The value of `key`, `None` when missing.
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, MemcacheError> {
        self.call("get", |client| client.get::<Vec<u8>>(key))
    }

    /// Increments `key` by one; `None` when it is missing.
    pub(crate) fn incr(&self, key: &str) -> Result<Option<u64>, MemcacheError> {
        let result = self.call("incr", |client| match client.increment(key, 1) {
            Err(memcache::MemcacheError::CommandError(CommandError::KeyNotFound)) => Ok(None),
            other => other.map(Some),
        });
        match result {
            // memcached's CLIENT_ERROR for `incr` of a value that is not a decimal number.
            Err(MemcacheError::Server { reply, .. }) => Err(MemcacheError::NotANumber(reply)),
            other => other,
        }
    }

    /// Stores `value` (as a Python integer, with no expiry) unless `key` exists.
    pub(crate) fn add(&self, key: &str, value: u64) -> Result<(), MemcacheError> {
        self.call("add", |client| {
            client.add(key, PythonInt(value.to_string()), 0)
        })
    }

    /// Deletes `key`; returns whether it existed.
    pub(crate) fn delete(&self, key: &str) -> Result<bool, MemcacheError> {
        self.call("delete", |client| client.delete(key))
    }
}

/// Whether `error` means the connection failed or is out of step with the server: anything
/// but memcached's own error reply (a command error, `SERVER_ERROR`, `CLIENT_ERROR`).
fn breaks(error: &memcache::MemcacheError) -> bool {
    use memcache::MemcacheError as E;
    match error {
        E::CommandError(_) | E::ServerError(memcache::ServerError::Error(_)) => false,
        E::ClientError(ClientError::Error(reply)) => !is_client_error_reply(reply),
        _ => true,
    }
}

/// The crate reports both memcached's `CLIENT_ERROR` reply and a connection closed mid-reply
/// as a `ClientError`; the reply is the one that starts with the protocol's error token.
fn is_client_error_reply(text: &str) -> bool {
    text.starts_with("CLIENT_ERROR")
}

fn unavailable(error: memcache::MemcacheError) -> MemcacheError {
    MemcacheError::Unavailable(error.into())
}

/// Our error for the crate's `error` from `command`.
fn classify(command: &'static str, error: memcache::MemcacheError) -> MemcacheError {
    use memcache::MemcacheError as E;
    match error {
        E::CommandError(e) => MemcacheError::Server {
            command,
            reply: e.to_string(),
        },
        E::ServerError(memcache::ServerError::Error(reply)) => MemcacheError::Server {
            command,
            reply: reply.trim_end().to_string(),
        },
        E::ClientError(ClientError::Error(reply)) if is_client_error_reply(&reply) => {
            MemcacheError::Server {
                command,
                reply: reply.trim_end().to_string(),
            }
        }
        E::ServerError(_) | E::ParseError(_) | E::BadURL(_) => {
            MemcacheError::Protocol(format!("{command}: {error}"))
        }
        other => unavailable(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use durabledict_test_servers::Memcached;

    fn server(pid: i64, started: i64) -> ServerIdentity {
        ServerIdentity { pid, started }
    }

    /// The first server seen sets no epoch; the same one again neither; another pid or another
    /// start time (a pid reused in a container) does, and so does every failure.
    #[test]
    fn the_epoch_changes_with_the_server_and_with_failures() {
        let continuity = Continuity::default();
        continuity.reached(server(10, 1000));
        continuity.reached(server(10, 1000));
        assert_eq!(continuity.epoch(), 0);
        continuity.reached(server(11, 1000));
        assert_eq!(continuity.epoch(), 1);
        continuity.reached(server(11, 1005));
        assert_eq!(continuity.epoch(), 2);
        continuity.lost();
        assert_eq!(continuity.epoch(), 3);
    }

    /// A real memcached's identity is steady across connections and changes with a restart on
    /// the same port.
    #[test]
    fn identity_from_stats_changes_with_a_restart() {
        let mut memcached = Memcached::start().unwrap();
        let timeout = Duration::from_secs(2);
        let connection =
            Connection::new(memcached.addr().to_string(), 1, timeout, timeout).unwrap();
        assert!(Connection::new("127.0.0.1".into(), 1, timeout, timeout).is_none());
        let first = connection.identity().unwrap();
        assert_eq!(connection.identity().unwrap(), first);
        memcached.restart().unwrap();
        assert_ne!(connection.identity().unwrap(), first);
    }

    #[test]
    fn memcached_error_replies_keep_the_connection() {
        use memcache::MemcacheError as E;
        assert!(!breaks(&E::CommandError(CommandError::KeyNotFound)));
        assert!(!breaks(&E::ClientError(ClientError::Error(
            "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n".into()
        ))));
        assert!(breaks(&E::ClientError(ClientError::Error(
            "Ascii protocol no line found".into()
        ))));
        assert!(breaks(&E::IOError(std::io::ErrorKind::TimedOut.into())));
    }
}
