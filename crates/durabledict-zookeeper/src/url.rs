//! [`ZooKeeperUrl`]: an ensemble, a keyspace path and durabledict's options in one URL.

use std::fmt;
use std::time::Duration;

use durabledict_core::{StoreError, UrlOptions};

use crate::error::ZooKeeperError;
use crate::store::{ZooKeeperStore, ZooKeeperStoreBuilder};

/// A ZooKeeper URL, checked, with durabledict's options taken from its query:
///
/// ```text
/// zk://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…][/KEYSPACE/PATH][?OPTIONS]    (also zookeeper://)
/// ```
///
/// The path, when there is one, is the keyspace znode; `USER:PASSWORD` authenticates every
/// connection under ZooKeeper's `digest` scheme
/// ([`digest_auth`](ZooKeeperStoreBuilder::digest_auth)).
///
/// | option | builder method | default |
/// |---|---|---|
/// | `session_timeout=10s` | [`session_timeout`](ZooKeeperStoreBuilder::session_timeout) | 10 s |
/// | `connect_timeout=10s` | [`connect_timeout`](ZooKeeperStoreBuilder::connect_timeout) | the session timeout |
/// | `chroot=/PATH` | the ensemble's chroot (`HOST:PORT/PATH` in the connect string) | none |
/// | `max_buffer=BYTES` | [`max_buffer`](ZooKeeperStoreBuilder::max_buffer) | 1048575 |
///
/// Durations take a unit (`250ms`, `2s`, `1m`). Any other parameter is refused by name.
/// The password is never shown by `Debug`, `Display` or an error.
///
/// ```
/// use std::time::Duration;
/// use durabledict_zookeeper::ZooKeeperUrl;
///
/// let url = ZooKeeperUrl::parse("zk://a:2181,b:2181/apps/flags?session_timeout=4s&chroot=/prod")?;
/// assert_eq!(url.connect_string(), "a:2181,b:2181/prod");
/// assert_eq!(url.keyspace(), Some("/apps/flags"));
/// assert_eq!(url.session_timeout(), Some(Duration::from_secs(4)));
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct ZooKeeperUrl {
    hosts: String,
    chroot: Option<String>,
    keyspace: Option<String>,
    digest: Option<(String, String)>,
    query: String,
    session_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    max_buffer: Option<usize>,
}

