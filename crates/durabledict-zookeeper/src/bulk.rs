//! Reading many znodes at once.
//!
//! A full load reads on a loader connection of its own ([`load`]): a short session that sends
//! ZooKeeper 3.6's `multiRead` requests, a few hundred znodes each. Where it cannot (an
//! ensemble, an older server, an error), the znodes are read through the `zookeeper` client
//! ([`read_all`]), which has no asynchronous or multi-read API but pipelines: every request goes
//! to its I/O thread through a channel and waits on its own reply channel, so requests made
//! from several threads are on the wire together. That takes about N / [`READERS`] round trips
//! for N keys instead of N, but is bound by the client's CPU per request (tens of microseconds:
//! a channel send and a thread wake-up for every reply); `multiRead` costs the server a few
//! microseconds per znode and the client less (docs/PERFORMANCE.md has the figures).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use zookeeper::{ZkError, ZooKeeper};

use crate::error::ZooKeeperError;
use crate::wire;

/// How many znodes one `multiRead` asks for at most (fewer while values are large).
const PER_MULTI_READ: usize = 200;

/// Reads every znode of `nodes` (paths as the client names them) on a loader connection of its
/// own to `target`, authenticated with `auth`, after a `sync` of `sync` (so the server it
/// reaches has caught up with the leader: it reads nothing older than the store's own session
/// has seen). In order; `None` for a znode that does not exist.
///
/// Fails on anything else: a server that refuses the connection or the credentials, does not
/// know `multiRead` (before 3.6), answers an error for a znode (`NoAuth`), or a reply this
/// connection does not expect (one longer than `max_value_len` per znode allows, with room
/// for the request's path, or not whole within `timeout`). The caller then reads through the
/// client ([`read_all`]), which reports a znode's error as it always has.
pub(crate) fn load(
    target: &wire::Target,
    auth: &[(String, Vec<u8>)],
    timeout: Duration,
    max_value_len: usize,
    sync: &str,
    nodes: &[String],
) -> Result<Vec<Option<Vec<u8>>>, wire::Error> {
    let mut conn = wire::Conn::open(target, auth, timeout)?;
    // The server's `jute.maxbuffer` bounds a write's path and data together.
    conn.set_max_data(max_value_len.saturating_add(64 << 10));
    let read = conn.sync_and_multi_read(sync, nodes, PER_MULTI_READ);
    conn.close();
    read?
        .into_iter()
        .map(|read| match read {
            Ok(data) => Ok(Some(data)),
            Err(wire::NO_NODE) => Ok(None),
            Err(code) => Err(std::io::Error::other(format!(
                "a znode's read failed with code {code}"
            ))),
        })
        .collect()
}

/// How many requests are in flight at once: enough to keep the connection busy on loopback and
/// on a network alike (measured in `benches/zookeeper.rs`); the threads live for one load.
const READERS: usize = 32;

/// Below this many znodes per reader a thread is not worth starting.
const PER_READER: usize = 8;

/// The data of every znode of `nodes`, in order; `None` for one that does not exist. Fails
/// with the first error other than `NoNode`.
pub(crate) fn read_all(
    zk: &ZooKeeper,
    nodes: &[String],
) -> Result<Vec<Option<Vec<u8>>>, ZooKeeperError> {
    read_with(zk, nodes, READERS)
}

/// [`read_all`] with up to `max_readers` requests in flight.
pub(crate) fn read_with(
    zk: &ZooKeeper,
    nodes: &[String],
    max_readers: usize,
) -> Result<Vec<Option<Vec<u8>>>, ZooKeeperError> {
    let read = |node: &str| match zk.get_data(node, false) {
        Ok((value, _)) => Ok(Some(value)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(ZooKeeperError::request("get_data", node, e)),
    };
    let readers = (nodes.len() / PER_READER).clamp(1, max_readers.max(1));
    if readers == 1 {
        return nodes.iter().map(|node| read(node)).collect();
    }
    let slots: Vec<Mutex<Option<Vec<u8>>>> = nodes.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let error: Mutex<Option<ZooKeeperError>> = Mutex::new(None);
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(node) = nodes.get(i) else { return };
            match read(node) {
                Ok(value) => *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = value,
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(e);
                }
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 1..readers {
            // A thread that cannot be started leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("durabledict-zookeeper-load".to_owned())
                .spawn_scoped(scope, work);
        }
        work();
    });
    if let Some(e) = error.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    Ok(slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(PoisonError::into_inner))
        .collect())
}
