//! A fleet of OS processes writing one keyspace at once, through `durabledict::open`: each
//! runs the writers' program (its own keys, keys all contend for, a batch `update`, a
//! `setdefault` race), then every member, the parent's dict built before the fleet started,
//! and a dict built afterwards must hold exactly the same contents, which the programs allow.

use std::time::Instant;

use serde_json::{Value, json};

use crate::contents::{self, Dict};
use crate::member::{self, Member};
use crate::program;
use crate::servers;

/// Writer processes per fleet.
const WRITERS: usize = 4;

/// Where a fleet writes.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// A memcached stamp URL, for SQL stores.
    pub stamp: Option<String>,
    /// Whether dicts are told of changes by a feed (ZooKeeper watches) rather than reading
    /// the stamp on every read: then a change is seen once its notification arrives.
    pub fed: bool,
}

fn open(url: &str, keyspace: &str, stamp: Option<&str>) -> Dict {
    let mut options = durabledict::OpenOptions::new().keyspace(keyspace);
    if let Some(stamp) = stamp {
        options = options.stamp(stamp);
    }
    durabledict::open(url, &options).unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// Member side: one Rust writer. It opens the dict, waits for the start, runs its program,
/// reports its `setdefault` answer, then reads until it holds what the parent says the fleet
/// ended with, and reports what it holds (and, if asked, its values pickled again, for CPython
/// to read).
pub fn writer(job: &Value) {
    let url = job["url"].as_str().unwrap();
    let worker = usize::try_from(job["worker"].as_u64().unwrap()).unwrap();
    let dict = open(
        url,
        job["keyspace"].as_str().unwrap(),
        job["stamp"].as_str(),
    );
    member::say("ready", "");
    assert_eq!(member::hear(), "go");
    let first = program::run(&dict, worker);
    member::say("first", &format!("{first:?}"));
    // How often others' writes made this dict load everything again while it wrote.
    member::say("reloads", &dict.status().reloads.to_string());
    report(&dict);
    if job["pickles"].as_bool() == Some(true) {
        member::say("pickles", &repickled(&dict).to_string());
    }
}

/// Member side: waits for the parent's `check WANT`, reads until the dict holds WANT (or
/// gives up), and says `contents READS RENDERED`.
pub fn report(dict: &Dict) {
    let line = member::hear();
    let want = line.strip_prefix("check ").unwrap();
    let (reads, got) = contents::read_until(dict, want, std::time::Duration::from_secs(10));
    member::say("contents", &format!("{reads} {got}"));
}

/// The dict's values encoded again by this crate's pickle encoding, base64 as stored.
fn repickled(dict: &Dict) -> Value {
    use durabledict::Encoding as _;
    let pickle = durabledict::DynamicPickle::new();
    let entries = contents::of(dict).into_iter().map(|(key, value)| {
        let bytes = pickle.encode(&value).unwrap();
        (key, Value::String(String::from_utf8(bytes).unwrap()))
    });
    Value::Object(entries.collect())
}

/// Parent side: asks every member for the contents `want` and checks what each holds;
/// returns how many reads each took to hold it.
#[track_caller]
pub fn expect_contents(members: &mut [Member], want: &str, fed: bool) -> Vec<u32> {
    for member in members.iter_mut() {
        member.send(&format!("check {want}"));
    }
    let mut all_reads = Vec::new();
    for member in members.iter_mut() {
        let said = member.expect("contents");
        let (reads, got) = said.split_once(' ').unwrap();
        assert_eq!(got, want);
        if !fed {
            assert_eq!(
                reads, "1",
                "a member saw the final contents only after {reads} reads"
            );
        }
        all_reads.push(reads.parse().unwrap());
    }
    all_reads
}

/// Runs the fleet test `test` (this function's caller): as a member, the job; as the parent,
/// the fleet on `target()`.
fn fleet(test: &str, target: impl FnOnce() -> Target) {
    if let Some(job) = member::job() {
        return writer(&job);
    }
    let Target { url, stamp, fed } = target();
    let keyspace = servers::keyspace("fleet");
    let started = Instant::now();
    let watcher = open(&url, &keyspace, stamp.as_deref());
    assert!(watcher.is_empty().unwrap());

    let mut members: Vec<Member> = (0..WRITERS)
        .map(|worker| {
            let job = json!({
                "url": url, "keyspace": keyspace, "stamp": stamp, "worker": worker,
            });
            Member::spawn(test, &format!("writer {worker}"), &job)
        })
        .collect();
    for member in &mut members {
        member.expect("ready");
    }
    let writing = Instant::now();
    for member in &mut members {
        member.send("go");
    }
    let answers: Vec<String> = members.iter_mut().map(|m| m.expect("first")).collect();
    let wrote = writing.elapsed();
    let reloads: Vec<String> = members.iter_mut().map(|m| m.expect("reloads")).collect();

    let after = open(&url, &keyspace, stamp.as_deref());
    let got = contents::of(&after);
    program::check(&got, WRITERS, &answers);
    let want = contents::render(&got);
    let reads = expect_contents(&mut members, &want, fed);
    contents::assert_holds(&watcher, &want, fed);
    for member in members {
        member.finish();
    }
    eprintln!(
        "{test}: {WRITERS} processes wrote {} keys in {wrote:?} ({:?} in all); \
         reloads while writing {reloads:?}; reads to see the end {reads:?}",
        got.len(),
        started.elapsed()
    );
}

#[cfg(feature = "redis")]
#[test]
fn redis_fleet_converges() {
    fleet(
        &member::test_name(module_path!(), "redis_fleet_converges"),
        || Target {
            url: servers::redis().url(None),
            stamp: None,
            fed: false,
        },
    );
}

#[cfg(all(feature = "sqlite", feature = "memcache"))]
#[test]
fn sqlite_with_a_memcached_stamp_fleet_converges() {
    // Every member opens the same file; the directory outlives them (the parent waits).
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    fleet(
        &member::test_name(
            module_path!(),
            "sqlite_with_a_memcached_stamp_fleet_converges",
        ),
        || {
            let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
            Target {
                url: format!("sqlite:{}", dir.path().join("fleet.db").display()),
                stamp: Some(servers::memcached().url()),
                fed: false,
            }
        },
    );
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_fleet_converges() {
    fleet(
        &member::test_name(module_path!(), "postgres_fleet_converges"),
        || Target {
            url: servers::postgres().url(),
            stamp: None,
            fed: false,
        },
    );
}

#[cfg(feature = "zookeeper")]
#[test]
fn zookeeper_fleet_converges() {
    fleet(
        &member::test_name(module_path!(), "zookeeper_fleet_converges"),
        || Target {
            url: format!("zk://{}", servers::zookeeper()),
            stamp: None,
            fed: true,
        },
    );
}

#[cfg(feature = "mysql")]
#[test]
fn mysql_fleet_converges() {
    fleet(
        &member::test_name(module_path!(), "mysql_fleet_converges"),
        || Target {
            url: servers::mariadb().url(),
            stamp: None,
            fed: false,
        },
    );
}
