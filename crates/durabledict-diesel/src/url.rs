//! The SQL store's URLs: which backend a URL names ([`target`], what
//! [`SqlStore::builder`] reads) and [`SqlUrl`], the same URL with durabledict's query options.

use std::fmt;
use std::time::Duration;

use durabledict_core::{StoreError, UrlOptions};

use crate::builder::SqlStoreBuilder;
use crate::dialect::Backend;
use crate::error::SqlError;
use crate::store::SqlStore;

/// Where a URL points.
pub(crate) enum Target {
    Sqlite { path: String, memory: bool },
    Postgres(String),
    Mysql(String),
}

/// The schemes, in lower case, and the backend each names.
const SCHEMES: &[(&str, Backend)] = &[
    ("sqlite", Backend::Sqlite),
    ("file", Backend::Sqlite),
    ("postgres", Backend::Postgres),
    ("postgresql", Backend::Postgres),
    ("mysql", Backend::Mysql),
    ("mariadb", Backend::Mysql),
];

/// Reads the backend and the driver's connection string from a URL or a SQLite path. Schemes
/// match in any case (as URL schemes do); the drivers get them in lower case. A string whose
/// scheme is not one of [`SCHEMES`] is a SQLite path, but one whose scheme is (`postgres:db`)
/// must have that scheme's form.
pub(crate) fn target(url: &str) -> Result<Target, SqlError> {
    let sqlite = |path: &str| {
        let memory = path == ":memory:";
        if path.is_empty() {
            return Err(SqlError::Config(
                "invalid SQLite URL: it names no file (sqlite::memory: is an in-memory database)"
                    .into(),
            ));
        }
        Ok(Target::Sqlite {
            path: path.into(),
            memory,
        })
    };
    let after = |scheme: &str| {
        url.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    };
    if let Some(rest) = after("sqlite://").or_else(|| after("sqlite:")) {
        sqlite(rest)
    } else if let Some(rest) = after("file:") {
        // SQLite recognises only a lower-case `file:` as a URI.
        sqlite(&format!("file:{rest}"))
    } else if url == ":memory:" {
        sqlite(url)
    } else if let Some(rest) = after("postgres://") {
        Ok(Target::Postgres(format!("postgres://{rest}")))
    } else if let Some(rest) = after("postgresql://") {
        Ok(Target::Postgres(format!("postgresql://{rest}")))
    } else if let Some(rest) = after("mysql://").or_else(|| after("mariadb://")) {
        Ok(Target::Mysql(format!("mysql://{rest}")))
    } else if let Some(scheme) = scheme(url)
        && SCHEMES.iter().any(|(s, _)| scheme.eq_ignore_ascii_case(s))
    {
        Err(SqlError::Config(format!(
            "invalid database URL: `//` must follow the scheme {scheme:?} (postgres://, mysql://)"
        )))
    } else if !url.contains("://") && !url.is_empty() {
        sqlite(url)
    } else {
        Err(SqlError::Config(
            "unsupported database URL: use sqlite:, file:, postgres:// or mysql://".into(),
        ))
    }
}

/// The scheme: letters, digits, `+`, `-`, `.`, starting with a letter, before the first `:`.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// SQLite's own URI parameters (<https://sqlite.org/uri.html>), passed on in a `file:` URI.
const SQLITE_URI_PARAMETERS: &[&str] = &[
    "vfs",
    "mode",
    "cache",
    "psow",
    "nolock",
    "immutable",
    "modeof",
];
/// libpq's connection parameters (PostgreSQL 17), passed on.
const LIBPQ_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "require_auth",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "ssl",
];
/// The parameters diesel's MySQL connection reads, passed on.
const MYSQL_PARAMETERS: &[&str] = &["unix_socket", "ssl_ca", "ssl_cert", "ssl_key", "ssl_mode"];
/// Parameters whose values are secrets, masked when a URL is shown.
const SECRET_PARAMETERS: &[&str] = &["password", "sslpassword"];

