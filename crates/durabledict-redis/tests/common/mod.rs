//! What the test binaries share: one server (or cluster) per binary, raw Redis access for
//! acting behind the dicts' backs, and the conformance fixture.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;

use durabledict_conformance::{Capabilities, Fixture};
use durabledict_core::{BoxError, Store};
use durabledict_redis::RedisStore;
use durabledict_test_servers::{RedisCluster, RedisServer};
use redis::ConnectionLike;

/// The URL of this test binary's `redis-server`, started on first use.
pub fn server_url() -> String {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
        })
        .url()
}

/// The node URLs of this test binary's 3-master cluster, started on first use.
pub fn cluster_urls() -> Vec<String> {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            RedisCluster::start().unwrap_or_else(|e| panic!("cannot start a redis cluster: {e}"))
        })
        .urls()
}

/// A plain client connection, for raw commands.
pub fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("raw connection to {url}: {e}"))
}

/// Where the fixture's stores connect.
#[derive(Debug, Clone)]
pub enum Target {
    Server(String),
    Cluster(Vec<String>),
}

impl Target {
    pub fn store(&self, keyspace: &str) -> RedisStore {
        match self {
            Target::Server(url) => RedisStore::open(url, keyspace),
            Target::Cluster(nodes) => RedisStore::cluster_builder(nodes.clone(), keyspace).build(),
        }
        .unwrap_or_else(|e| panic!("store on {keyspace}: {e}"))
    }

    /// A raw connection that reaches the keyspace's keys (a cluster client routes by slot).
    pub fn raw(&self) -> Box<dyn ConnectionLike> {
        match self {
            Target::Server(url) => Box::new(raw(url)),
            Target::Cluster(nodes) => Box::new(
                redis::cluster::ClusterClient::new(nodes.clone())
                    .and_then(|c| c.get_connection())
                    .unwrap_or_else(|e| panic!("raw cluster connection: {e}")),
            ),
        }
    }
}

/// The conformance fixture: a store per call, raw commands for the hooks.
#[derive(Debug)]
pub struct RedisFixture {
    pub target: Target,
}

impl RedisFixture {
    pub fn server() -> Self {
        RedisFixture {
            target: Target::Server(server_url()),
        }
    }

    pub fn cluster() -> Self {
        RedisFixture {
            target: Target::Cluster(cluster_urls()),
        }
    }

    fn keys(&self, keyspace: &str) -> (String, String) {
        let store = self.target.store(keyspace);
        (store.hash_key().to_owned(), store.stamp_key().to_owned())
    }
}

impl Fixture for RedisFixture {
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError> {
        Ok(Box::new(self.target.store(keyspace)))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .model_cases(32)
            .feed(std::time::Duration::from_secs(2))
    }

    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        let name = self.target.store(keyspace).feed_client_name();
        Ok(kill_feed(&self.target, &name)? > 0)
    }

    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError> {
        let (hash, stamp) = self.keys(keyspace);
        let mut raw = self.target.raw();
        redis::cmd("DEL").arg(&hash).exec(&mut *raw)?;
        redis::cmd("DEL").arg(&stamp).exec(&mut *raw)?;
        Ok(())
    }

    fn lose_stamp(&self, keyspace: &str) -> Result<bool, BoxError> {
        let (_, stamp) = self.keys(keyspace);
        redis::cmd("DEL")
            .arg(&stamp)
            .exec(&mut *self.target.raw())?;
        Ok(true)
    }

    fn write_unstamped(&self, keyspace: &str, key: &str, value: &[u8]) -> Result<bool, BoxError> {
        let (hash, _) = self.keys(keyspace);
        redis::cmd("HSET")
            .arg(&hash)
            .arg(key)
            .arg(value)
            .exec(&mut *self.target.raw())?;
        Ok(true)
    }
}

/// A keyspace name no other test uses.
pub fn keyspace(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The stamp as stored, read with a raw `GET`.
pub fn raw_stamp(conn: &mut dyn ConnectionLike, store: &RedisStore) -> Option<String> {
    redis::cmd("GET")
        .arg(store.stamp_key())
        .query(conn)
        .unwrap()
}

/// The hash as stored, read with a raw `HGETALL`.
pub fn raw_hash(
    conn: &mut dyn ConnectionLike,
    store: &RedisStore,
) -> std::collections::HashMap<String, Vec<u8>> {
    redis::cmd("HGETALL")
        .arg(store.hash_key())
        .query(conn)
        .unwrap()
}

/// `CLIENT KILL`s every connection named `name` on every server of `target`, as a broken
/// connection would end it; how many.
pub fn kill_feed(target: &Target, name: &str) -> Result<usize, BoxError> {
    let urls = match target {
        Target::Server(url) => vec![url.clone()],
        Target::Cluster(nodes) => nodes.clone(),
    };
    let mut killed = 0;
    for url in urls {
        let mut conn = raw(&url);
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut conn)?;
        for line in list.lines() {
            let field = |key: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(key))
                    .unwrap_or_default()
                    .to_owned()
            };
            if field("name=") == name {
                let killed_now: usize = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(field("id="))
                    .query(&mut conn)?;
                killed += killed_now;
            }
        }
    }
    Ok(killed)
}
