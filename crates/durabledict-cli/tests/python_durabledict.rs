//! The real Python durabledict (from PyPI, with redis-py, installed into a virtualenv under
//! the target directory on first use) and this crate on one Redis keyspace:
//!
//! - Python writes every standard library type this reads (`datetime`'s five, `Decimal`,
//!   `UUID`, `complex`), and a live Rust dict reads each as the equal [`Value`];
//! - a Rust dict writes the same values, and Python reads back equal objects of the same types
//!   (`fold`, zone names and `is_safe` included);
//! - the CLI prints them as its JSON forms, and `import` of that JSON writes values Python reads
//!   back as the same objects;
//! - a Python program storing an instance of its own class poisons that key only: a live Rust
//!   dict and a new one serve every other key and name it, the CLI's `list` prints the rest and
//!   exits 3 naming it, `get` of it exits 3, and Python rewriting it heals it.
//!
//! Needs `python3` with `venv` and PyPI (the first run installs `durabledict==0.9.4` and
//! `redis==8.1.0`); without them the tests fail, saying so.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{keyspace, run};
use durabledict::{
    Complex, Date, DateTime, DurableDict, Error, HashableValue, OpenOptions, SafeUuid, SyncPolicy,
    Time, TimeDelta, TimeZone, Uuid, Value,
};
use durabledict_test_servers::RedisServer;

fn server() -> &'static RedisServer {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    REDIS.get_or_init(|| RedisServer::start().expect("start redis-server"))
}

/// The virtualenv's python, with Python durabledict and redis-py importable.
fn python_with_durabledict() -> &'static PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-durabledict");
        let python = venv.join("bin").join("python");
        let importable = |python: &PathBuf| {
            Command::new(python)
                .args(["-c", "import durabledict.redis, redis"])
                .output()
                .is_ok_and(|out| out.status.success())
        };
        if !importable(&python) {
            let steps: [(&str, Vec<String>); 2] = [
                (
                    "python3",
                    vec!["-m".into(), "venv".into(), venv.display().to_string()],
                ),
                (
                    python.to_str().unwrap(),
                    [
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "durabledict==0.9.4",
                        "redis==8.1.0",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
            ];
            for (program, args) in steps {
                let out = Command::new(program)
                    .args(&args)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!(
                            "these tests need python3 with venv (apt-get install python3-venv): {e}"
                        )
                    });
                assert!(
                    out.status.success(),
                    "{program} {args:?} failed (Python durabledict comes from PyPI): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        assert!(importable(&python), "durabledict did not install");
        python
    })
}

/// What every script starts with: the values, a canonical text of any value (its type, and
/// what `==` ignores: `fold`, the zone's name, `is_safe`, a `Decimal`'s exact digits), and a
/// `RedisDict` on `sys.argv[1]`, `sys.argv[2]`.
const PRELUDE: &str = r#"
import base64, datetime, decimal, json, sys, uuid
# durabledict 0.9.4 calls these two, which Python 3.9 removed (renamed, same behaviour).
base64.encodestring = base64.encodebytes
base64.decodestring = base64.decodebytes
from redis import Redis
from durabledict.redis import RedisDict

plus_one = datetime.timezone(datetime.timedelta(hours=1))
est = datetime.timezone(datetime.timedelta(hours=-5), "EST")
VALUES = {
    "aware": datetime.datetime(2026, 12, 1, 10, 0, 0, 250000, tzinfo=plus_one),
    "naive": datetime.datetime(2026, 12, 1, 10, 0),
    "folded": datetime.datetime(2026, 11, 1, 1, 30, fold=1),
    "named_zone": datetime.datetime(2026, 11, 1, 1, 30, tzinfo=est),
    "utc": datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc),
    "date": datetime.date(2024, 2, 29),
    "time": datetime.time(13, 5, 0, 250000, tzinfo=plus_one),
    "time_folded": datetime.time(1, 30, fold=1),
    "delta": datetime.timedelta(days=-1, seconds=86399, microseconds=1),
    "zone": est,
    "utc_zone": datetime.timezone.utc,
    "decimal": decimal.Decimal("0.10"),
    "decimal_exp": decimal.Decimal("-1.50E+3"),
    "negative_zero": decimal.Decimal("-0"),
    "nan": decimal.Decimal("NaN"),
    "snan": decimal.Decimal("-sNaN12"),
    "infinity": decimal.Decimal("-Infinity"),
    "uuid": uuid.UUID("6f0e2a1c-0000-4000-8000-000000000001"),
    "uuid_safe": uuid.UUID(int=5, is_safe=uuid.SafeUUID.safe),
    "complex": complex(1.5, -2),
    "nested": {"when": datetime.date(2026, 1, 1), "ids": [uuid.UUID(int=1)],
               (datetime.date(2026, 1, 1), 1): decimal.Decimal("2.5")},
}

