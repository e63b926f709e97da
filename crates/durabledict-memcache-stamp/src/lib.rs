#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod connection;
mod error;
mod stamp;

pub use error::MemcacheError;
pub use stamp::{MemcacheStamp, MemcacheStampBuilder};
