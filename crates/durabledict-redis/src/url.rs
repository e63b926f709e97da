//! [`RedisUrl`]: a Redis URL with durabledict's options in its query, read by the `url` crate.

use std::fmt;
use std::time::Duration;

use durabledict_core::{StoreError, UrlOptions};

use crate::builder::RedisStoreBuilder;
use crate::error::config;
use crate::store::RedisStore;

/// A Redis URL, checked, with durabledict's options taken from its query:
///
/// ```text
/// redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB][?OPTIONS]
/// rediss://[[USER][:PASSWORD]@]HOST[:PORT][/DB][?OPTIONS]                (feature `tls`)
/// redis+unix:///PATH[?db=DB&user=USER&pass=PASSWORD&OPTIONS]             (also unix:///PATH)
/// ```
///
/// | option | builder method | default |
/// |---|---|---|
/// | `connect_timeout=2s` | [`connect_timeout`](RedisStoreBuilder::connect_timeout) | 2 s |
/// | `io_timeout=5s` | [`io_timeout`](RedisStoreBuilder::io_timeout) | 5 s |
/// | `max_idle=8` | [`max_idle`](RedisStoreBuilder::max_idle): idle connections kept | 8 |
/// | `check_idle_after=0s` | [`check_idle_after`](RedisStoreBuilder::check_idle_after) | at once |
/// | `max_value_len=BYTES` | [`max_value_len`](RedisStoreBuilder::max_value_len) | unbounded |
/// | `protocol=resp2\|resp3` | passed to the redis client | `resp2` |
///
/// Durations take a unit (`250ms`, `2s`, `1m`). Any other parameter is refused by name, as is
/// `db` on a TCP URL (its database is the path). Passwords are never shown by `Debug`,
/// `Display` or an error.
///
/// ```
/// use std::time::Duration;
/// use durabledict_redis::RedisUrl;
///
/// let url = RedisUrl::parse("redis://:s3cret@127.0.0.1:6379/2?io_timeout=250ms&max_idle=1")?;
/// assert_eq!(url.to_string(), "redis://:***@127.0.0.1:6379/2?io_timeout=250ms&max_idle=1");
/// assert_eq!(url.connect_timeout(), None);
/// let store = url.builder("settings").build()?;
/// assert_eq!(store.hash_key(), "settings");
///
/// let typo = RedisUrl::parse("redis://127.0.0.1/?io_timout=1s").unwrap_err();
/// let text = durabledict_core::Report(&typo).to_string();
/// assert!(text.contains("unknown query parameter `io_timout`"), "{text}");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisUrl {
    /// The URL as given, for `Display` (masked there).
    given: url::Url,
    /// What the redis client reads: the URL without durabledict's options.
    client: String,
    connect_timeout: Option<Duration>,
    io_timeout: Option<Duration>,
    max_idle: Option<usize>,
    check_idle_after: Option<Duration>,
    max_value_len: Option<usize>,
}

/// The parameters the redis client reads itself, passed on.
const CLIENT_PARAMETERS: &[&str] = &["protocol"];
/// On a Unix socket URL, where there is no path for the database and no user information.
const UNIX_PARAMETERS: &[&str] = &["protocol", "db", "user", "pass"];

