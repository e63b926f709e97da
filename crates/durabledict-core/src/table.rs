//! The cache behind a dict: an immutable base map plus a small overlay of own writes.
//!
//! Why not one persistent map swapped whole on every write: copying a hash trie's path costs
//! O(fanout × depth) reference-count updates, which made an own write with 10,000 keys about
//! 2.9× one with 10 (docs/PERFORMANCE.md); and why not one atomically swappable cell per key: loading a cell doubled
//! the cost of a read (both measured, see docs/PERFORMANCE.md). Here a read of a key that no
//! own write touched since the last load is one lookup in a plain hash map; an own write goes
//! to a persistent overlay map, small because it is folded into a new base once it grows past
//! a fraction of the base (O(1) amortized per write), and at every reload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use crate::feed::FeedState;
use crate::store::StampValue;

/// Keys are chosen by operators, not attackers, so a fast seeded hasher is enough.
pub(crate) type Hasher = foldhash::quality::RandomState;

/// Own writes since the base was built: `None` marks a removal.
type Overlay<V> =
    imbl::GenericHashMap<Arc<str>, Option<Arc<V>>, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

const MISSING: StampValue = StampValue::MIN;

/// No feed state confirmed yet: odd, so no healthy state equals it.
const NO_FEED_SEEN: u64 = 1;

/// An error shared by every read that meets it (a decode error is reported again at each
/// `get` of its key, not consumed).
#[derive(Debug, Clone)]
pub(crate) struct SharedError(pub(crate) Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What a load found in the store that it could not take in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Damaged {
    /// Keys whose stored value did not decode, with the encoding's error.
    pub(crate) undecodable: HashMap<Arc<str>, SharedError, Hasher>,
    /// Names that are not keys (see `Durables::unreadable`), with why.
    pub(crate) unreadable: Vec<(Vec<u8>, String)>,
}

impl Damaged {
    fn is_empty(&self) -> bool {
        self.undecodable.is_empty() && self.unreadable.is_empty()
    }
}

/// A base entry; `overridden` once the overlay holds the key's current state.
struct BaseEntry<V> {
    value: Arc<V>,
    overridden: AtomicBool,
}

/// An immutable, consistent view of a dict's contents at one stamp.
///
/// Readers hold snapshots without blocking writers; a snapshot never changes, so several keys
/// read from one snapshot are consistent with each other.
///
/// ```
/// use durabledict_core::{DurableDict, MemoryStore, Raw};
///
/// let dict = DurableDict::<String>::builder(MemoryStore::new(), Raw).build()?;
/// dict.update([("a", "1".to_string()), ("b", "2".to_string())])?;
/// let snap = dict.snapshot()?;
/// dict.remove("a")?;
/// assert_eq!(snap.get("a").map(|v| v.as_str()), Some("1"));
/// assert_eq!(snap.len(), 2);
/// # Ok::<(), durabledict_core::Error>(())
/// ```
pub struct Snapshot<V> {
    map: HashMap<Arc<str>, Arc<V>, Hasher>,
    stamp: Option<StampValue>,
}

impl<V> Snapshot<V> {
    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<V>> {
        self.map.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The stamp these contents were synced at (`None`: the stamp was missing).
    pub fn stamp(&self) -> Option<StampValue> {
        self.stamp
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(|k| &**k)
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Arc<V>> {
        self.map.values()
    }

    /// The entries, in no particular order.
    pub fn iter(&self) -> Iter<'_, V> {
        Iter(self.map.iter())
    }
}

/// Iterates a snapshot's entries, in no particular order:
///
/// ```
/// use durabledict_core::{DurableDict, MemoryStore, Raw};
///
/// let dict = DurableDict::<String>::builder(MemoryStore::new(), Raw).build()?;
/// dict.insert("a", "1".to_string())?;
/// for (key, value) in &*dict.snapshot()? {
///     assert_eq!((key, value.as_str()), ("a", "1"));
/// }
/// # Ok::<(), durabledict_core::Error>(())
/// ```
impl<'a, V> IntoIterator for &'a Snapshot<V> {
    type Item = (&'a str, &'a Arc<V>);
    type IntoIter = Iter<'a, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The entries of a [`Snapshot`], in no particular order; made by [`Snapshot::iter`].
#[derive(Debug)]
pub struct Iter<'a, V>(std::collections::hash_map::Iter<'a, Arc<str>, Arc<V>>);

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a str, &'a Arc<V>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (&**k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<V: std::fmt::Debug> std::fmt::Debug for Snapshot<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("stamp", &self.stamp)
            .field("entries", &self.map)
            .finish()
    }
}

