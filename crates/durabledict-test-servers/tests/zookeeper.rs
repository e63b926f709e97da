mod common;

use std::time::{Duration, Instant};

use common::{is_closed, talk, timed};
use durabledict_test_servers::{ZooKeeper, ZooKeeperEnsemble};

fn mode(port: u16) -> Option<String> {
    let srvr = talk(port, "srvr", "\u{0}never");
    srvr.lines()
        .find_map(|line| line.strip_prefix("Mode: "))
        .map(str::to_string)
}

#[test]
fn zookeeper_starts_restarts_and_stops() {
    let mut zk = timed("zookeeper start", ZooKeeper::start).expect("start zookeeper");
    let port = zk.port();
    assert_eq!(zk.connect_string(), format!("127.0.0.1:{port}"));
    assert_eq!(talk(port, "ruok", "imok"), "imok");
    assert_eq!(mode(port).as_deref(), Some("standalone"));

    zk.stop();
    assert!(is_closed(port));
    timed("zookeeper restart", || zk.restart()).expect("restart zookeeper");
    assert_eq!(mode(port).as_deref(), Some("standalone"));

    drop(zk);
    assert!(is_closed(port));
}

#[test]
fn zookeeper_ensemble_keeps_its_quorum_without_one_node() {
    let mut zk = timed("zookeeper ensemble start", || ZooKeeperEnsemble::start(3))
        .expect("start zookeeper ensemble");
    let ports = zk.ports();
    assert_eq!(zk.len(), 3);
    assert_eq!(
        zk.connect_string(),
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let modes: Vec<_> = ports.iter().map(|&p| mode(p)).collect();
    let leader = modes
        .iter()
        .position(|m| m.as_deref() == Some("leader"))
        .unwrap_or_else(|| panic!("no leader: {modes:?}"));

    // Stopping the leader forces an election among the two that are left.
    zk.stop_node(leader);
    assert!(is_closed(ports[leader]));
    let others: Vec<u16> = (0..3).filter(|&i| i != leader).map(|i| ports[i]).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let modes: Vec<_> = others.iter().map(|&p| mode(p)).collect();
        let quorum = modes
            .iter()
            .all(|m| matches!(m.as_deref(), Some("leader" | "follower")));
        if quorum {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no quorum without node {leader}: {modes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    timed("zookeeper node restart", || zk.start_node(leader)).expect("start the node again");
    assert!(matches!(
        mode(ports[leader]).as_deref(),
        Some("leader" | "follower")
    ));

    drop(zk);
    for port in ports {
        assert!(is_closed(port));
    }
}
