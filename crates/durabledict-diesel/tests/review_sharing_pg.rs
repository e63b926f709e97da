//! Review of the shared checks and loads of a feed (`Store::feed_shares_reads`) and the feed's keeper thread on PostgreSQL, against a real server:
//! a read after an own write never shares an answer requested before it, two keyspaces on one
//! database never share, and subscribed dicts hear every change through a restart, from one
//! keeper thread that ends with the subscriptions.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{execute, kill_listeners, table_name, wait_until, watch};
use durabledict_core::{DurableDict, Event, Raw, Store, Subscription, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| {
        Postgres::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"))
    })
}

/// Tests that count this process's threads run one at a time (`cargo test` runs the tests
/// of a file as threads of one process).
static THREADS: Mutex<()> = Mutex::new(());

fn store(url: &str, table: &str) -> SqlStore {
    SqlStore::builder(url)
        .table(table)
        .connection_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

fn contents(dict: &DurableDict<String>) -> BTreeMap<String, String> {
    dict.iter()
        .unwrap()
        .map(|(k, v)| (k, (*v).clone()))
        .collect()
}

/// This process's threads whose name starts with `prefix` (as `/proc` shows it: cut to 15
/// bytes).
fn threads_named(prefix: &str) -> usize {
    let prefix = &prefix[..prefix.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end().starts_with(prefix))
        .count()
}

/// A write by "another program" (its own connection): a row and the stamp, in one
/// transaction, as this crate writes; heard through the trigger.
fn foreign_write(url: &str, table: &str, key: &str, value: &str) {
    execute(
        url,
        &format!(
            "BEGIN; INSERT INTO \"{table}\" (key, value) VALUES ('{key}', '{value}'::bytea) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ),
    )
    .unwrap();
}

/// Applies the events a subscription has buffered to `seen`.
fn drain(subscription: &Subscription<String>, seen: &mut BTreeMap<String, String>) {
    while let Some(event) = subscription.try_next() {
        match event {
            Event::Changed(change) => match change.new {
                Some(new) => {
                    seen.insert(change.key.to_string(), (*new).clone());
                }
                None => {
                    seen.remove(&*change.key);
                }
            },
            other => panic!("a subscription with room for every change got {other:?}"),
        }
    }
}

/// Every kind of write, through a dict on the same store handle, on a clone and on another
/// handle of the same URL, while twelve `Watch` dicts on one sharing feed are read without
/// pause by other threads (so that shared checks and loads are in flight at every moment):
/// right after each write returns, every dict serves it. A read that shared a check or a load
/// requested before the write would serve the value before it.
#[test]
fn every_own_write_is_served_at_once_by_every_dict_on_the_feed() {
    let url = server().url();
    let table = table_name("own");
    let handle = store(&url, &table);
    let readers: Arc<Vec<DurableDict<String>>> =
        Arc::new((0..12).map(|_| watch(handle.clone())).collect());
    let feed = handle.feed().unwrap();
    wait_until(Duration::from_secs(10), "the feed comes up", || {
        feed.state().is_up()
    });
    let same_handle = watch(handle.clone());
    let other_handle = watch(store(&url, &table));
    let done = Arc::new(AtomicBool::new(false));
    let hammer: Vec<_> = (0..3)
        .map(|t| {
            let (readers, done) = (Arc::clone(&readers), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut i = t;
                while !done.load(Ordering::Acquire) {
                    let _ = readers[i % readers.len()].get("k");
                    i += 1;
                }
            })
        })
        .collect();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let check = |expected: &BTreeMap<String, String>, round: usize, what: &str| {
        for (i, dict) in readers.iter().enumerate() {
            assert_eq!(
                &contents(dict),
                expected,
                "round {round}, after {what}: reader {i} serves what was there before"
            );
        }
    };
    for round in 0..40 {
        let writer = match round % 3 {
            0 => &same_handle,
            1 => &other_handle,
            _ => &readers[round % readers.len()],
        };
        let value = format!("v{round}");
        writer.insert("k", value.clone()).unwrap();
        expected.insert("k".into(), value.clone());
        check(&expected, round, "insert");
        writer
            .update([("a", format!("a{round}")), ("b", format!("b{round}"))])
            .unwrap();
        expected.insert("a".into(), format!("a{round}"));
        expected.insert("b".into(), format!("b{round}"));
        check(&expected, round, "update");
        assert_eq!(
            writer.remove("a").unwrap().as_deref(),
            Some(&format!("a{round}"))
        );
        expected.remove("a");
        check(&expected, round, "remove");
        assert_eq!(*writer.pop("b").unwrap(), format!("b{round}"));
        expected.remove("b");
        check(&expected, round, "pop");
        assert_eq!(*writer.setdefault("s", value.clone()).unwrap(), value);
        expected.insert("s".into(), value.clone());
        check(&expected, round, "setdefault");
        if round % 4 == 3 {
            writer.clear().unwrap();
            expected.clear();
            check(&expected, round, "clear");
        } else {
            writer.remove("s").unwrap();
            expected.remove("s");
            check(&expected, round, "remove");
        }
    }
    done.store(true, Ordering::Release);
    for thread in hammer {
        thread.join().unwrap();
    }
    handle.drop_keyspace().unwrap();
}

/// Two keyspaces (tables) on one database, each with dicts on its own store, written by this
/// process and by another program at once: each dict only ever holds its own keyspace's keys
/// (a feed shared between them, or a load handed from one to the other, would show the other's
/// key).
#[test]
fn two_keyspaces_on_one_database_never_share() {
    let url = server().url();
    let (ta, tb) = (table_name("ks_a"), table_name("ks_b"));
    let (sa, sb) = (store(&url, &ta), store(&url, &tb));
    let a: Arc<Vec<DurableDict<String>>> = Arc::new((0..4).map(|_| watch(sa.clone())).collect());
    let b: Arc<Vec<DurableDict<String>>> = Arc::new((0..4).map(|_| watch(sb.clone())).collect());
    let (fa, fb) = (sa.feed().unwrap(), sb.feed().unwrap());
    assert!(!Arc::ptr_eq(&fa, &fb), "one feed per keyspace");
    wait_until(Duration::from_secs(10), "both feeds come up", || {
        fa.state().is_up() && fb.state().is_up()
    });
    let done = Arc::new(AtomicBool::new(false));
    let wrong = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = [(Arc::clone(&a), "b_"), (Arc::clone(&b), "a_")]
        .into_iter()
        .map(|(dicts, foreign)| {
            let (done, wrong) = (Arc::clone(&done), Arc::clone(&wrong));
            std::thread::spawn(move || {
                let mut i = 0;
                while !done.load(Ordering::Acquire) {
                    let keys = dicts[i % dicts.len()].keys().unwrap();
                    if keys.iter().any(|k| k.starts_with(foreign)) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for n in 0..60 {
        a[n % 4].insert(&format!("a_{n}"), n.to_string()).unwrap();
        foreign_write(&url, &tb, &format!("b_{n}"), &n.to_string());
        b[n % 4]
            .insert(&format!("b_own_{n}"), n.to_string())
            .unwrap();
        foreign_write(&url, &ta, &format!("a_foreign_{n}"), &n.to_string());
    }
    wait_until(Duration::from_secs(10), "every write is heard", || {
        a.iter().all(|d| d.len().unwrap() == 120) && b.iter().all(|d| d.len().unwrap() == 120)
    });
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "a dict held another keyspace's key"
    );
    for dict in a.iter() {
        assert!(dict.keys().unwrap().iter().all(|k| k.starts_with("a_")));
    }
    for dict in b.iter() {
        assert!(dict.keys().unwrap().iter().all(|k| k.starts_with("b_")));
    }
    sa.drop_keyspace().unwrap();
    sb.drop_keyspace().unwrap();
}

/// Six subscribed `Watch` dicts on one PostgreSQL store are kept current by one keeper thread
/// (no thread of their own); they hear every change, of this process and of another program,
/// through `pg_terminate_backend` of the listener and a server restart with writes made while
/// the listener was away; and the keeper thread ends once the subscriptions are dropped.
#[test]
fn subscribed_dicts_hear_every_change_through_restarts_from_one_keeper() {
    let _alone = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let mut pg = Postgres::start().unwrap();
    let url = pg.url();
    let table = table_name("keeper");
    let handle = store(&url, &table);
    // Another handle (a listener of its own only under `Watch`): its writes notify this
    // handle's feed in-process.
    let writer = DurableDict::<String>::builder(store(&url, &table), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    let dicts: Vec<Arc<DurableDict<String>>> =
        (0..6).map(|_| Arc::new(watch(handle.clone()))).collect();
    let feed = handle.feed().unwrap();
    wait_until(Duration::from_secs(10), "the feed comes up", || {
        feed.state().is_up()
    });
    let (keepers, listens) = (
        threads_named("durabledict-feed-keeper"),
        threads_named("durabledict-listen"),
    );
    let subscriptions: Vec<Subscription<String>> = dicts
        .iter()
        .map(|dict| dict.subscribe_with_capacity(10_000))
        .collect();
    // A new thread names itself once it runs.
    wait_until(Duration::from_secs(5), "a keeper thread starts", || {
        threads_named("durabledict-feed-keeper") > keepers
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        threads_named("durabledict-feed-keeper"),
        keepers + 1,
        "one keeper thread for the six dicts"
    );
    assert_eq!(
        threads_named("durabledict-listen"),
        listens,
        "no thread of their own"
    );
    let mut expected = BTreeMap::new();
    let mut seen: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); dicts.len()];
    let mut heard = |expected: &BTreeMap<String, String>, what: &str| {
        wait_until(Duration::from_secs(15), what, || {
            for (subscription, seen) in subscriptions.iter().zip(seen.iter_mut()) {
                drain(subscription, seen);
            }
            seen.iter().all(|seen| seen == expected)
        });
    };
    for n in 0..20 {
        writer
            .insert(&format!("own{}", n % 5), n.to_string())
            .unwrap();
        expected.insert(format!("own{}", n % 5), n.to_string());
        foreign_write(&url, &table, &format!("py{}", n % 3), &n.to_string());
        expected.insert(format!("py{}", n % 3), n.to_string());
    }
    heard(&expected, "every change is announced");

    assert_eq!(kill_listeners(&url, &table).unwrap(), 1);
    foreign_write(&url, &table, "while_killed", "1");
    expected.insert("while_killed".into(), "1".into());
    heard(
        &expected,
        "a write while the listener was away is announced",
    );
    wait_until(Duration::from_secs(10), "the feed comes back", || {
        feed.state().is_up()
    });

    pg.stop();
    pg.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while execute(&url, "SELECT 1").is_err() {
        assert!(Instant::now() < deadline, "the server did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Before the listener is back (its back-off): only polling can hear this one.
    foreign_write(&url, &table, "after_restart", "1");
    expected.insert("after_restart".into(), "1".into());
    heard(&expected, "a write right after the restart is announced");
    wait_until(Duration::from_secs(15), "the feed comes back", || {
        feed.state().is_up()
    });
    for n in 0..10 {
        foreign_write(&url, &table, &format!("py{}", n % 3), &format!("r{n}"));
        expected.insert(format!("py{}", n % 3), format!("r{n}"));
        writer.remove(&format!("own{n}")).unwrap();
        expected.remove(&format!("own{n}"));
    }
    heard(&expected, "every change after the restart is announced");
    for dict in &dicts {
        assert_eq!(contents(dict), expected);
    }

    drop(subscriptions);
    wait_until(
        Duration::from_secs(10),
        "the keeper thread ends with the subscriptions",
        || threads_named("durabledict-feed-keeper") == keepers,
    );
    // The dicts still read, and subscribing again starts a keeper again.
    let again = dicts[0].subscribe();
    wait_until(
        Duration::from_secs(5),
        "a keeper thread starts again",
        || threads_named("durabledict-feed-keeper") == keepers + 1,
    );
    foreign_write(&url, &table, "again", "1");
    let mut one = BTreeMap::new();
    wait_until(Duration::from_secs(10), "a new subscription hears", || {
        drain(&again, &mut one);
        one.get("again").map(String::as_str) == Some("1")
    });
    drop(again);
    drop(dicts);
    wait_until(
        Duration::from_secs(10),
        "the keeper thread ends with the dicts",
        || threads_named("durabledict-feed-keeper") == keepers,
    );
    handle.drop_keyspace().unwrap();
}

/// Two subscribed `Watch` dicts on one store. A write of dict `a` waits on a row lock that
/// another program's open transaction holds (it holds `a`'s update lock meanwhile); another
/// program's write to another key commits. Dict `b`'s subscription hears it: `b` does not wait
/// for `a`'s write. (With one keeper thread per feed, the round waited for `a`'s update lock and
/// `b` heard nothing until the transaction ended; fixed in core by 1fcafa4, found on Redis.)
#[test]
fn a_dict_whose_write_waits_on_a_row_lock_keeps_no_other_dict_deaf() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    // It starts a keeper thread, which the tests counting them must not see.
    let _alone = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let url = server().url();
    let table = table_name("rowlock");
    let handle = store(&url, &table);
    let a = Arc::new(watch(handle.clone()));
    let b = Arc::new(watch(handle.clone()));
    a.insert("locked", "0".into()).unwrap();
    let feed = handle.feed().unwrap();
    wait_until(Duration::from_secs(10), "the feed comes up", || {
        feed.state().is_up()
    });
    // `a` first: its turn comes first in a round over both.
    let _sub_a = a.subscribe();
    let sub_b = b.subscribe();
    let mut holder = diesel::pg::PgConnection::establish(&url).unwrap();
    holder
        .batch_execute(&format!(
            "BEGIN; UPDATE \"{table}\" SET value = 'held'::bytea WHERE key = 'locked'"
        ))
        .unwrap();
    let writer = {
        let a = Arc::clone(&a);
        std::thread::spawn(move || a.insert("locked", "1".into()))
    };
    wait_until(
        Duration::from_secs(10),
        "a's write waits on the row lock",
        || {
            common::query_i64(
                &url,
                &format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE '%{table}%'"
                ),
            )
            .unwrap()
                == 1
        },
    );

    foreign_write(&url, &table, "other", "1");
    let mut seen = BTreeMap::new();
    let heard = Instant::now();
    let mut got = false;
    while heard.elapsed() < Duration::from_secs(10) {
        drain(&sub_b, &mut seen);
        if seen.get("other").map(String::as_str) == Some("1") {
            got = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.batch_execute("ROLLBACK").unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        got,
        "b's subscription did not hear another program's write within 10 s"
    );
    handle.drop_keyspace().unwrap();
}

/// Writes of this process (through another dict of the same handle, and through another
/// handle of the same URL) while eight `Watch` dicts on one sharing feed are read without
/// pause, and the server terminates the store's pool connections and now and then its
/// listener (`pg_terminate_backend`: an epoch change, or the feed lost, while shared requests
/// are in flight): no read that began after a write returned serves an older value. (Reads
/// may fail when every retry met a terminated connection; they are counted.)
#[test]
fn own_writes_are_never_served_stale_while_connections_are_terminated() {
    let table = table_name("terminated");
    // A database of its own: the connections it terminates are only this test's.
    let url = server().create_database(&table).unwrap();
    let handle = store(&url, &table);
    let manual = |store: SqlStore| {
        DurableDict::<String>::builder(store, Raw)
            .policy(SyncPolicy::Manual)
            .build()
            .unwrap()
    };
    let writers = [manual(handle.clone()), manual(store(&url, &table))];
    writers[0].insert("n", "0".into()).unwrap();
    let dicts: Arc<Vec<DurableDict<String>>> =
        Arc::new((0..8).map(|_| watch(handle.clone())).collect());
    let feed = handle.feed().unwrap();
    wait_until(Duration::from_secs(10), "the feed comes up", || {
        feed.state().is_up()
    });
    let floor = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (stale, reads, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let (dicts, floor, done) = (Arc::clone(&dicts), Arc::clone(&floor), Arc::clone(&done));
            let (stale, reads, failed) =
                (Arc::clone(&stale), Arc::clone(&reads), Arc::clone(&failed));
            std::thread::spawn(move || {
                let mut i = t;
                while !done.load(Ordering::Acquire) {
                    let floor = floor.load(Ordering::Acquire);
                    match dicts[i % dicts.len()].get("n") {
                        Ok(Some(v)) => {
                            reads.fetch_add(1, Ordering::Relaxed);
                            if v.parse::<u64>().unwrap() < floor {
                                stale.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(None) => panic!("the key vanished"),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let killer = {
        let (url, table, done) = (url.clone(), table.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut round = 0u32;
            while !done.load(Ordering::Acquire) {
                round += 1;
                let listener = if round.is_multiple_of(10) {
                    String::new()
                } else {
                    format!(
                        "AND application_name <> '{}'",
                        common::listener_name(&table)
                    )
                };
                let _ = common::query_i64(
                    &url,
                    &format!(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = current_database() AND pid <> pg_backend_pid() \
                         AND backend_type = 'client backend' {listener}"
                    ),
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(5) {
        n += 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        // A write whose connection was terminated may or may not have committed: written again
        // until one returns.
        while writers[(n % 2) as usize]
            .insert("n", n.to_string())
            .is_err()
        {
            assert!(Instant::now() < deadline, "the writer never got through");
        }
        floor.store(n, Ordering::Release);
    }
    done.store(true, Ordering::Release);
    killer.join().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    let (stale, reads, failed) = (
        stale.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("{n} writes, {reads} reads, {failed} failed, {stale} stale");
    assert_eq!(stale, 0, "stale reads out of {reads}");
    assert!(reads > 1000 && n > 20, "{reads} reads, {n} writes");
    let last = n.to_string();
    for dict in dicts.iter() {
        wait_until(
            Duration::from_secs(10),
            "every dict serves the last write",
            || dict.get("n").ok().flatten().as_deref() == Some(&last),
        );
    }
    handle.drop_keyspace().unwrap();
}

/// SQLite has no feed: a subscribed `Watch` dict there keeps a listener thread of its own (it
/// checks the stamp as under `Always`), no keeper thread, and hears another handle's write.
#[cfg(feature = "sqlite")]
#[test]
fn a_store_without_a_feed_keeps_its_own_listener_thread() {
    let _alone = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let open = || SqlStore::builder(&url).table("t").build().unwrap();
    let store = open();
    assert!(store.feed().is_none());
    let dict = Arc::new(watch(store));
    let (keepers, listens) = (
        threads_named("durabledict-feed-keeper"),
        threads_named("durabledict-listen"),
    );
    let subscription = dict.subscribe();
    wait_until(
        Duration::from_secs(5),
        "a listener thread of its own",
        || threads_named("durabledict-listen") == listens + 1,
    );
    assert_eq!(threads_named("durabledict-feed-keeper"), keepers);
    watch(open()).insert("k", "v".into()).unwrap();
    let mut seen = BTreeMap::new();
    wait_until(Duration::from_secs(10), "the write is announced", || {
        drain(&subscription, &mut seen);
        seen.get("k").map(String::as_str) == Some("v")
    });
    drop(subscription);
    wait_until(Duration::from_secs(10), "its thread ends", || {
        threads_named("durabledict-listen") == listens
    });
}

/// `drop_keyspace` by a role that owns the data table but may not delete from the stamps
/// table (an administrator's grants): it fails, and leaves the keyspace whole, so that every
/// dict still serves what the table holds. (It dropped the table first and then failed on the
/// stamp row: the table was gone with the stamp unchanged and no notice, and every dict, of
/// this process or another, under any policy, kept serving the dropped contents.)
#[test]
fn a_failed_drop_keyspace_leaves_the_keyspace_whole() {
    let database = table_name("dropfail");
    let admin_url = server().create_database(&database).unwrap();
    store(&admin_url, "flags").init().unwrap();
    let app = format!("{database}_app");
    execute(
        &admin_url,
        &format!(
            "CREATE ROLE {app} LOGIN; GRANT USAGE, CREATE ON SCHEMA public TO {app}; \
             ALTER TABLE flags OWNER TO {app}; \
             GRANT SELECT, INSERT, UPDATE ON durabledict_stamps TO {app}"
        ),
    )
    .unwrap();
    let app_url = admin_url.replacen("://postgres@", &format!("://{app}@"), 1);
    let app_store = store(&app_url, "flags");
    let dict = watch(app_store.clone());
    dict.insert("k", "v".into()).unwrap();
    let other = DurableDict::<String>::builder(store(&admin_url, "flags"), Raw)
        .build()
        .unwrap();
    assert_eq!(
        other.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
    let dropped = app_store.drop_keyspace();
    assert!(
        dropped.is_err(),
        "the stamp row cannot be deleted: {dropped:?}"
    );
    assert_eq!(
        store(&admin_url, "flags").get("k").unwrap(),
        Some(b"v".to_vec()),
        "a failed drop_keyspace dropped the table"
    );
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
    assert_eq!(
        other.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
}

/// A view of a store: the keys under a prefix, without it. It forwards the store's feed (a
/// `Watch` dict on it would otherwise check the stamp on every read), as wrappers do.
#[derive(Debug)]
struct View {
    inner: SqlStore,
    prefix: &'static str,
}

impl Store for View {
    fn persist(&self, key: &str, value: &[u8]) -> Result<i64, durabledict_core::StoreError> {
        self.inner.persist(&format!("{}{key}", self.prefix), value)
    }
    fn depersist(&self, key: &str) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.inner.depersist(&format!("{}{key}", self.prefix))
    }
    fn durables(&self) -> Result<durabledict_core::Durables, durabledict_core::StoreError> {
        let all = self.inner.durables()?;
        let mine = all
            .entries
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(self.prefix)?.to_owned(), v)))
            .collect();
        Ok(durabledict_core::Durables::new(mine, all.stamp))
    }
    fn last_updated(&self) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.inner.last_updated()
    }
    fn init(&self) -> Result<(), durabledict_core::StoreError> {
        self.inner.init()
    }
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }
    fn feed(&self) -> Option<Arc<durabledict_core::Feed>> {
        self.inner.feed()
    }
}

/// Two views (key prefixes) of one PostgreSQL table, each with a `Watch` dict, both on the
/// table's feed: after another program's write, each dict serves its own view.
#[test]
fn two_views_on_one_feed_each_serve_their_own() {
    let url = server().url();
    let table = table_name("views");
    let handle = store(&url, &table);
    let view = |prefix| {
        DurableDict::<String>::builder(
            View {
                inner: handle.clone(),
                prefix,
            },
            Raw,
        )
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap()
    };
    let (a, b) = (view("a/"), view("b/"));
    let feed = handle.feed().unwrap();
    wait_until(Duration::from_secs(10), "the feed comes up", || {
        feed.state().is_up()
    });
    a.insert("x", "1".into()).unwrap();
    b.insert("y", "2".into()).unwrap();
    for n in 0..5 {
        let before = feed.state();
        foreign_write(&url, &table, "a/x", &format!("f{n}"));
        wait_until(Duration::from_secs(10), "the notice arrives", || {
            feed.state() != before
        });
        assert_eq!(a.keys().unwrap(), ["x"], "round {n}");
        assert_eq!(b.keys().unwrap(), ["y"], "round {n}: b serves a's view");
    }
    handle.drop_keyspace().unwrap();
}
