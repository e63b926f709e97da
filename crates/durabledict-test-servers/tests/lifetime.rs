//! Servers never outlive the test process, even when it is killed and even when they sit in a
//! `static` that is never dropped; their temporary directories go with them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::is_closed;
use durabledict_test_servers::{Memcached, Postgres, RedisServer};

/// Set in the child process this test starts.
const CHILD: &str = "DURABLEDICT_TEST_SERVERS_LIFETIME_CHILD";
const NAME: &str = "servers_in_statics_die_with_a_killed_test_process";

#[test]
fn servers_in_statics_die_with_a_killed_test_process() {
    if std::env::var_os(CHILD).is_some() {
        hold_servers_in_statics();
    }
    // The child's servers make their directories in here, so we can watch them go.
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut child = Command::new(std::env::current_exe().expect("current test binary"))
        .args([NAME, "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the child test process");
    let stdout = child.stdout.take().expect("child stdout");
    let ports: Vec<u16> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let ports = line.strip_prefix("PORTS ")?;
            Some(ports.split(' ').map(|p| p.parse().expect("port")).collect())
        })
        .expect("the child reports its servers' ports");
    assert_eq!(ports.len(), 3);
    assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 3);

    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    for port in ports {
        assert!(
            is_closed(port),
            "port {port} still open after its process died"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(tmp.path())
        .expect("list")
        .next()
        .is_some()
    {
        assert!(Instant::now() < deadline, "server directories left behind");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// In the child: start servers that are never dropped, report their ports, wait to be killed.
fn hold_servers_in_statics() -> ! {
    static REDIS: OnceLock<RedisServer> = OnceLock::new();
    static MEMCACHED: OnceLock<Memcached> = OnceLock::new();
    static POSTGRES: OnceLock<Postgres> = OnceLock::new();
    let redis = REDIS.get_or_init(|| RedisServer::start().expect("start redis"));
    let memcached = MEMCACHED.get_or_init(|| Memcached::start().expect("start memcached"));
    // PostgreSQL runs as another user (through runuser) when we are root.
    let postgres = POSTGRES.get_or_init(|| Postgres::start().expect("start postgres"));
    println!(
        "PORTS {} {} {}",
        redis.port(),
        memcached.port(),
        postgres.port()
    );
    std::thread::sleep(Duration::from_secs(120));
    std::process::exit(1)
}
