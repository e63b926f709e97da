//! `redis-server`, alone or as a three-master cluster.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Result, ServerError};
use crate::find;
use crate::net::{contains, exchange, with_free_ports};
use crate::process::{self, Daemon, Launch, ServerDir};

const SERVER: &str = "redis";
const CLUSTER: &str = "redis cluster";
const PACKAGES: &str = "redis-server redis-tools";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` on a free loopback port, persistence off, in its own temporary directory.
/// Dropping it stops the server.
///
/// ```no_run
/// use durabledict_test_servers::RedisServer;
///
/// let mut redis = RedisServer::start()?;
/// let url = redis.url(); // redis://127.0.0.1:PORT/
/// redis.stop(); // the port stays reserved for...
/// redis.restart()?; // ...the same server, empty again
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    daemon: Daemon,
    _dir: ServerDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> Result<Self> {
        Self::start_with_args(Vec::<String>::new())
    }

    /// Starts a server with extra `redis-server` options — a Unix socket, a TLS port, ACL
    /// users — after the defaults (so they can override them), and waits until it answers
    /// `PING` on its plain loopback port. [`restart`](Self::restart) keeps the options.
    ///
    /// ```no_run
    /// use durabledict_test_servers::RedisServer;
    ///
    /// let redis = RedisServer::start_with_args(["--unixsocket", "/tmp/redis-test.sock"])?;
    /// # Ok::<(), durabledict_test_servers::ServerError>(())
    /// ```
    pub fn start_with_args<I, S>(args: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let extra: Vec<String> = args.into_iter().map(Into::into).collect();
        let program = find::binary(SERVER, "redis-server", PACKAGES)?;
        let dir = ServerDir::new(SERVER)?;
        let (port, daemon) = with_free_ports(SERVER, 1, |ports| {
            let port = ports[0];
            let launch = redis_launch(&program, dir.path(), port).args(extra.iter().cloned());
            let mut daemon = Daemon::new(SERVER, launch, dir.path(), "redis.log");
            daemon.start(READY_TIMEOUT, || ping(port))?;
            Ok((port, daemon))
        })?;
        Ok(RedisServer {
            port,
            daemon,
            _dir: dir,
        })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server; [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs). With
    /// persistence off it comes back empty.
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port;
        self.daemon.start(READY_TIMEOUT, || ping(port))
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

/// Three `redis-server` masters in cluster mode on free loopback ports, the 16384 slots spread
/// over them by `redis-cli --cluster create`. Dropping it stops every node.
///
/// ```no_run
/// use durabledict_test_servers::RedisCluster;
///
/// let cluster = RedisCluster::start()?;
/// assert_eq!(cluster.urls().len(), 3);
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<(u16, Daemon)>,
    _dir: ServerDir,
}

impl RedisCluster {
    /// How many masters the cluster has.
    pub const MASTERS: usize = 3;

    /// Starts the nodes, joins them into a cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Result<Self> {
        let program = find::binary(CLUSTER, "redis-server", PACKAGES)?;
        let cli = find::binary(CLUSTER, "redis-cli", PACKAGES)?;
        let dir = ServerDir::new(CLUSTER)?;
        let mut nodes = Vec::with_capacity(Self::MASTERS);
        for i in 0..Self::MASTERS {
            let node_dir = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&node_dir).map_err(|e| {
                ServerError::io(CLUSTER, format!("create {}", node_dir.display()), e)
            })?;
            // The cluster bus needs a port of its own.
            let node = with_free_ports(CLUSTER, 2, |ports| {
                let (port, bus) = (ports[0], ports[1]);
                let launch = redis_launch(&program, &node_dir, port).args([
                    "--cluster-enabled".to_string(),
                    "yes".to_string(),
                    "--cluster-port".to_string(),
                    bus.to_string(),
                    "--cluster-config-file".to_string(),
                    "nodes.conf".to_string(),
                    "--cluster-node-timeout".to_string(),
                    "2000".to_string(),
                ]);
                let mut daemon = Daemon::new(CLUSTER, launch, &node_dir, "redis.log");
                daemon.start(READY_TIMEOUT, || ping(port))?;
                Ok((port, daemon))
            })?;
            nodes.push(node);
        }
        let mut create = Command::new(&cli);
        create.arg("--cluster").arg("create");
        create.args(nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        process::run(CLUSTER, &mut create)?;

        let started = Instant::now();
        for (port, daemon) in &nodes {
            while !cluster_ok(*port) {
                if started.elapsed() > READY_TIMEOUT {
                    return Err(ServerError::Timeout {
                        server: CLUSTER,
                        waited: READY_TIMEOUT,
                        log_tail: daemon.log_tail(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { nodes, _dir: dir })
    }

    /// The nodes' ports, on 127.0.0.1.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(port, _)| *port).collect()
    }

    /// One `redis://127.0.0.1:PORT/` per node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}/"))
            .collect()
    }
}

fn redis_launch(program: &Path, dir: &Path, port: u16) -> Launch {
    Launch::new(program, "TERM").args([
        "--port".to_string(),
        port.to_string(),
        "--bind".to_string(),
        "127.0.0.1".to_string(),
        "--dir".to_string(),
        dir.display().to_string(),
        "--save".to_string(),
        String::new(),
        "--appendonly".to_string(),
        "no".to_string(),
        "--daemonize".to_string(),
        "no".to_string(),
        "--logfile".to_string(),
        String::new(),
    ])
}

/// `PING` → `+PONG` (a server still loading answers `-LOADING`).
fn ping(port: u16) -> bool {
    exchange(port, b"*1\r\n$4\r\nPING\r\n", |r| r.ends_with(b"\r\n"))
        .is_ok_and(|r| r.starts_with(b"+PONG"))
}

/// Whether `CLUSTER INFO` on this node says `cluster_state:ok`.
fn cluster_ok(port: u16) -> bool {
    exchange(port, b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n", |r| {
        contains(r, b"cluster_state:") && r.ends_with(b"\r\n")
    })
    .is_ok_and(|r| contains(&r, b"cluster_state:ok"))
}
