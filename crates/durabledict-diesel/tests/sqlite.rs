//! The SQLite store: the whole conformance suite (SQL-row stamp and memcached stamp) on a file
//! shared by every store, and what only SQLite has: `:memory:`, several processes on one file.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{SqlFixture, StampKind, memcached_addr, table_name};
use durabledict_core::{DurableDict, Error, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_diesel::{SqlError, SqlStore};

/// One database file per test binary, as several processes would share it.
fn sqlite_url() -> String {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temporary directory"));
    format!("sqlite://{}/conformance.db", dir.path().display())
}

durabledict_conformance::suite!(
    conformance_sqlite,
    SqlFixture::new(sqlite_url(), StampKind::Row)
);

durabledict_conformance::suite!(
    conformance_sqlite_memcache,
    SqlFixture::new(sqlite_url(), StampKind::Memcache(memcached_addr()))
);

fn dict(store: SqlStore) -> DurableDict<String> {
    DurableDict::builder(store, Raw)
        .build()
        .expect("build dict")
}

#[test]
fn memory_database_is_shared_by_clones() {
    let store = SqlStore::builder("sqlite::memory:")
        .table("settings")
        .build()
        .unwrap();
    let a = dict(store.clone());
    let b = dict(store.clone());
    a.insert("k", "v".into()).unwrap();
    assert_eq!(
        b.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
    // A new keyspace starts at stamp 1, and each write adds one.
    assert_eq!(store.last_updated().unwrap(), Some(2));
    // One connection serves threads one at a time.
    std::thread::scope(|s| {
        for t in 0..4 {
            let a = &a;
            s.spawn(move || a.insert(&format!("t{t}"), "x".into()).unwrap());
        }
    });
    assert_eq!(b.len().unwrap(), 5);
}

/// Threads that find every connection busy wait for one to be checked in, never for the
/// connection timeout: the one connection of a `:memory:` database passes between 8 threads.
#[test]
fn busy_pool_hands_connections_over() {
    let store = SqlStore::builder("sqlite::memory:")
        .connection_timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let shared = dict(store.clone());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = store.clone();
            let shared = &shared;
            s.spawn(move || {
                for i in 0..50 {
                    store.last_updated().unwrap();
                    shared.insert(&format!("t{t}"), i.to_string()).unwrap();
                }
            });
        }
    });
    assert_eq!(shared.len().unwrap(), 8);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn separate_memory_databases_are_separate() {
    let a = dict(SqlStore::builder("sqlite::memory:").build().unwrap());
    let b = dict(SqlStore::builder("sqlite::memory:").build().unwrap());
    a.insert("k", "v".into()).unwrap();
    assert_eq!(b.get("k").unwrap(), None);
}

/// Two processes on one file: this test runs itself as a child process, which reads the
/// parent's write and writes its own.
#[test]
fn two_processes_share_one_file() {
    const CHILD: &str = "DURABLEDICT_SQLITE_CHILD_DB";
    let table = "two_processes";
    if let Ok(url) = std::env::var(CHILD) {
        let child = dict(SqlStore::builder(&url).table(table).build().unwrap());
        assert_eq!(
            child
                .get("from_parent")
                .unwrap()
                .as_deref()
                .map(String::as_str),
            Some("hello child")
        );
        child.insert("from_child", "hello parent".into()).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/shared.db", dir.path().display());
    let parent = dict(SqlStore::builder(&url).table(table).build().unwrap());
    parent.insert("from_parent", "hello child".into()).unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_processes_share_one_file",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, &url)
        .status()
        .expect("spawn the child process");
    assert!(status.success(), "the child process failed: {status}");
    // The parent's Always dict sees the child's write at once.
    assert_eq!(
        parent
            .get("from_child")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("hello parent")
    );
}

/// A table shaped as Django creates a `ModelDict` model on SQLite: an auto id, a unique
/// varchar key, a text value, and another column with a default.
#[test]
fn django_model_dict_table_works_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/django.db", dir.path().display());
    common::django_model_dict_works(
        &url,
        "CREATE TABLE \"myapp_setting\" (\
            \"id\" integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
            \"key\" varchar(32) NOT NULL UNIQUE, \
            \"value\" text NOT NULL, \
            \"updated\" datetime NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        "SELECT count(*) FROM \"myapp_setting\" \
         WHERE typeof(\"value\") = 'text' AND \"id\" IS NOT NULL AND \"updated\" IS NOT NULL",
    );
}

