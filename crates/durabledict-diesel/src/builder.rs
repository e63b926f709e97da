//! [`SqlStoreBuilder`]: the URL, table, columns, stamp and pool of an [`SqlStore`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use durabledict_core::{Stamp, StoreError};

use crate::dialect::{self, Backend, StampSql, TableSql};
use crate::error::SqlError;
use crate::pool::PoolConfig;
use crate::store::{Inner, Pools, SqlStore, StampMode};
use crate::url::{Target, target};

/// Configures an [`SqlStore`]; made by [`SqlStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use durabledict_diesel::SqlStore;
///
/// // An existing Django ModelDict table, as it is.
/// let store = SqlStore::builder("sqlite::memory:")
///     .table("myapp_setting")
///     .key_column("key")
///     .value_column("value")
///     .connection_timeout(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(store.table(), "myapp_setting");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
pub struct SqlStoreBuilder {
    url: String,
    table: String,
    key_column: String,
    value_column: String,
    stamps_table: String,
    stamp: Option<Arc<dyn Stamp>>,
    pool_size: u32,
    connection_timeout: Duration,
    busy_timeout: Duration,
    text_values: bool,
    create_missing: bool,
}

impl fmt::Debug for SqlStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("SqlStoreBuilder")
            .field("table", &self.table)
            .field("key_column", &self.key_column)
            .field("value_column", &self.value_column)
            .field("stamps_table", &self.stamps_table)
            .field("stamp", &self.stamp)
            .field("pool_size", &self.pool_size)
            .field("connection_timeout", &self.connection_timeout)
            .field("busy_timeout", &self.busy_timeout)
            .field("text_values", &self.text_values)
            .field("create_missing", &self.create_missing)
            .finish_non_exhaustive()
    }
}

impl SqlStoreBuilder {
    pub(crate) fn new(url: String) -> Self {
        SqlStoreBuilder {
            url,
            table: "durabledict".into(),
            key_column: "key".into(),
            value_column: "value".into(),
            stamps_table: "durabledict_stamps".into(),
            stamp: None,
            pool_size: 4,
            connection_timeout: Duration::from_secs(3),
            busy_timeout: Duration::from_secs(5),
            text_values: false,
            create_missing: true,
        }
    }

