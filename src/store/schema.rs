//! Numbered schema migrations, embedded in the binary and tracked in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`. Append only: never edit a shipped one.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_disconnect.sql"),
    include_str!("migrations/0003_capping.sql"),
    include_str!("migrations/0004_open_by_user.sql"),
    include_str!("migrations/0005_sessions_by_user.sql"),
    include_str!("migrations/0006_counter_wrap.sql"),
    include_str!("migrations/0007_usage_marks.sql"),
    include_str!("migrations/0008_unconfirmed.sql"),
    include_str!("migrations/0009_policies.sql"),
    include_str!("migrations/0010_nas_timezone.sql"),
    include_str!("migrations/0011_modulation.sql"),
    include_str!("migrations/0012_policy_revision.sql"),
    include_str!("migrations/0013_services_states.sql"),
];

/// The schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

fn user_version(conn: &Connection) -> Result<u32, rusqlite::Error> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Brings the schema up to [`SCHEMA_VERSION`] in one transaction; returns how many
/// migrations ran. Concurrent openers serialize on the IMMEDIATE lock, and the
/// second one then sees the new version and does nothing.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = user_version(&tx)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)
            .map_err(|source| StoreError::Migration {
                version: i as u32 + 1,
                source,
            })?;
        log::info!("store: applied schema migration {}", i + 1);
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(SCHEMA_VERSION - current)
}

/// For read-only openers, which must not migrate: the schema must be there and not newer.
pub(crate) fn check(conn: &Connection) -> Result<(), StoreError> {
    match user_version(conn)? {
        0 => Err(StoreError::NoSchema),
        v if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}
