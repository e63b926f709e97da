//! Real PostgreSQL and MariaDB servers producing the errors the store must sort without a
//! kind of diesel's (a deadlock between two connections, a lock timeout, a revoked privilege,
//! an overlong value, a connection the server killed), each checked for the kind the store
//! reports for diesel's error as it is.
//!
//! PostgreSQL: diesel reads the SQLSTATE (`pg/connection/result.rs`) only to pick one of its
//! kinds and gives no way to it (`DatabaseErrorInformation` has no code, libpq's result is
//! private), so beyond its kinds (`ClosedConnection` for a terminated backend, checked here)
//! the store sorts the server's message: these tests hold that fallback to real messages.
//! MariaDB: the store asks the server for the error's number instead (see `pool.rs`, tested
//! there); the message is sorted only when the server holds none, as here.
#![cfg(any(feature = "postgres", feature = "mysql"))]
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::result::Error as DieselError;
use durabledict_core::{StoreError, StoreErrorKind};
use durabledict_diesel::SqlError;

/// The kind the store reports for a statement's error.
fn kind(error: DieselError) -> (StoreErrorKind, String) {
    let message = error.to_string();
    (StoreError::from(SqlError::Query(error)).kind(), message)
}

/// Runs `sql` as the store runs its statements (prepared, through `sql_query`); it must fail.
fn fails<C>(conn: &mut C, sql: &str) -> DieselError
where
    C: diesel::Connection,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    match diesel::RunQueryDsl::execute(diesel::sql_query(sql), conn) {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => e,
    }
}

/// Two connections that each hold a row lock the other then waits for: the server breaks
/// the deadlock by failing one of them; that one's error is returned.
fn deadlock<C>(mut a: C, mut b: C, lock_1: &'static str, lock_2: &'static str) -> DieselError
where
    C: diesel::Connection + Send + 'static,
    diesel::query_builder::SqlQuery: diesel::query_dsl::methods::ExecuteDsl<C>,
{
    let run = |conn: &mut C, sql: &str| diesel::RunQueryDsl::execute(diesel::sql_query(sql), conn);
    a.batch_execute("BEGIN").unwrap();
    b.batch_execute("BEGIN").unwrap();
    a.batch_execute(lock_1).unwrap();
    b.batch_execute(lock_2).unwrap();
    let both = Arc::new(Barrier::new(2));
    let other = {
        let both = Arc::clone(&both);
        thread::spawn(move || {
            both.wait();
            let result = run(&mut a, lock_2);
            let _ = a.batch_execute("ROLLBACK");
            result
        })
    };
    both.wait();
    // Let `a` wait on the lock first, so that the cycle closes here.
    thread::sleep(Duration::from_millis(200));
    let result = run(&mut b, lock_1);
    let _ = b.batch_execute("ROLLBACK");
    let other = other.join().unwrap();
    match (result, other) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => e,
        (Err(e), Err(f)) => panic!("both failed: {e} / {f}"),
        (Ok(_), Ok(_)) => panic!("no deadlock"),
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::OnceLock;

    use diesel::Connection;
    use diesel::pg::PgConnection;
    use durabledict_test_servers::Postgres;

    use super::*;

    fn server() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(|| {
            Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
        })
    }

    fn connect() -> PgConnection {
        PgConnection::establish(&server().url()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A table of two rows, its name unique to the test.
    fn table(name: &str) -> String {
        connect()
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name}; \
                 CREATE TABLE {name} (id int PRIMARY KEY, v varchar(3)); \
                 INSERT INTO {name} VALUES (1, 'a'), (2, 'b');"
            ))
            .unwrap();
        name.to_owned()
    }

    /// SQLSTATE 40P01: a transient conflict, retried, then `Unavailable`.
    #[test]
    fn a_deadlock_is_unavailable() {
        let t = table("pg_deadlock");
        let (lock_1, lock_2) = (
            format!("UPDATE {t} SET v = 'x' WHERE id = 1").leak(),
            format!("UPDATE {t} SET v = 'x' WHERE id = 2").leak(),
        );
        let mut b = connect();
        b.batch_execute("SET deadlock_timeout = '50ms'").unwrap();
        let (kind, message) = kind(deadlock(connect(), b, lock_1, lock_2));
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }

    /// SQLSTATE 55P03: another transaction holds the lock past `lock_timeout`.
    #[test]
    fn a_lock_timeout_is_unavailable() {
        let t = table("pg_lock_timeout");
        let mut holder = connect();
        holder
            .batch_execute(&format!("BEGIN; UPDATE {t} SET v = 'x' WHERE id = 1;"))
            .unwrap();
        let mut waiter = connect();
        waiter.batch_execute("SET lock_timeout = '100ms'").unwrap();
        let error = fails(&mut waiter, &format!("UPDATE {t} SET v = 'y' WHERE id = 1"));
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }

    /// SQLSTATE 42501: a role without the privilege.
    #[test]
    fn a_revoked_privilege_is_rejected() {
        let t = table("pg_privilege");
        connect()
            .batch_execute(&format!(
                "DROP ROLE IF EXISTS reader_42501; CREATE ROLE reader_42501 LOGIN; \
                 GRANT SELECT ON {t} TO reader_42501; REVOKE INSERT ON {t} FROM reader_42501;"
            ))
            .unwrap();
        let url = server().url().replace("postgres@", "reader_42501@");
        let mut reader = PgConnection::establish(&url).unwrap_or_else(|e| panic!("{e}"));
        let error = fails(&mut reader, &format!("INSERT INTO {t} VALUES (3, 'c')"));
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Rejected, "{message}");
    }

    /// SQLSTATE 22001: a value longer than its column.
    #[test]
    fn an_overlong_value_is_rejected() {
        let t = table("pg_overlong");
        let error = fails(
            &mut connect(),
            &format!("INSERT INTO {t} VALUES (3, 'abcd')"),
        );
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Rejected, "{message}");
    }

    /// SQLSTATE 57P01: `pg_terminate_backend` ends the connection; diesel sees libpq's
    /// connection go bad and says `ClosedConnection`.
    #[test]
    fn a_terminated_connection_is_broken() {
        let mut victim = connect();
        let pid = diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "pg_backend_pid()",
        ));
        let pid: i32 = diesel::RunQueryDsl::get_result(pid, &mut victim).unwrap();
        connect()
            .batch_execute(&format!("SELECT pg_terminate_backend({pid})"))
            .unwrap();
        let error = fails(&mut victim, "SELECT 1");
        assert!(
            matches!(
                error,
                DieselError::DatabaseError(diesel::result::DatabaseErrorKind::ClosedConnection, _)
            ),
            "{error:?}"
        );
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }
}

