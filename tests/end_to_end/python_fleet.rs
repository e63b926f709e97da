//! A mixed fleet on one Redis keyspace: Rust processes writing through `durabledict::open`,
//! and processes writing exactly as Python durabledict does — values pickled by CPython
//! (protocol 2, as Python 2 and old fleets write, and 5, Python 3.8+'s highest), stored with
//! `HSET` / `HDEL` / `HSETNX` and an `INCR` of the stamp in one `MULTI`. Python durabledict
//! needs redis-py, which the tests must not download, so CPython only pickles and unpickles
//! and the Redis I/O is done from Rust, byte for byte what redis-py sends.
//!
//! At the end every process must hold the same contents the programs allow, and both sides
//! read every value: Rust dicts decode what CPython pickled, CPython unpickles what is stored
//! and what each Rust member decoded and pickled again.

#![cfg(feature = "redis")]

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

use durabledict::redis::redis;
use serde_json::{Value, json};

use crate::contents;
use crate::fleet;
use crate::member::{self, Member};
use crate::program::{self, Op};
use crate::servers;

/// Rust writers, then Python-style writers (their numbers follow).
const RUST_WRITERS: usize = 2;
const PYTHON_WRITERS: usize = 2;

/// Runs `python3 -c script args…` with `input` on stdin; its stdout.
fn python(script: &str, args: &[String], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the mixed fleet needs python3 on the PATH (apt-get install python3): {e}")
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

/// CPython's pickles of writer `worker`'s values, by round, base64 as Python durabledict's
/// `PickleEncoding` stores them.
fn pickled_by_python(worker: usize, protocol: u8) -> HashMap<i64, Vec<u8>> {
    let script = format!(
        "{}
import base64, json, pickle, sys
w, protocol, rounds = map(int, sys.argv[1:])
print(json.dumps({{r: base64.encodebytes(pickle.dumps(value(w, r), protocol)).decode('ascii')
                  for r in range(rounds)}}))",
        program::PY_VALUE
    );
    let args = [worker, usize::from(protocol), 2 + program::ROUNDS as usize].map(|n| n.to_string());
    let out: HashMap<String, String> =
        serde_json::from_slice(&python(&script, &args, b"")).unwrap();
    out.into_iter()
        .map(|(round, text)| (round.parse().unwrap(), text.into_bytes()))
        .collect()
}

/// Member side: a Python-style writer. Its `setdefault` is Python durabledict's: `HSETNX`,
/// `INCR` (even when the key existed) and `HGET` in one transaction.
fn python_style_writer(job: &Value) {
    let worker = usize::try_from(job["worker"].as_u64().unwrap()).unwrap();
    let protocol = u8::try_from(job["protocol"].as_u64().unwrap()).unwrap();
    let hash = job["keyspace"].as_str().unwrap();
    let stamp = format!("{hash}last_updated");
    let pickles = pickled_by_python(worker, protocol);
    let mut conn = redis::Client::open(job["url"].as_str().unwrap())
        .and_then(|client| client.get_connection())
        .unwrap();
    // One write as Python durabledict's persist / depersist: the command and INCR, atomic.
    let write = |conn: &mut redis::Connection, command: &str, key: &str, value: Option<&[u8]>| {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd(command).arg(hash).arg(key);
        if let Some(value) = value {
            pipe.arg(value);
        }
        let () = pipe
            .ignore()
            .cmd("INCR")
            .arg(&stamp)
            .ignore()
            .query(conn)
            .unwrap();
    };
    member::say("ready", "");
    assert_eq!(member::hear(), "go");
    let mut first = None;
    for op in program::program(worker) {
        match op {
            Op::Insert(key, round) => write(&mut conn, "HSET", &key, Some(&pickles[&round])),
            Op::Remove(key) => write(&mut conn, "HDEL", &key, None),
            // Python's `update` is `MutableMapping.update`: one `__setitem__` per entry.
            Op::Update(entries) => {
                for (key, round) in entries {
                    write(&mut conn, "HSET", &key, Some(&pickles[&round]));
                }
            }
            Op::SetDefault(key, round) => {
                let (stored,): (Vec<u8>,) = redis::pipe()
                    .atomic()
                    .cmd("HSETNX")
                    .arg(hash)
                    .arg(&key)
                    .arg(&pickles[&round])
                    .ignore()
                    .cmd("INCR")
                    .arg(&stamp)
                    .ignore()
                    .cmd("HGET")
                    .arg(hash)
                    .arg(&key)
                    .query(&mut conn)
                    .unwrap();
                first = Some(decode(&stored));
            }
        }
    }
    member::say("first", &format!("{:?}", first.unwrap()));
    // What this member holds at the end is what Redis holds, decoded by this crate.
    let dict = durabledict::open(
        job["url"].as_str().unwrap(),
        &durabledict::OpenOptions::new().keyspace(hash),
    )
    .unwrap();
    fleet::report(&dict);
}

fn decode(stored: &[u8]) -> durabledict::Value {
    use durabledict::Encoding as _;
    durabledict::Pickle::<durabledict::Value>::new()
        .decode(stored)
        .unwrap()
}

/// CPython checks every view — the stored hash and each Rust member's values pickled again —
/// against `spec`, the writer and round each key's value comes from.
const PY_CHECK: &str = r#"
import base64, json, pickle, sys
data = json.load(sys.stdin)
spec = data["spec"]
for name, view in data["views"].items():
    assert sorted(view) == sorted(spec), (name, sorted(view), sorted(spec))
    for key, text in view.items():
        got = pickle.loads(base64.decodebytes(text.encode("ascii")))
        want = value(*spec[key])
        assert got == want, (name, key, got, want)
print(len(data["views"]))
"#;

#[test]
fn rust_and_python_style_writers_converge() {
    if let Some(job) = member::job() {
        return match job["role"].as_str() {
            Some("python") => python_style_writer(&job),
            _ => fleet::writer(&job),
        };
    }
    let test = member::test_name(module_path!(), "rust_and_python_style_writers_converge");
    let url = servers::redis().url(None);
    let keyspace = servers::keyspace("mixed");
    let open =
        || durabledict::open(&url, &durabledict::OpenOptions::new().keyspace(&keyspace)).unwrap();
    let watcher = open();

    let mut members: Vec<Member> = (0..RUST_WRITERS + PYTHON_WRITERS)
        .map(|worker| {
            let (role, protocol) = match worker.checked_sub(RUST_WRITERS) {
                None => ("rust", 0),
                Some(python) => ("python", if python % 2 == 0 { 2 } else { 5 }),
            };
            let job = json!({
                "role": role, "protocol": protocol, "pickles": role == "rust",
                "url": url, "keyspace": keyspace, "worker": worker,
            });
            Member::spawn(&test, &format!("{role} writer {worker}"), &job)
        })
        .collect();
    for member in &mut members {
        member.expect("ready");
    }
    for member in &mut members {
        member.send("go");
    }
    let answers: Vec<String> = members.iter_mut().map(|m| m.expect("first")).collect();
    let reloads: Vec<String> = members[..RUST_WRITERS]
        .iter_mut()
        .map(|m| m.expect("reloads"))
        .collect();

    let got = contents::of(&open());
    let whose = program::check(&got, RUST_WRITERS + PYTHON_WRITERS, &answers);
    // Which kind of writer won is up to the scheduler; shown, not asserted.
    let winners: Vec<usize> = whose
        .iter()
        .filter(|(key, _)| key.starts_with("shared-") || key.as_str() == program::FIRST)
        .map(|(_, &(worker, _))| worker)
        .collect();
    eprintln!(
        "{test}: contended keys won by writers {winners:?}; Rust writers' reloads {reloads:?}"
    );
    let want = contents::render(&got);
    fleet::expect_contents(&mut members, &want, false);
    contents::assert_holds(&watcher, &want, false);

    let stored: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(&keyspace)
        .query(
            &mut redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap(),
        )
        .unwrap();
    let text = |bytes: Vec<u8>| Value::String(String::from_utf8(bytes).unwrap());
    let mut views = BTreeMap::from([(
        "stored".to_owned(),
        Value::Object(stored.into_iter().map(|(k, v)| (k, text(v))).collect()),
    )]);
    for (worker, member) in members.iter_mut().enumerate().take(RUST_WRITERS) {
        let pickles: Value = serde_json::from_str(&member.expect("pickles")).unwrap();
        views.insert(format!("rust writer {worker}"), pickles);
    }
    let input = json!({"spec": whose, "views": views}).to_string();
    let out = python(
        &format!("{}{PY_CHECK}", program::PY_VALUE),
        &[],
        input.as_bytes(),
    );
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        (1 + RUST_WRITERS).to_string()
    );
    for member in members {
        member.finish();
    }
}
