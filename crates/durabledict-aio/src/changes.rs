//! [`Changes`]: the dict's change events as a `Stream`.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use durabledict_core::{DurableDict, Event};
use futures_core::Stream;
use tokio::sync::mpsc;

/// How often the forwarding thread looks whether the stream or the dict is gone, when no
/// change arrives; so a dropped stream frees its thread within this.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// Events in flight between the forwarding thread and the stream: the dict's subscription
/// holds the buffer; this only smooths the hand-off.
const HANDOFF: usize = 64;

/// The dict's changes as a [`Stream`] of [`Event`]s, in the order the dict applied them;
/// made by [`AsyncDict::changes`](crate::AsyncDict::changes).
///
/// A thread named `dd-aio-changes` moves events from the dict's blocking subscription to the
/// stream; a slow stream never slows the dict (it misses changes and yields one
/// [`Event::Lagged`]). The stream ends when the dict is dropped; the thread ends then, or
/// within 100 ms after the stream is dropped.
pub struct Changes<V> {
    rx: mpsc::Receiver<Event<V>>,
}

impl<V> fmt::Debug for Changes<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

impl<V: PartialEq + Send + Sync + 'static> Changes<V> {
    pub(crate) async fn new(dict: &Arc<DurableDict<V>>, capacity: usize) -> Self {
        let subscribing = Arc::clone(dict);
        let dict: Weak<DurableDict<V>> = Arc::downgrade(dict);
        let (tx, rx) = mpsc::channel(HANDOFF);
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel::<()>();
        let forward = move || {
            // Subscribing takes the dict's update lock, which an own write waiting on a paused
            // server holds: it waits here, on this thread, never on the executor's.
            let subscription = subscribing.subscribe_with_capacity(capacity);
            drop(subscribing);
            let _ = subscribed.send(());
            loop {
                let gone = match subscription.next_timeout(IDLE_CHECK) {
                    Some(event) => tx.blocking_send(event).is_err(),
                    None => tx.is_closed() || dict.strong_count() == 0,
                };
                if gone {
                    return;
                }
            }
        };
        // A dedicated thread, not the blocking pool: it lives as long as the stream, and a
        // runtime waits for its blocking tasks when it shuts down. If no thread can be made,
        // the stream ends at once (the sender is dropped with the closure).
        if std::thread::Builder::new()
            .name("dd-aio-changes".into())
            .spawn(forward)
            .is_ok()
        {
            // Subscribed before this returns, so a snapshot read after sees every later change.
            let _ = is_subscribed.await;
        }
        Changes { rx }
    }
}

impl<V> Stream for Changes<V> {
    type Item = Event<V>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event<V>>> {
        self.rx.poll_recv(cx)
    }
}
