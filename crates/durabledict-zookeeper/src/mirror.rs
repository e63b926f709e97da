//! [`Mirror`]: the store's in-memory copy of the keyspace, and the bookkeeping that tells the
//! watch events of its own writes from everybody else's.
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
//! consume an expectation when an own write of the same key is still to be reported, i.e.
//! commits after it and overwrites it; the event of that own write then finds no expectation
//! left and reads the znode. A refused own request (no event will come) gives its expectation
//! back, or, when a foreign event already consumed it, reads the znode itself. A request
//! whose outcome is unknown (connection lost) makes the store reload everything.

use std::collections::HashMap;

/// The keyspace as this store last saw it.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    entries: HashMap<String, Vec<u8>>,
    /// Events still to come for own requests, per key.
    expected: HashMap<String, u32>,
    /// The epoch whose connection has the watch (and credentials) set up.
    pub(crate) armed: Option<u64>,
    /// The epoch during which the whole keyspace was loaded after arming the watch: while it
    /// is the current epoch, the mirror follows the server through events alone.
    pub(crate) loaded: Option<u64>,
    /// Whether the keyspace was ever loaded. Until then nobody reads through this handle (a
    /// dict loads at once), so events and reconnections are not worth a request: the first
    /// load reads everything anyway.
    pub(crate) used: bool,
}

impl Mirror {
    /// Every key and its value.
    pub(crate) fn entries(&self) -> &HashMap<String, Vec<u8>> {
        &self.entries
    }

    /// Records that the server holds `value` at `key` (`None`: absent). Returns whether the
    /// mirror changed.
    pub(crate) fn observe(&mut self, key: &str, value: Option<&[u8]>) -> bool {
        match value {
            Some(value) => {
                if self.entries.get(key).map(Vec::as_slice) == Some(value) {
                    return false;
                }
                self.entries.insert(key.to_owned(), value.to_vec());
                true
            }
            None => self.entries.remove(key).is_some(),
        }
    }

    /// Replaces every entry with a fresh full load and forgets expected events (those still
    /// to come find the mirror already current). Returns whether the mirror changed.
    pub(crate) fn load(&mut self, entries: HashMap<String, Vec<u8>>) -> bool {
        self.expected.clear();
        if entries == self.entries {
            return false;
        }
        self.entries = entries;
        true
    }

    /// An own request on `key` is about to be sent: expect its event.
    pub(crate) fn expect(&mut self, key: &str) {
        *self.expected.entry(key.to_owned()).or_insert(0) += 1;
    }

    /// An event for `key` arrived. Returns `true` when it is accounted for by an own request
    /// (nothing to read), `false` when the znode must be read.
    pub(crate) fn consume(&mut self, key: &str) -> bool {
        match self.expected.get_mut(key) {
            Some(n) if *n > 1 => {
                *n -= 1;
                true
            }
            Some(_) => {
                self.expected.remove(key);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observe_reports_changes_only() {
        let mut m = Mirror::default();
        assert!(m.observe("a", Some(b"1")));
        assert!(!m.observe("a", Some(b"1")));
        assert!(m.observe("a", Some(b"2")));
        assert!(m.observe("a", None));
        assert!(!m.observe("a", None));
        assert!(m.entries().is_empty());
    }

    #[test]
    fn own_events_are_consumed_once_each() {
        let mut m = Mirror::default();
        m.expect("k");
        m.expect("k");
        assert!(m.consume("k"));
        assert!(m.consume("k"));
        assert!(!m.consume("k"), "a third event is foreign");
        assert!(!m.consume("other"));
    }

    #[test]
    fn a_refusal_gives_the_expectation_back_or_asks_for_a_read() {
        let mut m = Mirror::default();
        m.expect("k");
        assert!(!m.refused("k"), "nothing consumed it: nothing to read");
        assert!(!m.consume("k"));
        m.expect("k");
        assert!(m.consume("k"), "a foreign event took the expectation");
        assert!(m.refused("k"), "so the refusal must read the znode");
    }

    #[test]
    fn a_full_load_forgets_expectations() {
        let mut m = Mirror::default();
        m.observe("a", Some(b"1"));
        m.expect("a");
        let same: HashMap<String, Vec<u8>> = [("a".to_owned(), b"1".to_vec())].into();
        assert!(!m.load(same));
        assert!(!m.consume("a"));
        assert!(m.load(HashMap::new()));
    }
}
