//! `DurableDict::get_confirmed`: a read given a stamp check made outside the dict (an async
//! client). It answers only when the check confirms the cache as the read's own check would:
//! the same stamp, and the store's epoch the cache's, before and after the check.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use durabledict_core::{DurableDict, MemoryStore, Raw, Store, SyncPolicy};

fn value(
    answer: Option<durabledict_core::Result<Option<std::sync::Arc<String>>>>,
) -> Option<String> {
    answer.map(|read| {
        read.unwrap()
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    })
}

fn dict(store: &MemoryStore, policy: SyncPolicy) -> DurableDict<String> {
    DurableDict::<String>::builder(store.clone(), Raw)
        .policy(policy)
        .build()
        .unwrap()
}

#[test]
fn the_same_stamp_and_epoch_answer_from_the_cache() {
    let store = MemoryStore::new();
    let dict = dict(&store, SyncPolicy::Always);
    dict.insert("a", "1".into()).unwrap();
    let (epoch, stamp) = (store.epoch(), store.last_updated().unwrap());
    assert_eq!(
        value(dict.get_confirmed("a", epoch, stamp)).as_deref(),
        Some("1")
    );
    assert_eq!(
        value(dict.get_confirmed("b", epoch, stamp)).as_deref(),
        Some("")
    );
}

#[test]
fn another_stamp_needs_the_store() {
    let store = MemoryStore::new();
    let dict = dict(&store, SyncPolicy::Always);
    dict.insert("a", "1".into()).unwrap();
    let epoch = store.epoch();
    store.persist("a", b"2").unwrap();
    assert!(
        dict.get_confirmed("a", epoch, store.last_updated().unwrap())
            .is_none()
    );
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("2")
    );
    let stamp = store.last_updated().unwrap();
    assert_eq!(
        value(dict.get_confirmed("a", epoch, stamp)).as_deref(),
        Some("2")
    );
}

/// A store restarted empty whose stamp writers count back to the synced number: the check
/// (made after the restart) reads the very stamp the cache has, but the epoch tells.
#[test]
fn a_restart_counted_back_to_the_stamp_is_not_confirmed() {
    let store = MemoryStore::new();
    let writer = dict(&store, SyncPolicy::Manual);
    writer.insert("a", "0".into()).unwrap();
    writer.insert("a", "1".into()).unwrap();
    let dict = dict(&store, SyncPolicy::Always);
    let synced = store.last_updated().unwrap();
    let before = store.epoch();

    store.restart();
    store.persist("a", b"50").unwrap();
    while store.last_updated().unwrap() < synced {
        store.persist("a", b"99").unwrap();
    }
    assert_eq!(store.last_updated().unwrap(), synced, "counted back");

    // The epoch read before a check that met the restarted store...
    assert!(dict.get_confirmed("a", before, synced).is_none());
    // ...or read after it: the cache was loaded in the old one either way.
    assert!(dict.get_confirmed("a", store.epoch(), synced).is_none());
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("99")
    );
}

/// The epoch changed while the check was in flight (the cache reloaded meanwhile, at the new
/// epoch): a check that began before cannot vouch for it.
#[test]
fn an_epoch_that_changed_during_the_check_is_not_confirmed() {
    let store = MemoryStore::new();
    let dict = dict(&store, SyncPolicy::Always);
    dict.insert("a", "1".into()).unwrap();
    let before = store.epoch();
    let stamp = store.last_updated().unwrap();
    store.fail_next(1);
    assert!(dict.get("a").is_err(), "the injected fault");
    assert_ne!(store.epoch(), before);
    dict.get("a").unwrap();
    assert!(dict.get_confirmed("a", before, stamp).is_none());
    let now = store.epoch();
    assert_eq!(
        value(dict.get_confirmed("a", now, stamp)).as_deref(),
        Some("1")
    );
}

#[test]
fn a_dict_fed_by_the_store_takes_its_own_path() {
    let store = MemoryStore::with_feed();
    let dict = dict(&store, SyncPolicy::Watch);
    let (epoch, stamp) = (store.epoch(), store.last_updated().unwrap());
    assert!(dict.get_confirmed("a", epoch, stamp).is_none());
}

/// Under `AtMostEvery` a confirmation restarts the window, as the dict's own check does.
#[test]
fn a_confirmation_restarts_the_at_most_every_window() {
    let store = MemoryStore::new();
    let dict = dict(&store, SyncPolicy::AtMostEvery(Duration::from_millis(200)));
    std::thread::sleep(Duration::from_millis(250));
    assert!(dict.try_get_local("a").is_none(), "the window passed");
    let (epoch, stamp) = (store.epoch(), store.last_updated().unwrap());
    assert!(dict.get_confirmed("a", epoch, stamp).is_some());
    assert!(dict.try_get_local("a").is_some(), "confirmed just now");
}

/// Served stale through an outage: the outage changed the epoch, so no outside check confirms
/// the cache; the dict's own read reloads and ends the stale serving.
#[test]
fn after_stale_serving_only_the_dict_confirms() {
    let store = MemoryStore::new();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    dict.insert("a", "1".into()).unwrap();
    store.set_available(false);
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("1")
    );
    assert!(dict.status().serving_stale);
    store.set_available(true);
    let (epoch, stamp) = (store.epoch(), store.last_updated().unwrap());
    assert!(dict.get_confirmed("a", epoch, stamp).is_none());
    assert!(dict.status().serving_stale);
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("1")
    );
    assert!(!dict.status().serving_stale);
    assert_eq!(
        value(dict.get_confirmed("a", epoch, stamp)).as_deref(),
        Some("1")
    );
}
