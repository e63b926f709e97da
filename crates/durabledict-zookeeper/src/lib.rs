#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod acl;
#[doc(hidden)]
pub mod bench_support;
mod bulk;
mod error;
mod expected;
mod inner;
mod keys;
mod limits;
mod mirror;
mod session;
mod store;
mod url;
mod wire;
mod worker;

pub use acl::{Acl, Permissions};
pub use error::ZooKeeperError;
pub use keys::MAX_KEY_LEN;
pub use limits::DEFAULT_MAX_BUFFER;
pub use store::{ZooKeeperStore, ZooKeeperStoreBuilder};
pub use url::ZooKeeperUrl;

/// The `zookeeper` client crate this store is built on, for raw access to the same version.
pub use zookeeper;
