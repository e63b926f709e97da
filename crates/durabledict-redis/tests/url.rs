//! What a URL can say: database number, password, ACL user, a Unix socket; and the server's
//! refusals (bad credentials, missing permissions) as `Rejected`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::OnceLock;

use common::{keyspace, raw};
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind};
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

/// This binary's server, with a password for the default user and two ACL users: `alice`
/// may do anything, `reader` may only read (`+@read +@transaction`: an atomic load is a
/// `MULTI`/`EXEC`).
fn secured() -> u16 {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server =
                RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
            let mut conn = raw(&server.url());
            for command in [
                &[
                    "ACL",
                    "SETUSER",
                    "alice",
                    "on",
                    ">wonder land",
                    "~*",
                    "+@all",
                ][..],
                &[
                    "ACL",
                    "SETUSER",
                    "reader",
                    "on",
                    ">reader",
                    "~*",
                    "+@read",
                    "+@transaction",
                    "+ping",
                ],
                &["CONFIG", "SET", "requirepass", "s3cret"],
            ] {
                let () = redis::cmd(command[0])
                    .arg(&command[1..])
                    .query(&mut conn)
                    .unwrap();
            }
            server
        })
        .port()
}

fn url(credentials: &str, port: u16, db: &str) -> String {
    format!("redis://{credentials}127.0.0.1:{port}/{db}")
}

fn round_trip(store: RedisStore) {
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    dict.insert("k", "v".into()).unwrap();
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
}

#[test]
fn password_in_the_url() {
    let port = secured();
    round_trip(RedisStore::open(&url(":s3cret@", port, ""), &keyspace("pw")).unwrap());
}

#[test]
fn acl_user_in_the_url_with_an_escaped_password() {
    let port = secured();
    round_trip(RedisStore::open(&url("alice:wonder%20land@", port, ""), &keyspace("acl")).unwrap());
}

#[test]
fn wrong_or_missing_credentials_are_rejected() {
    let port = secured();
    for credentials in ["", ":wrong@", "alice:wrong@", "nobody:s3cret@"] {
        let store = RedisStore::open(&url(credentials, port, ""), "ks").unwrap();
        let error = store.last_updated().unwrap_err();
        assert_eq!(
            error.kind(),
            StoreErrorKind::Rejected,
            "{credentials}: {error}"
        );
    }
}

#[test]
fn a_user_without_write_permission_is_rejected_and_can_still_read() {
    let port = secured();
    let ks = keyspace("perm");
    let writer = RedisStore::open(&url("alice:wonder%20land@", port, ""), &ks).unwrap();
    writer.init().unwrap();
    let written = writer.persist("k", b"v").unwrap();
    let reader = RedisStore::open(&url("reader:reader@", port, ""), &ks).unwrap();
    assert_eq!(reader.last_updated().unwrap(), Some(written));
    let dict = DurableDict::<String>::builder(reader.clone(), Raw)
        .build()
        .unwrap();
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
    let error = reader.persist("k", b"w").unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Rejected, "{error}");
    let error = dict.insert("k", "w".into()).unwrap_err();
    assert_eq!(
        error.store_error().unwrap().kind(),
        StoreErrorKind::Rejected
    );
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
    assert_eq!(writer.get("k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_database_number_selects_the_database() {
    let port = secured();
    let ks = keyspace("db");
    let in_db3 = RedisStore::open(&url(":s3cret@", port, "3"), &ks).unwrap();
    round_trip(in_db3.clone());
    let in_db0 = RedisStore::open(&url(":s3cret@", port, "0"), &ks).unwrap();
    assert!(in_db0.durables().unwrap().entries.is_empty());
    assert_eq!(in_db0.last_updated().unwrap(), None);
    assert_eq!(in_db3.durables().unwrap().entries["k"], b"v");
}

#[test]
fn a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis.sock");
    let _server =
        RedisServer::start_with_args(["--unixsocket".to_string(), path.display().to_string()])
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    round_trip(
        RedisStore::open(
            &format!("redis+unix://{}", path.display()),
            &keyspace("unix"),
        )
        .unwrap(),
    );
    // The database number travels as a query parameter on a socket URL.
    let ks = keyspace("unix-db");
    round_trip(RedisStore::open(&format!("redis+unix://{}?db=5", path.display()), &ks).unwrap());
    let db0 = RedisStore::open(&format!("redis+unix://{}", path.display()), &ks).unwrap();
    assert_eq!(db0.last_updated().unwrap(), None);
}

#[test]
fn bad_configurations_fail_at_build() {
    for url in [
        "http://127.0.0.1/",
        "redis://127.0.0.1:6379/notanumber",
        "not a url",
    ] {
        let error = RedisStore::open(url, "ks").unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Other, "{url}: {error}");
    }
    #[cfg(not(feature = "tls"))]
    {
        let error = RedisStore::open("rediss://127.0.0.1:6379/", "ks").unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Other, "{error}");
    }
    let error = RedisStore::builder("redis://127.0.0.1/", "ks")
        .io_timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Other);
    // On a cluster the two keys must share a slot.
    let error = RedisStore::cluster_builder(["redis://127.0.0.1:7000/"], "settings")
        .hash_tag(false)
        .build()
        .unwrap_err();
    assert!(
        durabledict_core::Report(&error)
            .to_string()
            .contains("hash_tag"),
        "{error}"
    );
}

/// `builder_from_url` reads the same URLs as `open`, with durabledict's options in the query
/// taken out before the client sees it: credentials, a database and options together, on TCP
/// and on a socket (where the client's own `db=` is passed on).
#[test]
fn builder_from_url_takes_the_options_and_passes_the_rest_on() {
    let port = secured();
    let ks = keyspace("from-url");
    let with_options = url(
        ":s3cret@",
        port,
        "3?io_timeout=1s&max_idle=1&connect_timeout=500ms",
    );
    round_trip(
        RedisStore::builder_from_url(&with_options, &ks)
            .unwrap()
            .build()
            .unwrap(),
    );
    let plain = RedisStore::open(&url(":s3cret@", port, "3"), &ks).unwrap();
    assert_eq!(plain.durables().unwrap().entries["k"], b"v");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis.sock");
    let _server =
        RedisServer::start_with_args(["--unixsocket".to_string(), path.display().to_string()])
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
    let ks = keyspace("from-url-unix");
    let socket = format!("redis+unix://{}?db=5&io_timeout=1s", path.display());
    round_trip(
        RedisStore::builder_from_url(&socket, &ks)
            .unwrap()
            .build()
            .unwrap(),
    );
    let db5 = RedisStore::open(&format!("redis+unix://{}?db=5", path.display()), &ks).unwrap();
    assert_eq!(db5.durables().unwrap().entries["k"], b"v");

    let error =
        RedisStore::builder_from_url(&url(":s3cret@", port, "?io_timout=1s"), &ks).unwrap_err();
    let text = durabledict_core::Report(&error).to_string();
    assert!(
        text.contains("unknown query parameter `io_timout`"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}
