//! Full loads of the keyspace, which read many znodes at once without the store's lock: a
//! change made while one runs is neither lost nor applied out of order, and `pop` gives up on a
//! key that keeps changing under it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::proxy::{Hook, Proxy};
use common::{VISIBILITY, eventually, keyspace, raw_client};
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};
use durabledict_zookeeper::{ZooKeeperError, ZooKeeperStore};

const KEYS: usize = 2_000;

fn open_acl() -> Vec<zookeeper::Acl> {
    zookeeper::Acl::open_unsafe().clone()
}

/// Writes `value` at `node`, creating it when missing.
fn put(zk: &zookeeper::ZooKeeper, node: &str, value: &[u8]) {
    match zk.set_data(node, value.to_vec(), None) {
        Ok(_) => {}
        Err(ZkError::NoNode) => {
            match zk.create(node, value.to_vec(), open_acl(), CreateMode::Persistent) {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => panic!("create {node}: {e:?}"),
            }
        }
        Err(e) => panic!("set_data {node}: {e:?}"),
    }
}

/// Fills `ks` with [`KEYS`] keys, a few threads at once.
fn fill(connect: &str, ks: &str) {
    let zk = raw_client(connect);
    let mut prefix = String::new();
    for part in ks.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(part);
        match zk.create(&prefix, Vec::new(), open_acl(), CreateMode::Persistent) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {prefix}: {e:?}"),
        }
    }
    std::thread::scope(|scope| {
        for t in 0..8 {
            let zk = &zk;
            scope.spawn(move || {
                for i in (t..KEYS).step_by(8) {
                    put(zk, &format!("{ks}/k{i}"), b"initial");
                }
            });
        }
    });
}

fn server_contents(zk: &zookeeper::ZooKeeper, ks: &str) -> HashMap<String, String> {
    zk.get_children(ks, false)
        .unwrap()
        .into_iter()
        .filter_map(|key| {
            let (value, _) = zk.get_data(&format!("{ks}/{key}"), false).ok()?;
            Some((key, String::from_utf8(value).unwrap()))
        })
        .collect()
}

fn dict_contents(dict: &DurableDict<String>) -> HashMap<String, String> {
    dict.iter()
        .unwrap()
        .map(|(k, v)| (k.to_owned(), (*v).clone()))
        .collect()
}

/// Another client writes all the time: a counter into `hot` (so a value going back would
/// show), other keys over and over, one key deleted and created again. Returns when `stop`.
fn write_until(connect: &str, ks: &str, stop: &AtomicBool, written: &AtomicU64) {
    let zk = raw_client(connect);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        put(&zk, &format!("{ks}/hot"), i.to_string().as_bytes());
        put(
            &zk,
            &format!("{ks}/k{}", (i * 7919) as usize % KEYS),
            format!("w{i}").as_bytes(),
        );
        if i.is_multiple_of(5) {
            match zk.delete(&format!("{ks}/flicker"), None) {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => panic!("delete: {e:?}"),
            }
        } else if i % 5 == 2 {
            put(&zk, &format!("{ks}/flicker"), i.to_string().as_bytes());
        }
        written.store(i, Ordering::SeqCst);
    }
}

/// Dicts built (a first load) and reloaded (their connection cut, so they load everything
/// again) while another client writes all the time converge to exactly what the server
/// holds, and a `Watch` dict reading the hot key meanwhile never sees it go back.
#[test]
fn loads_under_a_running_writer_lose_no_change_and_never_go_back() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/loaded";
    fill(&connect, ks);
    let admin = raw_client(&connect);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| write_until(&connect, ks, &stop, &written));
        eventually("the writer is running", VISIBILITY, || {
            written.load(Ordering::SeqCst) > 10
        });
        // First loads under the writer.
        let first: Vec<DurableDict<String>> = (0..3)
            .map(|_| {
                let store = ZooKeeperStore::connect(&connect, ks).unwrap();
                DurableDict::builder(store, Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .unwrap()
            })
            .collect();
        // Reloads after a cut connection, under the writer, with a reader of the hot key.
        let proxy = Proxy::start(zk.port());
        let dict = DurableDict::<String>::builder(
            ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
                .session_timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            Raw,
        )
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
        let reading = AtomicBool::new(true);
        let reads = std::thread::scope(|inner| {
            let reader = inner.spawn(|| {
                let mut last = 0u64;
                let mut reads = 0u64;
                while reading.load(Ordering::SeqCst) {
                    if let Ok(Some(v)) = dict.get("hot") {
                        let v: u64 = v.parse().unwrap();
                        assert!(v >= last, "the hot key went back from {last} to {v}");
                        last = v;
                        reads += 1;
                    }
                    std::thread::yield_now();
                }
                reads
            });
            for _ in 0..4 {
                let reloads = dict.status().reloads;
                proxy.cut();
                std::thread::sleep(Duration::from_millis(50));
                proxy.restore();
                eventually(
                    "the dict reloads after its connection broke",
                    VISIBILITY * 3,
                    || dict.status().reloads > reloads,
                );
            }
            stop.store(true, Ordering::SeqCst);
            reading.store(false, Ordering::SeqCst);
            reader.join().unwrap()
        });
        assert!(reads > 0);
        let want = server_contents(&admin, ks);
        assert!(want.len() > KEYS);
        for dict in first.iter().chain([&dict]) {
            eventually(
                "every dict holds exactly what the server does",
                VISIBILITY,
                || dict_contents(dict) == want,
            );
        }
    });
}

