//! The SQL store's `tracing` events (target `durabledict::sql`, docs/observability.md) across
//! real restarts: nothing at `info` or above while reads succeed, an outage reported once at
//! `warn` (the following failures at `debug`), the reconnection at `info`; for SQLite, a
//! database file replaced on disk, and one deleted then made again.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use durabledict_core::{DurableDict, Raw};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Capture;

const TARGET: &str = "durabledict::sql";

/// A server stops and comes back under a store: healthy reads through a dict say nothing at
/// `info` or above; the outage is one `warn` however many requests fail, then one `info` when a
/// new connection is made; a restart between two requests (found as a dead pooled connection,
/// the retry succeeding) is one more outage, reported the same way. `backend` is the field
/// value of the server's events (`Postgres`, `Mysql`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn a_restart_is_reported_once<S>(
    url: &str,
    backend: &str,
    server: &mut S,
    stop: impl Fn(&mut S),
    restart: impl Fn(&mut S),
) {
    use durabledict_core::Store;

    let capture = Capture::install();
    let tag = format!("backend={backend} ");
    let tag = tag.as_str();
    let table = common::table_name("tracing");
    let store = SqlStore::builder(url)
        .table(&table)
        .connection_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    store.init().unwrap();
    let dict = DurableDict::builder(store.clone(), Raw).build().unwrap();
    dict.insert("k", "v".to_owned()).unwrap();
    for _ in 0..100 {
        assert_eq!(common::read(&dict, "k").unwrap().as_deref(), Some("v"));
    }
    assert!(
        capture.loud(tag).is_empty() && capture.loud(&table).is_empty(),
        "{}",
        capture.dump()
    );
    assert!(
        capture.count_all("DEBUG", TARGET, &[tag, "new connection"]) >= 1,
        "{}",
        capture.dump()
    );

    let epoch = store.epoch();
    stop(server);
    for _ in 0..4 {
        assert!(store.last_updated().is_err());
    }
    let log = capture.dump();
    assert_eq!(
        capture.count_all("WARN", TARGET, &[tag, "lost the connection"]),
        1,
        "{log}"
    );
    assert!(
        capture.count_all("DEBUG", TARGET, &[tag, "still unreachable"]) >= 3,
        "{log}"
    );
    assert_eq!(
        capture.count_all("INFO", TARGET, &[tag, "reconnected"]),
        0,
        "{log}"
    );
    assert!(store.epoch() > epoch, "the outage bumps the epoch");

    restart(server);
    let epoch = store.epoch();
    store.last_updated().unwrap();
    for _ in 0..20 {
        store.last_updated().unwrap();
    }
    let log = capture.dump();
    assert_eq!(
        capture.count_all("INFO", TARGET, &[tag, "reconnected"]),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count_all("WARN", TARGET, &[tag, "lost the connection"]),
        1,
        "{log}"
    );
    assert_eq!(
        store.epoch(),
        epoch,
        "a new connection after a failure reads on"
    );

    // Restarted between two requests: the pooled connection is dead, the retry succeeds.
    stop(server);
    restart(server);
    let epoch = store.epoch();
    store.last_updated().unwrap();
    let log = capture.dump();
    assert!(store.epoch() > epoch, "a dead connection bumps the epoch");
    assert_eq!(
        capture.count_all("WARN", TARGET, &[tag, "lost the connection"]),
        2,
        "{log}"
    );
    assert_eq!(
        capture.count_all("INFO", TARGET, &[tag, "reconnected"]),
        2,
        "{log}"
    );
    // The dict reads the restarted server again, and reloads (the epoch changed).
    assert_eq!(common::read(&dict, "k").unwrap().as_deref(), Some("v"));
    assert_eq!(
        capture.loud(tag).len(),
        4,
        "two outages, two reconnections: {log}"
    );
    store.drop_keyspace().unwrap();
}

#[cfg(feature = "postgres")]
#[test]
fn a_postgres_restart_is_reported_once() {
    let mut pg = durabledict_test_servers::Postgres::start()
        .unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.url();
    a_restart_is_reported_once(
        &url,
        "Postgres",
        &mut pg,
        |s| s.stop(),
        |s| s.restart().unwrap(),
    );
}

#[cfg(feature = "mysql")]
#[test]
fn a_mariadb_restart_is_reported_once() {
    let mut db = durabledict_test_servers::MariaDb::start()
        .unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
    let url = db.url();
    a_restart_is_reported_once(
        &url,
        "Mysql",
        &mut db,
        |s| s.stop(),
        |s| s.restart().unwrap(),
    );
}

