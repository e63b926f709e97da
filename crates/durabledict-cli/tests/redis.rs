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

/// What Python durabledict does for `d[name] = value`: HSET of the pickled value, INCR of
/// the stamp, in one MULTI.
fn python_style_set(url: &str, ks: &str, name: &[u8], stored: &str) {
    let mut con = raw(url);
    let _: () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(ks)
        .arg(name)
        .arg(stored)
        .ignore()
        .cmd("INCR")
        .arg(format!("{ks}last_updated"))
        .ignore()
        .query(&mut con)
        .unwrap();
}

/// `base64.encodebytes(pickle.dumps("x", 3))`.
const PICKLED_X: &str = "gANYAQAAAHhxAC4=\n";

/// Python's `d[b'\xff'] = 'x'` (a field that is not UTF-8) and a value that is not a pickle
/// used to make `list` and `watch` exit 3 printing nothing, and the field could not be
/// deleted. Now `list` prints every other key and tells both on stderr (then exits 3, its
/// listing not whole), `get` and `del` address the field
/// by `--key-base64`, and `watch` keeps going.
#[test]
fn a_field_that_is_not_utf8_and_an_undecodable_value_hide_no_other_key() {
    let url = server().url();
    let ks = keyspace("rawname");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    cli(&["set", "a", "1"]).ok();
    python_style_set(&url, &ks, b"\xff", PICKLED_X);
    python_style_set(&url, &ks, b"bad", "not a pickle");

    let list = cli(&["list"]);
    // Every readable entry printed, the rest named, and exit 3: the listing is not whole.
    assert_eq!(list.code, 3, "{list:?}");
    assert_eq!(list.stdout, "{\"a\":1}\n", "{list:?}");
    assert!(
        list.stderr
            .contains("left out key \"bad\": its stored value does not decode"),
        "{list:?}"
    );
    assert!(
        list.stderr
            .contains("its name in base64 is /w== (get or del it with --key-base64 /w==)"),
        "{list:?}"
    );
    assert_eq!(cli(&["get", "--key-base64", "/w=="]).ok(), r#""x""#);
    cli(&["get", "bad"]).fails(3, "cannot decode the stored value of key \"bad\"");
    // Base64 of UTF-8 is the ordinary key.
    assert_eq!(cli(&["get", "--key-base64", "YQ=="]).ok(), "1");

    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "50ms"]].concat(),
    );
    let stderr = watcher.stderr();
    assert!(stderr.contains("--key-base64 /w=="), "{stderr}");
    assert!(stderr.contains("left out key \"bad\""), "{stderr}");
    cli(&["set", "a", "2"]).ok();
    let wait = Duration::from_secs(10);
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);

    let stamp: i64 = cli(&["stamp"]).ok().parse().unwrap();
    cli(&["del", "--key-base64", "/w=="]).ok();
    assert_eq!(cli(&["stamp"]).ok(), (stamp + 1).to_string(), "one bump");
    let mut con = raw(&url);
    let exists: i64 = redis::cmd("HEXISTS")
        .arg(&ks)
        .arg(b"\xff")
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0);
    cli(&["del", "--key-base64", "/w=="]).fails(1, "key not found: /w== (base64; not UTF-8)");
    cli(&["get", "--key-base64", "/w=="]).fails(1, "key not found: /w== (base64; not UTF-8)");
    cli(&["del", "bad"]).ok();
    let list = cli(&["list"]);
    assert_eq!(list.ok(), r#"{"a":2}"#);
    assert_eq!(list.stderr, "");
    // Heard by the watcher too, and no line for the name that is not a key.
    watcher.no_line_for(Duration::from_millis(300));
}

#[test]
fn key_base64_is_checked() {
    let url = server().url();
    let d = dir();
    run(
        d.path(),
        &["--store", &url, "get", "--key-base64", "not base64!"],
    )
    .fails(2, "--key-base64 \"not base64!\" is not standard base64");
    run(
        d.path(),
        &["--store", &url, "get", "k", "--key-base64", "/w=="],
    )
    .fails(2, "cannot be used with");
    let sqlite = format!("sqlite:{}", d.path().join("s.db").display());
    run(d.path(), &["--store", &sqlite, "set", "k", "1"]).ok();
    for command in ["get", "del"] {
        run(d.path(), &["--store", &sqlite, command, "--key-base64", "/w=="]).fails(
            2,
            "the name /w== (base64; not UTF-8) is not UTF-8: only a Redis hash can hold such a name",
        );
    }
    assert_eq!(
        run(
            d.path(),
            &["--store", &sqlite, "get", "--key-base64", "aw=="]
        )
        .ok(),
        "1"
    );
}

