//! Review of the full load's loader connection (src/wire.rs): whatever the loader connection
//! gets back (silence, a reply that never ends, lengths out of range, wrong xids, truncated or
//! short `multiRead` replies, an error inside one, a connection cut part way), the load falls
//! back to the client and the dict holds exactly what the server does, soon, without a huge
//! allocation; and the loader's session is closed once the load is done.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{eventually, raw_client};
use durabledict_core::{DurableDict, Raw, SyncPolicy};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;
use durabledict_zookeeper::zookeeper::{self, CreateMode, ZkError};

/// Enough keys for a load to read on a loader connection (64 and more).
const KEYS: usize = 150;

/// The store's session timeout in these tests: the bound on any one reply of the loader.
const SESSION: Duration = Duration::from_secs(3);

fn open_acl() -> Vec<zookeeper::Acl> {
    zookeeper::Acl::open_unsafe().clone()
}

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

fn fill(zk: &zookeeper::ZooKeeper, ks: &str) {
    match zk.create(ks, Vec::new(), open_acl(), CreateMode::Persistent) {
        Ok(_) | Err(ZkError::NodeExists) => {}
        Err(e) => panic!("create {ks}: {e:?}"),
    }
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

/// What the test server does with a loader connection (every connection after the first).
type Loader = Arc<dyn Fn(TcpStream, u16) + Send + Sync>;

/// A TCP server that forwards its first connection (the store's session) to ZooKeeper at
/// `upstream` and hands every later one (the loader connections) to `loader`.
struct Gate {
    port: u16,
    loaders: Arc<AtomicUsize>,
}

impl Gate {
    fn start(upstream: u16, loader: Loader) -> Gate {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let loaders = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&loaders);
        std::thread::spawn(move || {
            for (i, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let _ = client.set_nodelay(true);
                if i == 0 {
                    forward(client, upstream, usize::MAX);
                } else {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let loader = Arc::clone(&loader);
                    std::thread::spawn(move || loader(client, upstream));
                }
            }
        });
        Gate { port, loaders }
    }

    fn connect(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Forwards `client` to the server at `upstream`, cutting both ways once `limit` bytes went
/// from the server to the client.
fn forward(client: TcpStream, upstream: u16, limit: usize) {
    let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let _ = server.set_nodelay(true);
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buf = [0; 16 << 10];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = [0; 16 << 10];
        let mut sent = 0;
        while let Ok(n) = s_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            let n = n.min(limit - sent);
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
            sent += n;
            if sent == limit {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
        let _ = s_in.shutdown(Shutdown::Both);
    });
}

/// Reads one length-prefixed frame.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn int(frame: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(frame[at..at + 4].try_into().unwrap())
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Answers the connect request as a server that opened a session would.
fn accept_session(stream: &mut TcpStream) -> Option<()> {
    read_frame(stream)?;
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes()); // protocol
    body.extend_from_slice(&(SESSION.as_millis() as i32).to_be_bytes());
    body.extend_from_slice(&0x1234i64.to_be_bytes()); // session id
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[0; 16]); // password
    body.push(0); // read-only
    stream.write_all(&framed(&body)).ok()
}

/// A reply header: xid, zxid, error.
fn header(xid: i32, err: i32) -> Vec<u8> {
    let mut out = xid.to_be_bytes().to_vec();
    out.extend_from_slice(&7i64.to_be_bytes());
    out.extend_from_slice(&err.to_be_bytes());
    out
}

/// Opens a session, answers the `sync`, and hands each `multiRead` (its xid and how many
/// reads it asks for) to `answer`, which writes what it likes; stops when `answer` says so.
fn fake_server(mut stream: TcpStream, mut answer: impl FnMut(&mut TcpStream, i32, usize) -> bool) {
    if accept_session(&mut stream).is_none() {
        return;
    }
    while let Some(frame) = read_frame(&mut stream) {
        let (xid, op) = (int(&frame, 0), int(&frame, 4));
        match op {
            // sync: echo the path.
            9 => {
                let mut body = header(xid, 0);
                body.extend_from_slice(&frame[8..]);
                if stream.write_all(&framed(&body)).is_err() {
                    return;
                }
            }
            // multiRead: count its reads (each one: type 4, done false, err -1, path, watch).
            22 => {
                let mut at = 8;
                let mut n = 0;
                while int(&frame, at) != -1 {
                    let path_len = int(&frame, at + 9) as usize;
                    at += 9 + 4 + path_len + 1;
                    n += 1;
                }
                if !answer(&mut stream, xid, n) {
                    return;
                }
            }
            // close
            -11 => {
                let _ = stream.write_all(&framed(&header(xid, 0)));
                return;
            }
            _ => return,
        }
    }
}

