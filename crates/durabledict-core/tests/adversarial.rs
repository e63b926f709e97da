//! Adversarial review of today's core changes (epoch, containment, serve-stale, Watch,
//! listeners). Each test reproduces one defect: it fails on the code as reviewed and passes
//! once the defect is fixed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use durabledict_core::{
    Call, DurableDict, Error, Event, Layer, Layered, MemoryStore, Raw, Store, StoreError,
    SyncPolicy,
};

/// Counts stamp checks, and fails the next N checks / loads the way a transient network error
/// does, without the store's epoch moving (as the ZooKeeper store, whose epoch is always 0, or
/// any third-party store that does not count failures, behaves).
#[derive(Debug, Default)]
struct Faults {
    checks: AtomicUsize,
    fail_checks: AtomicUsize,
    fail_loads: AtomicUsize,
}

#[derive(Debug)]
struct Flaky(Arc<Faults>);

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Layer for Flaky {
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let failing = match call {
            Call::LastUpdated => {
                self.0.checks.fetch_add(1, Ordering::SeqCst);
                take_one(&self.0.fail_checks)
            }
            Call::Durables => take_one(&self.0.fail_loads),
            _ => false,
        };
        if failing {
            return Err(StoreError::unavailable("transient fault (layer)"));
        }
        run()
    }
}

fn flaky(store: &MemoryStore) -> (Layered<Flaky, MemoryStore>, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    (
        Layered::new(Flaky(Arc::clone(&faults)), store.clone()),
        faults,
    )
}

fn writer(store: &MemoryStore) -> DurableDict<String> {
    DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap()
}

fn value(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| (*v).clone())
}

/// Under `Watch` with `serve_stale_for`, a read that could not confirm the cache after a
/// notice (the reload or the stamp check failed, and the stale table was served) records the
/// notice as confirmed (`saw_feed`), so every later read answers locally from the stale
/// table — with the store healthy again, with no check, and past the `max_age` bound — until
/// some other notice happens to arrive.
#[test]
fn watch_serving_stale_marks_the_unconfirmed_table_as_fed() {
    let store = MemoryStore::with_feed();
    let (layered, faults) = flaky(&store);
    let d = DurableDict::<String>::builder(layered, Raw)
        .policy(SyncPolicy::Watch)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    let w = writer(&store);

    // Path 1: a reload failing after a good check.
    w.insert("k", "v1".into()).unwrap(); // notice
    faults.fail_loads.store(1, Ordering::SeqCst);
    assert_eq!(
        value(&d, "k"),
        None,
        "served stale while the load fails: allowed"
    );
    // The store is healthy again and the dict never loaded v1.
    assert_eq!(
        value(&d, "k").as_deref(),
        Some("v1"),
        "a read after a failed reload must check again, not answer from the unconfirmed table"
    );

    // Path 2: a failed stamp check.
    w.insert("k", "v2".into()).unwrap(); // notice
    faults.fail_checks.store(1, Ordering::SeqCst);
    assert_eq!(
        value(&d, "k").as_deref(),
        Some("v1"),
        "served stale: allowed"
    );
    assert_eq!(
        value(&d, "k").as_deref(),
        Some("v2"),
        "a read after a failed check must check again"
    );
}

/// Under `Manual`, a key whose stored value did not decode and that another program then
/// removed stays poisoned after this dict's own `remove` of it returned `Ok(None)`: the
/// "absent in the store" branch of `take` reloads only when the cache *contains* the key, and
/// a poisoned key is never contained.
#[test]
fn remove_of_a_poisoned_key_another_program_removed_leaves_it_poisoned() {
    let store = MemoryStore::new();
    store.write_unstamped("bad", &[0xff, 0xfe]);
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    assert!(matches!(d.get("bad"), Err(Error::Decode { .. })));
    // Another program removes it (with a bump).
    store.depersist("bad").unwrap();
    // This dict removes it too; the store says there was nothing to remove.
    assert_eq!(d.remove("bad").unwrap(), None);
    // Store and dict now agree that "bad" is absent...
    assert_eq!(
        d.get("bad").ok(),
        Some(None),
        "after remove returned Ok(None), get must not report a decode error"
    );
    assert!(
        d.status().undecodable.is_empty(),
        "{:?}",
        d.status().undecodable
    );
}

