//! Review: a flood of notices on a keyspace's channel (many writers, or a hostile
//! `pg_notify` with large payloads) is drained by the listener without unbounded memory,
//! and leaves no CPU spin behind.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{execute, table_name};
use durabledict_core::{DurableDict, Raw, Store, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

/// Resident memory and CPU time (user + system, in clock ticks) of this process.
fn rss_kib_and_ticks() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    (rss, ticks)
}

#[test]
fn a_notice_flood_is_drained_without_growing_memory_or_spinning() {
    let pg = Postgres::start().unwrap();
    let url = pg.url();
    let table = table_name("flood");
    let store = SqlStore::builder(&url).table(&table).build().unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
    dict.insert("k", "v".into()).unwrap();
    let feed = store.feed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feed.state().is_up() {
        assert!(Instant::now() < deadline, "the feed comes up");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The keyspace's channel, as the trigger computes it.
    let schema_ks = format!("public.durabledict_stamps/{table}");
    let (rss_before, _) = rss_kib_and_ticks();
    let before = feed.state().notices();
    // 4 rounds of 20 000 notices of 4 000 bytes each (80 MB of payloads per round).
    let rounds = 4u64;
    let per_round = 20_000u64;
    for _ in 0..rounds {
        execute(
            &url,
            &format!(
                "SELECT count(pg_notify('durabledict_' || md5('{schema_ks}'), i::text || repeat('x', 4000))) \
                 FROM generate_series(1, {per_round}) AS i"
            ),
        )
        .unwrap();
    }
    let start = Instant::now();
    while feed.state().notices() < before + rounds * per_round {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the listener drains the flood: {} of {}",
            feed.state().notices() - before,
            rounds * per_round
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = start.elapsed();
    let (rss_after, _) = rss_kib_and_ticks();
    eprintln!(
        "drained {} notices in {drained:?}; RSS {rss_before} KiB -> {rss_after} KiB",
        rounds * per_round
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory after the flood: {rss_before} KiB -> {rss_after} KiB"
    );
    // Idle afterwards: the listener waits on its socket.
    let (_, t0) = rss_kib_and_ticks();
    std::thread::sleep(Duration::from_secs(3));
    let (_, t1) = rss_kib_and_ticks();
    eprintln!("CPU over 3 s idle: {} ticks", t1 - t0);
    assert!(
        t1 - t0 < 30,
        "CPU over 3 s idle after the flood: {} ticks",
        t1 - t0
    );
    assert!(feed.state().is_up(), "the feed is still up");
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("v")
    );
}
