//! The stamp's epoch against a real memcached restarted on the same port. A restarted memcached
//! is empty, and a Python writer (Django `ModelDict`: `incr`, falling back to `set 1`) counts the
//! stamp again from 1, possibly up to exactly the number a dict synced at: only the epoch tells
//! the dict that the equal number proves nothing.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use durabledict_core::{
    DurableDict, Durables, Raw, Stamp, StampValue, Store, StoreError, clock_seed,
};
use durabledict_memcache_stamp::MemcacheStamp;
use durabledict_test_servers::Memcached;

/// Values kept in memory (they survive memcached's restart, as rows of an SQL table would), the
/// stamp in memcached: the shape of the SQL store with a memcached stamp.
#[derive(Debug)]
struct StampedStore {
    entries: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stamp: MemcacheStamp,
}

impl Store for StampedStore {
    fn init(&self) -> Result<(), StoreError> {
        self.stamp.init()
    }
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_vec());
        self.stamp.bump()
    }
    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        let removed = self.entries.lock().unwrap().remove(key);
        removed.map(|_| self.stamp.bump()).transpose()
    }
    fn durables(&self) -> Result<Durables, StoreError> {
        // The stamp before the entries.
        let stamp = self.stamp.get()?;
        Ok(Durables::new(self.entries.lock().unwrap().clone(), stamp))
    }
    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.stamp.get()
    }
    fn epoch(&self) -> u64 {
        self.stamp.epoch()
    }
}

/// A Python writer: one new connection, `incr`, and `set 1` (flag 2, a Python int) when the
/// stamp is missing. Returns the new stamp.
fn python_bump(server: &Memcached, key: &str) -> u64 {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut exchange = |request: String| {
        reader.get_mut().write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    };
    match exchange(format!("incr {key} 1\r\n")).as_str() {
        "NOT_FOUND" => {
            assert_eq!(exchange(format!("set {key} 2 0 1\r\n1\r\n")), "STORED");
            1
        }
        value => value.parse().unwrap(),
    }
}

struct Setup {
    server: Memcached,
    key: String,
    entries: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    stamp: MemcacheStamp,
    dict: DurableDict<String>,
}

/// A memcached of its own, a Python writer that stored `flag = old` and counted the stamp to
/// 3, and a dict (`Always`) that read it, over a stamp built by `configure`.
fn synced_at_3(
    configure: impl FnOnce(
        durabledict_memcache_stamp::MemcacheStampBuilder,
    ) -> durabledict_memcache_stamp::MemcacheStampBuilder,
) -> Setup {
    let server = Memcached::start().unwrap();
    let key = ":1:last_updated".to_string();
    let entries = Arc::new(Mutex::new(HashMap::from([(
        "flag".to_string(),
        b"old".to_vec(),
    )])));
    for expected in 1..=3 {
        assert_eq!(python_bump(&server, &key), expected);
    }
    let stamp = configure(MemcacheStamp::builder(server.url()).key(key.as_str()))
        .build()
        .unwrap();
    let store = StampedStore {
        entries: Arc::clone(&entries),
        stamp: stamp.clone(),
    };
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    assert_eq!(
        dict.get("flag").unwrap().as_deref().map(String::as_str),
        Some("old")
    );
    assert_eq!(stamp.get().unwrap(), Some(3));
    Setup {
        server,
        key,
        entries,
        stamp,
        dict,
    }
}

/// Restarts memcached; the Python writer changes `flag` and counts the new stamp from 1 back to
/// 3, the number the dict synced at. The dict must read the new value.
fn restart_and_recount(setup: &mut Setup) {
    let before = setup.stamp.epoch();
    setup.server.restart().unwrap();
    setup
        .entries
        .lock()
        .unwrap()
        .insert("flag".to_string(), b"new".to_vec());
    for expected in 1..=3 {
        assert_eq!(python_bump(&setup.server, &setup.key), expected);
    }
    assert_eq!(
        setup
            .dict
            .get("flag")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("new"),
        "the stamp is 3 again, but memcached restarted: the dict reloads"
    );
    assert_ne!(setup.stamp.epoch(), before, "a restart changes the epoch");
    assert_eq!(setup.dict.status().reloads, 2);
}

