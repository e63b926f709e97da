//! Review of the shared checks and loads of a sharing feed and its keeper thread, against a
//! real redis-server.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Event, Raw, Store, Subscription, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{RedisServer, process_cpu_time};

fn within(bound: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The tests that measure this process's CPU run one at a time (`cargo test` runs a binary's
/// tests as threads of one process).
static CPU: Mutex<()> = Mutex::new(());

fn share_over(span: Duration) -> f64 {
    let (cpu, wall) = (process_cpu_time(), Instant::now());
    std::thread::sleep(span);
    (process_cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// Every request that fails while the server is away marks the feed lost again: a keeper
/// round woken by that ran again at once (92% of a core with three subscribed dicts).
#[test]
fn subscribed_dicts_do_not_spin_while_the_server_is_down() {
    let _cpu = CPU.lock().unwrap_or_else(PoisonError::into_inner);
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

/// A TCP proxy to `server` that stops forwarding a client's commands at the first chunk
/// holding `marker`, until released: the write carrying it waits for its reply.
struct HoldingProxy {
    port: u16,
    holding: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
}

impl HoldingProxy {
    fn start(server: &RedisServer, marker: &'static [u8]) -> Self {
        let upstream_addr = format!("127.0.0.1:{}", server.port());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let holding = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (held, released) = (Arc::clone(&holding), Arc::clone(&release));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = TcpStream::connect(&upstream_addr) else {
                    continue;
                };
                let (mut from, mut to) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (held, released) = (Arc::clone(&held), Arc::clone(&released));
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 * 1024];
                    loop {
                        let n = match from.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if buf[..n].windows(marker.len()).any(|w| w == marker) {
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
