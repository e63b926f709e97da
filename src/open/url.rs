//! Store URLs: which backend a URL names, checked before any backend sees it.

use durabledict_core::Store;

use super::{OpenError, OpenOptions};

const SQLITE: &str = "sqlite:PATH, sqlite://PATH or sqlite::memory:";
const POSTGRES: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
const MYSQL: &str = "mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
const REDIS: &str = "redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB] (or rediss://…)";
const REDIS_UNIX: &str = "redis+unix:///PATH[?db=DB]";
const ZOOKEEPER: &str = "zk://HOST:PORT[,HOST:PORT…][/PATH]";
const EVERY: &str = "sqlite:PATH, sqlite::memory:, postgres://USER@HOST:PORT/DATABASE, \
                     mysql://USER@HOST:PORT/DATABASE, \
                     redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB], rediss://…, \
                     redis+unix:///PATH[?db=DB], zk://HOST:PORT[,HOST:PORT…][/PATH]";

/// A store URL whose form has been checked.
#[derive(Debug)]
pub(crate) enum StoreUrl<'a> {
    /// SQLite, PostgreSQL or MySQL: diesel takes the URL as it is.
    Sql { url: &'a str, backend: Sql },
    /// One Redis server; the redis client takes the URL as it is.
    Redis { url: &'a str, scheme: &'a str },
    /// A ZooKeeper ensemble and, when the URL has one, the keyspace path.
    ZooKeeper {
        hosts: &'a str,
        path: Option<&'a str>,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Sql {
    Sqlite,
    Postgres,
    Mysql,
}

impl<'a> StoreUrl<'a> {
    /// Checks the URL's form; connects to nothing.
    pub(crate) fn parse(url: &'a str) -> Result<Self, OpenError> {
        let scheme = scheme(url).ok_or_else(|| OpenError::UnknownScheme {
            scheme: String::new(),
            url: mask_password(url),
            expected: EVERY,
        })?;
        let rest = &url[scheme.len() + 1..];
        let invalid = |reason: &str, expected: &'static str| OpenError::InvalidUrl {
            url: mask_password(url),
            reason: reason.to_owned(),
            expected,
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(invalid("it names no file", SQLITE));
                }
                Ok(StoreUrl::Sql {
                    url,
                    backend: Sql::Sqlite,
                })
            }
            "postgres" | "postgresql" => {
                if !rest.starts_with("//") {
                    return Err(invalid("`//` must follow the scheme", POSTGRES));
                }
                Ok(StoreUrl::Sql {
                    url,
                    backend: Sql::Postgres,
                })
            }
            "mysql" | "mariadb" => {
                let Some(after) = rest.strip_prefix("//") else {
                    return Err(invalid("`//` must follow the scheme", MYSQL));
                };
                if host_part(authority(after)).is_empty() {
                    return Err(invalid("it names no host", MYSQL));
                }
                Ok(StoreUrl::Sql {
                    url,
                    backend: Sql::Mysql,
                })
            }
            "redis" | "rediss" => {
                let Some(after) = rest.strip_prefix("//") else {
                    return Err(invalid("`//` must follow the scheme", REDIS));
                };
                let authority = authority(after);
                let host = host_part(authority);
                if host.is_empty() {
                    return Err(invalid("it names no host", REDIS));
                }
                if let Some((_, port)) = split_port(host)
                    && port.parse::<u16>().is_err()
                {
                    return Err(invalid(
                        &format!("the port {port:?} is not a number"),
                        REDIS,
                    ));
                }
                let path = after[authority.len()..]
                    .split(['?', '#'])
                    .next()
                    .unwrap_or("");
                let db = path.trim_start_matches('/');
                if !db.is_empty() && db.parse::<u32>().is_err() {
                    return Err(invalid(
                        &format!("the database {db:?} is not a number"),
                        REDIS,
                    ));
                }
                Ok(StoreUrl::Redis { url, scheme })
            }
            "redis+unix" | "unix" => {
                let Some(after) = rest.strip_prefix("//") else {
                    return Err(invalid("`//` must follow the scheme", REDIS_UNIX));
                };
                if !after.starts_with('/') {
                    return Err(invalid("the socket path must be absolute", REDIS_UNIX));
                }
                Ok(StoreUrl::Redis { url, scheme })
            }
            "zk" | "zookeeper" => {
                let Some(after) = rest.strip_prefix("//") else {
                    return Err(invalid("`//` must follow the scheme", ZOOKEEPER));
                };
                let hosts = after.split('/').next().unwrap_or("");
                if hosts.is_empty() {
                    return Err(invalid("it names no server", ZOOKEEPER));
                }
                for server in hosts.split(',') {
                    match split_port(server) {
                        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                        _ => {
                            return Err(invalid(
                                &format!("{server:?} is not HOST:PORT"),
                                ZOOKEEPER,
                            ));
                        }
                    }
                }
                let path = &after[hosts.len()..];
                // ZooKeeper's own check would name the path's first empty segment only as
                // "must not be empty"; say which rule the URL breaks.
                if path.contains("//") {
                    return Err(invalid(
                        &format!("the path {path:?} has an empty segment (`//`)"),
                        ZOOKEEPER,
                    ));
                }
                let path = path.strip_suffix('/').unwrap_or(path);
                Ok(StoreUrl::ZooKeeper {
                    hosts,
                    path: (!path.is_empty()).then_some(path),
                })
            }
            _ => Err(OpenError::UnknownScheme {
                scheme: scheme.to_owned(),
                url: mask_password(url),
                expected: EVERY,
            }),
        }
    }

    /// Whether the store takes a stamp kept elsewhere (SQL), rather than keeping its own.
    pub(crate) fn takes_external_stamp(&self) -> bool {
        matches!(self, StoreUrl::Sql { .. })
    }

    /// The backend's name, for messages.
    pub(crate) fn backend_name(&self) -> &'static str {
        match self {
            StoreUrl::Sql {
                backend: Sql::Sqlite,
                ..
            } => "SQLite",
            StoreUrl::Sql {
                backend: Sql::Postgres,
                ..
            } => "PostgreSQL",
            StoreUrl::Sql {
                backend: Sql::Mysql,
                ..
            } => "MySQL",
            StoreUrl::Redis { .. } => "Redis",
            StoreUrl::ZooKeeper { .. } => "ZooKeeper",
        }
    }

    /// Makes the store. Only ZooKeeper connects here; the others connect on first use.
    pub(crate) fn build(&self, options: &OpenOptions) -> Result<Box<dyn Store>, OpenError> {
        match *self {
            StoreUrl::Sql { url, backend } => sql(url, backend, options),
            StoreUrl::Redis { url, scheme } => redis(url, scheme, options),
            StoreUrl::ZooKeeper { hosts, path } => zookeeper(hosts, path, options),
        }
    }
}

