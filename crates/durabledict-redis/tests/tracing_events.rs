//! The Redis store's `tracing` events (target `durabledict::redis`, docs/observability.md)
//! across a real server restart: the outage reported once, the reconnection, the restart
//! (another `run_id`), and the change feed lost and regained.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Raw, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{Capture, RedisServer};

const TARGET: &str = "durabledict::redis";

/// Waits up to `bound` for `check`.
fn eventually(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_is_reported_once_with_the_reconnection_and_the_feed() {
    let capture = Capture::install();
    let mut server = RedisServer::start().unwrap();
    let store = RedisStore::open(&server.url(), "tracing:").unwrap();
    let dict = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
    dict.insert("k", "v".into()).unwrap();
    eventually("the feed is up", Duration::from_secs(10), || {
        capture.count("INFO", TARGET, "change feed up") == 1
    });
    assert_eq!(capture.count("WARN", TARGET, ""), 0, "{}", capture.dump());

    server.stop();
    eventually("the feed is lost", Duration::from_secs(20), || {
        capture.count("WARN", TARGET, "change feed lost") == 1
    });
    // Several reads while the server is down: each fails, the outage is reported once.
    for _ in 0..5 {
        assert!(dict.get("k").is_err());
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
    assert_eq!(capture.count("INFO", TARGET, "reconnected"), 0);

    server.restart().unwrap();
    eventually("reads succeed again", Duration::from_secs(20), || {
        dict.get("k").is_ok()
    });
    eventually("the feed is back", Duration::from_secs(20), || {
        capture.count("INFO", TARGET, "change feed up") == 2
    });
    let log = capture.dump();
    assert_eq!(capture.count("INFO", TARGET, "reconnected"), 1, "{log}");
    assert_eq!(
        capture.count("WARN", TARGET, "the server restarted (another run_id)"),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count("WARN", TARGET, "lost the connection"),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count("WARN", TARGET, "change feed lost"),
        1,
        "{log}"
    );
}
