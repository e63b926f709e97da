//! Review of the async stamp check (`RedisStore::async_stamp`, `AsyncDict` reads under
//! `Always` on the task): replies that leave an async connection out of step must not hand a
//! later check an old stamp; cancelled checks, a restart counted back to the cached stamp, an
//! ACL user without `+info`, and `keys`/`len` under `Always`, all against a real server.

#![allow(clippy::unwrap_used)]

mod common;

use durabledict_test_servers::process_cpu_time as cpu_time;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{CountedSource, keyspace, own_server, raw};
use durabledict_aio::AsyncDict;
use durabledict_core::{Durables, Raw, SetDefault, Store, StoreError, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_redis::aio::AsyncStamp;

/// A TCP proxy to `upstream` that, when armed, misbehaves once on the next `GET` of the stamp
/// key: sends an unsolicited RESP3 push before its reply, or sends its reply twice.
struct Proxy {
    port: u16,
    push_before_next: Arc<AtomicBool>,
    duplicate_next: Arc<AtomicBool>,
    /// Holds the next stamp reply back for this long, then delivers it.
    delay_next: Arc<AtomicBool>,
    /// Sends half of the next stamp reply, then closes the client's connection.
    cut_next: Arc<AtomicBool>,
}

const LATE: Duration = Duration::from_millis(600);

impl Proxy {
    fn start(upstream: u16, stamp_key: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let push_before_next = Arc::new(AtomicBool::new(false));
        let duplicate_next = Arc::new(AtomicBool::new(false));
        let delay_next = Arc::new(AtomicBool::new(false));
        let cut_next = Arc::new(AtomicBool::new(false));
        let (push, dup) = (Arc::clone(&push_before_next), Arc::clone(&duplicate_next));
        let (delay, cut) = (Arc::clone(&delay_next), Arc::clone(&cut_next));
        let needle = format!("GET\r\n${}\r\n{stamp_key}\r\n", stamp_key.len()).into_bytes();
        thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let to_client = Arc::new(Mutex::new(client.try_clone().unwrap()));
                let dup_reply = Arc::new(AtomicBool::new(false));
                let delay_reply = Arc::new(AtomicBool::new(false));
                let cut_reply = Arc::new(AtomicBool::new(false));
                {
                    let (delay, cut, delay_reply, cut_reply) = (
                        Arc::clone(&delay),
                        Arc::clone(&cut),
                        Arc::clone(&delay_reply),
                        Arc::clone(&cut_reply),
                    );
                    let (mut from, mut to) = (client, server.try_clone().unwrap());
                    let (push, dup, to_client, dup_reply, needle) = (
                        Arc::clone(&push),
                        Arc::clone(&dup),
                        Arc::clone(&to_client),
                        Arc::clone(&dup_reply),
                        needle.clone(),
                    );
                    thread::spawn(move || {
                        let mut chunk = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut chunk) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let get = chunk[..n].windows(needle.len()).any(|w| w == needle);
                            if get && push.swap(false, Ordering::SeqCst) {
                                let frame = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n";
                                let _ = to_client.lock().unwrap().write_all(frame);
                            }
                            if get && dup.swap(false, Ordering::SeqCst) {
                                dup_reply.store(true, Ordering::SeqCst);
                            }
                            if get && delay.swap(false, Ordering::SeqCst) {
                                delay_reply.store(true, Ordering::SeqCst);
                            }
                            if get && cut.swap(false, Ordering::SeqCst) {
                                cut_reply.store(true, Ordering::SeqCst);
                            }
                            if to.write_all(&chunk[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
                thread::spawn(move || {
                    let mut from = server;
                    let mut chunk = [0u8; 16384];
                    loop {
                        let n = match from.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if delay_reply.swap(false, Ordering::SeqCst) {
                            thread::sleep(LATE);
                        }
                        if cut_reply.swap(false, Ordering::SeqCst) {
                            let mut to = to_client.lock().unwrap();
                            let _ = to.write_all(&chunk[..n / 2]);
                            let _ = to.shutdown(Shutdown::Both);
                            break;
                        }
                        let mut out = chunk[..n].to_vec();
                        if dup_reply.swap(false, Ordering::SeqCst) {
                            out.extend_from_slice(&chunk[..n]);
                        }
                        if to_client.lock().unwrap().write_all(&out).is_err() {
                            break;
                        }
                    }
                    let _ = to_client.lock().unwrap().shutdown(Shutdown::Both);
                });
            }
        });
        Proxy {
            port,
            push_before_next,
            duplicate_next,
            delay_next,
            cut_next,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Python durabledict's `persist`: `HSET` and `INCR` in one transaction.
fn python_set(url: &str, ks: &str, key: &str, value: &str) {
    let () = redis::pipe()
        .atomic()
        .cmd("HSET")
        .arg(ks)
        .arg(key)
        .arg(value)
        .ignore()
        .cmd("INCR")
        .arg(format!("{ks}last_updated"))
        .ignore()
        .query(&mut raw(url))
        .unwrap();
}

fn text(value: Option<Arc<String>>) -> Option<String> {
    value.map(|v| v.as_str().to_owned())
}

async fn dict_on_store(
    store: RedisStore,
) -> (AsyncDict<String>, RedisStore, CountedSource<AsyncStamp>) {
    let source = CountedSource::new(store.async_stamp().unwrap());
    let dict = AsyncDict::<String>::builder(store.clone(), Raw)
        .stamp_source(Some(source.clone()))
        .build()
        .await
        .unwrap();
    (dict, store, source)
}

async fn dict_on(
    url: &str,
    ks: &str,
) -> (AsyncDict<String>, RedisStore, CountedSource<AsyncStamp>) {
    let store = RedisStore::open(url, ks).unwrap();
    let source = CountedSource::new(store.async_stamp().unwrap());
    let dict = AsyncDict::<String>::builder(store.clone(), Raw)
        .stamp_source(Some(source.clone()))
        .build()
        .await
        .unwrap();
    (dict, store, source)
}

/// A reply that is not a stamp (an unsolicited RESP3 push, as a server or proxy speaking RESP3
/// may send) arrives before the `GET`'s: that check fails and falls back; the connection must
/// not be kept, or the `GET`'s reply, still to be read, answers the next check with an old
/// stamp after another program's write.
async fn an_unsolicited_push_does_not_put_the_connection_out_of_step() {
    let server = own_server();
    let ks = keyspace();
    let proxy = Proxy::start(server.port(), &format!("{ks}last_updated"));
    let (dict, _store, _source) = dict_on(&proxy.url(), &ks).await;
    python_set(&server.url(), &ks, "k", "v1");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));

    proxy.push_before_next.store(true, Ordering::SeqCst);
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));
    assert!(
        !proxy.push_before_next.load(Ordering::SeqCst),
        "the push was sent"
    );
    // Let the `GET`'s own reply arrive behind the push.
    tokio::time::sleep(Duration::from_millis(50)).await;

    python_set(&server.url(), &ks, "k", "v2");
    for _ in 0..3 {
        assert_eq!(
            text(dict.get("k").await.unwrap()),
            Some("v2".into()),
            "a read after the write took an old stamp for a fresh one"
        );
    }
}

/// The `GET`'s reply arrives twice in one segment (a misbehaving proxy): the second copy must
/// not answer the next check.
async fn a_duplicated_reply_does_not_answer_the_next_check() {
    let server = own_server();
    let ks = keyspace();
    let proxy = Proxy::start(server.port(), &format!("{ks}last_updated"));
    let (dict, _store, _source) = dict_on(&proxy.url(), &ks).await;
    python_set(&server.url(), &ks, "k", "v1");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));

    proxy.duplicate_next.store(true, Ordering::SeqCst);
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));
    assert!(
        !proxy.duplicate_next.load(Ordering::SeqCst),
        "the reply was doubled"
    );

    python_set(&server.url(), &ks, "k", "v2");
    for _ in 0..3 {
        assert_eq!(
            text(dict.get("k").await.unwrap()),
            Some("v2".into()),
            "a read after the write took an old stamp for a fresh one"
        );
    }
}