/// The cache. Mutated only under the dict's update lock; read from any thread.
pub(crate) struct Table<V> {
    base: HashMap<Arc<str>, BaseEntry<V>, Hasher>,
    overlay: ArcSwap<Overlay<V>>,
    /// Whether the overlay holds anything, so reads of keys absent from the base skip it.
    has_overlay: AtomicBool,
    stamp: AtomicI64,
    /// Whether the stamp is present (a missing stamp is `None`, any `i64` a present one).
    has_stamp: AtomicBool,
    /// The store's [`epoch`](crate::Store::epoch) read before the entries were loaded.
    epoch: u64,
    /// What the store held but this dict could not take in, each poisoning only itself:
    /// values that did not decode (a key here is overridden by an own write to it, see
    /// [`Table::poison`]) and names that are not keys.
    damaged: Arc<Damaged>,
    /// The latest healthy feed state a stamp check or load confirmed these contents at (raw
    /// [`FeedState`]); odd, so it matches no healthy state, until one does.
    feed_seen: AtomicU64,
    live: AtomicUsize,
    /// The materialized snapshot of the current contents, dropped by every change.
    snapshot: Mutex<Option<Arc<Snapshot<V>>>>,
}

impl<V> Table<V> {
    /// A table holding `entries`, synced at `stamp` in the store's `epoch`.
    pub(crate) fn new(
        entries: impl IntoIterator<Item = (Arc<str>, Arc<V>)>,
        stamp: Option<StampValue>,
        epoch: u64,
        damaged: Arc<Damaged>,
    ) -> Self {
        let base: HashMap<Arc<str>, BaseEntry<V>, Hasher> = entries
            .into_iter()
            .map(|(key, value)| {
                let entry = BaseEntry {
                    value,
                    overridden: AtomicBool::new(false),
                };
                (key, entry)
            })
            .collect();
        Table {
            live: AtomicUsize::new(base.len()),
            base,
            overlay: ArcSwap::from_pointee(Overlay::default()),
            has_overlay: AtomicBool::new(false),
            stamp: AtomicI64::new(stamp.unwrap_or(MISSING)),
            has_stamp: AtomicBool::new(stamp.is_some()),
            epoch,
            damaged,
            feed_seen: AtomicU64::new(NO_FEED_SEEN),
            snapshot: Mutex::new(None),
        }
    }

    #[inline]
    pub(crate) fn stamp(&self) -> Option<StampValue> {
        let stamp = self.stamp.load(Ordering::Acquire);
        self.has_stamp.load(Ordering::Acquire).then_some(stamp)
    }

    /// The decode error of `key` when the store holds a value for it that did not decode and
    /// no own write replaced it since.
    #[cold]
    pub(crate) fn poison(&self, key: &str) -> Option<&SharedError> {
        let error = self.damaged.undecodable.get(key)?;
        (!(self.has_overlay.load(Ordering::Acquire) && self.overlaid(key).is_some()))
            .then_some(error)
    }

    /// Whether anything the store holds is left out of this table.
    #[inline(always)]
    pub(crate) fn is_damaged(&self) -> bool {
        !self.damaged.is_empty()
    }

    /// The undecodable keys (not replaced by an own write since) and their errors, sorted.
    pub(crate) fn undecodable(&self) -> Vec<(String, String)> {
        let mut undecodable: Vec<(String, String)> = self
            .damaged
            .undecodable
            .keys()
            .filter_map(|key| {
                // The whole chain: the decoder's message may leave the detail to its source.
                let error = self.poison(key)?;
                Some((key.to_string(), crate::Report(error).to_string()))
            })
            .collect();
        undecodable.sort();
        undecodable
    }

    /// The names that are not keys, and why.
    pub(crate) fn unreadable(&self) -> Vec<(Vec<u8>, String)> {
        self.damaged.unreadable.clone()
    }

    /// Whether a read at feed state `state` may answer from this table with no I/O: the feed
    /// is up and nothing arrived since these contents were last confirmed.
    #[inline(always)]
    pub(crate) fn fed(&self, state: FeedState) -> bool {
        state.is_up() && self.feed_seen.load(Ordering::Acquire) == state.raw()
    }

    /// Whether these contents were confirmed at the last healthy state before the feed was
    /// lost into `now`: nothing arrived between that confirmation and the loss.
    pub(crate) fn fed_until(&self, now: FeedState) -> bool {
        !now.is_up() && self.feed_seen.load(Ordering::Acquire).wrapping_add(3) == now.raw()
    }

    /// Records that these contents were confirmed current at feed state `state` (read before
    /// the stamp check or load that confirmed them). A state of a feed that was down confirms
    /// nothing.
    pub(crate) fn saw_feed(&self, state: FeedState) {
        if state.is_up() {
            // States only grow: a slow confirmation never moves it back.
            self.feed_seen.fetch_max(state.raw(), Ordering::AcqRel);
        }
    }

