//! The link to the ensemble: one `zookeeper` client at a time, the connection state it
//! reports, the persistent recursive watch on the keyspace, and a fresh client (a new session)
//! when the old one gives up.
//!
//! The `zookeeper` crate reconnects by itself, to the next server of the connect string, and
//! opens a new session by itself when the old one expired; but it re-registers neither watches
//! nor authentication on the new connection, and once it has failed to reconnect for a session
//! timeout it closes for good. So every connection it establishes counts as a new *epoch*: the
//! store re-arms its watch (and re-sends its credentials) and reloads the whole keyspace once
//! per epoch, because events sent while it was away are lost. A closed client is replaced.

use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use durabledict_core::Feed;
use zookeeper::{AddWatchMode, WatchedEvent, WatchedEventType, ZkResult, ZkState, ZooKeeper};

use crate::error::ZooKeeperError;

/// What the client's threads tell the store's worker about the connection.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A connection was established: a new epoch.
    Connected,
    /// The connection was lost; the client is trying the next server.
    Disconnected,
    /// The client gave up (no server for a whole session timeout); it must be replaced.
    Closed,
    /// The outcome of a write is unknown; reload the keyspace once connected. Sent once until
    /// the worker takes it (see [`Session::request_reload`]).
    Reload,
    /// The store was dropped.
    Stop,
}

/// Where each client's default watcher hands events on: the keyspace watch, when the keyspace
/// is the root `/` (of the server or of a chroot). The `zookeeper` crate matches a persistent
/// watch's path against an event's `/a`, `/a/b`, … but never against `/`, so events under a
/// watch set on `/` reach the default watcher instead.
type RootWatch = Arc<RwLock<Option<Arc<dyn Fn(WatchedEvent) + Send + Sync>>>>;

/// The connection state, as the current client last reported it.
#[derive(Debug)]
struct Link {
    /// Which client's reports count (older clients are being dropped).
    serial: u64,
    /// How many connections have been established, by any client.
    epoch: u64,
    connected: bool,
    /// Whether the current client has reported any state yet.
    heard: bool,
    /// Whether the current client gave up.
    closed: bool,
    /// Since when no connection has been up.
    down_since: Option<Instant>,
}

impl Link {
    fn down(&mut self) {
        if self.connected || self.down_since.is_none() {
            self.down_since = Some(Instant::now());
        }
        self.connected = false;
    }

    fn up(&mut self) {
        self.epoch += 1;
        self.connected = true;
        self.down_since = None;
    }
}

/// What every `Always` read looks at, on one cache line: the store's stamp and whether a
/// connection is up.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Hot {
    /// The local stamp; changed only under the store's lock, read without it.
    pub(crate) stamp: AtomicI64,
    /// Whether a connection is up (`Link::connected`, readable without a lock).
    pub(crate) connected: AtomicBool,
}

/// One store's link to ZooKeeper.
pub(crate) struct Session {
    connect: String,
    session_timeout: Duration,
    client: RwLock<Arc<ZooKeeper>>,
    reports: Reports,
    /// The newest watch registration; older ones (left behind in the client by re-arming)
    /// stay silent.
    watch: Arc<AtomicU64>,
    next_watch: AtomicU64,
    /// Whether a [`Msg::Reload`] is on its way to the worker: a caller retrying failed writes
    /// in a loop must not flood the worker's queue (it would never get to replacing a client
    /// that gave up).
    reload_pending: AtomicBool,
}

