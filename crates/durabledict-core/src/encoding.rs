//! The [`Encoding`] trait: how values become bytes in the store and back.

use std::fmt;

use crate::error::BoxError;

/// Turns values into the bytes a [`Store`](crate::Store) holds and back.
///
/// Errors are the encoding's own; the dict wraps them in
/// [`Error::Encode`](crate::Error::Encode) / [`Error::Decode`](crate::Error::Decode) with the
/// key they concern. Decoding must never execute anything found in the bytes.
///
/// # Example
///
/// ```
/// use durabledict_core::{BoxError, Encoding};
///
/// #[derive(Debug)]
/// struct Utf8;
///
/// impl Encoding<String> for Utf8 {
///     fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
///         Ok(value.as_bytes().to_vec())
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
///         Ok(String::from_utf8(bytes.to_vec())?)
///     }
/// }
///
/// assert_eq!(Utf8.decode(&Utf8.encode(&"☃".to_string())?)?, "☃");
/// # Ok::<(), BoxError>(())
/// ```
pub trait Encoding<V>: Send + Sync + fmt::Debug {
    /// Encodes `value` into the bytes to store.
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError>;
    /// Decodes stored bytes into a value.
    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError>;
}

impl<V, T: Encoding<V> + ?Sized> Encoding<V> for std::sync::Arc<T> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        (**self).encode(value)
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        (**self).decode(bytes)
    }
}

impl<V, T: Encoding<V> + ?Sized> Encoding<V> for Box<T> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        (**self).encode(value)
    }
    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        (**self).decode(bytes)
    }
}

/// Stores values as they are: `Vec<u8>` as bytes, `String` as its UTF-8 bytes (decoding
/// refuses bytes that are not UTF-8).
///
/// Python durabledict's `NoOpEncoding`, for data other programs write as plain text.
///
/// ```
/// use durabledict_core::{Encoding, Raw};
///
/// assert_eq!(Raw.encode(&"on".to_string())?, b"on");
/// assert!(<Raw as Encoding<String>>::decode(&Raw, &[0xff]).is_err());
/// # Ok::<(), durabledict_core::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Raw;

impl Encoding<Vec<u8>> for Raw {
    fn encode(&self, value: &Vec<u8>) -> Result<Vec<u8>, BoxError> {
        Ok(value.clone())
    }
    fn decode(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.to_vec())
    }
}

impl Encoding<String> for Raw {
    fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
        Ok(value.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}
