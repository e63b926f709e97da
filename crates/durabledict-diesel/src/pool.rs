//! The r2d2 connection pool, with what a long-lived store needs on top: a connection that
//! failed is dropped together with every connection opened before it (after a server restart
//! they are all dead), an operation that failed on a dead connection or in a transient
//! conflict is retried, connections to an SQLite file that was deleted or replaced on disk are
//! replaced, and an epoch counts the times continuity may have been lost.
//!
//! Reported under the `tracing` target `durabledict::sql` (docs/observability.md): the first
//! failure of an outage (a dead connection, a server that cannot be reached, a database file
//! that is gone) at `warn`, the following ones at `debug`; the first new connection after it
//! (or the first success, when no new connection was needed) at `info`; a database file
//! replaced on disk at `warn`. Nothing while operations succeed on the connections already
//! open.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use diesel::r2d2::R2D2Connection;

use crate::db::Db;
use crate::dialect::Backend;
use crate::error::{Class, SqlError};
use crate::file::{self, FileId};
use crate::stmt::Stmt;

/// How many times one operation runs at most (first try included).
const MAX_ATTEMPTS: u32 = 5;
/// How many of those may be caused by a dead connection.
const MAX_BROKEN_RETRIES: u32 = 2;
/// How long a stamp check trusts the last look at the database file's path. A `stat` measured
/// ~1.1 µs here beside a ~5 µs check; a clock read, 0.05 µs. So a file replaced on disk is
/// noticed by the first check at most this long after it was, and by every other operation at
/// once (a write must never go to a deleted file). In nanoseconds.
const FILE_CHECK_PERIOD: u64 = 1_000_000;

/// The `tracing` target of the SQL store's events.
const TARGET: &str = "durabledict::sql";

/// How a pool is sized and how long it waits.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    pub(crate) max_size: u32,
    pub(crate) connection_timeout: Duration,
    /// Keep connections forever (an SQLite `:memory:` database lives in its one connection).
    pub(crate) keep_forever: bool,
    /// The path of a local database file (SQLite), as the URL gave it.
    pub(crate) local_file: Option<String>,
    /// The path of a local database file given as a plain path, made absolute when the store
    /// was built: the path that is looked at to notice a replaced file. Not the file SQLite
    /// resolved, so that a symlink re-pointed to another database (`ln -sfn`) is followed.
    /// `None` for a `file:` URI: then the file SQLite resolved is looked at.
    pub(crate) local_path: Option<PathBuf>,
}

/// A connection with what the pool needs to know about it.
pub(crate) struct Pooled<C> {
    pub(crate) conn: C,
    /// The pool generation it was opened in.
    generation: u64,
    broken: bool,
    /// The database file it opened (SQLite), as it was right after opening.
    file: Option<FileId>,
}

impl<C> fmt::Debug for Pooled<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("generation", &self.generation)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// How connections are opened, and the SQL each new connection runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Setup {
    /// SQLite: the name that opens the file and creates it when missing, tried when `url`
    /// (which never creates) finds no file. Then the store made the file, and `on_create` runs.
    pub(crate) create_url: Option<String>,
    /// SQLite, a plain path: the file, created here exclusively (`O_EXCL`) when `url` finds
    /// none, so that of processes opening a new file at once exactly one takes itself for its
    /// creator. Without it (a `file:` URI) SQLite creates the file through `create_url`, and
    /// racing processes may each take themselves for the creator: `on_create` must then be
    /// harmless twice (as setting WAL is).
    pub(crate) create_path: Option<PathBuf>,
    /// Run on every new connection. Its first statement sets the busy timeout (SQLite), so
    /// that everything after it waits for another process's lock.
    pub(crate) required: String,
    /// Run next, on a file this connection just created.
    pub(crate) on_create: String,
    /// How long a set-up statement is tried again while SQLite fails it as locked at once
    /// (see [`set_up`]): the busy timeout.
    pub(crate) lock_patience: Duration,
}

/// Opens connections: establishes, then runs the per-connection setup SQL.
pub(crate) struct Manager<C> {
    url: String,
    setup: Setup,
    generation: Arc<AtomicU64>,
    /// The path of the database file (SQLite): the configured one (see
    /// [`PoolConfig::local_path`]), else as SQLite resolved it at the first connection.
    file: Arc<OnceLock<Option<PathBuf>>>,
    /// Whether an outage was reported and no new connection was opened since (see
    /// [`Pool::outage`]).
    down: Arc<AtomicBool>,
    _conn: std::marker::PhantomData<fn() -> C>,
}

