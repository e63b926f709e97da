//! [`ValueEncoding`]: an encoding of arbitrary Python values chosen by name at run time.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use durabledict_core::{BoxError, Encoding};
use durabledict_encoding::{DynamicPickle, Json};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::{PickleHashableValue, PickleValue};

/// How [`open`](crate::open) stores values, chosen at run time (`"pickle"`, `"json"`,
/// `"raw"`), for a dict of [`PickleValue`]s.
///
/// - `Pickle`: [`DynamicPickle`], Python durabledict's default; every Python value.
/// - `Json`: UTF-8 JSON text, like Python's `JSONEncoding`. Tuples and sets are written as
///   arrays; bytes, dicts with non-string keys, NaN and infinities, and integers beyond 128
///   bits have no JSON form and are refused. Integers beyond 64 bits read back as floats.
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
            // Json<V> takes an owned V; values are small settings, so the copy is cheap.
            ValueEncoding::Json => Json::<JsonForm>::new().encode(&JsonForm(value.clone())),
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
            ValueEncoding::Json => Ok(Json::<JsonForm>::new().decode(bytes)?.0),
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

/// A value in its JSON form: what Python's `json.dumps` writes for it, and back.
struct JsonForm(PickleValue);

struct Ref<'a>(&'a PickleValue);
struct HashableRef<'a>(&'a PickleHashableValue);

impl Serialize for JsonForm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Ref(&self.0).serialize(serializer)
    }
}

fn no_json_form<E: ser::Error>(what: &str) -> E {
    E::custom(format_args!(
        "{what} has no JSON form; store it with the pickle encoding"
    ))
}

impl Serialize for Ref<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            PickleValue::None => serializer.serialize_unit(),
            PickleValue::Bool(b) => serializer.serialize_bool(*b),
            PickleValue::I64(i) => serializer.serialize_i64(*i),
            PickleValue::Int(big) => match i128::try_from(big) {
                Ok(i) => serializer.serialize_i128(i),
                Err(_) => Err(no_json_form("an integer beyond 128 bits")),
            },
            PickleValue::F64(f) if f.is_finite() => serializer.serialize_f64(*f),
            PickleValue::F64(_) => Err(no_json_form("a NaN or infinite float")),
            PickleValue::Bytes(_) => Err(no_json_form("bytes")),
            PickleValue::String(s) => serializer.serialize_str(s),
            PickleValue::List(items) | PickleValue::Tuple(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Ref(item))?;
                }
                seq.end()
            }
            PickleValue::Set(items) | PickleValue::FrozenSet(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&HashableRef(item))?;
                }
                seq.end()
            }
            PickleValue::Dict(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    let PickleHashableValue::String(key) = key else {
                        return Err(no_json_form("a dict with keys other than strings"));
                    };
                    map.serialize_entry(key, &Ref(value))?;
                }
                map.end()
            }
        }
    }
}

impl Serialize for HashableRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Ref(&self.0.clone().into_value()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JsonForm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(JsonForm)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = PickleValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<PickleValue, E> {
        Ok(PickleValue::None)
    }

    fn visit_none<E: de::Error>(self) -> Result<PickleValue, E> {
        Ok(PickleValue::None)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<PickleValue, E> {
        Ok(PickleValue::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<PickleValue, E> {
        Ok(PickleValue::I64(i))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<PickleValue, E> {
        Ok(match i64::try_from(u) {
            Ok(i) => PickleValue::I64(i),
            Err(_) => PickleValue::Int(u.into()),
        })
    }

    fn visit_i128<E: de::Error>(self, i: i128) -> Result<PickleValue, E> {
        Ok(PickleValue::Int(i.into()))
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<PickleValue, E> {
        Ok(PickleValue::Int(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<PickleValue, E> {
        Ok(PickleValue::F64(f))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<PickleValue, E> {
        Ok(PickleValue::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<PickleValue, E> {
        Ok(PickleValue::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PickleValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(JsonForm(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(PickleValue::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PickleValue, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((key, JsonForm(value))) = map.next_entry::<String, JsonForm>()? {
            entries.insert(PickleHashableValue::String(key), value);
        }
        Ok(PickleValue::Dict(entries))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
            PickleValue::F64(f64::NAN),
            PickleValue::F64(f64::INFINITY),
            PickleValue::Dict(BTreeMap::from([(
                PickleHashableValue::I64(1),
                PickleValue::None,
            )])),
        ] {
            let err = json.encode(&value).unwrap_err();
            assert!(err.to_string().contains("no JSON form"), "{value:?}: {err}");
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