#[test]
fn init_creates_the_stamp_once_and_never_bumps_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/init.db", dir.path().display());
    let table = table_name("init");
    let store = SqlStore::builder(&url).table(&table).build().unwrap();
    assert_eq!(
        store.last_updated().unwrap(),
        None,
        "no stamps table before init: no stamp"
    );
    store.init().unwrap();
    assert_eq!(store.last_updated().unwrap(), Some(1));
    store.persist("k", b"v").unwrap();
    store.init().unwrap();
    assert_eq!(store.last_updated().unwrap(), Some(2), "init never bumps");
    // A stamp row lost while the table exists comes back from the clock, never from 1.
    common::execute(
        &url,
        &format!("DELETE FROM durabledict_stamps WHERE keyspace = '{table}'"),
    )
    .unwrap();
    assert_eq!(store.last_updated().unwrap(), None);
    store.init().unwrap();
    assert!(store.last_updated().unwrap().unwrap() > 1_000_000);
    let lost = store.last_updated().unwrap().unwrap();
    common::execute(
        &url,
        &format!("DELETE FROM durabledict_stamps WHERE keyspace = '{table}'"),
    )
    .unwrap();
    let bumped = store.persist("k", b"w").unwrap();
    assert!(
        bumped > lost,
        "a write re-creates a lost stamp past every earlier value"
    );
}

#[test]
fn setdefault_and_pop_are_atomic_and_bump_only_on_change() {
    let store = SqlStore::builder("sqlite::memory:").build().unwrap();
    store.init().unwrap();
    let s0 = store.last_updated().unwrap().unwrap();
    assert_eq!(
        store.setdefault("k", b"a").unwrap(),
        durabledict_core::SetDefault::Inserted(s0 + 1)
    );
    assert_eq!(
        store.setdefault("k", b"b").unwrap(),
        durabledict_core::SetDefault::Existing(b"a".to_vec())
    );
    assert_eq!(store.last_updated().unwrap(), Some(s0 + 1));
    assert_eq!(store.pop("k").unwrap(), Some((b"a".to_vec(), s0 + 2)));
    assert_eq!(store.pop("k").unwrap(), None);
    assert_eq!(store.depersist("k").unwrap(), None);
    assert_eq!(store.clear().unwrap(), None);
    assert_eq!(store.last_updated().unwrap(), Some(s0 + 2));
    // A batch is one bump, the last value of a repeated key winning.
    let batch: [(&str, &[u8]); 3] = [("a", b"1"), ("b", b"2"), ("a", b"3")];
    assert_eq!(store.persist_many(&batch).unwrap(), Some(s0 + 3));
    assert_eq!(store.get("a").unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.clear().unwrap(), Some(s0 + 4));
}

#[test]
fn configured_names_are_validated_and_quoted() {
    for bad in ["x; DROP TABLE y", "a\"b", "1x", ""] {
        assert!(
            SqlStore::builder("sqlite::memory:")
                .table(bad)
                .build()
                .is_err(),
            "{bad:?}"
        );
        assert!(
            SqlStore::builder("sqlite::memory:")
                .key_column(bad)
                .build()
                .is_err(),
            "{bad:?}"
        );
    }
    // Reserved words are fine as names: they are always quoted.
    let store = SqlStore::builder("sqlite::memory:")
        .table("select")
        .key_column("from")
        .value_column("where")
        .stamps_table("order")
        .build()
        .unwrap();
    let d = dict(store);
    d.insert("k", "v".into()).unwrap();
    assert_eq!(d.len().unwrap(), 1);
}

