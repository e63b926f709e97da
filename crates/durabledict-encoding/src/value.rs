//! [`Value`]: any value a pickle may hold here, Python types kept exactly — the builtins of
//! [`PickleValue`](crate::PickleValue) and the allowed standard library types.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use num_bigint::BigInt;
use serde_pickle::{HashableValue as SerdeHashable, Value as SerdeValue};

use crate::datetime::{Date, DateTime, Time, TimeDelta, TimeZone};
use crate::decimal::Decimal;
use crate::key_order;

/// A Python value as a pickle holds it, every type kept exactly: what
/// [`Pickle<Value>`](crate::Pickle) decodes and encodes.
///
/// The builtins are those of [`PickleValue`](crate::PickleValue) (`serde_pickle::Value`), with
/// the same variant names; beyond them, the standard library types a pickle may name:
/// `datetime`'s five, `decimal.Decimal`, `uuid.UUID` and `complex`. Each is written back as
/// the same Python type, so Python reads back an equal value of the same type.
///
/// ```
/// use durabledict_encoding::{Date, Encoding, Pickle, Value};
///
/// // pickle.dumps([datetime.date(2024, 2, 29), Decimal("1.50")], 5) in CPython
/// let stored = b"gAWVRQAAAAAAAABdlCiMCGRhdGV0aW1llIwEZGF0ZZSTlEMEB+gCHZSFlFKUjAdkZWNpbWFslIwH\n\
///                RGVjaW1hbJSTlIwEMS41MJSFlFKUZS4=\n";
/// let value = Pickle::<Value>::new().decode(stored)?;
/// assert_eq!(
///     value,
///     Value::List(vec![Value::Date(Date::new(2024, 2, 29)?), Value::Decimal("1.50".parse()?)])
/// );
/// # Ok::<(), durabledict_encoding::BoxError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// An `int` within `i64`.
    I64(i64),
    /// An `int` beyond `i64`.
    Int(BigInt),
    /// `float`.
    F64(f64),
    /// `bytes` (and `bytearray`, read as bytes).
    Bytes(Vec<u8>),
    /// `str`.
    String(String),
    /// `list`.
    List(Vec<Value>),
    /// `tuple`.
    Tuple(Vec<Value>),
    /// `set`.
    Set(BTreeSet<HashableValue>),
    /// `frozenset`.
    FrozenSet(BTreeSet<HashableValue>),
    /// `dict` (and `collections.OrderedDict`, read as a dict).
    Dict(BTreeMap<HashableValue, Value>),
    /// `complex`.
    Complex(Complex),
    /// `datetime.datetime`.
    DateTime(DateTime),
    /// `datetime.date`.
    Date(Date),
    /// `datetime.time`.
    Time(Time),
    /// `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// `datetime.timezone` (a fixed offset; `timezone.utc` too).
    TimeZone(TimeZone),
    /// `decimal.Decimal`.
    Decimal(Decimal),
    /// `uuid.UUID`.
    Uuid(Uuid),
}

/// A dict key or set member of a [`Value`]: the hashable ones.
///
/// Two keys are one exactly when Python's `==` says so (and so its `hash` agrees): numbers of
/// equal value of any type (`1`, `1.0`, `True`, `Decimal("1.00")`, `complex(1, 0)`), aware
/// `datetime`s and `time`s at the same instant in any zone, `timezone`s of the same offset
/// whatever their names, `UUID`s of the same integer whatever their `is_safe`; `fold` is
/// ignored. A dict keeps the first of such keys and the last value, as Python's does. A float
/// NaN is one key here (Python keeps each NaN object apart); Decimal NaNs stay apart by their
/// text. Otherwise keys are ordered by type, then by value.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HashableValue {
    /// `None`.
    None,
    /// `bool`.
    Bool(bool),
    /// An `int` within `i64`.
    I64(i64),
    /// An `int` beyond `i64`.
    Int(BigInt),
    /// `float`.
    F64(f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `str`.
    String(String),
    /// `tuple` of hashable values.
    Tuple(Vec<HashableValue>),
    /// `frozenset`.
    FrozenSet(BTreeSet<HashableValue>),
    /// `complex`.
    Complex(Complex),
    /// `datetime.datetime`.
    DateTime(DateTime),
    /// `datetime.date`.
    Date(Date),
    /// `datetime.time`.
    Time(Time),
    /// `datetime.timedelta`.
    TimeDelta(TimeDelta),
    /// `datetime.timezone`.
    TimeZone(TimeZone),
    /// `decimal.Decimal`.
    Decimal(Decimal),
    /// `uuid.UUID`.
    Uuid(Uuid),
}

