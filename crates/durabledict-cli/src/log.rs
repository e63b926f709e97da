//! `-v` and `DURABLEDICT_LOG`: the library's `tracing` events (docs/observability.md) printed
//! on stderr, so that stdout stays the command's output (`stamp` stays machine readable).

use std::env::VarError;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::failure::Failure;

/// The variable holding a filter in `RUST_LOG`'s syntax (`durabledict=debug,durabledict::redis=trace`).
pub(crate) const LOG_VAR: &str = "DURABLEDICT_LOG";

/// The filter `-v` repeated `verbose` times asks for: the library's targets at info, debug,
/// trace.
fn verbosity(verbose: u8) -> Option<&'static str> {
    match verbose {
        0 => None,
        1 => Some("durabledict=info"),
        2 => Some("durabledict=debug"),
        _ => Some("durabledict=trace"),
    }
}

/// Installs the stderr subscriber when `-v` or [`LOG_VAR`] asks for one (`-v` wins, as an
/// option wins over its variable; an empty variable counts as unset). Spans are printed when
/// they close, with their fields: a `reload` tells its keys, bytes, stamps and duration.
pub(crate) fn init(verbose: u8) -> Result<(), Failure> {
    let directives = match verbosity(verbose) {
        Some(directives) => directives.to_owned(),
        None => match std::env::var(LOG_VAR) {
            Ok(value) if !value.trim().is_empty() => value,
            Ok(_) | Err(VarError::NotPresent) => return Ok(()),
            Err(VarError::NotUnicode(_)) => {
                return Err(Failure::Usage(format!("{LOG_VAR} is not UTF-8")));
            }
        },
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| Failure::Usage(format!("invalid {LOG_VAR} filter {directives:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_span_events(FmtSpan::CLOSE)
        .try_init()
        .map_err(|e| Failure::Usage(format!("cannot print the library's events: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_v_is_one_level_more() {
        assert_eq!(verbosity(0), None);
        assert_eq!(verbosity(1), Some("durabledict=info"));
        assert_eq!(verbosity(2), Some("durabledict=debug"));
        assert_eq!(verbosity(3), Some("durabledict=trace"));
        assert_eq!(verbosity(9), Some("durabledict=trace"));
    }
}
