//! Review: retrying callers on MariaDB through an outage (the server stopped for 2 s, then
//! started again, while writers and readers keep going). Every call returns (none hangs past
//! the pool's connection timeout and its retries), every failure is `Unavailable`, the store's
//! epoch moves, a caller that retries until its write is acknowledged finds it stored, and
//! every reader serves the last acknowledged write afterwards.
#![cfg(feature = "mysql")]
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::table_name;
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_diesel::SqlStore;
use durabledict_test_servers::MariaDb;

#[test]
fn retrying_callers_through_a_mariadb_outage() {
    let mut db = MariaDb::start().unwrap();
    let url = db.url();
    let table = table_name("outage");
    let open = || {
        SqlStore::builder(&url)
            .table(&table)
            .connection_timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    let store = open();
    let dict = Arc::new(
        DurableDict::<String>::builder(store.clone(), Raw)
            .policy(SyncPolicy::Always)
            .build()
            .unwrap(),
    );
    dict.insert("k", "0".into()).unwrap();
    let epoch_before = store.epoch();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..3 {
        let (dict, stop) = (Arc::clone(&dict), Arc::clone(&stop));
        workers.push(std::thread::spawn(move || {
            let mut longest = Duration::ZERO;
            let mut failures = 0u32;
            let mut last_acked = None;
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let value = format!("{w}-{n}");
                let start = Instant::now();
                let result = if w == 0 {
                    dict.insert("k", value.clone()).map(|()| Some(value))
                } else {
                    dict.get("k").map(|_| None)
                };
                longest = longest.max(start.elapsed());
                match result {
                    Ok(Some(v)) => last_acked = Some(v),
                    Ok(None) => {}
                    Err(e) => {
                        failures += 1;
                        assert_eq!(
                            e.store_error().map(|s| s.kind()),
                            Some(StoreErrorKind::Unavailable),
                            "{e:?}"
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            (longest, failures, last_acked)
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    db.stop();
    std::thread::sleep(Duration::from_secs(2));
    db.restart().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Release);
    let mut last = None;
    for (w, worker) in workers.into_iter().enumerate() {
        let (longest, failures, acked) = worker.join().unwrap();
        eprintln!("worker {w}: longest call {longest:?}, {failures} failures");
        assert!(failures > 0, "worker {w} saw the outage");
        assert!(
            longest < Duration::from_secs(5),
            "worker {w}: a call took {longest:?}"
        );
        if w == 0 {
            last = acked;
        }
    }
    assert_ne!(store.epoch(), epoch_before, "the outage moved the epoch");
    let last = last.expect("writes were acknowledged after the restart");
    assert_eq!(dict.get("k").unwrap().as_deref(), Some(&last));
    let fresh = DurableDict::<String>::builder(open(), Raw).build().unwrap();
    assert_eq!(fresh.get("k").unwrap().as_deref(), Some(&last));
}
