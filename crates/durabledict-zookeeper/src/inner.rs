//! [`Inner`]: what a store and its worker share, and every request they make. A request and
//! the mirror update it implies are one step under the store's lock; a full load reads without
//! it (see [`Inner::load`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use durabledict_core::{SetDefault, StampValue};
use zookeeper::{CreateMode, ZkError, ZooKeeper};

use crate::bulk;
use crate::error::{ZooKeeperError, is_refusal};
use crate::expected::Expected;
use crate::keys::Keyspace;
use crate::mirror::Mirror;
use crate::session::Session;
use crate::wire;

/// How often a write retries when other clients keep creating and deleting its znode between
/// its `set_data` and its `create` (or, for `pop`, changing it between its read and its
/// delete).
const RACE_RETRIES: usize = 16;

/// How many times a full load reads again, without the store's lock, the keys that changed
/// while it was reading; past that it reads the last ones under the lock (see [`Inner::load`]).
const CATCH_UP_ROUNDS: usize = 4;

/// From how many keys a full load reads on a loader connection of its own ([`bulk::load`]);
/// fewer are read through the client, where they cost less than opening a session.
const LOADER_MIN_KEYS: usize = 64;

/// The state shared by a [`ZooKeeperStore`](crate::ZooKeeperStore) and its worker thread.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) keyspace: Keyspace,
    pub(crate) acl: Vec<zookeeper::Acl>,
    pub(crate) auth: Vec<(String, Vec<u8>)>,
    pub(crate) max_value_len: usize,
    pub(crate) session: Session,
    /// The server a full load opens its loader connection to: set when the connect string
    /// names one server, the one the store's session is on. With several, the session may be
    /// on any of them, and reads on another server could be newer than the events the session
    /// has yet to deliver (an event read afterwards on the session's server would then take a
    /// key back to an older value): those loads read through the client.
    loader: Option<wire::Target>,
    mirror: Mutex<Mirror>,
    /// Taken after `mirror` when both are needed, never before it.
    expected: Mutex<Expected>,
    /// Held by a full load from start to end (one at a time), and never by the watch's event
    /// handler. Taken before `mirror`.
    loading: Mutex<()>,
    /// While a full load is reading (`Some`): the keys whose events arrived, or that own writes
    /// changed, meanwhile. The load reads them again before its result replaces the mirror, so
    /// the event handler only records a key here instead of waiting for the load. Taken after
    /// `mirror` when both are needed.
    touched: Mutex<Option<HashSet<String>>>,
    /// For the watch's event handler, which must not keep the store alive.
    this: Weak<Inner>,
}

/// The store's lock held, with the client to send requests through.
pub(crate) struct Locked<'a> {
    inner: &'a Inner,
    mirror: MutexGuard<'a, Mirror>,
    zk: Arc<ZooKeeper>,
}

type Result<T, E = ZooKeeperError> = std::result::Result<T, E>;

impl Inner {
    pub(crate) fn new(
        keyspace: Keyspace,
        acl: Vec<zookeeper::Acl>,
        auth: Vec<(String, Vec<u8>)>,
        max_value_len: usize,
        connect: &str,
        session: Session,
    ) -> Arc<Self> {
        let target = wire::Target::parse(connect);
        let loader = (target.hosts.len() == 1).then_some(target);
        Arc::new_cyclic(|this| Inner {
            loader,
            keyspace,
            acl,
            auth,
            max_value_len,
            session,
            mirror: Mutex::new(Mirror::default()),
            expected: Mutex::new(Expected::default()),
            loading: Mutex::new(()),
            touched: Mutex::new(None),
            this: Weak::clone(this),
        })
    }

    /// The stamp, without a lock.
    pub(crate) fn stamp(&self) -> StampValue {
        self.session.hot().stamp.load(Ordering::Acquire)
    }

