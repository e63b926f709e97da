//! The ZooKeeper store's `tracing` events (target `durabledict::zookeeper`,
//! docs/observability.md) across a real server restart past the session timeout: the lost
//! connection reported once, the session replaced, and the new session established.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Raw};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

const TARGET: &str = "durabledict::zookeeper";

const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// A `tracing` subscriber that keeps every event as one line: `LEVEL target field=value …`.
/// Installed globally, since the events of interest come from the store's own threads.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

impl Capture {
    /// Installs a new capture as the process's subscriber (one per test binary).
    fn install() -> Capture {
        let capture = Capture::default();
        tracing::subscriber::set_global_default(capture.clone()).unwrap();
        capture
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The events of `level` under `target` whose text contains `text`.
    fn count(&self, level: &str, target: &str, text: &str) -> usize {
        let prefix = format!("{level} {target} ");
        self.lines()
            .iter()
            .filter(|line| line.starts_with(&prefix) && line.contains(text))
            .count()
    }

    fn dump(&self) -> String {
        self.lines().join("\n")
    }
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = format!("{} {} ", meta.level(), meta.target());
        event.record(&mut Fields(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

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
