//! A dict that only looks: built on a store whose [`Store::init`] does nothing, so that
//! `list` and `watch` create no SQLite file, table, Redis stamp or ZooKeeper node, as the
//! other reading commands do not.

use std::sync::Arc;

use durabledict::{
    DurableDict, Durables, Feed, SetDefault, StampValue, Store, StoreError, SyncPolicy, Value,
};

use crate::failure::Failure;
use crate::values::Values;

/// A dict of `store` under `policy`, loaded, with nothing prepared.
pub(crate) fn dict(
    store: Box<dyn Store>,
    values: Values,
    policy: SyncPolicy,
) -> Result<DurableDict<Value>, Failure> {
    Ok(DurableDict::builder(Unprepared(store), values)
        .policy(policy)
        .build()?)
}

/// Every method forwarded but `init`. (A [`durabledict::Layer`] cannot replace a call's
/// result, so this forwards by hand: a method added to `Store` later must be added here.)
#[derive(Debug)]
struct Unprepared(Box<dyn Store>);

impl Store for Unprepared {
    fn init(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        self.0.persist(key, value)
    }
    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        self.0.depersist(key)
    }
    fn durables(&self) -> Result<Durables, StoreError> {
        self.0.durables()
    }
    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        self.0.last_updated()
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        self.0.pop(key)
    }
    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        self.0.setdefault(key, value)
    }
    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        self.0.persist_many(entries)
    }
    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        self.0.clear()
    }
    fn validate_key(&self, key: &str) -> Result<(), String> {
        self.0.validate_key(key)
    }
    fn max_value_len(&self) -> Option<usize> {
        self.0.max_value_len()
    }
    fn epoch(&self) -> u64 {
        self.0.epoch()
    }
    fn feed(&self) -> Option<Arc<Feed>> {
        self.0.feed()
    }
    fn feed_shares_reads(&self) -> bool {
        self.0.feed_shares_reads()
    }
    fn keyspace(&self) -> Option<&str> {
        self.0.keyspace()
    }
}
