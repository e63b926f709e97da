//! Writes a [`Value`] (or a `serde_pickle::Value`) as a pickle: the builtins byte for byte as
//! `serde_pickle::value_to_vec` does, except that text can carry lone surrogates (see
//! [`Surrogates`](crate::Surrogates)), which `serde-pickle` cannot write; the allowed standard
//! library types as CPython pickles them.

use num_bigint::BigInt;
use serde_pickle::{HashableValue as SerdeHashable, Value as SerdeValue};

use crate::Protocol;
use crate::datetime::{TimeDelta, TimeZone};
use crate::decimal::Decimal;
use crate::error::DecodeError;
use crate::unpickle::{
    MAX_DEPTH, SURROGATE_BASE, int_cost, key_cost, leaf_payload, too_deep, value_cost,
};
use crate::value::{Complex, HashableValue, SafeUuid, Uuid, Value};

/// Refuses a value the decoder would refuse (too deep, or larger than `max_size` decoded), so
/// that a value that cannot be read back is never stored. Uses the decoder's size estimate.
pub(crate) fn check<T: Pickled>(value: &T, max_size: u64) -> Result<(), Box<DecodeError>> {
    let size = value.size(0)?;
    if size > max_size {
        return Err(Box::new(DecodeError::Limit(format!(
            "the value would decode to about {size} bytes; at most {max_size} are allowed \
             (Pickle::with_max_decoded_size)"
        ))));
    }
    Ok(())
}

fn container(depth: u32) -> Result<(), Box<DecodeError>> {
    if depth >= MAX_DEPTH {
        Err(Box::new(too_deep()))
    } else {
        Ok(())
    }
}

fn items_size<'a, T: Pickled + 'a>(
    items: impl IntoIterator<Item = &'a T>,
    depth: u32,
    extra: u64,
) -> Result<u64, Box<DecodeError>> {
    container(depth)?;
    let mut total = value_cost();
    for item in items {
        total = total.saturating_add(item.size(depth + 1)? + extra);
    }
    Ok(total)
}

fn dict_size<'a, K: Pickled + 'a, V: Pickled + 'a>(
    entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    depth: u32,
) -> Result<u64, Box<DecodeError>> {
    container(depth)?;
    let mut total = value_cost();
    for (k, v) in entries {
        total = total.saturating_add(k.size(depth + 1)? + key_cost());
        total = total.saturating_add(v.size(depth + 1)?);
    }
    Ok(total)
}

/// A string or bytes length, which protocols 2 and 3 write in 32 bits.
fn payload(len: usize) -> Result<u64, Box<DecodeError>> {
    if u32::try_from(len).is_err() {
        return Err(Box::new(DecodeError::Limit(format!(
            "a {len}-byte string or bytes value is longer than pickle protocols 2 and 3 can write"
        ))));
    }
    Ok(len as u64)
}

/// A value the writer writes: [`Value`] and `serde_pickle`'s, with their hashable halves.
pub(crate) trait Pickled {
    /// Writes the value.
    fn write(&self, writer: &mut Writer);
    /// The decoder's estimate of its size; recursion stops at [`MAX_DEPTH`].
    fn size(&self, depth: u32) -> Result<u64, Box<DecodeError>>;
}

impl Pickled for SerdeValue {
    fn write(&self, w: &mut Writer) {
        match self {
            SerdeValue::None => w.out.push(b'N'),
            SerdeValue::Bool(b) => w.bool(*b),
            SerdeValue::I64(i) => w.i64(*i),
            SerdeValue::Int(n) => w.bigint(n),
            SerdeValue::F64(f) => w.f64(*f),
            SerdeValue::Bytes(b) => w.bytes(b),
            SerdeValue::String(s) => w.str(s),
            SerdeValue::List(items) => w.list(items),
            SerdeValue::Dict(entries) => w.dict(entries),
            SerdeValue::Tuple(items) => w.tuple(items),
            SerdeValue::Set(items) => w.set(items, b"set"),
            SerdeValue::FrozenSet(items) => w.set(items, b"frozenset"),
        }
    }

