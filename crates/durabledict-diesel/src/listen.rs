//! The PostgreSQL store's change [`Feed`]: `LISTEN` on a dedicated connection, and a trigger
//! on the stamps table that `NOTIFY`s in the transaction of every change of a stamp row.
//!
//! # What notifies
//!
//! [`init`](durabledict_core::Store::init) creates, when the role may (`CREATE` on the schema
//! for the function, ownership of the stamps table for the trigger), the function
//! `durabledict_notify()` and the trigger `durabledict_notify` on the stamps table: every
//! `INSERT`, `UPDATE` or `DELETE` of a stamp row sends `pg_notify` on the channel of that row's
//! keyspace ([`CHANNEL_SQL`]), and a `TRUNCATE` on the channel of the whole stamps table. The
//! notice is part of the writing transaction: PostgreSQL delivers it when, and only if, the
//! transaction commits, so a listener that hears it reads the new stamp. The trigger is on the
//! stamp, not on the data table, because the stamp is what a dict checks: a writer that
//! changes rows and bumps the stamp in one transaction (this crate, or another program keeping
//! the same layout) is heard once; a writer that bumps in a later transaction is heard at the
//! bump, when the rows are already there (a trigger on the data rows would fire first, the
//! dict would find the stamp unchanged, and nothing would fire again at the bump).
//!
//! This store's own writes notify through the same trigger (their stamp bump is in their
//! transaction). They send no `pg_notify` of their own: it would be the same notice, which
//! PostgreSQL folds into one per transaction, and without the trigger nothing would rely on it
//! (see below).
//!
//! # When the feed is up
//!
//! The feed is up only while (1) the listener's connection is alive, (2) its `LISTEN` on both
//! channels is confirmed, and (3) the trigger exists on the stamps table. Without the trigger
//! (a role that may not create it, and nobody else did) the feed stays down: a dict under
//! `Watch` then checks the stamp on every read, exactly as under `Always`, because a foreign
//! writer's change would otherwise go unheard. The listener keeps looking (every
//! [`TRIGGER_CHECK_EVERY`] probes) and brings the feed up once an administrator created it
//! (by running `init` with the rights, or the SQL in the docs).
//!
//! # The listener
//!
//! One thread and one connection per store (clones share them), started by the first
//! [`Store::feed`](durabledict_core::Store::feed) call, stopped within [`PROBE_AFTER`] once the
//! last handle is dropped. It uses the `postgres` crate (a synchronous client) on its own
//! connection: its notifications iterator waits on the socket, where diesel's
//! `notifications_iter()` can only be polled. It marks the feed [`lost`](Feed::lost)
//! - at once when its connection closes (a server restart or shutdown, `pg_terminate_backend`);
//! - when the server stays silent: after [`PROBE_AFTER`] without a notice it sends an empty
//!   query, and one unanswered within [`DEAD_AFTER`] counts as a dead connection;
//! - when the store's pool epoch changed (a request of the store found the server gone, see
//!   [`Store::epoch`](durabledict_core::Store::epoch)): noticed by the next stamp check's
//!   epoch read at once, by the thread within [`PROBE_AFTER`];
//! - when the trigger is gone (looked at every [`TRIGGER_CHECK_EVERY`] probes).
//!
//! It reconnects with back-off (50 ms, doubling, up to 2 s) and calls
//! [`restored`](Feed::restored) only after `LISTEN` answered and the trigger was found. A new
//! connection that meets a server started at another time (`pg_postmaster_start_time()`) adds
//! one to the store's epoch, so that a dict reloads in full rather than trust an unchanged
//! stamp of a server that may have been restored from a backup.
//!
//! Writes through this crate in this process notify every feed of the same URL, stamps table
//! and keyspace before they return ([`Peers`]), so a dict in this process never serves a value
//! older than a write another handle in this process completed, even before the server's
//! notice arrives.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use durabledict_core::Feed;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

/// The `tracing` target of the SQL store's events.
pub(crate) const TARGET: &str = "durabledict::sql";

