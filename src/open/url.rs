//! Store URLs: the one table of schemes, and the dispatch to the backend crate that parses
//! its own URLs (`RedisUrl`, `SqlUrl`, `ZooKeeperUrl`, `MemcacheUrl`). Nothing here reads
//! more of a URL than its scheme, except to mask a password in a message.

use std::sync::LazyLock;
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper"
))]
use std::time::Duration;

use durabledict_core::Store;

use super::{OpenError, OpenOptions};

/// The kind of store a URL names.
///
/// ```
/// use durabledict::StoreKind;
///
/// assert_eq!(StoreKind::of_url("REDISS://cache.local/0"), Some(StoreKind::Redis));
/// assert_eq!(StoreKind::of_url("settings.db"), Some(StoreKind::Sqlite));
/// assert_eq!(StoreKind::of_url("ftp://example"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreKind {
    /// SQLite (`durabledict-diesel`).
    Sqlite,
    /// PostgreSQL (`durabledict-diesel`).
    Postgres,
    /// MySQL or MariaDB (`durabledict-diesel`).
    Mysql,
    /// Redis (`durabledict-redis`).
    Redis,
    /// ZooKeeper (`durabledict-zookeeper`).
    ZooKeeper,
}

impl StoreKind {
    /// The kind of store `url` names: by its scheme (in any case) in [`SCHEMES`]; a string
    /// without `:` is a SQLite path. `None` for any other string. Only the scheme is read:
    /// whether the rest is valid is for [`open`](crate::open) to say.
    pub fn of_url(url: &str) -> Option<StoreKind> {
        match lookup(url) {
            Lookup::Scheme(row) => Some(row.kind),
            Lookup::Path => Some(StoreKind::Sqlite),
            Lookup::Unknown(_) | Lookup::NoScheme => None,
        }
    }

    /// The backend's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
            StoreKind::Mysql => "MySQL",
            StoreKind::Redis => "Redis",
            StoreKind::ZooKeeper => "ZooKeeper",
        }
    }

    /// Whether the store takes a stamp kept elsewhere (SQL), rather than keeping its own.
    pub fn takes_external_stamp(self) -> bool {
        matches!(
            self,
            StoreKind::Sqlite | StoreKind::Postgres | StoreKind::Mysql
        )
    }
}

/// One scheme of the table: what it names, the cargo feature it needs, its form.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Scheme {
    /// The scheme, in lower case (URLs match it in any case).
    pub name: &'static str,
    /// The store it names.
    pub kind: StoreKind,
    /// durabledict's cargo feature that enables it.
    pub feature: &'static str,
    /// The URL's form (the query options are in `docs/urls.md`).
    pub form: &'static str,
}

const fn row(
    name: &'static str,
    kind: StoreKind,
    feature: &'static str,
    form: &'static str,
) -> Scheme {
    Scheme {
        name,
        kind,
        feature,
        form,
    }
}

const SQLITE: &str = "sqlite:PATH, sqlite://PATH or sqlite::memory: (a PATH without `:` alone \
                      too, or :memory:)";
const SQLITE_FILE: &str = "file:PATH[?SQLite URI parameters]";
const POSTGRES: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
const MYSQL: &str = "mysql://USER[:PASSWORD]@HOST[:PORT]/DATABASE";
const REDIS: &str = "redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB] (or rediss://…)";
const REDIS_UNIX: &str = "redis+unix:///PATH[?db=DB]";
const ZOOKEEPER: &str = "zk://HOST:PORT[,HOST:PORT…][/PATH]";
const MEMCACHE: &str = "memcache://HOST:PORT";

