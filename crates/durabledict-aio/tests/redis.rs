//! Against a real Redis server: reads under `Always` never block the executor, cancelled
//! calls leave nothing half-written, changes arrive as a stream. Each test pauses a server of
//! its own, on a multi-thread and on a current-thread runtime.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{keyspace, own_server, pause, store, stored};
use durabledict_aio::AsyncDict;
use durabledict_core::{Event, Raw, SyncPolicy};
use futures_util::StreamExt;

const PAUSE: Duration = Duration::from_millis(1500);
const TICK: Duration = Duration::from_millis(10);

/// A timer task beside 1,000 reads under `Always` while the server is paused: the timer keeps
/// ticking, no read answers before the server does, and every read answers after. With
/// `on_task` the stamp is checked on the tasks (the store's async connections), else on the
/// blocking pool.
async fn timer_ticks_beside_reads_on_a_paused_server(on_task: bool) {
    let server = own_server();
    let url = server.url();
    let redis = store(&url, &keyspace());
    let source = on_task.then(|| redis.async_stamp().unwrap());
    let dict = AsyncDict::<String>::builder(redis, Raw)
        .stamp_source(source)
        .build()
        .await
        .unwrap();
    assert_eq!(dict.checks_on_task(), on_task);
    dict.insert("k", "v".to_string()).await.unwrap();
    assert!(
        !dict.answers_locally(),
        "Always checks the stamp before every read"
    );

    let ticks = Arc::new(AtomicU64::new(0));
    let timer = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                tokio::time::sleep(TICK).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    pause(&url, PAUSE);
    let paused_at = Instant::now();
    let answered = Arc::new(AtomicU64::new(0));
    let reads: Vec<_> = (0..1000)
        .map(|_| {
            let (dict, answered) = (dict.clone(), Arc::clone(&answered));
            tokio::spawn(async move {
                let value = dict.get("k").await;
                answered.fetch_add(1, Ordering::Relaxed);
                value
            })
        })
        .collect();

    tokio::time::sleep(PAUSE / 2).await;
    let ticks_while_paused = ticks.load(Ordering::Relaxed);
    assert_eq!(
        answered.load(Ordering::Relaxed),
        0,
        "no read answers while paused"
    );
    // 75 ticks fit in half the pause; a blocked executor would tick 0 or 1 times.
    assert!(
        ticks_while_paused >= 30,
        "the timer ticked {ticks_while_paused} times in {:?} beside 1,000 waiting reads",
        PAUSE / 2
    );
    for read in reads {
        assert_eq!(
            read.await.unwrap().unwrap().as_deref().map(String::as_str),
            Some("v")
        );
    }
    assert!(
        paused_at.elapsed() >= PAUSE - Duration::from_millis(100),
        "the reads waited for the server"
    );
    assert!(ticks.load(Ordering::Relaxed) > ticks_while_paused);
    timer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_reads_never_block_the_executor_multi_thread() {
    timer_ticks_beside_reads_on_a_paused_server(false).await;
    timer_ticks_beside_reads_on_a_paused_server(true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn always_reads_never_block_the_executor_current_thread() {
    timer_ticks_beside_reads_on_a_paused_server(false).await;
    timer_ticks_beside_reads_on_a_paused_server(true).await;
}

/// A write cancelled while it runs against a paused server still completes on the blocking
/// pool, in the store and the cache together; one cancelled while it waits for its turn
/// never runs; a cancelled read gives its turn back.
async fn cancelled_calls_leave_nothing_half_written() {
    let server = own_server();
    let url = server.url();
    let redis = store(&url, &keyspace());
    let hash = redis.hash_key().to_owned();
    let dict = AsyncDict::<String>::builder(redis, Raw)
        .policy(SyncPolicy::Manual)
        .max_blocking(1)
        .build()
        .await
        .unwrap();
    dict.insert("w", "old".to_string()).await.unwrap();
    let reloads = dict.status().reloads;

    pause(&url, PAUSE);
    // Started on the pool, then its future is dropped.
    let started = tokio::time::timeout(Duration::from_millis(200), dict.insert("w", "new".into()));
    assert!(
        started.await.is_err(),
        "the write waits for the paused server"
    );
    // Waits for the only permit, then its future is dropped: it never runs.
    let queued = tokio::time::timeout(Duration::from_millis(100), dict.insert("x", "never".into()));
    assert!(queued.await.is_err());
    let queued_read = tokio::time::timeout(Duration::from_millis(100), dict.sync());
    assert!(queued_read.await.is_err());

    // The next call runs after the started write: store and cache hold its value, applied
    // as an own write (no reload), and the dropped calls left nothing.
    let synced = tokio::time::timeout(Duration::from_secs(10), dict.sync()).await;
    assert!(
        !synced.unwrap().unwrap(),
        "the cache already held the write"
    );
    assert_eq!(stored(&url, &hash, "w").as_deref(), Some(&b"new"[..]));
    assert_eq!(
        dict.get("w").await.unwrap().as_deref().map(String::as_str),
        Some("new")
    );
    assert_eq!(stored(&url, &hash, "x"), None);
    assert_eq!(dict.get("x").await.unwrap(), None);
    assert_eq!(dict.status().reloads, reloads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_multi_thread() {
    cancelled_calls_leave_nothing_half_written().await;
}

#[tokio::test(flavor = "current_thread")]
async fn cancellation_current_thread() {
    cancelled_calls_leave_nothing_half_written().await;
}

/// Another program's write arrives on the stream.
async fn changes_arrive_as_a_stream() {
    let server = own_server();
    let url = server.url();
    let space = keyspace();
    let dict = AsyncDict::<String>::builder(store(&url, &space), Raw)
        .build()
        .await
        .unwrap();
    let mut changes = dict.changes().await;
    let other = AsyncDict::<String>::builder(store(&url, &space), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .await
        .unwrap();
    other.insert("mode", "fast".to_string()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .unwrap()
        .unwrap();
    let Event::Changed(change) = event else {
        panic!("expected a change, got {event:?}")
    };
    assert_eq!(&*change.key, "mode");
    assert_eq!(change.old, None);
    assert_eq!(change.new.as_deref().map(String::as_str), Some("fast"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_multi_thread() {
    changes_arrive_as_a_stream().await;
}

#[tokio::test(flavor = "current_thread")]
async fn changes_current_thread() {
    changes_arrive_as_a_stream().await;
}

/// Subscribing while an own write waits on a paused server (it holds the dict's update lock)
/// waits off the executor: a timer task keeps ticking, and the stream then hears what follows.
async fn subscribing_beside_a_stuck_write_never_blocks_the_executor() {
    let server = own_server();
    let url = server.url();
    let dict = Arc::new(
        AsyncDict::<String>::builder(store(&url, &keyspace()), Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .await
            .unwrap(),
    );
    dict.insert("k", "0".to_string()).await.unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    pause(&url, PAUSE);
    let paused_at = Instant::now();
    let writer = {
        let dict = Arc::clone(&dict);
        tokio::spawn(async move { dict.insert("k", "1".to_string()).await })
    };
    // The write is on the blocking pool, waiting on the server with the update lock held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = ticks.load(Ordering::Relaxed);
    let mut changes = dict.changes().await;
    let during = ticks.load(Ordering::Relaxed) - before;
    let waited = paused_at.elapsed();
    writer.await.unwrap().unwrap();
    ticker.abort();
    // Subscribing waited for the write (~1.3 s); a blocked executor would not tick at all.
    assert!(
        waited >= PAUSE - Duration::from_millis(300),
        "subscribed after {waited:?}, before the write ended"
    );
    assert!(
        during >= 30,
        "the timer ticked {during} times while changes() waited"
    );
    dict.insert("k", "2".to_string()).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .unwrap()
        .unwrap();
    let Event::Changed(change) = event else {
        panic!("expected a change, got {event:?}")
    };
    assert_eq!(change.new.as_deref().map(String::as_str), Some("2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_multi_thread() {
    subscribing_beside_a_stuck_write_never_blocks_the_executor().await;
}

#[tokio::test(flavor = "current_thread")]
async fn subscribing_current_thread() {
    subscribing_beside_a_stuck_write_never_blocks_the_executor().await;
}
