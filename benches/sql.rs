//! The SQL store's costs, each against a baseline measured in the same run:
//!
//! - an `Always` read (one stamp check on the SQL-row stamp) against the raw `SELECT` of that
//!   stamp row on a plain diesel connection of the same kind (a typed, prepared query), on an
//!   SQLite file and, with the `postgres` feature, on a real PostgreSQL;
//! - an own write with 10,000 keys against one with 10 (own writes never reload), on both.
//!
//! The PostgreSQL change feed (`Watch` reads, propagation) is measured by
//! `benches/postgres_feed.rs`.

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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = always_read_sqlite, always_read_postgres, own_write_sqlite, own_write_postgres
}
criterion_main!(benches);
