//! Review of the keeper thread of a sharing feed, store-independent (`MemoryStore::with_feed`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Event, MemoryStore, Raw, Subscription, SyncPolicy};

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
