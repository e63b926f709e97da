mod common;

use std::process::Command;

use common::{is_closed, run, timed};
use durabledict_test_servers::Postgres;

fn psql(url: &str, sql: &str) -> String {
    run(Command::new("psql").args([url, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql]))
}

#[test]
fn postgres_starts_restarts_and_stops() {
    let mut pg = timed("postgres start", Postgres::start).expect("start postgres");
    let port = pg.port();
    let url = pg.url();
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{port}/durabledict")
    );
    assert_eq!(psql(&url, "select 1"), "1\n");
    psql(
        &url,
        "create table kv (k text primary key, v text); insert into kv values ('k', 'v')",
    );
    let other = pg.create_database("other").expect("create database");
    assert_eq!(psql(&other, "select current_database()"), "other\n");

    pg.stop();
    assert!(is_closed(port));
    timed("postgres restart", || pg.restart()).expect("restart postgres");
    assert_eq!(psql(&url, "select v from kv where k = 'k'"), "v\n");

    drop(pg);
    assert!(is_closed(port));
}
