//! The Redis store's costs, each against a raw client round trip measured in the same run, on
//! a `redis-server` this bench starts on a loopback port.
//!
//! | group | measured | baseline | target |
//! |---|---|---|---|
//! | `redis_always_read` | `dict.get` under `Always` (one stamp `GET`) | raw `GET` of the stamp | ≤ 1.15× |
//! | `redis_own_write` | `dict.insert` with 10 and with 10,000 keys | raw `MULTI HSET INCR EXEC` | ≤ 1.3×; 10,000 keys ≤ 1.3× 10 keys |
//! | `redis_reload_10000` | the read after another instance's write (reload, 10,000 JSON values) | raw `HGETALL` into a map | ≤ 2× |
//! | `redis_reload_10000` | `store_durables` (the store's part) and `decode_only` (decoding the values, no I/O) | | informative |
//! | `paired: watch read` | `dict.get` under `Watch`, feed up | `HashMap<String, Arc<V>>` get + clone | ≤ 1.5× |
//! | `feed: propagation` | a write's return to another handle's `Watch` dict serving it, and to a listener firing | | p50 ≤ 1 ms, p99 ≤ 5 ms |
//! | `feed: 200 dicts` | 200 dicts (200 store handles, so 200 feed connections) hearing one write | | p99 ≤ 20 ms |
//! | `redis_two_threads` | two threads reading under `Always` (pooled connections) | two threads sharing one raw connection behind a mutex, and one raw connection each | informative |
//!
//! On a busy machine a baseline and its subject measured a few seconds apart can differ by 2×
//! from load alone, so after the criterion groups the bench also prints **paired** figures:
//! baseline and subject run in alternating batches, and the median of the per-round ratios is
//! reported (`paired:` lines). Those are the ratios to hold against the targets.
//!
//! Run with `cargo xtask bench redis` (or `cargo bench --features redis --bench redis`).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::{DurableDict, Encoding, SyncPolicy};
use durabledict_encoding::Json;
use durabledict_redis::RedisStore;
use durabledict_redis::redis::{self, Connection};
use durabledict_test_servers::RedisServer;
use paired::{paired, paired_each, timed};

struct Bench {
    _server: RedisServer,
    url: String,
}

fn server() -> Bench {
    let server = RedisServer::start().expect("start redis-server (cargo xtask install)");
    let url = server.url();
    Bench {
        _server: server,
        url,
    }
}

fn raw(url: &str) -> Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("raw connection")
}

fn dict(url: &str, keyspace: &str, keys: usize) -> (RedisStore, DurableDict<String>) {
    let store = RedisStore::open(url, keyspace).expect("store");
    let dict = DurableDict::builder(store.clone(), Json::<String>::new())
        .policy(SyncPolicy::Always)
        .build()
        .expect("build");
    if keys > 0 {
        dict.update((0..keys).map(|i| (format!("feature.flag.{i}"), format!("value {i}"))))
            .expect("fill");
    }
    (store, dict)
}

fn always_read(c: &mut Criterion, bench: &Bench) {
    let (store, dict) = dict(&bench.url, "bench-read", 100);
    let mut conn = raw(&bench.url);
    let stamp_key = store.stamp_key().to_owned();
    let mut group = c.benchmark_group("redis_always_read");
    group.bench_function("raw_get_stamp", |b| {
        b.iter(|| {
            let stamp: Option<i64> = redis::cmd("GET")
                .arg(&stamp_key)
                .query(&mut conn)
                .expect("GET");
            black_box(stamp)
        })
    });
    group.bench_function("dict_get", |b| {
        b.iter(|| black_box(dict.get(black_box("feature.flag.7")).expect("get")))
    });
    group.finish();
}

/// The `i`th key of a dict of `keys` keys, cycling.
fn cycled(i: u64, keys: u64) -> String {
    format!("feature.flag.{}", i % keys)
}

