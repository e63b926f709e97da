//! Writes a [`Value`] as a pickle, byte for byte as `serde_pickle::value_to_vec` does, except
//! that text can carry lone surrogates (see [`Surrogates`](crate::Surrogates)), which
//! `serde-pickle` cannot write.

use num_bigint::BigInt;
use serde_pickle::{HashableValue, Value};

use crate::Protocol;
use crate::error::DecodeError;
use crate::unpickle::{SURROGATE_BASE, int_cost, key_cost, too_deep, value_cost};

/// Refuses a value the decoder would refuse (too deep, or larger than `max_size` decoded), so
/// that a value that cannot be read back is never stored. Uses the decoder's size estimate.
pub(crate) fn check(value: &Value, max_size: u64) -> Result<(), Box<DecodeError>> {
    let size = size(value, 0)?;
    if size > max_size {
        return Err(Box::new(DecodeError::Limit(format!(
            "the value would decode to about {size} bytes; at most {max_size} are allowed \
             (Pickle::with_max_decoded_size)"
        ))));
    }
    Ok(())
}

/// The decoder's estimate of `value`'s size; recursion stops at [`MAX_DEPTH`].
fn size(value: &Value, depth: u32) -> Result<u64, Box<DecodeError>> {
    let key = key_cost();
    let container = |depth: u32| {
        if depth >= crate::unpickle::MAX_DEPTH {
            Err(Box::new(too_deep()))
        } else {
            Ok(())
        }
    };
    let mut total = value_cost();
    match value {
        Value::Bytes(b) => total += payload(b.len())?,
        Value::String(s) => total += payload(s.len())?,
        Value::Int(n) => total += int_cost(n),
        Value::List(items) | Value::Tuple(items) => {
            container(depth)?;
            for item in items {
                total = total.saturating_add(size(item, depth + 1)?);
            }
        }
        Value::Set(items) | Value::FrozenSet(items) => {
            container(depth)?;
            for item in items {
                total = total.saturating_add(hashable_size(item, depth + 1)? + key);
            }
        }
        Value::Dict(entries) => {
            container(depth)?;
            for (k, v) in entries {
                total = total.saturating_add(hashable_size(k, depth + 1)? + key);
                total = total.saturating_add(size(v, depth + 1)?);
            }
        }
        Value::None | Value::Bool(_) | Value::I64(_) | Value::F64(_) => {}
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

fn hashable_size(value: &HashableValue, depth: u32) -> Result<u64, Box<DecodeError>> {
    match value {
        HashableValue::Tuple(_) | HashableValue::FrozenSet(_) => {
            size(&value.clone().into_value(), depth)
        }
        HashableValue::Bytes(b) => Ok(value_cost() + payload(b.len())?),
        HashableValue::String(s) => Ok(value_cost() + payload(s.len())?),
        HashableValue::Int(n) => Ok(value_cost() + int_cost(n)),
        _ => Ok(value_cost()),
    }
}

/// The pickle of a value [`check`] accepted (so recursion is bounded).
pub(crate) fn to_vec(value: &Value, protocol: Protocol, surrogates: bool) -> Vec<u8> {
    let mut writer = Writer {
        out: vec![0x80, if protocol == Protocol::V2 { 2 } else { 3 }],
        v3: protocol != Protocol::V2,
        surrogates,
    };
    writer.value(value);
    writer.out.push(b'.');
    writer.out
}

struct Writer {
    out: Vec<u8>,
    v3: bool,
    surrogates: bool,
}

impl Writer {
    fn value(&mut self, value: &Value) {
        match value {
            Value::None => self.out.push(b'N'),
            Value::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            Value::I64(i) => self.i64(*i),
            Value::Int(n) => self.bigint(n),
            Value::F64(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Bytes(b) => self.bytes(b),
            Value::String(s) => self.str(s),
            Value::List(items) => {
                self.out.push(b']');
                for chunk in items.chunks(1000) {
                    self.out.push(b'(');
                    for item in chunk {
                        self.value(item);
                    }
                    self.out.push(b'e');
                }
            }
            Value::Dict(entries) => {
                self.out.extend_from_slice(b"}(");
                for (n, (k, v)) in entries.iter().enumerate() {
                    if n % 1000 == 999 {
                        self.out.extend_from_slice(b"u(");
                    }
                    self.hashable(k);
                    self.value(v);
                }
                self.out.push(b'u');
            }
            Value::Tuple(items) => self.tuple(items, Self::value),
            Value::Set(items) => self.set(items, b"set"),
            Value::FrozenSet(items) => self.set(items, b"frozenset"),
        }
    }

    fn hashable(&mut self, value: &HashableValue) {
        match value {
            HashableValue::None => self.out.push(b'N'),
            HashableValue::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            HashableValue::I64(i) => self.i64(*i),
            HashableValue::Int(n) => self.bigint(n),
            HashableValue::F64(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            HashableValue::Bytes(b) => self.bytes(b),
            HashableValue::String(s) => self.str(s),
            HashableValue::Tuple(items) => self.tuple(items, Self::hashable),
            HashableValue::FrozenSet(items) => self.set(items, b"frozenset"),
        }
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

    fn tuple<T>(&mut self, items: &[T], write: fn(&mut Self, &T)) {
        match items {
            [] => self.out.push(b')'),
            [a] => {
                write(self, a);
                self.out.push(0x85);
            }
            [a, b] => {
                write(self, a);
                write(self, b);
                self.out.push(0x86);
            }
            [a, b, c] => {
                write(self, a);
                write(self, b);
                write(self, c);
                self.out.push(0x87);
            }
            _ => {
                self.out.push(b'(');
                for item in items {
                    write(self, item);
                }
                self.out.push(b't');
            }
        }
    }

    fn set<'a>(&mut self, items: impl IntoIterator<Item = &'a HashableValue>, name: &[u8]) {
        self.out.push(b'c');
        self.out.extend_from_slice(if self.v3 {
            b"builtins\n"
        } else {
            b"__builtin__\n"
        });
        self.out.extend_from_slice(name);
        self.out.extend_from_slice(b"\n](");
        for (n, item) in items.into_iter().enumerate() {
            if n % 1000 == 999 {
                self.out.extend_from_slice(b"e(");
            }
            self.hashable(item);
        }
        self.out.extend_from_slice(&[b'e', 0x85, b'R']);
    }
}

/// A BINUNICODE / BINBYTES length ([`check`] refuses longer ones).
fn len32(len: usize) -> [u8; 4] {
    u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes()
}
