//! How a redis client error becomes a [`StoreError`] of the right kind.

use durabledict_core::{StoreError, StoreErrorKind};
use redis::{ErrorKind, RedisError};

/// The error code our scripts raise when the stamp key holds something other than an integer.
pub(crate) const CORRUPT_CODE: &str = "DDCORRUPT";

/// Sorts a client error into the kind the dict acts on.
///
/// Anything that says "the server is not there right now" (refused, reset, timed out, loading,
/// cluster reconfiguring) is [`Unavailable`](StoreErrorKind::Unavailable): retrying later may
/// work. Data of the wrong type is [`Corrupt`](StoreErrorKind::Corrupt). Every other answer the
/// server gave is a refusal ([`Rejected`](StoreErrorKind::Rejected)): authentication,
/// permissions, out of memory, a read-only replica, a value over its limits.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    StoreError::new(kind_of(&error), error)
}

/// Like [`store_error`], for the error of a command sent to the server, said plainly where the
/// client's own words ("Resource temporarily unavailable", "MOVED 866 …") do not tell what
/// became of the command: a write that got no reply may or may not have been applied; a
/// cluster's redirection means it was not run.
pub(crate) fn request_error(error: RedisError, write: bool) -> StoreError {
    let what = if error.redirect_node().is_some() {
        "the cluster is moving the keyspace's slot; the command was not run"
    } else if error.is_timeout() {
        if write {
            "no reply within the I/O timeout; the write may or may not have been applied"
        } else {
            "no reply within the I/O timeout"
        }
    } else if error.is_connection_dropped() && !error.is_connection_refusal() {
        if write {
            "the connection broke; the write may or may not have been applied"
        } else {
            "the connection broke"
        }
    } else {
        return store_error(error);
    };
    StoreError::new(
        kind_of(&error),
        Failed {
            what,
            source: error,
        },
    )
}

/// A client error with what it means for the command.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
struct Failed {
    what: &'static str,
    source: RedisError,
}

pub(crate) fn kind_of(error: &RedisError) -> StoreErrorKind {
    // A TLS handshake that fails (a certificate refused by either side) arrives as an I/O
    // error, but retrying cannot help: it is a refusal.
    #[cfg(feature = "tls")]
    if tls_refusal(error) {
        return StoreErrorKind::Rejected;
    }
    if error.is_io_error() || error.is_timeout() || error.is_connection_refusal() {
        return StoreErrorKind::Unavailable;
    }
    match error.kind() {
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => StoreErrorKind::Unavailable,
        ErrorKind::AuthenticationFailed => StoreErrorKind::Rejected,
        ErrorKind::Server(_) | ErrorKind::Extension => {
            // A transaction reports the errors of its commands together; the worst one wins.
            let replies = error.clone().into_server_errors().unwrap_or_default();
            replies
                .iter()
                .map(|(_, reply)| reply_kind(reply.code()))
                .max_by_key(|kind| match kind {
                    StoreErrorKind::Corrupt => 3,
                    StoreErrorKind::Unavailable => 2,
                    StoreErrorKind::Rejected => 1,
                    _ => 0,
                })
                .unwrap_or(StoreErrorKind::Rejected)
        }
        _ => StoreErrorKind::Other,
    }
}

/// Whether a rustls error is inside.
#[cfg(feature = "tls")]
fn tls_refusal(error: &RedisError) -> bool {
    rustls_error(error).is_some()
}

/// The rustls error inside, if any.
#[cfg(feature = "tls")]
pub(crate) fn rustls_error(error: &RedisError) -> Option<&rustls::Error> {
    io_error(error)?.get_ref()?.downcast_ref::<rustls::Error>()
}

/// The I/O error inside, if any: the client keeps it behind an `Arc`.
#[cfg(feature = "tls")]
pub(crate) fn io_error(error: &RedisError) -> Option<&std::io::Error> {
    use std::error::Error as _;
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut source = error.source();
    while let Some(e) = source {
        let io = e.downcast_ref::<std::io::Error>().or_else(|| {
            e.downcast_ref::<Shared>()
                .and_then(|shared| shared.downcast_ref::<std::io::Error>())
        });
        if io.is_some() {
            return io;
        }
        source = e.source();
    }
    None
}

/// The kind of one error reply, by its code.
fn reply_kind(code: &str) -> StoreErrorKind {
    match code {
        "WRONGTYPE" | CORRUPT_CODE => StoreErrorKind::Corrupt,
        // Loading a dump, a cluster changing shape, another script running too long: the
        // server cannot answer now, later it may.
        "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "MOVED" | "ASK" | "BUSY" => {
            StoreErrorKind::Unavailable
        }
        _ => StoreErrorKind::Rejected,
    }
}

/// The store held a value that is not what the layout says (a stamp that is not an integer, a
/// hash field that is not UTF-8, a reply of an unexpected shape).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub(crate) struct Unexpected {
    what: String,
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::corrupt(Unexpected { what: what.into() })
}

/// Whether the server answered `code` (`WRONGTYPE`) to the command, or to one of a
/// transaction's.
pub(crate) fn answered(error: &RedisError, code: &str) -> bool {
    error.code() == Some(code)
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|replies| replies.iter().any(|(_, reply)| reply.code() == code))
}

/// A key of the keyspace holds another Redis type than the layout says; the source is the
/// server's own error (which names no key, and for a script shows the script's hash and line).
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub(crate) struct WrongType {
    pub(crate) what: String,
    pub(crate) source: RedisError,
}

/// A configuration the client refuses (a URL that does not parse, keys in different cluster
/// slots).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Config(pub(crate) String);

pub(crate) fn config(what: impl Into<String>) -> StoreError {
    StoreError::other(Config(what.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that none of the first `own` levels of `error`'s chain (this crate's and core's)
    /// shows the text of its source: the chain reporter shows it. (The client's own error is
    /// left alone: it shows its I/O error's text and returns it too, which a chain reporter
    /// such as [`Report`](durabledict_core::Report) prints once.)
    fn assert_no_level_repeats_its_source(error: &(dyn std::error::Error + 'static), own: usize) {
        let mut level = error;
        for _ in 0..own {
            let source = level
                .source()
                .unwrap_or_else(|| panic!("{level:?} has no source"));
            let (text, below) = (level.to_string(), source.to_string());
            assert!(
                !text.contains(&below),
                "{text:?} repeats its source {below:?}"
            );
            level = source;
        }
    }

    fn refused() -> RedisError {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()
    }

    #[test]
    fn no_level_repeats_its_source() {
        let failed = StoreError::unavailable(Failed {
            what: "the connection broke",
            source: refused(),
        });
        assert_no_level_repeats_its_source(&failed, 2);
        let wrong = StoreError::corrupt(WrongType {
            what: "the Redis key \"s\" holds a list".into(),
            source: refused(),
        });
        assert_no_level_repeats_its_source(&wrong, 2);
        assert_no_level_repeats_its_source(&store_error(refused()), 1);
        assert_eq!(
            durabledict_core::Report(&failed).to_string(),
            format!("Unavailable: the connection broke: {}", refused())
        );
    }
}
