//! The ZooKeeper store's costs, each against a baseline measured in the same run, on a
//! standalone ZooKeeper this bench starts on a loopback port.
//!
//! | group | measured | baseline | target |
//! |---|---|---|---|
//! | `zookeeper_always_read` | `dict.get` under `Always` (1,000 keys); for reference `Manual`, the same on `MemoryStore`, and `last_updated` alone | `HashMap` get + clone | ≤ 2× |
//! | `zookeeper_own_write` | `dict.insert` of an existing key (1,000 keys) | raw `set_data` round trip | ≤ 1.2× |
//! | `zookeeper_propagation` | insert in dict A until dict B (own client, `Always`) reads it | raw `set_data` round trip | p50 ≤ 1.5 ms, p99 ≤ 10 ms |
//! | (paired only) full load of 10,000 znodes | a new store's first `durables` (connect included) | 10,000 sequential raw `get_data` | ≤ 0.25× |
//! | (paired only) every way of reading 10,000 znodes: the `zookeeper` client from 8, 32, 128 threads; pipelined `getData` and `multiRead` on a raw connection | the same | 10,000 sequential raw `get_data` | (for the record) |
//!
//! The propagation percentiles over 200 writes (after 200 to warm up; 1,000 keys in the
//! keyspace, so a full reload per change would show; the reader yields between reads, as a
//! spinning one would take a core from the server), with B under `Always` and under `Watch`
//! (the watch as its change feed), are printed before the criterion groups. On a shared machine
//! the baseline and the subject of a criterion group drift apart from load alone, so after the
//! groups the bench also prints **paired** figures (`paired:` lines): baseline and subject run
//! in alternating batches, and the median of the per-round ratios is reported. Those are the
//! ratios to hold against the targets.
//!
//! Run with `cargo xtask bench zookeeper` (or `cargo bench --features zookeeper --bench
//! zookeeper`); `DURABLEDICT_BENCH_ONLY=load` runs the full-load figures alone.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::{DurableDict, MemoryStore, Raw, Store, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::zookeeper::{self, WatchedEvent};
use durabledict_zookeeper::{ZooKeeperStore, bench_support};
use paired::paired;

const KEYS: usize = 1_000;

/// Where the raw baselines write: outside every dict's keyspace, so that a baseline write is
/// not a foreign change the dicts' watches report (and reload for).
const RAW_NODE: &str = "/bench-raw";

fn keys() -> Vec<String> {
    (0..KEYS).map(|i| format!("feature.flag.{i}")).collect()
}

fn dict(connect: &str, keyspace: &str) -> DurableDict<String> {
    let store = ZooKeeperStore::connect(connect, keyspace).expect("connect a store");
    DurableDict::builder(store, Raw)
        .policy(SyncPolicy::Always)
        .build()
        .expect("build a dict")
}

fn filled(connect: &str, keyspace: &str) -> DurableDict<String> {
    let dict = dict(connect, keyspace);
    if dict.len().expect("len") < KEYS {
        dict.update(keys().into_iter().map(|k| (k, "enabled".to_string())))
            .expect("fill");
    }
    dict
}

fn raw_client(connect: &str) -> zookeeper::ZooKeeper {
    let zk = zookeeper::ZooKeeper::connect(connect, Duration::from_secs(10), |_: WatchedEvent| {})
        .expect("raw client");
    match zk.create(
        RAW_NODE,
        Vec::new(),
        zookeeper::Acl::open_unsafe().clone(),
        zookeeper::CreateMode::Persistent,
    ) {
        Ok(_) | Err(zookeeper::ZkError::NodeExists) => {}
        Err(e) => panic!("create {RAW_NODE}: {e:?}"),
    }
    zk
}

fn always_read(c: &mut Criterion, connect: &str) {
    let keys = keys();
    let baseline: HashMap<String, Arc<String>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new("enabled".to_string())))
        .collect();
    let dict = filled(connect, "/bench/read");
    let manual = DurableDict::<String>::builder(
        ZooKeeperStore::connect(connect, "/bench/read").expect("connect a store"),
        Raw,
    )
    .policy(SyncPolicy::Manual)
    .build()
    .expect("build a dict");
    let mut group = c.benchmark_group("zookeeper_always_read");
    let mut i = 0;
    group.bench_function("hashmap_get_clone", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(baseline.get(black_box(keys[i].as_str())).cloned())
        })
    });
    // The core's own cost of a cached read, without any stamp check, for reference.
    group.bench_function("dict_manual", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(manual.get(black_box(keys[i].as_str())).expect("get"))
        })
    });
    // References that split the cost: the core's `Always` path on `MemoryStore`, and the
    // stamp check alone, on this store and on `MemoryStore`.
    let memory = MemoryStore::new();
    let memory_always = DurableDict::<String>::builder(memory.clone(), Raw)
        .build()
        .expect("build a dict");
    memory_always
        .update(keys.iter().map(|k| (k.clone(), "enabled".to_string())))
        .expect("fill");
    group.bench_function("memory_dict_always", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(memory_always.get(black_box(keys[i].as_str())).expect("get"))
        })
    });
    let store: Box<dyn Store> =
        Box::new(ZooKeeperStore::connect(connect, "/bench/read").expect("connect a store"));
    group.bench_function("store_last_updated", |b| {
        b.iter(|| black_box(store.last_updated().expect("last_updated")))
    });
    let memory: Box<dyn Store> = Box::new(memory);
    group.bench_function("memory_store_last_updated", |b| {
        b.iter(|| black_box(memory.last_updated().expect("last_updated")))
    });
    group.bench_function("dict_always", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(dict.get(black_box(keys[i].as_str())).expect("get"))
        })
    });
    group.finish();
}