/// Where every client's reports and events go: shared by the session and the handlers it
/// gives each client it makes.
#[derive(Clone)]
struct Reports {
    link: Arc<Mutex<Link>>,
    hot: Arc<Hot>,
    /// The store's change feed: lost the moment a connection ends or a new one begins (its
    /// watch is not armed yet), restored by the store once the keyspace is loaded on it.
    feed: Arc<Feed>,
    tx: Sender<Msg>,
    root_watch: RootWatch,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("connect", &self.connect)
            .field("session_timeout", &self.session_timeout)
            .field("link", &*lock(&self.reports.link))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    /// Connects to `connect` and waits up to `connect_timeout` for a server to answer.
    pub(crate) fn open(
        connect: &str,
        session_timeout: Duration,
        connect_timeout: Duration,
        tx: Sender<Msg>,
    ) -> Result<Session, ZooKeeperError> {
        let link = Arc::new(Mutex::new(Link {
            serial: 1,
            epoch: 0,
            connected: false,
            heard: false,
            closed: false,
            down_since: Some(Instant::now()),
        }));
        let hot = Arc::new(Hot {
            stamp: AtomicI64::new(1),
            connected: AtomicBool::new(false),
        });
        let reports = Reports {
            link,
            hot,
            feed: Arc::new(Feed::new()),
            tx,
            root_watch: RootWatch::default(),
        };
        let client = new_client(connect, session_timeout, 1, &reports).map_err(|source| {
            ZooKeeperError::Connect {
                connect: connect.to_owned(),
                timeout: connect_timeout,
                source,
            }
        })?;
        let session = Session {
            connect: connect.to_owned(),
            session_timeout,
            client: RwLock::new(Arc::new(client)),
            reports,
            watch: Arc::new(AtomicU64::new(0)),
            next_watch: AtomicU64::new(0),
            reload_pending: AtomicBool::new(false),
        };
        session.wait_connected(connect_timeout)?;
        Ok(session)
    }

    /// The current client.
    pub(crate) fn client(&self) -> Arc<ZooKeeper> {
        Arc::clone(&self.client.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current epoch while connected; `None` while no connection is up.
    pub(crate) fn epoch(&self) -> Option<u64> {
        let link = lock(&self.reports.link);
        link.connected.then_some(link.epoch)
    }

    /// The stamp and connection flag every read looks at.
    pub(crate) fn hot(&self) -> &Arc<Hot> {
        &self.reports.hot
    }

    /// The store's change feed.
    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.reports.feed
    }

    /// Marks the feed up again after the keyspace was loaded at `loaded` (an epoch), unless
    /// that connection has ended meanwhile. Checked under the lock the connection's state
    /// reports take, so a report that ends it cannot come between the check and the restore.
    pub(crate) fn restore_feed(&self, loaded: Option<u64>) {
        let link = lock(&self.reports.link);
        if link.connected && loaded == Some(link.epoch) && !self.reports.feed.state().is_up() {
            self.reports.feed.restored();
        }
    }

    /// How long no connection has been up; `None` while connected. Lock-free when connected.
    pub(crate) fn down_for(&self) -> Option<Duration> {
        if self.reports.hot.connected.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.reports.link)
            .down_since
            .map(|since| since.elapsed())
    }

    /// The session timeout asked of the server.
    pub(crate) fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Sends `msg` to the store's worker.
    pub(crate) fn notify(&self, msg: Msg) {
        // The worker is gone only when the store is being dropped.
        let _ = self.reports.tx.send(msg);
    }

    /// Asks the worker to reload the keyspace; one request is outstanding at a time.
    pub(crate) fn request_reload(&self) {
        if !self.reload_pending.swap(true, Ordering::AcqRel) {
            self.notify(Msg::Reload);
        }
    }

    /// Called by the worker as it takes a [`Msg::Reload`]: later failures ask again.
    pub(crate) fn reload_taken(&self) {
        self.reload_pending.store(false, Ordering::Release);
    }

    /// Whether any server of the connect string accepts a TCP connection (within `timeout`
    /// each). A new client is made only then: while no server answers, the `zookeeper` crate's
    /// client retries connecting in a loop without pausing for its whole session timeout,
    /// which would keep a core busy for as long as the outage lasts.
    pub(crate) fn any_server_listens(&self, timeout: Duration) -> bool {
        let hosts = self.connect.split('/').next().unwrap_or_default();
        // The first address of each host only: the client connects to no other.
        hosts
            .split(',')
            .filter_map(|host| host.trim().to_socket_addrs().ok()?.next())
            .any(|addr| TcpStream::connect_timeout(&addr, timeout).is_ok())
    }

    /// Replaces a client that gave up with a new one (a new session). Does nothing when the
    /// current client has not given up.
    pub(crate) fn replace_if_closed(&self) -> ZkResult<()> {
        let serial = {
            let mut link = lock(&self.reports.link);
            if !link.closed {
                return Ok(());
            }
            link.serial += 1;
            link.heard = false;
            link.closed = false;
            link.serial
        };
        let client = new_client(&self.connect, self.session_timeout, serial, &self.reports)?;
        let old = std::mem::replace(
            &mut *self.client.write().unwrap_or_else(PoisonError::into_inner),
            Arc::new(client),
        );
        // Dropping the last handle closes the old session, which is already dead: no wait.
        drop(old);
        Ok(())
    }

