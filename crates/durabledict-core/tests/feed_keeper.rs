//! Dicts with subscribers on one sharing feed are kept current by one thread per feed, not one
//! per dict. One test in this file: it counts the threads of its process.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Event, MemoryStore, Raw, SyncPolicy};

/// How many threads of this process carry `name` (as the kernel keeps it: 15 bytes).
fn threads_named(name: &str) -> usize {
    let name = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_thread_keeps_every_listened_dict_on_a_feed_current() {
    let store = MemoryStore::with_feed();
    let dicts: Vec<Arc<DurableDict<String>>> = (0..50)
        .map(|_| {
            Arc::new(
                DurableDict::builder(store.clone(), Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let subscriptions: Vec<_> = dicts.iter().map(|dict| dict.subscribe()).collect();
    // A new thread takes its name once it runs.
    eventually("no keeper thread", || {
        threads_named("durabledict-feed-keeper") == 1
    });
    assert_eq!(threads_named("durabledict-listen"), 0);

    // Every listener hears a foreign write (nobody reads: only the keeper reloads).
    let writer = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    writer.insert("k", "v".to_string()).unwrap();
    for (i, subscription) in subscriptions.iter().enumerate() {
        match subscription.next_timeout(Duration::from_secs(5)) {
            Some(Event::Changed(change)) => {
                assert_eq!(&*change.key, "k");
                assert_eq!(change.new.as_deref().map(String::as_str), Some("v"), "{i}");
            }
            other => panic!("dict {i}: expected the change, got {other:?}"),
        }
    }

    // Half the dicts lose their subscription, then one subscribes again: the others still
    // hear, and so does it.
    let mut subscriptions = subscriptions;
    subscriptions.truncate(25);
    writer.insert("k", "w".to_string()).unwrap();
    for subscription in &subscriptions {
        assert!(matches!(
            subscription.next_timeout(Duration::from_secs(5)),
            Some(Event::Changed(_))
        ));
    }
    std::thread::sleep(Duration::from_millis(50));
    let again = dicts[40].subscribe();
    writer.insert("k", "x".to_string()).unwrap();
    match again.next_timeout(Duration::from_secs(5)) {
        Some(Event::Changed(change)) => {
            assert_eq!(change.new.as_deref().map(String::as_str), Some("x"));
        }
        other => panic!("the dict subscribed again: expected the change, got {other:?}"),
    }
    assert_eq!(threads_named("durabledict-feed-keeper"), 1);

    // Every subscription gone: the thread ends (within a quiet feed's wait of a second).
    drop(subscriptions);
    drop(again);
    writer.insert("k", "y".to_string()).unwrap();
    eventually("the keeper thread never ended", || {
        threads_named("durabledict-feed-keeper") == 0
    });
    // And starts again for a new subscriber.
    let late = dicts[7].subscribe();
    eventually("no keeper thread again", || {
        threads_named("durabledict-feed-keeper") == 1
    });
    writer.insert("k", "z".to_string()).unwrap();
    assert!(matches!(
        late.next_timeout(Duration::from_secs(5)),
        Some(Event::Changed(_))
    ));
    drop(late);
    drop(dicts);
    eventually("the keeper thread outlived its dicts", || {
        threads_named("durabledict-feed-keeper") == 0
    });
}
