//! [`Pickle`]: Python durabledict's default encoding, safe to decode.

use std::fmt;
use std::marker::PhantomData;

use durabledict_core::{BoxError, Encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_pickle::{DeOptions, SerOptions, Value};

use crate::error::{DecodeError, EncodeError};
use crate::{mime_base64, pickle_guard};

/// The pickle protocol [`Pickle`] writes. Whatever it says, protocols 0 to 5 are read.
///
/// ```
/// use durabledict_encoding::{DynamicPickle, Protocol};
///
/// let python2 = DynamicPickle::new().with_protocol(Protocol::V2);
/// assert_eq!(python2.protocol(), Protocol::V2);
/// assert_eq!(DynamicPickle::new().protocol(), Protocol::V3);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// Protocol 2, which Python 2.3+ and every Python 3 read. Bytes are written as
    /// `_codecs.encode(text, "latin1")`, so Python 2 reads them back as `str`.
    V2,
    /// Protocol 3, which every Python 3 reads (the default).
    #[default]
    V3,
}

/// How a Python 2 `str` found in a pickle (opcodes `STRING`, `BINSTRING`, `SHORT_BINSTRING`,
/// which only Python 2 writes) is decoded.
///
/// Python 2 durabledict stored most text as `str`, which is bytes. Python 3 reads such a value
/// as text (`pickle.loads` decodes it as ASCII by default); [`Text`](Self::Text) does the same
/// with UTF-8, a superset of ASCII. A Python 2 `str` that holds binary data is then an error:
/// choose [`Bytes`](Self::Bytes) for such data (Python 3's `encoding="bytes"`).
///
/// ```
/// use durabledict_encoding::{DynamicPickle, Encoding, PickleValue, Python2Str};
///
/// // pickle.dumps('hello', 2) in Python 2, as durabledict stores it
/// let stored = b"gAJVBWhlbGxvcQAu\n";
/// let text = DynamicPickle::new();
/// assert_eq!(text.decode(stored)?, PickleValue::String("hello".into()));
/// let bytes = DynamicPickle::new().with_python2_str(Python2Str::Bytes);
/// assert_eq!(bytes.decode(stored)?, PickleValue::Bytes(b"hello".to_vec()));
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Python2Str {
    /// As text, which must be UTF-8 (the default).
    #[default]
    Text,
    /// As bytes, unchanged.
    Bytes,
}

/// Python durabledict's default encoding: `base64.encodebytes(pickle.dumps(value))`.
///
/// Values written by Python durabledict decode here, and values written here decode in
/// Python durabledict (the data is compatible both ways). Encoding writes
/// [`Protocol::V3`] (or [`Protocol::V2`] for Python 2 readers) in base64 lines of 76
/// characters, each ended by `"\n"`, exactly as Python's `base64.encodebytes`; decoding reads
/// protocols 0 to 5 (every protocol CPython writes, so `pickle.HIGHEST_PROTOCOL` of any
/// version) from base64 with or without line breaks.
///
/// # Safety of decoding
///
/// Decoding never executes anything. Before `serde-pickle` reads a pickle, its opcodes are
/// walked and the pickle is refused with [`DecodeError::Refused`] if it names any global
/// other than the few CPython uses for builtin data types (`set`, `frozenset`, `bytearray`,
/// `bytes`, `_codecs.encode`, `collections.OrderedDict`), builds a class instance (`INST`,
/// `OBJ`, `NEWOBJ`, `BUILD`), or uses the extension registry or persistent ids. So
/// `os.system`, `builtins.eval`, `subprocess.Popen` and every other exploit pickle are refused,
/// and so are pickles of any class, `datetime` and `Decimal` included. Pickles that would
/// decode into far more memory than their own size (memo references are copied when decoded,
/// so a few kilobytes can ask for gigabytes; the limit is about 64 MiB plus 64 bytes per byte
/// of pickle), or nest containers more than 128 deep, are refused with
/// [`DecodeError::Limit`].
///
/// # Value types
///
/// `Pickle<V>` encodes any serde type `V`: through serde, a Python tuple or set reads as a
/// sequence, an integer outside `i64` is an error (`serde-pickle` reads every integer as an
/// `i64`, so a `u64` above `i64::MAX` is written but cannot be read back), and `Vec<u8>` is
/// written as a list of integers (use a bytes wrapper such as `serde_bytes` for Python
/// `bytes`). For values of any shape use [`DynamicPickle`], which encodes
/// [`PickleValue`](crate::PickleValue) and keeps every Python type exactly (tuples, sets, big
/// integers, bytes). Python 2 `str` values: see [`Python2Str`].
///
/// # Example
///
/// ```
/// use durabledict_encoding::{DynamicPickle, Encoding, Pickle, PickleValue};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// struct Flag {
///     on: bool,
///     percent: u8,
/// }
///
/// let pickle = Pickle::<Flag>::new();
/// let stored = pickle.encode(&Flag { on: true, percent: 10 })?;
/// assert!(stored.ends_with(b"\n")); // base64 lines, as Python writes them
/// assert_eq!(pickle.decode(&stored)?, Flag { on: true, percent: 10 });
///
/// // What Python durabledict stores for ("☃", 1.5) with pickle protocol 5:
/// let python = b"gAWVEgAAAAAAAACMA+KYg5RHP/gAAAAAAACGlC4=\n";
/// let value = DynamicPickle::new().decode(python)?;
/// assert_eq!(
///     value,
///     PickleValue::Tuple(vec![PickleValue::String("☃".into()), PickleValue::F64(1.5)])
/// );
///
/// // The classic exploit, `os.system("echo pwned")`, is refused, not run:
/// let exploit = b"Y29zCnN5c3RlbQooUydlY2hvIHB3bmVkJwp0Ui4=\n";
/// let err = Pickle::<String>::new().decode(exploit).unwrap_err();
/// assert!(err.to_string().contains("globals are not allowed: os.system"), "{err}");
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
pub struct Pickle<V> {
    protocol: Protocol,
    python2_str: Python2Str,
    value: PhantomData<fn() -> V>,
}

