//! What a store costs while every server is down: once its client has given up, it makes a
//! new one only when a server accepts connections again. (The `zookeeper` crate's client
//! retries connecting without pausing for its whole session timeout; a store that replaced it
//! blindly kept a core half busy for as long as the outage lasted.) Its own binary, so that
//! the process's CPU time is this store's alone.
#![allow(clippy::unwrap_used)]

use durabledict_test_servers::process_cpu_time as cpu_time;
use std::time::{Duration, Instant};

use durabledict_core::{DurableDict, Raw};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;

const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

#[test]
fn a_store_waits_quietly_for_a_server_and_reconnects_when_one_is_back() {
    let mut zk = ZooKeeper::start().unwrap();
    let store = ZooKeeperStore::builder(zk.connect_string(), "/cpu")
        .session_timeout(SESSION_TIMEOUT)
        .build()
        .unwrap();
    let dict: DurableDict<String> = DurableDict::builder(store, Raw).build().unwrap();
    dict.insert("k", "before".into()).unwrap();

    zk.stop();
    // The client spins for its session timeout, then gives up; from then on the store only
    // checks now and then whether a server listens.
    std::thread::sleep(SESSION_TIMEOUT + Duration::from_secs(1));
    let (cpu, wall) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let busy = cpu_time() - cpu;
    let share = busy.as_secs_f64() / wall.elapsed().as_secs_f64();
    assert!(
        share < 0.1,
        "a store with no server to talk to used {busy:?} of CPU in {:?} ({:.0}% of a core)",
        wall.elapsed(),
        share * 100.0
    );

    zk.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match dict.insert("k", "after".into()) {
            Ok(()) => break,
            Err(e) => assert!(Instant::now() < deadline, "never reconnected: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        dict.get("k").unwrap().as_deref().map(String::as_str),
        Some("after")
    );
}
