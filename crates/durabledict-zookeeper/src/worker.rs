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
        let msg = match replace_at {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => {
                    replace_at = None;
                    // A failed probe is fine: the new client reports its connection when it
                    // makes one, or gives up, and is replaced in turn.
                    match inner.session.replace_if_closed() {
                        Ok(()) => drop(inner.session.probe()),
                        Err(_) => replace_at = Some(Instant::now() + backoff),
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(100), MAX_BACKOFF);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Stop => return,
            Msg::Connected => {
                backoff = Duration::ZERO;
                // A failure here is seen again by the next `durables`, which retries.
                let _ = inner.resync();
            }
            Msg::Reload => {
                let _ = inner.resync();
            }
            Msg::Disconnected => {}
            Msg::Closed => {
                replace_at.get_or_insert_with(|| Instant::now() + backoff);
            }
        }
    }
}