/// An SQL store URL, checked, with durabledict's options taken from its query:
///
/// | URL | backend |
/// |---|---|
/// | `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:`, a bare `PATH` (no query) | SQLite |
/// | `file:PATH[?SQLite URI parameters]` (`mode=ro`, `immutable=1`, …) | SQLite |
/// | `postgres://…`, `postgresql://…` (libpq's URI, its parameters passed on) | PostgreSQL |
/// | `mysql://…`, `mariadb://…` (`ssl_mode`, `ssl_ca`, `unix_socket`, … passed on) | MySQL |
///
/// | option | builder method | default |
/// |---|---|---|
/// | `pool_size=4` | [`pool_size`](SqlStoreBuilder::pool_size): most connections open | 4 |
/// | `connect_timeout=3s` | [`connection_timeout`](SqlStoreBuilder::connection_timeout) (PostgreSQL: also libpq's, in whole seconds) | 3 s |
/// | `busy_timeout=5s` | [`busy_timeout`](SqlStoreBuilder::busy_timeout) (SQLite) | 5 s |
///
/// Durations take a unit (`250ms`, `2s`, `1m`). Any other parameter is refused by name.
/// Passwords are never shown by `Debug`, `Display` or an error.
///
/// ```
/// use durabledict_diesel::{Backend, SqlUrl};
///
/// let url = SqlUrl::parse("postgres://app:s3cret@db.example/flags?pool_size=1&sslmode=require")?;
/// assert_eq!(url.backend(), Backend::Postgres);
/// assert_eq!(url.to_string(), "postgres://app:***@db.example/flags?pool_size=1&sslmode=require");
///
/// let typo = SqlUrl::parse("sqlite:flags.db?pool_sise=1").unwrap_err();
/// let text = durabledict_core::Report(&typo).to_string();
/// assert!(text.contains("unknown query parameter `pool_sise`"), "{text}");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct SqlUrl {
    given: String,
    /// What [`SqlStore::builder`] reads: the URL without durabledict's options.
    driver: String,
    backend: Backend,
    pool_size: Option<u32>,
    connect_timeout: Option<Duration>,
    busy_timeout: Option<Duration>,
}

