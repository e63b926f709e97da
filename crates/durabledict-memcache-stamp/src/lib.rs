#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod error;
mod stamp;
mod url;

pub use error::MemcacheError;
pub use stamp::{MemcacheStamp, MemcacheStampBuilder};
pub use url::MemcacheUrl;
