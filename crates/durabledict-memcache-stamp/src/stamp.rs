//! [`MemcacheStamp`] and its builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use durabledict_core::{Stamp, StampValue, StoreError, clock_seed};

use crate::client::{Client, parse_decimal};
use crate::error::MemcacheError;

/// memcached's longest key.
const MAX_KEY: usize = 250;
/// How often a bump tries again when the stamp vanishes between its `incr` and its `add`.
const BUMP_ATTEMPTS: usize = 5;

/// A [`Stamp`] kept in memcached under one key, with no expiry.
///
/// [`get`](Stamp::get) is one `mg` (meta get) round trip. [`bump`](Stamp::bump) is an `incr`;
/// when the key is missing (evicted, memcached restarted or flushed) it is re-created with `add`
/// from a clock seed ([`clock_seed`]), larger than any value handed out before, and when another
/// process's `add` won, the bump increments that value instead. Dicts see the missing stamp as
/// a change and reload once.
///
/// Values are stored as decimal text with the integer flag (2) that python-memcached and
/// pymemcache use, so Python reads them as `int`. Clones share the connections and the
/// [`epoch`](Stamp::epoch).
///
/// ```no_run
/// use durabledict_core::Stamp;
/// use durabledict_memcache_stamp::MemcacheStamp;
///
/// let stamp = MemcacheStamp::builder("memcache://127.0.0.1:11211")
///     .keyspace("settings") // key durabledict:settings:last_updated
///     .build()?;
/// let first = stamp.bump()?;
/// assert_eq!(stamp.get()?, Some(first));
/// # Ok::<(), durabledict_core::StoreError>(())
/// ```
#[derive(Clone)]
pub struct MemcacheStamp {
    client: Arc<Client>,
    key: Arc<str>,
}

impl fmt::Debug for MemcacheStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemcacheStamp")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl MemcacheStamp {
    /// Starts configuring a stamp on the memcached at `addr`: `host:port` or
    /// `memcache://host:port` (one server; the stamp is one key).
    pub fn builder(addr: impl Into<String>) -> MemcacheStampBuilder {
        MemcacheStampBuilder {
            addr: addr.into(),
            key: None,
            connect_timeout: Duration::from_secs(1),
            io_timeout: Duration::from_secs(1),
            max_idle: 8,
        }
    }

    /// The memcached key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Deletes the stamp, as an eviction or a memcached restart would: every dict reloads once
    /// and the next bump re-creates it. Returns whether it existed.
    pub fn delete(&self) -> Result<bool, StoreError> {
        Ok(self.client.delete()?)
    }

    fn to_stamp(value: u64) -> Result<StampValue, StoreError> {
        StampValue::try_from(value)
            .map_err(|_| MemcacheError::NotANumber(format!("{value} is out of range")).into())
    }
}

impl Stamp for MemcacheStamp {
    fn get(&self) -> Result<Option<StampValue>, StoreError> {
        match self.client.get()? {
            None => Ok(None),
            Some(bytes) => {
                let value = parse_decimal(&bytes).ok_or_else(|| {
                    MemcacheError::NotANumber(String::from_utf8_lossy(&bytes).into_owned())
                })?;
                Self::to_stamp(value).map(Some)
            }
        }
    }

    fn bump(&self) -> Result<StampValue, StoreError> {
        for _ in 0..BUMP_ATTEMPTS {
            if let Some(value) = self.client.incr()? {
                return Self::to_stamp(value);
            }
            let seed = clock_seed();
            // A seed is never negative: it comes from the clock.
            if self.client.add(seed.unsigned_abs())? {
                return Ok(seed);
            }
            // Another process re-created it first: increment theirs.
        }
        Err(MemcacheError::Protocol(format!(
            "the stamp {} vanished {BUMP_ATTEMPTS} times during one bump",
            self.key
        ))
        .into())
    }

