//! The embedded SQLite backend: WAL files, its PRAGMAs, and its numbered migrations
//! tracked in `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::DbError;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`. Append only: never edit a shipped one.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_disconnect.sql"),
    include_str!("../migrations/sqlite/0003_capping.sql"),
    include_str!("../migrations/sqlite/0004_open_by_user.sql"),
    include_str!("../migrations/sqlite/0005_sessions_by_user.sql"),
    include_str!("../migrations/sqlite/0006_counter_wrap.sql"),
    include_str!("../migrations/sqlite/0007_usage_marks.sql"),
    include_str!("../migrations/sqlite/0008_unconfirmed.sql"),
    include_str!("../migrations/sqlite/0009_policies.sql"),
    include_str!("../migrations/sqlite/0010_nas_timezone.sql"),
    include_str!("../migrations/sqlite/0011_modulation.sql"),
    include_str!("../migrations/sqlite/0012_policy_revision.sql"),
    include_str!("../migrations/sqlite/0013_services_states.sql"),
    include_str!("../migrations/sqlite/0014_shared_queues.sql"),
    include_str!("../migrations/sqlite/0015_console.sql"),
    include_str!("../migrations/sqlite/0016_api_ca.sql"),
];

/// The write connection: WAL (readers never block it), `synchronous` as configured.
pub(crate) fn open_writer(
    path: &Path,
    busy_timeout: Duration,
    full_sync: bool,
) -> Result<Connection, (DbError, Option<String>)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| (e.into(), None))?;
    let setup = || -> rusqlite::Result<Option<String>> {
        conn.busy_timeout(busy_timeout)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Some(mode));
        }
        conn.pragma_update(
            None,
            "synchronous",
            if full_sync { "FULL" } else { "NORMAL" },
        )?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(None)
    };
    match setup() {
        Ok(None) => Ok(conn),
        Ok(Some(mode)) => Err((
            DbError::Other(format!("journal_mode is {mode}")),
            Some(mode),
        )),
        Err(e) => Err((e.into(), None)),
    }
}

/// A read-only connection.
pub(crate) fn open_reader(path: &Path, busy_timeout: Duration) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    // Up to MAX_IDLE_READERS of these live at once, and under a steady write load
    // each read transaction finds the database changed and starts from an empty
    // cache anyway: keep each cache small (256 KiB instead of 2 MiB).
    conn.pragma_update(None, "cache_size", -256)?;
    // No mmap_size: it reads pages in place (logins ~10 % faster in the bench),
    // but every page touched then counts in freeRADIUS's RSS, which grew by the
    // database's size over the memory run; operators watch RSS.
    Ok(conn)
}

pub(crate) fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Brings the schema up to date in one transaction; returns (version found,
/// migrations run), or the version found when it is newer than this build's.
/// Concurrent openers serialize on the IMMEDIATE lock, and the second one then
/// sees the new version and does nothing.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(u32, u32), (u32, DbError)> {
    let supported = MIGRATIONS.len() as u32;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| (0, e.into()))?;
    let current = user_version(&tx).map_err(|e| (0, e.into()))?;
    if current > supported {
        return Ok((current, 0));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)
            .map_err(|e| (i as u32 + 1, e.into()))?;
        log::info!("store: applied schema migration {}", i + 1);
    }
    tx.pragma_update(None, "user_version", supported)
        .map_err(|e| (0, e.into()))?;
    tx.commit().map_err(|e| (0, e.into()))?;
    Ok((current, supported - current))
}

/// `PRAGMA data_version`: changes when another connection commits (None: unknown).
pub(crate) fn data_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .ok()
}

/// The file, its directory or the disk refuses writes (as opposed to one bad
/// statement): full, read-only, I/O error, corrupt, not a database, cannot open.
pub(crate) fn is_storage_fault(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(DiskFull | ReadOnly | SystemIoFailure | DatabaseCorrupt | NotADatabase | CannotOpen)
    )
}

/// Opens an existing store read-only and reads its header and schema: fails on a
/// file that is not a database or is damaged where SQLite looks first.
pub(crate) fn check_file(path: &Path) -> Result<u32, DbError> {
    let conn = open_reader(path, Duration::from_secs(5))?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(user_version(&conn)?)
}
