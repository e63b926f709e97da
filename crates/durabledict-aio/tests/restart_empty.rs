//! A server restarted without persistence, whose stamp a writer then counts back to exactly the
//! number a live dict synced at (as `crates/durabledict-redis/tests/restart_empty.rs`, for the
//! async path): a dict whose reads check the stamp on the task, over the store's async
//! connections (`RedisStore::async_stamp`), must see the new values. The async connection that
//! meets the restarted server must move the store's epoch on before its reply is used: a new
//! connection by the server's new `run_id`, a pooled one by its failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Counted, CountedSource, keyspace, raw};
use durabledict_aio::AsyncDict;
use durabledict_core::{DurableDict, Raw, Store, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

const INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum Writer {
    /// A new store per write, as a CLI run or a process started after the restart.
    Rust,
    /// Python durabledict's `persist`: `HSET` and `INCR` in one transaction.
    Python,
}

impl Writer {
    fn set(self, url: &str, ks: &str, key: &str, value: &str) {
        match self {
            Writer::Rust => {
                let store = RedisStore::open(url, ks).unwrap();
                let dict = DurableDict::<String>::builder(store, Raw)
                    .policy(SyncPolicy::Manual)
                    .build()
                    .unwrap();
                dict.insert(key, value.to_owned()).unwrap();
            }
            Writer::Python => {
                let () = redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(ks)
                    .arg(key)
                    .arg(value)
                    .ignore()
                    .cmd("INCR")
                    .arg(format!("{ks}last_updated"))
                    .ignore()
                    .query(&mut raw(url))
                    .unwrap();
            }
        }
    }
}

fn stamp(url: &str, ks: &str) -> Option<i64> {
    redis::cmd("GET")
        .arg(format!("{ks}last_updated"))
        .query(&mut raw(url))
        .unwrap()
}

async fn read(dict: &AsyncDict<String>, key: &str) -> Option<String> {
    dict.get(key).await.unwrap().map(|v| v.as_str().to_owned())
}

/// Whether the store keeps idle connections (its async ones included).
#[derive(Debug, Clone, Copy)]
enum Idle {
    /// The default: the async connection that read before the restart is pooled, and fails.
    Pooled,
    /// `max_idle(0)`: every check opens a new connection; only the new `run_id` tells.
    None,
}

fn open(url: &str, ks: &str, idle: Idle) -> RedisStore {
    match idle {
        Idle::Pooled => RedisStore::open(url, ks).unwrap(),
        Idle::None => RedisStore::builder(url, ks).max_idle(0).build().unwrap(),
    }
}

/// The writer sets `a` twice, the dict reads it (on the task), the server restarts empty, the
/// writer sets `a` twice again; the dict must read the second value.
async fn check(policy: SyncPolicy, writer: Writer, failed_check: bool, idle: Idle) {
    let mut server =
        RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let url = server.url();
    let ks = keyspace();
    let case = format!("{policy:?}, {writer:?} writer, failed check: {failed_check}, {idle:?}");

    writer.set(&url, &ks, "a", "0");
    writer.set(&url, &ks, "a", "1");
    let redis = open(&url, &ks, idle);
    let source = CountedSource::new(redis.async_stamp().unwrap());
    let store = Counted::new(redis);
    let dict = AsyncDict::<String>::builder(store.clone(), Raw)
        .policy(policy)
        .stamp_source(Some(source.clone()))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(INTERVAL * 2).await;
    let checks = store.checks();
    assert_eq!(read(&dict, "a").await.as_deref(), Some("1"), "{case}");
    assert_eq!(source.checks(), 1, "{case}: the read checked on the task");
    assert_eq!(store.checks(), checks, "{case}: and only there");
    let synced = dict.status().stamp;
    assert_eq!(synced, stamp(&url, &ks), "{case}");

    server.stop();
    if failed_check {
        tokio::time::sleep(INTERVAL * 2).await;
        assert!(
            dict.get("a").await.is_err(),
            "{case}: a check while the server is down"
        );
    }
    server.restart().unwrap();
    assert_eq!(stamp(&url, &ks), None, "{case}: the server came back empty");

    writer.set(&url, &ks, "a", "50");
    writer.set(&url, &ks, "a", "99");
    if let Writer::Python = writer {
        assert_eq!(
            stamp(&url, &ks),
            synced,
            "{case}: the stamp was counted back to the number the dict synced at"
        );
    }
    tokio::time::sleep(INTERVAL * 2).await;
    let checks = source.checks();
    assert_eq!(read(&dict, "a").await.as_deref(), Some("99"), "{case}");
    assert_eq!(
        source.checks(),
        checks + 1,
        "{case}: the read checked on the task first"
    );
}

/// Every case runs; the test fails listing the cases that failed.
async fn each_case(idle: Idle) {
    let mut failed = Vec::new();
    for policy in [SyncPolicy::Always, SyncPolicy::AtMostEvery(INTERVAL)] {
        for writer in [Writer::Rust, Writer::Python] {
            for failed_check in [false, true] {
                let case = tokio::spawn(check(policy, writer, failed_check, idle)).await;
                if let Err(e) = case {
                    failed.push(format!(
                        "{policy:?}, {writer:?}, failed check: {failed_check}: {e}"
                    ));
                }
            }
        }
    }
    assert!(failed.is_empty(), "stale after a restart: {failed:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_async_connection_fails_multi_thread() {
    each_case(Idle::Pooled).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_pooled_async_connection_fails_current_thread() {
    each_case(Idle::Pooled).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_async_connection_meets_another_run_id_multi_thread() {
    each_case(Idle::None).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_new_async_connection_meets_another_run_id_current_thread() {
    each_case(Idle::None).await;
}

/// The async stamp alone: the request that meets the restarted server moves the store's epoch
/// on before it answers, by its failure (a pooled connection) or by the new `run_id` (a new
/// one); on the same server nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_stamp_moves_the_epoch_before_it_answers() {
    for idle in [Idle::Pooled, Idle::None] {
        let mut server =
            RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        let url = server.url();
        let ks = keyspace();
        Writer::Python.set(&url, &ks, "a", "1");
        let store = open(&url, &ks, idle);
        let stamp = store.async_stamp().unwrap();
        assert_eq!(store.last_updated().unwrap(), Some(1));
        assert_eq!(stamp.last_updated().await.unwrap(), Some(1));
        let epoch = store.epoch();
        assert_eq!(stamp.last_updated().await.unwrap(), Some(1));
        assert_eq!(store.epoch(), epoch, "{idle:?}: the same server");

        server.stop();
        server.restart().unwrap();
        Writer::Python.set(&url, &ks, "a", "99");
        match idle {
            Idle::Pooled => {
                assert!(stamp.last_updated().await.is_err(), "the pooled one broke");
                assert!(store.epoch() > epoch, "bumped by the failure");
                let epoch = store.epoch();
                assert_eq!(stamp.last_updated().await.unwrap(), Some(1));
                assert!(store.epoch() > epoch, "and by the new run_id");
            }
            Idle::None => {
                assert_eq!(stamp.last_updated().await.unwrap(), Some(1));
                assert!(store.epoch() > epoch, "bumped by the new run_id");
            }
        }
        assert_eq!(stamp.epoch(), store.epoch(), "one counter");
    }
}