impl SqlUrl {
    /// The schemes this store reads, in lower case (a scheme matches in any case); a string
    /// without a scheme is a SQLite path.
    pub const SCHEMES: &'static [&'static str] = &[
        "sqlite",
        "file",
        "postgres",
        "postgresql",
        "mysql",
        "mariadb",
    ];

    /// Checks `url` and takes durabledict's options from its query; connects to nothing.
    /// Fails ([`Other`](durabledict_core::StoreErrorKind::Other)) naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        Ok(Self::try_parse(url)?)
    }

    fn try_parse(url: &str) -> Result<Self, SqlError> {
        let with_scheme = scheme(url).is_some_and(|s| {
            SCHEMES
                .iter()
                .any(|(known, _)| s.eq_ignore_ascii_case(known))
        });
        // A bare path is a path: a `?` in it is part of the file's name.
        let (base, query) = match url.split_once('?') {
            Some((base, query)) if with_scheme => (base, query),
            _ => (url, ""),
        };
        let backend = match target(base)? {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
            Target::Mysql(driver) => {
                let authority = driver["mysql://".len()..]
                    .split(['/', '#'])
                    .next()
                    .unwrap_or("");
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                if host.is_empty() {
                    return Err(SqlError::Config(
                        "invalid MySQL URL: it names no host".into(),
                    ));
                }
                Backend::Mysql
            }
        };
        let file_uri = base
            .get(..5)
            .is_some_and(|head| head.eq_ignore_ascii_case("file:"));
        let passed_on = match backend {
            Backend::Sqlite if file_uri => SQLITE_URI_PARAMETERS,
            Backend::Sqlite => &[],
            Backend::Postgres => LIBPQ_PARAMETERS,
            Backend::Mysql => MYSQL_PARAMETERS,
        };
        let mut options = UrlOptions::new(url::form_urlencoded::parse(query.as_bytes()));
        let option = |e: durabledict_core::UrlOptionError| {
            SqlError::Config(format!("invalid database URL: {e}"))
        };
        let pool_size = options.number::<u32>("pool_size").map_err(option)?;
        if pool_size == Some(0) {
            return Err(SqlError::Config(
                "invalid database URL: query parameter `pool_size`: a pool needs at least one \
                 connection"
                    .into(),
            ));
        }
        let connect_timeout = match options.text("connect_timeout").map_err(option)? {
            // libpq reads `connect_timeout` too, in whole seconds without a unit: a PostgreSQL
            // URL may say it either way, and both the pool and libpq get it.
            Some(seconds)
                if backend == Backend::Postgres && seconds.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match seconds.parse::<u64>().map(Duration::from_secs) {
                    Ok(timeout) if !timeout.is_zero() && timeout <= UrlOptions::MAX_DURATION => {
                        Some(timeout)
                    }
                    _ => {
                        return Err(SqlError::Config(format!(
                            "invalid database URL: query parameter `connect_timeout`: \
                             {seconds:?} is not a duration longer than zero and of at most a day"
                        )));
                    }
                }
            }
            Some(text) => UrlOptions::new([("connect_timeout", text)])
                .duration("connect_timeout")
                .map_err(option)?,
            None => None,
        };
        let busy_timeout = match backend {
            Backend::Sqlite => options.duration("busy_timeout").map_err(option)?,
            _ => None,
        };
        let ours = ["pool_size", "connect_timeout", "busy_timeout"];
        options.rest(passed_on).map_err(option)?;
        // The driver gets the query as written (re-encoding could change what it reads: libpq
        // takes `+` literally), less durabledict's options.
        let mut kept: Vec<String> = Vec::new();
        for segment in query.split('&').filter(|s| !s.is_empty()) {
            let name = segment.split('=').next().unwrap_or("");
            let name: String = url::form_urlencoded::parse(name.as_bytes())
                .map(|(n, _)| n.into_owned())
                .next()
                .unwrap_or_default();
            if name == "connect_timeout" && backend == Backend::Postgres {
                let seconds = connect_timeout.map_or(0, |t| t.as_secs_f64().ceil() as u64);
                kept.push(format!("connect_timeout={}", seconds.max(1)));
                continue;
            }
            if !ours.contains(&name.as_str()) {
                kept.push(segment.to_owned());
            }
        }
        let driver = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(SqlUrl {
            given: url.to_owned(),
            driver,
            backend,
            pool_size,
            connect_timeout,
            busy_timeout,
        })
    }

    /// The backend the URL names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A builder for a store on this URL with the URL's options.
    pub fn builder(&self) -> SqlStoreBuilder {
        self.configure(SqlStore::builder(self.driver.clone()))
    }

    /// Sets on `builder` the options this URL gives (and only those).
    pub fn configure(&self, builder: SqlStoreBuilder) -> SqlStoreBuilder {
        let mut builder = builder;
        if let Some(size) = self.pool_size {
            builder = builder.pool_size(size);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connection_timeout(timeout);
        }
        if let Some(timeout) = self.busy_timeout {
            builder = builder.busy_timeout(timeout);
        }
        builder
    }

    /// The URL's `connect_timeout`, if it gives one.
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }
}

impl SqlStore {
    /// A builder for a store on the database URL `url` (see [`SqlUrl`] for its forms and query
    /// options). Unlike [`builder`](Self::builder), which hands the URL to the driver as it
    /// is, this reads durabledict's options from the query and refuses any parameter that
    /// neither it nor the driver knows.
    ///
    /// ```
    /// use durabledict_diesel::SqlStore;
    ///
    /// let store = SqlStore::from_url("sqlite::memory:?busy_timeout=1s")?.table("flags").build()?;
    /// assert_eq!(store.table(), "flags");
    /// # Ok::<(), durabledict_core::StoreError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<SqlStoreBuilder, StoreError> {
        Ok(SqlUrl::parse(url)?.builder())
    }
}

impl fmt::Display for SqlUrl {
    /// The URL with its password (user information, `password=`, `sslpassword=`) as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.given))
    }
}

impl fmt::Debug for SqlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUrl")
            .field("url", &self.to_string())
            .field("backend", &self.backend)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .finish()
    }
}

