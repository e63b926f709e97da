//! JSON text as Python's `json` module reads and writes it, to and from [`Value`]: integers of
//! any size stay exact, and `NaN`, `Infinity`, `-Infinity` are floats.

use std::collections::BTreeMap;

use num_bigint::BigInt;
use serde_pickle::{HashableValue, Value};

use crate::error::{DecodeError, EncodeError};
use crate::unpickle::{MAX_DECIMAL_DIGITS, MAX_DEPTH, SURROGATE_BASE};

// --- reading ---

/// Parses `text` as Python's `json.loads` does (with its defaults).
pub(crate) fn parse(text: &[u8]) -> Result<Value, DecodeError> {
    let mut parser = Parser { text, pos: 0 };
    parser.whitespace();
    let value = parser.value(0)?;
    parser.whitespace();
    if parser.pos < text.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> DecodeError {
        let before = &self.text[..self.pos.min(self.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        DecodeError::Json(serde::de::Error::custom(format_args!(
            "{what} at line {line} column {column}"
        )))
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, token: &[u8]) -> bool {
        if self.text[self.pos..].starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: u32) -> Result<Value, DecodeError> {
        let Some(&first) = self.text.get(self.pos) else {
            return Err(self.error("EOF while parsing a value"));
        };
        if matches!(first, b'[' | b'{') && depth >= MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        match first {
            b'{' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                self.whitespace();
                if self.eat(b"}") {
                    return Ok(Value::Dict(map));
                }
                loop {
                    self.whitespace();
                    if self.text.get(self.pos) != Some(&b'"') {
                        return Err(self.error("key must be a string"));
                    }
                    let key = self.string()?;
                    self.whitespace();
                    if !self.eat(b":") {
                        return Err(self.error("expected `:`"));
                    }
                    self.whitespace();
                    let value = self.value(depth + 1)?;
                    map.insert(HashableValue::String(key), value);
                    self.whitespace();
                    if self.eat(b"}") {
                        return Ok(Value::Dict(map));
                    }
                    if !self.eat(b",") {
                        return Err(self.error("expected `,` or `}`"));
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.whitespace();
                if self.eat(b"]") {
                    return Ok(Value::List(items));
                }
                loop {
                    self.whitespace();
                    items.push(self.value(depth + 1)?);
                    self.whitespace();
                    if self.eat(b"]") {
                        return Ok(Value::List(items));
                    }
                    if !self.eat(b",") {
                        return Err(self.error("expected `,` or `]`"));
                    }
                }
            }
            b'"' => self.string().map(Value::String),
            _ if self.eat(b"null") => Ok(Value::None),
            _ if self.eat(b"true") => Ok(Value::Bool(true)),
            _ if self.eat(b"false") => Ok(Value::Bool(false)),
            _ if self.eat(b"NaN") => Ok(Value::F64(f64::NAN)),
            _ if self.eat(b"Infinity") => Ok(Value::F64(f64::INFINITY)),
            _ if self.eat(b"-Infinity") => Ok(Value::F64(f64::NEG_INFINITY)),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.error("expected value")),
        }
    }

    /// A number, with Python's grammar (JSON's): `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<Value, DecodeError> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let from = p.pos;
            while let Some(b'0'..=b'9') = p.text.get(p.pos) {
                p.pos += 1;
            }
            p.pos - from
        };
        self.eat(b"-");
        let int_start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.text[int_start] == b'0') {
            self.pos = int_start;
            return Err(self.error("invalid number"));
        }
        let mut float = false;
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            float = true;
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.pos) {
            self.pos += 1;
            float = true;
            if let Some(b'+' | b'-') = self.text.get(self.pos) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number"));
            }
        }
        let text = std::str::from_utf8(&self.text[start..self.pos]).unwrap_or_default();
        if float {
            return text
                .parse::<f64>()
                .map(Value::F64)
                .map_err(|_| self.error("invalid number"));
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::I64(i));
        }
        // CPython 3.11+ refuses longer decimal integers (parsing them is quadratic).
        if text.len() > MAX_DECIMAL_DIGITS {
            return Err(self.error("an integer of more digits than CPython reads"));
        }
        text.parse::<BigInt>()
            .map(Value::Int)
            .map_err(|_| self.error("invalid number"))
    }

    /// A string; lone surrogates written as `\udXXX` become U+10F800 + k, as in pickles.
    fn string(&mut self) -> Result<String, DecodeError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let plain = rest
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or_else(|| self.error("EOF while parsing a string"))?;
            let chunk = std::str::from_utf8(&rest[..plain])
                .map_err(|_| self.error("invalid UTF-8 in a string"))?;
            // Refused as their escaped form is: they would be written back as surrogates.
            if chunk.as_bytes().contains(&0xF4)
                && chunk.chars().any(|c| u32::from(c) >= SURROGATE_BASE)
            {
                return Err(
                    self.error("a code point in U+10F800..U+10FFFF (used for lone surrogates)")
                );
            }
            out.push_str(chunk);
            self.pos += plain;
            match self.text[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.pos += 1;
                    self.escape(&mut out)?;
                }
                _ => return Err(self.error("control character in a string")),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), DecodeError> {
        let Some(&c) = self.text.get(self.pos) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.pos += 1;
        let simple = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&unit)
                    && self.text[self.pos..].starts_with(b"\\u")
                {
                    let save = self.pos;
                    self.pos += 2;
                    let low = self.hex4()?;
                    if (0xDC00..0xE000).contains(&low) {
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        self.pos = save;
                        unit
                    }
                } else {
                    unit
                };
                let c = match char::from_u32(code) {
                    Some(_) if code >= SURROGATE_BASE => {
                        return Err(self.error(
                            "a code point in U+10F800..U+10FFFF (used for lone surrogates)",
                        ));
                    }
                    Some(c) => c,
                    None => char::from_u32(SURROGATE_BASE + (code - 0xD800))
                        .ok_or_else(|| self.error("invalid escape"))?,
                };
                out.push(c);
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let hex = self
            .text
            .get(self.pos..self.pos + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| self.error("invalid \\u escape"))?;
        self.pos += 4;
        Ok(hex)
    }
}

