//! [`RedisStore`]: the [`Store`] over a Redis hash and its stamp key.

use std::fmt;
use std::sync::Arc;

use durabledict_core::{Durables, Feed, SetDefault, StampValue, Store, StoreError};
use redis::{ConnectionLike, RedisError, RedisResult, Script, Value};

use crate::builder::RedisStoreBuilder;
use crate::continuity::Continuity;
use crate::error;
use crate::feed::Tracking;
use crate::keys::Keys;
use crate::pool::{Pool, Replay};
use crate::reply;
use crate::scripts::Scripts;

/// A [`Store`] keeping a keyspace in Redis the way Python durabledict does: the values in the
/// hash named like the keyspace, the stamp in the integer key `keyspace + "last_updated"`.
///
/// Every write runs as one Lua script with its stamp bump (all or nothing) and returns the new
/// stamp; [`durables`](Store::durables) reads the stamp and the hash in one `MULTI`/`EXEC` (one
/// script on a cluster). `setdefault`, `pop`, batch writes and `clear` are single atomic
/// scripts too, each bumping the stamp once and only when it changed something.
///
/// Connections are opened on first use, pooled, and re-opened after the server went away:
/// the same store works again once the server is back. Clones share the pool. A command that
/// fails because its pooled connection turned out dead is sent once more on a new connection
/// only where a second run leaves what one run leaves: reads, `init`, `persist`,
/// `persist_many` and `setdefault` (whose second run only bumps the stamp once more; a change
/// another client made to the same key between the two sends is overwritten).
/// `depersist`, `pop` and `clear` are never sent twice; they check a pooled connection with
/// `PING` first (see [`check_idle_after`](crate::RedisStoreBuilder::check_idle_after)). A write
/// without a reply within the I/O timeout is never sent again. The crate docs say exactly when
/// ("What is sent twice").
///
/// ```no_run
/// use durabledict_core::DurableDict;
/// use durabledict_core::Raw;
/// use durabledict_redis::RedisStore;
///
/// let store = RedisStore::open("redis://127.0.0.1:6379/", "settings")?;
/// let dict = DurableDict::<String>::builder(store, Raw).build()?;
/// dict.insert("mode", "fast".to_string())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("hash", &self.inner.keys.hash)
            .field("stamp", &self.inner.keys.stamp)
            .field("reads", &self.inner.reads)
            .field("writes", &self.inner.writes)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) reads: Pool,
    /// A cluster's writes go through a client that never sends a command twice by itself;
    /// `None`: writes share the pool of reads.
    pub(crate) writes: Option<Pool>,
    /// The change feed, started by the first `feed()`.
    pub(crate) tracking: Tracking,
    /// The epoch, bumped by both pools.
    pub(crate) continuity: Arc<Continuity>,
    pub(crate) scripts: Scripts,
    pub(crate) keys: Keys,
    pub(crate) keyspace: String,
    pub(crate) max_value_len: Option<usize>,
}

/// A reply at least this large makes the store close its idle connections afterwards (see
/// `release_if_large`).
const LARGE_REPLY: usize = 16 << 20;

impl RedisStore {
    /// A store on one server with the defaults: Python's key layout, the default timeouts.
    /// The URL is `redis://[[USER][:PASSWORD]@]HOST[:PORT][/DB]`, `rediss://…` (feature `tls`)
    /// or `redis+unix:///PATH[?db=DB&user=USER&pass=PASSWORD]`. Connects on first use.
    pub fn open(url: &str, keyspace: &str) -> Result<Self, StoreError> {
        Self::builder(url, keyspace).build()
    }

    /// Configures a store on one server.
    pub fn builder(url: &str, keyspace: &str) -> RedisStoreBuilder {
        RedisStoreBuilder::server(url, keyspace)
    }

