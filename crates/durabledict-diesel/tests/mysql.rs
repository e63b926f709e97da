//! The MySQL / MariaDB store against a real server: the whole conformance suite with the SQL-row
//! stamp and with the memcached stamp, a Django table, and a server restart under live dicts.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{SqlFixture, StampKind, memcached_addr};
use durabledict_core::{DurableDict, Error, Raw};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::MariaDb;

/// One server per test binary; each test works in its own tables.
fn mysql_url() -> String {
    static SERVER: OnceLock<MariaDb> = OnceLock::new();
    SERVER
        .get_or_init(|| MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}")))
        .url()
}

durabledict_conformance::suite!(
    conformance_mysql,
    SqlFixture::new(mysql_url(), StampKind::Row)
);

durabledict_conformance::suite!(
    conformance_mysql_memcache,
    SqlFixture::new(mysql_url(), StampKind::Memcache(memcached_addr()))
);

/// The table Django's migrations create for a `ModelDict` model on MySQL / MariaDB (in a
/// utf8mb4 database, as Django is usually configured).
#[test]
fn django_model_dict_table_works_as_it_is() {
    let url = mysql_url();
    common::django_model_dict_works(
        &url,
        "CREATE TABLE `myapp_setting` (\
            `id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, \
            `key` varchar(32) NOT NULL UNIQUE, \
            `value` longtext NOT NULL, \
            `updated` datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) \
         CHARACTER SET utf8mb4",
        "SELECT count(*) FROM `myapp_setting` WHERE `id` IS NOT NULL AND `updated` IS NOT NULL",
    );
}

/// A Django-shaped table whose key and value columns use `charset`; returns the URL and the
/// table's name.
fn django_table(charset: &str) -> (String, String) {
    let url = mysql_url();
    let table = common::table_name(charset);
    common::execute(
        &url,
        &format!(
            "CREATE TABLE `{table}` (`id` integer AUTO_INCREMENT NOT NULL PRIMARY KEY, \
             `key` varchar(32) CHARACTER SET {charset} NOT NULL UNIQUE, \
             `value` longtext CHARACTER SET {charset} NOT NULL)"
        ),
    )
    .unwrap();
    (url, table)
}

/// An existing table whose value column is latin1 (MySQL's default before 8.0, so common in
/// older Django databases): text is converted to it, and a character it cannot hold is refused,
/// naming the key, with nothing written; never stored garbled.
#[test]
fn a_latin1_value_column_holds_what_it_can_and_refuses_the_rest() {
    let (url, table) = django_table("latin1");
    let dict =
        DurableDict::<String>::builder(SqlStore::builder(&url).table(&table).build().unwrap(), Raw)
            .build()
            .unwrap();
    dict.insert("e", "café".into()).unwrap();
    let other =
        DurableDict::<String>::builder(SqlStore::builder(&url).table(&table).build().unwrap(), Raw)
            .build()
            .unwrap();
    assert_eq!(common::read(&other, "e").unwrap().as_deref(), Some("café"));
    let stored =
        format!("SELECT count(*) FROM `{table}` WHERE `value` = 'café' AND LENGTH(`value`) = 4");
    assert_eq!(
        common::query_i64(&url, &stored).unwrap(),
        1,
        "one latin1 byte per character"
    );

    let error = dict.insert("z", "ж".into()).unwrap_err();
    assert!(error.to_string().contains("\"z\""), "{error}");
    let rows = format!("SELECT count(*) FROM `{table}` WHERE `key` = 'z'");
    assert_eq!(common::query_i64(&url, &rows).unwrap(), 0);
    assert_eq!(common::read(&other, "z").unwrap(), None);
}

/// A batch a column refuses part of (an emoji in a utf8mb3 column) writes nothing and names
/// the key of the row refused.
#[test]
fn a_refused_entry_of_a_batch_is_named_and_nothing_is_written() {
    let (url, table) = django_table("utf8mb3");
    let store = SqlStore::builder(&url).table(&table).build().unwrap();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    let error = dict
        .update([("c", "x".to_string()), ("d", "🎉".to_string())])
        .unwrap_err();
    let source = error.store_error().unwrap();
    assert_eq!(
        source.kind(),
        durabledict_core::StoreErrorKind::Rejected,
        "{error}"
    );
    assert!(
        durabledict_core::Report(&error)
            .to_string()
            .contains("key \"d\""),
        "{error}"
    );
    let rows = format!("SELECT count(*) FROM `{table}`");
    assert_eq!(
        common::query_i64(&url, &rows).unwrap(),
        0,
        "nothing of the batch"
    );
}

/// MariaDB stops and comes back under live dicts (see `common::restart_under_live_dicts`), and
/// every failed request, and a dead connection found after a restart, changes the store's epoch
/// (see `common::failed_requests_change_the_epoch`).
#[test]
fn server_restart_under_a_live_dict() {
    let mut db = MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
    let url = db.url();
    common::restart_under_live_dicts(&url, &mut db, |s| s.stop(), |s| s.restart().unwrap());
    common::failed_requests_change_the_epoch(&url, &mut db, |s| s.stop(), |s| s.restart().unwrap());
}

/// The created table holds any bytes, and keys of up to 1020 bytes compared exactly (MySQL's
/// character columns would compare them case- and pad-insensitively).
#[test]
fn limits_of_the_created_table() {
    let store = SqlStore::builder(mysql_url())
        .table(common::table_name("limits"))
        .build()
        .unwrap();
    let dict = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    let all: Vec<u8> = (0..=255).collect();
    dict.insert("bytes", all.clone()).unwrap();
    for key in ["a", "A", "a ", "á"] {
        dict.insert(key, key.as_bytes().to_vec()).unwrap();
    }
    let other = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(other.get("bytes").unwrap().as_deref(), Some(&all));
    for key in ["a", "A", "a ", "á"] {
        assert_eq!(
            other.get(key).unwrap().as_deref().map(Vec::as_slice),
            Some(key.as_bytes())
        );
    }
    assert_eq!(other.len().unwrap(), 5);
    assert!(matches!(
        dict.insert(&"x".repeat(1021), vec![]),
        Err(Error::InvalidKey { .. })
    ));
    dict.insert(&"x".repeat(1020), vec![1]).unwrap();
    // A value over max_allowed_packet is refused before it is sent.
    let max = durabledict_core::Store::max_value_len(&store).expect("bounded by the packet size");
    match dict.insert("big", vec![b'x'; max + 1]) {
        Err(Error::ValueTooLarge { key, .. }) => assert_eq!(key, "big"),
        other => panic!("a value over max_allowed_packet must be refused, got {other:?}"),
    }
    dict.insert("big", vec![b'x'; max]).unwrap();
    assert_eq!(other.get("big").unwrap().map(|v| v.len()), Some(max));
    store.drop_keyspace().unwrap();
}

#[test]
fn text_values_table() {
    common::text_values_table_works(&mysql_url());
}

/// MySQL's table names are one table in any case unless `lower_case_table_names` is 0 (the
/// default on Linux, as on this server: two tables); either way one table has one stamp row
/// (see `common::one_stamp_row_per_table`).
#[test]
fn table_names_differing_in_case_follow_lower_case_table_names() {
    let url = mysql_url();
    let folded = common::query_i64(&url, "SELECT @@lower_case_table_names").unwrap() != 0;
    common::one_stamp_row_per_table(&url, folded);
}
