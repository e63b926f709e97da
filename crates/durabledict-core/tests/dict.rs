//! The dict's own behaviour beyond the conformance suite: outages, serve-stale, policies,
//! single-flight reloads, status, and the fallback when a reload after a write fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use durabledict_core::{
    BoxError, DurableDict, Durables, Encoding, Error, MemoryStore, Op, Raw, StampValue, Store,
    StoreError, StoreErrorKind, SyncPolicy,
};

fn dict(store: &MemoryStore, policy: SyncPolicy) -> DurableDict<String> {
    DurableDict::builder(store.clone(), Raw)
        .policy(policy)
        .build()
        .expect("build")
}

fn value(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).expect("get").map(|v| (*v).clone())
}

#[test]
fn always_read_fails_while_the_store_is_down() {
    let store = MemoryStore::new();
    let d = dict(&store, SyncPolicy::Always);
    d.insert("k", "v".into()).expect("insert");
    store.set_available(false);
    match d.get("k") {
        Err(Error::Store {
            op: Op::Check,
            source,
            ..
        }) => {
            assert_eq!(source.kind(), StoreErrorKind::Unavailable);
        }
        other => panic!("expected a stamp check error, got {other:?}"),
    }
    let status = d.status();
    assert!(
        status
            .last_error
            .expect("error recorded")
            .1
            .contains("unavailable")
    );
    store.set_available(true);
    assert_eq!(value(&d, "k").as_deref(), Some("v"));
}

#[test]
fn serve_stale_is_opt_in_and_bounded() {
    let store = MemoryStore::new();
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .serve_stale_for(Duration::from_millis(300))
        .build()
        .expect("build");
    d.insert("k", "v".into()).expect("insert");
    assert_eq!(value(&d, "k").as_deref(), Some("v"));
    store.set_available(false);
    assert_eq!(
        value(&d, "k").as_deref(),
        Some("v"),
        "served stale within the bound"
    );
    assert!(d.status().last_error.is_some());
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        d.get("k").is_err(),
        "past the bound a failed check is an error"
    );
    store.set_available(true);
    assert_eq!(value(&d, "k").as_deref(), Some("v"));
}

#[test]
fn failed_writes_change_nothing() {
    let store = MemoryStore::new();
    let d = dict(&store, SyncPolicy::Always);
    d.insert("k", "old".into()).expect("insert");
    let stamp = d.last_updated().expect("stamp");
    store.fail_next(1);
    match d.insert("k", "new".into()) {
        Err(Error::Store {
            op: Op::Insert,
            key,
            ..
        }) => assert_eq!(key.as_deref(), Some("k")),
        other => panic!("expected an insert error naming the key, got {other:?}"),
    }
    store.fail_next(1);
    assert!(matches!(
        d.remove("k"),
        Err(Error::Store { op: Op::Remove, .. })
    ));
    store.fail_next(1);
    assert!(matches!(
        d.update([("a", "1".to_string()), ("k", "2".to_string())]),
        Err(Error::Store { op: Op::Update, .. })
    ));
    assert_eq!(value(&d, "k").as_deref(), Some("old"));
    assert_eq!(d.len().expect("len"), 1);
    assert_eq!(d.last_updated().expect("stamp"), stamp);
    assert_eq!(store.durables().expect("durables").entries.len(), 1);
}

/// An encoding that refuses one value, to check that a batch is all-or-nothing.
#[derive(Debug)]
struct RefusesPoison;