fn own_write(c: &mut Criterion, bench: &Bench) {
    let (store, _) = dict(&bench.url, "bench-write-raw", 10);
    let (_, small) = dict(&bench.url, "bench-write-10", 10);
    let (_, large) = dict(&bench.url, "bench-write-10000", 10_000);
    let mut conn = raw(&bench.url);
    let (hash, stamp) = (store.hash_key().to_owned(), store.stamp_key().to_owned());
    let mut group = c.benchmark_group("redis_own_write");
    let mut i = 0u64;
    group.bench_function("raw_multi_hset_incr", |b| {
        b.iter(|| {
            i += 1;
            let (stamp,): (i64,) = redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(&hash)
                .arg("feature.flag.3")
                .arg(format!("\"value {i}\""))
                .ignore()
                .cmd("INCR")
                .arg(&stamp)
                .query(&mut conn)
                .expect("MULTI");
            black_box(stamp)
        })
    });
    // Every write goes to the next key, cycling over the whole dict (see own_write in
    // benches/memory.rs).
    for (name, dict, keys) in [
        ("dict_insert_10_keys", &small, 10),
        ("dict_insert_10000_keys", &large, 10_000),
    ] {
        let before = dict.status().reloads;
        group.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                dict.insert(&cycled(i, keys), format!("value {i}"))
                    .expect("insert")
            })
        });
        assert_eq!(dict.status().reloads, before, "own writes must not reload");
    }
    group.finish();
}

fn reload(c: &mut Criterion, bench: &Bench) {
    const KEYS: usize = 10_000;
    let (store, dict) = dict(&bench.url, "bench-reload", KEYS);
    let mut conn = raw(&bench.url);
    let (hash, stamp) = (store.hash_key().to_owned(), store.stamp_key().to_owned());
    let mut group = c.benchmark_group("redis_reload_10000");
    group.sample_size(20);
    group.bench_function("raw_hgetall", |b| {
        b.iter(|| {
            let all: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(&hash)
                .query(&mut conn)
                .expect("HGETALL");
            assert_eq!(all.len(), KEYS);
            black_box(all)
        })
    });
    // Another instance's write: the stamp moves; the next read reloads everything.
    let mut other = raw(&bench.url);
    let mut bump = || {
        let _: i64 = redis::cmd("INCR")
            .arg(&stamp)
            .query(&mut other)
            .expect("INCR");
    };
    group.bench_function("store_durables", |b| {
        b.iter(|| black_box(durabledict::Store::durables(&store).expect("durables")))
    });
    // What the dict adds on top of the store: decoding every value (the core decodes all of
    // them on each reload, changed or not).
    let fetched = durabledict::Store::durables(&store).expect("durables");
    let json = Json::<String>::new();
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            let decoded: Vec<(&str, String)> = fetched
                .entries
                .iter()
                .map(|(k, v)| (k.as_str(), json.decode(v).expect("decode")))
                .collect();
            black_box(decoded)
        })
    });
    group.bench_function("dict_read_after_other_write", |b| {
        b.iter_batched(
            &mut bump,
            |()| black_box(dict.get("feature.flag.7").expect("get")),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Runs `per_thread` reads on each of two threads at once; the wall time per read.
fn two_threads(iters: u64, read: impl Fn() + Sync) -> Duration {
    let per_thread = iters.div_ceil(2);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..per_thread {
                    read();
                }
            });
        }
    });
    started.elapsed() / 2
}

fn threaded(c: &mut Criterion, bench: &Bench) {
    let (store, dict) = dict(&bench.url, "bench-threads", 100);
    let stamp_key = store.stamp_key().to_owned();
    let get_stamp = |conn: &mut Connection| {
        let stamp: Option<i64> = redis::cmd("GET").arg(&stamp_key).query(conn).expect("GET");
        black_box(stamp);
    };
    let shared = Mutex::new(raw(&bench.url));
    let own: Arc<[Mutex<Connection>; 2]> =
        Arc::new([Mutex::new(raw(&bench.url)), Mutex::new(raw(&bench.url))]);
    let mut group = c.benchmark_group("redis_two_threads");
    group.bench_function("raw_one_connection_behind_a_mutex", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                get_stamp(&mut shared.lock().expect("lock"));
            })
        })
    });
    group.bench_function("raw_one_connection_each", |b| {
        b.iter_custom(|iters| {
            let next = std::sync::atomic::AtomicUsize::new(0);
            two_threads(iters, || {
                // Each thread keeps to one connection: the lock is never contended.
                thread_local!(static SLOT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) });
                let slot = SLOT.with(|s| {
                    s.get().unwrap_or_else(|| {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2;
                        s.set(Some(n));
                        n
                    })
                });
                get_stamp(&mut own[slot].lock().expect("lock"));
            })
        })
    });
    group.bench_function("dict_get_pooled", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                black_box(dict.get("feature.flag.7").expect("get"));
            })
        })
    });
    group.finish();
}

