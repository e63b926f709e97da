//! The PostgreSQL change feed (`LISTEN` and the stamps table's trigger) under `SyncPolicy::Watch`
//! against a real server: another process's write and a raw SQL write are heard, a restart
//! and a terminated listener never let a read serve a value older than a write that returned,
//! and a role that may not create the trigger gets no feed (and still sees every write).
//!
//! Writers and readers use two spellings of one URL (`postgres://` and `postgresql://`): the
//! store notifies the feeds of this process on the same URL before a write returns, and these
//! tests are about what the server pushes, as between two processes.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use common::{execute, kill_listeners, query_i64, table_name, wait_until, watch};
use durabledict_core::{DurableDict, Feed, Raw, Store, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
    })
}

/// The other spelling of `url`'s scheme (see the module's docs).
fn other_spelling(url: &str) -> String {
    url.replacen("postgres://", "postgresql://", 1)
}

fn store(url: &str, table: &str) -> SqlStore {
    SqlStore::builder(url)
        .table(table)
        .connection_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn manual(store: SqlStore) -> DurableDict<String> {
    DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap()
}

fn up(feed: &Feed) -> bool {
    feed.state().is_up()
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| (*v).clone())
}

/// Another store's write reaches a `Watch` dict through the server's notice, and between
/// notices the dict's reads make no request (the feed stays up, its notice count unchanged).
#[test]
fn another_stores_write_is_heard() {
    let url = server().url();
    let table = table_name("heard");
    let reader_store = store(&url, &table);
    let dict = watch(reader_store.clone());
    let feed = reader_store
        .feed()
        .expect("PostgreSQL with the SQL-row stamp has a feed");
    wait_until(Duration::from_secs(5), "the feed comes up", || up(&feed));
    let writer = manual(store(&other_spelling(&url), &table));
    for i in 0..20 {
        writer.insert("k", i.to_string()).unwrap();
        wait_until(Duration::from_secs(2), "the write is heard", || {
            read(&dict, "k") == Some(i.to_string())
        });
    }
    let quiet = feed.state();
    for _ in 0..1000 {
        assert_eq!(read(&dict, "k").as_deref(), Some("19"));
    }
    assert_eq!(feed.state(), quiet, "reads between changes hear nothing");
    reader_store.drop_keyspace().unwrap();
}

/// Another program writing the rows and bumping the stamp row in SQL is heard through the
/// trigger, whether it bumps in the same transaction or in a later one.
#[test]
fn a_raw_sql_write_is_heard_through_the_trigger() {
    let url = server().url();
    let table = table_name("raw");
    let reader_store = store(&url, &table);
    let dict = watch(reader_store.clone());
    let feed = reader_store.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || up(&feed));
    assert_eq!(
        query_i64(
            &url,
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('durabledict_stamps') \
             AND tgname LIKE 'durabledict_notify%'"
        )
        .unwrap(),
        2,
        "init made the triggers"
    );
    let bump =
        format!("UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'");
    execute(
        &url,
        &format!(
            "BEGIN; INSERT INTO \"{table}\" (key, value) VALUES ('py', 'one'::bytea); {bump}; COMMIT"
        ),
    )
    .unwrap();
    wait_until(Duration::from_secs(2), "a raw write is heard", || {
        read(&dict, "py").as_deref() == Some("one")
    });
    // Rows first, the bump in a later transaction: heard at the bump.
    execute(
        &url,
        &format!("UPDATE \"{table}\" SET value = 'two'::bytea WHERE key = 'py'"),
    )
    .unwrap();
    execute(&url, &bump).unwrap();
    wait_until(Duration::from_secs(2), "a later bump is heard", || {
        read(&dict, "py").as_deref() == Some("two")
    });
    reader_store.drop_keyspace().unwrap();
}