/// A `multiRead` reply with `results` as its results (each already encoded), then the end
/// marker.
fn multi_reply(xid: i32, results: &[Vec<u8>]) -> Vec<u8> {
    let mut body = header(xid, 0);
    for r in results {
        body.extend_from_slice(r);
    }
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.push(1);
    body.extend_from_slice(&(-1i32).to_be_bytes());
    framed(&body)
}

fn data_result(data: &[u8]) -> Vec<u8> {
    let mut out = 4i32.to_be_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&(data.len() as i32).to_be_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&[0; 68]);
    out
}

fn error_result(code: i32) -> Vec<u8> {
    let mut out = (-1i32).to_be_bytes().to_vec();
    out.push(0);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out
}

/// Builds a dict through a [`Gate`] whose loader connections `loader` serves, and checks that
/// it is built within `bound`, holds exactly what the server does, and that a loader
/// connection was tried.
fn load_through(name: &str, loader: Loader, bound: Duration) {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = format!("/review-{name}");
    fill(&admin, &ks);
    let gate = Gate::start(zk.port(), loader);
    let store = ZooKeeperStore::builder(gate.connect(), &ks)
        .session_timeout(SESSION)
        .build()
        .unwrap();
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let dict = DurableDict::<String>::builder(store, Raw)
            .policy(SyncPolicy::Watch)
            .build();
        let _ = tx.send(dict);
    });
    let dict = rx
        .recv_timeout(bound + Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{name}: the load hangs"))
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < bound,
        "{name}: the load took {took:?}, over {bound:?}"
    );
    assert!(
        gate.loaders.load(Ordering::SeqCst) >= 1,
        "{name}: no loader connection was tried"
    );
    assert_eq!(dict_contents(&dict), server_contents(&admin, &ks), "{name}");
    // Still following the server through its session afterwards.
    put(&admin, &format!("{ks}/k0"), b"after");
    eventually("the dict follows the server", common::VISIBILITY, || {
        dict.get("k0").unwrap().as_deref().map(String::as_str) == Some("after")
    });
}

/// A server that accepts the loader connection and says nothing: the load falls back once
/// the session timeout passes.
#[test]
fn a_silent_loader_server_costs_at_most_the_session_timeout() {
    load_through(
        "silent",
        Arc::new(|stream, _| {
            let mut stream = stream;
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }),
        SESSION * 2,
    );
}

/// A server that answers the connect request one byte at a time, each well within the read
/// timeout, for ever: the reply must be whole within the timeout, not each byte.
#[test]
fn a_reply_that_trickles_for_ever_does_not_hold_the_load() {
    load_through(
        "trickle",
        Arc::new(|mut stream, _| {
            let _ = read_frame(&mut stream);
            let _ = stream.write_all(&1000u32.to_be_bytes());
            while stream.write_all(&[0]).is_ok() {
                std::thread::sleep(Duration::from_millis(200));
            }
        }),
        SESSION * 2,
    );
}

/// A `multiRead` reply that claims nearly 1 GiB and streams zeros for as long as it is read:
/// the loader stops reading at what its request could take (a few MiB), rather than take in
/// (and hold) a gigabyte.
#[test]
fn a_reply_that_never_ends_is_not_read_into_memory() {
    let streamed = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&streamed);
    load_through(
        "endless",
        Arc::new(move |stream, _| {
            let counted = Arc::clone(&counted);
            fake_server(stream, move |stream, _, _| {
                let _ = stream.write_all(&((1u32 << 30) - 1).to_be_bytes());
                let zeros = vec![0; 1 << 20];
                while stream.write_all(&zeros).is_ok() {
                    counted.fetch_add(zeros.len() as u64, Ordering::SeqCst);
                }
                false
            })
        }),
        SESSION * 2,
    );
    let read = streamed.load(Ordering::SeqCst);
    assert!(
        read < 64 << 20,
        "the loader read {} MiB of a bogus reply",
        read >> 20
    );
}

