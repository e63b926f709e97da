//! [`Expected`]: the bookkeeping that tells the watch events of the store's own writes from
//! everybody else's.
//!
//! # Why the stamp counts each write once
//!
//! The stamp is a local counter, bumped whenever the mirror's contents change: once by each
//! own write (under the store's lock, together with the mirror update), and once by each
//! foreign change the watch reports. ZooKeeper 3.8 events carry no version, so an event cannot
//! say whose write it reports. Instead every own request on a key first *expects* one event
//! for that key; an event for a key with an expectation consumes it and is not looked at,
//! any other event makes the store read that one znode and bump only if the mirror changes.
//!
//! This is exact for the last write of every key: events for one key arrive in the order of
//! the writes, own requests are serialised by the store's lock, and a foreign event can only
//! consume an expectation while an own write of the same key has been sent and its event has
//! not arrived yet, i.e. the own write commits after the foreign one and overwrites it; the
//! event of that own write then finds no expectation left and reads the znode. A refused own
//! request (no event will come) gives its expectation back, or, when a foreign event already
//! consumed it, reads the znode itself. A request whose outcome is unknown (connection lost)
//! gives its expectation back too and makes the store reload everything; a reload forgets
//! every expectation before it lists the keyspace.
//!
//! Taking an own event for a foreign one costs one read; the reverse would miss a change, so
//! every doubt is settled by forgetting expectations.

use std::collections::HashMap;

/// Events still to come for own requests, per key. Kept apart from the mirror's lock, so that
/// the event of an own write (which arrives before the write's answer, while the writer holds
/// that lock) is accounted for at once instead of waiting for the writer.
#[derive(Debug, Default)]
pub(crate) struct Expected {
    events: HashMap<String, u32>,
}

impl Expected {
    /// An own request on `key` is about to be sent: expect its event.
    pub(crate) fn expect(&mut self, key: &str) {
        *self.events.entry(key.to_owned()).or_insert(0) += 1;
    }

    /// An event for `key` arrived. Returns `true` when it is accounted for by an own request
    /// (nothing to read), `false` when the znode must be read.
    pub(crate) fn consume(&mut self, key: &str) -> bool {
        match self.events.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.events.remove(key);
                true
            }
            None => false,
        }
    }

    /// The server refused an own request on `key`, so no event will come for it. Returns
    /// `true` when another event already consumed its expectation: the znode must be read.
    pub(crate) fn refused(&mut self, key: &str) -> bool {
        !self.consume(key)
    }

    /// Forgets every expectation (before a full load: events still to come are then read, and
    /// find the mirror current or bring it up to date).
    pub(crate) fn clear(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_events_are_consumed_once_each() {
        let mut e = Expected::default();
        e.expect("k");
        e.expect("k");
        assert!(e.consume("k"));
        assert!(e.consume("k"));
        assert!(!e.consume("k"), "a third event is foreign");
        assert!(!e.consume("other"));
    }

    #[test]
    fn a_refusal_gives_the_expectation_back_or_asks_for_a_read() {
        let mut e = Expected::default();
        e.expect("k");
        assert!(!e.refused("k"), "nothing consumed it: nothing to read");
        assert!(!e.consume("k"));
        e.expect("k");
        assert!(e.consume("k"), "a foreign event took the expectation");
        assert!(e.refused("k"), "so the refusal must read the znode");
    }

    #[test]
    fn clearing_forgets_expectations() {
        let mut e = Expected::default();
        e.expect("a");
        e.clear();
        assert!(!e.consume("a"));
    }
}
