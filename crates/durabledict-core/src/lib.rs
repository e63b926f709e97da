#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod dict;
mod encoding;
mod error;
mod feed;
mod layer;
mod listen;
mod memory;
mod observe;
mod policy;
mod store;
mod table;
mod url_options;

pub use dict::{Builder, DEFAULT_SUBSCRIPTION_CAPACITY, DurableDict, Failure, FeedHealth, Status};
pub use encoding::{Encoding, Raw};
pub use error::{BoxError, Error, Op, Report, Result, StoreError, StoreErrorKind};
pub use feed::{Feed, FeedState};
pub use layer::{Call, Layer, Layered};
pub use listen::{Change, Event, Subscription};
pub use memory::{MemoryStamp, MemoryStore};
pub use policy::SyncPolicy;
pub use store::{Durables, SetDefault, Stamp, StampValue, Store, clock_seed};
pub use table::{Iter, Snapshot};
pub use url_options::{UrlOptionError, UrlOptions};
