//! Python values as JSON text, losslessly: what JSON cannot say is written in a tagged form
//! that [`crate::json_in`] reads back.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict::{HashableValue, SafeUuid, Time, TimeZone, Uuid, Value};

/// The one-key objects that stand for values JSON has no form for. A dict whose only key is
/// one of these is written as `{"$dict": …}`, so that it is not read back as the tag.
pub(crate) const BYTES_TAG: &str = "$bytes";
pub(crate) const DICT_TAG: &str = "$dict";
pub(crate) const FLOAT_TAG: &str = "$float";
pub(crate) const COMPLEX_TAG: &str = "$complex";
pub(crate) const DATETIME_TAG: &str = "$datetime";
pub(crate) const DATE_TAG: &str = "$date";
pub(crate) const TIME_TAG: &str = "$time";
pub(crate) const TIMEDELTA_TAG: &str = "$timedelta";
pub(crate) const TIMEZONE_TAG: &str = "$timezone";
pub(crate) const DECIMAL_TAG: &str = "$decimal";
pub(crate) const UUID_TAG: &str = "$uuid";
pub(crate) const TAGS: [&str; 11] = [
    BYTES_TAG,
    DICT_TAG,
    FLOAT_TAG,
    COMPLEX_TAG,
    DATETIME_TAG,
    DATE_TAG,
    TIME_TAG,
    TIMEDELTA_TAG,
    TIMEZONE_TAG,
    DECIMAL_TAG,
    UUID_TAG,
];

/// The fields of a `$datetime` or `$time` object form, written only when `isoformat()` cannot
/// say them (a `fold` of 1, a zone with a name); and of `$timezone`'s and `$uuid`'s.
pub(crate) const ISO_FIELD: &str = "iso";
pub(crate) const FOLD_FIELD: &str = "fold";
pub(crate) const TZNAME_FIELD: &str = "tzname";
pub(crate) const OFFSET_FIELD: &str = "offset";
pub(crate) const NAME_FIELD: &str = "name";
pub(crate) const UUID_FIELD: &str = "uuid";
pub(crate) const IS_SAFE_FIELD: &str = "is_safe";