fn own_write(c: &mut Criterion, connect: &str) {
    let dict = filled(connect, "/bench/write");
    let raw = raw_client(connect);
    let mut group = c.benchmark_group("zookeeper_own_write");
    let mut n = 0u64;
    group.bench_function("raw_set_data", |b| {
        b.iter(|| {
            n += 1;
            raw.set_data(RAW_NODE, n.to_string().into_bytes(), None)
                .expect("set_data")
        })
    });
    group.bench_function("dict_insert", |b| {
        b.iter(|| {
            n += 1;
            dict.insert("feature.flag.7", n.to_string())
                .expect("insert")
        })
    });
    group.finish();
}

/// Writes through `a` until `b` reads the new value.
fn propagate(a: &DurableDict<String>, b: &DurableDict<String>, n: u64) -> Duration {
    let value = n.to_string();
    let start = Instant::now();
    a.insert("feature.flag.1", value.clone()).expect("insert");
    loop {
        if b.get("feature.flag.1")
            .expect("get")
            .is_some_and(|v| *v == value)
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "b never saw the write"
        );
        // Yield rather than spin: on a small machine a spinning reader takes a core from the
        // server and the clients whose work it is waiting for.
        std::thread::yield_now();
    }
}

/// Prints the propagation percentiles from `a` to `b` over 200 writes, after 200 to warm up
/// (the server's JIT, the clients' buffers).
fn propagation_percentiles(
    a: &DurableDict<String>,
    b: &DurableDict<String>,
    n: &mut u64,
    what: &str,
) {
    for _ in 0..200 {
        *n += 1;
        propagate(a, b, *n);
    }
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            *n += 1;
            propagate(a, b, *n)
        })
        .collect();
    times.sort();
    eprintln!(
        "zookeeper propagation to a dict under {what} over 200 writes, {KEYS} keys: p50 {:?}, p99 {:?}, max {:?}",
        times[100], times[198], times[199]
    );
}

fn propagation(c: &mut Criterion, connect: &str) {
    let a = filled(connect, "/bench/propagation");
    let b = dict(connect, "/bench/propagation");
    let watch = DurableDict::<String>::builder(
        ZooKeeperStore::connect(connect, "/bench/propagation").expect("connect a store"),
        Raw,
    )
    .policy(SyncPolicy::Watch)
    .build()
    .expect("build a dict");
    let raw = raw_client(connect);
    let mut n = 0u64;
    propagation_percentiles(&a, &b, &mut n, "Always");
    propagation_percentiles(&a, &watch, &mut n, "Watch");
    drop(watch);
    let mut group = c.benchmark_group("zookeeper_propagation");
    group.bench_function("raw_set_data", |bench| {
        bench.iter(|| {
            n += 1;
            raw.set_data(RAW_NODE, n.to_string().into_bytes(), None)
                .expect("set_data")
        })
    });
    group.bench_function("write_until_read_elsewhere", |bench| {
        bench.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    n += 1;
                    propagate(&a, &b, n)
                })
                .sum()
        })
    });
    group.finish();
}

fn paired_ratios(connect: &str) {
    let keys = keys();
    let baseline: HashMap<String, Arc<String>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new("enabled".to_string())))
        .collect();
    let dict = filled(connect, "/bench/read");
    let mut i = 0;
    let mut j = 0;
    paired(
        "always read vs HashMap get + clone",
        2.0,
        200,
        20_000,
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                i = (i + 1) % KEYS;
                black_box(baseline.get(black_box(keys[i].as_str())).cloned());
            }
            start.elapsed()
        },
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                j = (j + 1) % KEYS;
                black_box(dict.get(black_box(keys[j].as_str())).expect("get"));
            }
            start.elapsed()
        },
    );
    let writer = filled(connect, "/bench/write");
    let raw = raw_client(connect);
    let (mut n, mut m) = (0u64, 0u64);
    paired(
        "own write vs raw set_data",
        1.2,
        100,
        10,
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                n += 1;
                raw.set_data(RAW_NODE, n.to_string().into_bytes(), None)
                    .expect("set_data");
            }
            start.elapsed()
        },
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                m += 1;
                writer
                    .insert("feature.flag.7", m.to_string())
                    .expect("insert");
            }
            start.elapsed()
        },
    );
}

