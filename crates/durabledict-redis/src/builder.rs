//! [`RedisStoreBuilder`]: where to connect, key layout, timeouts, pool size.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use durabledict_core::StoreError;
use redis::cluster::ClusterClient;
use redis::{
    Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, RedisError, RedisResult, Value,
};

use crate::continuity::{self, Continuity, Identity};
use crate::error::{config, store_error};
use crate::feed::{FeedConnect, Peers, Tracking};
use crate::keys::Keys;
use crate::pool::{Conn, Connect, Pool};
use crate::scripts::Scripts;
use crate::store::{Inner, RedisStore};

/// How long connecting may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for its reply (and for its bytes to be sent), by default.
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How many idle connections a store keeps open, by default.
pub const DEFAULT_MAX_IDLE: usize = 8;
/// After how long idle a connection is checked with `PING` before a removal, by default: at
/// once, so a removal right after a server restart succeeds (one more round trip per removal;
/// reads and writes that set values never pay it).
pub const DEFAULT_CHECK_IDLE_AFTER: Duration = Duration::ZERO;

/// Configures a [`RedisStore`]; made by [`RedisStore::builder`] or
/// [`RedisStore::cluster_builder`]. Building checks the configuration and opens no connection:
/// the first operation connects.
///
/// ```
/// use std::time::Duration;
/// use durabledict_redis::RedisStore;
///
/// let store = RedisStore::builder("redis://:secret@127.0.0.1:6379/2", "settings")
///     .connect_timeout(Duration::from_millis(500))
///     .io_timeout(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(store.hash_key(), "settings");
/// assert_eq!(store.stamp_key(), "settingslast_updated");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    target: Target,
    keyspace: String,
    hash_tag: bool,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
    check_idle_after: Duration,
    max_value_len: Option<usize>,
    #[cfg(feature = "tls")]
    tls: Option<Tls>,
}

/// Certificates for `rediss://`, beyond the system's roots.
#[cfg(feature = "tls")]
#[derive(Clone, Default)]
struct Tls {
    root_pem: Option<Vec<u8>>,
    client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

#[cfg(feature = "tls")]
impl Tls {
    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client_pem.clone().map(|(client_cert, client_key)| {
                redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }
            }),
            root_cert: self.root_pem.clone(),
        }
    }
}

#[derive(Clone)]
enum Target {
    Server(String),
    Cluster(Vec<String>),
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: show neither.
        f.debug_struct("RedisStoreBuilder")
            .field(
                "target",
                &match &self.target {
                    Target::Server(_) => "server",
                    Target::Cluster(_) => "cluster",
                },
            )
            .field("keyspace", &self.keyspace)
            .field("hash_tag", &self.hash_tag)
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("max_idle", &self.max_idle)
            .field("check_idle_after", &self.check_idle_after)
            .field("max_value_len", &self.max_value_len)
            .finish()
    }
}

impl RedisStoreBuilder {
    pub(crate) fn server(url: &str, keyspace: &str) -> Self {
        Self::new(Target::Server(url.to_owned()), keyspace)
    }

