//! `SyncPolicy::Watch` over a store with a change feed, and change listeners.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use durabledict_core::{
    Call, DurableDict, Event, Layer, Layered, MemoryStore, Raw, Stamp, Store, StoreError,
    SyncPolicy,
};

/// Counts stamp checks and loads.
#[derive(Debug, Default)]
struct Count {
    checks: AtomicUsize,
    loads: AtomicUsize,
}

/// The layer holding a shared [`Count`].
#[derive(Debug)]
struct Counting(Arc<Count>);

impl Layer for Counting {
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match call {
            Call::LastUpdated => self.0.checks.fetch_add(1, Ordering::SeqCst),
            Call::Durables => self.0.loads.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        run()
    }
}

fn watched(store: &MemoryStore) -> (DurableDict<String>, Arc<Count>) {
    let count = Arc::new(Count::default());
    let dict = DurableDict::<String>::builder(
        Layered::new(Counting(Arc::clone(&count)), store.clone()),
        Raw,
    )
    .policy(SyncPolicy::Watch)
    .build()
    .unwrap();
    (dict, count)
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

#[test]
fn reads_are_local_while_the_feed_is_up() {
    let store = MemoryStore::with_feed();
    let (dict, count) = watched(&store);
    writer(&store).insert("k", "v".into()).unwrap();
    assert_eq!(
        value(&dict, "k").as_deref(),
        Some("v"),
        "the notice makes one check"
    );
    let checks = count.checks.load(Ordering::SeqCst);
    for _ in 0..1000 {
        assert_eq!(value(&dict, "k").as_deref(), Some("v"));
    }
    assert_eq!(
        count.checks.load(Ordering::SeqCst),
        checks,
        "no I/O per read"
    );
}

#[test]
fn a_change_is_seen_once_its_notice_arrived() {
    let store = MemoryStore::with_feed();
    let (dict, count) = watched(&store);
    assert_eq!(value(&dict, "k"), None);
    let other = writer(&store);
    for i in 0..20 {
        other.insert("k", i.to_string()).unwrap();
        assert_eq!(value(&dict, "k"), Some(i.to_string()));
    }
    // Own writes: read your writes, and the notice of one's own write costs one check.
    dict.insert("k", "mine".into()).unwrap();
    let loads = count.loads.load(Ordering::SeqCst);
    assert_eq!(value(&dict, "k").as_deref(), Some("mine"));
    assert_eq!(
        count.loads.load(Ordering::SeqCst),
        loads,
        "an own write does not reload"
    );
}

/// While the feed is down nothing unconfirmed is served: a change that sent no notice (the
/// feed missed it) is still seen by the next read, through the stamp.
#[test]
fn a_lost_feed_falls_back_to_checking_every_read() {
    let store = MemoryStore::with_feed();
    let (dict, count) = watched(&store);
    dict.insert("k", "old".into()).unwrap();
    assert_eq!(value(&dict, "k").as_deref(), Some("old"));

    store.cut_feed();
    // A write whose notice is lost: made behind the feed's back.
    store.write_unstamped("k", b"new");
    store.stamp().bump().unwrap();
    assert_eq!(value(&dict, "k").as_deref(), Some("new"));
    let checks = count.checks.load(Ordering::SeqCst);
    for _ in 0..10 {
        value(&dict, "k");
    }
    assert_eq!(
        count.checks.load(Ordering::SeqCst),
        checks + 10,
        "every read checks while the feed is down"
    );

    store.restore_feed();
    value(&dict, "k");
    let checks = count.checks.load(Ordering::SeqCst);
    for _ in 0..10 {
        value(&dict, "k");
    }
    assert_eq!(
        count.checks.load(Ordering::SeqCst),
        checks,
        "one check after the feed is back, then local reads"
    );
}

/// A change whose notice was missed while the feed was down, made just before it came back,
/// is seen at the check that follows the restore.
#[test]
fn a_restored_feed_checks_once_more() {
    let store = MemoryStore::with_feed();
    let (dict, _) = watched(&store);
    dict.insert("k", "old".into()).unwrap();
    value(&dict, "k");
    store.cut_feed();
    store.write_unstamped("k", b"missed");
    store.stamp().bump().unwrap();
    store.restore_feed();
    assert_eq!(value(&dict, "k").as_deref(), Some("missed"));
}

#[test]
fn a_store_without_a_feed_is_watched_like_always() {
    let store = MemoryStore::new();
    let (dict, count) = watched(&store);
    let other = writer(&store);
    other.insert("k", "1".into()).unwrap();
    assert_eq!(value(&dict, "k").as_deref(), Some("1"));
    let checks = count.checks.load(Ordering::SeqCst);
    value(&dict, "k");
    assert_eq!(count.checks.load(Ordering::SeqCst), checks + 1);
}

/// Concurrent readers while the feed flaps and another process writes: no read ever returns
/// a value older than the last write that returned before the read began.
#[test]
fn no_stale_read_while_the_feed_flaps() {
    let store = MemoryStore::with_feed();
    let dict = Arc::new(watched(&store).0);
    let other = writer(&store);
    other.insert("n", "0".into()).unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (dict, written) = (Arc::clone(&dict), Arc::clone(&written));
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_millis(300);
                while Instant::now() < deadline {
                    let floor = written.load(Ordering::SeqCst);
                    let seen: usize = value(&dict, "n").unwrap().parse().unwrap();
                    assert!(seen >= floor, "stale read: {seen} < {floor}");
                }
            });
        }
        s.spawn(|| {
            for i in 1..=2000usize {
                if i % 100 == 0 {
                    store.cut_feed();
                }
                if i % 100 == 50 {
                    store.restore_feed();
                }
                if i % 3 == 0 {
                    // Behind the feed's back, as a notice lost with a broken connection.
                    store.write_unstamped("n", i.to_string().as_bytes());
                    store.stamp().bump().unwrap();
                    if store.feed().unwrap().state().is_up() {
                        store.notify();
                    }
                } else {
                    other.insert("n", i.to_string()).unwrap();
                }
                written.store(i, Ordering::SeqCst);
            }
        });
    });
}

