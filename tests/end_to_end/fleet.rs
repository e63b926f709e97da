//! A fleet of OS processes writing one keyspace at once, through `durabledict::open`: each
//! runs the writers' program (its own keys, keys all contend for, a batch `update`, a
//! `setdefault` race), then every member, the parent's dict built before the fleet started,
//! and a dict built afterwards must hold exactly the same contents, which the programs allow.

use std::time::Instant;

use durabledict::Value as PyValue;
use serde_json::{Value, json};

use crate::contents::{self, Dict};
use crate::member::{self, Member};
use crate::program;
use crate::servers;

/// Writer processes per fleet.
const WRITERS: usize = 4;

/// Where a fleet writes.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    /// A memcached stamp URL, for SQL stores.
    pub stamp: Option<String>,
    /// Whether dicts are told of changes by a feed (ZooKeeper watches) rather than reading
    /// the stamp on every read: then a change is seen once its notification arrives.
    pub fed: bool,
    /// A directory the store lives in (SQLite), kept while the fleet runs.
    pub dir: Option<tempfile::TempDir>,
}

impl Target {
    fn new(url: String) -> Target {
        Target {
            url,
            stamp: None,
            fed: false,
            dir: None,
        }
    }

    /// A new SQLite file in a directory of its own.
    #[cfg(feature = "sqlite")]
    fn sqlite() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("fleet.db").display());
        Target {
            dir: Some(dir),
            ..Target::new(url)
        }
    }
}