/// A stamp reply held back past the store's `io_timeout` (delivered later, to a check that
/// gave up), and one cut half-way: neither is ever taken for a stamp; the check fails (the
/// epoch moves on, as the failure may hide a restart), the read falls back, and a read after
/// another program's write sees it.
async fn a_late_or_cut_reply_is_never_taken_for_a_stamp() {
    let server = own_server();
    let ks = keyspace();
    let proxy = Proxy::start(server.port(), &format!("{ks}last_updated"));
    let store = RedisStore::builder(&proxy.url(), &ks)
        .io_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (dict, store, source) = dict_on_store(store).await;
    python_set(&server.url(), &ks, "k", "v1");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));

    let epoch = store.epoch();
    proxy.delay_next.store(true, Ordering::SeqCst);
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v1".into()));
    assert_eq!(
        source.failures(),
        1,
        "the held-back reply timed the check out"
    );
    assert!(store.epoch() > epoch);
    python_set(&server.url(), &ks, "k", "v2");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v2".into()));
    tokio::time::sleep(LATE).await;
    for _ in 0..3 {
        assert_eq!(text(dict.get("k").await.unwrap()), Some("v2".into()));
    }

    let epoch = store.epoch();
    proxy.cut_next.store(true, Ordering::SeqCst);
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v2".into()));
    assert_eq!(source.failures(), 2, "the cut reply failed the check");
    assert!(store.epoch() > epoch);
    python_set(&server.url(), &ks, "k", "v3");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("v3".into()));
}

