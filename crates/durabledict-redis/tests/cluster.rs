//! On a cluster: the hash-tagged layout, one bump per write, batch writes in one slot, and
//! writes that the cluster client never sends twice.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Target, cluster_urls, keyspace, raw, raw_hash, raw_stamp};
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind};
use durabledict_redis::RedisStore;

#[test]
fn hash_tagged_keys_one_bump_per_write_and_batches() {
    let ks = keyspace("cluster");
    let store = RedisStore::cluster_builder(cluster_urls(), &ks)
        .build()
        .unwrap();
    assert_eq!(store.hash_key(), format!("{{{ks}}}"));
    assert_eq!(store.stamp_key(), format!("{{{ks}}}last_updated"));

    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    // Created from the server clock (see scripts.rs), then one more per write.
    let created = store.last_updated().unwrap().unwrap();
    dict.insert("a", "1".into()).unwrap();
    dict.insert("b", "2".into()).unwrap();
    let mut raw = Target::Cluster(cluster_urls()).raw();
    let stamp: String = redis::cmd("GET")
        .arg(store.stamp_key())
        .query(&mut *raw)
        .unwrap();
    assert_eq!(stamp, (created + 2).to_string());

    let values: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("k{i}"), vec![b'v'; i % 7]))
        .collect();
    let batch: Vec<(&str, &[u8])> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(store.persist_many(&batch).unwrap(), Some(created + 3));
    assert_eq!(store.durables().unwrap().entries.len(), 3002);
    assert_eq!(dict.len().unwrap(), 3002);
}

/// Keeps every master of the cluster inside one Lua script for a while. The scripts are sent
/// without waiting for their replies, so the test acts while the nodes are blocked: a command
/// sent meanwhile waits in the node's socket buffer and runs once the script ends.
struct Busy(Vec<redis::Connection>);

impl Busy {
    fn start(nodes: &[String], busy: Duration) -> Self {
        // A loop on the server clock, so it lasts as long on a loaded machine as on an idle
        // one (and well under the 5 s `busy-reply-threshold`, after which nodes answer BUSY).
        let spin = redis::cmd("EVAL")
            .arg(
                "local t = redis.call('TIME') local from = t[1] * 1000000 + t[2] \
                 repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - from >= tonumber(ARGV[1])",
            )
            .arg(0)
            .arg(busy.as_micros().to_string())
            .get_packed_command();
        let conns = nodes
            .iter()
            .map(|url| {
                let mut conn = raw(url);
                conn.send_packed_command(&spin).unwrap();
                conn
            })
            .collect();
        // Let every node take its script before the caller's command arrives.
        std::thread::sleep(Duration::from_millis(200));
        Busy(conns)
    }

    /// Waits until every node has finished its script, then a little longer, so that the
    /// commands queued behind it have run too.
    fn finish(self) {
        for mut conn in self.0 {
            conn.recv_response().unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn stamp_and_hash(store: &RedisStore) -> (i64, HashMap<String, Vec<u8>>) {
    let mut raw = Target::Cluster(cluster_urls()).raw();
    let stamp = raw_stamp(&mut *raw, store).unwrap().parse().unwrap();
    (stamp, raw_hash(&mut *raw, store))
}

#[test]
fn a_write_without_a_reply_in_time_is_sent_once_and_fails_as_unavailable() {
    let nodes = cluster_urls();
    let io_timeout = Duration::from_millis(100);
    let busy_for = Duration::from_millis(1500);
    let store = RedisStore::cluster_builder(nodes.clone(), &keyspace("busy"))
        .io_timeout(io_timeout)
        .build()
        .unwrap();
    store.init().unwrap();
    let created = store.last_updated().unwrap().unwrap();
    // Pools a write connection that knows the slots, and loads the scripts.
    assert_eq!(store.persist("k", b"v").unwrap(), created + 1);
    assert_eq!(store.persist("p", b"v").unwrap(), created + 2);

    // An insert: no reply within the I/O timeout. It fails, promptly, and runs at most once
    // (its bytes reached the node, so it most likely runs when the node is free again).
    let epoch = store.epoch();
    let busy = Busy::start(&nodes, busy_for);
    let started = Instant::now();
    let inserted = store.persist("k", b"w");
    let took = started.elapsed();
    busy.finish();
    let error = inserted.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    // A failed request may hide a restart: dicts reload once (see the crate docs).
    assert!(
        store.epoch() > epoch,
        "the failure did not change the epoch"
    );
    assert!(took < io_timeout * 5, "the write blocked for {took:?}");
    let (stamp, hash) = stamp_and_hash(&store);
    match stamp - (created + 2) {
        0 => assert_eq!(hash["k"], b"v"),
        1 => assert_eq!(hash["k"], b"w"),
        n => panic!("one insert ran {n} times"),
    }

    // The store works again, on a new connection.
    let before = stamp;
    assert_eq!(store.persist("k", b"x").unwrap(), before + 1);

    // A pop: it must not answer "absent" (nor anything) while the node is blocked; it runs at
    // most once, so the value is either still there or removed with one bump.
    let busy = Busy::start(&nodes, busy_for);
    let started = Instant::now();
    let popped = store.pop("p");
    let took = started.elapsed();
    busy.finish();
    match popped {
        Err(error) => assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}"),
        Ok(answer) => panic!("pop answered {answer:?} while the node was blocked"),
    }
    assert!(took < io_timeout * 5, "the pop blocked for {took:?}");
    let (stamp, hash) = stamp_and_hash(&store);
    match stamp - (before + 1) {
        0 => assert_eq!(hash["p"], b"v"),
        1 => assert!(!hash.contains_key("p"), "bumped without removing"),
        n => panic!("one pop ran {n} times"),
    }
}

/// Moves the slot of `key` to the next master, the way `redis-cli --cluster reshard` does. A
/// client still holding the old slot map is then answered `MOVED` by the old owner.
fn move_slot(nodes: &[String], key: &str) {
    let query =
        |node: usize, cmd: &mut redis::Cmd| cmd.query::<redis::Value>(&mut raw(&nodes[node]));
    let owner = (0..nodes.len())
        .find(|&node| query(node, redis::cmd("EXISTS").arg(key)).is_ok())
        .unwrap();
    let target = (owner + 1) % nodes.len();
    let id = |node: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut raw(&nodes[node]))
            .unwrap()
    };
    let (owner_id, target_id) = (id(owner), id(target));
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut raw(&nodes[0]))
        .unwrap();
    let set_slot = |node: usize, state: &str, id: &str| {
        query(
            node,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(id),
        )
        .unwrap();
    };
    set_slot(target, "IMPORTING", &owner_id);
    set_slot(owner, "MIGRATING", &target_id);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(slot)
        .arg(100)
        .query(&mut raw(&nodes[owner]))
        .unwrap();
    let port = nodes[target]
        .trim_start_matches("redis://127.0.0.1:")
        .trim_end_matches('/');
    query(
        owner,
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys),
    )
    .unwrap();
    for node in [target, owner, (target + 1) % nodes.len()] {
        set_slot(node, "NODE", &target_id);
    }
}

