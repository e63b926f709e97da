//! Encode and decode failures are distinct, typed and say what went wrong.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use durabledict_encoding::{
    BoxError, DecodeError, DynamicPickle, EncodeError, Encoding, Fallback, Json, Pickle,
    PickleValue, Raw,
};
use serde::{Serialize, Serializer};

/// A value whose serialization always fails.
#[derive(Debug, serde::Deserialize)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "this value refuses to be written",
        ))
    }
}

fn decode_error(err: &BoxError) -> &DecodeError {
    err.downcast_ref::<DecodeError>()
        .unwrap_or_else(|| panic!("not a DecodeError: {err}"))
}

#[test]
fn encode_failures_are_encode_errors() {
    let err = Pickle::<Unserializable>::new()
        .encode(&Unserializable)
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<EncodeError>(),
        Some(EncodeError::Pickle(_))
    ));
    assert_eq!(
        err.to_string(),
        "cannot pickle the value: this value refuses to be written"
    );

    let err = Json::<BTreeMap<Vec<u8>, i32>>::new()
        .encode(&BTreeMap::from([(vec![1], 1)]))
        .unwrap_err();
    assert!(matches!(
        err.downcast_ref::<EncodeError>(),
        Some(EncodeError::Json(_))
    ));
    assert_eq!(
        durabledict_core::Report(&*err).to_string(),
        "cannot encode the value as JSON: key must be a string"
    );
    assert!(std::error::Error::source(&*err).is_some());
}

#[test]
fn each_decode_failure_has_its_own_variant_and_message() {
    let pickle = DynamicPickle::new();

    let err = pickle.decode(b"gAN*Ti4=").unwrap_err();
    assert!(matches!(decode_error(&err), DecodeError::Base64(_)));
    assert!(
        durabledict_core::Report(&*err)
            .to_string()
            .starts_with("not valid base64: Invalid symbol 42"),
        "{err}"
    );

    // GLOBAL os.system, base64 encoded.
    let err = pickle.decode(b"Y29zCnN5c3RlbQou").unwrap_err();
    assert!(matches!(
        decode_error(&err),
        DecodeError::Refused {
            opcode: "GLOBAL",
            offset: 0,
            ..
        }
    ));
    assert!(
        err.to_string().starts_with(
            "pickle opcode GLOBAL at offset 0 refused: globals are not allowed: os.system"
        ),
        "{err}"
    );

    // \x80\x03 K (truncated)
    let err = pickle.decode(b"gANL").unwrap_err();
    assert!(matches!(
        decode_error(&err),
        DecodeError::Malformed { offset: 2, .. }
    ));
    assert_eq!(
        err.to_string(),
        "malformed pickle at offset 2: truncated (the pickle ends inside an opcode)"
    );

    // A pickle that is safe and well formed but of the wrong type.
    let err = Pickle::<i32>::new().decode(b"gANYAQAAAHgu\n").unwrap_err();
    assert!(matches!(decode_error(&err), DecodeError::Pickle(_)));
    assert_eq!(
        err.to_string(),
        "cannot unpickle: invalid type: string \"x\", expected i32"
    );
    // Errors found while running the opcodes carry the opcode's offset.
    let err = pickle.decode(b"gANdSwFLAnMu").unwrap_err(); // \x80\x03 [] K1 K2 SETITEM
    assert!(matches!(
        decode_error(&err),
        DecodeError::Malformed { offset: 7, .. }
    ));
    assert_eq!(
        err.to_string(),
        "malformed pickle at offset 7: SETITEM on list, not a dict"
    );

    let err = Json::<Vec<i32>>::new().decode(b"[1,\n 2,]").unwrap_err();
    assert!(matches!(decode_error(&err), DecodeError::Json(_)));
    assert_eq!(
        durabledict_core::Report(&*err).to_string(),
        "invalid JSON: trailing comma at line 2 column 4"
    );
}

