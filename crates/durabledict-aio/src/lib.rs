#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod changes;
mod dict;
mod source;

pub use changes::Changes;
pub use dict::{AsyncDict, Builder, DEFAULT_MAX_BLOCKING, Offload};
pub use source::{StampFuture, StampSource};
