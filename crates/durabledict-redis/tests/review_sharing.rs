//! Review of the shared checks and loads of a sharing feed and its keeper thread, against a
//! real redis-server.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::{
    BoxError, DurableDict, Encoding, Event, Raw, Store, Subscription, SyncPolicy,
};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{RedisServer, process_cpu_time};

fn within(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// This file's tests run one at a time: some measure this process's CPU or count its threads,
/// and `cargo test` runs a binary's tests as threads of one process.
static SERIAL: Mutex<()> = Mutex::new(());

fn share_over(span: Duration) -> f64 {
    let (cpu, wall) = (process_cpu_time(), Instant::now());
    std::thread::sleep(span);
    (process_cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// Every request that fails while the server is away marks the feed lost again: a keeper
/// round woken by that ran again at once (92% of a core with three subscribed dicts).
#[test]
fn subscribed_dicts_do_not_spin_while_the_server_is_down() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut server = RedisServer::start().unwrap();
    let store = RedisStore::open(&server.url(), "down-spin").unwrap();
    let feed = store.feed().unwrap();
    let dicts: Vec<Arc<DurableDict<String>>> = (0..3)
        .map(|_| {
            Arc::new(
                DurableDict::builder(store.clone(), Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    let subs: Vec<_> = dicts.iter().map(|d| d.subscribe()).collect();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    server.stop();
    within(Duration::from_secs(5), "feed down", || {
        !feed.state().is_up()
    });
    std::thread::sleep(Duration::from_secs(1));
    let n0 = feed.state().notices();
    let down = share_over(Duration::from_secs(3));
    let n1 = feed.state().notices();
    println!(
        "down: {:.2}% of a core, {} state changes",
        down * 100.0,
        n1 - n0
    );
    assert!(down < 0.05, "{:.2}% of a core while down", down * 100.0);

    // Back: every dict hears a write again.
    server.restart().unwrap();
    let writer = RedisStore::open(&server.url(), "down-spin").unwrap();
    writer.persist("k", b"after").unwrap();
    for (dict, events) in dicts.iter().zip(&subs) {
        match events.next_timeout(Duration::from_secs(10)) {
            Some(Event::Changed(change)) => {
                assert_eq!(change.new.as_deref().map(String::as_str), Some("after"));
            }
            other => panic!("a listener heard {other:?}"),
        }
        assert_eq!(
            dict.get("k").unwrap().as_deref().map(String::as_str),
            Some("after")
        );
    }
}

/// A TCP proxy to `server` that, while armed (from the start), stops forwarding a client's
/// commands at the first chunk holding `marker`, until released: the request carrying it
/// waits for its reply. Holding disarms it.
struct HoldingProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    holding: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

impl HoldingProxy {
    fn start(server: &RedisServer, marker: &'static [u8]) -> Self {
        let upstream_addr = format!("127.0.0.1:{}", server.port());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let holding = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (arm, held, released) = (
            Arc::clone(&armed),
            Arc::clone(&holding),
            Arc::clone(&release),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&upstream_addr) else {
                    continue;
                };
                let (mut from, mut to) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (arm, held, released) =
                    (Arc::clone(&arm), Arc::clone(&held), Arc::clone(&released));
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if buf[..n].windows(marker.len()).any(|w| w == marker)
                            && arm.swap(false, Ordering::SeqCst)
                        {
                            held.store(true, Ordering::SeqCst);
                            while !released.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Both);
                });
                let (mut from, mut to) = (upstream, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
            }
        });
        HoldingProxy {
            port,
            armed,
            holding,
            release,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
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

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn changed_to(events: &Subscription<String>, key: &str, value: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_timeout(left) {
            Some(Event::Changed(change))
                if &*change.key == key
                    && change.new.as_deref().map(String::as_str) == Some(value) =>
            {
                return;
            }
            Some(_) => {}
            None => panic!("no change of {key} to {value} heard within {bound:?}"),
        }
    }
}

/// One dict's own write waits for its reply (holding that dict's update lock): the other
/// dicts on the feed still hear another writer's change at once. With one keeper thread per
/// feed, the round blocked on the busy dict and nobody after it heard anything until the
/// write returned (here 30 s, the I/O timeout).
#[test]
fn a_write_waiting_for_its_reply_does_not_deafen_the_other_dicts() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let server = RedisServer::start().unwrap();
    let proxy = HoldingProxy::start(&server, b"HOLD-THIS-WRITE");
    let ks = "held-write";
    let store = RedisStore::builder(&proxy.url(), ks)
        .io_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let dict = || {
        Arc::new(
            DurableDict::<String>::builder(store.clone(), Raw)
                .policy(SyncPolicy::Watch)
                .build()
                .unwrap(),
        )
    };
    let (busy, other) = (dict(), dict());
    let busy_events = busy.subscribe();
    let other_events = other.subscribe();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());

    let writer = {
        let busy = Arc::clone(&busy);
        std::thread::spawn(move || busy.insert("mine", "HOLD-THIS-WRITE".to_owned()))
    };
    within(Duration::from_secs(5), "the write is held", || {
        proxy.holding.load(Ordering::SeqCst)
    });
    let mut python = raw(&server.url());
    python_write(&mut python, ks, "theirs", "1");
    changed_to(&other_events, "theirs", "1", Duration::from_secs(5));
    assert_eq!(
        other.get("theirs").unwrap().as_deref().map(String::as_str),
        Some("1")
    );

    proxy.release.store(true, Ordering::SeqCst);
    writer.join().unwrap().unwrap();
    changed_to(&busy_events, "theirs", "1", Duration::from_secs(10));
    python_write(&mut python, ks, "theirs", "2");
    changed_to(&busy_events, "theirs", "2", Duration::from_secs(10));
    changed_to(&other_events, "theirs", "2", Duration::from_secs(10));
}

fn watch(store: &RedisStore) -> Arc<DurableDict<String>> {
    Arc::new(
        DurableDict::builder(store.clone(), Raw)
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
    )
}

/// Several dicts on one feed (sharing their checks and loads, some listened by the keeper),
/// read by two threads each while writers on another handle, on a clone of the readers'
/// handle and (through the readers' own dicts) write: a reader notes the last acknowledged
/// value before each read and must never read an older one, through `CLIENT KILL` of every
/// connection and a server restart.
#[test]
fn dicts_sharing_a_feed_never_read_older_than_an_acknowledged_write() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut server =
        RedisServer::start_with_args(["--appendonly", "yes", "--appendfsync", "always"]).unwrap();
    let url = server.url();
    let ks = "shared-stale";
    let store = RedisStore::builder(&url, ks)
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let dicts: Vec<_> = (0..4).map(|_| watch(&store)).collect();
    let _subs: Vec<_> = dicts[..2].iter().map(|d| d.subscribe()).collect();
    let other_handle = DurableDict::<String>::builder(RedisStore::open(&url, ks).unwrap(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    let clone_handle = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    other_handle.insert("k", "0".into()).unwrap();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = dicts
        .iter()
        .flat_map(|dict| [Arc::clone(dict), Arc::clone(dict)])
        .map(|dict| {
            let (acked, done, reads) = (Arc::clone(&acked), Arc::clone(&done), Arc::clone(&reads));
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let before = acked.load(Ordering::SeqCst);
                    match dict.get("k") {
                        Ok(value) => {
                            let seen: i64 = value.map_or(-1, |v| v.parse().unwrap());
                            assert!(
                                seen >= before,
                                "read {seen} after {before} was acknowledged"
                            );
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();
    let mut n = 0i64;
    let mut write = |round: usize| {
        let end = Instant::now() + Duration::from_millis(400);
        while Instant::now() < end {
            let value = (n + 1).to_string();
            let written = match n % 3 {
                0 => other_handle.insert("k", value),
                1 => clone_handle.insert("k", value),
                _ => dicts[(n as usize + round) % dicts.len()].insert("k", value),
            };
            if written.is_ok() {
                n += 1;
                acked.store(n, Ordering::SeqCst);
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    for round in 0..6 {
        match round {
            2 | 3 => {
                let killed: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("normal")
                    .query(&mut raw(&url))
                    .unwrap();
                assert!(killed > 0);
            }
            4 => {
                server.stop();
                std::thread::sleep(Duration::from_millis(200));
                server.restart().unwrap();
            }
            _ => {}
        }
        write(round);
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.join().unwrap();
    }
    assert!(n > 30, "only {n} writes");
    assert!(reads.load(Ordering::SeqCst) > 1000, "only {reads:?} reads");
}

/// Python-style writes from another connection: once the feed heard the notice, every dict on
/// it (read by threads of their own meanwhile) reads the write, and every listener hears it.
#[test]
fn a_python_write_is_read_by_every_dict_once_its_notice_arrived() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "shared-python";
    let store = RedisStore::open(&url, ks).unwrap();
    let feed = store.feed().unwrap();
    let dicts: Vec<_> = (0..6).map(|_| watch(&store)).collect();
    let subs: Vec<_> = dicts[..3].iter().map(|d| d.subscribe()).collect();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let done = Arc::new(AtomicBool::new(false));
    let busy_readers: Vec<_> = dicts
        .iter()
        .map(|dict| {
            let (dict, done) = (Arc::clone(dict), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let _ = dict.get("k");
                }
            })
        })
        .collect();
    let mut python = raw(&url);
    for i in 0..100 {
        let before = feed.state();
        python_write(&mut python, ks, "k", &i.to_string());
        within(Duration::from_secs(5), "the notice", || {
            feed.state() != before
        });
        for dict in &dicts {
            assert_eq!(
                dict.get("k").unwrap().as_deref().map(String::as_str),
                Some(i.to_string().as_str()),
                "write {i}"
            );
        }
    }
    done.store(true, Ordering::SeqCst);
    for reader in busy_readers {
        reader.join().unwrap();
    }
    for events in &subs {
        changed_to(events, "k", "99", Duration::from_secs(5));
    }
}

/// This process's threads whose name starts with `prefix` (Linux keeps 15 bytes of a name).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// Waits until the threads of the file's earlier tests ended (their dicts and stores are
/// dropped: a keeper ends within a second, a feed thread within its probe interval).
fn no_threads_left() {
    within(
        Duration::from_secs(10),
        "earlier tests' threads end",
        || threads_named("durabledict") == 0,
    );
}

fn process_id(url: &str) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut raw(url))
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The server stopped (SIGSTOP) while one dict's own write waits for its reply (holding its
/// update lock) past the I/O timeout: once it runs again, every dict reads what the server
/// holds and every listener hears it; one keeper thread, one feed thread, as before.
///
/// Twice: with the write timing out while the server is stopped, and with it waiting.
#[test]
fn a_stopped_server_during_an_own_write_leaves_everybody_current() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    stopped_during_an_own_write(Duration::from_secs(1));
    stopped_during_an_own_write(Duration::from_secs(30));
}

fn stopped_during_an_own_write(io_timeout: Duration) {
    no_threads_left();
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "sigstop";
    let store = RedisStore::builder(&url, ks)
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(io_timeout)
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let dicts: Vec<_> = (0..3).map(|_| watch(&store)).collect();
    let subs: Vec<_> = dicts.iter().map(|d| d.subscribe()).collect();
    dicts[0].insert("k", "before".into()).unwrap();
    for events in &subs {
        changed_to(events, "k", "before", Duration::from_secs(5));
    }
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let threads = threads_named("durabledict");
    assert_eq!(threads_named("durabledict-fee"), 1, "one keeper");

    let pid = process_id(&url);
    signal(pid, "STOP");
    let writer = {
        let dict = Arc::clone(&dicts[0]);
        std::thread::spawn(move || dict.insert("k", "during".to_owned()))
    };
    std::thread::sleep(Duration::from_secs(3));
    signal(pid, "CONT");
    let written = writer.join().unwrap();
    within(Duration::from_secs(10), "the server answers", || {
        redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection())
            .is_ok()
    });
    // What the server holds now (the write ran, or not, when the server went on).
    let hold = || -> String {
        redis::cmd("HGET")
            .arg(ks)
            .arg("k")
            .query(&mut raw(&url))
            .unwrap()
    };
    let truth = hold();
    println!(
        "I/O timeout {io_timeout:?}: the write returned {written:?}, the server holds {truth}"
    );
    if written.is_ok() {
        assert_eq!(truth, "during");
    }
    dicts[1].insert("after", "x".into()).unwrap();
    within(
        Duration::from_secs(10),
        "every dict reads the server's value",
        || {
            dicts.iter().all(|d| {
                d.get("k").ok().flatten().as_deref().map(String::as_str) == Some(truth.as_str())
            })
        },
    );
    assert_eq!(hold(), truth);
    for events in &subs {
        changed_to(events, "after", "x", Duration::from_secs(10));
    }
    // A later write from elsewhere is heard by all.
    let mut python = raw(&url);
    python_write(&mut python, ks, "k", "later");
    for events in &subs {
        changed_to(events, "k", "later", Duration::from_secs(10));
    }
    within(Duration::from_secs(5), "no thread left over", || {
        threads_named("durabledict") <= threads
    });
    assert_eq!(threads_named("durabledict-fee"), 1, "one keeper");
}

/// An encoding with a bug: decoding `boom` panics.
#[derive(Debug)]
struct Panicky;

impl Encoding<String> for Panicky {
    fn encode(&self, value: &String) -> Result<Vec<u8>, BoxError> {
        Ok(value.as_bytes().to_vec())
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, BoxError> {
        assert_ne!(bytes, b"boom", "an encoding's bug");
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}

/// Dicts of three encodings on one feed share the load's bytes: a value one cannot decode
/// poisons only that key of that dict, and an encoding that panics (in the keeper's round)
/// leaves the others hearing every change; the panicking dict hears again once the value is
/// gone.
#[test]
fn one_load_decoded_by_dicts_of_different_encodings() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "encodings";
    let store = RedisStore::open(&url, ks).unwrap();
    let feed = store.feed().unwrap();
    let build = |policy| {
        DurableDict::<String>::builder(store.clone(), Panicky)
            .policy(policy)
            .build()
            .unwrap()
    };
    // The panicking one first: its round comes before the others'.
    let panicky = Arc::new(build(SyncPolicy::Watch));
    let panicky_events = panicky.subscribe();
    let text = watch(&store);
    let text_events = text.subscribe();
    let bytes = Arc::new(
        DurableDict::<Vec<u8>>::builder(store.clone(), Raw)
            .policy(SyncPolicy::Watch)
            .build()
            .unwrap(),
    );
    let bytes_events = bytes.subscribe();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());

    let mut python = raw(&url);
    let raw_write = |python: &mut redis::Connection, key: &str, value: &[u8]| {
        redis::pipe()
            .atomic()
            .hset(ks, key, value)
            .ignore()
            .incr(format!("{ks}last_updated"), 1)
            .ignore()
            .exec(python)
            .unwrap();
    };
    raw_write(&mut python, "bin", &[0xff, 0x00]);
    raw_write(&mut python, "k", b"boom");
    raw_write(&mut python, "k2", b"v2");
    changed_to(&text_events, "k2", "v2", Duration::from_secs(5));
    loop {
        match bytes_events.next_timeout(Duration::from_secs(5)) {
            Some(Event::Changed(change)) if &*change.key == "k2" => break,
            Some(_) => {}
            None => panic!("the bytes dict heard nothing"),
        }
    }
    assert_eq!(
        text.get("k").unwrap().as_deref().map(String::as_str),
        Some("boom")
    );
    assert!(
        text.get("bin").is_err(),
        "not UTF-8: poisoned for the text dict"
    );
    assert_eq!(
        bytes.get("bin").unwrap().as_deref(),
        Some(&vec![0xff, 0x00])
    );
    assert_eq!(bytes.get("k").unwrap().as_deref(), Some(&b"boom".to_vec()));

    // Later changes are heard by the others while the panicking dict's round still panics.
    raw_write(&mut python, "k3", b"v3");
    changed_to(&text_events, "k3", "v3", Duration::from_secs(5));
    // Once the value is gone, the panicking dict loads and hears again.
    raw_write(&mut python, "k", b"fine");
    changed_to(&panicky_events, "k", "fine", Duration::from_secs(5));
    changed_to(&text_events, "k", "fine", Duration::from_secs(5));
    assert_eq!(
        panicky.get("k3").unwrap().as_deref().map(String::as_str),
        Some("v3")
    );
    assert_eq!(threads_named("durabledict-fee"), 1, "the keeper survived");
}

/// Subscriptions made and dropped by several threads at once, on several dicts of one feed,
/// and dicts dropped while subscribed: whoever listens at the end hears the next change, and
/// the keeper thread ends once nobody listens.
#[test]
fn subscription_churn_loses_no_listener_and_the_keeper_ends() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    no_threads_left();
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "churn";
    let store = RedisStore::open(&url, ks).unwrap();
    let feed = store.feed().unwrap();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let keepers_before = threads_named("durabledict-fee");
    let dicts: Vec<_> = (0..4).map(|_| watch(&store)).collect();
    let mut python = raw(&url);
    for round in 0..20 {
        let churners: Vec<_> = (0..4)
            .map(|t| {
                let dicts = dicts.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let dict = &dicts[(t + i) % dicts.len()];
                        let sub = dict.subscribe();
                        if i % 7 == 0 {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        drop(sub);
                    }
                    // One listener per thread stays.
                    dicts[t].subscribe()
                })
            })
            .collect();
        let subs: Vec<_> = churners.into_iter().map(|c| c.join().unwrap()).collect();
        // A dict made and dropped while subscribed.
        let dropped = watch(&store);
        let dropped_events = dropped.subscribe();
        drop(dropped);
        python_write(&mut python, ks, "k", &round.to_string());
        for events in &subs {
            changed_to(events, "k", &round.to_string(), Duration::from_secs(5));
        }
        // Ends (a round of the keeper holding the dict may still announce the write).
        let ends = Instant::now() + Duration::from_secs(5);
        while dropped_events
            .next_timeout(ends.saturating_duration_since(Instant::now()))
            .is_some()
        {
            assert!(
                Instant::now() < ends,
                "the dropped dict's subscription ends"
            );
        }
        assert!(
            Instant::now() < ends,
            "the dropped dict's subscription ends (not a timeout)"
        );
    }
    assert_eq!(threads_named("durabledict-fee"), keepers_before + 1);
    within(
        Duration::from_secs(5),
        "the keeper ends with its last listener",
        || threads_named("durabledict-fee") == keepers_before,
    );
    // And comes back with a new one.
    let events = dicts[0].subscribe();
    python_write(&mut python, ks, "k", "again");
    changed_to(&events, "k", "again", Duration::from_secs(5));
}

/// Dicts on one feed, one serving stale data when the server is away and one not: a failed
/// check is not shared (the one fails, the other serves its cache), and once the server is
/// back empty (no persistence) both read what it holds, the listener hearing the loss.
#[test]
fn serving_stale_is_each_dicts_own_and_ends_with_the_server_back() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "stale";
    let store = RedisStore::builder(&url, ks)
        .connect_timeout(Duration::from_millis(300))
        .io_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let stale = Arc::new(
        DurableDict::<String>::builder(store.clone(), Raw)
            .policy(SyncPolicy::Watch)
            .serve_stale_for(Duration::from_secs(60))
            .build()
            .unwrap(),
    );
    let strict = watch(&store);
    let events = stale.subscribe();
    strict.insert("k", "v".into()).unwrap();
    changed_to(&events, "k", "v", Duration::from_secs(5));
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    assert_eq!(
        strict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );

    server.stop();
    within(Duration::from_secs(5), "feed down", || {
        !feed.state().is_up()
    });
    for _ in 0..20 {
        assert_eq!(
            stale.get("k").unwrap().as_deref().map(String::as_str),
            Some("v")
        );
        assert!(
            strict.get("k").is_err(),
            "the strict dict serves nothing stale"
        );
    }

    server.restart().unwrap();
    within(
        Duration::from_secs(10),
        "both read the empty server",
        || matches!(stale.get("k"), Ok(None)) && matches!(strict.get("k"), Ok(None)),
    );
    loop {
        match events.next_timeout(Duration::from_secs(10)) {
            Some(Event::Changed(change)) if &*change.key == "k" && change.new.is_none() => break,
            Some(_) => {}
            None => panic!("the listener never heard the loss of k"),
        }
    }
}

