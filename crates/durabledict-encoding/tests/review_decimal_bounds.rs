//! `Decimal` text is accepted exactly when CPython's `Decimal(text)` accepts it, at the
//! exponent bounds, and reads as the same `str()`.
//!
//! Found in review: `"12E+999999999999999999"` was accepted (the written exponent was checked,
//! not the leading digit's), so the CLI's `set k '{"$decimal": "12E+999999999999999999"}'`
//! stored a pickle that neither the CLI's own `get` nor any Python reader could load (Python
//! durabledict's whole reload then fails); and `"1E-1000000000000000000"`, which Python
//! writes, was refused.
//!
//! Runs the real `python3` (fails, does not skip, when it is missing).
#![allow(clippy::unwrap_used)]

use std::process::Command;

use durabledict_encoding::{Decimal, Pickle, Value};

const TEXTS: &[&str] = &[
    "1E+999999999999999999",
    "12E+999999999999999999",
    "10E+999999999999999998",
    "1.0E+999999999999999999",
    "00012E+999999999999999998",
    "0E+999999999999999999",
    "0E+1000000000000000000",
    "0.000E+1000000000000000002",
    "0.000E+1000000000000000003",
    "-9.99E+999999999999999999",
    "1E+1000000000000000000",
    "1E+99999999999999999999999",
    "1E-999999999999999999",
    "12E-999999999999999999",
    "1E-1000000000000000000",
    "1E-1999999999999999997",
    "1E-1999999999999999998",
    "123E-1999999999999999997",
    "0E-1999999999999999997",
    "0E-1999999999999999998",
    "0.001E-1999999999999999994",
    "0.001E-1999999999999999995",
    "-0E-1999999999999999997",
    "1E-99999999999999999999999",
];

/// CPython's `str(Decimal(text))` of each text, `None` where it refuses the text.
fn cpython_strs() -> Vec<Option<String>> {
    let script = "import decimal, sys\n\
                  for text in sys.argv[1:]:\n    \
                  try:\n        print(str(decimal.Decimal(text)))\n    \
                  except decimal.InvalidOperation:\n        print('refused')";
    let out = Command::new("python3")
        .args(["-c", script])
        .args(TEXTS)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Option<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| (line != "refused").then(|| line.to_owned()))
        .collect();
    assert_eq!(lines.len(), TEXTS.len());
    lines
}

#[test]
fn decimal_text_at_the_exponent_bounds_is_read_as_cpython_reads_it() {
    let mut wrong = Vec::new();
    for (text, python) in TEXTS.iter().zip(cpython_strs()) {
        let ours = text.parse::<Decimal>().ok().map(|d| d.to_string());
        if ours != python {
            wrong.push(format!("{text}: here {ours:?}, CPython {python:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_decimal_accepted_is_written_and_read_back() {
    let pickle = Pickle::<Value>::new();
    for text in TEXTS {
        if let Ok(d) = text.parse::<Decimal>() {
            let value = Value::Decimal(d);
            let raw = pickle.to_pickle(&value).unwrap();
            assert_eq!(pickle.from_pickle(&raw).unwrap(), value, "{text}");
        }
    }
}
