//! The stamp: created from the server clock, one more per write (Python's `INCR`), bumps only
//! on change, atomic with the write, re-created
//! safely when lost, reloads when reset behind the dicts' backs, `Corrupt` when not an integer.

#![allow(clippy::unwrap_used)]

mod common;

use common::{keyspace, raw, raw_hash, raw_stamp, server_url};
use durabledict_core::{DurableDict, Error, Raw, SetDefault, Store, StoreErrorKind, SyncPolicy};
use durabledict_redis::RedisStore;

fn store(ks: &str) -> RedisStore {
    RedisStore::open(&server_url(), ks).unwrap()
}

fn dict(store: &RedisStore) -> DurableDict<String> {
    DurableDict::builder(store.clone(), Raw).build().unwrap()
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| v.as_str().to_owned())
}

fn store_kind(error: &Error) -> StoreErrorKind {
    error
        .store_error()
        .unwrap_or_else(|| panic!("not a store error: {error}"))
        .kind()
}

/// Python durabledict starts a new keyspace at 1 (its first `INCR`); this crate starts it from
/// the server clock, as it re-creates every lost stamp, so that a keyspace wiped whole (a
/// restart without persistence) is re-created far from any number a dict synced at. Python
/// readers compare with `>`, so a large first stamp is compatible; each write adds one, as
/// Python's `INCR` does.
#[test]
fn creation_seeds_from_the_server_clock_and_each_write_adds_one() {
    let store = store(&keyspace("numbering"));
    let mut conn = raw(&server_url());
    let (now, _): (i64, i64) = redis::cmd("TIME").query(&mut conn).unwrap();
    let dict = dict(&store);
    let created: i64 = raw_stamp(&mut conn, &store).unwrap().parse().unwrap();
    assert!(
        created >= now * 1_000_000,
        "created from the server clock, got {created}"
    );
    dict.insert("a", "1".into()).unwrap();
    dict.insert("b", "2".into()).unwrap();
    assert_eq!(
        raw_stamp(&mut conn, &store),
        Some((created + 2).to_string())
    );
    assert_eq!(dict.last_updated().unwrap(), Some(created + 2));
    // The layout is Python's: the hash named like the keyspace, the stamp beside it.
    assert_eq!(
        store.stamp_key(),
        format!("{}last_updated", store.keyspace())
    );
    assert_eq!(raw_hash(&mut conn, &store)["a"], b"1");
}

#[test]
fn creating_a_dict_never_bumps_an_existing_stamp() {
    let store = store(&keyspace("init"));
    let first = dict(&store);
    first.insert("k", "v".into()).unwrap();
    let before = store.last_updated().unwrap();
    let second = dict(&store);
    let third = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(store.last_updated().unwrap(), before);
    assert_eq!(read(&second, "k").as_deref(), Some("v"));
    assert_eq!(read(&third, "k").as_deref(), Some("v"));
    assert_eq!(
        first.status().reloads,
        1,
        "nobody reloads when a dict is created"
    );
}

#[test]
fn operations_that_change_nothing_do_not_bump() {
    let store = store(&keyspace("nobump"));
    store.init().unwrap();
    let created = store.last_updated().unwrap().unwrap();
    let s1 = store.persist("k", b"v").unwrap();
    assert_eq!(s1, created + 1);
    assert_eq!(
        store.setdefault("k", b"other").unwrap(),
        SetDefault::Existing(b"v".to_vec())
    );
    assert_eq!(store.pop("absent").unwrap(), None);
    assert_eq!(store.depersist("absent").unwrap(), None);
    assert_eq!(store.persist_many(&[]).unwrap(), None);
    assert_eq!(store.last_updated().unwrap(), Some(s1));
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));

    assert_eq!(
        store.setdefault("n", b"new").unwrap(),
        SetDefault::Inserted(s1 + 1)
    );
    assert_eq!(store.pop("n").unwrap(), Some((b"new".to_vec(), s1 + 2)));
    assert_eq!(
        store
            .persist_many(&[("a", b"1"), ("b", b"2"), ("c", b"3")])
            .unwrap(),
        Some(s1 + 3),
        "a batch bumps once"
    );
    assert_eq!(store.depersist("a").unwrap(), Some(s1 + 4));
    assert_eq!(store.clear().unwrap(), Some(s1 + 5));
    assert_eq!(store.clear().unwrap(), None, "clearing an empty keyspace");
    assert_eq!(store.last_updated().unwrap(), Some(s1 + 5));
    assert!(store.durables().unwrap().entries.is_empty());
}

