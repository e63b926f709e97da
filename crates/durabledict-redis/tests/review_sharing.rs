//! Review of the shared checks and loads of a sharing feed and its keeper thread, against a
//! real redis-server.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Event, Raw, Store, SyncPolicy};
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
