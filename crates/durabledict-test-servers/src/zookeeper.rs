//! ZooKeeper from Debian's `zookeeper` package, run directly with `java`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, ServerError};
use crate::find;
use crate::net::{contains, exchange, with_free_ports};
use crate::process::{Daemon, Launch, ServerDir};

const SERVER: &str = "zookeeper";
const PACKAGES: &str = "zookeeper default-jre-headless";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// A standalone ZooKeeper on a free loopback port. Dropping it stops the server.
///
/// ```no_run
/// use durabledict_test_servers::ZooKeeper;
///
/// let mut zk = ZooKeeper::start()?;
/// let hosts = zk.connect_string(); // 127.0.0.1:PORT
/// zk.restart()?; // same port, same data
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct ZooKeeper {
    port: u16,
    daemon: Daemon,
    _dir: ServerDir,
}

impl ZooKeeper {
    /// Starts a server and waits until `srvr` reports it serving (`Mode: standalone`).
    pub fn start() -> Result<Self> {
        let java = Java::find()?;
        let dir = ServerDir::new(SERVER)?;
        let (port, daemon) = with_free_ports(SERVER, 1, |ports| {
            let port = ports[0];
            let mut daemon = java.node(dir.path(), port, None)?;
            daemon.start(READY_TIMEOUT, || serving(port))?;
            Ok((port, daemon))
        })?;
        Ok(ZooKeeper {
            port,
            daemon,
            _dir: dir,
        })
    }

    /// The client port (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as ZooKeeper clients take it.
    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the server; [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server again on the same port and data directory (stopping it first if it
    /// runs): the znodes survive.
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port;
        self.daemon.start(READY_TIMEOUT, || serving(port))
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

/// A ZooKeeper ensemble of several servers on loopback ports. Dropping it stops them all.
///
/// ```no_run
/// use durabledict_test_servers::ZooKeeperEnsemble;
///
/// let mut zk = ZooKeeperEnsemble::start(3)?;
/// let hosts = zk.connect_string(); // 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
/// zk.stop_node(0); // two of three keep the quorum
/// zk.start_node(0)?;
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    /// (client port, server) per node; node `i` has `myid` `i + 1`.
    nodes: Vec<(u16, Daemon)>,
    _dir: ServerDir,
}

impl ZooKeeperEnsemble {
    /// Starts `size` servers and waits until each serves as leader or follower.
    pub fn start(size: usize) -> Result<Self> {
        let java = Java::find()?;
        let dir = ServerDir::new(SERVER)?;
        // Three ports per node: client, quorum, leader election.
        let nodes = with_free_ports(SERVER, 3 * size, |ports| {
            let peers: String =
                ports
                    .chunks(3)
                    .enumerate()
                    .fold(String::new(), |mut out, (i, p)| {
                        let _ = writeln!(out, "server.{}=127.0.0.1:{}:{}", i + 1, p[1], p[2]);
                        out
                    });
            let mut nodes = Vec::with_capacity(size);
            for (i, p) in ports.chunks(3).enumerate() {
                let node_dir = dir.path().join(format!("node{}", i + 1));
                std::fs::create_dir_all(&node_dir).map_err(|e| {
                    ServerError::io(SERVER, format!("create {}", node_dir.display()), e)
                })?;
                let mut daemon = java.node(&node_dir, p[0], Some((i + 1, &peers)))?;
                // An ensemble member serves only once a quorum is up: start all, then wait.
                daemon.spawn()?;
                nodes.push((p[0], daemon));
            }
            for (port, daemon) in &mut nodes {
                let port = *port;
                daemon.wait_ready(READY_TIMEOUT, || serving(port))?;
            }
            Ok(nodes)
        })?;
        Ok(ZooKeeperEnsemble { nodes, _dir: dir })
    }

    /// How many servers the ensemble has.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the ensemble has no servers (never, once started with a size above zero).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The client ports of the servers, in node order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|(port, _)| *port).collect()
    }

    /// `127.0.0.1:P1,127.0.0.1:P2,…`, as ZooKeeper clients take it.
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops server `i` (counting from 0).
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn stop_node(&mut self, i: usize) {
        self.nodes[i].1.stop();
    }

    /// Starts server `i` again (stopping it first if it runs) and waits until it serves as
    /// leader or follower.
    ///
    /// # Panics
    ///
    /// If `i >= self.len()`.
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        let (port, daemon) = &mut self.nodes[i];
        let port = *port;
        daemon.start(READY_TIMEOUT, || serving(port))
    }
}

/// The `java` command and the class path of Debian's ZooKeeper.
#[derive(Debug)]
struct Java {
    java: PathBuf,
    class_path: String,
}

impl Java {
    fn find() -> Result<Self> {
        let java = match std::env::var_os("JAVA_HOME").map(|home| Path::new(&home).join("bin/java"))
        {
            Some(java) if java.is_file() => java,
            _ => find::binary(SERVER, "java", PACKAGES)?,
        };
        // Debian's zookeeper.jar names its dependencies in its manifest's Class-Path; slf4j's
        // simple binding sends the server log to stderr, which lands in our log file.
        let jar = find::file(
            SERVER,
            &[
                "/usr/share/java/zookeeper.jar",
                "/usr/share/zookeeper/zookeeper.jar",
            ],
            PACKAGES,
        )?;
        let mut class_path = jar.display().to_string();
        let logger = Path::new("/usr/share/java/slf4j-simple.jar");
        if logger.is_file() {
            class_path.push(':');
            class_path.push_str(&logger.display().to_string());
        }
        Ok(Java { java, class_path })
    }

    /// Writes `dir/zoo.cfg` (and `dir/data/myid` for an ensemble member) and returns the
    /// server, not started yet.
    fn node(&self, dir: &Path, client_port: u16, member: Option<(usize, &str)>) -> Result<Daemon> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data)
            .map_err(|e| ServerError::io(SERVER, format!("create {}", data.display()), e))?;
        // A short tick makes elections quick; the session bounds stay usual for clients.
        let mut config = format!(
            "tickTime=500\n\
             initLimit=20\n\
             syncLimit=10\n\
             minSessionTimeout=1000\n\
             maxSessionTimeout=60000\n\
             dataDir={}\n\
             clientPort={client_port}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             forceSync=no\n",
            data.display()
        );
        if let Some((myid, peers)) = member {
            config.push_str(peers);
            write(&data.join("myid"), &format!("{myid}\n"))?;
        }
        let cfg = dir.join("zoo.cfg");
        write(&cfg, &config)?;
        let launch = Launch::new(&self.java, "TERM")
            .args([
                "-Xmx256m",
                "-Xms32m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-XX:-UsePerfData",
                "-Xshare:auto",
                "-Djava.awt.headless=true",
                "-Dzookeeper.preAllocSize=1024",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp",
                &self.class_path,
                MAIN_CLASS,
            ])
            .arg(&cfg);
        Ok(Daemon::new(SERVER, launch, dir, "zookeeper.log"))
    }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents)
        .map_err(|e| ServerError::io(SERVER, format!("write {}", path.display()), e))
}

/// Whether `srvr` says the server serves: `Mode: standalone`, `leader` or `follower`. (`ruok`
/// answers `imok` before the server serves, so it is not enough.)
fn serving(port: u16) -> bool {
    exchange(port, b"srvr", |_| false).is_ok_and(|r| contains(&r, b"Mode: "))
}