/// Every scheme [`open`](crate::open) and [`open_store`](crate::open_store) know, whatever
/// the features of this build (a URL whose feature is missing is
/// [`OpenError::FeatureDisabled`]). Each backend crate parses its own URLs and query options;
/// `docs/urls.md` lists them per backend.
pub const SCHEMES: &[Scheme] = &[
    row("sqlite", StoreKind::Sqlite, "sqlite", SQLITE),
    row("file", StoreKind::Sqlite, "sqlite", SQLITE_FILE),
    row("postgres", StoreKind::Postgres, "postgres", POSTGRES),
    row("postgresql", StoreKind::Postgres, "postgres", POSTGRES),
    row("mysql", StoreKind::Mysql, "mysql", MYSQL),
    row("mariadb", StoreKind::Mysql, "mysql", MYSQL),
    row("redis", StoreKind::Redis, "redis", REDIS),
    row("rediss", StoreKind::Redis, "redis-tls", REDIS),
    row("redis+unix", StoreKind::Redis, "redis", REDIS_UNIX),
    row("unix", StoreKind::Redis, "redis", REDIS_UNIX),
    row("zk", StoreKind::ZooKeeper, "zookeeper", ZOOKEEPER),
    row("zookeeper", StoreKind::ZooKeeper, "zookeeper", ZOOKEEPER),
];

/// The forms of every scheme, for the unknown-scheme message.
static EVERY: LazyLock<String> = LazyLock::new(|| {
    let mut forms: Vec<&str> = Vec::new();
    for scheme in SCHEMES {
        if !forms.contains(&scheme.form) {
            forms.push(scheme.form);
        }
    }
    forms.join(", ")
});

enum Lookup {
    Scheme(&'static Scheme),
    /// No `:` at all (or SQLite's `:memory:`): a SQLite path.
    Path,
    /// A scheme no row has.
    Unknown(String),
    /// Something before a `:` that is no scheme (or an empty string).
    NoScheme,
}

fn lookup(url: &str) -> Lookup {
    // SQLite's own name for an in-memory database is a path to it as well.
    if (!url.is_empty() && !url.contains(':')) || url == ":memory:" {
        return Lookup::Path;
    }
    let Some(scheme) = scheme(url) else {
        return Lookup::NoScheme;
    };
    match SCHEMES.iter().find(|s| s.name.eq_ignore_ascii_case(scheme)) {
        Some(row) => Lookup::Scheme(row),
        None => Lookup::Unknown(scheme.to_owned()),
    }
}

/// The scheme `url` (a bare path) would have with the `:` it lacks: `redis//host`,
/// `postgres//app@db/flags`.
fn missing_colon(url: &str) -> Option<&'static Scheme> {
    let (head, _) = url.split_once("//")?;
    SCHEMES.iter().find(|s| s.name.eq_ignore_ascii_case(head))
}

/// The cargo features of this build that enable a scheme.
const FEATURES: &[(&str, bool)] = &[
    ("sqlite", cfg!(feature = "sqlite")),
    ("postgres", cfg!(feature = "postgres")),
    ("mysql", cfg!(feature = "mysql")),
    ("redis", cfg!(feature = "redis")),
    ("redis-tls", cfg!(feature = "redis-tls")),
    ("zookeeper", cfg!(feature = "zookeeper")),
    ("memcache", cfg!(feature = "memcache")),
];

fn enabled(feature: &str) -> bool {
    FEATURES.iter().any(|(name, on)| *name == feature && *on)
}

