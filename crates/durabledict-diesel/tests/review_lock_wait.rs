//! Review: a write that waits out MySQL's lock wait timeout (1205) fails once, as
//! `Unavailable`, after one timeout. The server has already waited `innodb_lock_wait_timeout`
//! for the lock; retrying multiplied that wait by the store's attempts (5 × 50 s by default).
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::table_name;
use diesel::connection::SimpleConnection;
use diesel::{Connection, MysqlConnection};
use durabledict_core::{DurableDict, Raw, StoreErrorKind, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::MariaDb;

#[test]
fn a_lock_wait_timeout_is_not_retried() {
    let db = MariaDb::start().unwrap();
    let url = db.url();
    let table = table_name("lockwait");
    let mut admin = MysqlConnection::establish(&url).unwrap();
    // New sessions (the store's) wait 1 s for a row lock.
    admin
        .batch_execute("SET GLOBAL innodb_lock_wait_timeout = 1")
        .unwrap();
    let store = SqlStore::builder(&url).table(&table).build().unwrap();
    let dict = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Always)
        .build()
        .unwrap();
    dict.insert("k", "0".into()).unwrap();

    let mut holder = MysqlConnection::establish(&url).unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT * FROM `{table}` WHERE `key` = 'k' FOR UPDATE;"
        ))
        .unwrap();
    let start = Instant::now();
    let error = dict.insert("k", "1".into()).unwrap_err();
    let waited = start.elapsed();
    holder.batch_execute("ROLLBACK").unwrap();

    assert_eq!(
        error.store_error().map(|s| s.kind()),
        Some(StoreErrorKind::Unavailable),
        "{error:?}"
    );
    assert!(
        waited < Duration::from_millis(1900),
        "the write waited {waited:?}: the lock wait timeout was retried"
    );
    // The lock released, the write goes through and nothing of the failed one is left.
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("0")
    );
    dict.insert("k", "2".into()).unwrap();
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("2")
    );
}