/// A table dropped while a store uses it is missing, not corrupt.
#[test]
fn a_table_dropped_under_a_store_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/dropped.db", dir.path().display());
    let store = || SqlStore::builder(&url).table("flags").build().unwrap();
    let user = store();
    dict(user.clone()).insert("k", "v".into()).unwrap();
    store().drop_keyspace().unwrap();
    let e = user.get("k").unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Rejected, "{e}");
    assert!(
        durabledict_core::Report(&e).to_string().contains("flags"),
        "{e}"
    );
}

#[test]
fn a_store_without_its_table_says_so() {
    let store = SqlStore::builder("sqlite::memory:")
        .table("absent")
        .build()
        .unwrap();
    let e = store.get("k").unwrap_err();
    // A keyspace nobody made is not corruption.
    assert_eq!(e.kind(), StoreErrorKind::Rejected, "{e}");
    assert!(
        matches!(e.inner().downcast_ref(), Some(SqlError::MissingTable { table, .. }) if table == "absent"),
        "{e:?}"
    );
    assert!(
        durabledict_core::Report(&e)
            .to_string()
            .contains("absent: the table does not exist"),
        "{e}"
    );
}

#[test]
fn manual_dicts_see_changes_on_sync_only() {
    let store = SqlStore::builder("sqlite::memory:").build().unwrap();
    let manual = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    dict(store).insert("k", "v".into()).unwrap();
    assert_eq!(manual.get("k").unwrap(), None);
    assert!(manual.sync().unwrap());
    assert_eq!(
        manual.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
}

/// memcached restarts under live dicts: an `Always` dict fails its checks while memcached is
/// down (or serves its last snapshot when asked to), and afterwards reads a value written after
/// the restart, on the same dict.
#[test]
fn memcached_restart_under_a_live_dict() {
    use durabledict_test_servers::Memcached;
    use std::time::Duration;

    let mut memcached =
        Memcached::start().unwrap_or_else(|e| panic!("cannot start memcached: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/restart.db", dir.path().display());
    let addr = memcached.addr().to_string();
    let store = || {
        SqlStore::builder(&url)
            .table("flags")
            .stamp(common::memcache_stamp(&addr, "flags"))
            .build()
            .unwrap()
    };
    let strict = dict(store());
    let lenient = DurableDict::<String>::builder(store(), Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    strict.insert("k", "before".into()).unwrap();
    assert_eq!(
        lenient.get("k").unwrap().as_deref().map(String::as_str),
        Some("before")
    );

    memcached.stop();
    match strict.get("k") {
        Err(e @ Error::Store { .. }) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Unavailable),
            "{e}"
        ),
        other => panic!("an Always dict must fail while its stamp is unreachable, got {other:?}"),
    }
    assert_eq!(
        lenient.get("k").unwrap().as_deref().map(String::as_str),
        Some("before"),
        "serve_stale_for serves the last snapshot"
    );
    assert!(lenient.status().last_error.is_some());

    memcached.restart().unwrap();
    // Another process writes after the restart: the stamp is re-created from the clock.
    dict(store()).insert("k", "after".into()).unwrap();
    assert_eq!(
        strict.get("k").unwrap().as_deref().map(String::as_str),
        Some("after")
    );
    assert_eq!(
        lenient.get("k").unwrap().as_deref().map(String::as_str),
        Some("after")
    );
    // And the strict dict writes again.
    strict.insert("k", "again".into()).unwrap();
    assert_eq!(
        lenient.get("k").unwrap().as_deref().map(String::as_str),
        Some("again")
    );
}

#[test]
fn text_values_table() {
    common::text_values_table_works("sqlite::memory:");
}

/// A file a writer made, opened read-only (`mode=ro`), is read as it is: building the dict
/// writes nothing, and a write is refused.
#[test]
fn a_read_only_file_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ro.db");
    let writer = dict(
        SqlStore::builder(format!("sqlite://{}", path.display()))
            .table("flags")
            .build()
            .unwrap(),
    );
    writer.insert("k", "v".into()).unwrap();
    let stamp = writer.last_updated().unwrap();
    drop(writer);

    let url = format!("file:{}?mode=ro", path.display());
    let reader = DurableDict::<String>::builder(
        SqlStore::builder(&url).table("flags").build().unwrap(),
        Raw,
    )
    .build()
    .unwrap_or_else(|e| panic!("a read-only file cannot be opened: {e}"));
    assert_eq!(common::read(&reader, "k").unwrap().as_deref(), Some("v"));
    assert_eq!(reader.last_updated().unwrap(), stamp);
    match reader.insert("k", "w".into()) {
        Err(e) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Rejected),
            "{e}"
        ),
        Ok(()) => panic!("a read-only file must not be written"),
    }
}

