//! durabledict facade (being assembled).
#![warn(missing_docs)]
pub use durabledict_core::*;