impl Encoding<String> for RefusesPoison {
    fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
        if value == "poison" {
            return Err("refusing poison".into());
        }
        Ok(value.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}

#[test]
fn a_batch_with_one_bad_value_writes_nothing() {
    let store = MemoryStore::new();
    let d = DurableDict::builder(store.clone(), RefusesPoison)
        .build()
        .expect("build");
    let result = d.update([
        ("a", "1".to_string()),
        ("b", "poison".to_string()),
        ("c", "3".to_string()),
    ]);
    match result {
        Err(Error::Encode { key, .. }) => assert_eq!(key, "b"),
        other => panic!("expected an encode error naming b, got {other:?}"),
    }
    assert!(store.durables().expect("durables").entries.is_empty());
    assert!(d.is_empty().expect("is_empty"));
}

#[test]
fn manual_reads_never_touch_the_store() {
    let store = MemoryStore::new();
    let d = dict(&store, SyncPolicy::Manual);
    d.insert("k", "v".into()).expect("insert");
    store.set_available(false);
    assert_eq!(value(&d, "k").as_deref(), Some("v"));
    assert!(d.sync().is_err(), "an explicit sync reports the outage");
    store.set_available(true);
    // The store may have restarted during the outage: the first sync after it reloads once.
    assert!(d.sync().expect("sync"));
    assert!(!d.sync().expect("sync"));
}

/// Counts stamp checks and loads, and can fail loads on demand.
#[derive(Debug)]
struct Probe {
    inner: MemoryStore,
    checks: Arc<AtomicUsize>,
    loads: Arc<AtomicUsize>,
    fail_loads: Arc<AtomicBool>,
}

impl Probe {
    fn new(inner: &MemoryStore) -> Self {
        Probe {
            inner: inner.clone(),
            checks: Arc::default(),
            loads: Arc::default(),
            fail_loads: Arc::default(),
        }
    }
}

impl Store for Probe {
    fn init(&self) -> Result<(), StoreError> {
        self.inner.init()
    }
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        self.inner.persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        self.inner.depersist(key)
    }
    fn durables(&self) -> Result<Durables, StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.fail_loads.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable("load refused by the test"));
        }
        // Slow loads make concurrent readers pile up behind the single flight.
        std::thread::sleep(Duration::from_millis(20));
        self.inner.durables()
    }
    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.inner.last_updated()
    }
    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        self.inner.pop(key)
    }
}

#[test]
fn concurrent_readers_reload_once() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let loads = Arc::clone(&probe.loads);
    let d = Arc::new(
        DurableDict::<String>::builder(probe, Raw)
            .build()
            .expect("build"),
    );
    let before = loads.load(Ordering::SeqCst);
    dict(&store, SyncPolicy::Always)
        .insert("k", "v".into())
        .expect("foreign write");
    std::thread::scope(|s| {
        for _ in 0..8 {
            let d = Arc::clone(&d);
            s.spawn(move || assert_eq!(value(&d, "k").as_deref(), Some("v")));
        }
    });
    assert_eq!(
        loads.load(Ordering::SeqCst) - before,
        1,
        "one reload for eight readers"
    );
    assert_eq!(d.status().reloads, 2);
}

#[test]
fn bounded_staleness_checks_at_most_once_per_interval() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let checks = Arc::clone(&probe.checks);
    let d = DurableDict::<String>::builder(probe, Raw)
        .policy(SyncPolicy::AtMostEvery(Duration::from_secs(60)))
        .build()
        .expect("build");
    let before = checks.load(Ordering::SeqCst);
    for _ in 0..100 {
        d.get("k").expect("get");
    }
    assert_eq!(
        checks.load(Ordering::SeqCst),
        before,
        "no check within the interval"
    );
}

#[test]
fn own_write_after_a_foreign_one_survives_a_failed_reload() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let fail_loads = Arc::clone(&probe.fail_loads);
    let d = DurableDict::<String>::builder(probe, Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .expect("build");
    dict(&store, SyncPolicy::Always)
        .insert("foreign", "1".into())
        .expect("foreign write");
    fail_loads.store(true, Ordering::SeqCst);
    // The stamp is not one past ours, so the dict tries to reload, which fails; the write itself
    // succeeded, so it is reported as such and this dict reads its own write.
    d.insert("mine", "2".into()).expect("the write succeeded");
    assert_eq!(value(&d, "mine").as_deref(), Some("2"));
    assert_eq!(value(&d, "foreign"), None, "not loaded yet");
    fail_loads.store(false, Ordering::SeqCst);
    assert!(
        d.sync().expect("sync"),
        "the stamp still differs, so sync reloads"
    );
    assert_eq!(value(&d, "foreign").as_deref(), Some("1"));
    assert_eq!(value(&d, "mine").as_deref(), Some("2"));
}

