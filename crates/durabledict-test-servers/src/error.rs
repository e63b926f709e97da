use std::io;
use std::time::Duration;

/// Why a test server could not be started (or restarted).
///
/// Every variant names the server; the messages are written for the person reading a failed
/// test: what is missing and the exact command that installs it, or the tail of the server's
/// own log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A program the server needs is not installed.
    #[error(
        "{server}: `{binary}` is not installed; install it with \
         `apt-get install -y {packages}` (or run `cargo xtask install`)"
    )]
    MissingBinary {
        /// The server that needs it, e.g. `redis`.
        server: &'static str,
        /// The program or file that was looked for, e.g. `redis-server`.
        binary: String,
        /// The Debian packages that provide it, space separated.
        packages: &'static str,
    },
    /// An I/O error while preparing or spawning the server.
    #[error("{server}: {context}")]
    Io {
        /// The server concerned.
        server: &'static str,
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A helper command (initdb, mariadb-install-db, redis-cli --cluster create, …) failed.
    #[error("{server}: `{command}` failed ({status}):\n{output}")]
    Command {
        /// The server concerned.
        server: &'static str,
        /// The command line that failed.
        command: String,
        /// How it ended.
        status: String,
        /// Its standard output and error.
        output: String,
    },
    /// The server process ended before it became ready.
    #[error(
        "{server}: the server exited before it was ready ({status}); last lines of its log:\n{log_tail}"
    )]
    Exited {
        /// The server concerned.
        server: &'static str,
        /// Its exit status.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
    /// The server did not answer its readiness check in time.
    #[error("{server}: not ready after {waited:?}; last lines of its log:\n{log_tail}")]
    Timeout {
        /// The server concerned.
        server: &'static str,
        /// How long we waited.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
}

impl ServerError {
    pub(crate) fn io(server: &'static str, context: impl Into<String>, source: io::Error) -> Self {
        ServerError::Io {
            server,
            context: context.into(),
            source,
        }
    }

    /// Whether the server failed because its port was taken (worth retrying on another port).
    pub(crate) fn is_port_in_use(&self) -> bool {
        match self {
            ServerError::Exited { log_tail, .. } | ServerError::Timeout { log_tail, .. } => {
                let log = log_tail.to_ascii_lowercase();
                log.contains("already in use") || log.contains("address in use")
            }
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

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
        let error = ServerError::io(
            "redis",
            "cannot create the data directory",
            io::Error::new(io::ErrorKind::PermissionDenied, "permission denied"),
        );
        assert_no_level_repeats_its_source(&error, 1);
    }

    #[test]
    fn a_taken_port_is_worth_another_try() {
        let exited = |log: &str| ServerError::Exited {
            server: "redis",
            status: "exit status: 1".into(),
            log_tail: log.into(),
        };
        assert!(exited("bind: Address already in use").is_port_in_use());
        assert!(exited("java.net.BindException: Address in use").is_port_in_use());
        assert!(!exited("FATAL: bad config").is_port_in_use());
    }
}