    pub(crate) fn cluster<I, S>(nodes: I, keyspace: &str) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nodes = nodes.into_iter().map(Into::into).collect();
        let mut builder = Self::new(Target::Cluster(nodes), keyspace);
        builder.hash_tag = true;
        builder
    }

    fn new(target: Target, keyspace: &str) -> Self {
        RedisStoreBuilder {
            target,
            keyspace: keyspace.to_owned(),
            hash_tag: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
            max_idle: DEFAULT_MAX_IDLE,
            check_idle_after: DEFAULT_CHECK_IDLE_AFTER,
            max_value_len: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Trusts the certificate authority in `pem` (PEM text) for `rediss://` instead of the
    /// system's roots. Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.get_or_insert_with(Tls::default).root_pem = Some(pem.into());
        self
    }

    /// Presents a client certificate and its private key (both PEM text) to a server that
    /// asks for one (`tls-auth-clients yes`). Feature `tls`.
    #[cfg(feature = "tls")]
    pub fn tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.get_or_insert_with(Tls::default).client_pem =
            Some((certificate_pem.into(), key_pem.into()));
        self
    }

    /// Wraps the keyspace in a hash tag: values in `{keyspace}`, the stamp in
    /// `{keyspace}last_updated`, so both live in one Redis Cluster slot. On by default for a
    /// cluster, off for a single server (Python durabledict's layout). A Python fleet shares a
    /// hash-tagged keyspace by using `"{keyspace}"` as its keyspace name.
    pub fn hash_tag(mut self, on: bool) -> Self {
        self.hash_tag = on;
        self
    }

    /// How long connecting (TCP or socket, TLS, `AUTH`, `SELECT`) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long sending a command and waiting for its reply may take. A command that times out
    /// fails as [`Unavailable`](durabledict_core::StoreErrorKind::Unavailable) and its
    /// connection is closed. A write is never sent again (on a cluster neither): one that timed
    /// out ran at most once, and may or may not have been applied. On a cluster, the cluster
    /// client sends a read that timed out again itself, up to 16 times.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// How many idle connections to keep open for reuse. Each thread in an operation uses its
    /// own connection; beyond this many, connections are closed after use.
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.max_idle = connections;
        self
    }

    /// After how long idle a connection is checked with `PING` before a removal (`depersist`,
    /// `pop`, `clear`) is sent on it; by default at once (zero). Removals are never sent twice,
    /// so this check is what makes a removal right after a server restart succeed; a larger
    /// value saves the round trip for removals on connections used within it, which then fail
    /// once with `Unavailable` (nothing removed) if the server restarted meanwhile. Every other
    /// operation is sent once more on a new connection when its pooled one turns out dead, and
    /// needs no check (see the crate docs, "What is sent twice").
    pub fn check_idle_after(mut self, idle: Duration) -> Self {
        self.check_idle_after = idle;
        self
    }

    /// Declares the largest encoded value to accept, so that a larger one is refused before
    /// anything is sent. Unbounded by default: the server refuses values over its
    /// `proto-max-bulk-len` (512 MB by default) itself.
    pub fn max_value_len(mut self, bytes: usize) -> Self {
        self.max_value_len = Some(bytes);
        self
    }

    /// Checks the configuration and makes the store; connects on first use.
    ///
    /// Fails ([`Other`](durabledict_core::StoreErrorKind::Other)) on a URL that does not parse,
    /// a scheme this build does not support (`rediss://` needs the `tls` feature), a zero
    /// timeout, or a cluster keyspace whose two keys would fall in different slots.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        if self.connect_timeout.is_zero() || self.io_timeout.is_zero() {
            return Err(config("timeouts must be longer than zero"));
        }
        let keys = Keys::new(&self.keyspace, self.hash_tag);
        type Connectors = (
            Box<dyn Connect>,
            Option<Box<dyn Connect>>,
            Arc<dyn FeedConnect>,
        );
        let (reads, writes, feed): Connectors = match &self.target {
            Target::Server(url) => {
                let client = self.server_client(url)?;
                if !client.get_connection_info().addr().is_supported() {
                    return Err(config(
                        "this URL needs a transport this build lacks (rediss:// needs the `tls` feature)",
                    ));
                }
                let feed = ServerFeed {
                    info: resp3(client.get_connection_info()),
                    connect_timeout: self.connect_timeout,
                    io_timeout: self.io_timeout,
                };
                let server = Server {
                    client,
                    connect_timeout: self.connect_timeout,
                    io_timeout: self.io_timeout,
                };
                (Box::new(server), None, Arc::new(feed))
            }
            Target::Cluster(nodes) => {
                if !keys.same_slot() {
                    return Err(config(format!(
                        "the keys {:?} and {:?} fall in different cluster slots; use hash_tag(true)",
                        keys.hash, keys.stamp
                    )));
                }
                // The cluster client sends a command again on its own after a timeout (on the
                // same connection, up to 16 times) or a redirection: harmless for reads, but a
                // write would run several times. Writes get a client that sends once; the pool
                // decides what may be sent again (see `pool`).
                let reads = self.cluster_client(nodes, false)?;
                let writes = self.cluster_client(nodes, true)?;
                let seeds = nodes
                    .iter()
                    .map(|node| Ok(resp3(self.server_client(node)?.get_connection_info())))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                let feed = ClusterFeed {
                    seeds,
                    connect_timeout: self.connect_timeout,
                    io_timeout: self.io_timeout,
                };
                (Box::new(reads), Some(Box::new(writes)), Arc::new(feed))
            }
        };
        let target = match &self.target {
            Target::Server(url) => url.clone(),
            Target::Cluster(nodes) => nodes.join("\n"),
        };
        let continuity = Arc::new(Continuity::default());
        let pool = |connector| {
            Pool::new(
                connector,
                Arc::clone(&continuity),
                self.max_idle,
                self.check_idle_after,
            )
        };
        let tracking = Tracking::new(
            feed,
            keys.stamp.clone(),
            Arc::clone(&continuity),
            Peers::of(&target, &keys.stamp),
        );
        Ok(RedisStore {
            inner: Arc::new(Inner {
                reads: pool(reads),
                writes: writes.map(pool),
                tracking,
                continuity,
                scripts: Scripts::new(),
                keys,
                keyspace: self.keyspace,
                max_value_len: self.max_value_len,
            }),
        })
    }
}

