//! Review of the store URLs: a password holding an unencoded `/`, `?` or `#` (which a URL
//! parser reads as the end of the user information) never shows in an error, its `Debug`, or
//! the text of a later failure; URLs whose `@` after the host part is not a password's still
//! open.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use durabledict::{OpenOptions, Report};

/// Pieces of the password, none of which may be shown. (A password holding both `@` and `/`,
/// `app:Zq9@Wv7/Kx4@host`, is not among them: `Wv7` reads as a host, as `user:1234@host/db?x=a@b`
/// legitimately does, and libpq's "could not translate host name" quotes it.)
const PIECES: [&str; 4] = ["Zq9", "Wv7", "Kx4", "Pm2"];

fn options() -> OpenOptions {
    OpenOptions::new().connect_timeout(Duration::from_millis(300))
}

/// Every text a failure of `url` shows: the open error (chain and `Debug`), else the errors of
/// a first use.
fn failure_text(url: &str) -> String {
    match durabledict::open_store(url, &options()) {
        Err(e) => format!("{} {e:?}", Report(&e)),
        Ok(store) => {
            let init = store.init().err();
            let get = store.get("k").err();
            format!(
                "opened: {init:?} {get:?} {:?} {:?}",
                init.as_ref().map(|e| Report(e).to_string()),
                get.as_ref().map(|e| Report(e).to_string())
            )
        }
    }
}

#[test]
#[cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "mysql",
    feature = "zookeeper"
))]
fn an_unencoded_password_is_never_shown() {
    for password in [
        "Zq9/Wv7",
        "Zq9?Wv7",
        "Zq9#Wv7",
        "Zq9/Wv7?Kx4#Pm2",
        "Zq9:Wv7/Kx4",
    ] {
        for template in [
            "redis://:PW@127.0.0.1:1/",
            "redis://alice:PW@127.0.0.1:1/0?io_timeout=1s",
            "postgres://app:PW@127.0.0.1:1/db",
            "postgresql://app:PW@127.0.0.1:1/db?sslmode=disable",
            "mysql://app:PW@127.0.0.1:1/db",
            "zk://app:PW@127.0.0.1:1/flags",
        ] {
            let url = template.replace("PW", password);
            let text = failure_text(&url);
            for piece in PIECES {
                assert!(!text.contains(piece), "{url}: {piece} shown in {text}");
            }
        }
    }
}

#[test]
#[cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "mysql",
    feature = "zookeeper"
))]
fn the_refusal_says_how_to_write_the_password() {
    let err = durabledict::open_store("redis://:Zq9/Wv7@127.0.0.1:1/", &options())
        .err()
        .unwrap();
    assert!(err.is_usage(), "{err:?}");
    let text = Report(&err).to_string();
    assert!(text.contains("percent-encode"), "{text}");
    assert!(text.contains("redis://:***@127.0.0.1:1/"), "{text}");
}

/// An `@` after servers with their ports is not a password's: these still open (connecting to
/// nothing until used) or fail for their own reason.
#[test]
#[cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "sqlite",
    feature = "zookeeper"
))]
fn an_at_sign_after_the_servers_is_still_read() {
    for url in [
        "postgres://app@127.0.0.1:1/db?application_name=me@host",
        "zk://127.0.0.1:1/flags@v2",
        "postgres://app:Zq9@127.0.0.1:1/db?application_name=me@host",
    ] {
        let text = failure_text(url);
        assert!(!text.contains("percent-encode"), "{url}: {text}");
        assert!(!text.contains("Zq9"), "{url}: {text}");
    }
    // A `://` in a query is no authority.
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "file:{}?vfs=unix&x=a://b@c:d",
        dir.path().join("f.db").display()
    );
    let text = failure_text(&url);
    assert!(!text.contains("percent-encode"), "{url}: {text}");
    let text = failure_text("zk://127.0.0.1:1,127.0.0.1:2/flags@v2");
    assert!(text.contains("could not connect"), "{text}");
    // An encoded password is read as it is.
    let text = failure_text("redis://:Zq9%2FWv7@127.0.0.1:1/");
    assert!(text.starts_with("opened"), "{text}");
    assert!(!text.contains("Zq9"), "{text}");
}

