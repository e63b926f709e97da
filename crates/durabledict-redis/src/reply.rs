//! Reading Redis replies into stamps and entries, refusing shapes the layout does not allow.

use std::collections::HashMap;

use durabledict_core::{StampValue, StoreError};
use redis::Value;

use crate::error::corrupt;

/// A stamp as stored: `None` when the key is missing; an integer otherwise, or
/// [`Corrupt`](durabledict_core::StoreErrorKind::Corrupt).
pub(crate) fn stamp(value: Value, key: &str) -> Result<Option<StampValue>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::Int(n) => Ok(Some(n)),
        Value::BulkString(bytes) => parse_stamp(&bytes, key).map(Some),
        Value::SimpleString(text) => parse_stamp(text.as_bytes(), key).map(Some),
        other => Err(corrupt(format!(
            "the Redis key {key:?} (the keyspace's stamp) answered {other:?}, not an integer"
        ))),
    }
}

/// A stamp that must be there (a write just set it).
pub(crate) fn written_stamp(value: Value, key: &str) -> Result<StampValue, StoreError> {
    stamp(value, key)?
        .ok_or_else(|| corrupt(format!("the stamp key {key:?} is missing after a write")))
}

fn parse_stamp(bytes: &[u8], key: &str) -> Result<StampValue, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse::<StampValue>().ok())
        .ok_or_else(|| {
            corrupt(format!(
                "the Redis key {key:?} (the keyspace's stamp) holds {:?}, not an integer",
                String::from_utf8_lossy(bytes)
            ))
        })
}

/// A value read from the hash: `None` for nil.
pub(crate) fn bytes(value: Value, what: &str) -> Result<Option<Vec<u8>>, StoreError> {
    match value {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => Ok(Some(bytes)),
        Value::SimpleString(text) => Ok(Some(text.into_bytes())),
        other => Err(corrupt(format!("{what} answered {other:?}, not a value"))),
    }
}

/// The entries of a hash and the fields that cannot be keys: the raw field and why.
pub(crate) type Entries = (HashMap<String, Vec<u8>>, Vec<(Vec<u8>, String)>);

/// The reply of `HGETALL`: field/value pairs flat (RESP2) or as a map (RESP3). A field that is
/// not UTF-8 (Python can write `d[b'\xff']`) cannot be a dict key: it is handed over apart,
/// with the reason, so that it poisons only itself.
pub(crate) fn entries(value: Value, hash: &str) -> Result<Entries, StoreError> {
    match value {
        Value::Nil => Ok(Entries::default()),
        Value::Map(pairs) => collect(pairs.len(), pairs.into_iter()),
        Value::Array(flat) if flat.len() % 2 == 0 => {
            let len = flat.len() / 2;
            let mut items = flat.into_iter();
            let pairs = std::iter::from_fn(|| Some((items.next()?, items.next()?)));
            collect(len, pairs)
        }
        other => Err(corrupt(format!(
            "HGETALL {hash:?} answered {other:?}, not a hash"
        ))),
    }
}

fn collect(len: usize, pairs: impl Iterator<Item = (Value, Value)>) -> Result<Entries, StoreError> {
    let mut map = HashMap::with_capacity(len);
    let mut unreadable = Vec::new();
    for (field, value) in pairs {
        let field = bytes(field, "a hash field")?.unwrap_or_default();
        let value = bytes(value, "a hash value")?.unwrap_or_default();
        match String::from_utf8(field) {
            Ok(key) => {
                map.insert(key, value);
            }
            Err(e) => {
                let reason = format!("the hash field is not UTF-8 ({})", e.utf8_error());
                unreadable.push((e.into_bytes(), reason));
            }
        }
    }
    Ok((map, unreadable))
}

/// Splits a two-item array reply.
pub(crate) fn pair(value: Value, what: &str) -> Result<(Value, Value), StoreError> {
    match value {
        Value::Array(items) if items.len() == 2 => {
            let mut items = items.into_iter();
            match (items.next(), items.next()) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(corrupt(format!("{what} answered a short reply"))),
            }
        }
        other => Err(corrupt(format!("{what} answered {other:?}, not a pair"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use durabledict_core::StoreErrorKind;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn stamps() {
        assert_eq!(stamp(Value::Nil, "s").unwrap(), None);
        assert_eq!(stamp(bulk("42"), "s").unwrap(), Some(42));
        assert_eq!(stamp(Value::Int(-3), "s").unwrap(), Some(-3));
        for bad in [bulk("4.5"), bulk(""), bulk("twelve"), Value::Array(vec![])] {
            assert_eq!(stamp(bad, "s").unwrap_err().kind(), StoreErrorKind::Corrupt);
        }
        assert_eq!(
            written_stamp(Value::Nil, "s").unwrap_err().kind(),
            StoreErrorKind::Corrupt
        );
    }

    #[test]
    fn hashes_in_both_protocols() {
        let flat = Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("")]);
        let map = Value::Map(vec![(bulk("a"), bulk("1")), (bulk("b"), bulk(""))]);
        for reply in [flat, map] {
            let (entries, unreadable) = entries(reply, "h").unwrap();
            assert_eq!(entries.len(), 2);
            assert_eq!(entries["a"], b"1");
            assert_eq!(entries["b"], b"");
            assert!(unreadable.is_empty());
        }
        assert!(entries(Value::Nil, "h").unwrap().0.is_empty());
    }

    #[test]
    fn a_field_that_is_not_utf8_is_handed_over_apart() {
        let binary = Value::Array(vec![
            Value::BulkString(vec![0xff]),
            bulk("1"),
            bulk("ok"),
            bulk("2"),
        ]);
        let (entries, unreadable) = entries(binary, "h").unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries["ok"], b"2");
        assert_eq!(unreadable.len(), 1);
        assert_eq!(unreadable[0].0, vec![0xff]);
        assert!(unreadable[0].1.contains("not UTF-8"), "{}", unreadable[0].1);
    }

    #[test]
    fn odd_shapes_are_corrupt() {
        let odd = Value::Array(vec![bulk("a")]);
        for reply in [odd, Value::Int(1)] {
            assert_eq!(
                entries(reply, "h").unwrap_err().kind(),
                StoreErrorKind::Corrupt
            );
        }
    }
}