// --- writing ---

/// Writes `value` as compact JSON that Python's `json.loads` reads back as the same value
/// (tuples and sets as arrays, which Python reads as lists).
pub(crate) fn write(value: &impl JsonOut) -> Result<Vec<u8>, EncodeError> {
    let mut out = String::new();
    value.write_json(&mut out, 0)?;
    Ok(out.into_bytes())
}

fn refuse(what: &str) -> EncodeError {
    EncodeError::Json(serde::ser::Error::custom(format_args!(
        "{what} has no JSON form; store it with the pickle encoding"
    )))
}

/// A value the JSON writer takes: [`Value`] (`serde_pickle`'s) and [`crate::Value`], and their
/// hashable halves (set members, dict keys), written without converting one into the other.
pub(crate) trait JsonOut {
    /// Writes the value found inside `depth` containers.
    fn write_json(&self, out: &mut String, depth: u32) -> Result<(), EncodeError>;
    /// The key, when it is a string (JSON objects have no other keys).
    fn as_key(&self) -> Option<&str> {
        None
    }
}

fn container(depth: u32) -> Result<(), EncodeError> {
    if depth >= MAX_DEPTH {
        Err(EncodeError::Json(serde::ser::Error::custom(format_args!(
            "containers nest more than {MAX_DEPTH} deep"
        ))))
    } else {
        Ok(())
    }
}

fn write_array<'a, T: JsonOut + 'a>(
    out: &mut String,
    items: impl IntoIterator<Item = &'a T>,
    depth: u32,
) -> Result<(), EncodeError> {
    container(depth)?;
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_json(out, depth + 1)?;
    }
    out.push(']');
    Ok(())
}

fn write_dict<'a, K: JsonOut + 'a, V: JsonOut + 'a>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    depth: u32,
) -> Result<(), EncodeError> {
    container(depth)?;
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        let Some(key) = key.as_key() else {
            return Err(refuse("a dict with keys other than strings"));
        };
        if i > 0 {
            out.push(',');
        }
        write_str(out, key);
        out.push(':');
        value.write_json(out, depth + 1)?;
    }
    out.push('}');
    Ok(())
}

fn write_int(out: &mut String, n: &BigInt) {
    out.push_str(&n.to_string());
}

impl JsonOut for Value {
    fn write_json(&self, out: &mut String, depth: u32) -> Result<(), EncodeError> {
        match self {
            Value::None => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::I64(i) => out.push_str(&i.to_string()),
            Value::Int(n) => write_int(out, n),
            Value::F64(f) => write_float(out, *f),
            Value::String(s) => write_str(out, s),
            Value::Bytes(_) => return Err(refuse("bytes")),
            Value::List(items) | Value::Tuple(items) => write_array(out, items, depth)?,
            Value::Set(items) | Value::FrozenSet(items) => write_array(out, items, depth)?,
            Value::Dict(entries) => write_dict(out, entries, depth)?,
        }
        Ok(())
    }
}

impl JsonOut for HashableValue {
    fn write_json(&self, out: &mut String, depth: u32) -> Result<(), EncodeError> {
        match self {
            HashableValue::None => out.push_str("null"),
            HashableValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            HashableValue::I64(i) => out.push_str(&i.to_string()),
            HashableValue::Int(n) => write_int(out, n),
            HashableValue::F64(f) => write_float(out, *f),
            HashableValue::String(s) => write_str(out, s),
            HashableValue::Bytes(_) => return Err(refuse("bytes")),
            HashableValue::Tuple(items) => write_array(out, items, depth)?,
            HashableValue::FrozenSet(items) => write_array(out, items, depth)?,
        }
        Ok(())
    }

