//! The CLI on a real ZooKeeper: get, set, list and watch, with the keyspace path from the URL
//! or from `--keyspace`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::{Watcher, command, keyspace, run, run_within};
use durabledict::zookeeper::zookeeper::{self, Acl, CreateMode, WatchedEvent};
use durabledict_test_servers::ZooKeeper;

fn hosts() -> String {
    static ZK: OnceLock<ZooKeeper> = OnceLock::new();
    ZK.get_or_init(|| ZooKeeper::start().expect("start ZooKeeper"))
        .connect_string()
}

fn children(path: &str) -> Vec<String> {
    let zk = zookeeper::ZooKeeper::connect(&hosts(), Duration::from_secs(10), |_: WatchedEvent| {})
        .unwrap();
    let mut names = zk.get_children(path, false).unwrap();
    names.sort();
    names
}

#[test]
fn get_set_and_list_under_the_path_in_the_url() {
    let path = format!("/apps/{}", keyspace("url"));
    let url = format!("zk://{}{path}", hosts());
    let d = tempfile::tempdir().unwrap();
    // --keyspace is ignored when the URL names a path.
    let cli = |more: &[&str]| {
        run(
            d.path(),
            &[&["--store", url.as_str(), "--keyspace", "unused"][..], more].concat(),
        )
    };
    cli(&["set", "mode", r#""fast""#]).ok();
    cli(&["set", "limits", r#"{"max": 10}"#]).ok();
    assert_eq!(cli(&["get", "limits"]).ok(), r#"{"max":10}"#);
    assert_eq!(
        cli(&["list"]).ok(),
        r#"{"limits":{"max":10},"mode":"fast"}"#
    );
    assert_eq!(children(&path), ["limits", "mode"]);
    cli(&["del", "mode"]).ok();
    cli(&["get", "mode"]).fails(1, "key not found: mode");
    cli(&["set", "a/b", "1"]).fails(2, "invalid key \"a/b\"");
    assert_eq!(cli(&["list"]).ok(), r#"{"limits":{"max":10}}"#);
}

#[test]
fn without_a_path_the_keyspace_names_the_znode() {
    let ks = keyspace("ks");
    let url = format!("zk://{}", hosts());
    let d = tempfile::tempdir().unwrap();
    run(
        d.path(),
        &["--store", &url, "--keyspace", &ks, "set", "k", "[1]"],
    )
    .ok();
    assert_eq!(children(&format!("/{ks}")), ["k"]);
    let with_slash = format!("zk://{}/", hosts());
    assert_eq!(
        run(
            d.path(),
            &["--store", &with_slash, "--keyspace", &ks, "get", "k"]
        )
        .ok(),
        "[1]"
    );
}

#[test]
fn watch_reports_changes_from_other_processes() {
    let url = format!("zk://{}/{}", hosts(), keyspace("watch"));
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &["--store", &url, "set", "a", "1"]).ok();
    let mut watcher = Watcher::start(
        command(d.path()),
        &[
            "--store",
            &url,
            "watch",
            "--interval",
            "50ms",
            "--count",
            "2",
        ],
    );
    let wait = Duration::from_secs(10);
    run(d.path(), &["--store", &url, "set", "b", r#""new""#]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","new":"new"}"#);
    run(d.path(), &["--store", &url, "del", "a"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1}"#);
    assert_eq!(watcher.wait_exit(wait), 0);
}

#[test]
fn an_unreachable_ensemble_exits_3() {
    let port = durabledict_test_servers::free_port().unwrap();
    let d = tempfile::tempdir().unwrap();
    run(
        d.path(),
        &["--store", &format!("zk://127.0.0.1:{port}/x"), "list"],
    )
    .fails(3, "cannot connect to the store");
}

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

/// Creates the znode `path` and `n` children `k0`, `k1`, … in parallel (the client pipelines
/// the requests of several threads).
fn create_keys(connect: &str, path: &str, n: usize) {
    let zk = Arc::new(
        zookeeper::ZooKeeper::connect(connect, Duration::from_secs(10), |_: WatchedEvent| {})
            .unwrap(),
    );
    let create = |zk: &zookeeper::ZooKeeper, node: &str| {
        zk.create(
            node,
            b"v".to_vec(),
            Acl::open_unsafe().clone(),
            CreateMode::Persistent,
        )
        .unwrap();
    };
    create(&zk, path);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let zk = Arc::clone(&zk);
            scope.spawn(move || {
                for i in (t..n).step_by(8) {
                    create(&zk, &format!("{path}/k{i}"));
                }
            });
        }
    });
}

/// `set` and `del` touch the key they name and nothing else: a few requests, not one per
/// key of the keyspace (they once loaded all of it first, seconds with thousands of keys).
/// The server counts the requests; it is this test's own, so nothing else is counted.
#[test]
fn set_and_del_cost_a_few_requests_whatever_the_keyspace_holds() {
    let zk = ZooKeeper::start().expect("start ZooKeeper");
    create_keys(&zk.connect_string(), "/big", 3000);
    let url = format!("zk://{}/big", zk.connect_string());
    let d = tempfile::tempdir().unwrap();
    let cost = |args: &[&str]| {
        let before = received(zk.port());
        let started = Instant::now();
        run(d.path(), &[&["--store", url.as_str()][..], args].concat()).ok();
        let (requests, took) = (received(zk.port()) - before, started.elapsed());
        eprintln!("{args:?}: {requests} requests, {took:?}");
        requests
    };
    for args in [
        &["set", "k7", "1"][..],
        &["set", "fresh", r#""x""#],
        &["del", "k8"],
        &["del", "fresh"],
    ] {
        let requests = cost(args);
        assert!(requests < 25, "{args:?} sent {requests} requests");
    }
    let zk_client = zookeeper::ZooKeeper::connect(
        &zk.connect_string(),
        Duration::from_secs(10),
        |_: WatchedEvent| {},
    )
    .unwrap();
    assert_eq!(zk_client.get_children("/big", false).unwrap().len(), 2999);
    assert!(zk_client.exists("/big/k8", false).unwrap().is_none());
    assert_eq!(
        run(d.path(), &["--store", url.as_str(), "get", "k7"]).ok(),
        "1"
    );
}

/// The store stops answering and comes back: `watch` says so both times, as it does for
/// Redis and SQL stores, although ZooKeeper's stamp is kept in process (checking it asks no
/// server, and it stays valid through an outage shorter than the session timeout).
#[test]
fn watch_reports_an_outage_and_the_recovery() {
    let mut zk = ZooKeeper::start().expect("start ZooKeeper");
    let url = format!("zk://{}/outage", zk.connect_string());
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &["--store", &url, "set", "a", "1"]).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &["--store", &url, "watch", "--interval", "50ms"],
    );
    let down = Instant::now();
    zk.stop();
    // Well before the session timeout (10 s), after which the stamp check fails too.
    watcher.wait_stderr("retrying every", Duration::from_secs(5));
    assert!(
        down.elapsed() < Duration::from_secs(9),
        "{:?}",
        down.elapsed()
    );
    assert!(
        !watcher.stderr().contains("answers again"),
        "{}",
        watcher.stderr()
    );
    zk.restart().expect("restart ZooKeeper");
    watcher.wait_stderr("the store answers again", Duration::from_secs(30));
    run(d.path(), &["--store", &url, "set", "b", "2"]).ok();
    assert_eq!(
        watcher.next_line(Duration::from_secs(10)),
        r#"{"key":"b","new":2}"#
    );
    let stderr = watcher.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// An interval that would make `watch` spin is refused before anything is opened.
#[test]
fn watch_refuses_an_interval_under_10ms() {
    let url = format!("zk://{}/{}", hosts(), keyspace("fast"));
    let d = tempfile::tempdir().unwrap();
    for interval in ["0.0001ms", "9ms", "0"] {
        run_within(
            d.path(),
            &["--store", &url, "watch", "--interval", interval],
            Duration::from_secs(10),
        )
        .fails(2, "is shorter than the shortest interval, 10ms");
    }
    let mut watcher = Watcher::start(
        command(d.path()),
        &[
            "--store",
            &url,
            "watch",
            "--interval",
            "10ms",
            "--count",
            "1",
        ],
    );
    run(d.path(), &["--store", &url, "set", "k", "1"]).ok();
    assert_eq!(
        watcher.next_line(Duration::from_secs(10)),
        r#"{"key":"k","new":1}"#
    );
    assert_eq!(watcher.wait_exit(Duration::from_secs(10)), 0);
}

/// A znode holding what is not a pickle (another program's) used to make `list` and `watch`
/// exit 3. Now `watch` tells the key it leaves out, keeps printing the others' changes, and
/// prints the key once it is written with a value it reads.
#[test]
fn an_undecodable_value_hides_no_other_key_from_list_and_watch() {
    let path = format!("/{}", keyspace("undecodable"));
    let url = format!("zk://{}{path}", hosts());
    let d = tempfile::tempdir().unwrap();
    let cli = |more: &[&str]| run(d.path(), &[&["--store", url.as_str()][..], more].concat());
    cli(&["set", "a", "1"]).ok();
    let zk = zookeeper::ZooKeeper::connect(&hosts(), Duration::from_secs(10), |_: WatchedEvent| {})
        .unwrap();
    zk.create(
        &format!("{path}/bad"),
        b"not a pickle".to_vec(),
        Acl::open_unsafe().clone(),
        CreateMode::Persistent,
    )
    .unwrap();
    let list = cli(&["list"]);
    // Every readable entry printed, the rest named, and exit 3: the listing is not whole.
    assert_eq!(list.code, 3, "{list:?}");
    assert_eq!(list.stdout, "{\"a\":1}\n", "{list:?}");
    assert!(
        list.stderr
            .contains("durabledict: list: left out key \"bad\": its stored value does not decode"),
        "{list:?}"
    );
    let watcher = Watcher::start(
        command(d.path()),
        &["--store", &url, "watch", "--interval", "50ms"],
    );
    let stderr = watcher.stderr();
    assert!(
        stderr.contains("durabledict: watch: left out key \"bad\""),
        "{stderr}"
    );
    let wait = Duration::from_secs(10);
    cli(&["set", "a", "2"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);
    cli(&["set", "bad", r#""fixed""#]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"bad","new":"fixed"}"#);
    watcher.no_line_for(Duration::from_millis(300));
    assert_eq!(cli(&["list"]).stderr, "");
}

/// ZooKeeper tells of changes (watches): `watch` prints one at once, even when it would check
/// only every 10 s.
#[test]
fn watch_prints_a_change_at_once_through_the_feed() {
    let url = format!("zk://{}/{}", hosts(), keyspace("feed"));
    let d = tempfile::tempdir().unwrap();
    run(d.path(), &["--store", &url, "set", "a", "1"]).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &["--store", &url, "watch", "--interval", "10s"],
    );
    let stderr = watcher.stderr();
    assert!(
        stderr.contains("told of changes by the store's feed"),
        "{stderr}"
    );
    let soon = Duration::from_secs(3);
    run(d.path(), &["--store", &url, "set", "a", "2"]).ok();
    assert_eq!(watcher.next_line(soon), r#"{"key":"a","old":1,"new":2}"#);
    run(d.path(), &["--store", &url, "del", "a"]).ok();
    assert_eq!(watcher.next_line(soon), r#"{"key":"a","old":2}"#);
}