    /// Configures a store on a Redis Cluster, given some of its nodes' URLs. The keyspace is
    /// hash-tagged by default so that the values and the stamp share a slot (see
    /// [`RedisStoreBuilder::hash_tag`]).
    pub fn cluster_builder<I, S>(nodes: I, keyspace: &str) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisStoreBuilder::cluster(nodes, keyspace)
    }

    /// The keyspace name this store was made with.
    pub fn keyspace(&self) -> &str {
        &self.inner.keyspace
    }

    /// The Redis key of the hash holding the values.
    pub fn hash_key(&self) -> &str {
        &self.inner.keys.hash
    }

    /// The Redis key of the stamp.
    pub fn stamp_key(&self) -> &str {
        &self.inner.keys.stamp
    }

    /// The client name (`CLIENT SETNAME`) of this store's feed connection, as `CLIENT LIST`
    /// shows it: `durabledict-feed:` and the stamp key (characters a client name cannot hold
    /// as `_`). Every store handle on the keyspace uses the same name.
    ///
    /// ```
    /// use durabledict_redis::RedisStore;
    ///
    /// let store = RedisStore::open("redis://127.0.0.1:6379/", "settings")?;
    /// assert_eq!(store.feed_client_name(), "durabledict-feed:settingslast_updated");
    /// # Ok::<(), durabledict_core::StoreError>(())
    /// ```
    pub fn feed_client_name(&self) -> String {
        crate::feed::client_name(&self.inner.keys.stamp)
    }

    /// Removes a field of the hash by its raw bytes, atomically with a stamp bump, as
    /// [`depersist`](Store::depersist) does for a key: for a field that cannot be a key (not
    /// UTF-8, as Python can write with `d[b'\xff'] = …`), which a load lists in
    /// [`Durables::unreadable`] instead. Returns the stamp after the removal, or `None` when the
    /// field was absent (nothing written, no bump). Never sent twice (see "What is sent twice").
    ///
    /// ```no_run
    /// use durabledict_core::Store;
    /// use durabledict_redis::RedisStore;
    ///
    /// let store = RedisStore::open("redis://127.0.0.1:6379/", "settings")?;
    /// for (field, _reason) in store.durables()?.unreadable {
    ///     store.remove_raw_field(&field)?;
    /// }
    /// # Ok::<(), durabledict_core::StoreError>(())
    /// ```
    pub fn remove_raw_field(&self, field: &[u8]) -> Result<Option<StampValue>, StoreError> {
        match self.write(Replay::CheckIdle, &self.inner.scripts.depersist, &[field])? {
            Value::Nil => Ok(None),
            reply => self.stamp_after(reply).map(Some),
        }
    }

    /// Runs a write script with both keys and `args`, sent a second time only as `replay`
    /// allows.
    fn write(&self, replay: Replay, script: &Script, args: &[&[u8]]) -> Result<Value, StoreError> {
        self.write_with(replay, script, args, false)
    }

    /// Runs a write script. With `tell_send`, one more argument says which send this is: `0`
    /// for the first, `1` for the second (after the first one's connection broke).
    fn write_with(
        &self,
        replay: Replay,
        script: &Script,
        args: &[&[u8]],
        tell_send: bool,
    ) -> Result<Value, StoreError> {
        let keys = &self.inner.keys;
        let pool = self.inner.writes.as_ref().unwrap_or(&self.inner.reads);
        let mut sends = 0;
        let written = self.run(pool, replay, |conn| {
            sends += 1;
            let mut invocation = script.key(&keys.hash);
            invocation.key(&keys.stamp);
            for arg in args {
                invocation.arg(*arg);
            }
            if tell_send {
                invocation.arg(if sends > 1 { "1" } else { "0" });
            }
            invocation.invoke::<Value>(conn)
        })?;
        // Before the write returns: a dict of this process reading after it checks the stamp,
        // even before the server's notice arrives (see `feed`).
        self.inner.tracking.wrote();
        Ok(written)
    }

    /// Runs `request` on the pool of reads, sent again as [`Replay::Resend`] allows.
    /// After a reply of `len` bytes: when it was large, closes the idle connections, since the
    /// one that read it keeps a read buffer of that size for as long as it lives (a 200 MB value
    /// held 267 MB more after its `get`: 3.6x the value at peak, 2.7x with this).
    fn release_if_large(&self, len: usize) {
        if len >= LARGE_REPLY {
            self.inner.reads.forget_idle();
        }
    }

    fn read<T>(
        &self,
        request: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.run(&self.inner.reads, Replay::Resend, request)
    }

    /// Runs `request` on `pool`. The server's `WRONGTYPE` names no key: say which one.
    fn run<T>(
        &self,
        pool: &Pool,
        replay: Replay,
        request: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        pool.run(replay, request)
            .map_err(|e| self.name_wrong_type(e))
    }

    /// A refusal because a key holds what the layout does not allow (`WRONGTYPE`, or our
    /// scripts' `DDCORRUPT`), said with the key and what it holds (asked with `TYPE`, on this
    /// error path only); the server's error, which names no key (and for a script shows its
    /// hash and line), is the source. Any other error as it is.
    #[cold]
    fn name_wrong_type(&self, error: StoreError) -> StoreError {
        let kind = error.kind();
        let source = match error.into_inner().downcast::<RedisError>() {
            Ok(source)
                if error::answered(&source, "WRONGTYPE")
                    || error::answered(&source, error::CORRUPT_CODE) =>
            {
                *source
            }
            Ok(other) => return StoreError::new(kind, other),
            Err(other) => return StoreError::new(kind, other),
        };
        let keys = &self.inner.keys;
        let found = self.inner.reads.run(Replay::Resend, |conn| {
            let mut wrong = Vec::new();
            let hash: String = redis::cmd("TYPE").arg(&keys.hash).query(conn)?;
            if !matches!(hash.as_str(), "hash" | "none") {
                wrong.push(format!(
                    "the Redis key {:?} (the keyspace's values) holds a {hash}, not a hash",
                    keys.hash
                ));
            }
            let stamp: String = redis::cmd("TYPE").arg(&keys.stamp).query(conn)?;
            if stamp == "string" {
                let text: Vec<u8> = redis::cmd("GET").arg(&keys.stamp).query(conn)?;
                if reply::stamp(Value::BulkString(text.clone()), &keys.stamp).is_err() {
                    wrong.push(format!(
                        "the Redis key {:?} (the keyspace's stamp) holds {:?}, not an integer",
                        keys.stamp,
                        String::from_utf8_lossy(&text)
                    ));
                }
            } else if stamp != "none" {
                wrong.push(format!(
                    "the Redis key {:?} (the keyspace's stamp) holds a {stamp}, not an integer",
                    keys.stamp
                ));
            }
            Ok(wrong)
        });
        let what = match found {
            Ok(wrong) if !wrong.is_empty() => wrong.join("; "),
            // Changed back meanwhile, an integer at its limit, or the server could not be asked.
            _ => format!(
                "the Redis keys {:?} and {:?} of the keyspace {:?} held what its layout does not allow",
                keys.hash, keys.stamp, self.inner.keyspace
            ),
        };
        StoreError::new(kind, error::WrongType { what, source })
    }

    fn stamp_after(&self, value: Value) -> Result<StampValue, StoreError> {
        reply::written_stamp(value, &self.inner.keys.stamp)
    }

    /// Reads the stamp then the hash in one transaction, or in one script where the connection
    /// cannot pipeline (a cluster).
    fn read_all(&self, conn: &mut dyn ConnectionLike) -> RedisResult<Value> {
        let keys = &self.inner.keys;
        if conn.supports_pipelining() {
            // MULTI and EXEC are sent as plain pipelined commands, not as redis's `atomic()`
            // pipeline: that one panics (debug) or misreports when MULTI itself is refused
            // (redis 1.8, `idx - 1` at index 0), as it is for an ACL user without
            // `@transaction`. Here a refusal anywhere is an error reply like any other.
            let (all,): (Value,) = redis::pipe()
                .cmd("MULTI")
                .ignore()
                .cmd("GET")
                .arg(&keys.stamp)
                .ignore()
                .cmd("HGETALL")
                .arg(&keys.hash)
                .ignore()
                .cmd("EXEC")
                .query(conn)?;
            Ok(all)
        } else {
            self.inner
                .scripts
                .durables
                .key(&keys.hash)
                .key(&keys.stamp)
                .invoke::<Value>(conn)
        }
    }
}

