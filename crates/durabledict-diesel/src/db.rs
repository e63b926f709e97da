//! [`Db`]: the few primitive operations the store needs from a connection, implemented once
//! per backend connection type, so that the store's logic is written once and generic.

use diesel::connection::Connection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable, Text};

use crate::dialect::Backend;
use crate::error::SqlError;
use crate::schema::Column;
use crate::stmt::{StampSelect, Stmt};

#[derive(QueryableByName)]
struct IntRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(QueryableByName)]
struct EntryRow {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

/// A row whose key is read as bytes (SQLite), so that a key that is not UTF-8 (a BLOB, as
/// Python's sqlite3 binds `bytes`, or text of such bytes) is reported, not a failed load; and
/// with its storage class (`typeof`), since a key stored as anything but text (a BLOB, an
/// integer in a column without text affinity, NULL) is never found by the single-key
/// statements, which bind the key as text.
#[cfg(feature = "sqlite")]
#[derive(QueryableByName)]
struct RawEntryRow {
    #[diesel(sql_type = Binary)]
    k: Vec<u8>,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
    #[diesel(sql_type = Text)]
    t: String,
}

/// One row of a full load: the key's bytes, the value, and the key's storage class when it is
/// not text (SQLite only).
pub(crate) struct Entry {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) not_text: Option<String>,
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
impl From<EntryRow> for Entry {
    fn from(r: EntryRow) -> Self {
        Entry {
            key: r.k.into(),
            value: r.v,
            not_text: None,
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<RawEntryRow> for Entry {
    fn from(r: RawEntryRow) -> Self {
        Entry {
            key: r.k,
            value: r.v,
            not_text: (r.t != "text").then_some(r.t),
        }
    }
}

#[derive(QueryableByName)]
struct ValueRow {
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Nullable<Text>)]
    max_chars: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    max_bytes: Option<String>,
    #[diesel(sql_type = Text)]
    tbl: String,
}

#[cfg(feature = "sqlite")]
#[derive(QueryableByName)]
struct FileRow {
    #[diesel(sql_type = Text)]
    file: String,
}

/// A connection of one backend.
pub(crate) trait Db: Connection + Send + 'static {
    /// Which backend this is.
    const BACKEND: Backend;

