//! Which reads answer without leaving the task: a future that is ready at its first poll did
//! no I/O and never went to the blocking pool.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use durabledict_aio::AsyncDict;
use durabledict_core::{DurableDict, Event, MemoryStore, Raw, SyncPolicy};
use futures_util::{FutureExt, StreamExt};

fn text(value: Option<Arc<String>>) -> Option<String> {
    value.map(|v| v.as_str().to_owned())
}

async fn watch_reads_locally_while_the_feed_is_healthy() {
    let store = MemoryStore::with_feed();
    let dict = AsyncDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .await
        .unwrap();
    dict.insert("k", "1".to_string()).await.unwrap();
    // The store's notice of the own write makes the next read check once (as in the core).
    assert!(!dict.answers_locally());
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert!(dict.answers_locally());
    let ready = dict
        .get("k")
        .now_or_never()
        .expect("a local read is ready at once");
    assert_eq!(text(ready.unwrap()), Some("1".into()));

    // Another writer: its notice makes the next read check, on the blocking pool.
    let other = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    other.insert("k", "2".to_string()).unwrap();
    assert!(!dict.answers_locally());
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert!(dict.answers_locally(), "confirmed again after the check");

    // A lost feed: every read checks until it is back, then once more.
    store.cut_feed();
    assert!(!dict.answers_locally());
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert!(
        !dict.answers_locally(),
        "nothing is local while the feed is down"
    );
    store.restore_feed();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert!(dict.answers_locally());
}

async fn manual_and_at_most_every_read_locally() {
    let store = MemoryStore::new();
    let manual = AsyncDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .await
        .unwrap();
    manual.insert("k", "1".to_string()).await.unwrap();
    assert!(manual.answers_locally());
    assert_eq!(
        text(manual.get("k").now_or_never().unwrap().unwrap()),
        Some("1".into())
    );
    assert_eq!(manual.len().now_or_never().unwrap().unwrap(), 1);

    let window = Duration::from_millis(300);
    let bounded = AsyncDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::AtMostEvery(window))
        .build()
        .await
        .unwrap();
    assert!(
        bounded.answers_locally(),
        "within the window of the build's load"
    );
    assert_eq!(
        text(bounded.get("k").now_or_never().unwrap().unwrap()),
        Some("1".into())
    );
    tokio::time::sleep(window).await;
    assert!(
        !bounded.answers_locally(),
        "past the window the next read checks"
    );
    manual.insert("k", "2".to_string()).await.unwrap();
    assert_eq!(text(bounded.get("k").await.unwrap()), Some("2".into()));
    assert!(bounded.answers_locally(), "the check opened a new window");

    let always = AsyncDict::<String>::builder(store, Raw)
        .build()
        .await
        .unwrap();
    assert!(!always.answers_locally());
    assert_eq!(text(always.get("k").await.unwrap()), Some("2".into()));
}

/// A dict the facade did not build reads locally exactly when the sync dict would (the core
/// says so: the facade keeps no record of its own), `Watch` included.
async fn from_sync_reads_locally_as_the_dict_does() {
    let dict = Arc::new(
        DurableDict::<String>::builder(MemoryStore::with_feed(), Raw)
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
    );
    dict.insert("k", "1".to_string()).unwrap();
    let handle = AsyncDict::from_sync(Arc::clone(&dict));
    assert!(!handle.checks_on_task());
    // The own write's notice: one check (on the blocking pool), then local.
    assert!(!handle.answers_locally());
    assert_eq!(text(handle.get("k").await.unwrap()), Some("1".into()));
    assert!(handle.answers_locally());
    let ready = handle
        .get("k")
        .now_or_never()
        .expect("a local read is ready at once");
    assert_eq!(text(ready.unwrap()), Some("1".into()));
    // A read through the sync handle confirms for both.
    dict.insert("k", "2".to_string()).unwrap();
    assert!(!handle.answers_locally());
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("2")
    );
    assert!(handle.answers_locally());
    handle.remove("k").await.unwrap();
    assert_eq!(dict.get("k").unwrap(), None, "one cache under both handles");
    assert!(
        !handle
            .contains_key("k")
            .now_or_never()
            .expect("local")
            .unwrap(),
        "contains_key answers locally too"
    );
}

async fn own_writes_arrive_on_the_stream() {
    let dict = AsyncDict::<String>::builder(MemoryStore::with_feed(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .await
        .unwrap();
    let mut changes = dict.changes().await;
    dict.insert("a", "1".to_string()).await.unwrap();
    dict.remove("a").await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        match tokio::time::timeout(Duration::from_secs(5), changes.next()).await {
            Ok(Some(Event::Changed(change))) => {
                seen.push((change.key.to_string(), text(change.old), text(change.new)));
            }
            other => panic!("expected a change, got {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("a".into(), None, Some("1".into())),
            ("a".into(), Some("1".into()), None)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_multi_thread() {
    watch_reads_locally_while_the_feed_is_healthy().await;
    manual_and_at_most_every_read_locally().await;
    from_sync_reads_locally_as_the_dict_does().await;
    own_writes_arrive_on_the_stream().await;
}

#[tokio::test(flavor = "current_thread")]
async fn local_reads_current_thread() {
    watch_reads_locally_while_the_feed_is_healthy().await;
    manual_and_at_most_every_read_locally().await;
    from_sync_reads_locally_as_the_dict_does().await;
    own_writes_arrive_on_the_stream().await;
}
