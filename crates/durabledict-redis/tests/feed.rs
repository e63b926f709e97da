//! The Redis change feed with real servers: a Python-style writer heard by a `Watch` dict and
//! a listener; a killed, silent or restarted feed connection under live readers (never a
//! stale read); its thread ending with the last store handle; a Unix socket.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Target, keyspace, kill_feed, raw, server_url};
use durabledict_core::{
    Call, DurableDict, Event, Feed, FeedHealth, Layer, Layered, Raw, Store, StoreError, SyncPolicy,
};
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

/// Counts stamp checks.
#[derive(Debug)]
struct CountChecks(Arc<AtomicUsize>);

impl Layer for CountChecks {
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if call == Call::LastUpdated {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        run()
    }
}

fn within(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn up(feed: &Feed) -> bool {
    feed.state().is_up()
}

/// What Python durabledict sends for `d[key] = value`: `HSET` and `INCR` in one `MULTI`.
fn python_write(conn: &mut redis::Connection, ks: &str, key: &str, value: &str) {
    redis::pipe()
        .atomic()
        .hset(ks, key, value)
        .ignore()
        .incr(format!("{ks}last_updated"), 1)
        .ignore()
        .exec(conn)
        .unwrap();
}

fn watch_dict(store: RedisStore) -> DurableDict<String> {
    DurableDict::builder(store, Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap()
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| v.as_str().to_owned())
}

#[test]
fn a_python_style_writer_is_heard_by_a_watch_dict_and_a_listener() {
    let url = server_url();
    let ks = keyspace("feed-python");
    let checks = Arc::new(AtomicUsize::new(0));
    let store = RedisStore::open(&url, &ks).unwrap();
    let feed = store.feed().unwrap();
    let dict = Arc::new(
        DurableDict::<String>::builder(Layered::new(CountChecks(Arc::clone(&checks)), store), Raw)
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
    );
    let events = dict.subscribe();
    within(Duration::from_secs(2), "the feed comes up", || up(&feed));
    assert_eq!(dict.status().feed, FeedHealth::Healthy);
    let mut python = raw(&url);
    for i in 0..20 {
        python_write(&mut python, &ks, "flag", &i.to_string());
        within(
            Duration::from_secs(2),
            "the Watch dict sees the write",
            || read(&dict, "flag") == Some(i.to_string()),
        );
        match events.next_timeout(Duration::from_secs(2)) {
            Some(Event::Changed(change)) => {
                assert_eq!(&*change.key, "flag");
                assert_eq!(change.new.as_deref(), Some(&i.to_string()));
            }
            other => panic!("the listener heard {other:?} for write {i}"),
        }
        let before = checks.load(Ordering::SeqCst);
        for _ in 0..1000 {
            assert_eq!(read(&dict, "flag"), Some(i.to_string()));
        }
        assert_eq!(
            checks.load(Ordering::SeqCst),
            before,
            "reads between changes checked the stamp"
        );
    }
}

/// Readers under `Watch` while a writer on another store handle writes and `disrupt` breaks
/// the feed now and then: a reader notes the writer's last acknowledged value before each
/// read and must never read an older one. Returns (reads, failed reads).
fn never_stale(
    url: &str,
    rounds: usize,
    mut disrupt: impl FnMut(usize),
) -> (usize, usize, Arc<Feed>) {
    let ks = keyspace("feed-stale");
    let reader_store = RedisStore::builder(url, &ks)
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let feed = reader_store.feed().unwrap();
    let reader = Arc::new(watch_dict(reader_store));
    let writer = DurableDict::<String>::builder(RedisStore::open(url, &ks).unwrap(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    writer.insert("k", "0".into()).unwrap();
    within(Duration::from_secs(2), "the feed comes up", || up(&feed));
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (reads, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (reader, acked, done) =
                (Arc::clone(&reader), Arc::clone(&acked), Arc::clone(&done));
            let (reads, failed) = (Arc::clone(&reads), Arc::clone(&failed));
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let before = acked.load(Ordering::SeqCst);
                    match reader.get("k") {
                        Ok(value) => {
                            let seen: i64 = value.map_or(-1, |v| v.parse().unwrap());
                            assert!(
                                seen >= before,
                                "read {seen} after {before} was acknowledged"
                            );
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        // The server is down: an error, never an old value.
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
            })
        })
        .collect();
    let mut n = 0;
    for round in 0..rounds {
        disrupt(round);
        let end = Instant::now() + Duration::from_millis(300);
        while Instant::now() < end {
            if writer.insert("k", (n + 1).to_string()).is_ok() {
                n += 1;
                acked.store(n, Ordering::SeqCst);
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.join().unwrap();
    }
    assert!(n > 10, "the writer got only {n} writes through");
    (
        reads.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        feed,
    )
}

#[test]
fn client_kill_of_the_feed_under_live_readers_serves_nothing_stale() {
    let url = server_url();
    let target = Target::Server(url.clone());
    let mut killed = 0;
    let mut name = None;
    let (reads, _, feed) = never_stale(&url, 8, |_| {
        let name = name.get_or_insert_with(|| {
            // Any handle of the keyspace names the connection alike; the readers' store was
            // made last, by `never_stale`: find its name through CLIENT LIST.
            let mut conn = raw(&url);
            let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
            list.lines()
                .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("name=")))
                .rfind(|n| n.starts_with("durabledict-feed:feed-stale"))
                .unwrap()
                .to_owned()
        });
        killed += kill_feed(&target, name).unwrap();
    });
    assert!(killed >= 6, "only {killed} feed connections were killed");
    assert!(reads > 1000, "only {reads} reads");
    within(Duration::from_secs(3), "the feed is restored", || up(&feed));
}

#[test]
fn a_restart_under_live_readers_serves_nothing_stale() {
    let mut server =
        RedisServer::start_with_args(["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let url = server.url();
    let (reads, failed, feed) = never_stale(&url, 3, |round| {
        if round == 1 {
            server.stop();
            std::thread::sleep(Duration::from_millis(200));
            server.restart().unwrap();
        }
    });
    assert!(reads > 1000, "only {reads} reads");
    assert!(failed > 0, "no read saw the server down");
    within(Duration::from_secs(5), "the feed is restored", || up(&feed));
}

#[test]
fn a_killed_feed_is_down_at_once_and_restored_with_tracking_on() {
    let url = server_url();
    let ks = keyspace("feed-kill");
    let store = RedisStore::open(&url, &ks).unwrap();
    let feed = store.feed().unwrap();
    within(Duration::from_secs(2), "the feed comes up", || up(&feed));
    let target = Target::Server(url.clone());
    let before = feed.state();
    assert_eq!(kill_feed(&target, &store.feed_client_name()).unwrap(), 1);
    within(
        Duration::from_millis(200),
        "the feed is marked down",
        || feed.state() != before,
    );
    within(Duration::from_secs(2), "the feed is back", || up(&feed));
    // Up means tracking is on: the new connection has the tracking flag, and a write made
    // with no dict of this process is heard.
    let mut conn = raw(&url);
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn).unwrap();
    let flags = list
        .lines()
        .find(|line| line.contains(&format!("name={} ", store.feed_client_name())))
        .and_then(|line| line.split(' ').find_map(|f| f.strip_prefix("flags=")))
        .unwrap()
        .to_owned();
    assert!(flags.contains('t'), "flags={flags}");
    let heard = feed.state();
    python_write(&mut conn, &ks, "k", "v");
    within(Duration::from_secs(1), "the write is heard", || {
        feed.state() != heard
    });
}

#[test]
fn a_silent_server_is_noticed_within_the_probe_bound() {
    let server = RedisServer::start_with_args(["--enable-debug-command", "yes"]).unwrap();
    let store = RedisStore::open(&server.url(), &keyspace("feed-silent")).unwrap();
    let feed = store.feed().unwrap();
    within(Duration::from_secs(2), "the feed comes up", || up(&feed));
    let url = server.url();
    let sleeper = std::thread::spawn(move || {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(4)
            .exec(&mut raw(&url))
            .unwrap();
    });
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(50));
    within(
        Duration::from_millis(2500),
        "a server that stopped answering marks the feed down",
        || !up(&feed),
    );
    let noticed = started.elapsed();
    sleeper.join().unwrap();
    within(Duration::from_secs(3), "the feed is back", || up(&feed));
    println!("a silent server noticed after {noticed:?}");
}

#[test]
fn dropping_the_last_handle_ends_the_feed_connection() {
    let url = server_url();
    let store = RedisStore::open(&url, &keyspace("feed-drop")).unwrap();
    let name = store.feed_client_name();
    let clone = store.clone();
    let feed = store.feed().unwrap();
    within(Duration::from_secs(2), "the feed comes up", || up(&feed));
    let connected = |name: &str| {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(&mut raw(&url))
            .unwrap();
        list.contains(&format!("name={name} "))
    };
    assert!(connected(&name));
    drop(store);
    std::thread::sleep(Duration::from_millis(600));
    assert!(connected(&name), "a clone still holds the feed");
    drop(clone);
    within(
        Duration::from_secs(2),
        "the feed connection closes after the last handle",
        || !connected(&name),
    );
    assert!(!up(&feed), "a stopped feed stays down");
}

#[test]
fn a_unix_socket_feed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis.sock");
    let server =
        RedisServer::start_with_args(["--unixsocket".to_string(), path.display().to_string()])
            .unwrap();
    let ks = keyspace("feed-unix");
    let dict =
        watch_dict(RedisStore::open(&format!("redis+unix://{}", path.display()), &ks).unwrap());
    let mut python = raw(&server.url());
    // Up first: a read while it is still down checks the stamp and would pass without it.
    within(Duration::from_secs(10), "the feed comes up", || {
        dict.status().feed == FeedHealth::Healthy
    });
    for i in 0..3 {
        python_write(&mut python, &ks, "k", &i.to_string());
        within(
            Duration::from_secs(2),
            "the write over TCP is heard",
            || read(&dict, "k") == Some(i.to_string()),
        );
    }
    assert_eq!(dict.status().feed, FeedHealth::Healthy);
}
