//! Where a keyspace lives in Redis: the hash of values and the stamp key.

use redis::cluster_routing::Slot;

/// The suffix Python durabledict appends to the keyspace to name the stamp key.
const STAMP_SUFFIX: &str = "last_updated";

/// The two Redis keys of one keyspace, laid out as Python durabledict does: values in the hash
/// `keyspace`, the stamp in the integer key `keyspace + "last_updated"`. In hash-tag mode the
/// keyspace is wrapped in braces first (`{keyspace}`, `{keyspace}last_updated`), so that a
/// Redis Cluster keeps both keys in one slot, where one script can change them together.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) hash: String,
    pub(crate) stamp: String,
    /// `GET stamp`, packed once: the check before every `Always` read sends these bytes as is.
    pub(crate) get_stamp: Vec<u8>,
}

impl Keys {
    pub(crate) fn new(keyspace: &str, hash_tag: bool) -> Self {
        let hash = if hash_tag {
            format!("{{{keyspace}}}")
        } else {
            keyspace.to_owned()
        };
        let stamp = format!("{hash}{STAMP_SUFFIX}");
        let get_stamp = redis::cmd("GET").arg(&stamp).get_packed_command();
        Keys {
            hash,
            stamp,
            get_stamp,
        }
    }

    /// Whether a cluster can run one script over both keys.
    pub(crate) fn same_slot(&self) -> bool {
        Slot::for_key(&self.hash) == Slot::for_key(&self.stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_layout() {
        let keys = Keys::new("settings", false);
        assert_eq!(keys.hash, "settings");
        assert_eq!(keys.stamp, "settingslast_updated");
        assert!(!keys.same_slot());
    }

    #[test]
    fn hash_tag_layout_shares_a_slot() {
        let keys = Keys::new("settings", true);
        assert_eq!(keys.hash, "{settings}");
        assert_eq!(keys.stamp, "{settings}last_updated");
        assert!(keys.same_slot());
    }

    #[test]
    fn a_keyspace_with_its_own_tag_shares_a_slot() {
        assert!(Keys::new("{app}settings", false).same_slot());
    }
}
