//! Review: the full-load scenario of tests/load.rs (`loads_under_a_running_writer_...`) run
//! several times at once, waiting long enough to tell a slow dict from a lost change, and
//! naming the keys that differ. Unlike that test, the server's contents are read once the
//! writer has stopped (it read them while the writer could still make one more round of
//! writes, which failed it now and then under load with a dict that was right).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::proxy::Proxy;
use common::{VISIBILITY, eventually, raw_client};
use durabledict_core::{DurableDict, Raw, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};

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
fn scenario(round: usize) {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/loaded";
    fill(&connect, ks);
    let admin = raw_client(&connect);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(&connect, ks, &stop, &written));
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
        // The writer finishes the round it is in before the server's contents are read (the
        // test this copies reads them while the writer may still write once more).
        writer.join().unwrap();
        let want = server_contents(&admin, ks);
        assert!(want.len() > KEYS);
        for (n, dict) in first.iter().chain([&dict]).enumerate() {
            let started = std::time::Instant::now();
            let mut got = dict_contents(dict);
            while got != want && started.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
                got = dict_contents(dict);
            }
            let waited = started.elapsed();
            let diff: Vec<String> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}: server {v:?}, dict {:?}", got.get(k)))
                .chain(
                    got.keys()
                        .filter(|k| !want.contains_key(*k))
                        .map(|k| format!("{k}: only in the dict")),
                )
                .take(10)
                .collect();
            assert!(
                diff.is_empty(),
                "round {round}: dict {n} still differs after {waited:?} (status {:?}): {diff:?}",
                dict.status()
            );
            assert!(
                waited < VISIBILITY,
                "round {round}: dict {n} took {waited:?} to converge"
            );
        }
    });
}

#[test]
fn loads_under_a_writer_0() {
    for round in 0..2 {
        scenario(round);
    }
}

#[test]
fn loads_under_a_writer_1() {
    for round in 0..2 {
        scenario(round);
    }
}

#[test]
fn loads_under_a_writer_2() {
    for round in 0..2 {
        scenario(round);
    }
}
