//! One connection type over both backends, shaped like rusqlite's (which the store
//! was first written against), so the store's SQL and its row mapping are written
//! once. Each backend lives in its own module: how it connects, its migrations, and
//! the few statements whose dialects differ ([`Conn::backend`] picks them).
//!
//! SQL is written with `?N` placeholders (PostgreSQL gets `$N`) in the subset both
//! engines share: `ON CONFLICT`, `RETURNING`, `CASE` instead of SQLite's two-argument
//! `MIN`/`MAX`, `CAST(.. AS BIGINT)`.

pub(crate) mod postgres;
pub(crate) mod sqlite;
pub(crate) mod value;

use std::path::{Path, PathBuf};

pub(crate) use value::{Count, FromDb, NameCol, NullKind, ToValue, Value};

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the store is: a SQLite file, or a PostgreSQL server (from the `db` option
/// or `--db`: a `postgresql://` URL or libpq-style `key=value` words).
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(postgres::Target),
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Location {
    /// Never shows a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Sqlite(p) => write!(f, "{}", p.display()),
            Location::Postgres(t) => write!(f, "{t}"),
        }
    }
}

impl Location {
    /// A PostgreSQL connection string if it looks like one, else a SQLite path.
    pub fn parse(s: impl AsRef<Path>) -> Result<Location, String> {
        let p = s.as_ref();
        match p.to_str() {
            Some(s) if postgres::looks_like(s) => {
                Ok(Location::Postgres(postgres::Target::parse(s)?))
            }
            _ => Ok(Location::Sqlite(p.to_path_buf())),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Location::Sqlite(_) => Backend::Sqlite,
            Location::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite file, if this is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }
}

/// Errors of a backend, before the store gives them meaning.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {index}: {message}")]
    Column { index: usize, message: String },
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// A deadlock or serialisation failure: the whole transaction may be tried again.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            DbError::Postgres(e) => postgres::is_retryable(e),
            _ => false,
        }
    }

    /// A lock held elsewhere outlasted the wait (SQLite's busy, PostgreSQL's
    /// lock_timeout): the rest of the batch would wait as long.
    pub(crate) fn is_busy(&self) -> bool {
        match self {
            DbError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::LOCK_NOT_AVAILABLE)
            }
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            _ => false,
        }
    }

    /// The server or the connection to it is gone (PostgreSQL), or the file cannot
    /// be written at all (SQLite: disk full, read-only, I/O error, corrupt): not a
    /// bad statement, and every other write fails the same way until it is fixed.
    pub(crate) fn is_connection(&self) -> bool {
        match self {
            DbError::Postgres(e) => postgres::is_connection(e),
            DbError::Sqlite(e) => sqlite::is_storage_fault(e),
            _ => false,
        }
    }
}

pub(crate) type DbResult<T> = Result<T, DbError>;

/// rusqlite's `.optional()`, for our errors.
pub(crate) trait OptionalExtension<T> {
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) | Err(DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// A statement's parameters: `params![a, b]`, `[a]`, `()`.
pub(crate) trait Params {
    fn values(&self) -> Vec<Value<'_>>;
}

impl Params for () {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

impl<T: ToValue> Params for Vec<T> {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

/// Like rusqlite's `params!`: each argument by reference.
macro_rules! params {
    () => { () };
    ($($x:expr),+ $(,)?) => {
        [$(&$x as &dyn $crate::store::db::ToValue),+]
    };
}
pub(crate) use params;

/// A column's position (a trait so that `r.get(0)` infers `usize`, as in rusqlite).
pub(crate) trait ColIndex {
    fn index(self) -> usize;
}

impl ColIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One result row.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a ::postgres::Row),
}

impl Row<'_> {
    pub(crate) fn is_null(&self, i: usize) -> DbResult<bool> {
        match self {
            Row::Sqlite(r) => Ok(r.get_ref(i)? == rusqlite::types::ValueRef::Null),
            Row::Postgres(r) => Ok(value::is_null(r, i)),
        }
    }

    pub(crate) fn get<I: ColIndex, T: FromDb>(&self, index: I) -> DbResult<T> {
        let i = index.index();
        match self {
            Row::Sqlite(r) => T::from_sqlite(r, i),
            Row::Postgres(r) => T::from_postgres(r, i),
        }
    }
}

