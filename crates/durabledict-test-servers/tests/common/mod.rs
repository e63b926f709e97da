//! Raw protocol exchanges, so the smoke tests need no client crate.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sends `request` to 127.0.0.1:`port` and reads until the reply contains `until` (or the peer
/// closes).
pub fn talk(port: u16, request: &str, until: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = Vec::new();
    let mut buf = [0; 4096];
    while !String::from_utf8_lossy(&reply).contains(until) {
        match stream.read(&mut buf).expect("receive") {
            0 => break,
            n => reply.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Whether nothing listens on 127.0.0.1:`port` any more (waiting a little for it to go).
pub fn is_closed(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => return true,
            _ if Instant::now() > deadline => return false,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Runs a client command line and returns its standard output, failing on a non-zero exit.
pub fn run(command: &mut Command) -> String {
    let output = command.output().expect("run the client");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs `start` and prints how long it took (visible with `--nocapture`).
pub fn timed<T>(what: &str, start: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = start();
    eprintln!("{what} took {:?}", started.elapsed());
    value
}
