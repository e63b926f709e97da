//! A `redis-server` started with options the shared test-servers crate does not offer (a Unix
//! socket, TLS). TODO: durabledict-test-servers could offer `RedisServer::with_args` (extra
//! command-line options, readiness checked on a Unix socket or a TLS port); then this goes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process, killed when dropped, with its own temporary directory.
pub struct Spawned {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `redis-server` with persistence off, no TCP port unless `args` opens one, and
    /// `args`; waits until `ready` holds.
    pub fn start(args: &[String], ready: impl Fn(&Path) -> bool, dir: tempfile::TempDir) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (apt-get install redis-server): {e}")
            });
        let mut spawned = Spawned { child, dir };
        let started = Instant::now();
        while !ready(spawned.dir.path()) {
            if let Ok(Some(status)) = spawned.child.try_wait() {
                panic!("redis-server exited at start: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server did not become ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        spawned
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
