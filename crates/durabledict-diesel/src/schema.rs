//! What the data table's key and value columns can hold, read from the database's catalog, so
//! that a key or value that does not fit is refused before anything is written.

use crate::dialect::Backend;
use crate::error::SqlError;

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) max_chars: Option<String>,
    pub(crate) max_bytes: Option<String>,
    /// The table's name as the catalog keeps it (see [`TableSql::columns`](crate::dialect::TableSql)).
    pub(crate) table: String,
}

/// A length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Unbounded,
    Chars(usize),
    Bytes(usize),
}

impl Limit {
    /// Why `text` does not fit, if it does not.
    pub(crate) fn check(
        self,
        text_len_bytes: usize,
        chars: impl FnOnce() -> usize,
    ) -> Option<String> {
        match self {
            Limit::Unbounded => None,
            Limit::Bytes(max) => (text_len_bytes > max)
                .then(|| format!("{text_len_bytes} bytes, over the column's limit of {max} bytes")),
            Limit::Chars(max) => {
                // A character is at least one byte: short strings need no counting.
                if text_len_bytes <= max {
                    return None;
                }
                let n = chars();
                (n > max).then(|| format!("{n} characters, over the column's limit of {max}"))
            }
        }
    }
}

/// How values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueColumn {
    /// Bytes as they are.
    Binary,
    /// UTF-8 text (a Django `TextField` or `CharField`): values must be UTF-8.
    Text,
}

/// The usable shape of a data table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Schema {
    pub(crate) key_limit: Limit,
    pub(crate) value: ValueColumn,
    pub(crate) value_limit: Limit,
    /// The column refuses NUL characters (PostgreSQL text).
    pub(crate) no_nul: bool,
}

/// SQLite's default `SQLITE_MAX_LENGTH`.
const SQLITE_MAX_LENGTH: usize = 1_000_000_000;
/// PostgreSQL's limit for one field.
const POSTGRES_MAX_FIELD: usize = (1 << 30) - 1;

impl Schema {
    /// Reads the shape from the catalog rows of `table`; `max_packet` is MySQL's
    /// `max_allowed_packet`, which bounds a value too.
    pub(crate) fn from_columns(
        backend: Backend,
        table: &str,
        key: &str,
        value: &str,
        columns: &[Column],
        max_packet: Option<usize>,
    ) -> Result<Schema, SqlError> {
        let schema_error = |reason: String| SqlError::Schema {
            table: table.to_string(),
            reason,
        };
        if columns.is_empty() {
            return Err(SqlError::MissingTable {
                table: table.to_string(),
                reason: "the table does not exist".into(),
            });
        }
        let find = |name: &str| {
            columns
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| schema_error(format!("it has no column {name:?}")))
        };
        let key_col = find(key)?;
        let value_col = find(value)?;
        let key_type = describe(backend, key_col)
            .map_err(|reason| schema_error(format!("key column {key:?}: {reason}")))?;
        let value_type = describe(backend, value_col)
            .map_err(|reason| schema_error(format!("value column {value:?}: {reason}")))?;
        // Keys are bound as text; only MySQL compares a text parameter with a binary column.
        if key_type.kind == ValueColumn::Binary && backend != Backend::Mysql {
            return Err(schema_error(format!(
                "key column {key:?} has type {}; it must be a text type",
                key_col.ty
            )));
        }
        let value_limit = match (value_type.limit, max_packet) {
            // Leave room for the key and the protocol around the value.
            (limit, Some(packet)) => {
                let packet = packet.saturating_sub(64 * 1024);
                match limit {
                    Limit::Bytes(max) => Limit::Bytes(max.min(packet)),
                    Limit::Unbounded => Limit::Bytes(packet),
                    chars @ Limit::Chars(_) => chars,
                }
            }
            (limit, None) => limit,
        };
        Ok(Schema {
            key_limit: key_type.limit,
            value: value_type.kind,
            value_limit,
            no_nul: backend == Backend::Postgres,
        })
    }

    /// The largest value in bytes, when the limit is in bytes.
    pub(crate) fn max_value_bytes(&self) -> Option<usize> {
        match self.value_limit {
            Limit::Bytes(max) => Some(max),
            Limit::Chars(_) | Limit::Unbounded => None,
        }
    }

    /// Why the store cannot hold `key`, if it cannot.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), String> {
        if self.no_nul && key.contains('\0') {
            return Err("the key column cannot hold NUL characters".into());
        }
        match self.key_limit.check(key.len(), || key.chars().count()) {
            Some(reason) => Err(format!("the key is {reason}")),
            None => Ok(()),
        }
    }

    /// Why the value column cannot hold `value`, if it cannot.
    pub(crate) fn check_value(&self, value: &[u8]) -> Result<(), String> {
        if self.value == ValueColumn::Text {
            let text = std::str::from_utf8(value).map_err(|e| {
                format!("the value column holds text and the value is not UTF-8 ({e})")
            })?;
            if self.no_nul && text.contains('\0') {
                return Err("the value column cannot hold NUL characters".into());
            }
            if let Some(reason) = self.value_limit.check(value.len(), || text.chars().count()) {
                return Err(format!("the value is {reason}"));
            }
        } else if let Some(reason) = self.value_limit.check(value.len(), || value.len()) {
            return Err(format!("the value is {reason}"));
        }
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn binary_for_tests() -> Schema {
        Schema {
            key_limit: Limit::Chars(255),
            value: ValueColumn::Binary,
            value_limit: Limit::Unbounded,
            no_nul: false,
        }
    }
}