/// A connection to either backend. Not shared between threads (like rusqlite's).
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::PgConn),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conn::Sqlite(_) => "Conn::Sqlite",
            Conn::Postgres(_) => "Conn::Postgres",
        })
    }
}

impl Conn {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (PRAGMAs).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres(_) => None,
        }
    }

    /// A statement, prepared once per connection (SQLite's statement cache; on
    /// PostgreSQL a named statement per SQL text and parameter types).
    pub(crate) fn prepare_cached(&self, sql: &str) -> DbResult<Stmt<'_>> {
        match self {
            Conn::Sqlite(c) => Ok(Stmt::Sqlite(c.prepare_cached(sql)?)),
            Conn::Postgres(c) => Ok(Stmt::Postgres(c, sql.to_string())),
        }
    }

    /// Same as [`Conn::prepare_cached`] (for statements whose text varies).
    pub(crate) fn prepare(&self, sql: &str) -> DbResult<Stmt<'_>> {
        match self {
            Conn::Sqlite(c) => Ok(Stmt::SqliteOnce(c.prepare(sql)?)),
            Conn::Postgres(c) => Ok(Stmt::Postgres(c, sql.to_string())),
        }
    }

    pub(crate) fn execute(&self, sql: &str, params: impl Params) -> DbResult<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Several statements without parameters (DDL, tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => c.batch(sql),
        }
    }

    /// No transaction is open (SQLite also rolls one back by itself on some errors).
    pub(crate) fn is_autocommit(&self) -> bool {
        match self {
            Conn::Sqlite(c) => c.is_autocommit(),
            Conn::Postgres(c) => !c.in_transaction(),
        }
    }

    /// The server closed the connection (PostgreSQL); it is not worth reusing.
    pub(crate) fn is_broken(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.is_closed(),
        }
    }

    /// BEGIN (SQLite: IMMEDIATE, taking the write lock now, waiting up to the busy
    /// timeout: a deferred transaction that reads first and then writes gets
    /// "database is locked" at once when another connection committed in between);
    /// rolled back on drop unless committed.
    pub(crate) fn transaction(&self) -> DbResult<Tx<'_>> {
        match self {
            Conn::Sqlite(c) => {
                c.prepare_cached("BEGIN IMMEDIATE")?.execute(())?;
            }
            Conn::Postgres(c) => c.begin()?,
        }
        Ok(Tx {
            conn: self,
            done: false,
        })
    }

    /// A read transaction, ended on drop. SQLite: one WAL read lock and one view for
    /// the reads, begun through a cached statement (rusqlite's transactions parse
    /// BEGIN / ROLLBACK anew each time, which shows on the login path). PostgreSQL
    /// reads each statement's committed state anyway (READ COMMITTED): no
    /// transaction, two round trips less per login.
    pub(crate) fn read_transaction(&self) -> DbResult<ReadTx<'_>> {
        match self {
            Conn::Sqlite(c) => {
                c.prepare_cached("BEGIN")?.execute(())?;
                Ok(ReadTx(Some(c)))
            }
            Conn::Postgres(_) => Ok(ReadTx(None)),
        }
    }

    pub(crate) fn commit(&self) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => {
                c.prepare_cached("COMMIT")?.execute(())?;
                Ok(())
            }
            Conn::Postgres(c) => c.commit(),
        }
    }

    pub(crate) fn rollback(&self) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => {
                if !c.is_autocommit() {
                    c.prepare_cached("ROLLBACK")?.execute(())?;
                }
                Ok(())
            }
            Conn::Postgres(c) => c.rollback(),
        }
    }

    /// Whether [`crate::store`]'s savepoints are taken (always on SQLite). The
    /// PostgreSQL writer runs a batch without them first (two round trips less per
    /// item) and again with them only when an item failed.
    pub(crate) fn savepoints(&self) -> bool {
        match self {
            Conn::Sqlite(_) => true,
            Conn::Postgres(c) => c.savepoints.get(),
        }
    }

    pub(crate) fn set_savepoints(&self, on: bool) {
        if let Conn::Postgres(c) = self {
            c.savepoints.set(on);
        }
    }

    /// A statement of the open transaction failed and PostgreSQL ignores the rest.
    pub(crate) fn tx_failed(&self) -> bool {
        match self {
            Conn::Sqlite(_) => false,
            Conn::Postgres(c) => c.failed(),
        }
    }

    /// `FOR UPDATE SKIP LOCKED` where rows can be claimed by several servers.
    pub(crate) fn skip_locked(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// An open transaction; derefs to its connection.
pub(crate) struct Tx<'c> {
    conn: &'c Conn,
    done: bool,
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> DbResult<()> {
        self.done = true;
        self.conn.commit()
    }
}

