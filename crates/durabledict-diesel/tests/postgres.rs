//! The PostgreSQL store against a real server: the whole conformance suite with the SQL-row
//! stamp and with the memcached stamp, a Django table, and a server restart under live dicts.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{SqlFixture, StampKind, memcached_addr};
use durabledict_core::{DurableDict, Error, Raw};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

/// One server per test binary; each test works in its own tables.
fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
    })
}

fn postgres_url() -> String {
    server().url()
}

/// Dicts built at once on a new database all race to create the stamps table and the data
/// table, and all succeed (PostgreSQL's `CREATE TABLE IF NOT EXISTS` alone is not safe
/// against a concurrent creator: the loser fails with `type "…" already exists`).
#[test]
fn dicts_built_at_once_on_a_new_database_all_succeed() {
    for round in 0..3 {
        let database = common::table_name(&format!("race{round}"));
        let url = server().create_database(&database).unwrap();
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    let store = SqlStore::builder(&url).table("flags").build().unwrap();
                    DurableDict::<String>::builder(store, Raw)
                        .build()
                        .unwrap_or_else(|e| panic!("a concurrent build failed: {e}"))
                });
            }
        });
    }
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

/// PostgreSQL stops and comes back under live dicts (see `common::restart_under_live_dicts`), and
/// every failed request, and a dead connection found after a restart, changes the store's epoch
/// (see `common::failed_requests_change_the_epoch`).
#[test]
fn server_restart_under_a_live_dict() {
    let mut pg = Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let url = pg.url();
    common::restart_under_live_dicts(&url, &mut pg, |s| s.stop(), |s| s.restart().unwrap());
    common::failed_requests_change_the_epoch(&url, &mut pg, |s| s.stop(), |s| s.restart().unwrap());
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

/// Tables an admin made, used by application roles that may create nothing (PostgreSQL 15
/// gives ordinary roles no CREATE on schema public), as in the usual Django deployment: a role
/// with SELECT, INSERT, UPDATE and DELETE builds a dict, reads and writes; a SELECT-only role
/// builds a dict and reads, and its writes are refused.
#[test]
fn roles_without_create_rights_use_existing_tables() {
    let database = common::table_name("grants");
    let admin_url = server().create_database(&database).unwrap();
    let admin = DurableDict::<String>::builder(
        SqlStore::builder(&admin_url)
            .table("flags")
            .build()
            .unwrap(),
        Raw,
    )
    .build()
    .unwrap();
    admin.insert("from_admin", "a".into()).unwrap();
    let (rw, ro) = (format!("{database}_rw"), format!("{database}_ro"));
    common::execute(
        &admin_url,
        &format!(
            "CREATE ROLE {rw} LOGIN; CREATE ROLE {ro} LOGIN; \
             GRANT USAGE ON SCHEMA public TO {rw}, {ro}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON flags, durabledict_stamps TO {rw}; \
             GRANT SELECT ON flags, durabledict_stamps TO {ro}"
        ),
    )
    .unwrap();
    let url_as = |role: &str| admin_url.replacen("://postgres@", &format!("://{role}@"), 1);
    assert!(
        common::execute(&url_as(&rw), "CREATE TABLE probe (x int)").is_err(),
        "the application role must not be able to create tables"
    );
    let dict_as = |role: &str| {
        let store = SqlStore::builder(url_as(role))
            .table("flags")
            .build()
            .unwrap();
        DurableDict::<String>::builder(store, Raw)
            .build()
            .unwrap_or_else(|e| panic!("{role} cannot build a dict: {e}"))
    };

    let writer = dict_as(&rw);
    assert_eq!(
        common::read(&writer, "from_admin").unwrap().as_deref(),
        Some("a")
    );
    writer.insert("from_app", "w".into()).unwrap();
    assert_eq!(
        common::read(&admin, "from_app").unwrap().as_deref(),
        Some("w")
    );
    writer.remove("from_admin").unwrap();

    let reader = dict_as(&ro);
    assert_eq!(
        common::read(&reader, "from_app").unwrap().as_deref(),
        Some("w")
    );
    assert_eq!(reader.len().unwrap(), 1);
    assert!(reader.last_updated().unwrap().is_some());
    match reader.insert("from_reader", "r".into()) {
        Err(e) => assert_eq!(
            e.store_error().map(|s| s.kind()),
            Some(durabledict_core::StoreErrorKind::Rejected),
            "{e}"
        ),
        Ok(()) => panic!("a SELECT-only role must not write"),
    }
    assert_eq!(common::read(&admin, "from_reader").unwrap(), None);
}

/// PostgreSQL's quoted table names are exact: `flags` and `FLAGS` are two tables, each with
/// its own stamp row (see `common::one_stamp_row_per_table`).
#[test]
fn table_names_differing_in_case_are_two_tables_with_a_stamp_row_each() {
    common::one_stamp_row_per_table(&postgres_url(), false);
}
