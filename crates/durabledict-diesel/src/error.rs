//! [`SqlError`], the error inside every [`StoreError`] this crate returns, and how database
//! errors are sorted into what the dict needs to know.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use durabledict_core::{StoreError, StoreErrorKind};

/// What went wrong in the SQL store. It travels as the source of a [`StoreError`]; downcast
/// [`StoreError::inner`] to it to look closer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// The store is configured wrongly: a bad URL or identifier, a backend not compiled in.
    #[error("configuration: {0}")]
    Config(String),
    /// No connection could be had from the pool in time (the server is down or overloaded).
    #[error("no database connection")]
    Pool(#[from] r2d2::Error),
    /// A connection could not be established.
    #[error("cannot connect")]
    Connect(#[from] diesel::ConnectionError),
    /// The SQLite database file cannot be opened (a missing directory, a directory, a missing
    /// file when the store may not create it, a file that is not a database).
    #[error("cannot open the SQLite database {path:?}")]
    Open {
        /// The path, as the URL gave it.
        path: String,
        /// What failed.
        #[source]
        source: Box<SqlError>,
    },
    /// The SQLite database file was deleted or moved away while the store had it open. It is
    /// not opened again, nor created, until the path names a file again; then the store opens
    /// that one.
    #[error(
        "the SQLite database {path:?} no longer exists (deleted or moved while open); it is \
         read again once a file is there"
    )]
    FileGone {
        /// The file's path, as SQLite resolved it.
        path: String,
    },
    /// The SQLite database file kept being replaced on disk while the store reopened it.
    #[error("the SQLite database {path:?} kept being replaced while it was reopened")]
    FileReplaced {
        /// The file's path, as SQLite resolved it.
        path: String,
    },
    /// A query failed.
    #[error("query failed")]
    Query(#[from] DieselError),
    /// The connection failed while the transaction was being committed: it may or may not have
    /// been applied.
    #[error("the connection failed during COMMIT; the write may or may not be applied")]
    CommitUnknown(#[source] DieselError),
    /// The table does not exist, and the store may not create it: a keyspace nothing wrote
    /// yet, or a mistyped name, read by a store that creates nothing
    /// ([`create_missing(false)`](crate::SqlStoreBuilder::create_missing)) or used without
    /// `init`; or the stamps table, which a write needs, on tables another program made.
    /// `StoreErrorKind::Rejected`: nothing is wrong with what the database holds.
    #[error("table {table}: {reason}")]
    MissingTable {
        /// The table.
        table: String,
        /// What cannot be done without it.
        reason: String,
    },
    /// The table is not usable as it is: without the configured columns, or with a column
    /// type the store cannot use.
    #[error("table {table}: {reason}")]
    Schema {
        /// The table.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key column cannot hold this key; nothing was written.
    #[error("key {key:?} cannot be stored: {reason}")]
    InvalidKey {
        /// The refused key.
        key: String,
        /// Why the column cannot hold it.
        reason: String,
    },
    /// The value column cannot hold this value (for example bytes that are not UTF-8 in a text
    /// column); nothing was written.
    #[error("the value of key {key:?} cannot be stored: {reason}")]
    Value {
        /// The key being written.
        key: String,
        /// Why the column cannot hold it.
        reason: String,
    },
    /// Writing one entry of a batch failed; nothing of the batch was written.
    #[error("writing key {key:?} failed")]
    Entry {
        /// The key whose row the database refused.
        key: String,
        /// What failed.
        #[source]
        source: Box<SqlError>,
    },
    /// A MySQL or MariaDB statement failed with an error diesel gives no kind for, and the
    /// store asked the server for its number (diesel keeps only the message): `errno` is
    /// `MYSQL_ERRNO` (1205 a lock wait timeout, 1142 a privilege missing, 1406 a value too
    /// long …), or `None` when the connection could not be asked, being gone (the server
    /// killed or lost it: 2006 / 2013). The error is sorted by that number.
    #[error("{}", server_said(.errno))]
    Server {
        /// The server's error number; `None` when the connection is gone.
        errno: Option<u32>,
        /// The statement's error.
        #[source]
        source: Box<SqlError>,
    },
    /// The write was committed but the external stamp could not be bumped: no dict sees it
    /// until the stamp changes again, and the dict making that change still misses it. Write
    /// again or bump the stamp (see [`SqlStore`](crate::SqlStore)).
    #[error("the write was committed but the stamp could not be bumped")]
    StampAfterCommit(#[source] StoreError),
}

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The connection is unusable: drop it (and every older one), maybe retry.
    Broken,
    /// A transient conflict with another transaction (deadlock, serialization failure, a
    /// concurrent insert of the same key): retry the transaction.
    Conflict,
    /// Anything else: give up with this kind.
    Final(StoreErrorKind),
}

impl SqlError {
    /// How to handle this error.
    pub(crate) fn class(&self) -> Class {
        match self {
            SqlError::Query(e) => classify(e),
            SqlError::Pool(_)
            | SqlError::Connect(_)
            | SqlError::CommitUnknown(_)
            | SqlError::FileGone { .. }
            | SqlError::FileReplaced { .. } => Class::Final(StoreErrorKind::Unavailable),
            SqlError::Config(_) => Class::Final(StoreErrorKind::Other),
            // A local file that cannot be opened stays so: not a server that may come back.
            SqlError::Open { source, .. } => match **source {
                SqlError::Connect(_) => Class::Final(StoreErrorKind::Other),
                // A statement of the connection's set-up, e.g. a lock another process holds.
                ref other => other.class(),
            },
            SqlError::Entry { source, .. } => source.class(),
            SqlError::Server { errno: None, .. } => Class::Broken,
            SqlError::Server {
                errno: Some(errno),
                source,
            } => mysql_class(*errno).unwrap_or_else(|| source.class()),
            SqlError::Schema { .. } => Class::Final(StoreErrorKind::Corrupt),
            SqlError::Value { .. }
            | SqlError::InvalidKey { .. }
            | SqlError::MissingTable { .. } => Class::Final(StoreErrorKind::Rejected),
            SqlError::StampAfterCommit(e) => Class::Final(e.kind()),
        }
    }

    /// Whether the connection it happened on is dead and must not be reused.
    pub(crate) fn breaks_connection(&self) -> bool {
        match self {
            SqlError::Query(e) | SqlError::CommitUnknown(e) => classify(e) == Class::Broken,
            SqlError::Entry { source, .. } => source.breaks_connection(),
            SqlError::Server { errno: None, .. } => true,
            SqlError::Server {
                errno: Some(errno),
                source,
            } => mysql_class(*errno).map_or_else(
                || source.breaks_connection(),
                |class| class == Class::Broken,
            ),
            _ => false,
        }
    }

    /// Whether, after this error, the database may not be the one read before: a connection
    /// died or none could be made (the server may have restarted, maybe empty), a commit's
    /// outcome is unknown, the file was deleted or replaced. A lock wait or a refused
    /// statement says nothing of the kind.
    pub(crate) fn loses_continuity(&self) -> bool {
        match self {
            SqlError::Pool(_)
            | SqlError::Connect(_)
            | SqlError::CommitUnknown(_)
            | SqlError::FileGone { .. }
            | SqlError::FileReplaced { .. } => true,
            SqlError::Open { source, .. } | SqlError::Entry { source, .. } => {
                source.loses_continuity()
            }
            SqlError::Server { source, .. } => {
                source.loses_continuity() || self.breaks_connection()
            }
            other => other.breaks_connection(),
        }
    }

    /// The kind a caller sees once retries are over.
    pub(crate) fn kind(&self) -> StoreErrorKind {
        match self.class() {
            Class::Broken => StoreErrorKind::Unavailable,
            Class::Conflict => match self {
                SqlError::Query(DieselError::DatabaseError(
                    DatabaseErrorKind::UniqueViolation,
                    _,
                )) => StoreErrorKind::Rejected,
                _ => StoreErrorKind::Unavailable,
            },
            Class::Final(kind) => kind,
        }
    }
}

impl From<SqlError> for StoreError {
    fn from(error: SqlError) -> Self {
        StoreError::new(error.kind(), error)
    }
}

fn server_said(errno: &Option<u32>) -> String {
    match errno {
        Some(errno) => format!("MySQL error {errno}"),
        None => "the MySQL connection is gone".to_owned(),
    }
}

impl SqlError {
    /// Whether a statement failed on the server with an error diesel gives no kind for (the
    /// store then asks a MySQL server for the error's number).
    pub(crate) fn lacks_a_kind(&self) -> bool {
        match self {
            SqlError::Query(DieselError::DatabaseError(DatabaseErrorKind::Unknown, _))
            | SqlError::CommitUnknown(DieselError::DatabaseError(DatabaseErrorKind::Unknown, _)) => {
                true
            }
            SqlError::Entry { source, .. } => source.lacks_a_kind(),
            _ => false,
        }
    }
}

/// Sorts a MySQL / MariaDB error number (the server's `ER_*`, or the client's `CR_*`); `None`
/// for the numbers it does not know, which are then sorted as before they were known.
fn mysql_class(errno: u32) -> Option<Class> {
    Some(match errno {
        // ER_LOCK_DEADLOCK: rolled back, "try restarting transaction" at once.
        1213 => Class::Conflict,
        // ER_LOCK_WAIT_TIMEOUT: the server already waited `innodb_lock_wait_timeout` (50 s by
        // default) for the lock; retrying would multiply that wait by the store's attempts.
        1205 => Class::Final(StoreErrorKind::Unavailable),
        // ER_SERVER_SHUTDOWN, ER_CONNECTION_KILLED, MariaDB's idle disconnect; the client's
        // CR_SERVER_GONE_ERROR, CR_SERVER_LOST.
        1053 | 1927 | 4031 | 2006 | 2013 => Class::Broken,
        // Access denied (database, user, table, column, a privilege), a read-only server or
        // transaction; a value the column cannot hold (too long, bad characters, out of
        // range, NULL), a packet over max_allowed_packet, a CHECK constraint.
        1044 | 1045 | 1142 | 1143 | 1227 | 1290 | 1792 | 1406 | 1366 | 1264 | 1048 | 1364
        | 1153 | 3819 => Class::Final(StoreErrorKind::Rejected),
        // ER_NO_SUCH_TABLE: a table dropped while in use, as for `MissingTable`.
        1146 => Class::Final(StoreErrorKind::Rejected),
        // ER_BAD_FIELD_ERROR: the table lacks a column the store uses.
        1054 => Class::Final(StoreErrorKind::Corrupt),
        _ => return None,
    })
}

/// SQLite's primary result codes that the store tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqliteCode {
    Perm,
    Busy,
    Locked,
    ReadOnly,
    IoErr,
    Corrupt,
    Full,
    CantOpen,
    TooBig,
    NotADb,
    Auth,
}

/// The primary result code of an SQLite error. diesel keeps the code to itself (its error
/// holds `sqlite3_errmsg` only, and the connection handle, through which libsqlite3-sys would
/// give `sqlite3_extended_errcode`, is private), but for these codes SQLite reports exactly the
/// code's own text (`sqlite3ErrStr`, never translated), so the whole message names the code.
/// A message SQLite wrote for the occasion (`no such table: x`, a `SQLITE_ERROR`) names none.
fn sqlite_code(message: &str) -> Option<SqliteCode> {
    Some(match message {
        "access permission denied" => SqliteCode::Perm,
        "database is locked" => SqliteCode::Busy,
        "database table is locked" => SqliteCode::Locked,
        "attempt to write a readonly database" => SqliteCode::ReadOnly,
        "disk I/O error" => SqliteCode::IoErr,
        "database disk image is malformed" => SqliteCode::Corrupt,
        "database or disk is full" => SqliteCode::Full,
        "unable to open database file" => SqliteCode::CantOpen,
        "string or blob too big" => SqliteCode::TooBig,
        "file is not a database" => SqliteCode::NotADb,
        "authorization denied" => SqliteCode::Auth,
        _ => return None,
    })
}

/// Whether SQLite failed a statement with `SQLITE_BUSY`: another connection holds a lock this
/// one needs.
pub(crate) fn is_locked(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
            if sqlite_code(info.message()) == Some(SqliteCode::Busy)
    )
}

