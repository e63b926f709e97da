//! The [`Store`] and [`Stamp`] traits that backends implement.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::StoreError;
use crate::feed::Feed;

/// The value of a `last_updated` stamp: a counter that changes whenever the store changes.
///
/// Only equality matters: a dict reloads when the stamp differs from the one it last synced,
/// so a stamp that goes backwards (a restarted memcached, a deleted Redis key) is a change too.
pub type StampValue = i64;

/// Everything a store holds, read together with the stamp it was read at.
///
/// The stamp must be read **before or atomically with** the entries, never after: a write that
/// lands between the two reads is then seen by the next stamp check instead of being lost.
///
/// Built with [`Durables::new`] (the struct may grow fields):
///
/// ```
/// use std::collections::HashMap;
/// use durabledict_core::Durables;
///
/// let durables = Durables::new(HashMap::from([("k".to_string(), b"v".to_vec())]), Some(7));
/// assert_eq!(durables.stamp, Some(7));
/// assert!(durables.unreadable.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Durables {
    /// Every key and its encoded value.
    pub entries: HashMap<String, Vec<u8>>,
    /// The stamp the entries were read at; `None` when the stamp is missing.
    pub stamp: Option<StampValue>,
    /// Entries the store holds under a name that is not a valid key here (not UTF-8, as a
    /// Python program can write to a Redis hash): the raw name and why it was left out of
    /// [`entries`](Self::entries). One such entry poisons only itself: the dict loads every
    /// other key and lists these in its [`Status`](crate::Status).
    pub unreadable: Vec<(Vec<u8>, String)>,
}

impl Durables {
    /// Entries read at `stamp`, with nothing unreadable.
    pub fn new(entries: HashMap<String, Vec<u8>>, stamp: Option<StampValue>) -> Self {
        Durables {
            entries,
            stamp,
            unreadable: Vec::new(),
        }
    }
}

/// What [`Store::setdefault`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetDefault {
    /// The key was present; this is its stored value and nothing was written.
    Existing(Vec<u8>),
    /// The key was absent; the value was written and the stamp bumped to this value.
    Inserted(StampValue),
}

/// A durable, shared key-value store holding encoded values, with a `last_updated` stamp.
///
/// Implement the four required methods; the others have correct but possibly non-atomic or
/// slower default bodies that a backend overrides when it can do better (one transaction, one
/// round trip). Every write returns the stamp **after** the write: when it is exactly one past
/// the stamp the dict last synced, the dict knows nobody else wrote and applies its own write
/// in O(1) instead of reloading.
///
/// A store that cannot bump a stamp atomically with its writes takes any [`Stamp`] as an
/// ingredient and bumps it after each successful write.
///
/// New methods are only ever added with a default body, so implementations do not break.
///
/// # Example
///
/// ```
/// use durabledict_core::{MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// let s1 = store.persist("flag", b"on")?;
/// let s2 = store.persist("flag", b"off")?;
/// assert_eq!(s2, s1 + 1);
/// assert_eq!(store.durables()?.entries["flag"], b"off");
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
pub trait Store: Send + Sync + fmt::Debug {
    /// Writes `value` at `key` and bumps the stamp, atomically where the store can.
    /// Returns the stamp after the write.
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError>;

    /// Removes `key`. Returns the stamp after the removal, or `None` when the key was absent
    /// (then nothing was written and the stamp was not bumped).
    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError>;

    /// Reads every entry and the stamp, the stamp before or atomically with the entries.
    fn durables(&self) -> Result<Durables, StoreError>;

    /// Reads the stamp; `None` when it is missing. This runs before every read under the
    /// `Always` policy, so it should be one cheap round trip (or free).
    fn last_updated(&self) -> Result<Option<StampValue>, StoreError>;

