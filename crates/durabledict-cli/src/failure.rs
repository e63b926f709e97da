//! Why a command failed, and the exit code that says so.
//!
//! The library's errors say one level each and return the error below as their source; a
//! failure shows the whole chain on one line, `message: source: its source`, each text once
//! (see [`Report`]).

use std::fmt;
use std::process::ExitCode;

use durabledict::{Error, OpenError, Report, StoreError};

/// A failed command: its message for stderr and its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Exit 1: the key is not there (`get`, `del`).
    NotFound(String),
    /// Exit 2: what was asked cannot work (bad URL or option, VALUE not JSON, invalid key).
    Usage(String),
    /// Exit 3: the store failed, or a value could not be encoded or decoded.
    Store(String),
    /// Exit 0, silently: whoever read the output stopped reading (`durabledict list | head`).
    OutputClosed,
}

impl Failure {
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::NotFound(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Store(_) => 3,
            Failure::OutputClosed => 0,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotFound(key) => write!(f, "key not found: {key}"),
            Failure::Usage(msg) | Failure::Store(msg) => f.write_str(msg),
            Failure::OutputClosed => f.write_str("standard output was closed"),
        }
    }
}

impl From<OpenError> for Failure {
    fn from(error: OpenError) -> Self {
        if error.is_usage() {
            Failure::Usage(Report(&error).to_string())
        } else {
            Failure::Store(Report(&error).to_string())
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error {
            Error::KeyNotFound { key } => Failure::NotFound(key),
            Error::InvalidKey { .. } => Failure::Usage(Report(&error).to_string()),
            other => Failure::Store(Report(&other).to_string()),
        }
    }
}

/// A store error outside any dict operation, with what was being done.
pub(crate) fn store_error(doing: &str, key: Option<&str>, error: StoreError) -> Failure {
    let error = Report(&error);
    match key {
        Some(key) => Failure::Store(format!(
            "store error during {doing} of key {key:?}: {error}"
        )),
        None => Failure::Store(format!("store error during {doing}: {error}")),
    }
}
