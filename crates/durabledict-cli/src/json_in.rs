//! JSON text as Python values: the reverse of [`crate::json_out`], tagged forms included.
//!
//! serde_json checks the whole text first (its messages say where it is wrong); each value is
//! then taken apart from its raw text, so integers of any size keep every digit.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict::{PickleHashableValue, PickleValue};
use serde_json::value::RawValue;

use crate::json_out::{BYTES_TAG, DICT_TAG, FLOAT_TAG};

/// The deepest nesting of arrays and objects read: what the pickle decoder accepts, so that
/// nothing is stored that cannot be read back (and no input can exhaust the stack).
const MAX_DEPTH: usize = 128;

/// Why a JSON text is not a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not JSON at all.
    Syntax(String),
    /// JSON, but a tagged form is malformed.
    Form(String),
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Syntax(msg) | JsonError::Form(msg) => f.write_str(msg),
        }
    }
}

/// Reads one JSON value.
pub(crate) fn from_json(text: &str) -> Result<PickleValue, JsonError> {
    value(parse_raw(text)?, 0)
}

/// Reads a JSON object: its entries, in key order (a repeated key: the last one wins).
pub(crate) fn object_from_json(text: &str) -> Result<Vec<(String, PickleValue)>, JsonError> {
    let raw = parse_raw(text)?;
    if !raw.get().starts_with('{') {
        return Err(JsonError::Form(
            "expected a JSON object of keys and values".into(),
        ));
    }
    fields(raw)?
        .into_iter()
        .map(|(key, raw)| Ok((key, value(raw, 1)?)))
        .collect()
}

fn parse_raw(text: &str) -> Result<&RawValue, JsonError> {
    serde_json::from_str::<&RawValue>(text.trim()).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Re-reads a fragment serde_json has already checked; only a shape mismatch can fail.
fn reread<'a, T: serde::Deserialize<'a>>(raw: &'a RawValue, what: &str) -> Result<T, JsonError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        let text = raw.get();
        let shown: String = text.chars().take(60).collect();
        let more = if shown.len() < text.len() { "…" } else { "" };
        // A position within the fragment would mislead: the fragment itself is shown instead.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        JsonError::Form(format!("{what}: {message}, in {shown}{more}"))
    })
}

fn fields(raw: &RawValue) -> Result<BTreeMap<String, &RawValue>, JsonError> {
    reread(raw, "object")
}

/// The value of `raw`, found inside `depth` arrays and objects.
fn value(raw: &RawValue, depth: usize) -> Result<PickleValue, JsonError> {
    let text = raw.get();
    let opens = matches!(text.as_bytes().first(), Some(b'{' | b'['));
    if opens && depth >= MAX_DEPTH {
        return Err(JsonError::Form(format!(
            "arrays and objects nest more than {MAX_DEPTH} deep"
        )));
    }
    let inner = depth + 1;
    match text.as_bytes().first() {
        Some(b'{') => {
            let fields = fields(raw)?;
            if fields.len() == 1
                && let Some((tag, body)) = fields.iter().next()
                && let Some(value) = tagged(tag, body, inner)?
            {
                return Ok(value);
            }
            fields
                .into_iter()
                .map(|(k, v)| Ok((PickleHashableValue::String(k), value(v, inner)?)))
                .collect::<Result<_, _>>()
                .map(PickleValue::Dict)
        }
        Some(b'[') => reread::<Vec<&RawValue>>(raw, "array")?
            .into_iter()
            .map(|item| value(item, inner))
            .collect::<Result<_, _>>()
            .map(PickleValue::List),
        Some(b'"') => reread(raw, "string").map(PickleValue::String),
        Some(b't' | b'f') => reread(raw, "boolean").map(PickleValue::Bool),
        Some(b'n') => Ok(PickleValue::None),
        _ => number(text),
    }
}