#[test]
fn a_large_batch_is_one_write() {
    let store = store(&keyspace("batch"));
    store.init().unwrap();
    let created = store.last_updated().unwrap().unwrap();
    let values: Vec<(String, Vec<u8>)> = (0..5000)
        .map(|i| (format!("key{i}"), format!("value{i}").into_bytes()))
        .collect();
    let batch: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(store.persist_many(&batch).unwrap(), Some(created + 1));
    let durables = store.durables().unwrap();
    assert_eq!(durables.stamp, Some(created + 1));
    assert_eq!(durables.entries.len(), 5000);
    assert_eq!(durables.entries["key4999"], b"value4999");
}

#[test]
fn a_lost_stamp_is_seeded_from_the_server_clock() {
    let store = store(&keyspace("lost"));
    let mut conn = raw(&server_url());
    let dict = dict(&store);
    dict.insert("k", "v".into()).unwrap();
    let () = redis::cmd("DEL")
        .arg(store.stamp_key())
        .query(&mut conn)
        .unwrap();
    let (now, _): (i64, i64) = redis::cmd("TIME").query(&mut conn).unwrap();
    let seeded = store.persist("k", b"w").unwrap();
    assert!(
        seeded >= now * 1_000_000,
        "a re-created stamp is the server time in microseconds, got {seeded}"
    );
    assert_eq!(store.persist("k", b"x").unwrap(), seeded + 1);

    // A stamp reset to 0 from outside is re-seeded the same way.
    let () = redis::cmd("SET")
        .arg(store.stamp_key())
        .arg(0)
        .query(&mut conn)
        .unwrap();
    assert!(store.persist("k", b"y").unwrap() >= now * 1_000_000);

    // Also when the hash is empty: a dict that synced at 1 with no entries (a keyspace Python
    // created, or that an earlier version of this crate did) must not see 1 again with an
    // entry.
    let empty = self::store(&keyspace("lost-empty"));
    let () = redis::cmd("SET")
        .arg(empty.stamp_key())
        .arg(1)
        .query(&mut conn)
        .unwrap();
    let watcher = DurableDict::<String>::builder(empty.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    assert_eq!(watcher.status().stamp, Some(1));
    let () = redis::cmd("DEL")
        .arg(empty.stamp_key())
        .query(&mut conn)
        .unwrap();
    let stamp = empty.persist("k", b"v").unwrap();
    assert!(stamp > 1, "re-created as {stamp}");
    assert!(watcher.sync().unwrap(), "the watcher sees the change");
    assert_eq!(read(&watcher, "k").as_deref(), Some("v"));
}

#[test]
fn init_on_a_keyspace_with_values_but_no_stamp_seeds_from_the_clock() {
    let store = store(&keyspace("init-seed"));
    let mut conn = raw(&server_url());
    let () = redis::cmd("HSET")
        .arg(store.hash_key())
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let dict = dict(&store);
    let stamp = dict.last_updated().unwrap().unwrap();
    assert!(
        stamp > 1_000_000_000_000_000,
        "seeded from the clock: {stamp}"
    );
    assert_eq!(read(&dict, "k").as_deref(), Some("v"));
}

#[test]
fn a_stamp_deleted_or_reset_behind_the_dicts_back_makes_the_next_read_reload() {
    let store = store(&keyspace("reset"));
    let mut conn = raw(&server_url());
    let dict = dict(&store);
    dict.insert("k", "v1".into()).unwrap();
    dict.insert("k", "v2".into()).unwrap();
    dict.insert("k", "v3".into()).unwrap();
    let hset = |conn: &mut redis::Connection, value: &str| {
        let () = redis::cmd("HSET")
            .arg(store.hash_key())
            .arg("k")
            .arg(value)
            .query(conn)
            .unwrap();
    };
    let set_stamp = |conn: &mut redis::Connection, value: &str| {
        let () = redis::cmd("SET")
            .arg(store.stamp_key())
            .arg(value)
            .query(conn)
            .unwrap();
    };

    hset(&mut conn, "deleted");
    let () = redis::cmd("DEL")
        .arg(store.stamp_key())
        .query(&mut conn)
        .unwrap();
    assert_eq!(read(&dict, "k").as_deref(), Some("deleted"));

    dict.insert("k", "mine".into()).unwrap();
    hset(&mut conn, "zero");
    set_stamp(&mut conn, "0");
    assert_eq!(read(&dict, "k").as_deref(), Some("zero"));

    dict.insert("k", "mine".into()).unwrap();
    let current = store.last_updated().unwrap().unwrap();
    hset(&mut conn, "older");
    set_stamp(&mut conn, &(current - 2).to_string());
    assert_eq!(read(&dict, "k").as_deref(), Some("older"));
}

#[test]
fn a_stamp_that_is_not_an_integer_is_corrupt_and_nothing_is_written() {
    let store = store(&keyspace("corrupt"));
    let mut conn = raw(&server_url());
    let dict = dict(&store);
    dict.insert("k", "v".into()).unwrap();
    let () = redis::cmd("SET")
        .arg(store.stamp_key())
        .arg("not a number")
        .query(&mut conn)
        .unwrap();

    let read_error = dict.get("k").unwrap_err();
    assert_eq!(
        store_kind(&read_error),
        StoreErrorKind::Corrupt,
        "{read_error}"
    );

    // The bump fails before the write: the value is not written (reference 16).
    for result in [
        dict.insert("k", "w".into()),
        dict.insert("other", "w".into()),
        dict.update([("k", "w".to_string())]),
        dict.remove("k").map(drop),
        dict.setdefault("new", "w".into()).map(drop),
        dict.clear(),
    ] {
        let error = result.unwrap_err();
        assert_eq!(store_kind(&error), StoreErrorKind::Corrupt, "{error}");
    }
    let hash = raw_hash(&mut conn, &store);
    assert_eq!(hash.len(), 1);
    assert_eq!(hash["k"], b"v");

    let build_error = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap_err();
    assert_eq!(
        store_kind(&build_error),
        StoreErrorKind::Corrupt,
        "{build_error}"
    );
}

#[test]
fn keys_of_the_wrong_type_are_corrupt_and_named() {
    let mut conn = raw(&server_url());
    for (which, holds) in [
        ("hash", "a list, not a hash"),
        ("stamp", "a list, not an integer"),
        ("stamp", "\"twelve\", not an integer"),
    ] {
        let store = store(&keyspace("wrongtype"));
        let key = match which {
            "hash" => store.hash_key(),
            _ => store.stamp_key(),
        };
        if holds.starts_with("a list") {
            let () = redis::cmd("RPUSH")
                .arg(key)
                .arg("x")
                .query(&mut conn)
                .unwrap();
        } else {
            let () = redis::cmd("SET")
                .arg(key)
                .arg("twelve")
                .query(&mut conn)
                .unwrap();
        }
        let failures = [
            ("init", store.init().err()),
            ("last_updated", store.last_updated().err()),
            ("durables", store.durables().err()),
            ("get", store.get("k").err()),
            ("persist", store.persist("k", b"v").err()),
            ("persist_many", store.persist_many(&[("k", b"v")]).err()),
            ("depersist", store.depersist("k").err()),
            ("pop", store.pop("k").err()),
            ("setdefault", store.setdefault("k", b"v").err()),
            ("clear", store.clear().err()),
        ];
        let mut failed = 0;
        for (op, error) in failures {
            let Some(error) = error else { continue };
            failed += 1;
            assert_eq!(error.kind(), StoreErrorKind::Corrupt, "{op}: {error}");
            // The message names the key and what it holds, not the script's internals.
            let message = error.inner().to_string();
            assert!(
                message.contains(&format!("the Redis key {key:?}")) && message.contains(holds),
                "{op} on a {which} holding {holds}: {message}"
            );
            assert!(!message.contains("user_script"), "{op}: {message}");
            // The server's own words stay available as the source.
            if holds.starts_with("a list") {
                let source = std::error::Error::source(error.inner())
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                assert!(source.contains("WRONGTYPE"), "{op}: source {source:?}");
            }
        }
        assert!(failed >= 3, "{which} holding {holds}: only {failed} failed");
        if which == "hash" {
            // No write got as far as the bump.
            assert_eq!(raw_stamp(&mut conn, &store), None);
        }
    }
}

#[test]
fn binary_and_empty_values_and_odd_keys_round_trip() {
    let store = store(&keyspace("binary"));
    store.init().unwrap();
    let value: Vec<u8> = (0..=255).collect();
    store.persist("", &value).unwrap();
    store.persist("with space\r\n☃", b"").unwrap();
    let entries = store.durables().unwrap().entries;
    assert_eq!(entries[""], value);
    assert_eq!(entries["with space\r\n☃"], b"");
}

#[test]
fn a_declared_value_limit_is_enforced_before_sending() {
    let store = RedisStore::builder(&server_url(), &keyspace("limit"))
        .max_value_len(8)
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    dict.insert("k", "12345678".into()).unwrap();
    let error = dict.insert("k", "123456789".into()).unwrap_err();
    assert!(
        matches!(error, Error::ValueTooLarge { len: 9, max: 8, .. }),
        "{error}"
    );
    assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"12345678"[..]));
}

#[test]
fn stamps_beyond_two_to_the_53_stay_exact() {
    // Lua numbers are doubles: the scripts must not round a large stamp.
    let store = store(&keyspace("big"));
    store.init().unwrap();
    let big: i64 = (1 << 53) + 1;
    let () = redis::cmd("SET")
        .arg(store.stamp_key())
        .arg(big)
        .query(&mut raw(&server_url()))
        .unwrap();
    assert_eq!(store.persist("k", b"v").unwrap(), big + 1);
    assert_eq!(store.pop("k").unwrap(), Some((b"v".to_vec(), big + 2)));
    assert_eq!(store.last_updated().unwrap(), Some(big + 2));
}
