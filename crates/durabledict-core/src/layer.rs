//! [`Layered`]: a [`Store`] wrapped by a [`Layer`] that sees every call (counting, limiting,
//! tracing, fault injection), forwarding every method of the trait.
//!
//! Why not a hand-written wrapper: `Store` grows methods with default bodies, and a wrapper
//! that forwards by hand silently falls back to the default for each method added later (a
//! non-atomic `pop`, an `epoch` that never changes). `Layered` lives next to the trait and is
//! changed with it, so a wrapper built on it forwards everything, including what comes later.

use std::fmt;
use std::sync::Arc;

use crate::StoreError;
use crate::feed::Feed;
use crate::store::{Durables, SetDefault, StampValue, Store};

/// Which [`Store`] method a call is, with the key it concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call<'a> {
    /// [`Store::init`].
    Init,
    /// [`Store::persist`] of a key.
    Persist(&'a str),
    /// [`Store::depersist`] of a key.
    Depersist(&'a str),
    /// [`Store::durables`]: a full load.
    Durables,
    /// [`Store::last_updated`]: a stamp check.
    LastUpdated,
    /// [`Store::get`] of a key.
    Get(&'a str),
    /// [`Store::pop`] of a key.
    Pop(&'a str),
    /// [`Store::setdefault`] of a key.
    SetDefault(&'a str),
    /// [`Store::persist_many`] of this many entries.
    PersistMany(usize),
    /// [`Store::clear`].
    Clear,
}

impl Call<'_> {
    /// The method's name, as in the trait.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Init => "init",
            Call::Persist(_) => "persist",
            Call::Depersist(_) => "depersist",
            Call::Durables => "durables",
            Call::LastUpdated => "last_updated",
            Call::Get(_) => "get",
            Call::Pop(_) => "pop",
            Call::SetDefault(_) => "setdefault",
            Call::PersistMany(_) => "persist_many",
            Call::Clear => "clear",
        }
    }

    /// The key the call concerns, when one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Call::Persist(key)
            | Call::Depersist(key)
            | Call::Get(key)
            | Call::Pop(key)
            | Call::SetDefault(key) => Some(key),
            _ => None,
        }
    }
}

/// What a wrapper does around each call of a [`Store`] that may do I/O.
///
/// [`validate_key`](Store::validate_key), [`max_value_len`](Store::max_value_len),
/// [`epoch`](Store::epoch), [`feed`](Store::feed) and [`keyspace`](Store::keyspace) are
/// forwarded without it: they are local and on hot paths.
pub trait Layer: Send + Sync + fmt::Debug {
    /// Runs `call` (by calling `run`, at most once), doing whatever the layer does around it.
    /// The default just runs it.
    fn around<T>(
        &self,
        call: Call<'_>,
        run: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _ = call;
        run()
    }
}

/// A [`Store`] whose every call goes through a [`Layer`], and every method (those added later
/// too) reaches the inner store.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use durabledict_core::{Call, DurableDict, Layer, Layered, MemoryStore, Raw, StoreError};
///
/// /// Counts full loads.
/// #[derive(Debug, Default)]
/// struct CountLoads(AtomicUsize);
///
/// impl Layer for CountLoads {
///     fn around<T>(
///         &self,
///         call: Call<'_>,
///         run: impl FnOnce() -> Result<T, StoreError>,
///     ) -> Result<T, StoreError> {
///         if call == Call::Durables {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///         run()
///     }
/// }
///
/// let store = Layered::new(CountLoads::default(), MemoryStore::new());
/// let dict = DurableDict::<String>::builder(store, Raw).build()?;
/// dict.insert("k", "v".to_string())?;
/// # Ok::<(), durabledict_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Layered<L, S> {
    layer: L,
    inner: S,
}

impl<L: Layer, S: Store> Layered<L, S> {
    /// Wraps `inner` in `layer`.
    pub fn new(layer: L, inner: S) -> Self {
        Layered { layer, inner }
    }

    /// The layer.
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the layer and the store.
    pub fn into_parts(self) -> (L, S) {
        (self.layer, self.inner)
    }
}

