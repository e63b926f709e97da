//! The store's operations, written once over any [`Db`] connection. Each write is one
//! transaction; with the SQL-row stamp the bump is part of it, and a write that changes
//! nothing bumps nothing.

use std::collections::{BTreeMap, HashMap};

use durabledict_core::{Durables, clock_seed};

use crate::db::Db;
use crate::dialect::{Backend, DataSql, StampSql, TableSql};
use crate::error::SqlError;
use crate::schema::Column;
use crate::stmt::{Bind, StampSelect, Stmt};

/// Where the stamp of a keyspace lives, as the operations see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampRow<'a> {
    /// `None`: the stamp is external and bumped after the commit.
    pub(crate) sql: Option<&'a StampSql>,
    /// The data table's name as the catalog keeps it (see [`stamp_key`]).
    pub(crate) keyspace: &'a str,
}

/// The key of a table's stamp row: the table's name as the catalog keeps it, whatever case
/// the store was configured with. Where the database resolves names without regard to case
/// (SQLite, MySQL unless `lower_case_table_names` is 0), `flags` and `FLAGS` are one table, and
/// must be one stamp; where a name is the table only exactly (PostgreSQL, quoted), the catalog
/// gives back the name as configured. A table that does not exist has no other name.
pub(crate) fn stamp_key<'a>(columns: &'a [Column], configured: &'a str) -> &'a str {
    columns.first().map_or(configured, |c| c.table.as_str())
}

/// What a write did: its result, whether it changed anything, and the stamp it left when the
/// stamp is an SQL row (`None` with an external stamp, which the caller bumps).
#[derive(Debug)]
pub(crate) struct Done<T> {
    pub(crate) value: T,
    pub(crate) changed: bool,
    pub(crate) stamp: Option<i64>,
}

impl<T> Done<T> {
    fn unchanged(value: T) -> Self {
        Done {
            value,
            changed: false,
            stamp: None,
        }
    }
}

/// Increments the stamp row (re-creating it from the clock when missing) and returns it;
/// `None` with an external stamp.
fn bump<C: Db>(c: &mut C, stamp: StampRow<'_>) -> Result<Option<i64>, SqlError> {
    let Some(sql) = stamp.sql else {
        return Ok(None);
    };
    let binds = [Bind::Text(stamp.keyspace), Bind::Int(clock_seed())];
    let new = if sql.bump_then_select {
        c.exec(Stmt::new(&sql.bump, &binds))?;
        c.stamp(StampSelect::new(&sql.select, stamp.keyspace))?
    } else {
        c.int(Stmt::new(&sql.bump, &binds))?
    };
    new.map(Some)
        .ok_or(SqlError::Query(diesel::result::Error::NotFound))
}

fn changed<C: Db, T>(c: &mut C, stamp: StampRow<'_>, value: T) -> Result<Done<T>, SqlError> {
    Ok(Done {
        value,
        changed: true,
        stamp: bump(c, stamp)?,
    })
}

/// Looks at the data table, the stamps table and the stamp row (keyed by [`stamp_key`]),
/// creates what is missing when `create` allows it, and returns the data table's columns (none
/// when it is missing), MySQL's packet limit and whether the stamps table (of an SQL-row stamp)
/// exists. When everything exists it only reads, so a role without CREATE or INSERT rights, or a read-only file, gets this far. A stamp row created for a table created
/// here starts at 1; for a table that already existed (its stamp lost, or a Django table), at a
/// clock seed, so it cannot repeat a stamp handed out before.
pub(crate) fn init<C: Db>(
    c: &mut C,
    table: &TableSql,
    table_name: &str,
    create_table: &str,
    stamp: Option<&StampSql>,
    create: bool,
) -> Result<(Vec<Column>, Option<usize>, bool), SqlError> {
    let mut columns = table_columns(c, table, table_name)?;
    let existed = !columns.is_empty();
    if !existed {
        if !create {
            // The caller reports the missing table.
            return Ok((columns, None, false));
        }
        create_if_missing(c, create_table)?;
        columns = table_columns(c, table, table_name)?;
    }
    let keyspace = stamp_key(&columns, table_name);
    if let Some(sql) = stamp {
        if !table_exists(c, table, &sql.table)? {
            if !create {
                // Read as no stamp; a write is refused (see the store).
                return Ok((columns, max_packet(c, table)?, false));
            }
            create_if_missing(c, &sql.create_table)?;
        }
        if create && last_updated(c, sql, keyspace)?.is_none() {
            // Safe against a concurrent creator: it never changes an existing row.
            let first = if existed { clock_seed() } else { 1 };
            c.exec(Stmt::new(
                &sql.create,
                &[Bind::Text(keyspace), Bind::Int(first)],
            ))?;
        }
    }
    Ok((columns, max_packet(c, table)?, true))
}

