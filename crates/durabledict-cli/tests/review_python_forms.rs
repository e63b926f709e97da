//! Review of the CLI's standard library JSON forms against CPython reading what the CLI wrote
//! (SQLite, stored as Python durabledict stores it: base64 of a pickle).
#![allow(clippy::unwrap_used)]

mod common;

use common::{python, run};

/// CPython reads `key` of the SQLite file `db` and prints `repr` of what it holds and its
/// length when it is a dict.
const READ: &str = r#"
import base64, pickle, sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(
    "select value from durabledict where key = ?", (sys.argv[2],)).fetchone()
v = pickle.loads(base64.decodebytes(row[0]))
print(len(v), sorted(map(repr, v.values())))
"#;

/// Keys Python's `==` equates are one key, in the CLI as in CPython: `1`, `1.0`, `True`,
/// `Decimal("1.0")` and `complex(1, 0)`; two aware datetimes at one instant; two timezones of
/// one offset; one UUID with and without `is_safe`. (The CLI printed five entries where
/// CPython read one, with another value.)
#[test]
fn dict_keys_python_equates_are_one_key_as_cpython_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        (
            r#"{"$dict":[[1,"a"],[{"$decimal":"1.0"},"b"],[1.0,"c"],[true,"d"],[{"$complex":[1,0]},"e"]]}"#,
            r#"{"$dict":[[1,"e"]]}"#,
            "1 [\"'e'\"]",
        ),
        (
            r#"{"$dict":[[{"$datetime":"2026-01-01T10:00:00+01:00"},"a"],[{"$datetime":"2026-01-01T09:00:00+00:00"},"b"],[{"$datetime":"2026-01-01T09:00:00"},"c"],[{"$datetime":{"iso":"2026-01-01T09:00:00","fold":1}},"d"]]}"#,
            r#"{"$dict":[[{"$datetime":"2026-01-01T09:00:00"},"d"],[{"$datetime":"2026-01-01T10:00:00+01:00"},"b"]]}"#,
            "2 [\"'b'\", \"'d'\"]",
        ),
        (
            r#"{"$dict":[[{"$timezone":"+01:00"},"a"],[{"$timezone":{"offset":"+01:00","name":"CET"}},"b"],[{"$uuid":"00000000000000000000000000000001"},"c"],[{"$uuid":{"uuid":"00000000000000000000000000000001","is_safe":"safe"}},"d"],[{"$decimal":"-0E+3"},"e"],[0,"f"]]}"#,
            r#"{"$dict":[[{"$decimal":"-0E+3"},"f"],[{"$timezone":"+01:00"},"b"],[{"$uuid":"00000000-0000-0000-0000-000000000001"},"d"]]}"#,
            "3 [\"'b'\", \"'d'\", \"'f'\"]",
        ),
    ];
    let db = d.join("durabledict.db");
    for (i, (input, printed, cpython)) in cases.into_iter().enumerate() {
        let key = format!("k{i}");
        run(d, &["set", &key, input]).ok();
        assert_eq!(run(d, &["get", &key]).ok(), printed, "{input}");
        assert_eq!(
            python(READ, &[db.to_str().unwrap(), &key]).trim(),
            cpython,
            "{input}"
        );
    }
}

#[test]
fn list_help_says_it_exits_3_when_it_leaves_entries_out() {
    let dir = tempfile::tempdir().unwrap();
    let help = run(dir.path(), &["list", "--help"]).ok().to_owned();
    assert!(help.contains("exit code is then 3"), "{help}");
    assert!(!help.contains("still 0"), "{help}");
}
