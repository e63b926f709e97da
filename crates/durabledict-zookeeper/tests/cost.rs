//! What one write costs a store that serves no dict (the CLI's `set` and `del`): a handful of
//! requests, however many keys the keyspace holds. Counted by the server itself, so this
//! binary runs its own server and nothing else talks to it while a count is taken.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use common::raw_client;
use durabledict_core::Store;
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;
use durabledict_zookeeper::zookeeper::{Acl, CreateMode};

/// Keys already in the keyspace: a full load would be one request each.
const KEYS: usize = 3000;

/// How many requests the server has received so far (`srvr`'s `Received`).
fn received(port: u16) -> u64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"srvr").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|line| line.strip_prefix("Received: "))
        .unwrap_or_else(|| panic!("no Received line in {answer:?}"))
        .trim()
        .parse()
        .unwrap()
}

/// Creates `/path/k0` … in parallel (the client pipelines requests from several threads).
fn create_keys(zk: zookeeper::ZooKeeper, path: &str, n: usize) {
    let zk = Arc::new(zk);
    zk.create(
        path,
        Vec::new(),
        Acl::open_unsafe().clone(),
        CreateMode::Persistent,
    )
    .unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let zk = Arc::clone(&zk);
            scope.spawn(move || {
                for i in (t..n).step_by(8) {
                    zk.create(
                        &format!("{path}/k{i}"),
                        b"v".to_vec(),
                        Acl::open_unsafe().clone(),
                        CreateMode::Persistent,
                    )
                    .unwrap();
                }
            });
        }
    });
}

#[test]
fn a_write_without_a_dict_costs_a_few_requests_whatever_the_keyspace_holds() {
    let zk = ZooKeeper::start().unwrap();
    create_keys(raw_client(&zk.connect_string()), "/big", KEYS);
    let requests = |what: &str, act: &dyn Fn(&ZooKeeperStore)| {
        let before = received(zk.port());
        // A new store each time, as each CLI command opens one: connecting is counted too.
        let store = ZooKeeperStore::connect(&zk.connect_string(), "/big").unwrap();
        act(&store);
        drop(store);
        let n = received(zk.port()) - before;
        eprintln!("{what}: {n} requests");
        n
    };
    // The CLI's `set`: prepare the store, then write (an existing key, then a new one).
    let set = requests("init + persist_many", &|s| {
        s.init().unwrap();
        s.persist_many(&[("k7", b"new")]).unwrap();
        s.persist_many(&[("fresh", b"x")]).unwrap();
    });
    // The CLI's `del`: look first, then prepare and delete.
    let del = requests("get + init + depersist", &|s| {
        assert!(s.get("k8").unwrap().is_some());
        s.init().unwrap();
        assert!(s.depersist("k8").unwrap().is_some());
    });
    // A full load reads every key; these must not.
    assert!(set < 20, "a write without a dict sent {set} requests");
    assert!(del < 20, "a removal without a dict sent {del} requests");
    // The writes happened.
    let check = raw_client(&zk.connect_string());
    assert_eq!(check.get_data("/big/k7", false).unwrap().0, b"new");
    assert_eq!(check.get_data("/big/fresh", false).unwrap().0, b"x");
    assert!(check.exists("/big/k8", false).unwrap().is_none());
    // A dict built on the store still loads everything.
    let loaded = ZooKeeperStore::connect(&zk.connect_string(), "/big").unwrap();
    loaded.init().unwrap();
    assert_eq!(loaded.durables().unwrap().entries.len(), KEYS);
}