    fn as_key(&self) -> Option<&str> {
        match self {
            HashableValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl JsonOut for crate::Value {
    fn write_json(&self, out: &mut String, depth: u32) -> Result<(), EncodeError> {
        use crate::Value as V;
        match self {
            V::None => out.push_str("null"),
            V::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            V::I64(i) => out.push_str(&i.to_string()),
            V::Int(n) => write_int(out, n),
            V::F64(f) => write_float(out, *f),
            V::String(s) => write_str(out, s),
            V::List(items) | V::Tuple(items) => write_array(out, items, depth)?,
            V::Set(items) | V::FrozenSet(items) => write_array(out, items, depth)?,
            V::Dict(entries) => write_dict(out, entries, depth)?,
            // Python's json refuses bytes, dates, decimals, UUIDs and complex numbers too.
            other => return Err(refuse(other.type_name())),
        }
        Ok(())
    }
}

impl JsonOut for crate::HashableValue {
    fn write_json(&self, out: &mut String, depth: u32) -> Result<(), EncodeError> {
        use crate::HashableValue as H;
        match self {
            H::None => out.push_str("null"),
            H::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            H::I64(i) => out.push_str(&i.to_string()),
            H::Int(n) => write_int(out, n),
            H::F64(f) => write_float(out, *f),
            H::String(s) => write_str(out, s),
            H::Tuple(items) => write_array(out, items, depth)?,
            H::FrozenSet(items) => write_array(out, items, depth)?,
            other => return Err(refuse(other.clone().into_value().type_name())),
        }
        Ok(())
    }

    fn as_key(&self) -> Option<&str> {
        match self {
            crate::HashableValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Finite floats as the shortest text that reads back exactly; the others as Python's `json`
/// writes them (`NaN`, `Infinity`, `-Infinity`), which Python reads back.
fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        out.push_str(&serde_json::Value::from(f).to_string());
    }
}

fn write_str(out: &mut String, s: &str) {
    if !s.as_bytes().contains(&0xF4) {
        out.push_str(&serde_json::Value::from(s).to_string());
        return;
    }
    // Lone surrogates (read as U+10F800 + k) go back as the `\udXXX` escapes Python wrote.
    let mut plain = String::with_capacity(s.len());
    let flush = |out: &mut String, plain: &mut String| {
        let quoted = serde_json::Value::from(plain.as_str()).to_string();
        out.push_str(&quoted[1..quoted.len() - 1]);
        plain.clear();
    };
    out.push('"');
    for c in s.chars() {
        let code = u32::from(c);
        if code >= SURROGATE_BASE {
            flush(out, &mut plain);
            out.push_str(&format!("\\u{:04x}", 0xD800 + (code - SURROGATE_BASE)));
        } else {
            plain.push(c);
        }
    }
    flush(out, &mut plain);
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_type_and_every_digit() {
        let big = |s: &str| Value::Int(s.parse().unwrap());
        assert_eq!(
            parse(b"18446744073709551616").unwrap(),
            big("18446744073709551616")
        );
        assert_eq!(
            parse(b"-9223372036854775808").unwrap(),
            Value::I64(i64::MIN)
        );
        assert_eq!(parse(b"1.0").unwrap(), Value::F64(1.0));
        assert_eq!(parse(b"1e2").unwrap(), Value::F64(100.0));
        for bad in [&b"01"[..], b"1.", b"-", b".5", b"1e", b"+1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("9".repeat(4301).as_bytes()).is_err());
    }

    #[test]
    fn python_non_finite_tokens() {
        assert!(matches!(parse(b"NaN").unwrap(), Value::F64(f) if f.is_nan()));
        assert_eq!(
            parse(b"[Infinity, -Infinity]").unwrap(),
            Value::List(vec![
                Value::F64(f64::INFINITY),
                Value::F64(f64::NEG_INFINITY)
            ])
        );
        assert_eq!(
            write(&Value::List(vec![
                Value::F64(f64::NAN),
                Value::F64(f64::INFINITY),
                Value::F64(f64::NEG_INFINITY)
            ]))
            .unwrap(),
            b"[NaN,Infinity,-Infinity]"
        );
    }

    #[test]
    fn strings_escapes_and_surrogates() {
        assert_eq!(
            parse(br#""a\"\\\/\b\f\n\r\t\u2603\ud83c\udf89""#).unwrap(),
            Value::String("a\"\\/\u{8}\u{c}\n\r\t☃🎉".into())
        );
        let lone = parse(br#""\ud800x""#).unwrap();
        assert_eq!(lone, Value::String("\u{10F800}x".into()));
        assert_eq!(write(&lone).unwrap(), br#""\ud800x""#);
        assert!(parse(b"\"a\nb\"").is_err());
        assert!(parse(br#""\U0001""#).is_err());
    }

    #[test]
    fn structure_errors_say_where() {
        let err = parse(b"[1,\n 2,]").unwrap_err();
        assert_eq!(
            durabledict_core::Report(&err).to_string(),
            "invalid JSON: expected value at line 2 column 4"
        );
        assert!(parse(b"{1: 2}").is_err());
        assert!(parse(b"[1] x").is_err());
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(parse(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(parse(ok.as_bytes()).is_ok());
    }
}