impl<V> Pickle<V> {
    /// Writes protocol 3; reads Python 2 `str` as text.
    ///
    /// ```
    /// use durabledict_encoding::{Pickle, Protocol, Python2Str};
    ///
    /// let pickle = Pickle::<String>::new();
    /// assert_eq!((pickle.protocol(), pickle.python2_str()), (Protocol::V3, Python2Str::Text));
    /// ```
    pub fn new() -> Self {
        Pickle {
            protocol: Protocol::default(),
            python2_str: Python2Str::default(),
            value: PhantomData,
        }
    }

    /// Sets the protocol written; [`Protocol::V2`] for programs that still read with
    /// Python 2.
    ///
    /// ```
    /// use durabledict_encoding::{Encoding, Pickle, Protocol};
    ///
    /// let pickle = Pickle::<i64>::new().with_protocol(Protocol::V2);
    /// assert_eq!(pickle.encode(&7)?, b"gAJKBwAAAC4=\n"); // \x80\x02 J 7 .
    /// # Ok::<(), durabledict_encoding::BoxError>(())
    /// ```
    #[must_use]
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets how a Python 2 `str` is read; see [`Python2Str`].
    #[must_use]
    pub fn with_python2_str(mut self, python2_str: Python2Str) -> Self {
        self.python2_str = python2_str;
        self
    }

    /// The protocol written.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// How a Python 2 `str` is read.
    pub fn python2_str(&self) -> Python2Str {
        self.python2_str
    }

    fn ser_options(&self) -> SerOptions {
        match self.protocol {
            Protocol::V2 => SerOptions::new().proto_v2(),
            Protocol::V3 => SerOptions::new(),
        }
    }

    fn de_options(&self) -> DeOptions {
        // Unresolved globals and recursive structures stay errors (serde-pickle's defaults).
        match self.python2_str {
            Python2Str::Text => DeOptions::new().decode_strings(),
            Python2Str::Bytes => DeOptions::new(),
        }
    }
}

impl<V: Serialize> Pickle<V> {
    /// The pickle of `value`, without the base64 that [`encode`](Encoding::encode) adds.
    ///
    /// ```
    /// use durabledict_encoding::Pickle;
    ///
    /// assert_eq!(Pickle::<Option<u8>>::new().to_pickle(&None)?, b"\x80\x03N.");
    /// # Ok::<(), durabledict_encoding::EncodeError>(())
    /// ```
    pub fn to_pickle(&self, value: &V) -> Result<Vec<u8>, EncodeError> {
        readable(serde_pickle::to_vec(value, self.ser_options()).map_err(EncodeError::Pickle)?)
    }
}

/// Refuses to hand out a pickle that the decoder's safety limits would refuse, so a value that
/// cannot be read back is never stored (it would make every later load of the dict fail).
fn readable(raw: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    match pickle_guard::check(&raw) {
        Ok(_) => Ok(raw),
        Err(e) => Err(EncodeError::Unreadable(Box::new(e))),
    }
}