/// The store's own writes during a full load are in its result: a dict that writes while its
/// store reloads (its connection cut) keeps every write it made.
#[test]
fn own_writes_during_a_load_are_kept() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/own-during-load";
    fill(&connect, ks);
    let proxy = Proxy::start(zk.port());
    let store = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
        .session_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    let admin = raw_client(&connect);
    for round in 0..4 {
        let reloads = dict.status().reloads;
        proxy.cut();
        std::thread::sleep(Duration::from_millis(50));
        proxy.restore();
        // Writes as soon as the connection is back, while the load runs.
        let mut n = 0;
        while dict.status().reloads == reloads && n < 500 {
            if dict
                .insert(&format!("k{}", n % KEYS), format!("own{round}.{n}"))
                .is_ok()
            {
                n += 1;
            }
        }
        eventually("the dict holds what the server does", VISIBILITY, || {
            dict_contents(&dict) == server_contents(&admin, ks)
        });
    }
}

/// `pop` reads a key and deletes only the version it read; when another client changes the
/// key between the two every time, it gives up after a bounded number of tries with a typed
/// error, instead of trying for ever.
#[test]
fn pop_gives_up_on_a_key_that_keeps_changing() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = keyspace("pop-contended");
    let node = format!("{ks}/k");
    let meddler = Arc::new(raw_client(&connect));
    let meddling = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    // Before each delete the store sends, another client changes the key: the delete, made
    // with the version read just before, always finds another one.
    let hook: Hook = {
        let (meddler, meddling, changes, node) = (
            Arc::clone(&meddler),
            Arc::clone(&meddling),
            Arc::clone(&changes),
            node.clone(),
        );
        Arc::new(move |opcode| {
            const DELETE: i32 = 2;
            if opcode == DELETE && meddling.load(Ordering::SeqCst) {
                let n = changes.fetch_add(1, Ordering::SeqCst);
                meddler
                    .set_data(&node, n.to_string().into_bytes(), None)
                    .unwrap();
            }
        })
    };
    let proxy = Proxy::start_with(zk.port(), Some(hook));
    let store = ZooKeeperStore::connect(&format!("127.0.0.1:{}", proxy.port()), &ks).unwrap();
    store.persist("k", b"v").unwrap();
    meddling.store(true, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let store = Arc::new(store);
    let popper = Arc::clone(&store);
    std::thread::spawn(move || {
        let _ = tx.send(popper.pop("k"));
    });
    let popped = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("pop must give up, not retry for as long as the key keeps changing");
    let error = popped.expect_err("every delete found another version");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    match error.inner().downcast_ref::<ZooKeeperError>() {
        Some(ZooKeeperError::Contended {
            op: "pop",
            key,
            attempts,
        }) => {
            assert_eq!(key, "k");
            assert_eq!(*attempts as u64, changes.load(Ordering::SeqCst));
        }
        other => panic!("expected a Contended error, got {other:?} ({error})"),
    }
    // The key is still there, with the meddler's last value; nothing was removed.
    meddling.store(false, Ordering::SeqCst);
    assert!(store.get("k").unwrap().is_some());
    // Once it stops changing, pop works.
    let (value, _) = store.pop("k").unwrap().expect("the key is there");
    assert_eq!(
        value,
        (changes.load(Ordering::SeqCst) - 1)
            .to_string()
            .into_bytes()
    );
}