/// Silence after which the listener probes its connection.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);
/// How long a probe may go unanswered before the connection counts as dead.
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(1);
/// The trigger is looked for again every this many probes (5 s of silence).
pub(crate) const TRIGGER_CHECK_EVERY: u32 = 5;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The name of the trigger and of its function.
pub(crate) const TRIGGER: &str = "durabledict_notify";

/// The channel of a keyspace, in SQL: `'durabledict_' || md5(<schema>.<stamps table>/<keyspace>)`,
/// 44 characters (identifiers stop at 63), of characters that need no quoting. The trigger
/// computes it from `TG_TABLE_SCHEMA`, `TG_TABLE_NAME` and the row; the listener from the
/// stamps table as its name resolves (`to_regclass`) and the store's stamp key. Without a
/// keyspace (`… || '/'` left out), the channel of the whole table (a `TRUNCATE`).
pub(crate) const CHANNEL_SQL: &str = "'durabledict_' || md5(schema || '.' || tbl || '/' || ks)";

/// The function the trigger runs (in the current schema).
pub(crate) static CREATE_FUNCTION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "CREATE OR REPLACE FUNCTION durabledict_notify() RETURNS trigger LANGUAGE plpgsql \
         AS $fn${FUNCTION_BODY}$fn$"
    )
});

/// The body of `durabledict_notify()`. The listener counts a trigger only when its function's
/// body is this one (whitespace aside): a function of that name that notifies other channels
/// (another version's, somebody's own) would keep the feed up and deaf.
const FUNCTION_BODY: &str = "
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('durabledict_' || md5(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME), '');
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('durabledict_' || md5(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || '/' || OLD.keyspace), '');
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('durabledict_' || md5(TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME || '/' || NEW.keyspace), '');
  END IF;
  RETURN NULL;
END
";

/// The triggers on the stamps table `{t}` (quoted), enabled `ALWAYS`: an ordinary trigger
/// does not fire in a session with `session_replication_role = replica` (logical
/// replication's apply worker on a subscriber, `pg_restore --disable-triggers`, migration
/// tools), whose writes a feed that stayed up would then miss.
pub(crate) fn create_triggers(quoted_stamps: &str) -> String {
    format!(
        "CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {quoted_stamps} \
         FOR EACH ROW EXECUTE FUNCTION durabledict_notify(); \
         CREATE TRIGGER {TRIGGER}_truncate AFTER TRUNCATE ON {quoted_stamps} \
         FOR EACH STATEMENT EXECUTE FUNCTION durabledict_notify(); \
         ALTER TABLE {quoted_stamps} ENABLE ALWAYS TRIGGER {TRIGGER}; \
         ALTER TABLE {quoted_stamps} ENABLE ALWAYS TRIGGER {TRIGGER}_truncate"
    )
}

/// Counts the triggers on the stamps table (parameter: its quoted name) as `n`: 2 when both are
/// there, fire in every session (`ALWAYS`, see [`create_triggers`]; one disabled, or enabled
/// for origin or replica sessions only, is missing) and run this crate's function
/// ([`FUNCTION_BODY`], compared with runs of whitespace made one space).
pub(crate) static COUNT_TRIGGERS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT count(*) AS n FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid \
         WHERE t.tgrelid = to_regclass($1) \
         AND t.tgname IN ('durabledict_notify', 'durabledict_notify_truncate') \
         AND t.tgenabled = 'A' AND {}",
        SAME_BODY.replace("prosrc", "p.prosrc")
    )
});

/// Whether `prosrc` (of `pg_proc`) is [`FUNCTION_BODY`], runs of whitespace aside.
static SAME_BODY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "btrim(regexp_replace(prosrc, '\\s+', ' ', 'g')) = $body${}$body$",
        normalized_body()
    )
});

