//! Full loads of the keyspace, which read many znodes at once without the store's lock: a
//! change made while one runs is neither lost nor applied out of order, and `pop` gives up on a
//! key that keeps changing under it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::proxy::{Hook, Proxy};
use common::{VISIBILITY, eventually, keyspace, raw_client};
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};
use durabledict_zookeeper::{ZooKeeperError, ZooKeeperStore};

const KEYS: usize = 2_000;

fn open_acl() -> Vec<zookeeper::Acl> {
    zookeeper::Acl::open_unsafe().clone()
}

/// Writes `value` at `node`, creating it when missing.
fn put(zk: &zookeeper::ZooKeeper, node: &str, value: &[u8]) {
    match zk.set_data(node, value.to_vec(), None) {
        Ok(_) => {}
        Err(ZkError::NoNode) => {
            match zk.create(node, value.to_vec(), open_acl(), CreateMode::Persistent) {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => panic!("create {node}: {e:?}"),
            }
        }
        Err(e) => panic!("set_data {node}: {e:?}"),
    }
}

/// Fills `ks` with [`KEYS`] keys, a few threads at once.
fn fill(connect: &str, ks: &str) {
    let zk = raw_client(connect);
    let mut prefix = String::new();
    for part in ks.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(part);
        match zk.create(&prefix, Vec::new(), open_acl(), CreateMode::Persistent) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {prefix}: {e:?}"),
        }
    }
    std::thread::scope(|scope| {
        for t in 0..8 {
            let zk = &zk;
            scope.spawn(move || {
                for i in (t..KEYS).step_by(8) {
                    put(zk, &format!("{ks}/k{i}"), b"initial");
                }
            });
        }
    });
}

fn server_contents(zk: &zookeeper::ZooKeeper, ks: &str) -> HashMap<String, String> {
    zk.get_children(ks, false)
        .unwrap()
        .into_iter()
        .filter_map(|key| {
            let (value, _) = zk.get_data(&format!("{ks}/{key}"), false).ok()?;
            Some((key, String::from_utf8(value).unwrap()))
        })
        .collect()
}

fn dict_contents(dict: &DurableDict<String>) -> HashMap<String, String> {
    dict.iter()
        .unwrap()
        .map(|(k, v)| (k.to_owned(), (*v).clone()))
        .collect()
}

/// Another client writes all the time: a counter into `hot` (so a value going back would
/// show), other keys over and over, one key deleted and created again. Returns when `stop`.
fn write_until(connect: &str, ks: &str, stop: &AtomicBool, written: &AtomicU64) {
    let zk = raw_client(connect);
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        put(&zk, &format!("{ks}/hot"), i.to_string().as_bytes());
        put(
            &zk,
            &format!("{ks}/k{}", (i * 7919) as usize % KEYS),
            format!("w{i}").as_bytes(),
        );
        if i.is_multiple_of(5) {
            match zk.delete(&format!("{ks}/flicker"), None) {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => panic!("delete: {e:?}"),
            }
        } else if i % 5 == 2 {
            put(&zk, &format!("{ks}/flicker"), i.to_string().as_bytes());
        }
        written.store(i, Ordering::SeqCst);
    }
}

/// Dicts built (a first load) and reloaded (their connection cut, so they load everything
/// again) while another client writes all the time converge to exactly what the server
/// holds, and a `Watch` dict reading the hot key meanwhile never sees it go back.
#[test]
fn loads_under_a_running_writer_lose_no_change_and_never_go_back() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/loaded";
    fill(&connect, ks);
    let admin = raw_client(&connect);
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_until(&connect, ks, &stop, &written));
        eventually("the writer is running", VISIBILITY, || {
            written.load(Ordering::SeqCst) > 10
        });
        // First loads under the writer.
        let first: Vec<DurableDict<String>> = (0..3)
            .map(|_| {
                let store = ZooKeeperStore::connect(&connect, ks).unwrap();
                DurableDict::builder(store, Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .unwrap()
            })
            .collect();
        // Reloads after a cut connection, under the writer, with a reader of the hot key.
        let proxy = Proxy::start(zk.port());
        let dict = DurableDict::<String>::builder(
            ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
                .session_timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            Raw,
        )
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
        let reading = AtomicBool::new(true);
        let reads = std::thread::scope(|inner| {
            let reader = inner.spawn(|| {
                let mut last = 0u64;
                let mut reads = 0u64;
                while reading.load(Ordering::SeqCst) {
                    if let Ok(Some(v)) = dict.get("hot") {
                        let v: u64 = v.parse().unwrap();
                        assert!(v >= last, "the hot key went back from {last} to {v}");
                        last = v;
                        reads += 1;
                    }
                    std::thread::yield_now();
                }
                reads
            });
            for _ in 0..4 {
                let reloads = dict.status().reloads;
                proxy.cut();
                std::thread::sleep(Duration::from_millis(50));
                proxy.restore();
                eventually(
                    "the dict reloads after its connection broke",
                    VISIBILITY * 3,
                    || dict.status().reloads > reloads,
                );
            }
            stop.store(true, Ordering::SeqCst);
            reading.store(false, Ordering::SeqCst);
            reader.join().unwrap()
        });
        assert!(reads > 0);
        // The writer's last write has landed before the server's contents are taken.
        writer.join().unwrap();
        let want = server_contents(&admin, ks);
        assert!(want.len() > KEYS);
        for dict in first.iter().chain([&dict]) {
            eventually(
                "every dict holds exactly what the server does",
                VISIBILITY,
                || dict_contents(dict) == want,
            );
        }
    });
}

