//! Python values as JSON text, losslessly: what JSON cannot say is written in a tagged form
//! that [`crate::json_in`] reads back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict::{PickleHashableValue, PickleValue};

/// The one-key objects that stand for values JSON has no form for. A dict whose only key is
/// one of these is written as `{"$dict": …}`, so that it is not read back as the tag.
pub(crate) const BYTES_TAG: &str = "$bytes";
pub(crate) const DICT_TAG: &str = "$dict";
pub(crate) const FLOAT_TAG: &str = "$float";
pub(crate) const TAGS: [&str; 3] = [BYTES_TAG, DICT_TAG, FLOAT_TAG];

/// `value` as compact JSON text on one line.
pub(crate) fn to_json(value: &PickleValue) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// A JSON object of `entries` (keys already sorted by the caller), on one line.
pub(crate) fn object<'a>(entries: impl IntoIterator<Item = (&'a str, &'a PickleValue)>) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, key);
        out.push(':');
        write_value(&mut out, value);
    }
    out.push('}');
    out
}

/// A JSON string literal.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::new();
    write_str(&mut out, text);
    out
}

fn write_value(out: &mut String, value: &PickleValue) {
    match value {
        PickleValue::None => out.push_str("null"),
        PickleValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        PickleValue::I64(i) => out.push_str(&i.to_string()),
        // JSON numbers have no size limit: the digits are the value.
        PickleValue::Int(big) => out.push_str(&big.to_string()),
        PickleValue::F64(f) => write_float(out, *f),
        // Base64's alphabet needs no JSON escaping: encoded straight into the output, so a
        // large value is not copied three times on its way out.
        PickleValue::Bytes(bytes) => tagged(out, BYTES_TAG, |out| {
            out.push('"');
            STANDARD.encode_string(bytes, out);
            out.push('"');
        }),
        PickleValue::String(s) => write_str(out, s),
        PickleValue::List(items) | PickleValue::Tuple(items) => {
            write_array(out, items, write_value);
        }
        PickleValue::Set(items) | PickleValue::FrozenSet(items) => {
            write_array(out, items, write_hashable);
        }
        PickleValue::Dict(entries) => {
            let plain = entries
                .keys()
                .all(|k| matches!(k, PickleHashableValue::String(_)))
                && !(entries.len() == 1
                    && entries.keys().any(
                        |k| matches!(k, PickleHashableValue::String(s) if TAGS.contains(&s.as_str())),
                    ));
            if plain {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let PickleHashableValue::String(key) = key {
                        write_str(out, key);
                    }
                    out.push(':');
                    write_value(out, value);
                }
                out.push('}');
            } else {
                tagged(out, DICT_TAG, |out| {
                    out.push('[');
                    for (i, (key, value)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        write_hashable(out, key);
                        out.push(',');
                        write_value(out, value);
                        out.push(']');
                    }
                    out.push(']');
                });
            }
        }
    }
}

fn write_hashable(out: &mut String, value: &PickleHashableValue) {
    write_value(out, &value.clone().into_value());
}

fn write_array<T>(out: &mut String, items: impl IntoIterator<Item = T>, write: fn(&mut String, T)) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(']');
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        tagged(out, FLOAT_TAG, |out| out.push_str("\"nan\""));
    } else if f.is_infinite() {
        let name = if f > 0.0 { "\"inf\"" } else { "\"-inf\"" };
        tagged(out, FLOAT_TAG, |out| out.push_str(name));
    } else {
        // serde_json writes the shortest text that reads back as the same float, always with
        // a `.` or an exponent, so a float stays a float.
        out.push_str(&serde_json::Value::from(f).to_string());
    }
}

fn tagged(out: &mut String, tag: &str, body: impl FnOnce(&mut String)) {
    out.push('{');
    write_str(out, tag);
    out.push(':');
    body(out);
    out.push('}');
}

/// Where the pickle decoder puts a lone surrogate (`Surrogates::PrivateUse`): U+D800 + k is
/// read as U+10F800 + k. Printed back as the `\udXXX` escape, which is how Python's `json`
/// writes the same string, so any JSON reader gets the string that is stored.
const SURROGATE_BASE: u32 = 0x10_F800;

