//! [`DurableDict`]: the cached dictionary, its [`Builder`], [`Snapshot`] and [`Status`].

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Guard};
use tracing::field;

use crate::encoding::Encoding;
use crate::error::{Error, Op, Report, Result, StoreError, StoreErrorKind};
use crate::feed::{Feed, FeedState, Kept, Round};
use crate::listen::{Change, Subscriber, Subscription};
use crate::observe::{DEFAULT_SLOW_RELOAD, Observer, TARGET};
use crate::policy::SyncPolicy;
use crate::store::{SetDefault, StampValue, Store};
use crate::table::{Damaged, SharedError, Snapshot, Table};

/// What a dict knows about its own health: when it last synced and the last error it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// The stamp the cached contents were synced at.
    pub stamp: Option<StampValue>,
    /// When the cache was last confirmed current: the last reload, own write, or recorded stamp
    /// check. Stamp checks are recorded under [`SyncPolicy::AtMostEvery`], by
    /// [`DurableDict::sync`], and when serving stale data is enabled; under a plain `Always`
    /// policy the per-read checks are not timestamped, to keep reads free of shared writes.
    pub last_sync: SystemTime,
    /// How many times the whole store was loaded (the first load included).
    pub reloads: u64,
    /// The last error a load, check or write met (a store error, or a stored value that did
    /// not decode), when it happened, and its message.
    pub last_error: Option<(SystemTime, String)>,
    /// Keys the store holds whose value did not decode, with the encoding's error, sorted by
    /// key. Each poisons only itself: [`get`](DurableDict::get) of one returns
    /// [`Error::Decode`]; `contains_key`, `len`, `keys`, `iter` and `snapshot` leave them out.
    /// An own write or removal of the key, or a reload after another program rewrote it,
    /// heals it.
    pub undecodable: Vec<(String, String)>,
    /// The state of the store's change feed under [`SyncPolicy::Watch`].
    pub feed: FeedHealth,
    /// Whether reads are being served from a cache the store could not confirm
    /// (`serve_stale_for`): set by a read served stale, cleared by the next confirmation.
    pub serving_stale: bool,
    /// The last store failure: when, in which operation, of which kind, and its message.
    pub last_failure: Option<Failure>,
    /// Entries the store holds under a name that is not a key (see
    /// [`Durables::unreadable`](crate::Durables::unreadable)): the raw name and why. Left out of
    /// the dict; address them through the store.
    pub unreadable: Vec<(Vec<u8>, String)>,
}

/// The state of a dict's change feed, for a readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedHealth {
    /// No feed: the policy is not [`SyncPolicy::Watch`], or the store cannot push; reads
    /// follow the policy.
    None,
    /// The feed is up: reads answer locally.
    Healthy,
    /// The feed is down: every read checks the stamp until it is back.
    Polling,
}

/// A store failure, as [`Status::last_failure`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// When it happened.
    pub at: SystemTime,
    /// The dict operation it happened in.
    pub op: Op,
    /// What kind of failure.
    pub kind: StoreErrorKind,
    /// The error's message.
    pub message: String,
}

/// A dictionary whose values live in a durable shared [`Store`] and are cached in process.
///
/// Reads come from an in-process table that a reload replaces atomically and own writes
/// extend through a small overlay, so readers never lock (docs/architecture.md). Before a
/// read the [`SyncPolicy`] decides whether to check the store's stamp; when it differs from the
/// synced one, exactly one thread reloads while the others wait for its result. A write goes
/// to the store first; when the stamp it returns is exactly one past the synced stamp, nobody
/// else wrote, and the write is applied to the cache in O(1). Otherwise the dict reloads.
///
/// `DurableDict` is `Send + Sync`; share it with `Arc`.
///
/// ```
/// use std::sync::Arc;
/// use durabledict_core::{DurableDict, MemoryStore, Raw};
///
/// let store = MemoryStore::new();
/// let settings = Arc::new(DurableDict::<String>::builder(store.clone(), Raw).build()?);
/// settings.insert("mode", "fast".to_string())?;
///
/// // Another process (here another dict on the same store) changes a value...
/// let other = DurableDict::<String>::builder(store, Raw).build()?;
/// other.insert("mode", "safe".to_string())?;
///
/// // ...and the next read sees it.
/// assert_eq!(settings.get("mode")?.as_deref().map(String::as_str), Some("safe"));
/// # Ok::<(), durabledict_core::Error>(())
/// ```
pub struct DurableDict<V> {
    store: Box<dyn Store>,
    encoding: Box<dyn Encoding<V>>,
    policy: SyncPolicy,
    serve_stale: Option<Duration>,
    table: ArcSwap<Table<V>>,
    /// Serializes reloads and writes of this dict: single-flight reloads, and an own-write
    /// check that no other write of ours can interleave with.
    update: Mutex<()>,
    /// When this dict was built; the origin of the nanosecond clocks below.
    epoch: Instant,
    epoch_wall: SystemTime,
    /// Nanoseconds after `epoch` of the last time the cache was confirmed current.
    synced_at: AtomicU64,
    reloads: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
    /// The store's change feed, under [`SyncPolicy::Watch`] on a store that has one.
    feed: Option<Arc<Feed>>,
    /// Whether this dict may take the stamp checks and loads other dicts on the feed made
    /// ([`Store::feed_shares_reads`]), and so be kept current by the feed's keeper thread.
    shares: bool,
    observer: Observer,
    /// Whether the last read was served stale and nothing was confirmed since.
    serving_stale: AtomicBool,
    last_failure: Mutex<Option<Failure>>,
    /// Whether anyone subscribed, so that loads and own writes compute changes only then.
    has_listeners: AtomicBool,
    listeners: Mutex<Listeners<V>>,
}

/// The subscribers of a dict, and how to tell two values apart.
struct Listeners<V> {
    subscribers: Vec<Subscriber<V>>,
    same: Option<fn(&V, &V) -> bool>,
    /// Whether the thread that keeps the cache current for them runs.
    watching: bool,
}

/// The keys an own write touched, to announce their changes.
enum Touched<'a> {
    One(&'a str),
    Many(&'a [String]),
    All,
}

/// A change to announce: key, value before, value after.
type Changed<V> = (Arc<str>, Option<Arc<V>>, Option<Arc<V>>);

impl Touched<'_> {
    /// The one key touched, if one.
    fn key(&self) -> Option<&str> {
        match self {
            Touched::One(key) => Some(key),
            _ => None,
        }
    }

    /// Each touched key with its value in `table`. The caller holds the update lock.
    fn values<V>(&self, table: &Table<V>) -> Vec<(Arc<str>, Option<Arc<V>>)> {
        match self {
            Touched::One(key) => vec![(Arc::from(*key), table.get(key))],
            Touched::Many(keys) => keys
                .iter()
                .map(|key| (Arc::from(key.as_str()), table.get(key)))
                .collect(),
            Touched::All => table
                .snapshot()
                .iter()
                .map(|(key, value)| (Arc::from(key), Some(Arc::clone(value))))
                .collect(),
        }
    }
}

