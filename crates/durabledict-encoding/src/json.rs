//! [`Json`]: values as UTF-8 JSON text, like Python durabledict's `JSONEncoding`.

use std::fmt;
use std::marker::PhantomData;

use durabledict_core::{BoxError, Encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{DecodeError, EncodeError};

/// Stores values as compact UTF-8 JSON text (`serde_json`), readable by Python durabledict's
/// `JSONEncoding` and by anything else that reads JSON.
///
/// `V` is any serde type; `serde_json::Value` holds values of any shape. Decoding reads what
/// Python's `json.dumps` writes (`\uXXXX` escapes included) except its non-standard `NaN` and
/// `Infinity`, and refuses containers nested more than 128 deep (`serde_json`'s limit).
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
/// assert!(err.to_string().starts_with("invalid JSON: expected ident at line 1"), "{err}");
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
        Ok(serde_json::from_slice(bytes).map_err(DecodeError::Json)?)
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