/// A path SQLite cannot open is a permanent local error, reported at once and naming the path,
/// not a wait for a connection that never comes.
#[test]
fn a_path_that_cannot_be_opened_fails_at_once() {
    for (url, path) in [
        ("sqlite:/nonexistent/dir/x.db", "/nonexistent/dir/x.db"),
        ("sqlite:/", "/"),
        ("sqlite:.", "."),
    ] {
        let store = SqlStore::builder(url).table("flags").build().unwrap();
        let started = std::time::Instant::now();
        let e = match DurableDict::<String>::builder(store, Raw).build() {
            Err(e) => e,
            Ok(_) => panic!("{url} must not open"),
        };
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{url}: took {:?}",
            started.elapsed()
        );
        let kind = e.store_error().map(|s| s.kind());
        assert!(
            matches!(kind, Some(StoreErrorKind::Other | StoreErrorKind::Rejected)),
            "{url}: {kind:?}: {e}"
        );
        assert!(
            durabledict_core::Report(&e)
                .to_string()
                .contains(&format!("{path:?}")),
            "{url}: {e}"
        );
    }
}

/// `create_missing(false)` opens what exists and creates nothing: no file, no table, no stamp
/// row.
#[test]
fn create_missing_false_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("existing.db");
    let url = format!("sqlite://{}", path.display());
    let reader = |table: &str| {
        SqlStore::builder(&url)
            .table(table)
            .create_missing(false)
            .build()
            .unwrap()
    };

    // No file: an error naming it, and still no file; at once also without `init`.
    let e = reader("flags").init().unwrap_err();
    assert_ne!(e.kind(), StoreErrorKind::Unavailable, "{e}");
    assert!(
        durabledict_core::Report(&e)
            .to_string()
            .contains(&path.display().to_string()),
        "{e}"
    );
    let started = std::time::Instant::now();
    let e = reader("flags").get("k").unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        durabledict_core::Report(&e)
            .to_string()
            .contains(&path.display().to_string()),
        "{e}"
    );
    assert!(!path.exists(), "no file is created");

    // A file without the table: the missing table is named, and not created.
    let writer = dict(SqlStore::builder(&url).table("other").build().unwrap());
    writer.insert("k", "v".into()).unwrap();
    let e = reader("flags").init().unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Rejected, "{e}");
    assert!(
        durabledict_core::Report(&e).to_string().contains("flags"),
        "{e}"
    );
    let tables = "SELECT count(*) FROM sqlite_master WHERE name = 'flags'";
    assert_eq!(common::query_i64(&url, tables).unwrap(), 0);

    // A table without its stamp row: read as it is, the stamp `None`, no row created.
    common::execute(&url, "DELETE FROM durabledict_stamps").unwrap();
    let d = dict(reader("other"));
    assert_eq!(common::read(&d, "k").unwrap().as_deref(), Some("v"));
    assert_eq!(d.last_updated().unwrap(), None);
    let rows = "SELECT count(*) FROM durabledict_stamps";
    assert_eq!(common::query_i64(&url, rows).unwrap(), 0);

    // A file without the stamps table (a table a Python or Django program made): read as it
    // is with no stamp, with and without `init`; a write is refused, naming the stamps table,
    // and writes nothing; nothing is created.
    common::execute(&url, "DROP TABLE durabledict_stamps").unwrap();
    let d = dict(reader("other"));
    assert_eq!(common::read(&d, "k").unwrap().as_deref(), Some("v"));
    assert_eq!(d.last_updated().unwrap(), None);
    let bare = reader("other");
    assert_eq!(bare.last_updated().unwrap(), None);
    let all = bare.durables().unwrap();
    assert_eq!((all.entries.len(), all.stamp), (1, None));
    let e = bare.persist("k2", b"w").unwrap_err();
    assert!(
        durabledict_core::Report(&e)
            .to_string()
            .contains("durabledict_stamps"),
        "{e}"
    );
    assert_eq!(bare.get("k2").unwrap(), None);
    let stamps = "SELECT count(*) FROM sqlite_master WHERE name = 'durabledict_stamps'";
    assert_eq!(common::query_i64(&url, stamps).unwrap(), 0);
    // Once a writer has created it, the same reader sees the stamp.
    let writer = dict(SqlStore::builder(&url).table("other").build().unwrap());
    writer.insert("k3", "w".into()).unwrap();
    assert!(bare.last_updated().unwrap().is_some());
    common::execute(&url, "DROP TABLE durabledict_stamps").unwrap();

    // A read-only URI that names its own mode is opened as it says.
    let ro = format!("file:{}?mode=ro", path.display());
    let store = SqlStore::builder(&ro)
        .table("other")
        .stamp(common::FrozenStamp)
        .create_missing(false)
        .build()
        .unwrap();
    assert_eq!(
        common::read(&dict(store), "k").unwrap().as_deref(),
        Some("v")
    );
}