fn write_str(out: &mut String, text: &str) {
    out.push('"');
    let mut rest = text;
    while let Some((at, c)) = rest
        .char_indices()
        .find(|(_, c)| u32::from(*c) >= SURROGATE_BASE)
    {
        push_escaped(out, &rest[..at]);
        out.push_str(&format!(
            "\\u{:04x}",
            0xD800 + (u32::from(c) - SURROGATE_BASE)
        ));
        rest = &rest[at + c.len_utf8()..];
    }
    push_escaped(out, rest);
    out.push('"');
}

/// `text` as the inside of a JSON string, escaped as serde_json escapes it.
fn push_escaped(out: &mut String, text: &str) {
    let quoted = serde_json::Value::from(text).to_string();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn s(text: &str) -> PickleValue {
        PickleValue::String(text.into())
    }

    fn hs(text: &str) -> PickleHashableValue {
        PickleHashableValue::String(text.into())
    }

    #[test]
    fn a_lone_surrogate_is_printed_as_its_escape() {
        let stand_in = char::from_u32(0x10_F800).unwrap();
        assert_eq!(
            to_json(&s(&format!("x{stand_in}y\"\n"))),
            r#""x\ud800y\"\n""#
        );
    }

    #[test]
    fn plain_values() {
        assert_eq!(to_json(&PickleValue::None), "null");
        assert_eq!(to_json(&PickleValue::Bool(true)), "true");
        assert_eq!(to_json(&PickleValue::I64(-7)), "-7");
        assert_eq!(to_json(&PickleValue::F64(1.5)), "1.5");
        assert_eq!(to_json(&PickleValue::F64(3.0)), "3.0");
        assert_eq!(to_json(&s("a\"☃\n")), r#""a\"☃\n""#);
        let tuple = PickleValue::Tuple(vec![s("x"), PickleValue::List(vec![PickleValue::I64(1)])]);
        assert_eq!(to_json(&tuple), r#"["x",[1]]"#);
        let set = PickleValue::Set(BTreeSet::from([
            PickleHashableValue::I64(2),
            PickleHashableValue::I64(1),
        ]));
        assert_eq!(to_json(&set), "[1,2]");
        let dict = PickleValue::Dict(BTreeMap::from([
            (hs("b"), PickleValue::None),
            (hs("a"), s("☃")),
        ]));
        assert_eq!(to_json(&dict), r#"{"a":"☃","b":null}"#);
    }

    #[test]
    fn values_without_json_form_are_tagged() {
        assert_eq!(
            to_json(&PickleValue::Bytes(b"\x00\xff".to_vec())),
            r#"{"$bytes":"AP8="}"#
        );
        assert_eq!(to_json(&PickleValue::F64(f64::NAN)), r#"{"$float":"nan"}"#);
        assert_eq!(
            to_json(&PickleValue::F64(f64::NEG_INFINITY)),
            r#"{"$float":"-inf"}"#
        );
        let big: PickleValue = PickleValue::Int("123456789012345678901234567890".parse().unwrap());
        assert_eq!(to_json(&big), "123456789012345678901234567890");
        let dict = PickleValue::Dict(BTreeMap::from([
            (PickleHashableValue::I64(1), s("one")),
            (
                PickleHashableValue::Tuple(vec![PickleHashableValue::I64(2), hs("x")]),
                PickleValue::None,
            ),
        ]));
        assert_eq!(to_json(&dict), r#"{"$dict":[[1,"one"],[[2,"x"],null]]}"#);
        // A real dict that looks like a tag is written as a $dict, so it is not read as one.
        let lookalike = PickleValue::Dict(BTreeMap::from([(hs("$bytes"), s("AP8="))]));
        assert_eq!(to_json(&lookalike), r#"{"$dict":[["$bytes","AP8="]]}"#);
    }

    #[test]
    fn objects_keep_the_given_order() {
        let one = PickleValue::I64(1);
        assert_eq!(object([("a", &one), ("b\"", &one)]), r#"{"a":1,"b\"":1}"#);
        assert_eq!(object([]), "{}");
    }
}