/// The store's own writes during a full load are in its result: a dict that writes while its
/// store reloads (its connection cut) keeps every write it made.
#[test]
fn own_writes_during_a_load_are_kept() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/own-during-load";
    fill(&connect, ks);
    let proxy = Proxy::start(zk.port());
    let store = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
        .session_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    let admin = raw_client(&connect);
    for round in 0..4 {
        let reloads = dict.status().reloads;
        proxy.cut();
        std::thread::sleep(Duration::from_millis(50));
        proxy.restore();
        // Writes as soon as the connection is back, while the load runs.
        let mut n = 0;
        while dict.status().reloads == reloads && n < 500 {
            if dict
                .insert(&format!("k{}", n % KEYS), format!("own{round}.{n}"))
                .is_ok()
            {
                n += 1;
            }
        }
        eventually("the dict holds what the server does", VISIBILITY, || {
            dict_contents(&dict) == server_contents(&admin, ks)
        });
    }
}

/// `pop` reads a key and deletes only the version it read; when another client changes the
/// key between the two every time, it gives up after a bounded number of tries with a typed
/// error, instead of trying for ever.
#[test]
fn pop_gives_up_on_a_key_that_keeps_changing() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = keyspace("pop-contended");
    let node = format!("{ks}/k");
    let meddler = Arc::new(raw_client(&connect));
    let meddling = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    // Before each delete the store sends, another client changes the key: the delete, made
    // with the version read just before, always finds another one.
    let hook: Hook = {
        let (meddler, meddling, changes, node) = (
            Arc::clone(&meddler),
            Arc::clone(&meddling),
            Arc::clone(&changes),
            node.clone(),
        );
        Arc::new(move |opcode| {
            const DELETE: i32 = 2;
            if opcode == DELETE && meddling.load(Ordering::SeqCst) {
                let n = changes.fetch_add(1, Ordering::SeqCst);
                meddler
                    .set_data(&node, n.to_string().into_bytes(), None)
                    .unwrap();
            }
        })
    };
    let proxy = Proxy::start_with(zk.port(), Some(hook));
    let store = ZooKeeperStore::connect(&format!("127.0.0.1:{}", proxy.port()), &ks).unwrap();
    store.persist("k", b"v").unwrap();
    meddling.store(true, Ordering::SeqCst);
    let (tx, rx) = std::sync::mpsc::channel();
    let store = Arc::new(store);
    let popper = Arc::clone(&store);
    std::thread::spawn(move || {
        let _ = tx.send(popper.pop("k"));
    });
    let popped = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("pop must give up, not retry for as long as the key keeps changing");
    let error = popped.expect_err("every delete found another version");
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    match error.inner().downcast_ref::<ZooKeeperError>() {
        Some(ZooKeeperError::Contended {
            op: "pop",
            key,
            attempts,
        }) => {
            assert_eq!(key, "k");
            assert_eq!(*attempts as u64, changes.load(Ordering::SeqCst));
        }
        other => panic!("expected a Contended error, got {other:?} ({error})"),
    }
    // The key is still there, with the meddler's last value; nothing was removed.
    meddling.store(false, Ordering::SeqCst);
    assert!(store.get("k").unwrap().is_some());
    // Once it stops changing, pop works.
    let (value, _) = store.pop("k").unwrap().expect("the key is there");
    assert_eq!(
        value,
        (changes.load(Ordering::SeqCst) - 1)
            .to_string()
            .into_bytes()
    );
}

/// ZooKeeper's opcodes for the requests these tests count.
const GET_DATA: i32 = 4;
const MULTI_READ: i32 = 22;

/// Counts the requests of each opcode a store sends through a proxy.
#[derive(Default)]
struct Counts(std::sync::Mutex<HashMap<i32, u64>>);

impl Counts {
    fn of(&self, opcode: i32) -> u64 {
        self.0.lock().unwrap().get(&opcode).copied().unwrap_or(0)
    }
}

