//! A reply lost after the server ran the command (the connection broke in between). A write
//! that sets values is sent again on a new connection: the second run leaves the same values,
//! bumps the stamp once more, and the dict stays right (it reloads, or applies its own write).
//! A removal is never sent again: it fails, although it ran.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{keyspace, raw, raw_hash, raw_stamp, server_url};
use durabledict_core::{DurableDict, Raw, Store, StoreErrorKind, SyncPolicy};
use durabledict_redis::RedisStore;

/// A TCP proxy to this binary's server that, when told to, forwards the next command but
/// drops its reply and closes the client's connection instead.
struct Proxy {
    port: u16,
    lose_next_reply: Arc<AtomicBool>,
}

impl Proxy {
    fn start() -> Self {
        let server = server_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let lose_next_reply = Arc::new(AtomicBool::new(false));
        let lose = Arc::clone(&lose_next_reply);
        thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                let upstream = TcpStream::connect(&server).unwrap();
                let (mut from, mut to) =
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Both);
                });
                let lose = Arc::clone(&lose);
                thread::spawn(move || forward_replies(upstream, client, &lose));
            }
        });
        Proxy {
            port,
            lose_next_reply,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn lose_next_reply(&self) {
        self.lose_next_reply.store(true, Ordering::SeqCst);
    }
}

fn forward_replies(mut upstream: TcpStream, mut client: TcpStream, lose: &AtomicBool) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match upstream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if lose.swap(false, Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

fn read(dict: &DurableDict<String>, key: &str) -> Option<String> {
    dict.get(key).unwrap().map(|v| v.as_str().to_owned())
}

/// A dict that never checks the stamp by itself, so what it reads after a write is what that
/// write left in its cache.
fn manual_dict(proxy: &Proxy, prefix: &str) -> (RedisStore, DurableDict<String>) {
    let store = RedisStore::open(&proxy.url(), &keyspace(prefix)).unwrap();
    let dict = DurableDict::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    (store, dict)
}

#[test]
fn writes_that_set_values_are_sent_again_and_leave_what_one_run_leaves() {
    let proxy = Proxy::start();
    let (store, dict) = manual_dict(&proxy, "lost-write");
    let mut conn = raw(&server_url());
    let mut stamp = || -> i64 { raw_stamp(&mut conn, &store).unwrap().parse().unwrap() };
    // Loads every script on the server (a lost NOSCRIPT reply would prove nothing) and pools
    // a connection.
    dict.insert("k", "v".into()).unwrap();
    dict.update([("u", "v".to_string())]).unwrap();
    dict.setdefault("s", "v".into()).unwrap();
    let mut before = stamp();

    // Each runs twice: two bumps, the same value. The returned stamp is not the synced one +
    // 1, so the dict reloads and holds the store's contents at that stamp.
    proxy.lose_next_reply();
    dict.insert("k", "w".into()).unwrap();
    assert_eq!(stamp(), before + 2);
    assert_eq!(read(&dict, "k").as_deref(), Some("w"));
    assert_eq!(dict.status().stamp, Some(before + 2));
    before += 2;

    proxy.lose_next_reply();
    dict.update([("u", "w".to_string()), ("x", "w".to_string())])
        .unwrap();
    assert_eq!(stamp(), before + 2);
    assert_eq!(read(&dict, "u").as_deref(), Some("w"));
    assert_eq!(read(&dict, "x").as_deref(), Some("w"));
    assert_eq!(dict.status().stamp, Some(before + 2));
    before += 2;

    // The second run of a setdefault finds the value the first one inserted. It cannot tell
    // that from another client's insert of the same bytes, so it bumps once more and is told
    // as an insert at a stamp that is not the synced one + 1: the dict reloads, and reads its
    // own write.
    proxy.lose_next_reply();
    assert_eq!(dict.setdefault("t", "w".into()).unwrap().as_str(), "w");
    assert_eq!(stamp(), before + 2);
    assert_eq!(read(&dict, "t").as_deref(), Some("w"));
    assert_eq!(dict.status().stamp, Some(before + 2));
}

#[test]
fn a_resent_setdefault_never_hides_another_clients_write() {
    // The dict is synced at S; another client writes j (S + 1); the dict's pooled connection
    // dies; its setdefault of a value the key already holds is sent again. Told as an insert
    // at S + 1, the dict would take the other client's bump for its own and never see j.
    let proxy = Proxy::start();
    let (store, dict) = manual_dict(&proxy, "resent-setdefault");
    dict.insert("k", "v".into()).unwrap();
    dict.setdefault("loaded", "x".into()).unwrap(); // loads the script
    let other = RedisStore::open(&server_url(), store.hash_key()).unwrap();
    other.persist("j", b"x").unwrap();

    proxy.lose_next_reply();
    assert_eq!(dict.setdefault("k", "v".into()).unwrap().as_str(), "v");
    assert_eq!(
        read(&dict, "j").as_deref(),
        Some("x"),
        "{:?}",
        dict.status()
    );
}

#[test]
fn a_removal_whose_reply_is_lost_fails_although_it_ran() {
    let proxy = Proxy::start();
    // No PING before the removal (its connection was just used), so the reply lost is the
    // removal's own.
    let store = RedisStore::builder(&proxy.url(), &keyspace("lost-removal"))
        .check_idle_after(std::time::Duration::from_secs(3600))
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store.clone(), Raw)
        .policy(SyncPolicy::Manual)
        .build()
        .unwrap();
    let mut conn = raw(&server_url());
    dict.insert("k", "v".into()).unwrap();
    dict.remove("gone").unwrap(); // loads the script
    let before: i64 = raw_stamp(&mut conn, &store).unwrap().parse().unwrap();

    proxy.lose_next_reply();
    let error = dict.remove("k").unwrap_err();
    assert_eq!(
        error.store_error().unwrap().kind(),
        StoreErrorKind::Unavailable,
        "{error}"
    );
    // It ran once: removed, one bump. The dict did not hear of it; its next sync reloads.
    assert!(!raw_hash(&mut conn, &store).contains_key("k"));
    assert_eq!(
        raw_stamp(&mut conn, &store)
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        before + 1
    );
    assert!(dict.sync().unwrap());
    assert_eq!(read(&dict, "k"), None);
}
