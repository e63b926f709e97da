//! A loader connection: a short-lived ZooKeeper session of its own, speaking the wire protocol
//! directly, that pipelines many `getData` requests (or sends them as one `multiRead`) on one
//! socket.
//!
//! The `zookeeper` client spends tens of microseconds of CPU on every request (a channel send
//! to its I/O thread and a thread wake-up for every reply), so a full load through it is
//! bound by the client's CPU long before the server's (see docs/PERFORMANCE.md). This
//! connection writes requests in batches and reads the replies as they stream, with no
//! thread hop per request.
//!
//! Only what a load needs: connect (a new session), authenticate, `sync`, `getData`,
//! `multiRead`, close. Any reply it does not expect is an error, and the caller falls back
//! to reading through the `zookeeper` client.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Operation codes (ZooKeeper's `ZooDefs.OpCode`).
mod op {
    pub const GET_DATA: i32 = 4;
    pub const SYNC: i32 = 9;
    pub const MULTI_READ: i32 = 22;
    pub const CLOSE_SESSION: i32 = -11;
    pub const AUTH: i32 = 100;
    pub const ERROR: i32 = -1;
}

/// The xid the server answers authentication with.
const AUTH_XID: i32 = -4;

/// ZooKeeper's `NONODE` error code.
pub(crate) const NO_NODE: i32 = -101;

/// The longest reply accepted to a request that carries no znode's data (connect, auth,
/// `sync`, close): a longer length is a broken stream.
const SMALL_FRAME: usize = 64 << 10;

/// The most data one znode is taken to hold unless [`Conn::set_max_data`] says otherwise:
/// ZooKeeper's default `jute.maxbuffer`, which bounds the data of every write it accepts.
pub(crate) const DEFAULT_MAX_DATA: usize = 0xfffff;

/// How many `getData` requests are on the wire at once: well under the server's default
/// `globalOutstandingLimit` (1,000), past which it stops reading the socket.
const WINDOW: usize = 512;

/// How many `multiRead` requests are on the wire at once: enough to keep the server busy
/// while a reply travels, few enough that the replies waiting in its heap stay small.
const MULTI_WINDOW: usize = 4;

/// How many znodes the first `multiRead`s ask for, before any value's size is known.
const FIRST_MULTI: usize = 16;

/// About how many bytes of data one `multiRead` reply may carry.
const REPLY_BUDGET: usize = 4 << 20;

/// What a reply carries per znode besides its data: the result header, the data's length and
/// its `Stat`.
const PER_RESULT: usize = 9 + 4 + 68;

/// At most this many bytes of paths in one `multiRead` request: well inside the server's
/// `jute.maxbuffer` (1 MiB by default), past which it closes the connection.
const REQUEST_BUDGET: usize = 256 << 10;

/// A request that failed on this connection, or a reply it did not expect.
pub(crate) type Error = io::Error;

fn broken(what: impl Into<String>) -> Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The servers and the chroot of a connect string (`host:port,host:port[/chroot]`), parsed as
/// the `zookeeper` client parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) hosts: Vec<String>,
    pub(crate) chroot: Option<String>,
}

impl Target {
    pub(crate) fn parse(connect: &str) -> Target {
        let (hosts, chroot) = match connect.find('/') {
            Some(at) => (&connect[..at], Some(&connect[at..]).filter(|c| *c != "/")),
            None => (connect, None),
        };
        Target {
            hosts: hosts
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect(),
            chroot: chroot.map(str::to_owned),
        }
    }

    /// The path the server knows `path` (as the client names it) by.
    pub(crate) fn server_path(&self, path: &str) -> String {
        match (&self.chroot, path) {
            (Some(chroot), "/") => chroot.clone(),
            (Some(chroot), path) => format!("{chroot}{path}"),
            (None, path) => path.to_owned(),
        }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.hosts
            .iter()
            .filter_map(|host| host.to_socket_addrs().ok()?.next())
            .collect()
    }
}

/// One znode's data as read: `Ok(data)`, or `Err(code)` with ZooKeeper's error code
/// ([`NO_NODE`] for a znode that does not exist).
pub(crate) type Read1 = Result<Vec<u8>, i32>;

/// An open loader session.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
    target: Target,
    xid: i32,
    /// How long one reply may take, from its first byte awaited to its last.
    timeout: Duration,
    /// The most data a reply may carry per znode (see [`Conn::set_max_data`]).
    max_data: usize,
}

/// Appends jute encodings to a frame.
struct Frame(Vec<u8>);

