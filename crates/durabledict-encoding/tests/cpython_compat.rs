//! Values CPython reads that the decoder once refused (durabledict issue 14, items 7, 9, 10
//! and 11), checked against the real CPython (`python3`, which must be installed: these tests
//! fail, they do not skip, when it is missing): CPython makes the pickles and JSON, and reads
//! what Rust writes back.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict_encoding::{
    DecodeError, DynamicJson, DynamicPickle, Encoding, Json, PickleHashableValue as H,
    PickleValue as V, Protocol, Python2Str, Surrogates,
};
use num_bigint::BigInt;

/// Runs `script` with `input` on stdin and returns its stdout.
fn python(script: &str, input: &[u8]) -> Vec<u8> {
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
    out.stdout
}

/// One base64 text per line of CPython's output.
fn lines(out: &[u8]) -> Vec<Vec<u8>> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| STANDARD.decode(l).unwrap())
        .collect()
}

fn decode_error(err: &durabledict_encoding::BoxError) -> &DecodeError {
    err.downcast_ref::<DecodeError>().unwrap()
}

#[test]
fn python2_string_escapes_read_as_cpython_reads_them() {
    // Python 2 writes a str with protocol 0 as STRING: `S` + repr(str) + newline. CPython 3
    // reads those (with encoding="bytes" or "latin1"); the pickles here are exactly what
    // Python 2 writes (its repr is Python 3's bytes repr without the b), plus escapes only a
    // hand-written repr has (octal, an unknown escape kept as it is, double quotes).
    let script = r#"
import base64, pickle, sys
cases = [b"a\nb\x00'", b"tab\there\\back \"dq\" \r\x7f", bytes(range(256)), b""]
pickles = [b"S" + repr(c)[1:].encode("ascii") + b"\np0\n." for c in cases]
pickles.append(b"S'\\101\\7\\0z\\q\\x41end'\np0\n.")
pickles.append(b'S"it\'s"\np0\n.')
for p in pickles:
    for enc in ("bytes", "latin1"):
        v = pickle.loads(p, encoding=enc)
        v = v if enc == "bytes" else v.encode("utf-8")
        print(base64.b64encode(p).decode(), base64.b64encode(v).decode())
"#;
    let out = python(script, b"");
    let text = String::from_utf8(out).unwrap();
    let mut checked = 0;
    for (i, line) in text.lines().enumerate() {
        let (pickle, want) = line.split_once(' ').unwrap();
        let pickle = STANDARD.decode(pickle).unwrap();
        let want = STANDARD.decode(want).unwrap();
        let (option, got) = if i % 2 == 0 {
            let got = DynamicPickle::new()
                .with_python2_str(Python2Str::Bytes)
                .from_pickle(&pickle)
                .unwrap();
            (Python2Str::Bytes, got)
        } else {
            let got = DynamicPickle::new()
                .with_python2_str(Python2Str::Latin1)
                .from_pickle(&pickle)
                .unwrap();
            (Python2Str::Latin1, got)
        };
        let got = match got {
            V::Bytes(b) => b,
            V::String(s) => s.into_bytes(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            got,
            want,
            "{option:?} {:?}",
            String::from_utf8_lossy(&pickle)
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
    // And as text, when the bytes are UTF-8 (CPython's default reads ASCII).
    assert_eq!(
        DynamicPickle::new()
            .from_pickle(b"S'a\\nb\\x00\\''\np0\n.")
            .unwrap(),
        V::String("a\nb\0'".into())
    );
}

#[test]
fn a_python2_str_of_any_bytes_reads_with_latin1_or_bytes_and_is_written_back() {
    // Python 2's pickle.dumps('\xe9', 2): SHORT_BINSTRING of one non-UTF-8 byte.
    let raw = b"\x80\x02U\x01\xe9q\x00.";
    let script = r#"
import pickle, sys
p = sys.stdin.buffer.read()
print(pickle.loads(p, encoding="latin1") == "\xe9", pickle.loads(p, encoding="bytes") == b"\xe9")
"#;
    assert_eq!(python(script, raw), b"True True\n");
    let err = DynamicPickle::new().from_pickle(raw).unwrap_err();
    assert!(
        matches!(err, DecodeError::Unrepresentable { offset: 2, .. }),
        "{err}"
    );
    let latin1 = DynamicPickle::new().with_python2_str(Python2Str::Latin1);
    assert_eq!(latin1.from_pickle(raw).unwrap(), V::String("é".into()));
    let bytes = DynamicPickle::new().with_python2_str(Python2Str::Bytes);
    let value = bytes.from_pickle(raw).unwrap();
    assert_eq!(value, V::Bytes(vec![0xe9]));
    // Written with protocol 2, bytes are `_codecs.encode('\xe9', 'latin1')`: a str holding
    // that byte in Python 2, bytes in Python 3.
    let written = bytes.with_protocol(Protocol::V2).to_pickle(&value).unwrap();
    let script = r#"
import pickle, pickletools, sys
p = sys.stdin.buffer.read()
names = [arg for op, arg, _ in pickletools.genops(p) if op.name == "GLOBAL"]
print(pickle.loads(p) == b"\xe9", names)
"#;
    assert_eq!(python(script, &written), b"True ['_codecs encode']\n");
}

#[test]
fn lone_surrogates_round_trip_through_cpython_with_every_protocol() {
    let script = r#"
import base64, pickle
value = ["a\ud800b", {"\udfff": "\udbff\udc00"}, ("\ud83c\udf89", "\U0001f389")]
for proto in range(6):
    print(base64.b64encode(pickle.dumps(value, proto)).decode())
"#;
    let expected = V::List(vec![
        V::String("a\u{10F800}b".into()),
        V::Dict(
            [(
                H::String("\u{10FFFF}".into()),
                V::String("\u{10FBFF}\u{10FC00}".into()),
            )]
            .into(),
        ),
        V::Tuple(vec![
            V::String("\u{10F83C}\u{10FF89}".into()),
            V::String("🎉".into()),
        ]),
    ]);
    let pickles = lines(&python(script, b""));
    assert_eq!(pickles.len(), 6);
    let codec = DynamicPickle::new();
    for (proto, raw) in pickles.iter().enumerate() {
        assert_eq!(
            codec.from_pickle(raw).unwrap(),
            expected,
            "protocol {proto}"
        );
        let err = DynamicPickle::new()
            .with_surrogates(Surrogates::Refuse)
            .from_pickle(raw)
            .unwrap_err();
        assert!(
            matches!(err, DecodeError::Unrepresentable { .. }),
            "protocol {proto}: {err}"
        );
    }
    // Written back, CPython reads the same surrogates.
    let stored = codec.encode(&expected).unwrap();
    let check = r#"
import base64, pickle, sys
v = pickle.loads(base64.decodebytes(sys.stdin.buffer.read()))
print(v == ["a\ud800b", {"\udfff": "\udbff\udc00"}, ("\ud83c\udf89", "\U0001f389")])
"#;
    assert_eq!(python(check, &stored), b"True\n");
    // Text that really holds the code points surrogates are read as is refused by default,
    // and read as it is with Surrogates::Refuse.
    let real = DynamicPickle::new()
        .with_surrogates(Surrogates::Refuse)
        .to_pickle(&V::String("\u{10F800}".into()))
        .unwrap();
    assert!(matches!(
        codec.from_pickle(&real),
        Err(DecodeError::Unrepresentable { .. })
    ));
    assert_eq!(
        DynamicPickle::new()
            .with_surrogates(Surrogates::Refuse)
            .from_pickle(&real)
            .unwrap(),
        V::String("\u{10F800}".into())
    );
}

#[test]
fn memoized_values_shared_many_times_decode() {
    // ['x' * 1000] * 100000: a 200 kB pickle, 100 MB decoded; refused before (the budget was
    // 64 MiB + 64 bytes per pickle byte). And shared lists inside shared lists.
    let script = r#"
import base64, pickle
print(base64.b64encode(pickle.dumps(["x" * 1000] * 100000, 5)).decode())
a = [1, 2]; b = [a, a, "s"]
print(base64.b64encode(pickle.dumps([b, b, a, (a, b)], 5)).decode())
"#;
    let pickles = lines(&python(script, b""));
    let value = DynamicPickle::new().from_pickle(&pickles[0]).unwrap();
    let V::List(items) = &value else {
        panic!("not a list")
    };
    assert_eq!(items.len(), 100_000);
    assert!(
        items
            .iter()
            .all(|i| matches!(i, V::String(s) if s.len() == 1000))
    );
    // The cap counts the copies: 100 MB does not fit in 50 MB.
    assert!(matches!(
        DynamicPickle::new()
            .with_max_decoded_size(50_000_000)
            .from_pickle(&pickles[0]),
        Err(DecodeError::Limit(_))
    ));

    let a = V::List(vec![V::I64(1), V::I64(2)]);
    let b = V::List(vec![a.clone(), a.clone(), V::String("s".into())]);
    assert_eq!(
        DynamicPickle::new().from_pickle(&pickles[1]).unwrap(),
        V::List(vec![b.clone(), b.clone(), a.clone(), V::Tuple(vec![a, b])])
    );
}

#[test]
fn json_integers_stay_exact_and_non_finite_floats_use_pythons_tokens() {
    let script = r#"
import json, sys
print(json.dumps([2**64, 2**200, -2**100, 2**63 - 1, float("nan"), float("inf"), -float("inf"), 0.1, "\ud800"]))
"#;
    let text = python(script, b"");
    let big = |n: BigInt| V::Int(n);
    let two = BigInt::from(2);
    let value = DynamicJson::new().decode(text.trim_ascii()).unwrap();
    let V::List(items) = &value else {
        panic!("{value:?}")
    };
    assert_eq!(items[0], big(two.pow(64)));
    assert_eq!(items[1], big(two.pow(200)));
    assert_eq!(items[2], big(-two.pow(100)));
    assert_eq!(items[3], V::I64(i64::MAX));
    assert!(matches!(items[4], V::F64(f) if f.is_nan()));
    assert_eq!(
        items[5..8],
        [
            V::F64(f64::INFINITY),
            V::F64(f64::NEG_INFINITY),
            V::F64(0.1)
        ]
    );
    assert_eq!(items[8], V::String("\u{10F800}".into()));

    // Written back, Python reads the same values.
    let written = DynamicJson::new().encode(&value).unwrap();
    let check = r#"
import json, math, sys
v = json.loads(sys.stdin.buffer.read())
print(v[:4] == [2**64, 2**200, -2**100, 2**63 - 1] and math.isnan(v[4])
      and v[5:] == [float("inf"), -float("inf"), 0.1, "\ud800"]
      and all(type(x) is int for x in v[:4]))
"#;
    assert_eq!(python(check, &written), b"True\n");

    // Typed values read Python's tokens too.
    let floats = Json::<Vec<f64>>::new()
        .decode(b"[NaN, Infinity, -Infinity, 1.5]")
        .unwrap();
    assert!(floats[0].is_nan());
    assert_eq!(floats[1..], [f64::INFINITY, f64::NEG_INFINITY, 1.5]);
    // ... and still report JSON errors as JSON errors.
    let err = Json::<Vec<f64>>::new().decode(b"[1,").unwrap_err();
    assert!(matches!(decode_error(&err), DecodeError::Json(_)), "{err}");
    let err = Json::<Vec<i32>>::new().decode(b"[NaN]").unwrap_err();
    assert!(matches!(decode_error(&err), DecodeError::Json(_)), "{err}");
    assert!(
        durabledict_core::Report(&*err)
            .to_string()
            .contains("expected i32"),
        "{err}"
    );
}
