//! [`ZooKeeperStore`] and its [`ZooKeeperStoreBuilder`].

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use durabledict_core::{Durables, Feed, SetDefault, StampValue, Store, StoreError};

use crate::acl::Acl;
use crate::error::ZooKeeperError;
use crate::inner::Inner;
use crate::keys::Keyspace;
use crate::limits::{self, DEFAULT_MAX_BUFFER};
use crate::session::{Hot, Msg, Session};
use crate::worker;

/// The session timeout when none is set: kazoo's (the Python client's) default.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] keeping each key in its own znode under a keyspace path, the znode's data being
/// the encoded value: the layout of Python durabledict's `ZookeeperDict`, so both read each
/// other's data.
///
/// The `last_updated` stamp is local and free: a persistent recursive watch on the keyspace
/// tells the store about every change, so the `Always` sync policy costs no round trip. The
/// store keeps its own copy of the keyspace, updated by reading only the znode an event names;
/// a dict's reload then decodes from memory. An own write bumps the stamp once, and its watch
/// event does not bump it again, so a dict applies its own writes without reloading. After a
/// lost connection (events sent meanwhile are lost) or an expired session (a new one is opened
/// transparently), the watch is set again and the whole keyspace reloaded once.
///
/// A change made by another client is seen once its watch event has arrived and that znode has
/// been read: usually about a millisecond, so visibility is eventual, not immediate.
///
/// The watch is also the store's change feed ([`Store::feed`]): a dict under
/// [`SyncPolicy::Watch`](durabledict_core::SyncPolicy::Watch) reads without even the stamp
/// check while it is up. It goes down the moment the connection breaks and comes back once the
/// keyspace has been loaded again on a new connection; meanwhile such a dict checks the stamp
/// on every read, exactly as under `Always`.
///
/// While no server is reachable, reads keep being served from the cache for up to the session
/// timeout (like Apache Curator); after that `last_updated` fails with
/// [`StoreErrorKind::Unavailable`](durabledict_core::StoreErrorKind::Unavailable), as do
/// requests that could not be sent. Once the client has given up, the store opens a new
/// session as soon as a server accepts connections again (checking with a back-off of up to
/// 5 s), and the same dict works again.
///
/// ```no_run
/// use std::time::Duration;
/// use durabledict_core::{DurableDict, Raw};
/// use durabledict_zookeeper::ZooKeeperStore;
///
/// let store = ZooKeeperStore::builder("127.0.0.1:2181,127.0.0.1:2182/apps", "/myapp/flags")
///     .session_timeout(Duration::from_secs(6))
///     .build()?;
/// let flags = DurableDict::<String>::builder(store, Raw).build()?;
/// flags.insert("new-checkout", "on".to_string())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ZooKeeperStore {
    inner: Arc<Inner>,
    /// `inner.session.hot()`, one pointer closer for the stamp check of every read.
    hot: Arc<Hot>,
}

impl fmt::Debug for ZooKeeperStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZooKeeperStore")
            .field("keyspace", &self.inner.keyspace.path())
            .field("stamp", &self.inner.stamp())
            .field("session", &self.inner.session)
            .finish_non_exhaustive()
    }
}

impl ZooKeeperStore {
    /// Starts configuring a store on the ensemble `connect` (`host:port,host:port[/chroot]`)
    /// whose keys are the children of the znode `keyspace` (an absolute path, created with
    /// its parents when missing).
    pub fn builder(
        connect: impl Into<String>,
        keyspace: impl Into<String>,
    ) -> ZooKeeperStoreBuilder {
        ZooKeeperStoreBuilder {
            connect: connect.into(),
            keyspace: keyspace.into(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            connect_timeout: None,
            acl: Acl::open(),
            auth: Vec::new(),
            max_buffer: DEFAULT_MAX_BUFFER,
        }
    }

    /// A store with the default settings; see [`builder`](Self::builder).
    pub fn connect(connect: &str, keyspace: &str) -> Result<Self, StoreError> {
        Self::builder(connect, keyspace).build()
    }

    /// The keyspace znode's path.
    pub fn keyspace(&self) -> &str {
        self.inner.keyspace.path()
    }

    /// Whether a connection to a server is up now.
    pub fn is_connected(&self) -> bool {
        self.inner.session.down_for().is_none()
    }

    fn check(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.check_key(key)?;
        if value.len() > self.inner.max_value_len {
            return Err(ZooKeeperError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
                max: self.inner.max_value_len,
            }
            .into());
        }
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        self.inner.keyspace.validate_key(key).map_err(|reason| {
            ZooKeeperError::InvalidKey {
                key: key.to_owned(),
                reason,
            }
            .into()
        })
    }