/// `pg_terminate_backend` of the listener: the feed is marked lost at once, comes back on a
/// new connection, and a write made while it was away is served.
#[test]
fn a_terminated_listener_is_lost_and_comes_back() {
    let url = server().url();
    let table = table_name("killed");
    let reader_store = store(&url, &table);
    let dict = watch(reader_store.clone());
    let feed = reader_store.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || up(&feed));
    let writer = manual(store(&other_spelling(&url), &table));
    writer.insert("k", "before".into()).unwrap();
    wait_until(Duration::from_secs(2), "heard", || {
        read(&dict, "k").as_deref() == Some("before")
    });
    for round in 0..3 {
        let killed_at = SystemTime::now();
        assert_eq!(
            kill_listeners(&url, &table).unwrap(),
            1,
            "one listener per store"
        );
        // The loss is noticed as the connection closes, before anything else can happen.
        wait_until(Duration::from_millis(500), "the loss is noticed", || {
            feed.lost_at().is_some_and(|at| at >= killed_at)
        });
        let value = format!("after kill {round}");
        writer.insert("k", value.clone()).unwrap();
        assert_eq!(
            read(&dict, "k"),
            Some(value),
            "a write after the kill is served"
        );
        wait_until(Duration::from_secs(5), "the feed comes back", || up(&feed));
    }
    writer.insert("k", "last".into()).unwrap();
    wait_until(
        Duration::from_secs(2),
        "heard on the new connection",
        || read(&dict, "k").as_deref() == Some("last"),
    );
    reader_store.drop_keyspace().unwrap();
}

/// How long a notice may take between processes in the restart test: a read that began this
/// long after a write returned must serve it (or something newer).
const LAG: Duration = Duration::from_millis(200);

