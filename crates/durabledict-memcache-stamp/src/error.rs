//! [`MemcacheError`], the error inside every [`StoreError`] the stamp returns.

use durabledict_core::{BoxError, StoreError, StoreErrorKind};

/// What went wrong talking to memcached. It travels as the source of a [`StoreError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemcacheError {
    /// The stamp is configured wrongly (an address or key memcached cannot take).
    #[error("configuration: {0}")]
    Config(String),
    /// memcached could not be reached, or the connection failed or timed out. The source is
    /// the I/O error.
    #[error("memcached unreachable")]
    Unavailable(#[source] BoxError),
    /// memcached answered with an error.
    #[error("memcached refused {command}: {reply}")]
    Server {
        /// The command.
        command: &'static str,
        /// What memcached answered.
        reply: String,
    },
    /// The stored stamp is not an unsigned decimal integer.
    #[error("the stamp is not an integer: {0}")]
    NotANumber(String),
    /// memcached said something the client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl MemcacheError {
    /// The kind the dict sees.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            MemcacheError::Unavailable(_) => StoreErrorKind::Unavailable,
            MemcacheError::NotANumber(_) => StoreErrorKind::Corrupt,
            MemcacheError::Server { .. } => StoreErrorKind::Rejected,
            MemcacheError::Config(_) | MemcacheError::Protocol(_) => StoreErrorKind::Other,
        }
    }
}

impl From<std::io::Error> for MemcacheError {
    fn from(error: std::io::Error) -> Self {
        MemcacheError::Unavailable(error.into())
    }
}

impl From<MemcacheError> for StoreError {
    fn from(error: MemcacheError) -> Self {
        StoreError::new(error.kind(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_level_repeats_its_source() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = StoreError::from(MemcacheError::from(io));
        let mut level: &(dyn std::error::Error + 'static) = &error;
        let mut levels = 0;
        while let Some(source) = level.source() {
            let (text, below) = (level.to_string(), source.to_string());
            assert!(
                !text.contains(&below),
                "{text:?} repeats its source {below:?}"
            );
            level = source;
            levels += 1;
        }
        assert_eq!(levels, 2, "{error:?}");
    }
}