/// A stamp check that hangs (its connection went silent: a half-open socket, a lost packet)
/// holds up only the read that sent it, not every read of every dict on the feed until the
/// I/O timeout: the others at the same feed state waited for it as for a shared answer.
#[test]
fn a_hung_stamp_check_holds_up_only_its_own_read() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    hung_request(
        b"$3\r\nGET\r\n",
        "hung-check",
        "check",
        Duration::from_secs(3),
    );
}

/// A load that hangs (its connection went silent) holds up the loads of the other dicts at
/// the same feed state only for a while (a multiple of what loads took, at least a second),
/// not until the I/O timeout: they load for themselves.
#[test]
fn a_hung_load_holds_up_other_dicts_only_for_a_while() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    hung_request(
        b"$7\r\nHGETALL\r\n",
        "hung-load",
        "load",
        Duration::from_secs(5),
    );
}

/// Two dicts on one feed; after a notice, the request of one of them that holds `held` hangs
/// in a proxy: the other dict's read must answer within `bound`, not the I/O timeout.
fn hung_request(held: &'static [u8], ks: &str, what: &str, bound: Duration) {
    let server = RedisServer::start().unwrap();
    let proxy = HoldingProxy::start(&server, held);
    proxy.armed.store(false, Ordering::SeqCst);
    let store = RedisStore::builder(&proxy.url(), ks)
        .io_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let (unlucky, other) = (watch(&store), watch(&store));
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let mut python = raw(&server.url());
    python_write(&mut python, ks, "k", "1");
    within(Duration::from_secs(5), "both read it", || {
        [&unlucky, &other]
            .iter()
            .all(|d| d.get("k").unwrap().as_deref().map(String::as_str) == Some("1"))
    });

    proxy.armed.store(true, Ordering::SeqCst);
    let before = feed.state();
    python_write(&mut python, ks, "k", "2");
    within(Duration::from_secs(5), "the notice", || {
        feed.state() != before
    });
    let hung = {
        let unlucky = Arc::clone(&unlucky);
        std::thread::spawn(move || unlucky.get("k").map(|v| v.map(|v| v.as_str().to_owned())))
    };
    within(Duration::from_secs(5), &format!("its {what} hangs"), || {
        proxy.holding.load(Ordering::SeqCst)
    });
    let started = Instant::now();
    let read = other.get("k").unwrap();
    let took = started.elapsed();
    proxy.release.store(true, Ordering::SeqCst);
    assert_eq!(read.as_deref().map(String::as_str), Some("2"));
    assert!(
        took < bound,
        "a read of another dict waited {took:?} for the hung {what}"
    );
    assert_eq!(hung.join().unwrap().unwrap().as_deref(), Some("2"));
}

