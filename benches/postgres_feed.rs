//! The PostgreSQL store's change feed (`LISTEN` and the stamps table's trigger), each figure
//! next to its baseline from the same run (`cargo xtask bench postgres`, or
//! `cargo bench --features postgres --bench postgres_feed`):
//!
//! - a `Watch` read with the feed up against a `HashMap<String, Arc<V>>` get + clone (target
//!   ≤ 1.5×);
//! - propagation, from a writer's return to another store's `Watch` dict serving the value
//!   (target p50 ≤ 2 ms, p99 ≤ 10 ms), for a store writing through another URL spelling (no
//!   in-process notice: the server's push, as between processes) and for a raw SQL writer (a
//!   Python-style program: rows and stamp bump in one transaction), each next to the writes'
//!   own duration in the same rounds.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "common/paired.rs"]
mod paired;
use durabledict::sql::SqlStore;
use durabledict::sql::diesel::connection::SimpleConnection;
use durabledict::sql::diesel::prelude::*;
use durabledict::{DurableDict, Raw, SyncPolicy};
use paired::{paired, timed};

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Prints p50, p99 and the largest of `samples`, against targets when given.
fn percentiles(name: &str, mut samples: Vec<Duration>, targets: Option<(f64, f64)>) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[i].as_secs_f64() * 1e3
    };
    let (p50, p99) = (at(0.5), at(0.99));
    let verdict = match targets {
        Some((p50_target, p99_target)) => {
            let met = if p50 <= p50_target && p99 <= p99_target {
                "met"
            } else {
                "NOT met"
            };
            format!(" (target p50 <= {p50_target} ms, p99 <= {p99_target} ms: {met})")
        }
        None => String::new(),
    };
    println!(
        "feed: postgres: {name}: n {} p50 {p50:.3} ms, p99 {p99:.3} ms, max {:.3} ms{verdict}",
        samples.len(),
        at(1.0),
    );
}

/// The PostgreSQL change feed: `Watch` reads against a `HashMap`, and propagation.
fn main() {
    println!("feed: postgres: load average at start: {}", load_average());
    let pg = durabledict_test_servers::Postgres::start().expect("start PostgreSQL");
    let url = pg.url();
    let table = "bench_feed";
    let store = SqlStore::builder(&url).table(table).build().expect("store");
    let reader = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .expect("build");
    let feed = durabledict::Store::feed(&store).expect("a PostgreSQL store has a feed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !feed.state().is_up() {
        assert!(Instant::now() < deadline, "the feed never came up");
        std::thread::sleep(Duration::from_millis(1));
    }
    reader
        .update((0..100).map(|i| (format!("feature.flag.{i}"), format!("value {i}"))))
        .expect("fill");
    let map: HashMap<String, Arc<String>> = reader
        .snapshot()
        .expect("snapshot")
        .iter()
        .map(|(k, v)| (k.to_owned(), Arc::clone(v)))
        .collect();
    drop(reader.get("feature.flag.7"));
    paired(
        "postgres: watch read (feed up) vs HashMap get + Arc clone",
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
                    black_box(reader.get(black_box("feature.flag.7")).expect("get"));
                }
            })
        },
    );

    // Another URL spelling: the writer's store is not this process's peer, so only the
    // server's notice tells the reader.
    const ROUNDS: usize = 600;
    let writer = DurableDict::<String>::builder(
        SqlStore::builder(url.replacen("postgres://", "postgresql://", 1))
            .table(table)
            .build()
            .expect("store"),
        Raw,
    )
    .policy(SyncPolicy::Manual)
    .build()
    .expect("build");
    let mut raw = PgConnection::establish(&url).expect("connect");
    let until_served = |value: &str, started: Instant| {
        while reader.get("k").expect("get").as_deref().map(String::as_str) != Some(value) {
            std::thread::sleep(Duration::from_micros(10));
        }
        started.elapsed()
    };
    let (mut served, mut wrote, mut served_raw, mut wrote_raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let value = format!("rust {i}");
        let started = Instant::now();
        writer.insert("k", value.clone()).expect("insert");
        let returned = Instant::now();
        wrote.push(returned - started);
        served.push(until_served(&value, returned));
        std::thread::sleep(Duration::from_millis(2));

        let value = format!("python {i}");
        let started = Instant::now();
        raw.batch_execute(&format!(
            "BEGIN; INSERT INTO {table} (key, value) VALUES ('k', '{value}'::bytea) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value; \
             UPDATE durabledict_stamps SET stamp = stamp + 1 WHERE keyspace = '{table}'; COMMIT"
        ))
        .expect("raw write");
        let returned = Instant::now();
        wrote_raw.push(returned - started);
        served_raw.push(until_served(&value, returned));
        std::thread::sleep(Duration::from_millis(2));
    }
    percentiles(
        "another store's write (server push) to a Watch dict serving it",
        served,
        Some((2.0, 10.0)),
    );
    percentiles("baseline, the same writes' own duration", wrote, None);
    percentiles(
        "a raw SQL write (Python-style, through the trigger) to a Watch dict serving it",
        served_raw,
        Some((2.0, 10.0)),
    );
    percentiles(
        "baseline, the same raw writes' own duration",
        wrote_raw,
        None,
    );
    println!("feed: postgres: load average at end: {}", load_average());
    drop(reader);
    drop(pg);
}