    fn expected(&self) -> MutexGuard<'_, Expected> {
        self.expected.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn touched(&self) -> MutexGuard<'_, Option<HashSet<String>>> {
        self.touched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `key` changed, if a full load is reading: returns whether one is.
    fn touch(&self, key: &str) -> bool {
        match &mut *self.touched() {
            Some(keys) => {
                keys.insert(key.to_owned());
                true
            }
            None => false,
        }
    }

    /// Takes the store's lock.
    pub(crate) fn lock(&self) -> Locked<'_> {
        let mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        Locked {
            inner: self,
            mirror,
            zk: self.session.client(),
        }
    }

    /// A watch event for `path`: reads that one znode unless an own write accounts for it, or
    /// a full load that is reading will read it again.
    fn on_event(&self, path: &str) {
        let Some(key) = self.keyspace.key_of(path) else {
            return;
        };
        if self.expected().consume(key) || self.touch(key) {
            return;
        }
        let mut locked = self.lock();
        // A load may have begun while this waited for the lock.
        if self.touch(key) {
            return;
        }
        if !locked.mirror.used {
            // Nothing to keep current (the first load reads everything), but the stamp
            // still says that somebody else wrote.
            locked.bump();
            return;
        }
        if locked.prepare().is_err() || locked.fetch(key).is_err() {
            locked.lost();
        }
    }

    /// Reloads the whole keyspace unless the mirror is known to be current (or was never
    /// loaded: the first read loads it).
    pub(crate) fn resync(&self) -> Result<()> {
        self.load(false)
    }

    /// `Store::durables`: the mirror, loaded first unless it is current.
    pub(crate) fn durables(&self) -> Result<(HashMap<String, Vec<u8>>, StampValue)> {
        self.load(true)?;
        Ok(self.lock().snapshot())
    }

    /// Loads every key unless the mirror is current (and, unless `first`, unless it was never
    /// loaded), bumping the stamp when anything differs from the mirror.
    ///
    /// The znodes are read many at once ([`bulk`]) and without the store's lock, so neither
    /// writes nor the watch's events wait for the load. Events are not lost meanwhile: the
    /// watch is set before the keyspace is listed, and every key whose event arrives (or that
    /// an own write changes) while the load reads is recorded in `touched` and read again
    /// after that, until a check under the lock finds nothing more recorded; the result then
    /// replaces the mirror in the same step that ends the recording, so every later event is
    /// read into the loaded mirror. Reads of one key never overtake each other: each one
    /// begins after the previous answered, and a server answers one session in order (the
    /// loader connection's reads, on the same server, end before any read again begins).
    fn load(&self, first: bool) -> Result<()> {
        let _single = self.loading.lock().unwrap_or_else(PoisonError::into_inner);
        let (zk, epoch, losses) = {
            let mut locked = self.lock();
            if locked.is_current() || !(first || locked.mirror.used) {
                return Ok(());
            }
            // No own request is in flight while the lock is held, so an expectation still
            // here is from a write whose event is late or lost. Forgotten before the keyspace
            // is listed: a foreign event arriving meanwhile must be read, not taken for an own
            // write's (an own event taken for foreign only costs a read).
            self.expected().clear();
            let path = self.keyspace.path();
            let epoch = locked.prepare()?.ok_or_else(|| {
                ZooKeeperError::request("get_children", path, ZkError::ConnectionLoss)
            })?;
            *self.touched() = Some(HashSet::new());
            (Arc::clone(&locked.zk), epoch, locked.mirror.losses)
        };
        let mut entries = match self.read_keyspace(&zk) {
            Ok(entries) => entries,
            Err(e) => {
                self.abandon_load();
                return Err(e);
            }
        };
        let mut rounds = 0;
        loop {
            let mut locked = self.lock();
            // Taking the keys and ending the recording are one step under `touched`'s lock:
            // the event handler records a key without the store's lock, and a key recorded
            // between the two would be neither read again nor read by its handler.
            let (changed, last) = {
                let mut touched = self.touched();
                let changed = touched.as_mut().map(std::mem::take).unwrap_or_default();
                let last = changed.is_empty() || rounds == CATCH_UP_ROUNDS;
                if last {
                    *touched = None;
                }
                (changed, last)
            };
            if last {
                if locked.mirror.load(entries) {
                    locked.bump();
                }
                locked.mirror.used = true;
                if locked.mirror.losses == losses {
                    locked.mirror.loaded = Some(epoch);
                }
                // Keys still changing after every round: read under the lock, as events are.
                locked.catch_up(changed);
                self.session.restore_feed(locked.mirror.loaded);
                return Ok(());
            }
            drop(locked);
            rounds += 1;
            match self.read_keys(&zk, changed.into_iter().collect()) {
                Ok(read) => {
                    for (key, value) in read {
                        match value {
                            Some(value) => entries.insert(key, value),
                            None => entries.remove(&key),
                        };
                    }
                }
                Err(e) => {
                    self.abandon_load();
                    return Err(e);
                }
            }
        }
    }

    /// Reads `keys`, many at once: each with its value, `None` for one that does not exist.
    fn read_keys(
        &self,
        zk: &ZooKeeper,
        keys: Vec<String>,
    ) -> Result<impl Iterator<Item = (String, Option<Vec<u8>>)>> {
        let nodes: Vec<String> = keys.iter().map(|key| self.keyspace.node(key)).collect();
        let values = bulk::read_all(zk, &nodes)?;
        Ok(keys.into_iter().zip(values))
    }

    /// Lists the keyspace and reads every key in it.
    fn read_keyspace(&self, zk: &ZooKeeper) -> Result<HashMap<String, Vec<u8>>> {
        let path = self.keyspace.path();
        let children = match zk.get_children(path, false) {
            Ok(children) => children,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(ZooKeeperError::request("get_children", path, e)),
        };
        let keys: Vec<String> = children
            .into_iter()
            .filter(|key| self.keyspace.is_key_name(key))
            .collect();
        if let Some(target) = self
            .loader
            .as_ref()
            .filter(|_| keys.len() >= LOADER_MIN_KEYS)
        {
            // The loader connection is a session of its own, so the order a server keeps
            // within one session does not hold between its reads and this session's events.
            // Its `sync` (sent after `touched` began recording) makes up for that: a change
            // whose event this session delivered before the recording began is applied on the
            // leader, so the synced server has it; a later one is recorded and read again.
            // Both sessions are on the one server, so nothing it reads is newer than what
            // that server will deliver events for (see `Inner::loader`).
            let nodes: Vec<String> = keys.iter().map(|key| self.keyspace.node(key)).collect();
            let timeout = self.session.session_timeout();
            let path = self.keyspace.path();
            let loaded = bulk::load(
                target,
                &self.auth,
                timeout,
                self.max_value_len,
                path,
                &nodes,
            );
            match loaded {
                Ok(values) => {
                    return Ok(keys
                        .into_iter()
                        .zip(values)
                        .filter_map(|(key, value)| Some((key, value?)))
                        .collect());
                }
                Err(e) => tracing::debug!(
                    target: "durabledict::zookeeper",
                    keys = keys.len(),
                    error = %e,
                    "the loader connection failed: the keyspace is read through the client"
                ),
            }
        }
        // A key deleted since it was listed is left out; its event follows.
        Ok(self
            .read_keys(zk, keys)?
            .filter_map(|(key, value)| Some((key, value?)))
            .collect())
    }

    /// A failed load: the keys changed while it read are read into the mirror as their events
    /// would have been.
    fn abandon_load(&self) {
        let mut locked = self.lock();
        let changed = self.touched().take().unwrap_or_default();
        locked.catch_up(changed);
    }
}