fn paired_ratios(bench: &Bench) {
    let mut conn = raw(&bench.url);

    let (store, dict_read) = dict(&bench.url, "paired-read", 100);
    let stamp_key = store.stamp_key().to_owned();
    let get_stamp = |conn: &mut Connection| {
        let stamp: Option<i64> = redis::cmd("GET").arg(&stamp_key).query(conn).expect("GET");
        black_box(stamp);
    };
    paired_each(
        "always read vs raw GET",
        1.15,
        200,
        50,
        || timed(|| get_stamp(&mut conn)),
        || timed(|| drop(black_box(dict_read.get("feature.flag.7").expect("get")))),
    );

    let (raw_store, _) = dict(&bench.url, "paired-write-raw", 10);
    let (_, small) = dict(&bench.url, "paired-write-10", 10);
    let (_, large) = dict(&bench.url, "paired-write-10000", 10_000);
    let (hash, stamp) = (
        raw_store.hash_key().to_owned(),
        raw_store.stamp_key().to_owned(),
    );
    let counter = std::cell::Cell::new(0u64);
    let multi = |conn: &mut Connection, i: u64| {
        let (stamp,): (i64,) = redis::pipe()
            .atomic()
            .cmd("HSET")
            .arg(&hash)
            .arg("feature.flag.3")
            .arg(format!("\"value {i}\""))
            .ignore()
            .cmd("INCR")
            .arg(&stamp)
            .query(conn)
            .expect("MULTI");
        black_box(stamp);
    };
    let next = || {
        counter.set(counter.get() + 1);
        counter.get()
    };
    let reloads = (small.status().reloads, large.status().reloads);
    // One own write, to the next of the dict's `keys` keys.
    let insert = |dict: &DurableDict<String>, keys: u64| {
        let n = next();
        timed(|| {
            dict.insert(&cycled(n, keys), format!("value {n}"))
                .expect("insert")
        })
    };
    paired_each(
        "own write, 10 keys, vs raw MULTI HSET INCR",
        1.3,
        200,
        20,
        || {
            let n = next();
            timed(|| multi(&mut conn, n))
        },
        || insert(&small, 10),
    );
    paired_each(
        "own write, 10,000 keys, vs 10 keys",
        1.3,
        200,
        20,
        || insert(&small, 10),
        || insert(&large, 10_000),
    );
    assert_eq!(
        (small.status().reloads, large.status().reloads),
        reloads,
        "own writes must not reload"
    );

    let (store, dict) = dict(&bench.url, "paired-reload", 10_000);
    let (hash, stamp) = (store.hash_key().to_owned(), store.stamp_key().to_owned());
    let mut other = raw(&bench.url);
    // The baseline of both: the raw round trip that reads the whole hash.
    let mut raw_hgetall = || {
        timed(|| {
            let all: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
                .arg(&hash)
                .query(&mut conn)
                .expect("HGETALL");
            black_box(all);
        })
    };
    paired_each(
        "read after another instance's write, 10,000 JSON values, vs raw HGETALL",
        2.0,
        30,
        2,
        &mut raw_hgetall,
        || {
            let _: i64 = redis::cmd("INCR")
                .arg(&stamp)
                .query(&mut other)
                .expect("INCR");
            timed(|| drop(black_box(dict.get("feature.flag.7").expect("get"))))
        },
    );
    paired_each(
        "the store's part of that reload (durables) vs raw HGETALL",
        1.1,
        30,
        2,
        &mut raw_hgetall,
        || {
            timed(|| {
                drop(black_box(
                    durabledict::Store::durables(&store).expect("durables"),
                ))
            })
        },
    );
}