/// Python's `complex`: two floats.
///
/// ```
/// use durabledict_encoding::Complex;
///
/// let z = Complex { re: 1.0, im: -2.5 };
/// assert_eq!(z.to_string(), "(1-2.5j)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Complex {
    /// The real part.
    pub re: f64,
    /// The imaginary part.
    pub im: f64,
}

impl fmt::Display for Complex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.im.is_sign_negative() { "-" } else { "+" };
        write!(f, "({}{sign}{}j)", self.re, self.im.abs())
    }
}

/// `uuid.UUID`: its 128-bit integer and Python's `is_safe` (whether the generator promised
/// uniqueness, for `uuid1()`; [`SafeUuid::Unknown`] otherwise).
///
/// ```
/// use durabledict_encoding::{SafeUuid, Uuid};
///
/// let id = Uuid::new(0x6f0e_2a1c_0000_4000_8000_0000_0000_0001);
/// assert_eq!(id.to_string(), "6f0e2a1c-0000-4000-8000-000000000001");
/// assert_eq!(id.is_safe(), SafeUuid::Unknown);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid {
    int: u128,
    is_safe: SafeUuid,
}

/// Python's `uuid.SafeUUID`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SafeUuid {
    /// `SafeUUID.safe` (0).
    Safe,
    /// `SafeUUID.unsafe` (-1).
    Unsafe,
    /// `SafeUUID.unknown` (None): not written in the pickle.
    #[default]
    Unknown,
}

impl Uuid {
    /// `uuid.UUID(int=value)`, `is_safe` unknown.
    pub fn new(int: u128) -> Self {
        Uuid {
            int,
            is_safe: SafeUuid::Unknown,
        }
    }

    /// The same UUID with `is_safe` set.
    #[must_use]
    pub fn with_is_safe(mut self, is_safe: SafeUuid) -> Self {
        self.is_safe = is_safe;
        self
    }

    /// The UUID's integer (`UUID.int`).
    pub fn as_u128(&self) -> u128 {
        self.int
    }

    /// The UUID's 16 bytes, big-endian (`UUID.bytes`).
    pub fn to_bytes(&self) -> [u8; 16] {
        self.int.to_be_bytes()
    }

    /// `UUID.is_safe`.
    pub fn is_safe(&self) -> SafeUuid {
        self.is_safe
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.int);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

impl Value {
    /// Converts to a [`HashableValue`], if Python could use it as a dict key (not a list, set
    /// or dict, nor a signaling NaN `Decimal`); otherwise gives the value back.
    pub fn into_hashable(self) -> Result<HashableValue, Value> {
        Ok(match self {
            Value::None => HashableValue::None,
            Value::Bool(b) => HashableValue::Bool(b),
            Value::I64(i) => HashableValue::I64(i),
            Value::Int(n) => HashableValue::Int(n),
            Value::F64(f) => HashableValue::F64(f),
            Value::Bytes(b) => HashableValue::Bytes(b),
            Value::String(s) => HashableValue::String(s),
            Value::Tuple(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut items = items.into_iter();
                while let Some(item) = items.next() {
                    match item.into_hashable() {
                        Ok(h) => out.push(h),
                        Err(item) => {
                            // Rebuild the tuple as it was for the error.
                            let mut back: Vec<Value> =
                                out.into_iter().map(HashableValue::into_value).collect();
                            back.push(item);
                            back.extend(items);
                            return Err(Value::Tuple(back));
                        }
                    }
                }
                HashableValue::Tuple(out)
            }
            Value::FrozenSet(items) => HashableValue::FrozenSet(items),
            Value::Complex(z) => HashableValue::Complex(z),
            Value::DateTime(v) => HashableValue::DateTime(v),
            Value::Date(v) => HashableValue::Date(v),
            Value::Time(v) => HashableValue::Time(v),
            Value::TimeDelta(v) => HashableValue::TimeDelta(v),
            Value::TimeZone(v) => HashableValue::TimeZone(v),
            // Python: "Cannot hash a signaling NaN value".
            Value::Decimal(v) if v.is_signaling() => return Err(Value::Decimal(v)),
            Value::Decimal(v) => HashableValue::Decimal(v),
            Value::Uuid(v) => HashableValue::Uuid(v),
            other @ (Value::List(_) | Value::Set(_) | Value::Dict(_)) => return Err(other),
        })
    }