#[test]
fn listeners_hear_own_and_foreign_changes_in_order() {
    let store = MemoryStore::with_feed();
    let dict = Arc::new(watched(&store).0);
    let events = dict.subscribe();
    dict.insert("a", "1".into()).unwrap();
    dict.insert("a", "1".into()).unwrap(); // the same value: no change
    dict.update([("a", "2".to_string()), ("b", "x".to_string())])
        .unwrap();
    dict.remove("b").unwrap();
    writer(&store).insert("c", "foreign".into()).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        match events.next_timeout(Duration::from_secs(5)) {
            Some(Event::Changed(c)) => seen.push((
                c.key.to_string(),
                c.old.map(|v| (*v).clone()),
                c.new.map(|v| (*v).clone()),
            )),
            other => panic!("expected a change, got {other:?} after {seen:?}"),
        }
    }
    let s = |v: &str| Some(v.to_string());
    let mut batch = seen[1..3].to_vec();
    batch.sort();
    assert_eq!(seen[0], ("a".into(), None, s("1")));
    assert_eq!(
        batch,
        [("a".into(), s("1"), s("2")), ("b".into(), None, s("x"))]
    );
    assert_eq!(seen[3], ("b".into(), s("x"), None));
    assert_eq!(seen[4], ("c".into(), None, s("foreign")));
    assert!(events.next_timeout(Duration::from_millis(50)).is_none());
}

/// The listener thread reloads as soon as a notice arrives: no read is needed.
#[test]
fn listeners_hear_foreign_writes_without_reads() {
    let store = MemoryStore::with_feed();
    let dict = Arc::new(watched(&store).0);
    let events = dict.subscribe();
    let other = writer(&store);
    let started = Instant::now();
    other.insert("k", "v".into()).unwrap();
    assert!(matches!(
        events.next_timeout(Duration::from_secs(5)),
        Some(Event::Changed(c)) if &*c.key == "k"
    ));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "heard after {:?}",
        started.elapsed()
    );
}