#[cfg(feature = "sqlite")]
fn remove_database(path: &std::path::Path) {
    std::fs::remove_file(path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        match std::fs::remove_file(&side) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{e}"),
            _ => {}
        }
    }
}

/// SQLite: a database file replaced on disk is one `warn` naming it; a file deleted is one
/// `warn` however many operations fail, and the first connection to the file made again is
/// one `info`; a pool kept busy past its connection timeout is one `warn`, and its first
/// success after that one `info`.
#[cfg(feature = "sqlite")]
#[test]
fn a_replaced_or_deleted_sqlite_file_is_reported() {
    let capture = Capture::install();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.db");
    let url = format!("sqlite://{}", path.display());
    let open = || SqlStore::builder(&url).table("flags").build().unwrap();
    let name = path.display().to_string();
    let tag = format!("path={name} ");
    let tag = tag.as_str();

    let dict = DurableDict::builder(open(), Raw).build().unwrap();
    dict.insert("k", "old".to_owned()).unwrap();
    for _ in 0..100 {
        assert_eq!(common::read(&dict, "k").unwrap().as_deref(), Some("old"));
    }
    assert!(
        capture.loud("backend=Sqlite").is_empty() && capture.loud(tag).is_empty(),
        "{}",
        capture.dump()
    );

    // Replaced: deleted, and made again by another process.
    remove_database(&path);
    DurableDict::builder(open(), Raw)
        .build()
        .unwrap()
        .insert("k", "new".to_owned())
        .unwrap();
    // A stamp check looks at the path at most once a millisecond.
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(common::read(&dict, "k").unwrap().as_deref(), Some("new"));
    let log = capture.dump();
    assert_eq!(
        capture.count_all("WARN", TARGET, &[tag, "replaced on disk"]),
        1,
        "{log}"
    );

    // Deleted: every operation fails, reported once.
    remove_database(&path);
    std::thread::sleep(Duration::from_millis(5));
    for _ in 0..4 {
        assert!(common::read(&dict, "k").is_err());
    }
    let log = capture.dump();
    assert_eq!(
        capture.count_all("WARN", TARGET, &["backend=Sqlite", "file is gone", &name]),
        1,
        "{log}"
    );
    assert!(
        capture.count_all(
            "DEBUG",
            TARGET,
            &["backend=Sqlite", "still unreachable", &name]
        ) >= 3,
        "{log}"
    );

    // Made again by another process: the next connection is the reconnection.
    DurableDict::builder(open(), Raw)
        .build()
        .unwrap()
        .insert("k", "again".to_owned())
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(common::read(&dict, "k").unwrap().as_deref(), Some("again"));
    let log = capture.dump();
    assert_eq!(
        capture.count_all("INFO", TARGET, &["backend=Sqlite", "reconnected"]),
        1,
        "{log}"
    );

    // A pool whose one connection stays busy past the connection timeout (a write waiting for
    // another process's lock): an outage that ends without a new connection, at the first
    // success.
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    use durabledict_core::Store as _;
    let store = SqlStore::builder(&url)
        .table("flags")
        .pool_size(1)
        .connection_timeout(Duration::from_millis(200))
        .busy_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let busy = DurableDict::builder(store.clone(), Raw).build().unwrap();
    let mut holder = diesel::SqliteConnection::establish(&name).unwrap();
    holder.batch_execute("BEGIN IMMEDIATE").unwrap();
    let writer = std::thread::spawn(move || busy.insert("k", "late".to_owned()));
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert!(store.last_updated().is_err(), "the one connection is busy");
    }
    let log = capture.dump();
    assert_eq!(
        capture.count_all("WARN", TARGET, &["backend=Sqlite", "lost the connection"]),
        1,
        "{log}"
    );
    holder.batch_execute("COMMIT").unwrap();
    writer.join().unwrap().unwrap();
    store.last_updated().unwrap();
    store.last_updated().unwrap();
    let log = capture.dump();
    assert_eq!(
        capture.count_all("INFO", TARGET, &["backend=Sqlite", "answers again"]),
        1,
        "{log}"
    );
    assert_eq!(
        capture.count_all("INFO", TARGET, &["backend=Sqlite", "reconnected"]),
        1,
        "no new connection: {log}"
    );
}
