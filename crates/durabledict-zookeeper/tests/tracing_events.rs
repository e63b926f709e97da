//! The ZooKeeper store's `tracing` events (target `durabledict::zookeeper`,
//! docs/observability.md) across a real server restart past the session timeout: the lost
//! connection reported once, the session replaced, and the new session established.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Raw};
use durabledict_test_servers::{Capture, ZooKeeper};
use durabledict_zookeeper::ZooKeeperStore;

const TARGET: &str = "durabledict::zookeeper";

const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits up to `bound` for `check`.
fn eventually(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restart_past_the_session_timeout_replaces_the_session_once() {
    let capture = Capture::install();
    let mut zk = ZooKeeper::start().unwrap();
    let store = ZooKeeperStore::builder(zk.connect_string(), "/tracing")
        .session_timeout(SESSION_TIMEOUT)
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    dict.insert("k", "v".into()).unwrap();
    eventually("connected", Duration::from_secs(10), || {
        capture.count("DEBUG", TARGET, "connected") >= 1
    });
    assert_eq!(capture.count("WARN", TARGET, ""), 0, "{}", capture.dump());

    zk.stop();
    eventually("the session is replaced", SESSION_TIMEOUT * 10, || {
        capture.count("WARN", TARGET, "session replaced") == 1
    });
    let down = capture.dump();
    assert_eq!(
        capture.count("WARN", TARGET, "lost the connection"),
        1,
        "one warning for the outage, however often the client reports it:\n{down}"
    );
    assert_eq!(capture.count("INFO", TARGET, ""), 0, "{down}");

    zk.restart().unwrap();
    eventually("the new session is up", Duration::from_secs(30), || {
        capture.count("INFO", TARGET, "session re-established") == 1
    });
    eventually("reads succeed again", Duration::from_secs(10), || {
        dict.get("k").is_ok_and(|v| v.is_some())
    });
    let log = capture.dump();
    assert_eq!(
        capture.count("WARN", TARGET, "session replaced"),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count("WARN", TARGET, "lost the connection"),
        1,
        "{log}"
    );
}
