//! [`UrlOptions`]: durabledict's options in a store URL's query, read the same way by every
//! backend's URL parser (names, duration syntax, refusals).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The query parameters of a store URL, decoded, for a backend's URL parser to take its own
/// options from; what is left must be the driver's own parameters, or it is refused by name
/// (a mistyped option is an error, never silently ignored).
///
/// Durations take a unit: `250ms`, `2s`, `1.5s`, `1m`; at most a day
/// ([`MAX_DURATION`](UrlOptions::MAX_DURATION)).
///
/// ```
/// use std::time::Duration;
/// use durabledict_core::UrlOptions;
///
/// let mut query = UrlOptions::new([("io_timeout", "250ms"), ("protocol", "resp3")]);
/// assert_eq!(query.duration("io_timeout")?, Some(Duration::from_millis(250)));
/// assert_eq!(query.number::<usize>("max_idle")?, None);
/// // `protocol` belongs to the driver: passed on.
/// assert_eq!(query.rest(&["protocol"])?, [("protocol".to_owned(), "resp3".to_owned())]);
///
/// let mut typo = UrlOptions::new([("io_timout", "1s")]);
/// assert_eq!(typo.duration("io_timeout")?, None);
/// let err = typo.rest(&[]).unwrap_err();
/// assert_eq!(err.to_string(), "unknown query parameter `io_timout` (known: io_timeout)");
/// # Ok::<(), durabledict_core::UrlOptionError>(())
/// ```
#[derive(Clone)]
pub struct UrlOptions {
    pairs: Vec<(String, String, bool)>,
    known: Vec<&'static str>,
}

impl fmt::Debug for UrlOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets (a driver's password parameter): names only.
        f.debug_struct("UrlOptions")
            .field(
                "names",
                &self
                    .pairs
                    .iter()
                    .map(|(name, ..)| name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// A query parameter that is unknown, repeated, or whose value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UrlOptionError {
    /// The parameter's name.
    pub name: String,
    /// What is wrong with it, a sentence that names it.
    pub message: String,
}

impl fmt::Display for UrlOptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UrlOptionError {}

impl UrlOptions {
    /// The longest duration an option takes. Longer ones overflowed where they were used: a
    /// deadline `Instant::now() + timeout` (r2d2's pool wait panicked on `connect_timeout=1e19s`),
    /// ZooKeeper's session timeout in milliseconds (an `i32` on the wire; the client's
    /// multiplication panicked). A day is longer than any timeout or delay a store takes.
    pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

    /// The decoded `(name, value)` pairs of a query, in order.
    pub fn new<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Self
    where
        N: Into<String>,
        V: Into<String>,
    {
        UrlOptions {
            pairs: pairs
                .into_iter()
                .map(|(n, v)| (n.into(), v.into(), false))
                .collect(),
            known: Vec::new(),
        }
    }

    /// The value of `name`, taken; `None` when absent. Refused when given twice.
    pub fn text(&mut self, name: &'static str) -> Result<Option<String>, UrlOptionError> {
        self.known.push(name);
        let mut found = None;
        for (n, v, taken) in &mut self.pairs {
            if n == name {
                if found.is_some() {
                    return Err(error(
                        name,
                        format!("query parameter `{name}` is given twice"),
                    ));
                }
                *taken = true;
                found = Some(v.clone());
            }
        }
        Ok(found)
    }

    /// A duration with its unit (`ms`, `s`, `m`), longer than zero, at most
    /// [`MAX_DURATION`](Self::MAX_DURATION).
    pub fn duration(&mut self, name: &'static str) -> Result<Option<Duration>, UrlOptionError> {
        self.any_duration(name, false)
    }

    /// A duration with its unit, zero included (for a delay, where zero means at once), at most
    /// [`MAX_DURATION`](Self::MAX_DURATION).
    pub fn duration_or_zero(
        &mut self,
        name: &'static str,
    ) -> Result<Option<Duration>, UrlOptionError> {
        self.any_duration(name, true)
    }

    fn any_duration(
        &mut self,
        name: &'static str,
        zero: bool,
    ) -> Result<Option<Duration>, UrlOptionError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        match parse_duration(&text) {
            Some(d) if (zero || !d.is_zero()) && d <= Self::MAX_DURATION => Ok(Some(d)),
            _ => Err(error(
                name,
                format!(
                    "query parameter `{name}`: {text:?} is not a duration{} of at most a day \
                     (a number and a unit: 250ms, 2s, 1m)",
                    if zero { "" } else { " longer than zero and" }
                ),
            )),
        }
    }

    /// A number (of connections, of bytes).
    pub fn number<T: FromStr>(&mut self, name: &'static str) -> Result<Option<T>, UrlOptionError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            error(
                name,
                format!("query parameter `{name}`: {text:?} is not a valid number"),
            )
        })
    }

    /// `true` or `false`.
    pub fn flag(&mut self, name: &'static str) -> Result<Option<bool>, UrlOptionError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        match text.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(error(
                name,
                format!("query parameter `{name}`: {text:?} is neither true nor false"),
            )),
        }
    }

    /// What is left once the options were taken: the parameters named in `passed_on` (the
    /// driver's own), in order; any other is refused, naming it and the known ones, as is a
    /// driver's parameter given twice (which the drivers read differently: the last one wins
    /// in libpq and the redis client, so `sslmode=require&sslmode=disable` did not require).
    pub fn rest(self, passed_on: &[&str]) -> Result<Vec<(String, String)>, UrlOptionError> {
        let mut rest: Vec<(String, String)> = Vec::new();
        for (name, value, taken) in self.pairs {
            if taken {
                continue;
            }
            if rest.iter().any(|(n, _)| *n == name) {
                return Err(error(
                    &name,
                    format!("query parameter `{name}` is given twice"),
                ));
            }
            if !passed_on.contains(&name.as_str()) {
                let mut known: Vec<&str> = self.known.clone();
                for name in passed_on {
                    if !known.contains(name) {
                        known.push(name);
                    }
                }
                return Err(error(
                    &name,
                    format!(
                        "unknown query parameter `{name}` (known: {})",
                        known.join(", ")
                    ),
                ));
            }
            rest.push((name, value));
        }
        Ok(rest)
    }
}

