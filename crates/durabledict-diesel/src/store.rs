//! [`SqlStore`]: the [`Store`] on one SQL table.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use durabledict_core::{Durables, Feed, SetDefault, Stamp, StampValue, Store, StoreError};

use crate::builder::SqlStoreBuilder;
use crate::dialect::{Backend, DataSql, StampSql, TableSql};
use crate::error::SqlError;
use crate::ops::{self, Done, StampRow};
use crate::schema::{Column, Schema};

/// The pools of the backends compiled in; a store has one.
pub(crate) enum Pools {
    #[cfg(feature = "sqlite")]
    Sqlite(crate::pool::Pool<diesel::sqlite::SqliteConnection>),
    #[cfg(feature = "postgres")]
    Postgres(crate::pool::Pool<diesel::pg::PgConnection>),
    #[cfg(feature = "mysql")]
    Mysql(crate::pool::Pool<diesel::mysql::MysqlConnection>),
}

/// Runs `$body` with `$c` bound to a connection of the store's backend, through the pool's
/// retrying [`run`](crate::pool::Pool::run). The body is written once and compiled per backend.
/// `on_pool!(store, run_check, |c| …)` runs it as the stamp check.
macro_rules! on_pool {
    ($store:expr, |$c:ident| $body:expr) => {
        on_pool!($store, run, |$c| $body)
    };
    ($store:expr, $run:ident, |$c:ident| $body:expr) => {
        match &$store.inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite(pool) => pool.$run(|$c| $body),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => pool.$run(|$c| $body),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.$run(|$c| $body),
        }
    };
}

/// Where a store's stamp lives.
pub(crate) enum StampMode {
    /// A row of the stamps table, bumped in the write's transaction.
    Row(StampSql),
    /// Any [`Stamp`], bumped after the write commits.
    External(Arc<dyn Stamp>),
}

/// The data table's shape and the statements that depend on it, known once the table exists.
#[derive(Debug)]
pub(crate) struct Prepared {
    schema: Schema,
    data: DataSql,
    /// The key of the stamp row (see [`ops::stamp_key`]).
    stamp_key: String,
}

impl Prepared {
    /// Refuses a key or value the table cannot hold, before anything is written.
    fn check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if let Err(reason) = self.schema.check_key(key) {
            return Err(SqlError::InvalidKey {
                key: key.to_owned(),
                reason,
            }
            .into());
        }
        if let Err(reason) = self.schema.check_value(value) {
            return Err(SqlError::Value {
                key: key.to_owned(),
                reason,
            }
            .into());
        }
        Ok(())
    }
}

pub(crate) struct Inner {
    pub(crate) backend: Backend,
    pub(crate) pools: Pools,
    pub(crate) table: String,
    pub(crate) key_column: String,
    pub(crate) value_column: String,
    pub(crate) table_sql: TableSql,
    pub(crate) create_table: String,
    pub(crate) stamp: StampMode,
    /// Whether `init` creates what is missing.
    pub(crate) create_missing: bool,
    /// The table's shape, with the pool epoch it was read at: read again once the epoch has
    /// changed (a replaced SQLite file may hold the table under another spelling, or another
    /// shape; a restarted server may have been migrated).
    pub(crate) prepared: RwLock<Option<(u64, Arc<Prepared>)>>,
    /// Whether the stamps table (of the SQL-row stamp) is known to exist. Once seen it is not
    /// looked for again; while missing (a store opened with `create_missing(false)` on tables
    /// a Python or Django program made) every use looks, so one a writer creates is noticed.
    pub(crate) stamps_table_seen: AtomicBool,
    /// PostgreSQL with the SQL-row stamp: the `LISTEN` change feed (see [`crate::listen`]).
    #[cfg(feature = "postgres")]
    pub(crate) listener: Option<crate::listen::Listener>,
}

