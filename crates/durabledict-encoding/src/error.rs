//! The errors of this crate's encodings: [`EncodeError`] and [`DecodeError`].

use std::fmt;

use durabledict_core::{BoxError, Report};

/// Why a value could not be encoded.
///
/// Encodings return it boxed in a [`BoxError`]; downcast to inspect it.
///
/// ```
/// use std::collections::BTreeMap;
/// use durabledict_encoding::{EncodeError, Encoding, Json};
///
/// let not_json = BTreeMap::from([((1, 2), "a tuple key".to_string())]);
/// let err = Json::new().encode(&not_json).unwrap_err();
/// assert!(matches!(err.downcast_ref::<EncodeError>(), Some(EncodeError::Json(_))));
/// assert_eq!(err.to_string(), "cannot encode the value as JSON");
/// assert_eq!(
///     durabledict_core::Report(&*err).to_string(),
///     "cannot encode the value as JSON: key must be a string"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The value cannot be written as a pickle (its `Serialize` implementation failed, or it
    /// has a shape pickle cannot hold).
    #[error("cannot pickle the value: {}", PickleCause(.0))]
    Pickle(serde_pickle::Error),
    /// The value cannot be written as JSON (for example a map whose keys are not strings).
    #[error("cannot encode the value as JSON")]
    Json(#[source] serde_json::Error),
    /// The pickle could be written but would be refused when read back (for example
    /// containers nested deeper than the decoder's limit), so it is not stored at all.
    #[error("the value would not be readable back")]
    Unreadable(#[source] Box<DecodeError>),
}

/// Why stored bytes could not be decoded.
///
/// Encodings return it boxed in a [`BoxError`]; downcast to tell a hostile pickle
/// ([`Refused`](Self::Refused)) from damaged data.
///
/// ```
/// use durabledict_encoding::{DecodeError, DynamicPickle, Encoding};
///
/// // base64 of the pickle `cos\nsystem\n(S'echo pwned'\ntR.`
/// let exploit = b"Y29zCnN5c3RlbQooUydlY2hvIHB3bmVkJwp0Ui4=\n";
/// let err = DynamicPickle::new().decode(exploit).unwrap_err();
/// match err.downcast_ref::<DecodeError>() {
///     Some(DecodeError::Refused { opcode, offset, reason }) => {
///         assert_eq!((*opcode, *offset), ("GLOBAL", 0));
///         assert!(reason.starts_with("globals are not allowed: os.system"));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(matches!(
///     DynamicPickle::new().decode(b"not base64!").unwrap_err().downcast_ref(),
///     Some(DecodeError::Base64(_))
/// ));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not base64 (pickles are stored base64-encoded, as Python durabledict
    /// does).
    #[error("not valid base64")]
    Base64(#[source] BoxError),
    /// The pickle asks for something that decoding would have to execute or look up in the
    /// running program (a global such as `os.system`, a class instance, a persistent id).
    /// Nothing was executed; such a pickle is never decoded.
    #[error("pickle opcode {opcode} at offset {offset} refused: {reason}")]
    Refused {
        /// The opcode's name, as Python's `pickletools` spells it (`GLOBAL`, `INST` ...).
        opcode: &'static str,
        /// Its offset in the pickle (after base64 decoding).
        offset: usize,
        /// Why it is refused.
        reason: String,
    },
    /// The pickle is damaged or is not a pickle (an unknown opcode, a truncated argument, a
    /// stack underflow).
    #[error("malformed pickle at offset {offset}: {reason}")]
    Malformed {
        /// Where in the pickle (after base64 decoding) the problem was found.
        offset: usize,
        /// What is wrong.
        reason: String,
    },
    /// The pickle is well formed but holds text the requested options cannot represent in a
    /// Rust `String` exactly (a Python 2 `str` that is not UTF-8, a lone surrogate): see
    /// [`Python2Str`](crate::Python2Str) and [`Surrogates`](crate::Surrogates).
    #[error("pickle text at offset {offset} cannot be represented: {reason}")]
    Unrepresentable {
        /// The offset of the opcode in the pickle (after base64 decoding).
        offset: usize,
        /// What the text holds, and the option that reads it.
        reason: String,
    },
    /// The pickle would decode into something too large or too deeply nested to build
    /// safely (the checks that stop a few kilobytes from expanding into gigabytes).
    #[error("pickle exceeds a decoding limit: {0}")]
    Limit(String),
    /// The pickle is well formed and safe but its contents do not fit the requested type (or a
    /// dict key or set member is of an unhashable type).
    #[error("cannot unpickle: {}", PickleCause(.0))]
    Pickle(serde_pickle::Error),
    /// The bytes are not JSON, or not JSON of the requested shape.
    #[error("invalid JSON")]
    Json(#[source] serde_json::Error),
    /// A [`Fallback`](crate::Fallback) encoding could decode the bytes with neither of its
    /// encodings.
    // Two causes, so neither is the source: the message says each whole chain.
    #[error(
        "cannot decode with the new encoding ({}) nor with the old one ({})",
        Report(&**new),
        Report(&**old)
    )]
    Fallback {
        /// The new encoding's error.
        new: BoxError,
        /// The old encoding's error.
        old: BoxError,
    },
}

/// A serde-pickle error without its own prefix, which says "decoding error" even when
/// encoding, and with the offset of the opcode at fault. The `Pickle` variants show it in
/// their message instead of returning the serde-pickle error as their source, whose own words
/// would mislead (the error stays in the variant's field).
struct PickleCause<'a>(&'a serde_pickle::Error);

impl fmt::Display for PickleCause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            serde_pickle::Error::Syntax(code) => write!(f, "{code}"),
            // serde-pickle counts the bytes read, so the opcode at fault is the one before.
            serde_pickle::Error::Eval(code, read) => write!(f, "{code} (after {read} bytes)"),
            other => write!(f, "{other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that no level of `error`'s chain shows the text of its source: the chain
    /// reporter shows it.
    fn assert_no_level_repeats_its_source(error: &(dyn std::error::Error + 'static)) {
        let mut level = error;
        while let Some(source) = level.source() {
            let (text, below) = (level.to_string(), source.to_string());
            assert!(
                !text.contains(&below),
                "{text:?} repeats its source {below:?}"
            );
            level = source;
        }
    }

    fn json_error() -> serde_json::Error {
        serde_json::from_str::<i32>("x").expect_err("x is not JSON")
    }

    #[test]
    fn no_level_repeats_its_source() {
        let base64 = || DecodeError::Base64("invalid byte 33, offset 0".into());
        let sourced: [&(dyn std::error::Error + 'static); 4] = [
            &EncodeError::Json(json_error()),
            &EncodeError::Unreadable(Box::new(base64())),
            &base64(),
            &DecodeError::Json(json_error()),
        ];
        for error in sourced {
            assert!(error.source().is_some(), "{error:?}");
            assert_no_level_repeats_its_source(error);
        }
    }

    /// serde-pickle's own words would mislead ("decoding error" when encoding): the message
    /// says them reworded, and the error is not a source as well.
    #[test]
    fn a_pickle_error_is_said_once_in_the_message() {
        let error = EncodeError::Pickle(serde_pickle::Error::Syntax(
            serde_pickle::ErrorCode::Recursive,
        ));
        assert_eq!(
            error.to_string(),
            "cannot pickle the value: recursive structure found"
        );
        assert!(std::error::Error::source(&error).is_none());
        assert_eq!(durabledict_core::Report(&error).levels().len(), 1);
    }
}
