//! Sessions that end under the store: expired from outside while connected, and lost to a
//! server outage longer than the session timeout. Each test runs its own server.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{VISIBILITY, eventually};
use durabledict_core::{DurableDict, Error, Raw, StoreErrorKind};
use durabledict_test_servers::ZooKeeper;
use durabledict_zookeeper::ZooKeeperStore;

/// Short, so that the outage test is quick; the expiry test cuts its client off for less.
const SESSION_TIMEOUT: Duration = Duration::from_secs(2);

fn dict(connect: &str, keyspace: &str) -> DurableDict<String> {
    let store = ZooKeeperStore::builder(connect, keyspace)
        .session_timeout(SESSION_TIMEOUT)
        .build()
        .unwrap();
    DurableDict::builder(store, Raw).build().unwrap()
}

fn contents(dict: &DurableDict<String>) -> Vec<(String, String)> {
    let mut all: Vec<_> = dict
        .iter()
        .unwrap()
        .map(|(k, v)| (k, (*v).clone()))
        .collect();
    all.sort();
    all
}

/// Sends a four-letter command and returns the answer.
fn four_letters(port: u16, command: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(command.as_bytes()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}

/// The ids of the sessions connected to the server.
fn sessions(port: u16) -> Vec<i64> {
    four_letters(port, "cons")
        .split("sid=0x")
        .skip(1)
        .map(|rest| {
            let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
            u64::from_str_radix(&hex, 16).unwrap() as i64
        })
        .collect()
}

/// The password ZooKeeper gives session `id`: `new java.util.Random(id ^ superSecret)`'s first
/// 16 bytes, `superSecret` being `0xB3415C00` (ZooKeeperServer.generatePasswd).
fn session_password(id: i64) -> Vec<u8> {
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((id ^ 0xB341_5C00) as u64 ^ 0x5_DEEC_E66D) & MASK;
    let mut bytes = Vec::with_capacity(16);
    while bytes.len() < 16 {
        seed = (seed.wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB)) & MASK;
        let mut rnd = (seed >> 16) as u32;
        for _ in 0..4.min(16 - bytes.len()) {
            bytes.push(rnd as u8);
            rnd >>= 8;
        }
    }
    bytes
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// The next length-prefixed frame; `None` when the server closed the connection.
fn read_frame(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0; 4];
    conn.read_exact(&mut len).ok()?;
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).ok()?;
    Some(body)
}

/// Ends session `id` from outside, as the server does when a session expires: joins it with
/// its id and password on a second connection and closes it. The store's client must be cut
/// off meanwhile: it would rejoin its session at once and take it back.
fn close_session_from_outside(port: u16, id: i64) {
    let mut connect = Vec::new();
    connect.extend_from_slice(&0i32.to_be_bytes()); // protocol version
    connect.extend_from_slice(&0i64.to_be_bytes()); // last zxid seen
    connect.extend_from_slice(&(SESSION_TIMEOUT.as_millis() as i32).to_be_bytes());
    connect.extend_from_slice(&id.to_be_bytes());
    let password = session_password(id);
    connect.extend_from_slice(&(password.len() as i32).to_be_bytes());
    connect.extend_from_slice(&password);
    connect.push(0); // not read-only
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(&frame(&connect)).unwrap();
    let answer = read_frame(&mut conn).expect("an answer to the connect request");
    let joined = i64::from_be_bytes(answer[8..16].try_into().unwrap());
    assert_eq!(joined, id, "the server must let us join the session");
    let mut close = Vec::new();
    close.extend_from_slice(&1i32.to_be_bytes()); // xid
    close.extend_from_slice(&(-11i32).to_be_bytes()); // closeSession
    conn.write_all(&frame(&close)).unwrap();
    let reply = read_frame(&mut conn).expect("an answer to closeSession");
    let err = i32::from_be_bytes(reply[12..16].try_into().unwrap());
    assert_eq!(err, 0, "closeSession must succeed");
}