/// Thousands of reads, each under a short timeout that cancels many of them mid-check, while
/// another program writes: a read that starts after a write returned never sees an older
/// value (a cancelled check must leave no half-read connection behind).
async fn cancelled_checks_never_serve_an_older_value() {
    let server = own_server();
    let url = server.url();
    let ks = keyspace();
    let (dict, _store, source) = dict_on(&url, &ks).await;
    python_set(&url, &ks, "k", "0");
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, ks, written, stop) = (
            url.clone(),
            ks.clone(),
            Arc::clone(&written),
            Arc::clone(&stop),
        );
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                python_set(&url, &ks, "k", &n.to_string());
                written.store(n, Ordering::SeqCst);
                thread::sleep(Duration::from_micros(300));
            }
        })
    };
    // Rounds of readers until enough reads were both answered and cancelled (how many a
    // round cancels depends on the machine's speed).
    let (mut answered, mut cancelled) = (0, 0);
    for _round in 0..20 {
        if answered > 100 && cancelled > 100 {
            break;
        }
        let mut readers = Vec::new();
        for r in 0..8u64 {
            let (dict, written) = (dict.clone(), Arc::clone(&written));
            readers.push(tokio::spawn(async move {
                let (mut answered, mut cancelled) = (0u32, 0u32);
                for i in 0..600u64 {
                    let before = written.load(Ordering::SeqCst);
                    // From a few µs (cancels before or inside the check) to 2 ms.
                    let limit = Duration::from_micros(5 + (i * 7 + r * 13) % 2000);
                    match tokio::time::timeout(limit, dict.get("k")).await {
                        Err(_) => cancelled += 1,
                        Ok(read) => {
                            let seen: u64 = read.unwrap().unwrap().parse().unwrap();
                            assert!(seen >= before, "read {seen} after {before} was written");
                            answered += 1;
                        }
                    }
                }
                (answered, cancelled)
            }));
        }
        for reader in readers {
            let (a, c) = reader.await.unwrap();
            answered += a;
            cancelled += c;
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert!(answered > 100, "{answered} answered");
    assert!(cancelled > 100, "{cancelled} cancelled");
    assert!(source.checks() > 100, "checks on the task");
    let last = written.load(Ordering::SeqCst).to_string();
    assert_eq!(text(dict.get("k").await.unwrap()), Some(last));
}

/// A restart that comes back empty, and a Python-style writer that counts the stamp back to
/// the number the dict cached, while readers keep reading on the task: every read started
/// after that writer finished sees the new value (`max_idle`: the store's idle connections).
async fn a_restart_counted_back_while_readers_run(max_idle: Option<usize>) {
    let mut server = own_server();
    let url = server.url();
    let ks = keyspace();
    for i in 0..5 {
        python_set(&url, &ks, "k", &format!("old{i}"));
    }
    let mut builder = RedisStore::builder(&url, &ks);
    if let Some(idle) = max_idle {
        builder = builder.max_idle(idle);
    }
    let (dict, store, _source) = dict_on_store(builder.build().unwrap()).await;
    assert_eq!(text(dict.get("k").await.unwrap()), Some("old4".into()));
    let stop = Arc::new(AtomicBool::new(false));
    let rewritten = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (dict, stop, rewritten) = (dict.clone(), Arc::clone(&stop), Arc::clone(&rewritten));
        readers.push(tokio::spawn(async move {
            let mut after = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let done = rewritten.load(Ordering::SeqCst);
                let read = tokio::time::timeout(Duration::from_millis(200), dict.get("k")).await;
                if let Ok(Ok(value)) = read
                    && done
                {
                    assert_eq!(text(value), Some("new4".into()), "a stale read");
                    after += 1;
                }
                tokio::task::yield_now().await;
            }
            after
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let epoch = store.epoch();
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server.restart().unwrap();
        for i in 0..5 {
            python_set(&url, &ks, "k", &format!("new{i}"));
        }
        server
    })
    .await
    .unwrap();
    rewritten.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut after = 0;
    for reader in readers {
        after += reader.await.unwrap();
    }
    assert!(after > 0, "no read after the rewrite");
    assert!(store.epoch() > epoch);
    drop(server);
}

/// An ACL user without `+info`: the async handshake's `INFO` is refused, so every new async
/// connection may be to a restarted server; reads stay right, after another program's writes
/// too.
async fn a_user_without_info() {
    let server = durabledict_test_servers::RedisServer::start_with_args([
        "--user", "app", "on", ">pw", "~*", "+@all", "-info",
    ])
    .unwrap();
    let url = format!("redis://app:pw@127.0.0.1:{}/", server.port());
    let ks = keyspace();
    let (dict, _store, source) = dict_on(&url, &ks).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    python_set(&url, &ks, "k", "2");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("2".into()));
    assert_eq!(source.failures(), 0);
    // Wrong password: the check fails on the task and the read reports the store's error.
    let bad = format!("redis://app:nope@127.0.0.1:{}/", server.port());
    let store = RedisStore::open(&bad, &ks).unwrap();
    let stamp = store.async_stamp().unwrap();
    let err = stamp.last_updated().await.unwrap_err();
    assert!(!format!("{err}").contains("nope"), "{err}");
}