/// A stored value that does not decode poisons only its key: the build, reloads, `get` of
/// every other key, `status()`, and healing by an own write, a removal and a foreign rewrite.
#[test]
fn an_undecodable_value_poisons_only_its_key() {
    let store = MemoryStore::new();
    store.write_unstamped("good", b"fine");
    store.write_unstamped("bad", &[0xff, 0xfe]);
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .expect("a dict builds on a keyspace holding one undecodable value");
    assert_eq!(value(&d, "good").as_deref(), Some("fine"));
    match d.get("bad") {
        Err(Error::Decode { key, .. }) => assert_eq!(key, "bad"),
        other => panic!("expected a decode error naming the key, got {other:?}"),
    }
    // Reported again at every read, not consumed.
    assert!(matches!(d.get("bad"), Err(Error::Decode { .. })));
    assert!(!d.contains_key("bad").expect("contains_key"));
    assert_eq!(d.len().expect("len"), 1);
    assert_eq!(d.keys().expect("keys"), vec!["good".to_string()]);
    assert_eq!(d.snapshot().expect("snapshot").len(), 1);
    let status = d.status();
    assert_eq!(status.undecodable.len(), 1);
    assert_eq!(status.undecodable[0].0, "bad");
    let (_, last) = status
        .last_error
        .expect("the decode error is the last error");
    assert!(last.contains("\"bad\""), "{last}");

    // Reloads keep working: another writer changes another key.
    let other = dict(&store, SyncPolicy::Manual);
    other.insert("more", "x".into()).expect("foreign write");
    assert_eq!(value(&d, "more").as_deref(), Some("x"));
    assert!(matches!(d.get("bad"), Err(Error::Decode { .. })));

    // An own write heals it, also across an overlay rebuild.
    d.insert("bad", "healed".into()).expect("own write");
    assert_eq!(value(&d, "bad").as_deref(), Some("healed"));
    assert!(d.status().undecodable.is_empty());
    for i in 0..100 {
        d.insert(&format!("k{i}"), "v".into()).expect("own write");
    }
    assert_eq!(value(&d, "bad").as_deref(), Some("healed"));

    // A foreign rewrite heals it at the next reload; a removal heals it too.
    store.write_unstamped("bad2", &[0xff]);
    store.write_unstamped("bad3", &[0xff]);
    other.insert("bump", "x".into()).expect("foreign write");
    assert!(matches!(d.get("bad2"), Err(Error::Decode { .. })));
    assert_eq!(d.status().undecodable.len(), 2);
    other
        .insert("bad2", "fixed".into())
        .expect("foreign rewrite");
    assert_eq!(value(&d, "bad2").as_deref(), Some("fixed"));
    assert!(matches!(d.remove("bad3"), Err(Error::Decode { .. })));
    assert_eq!(d.get("bad3").expect("removed"), None);
    assert!(d.status().undecodable.is_empty());
}

/// Entries a store cannot hand over as keys are listed in `status()`; the rest loads.
#[test]
fn names_that_are_not_keys_are_reported_not_fatal() {
    #[derive(Debug)]
    struct Unreadable(MemoryStore);
    impl Store for Unreadable {
        fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
            self.0.persist(key, value)
        }
        fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
            self.0.depersist(key)
        }
        fn durables(&self) -> Result<Durables, StoreError> {
            let mut durables = self.0.durables()?;
            durables
                .unreadable
                .push((vec![0xff], "not UTF-8".to_string()));
            Ok(durables)
        }
        fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
            self.0.last_updated()
        }
    }
    let store = MemoryStore::new();
    store.write_unstamped("good", b"fine");
    let d = DurableDict::<String>::builder(Unreadable(store), Raw)
        .build()
        .expect("build");
    assert_eq!(value(&d, "good").as_deref(), Some("fine"));
    assert_eq!(
        d.status().unreadable,
        vec![(vec![0xff], "not UTF-8".to_string())]
    );
    assert!(d.status().last_error.is_some());
}

