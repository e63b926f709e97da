//! Review of the PostgreSQL change feed against a real server: writers the trigger must hear,
//! and the listener's life.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{execute, listener_name, query_i64, table_name, wait_until, watch};
use durabledict_core::{DurableDict, Store};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
    })
}

fn store(url: &str, table: &str) -> SqlStore {
    SqlStore::builder(url)
        .table(table)
        .connection_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| (*v).clone())
}

/// A writer whose session replicates (`session_replication_role = replica`: logical
/// replication's apply worker on a subscriber, `pg_restore --disable-triggers`, some
/// migration tools) fires only triggers enabled `ALWAYS` (or `REPLICA`). The notify trigger was
/// an ordinary one: such a write went unheard while the feed stayed up, and a `Watch` dict on
/// the subscriber served the old value until some other write.
#[test]
fn a_replicating_writer_is_heard() {
    let url = server().url();
    let table = table_name("replica");
    let reader = store(&url, &table);
    let dict = watch(reader.clone());
    dict.insert("k", "one".into()).unwrap();
    let feed = reader.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || {
        feed.state().is_up()
    });
    assert_eq!(read(&dict, "k").as_deref(), Some("one"));
    execute(
        &url,
        &format!(
            "SET session_replication_role = replica; BEGIN; \
             UPDATE \"{table}\" SET value = 'two'::bytea WHERE key = 'k'; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(3),
        "a replicating writer's change is served",
        || read(&dict, "k").as_deref() == Some("two"),
    );
    reader.drop_keyspace().unwrap();
}

/// The listener's thread and connection end once the last handle of the store is gone.
#[test]
fn the_listener_ends_with_the_store() {
    let url = server().url();
    let table = table_name("ends");
    let name = listener_name(&table);
    let count = || {
        query_i64(
            &url,
            &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"),
        )
        .unwrap()
    };
    {
        let reader = store(&url, &table);
        let dict = watch(reader.clone());
        let feed = reader.feed().unwrap();
        wait_until(Duration::from_secs(5), "the feed comes up", || {
            feed.state().is_up()
        });
        assert_eq!(count(), 1, "one listener connection");
        drop(dict);
        reader.drop_keyspace().unwrap();
    }
    wait_until(
        Duration::from_secs(4),
        "the listener's connection ends",
        || count() == 0,
    );
}

/// The stamps table is swapped under running dicts (a migration renames it away and puts a
/// copy without the trigger in its place): the feed goes down within the documented 5 s (plus
/// one probe), so another program's write to the new table is served by then; and once `init`
/// made the trigger on the new table, the feed is back and such writes are heard again.
#[test]
fn a_swapped_stamps_table_takes_the_feed_down_until_init() {
    let pg = Postgres::start().unwrap();
    let url = pg.url();
    let table = table_name("swap");
    let reader = store(&url, &table);
    let dict = watch(reader.clone());
    dict.insert("k", "one".into()).unwrap();
    let feed = reader.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || {
        feed.state().is_up()
    });
    assert_eq!(read(&dict, "k").as_deref(), Some("one"));
    execute(
        &url,
        "BEGIN; ALTER TABLE durabledict_stamps RENAME TO durabledict_stamps_old; \
         CREATE TABLE durabledict_stamps (LIKE durabledict_stamps_old INCLUDING ALL); \
         INSERT INTO durabledict_stamps SELECT * FROM durabledict_stamps_old; COMMIT",
    )
    .unwrap();
    let bump = |value: &str| {
        execute(
            &url,
            &format!(
                "BEGIN; UPDATE \"{table}\" SET value = '{value}'::bytea WHERE key = 'k'; \
                 UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; \
                 COMMIT"
            ),
        )
        .unwrap();
    };
    bump("two");
    wait_until(
        Duration::from_secs(7),
        "a write to the new stamps table is served",
        || read(&dict, "k").as_deref() == Some("two"),
    );
    assert!(!feed.state().is_up(), "no trigger on the new table: down");
    store(&url, &table).init().unwrap();
    wait_until(Duration::from_secs(7), "the feed is back", || {
        feed.state().is_up()
    });
    bump("three");
    wait_until(
        Duration::from_secs(2),
        "heard through the new trigger",
        || read(&dict, "k").as_deref() == Some("three"),
    );
}