/// The store `url` names, made by its backend's URL parser with `options`: the dispatch of
/// [`open_store`](crate::open_store).
pub(crate) fn open_store(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, OpenError> {
    let unknown = |scheme: String| OpenError::UnknownScheme {
        scheme,
        url: mask_password(url),
        expected: EVERY.as_str(),
    };
    let looked_up = lookup(url);
    if matches!(looked_up, Lookup::Path | Lookup::NoScheme)
        && let Some(row) = missing_colon(url)
    {
        // `redis//host`: a typo, not the SQLite file `host` in a directory `redis`.
        let shown = mask_password(&url.replacen("//", "://", 1)).replacen("://", "//", 1);
        return Err(OpenError::InvalidUrl {
            url: shown,
            reason: format!(
                "a `:` is missing after the scheme ({}://…); a SQLite file whose path starts so \
                 is written sqlite:PATH",
                row.name
            ),
            expected: row.form,
        });
    }
    let (kind, scheme_name, feature, form) = match looked_up {
        Lookup::Scheme(row) => (row.kind, row.name, row.feature, row.form),
        Lookup::Path => (StoreKind::Sqlite, "sqlite", "sqlite", SQLITE),
        Lookup::Unknown(scheme) => return Err(unknown(scheme)),
        Lookup::NoScheme => return Err(unknown(String::new())),
    };
    if options.stamp.is_none() && options.stamp_key.is_some() {
        return Err(OpenError::InvalidOption {
            option: "stamp key",
            reason: "a stamp key needs a stamp URL (memcache://HOST:PORT)".into(),
        });
    }
    if let Some(stamp) = &options.stamp {
        if !kind.takes_external_stamp() {
            return Err(OpenError::InvalidOption {
                option: "stamp",
                reason: format!(
                    "{} keeps its own stamp; an external stamp applies to SQL stores only",
                    kind.name()
                ),
            });
        }
        if !scheme(stamp).is_some_and(|s| s.eq_ignore_ascii_case("memcache")) {
            return Err(OpenError::InvalidOption {
                option: "stamp",
                reason: format!(
                    "{:?} is not a memcached URL; expected {MEMCACHE}",
                    mask_password(stamp)
                ),
            });
        }
    }
    if !enabled(feature) {
        return Err(disabled(scheme_name, feature));
    }
    if options.stamp.is_some() && !enabled("memcache") {
        return Err(disabled("memcache", "memcache"));
    }
    if hidden_password(url).is_some() && !authority_is_servers(url) {
        // `redis://:a/b@host`: read as it is, the password's `a` would be a port, its `b` a
        // path, and a parser's or a driver's message would quote them.
        return Err(OpenError::InvalidUrl {
            url: mask_password(url),
            reason: UNENCODED_PASSWORD.to_owned(),
            expected: form,
        });
    }
    #[allow(unused_variables)]
    let invalid = |error: &dyn std::error::Error| OpenError::InvalidUrl {
        url: mask_password(url),
        // The parser's words may quote what it took for a host, a port or a parameter: part
        // of a password, when one holds an unencoded `/`, `?` or `#`.
        reason: match hidden_password(url) {
            Some(_) => UNENCODED_PASSWORD.to_owned(),
            None => innermost(error),
        },
        expected: form,
    };
    match kind {
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        StoreKind::Sqlite | StoreKind::Postgres | StoreKind::Mysql => {
            let parsed = durabledict_diesel::SqlUrl::parse(url).map_err(|e| invalid(&e))?;
            let builder = parsed
                .builder()
                .connection_timeout(connect_timeout(parsed.connect_timeout(), options))
                .table(options.keyspace.as_str())
                .create_missing(options.create_missing);
            #[cfg(feature = "memcache")]
            let builder = match &options.stamp {
                Some(stamp) => builder.stamp(memcache_stamp(stamp, options)?),
                None => builder,
            };
            let store = builder.build().map_err(OpenError::from_builder)?;
            Ok(Box::new(store))
        }
        #[cfg(feature = "redis")]
        StoreKind::Redis => {
            let parsed = durabledict_redis::RedisUrl::parse(url).map_err(|e| invalid(&e))?;
            let store = parsed
                .builder(&options.keyspace)
                .connect_timeout(connect_timeout(parsed.connect_timeout(), options))
                .build()
                .map_err(OpenError::from_builder)?;
            Ok(Box::new(store))
        }
        #[cfg(feature = "zookeeper")]
        StoreKind::ZooKeeper => {
            let parsed =
                durabledict_zookeeper::ZooKeeperUrl::parse(url).map_err(|e| invalid(&e))?;
            let store = parsed
                .builder(&options.keyspace)
                .connect_timeout(connect_timeout(parsed.connect_timeout(), options))
                .build()
                .map_err(OpenError::from_builder)?;
            Ok(Box::new(store))
        }
        // Checked above: a kind whose feature is off never gets here.
        #[allow(unreachable_patterns)]
        _ => Err(disabled(scheme_name, feature)),
    }
}

/// The URL's own connect timeout, else the options'.
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper"
))]
fn connect_timeout(from_url: Option<Duration>, options: &OpenOptions) -> Duration {
    from_url.unwrap_or(options.connect_timeout)
}

