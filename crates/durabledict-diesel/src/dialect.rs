//! The SQL each backend speaks: identifier validation and quoting, and the text of every
//! statement a store runs. Values are never part of the text: every `?` is a bound parameter.

use std::fmt;

use crate::error::SqlError;
use crate::schema::{Schema, ValueColumn};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite, bundled into the program.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        })
    }
}

/// The longest identifier accepted: PostgreSQL truncates past 63 bytes, MySQL refuses past 64.
const MAX_IDENT: usize = 63;

/// Checks that `name` is a plain SQL identifier (ASCII letters, digits, `_`, not starting with
/// a digit, at most 63 characters), so that it can be quoted on every backend without escaping.
pub(crate) fn validate_ident(what: &str, name: &str) -> Result<(), SqlError> {
    let mut chars = name.chars();
    let plain = match chars.next() {
        Some(first) => {
            (first.is_ascii_alphabetic() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    };
    if plain && name.len() <= MAX_IDENT {
        Ok(())
    } else {
        Err(SqlError::Config(format!(
            "{what} {name:?} is not a plain identifier (ASCII letters, digits and `_`, not \
             starting with a digit, at most {MAX_IDENT} characters)"
        )))
    }
}

impl Backend {
    /// `name` quoted as an identifier. `name` has passed [`validate_ident`].
    pub(crate) fn quote(self, name: &str) -> String {
        match self {
            Backend::Mysql => format!("`{name}`"),
            Backend::Sqlite | Backend::Postgres => format!("\"{name}\""),
        }
    }

    /// Whether `SELECT … FOR UPDATE` exists (SQLite serializes writers instead).
    fn for_update(self) -> &'static str {
        match self {
            Backend::Sqlite => "",
            Backend::Postgres | Backend::Mysql => " FOR UPDATE",
        }
    }
}

/// The statements on the stamps table: they depend only on the configuration.
#[derive(Debug, Clone)]
pub(crate) struct StampSql {
    /// The stamps table's name, unquoted.
    pub(crate) table: String,
    pub(crate) create_table: String,
    /// Reads the stamp; parameter: keyspace, last (see [`StampSelect`](crate::stmt::StampSelect)).
    pub(crate) select: String,
    /// Creates the stamp when missing, never changing an existing one; parameters: keyspace,
    /// initial value.
    pub(crate) create: String,
    /// Increments the stamp, or creates it with the seed when missing; parameters: keyspace,
    /// seed. Returns the new stamp as `n` unless `bump_then_select` is set (MySQL has no
    /// `RETURNING`): then that statement reads it.
    pub(crate) bump: String,
    pub(crate) bump_then_select: bool,
    /// Deletes the stamp; parameter: keyspace.
    pub(crate) delete: String,
}

impl StampSql {
    pub(crate) fn new(backend: Backend, table: &str) -> Self {
        let t = backend.quote(table);
        let (ks, st) = (backend.quote("keyspace"), backend.quote("stamp"));
        let create_table = match backend {
            Backend::Sqlite | Backend::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {t} ({ks} VARCHAR(255) NOT NULL PRIMARY KEY, \
                 {st} BIGINT NOT NULL)"
            ),
            Backend::Mysql => format!(
                "CREATE TABLE IF NOT EXISTS {t} ({ks} VARBINARY(255) NOT NULL PRIMARY KEY, \
                 {st} BIGINT NOT NULL) ENGINE=InnoDB"
            ),
        };
        let insert = format!("INTO {t} ({ks}, {st}) VALUES (?, ?)");
        let (create, bump, bump_then_select) = match backend {
            Backend::Sqlite | Backend::Postgres => (
                format!("INSERT {insert} ON CONFLICT ({ks}) DO NOTHING"),
                format!(
                    "INSERT {insert} ON CONFLICT ({ks}) DO UPDATE SET {st} = {t}.{st} + 1 \
                     RETURNING {st} AS n"
                ),
                false,
            ),
            Backend::Mysql => (
                format!("INSERT IGNORE {insert}"),
                format!("INSERT {insert} ON DUPLICATE KEY UPDATE {st} = {st} + 1"),
                true,
            ),
        };
        StampSql {
            table: table.to_string(),
            create_table,
            select: format!("SELECT {st} AS n FROM {t} WHERE {ks} = ?"),
            create,
            bump,
            bump_then_select,
            delete: format!("DELETE FROM {t} WHERE {ks} = ?"),
        }
    }
}