    /// The data table, which is also the keyspace; `durabledict` by default. A plain
    /// identifier (ASCII letters, digits, `_`), quoted in every statement.
    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.table = name.into();
        self
    }

    /// The key column; `key` by default.
    pub fn key_column(mut self, name: impl Into<String>) -> Self {
        self.key_column = name.into();
        self
    }

    /// The value column; `value` by default.
    pub fn value_column(mut self, name: impl Into<String>) -> Self {
        self.value_column = name.into();
        self
    }

    /// The table holding one stamp row per keyspace; `durabledict_stamps` by default. Unused
    /// with an external [`stamp`](Self::stamp).
    pub fn stamps_table(mut self, name: impl Into<String>) -> Self {
        self.stamps_table = name.into();
        self
    }

    /// Keeps the stamp in `stamp` (for example memcached) instead of an SQL row; it is bumped
    /// after each write commits, as Python's Django `ModelDict` did with its cache.
    pub fn stamp(mut self, stamp: impl Stamp + 'static) -> Self {
        self.stamp = Some(Arc::new(stamp));
        self
    }

    /// The most connections the pool opens; 4 by default (an SQLite `:memory:` database always
    /// has exactly one).
    pub fn pool_size(mut self, size: u32) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long an operation waits for a connection (to open one while the server is down,
    /// or for a busy pool) before failing as unavailable; 3 s by default.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// SQLite: how long a statement waits for another process's write lock before failing as
    /// unavailable; 5 s by default.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether a table this store creates keeps values as text (only UTF-8 values fit, as in a
    /// Django `TextField`, which Python reads back as `str`) instead of bytes (the default,
    /// which takes any encoding). An existing table is used as it is.
    pub fn text_values(mut self, text: bool) -> Self {
        self.text_values = text;
        self
    }

    /// Whether [`init`](durabledict_core::Store::init) creates what is missing: the SQLite file,
    /// the data table, the stamps table and the stamp row. `true` by default.
    ///
    /// With `false` the store only opens what exists, for readers that must not create
    /// anything: a missing SQLite file is an error naming its path (not a new empty database),
    /// a missing table is an error naming the table, and a missing stamp row reads as
    /// `last_updated() == None`; a lost external stamp (see [`stamp`](Self::stamp)) is not
    /// re-created either. Writes, where the database allows them, work as usual. A SQLite file
    /// that cannot be opened is told at once, also to a store used without `init`.
    ///
    /// Either way, `init` only reads when everything exists, so a role that may not create
    /// tables, or a file opened read-only (a `file:…?mode=ro` URI), works with the default too.
    ///
    /// ```
    /// use durabledict_core::{DurableDict, Raw, Store};
    /// use durabledict_diesel::SqlStore;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let url = format!("sqlite://{}/settings.db", dir.path().display());
    ///
    /// // Nothing there yet: the reader fails, and creates no file.
    /// let reader = SqlStore::builder(&url).create_missing(false).build()?;
    /// let err = reader.init().unwrap_err();
    /// assert!(durabledict_core::Report(&err).to_string().contains("settings.db"));
    /// assert!(!dir.path().join("settings.db").exists());
    ///
    /// // Once a writer has made the store, the reader opens it as it is.
    /// let writer = DurableDict::<String>::builder(SqlStore::builder(&url).build()?, Raw).build()?;
    /// writer.insert("mode", "fast".to_string())?;
    /// let reader = DurableDict::<String>::builder(reader, Raw).build()?;
    /// assert_eq!(reader.get("mode")?.as_deref().map(String::as_str), Some("fast"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// Checks the configuration and makes the store. It does not connect: the first operation
    /// (or [`Store::init`](durabledict_core::Store::init), which a dict's `build` calls)
    /// does, and creates the table and the stamp when missing (see
    /// [`create_missing`](Self::create_missing)).
    pub fn build(self) -> Result<SqlStore, StoreError> {
        Ok(self.try_build()?)
    }

    fn try_build(self) -> Result<SqlStore, SqlError> {
        dialect::validate_ident("table", &self.table)?;
        dialect::validate_ident("key column", &self.key_column)?;
        dialect::validate_ident("value column", &self.value_column)?;
        if self.key_column == self.value_column {
            return Err(SqlError::Config(
                "the key and value columns must differ".into(),
            ));
        }
        let target = target(&self.url)?;
        let backend = match &target {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres(_) => Backend::Postgres,
            Target::Mysql(_) => Backend::Mysql,
        };
        let stamp = match self.stamp {
            Some(stamp) => StampMode::External(stamp),
            None => {
                dialect::validate_ident("stamps table", &self.stamps_table)?;
                if self.stamps_table == self.table {
                    return Err(SqlError::Config(
                        "the stamps table must differ from the data table".into(),
                    ));
                }
                StampMode::Row(StampSql::new(backend, &self.stamps_table))
            }
        };
        let mut config = PoolConfig {
            max_size: self.pool_size,
            connection_timeout: self.connection_timeout,
            keep_forever: false,
            local_file: None,
            local_path: None,
        };
        #[cfg(feature = "postgres")]
        let listener = match (&target, &stamp) {
            (Target::Postgres(url), StampMode::Row(_)) => Some(crate::listen::Listener::new(
                url,
                &self.stamps_table,
                &self.table,
            )),
            _ => None,
        };
        let pools = match target {
            Target::Sqlite { path, memory } => {
                if memory {
                    config.max_size = 1;
                    config.keep_forever = true;
                } else {
                    config.local_file = Some(path.clone());
                    if !path.starts_with("file:") {
                        // Made absolute as it is meant now, when the store is built.
                        config.local_path = std::path::absolute(&path).ok();
                    }
                }
                // The file is opened without creating it first, so that the store knows
                // whether it made the file (see `sqlite_pool`).
                let open = sqlite_open_name(path.clone(), memory, false);
                let create = (self.create_missing && open != path).then_some(path);
                sqlite_pool(open, create, self.busy_timeout, &config)?
            }
            Target::Postgres(url) => postgres_pool(url, &config)?,
            Target::Mysql(url) => mysql_pool(url, &config)?,
        };
        Ok(SqlStore {
            inner: Arc::new(Inner {
                backend,
                pools,
                table_sql: TableSql::new(backend, &self.table),
                create_table: dialect::create_table(
                    backend,
                    &self.table,
                    &self.key_column,
                    &self.value_column,
                    self.text_values,
                ),
                table: self.table,
                key_column: self.key_column,
                value_column: self.value_column,
                stamp,
                create_missing: self.create_missing,
                prepared: std::sync::RwLock::new(None),
                stamps_table_seen: AtomicBool::new(false),
                #[cfg(feature = "postgres")]
                listener,
            }),
        })
    }
}

