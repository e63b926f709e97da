//! # durabledict
//!
//! A dictionary whose values live in a durable, shared store (Redis, SQL through diesel,
//! ZooKeeper) and are cached in process. Reads come from the in-process cache; the cache
//! reloads only when a cheap `last_updated` stamp says the store changed. Data is compatible
//! with Python's durabledict in both directions.
//!
//! This crate is the facade: it re-exports the core ([`DurableDict`], the [`Store`], [`Stamp`]
//! and [`Encoding`] traits, [`MemoryStore`]), the encodings ([`Pickle`], [`Json`], [`Raw`],
//! [`Fallback`]), and, behind one cargo feature each, the backends:
//!
//! | feature | module | store |
//! |---|---|---|
//! | `redis` | `durabledict::redis` | a Redis hash, stamp in a Redis key |
//! | `sqlite`, `postgres`, `mysql` | `durabledict::sql` | an SQL table, stamp in an SQL row |
//! | `zookeeper` | `durabledict::zookeeper` | one znode per key, stamp from watches |
//! | `memcache` | `durabledict::memcache` | a [`Stamp`] kept in memcached |
//!
//! Pickle is the default encoding, as in the original: [`builder`] starts a dict of any serde
//! type stored as Python pickles, [`dynamic`] one of arbitrary Python values ([`Value`]: the
//! builtins, and `datetime`'s, `Decimal`, `UUID` and `complex` kept as their Python types).
//!
//! ```
//! use durabledict::{MemoryStore, SyncPolicy};
//!
//! let store = MemoryStore::new();
//! let flags = durabledict::builder::<bool>(store.clone())
//!     .policy(SyncPolicy::Always)
//!     .build()?;
//! flags.insert("new-checkout", true)?;
//!
//! // Another process sharing the store sees the change on its next read.
//! let elsewhere = durabledict::builder::<bool>(store).build()?;
//! assert_eq!(elsewhere.get("new-checkout")?.as_deref(), Some(&true));
//! # Ok::<(), durabledict::Error>(())
//! ```
#![warn(missing_docs)]

mod open;

pub use durabledict_core::{
    BoxError, Builder, Call, Change, DEFAULT_SUBSCRIPTION_CAPACITY, DurableDict, Durables,
    Encoding, Error, Event, Failure, Feed, FeedHealth, FeedState, Layer, Layered, MemoryStamp,
    MemoryStore, Op, Raw, Report, Result, SetDefault, Snapshot, Stamp, StampValue, Status, Store,
    StoreError, StoreErrorKind, Subscription, SyncPolicy, clock_seed,
};
pub use durabledict_encoding::{
    Complex, DEFAULT_MAX_DECODED_SIZE, Date, DateTime, Decimal, DynamicJson, DynamicPickle,
    Fallback, HashableValue, Json, Pickle, PickleHashableValue, PickleValue, Protocol, Python2Str,
    RangeError, SafeUuid, Surrogates, Time, TimeDelta, TimeZone, Uuid, Value,
};
pub use open::{
    DEFAULT_KEYSPACE, OpenError, OpenOptions, SCHEMES, Scheme, StoreKind, UnknownEncoding,
    ValueEncoding, open, open_store,
};

/// The encodings, with their error types and options.
pub mod encoding {
    pub use durabledict_encoding::*;
}

/// The Redis store.
#[cfg(feature = "redis")]
pub mod redis {
    pub use durabledict_redis::*;
}

/// The SQL store (SQLite, PostgreSQL, MySQL / MariaDB) and its SQL-row stamp.
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub mod sql {
    pub use durabledict_diesel::*;
}

/// The ZooKeeper store.
#[cfg(feature = "zookeeper")]
pub mod zookeeper {
    pub use durabledict_zookeeper::*;
}

/// The memcached stamp.
#[cfg(feature = "memcache")]
pub mod memcache {
    pub use durabledict_memcache_stamp::*;
}

/// Starts building a dict of `V` on `store` with the default encoding, [`Pickle`]: what
/// Python durabledict stores, readable by it and from it.
pub fn builder<V>(store: impl Store + 'static) -> Builder<V>
where
    V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    DurableDict::builder(store, Pickle::new())
}

/// Starts building a dict of arbitrary Python values on `store`, stored as pickles: a
/// [`Value`] keeps tuples, sets, big integers and bytes as they are, and `datetime`'s,
/// `Decimal`, `UUID` and `complex` as the same Python types. A stored value of any other
/// class poisons only its key (`get` of it is [`Error::Decode`], [`Status::undecodable`]
/// names it, every other key is served).
///
/// ```
/// use durabledict::{Decimal, MemoryStore, Value};
///
/// let dict = durabledict::dynamic(MemoryStore::new()).build()?;
/// dict.insert("limits", Value::Tuple(vec![Value::I64(10), Value::F64(0.5)]))?;
/// assert!(matches!(dict.get("limits")?.as_deref(), Some(Value::Tuple(t)) if t.len() == 2));
/// let price: Decimal = "0.10".parse()?;
/// dict.insert("price", Value::Decimal(price.clone()))?;
/// assert_eq!(dict.get("price")?.as_deref(), Some(&Value::Decimal(price)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn dynamic(store: impl Store + 'static) -> Builder<Value> {
    DurableDict::builder(store, Pickle::<Value>::new())
}

/// The guide `docs/writing-a-backend.md`, whose example backend is compiled and run against
/// the whole conformance suite as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../docs/writing-a-backend.md")]
pub struct WritingABackend;

/// The README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadMe;
