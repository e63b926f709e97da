//! An OpenFeature boolean evaluation against a plain `HashMap` read, paired in one run.
//!
//! | pair | baseline | subject | target |
//! |---|---|---|---|
//! | `provider_bool` | `HashMap<String, bool>::get` of 100 flags | `resolve_bool_value` of the provider (dict under `Watch`, healthy feed), polled once | ≤ 5× |
//! | `client_bool` | same | `Client::get_bool_value` (the SDK's hooks, context merge and provider lookup on top) | informative |
//!
//! Prints `paired:` lines (alternating rounds, median of per-round ratios) after the groups.
//! Run with `cargo bench -p durabledict-openfeature --bench openfeature`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use durabledict_aio::AsyncDict;
use durabledict_core::{MemoryStore, SyncPolicy};
use durabledict_encoding::Json;
use durabledict_openfeature::DurableDictProvider;
use futures_util::FutureExt;
use open_feature::provider::FeatureProvider;
use open_feature::{EvaluationContext, OpenFeature};
use serde_json::{Value, json};

#[path = "../../../benches/common/paired.rs"]
mod paired;

const KEY: &str = "feature.flag.7";

fn map_reads(map: &HashMap<String, bool>, n: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        black_box(map.get(black_box(KEY)));
    }
    start.elapsed()
}

fn provider_reads(
    provider: &DurableDictProvider<Value>,
    cx: &EvaluationContext,
    n: u32,
) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        let resolved = provider
            .resolve_bool_value(black_box(KEY), cx)
            .now_or_never()
            .expect("a local read is ready at once")
            .expect("resolved");
        black_box(resolved.value);
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let map: HashMap<String, bool> = (0..100)
        .map(|i| (format!("feature.flag.{i}"), i % 2 == 0))
        .collect();
    let (provider, client) = rt.block_on(async {
        let dict = AsyncDict::<Value>::builder(MemoryStore::with_feed(), Json::new())
            .policy(SyncPolicy::Watch)
            .build()
            .await
            .expect("build");
        dict.update((0..100).map(|i| (format!("feature.flag.{i}"), json!(i % 2 == 0))))
            .await
            .expect("fill");
        dict.get(KEY)
            .await
            .expect("confirm after the own write's notice");
        assert!(dict.answers_locally());
        let provider = DurableDictProvider::new(dict);
        let mut api = OpenFeature::singleton_mut().await;
        api.set_provider(provider.clone()).await;
        (provider, api.create_client())
    });
    let cx = EvaluationContext::default();
    let client_reads = |n: u32| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                black_box(
                    client
                        .get_bool_value(black_box(KEY), None, None)
                        .await
                        .expect("flag"),
                );
            }
            start.elapsed()
        })
    };

    let mut group = c.benchmark_group("openfeature_bool");
    group.bench_function("hashmap_get", |b| {
        b.iter_custom(|n| map_reads(&map, n as u32))
    });
    group.bench_function("provider_resolve", |b| {
        b.iter_custom(|n| provider_reads(&provider, &cx, n as u32))
    });
    group.bench_function("client_get_bool_value", |b| {
        b.iter_custom(|n| client_reads(n as u32))
    });
    group.finish();

    paired::paired(
        "openfeature provider bool / HashMap get",
        5.0,
        41,
        100_000,
        |n| map_reads(&map, n),
        |n| provider_reads(&provider, &cx, n),
    );
    paired::paired(
        "openfeature client bool / HashMap get (informative)",
        f64::INFINITY,
        41,
        20_000,
        |n| map_reads(&map, n),
        client_reads,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
