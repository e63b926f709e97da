//! A SQLite row whose key is stored as a BLOB (Python's sqlite3 binds `bytes` so) spelled like
//! a text key. Reads and writes of one key bind it as text and never reach that row, yet a full
//! load read it as the key: the two rows shadowed each other, and a dict's own write, made to
//! the text row, was lost at the next load behind the BLOB row's older value.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)]

mod common;

use durabledict_core::{DurableDict, Raw, Store, SyncPolicy};
use durabledict_diesel::SqlStore;

#[test]
fn a_blob_key_never_shadows_an_own_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/b.db", dir.path().display());
    let store = SqlStore::builder(&url).table("flags").build().unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Always)
        .build()
        .unwrap();
    dict.insert("a", "mine-1".into()).unwrap();
    // Another program writes the same spelling as bytes, and bumps the stamp as writers do.
    common::execute(
        &url,
        "INSERT INTO flags (key, value) VALUES (x'61', CAST('blob' AS BLOB))",
    )
    .unwrap();
    store.persist("other", b"x").unwrap();
    // The dict's own write goes to its text row.
    dict.insert("a", "mine-2".into()).unwrap();
    // Any later load (another process's, or this one's after a foreign change).
    store.persist("other", b"y").unwrap();
    assert_eq!(
        dict.get("a").unwrap().as_deref().map(String::as_str),
        Some("mine-2"),
        "the own write was lost behind the BLOB row"
    );
    let fresh = DurableDict::<String>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(
        fresh.get("a").unwrap().as_deref().map(String::as_str),
        Some("mine-2")
    );
    // The BLOB row is named, not merged.
    let durables = store.durables().unwrap();
    assert_eq!(durables.unreadable.len(), 1, "{:?}", durables.unreadable);
    assert_eq!(durables.unreadable[0].0, b"a");
    assert!(
        durables.unreadable[0].1.contains("blob"),
        "{}",
        durables.unreadable[0].1
    );
    assert_eq!(durables.entries.len(), 2);
}
