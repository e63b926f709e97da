//! A server restarted without persistence, whose stamp a writer then counts back to exactly
//! the number a live dict synced at (issue 14): the dict must see the new values, under
//! `Always` and `AtMostEvery`, whether or not it saw a check fail while the server was down,
//! for a Rust writer and for a Python one (`HSET` + `INCR` from nothing in one `MULTI`).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{keyspace, raw};
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

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| v.as_str().to_owned())
}

/// How the reading dict's store is built, from the URL and the keyspace.
type Reader = fn(&str, &str) -> RedisStore;

/// The writer sets `a` twice, a dict reads it, the server restarts empty, the writer sets `a`
/// twice again; the dict must read the second value.
fn check(policy: SyncPolicy, writer: Writer, failed_check: bool, reader: Reader) {
    let mut server =
        RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let url = server.url();
    let ks = keyspace("restart-empty");
    let case = format!("{policy:?}, {writer:?} writer, failed check: {failed_check}");

    writer.set(&url, &ks, "a", "0");
    writer.set(&url, &ks, "a", "1");
    let dict = DurableDict::<String>::builder(reader(&url, &ks), Raw)
        .policy(policy)
        .build()
        .unwrap();
    assert_eq!(read(&dict, "a").as_deref(), Some("1"), "{case}");
    let synced = dict.status().stamp;
    assert_eq!(synced, stamp(&url, &ks), "{case}");

    server.stop();
    if failed_check {
        std::thread::sleep(INTERVAL * 2);
        assert!(
            dict.get("a").is_err(),
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
    std::thread::sleep(INTERVAL * 2);
    assert_eq!(read(&dict, "a").as_deref(), Some("99"), "{case}");
}

/// Every case runs; the test fails listing the cases that failed.
fn each_case(reader: Reader) {
    let mut failed = Vec::new();
    for policy in [SyncPolicy::Always, SyncPolicy::AtMostEvery(INTERVAL)] {
        for writer in [Writer::Rust, Writer::Python] {
            for failed_check in [false, true] {
                let case = std::panic::catch_unwind(|| check(policy, writer, failed_check, reader));
                if case.is_err() {
                    failed.push(format!(
                        "{policy:?}, {writer:?}, failed check: {failed_check}"
                    ));
                }
            }
        }
    }
    assert!(failed.is_empty(), "stale after a restart: {failed:#?}");
}

/// The dict's pooled connection dies with the server: its first check after the restart
/// fails on it and is sent again on a new connection, and succeeds.
#[test]
fn a_dict_sees_a_keyspace_counted_back_to_its_stamp_after_a_restart() {
    each_case(|url, ks| RedisStore::open(url, ks).unwrap());
}

/// No pooled connection: nothing fails after the restart, every check opens a new connection;
/// only the server's new `run_id` tells.
#[test]
fn without_pooled_connections_the_new_run_id_tells() {
    each_case(|url, ks| RedisStore::builder(url, ks).max_idle(0).build().unwrap());
}

/// An ACL user that may not run `INFO`: the server has no identity to compare, so every new
/// connection after the first counts as a possible restart.
#[test]
fn a_server_that_hides_its_run_id() {
    let mut server =
        RedisServer::start_with_args(["--user", "reader", "on", ">secret", "~*", "+@all", "-info"])
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let url = server.url();
    let ks = keyspace("hidden-run-id");
    let hidden = |url: &str| url.replace("redis://", "redis://reader:secret@");
    let refused = redis::cmd("INFO")
        .query::<String>(&mut raw(&hidden(&url)))
        .unwrap_err();
    assert_eq!(refused.code(), Some("NOPERM"), "{refused}");

    Writer::Python.set(&url, &ks, "a", "1");
    let dict = DurableDict::<String>::builder(
        RedisStore::builder(&hidden(&url), &ks)
            .max_idle(0)
            .build()
            .unwrap(),
        Raw,
    )
    .build()
    .unwrap();
    assert_eq!(read(&dict, "a").as_deref(), Some("1"));
    server.stop();
    server.restart().unwrap();
    Writer::Python.set(&url, &ks, "a", "99");
    assert_eq!(stamp(&url, &ks), dict.status().stamp);
    assert_eq!(read(&dict, "a").as_deref(), Some("99"));
}

/// Nothing changed: a dict keeps its snapshot across stamp checks on the same server, also when
/// each check opens a new connection (the `run_id` is the same).
#[test]
fn the_same_server_costs_no_reload() {
    let server = RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let ks = keyspace("same-server");
    let store = RedisStore::builder(&server.url(), &ks)
        .max_idle(0)
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    dict.insert("a", "1".into()).unwrap();
    let epoch = store.epoch();
    let reloads = dict.status().reloads;
    for _ in 0..5 {
        assert_eq!(read(&dict, "a").as_deref(), Some("1"));
    }
    assert_eq!(store.epoch(), epoch);
    assert_eq!(dict.status().reloads, reloads);
}
