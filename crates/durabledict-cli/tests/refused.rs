//! What the command prints when nothing listens where the store should be: the whole chain of
//! errors on one line, each level's text once.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Output, run_within};

/// A port nothing listens on.
fn refused_port() -> u16 {
    durabledict_test_servers::free_port().unwrap()
}

/// Runs `durabledict --store URL get k` in a fresh directory.
fn get(url: &str) -> Output {
    let d = tempfile::tempdir().unwrap();
    run_within(
        d.path(),
        &["--store", url, "get", "k"],
        Duration::from_secs(60),
    )
}

/// Asserts exit code 3, nothing on stdout, and exactly `expected` on stderr; and that no
/// level of the chain is said twice.
#[track_caller]
fn prints_exactly(out: &Output, expected: &str) {
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr, expected);
    let levels: Vec<&str> = out.stderr.trim_end().split(": ").collect();
    for (i, level) in levels.iter().enumerate() {
        for other in &levels[i + 1..] {
            assert!(
                !other.contains(level) && !level.contains(other),
                "{level:?} and {other:?} repeat each other in {:?}",
                out.stderr
            );
        }
    }
}

#[test]
fn redis_refused() {
    let port = refused_port();
    prints_exactly(
        &get(&format!("redis://127.0.0.1:{port}/")),
        "durabledict: store error during get of key \"k\": Unavailable: Connection refused (os \
         error 111)\n",
    );
}

/// libpq's words (with the address) survive the pool, which keeps only the text of the last
/// failed connect.
#[test]
fn postgres_refused() {
    let port = refused_port();
    prints_exactly(
        &get(&format!("postgres://someone@127.0.0.1:{port}/db")),
        &format!(
            "durabledict: store error during get of key \"k\": Unavailable: no database \
             connection: timed out waiting for connection: cannot connect: connection to server \
             at \"127.0.0.1\", port {port} failed: Connection refused\n\tIs the server running \
             on that host and accepting TCP/IP connections?\n\n"
        ),
    );
}

#[test]
fn zookeeper_refused() {
    let port = refused_port();
    prints_exactly(
        &get(&format!("zk://127.0.0.1:{port}")),
        &format!(
            "durabledict: cannot connect to the store: Unavailable: could not connect to \
             ZooKeeper at 127.0.0.1:{port} within 3s: Zookeeper Error: ConnectionLoss\n"
        ),
    );
}
