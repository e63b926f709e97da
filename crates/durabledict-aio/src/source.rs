//! [`StampSource`]: a store's stamp read over an async client, so that a read that checks the
//! stamp stays on its task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use durabledict_core::{StampValue, StoreError};

/// The future of [`StampSource::last_updated`].
pub type StampFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<StampValue>, StoreError>> + Send + 'a>>;

/// A store's `last_updated` stamp read over an async client of that same store: one round trip
/// on the calling task instead of a blocking-pool thread. Given to
/// [`Builder::stamp_source`](crate::Builder::stamp_source), it serves the reads that check the
/// stamp (`Always`, `AtMostEvery` past its window, `Watch` on a store that cannot push).
///
/// `durabledict-redis` implements it (feature `aio`: `RedisStore::async_stamp`).
///
/// # Contract
///
/// A stale read is possible only if this is broken, so it is strict:
///
/// - [`last_updated`](Self::last_updated) reads the stamp of the very store the dict is built
///   on, as [`Store::last_updated`](durabledict_core::Store::last_updated) does.
/// - [`epoch`](Self::epoch) is the store's own [`Store::epoch`](durabledict_core::Store::epoch)
///   counter, and this source's requests change it exactly as the store's own requests do:
///   a request that fails in a way that may hide a restart bumps it, and so does a new
///   connection to a server that may not be the one before (another Redis `run_id`), in
///   both cases **before** the reply is handed over. A read is answered from the cache only
///   when the stamp equals the cache's and the epoch is the cache's before and after the check.
/// - It never blocks the thread: the future waits on I/O, not in a system call.
///
/// An error is not reported to the caller: the read then runs the dict's own check off the
/// executor, which reports it.
pub trait StampSource: Send + Sync + fmt::Debug + 'static {
    /// Reads the stamp; `None` when it is missing.
    fn last_updated(&self) -> StampFuture<'_>;

    /// The store's epoch (see the contract above); one atomic load.
    fn epoch(&self) -> u64;
}
