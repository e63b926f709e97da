//! Opening a dict from a store URL: [`open`], [`open_store`], [`OpenOptions`], [`OpenError`].
//!
//! One string names the store and where it is, so that programs and operators configure a
//! dict the same way whatever the backend (`DURABLEDICT_STORE=redis://…`).

mod error;
mod url;
mod value_encoding;

use std::time::Duration;

use durabledict_core::{DurableDict, Store, SyncPolicy};

pub use error::OpenError;
pub use url::{SCHEMES, Scheme, StoreKind};
pub use value_encoding::{UnknownEncoding, ValueEncoding};

use crate::Value;

/// The keyspace used when none is given: the Redis hash, the SQL table, the ZooKeeper path
/// `/durabledict`.
pub const DEFAULT_KEYSPACE: &str = "durabledict";

/// How long connecting to a store may take before [`open`] gives up, by default.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What [`open`] and [`open_store`] need besides the URL: keyspace, encoding, an external
/// stamp, the sync policy.
///
/// ```
/// use durabledict::{OpenOptions, SyncPolicy, ValueEncoding};
///
/// let options = OpenOptions::new()
///     .keyspace("flags")
///     .encoding(ValueEncoding::Json)
///     .policy(SyncPolicy::Manual);
/// assert_eq!(options.keyspace_name(), "flags");
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    keyspace: String,
    encoding: ValueEncoding,
    stamp: Option<String>,
    stamp_key: Option<String>,
    policy: SyncPolicy,
    connect_timeout: Duration,
    create_missing: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            keyspace: DEFAULT_KEYSPACE.to_owned(),
            encoding: ValueEncoding::default(),
            stamp: None,
            stamp_key: None,
            policy: SyncPolicy::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            create_missing: true,
        }
    }
}

impl OpenOptions {
    /// Keyspace [`DEFAULT_KEYSPACE`], [`ValueEncoding::Pickle`], the store's own stamp,
    /// [`SyncPolicy::Always`], a 3 s connect timeout, missing things created.
    pub fn new() -> Self {
        Self::default()
    }

    /// The keyspace: the Redis hash name, the SQL table name (a plain identifier), and for
    /// ZooKeeper the path `/<keyspace>` when the URL names no path.
    pub fn keyspace(mut self, keyspace: impl Into<String>) -> Self {
        self.keyspace = keyspace.into();
        self
    }

