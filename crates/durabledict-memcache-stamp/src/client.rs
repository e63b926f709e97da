//! A minimal memcached text-protocol client: `get`, `add`, `incr`, `delete` on one key, over
//! a few pooled TCP connections with timeouts.
//!
//! A stamp check is one `get` round trip; this client adds nothing to it but a pooled
//! connection (no per-command health check) and parsing one short reply.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::error::MemcacheError;

/// The flags stored with a value Python clients should read as an integer (python-memcached's
/// and pymemcache's `FLAG_INTEGER`).
const FLAG_INTEGER: u32 = 2;

/// The longest stamp value accepted (a `u64` has at most 20 digits). A longer one can only come
/// from a broken server or another program's value under our key, and is refused before
/// anything is allocated for it.
const MAX_STAMP_LEN: usize = 64;

/// One connection: a buffered reader over the stream, and a reply buffer reused across
/// commands.
#[derive(Debug)]
struct Conn {
    reader: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Conn {
    fn open(addr: &str, connect_timeout: Duration, io_timeout: Duration) -> io::Result<Conn> {
        let mut last = None;
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        for candidate in addrs {
            match TcpStream::connect_timeout(&candidate, connect_timeout) {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    stream.set_read_timeout(Some(io_timeout))?;
                    stream.set_write_timeout(Some(io_timeout))?;
                    return Ok(Conn {
                        reader: BufReader::with_capacity(512, stream),
                        line: Vec::with_capacity(64),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{addr} resolves to no address"),
            )
        }))
    }

    fn send(&mut self, request: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(request)
    }

    /// Reads one reply line, without its `\r\n`.
    fn read_line(&mut self) -> io::Result<&[u8]> {
        self.line.clear();
        let n = self.reader.read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "memcached closed the connection",
            ));
        }
        let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        Ok(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

impl Conn {
    /// The server's identity, from `stats`.
    fn identity(&mut self) -> Result<ServerIdentity, MemcacheError> {
        self.send(b"stats\r\n")?;
        let (mut pid, mut time, mut uptime) = (None, None, None);
        loop {
            let line = self.read_line()?;
            if line == b"END" {
                break;
            }
            let mut fields = line.split(|&b| b == b' ');
            if fields.next() != Some(b"STAT") {
                return Err(unexpected("stats", line));
            }
            let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
                return Err(unexpected("stats", line));
            };
            match name {
                b"pid" => pid = parse_decimal(value),
                b"time" => time = parse_decimal(value),
                b"uptime" => uptime = parse_decimal(value),
                _ => {}
            }
        }
        match (pid, time, uptime) {
            (Some(pid), Some(time), Some(uptime)) => Ok(ServerIdentity {
                pid,
                started: i64::try_from(time).unwrap_or(i64::MAX)
                    - i64::try_from(uptime).unwrap_or(0),
            }),
            _ => Err(MemcacheError::Protocol(
                "stats did not report pid, time and uptime".into(),
            )),
        }
    }
}

/// What a reply line says when it is not the expected answer.
fn unexpected(command: &str, line: &[u8]) -> MemcacheError {
    let text = String::from_utf8_lossy(line).into_owned();
    if text.starts_with("SERVER_ERROR") || text.starts_with("CLIENT_ERROR") || text == "ERROR" {
        MemcacheError::Server {
            command: command.to_string(),
            reply: text,
        }
    } else {
        MemcacheError::Protocol(format!("unexpected reply to {command}: {text:?}"))
    }
}

/// A client for one key on one memcached server.
#[derive(Debug)]
pub(crate) struct Client {
    addr: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<Conn>>,
    get_request: Vec<u8>,
    incr_request: Vec<u8>,
    delete_request: Vec<u8>,
    key: String,
    /// Changes whenever continuity may have been lost (see `Stamp::epoch`).
    epoch: AtomicU64,
    /// The identity of the server the last new connection reached.
    server: Mutex<Option<ServerIdentity>>,
}

/// Who a memcached is: its `pid` and start time (`time - uptime`). A restarted server differs
/// in one or both, even when it reuses the pid (in a container).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerIdentity {
    pid: u64,
    started: i64,
}

impl Client {
    pub(crate) fn new(
        addr: String,
        key: String,
        connect_timeout: Duration,
        io_timeout: Duration,
        max_idle: usize,
    ) -> Self {
        Client {
            addr,
            connect_timeout,
            io_timeout,
            max_idle,
            idle: Mutex::new(Vec::new()),
            get_request: format!("get {key}\r\n").into_bytes(),
            incr_request: format!("incr {key} 1\r\n").into_bytes(),
            delete_request: format!("delete {key}\r\n").into_bytes(),
            key,
            epoch: AtomicU64::new(0),
            server: Mutex::new(None),
        }
    }

    /// The continuity epoch: bumped by every failed exchange and by a new connection that
    /// reaches a server other than the last one seen.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn lost_continuity(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Runs `command` on a pooled connection. An I/O failure drops the connection; when the
    /// connection was an old one (the server may have restarted since), the command runs once
    /// more on a fresh one. A command that reached the old server before it failed runs twice:
    /// harmless here, since a stamp only has to change.
    fn call<T>(
        &self,
        mut command: impl FnMut(&mut Conn) -> Result<T, MemcacheError>,
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
            Err(MemcacheError::Io(_)) if reused => {
                self.lost_continuity();
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
        } else {
            self.lost_continuity();
        }
        result
    }