    /// `add` of a clock seed: atomic create-if-missing, so stores starting at once never bump.
    fn init(&self) -> Result<(), StoreError> {
        if self.get()?.is_none() {
            // Whoever adds first wins; a lost race means the stamp now exists, which is the goal.
            self.client.add(clock_seed().unsigned_abs())?;
        }
        Ok(())
    }

    /// Bumped by every failed request (refused, timed out, broken connection) and by a new
    /// connection that reaches a memcached other than the last one seen (its `pid` and start
    /// time, from `stats`, once per connection): after a restart, writers that re-create the
    /// stamp and count from 1 (Python's `incr`, then `set 1`) can bring it back to the very
    /// number a dict synced at.
    fn epoch(&self) -> u64 {
        self.client.epoch()
    }
}

/// Configures a [`MemcacheStamp`]; made by [`MemcacheStamp::builder`].
#[derive(Debug, Clone)]
pub struct MemcacheStampBuilder {
    addr: String,
    key: Option<String>,
    connect_timeout: Duration,
    io_timeout: Duration,
    max_idle: usize,
}

impl MemcacheStampBuilder {
    /// Uses the key `durabledict:<keyspace>:last_updated`: one stamp per keyspace.
    pub fn keyspace(mut self, keyspace: &str) -> Self {
        self.key = Some(format!("durabledict:{keyspace}:last_updated"));
        self
    }

    /// Uses exactly this key, for example `:1:last_updated` to share the stamp of a Python
    /// Django `ModelDict` (Django's default key prefix and version around `last_updated`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// How long connecting may take; 1 s by default.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for memcached; 1 s by default.
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    /// How many idle connections are kept for later commands; 8 by default.
    pub fn max_idle(mut self, connections: usize) -> Self {
        self.max_idle = connections;
        self
    }

    /// Checks the key and address and makes the stamp. It does not connect: the first command
    /// does, and a failed connection is retried on the next command.
    pub fn build(self) -> Result<MemcacheStamp, StoreError> {
        let config = |msg: String| StoreError::from(MemcacheError::Config(msg));
        let key = self
            .key
            .ok_or_else(|| config("set a keyspace or a key".into()))?;
        if key.is_empty()
            || key.len() > MAX_KEY
            || key
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(config(format!(
                "memcached cannot take the key {key:?} (1 to {MAX_KEY} bytes, no spaces or \
                 control characters)"
            )));
        }
        let addr = self
            .addr
            .strip_prefix("memcache://")
            .unwrap_or(&self.addr)
            .trim_end_matches('/')
            .to_string();
        if addr.is_empty() || addr.contains(['/', '?', '#', '@']) || !addr.contains(':') {
            return Err(config(format!(
                "{:?} is not a memcached address (host:port or memcache://host:port)",
                self.addr
            )));
        }
        Ok(MemcacheStamp {
            client: Arc::new(
                Client::new(
                    addr,
                    key.clone(),
                    self.connect_timeout,
                    self.io_timeout,
                    self.max_idle,
                )
                .map_err(StoreError::from)?,
            ),
            key: key.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_addresses_are_checked() {
        let ok = MemcacheStamp::builder("memcache://127.0.0.1:11211")
            .keyspace("settings")
            .build()
            .expect("valid");
        assert_eq!(ok.key(), "durabledict:settings:last_updated");
        let django = MemcacheStamp::builder("127.0.0.1:11211")
            .key(":1:last_updated")
            .build()
            .expect("valid");
        assert_eq!(django.key(), ":1:last_updated");
        for bad_key in ["", "has space", "new\nline", &"k".repeat(251)] {
            assert!(
                MemcacheStamp::builder("127.0.0.1:1")
                    .key(bad_key)
                    .build()
                    .is_err(),
                "{bad_key:?}"
            );
        }
        assert!(
            MemcacheStamp::builder("127.0.0.1:1").build().is_err(),
            "no key"
        );
        assert!(
            MemcacheStamp::builder("redis://h:1/x")
                .key("k")
                .build()
                .is_err(),
            "not memcache"
        );
    }
}