    /// The Python type's name (`"datetime.datetime"`, `"dict"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::I64(_) | Value::Int(_) => "int",
            Value::F64(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::String(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Set(_) => "set",
            Value::FrozenSet(_) => "frozenset",
            Value::Dict(_) => "dict",
            Value::Complex(_) => "complex",
            Value::DateTime(_) => "datetime.datetime",
            Value::Date(_) => "datetime.date",
            Value::Time(_) => "datetime.time",
            Value::TimeDelta(_) => "datetime.timedelta",
            Value::TimeZone(_) => "datetime.timezone",
            Value::Decimal(_) => "decimal.Decimal",
            Value::Uuid(_) => "uuid.UUID",
        }
    }

    /// For serde (`Pickle<V>`): the allowed standard library types as the forms serde
    /// types read — text for dates, times, decimals and UUIDs (as Python's `isoformat()`,
    /// `str()`), a `(re, im)` tuple for `complex`.
    pub(crate) fn into_serde(self) -> SerdeValue {
        self.into_serde_with::<std::convert::Infallible>(&|v| match v {
            Value::Complex(z) => Ok(SerdeValue::Tuple(vec![
                SerdeValue::F64(z.re),
                SerdeValue::F64(z.im),
            ])),
            Value::TimeDelta(d) => Ok(SerdeValue::String(timedelta_seconds(&d))),
            other => Ok(SerdeValue::String(text_form(&other))),
        })
        .unwrap_or_else(|never| match never {})
    }

    /// To `serde_pickle::Value`, which has no place for the standard library types: those
    /// are an error naming the type.
    pub(crate) fn into_serde_pickle(self) -> Result<SerdeValue, &'static str> {
        self.into_serde_with(&|v| Err(v.type_name()))
    }

