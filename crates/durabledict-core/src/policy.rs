//! When a dict checks the stamp.

use std::time::Duration;

/// When a [`DurableDict`](crate::DurableDict) checks the store's stamp before a read.
///
/// Writes always sync, whatever the policy: a write whose returned stamp is one past the
/// synced stamp is applied to the cache in O(1), otherwise the dict reloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Check the stamp before every read (Python's `autosync=True`). Every read sees every
    /// change committed before it began, except with a stamp driven by change events (the
    /// ZooKeeper store's), where a change is seen once its event has arrived (about a
    /// millisecond on a local network). The default.
    #[default]
    Always,
    /// Never check on reads; the cache changes only on this dict's writes and on
    /// [`DurableDict::sync`](crate::DurableDict::sync) (Python's `autosync=False`).
    Manual,
    /// Bounded staleness: check the stamp before a read at most once per interval, so a read
    /// sees every change committed more than `interval` before it (plus the store's own
    /// propagation delay).
    AtMostEvery(Duration),
    /// Pushed freshness: while the store's change feed ([`Store::feed`](crate::Store::feed))
    /// is healthy, a read answers from the cache with no I/O, and a change made anywhere is
    /// seen once its notice has arrived (the store's propagation time). The moment the feed is
    /// lost (a disconnect, a server restart, an expired session) nothing unconfirmed is
    /// served: every read checks the stamp, exactly as [`Always`](Self::Always), until the
    /// feed is back; then one more check, and reads are local again. On a store without a
    /// feed this is `Always`.
    Watch,
}
