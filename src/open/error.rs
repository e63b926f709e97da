//! [`OpenError`]: why a store URL could not be opened.

use std::fmt;

use durabledict_core::{Error, StoreError, StoreErrorKind};

/// Why [`open`](crate::open) or [`open_store`](crate::open_store) failed.
///
/// [`is_usage`](Self::is_usage) tells a mistake in what was asked (the URL, an option, a
/// feature this build lacks) from a store that failed. The message does not repeat the
/// store's error, which [`source`](std::error::Error::source) returns: print the whole chain
/// with [`Report`](crate::Report).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL's scheme is known but the rest of it is not what that scheme takes.
    InvalidUrl {
        /// The URL, its password (if any) masked.
        url: String,
        /// What is wrong with it.
        reason: String,
        /// The form this scheme takes.
        expected: &'static str,
    },
    /// No store has this scheme.
    UnknownScheme {
        /// The scheme found (empty when there is none).
        scheme: String,
        /// The URL, its password (if any) masked.
        url: String,
        /// Every form of URL this crate knows.
        expected: &'static str,
    },
    /// The URL names a store that this build was compiled without.
    FeatureDisabled {
        /// The URL's scheme.
        scheme: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// An option does not fit the store (a memcached stamp for Redis, a stamp key without a
    /// stamp, a bad stamp URL).
    InvalidOption {
        /// Which option.
        option: &'static str,
        /// Why.
        reason: String,
    },
    /// The backend refused its configuration (a keyspace that is not a valid table name, a
    /// URL its client cannot parse); nothing was connected.
    Config(StoreError),
    /// The store could not be reached while connecting.
    Unavailable(StoreError),
    /// Preparing or loading the dict failed (the store is down, refused, or holds a value the
    /// encoding cannot decode).
    Load(Error),
}

impl OpenError {
    /// Whether the error is in what was asked (URL, options, features) rather than in the
    /// store: retrying cannot help.
    ///
    /// ```
    /// let err = durabledict::open("ftp://nope", &durabledict::OpenOptions::new()).unwrap_err();
    /// assert!(err.is_usage());
    /// ```
    pub fn is_usage(&self) -> bool {
        !matches!(self, OpenError::Unavailable(_) | OpenError::Load(_))
    }

    /// Classifies an error from a backend's builder: unreachable, or refused configuration.
    #[cfg_attr(
        not(any(
            feature = "sqlite",
            feature = "postgres",
            feature = "mysql",
            feature = "redis",
            feature = "zookeeper"
        )),
        allow(dead_code)
    )]
    pub(crate) fn from_builder(error: StoreError) -> Self {
        match error.kind() {
            StoreErrorKind::Unavailable => OpenError::Unavailable(error),
            _ => OpenError::Config(error),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::InvalidUrl {
                url,
                reason,
                expected,
            } => write!(
                f,
                "invalid store URL {url:?}: {reason}; expected {expected}"
            ),
            OpenError::UnknownScheme {
                scheme,
                url,
                expected,
            } => {
                if scheme.is_empty() {
                    write!(
                        f,
                        "store URL {url:?} has no scheme; expected one of: {expected}"
                    )
                } else {
                    write!(
                        f,
                        "unknown store URL scheme {scheme:?} in {url:?}; expected one of: {expected}"
                    )
                }
            }
            OpenError::FeatureDisabled { scheme, feature } => write!(
                f,
                "{scheme}: URLs need durabledict's `{feature}` cargo feature, which this build \
                 was compiled without"
            ),
            OpenError::InvalidOption { option, reason } => write!(f, "invalid {option}: {reason}"),
            // The error inside is the source, which a chain reporter prints after this.
            OpenError::Config(_) => f.write_str("the store refused this configuration"),
            OpenError::Unavailable(_) => f.write_str("cannot connect to the store"),
            OpenError::Load(_) => f.write_str("cannot open the dict"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Config(e) | OpenError::Unavailable(e) => Some(e),
            OpenError::Load(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_level_repeats_its_source() {
        let refused = || StoreError::unavailable("connection refused");
        let load = Error::Store {
            op: durabledict_core::Op::Load,
            key: None,
            source: refused(),
        };
        for error in [
            OpenError::Config(StoreError::other("bad table name")),
            OpenError::Unavailable(refused()),
            OpenError::Load(load),
        ] {
            let mut level: &(dyn std::error::Error + 'static) = &error;
            while let Some(source) = level.source() {
                let (text, below) = (level.to_string(), source.to_string());
                assert!(
                    !text.contains(&below),
                    "{text:?} repeats its source {below:?}"
                );
                level = source;
            }
        }
        assert_eq!(
            crate::Report(&OpenError::Unavailable(refused())).to_string(),
            "cannot connect to the store: Unavailable: connection refused"
        );
    }
}