struct ColumnType {
    kind: ValueColumn,
    limit: Limit,
}

/// What a column of this declared type holds and how much.
fn describe(backend: Backend, column: &Column) -> Result<ColumnType, String> {
    let ty = column.ty.to_ascii_lowercase();
    let number = |s: &Option<String>| s.as_deref().and_then(|n| n.trim().parse::<usize>().ok());
    let unsupported = || {
        Err(format!(
            "type {:?} is not supported (use a variable-length text or binary type)",
            column.ty
        ))
    };
    let (kind, limit) = match backend {
        Backend::Sqlite => {
            // SQLite's type affinity rules, and the declared length that Django relies on.
            let declared = ty
                .split_once('(')
                .and_then(|(_, rest)| rest.split([')', ',']).next())
                .and_then(|n| n.trim().parse::<usize>().ok());
            if ty.contains("char") || ty.contains("clob") || ty.contains("text") {
                let limit = declared.map_or(Limit::Bytes(SQLITE_MAX_LENGTH), Limit::Chars);
                (ValueColumn::Text, limit)
            } else if ty.contains("blob") || ty.trim().is_empty() {
                (ValueColumn::Binary, Limit::Bytes(SQLITE_MAX_LENGTH))
            } else {
                return unsupported();
            }
        }
        Backend::Postgres => match ty.as_str() {
            "text" => (ValueColumn::Text, Limit::Bytes(POSTGRES_MAX_FIELD)),
            "character varying" => (
                ValueColumn::Text,
                number(&column.max_chars).map_or(Limit::Bytes(POSTGRES_MAX_FIELD), Limit::Chars),
            ),
            "bytea" => (ValueColumn::Binary, Limit::Bytes(POSTGRES_MAX_FIELD)),
            _ => return unsupported(),
        },
        Backend::Mysql => match ty.as_str() {
            "varchar" => (
                ValueColumn::Text,
                number(&column.max_chars).map_or(Limit::Unbounded, Limit::Chars),
            ),
            "tinytext" | "text" | "mediumtext" | "longtext" => (
                ValueColumn::Text,
                number(&column.max_bytes).map_or(Limit::Unbounded, Limit::Bytes),
            ),
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => (
                ValueColumn::Binary,
                number(&column.max_bytes).map_or(Limit::Unbounded, Limit::Bytes),
            ),
            _ => return unsupported(),
        },
    };
    Ok(ColumnType { kind, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, chars: Option<&str>, bytes: Option<&str>) -> Column {
        Column {
            name: name.into(),
            ty: ty.into(),
            max_chars: chars.map(Into::into),
            max_bytes: bytes.map(Into::into),
            table: "t".into(),
        }
    }

    #[test]
    fn django_sqlite_table() {
        let columns = [
            col("id", "integer", None, None),
            col("key", "varchar(32)", None, None),
            col("value", "text", None, None),
        ];
        let s = Schema::from_columns(Backend::Sqlite, "t", "key", "value", &columns, None)
            .expect("usable");
        assert_eq!(s.key_limit, Limit::Chars(32));
        assert_eq!(s.value, ValueColumn::Text);
        assert!(s.check_key(&"é".repeat(32)).is_ok());
        assert!(s.check_key(&"é".repeat(33)).is_err());
        assert!(s.check_value(b"\xff").is_err());
        assert!(s.check_value("☃".as_bytes()).is_ok());
    }

    #[test]
    fn postgres_and_mysql_types() {
        let pg = [
            col("key", "character varying", Some("255"), Some("1020")),
            col("value", "bytea", None, None),
        ];
        let s = Schema::from_columns(Backend::Postgres, "t", "key", "value", &pg, None)
            .expect("usable");
        assert_eq!(s.value, ValueColumn::Binary);
        assert!(s.check_key("nul\0").is_err());
        let my = [
            col("key", "varbinary", None, Some("1020")),
            col("value", "longtext", Some("4294967295"), Some("4294967295")),
        ];
        let s = Schema::from_columns(Backend::Mysql, "t", "key", "value", &my, Some(16 << 20))
            .expect("usable");
        assert_eq!(s.key_limit, Limit::Bytes(1020));
        assert_eq!(s.max_value_bytes(), Some((16 << 20) - 64 * 1024));
    }

    #[test]
    fn unusable_tables_are_refused() {
        let e = Schema::from_columns(Backend::Postgres, "t", "key", "value", &[], None);
        assert!(matches!(e, Err(SqlError::MissingTable { .. })));
        let no_value = [col("key", "text", None, None)];
        let e = Schema::from_columns(Backend::Postgres, "t", "key", "value", &no_value, None);
        assert!(matches!(e, Err(SqlError::Schema { .. })));
        let bad = [
            col("key", "text", None, None),
            col("value", "integer", None, None),
        ];
        let e = Schema::from_columns(Backend::Postgres, "t", "key", "value", &bad, None);
        assert!(matches!(e, Err(SqlError::Schema { .. })));
    }
}