    /// The store's epoch these contents were loaded in.
    #[inline]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    pub(crate) fn set_stamp(&self, stamp: StampValue) {
        self.stamp.store(stamp, Ordering::Release);
        self.has_stamp.store(true, Ordering::Release);
        self.changed();
    }

    #[inline(always)]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<V>> {
        match self.base.get(key) {
            Some(entry) if !entry.overridden.load(Ordering::Acquire) => {
                Some(Arc::clone(&entry.value))
            }
            Some(_) => self.overlaid(key).flatten(),
            None if self.has_overlay.load(Ordering::Acquire) => self.overlaid(key).flatten(),
            None => None,
        }
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        match self.base.get(key) {
            Some(entry) if !entry.overridden.load(Ordering::Acquire) => true,
            Some(_) => self.overlaid(key).is_some_and(|v| v.is_some()),
            None if self.has_overlay.load(Ordering::Acquire) => {
                self.overlaid(key).is_some_and(|v| v.is_some())
            }
            None => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// The overlay's state for `key`: `None` when it has none, `Some(None)` when removed.
    fn overlaid(&self, key: &str) -> Option<Option<Arc<V>>> {
        self.overlay.load().get(key).cloned()
    }

    /// Sets `key` to `value` (`None` removes it). The caller holds the update lock.
    pub(crate) fn set(&self, key: &str, value: Option<Arc<V>>) {
        let was_present = self.contains_key(key);
        // A removal of an absent key changes nothing, unless it removes an undecodable value.
        if !was_present && value.is_none() && !self.damaged.undecodable.contains_key(key) {
            return;
        }
        let is_present = value.is_some();
        let mut overlay = (**self.overlay.load()).clone();
        overlay.insert(Arc::from(key), value);
        // Publish the overlay before the flags that send readers to it.
        self.overlay.store(Arc::new(overlay));
        self.has_overlay.store(true, Ordering::Release);
        if let Some(entry) = self.base.get(key) {
            entry.overridden.store(true, Ordering::Release);
        }
        match (was_present, is_present) {
            (false, true) => {
                self.live.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.live.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        self.changed();
    }

    /// Whether the overlay has grown enough that folding it into a new base, O(n), costs O(1)
    /// per write amortized.
    pub(crate) fn wants_rebuild(&self) -> bool {
        self.overlay.load().len() > 32 + self.base.len() / 8
    }

    /// The current contents as an immutable snapshot, materialized once per change. The caller
    /// holds the update lock, so no own write interleaves.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot<V>> {
        let mut cached = self.snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(snapshot) = &*cached {
            return Arc::clone(snapshot);
        }
        let overlay = self.overlay.load();
        let mut map: HashMap<Arc<str>, Arc<V>, Hasher> =
            HashMap::with_capacity_and_hasher(self.len(), Hasher::default());
        map.extend(
            self.base
                .iter()
                .filter(|(_, entry)| !entry.overridden.load(Ordering::Acquire))
                .map(|(key, entry)| (Arc::clone(key), Arc::clone(&entry.value))),
        );
        map.extend(
            overlay
                .iter()
                .filter_map(|(key, value)| Some((Arc::clone(key), Arc::clone(value.as_ref()?)))),
        );
        let snapshot = Arc::new(Snapshot {
            map,
            stamp: self.stamp(),
        });
        *cached = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// The materialized snapshot, when one is current.
    pub(crate) fn cached_snapshot(&self) -> Option<Arc<Snapshot<V>>> {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A new table with the same contents and stamp and an empty overlay: one pass over the
    /// base (a base entry the overlay holds is marked `overridden`, so no overlay lookup per
    /// entry) into a map sized once. The caller holds the update lock.
    pub(crate) fn rebuilt(&self) -> Self {
        let overlay = self.overlay.load();
        // An own write to an undecodable key healed it: the new base has no overlay to say so.
        let damaged = if self.damaged.is_empty() {
            Arc::clone(&self.damaged)
        } else {
            let mut damaged = (*self.damaged).clone();
            damaged
                .undecodable
                .retain(|key, _| !overlay.contains_key(key));
            Arc::new(damaged)
        };
        let mut base: HashMap<Arc<str>, BaseEntry<V>, Hasher> =
            HashMap::with_capacity_and_hasher(self.len(), Hasher::default());
        let entry = |value: &Arc<V>| BaseEntry {
            value: Arc::clone(value),
            overridden: AtomicBool::new(false),
        };
        base.extend(
            self.base
                .iter()
                .filter(|(_, e)| !e.overridden.load(Ordering::Acquire))
                .map(|(key, e)| (Arc::clone(key), entry(&e.value))),
        );
        base.extend(
            overlay
                .iter()
                .filter_map(|(key, value)| Some((Arc::clone(key), entry(value.as_ref()?)))),
        );
        Table {
            live: AtomicUsize::new(base.len()),
            base,
            overlay: ArcSwap::from_pointee(Overlay::default()),
            has_overlay: AtomicBool::new(false),
            stamp: AtomicI64::new(self.stamp.load(Ordering::Acquire)),
            has_stamp: AtomicBool::new(self.has_stamp.load(Ordering::Acquire)),
            epoch: self.epoch,
            damaged,
            feed_seen: AtomicU64::new(self.feed_seen.load(Ordering::Acquire)),
            snapshot: Mutex::new(None),
        }
    }

    fn changed(&self) {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