    /// Whether `key` could be stored at all; a key that cannot is never present.
    fn storable(&self, key: &str) -> bool {
        self.inner.keyspace.validate_key(key).is_ok()
    }
}

impl Drop for ZooKeeperStore {
    fn drop(&mut self) {
        // The worker drops the last handle on the session, which closes it.
        self.inner.session.notify(Msg::Stop);
    }
}

impl Store for ZooKeeperStore {
    /// Creates the keyspace when missing. The keyspace is not loaded here: a dict loads it
    /// with its first [`durables`](Store::durables), and a program that only writes (the
    /// CLI's `set` and `del`) never needs it, so a write costs a few requests whatever the
    /// keyspace holds.
    fn init(&self) -> Result<(), StoreError> {
        let mut locked = self.inner.lock();
        locked.prepare()?;
        locked.create_keyspace()?;
        Ok(())
    }

    fn persist(&self, key: &str, value: &[u8]) -> Result<StampValue, StoreError> {
        self.check(key, value)?;
        Ok(self.inner.lock().persist(key, value)?)
    }

    fn depersist(&self, key: &str) -> Result<Option<StampValue>, StoreError> {
        if !self.storable(key) {
            return Ok(None);
        }
        Ok(self.inner.lock().depersist(key)?)
    }

    fn durables(&self) -> Result<Durables, StoreError> {
        let (entries, stamp) = self.inner.durables()?;
        Ok(Durables::new(entries, Some(stamp)))
    }

    fn last_updated(&self) -> Result<Option<StampValue>, StoreError> {
        if !self.hot.connected.load(Ordering::Acquire)
            && let Some(down) = self.inner.session.down_for()
            && down > self.inner.session.session_timeout()
        {
            return Err(ZooKeeperError::Disconnected(down).into());
        }
        Ok(Some(self.hot.stamp.load(Ordering::Acquire)))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.storable(key) {
            return Ok(None);
        }
        Ok(self.inner.lock().get(key)?)
    }

    fn pop(&self, key: &str) -> Result<Option<(Vec<u8>, StampValue)>, StoreError> {
        if !self.storable(key) {
            return Ok(None);
        }
        Ok(self.inner.lock().pop(key)?)
    }

    fn setdefault(&self, key: &str, value: &[u8]) -> Result<SetDefault, StoreError> {
        self.check(key, value)?;
        Ok(self.inner.lock().setdefault(key, value)?)
    }

    fn persist_many(&self, entries: &[(&str, &[u8])]) -> Result<Option<StampValue>, StoreError> {
        for (key, value) in entries {
            self.check(key, value)?;
        }
        Ok(self.inner.lock().persist_many(entries)?)
    }

    fn clear(&self) -> Result<Option<StampValue>, StoreError> {
        Ok(self.inner.lock().clear()?)
    }

    fn validate_key(&self, key: &str) -> Result<(), String> {
        self.inner.keyspace.validate_key(key)
    }

    fn max_value_len(&self) -> Option<usize> {
        Some(self.inner.max_value_len)
    }

    /// The watch, as a feed: a notice with every bump of the stamp, lost the moment a
    /// connection ends, restored once the keyspace has been loaded on the new one.
    fn feed(&self) -> Option<Arc<Feed>> {
        Some(Arc::clone(self.inner.session.feed()))
    }
}

