//! The allowed standard library types (`datetime`'s five, `decimal.Decimal`, `uuid.UUID`,
//! `complex`; durabledict issue 10), checked against the real CPython (`python3`, which must be
//! installed: these tests fail, they do not skip, when it is missing): CPython pickles them with
//! every protocol, Rust reads them into [`Value`]s built here by hand, writes them back, and
//! CPython reads back an object of the same type with the same `repr` (which shows a
//! `datetime`'s fold and a `timezone`'s name, a `Decimal`'s exact digits and a float's sign).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict_encoding::{
    Complex, Date, DateTime, Decimal, DynamicPickle, Encoding, HashableValue as H, Pickle,
    Protocol, Python2Str, SafeUuid, Time, TimeDelta, TimeZone, Uuid, Value as V,
};

/// Runs `script` with `input` on stdin and returns its stdout.
fn python(script: &str, input: &[u8]) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed to run these tests (apt-get install python3)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The cases, as Python expressions; `expected` below builds the same values in Rust.
const CASES: &str = r#"
import datetime as dt, decimal, uuid
D = decimal.Decimal
tz = dt.timezone
td = dt.timedelta
CASES = {
    "datetime_fold": dt.datetime(2020, 1, 2, 3, 4, 5, 123456, fold=1),
    "datetime_utc": dt.datetime(2020, 1, 2, 3, 4, 5, 6, tzinfo=tz.utc),
    "datetime_named_offset": dt.datetime(1999, 12, 31, 23, 59, 59, 999999,
        tzinfo=tz(td(hours=-5, seconds=30, microseconds=7), "EST")),
    "datetime_min": dt.datetime.min,
    "datetime_max": dt.datetime.max,
    "date": dt.date(2024, 2, 29),
    "time_offset": dt.time(1, 2, 3, 4, tzinfo=tz(td(hours=1))),
    "time_fold": dt.time(23, 59, 0, fold=1),
    "timedelta": td(days=-1, seconds=5, microseconds=7),
    "timedelta_max": td.max,
    "timedelta_min": td.min,
    "timezone_utc": tz.utc,
    "timezone_named": tz(td(minutes=-90), "x\u2603"),
    "decimal_exponent": D("-1.50E+3"),
    "decimal_small": D("0.000001"),
    "decimal_tiny": D("1E-7"),
    "decimal_negative_zero": D("-0"),
    "decimal_trailing_zeros": D("100.000"),
    "decimal_huge_exponent": D("1E+999999999"),
    "decimal_long": D("123456789012345678901234567890.123"),
    "decimal_nan": D("NaN"),
    "decimal_snan": D("-sNaN123"),
    "decimal_infinity": D("-Infinity"),
    "uuid": uuid.UUID(int=12345),
    "uuid_max": uuid.UUID(int=2**128 - 1),
    "uuid_safe": uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe),
    "uuid_unsafe": uuid.UUID("6f0e2a1c-0000-4000-8000-000000000001", is_safe=uuid.SafeUUID.unsafe),
    "complex": complex(1, 2),
    "complex_signed": complex(-0.0, float("inf")),
    "nested": {dt.date(2020, 1, 1): [D("1")], "k": (uuid.UUID(int=1), 1j),
               "s": frozenset([td(1), tz.utc])},
}
"#;

fn date(y: u16, m: u8, d: u8) -> Date {
    Date::new(y, m, d).unwrap()
}

fn time(h: u8, m: u8, s: u8, us: u32) -> Time {
    Time::new(h, m, s, us).unwrap()
}

fn delta(days: i64, seconds: i64, us: i64) -> TimeDelta {
    TimeDelta::new(days, seconds, us).unwrap()
}

