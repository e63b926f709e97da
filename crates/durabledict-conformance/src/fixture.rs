//! What a backend hands the suite: [`Fixture`] and its [`Capabilities`].

use std::time::Duration;

use durabledict_core::{BoxError, Store};

/// How soon a change written through one store handle is seen by a dict on another handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The next `Always` read after the write returns sees it (a stamp kept with the data).
    Immediate,
    /// Within this bound (a stamp driven by change notifications, such as ZooKeeper watches).
    Within(Duration),
}

/// What a backend can and cannot do, so the suite asks of it exactly what it promises.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Capabilities {
    /// Keys the store must refuse with [`Error::InvalidKey`](durabledict_core::Error::InvalidKey).
    pub invalid_keys: Vec<String>,
    /// The largest encoded value the store holds, if bounded; the suite checks that one byte
    /// more is refused with [`Error::ValueTooLarge`](durabledict_core::Error::ValueTooLarge).
    pub max_value_len: Option<usize>,
    /// How soon another handle's writes are seen.
    pub visibility: Visibility,
    /// Whether writes from several threads and handles may run at once.
    pub concurrent_writes: bool,
    /// How many random cases the model test runs (fewer for slow servers).
    pub model_cases: u32,
    /// `Some(bound)` when the store pushes change notices ([`Store::feed`]): a change made
    /// anywhere reaches a dict under [`SyncPolicy::Watch`](durabledict_core::SyncPolicy::Watch)
    /// within `bound`, and reads between changes do no I/O.
    pub feed: Option<Duration>,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            invalid_keys: Vec::new(),
            max_value_len: None,
            visibility: Visibility::Immediate,
            concurrent_writes: true,
            model_cases: 64,
            feed: None,
        }
    }
}

impl Capabilities {
    /// The defaults: any key, unbounded values, immediate visibility.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the keys that must be refused.
    pub fn invalid_keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.invalid_keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the largest encoded value the store holds.
    pub fn max_value_len(mut self, max: usize) -> Self {
        self.max_value_len = Some(max);
        self
    }

    /// Sets how soon another handle's writes are seen.
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Declares a change feed whose notices arrive within `bound`.
    pub fn feed(mut self, bound: Duration) -> Self {
        self.feed = Some(bound);
        self
    }

    /// Sets how many random cases the model test runs.
    pub fn model_cases(mut self, cases: u32) -> Self {
        self.model_cases = cases;
        self
    }
}

/// A backend under test. The suite calls [`store`](Fixture::store) with a fresh random
/// keyspace per test (several times per keyspace: each call stands for another process), and
/// [`cleanup`](Fixture::cleanup) when the test ends, pass or fail.
///
/// The optional hooks let the suite act behind the dicts' backs; a backend that cannot do
/// something returns `Ok(false)` and the suite checks what still applies.
pub trait Fixture {
    /// A new, independent store handle on `keyspace` (its own connection where that applies).
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError>;

    /// What the backend promises.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Removes everything the test wrote under `keyspace` (values and stamp).
    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError>;

    /// Deletes the stamp of `keyspace` as an eviction or server restart would. `Ok(false)`
    /// when the backend's stamp cannot be lost this way.
    fn lose_stamp(&self, keyspace: &str) -> Result<bool, BoxError> {
        let _ = keyspace;
        Ok(false)
    }

    /// Writes `value` at `key` without bumping the stamp, as a program ignoring the stamp
    /// would. `Ok(false)` when the backend cannot (its stamp follows every change).
    fn write_unstamped(&self, keyspace: &str, key: &str, value: &[u8]) -> Result<bool, BoxError> {
        let _ = (keyspace, key, value);
        Ok(false)
    }

    /// Breaks the change feed of the store handles on `keyspace` as a lost connection would
    /// (for Redis, `CLIENT KILL` of the tracking connection); the store must notice and restore
    /// it by itself, as after a real loss. `Ok(false)` when the backend has no feed or cannot.
    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        let _ = keyspace;
        Ok(false)
    }
}

impl<F: Fixture + ?Sized> Fixture for &F {
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError> {
        (**self).store(keyspace)
    }
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError> {
        (**self).cleanup(keyspace)
    }
    fn lose_stamp(&self, keyspace: &str) -> Result<bool, BoxError> {
        (**self).lose_stamp(keyspace)
    }
    fn write_unstamped(&self, keyspace: &str, key: &str, value: &[u8]) -> Result<bool, BoxError> {
        (**self).write_unstamped(keyspace, key, value)
    }
    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        (**self).cut_feed(keyspace)
    }
}
