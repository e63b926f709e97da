//! [`Acl`] and [`Permissions`]: who may do what with the znodes the store creates.

use std::fmt;
use std::ops::BitOr;

/// A set of ZooKeeper permissions, combined with `|`.
///
/// ```
/// use durabledict_zookeeper::Permissions;
///
/// let rw = Permissions::READ | Permissions::WRITE;
/// assert!(rw.contains(Permissions::READ));
/// assert!(!rw.contains(Permissions::DELETE));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    /// Read the data and list the children.
    pub const READ: Permissions = Permissions(1);
    /// Set the data.
    pub const WRITE: Permissions = Permissions(1 << 1);
    /// Create children.
    pub const CREATE: Permissions = Permissions(1 << 2);
    /// Delete children.
    pub const DELETE: Permissions = Permissions(1 << 3);
    /// Change the ACL.
    pub const ADMIN: Permissions = Permissions(1 << 4);
    /// Everything.
    pub const ALL: Permissions = Permissions(0b11111);

    /// Whether every permission of `other` is in `self`.
    pub fn contains(self, other: Permissions) -> bool {
        self.0 & other.0 == other.0
    }

    /// The permission bits as ZooKeeper encodes them.
    pub fn bits(self) -> u32 {
        self.0
    }

    fn to_zk(self) -> zookeeper::Permission {
        [
            (Self::READ, zookeeper::Permission::READ),
            (Self::WRITE, zookeeper::Permission::WRITE),
            (Self::CREATE, zookeeper::Permission::CREATE),
            (Self::DELETE, zookeeper::Permission::DELETE),
            (Self::ADMIN, zookeeper::Permission::ADMIN),
        ]
        .into_iter()
        .filter(|(ours, _)| self.contains(*ours))
        .fold(zookeeper::Permission::NONE, |all, (_, zk)| all | zk)
    }
}

impl BitOr for Permissions {
    type Output = Permissions;

    fn bitor(self, rhs: Permissions) -> Permissions {
        Permissions(self.0 | rhs.0)
    }
}

/// One ACL entry: `permissions` granted to `id` under `scheme` (`world`, `auth`, `digest`,
/// `ip`, …). A store applies its list of entries to every znode it creates.
///
/// ```
/// use durabledict_zookeeper::{Acl, Permissions};
///
/// // Anyone may read; only the session's authenticated identities may change anything.
/// let acl = vec![
///     Acl::new(Permissions::READ, "world", "anyone"),
///     Acl::new(Permissions::ALL, "auth", ""),
/// ];
/// assert_eq!(Acl::open(), vec![Acl::new(Permissions::ALL, "world", "anyone")]);
/// # drop(acl);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    /// What the identity may do.
    pub permissions: Permissions,
    /// The authentication scheme.
    pub scheme: String,
    /// The identity within the scheme (`anyone` for `world`, `user:base64(sha1(user:password))`
    /// for `digest`, empty for `auth`).
    pub id: String,
}

impl Acl {
    /// An entry granting `permissions` to `id` under `scheme`.
    pub fn new(permissions: Permissions, scheme: impl Into<String>, id: impl Into<String>) -> Self {
        Acl {
            permissions,
            scheme: scheme.into(),
            id: id.into(),
        }
    }

    /// ZooKeeper's `OPEN_ACL_UNSAFE`: everyone may do everything. The default, as in Python
    /// durabledict (kazoo's default ACL).
    pub fn open() -> Vec<Acl> {
        vec![Acl::new(Permissions::ALL, "world", "anyone")]
    }

    /// ZooKeeper's `CREATOR_ALL_ACL`: every identity the creating session authenticated as
    /// (see [`ZooKeeperStoreBuilder::digest_auth`](crate::ZooKeeperStoreBuilder::digest_auth))
    /// may do everything; nobody else may do anything.
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl::new(Permissions::ALL, "auth", "")]
    }

    /// ZooKeeper's `READ_ACL_UNSAFE`: everyone may read, nobody may write.
    pub fn read_only() -> Vec<Acl> {
        vec![Acl::new(Permissions::READ, "world", "anyone")]
    }

    pub(crate) fn to_zk(&self) -> zookeeper::Acl {
        zookeeper::Acl::new(self.permissions.to_zk(), &self.scheme, &self.id)
    }

    /// The bytes this entry takes in a create request: permissions, then scheme and id, each
    /// a length-prefixed string.
    pub(crate) fn encoded_len(&self) -> usize {
        4 + 4 + self.scheme.len() + 4 + self.id.len()
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}={:#07b}", self.scheme, self.id, self.permissions.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_map_onto_the_client() {
        assert_eq!(Permissions::ALL.to_zk(), zookeeper::Permission::ALL);
        assert_eq!(
            (Permissions::READ | Permissions::ADMIN).to_zk(),
            zookeeper::Permission::READ | zookeeper::Permission::ADMIN
        );
        assert_eq!(Acl::open()[0].to_zk(), zookeeper::Acl::open_unsafe()[0]);
        assert_eq!(
            Acl::creator_all()[0].to_zk(),
            zookeeper::Acl::creator_all()[0]
        );
        assert_eq!(Acl::open()[0].encoded_len(), 23);
    }
}
