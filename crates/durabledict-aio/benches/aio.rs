//! The async facade's cost over the sync dict, paired in one run.
//!
//! | pair | baseline | subject | target |
//! |---|---|---|---|
//! | `watch_memory` | sync `get` under `Watch`, healthy feed (`MemoryStore::with_feed`) | `AsyncDict::get`, same dict, awaited in a task | ≤ 2× |
//! | `always_redis` | sync `get` under `Always` on Redis (one stamp `GET`) | `AsyncDict::get`: the check on the task (`stamp_source(store.async_stamp())`), or on the blocking pool | ≤ 1.3× |
//!
//! Both runtimes are measured for `always_redis`: the multi-thread one (2 workers) and the
//! current-thread one. The async batches run inside one `block_on`, so a figure is the cost a
//! task pays per awaited read. After the criterion groups the bench prints `paired:` lines
//! (alternating rounds, median of per-round ratios): hold those against the targets. The
//! "on task" pairs are the configuration the target is about; the blocking-pool pairs are
//! there to show what the source saves.
//!
//! Run with `cargo bench -p durabledict-aio --bench aio`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use durabledict_aio::{AsyncDict, Offload};
use durabledict_core::{DurableDict, MemoryStore, Raw, SyncPolicy};
use durabledict_redis::RedisStore;
use durabledict_redis::aio::AsyncStamp;
use durabledict_test_servers::RedisServer;
use tokio::runtime::Runtime;

#[path = "../../../benches/common/paired.rs"]
mod paired;

fn multi_thread() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `n` awaited reads of `key` in one spawned task (on a worker, as a server's request
/// handler runs), timed as a whole. With `yields` the task yields after each read, as a handler
/// does between requests (used for the Redis pairs): with `Offload::InPlace` a task that never yields would keep running without its
/// worker's core after the first hand-off, and measure only the first one.
fn async_reads(
    rt: &Runtime,
    dict: &AsyncDict<String>,
    key: &'static str,
    n: u32,
    yields: bool,
) -> Duration {
    let dict = dict.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..n {
                black_box(dict.get(key).await.expect("get"));
                if yields {
                    tokio::task::yield_now().await;
                }
            }
            start.elapsed()
        })
        .await
        .expect("task")
    })
}

fn sync_reads(dict: &DurableDict<String>, key: &str, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(dict.get(key).expect("get"));
    }
    start.elapsed()
}

/// A dict with 100 keys, built through the facade, with `source` checking the stamp on the
/// task when given.
fn filled(
    rt: &Runtime,
    store: impl durabledict_core::Store + 'static,
    policy: SyncPolicy,
    offload: Offload,
    source: Option<AsyncStamp>,
) -> AsyncDict<String> {
    rt.block_on(async {
        let dict = AsyncDict::builder(store, Raw)
            .policy(policy)
            .offload(offload)
            .stamp_source(source)
            .build()
            .await
            .expect("build");
        dict.update((0..100).map(|i| (format!("feature.flag.{i}"), format!("value {i}"))))
            .await
            .expect("fill");
        // One read confirms the cache after the own write's notice.
        dict.get("feature.flag.7").await.expect("get");
        dict
    })
}

const KEY: &str = "feature.flag.7";

fn watch_memory(c: &mut Criterion) {
    let rt = current_thread();
    let dict = filled(
        &rt,
        MemoryStore::with_feed(),
        SyncPolicy::Watch,
        Offload::Pool,
        None,
    );
    assert!(dict.answers_locally());
    let sync = dict.sync_dict().clone();
    let mut group = c.benchmark_group("aio_watch_memory");
    group.bench_function("sync_get", |b| {
        b.iter_custom(|n| sync_reads(&sync, KEY, n as u32))
    });
    group.bench_function("async_get", |b| {
        b.iter_custom(|n| async_reads(&rt, &dict, KEY, n as u32, false))
    });
    group.finish();
    paired::paired(
        "aio watch_memory async get / sync get",
        2.0,
        41,
        200_000,
        |n| sync_reads(&sync, KEY, n),
        |n| async_reads(&rt, &dict, KEY, n, false),
    );
}

fn always_redis(c: &mut Criterion) {
    let server = RedisServer::start().expect("start redis-server (cargo xtask install)");
    let url = server.url();
    let store = || RedisStore::open(&url, "bench-aio").expect("store");
    // (name, runtime, offload, check on the task, yield between reads)
    let runs = [
        (
            "multi_thread, on task",
            multi_thread(),
            Offload::Pool,
            true,
            false,
        ),
        (
            "current_thread, on task",
            current_thread(),
            Offload::Pool,
            true,
            false,
        ),
        (
            "multi_thread, on task, yielding",
            multi_thread(),
            Offload::Pool,
            true,
            true,
        ),
        (
            "current_thread, on task, yielding",
            current_thread(),
            Offload::Pool,
            true,
            true,
        ),
        (
            "multi_thread, pool",
            multi_thread(),
            Offload::Pool,
            false,
            true,
        ),
        (
            "multi_thread, in place",
            multi_thread(),
            Offload::InPlace,
            false,
            true,
        ),
        (
            "current_thread, pool",
            current_thread(),
            Offload::Pool,
            false,
            true,
        ),
    ];
    for (flavour, rt, offload, on_task, yields) in runs {
        let redis = store();
        let source = on_task.then(|| redis.async_stamp().expect("one server"));
        let dict = filled(&rt, redis, SyncPolicy::Always, offload, source);
        assert_eq!(dict.checks_on_task(), on_task);
        // The baseline: a sync dict of its own on the same keyspace, as a sync program has.
        let sync = DurableDict::<String>::builder(store(), Raw)
            .policy(SyncPolicy::Always)
            .build()
            .expect("build");
        let mut group = c.benchmark_group(format!("aio_always_redis ({flavour})"));
        group.bench_function("sync_get", |b| {
            b.iter_custom(|n| sync_reads(&sync, KEY, n as u32))
        });
        group.bench_function("async_get", |b| {
            b.iter_custom(|n| async_reads(&rt, &dict, KEY, n as u32, yields))
        });
        group.finish();
        paired::paired(
            &format!("aio always_redis ({flavour}) async get / sync get"),
            1.3,
            41,
            500,
            |n| sync_reads(&sync, KEY, n),
            |n| async_reads(&rt, &dict, KEY, n, yields),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = watch_memory, always_redis
}
criterion_main!(benches);
