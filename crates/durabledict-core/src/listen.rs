//! Change listeners: [`Subscription`], [`Event`] and [`Change`].
//!
//! Changes are computed where the cache changes (a reload, an own write) and sent, under the
//! dict's update lock, to every subscriber's bounded buffer with `try_send`: a slow subscriber
//! never blocks reads, writes or other subscribers. A subscriber whose buffer is full misses
//! changes; it gets one [`Event::Lagged`] as soon as there is room again, and should then
//! read a fresh [`snapshot`](crate::DurableDict::snapshot).

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// One key whose value differs after a reload or an own write.
#[derive(Debug)]
pub struct Change<V> {
    /// The key.
    pub key: Arc<str>,
    /// Its value before; `None` when it was absent (or undecodable).
    pub old: Option<Arc<V>>,
    /// Its value after; `None` when it was removed (or is undecodable).
    pub new: Option<Arc<V>>,
}

impl<V> Clone for Change<V> {
    fn clone(&self) -> Self {
        Change {
            key: Arc::clone(&self.key),
            old: self.old.clone(),
            new: self.new.clone(),
        }
    }
}

/// What a [`Subscription`] yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<V> {
    /// A key changed.
    Changed(Change<V>),
    /// The buffer was full and changes were dropped since the last event: read a fresh
    /// [`snapshot`](crate::DurableDict::snapshot) to catch up.
    Lagged,
}

impl<V> Clone for Event<V> {
    fn clone(&self) -> Self {
        match self {
            Event::Changed(change) => Event::Changed(change.clone()),
            Event::Lagged => Event::Lagged,
        }
    }
}

/// The changes a dict applies, in the order it applies them; made by
/// [`DurableDict::subscribe`](crate::DurableDict::subscribe). Iterating blocks until the next
/// event; the iterator ends when the dict is dropped. Dropping the subscription unsubscribes.
pub struct Subscription<V> {
    rx: Receiver<Event<V>>,
}

impl<V> fmt::Debug for Subscription<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl<V> Subscription<V> {
    /// The next event, waiting at most `timeout`; `None` on timeout or when the dict is gone.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event<V>> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_next(&self) -> Option<Event<V>> {
        self.rx.try_recv().ok()
    }
}

impl<V> Iterator for Subscription<V> {
    type Item = Event<V>;

    fn next(&mut self) -> Option<Event<V>> {
        self.rx.recv().ok()
    }
}

/// The sending side, kept by the dict.
pub(crate) struct Subscriber<V> {
    tx: SyncSender<Event<V>>,
    lagged: bool,
}

impl<V> Subscriber<V> {
    pub(crate) fn new(capacity: usize) -> (Self, Subscription<V>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        (Subscriber { tx, lagged: false }, Subscription { rx })
    }

    /// Sends without blocking; `false` once the subscription is dropped.
    pub(crate) fn send(&mut self, change: &Change<V>) -> bool {
        if self.lagged {
            match self.tx.try_send(Event::Lagged) {
                Ok(()) => self.lagged = false,
                Err(TrySendError::Full(_)) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
        match self.tx.try_send(Event::Changed(change.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.lagged = true;
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}