    fn into_serde_with<E>(
        self,
        other: &dyn Fn(Value) -> Result<SerdeValue, E>,
    ) -> Result<SerdeValue, E> {
        let set = |items: BTreeSet<HashableValue>| -> Result<BTreeSet<SerdeHashable>, E> {
            items
                .into_iter()
                .map(|h| h.into_serde_with(other))
                .collect()
        };
        Ok(match self {
            Value::None => SerdeValue::None,
            Value::Bool(b) => SerdeValue::Bool(b),
            Value::I64(i) => SerdeValue::I64(i),
            Value::Int(n) => SerdeValue::Int(n),
            Value::F64(f) => SerdeValue::F64(f),
            Value::Bytes(b) => SerdeValue::Bytes(b),
            Value::String(s) => SerdeValue::String(s),
            Value::List(items) => SerdeValue::List(
                items
                    .into_iter()
                    .map(|v| v.into_serde_with(other))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Tuple(items) => SerdeValue::Tuple(
                items
                    .into_iter()
                    .map(|v| v.into_serde_with(other))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Set(items) => SerdeValue::Set(set(items)?),
            Value::FrozenSet(items) => SerdeValue::FrozenSet(set(items)?),
            Value::Dict(entries) => SerdeValue::Dict(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((k.into_serde_with(other)?, v.into_serde_with(other)?)))
                    .collect::<Result<_, E>>()?,
            ),
            v => other(v)?,
        })
    }
}

/// A `timedelta` as `seconds.microseconds` text (`"-0.000001"`), which `time::Duration`'s
/// serde reads.
fn timedelta_seconds(d: &TimeDelta) -> String {
    let total = i128::from(d.days()) * 86_400_000_000
        + i128::from(d.seconds()) * 1_000_000
        + i128::from(d.microseconds());
    let sign = if total < 0 { "-" } else { "" };
    let total = total.unsigned_abs();
    format!("{sign}{}.{:06}", total / 1_000_000, total % 1_000_000)
}

/// The text serde types read for a date, time, decimal or UUID.
fn text_form(value: &Value) -> String {
    match value {
        Value::DateTime(v) => v.to_string(),
        Value::Date(v) => v.to_string(),
        Value::Time(v) => v.to_string(),
        Value::TimeZone(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
        Value::Uuid(v) => v.to_string(),
        other => other.type_name().to_owned(),
    }
}

impl HashableValue {
    /// Converts back to a [`Value`].
    pub fn into_value(self) -> Value {
        match self {
            HashableValue::None => Value::None,
            HashableValue::Bool(b) => Value::Bool(b),
            HashableValue::I64(i) => Value::I64(i),
            HashableValue::Int(n) => Value::Int(n),
            HashableValue::F64(f) => Value::F64(f),
            HashableValue::Bytes(b) => Value::Bytes(b),
            HashableValue::String(s) => Value::String(s),
            HashableValue::Tuple(items) => {
                Value::Tuple(items.into_iter().map(HashableValue::into_value).collect())
            }
            HashableValue::FrozenSet(items) => Value::FrozenSet(items),
            HashableValue::Complex(z) => Value::Complex(z),
            HashableValue::DateTime(v) => Value::DateTime(v),
            HashableValue::Date(v) => Value::Date(v),
            HashableValue::Time(v) => Value::Time(v),
            HashableValue::TimeDelta(v) => Value::TimeDelta(v),
            HashableValue::TimeZone(v) => Value::TimeZone(v),
            HashableValue::Decimal(v) => Value::Decimal(v),
            HashableValue::Uuid(v) => Value::Uuid(v),
        }
    }

    fn into_serde_with<E>(
        self,
        other: &dyn Fn(Value) -> Result<SerdeValue, E>,
    ) -> Result<SerdeHashable, E> {
        Ok(match self {
            HashableValue::None => SerdeHashable::None,
            HashableValue::Bool(b) => SerdeHashable::Bool(b),
            HashableValue::I64(i) => SerdeHashable::I64(i),
            HashableValue::Int(n) => SerdeHashable::Int(n),
            HashableValue::F64(f) => SerdeHashable::F64(f),
            HashableValue::Bytes(b) => SerdeHashable::Bytes(b),
            HashableValue::String(s) => SerdeHashable::String(s),
            HashableValue::Tuple(items) => SerdeHashable::Tuple(
                items
                    .into_iter()
                    .map(|h| h.into_serde_with(other))
                    .collect::<Result<_, _>>()?,
            ),
            HashableValue::FrozenSet(items) => SerdeHashable::FrozenSet(
                items
                    .into_iter()
                    .map(|h| h.into_serde_with(other))
                    .collect::<Result<_, _>>()?,
            ),
            // Their serde forms (text, a tuple of floats) are hashable.
            h => match other(h.into_value())? {
                SerdeValue::String(s) => SerdeHashable::String(s),
                SerdeValue::Tuple(items) => SerdeHashable::Tuple(
                    items
                        .into_iter()
                        .filter_map(|v| v.into_hashable().ok())
                        .collect(),
                ),
                _ => SerdeHashable::None,
            },
        })
    }

    /// Types in a fixed order; numbers of any type compare by value, as Python's do.
    fn rank(&self) -> u8 {
        match self {
            HashableValue::None => 0,
            HashableValue::Bool(_)
            | HashableValue::I64(_)
            | HashableValue::Int(_)
            | HashableValue::F64(_)
            | HashableValue::Decimal(_)
            | HashableValue::Complex(_) => 1,
            HashableValue::Bytes(_) => 2,
            HashableValue::String(_) => 3,
            HashableValue::Tuple(_) => 4,
            HashableValue::FrozenSet(_) => 5,
            HashableValue::DateTime(_) => 7,
            HashableValue::Date(_) => 8,
            HashableValue::Time(_) => 9,
            HashableValue::TimeDelta(_) => 10,
            HashableValue::TimeZone(_) => 11,
            HashableValue::Uuid(_) => 13,
        }
    }
}

impl Ord for HashableValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use HashableValue as H;
        match self.rank().cmp(&other.rank()) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
        match (self, other) {
            (H::I64(a), H::I64(b)) => a.cmp(b),
            (H::Bytes(a), H::Bytes(b)) => a.cmp(b),
            (H::String(a), H::String(b)) => a.cmp(b),
            (H::Tuple(a), H::Tuple(b)) => a.cmp(b),
            (H::FrozenSet(a), H::FrozenSet(b)) => a.cmp(b),
            (H::DateTime(a), H::DateTime(b)) => key_order::datetime_cmp(a, b),
            (H::Date(a), H::Date(b)) => a.cmp(b),
            (H::Time(a), H::Time(b)) => key_order::time_cmp(a, b),
            (H::TimeDelta(a), H::TimeDelta(b)) => a.cmp(b),
            (H::TimeZone(a), H::TimeZone(b)) => key_order::timezone_cmp(a, b),
            (H::Uuid(a), H::Uuid(b)) => key_order::uuid_cmp(a, b),
            (a, b) => key_order::number_cmp(a, b).unwrap_or(Ordering::Equal),
        }
    }
}