impl ZooKeeperUrl {
    /// The schemes this store reads, in lower case (a scheme matches in any case).
    pub const SCHEMES: &'static [&'static str] = &["zk", "zookeeper"];

    /// Checks `url` and takes durabledict's options from its query; connects to nothing.
    /// Fails ([`Rejected`](durabledict_core::StoreErrorKind::Rejected), as the builder's
    /// configuration errors) naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        Ok(Self::try_parse(url)?)
    }

    fn try_parse(url: &str) -> Result<Self, ZooKeeperError> {
        let invalid =
            |reason: String| ZooKeeperError::Config(format!("invalid ZooKeeper URL: {reason}"));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("`//` must follow the scheme (zk://HOST:PORT)".into()))?;
        if !Self::SCHEMES.iter().any(|s| scheme.eq_ignore_ascii_case(s)) {
            return Err(invalid(format!(
                "the scheme {scheme:?} is not one of {}",
                Self::SCHEMES.join(", ")
            )));
        }
        if rest.contains('#') {
            return Err(invalid("a ZooKeeper URL takes no fragment (#)".into()));
        }
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (digest, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let (user, password) = userinfo.split_once(':').ok_or_else(|| {
                    invalid("the user information must be USER:PASSWORD (digest)".into())
                })?;
                let decode = |text: &str| {
                    url::form_urlencoded::parse(
                        format!("x={}", text.replace('+', "%2B")).as_bytes(),
                    )
                    .map(|(_, v)| v.into_owned())
                    .next()
                    .unwrap_or_default()
                };
                let user = decode(user);
                // ZooKeeper reads the digest `USER:PASSWORD` up to its first `:`: a user name
                // holding one (written `%3A`) would authenticate as someone else.
                if user.contains(':') {
                    return Err(invalid(
                        "the digest user name contains `:`, which ZooKeeper cannot tell from \
                         the one before the password"
                            .into(),
                    ));
                }
                (Some((user, decode(password))), hosts)
            }
            None => (None, authority),
        };
        if hosts.is_empty() {
            return Err(invalid("it names no server".into()));
        }
        for server in hosts.split(',') {
            let port_ok = server.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && (!host.starts_with('[') || host.ends_with(']'))
                    && port.parse::<u16>().is_ok()
            });
            if !port_ok {
                return Err(invalid(format!("{server:?} is not HOST:PORT")));
            }
        }
        let keyspace = checked_path("path", path).map_err(invalid)?;
        let mut options = UrlOptions::new(url::form_urlencoded::parse(query.as_bytes()));
        let option = |e: durabledict_core::UrlOptionError| invalid(e.to_string());
        let session_timeout = options.duration("session_timeout").map_err(option)?;
        let connect_timeout = options.duration("connect_timeout").map_err(option)?;
        let max_buffer = options.number("max_buffer").map_err(option)?;
        let chroot = match options.text("chroot").map_err(option)? {
            Some(chroot) if !chroot.starts_with('/') => {
                return Err(invalid(format!(
                    "query parameter `chroot`: {chroot:?} is not an absolute path"
                )));
            }
            Some(chroot) => checked_path("chroot", &chroot).map_err(invalid)?,
            None => None,
        };
        options.rest(&[]).map_err(option)?;
        Ok(ZooKeeperUrl {
            hosts: hosts.to_owned(),
            chroot,
            keyspace,
            digest,
            query: query.to_owned(),
            session_timeout,
            connect_timeout,
            max_buffer,
        })
    }

    /// The connect string the client gets: the servers and the chroot.
    pub fn connect_string(&self) -> String {
        format!("{}{}", self.hosts, self.chroot.as_deref().unwrap_or(""))
    }

    /// The keyspace path the URL names, if any.
    pub fn keyspace(&self) -> Option<&str> {
        self.keyspace.as_deref()
    }

    /// The URL's `session_timeout`, if it gives one.
    pub fn session_timeout(&self) -> Option<Duration> {
        self.session_timeout
    }

    /// The URL's `connect_timeout`, if it gives one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// A builder for a store on this URL with the URL's options; its keyspace is the URL's
    /// path, else `/<default_keyspace>` (or `default_keyspace` itself when it is a path).
    pub fn builder(&self, default_keyspace: &str) -> ZooKeeperStoreBuilder {
        let keyspace = match &self.keyspace {
            Some(path) => path.clone(),
            None if default_keyspace.starts_with('/') => default_keyspace.to_owned(),
            None => format!("/{default_keyspace}"),
        };
        self.configure(ZooKeeperStore::builder(self.connect_string(), keyspace))
    }

    /// Sets on `builder` the options this URL gives (and only those).
    pub fn configure(&self, builder: ZooKeeperStoreBuilder) -> ZooKeeperStoreBuilder {
        let mut builder = builder;
        if let Some(timeout) = self.session_timeout {
            builder = builder.session_timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if let Some(bytes) = self.max_buffer {
            builder = builder.max_buffer(bytes);
        }
        if let Some((user, password)) = &self.digest {
            builder = builder.digest_auth(user, password);
        }
        builder
    }
}

impl ZooKeeperStore {
    /// A builder for a store on the ZooKeeper URL `url` (see [`ZooKeeperUrl`] for its form
    /// and query options); its keyspace is the URL's path, else `/<default_keyspace>`.
    ///
    /// ```no_run
    /// use durabledict_zookeeper::ZooKeeperStore;
    ///
    /// let store = ZooKeeperStore::builder_from_url(
    ///     "zk://127.0.0.1:2181,127.0.0.1:2182/myapp/flags?session_timeout=6s",
    ///     "unused",
    /// )?
    /// .build()?;
    /// assert_eq!(store.keyspace(), "/myapp/flags");
    /// # Ok::<(), durabledict_core::StoreError>(())
    /// ```
    pub fn builder_from_url(
        url: &str,
        default_keyspace: &str,
    ) -> Result<ZooKeeperStoreBuilder, StoreError> {
        Ok(ZooKeeperUrl::parse(url)?.builder(default_keyspace))
    }
}

