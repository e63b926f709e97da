//! Server processes that never outlive the test process.
//!
//! A server kept in a process-wide `static` is never dropped, so `Drop` alone cannot stop it.
//! Each server therefore runs under a tiny `sh` watchdog whose standard input is a pipe held by
//! this process: when the pipe closes — because we dropped our end, or because this process
//! ended in any way, even `SIGKILL` — the watchdog signals the server, and `SIGKILL`s it if it
//! is still there a few seconds later. Their temporary directories go the same way.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{Result, ServerError};

/// `sh -c WATCHDOG sh SIGNAL PROGRAM ARGS…`: runs PROGRAM ARGS…, ends with its exit status.
///
/// A background job's stdin is /dev/null in a non-interactive shell, so our pipe is kept on fd 3
/// for the job that waits for it to close. `kill -0` stops succeeding once the server has been
/// reaped by `wait`; once it has, that job is killed so that it never signals a reused pid.
const WATCHDOG: &str = r#"sig=$1; shift
exec 3<&0 </dev/null
"$@" 3<&- &
pid=$!
{ cat <&3 >/dev/null; kill -"$sig" "$pid"; i=0
  while kill -0 "$pid" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$pid"; } 2>/dev/null &
watcher=$!
exec 3<&-
wait "$pid"; status=$?
kill "$watcher" 2>/dev/null
exit "$status""#;

/// How long dropping a [`Supervised`] waits for the watchdog to report the server gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// How to run a server.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The server program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Run as this user (through `runuser`), for servers that refuse to run as root.
    pub run_as: Option<&'static str>,
    /// The signal that shuts the server down cleanly and quickly, e.g. `TERM`.
    pub stop_signal: &'static str,
}

impl Launch {
    pub(crate) fn new(program: impl Into<PathBuf>, stop_signal: &'static str) -> Self {
        Launch {
            program: program.into(),
            args: Vec::new(),
            run_as: None,
            stop_signal,
        }
    }

    pub(crate) fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub(crate) fn run_as(mut self, user: Option<&'static str>) -> Self {
        self.run_as = user;
        self
    }
}

/// A running server under its watchdog. Dropping it stops the server and waits for it.
#[derive(Debug)]
struct Supervised {
    child: Child,
    /// Our end of the watchdog's stdin; closing it stops the server.
    lifeline: Option<ChildStdin>,
}

impl Supervised {
    fn spawn(launch: &Launch, dir: &Path, log: &File) -> std::io::Result<Self> {
        let mut command = match launch.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh"]);
                c
            }
            None => Command::new("sh"),
        };
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(launch.stop_signal)
            .arg(&launch.program)
            .args(&launch.args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?);
        let mut child = command.spawn()?;
        let lifeline = child.stdin.take();
        Ok(Supervised { child, lifeline })
    }

    /// The exit status, if the server has ended.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            sleep(Duration::from_millis(10));
        }
        // The watchdog itself is stuck; at least do not leave a zombie behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One server process that can be started, stopped and started again with the same arguments
/// (so on the same port and data directory).
#[derive(Debug)]
pub(crate) struct Daemon {
    server: &'static str,
    launch: Launch,
    dir: PathBuf,
    log_path: PathBuf,
    process: Option<Supervised>,
}

impl Daemon {
    /// `dir` is the working directory; the log goes to `dir/<log_name>` and is appended to
    /// across restarts.
    pub(crate) fn new(server: &'static str, launch: Launch, dir: &Path, log_name: &str) -> Self {
        Daemon {
            server,
            launch,
            dir: dir.to_path_buf(),
            log_path: dir.join(log_name),
            process: None,
        }
    }

    /// Starts the server (stopping it first if it runs) and waits until `ready` says yes.
    pub(crate) fn start(&mut self, timeout: Duration, ready: impl FnMut() -> bool) -> Result<()> {
        self.spawn()?;
        self.wait_ready(timeout, ready)
    }

    /// Starts the server (stopping it first if it runs) without waiting for it.
    pub(crate) fn spawn(&mut self) -> Result<()> {
        self.stop();
        let server = self.server;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| ServerError::io(server, format!("open {}", self.log_path.display()), e))?;
        let process = Supervised::spawn(&self.launch, &self.dir, &log).map_err(|e| {
            ServerError::io(
                server,
                format!("spawn {}", self.launch.program.display()),
                e,
            )
        })?;
        self.process = Some(process);
        Ok(())
    }

    /// Waits until `ready` says yes. Fails, stopping the server, if it exits first or `timeout`
    /// passes.
    pub(crate) fn wait_ready(
        &mut self,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let server = self.server;
        let started = Instant::now();
        loop {
            let exited = match self.process.as_mut() {
                Some(process) => process.exited().map(|status| status.to_string()),
                None => Some("not started".to_string()),
            };
            if let Some(status) = exited {
                self.stop();
                return Err(ServerError::Exited {
                    server,
                    status,
                    log_tail: self.log_tail(),
                });
            }
            if ready() {
                return Ok(());
            }
            if started.elapsed() > timeout {
                self.stop();
                return Err(ServerError::Timeout {
                    server,
                    waited: timeout,
                    log_tail: self.log_tail(),
                });
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server and waits until it is gone. Does nothing if it is not running.
    pub(crate) fn stop(&mut self) {
        self.process = None;
    }

    /// Whether the server process is alive.
    pub(crate) fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.exited().is_none())
    }

    /// The last lines of the server's log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }
}

/// The last lines (at most a few KiB) of a log file.
pub(crate) fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 4096;
    const MAX_LINES: usize = 40;
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(MAX_LINES)..].join("\n");
    if tail.trim().is_empty() {
        format!("({} is empty)", path.display())
    } else {
        tail
    }
}

/// Runs a setup command to completion; its output goes into the error if it fails.
pub(crate) fn run(server: &'static str, command: &mut Command) -> Result<()> {
    let line = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ServerError::io(server, format!("run {line}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(ServerError::Command {
        server,
        command: line,
        status: output.status.to_string(),
        output: text,
    })
}

/// `sh -c JANITOR sh DIR`: removes DIR once its stdin closes: at once after a line (a clean
/// drop, servers already stopped), after a pause at a bare end of file (the test process died
/// and the servers' watchdogs are still stopping them).
const JANITOR: &str = r#"read -r now || sleep 2
rm -rf -- "$1" 2>/dev/null || { sleep 5; rm -rf -- "$1"; }"#;

/// A server's temporary directory.
///
/// Dropping it removes it. A server kept in a `static` is never dropped, so a janitor process
/// holding a pipe from this process removes the directory when this process ends.
#[derive(Debug)]
pub(crate) struct ServerDir {
    path: PathBuf,
    janitor: Option<Child>,
}

impl ServerDir {
    pub(crate) fn new(server: &'static str) -> Result<Self> {
        let path = tempfile::Builder::new()
            .prefix(&format!("durabledict-{}-", server.replace(' ', "-")))
            .tempdir()
            .map_err(|e| ServerError::io(server, "create a temporary directory", e))?
            .keep();
        let janitor = Command::new("sh")
            .arg("-c")
            .arg(JANITOR)
            .arg("sh")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match janitor {
            Ok(janitor) => Ok(ServerDir {
                path,
                janitor: Some(janitor),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(ServerError::io(server, "spawn sh", e))
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServerDir {
    fn drop(&mut self) {
        if let Some(mut janitor) = self.janitor.take() {
            if let Some(mut stdin) = janitor.stdin.take() {
                let _ = stdin.write_all(b"now\n");
            }
            let _ = janitor.wait();
        }
        // In case the janitor could not do it.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