fn benches(c: &mut Criterion) {
    let bench = server();
    // `DURABLEDICT_BENCH_ONLY=feed`: the feed figures alone (they take a minute; the rest ten).
    if std::env::var("DURABLEDICT_BENCH_ONLY").as_deref() == Ok("feed") {
        feed_figures(&bench);
        return;
    }
    always_read(c, &bench);
    own_write(c, &bench);
    reload(c, &bench);
    threaded(c, &bench);
    paired_ratios(&bench);
    feed_figures(&bench);
}

/// Prints p50, p99 and the largest of `samples`, in milliseconds, against the targets.
fn percentiles(name: &str, mut samples: Vec<Duration>, p50_target: f64, p99_target: f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[i].as_secs_f64() * 1e3
    };
    let (p50, p99) = (at(0.5), at(0.99));
    let verdict = if p50 <= p50_target && p99 <= p99_target {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "feed: {name}: n {} p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms (target p50 <= {p50_target} ms, p99 <= {p99_target} ms: {verdict})",
        samples.len(),
        at(1.0),
    );
}

fn watch_dict(url: &str, keyspace: &str) -> (RedisStore, Arc<DurableDict<String>>) {
    let store = RedisStore::open(url, keyspace).expect("store");
    let feed = durabledict::Store::feed(&store).expect("a Redis store has a feed");
    let dict = DurableDict::builder(store.clone(), Json::<String>::new())
        .policy(SyncPolicy::Watch)
        .build()
        .expect("build");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !feed.state().is_up() {
        assert!(Instant::now() < deadline, "the feed never came up");
        std::thread::sleep(Duration::from_millis(1));
    }
    (store, Arc::new(dict))
}

/// What Python durabledict sends for `d[key] = value` (JSON here): `HSET` and `INCR` in one
/// `MULTI`, on a connection no store of this process knows of, so only the server's notice
/// can tell a dict.
fn python_write(conn: &mut Connection, store: &RedisStore, key: &str, value: &str) {
    redis::pipe()
        .atomic()
        .hset(store.hash_key(), key, format!("\"{value}\""))
        .ignore()
        .incr(store.stamp_key(), 1)
        .ignore()
        .exec(conn)
        .expect("MULTI");
}

