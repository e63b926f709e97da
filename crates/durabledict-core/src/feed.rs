//! [`Feed`]: change notices pushed by a store that can push (Redis client tracking, PostgreSQL
//! `LISTEN`, ZooKeeper watches), so that a dict under [`SyncPolicy::Watch`] reads with no I/O
//! while the feed is healthy.
//!
//! A feed is one word of state, shared by the store (which writes it) and every dict on that
//! store (which read it on every read): how many notices arrived, and whether the feed is down.
//! A store that loses its feed (a disconnect, a server restart, an expired session) marks it
//! down *before* anything else can happen on the new connection; since the server does not
//! resend the notices it sent meanwhile, every dict then checks the stamp on every read until
//! the store marks the feed up again, which also counts as a notice, so every dict checks once
//! more before it reads locally again.
//!
//! [`SyncPolicy::Watch`]: crate::SyncPolicy::Watch

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// The low bit of the state: set while the feed is down.
const DOWN: u64 = 1;
/// One notice: the counter lives above the down bit.
const NOTICE: u64 = 2;

/// The state of a [`Feed`] at one moment: compare two with `==` to learn whether anything
/// arrived in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedState(u64);

impl FeedState {
    /// Whether the feed was healthy: notices were being delivered.
    #[inline(always)]
    pub fn is_up(self) -> bool {
        self.0 & DOWN == 0
    }

    /// How many notices had arrived (a restored feed counts as one).
    pub fn notices(self) -> u64 {
        self.0 >> 1
    }

    pub(crate) fn raw(self) -> u64 {
        self.0
    }
}

/// Change notices pushed by a store, shared by the store and every dict on it.
///
/// A store that can push creates one (down until its subscription is confirmed), hands it out
/// from [`Store::feed`](crate::Store::feed), calls [`notify`](Feed::notify) for every change
/// notice the server sends, [`lost`](Feed::lost) the moment the subscription may have missed
/// one (the connection broke, the session expired), and [`restored`](Feed::restored) once the
/// subscription is confirmed again.
///
/// ```
/// use std::time::Duration;
/// use durabledict_core::Feed;
///
/// let feed = Feed::new();
/// assert!(!feed.state().is_up(), "down until the store subscribed");
/// feed.restored();
/// let seen = feed.state();
/// assert!(seen.is_up());
/// feed.notify();
/// assert_ne!(feed.state(), seen);
/// // A listener thread waits for the next change.
/// assert_eq!(feed.wait(feed.state(), Duration::from_millis(1)), feed.state());
/// ```
pub struct Feed {
    state: AtomicU64,
    /// When it was last lost: nanoseconds since the Unix epoch; 0 never.
    lost_at: AtomicU64,
    wake: Mutex<()>,
    changed: Condvar,
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("Feed")
            .field("up", &state.is_up())
            .field("notices", &state.notices())
            .finish()
    }
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// A feed that is down: dicts check the stamp until [`restored`](Feed::restored).
    pub fn new() -> Self {
        Feed {
            state: AtomicU64::new(DOWN),
            lost_at: AtomicU64::new(0),
            wake: Mutex::new(()),
            changed: Condvar::new(),
        }
    }

    /// The state now; one atomic load.
    #[inline(always)]
    pub fn state(&self) -> FeedState {
        FeedState(self.state.load(Ordering::Acquire))
    }

    /// A change notice arrived: every dict checks the stamp once at its next read (and its
    /// listener thread, if any, at once).
    pub fn notify(&self) {
        self.state.fetch_add(NOTICE, Ordering::AcqRel);
        self.wake();
    }

    /// The feed may have missed a notice: until [`restored`](Feed::restored), every read of
    /// every dict checks the stamp, as under [`SyncPolicy::Always`](crate::SyncPolicy::Always).
    pub fn lost(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        // Before the state: a reader that sees the loss sees when it happened.
        self.lost_at.store(now.max(1), Ordering::Release);
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s | DOWN).wrapping_add(NOTICE))
            })
            .ok();
        self.wake();
    }

    /// The subscription is confirmed again: counts as a notice, so every dict checks once more
    /// before reading locally again.
    pub fn restored(&self) {
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s & !DOWN).wrapping_add(NOTICE))
            })
            .ok();
        self.wake();
    }

    /// When the feed was last lost, if ever. Until then the store vouched for every notice,
    /// so a dict serving stale reads (`serve_stale_for`) counts the age of a cache the feed
    /// confirmed up to the loss from this moment.
    pub fn lost_at(&self) -> Option<SystemTime> {
        match self.lost_at.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// Blocks until the state differs from `since`, or `timeout` passed; returns the state.
    pub fn wait(&self, since: FeedState, timeout: Duration) -> FeedState {
        let deadline = Instant::now() + timeout;
        let mut guard = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = self.state();
            if now != since {
                return now;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return now;
            };
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn wake(&self) {
        // Taking the lock orders this wake-up after a waiter's check of the state.
        drop(self.wake.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }
}