/// An external stamp whose next bump can be made to fail.
#[derive(Debug)]
struct FlakyStamp {
    inner: std::sync::Arc<durabledict_core::MemoryStamp>,
    fail_next: std::sync::atomic::AtomicBool,
}

impl durabledict_core::Stamp for FlakyStamp {
    fn get(&self) -> Result<Option<durabledict_core::StampValue>, durabledict_core::StoreError> {
        self.inner.get()
    }
    fn bump(&self) -> Result<durabledict_core::StampValue, durabledict_core::StoreError> {
        if self
            .fail_next
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(durabledict_core::StoreError::unavailable(
                "stamp server down",
            ));
        }
        self.inner.bump()
    }
}

/// What the README says of an external stamp whose bump fails after the commit: nobody sees
/// the write; the dict making the next bump applies only its own write and keeps missing the
/// earlier one; other dicts see both; writing again makes every dict see it.
#[test]
fn a_failed_external_bump_hides_the_write_until_the_next_change() {
    use durabledict_core::Stamp;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flaky.db", dir.path().display());
    let stamp = std::sync::Arc::new(durabledict_core::MemoryStamp::new());
    let on = |s: std::sync::Arc<durabledict_core::MemoryStamp>| {
        dict(
            SqlStore::builder(&url)
                .table("flags")
                .stamp(s)
                .build()
                .unwrap(),
        )
    };
    let flaky = std::sync::Arc::new(FlakyStamp {
        inner: stamp.clone(),
        fail_next: false.into(),
    });
    let a = dict(
        SqlStore::builder(&url)
            .table("flags")
            .stamp(flaky.clone())
            .build()
            .unwrap(),
    );
    let (b, c) = (on(stamp.clone()), on(stamp.clone()));
    assert_eq!(c.len().unwrap(), 0);

    flaky
        .fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let e = a.insert("first", "1".into()).unwrap_err();
    assert!(
        durabledict_core::Report(&e)
            .to_string()
            .contains("committed"),
        "{e}"
    );
    assert_eq!(
        common::read(&b, "first").unwrap(),
        None,
        "no bump, no reload"
    );

    b.insert("second", "2".into()).unwrap();
    assert_eq!(
        common::read(&b, "first").unwrap(),
        None,
        "b applied only its own write"
    );
    assert_eq!(common::read(&c, "first").unwrap().as_deref(), Some("1"));
    assert!(!b.sync().unwrap(), "sync reloads only on a changed stamp");
    assert_eq!(common::read(&b, "first").unwrap(), None);

    // The remedy: write again, and every dict reloads.
    a.insert("first", "1".into()).unwrap();
    assert_eq!(common::read(&b, "first").unwrap().as_deref(), Some("1"));

    // A removal finds nothing to remove the second time, so it bumps nothing: bump the stamp.
    flaky
        .fail_next
        .store(true, std::sync::atomic::Ordering::SeqCst);
    a.remove("first").unwrap_err();
    assert_eq!(common::read(&b, "first").unwrap().as_deref(), Some("1"));
    stamp.bump().unwrap();
    assert_eq!(common::read(&b, "first").unwrap(), None);
}