    /// Runs a statement; returns the number of rows it changed.
    fn exec(&mut self, stmt: Stmt<'_>) -> QueryResult<usize>;

    /// The integer column `n` of the first row, if there is a row.
    fn int(&mut self, stmt: Stmt<'_>) -> QueryResult<Option<i64>>;

    /// The stamp check.
    fn stamp(&mut self, query: StampSelect<'_>) -> QueryResult<Option<i64>>;

    /// Every row's `k` (its bytes; UTF-8 unless the database holds otherwise) and `v`.
    fn entries(&mut self, stmt: Stmt<'_>) -> QueryResult<Vec<Entry>>;

    /// The `v` column of the first row, if there is a row.
    fn value(&mut self, stmt: Stmt<'_>) -> QueryResult<Option<Vec<u8>>>;

    /// The rows of a catalog query (see [`TableSql::columns`](crate::dialect::TableSql)).
    fn columns(&mut self, stmt: Stmt<'_>) -> QueryResult<Vec<Column>>;

    /// The path of the database file the connection opened (SQLite); `None` when it has none
    /// (an in-memory database, or a server).
    fn database_file(&mut self) -> QueryResult<Option<String>> {
        Ok(None)
    }

    /// A write transaction that serializes with other writers of the same rows. A failure
    /// after the body succeeded (during COMMIT) is [`SqlError::CommitUnknown`].
    fn write_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError>;

    /// A read-only transaction whose statements all see one snapshot.
    fn snapshot_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError>;
}

/// Turns an error after the body ran into "the commit may or may not have happened".
fn commit_outcome<T>(result: Result<T, SqlError>, body_done: bool) -> Result<T, SqlError> {
    match result {
        Err(SqlError::Query(e)) if body_done => Err(SqlError::CommitUnknown(e)),
        other => other,
    }
}

/// `body`, noting in `done` that it finished, so that a failure after it is known to be the
/// COMMIT's (see [`commit_outcome`]).
fn noting<'a, C, T>(
    done: &'a mut bool,
    body: impl FnOnce(&mut C) -> Result<T, SqlError> + 'a,
) -> impl FnOnce(&mut C) -> Result<T, SqlError> + 'a {
    move |c| {
        let value = body(c)?;
        *done = true;
        Ok(value)
    }
}

macro_rules! primitive_ops {
    ($entry:ty) => {
        fn exec(&mut self, stmt: Stmt<'_>) -> QueryResult<usize> {
            stmt.execute(self)
        }

        fn int(&mut self, stmt: Stmt<'_>) -> QueryResult<Option<i64>> {
            Ok(stmt.load::<IntRow>(self)?.into_iter().next().map(|r| r.n))
        }

        fn stamp(&mut self, query: StampSelect<'_>) -> QueryResult<Option<i64>> {
            query.get_result::<i64>(self).optional()
        }

        fn entries(&mut self, stmt: Stmt<'_>) -> QueryResult<Vec<Entry>> {
            Ok(stmt
                .load::<$entry>(self)?
                .into_iter()
                .map(Entry::from)
                .collect())
        }

        fn value(&mut self, stmt: Stmt<'_>) -> QueryResult<Option<Vec<u8>>> {
            Ok(stmt.load::<ValueRow>(self)?.into_iter().next().map(|r| r.v))
        }

        fn columns(&mut self, stmt: Stmt<'_>) -> QueryResult<Vec<Column>> {
            Ok(stmt
                .load::<ColumnRow>(self)?
                .into_iter()
                .map(|r| Column {
                    name: r.name,
                    ty: r.ty,
                    max_chars: r.max_chars,
                    max_bytes: r.max_bytes,
                    table: r.tbl,
                })
                .collect())
        }
    };
}

#[cfg(feature = "sqlite")]
impl Db for diesel::sqlite::SqliteConnection {
    const BACKEND: Backend = Backend::Sqlite;

    primitive_ops!(RawEntryRow);

    fn database_file(&mut self) -> QueryResult<Option<String>> {
        let sql = "SELECT file AS file FROM pragma_database_list WHERE name = 'main'";
        Ok(Stmt::new(sql, &[])
            .load::<FileRow>(self)?
            .into_iter()
            .next()
            .map(|r| r.file))
    }

    fn write_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        // IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout), so a
        // transaction never fails later trying to upgrade a read lock.
        let mut done = false;
        let result = self.immediate_transaction(noting(&mut done, body));
        commit_outcome(result, done)
    }

    fn snapshot_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        // A deferred transaction reads one snapshot from its first statement on: a WAL read
        // mark, or in rollback-journal mode a SHARED lock that keeps writers out until it ends.
        self.transaction(body)
    }
}

#[cfg(feature = "postgres")]
impl Db for diesel::pg::PgConnection {
    const BACKEND: Backend = Backend::Postgres;

    primitive_ops!(EntryRow);

    fn write_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let mut done = false;
        let result = self
            .build_transaction()
            .read_committed()
            .run(noting(&mut done, body));
        commit_outcome(result, done)
    }

    fn snapshot_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.build_transaction()
            .repeatable_read()
            .read_only()
            .run(body)
    }
}

#[cfg(feature = "mysql")]
impl Db for diesel::mysql::MysqlConnection {
    const BACKEND: Backend = Backend::Mysql;

    primitive_ops!(EntryRow);

    fn write_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let mut done = false;
        let result = self.transaction(noting(&mut done, body));
        commit_outcome(result, done)
    }

    fn snapshot_tx<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        // Applies to the next transaction only: a consistent snapshot from its first read on.
        diesel::connection::SimpleConnection::batch_execute(
            self,
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        )?;
        self.transaction(body)
    }
}
