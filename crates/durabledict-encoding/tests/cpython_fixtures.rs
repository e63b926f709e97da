//! Decodes what CPython 3.11 wrote (`tests/fixtures/pickles.json`, made by `make_fixtures.py`)
//! and checks each value against one written out here by hand, for every pickle protocol 0-5.
//! Also checks that every hostile pickle in the file is refused.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use durabledict_encoding::{
    DecodeError, DynamicPickle, Encoding, Pickle, PickleHashableValue as H, PickleValue as V,
    Python2Str,
};
use num_bigint::BigInt;
use serde::{Deserialize, Serialize};

const MANIFEST: &str = include_str!("fixtures/pickles.json");

#[derive(Deserialize)]
struct Manifest {
    python: String,
    values: Vec<Fixture>,
    python2: Vec<Single>,
    malicious: Vec<Malicious>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    python: String,
    pickles: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Single {
    name: String,
    python: String,
    base64: String,
}

#[derive(Deserialize)]
struct Malicious {
    name: String,
    opcodes: Vec<String>,
    base64: String,
}

fn manifest() -> Manifest {
    serde_json::from_str(MANIFEST).unwrap()
}

fn s(text: &str) -> V {
    V::String(text.into())
}

fn i(n: i64) -> V {
    V::I64(n)
}

fn big(text: &str) -> V {
    V::Int(text.parse::<BigInt>().unwrap())
}

fn list(items: impl IntoIterator<Item = V>) -> V {
    V::List(items.into_iter().collect())
}

fn tuple(items: impl IntoIterator<Item = V>) -> V {
    V::Tuple(items.into_iter().collect())
}

fn dict(items: impl IntoIterator<Item = (H, V)>) -> V {
    V::Dict(items.into_iter().collect())
}

fn hs(text: &str) -> H {
    H::String(text.into())
}

/// The value CPython pickled under `name`, written out independently of any decoder.
fn expected(name: &str) -> V {
    match name {
        "complex_tuple" => tuple([
            s("one"),
            s("two"),
            V::F64(3.5),
            list([i(1), i(2), i(3)]),
            s("☃"),
        ]),
        "dict_str_keys" => dict([
            (hs("a"), i(1)),
            (hs("b"), list([i(1), i(2)])),
            (hs("nested"), dict([(hs("x"), V::None), (hs("y"), s("z"))])),
        ]),
        "dict_int_keys" => dict([
            (H::I64(1), s("one")),
            (H::I64(-2), s("minus two")),
            (H::I64(3), V::None),
        ]),
        "floats" => list(
            [
                0.1,
                -2.5,
                1e100,
                5e-324,
                -0.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ]
            .map(V::F64),
        ),
        "non_ascii_str" => s("héllo wörld ☃ 日本語 🎉"),
        "escapes_str" => s("line1\nline2\\back\rcr\0nul\x1asub 'q' \"dq\""),
        "long_str" => V::String("é".repeat(300)),
        "empty_str" => s(""),
        "none" => V::None,
        "true" => V::Bool(true),
        "false" => V::Bool(false),
        "big_ints" => list([
            big("18446744073709551617"),
            big("-1180591620717411303424"),
            big("1606938044258990275541962092341162602522202993782792835301376"),
        ]),
        "ints" => list([
            i(0),
            i(1),
            i(-1),
            i(127),
            i(128),
            i(255),
            i(256),
            i(-128),
            i(-129),
            i(65535),
            i(65536),
            i(2147483647),
            i(2147483648),
            i(-2147483648),
            i(-2147483649),
            i(9223372036854775807),
            big("9223372036854775808"),
            i(-9223372036854775808),
            big("-9223372036854775809"),
        ]),
        "bytes" => V::Bytes(b"\x00\x01\xffbinary\n".to_vec()),
        "empty_bytes" => V::Bytes(Vec::new()),
        "long_bytes" => V::Bytes((0..=255u8).chain(0..=255u8).collect()),
        "bytearray" => V::Bytes(b"ab\x00\xff".to_vec()),
        "nested_lists" => list([
            list([i(1), list([i(2), list([i(3), list([])])])]),
            list([]),
            list([s("a")]),
        ]),
        "shared_refs" => list([list([i(1), i(2)]), list([i(1), i(2)])]),
        "set" => V::Set(BTreeSet::from([H::I64(1), H::I64(2), H::I64(3)])),
        "frozenset" => V::FrozenSet(BTreeSet::from([hs("a")])),
        "empty_containers" => list([list([]), dict([]), tuple([]), s("")]),
        "tuples" => list([
            tuple([]),
            tuple([i(1)]),
            tuple([i(1), i(2)]),
            tuple([i(1), i(2), i(3)]),
            tuple([i(1), i(2), i(3), i(4)]),
        ]),
        "long_list" => list((0..1200).map(i)),
        "ordered_dict" => dict([(hs("b"), i(1)), (hs("a"), i(2))]),
        // Python 2 pickles, with Python 2 `str` read as text (the default).
        "py2_str" => s("hello"),
        "py2_dict" => dict([(hs("a"), s("☃")), (hs("b"), s("x")), (hs("n"), i(7))]),
        "py2_str_p0" => s("café"),
        "py2_set" => V::Set(BTreeSet::from([H::I64(1)])),
        other => panic!("fixture {other:?} has no expected value here: add one"),
    }
}

/// Compares through `Debug`, which tells `-0.0` from `0.0` (`==` does not).
fn assert_same(got: &V, want: &V, what: &str) {
    assert_eq!(format!("{got:?}"), format!("{want:?}"), "{what}");
}

#[test]
fn the_fixtures_were_made_by_cpython_3() {
    let manifest = manifest();
    assert!(manifest.python.starts_with("3."), "{}", manifest.python);
    assert!(manifest.values.len() >= 25);
}

#[test]
fn every_cpython_value_decodes_exactly_with_every_protocol() {
    let pickle = DynamicPickle::new();
    for fixture in manifest().values {
        let want = expected(&fixture.name);
        let protocols: Vec<&str> = fixture.pickles.keys().map(String::as_str).collect();
        assert_eq!(
            protocols,
            ["0", "1", "2", "3", "4", "5"],
            "{}",
            fixture.name
        );
        for (protocol, stored) in &fixture.pickles {
            let what = format!(
                "{} (python {}) protocol {protocol}",
                fixture.name, fixture.python
            );
            let got = pickle
                .decode(stored.as_bytes())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_same(&got, &want, &what);
            // Written again by Rust and read back, the value is unchanged.
            let again = pickle.decode(&pickle.encode(&got).unwrap()).unwrap();
            assert_same(&again, &want, &format!("{what}, re-encoded"));
        }
    }
}

#[test]
fn decoding_accepts_the_base64_without_newlines_and_with_crlf() {
    let pickle = DynamicPickle::new();
    let fixture = manifest()
        .values
        .into_iter()
        .find(|f| f.name == "long_list")
        .unwrap();
    let stored = &fixture.pickles["5"];
    assert!(
        stored.lines().count() > 1,
        "the fixture spans several lines"
    );
    let flat: String = stored.lines().collect();
    let crlf: String = stored.lines().map(|l| format!("{l}\r\n")).collect();
    for text in [flat, crlf] {
        assert_same(
            &pickle.decode(text.as_bytes()).unwrap(),
            &expected("long_list"),
            "long_list",
        );
    }
}

#[test]
fn typed_values_decode_from_every_protocol() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nested {
        x: Option<String>,
        y: String,
    }
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct StrKeys {
        a: i64,
        b: Vec<u8>,
        nested: Nested,
    }
    type Complex = (String, String, f64, Vec<i32>, String);