/// `url` with the password of its user information and of secret parameters as `***`. A
/// password with an unencoded `/`, `?` or `#` (`postgres://app:a/b@host/db`, which libpq reads
/// as host `app`, port `a`) is masked up to the URL's last `@`: more than the password, never
/// less.
fn mask(url: &str) -> String {
    if let Some(start) = url.find("://").map(|at| at + 3)
        && let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |e| start + e)
        && let Some(last_at) = url.rfind('@').filter(|&at| at > end)
        && let Some(colon) = url[start..last_at].find(':')
    {
        return format!("{}***{}", &url[..start + colon + 1], mask(&url[last_at..]));
    }
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut shown = match base.find("://") {
        Some(at) => {
            let start = at + 3;
            let end = base[start..]
                .find(['/', '#'])
                .map_or(base.len(), |e| start + e);
            let authority = &base[start..end];
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:***@{host}{}", &base[..start], &base[end..])
                    }
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if !query.is_empty() {
        let masked: Vec<String> = query
            .split('&')
            .map(|segment| {
                let name = segment.split('=').next().unwrap_or("");
                if SECRET_PARAMETERS.contains(&name) {
                    format!("{name}=***")
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        shown.push('?');
        shown.push_str(&masked.join("&"));
    }
    shown
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> SqlUrl {
        SqlUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {}", durabledict_core::Report(&e)))
    }

    fn refused(url: &str, reason: &str) {
        let err = SqlUrl::parse(url).unwrap_err();
        let text = durabledict_core::Report(&err).to_string();
        assert!(text.contains(reason), "{url}: {text}");
        assert_eq!(err.kind(), durabledict_core::StoreErrorKind::Other, "{url}");
    }

    #[test]
    fn urls_name_their_backend() {
        let sqlite_path = |url: &str| match target(url) {
            Ok(Target::Sqlite { path, memory }) => Some((path, memory)),
            _ => None,
        };
        assert_eq!(
            sqlite_path("sqlite::memory:"),
            Some((":memory:".into(), true))
        );
        assert_eq!(sqlite_path(":memory:"), Some((":memory:".into(), true)));
        assert_eq!(
            sqlite_path("sqlite://rel/x.db"),
            Some(("rel/x.db".into(), false))
        );
        assert_eq!(
            sqlite_path("sqlite:///abs/x.db"),
            Some(("/abs/x.db".into(), false))
        );
        assert_eq!(sqlite_path("/abs/x.db"), Some(("/abs/x.db".into(), false)));
        assert_eq!(sqlite_path("x:y.db"), Some(("x:y.db".into(), false)));
        assert!(matches!(
            target("postgresql://h/db"),
            Ok(Target::Postgres(_))
        ));
        assert!(matches!(target("mariadb://h/db"), Ok(Target::Mysql(u)) if u == "mysql://h/db"));
        assert!(target("redis://h").is_err());
        assert!(target("sqlite:").is_err());
        assert!(target("").is_err());
        // A known scheme without its `//` is not a file name.
        assert!(target("postgres:db").is_err());
        assert!(target("MySQL:db").is_err());
    }

    /// URL schemes are case-insensitive; the drivers get them in lower case.
    #[test]
    fn schemes_match_in_any_case() {
        assert!(
            matches!(target("SQLITE:upper.db"), Ok(Target::Sqlite { path, memory: false }) if path == "upper.db")
        );
        assert!(
            matches!(target("SQLite://rel/x.db"), Ok(Target::Sqlite { path, .. }) if path == "rel/x.db")
        );
        assert!(
            matches!(target("FILE:x.db?mode=ro"), Ok(Target::Sqlite { path, .. }) if path == "file:x.db?mode=ro")
        );
        assert!(
            matches!(target("POSTGRES://u@h/db"), Ok(Target::Postgres(u)) if u == "postgres://u@h/db")
        );
        assert!(
            matches!(target("PostgreSQL://h/db"), Ok(Target::Postgres(u)) if u == "postgresql://h/db")
        );
        assert!(matches!(target("MySQL://h/db"), Ok(Target::Mysql(u)) if u == "mysql://h/db"));
        assert!(matches!(target("MARIADB://h/db"), Ok(Target::Mysql(u)) if u == "mysql://h/db"));
        assert!(target("REDIS://h").is_err());
    }

    #[test]
    fn every_form_parses_and_the_driver_gets_it_without_our_options() {
        for (url, backend, driver) in [
            ("sqlite:x.db", Backend::Sqlite, "sqlite:x.db"),
            ("sqlite::memory:", Backend::Sqlite, "sqlite::memory:"),
            (
                "sqlite:///abs/x.db?pool_size=2",
                Backend::Sqlite,
                "sqlite:///abs/x.db",
            ),
            ("x.db", Backend::Sqlite, "x.db"),
            ("odd?name.db", Backend::Sqlite, "odd?name.db"),
            (
                "file:x.db?mode=ro&pool_size=1&busy_timeout=1s",
                Backend::Sqlite,
                "file:x.db?mode=ro",
            ),
            (
                "postgres://u:p@h:5432/db?sslmode=disable&pool_size=1&options=-c%20a%3Db+c",
                Backend::Postgres,
                "postgres://u:p@h:5432/db?sslmode=disable&options=-c%20a%3Db+c",
            ),
            (
                "postgresql://h1:1,h2:2/db?connect_timeout=1500ms",
                Backend::Postgres,
                "postgresql://h1:1,h2:2/db?connect_timeout=2",
            ),
            (
                "mysql://root@h/db?pool_size=2",
                Backend::Mysql,
                "mysql://root@h/db",
            ),
            (
                "mariadb://root@h:3306/db?ssl_mode=disabled&connect_timeout=1s",
                Backend::Mysql,
                "mariadb://root@h:3306/db?ssl_mode=disabled",
            ),
        ] {
            let url = parsed(url);
            assert_eq!(url.backend(), backend, "{url}");
            assert_eq!(url.driver, driver, "{url}");
        }
    }

    #[test]
    fn every_option_reaches_the_builder() {
        let url = parsed("sqlite:x.db?pool_size=2&connect_timeout=250ms&busy_timeout=1.5s");
        assert_eq!(url.connect_timeout(), Some(Duration::from_millis(250)));
        let shown = format!("{:?}", url.builder());
        for field in [
            "pool_size: 2",
            "connection_timeout: 250ms",
            "busy_timeout: 1.5s",
        ] {
            assert!(shown.contains(field), "{field}: {shown}");
        }
        let pg = parsed("postgres://h/db?connect_timeout=2s");
        assert_eq!(pg.connect_timeout(), Some(Duration::from_secs(2)));
        // libpq's own form, whole seconds, is read too.
        let libpq = parsed("postgres://h/db?connect_timeout=2");
        assert_eq!(libpq.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(libpq.driver, "postgres://h/db?connect_timeout=2");
        assert!(format!("{:?}", pg.builder()).contains("connection_timeout: 2s"));
        let plain = format!("{:?}", parsed("sqlite:x.db").builder());
        assert!(plain.contains("pool_size: 4"), "{plain}");
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        refused("sqlite:", "names no file");
        refused("sqlite:?pool_size=1", "names no file");
        refused("postgres:db", "`//`");
        refused("mysql:///db", "no host");
        refused("redis://h", "unsupported database URL");
        refused(
            "sqlite:x.db?pool_sise=1",
            "unknown query parameter `pool_sise`",
        );
        refused("sqlite:x.db?mode=ro", "unknown query parameter `mode`");
        refused(
            "postgres://h/db?sslmod=require",
            "unknown query parameter `sslmod`",
        );
        refused(
            "postgres://h/db?busy_timeout=1s",
            "unknown query parameter `busy_timeout`",
        );
        refused(
            "mysql://h/db?database=x",
            "unknown query parameter `database`",
        );
        refused("sqlite:x.db?pool_size=0", "`pool_size`");
        refused("sqlite:x.db?pool_size=many", "`pool_size`");
        refused("sqlite:x.db?busy_timeout=5", "`busy_timeout`");
        refused("sqlite:x.db?connect_timeout=5", "`connect_timeout`");
        refused("postgres://h/db?connect_timeout=0", "`connect_timeout`");
        refused("sqlite:x.db?pool_size=1&pool_size=2", "twice");
    }

    #[test]
    fn passwords_are_never_shown() {
        for url in [
            "postgres://app:s3cret@h/db",
            "postgresql://h/db?password=s3cret&pool_size=1",
            "postgres://h/db?sslpassword=s3cret",
            "mysql://root:s3cret@h/db",
        ] {
            let url = parsed(url);
            assert!(!url.to_string().contains("s3cret"), "{url}");
            assert!(!format!("{url:?}").contains("s3cret"), "{url:?}");
            assert!(url.to_string().contains("***"), "{url}");
        }
        for url in [
            "postgres://app:s3cret@h/db?nope=1",
            "postgres://h/db?password=s3cret&nope=1",
            "mysql://root:s3cret@/db",
        ] {
            let err = SqlUrl::parse(url).unwrap_err();
            let text = durabledict_core::Report(&err).to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
        }
    }
}