fn error(name: &str, message: String) -> UrlOptionError {
    UrlOptionError {
        name: name.to_owned(),
        message,
    }
}

/// `250ms`, `2s`, `1.5s`, `1m`.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|at| text.split_at(at))?;
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        for bad in ["2", "s", "", "1h", "-1s", "1..2s", "1 s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_name_the_parameter() {
        let mut q = UrlOptions::new([("t", "0s")]);
        assert!(q.duration("t").unwrap_err().to_string().contains("`t`"));
        let mut q = UrlOptions::new([("t", "0s")]);
        assert_eq!(q.duration_or_zero("t").unwrap(), Some(Duration::ZERO));
        let mut q = UrlOptions::new([("t", "1440m"), ("u", "1441m"), ("v", "1e19s")]);
        assert_eq!(q.duration("t").unwrap(), Some(UrlOptions::MAX_DURATION));
        assert!(
            q.duration("u")
                .unwrap_err()
                .to_string()
                .contains("at most a day")
        );
        assert!(
            q.duration_or_zero("v")
                .unwrap_err()
                .to_string()
                .contains("`v`")
        );
        let mut q = UrlOptions::new([("n", "many")]);
        assert!(
            q.number::<u32>("n")
                .unwrap_err()
                .to_string()
                .contains("`n`")
        );
        let mut q = UrlOptions::new([("f", "yes")]);
        assert!(q.flag("f").unwrap_err().to_string().contains("`f`"));
        let mut q = UrlOptions::new([("n", "1"), ("n", "2")]);
        assert!(
            q.number::<u32>("n")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let q = UrlOptions::new([("sslmode", "require"), ("x", "1"), ("sslmode", "disable")]);
        let err = q.rest(&["sslmode", "x"]).unwrap_err();
        assert_eq!(err.to_string(), "query parameter `sslmode` is given twice");
        let q = UrlOptions::new([("password", "s3cret")]);
        let err = q.rest(&[]).unwrap_err();
        assert_eq!(err.name, "password");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let q = UrlOptions::new([("password", "s3cret")]);
        assert!(!format!("{q:?}").contains("s3cret"));
    }
}