#[test]
fn many_own_writes_stay_consistent_across_overlay_rebuilds() {
    let store = MemoryStore::new();
    let d = dict(&store, SyncPolicy::Always);
    let other = dict(&store, SyncPolicy::Always);
    for i in 0..500 {
        d.insert(&format!("k{i}"), i.to_string()).expect("insert");
        if i % 3 == 0 {
            d.remove(&format!("k{}", i / 2)).expect("remove");
        }
    }
    let snapshot = d.snapshot().expect("snapshot");
    let expected = store.durables().expect("durables").entries;
    assert_eq!(snapshot.len(), expected.len());
    assert_eq!(d.len().expect("len"), expected.len());
    for (key, bytes) in &expected {
        let want = String::from_utf8(bytes.clone()).expect("utf8");
        assert_eq!(snapshot.get(key).map(|v| v.as_str()), Some(want.as_str()));
        assert_eq!(value(&d, key).as_deref(), Some(want.as_str()));
        assert_eq!(value(&other, key).as_deref(), Some(want.as_str()));
    }
    assert_eq!(d.status().reloads, 1, "own writes never reloaded");
}

/// A server restarted without its data, then written from nothing by a writer that counts the
/// stamp from 1 (as Python durabledict's `INCR` does), back to the very stamp a dict had synced
/// at: the dict must not keep its old contents.
fn recount_after_restart(policy: SyncPolicy, failed_check_between: bool) {
    let store = MemoryStore::new();
    let reader = dict(&store, policy);
    let writer = dict(&store, SyncPolicy::Manual);
    writer.insert("a", "1".into()).expect("insert");
    reader.sync().expect("sync");
    assert_eq!(value(&reader, "a").as_deref(), Some("1"));
    let synced = reader.status().stamp.expect("a stamp");
    assert_eq!(synced, 2, "the keyspace was new: 1, then 2");

    store.restart();
    if failed_check_between {
        store.set_available(false);
        assert!(reader.sync().is_err());
        store.set_available(true);
    }
    // The restarted server counts from 1 again (`INCR` of a missing key): two writes bring it
    // back to `synced`.
    python_write(&store, "b", "x");
    python_write(&store, "a", "99");
    assert_eq!(store.last_updated().expect("stamp"), Some(synced));

    if let SyncPolicy::AtMostEvery(interval) = policy {
        std::thread::sleep(interval);
    }
    if policy == SyncPolicy::Manual {
        assert!(
            reader.sync().expect("sync"),
            "sync reloads across the restart"
        );
    }
    assert_eq!(value(&reader, "a").as_deref(), Some("99"));
    assert_eq!(value(&reader, "b").as_deref(), Some("x"));
}

#[test]
fn a_restart_that_recounts_to_the_synced_stamp_is_noticed_under_always() {
    recount_after_restart(SyncPolicy::Always, false);
    recount_after_restart(SyncPolicy::Always, true);
}

#[test]
fn a_restart_that_recounts_to_the_synced_stamp_is_noticed_under_at_most_every() {
    let policy = SyncPolicy::AtMostEvery(Duration::from_millis(20));
    recount_after_restart(policy, false);
    recount_after_restart(policy, true);
}

#[test]
fn a_restart_that_recounts_to_the_synced_stamp_is_noticed_by_sync() {
    recount_after_restart(SyncPolicy::Manual, false);
    recount_after_restart(SyncPolicy::Manual, true);
}