/// How many znodes the full-load comparison reads.
const LOAD_KEYS: usize = 10_000;

/// A new store's first load of [`LOAD_KEYS`] znodes (connecting included) against as many
/// sequential raw `get_data` round trips, paired.
fn full_load(connect: &str) {
    const KEYSPACE: &str = "/bench/load";
    let raw = raw_client(connect);
    for path in ["/bench", KEYSPACE] {
        match raw.create(
            path,
            Vec::new(),
            zookeeper::Acl::open_unsafe().clone(),
            zookeeper::CreateMode::Persistent,
        ) {
            Ok(_) | Err(zookeeper::ZkError::NodeExists) => {}
            Err(e) => panic!("create {path}: {e:?}"),
        }
    }
    let nodes: Vec<String> = (0..LOAD_KEYS)
        .map(|i| format!("{KEYSPACE}/feature.flag.{i}"))
        .collect();
    if raw.get_children(KEYSPACE, false).expect("list").len() < LOAD_KEYS {
        std::thread::scope(|scope| {
            for chunk in nodes.chunks(LOAD_KEYS / 16) {
                let raw = &raw;
                scope.spawn(move || {
                    for node in chunk {
                        match raw.create(
                            node,
                            b"enabled".to_vec(),
                            zookeeper::Acl::open_unsafe().clone(),
                            zookeeper::CreateMode::Persistent,
                        ) {
                            Ok(_) | Err(zookeeper::ZkError::NodeExists) => {}
                            Err(e) => panic!("create {node}: {e:?}"),
                        }
                    }
                });
            }
        });
    }
    paired(
        "full load of 10,000 znodes vs 10,000 sequential raw get_data",
        0.25,
        7,
        1,
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                for node in &nodes {
                    black_box(raw.get_data(node, false).expect("get_data"));
                }
            }
            start.elapsed()
        },
        |batch| {
            let start = Instant::now();
            for _ in 0..batch {
                let store = ZooKeeperStore::connect(connect, KEYSPACE).expect("connect a store");
                let loaded = store.durables().expect("load");
                assert_eq!(loaded.entries.len(), LOAD_KEYS);
                black_box(loaded);
            }
            start.elapsed()
        },
    );
}

/// The ways a full load can read [`LOAD_KEYS`] znodes, each paired with 10,000 sequential raw
/// `get_data` calls: through the `zookeeper` client from 1 to 128 threads (the crate
/// configured as well as it can be), and on a connection of the store's own that pipelines
/// `getData` requests or sends them as `multiRead`s (the server's ceiling on one connection).
fn load_paths(connect: &str) {
    const KEYSPACE: &str = "/bench/load";
    let raw = raw_client(connect);
    let nodes: Vec<String> = (0..LOAD_KEYS)
        .map(|i| format!("{KEYSPACE}/feature.flag.{i}"))
        .collect();
    let sequential = |batch: u32| {
        let start = Instant::now();
        for _ in 0..batch {
            for node in &nodes {
                black_box(raw.get_data(node, false).expect("get_data"));
            }
        }
        start.elapsed()
    };
    let timed = |batch: u32, read: &dyn Fn() -> usize| {
        let start = Instant::now();
        for _ in 0..batch {
            assert_eq!(read(), LOAD_KEYS);
        }
        start.elapsed()
    };
    for readers in [8, 32, 128] {
        paired(
            &format!(
                "10,000 get_data through the zookeeper client from {readers} threads vs sequential"
            ),
            0.25,
            5,
            1,
            sequential,
            |batch| {
                timed(batch, &|| {
                    bench_support::client_read_all(&raw, &nodes, readers)
                })
            },
        );
    }
    paired(
        "10,000 pipelined getData on a loader connection (connect + sync included) vs sequential",
        0.25,
        5,
        1,
        sequential,
        |batch| {
            timed(batch, &|| {
                bench_support::pipelined_read_all(connect, KEYSPACE, &nodes)
            })
        },
    );
    for per_request in [100, 1_000] {
        paired(
            &format!(
                "10,000 znodes as multiRead of {per_request} on a loader connection vs sequential"
            ),
            0.25,
            5,
            1,
            sequential,
            |batch| {
                timed(batch, &|| {
                    bench_support::multi_read_all(connect, KEYSPACE, &nodes, per_request)
                })
            },
        );
    }
}

fn benches(c: &mut Criterion) {
    let server = ZooKeeper::start().expect("start ZooKeeper (cargo xtask install)");
    let connect = server.connect_string();
    full_load(&connect);
    load_paths(&connect);
    // `DURABLEDICT_BENCH_ONLY=load`: the full-load figures alone.
    if std::env::var("DURABLEDICT_BENCH_ONLY").as_deref() == Ok("load") {
        return;
    }
    propagation(c, &connect);
    always_read(c, &connect);
    own_write(c, &connect);
    paired_ratios(&connect);
}

criterion_group! {
    name = zookeeper_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(zookeeper_benches);