    /// Sets a persistent recursive watch on `path` through `zk`; `on_change` gets the path of
    /// every znode created, changed or deleted below it. It runs on the client's event thread,
    /// which delivers events in order and may block on requests (responses reach callers
    /// through the client's I/O thread, not through it).
    pub(crate) fn arm(
        &self,
        zk: &ZooKeeper,
        path: &str,
        on_change: impl Fn(&str) + Send + Sync + 'static,
    ) -> ZkResult<()> {
        let generation = self.next_watch.fetch_add(1, Ordering::SeqCst) + 1;
        let newest = Arc::clone(&self.watch);
        let handler = Arc::new(move |event: WatchedEvent| {
            // While the new registration is being set up both deliver; duplicates are
            // harmless (an event only makes the store look at the znode).
            if generation < newest.load(Ordering::SeqCst) {
                return;
            }
            let change = matches!(
                event.event_type,
                WatchedEventType::NodeCreated
                    | WatchedEventType::NodeDataChanged
                    | WatchedEventType::NodeDeleted
            );
            if let (true, Some(path)) = (change, event.path) {
                on_change(&path);
            }
        });
        if path == "/" {
            *self
                .reports
                .root_watch
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&handler) as _);
        }
        zk.add_watch(
            path,
            AddWatchMode::PersistentRecursive,
            move |event: WatchedEvent| handler(event),
        )?;
        self.watch.fetch_max(generation, Ordering::SeqCst);
        Ok(())
    }

    /// Waits until a server answers a request.
    fn wait_connected(&self, timeout: Duration) -> Result<(), ZooKeeperError> {
        let deadline = Instant::now() + timeout;
        loop {
            let error = match self.probe() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(ZooKeeperError::Connect {
                    connect: self.connect.clone(),
                    timeout,
                    source: error,
                });
            }
            self.replace_if_closed()
                .map_err(|source| ZooKeeperError::Connect {
                    connect: self.connect.clone(),
                    timeout,
                    source,
                })?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a request through the current client. A client reports its first connection to
    /// listeners that may not have been subscribed yet (it connects as soon as it is made), so
    /// an answer while it has reported nothing counts as that report.
    pub(crate) fn probe(&self) -> ZkResult<()> {
        // The serial first: a client replaced meanwhile has a later one.
        let serial = lock(&self.reports.link).serial;
        let zk = self.client();
        zk.exists("/", false)?;
        let mut link = lock(&self.reports.link);
        if !link.heard && link.serial == serial {
            link.heard = true;
            link.up();
            self.reports.feed.lost();
            self.reports.hot.connected.store(true, Ordering::Release);
            drop(link);
            self.notify(Msg::Connected);
        }
        Ok(())
    }
}

/// A client whose state reports (while it is the current one) update `link` and reach the
/// worker.
fn new_client(
    connect: &str,
    session_timeout: Duration,
    serial: u64,
    reports: &Reports,
) -> ZkResult<ZooKeeper> {
    // Watch events go to the keyspace watch; the default watcher gets only those of a watch
    // on `/` (see [`RootWatch`]), besides connection states, which the listener handles.
    let root_watch = Arc::clone(&reports.root_watch);
    let zk = ZooKeeper::connect(connect, session_timeout, move |event: WatchedEvent| {
        let handler = root_watch
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(handler) = handler {
            handler(event);
        }
    })?;
    let Reports {
        link,
        hot,
        feed,
        tx,
        ..
    } = reports.clone();
    zk.add_listener(move |state: ZkState| {
        let mut link = lock(&link);
        if link.serial != serial {
            return;
        }
        link.heard = true;
        // Every report ends a connection or begins one whose watch is not armed yet: events
        // may be missed from now until the store has loaded the keyspace again.
        feed.lost();
        let msg = match state {
            ZkState::Connected | ZkState::ConnectedReadOnly => {
                link.up();
                Msg::Connected
            }
            ZkState::Closed => {
                link.down();
                link.closed = true;
                Msg::Closed
            }
            _ => {
                link.down();
                Msg::Disconnected
            }
        };
        hot.connected.store(link.connected, Ordering::Release);
        drop(link);
        let _ = tx.send(msg);
    });
    Ok(zk)
}