/// A subscriber that does not read never blocks writes; once it has read what was buffered
/// it gets one `Lagged` (its cue to read a snapshot) and then the changes after it.
#[test]
fn a_slow_listener_lags_without_blocking() {
    let store = MemoryStore::with_feed();
    let dict = Arc::new(watched(&store).0);
    let events = dict.subscribe_with_capacity(4);
    for i in 0..20 {
        dict.insert("k", i.to_string()).unwrap();
    }
    let mut got = Vec::new();
    while let Some(event) = events.try_next() {
        got.push(event);
    }
    assert_eq!(got.len(), 5, "the 4 buffered, then the marker: {got:?}");
    assert!(got[..4].iter().all(|e| matches!(e, Event::Changed(_))));
    assert!(matches!(got[4], Event::Lagged));
    dict.insert("k", "after".into()).unwrap();
    assert!(matches!(
        events.try_next(),
        Some(Event::Changed(c)) if c.new.as_deref().map(String::as_str) == Some("after")
    ));
}

#[test]
fn a_subscription_ends_when_the_dict_is_dropped() {
    let store = MemoryStore::with_feed();
    let dict = Arc::new(watched(&store).0);
    let mut events = dict.subscribe();
    drop(dict);
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(events.next().is_none()));
    assert_eq!(
        ended.recv_timeout(Duration::from_secs(5)),
        Ok(true),
        "the iterator ends once the dict is gone"
    );
}

#[test]
fn try_get_local_answers_only_without_io() {
    let store = MemoryStore::with_feed();
    let (dict, count) = watched(&store);
    dict.insert("k", "v".into()).unwrap();
    value(&dict, "k"); // the notice of the own write: one check
    let checks = count.checks.load(Ordering::SeqCst);
    assert!(dict.answers_locally());
    let got = dict.try_get_local("k").unwrap().unwrap();
    assert_eq!(got.as_deref().map(String::as_str), Some("v"));
    assert_eq!(count.checks.load(Ordering::SeqCst), checks);
    writer(&store).insert("k", "w".into()).unwrap();
    assert!(
        dict.try_get_local("k").is_none(),
        "a notice arrived: a check is due"
    );
    store.cut_feed();
    assert!(!dict.answers_locally(), "the feed is down");
}

#[test]
fn dicts_on_one_feed_share_the_check_and_the_load_a_notice_calls_for() {
    let store = MemoryStore::with_feed();
    let count = Arc::new(Count::default());
    let dicts: Vec<_> = (0..20)
        .map(|_| {
            DurableDict::<String>::builder(
                Layered::new(Counting(Arc::clone(&count)), store.clone()),
                Raw,
            )
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap()
        })
        .collect();
    let requests = || {
        (
            count.checks.load(Ordering::SeqCst),
            count.loads.load(Ordering::SeqCst),
        )
    };
    let other = writer(&store);
    for (i, expected) in ["v", "w", "x"].into_iter().enumerate() {
        let before = requests();
        other.insert("k", expected.to_string()).unwrap();
        for dict in &dicts {
            assert_eq!(value(dict, "k").as_deref(), Some(expected), "round {i}");
        }
        let after = requests();
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 1),
            "round {i}: one check and one load for the 20 dicts"
        );
    }
    // A write by one of them: the others share one check and one load; the writer, which
    // applied its own write, confirms its table with that same check.
    let before = requests();
    dicts[3].insert("k", "y".to_string()).unwrap();
    for dict in &dicts {
        assert_eq!(value(dict, "k").as_deref(), Some("y"));
    }
    let after = requests();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
}

#[test]
fn a_shared_answer_never_hides_a_write_of_this_process() {
    // Writes by one dict interleaved with reads of another on the same feed, checked against
    // the last write every time: a check or load shared from before a write would show.
    let store = MemoryStore::with_feed();
    let (reader, _) = watched(&store);
    let (also, _) = watched(&store);
    let other = writer(&store);
    for i in 0..200 {
        let v = i.to_string();
        other.insert("k", v.clone()).unwrap();
        assert_eq!(value(&also, "k").as_deref(), Some(v.as_str()));
        assert_eq!(value(&reader, "k").as_deref(), Some(v.as_str()));
        also.insert("j", v.clone()).unwrap();
        assert_eq!(value(&reader, "j").as_deref(), Some(v.as_str()));
    }
}

/// A view of a store: the keys under a prefix, without it. It forwards the store's feed (its
/// `Watch` dicts would check the stamp on every read otherwise) but not
/// `feed_shares_reads`: its reads are not the store's.
#[derive(Debug)]
struct View {
    inner: MemoryStore,
    prefix: &'static str,
}

