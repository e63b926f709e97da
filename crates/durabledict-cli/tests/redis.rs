//! The CLI on a real redis-server: get, set, list, watch (through a restart), the Python
//! layout both ways, and an unreachable server.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use common::{
    PYTHON_VALUES, PYTHON_VALUES_JSON, Watcher, command, keyspace, python, run, run_with,
};
use durabledict::redis::redis;
use durabledict_test_servers::RedisServer;

fn server() -> &'static RedisServer {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    REDIS.get_or_init(|| RedisServer::start().expect("start redis-server"))
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn get_set_and_list_use_python_durabledicts_layout() {
    let url = server().url();
    let ks = keyspace("layout");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    cli(&["set", "mode", r#""fast""#]).ok();
    cli(&["set", "limits", "[10, 0.5]"]).ok();
    assert_eq!(cli(&["get", "mode"]).ok(), r#""fast""#);
    assert_eq!(cli(&["list"]).ok(), r#"{"limits":[10,0.5],"mode":"fast"}"#);
    cli(&["get", "absent"]).fails(1, "key not found: absent");

    let mut con = raw(&url);
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&ks).query(&mut con).unwrap();
    assert_eq!(fields.len(), 2);
    let stamp: i64 = redis::cmd("GET")
        .arg(format!("{ks}last_updated"))
        .query(&mut con)
        .unwrap();
    assert_eq!(cli(&["stamp"]).ok(), stamp.to_string());
    // Created seeded from the server's clock (not at 1, as Python starts it), then one bump
    // per set.
    cli(&["set", "mode", r#""slow""#]).ok();
    assert_eq!(
        cli(&["stamp"]).ok(),
        (stamp + 1).to_string(),
        "one bump per set"
    );
}

#[test]
fn the_database_number_in_the_url_is_used() {
    let base = server().url();
    let url = format!("{base}5");
    let ks = keyspace("db");
    let d = dir();
    run(
        d.path(),
        &["--store", &url, "--keyspace", &ks, "set", "k", "1"],
    )
    .ok();
    let mut con = raw(&url);
    let stored: Option<String> = redis::cmd("HGET")
        .arg(&ks)
        .arg("k")
        .query(&mut con)
        .unwrap();
    assert!(stored.is_some());
    let mut db0 = raw(&base);
    let absent: Option<String> = redis::cmd("HGET")
        .arg(&ks)
        .arg("k")
        .query(&mut db0)
        .unwrap();
    assert_eq!(absent, None);
}

/// CPython pickles the values, they are written with raw Redis commands as Python durabledict
/// writes them (HSET into the hash, INCR of the stamp), and the CLI lists them.
#[test]
fn values_written_by_cpython_are_listed_as_json() {
    let url = server().url();
    let ks = keyspace("py");
    let script = format!(
        "{PYTHON_VALUES}\n{}",
        r#"
import base64, json, pickle
print(json.dumps({k: base64.encodebytes(pickle.dumps(v, [2, 3, 4, 5][i % 4])).decode()
                  for i, (k, v) in enumerate(sorted(VALUES.items()))}))
"#
    );
    let encoded: BTreeMap<String, String> = serde_json::from_str(&python(&script, &[])).unwrap();
    let mut con = raw(&url);
    for (key, value) in &encoded {
        let _: i64 = redis::cmd("HSET")
            .arg(&ks)
            .arg(key)
            .arg(value)
            .query(&mut con)
            .unwrap();
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{ks}last_updated"))
            .query(&mut con)
            .unwrap();
    }
    let d = dir();
    assert_eq!(
        run(d.path(), &["--store", &url, "--keyspace", &ks, "list"]).ok(),
        PYTHON_VALUES_JSON
    );
}

#[test]
fn values_set_by_the_cli_are_unpickled_by_cpython() {
    let url = server().url();
    let ks = keyspace("cli");
    let d = dir();
    run_with(
        command(d.path()),
        &["--store", &url, "--keyspace", &ks, "import", "-"],
        Some(PYTHON_VALUES_JSON),
    )
    .ok();
    let mut con = raw(&url);
    let stored: BTreeMap<String, String> = redis::cmd("HGETALL").arg(&ks).query(&mut con).unwrap();
    let script = format!(
        "{PYTHON_VALUES}\n{}",
        r#"
import base64, json, math, pickle, sys
got = {k: pickle.loads(base64.decodebytes(v.encode())) for k, v in json.loads(sys.argv[1]).items()}
expected = dict(VALUES)
expected["tuple"] = ["a", 1.5, [1, 2]]
expected["set"] = [1, 2, 3]
assert math.isnan(got.pop("nan")), "nan"
del expected["nan"]
assert got == expected, (got, expected)
print("ok", len(got))
"#
    );
    let arg = serde_json::to_string(&stored).unwrap();
    assert_eq!(python(&script, &[&arg]).trim(), "ok 15");
}

#[test]
fn watch_reports_changes_from_other_clients() {
    let url = server().url();
    let ks = keyspace("watch");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    run(d.path(), &[&args[..], &["set", "a", "1"]].concat()).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    let wait = Duration::from_secs(10);
    run(d.path(), &[&args[..], &["set", "a", "2"]].concat()).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);
    // A write by another client, as Python durabledict makes it.
    let mut con = raw(&url);
    let _: () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(&ks)
        .arg("b")
        .arg("gANYAQAAAHhxAC4=\n") // base64.encodebytes(pickle.dumps("x", 3))
        .ignore()
        .cmd("INCR")
        .arg(format!("{ks}last_updated"))
        .ignore()
        .query(&mut con)
        .unwrap();
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","new":"x"}"#);
    watcher.no_line_for(Duration::from_millis(300));
}

/// The server goes away and comes back empty (no persistence): watch reports the error,
/// keeps checking, and then reports what changed.
#[test]
fn watch_keeps_going_through_a_server_restart() {
    let mut redis = RedisServer::start().expect("start redis-server");
    let url = redis.url();
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", "flags"];
    run(d.path(), &[&args[..], &["set", "a", "1"]].concat()).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    redis.stop();
    watcher.wait_stderr("retrying every", Duration::from_secs(10));
    redis.restart().expect("restart redis-server");
    watcher.wait_stderr("the store answers again", Duration::from_secs(10));
    run(d.path(), &[&args[..], &["set", "b", "2"]].concat()).ok();
    let wait = Duration::from_secs(10);
    // The restart lost `a`; `b` was written after it.
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1}"#);
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","new":2}"#);
    let stderr = watcher.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_unreachable_server_exits_3_without_a_backtrace() {
    let port = durabledict_test_servers::free_port().unwrap();
    let url = format!("redis://127.0.0.1:{port}/");
    let d = dir();
    for args in [
        &["get", "k"][..],
        &["set", "k", "1"],
        &["list"],
        &["watch"],
        &["stamp"],
    ] {
        run(d.path(), &[&["--store", url.as_str()][..], args].concat()).fails(3, "Unavailable");
    }
}

/// `rediss://` is Redis over TLS: with the `redis-tls` feature (on by default) it connects,
/// so an unreachable server is a store error; without it, the error names the feature.
#[test]
fn rediss_urls_use_tls_or_name_the_feature() {
    let port = durabledict_test_servers::free_port().unwrap();
    let url = format!("rediss://127.0.0.1:{port}/");
    let d = dir();
    for args in [&["get", "k"][..], &["set", "k", "1"]] {
        let out = run(d.path(), &[&["--store", url.as_str()][..], args].concat());
        if cfg!(feature = "redis-tls") {
            out.fails(3, "Unavailable");
        } else {
            out.fails(
                2,
                "rediss: URLs need durabledict's `redis-tls` cargo feature, which this build \
                 was compiled without",
            );
        }
    }
}

/// `get`, `list`, `del` and `stamp` only look: a deleted stamp key stays deleted (`stamp`
/// prints `null`) and no hash is created for a keyspace never written to.
#[test]
fn reading_commands_create_nothing() {
    let url = server().url();
    let ks = keyspace("reads");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    assert_eq!(cli(&["stamp"]).ok(), "null");
    assert_eq!(cli(&["list"]).ok(), "{}");
    cli(&["get", "a"]).fails(1, "key not found: a");
    cli(&["del", "a"]).fails(1, "key not found: a");
    let mut con = raw(&url);
    let stamp_key = format!("{ks}last_updated");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&ks)
        .arg(&stamp_key)
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0, "reads created the hash or the stamp");

    cli(&["set", "a", "1"]).ok();
    let _: i64 = redis::cmd("DEL").arg(&stamp_key).query(&mut con).unwrap();
    assert_eq!(cli(&["stamp"]).ok(), "null");
    assert_eq!(cli(&["get", "a"]).ok(), "1");
    assert_eq!(cli(&["stamp"]).ok(), "null");
}
