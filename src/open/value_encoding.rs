//! [`ValueEncoding`]: an encoding of arbitrary Python values chosen by name at run time.

use std::fmt;
use std::str::FromStr;

use durabledict_core::{BoxError, Encoding};
use durabledict_encoding::{Json, Pickle};

use crate::Value;

/// How [`open`](crate::open) stores values, chosen at run time (`"pickle"`, `"json"`,
/// `"raw"`), for a dict of [`Value`]s.
///
/// - `Pickle`: [`Pickle<Value>`](Pickle), Python durabledict's default; every builtin Python
///   value and the allowed standard library types (`datetime`'s, `Decimal`, `UUID`,
///   `complex`), each written back as the same Python type. Any other class is refused when
///   decoding, which in a dict poisons only that key.
/// - `Json`: UTF-8 JSON text, like Python's `JSONEncoding`
///   ([`DynamicJson`](crate::DynamicJson)): integers keep every digit both ways, `NaN` / `Infinity` / `-Infinity` are read and written as Python's
///   `json` does, tuples and sets are written as arrays; bytes, dicts with non-string keys and
///   the standard library types have no JSON form and are refused (Python's `json` refuses
///   them too). ([`Json<Value>`](Json), as [`DynamicJson`](crate::DynamicJson) for the
///   builtins.)
/// - `Raw`: the bytes as they are, like Python's `NoOpEncoding`; a string is written as UTF-8.
///   A stored value reads as a string when it is UTF-8, as bytes otherwise. Only strings and
///   bytes can be written.
///
/// ```
/// use durabledict::{Date, Encoding, Value, ValueEncoding};
///
/// let json: ValueEncoding = "json".parse()?;
/// let list = Value::List(vec![Value::I64(1), Value::String("☃".into())]);
/// assert_eq!(json.encode(&list)?, "[1,\"☃\"]".as_bytes());
/// assert_eq!(json.decode(b"[1, \"\\u2603\"]")?, list);
/// assert!(json.encode(&Value::Bytes(vec![0xff])).is_err());
///
/// let pickle = ValueEncoding::Pickle;
/// let date = Value::Date(Date::new(2026, 12, 1)?);
/// assert_eq!(pickle.decode(&pickle.encode(&date)?)?, date);
/// assert!(json.encode(&date).is_err());
/// # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueEncoding {
    /// Base64 of a pickle, as Python durabledict stores values by default.
    #[default]
    Pickle,
    /// JSON text.
    Json,
    /// The bytes themselves.
    Raw,
}

impl ValueEncoding {
    /// Its name: `pickle`, `json` or `raw`.
    pub fn name(self) -> &'static str {
        match self {
            ValueEncoding::Pickle => "pickle",
            ValueEncoding::Json => "json",
            ValueEncoding::Raw => "raw",
        }
    }
}

