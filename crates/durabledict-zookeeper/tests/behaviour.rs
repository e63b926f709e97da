//! The store's own behaviour on a standalone server: propagation between clients, the stamp
//! counting own writes once, refused input, the Python layout, ACLs and chroots.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{VISIBILITY, eventually, keyspace, raw_client, server, store};
use durabledict_core::{DurableDict, Error, Raw, Store, StoreErrorKind};
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};
use durabledict_zookeeper::{Acl, MAX_KEY_LEN, Permissions, ZooKeeperError, ZooKeeperStore};

fn dict(store: ZooKeeperStore) -> DurableDict<String> {
    DurableDict::builder(store, Raw)
        .build()
        .expect("build a dict")
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).expect("get").map(|v| (*v).clone())
}

fn open_acl() -> Vec<zookeeper::Acl> {
    zookeeper::Acl::open_unsafe().clone()
}

#[test]
fn changes_propagate_between_dicts_with_separate_clients() {
    let ks = keyspace("propagate");
    let a = dict(store(&ks));
    let b = dict(store(&ks));
    a.insert("k", "1".into()).unwrap();
    eventually("b sees a's insert", VISIBILITY, || {
        read(&b, "k").as_deref() == Some("1")
    });
    b.insert("k", "2".into()).unwrap();
    eventually("a sees b's overwrite", VISIBILITY, || {
        read(&a, "k").as_deref() == Some("2")
    });
    a.update([("x", "3".to_string()), ("y", "4".to_string())])
        .unwrap();
    eventually("b sees a's batch", VISIBILITY, || b.len().unwrap() == 3);
    b.remove("k").unwrap();
    eventually("a sees b's removal", VISIBILITY, || read(&a, "k").is_none());
    a.clear().unwrap();
    eventually("b sees a's clear", VISIBILITY, || b.is_empty().unwrap());
}

#[test]
fn an_own_write_counts_once_and_foreign_changes_each_count() {
    let ks = keyspace("once");
    let mine = store(&ks);
    mine.init().unwrap();
    let theirs = store(&ks);
    let mut stamp = mine.last_updated().unwrap().unwrap();
    for i in 0..20 {
        let next = mine.persist(&format!("k{}", i % 3), b"v").unwrap();
        assert_eq!(
            next,
            stamp + 1,
            "an own write bumps the stamp by exactly one"
        );
        stamp = next;
    }
    assert_eq!(mine.depersist("k0").unwrap(), Some(stamp + 1));
    stamp += 1;
    assert_eq!(
        mine.depersist("k0").unwrap(),
        None,
        "an absent key does not bump"
    );
    // A foreign write is reported after every event of the own writes before it: once it is
    // seen, the own writes' events have all been handled, and they must not have bumped.
    theirs.persist("foreign", b"1").unwrap();
    eventually("the foreign write bumps the stamp", VISIBILITY, || {
        mine.last_updated().unwrap() != Some(stamp)
    });
    assert_eq!(
        mine.last_updated().unwrap(),
        Some(stamp + 1),
        "own writes' events must not bump the stamp again"
    );
    stamp += 1;
    // Each kind of foreign change bumps it: overwrite, delete, create.
    theirs.persist("foreign", b"2").unwrap();
    eventually("a foreign overwrite bumps", VISIBILITY, || {
        mine.last_updated().unwrap() == Some(stamp + 1)
    });
    theirs.depersist("foreign").unwrap();
    eventually("a foreign delete bumps", VISIBILITY, || {
        mine.last_updated().unwrap() == Some(stamp + 2)
    });
    assert!(!mine.durables().unwrap().entries.contains_key("foreign"));
}

