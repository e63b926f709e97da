//! [`AsyncDict`]: the async handle, and its [`Builder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use durabledict_core::{
    DurableDict, Encoding, Error, FeedHealth, Op, Result, Snapshot, StampValue, Status, Store,
    StoreError, SyncPolicy,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Semaphore;

use crate::changes::Changes;
use crate::source::StampSource;

/// How many store calls of one dict run on the blocking pool at once, by default.
///
/// Why a bound, and why this one: a call on the blocking pool holds a thread and a store
/// connection for as long as the server takes. Unbounded, a paused or slow server turns 1,000
/// waiting reads into 512 parked threads (tokio's pool limit) and as many connections, which
/// the server then has to accept all at once when it comes back. Bounded, the waiting reads
/// are cheap async waiters. 16 is more than a store needs to saturate a loopback server (a
/// round trip is ~20–50 µs, so 16 in flight is ~300k calls/s, past what one process asks of
/// a settings store) and within the default pool sizes of the stores' clients (the Redis
/// store keeps one connection per concurrent caller). Raise it with
/// [`Builder::max_blocking`] for a store far away (a 5 ms round trip allows ~3k calls/s).
pub const DEFAULT_MAX_BLOCKING: usize = 16;

/// Where a call that may wait on I/O runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Offload {
    /// On tokio's blocking pool (`spawn_blocking`), at most
    /// [`max_blocking`](Builder::max_blocking) at a time. The task awaits the result, so a
    /// `select!` or `timeout` around the call can give up on it (the call itself still runs to
    /// its end). Costs two thread hand-offs per call. The default.
    #[default]
    Pool,
    /// On the calling worker thread, with `tokio::task::block_in_place`: tokio first hands the
    /// worker's other tasks to another thread, so the executor keeps running; no hand-off back
    /// is needed. Faster, but the calling task does nothing else meanwhile: a `select!`,
    /// `join!` or `timeout` in the same task waits for the call. On a current-thread runtime,
    /// where `block_in_place` is not allowed, calls use the pool.
    InPlace,
}

/// An async handle on a [`DurableDict`]: cheap to clone, `Send + Sync`.
///
/// A read the cache can answer without I/O returns at once, without leaving the task
/// ([`answers_locally`](Self::answers_locally)). A `get` or `contains_key` that checks the
/// stamp does so on the task when the dict has a [`StampSource`] (the store's own async
/// client, [`Builder::stamp_source`]) and that check confirms the cache. Every other call runs
/// the dict's blocking call on tokio's blocking pool, at most [`DEFAULT_MAX_BLOCKING`] at a
/// time (configurable), so it never stalls the executor. Calls must be made inside a tokio
/// runtime (either flavour).
///
/// **Cancellation.** Dropping a pending call's future before it started on the pool does
/// nothing. Once started, the dict's call runs to its end on the pool, whether or not anyone
/// awaits it: a write is either applied to store and cache together or not at all, as with
/// the sync dict, never half-written; only its answer is lost.
///
/// The sync dict is still at hand ([`sync_dict`](Self::sync_dict)) and shares the cache.
pub struct AsyncDict<V> {
    shared: Arc<Shared<V>>,
}

struct Shared<V> {
    dict: Arc<DurableDict<V>>,
    offload: Offload,
    /// Checks the stamp on the task, for a dict whose reads check it (no change feed).
    source: Option<Arc<dyn StampSource>>,
    /// Bounds this dict's store calls in flight: on the blocking pool and on the task alike.
    permits: Arc<Semaphore>,
}