#[test]
fn a_session_expired_under_the_store_is_replaced_and_no_update_is_missed() {
    let zk = ZooKeeper::start().unwrap();
    let proxy = Proxy::start(zk.port());
    let ks = "/expiry";
    // a reaches the server through the proxy, b directly.
    let a = dict(&format!("127.0.0.1:{}", proxy.port()), ks);
    let old = sessions(zk.port());
    assert_eq!(old.len(), 1, "only a's session is connected: {old:?}");
    let b = dict(&zk.connect_string(), ks);
    b.insert("before", "1".into()).unwrap();
    eventually("a sees b's first write", VISIBILITY, || {
        a.get("before").unwrap().is_some()
    });
    let reloads = a.status().reloads;

    // Cut a off, end its session on the server, and write meanwhile: a gets no event for
    // any of it, so only the reload after its new session catches these writes.
    proxy.cut();
    close_session_from_outside(zk.port(), old[0]);
    for i in 0..100 {
        b.insert(&format!("w{}", i % 20), i.to_string()).unwrap();
        if i == 50 {
            b.remove("before").unwrap();
        }
    }
    // Reads are served from the cache meanwhile.
    assert_eq!(
        a.get("before").unwrap().as_deref().map(String::as_str),
        Some("1")
    );
    proxy.restore();
    eventually("a's client opens a new session", VISIBILITY, || {
        let now = sessions(zk.port());
        now.len() == 2 && !now.contains(&old[0])
    });
    let want = contents(&b);
    assert_eq!(want.len(), 20);
    eventually(
        "a converges to every write made meanwhile",
        VISIBILITY,
        || contents(&a) == want,
    );
    assert!(a.status().reloads > reloads);
    // The watch works again on the new session: a later write arrives as an event.
    b.insert("after", "x".into()).unwrap();
    eventually(
        "a sees a write made after the new session",
        VISIBILITY,
        || a.get("after").unwrap().is_some(),
    );
    a.insert("from-a", "y".into()).unwrap();
    eventually("b sees a's write from its new session", VISIBILITY, || {
        b.get("from-a").unwrap().is_some()
    });
}

/// A change made while the session was being replaced that leaves the keyspace looking the
/// same (as many znodes, the same names, the same values among them): the dict reloads once
/// after its new session and sees it. The store's stamp is local and only ever counts up, and
/// the full load after a new session bumps it when anything differs, so no continuity counter
/// (`Store::epoch`) is needed: a restarted server cannot count it back to a number the dict
/// synced at.
#[test]
fn a_replaced_session_reloads_once_and_sees_a_change_that_looks_like_no_change() {
    let zk = ZooKeeper::start().unwrap();
    let proxy = Proxy::start(zk.port());
    let ks = "/same-looking";
    let a = dict(&format!("127.0.0.1:{}", proxy.port()), ks);
    let old = sessions(zk.port());
    assert_eq!(old.len(), 1, "only a's session is connected: {old:?}");
    let b = dict(&zk.connect_string(), ks);
    b.update((0..10).map(|i| (format!("k{i}"), i.to_string())))
        .unwrap();
    let before = contents(&b);
    eventually("a sees b's keys", VISIBILITY, || contents(&a) == before);
    let reloads = a.status().reloads;
    let stamp = a.last_updated().unwrap();

    proxy.cut();
    close_session_from_outside(zk.port(), old[0]);
    // Two values swapped, one key deleted and created again with another value of the same
    // length: as many znodes, the same names, the same values in another order.
    b.update([("k1", "2".to_owned()), ("k2", "1".to_owned())])
        .unwrap();
    b.remove("k3").unwrap();
    b.insert("k3", "x".into()).unwrap();
    let after = contents(&b);
    assert_eq!(after.len(), before.len());
    assert_ne!(after, before);
    proxy.restore();
    eventually("a's client opens a new session", VISIBILITY, || {
        let now = sessions(zk.port());
        now.len() == 2 && !now.contains(&old[0])
    });
    eventually("a sees the changes made meanwhile", VISIBILITY, || {
        a.iter()
            .ok()
            .map(|all| {
                let mut all: Vec<_> = all.map(|(k, v)| (k, (*v).clone())).collect();
                all.sort();
                all
            })
            .as_ref()
            == Some(&after)
    });
    assert_ne!(a.last_updated().unwrap(), stamp);
    // Once: the changes arrived with one full load, not as a reload per change.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(contents(&a), after);
    assert_eq!(a.status().reloads, reloads + 1, "{:?}", a.status());
}