/// The memcached stamp named by `url`, keyed by the stamp key or else by the keyspace.
#[cfg(all(
    feature = "memcache",
    any(feature = "sqlite", feature = "postgres", feature = "mysql")
))]
fn memcache_stamp(
    url: &str,
    options: &OpenOptions,
) -> Result<durabledict_memcache_stamp::MemcacheStamp, OpenError> {
    let parsed = durabledict_memcache_stamp::MemcacheUrl::parse(url).map_err(|e| {
        OpenError::InvalidOption {
            option: "stamp",
            reason: format!("{:?}: {}", mask_password(url), innermost(&e)),
        }
    })?;
    let builder = parsed
        .builder()
        .connect_timeout(parsed.connect_timeout().unwrap_or(options.connect_timeout));
    let builder = match &options.stamp_key {
        Some(key) => builder.key(key.as_str()),
        None => builder.keyspace(&options.keyspace),
    };
    builder.build().map_err(OpenError::from_builder)
}

/// The text of the innermost error of `error`'s chain, the backend's own words, less what
/// the facade's message says already ("invalid Redis URL: ").
#[cfg(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper",
    feature = "memcache"
))]
fn innermost(error: &dyn std::error::Error) -> String {
    let mut inner = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    let text = inner.to_string();
    match text.split_once(" URL: ") {
        Some((_, reason)) => reason.to_owned(),
        None => text,
    }
}

#[cfg(not(any(
    feature = "sqlite",
    feature = "postgres",
    feature = "mysql",
    feature = "redis",
    feature = "zookeeper",
    feature = "memcache"
)))]
fn innermost(error: &dyn std::error::Error) -> String {
    error.to_string()
}

