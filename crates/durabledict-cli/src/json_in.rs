//! JSON text as Python values: the reverse of [`crate::json_out`], tagged forms included.
//!
//! serde_json checks the whole text first (its messages say where it is wrong); each value is
//! then taken apart from its raw text, so integers of any size keep every digit.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use durabledict::{
    Complex, Date, DateTime, Decimal, HashableValue, SafeUuid, Time, TimeDelta, TimeZone, Uuid,
    Value,
};
use serde_json::value::RawValue;

use crate::json_out::{
    BYTES_TAG, COMPLEX_TAG, DATE_TAG, DATETIME_TAG, DECIMAL_TAG, DICT_TAG, FLOAT_TAG, FOLD_FIELD,
    IS_SAFE_FIELD, ISO_FIELD, NAME_FIELD, OFFSET_FIELD, TIME_TAG, TIMEDELTA_TAG, TIMEZONE_TAG,
    TZNAME_FIELD, UUID_FIELD, UUID_TAG,
};

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
pub(crate) fn from_json(text: &str) -> Result<Value, JsonError> {
    value(parse_raw(text)?, 0)
}

/// Reads a JSON object: its entries, in key order (a repeated key: the last one wins).
pub(crate) fn object_from_json(text: &str) -> Result<Vec<(String, Value)>, JsonError> {
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
        // serde_json quotes the string it refused, whole: a few lines of it are enough.
        let cut: String = message.chars().take(120).collect();
        let message = if cut.len() < message.len() {
            format!("{cut}…")
        } else {
            cut
        };
        JsonError::Form(format!("{what}: {message}, in {shown}{more}"))
    })
}

fn fields(raw: &RawValue) -> Result<BTreeMap<String, &RawValue>, JsonError> {
    reread(raw, "object")
}

/// The value of `raw`, found inside `depth` arrays and objects.
fn value(raw: &RawValue, depth: usize) -> Result<Value, JsonError> {
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
                .map(|(k, v)| Ok((HashableValue::String(k), value(v, inner)?)))
                .collect::<Result<_, _>>()
                .map(Value::Dict)
        }
        Some(b'[') => reread::<Vec<&RawValue>>(raw, "array")?
            .into_iter()
            .map(|item| value(item, inner))
            .collect::<Result<_, _>>()
            .map(Value::List),
        Some(b'"') => reread(raw, "string").map(Value::String),
        Some(b't' | b'f') => reread(raw, "boolean").map(Value::Bool),
        Some(b'n') => Ok(Value::None),
        _ => number(text),
    }
}

