//! `memcached`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::Result;
use crate::find;
use crate::net::{exchange, with_free_ports};
use crate::process::{Daemon, Launch, ServerDir};

const SERVER: &str = "memcached";
const PACKAGES: &str = "memcached";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `memcached` on a free loopback port (TCP only, 64 MiB). Dropping it stops the server.
///
/// ```no_run
/// use durabledict_test_servers::Memcached;
///
/// let mut memcached = Memcached::start()?;
/// let url = memcached.url(); // memcache://127.0.0.1:PORT
/// memcached.restart()?; // same port, every item gone
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct Memcached {
    port: u16,
    daemon: Daemon,
    _dir: ServerDir,
}

impl Memcached {
    /// Starts a server and waits until it answers `version`.
    pub fn start() -> Result<Self> {
        let program = find::binary(SERVER, "memcached", PACKAGES)?;
        let dir = ServerDir::new(SERVER)?;
        let (port, daemon) = with_free_ports(SERVER, 1, |ports| {
            let port = ports[0];
            // memcached acts on SIGTERM only at its next clock tick, up to a second later; it
            // keeps nothing worth a clean shutdown.
            let mut launch = Launch::new(&program, "KILL").args([
                "-l".to_string(),
                "127.0.0.1".to_string(),
                "-p".to_string(),
                port.to_string(),
                "-U".to_string(),
                "0".to_string(),
                "-m".to_string(),
                "64".to_string(),
            ]);
            if find::running_as_root() {
                // memcached refuses root unless told which user to be.
                launch = launch.args(["-u", "root"]);
            }
            let mut daemon = Daemon::new(SERVER, launch, dir.path(), "memcached.log");
            daemon.start(READY_TIMEOUT, || ping(port))?;
            Ok((port, daemon))
        })?;
        Ok(Memcached {
            port,
            daemon,
            _dir: dir,
        })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `memcache://127.0.0.1:PORT`, as the `memcache` crate takes it.
    pub fn url(&self) -> String {
        format!("memcache://127.0.0.1:{}", self.port)
    }

    /// Stops the server; [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs), empty.
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port;
        self.daemon.start(READY_TIMEOUT, || ping(port))
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

fn ping(port: u16) -> bool {
    exchange(port, b"version\r\n", |r| r.ends_with(b"\r\n"))
        .is_ok_and(|r| r.starts_with(b"VERSION "))
}