impl PartialOrd for HashableValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for HashableValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for HashableValue {}

impl From<SerdeValue> for Value {
    fn from(value: SerdeValue) -> Self {
        match value {
            SerdeValue::None => Value::None,
            SerdeValue::Bool(b) => Value::Bool(b),
            SerdeValue::I64(i) => Value::I64(i),
            SerdeValue::Int(n) => Value::Int(n),
            SerdeValue::F64(f) => Value::F64(f),
            SerdeValue::Bytes(b) => Value::Bytes(b),
            SerdeValue::String(s) => Value::String(s),
            SerdeValue::List(items) => Value::List(items.into_iter().map(Value::from).collect()),
            SerdeValue::Tuple(items) => Value::Tuple(items.into_iter().map(Value::from).collect()),
            SerdeValue::Set(items) => {
                Value::Set(items.into_iter().map(HashableValue::from).collect())
            }
            SerdeValue::FrozenSet(items) => {
                Value::FrozenSet(items.into_iter().map(HashableValue::from).collect())
            }
            SerdeValue::Dict(entries) => Value::Dict(
                entries
                    .into_iter()
                    .map(|(k, v)| (HashableValue::from(k), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<SerdeHashable> for HashableValue {
    fn from(value: SerdeHashable) -> Self {
        match value {
            SerdeHashable::None => HashableValue::None,
            SerdeHashable::Bool(b) => HashableValue::Bool(b),
            SerdeHashable::I64(i) => HashableValue::I64(i),
            SerdeHashable::Int(n) => HashableValue::Int(n),
            SerdeHashable::F64(f) => HashableValue::F64(f),
            SerdeHashable::Bytes(b) => HashableValue::Bytes(b),
            SerdeHashable::String(s) => HashableValue::String(s),
            SerdeHashable::Tuple(items) => {
                HashableValue::Tuple(items.into_iter().map(HashableValue::from).collect())
            }
            SerdeHashable::FrozenSet(items) => {
                HashableValue::FrozenSet(items.into_iter().map(HashableValue::from).collect())
            }
        }
    }
}

impl TryFrom<Value> for SerdeValue {
    type Error = Value;

    /// The builtins convert; a value that holds a standard library type (a `datetime`
    /// anywhere inside) is given back.
    fn try_from(value: Value) -> Result<Self, Value> {
        value.clone().into_serde_pickle().map_err(|_| value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod number_order_tests {
    use super::*;

    /// Keys compare the same way from either side, exactly (a dict holding `inf` and `2**64`
    /// was not equal to the same dict built in another order).
    #[test]
    fn numbers_of_mixed_types_order_consistently_and_exactly() {
        let big = |s: &str| HashableValue::Int(s.parse().unwrap());
        let f = HashableValue::F64;
        let ascending = [
            f(f64::NEG_INFINITY),
            big("-90000000000000000000"),
            HashableValue::I64(-1),
            HashableValue::Bool(false),
            f(0.5),
            HashableValue::Bool(true),
            f(9_007_199_254_740_992.0),
            big("9007199254740993"),
            big("90000000000000000000"),
            f(1e20),
            f(f64::INFINITY),
            f(f64::NAN),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{a:?} against {b:?}");
            }
        }
        assert_eq!(HashableValue::I64(1), f(1.0));
        assert_eq!(big("100000000000000000000"), f(1e20));
        let one_way: BTreeSet<_> = [f(f64::INFINITY), big("90000000000000000000")].into();
        let other_way: BTreeSet<_> = [big("90000000000000000000"), f(f64::INFINITY)].into();
        assert!(one_way.iter().eq(other_way.iter()));
    }
}
