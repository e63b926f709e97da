//! The facade end to end, against real servers started on free loopback ports (one of each per
//! test binary, tests isolated by keyspace):
//!
//! - `open_urls`: every URL form `open` / `open_store` accept, written through one dict and
//!   read back through another;
//! - `fleet`: separate OS processes (this binary, re-executed) writing one keyspace at once
//!   and converging to exactly the same contents everywhere;
//! - `python_fleet`: the same on Redis with processes that write as Python durabledict does,
//!   values pickled by CPython, every value read by both sides.
//!
//! One test binary rather than three, so that each server starts once and the link is done
//! once. Each test needs its backends' cargo features; `cargo xtask test` runs them all.
#![allow(clippy::unwrap_used)]
// A build with only some backends leaves helpers of the others unused.
#![cfg_attr(
    not(all(
        feature = "redis",
        feature = "sqlite",
        feature = "postgres",
        feature = "mysql",
        feature = "zookeeper",
        feature = "memcache"
    )),
    allow(dead_code, unused_imports)
)]

mod contents;
mod fleet;
mod member;
mod open_urls;
mod program;
mod python_fleet;
mod servers;
mod url_options;