    fn size(&self, depth: u32) -> Result<u64, Box<DecodeError>> {
        match self {
            SerdeValue::Bytes(b) => Ok(value_cost() + payload(b.len())?),
            SerdeValue::String(s) => Ok(value_cost() + payload(s.len())?),
            SerdeValue::Int(n) => Ok(value_cost() + int_cost(n)),
            SerdeValue::List(items) | SerdeValue::Tuple(items) => items_size(items, depth, 0),
            SerdeValue::Set(items) | SerdeValue::FrozenSet(items) => {
                items_size(items, depth, key_cost())
            }
            SerdeValue::Dict(entries) => dict_size(entries, depth),
            SerdeValue::None | SerdeValue::Bool(_) | SerdeValue::I64(_) | SerdeValue::F64(_) => {
                Ok(value_cost())
            }
        }
    }
}

impl Pickled for SerdeHashable {
    fn write(&self, w: &mut Writer) {
        match self {
            SerdeHashable::None => w.out.push(b'N'),
            SerdeHashable::Bool(b) => w.bool(*b),
            SerdeHashable::I64(i) => w.i64(*i),
            SerdeHashable::Int(n) => w.bigint(n),
            SerdeHashable::F64(f) => w.f64(*f),
            SerdeHashable::Bytes(b) => w.bytes(b),
            SerdeHashable::String(s) => w.str(s),
            SerdeHashable::Tuple(items) => w.tuple(items),
            SerdeHashable::FrozenSet(items) => w.set(items, b"frozenset"),
        }
    }

    fn size(&self, depth: u32) -> Result<u64, Box<DecodeError>> {
        match self {
            SerdeHashable::Tuple(items) => items_size(items, depth, 0),
            SerdeHashable::FrozenSet(items) => items_size(items, depth, key_cost()),
            SerdeHashable::Bytes(b) => Ok(value_cost() + payload(b.len())?),
            SerdeHashable::String(s) => Ok(value_cost() + payload(s.len())?),
            SerdeHashable::Int(n) => Ok(value_cost() + int_cost(n)),
            _ => Ok(value_cost()),
        }
    }
}

impl Pickled for Value {
    fn write(&self, w: &mut Writer) {
        match self {
            Value::None => w.out.push(b'N'),
            Value::Bool(b) => w.bool(*b),
            Value::I64(i) => w.i64(*i),
            Value::Int(n) => w.bigint(n),
            Value::F64(f) => w.f64(*f),
            Value::Bytes(b) => w.bytes(b),
            Value::String(s) => w.str(s),
            Value::List(items) => w.list(items),
            Value::Dict(entries) => w.dict(entries),
            Value::Tuple(items) => w.tuple(items),
            Value::Set(items) => w.set(items, b"set"),
            Value::FrozenSet(items) => w.set(items, b"frozenset"),
            Value::Complex(z) => w.complex(*z),
            Value::DateTime(v) => w.datetime(b"datetime", &v.state(), v.tzinfo()),
            Value::Date(v) => w.datetime(b"date", &v.state(), None),
            Value::Time(v) => w.datetime(b"time", &v.state(), v.tzinfo()),
            Value::TimeDelta(v) => w.timedelta(v),
            Value::TimeZone(v) => w.timezone(v),
            Value::Decimal(v) => w.decimal(v),
            Value::Uuid(v) => w.uuid(v),
        }
    }

    fn size(&self, depth: u32) -> Result<u64, Box<DecodeError>> {
        match self {
            Value::Bytes(b) => Ok(value_cost() + payload(b.len())?),
            Value::String(s) => Ok(value_cost() + payload(s.len())?),
            Value::Int(n) => Ok(value_cost() + int_cost(n)),
            Value::List(items) | Value::Tuple(items) => items_size(items, depth, 0),
            Value::Set(items) | Value::FrozenSet(items) => items_size(items, depth, key_cost()),
            Value::Dict(entries) => dict_size(entries, depth),
            other => Ok(value_cost() + leaf_payload(other)),
        }
    }
}

impl Pickled for HashableValue {
    fn write(&self, w: &mut Writer) {
        match self {
            HashableValue::Tuple(items) => w.tuple(items),
            HashableValue::FrozenSet(items) => w.set(items, b"frozenset"),
            // The others hold no container: written as values, at the cost of a leaf's clone.
            other => other.clone().into_value().write(w),
        }
    }

