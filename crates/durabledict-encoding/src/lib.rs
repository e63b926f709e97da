#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod datetime;
mod decimal;
mod error;
mod fallback;
mod isoformat;
mod json;
mod json_value;
mod key_order;
mod mime_base64;
mod pickle;
mod pickle_writer;
mod unpickle;
mod value;

pub use datetime::{Date, DateTime, RangeError, Time, TimeDelta, TimeZone};
pub use decimal::{Decimal, MAX_DECIMAL_DIGITS};
pub use durabledict_core::{BoxError, Encoding, Raw};
pub use error::{DecodeError, EncodeError};
pub use fallback::{Fallback, Origin};
pub use json::{DynamicJson, Json};
pub use pickle::{
    DEFAULT_MAX_DECODED_SIZE, Dynamic, DynamicPickle, Pickle, Protocol, Python2Str, Surrogates,
};
/// The `serde-pickle` crate, whose [`Value`](serde_pickle::Value) is [`PickleValue`].
pub use serde_pickle;
/// A dict key or set member of a [`PickleValue`] (`serde_pickle::HashableValue`).
pub use serde_pickle::HashableValue as PickleHashableValue;
/// Any builtin value a pickle can hold, Python types kept exactly (`serde_pickle::Value`);
/// encoded by [`DynamicPickle`]. [`Value`] also holds the allowed standard library types.
pub use serde_pickle::Value as PickleValue;
pub use value::{Complex, HashableValue, SafeUuid, Uuid, Value};
