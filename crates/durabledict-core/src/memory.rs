//! [`MemoryStore`] and [`MemoryStamp`]: an in-process store for tests, examples and
//! single-process use, with fault injection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::error::StoreError;
use crate::feed::Feed;
use crate::store::{Durables, SetDefault, Stamp, StampValue, Store, clock_seed};

const MISSING: StampValue = StampValue::MIN;

/// A stamp kept in process memory. Clones share the same counter.
///
/// [`lose`](MemoryStamp::lose) simulates a memcached restart or eviction; the next
/// [`bump`](Stamp::bump) re-creates the stamp past every value handed out before.
///
/// ```
/// use durabledict_core::{MemoryStamp, Stamp};
///
/// let stamp = MemoryStamp::new();
/// let before = stamp.bump()?;
/// stamp.lose();
/// assert_eq!(stamp.get()?, None);
/// assert!(stamp.bump()? > before);
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStamp {
    inner: Arc<StampCell>,
}

#[derive(Debug)]
struct StampCell {
    value: AtomicI64,
    /// The largest value ever handed out, so a re-created stamp never repeats one.
    high_water: AtomicI64,
}

impl Default for StampCell {
    fn default() -> Self {
        StampCell {
            value: AtomicI64::new(MISSING),
            high_water: AtomicI64::new(0),
        }
    }
}

impl MemoryStamp {
    /// A missing stamp.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the stamp, as a memcached restart would.
    pub fn lose(&self) {
        self.inner.value.store(MISSING, Ordering::SeqCst);
    }

    /// Sets the stamp to `value`, as another program writing the stamp key would.
    pub fn set(&self, value: StampValue) {
        self.inner.value.store(value, Ordering::SeqCst);
        self.inner.high_water.fetch_max(value, Ordering::SeqCst);
    }

    /// Forgets the stamp and every value handed out: the next one created is 1 again.
    fn forget_history(&self) {
        self.inner.value.store(MISSING, Ordering::SeqCst);
        self.inner.high_water.store(0, Ordering::SeqCst);
    }

    /// Creates the stamp when it is missing: 1 when no value was ever handed out (a new
    /// keyspace), otherwise a fresh seed. Never changes an existing stamp.
    fn create_if_missing(&self) {
        let seed = self.seed();
        let _ =
            self.inner
                .value
                .compare_exchange(MISSING, seed, Ordering::SeqCst, Ordering::SeqCst);
        self.inner.high_water.fetch_max(seed, Ordering::SeqCst);
    }

    fn seed(&self) -> StampValue {
        match self.inner.high_water.load(Ordering::SeqCst) {
            0 => 1,
            high => clock_seed().max(high + 1),
        }
    }
}

impl Stamp for MemoryStamp {
    fn get(&self) -> Result<Option<StampValue>, StoreError> {
        Ok(match self.inner.value.load(Ordering::SeqCst) {
            MISSING => None,
            v => Some(v),
        })
    }

    fn bump(&self) -> Result<StampValue, StoreError> {
        let cell = &self.inner;
        let mut current = cell.value.load(Ordering::SeqCst);
        loop {
            let next = if current == MISSING {
                self.seed()
            } else {
                current.checked_add(1).ok_or_else(|| {
                    StoreError::corrupt(format!("the stamp {current} cannot be incremented"))
                })?
            };
            match cell
                .value
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    cell.high_water.fetch_max(next, Ordering::SeqCst);
                    return Ok(next);
                }
                Err(seen) => current = seen,
            }
        }
    }

    fn init(&self) -> Result<(), StoreError> {
        self.create_if_missing();
        Ok(())
    }
}