    for fixture in manifest().values {
        for (protocol, stored) in &fixture.pickles {
            let stored = stored.as_bytes();
            let what = format!("{} protocol {protocol}", fixture.name);
            match fixture.name.as_str() {
                "complex_tuple" => assert_eq!(
                    Pickle::<Complex>::new().decode(stored).unwrap(),
                    ("one".into(), "two".into(), 3.5, vec![1, 2, 3], "☃".into()),
                    "{what}"
                ),
                "dict_str_keys" => assert_eq!(
                    Pickle::<StrKeys>::new().decode(stored).unwrap(),
                    StrKeys {
                        a: 1,
                        b: vec![1, 2],
                        nested: Nested {
                            x: None,
                            y: "z".into()
                        }
                    },
                    "{what}"
                ),
                "dict_int_keys" => assert_eq!(
                    Pickle::<BTreeMap<i32, Option<String>>>::new()
                        .decode(stored)
                        .unwrap(),
                    BTreeMap::from([
                        (-2, Some("minus two".into())),
                        (1, Some("one".into())),
                        (3, None)
                    ]),
                    "{what}"
                ),
                "set" => assert_eq!(
                    Pickle::<BTreeSet<u8>>::new().decode(stored).unwrap(),
                    BTreeSet::from([1, 2, 3]),
                    "{what}"
                ),
                "non_ascii_str" => assert_eq!(
                    Pickle::<String>::new().decode(stored).unwrap(),
                    "héllo wörld ☃ 日本語 🎉",
                    "{what}"
                ),
                "ordered_dict" => assert_eq!(
                    Pickle::<BTreeMap<String, u8>>::new()
                        .decode(stored)
                        .unwrap(),
                    BTreeMap::from([("a".into(), 2), ("b".into(), 1)]),
                    "{what}"
                ),
                "long_list" => assert_eq!(
                    Pickle::<Vec<u32>>::new().decode(stored).unwrap(),
                    (0..1200).collect::<Vec<u32>>(),
                    "{what}"
                ),
                _ => {}
            }
        }
    }
}

#[test]
fn python2_pickles_decode_with_str_as_text_by_default() {
    let text = DynamicPickle::new();
    for fixture in manifest().python2 {
        let got = text.decode(fixture.base64.as_bytes()).unwrap();
        assert_same(&got, &expected(&fixture.name), &fixture.python);
    }
}

