//! Saying why a `rediss://` connection failed before it was up: the client's own words
//! ("Resource temporarily unavailable (os error 11)" after the connect timeout) do not tell
//! that the TLS handshake got no answer, nor why.
//!
//! The common cause is a URL that says `rediss://` for a server that speaks plain text on that
//! port: it takes the TLS hello for the start of a command and waits for the rest, so the
//! handshake times out (or, when the hello happens to hold a newline, the server answers an
//! error that TLS cannot parse). On that error path only, one plain `PING` on a new TCP
//! connection tells the two apart.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use durabledict_core::{StoreError, StoreErrorKind};
use redis::RedisError;

use crate::error::{io_error, kind_of, rustls_error, store_error};

/// Makes sure rustls has a crypto provider before a TLS connection is opened: the `redis`
/// client (1.8) builds its rustls configuration with `ClientConfig::builder()`, which takes the
/// process-wide default and offers no way to pass one. So, only when the program has installed
/// none by the time a `rediss://` store first connects, ring's is installed (the one this
/// crate's `tls` feature compiles in). A program that wants another installs it before then;
/// a store that never opens a TLS connection changes nothing.
pub(crate) fn ensure_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails, harmlessly, when another thread installed one meanwhile.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The TLS handshake with the server failed; why, in words.
#[derive(Debug)]
struct Handshake {
    addr: String,
    why: String,
    source: Option<RedisError>,
}

impl std::fmt::Display for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the TLS handshake with {} failed: {}",
            self.addr, self.why
        )
    }
}

impl std::error::Error for Handshake {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

/// The error of a failed connect to `host:port` over TLS, said as a failed handshake where it
/// is one; any other error (refused: the server is down) as it is.
pub(crate) fn connect_error(
    host: &str,
    port: u16,
    timeout: Duration,
    error: RedisError,
) -> StoreError {
    let addr = format!("{host}:{port}");
    let plain = || speaks_plain_text(host, port, timeout);
    let plain_why = "the server there answers in plain text, without TLS (use redis://, or the \
                     port the server listens on with tls-port)";
    if let Some(tls) = rustls_error(&error) {
        let certificate = matches!(
            tls,
            rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::AlertReceived(_)
        );
        let why = if !certificate && plain() {
            plain_why.to_owned()
        } else {
            // The rustls error says it all; the client's error only wraps it.
            tls.to_string()
        };
        let handshake = Handshake {
            addr,
            why,
            source: None,
        };
        return StoreError::new(StoreErrorKind::Rejected, handshake);
    }
    // A read timeout: the TCP connection was up (a connect that timed out is `TimedOut`).
    let no_answer = io_error(&error).is_some_and(|io| io.kind() == std::io::ErrorKind::WouldBlock);
    if !no_answer {
        return store_error(error);
    }
    let (kind, why) = if plain() {
        (StoreErrorKind::Rejected, plain_why.to_owned())
    } else {
        (
            kind_of(&error),
            format!(
                "no answer within the connect timeout ({timeout:?}), to the handshake or to \
                 the set-up after it; a server that does not speak TLS on that port keeps \
                 waiting"
            ),
        )
    };
    let handshake = Handshake {
        addr,
        why,
        source: Some(error),
    };
    StoreError::new(kind, handshake)
}

/// Whether a plain `PING` to `host:port` is answered as a Redis server answers.
fn speaks_plain_text(host: &str, port: u16, timeout: Duration) -> bool {
    let answer = || -> std::io::Result<Vec<u8>> {
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or(std::io::ErrorKind::NotFound)?;
        let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0; 64];
        let n = stream.read(&mut reply)?;
        Ok(reply[..n].to_vec())
    };
    // `+PONG`, or an error reply such as `-NOAUTH`: a Redis server speaking RESP in clear.
    answer().is_ok_and(|reply| reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH"))
}