/// Whether the table `name` exists (and is visible to this role).
pub(crate) fn table_exists<C: Db>(
    c: &mut C,
    table: &TableSql,
    name: &str,
) -> Result<bool, SqlError> {
    Ok(!table_columns(c, table, name)?.is_empty())
}

/// The catalog's description of a table's columns; none when the table does not exist (or is
/// not visible to this role).
fn table_columns<C: Db>(c: &mut C, table: &TableSql, name: &str) -> Result<Vec<Column>, SqlError> {
    Ok(c.columns(Stmt::new(&table.columns, &[Bind::Text(name)]))?)
}

/// Runs a `CREATE TABLE IF NOT EXISTS`. PostgreSQL's is not safe against a concurrent creator
/// (the loser fails on a catalog unique index, e.g. `type "…" already exists`, once the winner
/// commits), so a failure is retried once: by then the table exists and the statement is a
/// no-op; an error that persists is a real one.
fn create_if_missing<C: Db>(c: &mut C, create: &str) -> Result<(), SqlError> {
    if c.exec(Stmt::new(create, &[])).is_err() {
        c.exec(Stmt::new(create, &[]))?;
    }
    Ok(())
}

/// The data table's columns and MySQL's packet limit, for a table that exists.
pub(crate) fn describe<C: Db>(
    c: &mut C,
    table: &TableSql,
    table_name: &str,
) -> Result<(Vec<Column>, Option<usize>), SqlError> {
    Ok((table_columns(c, table, table_name)?, max_packet(c, table)?))
}

fn max_packet<C: Db>(c: &mut C, table: &TableSql) -> Result<Option<usize>, SqlError> {
    let Some(sql) = &table.max_packet else {
        return Ok(None);
    };
    Ok(c.int(Stmt::new(sql, &[]))?
        .and_then(|n| usize::try_from(n).ok()))
}

pub(crate) fn last_updated<C: Db>(
    c: &mut C,
    sql: &StampSql,
    keyspace: &str,
) -> Result<Option<i64>, SqlError> {
    Ok(c.stamp(StampSelect::new(&sql.select, keyspace))?)
}

/// Every entry, and the stamp read first in the same snapshot when it is an SQL row.
pub(crate) fn durables<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
) -> Result<Durables, SqlError> {
    let read = |c: &mut C| -> Result<Durables, SqlError> {
        let stamp = match stamp.sql {
            Some(sql) => last_updated(c, sql, stamp.keyspace)?,
            None => None,
        };
        let rows = c.entries(Stmt::new(&data.select_all, &[]))?;
        let mut entries = HashMap::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            if let Some(class) = row.not_text {
                // Reads and writes of one key bind it as text and would never find this row;
                // loaded, it would shadow (or be shadowed by) a text row of the same spelling.
                let reason = format!(
                    "the name is stored as {class}, not text: reads and writes of the name as \
                     text do not reach it"
                );
                unreadable.push((row.key, reason));
                continue;
            }
            match String::from_utf8(row.key) {
                Ok(key) => {
                    entries.insert(key, row.value);
                }
                Err(e) => {
                    let reason = format!("the name is not UTF-8 ({})", e.utf8_error());
                    unreadable.push((e.into_bytes(), reason));
                }
            }
        }
        let mut durables = Durables::new(entries, stamp);
        durables.unreadable = unreadable;
        Ok(durables)
    };
    match stamp.sql {
        Some(_) => c.snapshot_tx(read),
        // One statement is its own snapshot.
        None => read(c),
    }
}

pub(crate) fn get<C: Db>(
    c: &mut C,
    data: &DataSql,
    key: &str,
) -> Result<Option<Vec<u8>>, SqlError> {
    Ok(c.value(Stmt::new(&data.select_one, &[Bind::Text(key)]))?)
}