#[test]
fn nesting_limits_are_errors_not_crashes() {
    // 10 000 nested lists: refused before decoding.
    let depth = 10_000;
    let mut raw = b"\x80\x03".to_vec();
    raw.extend(std::iter::repeat_n(b']', depth));
    raw.extend(std::iter::repeat_n(b'a', depth - 1));
    raw.push(b'.');
    let err = DynamicPickle::new().from_pickle(&raw).unwrap_err();
    assert!(matches!(err, DecodeError::Limit(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "pickle exceeds a decoding limit: containers nest more than 128 deep"
    );

    let json = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let err = Json::<serde_json::Value>::new()
        .decode(json.as_bytes())
        .unwrap_err();
    assert!(
        durabledict_core::Report(&*err)
            .to_string()
            .contains("recursion limit"),
        "{err}"
    );
}

#[test]
fn the_deepest_accepted_pickle_decodes_on_a_small_stack() {
    // 128 levels is what the limit lets through; it must decode (and drop) on the 2 MiB stack
    // that spawned threads and most async runtimes give, in debug builds too.
    let depth = 128;
    let mut raw = b"\x80\x03".to_vec();
    raw.extend(std::iter::repeat_n(b']', depth));
    raw.extend(std::iter::repeat_n(b'a', depth - 1));
    raw.push(b'.');
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let value = DynamicPickle::new().from_pickle(&raw).unwrap();
            assert!(matches!(value, PickleValue::List(_)));
            let typed = Pickle::<serde_json::Value>::new()
                .from_pickle(&raw)
                .unwrap();
            assert!(typed.is_array());
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn fallback_reports_both_errors() {
    let migrating = Fallback::new(Json::<i64>::new(), Pickle::<i64>::new());
    let err = migrating.decode(b"[oops").unwrap_err();
    match decode_error(&err) {
        DecodeError::Fallback { new, old } => {
            assert!(new.downcast_ref::<DecodeError>().is_some());
            assert!(old.downcast_ref::<DecodeError>().is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "cannot decode with the new encoding (invalid JSON: invalid type: sequence, expected i64 \
         at line 1 column 0) nor with the old one (not valid base64: Invalid symbol 91, offset 0.)"
    );
    assert!(migrating.new_encoding() == &Json::new());
    assert!(migrating.old_encoding() == &Pickle::new());
}

#[test]
fn encodings_are_distinct_and_debuggable() {
    assert_eq!(
        format!("{:?}", Pickle::<String>::new()),
        r#"Pickle { value: "alloc::string::String", protocol: V3, python2_str: Text, surrogates: PrivateUse, max_decoded_size: 1073741824 }"#
    );
    assert_eq!(
        format!("{:?}", Json::<u8>::new()),
        r#"Json { value: "u8" }"#
    );
    // Raw is core's, re-exported here.
    let raw: Vec<u8> = Raw.decode(b"\xff\x00").unwrap();
    assert_eq!(raw, b"\xff\x00");
    // The trait object works for every encoding.
    let encodings: Vec<Box<dyn Encoding<String>>> = vec![
        Box::new(Pickle::new()),
        Box::new(Json::new()),
        Box::new(Raw),
        Box::new(Fallback::new(Json::new(), Pickle::new())),
    ];
    for encoding in encodings {
        let value = "☃ settings".to_string();
        assert_eq!(
            encoding.decode(&encoding.encode(&value).unwrap()).unwrap(),
            value,
            "{encoding:?}"
        );
    }
}

#[test]
fn values_too_deep_to_read_back_are_refused_when_encoding() {
    use durabledict_encoding::{DynamicPickle, EncodeError, Encoding, PickleValue};
    let mut value = PickleValue::None;
    for _ in 0..200 {
        value = PickleValue::List(vec![value]);
    }
    let err = DynamicPickle::new().encode(&value).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<EncodeError>(),
            Some(EncodeError::Unreadable(_))
        ),
        "{err}"
    );
    let mut shallow = PickleValue::None;
    for _ in 0..100 {
        shallow = PickleValue::List(vec![shallow]);
    }
    let codec = DynamicPickle::new();
    assert_eq!(
        codec.decode(&codec.encode(&shallow).unwrap()).unwrap(),
        shallow
    );
}
