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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::StoreError;
use crate::dict::{FEED_QUIET, LISTEN_POLL};
use crate::store::{Durables, StampValue};

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
    /// The stamp checks and loads shared by the dicts on this feed whose stores say
    /// [`Store::feed_shares_reads`](crate::Store::feed_shares_reads).
    shared: Shared,
    /// The dicts with subscribers that this feed's keeper thread keeps current (dicts that
    /// share only).
    keepers: Mutex<Keepers>,
    /// A dict was added to a running keeper: it has its round at once, not at the next notice.
    kicked: AtomicBool,
}

/// A dict with subscribers, kept current by its feed's keeper thread.
pub(crate) trait Kept: Send + Sync {
    /// One round: checks (and reloads, announcing the changes) as a read would, without
    /// waiting for the dict's update lock.
    fn keep(&self) -> Round;
}

/// What one keeper round did with a dict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// Brought up to date, or tried (an error is in the dict's status).
    Kept,
    /// It needed a reload and its update lock was busy (a write of its own waiting for its
    /// reply, a reader's reload): not waited for, since every other dict on the feed would
    /// wait too; tried again within [`LISTEN_POLL`].
    Busy,
    /// Nobody listens any more: let go.
    LetGo,
}

/// The dicts a feed's keeper thread keeps current.
#[derive(Default)]
struct Keepers {
    dicts: Vec<(u64, Weak<dyn Kept>)>,
    next: u64,
    running: bool,
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
            shared: Shared::default(),
            keepers: Mutex::default(),
            kicked: AtomicBool::new(false),
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

    /// A stamp check for a dict at feed `state` and store `epoch` (both read before the
    /// request): one already made at the same, or `check`'s own.
    ///
    /// When a notice arrives, the first dict to check the stamp (or load the entries) does it
    /// for every dict that needs the same at the same feed state, so that 200 dicts hearing
    /// one write send one `GET` and one load, not 200 of each. A result is shared only while
    /// the feed is up and neither its state nor the store's [`epoch`](crate::Store::epoch)
    /// moved since the request was sent: what a dict reads is then exactly as fresh as a
    /// request of its own sent now would be, as far as the feed can tell. Only dicts whose
    /// store says [`feed_shares_reads`](crate::Store::feed_shares_reads) call this, since it
    /// holds only when the store keeps that method's promises.
    pub(crate) fn shared_check(
        &self,
        state: FeedState,
        epoch: u64,
        check: impl FnOnce() -> Result<Option<StampValue>, StoreError>,
    ) -> Result<Option<StampValue>, StoreError> {
        if state.is_up() {
            self.shared.stamp.get(Key(state.raw(), epoch), check)
        } else {
            check()
        }
    }

    /// A load for a dict at feed `state` and store `epoch` (both read before the request):
    /// one already made at the same, or `load`'s own.
    pub(crate) fn shared_load(
        &self,
        state: FeedState,
        epoch: u64,
        load: impl FnOnce() -> Result<Durables, StoreError>,
    ) -> Result<Arc<Durables>, StoreError> {
        if state.is_up() {
            self.shared
                .load
                .get(Key(state.raw(), epoch), || load().map(Arc::new))
        } else {
            load().map(Arc::new)
        }
    }

    /// Has this feed's keeper thread keep `dict` current, starting the thread when none runs:
    /// one thread per feed, not per dict, so that a notice wakes one thread, which brings
    /// every listened dict up to date with the one check and load they share. Only for dicts
    /// that share (others' own requests would run one after the other); `false` when no
    /// thread could be started.
    ///
    /// The thread holds the feed while it runs; it ends once no dict is left (each is let go
    /// when dropped or when its last subscription is), within [`FEED_QUIET`].
    pub(crate) fn keep(self: &Arc<Self>, dict: Weak<dyn Kept>) -> bool {
        let mut keepers = self.lock_keepers();
        let id = keepers.next;
        keepers.next += 1;
        keepers.dicts.push((id, dict));
        if !keepers.running {
            let feed = Arc::clone(self);
            let started = std::thread::Builder::new()
                .name("durabledict-feed-keeper".into())
                .spawn(move || feed.run_keeper());
            if started.is_err() {
                keepers.dicts.retain(|(at, _)| *at != id);
                return false;
            }
            keepers.running = true;
            return true;
        }
        drop(keepers);
        // The dict may have missed notices the keeper already had its round for: its own
        // round now, as the thread of its own it had before (not up to FEED_QUIET later;
        // tests/review_keeper.rs).
        self.kicked.store(true, Ordering::Release);
        self.wake();
        true
    }

