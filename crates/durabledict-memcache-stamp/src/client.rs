//! The stamp's memcached client: `get`, `add`, `incr`, `delete` on one key, written and read by
//! the `memcache` crate's meta-protocol wire layer ([`MetaConnection`], `build_*`), over a few
//! pooled connections with timeouts.
//!
//! A stamp check is one `mg` round trip, sent in one write. The crate's clients cost more
//! (docs/PERFORMANCE.md): `Client` writes a command in several unbuffered writes (2.5× a raw
//! `get`), and `exp::MetaClient` probes every pooled connection before each command (1.3×). Its
//! pool also redials a dead connection silently, where the stamp must see every new connection
//! to check which server it reached: so the pool is kept here.
//!
//! `exp` is the crate's experimental module, which "may change without notice": the workspace
//! pins the crate's exact version.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use memcache::exp::{
    ArithmeticOptions, DeleteOptions, GetOptions, MetaCommand, MetaConnection, MetaResponse,
    ReturnCode, SetMode, SetOptions, build_arithmetic, build_delete, build_get, build_set,
};

use crate::error::MemcacheError;

/// The flags stored with a value Python clients should read as an integer (python-memcached's
/// and pymemcache's `FLAG_INTEGER`).
const FLAG_INTEGER: u32 = 2;

/// The longest stamp value accepted (a `u64` has at most 20 digits). A longer one can only come
/// from a broken server or another program's value under our key. The crate reads a value
/// before the client sees its length, refusing only announcements above memcached's 1 GiB item
/// limit: a longer value is refused after it was read.
const MAX_STAMP_LEN: usize = 64;

/// The longest `stats` line accepted, terminator included (memcached's are under 100 bytes).
const MAX_STATS_LINE: usize = 4096;

/// The most `stats` lines accepted, `END` included (memcached 1.6 sends under 100).
const MAX_STATS_LINES: usize = 1024;

/// Opens a connection and reads which server it reached, on that same connection (so that a
/// restart cannot fall between the two).
fn open(
    addr: &str,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> Result<(MetaConnection, ServerIdentity), MemcacheError> {
    let mut last = None;
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    for candidate in addrs {
        match TcpStream::connect_timeout(&candidate, connect_timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(io_timeout))?;
                stream.set_write_timeout(Some(io_timeout))?;
                let identity = identity(&stream, io_timeout)?;
                let mut connection = MetaConnection::from_stream(stream);
                connection.set_io_timeout(Some(io_timeout));
                return Ok((connection, identity));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{addr} resolves to no address"),
            )
        })
        .into())
}

/// The server's identity, from the text protocol's `stats` (the meta protocol has none).
/// memcached sends nothing after `END`, so the stream is left in step for the meta commands.
///
/// The whole exchange has one deadline, `timeout` from now, like a meta command's; a reply
/// longer than [`MAX_STATS_LINES`] lines or with a line over [`MAX_STATS_LINE`] bytes is
/// refused. Either failure is [`MemcacheError::Unavailable`]: the server is not one we can use.
fn identity(stream: &TcpStream, timeout: Duration) -> Result<ServerIdentity, MemcacheError> {
    let deadline = Instant::now() + timeout;
    let mut writer = stream;
    writer.write_all(b"stats\r\n")?;
    let mut reader = BufReader::with_capacity(MAX_STATS_LINE, stream);
    let (mut pid, mut time, mut uptime) = (None, None, None);
    let mut raw = Vec::with_capacity(64);
    let mut lines = 0;
    loop {
        if lines == MAX_STATS_LINES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the stats reply is longer than {MAX_STATS_LINES} lines"),
            )
            .into());
        }
        lines += 1;
        read_stats_line(&mut reader, &mut raw, deadline, timeout)?;
        let line = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"END" {
            break;
        }
        let mut fields = line.split(|&b| b == b' ');
        let (Some(b"STAT"), Some(name), Some(value)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(unexpected("stats", line));
        };
        match name {
            b"pid" => pid = parse_decimal(value),
            b"time" => time = parse_decimal(value),
            b"uptime" => uptime = parse_decimal(value),
            _ => {}
        }
    }
    if !reader.buffer().is_empty() {
        return Err(MemcacheError::Protocol(
            "bytes after the stats reply".into(),
        ));
    }
    match (pid, time, uptime) {
        (Some(pid), Some(time), Some(uptime)) => Ok(ServerIdentity {
            pid,
            started: i64::try_from(time).unwrap_or(i64::MAX) - i64::try_from(uptime).unwrap_or(0),
        }),
        _ => Err(MemcacheError::Protocol(
            "stats did not report pid, time and uptime".into(),
        )),
    }
}

