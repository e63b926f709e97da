//! [`FlagValue`]: how a stored value reads as an OpenFeature flag.

use durabledict_encoding::{
    HashableValue as PyHashable, PickleHashableValue, PickleValue, TimeDelta, Value as PyValue,
};
use open_feature::{StructValue, Value};

/// A dict value type that can be read as OpenFeature flags: each method answers `None` when
/// the stored value is not of that flag type (an OpenFeature `TYPE_MISMATCH`).
///
/// Implemented for `serde_json::Value` (the `Json` encoding), for
/// [`Value`](durabledict_encoding::Value) (what `durabledict::open` and `durabledict::dynamic`
/// hold: Python durabledict's pickles, standard library types included) and for
/// [`PickleValue`] (`DynamicPickle`, `DynamicJson`).
///
/// OpenFeature has no date, decimal or UUID type, so a Python `datetime`, `date` or `time`
/// reads as a string flag in `isoformat()` form (`"2026-12-01T10:00:00+01:00"`), a `Decimal`
/// and a `UUID` as their `str()` (`"0.10"`, `"6f0e2a1c-…"`), and a `Decimal` also as a float
/// flag (as Python's `float(d)`; a signaling NaN has no float); a `timedelta` reads as a float
/// flag of its seconds (`total_seconds()`). Inside a structured flag they take those forms,
/// a `timezone` its offset (`"+01:00"`) and a `complex` a `[real, imag]` array.
pub trait FlagValue: Send + Sync + 'static {
    /// The value as a boolean flag.
    fn as_bool(&self) -> Option<bool>;
    /// The value as an integer flag: integers that fit in `i64`.
    fn as_int(&self) -> Option<i64>;
    /// The value as a float flag: floats, and integers (as Python reads `1` for `1.0`; one
    /// past the floats has none).
    fn as_float(&self) -> Option<f64>;
    /// The value as a string flag.
    fn as_string(&self) -> Option<String>;
    /// The value as a structured flag: a map with string keys. Fields and items that are
    /// null (`None`) are left out: OpenFeature values have no null.
    fn as_struct(&self) -> Option<StructValue>;
    /// What the value is, for a type mismatch's message.
    fn kind(&self) -> &'static str;
}

impl FlagValue for serde_json::Value {
    fn as_bool(&self) -> Option<bool> {
        self.as_bool()
    }
    fn as_int(&self) -> Option<i64> {
        self.as_i64()
    }
    fn as_float(&self) -> Option<f64> {
        self.as_f64()
    }
    fn as_string(&self) -> Option<String> {
        self.as_str().map(str::to_owned)
    }
    fn as_struct(&self) -> Option<StructValue> {
        match json_to_value(self)? {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "boolean",
            serde_json::Value::Number(n) if n.is_f64() => "float",
            serde_json::Value::Number(_) => "integer",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        }
    }
}

fn json_to_value(json: &serde_json::Value) -> Option<Value> {
    Some(match json {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => {
            Value::Array(items.iter().filter_map(json_to_value).collect())
        }
        serde_json::Value::Object(map) => Value::Struct(StructValue {
            fields: map
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), json_to_value(v)?)))
                .collect(),
        }),
    })
}

impl FlagValue for PickleValue {
    fn as_bool(&self) -> Option<bool> {
        match self {
            PickleValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            PickleValue::I64(i) => Some(*i),
            // Python ints past 64 bits arrive as big integers; those within i64 read exactly.
            PickleValue::Int(big) => big.to_string().parse().ok(),
            _ => None,
        }
    }
    fn as_float(&self) -> Option<f64> {
        match self {
            PickleValue::F64(f) => Some(*f),
            #[allow(clippy::cast_precision_loss)] // Python's float(int) rounds the same way
            PickleValue::I64(i) => Some(*i as f64),
            PickleValue::Int(big) => big_float(big),
            _ => None,
        }
    }
    fn as_string(&self) -> Option<String> {
        match self {
            PickleValue::String(s) => Some(s.clone()),
            _ => None,
        }
    }
    fn as_struct(&self) -> Option<StructValue> {
        match pickle_to_value(self)? {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            PickleValue::None => "None",
            PickleValue::Bool(_) => "bool",
            PickleValue::I64(_) | PickleValue::Int(_) => "int",
            PickleValue::F64(_) => "float",
            PickleValue::Bytes(_) => "bytes",
            PickleValue::String(_) => "str",
            PickleValue::List(_) => "list",
            PickleValue::Tuple(_) => "tuple",
            PickleValue::Set(_) | PickleValue::FrozenSet(_) => "set",
            PickleValue::Dict(_) => "dict",
        }
    }
}

