//! The largest value that fits in one ZooKeeper request.
//!
//! The server closes the connection of a client that sends a request longer than its
//! `jute.maxbuffer` (0xfffff bytes by default), so a value is checked against the room the
//! largest request leaves for it before anything is sent.

use crate::acl::Acl;
use crate::keys::{Keyspace, MAX_KEY_LEN};

/// ZooKeeper's default `jute.maxbuffer`: the longest request a server accepts, in bytes.
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// The room for a value in the largest request the store sends: a `create` of the longest key,
/// which carries (after the length prefix) the request header (xid, opcode), the path, the
/// data, the ACL list and the flags; each string and list is prefixed with its 4-byte length.
pub(crate) fn max_value_len(
    max_buffer: usize,
    chroot: &str,
    keyspace: &Keyspace,
    acl: &[Acl],
) -> usize {
    let longest_path = chroot.len() + keyspace.node("").len() + MAX_KEY_LEN;
    let header = 4 + 4;
    let acl_list = 4 + acl.iter().map(Acl::encoded_len).sum::<usize>();
    let flags = 4;
    let overhead = header + (4 + longest_path) + 4 + acl_list + flags;
    max_buffer.saturating_sub(overhead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_room_for_the_longest_request() {
        let ks = Keyspace::new("/ks", false).expect("valid");
        let max = max_value_len(DEFAULT_MAX_BUFFER, "", &ks, &Acl::open());
        // 8 header + 4 + "/ks/" + 4096 + 4 data prefix + 27 ACL list + 4 flags.
        assert_eq!(
            max,
            DEFAULT_MAX_BUFFER - (8 + 4 + 4 + MAX_KEY_LEN + 4 + 27 + 4)
        );
        let chrooted = max_value_len(DEFAULT_MAX_BUFFER, "/app", &ks, &Acl::open());
        assert_eq!(chrooted, max - 4);
        assert_eq!(max_value_len(100, "", &ks, &Acl::open()), 0);
    }
}
