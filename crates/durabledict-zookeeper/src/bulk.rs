//! Reading many znodes at once.
//!
//! The `zookeeper` client has no asynchronous or multi-read API, but it pipelines: every
//! request goes to its I/O thread through a channel and waits on its own reply channel, so
//! requests made from several threads are on the wire together. A full load of N keys thus
//! takes about N / [`READERS`] round trips instead of N.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use zookeeper::{ZkError, ZooKeeper};

use crate::error::ZooKeeperError;

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
    let read = |node: &str| match zk.get_data(node, false) {
        Ok((value, _)) => Ok(Some(value)),
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => Err(ZooKeeperError::request("get_data", node, e)),
    };
    let readers = (nodes.len() / PER_READER).clamp(1, READERS);
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
