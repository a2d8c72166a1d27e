//! `rlm-rust migrate-store`: a SQLite store copied into an empty PostgreSQL one,
//! table by table in one transaction (both at the current schema).

use std::path::Path;

use rusqlite::types::ValueRef;

use super::db::value::NullType;
use super::db::{Conn, Location, Value};
use super::{open_writer, StoreError, StoreOptions};

/// Rows copied per table, in copy order.
pub type CopyReport = Vec<(String, u64)>;

/// Tables the schema fills itself (one row), not copied.
const SEEDED: &[&str] = &["policy_revision"];

/// Copies every table of the SQLite store at `from` into the (new or empty)
/// PostgreSQL store at `to`. Both are migrated to the current schema first. Nothing
/// is written unless all of it is.
pub fn sqlite_to_postgres(from: &Path, to: &Location) -> Result<CopyReport, StoreError> {
    let src = match open_writer(
        &Location::Sqlite(from.to_path_buf()),
        &StoreOptions::default(),
    )? {
        Conn::Sqlite(c) => c,
        Conn::Postgres(_) => unreachable!("a SQLite location"),
    };
    if to.backend() != super::Backend::Postgres {
        return Err(StoreError::Rejected(
            "--to must be a PostgreSQL database".into(),
        ));
    }
    let dst = open_writer(to, &StoreOptions::default())?;
    let tables: Vec<String> = src
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY rowid",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let tables: Vec<String> = tables
        .into_iter()
        .filter(|t| !SEEDED.contains(&t.as_str()))
        .collect();
    for t in &tables {
        // presence_check is filled by the sessions' triggers as they are copied.
        if t == "presence_check" {
            continue;
        }
        let n: i64 = dst.query_row(&format!("SELECT COUNT(*) FROM {t}"), (), |r| r.get(0))?;
        if n > 0 {
            return Err(StoreError::Rejected(format!(
                "the PostgreSQL store is not empty (table {t} has {n} rows); copy into a new database"
            )));
        }
    }
    let tx = dst.transaction()?;
    let mut report = Vec::new();
    for t in &tables {
        // (name, declared type); presence_check's rowid is implicit in SQLite.
        let mut cols: Vec<(String, String)> = src
            .prepare(&format!(
                "SELECT name, type FROM pragma_table_info('{t}') ORDER BY cid"
            ))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        if t == "presence_check" {
            cols.insert(0, ("rowid".into(), "INTEGER".into()));
        }
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!("SELECT {} FROM {t}", names.join(", "));
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let insert = format!(
            "INSERT INTO {t} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
            names.join(", "),
            marks.join(", ")
        );
        let mut stmt = src.prepare(&select)?;
        let mut rows = stmt.query([])?;
        let mut n = 0u64;
        while let Some(r) = rows.next()? {
            // Names as their escaped form (see crate::names): PostgreSQL's TEXT is UTF-8.
            let texts: Vec<Option<String>> = (0..cols.len())
                .map(|i| match r.get_ref(i)? {
                    ValueRef::Text(b) | ValueRef::Blob(b) => Ok(Some(crate::names::decode(b))),
                    _ => Ok(None),
                })
                .collect::<rusqlite::Result<_>>()?;
            let values: Vec<Value<'_>> = cols
                .iter()
                .zip(&texts)
                .enumerate()
                .map(|(i, ((_, ty), text))| {
                    Ok(match (text, r.get_ref(i)?) {
                        (Some(t), _) => Value::Text(t),
                        (None, ValueRef::Integer(v)) => Value::Int(v),
                        (None, ValueRef::Real(v)) => Value::Real(v),
                        (None, _) => Value::Null(null_type(ty)),
                    })
                })
                .collect::<rusqlite::Result<_>>()?;
            tx.execute(&insert, values)?;
            n += 1;
        }
        if names.contains(&"id") || t == "presence_check" {
            let col = if t == "presence_check" { "rowid" } else { "id" };
            tx.query_row(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{col}'), \
                     COALESCE((SELECT MAX({col}) FROM {t}), 0) + 1, false)"
                ),
                (),
                |_| Ok(()),
            )?;
        }
        report.push((t.clone(), n));
    }
    tx.commit()?;
    Ok(report)
}

fn null_type(declared: &str) -> NullType {
    match declared.to_ascii_uppercase().as_str() {
        t if t.contains("INT") => NullType::Int,
        t if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") => NullType::Real,
        t if t.contains("BLOB") => NullType::Blob,
        _ => NullType::Text,
    }
}