#[cfg(feature = "mysql")]
mod mariadb {
    use std::sync::OnceLock;

    use diesel::Connection;
    use diesel::mysql::MysqlConnection;
    use durabledict_test_servers::MariaDb;

    use super::*;

    fn server() -> &'static MariaDb {
        static SERVER: OnceLock<MariaDb> = OnceLock::new();
        SERVER.get_or_init(|| {
            MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"))
        })
    }

    fn connect() -> MysqlConnection {
        MysqlConnection::establish(&server().url()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A table of two rows, its name unique to the test.
    fn table(name: &str) -> String {
        connect()
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {name}; \
                 CREATE TABLE {name} (id int PRIMARY KEY, v varchar(3)) ENGINE = InnoDB; \
                 INSERT INTO {name} VALUES (1, 'a'), (2, 'b');"
            ))
            .unwrap();
        name.to_owned()
    }

    /// Error 1213 (diesel: `SerializationFailure`): retried, then `Unavailable`.
    #[test]
    fn a_deadlock_is_unavailable() {
        let t = table("my_deadlock");
        let (lock_1, lock_2) = (
            format!("UPDATE {t} SET v = 'x' WHERE id = 1").leak(),
            format!("UPDATE {t} SET v = 'x' WHERE id = 2").leak(),
        );
        let error = deadlock(connect(), connect(), lock_1, lock_2);
        assert!(
            matches!(
                error,
                DieselError::DatabaseError(
                    diesel::result::DatabaseErrorKind::SerializationFailure,
                    _
                )
            ),
            "{error:?}"
        );
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }

    /// Error 1205: another transaction holds the row past `innodb_lock_wait_timeout`.
    #[test]
    fn a_lock_wait_timeout_is_unavailable() {
        let t = table("my_lock_timeout");
        let mut holder = connect();
        holder
            .batch_execute(&format!("BEGIN; UPDATE {t} SET v = 'x' WHERE id = 1;"))
            .unwrap();
        let mut waiter = connect();
        waiter
            .batch_execute("SET innodb_lock_wait_timeout = 1")
            .unwrap();
        let error = fails(&mut waiter, &format!("UPDATE {t} SET v = 'y' WHERE id = 1"));
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }

    /// Error 1142: a user without the privilege. The test server runs without grant tables,
    /// so this test has a server of its own, on which it turns privileges on.
    #[test]
    fn a_revoked_privilege_is_rejected() {
        let own = MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
        let database = MariaDb::DATABASE;
        let t = "my_privilege";
        MysqlConnection::establish(&own.url())
            .unwrap_or_else(|e| panic!("{e}"))
            .batch_execute(&format!(
                "CREATE TABLE {t} (id int PRIMARY KEY, v varchar(3)); FLUSH PRIVILEGES; \
                 CREATE USER 'reader_1142'@'%'; \
                 GRANT SELECT ON {database}.{t} TO 'reader_1142'@'%';"
            ))
            .unwrap();
        let url = format!("mysql://reader_1142@127.0.0.1:{}/{database}", own.port());
        let mut reader = MysqlConnection::establish(&url).unwrap_or_else(|e| panic!("{e}"));
        let error = fails(&mut reader, &format!("INSERT INTO {t} VALUES (3, 'c')"));
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Rejected, "{message}");
    }

    /// Error 1406: a value longer than its column (strict mode, MariaDB's default).
    #[test]
    fn an_overlong_value_is_rejected() {
        let t = table("my_overlong");
        let error = fails(
            &mut connect(),
            &format!("INSERT INTO {t} VALUES (3, 'abcd')"),
        );
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Rejected, "{message}");
    }

    /// Errors 2006 / 2013: the server killed the connection.
    #[test]
    fn a_killed_connection_is_broken() {
        let mut victim = connect();
        let id = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CONNECTION_ID()",
        ));
        let id: i64 = diesel::RunQueryDsl::get_result(id, &mut victim).unwrap();
        connect().batch_execute(&format!("KILL {id}")).unwrap();
        let error = fails(&mut victim, "SELECT 1");
        let (kind, message) = kind(error);
        assert_eq!(kind, StoreErrorKind::Unavailable, "{message}");
    }
}