/// `path` (empty or absolute) without its trailing `/`; `None` when nothing is left.
fn checked_path(what: &str, path: &str) -> Result<Option<String>, String> {
    // ZooKeeper's own check would name the path's first empty segment only as "must not be
    // empty"; say which rule the URL breaks.
    if path.contains("//") {
        return Err(format!("the {what} {path:?} has an empty segment (`//`)"));
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    Ok((!path.is_empty()).then(|| path.to_owned()))
}

impl fmt::Display for ZooKeeperUrl {
    /// The URL with its password as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("zk://")?;
        if let Some((user, _)) = &self.digest {
            write!(f, "{user}:***@")?;
        }
        write!(
            f,
            "{}{}",
            self.hosts,
            self.keyspace.as_deref().unwrap_or("")
        )?;
        if !self.query.is_empty() {
            write!(f, "?{}", self.query)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ZooKeeperUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperUrl")
            .field("url", &self.to_string())
            .field("chroot", &self.chroot)
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_buffer", &self.max_buffer)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> ZooKeeperUrl {
        ZooKeeperUrl::parse(url)
            .unwrap_or_else(|e| panic!("{url}: {}", durabledict_core::Report(&e)))
    }

    fn refused(url: &str, reason: &str) {
        let err = ZooKeeperUrl::parse(url).unwrap_err();
        let text = durabledict_core::Report(&err).to_string();
        assert!(text.contains(reason), "{url}: {text}");
    }

    #[test]
    fn every_form_parses() {
        for (url, connect, keyspace) in [
            ("zk://127.0.0.1:2181", "127.0.0.1:2181", None),
            ("zk://a:1/", "a:1", None),
            ("ZK://a:1,b:2/apps/flags/", "a:1,b:2", Some("/apps/flags")),
            ("zookeeper://a:1,b:2,c:3/x", "a:1,b:2,c:3", Some("/x")),
            ("zk://[::1]:2181/x", "[::1]:2181", Some("/x")),
            ("zk://a:1/x?chroot=/prod/", "a:1/prod", Some("/x")),
            ("zk://u:p@a:1/x", "a:1", Some("/x")),
        ] {
            let url = parsed(url);
            assert_eq!(url.connect_string(), connect, "{url}");
            assert_eq!(url.keyspace(), keyspace, "{url}");
        }
        let store = format!("{:?}", parsed("zk://a:1/apps").builder("ignored"));
        assert!(store.contains("keyspace: \"/apps\""), "{store}");
        let store = format!("{:?}", parsed("zk://a:1").builder("flags"));
        assert!(store.contains("keyspace: \"/flags\""), "{store}");
        let store = format!("{:?}", parsed("zk://a:1").builder("/abs/flags"));
        assert!(store.contains("keyspace: \"/abs/flags\""), "{store}");
    }

    #[test]
    fn every_option_reaches_the_builder() {
        let url = parsed(
            "zk://alice:wonder%20land@a:1/x?session_timeout=4s&connect_timeout=750ms&max_buffer=4096",
        );
        assert_eq!(url.session_timeout(), Some(Duration::from_secs(4)));
        assert_eq!(url.connect_timeout(), Some(Duration::from_millis(750)));
        assert_eq!(url.digest, Some(("alice".into(), "wonder land".into())));
        let shown = format!("{:?}", url.builder("ks"));
        for field in [
            "session_timeout: 4s",
            "connect_timeout: Some(750ms)",
            "max_buffer: 4096",
            "auth_schemes: [\"digest\"]",
        ] {
            assert!(shown.contains(field), "{field}: {shown}");
        }
        let plain = format!("{:?}", parsed("zk://a:1").builder("ks"));
        assert!(plain.contains("session_timeout: 10s"), "{plain}");
        assert!(plain.contains("connect_timeout: None"), "{plain}");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        refused("zk:a:1", "`//`");
        refused("http://a:1", "\"http\" is not one of zk, zookeeper");
        refused("zk:///x", "no server");
        refused("zk://a:1,b/x", "\"b\" is not HOST:PORT");
        refused("zk://a:port/x", "\"a:port\" is not HOST:PORT");
        refused(
            "zk://127.0.0.1:1//x",
            "the path \"//x\" has an empty segment (`//`)",
        );
        refused(
            "zk://a:1/apps//flags",
            "the path \"/apps//flags\" has an empty segment",
        );
        refused("zk://a:1/x#frag", "fragment");
        refused("zk://u@a:1/x", "USER:PASSWORD");
        refused("zk://al%3Aice:pw@a:1/x", "user name contains `:`");
        refused(
            "zk://a:1/x?session_timout=4s",
            "unknown query parameter `session_timout`",
        );
        refused("zk://a:1/x?session_timeout=4000", "`session_timeout`");
        refused("zk://a:1/x?max_buffer=big", "`max_buffer`");
        refused("zk://a:1/x?chroot=prod", "`chroot`");
        refused(
            "zk://a:1/x?chroot=/a//b",
            "the chroot \"/a//b\" has an empty segment",
        );
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = parsed("zk://app:s3cret@a:1/x?session_timeout=4s");
        assert_eq!(url.to_string(), "zk://app:***@a:1/x?session_timeout=4s");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert!(!format!("{:?}", url.builder("ks")).contains("s3cret"));
        for bad in ["zk://app:s3cret@a/x", "zk://app:s3cret@a:1/x?nope=1"] {
            let err = ZooKeeperUrl::parse(bad).unwrap_err();
            assert!(
                !durabledict_core::Report(&err)
                    .to_string()
                    .contains("s3cret")
            );
            assert!(!format!("{err:?}").contains("s3cret"));
        }
    }
}
