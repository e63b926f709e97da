//! Python durabledict and this crate share one keyspace: values CPython pickled (protocols 2
//! and 5) or wrote as JSON, stored with raw Redis commands as Python durabledict stores them
//! (`HSET` + `INCR` in one `MULTI`), are read by a Rust dict; what a Rust dict writes is read
//! back by CPython. Python only pickles and unpickles; Redis I/O is done from Rust.
//!
//! Needs `python3` on the PATH; without it these tests fail, saying so.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{keyspace, raw, server_url};
use durabledict_core::{DurableDict, Store, SyncPolicy};
use durabledict_encoding::{Json, Pickle, Protocol};
use durabledict_redis::RedisStore;
use serde_json::{Value, json};

/// Runs `python3 -c script` with `input` on stdin; its stdout.
fn python(script: &str, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the Python interop tests need python3 on the PATH (apt-get install python3): {e}"
            )
        });
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The values both sides agree on, as JSON; Python builds the same from the JSON text,
/// turning `"tuple"` entries into tuples (reference suite item 5).
fn samples() -> Value {
    json!({
        "text": "☃ snowman",
        "int": 42,
        "negative": -7,
        "big": 9_007_199_254_740_993_i64,
        "float": 0.0025,
        "list": [1, -2, 3],
        "flag": true,
        "none": null,
        "nested": {"mode": "fast", "limits": [1, 2.5, "three"], "on": false},
        "tuple": ["a", "b", 1.5, [1, 2, 3], "☃"],
    })
}

/// Python side: the samples, with the "tuple" one as a real tuple.
const PY_SAMPLES: &str = r#"
import json, sys
samples = json.loads(sys.stdin.read())
samples["tuple"] = tuple(samples["tuple"])
"#;

/// Writes `entries` the way Python durabledict's `persist` does: `HSET` and `INCR` in one
/// transaction.
fn python_style_write(store: &RedisStore, entries: &HashMap<String, String>) {
    let mut conn = raw(&server_url());
    for (key, value) in entries {
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(store.hash_key())
            .arg(key)
            .arg(value.as_bytes())
            .ignore()
            .cmd("INCR")
            .arg(store.stamp_key())
            .ignore()
            .query(&mut conn)
            .unwrap();
    }
}

/// Every stored value of the keyspace, read with a raw `HGETALL`.
fn stored(store: &RedisStore) -> HashMap<String, Vec<u8>> {
    redis::cmd("HGETALL")
        .arg(store.hash_key())
        .query(&mut raw(&server_url()))
        .unwrap()
}

fn check_rust_reads_python(protocol: u8) {
    let ks = keyspace(&format!("py{protocol}"));
    let store = RedisStore::open(&server_url(), &ks).unwrap();
    // A Rust dict is live before Python writes: it must see the change through the stamp.
    let dict = DurableDict::<Value>::builder(store.clone(), Pickle::<Value>::new())
        .policy(SyncPolicy::Always)
        .build()
        .unwrap();
    assert!(dict.is_empty().unwrap());

    let script = format!(
        "{PY_SAMPLES}
import base64, pickle
out = {{k: base64.encodebytes(pickle.dumps(v, {protocol})).decode('ascii') for k, v in samples.items()}}
print(json.dumps(out))"
    );
    let encoded: HashMap<String, String> =
        serde_json::from_slice(&python(&script, samples().to_string().as_bytes())).unwrap();
    python_style_write(&store, &encoded);

    let want = samples();
    for (key, value) in want.as_object().unwrap() {
        let got = dict
            .get(key)
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(&*got, value, "protocol {protocol}, key {key}");
    }
    assert_eq!(dict.len().unwrap(), want.as_object().unwrap().len());
}

#[test]
fn rust_reads_values_cpython_pickled_with_protocol_2() {
    check_rust_reads_python(2);
}

#[test]
fn rust_reads_values_cpython_pickled_with_protocol_5() {
    check_rust_reads_python(5);
}