/// `keys`, `len` and `is_empty` under `Always` with a stamp source see another program's
/// writes at once.
async fn keys_and_len_under_always() {
    let server = own_server();
    let url = server.url();
    let ks = keyspace();
    let (dict, _store, _source) = dict_on(&url, &ks).await;
    assert!(dict.is_empty().await.unwrap());
    python_set(&url, &ks, "a", "1");
    assert_eq!(dict.len().await.unwrap(), 1);
    python_set(&url, &ks, "b", "1");
    let mut keys = dict.keys().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
    assert!(!dict.is_empty().await.unwrap());
}

/// A retrying caller during an outage (the server stopped): reads fail fast, and neither the
/// checks on the task nor the calls on the pool pile up.
async fn a_retrying_caller_during_an_outage() {
    let mut server = own_server();
    let url = server.url();
    let ks = keyspace();
    let (dict, _store, source) = dict_on(&url, &ks).await;
    dict.insert("k", "1".to_string()).await.unwrap();
    server.stop();
    let started = Instant::now();
    let mut failures = 0;
    while started.elapsed() < Duration::from_millis(500) {
        if dict.get("k").await.is_err() {
            failures += 1;
        }
    }
    assert!(failures > 10, "{failures}");
    assert!(source.failures() >= failures);
    server.restart().unwrap();
    assert_eq!(
        text(dict.get("k").await.unwrap()),
        None,
        "the server came back empty"
    );
}