/// A `durabledict_notify()` function already in the database that notifies other channels
/// (another version's formula, or somebody's own function of that name) behind triggers of the
/// right names: `init` kept it and the listener counted the triggers by name, so the feed came
/// up deaf and a `Watch` dict served the old value forever. Now `init` replaces the function,
/// and the listener counts only triggers that run this crate's.
#[test]
fn a_foreign_notify_function_is_replaced_not_trusted() {
    let url = server().create_database("foreign_fn").unwrap();
    let table = table_name("foreignfn");
    execute(
        &url,
        &format!(
            "CREATE TABLE durabledict_stamps (keyspace VARCHAR(255) PRIMARY KEY, stamp BIGINT NOT NULL); \
             CREATE FUNCTION durabledict_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$ \
             BEGIN PERFORM pg_notify('durabledict_old', ''); RETURN NULL; END $fn$; \
             CREATE TRIGGER durabledict_notify AFTER INSERT OR UPDATE OR DELETE ON durabledict_stamps \
             FOR EACH ROW EXECUTE FUNCTION durabledict_notify(); \
             CREATE TRIGGER durabledict_notify_truncate AFTER TRUNCATE ON durabledict_stamps \
             FOR EACH STATEMENT EXECUTE FUNCTION durabledict_notify(); \
             ALTER TABLE durabledict_stamps ENABLE ALWAYS TRIGGER durabledict_notify; \
             ALTER TABLE durabledict_stamps ENABLE ALWAYS TRIGGER durabledict_notify_truncate; \
             INSERT INTO durabledict_stamps VALUES ('{table}', 1)"
        ),
    )
    .unwrap();
    let reader = store(&url, &table);
    let dict = watch(reader.clone());
    dict.insert("k", "one".into()).unwrap();
    let feed = reader.feed().unwrap();
    // Up or not, whatever the listener made of it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !feed.state().is_up() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(read(&dict, "k").as_deref(), Some("one"));
    execute(
        &url,
        &format!(
            "BEGIN; UPDATE \"{table}\" SET value = 'two'::bytea WHERE key = 'k'; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(3),
        "another program's write is served",
        || read(&dict, "k").as_deref() == Some("two"),
    );
    // `init` replaced the function: the feed is up, and hears.
    wait_until(Duration::from_secs(7), "the feed comes up", || {
        feed.state().is_up()
    });
    execute(
        &url,
        &format!(
            "BEGIN; UPDATE \"{table}\" SET value = 'three'::bytea WHERE key = 'k'; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ),
    )
    .unwrap();
    wait_until(Duration::from_secs(2), "heard", || {
        read(&dict, "k").as_deref() == Some("three")
    });
}

/// A role that owns the stamps table but not the administrator's `durabledict_notify()` (this
/// crate's, made by an earlier `init`) still makes the missing triggers in its `init`: the
/// function is replaced only when it differs, which this role could not do.
#[test]
fn the_owner_of_the_stamps_table_makes_triggers_on_an_administrators_function() {
    let database = table_name("ownerfn");
    let admin_url = server().create_database(&database).unwrap();
    let app = format!("{database}_app");
    // The administrator's init makes the function (and a stamps table of its own keyspace).
    store(&admin_url, "admin_flags").init().unwrap();
    execute(
        &admin_url,
        &format!(
            "DROP TABLE durabledict_stamps; \
             CREATE ROLE {app} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO {app}"
        ),
    )
    .unwrap();
    let app_url = admin_url.replacen("://postgres@", &format!("://{app}@"), 1);
    let app_store = store(&app_url, "flags");
    app_store.init().unwrap();
    assert_eq!(
        query_i64(
            &admin_url,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('durabledict_stamps') \
             AND tgname LIKE 'durabledict_notify%' AND tgenabled = 'A'"
        )
        .unwrap(),
        2,
        "the app's init made the triggers"
    );
    let dict = watch(app_store.clone());
    dict.insert("k", "one".into()).unwrap();
    let feed = app_store.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || {
        feed.state().is_up()
    });
    execute(
        &admin_url,
        "BEGIN; UPDATE flags SET value = 'two'::bytea WHERE key = 'k'; \
         UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = 'flags'; COMMIT",
    )
    .unwrap();
    wait_until(Duration::from_secs(2), "heard through the feed", || {
        read(&dict, "k").as_deref() == Some("two")
    });
}
