//! `AsyncDict::keys` on a dict that answers locally (`Manual`) while one of its own writes
//! waits on a paused server: the keys must not be read on the executor thread, since reading
//! them after an own write waits for that write (the dict's update lock) and so for the
//! server; a `timeout` around the call must be able to give up on it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{keyspace, own_server, pause, store};
use durabledict_aio::AsyncDict;
use durabledict_core::{Raw, SyncPolicy};

const PAUSE: Duration = Duration::from_millis(1500);

async fn keys_beside_a_write_on_a_paused_server() {
    let server = own_server();
    let url = server.url();
    let dict = AsyncDict::<String>::builder(store(&url, &keyspace()), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .await
        .unwrap();
    dict.insert("a", "1".to_string()).await.unwrap();
    assert!(dict.answers_locally());
    pause(&url, PAUSE);
    let paused_at = Instant::now();
    let writer = {
        let dict = dict.clone();
        tokio::spawn(async move { dict.insert("b", "2".to_string()).await })
    };
    // The write is on the pool and holds the dict's update lock, waiting for the server.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let keys = tokio::time::timeout(Duration::from_millis(100), dict.keys()).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(600),
        "keys() held its task (and the executor thread) {took:?} waiting for a write on a paused \
         server ({:?} into a {PAUSE:?} pause); the timeout around it could not fire",
        started - paused_at
    );
    assert!(keys.is_err(), "the timeout gave up on the waiting call");
    writer.await.unwrap().unwrap();
    let mut keys = dict.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_do_not_block_the_executor_multi_thread() {
    keys_beside_a_write_on_a_paused_server().await;
}

#[tokio::test(flavor = "current_thread")]
async fn keys_do_not_block_the_executor_current_thread() {
    keys_beside_a_write_on_a_paused_server().await;
}
