//! Properties of pushed freshness ([`SyncPolicy::Watch`]) and change listeners. They hold for
//! every store: on one without a feed `Watch` is `Always`, and listeners are kept current by
//! polling. What only a store with a feed promises (no I/O between changes) is checked when
//! the fixture declares one ([`Capabilities::feed`](crate::Capabilities::feed)).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durabledict_core::{Call, DurableDict, Event, Layer, Layered, Raw, StoreError, SyncPolicy};

use crate::fixture::{Fixture, Visibility};
use crate::harness::{Keyspace, read};

/// How long the suite waits for a change when the fixture names no bound.
const DEFAULT_BOUND: Duration = Duration::from_secs(5);

/// Counts stamp checks.
#[derive(Debug)]
struct CountChecks(Arc<AtomicUsize>);

impl Layer for CountChecks {
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if call == Call::LastUpdated {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        run()
    }
}

/// How long a change may take to reach a `Watch` dict on this fixture.
fn bound(ks: &Keyspace<'_>) -> Duration {
    let visibility = match ks.caps().visibility {
        Visibility::Immediate => Duration::ZERO,
        Visibility::Within(bound) => bound,
    };
    ks.caps().feed.unwrap_or(DEFAULT_BOUND).max(visibility)
}

/// Waits until `check` holds, for at most `bound`.
fn within(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A dict under `Watch` sees a change made by another handle once its notice arrived; on a
/// store with a feed, reads between changes then do no I/O.
pub fn watch_hears_changes(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let checks = Arc::new(AtomicUsize::new(0));
    let dict = DurableDict::<String>::builder(
        Layered::new(CountChecks(Arc::clone(&checks)), ks.store()),
        Raw,
    )
    .policy(SyncPolicy::Watch)
    .build()
    .expect("build");
    let other = ks.dict(SyncPolicy::Manual);
    for i in 0..5 {
        other.insert("k", i.to_string()).expect("insert");
        within(
            bound(&ks),
            "a Watch dict sees another handle's write",
            || read(&dict, "k") == Some(i.to_string()),
        );
    }
    // A write made through the bare store (no dict) is heard too.
    ks.store().persist("raw", b"bare").expect("persist");
    within(bound(&ks), "a Watch dict sees a bare store write", || {
        read(&dict, "raw").as_deref() == Some("bare")
    });
    if ks.caps().feed.is_some() {
        within(
            bound(&ks) + Duration::from_secs(1),
            "with a healthy feed, 100 reads make no stamp check",
            || {
                let before = checks.load(Ordering::SeqCst);
                for _ in 0..100 {
                    read(&dict, "k");
                }
                checks.load(Ordering::SeqCst) == before
            },
        );
    }
}

/// While the feed is cut, notices are lost, yet no read serves a value older than a write
/// that returned before it began: the dict checks the stamp, as under `Always`.
pub fn watch_is_never_stale_without_its_feed(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = ks.dict(SyncPolicy::Watch);
    let other = ks.dict(SyncPolicy::Manual);
    other.insert("k", "0".into()).expect("insert");
    within(bound(&ks), "the first write is seen", || {
        read(&dict, "k").as_deref() == Some("0")
    });
    let cut = fixture
        .cut_feed(ks.name())
        .unwrap_or_else(|e| panic!("cutting the feed of {}: {e}", ks.name()));
    let immediate = ks.caps().visibility == Visibility::Immediate;
    for i in 1..=20 {
        other.insert("k", i.to_string()).expect("insert");
        if immediate {
            // A write that returned is seen by the next read, feed or not.
            assert_eq!(
                read(&dict, "k"),
                Some(i.to_string()),
                "a stale read after the feed was cut: {cut}"
            );
        } else {
            within(bound(&ks), "a write is seen after the feed was cut", || {
                read(&dict, "k") == Some(i.to_string())
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A listener hears every change (own writes, another handle's, a bare store write), and
/// the state it builds from the events ends equal to the store.
pub fn listeners_converge(fixture: &dyn Fixture) {
    let ks = Keyspace::new(fixture);
    let dict = Arc::new(ks.dict(SyncPolicy::Watch));
    dict.insert("before", "x".into()).expect("insert");
    let events = dict.subscribe();
    let mut view: HashMap<String, String> = dict
        .snapshot()
        .expect("snapshot")
        .iter()
        .map(|(k, v)| (k.to_owned(), (**v).clone()))
        .collect();
    let other = ks.dict(SyncPolicy::Manual);
    dict.insert("own", "1".into()).expect("own insert");
    other.insert("foreign", "2".into()).expect("foreign insert");
    other.remove("before").expect("foreign remove");
    ks.store().persist("bare", b"3").expect("bare persist");
    dict.update([("own", "4".to_string()), ("batch", "5".to_string())])
        .expect("update");
    let expected: HashMap<String, String> = [
        ("own", "4"),
        ("foreign", "2"),
        ("bare", "3"),
        ("batch", "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let deadline = Instant::now() + bound(&ks) + DEFAULT_BOUND;
    while view != expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Changed(change)) => match change.new {
                Some(new) => view.insert(change.key.to_string(), (*new).clone()),
                None => view.remove(&*change.key),
            },
            Some(Event::Lagged) => panic!("a listener lagged on a handful of changes"),
            Some(_) => None,
            None => panic!("the listener's view {view:?} never reached {expected:?}"),
        };
    }
}