impl Locked<'_> {
    fn bump(&self) -> StampValue {
        // Only ever changed under the lock we hold, so load + store cannot lose a bump.
        let stamp = &self.inner.session.hot().stamp;
        let next = stamp.load(Ordering::Acquire) + 1;
        stamp.store(next, Ordering::Release);
        // After the stamp: a dict that sees the notice then sees the new stamp.
        self.inner.session.feed().notify();
        next
    }

    /// The mirror as it is now, with the stamp it is current at.
    pub(crate) fn snapshot(&self) -> (HashMap<String, Vec<u8>>, StampValue) {
        (self.mirror.entries().clone(), self.inner.stamp())
    }

    /// Whether the mirror follows the server: connected, and loaded in this connection after
    /// the watch was set.
    pub(crate) fn is_current(&self) -> bool {
        self.inner
            .session
            .epoch()
            .is_some_and(|epoch| self.mirror.loaded == Some(epoch))
    }

    /// Sets up a new connection: credentials and the watch (the client restores neither).
    /// Returns the epoch it did so for; `None` while disconnected (requests then fail or wait
    /// for the client's reconnection by themselves).
    pub(crate) fn prepare(&mut self) -> Result<Option<u64>> {
        let Some(epoch) = self.inner.session.epoch() else {
            return Ok(None);
        };
        if self.mirror.armed == Some(epoch) {
            return Ok(Some(epoch));
        }
        for (scheme, credentials) in &self.inner.auth {
            self.zk
                .add_auth(scheme, credentials.clone())
                .map_err(|e| ZooKeeperError::request("add_auth", scheme, e))?;
        }
        let path = self.inner.keyspace.path();
        let this = Weak::clone(&self.inner.this);
        let on_change = move |path: &str| {
            if let Some(inner) = this.upgrade() {
                inner.on_event(path);
            }
        };
        self.inner
            .session
            .arm(&self.zk, path, on_change)
            .map_err(|e| ZooKeeperError::request("add_watch", path, e))?;
        self.mirror.armed = Some(epoch);
        Ok(Some(epoch))
    }

    /// Reads each of `keys` into the mirror, as their events would.
    fn catch_up(&mut self, keys: HashSet<String>) {
        if keys.is_empty() || !self.mirror.used {
            return;
        }
        for key in keys {
            if self.fetch(&key).is_err() {
                self.lost();
                return;
            }
        }
    }

    /// Records that the server holds `value` at `key`, after an own request; returns whether
    /// the mirror changed. A full load reading meanwhile reads the key again.
    fn observe(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        self.inner.touch(key);
        self.mirror.observe(key, value)
    }

    /// Reads one znode into the mirror, bumping the stamp when it changed.
    fn fetch(&mut self, key: &str) -> Result<()> {
        let node = self.inner.keyspace.node(key);
        let value = match self.zk.get_data(&node, false) {
            Ok((value, _)) => Some(value),
            Err(ZkError::NoNode) => None,
            Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
        };
        if self.observe(key, value.as_deref()) {
            self.bump();
        }
        Ok(())
    }

    /// The mirror can no longer be trusted (an event could not be read, a write's outcome is
    /// unknown): reload before answering from it again.
    fn lost(&mut self) {
        self.mirror.loaded = None;
        self.mirror.losses += 1;
        self.inner.session.feed().lost();
        self.inner.session.request_reload();
    }

    /// Sends an own request on `key`, keeping the expected-event bookkeeping right whatever
    /// its outcome.
    fn own<T>(
        &mut self,
        key: &str,
        request: impl FnOnce(&ZooKeeper) -> Result<T, ZkError>,
    ) -> Result<T, ZkError> {
        self.inner.expected().expect(key);
        let result = request(&self.zk);
        if let Err(error) = result {
            if is_refusal(error) {
                if self.inner.expected().refused(key) && self.fetch(key).is_err() {
                    self.lost();
                }
            } else {
                // The outcome is unknown, and so is whether an event will come: keep no
                // expectation, or a foreign event for this key arriving before the reload
                // would be taken for this request's and never read. (If this request's own
                // event does arrive, it is read like a foreign one: at worst a wasted read.)
                self.inner.expected().consume(key);
                self.lost();
            }
        }
        result
    }

    /// Creates the keyspace znode and its missing parents.
    pub(crate) fn create_keyspace(&mut self) -> Result<()> {
        let path = self.inner.keyspace.path();
        if path == "/" {
            return Ok(());
        }
        let create = |prefix: &str| {
            let created = self.zk.create(
                prefix,
                Vec::new(),
                self.inner.acl.clone(),
                CreateMode::Persistent,
            );
            match created {
                Ok(_) | Err(ZkError::NodeExists) => Ok(()),
                Err(e) => Err(e),
            }
        };
        // The keyspace usually exists: one request. Its parents are created only when the
        // keyspace cannot be for want of one.
        match create(path) {
            Err(ZkError::NoNode) => {}
            done => return done.map_err(|e| ZooKeeperError::request("create", path, e)),
        }
        let ends = path.match_indices('/').skip(1).map(|(i, _)| i);
        for end in ends.chain([path.len()]) {
            let prefix = &path[..end];
            create(prefix).map_err(|e| ZooKeeperError::request("create", prefix, e))?;
        }
        Ok(())
    }

    /// Writes `value` at `key` (set or create, whichever the znode needs), without bumping.
    fn write(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let node = self.inner.keyspace.node(key);
        let inner = self.inner;
        let acl = &inner.acl;
        // Start with the request the mirror says will work: a new key saves a round trip.
        let mut exists = self.mirror.entries().contains_key(key);
        for _ in 0..RACE_RETRIES {
            if exists {
                match self.own(key, |zk| zk.set_data(&node, value.to_vec(), None)) {
                    Ok(_) => {
                        self.observe(key, Some(value));
                        return Ok(());
                    }
                    Err(ZkError::NoNode) => exists = false,
                    Err(e) => return Err(ZooKeeperError::request("set_data", &node, e)),
                }
            } else {
                let create = self.own(key, |zk| {
                    zk.create(&node, value.to_vec(), acl.clone(), CreateMode::Persistent)
                });
                match create {
                    Ok(_) => {
                        self.observe(key, Some(value));
                        return Ok(());
                    }
                    Err(ZkError::NodeExists) => exists = true,
                    Err(ZkError::NoNode) => {
                        self.create_keyspace()?;
                    }
                    Err(e) => return Err(ZooKeeperError::request("create", &node, e)),
                }
            }
        }
        Err(ZooKeeperError::Contended {
            op: "write",
            key: key.to_owned(),
            attempts: RACE_RETRIES,
        })
    }

    /// `Store::persist`.
    pub(crate) fn persist(&mut self, key: &str, value: &[u8]) -> Result<StampValue> {
        self.prepare()?;
        self.write(key, value)?;
        Ok(self.bump())
    }

    /// `Store::persist_many`: one bump for the whole batch, also when it fails part way (the
    /// keys written so far are in the mirror, and the dict must reload to see them).
    pub(crate) fn persist_many(&mut self, batch: &[(&str, &[u8])]) -> Result<Option<StampValue>> {
        if batch.is_empty() {
            return Ok(None);
        }
        self.prepare()?;
        let mut written = false;
        for (key, value) in batch {
            if let Err(e) = self.write(key, value) {
                if written {
                    self.bump();
                }
                return Err(e);
            }
            written = true;
        }
        Ok(Some(self.bump()))
    }

    /// Deletes `key`'s znode if it is at `version` (any version: `None`). `Ok(false)` when
    /// there was no znode.
    fn delete(&mut self, key: &str, version: Option<i32>) -> Result<bool, ZkError> {
        let node = self.inner.keyspace.node(key);
        match self.own(key, |zk| zk.delete(&node, version)) {
            Ok(()) => {
                self.observe(key, None);
                Ok(true)
            }
            Err(ZkError::NoNode) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `Store::depersist`.
    pub(crate) fn depersist(&mut self, key: &str) -> Result<Option<StampValue>> {
        self.prepare()?;
        match self.delete(key, None) {
            Ok(true) => Ok(Some(self.bump())),
            Ok(false) => Ok(None),
            Err(e) => Err(ZooKeeperError::request(
                "delete",
                &self.inner.keyspace.node(key),
                e,
            )),
        }
    }

    /// `Store::get`: always asks the server, which other handles' writes reach first.
    pub(crate) fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>> {
        self.prepare()?;
        let node = self.inner.keyspace.node(key);
        match self.zk.get_data(&node, false) {
            Ok((value, _)) => Ok(Some(value)),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(ZooKeeperError::request("get_data", &node, e)),
        }
    }

    /// `Store::pop`: read, then delete only that version; retried if it changed between, up
    /// to [`RACE_RETRIES`] times.
    pub(crate) fn pop(&mut self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>> {
        self.prepare()?;
        let node = self.inner.keyspace.node(key);
        for _ in 0..RACE_RETRIES {
            let (value, stat) = match self.zk.get_data(&node, false) {
                Ok(found) => found,
                Err(ZkError::NoNode) => return Ok(None),
                Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
            };
            match self.delete(key, Some(stat.version)) {
                Ok(true) => return Ok(Some((value, self.bump()))),
                Ok(false) => return Ok(None),
                Err(ZkError::BadVersion) => {}
                Err(e) => return Err(ZooKeeperError::request("delete", &node, e)),
            }
        }
        Err(ZooKeeperError::Contended {
            op: "pop",
            key: key.to_owned(),
            attempts: RACE_RETRIES,
        })
    }

    /// `Store::setdefault`: `create` succeeds only for an absent key, atomically.
    pub(crate) fn setdefault(&mut self, key: &str, value: &[u8]) -> Result<SetDefault> {
        self.prepare()?;
        let node = self.inner.keyspace.node(key);
        let inner = self.inner;
        let acl = &inner.acl;
        for _ in 0..RACE_RETRIES {
            let create = self.own(key, |zk| {
                zk.create(&node, value.to_vec(), acl.clone(), CreateMode::Persistent)
            });
            match create {
                Ok(_) => {
                    self.observe(key, Some(value));
                    return Ok(SetDefault::Inserted(self.bump()));
                }
                Err(ZkError::NodeExists) => match self.zk.get_data(&node, false) {
                    Ok((existing, _)) => {
                        if self.observe(key, Some(&existing)) {
                            self.bump();
                        }
                        return Ok(SetDefault::Existing(existing));
                    }
                    // Deleted in between: try to create it again.
                    Err(ZkError::NoNode) => {}
                    Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
                },
                Err(ZkError::NoNode) => self.create_keyspace()?,
                Err(e) => return Err(ZooKeeperError::request("create", &node, e)),
            }
        }
        Err(ZooKeeperError::Contended {
            op: "setdefault",
            key: key.to_owned(),
            attempts: RACE_RETRIES,
        })
    }

    /// `Store::clear`: deletes every key's znode; one bump if any was deleted.
    pub(crate) fn clear(&mut self) -> Result<Option<StampValue>> {
        self.prepare()?;
        let path = self.inner.keyspace.path();
        let children = match self.zk.get_children(path, false) {
            Ok(children) => children,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(ZooKeeperError::request("get_children", path, e)),
        };
        let mut deleted = false;
        for key in children {
            if !self.inner.keyspace.is_key_name(&key) {
                continue;
            }
            match self.delete(&key, None) {
                Ok(gone) => deleted |= gone,
                Err(e) => {
                    if deleted {
                        self.bump();
                    }
                    return Err(ZooKeeperError::request(
                        "delete",
                        &self.inner.keyspace.node(&key),
                        e,
                    ));
                }
            }
        }
        Ok(deleted.then(|| self.bump()))
    }
}
