//! Dict keys (and set members) are equal exactly when CPython's `==` says so.
//!
//! Found in review: `HashableValue` compared a `Decimal`, a `complex`, an aware `datetime` or
//! `time`, a named `timezone` and a `UUID`'s `is_safe` by their structure, so a dict built in
//! Rust held `1`, `Decimal("1.0")` and `complex(1, 0)` as three keys (the CLI's
//! `{"$dict": [[1, "a"], [{"$decimal": "1.0"}, "b"]]}` printed two entries) while CPython read
//! the same pickle as one key `1` with the value `"b"`.
//!
//! Runs the real `python3` (fails, does not skip, when it is missing).
#![allow(clippy::unwrap_used)]

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict_encoding::{HashableValue, Pickle, Value};

/// Python expressions of keys; equal ones in Python and unequal ones side by side.
const KEYS: &[&str] = &[
    "0",
    "False",
    "0.0",
    "-0.0",
    "Decimal('0')",
    "Decimal('-0E+3')",
    "Decimal('0E-10')",
    "complex(0, 0)",
    "complex(-0.0, -0.0)",
    "1",
    "True",
    "1.0",
    "Decimal('1')",
    "Decimal('1.0')",
    "Decimal('1.000')",
    "Decimal('0.1E1')",
    "complex(1, 0)",
    "complex(1, 1)",
    "complex(1, -1)",
    "Decimal('0.1')",
    "0.1",
    "Decimal(0.1)",
    "0.5",
    "Decimal('0.5')",
    "Decimal('-0.5')",
    "-1",
    "Decimal('-1.0')",
    "2**64",
    "Decimal(2**64)",
    "float(2**64)",
    "2**64 + 1",
    "Decimal('18446744073709551617.0')",
    "10**400",
    "10**5000",
    "-10**5000",
    "10**5000 + 1",
    "Decimal('1E+5000')",
    "Decimal('-1.0E+5000')",
    "Decimal('1E+4999')",
    "Decimal('9.99E+4999')",
    "Decimal('-1E+5001')",
    "-2**63",
    "Decimal(-2**63)",
    "Decimal('1E+400')",
    "Decimal('1E+999999999')",
    "Decimal('1E-999999999')",
    "5e-324",
    "Decimal(5e-324)",
    "Decimal('4.9E-324')",
    "Decimal('1E-330')",
    "-5e-324",
    "Decimal('-1E-330')",
    "1e300",
    "Decimal('1E+300')",
    "Decimal(1e300)",
    "Decimal('1E+302')",
    "1e-5",
    "Decimal('0.00001')",
    "Decimal(1e-5)",
    "1e22",
    "Decimal('1E+22')",
    "1.7976931348623157e308",
    "Decimal(1.7976931348623157e308)",
    "Decimal('1.8E+308')",
    "float('inf')",
    "Decimal('Infinity')",
    "float('-inf')",
    "Decimal('-Infinity')",
    "complex(float('inf'), 0)",
    "Decimal('NaN')",
    "'1'",
    "datetime.datetime(2026, 1, 1, 10, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))",
    "datetime.datetime(2026, 1, 1, 9, tzinfo=datetime.timezone.utc)",
    "datetime.datetime(2026, 1, 1, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=-5), 'EST'))",
    "datetime.datetime(2026, 1, 1, 9, fold=1, tzinfo=datetime.timezone.utc)",
    "datetime.datetime(2026, 1, 1, 9)",
    "datetime.datetime(2026, 1, 1, 9, fold=1)",
    "datetime.datetime(2026, 1, 1, 10)",
    "datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=23, minutes=59)))",
    "datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone(-datetime.timedelta(hours=23, minutes=59)))",
    "datetime.date(2026, 1, 1)",
    "datetime.time(10, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))",
    "datetime.time(9, tzinfo=datetime.timezone.utc)",
    "datetime.time(9)",
    "datetime.time(9, fold=1)",
    "datetime.time(0, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))",
    "datetime.time(23, 30, tzinfo=datetime.timezone.utc)",
    "datetime.timezone(datetime.timedelta(hours=1))",
    "datetime.timezone(datetime.timedelta(hours=1), 'CET')",
    "datetime.timezone.utc",
    "datetime.timezone(datetime.timedelta(0), 'Z')",
    "datetime.timedelta(0)",
    "datetime.timedelta(hours=1)",
    "uuid.UUID(int=1)",
    "uuid.UUID(int=1, is_safe=uuid.SafeUUID.safe)",
    "uuid.UUID(int=2)",
    "(1, 'a')",
    "(Decimal('1.0'), 'a')",
    "(1.5, 'a')",
    "frozenset({1, 2})",
    "frozenset({Decimal('2'), 1.0})",
];

const PRELUDE: &str = "import base64, datetime, pickle, sys, uuid\nfrom decimal import Decimal\n";

fn python(script: &str) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}{script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn keys() -> Vec<HashableValue> {
    let list = KEYS.join(", ");
    let out = python(&format!(
        "for k in [{list}]:\n    print(base64.b64encode(pickle.dumps(k, 4)).decode())"
    ));
    let pickle = Pickle::<Value>::new();
    out.lines()
        .map(|line| {
            let value: Value = pickle.from_pickle(&STANDARD.decode(line).unwrap()).unwrap();
            value.into_hashable().unwrap()
        })
        .collect()
}

#[test]
fn keys_are_equal_exactly_when_cpython_says_so() {
    let keys = keys();
    assert_eq!(keys.len(), KEYS.len());
    let list = KEYS.join(", ");
    let equal = python(&format!(
        "ks = [{list}]\nprint(''.join('1' if a == b else '0' for a in ks for b in ks))"
    ));
    let equal = equal.trim().as_bytes();
    let mut wrong = Vec::new();
    for (i, a) in keys.iter().enumerate() {
        for (j, b) in keys.iter().enumerate() {
            let python_equal = equal[i * keys.len() + j] == b'1';
            // Python's NaN is not equal to itself; a dict finds it by identity only.
            if i == j && KEYS[i].contains("NaN") {
                continue;
            }
            if (a.cmp(b) == Ordering::Equal) != python_equal {
                wrong.push(format!("{} == {}: Python {python_equal}", KEYS[i], KEYS[j]));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_order_is_total_and_consistent() {
    let keys = keys();
    let mut sorted = keys.clone();
    sorted.sort();
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i..] {
            assert_ne!(
                a.cmp(b),
                Ordering::Greater,
                "{a:?} after {b:?} in a sorted list"
            );
            assert_eq!(a.cmp(b), b.cmp(a).reverse(), "{a:?} against {b:?}");
        }
    }
}

#[test]
fn a_dict_written_here_holds_the_keys_cpython_reads() {
    let dict: BTreeMap<HashableValue, Value> = keys()
        .into_iter()
        .zip(KEYS)
        .map(|(k, text)| (k, Value::String((*text).to_owned())))
        .collect();
    let written = Pickle::<Value>::new()
        .to_pickle(&Value::Dict(dict.clone()))
        .unwrap();
    let out = python(&format!(
        "d = pickle.loads(base64.b64decode('{}'))\nprint(len(d))",
        STANDARD.encode(written)
    ));
    assert_eq!(out.trim(), dict.len().to_string());
}
