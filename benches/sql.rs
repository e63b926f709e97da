//! The SQL store's costs, each against a baseline measured in the same run:
//!
//! - an `Always` read (one stamp check on the SQL-row stamp) against the raw `SELECT` of that
//!   stamp row on a plain diesel connection of the same kind (a typed, prepared query), on an
//!   SQLite file and, with the `postgres` feature, on a real PostgreSQL;
//! - an own write with 10,000 keys against one with 10 (own writes never reload), on both;
//! - with the `postgres` feature, the change feed (`LISTEN` and the stamps table's trigger):
//!   a `Watch` read with the feed up against a `HashMap<String, Arc<V>>` get + clone (target
//!   ≤ 1.5×), and propagation, from a writer's return to another store's `Watch` dict serving
//!   the value (target p50 ≤ 2 ms, p99 ≤ 10 ms), for a store writing through another URL
//!   spelling (no in-process notice: the server's push, as between processes) and for a raw
//!   SQL writer (a Python-style program: rows and stamp bump in one transaction), each next to
//!   the writes' own duration in the same rounds.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "common/paired.rs"]
mod paired;
use durabledict::sql::SqlStore;
use durabledict::sql::diesel::backend::Backend;
use durabledict::sql::diesel::prelude::*;
use durabledict::sql::diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use durabledict::sql::diesel::serialize::ToSql;
use durabledict::sql::diesel::sql_types::{BigInt, HasSqlType, Text};
use durabledict::{DurableDict, Raw, SyncPolicy};
use paired::interleaved;

const TABLE: &str = "bench_flags";

fn dict(store: SqlStore, keys: usize) -> DurableDict<String> {
    let dict = DurableDict::builder(store, Raw)
        .policy(SyncPolicy::Always)
        .build()
        .expect("build");
    dict.clear().expect("clear");
    dict.update((0..keys).map(|i| (format!("feature.flag.{i}"), "enabled".to_string())))
        .expect("fill");
    dict
}

/// The raw stamp read: the store's own statement as a typed query that diesel keeps prepared
/// under its type (the cheapest cache lookup diesel has), on a plain connection: what a stamp
/// check costs at the least on this kind of connection.
#[derive(Debug, Clone, Copy)]
struct RawStampSelect;

impl<DB> QueryFragment<DB> for RawStampSelect
where
    DB: Backend + HasSqlType<Text>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("SELECT \"stamp\" AS n FROM \"durabledict_stamps\" WHERE \"keyspace\" = ");
        out.push_bind_param::<Text, str>(TABLE)
    }
}