#[test]
fn a_write_answered_moved_was_not_run_and_goes_to_the_new_owner() {
    let nodes = cluster_urls();
    let store = RedisStore::cluster_builder(nodes.clone(), &keyspace("moved"))
        .build()
        .unwrap();
    store.init().unwrap();
    let created = store.last_updated().unwrap().unwrap();
    // Pools a write connection whose slot map says where the keyspace lives.
    assert_eq!(store.persist("k", b"v").unwrap(), created + 1);

    // The pooled connection sends to the old owner, which refuses with MOVED (the script did
    // not run); the write goes once more, on a new connection with the new slot map.
    move_slot(&nodes, store.hash_key());
    assert_eq!(store.persist("k", b"w").unwrap(), created + 2);
    // The same for a removal.
    move_slot(&nodes, store.hash_key());
    assert_eq!(store.pop("k").unwrap(), Some((b"w".to_vec(), created + 3)));
    let (stamp, hash) = stamp_and_hash(&store);
    assert_eq!((stamp, hash.len()), (created + 3, 0));
}

/// The feed follows the stamp key's slot: after a migration the old owner answers the feed's
/// probe with `MOVED`, the feed is marked down, then subscribes on the new owner, where a
/// write made with no store of this process (a raw cluster connection) is heard.
#[test]
fn the_feed_follows_its_slot_to_the_new_owner() {
    let nodes = cluster_urls();
    let ks = keyspace("feed-moved");
    let store = RedisStore::cluster_builder(nodes.clone(), &ks)
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(durabledict_core::SyncPolicy::Watch)
        .build()
        .unwrap();
    let within = |bound: Duration, what: &str, check: &mut dyn FnMut() -> bool| {
        let deadline = Instant::now() + bound;
        while !check() {
            assert!(Instant::now() < deadline, "{what} (within {bound:?})");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    within(Duration::from_secs(3), "the feed comes up", &mut || {
        feed.state().is_up()
    });
    let mut raw = Target::Cluster(nodes.clone()).raw();
    // HSET and INCR as one (a cluster connection cannot pipeline a MULTI).
    let mut python_write = |value: &str| {
        redis::cmd("EVAL")
            .arg("redis.call('HSET', KEYS[1], 'k', ARGV[1]); return redis.call('INCR', KEYS[2])")
            .arg(2)
            .arg(store.hash_key())
            .arg(store.stamp_key())
            .arg(value)
            .exec(&mut *raw)
            .unwrap();
    };
    python_write("before");
    within(Duration::from_secs(2), "a raw write is heard", &mut || {
        dict.get("k").unwrap().as_deref().map(String::as_str) == Some("before")
    });

    move_slot(&nodes, store.stamp_key());
    within(
        Duration::from_secs(2),
        "the old owner's MOVED marks the feed down",
        &mut || !feed.state().is_up(),
    );
    within(
        Duration::from_secs(3),
        "the feed is back on the new owner",
        &mut || feed.state().is_up(),
    );
    for i in 0..3 {
        let value = format!("after {i}");
        let heard = feed.state();
        python_write(&value);
        within(
            Duration::from_secs(2),
            "a raw write on the new owner is heard",
            &mut || feed.state() != heard,
        );
        assert_eq!(
            dict.get("k").unwrap().as_deref().map(String::as_str),
            Some(value.as_str())
        );
    }
}