/// PostgreSQL restarts under four threads reading through `Watch` dicts while a writer in
/// "another process" writes increasing numbers: no read serves a number older than one whose
/// write returned [`LAG`] before the read began (reads may fail while the server is down), and
/// the last write, made after the restart, is served by every reader.
#[test]
fn a_restart_under_concurrent_readers_serves_no_stale_value() {
    let mut pg = Postgres::start().unwrap();
    let url = pg.url();
    let table = table_name("restart");
    let reader_store = store(&url, &table);
    let writer = manual(store(&other_spelling(&url), &table));
    writer.insert("n", "0".into()).unwrap();
    let dicts: Vec<DurableDict<String>> = (0..4).map(|_| watch(reader_store.clone())).collect();
    let feed = reader_store.feed().unwrap();
    wait_until(Duration::from_secs(5), "the feed comes up", || up(&feed));

    // (when the write returned, its number), newest last; `floor` follows it LAG behind.
    let history = Arc::new(std::sync::Mutex::new(vec![(Instant::now(), 0u64)]));
    let floor = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(u64::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let (stale, reads, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let keeper = {
        let (history, floor, done) = (Arc::clone(&history), Arc::clone(&floor), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                let now = Instant::now();
                let history = history.lock().unwrap();
                if let Some((_, n)) = history
                    .iter()
                    .rev()
                    .find(|(at, _)| now.duration_since(*at) >= LAG)
                {
                    floor.store(*n, Ordering::Release);
                }
                drop(history);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let readers: Vec<_> = dicts
        .into_iter()
        .map(|dict| {
            let (floor, last, done) = (Arc::clone(&floor), Arc::clone(&last), Arc::clone(&done));
            let (stale, reads, failed) =
                (Arc::clone(&stale), Arc::clone(&reads), Arc::clone(&failed));
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    let floor = floor.load(Ordering::Acquire);
                    match dict.get("n") {
                        Ok(Some(v)) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                            if v.parse::<u64>().unwrap() < floor {
                                stale.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(None) => panic!("the key vanished"),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                let last = last.load(Ordering::Acquire).to_string();
                wait_until(
                    Duration::from_secs(2),
                    "every reader serves the last write",
                    || read(&dict, "n").as_deref() == Some(last.as_str()),
                );
            })
        })
        .collect();
    let write = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.insert("n", n.to_string()).is_err() {
            assert!(Instant::now() < deadline, "the writer never got through");
            std::thread::sleep(Duration::from_millis(5));
        }
        history.lock().unwrap().push((Instant::now(), n));
    };
    let mut n = 0;
    for _ in 0..50 {
        n += 1;
        write(n);
        std::thread::sleep(Duration::from_millis(2));
    }
    pg.stop();
    let restarted = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            // Long enough for the listener's back-off to reach its 2 s ceiling: the writer
            // gets through long before the listener is back, and the readers must not have
            // taken the feed for up meanwhile.
            std::thread::sleep(Duration::from_millis(2500));
            pg.restart().unwrap();
        });
        // Writes go through as soon as the server is back.
        for _ in 0..100 {
            n += 1;
            write(n);
            std::thread::sleep(Duration::from_millis(2));
        }
        handle.join().is_ok()
    });
    assert!(restarted, "the restart failed");
    wait_until(Duration::from_secs(10), "the feed comes back", || up(&feed));
    for _ in 0..50 {
        n += 1;
        write(n);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(LAG * 2);
    last.store(n, Ordering::Release);
    done.store(true, Ordering::Release);
    keeper.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    let (stale, reads, failed) = (
        stale.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("{reads} reads, {failed} failed while the server was down, {stale} stale");
    assert_eq!(stale, 0, "stale reads out of {reads}");
    assert!(reads > 1000, "the readers read: {reads}");
}

/// A role that may not create the trigger (it owns neither the stamps table nor may create in
/// the schema) builds its dicts, but its feed stays down: a `Watch` dict then checks the stamp
/// on every read and serves a foreign write at once. Once an administrator's `init` made the
/// trigger, the feed comes up by itself.
#[test]
fn a_role_without_trigger_rights_has_no_live_feed_yet_sees_every_write() {
    let database = table_name("notrigger");
    let admin_url = server().create_database(&database).unwrap();
    let admin_store = store(&admin_url, "flags");
    admin_store.init().unwrap();
    execute(
        &admin_url,
        "DROP TRIGGER durabledict_notify ON durabledict_stamps; \
         DROP TRIGGER durabledict_notify_truncate ON durabledict_stamps",
    )
    .unwrap();
    let app = format!("{database}_app");
    execute(
        &admin_url,
        &format!(
            "CREATE ROLE {app} LOGIN; GRANT USAGE ON SCHEMA public TO {app}; \
             REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON flags, durabledict_stamps TO {app}"
        ),
    )
    .unwrap();
    let app_url = admin_url.replacen("://postgres@", &format!("://{app}@"), 1);
    let app_store = store(&app_url, "flags");
    let dict = watch(app_store.clone());
    let feed = app_store.feed().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !up(&feed),
        "without the trigger the feed must not claim to be up"
    );
    for i in 0..10 {
        execute(
            &admin_url,
            &format!(
                "BEGIN; INSERT INTO flags (key, value) VALUES ('k', '{i}'::bytea) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value; \
                 UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = 'flags'; COMMIT"
            ),
        )
        .unwrap();
        assert_eq!(
            read(&dict, "k"),
            Some(i.to_string()),
            "a foreign write is served at once"
        );
    }
    // An administrator's init makes the trigger; the app's feed notices.
    store(&other_spelling(&admin_url), "flags").init().unwrap();
    wait_until(
        Duration::from_secs(5),
        "the feed comes up once the trigger exists",
        || up(&feed),
    );
    let writer = manual(store(&other_spelling(&admin_url), "flags"));
    writer.insert("k", "pushed".into()).unwrap();
    wait_until(Duration::from_secs(2), "heard through the feed", || {
        read(&dict, "k").as_deref() == Some("pushed")
    });
}

/// Stores without a feed: an external stamp (a notice at commit would come before the stamp's
/// bump), and a URL whose TLS mode the listener cannot meet.
#[test]
fn stores_that_cannot_push_offer_no_feed() {
    let url = server().url();
    let external = SqlStore::builder(&url)
        .table(table_name("external"))
        .stamp(common::memcache_stamp(
            &common::memcached_addr(),
            "external",
        ))
        .build()
        .unwrap();
    assert!(external.feed().is_none());
    let tls = SqlStore::builder(format!("{url}?sslmode=require"))
        .table(table_name("tls"))
        .build()
        .unwrap();
    assert!(tls.feed().is_none());
}