impl<V: DeserializeOwned> Pickle<V> {
    /// Decodes a pickle that is not base64-encoded. The same safety checks apply as in
    /// [`decode`](Encoding::decode).
    ///
    /// ```
    /// use durabledict_encoding::{Pickle, DecodeError};
    ///
    /// assert_eq!(Pickle::<Vec<i32>>::new().from_pickle(b"\x80\x04]\x94(K\x01K\x02e.")?, [1, 2]);
    /// let exploit = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.";
    /// let err = Pickle::<i32>::new().from_pickle(exploit).unwrap_err();
    /// assert!(matches!(err, DecodeError::Refused { opcode: "STACK_GLOBAL", .. }));
    /// # Ok::<(), DecodeError>(())
    /// ```
    pub fn from_pickle(&self, raw: &[u8]) -> Result<V, DecodeError> {
        let checked = pickle_guard::check(raw)?;
        serde_pickle::from_slice(&checked, self.de_options()).map_err(DecodeError::Pickle)
    }
}

impl<V: Serialize + DeserializeOwned> Encoding<V> for Pickle<V> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(mime_base64::encode(&self.to_pickle(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        let raw = mime_base64::decode(bytes)?;
        Ok(self.from_pickle(&raw)?)
    }
}

/// Marks a [`Pickle`] that encodes [`PickleValue`](crate::PickleValue)s: see [`DynamicPickle`].
///
/// (`serde_pickle::Value` does not implement serde's traits, and serde's data model has no
/// tuples, sets or big integers, so dynamic values take their own path.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dynamic {}

/// [`Pickle`] for values of any shape: encodes [`PickleValue`](crate::PickleValue), keeping
/// every Python type exactly (tuples, sets, frozensets, big integers, bytes).
///
/// What a program that did not write the data reads with: Python durabledict stores any
/// pickleable value.
///
/// ```
/// use durabledict_encoding::{DynamicPickle, Encoding, PickleValue};
/// use num_bigint::BigInt;
///
/// let pickle = DynamicPickle::new();
/// let value = PickleValue::Tuple(vec![
///     PickleValue::Int(BigInt::from(2).pow(70)),
///     PickleValue::Bytes(b"\x00\xff".to_vec()),
/// ]);
/// assert_eq!(pickle.decode(&pickle.encode(&value)?)?, value);
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
pub type DynamicPickle = Pickle<Dynamic>;

impl Pickle<Dynamic> {
    /// The pickle of `value`, without the base64 that [`encode`](Encoding::encode) adds.
    ///
    /// ```
    /// use durabledict_encoding::{DynamicPickle, PickleValue};
    ///
    /// let raw = DynamicPickle::new().to_pickle(&PickleValue::None)?;
    /// assert_eq!(raw, b"\x80\x03N.");
    /// # Ok::<(), durabledict_encoding::EncodeError>(())
    /// ```
    pub fn to_pickle(&self, value: &Value) -> Result<Vec<u8>, EncodeError> {
        readable(
            serde_pickle::value_to_vec(value, self.ser_options()).map_err(EncodeError::Pickle)?,
        )
    }

    /// Decodes a pickle that is not base64-encoded. The same safety checks apply as in
    /// [`decode`](Encoding::decode).
    ///
    /// ```
    /// use durabledict_encoding::{DynamicPickle, PickleValue};
    ///
    /// let value = DynamicPickle::new().from_pickle(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01\x85\x94.")?;
    /// assert_eq!(value, PickleValue::Tuple(vec![PickleValue::I64(1)]));
    /// # Ok::<(), durabledict_encoding::DecodeError>(())
    /// ```
    pub fn from_pickle(&self, raw: &[u8]) -> Result<Value, DecodeError> {
        let checked = pickle_guard::check(raw)?;
        serde_pickle::value_from_slice(&checked, self.de_options()).map_err(DecodeError::Pickle)
    }
}

impl Encoding<Value> for Pickle<Dynamic> {
    fn encode(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        Ok(mime_base64::encode(&self.to_pickle(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        let raw = mime_base64::decode(bytes)?;
        Ok(self.from_pickle(&raw)?)
    }
}

impl<V> Default for Pickle<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> Clone for Pickle<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Pickle<V> {}

impl<V> PartialEq for Pickle<V> {
    fn eq(&self, other: &Self) -> bool {
        (self.protocol, self.python2_str) == (other.protocol, other.python2_str)
    }
}

impl<V> Eq for Pickle<V> {}

impl<V> fmt::Debug for Pickle<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pickle")
            .field("value", &std::any::type_name::<V>())
            .field("protocol", &self.protocol)
            .field("python2_str", &self.python2_str)
            .finish()
    }
}
