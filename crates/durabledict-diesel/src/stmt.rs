//! [`Stmt`]: SQL text built once per store, with bound parameters, that diesel may keep
//! prepared.
//!
//! diesel's `sql_query` marks itself unsafe to cache, so every call would prepare the
//! statement again (an extra round trip on PostgreSQL and MySQL). The SQL here comes from a
//! small fixed set per store (identifiers validated and quoted, values always bound), so
//! caching it by its text is safe and bounded.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Binary, HasSqlType, Text, Untyped};

/// One bound parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Bind<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
    Int(i64),
}

/// A statement: an SQL template whose every `?` is a parameter, and the parameters in order.
/// Templates never hold a literal `?`: identifiers are validated and values are bound.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stmt<'a> {
    sql: &'a str,
    binds: &'a [Bind<'a>],
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(sql: &'a str, binds: &'a [Bind<'a>]) -> Self {
        Stmt { sql, binds }
    }
}

impl<DB> QueryFragment<DB> for Stmt<'_>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Binary> + HasSqlType<BigInt>,
    str: ToSql<Text, DB>,
    [u8]: ToSql<Binary, DB>,
    i64: ToSql<BigInt, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // The backend writes its own placeholder (`$n` or `?`) at each `?` of the template.
        let mut parts = self.sql.split('?');
        if let Some(first) = parts.next() {
            out.push_sql(first);
        }
        let mut binds = self.binds.iter();
        for part in parts {
            match binds.next() {
                Some(Bind::Text(s)) => out.push_bind_param::<Text, str>(s)?,
                Some(Bind::Bytes(b)) => out.push_bind_param::<Binary, [u8]>(b)?,
                Some(Bind::Int(i)) => out.push_bind_param::<BigInt, i64>(i)?,
                None => {
                    return Err(diesel::result::Error::QueryBuilderError(
                        format!(
                            "statement has more placeholders than parameters: {}",
                            self.sql
                        )
                        .into(),
                    ));
                }
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl QueryId for Stmt<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Stmt<'_> {
    type SqlType = Untyped;
}

impl<Conn> RunQueryDsl<Conn> for Stmt<'_> {}

/// The stamp check, the one statement on the hot path of every `Always` read: a typed query
/// (one `BIGINT` column, read by position) that diesel keeps prepared under its type, so a
/// check neither renders its SQL nor looks it up by text.
///
/// Keying the cache by type is sound because a connection belongs to one store's pool, and a
/// store has exactly one stamp `SELECT` text (the keyspace is a parameter).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StampSelect<'a> {
    /// The statement up to its one parameter, the keyspace, which ends it.
    prefix: &'a str,
    keyspace: &'a str,
}

impl<'a> StampSelect<'a> {
    /// `sql` ends with its only parameter, `?`.
    pub(crate) fn new(sql: &'a str, keyspace: &'a str) -> Self {
        StampSelect {
            prefix: sql.strip_suffix('?').unwrap_or(sql),
            keyspace,
        }
    }
}

impl<DB> QueryFragment<DB> for StampSelect<'_>
where
    DB: Backend + HasSqlType<Text>,
    str: ToSql<Text, DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        out.push_bind_param::<Text, str>(self.keyspace)
    }
}

/// The cache key of [`StampSelect`].
#[derive(Debug)]
pub(crate) struct StampSelectId;

impl QueryId for StampSelect<'_> {
    type QueryId = StampSelectId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for StampSelect<'_> {
    type SqlType = BigInt;
}

impl<Conn> RunQueryDsl<Conn> for StampSelect<'_> {}