impl RedisUrl {
    /// The schemes this store reads, in lower case (a scheme matches in any case).
    pub const SCHEMES: &'static [&'static str] = &["redis", "rediss", "redis+unix", "unix"];

    /// Checks `url` and takes durabledict's options from its query; connects to nothing.
    /// Fails ([`Other`](durabledict_core::StoreErrorKind::Other)) naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| config(format!("invalid Redis URL: {reason}"));
        let given = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        let unix = match given.scheme() {
            "redis" | "rediss" => false,
            "redis+unix" | "unix" => true,
            other => {
                return Err(invalid(format!(
                    "the scheme {other:?} is not one of {}",
                    Self::SCHEMES.join(", ")
                )));
            }
        };
        if unix {
            if given.host_str().is_some_and(|h| !h.is_empty()) || !given.path().starts_with('/') {
                return Err(invalid(
                    "the socket path must be absolute (redis+unix:///PATH)".into(),
                ));
            }
        } else {
            if given.host_str().is_none_or(str::is_empty) {
                return Err(invalid("it names no host".into()));
            }
            let db = given.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u32>().is_err() {
                return Err(invalid(format!("the database {db:?} is not a number")));
            }
        }
        match given.fragment() {
            None => {}
            // The redis client reads it, but is built without `tls-rustls-insecure`: every
            // request failed ("Cannot create insecure client …") on a store that had opened.
            Some("insecure") if given.scheme() == "rediss" => {
                return Err(invalid(
                    "#insecure (TLS without checking the server's certificate) is not \
                     supported: trust the server's CA instead \
                     (RedisStoreBuilder::tls_root_certificate)"
                        .into(),
                ));
            }
            Some(_) => {
                return Err(invalid(
                    "a Redis URL takes no fragment (#); the redis client's #insecure is not \
                     supported"
                        .into(),
                ));
            }
        }
        let mut query = UrlOptions::new(given.query_pairs());
        let option = |e: durabledict_core::UrlOptionError| invalid(e.to_string());
        let connect_timeout = query.duration("connect_timeout").map_err(option)?;
        let io_timeout = query.duration("io_timeout").map_err(option)?;
        let max_idle = query.number("max_idle").map_err(option)?;
        let check_idle_after = query.duration_or_zero("check_idle_after").map_err(option)?;
        let max_value_len = query.number("max_value_len").map_err(option)?;
        let rest = query
            .rest(if unix {
                UNIX_PARAMETERS
            } else {
                CLIENT_PARAMETERS
            })
            .map_err(option)?;
        if let Some(db) = rest.iter().find(|(n, _)| n == "db").map(|(_, v)| v)
            && db.parse::<u32>().is_err()
        {
            return Err(invalid(format!("the database {db:?} is not a number")));
        }
        let mut client = given.clone();
        if rest.is_empty() {
            client.set_query(None);
        } else {
            client.query_pairs_mut().clear().extend_pairs(rest);
        }
        Ok(RedisUrl {
            given,
            client: client.into(),
            connect_timeout,
            io_timeout,
            max_idle,
            check_idle_after,
            max_value_len,
        })
    }

    /// A builder for a store on this URL with keyspace `keyspace` and the URL's options.
    pub fn builder(&self, keyspace: &str) -> RedisStoreBuilder {
        self.configure(RedisStore::builder(&self.client, keyspace))
    }

    /// Sets on `builder` the options this URL gives (and only those).
    pub fn configure(&self, builder: RedisStoreBuilder) -> RedisStoreBuilder {
        let mut builder = builder;
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(timeout) = self.io_timeout {
            builder = builder.io_timeout(timeout);
        }
        if let Some(connections) = self.max_idle {
            builder = builder.max_idle(connections);
        }
        if let Some(idle) = self.check_idle_after {
            builder = builder.check_idle_after(idle);
        }
        if let Some(bytes) = self.max_value_len {
            builder = builder.max_value_len(bytes);
        }
        builder
    }

    /// The URL's `connect_timeout`, if it gives one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.given.scheme() == "rediss"
    }
}

impl RedisStore {
    /// A builder for a store on the Redis URL `url` (see [`RedisUrl`] for its forms and
    /// query options) with keyspace `keyspace`. Unlike [`builder`](Self::builder), which hands
    /// the URL to the redis client as it is, this reads durabledict's options from the query
    /// and refuses any parameter it does not know.
    ///
    /// ```
    /// use durabledict_redis::RedisStore;
    ///
    /// let store = RedisStore::builder_from_url("redis://127.0.0.1/0?max_idle=1", "flags")?.build()?;
    /// assert_eq!(store.keyspace(), "flags");
    /// # Ok::<(), durabledict_core::StoreError>(())
    /// ```
    pub fn builder_from_url(url: &str, keyspace: &str) -> Result<RedisStoreBuilder, StoreError> {
        Ok(RedisUrl::parse(url)?.builder(keyspace))
    }
}

impl fmt::Display for RedisUrl {
    /// The URL with its password (user information or `pass=`) shown as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.given.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        if shown.query_pairs().any(|(n, _)| n == "pass") {
            let pairs: Vec<(String, String)> = shown
                .query_pairs()
                .map(|(n, v)| {
                    let v = if n == "pass" {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (n.into_owned(), v)
                })
                .collect();
            shown.query_pairs_mut().clear().extend_pairs(pairs);
        }
        f.write_str(shown.as_str())
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("url", &self.to_string())
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("max_idle", &self.max_idle)
            .field("check_idle_after", &self.check_idle_after)
            .field("max_value_len", &self.max_value_len)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused(url: &str, reason: &str) {
        let err = RedisUrl::parse(url).unwrap_err();
        let err_text = durabledict_core::Report(&err).to_string();
        assert!(err_text.contains(reason), "{url}: {err_text}");
        assert_eq!(err.kind(), durabledict_core::StoreErrorKind::Other, "{url}");
    }