/// Checks the form of a memcached stamp URL.
pub(crate) fn check_stamp_url(url: &str) -> Result<(), OpenError> {
    const MEMCACHE: &str = "memcache://HOST:PORT";
    let wrong = || OpenError::InvalidOption {
        option: "stamp",
        reason: format!(
            "{:?} is not a memcached URL; expected {MEMCACHE}",
            mask_password(url)
        ),
    };
    let addr = url.strip_prefix("memcache://").ok_or_else(wrong)?;
    match split_port(addr.trim_end_matches('/')) {
        Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(wrong()),
    }
}

fn disabled(scheme: &str, feature: &'static str) -> OpenError {
    OpenError::FeatureDisabled {
        scheme: scheme.to_owned(),
        feature,
    }
}

fn sql(url: &str, backend: Sql, options: &OpenOptions) -> Result<Box<dyn Store>, OpenError> {
    let (enabled, scheme, feature) = match backend {
        Sql::Sqlite => (cfg!(feature = "sqlite"), "sqlite", "sqlite"),
        Sql::Postgres => (cfg!(feature = "postgres"), "postgres", "postgres"),
        Sql::Mysql => (cfg!(feature = "mysql"), "mysql", "mysql"),
    };
    if !enabled {
        return Err(disabled(scheme, feature));
    }
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    {
        let mut builder = durabledict_diesel::SqlStore::builder(url)
            .table(options.keyspace.as_str())
            .connection_timeout(options.connect_timeout)
            .create_missing(options.create_missing);
        if let Some(stamp) = &options.stamp {
            builder = builder.stamp(memcache_stamp(stamp, options)?);
        }
        let store = builder.build().map_err(OpenError::from_builder)?;
        Ok(Box::new(store))
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    {
        let _ = (url, options);
        Err(disabled(scheme, feature))
    }
}

/// The memcached stamp named by `url`, keyed by the stamp key or else by the keyspace.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
fn memcache_stamp(
    url: &str,
    options: &OpenOptions,
) -> Result<impl durabledict_core::Stamp + 'static, OpenError> {
    #[cfg(feature = "memcache")]
    {
        let builder = durabledict_memcache_stamp::MemcacheStamp::builder(url)
            .connect_timeout(options.connect_timeout);
        let builder = match &options.stamp_key {
            Some(key) => builder.key(key.as_str()),
            None => builder.keyspace(&options.keyspace),
        };
        builder.build().map_err(OpenError::from_builder)
    }
    #[cfg(not(feature = "memcache"))]
    {
        let _ = (url, options);
        Err::<durabledict_core::MemoryStamp, _>(disabled("memcache", "memcache"))
    }
}

