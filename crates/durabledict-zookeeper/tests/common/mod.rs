//! What the test binaries share: a ZooKeeper server per binary, the conformance fixture, a
//! raw client for acting behind the stores' backs, and waiting for eventual visibility.
#![allow(dead_code, clippy::unwrap_used)]

pub mod proxy;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use durabledict_conformance::{Capabilities, Fixture, Visibility};
use durabledict_core::{BoxError, Store};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;
use zookeeper::{WatchedEvent, ZkError};

/// How soon a change made through one client is seen by a dict on another: the watch event
/// and the read of the one znode it names take about a millisecond on loopback. The bound is
/// set for a shared 2-core machine under a parallel test run, where a JVM pause (GC, JIT) or
/// a descheduled worker thread can take hundreds of milliseconds; a lost event, the failure
/// this guards against, would never be seen at all.
pub const VISIBILITY: Duration = Duration::from_secs(3);

/// Where the tests' znodes go, so one server can hold every test's keyspaces.
pub const ROOT: &str = "/durabledict-tests";

/// The connect string of this test binary's server, started on first use.
pub fn server() -> String {
    static SERVER: OnceLock<ZooKeeper> = OnceLock::new();
    SERVER
        .get_or_init(|| ZooKeeper::start().expect("start ZooKeeper for the tests"))
        .connect_string()
}

/// A raw client, for acting behind the stores' backs.
pub fn raw_client(connect: &str) -> zookeeper::ZooKeeper {
    let zk = zookeeper::ZooKeeper::connect(connect, Duration::from_secs(10), |_: WatchedEvent| {})
        .expect("connect a raw client");
    // Requests wait for the connection by themselves.
    zk
}

/// Deletes `path` and everything below it.
pub fn delete_tree(zk: &zookeeper::ZooKeeper, path: &str) -> Result<(), ZkError> {
    let children = match zk.get_children(path, false) {
        Ok(children) => children,
        Err(ZkError::NoNode) => return Ok(()),
        Err(e) => return Err(e),
    };
    for child in children {
        delete_tree(zk, &format!("{path}/{child}"))?;
    }
    match zk.delete(path, None) {
        Ok(()) | Err(ZkError::NoNode) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A fresh keyspace path for one test.
pub fn keyspace(test: &str) -> String {
    format!("{ROOT}/{test}-{:016x}", rand::random::<u64>())
}

/// A store on `keyspace` of this binary's server, with its own client.
pub fn store(keyspace: &str) -> ZooKeeperStore {
    ZooKeeperStore::connect(&server(), keyspace).expect("connect a store")
}

/// Waits until `check` holds, for at most `bound`; panics with `what` otherwise.
pub fn eventually(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "{what} (within {bound:?})");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The conformance fixture: each store has its own client, each keyspace is a znode under
/// [`ROOT`]. The stores of a keyspace reach the server through a proxy of their own, which
/// [`Fixture::cut_feed`] cuts (and opens again at once): their connections break, as in a
/// network failure, and each store notices, reconnects, sets its watch again and reloads.
pub struct ZkFixture {
    connect: String,
    port: u16,
    admin: zookeeper::ZooKeeper,
    proxies: Mutex<HashMap<String, proxy::Proxy>>,
}

impl ZkFixture {
    /// The fixture on this binary's server.
    pub fn shared() -> &'static ZkFixture {
        static FIXTURE: OnceLock<ZkFixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let connect = server();
            let admin = raw_client(&connect);
            let port = connect
                .rsplit(':')
                .next()
                .and_then(|port| port.parse().ok())
                .expect("the server's port");
            ZkFixture {
                connect,
                port,
                admin,
                proxies: Mutex::default(),
            }
        })
    }
}

impl Fixture for ZkFixture {
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError> {
        let port = self
            .proxies
            .lock()
            .unwrap()
            .entry(keyspace.to_owned())
            .or_insert_with(|| proxy::Proxy::start(self.port))
            .port();
        Ok(Box::new(ZooKeeperStore::connect(
            &format!("127.0.0.1:{port}"),
            &format!("{ROOT}/{keyspace}"),
        )?))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .invalid_keys([
                "",
                ".",
                "..",
                "a/b",
                "/",
                "nul\0byte",
                "emoji 🚀",
                "bell\u{7}",
            ])
            .max_value_len(probe_max_value_len(&self.connect))
            .visibility(Visibility::Within(VISIBILITY))
            .feed(VISIBILITY)
            // Each case opens two sessions and writes through one round trip per step.
            .model_cases(24)
    }

    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError> {
        // The keyspace's proxy stays: a store the test still holds would otherwise spend its
        // session timeout reconnecting to a closed port.
        Ok(delete_tree(&self.admin, &format!("{ROOT}/{keyspace}"))?)
    }

    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        let proxies = self.proxies.lock().unwrap();
        let proxy = proxies
            .get(keyspace)
            .ok_or_else(|| format!("no store was made on {keyspace}"))?;
        proxy.cut();
        proxy.restore();
        Ok(true)
    }
}

/// The value limit of a store on the fixture's keyspaces (the same for all of them, since
/// their paths have the same length).
fn probe_max_value_len(connect: &str) -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let probe = ZooKeeperStore::connect(connect, &format!("{ROOT}/ddconf{:016x}", 0))
            .expect("connect a probe store");
        probe.max_value_len().expect("the store has a value limit")
    })
}