fn classify_sqlite(code: SqliteCode) -> Class {
    Class::Final(match code {
        // Another process's lock outlasted the busy timeout; a disk that may get space or
        // come back.
        SqliteCode::Busy
        | SqliteCode::Locked
        | SqliteCode::IoErr
        | SqliteCode::Full
        | SqliteCode::CantOpen => StoreErrorKind::Unavailable,
        // No right to write (a read-only file or URI), or a value over SQLite's limit.
        SqliteCode::ReadOnly | SqliteCode::Perm | SqliteCode::Auth | SqliteCode::TooBig => {
            StoreErrorKind::Rejected
        }
        SqliteCode::Corrupt | SqliteCode::NotADb => StoreErrorKind::Corrupt,
    })
}

/// Sorts a diesel error: by diesel's kind (which it derives from SQLSTATE, MySQL's error
/// number or SQLite's extended code), then by SQLite's result code. MySQL's error numbers
/// beyond diesel's kinds are asked of the server (see [`SqlError::Server`]); PostgreSQL's
/// SQLSTATE beyond them cannot be had (diesel reads it only to pick a kind, and its
/// `DatabaseErrorInformation` has no code), so the servers' messages are matched for the rest:
/// the documented fallback, tested against real servers in `tests/server_errors.rs`.
fn classify(error: &DieselError) -> Class {
    let DieselError::DatabaseError(kind, info) = error else {
        return match error {
            DieselError::BrokenTransactionManager => Class::Broken,
            DieselError::DeserializationError(_) => Class::Final(StoreErrorKind::Corrupt),
            _ => Class::Final(StoreErrorKind::Other),
        };
    };
    match kind {
        DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
            Class::Broken
        }
        DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::UniqueViolation => {
            Class::Conflict
        }
        DatabaseErrorKind::NotNullViolation
        | DatabaseErrorKind::CheckViolation
        | DatabaseErrorKind::ForeignKeyViolation
        | DatabaseErrorKind::RestrictViolation
        | DatabaseErrorKind::ExclusionViolation => Class::Final(StoreErrorKind::Rejected),
        DatabaseErrorKind::ReadOnlyTransaction => Class::Final(StoreErrorKind::Rejected),
        _ => match sqlite_code(info.message()) {
            Some(code) => classify_sqlite(code),
            None => classify_message(info.message()),
        },
    }
}