    /// The keeper thread: after every notice (and every [`FEED_QUIET`], or [`LISTEN_POLL`]
    /// while the feed is down), one round over every kept dict.
    fn run_keeper(self: Arc<Self>) {
        loop {
            let before = self.state();
            let dicts: Vec<(u64, Arc<dyn Kept>)> = {
                let mut keepers = self.lock_keepers();
                keepers.dicts.retain(|(_, dict)| dict.strong_count() > 0);
                if keepers.dicts.is_empty() {
                    keepers.running = false;
                    return;
                }
                keepers
                    .dicts
                    .iter()
                    .filter_map(|(id, dict)| Some((*id, dict.upgrade()?)))
                    .collect()
            };
            // The round's dicts share one load: it is kept until the last of them had it.
            self.shared.load.hold();
            // A dict whose round panics (an encoding's bug) stays kept; the others are not
            // left without their thread.
            let mut busy = false;
            let let_go: Vec<u64> = dicts
                .iter()
                .filter(|(_, dict)| {
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dict.keep())) {
                        Ok(Round::LetGo) => true,
                        Ok(Round::Busy) => {
                            busy = true;
                            false
                        }
                        Ok(Round::Kept) | Err(_) => false,
                    }
                })
                .map(|(id, _)| *id)
                .collect();
            self.shared.load.release();
            drop(dicts);
            if !let_go.is_empty() {
                let mut keepers = self.lock_keepers();
                keepers.dicts.retain(|(id, _)| !let_go.contains(id));
                // The last one let go: the thread ends now, not after one more quiet wait.
                if keepers.dicts.is_empty() {
                    keepers.running = false;
                    return;
                }
            }
            self.wait_for_round(before, if busy { LISTEN_POLL } else { FEED_QUIET }, true);
        }
    }

    /// Waits until the next keeping round is due, after one that started at `before`: while
    /// the feed is up, until a notice arrives (or `quiet`); while it is down, until it
    /// is back (or [`LISTEN_POLL`]), not at every change of state meanwhile: every request
    /// that fails while the server is away marks the feed lost again, and a round woken by its
    /// own failures ran at once again, spinning (92% of a core with three subscribed dicts on
    /// a stopped redis-server, `tests/review_sharing.rs` in durabledict-redis).
    ///
    /// The `keeper` also has its round at once when a dict was added to it ([`Feed::keep`]);
    /// a dict's own thread leaves that to the keeper.
    pub(crate) fn wait_for_round(&self, before: FeedState, quiet: Duration, keeper: bool) {
        let up = self.state().is_up();
        let deadline = Instant::now()
            + if up {
                quiet.min(FEED_QUIET)
            } else {
                LISTEN_POLL
            };
        let mut guard = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if keeper && self.kicked.swap(false, Ordering::AcqRel) {
                return;
            }
            let now = self.state();
            // Up: at the next notice (or a change during the round). Down: at its return.
            if (up && now != before) || (!up && now.is_up()) {
                return;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            guard = self
                .changed
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock_keepers(&self) -> std::sync::MutexGuard<'_, Keepers> {
        self.keepers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake(&self) {
        // Taking the lock orders this wake-up after a waiter's check of the state.
        drop(self.wake.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_all();
    }
}

/// What the dicts on a feed share ([`Feed::shared_check`], [`Feed::shared_load`]).
struct Shared {
    /// The last stamp check is kept (one word).
    stamp: Slot<Option<StampValue>>,
    /// The last load is kept when small ([`KEEP_LOAD_BYTES`]); a larger one only while
    /// someone may still want it: the callers waiting for it, and a keeper round in progress
    /// (see [`Feed::run_keeper`]). Kept longer, it would hold a copy of the whole keyspace's
    /// bytes for as long as the feed lives.
    load: Slot<Arc<Durables>>,
}

/// The size up to which a feed keeps its last shared load for dicts that come later.
const KEEP_LOAD_BYTES: usize = 1 << 20;

/// Whether a load is small enough to keep (see [`KEEP_LOAD_BYTES`]).
fn small_load(durables: &Arc<Durables>) -> bool {
    let mut bytes = 0usize;
    for (key, value) in &durables.entries {
        bytes = bytes.saturating_add(key.len() + value.len());
        if bytes > KEEP_LOAD_BYTES {
            return false;
        }
    }
    durables.unreadable.iter().fold(bytes, |sum, (name, why)| {
        sum.saturating_add(name.len() + why.len())
    }) <= KEEP_LOAD_BYTES
}

/// How long a caller waits at least for the same request in flight before it sends its own:
/// for a stamp check, one `GET` answered within a millisecond or two (and well within this
/// on a machine too loaded to schedule the caller that sent it). A request that takes much
/// longer than the last ones may hang on a silent connection until the store's I/O timeout,
/// and everybody waiting for it would wait that long too (another dict's read waited 20 s,
/// the timeout there, for a check and 83 s for a load, in `tests/review_sharing.rs` of
/// durabledict-redis). A caller that gives up sends what it would have sent without sharing.
const CHECK_PATIENCE: Duration = Duration::from_secs(1);
/// [`CHECK_PATIENCE`] for a load, which takes longer the more the keyspace holds.
const LOAD_PATIENCE: Duration = Duration::from_secs(2);
/// A caller waits for the request in flight this many times as long as the last answered
/// one took, when that is more than the patience above.
const PATIENCE_FACTOR: u32 = 4;

impl Default for Shared {
    fn default() -> Self {
        Shared {
            stamp: Slot::new(|_| true, CHECK_PATIENCE),
            load: Slot::new(small_load, LOAD_PATIENCE),
        }
    }
}

/// The feed state and store epoch a shared request was sent at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

/// One kind of shared request: the last answer and the request in flight, single flight per
/// [`Key`].
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    done: Condvar,
    /// Whether an answer is kept when nobody waits for it and nothing holds the slot.
    keep: fn(&T) -> bool,
    /// How long a caller waits at least for the request in flight before it sends its own
    /// (see [`PATIENCE_FACTOR`]).
    patience: Duration,
}

struct SlotState<T> {
    /// The last answer, and whether it is kept for callers to come (`Slot::keep`).
    last: Option<(Key, T, bool)>,
    in_flight: Option<Key>,
    /// The last request that failed: callers at that key send their own, side by side (one
    /// caller's error is not another's, and a server that went away must not make every
    /// caller wait out one timeout after the other).
    failed: Option<Key>,
    /// Callers waiting for the request in flight.
    waiting: usize,
    /// Holds on the last answer ([`Slot::hold`]).
    holds: usize,
    /// How long the last answered request took.
    took: Duration,
}

impl<T> SlotState<T> {
    /// Forgets the last answer when it is not kept and nobody may still want it.
    fn let_go(&mut self) {
        if self.waiting == 0 && self.holds == 0 && matches!(self.last, Some((_, _, false))) {
            self.last = None;
        }
    }
}

impl<T: Clone> Slot<T> {
    fn new(keep: fn(&T) -> bool, patience: Duration) -> Self {
        Slot {
            state: Mutex::new(SlotState {
                last: None,
                in_flight: None,
                failed: None,
                waiting: 0,
                holds: 0,
                took: Duration::ZERO,
            }),
            done: Condvar::new(),
            keep,
            patience,
        }
    }

    /// The answer at `key`: the last one when it was made at `key`, the one in flight at
    /// `key` once it arrives (within the slot's patience), or `fetch`'s.
    fn get(
        &self,
        key: Key,
        fetch: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut state = self.lock();
        let give_up = Instant::now()
            + self
                .patience
                .max(state.took.saturating_mul(PATIENCE_FACTOR));
        loop {
            if let Some((at, answer, _)) = &state.last
                && *at == key
            {
                let answer = answer.clone();
                state.let_go();
                return Ok(answer);
            }
            if state.failed == Some(key) {
                break;
            }
            match state.in_flight {
                Some(at) if at == key => {
                    let left = give_up.saturating_duration_since(Instant::now());
                    // Out of patience: ours goes alone.
                    if left.is_zero() {
                        break;
                    }
                    state.waiting += 1;
                    state = self
                        .done
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    state.waiting -= 1;
                }
                // A request at another state is in flight: ours goes alone.
                Some(_) => break,
                None => {
                    state.in_flight = Some(key);
                    drop(state);
                    // Whatever happens in `fetch` (a panic included), the waiters are released.
                    let mut flight = Flight {
                        slot: self,
                        key,
                        answered: false,
                    };
                    let sent = Instant::now();
                    let answer = fetch();
                    flight.answered = true;
                    let mut state = self.lock();
                    state.in_flight = None;
                    match &answer {
                        Ok(value) => {
                            state.took = sent.elapsed();
                            state.last = Some((key, value.clone(), (self.keep)(value)));
                            state.let_go();
                        }
                        Err(_) => state.failed = Some(key),
                    }
                    drop(state);
                    drop(flight);
                    return answer;
                }
            }
        }
        drop(state);
        fetch()
    }

    /// Keeps the last answer, and the ones to come, until [`release`](Self::release).
    fn hold(&self) {
        self.lock().holds += 1;
    }

    fn release(&self) {
        let mut state = self.lock();
        state.holds = state.holds.saturating_sub(1);
        state.let_go();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A shared request in flight: when it ends (answered, or its caller panicked), its waiters
/// wake; unanswered, they send their own.
struct Flight<'a, T> {
    slot: &'a Slot<T>,
    key: Key,
    answered: bool,
}

impl<T> Drop for Flight<'_, T> {
    fn drop(&mut self) {
        if !self.answered {
            let mut state = self
                .slot
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            state.in_flight = None;
            state.failed = Some(self.key);
        }
        self.slot.done.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn answers_are_shared_only_at_the_same_state_and_epoch_while_up() {
        let feed = Feed::new();
        let sent = AtomicUsize::new(0);
        let check = |state, epoch, answer| {
            feed.shared_check(state, epoch, || {
                sent.fetch_add(1, Ordering::Relaxed);
                Ok(Some(answer))
            })
            .ok()
            .flatten()
        };
        // Down: every caller checks for itself.
        assert_eq!(check(feed.state(), 0, 1), Some(1));
        assert_eq!(check(feed.state(), 0, 2), Some(2));
        feed.restored();
        let up = feed.state();
        assert_eq!(check(up, 0, 3), Some(3));
        assert_eq!(check(up, 0, 4), Some(3), "the same state and epoch: shared");
        assert_eq!(check(up, 1, 5), Some(5), "another epoch: its own");
        feed.notify();
        assert_eq!(
            check(feed.state(), 1, 6),
            Some(6),
            "a notice since: its own"
        );
        assert_eq!(sent.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn a_failed_request_is_not_shared() {
        let feed = Feed::new();
        feed.restored();
        let state = feed.state();
        let failed = feed.shared_check(state, 0, || Err(StoreError::unavailable("gone")));
        assert!(failed.is_err());
        let again = feed.shared_check(state, 0, || Ok(Some(9)));
        assert_eq!(
            again.ok(),
            Some(Some(9)),
            "after a failure each caller sends its own"
        );
    }

    #[test]
    fn callers_at_one_state_wait_for_the_request_in_flight() {
        let feed = Arc::new(Feed::new());
        feed.restored();
        let state = feed.state();
        let sent = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let (feed, sent) = (Arc::clone(&feed), Arc::clone(&sent));
                std::thread::spawn(move || {
                    feed.shared_load(state, 0, || {
                        sent.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok(Durables::new(Default::default(), Some(7)))
                    })
                    .map(|durables| durables.stamp)
                    .ok()
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.join().ok().flatten(), Some(Some(7)));
        }
        // All eight started within the first one's 50 ms: one request (two when the machine
        // delayed a thread's start past it).
        assert!(sent.load(Ordering::Relaxed) <= 2, "{sent:?}");
    }

    #[test]
    fn a_large_load_is_kept_only_while_held() {
        let feed = Feed::new();
        feed.restored();
        let state = feed.state();
        let large = || {
            let entries = (0..3)
                .map(|i| (format!("k{i}"), vec![0u8; KEEP_LOAD_BYTES / 2]))
                .collect();
            Ok(Durables::new(entries, Some(1)))
        };
        let sent = AtomicUsize::new(0);
        let load = || {
            feed.shared_load(state, 0, || {
                sent.fetch_add(1, Ordering::Relaxed);
                large()
            })
            .unwrap()
        };
        let first = load();
        assert_eq!(
            Arc::strong_count(&first),
            1,
            "not kept: nobody waits, nothing holds"
        );
        drop(load());
        assert_eq!(sent.load(Ordering::Relaxed), 2);

        // Held (a keeper round): shared, then let go at the release.
        let shared = &feed.shared;
        shared.load.hold();
        let held = load();
        assert_eq!(Arc::strong_count(&held), 2, "kept while held");
        let again = load();
        assert!(Arc::ptr_eq(&held, &again));
        assert_eq!(sent.load(Ordering::Relaxed), 3);
        drop(again);
        shared.load.release();
        assert_eq!(Arc::strong_count(&held), 1, "let go at the release");

        // A small load is kept for dicts that come later.
        let small = feed
            .shared_load(state, 1, || Ok(Durables::new(Default::default(), Some(2))))
            .unwrap();
        assert_eq!(Arc::strong_count(&small), 2);
        let later = feed
            .shared_load(state, 1, || panic!("shared, not sent"))
            .unwrap();
        assert!(Arc::ptr_eq(&small, &later));
    }

    #[test]
    fn a_panicking_request_releases_its_waiters() {
        let feed = Arc::new(Feed::new());
        feed.restored();
        let state = feed.state();
        let panicking = {
            let feed = Arc::clone(&feed);
            std::thread::spawn(move || {
                let _ = feed.shared_check(state, 0, || {
                    std::thread::sleep(Duration::from_millis(50));
                    panic!("a store that panics");
                });
            })
        };
        std::thread::sleep(Duration::from_millis(10));
        let waited = feed.shared_check(state, 0, || Ok(Some(3)));
        assert!(panicking.join().is_err());
        assert_eq!(waited.ok(), Some(Some(3)));
    }
}