/// See [`Conn::read_transaction`].
pub(crate) struct ReadTx<'c>(Option<&'c rusqlite::Connection>);

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        let Some(c) = self.0 else {
            return;
        };
        if let Err(e) = c.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([])) {
            log::warn!("ending a read transaction: {e}");
        }
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.conn.rollback();
        }
    }
}

/// A prepared statement.
pub(crate) enum Stmt<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    SqliteOnce(rusqlite::Statement<'c>),
    Postgres(&'c postgres::PgConn, String),
}

impl Stmt<'_> {
    pub(crate) fn execute(&mut self, params: impl Params) -> DbResult<usize> {
        let values = params.values();
        let args = rusqlite::params_from_iter(values.iter());
        Ok(match self {
            Stmt::Postgres(c, sql) => return c.execute(sql, &values),
            Stmt::Sqlite(s) => s.execute(args)?,
            Stmt::SqliteOnce(s) => s.execute(args)?,
        })
    }

    pub(crate) fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<T> {
        let values = params.values();
        let args = rusqlite::params_from_iter(values.iter());
        let mut rows = match self {
            Stmt::Postgres(c, sql) => {
                let rows = c.query(sql, &values)?;
                return match rows.first() {
                    Some(r) => f(&Row::Postgres(r)),
                    None => Err(DbError::NoRows),
                };
            }
            Stmt::Sqlite(s) => s.query(args)?,
            Stmt::SqliteOnce(s) => s.query(args)?,
        };
        match rows.next()? {
            Some(r) => f(&Row::Sqlite(r)),
            None => Err(DbError::NoRows),
        }
    }

    /// Every row, mapped; an iterator of results like rusqlite's (collected first).
    pub(crate) fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        let values = params.values();
        let args = rusqlite::params_from_iter(values.iter());
        let mut out = Vec::new();
        let mut rows = match self {
            Stmt::Postgres(c, sql) => {
                for r in c.query(sql, &values)? {
                    out.push(f(&Row::Postgres(&r)));
                }
                return Ok(out.into_iter());
            }
            Stmt::Sqlite(s) => s.query(args)?,
            Stmt::SqliteOnce(s) => s.query(args)?,
        };
        while let Some(r) = rows.next()? {
            out.push(f(&Row::Sqlite(r)));
        }
        Ok(out.into_iter())
    }
}

/// `?N` (and bare `?`) placeholders to PostgreSQL's `$N`, outside quoted text.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut next = 0u32;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    out.push(c);
                }
                '?' => {
                    let mut digits = String::new();
                    while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                        digits.push(*d);
                        chars.next();
                    }
                    out.push('$');
                    if digits.is_empty() {
                        next += 1;
                        out.push_str(&next.to_string());
                    } else {
                        next = next.max(digits.parse().unwrap_or(0));
                        out.push_str(&digits);
                    }
                }
                _ => out.push(c),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for (sqlite, pg) in [
            ("SELECT ?1, ?2", "SELECT $1, $2"),
            ("a = ? AND b = ?", "a = $1 AND b = $2"),
            ("x = '?1' AND y = ?10", "x = '?1' AND y = $10"),
            ("\"q?\" = ?3", "\"q?\" = $3"),
            ("no params", "no params"),
            ("it''s ?1", "it''s $1"),
        ] {
            assert_eq!(dollar_placeholders(sqlite), pg, "{sqlite}");
        }
    }

    #[test]
    fn locations() {
        assert_eq!(
            Location::parse("/var/lib/x.sqlite").unwrap().backend(),
            Backend::Sqlite
        );
        assert_eq!(
            Location::parse("rel.db").unwrap().backend(),
            Backend::Sqlite
        );
        for s in [
            "postgresql://rlm@db.example/rlm",
            "postgres://rlm:pw@127.0.0.1:5433/rlm",
            "host=127.0.0.1 dbname=rlm user=rlm",
        ] {
            let l = Location::parse(s).unwrap();
            assert_eq!(l.backend(), Backend::Postgres, "{s}");
            assert!(!l.to_string().contains("pw"), "{l}");
        }
    }
}
