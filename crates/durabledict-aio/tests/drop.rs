//! Dropping the dict stops its background work: the stream ends, and the thread that feeds
//! it and the dict's own listener thread exit. Alone in its binary: it counts the process's
//! threads by name.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use durabledict_aio::AsyncDict;
use durabledict_core::{MemoryStore, Raw, SyncPolicy};
use futures_util::StreamExt;

/// Threads of this process whose name starts with `prefix` (Linux truncates names to 15).
fn threads(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

fn background() -> (usize, usize) {
    (threads("dd-aio-changes"), threads("durabledict-lis"))
}

async fn wait_for_background(want: (usize, usize)) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while background() != want {
        assert!(
            Instant::now() < deadline,
            "background threads {:?}, want {want:?}",
            background()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn dropping_the_dict_stops_its_background_work() {
    let before = background();
    // `Always` on a store without a feed: the core's listener thread polls the stamp.
    let dict = AsyncDict::<String>::builder(MemoryStore::new(), Raw)
        .policy(SyncPolicy::Always)
        .build()
        .await
        .unwrap();
    let mut changes = dict.changes().await;
    let mut dropped_early = dict.changes().await;
    wait_for_background((before.0 + 2, before.1 + 1)).await;

    // A stream dropped while the dict lives frees its thread.
    dropped_early.next().now_or_never_helper();
    drop(dropped_early);
    wait_for_background((before.0 + 1, before.1 + 1)).await;

    dict.insert("k", "v".to_string()).await.unwrap();
    assert!(changes.next().await.is_some());
    drop(dict);
    let end = tokio::time::timeout(Duration::from_secs(5), changes.next()).await;
    assert!(end.unwrap().is_none(), "the stream ends with the dict");
    wait_for_background(before).await;
}

/// Polls once, so a dropped stream is one that was in use.
trait PollOnce {
    fn now_or_never_helper(self);
}

impl<F: std::future::Future> PollOnce for F {
    fn now_or_never_helper(self) {
        let _ = futures_util::FutureExt::now_or_never(self);
    }
}

#[test]
fn dropping_the_dict_stops_background_work_on_both_runtimes() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(dropping_the_dict_stops_its_background_work());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(dropping_the_dict_stops_its_background_work());
}
