//! The query options of store URLs (docs/urls.md), given to `durabledict::open_store` and seen
//! taking effect on real servers: a Redis `max_idle=1` leaves one connection open (`CLIENT
//! LIST`), a Redis `io_timeout` ends a request to a paused server (`CLIENT PAUSE`), a
//! PostgreSQL `pool_size=1` opens one connection however many threads wait
//! (`pg_stat_activity`), a ZooKeeper `session_timeout` is the session's (`cons`), a `chroot`
//! roots the keyspace; and the SQLite forms the scheme table gained (a bare path, a `file:`
//! URI with SQLite's own `mode=ro`). Each is paired with the same URL without the option.

use std::time::{Duration, Instant};

use durabledict::{OpenOptions, Store, StoreErrorKind};

use crate::servers;

fn open_store(url: &str, options: &OpenOptions) -> Box<dyn Store> {
    durabledict::open_store(url, options).unwrap_or_else(|e| panic!("open_store {url}: {e}"))
}

/// Polls `f` until it returns `Some`, for up to `limit`.
fn within<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = f() {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(feature = "redis")]
mod redis {
    use std::sync::Arc;

    use durabledict::redis::redis;

    use super::*;

    /// A server of this test's own, so that `CLIENT LIST` counts this test's connections only.
    fn server() -> durabledict_test_servers::RedisServer {
        durabledict_test_servers::RedisServer::start()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
    }

    /// The clients connected, less the one asking.
    fn clients(raw: &mut redis::Connection) -> usize {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(raw).unwrap();
        list.lines().count() - 1
    }

    /// Four threads read at once while the server is paused, so each needs a connection of its
    /// own; returns how many stay open once they are done.
    fn connections_left(url: &str) -> usize {
        let store: Arc<dyn Store> =
            Arc::from(open_store(url, &OpenOptions::new().keyspace("pool")));
        store.init().unwrap();
        let mut raw = redis::Client::open(url.split('?').next().unwrap())
            .unwrap()
            .get_connection()
            .unwrap();
        let () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1000)
            .arg("ALL")
            .query(&mut raw)
            .unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || store.durables().map(|_| ()))
            })
            .collect();
        for reader in readers {
            reader.join().unwrap().unwrap();
        }
        // Closed connections leave the list once the server has seen them close.
        std::thread::sleep(Duration::from_millis(200));
        let left = clients(&mut raw);
        drop(store);
        left
    }

    #[test]
    fn max_idle_bounds_the_connections_kept_open() {
        let server = server();
        let url = server.url();
        assert_eq!(connections_left(&url), 4, "without max_idle");
        let server = self::server();
        assert_eq!(connections_left(&format!("{}?max_idle=1", server.url())), 1);
    }

    #[test]
    fn io_timeout_ends_a_request_to_a_paused_server() {
        let server = server();
        let options = OpenOptions::new().keyspace("paused");
        let quick = open_store(&format!("{}?io_timeout=200ms", server.url()), &options);
        let patient = open_store(&server.url(), &options);
        quick.init().unwrap();
        patient.init().unwrap();
        let mut raw = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        let () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(2000)
            .arg("ALL")
            .query(&mut raw)
            .unwrap();
        let paused = Instant::now();
        let err = quick.last_updated().unwrap_err();
        let quick_took = paused.elapsed();
        assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
        assert!(
            quick_took >= Duration::from_millis(200) && quick_took < Duration::from_millis(1500),
            "io_timeout=200ms: failed after {quick_took:?}"
        );
        // The default (5 s) waits the pause out.
        patient.last_updated().unwrap();
        let patient_took = paused.elapsed();
        assert!(
            patient_took >= Duration::from_millis(1900),
            "default io_timeout: answered after {patient_took:?}"
        );
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::process::Command;
    use std::sync::Arc;

    use super::*;

    fn psql(url: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args([url, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The most connections of application `name` waiting at once on a lock of the table, while
    /// four threads read through a store on `url` and another session holds the lock.
    fn connections_waiting(base: &str, query: &str, name: &str) -> usize {
        let table = servers::keyspace("pool");
        let url = format!("{base}?application_name={name}&connect_timeout=10s{query}");
        let store: Arc<dyn Store> =
            Arc::from(open_store(&url, &OpenOptions::new().keyspace(&table)));
        store.init().unwrap();
        let locker = {
            let base = base.to_owned();
            let table = table.clone();
            std::thread::spawn(move || {
                psql(
                    &base,
                    &format!(
                        "BEGIN; LOCK TABLE \"{table}\" IN ACCESS EXCLUSIVE MODE; \
                         SELECT pg_sleep(3); COMMIT;"
                    ),
                )
            })
        };
        within(Duration::from_secs(5), || {
            (psql(
                base,
                &format!(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON l.relation = c.oid \
                     WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
                ),
            ) == "1")
                .then_some(())
        })
        .expect("the lock was taken");
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || store.durables().map(|_| ()))
            })
            .collect();
        let mut most = 0;
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            let waiting: usize = psql(
                base,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}' \
                     AND wait_event_type = 'Lock'"
                ),
            )
            .parse()
            .unwrap();
            most = most.max(waiting);
            std::thread::sleep(Duration::from_millis(50));
        }
        locker.join().unwrap();
        for reader in readers {
            reader.join().unwrap().unwrap();
        }
        most
    }

    #[test]
    fn pool_size_bounds_the_connections_opened() {
        let base = servers::postgres().url();
        assert_eq!(
            connections_waiting(&base, "", "e2e_pool_default"),
            4,
            "the default pool (4)"
        );
        assert_eq!(
            connections_waiting(&base, "&pool_size=1", "e2e_pool_one"),
            1
        );
    }
}

