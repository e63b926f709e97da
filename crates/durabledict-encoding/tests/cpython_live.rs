//! Runs the real CPython (`python3`, which must be installed: this test fails, it does not
//! skip, when it is missing) on what Rust writes, both ways:
//!
//! - Rust encodes a value; CPython decodes the stored form exactly as Python durabledict does
//!   (`pickle.loads(base64.decodebytes(...))`, `json.loads(...)`), checks the base64 has the
//!   shape of `base64.encodebytes`, and compares the result with a Python literal, types
//!   included (a tuple is not a list, `True` is not `1`, `-0.0` is not `0.0`).
//! - CPython encodes that literal as Python durabledict would (`pickle.HIGHEST_PROTOCOL`,
//!   `json.dumps`), and Rust decodes it back to the value it started from.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};

use durabledict_encoding::{
    DynamicPickle, Encoding, Json, Pickle, PickleHashableValue as H, PickleValue as V, Protocol,
};
use num_bigint::BigInt;
use serde::{Deserialize, Serialize};

const CHECKER: &str = r#"
import base64, json, math, pickle, sys

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (len(a) == len(b) and all(k in b for k in a)
                and all(same(a[k], b[k]) and same(next(j for j in b if j == k), k) for k in a))
    if isinstance(a, (set, frozenset)):
        return a == b and sorted(map(repr, a)) == sorted(map(repr, b))
    return a == b

results = []
for case in json.load(sys.stdin):
    problems = []
    expect = eval(case["expect"], {"inf": math.inf})
    stored = case["stored"].encode("utf-8")
    got = None
    if case["format"] == "pickle":
        raw = base64.decodebytes(stored)
        if base64.encodebytes(raw) != stored:
            problems.append("the base64 is not shaped as base64.encodebytes shapes it")
        if raw[:2] != bytes([0x80, case["protocol"]]):
            problems.append("protocol header is %r" % raw[:2])
        try:
            got = pickle.loads(raw)
        except Exception as e:
            problems.append("pickle.loads failed: %r" % e)
        back = base64.encodebytes(pickle.dumps(expect, pickle.HIGHEST_PROTOCOL)).decode()
    else:
        try:
            got = json.loads(stored)
        except Exception as e:
            problems.append("json.loads failed: %r" % e)
        back = json.dumps(expect)
    if not problems and not same(got, expect):
        problems.append("got %r, expected %r" % (got, expect))
    results.append({"name": case["name"], "problems": problems, "back": back})
json.dump(results, sys.stdout)
"#;

/// Reads what CPython wrote and compares it with the value Rust started from.
type ReadBack = Box<dyn Fn(&[u8]) -> Result<(), String>>;

/// One value: what Rust stored, the Python literal it must equal, and how Rust reads back
/// what CPython writes for that literal.
struct Case {
    name: String,
    format: &'static str,
    protocol: u8,
    stored: Vec<u8>,
    expect: &'static str,
    read_back: ReadBack,
}

fn dynamic(name: &str, protocol: Protocol, value: V, expect: &'static str) -> Case {
    let pickle = DynamicPickle::new().with_protocol(protocol);
    let stored = pickle.encode(&value).unwrap();
    Case {
        name: format!("{name} ({protocol:?})"),
        format: "pickle",
        protocol: match protocol {
            Protocol::V2 => 2,
            _ => 3,
        },
        stored,
        expect,
        read_back: Box::new(move |bytes| {
            let got = pickle.decode(bytes).map_err(|e| e.to_string())?;
            // Debug tells -0.0 from 0.0.
            if format!("{got:?}") == format!("{value:?}") {
                Ok(())
            } else {
                Err(format!("read back {got:?}, wrote {value:?}"))
            }
        }),
    }
}