/// What SQLite is asked to open for `path`. Without `create`, a `file:` URI that opens the file
/// read-write but never creates it (`mode=rw`), unless the URI already names a mode.
fn sqlite_open_name(path: String, memory: bool, create: bool) -> String {
    if create || memory {
        return path;
    }
    if path.starts_with("file:") {
        let (_, query) = path.split_once('?').unwrap_or((&path, ""));
        if query.split('&').any(|p| p.starts_with("mode=")) {
            return path;
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        return format!("{path}{sep}mode=rw");
    }
    // A plain path becomes a URI path: `file://` + an absolute path (empty authority), or
    // `file:` + a relative one; the characters a URI gives a meaning to are escaped.
    let mut uri = String::from(if path.starts_with('/') {
        "file://"
    } else {
        "file:"
    });
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=rw");
    uri
}

#[cfg(not(all(feature = "sqlite", feature = "postgres", feature = "mysql")))]
fn missing_feature(feature: &str) -> SqlError {
    SqlError::Config(format!(
        "durabledict-diesel was built without its `{feature}` feature"
    ))
}

#[cfg(feature = "sqlite")]
fn sqlite_pool(
    path: String,
    create_url: Option<String>,
    busy: Duration,
    config: &PoolConfig,
) -> Result<Pools, SqlError> {
    // busy_timeout makes a writer wait for another's lock instead of failing at once. WAL
    // (readers never block the writer) only on a file the store made: WAL needs write access
    // to the directory even to read (the `-shm` file), so a database made by another program
    // (Django's default rollback journal) keeps its journal mode, and its readers their access.
    let create_path = create_url
        .as_ref()
        .filter(|url| !url.starts_with("file:"))
        .map(std::path::PathBuf::from);
    let setup = crate::pool::Setup {
        create_url,
        create_path,
        required: format!("PRAGMA busy_timeout = {};", busy.as_millis()),
        on_create: "PRAGMA journal_mode = WAL;".into(),
        lock_patience: busy,
    };
    Ok(Pools::Sqlite(crate::pool::Pool::new(path, setup, config)))
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_pool(
    _: String,
    _: Option<String>,
    _: Duration,
    _: &PoolConfig,
) -> Result<Pools, SqlError> {
    Err(missing_feature("sqlite"))
}

#[cfg(feature = "postgres")]
fn postgres_pool(url: String, config: &PoolConfig) -> Result<Pools, SqlError> {
    Ok(Pools::Postgres(crate::pool::Pool::new(
        url,
        crate::pool::Setup::default(),
        config,
    )))
}

#[cfg(not(feature = "postgres"))]
fn postgres_pool(_: String, _: &PoolConfig) -> Result<Pools, SqlError> {
    Err(missing_feature("postgres"))
}

#[cfg(feature = "mysql")]
fn mysql_pool(url: String, config: &PoolConfig) -> Result<Pools, SqlError> {
    // Strict mode: a value that does not fit is an error, never silently truncated.
    let setup = crate::pool::Setup {
        required: "SET SESSION sql_mode = \
                   TRIM(BOTH ',' FROM CONCAT(@@SESSION.sql_mode, ',STRICT_ALL_TABLES'))"
            .into(),
        ..crate::pool::Setup::default()
    };
    Ok(Pools::Mysql(crate::pool::Pool::new(url, setup, config)))
}

#[cfg(not(feature = "mysql"))]
fn mysql_pool(_: String, _: &PoolConfig) -> Result<Pools, SqlError> {
    Err(missing_feature("mysql"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_identifiers_are_refused() {
        let e = SqlStore::builder("sqlite::memory:")
            .table("x; drop table y")
            .build();
        assert!(e.is_err());
        let e = SqlStore::builder("sqlite::memory:")
            .key_column("v")
            .value_column("v")
            .build();
        assert!(e.is_err());
    }
}
