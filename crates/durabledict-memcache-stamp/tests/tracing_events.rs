//! The memcached stamp's `tracing` events (target `durabledict::memcache`,
//! docs/observability.md) across a real restart: the outage reported once, the reconnection,
//! and the restarted server (another pid or start time) that bumps the epoch.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use durabledict_core::Stamp;
use durabledict_memcache_stamp::MemcacheStamp;
use durabledict_test_servers::Memcached;
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

const TARGET: &str = "durabledict::memcache";

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
