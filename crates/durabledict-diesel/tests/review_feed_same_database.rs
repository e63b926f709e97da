//! Review: the PostgreSQL change feed must listen on the database the store reads.
//!
//! libpq (diesel's connections) fills what a URL leaves out from the environment (`PGDATABASE`,
//! `PGHOST`, `PGPORT`, `PGOPTIONS` …); the `postgres` crate (the listener's connection) does
//! not. With `postgres://user@host:port` and `PGDATABASE=app`, the store reads and writes `app`
//! while the listener connected to the database named after the user. When that database holds
//! the same stamps table with the trigger (a copy of the schema, a test database), the feed came
//! up there and a `Watch` dict never heard another program's writes to `app`: it served a stale
//! value forever. The listener now compares its connection with the store's (database, server
//! start, stamps table) and keeps the feed down when they differ.
//!
//! Environment variables are set on a child process (this test binary again), as the
//! workspace forbids `unsafe` (`std::env::set_var`).
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{execute, query_i64, table_name};
use durabledict_core::{DurableDict, Raw, Store, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

const CHILD: &str = "REVIEW_FEED_CHILD";

#[test]
fn a_listener_on_another_database_never_brings_the_feed_up() {
    match std::env::var(CHILD) {
        Ok(spec) => child(&spec),
        Err(_) => parent(),
    }
}

const TLS_CHILD: &str = "REVIEW_FEED_TLS_CHILD";

/// `PGSSLMODE=require` makes libpq (diesel's connections) require TLS, as `sslmode=require` in
/// the URL does; the listener, which has no TLS, connected in clear text all the same (its
/// password and the notices unencrypted, against the operator's demand). Like the URL's, the
/// environment's demand leaves the store without a feed; a URL naming its own `sslmode` keeps
/// it.
#[test]
fn pgsslmode_require_in_the_environment_gives_no_feed() {
    if std::env::var(TLS_CHILD).is_ok() {
        let url = "postgres://postgres@127.0.0.1:1/durabledict";
        let store = SqlStore::builder(url).table("t").build().unwrap();
        assert!(store.feed().is_none(), "PGSSLMODE=require: no feed");
        let url = "postgres://postgres@127.0.0.1:1/durabledict?sslmode=disable";
        let store = SqlStore::builder(url).table("t").build().unwrap();
        assert!(store.feed().is_some(), "the URL's own sslmode rules");
        return;
    }
    for (var, value) in [
        ("PGSSLMODE", "require"),
        ("PGSSLMODE", "verify-full"),
        ("PGREQUIRESSL", "1"),
    ] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "pgsslmode_require_in_the_environment_gives_no_feed",
                "--nocapture",
            ])
            .env(TLS_CHILD, "1")
            .env_remove("PGSSLMODE")
            .env(var, value)
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{var}={value}: child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn parent() {
    let pg = Postgres::start().unwrap();
    let app_url = pg.url();
    let table = table_name("samedb");
    // The database named after the user holds the same layout, trigger included.
    let decoy = SqlStore::builder(pg.url_for("postgres"))
        .table(&table)
        .build()
        .unwrap();
    decoy.init().unwrap();
    // A URL without a database: libpq takes PGDATABASE, the postgres crate the user's name.
    let bare = format!("postgres://postgres@127.0.0.1:{}", pg.port());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_listener_on_another_database_never_brings_the_feed_up",
            "--nocapture",
        ])
        .env(CHILD, format!("{bare} {app_url} {table}"))
        .env("PGDATABASE", Postgres::DATABASE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child ran the test"
    );
}

fn child(spec: &str) {
    let mut parts = spec.split(' ');
    let (bare, app_url, table) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let store = SqlStore::builder(bare).table(table).build().unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
    dict.insert("k", "one".into()).unwrap();
    assert_eq!(
        query_i64(
            app_url,
            &format!("SELECT count(*) FROM \"{table}\" WHERE key = 'k'")
        )
        .unwrap(),
        1,
        "the store writes the database PGDATABASE names"
    );
    // Time for a listener to come up, wherever it connected.
    let feed = store.feed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !feed.state().is_up() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("one")
    );
    // Another program writes the store's database and bumps the stamp.
    execute(
        app_url,
        &format!(
            "BEGIN; UPDATE \"{table}\" SET value = 'two'::bytea WHERE key = 'k'; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let value = dict.get("k").unwrap().as_deref().cloned();
        if value.as_deref() == Some("two") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a Watch dict still serves {value:?} 3 s after another program's write (feed up: {})",
            feed.state().is_up()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !feed.state().is_up(),
        "the feed stays down while its listener reaches another database"
    );
}
