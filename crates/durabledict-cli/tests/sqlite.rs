//! Every command on the embedded default (SQLite in a temporary directory), exit codes and
//! messages, and data written by CPython the way Python durabledict writes it.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PYTHON_VALUES, PYTHON_VALUES_JSON, Watcher, command, python, run, run_with};

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn the_default_store_is_an_sqlite_file_in_the_current_directory() {
    let dir = temp();
    run(dir.path(), &["set", "greeting", r#""hello""#]).ok();
    assert!(dir.path().join("durabledict.db").is_file());
    assert_eq!(run(dir.path(), &["get", "greeting"]).ok(), r#""hello""#);
    assert_eq!(run(dir.path(), &["list"]).ok(), r#"{"greeting":"hello"}"#);
}

#[test]
fn set_get_del_and_list() {
    let dir = temp();
    let d = dir.path();
    run(d, &["set", "b", r#"{"on": true, "pct": 10}"#]).ok();
    run(d, &["set", "a", "[1, 2.5, null]"]).ok();
    run(d, &["set", "neg", "-3"]).ok();
    run(d, &["set", "plain", "not json at all", "--str"]).ok();
    run(d, &["set", "--str", "also", "-x"]).ok();
    assert_eq!(run(d, &["get", "b"]).ok(), r#"{"on":true,"pct":10}"#);
    assert_eq!(run(d, &["get", "neg"]).ok(), "-3");
    assert_eq!(run(d, &["get", "plain"]).ok(), r#""not json at all""#);
    assert_eq!(
        run(d, &["list"]).ok(),
        r#"{"a":[1,2.5,null],"also":"-x","b":{"on":true,"pct":10},"neg":-3,"plain":"not json at all"}"#
    );
    run(d, &["set", "a", r#""changed""#]).ok();
    assert_eq!(run(d, &["get", "a"]).ok(), r#""changed""#);
    run(d, &["del", "a"]).ok();
    run(d, &["get", "a"]).fails(1, "key not found: a");
    run(d, &["del", "a"]).fails(1, "key not found: a");
    assert_eq!(
        run(d, &["list"]).ok(),
        r#"{"also":"-x","b":{"on":true,"pct":10},"neg":-3,"plain":"not json at all"}"#
    );
}

#[test]
fn values_without_a_json_form_round_trip_in_tagged_form() {
    let dir = temp();
    let d = dir.path();
    for (key, json) in [
        ("bytes", r#"{"$bytes":"AP9hYg=="}"#),
        ("nan", r#"{"$float":"nan"}"#),
        ("inf", r#"{"$float":"inf"}"#),
        ("keys", r#"{"$dict":[[1,"one"],[[2,"x"],null]]}"#),
        ("big", "123456789012345678901234567890"),
        ("lookalike", r#"{"$dict":[["$float","nan"]]}"#),
    ] {
        run(d, &["set", key, json]).ok();
        assert_eq!(run(d, &["get", key]).ok(), json, "{key}");
    }
}

/// What `set` accepts reads back: nesting is bounded as the pickle decoder bounds it.
#[test]
fn nesting_deeper_than_the_decoder_reads_is_refused() {
    let dir = temp();
    let d = dir.path();
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    run(d, &["set", "deep", &nested(128)]).ok();
    assert_eq!(run(d, &["get", "deep"]).ok(), nested(128));
    run(d, &["set", "deeper", &nested(129)]).fails(2, "nest more than 128 deep");
}

#[test]
fn stores_keyspaces_and_the_environment() {
    let dir = temp();
    let d = dir.path();
    let url = format!("sqlite:{}", d.join("other.db").display());
    run(
        d,
        &["--store", &url, "--keyspace", "flags", "set", "k", "1"],
    )
    .ok();
    // Another keyspace (table) in the same file is another dict: one never written to has no
    // table, and reading it does not create one.
    run(d, &["--store", &url, "list"]).fails(3, "durabledict");
    run(d, &["--store", &url, "set", "k", "2"]).ok();
    assert_eq!(run(d, &["--store", &url, "list"]).ok(), r#"{"k":2}"#);
    let mut cmd = command(d);
    cmd.env("DURABLEDICT_STORE", &url)
        .env("DURABLEDICT_KEYSPACE", "flags");
    assert_eq!(run_with(cmd, &["list"], None).ok(), r#"{"k":1}"#);
    // Options win over the environment.
    let mut cmd = command(d);
    cmd.env("DURABLEDICT_STORE", "ftp://nowhere")
        .env("DURABLEDICT_KEYSPACE", "flags");
    assert_eq!(
        run_with(cmd, &["--store", &url, "get", "k"], None).ok(),
        "1"
    );
    let mut cmd = command(d);
    cmd.env("DURABLEDICT_ENCODING", "yaml");
    run_with(cmd, &["list"], None).fails(2, "unknown encoding \"yaml\"");
}

#[test]
fn json_and_raw_encodings() {
    let dir = temp();
    let d = dir.path();
    let json = ["--encoding", "json", "--keyspace", "j"];
    run(d, &[&json[..], &["set", "v", r#"{"a": [1, 2]}"#]].concat()).ok();
    assert_eq!(
        run(d, &[&json[..], &["get", "v"]].concat()).ok(),
        r#"{"a":[1,2]}"#
    );
    run(
        d,
        &[&json[..], &["set", "b", r#"{"$bytes":"AA=="}"#]].concat(),
    )
    .fails(3, "bytes has no JSON form");
    // Stored as JSON text: the pickle encoding cannot read it.
    run(d, &["--keyspace", "j", "get", "v"])
        .fails(3, "cannot decode the stored value of key \"v\"");

    let raw = ["--encoding", "raw", "--keyspace", "r"];
    run(d, &[&raw[..], &["set", "s", "on", "--str"]].concat()).ok();
    run(
        d,
        &[&raw[..], &["set", "b", r#"{"$bytes":"/w=="}"#]].concat(),
    )
    .ok();
    assert_eq!(
        run(d, &[&raw[..], &["list"]].concat()).ok(),
        r#"{"b":{"$bytes":"/w=="},"s":"on"}"#
    );
    run(d, &[&raw[..], &["set", "n", "5"]].concat())
        .fails(3, "the raw encoding stores strings and bytes only, not int");
}

#[test]
fn import_writes_a_json_object_as_one_batch() {
    let dir = temp();
    let d = dir.path();
    // An empty object writes nothing, but prepares the store like any write.
    run_with(command(d), &["import", "-"], Some("{}")).ok();
    let before: i64 = run(d, &["stamp"]).ok().parse().unwrap();
    let file = d.join("entries.json");
    std::fs::write(&file, r#"{"a": 1, "b": {"$bytes": "AA=="}, "c": [true]}"#).unwrap();
    run(d, &["import", file.to_str().unwrap()]).ok();
    let after: i64 = run(d, &["stamp"]).ok().parse().unwrap();
    assert_eq!(after, before + 1, "one batch, one bump");
    assert_eq!(
        run(d, &["list"]).ok(),
        r#"{"a":1,"b":{"$bytes":"AA=="},"c":[true]}"#
    );
    run_with(command(d), &["import", "-"], Some(r#"{"a": "from stdin"}"#)).ok();
    assert_eq!(run(d, &["get", "a"]).ok(), r#""from stdin""#);

    run_with(command(d), &["import", "-"], Some("[1, 2]")).fails(2, "is not a JSON object");
    run_with(command(d), &["import", "-"], Some("{\"a\": ")).fails(2, "is not a JSON object");
    run(d, &["import", "missing.json"]).fails(2, "cannot read missing.json");
    // Nothing half-written: a bad value anywhere stops the whole batch.
    run_with(
        command(d),
        &["import", "-"],
        Some(r#"{"x": 1, "y": {"$bytes": "%%%"}}"#),
    )
    .fails(2, "$bytes must hold standard base64");
    run(d, &["get", "x"]).fails(1, "key not found: x");
}

#[test]
fn stamp_grows_with_every_write() {
    let dir = temp();
    let d = dir.path();
    run(d, &["set", "z", "0"]).ok();
    let first: i64 = run(d, &["stamp"]).ok().parse().unwrap();
    run(d, &["set", "a", "1"]).ok();
    let second: i64 = run(d, &["stamp"]).ok().parse().unwrap();
    assert_eq!(second, first + 1);
    run(d, &["del", "a"]).ok();
    assert_eq!(run(d, &["stamp"]).ok().parse::<i64>().unwrap(), second + 1);
    // A delete of an absent key writes nothing.
    run(d, &["del", "a"]).fails(1, "key not found: a");
    assert_eq!(run(d, &["stamp"]).ok().parse::<i64>().unwrap(), second + 1);
}

#[test]
fn watch_reports_changes_from_other_processes() {
    let dir = temp();
    let d = dir.path();
    run(d, &["set", "a", "1"]).ok();
    run(d, &["set", "b", "2"]).ok();
    let mut watcher = Watcher::start(command(d), &["watch", "--interval", "50ms", "--count", "4"]);
    run(d, &["set", "a", r#""one""#]).ok();
    let wait = Duration::from_secs(10);
    assert_eq!(
        watcher.next_line(wait),
        r#"{"key":"a","old":1,"new":"one"}"#
    );
    // A side where the key is absent is left out: a deletion has no "new", an insert no "old".
    run(d, &["del", "b"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"b","old":2}"#);
    run_with(
        command(d),
        &["import", "-"],
        Some(r#"{"c": [1], "d": null}"#),
    )
    .ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"c","new":[1]}"#);
    assert_eq!(watcher.next_line(wait), r#"{"key":"d","new":null}"#);
    assert_eq!(
        watcher.wait_exit(wait),
        0,
        "--count 4 exits after 4 changes"
    );
}

/// A stored None (`null`) is told apart from an absent key in every kind of change.
#[test]
fn watch_tells_a_stored_none_from_an_absent_key() {
    let dir = temp();
    let d = dir.path();
    run(d, &["set", "n", "null"]).ok();
    let mut watcher = Watcher::start(command(d), &["watch", "--interval", "50ms", "--count", "4"]);
    let wait = Duration::from_secs(10);
    run(d, &["set", "n", "0"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"n","old":null,"new":0}"#);
    run(d, &["set", "n", "null"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"n","old":0,"new":null}"#);
    run(d, &["del", "n"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"n","old":null}"#);
    run(d, &["set", "w", "null"]).ok();
    assert_eq!(watcher.next_line(wait), r#"{"key":"w","new":null}"#);
    assert_eq!(watcher.wait_exit(wait), 0);
}

/// An empty `DURABLEDICT_*` variable is as good as unset: the option's default applies.
#[test]
fn empty_environment_variables_count_as_unset() {
    let dir = temp();
    let d = dir.path();
    let with_empty = || {
        let mut cmd = command(d);
        for name in [
            "DURABLEDICT_STORE",
            "DURABLEDICT_KEYSPACE",
            "DURABLEDICT_ENCODING",
            "DURABLEDICT_STAMP",
            "DURABLEDICT_STAMP_KEY",
        ] {
            cmd.env(name, "");
        }
        cmd
    };
    run_with(with_empty(), &["set", "k", "1"], None).ok();
    assert_eq!(run_with(with_empty(), &["get", "k"], None).ok(), "1");
    // The defaults were used: the file durabledict.db, table durabledict, pickle.
    assert_eq!(run(d, &["get", "k"]).ok(), "1");
    // One empty variable among set ones leaves the others alone.
    let mut cmd = with_empty();
    cmd.env("DURABLEDICT_KEYSPACE", "other");
    run_with(cmd, &["set", "k", "2"], None).ok();
    assert_eq!(run(d, &["--keyspace", "other", "get", "k"]).ok(), "2");
    assert_eq!(run(d, &["get", "k"]).ok(), "1");
}

/// Only `set` and `import` create the SQLite file and the table: reading a mistyped path is a
/// store error, not a new empty database.
#[test]
fn reading_commands_create_nothing() {
    let dir = temp();
    let d = dir.path();
    let url = format!("sqlite:{}", d.join("typo.db").display());
    for args in [
        &["get", "a"][..],
        &["del", "a"],
        &["list"],
        &["stamp"],
        &["watch", "--count", "1"],
    ] {
        let started = std::time::Instant::now();
        let out = run(d, &[&["--store", url.as_str()][..], args].concat());
        out.fails(3, "cannot open the SQLite database");
        out.fails(3, "typo.db");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{args:?} took {:?}",
            started.elapsed()
        );
    }
    let left: Vec<_> = std::fs::read_dir(d).unwrap().collect();
    assert!(left.is_empty(), "reads created {left:?}");

    // A write creates the file and the table; reads then work, and a missing key is exit 1.
    run(d, &["--store", &url, "set", "b", "1"]).ok();
    run(d, &["--store", &url, "get", "a"]).fails(1, "key not found: a");
    run(d, &["--store", &url, "del", "a"]).fails(1, "key not found: a");
    // A keyspace never written to has no table, and reading it creates none.
    for _ in 0..2 {
        run(d, &["--store", &url, "--keyspace", "other", "get", "a"]).fails(3, "other");
    }
}

#[test]
fn usage_errors_exit_2_with_what_was_expected() {
    let dir = temp();
    let d = dir.path();
    run(d, &["set", "k", "hello"]).fails(2, "VALUE is not valid JSON (expected value at line 1 column 1); to store it as a plain string, use --str");
    run(d, &["set", "k", "{\"a\": }"]).fails(2, "use --str");
    run(d, &["set", "k", r#"{"$float": "big"}"#]).fails(2, "$float must be");
    run(d, &["--store", "ftp://example.com/x", "list"]).fails(
        2,
        "unknown store URL scheme \"ftp\" in \"ftp://example.com/x\"; expected one of: sqlite:PATH",
    );
    run(d, &["--store", "1x:durabledict.db", "list"]).fails(2, "has no scheme; expected one of");
    run(d, &["--store", "redis://127.0.0.1:port", "list"]).fails(
        2,
        "invalid store URL \"redis://127.0.0.1:port\": invalid port number; expected redis://",
    );
    run(
        d,
        &[
            "--store",
            "redis://:s3cret@127.0.0.1:1/?io_timout=1s",
            "list",
        ],
    )
    .fails(
        2,
        "invalid store URL \"redis://:***@127.0.0.1:1/?io_timout=1s\": unknown query parameter \
         `io_timout`",
    );
    run(d, &["--store", "zk://127.0.0.1/flags", "list"])
        .fails(2, "\"127.0.0.1\" is not HOST:PORT; expected zk://HOST:PORT");
    run(d, &["--store", "sqlite:", "list"]).fails(2, "it names no file");
    run(
        d,
        &[
            "--store",
            "postgres://me:s3cret@h:x/db",
            "--stamp-key",
            "k",
            "list",
        ],
    )
    .fails(2, "--stamp");
    run(d, &["--keyspace", "no spaces", "list"]).fails(2, "the store refused this configuration");
    run(
        d,
        &[
            "--stamp",
            "memcache://127.0.0.1:1",
            "--store",
            "redis://127.0.0.1:1/",
            "list",
        ],
    )
    .fails(
        2,
        "Redis keeps its own stamp; an external stamp applies to SQL stores only",
    );
    run(d, &["--stamp", "127.0.0.1:11211", "list"])
        .fails(2, "is not a memcached URL; expected memcache://HOST:PORT");
    run(d, &["frobnicate"]).fails(2, "unrecognized subcommand");
    run(d, &["watch", "--interval", "soon"]).fails(2, "is not a duration");
    // Nothing was written by any of them, not even the default SQLite file.
    assert!(!d.join("durabledict.db").exists());
}

#[test]
fn passwords_stay_out_of_messages() {
    let dir = temp();
    let out = run(
        dir.path(),
        &["--store", "redis://:s3cret@127.0.0.1:x/", "list"],
    );
    out.fails(2, "redis://:***@127.0.0.1:x/");
    assert!(!out.stderr.contains("s3cret"), "{out:?}");
}

#[test]
fn a_missing_backend_names_its_feature_or_an_unreachable_one_exits_3() {
    let dir = temp();
    let out = run(
        dir.path(),
        &["--store", "postgres://postgres@127.0.0.1:1/db", "list"],
    );
    if cfg!(feature = "postgres") {
        out.fails(3, "Unavailable");
    } else {
        out.fails(
            2,
            "postgres: URLs need durabledict's `postgres` cargo feature, which this build was compiled without",
        );
    }
}

#[test]
fn help_documents_the_json_forms_and_exit_codes() {
    let dir = temp();
    let help = run(dir.path(), &["--help"]);
    let text = help.ok();
    for needle in [
        "{\"$bytes\": \"<standard base64>\"}",
        "{\"$dict\": [[key, value], ...]}",
        "{\"$float\": \"nan\"}",
        "1 key not found",
        "DURABLEDICT_STORE",
        "[default: sqlite:durabledict.db]",
        "--str",
        "An empty variable counts as unset",
        r#"{"key": ..., "new": ...}"#,
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
    assert!(run(dir.path(), &["set", "--help"]).ok().contains("--str"));
}

/// Creates the table through the CLI, then has CPython insert rows as Python durabledict's
/// `ModelDict` does: `base64.encodebytes(pickle.dumps(value, protocol))` as text.
#[test]
fn values_written_by_cpython_are_listed_as_json() {
    let dir = temp();
    let d = dir.path();
    let db = d.join("py.db");
    let url = format!("sqlite:{}", db.display());
    run_with(
        command(d),
        &["--store", &url, "--keyspace", "settings", "import", "-"],
        Some("{}"),
    )
    .ok();
    let script = format!(
        "{PYTHON_VALUES}\n{}",
        r#"
import base64, pickle, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
for i, (k, v) in enumerate(sorted(VALUES.items())):
    proto = [2, 3, 4, 5][i % 4]
    con.execute('INSERT INTO "settings" ("key", "value") VALUES (?, ?)',
                (k, base64.encodebytes(pickle.dumps(v, proto)).decode()))
con.commit()
"#
    );
    python(&script, &[db.to_str().unwrap()]);
    assert_eq!(
        run(d, &["--store", &url, "--keyspace", "settings", "list"]).ok(),
        PYTHON_VALUES_JSON
    );
    assert_eq!(
        run(
            d,
            &["--store", &url, "--keyspace", "settings", "get", "big"]
        )
        .ok(),
        "1180591620717411303424"
    );
}

/// Values set by the CLI unpickle in CPython as the values they stand for.
#[test]
fn values_set_by_the_cli_are_unpickled_by_cpython() {
    let dir = temp();
    let d = dir.path();
    let db = d.join("cli.db");
    let url = format!("sqlite:{}", db.display());
    run_with(
        command(d),
        &["--store", &url, "--keyspace", "settings", "import", "-"],
        Some(PYTHON_VALUES_JSON),
    )
    .ok();
    run(
        d,
        &[
            "--store",
            &url,
            "--keyspace",
            "settings",
            "set",
            "s",
            "a str",
            "--str",
        ],
    )
    .ok();
    let script = format!(
        "{PYTHON_VALUES}\n{}",
        r#"
import base64, math, pickle, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
got = {k: pickle.loads(base64.decodebytes(v if isinstance(v, bytes) else v.encode()))
       for k, v in con.execute('SELECT "key", "value" FROM "settings"')}
expected = dict(VALUES, s="a str")
# JSON has arrays only: tuples and sets come back as lists.
expected["tuple"] = ["a", 1.5, [1, 2]]
expected["set"] = [1, 2, 3]
assert math.isnan(got.pop("nan")), "nan"
del expected["nan"]
assert got == expected, (got, expected)
assert type(got["big"]) is int and type(got["bytes"]) is bytes
print("ok", len(got))
"#
    );
    assert_eq!(python(&script, &[db.to_str().unwrap()]).trim(), "ok 16");
}

/// A database a Django `ModelDict` made has the data table only (its stamp lived in
/// memcached): reading commands work on it as it is and create nothing; `del` of a key that
/// is there prepares the store (it needs the stamps table) and deletes it.
#[test]
fn a_table_python_made_without_a_stamps_table_is_read_as_it_is() {
    let dir = temp();
    let d = dir.path();
    let db = d.join("django.db");
    let url = format!("sqlite:{}", db.display());
    let script = r#"
import base64, pickle, sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute('CREATE TABLE "durabledict" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
            '"key" VARCHAR(32) NOT NULL UNIQUE, "value" TEXT NOT NULL)')
for k, v in [("a", "x"), ("b", 2)]:
    con.execute('INSERT INTO "durabledict" ("key", "value") VALUES (?, ?)',
                (k, base64.encodebytes(pickle.dumps(v, 2)).decode()))
con.commit()
"#;
    python(script, &[db.to_str().unwrap()]);
    let tables = || {
        python(
            "import sqlite3, sys; print(sorted(r[0] for r in sqlite3.connect(sys.argv[1])\
             .execute(\"SELECT name FROM sqlite_master WHERE type = 'table'\")))",
            &[db.to_str().unwrap()],
        )
    };
    let before = tables();
    assert_eq!(
        run(d, &["--store", &url, "list"]).ok(),
        r#"{"a":"x","b":2}"#
    );
    assert_eq!(run(d, &["--store", &url, "get", "a"]).ok(), r#""x""#);
    assert_eq!(run(d, &["--store", &url, "stamp"]).ok(), "null");
    run(d, &["--store", &url, "del", "nope"]).fails(1, "key not found: nope");
    assert_eq!(tables(), before, "reading commands created a table");

    run(d, &["--store", &url, "del", "a"]).ok();
    assert_eq!(run(d, &["--store", &url, "list"]).ok(), r#"{"b":2}"#);
    assert_ne!(run(d, &["--store", &url, "stamp"]).ok(), "null");
}

/// `--keyspace flags` and `--keyspace FLAGS` are one SQLite table (SQLite ignores case in
/// table names), and so one stamp: a watcher of one sees a change made through the other.
#[test]
fn keyspaces_differing_in_case_are_one_keyspace() {
    let dir = temp();
    let d = dir.path();
    run(d, &["--keyspace", "flags", "set", "a", "1"]).ok();
    let mut watcher = Watcher::start(
        command(d),
        &[
            "--keyspace",
            "flags",
            "watch",
            "--interval",
            "50ms",
            "--count",
            "1",
        ],
    );
    run(d, &["--keyspace", "FLAGS", "set", "a", "2"]).ok();
    let wait = Duration::from_secs(10);
    assert_eq!(watcher.next_line(wait), r#"{"key":"a","old":1,"new":2}"#);
    assert_eq!(watcher.wait_exit(wait), 0);
    assert_eq!(
        run(d, &["--keyspace", "flags", "stamp"]).ok(),
        run(d, &["--keyspace", "FLAGS", "stamp"]).ok()
    );
}

/// `rm e.db*` under a watcher, then `set`s that make the file again: the watcher reads the
/// new file, not the deleted one it had open. (The library's tests cover a new file that counts
/// to the very stamp a dict had seen; here the stamp moves past it.)
#[test]
fn watch_follows_a_database_file_deleted_and_made_again() {
    let dir = temp();
    let d = dir.path();
    let url = format!("sqlite:{}", d.join("e.db").display());
    run(d, &["--store", &url, "set", "a", "1"]).ok();
    let watcher = Watcher::start(
        command(d),
        &["--store", &url, "watch", "--interval", "50ms"],
    );
    for entry in std::fs::read_dir(d).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("e.db")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    run(d, &["--store", &url, "set", "a", "2"]).ok();
    run(d, &["--store", &url, "set", "b", "3"]).ok();
    let last = r#"{"key":"b","new":3}"#;
    let mut lines = Vec::new();
    while lines.last().map(String::as_str) != Some(last) {
        lines.push(watcher.next_line(Duration::from_secs(10)));
    }
    // The watcher may have looked while the new file had its table but not yet `a`.
    let changed = [r#"{"key":"a","old":1,"new":2}"#, last];
    let emptied_first = [r#"{"key":"a","old":1}"#, r#"{"key":"a","new":2}"#, last];
    assert!(
        lines == changed || lines == emptied_first,
        "{lines:?}; stderr:\n{}",
        watcher.stderr()
    );
}

/// A database Python made in SQLite's default rollback-journal mode stays in it when `set`
/// writes to it: in WAL mode a reader without write access to the directory could not read it.
#[test]
fn set_keeps_the_journal_mode_of_a_database_python_made() {
    let dir = temp();
    let d = dir.path();
    let db = d.join("django.db");
    let url = format!("sqlite:{}", db.display());
    python(
        r#"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute('CREATE TABLE "durabledict" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
            '"key" VARCHAR(32) NOT NULL UNIQUE, "value" TEXT NOT NULL)')
con.commit()
"#,
        &[db.to_str().unwrap()],
    );
    let mode = || {
        python(
            "import sqlite3, sys; \
             print(sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode').fetchone()[0])",
            &[db.to_str().unwrap()],
        )
    };
    assert_eq!(mode().trim(), "delete");
    run(d, &["--store", &url, "set", "a", "1"]).ok();
    assert_eq!(run(d, &["--store", &url, "get", "a"]).ok(), "1");
    assert_eq!(mode().trim(), "delete");
    assert!(!d.join("django.db-wal").exists());
}
