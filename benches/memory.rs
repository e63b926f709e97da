//! The core's own costs on `MemoryStore`, each against a baseline measured in the same run:
//! a cached read against a plain `HashMap<String, Arc<V>>` get + clone (criterion, and paired:
//! batches of both alternate, `paired:` lines), two reading threads against one, and an own
//! write with 10,000 keys against one with 10.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::{DurableDict, MemoryStore, Raw, SyncPolicy};

const KEYS: usize = 1_000;

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("feature.flag.{i}")).collect()
}

fn dict(policy: SyncPolicy, n: usize) -> DurableDict<String> {
    let dict = DurableDict::builder(MemoryStore::new(), Raw)
        .policy(policy)
        .build()
        .expect("build");
    dict.update(keys(n).into_iter().map(|k| (k, "enabled".to_string())))
        .expect("fill");
    dict
}

fn cached_read(c: &mut Criterion) {
    let keys = keys(KEYS);
    let baseline: HashMap<String, Arc<String>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new("enabled".to_string())))
        .collect();
    let manual = dict(SyncPolicy::Manual, KEYS);
    let always = dict(SyncPolicy::Always, KEYS);
    for (name, d) in [("Manual", &manual), ("Always", &always)] {
        let ratio = paired::paired(
            &format!("read, 1,000 keys, {name}, vs HashMap get + clone"),
            2.0,
            41,
            200_000,
            |n| {
                read_batch(&keys, n, |key| {
                    black_box(baseline.get(key).cloned());
                })
            },
            |n| {
                read_batch(&keys, n, |key| {
                    black_box(d.get(key).expect("get"));
                })
            },
        );
        println!("paired: {name} read: {ratio:.2}x the HashMap read");
    }
    let mut group = c.benchmark_group("read_1000_keys");
    let mut i = 0;
    group.bench_function("hashmap_get_clone", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(baseline.get(black_box(keys[i].as_str())).cloned())
        })
    });
    group.bench_function("dict_manual", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(manual.get(black_box(keys[i].as_str())).expect("get"))
        })
    });
    group.bench_function("dict_always", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(always.get(black_box(keys[i].as_str())).expect("get"))
        })
    });
    group.finish();
}

/// The time `read` takes for `n` keys in turn (the criterion loop's order), as one batch.
fn read_batch(keys: &[String], n: u32, mut read: impl FnMut(&str)) -> Duration {
    let start = Instant::now();
    let mut i = 0;
    for _ in 0..n {
        i = (i + 1) % keys.len();
        read(black_box(keys[i].as_str()));
    }
    start.elapsed()
}

/// Runs `read(key)` for `iters` keys on each of `threads` threads at once; returns the wall
/// time divided by the thread count, so that the figure is the time per read of all threads
/// together: half the one-thread figure means perfect scaling. Threads start half the key
/// space apart, so that they do not read the same value at the same moment.
fn parallel_reads(
    keys: &[String],
    threads: u32,
    iters: u64,
    read: &(dyn Fn(&str) + Sync),
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut i = t as usize * keys.len() / 2;
                for _ in 0..iters {
                    i = (i + 1) % keys.len();
                    read(black_box(keys[i].as_str()));
                }
            });
        }
    });
    start.elapsed() / threads
}

/// Two reading threads against one, for the dict and, as the machine's own scaling in the
/// same run, for the plain `HashMap`.
fn threaded_read(c: &mut Criterion) {
    let keys = keys(KEYS);
    let baseline: HashMap<String, Arc<String>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new("enabled".to_string())))
        .collect();
    let always = dict(SyncPolicy::Always, KEYS);
    let read_dict = |key: &str| {
        black_box(always.get(key).expect("get"));
    };
    let read_map = |key: &str| {
        black_box(baseline.get(key).cloned());
    };
    paired_scaling(&keys, &read_dict, &read_map);
    let mut group = c.benchmark_group("read_threads");
    for threads in [1, 2] {
        group.bench_function(format!("dict_{threads}"), |b| {
            b.iter_custom(|iters| parallel_reads(&keys, threads, iters, &read_dict))
        });
        group.bench_function(format!("hashmap_{threads}"), |b| {
            b.iter_custom(|iters| parallel_reads(&keys, threads, iters, &read_map))
        });
    }
    group.finish();
}

/// Two-thread scaling measured the paired way: one thread reading a batch and two threads
/// each reading a batch alternate, and the median of the per-round ratios is printed, for the
/// dict and for the `HashMap` (the machine's own scaling). Single-thread figures on this
/// machine drift by 50% between criterion groups, which makes two separate groups'
/// ratio meaningless.
fn paired_scaling(
    keys: &[String],
    read_dict: &(dyn Fn(&str) + Sync),
    read_map: &(dyn Fn(&str) + Sync),
) {
    for (name, read) in [("dict", read_dict), ("hashmap", read_map)] {
        // The ratio is (time per read with two threads) / (with one): 1 / scaling.
        let ratio = paired::paired(
            &format!("{name}: two reading threads vs one, time per read (1 / scaling)"),
            1.0 / 1.8,
            41,
            200_000,
            |n| parallel_reads(keys, 1, u64::from(n), read),
            |n| parallel_reads(keys, 2, u64::from(n), read),
        );
        println!(
            "paired: {name}: two threads give {:.2}x the throughput of one",
            1.0 / ratio
        );
    }
}

fn own_write(c: &mut Criterion) {
    let mut group = c.benchmark_group("own_write");
    for n in [10, 10_000] {
        let dict = dict(SyncPolicy::Always, n);
        let mut i = 0u64;
        // Every write goes to the next key, cycling over the whole dict: writes to one key
        // never grow the overlay of own writes, and never pay for folding it into the base.
        group.bench_function(format!("keys_{n}"), |b| {
            b.iter(|| {
                i += 1;
                dict.insert(&format!("feature.flag.{}", i % n as u64), i.to_string())
                    .expect("insert")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cached_read, threaded_read, own_write
}
criterion_main!(benches);