/// PostgreSQL's and MySQL's messages (and SQLite's own wording of a missing table or column).
fn classify_message(message: &str) -> Class {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&[
        "gone away",
        "lost connection",
        "server closed the connection",
        "terminating connection",
        "connection reset",
        "broken pipe",
        "no connection to the server",
        "can't connect",
        "connection refused",
    ]) {
        Class::Broken
    } else if has(&[
        // MySQL's lock wait timeout (it also says "try restarting transaction", but the
        // server already waited for the lock: not retried); PostgreSQL's lock_not_available
        // (55P03): past `lock_timeout`, or NOWAIT.
        "lock wait timeout",
        "due to lock timeout",
        "could not obtain lock",
    ]) {
        Class::Final(StoreErrorKind::Unavailable)
    } else if has(&[
        "deadlock",
        "could not serialize",
        "try restarting transaction",
    ]) {
        Class::Conflict
    } else if has(&[
        "too long",
        "too big",
        "data too long",
        "incorrect string value",
        "invalid byte sequence",
        "max_allowed_packet",
        "out of range",
        // No right to write: PostgreSQL, MySQL, a read-only MySQL server.
        "permission denied",
        "command denied",
        "read-only",
    ]) {
        Class::Final(StoreErrorKind::Rejected)
    } else if has(&["no such column", "unknown column", "has no column"])
        || (m.starts_with("column ") && m.contains("does not exist"))
    {
        Class::Final(StoreErrorKind::Corrupt)
    } else if has(&["no such table", "does not exist", "doesn't exist"]) {
        // A table dropped while in use (`drop_keyspace`): missing, as for `MissingTable`.
        Class::Final(StoreErrorKind::Rejected)
    } else {
        Class::Final(StoreErrorKind::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that none of the first `own` levels of `error`'s chain (this crate's) shows the
    /// text of its source: the chain reporter shows it.
    fn assert_no_level_repeats_its_source(error: &(dyn std::error::Error + 'static), own: usize) {
        let mut level = error;
        for _ in 0..own {
            let source = level
                .source()
                .unwrap_or_else(|| panic!("{level:?} has no source"));
            let (text, below) = (level.to_string(), source.to_string());
            assert!(
                !text.contains(&below),
                "{text:?} repeats its source {below:?}"
            );
            level = source;
        }
    }

    #[test]
    fn no_level_repeats_its_source() {
        let query = || {
            DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new("relation \"t\" does not exist".to_owned()),
            )
        };
        let connect = || diesel::ConnectionError::BadConnection("connection refused".into());
        let errors = [
            (SqlError::Query(query()), 1),
            (SqlError::CommitUnknown(query()), 1),
            (SqlError::Connect(connect()), 1),
            (
                SqlError::Open {
                    path: "x.db".into(),
                    source: Box::new(SqlError::Connect(connect())),
                },
                2,
            ),
            (
                SqlError::Entry {
                    key: "k".into(),
                    source: Box::new(SqlError::Query(query())),
                },
                2,
            ),
            (
                SqlError::StampAfterCommit(StoreError::unavailable("memcached unreachable")),
                2,
            ),
            (
                SqlError::Server {
                    errno: Some(1205),
                    source: Box::new(SqlError::Query(query())),
                },
                2,
            ),
            (
                SqlError::Server {
                    errno: None,
                    source: Box::new(SqlError::Query(query())),
                },
                2,
            ),
        ];
        for (error, own) in &errors {
            assert_no_level_repeats_its_source(error, *own);
        }
        assert_no_level_repeats_its_source(&StoreError::from(SqlError::Query(query())), 2);
    }

    #[test]
    fn an_unopenable_file_is_final_but_a_set_up_statement_keeps_its_class() {
        let open = |source| SqlError::Open {
            path: "x.db".into(),
            source: Box::new(source),
        };
        let connect = diesel::ConnectionError::BadConnection("unable to open".into());
        assert_eq!(
            open(SqlError::Connect(connect)).class(),
            Class::Final(StoreErrorKind::Other)
        );
        let query = |message: &str| {
            SqlError::Query(DieselError::DatabaseError(
                DatabaseErrorKind::Unknown,
                Box::new(message.to_owned()),
            ))
        };
        assert_eq!(open(query("deadlock detected")).class(), Class::Conflict);
        assert_eq!(
            open(query("database is locked")).class(),
            Class::Final(StoreErrorKind::Unavailable)
        );
    }

    #[test]
    fn server_messages_are_sorted() {
        assert_eq!(
            classify_message("MySQL server has gone away"),
            Class::Broken
        );
        assert_eq!(classify_message("deadlock detected"), Class::Conflict);
        assert_eq!(
            classify_message("Lock wait timeout exceeded; try restarting transaction"),
            Class::Final(StoreErrorKind::Unavailable)
        );
        assert_eq!(
            classify_message("value too long for type character varying(32)"),
            Class::Final(StoreErrorKind::Rejected)
        );
        assert_eq!(
            classify_message("Data too long for column 'key' at row 1"),
            Class::Final(StoreErrorKind::Rejected)
        );
        for denied in [
            "permission denied for table flags",
            "INSERT command denied to user 'ro'@'localhost' for table `db`.`flags`",
        ] {
            assert_eq!(
                classify_message(denied),
                Class::Final(StoreErrorKind::Rejected),
                "{denied}"
            );
        }
        for missing_table in [
            "no such table: flags",
            "relation \"flags\" does not exist",
            "Table 'db.flags' doesn't exist",
        ] {
            assert_eq!(
                classify_message(missing_table),
                Class::Final(StoreErrorKind::Rejected),
                "{missing_table}"
            );
        }
        for missing_column in [
            "no such column: value",
            "column \"value\" does not exist",
            "column \"value\" of relation \"flags\" does not exist",
            "Unknown column 'value' in 'field list'",
        ] {
            assert_eq!(
                classify_message(missing_column),
                Class::Final(StoreErrorKind::Corrupt),
                "{missing_column}"
            );
        }
        assert_eq!(
            classify_message("something else"),
            Class::Final(StoreErrorKind::Other)
        );
    }

    /// Real SQLite failures, each sorted by its result code.
    #[cfg(feature = "sqlite")]
    mod sqlite {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        use diesel::sqlite::SqliteConnection;

        use super::*;

        fn class_of(conn: &mut SqliteConnection, sql: &str) -> Class {
            match conn.batch_execute(sql) {
                Ok(()) => panic!("{sql} succeeded"),
                Err(e) => SqlError::Query(e).class(),
            }
        }

        fn connect(url: &str) -> SqliteConnection {
            SqliteConnection::establish(url).unwrap_or_else(|e| panic!("{e}"))
        }

        #[test]
        fn a_lock_held_past_the_busy_timeout_is_unavailable() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("x.db").display().to_string();
            let (mut holder, mut waiter) = (connect(&path), connect(&path));
            holder
                .batch_execute("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
                .unwrap_or_else(|e| panic!("{e}"));
            let error = waiter.batch_execute("INSERT INTO t VALUES (2)");
            assert!(matches!(&error, Err(e) if is_locked(e)), "{error:?}");
            assert_eq!(
                class_of(&mut waiter, "INSERT INTO t VALUES (2)"),
                Class::Final(StoreErrorKind::Unavailable)
            );
        }

        #[test]
        fn a_write_to_a_read_only_file_is_rejected() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("x.db").display().to_string();
            connect(&path)
                .batch_execute("CREATE TABLE t (x)")
                .unwrap_or_else(|e| panic!("{e}"));
            let mut reader = connect(&format!("file:{path}?mode=ro"));
            assert_eq!(
                class_of(&mut reader, "INSERT INTO t VALUES (1)"),
                Class::Final(StoreErrorKind::Rejected)
            );
        }

        #[test]
        fn a_value_over_sqlites_limit_is_rejected() {
            let mut conn = connect(":memory:");
            assert_eq!(
                class_of(&mut conn, "SELECT zeroblob(2000000000)"),
                Class::Final(StoreErrorKind::Rejected)
            );
        }

        #[test]
        fn a_file_that_is_not_a_database_is_corrupt() {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let path = dir.path().join("x.db");
            std::fs::write(&path, [b'x'; 4096]).unwrap_or_else(|e| panic!("{e}"));
            let mut conn = connect(&path.display().to_string());
            assert_eq!(
                class_of(&mut conn, "SELECT * FROM sqlite_master"),
                Class::Final(StoreErrorKind::Corrupt)
            );
        }

        /// SQLite's wording of a statement error names no code: a server's words that look
        /// alike do not make it one.
        #[test]
        fn only_a_codes_own_text_is_that_code() {
            assert_eq!(sqlite_code("database is locked"), Some(SqliteCode::Busy));
            assert_eq!(sqlite_code("the database is locked by x"), None);
            assert_eq!(sqlite_code("no such table: t"), None);
        }
    }
}