impl<V> Clone for AsyncDict<V> {
    fn clone(&self) -> Self {
        AsyncDict {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<V> fmt::Debug for AsyncDict<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDict")
            .field("dict", &self.shared.dict)
            .field("source", &self.shared.source)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AsyncDict`]; the async twin of [`durabledict_core::Builder`].
pub struct Builder<V> {
    store: Arc<dyn Store>,
    encoding: Box<dyn Encoding<V>>,
    policy: SyncPolicy,
    serve_stale: Option<Duration>,
    max_blocking: usize,
    offload: Offload,
    source: Option<Arc<dyn StampSource>>,
}

impl<V> fmt::Debug for Builder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("store", &self.store)
            .field("encoding", &self.encoding)
            .field("policy", &self.policy)
            .field("serve_stale", &self.serve_stale)
            .field("max_blocking", &self.max_blocking)
            .field("offload", &self.offload)
            .field("source", &self.source)
            .finish()
    }
}

impl<V: Send + Sync + 'static> Builder<V> {
    /// When reads check the stamp; [`SyncPolicy::Always`] by default.
    pub fn policy(mut self, policy: SyncPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// See [`durabledict_core::Builder::serve_stale_for`].
    pub fn serve_stale_for(mut self, max_age: Duration) -> Self {
        self.serve_stale = Some(max_age);
        self
    }

    /// How many store calls of this dict run on the blocking pool at once (at least 1);
    /// [`DEFAULT_MAX_BLOCKING`] by default.
    pub fn max_blocking(mut self, calls: usize) -> Self {
        self.max_blocking = calls.max(1);
        self
    }

    /// Where calls that may wait on I/O run; [`Offload::Pool`] by default.
    pub fn offload(mut self, offload: Offload) -> Self {
        self.offload = offload;
        self
    }

    /// Checks the stamp with `source`, on the calling task, for the reads that check it
    /// (`get`, `get_or`, `contains_key` under `Always`, `AtMostEvery` past its window, `Watch`
    /// on a store that cannot push): one async round trip instead of a blocking-pool call.
    /// `source` must read the stamp of this builder's store and keep its epoch (see
    /// [`StampSource`]'s contract): `RedisStore::async_stamp()` (durabledict-redis, feature
    /// `aio`) does. A check that fails, or finds a stamp or epoch other than the cache's, hands
    /// the read to the blocking pool, which reloads or reports the error as the sync dict does.
    /// `None` (a store with no such client) keeps the blocking pool.
    ///
    /// Ignored for a dict that needs no checks (`Manual`) or takes its confirmations from a
    /// change feed (`Watch` on a store that pushes).
    pub fn stamp_source<S: StampSource>(mut self, source: Option<S>) -> Self {
        self.source = source.map(|source| Arc::new(source) as Arc<dyn StampSource>);
        self
    }

    /// Prepares the store and loads every entry, on the blocking pool.
    pub async fn build(self) -> Result<AsyncDict<V>> {
        let mut builder = DurableDict::builder(self.store, self.encoding).policy(self.policy);
        if let Some(max_age) = self.serve_stale {
            builder = builder.serve_stale_for(max_age);
        }
        let dict = run_blocking(Op::Load, move || builder.build()).await?;
        let checks = self.policy != SyncPolicy::Manual && dict.status().feed == FeedHealth::None;
        Ok(AsyncDict::with_parts(
            Arc::new(dict),
            self.source.filter(|_| checks),
            self.max_blocking,
            self.offload,
        ))
    }
}

impl<V: Send + Sync + 'static> AsyncDict<V> {
    /// Starts building a dict on `store`, storing values with `encoding`.
    pub fn builder(
        store: impl Store + 'static,
        encoding: impl Encoding<V> + 'static,
    ) -> Builder<V> {
        Builder {
            store: Arc::new(store),
            encoding: Box::new(encoding),
            policy: SyncPolicy::Always,
            serve_stale: None,
            max_blocking: DEFAULT_MAX_BLOCKING,
            offload: Offload::Pool,
            source: None,
        }
    }

    /// Wraps a dict built by the sync API. Its reads answer locally exactly when the dict's
    /// would ([`DurableDict::answers_locally`]); the others run on the blocking pool (there is
    /// no [`StampSource`]: build through [`builder`](Self::builder) for one).
    pub fn from_sync(dict: Arc<DurableDict<V>>) -> Self {
        AsyncDict::with_parts(dict, None, DEFAULT_MAX_BLOCKING, Offload::Pool)
    }

    fn with_parts(
        dict: Arc<DurableDict<V>>,
        source: Option<Arc<dyn StampSource>>,
        max_blocking: usize,
        offload: Offload,
    ) -> Self {
        AsyncDict {
            shared: Arc::new(Shared {
                dict,
                offload,
                source,
                permits: Arc::new(Semaphore::new(max_blocking)),
            }),
        }
    }

    /// The sync dict underneath; it shares the cache with this handle.
    pub fn sync_dict(&self) -> &Arc<DurableDict<V>> {
        &self.shared.dict
    }

    /// Whether a read now answers from the cache without I/O, and so without leaving the task
    /// ([`DurableDict::answers_locally`]): always under `Manual`; under `Watch` while the feed
    /// is healthy and the cache was confirmed since its last notice; under `AtMostEvery(d)`
    /// within `d` of the last check.
    pub fn answers_locally(&self) -> bool {
        self.shared.dict.answers_locally()
    }

    /// Whether reads that check the stamp check it on the task ([`Builder::stamp_source`]).
    pub fn checks_on_task(&self) -> bool {
        self.shared.source.is_some()
    }

    // ---- reads -------------------------------------------------------------------------

    /// The value at `key`; see [`DurableDict::get`].
    #[inline]
    pub async fn get(&self, key: &str) -> Result<Option<Arc<V>>> {
        if let Some(answer) = self.shared.dict.try_get_local(key) {
            return answer;
        }
        if let Some(answer) = self.checked_on_task(key).await {
            return answer;
        }
        let key = key.to_owned();
        self.call(Op::Check, move |dict| dict.get(&key)).await
    }

    /// The value at `key`, or `default` when absent.
    pub async fn get_or(&self, key: &str, default: V) -> Result<Arc<V>> {
        Ok(self.get(key).await?.unwrap_or_else(|| Arc::new(default)))
    }

    /// Whether `key` is present (a key whose stored value does not decode is not, as in
    /// [`DurableDict::contains_key`]).
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        let present = |answer: Result<Option<Arc<V>>>| match answer {
            Ok(found) => Ok(found.is_some()),
            Err(Error::Decode { .. }) => Ok(false),
            Err(e) => Err(e),
        };
        if let Some(answer) = self.shared.dict.try_get_local(key) {
            return present(answer);
        }
        if let Some(answer) = self.checked_on_task(key).await {
            return present(answer);
        }
        let key = key.to_owned();
        self.call(Op::Check, move |dict| dict.contains_key(&key))
            .await
    }

    /// How many entries there are. Local when the cache answers locally
    /// ([`DurableDict::try_len_local`], one decision, so a window or feed that ends meanwhile
    /// never turns it into I/O on the task); else on the blocking pool.
    pub async fn len(&self) -> Result<usize> {
        if let Some(len) = self.shared.dict.try_len_local() {
            return Ok(len);
        }
        self.call(Op::Check, |dict| dict.len()).await
    }

    /// Whether there are no entries.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The keys, from one consistent snapshot. Local when the cache answers locally and its
    /// snapshot is already materialized ([`DurableDict::try_keys_local`]); else on the blocking
    /// pool: materializing one after own writes waits for a write of this dict in progress,
    /// which may be waiting on the store.
    pub async fn keys(&self) -> Result<Vec<String>> {
        if let Some(keys) = self.shared.dict.try_keys_local() {
            return Ok(keys);
        }
        self.call(Op::Check, |dict| dict.keys()).await
    }

    /// An immutable snapshot of every entry. Always on the blocking pool: materializing one
    /// after own writes waits for a write of this dict in progress (see
    /// [`DurableDict::snapshot`]).
    pub async fn snapshot(&self) -> Result<Arc<Snapshot<V>>> {
        self.call(Op::Check, |dict| dict.snapshot()).await
    }

    /// The store's stamp now (one round trip).
    pub async fn last_updated(&self) -> Result<Option<StampValue>> {
        self.call(Op::Check, |dict| dict.last_updated()).await
    }

    /// Checks the stamp and reloads when it changed, whatever the policy; returns whether it
    /// reloaded.
    pub async fn sync(&self) -> Result<bool> {
        self.call(Op::Check, |dict| dict.sync()).await
    }

    /// The dict's health; no I/O.
    pub fn status(&self) -> Status {
        self.shared.dict.status()
    }

    /// The sync policy.
    pub fn policy(&self) -> SyncPolicy {
        self.shared.dict.policy()
    }

    // ---- writes ------------------------------------------------------------------------

    /// Writes `value` at `key`; see [`DurableDict::insert`].
    pub async fn insert(&self, key: &str, value: V) -> Result<()> {
        let key = key.to_owned();
        self.call(Op::Insert, move |dict| dict.insert(&key, value))
            .await
    }

    /// Removes `key` and returns the value it held; see [`DurableDict::remove`].
    pub async fn remove(&self, key: &str) -> Result<Option<Arc<V>>> {
        let key = key.to_owned();
        self.call(Op::Remove, move |dict| dict.remove(&key)).await
    }

    /// Removes `key` and returns its value; [`Error::KeyNotFound`] when absent.
    pub async fn pop(&self, key: &str) -> Result<Arc<V>> {
        let key = key.to_owned();
        self.call(Op::Pop, move |dict| dict.pop(&key)).await
    }

    /// Returns the value at `key`, first inserting `default` when absent.
    pub async fn setdefault(&self, key: &str, default: V) -> Result<Arc<V>> {
        let key = key.to_owned();
        self.call(Op::SetDefault, move |dict| dict.setdefault(&key, default))
            .await
    }

    /// Writes every entry as one batch; see [`DurableDict::update`].
    pub async fn update<K, I>(&self, entries: I) -> Result<()>
    where
        K: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        let entries: Vec<(String, V)> = entries.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self.call(Op::Update, move |dict| dict.update(entries))
            .await
    }

    /// Removes every entry.
    pub async fn clear(&self) -> Result<()> {
        self.call(Op::Clear, |dict| dict.clear()).await
    }

    // ---- internals ---------------------------------------------------------------------

    /// The answer to a `get` of `key` from a stamp check made on the task with the dict's
    /// [`StampSource`]; `None` when there is no source, the check failed (the source bumped
    /// the epoch where the failure may hide a restart), or it did not confirm the cache (the
    /// store's epoch changed during it, or the dict needs a reload): the blocking pool then
    /// decides. Waits for a permit like a blocking call, so a paused server holds at most
    /// `max_blocking` of this dict's connections.
    async fn checked_on_task(&self, key: &str) -> Option<Result<Option<Arc<V>>>> {
        let source = self.shared.source.as_ref()?;
        let _permit = self.shared.permits.acquire().await.ok()?;
        let epoch = source.epoch();
        let stamp = source.last_updated().await.ok()?;
        if source.epoch() != epoch {
            return None;
        }
        self.shared.dict.get_confirmed(key, epoch, stamp)
    }

    /// Runs `f` on the blocking pool (or in place, see [`Offload`]).
    async fn call<T, F>(&self, op: Op, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&DurableDict<V>) -> Result<T> + Send + 'static,
    {
        // Waiting here is an async wait: a cancelled call that never got a permit did nothing.
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .map_err(|_| shutting_down(op))?;
        let dict = Arc::clone(&self.shared.dict);
        let run = move || {
            let _permit = permit;
            f(&dict)
        };
        if self.shared.offload == Offload::InPlace
            && Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread
        {
            return tokio::task::block_in_place(run);
        }
        run_blocking(op, run).await
    }
}

impl<V: PartialEq + Send + Sync + 'static> AsyncDict<V> {
    /// A stream of the dict's changes; see [`DurableDict::subscribe`] for what is announced
    /// and when. Subscribe first (this returns once subscribed), then read a
    /// [`snapshot`](Self::snapshot): every change applied after that is announced.
    ///
    /// Subscribing waits for an own write in progress (it takes the dict's update lock); it
    /// waits off the executor, so a write stuck on a paused server blocks no other task.
    pub async fn changes(&self) -> Changes<V> {
        Changes::new(
            &self.shared.dict,
            durabledict_core::DEFAULT_SUBSCRIPTION_CAPACITY,
        )
        .await
    }

    /// [`changes`](Self::changes) with a buffer of `capacity` events (at least 1) before the
    /// stream misses changes and yields [`Event::Lagged`](durabledict_core::Event::Lagged).
    pub async fn changes_with_capacity(&self, capacity: usize) -> Changes<V> {
        Changes::new(&self.shared.dict, capacity).await
    }
}

/// Runs `f` on tokio's blocking pool. A panic in `f` resumes on the caller.
async fn run_blocking<T, F>(op: Op, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(_) => Err(shutting_down(op)),
    }
}

/// The runtime is shutting down and no longer runs blocking calls.
fn shutting_down(op: Op) -> Error {
    Error::Store {
        op,
        key: None,
        source: StoreError::unavailable("the tokio runtime is shutting down"),
    }
}
