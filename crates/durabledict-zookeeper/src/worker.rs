//! The store's worker thread: reloads the keyspace on each new connection (again, with a
//! back-off, while that fails) and replaces a client that gave up.
//!
//! State changes arrive on the `zookeeper` client's I/O thread, which must not block on
//! requests of that client (it is the thread that would answer them); it only sends a [`Msg`]
//! here. Watch events are handled on the client's event thread (see
//! [`Session::arm`](crate::session::Session::arm)).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::inner::Inner;
use crate::session::Msg;

/// The longest wait between two attempts to open a new session while no server answers.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a server gets to accept a TCP connection before a new client is made.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(1);

/// The first wait before a failed reload is tried again; doubled up to [`MAX_BACKOFF`].
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// The `tracing` target of the ZooKeeper store's events.
const TARGET: &str = "durabledict::zookeeper";

/// What the worker last reported about the connection: each outage is reported once when it
/// begins and once when it ends, not once per report of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Connected, or not connected yet.
    None,
    /// The connection was lost; the client is trying the servers again (same session).
    Disconnected,
    /// The client gave up after a session timeout: the session is gone, a new one is opened.
    SessionLost,
}

/// Starts the worker; it runs until it receives [`Msg::Stop`].
pub(crate) fn spawn(inner: Arc<Inner>, rx: Receiver<Msg>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("durabledict-zookeeper".to_owned())
        .spawn(move || run(&inner, &rx))
        .map(drop)
}

fn run(inner: &Inner, rx: &Receiver<Msg>) {
    // The first replacement is immediate (the client gave up after a whole session timeout
    // already); later ones back off while no server answers.
    let mut backoff = Duration::ZERO;
    let mut replace_at: Option<Instant> = None;
    // A reload that failed while connected (a refused listing, say) is tried again: until one
    // succeeds the store's copy misses what changed while the watch was away, and the feed
    // stays down.
    let mut retry = FIRST_RETRY;
    let mut retry_at: Option<Instant> = None;
    let mut resync = |retry_at: &mut Option<Instant>| match inner.resync() {
        Ok(()) => {
            retry = FIRST_RETRY;
            *retry_at = None;
        }
        Err(_) => {
            *retry_at = Some(Instant::now() + retry);
            retry = (retry * 2).min(MAX_BACKOFF);
        }
    };
    let mut outage = Outage::None;
    loop {
        let wake_at = match (replace_at, retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let received = match wake_at {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Connected) => {
                match outage {
                    Outage::None => tracing::debug!(target: TARGET, "connected"),
                    Outage::Disconnected => tracing::info!(target: TARGET, "reconnected"),
                    Outage::SessionLost => tracing::info!(
                        target: TARGET,
                        "session re-established: a new session, the keyspace is reloaded"
                    ),
                }
                outage = Outage::None;
                backoff = Duration::ZERO;
                resync(&mut retry_at);
            }
            Ok(Msg::Reload) => {
                inner.session.reload_taken();
                resync(&mut retry_at);
            }
            Ok(Msg::Disconnected) => {
                if outage == Outage::None {
                    tracing::warn!(
                        target: TARGET,
                        "lost the connection to ZooKeeper: reads check the server until it is back"
                    );
                    outage = Outage::Disconnected;
                } else {
                    tracing::debug!(target: TARGET, "still no connection");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Closed) => {
                if outage == Outage::SessionLost {
                    tracing::debug!(target: TARGET, "the new client gave up too");
                } else {
                    tracing::warn!(
                        target: TARGET,
                        session_timeout_ms = inner.session.session_timeout().as_millis() as u64,
                        "session replaced: no server answered for a whole session timeout; \
                         a new session is opened and the keyspace reloaded"
                    );
                    outage = Outage::SessionLost;
                }
                replace_at.get_or_insert_with(|| Instant::now() + backoff);
            }
        }
        if retry_at.is_some_and(|at| Instant::now() >= at) {
            // Not while disconnected: the next connection reloads by itself.
            if inner.session.epoch().is_some() {
                resync(&mut retry_at);
            } else {
                retry_at = None;
            }
        }
        // Checked after every message, not only on a quiet queue: traffic (a caller retrying
        // failed writes) must not put the replacement off.
        if replace_at.is_some_and(|at| Instant::now() >= at) {
            backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
            replace_at = Some(Instant::now() + backoff);
            if !inner.session.any_server_listens(LISTEN_TIMEOUT) {
                continue;
            }
            // A failed probe is fine: the new client reports its connection when it makes
            // one, or gives up, and is replaced in turn.
            if inner.session.replace_if_closed().is_ok() {
                tracing::debug!(target: TARGET, "a new client opens a new session");
                replace_at = None;
                let _ = inner.session.probe();
            }
        }
    }
}
