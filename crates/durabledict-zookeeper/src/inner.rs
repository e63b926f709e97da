//! [`Inner`]: what a store and its worker share, and every request they make, each under the
//! store's lock so that a request and the mirror update it implies are one step.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use durabledict_core::{SetDefault, StampValue};
use zookeeper::{CreateMode, ZkError, ZooKeeper};

use crate::error::{ZooKeeperError, is_refusal};
use crate::expected::Expected;
use crate::keys::Keyspace;
use crate::mirror::Mirror;
use crate::session::Session;

/// How often a write retries when other clients keep creating and deleting its znode between
/// its `set_data` and its `create`.
const RACE_RETRIES: usize = 16;

/// The state shared by a [`ZooKeeperStore`](crate::ZooKeeperStore) and its worker thread.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) keyspace: Keyspace,
    pub(crate) acl: Vec<zookeeper::Acl>,
    pub(crate) auth: Vec<(String, Vec<u8>)>,
    pub(crate) max_value_len: usize,
    pub(crate) session: Session,
    mirror: Mutex<Mirror>,
    /// Taken after `mirror` when both are needed, never before it.
    expected: Mutex<Expected>,
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
        session: Session,
    ) -> Arc<Self> {
        Arc::new_cyclic(|this| Inner {
            keyspace,
            acl,
            auth,
            max_value_len,
            session,
            mirror: Mutex::new(Mirror::default()),
            expected: Mutex::new(Expected::default()),
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

    /// Takes the store's lock.
    pub(crate) fn lock(&self) -> Locked<'_> {
        let mirror = self.mirror.lock().unwrap_or_else(PoisonError::into_inner);
        Locked {
            inner: self,
            mirror,
            zk: self.session.client(),
        }
    }

    /// A watch event for `path`: reads that one znode unless an own write accounts for it.
    fn on_event(&self, path: &str) {
        let Some(key) = self.keyspace.key_of(path) else {
            return;
        };
        if self.expected().consume(key) {
            return;
        }
        let mut locked = self.lock();
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
        let mut locked = self.lock();
        if locked.is_current() || !locked.mirror.used {
            return Ok(());
        }
        locked.reload()
    }
}

impl Locked<'_> {
    fn bump(&self) -> StampValue {
        // Only ever changed under the lock we hold, so load + store cannot lose a bump.
        let stamp = &self.inner.session.hot().stamp;
        let next = stamp.load(Ordering::Acquire) + 1;
        stamp.store(next, Ordering::Release);
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

    /// Loads every key (the watch set first, so nothing is missed), bumping the stamp when
    /// anything differs from the mirror.
    pub(crate) fn reload(&mut self) -> Result<()> {
        // No own request is in flight while the lock is held, so an expectation still here is
        // from a write whose event is late or lost. Forgotten before the keyspace is listed:
        // a foreign event arriving meanwhile must be read, not taken for an own write's (an
        // own event taken for foreign only costs a read).
        self.inner.expected().clear();
        let path = self.inner.keyspace.path();
        let epoch = self.prepare()?.ok_or_else(|| {
            ZooKeeperError::request("get_children", path, ZkError::ConnectionLoss)
        })?;
        let children = match self.zk.get_children(path, false) {
            Ok(children) => children,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(ZooKeeperError::request("get_children", path, e)),
        };
        let mut entries = HashMap::with_capacity(children.len());
        for key in children {
            if !self.inner.keyspace.is_key_name(&key) {
                continue;
            }
            let node = self.inner.keyspace.node(&key);
            match self.zk.get_data(&node, false) {
                Ok((value, _)) => {
                    entries.insert(key, value);
                }
                // Deleted since it was listed; its event follows.
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
            }
        }
        if self.mirror.load(entries) {
            self.bump();
        }
        self.mirror.loaded = Some(epoch);
        self.mirror.used = true;
        Ok(())
    }

    /// Reads one znode into the mirror, bumping the stamp when it changed.
    fn fetch(&mut self, key: &str) -> Result<()> {
        let node = self.inner.keyspace.node(key);
        let value = match self.zk.get_data(&node, false) {
            Ok((value, _)) => Some(value),
            Err(ZkError::NoNode) => None,
            Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
        };
        if self.mirror.observe(key, value.as_deref()) {
            self.bump();
        }
        Ok(())
    }

    /// The mirror can no longer be trusted (an event could not be read, a write's outcome is
    /// unknown): reload before answering from it again.
    fn lost(&mut self) {
        self.mirror.loaded = None;
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
        let mut last = ZkError::NodeExists;
        for _ in 0..RACE_RETRIES {
            if exists {
                match self.own(key, |zk| zk.set_data(&node, value.to_vec(), None)) {
                    Ok(_) => {
                        self.mirror.observe(key, Some(value));
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
                        self.mirror.observe(key, Some(value));
                        return Ok(());
                    }
                    Err(ZkError::NodeExists) => exists = true,
                    Err(ZkError::NoNode) => {
                        last = ZkError::NoNode;
                        self.create_keyspace()?;
                    }
                    Err(e) => return Err(ZooKeeperError::request("create", &node, e)),
                }
            }
        }
        Err(ZooKeeperError::request("create", &node, last))
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
                self.mirror.observe(key, None);
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

    /// `Store::pop`: read, then delete only that version; retried if it changed between.
    pub(crate) fn pop(&mut self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>> {
        self.prepare()?;
        let node = self.inner.keyspace.node(key);
        loop {
            let (value, stat) = match self.zk.get_data(&node, false) {
                Ok(found) => found,
                Err(ZkError::NoNode) => return Ok(None),
                Err(e) => return Err(ZooKeeperError::request("get_data", &node, e)),
            };
            match self.delete(key, Some(stat.version)) {
                Ok(true) => return Ok(Some((value, self.bump()))),
                Ok(false) => return Ok(None),
                Err(ZkError::BadVersion) => continue,
                Err(e) => return Err(ZooKeeperError::request("delete", &node, e)),
            }
        }
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
                    self.mirror.observe(key, Some(value));
                    return Ok(SetDefault::Inserted(self.bump()));
                }
                Err(ZkError::NodeExists) => match self.zk.get_data(&node, false) {
                    Ok((existing, _)) => {
                        if self.mirror.observe(key, Some(&existing)) {
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
        Err(ZooKeeperError::request(
            "create",
            &node,
            ZkError::NodeExists,
        ))
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