    /// How [`open`] stores values; Python's default, [`ValueEncoding::Pickle`], by default.
    /// ([`open_store`] ignores it.)
    pub fn encoding(mut self, encoding: ValueEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Keeps the stamp in memcached (`memcache://HOST:PORT`) instead of the store. SQL stores
    /// only: Redis and ZooKeeper keep their own stamp. Needs the `memcache` feature.
    pub fn stamp(mut self, url: impl Into<String>) -> Self {
        self.stamp = Some(url.into());
        self
    }

    /// The memcached key of the stamp; `durabledict:<keyspace>:last_updated` by default.
    /// `:1:last_updated` is the key a Python Django `ModelDict` uses with Django's defaults.
    pub fn stamp_key(mut self, key: impl Into<String>) -> Self {
        self.stamp_key = Some(key.into());
        self
    }

    /// When reads check the stamp; [`SyncPolicy::Always`] by default.
    pub fn policy(mut self, policy: SyncPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long connecting may take (SQL pools, Redis, ZooKeeper, memcached); 3 s by default.
    /// A store URL's own `connect_timeout` query option wins over it.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether an SQL store creates what is missing (the SQLite file, the table, the stamp
    /// row) when it is prepared ([`Store::init`], which building a dict calls); `true` by
    /// default. It is passed to the SQL store builder's `create_missing`.
    ///
    /// With `false` the store opens only what exists, for programs that must not create
    /// anything by looking (a mistyped path must not become a new empty database): a missing
    /// SQLite file or table is an error ([`Store::init`] names it), a missing stamp row reads
    /// as `None`. Redis and ZooKeeper stores ignore it. Whatever the store, [`Store::init`]
    /// may still create a stamp kept apart (Redis's stamp key, a memcached stamp) and the
    /// ZooKeeper keyspace node, so a reader that must create nothing uses the store from
    /// [`open_store`] without calling `init` (and without building a dict).
    ///
    /// ```
    /// # #[cfg(feature = "sqlite")] {
    /// use durabledict::OpenOptions;
    ///
    /// let path = std::env::temp_dir().join(format!("no-such-{}.db", std::process::id()));
    /// let url = format!("sqlite:{}", path.display());
    /// let reader = durabledict::open_store(&url, &OpenOptions::new().create_missing(false))?;
    /// let err = reader.init().unwrap_err();
    /// assert!(durabledict::Report(&err).to_string().contains(&path.display().to_string()), "{err}");
    /// assert!(!path.exists());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// The keyspace set.
    pub fn keyspace_name(&self) -> &str {
        &self.keyspace
    }

    /// The encoding set.
    pub fn value_encoding(&self) -> ValueEncoding {
        self.encoding
    }

    /// The sync policy set.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.policy
    }

    /// Whether missing things are created; see [`create_missing`](Self::create_missing).
    pub fn creates_missing(&self) -> bool {
        self.create_missing
    }
}

/// Opens a dict of arbitrary Python values ([`Value`]: the builtins and the allowed standard
/// library types, `datetime`'s, `Decimal`, `UUID`, `complex`) on the store `url` names, and
/// loads it. A stored value it cannot decode (another class) poisons only its key: the dict
/// serves every other key, [`DurableDict::status`] names it.
///
/// | URL | store | keyspace |
/// |---|---|---|
/// | `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:`, `file:PATH[?mode=ro…]`, a `PATH` without `:` | SQLite file (created when missing, unless [`OpenOptions::create_missing`] says not to) | table |
/// | `postgres://USER@HOST:PORT/DB` (`postgresql://`) | PostgreSQL | table |
/// | `mysql://USER@HOST:PORT/DB` (`mariadb://`) | MySQL / MariaDB | table |
/// | `redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB]`, `rediss://…`, `redis+unix:///PATH[?db=DB]` | Redis | hash |
/// | `zk://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…][/PATH]` | ZooKeeper | `PATH`, else `/<keyspace>` |
///
/// The schemes are [`SCHEMES`]; each backend crate parses its own URLs
/// (`durabledict::sql::SqlUrl`, `durabledict::redis::RedisUrl`,
/// `durabledict::zookeeper::ZooKeeperUrl`, `durabledict::memcache::MemcacheUrl`), including
/// the query options a store needs (`pool_size=1`, `io_timeout=500ms`, `session_timeout=4s`,
/// …), listed per backend in `docs/urls.md`. A parameter no one knows is refused by name. A
/// `connect_timeout` in the URL wins over [`OpenOptions::connect_timeout`].
///
/// Each backend needs its cargo feature (`sqlite`, `postgres`, `mysql`, `redis`,
/// `zookeeper`; `redis-tls` for `rediss://`; `memcache` for a memcached stamp); a URL whose
/// backend this build lacks is [`OpenError::FeatureDisabled`], naming the feature.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use durabledict::{OpenOptions, Value};
///
/// let path = std::env::temp_dir().join(format!("open-doc-{}.db", std::process::id()));
/// let url = format!("sqlite:{}", path.display());
/// let settings = durabledict::open(&url, &OpenOptions::new().keyspace("settings"))?;
/// settings.insert("mode", Value::String("fast".into()))?;
///
/// // Another handle (another process) on the same URL sees it.
/// let other = durabledict::open(&url, &OpenOptions::new().keyspace("settings"))?;
/// assert_eq!(other.get("mode")?.as_deref(), Some(&Value::String("fast".into())));
/// # drop((settings, other));
/// # for suffix in ["", "-wal", "-shm"] {
/// #     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
/// # }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A URL that cannot work says what was expected:
///
/// ```
/// use durabledict::{OpenError, OpenOptions};
///
/// let err = durabledict::open("ftp://example", &OpenOptions::new()).unwrap_err();
/// assert!(matches!(err, OpenError::UnknownScheme { .. }));
/// assert!(err.to_string().contains("redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB]"), "{err}");
/// ```
pub fn open(url: &str, options: &OpenOptions) -> Result<DurableDict<Value>, OpenError> {
    let store = open_store(url, options)?;
    DurableDict::builder(store, options.encoding)
        .policy(options.policy)
        .build()
        .map_err(OpenError::Load)
}

/// Makes the store `url` names (see [`open`] for the URLs), for a dict of any value type and
/// encoding. It is ready to use: a store that connects when built (ZooKeeper) has connected.
///
/// ```
/// # #[cfg(feature = "sqlite")] {
/// use durabledict::OpenOptions;
///
/// let store = durabledict::open_store("sqlite::memory:", &OpenOptions::new().keyspace("flags"))?;
/// let flags = durabledict::builder::<bool>(store).build()?;
/// flags.insert("beta", true)?;
/// assert_eq!(flags.get("beta")?.as_deref(), Some(&true));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_store(url: &str, options: &OpenOptions) -> Result<Box<dyn Store>, OpenError> {
    url::open_store(url, options)
}