#[test]
fn python2_str_can_be_kept_as_bytes() {
    let bytes = DynamicPickle::new().with_python2_str(Python2Str::Bytes);
    let manifest = manifest();
    let find = |name: &str| {
        manifest
            .python2
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .base64
            .as_bytes()
    };
    assert_eq!(
        bytes.decode(find("py2_str")).unwrap(),
        V::Bytes(b"hello".to_vec())
    );
    assert_eq!(
        bytes.decode(find("py2_str_p0")).unwrap(),
        V::Bytes("café".as_bytes().to_vec())
    );
    // py2 unicode stays text either way; py2 str keys become bytes keys.
    assert_eq!(
        bytes.decode(find("py2_dict")).unwrap(),
        V::Dict(BTreeMap::from([
            (H::Bytes(b"a".to_vec()), s("☃")),
            (H::Bytes(b"b".to_vec()), V::Bytes(b"x".to_vec())),
            (H::Bytes(b"n".to_vec()), i(7)),
        ]))
    );
}

#[test]
fn a_python2_str_that_is_not_utf8_needs_the_bytes_option() {
    // pickle.dumps('\xff', 2) on Python 2.
    let stored = b"gAJVAf9xAC4=\n";
    let err = DynamicPickle::new().decode(stored).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
    let bytes = DynamicPickle::new().with_python2_str(Python2Str::Bytes);
    assert_eq!(bytes.decode(stored).unwrap(), V::Bytes(vec![0xff]));
}

#[test]
fn every_hostile_pickle_is_refused_and_nothing_runs() {
    let manifest = manifest();
    assert!(manifest.malicious.len() >= 30);
    for payload in &manifest.malicious {
        let stored = payload.base64.as_bytes();
        for err in [
            DynamicPickle::new().decode(stored).unwrap_err(),
            Pickle::<serde_json::Value>::new()
                .decode(stored)
                .unwrap_err(),
            Pickle::<String>::new().decode(stored).unwrap_err(),
        ] {
            let what = format!("{} ({:?}): {err}", payload.name, payload.opcodes);
            match err.downcast_ref::<DecodeError>() {
                Some(DecodeError::Refused { opcode, .. }) => {
                    assert!(
                        payload.opcodes.iter().any(|op| op == opcode),
                        "{what}: refused opcode {opcode} is not in the pickle"
                    );
                }
                _ => panic!("{what}: not refused"),
            }
        }
    }
}

#[test]
fn exploit_pickles_name_the_global_they_wanted() {
    let manifest = manifest();
    let message = |name: &str| {
        let payload = manifest.malicious.iter().find(|m| m.name == name).unwrap();
        DynamicPickle::new()
            .decode(payload.base64.as_bytes())
            .unwrap_err()
            .to_string()
    };
    let classic = message("classic_os_system");
    assert!(
        classic.starts_with(
            "pickle opcode GLOBAL at offset 0 refused: globals are not allowed: os.system"
        ),
        "{classic}"
    );
    for proto in 0..=5 {
        // CPython names os.system by its real module on Linux.
        assert!(message(&format!("os_system_p{proto}")).contains("posix.system"));
        // Protocols 0-2 spell the module as Python 2 did.
        let eval = message(&format!("eval_p{proto}"));
        assert!(
            eval.contains(if proto < 3 {
                "__builtin__.eval"
            } else {
                "builtins.eval"
            }),
            "{eval}"
        );
        let popen = message(&format!("popen_p{proto}"));
        assert!(
            popen.contains(if proto < 3 {
                "commands.Popen"
            } else {
                "subprocess.Popen"
            }),
            "{popen}"
        );
    }
    assert!(message("stack_global_via_memo").contains("builtins.eval"));
    assert!(message("inst_os_system").contains("INST"));
}

/// Why the opcode walk exists: serde-pickle on its own never executes anything either, but it
/// silently accepts some exploit pickles (answering an empty dict, or whatever follows a
/// discarded call), so a caller could not tell an attack from data. If a serde-pickle upgrade
/// changes this, the walk is still needed for the refusal to be certain.
#[test]
fn serde_pickle_alone_accepts_some_exploits_silently() {
    let raw = |name: &str| {
        let manifest = manifest();
        let payload = manifest
            .malicious
            .into_iter()
            .find(|m| m.name == name)
            .unwrap();
        let text: String = payload.base64.lines().collect();
        base64_decode(&text)
    };
    let options = || serde_pickle::DeOptions::new();
    assert_eq!(
        serde_pickle::value_from_slice(&raw("popped_reduce"), options()).unwrap(),
        V::None
    );
    assert_eq!(
        serde_pickle::value_from_slice(&raw("inst_os_system"), options()).unwrap(),
        V::Dict(BTreeMap::new())
    );
}

/// A small standard base64 decoder, so this test does not rely on the code under test.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap();
        acc = (acc << 6) | u32::try_from(v).unwrap();
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}
