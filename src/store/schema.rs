//! Numbered schema migrations, one list per backend (see [`super::db::sqlite`] and
//! [`super::db::postgres`]), run when the store is opened read-write.

use super::db::{self, Conn};
use super::StoreError;

/// The SQLite schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = db::sqlite::MIGRATIONS.len() as u32;

/// The PostgreSQL schema version this build writes and understands.
pub const PG_SCHEMA_VERSION: u32 = db::postgres::MIGRATIONS.len() as u32;

/// Brings the schema up to date in one transaction; returns how many migrations ran.
/// Concurrent openers (two servers starting at once) serialise, and the second one
/// then finds the new version and does nothing.
pub(crate) fn migrate(conn: &mut Conn) -> Result<u32, StoreError> {
    let (found, ran, supported) = match conn {
        Conn::Sqlite(c) => {
            let (found, ran) = db::sqlite::migrate(c)
                .map_err(|(version, source)| StoreError::Migration { version, source })?;
            (found, ran, SCHEMA_VERSION)
        }
        Conn::Postgres(c) => {
            let (found, ran) = db::postgres::migrate(c)
                .map_err(|source| StoreError::Migration { version: 0, source })?;
            (found, ran, PG_SCHEMA_VERSION)
        }
    };
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(ran)
}

/// For read-only openers, which must not migrate: the schema must be there and not newer.
pub(crate) fn check(conn: &Conn) -> Result<(), StoreError> {
    let (found, supported) = match conn {
        Conn::Sqlite(c) => (db::sqlite::user_version(c)?, SCHEMA_VERSION),
        Conn::Postgres(c) => (db::postgres::version(c)?.unwrap_or(0), PG_SCHEMA_VERSION),
    };
    match found {
        0 => Err(StoreError::NoSchema),
        v if v > supported => Err(StoreError::SchemaTooNew {
            found: v,
            supported,
        }),
        _ => Ok(()),
    }
}