/// A listener is told about a change before the cache shows it: `reload_locked` (and
/// `apply_own` for a replacement table, as `clear` makes) announce the changes first and swap
/// the table afterwards, so a subscriber that reads the dict as soon as it receives an event
/// (under `Manual` / `AtMostEvery`, whose reads are local) sees the old value. A listener and
/// the cache disagree.
#[test]
fn a_change_is_announced_before_the_cache_shows_it() {
    const N: usize = 50_000;
    let store = MemoryStore::new();
    let d = Arc::new(
        DurableDict::<String>::builder(store.clone(), Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .unwrap(),
    );
    let changes = d.subscribe_with_capacity(2 * N);
    writer(&store)
        .update((0..N).map(|i| (format!("k{i}"), format!("v{i}"))))
        .unwrap();
    let reader = Arc::clone(&d);
    let checker = std::thread::spawn(move || {
        let mut disagreements = Vec::new();
        for _ in 0..200 {
            match changes.next_timeout(Duration::from_secs(30)) {
                Some(Event::Changed(change)) => {
                    let cached = reader.get(&change.key).unwrap();
                    if cached != change.new {
                        disagreements.push((change.key.to_string(), cached, change.new));
                    }
                }
                other => panic!("expected a change, got {other:?}"),
            }
        }
        disagreements
    });
    assert!(d.sync().unwrap());
    let disagreements = checker.join().unwrap();
    assert!(
        disagreements.is_empty(),
        "{} of 200 events were received while get() still returned the old value, e.g. {:?}",
        disagreements.len(),
        disagreements.first()
    );
}

/// A subscriber whose buffer filled up and that then drained it is never told it lagged when
/// no further change comes: `Lagged` is only sent with the *next* change, so the subscriber
/// believes its view is complete while it missed a change.
#[test]
fn a_drained_lagging_subscriber_is_never_told_it_lagged() {
    let store = MemoryStore::new();
    let d = Arc::new(
        DurableDict::<String>::builder(store, Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .unwrap(),
    );
    let changes = d.subscribe_with_capacity(1);
    d.insert("a", "1".into()).unwrap();
    d.insert("b", "2".into()).unwrap(); // dropped: the buffer is full
    assert!(matches!(changes.try_next(), Some(Event::Changed(c)) if &*c.key == "a"));
    // The change to "b" was lost; the subscriber must learn that (Lagged) or get it.
    match changes.next_timeout(Duration::from_millis(500)) {
        Some(Event::Lagged) => {}
        Some(Event::Changed(c)) if &*c.key == "b" => {}
        other => panic!("the lost change to \"b\" was neither delivered nor signalled: {other:?}"),
    }
}

/// Dropping every subscription does not stop the dict's listener thread: subscribers are only
/// pruned when a change is announced, so on a quiet dict the thread keeps checking the store
/// every 100 ms for as long as the dict lives (and `has_listeners` stays set).
#[test]
fn dropping_every_subscription_leaves_the_listener_thread_polling() {
    let store = MemoryStore::new();
    let (layered, faults) = flaky(&store);
    let d = Arc::new(
        DurableDict::<String>::builder(layered, Raw)
            .policy(SyncPolicy::Always)
            .build()
            .unwrap(),
    );
    drop(d.subscribe());
    // Give the thread time to notice that nobody listens.
    std::thread::sleep(Duration::from_millis(400));
    let before = faults.checks.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(600));
    let after = faults.checks.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "the listener thread kept checking the store with no subscriber left"
    );
    drop(d);
}

/// `update` naming a key twice announces the key's change twice (`Touched::Many` holds it
/// twice, and both entries get the same old and the same new value): a duplicated event.
#[test]
fn an_update_naming_a_key_twice_announces_it_twice() {
    let store = MemoryStore::new();
    let d = Arc::new(
        DurableDict::<String>::builder(store, Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .unwrap(),
    );
    let changes = d.subscribe();
    d.update([("a", "1".to_string()), ("a", "2".to_string())])
        .unwrap();
    assert_eq!(value(&d, "a").as_deref(), Some("2"));
    let mut events = Vec::new();
    while let Some(event) = changes.try_next() {
        events.push(event);
    }
    assert_eq!(events.len(), 1, "one key changed once: {events:?}");
}

/// Under `Watch`, reads answered locally while the feed is healthy never record a
/// confirmation, so `last_sync` ages although the feed vouched for the cache all along; the
/// moment the store goes down, `serve_stale_for(max_age)` refuses to serve a cache that was
/// current until a few milliseconds ago, as soon as the dict has been quiet for `max_age`.
/// `serve_stale_for` is unusable under `Watch` on a quiet dict (a feature-flag store).
#[test]
fn watch_serve_stale_ignores_the_confirmation_a_healthy_feed_gives() {
    let store = MemoryStore::with_feed();
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .serve_stale_for(Duration::from_millis(300))
        .build()
        .unwrap();
    writer(&store).insert("k", "v".into()).unwrap();
    assert_eq!(value(&d, "k").as_deref(), Some("v"));
    // Quiet, healthy feed: reads are local and current.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(value(&d, "k").as_deref(), Some("v"));
    }
    // The server dies: the feed is lost and every request fails.
    store.set_available(false);
    store.cut_feed();
    assert_eq!(
        d.get("k").ok().flatten().as_deref().map(String::as_str),
        Some("v"),
        "the cache was confirmed by the healthy feed a moment ago: within serve_stale_for"
    );
}

/// A store holding one entry under a name that is not a key (a Redis field `b"\xff"` written
/// by Python), with the default `Store::clear`, which removes the entries it can name and
/// leaves that one.
#[derive(Debug, Clone)]
struct WithUnreadable(MemoryStore);