/// SQLite resolves table names without regard to case: `flags` and `FLAGS` are one table, so
/// they are one stamp row, and a dict on one sees writes through the other.
#[test]
fn table_names_differing_in_case_share_one_stamp_row() {
    let dir = tempfile::tempdir().unwrap();
    common::one_stamp_row_per_table(&format!("sqlite://{}/case.db", dir.path().display()), true);
}

/// Removes a database file with its `-wal` and `-shm`, as `rm e.db*` does.
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

/// The stores and dicts of one file at `path`, as separate processes would open it.
struct OneFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    url: String,
}

impl OneFile {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.db");
        let url = format!("sqlite://{}", path.display());
        OneFile {
            _dir: dir,
            path,
            url,
        }
    }

    fn store(&self) -> SqlStore {
        SqlStore::builder(&self.url).table("flags").build().unwrap()
    }
}

/// The database file is deleted (with its `-wal` and `-shm`) under a live `Always` dict, and
/// another process makes a new one at the path, with another value, before the dict reads
/// again: the dict reads the new file, not the deleted one it had open, although the new file
/// counted to the very stamp the dict had synced at. Its writes go to the new file too.
#[test]
fn a_file_deleted_and_made_again_is_read_again_at_the_same_stamp() {
    let file = OneFile::new();
    let watcher_store = file.store();
    let watcher = dict(watcher_store.clone());
    dict(file.store()).insert("k", "old".into()).unwrap();
    assert_eq!(common::read(&watcher, "k").unwrap().as_deref(), Some("old"));
    let synced = watcher.status().stamp;
    let epoch = watcher_store.epoch();

    remove_database(&file.path);
    let writer = dict(file.store());
    writer.insert("k", "new".into()).unwrap();
    assert_eq!(
        file.store().last_updated().unwrap(),
        synced,
        "the new file counts to the stamp the dict synced at"
    );

    // A stamp check looks at the path at most once a millisecond.
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(common::read(&watcher, "k").unwrap().as_deref(), Some("new"));
    assert_ne!(
        watcher_store.epoch(),
        epoch,
        "a replaced file changes the epoch"
    );
    watcher.insert("w", "x".into()).unwrap();
    assert_eq!(common::read(&writer, "w").unwrap().as_deref(), Some("x"));
    assert_eq!(file.store().get("w").unwrap().as_deref(), Some(&b"x"[..]));
}

/// While the file is gone, a dict on it fails with an error naming it (not the deleted
/// contents), and neither a read nor a write makes a new, empty file; once another process has
/// made the file again, the same dict reads it.
#[test]
fn a_file_that_is_gone_fails_loudly_until_it_is_back() {
    let file = OneFile::new();
    let watcher = dict(file.store());
    watcher.insert("k", "old".into()).unwrap();
    remove_database(&file.path);
    // A stamp check looks at the path at most once a millisecond (a write, every time).
    std::thread::sleep(std::time::Duration::from_millis(5));

    for attempt in [
        common::read(&watcher, "k"),
        watcher.insert("k", "lost".into()).map(|()| None),
    ] {
        match attempt {
            Err(e @ Error::Store { .. }) => {
                assert_eq!(
                    e.store_error().map(|s| s.kind()),
                    Some(StoreErrorKind::Unavailable),
                    "{e}"
                );
                let source = e
                    .store_error()
                    .and_then(|s| s.inner().downcast_ref::<durabledict_diesel::SqlError>());
                assert!(
                    matches!(source, Some(durabledict_diesel::SqlError::FileGone { .. })),
                    "{e:?}"
                );
                assert!(
                    durabledict_core::Report(&e).to_string().contains("e.db"),
                    "{e}"
                );
            }
            other => panic!("a deleted file must not be read or written: {other:?}"),
        }
    }
    assert!(!file.path.exists(), "nothing made the file again");

    dict(file.store()).insert("k", "new".into()).unwrap();
    assert_eq!(common::read(&watcher, "k").unwrap().as_deref(), Some("new"));
}

