//! [`FlagValue`]: how a stored value reads as an OpenFeature flag.

use durabledict_encoding::{PickleHashableValue, PickleValue};
use open_feature::{StructValue, Value};

/// A dict value type that can be read as OpenFeature flags: each method answers `None` when
/// the stored value is not of that flag type (an OpenFeature `TYPE_MISMATCH`).
///
/// Implemented for `serde_json::Value` (the `Json` encoding) and [`PickleValue`] (Python
/// durabledict's pickles, `DynamicPickle`, or `DynamicJson`).
pub trait FlagValue: Send + Sync + 'static {
    /// The value as a boolean flag.
    fn as_bool(&self) -> Option<bool>;
    /// The value as an integer flag: integers that fit in `i64`.
    fn as_int(&self) -> Option<i64>;
    /// The value as a float flag: floats, and integers (as Python reads `1` for `1.0`).
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