impl Store for WithUnreadable {
    fn persist(&self, key: &str, value: &[u8]) -> Result<i64, StoreError> {
        self.0.persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.0.depersist(key)
    }
    fn durables(&self) -> Result<durabledict_core::Durables, StoreError> {
        let mut durables = self.0.durables()?;
        durables.unreadable = vec![(vec![0xff], "not UTF-8".to_string())];
        Ok(durables)
    }
    fn last_updated(&self) -> Result<Option<i64>, StoreError> {
        self.0.last_updated()
    }
}

/// `clear` taken as the only change (the O(1) path) replaces the table with one that has no
/// `damaged` at all, so `status().unreadable` forgets names the store still holds (the
/// default `Store::clear` removes only the entries it can name) until some later reload
/// brings them back.
#[test]
fn clear_forgets_unreadable_names_the_store_still_holds() {
    let store = WithUnreadable(MemoryStore::new());
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    d.insert("a", "1".into()).unwrap();
    assert_eq!(d.status().unreadable.len(), 1);
    d.clear().unwrap();
    assert_eq!(
        store.durables().unwrap().unreadable.len(),
        1,
        "the store still holds it"
    );
    assert_eq!(
        d.status().unreadable.len(),
        1,
        "status() must keep listing what the store holds and the dict left out"
    );
}

/// `clear` of a store another program already emptied returns `Ok` (the store says "nothing
/// to clear": no stamp) and leaves this dict's cache as it was: `apply_own` returns at once on
/// `None`. After its own `clear` returned, the dict still reads the old entries (under
/// `Manual`, and under `Always` / `Watch` until something else changes) — read-your-writes
/// broken. `remove` handles the same case (absent in the store, present in the cache) by
/// reloading; `clear` does not.
#[test]
fn clear_of_a_store_emptied_elsewhere_leaves_the_cache_full() {
    let store = MemoryStore::new();
    let d = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    d.insert("a", "1".into()).unwrap();
    // Another program removes the last key.
    store.depersist("a").unwrap();
    d.clear().unwrap();
    assert_eq!(
        value(&d, "a"),
        None,
        "after clear() returned, the dict is empty"
    );
    assert_eq!(d.len().unwrap(), 0);
}

mod logs {
    use std::io::Write;
    use std::sync::Mutex;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

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

    /// Under the default `Always` policy without `serve_stale_for`, a check that succeeds and
    /// confirms the table takes the fast path, which never calls `mark_synced`, so the
    /// observer's `failing` flag set by an outage is never cleared: no "the store answers
    /// again", and the *next* outage logs no warning at all (only at debug). Happens whenever
    /// the failure left the epoch as it was (a Layer injecting faults, a third-party store).
    #[test]
    fn a_second_outage_under_always_is_not_warned() {
        let store = MemoryStore::new();
        let (layered, faults) = flaky(&store);
        let d = DurableDict::<String>::builder(layered, Raw)
            .build()
            .unwrap();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            faults.fail_checks.store(1, Ordering::SeqCst);
            assert!(d.get("k").is_err(), "outage 1");
            assert_eq!(d.get("k").unwrap(), None, "recovered");
            faults.fail_checks.store(1, Ordering::SeqCst);
            assert!(d.get("k").is_err(), "outage 2");
            assert_eq!(d.get("k").unwrap(), None, "recovered");
        });
        let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        let warns = log.lines().filter(|l| l.contains(" WARN ")).count();
        assert_eq!(warns, 2, "one warning per outage:\n{log}");
        assert_eq!(
            log.matches("the store answers again").count(),
            2,
            "one recovery per outage:\n{log}"
        );
    }
}

/// A store whose stamp reads `i64::MIN` (a Redis stamp key another program `SET` to it: any
/// integer is a valid stamp). Counts full loads.
#[derive(Debug, Clone)]
struct MinStamp(MemoryStore, Arc<AtomicUsize>);

impl Store for MinStamp {
    fn persist(&self, key: &str, value: &[u8]) -> Result<i64, StoreError> {
        self.0.persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.0.depersist(key)
    }
    fn durables(&self) -> Result<durabledict_core::Durables, StoreError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let mut durables = self.0.durables()?;
        durables.stamp = Some(i64::MIN);
        Ok(durables)
    }
    fn last_updated(&self) -> Result<Option<i64>, StoreError> {
        Ok(Some(i64::MIN))
    }
}

/// `Table` keeps the stamp in an `AtomicI64` with `i64::MIN` as the "missing" sentinel, so a
/// store stamp that *is* `i64::MIN` is cached as `None`, never equals the checked
/// `Some(i64::MIN)`, and every read under `Always` reloads the whole keyspace.
#[test]
fn a_stamp_of_i64_min_reloads_at_every_read() {
    let loads = Arc::new(AtomicUsize::new(0));
    let d = DurableDict::<String>::builder(MinStamp(MemoryStore::new(), Arc::clone(&loads)), Raw)
        .build()
        .unwrap();
    for _ in 0..10 {
        d.get("k").unwrap();
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "an unchanged stamp must not reload (status stamp: {:?})",
        d.status().stamp
    );
}