/// A reply length of 2 GiB (negative as jute reads it).
#[test]
fn a_length_of_2_gib_falls_back() {
    load_through(
        "length-2gib",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, _, _| {
                let _ = stream.write_all(&(1u32 << 31).to_be_bytes());
                let _ = stream.write_all(&[0; 64]);
                false
            })
        }),
        SESSION * 2,
    );
}

/// A `multiRead` answered with another request's xid.
#[test]
fn a_reply_to_the_wrong_xid_falls_back() {
    load_through(
        "wrong-xid",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, xid, n| {
                let results: Vec<Vec<u8>> = (0..n).map(|_| data_result(b"forged")).collect();
                stream.write_all(&multi_reply(xid + 1, &results)).is_ok()
            })
        }),
        SESSION * 2,
    );
}

/// A reply cut off in the middle, then the connection closed.
#[test]
fn a_truncated_reply_falls_back() {
    load_through(
        "truncated",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, xid, n| {
                let results: Vec<Vec<u8>> = (0..n).map(|_| data_result(b"forged")).collect();
                let reply = multi_reply(xid, &results);
                let _ = stream.write_all(&reply[..reply.len() / 2]);
                false
            })
        }),
        SESSION * 2,
    );
}

/// A `multiRead` reply with one result fewer than asked, and one with a result that is not
/// whole (the frame ends inside the `Stat`).
#[test]
fn a_short_multi_read_reply_falls_back() {
    load_through(
        "fewer-results",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, xid, n| {
                let results: Vec<Vec<u8>> = (1..n).map(|_| data_result(b"forged")).collect();
                stream.write_all(&multi_reply(xid, &results)).is_ok()
            })
        }),
        SESSION * 2,
    );
    load_through(
        "short-result",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, xid, n| {
                let mut results: Vec<Vec<u8>> = (0..n).map(|_| data_result(b"forged")).collect();
                results.last_mut().unwrap().truncate(20);
                let mut body = header(xid, 0);
                for r in &results {
                    body.extend_from_slice(r);
                }
                stream.write_all(&framed(&body)).is_ok()
            })
        }),
        SESSION * 2,
    );
}

/// A `multiRead` whose results hold an error (NoAuth) for one znode: the load reads through
/// the client, which the server answers (no ACL on these znodes).
#[test]
fn an_error_inside_a_multi_read_falls_back() {
    load_through(
        "error-result",
        Arc::new(|stream, _| {
            fake_server(stream, |stream, xid, n| {
                let mut results: Vec<Vec<u8>> = (0..n).map(|_| data_result(b"forged")).collect();
                results[0] = error_result(-102);
                stream.write_all(&multi_reply(xid, &results)).is_ok()
            })
        }),
        SESSION * 2,
    );
}

/// The loader connection to the real server, cut after a number of bytes of its replies
/// (inside the `multiRead` replies), while another client writes all the time: every dict
/// ends up holding exactly what the server does, and a hot counter never goes back.
#[test]
fn a_loader_connection_cut_part_way_under_a_writer_loses_nothing() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/review-cut";
    fill(&admin, ks);
    put(&admin, &format!("{ks}/hot"), b"0");
    // Cut inside the connect reply, the sync reply, and the first few multiRead replies.
    for (round, cut_at) in [20usize, 60, 200, 1_000, 3_000, 6_000, 20_000]
        .into_iter()
        .enumerate()
    {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (connect, stop) = (zk.connect_string(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let zk = raw_client(&connect);
                let mut i = 1_000_000 * round as u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    put(&zk, &format!("{ks}/hot"), i.to_string().as_bytes());
                    let key = format!("{ks}/k{}", (i as usize * 7) % KEYS);
                    if i.is_multiple_of(3) {
                        match zk.delete(&key, None) {
                            Ok(()) | Err(ZkError::NoNode) => {}
                            Err(e) => panic!("delete: {e:?}"),
                        }
                    } else {
                        put(&zk, &key, format!("w{i}").as_bytes());
                    }
                }
            })
        };
        let gate = Gate::start(
            zk.port(),
            Arc::new(move |stream, upstream| forward(stream, upstream, cut_at)),
        );
        let dict = DurableDict::<String>::builder(
            ZooKeeperStore::builder(gate.connect(), ks)
                .session_timeout(SESSION)
                .build()
                .unwrap(),
            Raw,
        )
        .policy(SyncPolicy::Watch)
        .build()
        .unwrap();
        let mut last = 0u64;
        for _ in 0..50 {
            if let Some(v) = dict.get("hot").unwrap() {
                let v: u64 = v.parse().unwrap();
                assert!(v >= last, "round {round}: hot went back from {last} to {v}");
                last = v;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(gate.loaders.load(Ordering::SeqCst) >= 1);
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
        eventually(
            "the dict holds what the server does",
            common::VISIBILITY,
            || dict_contents(&dict) == server_contents(&admin, ks),
        );
    }
}