/// A [`Store`] in process memory. Clones share the same data, so several dicts built on
/// clones of one `MemoryStore` behave like several processes sharing one Redis hash.
///
/// Writes bump the [`MemoryStamp`] under the same lock as the data, so a write and its bump
/// are atomic, and every optional operation is atomic. Fault injection makes it useful for
/// testing outage behaviour: [`fail_next`](MemoryStore::fail_next),
/// [`set_available`](MemoryStore::set_available), [`lose_stamp`](MemoryStore::lose_stamp).
///
/// ```
/// use durabledict_core::{DurableDict, MemoryStore, Raw, Error};
///
/// let store = MemoryStore::new();
/// let dict = DurableDict::<String>::builder(store.clone(), Raw).build()?;
/// store.set_available(false);
/// assert!(matches!(dict.insert("k", "v".into()), Err(Error::Store { .. })));
/// store.set_available(true);
/// dict.insert("k", "v".into())?;
/// # Ok::<(), durabledict_core::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    stamp: MemoryStamp,
    fail_next: AtomicUsize,
    down: AtomicBool,
    max_value_len: Option<usize>,
    /// Bumped by every injected fault and by [`MemoryStore::restart`] (see [`Store::epoch`]).
    epoch: AtomicU64,
    /// The change feed, for a store made by [`MemoryStore::with_feed`].
    feed: Option<Arc<Feed>>,
}

/// The error a [`MemoryStore`] returns while a fault is injected.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: memory store unavailable")]
pub struct InjectedFault;

impl MemoryStore {
    /// An empty store with a missing stamp.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store that refuses encoded values longer than `max` bytes, like a backend
    /// with a value limit.
    pub fn with_max_value_len(max: usize) -> Self {
        MemoryStore {
            inner: Arc::new(MemoryInner {
                max_value_len: Some(max),
                ..MemoryInner::default()
            }),
        }
    }

    /// An empty store with a change feed ([`Store::feed`]), as a store that pushes change
    /// notices (Redis client tracking, PostgreSQL `LISTEN`) has: every write through the store
    /// sends a notice. [`cut_feed`](Self::cut_feed) and [`restore_feed`](Self::restore_feed)
    /// simulate losing it; [`write_unstamped`](Self::write_unstamped) and writes to the
    /// [`stamp`](Self::stamp) send none.
    ///
    /// ```
    /// use durabledict_core::{DurableDict, MemoryStore, Raw, SyncPolicy};
    ///
    /// let store = MemoryStore::with_feed();
    /// let dict = DurableDict::<String>::builder(store.clone(), Raw)
    ///     .policy(SyncPolicy::Watch)
    ///     .build()?;
    /// let other = DurableDict::<String>::builder(store, Raw).build()?;
    /// other.insert("k", "v".to_string())?;
    /// assert_eq!(dict.get("k")?.as_deref().map(String::as_str), Some("v"));
    /// # Ok::<(), durabledict_core::Error>(())
    /// ```
    pub fn with_feed() -> Self {
        let feed = Feed::new();
        feed.restored();
        MemoryStore {
            inner: Arc::new(MemoryInner {
                feed: Some(Arc::new(feed)),
                ..MemoryInner::default()
            }),
        }
    }

    /// Loses the change feed (as a dropped connection does): dicts under
    /// [`SyncPolicy::Watch`](crate::SyncPolicy::Watch) check the stamp on every read until
    /// [`restore_feed`](Self::restore_feed). No effect on a store without a feed.
    pub fn cut_feed(&self) {
        if let Some(feed) = &self.inner.feed {
            feed.lost();
        }
    }

    /// Brings the change feed back.
    pub fn restore_feed(&self) {
        if let Some(feed) = &self.inner.feed {
            feed.restored();
        }
    }

    /// Sends a change notice on the feed, as the server does for a change made by anyone.
    pub fn notify(&self) {
        if let Some(feed) = &self.inner.feed {
            feed.notify();
        }
    }

    /// The store's stamp, shared with every clone.
    pub fn stamp(&self) -> &MemoryStamp {
        &self.inner.stamp
    }

    /// Makes the next `n` operations fail with [`StoreErrorKind::Unavailable`](crate::StoreErrorKind::Unavailable).
    pub fn fail_next(&self, n: usize) {
        self.inner.fail_next.store(n, Ordering::SeqCst);
    }