/// Established TCP connections of this process's to `port` (every socket in this test binary
/// is this process's).
fn connections_to(port: u16) -> usize {
    let mut count = 0;
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields[2].rsplit(':').next().unwrap();
            if u16::from_str_radix(remote_port, 16).unwrap() == port && fields[3] == "01" {
                count += 1;
            }
        }
    }
    count
}

/// A thousand reads, each retried at once on failure, while the server is paused: at most
/// `max_blocking` connections are opened (checks on the task and calls on the pool together)
/// and the waiting reads do not spin.
async fn a_paused_server_under_retrying_readers() {
    let server = own_server();
    let url = server.url();
    let ks = keyspace();
    let store = RedisStore::builder(&url, &ks)
        .connect_timeout(Duration::from_millis(300))
        .io_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let source = CountedSource::new(store.async_stamp().unwrap());
    let dict = AsyncDict::<String>::builder(store, Raw)
        .stamp_source(Some(source.clone()))
        .max_blocking(4)
        .build()
        .await
        .unwrap();
    dict.insert("k", "1".to_string()).await.unwrap();
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    let before = connections_to(server.port());
    let pause_for = Duration::from_millis(1500);
    common::pause(&url, pause_for);
    let paused_at = Instant::now();
    let cpu_before = cpu_time();
    let mut readers = Vec::new();
    for _ in 0..1000 {
        let dict = dict.clone();
        readers.push(tokio::spawn(async move {
            while paused_at.elapsed() < pause_for + Duration::from_millis(500) {
                if let Ok(value) = dict.get("k").await {
                    return text(value);
                }
            }
            None
        }));
    }
    // First CPU alone (reading /proc/net/tcp costs CPU of its own), then connections.
    tokio::time::sleep(pause_for / 2).await;
    let cpu = cpu_time() - cpu_before;
    let mut most = 0;
    while paused_at.elapsed() < pause_for - Duration::from_millis(100) {
        most = most.max(connections_to(server.port()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "paused: {most} connections at most ({before} before), {cpu:?} CPU in {:?}, {} checks on the task failed",
        pause_for / 2,
        source.failures()
    );
    for reader in readers {
        assert_eq!(reader.await.unwrap(), Some("1".into()));
    }
    assert!(
        most <= before + 4,
        "{most} connections while paused, {before} before, max_blocking 4"
    );
    assert!(
        cpu < pause_for / 8,
        "{cpu:?} of CPU in {:?} of a pause: the waiting reads spin",
        pause_for / 2
    );
}

/// A server that answers `INFO` with `-ERR` (the command renamed away), with no idle
/// connections kept: every async check opens a new connection, which cannot tell who answers,
/// so a restart counted back to the cached stamp is still seen.
async fn info_refused_and_a_restart_counted_back() {
    let mut server =
        durabledict_test_servers::RedisServer::start_with_args(["--rename-command", "INFO", ""])
            .unwrap();
    let url = server.url();
    let ks = keyspace();
    for i in 0..3 {
        python_set(&url, &ks, "k", &format!("old{i}"));
    }
    let store = RedisStore::builder(&url, &ks).max_idle(0).build().unwrap();
    let (dict, _store, _source) = dict_on_store(store).await;
    assert_eq!(text(dict.get("k").await.unwrap()), Some("old2".into()));
    assert_eq!(text(dict.get("k").await.unwrap()), Some("old2".into()));
    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server.restart().unwrap();
        server
    })
    .await
    .unwrap();
    for i in 0..3 {
        python_set(&url, &ks, "k", &format!("new{i}"));
    }
    assert_eq!(text(dict.get("k").await.unwrap()), Some("new2".into()));
    server.stop();
}

/// Over IPv6 loopback (`redis://[::1]:port/`): the async connection reaches the server too.
async fn ipv6_loopback() {
    let server =
        durabledict_test_servers::RedisServer::start_with_args(["--bind", "127.0.0.1", "::1"])
            .unwrap();
    let url = format!("redis://[::1]:{}/", server.port());
    let ks = keyspace();
    let (dict, _store, source) = dict_on(&url, &ks).await;
    python_set(&server.url(), &ks, "k", "1");
    assert_eq!(text(dict.get("k").await.unwrap()), Some("1".into()));
    assert_eq!((source.checks(), source.failures()), (1, 0));
}