impl<L: Layer, S: Store> Store for Layered<L, S> {
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        self.layer
            .around(Call::Persist(key), || self.inner.persist(key, value))
    }

    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        self.layer
            .around(Call::Depersist(key), || self.inner.depersist(key))
    }

    fn durables(&self) -> Result<Durables, StoreError> {
        self.layer.around(Call::Durables, || self.inner.durables())
    }

    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.layer
            .around(Call::LastUpdated, || self.inner.last_updated())
    }

    fn init(&self) -> Result<(), StoreError> {
        self.layer.around(Call::Init, || self.inner.init())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.layer.around(Call::Get(key), || self.inner.get(key))
    }

    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        self.layer.around(Call::Pop(key), || self.inner.pop(key))
    }

    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        self.layer
            .around(Call::SetDefault(key), || self.inner.setdefault(key, value))
    }

    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        self.layer.around(Call::PersistMany(entries.len()), || {
            self.inner.persist_many(entries)
        })
    }

    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        self.layer.around(Call::Clear, || self.inner.clear())
    }

    fn validate_key(&self, key: &str) -> Result<(), String> {
        self.inner.validate_key(key)
    }

    fn max_value_len(&self) -> Option<usize> {
        self.inner.max_value_len()
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    fn feed(&self) -> Option<Arc<Feed>> {
        self.inner.feed()
    }

    /// A layer cannot change what a read returns (it runs the call or fails it), so the
    /// wrapped store's answer holds.
    fn feed_shares_reads(&self) -> bool {
        self.inner.feed_shares_reads()
    }

    fn keyspace(&self) -> Option<&str> {
        self.inner.keyspace()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// Overrides every method, recording which ran: a default body reached instead of the
    /// override would record something else (`pop`'s default records `get` and `depersist`).
    #[derive(Debug, Default)]
    struct Marked(Mutex<Vec<&'static str>>);

    impl Marked {
        fn mark(&self, name: &'static str) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(name);
        }
    }

    impl Store for Marked {
        fn persist(&self, _: &str, _: &[u8]) -> Result<StampValue, StoreError> {
            self.mark("persist");
            Ok(1)
        }
        fn depersist(&self, _: &str) -> Result<Option<StampValue>, StoreError> {
            self.mark("depersist");
            Ok(None)
        }
        fn durables(&self) -> Result<Durables, StoreError> {
            self.mark("durables");
            Ok(Durables::new(HashMap::new(), None))
        }
        fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
            self.mark("last_updated");
            Ok(None)
        }
        fn init(&self) -> Result<(), StoreError> {
            self.mark("init");
            Ok(())
        }
        fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.mark("get");
            Ok(None)
        }
        fn pop(&self, _: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
            self.mark("pop");
            Ok(None)
        }
        fn setdefault(&self, _: &str, _: &[u8]) -> Result<SetDefault, StoreError> {
            self.mark("setdefault");
            Ok(SetDefault::Inserted(1))
        }
        fn persist_many(&self, _: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
            self.mark("persist_many");
            Ok(None)
        }
        fn clear(&self) -> Result<Option<StampValue>, StoreError> {
            self.mark("clear");
            Ok(None)
        }
        fn validate_key(&self, _: &str) -> Result<(), String> {
            self.mark("validate_key");
            Err("marked".into())
        }
        fn max_value_len(&self) -> Option<usize> {
            self.mark("max_value_len");
            Some(7)
        }
        fn epoch(&self) -> u64 {
            self.mark("epoch");
            42
        }
        fn feed(&self) -> Option<Arc<Feed>> {
            self.mark("feed");
            Some(Arc::new(Feed::new()))
        }
        fn feed_shares_reads(&self) -> bool {
            self.mark("feed_shares_reads");
            true
        }
        fn keyspace(&self) -> Option<&str> {
            self.mark("keyspace");
            Some("marked")
        }
    }

    /// Records the calls it sees.
    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<&'static str>>);

    impl Layer for Seen {
        fn around<T>(
            &self,
            call: Call<'_>,
            run: impl FnOnce() -> Result<T, StoreError>,
        ) -> Result<T, StoreError> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(call.name());
            run()
        }
    }

    #[test]
    fn every_method_reaches_the_inner_override() -> Result<(), StoreError> {
        let store = Layered::new(Seen::default(), Marked::default());
        store.init()?;
        store.persist("k", b"v")?;
        store.depersist("k")?;
        store.durables()?;
        store.last_updated()?;
        store.get("k")?;
        store.pop("k")?;
        store.setdefault("k", b"v")?;
        store.persist_many(&[("k", b"v")])?;
        store.clear()?;
        assert!(store.validate_key("k").is_err());
        assert_eq!(store.max_value_len(), Some(7));
        assert_eq!(store.epoch(), 42);
        assert!(store.feed().is_some());
        assert!(store.feed_shares_reads());
        assert_eq!(store.keyspace(), Some("marked"));
        let io = [
            "init",
            "persist",
            "depersist",
            "durables",
            "last_updated",
            "get",
            "pop",
            "setdefault",
            "persist_many",
            "clear",
        ];
        let local = [
            "validate_key",
            "max_value_len",
            "epoch",
            "feed",
            "feed_shares_reads",
            "keyspace",
        ];
        let reached = store
            .inner()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert_eq!(reached, [&io[..], &local[..]].concat());
        let seen = store
            .layer()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        assert_eq!(seen, io);
        Ok(())
    }
}