#[test]
fn an_own_write_across_a_restart_is_not_taken_as_the_only_change() {
    let store = MemoryStore::new();
    let d = dict(&store, SyncPolicy::Manual);
    d.insert("a", "1".into()).expect("insert");
    assert_eq!(d.status().stamp, Some(2));
    store.restart();
    // Another writer puts the stamp at 2 again; our write makes it 3, one past what we synced.
    python_write(&store, "b", "x");
    python_write(&store, "c", "y");
    d.insert("d", "z".into()).expect("own write");
    assert_eq!(d.status().stamp, Some(3));
    assert_eq!(value(&d, "a"), None, "the restart wiped `a`");
    assert_eq!(value(&d, "b").as_deref(), Some("x"));
    assert_eq!(value(&d, "c").as_deref(), Some("y"));
}

/// A write as Python durabledict makes it: the value, then `INCR` of the stamp, which counts
/// from 1 when the stamp is missing.
fn python_write(store: &MemoryStore, key: &str, value: &str) {
    use durabledict_core::Stamp;
    store.write_unstamped(key, value.as_bytes());
    store.stamp().bump().expect("bump");
}

/// `serve_stale_for` also covers a reload that fails after a stamp check that succeeded (the
/// connection died between the two).
#[test]
fn serve_stale_covers_a_reload_failing_after_a_good_check() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let fail_loads = Arc::clone(&probe.fail_loads);
    let d = DurableDict::<String>::builder(probe, Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .expect("build");
    d.insert("k", "old".into()).expect("insert");
    dict(&store, SyncPolicy::Manual)
        .insert("k", "new".into())
        .expect("foreign write");
    fail_loads.store(true, Ordering::SeqCst);
    assert_eq!(value(&d, "k").as_deref(), Some("old"), "served stale");
    assert!(
        d.status().last_error.is_some(),
        "the failed load is recorded"
    );
    fail_loads.store(false, Ordering::SeqCst);
    assert_eq!(value(&d, "k").as_deref(), Some("new"));
}

/// A reload that fails does not count as a sync: under `AtMostEvery` the next read checks
/// again instead of serving unconfirmed contents for a whole interval.
#[test]
fn a_failed_reload_does_not_advance_last_sync() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let fail_loads = Arc::clone(&probe.fail_loads);
    let d = DurableDict::<String>::builder(probe, Raw)
        .policy(SyncPolicy::AtMostEvery(Duration::from_millis(50)))
        .build()
        .expect("build");
    d.insert("k", "old".into()).expect("insert");
    let synced = d.status().last_sync;
    dict(&store, SyncPolicy::Manual)
        .insert("k", "new".into())
        .expect("foreign write");
    fail_loads.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(60));
    assert!(d.get("k").is_err(), "the reload fails");
    assert_eq!(
        d.status().last_sync,
        synced,
        "a failed reload is not a sync"
    );
    assert!(d.get("k").is_err(), "the next read tries again at once");
    fail_loads.store(false, Ordering::SeqCst);
    assert_eq!(value(&d, "k").as_deref(), Some("new"));
    assert!(d.status().last_sync > synced);
}

/// A removal that finds the key already gone reloads to drop it from a stale cache; when that
/// reload fails, the removal still answers (nothing to remove) and the failure is recorded.
#[test]
fn a_failed_reload_after_removing_an_absent_key_is_recorded() {
    let store = MemoryStore::new();
    let probe = Probe::new(&store);
    let fail_loads = Arc::clone(&probe.fail_loads);
    let d = DurableDict::<String>::builder(probe, Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .expect("build");
    d.insert("k", "v".into()).expect("insert");
    dict(&store, SyncPolicy::Manual)
        .remove("k")
        .expect("foreign removal");
    fail_loads.store(true, Ordering::SeqCst);
    assert_eq!(d.remove("k").expect("remove"), None);
    let (_, last) = d
        .status()
        .last_error
        .expect("the failed reload is recorded");
    assert!(last.contains("load"), "{last}");
}
