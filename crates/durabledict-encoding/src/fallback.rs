//! [`Fallback`]: read data written in an old encoding while writing a new one.

use durabledict_core::{BoxError, Encoding};

use crate::error::DecodeError;

/// Decodes with `New`, and with `Old` when `New` fails; always encodes with `New`.
///
/// For moving a store from one encoding to another without a flag day: values already stored
/// in the old encoding keep reading, and every value written from now on is in the new one.
/// (Python durabledict had this idea too, but its decode path called encode, so it never
/// worked.) `New` must fail on data in the old encoding, not misread it: [`Json`](crate::Json)
/// before [`Pickle`](crate::Pickle) is safe, because base64 text is not JSON, but
/// [`Raw`](crate::Raw) accepts anything and must never come first.
///
/// When both fail, the error ([`DecodeError::Fallback`]) carries and mentions both errors.
///
/// ```
/// use durabledict_encoding::{Encoding, Fallback, Json, Pickle};
/// use serde_json::{Value, json};
///
/// let migrating = Fallback::new(Json::<Value>::new(), Pickle::<Value>::new());
///
/// // A value Python durabledict pickled: {"on": True}, protocol 4.
/// let old = b"gASVCgAAAAAAAAB9lIwCb26UiHMu\n";
/// assert_eq!(migrating.decode(old)?, json!({"on": true}));
/// // Written from now on as JSON, and read back as JSON.
/// let new = migrating.encode(&json!({"on": false}))?;
/// assert_eq!(new, br#"{"on":false}"#);
/// assert_eq!(migrating.decode(&new)?, json!({"on": false}));
///
/// let err = migrating.decode(b"%%%").unwrap_err();
/// assert!(err.to_string().contains("invalid JSON"), "{err}");
/// assert!(err.to_string().contains("not valid base64"), "{err}");
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fallback<New, Old> {
    new: New,
    old: Old,
}

/// Which encoding of a [`Fallback`] decoded a value.
///
/// ```
/// use durabledict_encoding::{Fallback, Json, Origin, Pickle};
///
/// let migrating = Fallback::new(Json::<i64>::new(), Pickle::<i64>::new());
/// assert_eq!(migrating.decode_with_origin(b"7")?, (7, Origin::New));
/// assert_eq!(migrating.decode_with_origin(b"gANLBy4=\n")?, (7, Origin::Old));
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The new encoding: this value needs no migration.
    New,
    /// The old encoding: writing this value again stores it in the new one.
    Old,
}

impl<New, Old> Fallback<New, Old> {
    /// Encodes with `new`; decodes with `new`, then with `old`.
    ///
    /// ```
    /// use durabledict_encoding::{Fallback, Json, Pickle};
    ///
    /// let migrating = Fallback::new(Json::<String>::new(), Pickle::<String>::new());
    /// # let _ = migrating;
    /// ```
    pub fn new(new: New, old: Old) -> Self {
        Fallback { new, old }
    }

    /// The encoding that writes, and is tried first.
    pub fn new_encoding(&self) -> &New {
        &self.new
    }

    /// The encoding tried when the new one fails.
    pub fn old_encoding(&self) -> &Old {
        &self.old
    }

    /// Decodes, and tells which encoding succeeded, to find values still to migrate.
    pub fn decode_with_origin<V>(&self, bytes: &[u8]) -> Result<(V, Origin), BoxError>
    where
        New: Encoding<V>,
        Old: Encoding<V>,
    {
        let new = match self.new.decode(bytes) {
            Ok(value) => return Ok((value, Origin::New)),
            Err(new) => new,
        };
        match self.old.decode(bytes) {
            Ok(value) => Ok((value, Origin::Old)),
            Err(old) => Err(Box::new(DecodeError::Fallback { new, old })),
        }
    }
}

impl<V, New: Encoding<V>, Old: Encoding<V>> Encoding<V> for Fallback<New, Old> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        self.new.encode(value)
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        self.decode_with_origin(bytes).map(|(value, _)| value)
    }
}