/// A one-key object that is a tagged form; `None` when `tag` is not a tag.
fn tagged(tag: &str, body: &RawValue, depth: usize) -> Result<Option<Value>, JsonError> {
    let value = match tag {
        BYTES_TAG => {
            let text: String = reread(body, "$bytes")?;
            let bytes = STANDARD.decode(text.as_bytes()).map_err(|e| {
                JsonError::Form(format!("{BYTES_TAG} must hold standard base64: {e}"))
            })?;
            Value::Bytes(bytes)
        }
        FLOAT_TAG => {
            let name: String = reread(body, "$float")?;
            Value::F64(match name.as_str() {
                "nan" => f64::NAN,
                "inf" => f64::INFINITY,
                "-inf" => f64::NEG_INFINITY,
                _ => {
                    return Err(JsonError::Form(format!(
                        "{FLOAT_TAG} must be \"nan\", \"inf\" or \"-inf\", not {}",
                        shown(&name)
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
            Value::Dict(dict)
        }
        COMPLEX_TAG => {
            let parts: Vec<&RawValue> = reread(body, "$complex (an array [real, imag])")?;
            // An integer part is rounded to the nearest float, as Python's complex(int) does;
            // one beyond the floats is refused, as Python refuses it.
            let float = |raw: &RawValue| match value(raw, depth)? {
                Value::F64(f) => Ok(f),
                #[allow(clippy::cast_precision_loss)]
                Value::I64(i) => Ok(i as f64),
                Value::Int(n) => match n.to_string().parse::<f64>() {
                    Ok(f) if f.is_finite() => Ok(f),
                    _ => Err(JsonError::Form(format!(
                        "{COMPLEX_TAG}: an integer of {} digits is too large for a float",
                        raw.get().trim_start_matches('-').len()
                    ))),
                },
                _ => Err(JsonError::Form(format!(
                    "{COMPLEX_TAG} parts must be numbers (or {FLOAT_TAG} forms), in {}",
                    body.get()
                ))),
            };
            match parts.as_slice() {
                [re, im] => Value::Complex(Complex {
                    re: float(re)?,
                    im: float(im)?,
                }),
                _ => {
                    return Err(JsonError::Form(format!(
                        "{COMPLEX_TAG} must be an array [real, imag], not {}",
                        body.get()
                    )));
                }
            }
        }
        DATETIME_TAG => {
            let (iso, fields) = text_or_object(body, DATETIME_TAG, ISO_FIELD)?;
            let at: DateTime = parsed(DATETIME_TAG, &iso)?;
            let time = clock_extras(DATETIME_TAG, at.time().clone(), fields)?;
            Value::DateTime(DateTime::new(at.date(), time))
        }
        TIME_TAG => {
            let (iso, fields) = text_or_object(body, TIME_TAG, ISO_FIELD)?;
            let time: Time = parsed(TIME_TAG, &iso)?;
            Value::Time(clock_extras(TIME_TAG, time, fields)?)
        }
        DATE_TAG => {
            let text: String = reread(body, DATE_TAG)?;
            Value::Date(parsed::<Date>(DATE_TAG, &text)?)
        }
        TIMEDELTA_TAG => {
            let (days, seconds, micros): (i64, i64, i64) =
                reread(body, "$timedelta (an array [days, seconds, microseconds])")?;
            Value::TimeDelta(
                TimeDelta::new(days, seconds, micros)
                    .map_err(|e| JsonError::Form(format!("{TIMEDELTA_TAG}: {e}")))?,
            )
        }
        TIMEZONE_TAG => {
            let (offset, mut fields) = text_or_object(body, TIMEZONE_TAG, OFFSET_FIELD)?;
            let zone: TimeZone = parsed(TIMEZONE_TAG, &offset)?;
            let name = take_string(&mut fields, TIMEZONE_TAG, NAME_FIELD)?;
            no_more(TIMEZONE_TAG, &fields)?;
            Value::TimeZone(
                TimeZone::new(zone.offset(), name)
                    .map_err(|e| JsonError::Form(format!("{TIMEZONE_TAG}: {e}")))?,
            )
        }
        DECIMAL_TAG => {
            let text: String = reread(body, DECIMAL_TAG)?;
            Value::Decimal(parsed::<Decimal>(DECIMAL_TAG, &text)?)
        }
        UUID_TAG => {
            let (text, mut fields) = text_or_object(body, UUID_TAG, UUID_FIELD)?;
            let id = uuid(&text)?;
            let is_safe = match take_string(&mut fields, UUID_TAG, IS_SAFE_FIELD)?.as_deref() {
                None => SafeUuid::Unknown,
                Some("safe") => SafeUuid::Safe,
                Some("unsafe") => SafeUuid::Unsafe,
                Some(other) => {
                    return Err(JsonError::Form(format!(
                        "{UUID_TAG}'s {IS_SAFE_FIELD} must be \"safe\" or \"unsafe\", not {}",
                        shown(other)
                    )));
                }
            };
            no_more(UUID_TAG, &fields)?;
            Value::Uuid(id.with_is_safe(is_safe))
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// `text` quoted for a message, its first 60 characters at most (an input may be megabytes).
fn shown(text: &str) -> String {
    let head: String = text.chars().take(60).collect();
    if head.len() < text.len() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// `text` read as `T` (a date, time, zone, decimal), an error naming `tag` otherwise.
fn parsed<T: std::str::FromStr<Err: std::fmt::Display>>(
    tag: &str,
    text: &str,
) -> Result<T, JsonError> {
    text.parse()
        .map_err(|e| JsonError::Form(format!("{tag}: {e}")))
}

/// A tag's body: a string, or an object whose `main` field is that string, with the other
/// fields it holds (each tag takes out those it knows, then calls [`no_more`]).
fn text_or_object<'a>(
    body: &'a RawValue,
    tag: &str,
    main: &str,
) -> Result<(String, BTreeMap<String, &'a RawValue>), JsonError> {
    if body.get().starts_with('{') {
        let mut fields = fields(body)?;
        let text = take_string(&mut fields, tag, main)?.ok_or_else(|| {
            JsonError::Form(format!("{tag} as an object needs a {main:?} string"))
        })?;
        Ok((text, fields))
    } else {
        let what = format!("{tag} (a string, or an object with {main:?})");
        Ok((reread(body, &what)?, BTreeMap::new()))
    }
}

fn take_string(
    fields: &mut BTreeMap<String, &RawValue>,
    tag: &str,
    field: &str,
) -> Result<Option<String>, JsonError> {
    fields
        .remove(field)
        .map(|raw| reread(raw, &format!("{tag}'s {field:?}")))
        .transpose()
}

fn no_more(tag: &str, fields: &BTreeMap<String, &RawValue>) -> Result<(), JsonError> {
    match fields.keys().next() {
        None => Ok(()),
        Some(field) => Err(JsonError::Form(format!(
            "{tag} has no field {}",
            shown(field)
        ))),
    }
}

/// The `fold` and zone name of a `$datetime` or `$time` object.
fn clock_extras(
    tag: &str,
    time: Time,
    mut fields: BTreeMap<String, &RawValue>,
) -> Result<Time, JsonError> {
    let fold = match fields.remove(FOLD_FIELD) {
        None => false,
        Some(raw) => match reread::<u8>(raw, &format!("{tag}'s {FOLD_FIELD:?}"))? {
            0 => false,
            1 => true,
            other => {
                return Err(JsonError::Form(format!(
                    "{tag}'s {FOLD_FIELD:?} must be 0 or 1, not {other}"
                )));
            }
        },
    };
    let name = take_string(&mut fields, tag, TZNAME_FIELD)?;
    no_more(tag, &fields)?;
    let tzinfo = match (time.tzinfo(), name) {
        (_, None) => time.tzinfo().cloned(),
        (Some(zone), Some(name)) => Some(
            TimeZone::new(zone.offset(), Some(name))
                .map_err(|e| JsonError::Form(format!("{tag}: {e}")))?,
        ),
        (None, Some(_)) => {
            return Err(JsonError::Form(format!(
                "{tag}'s {TZNAME_FIELD:?} names the zone of an offset, and the time has none"
            )));
        }
    };
    Ok(time.with_fold(fold).with_tzinfo(tzinfo))
}

/// A UUID's 32 hex digits, with or without the dashes of `str(UUID)`.
fn uuid(text: &str) -> Result<Uuid, JsonError> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    let dashes_ok = text.len() == 32 || {
        let b = text.as_bytes();
        text.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
    };
    match u128::from_str_radix(&hex, 16) {
        Ok(int) if hex.len() == 32 && dashes_ok && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Uuid::new(int))
        }
        _ => Err(JsonError::Form(format!(
            "{UUID_TAG} must be 32 hex digits as str(UUID) writes them, not {}",
            shown(text)
        ))),
    }
}

/// A dict key: arrays become tuples (Python's usual composite key).
fn hashable(value: Value) -> Result<HashableValue, JsonError> {
    Ok(match value {
        Value::List(items) => {
            HashableValue::Tuple(items.into_iter().map(hashable).collect::<Result<_, _>>()?)
        }
        Value::Dict(_) => {
            return Err(JsonError::Form(
                "a $dict key cannot be an object (Python dict keys must be hashable)".into(),
            ));
        }
        other => other.into_hashable().map_err(|v| {
            JsonError::Form(format!(
                "a $dict key must be hashable, and Python cannot hash {}",
                match &v {
                    Value::Decimal(_) => "a signaling NaN Decimal",
                    other => other.type_name(),
                }
            ))
        })?,
    })
}

fn number(text: &str) -> Result<Value, JsonError> {
    let bad = || JsonError::Form(format!("{text} is not a number"));
    if text.contains(['.', 'e', 'E']) {
        return text.parse::<f64>().map(Value::F64).map_err(|_| bad());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::I64(i));
    }
    text.parse().map(Value::Int).map_err(|_| bad())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::json_out::to_json;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn set_of(items: &[i64]) -> BTreeSet<HashableValue> {
        items.iter().map(|&i| HashableValue::I64(i)).collect()
    }

    #[test]
    fn plain_json() {
        assert_eq!(from_json(" null "), Ok(Value::None));
        assert_eq!(from_json("true"), Ok(Value::Bool(true)));
        assert_eq!(from_json("-12"), Ok(Value::I64(-12)));
        assert_eq!(from_json("1.5e3"), Ok(Value::F64(1500.0)));
        assert_eq!(from_json(r#""\u2603""#), Ok(s("☃")));
        assert_eq!(
            from_json(r#"[1, "a", {"k": null}]"#),
            Ok(Value::List(vec![
                Value::I64(1),
                s("a"),
                Value::Dict(BTreeMap::from([(
                    HashableValue::String("k".into()),
                    Value::None
                )])),
            ]))
        );
        let big = "123456789012345678901234567890";
        assert_eq!(from_json(big), Ok(Value::Int(big.parse().unwrap())));
        assert_eq!(
            from_json("18446744073709551615"),
            Ok(Value::Int(u64::MAX.into()))
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
            Value::Bytes(vec![0, 255, 10]),
            Value::F64(f64::INFINITY),
            Value::F64(f64::NEG_INFINITY),
            Value::Dict(BTreeMap::from([
                (HashableValue::I64(1), s("one")),
                (
                    HashableValue::Tuple(vec![
                        HashableValue::I64(2),
                        HashableValue::Bytes(b"k".to_vec()),
                    ]),
                    Value::None,
                ),
            ])),
            Value::Dict(BTreeMap::from([(
                HashableValue::String("$dict".into()),
                Value::I64(1),
            )])),
            Value::Int("-98765432109876543210".parse().unwrap()),
        ];
        for value in values {
            let text = to_json(&value);
            assert_eq!(from_json(&text), Ok(value), "{text}");
        }
        let Ok(Value::F64(nan)) = from_json(r#"{"$float": "nan"}"#) else {
            panic!("nan")
        };
        assert!(nan.is_nan());
    }

    #[test]
    fn other_dollar_keys_are_plain() {
        let dict = from_json(r#"{"$other": 1}"#).unwrap();
        assert_eq!(to_json(&dict), r#"{"$other":1}"#);
        let two = from_json(r#"{"$bytes": "AA==", "x": 1}"#).unwrap();
        assert!(matches!(two, Value::Dict(d) if d.len() == 2));
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

    fn dt(iso: &str) -> DateTime {
        iso.parse().unwrap()
    }

    #[test]
    fn standard_library_forms() {
        let est = TimeZone::new(TimeDelta::new(0, -5 * 3600, 0).unwrap(), Some("EST".into()));
        let folded = Time::new(1, 30, 0, 0).unwrap().with_fold(true);
        let cases = [
            (
                Value::DateTime(dt("2026-12-01T10:00:00.250000+01:00")),
                r#"{"$datetime":"2026-12-01T10:00:00.250000+01:00"}"#,
            ),
            (
                Value::DateTime(dt("2026-12-01T10:00:00")),
                r#"{"$datetime":"2026-12-01T10:00:00"}"#,
            ),
            (
                Value::DateTime(DateTime::new(
                    Date::new(2026, 11, 1).unwrap(),
                    folded.clone().with_tzinfo(Some(est.clone().unwrap())),
                )),
                r#"{"$datetime":{"iso":"2026-11-01T01:30:00-05:00","fold":1,"tzname":"EST"}}"#,
            ),
            (
                Value::Time(folded),
                r#"{"$time":{"iso":"01:30:00","fold":1}}"#,
            ),
            (
                Value::Date(Date::new(2024, 2, 29).unwrap()),
                r#"{"$date":"2024-02-29"}"#,
            ),
            (
                Value::TimeDelta(TimeDelta::new(0, -1, 0).unwrap()),
                r#"{"$timedelta":[-1,86399,0]}"#,
            ),
            (
                Value::TimeZone(TimeZone::utc()),
                r#"{"$timezone":"+00:00"}"#,
            ),
            (
                Value::TimeZone(est.unwrap()),
                r#"{"$timezone":{"offset":"-05:00","name":"EST"}}"#,
            ),
            (
                Value::Decimal("0.10".parse().unwrap()),
                r#"{"$decimal":"0.10"}"#,
            ),
            (
                Value::Decimal("-sNaN12".parse().unwrap()),
                r#"{"$decimal":"-sNaN12"}"#,
            ),
            (
                Value::Uuid(Uuid::new(0x6f0e_2a1c_0000_4000_8000_0000_0000_0001)),
                r#"{"$uuid":"6f0e2a1c-0000-4000-8000-000000000001"}"#,
            ),
            (
                Value::Uuid(Uuid::new(1).with_is_safe(SafeUuid::Safe)),
                r#"{"$uuid":{"uuid":"00000000-0000-0000-0000-000000000001","is_safe":"safe"}}"#,
            ),
            (
                Value::Complex(Complex {
                    re: 1.0,
                    im: f64::NEG_INFINITY,
                }),
                r#"{"$complex":[1.0,{"$float":"-inf"}]}"#,
            ),
        ];
        for (value, text) in cases {
            assert_eq!(to_json(&value), text);
            assert_eq!(from_json(text), Ok(value), "{text}");
        }
        // What people type: other spellings Python's constructors take, read as those.
        assert_eq!(
            from_json(r#"{"$timedelta": [0, 90000, 0]}"#),
            Ok(Value::TimeDelta(TimeDelta::new(1, 3600, 0).unwrap()))
        );
        assert_eq!(
            from_json(r#"{"$uuid": "6F0E2A1C000040008000000000000001"}"#),
            Ok(Value::Uuid(Uuid::new(
                0x6f0e_2a1c_0000_4000_8000_0000_0000_0001
            )))
        );
        assert_eq!(
            from_json(r#"{"$complex": [1, 2]}"#),
            Ok(Value::Complex(Complex { re: 1.0, im: 2.0 }))
        );
        // Integers past 2**53 round as Python's complex(2**53 + 1, -2**64) rounds them.
        assert_eq!(
            from_json(r#"{"$complex": [9007199254740993, -18446744073709551616]}"#),
            Ok(Value::Complex(Complex {
                re: 9_007_199_254_740_992.0,
                im: -18_446_744_073_709_551_616.0
            }))
        );
        // As keys of a $dict, and a dict that merely looks like a tag.
        let dict = Value::Dict(BTreeMap::from([(
            HashableValue::Date(Date::new(2026, 1, 1).unwrap()),
            s("new year"),
        )]));
        assert_eq!(
            to_json(&dict),
            r#"{"$dict":[[{"$date":"2026-01-01"},"new year"]]}"#
        );
        assert_eq!(from_json(&to_json(&dict)), Ok(dict));
        let lookalike = Value::Dict(BTreeMap::from([(
            HashableValue::String("$decimal".into()),
            s("1"),
        )]));
        assert_eq!(from_json(&to_json(&lookalike)), Ok(lookalike));
    }

    #[test]
    fn malformed_standard_library_forms_are_errors() {
        for text in [
            r#"{"$datetime": "2026-13-01T10:00"}"#,
            r#"{"$datetime": "tomorrow"}"#,
            r#"{"$datetime": 5}"#,
            r#"{"$datetime": {"iso": "2026-12-01T10:00", "fold": 2}}"#,
            r#"{"$datetime": {"iso": "2026-12-01T10:00", "tzname": "EST"}}"#,
            r#"{"$datetime": {"iso": "2026-12-01T10:00", "zone": "EST"}}"#,
            r#"{"$datetime": {"fold": 1}}"#,
            r#"{"$time": "25:00"}"#,
            r#"{"$date": "2023-02-29"}"#,
            r#"{"$timedelta": [1000000000, 0, 0]}"#,
            r#"{"$timedelta": [1, 2]}"#,
            r#"{"$timedelta": "1 day"}"#,
            r#"{"$timezone": "+24:00"}"#,
            r#"{"$timezone": {"offset": "+01:00", "name": 5}}"#,
            r#"{"$decimal": "1,5"}"#,
            r#"{"$decimal": 1.5}"#,
            r#"{"$uuid": "not-a-uuid"}"#,
            r#"{"$uuid": "+f0e2a1c-0000-4000-8000-000000000001"}"#,
            r#"{"$uuid": {"uuid": "00000000000000000000000000000001", "is_safe": "maybe"}}"#,
            r#"{"$complex": [1]}"#,
            r#"{"$complex": ["1", 2]}"#,
            r#"{"$complex": [1e2, 100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000]}"#,
            r#"{"$dict": [[{"$decimal": "sNaN"}, 1]]}"#,
        ] {
            assert!(matches!(from_json(text), Err(JsonError::Form(_))), "{text}");
        }
    }

    mod round_trip {
        use proptest::prelude::*;

        use super::*;

        fn finite_or_infinite() -> impl Strategy<Value = f64> {
            prop_oneof![
                any::<f64>().prop_filter("NaN is never equal", |f| !f.is_nan()),
                Just(f64::INFINITY),
                Just(-0.0),
            ]
        }

        fn zone() -> impl Strategy<Value = TimeZone> {
            (
                -86_399_999_999i64..=86_399_999_999,
                proptest::option::of("[A-Za-z+ ]{0,6}"),
            )
                .prop_map(|(micros, name)| {
                    TimeZone::new(TimeDelta::from_microseconds(micros).unwrap(), name).unwrap()
                })
        }

        fn time() -> impl Strategy<Value = Time> {
            (0u8..24, 0u8..60, 0u8..60, 0u32..1_000_000, any::<bool>()).prop_flat_map(
                |(h, m, s, us, fold)| {
                    proptest::option::of(zone()).prop_map(move |tz| {
                        Time::new(h, m, s, us)
                            .unwrap()
                            .with_fold(fold)
                            .with_tzinfo(tz)
                    })
                },
            )
        }

        fn date() -> impl Strategy<Value = Date> {
            (1u16..=9999, 1u8..=12, 1u8..=31)
                .prop_filter_map("a day the month has", |(y, m, d)| Date::new(y, m, d).ok())
        }

        fn decimal() -> impl Strategy<Value = Decimal> {
            prop_oneof![
                ("-?", "[0-9]{1,30}", -40i64..40)
                    .prop_map(|(sign, digits, e)| format!("{sign}{digits}E{e}")),
                "-?(s?NaN[0-9]{0,5}|Infinity)",
            ]
            .prop_map(|text| text.parse().unwrap())
        }

        /// The standard library values, each of which is also hashable but a signaling NaN.
        fn standard() -> impl Strategy<Value = Value> {
            prop_oneof![
                (date(), time()).prop_map(|(d, t)| Value::DateTime(DateTime::new(d, t))),
                date().prop_map(Value::Date),
                time().prop_map(Value::Time),
                (-999_999_999i64..=999_999_999, 0i64..86_400, 0i64..1_000_000)
                    .prop_map(|(d, s, us)| Value::TimeDelta(TimeDelta::new(d, s, us).unwrap())),
                zone().prop_map(Value::TimeZone),
                decimal().prop_map(Value::Decimal),
                (any::<u128>(), 0usize..3).prop_map(|(int, safe)| {
                    let safe = [SafeUuid::Unknown, SafeUuid::Safe, SafeUuid::Unsafe][safe];
                    Value::Uuid(Uuid::new(int).with_is_safe(safe))
                }),
                (finite_or_infinite(), finite_or_infinite())
                    .prop_map(|(re, im)| Value::Complex(Complex { re, im })),
            ]
        }

        fn leaf() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::None),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::I64),
                "-?9[0-9]{19,40}".prop_map(|digits| Value::Int(digits.parse().unwrap())),
                finite_or_infinite().prop_map(Value::F64),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::Bytes),
                "\\PC{0,8}".prop_map(Value::String),
                standard(),
                standard(),
            ]
        }

        /// The values whose CLI JSON form reads back as themselves: tuples and sets are printed
        /// as arrays (read back as lists), so they appear only as dict keys, as tuples.
        fn value() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::List),
                    proptest::collection::btree_map("\\PC{0,4}", inner.clone(), 0..4).prop_map(
                        |entries| Value::Dict(
                            entries
                                .into_iter()
                                .map(|(k, v)| (HashableValue::String(k), v))
                                .collect()
                        )
                    ),
                    proptest::collection::vec((leaf(), inner), 0..4).prop_map(|entries| {
                        Value::Dict(
                            entries
                                .into_iter()
                                .filter_map(|(k, v)| Some((k.into_hashable().ok()?, v)))
                                .collect(),
                        )
                    }),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn value_to_cli_json_and_back_is_equal(value in value()) {
                let text = to_json(&value);
                prop_assert_eq!(from_json(&text), Ok(value), "{}", text);
            }
        }
    }

    mod never_panics {
        use proptest::prelude::*;

        use super::*;

        /// Pieces of the tagged forms, JSON punctuation and hostile text, joined at random.
        fn token() -> impl Strategy<Value = &'static str> {
            proptest::sample::select(vec![
                "{",
                "}",
                "[",
                "]",
                ",",
                ":",
                "\"",
                "\"$datetime\"",
                "\"$date\"",
                "\"$time\"",
                "\"$timedelta\"",
                "\"$timezone\"",
                "\"$decimal\"",
                "\"$uuid\"",
                "\"$complex\"",
                "\"$dict\"",
                "\"$float\"",
                "\"$bytes\"",
                "\"iso\"",
                "\"fold\"",
                "\"tzname\"",
                "\"offset\"",
                "\"name\"",
                "\"is_safe\"",
                "\"uuid\"",
                "\"2026-12-01T10:00:00.250000+01:00\"",
                "\"23:59:60\"",
                "\"24:00\"",
                "\"-23:59:59.999999\"",
                "\"+24:00\"",
                "\"٢٠٢٦-01-01\"",
                "\"1E+999999999999999999\"",
                "\"-sNaN12\"",
                "\"1_0.5e-3\"",
                "\"ffffffffffffffffffffffffffffffff\"",
                "1",
                "-1",
                "0",
                "1.5",
                "1e400",
                "-0.0",
                "99999999999999999999999",
                "true",
                "null",
                "\"nan\"",
                "\"-inf\"",
                "\"\\ud800\"",
                "\"T\"",
                "\"Z\"",
            ])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn any_text_reads_or_is_refused(
                tokens in proptest::collection::vec(token(), 1..24),
                shaped in proptest::bool::ANY,
            ) {
                // Half of the texts are shaped as a one-key object, so that most are JSON and
                // reach the tag's own checks.
                let text = if shaped && tokens.len() > 1 {
                    format!("{{{}: {}}}", tokens[0], tokens[1..].concat())
                } else {
                    tokens.concat()
                };
                if let Ok(value) = from_json(&text) {
                    // What was read prints, and reads back as itself.
                    let printed = crate::json_out::to_json(&value);
                    prop_assert!(from_json(&printed).is_ok(), "{} printed {}", text, printed);
                }
            }
        }
    }

    #[test]
    fn refusals_show_at_most_60_characters_of_the_input() {
        let long = "a".repeat(100_000);
        for text in [
            format!(r#"{{"$uuid": "{long}"}}"#),
            format!(r#"{{"$float": "{long}"}}"#),
            format!(
                r#"{{"$uuid": {{"uuid": "{:032}", "is_safe": "{long}"}}}}"#,
                1
            ),
            format!(r#"{{"$time": {{"iso": "10:00", "{long}": 1}}}}"#),
            format!(r#"{{"$decimal": "{long}"}}"#),
            format!(r#"{{"$datetime": "{long}"}}"#),
            format!(r#"{{"$timedelta": "{long}"}}"#),
        ] {
            let Err(JsonError::Form(message)) = from_json(&text) else {
                panic!("{}: not refused", &text[..20]);
            };
            assert!(message.len() < 300, "{}", &message[..200]);
            assert!(message.starts_with('$'), "{}", &message[..200]);
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
                ("b".to_string(), Value::List(vec![Value::I64(1)])),
            ]
        );
        assert!(matches!(object_from_json("[1]"), Err(JsonError::Form(_))));
        let set = Value::Set(set_of(&[1, 2]));
        assert_eq!(
            from_json(&to_json(&set)),
            Ok(Value::List(vec![Value::I64(1), Value::I64(2)]))
        );
    }
}
