//! The error types: [`Error`] for dict operations, [`StoreError`] for backends.

use std::fmt;

/// A boxed error from a backend client or an encoding.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store, as far as the dict needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The server could not be reached or went away (connect, I/O, timeout). Retrying later
    /// may succeed.
    Unavailable,
    /// The store refused the operation (a value over its limit, a constraint, permissions).
    Rejected,
    /// The store held something unexpected (a stamp that is not an integer, a bad schema).
    Corrupt,
    /// Anything else.
    Other,
}

/// An error from a [`Store`](crate::Store) or [`Stamp`](crate::Stamp), carrying the backend
/// client's own error as its source.
///
/// Like every error of durabledict, its message does not repeat its source: it says the kind
/// (`Unavailable`), and [`source`](std::error::Error::source) returns the backend's error.
/// Print the whole chain with [`Report`] (or any chain reporter: anyhow, eyre).
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}")]
pub struct StoreError {
    kind: StoreErrorKind,
    #[source]
    source: BoxError,
}

impl StoreError {
    /// Wraps a backend error with its kind.
    pub fn new(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError {
            kind,
            source: source.into(),
        }
    }

    /// The server could not be reached or went away.
    pub fn unavailable(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Unavailable, source)
    }

    /// The store refused the operation.
    pub fn rejected(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Rejected, source)
    }

    /// The store held something unexpected.
    pub fn corrupt(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Corrupt, source)
    }

    /// Any other failure.
    pub fn other(source: impl Into<BoxError>) -> Self {
        Self::new(StoreErrorKind::Other, source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The backend's own error.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.source
    }

    /// Unwraps the backend's own error.
    pub fn into_inner(self) -> BoxError {
        self.source
    }
}

/// Which dict operation an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Reading the stamp before a read.
    Check,
    /// Loading every entry.
    Load,
    /// Writing one key.
    Insert,
    /// Removing one key.
    Remove,
    /// Removing one key and returning its value.
    Pop,
    /// Inserting a key when absent.
    SetDefault,
    /// Writing a batch.
    Update,
    /// Removing every key.
    Clear,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Check => "stamp check",
            Op::Load => "load",
            Op::Insert => "insert",
            Op::Remove => "remove",
            Op::Pop => "pop",
            Op::SetDefault => "setdefault",
            Op::Update => "update",
            Op::Clear => "clear",
        })
    }
}

/// An error from a [`DurableDict`](crate::DurableDict) operation. Every variant about one key
/// names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key is not in the dict. Only [`pop`](crate::DurableDict::pop) returns it; `remove`
    /// of an absent key returns `Ok(None)`, `pop_or` its default.
    #[error("key not found: {key:?}")]
    KeyNotFound {
        /// The missing key.
        key: String,
    },
    /// The store cannot hold this key; nothing was written.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Why the store refuses it.
        reason: String,
    },
    /// The encoded value is larger than the store holds; nothing was written.
    #[error("value for key {key:?} is {len} bytes encoded, over the store's limit of {max}")]
    ValueTooLarge {
        /// The key being written.
        key: String,
        /// The encoded length.
        len: usize,
        /// The store's limit.
        max: usize,
    },
    /// The value could not be encoded; nothing was written.
    #[error("cannot encode the value for key {key:?}")]
    Encode {
        /// The key being written.
        key: String,
        /// The encoding's error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be decoded. It poisons only its key: a load leaves it out of
    /// the cache and lists it in [`Status::undecodable`](crate::Status::undecodable), every
    /// other key loads, and `get` of this key returns this error until an own write, a
    /// removal, or another program's rewrite (seen at the next reload) replaces it. `remove`,
    /// `pop` and `pop_or` of it still remove the key from the store and the cache.
    #[error("cannot decode the stored value of key {key:?}")]
    Decode {
        /// The key whose value is undecodable.
        key: String,
        /// The encoding's error.
        #[source]
        source: BoxError,
    },
    /// The store failed. `key` is the key the operation concerned, if any.
    #[error("store error during {op}{}", key_suffix(.key))]
    Store {
        /// The operation that failed.
        op: Op,
        /// The key it concerned, if one.
        key: Option<String>,
        /// The store's error.
        #[source]
        source: StoreError,
    },
}