/// A proxy to `port` counting requests by opcode, and running `also` before forwarding each.
fn counting_proxy(port: u16, also: impl Fn(i32) + Send + Sync + 'static) -> (Proxy, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let seen = Arc::clone(&counts);
    let hook: Hook = Arc::new(move |opcode| {
        *seen.0.lock().unwrap().entry(opcode).or_default() += 1;
        also(opcode);
    });
    (Proxy::start_with(port, Some(hook)), counts)
}

/// Creates `path` and its parents with `acl`.
fn create_path(zk: &zookeeper::ZooKeeper, path: &str) {
    let mut prefix = String::new();
    for part in path.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(part);
        match zk.create(&prefix, Vec::new(), open_acl(), CreateMode::Persistent) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {prefix}: {e:?}"),
        }
    }
}

/// Creates `n` znodes `k0`… under `ks` (an existing znode), 16 requests at a time.
fn fill_n(zk: &zookeeper::ZooKeeper, ks: &str, n: usize, value: impl Fn(usize) -> Vec<u8> + Sync) {
    std::thread::scope(|scope| {
        for t in 0..16 {
            let value = &value;
            scope.spawn(move || {
                for i in (t..n).step_by(16) {
                    put(zk, &format!("{ks}/k{i}"), &value(i));
                }
            });
        }
    });
}

fn entries_as_text(entries: &HashMap<String, Vec<u8>>) -> HashMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.clone()).unwrap()))
        .collect()
}

/// A store's first load of 10,000 znodes below a chroot reads them as `multiRead`s on a loader
/// connection (a few hundred per request, no `getData` at all), and gets every one.
#[test]
fn a_full_load_of_10000_znodes_reads_them_as_multi_reads_below_a_chroot() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let chroot = "/apps/loader";
    let ks = format!("{chroot}/ks");
    create_path(&admin, &ks);
    fill_n(&admin, &ks, 10_000, |i| format!("v{i}").into_bytes());
    let (proxy, counts) = counting_proxy(zk.port(), |_| {});
    let store =
        ZooKeeperStore::connect(&format!("127.0.0.1:{}{chroot}", proxy.port()), "/ks").unwrap();
    let loaded = store.durables().unwrap();
    assert_eq!(loaded.entries.len(), 10_000);
    assert_eq!(
        entries_as_text(&loaded.entries),
        server_contents(&admin, &ks)
    );
    let multi_reads = counts.of(MULTI_READ);
    assert!(
        (50..=700).contains(&multi_reads),
        "10,000 znodes in {multi_reads} multiRead requests"
    );
    assert_eq!(counts.of(GET_DATA), 0, "no znode read one by one");
}

/// Znodes only the store's identity may read (digest credentials, `creator_all`) are loaded on
/// the loader connection, which authenticates as the store's session does; a store without
/// the credentials fails its load as it always has (`NoAuth` from `get_data`), after trying
/// the loader and falling back to the client.
#[test]
fn acl_protected_znodes_load_with_the_stores_credentials() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/secret";
    create_path(&admin, ks);
    let owner = ZooKeeperStore::builder(zk.connect_string(), ks)
        .digest_auth("app", "s3cret")
        .acl(durabledict_zookeeper::Acl::creator_all())
        .build()
        .unwrap();
    let keys: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| (format!("k{i}"), format!("v{i}").into_bytes()))
        .collect();
    let batch: Vec<(&str, &[u8])> = keys
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    owner.persist_many(&batch).unwrap();
    assert_eq!(
        admin.get_data(&format!("{ks}/k1"), false).unwrap_err(),
        ZkError::NoAuth,
        "the znodes are protected"
    );

    let (proxy, counts) = counting_proxy(zk.port(), |_| {});
    let reader = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
        .digest_auth("app", "s3cret")
        .build()
        .unwrap();
    let loaded = reader.durables().unwrap();
    let expected: HashMap<String, Vec<u8>> = keys.into_iter().collect();
    assert_eq!(loaded.entries, expected);
    assert!(counts.of(MULTI_READ) > 0);
    assert_eq!(counts.of(GET_DATA), 0);

    let (proxy, counts) = counting_proxy(zk.port(), |_| {});
    let stranger = ZooKeeperStore::connect(&format!("127.0.0.1:{}", proxy.port()), ks).unwrap();
    let error = stranger.durables().unwrap_err();
    match error.inner().downcast_ref::<ZooKeeperError>() {
        Some(ZooKeeperError::Request {
            op: "get_data",
            source: ZkError::NoAuth,
            ..
        }) => {}
        other => panic!("expected get_data's NoAuth, got {other:?} ({error})"),
    }
    assert!(counts.of(MULTI_READ) > 0, "the loader was tried first");
    assert!(counts.of(GET_DATA) > 0, "then the client read");
}

