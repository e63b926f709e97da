//! MariaDB (the MySQL protocol), from Debian's `mariadb-server` package.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::find;
use crate::net::{exchange, with_free_ports};
use crate::process::{self, Daemon, Launch, ServerDir};

const SERVER: &str = "mariadb";
const PACKAGES: &str = "mariadb-server mariadb-client";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A MariaDB server on a free loopback port with a database named [`MariaDb::DATABASE`].
///
/// It runs with `--skip-grant-tables`: any user name, any password is accepted, so
/// `mysql://root@127.0.0.1:PORT/…` just works (and `GRANT`/`CREATE USER` are refused).
/// Durability is relaxed: these servers are for tests. Dropping it stops the server.
///
/// ```no_run
/// use durabledict_test_servers::MariaDb;
///
/// let mut db = MariaDb::start()?;
/// let url = db.url(); // mysql://root@127.0.0.1:PORT/durabledict
/// db.restart()?; // same port, same data
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct MariaDb {
    port: u16,
    client: PathBuf,
    daemon: Daemon,
    _dir: ServerDir,
}

impl MariaDb {
    /// The database created at start, which [`url`](Self::url) names.
    pub const DATABASE: &str = "durabledict";

    /// Runs `mariadb-install-db`, starts `mariadbd`, waits until it greets a connection, and
    /// creates [`MariaDb::DATABASE`].
    pub fn start() -> Result<Self> {
        let mariadbd = find::binary(SERVER, "mariadbd", PACKAGES)?;
        let install_db = find::binary(SERVER, "mariadb-install-db", PACKAGES)?;
        let client = find::binary(SERVER, "mariadb", PACKAGES)?;
        let dir = ServerDir::new(SERVER)?;
        let data = dir.path().join("data");
        // mariadbd refuses to run as root unless told to.
        let user = find::running_as_root().then_some("--user=root");

        let mut install = Command::new(install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--skip-test-db", "--auth-root-authentication-method=normal"])
            .args(user)
            .current_dir(dir.path());
        process::run(SERVER, &mut install)?;

        let (port, daemon) = with_free_ports(SERVER, 1, |ports| {
            let port = ports[0];
            let path = |name: &str| dir.path().join(name).display().to_string();
            let launch = Launch::new(&mariadbd, "TERM")
                .arg("--no-defaults")
                .args(user)
                .args([
                    format!("--datadir={}", data.display()),
                    format!("--port={port}"),
                    "--bind-address=127.0.0.1".to_string(),
                    format!("--socket={}", path("mariadb.sock")),
                    format!("--pid-file={}", path("mariadb.pid")),
                    format!("--tmpdir={}", dir.path().display()),
                    "--skip-grant-tables".to_string(),
                    "--skip-name-resolve".to_string(),
                    "--performance-schema=OFF".to_string(),
                    "--innodb-buffer-pool-size=32M".to_string(),
                    "--innodb-flush-log-at-trx-commit=0".to_string(),
                    "--innodb-doublewrite=0".to_string(),
                    "--max-connections=200".to_string(),
                ]);
            let mut daemon = Daemon::new(SERVER, launch, dir.path(), "mariadb.log");
            daemon.start(READY_TIMEOUT, || greets(port))?;
            Ok((port, daemon))
        })?;
        let db = MariaDb {
            port,
            client,
            daemon,
            _dir: dir,
        };
        db.create_database(Self::DATABASE)?;
        Ok(db)
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mysql://root@127.0.0.1:PORT/durabledict`.
    pub fn url(&self) -> String {
        self.url_for(Self::DATABASE)
    }

    /// `mysql://root@127.0.0.1:PORT/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates another database (if it does not exist) and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let quoted = name.replace('`', "``");
        self.execute(&format!("CREATE DATABASE IF NOT EXISTS `{quoted}`"))?;
        Ok(self.url_for(name))
    }

    /// Stops the server; [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server again on the same port and data directory (stopping it first if it
    /// runs): the data survives.
    pub fn restart(&mut self) -> Result<()> {
        let port = self.port;
        self.daemon.start(READY_TIMEOUT, || greets(port))
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }

    fn execute(&self, sql: &str) -> Result<()> {
        process::run(
            SERVER,
            client_command(&self.client, self.port).args(["-e", sql]),
        )
    }
}

fn client_command(client: &Path, port: u16) -> Command {
    let mut command = Command::new(client);
    command.args([
        "--no-defaults",
        "--protocol=tcp",
        "-h",
        "127.0.0.1",
        "-P",
        &port.to_string(),
        "-u",
        "root",
    ]);
    command
}

/// Whether the server sends its protocol-10 handshake (an error packet, 0xff, means it is not
/// accepting yet).
fn greets(port: u16) -> bool {
    let whole_packet = |r: &[u8]| {
        r.len() >= 4
            && r.len()
                >= 4 + usize::from(r[0]) + (usize::from(r[1]) << 8) + (usize::from(r[2]) << 16)
    };
    exchange(port, b"", whole_packet).is_ok_and(|r| r.get(4) == Some(&10))
}