/// Dicts sharing a feed, read all along by threads of their own or only kept by the keeper,
/// across an empty restart that a Python-style writer counts back to the stamp they hold:
/// every dict reads the new contents, and the listeners hear them.
#[test]
fn dicts_sharing_a_feed_see_a_keyspace_counted_back_after_an_empty_restart() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    counted_back(true);
    counted_back(false);
}

fn counted_back(read_all_along: bool) {
    let mut server = RedisServer::start().unwrap();
    let url = server.url();
    let ks = "counted-back";
    let mut python = raw(&url);
    python_write(&mut python, ks, "a", "0");
    python_write(&mut python, ks, "a", "1");
    let store = RedisStore::builder(&url, ks)
        .connect_timeout(Duration::from_millis(300))
        .io_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let feed = store.feed().unwrap();
    let dicts: Vec<_> = (0..4).map(|_| watch(&store)).collect();
    let subs: Vec<_> = dicts[..2].iter().map(|d| d.subscribe()).collect();
    within(Duration::from_secs(5), "feed up", || feed.state().is_up());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = dicts
        .iter()
        .filter(|_| read_all_along)
        .map(|dict| {
            let (dict, done) = (Arc::clone(dict), Arc::clone(&done));
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let _ = dict.get("a");
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
        .collect();
    server.stop();
    std::thread::sleep(Duration::from_millis(300));
    server.restart().unwrap();
    let mut python = raw(&url);
    python_write(&mut python, ks, "a", "50");
    python_write(&mut python, ks, "a", "99");
    // The listeners first: with nobody reading, the keeper alone brings their dicts along.
    for events in &subs {
        changed_to(events, "a", "99", Duration::from_secs(10));
    }
    within(Duration::from_secs(10), "every dict reads 99", || {
        dicts
            .iter()
            .all(|d| d.get("a").ok().flatten().as_deref().map(String::as_str) == Some("99"))
    });
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader.join().unwrap();
    }
}