    /// A new connection, after checking which server it reached.
    fn connect(&self) -> Result<Conn, MemcacheError> {
        let opened = Conn::open(&self.addr, self.connect_timeout, self.io_timeout)
            .map_err(MemcacheError::Io)
            .and_then(|mut conn| {
                let identity = conn.identity()?;
                let mut last = self.server.lock().unwrap_or_else(PoisonError::into_inner);
                if last.is_some_and(|last| last != identity) {
                    self.lost_continuity();
                }
                *last = Some(identity);
                Ok(conn)
            });
        if opened.is_err() {
            self.lost_continuity();
        }
        opened
    }

    /// The key's value, `None` when missing.
    pub(crate) fn get(&self) -> Result<Option<Vec<u8>>, MemcacheError> {
        self.call(|conn| {
            conn.send(&self.get_request)?;
            let header = conn.read_line()?;
            if header == b"END" {
                return Ok(None);
            }
            let len =
                parse_value_header(header, &self.key).ok_or_else(|| unexpected("get", header))?;
            if len > MAX_STAMP_LEN {
                // Nothing is read or allocated for it: the connection is dropped.
                return Err(MemcacheError::Protocol(format!(
                    "get announced a {len}-byte value; a stamp has at most {MAX_STAMP_LEN}"
                )));
            }
            let mut data = vec![0; len + 2];
            conn.reader.read_exact(&mut data)?;
            if !data.ends_with(b"\r\n") {
                return Err(MemcacheError::Protocol("value not followed by CRLF".into()));
            }
            data.truncate(len);
            let end = conn.read_line()?;
            if end != b"END" {
                return Err(unexpected("get", end));
            }
            Ok(Some(data))
        })
    }

    /// Increments the key by one; `None` when it is missing.
    pub(crate) fn incr(&self) -> Result<Option<u64>, MemcacheError> {
        self.call(|conn| {
            conn.send(&self.incr_request)?;
            let line = conn.read_line()?;
            if line == b"NOT_FOUND" {
                return Ok(None);
            }
            if line.starts_with(b"CLIENT_ERROR") {
                return Err(MemcacheError::NotANumber(
                    String::from_utf8_lossy(line).into_owned(),
                ));
            }
            parse_decimal(line)
                .map(Some)
                .ok_or_else(|| unexpected("incr", line))
        })
    }

    /// Stores `value` (as an integer for Python clients, with no expiry) only when the key is
    /// missing; returns whether it stored it.
    pub(crate) fn add(&self, value: u64) -> Result<bool, MemcacheError> {
        let data = value.to_string();
        let request = format!(
            "add {} {FLAG_INTEGER} 0 {}\r\n{data}\r\n",
            self.key,
            data.len()
        );
        self.call(|conn| {
            conn.send(request.as_bytes())?;
            match conn.read_line()? {
                b"STORED" => Ok(true),
                b"NOT_STORED" | b"EXISTS" => Ok(false),
                other => Err(unexpected("add", other)),
            }
        })
    }

    /// Deletes the key; returns whether it existed.
    pub(crate) fn delete(&self) -> Result<bool, MemcacheError> {
        self.call(|conn| {
            conn.send(&self.delete_request)?;
            match conn.read_line()? {
                b"DELETED" => Ok(true),
                b"NOT_FOUND" => Ok(false),
                other => Err(unexpected("delete", other)),
            }
        })
    }
}

/// The data length of a `VALUE <key> <flags> <bytes> [<cas>]` line for our key.
fn parse_value_header(line: &[u8], key: &str) -> Option<usize> {
    let mut fields = line.split(|&b| b == b' ');
    if fields.next()? != b"VALUE" || fields.next()? != key.as_bytes() {
        return None;
    }
    let _flags = fields.next()?;
    let len = parse_decimal(fields.next()?)?;
    usize::try_from(len).ok()
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

    #[test]
    fn value_headers() {
        assert_eq!(parse_value_header(b"VALUE k 2 5", "k"), Some(5));
        assert_eq!(parse_value_header(b"VALUE k 0 12 99", "k"), Some(12));
        assert_eq!(parse_value_header(b"VALUE other 0 5", "k"), None);
        assert_eq!(parse_value_header(b"ERROR", "k"), None);
    }

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
        Client::new(addr, "k".into(), timeout, timeout, 1)
    }

    /// A `VALUE` line announcing more bytes than a stamp can have is a protocol error, before
    /// anything is allocated for them (a broken server could otherwise overflow the length or
    /// make the client allocate without bound).
    #[test]
    fn absurd_value_lengths_are_refused() {
        for reply in [
            &b"VALUE k 0 18446744073709551615\r\n"[..],
            &b"VALUE k 0 1000000000000\r\n"[..],
            &b"VALUE k 0 65\r\n"[..],
        ] {
            let e = client_of_fake_server(reply).get().unwrap_err();
            assert!(matches!(e, MemcacheError::Protocol(_)), "{e}");
            assert_eq!(StoreError::from(e).kind(), StoreErrorKind::Other);
        }
        let fine = client_of_fake_server(b"VALUE k 2 3\r\n123\r\nEND\r\n");
        assert_eq!(fine.get().unwrap().as_deref(), Some(&b"123"[..]));
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