    /// Takes the store down (every operation fails as unavailable) or brings it back.
    pub fn set_available(&self, available: bool) {
        self.inner.down.store(!available, Ordering::SeqCst);
    }

    /// Forgets the stamp, as a memcached restart would.
    pub fn lose_stamp(&self) {
        self.inner.stamp.lose();
    }

    /// Simulates a server restarted without its data (Redis without persistence): every
    /// entry and the stamp are gone, the stamp counts from 1 again as if it had never been
    /// handed out, and the [`epoch`](Store::epoch) changes, as a client that reconnects to a
    /// restarted server sees.
    pub fn restart(&self) {
        let mut entries = self.entries();
        entries.clear();
        self.inner.stamp.forget_history();
        self.inner.epoch.fetch_add(1, Ordering::SeqCst);
        // The feed broke with the connection, and came back subscribed to the new server.
        self.cut_feed();
        self.restore_feed();
    }

    /// Writes an entry without bumping the stamp: another program writing behind the
    /// dicts' backs.
    pub fn write_unstamped(&self, key: &str, value: &[u8]) {
        self.entries().insert(key.to_owned(), value.to_vec());
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        self.inner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Consumes an injected fault, if one is pending. A fault changes the epoch, as a failed
    /// request to a real server does.
    fn fault(&self) -> Result<(), StoreError> {
        let failed = self.inner.down.load(Ordering::SeqCst)
            || self
                .inner
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if failed {
            self.inner.epoch.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::unavailable(InjectedFault));
        }
        Ok(())
    }

    /// Sends a notice for a write that bumped the stamp (the caller still holds the entries'
    /// lock, so the notice follows the write).
    fn notified(&self, bumped: Result<StampValue, StoreError>) -> Result<StampValue, StoreError> {
        if bumped.is_ok() {
            self.notify();
        }
        bumped
    }

    /// Locks the entries after checking for injected faults.
    fn open(&self) -> Result<MutexGuard<'_, HashMap<String, Vec<u8>>>, StoreError> {
        self.fault()?;
        Ok(self.entries())
    }
}

impl Store for MemoryStore {
    fn init(&self) -> Result<(), StoreError> {
        let _entries = self.open()?;
        self.inner.stamp.init()
    }

    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        let mut entries = self.open()?;
        entries.insert(key.to_owned(), value.to_vec());
        self.notified(self.inner.stamp.bump())
    }

    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        let mut entries = self.open()?;
        match entries.remove(key) {
            Some(_) => self.notified(self.inner.stamp.bump()).map(Some),
            None => Ok(None),
        }
    }

    fn durables(&self) -> Result<Durables, StoreError> {
        let entries = self.open()?;
        Ok(Durables::new(entries.clone(), self.inner.stamp.get()?))
    }

    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.fault()?;
        self.inner.stamp.get()
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.open()?.get(key).cloned())
    }

    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        let mut entries = self.open()?;
        match entries.remove(key) {
            Some(value) => Ok(Some((value, self.notified(self.inner.stamp.bump())?))),
            None => Ok(None),
        }
    }

    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        let mut entries = self.open()?;
        if let Some(existing) = entries.get(key) {
            return Ok(SetDefault::Existing(existing.clone()));
        }
        entries.insert(key.to_owned(), value.to_vec());
        self.notified(self.inner.stamp.bump())
            .map(SetDefault::Inserted)
    }

    fn persist_many(&self, batch: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        let mut entries = self.open()?;
        if batch.is_empty() {
            return Ok(None);
        }
        for (key, value) in batch {
            entries.insert((*key).to_owned(), value.to_vec());
        }
        self.notified(self.inner.stamp.bump()).map(Some)
    }

    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        let mut entries = self.open()?;
        if entries.is_empty() {
            return Ok(None);
        }
        entries.clear();
        self.notified(self.inner.stamp.bump()).map(Some)
    }

    fn max_value_len(&self) -> Option<usize> {
        self.inner.max_value_len
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire)
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        self.inner.feed.clone()
    }

    /// Clones read the same entries and stamp.
    fn feed_shares_reads(&self) -> bool {
        true
    }
}
