//! [`MemcacheUrl`]: a memcached stamp's URL with durabledict's options, read by the `url` crate.

use std::fmt;
use std::time::Duration;

use durabledict_core::{StoreError, UrlOptions};

use crate::error::MemcacheError;
use crate::stamp::{MemcacheStamp, MemcacheStampBuilder};

/// A memcached stamp URL, checked, with durabledict's options taken from its query:
///
/// ```text
/// memcache://HOST:PORT[/][?OPTIONS]
/// ```
///
/// | option | builder method | default |
/// |---|---|---|
/// | `connect_timeout=1s` | [`connect_timeout`](MemcacheStampBuilder::connect_timeout) | 1 s |
/// | `io_timeout=1s` | [`io_timeout`](MemcacheStampBuilder::io_timeout) | 1 s |
/// | `max_idle=8` | [`max_idle`](MemcacheStampBuilder::max_idle): idle connections kept | 8 |
///
/// Durations take a unit (`250ms`, `2s`, `1m`). Any other parameter is refused by name.
///
/// ```
/// use std::time::Duration;
/// use durabledict_memcache_stamp::MemcacheUrl;
///
/// let url = MemcacheUrl::parse("memcache://127.0.0.1:11211?io_timeout=200ms")?;
/// assert_eq!(url.address(), "127.0.0.1:11211");
/// let stamp = url.builder().keyspace("settings").build()?;
/// assert_eq!(stamp.key(), "durabledict:settings:last_updated");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct MemcacheUrl {
    address: String,
    query: Option<String>,
    connect_timeout: Option<Duration>,
    io_timeout: Option<Duration>,
    max_idle: Option<usize>,
}

impl MemcacheUrl {
    /// The schemes this stamp reads, in lower case (a scheme matches in any case).
    pub const SCHEMES: &'static [&'static str] = &["memcache"];

    /// Checks `url` and takes durabledict's options from its query; connects to nothing.
    /// Fails ([`Other`](durabledict_core::StoreErrorKind::Other)) naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        Ok(Self::try_parse(url)?)
    }

    fn try_parse(text: &str) -> Result<Self, MemcacheError> {
        let invalid = |reason: String| {
            MemcacheError::Config(format!(
                "invalid memcached URL: {reason}; expected memcache://HOST:PORT"
            ))
        };
        let url = url::Url::parse(text).map_err(|e| invalid(e.to_string()))?;
        if url.scheme() != "memcache" {
            return Err(invalid(format!(
                "the scheme {:?} is not memcache",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("it names no host".into()))?;
        let port = url
            .port()
            .ok_or_else(|| invalid("it names no port".into()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("memcached takes no user information".into()));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(invalid(format!("it has a path ({:?})", url.path())));
        }
        if url.fragment().is_some() {
            return Err(invalid("it has a fragment (#)".into()));
        }
        let mut options = UrlOptions::new(url.query_pairs());
        let option = |e: durabledict_core::UrlOptionError| invalid(e.to_string());
        let connect_timeout = options.duration("connect_timeout").map_err(option)?;
        let io_timeout = options.duration("io_timeout").map_err(option)?;
        let max_idle = options.number("max_idle").map_err(option)?;
        options.rest(&[]).map_err(option)?;
        Ok(MemcacheUrl {
            address: format!("{host}:{port}"),
            query: url.query().map(str::to_owned),
            connect_timeout,
            io_timeout,
            max_idle,
        })
    }

    /// `HOST:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The URL's `connect_timeout`, if it gives one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// A builder for a stamp on this URL with the URL's options (its key still to be set).
    pub fn builder(&self) -> MemcacheStampBuilder {
        self.configure(MemcacheStamp::builder(self.address.clone()))
    }

    /// Sets on `builder` the options this URL gives (and only those).
    pub fn configure(&self, builder: MemcacheStampBuilder) -> MemcacheStampBuilder {
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
        builder
    }
}

impl MemcacheStamp {
    /// A builder for a stamp on the memcached URL `url` (see [`MemcacheUrl`] for its form and
    /// query options); its key is still to be set.
    pub fn builder_from_url(url: &str) -> Result<MemcacheStampBuilder, StoreError> {
        Ok(MemcacheUrl::parse(url)?.builder())
    }
}

impl fmt::Display for MemcacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memcache://{}", self.address)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MemcacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcacheUrl")
            .field("address", &self.address)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn refused(url: &str, reason: &str) {
        let err = MemcacheUrl::parse(url).unwrap_err();
        let text = durabledict_core::Report(&err).to_string();
        assert!(text.contains(reason), "{url}: {text}");
        assert_eq!(err.kind(), durabledict_core::StoreErrorKind::Other, "{url}");
    }

    #[test]
    fn every_form_parses() {
        for (url, address) in [
            ("memcache://127.0.0.1:11211", "127.0.0.1:11211"),
            ("memcache://127.0.0.1:11211/", "127.0.0.1:11211"),
            ("MEMCACHE://cache.local:1", "cache.local:1"),
            ("memcache://[::1]:11211", "[::1]:11211"),
        ] {
            assert_eq!(MemcacheUrl::parse(url).unwrap().address(), address, "{url}");
        }
    }

    #[test]
    fn every_option_reaches_the_builder() {
        let url =
            MemcacheUrl::parse("memcache://h:1?connect_timeout=250ms&io_timeout=2s&max_idle=1")
                .unwrap();
        assert_eq!(url.connect_timeout(), Some(Duration::from_millis(250)));
        let shown = format!("{:?}", url.builder());
        for field in ["connect_timeout: 250ms", "io_timeout: 2s", "max_idle: 1"] {
            assert!(shown.contains(field), "{field}: {shown}");
        }
        assert_eq!(
            url.to_string(),
            "memcache://h:1?connect_timeout=250ms&io_timeout=2s&max_idle=1"
        );
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        refused("127.0.0.1:11211", "expected memcache://HOST:PORT");
        refused("redis://h:1", "\"redis\" is not memcache");
        refused("memcache://h", "no port");
        refused("memcache://:1", "empty host");
        refused("memcache://h:x", "invalid port");
        refused("memcache://u:p@h:1", "user information");
        refused("memcache://h:1/x", "path");
        refused("memcache://h:1#x", "fragment");
        refused(
            "memcache://h:1?io_timout=1s",
            "unknown query parameter `io_timout`",
        );
        refused("memcache://h:1?io_timeout=1", "`io_timeout`");
        refused("memcache://h:1?max_idle=-1", "`max_idle`");
    }
}
