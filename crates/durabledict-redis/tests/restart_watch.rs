//! A Watch dict across an empty restart counted back by a Python-style writer.
//! `SyncPolicy::Watch` (restart_empty.rs covers `Always` and `AtMostEvery` only).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{keyspace, raw};
use durabledict_core::{DurableDict, Raw, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

fn python_write(url: &str, ks: &str, key: &str, value: &str) {
    redis::pipe()
        .atomic()
        .hset(ks, key, value)
        .ignore()
        .incr(format!("{ks}last_updated"), 1)
        .ignore()
        .exec(&mut raw(url))
        .unwrap();
}

fn watch_restart_empty(read_while_down: bool, serve_stale: bool) {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = keyspace("review-watch-restart");
    python_write(&url, &ks, "a", "0");
    python_write(&url, &ks, "a", "1");
    let mut builder = DurableDict::<String>::builder(RedisStore::open(&url, &ks).unwrap(), Raw)
        .policy(SyncPolicy::Watch);
    if serve_stale {
        builder = builder.serve_stale_for(Duration::from_secs(60));
    }
    let dict = builder.build().unwrap();
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("1")
    );
    server.stop();
    if read_while_down {
        std::thread::sleep(Duration::from_millis(100));
        let _ = dict.get("a");
    }
    server.restart().unwrap();
    python_write(&url, &ks, "a", "50");
    python_write(&url, &ks, "a", "99");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = dict.get("a").ok().flatten().map(|v| v.as_str().to_owned());
        if got.as_deref() == Some("99") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read_while_down={read_while_down} serve_stale={serve_stale}: still {got:?} 5 s after the restart"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn watch_sees_a_keyspace_counted_back_after_an_empty_restart() {
    for read_while_down in [false, true] {
        for serve_stale in [false, true] {
            watch_restart_empty(read_while_down, serve_stale);
        }
    }
}