fn zone(offset: TimeDelta, name: Option<&str>) -> TimeZone {
    TimeZone::new(offset, name.map(str::to_owned)).unwrap()
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The Rust value of each case; `fold_kept` is whether the protocol keeps a fold (CPython
/// writes it only with protocols 4 and 5).
fn expected(name: &str, fold_kept: bool) -> V {
    let utc = Some(TimeZone::utc());
    match name {
        "datetime_fold" => V::DateTime(DateTime::new(
            date(2020, 1, 2),
            time(3, 4, 5, 123_456).with_fold(fold_kept),
        )),
        "datetime_utc" => {
            V::DateTime(DateTime::new(date(2020, 1, 2), time(3, 4, 5, 6)).with_tzinfo(utc))
        }
        "datetime_named_offset" => V::DateTime(
            DateTime::new(date(1999, 12, 31), time(23, 59, 59, 999_999))
                .with_tzinfo(Some(zone(delta(0, -5 * 3600 + 30, 7), Some("EST")))),
        ),
        "datetime_min" => V::DateTime(DateTime::new(date(1, 1, 1), time(0, 0, 0, 0))),
        "datetime_max" => V::DateTime(DateTime::new(date(9999, 12, 31), time(23, 59, 59, 999_999))),
        "date" => V::Date(date(2024, 2, 29)),
        "time_offset" => V::Time(time(1, 2, 3, 4).with_tzinfo(Some(zone(delta(0, 3600, 0), None)))),
        "time_fold" => V::Time(time(23, 59, 0, 0).with_fold(fold_kept)),
        "timedelta" => V::TimeDelta(delta(-1, 5, 7)),
        "timedelta_max" => V::TimeDelta(delta(999_999_999, 86_399, 999_999)),
        "timedelta_min" => V::TimeDelta(delta(-999_999_999, 0, 0)),
        "timezone_utc" => V::TimeZone(TimeZone::utc()),
        "timezone_named" => V::TimeZone(zone(delta(0, -90 * 60, 0), Some("x☃"))),
        "decimal_exponent" => V::Decimal(dec("-1.50E+3")),
        "decimal_small" => V::Decimal(dec("0.000001")),
        "decimal_tiny" => V::Decimal(dec("1E-7")),
        "decimal_negative_zero" => V::Decimal(dec("-0")),
        "decimal_trailing_zeros" => V::Decimal(dec("100.000")),
        "decimal_huge_exponent" => V::Decimal(dec("1E+999999999")),
        "decimal_long" => V::Decimal(dec("123456789012345678901234567890.123")),
        "decimal_nan" => V::Decimal(dec("NaN")),
        "decimal_snan" => V::Decimal(dec("-sNaN123")),
        "decimal_infinity" => V::Decimal(dec("-Infinity")),
        "uuid" => V::Uuid(Uuid::new(12345)),
        "uuid_max" => V::Uuid(Uuid::new(u128::MAX)),
        "uuid_safe" => V::Uuid(Uuid::new(5).with_is_safe(SafeUuid::Safe)),
        "uuid_unsafe" => V::Uuid(
            Uuid::new(0x6f0e_2a1c_0000_4000_8000_0000_0000_0001).with_is_safe(SafeUuid::Unsafe),
        ),
        "complex" => V::Complex(Complex { re: 1.0, im: 2.0 }),
        "complex_signed" => V::Complex(Complex {
            re: -0.0,
            im: f64::INFINITY,
        }),
        "nested" => V::Dict(BTreeMap::from([
            (
                H::Date(date(2020, 1, 1)),
                V::List(vec![V::Decimal(dec("1"))]),
            ),
            (
                H::String("k".into()),
                V::Tuple(vec![
                    V::Uuid(Uuid::new(1)),
                    V::Complex(Complex { re: 0.0, im: 1.0 }),
                ]),
            ),
            (
                H::String("s".into()),
                V::FrozenSet(BTreeSet::from([
                    H::TimeDelta(delta(1, 0, 0)),
                    H::TimeZone(TimeZone::utc()),
                ])),
            ),
        ])),
        other => panic!("no expected value for {other}"),
    }
}

/// Python that reads `name protocol base64` lines and says, for each, whether it unpickles to
/// the case of that name: same type, same repr (and same `is_safe` for a UUID).
const CHECK: &str = r#"
import base64, pickle, sys
def canonical(x):
    """Type and repr, containers in a fixed order, a UUID's is_safe included."""
    if isinstance(x, dict):
        inner = sorted(repr((canonical(k), canonical(v))) for k, v in x.items())
    elif isinstance(x, (set, frozenset)):
        inner = sorted(repr(canonical(m)) for m in x)
    elif isinstance(x, (list, tuple)):
        inner = [canonical(m) for m in x]
    elif isinstance(x, uuid.UUID):
        inner = (repr(x), x.is_safe)
    else:
        inner = repr(x)
    return (type(x).__name__, inner)
def same(a, b):
    return canonical(a) == canonical(b)
for line in sys.stdin:
    name, protocol, stored = line.split()
    raw = base64.b64decode(stored)
    try:
        got = pickle.loads(raw)
        ok = same(got, CASES[name]) and raw[1] == int(protocol)
        print(name, protocol, "ok" if ok else "got %r, expected %r" % (got, CASES[name]))
    except Exception as e:
        print(name, protocol, "failed: %r" % e)
"#;

#[test]
fn cpython_pickles_of_every_protocol_read_exactly_and_are_written_back_as_the_same_types() {
    let made = python(
        &format!(
            "{CASES}\nimport base64, pickle\nfor name, value in CASES.items():\n    \
             for p in range(6):\n        \
             print(name, p, base64.b64encode(pickle.dumps(value, p)).decode())"
        ),
        b"",
    );
    let pickle = Pickle::<V>::new();
    let mut written = String::new();
    let mut count = 0;
    for line in made.lines() {
        let [name, protocol, stored] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{line}");
        };
        let protocol: u8 = protocol.parse().unwrap();
        let raw = STANDARD.decode(stored).unwrap();
        let value = pickle
            .from_pickle(&raw)
            .unwrap_or_else(|e| panic!("{name} protocol {protocol}: {e}"));
        assert_eq!(
            format!("{value:?}"),
            format!("{:?}", expected(name, protocol >= 4)),
            "{name} protocol {protocol}"
        );
        // Written back with both protocols we write, from the value as CPython 3.11 holds it.
        for ours in [Protocol::V3, Protocol::V2] {
            let again = Pickle::<V>::new()
                .with_protocol(ours)
                .to_pickle(&expected(name, true))
                .unwrap();
            written.push_str(&format!(
                "{name} {} {}\n",
                if ours == Protocol::V2 { 2 } else { 3 },
                STANDARD.encode(&again)
            ));
        }
        count += 1;
    }
    assert_eq!(count, 30 * 6);
    let checked = python(&format!("{CASES}{CHECK}"), written.as_bytes());
    let problems: Vec<&str> = checked.lines().filter(|l| !l.ends_with(" ok")).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(checked.lines().count(), count * 2);
}

#[test]
fn the_fold_is_written_with_protocols_2_and_3_though_cpython_itself_drops_it_there() {
    let value = V::DateTime(DateTime::new(
        date(2020, 11, 1),
        time(1, 30, 0, 0).with_fold(true),
    ));
    let raw = Pickle::<V>::new().to_pickle(&value).unwrap();
    let out = python(
        "import pickle, sys, base64\nprint(pickle.loads(base64.b64decode(sys.stdin.read())).fold)",
        STANDARD.encode(&raw).as_bytes(),
    );
    assert_eq!(out.trim(), "1");
    assert_eq!(Pickle::<V>::new().from_pickle(&raw).unwrap(), value);
}

/// Pickles as Python 2.7 wrote them (written out by hand: no Python 2 here). Python 2 has no
/// bytes type: its `datetime`, `date` and `time` pickle their state as a `str`, written by
/// protocol 0 as `STRING` (`S'...'`, the str's repr, `\x` escapes) and by protocol 2 as
/// `SHORT_BINSTRING` (`U` + length + the bytes); its `long` is `L...L` (protocol 0) or LONG1;
/// its UUID has no `__reduce__`, so protocol 0 goes through `copy_reg._reconstructor` and
/// protocol 2 through NEWOBJ, then BUILD with the instance `__dict__` (`{'int': n}`).
fn python2_pickles() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "datetime p0",
            b"cdatetime\ndatetime\np0\n(S'\\x07\\xd0\\x01\\x01\\x0c\\x22\\x38\\x01\\xe2\\x40'\np1\ntp2\nRp3\n."
                .to_vec(),
        ),
        (
            "datetime p2",
            b"\x80\x02cdatetime\ndatetime\nq\x00U\n\x07\xd0\x01\x01\x0c\x22\x38\x01\xe2\x40q\x01\x85q\x02Rq\x03."
                .to_vec(),
        ),
        // Year 2100 and 50089 µs: a state that happens to be valid UTF-8 ("\xc3\xa9" is é).
        (
            "datetime utf-8 state p2",
            b"\x80\x02cdatetime\ndatetime\nq\x00U\n\x08\x34\x01\x01\x00\x00\x00\x00\xc3\xa9q\x01\x85q\x02Rq\x03."
                .to_vec(),
        ),
        (
            "date p0",
            b"cdatetime\ndate\np0\n(S'\\x07\\xd0\\x02\\x1d'\np1\ntp2\nRp3\n.".to_vec(),
        ),
        (
            "date p2",
            b"\x80\x02cdatetime\ndate\nq\x00U\x04\x07\xd0\x02\x1dq\x01\x85q\x02Rq\x03.".to_vec(),
        ),
        (
            "time p0",
            b"cdatetime\ntime\np0\n(S'\\x01\\x02\\x03\\x00\\x00\\x04'\np1\ntp2\nRp3\n.".to_vec(),
        ),
        (
            "time p2",
            b"\x80\x02cdatetime\ntime\nq\x00U\x06\x17\x3b\x3b\x0f\x42\x3fq\x01\x85q\x02Rq\x03."
                .to_vec(),
        ),
        (
            "timedelta p0",
            b"cdatetime\ntimedelta\np0\n(I-1\nI5\nI7\ntp1\nRp2\n.".to_vec(),
        ),
        (
            "timedelta p2",
            b"\x80\x02cdatetime\ntimedelta\nq\x00J\xff\xff\xff\xffK\x05K\x07\x87q\x01Rq\x02."
                .to_vec(),
        ),
        (
            "decimal p0",
            b"cdecimal\nDecimal\np0\n(S'-1.50E+3'\np1\ntp2\nRp3\n.".to_vec(),
        ),
        (
            "decimal p2",
            b"\x80\x02cdecimal\nDecimal\nq\x00U\x07sNaN123q\x01\x85q\x02Rq\x03.".to_vec(),
        ),
        (
            "complex p0",
            b"c__builtin__\ncomplex\np0\n(F1.0\nF-2.5\ntp1\nRp2\n.".to_vec(),
        ),
        (
            "uuid p0",
            b"ccopy_reg\n_reconstructor\np0\n(cuuid\nUUID\np1\nc__builtin__\nobject\np2\nNtp3\nRp4\n(dp5\nS'int'\np6\nL12345L\nsb."
                .to_vec(),
        ),
        (
            "uuid p2",
            b"\x80\x02cuuid\nUUID\nq\x00)\x81q\x01}q\x02U\x03intq\x03\x8a\x0290sb.".to_vec(),
        ),
    ]
}

