//! SQLite with the stamp in a real memcached: the commands that only look leave a lost stamp
//! lost (`stamp` prints `null`), and `watch` goes on through a memcached restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Watcher, command, run};
use durabledict_test_servers::Memcached;

/// Sends one text-protocol command to memcached and returns its first reply line.
fn memcached(server: &Memcached, line: &str) -> String {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(stream, "{line}\r\n").unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    reply.trim_end().to_owned()
}

const KEY: &str = "durabledict:durabledict:last_updated";

#[test]
fn stamp_prints_null_while_the_stamp_is_lost_and_looking_does_not_restore_it() {
    let cache = Memcached::start().expect("start memcached");
    let stamp = cache.url();
    let d = tempfile::tempdir().unwrap();
    let cli = |more: &[&str]| run(d.path(), &[&["--stamp", stamp.as_str()][..], more].concat());
    cli(&["set", "a", "1"]).ok();
    let before: i64 = cli(&["stamp"]).ok().parse().unwrap();

    assert_eq!(memcached(&cache, &format!("delete {KEY}")), "DELETED");
    for _ in 0..2 {
        assert_eq!(cli(&["stamp"]).ok(), "null");
        assert_eq!(cli(&["get", "a"]).ok(), "1");
        assert_eq!(cli(&["list"]).ok(), r#"{"a":1}"#);
        cli(&["del", "absent"]).fails(1, "key not found: absent");
    }
    assert_eq!(memcached(&cache, &format!("get {KEY}")), "END");

    // A write puts a stamp back, one that cannot repeat the lost one.
    cli(&["set", "b", "2"]).ok();
    let after: i64 = cli(&["stamp"]).ok().parse().unwrap();
    assert_ne!(after, before);
}

#[test]
fn watch_goes_on_after_memcached_lost_the_stamp() {
    let mut cache = Memcached::start().expect("start memcached");
    let stamp = cache.url();
    let d = tempfile::tempdir().unwrap();
    let args = ["--stamp", stamp.as_str()];
    run(d.path(), &[&args[..], &["set", "a", "1"]].concat()).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    let wait = Duration::from_secs(10);
    cache.restart().expect("restart memcached");
    // The watcher reloads once when the stamp vanishes, but nothing changed.
    watcher.no_line_for(Duration::from_millis(500));
    assert_eq!(memcached(&cache, &format!("get {KEY}")), "END");
    run(d.path(), &[&args[..], &["set", "b", "null"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","new":null}"#);
    run(d.path(), &[&args[..], &["del", "a"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1}"#);
}

/// An SQL store has no feed: `watch` polls the stamp. A value it cannot decode (here JSON
/// text, written with `--encoding json`) used to make `list` and `watch` exit 3; now both
/// leave it out and tell it on stderr, and `watch` prints the key once it reads.
#[test]
fn an_undecodable_value_hides_no_other_key_from_list_and_polling_watch() {
    let cache = Memcached::start().expect("start memcached");
    let stamp = cache.url();
    let d = tempfile::tempdir().unwrap();
    let args = ["--stamp", stamp.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    cli(&["set", "a", "1"]).ok();
    cli(&["--encoding", "json", "set", "bad", "[1]"]).ok();
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
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    let stderr = watcher.stderr();
    assert!(stderr.contains("checking every 50ms"), "{stderr}");
    assert!(
        stderr.contains("durabledict: watch: left out key \"bad\""),
        "{stderr}"
    );
    let wait = Duration::from_secs(10);
    cli(&["set", "a", "2"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);
    cli(&["set", "bad", r#""fixed""#]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"bad","new":"fixed"}"#);
    cli(&["--encoding", "json", "set", "a", "[2]"]).ok();
    // Undecodable again: a removal, as a dict's subscription announces it, and told.
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":2}"#);
    watcher.wait_stderr("durabledict: watch: left out key \"a\"", wait);
    watcher.no_line_for(Duration::from_millis(300));
}
