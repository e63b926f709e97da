//! What idle PostgreSQL feeds cost: 20 store handles with their listener up (a probe after
//! every 400 ms of silence each), then the same while the server is down (reconnecting with
//! back-off up to 2 s); and, for comparison, the alternative it replaced: diesel's
//! `notifications_iter()`, which cannot wait, polled every 5 ms on 20 connections. Its own
//! binary, and its two tests never overlap (`cargo test` runs them as threads of one process,
//! where the polling one's CPU was counted against the listeners: 2.5% where they use 0.5%),
//! so that the process's CPU time is the measured test's alone.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)]

use durabledict_test_servers::process_cpu_time as cpu_time;
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use durabledict_core::Store;
use durabledict_diesel::SqlStore;
use durabledict_test_servers::Postgres;

/// The share of one core this process used over `span`.
fn share_over(span: Duration) -> f64 {
    let (cpu, wall) = (cpu_time(), Instant::now());
    std::thread::sleep(span);
    (cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// The target is 1% of a core per feed; 20 feeds must stay under 2% in all (0.1% each), so
/// that a tick more or less of CPU accounting does not decide the outcome.
const LIMIT: f64 = 0.02;
const FEEDS: usize = 20;

/// Held by each test for its whole run: the CPU measured is the process's.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn idle_listeners_use_a_tenth_of_a_percent_of_a_core_each_up_or_down() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut server = Postgres::start().unwrap();
    let stores: Vec<SqlStore> = (0..FEEDS)
        .map(|i| {
            let store = SqlStore::builder(server.url())
                .table(format!("cpu_{i}"))
                .build()
                .unwrap();
            store.init().unwrap();
            store
        })
        .collect();
    let feeds: Vec<_> = stores.iter().map(|s| s.feed().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !feeds.iter().all(|f| f.state().is_up()) {
        assert!(Instant::now() < deadline, "the feeds never came up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let up = share_over(Duration::from_secs(4));
    assert!(
        up < LIMIT,
        "{FEEDS} idle listeners used {:.2}% of a core",
        up * 100.0
    );

    server.stop();
    // Let the back-off reach its ceiling.
    std::thread::sleep(Duration::from_secs(3));
    assert!(feeds.iter().all(|f| !f.state().is_up()));
    let down = share_over(Duration::from_secs(4));
    assert!(
        down < LIMIT,
        "{FEEDS} listeners waiting for a server used {:.2}% of a core",
        down * 100.0
    );
    println!(
        "{FEEDS} listeners: {:.3}% of a core up, {:.3}% down",
        up * 100.0,
        down * 100.0
    );

    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !feeds.iter().all(|f| f.state().is_up()) {
        assert!(Instant::now() < deadline, "the feeds did not come back");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The alternative measured against the listener above: 20 diesel connections, each polled
/// every 5 ms (a thread each, as one feed per store would be). It costs far more than the
/// listeners' budget while idle, and a notice still waits 2.5 ms on average for its poll.
#[test]
fn diesel_polled_every_5_ms_costs_more_than_the_listeners_budget() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Postgres::start().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = (0..FEEDS)
        .map(|_| {
            let url = server.url();
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut conn = PgConnection::establish(&url).unwrap();
                conn.batch_execute("LISTEN idle").unwrap();
                let mut heard = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    heard += conn.notifications_iter().count();
                    std::thread::sleep(Duration::from_millis(5));
                }
                heard
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let polled = share_over(Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for poller in pollers {
        assert_eq!(poller.join().unwrap(), 0, "nothing was sent");
    }
    println!(
        "{FEEDS} diesel connections polled every 5 ms: {:.3}% of a core",
        polled * 100.0
    );
    assert!(
        polled > LIMIT,
        "polling was expected to cost more than the listeners' {:.0}%: {:.2}%",
        LIMIT * 100.0,
        polled * 100.0
    );
}