impl RedisStoreBuilder {
    /// A cluster client with the timeouts and certificates; `send_once`: one that never sends
    /// a command again by itself (after a timeout, a redirection, a broken connection).
    fn cluster_client(&self, nodes: &[String], send_once: bool) -> Result<Cluster, StoreError> {
        let builder = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.io_timeout);
        let builder = if send_once {
            builder.retries(0)
        } else {
            builder
        };
        #[cfg(feature = "tls")]
        let builder = match &self.tls {
            Some(tls) => builder.certs(tls.certificates()),
            None => builder,
        };
        Ok(Cluster {
            client: builder.build().map_err(store_error)?,
            io_timeout: self.io_timeout,
            #[cfg(feature = "tls")]
            tls: nodes.iter().any(|node| node.starts_with("rediss:")),
        })
    }

    fn server_client(&self, url: &str) -> Result<Client, StoreError> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Client::build_with_tls(url, tls.certificates()).map_err(store_error);
        }
        Client::open(url).map_err(store_error)
    }
}

/// One Redis server (TCP, TLS or a Unix socket).
struct Server {
    client: Client,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field(
                "addr",
                &self.client.get_connection_info().addr().to_string(),
            )
            .finish_non_exhaustive()
    }
}

impl Connect for Server {
    fn connect(&self) -> RedisResult<(Conn, Identity)> {
        #[cfg(feature = "tls")]
        if matches!(
            self.client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ) {
            crate::tls::ensure_provider();
        }
        let mut conn = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        conn.set_read_timeout(Some(self.io_timeout))?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        let identity = continuity::identify(&mut conn)?;
        Ok((Box::new(conn), identity))
    }

    #[cfg(feature = "aio")]
    fn server(&self) -> Option<(&redis::ConnectionInfo, Duration, Duration)> {
        Some((
            self.client.get_connection_info(),
            self.connect_timeout,
            self.io_timeout,
        ))
    }

    fn explain(&self, error: RedisError) -> StoreError {
        #[cfg(feature = "tls")]
        if let redis::ConnectionAddr::TcpTls { host, port, .. } =
            self.client.get_connection_info().addr()
        {
            return crate::tls::connect_error(host, *port, self.connect_timeout, error);
        }
        store_error(error)
    }
}

/// A Redis Cluster: one client connection per node, routed by key slot.
struct Cluster {
    client: ClusterClient,
    io_timeout: Duration,
    /// Whether the nodes are reached over TLS (`rediss://`).
    #[cfg(feature = "tls")]
    tls: bool,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Connect for Cluster {
    fn connect(&self) -> RedisResult<(Conn, Identity)> {
        #[cfg(feature = "tls")]
        if self.tls {
            crate::tls::ensure_provider();
        }
        // Connects to the initial nodes and reads the slot map; fails when none answers. The
        // client opens and re-opens its connections to the nodes by itself, so there is no one
        // server to identify (see the crate docs, "A server that restarts empty").
        let conn = self.client.get_connection()?;
        conn.set_write_timeout(Some(self.io_timeout))?;
        Ok((Box::new(conn), Identity::Untracked))
    }
}

/// The same connection settings, speaking RESP3 (for pushed invalidation notices).
fn resp3(info: &ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.clone().set_redis_settings(settings)
}

/// Opens `info` (RESP3) with the timeouts, and asks who answered.
fn feed_connection(
    info: &ConnectionInfo,
    connect_timeout: Duration,
    io_timeout: Duration,
) -> RedisResult<(redis::Connection, Identity)> {
    #[cfg(feature = "tls")]
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        crate::tls::ensure_provider();
    }
    let mut conn = Client::open(info.clone())?.get_connection_with_timeout(connect_timeout)?;
    conn.set_read_timeout(Some(io_timeout))?;
    conn.set_write_timeout(Some(io_timeout))?;
    let identity = continuity::identify(&mut conn)?;
    Ok((conn, identity))
}

