//! [`ZooKeeperError`]: what this backend reports, and how it maps onto [`StoreError`] kinds.

use std::time::Duration;

use durabledict_core::{StoreError, StoreErrorKind};
use zookeeper::ZkError;

/// An error of the ZooKeeper store. It reaches callers boxed inside a [`StoreError`], whose
/// [`kind`](StoreError::kind) says what to do about it; downcast
/// [`StoreError::inner`] to this type for the details.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZooKeeperError {
    /// A request to ZooKeeper failed.
    #[error("ZooKeeper {op} of {path} failed")]
    Request {
        /// The request: `get_data`, `set_data`, `create`, `delete`, `get_children`, …
        op: &'static str,
        /// The znode it concerned, as the client names it (below any chroot).
        path: String,
        /// The client's error code.
        #[source]
        source: ZkError,
    },
    /// No server of the connect string answered in time.
    #[error("could not connect to ZooKeeper at {connect} within {timeout:?}")]
    Connect {
        /// The connect string.
        connect: String,
        /// How long the store waited.
        timeout: Duration,
        /// The last error seen.
        #[source]
        source: ZkError,
    },
    /// The client has been cut off from every server for longer than the session timeout, so
    /// its cached view can no longer be trusted.
    #[error("disconnected from ZooKeeper for {0:?}, longer than the session timeout")]
    Disconnected(Duration),
    /// The key cannot name a znode; nothing was sent.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The value does not fit in one ZooKeeper request; nothing was sent.
    #[error("value for key {key:?} is {len} bytes, over the store's limit of {max}")]
    ValueTooLarge {
        /// The key being written.
        key: String,
        /// The value's length.
        len: usize,
        /// The limit ([`Store::max_value_len`](durabledict_core::Store::max_value_len)).
        max: usize,
    },
    /// Other clients changed the key's znode between the requests of one operation every time
    /// it was tried (a `pop` whose read value was replaced before its delete, a write whose
    /// znode was deleted and created again between its `set_data` and its `create`): nothing
    /// was changed by this operation. Retrying later may succeed.
    #[error(
        "ZooKeeper {op} of key {key:?} lost the race with other clients {attempts} times in a row"
    )]
    Contended {
        /// The operation: `pop`, `write` (an insert or update), `setdefault`.
        op: &'static str,
        /// The key.
        key: String,
        /// How many times it was tried.
        attempts: usize,
    },
    /// The store's configuration is unusable (a bad connect string or keyspace path).
    #[error("invalid ZooKeeper store configuration: {0}")]
    Config(String),
}

impl ZooKeeperError {
    pub(crate) fn request(op: &'static str, path: &str, source: ZkError) -> Self {
        ZooKeeperError::Request {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The [`StoreErrorKind`] this error belongs to.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            ZooKeeperError::Request { source, .. } => zk_kind(*source),
            ZooKeeperError::Connect { .. }
            | ZooKeeperError::Disconnected(_)
            | ZooKeeperError::Contended { .. } => StoreErrorKind::Unavailable,
            ZooKeeperError::InvalidKey { .. }
            | ZooKeeperError::ValueTooLarge { .. }
            | ZooKeeperError::Config(_) => StoreErrorKind::Rejected,
        }
    }
}

impl From<ZooKeeperError> for StoreError {
    fn from(error: ZooKeeperError) -> Self {
        StoreError::new(error.kind(), error)
    }
}

/// Sorts ZooKeeper's error codes into the kinds the dict acts on.
fn zk_kind(error: ZkError) -> StoreErrorKind {
    match error {
        ZkError::ConnectionLoss
        | ZkError::OperationTimeout
        | ZkError::SessionExpired
        | ZkError::SessionMoved
        | ZkError::NotReadOnly
        | ZkError::SystemError => StoreErrorKind::Unavailable,
        ZkError::NoAuth
        | ZkError::AuthFailed
        | ZkError::InvalidACL
        | ZkError::BadArguments
        | ZkError::NotEmpty
        | ZkError::NoChildrenForEphemerals
        | ZkError::EphemeralOnLocalSession => StoreErrorKind::Rejected,
        ZkError::DataInconsistency | ZkError::RuntimeInconsistency => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

/// Whether a failed request certainly changed nothing on the server (the server answered
/// with a refusal), as opposed to an outcome that is unknown because the connection broke.
pub(crate) fn is_refusal(error: ZkError) -> bool {
    matches!(
        error,
        ZkError::NoNode
            | ZkError::NodeExists
            | ZkError::BadVersion
            | ZkError::NotEmpty
            | ZkError::BadArguments
            | ZkError::NoAuth
            | ZkError::InvalidACL
            | ZkError::NoChildrenForEphemerals
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that none of the first `own` levels of `error`'s chain (this crate's) shows the
    /// text of its source: the chain reporter shows it.
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

    #[test]
    fn no_level_repeats_its_source() {
        let request = ZooKeeperError::request("get_data", "/ks/k", ZkError::ConnectionLoss);
        let connect = ZooKeeperError::Connect {
            connect: "127.0.0.1:2181".into(),
            timeout: Duration::from_secs(3),
            source: ZkError::ConnectionLoss,
        };
        for error in [request, connect] {
            assert_no_level_repeats_its_source(&StoreError::from(error), 2);
        }
    }

    #[test]
    fn connection_problems_are_unavailable() {
        for e in [
            ZkError::ConnectionLoss,
            ZkError::OperationTimeout,
            ZkError::SessionExpired,
        ] {
            let err: StoreError = ZooKeeperError::request("get_data", "/a", e).into();
            assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{e:?}");
        }
        let err: StoreError = ZooKeeperError::Disconnected(Duration::from_secs(9)).into();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    }

    #[test]
    fn refusals_are_rejected_and_named() {
        let err = ZooKeeperError::request("create", "/ks/k", ZkError::NoAuth);
        assert_eq!(err.kind(), StoreErrorKind::Rejected);
        assert!(err.to_string().contains("/ks/k"), "{err}");
        assert!(is_refusal(ZkError::NodeExists));
        assert!(!is_refusal(ZkError::ConnectionLoss));
    }
}