#[cfg(feature = "zookeeper")]
mod zookeeper {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use durabledict::Value;

    use super::*;

    /// The negotiated session timeouts (`to=`, in ms) of the server's connections.
    fn session_timeouts(connect: &str) -> Vec<u64> {
        let mut conn = TcpStream::connect(connect).unwrap();
        conn.write_all(b"cons").unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        answer
            .split(",to=")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn session_timeout_is_the_sessions() {
        let connect = servers::zookeeper();
        let options = OpenOptions::new().keyspace(servers::keyspace("session"));
        // 3700 ms: within what the test server grants (2 to 20 ticks of 500 ms), and a value
        // no other test asks for.
        assert!(!session_timeouts(&connect).contains(&3700));
        let default = open_store(&format!("zk://{connect}"), &options);
        assert!(!session_timeouts(&connect).contains(&3700), "the default");
        let store = open_store(&format!("zk://{connect}?session_timeout=3700ms"), &options);
        assert!(session_timeouts(&connect).contains(&3700));
        drop((store, default));
        assert!(
            within(Duration::from_secs(5), || {
                (!session_timeouts(&connect).contains(&3700)).then_some(())
            })
            .is_some(),
            "the session ended with its store"
        );
    }

    #[test]
    fn chroot_roots_the_keyspace() {
        let connect = servers::zookeeper();
        let root = format!("/{}", servers::keyspace("chroot"));
        let options = OpenOptions::new();
        let outside = durabledict::open(&format!("zk://{connect}{root}/flags"), &options).unwrap();
        let inside =
            durabledict::open(&format!("zk://{connect}/flags?chroot={root}"), &options).unwrap();
        inside.insert("k", Value::String("v".into())).unwrap();
        assert!(
            within(Duration::from_secs(5), || {
                outside.get("k").unwrap().is_some().then_some(())
            })
            .is_some(),
            "a write under the chroot is seen at {root}/flags"
        );
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use durabledict::Value;

    use super::*;

    /// A path without a scheme and a `file:` URI (SQLite's `mode=ro` passed on) name the file
    /// `sqlite:PATH` names; durabledict's options in a `file:` URI are taken out.
    #[test]
    fn bare_paths_and_file_uris_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forms.db").display().to_string();
        assert!(!path.contains(':'));
        let options = OpenOptions::new().keyspace("forms");
        let bare = durabledict::open(&path, &options).unwrap();
        bare.insert("k", Value::String("v".into())).unwrap();
        let read_only = durabledict::open(
            &format!("file:{path}?mode=ro&busy_timeout=100ms&pool_size=1"),
            &options,
        )
        .unwrap();
        assert_eq!(
            read_only.get("k").unwrap().as_deref(),
            Some(&Value::String("v".into()))
        );
        let err = read_only
            .insert("k", Value::String("w".into()))
            .unwrap_err();
        assert!(
            durabledict::Report(&err).to_string().contains("readonly")
                || durabledict::Report(&err).to_string().contains("read-only")
                || durabledict::Report(&err).to_string().contains("read only"),
            "{}",
            durabledict::Report(&err)
        );
        let plain = durabledict::open(&format!("sqlite:{path}"), &options).unwrap();
        assert_eq!(
            plain.get("k").unwrap().as_deref(),
            Some(&Value::String("v".into()))
        );
    }
}