/// [`FUNCTION_BODY`] with every run of whitespace made one space, trimmed.
fn normalized_body() -> String {
    FUNCTION_BODY
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `application_name` of a listener's connection, as `pg_stat_activity` shows it:
/// `durabledict-listen:` and the keyspace, cut to 63 bytes as the server cuts it.
pub(crate) fn application_name(keyspace: &str) -> String {
    let mut name = format!("durabledict-listen:{keyspace}");
    name.truncate(63); // keyspaces are ASCII identifiers
    name
}

/// The TLS mode libpq takes from the environment for `url` when it names none itself
/// (`PGSSLMODE` `require`, `verify-ca` or `verify-full`, or the older `PGREQUIRESSL=1`):
/// diesel's connections then require TLS, which the listener's cannot use.
fn tls_from_environment(url: &str) -> Option<String> {
    if url.contains("sslmode=") || url.contains("requiressl=") {
        return None;
    }
    if let Ok(mode) = std::env::var("PGSSLMODE") {
        return matches!(mode.as_str(), "require" | "verify-ca" | "verify-full").then_some(mode);
    }
    (std::env::var("PGREQUIRESSL").as_deref() == Ok("1")).then(|| "require".to_owned())
}

/// Every [`Peers`] of this process, by URL, stamps table and keyspace.
type PeersByKey = HashMap<(String, String, String), Weak<Peers>>;

/// The feeds of every store handle in this process on one URL, stamps table and keyspace.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    feeds: Mutex<Vec<Weak<Feed>>>,
}