/// `-vv` prints the library's events on stderr, the reload span with its fields among them;
/// stdout stays the command's output.
#[test]
fn verbose_prints_the_librarys_events_on_stderr() {
    let url = server().url();
    let ks = keyspace("verbose");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    cli(&["set", "a", "1"]).ok();
    let quiet = cli(&["list"]);
    assert_eq!((quiet.ok(), quiet.stderr.as_str()), (r#"{"a":1}"#, ""));
    let list = cli(&["-vv", "list"]);
    assert_eq!(list.ok(), r#"{"a":1}"#);
    for needle in [
        "durabledict::dict",
        "reload{",
        &format!("keyspace={ks}"),
        "keys=1",
    ] {
        assert!(list.stderr.contains(needle), "{needle}: {list:?}");
    }
    // `-v` is info: a plain load tells nothing at that level.
    assert_eq!(cli(&["list", "-v"]).stderr, "");
    let stamp = cli(&["-vvv", "stamp"]);
    assert!(stamp.ok().chars().all(|c| c.is_ascii_digit()), "{stamp:?}");
    let mut cmd = command(d.path());
    cmd.env("DURABLEDICT_LOG", "durabledict=debug");
    let logged = run_with(cmd, &[&args[..], &["list"]].concat(), None);
    assert!(logged.stderr.contains("reload{"), "{logged:?}");
    let mut cmd = command(d.path());
    cmd.env("DURABLEDICT_LOG", "durabledict=loud");
    run_with(cmd, &[&args[..], &["list"]].concat(), None)
        .fails(2, "invalid DURABLEDICT_LOG filter");
}

/// Redis pushes changes (client tracking): `watch` prints one at once, even when it would
/// check only every 10 s, and again after its feed connection was killed.
#[test]
fn watch_prints_a_change_at_once_through_the_feed() {
    let url = server().url();
    let ks = keyspace("feed");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    run(d.path(), &[&args[..], &["set", "a", "1"]].concat()).ok();
    let watcher = Watcher::start(
        command(d.path()),
        &[&args[..], &["watch", "--interval", "10s"]].concat(),
    );
    let stderr = watcher.stderr();
    assert!(
        stderr.contains("told of changes by the store's feed"),
        "{stderr}"
    );
    let soon = Duration::from_secs(3);
    python_style_set(&url, &ks, b"b", PICKLED_X);
    assert_eq!(watcher.next_line(soon), r#"{"key":"b","new":"x"}"#);
    run(d.path(), &[&args[..], &["set", "a", "2"]].concat()).ok();
    assert_eq!(watcher.next_line(soon), r#"{"key":"a","old":1,"new":2}"#);

    let name = durabledict::redis::RedisStore::open(&url, &ks)
        .unwrap()
        .feed_client_name();
    let mut con = raw(&url);
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let id = clients
        .lines()
        .find(|line| line.contains(&format!(" name={name} ")))
        .and_then(|line| line.strip_prefix("id="))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no feed connection {name} in {clients}"))
        .to_owned();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query(&mut con)
        .unwrap();
    python_style_set(&url, &ks, b"c", PICKLED_X);
    assert_eq!(watcher.next_line(soon), r#"{"key":"c","new":"x"}"#);
    run(d.path(), &[&args[..], &["del", "b"]].concat()).ok();
    assert_eq!(watcher.next_line(soon), r#"{"key":"b","old":"x"}"#);
    watcher.no_line_for(Duration::from_millis(300));
}

/// A Python 2 `str` of bytes that are not UTF-8 (`'U\x01\xe9'`): read as bytes or latin1 on
/// request (as text it cannot be), and written with protocol 2 as Python 2 writes a `str`
/// (`_codecs.encode(…, 'latin1')`), which CPython 3 unpickles as those bytes.
#[test]
fn a_python2_str_of_any_bytes_is_read_and_written() {
    let url = server().url();
    let ks = keyspace("py2");
    let d = dir();
    let args = ["--store", url.as_str(), "--keyspace", ks.as_str()];
    let cli = |more: &[&str]| run(d.path(), &[&args[..], more].concat());
    // Python 2 durabledict: d['s'] = 'U\x01\xe9' (pickle.dumps(v, 2), base64 lines).
    python_style_set(&url, &ks, b"s", "gAJVA1UB6XEALg==\n");
    cli(&["get", "s"]).fails(3, "a Python 2 str is not UTF-8");
    let bytes = ["--python2-str", "bytes"];
    assert_eq!(
        cli(&[&bytes[..], &["get", "s"]].concat()).ok(),
        r#"{"$bytes":"VQHp"}"#
    );
    assert_eq!(
        cli(&["--python2-str", "latin1", "get", "s"]).ok(),
        r#""U\u0001é""#
    );
    cli(&["--pickle-protocol", "2", "set", "t", r#"{"$bytes":"VQHp"}"#]).ok();
    let mut con = raw(&url);
    let stored: String = redis::cmd("HGET")
        .arg(&ks)
        .arg("t")
        .query(&mut con)
        .unwrap();
    let script = r#"
import base64, pickle, pickletools, sys
raw = base64.decodebytes(sys.argv[1].encode())
names = [arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"]
print(raw[:2] == b"\x80\x02", pickle.loads(raw) == b"U\x01\xe9", names)
"#;
    assert_eq!(
        python(script, &[&stored]).trim(),
        "True True ['_codecs encode']"
    );
    assert_eq!(
        cli(&[&bytes[..], &["get", "t"]].concat()).ok(),
        r#"{"$bytes":"VQHp"}"#
    );
    run(
        d.path(),
        &["--encoding", "json", "--pickle-protocol", "2", "get", "t"],
    )
    .fails(
        2,
        "--python2-str and --pickle-protocol apply to --encoding pickle, not json",
    );
}
