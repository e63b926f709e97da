//! Failover in a 3-node ensemble: the server a client uses goes away.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{VISIBILITY, eventually};
use durabledict_core::{DurableDict, Error, Raw, Store, StoreErrorKind};
use durabledict_test_servers::ZooKeeperEnsemble;
use durabledict_zookeeper::ZooKeeperStore;

fn four_letters(port: u16, command: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(command.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

fn session_count(port: u16) -> usize {
    four_letters(port, "cons").matches("sid=0x").count()
}

fn connect_string(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn dict(connect: &str) -> DurableDict<String> {
    let store = ZooKeeperStore::builder(connect, "/failover")
        .session_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    DurableDict::builder(store, Raw).build().unwrap()
}

#[test]
fn failover_keeps_reads_served_and_loses_no_acknowledged_write() {
    let mut ensemble = ZooKeeperEnsemble::start(3).unwrap();
    let ports = ensemble.ports();
    // a uses the leader, so that losing its server also costs the ensemble an election;
    // b starts on another node and stays there.
    let leader = (0..3)
        .find(|&i| four_letters(ports[i], "srvr").contains("Mode: leader"))
        .expect("a leader");
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let a_ports = [ports[leader], ports[others[0]], ports[others[1]]];
    let b_ports = [ports[others[1]], ports[others[0]], ports[leader]];
    let a = dict(&connect_string(&a_ports));
    assert_eq!(session_count(ports[leader]), 1, "a is on the leader");
    let b = dict(&connect_string(&b_ports));
    assert_eq!(session_count(ports[others[1]]), 1, "b is on another node");

    a.update((0..10).map(|i| (format!("k{i}"), i.to_string())))
        .unwrap();
    let mut acknowledged: Vec<(String, String)> =
        (0..10).map(|i| (format!("k{i}"), i.to_string())).collect();
    eventually("b sees a's writes", VISIBILITY, || b.len().unwrap() == 10);

    ensemble.stop_node(leader);
    let stopped = Instant::now();
    let mut refused = 0;
    let mut first_success = None;
    let mut i = 0;
    while acknowledged.len() < 30 {
        // Reads are served throughout, from the cache while a has no server.
        assert_eq!(
            a.get("k3").unwrap().as_deref().map(String::as_str),
            Some("3"),
            "reads keep being served during the failover"
        );
        let (key, value) = (format!("f{}", i % 25), i.to_string());
        i += 1;
        match a.insert(&key, value.clone()) {
            Ok(()) => {
                first_success.get_or_insert(stopped.elapsed());
                acknowledged.retain(|(k, _)| *k != key);
                acknowledged.push((key, value));
            }
            Err(Error::Store { source, .. }) if source.kind() == StoreErrorKind::Unavailable => {
                refused += 1;
                assert!(
                    stopped.elapsed() < Duration::from_secs(30),
                    "writes never succeeded again: {source}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(other) => panic!("a write during failover failed unexpectedly: {other}"),
        }
    }
    eprintln!(
        "failover: first write acknowledged {:?} after the stop, {refused} refused meanwhile",
        first_success.unwrap_or_default()
    );
    // b keeps working, and a sees b's writes again through its new server's watch.
    b.insert("from-b", "x".into()).unwrap();
    eventually("a sees b's write after failing over", VISIBILITY, || {
        a.get("from-b").unwrap().is_some()
    });
    // Nothing acknowledged is lost: the surviving servers hold every acknowledged write.
    acknowledged.push(("from-b".into(), "x".into()));
    acknowledged.sort();
    let survivors = ZooKeeperStore::connect(&connect_string(&b_ports[..2]), "/failover").unwrap();
    let mut held: Vec<(String, String)> = survivors
        .durables()
        .unwrap()
        .entries
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
    held.sort();
    assert_eq!(held, acknowledged);
    eventually("b converges", VISIBILITY, || {
        let mut mine: Vec<(String, String)> =
            b.iter().unwrap().map(|(k, v)| (k, (*v).clone())).collect();
        mine.sort();
        mine == acknowledged
    });
}
