//! The CLI on a real PostgreSQL with the stamp in a real memcached: get, set, list, and watch,
//! including after memcached restarted and lost the stamp.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Watcher, command, keyspace, run};
use durabledict_test_servers::{Memcached, Postgres};

fn postgres_url() -> String {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| Postgres::start().expect("start PostgreSQL"))
        .url()
}

fn memcached() -> &'static Memcached {
    static MC: OnceLock<Memcached> = OnceLock::new();
    MC.get_or_init(|| Memcached::start().expect("start memcached"))
}

/// The value of `key` in memcached, read with the text protocol.
fn memcached_get(server: &Memcached, key: &str) -> Option<String> {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(stream, "get {key}\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).unwrap();
    if header.starts_with("END") {
        return None;
    }
    let mut value = String::new();
    reader.read_line(&mut value).unwrap();
    Some(value.trim_end().to_owned())
}

#[test]
fn get_set_and_list_with_the_stamp_in_memcached() {
    let url = postgres_url();
    let stamp = memcached().url();
    let ks = keyspace("pg");
    let d = tempfile::tempdir().unwrap();
    let args = [
        "--store",
        url.as_str(),
        "--keyspace",
        ks.as_str(),
        "--stamp",
        stamp.as_str(),
    ];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    cli(&["set", "mode", r#""fast""#]).ok();
    cli(&["set", "limits", "[10, 0.5]"]).ok();
    assert_eq!(cli(&["get", "mode"]).ok(), r#""fast""#);
    assert_eq!(cli(&["list"]).ok(), r#"{"limits":[10,0.5],"mode":"fast"}"#);
    cli(&["get", "absent"]).fails(1, "key not found: absent");

    // The stamp lives in memcached under the keyspace's key, bumped by each write.
    let key = format!("durabledict:{ks}:last_updated");
    let before = memcached_get(memcached(), &key).expect("the stamp is in memcached");
    assert_eq!(cli(&["stamp"]).ok(), before);
    cli(&["del", "mode"]).ok();
    let after = memcached_get(memcached(), &key).unwrap();
    assert_eq!(
        after.parse::<i64>().unwrap(),
        before.parse::<i64>().unwrap() + 1
    );
}

#[test]
fn the_stamp_key_can_be_chosen() {
    let url = postgres_url();
    let stamp = memcached().url();
    let ks = keyspace("key");
    let key = format!(":1:{ks}_last_updated");
    let d = tempfile::tempdir().unwrap();
    let mut cmd = command(d.path());
    cmd.env("DURABLEDICT_STAMP", &stamp)
        .env("DURABLEDICT_STAMP_KEY", &key);
    common::run_with(
        cmd,
        &["--store", &url, "--keyspace", &ks, "set", "k", "1"],
        None,
    )
    .ok();
    assert!(memcached_get(memcached(), &key).is_some());
    assert_eq!(
        memcached_get(memcached(), &format!("durabledict:{ks}:last_updated")),
        None
    );
}

#[test]
fn watch_reports_changes_even_after_memcached_lost_the_stamp() {
    let url = postgres_url();
    let mut cache = Memcached::start().expect("start memcached");
    let stamp = cache.url();
    let ks = keyspace("watch");
    let d = tempfile::tempdir().unwrap();
    let args = [
        "--store",
        url.as_str(),
        "--keyspace",
        ks.as_str(),
        "--stamp",
        stamp.as_str(),
    ];
    run(d.path(), &[&args[..], &["set", "a", "1"]].concat()).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    let wait = Duration::from_secs(10);
    run(d.path(), &[&args[..], &["set", "a", "2"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);

    cache.restart().expect("restart memcached");
    let key = format!("durabledict:{ks}:last_updated");
    assert_eq!(
        memcached_get(&cache, &key),
        None,
        "the restart lost the stamp"
    );
    // The watcher reloads once when the stamp vanishes, but nothing changed.
    watcher.no_line_for(Duration::from_millis(500));
    run(d.path(), &[&args[..], &["set", "b", "[true]"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","new":[true]}"#);
    run(d.path(), &[&args[..], &["del", "a"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":2}"#);
}

#[test]
fn an_unreachable_memcached_exits_3() {
    let url = postgres_url();
    let port = durabledict_test_servers::free_port().unwrap();
    let d = tempfile::tempdir().unwrap();
    let stamp = format!("memcache://127.0.0.1:{port}");
    run(
        d.path(),
        &[
            "--store",
            &url,
            "--keyspace",
            &keyspace("down"),
            "--stamp",
            &stamp,
            "set",
            "k",
            "1",
        ],
    )
    .fails(3, "Unavailable");
}