fn redis(url: &str, scheme: &str, options: &OpenOptions) -> Result<Box<dyn Store>, OpenError> {
    // Checked here rather than left to the redis client, whose own message names none of
    // durabledict's features.
    if scheme.eq_ignore_ascii_case("rediss") && !cfg!(feature = "redis-tls") {
        return Err(disabled(scheme, "redis-tls"));
    }
    #[cfg(feature = "redis")]
    {
        let store = durabledict_redis::RedisStore::builder(url, &options.keyspace)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(OpenError::from_builder)?;
        Ok(Box::new(store))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, options);
        Err(disabled(scheme, "redis"))
    }
}

fn zookeeper(
    hosts: &str,
    path: Option<&str>,
    options: &OpenOptions,
) -> Result<Box<dyn Store>, OpenError> {
    #[cfg(feature = "zookeeper")]
    {
        let keyspace = match path {
            Some(path) => path.to_owned(),
            None if options.keyspace.starts_with('/') => options.keyspace.clone(),
            None => format!("/{}", options.keyspace),
        };
        let store = durabledict_zookeeper::ZooKeeperStore::builder(hosts, keyspace)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(OpenError::from_builder)?;
        Ok(Box::new(store))
    }
    #[cfg(not(feature = "zookeeper"))]
    {
        let _ = (hosts, path, options);
        Err(disabled("zk", "zookeeper"))
    }
}

/// The scheme: letters, digits, `+`, `-`, `.`, starting with a letter, before the first `:`.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// The authority of what follows `//`: up to the path, query or fragment.
fn authority(after_slashes: &str) -> &str {
    let end = after_slashes
        .find(['/', '?', '#'])
        .unwrap_or(after_slashes.len());
    &after_slashes[..end]
}

