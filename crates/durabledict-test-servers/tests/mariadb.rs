mod common;

use std::process::Command;

use common::{is_closed, run, timed};
use durabledict_test_servers::MariaDb;

fn mariadb(port: u16, database: &str, sql: &str) -> String {
    run(Command::new("mariadb").args([
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        "127.0.0.1",
        "-P",
        &port.to_string(),
        "-u",
        "root",
        "-N",
        "-B",
        database,
        "-e",
        sql,
    ]))
}

#[test]
fn mariadb_starts_restarts_and_stops() {
    let mut db = timed("mariadb start", MariaDb::start).expect("start mariadb");
    let port = db.port();
    assert_eq!(
        db.url(),
        format!("mysql://root@127.0.0.1:{port}/durabledict")
    );
    assert_eq!(mariadb(port, "durabledict", "select 1"), "1\n");
    mariadb(
        port,
        "durabledict",
        "create table kv (k varchar(255) primary key, v text); insert into kv values ('k', 'v')",
    );
    let other = db.create_database("other").expect("create database");
    assert!(other.ends_with("/other"));
    assert_eq!(mariadb(port, "other", "select database()"), "other\n");

    db.stop();
    assert!(is_closed(port));
    timed("mariadb restart", || db.restart()).expect("restart mariadb");
    assert_eq!(
        mariadb(port, "durabledict", "select v from kv where k = 'k'"),
        "v\n"
    );

    drop(db);
    assert!(is_closed(port));
}
