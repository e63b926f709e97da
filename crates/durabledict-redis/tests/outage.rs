//! A server that goes away and comes back: errors of the right kind, the last snapshot only
//! when opted in, nothing half-applied, and the same dict working again after the restart.
//! Also the connect and I/O timeouts.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{keyspace, raw, raw_hash, raw_stamp};
use durabledict_core::{DurableDict, Error, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{RedisServer, free_port};

fn start() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

fn quick_store(url: &str, ks: &str) -> RedisStore {
    RedisStore::builder(url, ks)
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn unavailable(error: Error) {
    let kind = error
        .store_error()
        .unwrap_or_else(|| panic!("not a store error: {error}"))
        .kind();
    assert_eq!(kind, StoreErrorKind::Unavailable, "{error}");
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| v.as_str().to_owned())
}

#[test]
fn a_restart_under_a_live_dict() {
    // Persistent (every write synced to the append-only file), so that what the server holds
    // after the restart shows whether a failed write left anything behind.
    let mut server =
        RedisServer::start_with_args(["--appendonly", "yes", "--appendfsync", "always"])
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let ks = keyspace("restart");
    let strict = DurableDict::<String>::builder(quick_store(&server.url(), &ks), Raw)
        .build()
        .unwrap();
    let stale = DurableDict::<String>::builder(quick_store(&server.url(), &ks), Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    strict.insert("k", "v".into()).unwrap();
    assert_eq!(read(&stale, "k").as_deref(), Some("v"));
    let probe = quick_store(&server.url(), &ks);
    let stored = |server: &RedisServer| {
        let mut conn = raw(&server.url());
        (raw_hash(&mut conn, &probe), raw_stamp(&mut conn, &probe))
    };
    let before = stored(&server);
    assert_eq!(before.0.len(), 1);

    server.stop();

    // Always reads: an error by default, the last snapshot when opted in.
    unavailable(strict.get("k").unwrap_err());
    unavailable(strict.last_updated().unwrap_err());
    assert_eq!(read(&stale, "k").as_deref(), Some("v"));

    // Writes fail and change nothing in the cache.
    unavailable(stale.insert("k", "w".into()).unwrap_err());
    unavailable(stale.insert("new", "w".into()).unwrap_err());
    unavailable(stale.update([("k", "w".to_string())]).unwrap_err());
    unavailable(stale.remove("k").unwrap_err());
    unavailable(stale.setdefault("other", "w".into()).unwrap_err());
    unavailable(stale.clear().unwrap_err());
    assert_eq!(read(&stale, "k").as_deref(), Some("v"));
    assert!(!stale.contains_key("new").unwrap());
    assert_eq!(stale.len().unwrap(), 1);
    assert!(stale.status().last_error.is_some());

    // Back on the same port with what it held: no failed write left anything, not even a
    // stamp bump; the next operation succeeds, on the same dicts.
    server.restart().unwrap();
    assert_eq!(
        stored(&server),
        before,
        "a failed write left something on the server"
    );
    assert_eq!(read(&strict, "k").as_deref(), Some("v"));
    stale.insert("k", "again".into()).unwrap();
    assert_eq!(read(&stale, "k").as_deref(), Some("again"));
    assert_eq!(read(&strict, "k").as_deref(), Some("again"));
}

/// Stops the server and starts it again on the same port, quickly: well within
/// a second, so the dead pooled connections of a store that checks only connections idle for
/// longer are not checked with `PING`.
fn quick_restart(server: &mut RedisServer) {
    server.stop();
    server.restart().unwrap();
}

#[test]
fn the_first_read_or_write_after_a_quick_restart_succeeds() {
    let mut server = start();
    let store = RedisStore::open(&server.url(), &keyspace("quick")).unwrap();
    let reader = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    let writer = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    writer.insert("k", "v".into()).unwrap();
    assert_eq!(read(&reader, "k").as_deref(), Some("v"));

    // The pooled connections die with the server, unnoticed until used. A read is sent again
    // on a new connection.
    quick_restart(&mut server);
    assert_eq!(read(&reader, "k"), None);

    // So are the writes that set values: running one twice leaves the same value.
    quick_restart(&mut server);
    writer.insert("k", "after".into()).unwrap();
    assert_eq!(read(&reader, "k").as_deref(), Some("after"));
    quick_restart(&mut server);
    writer.update([("a", "1".to_string())]).unwrap();
    assert_eq!(read(&reader, "a").as_deref(), Some("1"));
    quick_restart(&mut server);
    assert_eq!(writer.setdefault("s", "1".into()).unwrap().as_str(), "1");
    assert_eq!(read(&reader, "s").as_deref(), Some("1"));
}

#[test]
fn a_removal_right_after_a_quick_restart_succeeds() {
    let mut server = start();
    let store = RedisStore::open(&server.url(), &keyspace("quick-removal")).unwrap();
    // With a check only after a second idle, the same removal fails once instead.
    let lazy = RedisStore::builder(&server.url(), store.hash_key())
        .check_idle_after(Duration::from_secs(1))
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    let stored = |server: &RedisServer| {
        let mut conn = raw(&server.url());
        redis::cmd("HGET")
            .arg(store.hash_key())
            .arg("k")
            .query::<Option<String>>(&mut conn)
            .unwrap()
    };
    // The restarted server is empty: give it the value again, from another connection.
    let put_back = |server: &RedisServer| {
        let mut conn = raw(&server.url());
        let () = redis::cmd("HSET")
            .arg(store.hash_key())
            .arg("k")
            .arg("v")
            .query(&mut conn)
            .unwrap();
    };
    type Removal = fn(&DurableDict<String>, &RedisStore) -> Result<bool, StoreErrorKind>;
    let pop: Removal = |dict, _| {
        dict.remove("k")
            .map(|old| old.is_some())
            .map_err(|e| e.store_error().unwrap().kind())
    };
    let depersist: Removal = |_, store| {
        store
            .depersist("k")
            .map(|stamp| stamp.is_some())
            .map_err(|e| e.kind())
    };
    for removal in [pop, depersist] {
        dict.insert("k", "v".into()).unwrap();
        quick_restart(&mut server);
        put_back(&server);

        // The dead pooled connection fails its PING; the removal goes to a new one.
        assert!(
            removal(&dict, &store).unwrap(),
            "removed at the first attempt"
        );
        assert_eq!(stored(&server), None);

        // A store that checks only connections idle for a second: sent once, on the dead
        // connection, which the new server never sees; nothing removed, and the failure empties
        // the pool, so the next attempt removes it.
        let lazy_dict = DurableDict::<String>::builder(lazy.clone(), Raw)
            .build()
            .unwrap();
        lazy_dict.insert("k", "v".into()).unwrap();
        let last_use = Instant::now();
        quick_restart(&mut server);
        put_back(&server);
        match removal(&lazy_dict, &lazy) {
            Err(kind) => {
                assert_eq!(kind, StoreErrorKind::Unavailable);
                assert_eq!(stored(&server).as_deref(), Some("v"), "removed anyway");
                assert!(removal(&lazy_dict, &lazy).unwrap());
            }
            Ok(removed) => {
                assert!(
                    last_use.elapsed() >= Duration::from_secs(1),
                    "sent on a connection the server had closed, and answered"
                );
                assert!(removed);
            }
        }
        assert_eq!(stored(&server), None);
    }
}

#[test]
fn refused_connections_are_unavailable() {
    let url = format!("redis://127.0.0.1:{}/", free_port().unwrap());
    let store = quick_store(&url, "nobody");
    assert_eq!(
        store.last_updated().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );
    let error = DurableDict::<String>::builder(store, Raw)
        .build()
        .unwrap_err();
    unavailable(error);
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts TCP connections (the kernel does, from the backlog) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://127.0.0.1:{}/", silent.local_addr().unwrap().port());
    let store = RedisStore::builder(&url, "silent")
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        store.last_updated().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_reply_slower_than_the_io_timeout_is_unavailable_and_the_store_recovers() {
    let server = start();
    let store = RedisStore::builder(&server.url(), &keyspace("slow"))
        .io_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    store.init().unwrap();
    let created = store.last_updated().unwrap();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("ALL")
        .query(&mut raw(&server.url()))
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        store.last_updated().unwrap_err().kind(),
        StoreErrorKind::Unavailable
    );
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(store.last_updated().unwrap(), created);
}