pub(crate) fn persist<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
    key: &str,
    value: &[u8],
) -> Result<Done<()>, SqlError> {
    c.write_tx(|c| {
        c.exec(Stmt::new(
            &data.upsert,
            &[Bind::Text(key), Bind::Bytes(value)],
        ))?;
        changed(c, stamp, ())
    })
}

pub(crate) fn depersist<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
    key: &str,
) -> Result<Done<()>, SqlError> {
    c.write_tx(
        |c| match c.exec(Stmt::new(&data.delete_one, &[Bind::Text(key)]))? {
            0 => Ok(Done::unchanged(())),
            _ => changed(c, stamp, ()),
        },
    )
}

pub(crate) fn pop<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
    key: &str,
) -> Result<Done<Option<Vec<u8>>>, SqlError> {
    c.write_tx(|c| {
        let binds = [Bind::Text(key)];
        let Some(value) = c.value(Stmt::new(&data.select_one_locked, &binds))? else {
            return Ok(Done::unchanged(None));
        };
        c.exec(Stmt::new(&data.delete_one, &binds))?;
        changed(c, stamp, Some(value))
    })
}

/// Inserts when absent; returns the existing value, `None` when it inserted. Two
/// transactions inserting the same absent key at once: one fails on the unique key, is
/// retried by the pool, and then finds the other's value.
pub(crate) fn setdefault<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
    key: &str,
    value: &[u8],
) -> Result<Done<Option<Vec<u8>>>, SqlError> {
    c.write_tx(|c| {
        if let Some(existing) = c.value(Stmt::new(&data.select_one_locked, &[Bind::Text(key)]))? {
            return Ok(Done::unchanged(Some(existing)));
        }
        c.exec(Stmt::new(
            &data.insert,
            &[Bind::Text(key), Bind::Bytes(value)],
        ))?;
        changed(c, stamp, None)
    })
}

/// Writes a batch in key order (so that two batches never wait for each other's rows in
/// opposite orders), the last value of a repeated key winning.
pub(crate) fn persist_many<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
    entries: &[(&str, &[u8])],
) -> Result<Done<()>, SqlError> {
    let batch: BTreeMap<&str, &[u8]> = entries.iter().copied().collect();
    c.write_tx(|c| {
        for (key, value) in &batch {
            c.exec(Stmt::new(
                &data.upsert,
                &[Bind::Text(key), Bind::Bytes(value)],
            ))
            .map_err(|e| SqlError::Entry {
                key: (*key).to_owned(),
                source: Box::new(e.into()),
            })?;
        }
        changed(c, stamp, ())
    })
}

pub(crate) fn clear<C: Db>(
    c: &mut C,
    data: &DataSql,
    stamp: StampRow<'_>,
) -> Result<Done<()>, SqlError> {
    c.write_tx(|c| match c.exec(Stmt::new(&data.delete_all, &[]))? {
        0 => Ok(Done::unchanged(())),
        _ => changed(c, stamp, ()),
    })
}

/// Drops the data table and deletes the stamp row: in one transaction where DDL is
/// transactional (SQLite, PostgreSQL), so that a statement that fails (a role that may drop the
/// table but not delete from the stamps table) leaves the keyspace whole. Done in two steps,
/// the table was gone with its stamp unchanged and no notice sent: every dict, under any
/// policy, kept serving what it held. MySQL commits each DDL statement on its own.
pub(crate) fn drop_keyspace<C: Db>(
    c: &mut C,
    table: &TableSql,
    stamp: StampRow<'_>,
) -> Result<(), SqlError> {
    let statements = |c: &mut C| -> Result<(), SqlError> {
        c.exec(Stmt::new(&table.drop, &[]))?;
        if let Some(sql) = stamp.sql {
            c.exec(Stmt::new(&sql.create_table, &[]))?;
            c.exec(Stmt::new(&sql.delete, &[Bind::Text(stamp.keyspace)]))?;
        }
        Ok(())
    };
    match C::BACKEND {
        Backend::Mysql => statements(c),
        Backend::Sqlite | Backend::Postgres => c.write_tx(statements),
    }
}
