//! The memcached stamp against a real memcached.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use durabledict_core::{Stamp, StoreErrorKind, clock_seed};
use durabledict_memcache_stamp::MemcacheStamp;
use durabledict_test_servers::Memcached;

/// One memcached for the tests that do not restart it.
fn shared() -> &'static Memcached {
    static SERVER: OnceLock<Memcached> = OnceLock::new();
    SERVER.get_or_init(|| {
        Memcached::start().unwrap_or_else(|e| panic!("cannot start memcached: {e}"))
    })
}

fn stamp_on(server: &Memcached, keyspace: &str) -> MemcacheStamp {
    MemcacheStamp::builder(server.url())
        .keyspace(keyspace)
        .build()
        .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", clock_seed())
}

/// Sends raw protocol text and returns the reply up to `until`.
fn raw(server: &Memcached, request: &str, until: &str) -> String {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0; 1024];
    while !String::from_utf8_lossy(&reply).contains(until) {
        match stream.read(&mut buf).unwrap() {
            0 => break,
            n => reply.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn missing_then_seeded_from_the_clock_then_incremented() {
    let stamp = stamp_on(shared(), &unique("basic"));
    assert_eq!(stamp.get().unwrap(), None);
    let before = clock_seed();
    let first = stamp.bump().unwrap();
    assert!(
        first >= before,
        "a re-created stamp is seeded from the clock"
    );
    assert_eq!(stamp.get().unwrap(), Some(first));
    assert_eq!(stamp.bump().unwrap(), first + 1);
    // Another handle on the same key (another process) shares it.
    let other = stamp.clone();
    assert_eq!(other.bump().unwrap(), first + 2);
    assert_eq!(stamp.get().unwrap(), Some(first + 2));
}

#[test]
fn values_are_python_integers_without_expiry() {
    let server = shared();
    let stamp = stamp_on(server, &unique("python"));
    let value = stamp.bump().unwrap();
    let reply = raw(server, &format!("get {}\r\n", stamp.key()), "END\r\n");
    let text = value.to_string();
    assert_eq!(
        reply,
        format!(
            "VALUE {} 2 {}\r\n{text}\r\nEND\r\n",
            stamp.key(),
            text.len()
        ),
        "decimal text with python-memcached's integer flag"
    );
    // A stamp written by Python (flag 2, as python-memcached and pymemcache store an int) reads.
    let django = MemcacheStamp::builder(server.url())
        .key(unique(":1:last_updated"))
        .build()
        .unwrap();
    raw(
        server,
        &format!("set {} 2 0 2\r\n41\r\n", django.key()),
        "\r\n",
    );
    assert_eq!(django.get().unwrap(), Some(41));
    assert_eq!(django.bump().unwrap(), 42);
}

#[test]
fn a_value_that_is_not_a_number_is_corrupt() {
    let server = shared();
    let stamp = stamp_on(server, &unique("corrupt"));
    raw(
        server,
        &format!("set {} 1 0 3\r\nabc\r\n", stamp.key()),
        "\r\n",
    );
    assert_eq!(stamp.get().unwrap_err().kind(), StoreErrorKind::Corrupt);
    assert_eq!(stamp.bump().unwrap_err().kind(), StoreErrorKind::Corrupt);
    // The connection stays usable after memcached's error reply.
    assert!(stamp.delete().unwrap());
    assert_eq!(stamp.get().unwrap(), None);
}

#[test]
fn concurrent_re_creation_never_hands_out_a_value_twice() {
    let stamp = stamp_on(shared(), &unique("race"));
    let old = stamp.bump().unwrap();
    for _ in 0..5 {
        stamp.delete().unwrap();
        let handles: Vec<Vec<i64>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    // Each thread is its own process: its own connections.
                    let mine = MemcacheStamp::builder(shared().url())
                        .key(stamp.key())
                        .build()
                        .unwrap();
                    s.spawn(move || (0..5).map(|_| mine.bump().unwrap()).collect())
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut all: Vec<i64> = handles.into_iter().flatten().collect();
        all.sort_unstable();
        let n = all.len();
        all.dedup();
        assert_eq!(all.len(), n, "every bump returns a distinct value");
        assert!(
            all[0] > old,
            "a re-created stamp is past every earlier value"
        );
        assert_eq!(stamp.get().unwrap(), all.last().copied());
    }
}

#[test]
fn restart_loses_the_stamp_and_the_next_command_reconnects() {
    let mut server = Memcached::start().unwrap();
    let stamp = stamp_on(&server, "restart");
    let before = stamp.bump().unwrap();
    assert_eq!(stamp.get().unwrap(), Some(before));

    server.stop();
    let error = stamp.get().unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert_eq!(
        stamp.bump().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );

    server.restart().unwrap();
    // Its pooled connections are dead; the first command after the restart still succeeds.
    assert_eq!(stamp.get().unwrap(), None, "a restarted memcached is empty");
    let after = stamp.bump().unwrap();
    assert!(
        after > before,
        "re-created past the old value ({before} -> {after})"
    );

    // A restart between two commands of a live connection: the same.
    let live = stamp.clone();
    assert_eq!(live.get().unwrap(), Some(after));
    server.restart().unwrap();
    assert_eq!(live.get().unwrap(), None);
}

#[test]
fn refused_and_silent_servers_are_unavailable_within_the_timeout() {
    // Nothing listens on a port just freed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = MemcacheStamp::builder(format!("127.0.0.1:{port}"))
        .key("k")
        .build()
        .unwrap();
    assert_eq!(
        refused.get().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );

    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let stamp = MemcacheStamp::builder(addr.to_string())
        .key("k")
        .io_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = stamp.get().unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}
