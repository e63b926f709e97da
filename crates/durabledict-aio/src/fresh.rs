//! Whether a read can answer from the cache without I/O, told from outside the dict.
//!
//! The core does not (yet) say this itself, so the facade keeps its own conservative record:
//! it answers "local" only when the dict's own read path would take no I/O branch. When the
//! record is unsure it says "not local", and the read runs on the blocking pool, which is
//! always correct, only slower. The record is refreshed by every read that ran there.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use durabledict_core::{DurableDict, Feed, FeedState, Store, SyncPolicy};

/// Nothing confirmed yet.
const NONE: u64 = u64::MAX;

/// The facade's record of when the dict last confirmed its cache.
#[derive(Debug)]
pub(crate) struct Freshness {
    policy: SyncPolicy,
    /// Under `Watch`: the store (for its epoch) and its feed, when the facade built the dict.
    watch: Option<(Arc<dyn Store>, Arc<Feed>)>,
    /// Under `Watch`: the feed state and store epoch a read confirmed the cache at.
    fed: AtomicU64,
    epoch: AtomicU64,
    /// Under `AtMostEvery`: one plus the nanoseconds after `origin` at or before which the
    /// dict last confirmed its cache; 0 when not known.
    origin: Instant,
    synced: AtomicU64,
}

/// What the facade saw before a read that ran on the blocking pool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen {
    fed: u64,
    epoch: u64,
    nanos: u64,
    last_sync: Option<SystemTime>,
}

fn encode(state: FeedState) -> u64 {
    if state.is_up() {
        state.notices() << 1
    } else {
        NONE
    }
}

impl Freshness {
    pub(crate) fn new(policy: SyncPolicy, watch: Option<(Arc<dyn Store>, Arc<Feed>)>) -> Self {
        Freshness {
            policy,
            watch: watch.filter(|_| policy == SyncPolicy::Watch),
            fed: AtomicU64::new(NONE),
            epoch: AtomicU64::new(NONE),
            origin: Instant::now(),
            synced: AtomicU64::new(0),
        }
    }

    /// Whether a read now takes no I/O branch in the dict. Conservative: `false` when unsure.
    #[inline(always)]
    pub(crate) fn local(&self) -> bool {
        match self.policy {
            SyncPolicy::Manual => true,
            SyncPolicy::Watch => match &self.watch {
                Some((store, feed)) => {
                    let fed = encode(feed.state());
                    fed != NONE
                        && fed == self.fed.load(Ordering::Acquire)
                        && store.epoch() == self.epoch.load(Ordering::Acquire)
                }
                None => false,
            },
            SyncPolicy::AtMostEvery(interval) => {
                let synced = self.synced.load(Ordering::Acquire);
                // A margin for the dict's clock, read a little after ours.
                synced != 0
                    && (self.nanos() + 1).saturating_sub(synced) + SLACK_NANOS
                        < u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX)
            }
            _ => false,
        }
    }

    /// Taken before a read on the blocking pool, to [`confirm`](Self::confirm) after it.
    pub(crate) fn before<V>(&self, dict: &DurableDict<V>) -> Seen
    where
        V: Send + Sync + 'static,
    {
        let (fed, epoch) = match &self.watch {
            Some((store, feed)) => (encode(feed.state()), store.epoch()),
            None => (NONE, NONE),
        };
        let last_sync =
            matches!(self.policy, SyncPolicy::AtMostEvery(_)).then(|| dict.status().last_sync);
        Seen {
            fed,
            epoch,
            nanos: self.nanos(),
            last_sync,
        }
    }

    /// After a read that succeeded on the blocking pool: what it confirmed.
    pub(crate) fn confirm<V>(&self, seen: Seen, dict: &DurableDict<V>)
    where
        V: Send + Sync + 'static,
    {
        if seen.fed != NONE {
            // The read loaded the feed state after `seen`: the cache is confirmed at least at
            // `seen.fed`. Epoch first, so a reader that sees the new state sees its epoch.
            self.epoch.store(seen.epoch, Ordering::Release);
            self.fed.store(seen.fed, Ordering::Release);
        }
        if let Some(before) = seen.last_sync
            && dict.status().last_sync != before
        {
            // Someone confirmed the cache since `seen` was taken: no earlier than `seen.nanos`.
            self.synced.fetch_max(seen.nanos + 1, Ordering::AcqRel);
        }
    }

    /// The dict was just built (which confirms its cache) after `seen` was taken.
    pub(crate) fn built(&self, seen: Seen) {
        if matches!(self.policy, SyncPolicy::AtMostEvery(_)) {
            self.synced.fetch_max(seen.nanos + 1, Ordering::AcqRel);
        }
        if seen.fed != NONE {
            self.epoch.store(seen.epoch, Ordering::Release);
            self.fed.store(seen.fed, Ordering::Release);
        }
    }

    /// A record taken with no dict yet, before building one.
    pub(crate) fn before_build(&self) -> Seen {
        let (fed, epoch) = match &self.watch {
            Some((store, feed)) => (encode(feed.state()), store.epoch()),
            None => (NONE, NONE),
        };
        Seen {
            fed,
            epoch,
            nanos: self.nanos(),
            last_sync: None,
        }
    }

    fn nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX / 2)
    }
}

/// How much sooner than the dict the facade takes an `AtMostEvery` window to end.
const SLACK_NANOS: u64 = 1_000_000;