/// The authority without its user information.
fn host_part(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// `host:port` split at the port (`[v6]:port` included); `None` when there is no port.
fn split_port(host: &str) -> Option<(&str, &str)> {
    let (name, port) = host.rsplit_once(':')?;
    if name.starts_with('[') && !name.ends_with(']') {
        return None;
    }
    Some((name, port))
}

/// The URL with the password of its user information replaced by `***`, for messages.
pub(crate) fn mask_password(url: &str) -> String {
    let Some(start) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let authority = authority(&url[start..]);
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = userinfo.split_once(':') else {
        return url.to_owned();
    };
    format!(
        "{}{user}:***{}",
        &url[..start],
        &url[start + userinfo.len()..]
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn expect_invalid(url: &str, reason: &str) {
        match StoreUrl::parse(url) {
            Err(OpenError::InvalidUrl { reason: r, .. }) => {
                assert!(r.contains(reason), "{url}: {r}")
            }
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn known_forms_parse() {
        assert!(matches!(
            StoreUrl::parse("sqlite:durabledict.db"),
            Ok(StoreUrl::Sql {
                backend: Sql::Sqlite,
                ..
            })
        ));
        assert!(matches!(
            StoreUrl::parse("sqlite::memory:"),
            Ok(StoreUrl::Sql { .. })
        ));
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h:5432/db"),
            Ok(StoreUrl::Sql {
                backend: Sql::Postgres,
                ..
            })
        ));
        assert!(matches!(
            StoreUrl::parse("mariadb://root@h/db"),
            Ok(StoreUrl::Sql {
                backend: Sql::Mysql,
                ..
            })
        ));
        assert!(matches!(
            StoreUrl::parse("redis://:pw@127.0.0.1:6379/3"),
            Ok(StoreUrl::Redis { .. })
        ));
        assert!(matches!(
            StoreUrl::parse("redis+unix:///run/redis.sock?db=2"),
            Ok(StoreUrl::Redis { .. })
        ));
        match StoreUrl::parse("zk://a:1,b:2/apps/flags/") {
            Ok(StoreUrl::ZooKeeper { hosts, path }) => {
                assert_eq!(hosts, "a:1,b:2");
                assert_eq!(path, Some("/apps/flags"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            StoreUrl::parse("zk://a:1/"),
            Ok(StoreUrl::ZooKeeper { path: None, .. })
        ));
    }

    #[test]
    fn malformed_urls_say_what_is_wrong() {
        expect_invalid("sqlite:", "no file");
        expect_invalid("postgres:db", "`//`");
        expect_invalid("mysql:///db", "no host");
        expect_invalid("redis://h:port", "not a number");
        expect_invalid("redis://h:6379/zero", "database \"zero\"");
        expect_invalid("redis+unix://relative.sock", "absolute");
        expect_invalid("zk://a:1,b/x", "\"b\" is not HOST:PORT");
        expect_invalid("zk:///x", "no server");
    }

    #[test]
    fn a_zookeeper_path_with_an_empty_segment_says_so() {
        for (url, path) in [
            ("zk://127.0.0.1:1//x", "//x"),
            ("zk://a:1/apps//flags", "/apps//flags"),
            ("zk://a:1/apps//", "/apps//"),
        ] {
            expect_invalid(
                url,
                &format!("the path {path:?} has an empty segment (`//`)"),
            );
        }
    }

    #[test]
    fn unknown_schemes_list_the_known_ones() {
        for url in ["ftp://x", "durabledict.db", "", "1x:y"] {
            let err = StoreUrl::parse(url).unwrap_err();
            assert!(matches!(err, OpenError::UnknownScheme { .. }), "{url}");
            assert!(err.to_string().contains("zk://HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn options_that_do_not_fit_the_store_are_refused() {
        let stamped = OpenOptions::new().stamp("memcache://127.0.0.1:11211");
        for url in ["redis://127.0.0.1:1/", "zk://127.0.0.1:1/x"] {
            let err = crate::open_store(url, &stamped).err().unwrap();
            assert!(
                matches!(
                    err,
                    OpenError::InvalidOption {
                        option: "stamp",
                        ..
                    }
                ),
                "{url}: {err}"
            );
        }
        let keyed = OpenOptions::new().stamp_key("k");
        let err = crate::open_store("sqlite::memory:", &keyed).err().unwrap();
        assert!(matches!(
            err,
            OpenError::InvalidOption {
                option: "stamp key",
                ..
            }
        ));
        let bad = OpenOptions::new().stamp("127.0.0.1:11211");
        let err = crate::open_store("sqlite::memory:", &bad).err().unwrap();
        assert!(
            err.to_string().contains("expected memcache://HOST:PORT"),
            "{err}"
        );
        assert!(err.is_usage());
    }

    #[test]
    #[cfg(not(feature = "mysql"))]
    fn a_backend_compiled_out_names_its_feature() {
        let err = crate::open_store("mysql://root@127.0.0.1/db", &OpenOptions::new())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "mysql: URLs need durabledict's `mysql` cargo feature, which this build was \
             compiled without"
        );
        assert!(err.is_usage());
    }

    #[test]
    #[cfg(not(feature = "redis-tls"))]
    fn rediss_without_tls_names_its_feature() {
        let err = crate::open_store("rediss://127.0.0.1:1/", &OpenOptions::new())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "rediss: URLs need durabledict's `redis-tls` cargo feature, which this build was \
             compiled without"
        );
        assert!(err.is_usage());
    }

    #[test]
    #[cfg(feature = "redis-tls")]
    fn rediss_with_tls_connects_on_first_use() {
        // Building connects to nothing: an unreachable server fails the first request.
        let store = crate::open_store("rediss://127.0.0.1:1/", &OpenOptions::new()).unwrap();
        assert!(store.last_updated().is_err());
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn without_create_missing_an_sql_store_opens_only_what_exists() {
        let path =
            std::env::temp_dir().join(format!("open-create-missing-{}.db", std::process::id()));
        let url = format!("sqlite:{}", path.display());
        let reader = OpenOptions::new().create_missing(false);
        assert!(!reader.creates_missing());
        let store = crate::open_store(&url, &reader).unwrap();
        assert!(store.get("k").is_err());
        let err = store.init().unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(!path.exists(), "a reader created {}", path.display());

        // Once a writer made the table, the reader reads it; another table is still missing.
        let writer = crate::open_store(&url, &OpenOptions::new()).unwrap();
        writer.init().unwrap();
        writer.persist("k", b"v").unwrap();
        let store = crate::open_store(&url, &reader).unwrap();
        assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        let other = crate::open_store(&url, &reader.clone().keyspace("other")).unwrap();
        let err = other.durables().unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
        drop((writer, store, other));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    #[cfg(feature = "sqlite")]
    fn the_keyspace_is_the_sql_table() {
        let err = crate::open_store("sqlite::memory:", &OpenOptions::new().keyspace("a-b"))
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::Config(_)), "{err}");
        assert!(err.to_string().contains("\"a-b\""), "{err}");
        let dict = crate::open("sqlite::memory:", &OpenOptions::new().keyspace("a_b")).unwrap();
        assert!(dict.is_empty().unwrap());
    }

    #[test]
    fn passwords_are_masked_in_messages() {
        assert_eq!(
            mask_password("postgres://me:s3cret@h/db"),
            "postgres://me:***@h/db"
        );
        assert_eq!(mask_password("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(mask_password("redis://h:1/0"), "redis://h:1/0");
        let err = StoreUrl::parse("redis://:pw@h:x").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