/// How the fleet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The keyspace exists (the parent made it) before the members open it.
    Warm,
    /// Every member, and the parent, open the keyspace at once, which nobody made yet: the
    /// table, the stamp, the file, the znode are made by whoever comes first.
    Cold,
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
    let open = || {
        open(
            url,
            job["keyspace"].as_str().unwrap(),
            job["stamp"].as_str(),
        )
    };
    let dict = if job["cold"].as_bool() == Some(true) {
        // Every member opens a keyspace nobody made yet, at once.
        member::say("ready", "");
        assert_eq!(member::hear(), "go");
        open()
    } else {
        let dict = open();
        member::say("ready", "");
        assert_eq!(member::hear(), "go");
        dict
    };
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
    let pickle = durabledict::Pickle::<durabledict::Value>::new();
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
fn fleet(test: &str, start: Start, target: impl FnOnce() -> Target) {
    if let Some(job) = member::job() {
        return writer(&job);
    }
    let Target {
        url,
        stamp,
        fed,
        dir: _dir,
    } = target();
    let keyspace = servers::keyspace("fleet");
    let started = Instant::now();
    let open_watcher = || open(&url, &keyspace, stamp.as_deref());
    let mut watcher = (start == Start::Warm).then(open_watcher);
    if let Some(watcher) = &watcher {
        assert!(watcher.is_empty().unwrap());
    }

    let mut members: Vec<Member> = (0..WRITERS)
        .map(|worker| {
            let job = json!({
                "url": url, "keyspace": keyspace, "stamp": stamp, "worker": worker,
                "cold": start == Start::Cold,
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
    // Cold: the parent's dict opens while the members open theirs and start writing.
    let watcher = watcher.get_or_insert_with(open_watcher);
    let answers: Vec<String> = members.iter_mut().map(|m| m.expect("first")).collect();
    let wrote = writing.elapsed();
    let reloads: Vec<String> = members.iter_mut().map(|m| m.expect("reloads")).collect();

    let after = open(&url, &keyspace, stamp.as_deref());
    let got = contents::of(&after);
    program::check(&got, WRITERS, &answers);
    let want = contents::render(&got);
    let reads = expect_contents(&mut members, &want, fed);
    contents::assert_holds(watcher, &want, fed);
    for member in members {
        member.finish();
    }
    eprintln!(
        "{test}: {WRITERS} processes ({start:?} start) wrote {} keys in {wrote:?} ({:?} in all); \
         reloads while writing {reloads:?}; reads to see the end {reads:?}",
        got.len(),
        started.elapsed()
    );
}

/// One fleet test: `$name` runs the fleet started `$start` on `$target`.
macro_rules! fleet_test {
    ($(#[$cfg:meta])* $name:ident, $start:expr, $target:expr) => {
        $(#[$cfg])*
        #[test]
        fn $name() {
            fleet(
                &member::test_name(module_path!(), stringify!($name)),
                $start,
                || $target,
            );
        }
    };
}

fleet_test!(
    #[cfg(feature = "redis")]
    redis_fleet_converges,
    Start::Warm,
    Target::new(servers::redis().url(None))
);

fleet_test!(
    #[cfg(feature = "redis")]
    redis_fleet_starting_cold_converges,
    Start::Cold,
    Target::new(servers::redis().url(None))
);

fleet_test!(
    #[cfg(all(feature = "sqlite", feature = "memcache"))]
    sqlite_with_a_memcached_stamp_fleet_converges,
    Start::Warm,
    Target {
        stamp: Some(servers::memcached().url()),
        ..Target::sqlite()
    }
);

fleet_test!(
    #[cfg(all(feature = "sqlite", feature = "memcache"))]
    sqlite_with_a_memcached_stamp_fleet_starting_cold_converges,
    Start::Cold,
    Target {
        stamp: Some(servers::memcached().url()),
        ..Target::sqlite()
    }
);

fleet_test!(
    #[cfg(feature = "sqlite")]
    sqlite_fleet_starting_cold_converges,
    Start::Cold,
    Target::sqlite()
);

fleet_test!(
    #[cfg(feature = "postgres")]
    postgres_fleet_converges,
    Start::Warm,
    Target::new(servers::postgres().url())
);

fleet_test!(
    #[cfg(feature = "postgres")]
    postgres_fleet_starting_cold_converges,
    Start::Cold,
    Target::new(servers::postgres().url())
);

fleet_test!(
    #[cfg(feature = "mysql")]
    mysql_fleet_converges,
    Start::Warm,
    Target::new(servers::mariadb().url())
);

fleet_test!(
    #[cfg(feature = "mysql")]
    mysql_fleet_starting_cold_converges,
    Start::Cold,
    Target::new(servers::mariadb().url())
);

fleet_test!(
    #[cfg(feature = "zookeeper")]
    zookeeper_fleet_converges,
    Start::Warm,
    Target {
        fed: true,
        ..Target::new(format!("zk://{}", servers::zookeeper()))
    }
);

fleet_test!(
    #[cfg(feature = "zookeeper")]
    zookeeper_fleet_starting_cold_converges,
    Start::Cold,
    Target {
        fed: true,
        ..Target::new(format!("zk://{}", servers::zookeeper()))
    }
);

/// Processes that start together open an SQLite file nobody made yet at the same moment, as
/// a fleet starting on a new database does: every one must open it (the file, its table and
/// stamp are made once, by whoever comes first; the others wait for its lock, up to the busy
/// timeout). Many rounds, each on a new file, as the race is short. (Threads do not show
/// this: SQLite's locks are per process.)
#[cfg(feature = "sqlite")]
#[test]
fn processes_opening_a_new_sqlite_file_at_once_all_open_it() {
    const OPENERS: usize = 4;
    const ROUNDS: usize = 40;
    if let Some(job) = member::job() {
        let keyspace = job["keyspace"].as_str().unwrap();
        member::say("ready", "");
        loop {
            let line = member::hear();
            let Some(url) = line.strip_prefix("open ") else {
                break;
            };
            let outcome =
                match durabledict::open(url, &durabledict::OpenOptions::new().keyspace(keyspace)) {
                    Ok(dict) => {
                        dict.insert(job["name"].as_str().unwrap(), PyValue::I64(1))
                            .unwrap();
                        "ok".to_string()
                    }
                    Err(e) => e.to_string(),
                };
            member::say("opened", &outcome);
        }
        return;
    }
    let test = member::test_name(
        module_path!(),
        "processes_opening_a_new_sqlite_file_at_once_all_open_it",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut members: Vec<Member> = (0..OPENERS)
        .map(|i| {
            let name = format!("opener {i}");
            Member::spawn(&test, &name, &json!({"keyspace": "cold", "name": name}))
        })
        .collect();
    for member in &mut members {
        member.expect("ready");
    }
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let url = format!(
            "sqlite:{}",
            dir.path().join(format!("new{round}.db")).display()
        );
        for member in &mut members {
            member.send(&format!("open {url}"));
        }
        for (i, member) in members.iter_mut().enumerate() {
            let outcome = member.expect("opened");
            if outcome != "ok" {
                failures.push(format!("round {round}, opener {i}: {outcome}"));
            }
        }
    }
    for member in &mut members {
        member.send("end");
    }
    for member in members {
        member.finish();
    }
    assert!(
        failures.is_empty(),
        "{} of {} opens failed:\n{}",
        failures.len(),
        OPENERS * ROUNDS,
        failures.join("\n")
    );
}