impl<V> fmt::Debug for DurableDict<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableDict")
            .field("store", &self.store)
            .field("encoding", &self.encoding)
            .field("policy", &self.policy)
            .field("serve_stale", &self.serve_stale)
            .field("stamp", &self.table.load().stamp())
            .finish_non_exhaustive()
    }
}

/// Builds a [`DurableDict`]: store and encoding are required, the rest has defaults.
///
/// ```
/// use std::time::Duration;
/// use durabledict_core::{DurableDict, MemoryStore, Raw, SyncPolicy};
///
/// let dict = DurableDict::<String>::builder(MemoryStore::new(), Raw)
///     .policy(SyncPolicy::AtMostEvery(Duration::from_millis(100)))
///     .serve_stale_for(Duration::from_secs(60))
///     .build()?;
/// assert!(dict.is_empty()?);
/// # Ok::<(), durabledict_core::Error>(())
/// ```
pub struct Builder<V> {
    store: Box<dyn Store>,
    encoding: Box<dyn Encoding<V>>,
    policy: SyncPolicy,
    serve_stale: Option<Duration>,
    name: Option<String>,
    slow_reload: Duration,
    prepare: bool,
}

impl<V> fmt::Debug for Builder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("store", &self.store)
            .field("encoding", &self.encoding)
            .field("policy", &self.policy)
            .field("serve_stale", &self.serve_stale)
            .finish()
    }
}

impl<V: Send + Sync + 'static> Builder<V> {
    /// When reads check the stamp; [`SyncPolicy::Always`] by default.
    pub fn policy(mut self, policy: SyncPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Opts in to serving the last snapshot when a stamp check fails, as long as the cache was
    /// confirmed current less than `max_age` ago. Off by default: a failed check is an error.
    pub fn serve_stale_for(mut self, max_age: Duration) -> Self {
        self.serve_stale = Some(max_age);
        self
    }

    /// The name the dict reports itself by in `tracing` events and `metrics` labels
    /// (`keyspace`); by default the store's [`keyspace`](Store::keyspace), else `"-"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// A reload slower than this is reported at `warn` (default 1 s), as sqlx reports slow
    /// statements.
    pub fn slow_reload(mut self, threshold: Duration) -> Self {
        self.slow_reload = threshold;
        self
    }

    /// Whether [`build`](Self::build) prepares the store with [`Store::init`] (creating a
    /// missing table, keyspace or stamp) before loading; `true` by default. `false` builds a
    /// dict that only reads what exists, for tools that must create nothing (a `list` on a
    /// read-only replica); a keyspace that does not exist then loads as the store reports it.
    pub fn prepare(mut self, prepare: bool) -> Self {
        self.prepare = prepare;
        self
    }

    /// Prepares the store ([`Store::init`], unless [`prepare(false)`](Self::prepare)) and
    /// loads every entry.
    pub fn build(self) -> Result<DurableDict<V>> {
        if self.prepare {
            self.store
                .init()
                .map_err(|e| Error::store(Op::Load, None, e))?;
        }
        let name = self
            .name
            .or_else(|| self.store.keyspace().map(str::to_owned))
            .unwrap_or_else(|| "-".to_owned());
        let dict = DurableDict {
            observer: Observer::new(Arc::from(name), self.slow_reload),
            serving_stale: AtomicBool::new(false),
            last_failure: Mutex::new(None),
            store: self.store,
            encoding: self.encoding,
            policy: self.policy,
            serve_stale: self.serve_stale,
            table: ArcSwap::from_pointee(Table::new([], None, 0, Arc::default())),
            update: Mutex::new(()),
            epoch: Instant::now(),
            epoch_wall: SystemTime::now(),
            synced_at: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            last_error: Mutex::new(None),
            feed: None,
            shares: false,
            has_listeners: AtomicBool::new(false),
            listeners: Mutex::new(Listeners {
                subscribers: Vec::new(),
                same: None,
                watching: false,
            }),
        };
        let feed = (dict.policy == SyncPolicy::Watch)
            .then(|| dict.store.feed())
            .flatten();
        let dict = DurableDict {
            shares: feed.is_some() && dict.store.feed_shares_reads(),
            feed,
            ..dict
        };
        {
            let _update = dict.lock_update();
            dict.reload_locked()?;
        }
        Ok(dict)
    }
}

/// What a read has to hold on to: the table, borrowed or freshly loaded.
type Current<V> = Guard<Arc<Table<V>>>;

/// How long a subscribed dict's thread waits for a notice before checking anyway.
pub(crate) const FEED_QUIET: Duration = Duration::from_secs(1);
/// How often a subscribed dict's thread checks the stamp when nothing pushes changes.
pub(crate) const LISTEN_POLL: Duration = Duration::from_millis(100);
/// The shortest interval between a subscribed dict's checks under `AtMostEvery`.
const LISTEN_POLL_FLOOR: Duration = Duration::from_millis(10);
/// How many events a subscription buffers by default.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 1024;

