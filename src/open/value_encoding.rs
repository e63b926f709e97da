//! [`ValueEncoding`]: an encoding of arbitrary Python values chosen by name at run time.

use std::fmt;
use std::str::FromStr;

use durabledict_core::{BoxError, Encoding};
use durabledict_encoding::{DynamicJson, DynamicPickle};

use crate::PickleValue;

/// How [`open`](crate::open) stores values, chosen at run time (`"pickle"`, `"json"`,
/// `"raw"`), for a dict of [`PickleValue`]s.
///
/// - `Pickle`: [`DynamicPickle`], Python durabledict's default; every Python value.
/// - `Json`: UTF-8 JSON text, like Python's `JSONEncoding` ([`DynamicJson`]): integers keep
///   every digit both ways, `NaN` / `Infinity` / `-Infinity` are read and written as Python's
///   `json` does, tuples and sets are written as arrays; bytes and dicts with non-string keys
///   have no JSON form and are refused.
/// - `Raw`: the bytes as they are, like Python's `NoOpEncoding`; a string is written as UTF-8.
///   A stored value reads as a string when it is UTF-8, as bytes otherwise. Only strings and
///   bytes can be written.
///
/// ```
/// use durabledict::{Encoding, PickleValue, ValueEncoding};
///
/// let json: ValueEncoding = "json".parse()?;
/// let list = PickleValue::List(vec![PickleValue::I64(1), PickleValue::String("☃".into())]);
/// assert_eq!(json.encode(&list)?, "[1,\"☃\"]".as_bytes());
/// assert_eq!(json.decode(b"[1, \"\\u2603\"]")?, list);
/// assert!(json.encode(&PickleValue::Bytes(vec![0xff])).is_err());
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

impl Encoding<PickleValue> for ValueEncoding {
    fn encode(&self, value: &PickleValue) -> Result<Vec<u8>, BoxError> {
        match self {
            ValueEncoding::Pickle => DynamicPickle::new().encode(value),
            ValueEncoding::Json => DynamicJson::new().encode(value),
            ValueEncoding::Raw => match value {
                PickleValue::String(s) => Ok(s.as_bytes().to_vec()),
                PickleValue::Bytes(b) => Ok(b.clone()),
                other => Err(format!(
                    "the raw encoding stores strings and bytes only, not {}",
                    type_name(other)
                )
                .into()),
            },
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<PickleValue, BoxError> {
        match self {
            ValueEncoding::Pickle => DynamicPickle::new().decode(bytes),
            ValueEncoding::Json => DynamicJson::new().decode(bytes),
            ValueEncoding::Raw => Ok(match std::str::from_utf8(bytes) {
                Ok(text) => PickleValue::String(text.to_owned()),
                Err(_) => PickleValue::Bytes(bytes.to_vec()),
            }),
        }
    }
}

/// The Python type name of a value, for messages.
fn type_name(value: &PickleValue) -> &'static str {
    match value {
        PickleValue::None => "None",
        PickleValue::Bool(_) => "bool",
        PickleValue::I64(_) | PickleValue::Int(_) => "int",
        PickleValue::F64(_) => "float",
        PickleValue::Bytes(_) => "bytes",
        PickleValue::String(_) => "str",
        PickleValue::List(_) => "list",
        PickleValue::Tuple(_) => "tuple",
        PickleValue::Set(_) => "set",
        PickleValue::FrozenSet(_) => "frozenset",
        PickleValue::Dict(_) => "dict",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::PickleHashableValue;

    fn s(text: &str) -> PickleValue {
        PickleValue::String(text.into())
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
        dict.insert(PickleHashableValue::String("b".into()), PickleValue::None);
        dict.insert(
            PickleHashableValue::String("a".into()),
            PickleValue::Tuple(vec![PickleValue::F64(1.5), PickleValue::Bool(true)]),
        );
        let value = PickleValue::Dict(dict);
        let json = ValueEncoding::Json;
        let bytes = json.encode(&value).unwrap();
        assert_eq!(bytes, br#"{"a":[1.5,true],"b":null}"#);
        let back = json.decode(&bytes).unwrap();
        let PickleValue::Dict(back) = back else {
            panic!("{back:?}")
        };
        assert_eq!(
            back[&PickleHashableValue::String("a".into())],
            PickleValue::List(vec![PickleValue::F64(1.5), PickleValue::Bool(true)])
        );
        let big = PickleValue::Int(u64::MAX.into());
        assert_eq!(json.encode(&big).unwrap(), u64::MAX.to_string().as_bytes());
        assert_eq!(json.decode(u64::MAX.to_string().as_bytes()).unwrap(), big);
    }

    #[test]
    fn json_refuses_what_has_no_json_form() {
        let json = ValueEncoding::Json;
        for value in [
            PickleValue::Bytes(b"x".to_vec()),
            PickleValue::Dict(BTreeMap::from([(
                PickleHashableValue::I64(1),
                PickleValue::None,
            )])),
        ] {
            let err = json.encode(&value).unwrap_err();
            assert!(err.to_string().contains("no JSON form"), "{value:?}: {err}");
        }
    }

    /// Python's `json.dumps(2**200)`, `json.dumps(float("nan"))` and friends round-trip
    /// exactly (issue: integers beyond 64 bits came back as floats, NaN was refused).
    #[test]
    fn json_keeps_big_integers_and_non_finite_floats() {
        let json = ValueEncoding::Json;
        let big = "1606938044258990275541962092341162602522202993782792835301376";
        let value = json.decode(big.as_bytes()).unwrap();
        assert!(matches!(value, PickleValue::Int(_)), "{value:?}");
        assert_eq!(json.encode(&value).unwrap(), big.as_bytes());
        for token in ["NaN", "Infinity", "-Infinity"] {
            let value = json.decode(token.as_bytes()).unwrap();
            assert!(matches!(value, PickleValue::F64(_)), "{value:?}");
            assert_eq!(json.encode(&value).unwrap(), token.as_bytes());
        }
    }

    #[test]
    fn raw_keeps_bytes_and_text() {
        let raw = ValueEncoding::Raw;
        assert_eq!(raw.encode(&s("on")).unwrap(), b"on");
        assert_eq!(raw.decode(b"on").unwrap(), s("on"));
        assert_eq!(
            raw.decode(&[0xff, 0]).unwrap(),
            PickleValue::Bytes(vec![0xff, 0])
        );
        let err = raw.encode(&PickleValue::I64(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the raw encoding stores strings and bytes only, not int"
        );
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
