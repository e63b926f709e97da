//! Entry points for `benches/zookeeper.rs`, which compares the ways a full load can read
//! znodes in one run. Not part of the API: hidden, and may change at any time.

use std::time::Duration;

use zookeeper::ZooKeeper;

use crate::{bulk, wire};

/// Reads `nodes` through `zk` from up to `readers` threads (the loader over the `zookeeper`
/// client); returns how many exist.
pub fn client_read_all(zk: &ZooKeeper, nodes: &[String], readers: usize) -> usize {
    let read = bulk::read_with(zk, nodes, readers).expect("read through the client");
    read.iter().filter(|v| v.is_some()).count()
}

/// Opens a loader connection to `connect`, syncs `sync` and reads `nodes` with pipelined
/// `getData` requests; returns how many exist.
pub fn pipelined_read_all(connect: &str, sync: &str, nodes: &[String]) -> usize {
    let mut conn = wire::Conn::open(&wire::Target::parse(connect), &[], Duration::from_secs(10))
        .expect("open a loader connection");
    let read = conn
        .sync_and_get_all(sync, nodes)
        .expect("pipelined getData");
    conn.close();
    read.iter().filter(|v| v.is_ok()).count()
}

/// The same with `multiRead` requests of `per_request` znodes each.
pub fn multi_read_all(connect: &str, sync: &str, nodes: &[String], per_request: usize) -> usize {
    let mut conn = wire::Conn::open(&wire::Target::parse(connect), &[], Duration::from_secs(10))
        .expect("open a loader connection");
    let read = conn
        .sync_and_multi_read(sync, nodes, per_request)
        .expect("multiRead");
    conn.close();
    read.iter().filter(|v| v.is_ok()).count()
}