/// Client tracking: local reads, how fast a change arrives, and 200 dicts on one server.
fn feed_figures(bench: &Bench) {
    let (_, dict) = watch_dict(&bench.url, "feed-read");
    dict.update((0..100).map(|i| (format!("feature.flag.{i}"), format!("value {i}"))))
        .expect("fill");
    let map: HashMap<String, Arc<String>> = dict
        .snapshot()
        .expect("snapshot")
        .iter()
        .map(|(k, v)| (k.to_owned(), Arc::clone(v)))
        .collect();
    drop(dict.get("feature.flag.7"));
    paired(
        "watch read (feed up) vs HashMap get + Arc clone",
        1.5,
        41,
        20_000,
        |n| {
            timed(|| {
                for _ in 0..n {
                    black_box(map.get(black_box("feature.flag.7")).cloned());
                }
            })
        },
        |n| {
            timed(|| {
                for _ in 0..n {
                    black_box(dict.get(black_box("feature.flag.7")).expect("get"));
                }
            })
        },
    );

    // Propagation: from the writer's return to another handle's Watch dict serving the value.
    const ROUNDS: usize = 400;
    let (store, reader) = watch_dict(&bench.url, "feed-propagation");
    let (_, listening) = watch_dict(&bench.url, "feed-propagation");
    let events = listening.subscribe();
    let writer = DurableDict::builder(
        RedisStore::open(&bench.url, "feed-propagation").expect("store"),
        Json::<String>::new(),
    )
    .policy(SyncPolicy::Manual)
    .build()
    .expect("build");
    let mut python = raw(&bench.url);
    let (mut served, mut served_python, mut heard_python) = (Vec::new(), Vec::new(), Vec::new());
    // Polls, yielding between reads: a busy loop would take a core from the feed thread.
    let until_served = |value: &str, started: Instant| {
        while reader.get("k").expect("get").as_deref().map(String::as_str) != Some(value) {
            std::thread::yield_now();
        }
        started.elapsed()
    };
    let until_heard = |value: &str, started: Instant| loop {
        match events.next_timeout(Duration::from_secs(5)) {
            Some(durabledict::Event::Changed(change))
                if change.new.as_deref().map(String::as_str) == Some(value) =>
            {
                return started.elapsed();
            }
            Some(_) => {}
            None => panic!("the listener never heard {value}"),
        }
    };
    for i in 0..ROUNDS {
        // A writer on another store handle of this process: its write notifies this process's
        // feeds of that keyspace before it returns.
        let value = format!("rust {i}");
        writer.insert("k", value.clone()).expect("insert");
        served.push(until_served(&value, Instant::now()));
        until_heard(&value, Instant::now());
        std::thread::sleep(Duration::from_millis(2));
        // A Python-style writer: only the server's push tells the dicts. Every other round
        // times the reader, the others the listener, so that neither waits for the other.
        let value = format!("python {i}");
        python_write(&mut python, &store, "k", &value);
        let started = Instant::now();
        if i % 2 == 0 {
            served_python.push(until_served(&value, started));
            until_heard(&value, started);
        } else {
            heard_python.push(until_heard(&value, started));
            until_served(&value, started);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    percentiles(
        "another handle's write (same process) to a Watch dict serving it",
        served,
        1.0,
        5.0,
    );
    percentiles(
        "a Python-style write to a Watch dict serving it (server push)",
        served_python,
        1.0,
        5.0,
    );
    percentiles(
        "a Python-style write to a listener firing (server push)",
        heard_python,
        1.0,
        5.0,
    );

    // 200 dicts, each on its own store handle (its own feed connection and thread) and with a
    // listener, all hearing one Python-style write.
    const DICTS: usize = 200;
    let dicts: Vec<_> = (0..DICTS)
        .map(|_| watch_dict(&bench.url, "feed-fleet"))
        .collect();
    let subscriptions: Vec<_> = dicts.iter().map(|(_, dict)| dict.subscribe()).collect();
    let feeds: Vec<_> = dicts
        .iter()
        .map(|(store, _)| durabledict::Store::feed(store).expect("feed"))
        .collect();
    let (fleet_store, _) = &dicts[0];
    let (mut heard, mut last, mut noticed) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let value = format!("fleet {i}");
        let states: Vec<_> = feeds.iter().map(|feed| feed.state()).collect();
        python_write(&mut python, fleet_store, "k", &value);
        let started = Instant::now();
        // First when every feed has the notice (delivery alone)...
        let mut waiting: Vec<usize> = (0..DICTS).collect();
        while !waiting.is_empty() {
            waiting.retain(|&d| feeds[d].state() == states[d]);
            std::thread::yield_now();
        }
        noticed.push(started.elapsed());
        // ...then when every listener fired (the notice, a stamp check and a reload each).
        let mut pending: Vec<usize> = (0..DICTS).collect();
        while !pending.is_empty() {
            pending.retain(|&d| {
                while let Some(event) = subscriptions[d].try_next() {
                    if let durabledict::Event::Changed(change) = event
                        && change.new.as_deref() == Some(&value)
                    {
                        heard.push(started.elapsed());
                        return false;
                    }
                }
                true
            });
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} dicts never heard",
                pending.len()
            );
            std::thread::yield_now();
        }
        last.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    percentiles(
        "200 dicts (200 feed connections), a listener each, one write: every listener",
        heard,
        20.0,
        20.0,
    );
    percentiles(
        "200 dicts, one write: the last of the 200 feeds notified",
        noticed,
        20.0,
        20.0,
    );
    percentiles(
        "200 dicts, one write: the last of the 200 listeners",
        last,
        20.0,
        20.0,
    );
}

criterion_group! {
    name = redis_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(redis_benches);
