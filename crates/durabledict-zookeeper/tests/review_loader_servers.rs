//! Review of the full load's loader connection against real servers: a server restart while
//! the loader reads, and an ensemble connect string, where no loader connection is opened.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use common::{VISIBILITY, eventually, raw_client};
use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind, SyncPolicy};
use durabledict_test_servers::{ZooKeeper, ZooKeeperEnsemble};
use durabledict_zookeeper::ZooKeeperStore;
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};

const KEYS: usize = 400;

fn put(zk: &zookeeper::ZooKeeper, node: &str, value: &[u8]) {
    match zk.set_data(node, value.to_vec(), None) {
        Ok(_) => {}
        Err(ZkError::NoNode) => match zk.create(
            node,
            value.to_vec(),
            zookeeper::Acl::open_unsafe().clone(),
            CreateMode::Persistent,
        ) {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => panic!("create {node}: {e:?}"),
        },
        Err(e) => panic!("set_data {node}: {e:?}"),
    }
}

fn fill(zk: &zookeeper::ZooKeeper, ks: &str) {
    put(zk, ks, b"");
    for i in 0..KEYS {
        put(zk, &format!("{ks}/k{i}"), format!("v{i}").as_bytes());
    }
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

/// Forwards every connection to 127.0.0.1:`upstream`, counting them; the `n`th connection
/// (counting from 0) is reported on `on_nth` once accepted.
struct Counting {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Counting {
    fn start(upstream: u16, nth: Option<(usize, mpsc::Sender<()>)>) -> Counting {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let i = counted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
                if let Some((n, tx)) = &nth
                    && *n == i
                {
                    let _ = tx.send(());
                }
            }
        });
        Counting { port, accepted }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0; 16 << 10];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// The server restarts just as the loader connection opens: the load fails with a typed
/// error or falls back, and either way the dict then holds exactly what the server does.
#[test]
fn a_server_restart_during_the_load_loses_nothing() {
    let mut zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/review-restart";
    fill(&admin, ks);
    for round in 0..2 {
        let (tx, rx) = mpsc::channel();
        let proxy = Counting::start(zk.port(), Some((1, tx)));
        let store = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port), ks)
            .session_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let (built_tx, built_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let built = DurableDict::<String>::builder(store, Raw)
                .policy(SyncPolicy::Watch)
                .build();
            let _ = built_tx.send(built);
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the load opens a loader connection");
        zk.restart().unwrap();
        let built = built_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the load ends");
        let dict = match built {
            Ok(dict) => dict,
            Err(e) => {
                assert!(
                    matches!(&e, Error::Store { source, .. }
                        if source.kind() == StoreErrorKind::Unavailable),
                    "round {round}: {e}"
                );
                let store = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port), ks)
                    .session_timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                DurableDict::<String>::builder(store, Raw)
                    .policy(SyncPolicy::Watch)
                    .build()
                    .unwrap()
            }
        };
        let admin = raw_client(&zk.connect_string());
        put(&admin, &format!("{ks}/k{round}"), b"after the restart");
        eventually(
            "the dict holds what the server does",
            VISIBILITY * 3,
            || dict_contents(&dict) == server_contents(&admin, ks),
        );
    }
}

/// With several servers in the connect string, a load of many keys opens no loader
/// connection (it could reach another server than the store's session); with one server,
/// it does (the counting works).
#[test]
fn an_ensemble_connect_string_opens_no_loader_connection() {
    let ensemble = ZooKeeperEnsemble::start(3).unwrap();
    let admin = raw_client(&ensemble.connect_string());
    let ks = "/review-ensemble";
    fill(&admin, ks);
    let proxies: Vec<Counting> = ensemble
        .ports()
        .into_iter()
        .map(|port| Counting::start(port, None))
        .collect();
    let connect = proxies
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.port))
        .collect::<Vec<_>>()
        .join(",");
    let dict = DurableDict::<String>::builder(ZooKeeperStore::connect(&connect, ks).unwrap(), Raw)
        .build()
        .unwrap();
    assert_eq!(dict.len().unwrap(), KEYS);
    let total: usize = proxies
        .iter()
        .map(|p| p.accepted.load(Ordering::SeqCst))
        .sum();
    assert_eq!(total, 1, "only the store's session connects");
    // Control: one server in the connect string, and the load opens its loader connection.
    let single = &proxies[0];
    let before = single.accepted.load(Ordering::SeqCst);
    let dict = DurableDict::<String>::builder(
        ZooKeeperStore::connect(&format!("127.0.0.1:{}", single.port), ks).unwrap(),
        Raw,
    )
    .build()
    .unwrap();
    assert_eq!(dict.len().unwrap(), KEYS);
    assert_eq!(single.accepted.load(Ordering::SeqCst) - before, 2);
}

/// A store from a URL with digest credentials (a password with `@` and `:` in it, encoded),
/// a chroot and a keyspace below it: its ACL-protected znodes, 100 of them, load on the
/// loader connection with those credentials, below the chroot, and another store from the
/// same URL holds exactly them.
#[test]
fn a_url_with_credentials_and_a_chroot_loads_protected_znodes() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    put(&admin, "/review-chroot", b"");
    let url = format!(
        "zk://app:p%40ss%3Aword@127.0.0.1:{}/flags?chroot=/review-chroot&session_timeout=4s",
        zk.port()
    );
    let owner = ZooKeeperStore::builder_from_url(&url, "unused")
        .unwrap()
        .acl(durabledict_zookeeper::Acl::creator_all())
        .build()
        .unwrap();
    let owner = DurableDict::<String>::builder(owner, Raw).build().unwrap();
    owner
        .update((0..100).map(|i| (format!("k{i}"), format!("v{i}"))))
        .unwrap();
    assert_eq!(
        admin
            .get_data("/review-chroot/flags/k1", false)
            .unwrap_err(),
        ZkError::NoAuth,
        "the znodes are protected, below the chroot"
    );
    let proxy = Counting::start(zk.port(), None);
    let via_proxy = url.replace(&zk.port().to_string(), &proxy.port.to_string());
    let reader = DurableDict::<String>::builder(
        ZooKeeperStore::builder_from_url(&via_proxy, "unused")
            .unwrap()
            .build()
            .unwrap(),
        Raw,
    )
    .build()
    .unwrap();
    assert_eq!(dict_contents(&reader), dict_contents(&owner));
    assert_eq!(reader.len().unwrap(), 100);
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        2,
        "the store's session and its loader connection"
    );
}

/// A chroot that does not exist: building a dict and writing to it end with typed errors or
/// an empty dict, never a hang or a panic, and nothing is created outside the chroot.
#[test]
fn a_chroot_that_does_not_exist_fails_cleanly() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let url = format!(
        "zk://127.0.0.1:{}/flags?chroot=/review-missing&session_timeout=4s",
        zk.port()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = ZooKeeperStore::builder_from_url(&url, "unused")
            .and_then(|b| b.build())
            .map_err(|e| e.to_string())
            .and_then(|store| {
                DurableDict::<String>::builder(store, Raw)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .map(|dict| {
                let written = dict.insert("k", "v".to_owned()).map_err(|e| e.to_string());
                (dict.len().map_err(|e| e.to_string()), written)
            });
        let _ = tx.send(outcome);
    });
    let outcome = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a missing chroot must not hang");
    if let Ok((len, written)) = &outcome {
        assert!(written.is_err(), "a write below a missing chroot fails");
        assert_eq!(len.as_ref().ok(), Some(&0));
    }
    assert!(admin.exists("/flags", false).unwrap().is_none());
    assert!(admin.exists("/review-missing", false).unwrap().is_none());
}