fn check_python_reads_rust(protocol: Protocol) {
    let ks = keyspace("rust-pickle");
    let store = RedisStore::open(&server_url(), &ks).unwrap();
    let dict = DurableDict::<Value>::builder(
        store.clone(),
        Pickle::<Value>::new().with_protocol(protocol),
    )
    .build()
    .unwrap();
    for (key, value) in samples().as_object().unwrap() {
        dict.insert(key, value.clone()).unwrap();
    }
    // CPython unpickles the stored bytes exactly as Python durabledict would.
    let stored: HashMap<String, String> = stored(&store)
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
    let check = r#"
import base64, json, pickle, sys
data = json.loads(sys.stdin.read())
stored, samples = data["stored"], data["samples"]
for k, text in stored.items():
    v = pickle.loads(base64.decodebytes(text.encode('ascii')))
    # A JSON value has no tuple: the "tuple" sample goes out and comes back as a list.
    assert v == samples[k], (k, v, samples[k])
print(len(stored))
"#;
    let input = json!({"stored": stored, "samples": samples()}).to_string();
    let out = python(check, input.as_bytes());
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        samples().as_object().unwrap().len().to_string()
    );
}

#[test]
fn cpython_unpickles_what_rust_writes_protocol_3() {
    check_python_reads_rust(Protocol::V3);
}

#[test]
fn cpython_unpickles_what_rust_writes_protocol_2() {
    check_python_reads_rust(Protocol::V2);
}

#[test]
fn json_both_ways() {
    let ks = keyspace("json");
    let store = RedisStore::open(&server_url(), &ks).unwrap();
    let dict = DurableDict::<Value>::builder(store.clone(), Json::<Value>::new())
        .build()
        .unwrap();

    // Python's JSONEncoding writes json.dumps(v): spaces after separators, \u escapes.
    let script = format!(
        "{PY_SAMPLES}
print(json.dumps({{k: json.dumps(v) for k, v in samples.items()}}))"
    );
    let encoded: HashMap<String, String> =
        serde_json::from_slice(&python(&script, samples().to_string().as_bytes())).unwrap();
    assert!(encoded["text"].contains("\\u2603"), "{}", encoded["text"]);
    python_style_write(&store, &encoded);
    for (key, value) in samples().as_object().unwrap() {
        assert_eq!(&*dict.get(key).unwrap().unwrap(), value, "key {key}");
    }

    // And Python's json.loads reads what Rust writes.
    dict.insert("from rust", json!({"☃": [1, 2.5, null]}))
        .unwrap();
    let text = stored(&store).remove("from rust").unwrap();
    let out = python(
        "import json, sys; v = json.loads(sys.stdin.buffer.read().decode('utf-8')); assert v == {'☃': [1, 2.5, None]}, v; print('ok')",
        &text,
    );
    assert_eq!(String::from_utf8(out).unwrap().trim(), "ok");
}

/// Python can write a field that is not UTF-8 (`d[b'\xff'] = 'x'`); it cannot be a key here.
/// It poisons only itself: every other key loads, the load lists it with its raw name, and
/// `remove_raw_field` deletes it (with a stamp bump, so every dict reloads).
#[test]
fn a_field_that_is_not_utf8_poisons_only_itself_and_can_be_removed() {
    let ks = keyspace("binary-field");
    let store = RedisStore::open(&server_url(), &ks).unwrap();
    let dict = DurableDict::<Value>::builder(store.clone(), Json::<Value>::new())
        .build()
        .unwrap();
    let mut conn = raw(&server_url());
    for (field, value) in [(&b"\xff"[..], &b"\"x\""[..]), (b"ok", b"1")] {
        let () = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(store.hash_key())
            .arg(field)
            .arg(value)
            .ignore()
            .cmd("INCR")
            .arg(store.stamp_key())
            .ignore()
            .query(&mut conn)
            .unwrap();
    }

    let durables = store.durables().unwrap();
    assert_eq!(durables.entries.len(), 1);
    assert_eq!(durables.entries["ok"], b"1");
    assert_eq!(durables.unreadable.len(), 1);
    assert_eq!(durables.unreadable[0].0, b"\xff");
    assert_eq!(dict.get("ok").unwrap().as_deref(), Some(&json!(1)));
    assert_eq!(dict.status().unreadable, durables.unreadable);

    let before = store.last_updated().unwrap().unwrap();
    assert_eq!(store.remove_raw_field(b"\xff").unwrap(), Some(before + 1));
    let exists: bool = redis::cmd("HEXISTS")
        .arg(store.hash_key())
        .arg(b"\xff")
        .query(&mut conn)
        .unwrap();
    assert!(!exists);
    assert_eq!(
        store.remove_raw_field(b"\xff").unwrap(),
        None,
        "absent: no bump"
    );
    assert_eq!(store.last_updated().unwrap(), Some(before + 1));
    assert!(store.durables().unwrap().unreadable.is_empty());
    assert_eq!(dict.len().unwrap(), 1);
    assert!(dict.status().unreadable.is_empty());
}