#[test]
fn an_outage_past_the_session_timeout_fails_reads_then_recovers_everything() {
    let mut zk = ZooKeeper::start().unwrap();
    let connect = zk.connect_string();
    let ks = "/outage";
    let a = dict(&connect, ks);
    let b = dict(&connect, ks);
    b.insert("k", "1".into()).unwrap();
    eventually("a sees b's write", VISIBILITY, || {
        a.get("k").unwrap().is_some()
    });

    let down = Instant::now();
    zk.stop();
    // Within the session timeout reads are served from the cache.
    assert_eq!(
        a.get("k").unwrap().as_deref().map(String::as_str),
        Some("1")
    );
    // Past it they fail as unavailable: the cache can no longer be vouched for.
    eventually(
        "reads fail once the session timeout has passed",
        SESSION_TIMEOUT * 3,
        || {
            matches!(a.get("k"), Err(Error::Store { ref source, .. })
                if source.kind() == StoreErrorKind::Unavailable)
        },
    );
    assert!(down.elapsed() >= SESSION_TIMEOUT);
    match a.insert("k", "lost".into()) {
        Err(Error::Store { source, .. }) => {
            assert_eq!(source.kind(), StoreErrorKind::Unavailable)
        }
        other => panic!("a write without a server must be unavailable, got {other:?}"),
    }
    // Past the session timeout the clients give up and are replaced, over and over, while a
    // caller retries a write as fast as it can, on through the restart: its failures must not
    // put the replacements off (each asks for a reload; a flood of those once kept b's closed
    // client from ever being replaced, so b never recovered).
    let first = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let deadline = Instant::now() + SESSION_TIMEOUT * 2 + Duration::from_secs(30);
            loop {
                match b.insert("n0", "0".into()) {
                    Ok(()) => return Ok(()),
                    Err(Error::Store { ref source, .. })
                        if source.kind() == StoreErrorKind::Unavailable
                            && Instant::now() < deadline => {}
                    Err(e) => return Err(e),
                }
            }
        });
        std::thread::sleep(SESSION_TIMEOUT * 2);
        zk.restart().unwrap();
        writer.join().unwrap()
    });
    if let Err(e) = first {
        panic!("b never recovered: {e}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut written = 1;
    while written < 30 {
        match b.insert(&format!("n{written}"), written.to_string()) {
            Ok(()) => written += 1,
            Err(e) => assert!(Instant::now() < deadline, "b failed after recovering: {e}"),
        }
    }
    let want = contents(&b);
    eventually(
        "a converges after the outage",
        Duration::from_secs(20),
        || a.get("k").is_ok() && contents(&a) == want,
    );
    assert_eq!(want.len(), 31);
}

#[test]
fn a_write_lost_with_its_connection_leaves_nothing_to_swallow_a_foreign_change() {
    let zk = ZooKeeper::start().unwrap();
    let proxy = Proxy::start(zk.port());
    let ks = "/lost-write";
    let b = dict(&zk.connect_string(), ks);
    // Enough keys that a's full reload after reconnecting takes a while, so that b's write can
    // land before, inside and after it.
    b.update((0..2000).map(|i| (format!("k{i}"), "x".to_owned())))
        .unwrap();
    b.insert("hot", "initial".into()).unwrap();
    let started = Instant::now();
    let store = ZooKeeperStore::builder(format!("127.0.0.1:{}", proxy.port()), ks)
        .session_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let a = DurableDict::<String>::builder(store, Raw).build().unwrap();
    assert_eq!(a.len().unwrap(), 2001);
    let reload = started.elapsed();

    const TRIALS: u32 = 6;
    for trial in 0..TRIALS {
        // a's write of "hot" is sent on a connection that breaks: its outcome is unknown.
        proxy.cut();
        std::thread::sleep(Duration::from_millis(100));
        match a.insert("hot", format!("a{trial}")) {
            Err(Error::Store { source, .. }) => {
                assert_eq!(source.kind(), StoreErrorKind::Unavailable)
            }
            other => panic!("a write through a cut connection must fail, got {other:?}"),
        }
        proxy.restore();
        std::thread::sleep(reload.mul_f64((f64::from(trial) + 0.5) / f64::from(TRIALS)));
        let want = format!("b{trial}");
        b.insert("hot", want.clone()).unwrap();
        eventually(
            &format!("trial {trial}: a sees b's write of \"hot\""),
            VISIBILITY * 3,
            || a.get("hot").is_ok_and(|v| v.as_deref() == Some(&want)),
        );
    }
}