def canon(v):
    t = type(v).__name__
    if isinstance(v, dict):
        return "dict{" + ",".join(sorted(canon(k) + ":" + canon(x) for k, x in v.items())) + "}"
    if isinstance(v, (list, tuple)):
        return t + "[" + ",".join(map(canon, v)) + "]"
    if isinstance(v, uuid.UUID):
        return t + repr(v) + repr(v.is_safe)
    if isinstance(v, decimal.Decimal):
        return t + str(v)
    return t + repr(v)

# A program's own class (pickled by reference to __main__.Custom). Defined before the dict
# loads, since Python durabledict, too, fails to load a keyspace holding a class it lacks.
class Custom:
    def __init__(self):
        self.limit = 3

d = RedisDict(sys.argv[2], Redis.from_url(sys.argv[1]))
"#;

/// Runs `PRELUDE` + `script` on the keyspace `ks`; its stdout.
fn python(ks: &str, script: &str) -> String {
    let out = Command::new(python_with_durabledict())
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .args([server().url().as_str(), ks])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Rust side of `VALUES`.
fn values() -> BTreeMap<String, Value> {
    let at = |iso: &str| iso.parse::<DateTime>().unwrap();
    let est = TimeZone::new(TimeDelta::new(0, -5 * 3600, 0).unwrap(), Some("EST".into())).unwrap();
    let folded = Time::new(1, 30, 0, 0).unwrap().with_fold(true);
    let date = Date::new(2026, 1, 1).unwrap();
    let decimal = |text: &str| Value::Decimal(text.parse().unwrap());
    let nested = BTreeMap::from([
        (HashableValue::String("when".into()), Value::Date(date)),
        (
            HashableValue::String("ids".into()),
            Value::List(vec![Value::Uuid(Uuid::new(1))]),
        ),
        (
            HashableValue::Tuple(vec![HashableValue::Date(date), HashableValue::I64(1)]),
            decimal("2.5"),
        ),
    ]);
    [
        (
            "aware",
            Value::DateTime(at("2026-12-01T10:00:00.250000+01:00")),
        ),
        ("naive", Value::DateTime(at("2026-12-01T10:00:00"))),
        (
            "folded",
            Value::DateTime(DateTime::new(
                Date::new(2026, 11, 1).unwrap(),
                folded.clone(),
            )),
        ),
        (
            "named_zone",
            Value::DateTime(at("2026-11-01T01:30:00").with_tzinfo(Some(est.clone()))),
        ),
        ("utc", Value::DateTime(at("0001-01-01T00:00:00+00:00"))),
        ("date", Value::Date(Date::new(2024, 2, 29).unwrap())),
        (
            "time",
            Value::Time("13:05:00.250000+01:00".parse().unwrap()),
        ),
        ("time_folded", Value::Time(folded)),
        (
            "delta",
            Value::TimeDelta(TimeDelta::new(-1, 86399, 1).unwrap()),
        ),
        ("zone", Value::TimeZone(est)),
        ("utc_zone", Value::TimeZone(TimeZone::utc())),
        ("decimal", decimal("0.10")),
        ("decimal_exp", decimal("-1.50E+3")),
        ("negative_zero", decimal("-0")),
        ("nan", decimal("NaN")),
        ("snan", decimal("-sNaN12")),
        ("infinity", decimal("-Infinity")),
        (
            "uuid",
            Value::Uuid(Uuid::new(0x6f0e_2a1c_0000_4000_8000_0000_0000_0001)),
        ),
        (
            "uuid_safe",
            Value::Uuid(Uuid::new(5).with_is_safe(SafeUuid::Safe)),
        ),
        ("complex", Value::Complex(Complex { re: 1.5, im: -2.0 })),
        ("nested", Value::Dict(nested)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Python reads every key of `VALUES` from the keyspace and compares it with its own value,
/// type and all; the keys that differ, with both sides.
const PYTHON_COMPARES: &str = r#"
wrong = {k: [canon(d.get(k.encode())), canon(v)] for k, v in VALUES.items()
         if canon(d.get(k.encode())) != canon(v)}
print(json.dumps(wrong))
"#;

fn open(ks: &str) -> DurableDict<Value> {
    durabledict::open(
        &server().url(),
        &OpenOptions::new().keyspace(ks).policy(SyncPolicy::Always),
    )
    .unwrap()
}

#[test]
fn python_writes_every_standard_library_type_and_a_live_rust_dict_reads_it_equal() {
    let ks = keyspace("py_writes");
    // Built before Python writes: it must see the values through the stamp.
    let dict = open(&ks);
    python(&ks, "for k, v in VALUES.items():\n    d[k] = v");
    let got: BTreeMap<String, Value> = dict
        .iter()
        .unwrap()
        .map(|(k, v)| (k, (*v).clone()))
        .collect();
    assert_eq!(got, values());
    assert!(dict.status().undecodable.is_empty());
}

#[test]
fn rust_writes_every_standard_library_type_and_python_reads_the_same_objects() {
    let ks = keyspace("rust_writes");
    let dict = open(&ks);
    dict.update(values()).unwrap();
    assert_eq!(python(&ks, PYTHON_COMPARES).trim(), "{}");
}

#[test]
fn the_cli_prints_them_as_its_json_forms_and_imports_them_back_as_the_same_objects() {
    let from_python = keyspace("cli_from_py");
    python(&from_python, "for k, v in VALUES.items():\n    d[k] = v");
    let d = tempfile::tempdir().unwrap();
    let url = server().url();
    let cli = |ks: &str, more: &[&str]| {
        run(
            d.path(),
            &[&["--store", url.as_str(), "--keyspace", ks][..], more].concat(),
        )
    };
    let listed = cli(&from_python, &["list"]).ok().to_owned();
    for form in [
        r#""aware":{"$datetime":"2026-12-01T10:00:00.250000+01:00"}"#,
        r#""folded":{"$datetime":{"iso":"2026-11-01T01:30:00","fold":1}}"#,
        r#""named_zone":{"$datetime":{"iso":"2026-11-01T01:30:00-05:00","tzname":"EST"}}"#,
        r#""date":{"$date":"2024-02-29"}"#,
        r#""delta":{"$timedelta":[-1,86399,1]}"#,
        r#""zone":{"$timezone":{"offset":"-05:00","name":"EST"}}"#,
        r#""decimal":{"$decimal":"0.10"}"#,
        r#""snan":{"$decimal":"-sNaN12"}"#,
        r#""uuid":{"$uuid":"6f0e2a1c-0000-4000-8000-000000000001"}"#,
        r#""complex":{"$complex":[1.5,-2.0]}"#,
    ] {
        assert!(listed.contains(form), "{form} not in {listed}");
    }
    assert_eq!(
        cli(&from_python, &["get", "time"]).ok(),
        r#"{"$time":"13:05:00.250000+01:00"}"#
    );

    // What list printed, imported elsewhere, is what Python wrote.
    let imported = keyspace("cli_import");
    let file = d.path().join("values.json");
    std::fs::write(&file, &listed).unwrap();
    cli(&imported, &["import", file.to_str().unwrap()]).ok();
    assert_eq!(python(&imported, PYTHON_COMPARES).trim(), "{}");

    // And `set` of one form is the Python type.
    cli(
        &imported,
        &[
            "set",
            "aware",
            r#"{"$datetime": "2026-12-01T10:00:00.250000+01:00"}"#,
        ],
    )
    .ok();
    assert_eq!(
        python(
            &imported,
            "print(canon(d.get(b'aware')) == canon(VALUES['aware']))"
        )
        .trim(),
        "True"
    );
}

/// A Python program's own class (`PRELUDE`'s `Custom`): never decoded.
const WRITE_CUSTOM: &str = r#"
d["ok"] = 1
d["when"] = VALUES["aware"]
d["custom"] = Custom()
"#;

#[test]
fn a_custom_class_instance_poisons_only_its_key_for_a_live_dict_and_the_cli() {
    let ks = keyspace("custom");
    let live = open(&ks);
    python(&ks, WRITE_CUSTOM);

    for dict in [&live, &open(&ks)] {
        assert_eq!(dict.get("ok").unwrap().as_deref(), Some(&Value::I64(1)));
        assert_eq!(
            dict.get("when").unwrap().as_deref(),
            Some(&values()["aware"])
        );
        match dict.get("custom") {
            Err(Error::Decode { key, .. }) => assert_eq!(key, "custom"),
            other => panic!("expected a decode error naming the key: {other:?}"),
        }
        let undecodable = dict.status().undecodable;
        assert_eq!(undecodable.len(), 1, "{undecodable:?}");
        assert_eq!(undecodable[0].0, "custom");
        assert_eq!(dict.len().unwrap(), 2);
    }

    let d = tempfile::tempdir().unwrap();
    let url = server().url();
    let cli = |more: &[&str]| {
        run(
            d.path(),
            &[
                &["--store", url.as_str(), "--keyspace", ks.as_str()][..],
                more,
            ]
            .concat(),
        )
    };
    let list = cli(&["list"]);
    assert_eq!(list.code, 3, "{list:?}");
    assert_eq!(
        list.stdout,
        "{\"ok\":1,\"when\":{\"$datetime\":\"2026-12-01T10:00:00.250000+01:00\"}}\n"
    );
    assert!(
        list.stderr.contains(
            "durabledict: list: left out key \"custom\": its stored value does not decode"
        ),
        "{list:?}"
    );
    assert!(list.stderr.contains("Custom"), "{list:?}");
    cli(&["get", "custom"]).fails(3, "\"custom\"");
    assert_eq!(cli(&["get", "ok"]).ok(), "1");

    // Python rewriting the key heals it everywhere.
    python(&ks, "d['custom'] = 'plain'");
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.get("custom").is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        live.get("custom").unwrap().as_deref(),
        Some(&Value::String("plain".into()))
    );
    assert!(live.status().undecodable.is_empty());
    assert_eq!(cli(&["get", "custom"]).ok(), r#""plain""#);
    assert_eq!(cli(&["list"]).code, 0);
}