/// Several stores, two threads each, racing on the same few keys with every kind of write:
/// each store's copy ends equal to the server, so no foreign change was taken for an own one.
#[test]
fn racing_writers_leave_every_store_equal_to_the_server() {
    for _ in 0..2 {
        let ks = keyspace("race");
        let stores: Vec<Arc<ZooKeeperStore>> = (0..3).map(|_| Arc::new(store(&ks))).collect();
        for s in &stores {
            s.init().unwrap();
        }
        std::thread::scope(|scope| {
            for (w, s) in stores.iter().chain(stores.iter()).enumerate() {
                scope.spawn(move || {
                    for i in 0..150 {
                        let key = ["a", "b"][(i * 31 + w) % 2];
                        let value = format!("{w}.{i}");
                        let value = value.as_bytes();
                        match (i * 7 + w * 3) % 6 {
                            0 => drop(s.depersist(key).unwrap()),
                            1 => drop(s.pop(key).unwrap()),
                            2 => drop(s.setdefault(key, value).unwrap()),
                            3 => drop(s.clear().unwrap()),
                            4 => drop(s.persist_many(&[(key, value), ("c", value)]).unwrap()),
                            _ => drop(s.persist(key, value).unwrap()),
                        }
                    }
                });
            }
        });
        let truth = raw_contents(&ks);
        for (i, s) in stores.iter().enumerate() {
            eventually(&format!("store {i} equals the server"), VISIBILITY, || {
                s.durables().unwrap().entries == truth
            });
        }
    }
}

fn raw_contents(ks: &str) -> std::collections::HashMap<String, Vec<u8>> {
    let zk = raw_client(&server());
    let children = zk.get_children(ks, false).unwrap();
    children
        .into_iter()
        .map(|c| {
            let value = zk.get_data(&format!("{ks}/{c}"), false).unwrap().0;
            (c, value)
        })
        .collect()
}

#[test]
fn keys_with_a_slash_are_refused_and_never_reach_the_server() {
    let ks = keyspace("slash");
    let d = dict(store(&ks));
    match d.insert("a/b", "v".into()) {
        Err(Error::InvalidKey { key, reason }) => {
            assert_eq!(key, "a/b");
            assert!(reason.contains('/'), "{reason}");
        }
        other => panic!("a key with '/' must be InvalidKey, got {other:?}"),
    }
    let s = store(&ks);
    let err = s.persist("a/b", b"v").unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Rejected);
    match err.inner().downcast_ref::<ZooKeeperError>() {
        Some(ZooKeeperError::InvalidKey { key, .. }) => assert_eq!(key, "a/b"),
        other => panic!("expected InvalidKey, got {other:?}"),
    }
    let zk = raw_client(&server());
    assert!(zk.get_children(&ks, false).unwrap().is_empty());
    // Removing such a key cannot reach a deeper znode.
    zk.create(
        &format!("{ks}/a"),
        b"1".to_vec(),
        open_acl(),
        CreateMode::Persistent,
    )
    .unwrap();
    zk.create(
        &format!("{ks}/a/b"),
        b"2".to_vec(),
        open_acl(),
        CreateMode::Persistent,
    )
    .unwrap();
    assert_eq!(s.depersist("a/b").unwrap(), None);
    assert_eq!(s.pop("a/b").unwrap(), None);
    assert_eq!(s.get("a/b").unwrap(), None);
    assert!(zk.exists(&format!("{ks}/a/b"), false).unwrap().is_some());
    // The deeper znode is not a key either: once its parent is seen, only the parent is.
    eventually("the new key is seen", VISIBILITY, || {
        d.contains_key("a").unwrap()
    });
    assert_eq!(
        d.keys().unwrap(),
        ["a"],
        "only direct children of the keyspace are keys"
    );
    assert_eq!(s.durables().unwrap().entries.len(), 1);
}

