//! [`Pickle`]: Python durabledict's default encoding, safe to decode.

use std::fmt;
use std::marker::PhantomData;

use durabledict_core::{BoxError, Encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_pickle::{SerOptions, Value as SerdeValue};

use crate::error::{DecodeError, EncodeError};
use crate::unpickle::{Keep, Serde};
use crate::value::Value;
use crate::{mime_base64, pickle_writer, unpickle};

/// The default of [`Pickle::with_max_decoded_size`]: 1 GiB.
///
/// A pickle can ask for far more memory than its own size (a value memoized once and
/// referenced a million times is copied a million times into the decoded value), so decoding
/// refuses, before building the result, a pickle whose result would be larger than this. Every
/// value Redis can hold (at most 512 MiB of base64) fits.
pub const DEFAULT_MAX_DECODED_SIZE: u64 = 1 << 30;

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
/// with UTF-8, a superset of ASCII. A Python 2 `str` that holds other bytes (`'\xe9'`) is then
/// [`DecodeError::Unrepresentable`]: choose [`Bytes`](Self::Bytes) (Python 3's
/// `encoding="bytes"`) or [`Latin1`](Self::Latin1) (`encoding="latin1"`) for such data.
///
/// Writing a Python 2 `str`: [`Protocol::V2`] writes [`PickleValue::Bytes`](crate::PickleValue)
/// as `_codecs.encode(text, "latin1")`, which Python 2 reads as a `str` holding those bytes
/// and Python 3 as `bytes`.
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
    /// As text, each byte one character (U+0000 to U+00FF), as Python 3's
    /// `pickle.loads(data, encoding="latin1")`: never fails, but a UTF-8 `str` reads as mojibake.
    Latin1,
}

