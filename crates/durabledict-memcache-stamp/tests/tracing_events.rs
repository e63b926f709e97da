//! The memcached stamp's `tracing` events (target `durabledict::memcache`,
//! docs/observability.md) across a real restart: the outage reported once, the reconnection,
//! and the restarted server (another pid or start time) that bumps the epoch.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use durabledict_core::Stamp;
use durabledict_memcache_stamp::MemcacheStamp;
use durabledict_test_servers::{Capture, Memcached};

const TARGET: &str = "durabledict::memcache";

/// Waits up to `bound` for `check`.
fn eventually(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_is_reported_once_with_the_reconnection_and_the_lost_continuity() {
    let capture = Capture::install();
    let mut server = Memcached::start().unwrap();
    let stamp = MemcacheStamp::builder(server.url())
        .key("tracing_stamp")
        .build()
        .unwrap();
    stamp.bump().unwrap();
    stamp.get().unwrap();
    assert_eq!(capture.count("WARN", TARGET, ""), 0, "{}", capture.dump());
    assert!(capture.count("DEBUG", TARGET, "new connection") >= 1);

    server.stop();
    for _ in 0..5 {
        assert!(stamp.get().is_err());
    }
    assert_eq!(
        capture.count("WARN", TARGET, "lost the connection"),
        1,
        "{}",
        capture.dump()
    );
    assert!(
        capture.count("DEBUG", TARGET, "still unreachable") >= 4,
        "{}",
        capture.dump()
    );
    let epoch = stamp.epoch();

    server.restart().unwrap();
    eventually("the stamp answers again", Duration::from_secs(20), || {
        stamp.get().is_ok()
    });
    let log = capture.dump();
    assert_eq!(capture.count("INFO", TARGET, "reconnected"), 1, "{log}");
    assert_eq!(
        capture.count("WARN", TARGET, "memcached restarted"),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count("WARN", TARGET, "lost the connection"),
        1,
        "{log}"
    );
    assert!(stamp.epoch() > epoch, "the restart bumps the epoch");
}