impl<C> Clone for Manager<C> {
    fn clone(&self) -> Self {
        Manager {
            url: self.url.clone(),
            setup: self.setup.clone(),
            generation: Arc::clone(&self.generation),
            file: Arc::clone(&self.file),
            down: Arc::clone(&self.down),
            _conn: std::marker::PhantomData,
        }
    }
}

impl<C> fmt::Debug for Manager<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Manager").finish_non_exhaustive()
    }
}

/// A failed connect as r2d2 takes it. r2d2 keeps only the text of the last one, which it puts
/// in the [`r2d2::Error`] it returns once its connection timeout is over (and that error has
/// no source): so this text says the whole chain, or what libpq or MySQL said would be lost.
#[derive(Debug)]
pub(crate) struct ConnectError(SqlError);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        durabledict_core::Report(&self.0).fmt(f)
    }
}

impl std::error::Error for ConnectError {}

impl<C: Db + R2D2Connection> r2d2::ManageConnection for Manager<C> {
    type Connection = Pooled<C>;
    type Error = ConnectError;

    fn connect(&self) -> Result<Pooled<C>, ConnectError> {
        self.open().map_err(ConnectError)
    }

    fn is_valid(&self, conn: &mut Pooled<C>) -> Result<(), ConnectError> {
        conn.conn
            .ping()
            .map_err(|e| ConnectError(SqlError::Query(e)))
    }

    fn has_broken(&self, conn: &mut Pooled<C>) -> bool {
        conn.broken || conn.conn.is_broken() || std::thread::panicking()
    }
}

impl<C: Db + R2D2Connection> Manager<C> {
    /// Opens a connection and sets it up.
    fn open(&self) -> Result<Pooled<C>, SqlError> {
        let generation = self.generation.load(Ordering::SeqCst);
        let (mut conn, created) = self.establish()?;
        set_up(&mut conn, &self.setup.required, self.setup.lock_patience)?;
        if created {
            set_up(&mut conn, &self.setup.on_create, self.setup.lock_patience)?;
        }
        let path = match self.file.get() {
            Some(path) => path.clone(),
            None => {
                let path = file::database_path(conn.database_file()?);
                self.file.get_or_init(|| path).clone()
            }
        };
        // Unknown when it cannot be told: then it is taken as replaced at its first use, and
        // the connection replaced, as long as the path names a file.
        let file = path.and_then(|p| file::identify(&p).ok().flatten());
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(target: TARGET, backend = ?C::BACKEND, "reconnected");
        } else {
            tracing::debug!(target: TARGET, backend = ?C::BACKEND, "new connection");
        }
        Ok(Pooled {
            conn,
            generation,
            broken: false,
            file,
        })
    }

    /// Opens a connection; `true` when this connection made the database file (SQLite).
    fn establish(&self) -> Result<(C, bool), SqlError> {
        let error = match C::establish(&self.url) {
            Ok(conn) => return Ok((conn, false)),
            Err(error) => error,
        };
        let Some(create_url) = &self.setup.create_url else {
            return Err(error.into());
        };
        let Some(path) = &self.setup.create_path else {
            return Ok((C::establish(create_url)?, true));
        };
        match file::create_new(path) {
            Ok(()) => Ok((C::establish(&self.url)?, true)),
            // Another process made it since `url` found nothing: it is that one's to set up.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Ok((C::establish(&self.url)?, false))
            }
            // A missing directory, no permission: SQLite's own words say so, as for any file
            // it cannot open.
            Err(_) => Err(error.into()),
        }
    }
}