impl Frame {
    fn new() -> Frame {
        // Room for the length prefix, filled in by `finish`.
        Frame(vec![0; 4])
    }
    fn int(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn long(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.int(i32::try_from(v.len()).unwrap_or(i32::MAX));
        self.0.extend_from_slice(v);
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.0.len() - 4).unwrap_or(u32::MAX);
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        self.0
    }
}

/// Reads jute encodings from one reply frame.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        if self.0.len() < n {
            return Err(broken("reply shorter than its contents"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn int(&mut self) -> Result<i32, Error> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn long(&mut self) -> Result<i64, Error> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn bool(&mut self) -> Result<bool, Error> {
        Ok(self.take(1)?[0] != 0)
    }
    fn buffer(&mut self) -> Result<Vec<u8>, Error> {
        let len = self.int()?;
        // -1 is a null buffer: a znode created without data.
        let len = usize::try_from(len).unwrap_or(0);
        Ok(self.take(len)?.to_vec())
    }
    /// Skips a `Stat` (6 longs, 3 ints, a long, 2 ints, a long).
    fn stat(&mut self) -> Result<(), Error> {
        self.take(68).map(drop)
    }
}

impl Conn {
    /// Opens a session on the first server of `target` that accepts a connection, with
    /// `timeout` for connecting and for every read and write after, and authenticates it
    /// with `auth` (as the store's main session does).
    pub(crate) fn open(
        target: &Target,
        auth: &[(String, Vec<u8>)],
        timeout: Duration,
    ) -> Result<Conn, Error> {
        let mut last = broken("no server address in the connect string");
        for addr in target.addrs() {
            match Self::open_at(addr, target, auth, timeout) {
                Ok(conn) => return Ok(conn),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn open_at(
        addr: SocketAddr,
        target: &Target,
        auth: &[(String, Vec<u8>)],
        timeout: Duration,
    ) -> Result<Conn, Error> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = Conn {
            reader: BufReader::with_capacity(256 * 1024, stream.try_clone()?),
            writer: BufWriter::with_capacity(64 * 1024, stream),
            target: target.clone(),
            xid: 0,
            timeout,
            max_data: DEFAULT_MAX_DATA,
        };
        let session_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut connect = Frame::new();
        connect
            .int(0) // protocol version
            .long(0) // last zxid seen
            .int(session_ms)
            .long(0) // session id: a new session
            .buffer(&[0; 16]) // password
            .bool(false); // read-only
        conn.writer.write_all(&connect.finish())?;
        conn.writer.flush()?;
        let reply = conn.frame(SMALL_FRAME)?;
        let mut reply = Cursor(&reply);
        let _protocol = reply.int()?;
        let negotiated = reply.int()?;
        if negotiated <= 0 {
            return Err(broken("the server refused the session"));
        }
        // From here on the server holds a session: a failure closes it rather than leave it
        // to expire at its timeout.
        match conn.authenticate(auth) {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.close();
                Err(e)
            }
        }
    }

    /// Sets the most data a reply may carry per znode: the server's `jute.maxbuffer`, which
    /// bounds every znode's data. A reply longer than its znodes could fill is refused as a
    /// broken stream (and the load falls back), before more of it is read.
    pub(crate) fn set_max_data(&mut self, bytes: usize) {
        self.max_data = bytes.max(DEFAULT_MAX_DATA);
    }

    fn authenticate(&mut self, auth: &[(String, Vec<u8>)]) -> Result<(), Error> {
        let conn = self;
        for (scheme, credentials) in auth {
            let mut packet = Frame::new();
            packet
                .int(AUTH_XID)
                .int(op::AUTH)
                .int(0)
                .buffer(scheme.as_bytes())
                .buffer(credentials);
            conn.writer.write_all(&packet.finish())?;
            conn.writer.flush()?;
            let reply = conn.frame(SMALL_FRAME)?;
            let mut reply = Cursor(&reply);
            let (xid, _zxid, err) = (reply.int()?, reply.long()?, reply.int()?);
            if xid != AUTH_XID || err != 0 {
                return Err(broken(format!("authentication refused ({err})")));
            }
        }
        Ok(())
    }

    /// Reads one length-prefixed frame of at most `limit` bytes, whole within the
    /// connection's timeout (a server that keeps a reply coming a byte at a time does not hold
    /// the load past it). The frame grows as its bytes arrive, never to a length the stream
    /// merely claims.
    fn frame(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + self.timeout;
        let mut len = Vec::with_capacity(4);
        self.read_into(&mut len, 4, deadline)?;
        let len = usize::try_from(i32::from_be_bytes([len[0], len[1], len[2], len[3]]))
            .map_err(|_| broken("negative frame length"))?;
        if len > limit {
            return Err(broken(format!(
                "a reply of {len} bytes, more than the {limit} asked for"
            )));
        }
        let mut frame = Vec::with_capacity(len.min(1 << 20));
        self.read_into(&mut frame, len, deadline)?;
        Ok(frame)
    }

    /// Appends bytes from the connection to `out` until it holds `len`, by `deadline`.
    fn read_into(&mut self, out: &mut Vec<u8>, len: usize, deadline: Instant) -> io::Result<()> {
        while out.len() < len {
            if self.reader.buffer().is_empty() {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .filter(|left| !left.is_zero())
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::TimedOut, "no whole reply within the timeout")
                    })?;
                self.reader.get_ref().set_read_timeout(Some(left))?;
            }
            let buffered = match self.reader.fill_buf() {
                Ok(buffered) => buffered,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buffered.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n = buffered.len().min(len - out.len());
            out.extend_from_slice(&buffered[..n]);
            self.reader.consume(n);
        }
        Ok(())
    }

    /// The longest reply to a read of `n` znodes.
    fn data_limit(&self, n: usize) -> usize {
        n.saturating_mul(PER_RESULT + self.max_data)
            .saturating_add(SMALL_FRAME)
    }

    fn next_xid(&mut self) -> i32 {
        self.xid += 1;
        self.xid
    }

    /// Reads the next reply, which must answer `xid`: its error code and body.
    fn reply(&mut self, xid: i32, limit: usize) -> Result<(i32, Vec<u8>), Error> {
        let frame = self.frame(limit)?;
        let mut cursor = Cursor(&frame);
        let (got, _zxid, err) = (cursor.int()?, cursor.long()?, cursor.int()?);
        if got != xid {
            return Err(broken(format!("reply to xid {got}, expected {xid}")));
        }
        let body = cursor.0.to_vec();
        Ok((err, body))
    }

    fn send_sync(&mut self, path: &str) -> Result<i32, Error> {
        let xid = self.next_xid();
        let mut frame = Frame::new();
        frame
            .int(xid)
            .int(op::SYNC)
            .buffer(self.target.server_path(path).as_bytes());
        self.writer.write_all(&frame.finish())?;
        Ok(xid)
    }

    fn sync_reply(&mut self, xid: i32) -> Result<(), Error> {
        match self.reply(xid, SMALL_FRAME)? {
            (0, _) => Ok(()),
            (err, _) => Err(broken(format!("sync failed ({err})"))),
        }
    }

    /// Asks the server to catch up with the leader on `path` (before the reads that follow),
    /// then reads every znode of `nodes`, with up to [`WINDOW`] requests on the wire.
    pub(crate) fn sync_and_get_all(
        &mut self,
        sync: &str,
        nodes: &[String],
    ) -> Result<Vec<Read1>, Error> {
        let sync_xid = self.send_sync(sync)?;
        let first = self.xid + 1;
        let mut sent = 0;
        let send = |conn: &mut Conn, upto: usize, sent: &mut usize| -> Result<(), Error> {
            while *sent < upto {
                let xid = conn.next_xid();
                let mut frame = Frame::new();
                frame
                    .int(xid)
                    .int(op::GET_DATA)
                    .buffer(conn.target.server_path(&nodes[*sent]).as_bytes())
                    .bool(false);
                conn.writer.write_all(&frame.finish())?;
                *sent += 1;
            }
            conn.writer.flush()
        };
        send(self, nodes.len().min(WINDOW), &mut sent)?;
        self.sync_reply(sync_xid)?;
        let mut out = Vec::with_capacity(nodes.len());
        for i in 0..nodes.len() {
            // Keep the window full, half a window at a time (one write each).
            if sent < nodes.len() && sent - i <= WINDOW / 2 {
                send(self, nodes.len().min(sent + WINDOW / 2), &mut sent)?;
            }
            let xid = first + i32::try_from(i).map_err(|_| broken("too many reads"))?;
            let (err, body) = self.reply(xid, self.data_limit(1))?;
            out.push(if err == 0 {
                let mut cursor = Cursor(&body);
                let data = cursor.buffer()?;
                cursor.stat()?;
                Ok(data)
            } else {
                Err(err)
            });
        }
        Ok(out)
    }

    /// Like [`sync_and_get_all`](Self::sync_and_get_all), as `multiRead` requests (ZooKeeper
    /// 3.6 and later) of at most `per_request` znodes each, up to [`MULTI_WINDOW`] on the wire.
    ///
    /// The server builds each reply whole in its heap, so a reply is kept to about
    /// [`REPLY_BUDGET`] bytes: the first requests are small, and each next one holds as many
    /// znodes as the budget allows at the largest value seen so far (at most `per_request`,
    /// at most twice the previous one, and at most [`REQUEST_BUDGET`] bytes of paths).
    pub(crate) fn sync_and_multi_read(
        &mut self,
        sync: &str,
        nodes: &[String],
        per_request: usize,
    ) -> Result<Vec<Read1>, Error> {
        let sync_xid = self.send_sync(sync)?;
        let mut batches = std::collections::VecDeque::new();
        let mut next = 0;
        let mut size = FIRST_MULTI.min(per_request.max(1));
        let mut largest = 0usize;
        let mut out = Vec::with_capacity(nodes.len());
        let mut synced = false;
        loop {
            while batches.len() < MULTI_WINDOW && next < nodes.len() {
                let (xid, n) = self.send_multi_read(&nodes[next..], size)?;
                batches.push_back((xid, n));
                next += n;
            }
            self.writer.flush()?;
            if !synced {
                self.sync_reply(sync_xid)?;
                synced = true;
            }
            let Some((xid, n)) = batches.pop_front() else {
                return Ok(out);
            };
            let (err, body) = self.reply(xid, self.data_limit(n))?;
            if err != 0 {
                return Err(broken(format!("multiRead failed ({err})")));
            }
            let mut cursor = Cursor(&body);
            for _ in 0..n {
                let (kind, done, err) = (cursor.int()?, cursor.bool()?, cursor.int()?);
                if done {
                    return Err(broken("multiRead answered fewer reads than asked"));
                }
                match kind {
                    op::GET_DATA => {
                        let data = cursor.buffer()?;
                        cursor.stat()?;
                        largest = largest.max(data.len());
                        out.push(Ok(data));
                    }
                    op::ERROR => {
                        let code = cursor.int()?;
                        out.push(Err(if code != 0 { code } else { err }));
                    }
                    other => return Err(broken(format!("multiRead result of type {other}"))),
                }
            }
            let (_, done, _) = (cursor.int()?, cursor.bool()?, cursor.int()?);
            if !done {
                return Err(broken("multiRead answered more reads than asked"));
            }
            let fits = REPLY_BUDGET / (largest + PER_RESULT);
            size = fits.min(size * 2).min(per_request).max(1);
        }
    }

    /// Writes one `multiRead` of up to `size` znodes from the start of `nodes` (fewer if their
    /// paths pass [`REQUEST_BUDGET`]; at least one); returns its xid and how many it asked for.
    fn send_multi_read(&mut self, nodes: &[String], size: usize) -> Result<(i32, usize), Error> {
        let xid = self.next_xid();
        let mut frame = Frame::new();
        frame.int(xid).int(op::MULTI_READ);
        let mut n = 0;
        for node in nodes.iter().take(size) {
            if n > 0 && frame.0.len() + node.len() > REQUEST_BUDGET {
                break;
            }
            frame
                .int(op::GET_DATA)
                .bool(false)
                .int(-1)
                .buffer(self.target.server_path(node).as_bytes())
                .bool(false);
            n += 1;
        }
        frame.int(-1).bool(true).int(-1);
        self.writer.write_all(&frame.finish())?;
        Ok((xid, n))
    }

    /// Ends the session at once (rather than at its timeout), waiting a little for the
    /// server's answer, so that its connection is gone before the load returns.
    pub(crate) fn close(mut self) {
        self.timeout = self.timeout.min(Duration::from_millis(500));
        let xid = self.next_xid();
        let mut frame = Frame::new();
        frame.int(xid).int(op::CLOSE_SESSION);
        if self.writer.write_all(&frame.finish()).is_ok() && self.writer.flush().is_ok() {
            let _ = self.reply(xid, SMALL_FRAME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_strings_parse_as_the_client_parses_them() {
        let t = Target::parse("a:1,b:2/app/x");
        assert_eq!(t.hosts, ["a:1", "b:2"]);
        assert_eq!(t.chroot.as_deref(), Some("/app/x"));
        assert_eq!(t.server_path("/"), "/app/x");
        assert_eq!(t.server_path("/k"), "/app/x/k");
        let t = Target::parse("a:1/");
        assert_eq!(t.chroot, None);
        assert_eq!(t.server_path("/k"), "/k");
        assert_eq!(Target::parse("a:1").hosts, ["a:1"]);
    }
}