/// Changes made while a load reads (znodes deleted between the listing and their read,
/// changed before and after theirs, created) are all in the store once their events are in:
/// the loader's reads are no older than the store's session has seen, and keys whose events
/// arrive meanwhile are read again.
#[test]
fn changes_during_a_multi_read_load_are_kept() {
    let zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let admin = Arc::new(raw_client(&connect));
    let ks = "/changing";
    create_path(&admin, ks);
    fill_n(&admin, ks, 2_000, |_| b"initial".to_vec());
    let multi_reads = Arc::new(AtomicU64::new(0));
    let (proxy, counts) = counting_proxy(zk.port(), {
        let (admin, multi_reads) = (Arc::clone(&admin), Arc::clone(&multi_reads));
        move |opcode| {
            if opcode != MULTI_READ {
                return;
            }
            match multi_reads.fetch_add(1, Ordering::SeqCst) {
                // Before the first read: listed keys deleted, others changed, one created.
                0 => {
                    for i in 0..10 {
                        admin.delete(&format!("{ks}/k{i}"), None).unwrap();
                    }
                    for i in 10..20 {
                        put(&admin, &format!("{ks}/k{i}"), b"changed early");
                    }
                    put(&admin, &format!("{ks}/new"), b"created");
                }
                // Part way: keys some of which were read already.
                3 => {
                    for i in 20..400 {
                        put(&admin, &format!("{ks}/k{i}"), b"changed late");
                    }
                    admin.delete(&format!("{ks}/k400"), None).unwrap();
                }
                _ => {}
            }
        }
    });
    let store = ZooKeeperStore::connect(&format!("127.0.0.1:{}", proxy.port()), ks).unwrap();
    let dict = DurableDict::<String>::builder(store, Raw)
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
    assert!(counts.of(MULTI_READ) > 3, "the load read with multiRead");
    let expected = server_contents(&admin, ks);
    assert_eq!(expected.len(), 2_000 - 10 + 1 - 1);
    assert_eq!(expected["k15"], "changed early");
    assert_eq!(expected["k300"], "changed late");
    eventually("the dict holds what the server does", VISIBILITY, || {
        dict_contents(&dict) == expected
    });
}

/// Large znodes (near ZooKeeper's 1 MiB limit) among small ones load whole; the `multiRead`s
/// shrink to a few znodes each once one is seen, so no reply grows past a few MiB.
#[test]
fn large_znodes_load_in_small_multi_reads() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/large";
    create_path(&admin, ks);
    fill_n(&admin, ks, 300, |i| {
        if i % 10 == 3 {
            vec![b'x'; 1_000_000]
        } else {
            format!("v{i}").into_bytes()
        }
    });
    let (proxy, counts) = counting_proxy(zk.port(), |_| {});
    let store = ZooKeeperStore::connect(&format!("127.0.0.1:{}", proxy.port()), ks).unwrap();
    let loaded = store.durables().unwrap();
    assert_eq!(loaded.entries.len(), 300);
    assert_eq!(loaded.entries["k13"].len(), 1_000_000);
    assert_eq!(
        entries_as_text(&loaded.entries),
        server_contents(&admin, ks)
    );
    // 16 at first, then 4 MiB / 1 MB = 3 per request.
    assert!(
        counts.of(MULTI_READ) >= 60,
        "{} multiRead requests",
        counts.of(MULTI_READ)
    );
    assert_eq!(counts.of(GET_DATA), 0);
}

/// A server that does not know `multiRead` (before 3.6: it closes the connection, or answers
/// nothing this loader can read) is read through the client instead, and the load is whole.
#[test]
fn a_server_without_multi_read_is_read_through_the_client() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/old-server";
    create_path(&admin, ks);
    fill_n(&admin, ks, 1_000, |i| format!("v{i}").into_bytes());
    let proxy = refusing_proxy(zk.port(), MULTI_READ);
    let store = ZooKeeperStore::connect(&format!("127.0.0.1:{proxy}"), ks).unwrap();
    let loaded = store.durables().unwrap();
    assert_eq!(
        entries_as_text(&loaded.entries),
        server_contents(&admin, ks)
    );
}

/// A proxy to `upstream` that closes a connection as soon as its client sends a request of
/// `opcode` (what a server does with a request it cannot read); returns its port.
fn refusing_proxy(upstream: u16, opcode: i32) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
            let (mut back_from, mut back_to) =
                (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut back_from, &mut back_to);
                let _ = back_to.shutdown(Shutdown::Both);
            });
            std::thread::spawn(move || {
                let mut first = true;
                loop {
                    let mut len = [0u8; 4];
                    if client.read_exact(&mut len).is_err() {
                        break;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    if client.read_exact(&mut body).is_err() {
                        break;
                    }
                    if !first && body.len() >= 8 && body[4..8] == opcode.to_be_bytes() {
                        break;
                    }
                    first = false;
                    if server.write_all(&len).is_err() || server.write_all(&body).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    port
}