    #[test]
    fn every_form_parses_and_the_client_gets_it_without_our_options() {
        for (url, client) in [
            ("redis://127.0.0.1", "redis://127.0.0.1"),
            ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/"),
            ("REDIS://h:1/3", "redis://h:1/3"),
            ("redis://:pw@h:1/0", "redis://:pw@h:1/0"),
            (
                "redis://alice:wonder%20land@h/",
                "redis://alice:wonder%20land@h/",
            ),
            ("redis://[::1]:6379/1", "redis://[::1]:6379/1"),
            ("rediss://h:6380/", "rediss://h:6380/"),
            ("redis://h/?protocol=resp3", "redis://h/?protocol=resp3"),
            ("redis+unix:///run/r.sock", "redis+unix:///run/r.sock"),
            ("unix:///run/r.sock?db=2", "unix:///run/r.sock?db=2"),
            (
                "redis+unix:///run/r.sock?db=2&io_timeout=1s&user=u&pass=p",
                "redis+unix:///run/r.sock?db=2&user=u&pass=p",
            ),
            (
                "redis://h/1?connect_timeout=250ms&io_timeout=1.5s&max_idle=1&check_idle_after=0s&max_value_len=1024",
                "redis://h/1",
            ),
        ] {
            let parsed = RedisUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.client, client, "{url}");
        }
    }

    #[test]
    fn every_option_reaches_the_builder() {
        let url = RedisUrl::parse(
            "redis://h/1?connect_timeout=250ms&io_timeout=1.5s&max_idle=1&check_idle_after=2s&max_value_len=1024",
        )
        .unwrap();
        assert_eq!(url.connect_timeout(), Some(Duration::from_millis(250)));
        let shown = format!("{:?}", url.builder("ks"));
        for field in [
            "connect_timeout: 250ms",
            "io_timeout: 1.5s",
            "max_idle: 1",
            "check_idle_after: 2s",
            "max_value_len: Some(1024)",
        ] {
            assert!(shown.contains(field), "{field}: {shown}");
        }
        let zero = RedisUrl::parse("redis://h/?check_idle_after=0ms").unwrap();
        assert_eq!(zero.check_idle_after, Some(Duration::ZERO));
        // Options not given keep the builder's defaults.
        let plain = format!("{:?}", RedisUrl::parse("redis://h").unwrap().builder("ks"));
        assert!(plain.contains("io_timeout: 5s"), "{plain}");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        refused("redis://h:port/", "invalid port");
        refused("redis://h/zero", "database \"zero\"");
        refused("redis+unix:///s?db=x", "database \"x\"");
        refused("redis:///0", "no host");
        refused("redis+unix://relative.sock", "absolute");
        refused("http://h/", "\"http\" is not one of redis, rediss");
        refused("not a url", "invalid Redis URL");
        refused("redis://h/#secure", "no fragment");
        refused("redis://h/#insecure", "no fragment");
        refused("rediss://h/#insecure", "tls_root_certificate");
        refused(
            "redis://h/?io_timout=1s",
            "unknown query parameter `io_timout`",
        );
        refused("redis://h/?db=2", "unknown query parameter `db`");
        refused("redis://h/?io_timeout=5", "`io_timeout`");
        refused("redis://h/?io_timeout=0s", "`io_timeout`");
        refused("redis://h/?max_idle=-1", "`max_idle`");
        refused("redis://h/?max_idle=1&max_idle=2", "twice");
    }

    #[test]
    fn passwords_are_never_shown() {
        for url in [
            "redis://:s3cret@h/0?io_timeout=1s",
            "redis://alice:s3cret@h/",
            "redis+unix:///s?pass=s3cret&db=1",
        ] {
            let parsed = RedisUrl::parse(url).unwrap();
            assert!(!parsed.to_string().contains("s3cret"), "{parsed}");
            assert!(!format!("{parsed:?}").contains("s3cret"), "{parsed:?}");
            assert!(parsed.to_string().contains("***"), "{parsed}");
        }
        for url in [
            "redis://:s3cret@h/x",
            "redis://:s3cret@h/?nope=1",
            "redis+unix:///s?pass=s3cret&nope=1",
            "redis://:s3cret@h:x/",
        ] {
            let err = RedisUrl::parse(url).unwrap_err();
            let err_text = durabledict_core::Report(&err).to_string();
            assert!(!err_text.contains("s3cret"), "{err_text}");
            assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
        }
    }
}
