//! The CLI on a real ZooKeeper: get, set, list and watch, with the keyspace path from the URL
//! or from `--keyspace`.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{Watcher, command, keyspace, run};
use durabledict::zookeeper::zookeeper::{self, WatchedEvent};
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