impl<V: PartialEq + Send + Sync + 'static> DurableDict<V> {
    /// Subscribes to changes: every key whose value differs after a reload or an own write,
    /// with its old and new value, in the order the dict applied them. Subscribe first, then
    /// read a [`snapshot`](Self::snapshot): every change applied after that is announced.
    ///
    /// A thread keeps the dict current while it has subscribers, so changes made elsewhere
    /// are announced without a read: under [`SyncPolicy::Watch`] as soon as the store's notice
    /// arrives, under `AtMostEvery(d)` within `d`, under `Always` within 100 ms. On a store
    /// whose reads are its feed's ([`Store::feed_shares_reads`]: Redis, PostgreSQL) that is one thread
    /// for every subscribed dict on the feed, which they share with the one stamp check and
    /// load a notice calls for; otherwise one thread per subscribed dict. Under
    /// `Manual` changes are announced when `sync()` or a write applies them. A slow subscriber
    /// never blocks the dict: its buffer holds [`DEFAULT_SUBSCRIPTION_CAPACITY`] events, and
    /// past that it misses changes and gets one [`Event::Lagged`](crate::Event::Lagged).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use durabledict_core::{DurableDict, Event, MemoryStore, Raw, SyncPolicy};
    ///
    /// let store = MemoryStore::new();
    /// let dict = Arc::new(DurableDict::<String>::builder(store.clone(), Raw).build()?);
    /// let changes = dict.subscribe();
    ///
    /// // Another process writes; the dict's thread notices within 100 ms under `Always`.
    /// let other = DurableDict::<String>::builder(store, Raw).policy(SyncPolicy::Manual).build()?;
    /// other.insert("mode", "fast".to_string())?;
    /// match changes.next_timeout(Duration::from_secs(5)) {
    ///     Some(Event::Changed(change)) => {
    ///         assert_eq!(&*change.key, "mode");
    ///         assert_eq!(change.old, None);
    ///         assert_eq!(change.new.as_deref().map(String::as_str), Some("fast"));
    ///     }
    ///     other => panic!("expected a change, got {other:?}"),
    /// }
    /// # Ok::<(), durabledict_core::Error>(())
    /// ```
    pub fn subscribe(self: &Arc<Self>) -> Subscription<V> {
        self.subscribe_with_capacity(DEFAULT_SUBSCRIPTION_CAPACITY)
    }

    /// [`subscribe`](Self::subscribe) with a buffer of `capacity` events (at least 1).
    pub fn subscribe_with_capacity(self: &Arc<Self>, capacity: usize) -> Subscription<V> {
        let _update = self.lock_update();
        self.subscribe_locked(capacity)
    }

    /// Subscribes and returns the contents the first event applies to, taken at the same
    /// instant: every change after that snapshot is announced, none before it. What a
    /// `watch` that prints the contents and then their changes needs.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use durabledict_core::{DurableDict, MemoryStore, Raw};
    ///
    /// let dict = Arc::new(DurableDict::<String>::builder(MemoryStore::new(), Raw).build()?);
    /// dict.insert("a", "1".to_string())?;
    /// let (snapshot, changes) = dict.subscribe_from_snapshot(16)?;
    /// assert_eq!(snapshot.len(), 1);
    /// dict.insert("b", "2".to_string())?;
    /// assert!(changes.try_next().is_some());
    /// # Ok::<(), durabledict_core::Error>(())
    /// ```
    pub fn subscribe_from_snapshot(
        self: &Arc<Self>,
        capacity: usize,
    ) -> Result<(Arc<Snapshot<V>>, Subscription<V>)> {
        // Bring the cache up to date first (the policy's check), then take both under the
        // update lock, so no reload or own write falls between them.
        drop(self.current()?);
        let _update = self.lock_update();
        let snapshot = self.table.load().snapshot();
        Ok((snapshot, self.subscribe_locked(capacity)))
    }

    /// Adds a subscriber; the caller holds the update lock, so no reload or own write is half
    /// announced meanwhile.
    fn subscribe_locked(self: &Arc<Self>, capacity: usize) -> Subscription<V> {
        let (subscriber, subscription) = Subscriber::new(capacity);
        let mut listeners = self.lock_listeners();
        listeners.same = Some(|a: &V, b: &V| a == b);
        listeners.subscribers.push(subscriber);
        self.has_listeners.store(true, Ordering::Release);
        if !listeners.watching && self.policy != SyncPolicy::Manual {
            listeners.watching = true;
            // On a feed whose dicts share their checks and loads, one thread per feed keeps
            // them all current (see `Feed::keep`); otherwise a thread of the dict's own.
            let kept = self
                .feed
                .as_ref()
                .filter(|_| self.shares)
                .is_some_and(|feed| {
                    let dict: Weak<dyn Kept> = Arc::downgrade(self) as Weak<dyn Kept>;
                    feed.keep(dict)
                });
            if !kept {
                let dict = Arc::downgrade(self);
                std::thread::Builder::new()
                    .name("durabledict-listen".into())
                    .spawn(move || Self::keep_current(dict))
                    .map(drop)
                    .unwrap_or_else(|_| listeners.watching = false);
            }
        }
        subscription
    }
}

impl<V: Send + Sync + 'static> Kept for DurableDict<V> {
    fn keep(&self) -> Round {
        if !self.still_listened() {
            return Round::LetGo;
        }
        let Some(feed) = &self.feed else {
            // Not reached: only a dict with a feed shares, and only one that shares is kept.
            let _ = self.current();
            return Round::Kept;
        };
        // As `current()` under `Watch`, but never waiting for the update lock: a write of this
        // dict waiting for its reply held the feed's only keeper, and with it every other
        // dict's listeners, for as long as the write waited (tests/review_sharing.rs in
        // durabledict-redis).
        let table = self.table.load();
        let state = feed.state();
        let current = table.fed(state) && self.store.epoch() == table.epoch();
        if !current && matches!(self.update.try_lock(), Err(TryLockError::WouldBlock)) {
            // Busy for a while (a write waiting for its reply): nothing checked nor recorded
            // every LISTEN_POLL meanwhile; the check below finds it busy only when a write
            // began since this look.
            return Round::Busy;
        }
        // Counted as a read, as `current()` counts it.
        self.observer.read();
        if current {
            return Round::Kept;
        }
        let busy = Cell::new(false);
        // An error is recorded in `status()`; the next round tries again.
        let _ = self.check_fed(table, state, Some(&busy));
        if busy.get() { Round::Busy } else { Round::Kept }
    }
}