fn key_suffix(key: &Option<String>) -> String {
    match key {
        Some(k) => format!(" of key {k:?}"),
        None => String::new(),
    }
}

impl Error {
    /// The key the error concerns, if one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::KeyNotFound { key }
            | Error::InvalidKey { key, .. }
            | Error::ValueTooLarge { key, .. }
            | Error::Encode { key, .. }
            | Error::Decode { key, .. } => Some(key),
            Error::Store { key, .. } => key.as_deref(),
        }
    }

    /// The store error inside, if this is one.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            Error::Store { source, .. } => Some(source),
            _ => None,
        }
    }

    pub(crate) fn store(op: Op, key: Option<&str>, source: StoreError) -> Self {
        Error::Store {
            op,
            key: key.map(str::to_owned),
            source,
        }
    }
}

/// Displays an error followed by every error of its [`source`](std::error::Error::source)
/// chain, separated by `": "`, as a chain reporter (anyhow's `{:#}`, std's unstable `Report`)
/// does: the messages of durabledict's errors do not include their sources, so `to_string()`
/// alone says only the outermost level. A source whose text the level above already shows
/// (some clients' errors repeat their own source) is left out, so no text appears twice.
///
/// ```
/// use durabledict_core::{Error, MemoryStore, Report, DurableDict, Raw};
///
/// let store = MemoryStore::new();
/// let dict = DurableDict::<String>::builder(store.clone(), Raw).build().unwrap();
/// store.fail_next(1);
/// let err = dict.insert("k", "v".to_string()).unwrap_err();
/// assert!(matches!(err, Error::Store { .. }));
/// assert_eq!(err.to_string(), r#"store error during insert of key "k""#);
/// assert_eq!(
///     Report(&err).to_string(),
///     r#"store error during insert of key "k": Unavailable: injected fault: memory store unavailable"#
/// );
/// ```
#[derive(Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl Report<'_> {
    /// The texts of the error and of its sources, outermost first, each once: a level whose
    /// text the level above already contains is left out.
    pub fn levels(&self) -> Vec<String> {
        let mut levels: Vec<String> = Vec::new();
        let mut next = Some(self.0);
        while let Some(error) = next {
            let text = error.to_string();
            let shown = levels.last().is_some_and(|above| above.contains(&text));
            if !shown && !text.is_empty() {
                levels.push(text);
            }
            next = error.source();
        }
        levels
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.levels().join(": "))
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The result of a dict operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    fn refused() -> StoreError {
        StoreError::unavailable("connection refused")
    }

    #[test]
    fn no_level_repeats_its_source() {
        let errors = [
            Error::Encode {
                key: "k".into(),
                source: "not encodable".into(),
            },
            Error::Decode {
                key: "k".into(),
                source: "not decodable".into(),
            },
            Error::store(Op::Insert, Some("k"), refused()),
            Error::store(Op::Load, None, refused()),
        ];
        for error in &errors {
            assert!(std::error::Error::source(error).is_some(), "{error:?}");
            assert_no_level_repeats_its_source(error);
        }
        assert_no_level_repeats_its_source(&refused());
    }

    #[test]
    fn a_report_says_every_level_once() {
        let error = Error::store(Op::Insert, Some("k"), refused());
        assert_eq!(
            Report(&error).to_string(),
            "store error during insert of key \"k\": Unavailable: connection refused"
        );
        assert_eq!(
            Report(&refused()).levels(),
            ["Unavailable", "connection refused"]
        );
    }

    /// Some clients' errors show their source's text and return it too: it is shown once.
    #[test]
    fn a_report_leaves_out_a_source_its_level_already_shows() {
        #[derive(Debug, thiserror::Error)]
        #[error("client: {0}")]
        struct Client(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::store(Op::Load, None, StoreError::unavailable(Client(io)));
        assert_eq!(
            Report(&error).to_string(),
            "store error during load: Unavailable: client: refused"
        );
    }
}