#[test]
fn oversized_values_are_refused_before_anything_is_sent() {
    let ks = keyspace("big");
    let s = store(&ks);
    let max = s.max_value_len().expect("a limit");
    assert!(max > 1_000_000 && max < 1 << 20, "about 1 MiB: {max}");
    let d = dict(store(&ks));
    match d.insert("big", "x".repeat(max + 1)) {
        Err(Error::ValueTooLarge { key, len, max: m }) => {
            assert_eq!((key.as_str(), len, m), ("big", max + 1, max));
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    let err = s.persist("big", &vec![b'x'; max + 1]).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Rejected);
    assert!(
        durabledict_core::Report(&err)
            .to_string()
            .contains("\"big\""),
        "{err}"
    );
    assert_eq!(s.get("big").unwrap(), None, "nothing was written");
    // The limit holds for the longest key, in a create and in an overwrite, and the
    // connection survives (an oversized request would make the server drop it).
    let longest = "k".repeat(MAX_KEY_LEN);
    d.insert(&longest, "y".repeat(max)).unwrap();
    d.insert(&longest, "z".repeat(max)).unwrap();
    assert_eq!(s.get(&longest).unwrap().map(|v| v.len()), Some(max));
    assert!(s.is_connected());
    d.insert("small", "s".into()).unwrap();
}

#[test]
fn the_layout_is_python_durabledicts() {
    let ks = format!("{}/nested/deeper", keyspace("layout"));
    let d = DurableDict::<Vec<u8>>::builder(store(&ks), Raw)
        .build()
        .unwrap();
    let zk = raw_client(&server());
    // The keyspace is created with its parents, with the open ACL by default.
    let (acl, _) = zk.get_acl(&ks).unwrap();
    assert_eq!(acl, open_acl());
    // One znode per key, its data the encoded value.
    d.insert("flag", b"\x80\x04on".to_vec()).unwrap();
    let (data, _) = zk.get_data(&format!("{ks}/flag"), false).unwrap();
    assert_eq!(data, b"\x80\x04on");
    let (acl, _) = zk.get_acl(&format!("{ks}/flag")).unwrap();
    assert_eq!(acl, open_acl());
    // A znode another program creates is a key.
    zk.create(
        &format!("{ks}/other"),
        b"py".to_vec(),
        open_acl(),
        CreateMode::Persistent,
    )
    .unwrap();
    eventually(
        "a znode created behind the dict's back is seen",
        VISIBILITY,
        || d.get("other").unwrap().is_some_and(|v| **v == *b"py"),
    );
    // Python durabledict writes a new key in two steps: an empty znode, then its value.
    zk.create(
        &format!("{ks}/two-step"),
        Vec::new(),
        open_acl(),
        CreateMode::Persistent,
    )
    .unwrap();
    zk.set_data(&format!("{ks}/two-step"), b"final".to_vec(), None)
        .unwrap();
    eventually("the value of a two-step write is seen", VISIBILITY, || {
        d.get("two-step").unwrap().is_some_and(|v| **v == *b"final")
    });
    zk.delete(&format!("{ks}/flag"), None).unwrap();
    eventually(
        "a znode deleted behind the dict's back is gone",
        VISIBILITY,
        || !d.contains_key("flag").unwrap(),
    );
}

#[test]
fn digest_acls_keep_other_clients_out() {
    let ks = keyspace("acl");
    let secure = |user: &str, password: &str| {
        ZooKeeperStore::builder(server(), &ks)
            .digest_auth(user, password)
            .acl(Acl::creator_all())
            .build()
            .unwrap()
    };
    let d = dict(secure("app", "s3cret"));
    d.insert("token", "abc".into()).unwrap();
    let zk = raw_client(&server());
    assert_eq!(
        zk.get_data(&format!("{ks}/token"), false).map(|(v, _)| v),
        Err(ZkError::NoAuth)
    );
    let authed = raw_client(&server());
    authed.add_auth("digest", b"app:s3cret".to_vec()).unwrap();
    let (acl, _) = authed.get_acl(&format!("{ks}/token")).unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme, "digest");
    assert!(acl[0].id.starts_with("app:"), "{:?}", acl[0].id);
    // Another client with the same identity reads it; one without cannot.
    let same = dict(secure("app", "s3cret"));
    assert_eq!(read(&same, "token").as_deref(), Some("abc"));
    let outsider = store(&ks);
    let err = outsider.durables().unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Rejected, "{err}");
    let wrong = ZooKeeperStore::builder(server(), &ks)
        .digest_auth("app", "guess")
        .build()
        .unwrap();
    assert_eq!(
        wrong.get("token").unwrap_err().kind(),
        StoreErrorKind::Rejected
    );
    // A custom ACL: the world may read, only the identity may write.
    let ks2 = keyspace("acl-read");
    let custom = ZooKeeperStore::builder(server(), &ks2)
        .digest_auth("app", "s3cret")
        .acl(vec![
            Acl::new(Permissions::READ, "world", "anyone"),
            Acl::new(Permissions::ALL, "auth", ""),
        ])
        .build()
        .unwrap();
    custom.init().unwrap();
    custom.persist("k", b"v").unwrap();
    let reader = store(&ks2);
    assert_eq!(reader.get("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        reader.persist("k", b"w").unwrap_err().kind(),
        StoreErrorKind::Rejected
    );
}