impl<V: Send + Sync + 'static> DurableDict<V> {
    /// Starts building a dict on `store`, storing values with `encoding`.
    pub fn builder(
        store: impl Store + 'static,
        encoding: impl Encoding<V> + 'static,
    ) -> Builder<V> {
        Builder {
            store: Box::new(store),
            encoding: Box::new(encoding),
            policy: SyncPolicy::Always,
            serve_stale: None,
            name: None,
            slow_reload: DEFAULT_SLOW_RELOAD,
            prepare: true,
        }
    }

    // ---- reads -------------------------------------------------------------------------

    /// The value at `key`, `None` when absent; [`Error::Decode`] naming the key when the
    /// store holds a value for it that does not decode (every other key reads as usual).
    #[inline(always)]
    pub fn get(&self, key: &str) -> Result<Option<Arc<V>>> {
        // The policy's check spelled out here rather than through `current()`, and every way
        // past it that is not a plain answer handed to a cold function: the table guard then
        // stays where it was loaded, one value for every fast path, and never travels through
        // a `Result` or a merge of paths. When it did, the compiler copied it with one 16-byte
        // load of the two words arc-swap stores separately, which cost this read ~30 ns on
        // `MemoryStore` (docs/PERFORMANCE.md).
        self.observer.read();
        let table = self.table.load();
        match self.policy {
            SyncPolicy::Manual => {}
            SyncPolicy::Watch if self.feed.is_some() => {
                if let Some(feed) = &self.feed {
                    let state = feed.state();
                    if !(table.fed(state) && self.store.epoch() == table.epoch()) {
                        return self.get_fed(table, state, key);
                    }
                }
            }
            // `Watch` on a store that cannot push: as `Always`.
            SyncPolicy::Always | SyncPolicy::Watch => {
                let checked = self.check_stamp();
                if !self.confirmed_quietly(&table, &checked) {
                    return self.get_after_check(table, checked, key);
                }
            }
            SyncPolicy::AtMostEvery(interval) => {
                if self.synced_ago() >= interval {
                    let checked = self.check_stamp();
                    return self.get_after_check(table, checked, key);
                }
            }
        }
        self.read_key(&table, key)
    }

    /// The value at `key` in `table`, or the key's decode error.
    #[inline(always)]
    fn read_key(&self, table: &Table<V>, key: &str) -> Result<Option<Arc<V>>> {
        match table.get(key) {
            None if table.is_damaged() => self.poisoned(table, key),
            found => Ok(found),
        }
    }

    /// [`get`](Self::get) under `Watch` when the feed cannot vouch for the table.
    #[cold]
    #[inline(never)]
    fn get_fed(&self, table: Current<V>, state: FeedState, key: &str) -> Result<Option<Arc<V>>> {
        let table = self.check_fed(table, state, None)?;
        self.read_key(&table, key)
    }

    /// [`get`](Self::get) past a stamp check that did not simply confirm the table.
    #[cold]
    #[inline(never)]
    fn get_after_check(
        &self,
        table: Current<V>,
        checked: Result<Option<StampValue>, StoreError>,
        key: &str,
    ) -> Result<Option<Arc<V>>> {
        let table = self.after_check(table, checked)?;
        self.read_key(&table, key)
    }

    /// The value at `key` when the cache can answer with no I/O and without waiting for a
    /// lock: under `Manual`, under `Watch` while the feed is healthy and nothing arrived, under
    /// `AtMostEvery` within its window. `None` when a read would check the stamp or reload:
    /// what an async caller needs to decide whether to leave its task.
    ///
    /// ```
    /// use durabledict_core::{DurableDict, MemoryStore, Raw, SyncPolicy};
    ///
    /// let manual = DurableDict::<String>::builder(MemoryStore::new(), Raw)
    ///     .policy(SyncPolicy::Manual)
    ///     .build()?;
    /// assert!(manual.try_get_local("k").is_some());
    /// let always = DurableDict::<String>::builder(MemoryStore::new(), Raw).build()?;
    /// assert!(always.try_get_local("k").is_none());
    /// # Ok::<(), durabledict_core::Error>(())
    /// ```
    pub fn try_get_local(&self, key: &str) -> Option<Result<Option<Arc<V>>>> {
        let table = self.local_table()?;
        self.observer.read();
        Some(match table.get(key) {
            None if table.is_damaged() => self.poisoned(&table, key),
            found => Ok(found),
        })
    }

    /// How many entries there are, when the cache can answer with no I/O (as
    /// [`try_get_local`](Self::try_get_local)); `None` when [`len`](Self::len) would check the
    /// stamp or reload.
    pub fn try_len_local(&self) -> Option<usize> {
        let table = self.local_table()?;
        self.observer.read();
        Some(table.len())
    }

    /// The keys, when the cache can answer with no I/O and no wait: the policy lets a read use
    /// the cache (as [`try_get_local`](Self::try_get_local)) and its [`snapshot`](Self::snapshot)
    /// is already materialized. `None` when [`keys`](Self::keys) would check the stamp, reload,
    /// or wait for a write of this dict in progress (which may be waiting on the store).
    pub fn try_keys_local(&self) -> Option<Vec<String>> {
        let snapshot = self.local_table()?.cached_snapshot()?;
        self.observer.read();
        Some(snapshot.keys().map(str::to_owned).collect())
    }

    /// Whether a read now would answer from the cache with no I/O (see
    /// [`try_get_local`](Self::try_get_local)).
    pub fn answers_locally(&self) -> bool {
        self.local_table().is_some()
    }

    /// The table, when the policy lets a read use it with no check.
    fn local_table(&self) -> Option<Current<V>> {
        let table = self.table.load();
        let local = match self.policy {
            SyncPolicy::Manual => true,
            SyncPolicy::Watch => self
                .feed
                .as_ref()
                .is_some_and(|feed| table.fed(feed.state()) && self.store.epoch() == table.epoch()),
            SyncPolicy::AtMostEvery(interval) => self.synced_ago() < interval,
            SyncPolicy::Always => false,
        };
        local.then_some(table)
    }

    /// The value at `key`, given a stamp check made outside the dict: `stamp` as read by a
    /// request sent after `epoch` was read from the store's [`epoch`](Store::epoch), on a
    /// client of the same store whose failures and new connections change that epoch as the
    /// store's own do (an async client, so that an async caller need not leave its task).
    ///
    /// `Some` when that check confirms the cache as the read's own check would: the same
    /// stamp, and the epoch the cache was loaded in both before the check (`epoch`) and after
    /// it (read here). `None` when it does not (the read needs a reload, or the store may have
    /// lost its contents), and when the dict takes its confirmations from a change feed
    /// (`Watch` on a store that pushes): then [`get`](Self::get) decides, with its own check.
    ///
    /// ```
    /// use durabledict_core::{DurableDict, MemoryStore, Raw, Store};
    ///
    /// let store = MemoryStore::new();
    /// let dict = DurableDict::<String>::builder(store.clone(), Raw).build()?;
    /// dict.insert("k", "v".to_string())?;
    /// let epoch = store.epoch();
    /// let stamp = store.last_updated()?; // made elsewhere, e.g. on an async connection
    /// assert!(dict.get_confirmed("k", epoch, stamp).is_some());
    /// store.persist("k", b"w")?; // another writer: the stamp moved on
    /// assert!(dict.get_confirmed("k", epoch, store.last_updated()?).is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_confirmed(
        &self,
        key: &str,
        epoch: u64,
        stamp: Option<StampValue>,
    ) -> Option<Result<Option<Arc<V>>>> {
        if self.feed.is_some() {
            return None;
        }
        let table = self.table.load();
        if epoch != table.epoch() || !self.confirms(&table, stamp) {
            return None;
        }
        self.observer.read();
        self.observer.checked(None);
        // As a read's own check records it: `Always` records nothing unless there is stale
        // serving or an outage to end.
        if self.policy != SyncPolicy::Always
            || self.serve_stale.is_some()
            || self.observer.is_failing()
        {
            self.mark_synced();
        }
        Some(match table.get(key) {
            None if table.is_damaged() => self.poisoned(&table, key),
            found => Ok(found),
        })
    }

    /// The value at `key`, or `default` when absent (like Python's `get(k, default)`).
    pub fn get_or(&self, key: &str, default: V) -> Result<Arc<V>> {
        Ok(self.get(key)?.unwrap_or_else(|| Arc::new(default)))
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key(&self, key: &str) -> Result<bool> {
        Ok(self.current()?.contains_key(key))
    }

    /// How many entries there are.
    pub fn len(&self) -> Result<usize> {
        Ok(self.current()?.len())
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.current()?.len() == 0)
    }

    /// The keys, from one consistent snapshot, in no particular order.
    pub fn keys(&self) -> Result<Vec<String>> {
        Ok(self.snapshot()?.keys().map(str::to_owned).collect())
    }

    /// The values, from one consistent snapshot, in no particular order.
    pub fn values(&self) -> Result<Vec<Arc<V>>> {
        Ok(self.snapshot()?.values().cloned().collect())
    }

    /// The entries, from one consistent snapshot, in no particular order.
    pub fn iter(&self) -> Result<impl Iterator<Item = (String, Arc<V>)> + use<V>> {
        let snapshot = self.snapshot()?;
        let entries: Vec<(String, Arc<V>)> = snapshot
            .iter()
            .map(|(k, v)| (k.to_owned(), Arc::clone(v)))
            .collect();
        Ok(entries.into_iter())
    }

    /// The current contents as one consistent, immutable [`Snapshot`]: for reading several
    /// keys that must agree with each other. Materialized once per change (O(n)), then shared;
    /// materializing waits for a write of this dict in progress.
    pub fn snapshot(&self) -> Result<Arc<Snapshot<V>>> {
        if let Some(snapshot) = self.current()?.cached_snapshot() {
            return Ok(snapshot);
        }
        let _update = self.lock_update();
        Ok(self.table.load().snapshot())
    }

    /// The store's stamp now (one round trip; not the cached one, see [`status`](Self::status)).
    pub fn last_updated(&self) -> Result<Option<StampValue>> {
        self.store
            .last_updated()
            .map_err(|e| self.failed(Op::Check, None, e))
    }

    /// Checks the stamp and reloads when it changed, whatever the policy. Returns whether it
    /// reloaded.
    pub fn sync(&self) -> Result<bool> {
        let seen = self.table.load_full();
        let stamp = self.last_updated()?;
        if self.confirms(&seen, stamp) {
            self.mark_synced();
            return Ok(false);
        }
        drop(seen);
        let _update = self.lock_update();
        if self.confirms(&self.table.load(), stamp) {
            self.mark_synced();
            return Ok(false);
        }
        self.reload_locked().map(|_| true)
    }

    /// The dict's health: synced stamp, last sync, reload count, last error, and what the
    /// store holds that the dict could not take in.
    pub fn status(&self) -> Status {
        let nanos = self.synced_at.load(Ordering::Relaxed);
        let table = self.table.load();
        Status {
            stamp: table.stamp(),
            undecodable: table.undecodable(),
            unreadable: table.unreadable(),
            feed: match (&self.feed, self.policy) {
                (Some(feed), _) if feed.state().is_up() => FeedHealth::Healthy,
                (Some(_), _) => FeedHealth::Polling,
                (None, _) => FeedHealth::None,
            },
            serving_stale: self.serving_stale.load(Ordering::Relaxed),
            last_failure: self
                .last_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            last_sync: self.epoch_wall + Duration::from_nanos(nanos),
            reloads: self.reloads.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// The sync policy.
    pub fn policy(&self) -> SyncPolicy {
        self.policy
    }

    // ---- writes ------------------------------------------------------------------------

    /// Writes `value` at `key`.
    pub fn insert(&self, key: &str, value: V) -> Result<()> {
        let bytes = self.encode(key, &value)?;
        let _update = self.lock_update();
        let stamp = self
            .store
            .persist(key, &bytes)
            .map_err(|e| self.failed(Op::Insert, Some(key), e))?;
        self.apply_own(Some(stamp), Op::Insert, Touched::One(key), |table| {
            table.set(key, Some(Arc::new(value)));
            None
        });
        Ok(())
    }

    /// Removes `key` from the store and returns the value it held there, `None` when absent.
    /// The removal is atomic where the store can (`Store::pop`). When the stored value cannot
    /// be decoded, the key is still removed (store and cache agree) and the error is
    /// [`Error::Decode`] naming it.
    pub fn remove(&self, key: &str) -> Result<Option<Arc<V>>> {
        self.take(Op::Remove, key)
    }

    /// Removes `key` and returns its value; [`Error::KeyNotFound`] when absent.
    pub fn pop(&self, key: &str) -> Result<Arc<V>> {
        self.take(Op::Pop, key)?.ok_or_else(|| Error::KeyNotFound {
            key: key.to_owned(),
        })
    }

    /// Removes `key` and returns its value, or `default` when absent. Any default is a default
    /// (Python durabledict took a falsy one for none).
    pub fn pop_or(&self, key: &str, default: V) -> Result<Arc<V>> {
        Ok(self
            .take(Op::Pop, key)?
            .unwrap_or_else(|| Arc::new(default)))
    }

    /// Returns the value at `key`, first inserting `default` when absent. An existing key is
    /// neither written nor does it bump the stamp.
    pub fn setdefault(&self, key: &str, default: V) -> Result<Arc<V>> {
        let bytes = self.encode(key, &default)?;
        let _update = self.lock_update();
        let outcome = self
            .store
            .setdefault(key, &bytes)
            .map_err(|e| self.failed(Op::SetDefault, Some(key), e))?;
        match outcome {
            SetDefault::Existing(stored) => {
                // The store holds a value the cache does not know: the cache is stale.
                if !self.table.load().contains_key(key) {
                    self.reload_keeping_answer();
                }
                self.decode(key, &stored).map(Arc::new)
            }
            SetDefault::Inserted(stamp) => {
                let value = Arc::new(default);
                let cached = Arc::clone(&value);
                self.apply_own(Some(stamp), Op::SetDefault, Touched::One(key), |table| {
                    table.set(key, Some(cached));
                    None
                });
                Ok(value)
            }
        }
    }

    /// Writes every entry as one batch (one stamp bump where the store can). Every key is
    /// validated and every value encoded before anything is written.
    pub fn update<K, I>(&self, entries: I) -> Result<()>
    where
        K: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        let entries: Vec<(String, V)> = entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let encoded = entries
            .iter()
            .map(|(key, value)| self.encode(key, value))
            .collect::<Result<Vec<_>>>()?;
        let batch: Vec<(&str, &[u8])> = entries
            .iter()
            .zip(&encoded)
            .map(|((key, _), bytes)| (key.as_str(), bytes.as_slice()))
            .collect();
        let _update = self.lock_update();
        let stamp = self.store.persist_many(&batch).map_err(|e| {
            let key = (batch.len() == 1).then(|| batch[0].0);
            self.failed(Op::Update, key, e)
        })?;
        let touched: Vec<String> = if self.listening() {
            // A key named twice changed once.
            let mut keys: Vec<String> = entries.iter().map(|(key, _)| key.clone()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys
        } else {
            Vec::new()
        };
        self.apply_own(stamp, Op::Update, Touched::Many(&touched), |table| {
            for (key, value) in entries {
                table.set(&key, Some(Arc::new(value)));
            }
            None
        });
        Ok(())
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        let _update = self.lock_update();
        let stamp = self
            .store
            .clear()
            .map_err(|e| self.failed(Op::Clear, None, e))?;
        let (had, unreadable) = {
            let table = self.table.load();
            (
                table.len() > 0 || table.is_damaged(),
                !table.unreadable().is_empty(),
            )
        };
        // Nothing to clear in the store but something in the cache: the cache was stale (another
        // program emptied the store); names that are not keys may outlive a clear that only
        // removes keys. Either way only a reload knows what is left.
        if (stamp.is_none() && had) || unreadable {
            if stamp.is_some() {
                self.apply_own(stamp, Op::Clear, Touched::All, |table| {
                    Some(Table::new([], table.stamp(), table.epoch(), Arc::default()))
                });
            }
            return self.reload_locked().map(drop);
        }
        self.apply_own(stamp, Op::Clear, Touched::All, |table| {
            Some(Table::new([], table.stamp(), table.epoch(), Arc::default()))
        });
        Ok(())
    }

    // ---- internals ---------------------------------------------------------------------

    /// The loop of the thread that keeps a dict with subscribers current: under
    /// [`SyncPolicy::Watch`] it waits for the feed's next notice (polling the stamp while the
    /// feed is down), under `AtMostEvery(d)` it checks every `d`, under `Always` every
    /// [`LISTEN_POLL`]. It holds the dict only while it checks, and ends when the dict is
    /// dropped or has no subscribers left.
    fn keep_current(dict: Weak<Self>) {
        loop {
            let Some(this) = dict.upgrade() else { return };
            if !this.still_listened() {
                return;
            }
            let before = this.feed.as_ref().map(|feed| feed.state());
            // An error is recorded in `status()`; the next round tries again.
            let _ = this.current();
            let (feed, policy) = (this.feed.clone(), this.policy);
            drop(this);
            match (policy, feed, before) {
                (_, Some(feed), Some(before)) => feed.wait_for_round(before, FEED_QUIET, false),
                (SyncPolicy::AtMostEvery(interval), _, _) => {
                    // In slices, so that a dict dropped meanwhile ends the thread soon.
                    let until = Instant::now() + interval.max(LISTEN_POLL_FLOOR);
                    while let Some(left) = until.checked_duration_since(Instant::now()) {
                        if dict.strong_count() == 0 {
                            return;
                        }
                        std::thread::sleep(left.min(FEED_QUIET));
                    }
                }
                _ => std::thread::sleep(LISTEN_POLL),
            }
        }
    }

    /// Forgets dropped subscriptions; `false`, with the dict marked as not watched, when none
    /// is left (the thread keeping it current then lets it go).
    fn still_listened(&self) -> bool {
        let mut listeners = self.lock_listeners();
        listeners.subscribers.retain(|s| !s.is_dropped());
        if listeners.subscribers.is_empty() {
            listeners.watching = false;
            self.has_listeners.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// The table a read should use, after whatever stamp check the policy asks for. Kept small
    /// and inlined: this is every read's path; everything past an unchanged stamp is cold.
    #[inline(always)]
    fn current(&self) -> Result<Current<V>> {
        self.observer.read();
        let table = self.table.load();
        match self.policy {
            SyncPolicy::Manual => Ok(table),
            SyncPolicy::Always => self.checked_read(table),
            SyncPolicy::Watch => match &self.feed {
                Some(feed) => {
                    let state = feed.state();
                    if table.fed(state) && self.store.epoch() == table.epoch() {
                        Ok(table)
                    } else {
                        self.check_fed(table, state, None)
                    }
                }
                // A store that cannot push: as `Always`.
                None => self.checked_read(table),
            },
            SyncPolicy::AtMostEvery(interval) => {
                if self.synced_ago() < interval {
                    Ok(table)
                } else {
                    let checked = self.check_stamp();
                    self.after_check(table, checked)
                }
            }
        }
    }

    /// A read under `Always`: one stamp check; the table when it confirms it, nothing to record
    /// and nothing failing before; otherwise the cold path.
    #[inline(always)]
    fn checked_read(&self, table: Current<V>) -> Result<Current<V>> {
        let checked = self.check_stamp();
        if self.confirmed_quietly(&table, &checked) {
            Ok(table)
        } else {
            self.after_check(table, checked)
        }
    }

    /// Whether a stamp check confirmed `table` with nothing to record: the stamp and epoch
    /// unchanged, no stale serving to track and no outage to end.
    #[inline(always)]
    fn confirmed_quietly(
        &self,
        table: &Table<V>,
        checked: &Result<Option<StampValue>, StoreError>,
    ) -> bool {
        matches!(checked, Ok(stamp) if self.confirms(table, *stamp))
            && self.serve_stale.is_none()
            && !self.observer.is_failing()
    }

    /// Reads the store's stamp, timing it when metrics are on.
    #[inline(always)]
    fn check_stamp(&self) -> Result<Option<StampValue>, StoreError> {
        if self.observer.times_checks() {
            let started = Instant::now();
            let checked = self.store.last_updated();
            self.observer.checked(Some(started.elapsed()));
            checked
        } else {
            self.observer.checked(None);
            self.store.last_updated()
        }
    }

    /// Acts on a stamp check: records it, and reloads (single flight) when the stamp changed.
    /// The cache counts as confirmed (`last_sync`) only when the check confirmed it or the
    /// reload succeeded. A failed check or a failed reload serves the last table when
    /// `serve_stale_for` allows it.
    #[cold]
    #[inline(never)]
    fn after_check(
        &self,
        table: Current<V>,
        checked: Result<Option<StampValue>, StoreError>,
    ) -> Result<Current<V>> {
        self.check_and_load(table, checked).map(|(table, _)| table)
    }

    /// [`after_check`](Self::after_check), also telling whether the table returned was
    /// confirmed or loaded (`true`) or served stale (`false`).
    fn check_and_load(
        &self,
        table: Current<V>,
        checked: Result<Option<StampValue>, StoreError>,
    ) -> Result<(Current<V>, bool)> {
        self.check_and_load_at(table, checked, None, None)
    }

    /// [`check_and_load`](Self::check_and_load) for a read at feed state `fed`, whose reload
    /// may share a load made at that state by another dict on the feed. With `busy`, a reload
    /// that would wait for the update lock is not made: `busy` is set, and the table returned
    /// unconfirmed.
    fn check_and_load_at(
        &self,
        table: Current<V>,
        checked: Result<Option<StampValue>, StoreError>,
        fed: Option<FeedState>,
        busy: Option<&Cell<bool>>,
    ) -> Result<(Current<V>, bool)> {
        let stamp = match checked {
            Ok(stamp) => stamp,
            Err(e) => {
                let error = self.failed(Op::Check, None, e);
                return self.stale_or_fail(table, error).map(|t| (t, false));
            }
        };
        if self.confirms(&table, stamp) {
            self.mark_synced();
            return Ok((table, true));
        }
        if stamp == table.stamp() {
            self.observer.continuity_lost(stamp);
        }
        drop(table);
        let _update = match busy {
            None => self.lock_update(),
            Some(busy) => match self.update.try_lock() {
                Ok(update) => update,
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {
                    busy.set(true);
                    return Ok((self.table.load(), false));
                }
            },
        };
        // Single flight: whoever held the lock before us may already have loaded this stamp.
        let latest = self.table.load_full();
        if self.confirms(&latest, stamp) {
            self.mark_synced();
            return Ok((Guard::from_inner(latest), true));
        }
        match self.reload_at(fed) {
            Ok(table) => Ok((Guard::from_inner(table), true)),
            Err(error) => self
                .stale_or_fail(Guard::from_inner(latest), error)
                .map(|t| (t, false)),
        }
    }

    /// A read under [`SyncPolicy::Watch`] that cannot answer locally (a notice arrived, or the
    /// feed is down): a stamp check, as under `Always`, which confirms the table at `state`.
    #[cold]
    #[inline(never)]
    fn check_fed(
        &self,
        table: Current<V>,
        state: FeedState,
        busy: Option<&Cell<bool>>,
    ) -> Result<Current<V>> {
        if state.is_up() {
            self.observer.notice();
        }
        // A check made by another dict on the feed at this very state and epoch is as good as
        // ours (see `Feed::shared_check`); the epoch is read before the request, as in a reload.
        let checked = match &self.feed {
            Some(feed) if self.shares => {
                feed.shared_check(state, self.store.epoch(), || self.check_stamp())
            }
            _ => self.check_stamp(),
        };
        if let Ok(stamp) = checked
            && self.confirms(&table, stamp)
        {
            table.saw_feed(state);
            self.mark_synced();
            return Ok(table);
        }
        let (current, confirmed) = self.check_and_load_at(table, checked, Some(state), busy)?;
        // A table served stale confirms nothing: the next read checks again.
        if confirmed {
            current.saw_feed(state);
        }
        Ok(current)
    }

    /// The last table when serving stale data is allowed and it was confirmed recently enough,
    /// else `error` (already recorded).
    fn stale_or_fail(&self, table: Current<V>, error: Error) -> Result<Current<V>> {
        let mut age = self.synced_ago();
        // Under `Watch`, a table the feed vouched for up to the moment it was lost (nothing
        // arrived between its last confirmation and the loss) was current until then.
        if let Some(feed) = &self.feed
            && let Some(lost_at) = feed.lost_at()
            && table.fed_until(feed.state())
        {
            age = age.min(
                SystemTime::now()
                    .duration_since(lost_at)
                    .unwrap_or_default(),
            );
        }
        match self.serve_stale {
            Some(max_age) if age <= max_age => {
                self.serving_stale.store(true, Ordering::Relaxed);
                self.observer.served_stale(age);
                Ok(table)
            }
            _ => Err(error),
        }
    }

    /// Loads every entry and swaps the table. The caller holds the update lock. A value that
    /// does not decode is left out and remembered with its error (it poisons only its key),
    /// and recorded as the last error.
    fn reload_locked(&self) -> Result<Arc<Table<V>>> {
        self.reload_at(None)
    }

    /// [`reload_locked`](Self::reload_locked), sharing a load made by another dict on the feed
    /// when the read that asked for it (at feed state `asked`) and the load are both at the
    /// feed's state now. Only reads that a notice sent here share: a reload after a write of
    /// this dict must see that write, and loads on its own.
    fn reload_at(&self, asked: Option<FeedState>) -> Result<Arc<Table<V>>> {
        // Read before the entries: a continuity lost or a notice arriving while they are read
        // shows as a changed epoch or feed state at the next check, which reloads again.
        let epoch = self.store.epoch();
        let fed = self.feed.as_ref().map(|feed| feed.state());
        let span = tracing::debug_span!(
            target: TARGET,
            "reload",
            keyspace = %self.observer.keyspace,
            keys = field::Empty,
            bytes = field::Empty,
            stamp_before = field::debug(self.table.load().stamp()),
            stamp_after = field::Empty,
            duration_ms = field::Empty,
        );
        let _entered = span.enter();
        let started = Instant::now();
        let durables = match (&self.feed, fed) {
            (Some(feed), Some(state)) if self.shares && asked == Some(state) => {
                feed.shared_load(state, epoch, || self.store.durables())
            }
            _ => self.store.durables().map(Arc::new),
        }
        .map_err(|e| self.failed(Op::Load, None, e))?;
        span.record("keys", durables.entries.len());
        span.record(
            "bytes",
            durables.entries.values().map(Vec::len).sum::<usize>(),
        );
        span.record("stamp_after", field::debug(durables.stamp));
        let mut damaged = Damaged {
            unreadable: durables.unreadable.clone(),
            ..Damaged::default()
        };
        let mut entries = Vec::with_capacity(durables.entries.len());
        for (key, bytes) in &durables.entries {
            match self.encoding.decode(bytes) {
                Ok(value) => entries.push((Arc::from(key.as_str()), Arc::new(value))),
                Err(source) => {
                    let error = SharedError(Arc::from(source));
                    self.observer.undecodable(key, &Report(&error));
                    self.record(&Report(&Error::Decode {
                        key: key.clone(),
                        source: Box::new(error.clone()),
                    }));
                    damaged.undecodable.insert(Arc::from(key.as_str()), error);
                }
            }
        }
        if let Some((name, reason)) = damaged.unreadable.first() {
            self.record(&format!(
                "the store holds {} entr{} under a name that is not a key, e.g. {:?}: {reason}",
                damaged.unreadable.len(),
                if damaged.unreadable.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                String::from_utf8_lossy(name),
            ));
        }
        let table = Arc::new(Table::new(
            entries,
            durables.stamp,
            epoch,
            Arc::new(damaged),
        ));
        if let Some(state) = fed {
            table.saw_feed(state);
        }
        // Swap first, then announce: a listener that reads on an event sees the change.
        let old = self.table.swap(Arc::clone(&table));
        if self.listening() {
            self.announce_reload(&old, &table);
        }
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.mark_synced();
        let took = started.elapsed();
        span.record("duration_ms", took.as_secs_f64() * 1e3);
        self.observer.reloaded(took);
        Ok(table)
    }

    /// After a successful write of ours that left the store at `stamp`: when that is one past
    /// the synced stamp nobody else wrote, so apply `change` to the cache in O(1); otherwise
    /// reload. When the reload fails, the change is applied over the old stamp, so this dict
    /// reads its own write and the next stamp check still reloads. `stamp` is `None` when the
    /// write changed nothing. `change` mutates the table in place or returns a replacement. The
    /// caller holds the update lock.
    fn apply_own(
        &self,
        stamp: Option<StampValue>,
        op: Op,
        touched: Touched<'_>,
        change: impl FnOnce(&Table<V>) -> Option<Table<V>>,
    ) {
        let Some(stamp) = stamp else { return };
        let table = self.table.load_full();
        // Across a changed epoch the store may have restarted and counted up to this stamp
        // again with other contents: only a reload knows.
        let ours = table.stamp().and_then(|s| s.checked_add(1)) == Some(stamp)
            && self.store.epoch() == table.epoch();
        self.observer.own_write(op, touched.key(), ours);
        if !ours && self.reload_locked().is_ok() {
            return;
        }
        let before = self.listening().then(|| touched.values(&table));
        let replacement = change(&table).or_else(|| table.wants_rebuild().then(|| table.rebuilt()));
        let target = replacement.as_ref().unwrap_or(&table);
        if ours {
            target.set_stamp(stamp);
            self.mark_synced();
        }
        let changes: Option<Vec<Changed<V>>> = before.map(|before| {
            before
                .into_iter()
                .map(|(key, old)| {
                    let new = target.get(&key);
                    (key, old, new)
                })
                .collect()
        });
        if let Some(replacement) = replacement {
            self.table.store(Arc::new(replacement));
        }
        if let Some(changes) = changes {
            self.announce(changes);
        }
    }

    /// Reloads a cache found stale by a write that has its answer already (`setdefault` found
    /// a value, a removal found nothing). A failed reload does not change that answer: it is
    /// recorded in `status()` by `reload_locked`, and the next check reloads.
    fn reload_keeping_answer(&self) {
        if self.reload_locked().is_err() {
            debug_assert!(
                self.last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            );
        }
    }

    /// Whether anyone subscribed to changes.
    #[inline(always)]
    fn listening(&self) -> bool {
        self.has_listeners.load(Ordering::Acquire)
    }

    /// Announces what a reload from `old` to `new` changed. The caller holds the update lock.
    fn announce_reload(&self, old: &Table<V>, new: &Table<V>) {
        let (old, new) = (old.snapshot(), new.snapshot());
        let mut changes: Vec<Changed<V>> = new
            .iter()
            .map(|(key, value)| {
                (
                    Arc::from(key),
                    old.get(key).cloned(),
                    Some(Arc::clone(value)),
                )
            })
            .collect();
        changes.extend(
            old.iter()
                .filter(|(key, _)| !new.contains_key(key))
                .map(|(key, value)| (Arc::from(key), Some(Arc::clone(value)), None)),
        );
        self.announce(changes);
    }

    /// Sends every change whose values differ to every subscriber, without blocking; forgets
    /// the subscriptions that were dropped. The caller holds the update lock, so changes are
    /// sent in the order they were applied.
    fn announce(&self, changes: Vec<Changed<V>>) {
        let mut listeners = self.lock_listeners();
        let Some(same) = listeners.same else { return };
        let differs = |old: &Option<Arc<V>>, new: &Option<Arc<V>>| match (old, new) {
            (Some(old), Some(new)) => !Arc::ptr_eq(old, new) && !same(old, new),
            (None, None) => false,
            _ => true,
        };
        for (key, old, new) in changes {
            if !differs(&old, &new) {
                continue;
            }
            let change = Change { key, old, new };
            listeners
                .subscribers
                .retain_mut(|subscriber| subscriber.send(&change));
        }
        if listeners.subscribers.is_empty() {
            self.has_listeners.store(false, Ordering::Release);
        }
    }

    fn lock_listeners(&self) -> MutexGuard<'_, Listeners<V>> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The answer to a `get` of `key`, absent from `table`: [`Error::Decode`] when the store
    /// holds an undecodable value for it.
    #[cold]
    #[inline(never)]
    fn poisoned(&self, table: &Table<V>, key: &str) -> Result<Option<Arc<V>>> {
        match table.poison(key) {
            Some(error) => Err(Error::Decode {
                key: key.to_owned(),
                source: Box::new(error.clone()),
            }),
            None => Ok(None),
        }
    }

    /// Whether a stamp check that read `stamp` confirms `table`: the same stamp, and the store
    /// kept its continuity since the table was loaded (the epoch is read after the check).
    #[inline(always)]
    fn confirms(&self, table: &Table<V>, stamp: Option<StampValue>) -> bool {
        stamp == table.stamp() && self.store.epoch() == table.epoch()
    }

    fn take(&self, op: Op, key: &str) -> Result<Option<Arc<V>>> {
        let _update = self.lock_update();
        let popped = self
            .store
            .pop(key)
            .map_err(|e| self.failed(op, Some(key), e))?;
        let Some((bytes, stamp)) = popped else {
            // Absent in the store: drop it from the cache too if a stale snapshot had it.
            // A failed reload is recorded in `status()` by `reload_locked` (and the next check
            // reloads); the removal itself has its answer: nothing to remove.
            let stale = {
                let table = self.table.load();
                table.contains_key(key) || table.poison(key).is_some()
            };
            if stale {
                self.reload_keeping_answer();
            }
            return Ok(None);
        };
        self.apply_own(Some(stamp), op, Touched::One(key), |table| {
            table.set(key, None);
            None
        });
        self.decode(key, &bytes).map(|v| Some(Arc::new(v)))
    }

    fn encode(&self, key: &str, value: &V) -> Result<Vec<u8>> {
        if let Err(reason) = self.store.validate_key(key) {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason,
            });
        }
        let bytes = self
            .encoding
            .encode(value)
            .map_err(|source| Error::Encode {
                key: key.to_owned(),
                source,
            })?;
        match self.store.max_value_len() {
            Some(max) if bytes.len() > max => Err(Error::ValueTooLarge {
                key: key.to_owned(),
                len: bytes.len(),
                max,
            }),
            _ => Ok(bytes),
        }
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<V> {
        self.encoding.decode(bytes).map_err(|source| {
            let error = Error::Decode {
                key: key.to_owned(),
                source,
            };
            self.record(&Report(&error));
            error
        })
    }

    /// Records a store error for [`status`](Self::status) and wraps it with its context.
    fn failed(&self, op: Op, key: Option<&str>, error: StoreError) -> Error {
        let kind = error.kind();
        let error = Error::store(op, key, error);
        // The whole chain: the error's own message names no cause.
        let message = Report(&error).to_string();
        self.record(&message);
        self.observer.failed(&error, op, Some(kind));
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Failure {
            at: SystemTime::now(),
            op,
            kind,
            message,
        });
        error
    }

    /// Records an error as the last one, for [`status`](Self::status).
    fn record(&self, error: &dyn fmt::Display) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((SystemTime::now(), error.to_string()));
    }

    fn lock_update(&self) -> MutexGuard<'_, ()> {
        self.update.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn nanos_now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn mark_synced(&self) {
        self.synced_at.store(self.nanos_now(), Ordering::Relaxed);
        if self.serving_stale.load(Ordering::Relaxed) {
            self.serving_stale.store(false, Ordering::Relaxed);
        }
        self.observer.synced();
    }

    fn synced_ago(&self) -> Duration {
        Duration::from_nanos(
            self.nanos_now()
                .saturating_sub(self.synced_at.load(Ordering::Relaxed)),
        )
    }
}