/// `value` as compact JSON text on one line.
pub(crate) fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// A JSON object of `entries` (keys already sorted by the caller), on one line.
pub(crate) fn object<'a>(entries: impl IntoIterator<Item = (&'a str, &'a Value)>) -> String {
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

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::None => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I64(i) => out.push_str(&i.to_string()),
        // JSON numbers have no size limit: the digits are the value.
        Value::Int(big) => out.push_str(&big.to_string()),
        Value::F64(f) => write_float(out, *f),
        // Base64's alphabet needs no JSON escaping: encoded straight into the output, so a
        // large value is not copied three times on its way out.
        Value::Bytes(bytes) => tagged(out, BYTES_TAG, |out| {
            out.push('"');
            STANDARD.encode_string(bytes, out);
            out.push('"');
        }),
        Value::String(s) => write_str(out, s),
        Value::List(items) | Value::Tuple(items) => {
            write_array(out, items, write_value);
        }
        Value::Set(items) | Value::FrozenSet(items) => {
            write_array(out, items, write_hashable);
        }
        Value::Dict(entries) => {
            let plain = entries
                .keys()
                .all(|k| matches!(k, HashableValue::String(_)))
                && !(entries.len() == 1
                    && entries.keys().any(
                        |k| matches!(k, HashableValue::String(s) if TAGS.contains(&s.as_str())),
                    ));
            if plain {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    if let HashableValue::String(key) = key {
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
        Value::Complex(z) => tagged(out, COMPLEX_TAG, |out| {
            out.push('[');
            write_float(out, z.re);
            out.push(',');
            write_float(out, z.im);
            out.push(']');
        }),
        Value::DateTime(at) => write_clock(out, DATETIME_TAG, &at.to_string(), at.time()),
        Value::Time(time) => write_clock(out, TIME_TAG, &time.to_string(), time),
        Value::Date(date) => tagged(out, DATE_TAG, |out| write_str(out, &date.to_string())),
        Value::TimeDelta(delta) => tagged(out, TIMEDELTA_TAG, |out| {
            let (d, s, us) = (delta.days(), delta.seconds(), delta.microseconds());
            out.push_str(&format!("[{d},{s},{us}]"));
        }),
        Value::TimeZone(zone) => tagged(out, TIMEZONE_TAG, |out| write_zone(out, zone)),
        Value::Decimal(d) => tagged(out, DECIMAL_TAG, |out| write_str(out, &d.to_string())),
        Value::Uuid(id) => tagged(out, UUID_TAG, |out| write_uuid(out, id)),
        // A type this build does not know has no form that reads back: its Python type, so
        // that nothing is printed as a value it is not.
        other => tagged(out, "$unsupported", |out| write_str(out, other.type_name())),
    }
}

/// A `datetime` or `time`: its `isoformat()` text, or an object adding what that text leaves
/// out (`fold`, the zone's name).
fn write_clock(out: &mut String, tag: &str, iso: &str, time: &Time) {
    let name = time.tzinfo().and_then(TimeZone::name);
    tagged(out, tag, |out| {
        if !time.fold() && name.is_none() {
            return write_str(out, iso);
        }
        out.push('{');
        write_str(out, ISO_FIELD);
        out.push(':');
        write_str(out, iso);
        if time.fold() {
            out.push(',');
            write_str(out, FOLD_FIELD);
            out.push_str(":1");
        }
        if let Some(name) = name {
            out.push(',');
            write_str(out, TZNAME_FIELD);
            out.push(':');
            write_str(out, name);
        }
        out.push('}');
    });
}

/// A `timezone`: its offset as `isoformat()` appends it, or with its name as an object.
fn write_zone(out: &mut String, zone: &TimeZone) {
    match zone.name() {
        None => write_str(out, &zone.to_string()),
        Some(name) => {
            out.push('{');
            write_str(out, OFFSET_FIELD);
            out.push(':');
            write_str(out, &zone.to_string());
            out.push(',');
            write_str(out, NAME_FIELD);
            out.push(':');
            write_str(out, name);
            out.push('}');
        }
    }
}

/// A `UUID`: its `str()`, or with `is_safe` (when the generator said) as an object.
fn write_uuid(out: &mut String, id: &Uuid) {
    let safe = match id.is_safe() {
        SafeUuid::Safe => "safe",
        SafeUuid::Unsafe => "unsafe",
        SafeUuid::Unknown => return write_str(out, &id.to_string()),
    };
    out.push('{');
    write_str(out, UUID_FIELD);
    out.push(':');
    write_str(out, &id.to_string());
    out.push(',');
    write_str(out, IS_SAFE_FIELD);
    out.push(':');
    write_str(out, safe);
    out.push('}');
}

fn write_hashable(out: &mut String, value: &HashableValue) {
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

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn hs(text: &str) -> HashableValue {
        HashableValue::String(text.into())
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
        assert_eq!(to_json(&Value::None), "null");
        assert_eq!(to_json(&Value::Bool(true)), "true");
        assert_eq!(to_json(&Value::I64(-7)), "-7");
        assert_eq!(to_json(&Value::F64(1.5)), "1.5");
        assert_eq!(to_json(&Value::F64(3.0)), "3.0");
        assert_eq!(to_json(&s("a\"☃\n")), r#""a\"☃\n""#);
        let tuple = Value::Tuple(vec![s("x"), Value::List(vec![Value::I64(1)])]);
        assert_eq!(to_json(&tuple), r#"["x",[1]]"#);
        let set = Value::Set(BTreeSet::from([
            HashableValue::I64(2),
            HashableValue::I64(1),
        ]));
        assert_eq!(to_json(&set), "[1,2]");
        let dict = Value::Dict(BTreeMap::from([(hs("b"), Value::None), (hs("a"), s("☃"))]));
        assert_eq!(to_json(&dict), r#"{"a":"☃","b":null}"#);
    }

    #[test]
    fn values_without_json_form_are_tagged() {
        assert_eq!(
            to_json(&Value::Bytes(b"\x00\xff".to_vec())),
            r#"{"$bytes":"AP8="}"#
        );
        assert_eq!(to_json(&Value::F64(f64::NAN)), r#"{"$float":"nan"}"#);
        assert_eq!(
            to_json(&Value::F64(f64::NEG_INFINITY)),
            r#"{"$float":"-inf"}"#
        );
        let big: Value = Value::Int("123456789012345678901234567890".parse().unwrap());
        assert_eq!(to_json(&big), "123456789012345678901234567890");
        let dict = Value::Dict(BTreeMap::from([
            (HashableValue::I64(1), s("one")),
            (
                HashableValue::Tuple(vec![HashableValue::I64(2), hs("x")]),
                Value::None,
            ),
        ]));
        assert_eq!(to_json(&dict), r#"{"$dict":[[1,"one"],[[2,"x"],null]]}"#);
        // A real dict that looks like a tag is written as a $dict, so it is not read as one.
        let lookalike = Value::Dict(BTreeMap::from([(hs("$bytes"), s("AP8="))]));
        assert_eq!(to_json(&lookalike), r#"{"$dict":[["$bytes","AP8="]]}"#);
    }

    #[test]
    fn objects_keep_the_given_order() {
        let one = Value::I64(1);
        assert_eq!(object([("a", &one), ("b\"", &one)]), r#"{"a":1,"b\"":1}"#);
        assert_eq!(object([]), "{}");
    }
}
