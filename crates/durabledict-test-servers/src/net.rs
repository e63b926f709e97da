//! Free loopback ports and raw protocol exchanges used as readiness checks.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::error::{Result, ServerError};

/// A TCP port on 127.0.0.1 that nothing listens on right now.
///
/// The port is only free when this returns: another process may take it before the server
/// binds it. Starting a server retries on a new port when that happens.
///
/// ```
/// let port = durabledict_test_servers::free_port()?;
/// assert_ne!(port, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// How many different ports a server start tries before giving up.
const PORT_ATTEMPTS: usize = 4;

/// Calls `start` with fresh free ports (`count` of them) until it does not fail because a port
/// was taken.
pub(crate) fn with_free_ports<T>(
    server: &'static str,
    count: usize,
    mut start: impl FnMut(&[u16]) -> Result<T>,
) -> Result<T> {
    let mut attempt = 1;
    loop {
        let ports = distinct_free_ports(count)
            .map_err(|e| ServerError::io(server, "find a free loopback port", e))?;
        match start(&ports) {
            Err(e) if e.is_port_in_use() && attempt < PORT_ATTEMPTS => attempt += 1,
            result => return result,
        }
    }
}

fn distinct_free_ports(count: usize) -> io::Result<Vec<u16>> {
    // Holding every listener until all are picked keeps the ports distinct.
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// Sends `request` to 127.0.0.1:`port` and reads until `done` accepts what arrived, or the
/// peer closes. Short timeouts: this is a probe.
pub(crate) fn exchange(
    port: u16,
    request: &[u8],
    done: impl Fn(&[u8]) -> bool,
) -> io::Result<Vec<u8>> {
    let timeout = Duration::from_millis(1000);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&response) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
    }
    Ok(response)
}

/// Whether `haystack` contains `needle`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