/// The statements on the data table that do not depend on its column types.
#[derive(Debug, Clone)]
pub(crate) struct TableSql {
    /// Lists a table's columns as `name`, `ty`, `max_chars`, `max_bytes`, with `tbl`, the
    /// table's name as the catalog keeps it; parameter: the table's name in any case the
    /// database would resolve to it (SQLite: any; MySQL: any unless `lower_case_table_names`
    /// is 0; PostgreSQL, whose quoted names are exact: only the same).
    pub(crate) columns: String,
    /// Reads `max_allowed_packet` as `n` (MySQL only).
    pub(crate) max_packet: Option<String>,
    pub(crate) drop: String,
}

impl TableSql {
    pub(crate) fn new(backend: Backend, table: &str) -> Self {
        let columns = match backend {
            Backend::Sqlite => "SELECT p.name AS name, p.type AS ty, NULL AS max_chars, \
                                NULL AS max_bytes, m.name AS tbl \
                                FROM sqlite_master AS m JOIN pragma_table_info(m.name) AS p \
                                WHERE m.type IN ('table', 'view') AND m.name = ? COLLATE NOCASE"
                .to_string(),
            Backend::Postgres => "SELECT CAST(column_name AS TEXT) AS name, \
                 CAST(data_type AS TEXT) AS ty, \
                 CAST(character_maximum_length AS TEXT) AS max_chars, \
                 CAST(character_octet_length AS TEXT) AS max_bytes, \
                 CAST(table_name AS TEXT) AS tbl \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ?"
                .to_string(),
            // The catalog compares TABLE_NAME as the server resolves table names: exactly
            // under `lower_case_table_names` = 0, in lower case otherwise.
            Backend::Mysql => "SELECT CAST(COLUMN_NAME AS CHAR) AS name, \
                 CAST(DATA_TYPE AS CHAR) AS ty, \
                 CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR) AS max_chars, \
                 CAST(CHARACTER_OCTET_LENGTH AS CHAR) AS max_bytes, \
                 CAST(TABLE_NAME AS CHAR) AS tbl \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
                .to_string(),
        };
        TableSql {
            columns,
            max_packet: (backend == Backend::Mysql)
                .then(|| "SELECT CAST(@@max_allowed_packet AS SIGNED) AS n".to_string()),
            drop: format!("DROP TABLE IF EXISTS {}", backend.quote(table)),
        }
    }
}

/// `CREATE TABLE IF NOT EXISTS` for a new data table: keys of up to 255 characters (1020
/// bytes on MySQL, whose character columns compare case- and pad-insensitively), values as
/// bytes, or as text when asked (then only UTF-8 values fit, as in a Django table).
pub(crate) fn create_table(
    backend: Backend,
    table: &str,
    key: &str,
    value: &str,
    text_values: bool,
) -> String {
    let (t, k, v) = (
        backend.quote(table),
        backend.quote(key),
        backend.quote(value),
    );
    let (key_type, value_type, suffix) = match (backend, text_values) {
        (Backend::Sqlite, false) => ("VARCHAR(255)", "BLOB", ""),
        (Backend::Sqlite, true) => ("VARCHAR(255)", "TEXT", ""),
        (Backend::Postgres, false) => ("VARCHAR(255)", "BYTEA", ""),
        (Backend::Postgres, true) => ("VARCHAR(255)", "TEXT", ""),
        (Backend::Mysql, false) => ("VARBINARY(1020)", "LONGBLOB", " ENGINE=InnoDB"),
        (Backend::Mysql, true) => (
            "VARBINARY(1020)",
            "LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
            " ENGINE=InnoDB",
        ),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {t} ({k} {key_type} NOT NULL PRIMARY KEY, \
         {v} {value_type} NOT NULL){suffix}"
    )
}