/// A duration past what a deadline (`Instant::now() + timeout`) or ZooKeeper's session
/// timeout (milliseconds in an `i32`) can hold is refused by name; it used to panic: r2d2's
/// pool wait on a SQL store's first use ("overflow when adding duration to instant"), the
/// ZooKeeper client on open ("attempt to multiply with overflow").
#[test]
#[cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "sqlite",
    feature = "zookeeper"
))]
fn a_duration_too_long_is_refused_by_name() {
    for (url, name) in [
        (
            "sqlite::memory:?connect_timeout=10000000000000000000s",
            "connect_timeout",
        ),
        (
            "postgres://app@127.0.0.1:1/db?connect_timeout=10000000000000000000",
            "connect_timeout",
        ),
        (
            "zk://127.0.0.1:1/x?session_timeout=10000000000000000000s&connect_timeout=1s",
            "session_timeout",
        ),
        ("redis://127.0.0.1:1/?io_timeout=1441m", "io_timeout"),
    ] {
        let opened = std::panic::catch_unwind(|| {
            durabledict::open_store(url, &options()).map(|store| store.init())
        });
        match opened {
            Ok(Err(err)) => {
                assert!(err.is_usage(), "{url}: {err:?}");
                let text = Report(&err).to_string();
                assert!(text.contains(&format!("`{name}`")), "{url}: {text}");
                assert!(text.contains("at most a day"), "{url}: {text}");
            }
            Ok(Ok(init)) => panic!("{url} opened (init: {init:?})"),
            Err(_) => panic!("{url} panicked"),
        }
    }
    // A day itself is taken.
    let store =
        durabledict::open_store("sqlite::memory:?connect_timeout=1440m", &options()).unwrap();
    store.init().unwrap();
}

/// A URL whose `:` was forgotten (`redis//host`) has no `:` at all, which is a bare SQLite
/// path: it used to be opened as the SQLite file `host` in a directory `redis` (created by a
/// writer when the directory exists; else a failure to open "redis//…" as a database, a store
/// error quoting the whole text, password included). Refused as the typo it is, naming the
/// scheme.
#[test]
#[cfg(all(
    feature = "redis",
    feature = "postgres",
    feature = "sqlite",
    feature = "zookeeper"
))]
fn a_scheme_without_its_colon_is_refused() {
    for (typo, scheme) in [
        ("redis//:Zq9@127.0.0.1:1/0", "redis://"),
        ("postgres//app:Zq9@127.0.0.1:1/db", "postgres://"),
        ("ZK//127.0.0.1:1/flags", "zk://"),
    ] {
        let err = match durabledict::open_store(typo, &options()).map(|s| s.init()) {
            Err(err) => err,
            Ok(init) => panic!("{typo} opened (init: {init:?})"),
        };
        assert!(err.is_usage(), "{typo}: {err:?}");
        let text = format!("{} {err:?}", Report(&err));
        assert!(text.contains(scheme), "{typo}: {text}");
        assert!(text.contains("`:` is missing"), "{typo}: {text}");
        assert!(!text.contains("Zq9"), "{typo}: {text}");
    }
    // A path merely holding `//` further on is still a path.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}//flags.db", dir.path().display());
    durabledict::open_store(&url, &options())
        .unwrap()
        .init()
        .unwrap();
    assert!(dir.path().join("flags.db").exists());
}

/// `rediss://…#insecure` was documented (docs/urls.md) and opened, but the redis client is
/// built without `tls-rustls-insecure`: every request then failed with "Cannot create insecure
/// client …". Refused at open, as a usage error saying what to do instead.
#[test]
#[cfg(feature = "redis-tls")]
fn rediss_insecure_is_refused_at_open() {
    let err = match durabledict::open_store("rediss://127.0.0.1:1/#insecure", &options()) {
        Err(err) => err,
        Ok(store) => panic!("opened; a request says: {:?}", store.get("k").err()),
    };
    assert!(err.is_usage(), "{err:?}");
    let text = Report(&err).to_string();
    assert!(text.contains("#insecure"), "{text}");
    assert!(text.contains("tls_root_certificate"), "{text}");
}

