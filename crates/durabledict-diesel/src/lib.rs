#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod builder;
mod db;
mod dialect;
mod error;
mod ops;
mod pool;
mod schema;
mod stmt;
mod store;

pub use builder::SqlStoreBuilder;
pub use dialect::Backend;
pub use error::SqlError;
pub use store::SqlStore;