/// The statements on the data table, once its value column's type is known: values are read
/// and written as bytes, converted to and from text in SQL for a text column.
#[derive(Debug, Clone)]
pub(crate) struct DataSql {
    /// Every entry as `k`, `v`.
    pub(crate) select_all: String,
    /// One value as `v`; parameter: key.
    pub(crate) select_one: String,
    /// One value as `v`, locking the row for the rest of the transaction; parameter: key.
    pub(crate) select_one_locked: String,
    /// Insert or overwrite; parameters: key, value.
    pub(crate) upsert: String,
    /// Insert only; parameters: key, value.
    pub(crate) insert: String,
    /// Parameter: key.
    pub(crate) delete_one: String,
    pub(crate) delete_all: String,
}

impl DataSql {
    pub(crate) fn new(
        backend: Backend,
        table: &str,
        key: &str,
        value: &str,
        schema: &Schema,
    ) -> Self {
        let (t, k, v) = (
            backend.quote(table),
            backend.quote(key),
            backend.quote(value),
        );
        let text = schema.value == ValueColumn::Text;
        let (read, param) = match (backend, text) {
            (_, false) => (v.clone(), "?".to_string()),
            (Backend::Postgres, true) => (
                format!("convert_to({v}, 'UTF8')"),
                "convert_from(?, 'UTF8')".to_string(),
            ),
            (Backend::Sqlite, true) => {
                (format!("CAST({v} AS BLOB)"), "CAST(? AS TEXT)".to_string())
            }
            // The value is bound as bytes, which MySQL copies into a text column unconverted:
            // into a latin1 column (older Django databases) UTF-8 would be stored garbled. Taken
            // as UTF-8 text, it is converted to the column's character set, and a character
            // the column cannot hold is refused (strict mode) instead of stored wrong.
            (Backend::Mysql, true) => (v.clone(), "CONVERT(? USING utf8mb4)".to_string()),
        };
        let select_one = format!("SELECT {read} AS v FROM {t} WHERE {k} = ?");
        let upsert = match backend {
            Backend::Sqlite | Backend::Postgres => format!(
                "INSERT INTO {t} ({k}, {v}) VALUES (?, {param}) \
                 ON CONFLICT ({k}) DO UPDATE SET {v} = excluded.{v}"
            ),
            Backend::Mysql => format!(
                "INSERT INTO {t} ({k}, {v}) VALUES (?, {param}) \
                 ON DUPLICATE KEY UPDATE {v} = VALUES({v})"
            ),
        };
        DataSql {
            select_all: match backend {
                // The key's storage class: see `RawEntryRow`.
                Backend::Sqlite => {
                    format!("SELECT {k} AS k, {read} AS v, typeof({k}) AS t FROM {t}")
                }
                Backend::Postgres | Backend::Mysql => {
                    format!("SELECT {k} AS k, {read} AS v FROM {t}")
                }
            },
            select_one_locked: format!("{select_one}{}", backend.for_update()),
            select_one,
            upsert,
            insert: format!("INSERT INTO {t} ({k}, {v}) VALUES (?, {param})"),
            delete_one: format!("DELETE FROM {t} WHERE {k} = ?"),
            delete_all: format!("DELETE FROM {t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain() {
        for ok in ["settings", "_x", "app_setting2", &"a".repeat(63)] {
            validate_ident("table", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "a`b",
            "a;drop",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                validate_ident("table", bad).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn quoting_follows_the_backend() {
        assert_eq!(Backend::Postgres.quote("key"), "\"key\"");
        assert_eq!(Backend::Sqlite.quote("key"), "\"key\"");
        assert_eq!(Backend::Mysql.quote("key"), "`key`");
    }

    #[test]
    fn statements_bind_every_value() {
        let schema = Schema::binary_for_tests();
        for backend in [Backend::Sqlite, Backend::Postgres, Backend::Mysql] {
            let data = DataSql::new(backend, "t", "key", "value", &schema);
            assert_eq!(
                data.upsert.matches('?').count(),
                2,
                "{backend}: {}",
                data.upsert
            );
            assert_eq!(data.select_one.matches('?').count(), 1);
            let stamp = StampSql::new(backend, "stamps");
            assert_eq!(
                stamp.bump.matches('?').count(),
                2,
                "{backend}: {}",
                stamp.bump
            );
        }
    }
}