/// Reads one line of the `stats` reply into `line` (cleared first), by `deadline`, refusing a
/// line longer than [`MAX_STATS_LINE`] bytes. Each socket read waits only until the deadline.
fn read_stats_line(
    reader: &mut BufReader<&TcpStream>,
    line: &mut Vec<u8>,
    deadline: Instant,
    timeout: Duration,
) -> io::Result<()> {
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the stats reply did not end within {timeout:?}"),
        )
    };
    line.clear();
    loop {
        if reader.buffer().is_empty() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(timed_out());
            }
            reader.get_ref().set_read_timeout(Some(remaining))?;
        }
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A socket timeout surfaces as `WouldBlock` on most platforms.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "memcached closed the connection",
            ));
        }
        let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > MAX_STATS_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a stats line is longer than {MAX_STATS_LINE} bytes"),
            ));
        }
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if complete {
            return Ok(());
        }
    }
}

/// What a reply line says when it is not the expected answer.
fn unexpected(command: &'static str, line: &[u8]) -> MemcacheError {
    let text = String::from_utf8_lossy(line).into_owned();
    if text.starts_with("SERVER_ERROR") || text.starts_with("CLIENT_ERROR") || text == "ERROR" {
        MemcacheError::Server {
            command,
            reply: text,
        }
    } else {
        MemcacheError::Protocol(format!("unexpected reply to {command}: {text:?}"))
    }
}

/// Our error for the crate's `error` from `command`. memcached's error replies leave the
/// connection in step; anything else may not.
fn classify(command: &'static str, error: memcache::exp::Error) -> MemcacheError {
    use memcache::exp::Error as E;
    match error {
        E::Io(_) | E::Timeout { .. } => MemcacheError::Unavailable(error.into()),
        E::Rejected(reply) | E::Server(reply) => MemcacheError::Server { command, reply },
        E::Protocol(text) => MemcacheError::Protocol(format!("{command}: {text}")),
        other => MemcacheError::Protocol(format!("{command}: {other}")),
    }
}

/// A reply code the command does not expect.
fn unexpected_code(command: &'static str, response: &MetaResponse) -> MemcacheError {
    MemcacheError::Protocol(format!(
        "unexpected reply to {command}: {:?}",
        response.rc()
    ))
}

/// A client for one key on one memcached server.
pub(crate) struct Client {
    addr: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<MetaConnection>>,
    get_command: MetaCommand,
    incr_command: MetaCommand,
    delete_command: MetaCommand,
    key: String,
    /// Changes whenever continuity may have been lost (see `Stamp::epoch`).
    epoch: AtomicU64,
    /// The identity of the server the last new connection reached.
    server: Mutex<Option<ServerIdentity>>,
    /// Whether an exchange failed and no new connection was made since: an outage is reported
    /// once when it begins and once when it ends (target `durabledict::memcache`).
    down: AtomicBool,
}

/// The `tracing` target of the memcached stamp's events.
const TARGET: &str = "durabledict::memcache";

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addr", &self.addr)
            .field("key", &self.key)
            .field("max_idle", &self.max_idle)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// Who a memcached is: its `pid` and start time (`time - uptime`). A restarted server differs
/// in one or both, even when it reuses the pid (in a container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerIdentity {
    pid: u64,
    started: i64,
}

impl Client {
    /// A client for `key` (checked by the builder: 1 to 250 bytes, no spaces or control
    /// characters) on `addr`.
    pub(crate) fn new(
        addr: String,
        key: String,
        connect_timeout: Duration,
        io_timeout: Duration,
        max_idle: usize,
    ) -> Result<Self, MemcacheError> {
        let build = |command: memcache::exp::Result<MetaCommand>| {
            command.map_err(|e| MemcacheError::Config(format!("the key {key:?}: {e}")))
        };
        let mut incr = ArithmeticOptions::default();
        incr.delta = Some(1);
        incr.return_value = true;
        Ok(Client {
            get_command: build(build_get(&key, &GetOptions::default()))?,
            incr_command: build(build_arithmetic(&key, &incr))?,
            delete_command: build(build_delete(&key, &DeleteOptions::default()))?,
            addr,
            connect_timeout,
            io_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            key,
            epoch: AtomicU64::new(0),
            server: Mutex::new(None),
            down: AtomicBool::new(false),
        })
    }