    /// Prepares the store for a new dict: creates what is missing (a table, the keyspace, the
    /// stamp). Called once by [`Builder::build`](crate::Builder::build) before the first load.
    /// It must never bump an existing stamp (a restarting fleet must not make every other
    /// instance reload); a missing stamp is created, so that `last_updated` is set right after
    /// a dict is built. The default does nothing.
    fn init(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Reads one entry. The default reads everything; override it.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.durables()?.entries.remove(key))
    }

    /// Removes `key` and returns its value with the stamp after the removal; `None` when the
    /// key was absent (nothing written, no bump). The default is a [`get`](Store::get) then a
    /// [`depersist`](Store::depersist): not atomic; override it where the store can.
    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        let Some(value) = self.get(key)? else {
            return Ok(None);
        };
        Ok(self.depersist(key)?.map(|stamp| (value, stamp)))
    }

    /// Writes `value` at `key` only when `key` is absent, bumping the stamp only then.
    /// The default is a [`get`](Store::get) then a [`persist`](Store::persist): not atomic;
    /// override it where the store can.
    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        match self.get(key)? {
            Some(existing) => Ok(SetDefault::Existing(existing)),
            None => self.persist(key, value).map(SetDefault::Inserted),
        }
    }

    /// Writes every entry as one batch, with one stamp bump where the store can, and returns
    /// the stamp after it. An empty batch writes nothing and returns `None`. The default
    /// persists one entry at a time (one bump each); override it.
    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        let mut stamp = None;
        for (key, value) in entries {
            stamp = Some(self.persist(key, value)?);
        }
        Ok(stamp)
    }

    /// Removes every entry; returns the stamp after it, or `None` when the store was already
    /// empty. The default removes one key at a time; override it.
    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        let mut stamp = None;
        for key in self.durables()?.entries.into_keys() {
            if let Some(s) = self.depersist(&key)? {
                stamp = Some(s);
            }
        }
        Ok(stamp)
    }

    /// Checks that the store can hold `key`; `Err` carries the reason. Called before anything
    /// is written. The default accepts every UTF-8 key.
    fn validate_key(&self, key: &str) -> Result<(), String> {
        let _ = key;
        Ok(())
    }

    /// The largest encoded value the store holds, in bytes; `None` when unbounded.
    fn max_value_len(&self) -> Option<usize> {
        None
    }

    /// A counter that changes whenever the store may have lost continuity with what it served
    /// before, so that an unchanged stamp no longer proves unchanged contents: a request that
    /// failed (the server may be restarting), a new connection to a server whose identity
    /// changed (a Redis `run_id`), a replaced session, a database file replaced on disk.
    ///
    /// Why the stamp alone is not enough: a server restarted without its data starts its
    /// counter again, and writers that count from nothing (Python durabledict's `INCR`) can
    /// bring it back to exactly the number a dict last synced at, with other contents. A dict
    /// reads the epoch before every load and after every stamp check, and treats a changed
    /// epoch like a changed stamp: it reloads once. It also never takes its own write as the
    /// only change (the O(1) path) across a changed epoch.
    ///
    /// Only changes matter, and it must be cheap (one atomic load): it is read on every stamp
    /// check. A stamp from a separate [`Stamp`] has an epoch of its own; a store using one adds
    /// it in. The default, for stores that cannot lose continuity (one process's memory), is
    /// always 0.
    fn epoch(&self) -> u64 {
        0
    }

    /// The store's change feed, when it can push change notices (Redis client tracking,
    /// PostgreSQL `LISTEN`, ZooKeeper watches); `None`, the default, when it cannot. A dict
    /// under [`SyncPolicy::Watch`](crate::SyncPolicy::Watch) asks once, when it is built, and
    /// then reads with no I/O while the feed is up. The store may start its subscription on
    /// the first call; it hands the same [`Feed`] to every caller.
    fn feed(&self) -> Option<Arc<Feed>> {
        None
    }

    /// Whether a dict on this store may take, instead of making its own, a stamp check or a
    /// load that another dict on the same [`feed`](Store::feed) made after the same notice,
    /// and have its subscribers served by the feed's one keeper thread. `true` only when the
    /// store keeps two promises:
    /// - every store that hands out that feed reads through
    ///   [`last_updated`](Store::last_updated) and [`durables`](Store::durables) exactly what
    ///   this one reads (one keyspace of one store);
    /// - every write made through it in this process calls [`Feed::notify`] before it
    ///   returns, so that a read after a write of this process never takes a result requested
    ///   before it (another process's write is heard when its notice arrives, as
    ///   [`SyncPolicy::Watch`](crate::SyncPolicy::Watch) promises).
    ///
    /// `false`, the default, is right for a wrapper that changes
    /// what it reads (a view of some of the keys, a decrypting layer) while forwarding the
    /// feed of the store it wraps: its dicts make their own requests, and a notice of the
    /// wrapped store still reaches them.
    fn feed_shares_reads(&self) -> bool {
        false
    }

    /// The keyspace this store handle serves, for a dict's `tracing` events and `metrics`
    /// labels; `None`, the default, when it has no name.
    fn keyspace(&self) -> Option<&str> {
        None
    }
}

