//! Reproductions of review findings on the SQLite store, fixed: a replaced file whose table is
//! spelled in another case, keys that are not UTF-8, a re-pointed symlinked database path.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use durabledict_core::{DurableDict, Raw};
use durabledict_diesel::SqlStore;

fn dict(store: SqlStore) -> DurableDict<String> {
    DurableDict::builder(store, Raw).build().unwrap()
}

/// The stamp key (the table's name as the catalog keeps it) is cached with the table's shape
/// for the store's life. When the database file is replaced by one whose table is spelled in
/// another case (made by a process configured `--keyspace FLAGS`; SQLite resolves both names
/// to it), the old store keeps stamping and checking the row `flags` while every other process
/// uses `FLAGS`: after its one reload for the replaced file, it never sees another change.
#[test]
fn a_replaced_file_whose_table_is_spelled_in_another_case_is_still_followed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.db");
    let url = format!("sqlite://{}", path.display());
    let open = |table: &str| SqlStore::builder(&url).table(table).build().unwrap();

    let watcher = dict(open("flags"));
    watcher.insert("k", "old".into()).unwrap();

    std::fs::remove_file(&path).unwrap();
    for side in ["e.db-wal", "e.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(side));
    }
    let writer = dict(open("FLAGS"));
    writer.insert("k", "new".into()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(common::read(&watcher, "k").unwrap().as_deref(), Some("new"));

    writer.insert("k", "newer".into()).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        common::read(&watcher, "k").unwrap().as_deref(),
        Some("newer"),
        "the watcher checks a stamp row nobody bumps any more"
    );
}

/// Rows whose key is not UTF-8 (a BLOB `x'ff'`, as Python's sqlite3 binds `b'\xff'`, or text
/// of such bytes) make the whole load fail `Corrupt` (diesel's UTF-8 check
/// on the text column): every other key is hidden, and a dict cannot be built. Redis lists such
/// names in `Durables::unreadable` and loads the rest (docs/semantics.md, "Values that cannot be
/// decoded").
#[test]
fn sqlite_keys_that_are_not_utf8_are_unreadable_not_merged() {
    use durabledict_core::Store;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/u.db", dir.path().display());
    let store = SqlStore::builder(&url).table("flags").build().unwrap();
    store.init().unwrap();
    store.persist("plain", b"p").unwrap();
    common::execute(
        &url,
        "INSERT INTO flags (key, value) VALUES (x'ff', x'31'), \
         (CAST(x'fe' AS TEXT), x'32')",
    )
    .unwrap();
    let durables = store.durables().unwrap();
    assert!(
        !durables.entries.contains_key("\u{FFFD}"),
        "a key that is not in the table: {:?}",
        durables.entries.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        durables.entries.len() + durables.unreadable.len(),
        3,
        "every row is an entry or listed as unreadable"
    );
}

/// The path a store was given is a symlink (`e.db -> a.db`), re-pointed atomically to another
/// database (`ln -sfn b.db e.db`, as a deployment switches releases). The store remembers the
/// path SQLite resolved (`PRAGMA database_list` names `a.db`), so it keeps stat-ing `a.db`,
/// which is still there, and never notices that `e.db` now names another file: a dict on it
/// keeps serving `a.db` while every process that opens `e.db` from now on reads `b.db`.
#[test]
fn a_symlinked_path_pointed_at_another_database_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, e) = (
        dir.path().join("a.db"),
        dir.path().join("b.db"),
        dir.path().join("e.db"),
    );
    let open = |path: &std::path::Path| {
        SqlStore::builder(format!("sqlite://{}", path.display()))
            .table("flags")
            .build()
            .unwrap()
    };
    dict(open(&a)).insert("k", "old".into()).unwrap();
    dict(open(&b)).insert("k", "new".into()).unwrap();
    std::os::unix::fs::symlink("a.db", &e).unwrap();
    let watcher = dict(open(&e));
    assert_eq!(common::read(&watcher, "k").unwrap().as_deref(), Some("old"));

    let tmp = dir.path().join("e.db.tmp");
    std::os::unix::fs::symlink("b.db", &tmp).unwrap();
    std::fs::rename(&tmp, &e).unwrap();
    assert_eq!(
        common::read(&dict(open(&e)), "k").unwrap().as_deref(),
        Some("new"),
        "a process opening e.db now reads b.db"
    );
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        common::read(&watcher, "k").unwrap().as_deref(),
        Some("new"),
        "the dict still reads a.db through its open connections"
    );
}
