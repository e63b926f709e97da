//! [`Mirror`]: the store's in-memory copy of the keyspace, kept current by reading the one
//! znode each watch event names (see [`crate::expected`] for which events need no read).

use std::collections::HashMap;

/// The keyspace as this store last saw it.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    entries: HashMap<String, Vec<u8>>,
    /// The epoch whose connection has the watch (and credentials) set up.
    pub(crate) armed: Option<u64>,
    /// The epoch during which the whole keyspace was loaded after arming the watch: while it
    /// is the current epoch, the mirror follows the server through events alone.
    pub(crate) loaded: Option<u64>,
    /// Whether the keyspace was ever loaded. Until then nobody reads through this handle (a
    /// dict loads at once; [`Store::init`](durabledict_core::Store::init) loads nothing, so
    /// that a program that only writes never pays for a load), so events and reconnections
    /// are not worth a request: the first load reads everything anyway. An event still bumps
    /// the stamp.
    pub(crate) used: bool,
    /// How many times the mirror was found untrustworthy (an event that could not be read, an
    /// own request whose outcome is unknown): a full load that began before one of those
    /// does not make the mirror current.
    pub(crate) losses: u64,
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

    /// Replaces every entry with a fresh full load. Returns whether the mirror changed.
    pub(crate) fn load(&mut self, entries: HashMap<String, Vec<u8>>) -> bool {
        if entries == self.entries {
            return false;
        }
        self.entries = entries;
        true
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
    fn a_full_load_reports_whether_anything_differs() {
        let mut m = Mirror::default();
        m.observe("a", Some(b"1"));
        let same: HashMap<String, Vec<u8>> = [("a".to_owned(), b"1".to_vec())].into();
        assert!(!m.load(same));
        assert!(m.load(HashMap::new()));
        assert!(m.entries().is_empty());
    }
}
