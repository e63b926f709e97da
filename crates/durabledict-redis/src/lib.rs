#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "aio")]
pub mod aio;
mod builder;
mod continuity;
mod error;
mod feed;
mod keys;
mod pool;
mod reply;
mod scripts;
mod store;
#[cfg(feature = "tls")]
mod tls;
mod url;

pub use builder::{
    DEFAULT_CHECK_IDLE_AFTER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IO_TIMEOUT, DEFAULT_MAX_IDLE,
    RedisStoreBuilder,
};
pub use store::RedisStore;
pub use url::RedisUrl;

/// The `redis` client crate this store is built on, for raw access at the same version.
pub use redis;