fn pickle_to_value(value: &PickleValue) -> Option<Value> {
    Some(match value {
        PickleValue::None | PickleValue::Bytes(_) => return None,
        PickleValue::Bool(b) => Value::Bool(*b),
        PickleValue::I64(i) => Value::Int(*i),
        PickleValue::Int(big) => Value::Int(big.to_string().parse().ok()?),
        PickleValue::F64(f) => Value::Float(*f),
        PickleValue::String(s) => Value::String(s.clone()),
        PickleValue::List(items) | PickleValue::Tuple(items) => {
            Value::Array(items.iter().filter_map(pickle_to_value).collect())
        }
        PickleValue::Set(items) | PickleValue::FrozenSet(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| pickle_to_value(&item.clone().into_value()))
                .collect(),
        ),
        PickleValue::Dict(map) => Value::Struct(StructValue {
            fields: map
                .iter()
                .filter_map(|(k, v)| match k {
                    PickleHashableValue::String(k) => Some((k.clone(), pickle_to_value(v)?)),
                    _ => None,
                })
                .collect(),
        }),
    })
}

impl FlagValue for PyValue {
    fn as_bool(&self) -> Option<bool> {
        match self {
            PyValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            PyValue::I64(i) => Some(*i),
            PyValue::Int(big) => big.to_string().parse().ok(),
            _ => None,
        }
    }
    fn as_float(&self) -> Option<f64> {
        match self {
            PyValue::F64(f) => Some(*f),
            #[allow(clippy::cast_precision_loss)] // Python's float(int) rounds the same way
            PyValue::I64(i) => Some(*i as f64),
            PyValue::Int(big) => big_float(big),
            // A quiet NaN's payload is dropped by float(), its sign kept.
            PyValue::Decimal(d) if d.is_nan() && !d.is_signaling() => {
                Some(if d.is_negative() { -f64::NAN } else { f64::NAN })
            }
            // str() is what float() reads; Rust's parser reads "Infinity" too.
            PyValue::Decimal(d) if !d.is_signaling() => d.to_string().parse().ok(),
            PyValue::TimeDelta(delta) => Some(seconds(delta)),
            _ => None,
        }
    }
    fn as_string(&self) -> Option<String> {
        match self {
            PyValue::String(s) => Some(s.clone()),
            PyValue::DateTime(at) => Some(at.to_string()),
            PyValue::Date(date) => Some(date.to_string()),
            PyValue::Time(time) => Some(time.to_string()),
            PyValue::Decimal(d) => Some(d.to_string()),
            PyValue::Uuid(id) => Some(id.to_string()),
            _ => None,
        }
    }
    fn as_struct(&self) -> Option<StructValue> {
        match py_to_value(self)? {
            Value::Struct(fields) => Some(fields),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        self.type_name()
    }
}

/// `float(n)` of an integer past 64 bits, rounded as Python rounds it; `None` past the
/// floats (Python's `OverflowError`).
fn big_float(n: &impl std::fmt::Display) -> Option<f64> {
    n.to_string().parse().ok().filter(|f: &f64| f.is_finite())
}

/// `timedelta.total_seconds()`.
fn seconds(delta: &TimeDelta) -> f64 {
    f64::from(delta.days()) * 86_400.0
        + f64::from(delta.seconds())
        + f64::from(delta.microseconds()) / 1e6
}

fn py_to_value(value: &PyValue) -> Option<Value> {
    Some(match value {
        PyValue::Bool(b) => Value::Bool(*b),
        PyValue::I64(i) => Value::Int(*i),
        PyValue::Int(big) => Value::Int(big.to_string().parse().ok()?),
        PyValue::F64(f) => Value::Float(*f),
        PyValue::List(items) | PyValue::Tuple(items) => {
            Value::Array(items.iter().filter_map(py_to_value).collect())
        }
        PyValue::Set(items) | PyValue::FrozenSet(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| py_to_value(&item.clone().into_value()))
                .collect(),
        ),
        PyValue::Dict(map) => Value::Struct(StructValue {
            fields: map
                .iter()
                .filter_map(|(k, v)| match k {
                    PyHashable::String(k) => Some((k.clone(), py_to_value(v)?)),
                    _ => None,
                })
                .collect(),
        }),
        PyValue::TimeDelta(delta) => Value::Float(seconds(delta)),
        PyValue::TimeZone(zone) => Value::String(zone.to_string()),
        PyValue::Complex(z) => Value::Array(vec![Value::Float(z.re), Value::Float(z.im)]),
        other => Value::String(other.as_string()?),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use durabledict_encoding::{Date, DateTime, Json, Uuid};

    use super::*;

    #[test]
    fn python_standard_library_values_read_as_strings_floats_and_in_structures() {
        let at: DateTime = "2026-12-01T10:00:00.250000+01:00".parse().unwrap();
        let when = PyValue::DateTime(at);
        assert_eq!(
            when.as_string().as_deref(),
            Some("2026-12-01T10:00:00.250000+01:00")
        );
        assert_eq!(when.as_float(), None);
        assert_eq!(when.kind(), "datetime.datetime");
        let price = PyValue::Decimal("0.10".parse().unwrap());
        assert_eq!(price.as_string().as_deref(), Some("0.10"));
        assert_eq!(price.as_float(), Some(0.1));
        assert_eq!(PyValue::Decimal("sNaN".parse().unwrap()).as_float(), None);
        // As Python's float(): a quiet NaN's payload is dropped and its sign kept; integers
        // past 64 bits round; past the floats there is no float.
        for text in ["NaN5", "-NaN", "NaN"] {
            let nan = PyValue::Decimal(text.parse().unwrap()).as_float().unwrap();
            assert!(nan.is_nan(), "{text}");
            assert_eq!(nan.is_sign_negative(), text.starts_with('-'), "{text}");
        }
        let int = |text: &str| -> PyValue {
            durabledict_core::Encoding::decode(&Json::<PyValue>::new(), text.as_bytes()).unwrap()
        };
        let big = int("1180591620717411303424"); // 2**70
        assert!(matches!(big, PyValue::Int(_)), "{big:?}");
        assert_eq!(big.as_float(), Some(1.180_591_620_717_411_3e21));
        let pickled = PickleValue::try_from(big).unwrap();
        assert_eq!(pickled.as_float(), Some(1.180_591_620_717_411_3e21));
        assert_eq!(int(&format!("1{}", "0".repeat(400))).as_float(), None);
        let delta = PyValue::TimeDelta(TimeDelta::new(-1, 86_399, 500_000).unwrap());
        assert_eq!(delta.as_float(), Some(-0.5));

        let fields = BTreeMap::from([
            (PyHashable::String("id".into()), PyValue::Uuid(Uuid::new(1))),
            (
                PyHashable::String("day".into()),
                PyValue::Date(Date::new(2026, 1, 1).unwrap()),
            ),
            (PyHashable::String("none".into()), PyValue::None),
        ]);
        let flag = PyValue::Dict(fields).as_struct().unwrap();
        assert_eq!(flag.fields.len(), 2);
        assert_eq!(
            flag.fields["id"],
            Value::String("00000000-0000-0000-0000-000000000001".into())
        );
        assert_eq!(flag.fields["day"], Value::String("2026-01-01".into()));
    }
}
