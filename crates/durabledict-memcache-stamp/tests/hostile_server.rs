//! The stamp against a hostile "memcached" whose `stats` reply never ends or grows without
//! bound. A reproduction of a review finding, fixed: the identity read on each new connection
//! had no deadline for the whole exchange and no cap on line length or count.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use durabledict_core::{Stamp, StoreErrorKind};
use durabledict_memcache_stamp::MemcacheStamp;

/// A "memcached" that answers `stats` with a reply that never ends: a `STAT` line every
/// 100 ms, never `END`. Each read returns within the socket's timeout, so only a deadline for
/// the whole exchange (`io_timeout`, as for the meta commands) ends it.
#[test]
fn a_stats_reply_that_never_ends_fails_within_the_io_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                for i in 0u64.. {
                    if stream
                        .write_all(format!("STAT pid {i}\r\n").as_bytes())
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    });
    let stamp = MemcacheStamp::builder(addr)
        .keyspace("review")
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(stamp.get().is_err());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(failed) => assert!(failed, "a server that never finishes stats is not a stamp"),
        Err(_) => panic!(
            "the stamp check still waits on the stats reply after {:?} (io_timeout 500 ms)",
            started.elapsed()
        ),
    }
}

/// A "memcached" on 127.0.0.1 that answers the first request on each connection (`stats`)
/// with `reply`, as fast as the client reads, and every later one with a miss (`EN`).
fn fake_server(reply: fn() -> Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(&reply());
                while let Ok(1..) = stream.read(&mut buf) {
                    let _ = stream.write_all(b"EN\r\n");
                }
            });
        }
    });
    addr
}

/// A `stats` reply over the caps (a line over 4 KiB, more than 1024 lines) is refused at once,
/// as the unavailable server it is, and changes the epoch like any failed request.
#[test]
fn stats_replies_over_the_caps_are_unavailable_and_change_the_epoch() {
    let long_line = || {
        let mut reply = b"STAT pid ".to_vec();
        reply.resize(64 * 1024, b'1');
        reply
    };
    let many_lines = || {
        let mut reply = b"STAT pid 1\r\nSTAT uptime 5\r\nSTAT time 9\r\n".repeat(400);
        reply.extend_from_slice(b"END\r\n");
        reply
    };
    for reply in [long_line as fn() -> Vec<u8>, many_lines] {
        let stamp = MemcacheStamp::builder(fake_server(reply))
            .keyspace("review")
            .io_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let before = stamp.epoch();
        let started = Instant::now();
        let error = stamp.get().unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused without waiting"
        );
        assert_ne!(stamp.epoch(), before, "a refused server changes the epoch");
    }
}

/// Within the caps, a `stats` reply of a thousand lines is fine.
#[test]
fn a_long_stats_reply_within_the_caps_is_read() {
    let reply = || {
        let mut reply = b"STAT pid 1\r\nSTAT uptime 5\r\nSTAT time 9\r\n".to_vec();
        reply.extend_from_slice(&b"STAT other 1\r\n".repeat(1000));
        reply.extend_from_slice(b"END\r\n");
        reply
    };
    let stamp = MemcacheStamp::builder(fake_server(reply))
        .keyspace("review")
        .io_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let epoch = stamp.epoch();
    assert_eq!(stamp.get().unwrap(), None);
    assert_eq!(stamp.epoch(), epoch);
}