/// Runs set-up statements, again while SQLite fails them as locked, for up to `patience`.
/// The busy timeout does not cover every lock: SQLite fails at once a statement that holds a
/// read lock and needs the write lock another connection holds (it would deadlock waiting),
/// as `PRAGMA journal_mode = WAL` on a new file does while another process creates its table.
fn set_up<C: Db>(conn: &mut C, sql: &str, patience: Duration) -> Result<(), SqlError> {
    if sql.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.batch_execute(sql) {
            Ok(()) => return Ok(()),
            Err(e) if crate::error::is_locked(&e) && started.elapsed() < patience => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

type Checkout<C> = r2d2::PooledConnection<Manager<C>>;

/// A pool of connections of one backend.
///
/// Connections are opened and limited by r2d2, but kept between operations in `hot`, a plain
/// stack in front of it: a stamp check is a few microseconds, and r2d2's own checkout and
/// check-in (clock reads, event hooks, two locks) measured a sixth of that. Connections thus
/// stay open once opened (up to the pool's size); dead ones are dropped as below. While some
/// thread waits in r2d2 for a connection, connections go back to r2d2 instead, to wake it.
pub(crate) struct Pool<C: Db + R2D2Connection> {
    inner: r2d2::Pool<Manager<C>>,
    /// Opens a connection outside the pool (see [`open_local_file`](Self::open_local_file)).
    manager: Manager<C>,
    local_file: Option<String>,
    /// Whether the local database file has been opened once (see [`run`](Self::run)).
    local_file_opened: AtomicBool,
    hot: Mutex<Vec<Checkout<C>>>,
    max_hot: usize,
    /// Threads that found `hot` empty and are getting a connection from r2d2.
    waiting: AtomicUsize,
    generation: Arc<AtomicU64>,
    /// Counts the times continuity may have been lost (see [`epoch`](Self::epoch)).
    epoch: AtomicU64,
    /// When the database file's path last named the file the connections read, in nanoseconds
    /// after `born` (see [`FILE_CHECK_PERIOD`]).
    file_seen_at: AtomicU64,
    born: Instant,
}

impl<C: Db + R2D2Connection> fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("Pool")
            .field("backend", &C::BACKEND)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

impl<C: Db + R2D2Connection> Pool<C> {
    /// A pool that connects lazily: building it never fails because the server is down.
    pub(crate) fn new(url: String, setup: Setup, config: &PoolConfig) -> Self {
        let generation = Arc::new(AtomicU64::new(0));
        let manager = Manager {
            url,
            setup,
            generation: Arc::clone(&generation),
            file: Arc::new(match &config.local_path {
                Some(path) => OnceLock::from(Some(path.clone())),
                None => OnceLock::new(),
            }),
            down: Arc::new(AtomicBool::new(false)),
            _conn: std::marker::PhantomData,
        };
        let mut builder = r2d2::Pool::builder()
            // r2d2 would log every failed connect of its own threads at `error` (through
            // `log`), many times per outage: the failure that reaches a caller is reported
            // instead (see `outage`), these at `debug`.
            .error_handler(Box::new(ConnectFailed))
            .max_size(config.max_size)
            .min_idle(Some(if config.keep_forever { 1 } else { 0 }))
            // A checkout must cost nothing: a dead connection shows itself on first use and is
            // then replaced (see `run`).
            .test_on_check_out(false)
            .connection_timeout(config.connection_timeout);
        if config.keep_forever {
            builder = builder.idle_timeout(None).max_lifetime(None);
        }
        Pool {
            inner: builder.build_unchecked(manager.clone()),
            manager,
            local_file: config.local_file.clone(),
            local_file_opened: AtomicBool::new(false),
            hot: Mutex::new(Vec::new()),
            max_hot: usize::try_from(config.max_size).unwrap_or(usize::MAX),
            waiting: AtomicUsize::new(0),
            generation,
            epoch: AtomicU64::new(0),
            file_seen_at: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// Changes whenever what this pool reads may have lost continuity with what it read
    /// before: a connection died (the server may have restarted, empty), the server could not
    /// be reached, a commit's outcome is unknown, or the database file was deleted or replaced.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn lost_continuity(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// An operation succeeded: ends an outage that no new connection ended (the pool's
    /// connections were all busy past the connection timeout, and one came back). One relaxed
    /// load while nothing failed.
    #[inline]
    fn answered(&self) {
        let down = &self.manager.down;
        if down.load(Ordering::Relaxed) && down.swap(false, Ordering::AcqRel) {
            tracing::info!(target: TARGET, backend = ?C::BACKEND, "the database answers again");
        }
    }

    /// Reports a failure that may hide a restart (a dead connection, a server that cannot be
    /// reached, a database file that is gone): at `warn` when it begins an outage, at `debug`
    /// while it lasts. The next new connection ends the outage (see [`Manager::open`]), or
    /// the next success ([`answered`](Self::answered)).
    fn outage(&self, error: &SqlError) {
        let gone = matches!(error, SqlError::FileGone { .. });
        let error = durabledict_core::Report(error);
        if self.manager.down.swap(true, Ordering::AcqRel) {
            tracing::debug!(
                target: TARGET,
                backend = ?C::BACKEND,
                %error,
                "the database is still unreachable"
            );
        } else if gone {
            tracing::warn!(
                target: TARGET,
                backend = ?C::BACKEND,
                %error,
                "the database file is gone: every operation fails until it is back"
            );
        } else {
            tracing::warn!(
                target: TARGET,
                backend = ?C::BACKEND,
                %error,
                "lost the connection to the database (it may have restarted): dicts reload, \
                 and a new connection is opened on the next request"
            );
        }
    }

    /// The database file's path, for messages.
    fn file_name(&self) -> String {
        match self.manager.file.get() {
            Some(Some(path)) => path.display().to_string(),
            _ => self.local_file.clone().unwrap_or_default(),
        }
    }

    /// What the database file's path names now: `None` without a local file, when it cannot
    /// be told, or (unless `always_look`) when it was looked at less than
    /// [`FILE_CHECK_PERIOD`] ago; an error when it names nothing (deleted or moved away), since
    /// opening it would make a new, empty database (or fail), and the old one is gone for every
    /// other process.
    fn current_file(&self, always_look: bool) -> Result<Option<FileId>, SqlError> {
        let Some(Some(path)) = self.manager.file.get() else {
            return Ok(None);
        };
        if !always_look
            && self
                .nanos()
                .saturating_sub(self.file_seen_at.load(Ordering::Relaxed))
                < FILE_CHECK_PERIOD
        {
            return Ok(None);
        }
        match file::identify(path) {
            Ok(Some(id)) => Ok(Some(id)),
            Ok(None) => {
                // Connections to the deleted file are of no further use. (The error changes
                // the epoch, in `run`.)
                self.generation.fetch_add(1, Ordering::SeqCst);
                Err(SqlError::FileGone {
                    path: self.file_name(),
                })
            }
            Err(_) => Ok(None),
        }
    }

    /// With a local database file, opens one connection outside the pool and closes it. The
    /// pool retries a failed connect until its connection timeout, which suits a server that
    /// is down; a file that cannot be opened fails the same way every time, so it is told at
    /// once, by name.
    pub(crate) fn open_local_file(&self) -> Result<(), SqlError> {
        let Some(path) = &self.local_file else {
            return Ok(());
        };
        match self.manager.open() {
            Ok(_) => Ok(()),
            Err(source) => {
                let error = SqlError::Open {
                    path: path.clone(),
                    source: Box::new(source),
                };
                match error.class() {
                    Class::Final(_) => Err(error),
                    // Transient (the set-up waited out a lock another process holds): the
                    // pool's own retries deal with it.
                    Class::Broken | Class::Conflict => Ok(()),
                }
            }
        }
    }

    /// Runs `op` on a pooled connection. When the connection turns out dead, it and every
    /// connection opened before it are discarded and `op` runs again on a fresh one; a
    /// transient conflict runs it again too. `op` must be safe to run again after a failure:
    /// a transaction that failed was rolled back (a failure during COMMIT is never retried).
    /// A local database file is looked at first: when it is gone, `op` does not run; when it
    /// was replaced, `op` runs on a connection to the new one.
    pub(crate) fn run<T>(
        &self,
        op: impl FnMut(&mut C) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.run_looking(op, true)
    }

    /// [`run`](Self::run) for the stamp check, the one operation on the hot path of every
    /// read: the database file's path is looked at only when the last look is older than
    /// [`FILE_CHECK_PERIOD`].
    pub(crate) fn run_check<T>(
        &self,
        op: impl FnMut(&mut C) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.run_looking(op, false)
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn run_looking<T>(
        &self,
        mut op: impl FnMut(&mut C) -> Result<T, SqlError>,
        always_look: bool,
    ) -> Result<T, SqlError> {
        // Also for stores used without `init`: a file that cannot be opened is told at once,
        // not after the pool's connection timeout.
        if self.local_file.is_some() && !self.local_file_opened.load(Ordering::Acquire) {
            self.open_local_file()?;
            self.local_file_opened.store(true, Ordering::Release);
        }
        let result = self.run_retrying(&mut op, always_look);
        if let Err(error) = &result
            && error.loses_continuity()
        {
            self.lost_continuity();
            // A replaced file was reported where it was found; a dead connection, as it broke.
            if !matches!(error, SqlError::FileReplaced { .. }) && !error.breaks_connection() {
                self.outage(error);
            }
        }
        result
    }

    fn run_retrying<T>(
        &self,
        op: &mut impl FnMut(&mut C) -> Result<T, SqlError>,
        always_look: bool,
    ) -> Result<T, SqlError> {
        let mut broken_retries = 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Before the checkout: a file that is gone is not opened again (and so created).
            let file = self.current_file(always_look)?;
            let mut conn = self.checkout()?;
            if file.is_some() && conn.file == file {
                self.file_seen_at.store(self.nanos(), Ordering::Relaxed);
            } else if file.is_some() {
                // The path names another file than this connection reads: every connection
                // opened so far reads the old one.
                conn.broken = true;
                self.generation
                    .fetch_max(conn.generation + 1, Ordering::SeqCst);
                self.lost_continuity();
                drop(conn);
                tracing::warn!(
                    target: TARGET,
                    path = %self.file_name(),
                    "the database file was replaced on disk: dicts reload, from the new file"
                );
                if attempt >= MAX_ATTEMPTS {
                    return Err(SqlError::FileReplaced {
                        path: self.file_name(),
                    });
                }
                continue;
            }
            let error = match op(&mut conn.conn) {
                Ok(value) => {
                    self.check_in(conn);
                    self.answered();
                    return Ok(value);
                }
                Err(error) => error,
            };
            let error = if C::BACKEND == Backend::Mysql && error.lacks_a_kind() {
                ask_errno(&mut conn.conn, error)
            } else {
                error
            };
            if error.breaks_connection() {
                conn.broken = true;
                self.generation
                    .fetch_max(conn.generation + 1, Ordering::SeqCst);
                // Even when a retry succeeds, it reads a server that may have restarted.
                self.lost_continuity();
                self.outage(&error);
            }
            drop(conn);
            let retry = match error.class() {
                Class::Broken => {
                    broken_retries += 1;
                    broken_retries <= MAX_BROKEN_RETRIES
                }
                Class::Conflict => {
                    // Let the transaction we collided with finish.
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 2));
                    true
                }
                Class::Final(_) => false,
            };
            if !retry || attempt >= MAX_ATTEMPTS {
                return Err(error);
            }
        }
    }

    /// A connection of the current generation.
    fn checkout(&self) -> Result<Checkout<C>, SqlError> {
        loop {
            let mut conn = match self.pop_hot() {
                Some(conn) => conn,
                None => {
                    // Announce the wait before looking again, so that a connection checked in
                    // meanwhile is either seen here or handed to r2d2 (see `check_in`).
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                    let conn = match self.pop_hot() {
                        Some(conn) => Ok(conn),
                        None => self.inner.get(),
                    };
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    conn?
                }
            };
            if conn.generation >= self.generation.load(Ordering::SeqCst) {
                return Ok(conn);
            }
            // Opened before a connection failure: probably dead too. Dropping it marked
            // broken closes it; the loop ends once the idle ones are used up.
            conn.broken = true;
        }
    }

    fn pop_hot(&self) -> Option<Checkout<C>> {
        self.hot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    /// Keeps a connection that just worked for the next operation, or gives it back to r2d2
    /// when a thread waits there.
    fn check_in(&self, conn: Checkout<C>) {
        let mut hot = self.hot.lock().unwrap_or_else(PoisonError::into_inner);
        if self.waiting.load(Ordering::SeqCst) == 0 && hot.len() < self.max_hot {
            hot.push(conn);
        }
    }
}

/// Takes the failed connects of r2d2's own threads (see [`Pool::new`]).
#[derive(Debug)]
struct ConnectFailed;

impl r2d2::HandleError<ConnectError> for ConnectFailed {
    fn handle_error(&self, error: ConnectError) {
        tracing::debug!(target: TARGET, %error, "a connect failed");
    }
}

/// MySQL and MariaDB: the number of the error a statement just failed with, asked of the
/// server on the same connection. diesel 2.3 reads the number (`mysql_stmt_errno`, in
/// `mysql/connection/stmt/mod.rs`, `last_error_type`) only to pick one of its kinds and
/// otherwise keeps the message alone (`DatabaseErrorInformation` has no code; for statements
/// sent as text, `raw.rs`, `did_an_error_occur`, it reads no number at all). The server's
/// diagnostics area still holds the failed statement's condition after diesel's ROLLBACK
/// (tested on MariaDB). When it holds none, the error stays as it is, sorted by its message;
/// when the connection cannot even be asked, it is gone.
fn ask_errno<C: Db>(conn: &mut C, error: SqlError) -> SqlError {
    const ERRNO: &str = "SELECT COALESCE(CAST(@durabledict_errno AS SIGNED), 0) AS n";
    let asked = conn
        .batch_execute("GET DIAGNOSTICS CONDITION 1 @durabledict_errno = MYSQL_ERRNO")
        .and_then(|()| conn.int(Stmt::new(ERRNO, &[])));
    let errno = match asked {
        Ok(n) => {
            let _ = conn.batch_execute("SET @durabledict_errno = NULL");
            match n.and_then(|n| u32::try_from(n).ok()).filter(|&n| n > 0) {
                Some(n) => Some(n),
                None => return error,
            }
        }
        // No condition to read (the error was not the server's), or no connection left.
        Err(_) if conn.batch_execute("SELECT 1").is_ok() => return error,
        Err(_) => None,
    };
    SqlError::Server {
        errno,
        source: Box::new(error),
    }
}

#[cfg(all(test, feature = "mysql"))]
mod mysql_tests {
    use diesel::connection::SimpleConnection;
    use diesel::mysql::MysqlConnection;
    use diesel::{Connection, RunQueryDsl};
    use durabledict_core::{StoreError, StoreErrorKind};
    use durabledict_test_servers::MariaDb;

    use super::*;

    /// What the store makes of `sql`'s failure on `conn`, run in a transaction as the store
    /// runs its writes.
    fn failure(conn: &mut MysqlConnection, sql: &str) -> SqlError {
        let error = conn
            .transaction(|c| diesel::sql_query(sql).execute(c).map_err(SqlError::Query))
            .expect_err(sql);
        assert!(error.lacks_a_kind(), "{error:?}");
        ask_errno(conn, error)
    }

    fn kind(error: SqlError) -> StoreErrorKind {
        StoreError::from(error).kind()
    }

    /// Each error is sorted by its number, which the message need not name: the numbers of
    /// a lock wait timeout, a missing privilege, an overlong value; and a killed connection.
    #[test]
    fn errors_are_sorted_by_the_servers_number() {
        let server = MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
        let connect =
            || MysqlConnection::establish(&server.url()).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = connect();
        conn.batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v varchar(3)) ENGINE = InnoDB; \
             INSERT INTO t VALUES (1, 'a');",
        )
        .unwrap_or_else(|e| panic!("{e}"));

        let error = failure(&mut conn, "INSERT INTO t VALUES (2, 'abcd')");
        assert!(
            matches!(
                error,
                SqlError::Server {
                    errno: Some(1406),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(kind(error), StoreErrorKind::Rejected);

        let mut holder = connect();
        holder
            .batch_execute("BEGIN; UPDATE t SET v = 'x' WHERE id = 1;")
            .unwrap_or_else(|e| panic!("{e}"));
        conn.batch_execute("SET innodb_lock_wait_timeout = 1")
            .unwrap_or_else(|e| panic!("{e}"));
        let error = failure(&mut conn, "UPDATE t SET v = 'y' WHERE id = 1");
        assert!(
            matches!(
                error,
                SqlError::Server {
                    errno: Some(1205),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.class(), Class::Final(StoreErrorKind::Unavailable));
        assert_eq!(kind(error), StoreErrorKind::Unavailable);
        holder
            .batch_execute("ROLLBACK")
            .unwrap_or_else(|e| panic!("{e}"));

        // The test server runs without grant tables: turn them on for a user with SELECT only.
        conn.batch_execute(
            "FLUSH PRIVILEGES; CREATE USER 'reader'@'%'; \
             GRANT SELECT ON durabledict.t TO 'reader'@'%';",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let url = format!("mysql://reader@127.0.0.1:{}/durabledict", server.port());
        let mut reader = MysqlConnection::establish(&url).unwrap_or_else(|e| panic!("{e}"));
        let error = failure(&mut reader, "INSERT INTO t VALUES (3, 'c')");
        assert!(
            matches!(
                error,
                SqlError::Server {
                    errno: Some(1142),
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(kind(error), StoreErrorKind::Rejected);

        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CONNECTION_ID()",
        ))
        .get_result(&mut conn)
        .unwrap_or_else(|e| panic!("{e}"));
        connect()
            .batch_execute(&format!("KILL {id}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = failure(&mut conn, "UPDATE t SET v = 'z' WHERE id = 1");
        assert!(
            matches!(error, SqlError::Server { errno: None, .. }),
            "{error:?}"
        );
        assert!(error.breaks_connection() && error.loses_continuity());
        assert_eq!(kind(error), StoreErrorKind::Unavailable);
    }

    /// An error the server's diagnostics do not hold (none is left after a statement that
    /// succeeded) is kept as it was.
    #[test]
    fn an_error_the_server_holds_no_number_for_is_kept() {
        let server = MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
        let mut conn = MysqlConnection::establish(&server.url()).unwrap_or_else(|e| panic!("{e}"));
        let error = SqlError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("Lock wait timeout exceeded; try restarting transaction".to_owned()),
        ));
        let kept = ask_errno(&mut conn, error);
        assert!(matches!(kept, SqlError::Query(_)), "{kept:?}");
        // Sorted by its message, as before the number could be had.
        assert_eq!(kept.class(), Class::Final(StoreErrorKind::Unavailable));
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::sqlite::SqliteConnection;
    use diesel::{Connection, RunQueryDsl};

    use super::*;

    fn journal_mode(conn: &mut SqliteConnection) -> String {
        #[derive(diesel::QueryableByName)]
        struct Mode {
            #[diesel(sql_type = diesel::sql_types::Text)]
            journal_mode: String,
        }
        diesel::sql_query("PRAGMA journal_mode")
            .get_result::<Mode>(conn)
            .map(|m| m.journal_mode)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The creator of a new file sets WAL while another process creates its table in it: SQLite
    /// fails that as locked, busy timeout or not (the WAL switch holds a read lock and needs
    /// the write lock the other holds), so it is tried again until the other commits.
    #[test]
    fn setting_wal_waits_for_another_connections_write_lock() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("new.db").display().to_string();
        let connect = || SqliteConnection::establish(&path).unwrap_or_else(|e| panic!("{e}"));
        let (mut creator, mut other) = (connect(), connect());
        creator
            .batch_execute("PRAGMA busy_timeout = 5000;")
            .unwrap_or_else(|e| panic!("{e}"));
        other
            .batch_execute("BEGIN IMMEDIATE; CREATE TABLE t (x);")
            .unwrap_or_else(|e| panic!("{e}"));
        let commit = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            other.batch_execute("COMMIT;")
        });
        let started = Instant::now();
        let result = set_up(
            &mut creator,
            "PRAGMA journal_mode = WAL;",
            Duration::from_secs(5),
        );
        commit
            .join()
            .unwrap_or_else(|_| panic!("commit panicked"))
            .unwrap_or_else(|e| panic!("{e}"));
        if let Err(e) = result {
            panic!("set-up failed after {:?}: {e}", started.elapsed());
        }
        assert_eq!(journal_mode(&mut creator), "wal");
    }

    /// A lock that outlasts the patience is an error, not a wait forever.
    #[test]
    fn a_lock_held_longer_than_the_busy_timeout_fails_the_set_up() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("new.db").display().to_string();
        let connect = || SqliteConnection::establish(&path).unwrap_or_else(|e| panic!("{e}"));
        let (mut creator, mut other) = (connect(), connect());
        other
            .batch_execute("BEGIN IMMEDIATE; CREATE TABLE t (x);")
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let result = set_up(
            &mut creator,
            "PRAGMA journal_mode = WAL;",
            Duration::from_millis(100),
        );
        assert!(matches!(&result, Err(SqlError::Query(e)) if crate::error::is_locked(e)));
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