#[test]
fn python2_pickles_read_as_cpython_3_reads_them_with_latin1_and_are_written_back() {
    let pickles = python2_pickles();
    let input: String = pickles
        .iter()
        .map(|(_, raw)| STANDARD.encode(raw) + "\n")
        .collect();
    // What CPython 3 reads (Python 2 datetimes need encoding="latin1", its documentation says).
    let reprs = python(
        "import base64, pickle, sys\nfor line in sys.stdin:\n    \
         print(repr(pickle.loads(base64.b64decode(line), encoding='latin1')))",
        input.as_bytes(),
    );
    let reprs: Vec<&str> = reprs.lines().collect();
    assert_eq!(reprs.len(), pickles.len());
    let reread = |raw: &[u8]| -> String {
        python(
            "import base64, pickle, sys\nprint(repr(pickle.loads(base64.b64decode(sys.stdin.read()))))",
            STANDARD.encode(raw).as_bytes(),
        )
    };
    let mut written = String::new();
    for ((name, raw), repr) in pickles.iter().zip(&reprs) {
        for mode in [Python2Str::Text, Python2Str::Latin1, Python2Str::Bytes] {
            let pickle = Pickle::<V>::new().with_python2_str(mode);
            let value = pickle
                .from_pickle(raw)
                .unwrap_or_else(|e| panic!("{name} {mode:?}: {e}"));
            let again = pickle.to_pickle(&value).unwrap();
            written.push_str(&STANDARD.encode(&again));
            written.push('\n');
            if mode == Python2Str::Text {
                assert_eq!(
                    reread(&again).trim(),
                    *repr,
                    "{name}: written back as {value:?}"
                );
            }
        }
    }
    // Every mode reads them the same (checked once through CPython above for Text).
    let all = python(
        "import base64, pickle, sys\nfor line in sys.stdin:\n    print(repr(pickle.loads(base64.b64decode(line))))",
        written.as_bytes(),
    );
    let expect: Vec<&str> = reprs.iter().flat_map(|r| [*r; 3]).collect();
    assert_eq!(all.lines().collect::<Vec<_>>(), expect);
}