fn disabled(scheme: &str, feature: &'static str) -> OpenError {
    OpenError::FeatureDisabled {
        scheme: scheme.to_owned(),
        feature,
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

/// Where the user information of `url` may hide a password written with an unencoded `/`,
/// `?` or `#` (`redis://:a/b@host`): the span from the first `:` after `://` to the URL's
/// last `@`, when that `@` lies beyond the authority the URL parser sees. A parser reads part
/// of such a password as a host, a port, a path or a query, and its error may quote it.
fn hidden_password(url: &str) -> Option<(usize, usize)> {
    let start = authority_start(url)?;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |e| start + e);
    let last_at = url.rfind('@').filter(|&at| at > end)?;
    let colon = start + url[start..last_at].find(':')?;
    Some((colon + 1, last_at))
}

const UNENCODED_PASSWORD: &str = "an `@` follows the host part: if the password holds `/`, \
                                  `?` or `#`, percent-encode them (%2F, %3F, %23); the \
                                  parser's own words are not shown, as they may quote the \
                                  password";

/// Where the authority begins: after the scheme's `://` (not a `://` further on, in a path or
/// a query).
fn authority_start(url: &str) -> Option<usize> {
    let scheme = scheme(url)?;
    url[scheme.len()..]
        .starts_with("://")
        .then_some(scheme.len() + 3)
}

/// Whether the authority `url`'s parser sees (after `://`, up to `/`, `?` or `#`) is servers
/// with their ports (`host:1`, `a:1,b:2`), so that an `@` after it is not a password's.
fn authority_is_servers(url: &str) -> bool {
    let Some(start) = authority_start(url) else {
        return true;
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |e| start + e);
    let authority = &url[start..end];
    let servers = authority
        .rsplit_once('@')
        .map_or(authority, |(_, servers)| servers);
    servers.split(',').all(|server| {
        server.rsplit_once(':').is_none_or(|(_, port)| {
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// The URL with the password of its user information, and the values of the query parameters
/// that hold passwords, replaced by `***`, for messages. A password with an unencoded `/`, `?`
/// or `#` is masked up to the URL's last `@` (more may be masked than the password: never
/// less).
pub(crate) fn mask_password(url: &str) -> String {
    if let Some((from, to)) = hidden_password(url) {
        return format!("{}***{}", &url[..from], mask_password(&url[to..]));
    }
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut shown = base.to_owned();
    if let Some(start) = base.find("://").map(|at| at + 3) {
        let end = base[start..]
            .find(['/', '#'])
            .map_or(base.len(), |end| start + end);
        if let Some((userinfo, _)) = base[start..end].rsplit_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            shown = format!(
                "{}{user}:***{}",
                &base[..start],
                &base[start + userinfo.len()..]
            );
        }
    }
    if let Some(query) = query {
        let segments: Vec<String> = query
            .split('&')
            .map(|segment| match segment.split_once('=') {
                Some((name, _)) if matches!(name, "pass" | "password" | "sslpassword") => {
                    format!("{name}=***")
                }
                _ => segment.to_owned(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&segments.join("&"));
    }
    shown
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn open_err(url: &str) -> OpenError {
        match crate::open_store(url, &OpenOptions::new()) {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e,
        }
    }

    #[allow(dead_code)]
    fn expect_invalid(url: &str, reason: &str) {
        match open_err(url) {
            OpenError::InvalidUrl { reason: r, .. } => assert!(r.contains(reason), "{url}: {r}"),
            other => panic!("{url}: expected InvalidUrl, got {other:?}"),
        }
    }

    #[test]
    fn every_scheme_names_its_kind() {
        for (url, kind) in [
            ("sqlite:durabledict.db", StoreKind::Sqlite),
            ("sqlite::memory:", StoreKind::Sqlite),
            ("file:x.db?mode=ro", StoreKind::Sqlite),
            ("durabledict.db", StoreKind::Sqlite),
            ("/var/lib/flags.db", StoreKind::Sqlite),
            (":memory:", StoreKind::Sqlite),
            ("postgresql://u@h:5432/db", StoreKind::Postgres),
            ("POSTGRES://u@h/db", StoreKind::Postgres),
            ("mariadb://root@h/db", StoreKind::Mysql),
            ("mysql://root@h/db", StoreKind::Mysql),
            ("redis://:pw@127.0.0.1:6379/3", StoreKind::Redis),
            ("rediss://h/", StoreKind::Redis),
            ("redis+unix:///run/redis.sock?db=2", StoreKind::Redis),
            ("unix:///run/redis.sock", StoreKind::Redis),
            ("zk://a:1,b:2/apps/flags/", StoreKind::ZooKeeper),
            ("ZooKeeper://a:1", StoreKind::ZooKeeper),
        ] {
            assert_eq!(StoreKind::of_url(url), Some(kind), "{url}");
        }
        for url in ["ftp://x", "", "1x:y", "memcache://h:1", ":memory:x"] {
            assert_eq!(StoreKind::of_url(url), None, "{url}");
        }
    }

    /// The facade's table and each backend's parser agree: every scheme of the table whose
    /// backend is built is one that backend reads, and the other way round.
    #[test]
    #[allow(clippy::vec_init_then_push)] // which pushes there are depends on the features
    fn the_table_and_the_backends_agree() {
        #[allow(unused_mut)]
        let mut backends: Vec<(&[StoreKind], &[&str])> = Vec::new();
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        backends.push((
            &[StoreKind::Sqlite, StoreKind::Postgres, StoreKind::Mysql],
            durabledict_diesel::SqlUrl::SCHEMES,
        ));
        #[cfg(feature = "redis")]
        backends.push((&[StoreKind::Redis], durabledict_redis::RedisUrl::SCHEMES));
        #[cfg(feature = "zookeeper")]
        backends.push((
            &[StoreKind::ZooKeeper],
            durabledict_zookeeper::ZooKeeperUrl::SCHEMES,
        ));
        for (kinds, theirs) in backends {
            let ours: Vec<&str> = SCHEMES
                .iter()
                .filter(|s| kinds.contains(&s.kind))
                .map(|s| s.name)
                .collect();
            assert_eq!(ours, theirs);
        }
        #[cfg(feature = "memcache")]
        assert_eq!(
            durabledict_memcache_stamp::MemcacheUrl::SCHEMES,
            [MEMCACHE.split(':').next().unwrap()]
        );
    }

    #[test]
    #[cfg(all(feature = "sqlite", feature = "redis", feature = "zookeeper"))]
    fn malformed_urls_say_what_is_wrong() {
        expect_invalid("sqlite:", "no file");
        expect_invalid("postgres:db", "`//`");
        expect_invalid("redis://h:port", "invalid port");
        expect_invalid("redis://h:6379/zero", "database \"zero\"");
        expect_invalid("redis+unix://relative.sock", "absolute");
        expect_invalid("zk://a:1,b/x", "\"b\" is not HOST:PORT");
        expect_invalid("zk:///x", "no server");
    }

    #[test]
    #[cfg(all(feature = "sqlite", feature = "redis", feature = "zookeeper"))]
    fn unknown_query_parameters_are_named() {
        for (url, name) in [
            ("sqlite::memory:?pool_sise=1", "pool_sise"),
            ("redis://127.0.0.1:1/?io_timout=1s", "io_timout"),
            ("zk://127.0.0.1:1/x?session_timout=1s", "session_timout"),
        ] {
            let err = open_err(url);
            assert!(err.is_usage(), "{url}");
            assert!(
                err.to_string()
                    .contains(&format!("unknown query parameter `{name}`")),
                "{err}"
            );
        }
    }

    #[test]
    #[cfg(feature = "zookeeper")]
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
        for url in ["ftp://x", "", "1x:y", "c:\\flags.db"] {
            let err = open_err(url);
            assert!(matches!(err, OpenError::UnknownScheme { .. }), "{url}");
            let text = err.to_string();
            for form in [
                SQLITE,
                SQLITE_FILE,
                POSTGRES,
                MYSQL,
                REDIS,
                REDIS_UNIX,
                ZOOKEEPER,
            ] {
                assert!(text.contains(form), "{form}: {text}");
            }
            assert!(err.is_usage());
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
            crate::Report(&err)
                .to_string()
                .contains(&path.display().to_string()),
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
        assert!(crate::Report(&err).to_string().contains("other"), "{err}");
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
        assert!(crate::Report(&err).to_string().contains("\"a-b\""), "{err}");
        let dict = crate::open("sqlite::memory:", &OpenOptions::new().keyspace("a_b")).unwrap();
        assert!(dict.is_empty().unwrap());
        // SQLite's own name for a database in memory, as the SQL store reads it.
        let dict = crate::open(":memory:", &OpenOptions::new().keyspace("a_b")).unwrap();
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
        assert_eq!(
            mask_password("redis+unix:///s?db=1&pass=pw"),
            "redis+unix:///s?db=1&pass=***"
        );
        assert_eq!(
            mask_password("postgres://h/db?password=pw&sslmode=require"),
            "postgres://h/db?password=***&sslmode=require"
        );
        for url in [
            "redis://:s3cret@h:x",
            "redis://:s3cret@h/?nope=1",
            "postgres://me:s3cret@h/db?nope=1",
            "ftp://me:s3cret@h/",
            "zk://me:s3cret@h:1/x?nope=1",
        ] {
            let err = open_err(url);
            assert!(!err.to_string().contains("s3cret"), "{err}");
            assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
        }
    }
}
