//! The fixture for [`MemoryStore`]: the suite's own reference backend.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use durabledict_core::{BoxError, MemoryStore, Store};

use crate::fixture::{Capabilities, Fixture};

/// Runs the suite on [`MemoryStore`], one store per keyspace. A value limit can be set to
/// exercise [`Error::ValueTooLarge`](durabledict_core::Error::ValueTooLarge).
#[derive(Debug, Default)]
pub struct MemoryFixture {
    keyspaces: Mutex<HashMap<String, MemoryStore>>,
    max_value_len: Option<usize>,
    feed: bool,
}

impl MemoryFixture {
    /// Unbounded values.
    pub fn new() -> Self {
        Self::default()
    }

    /// Values of at most `max` encoded bytes.
    pub fn with_max_value_len(max: usize) -> Self {
        MemoryFixture {
            max_value_len: Some(max),
            ..Self::default()
        }
    }

    /// Stores with a change feed ([`MemoryStore::with_feed`]), for the push properties.
    pub fn with_feed() -> Self {
        MemoryFixture {
            feed: true,
            ..Self::default()
        }
    }

    fn keyspace(&self, name: &str) -> MemoryStore {
        let mut keyspaces = self
            .keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        keyspaces
            .entry(name.to_owned())
            .or_insert_with(|| match self.max_value_len {
                Some(max) => MemoryStore::with_max_value_len(max),
                None if self.feed => MemoryStore::with_feed(),
                None => MemoryStore::new(),
            })
            .clone()
    }
}

impl Fixture for MemoryFixture {
    fn store(&self, keyspace: &str) -> Result<Box<dyn Store>, BoxError> {
        Ok(Box::new(self.keyspace(keyspace)))
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::new();
        let caps = if self.feed {
            caps.feed(Duration::from_millis(100))
        } else {
            caps
        };
        match self.max_value_len {
            Some(max) => caps.max_value_len(max),
            None => caps,
        }
    }

    fn cleanup(&self, keyspace: &str) -> Result<(), BoxError> {
        self.keyspaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(keyspace);
        Ok(())
    }

    fn lose_stamp(&self, keyspace: &str) -> Result<bool, BoxError> {
        self.keyspace(keyspace).lose_stamp();
        Ok(true)
    }

    fn write_unstamped(&self, keyspace: &str, key: &str, value: &[u8]) -> Result<bool, BoxError> {
        self.keyspace(keyspace).write_unstamped(key, value);
        Ok(true)
    }

    /// Cuts the feed; it comes back 20 ms later, as a store's reconnection would bring it.
    fn cut_feed(&self, keyspace: &str) -> Result<bool, BoxError> {
        if !self.feed {
            return Ok(false);
        }
        let store = self.keyspace(keyspace);
        store.cut_feed();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            store.restore_feed();
        });
        Ok(true)
    }
}
