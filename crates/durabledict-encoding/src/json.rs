//! [`Json`]: values as UTF-8 JSON text, like Python durabledict's `JSONEncoding`.

use std::fmt;
use std::marker::PhantomData;

use durabledict_core::{BoxError, Encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Dynamic;
use crate::error::{DecodeError, EncodeError};
use crate::json_value;

/// Stores values as compact UTF-8 JSON text (`serde_json`), readable by Python durabledict's
/// `JSONEncoding` and by anything else that reads JSON.
///
/// `V` is any serde type. Decoding reads what Python's `json.dumps` writes, `\uXXXX` escapes
/// and its non-standard `NaN`, `Infinity` and `-Infinity` included, and refuses containers
/// nested more than 128 deep (`serde_json`'s limit). Through serde, an integer beyond 64 bits
/// reads as a float into `serde_json::Value` (whose numbers are 64-bit), and a NaN or
/// infinite float is written as `null` (`serde_json`'s choice). For values of any shape read
/// and written exactly, Python's way, use [`DynamicJson`].
///
/// (`serde_json`'s `arbitrary_precision` feature would keep big integers in
/// `serde_json::Value`, but cargo enables a feature for the whole build, and with it every
/// `serde_json::Number` serializes to any other format as a one-key map: a
/// `Pickle<serde_json::Value>` would store `{"$serde_json::private::Number": "1"}` for `1`.)
///
/// ```
/// use durabledict_encoding::{Encoding, Json};
/// use serde_json::{Value, json};
///
/// let json = Json::<Value>::new();
/// let stored = json.encode(&json!({"on": true, "name": "☃"}))?;
/// assert_eq!(stored, r#"{"name":"☃","on":true}"#.as_bytes());
///
/// // What Python's json.dumps writes reads back too.
/// let python = br#"{"name": "\u2603", "on": true}"#;
/// assert_eq!(json.decode(python)?, json!({"on": true, "name": "☃"}));
///
/// let err = json.decode(b"{\"on\": tru}").unwrap_err();
/// let message = durabledict_core::Report(&*err).to_string();
/// assert!(message.starts_with("invalid JSON: expected ident at line 1"), "{message}");
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
pub struct Json<V> {
    value: PhantomData<fn() -> V>,
}

impl<V> Json<V> {
    /// The JSON encoding.
    ///
    /// ```
    /// use durabledict_encoding::{Encoding, Json};
    ///
    /// assert_eq!(Json::<Vec<u8>>::new().encode(&vec![1, 2])?, b"[1,2]");
    /// # Ok::<(), durabledict_encoding::BoxError>(())
    /// ```
    pub fn new() -> Self {
        Json { value: PhantomData }
    }
}

impl<V: Serialize + DeserializeOwned> Encoding<V> for Json<V> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(serde_json::to_vec(value).map_err(EncodeError::Json)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        match serde_json::from_slice(bytes) {
            Ok(value) => Ok(value),
            // Python's `NaN` and `Infinity` are not JSON: such text is read Python's way.
            Err(e) => match json_value::parse(bytes) {
                Ok(value) if e.is_syntax() => Ok(serde_pickle::from_value(value)
                    .map_err(|e| DecodeError::Json(serde::de::Error::custom(e)))?),
                _ => Err(Box::new(DecodeError::Json(e))),
            },
        }
    }
}

/// [`Json`] for values of any shape: encodes [`PickleValue`](crate::PickleValue) exactly as
/// Python's `json` module reads and writes it.
///
/// - Integers keep every digit both ways (Python's `2**200` reads as
///   [`PickleValue::Int`](crate::PickleValue::Int) and is written as its 61 digits).
/// - `NaN`, `Infinity` and `-Infinity`, which Python's `json.dumps` writes by default, read as
///   floats, and such floats are written as those tokens (what Python writes and reads back;
///   strict JSON parsers refuse them, as they refuse Python's own output).
/// - Tuples, sets and frozensets are written as arrays (read back as lists, as in Python);
///   bytes and dicts with keys other than strings have no JSON form and are refused with
///   [`EncodeError::Json`].
/// - A lone surrogate escape (`"\ud800"`, which Python writes for `'\ud800'`) reads as
///   U+10F800 + k and is written back as the escape, as [`Surrogates::PrivateUse`](crate::Surrogates)
///   does for pickles.
///
/// Output is compact (`[1,2]`); input may have any whitespace. Text holding a lone high
/// surrogate right before a lone low one is written as `"\ud800\udc00"`, which reads back (in
/// Python too) as the one character U+10000.
///
/// ```
/// use durabledict_encoding::{DynamicJson, Encoding, PickleValue};
///
/// let json = DynamicJson::new();
/// // json.dumps([2**200, float("nan")]) in Python:
/// let python = b"[1606938044258990275541962092341162602522202993782792835301376, NaN]";
/// let value = json.decode(python)?;
/// let PickleValue::List(items) = &value else { panic!() };
/// assert_eq!(items[0], PickleValue::Int(num_bigint::BigInt::from(2).pow(200)));
/// assert!(matches!(items[1], PickleValue::F64(f) if f.is_nan()));
/// assert_eq!(
///     json.encode(&value)?,
///     b"[1606938044258990275541962092341162602522202993782792835301376,NaN]"
/// );
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
pub type DynamicJson = Json<Dynamic>;

impl Encoding<serde_pickle::Value> for Json<Dynamic> {
    fn encode(&self, value: &serde_pickle::Value) -> Result<Vec<u8>, BoxError> {
        Ok(json_value::write(value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<serde_pickle::Value, BoxError> {
        Ok(json_value::parse(bytes)?)
    }
}

/// [`Json`] for [`Value`](crate::Value), as [`DynamicJson`] writes and reads the builtins:
/// the standard library types (`datetime`, `Decimal`, `UUID`, `complex`) have no JSON form, in
/// Python's `json` either, and are refused naming their type. What it reads is only builtins.
///
/// ```
/// use durabledict_encoding::{Date, Encoding, Json, Value};
///
/// let json = Json::<Value>::new();
/// let list = Value::List(vec![Value::I64(1), Value::String("☃".into())]);
/// assert_eq!(json.encode(&list)?, "[1,\"☃\"]".as_bytes());
/// assert_eq!(json.decode(b"[1, \"\\u2603\"]")?, list);
/// let date = Value::Date(Date::new(2026, 12, 1)?);
/// let err = json.encode(&date).unwrap_err();
/// let message = durabledict_core::Report(&*err).to_string();
/// assert!(message.contains("datetime.date has no JSON form"), "{message}");
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
impl Encoding<crate::Value> for Json<crate::Value> {
    fn encode(&self, value: &crate::Value) -> Result<Vec<u8>, BoxError> {
        Ok(json_value::write(value)?)
    }

    fn decode(&self, bytes: &[u8]) -> Result<crate::Value, BoxError> {
        Ok(json_value::parse(bytes)?.into())
    }
}

impl<V> Default for Json<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Clone for Json<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Json<V> {}

impl<V> PartialEq for Json<V> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<V> Eq for Json<V> {}

impl<V> fmt::Debug for Json<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Json")
            .field("value", &std::any::type_name::<V>())
            .finish()
    }
}