impl fmt::Display for ValueEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An encoding name that is none of `pickle`, `json`, `raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEncoding(pub String);

impl fmt::Display for UnknownEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown encoding {:?}; expected pickle, json or raw",
            self.0
        )
    }
}

impl std::error::Error for UnknownEncoding {}

impl FromStr for ValueEncoding {
    type Err = UnknownEncoding;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pickle" => Ok(ValueEncoding::Pickle),
            "json" => Ok(ValueEncoding::Json),
            "raw" => Ok(ValueEncoding::Raw),
            _ => Err(UnknownEncoding(s.to_owned())),
        }
    }
}

impl Encoding<Value> for ValueEncoding {
    fn encode(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        match self {
            ValueEncoding::Pickle => Pickle::<Value>::new().encode(value),
            ValueEncoding::Json => Json::<Value>::new().encode(value),
            ValueEncoding::Raw => match value {
                Value::String(s) => Ok(s.as_bytes().to_vec()),
                Value::Bytes(b) => Ok(b.clone()),
                other => Err(format!(
                    "the raw encoding stores strings and bytes only, not {}",
                    other.type_name()
                )
                .into()),
            },
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        match self {
            ValueEncoding::Pickle => Pickle::<Value>::new().decode(bytes),
            ValueEncoding::Json => Json::<Value>::new().decode(bytes),
            ValueEncoding::Raw => Ok(match std::str::from_utf8(bytes) {
                Ok(text) => Value::String(text.to_owned()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::HashableValue;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn names_parse_and_print() {
        for encoding in [
            ValueEncoding::Pickle,
            ValueEncoding::Json,
            ValueEncoding::Raw,
        ] {
            assert_eq!(encoding.to_string().parse::<ValueEncoding>(), Ok(encoding));
        }
        assert_eq!("JSON".parse::<ValueEncoding>(), Ok(ValueEncoding::Json));
        let err = "yaml".parse::<ValueEncoding>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown encoding \"yaml\"; expected pickle, json or raw"
        );
    }

    #[test]
    fn json_writes_what_python_writes() {
        let mut dict = BTreeMap::new();
        dict.insert(HashableValue::String("b".into()), Value::None);
        dict.insert(
            HashableValue::String("a".into()),
            Value::Tuple(vec![Value::F64(1.5), Value::Bool(true)]),
        );
        let value = Value::Dict(dict);
        let json = ValueEncoding::Json;
        let bytes = json.encode(&value).unwrap();
        assert_eq!(bytes, br#"{"a":[1.5,true],"b":null}"#);
        let back = json.decode(&bytes).unwrap();
        let Value::Dict(back) = back else {
            panic!("{back:?}")
        };
        assert_eq!(
            back[&HashableValue::String("a".into())],
            Value::List(vec![Value::F64(1.5), Value::Bool(true)])
        );
        let big = Value::Int(u64::MAX.into());
        assert_eq!(json.encode(&big).unwrap(), u64::MAX.to_string().as_bytes());
        assert_eq!(json.decode(u64::MAX.to_string().as_bytes()).unwrap(), big);
    }

    #[test]
    fn json_refuses_what_has_no_json_form() {
        let json = ValueEncoding::Json;
        for value in [
            Value::Bytes(b"x".to_vec()),
            Value::Dict(BTreeMap::from([(HashableValue::I64(1), Value::None)])),
        ] {
            let err = json.encode(&value).unwrap_err();
            assert!(
                crate::Report(&*err).to_string().contains("no JSON form"),
                "{value:?}: {err}"
            );
        }
    }

    /// Python's `json.dumps(2**200)`, `json.dumps(float("nan"))` and friends round-trip
    /// exactly (issue: integers beyond 64 bits came back as floats, NaN was refused).
    #[test]
    fn json_keeps_big_integers_and_non_finite_floats() {
        let json = ValueEncoding::Json;
        let big = "1606938044258990275541962092341162602522202993782792835301376";
        let value = json.decode(big.as_bytes()).unwrap();
        assert!(matches!(value, Value::Int(_)), "{value:?}");
        assert_eq!(json.encode(&value).unwrap(), big.as_bytes());
        for token in ["NaN", "Infinity", "-Infinity"] {
            let value = json.decode(token.as_bytes()).unwrap();
            assert!(matches!(value, Value::F64(_)), "{value:?}");
            assert_eq!(json.encode(&value).unwrap(), token.as_bytes());
        }
    }

    /// Python's `json` has no form for a `datetime` or a `Decimal` either: refused, naming it.
    #[test]
    fn json_refuses_the_standard_library_types_naming_them() {
        let json = ValueEncoding::Json;
        let uuid = Value::Uuid(crate::Uuid::new(1));
        let nested = Value::List(vec![Value::I64(1), Value::Tuple(vec![uuid])]);
        let err = json.encode(&nested).unwrap_err();
        let err = crate::Report(&*err).to_string();
        assert!(err.contains("uuid.UUID has no JSON form"), "{err}");
    }

    #[test]
    fn raw_keeps_bytes_and_text() {
        let raw = ValueEncoding::Raw;
        assert_eq!(raw.encode(&s("on")).unwrap(), b"on");
        assert_eq!(raw.decode(b"on").unwrap(), s("on"));
        assert_eq!(raw.decode(&[0xff, 0]).unwrap(), Value::Bytes(vec![0xff, 0]));
        let err = raw.encode(&Value::I64(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the raw encoding stores strings and bytes only, not int"
        );
    }

    /// A Python `datetime` is a value, not an error (it used to poison its key).
    #[test]
    fn pickle_reads_the_standard_library_types() {
        // base64.encodebytes(pickle.dumps(datetime.datetime(2026, 12, 1, 10, 0, 0, 250000,
        //     tzinfo=datetime.timezone(datetime.timedelta(hours=1))), 5))
        let stored = b"gAWVWAAAAAAAAACMCGRhdGV0aW1llIwIZGF0ZXRpbWWUk5RDCgfqDAEKAAAD0JCUaACMCHRpbWV6\nb25llJOUaACMCXRpbWVkZWx0YZSTlEsATRAOSwCHlFKUhZRSlIaUUpQu\n";
        let value = ValueEncoding::Pickle.decode(stored).unwrap();
        let Value::DateTime(at) = &value else {
            panic!("{value:?}")
        };
        assert_eq!(at.to_string(), "2026-12-01T10:00:00.250000+01:00");
    }

    #[test]
    fn pickle_is_python_durabledicts_format() {
        let pickle = ValueEncoding::Pickle;
        // base64.encodebytes(pickle.dumps("hello", 3))
        assert_eq!(
            pickle.decode(b"gANYBQAAAGhlbGxvcQAu\n").unwrap(),
            s("hello")
        );
        let stored = pickle.encode(&s("hello")).unwrap();
        assert_eq!(pickle.decode(&stored).unwrap(), s("hello"));
    }
}