impl Inner {
    /// What a connection of the store's pool reaches, in the terms of the change feed's
    /// listener ([`crate::listen::IDENTITY_SQL`]); PostgreSQL with the SQL-row stamp only.
    #[cfg(feature = "postgres")]
    fn pool_identity(&self) -> Result<String, SqlError> {
        use diesel::RunQueryDsl;
        let (Pools::Postgres(pool), StampMode::Row(sql)) = (&self.pools, &self.stamp) else {
            return Err(SqlError::Config(
                "no change feed without PostgreSQL and the SQL-row stamp".into(),
            ));
        };
        // The stamps table's name is a plain identifier (validated when the store was built).
        let query = crate::listen::IDENTITY_SQL.replace("$1", &format!("'\"{}\"'", sql.table));
        pool.run(|c| {
            Ok(
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&query))
                    .get_result::<String>(c)?,
            )
        })
    }

    /// The pool's own epoch (see [`Inner::prepared`]).
    fn pool_epoch(&self) -> u64 {
        match &self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite(pool) => pool.epoch(),
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => pool.epoch(),
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.epoch(),
        }
    }
}

/// A durabledict [`Store`] on one SQL table (one table is one keyspace): one row per key, in a
/// key column and a value column, on SQLite, PostgreSQL or MySQL/MariaDB through diesel and a
/// pool of connections.
///
/// The stamp is by default a row of a stamps table (`durabledict_stamps(keyspace, stamp)`,
/// keyspace = the table name), bumped in the same transaction as the write, so no other server
/// is needed; or any [`Stamp`] given to [`SqlStoreBuilder::stamp`] (memcached, as Python's
/// Django `ModelDict` did), bumped after the write commits.
///
/// With an external stamp the write and the bump are not atomic. When the bump fails, the
/// writer gets an error whose source is [`SqlError::StampAfterCommit`](crate::SqlError): the
/// write is committed but no dict sees it. The dict that makes the next bump gets exactly one
/// past the stamp it had seen, so it applies only its own write and keeps missing the earlier
/// one until another change (other dicts reload and see both), and `sync` does not reload, the
/// stamp being unchanged. After a `StampAfterCommit`, write again (an `insert` or `update`
/// writes and bumps again), or, for a `remove`, `pop`, `clear` or `setdefault` (which change
/// nothing the second time and bump nothing), bump the stamp yourself ([`Stamp::bump`]): every
/// dict then reloads.
///
/// Every write is one transaction (`setdefault`, `pop` and batch updates included); a write
/// that changes nothing (a `setdefault` on a present key, removing an absent key) bumps
/// nothing. A full load reads the stamp first and the rows in the same snapshot.
///
/// Clones share the pool.
///
/// ```
/// use durabledict_core::{DurableDict, Raw};
/// use durabledict_diesel::SqlStore;
///
/// let store = SqlStore::builder("sqlite::memory:").table("settings").build()?;
/// let dict = DurableDict::<String>::builder(store, Raw).build()?;
/// dict.insert("mode", "fast".to_string())?;
/// assert_eq!(dict.get("mode")?.as_deref().map(String::as_str), Some("fast"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SqlStore {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stamp = match &self.inner.stamp {
            StampMode::Row(_) => "sql row".to_string(),
            StampMode::External(stamp) => format!("{stamp:?}"),
        };
        f.debug_struct("SqlStore")
            .field("backend", &self.inner.backend)
            .field("table", &self.inner.table)
            .field("key_column", &self.inner.key_column)
            .field("value_column", &self.inner.value_column)
            .field("stamp", &stamp)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Starts configuring a store on the database at `url`:
    ///
    /// - SQLite: `sqlite://path/to/file.db` (also `sqlite:path`, `sqlite:///absolute/path`, a
    ///   `file:` URI, or a plain path), or `sqlite::memory:` for a private in-memory database
    ///   (one connection; for tests);
    /// - PostgreSQL: `postgres://user:password@host:port/database`;
    /// - MySQL / MariaDB: `mysql://user:password@host:port/database`.
    pub fn builder(url: impl Into<String>) -> SqlStoreBuilder {
        SqlStoreBuilder::new(url.into())
    }

    /// The backend it talks to.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The data table (which is also the stamp row's keyspace).
    pub fn table(&self) -> &str {
        &self.inner.table
    }

    /// Drops the data table and deletes its stamp row (with the SQL-row stamp): everything this
    /// keyspace held. For tests and for retiring a keyspace; dicts still using it fail. On
    /// SQLite and PostgreSQL both happen in one transaction: when either fails, neither does.
    pub fn drop_keyspace(&self) -> Result<(), StoreError> {
        let prepared = self.stamp_prepared()?;
        let stamp = self.stamp_row(self.stamp_key(prepared.as_deref()));
        let table = &self.inner.table_sql;
        on_pool!(self, |c| ops::drop_keyspace(c, table, stamp))?;
        self.wrote();
        Ok(())
    }

    fn stamp_row<'a>(&'a self, keyspace: &'a str) -> StampRow<'a> {
        StampRow {
            sql: self.stamp_sql(),
            keyspace,
        }
    }

    fn stamp_sql(&self) -> Option<&StampSql> {
        match &self.inner.stamp {
            StampMode::Row(sql) => Some(sql),
            StampMode::External(_) => None,
        }
    }

    /// The table's shape for finding its stamp row: `None` when the table does not exist (or
    /// cannot be used).
    fn stamp_prepared(&self) -> Result<Option<Arc<Prepared>>, StoreError> {
        match self.prepared() {
            Ok(prepared) => Ok(Some(prepared)),
            Err(e)
                if matches!(
                    e.inner().downcast_ref::<SqlError>(),
                    Some(SqlError::MissingTable { .. } | SqlError::Schema { .. })
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The key of the stamp row: the table's name as the catalog keeps it. A table that does
    /// not exist (or cannot be used) has no other name than the configured one.
    fn stamp_key<'a>(&'a self, prepared: Option<&'a Prepared>) -> &'a str {
        prepared.map_or(self.inner.table.as_str(), |p| p.stamp_key.as_str())
    }

    /// Whether the stamps table exists (see [`Inner::stamps_table_seen`]).
    fn stamps_table_exists(&self, sql: &StampSql) -> Result<bool, StoreError> {
        if self.inner.stamps_table_seen.load(Ordering::Acquire) {
            return Ok(true);
        }
        let table = &self.inner.table_sql;
        let exists = on_pool!(self, |c| ops::table_exists(c, table, &sql.table))?;
        if exists {
            self.inner.stamps_table_seen.store(true, Ordering::Release);
        }
        Ok(exists)
    }

    /// The stamp row to read: none while the stamps table does not exist, so that the stamp
    /// of a keyspace nothing has stamped yet reads as `None` rather than failing.
    fn stamp_row_to_read<'a>(&'a self, keyspace: &'a str) -> Result<StampRow<'a>, StoreError> {
        let row = self.stamp_row(keyspace);
        match row.sql {
            Some(sql) if !self.stamps_table_exists(sql)? => Ok(StampRow { sql: None, ..row }),
            _ => Ok(row),
        }
    }

    /// The stamp row to bump: a write cannot be stamped while the stamps table does not
    /// exist, so it is refused before anything is written.
    fn stamp_row_to_write<'a>(&'a self, keyspace: &'a str) -> Result<StampRow<'a>, StoreError> {
        let row = self.stamp_row(keyspace);
        match row.sql {
            Some(sql) if !self.stamps_table_exists(sql)? => Err(SqlError::MissingTable {
                table: sql.table.clone(),
                reason: "the stamps table does not exist, so no write can be stamped; a store \
                         that may create what is missing (the default) creates it in `init`"
                    .into(),
            }
            .into()),
            _ => Ok(row),
        }
    }

    /// The pool's own epoch (see [`Inner::prepared`]).
    fn pool_epoch(&self) -> u64 {
        self.inner.pool_epoch()
    }

    /// A write committed: every feed in this process on the same keyspace hears of it before
    /// the writer returns (see [`crate::listen`]).
    fn wrote(&self) {
        #[cfg(feature = "postgres")]
        if let Some(listener) = &self.inner.listener {
            listener.wrote();
        }
    }

    /// The table's shape as last read, whatever the epoch since.
    fn last_prepared(&self) -> Option<Arc<Prepared>> {
        let prepared = self
            .inner
            .prepared
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        prepared.as_ref().map(|(_, p)| Arc::clone(p))
    }

    /// The table's shape, read from the catalog when first needed and again once the pool's
    /// epoch has changed since (see [`Inner::prepared`]).
    fn prepared(&self) -> Result<Arc<Prepared>, StoreError> {
        // Read before the catalog: a change during the read makes the next use read again.
        let epoch = self.pool_epoch();
        if let Some((seen, prepared)) = &*self
            .inner
            .prepared
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            && *seen == epoch
        {
            return Ok(Arc::clone(prepared));
        }
        let (table, name) = (&self.inner.table_sql, self.inner.table.as_str());
        let (columns, max_packet): (Vec<Column>, Option<usize>) =
            on_pool!(self, |c| ops::describe(c, table, name))?;
        self.prepare(epoch, &columns, max_packet)
    }

    fn prepare(
        &self,
        epoch: u64,
        columns: &[Column],
        max_packet: Option<usize>,
    ) -> Result<Arc<Prepared>, StoreError> {
        let inner = &self.inner;
        let schema = Schema::from_columns(
            inner.backend,
            &inner.table,
            &inner.key_column,
            &inner.value_column,
            columns,
            max_packet,
        )?;
        let data = DataSql::new(
            inner.backend,
            &inner.table,
            &inner.key_column,
            &inner.value_column,
            &schema,
        );
        let stamp_key = ops::stamp_key(columns, &inner.table).to_owned();
        let prepared = Arc::new(Prepared {
            schema,
            data,
            stamp_key,
        });
        *inner
            .prepared
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some((epoch, Arc::clone(&prepared)));
        Ok(prepared)
    }

    /// After a committed write: the stamp it left, bumping the external stamp if there is one.
    fn finish<T>(&self, done: Done<T>) -> Result<(T, Option<StampValue>), StoreError> {
        if !done.changed {
            return Ok((done.value, None));
        }
        self.wrote();
        let stamp = match (done.stamp, &self.inner.stamp) {
            (Some(stamp), _) => stamp,
            (None, StampMode::External(stamp)) => {
                stamp.bump().map_err(SqlError::StampAfterCommit)?
            }
            (None, StampMode::Row(_)) => {
                return Err(SqlError::Query(diesel::result::Error::NotFound).into());
            }
        };
        Ok((done.value, Some(stamp)))
    }
}

impl Store for SqlStore {
    fn init(&self) -> Result<(), StoreError> {
        let stamp = self.stamp_sql();
        let inner = &self.inner;
        let (table, name, create) = (
            &inner.table_sql,
            inner.table.as_str(),
            inner.create_table.as_str(),
        );
        match &inner.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite(pool) => pool.open_local_file()?,
            #[cfg(feature = "postgres")]
            Pools::Postgres(pool) => pool.open_local_file()?,
            #[cfg(feature = "mysql")]
            Pools::Mysql(pool) => pool.open_local_file()?,
        }
        let create_missing = inner.create_missing;
        let epoch = self.pool_epoch();
        let (columns, max_packet, stamps_table): (Vec<Column>, Option<usize>, bool) =
            on_pool!(self, |c| {
                ops::init(c, table, name, create, stamp, create_missing)
            })?;
        if stamps_table {
            inner.stamps_table_seen.store(true, Ordering::Release);
        }
        self.prepare(epoch, &columns, max_packet)?;
        #[cfg(feature = "postgres")]
        if let (Pools::Postgres(pool), StampMode::Row(sql), true, true) =
            (&inner.pools, &inner.stamp, stamps_table, create_missing)
        {
            pool.run(|c| crate::listen::ensure_trigger(c, &sql.table))?;
        }
        // Creating a lost external stamp is creating something too.
        if let (StampMode::External(stamp), true) = (&inner.stamp, create_missing) {
            stamp.init()?;
        }
        Ok(())
    }

    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        let prepared = self.prepared()?;
        prepared.check(key, value)?;
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::persist(c, data, stamp, key, value))?;
        let ((), stamp) = self.finish(done)?;
        stamp.ok_or_else(|| SqlError::Query(diesel::result::Error::NotFound).into())
    }

    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        let prepared = self.prepared()?;
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::depersist(c, data, stamp, key))?;
        Ok(self.finish(done)?.1)
    }

    fn durables(&self) -> Result<Durables, StoreError> {
        let prepared = self.prepared()?;
        let (data, stamp) = (&prepared.data, self.stamp_row_to_read(&prepared.stamp_key)?);
        match &self.inner.stamp {
            StampMode::Row(_) => Ok(on_pool!(self, |c| ops::durables(c, data, stamp))?),
            StampMode::External(external) => {
                // Stamp first: a write landing between the two reads is seen by the next check.
                let stamp_value = external.get()?;
                let mut durables = on_pool!(self, |c| ops::durables(c, data, stamp))?;
                durables.stamp = stamp_value;
                Ok(durables)
            }
        }
    }

    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        match &self.inner.stamp {
            StampMode::Row(sql) => {
                if !self.stamps_table_exists(sql)? {
                    return Ok(None);
                }
                let prepared = self.stamp_prepared()?;
                let keyspace = self.stamp_key(prepared.as_deref());
                Ok(on_pool!(self, run_check, |c| ops::last_updated(
                    c, sql, keyspace
                ))?)
            }
            StampMode::External(stamp) => stamp.get(),
        }
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let data = &self.prepared()?.data;
        Ok(on_pool!(self, |c| ops::get(c, data, key))?)
    }

    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        let prepared = self.prepared()?;
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::pop(c, data, stamp, key))?;
        Ok(match self.finish(done)? {
            (Some(value), Some(stamp)) => Some((value, stamp)),
            _ => None,
        })
    }

    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        let prepared = self.prepared()?;
        prepared.check(key, value)?;
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::setdefault(c, data, stamp, key, value))?;
        match self.finish(done)? {
            (Some(existing), _) => Ok(SetDefault::Existing(existing)),
            (None, Some(stamp)) => Ok(SetDefault::Inserted(stamp)),
            (None, None) => Err(SqlError::Query(diesel::result::Error::NotFound).into()),
        }
    }

    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let prepared = self.prepared()?;
        for (key, value) in entries {
            prepared.check(key, value)?;
        }
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::persist_many(c, data, stamp, entries))?;
        Ok(self.finish(done)?.1)
    }

    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        let prepared = self.prepared()?;
        let (data, stamp) = (
            &prepared.data,
            self.stamp_row_to_write(&prepared.stamp_key)?,
        );
        let done = on_pool!(self, |c| ops::clear(c, data, stamp))?;
        Ok(self.finish(done)?.1)
    }

    fn validate_key(&self, key: &str) -> Result<(), String> {
        // Without the table's shape (the database is unreachable) the write itself will fail.
        match self.prepared() {
            Ok(prepared) => prepared.schema.check_key(key),
            Err(_) => Ok(()),
        }
    }

    /// The pool's own epoch (a failed request, a replaced SQLite file), plus an external
    /// stamp's (a restarted memcached), so that a change of either is seen.
    ///
    /// On PostgreSQL the change feed's listener adds the server restarts it met (a new
    /// `pg_postmaster_start_time()`), and a change of the pool's epoch marks the feed lost.
    fn epoch(&self) -> u64 {
        let own = self.pool_epoch();
        #[cfg(feature = "postgres")]
        let own = match &self.inner.listener {
            Some(listener) => {
                listener.saw_pool_epoch(own);
                own.wrapping_add(listener.restarts())
            }
            None => own,
        };
        match &self.inner.stamp {
            StampMode::Row(_) => own,
            StampMode::External(stamp) => own.wrapping_add(stamp.epoch()),
        }
    }

    /// PostgreSQL with the SQL-row stamp: `LISTEN` on a dedicated connection, up while the
    /// `durabledict_notify` trigger exists on the stamps table (see the crate's docs). `None`
    /// on SQLite and MySQL/MariaDB, with an external stamp, and for a URL the listener cannot
    /// use (`sslmode=require`, libpq-only options): a dict under `Watch` then checks the
    /// stamp on every read.
    fn feed(&self) -> Option<Arc<Feed>> {
        #[cfg(feature = "postgres")]
        if let Some(listener) = &self.inner.listener {
            return listener.feed(|| {
                let weak = Arc::downgrade(&self.inner);
                let epoch: crate::listen::PoolEpoch =
                    Arc::new(move || weak.upgrade().map(|inner| inner.pool_epoch()));
                let weak = Arc::downgrade(&self.inner);
                let identity: crate::listen::PoolIdentity =
                    Arc::new(move || weak.upgrade().map(|inner| inner.pool_identity()));
                (epoch, identity)
            });
        }
        None
    }

    /// The feed is this handle's (and its clones'), which read the same table and stamp row.
    fn feed_shares_reads(&self) -> bool {
        true
    }

    fn max_value_len(&self) -> Option<usize> {
        self.last_prepared()
            .and_then(|p| p.schema.max_value_bytes())
    }
}
