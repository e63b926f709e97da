//! Change listeners: [`Subscription`], [`Event`] and [`Change`].
//!
//! Changes are computed where the cache changes (a reload, an own write) and sent, under the
//! dict's update lock, to every subscriber's bounded buffer with `try_send`: a slow subscriber
//! never blocks reads, writes or other subscribers. A subscriber whose buffer is full misses
//! every change from then on until it has read everything buffered; then it gets one
//! [`Event::Lagged`], and should read a fresh [`snapshot`](crate::DurableDict::snapshot):
//! the changes after `Lagged` apply to the contents from then on.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    shared: Arc<Shared>,
}

/// What a subscription and its sender share.
#[derive(Debug, Default)]
struct Shared {
    /// The buffer overflowed: changes are dropped until the receiver has taken the `Lagged`.
    lagged: AtomicBool,
    /// The subscription was dropped: the dict forgets the subscriber.
    dropped: AtomicBool,
}

impl<V> Drop for Subscription<V> {
    fn drop(&mut self) {
        self.shared.dropped.store(true, Ordering::Release);
    }
}

impl<V> fmt::Debug for Subscription<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl<V> Subscription<V> {
    /// The next event, waiting at most `timeout`; `None` on timeout or when the dict is gone.
    pub fn next_timeout(&self, timeout: Duration) -> Option<Event<V>> {
        if let Some(event) = self.try_next() {
            return Some(event);
        }
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is waiting.
    pub fn try_next(&self) -> Option<Event<V>> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            // While `lagged` is set nothing more is sent: once it is seen set and the buffer
            // empty after that, every change sent before the overflow was read. Now the marker.
            Err(_) if self.shared.lagged.load(Ordering::Acquire) => match self.rx.try_recv() {
                Ok(event) => Some(event),
                Err(_) => {
                    self.shared.lagged.store(false, Ordering::Release);
                    Some(Event::Lagged)
                }
            },
            Err(_) => None,
        }
    }
}

impl<V> Iterator for Subscription<V> {
    type Item = Event<V>;

    fn next(&mut self) -> Option<Event<V>> {
        // The buffer is full whenever `lagged` gets set, so a receiver that finds it empty
        // and the flag clear may block: the next event wakes it.
        self.try_next().or_else(|| self.rx.recv().ok())
    }
}

/// The sending side, kept by the dict.
pub(crate) struct Subscriber<V> {
    tx: SyncSender<Event<V>>,
    shared: Arc<Shared>,
}

impl<V> Subscriber<V> {
    pub(crate) fn new(capacity: usize) -> (Self, Subscription<V>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let subscription = Subscription {
            rx,
            shared: Arc::clone(&shared),
        };
        (Subscriber { tx, shared }, subscription)
    }

    /// Whether the subscription was dropped.
    pub(crate) fn is_dropped(&self) -> bool {
        self.shared.dropped.load(Ordering::Acquire)
    }

    /// Sends without blocking; `false` once the subscription is dropped.
    pub(crate) fn send(&mut self, change: &Change<V>) -> bool {
        if self.is_dropped() {
            return false;
        }
        if self.shared.lagged.load(Ordering::Acquire) {
            // Missed until the receiver has read the marker.
            return true;
        }
        match self.tx.try_send(Event::Changed(change.clone())) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.shared.lagged.store(true, Ordering::Release);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }
}
