mod common;

use common::{is_closed, talk, timed};
use durabledict_test_servers::{RedisCluster, RedisServer};

const PING: &str = "*1\r\n$4\r\nPING\r\n";

#[test]
fn redis_server_starts_restarts_and_stops() {
    let mut redis = timed("redis start", RedisServer::start).expect("start redis");
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}/"));
    assert_eq!(talk(port, PING, "\r\n"), "+PONG\r\n");
    let set = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
    assert_eq!(talk(port, set, "\r\n"), "+OK\r\n");
    assert_eq!(
        talk(port, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "v\r\n"),
        "$1\r\nv\r\n"
    );

    redis.stop();
    assert!(!redis.is_running());
    assert!(is_closed(port));
    timed("redis restart", || redis.restart()).expect("restart redis");
    assert_eq!(redis.port(), port);
    assert_eq!(talk(port, PING, "\r\n"), "+PONG\r\n");
    // Persistence is off: a restarted server is empty.
    assert_eq!(
        talk(port, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", "\r\n"),
        "$-1\r\n"
    );

    drop(redis);
    assert!(is_closed(port));
}

#[test]
fn redis_cluster_serves_every_slot() {
    let cluster = timed("redis cluster start", RedisCluster::start).expect("start redis cluster");
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(
        cluster.urls()[0],
        format!("redis://127.0.0.1:{}/", ports[0])
    );
    for &port in &ports {
        let info = talk(
            port,
            "*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n",
            "cluster_known_nodes",
        );
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    }
    drop(cluster);
    for port in ports {
        assert!(is_closed(port));
    }
}