/// `PRAGMA journal_mode` of the database at `path`, as a new connection finds it.
fn journal_mode(path: &std::path::Path) -> String {
    use durabledict_diesel::diesel::{self, Connection, QueryableByName, RunQueryDsl};
    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let mut c = diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query("PRAGMA journal_mode")
        .get_result::<Mode>(&mut c)
        .unwrap()
        .journal_mode
}

/// A database another program made (Django, in SQLite's default rollback-journal mode) keeps
/// its journal mode when the store writes to it: switched to WAL, its readers would need write
/// access to the directory. A file the store makes itself uses WAL.
#[test]
fn a_database_made_elsewhere_keeps_its_journal_mode() {
    use durabledict_diesel::diesel::{Connection, connection::SimpleConnection};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("django.db");
    let mut django =
        durabledict_diesel::diesel::sqlite::SqliteConnection::establish(path.to_str().unwrap())
            .unwrap();
    django
        .batch_execute(
            "PRAGMA journal_mode = DELETE; \
             CREATE TABLE myapp_setting (id integer NOT NULL PRIMARY KEY AUTOINCREMENT, \
             key varchar(32) NOT NULL UNIQUE, value text NOT NULL); \
             INSERT INTO myapp_setting (key, value) VALUES ('existing', 'from django');",
        )
        .unwrap();
    drop(django);
    assert_eq!(journal_mode(&path), "delete");

    let url = format!("sqlite://{}", path.display());
    let d = dict(
        SqlStore::builder(&url)
            .table("myapp_setting")
            .build()
            .unwrap(),
    );
    d.insert("k", "from rust".into()).unwrap();
    assert_eq!(
        common::read(&d, "existing").unwrap().as_deref(),
        Some("from django")
    );
    assert_eq!(journal_mode(&path), "delete");
    assert!(!dir.path().join("django.db-wal").exists());
    // The file's header says which journal it uses: 1 and 1 for a rollback journal, 2 for WAL.
    assert_eq!(&std::fs::read(&path).unwrap()[18..20], &[1, 1]);
    drop(d);

    let own = dir.path().join("own.db");
    dict(
        SqlStore::builder(format!("sqlite://{}", own.display()))
            .build()
            .unwrap(),
    )
    .insert("k", "v".into())
    .unwrap();
    assert_eq!(journal_mode(&own), "wal");
}

/// A stamp kept apart from the table (memcached, say) that can restart: counting again to the
/// number it had, with its epoch changed.
#[derive(Debug, Default)]
struct RestartingStamp {
    stamp: durabledict_core::MemoryStamp,
    epoch: std::sync::atomic::AtomicU64,
}

impl durabledict_core::Stamp for RestartingStamp {
    fn get(&self) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.stamp.get()
    }
    fn bump(&self) -> Result<i64, durabledict_core::StoreError> {
        self.stamp.bump()
    }
    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// With an external stamp, the store's epoch includes the stamp's: when the stamp's server
/// restarted and came back at the number a dict synced at while the table changed, the dict
/// reloads.
#[test]
fn an_external_stamp_that_restarted_at_the_same_number_is_noticed() {
    let file = OneFile::new();
    let stamp = std::sync::Arc::new(RestartingStamp::default());
    let store = SqlStore::builder(&file.url)
        .table("flags")
        .stamp(std::sync::Arc::clone(&stamp))
        .build()
        .unwrap();
    let d = dict(store.clone());
    d.insert("k", "before".into()).unwrap();
    let epoch = store.epoch();

    // Behind the stamp's back (as a write whose bump went to the server before its restart).
    SqlStore::builder(&file.url)
        .table("flags")
        .stamp(common::FrozenStamp)
        .build()
        .unwrap()
        .persist("k", b"after")
        .unwrap();
    assert_eq!(common::read(&d, "k").unwrap().as_deref(), Some("before"));
    stamp
        .epoch
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    assert_ne!(store.epoch(), epoch);
    assert_eq!(common::read(&d, "k").unwrap().as_deref(), Some("after"));
}