/// The feed of a store on one server: a RESP3 connection to it.
struct ServerFeed {
    info: ConnectionInfo,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl fmt::Debug for ServerFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerFeed")
            .field("addr", &self.info.addr().to_string())
            .finish_non_exhaustive()
    }
}

impl FeedConnect for ServerFeed {
    fn connect(&self, _stamp: &str) -> RedisResult<(redis::Connection, Identity)> {
        feed_connection(&self.info, self.connect_timeout, self.io_timeout)
    }

    fn probe(&self, _stamp: &str) -> redis::Cmd {
        redis::cmd("PING")
    }
}

/// The feed of a store on a cluster: a RESP3 connection to the master owning the stamp key's
/// slot, found with `CLUSTER SLOTS` from the first seed node that answers.
struct ClusterFeed {
    seeds: Vec<ConnectionInfo>,
    connect_timeout: Duration,
    io_timeout: Duration,
}

impl fmt::Debug for ClusterFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterFeed")
            .field("seeds", &self.seeds.len())
            .finish_non_exhaustive()
    }
}

impl ClusterFeed {
    /// The master of `stamp`'s slot as seen by `seed`: its address, or `None` when it is the
    /// seed itself.
    fn owner(
        seed: &ConnectionInfo,
        conn: &mut redis::Connection,
        stamp: &str,
    ) -> RedisResult<Option<ConnectionAddr>> {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(stamp)
            .query(conn)?;
        let ranges: Vec<Value> = redis::cmd("CLUSTER").arg("SLOTS").query(conn)?;
        for range in ranges {
            let Value::Array(range) = range else { continue };
            let [Value::Int(start), Value::Int(end), Value::Array(master), ..] = range.as_slice()
            else {
                continue;
            };
            if !(*start..=*end).contains(&slot) {
                continue;
            }
            let [host, Value::Int(port), ..] = master.as_slice() else {
                break;
            };
            let host = match host {
                Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
                Value::SimpleString(host) => host.clone(),
                _ => break,
            };
            let port = u16::try_from(*port).unwrap_or_default();
            let addr = match seed.addr().clone() {
                ConnectionAddr::Tcp(seed_host, seed_port) => {
                    if (host.is_empty() || host == seed_host) && port == seed_port {
                        return Ok(None);
                    }
                    ConnectionAddr::Tcp(if host.is_empty() { seed_host } else { host }, port)
                }
                ConnectionAddr::TcpTls {
                    host: seed_host,
                    port: seed_port,
                    insecure,
                    tls_params,
                } => {
                    if (host.is_empty() || host == seed_host) && port == seed_port {
                        return Ok(None);
                    }
                    let host = if host.is_empty() { seed_host } else { host };
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure,
                        tls_params,
                    }
                }
                _ => return Ok(None),
            };
            return Ok(Some(addr));
        }
        Err(RedisError::from((
            redis::ErrorKind::Client,
            "no cluster node serves the stamp key's slot",
        )))
    }
}

impl FeedConnect for ClusterFeed {
    fn connect(&self, stamp: &str) -> RedisResult<(redis::Connection, Identity)> {
        let mut last = None;
        for seed in &self.seeds {
            let found = feed_connection(seed, self.connect_timeout, self.io_timeout).and_then(
                |(mut conn, identity)| {
                    Ok(match Self::owner(seed, &mut conn, stamp)? {
                        None => (conn, identity),
                        Some(addr) => feed_connection(
                            &seed.clone().set_addr(addr),
                            self.connect_timeout,
                            self.io_timeout,
                        )?,
                    })
                },
            );
            match found {
                Ok(found) => return Ok(found),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from((redis::ErrorKind::Client, "no seed nodes"))))
    }

    fn probe(&self, stamp: &str) -> redis::Cmd {
        let mut probe = redis::cmd("EXISTS");
        probe.arg(stamp);
        probe
    }
}