impl QueryId for RawStampSelect {
    type QueryId = RawStampSelect;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for RawStampSelect {
    type SqlType = BigInt;
}

impl<C> RunQueryDsl<C> for RawStampSelect {}

macro_rules! raw_stamp {
    ($conn:expr) => {
        RawStampSelect
            .get_result::<i64>($conn)
            .expect("raw stamp select")
    };
}

/// A fresh directory for one bench's database, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("durabledict-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("temporary directory");
        TempDir(path)
    }

    fn db(&self) -> String {
        format!("{}/bench.db", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite://{}", dir.db())
}

fn always_read_sqlite(c: &mut Criterion) {
    let dir = TempDir::new("read");
    let url = sqlite_url(&dir);
    let always = dict(
        SqlStore::builder(&url).table(TABLE).build().expect("store"),
        100,
    );
    let mut raw = SqliteConnection::establish(&dir.db()).expect("connect");
    always_read_vs_raw(c, "sqlite", 400, &always, || {
        black_box(raw_stamp!(&mut raw));
    });
}

/// An `Always` read against the raw `SELECT` of the stamp row (`raw`): a criterion group, then
/// the paired ratio held against the target.
fn always_read_vs_raw(
    c: &mut Criterion,
    backend: &str,
    batch: u32,
    always: &DurableDict<String>,
    mut raw: impl FnMut(),
) {
    let mut group = c.benchmark_group(format!("{backend}_always_read"));
    group.bench_function("raw_select_stamp", |b| b.iter(&mut raw));
    group.bench_function("dict_always_get", |b| {
        b.iter(|| black_box(always.get(black_box("feature.flag.7")).expect("get")))
    });
    group.finish();
    interleaved(
        &format!("{backend}: Always read / raw SELECT of the stamp row"),
        1.2,
        batch,
        raw,
        || {
            black_box(always.get("feature.flag.7").expect("get"));
        },
    );
}

#[cfg(feature = "postgres")]
fn always_read_postgres(c: &mut Criterion) {
    let pg = durabledict_test_servers::Postgres::start().expect("start PostgreSQL");
    let url = pg.url();
    let always = dict(
        SqlStore::builder(&url).table(TABLE).build().expect("store"),
        100,
    );
    let mut raw = PgConnection::establish(&url).expect("connect");
    always_read_vs_raw(c, "postgres", 200, &always, || {
        black_box(raw_stamp!(&mut raw));
    });
    drop(pg);
}

#[cfg(not(feature = "postgres"))]
fn always_read_postgres(_: &mut Criterion) {}

/// An own write on a dict of `n` keys, for n = 10 and 10,000: the write is applied to the
/// cache in O(1), never by a reload.
fn own_writes(c: &mut Criterion, name: &str, url: &str, batch: u32) {
    let dicts: Vec<(usize, DurableDict<String>)> = [10, 10_000]
        .into_iter()
        .map(|n| {
            let table = format!("bench_write_{n}");
            let store = SqlStore::builder(url).table(&table).build().expect("store");
            (n, dict(store, n))
        })
        .collect();
    let mut i = 0u64;
    let mut group = c.benchmark_group(name);
    // Every write goes to the next key, cycling over the whole dict (see own_write in
    // benches/memory.rs).
    let key = |n: usize, i: u64| format!("feature.flag.{}", i % n as u64);
    for (n, dict) in &dicts {
        group.bench_function(format!("keys_{n}"), |b| {
            b.iter(|| {
                i += 1;
                dict.insert(&key(*n, i), i.to_string()).expect("insert")
            })
        });
    }
    group.finish();
    let (small, large) = (&dicts[0].1, &dicts[1].1);
    let (mut a, mut b) = (0u64, 0u64);
    interleaved(
        &format!("{name}: 10,000 keys / 10 keys"),
        1.3,
        batch,
        || {
            a += 1;
            small
                .insert(&key(dicts[0].0, a), a.to_string())
                .expect("insert");
        },
        || {
            b += 1;
            large
                .insert(&key(dicts[1].0, b), b.to_string())
                .expect("insert");
        },
    );
    for (_, dict) in &dicts {
        assert_eq!(dict.status().reloads, 1, "own writes never reload");
    }
}

fn own_write_sqlite(c: &mut Criterion) {
    let dir = TempDir::new("write");
    own_writes(c, "sqlite_own_write", &sqlite_url(&dir), 5);
}

#[cfg(feature = "postgres")]
fn own_write_postgres(c: &mut Criterion) {
    let pg = durabledict_test_servers::Postgres::start().expect("start PostgreSQL");
    own_writes(c, "postgres_own_write", &pg.url(), 20);
    drop(pg);
}

#[cfg(not(feature = "postgres"))]
fn own_write_postgres(_: &mut Criterion) {}

#[cfg(feature = "postgres")]
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Prints p50, p99 and the largest of `samples`, against targets when given.
#[cfg(feature = "postgres")]
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
#[cfg(feature = "postgres")]
fn feed_postgres(_: &mut Criterion) {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Instant;

    use durabledict::sql::diesel::connection::SimpleConnection;
    use paired::{paired, timed};

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

#[cfg(not(feature = "postgres"))]
fn feed_postgres(_: &mut Criterion) {}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = always_read_sqlite, always_read_postgres, own_write_sqlite, own_write_postgres,
        feed_postgres
}
criterion_main!(benches);