fn typed<T>(name: &str, value: T, expect: &'static str) -> Case
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + 'static,
{
    let pickle = Pickle::<T>::new();
    Case {
        name: name.into(),
        format: "pickle",
        protocol: 3,
        stored: pickle.encode(&value).unwrap(),
        expect,
        read_back: Box::new(move |bytes| {
            let got = pickle.decode(bytes).map_err(|e| e.to_string())?;
            if got == value {
                Ok(())
            } else {
                Err(format!("read back {got:?}, wrote {value:?}"))
            }
        }),
    }
}

fn json<T>(name: &str, value: T, expect: &'static str) -> Case
where
    T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug + 'static,
{
    let json = Json::<T>::new();
    Case {
        name: name.into(),
        format: "json",
        protocol: 0,
        stored: json.encode(&value).unwrap(),
        expect,
        read_back: Box::new(move |bytes| {
            let got = json.decode(bytes).map_err(|e| e.to_string())?;
            if got == value {
                Ok(())
            } else {
                Err(format!("read back {got:?}, wrote {value:?}"))
            }
        }),
    }
}

fn s(text: &str) -> V {
    V::String(text.into())
}

fn big(text: &str) -> BigInt {
    text.parse().unwrap()
}

fn dynamic_values() -> Vec<(&'static str, V, &'static str)> {
    vec![
        (
            "the reference suite's complex value",
            V::Tuple(vec![
                s("one"),
                s("two"),
                V::F64(3.5),
                V::List(vec![V::I64(1), V::I64(2), V::I64(3)]),
                s("☃"),
            ]),
            r"('one', 'two', 3.5, [1, 2, 3], '\u2603')",
        ),
        (
            "integers",
            V::List(vec![
                V::Int(big("18446744073709551617")),
                V::Int(-big("1180591620717411303424")),
                V::Int(BigInt::from(2).pow(200)),
                V::I64(-1),
                V::I64(0),
                V::I64(i64::MAX),
                V::I64(i64::MIN),
                V::I64(-129),
                V::I64(70000),
            ]),
            "[2**64 + 1, -(2**70), 2**200, -1, 0, 2**63 - 1, -(2**63), -129, 70000]",
        ),
        (
            "bytes",
            V::List(vec![
                V::Bytes(vec![0, 1, 0xff]),
                V::Bytes(Vec::new()),
                V::Bytes((0..=255u8).chain(0..=255u8).collect()),
            ]),
            r"[b'\x00\x01\xff', b'', bytes(range(256)) * 2]",
        ),
        (
            "sets",
            V::Tuple(vec![
                V::Set(BTreeSet::from([H::I64(1), H::I64(2), H::I64(3)])),
                V::FrozenSet(BTreeSet::from([
                    H::String("a".into()),
                    H::String("b".into()),
                ])),
                V::Set(BTreeSet::new()),
            ]),
            "({1, 2, 3}, frozenset({'a', 'b'}), set())",
        ),
        (
            "dict keys of every hashable type",
            V::Dict(BTreeMap::from([
                (H::String("a".into()), V::None),
                (H::I64(1), V::Bool(true)),
                (
                    H::Tuple(vec![H::I64(1), H::String("x".into())]),
                    V::Bool(false),
                ),
                (H::Bytes(b"k".to_vec()), V::F64(2.5)),
                (H::I64(-5), V::List(Vec::new())),
                (H::Int(BigInt::from(2).pow(70)), V::Dict(BTreeMap::new())),
            ])),
            "{'a': None, 1: True, (1, 'x'): False, b'k': 2.5, -5: [], 2**70: {}}",
        ),
        (
            "floats",
            V::List(
                [
                    0.1,
                    -0.0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    5e-324,
                    f64::MAX,
                ]
                .map(V::F64)
                .to_vec(),
            ),
            "[0.1, -0.0, inf, -inf, 5e-324, 1.7976931348623157e308]",
        ),
        (
            "strings",
            V::List(vec![
                s(""),
                s("héllo"),
                s("🎉"),
                s("a\nb\\c\r\0"),
                V::String("x".repeat(300)),
            ]),
            r"['', 'h\u00e9llo', '\U0001f389', 'a\nb\\c\r\x00', 'x' * 300]",
        ),
        (
            "nesting",
            V::List(vec![
                V::List(vec![
                    V::I64(1),
                    V::List(vec![V::I64(2), V::List(vec![V::I64(3), V::List(vec![])])]),
                ]),
                V::Tuple(vec![]),
                V::Tuple(vec![V::Tuple(vec![])]),
                V::Dict(BTreeMap::from([(
                    H::String("k".into()),
                    V::List(vec![V::Dict(BTreeMap::from([(
                        H::String("j".into()),
                        V::Tuple(vec![V::I64(1)]),
                    )]))]),
                )])),
            ]),
            "[[1, [2, [3, []]]], (), ((),), {'k': [{'j': (1,)}]}]",
        ),
        (
            "a long list",
            V::List((0..1200).map(V::I64).collect()),
            "list(range(1200))",
        ),
        (
            "singletons",
            V::List(vec![V::None, V::Bool(true), V::Bool(false)]),
            "[None, True, False]",
        ),
    ]
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Mode {
    Fast,
    Careful,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Circle { r: f64 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flag {
    name: String,
    on: bool,
    percent: u8,
    ratio: f64,
    tags: Vec<String>,
    limits: BTreeMap<String, i64>,
    note: Option<String>,
    missing: Option<String>,
    unit: (),
    mode: Mode,
    shape: Shape,
    pair: (i32, String),
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for protocol in [Protocol::V3, Protocol::V2] {
        for (name, value, expect) in dynamic_values() {
            cases.push(dynamic(name, protocol, value, expect));
        }
    }
    cases.push(typed(
        "a serde struct",
        Flag {
            name: "beta ☃".into(),
            on: true,
            percent: 10,
            ratio: 0.25,
            tags: vec!["a".into(), "b".into()],
            limits: BTreeMap::from([("x".into(), -1), ("y".into(), 1 << 40)]),
            note: Some("n".into()),
            missing: None,
            unit: (),
            mode: Mode::Fast,
            shape: Shape::Circle { r: 1.5 },
            pair: (7, "seven".into()),
        },
        r"{'name': 'beta \u2603', 'on': True, 'percent': 10, 'ratio': 0.25, 'tags': ['a', 'b'],
           'limits': {'x': -1, 'y': 2**40}, 'note': 'n', 'missing': None, 'unit': None,
           'mode': 'Fast', 'shape': {'Circle': {'r': 1.5}}, 'pair': (7, 'seven')}",
    ));
    cases.push(typed(
        "a serde map",
        HashMap::from([
            ("a".to_string(), vec![1u64, 1 << 40]),
            ("b".to_string(), Vec::new()),
        ]),
        "{'a': [1, 2**40], 'b': []}",
    ));
    cases.push(typed(
        "integer extremes",
        (i64::MIN, i64::MAX, u32::MAX, i8::MIN, Mode::Careful),
        "(-(2**63), 2**63 - 1, 2**32 - 1, -128, 'Careful')",
    ));
    cases.push(typed(
        "Vec<u8> is a list of ints",
        vec![1u8, 2, 255],
        "[1, 2, 255]",
    ));
    cases.push(json(
        "json struct",
        serde_json::json!({"on": true, "name": "☃", "n": [1, 2.5, null], "big": 1u64 << 60}),
        r"{'on': True, 'name': '\u2603', 'n': [1, 2.5, None], 'big': 2**60}",
    ));
    cases.push(json(
        "json typed map",
        BTreeMap::from([("k".to_string(), vec![0.1, -0.0])]),
        "{'k': [0.1, -0.0]}",
    ));
    cases
}

#[test]
fn cpython_reads_what_rust_writes_and_rust_reads_what_cpython_writes() {
    let cases = cases();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|case| {
            serde_json::json!({
                "name": case.name,
                "format": case.format,
                "protocol": case.protocol,
                "stored": String::from_utf8(case.stored.clone()).unwrap(),
                "expect": case.expect,
            })
        })
        .collect();

    let mut python = Command::new("python3")
        .arg("-c")
        .arg(CHECKER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs CPython 3 as `python3` on PATH to check compatibility \
                 (apt-get install python3): {e}"
            )
        });
    python
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python3 failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    #[derive(Deserialize)]
    struct Outcome {
        name: String,
        problems: Vec<String>,
        back: String,
    }
    let outcomes: Vec<Outcome> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(outcomes.len(), cases.len());

    let mut failures = Vec::new();
    for (case, outcome) in cases.iter().zip(&outcomes) {
        assert_eq!(case.name, outcome.name);
        for problem in &outcome.problems {
            failures.push(format!("{}: CPython: {problem}", case.name));
        }
        if let Err(problem) = (case.read_back)(outcome.back.as_bytes()) {
            failures.push(format!("{}: Rust reading CPython's: {problem}", case.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert!(cases.len() >= 26, "{} cases", cases.len());
}
