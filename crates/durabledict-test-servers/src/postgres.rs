//! PostgreSQL, from Debian's `postgresql` package.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{Result, ServerError};
use crate::find;
use crate::net::with_free_ports;
use crate::process::{self, Daemon, Launch, ServerDir};

const SERVER: &str = "postgres";
const PACKAGES: &str = "postgresql";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// PostgreSQL refuses to run as root; as root we run it as this user.
const UNPRIVILEGED_USER: &str = "postgres";

/// A PostgreSQL server on a free loopback port, with trust authentication for the `postgres`
/// role and a database named [`Postgres::DATABASE`]. Durability is off (`fsync=off`): these
/// servers are for tests. Dropping it stops the server.
///
/// When this process runs as root, `initdb` and the server run as the `postgres` user (through
/// `runuser`), in a temporary directory handed to that user.
///
/// ```no_run
/// use durabledict_test_servers::Postgres;
///
/// let mut pg = Postgres::start()?;
/// let url = pg.url(); // postgres://postgres@127.0.0.1:PORT/durabledict
/// let other = pg.create_database("isolated")?;
/// pg.restart()?; // same port, same data
/// # Ok::<(), durabledict_test_servers::ServerError>(())
/// ```
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    daemon: Daemon,
    _dir: ServerDir,
}

impl Postgres {
    /// The database created at start, which [`url`](Self::url) names.
    pub const DATABASE: &str = "durabledict";

    /// Runs `initdb`, starts the server, waits until `pg_isready` says it accepts connections,
    /// and creates [`Postgres::DATABASE`].
    pub fn start() -> Result<Self> {
        let bin = find::postgres_bin_dir(PACKAGES)?;
        for tool in ["initdb", "postgres", "pg_isready", "createdb"] {
            if !bin.join(tool).is_file() {
                return Err(find::missing(
                    SERVER,
                    bin.join(tool).display().to_string(),
                    PACKAGES,
                ));
            }
        }
        let dir = ServerDir::new(SERVER)?;
        let run_as = if find::running_as_root() {
            let runuser = find::binary(SERVER, "runuser", "util-linux")?;
            let (uid, gid) = find::user_ids(UNPRIVILEGED_USER).ok_or_else(|| {
                find::missing(SERVER, format!("the `{UNPRIVILEGED_USER}` user"), PACKAGES)
            })?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                ServerError::io(
                    SERVER,
                    format!("chown {} to {UNPRIVILEGED_USER}", dir.path().display()),
                    e,
                )
            })?;
            Some((runuser, UNPRIVILEGED_USER))
        } else {
            None
        };
        let data = dir.path().join("data");

        let mut initdb = match &run_as {
            Some((runuser, user)) => {
                let mut c = Command::new(runuser);
                c.args(["-u", user, "--"]).arg(bin.join("initdb"));
                c
            }
            None => Command::new(bin.join("initdb")),
        };
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .current_dir(dir.path());
        process::run(SERVER, &mut initdb)?;

        let (port, daemon) = with_free_ports(SERVER, 1, |ports| {
            let port = ports[0];
            let launch = Launch::new(bin.join("postgres"), "INT")
                .run_as(run_as.as_ref().map(|(_, user)| *user))
                .arg("-D")
                .arg(&data)
                .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
                .arg(dir.path())
                .args(settings());
            let mut daemon = Daemon::new(SERVER, launch, dir.path(), "postgres.log");
            daemon.start(READY_TIMEOUT, || is_ready(&bin, port))?;
            Ok((port, daemon))
        })?;
        let pg = Postgres {
            port,
            bin,
            daemon,
            _dir: dir,
        };
        pg.create_database(Self::DATABASE)?;
        Ok(pg)
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/durabledict`.
    pub fn url(&self) -> String {
        self.url_for(Self::DATABASE)
    }

    /// `postgres://postgres@127.0.0.1:PORT/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates another database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let mut createdb = Command::new(self.bin.join("createdb"));
        createdb.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            name,
        ]);
        process::run(SERVER, &mut createdb)?;
        Ok(self.url_for(name))
    }

    /// Stops the server (fast shutdown); [`restart`](Self::restart) brings it back on the same
    /// port.
    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Starts the server again on the same port and data directory (stopping it first if it
    /// runs): the data survives.
    pub fn restart(&mut self) -> Result<()> {
        let (bin, port) = (&self.bin, self.port);
        self.daemon.start(READY_TIMEOUT, || is_ready(bin, port))
    }

    /// Whether the server process is alive.
    pub fn is_running(&mut self) -> bool {
        self.daemon.is_running()
    }
}

/// Server settings for a disposable test server: fast, not durable.
fn settings() -> Vec<OsString> {
    [
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=200",
    ]
    .into_iter()
    .flat_map(|setting| ["-c".into(), setting.into()])
    .collect()
}

fn is_ready(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args([
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-t",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
