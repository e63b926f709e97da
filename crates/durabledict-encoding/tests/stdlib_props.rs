//! Property tests for the allowed standard library types: any [`Value`] holding them is read
//! back exactly, by Rust and by CPython (`python3` must be installed); `Decimal` text is
//! parsed and printed as Python's `decimal` does; damaged pickles of them never panic.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict_encoding::{
    Complex, Date, DateTime, Decimal, HashableValue as H, Pickle, Protocol, SafeUuid, Time,
    TimeDelta, TimeZone, Uuid, Value as V,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

fn zone() -> impl Strategy<Value = TimeZone> {
    (
        -86_399_999_999i64..=86_399_999_999,
        prop::option::of("[a-zA-Z☃+]{0,6}"),
    )
        .prop_map(|(us, name)| {
            TimeZone::new(TimeDelta::from_microseconds(us).unwrap(), name).unwrap()
        })
}

fn time() -> impl Strategy<Value = Time> {
    (
        0u8..24,
        0u8..60,
        0u8..60,
        0u32..1_000_000,
        any::<bool>(),
        prop::option::of(zone()),
    )
        .prop_map(|(h, m, s, us, fold, tz)| {
            Time::new(h, m, s, us)
                .unwrap()
                .with_fold(fold)
                .with_tzinfo(tz)
        })
}

fn date() -> impl Strategy<Value = Date> {
    (1u16..=9999, 1u8..=12, 1u8..=31)
        .prop_filter_map("no such day", |(y, m, d)| Date::new(y, m, d).ok())
}

/// Decimal text as Python writes and reads it: signs, exponents, NaN payloads, infinities.
fn decimal_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[-+]?[0-9]{1,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,6})?",
        "[-+]?\\.[0-9]{1,10}",
        "[-+]?(s?NaN|s?nan)[0-9]{0,5}",
        "[-+]?(Infinity|inf|INF)",
    ]
}

fn value() -> impl Strategy<Value = V> {
    let leaf = prop_oneof![
        (any::<f64>(), any::<f64>())
            .prop_filter("NaN is not equal to itself", |(a, b)| !a.is_nan()
                && !b.is_nan())
            .prop_map(|(re, im)| V::Complex(Complex { re, im })),
        (date(), time()).prop_map(|(d, t)| V::DateTime(DateTime::new(d, t))),
        date().prop_map(V::Date),
        time().prop_map(V::Time),
        (-86_399_999_999_999_999i128..=86_399_999_999_999_999i128).prop_map(|us| {
            let (days, rest) = (us.div_euclid(86_400_000_000), us.rem_euclid(86_400_000_000));
            V::TimeDelta(TimeDelta::new(days as i64, 0, rest as i64).unwrap())
        }),
        zone().prop_map(V::TimeZone),
        decimal_text().prop_map(|t| V::Decimal(t.parse().unwrap())),
        (any::<u128>(), 0..3u8).prop_map(|(n, s)| {
            let safe = [SafeUuid::Safe, SafeUuid::Unsafe, SafeUuid::Unknown][usize::from(s)];
            V::Uuid(Uuid::new(n).with_is_safe(safe))
        }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(V::List),
            prop::collection::vec(inner.clone(), 0..4).prop_map(V::Tuple),
            prop::collection::vec((inner.clone(), inner), 0..4).prop_map(|pairs| {
                V::Dict(
                    pairs
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.into_hashable().ok()?, v)))
                        .collect::<BTreeMap<H, V>>(),
                )
            }),
        ]
    })
}

proptest! {
    #[test]
    fn values_of_the_allowed_types_round_trip(value in value(), v2 in any::<bool>()) {
        let protocol = if v2 { Protocol::V2 } else { Protocol::V3 };
        let pickle = Pickle::<V>::new().with_protocol(protocol);
        let raw = pickle.to_pickle(&value).unwrap();
        prop_assert_eq!(pickle.from_pickle(&raw).unwrap(), value);
    }

    #[test]
    fn damaged_pickles_of_them_are_errors_not_panics(
        value in value(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let pickle = Pickle::<V>::new();
        let raw = pickle.to_pickle(&value).unwrap();
        let _ = pickle.from_pickle(&raw[..cut.index(raw.len())]);
        let mut damaged = raw.clone();
        damaged[flip.index(raw.len())] = byte;
        let _ = pickle.from_pickle(&damaged);
    }
}

fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run these tests (apt-get install python3)");
    // A write error means Python stopped early: its stderr, below, says why.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `n` values drawn from `strategy`, for one batch through CPython.
fn sample<T: std::fmt::Debug>(strategy: impl Strategy<Value = T>, n: usize) -> Vec<T> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

#[test]
fn cpython_reads_random_values_as_the_same_objects() {
    let values = sample(value(), 300);
    let input: String = values
        .iter()
        .flat_map(|v| {
            [Protocol::V3, Protocol::V2].map(|p| {
                let raw = Pickle::<V>::new().with_protocol(p).to_pickle(v).unwrap();
                STANDARD.encode(raw) + "\n"
            })
        })
        .collect();
    // CPython reads each and pickles it again (protocol 5); Rust must read back the same value.
    let out = python(
        "import base64, pickle, sys\nfor line in sys.stdin:\n    \
         print(base64.b64encode(pickle.dumps(pickle.loads(base64.b64decode(line)), 5)).decode())",
        &input,
    );
    let back: Vec<V> = out
        .lines()
        .map(|l| {
            Pickle::<V>::new()
                .from_pickle(&STANDARD.decode(l).unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(back.len(), values.len() * 2);
    for (i, (got, want)) in back
        .iter()
        .zip(values.iter().flat_map(|v| [v, v]))
        .enumerate()
    {
        assert_eq!(got, want, "value {i}");
    }
}

#[test]
fn decimal_text_reads_and_prints_as_pythons_decimal() {
    let texts = sample(decimal_text(), 2000);
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let out = python(
        "import decimal, sys\nfor line in sys.stdin:\n    print(decimal.Decimal(line.strip()))",
        &input,
    );
    for (text, python) in texts.iter().zip(out.lines()) {
        let ours: Decimal = text.parse().unwrap();
        assert_eq!(ours.to_string(), python, "{text}");
        assert_eq!(python.parse::<Decimal>().unwrap(), ours, "{text}");
    }
    assert_eq!(out.lines().count(), texts.len());
}
