//! The store's worker thread: reloads the keyspace on each new connection and replaces a
//! client that gave up.
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
    loop {
        let received = match replace_at {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Msg::Connected) => {
                backoff = Duration::ZERO;
                // A failure here is seen again by the next `durables`, which retries.
                let _ = inner.resync();
            }
            Ok(Msg::Reload) => {
                inner.session.reload_taken();
                let _ = inner.resync();
            }
            Ok(Msg::Disconnected) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Msg::Closed) => {
                replace_at.get_or_insert_with(|| Instant::now() + backoff);
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
                replace_at = None;
                let _ = inner.session.probe();
            }
        }
    }
}
