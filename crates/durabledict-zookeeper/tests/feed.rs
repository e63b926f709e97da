//! The watch as the dicts' change feed ([`SyncPolicy::Watch`]): down the moment the
//! connection breaks, so a `Watch` dict keeps the store's outage semantics (served from the
//! cache up to the session timeout, then `Unavailable`), and up again once the keyspace has
//! been loaded on a new connection.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{VISIBILITY, eventually};
use durabledict_core::{DurableDict, Error, FeedHealth, Raw, StoreErrorKind, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;

const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

/// A `Watch` dict; building it is retried for a while, as a short session can drop its first
/// connection on a loaded machine.
fn watch_dict(connect: &str, keyspace: &str) -> DurableDict<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let built = ZooKeeperStore::builder(connect, keyspace)
            .session_timeout(SESSION_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())
            .and_then(|store| {
                DurableDict::builder(store, Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .map_err(|e| e.to_string())
            });
        match built {
            Ok(dict) => return dict,
            Err(e) => assert!(Instant::now() < deadline, "building a dict: {e}"),
        }
    }
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| (*v).clone())
}

#[test]
fn a_cut_connection_takes_the_feed_down_until_the_keyspace_is_loaded_again() {
    let zk = ZooKeeper::start().unwrap();
    let proxy = Proxy::start(zk.port());
    let ks = "/feed";
    let a = watch_dict(&format!("127.0.0.1:{}", proxy.port()), ks);
    let b = watch_dict(&zk.connect_string(), ks);
    b.insert("k", "1".into()).unwrap();
    eventually("a hears b's write", VISIBILITY, || {
        read(&a, "k").as_deref() == Some("1")
    });
    assert_eq!(a.status().feed, FeedHealth::Healthy);

    let cut = Instant::now();
    proxy.cut();
    eventually("a's feed goes down with its connection", VISIBILITY, || {
        a.status().feed == FeedHealth::Polling
    });
    b.insert("k", "2".into()).unwrap();
    b.insert("during", "x".into()).unwrap();
    // Within the session timeout a read is served from what the store confirmed before.
    if cut.elapsed() < SESSION_TIMEOUT {
        assert_eq!(read(&a, "k").as_deref(), Some("1"));
    }
    // Past it, every read checks the stamp, which fails: nothing unconfirmed is served.
    eventually(
        "a's reads fail once the session timeout has passed",
        SESSION_TIMEOUT * 3,
        || {
            matches!(a.get("k"), Err(Error::Store { ref source, .. })
                if source.kind() == StoreErrorKind::Unavailable)
        },
    );
    assert!(cut.elapsed() >= SESSION_TIMEOUT);

    proxy.restore();
    eventually(
        "a reconnects, loads what was written meanwhile, and its feed is up again",
        Duration::from_secs(20),
        || {
            a.get("k").ok().flatten().as_deref().map(String::as_str) == Some("2")
                && a.status().feed == FeedHealth::Healthy
        },
    );
    assert_eq!(read(&a, "during").as_deref(), Some("x"));
    // The new connection's watch works: later writes are heard.
    b.insert("after", "y".into()).unwrap();
    eventually(
        "a hears a write made after it reconnected",
        VISIBILITY,
        || read(&a, "after").as_deref() == Some("y"),
    );
}

/// A reload refused after reconnecting (here the keyspace is closed to reading while the store
/// is cut off) is tried again, so the store catches up with what changed meanwhile and its feed
/// comes back once the keyspace can be read again, with no event to prompt it.
#[test]
fn a_refused_reload_is_tried_again_until_the_feed_is_back() {
    use durabledict_zookeeper::zookeeper::{Acl, Permission};

    let zk = ZooKeeper::start().unwrap();
    let proxy = Proxy::start(zk.port());
    let ks = "/refused";
    let a = watch_dict(&format!("127.0.0.1:{}", proxy.port()), ks);
    let b = watch_dict(&zk.connect_string(), ks);
    let admin = common::raw_client(&zk.connect_string());
    b.insert("k", "1".into()).unwrap();
    eventually("a hears b's write", VISIBILITY, || {
        read(&a, "k").as_deref() == Some("1")
    });

    proxy.cut();
    eventually("a's feed goes down with its connection", VISIBILITY, || {
        a.status().feed == FeedHealth::Polling
    });
    b.insert("k", "2".into()).unwrap();
    // Everyone may still write and administer the keyspace, but nobody may list it.
    let unreadable =
        Permission::WRITE | Permission::CREATE | Permission::DELETE | Permission::ADMIN;
    admin
        .set_acl(ks, vec![Acl::new(unreadable, "world", "anyone")], None)
        .unwrap();
    proxy.restore();
    // a reconnects, and its reload is refused: it keeps serving what it confirmed before.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(a.status().feed, FeedHealth::Polling);
    assert_eq!(read(&a, "k").as_deref(), Some("1"));

    admin.set_acl(ks, Acl::open_unsafe().clone(), None).unwrap();
    eventually(
        "a reloads once the keyspace can be read, and its feed is up again",
        VISIBILITY * 2,
        || read(&a, "k").as_deref() == Some("2") && a.status().feed == FeedHealth::Healthy,
    );
}