    fn size(&self, depth: u32) -> Result<u64, Box<DecodeError>> {
        match self {
            HashableValue::Tuple(items) => items_size(items, depth, 0),
            HashableValue::FrozenSet(items) => items_size(items, depth, key_cost()),
            // Python cannot hash it, so cannot read a dict or set holding it.
            HashableValue::Decimal(d) if d.is_signaling() => Err(Box::new(DecodeError::Pickle(
                serde_pickle::Error::Syntax(serde_pickle::ErrorCode::ValueNotHashable),
            ))),
            other => other.clone().into_value().size(depth),
        }
    }
}

/// The pickle of a value [`check`] accepted (so recursion is bounded).
pub(crate) fn to_vec<T: Pickled>(value: &T, protocol: Protocol, surrogates: bool) -> Vec<u8> {
    let mut writer = Writer {
        out: vec![0x80, if protocol == Protocol::V2 { 2 } else { 3 }],
        v3: protocol != Protocol::V2,
        surrogates,
    };
    value.write(&mut writer);
    writer.out.push(b'.');
    writer.out
}

pub(crate) struct Writer {
    out: Vec<u8>,
    v3: bool,
    surrogates: bool,
}

impl Writer {
    fn bool(&mut self, b: bool) {
        self.out.push(if b { 0x88 } else { 0x89 });
    }

    fn f64(&mut self, f: f64) {
        self.out.push(b'G');
        self.out.extend_from_slice(&f.to_be_bytes());
    }

    fn list<T: Pickled>(&mut self, items: &[T]) {
        self.out.push(b']');
        for chunk in items.chunks(1000) {
            self.out.push(b'(');
            for item in chunk {
                item.write(self);
            }
            self.out.push(b'e');
        }
    }