/// A raw client, a chroot made for the test, and the connect string rooted at it.
fn chrooted(name: &str) -> (zookeeper::ZooKeeper, String, String) {
    let chroot = keyspace(name);
    let zk = raw_client(&server());
    for path in [common::ROOT, chroot.as_str()] {
        match zk.create(path, Vec::new(), open_acl(), CreateMode::Persistent) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {path}: {e:?}"),
        }
    }
    let connect = format!("{}{chroot}", server());
    (zk, chroot, connect)
}

#[test]
fn a_chroot_in_the_connect_string_roots_the_keyspace() {
    let (zk, chroot, connect) = chrooted("chroot");
    let a = dict(ZooKeeperStore::connect(&connect, "/flags").unwrap());
    let b = dict(ZooKeeperStore::connect(&connect, "/flags").unwrap());
    a.insert("k", "v".into()).unwrap();
    let (data, _) = zk.get_data(&format!("{chroot}/flags/k"), false).unwrap();
    assert_eq!(data, b"v");
    eventually("events arrive through the chroot", VISIBILITY, || {
        read(&b, "k").as_deref() == Some("v")
    });
}

#[test]
fn the_root_of_a_chroot_can_be_the_keyspace() {
    // The client matches a persistent watch against `/a`, `/a/b`, … but never `/`: events
    // under a watch on the root reach the default watcher, which the store forwards.
    let (zk, chroot, connect) = chrooted("root-keyspace");
    let a = dict(ZooKeeperStore::connect(&connect, "/").unwrap());
    let b = dict(ZooKeeperStore::connect(&connect, "/").unwrap());
    a.insert("k", "v".into()).unwrap();
    let (data, _) = zk.get_data(&format!("{chroot}/k"), false).unwrap();
    assert_eq!(data, b"v");
    eventually("b sees a's insert under the root", VISIBILITY, || {
        read(&b, "k").as_deref() == Some("v")
    });
    zk.set_data(&format!("{chroot}/k"), b"w".to_vec(), None)
        .unwrap();
    eventually("a and b see a raw client's change", VISIBILITY, || {
        read(&a, "k").as_deref() == Some("w") && read(&b, "k").as_deref() == Some("w")
    });
    b.remove("k").unwrap();
    eventually("a sees b's removal", VISIBILITY, || read(&a, "k").is_none());
}

#[test]
fn invalid_configurations_are_refused() {
    for (connect, ks) in [
        (server(), "relative".to_owned()),
        (server(), "/trailing/".to_owned()),
        (server(), "/zookeeper/mine".to_owned()),
    ] {
        let err = ZooKeeperStore::connect(&connect, &ks).unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Rejected, "{ks}: {err}");
    }
    let err = ZooKeeperStore::builder(server(), "/x")
        .acl(Vec::new())
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Rejected);
}

#[test]
fn no_server_is_unavailable() {
    let port = durabledict_test_servers::free_port().unwrap();
    let started = Instant::now();
    let err = ZooKeeperStore::builder(format!("127.0.0.1:{port}"), "/x")
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Prints the propagation percentiles (the bench measures them too); asserts that every
/// write is seen.
#[test]
fn propagation_percentiles() {
    let ks = keyspace("latency");
    let a = dict(store(&ks));
    let b = dict(store(&ks));
    let mut times = Vec::with_capacity(200);
    for i in 0..200 {
        let value = i.to_string();
        let start = Instant::now();
        a.insert("k", value.clone()).unwrap();
        // Yield rather than sleep between reads (a sleep would dominate the figure) or spin
        // (a spinning reader takes a core from the server and clients it waits for).
        while read(&b, "k").as_deref() != Some(value.as_str()) {
            assert!(start.elapsed() < VISIBILITY, "b must see a's write");
            std::thread::yield_now();
        }
        times.push(start.elapsed());
    }
    times.sort();
    eprintln!(
        "propagation over 200 writes: p50 {:?}, p99 {:?}, max {:?}",
        times[100], times[198], times[199]
    );
}