impl Store for View {
    fn persist(&self, key: &str, value: &[u8]) -> Result<i64, StoreError> {
        self.inner.persist(&format!("{}{key}", self.prefix), value)
    }
    fn depersist(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.inner.depersist(&format!("{}{key}", self.prefix))
    }
    fn durables(&self) -> Result<durabledict_core::Durables, StoreError> {
        let all = self.inner.durables()?;
        let mine = all
            .entries
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(self.prefix)?.to_owned(), v)))
            .collect();
        Ok(durabledict_core::Durables::new(mine, all.stamp))
    }
    fn last_updated(&self) -> Result<Option<i64>, StoreError> {
        self.inner.last_updated()
    }
    fn feed(&self) -> Option<Arc<durabledict_core::Feed>> {
        self.inner.feed()
    }
}

#[test]
fn views_forwarding_one_feed_each_serve_their_own() {
    let store = MemoryStore::with_feed();
    let view = |prefix| {
        Arc::new(
            DurableDict::<String>::builder(
                View {
                    inner: store.clone(),
                    prefix,
                },
                Raw,
            )
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
        )
    };
    let (a, b) = (view("a/"), view("b/"));
    let (a_changes, b_changes) = (a.subscribe(), b.subscribe());
    let other = writer(&store);
    for n in 0..5 {
        other.insert("a/x", format!("a{n}")).unwrap();
        other.insert("b/y", format!("b{n}")).unwrap();
        assert_eq!(a.keys().unwrap(), ["x"], "round {n}");
        assert_eq!(b.keys().unwrap(), ["y"], "round {n}: b served a's view");
        assert_eq!(value(&b, "y"), Some(format!("b{n}")));
    }
    // Their listeners too (each kept by a thread of its own: they do not share).
    other.insert("b/y", "last".to_string()).unwrap();
    let heard = |changes: &durabledict_core::Subscription<String>| loop {
        match changes.next_timeout(Duration::from_secs(5)) {
            Some(Event::Changed(change))
                if change.new.as_deref().map(String::as_str) == Some("last") =>
            {
                return change.key;
            }
            Some(_) => {}
            None => panic!("never heard"),
        }
    };
    assert_eq!(&*heard(&b_changes), "y");
    drop(a_changes);
}

#[test]
fn a_dict_subscribing_beside_dicts_with_threads_of_their_own_hears_at_once() {
    // Dicts that do not share (views) keep threads of their own on the same feed; a dict that
    // joins the feed's running keeper must have its round at once all the same (one of those
    // threads took the keeper's wake-up for itself, and the dict heard a second later).
    let store = MemoryStore::with_feed();
    let views: Vec<_> = (0..10)
        .map(|_| {
            Arc::new(
                DurableDict::<String>::builder(
                    View {
                        inner: store.clone(),
                        prefix: "v/",
                    },
                    Raw,
                )
                .policy(SyncPolicy::Watch)
                .build()
                .unwrap(),
            )
        })
        .collect();
    let _view_changes: Vec<_> = views.iter().map(|view| view.subscribe()).collect();
    let watch = || {
        Arc::new(
            DurableDict::<String>::builder(store.clone(), Raw)
                .policy(SyncPolicy::Watch)
                .build()
                .unwrap(),
        )
    };
    let (kept, late) = (watch(), watch());
    let kept_changes = kept.subscribe();
    let other = writer(&store);
    for round in 0..5 {
        let value = format!("v{round}");
        other.insert("k", value.clone()).unwrap();
        // The keeper had its round for this notice (its dict heard it); `late` was not kept.
        assert!(matches!(
            kept_changes.next_timeout(Duration::from_secs(5)),
            Some(Event::Changed(_))
        ));
        let started = Instant::now();
        let changes = late.subscribe();
        match changes.next_timeout(Duration::from_secs(5)) {
            Some(Event::Changed(change)) => {
                assert_eq!(change.new.as_deref(), Some(&value));
            }
            other => panic!("round {round}: expected the change, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "round {round}: heard after {:?}",
            started.elapsed()
        );
        drop(changes);
        // Let the keeper let `late` go before the next round.
        std::thread::sleep(Duration::from_millis(1100));
    }
}
