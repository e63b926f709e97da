//! What the test binaries share: Redis servers and raw access to them.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use durabledict_redis::RedisStore;
use durabledict_test_servers::RedisServer;

/// A server of the test's own: tests that pause it must not pause each other's.
pub fn own_server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

pub fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("raw connection to {url}: {e}"))
}

/// A keyspace no other test uses.
pub fn keyspace() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "aio-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn store(url: &str, keyspace: &str) -> RedisStore {
    RedisStore::open(url, keyspace).unwrap_or_else(|e| panic!("store on {keyspace}: {e}"))
}

/// Pauses every client of the server for `pause` (`CLIENT PAUSE … ALL`); returns at once.
pub fn pause(url: &str, pause: Duration) {
    let millis = u64::try_from(pause.as_millis()).unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(millis)
        .arg("ALL")
        .query::<()>(&mut raw(url))
        .unwrap();
}

/// The raw bytes of `key` in the hash `hash`.
pub fn stored(url: &str, hash: &str, key: &str) -> Option<Vec<u8>> {
    redis::cmd("HGET")
        .arg(hash)
        .arg(key)
        .query(&mut raw(url))
        .unwrap()
}
