#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
mod stamp;

pub use error::MemcacheError;
pub use stamp::{MemcacheStamp, MemcacheStampBuilder};