/// A one-key object that is a tagged form; `None` when `tag` is not a tag.
fn tagged(tag: &str, body: &RawValue, depth: usize) -> Result<Option<PickleValue>, JsonError> {
    let value = match tag {
        BYTES_TAG => {
            let text: String = reread(body, "$bytes")?;
            let bytes = STANDARD.decode(text.as_bytes()).map_err(|e| {
                JsonError::Form(format!("{BYTES_TAG} must hold standard base64: {e}"))
            })?;
            PickleValue::Bytes(bytes)
        }
        FLOAT_TAG => {
            let name: String = reread(body, "$float")?;
            PickleValue::F64(match name.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => {
                    return Err(JsonError::Form(format!(
                        "{FLOAT_TAG} must be \"nan\", \"inf\" or \"-inf\", not {name:?}"
                    )));
                }
            })
        }
        DICT_TAG => {
            let pairs: Vec<(&RawValue, &RawValue)> =
                reread(body, "$dict (an array of [key, value] pairs)")?;
            let mut dict = BTreeMap::new();
            // Keys and values sit inside the dict, one level down, like those of an object.
            for (key, val) in pairs {
                dict.insert(hashable(value(key, depth)?)?, value(val, depth)?);
            }
            PickleValue::Dict(dict)
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// A dict key: arrays become tuples (Python's usual composite key).
fn hashable(value: PickleValue) -> Result<PickleHashableValue, JsonError> {
    Ok(match value {
        PickleValue::List(items) => {
            PickleHashableValue::Tuple(items.into_iter().map(hashable).collect::<Result<_, _>>()?)
        }
        PickleValue::Dict(_) => {
            return Err(JsonError::Form(
                "a $dict key cannot be an object (Python dict keys must be hashable)".into(),
            ));
        }
        other => other
            .into_hashable()
            .map_err(|e| JsonError::Form(format!("a $dict key must be hashable: {e}")))?,
    })
}

fn number(text: &str) -> Result<PickleValue, JsonError> {
    let bad = || JsonError::Form(format!("{text} is not a number"));
    if text.contains(['.', 'e', 'E']) {
        return text.parse::<f64>().map(PickleValue::F64).map_err(|_| bad());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(PickleValue::I64(i));
    }
    text.parse().map(PickleValue::Int).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::json_out::to_json;

    fn s(text: &str) -> PickleValue {
        PickleValue::String(text.into())
    }

    fn set_of(items: &[i64]) -> BTreeSet<PickleHashableValue> {
        items.iter().map(|&i| PickleHashableValue::I64(i)).collect()
    }

    #[test]
    fn plain_json() {
        assert_eq!(from_json(" null "), Ok(PickleValue::None));
        assert_eq!(from_json("true"), Ok(PickleValue::Bool(true)));
        assert_eq!(from_json("-12"), Ok(PickleValue::I64(-12)));
        assert_eq!(from_json("1.5e3"), Ok(PickleValue::F64(1500.0)));
        assert_eq!(from_json(r#""\u2603""#), Ok(s("☃")));
        assert_eq!(
            from_json(r#"[1, "a", {"k": null}]"#),
            Ok(PickleValue::List(vec![
                PickleValue::I64(1),
                s("a"),
                PickleValue::Dict(BTreeMap::from([(
                    PickleHashableValue::String("k".into()),
                    PickleValue::None
                )])),
            ]))
        );
        let big = "123456789012345678901234567890";
        assert_eq!(from_json(big), Ok(PickleValue::Int(big.parse().unwrap())));
        assert_eq!(
            from_json("18446744073709551615"),
            Ok(PickleValue::Int(u64::MAX.into()))
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let Err(JsonError::Syntax(msg)) = from_json("hello") else {
            panic!("not a syntax error")
        };
        assert_eq!(msg, "expected value at line 1 column 1");
        assert!(matches!(from_json("[1,"), Err(JsonError::Syntax(_))));
        assert!(matches!(from_json("1 2"), Err(JsonError::Syntax(_))));
    }

    #[test]
    fn tagged_forms_round_trip() {
        let values = [
            PickleValue::Bytes(vec![0, 255, 10]),
            PickleValue::F64(f64::INFINITY),
            PickleValue::F64(f64::NEG_INFINITY),
            PickleValue::Dict(BTreeMap::from([
                (PickleHashableValue::I64(1), s("one")),
                (
                    PickleHashableValue::Tuple(vec![
                        PickleHashableValue::I64(2),
                        PickleHashableValue::Bytes(b"k".to_vec()),
                    ]),
                    PickleValue::None,
                ),
            ])),
            PickleValue::Dict(BTreeMap::from([(
                PickleHashableValue::String("$dict".into()),
                PickleValue::I64(1),
            )])),
            PickleValue::Int("-98765432109876543210".parse().unwrap()),
        ];
        for value in values {
            let text = to_json(&value);
            assert_eq!(from_json(&text), Ok(value), "{text}");
        }
        let Ok(PickleValue::F64(nan)) = from_json(r#"{"$float": "nan"}"#) else {
            panic!("nan")
        };
        assert!(nan.is_nan());
    }

    #[test]
    fn other_dollar_keys_are_plain() {
        let dict = from_json(r#"{"$other": 1}"#).unwrap();
        assert_eq!(to_json(&dict), r#"{"$other":1}"#);
        let two = from_json(r#"{"$bytes": "AA==", "x": 1}"#).unwrap();
        assert!(matches!(two, PickleValue::Dict(d) if d.len() == 2));
    }

    #[test]
    fn malformed_tags_are_errors() {
        for text in [
            r#"{"$bytes": "not base64!"}"#,
            r#"{"$bytes": 5}"#,
            r#"{"$float": "huge"}"#,
            r#"{"$dict": [[1]]}"#,
            r#"{"$dict": [[{"a": 1}, 2]]}"#,
        ] {
            assert!(matches!(from_json(text), Err(JsonError::Form(_))), "{text}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(from_json(&nested(MAX_DEPTH)).is_ok());
        assert!(matches!(
            from_json(&nested(MAX_DEPTH + 1)),
            Err(JsonError::Form(_))
        ));
        let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        assert!(matches!(from_json(&deep), Err(JsonError::Form(_))));
        let deep_dict = format!("{}1{}", "{\"$dict\":[[1,".repeat(200), "]]}".repeat(200));
        assert!(matches!(from_json(&deep_dict), Err(JsonError::Form(_))));
    }

    #[test]
    fn objects_for_import() {
        let entries = object_from_json(r#"{"b": [1], "a": "x", "a": "y"}"#).unwrap();
        assert_eq!(
            entries,
            vec![
                ("a".to_string(), s("y")),
                (
                    "b".to_string(),
                    PickleValue::List(vec![PickleValue::I64(1)])
                ),
            ]
        );
        assert!(matches!(object_from_json("[1]"), Err(JsonError::Form(_))));
        let set = PickleValue::Set(set_of(&[1, 2]));
        assert_eq!(
            from_json(&to_json(&set)),
            Ok(PickleValue::List(vec![
                PickleValue::I64(1),
                PickleValue::I64(2)
            ]))
        );
    }
}