    /// The continuity epoch: bumped by every failed exchange and by a new connection that
    /// reaches a server other than the last one seen.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn lost_continuity(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// An exchange failed with `error`: continuity may be lost. Reported at `warn` when it
    /// begins an outage, at `debug` while it lasts.
    fn failed(&self, error: &MemcacheError) {
        if self.down.swap(true, Ordering::AcqRel) {
            tracing::debug!(target: TARGET, addr = %self.addr, %error, "memcached is still unreachable");
        } else {
            tracing::warn!(
                target: TARGET,
                addr = %self.addr,
                %error,
                "lost the connection to memcached: reconnecting on the next request"
            );
        }
        self.lost_continuity();
    }

    /// Runs `command` on a pooled connection. A failed connection is dropped; when it was an
    /// old one (the server may have restarted since), the command runs once more on a fresh
    /// one. A command that reached the old server before it failed runs twice: harmless here,
    /// since a stamp only has to change.
    fn call<T>(
        &self,
        mut command: impl FnMut(&mut MetaConnection) -> Result<T, MemcacheError>,
    ) -> Result<T, MemcacheError> {
        let pooled = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let (mut conn, reused) = match pooled {
            Some(conn) => (conn, true),
            None => (self.connect()?, false),
        };
        let result = match command(&mut conn) {
            Err(error @ MemcacheError::Unavailable(_)) if reused => {
                self.failed(&error);
                conn = self.connect()?;
                command(&mut conn)
            }
            other => other,
        };
        // Only a connection whose last exchange completed is in step with the server.
        let in_step = matches!(
            result,
            Ok(_) | Err(MemcacheError::Server { .. } | MemcacheError::NotANumber(_))
        );
        if in_step {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        } else if let Err(error) = &result {
            self.failed(error);
        }
        result
    }

    /// A new connection, after checking which server it reached.
    fn connect(&self) -> Result<MetaConnection, MemcacheError> {
        match open(&self.addr, self.connect_timeout, self.io_timeout) {
            Ok((connection, identity)) => {
                let mut last = self.server.lock().unwrap_or_else(PoisonError::into_inner);
                if self.down.swap(false, Ordering::AcqRel) {
                    tracing::info!(target: TARGET, addr = %self.addr, pid = identity.pid, "reconnected to memcached");
                } else {
                    tracing::debug!(target: TARGET, addr = %self.addr, pid = identity.pid, "new connection to memcached");
                }
                if let Some(before) = *last
                    && before != identity
                {
                    tracing::warn!(
                        target: TARGET,
                        addr = %self.addr,
                        pid_before = before.pid,
                        pid = identity.pid,
                        started_before = before.started,
                        started = identity.started,
                        "memcached restarted (another pid or start time): the stamp may be gone, dicts reload"
                    );
                    self.lost_continuity();
                }
                *last = Some(identity);
                Ok(connection)
            }
            Err(error) => {
                self.failed(&error);
                Err(error)
            }
        }
    }

    /// The key's value, `None` when missing.
    pub(crate) fn get(&self) -> Result<Option<Vec<u8>>, MemcacheError> {
        self.call(|conn| {
            let response = conn
                .execute(&self.get_command)
                .map_err(|e| classify("get", e))?;
            match response.rc() {
                ReturnCode::En => Ok(None),
                ReturnCode::Va => match response.into_value() {
                    Some(value) if value.len() <= MAX_STAMP_LEN => Ok(Some(value)),
                    Some(value) => Err(MemcacheError::Protocol(format!(
                        "get returned a {}-byte value; a stamp has at most {MAX_STAMP_LEN}",
                        value.len()
                    ))),
                    None => Err(MemcacheError::Protocol("get: VA without a value".into())),
                },
                _ => Err(unexpected_code("get", &response)),
            }
        })
    }

