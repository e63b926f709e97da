//! Reads that check the stamp on the task, with the Redis store's async connections
//! (`RedisStore::async_stamp`): they answer without the blocking pool while the stamp holds,
//! fall back to it (and reload) when it does not, and a cancelled check leaves nothing behind.
//! Each case runs on a multi-thread and on a current-thread runtime.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Counted, CountedSource, keyspace, own_server, pause, raw, store};
use durabledict_aio::AsyncDict;
use durabledict_core::{Raw, Store, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_redis::aio::AsyncStamp;

type Parts = (
    AsyncDict<String>,
    Counted<RedisStore>,
    CountedSource<AsyncStamp>,
);

async fn build(url: &str, ks: &str, policy: SyncPolicy) -> Parts {
    let redis = store(url, ks);
    let source = CountedSource::new(redis.async_stamp().unwrap());
    let counted = Counted::new(redis);
    let dict = AsyncDict::<String>::builder(counted.clone(), Raw)
        .policy(policy)
        .stamp_source(Some(source.clone()))
        .build()
        .await
        .unwrap();
    (dict, counted, source)
}

fn text(value: Option<std::sync::Arc<String>>) -> Option<String> {
    value.map(|v| v.as_str().to_owned())
}

/// Under `Always` every read checks on the task: the store's own check is never called while
/// the stamp holds; another program's write makes one read fall back and reload.
async fn always_reads_check_on_the_task() {
    let server = own_server();
    let url = server.url();
    let ks = keyspace();
    let (dict, store, source) = build(&url, &ks, SyncPolicy::Always).await;
    assert!(dict.checks_on_task());
    dict.insert("k", "1".to_string()).await.unwrap();
    let (checks, reloads) = (store.checks(), dict.status().reloads);
    for _ in 0..50 {
        assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
        assert!(dict.contains_key("k").await.unwrap());
        assert!(!dict.contains_key("absent").await.unwrap());
    }
    assert_eq!(source.checks(), 150);
    assert_eq!(store.checks(), checks, "no check on the blocking pool");
    assert_eq!(dict.status().reloads, reloads);

    // Another program writes: the stamp moved on, the read falls back and reloads once.
    let () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(&ks)
        .arg("k")
        .arg("2")
        .ignore()
        .cmd("INCR")
        .arg(format!("{ks}last_updated"))
        .ignore()
        .query(&mut raw(&url))
        .unwrap();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert_eq!(dict.status().reloads, reloads + 1);
    assert_eq!(store.checks(), checks + 1, "the fallback's own check");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert_eq!(store.checks(), checks + 1, "on the task again");
    assert_eq!(source.failures(), 0);
}

/// `AtMostEvery` past its window checks on the task and restarts the window; `Manual` and
/// `Watch` (a store that pushes) need no source.
async fn other_policies() {
    let server = own_server();
    let url = server.url();
    let window = Duration::from_millis(100);
    let (dict, store, source) = build(&url, &keyspace(), SyncPolicy::AtMostEvery(window)).await;
    assert!(dict.checks_on_task());
    dict.insert("k", "1".to_string()).await.unwrap();
    tokio::time::sleep(window * 2).await;
    assert!(!dict.answers_locally());
    let checks = store.checks();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!(source.checks(), 1);
    assert_eq!(store.checks(), checks);
    assert!(dict.answers_locally(), "the check restarted the window");

    for policy in [SyncPolicy::Manual, SyncPolicy::Watch] {
        let (dict, _, source) = build(&url, &keyspace(), policy).await;
        assert!(!dict.checks_on_task(), "{policy:?}");
        dict.insert("k", "1".to_string()).await.unwrap();
        assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
        assert_eq!(source.checks(), 0, "{policy:?}");
    }
}

/// A read whose check is cancelled while the server is paused: its connection is dropped,
/// nothing is recorded, and the next reads answer on the task as before.
async fn a_cancelled_check_leaves_nothing() {
    let server = own_server();
    let url = server.url();
    let (dict, store, source) = build(&url, &keyspace(), SyncPolicy::Always).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    let (checks, reloads, epoch) = (store.checks(), dict.status().reloads, store.epoch());

    pause(&url, Duration::from_millis(500));
    let cancelled = tokio::time::timeout(Duration::from_millis(100), dict.get("k")).await;
    assert!(cancelled.is_err(), "the check waits for the paused server");
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!(store.checks(), checks, "answered on the task");
    assert_eq!(dict.status().reloads, reloads);
    assert_eq!(store.epoch(), epoch, "a cancelled check concludes nothing");
    assert_eq!(source.failures(), 0);
}

/// The async connections are killed (as a server closing its clients): the next check fails,
/// which may hide a restart, so the epoch moves on and the read falls back and reloads.
async fn a_failed_check_falls_back_and_reloads() {
    let server = own_server();
    let url = server.url();
    let (dict, store, source) = build(&url, &keyspace(), SyncPolicy::Always).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    let (reloads, epoch) = (dict.status().reloads, store.epoch());
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut raw(&url))
        .unwrap();
    assert!(killed >= 1);
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!(source.failures(), 1);
    assert!(store.epoch() > epoch);
    assert_eq!(dict.status().reloads, reloads + 1);
    let checks = store.checks();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!(store.checks(), checks, "on the task again");
}

/// Over a Unix socket.
async fn a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis.sock");
    let _server = durabledict_test_servers::RedisServer::start_with_args([
        "--unixsocket".to_string(),
        path.display().to_string(),
    ])
    .unwrap();
    let url = format!("redis+unix://{}", path.display());
    let (dict, store, source) = build(&url, &keyspace(), SyncPolicy::Always).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    let checks = store.checks();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!((source.checks(), source.failures()), (1, 0));
    assert_eq!(store.checks(), checks);
}

/// A user, a password and a database: the async handshake sends `AUTH` and `SELECT` as the
/// sync connections do, and reads the same stamp.
async fn auth_and_database() {
    let server = durabledict_test_servers::RedisServer::start_with_args([
        "--user", "app", "on", ">secret", "~*", "+@all",
    ])
    .unwrap();
    let url = format!("redis://app:secret@127.0.0.1:{}/3", server.port());
    let ks = keyspace();
    let (dict, store, source) = build(&url, &ks, SyncPolicy::Always).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    let checks = store.checks();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!((source.checks(), source.failures()), (1, 0));
    assert_eq!(store.checks(), checks);
    let stamp: Option<i64> = redis::cmd("GET")
        .arg(format!("{ks}last_updated"))
        .query(&mut raw(&url))
        .unwrap();
    assert_eq!(source.source.last_updated().await.unwrap(), stamp);
    assert!(stamp.is_some());
}

async fn all() {
    always_reads_check_on_the_task().await;
    other_policies().await;
    a_cancelled_check_leaves_nothing().await;
    a_failed_check_falls_back_and_reloads().await;
    a_unix_socket().await;
    auth_and_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_task_multi_thread() {
    all().await;
}

#[tokio::test(flavor = "current_thread")]
async fn on_task_current_thread() {
    all().await;
}