#[test]
fn python3_protocol_0_to_2_states_written_through_codecs_encode_are_read() {
    // CPython 3 writes a datetime's state with protocols 0-2 as _codecs.encode(text, "latin1");
    // the test above reads such pickles through every protocol, this one pins the form.
    let out = python(
        "import base64, pickle, datetime\n\
         print(base64.b64encode(pickle.dumps(datetime.date(2024, 2, 29), 0)).decode())",
        b"",
    );
    let raw = STANDARD.decode(out.trim()).unwrap();
    assert!(raw.windows(15).any(|w| w == b"c_codecs\nencode"));
    assert_eq!(
        Pickle::<V>::new().from_pickle(&raw).unwrap(),
        V::Date(date(2024, 2, 29))
    );
}

#[test]
fn a_dynamic_pickle_value_cannot_hold_them_and_says_what_to_use() {
    let raw = Pickle::<V>::new()
        .to_pickle(&V::List(vec![V::Date(date(2024, 1, 1))]))
        .unwrap();
    let err = DynamicPickle::new().from_pickle(&raw).unwrap_err();
    assert!(
        err.to_string().contains("datetime.date") && err.to_string().contains("Pickle<Value>"),
        "{err}"
    );
    // Builtins still read as PickleValue, and Value reads what DynamicPickle writes.
    let builtin =
        durabledict_encoding::PickleValue::Tuple(vec![durabledict_encoding::PickleValue::I64(1)]);
    let stored = DynamicPickle::new().encode(&builtin).unwrap();
    assert_eq!(
        Pickle::<V>::new().decode(&stored).unwrap(),
        V::from(builtin.clone())
    );
    assert_eq!(DynamicPickle::new().decode(&stored).unwrap(), builtin);
}
