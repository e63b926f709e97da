//! The PostgreSQL store against a real server: the whole conformance suite with the SQL-row
//! stamp and with the memcached stamp, a Django table, and a server restart under live dicts.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{SqlFixture, StampKind, memcached_addr};
use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

/// One server per test binary; each test works in its own tables.
fn postgres_url() -> String {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
        })
        .url()
}

durabledict_conformance::suite!(
    conformance_postgres,
    SqlFixture::new(postgres_url(), StampKind::Row)
);

durabledict_conformance::suite!(
    conformance_postgres_memcache,
    SqlFixture::new(postgres_url(), StampKind::Memcache(memcached_addr()))
);

/// The table Django's migrations create for a `ModelDict` model on PostgreSQL.
#[test]
fn django_model_dict_table_works_as_it_is() {
    let url = postgres_url();
    common::django_model_dict_works(
        &url,
        "CREATE TABLE \"myapp_setting\" (\
            \"id\" serial NOT NULL PRIMARY KEY, \
            \"key\" varchar(32) NOT NULL UNIQUE, \
            \"value\" text NOT NULL, \
            \"updated\" timestamp with time zone NOT NULL DEFAULT now())",
        "SELECT count(*) FROM \"myapp_setting\" WHERE \"id\" IS NOT NULL AND \"updated\" IS NOT NULL",
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

/// PostgreSQL stops and comes back under live dicts: an `Always` dict fails while it is down
/// (or serves its last snapshot when asked to), and the same dicts work again once it is back,
/// their dead pooled connections replaced.
#[test]
fn server_restart_under_a_live_dict() {
    let mut pg = Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.url();
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

    pg.stop();
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

    pg.restart().unwrap();
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

/// Values and keys that PostgreSQL's types cannot hold are refused before writing.
#[test]
fn limits_of_the_created_table() {
    let store = SqlStore::builder(postgres_url())
        .table(common::table_name("limits"))
        .build()
        .unwrap();
    let dict = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    // Bytes of every value, NUL included, round-trip through BYTEA.
    let all: Vec<u8> = (0..=255).collect();
    dict.insert("bytes", all.clone()).unwrap();
    let other = DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(other.get("bytes").unwrap().as_deref(), Some(&all));
    assert!(matches!(
        dict.insert("nul\0key", vec![]),
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(
        dict.insert(&"x".repeat(256), vec![]),
        Err(Error::InvalidKey { .. })
    ));
    dict.insert(&"☃".repeat(255), vec![1]).unwrap();
    store.drop_keyspace().unwrap();
}

#[test]
fn text_values_table() {
    common::text_values_table_works(&postgres_url());
}
