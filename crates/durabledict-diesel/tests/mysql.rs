//! The MySQL / MariaDB store against a real server: the whole conformance suite with the SQL-row
//! stamp and with the memcached stamp, a Django table, and a server restart under live dicts.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{SqlFixture, StampKind, memcached_addr};
use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind};
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

fn read(dict: &DurableDict<String>, key: &str) -> Result<Option<String>, Error> {
    Ok(dict.get(key)?.map(|v| (*v).clone()))
}

fn assert_unavailable(result: Result<Option<String>, Error>) {
    match result {
        Err(e @ Error::Store { .. }) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Unavailable),
            "{e}"
        ),
        other => panic!("an Always dict must fail while its server is down, got {other:?}"),
    }
}

/// MariaDB stops and comes back under live dicts: an `Always` dict fails while it is down
/// (or serves its last snapshot when asked to), and the same dicts work again once it is back,
/// their dead pooled connections replaced.
#[test]
fn server_restart_under_a_live_dict() {
    let mut db = MariaDb::start().unwrap_or_else(|e| panic!("cannot start MariaDB: {e}"));
    let url = db.url();
    let store = || {
        SqlStore::builder(&url)
            .table("flags")
            .connection_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let strict = DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap();
    let lenient = DurableDict::<String>::builder(store(), Raw)
        .serve_stale_for(Duration::from_secs(60))
        .build()
        .unwrap();
    strict.insert("k", "before".into()).unwrap();
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("before"));

    db.stop();
    assert_unavailable(read(&strict, "k"));
    assert_eq!(
        read(&lenient, "k").unwrap().as_deref(),
        Some("before"),
        "serve_stale_for serves the last snapshot"
    );
    match strict.insert("k", "lost".into()) {
        Err(e) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(StoreErrorKind::Unavailable)
        ),
        Ok(()) => panic!("a write while the server is down must fail"),
    }

    db.restart().unwrap();
    // The first read after the restart already succeeds: dead connections are replaced.
    assert_eq!(read(&strict, "k").unwrap().as_deref(), Some("before"));
    DurableDict::<String>::builder(store(), Raw)
        .build()
        .unwrap()
        .insert("k", "after".into())
        .unwrap();
    assert_eq!(read(&strict, "k").unwrap().as_deref(), Some("after"));
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("after"));
    strict.insert("k", "again".into()).unwrap();
    assert_eq!(read(&lenient, "k").unwrap().as_deref(), Some("again"));
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