    fn dict<'a, K: Pickled + 'a, V: Pickled + 'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) {
        self.out.extend_from_slice(b"}(");
        for (n, (k, v)) in entries.into_iter().enumerate() {
            if n % 1000 == 999 {
                self.out.extend_from_slice(b"u(");
            }
            k.write(self);
            v.write(self);
        }
        self.out.push(b'u');
    }

    /// GLOBAL `module.name`.
    fn global(&mut self, module: &[u8], name: &[u8]) {
        self.out.push(b'c');
        self.out.extend_from_slice(module);
        self.out.push(b'\n');
        self.out.extend_from_slice(name);
        self.out.push(b'\n');
    }

    fn builtins(&self) -> &'static [u8] {
        if self.v3 { b"builtins" } else { b"__builtin__" }
    }

    /// `complex(re, im)`, as CPython pickles it.
    fn complex(&mut self, z: Complex) {
        let builtins = self.builtins();
        self.global(builtins, b"complex");
        self.f64(z.re);
        self.f64(z.im);
        self.out.extend_from_slice(&[0x86, b'R']);
    }

    /// `datetime.<name>(state[, tzinfo])`, as CPython pickles them; the fold is in the state
    /// as CPython writes it with protocols 4 and 5 (and reads it with any).
    fn datetime(&mut self, name: &[u8], state: &[u8], tzinfo: Option<&TimeZone>) {
        self.global(b"datetime", name);
        self.bytes(state);
        match tzinfo {
            Some(tz) => {
                self.timezone(tz);
                self.out.extend_from_slice(&[0x86, b'R']);
            }
            None => self.out.extend_from_slice(&[0x85, b'R']),
        }
    }

    fn timedelta(&mut self, delta: &TimeDelta) {
        self.global(b"datetime", b"timedelta");
        self.i64(delta.days().into());
        self.i64(delta.seconds().into());
        self.i64(delta.microseconds().into());
        self.out.extend_from_slice(&[0x87, b'R']);
    }

    fn timezone(&mut self, tz: &TimeZone) {
        self.global(b"datetime", b"timezone");
        self.timedelta(&tz.offset());
        match tz.name() {
            Some(name) => {
                self.str(name);
                self.out.extend_from_slice(&[0x86, b'R']);
            }
            None => self.out.extend_from_slice(&[0x85, b'R']),
        }
    }

    fn decimal(&mut self, d: &Decimal) {
        self.global(b"decimal", b"Decimal");
        self.str(&d.to_string());
        self.out.extend_from_slice(&[0x85, b'R']);
    }

    /// `uuid.UUID` created empty, then given `{'int': n[, 'is_safe': v]}`, as CPython 3
    /// pickles it with protocols 2 to 5.
    fn uuid(&mut self, uuid: &Uuid) {
        self.global(b"uuid", b"UUID");
        self.out.extend_from_slice(b")\x81}(");
        self.str("int");
        self.bigint(&BigInt::from(uuid.as_u128()));
        let is_safe = match uuid.is_safe() {
            SafeUuid::Safe => Some(0),
            SafeUuid::Unsafe => Some(-1),
            SafeUuid::Unknown => None,
        };
        if let Some(is_safe) = is_safe {
            self.str("is_safe");
            self.i64(is_safe);
        }
        self.out.extend_from_slice(b"ub");
    }

    fn i64(&mut self, i: i64) {
        if let Ok(small) = i32::try_from(i) {
            self.out.push(b'J');
            self.out.extend_from_slice(&small.to_le_bytes());
        } else {
            self.out.extend_from_slice(&[0x8a, 8]);
            self.out.extend_from_slice(&i.to_le_bytes());
        }
    }

    fn bigint(&mut self, n: &BigInt) {
        let bytes = n.to_signed_bytes_le();
        if let Ok(len) = u8::try_from(bytes.len()) {
            self.out.extend_from_slice(&[0x8a, len]);
        } else {
            self.out.push(0x8b);
            self.out.extend_from_slice(&len32(bytes.len()));
        }
        self.out.extend_from_slice(&bytes);
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.v3 {
            if let Ok(len) = u8::try_from(b.len()) {
                self.out.extend_from_slice(&[b'C', len]);
            } else {
                self.out.push(b'B');
                self.out.extend_from_slice(&len32(b.len()));
            }
            self.out.extend_from_slice(b);
        } else {
            // Python 2 has no bytes type: `_codecs.encode(text, "latin1")` is a str there,
            // bytes in Python 3 (what CPython itself writes with protocols 0-2).
            self.out.extend_from_slice(b"c_codecs\nencode\n");
            let latin1: String = b.iter().map(|&c| char::from(c)).collect();
            self.utf8(latin1.as_bytes());
            self.utf8(b"latin1");
            self.out.extend_from_slice(&[0x86, b'R']);
        }
    }

    fn str(&mut self, s: &str) {
        if self.surrogates && s.as_bytes().contains(&0xF4) {
            let mut wtf8 = Vec::with_capacity(s.len());
            for c in s.chars() {
                let code = u32::from(c);
                if code >= SURROGATE_BASE {
                    // The lone surrogate U+D800 + k, as CPython's `surrogatepass` writes it.
                    let unit = 0xD800 + (code - SURROGATE_BASE);
                    wtf8.extend_from_slice(&[
                        0xE0 | (unit >> 12) as u8,
                        0x80 | ((unit >> 6) & 0x3F) as u8,
                        0x80 | (unit & 0x3F) as u8,
                    ]);
                } else {
                    wtf8.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
            }
            self.utf8(&wtf8);
        } else {
            self.utf8(s.as_bytes());
        }
    }

    /// BINUNICODE.
    fn utf8(&mut self, bytes: &[u8]) {
        self.out.push(b'X');
        self.out.extend_from_slice(&len32(bytes.len()));
        self.out.extend_from_slice(bytes);
    }

    fn tuple<T: Pickled>(&mut self, items: &[T]) {
        match items {
            [] => self.out.push(b')'),
            [a] => {
                a.write(self);
                self.out.push(0x85);
            }
            [a, b] => {
                a.write(self);
                b.write(self);
                self.out.push(0x86);
            }
            [a, b, c] => {
                a.write(self);
                b.write(self);
                c.write(self);
                self.out.push(0x87);
            }
            _ => {
                self.out.push(b'(');
                for item in items {
                    item.write(self);
                }
                self.out.push(b't');
            }
        }
    }

    fn set<'a, T: Pickled + 'a>(&mut self, items: impl IntoIterator<Item = &'a T>, name: &[u8]) {
        let builtins = self.builtins();
        self.global(builtins, name);
        self.out.extend_from_slice(b"](");
        for (n, item) in items.into_iter().enumerate() {
            if n % 1000 == 999 {
                self.out.extend_from_slice(b"e(");
            }
            item.write(self);
        }
        self.out.extend_from_slice(&[b'e', 0x85, b'R']);
    }
}

/// A BINUNICODE / BINBYTES length ([`check`] refuses longer ones).
fn len32(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes()
}
