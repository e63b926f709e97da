//! This binary's servers: each started on first use, once, on a free loopback port, and
//! stopped when the binary ends (the test servers' watchdog). Fleet members never call these:
//! they get their URLs from the parent.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// A keyspace no other test (of any run) uses: a valid SQL table name, Redis hash and znode.
pub fn keyspace(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "e2e_{test}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[track_caller]
fn started<T>(name: &str, server: durabledict_test_servers::Result<T>) -> T {
    server.unwrap_or_else(|e| panic!("cannot start {name}: {e}"))
}

/// A `redis-server` listening on TCP and on a Unix socket.
#[cfg(feature = "redis")]
pub struct Redis {
    server: durabledict_test_servers::RedisServer,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "redis")]
impl Redis {
    /// `redis://127.0.0.1:PORT` followed by `/DB` when given.
    pub fn url(&self, db: Option<u32>) -> String {
        let base = self.server.url();
        match db {
            Some(db) => format!("{base}{db}"),
            None => base,
        }
    }

    /// The socket's absolute path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }
}

#[cfg(feature = "redis")]
pub fn redis() -> &'static Redis {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    REDIS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let args = [
            "--unixsocket".to_string(),
            socket.display().to_string(),
            "--unixsocketperm".to_string(),
            "700".to_string(),
        ];
        let server = started(
            "redis-server",
            durabledict_test_servers::RedisServer::start_with_args(args),
        );
        Redis {
            server,
            socket,
            _dir: dir,
        }
    })
}

/// `memcache://127.0.0.1:PORT`.
#[cfg(feature = "memcache")]
pub fn memcached() -> &'static durabledict_test_servers::Memcached {
    static MEMCACHED: OnceLock<durabledict_test_servers::Memcached> = OnceLock::new();
    MEMCACHED.get_or_init(|| started("memcached", durabledict_test_servers::Memcached::start()))
}

#[cfg(feature = "postgres")]
pub fn postgres() -> &'static durabledict_test_servers::Postgres {
    static POSTGRES: OnceLock<durabledict_test_servers::Postgres> = OnceLock::new();
    POSTGRES.get_or_init(|| started("PostgreSQL", durabledict_test_servers::Postgres::start()))
}

#[cfg(feature = "mysql")]
pub fn mariadb() -> &'static durabledict_test_servers::MariaDb {
    static MARIADB: OnceLock<durabledict_test_servers::MariaDb> = OnceLock::new();
    MARIADB.get_or_init(|| started("MariaDB", durabledict_test_servers::MariaDb::start()))
}

/// `127.0.0.1:PORT`, ZooKeeper's connect string.
#[cfg(feature = "zookeeper")]
pub fn zookeeper() -> String {
    static ZOOKEEPER: OnceLock<durabledict_test_servers::ZooKeeper> = OnceLock::new();
    ZOOKEEPER
        .get_or_init(|| started("ZooKeeper", durabledict_test_servers::ZooKeeper::start()))
        .connect_string()
}
