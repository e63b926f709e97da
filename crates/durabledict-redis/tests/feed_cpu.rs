//! What idle feeds cost: 20 store handles with their feed up (a probe every 400 ms of
//! silence each), then the same while the server is down (reconnecting with back-off up to
//! 2 s). Its own binary, so that the process's CPU time is the feeds' alone.
#![allow(clippy::unwrap_used)]

use durabledict_test_servers::process_cpu_time as cpu_time;
use std::time::{Duration, Instant};

use durabledict_core::Store;
use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

/// The share of one core this process used over `span`.
fn share_over(span: Duration) -> f64 {
    let (cpu, wall) = (cpu_time(), Instant::now());
    std::thread::sleep(span);
    (cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64()
}

/// The target is 1% of a core per feed; 20 feeds must stay under 2% in all (0.1% each), so
/// that a tick more or less of CPU accounting does not decide the outcome.
const LIMIT: f64 = 0.02;

#[test]
fn idle_feeds_use_a_tenth_of_a_percent_of_a_core_each_up_or_down() {
    const FEEDS: usize = 20;
    let mut server = RedisServer::start().unwrap();
    let stores: Vec<RedisStore> = (0..FEEDS)
        .map(|i| RedisStore::open(&server.url(), &format!("cpu-{i}")).unwrap())
        .collect();
    let feeds: Vec<_> = stores.iter().map(|s| s.feed().unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feeds.iter().all(|f| f.state().is_up()) {
        assert!(Instant::now() < deadline, "the feeds never came up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let up = share_over(Duration::from_secs(4));
    assert!(
        up < LIMIT,
        "{FEEDS} idle feeds used {:.2}% of a core",
        up * 100.0
    );

    server.stop();
    // Let the back-off reach its ceiling.
    std::thread::sleep(Duration::from_secs(3));
    assert!(feeds.iter().all(|f| !f.state().is_up()));
    let down = share_over(Duration::from_secs(4));
    assert!(
        down < LIMIT,
        "{FEEDS} feeds waiting for a server used {:.2}% of a core",
        down * 100.0
    );
    println!(
        "{FEEDS} feeds: {:.3}% of a core up, {:.3}% down",
        up * 100.0,
        down * 100.0
    );

    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !feeds.iter().all(|f| f.state().is_up()) {
        assert!(Instant::now() < deadline, "the feeds did not come back");
        std::thread::sleep(Duration::from_millis(10));
    }
}
