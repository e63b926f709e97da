//! [`AsyncDict`]: the async handle, and its [`Builder`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use durabledict_core::{
    DurableDict, Encoding, Error, Op, Result, Snapshot, StampValue, Status, Store, StoreError,
    SyncPolicy,
};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::Semaphore;

use crate::changes::Changes;
use crate::fresh::Freshness;

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
/// ([`answers_locally`](Self::answers_locally)); every other call runs the dict's blocking
/// call on tokio's blocking pool, at most [`DEFAULT_MAX_BLOCKING`] at a time (configurable),
/// so it never stalls the executor. Calls must be made inside a tokio runtime (either flavour).
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
    fresh: Freshness,
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
            .field("fresh", &self.shared.fresh)
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

    /// Prepares the store and loads every entry, on the blocking pool.
    pub async fn build(self) -> Result<AsyncDict<V>> {
        // The facade keeps the store's feed to tell, without I/O, whether a `Watch` read
        // answers locally; the store hands the dict the same feed.
        let feed = (self.policy == SyncPolicy::Watch)
            .then(|| self.store.feed())
            .flatten();
        let fresh = Freshness::new(
            self.policy,
            feed.map(|feed| (Arc::clone(&self.store), feed)),
        );
        let mut builder = DurableDict::builder(self.store, self.encoding).policy(self.policy);
        if let Some(max_age) = self.serve_stale {
            builder = builder.serve_stale_for(max_age);
        }
        let seen = fresh.before_build();
        let dict = run_blocking(Op::Load, move || builder.build()).await?;
        fresh.built(seen);
        Ok(AsyncDict::with_parts(
            Arc::new(dict),
            fresh,
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
        }
    }

    /// Wraps a dict built by the sync API. Its reads answer locally under `Manual` and
    /// `AtMostEvery` as with [`builder`](Self::builder); under `Watch` the facade cannot see
    /// the feed of a dict it did not build, so every read runs on the blocking pool (correct,
    /// slower). Build through [`builder`](Self::builder) for local `Watch` reads.
    pub fn from_sync(dict: Arc<DurableDict<V>>) -> Self {
        let fresh = Freshness::new(dict.policy(), None);
        AsyncDict::with_parts(dict, fresh, DEFAULT_MAX_BLOCKING, Offload::Pool)
    }

    fn with_parts(
        dict: Arc<DurableDict<V>>,
        fresh: Freshness,
        max_blocking: usize,
        offload: Offload,
    ) -> Self {
        AsyncDict {
            shared: Arc::new(Shared {
                dict,
                offload,
                fresh,
                permits: Arc::new(Semaphore::new(max_blocking)),
            }),
        }
    }

    /// The sync dict underneath; it shares the cache with this handle.
    pub fn sync_dict(&self) -> &Arc<DurableDict<V>> {
        &self.shared.dict
    }

    /// Whether a read now answers from the cache without I/O, and so without leaving the task:
    /// always under `Manual`; under `Watch` while the feed is healthy and the cache was
    /// confirmed since its last notice; under `AtMostEvery(d)` within `d` of the last check.
    pub fn answers_locally(&self) -> bool {
        self.shared.fresh.local()
    }

    // ---- reads -------------------------------------------------------------------------

    /// The value at `key`; see [`DurableDict::get`].
    #[inline]
    pub async fn get(&self, key: &str) -> Result<Option<Arc<V>>> {
        if self.shared.fresh.local() {
            return self.shared.dict.get(key);
        }
        let key = key.to_owned();
        self.call(Op::Check, move |dict| dict.get(&key)).await
    }

    /// The value at `key`, or `default` when absent.
    pub async fn get_or(&self, key: &str, default: V) -> Result<Arc<V>> {
        Ok(self.get(key).await?.unwrap_or_else(|| Arc::new(default)))
    }

    /// Whether `key` is present.
    pub async fn contains_key(&self, key: &str) -> Result<bool> {
        if self.shared.fresh.local() {
            return self.shared.dict.contains_key(key);
        }
        let key = key.to_owned();
        self.call(Op::Check, move |dict| dict.contains_key(&key))
            .await
    }

    /// How many entries there are.
    pub async fn len(&self) -> Result<usize> {
        if self.shared.fresh.local() {
            return self.shared.dict.len();
        }
        self.call(Op::Check, |dict| dict.len()).await
    }

    /// Whether there are no entries.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The keys, from one consistent snapshot.
    pub async fn keys(&self) -> Result<Vec<String>> {
        if self.shared.fresh.local() {
            return self.shared.dict.keys();
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

    /// Runs `f` on the blocking pool, and refreshes the facade's freshness record from it (a
    /// stamp check, a reload or an own write confirms the cache).
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
        let shared = Arc::clone(&self.shared);
        let run = move || {
            let _permit = permit;
            let seen = shared.fresh.before(&shared.dict);
            let result = f(&shared.dict);
            if result.is_ok() {
                shared.fresh.confirm(seen, &shared.dict);
            }
            result
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
    /// and when. Subscribe first, then read a [`snapshot`](Self::snapshot): every change
    /// applied after that is announced.
    pub fn changes(&self) -> Changes<V> {
        Changes::new(
            &self.shared.dict,
            durabledict_core::DEFAULT_SUBSCRIPTION_CAPACITY,
        )
    }

    /// [`changes`](Self::changes) with a buffer of `capacity` events (at least 1) before the
    /// stream misses changes and yields [`Event::Lagged`](durabledict_core::Event::Lagged).
    pub fn changes_with_capacity(&self, capacity: usize) -> Changes<V> {
        Changes::new(&self.shared.dict, capacity)
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
