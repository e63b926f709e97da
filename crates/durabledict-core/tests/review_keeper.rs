//! Review of the keeper thread of a sharing feed, store-independent (`MemoryStore::with_feed`).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Event, MemoryStore, Raw, Subscription, SyncPolicy};

/// The tests of this file run one at a time: they count the threads of their process, and
/// `cargo test` runs a binary's tests as threads of one process.
static SERIAL: Mutex<()> = Mutex::new(());

/// This process's keeper threads (Linux keeps 15 bytes of a thread's name).
fn keepers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "durabledict-fee")
        .count()
}

fn watch(store: &MemoryStore) -> Arc<DurableDict<String>> {
    Arc::new(
        DurableDict::builder(store.clone(), Raw)
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
    )
}

/// How long until `events` announces `key` set to `value` (at most 10 s).
fn heard(events: &Subscription<String>, key: &str, value: &str) -> Duration {
    let started = Instant::now();
    loop {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        match events.next_timeout(left) {
            Some(Event::Changed(change))
                if &*change.key == key
                    && change.new.as_deref().map(String::as_str) == Some(value) =>
            {
                return started.elapsed();
            }
            Some(_) => {}
            None => panic!("{key} = {value} not heard within 10 s"),
        }
    }
}

/// A dict subscribed after a notice it has not read yet (the keeper, running for another
/// dict, already had its round for that notice): its listener hears the change at once, as
/// it did with a thread of the dict's own, not at the keeper's next quiet round (1 s later).
#[test]
fn a_dict_subscribed_after_a_notice_hears_it_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let store = MemoryStore::with_feed();
    let writer = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    let first = watch(&store);
    let first_events = first.subscribe();
    let mut waits = Vec::new();
    for i in 0..5 {
        let late = watch(&store);
        let value = i.to_string();
        writer.insert("k", value.clone()).unwrap();
        // The keeper's round for this notice is over.
        heard(&first_events, "k", &value);
        let late_events = late.subscribe();
        waits.push(heard(&late_events, "k", &value));
    }
    waits.sort();
    assert!(
        waits[2] < Duration::from_millis(500),
        "a late listener waited {waits:?}"
    );
}

/// The keeper thread ends within `FEED_QUIET` (1 s) of its last subscription's end, as
/// `Feed::keep` says: the round that lets the last dict go ends the thread. It waited one
/// more quiet second first (2.0 s).
#[test]
fn the_keeper_ends_within_a_quiet_second_of_its_last_listener() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let before = keepers();
    let store = MemoryStore::with_feed();
    let dict = watch(&store);
    let events = dict.subscribe();
    // (The thread names itself once it runs.)
    let started = Instant::now();
    while keepers() != before + 1 {
        assert!(started.elapsed() < Duration::from_secs(10), "no keeper");
        std::thread::sleep(Duration::from_millis(1));
    }
    // A write of another dict: this one hears it from the keeper's round.
    let writer = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    writer.insert("k", "v".into()).unwrap();
    heard(&events, "k", "v");
    // That round is over: the next comes a quiet second later.
    drop(events);
    let dropped = Instant::now();
    while keepers() > before {
        assert!(
            dropped.elapsed() < Duration::from_millis(1600),
            "the keeper still runs {:?} after its last listener left",
            dropped.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