/// A driver's parameter given twice was passed on to the driver, where the last one wins
/// (libpq): `sslmode=require&sslmode=disable` did not require TLS, while docs/urls.md says a
/// parameter given twice is refused. Refused by name, as durabledict's own options are.
#[test]
#[cfg(all(feature = "redis", feature = "postgres", feature = "sqlite"))]
fn a_driver_parameter_given_twice_is_refused() {
    for (url, name) in [
        (
            "postgres://app@127.0.0.1:1/db?sslmode=require&application_name=x&sslmode=disable",
            "sslmode",
        ),
        (
            "redis://127.0.0.1:1/?protocol=resp3&protocol=resp2",
            "protocol",
        ),
        ("file:x.db?mode=ro&mode=rwc", "mode"),
        ("redis+unix:///tmp/r.sock?db=1&db=2", "db"),
    ] {
        let err = match durabledict::open_store(url, &options()) {
            Err(err) => err,
            Ok(_) => panic!("{url} opened"),
        };
        assert!(err.is_usage(), "{url}: {err:?}");
        let text = Report(&err).to_string();
        assert!(
            text.contains(&format!("query parameter `{name}` is given twice")),
            "{url}: {text}"
        );
    }
}

/// A password holding `@ : / ? # %`, a space, `+` and non-ASCII letters, percent-encoded in the
/// URL (raw non-ASCII letters too), authenticates against a real Redis ACL user (over TCP and a
/// Unix socket whose directory name has a space) and a ZooKeeper digest ACL, and shows neither
/// in the stores' `Debug` nor in a wrong password's error.
#[test]
#[cfg(all(feature = "redis", feature = "zookeeper"))]
fn encoded_passwords_authenticate_and_stay_hidden() {
    use durabledict::Store;
    use durabledict::zookeeper::{Acl, ZooKeeperUrl};

    const PASSWORD: &str = "Zq9@:/?#% +ñWv7";
    const ENCODED: &str = "Zq9%40%3A%2F%3F%23%25%20+%C3%B1Wv7";
    const ENCODED_QUERY: &str = "Zq9%40%3A%2F%3F%23%25%20%2B%C3%B1Wv7";
    let dir = tempfile::Builder::new()
        .prefix("review urls ")
        .tempdir()
        .unwrap();
    let socket = dir.path().join("redis.sock");
    let redis = durabledict_test_servers::RedisServer::start_with_args([
        "--user".to_owned(),
        "alice".to_owned(),
        "on".to_owned(),
        format!(">{PASSWORD}"),
        "~*".to_owned(),
        "+@all".to_owned(),
        "--unixsocket".to_owned(),
        socket.display().to_string(),
    ])
    .unwrap();
    let port = redis.port();
    let keyspace = OpenOptions::new().keyspace("review_auth");
    for url in [
        format!("redis://alice:{ENCODED}@127.0.0.1:{port}/"),
        format!(
            "redis://alice:{}@127.0.0.1:{port}/",
            ENCODED.replace("%C3%B1", "ñ")
        ),
        format!(
            "redis+unix://{}?user=alice&pass={ENCODED_QUERY}",
            socket.display()
        ),
    ] {
        let store = durabledict::open_store(&url, &keyspace).unwrap();
        store
            .init()
            .unwrap_or_else(|e| panic!("{url}: {}", Report(&e)));
        store.persist("k", b"v").unwrap();
        assert_eq!(store.get("k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(!format!("{store:?}").contains("Zq9"), "{store:?}");
    }
    let wrong = format!("redis://alice:x{ENCODED}@127.0.0.1:{port}/");
    let err = durabledict::open_store(&wrong, &keyspace)
        .unwrap()
        .init()
        .unwrap_err();
    let text = format!("{} {err:?}", Report(&err));
    assert!(text.contains("authentication"), "{text}");
    assert!(!text.contains("Zq9"), "{text}");

    // ZooKeeper: nodes only the digest's owner may read; the same password written raw (its
    // non-ASCII letter) is the same digest, a wrong one is refused.
    let zk = durabledict_test_servers::ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let store = |url: &str| {
        ZooKeeperUrl::parse(url)
            .unwrap()
            .builder("unused")
            .acl(Acl::creator_all())
            .build()
            .unwrap()
    };
    let owner = store(&format!("zk://alice:{ENCODED}@{connect}/review_auth"));
    owner.init().unwrap();
    owner.persist("k", b"v").unwrap();
    assert!(!format!("{owner:?}").contains("Zq9"), "{owner:?}");
    let raw = store(&format!(
        "zk://alice:{}@{connect}/review_auth",
        ENCODED.replace("%C3%B1", "ñ")
    ));
    assert_eq!(raw.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    let other = store(&format!("zk://alice:x{ENCODED}@{connect}/review_auth"));
    let err = other.get("k").unwrap_err();
    let text = format!("{} {err:?}", Report(&err));
    assert!(text.contains("NoAuth"), "{text}");
    assert!(!text.contains("Zq9"), "{text}");
}
