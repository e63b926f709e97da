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

/// A store that counts its stamp checks (`last_updated`) and loads, forwarding everything.
#[derive(Debug, Clone)]
pub struct Counted<S> {
    pub store: S,
    pub checks: std::sync::Arc<AtomicU64>,
}

impl<S> Counted<S> {
    pub fn new(store: S) -> Self {
        Counted {
            store,
            checks: std::sync::Arc::default(),
        }
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }
}

impl<S: durabledict_core::Store> durabledict_core::Store for Counted<S> {
    fn init(&self) -> Result<(), durabledict_core::StoreError> {
        self.store.init()
    }
    fn persist(&self, k: &str, v: &[u8]) -> Result<i64, durabledict_core::StoreError> {
        self.store.persist(k, v)
    }
    fn depersist(&self, k: &str) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.store.depersist(k)
    }
    fn durables(&self) -> Result<durabledict_core::Durables, durabledict_core::StoreError> {
        self.store.durables()
    }
    fn last_updated(&self) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        self.store.last_updated()
    }
    fn get(&self, k: &str) -> Result<Option<Vec<u8>>, durabledict_core::StoreError> {
        self.store.get(k)
    }
    fn pop(&self, k: &str) -> Result<Option<(Vec<u8>, i64)>, durabledict_core::StoreError> {
        self.store.pop(k)
    }
    fn setdefault(
        &self,
        k: &str,
        v: &[u8],
    ) -> Result<durabledict_core::SetDefault, durabledict_core::StoreError> {
        self.store.setdefault(k, v)
    }
    fn persist_many(
        &self,
        entries: &[(&str, &[u8])],
    ) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.store.persist_many(entries)
    }
    fn clear(&self) -> Result<Option<i64>, durabledict_core::StoreError> {
        self.store.clear()
    }
    fn epoch(&self) -> u64 {
        self.store.epoch()
    }
    fn feed(&self) -> Option<std::sync::Arc<durabledict_core::Feed>> {
        self.store.feed()
    }
    fn keyspace(&self) -> Option<&str> {
        self.store.keyspace()
    }
}

/// A stamp source that counts its checks, and how many of them failed.
#[derive(Debug, Clone)]
pub struct CountedSource<S> {
    pub source: S,
    pub checks: std::sync::Arc<AtomicU64>,
    pub failures: std::sync::Arc<AtomicU64>,
}

impl<S> CountedSource<S> {
    pub fn new(source: S) -> Self {
        CountedSource {
            source,
            checks: std::sync::Arc::default(),
            failures: std::sync::Arc::default(),
        }
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::SeqCst)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }
}

impl<S: durabledict_aio::StampSource> durabledict_aio::StampSource for CountedSource<S> {
    fn last_updated(&self) -> durabledict_aio::StampFuture<'_> {
        Box::pin(async move {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let checked = self.source.last_updated().await;
            if checked.is_err() {
                self.failures.fetch_add(1, Ordering::SeqCst);
            }
            checked
        })
    }
    fn epoch(&self) -> u64 {
        self.source.epoch()
    }
}