/// Configures a [`ZooKeeperStore`]; made by [`ZooKeeperStore::builder`].
#[derive(Clone)]
pub struct ZooKeeperStoreBuilder {
    connect: String,
    keyspace: String,
    session_timeout: Duration,
    connect_timeout: Option<Duration>,
    acl: Vec<Acl>,
    auth: Vec<(String, Vec<u8>)>,
    max_buffer: usize,
}

impl fmt::Debug for ZooKeeperStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let schemes: Vec<&str> = self.auth.iter().map(|(s, _)| s.as_str()).collect();
        f.debug_struct("ZooKeeperStoreBuilder")
            .field("connect", &self.connect)
            .field("keyspace", &self.keyspace)
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("acl", &self.acl)
            .field("auth_schemes", &schemes)
            .field("max_buffer", &self.max_buffer)
            .finish()
    }
}

impl ZooKeeperStoreBuilder {
    /// The session timeout asked of the server (default 10 s; the server bounds it between
    /// 2 and 20 ticks unless configured otherwise). It is also how long reads are served from
    /// the cache while no server is reachable.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How long [`build`](Self::build) waits for a server to answer (default: the session
    /// timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The ACL of every znode the store creates, the keyspace and its parents included
    /// (default [`Acl::open`], ZooKeeper's `OPEN_ACL_UNSAFE`, as in Python durabledict).
    pub fn acl(mut self, acl: Vec<Acl>) -> Self {
        self.acl = acl;
        self
    }

    /// Authenticates every connection with `credentials` under `scheme` (sent again after
    /// each reconnection).
    pub fn auth(mut self, scheme: impl Into<String>, credentials: impl Into<Vec<u8>>) -> Self {
        self.auth.push((scheme.into(), credentials.into()));
        self
    }

    /// Authenticates as `user` with `password` under ZooKeeper's `digest` scheme. With
    /// [`Acl::creator_all`], the znodes created are then reachable only by that identity.
    ///
    /// ```
    /// use durabledict_zookeeper::{Acl, ZooKeeperStore};
    ///
    /// let builder = ZooKeeperStore::builder("127.0.0.1:2181", "/secret")
    ///     .digest_auth("app", "s3cret")
    ///     .acl(Acl::creator_all());
    /// # drop(builder);
    /// ```
    pub fn digest_auth(self, user: &str, password: &str) -> Self {
        self.auth("digest", format!("{user}:{password}"))
    }

    /// The server's `jute.maxbuffer` (default 0xfffff bytes, ZooKeeper's default): the longest
    /// request it accepts. [`Store::max_value_len`] is derived from it.
    pub fn max_buffer(mut self, bytes: usize) -> Self {
        self.max_buffer = bytes;
        self
    }

    /// Connects, and waits until a server answers. Fails with `Rejected` for a bad
    /// configuration and `Unavailable` when no server answers within the connect timeout.
    pub fn build(self) -> Result<ZooKeeperStore, StoreError> {
        let chroot = match self.connect.find('/') {
            Some(at) if &self.connect[at..] != "/" => &self.connect[at..],
            _ => "",
        };
        let keyspace =
            Keyspace::new(&self.keyspace, !chroot.is_empty()).map_err(ZooKeeperError::Config)?;
        if self.acl.is_empty() {
            return Err(ZooKeeperError::Config("the ACL list must not be empty".to_owned()).into());
        }
        let max_value_len = limits::max_value_len(self.max_buffer, chroot, &keyspace, &self.acl);
        let (tx, rx) = mpsc::channel();
        let connect_timeout = self.connect_timeout.unwrap_or(self.session_timeout);
        let session = Session::open(&self.connect, self.session_timeout, connect_timeout, tx)?;
        let acl = self.acl.iter().map(Acl::to_zk).collect();
        let inner = Inner::new(
            keyspace,
            acl,
            self.auth,
            max_value_len,
            &self.connect,
            session,
        );
        worker::spawn(Arc::clone(&inner), rx).map_err(StoreError::other)?;
        let hot = Arc::clone(inner.session.hot());
        Ok(ZooKeeperStore { inner, hot })
    }
}