    /// Increments the key by one; `None` when it is missing.
    pub(crate) fn incr(&self) -> Result<Option<u64>, MemcacheError> {
        self.call(|conn| {
            let response = match conn.execute(&self.incr_command) {
                Ok(response) => response,
                // memcached's CLIENT_ERROR for a value that is not a decimal number.
                Err(memcache::exp::Error::Rejected(reply)) => {
                    return Err(MemcacheError::NotANumber(reply));
                }
                Err(e) => return Err(classify("incr", e)),
            };
            match response.rc() {
                ReturnCode::Nf => Ok(None),
                ReturnCode::Va => response
                    .value()
                    .and_then(parse_decimal)
                    .map(Some)
                    .ok_or_else(|| unexpected("incr", response.value().unwrap_or_default())),
                _ => Err(unexpected_code("incr", &response)),
            }
        })
    }

    /// Stores `value` (as an integer for Python clients, with no expiry) only when the key is
    /// missing; returns whether it stored it.
    pub(crate) fn add(&self, value: u64) -> Result<bool, MemcacheError> {
        let mut options = SetOptions::default();
        options.client_flags = Some(FLAG_INTEGER);
        options.mode = SetMode::Add;
        let command =
            build_set(&self.key, value.to_string(), &options).map_err(|e| classify("add", e))?;
        self.call(|conn| {
            let response = conn.execute(&command).map_err(|e| classify("add", e))?;
            match response.rc() {
                ReturnCode::Hd => Ok(true),
                ReturnCode::Ns | ReturnCode::Ex => Ok(false),
                _ => Err(unexpected_code("add", &response)),
            }
        })
    }

    /// Deletes the key; returns whether it existed.
    pub(crate) fn delete(&self) -> Result<bool, MemcacheError> {
        self.call(|conn| {
            let response = conn
                .execute(&self.delete_command)
                .map_err(|e| classify("delete", e))?;
            match response.rc() {
                ReturnCode::Hd => Ok(true),
                ReturnCode::Nf => Ok(false),
                _ => Err(unexpected_code("delete", &response)),
            }
        })
    }
}

/// An unsigned decimal, allowing the trailing spaces memcached may leave after `incr`.
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    let digits = bytes.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use durabledict_core::{StoreError, StoreErrorKind};
    use std::io::Read;

    /// A client of a fake server on 127.0.0.1 that answers `stats`, and every other request
    /// with `reply`.
    fn client_of_fake_server(reply: &'static [u8]) -> Client {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut request = [0; 256];
                while let Ok(n @ 1..) = stream.read(&mut request) {
                    let answer: &[u8] = if request[..n].starts_with(b"stats") {
                        b"STAT pid 1\r\nSTAT uptime 5\r\nSTAT time 9\r\nEND\r\n"
                    } else {
                        reply
                    };
                    let _ = stream.write_all(answer);
                }
            }
        });
        let timeout = Duration::from_secs(2);
        Client::new(addr, "k".into(), timeout, timeout, 1).unwrap()
    }

    /// A value longer than a stamp can be is a protocol error. One announced above memcached's
    /// item limit is refused by the crate before anything is allocated for it; a shorter one is
    /// refused once read.
    #[test]
    fn absurd_value_lengths_are_refused() {
        let long = format!("VA 65\r\n{}\r\n", "1".repeat(65)).leak().as_bytes();
        for reply in [
            &b"VA 18446744073709551615\r\n"[..],
            &b"VA 1000000000000\r\n"[..],
            long,
        ] {
            let e = client_of_fake_server(reply).get().unwrap_err();
            assert!(matches!(e, MemcacheError::Protocol(_)), "{e}");
            assert_eq!(StoreError::from(e).kind(), StoreErrorKind::Other);
        }
        let fine = client_of_fake_server(b"VA 3\r\n123\r\n");
        assert_eq!(fine.get().unwrap().as_deref(), Some(&b"123"[..]));
    }

    /// A real memcached's identity is steady across connections and changes with a restart on
    /// the same port.
    #[test]
    fn identity_from_stats_changes_with_a_restart() {
        let mut memcached = durabledict_test_servers::Memcached::start().unwrap();
        let addr = memcached.addr().to_string();
        let timeout = Duration::from_secs(2);
        let identity = || open(&addr, timeout, timeout).unwrap().1;
        let first = identity();
        assert_eq!(identity(), first);
        memcached.restart().unwrap();
        assert_ne!(identity(), first);
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal(b"42"), Some(42));
        assert_eq!(parse_decimal(b"42  "), Some(42));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
        assert_eq!(parse_decimal(b"4x"), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), None);
    }
}
