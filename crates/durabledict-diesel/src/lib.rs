#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!(
    "durabledict-diesel needs at least one of its backend features: sqlite (the default), \
     postgres, mysql"
);

mod builder;
mod db;
mod dialect;
mod error;
mod file;
#[cfg(feature = "postgres")]
mod listen;
mod ops;
mod pool;
mod schema;
mod stmt;
mod store;
mod url;

/// The diesel this crate is built on, for running your own queries on the same database with
/// the same version (and features) of diesel.
pub use diesel;

pub use builder::SqlStoreBuilder;
pub use dialect::Backend;
pub use error::SqlError;
pub use store::SqlStore;
pub use url::SqlUrl;