/// What a lone surrogate in a pickled `str` becomes.
///
/// CPython pickles text with `surrogatepass`, so a `str` such as `'\ud800'` (which Python
/// programs get from `os.fsdecode` of undecodable bytes, or `surrogateescape`) pickles fine. A
/// Rust `String` cannot hold it.
///
/// ```
/// use durabledict_encoding::{DynamicPickle, Encoding, PickleValue, Surrogates};
///
/// // pickle.dumps('a\ud800', 4) in CPython 3.
/// let stored = b"gASVCAAAAAAAAACMBGHtoICULg==\n";
/// let value = DynamicPickle::new().decode(stored)?;
/// assert_eq!(value, PickleValue::String("a\u{10F800}".into()));
/// // ... and written back as the same surrogate.
/// let again = DynamicPickle::new().to_pickle(&value)?;
/// assert!(again.windows(3).any(|w| w == b"\xed\xa0\x80"));
///
/// let strict = DynamicPickle::new().with_surrogates(Surrogates::Refuse);
/// assert!(strict.decode(stored).is_err());
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Surrogates {
    /// Lone surrogate U+D800 + k is read as the private-use code point U+10F800 + k (the last
    /// 2048 code points of Supplementary Private Use Area-B), and [`DynamicPickle`] writes those
    /// code points back as the surrogates: a value read and written again is the same Python
    /// value. So that this never confuses the two, text that really holds a code point in
    /// U+10F800..U+10FFFF is refused with [`DecodeError::Unrepresentable`] (the default).
    #[default]
    PrivateUse,
    /// A lone surrogate is [`DecodeError::Unrepresentable`]; U+10F800..U+10FFFF are ordinary
    /// characters both ways.
    Refuse,
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
/// Decoding never executes anything. The decoder is a stack machine of this crate's own that
/// computes itself what the few globals CPython uses for builtin data types return (`set`,
/// `frozenset`, `bytearray`, `bytes`, `_codecs.encode`, `collections.OrderedDict`) and builds
/// the allowed standard library types (`datetime`'s five, `decimal.Decimal`, `uuid.UUID`,
/// `complex`: see [`Value`](crate::Value)) from arguments of exactly the types and ranges
/// CPython's own pickles hold. It refuses a pickle with [`DecodeError::Refused`] when it meets
/// any other global, a call or class instance (`REDUCE`, `INST`, `OBJ`, `NEWOBJ`, `BUILD`)
/// other than those, the extension registry or a persistent id. So `os.system`,
/// `builtins.eval`, `subprocess.Popen` and every other exploit pickle are refused, and so are
/// pickles of any other class.
///
/// # Memory
///
/// Decoding shares memoized values while it runs the pickle (as CPython does), then builds
/// the result, which cannot share: a value referenced `n` times is copied `n - 1` times. Before
/// building it, the size of the result, copies included, is computed, and a pickle whose result
/// would be larger than [`max_decoded_size`](Self::max_decoded_size)
/// ([`DEFAULT_MAX_DECODED_SIZE`], 1 GiB, unless set), or that nests containers more than 128
/// deep, is refused with [`DecodeError::Limit`]. Base64 is decoded as the pickle is read, so
/// a large `bytes` or `str` value is held once beside the stored text, not three times.
///
/// # Value types
///
/// `Pickle<V>` encodes any serde type `V`: through serde, a Python tuple or set reads as a
/// sequence, an integer outside `i64` is an error (`serde-pickle` reads every integer as an
/// `i64`, so a `u64` above `i64::MAX` is written but cannot be read back), `Vec<u8>` is
/// written as a list of integers (use a bytes wrapper such as `serde_bytes` for Python
/// `bytes`), and Python's dates, decimals and UUIDs read as text that `chrono`, `time`,
/// `rust_decimal`, `bigdecimal` and `uuid` parse (the crate README has the table; those types
/// are written back as text). For values of any shape use [`DynamicPickle`], which encodes
/// [`PickleValue`](crate::PickleValue) and keeps every builtin Python type exactly (tuples,
/// sets, big integers, bytes), or `Pickle<Value>`, which encodes [`Value`](crate::Value) and
/// also keeps the allowed standard library types. Python 2 `str` values: see [`Python2Str`].
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
    surrogates: Surrogates,
    max_decoded_size: u64,
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
            surrogates: Surrogates::default(),
            max_decoded_size: DEFAULT_MAX_DECODED_SIZE,
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

    /// Sets what a lone surrogate in text becomes; see [`Surrogates`].
    #[must_use]
    pub fn with_surrogates(mut self, surrogates: Surrogates) -> Self {
        self.surrogates = surrogates;
        self
    }

    /// Sets the largest decoded value accepted, in bytes (about what it occupies in memory,
    /// shared references counted once per reference); [`DEFAULT_MAX_DECODED_SIZE`] unless set.
    ///
    /// ```
    /// use durabledict_encoding::{DecodeError, DynamicPickle, Encoding, PickleValue};
    ///
    /// // pickle.dumps(['x' * 1000] * 1000, 4): 1 MB once decoded, from a 3 kB pickle.
    /// let value = PickleValue::List(vec![PickleValue::String("x".repeat(1000)); 1000]);
    /// let raw = DynamicPickle::new().to_pickle(&value)?;
    /// let small = DynamicPickle::new().with_max_decoded_size(100_000);
    /// assert!(matches!(small.from_pickle(&raw), Err(DecodeError::Limit(_))));
    /// assert_eq!(DynamicPickle::new().from_pickle(&raw)?, value);
    /// # Ok::<(), durabledict_encoding::BoxError>(())
    /// ```
    #[must_use]
    pub fn with_max_decoded_size(mut self, bytes: u64) -> Self {
        self.max_decoded_size = bytes;
        self
    }

    /// What a lone surrogate in text becomes.
    pub fn surrogates(&self) -> Surrogates {
        self.surrogates
    }

    /// The largest decoded value accepted, in bytes.
    pub fn max_decoded_size(&self) -> u64 {
        self.max_decoded_size
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

    fn options(&self) -> unpickle::Options {
        unpickle::Options {
            python2_str: self.python2_str,
            surrogates: self.surrogates,
            max_size: self.max_decoded_size,
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
        let raw = serde_pickle::to_vec(value, self.ser_options()).map_err(EncodeError::Pickle)?;
        self.readable(raw)
    }
}

/// Refuses to hand out a pickle that the decoder's safety limits would refuse, so a value that
/// cannot be read back is never stored (it would make every later load of the dict fail).
impl<V> Pickle<V> {
    fn readable(&self, raw: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
        match unpickle::from_slice::<Serde<true>>(&raw, self.options()) {
            Ok(_) => Ok(raw),
            Err(e) => Err(EncodeError::Unreadable(Box::new(e))),
        }
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
        typed(unpickle::from_slice::<Serde<true>>(raw, self.options())?)
    }
}

/// A decoded value as serde type `V`: the standard library types in their text forms.
fn typed<V: DeserializeOwned>(value: SerdeValue) -> Result<V, DecodeError> {
    serde_pickle::from_value(value).map_err(DecodeError::Pickle)
}

impl<V: Serialize + DeserializeOwned> Encoding<V> for Pickle<V> {
    fn encode(&self, value: &V) -> Result<Vec<u8>, BoxError> {
        Ok(mime_base64::encode(&self.to_pickle(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, BoxError> {
        Ok(typed(unpickle::from_base64::<Serde<true>>(
            bytes,
            self.options(),
        )?)?)
    }
}

/// Marks a [`Pickle`] or [`Json`](crate::Json) that encodes [`PickleValue`](crate::PickleValue)s:
/// see [`DynamicPickle`] and [`DynamicJson`](crate::DynamicJson).
///
/// (`serde_pickle::Value` does not implement serde's traits, and serde's data model has no
/// tuples, sets or big integers, so dynamic values take their own path.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dynamic {}

/// [`Pickle`] for values of any shape: encodes [`PickleValue`](crate::PickleValue), keeping
/// every builtin Python type exactly (tuples, sets, frozensets, big integers, bytes). A pickle
/// holding a `datetime`, `Decimal`, `UUID` or `complex` is [`DecodeError::Pickle`] here:
/// `Pickle<Value>` reads those into [`Value`](crate::Value).
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
    pub fn to_pickle(&self, value: &SerdeValue) -> Result<Vec<u8>, EncodeError> {
        self.write(value)
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
    pub fn from_pickle(&self, raw: &[u8]) -> Result<SerdeValue, DecodeError> {
        unpickle::from_slice::<Serde<false>>(raw, self.options())
    }
}

impl Encoding<SerdeValue> for Pickle<Dynamic> {
    fn encode(&self, value: &SerdeValue) -> Result<Vec<u8>, BoxError> {
        Ok(mime_base64::encode(&self.to_pickle(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<SerdeValue, BoxError> {
        Ok(unpickle::from_base64::<Serde<false>>(
            bytes,
            self.options(),
        )?)
    }
}

/// [`Pickle`] for [`Value`]: every type a pickle may hold here, the allowed standard library
/// types (`datetime`, `Decimal`, `UUID`, `complex`) included, each written back as the same
/// Python type.
///
/// ```
/// use durabledict_encoding::{Encoding, Pickle, Uuid, Value};
///
/// let pickle = Pickle::<Value>::new();
/// let value = Value::Tuple(vec![Value::Uuid(Uuid::new(7)), Value::Decimal("-0.00".parse()?)]);
/// assert_eq!(pickle.decode(&pickle.encode(&value)?)?, value);
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
impl Pickle<Value> {
    /// The pickle of `value`, without the base64 that [`encode`](Encoding::encode) adds.
    ///
    /// ```
    /// use durabledict_encoding::{Complex, Pickle, Value};
    ///
    /// let raw = Pickle::<Value>::new().to_pickle(&Value::Complex(Complex { re: 0.0, im: 1.0 }))?;
    /// assert!(raw.starts_with(b"\x80\x03cbuiltins\ncomplex\n"));
    /// # Ok::<(), durabledict_encoding::EncodeError>(())
    /// ```
    pub fn to_pickle(&self, value: &Value) -> Result<Vec<u8>, EncodeError> {
        self.write(value)
    }

    /// Decodes a pickle that is not base64-encoded. The same safety checks apply as in
    /// [`decode`](Encoding::decode).
    ///
    /// ```
    /// use durabledict_encoding::{Pickle, TimeDelta, Value};
    ///
    /// // pickle.dumps(datetime.timedelta(seconds=-1), 2)
    /// let raw = b"\x80\x02cdatetime\ntimedelta\nq\x00J\xff\xff\xff\xffJ\x7fQ\x01\x00K\x00\x87q\x01Rq\x02.";
    /// let value = Pickle::<Value>::new().from_pickle(raw)?;
    /// assert_eq!(value, Value::TimeDelta(TimeDelta::new(0, -1, 0)?));
    /// # Ok::<(), durabledict_encoding::BoxError>(())
    /// ```
    pub fn from_pickle(&self, raw: &[u8]) -> Result<Value, DecodeError> {
        unpickle::from_slice::<Keep>(raw, self.options())
    }
}

impl Encoding<Value> for Pickle<Value> {
    fn encode(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        Ok(mime_base64::encode(&self.to_pickle(value)?))
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        Ok(unpickle::from_base64::<Keep>(bytes, self.options())?)
    }
}

impl<V> Pickle<V> {
    /// Writes a dynamic value after checking it can be read back.
    fn write<T: pickle_writer::Pickled>(&self, value: &T) -> Result<Vec<u8>, EncodeError> {
        pickle_writer::check(value, self.max_decoded_size).map_err(EncodeError::Unreadable)?;
        Ok(pickle_writer::to_vec(
            value,
            self.protocol,
            self.surrogates == Surrogates::PrivateUse,
        ))
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
        (
            self.protocol,
            self.python2_str,
            self.surrogates,
            self.max_decoded_size,
        ) == (
            other.protocol,
            other.python2_str,
            other.surrogates,
            other.max_decoded_size,
        )
    }
}

impl<V> Eq for Pickle<V> {}

impl<V> fmt::Debug for Pickle<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pickle")
            .field("value", &std::any::type_name::<V>())
            .field("protocol", &self.protocol)
            .field("python2_str", &self.python2_str)
            .field("surrogates", &self.surrogates)
            .field("max_decoded_size", &self.max_decoded_size)
            .finish()
    }
}
