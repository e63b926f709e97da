#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod events;
mod provider;
mod value;

pub use events::{ConfigurationChanged, ConfigurationChanges};
pub use provider::{DEFAULT_RETRY, DurableDictProvider};
pub use value::FlagValue;