/// Sends a four-letter word to the server and returns its answer.
fn four(port: u16, word: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(word.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// How many connections the server has, besides the one asking.
fn connections(port: u16) -> usize {
    four(port, "cons")
        .lines()
        .filter(|line| line.trim_start().starts_with('/'))
        .count()
        .saturating_sub(1)
}

/// After loads on loader connections (first loads and reloads), the server holds the store's
/// one session and connection only: every loader session was closed, its socket gone.
#[test]
fn loader_sessions_are_closed() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/review-sessions";
    fill(&admin, ks);
    drop(admin);
    eventually(
        "only this check is connected",
        Duration::from_secs(5),
        || connections(zk.port()) == 0,
    );
    let dicts: Vec<DurableDict<String>> = (0..5)
        .map(|_| {
            DurableDict::builder(
                ZooKeeperStore::builder(zk.connect_string(), ks)
                    .session_timeout(Duration::from_secs(30))
                    .build()
                    .unwrap(),
                Raw,
            )
            .build()
            .unwrap()
        })
        .collect();
    for dict in &dicts {
        assert_eq!(dict.len().unwrap(), KEYS);
    }
    let mntr = four(zk.port(), "mntr");
    let sessions: usize = mntr
        .lines()
        .find_map(|line| line.strip_prefix("zk_global_sessions"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("no zk_global_sessions in {mntr}"));
    assert_eq!(sessions, dicts.len(), "{mntr}");
    assert_eq!(connections(zk.port()), dicts.len());
}

/// A server that refuses the loader's credentials after opening its session: the loader
/// closes that session (rather than leave it to expire at its timeout), and the load falls
/// back.
#[test]
fn a_refused_authentication_closes_the_loader_session() {
    let zk = ZooKeeper::start().unwrap();
    let admin = raw_client(&zk.connect_string());
    let ks = "/review-auth-refused";
    fill(&admin, ks);
    let closed = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&closed);
    let gate = Gate::start(
        zk.port(),
        Arc::new(move |mut stream, _| {
            if accept_session(&mut stream).is_none() {
                return;
            }
            while let Some(frame) = read_frame(&mut stream) {
                match int(&frame, 4) {
                    // auth: refused (AUTHFAILED).
                    100 => {
                        let _ = stream.write_all(&framed(&header(-4, -115)));
                    }
                    -11 => {
                        seen.store(true, Ordering::SeqCst);
                        let _ = stream.write_all(&framed(&header(int(&frame, 0), 0)));
                        return;
                    }
                    _ => return,
                }
            }
        }),
    );
    let store = ZooKeeperStore::builder(gate.connect(), ks)
        .session_timeout(SESSION)
        .digest_auth("app", "s3cret")
        .build()
        .unwrap();
    let dict = DurableDict::<String>::builder(store, Raw).build().unwrap();
    assert_eq!(dict_contents(&dict), server_contents(&admin, ks));
    assert!(gate.loaders.load(Ordering::SeqCst) >= 1);
    assert!(
        closed.load(Ordering::SeqCst),
        "the loader closes the session whose authentication failed"
    );
}