/// A shared `last_updated` counter kept apart from the values (memcached, a Redis key, an SQL
/// row, memory), for stores that have no stamp of their own.
///
/// # Example
///
/// ```
/// use durabledict_core::{MemoryStamp, Stamp};
///
/// let stamp = MemoryStamp::new();
/// let first = stamp.bump()?;
/// assert_eq!(stamp.get()?, Some(first));
/// assert_eq!(stamp.bump()?, first + 1);
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
pub trait Stamp: Send + Sync + fmt::Debug {
    /// Reads the stamp; `None` when it is missing (never set, evicted, lost in a restart).
    fn get(&self) -> Result<Option<StampValue>, StoreError>;

    /// Increments the stamp and returns the new value. A missing stamp is re-created without
    /// races, seeded so that it cannot collide with a value handed out before (for example
    /// from the clock).
    fn bump(&self) -> Result<StampValue, StoreError>;

    /// Creates the stamp when it is missing, never changing an existing one; called when a
    /// store using this stamp is prepared for a new dict. The default reads, then bumps when
    /// missing: two stores starting at once may both bump, which costs other dicts one extra
    /// reload. Override it with an atomic create-if-missing (memcached `add`, Redis `SETNX`).
    fn init(&self) -> Result<(), StoreError> {
        if self.get()?.is_none() {
            self.bump()?;
        }
        Ok(())
    }

    /// Changes whenever this stamp may have lost continuity (a failed request, a new
    /// connection to a restarted server); see [`Store::epoch`]. The default is always 0.
    fn epoch(&self) -> u64 {
        0
    }
}

macro_rules! forward_store {
    ($($ptr:ident)::+) => {
impl<T: Store + ?Sized> Store for $($ptr)::+<T> {
    fn init(&self) -> Result<(), StoreError> {
        (**self).init()
    }
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        (**self).persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        (**self).depersist(key)
    }
    fn durables(&self) -> Result<Durables, StoreError> {
        (**self).durables()
    }
    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        (**self).last_updated()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key)
    }
    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        (**self).pop(key)
    }
    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        (**self).setdefault(key, value)
    }
    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        (**self).persist_many(entries)
    }
    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        (**self).clear()
    }
    fn validate_key(&self, key: &str) -> Result<(), String> {
        (**self).validate_key(key)
    }
    fn max_value_len(&self) -> Option<usize> {
        (**self).max_value_len()
    }
    fn epoch(&self) -> u64 {
        (**self).epoch()
    }
    fn feed(&self) -> Option<std::sync::Arc<Feed>> {
        (**self).feed()
    }
    fn feed_shares_reads(&self) -> bool {
        (**self).feed_shares_reads()
    }
    fn keyspace(&self) -> Option<&str> {
        (**self).keyspace()
    }
}
    };
}

forward_store!(std::sync::Arc);
forward_store!(Box);

impl<T: Stamp + ?Sized> Stamp for std::sync::Arc<T> {
    fn get(&self) -> Result<Option<StampValue>, StoreError> {
        (**self).get()
    }
    fn bump(&self) -> Result<StampValue, StoreError> {
        (**self).bump()
    }
    fn init(&self) -> Result<(), StoreError> {
        (**self).init()
    }
    fn epoch(&self) -> u64 {
        (**self).epoch()
    }
}

impl<T: Stamp + ?Sized> Stamp for Box<T> {
    fn get(&self) -> Result<Option<StampValue>, StoreError> {
        (**self).get()
    }
    fn bump(&self) -> Result<StampValue, StoreError> {
        (**self).bump()
    }
    fn init(&self) -> Result<(), StoreError> {
        (**self).init()
    }
    fn epoch(&self) -> u64 {
        (**self).epoch()
    }
}

/// Seeds a re-created stamp from the clock (microseconds since the Unix epoch), so it is larger
/// than any counter value handed out before in practice, and distinct from the last one.
pub fn clock_seed() -> StampValue {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    StampValue::try_from(micros).unwrap_or(StampValue::MAX / 2)
}