/// A Redis store whose change feed is hidden: `Watch` on it checks the stamp at every read, as
/// under `Always` (a store that cannot push).
#[derive(Debug, Clone)]
struct NoFeed(RedisStore);

impl Store for NoFeed {
    fn init(&self) -> Result<(), StoreError> {
        self.0.init()
    }
    fn persist(&self, key: &str, value: &[u8]) -> Result<i64, StoreError> {
        self.0.persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<i64>, StoreError> {
        self.0.depersist(key)
    }
    fn durables(&self) -> Result<Durables, StoreError> {
        self.0.durables()
    }
    fn last_updated(&self) -> Result<Option<i64>, StoreError> {
        self.0.last_updated()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, i64)>, StoreError> {
        self.0.pop(key)
    }
    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        self.0.setdefault(key, value)
    }
    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<i64>, StoreError> {
        self.0.persist_many(entries)
    }
    fn clear(&self) -> Result<Option<i64>, StoreError> {
        self.0.clear()
    }
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }
    fn keyspace(&self) -> Option<&str> {
        Store::keyspace(&self.0)
    }
}

/// `Watch` without a feed and `AtMostEvery` past its window check the stamp on the task
/// (`get_confirmed`); another program's writes, and a restart counted back to the cached
/// stamp, are seen.
async fn watch_without_a_feed_and_at_most_every() {
    let mut server = own_server();
    let url = server.url();
    for policy in [
        SyncPolicy::Watch,
        SyncPolicy::AtMostEvery(Duration::from_millis(50)),
    ] {
        let ks = keyspace();
        let store = RedisStore::open(&url, &ks).unwrap();
        let source = CountedSource::new(store.async_stamp().unwrap());
        let dict = AsyncDict::<String>::builder(NoFeed(store.clone()), Raw)
            .policy(policy)
            .stamp_source(Some(source.clone()))
            .build()
            .await
            .unwrap();
        assert!(dict.checks_on_task(), "{policy:?}");
        for i in 0..3 {
            python_set(&url, &ks, "k", &format!("old{i}"));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(text(dict.get("k").await.unwrap()), Some("old2".into()));
        assert!(source.checks() >= 1, "{policy:?}");
        server = tokio::task::spawn_blocking(move || {
            server.stop();
            server.restart().unwrap();
            server
        })
        .await
        .unwrap();
        for i in 0..3 {
            python_set(&url, &ks, "k", &format!("new{i}"));
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            text(dict.get("k").await.unwrap()),
            Some("new2".into()),
            "{policy:?}"
        );
        python_set(&url, &ks, "k", "newer");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            text(dict.get("k").await.unwrap()),
            Some("newer".into()),
            "{policy:?}"
        );
    }
}

async fn all() {
    an_unsolicited_push_does_not_put_the_connection_out_of_step().await;
    a_duplicated_reply_does_not_answer_the_next_check().await;
    a_late_or_cut_reply_is_never_taken_for_a_stamp().await;
    cancelled_checks_never_serve_an_older_value().await;
    // Pooled async connections (they fail), and none kept (a new one meets the new run_id).
    a_restart_counted_back_while_readers_run(None).await;
    a_restart_counted_back_while_readers_run(Some(0)).await;
    a_user_without_info().await;
    keys_and_len_under_always().await;
    a_retrying_caller_during_an_outage().await;
    a_paused_server_under_retrying_readers().await;
    info_refused_and_a_restart_counted_back().await;
    ipv6_loopback().await;
    watch_without_a_feed_and_at_most_every().await;
}

/// Held by each flavour for its whole run: `cargo test` runs both as threads of one process,
/// and the paused-server check measures the process's CPU (the other flavour's work was
/// counted as spinning: 190 ms in 750 ms).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn review_multi_thread() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(all());
}

#[test]
fn review_current_thread() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(all());
}