/// The dict's pooled connection died with the old memcached: the failed request changes the
/// epoch (the command itself is retried on a new connection and succeeds).
#[test]
fn a_restart_seen_as_a_failed_request_reloads_a_dict_recounted_to_its_stamp() {
    let mut setup = synced_at_3(|builder| builder);
    restart_and_recount(&mut setup);
}

/// No connection outlives a command, so no request fails: only the new connection's check of
/// the server's identity (`stats`: pid and start time) sees the restart.
#[test]
fn a_restart_seen_only_by_a_new_connection_reloads_a_dict_recounted_to_its_stamp() {
    let mut setup = synced_at_3(|builder| builder.max_idle(0));
    restart_and_recount(&mut setup);
}

/// One memcached for the tests that do not restart it.
fn shared() -> &'static Memcached {
    static SERVER: OnceLock<Memcached> = OnceLock::new();
    SERVER.get_or_init(|| Memcached::start().unwrap())
}

/// Ordinary operation never changes the epoch: hits, misses, bumps, re-creation, a value that
/// is not a number, new connections to the same server from many threads, and a dict reading
/// and writing (no reload after the first).
#[test]
fn the_epoch_is_unchanged_by_ordinary_operation() {
    let server = shared();
    let stamp = MemcacheStamp::builder(server.url())
        .keyspace(&format!("steady{}", clock_seed()))
        .build()
        .unwrap();
    assert_eq!(stamp.get().unwrap(), None);
    let epoch = stamp.epoch();
    stamp.init().unwrap();
    let first = stamp.bump().unwrap();
    assert!(stamp.delete().unwrap());
    assert!(stamp.bump().unwrap() > first);
    std::thread::scope(|s| {
        for _ in 0..8 {
            let mine = stamp.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    mine.get().unwrap();
                    mine.bump().unwrap();
                }
            });
        }
    });
    // memcached's error reply to `incr` of a value that is not a number is an answer, not a
    // lost connection.
    let corrupt = MemcacheStamp::builder(server.url())
        .key(stamp.key())
        .build()
        .unwrap();
    corrupt.delete().unwrap();
    let mut raw = TcpStream::connect(server.addr()).unwrap();
    raw.write_all(format!("set {} 0 0 3\r\nabc\r\n", stamp.key()).as_bytes())
        .unwrap();
    let mut reply = String::new();
    BufReader::new(&raw).read_line(&mut reply).unwrap();
    assert_eq!(reply, "STORED\r\n");
    assert!(stamp.get().is_err());
    assert!(stamp.bump().is_err());
    assert!(stamp.delete().unwrap());
    assert_eq!(
        stamp.epoch(),
        epoch,
        "no request failed, no other server was met"
    );

    let store = StampedStore {
        entries: Arc::default(),
        stamp: stamp.clone(),
    };
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    for i in 0..50 {
        dict.insert(&format!("k{}", i % 5), i.to_string()).unwrap();
        assert_eq!(
            dict.get(&format!("k{}", i % 5)).unwrap().as_deref(),
            Some(&i.to_string()),
        );
    }
    assert_eq!(
        dict.status().reloads,
        1,
        "own writes and checks never reload"
    );
    assert_eq!(stamp.epoch(), epoch);
}

/// A refused connection and a timeout are failed requests: each changes the epoch.
#[test]
fn refused_and_timed_out_requests_change_the_epoch() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = MemcacheStamp::builder(format!("127.0.0.1:{port}"))
        .key("k")
        .build()
        .unwrap();
    let before = refused.epoch();
    assert!(refused.get().is_err());
    let after = refused.epoch();
    assert_ne!(after, before);
    assert!(refused.bump().is_err());
    assert_ne!(refused.epoch(), after, "every failure counts");

    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let stamp = MemcacheStamp::builder(silent.local_addr().unwrap().to_string())
        .key("k")
        .io_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let before = stamp.epoch();
    assert!(stamp.get().is_err());
    assert_ne!(stamp.epoch(), before);
}
