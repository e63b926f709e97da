//! What a dict reports through `tracing` (and, with the `metrics` feature, `metrics`).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use durabledict_core::{DurableDict, FeedHealth, MemoryStore, Raw, StoreErrorKind, SyncPolicy};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Collects what the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Runs `f` with a subscriber that records everything at `trace` and above, span closes
/// included; returns what it wrote.
fn traced(f: impl FnOnce()) -> String {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    captured.text()
}

#[test]
fn a_reload_is_a_span_with_its_figures() {
    let store = MemoryStore::new();
    store.write_unstamped("a", b"1");
    store.write_unstamped("b", b"22");
    let log = traced(|| {
        DurableDict::<String>::builder(store.clone(), Raw)
            .name("flags")
            .build()
            .unwrap();
    });
    let close = log
        .lines()
        .find(|line| line.contains("reload") && line.contains("close"))
        .unwrap_or_else(|| panic!("no reload span closed in:\n{log}"));
    for field in [
        "keyspace=flags",
        "keys=2",
        "bytes=3",
        "stamp_before=None",
        "stamp_after=Some(1)",
        "duration_ms=",
    ] {
        assert!(close.contains(field), "{field} missing from {close}");
    }
    assert!(close.contains("durabledict::dict"), "{close}");
}

#[test]
fn failures_stale_reads_and_recovery_are_reported() {
    let store = MemoryStore::new();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .name("flags")
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    dict.insert("k", "v".into()).unwrap();
    let log = traced(|| {
        store.set_available(false);
        for _ in 0..3 {
            assert_eq!(
                dict.get("k").unwrap().as_deref().map(String::as_str),
                Some("v")
            );
        }
        let status = dict.status();
        assert!(status.serving_stale);
        let failure = status.last_failure.unwrap();
        assert_eq!(failure.kind, StoreErrorKind::Unavailable);
        store.set_available(true);
        dict.get("k").unwrap();
        assert!(!dict.status().serving_stale);
    });
    let warns: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(
        warns.len(),
        1,
        "one warning per outage, not per read:\n{log}"
    );
    assert!(warns[0].contains("store error"), "{}", warns[0]);
    assert_eq!(log.matches("served stale").count(), 3, "{log}");
    assert!(log.contains("age_ms="), "{log}");
    assert!(log.contains("the store answers again"), "{log}");
    // The outage may have been a restart: the dict says why it reloads.
    assert!(log.contains("may have restarted"), "{log}");
}

#[test]
fn an_undecodable_value_names_its_key() {
    let store = MemoryStore::new();
    store.write_unstamped("bad", &[0xff]);
    let log = traced(|| {
        DurableDict::<String>::builder(store.clone(), Raw)
            .build()
            .unwrap();
    });
    let line = log
        .lines()
        .find(|l| l.contains("undecodable value"))
        .unwrap_or_else(|| panic!("no undecodable event in:\n{log}"));
    assert!(line.contains("key=\"bad\""), "{line}");
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn own_writes_say_which_path_they_took() {
    let store = MemoryStore::new();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    let other = DurableDict::<String>::builder(store, Raw).build().unwrap();
    let log = traced(|| {
        dict.insert("a", "1".into()).unwrap();
        other.insert("b", "2".into()).unwrap();
        dict.insert("c", "3".into()).unwrap();
    });
    let writes: Vec<&str> = log.lines().filter(|l| l.contains("own write")).collect();
    assert_eq!(writes.len(), 3, "{log}");
    assert!(writes[0].contains("path=\"fast\"") && writes[0].contains("key=\"a\""));
    assert!(writes[2].contains("path=\"reload\"") && writes[2].contains("key=\"c\""));
}

#[test]
fn the_read_path_reports_nothing_while_the_cache_answers() {
    let store = MemoryStore::new();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    dict.insert("k", "v".into()).unwrap();
    let log = traced(|| {
        for _ in 0..100 {
            dict.get("k").unwrap();
        }
    });
    assert!(log.is_empty(), "{log}");
}

#[test]
fn status_tells_the_feed_state() {
    let store = MemoryStore::with_feed();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
    assert_eq!(dict.status().feed, FeedHealth::Healthy);
    store.cut_feed();
    assert_eq!(dict.status().feed, FeedHealth::Polling);
    store.restore_feed();
    assert_eq!(dict.status().feed, FeedHealth::Healthy);
    let plain = DurableDict::<String>::builder(store, Raw).build().unwrap();
    assert_eq!(plain.status().feed, FeedHealth::None);
}

#[cfg(feature = "metrics")]
#[test]
fn metrics_move_as_documented() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let store = MemoryStore::new();
        let dict = DurableDict::<String>::builder(store.clone(), Raw)
            .name("flags")
            .build()
            .unwrap();
        let other = DurableDict::<String>::builder(store.clone(), Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .unwrap();
        dict.insert("a", "1".into()).unwrap(); // fast
        for _ in 0..5 {
            dict.get("a").unwrap();
        }
        other.insert("b", "2".into()).unwrap();
        dict.get("b").unwrap(); // reload
        dict.insert("c", "3".into()).unwrap(); // fast again
        store.set_available(false);
        assert!(dict.get("a").is_err());
        store.set_available(true);
    });
    type Labels = Vec<(String, String)>;
    let values: Vec<(String, Labels, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.key().name().to_owned(), labels, value)
        })
        .collect();
    let counter = |name: &str, extra: &[(&str, &str)]| -> u64 {
        values
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && labels.contains(&("keyspace".into(), "flags".into()))
                    && extra
                        .iter()
                        .all(|(k, v)| labels.contains(&((*k).into(), (*v).into())))
            })
            .map(|(_, _, value)| match value {
                DebugValue::Counter(c) => *c,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    };
    assert_eq!(counter("durabledict_reads_total", &[]), 7);
    assert_eq!(counter("durabledict_stamp_checks_total", &[]), 7);
    assert_eq!(
        counter("durabledict_reloads_total", &[]),
        2,
        "the build, then b"
    );
    assert_eq!(
        counter("durabledict_own_writes_total", &[("path", "fast")]),
        2
    );
    assert_eq!(
        counter(
            "durabledict_errors_total",
            &[("op", "stamp check"), ("kind", "unavailable")]
        ),
        1
    );
    assert!(
        values
            .iter()
            .any(|(n, labels, v)| n == "durabledict_reload_seconds"
                && labels.contains(&("keyspace".into(), "flags".into()))
                && matches!(v, DebugValue::Histogram(h) if h.len() == 2)),
        "{values:?}"
    );
    assert!(
        values
            .iter()
            .any(|(n, _, v)| n == "durabledict_last_sync_timestamp_seconds"
                && matches!(v, DebugValue::Gauge(g) if g.into_inner() > 1.0e9))
    );
}