impl Store for RedisStore {
    fn init(&self) -> Result<(), StoreError> {
        // The common case, a keyspace that exists, is one GET: it needs no write (nor script)
        // permission, so a read-only ACL user can build a dict. A stamp that is not an integer
        // makes the dict fail here, at creation.
        if self.last_updated()?.is_some() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        let value = self.read(|conn| {
            self.inner
                .scripts
                .init
                .key(&keys.hash)
                .key(&keys.stamp)
                .invoke::<Value>(conn)
        })?;
        reply::stamp(value, &keys.stamp).map(drop)
    }

    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        let reply = self.write(
            Replay::ResendWrite,
            &self.inner.scripts.persist,
            &[key.as_bytes(), value],
        )?;
        self.stamp_after(reply)
    }

    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        self.remove_raw_field(key.as_bytes())
    }

    fn durables(&self) -> Result<Durables, StoreError> {
        let keys = &self.inner.keys;
        let value = self.read(|conn| self.read_all(conn))?;
        let (stamp, hash) = reply::pair(value, "reading the keyspace")?;
        let stamp = reply::stamp(stamp, &keys.stamp)?;
        let (entries, unreadable) = reply::entries(hash, &keys.hash)?;
        self.release_if_large(entries.values().map(Vec::len).sum());
        let mut durables = Durables::new(entries, stamp);
        durables.unreadable = unreadable;
        Ok(durables)
    }

    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        let keys = &self.inner.keys;
        let value = self.read(|conn| conn.req_packed_command(&keys.get_stamp)?.extract_error())?;
        reply::stamp(value, &keys.stamp)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let keys = &self.inner.keys;
        let value = self.read(|conn| {
            redis::cmd("HGET")
                .arg(&keys.hash)
                .arg(key)
                .query::<Value>(conn)
        })?;
        let value = reply::bytes(value, "HGET")?;
        self.release_if_large(value.as_ref().map_or(0, Vec::len));
        Ok(value)
    }

    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        match self.write(
            Replay::CheckIdle,
            &self.inner.scripts.pop,
            &[key.as_bytes()],
        )? {
            Value::Nil => Ok(None),
            reply => {
                let (value, stamp) = reply::pair(reply, "pop")?;
                let value = reply::bytes(value, "pop")?.unwrap_or_default();
                Ok(Some((value, self.stamp_after(stamp)?)))
            }
        }
    }

    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        // The script is told which send this is (see SETDEFAULT in scripts.rs).
        let reply = self.write_with(
            Replay::ResendWrite,
            &self.inner.scripts.setdefault,
            &[key.as_bytes(), value],
            true,
        )?;
        match reply {
            Value::Array(existing) => {
                let stored = existing.into_iter().next().unwrap_or(Value::Nil);
                let stored = reply::bytes(stored, "setdefault")?.unwrap_or_default();
                Ok(SetDefault::Existing(stored))
            }
            reply => self.stamp_after(reply).map(SetDefault::Inserted),
        }
    }

    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        if entries.is_empty() {
            return Ok(None);
        }
        let args: Vec<&[u8]> = entries
            .iter()
            .flat_map(|(key, value)| [key.as_bytes(), *value])
            .collect();
        let reply = self.write(Replay::ResendWrite, &self.inner.scripts.persist_many, &args)?;
        self.stamp_after(reply).map(Some)
    }

    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        match self.write(Replay::CheckIdle, &self.inner.scripts.clear, &[])? {
            Value::Nil => Ok(None),
            reply => self.stamp_after(reply).map(Some),
        }
    }

    fn max_value_len(&self) -> Option<usize> {
        self.inner.max_value_len
    }

    /// Bumped by every request that failed without a reply in step (the connection broke, was
    /// refused, timed out, the server is loading) and by every new connection to a server whose
    /// `run_id` differs from the last one seen. See the crate docs, "A server that restarts
    /// empty".
    fn epoch(&self) -> u64 {
        self.inner.continuity.epoch()
    }

    /// Client tracking on a dedicated connection, started by the first call (see the crate
    /// docs, "Pushed freshness").
    fn feed(&self) -> Option<Arc<Feed>> {
        self.inner.tracking.feed()
    }

    /// The feed is this handle's (and its clones'), which read the same hash and stamp.
    fn feed_shares_reads(&self) -> bool {
        true
    }

    fn keyspace(&self) -> Option<&str> {
        Some(&self.inner.keyspace)
    }
}