impl Peers {
    pub(crate) fn of(url: &str, stamps: &str, keyspace: &str) -> Arc<Peers> {
        static ALL: OnceLock<Mutex<PeersByKey>> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, peers| peers.strong_count() > 0);
        let key = (url.to_owned(), stamps.to_owned(), keyspace.to_owned());
        if let Some(peers) = all.get(&key).and_then(Weak::upgrade) {
            return peers;
        }
        let peers = Arc::new(Peers::default());
        all.insert(key, Arc::downgrade(&peers));
        peers
    }

    fn join(&self, feed: &Arc<Feed>) {
        let mut feeds = self.lock();
        feeds.retain(|feed| feed.strong_count() > 0);
        feeds.push(Arc::downgrade(feed));
    }

    /// A write through this process returned.
    pub(crate) fn wrote(&self) {
        let feeds: Vec<Arc<Feed>> = self.lock().iter().filter_map(Weak::upgrade).collect();
        for feed in feeds {
            feed.notify();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Weak<Feed>>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pool epoch of the store, read by the listener without keeping the store alive.
pub(crate) type PoolEpoch = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// [`IDENTITY_SQL`] (an expression) asked on a connection of the store's pool, without keeping the store
/// alive: `None` once the store is gone.
pub(crate) type PoolIdentity =
    Arc<dyn Fn() -> Option<Result<String, crate::error::SqlError>> + Send + Sync>;

/// What the listener's connection and the store's must agree on (parameter: the quoted stamps
/// table): the database, the server's start (its instance) and the stamps table the name
/// resolves to. libpq fills what a URL leaves out from the environment (`PGDATABASE`,
/// `PGHOST`, `PGPORT`, `PGOPTIONS` …) and the `postgres` crate does not, so the two may reach
/// different databases; a listener on another one would hear nothing of the store's and, when
/// that database holds the same stamps table with its trigger, keep the feed up while deaf.
/// Text free of the session's time zone and date style.
pub(crate) const IDENTITY_SQL: &str = "current_database() || '/' || \
    CAST(extract(epoch FROM pg_postmaster_start_time()) AS TEXT) || '/' || \
    COALESCE(CAST(CAST(to_regclass($1) AS oid) AS TEXT), '-')";

/// A store's listener, started on first use; dropping it (with the last store handle) stops
/// the thread.
pub(crate) struct Listener {
    config: Option<Config>,
    stamps_table: String,
    keyspace: String,
    peers: Arc<Peers>,
    shared: Arc<Shared>,
    started: OnceLock<Option<Arc<Feed>>>,
}

/// What the store and the thread share.
#[derive(Default)]
pub(crate) struct Shared {
    stop: Stop,
    /// The pool epoch at which the current subscription was confirmed; `u64::MAX` while none.
    subscribed_at: AtomicU64,
    /// Server restarts seen by the listener (a new `pg_postmaster_start_time()`).
    restarts: AtomicU64,
    feed: OnceLock<Arc<Feed>>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration may hold a password.
        f.debug_struct("Listener")
            .field("stamps_table", &self.stamps_table)
            .field("keyspace", &self.keyspace)
            .field("feed", &self.started.get())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener for `url` (as diesel takes it); a URL the `postgres` crate cannot use for
    /// the listener (a libpq-only option, a TLS mode that requires encryption) gives a store
    /// without a feed, which a dict under `Watch` treats as `Always`.
    pub(crate) fn new(url: &str, stamps_table: &str, keyspace: &str) -> Self {
        let config = match url.parse::<Config>() {
            Ok(_) if let Some(mode) = tls_from_environment(url) => {
                tracing::warn!(
                    target: TARGET,
                    keyspace,
                    mode,
                    "PGSSLMODE/PGREQUIRESSL make libpq require TLS: the change feed's \
                     connection cannot use TLS; Watch checks the stamp on every read"
                );
                None
            }
            Ok(config) if config.get_ssl_mode() == postgres::config::SslMode::Require => {
                tracing::warn!(
                    target: TARGET,
                    keyspace,
                    "sslmode=require: the change feed's connection cannot use TLS; Watch checks \
                     the stamp on every read"
                );
                None
            }
            Ok(config) => Some(config),
            Err(error) => {
                tracing::warn!(
                    target: TARGET,
                    keyspace,
                    %error,
                    "the URL cannot be used for the change feed's connection; Watch checks the \
                     stamp on every read"
                );
                None
            }
        };
        Listener {
            config,
            stamps_table: stamps_table.to_owned(),
            keyspace: keyspace.to_owned(),
            peers: Peers::of(url, stamps_table, keyspace),
            shared: Arc::new(Shared {
                subscribed_at: AtomicU64::new(u64::MAX),
                ..Shared::default()
            }),
            started: OnceLock::new(),
        }
    }

    /// The feed, its thread started on the first call; `None` without a usable URL or thread.
    pub(crate) fn feed(
        &self,
        pool: impl FnOnce() -> (PoolEpoch, PoolIdentity),
    ) -> Option<Arc<Feed>> {
        self.started
            .get_or_init(|| {
                let (epoch, identity) = pool();
                self.start(epoch, identity)
            })
            .clone()
    }

    /// A write through this handle returned.
    pub(crate) fn wrote(&self) {
        self.peers.wrote();
    }

    /// Server restarts the listener met: part of the store's epoch.
    pub(crate) fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::Acquire)
    }

    /// The store read its pool epoch: a change since the subscription was confirmed marks the
    /// feed lost at once (the thread subscribes again on a new connection).
    pub(crate) fn saw_pool_epoch(&self, epoch: u64) {
        let at = self.shared.subscribed_at.load(Ordering::Acquire);
        if at != u64::MAX
            && at != epoch
            && let Some(feed) = self.shared.feed.get()
            && feed.state().is_up()
        {
            feed.lost();
        }
    }

    fn start(&self, pool_epoch: PoolEpoch, pool_identity: PoolIdentity) -> Option<Arc<Feed>> {
        let config = self.config.clone()?;
        let feed = Arc::new(Feed::new());
        let _ = self.shared.feed.set(Arc::clone(&feed));
        let worker = Worker {
            config,
            stamps_table: self.stamps_table.clone(),
            keyspace: self.keyspace.clone(),
            shared: Arc::clone(&self.shared),
            feed: Arc::clone(&feed),
            pool_epoch,
            pool_identity,
            server_started: None,
            warned_elsewhere: false,
        };
        // Joined before the thread can report the feed up: a write through another handle
        // of this process returning in between would otherwise not notify it.
        self.peers.join(&feed);
        std::thread::Builder::new()
            .name("durabledict-pg-listen".into())
            .spawn(move || worker.run())
            .ok()?;
        Some(feed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.stop.set();
    }
}

/// Tells the thread to end; wakes it from a back-off pause at once.
#[derive(Default)]
struct Stop {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn set(&self) {
        self.stopped.store(true, Ordering::Release);
        drop(self.lock.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_all();
    }

    fn is_set(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Sleeps for `pause` or until stopped; `true` when stopped.
    fn sleep(&self, pause: Duration) -> bool {
        let deadline = Instant::now() + pause;
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.is_set() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            guard = self
                .wake
                .wait_timeout(guard, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

struct Worker {
    config: Config,
    stamps_table: String,
    keyspace: String,
    shared: Arc<Shared>,
    feed: Arc<Feed>,
    pool_epoch: PoolEpoch,
    pool_identity: PoolIdentity,
    /// `pg_postmaster_start_time()` of the server last met.
    server_started: Option<String>,
    /// Whether a listener connection that reached another database than the store's was
    /// reported.
    warned_elsewhere: bool,
}

/// Why a subscription ended.
enum Ended {
    Stopped,
    Lost(String),
}

impl Worker {
    fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        while !self.shared.stop.is_set() {
            let Some(epoch) = (self.pool_epoch)() else {
                return; // the store is gone
            };
            match self.subscribe() {
                Ok(client) => {
                    backoff = BACKOFF_MIN;
                    let ended = self.listen(client, epoch);
                    self.shared.subscribed_at.store(u64::MAX, Ordering::Release);
                    if self.feed.state().is_up() {
                        self.feed.lost();
                        if let Ended::Lost(why) = &ended {
                            tracing::warn!(
                                target: TARGET,
                                keyspace = %self.keyspace,
                                reason = %why,
                                "change feed lost; Watch checks the stamp on every read until it is back"
                            );
                        }
                    }
                    if let Ended::Stopped = ended {
                        return;
                    }
                }
                Err(SubscribeError::StoreGone) => return,
                Err(error) => {
                    if let SubscribeError::Elsewhere { .. } = &error
                        && !self.warned_elsewhere
                    {
                        self.warned_elsewhere = true;
                        tracing::warn!(
                            target: TARGET,
                            keyspace = %self.keyspace,
                            %error,
                            "the change feed's connection reaches another database than the \
                             store's (libpq takes what the URL leaves out from PGDATABASE, \
                             PGHOST, PGPORT …, the listener does not): the feed stays down and \
                             Watch checks the stamp on every read; name them in the URL"
                        );
                    }
                    tracing::debug!(
                        target: TARGET,
                        keyspace = %self.keyspace,
                        %error,
                        retry_in = ?backoff,
                        "change feed listener reconnects"
                    );
                    if self.shared.stop.sleep(backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// A new connection with `LISTEN` confirmed on the keyspace's and the table's channels.
    fn subscribe(&mut self) -> Result<(Client, String), SubscribeError> {
        let mut config = self.config.clone();
        config.application_name(&application_name(&self.keyspace));
        config.connect_timeout(Duration::from_secs(2));
        let mut client = config.connect(NoTls)?;
        let quoted = format!("\"{}\"", self.stamps_table);
        let sql = format!(
            "SELECT {key}, {all}, CAST(pg_postmaster_start_time() AS TEXT), {identity} \
             FROM (SELECT CAST(n.nspname AS TEXT) AS schema, CAST($1 AS TEXT) AS tbl, \
             CAST($2 AS TEXT) AS ks FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = to_regclass($3)) AS t",
            key = CHANNEL_SQL,
            all = CHANNEL_SQL.replace(" || '/' || ks", ""),
            identity = IDENTITY_SQL.replace("$1", "$3"),
        );
        let row = client.query_opt(&sql, &[&self.stamps_table, &self.keyspace, &quoted])?;
        let Some(row) = row else {
            return Err(SubscribeError::NoStampsTable);
        };
        let (key, all, started, listener): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        // The same database, server instance and stamps table as the store's connections.
        let store = match (self.pool_identity)() {
            None => return Err(SubscribeError::StoreGone),
            Some(Err(e)) => return Err(SubscribeError::Store(e)),
            Some(Ok(store)) => store,
        };
        if store != listener {
            return Err(SubscribeError::Elsewhere { listener, store });
        }
        if self
            .server_started
            .as_ref()
            .is_some_and(|before| *before != started)
        {
            // Another server, or the same restarted: contents may differ at an equal stamp.
            self.shared.restarts.fetch_add(1, Ordering::AcqRel);
        }
        self.server_started = Some(started);
        client.batch_execute(&format!("LISTEN \"{key}\"; LISTEN \"{all}\""))?;
        Ok((client, quoted))
    }

    fn trigger_present(client: &mut Client, quoted: &str) -> Result<bool, postgres::Error> {
        let n: i64 = client
            .query_one(COUNT_TRIGGERS.as_str(), &[&quoted])?
            .get(0);
        Ok(n == 2)
    }

    /// Hears notices until the connection dies, the pool epoch changes or the store is dropped.
    fn listen(&self, (mut client, quoted): (Client, String), epoch: u64) -> Ended {
        let mut up = false;
        let mut probes = 0u32;
        let mut warned = false;
        loop {
            // Up only with the trigger: without it a foreign write would go unheard.
            if probes.is_multiple_of(TRIGGER_CHECK_EVERY) {
                match Self::trigger_present(&mut client, &quoted) {
                    Ok(true) if !up => {
                        self.shared.subscribed_at.store(epoch, Ordering::Release);
                        self.feed.restored();
                        up = true;
                        tracing::info!(
                            target: TARGET,
                            keyspace = %self.keyspace,
                            "change feed up: Watch reads locally"
                        );
                    }
                    Ok(true) => {}
                    Ok(false) => {
                        if up {
                            return Ended::Lost("the notify trigger is gone".into());
                        }
                        if !warned {
                            warned = true;
                            tracing::warn!(
                                target: TARGET,
                                keyspace = %self.keyspace,
                                table = %self.stamps_table,
                                "no durabledict_notify trigger on the stamps table (the role may \
                                 not create it): the feed stays down and Watch checks the stamp \
                                 on every read"
                            );
                        }
                    }
                    Err(e) => return Ended::Lost(e.to_string()),
                }
            }
            probes = probes.wrapping_add(1);
            // Notices until a silence of PROBE_AFTER.
            {
                let mut notifications = client.notifications();
                let mut iter = notifications.timeout_iter(PROBE_AFTER);
                loop {
                    match iter.next() {
                        Ok(Some(_)) => {
                            self.feed.notify();
                        }
                        Ok(None) => break,
                        Err(e) => return Ended::Lost(e.to_string()),
                    }
                    if self.shared.stop.is_set() {
                        return Ended::Stopped;
                    }
                    if up && !self.feed.state().is_up() {
                        // Marked lost by the store while notices keep coming: see below.
                        break;
                    }
                }
            }
            if self.shared.stop.is_set() {
                return Ended::Stopped;
            }
            if client.is_closed() {
                return Ended::Lost("the connection closed".into());
            }
            match (self.pool_epoch)() {
                None => return Ended::Stopped,
                Some(now) if now != epoch => {
                    return Ended::Lost("a request of the store lost the server".into());
                }
                Some(_) => {}
            }
            if up && !self.feed.state().is_up() {
                // Marked lost by the store (its pool epoch changed): subscribe again.
                return Ended::Lost("the store's epoch changed".into());
            }
            if let Err(e) = client.is_valid(DEAD_AFTER) {
                return Ended::Lost(format!("no answer to a probe: {e}"));
            }
        }
    }
}

/// Why a subscription could not be made.
#[derive(Debug)]
enum SubscribeError {
    Server(postgres::Error),
    /// The stamps table does not exist (yet): nothing to hear.
    NoStampsTable,
    /// The store's pool could not be asked what it reaches.
    Store(crate::error::SqlError),
    /// The store is gone.
    StoreGone,
    /// The listener's connection reached another database, server or stamps table than the
    /// store's ([`IDENTITY_SQL`]).
    Elsewhere {
        listener: String,
        store: String,
    },
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeError::Server(e) => write!(f, "{e}"),
            SubscribeError::NoStampsTable => f.write_str("the stamps table does not exist"),
            SubscribeError::Store(e) => {
                write!(f, "the store's connection: {}", durabledict_core::Report(e))
            }
            SubscribeError::StoreGone => f.write_str("the store is gone"),
            SubscribeError::Elsewhere { listener, store } => write!(
                f,
                "the listener reaches {listener:?}, the store {store:?} (database/server \
                 start/stamps table)"
            ),
        }
    }
}

impl From<postgres::Error> for SubscribeError {
    fn from(e: postgres::Error) -> Self {
        SubscribeError::Server(e)
    }
}

/// Creates the trigger function and the triggers on the stamps table `stamps` when missing and
/// the role may; `true` when the triggers exist afterwards. Runs through the store's pool (its
/// role). Concurrent creators take turns on an advisory lock; a refusal (no `CREATE` on the
/// schema, not the stamps table's owner) is no error: the feed then stays down.
pub(crate) fn ensure_trigger(
    c: &mut diesel::pg::PgConnection,
    stamps: &str,
) -> Result<bool, crate::error::SqlError> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;

    use crate::db::Db;
    use crate::stmt::{Bind, Stmt};

    let quoted = format!("\"{stamps}\"");
    let count_sql = COUNT_TRIGGERS.replace("$1", "?");
    let count = |c: &mut diesel::pg::PgConnection| -> diesel::QueryResult<i64> {
        Ok(c.int(Stmt::new(&count_sql, &[Bind::Text(&quoted)]))?
            .unwrap_or(0))
    };
    if count(c)? == 2 {
        return Ok(true);
    }
    let created = c.transaction(|c| -> diesel::QueryResult<()> {
        c.batch_execute("SELECT pg_advisory_xact_lock(hashtext('durabledict_notify'))")?;
        if count(c)? == 2 {
            return Ok(());
        }
        // Made when missing, replaced when another one has the name (see `FUNCTION_BODY`);
        // one that is this crate's is kept (it may be an administrator's, whom this role
        // cannot replace).
        let ours = c
            .int(Stmt::new(
                &format!(
                    "SELECT CAST(count(*) AS BIGINT) AS n FROM pg_proc \
                     WHERE oid = to_regprocedure('durabledict_notify()') AND {}",
                    SAME_BODY.as_str()
                ),
                &[],
            ))?
            .unwrap_or(0);
        if ours == 0 {
            c.batch_execute(&CREATE_FUNCTION)?;
        }
        c.batch_execute(&format!(
            "DROP TRIGGER IF EXISTS {TRIGGER} ON {quoted}; \
             DROP TRIGGER IF EXISTS {TRIGGER}_truncate ON {quoted}; {}",
            create_triggers(&quoted)
        ))
    });
    match created {
        Ok(()) => Ok(true),
        Err(error @ diesel::result::Error::DatabaseError(kind, _))
            if !matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection) =>
        {
            tracing::warn!(
                target: TARGET,
                table = stamps,
                %error,
                "cannot create the durabledict_notify trigger on the stamps table: the change \
                 feed stays down (Watch checks the stamp on every read) until it exists"
            );
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_shared_by_url_table_and_keyspace() {
        let a = Peers::of("postgres://h/db", "s", "k");
        assert!(Arc::ptr_eq(&a, &Peers::of("postgres://h/db", "s", "k")));
        assert!(!Arc::ptr_eq(&a, &Peers::of("postgres://h/db", "s", "k2")));
        let feed = Arc::new(Feed::new());
        a.join(&feed);
        let before = feed.state();
        Peers::of("postgres://h/db", "s", "k").wrote();
        assert_ne!(feed.state(), before);
    }

    #[test]
    fn urls_the_listener_cannot_use_give_no_feed() {
        let listener = Listener::new("postgres://u@h/db?sslmode=require", "s", "k");
        assert!(listener.config.is_none());
        let listener = Listener::new("postgres://u@h/db?sslrootcert=/x", "s", "k");
        assert!(listener.config.is_none());
        let listener = Listener::new("postgres://u@h:5/db", "s", "k");
        assert!(listener.config.is_some());
    }
}
