//! Control-list values of a user's last login (see [`crate::login_memory`]), kept
//! in the store so that accounting on any server, and after a restart, applies them.

use super::db::{params, Conn as Connection, OptionalExtension};
use super::read::Name;
use super::StoreError;

/// Which values: capping limits or policy fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    Limits,
    Policy,
}

impl ControlKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Limits => "limits",
            ControlKind::Policy => "policy",
        }
    }
}

/// Replaces (`vals` Some) or forgets (None) the user's values.
pub(crate) fn put(
    conn: &Connection,
    username: &str,
    kind: ControlKind,
    vals: Option<&str>,
    at: i64,
) -> Result<(), StoreError> {
    match vals {
        Some(v) => conn.execute(
            "INSERT INTO login_controls (username, kind, vals, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (username, kind) DO UPDATE SET vals = excluded.vals, at = excluded.at",
            params![Name::new(username), kind.as_str(), v, at],
        )?,
        None => conn.execute(
            "DELETE FROM login_controls WHERE username = ?1 AND kind = ?2",
            params![Name::new(username), kind.as_str()],
        )?,
    };
    Ok(())
}

/// The user's values and when they were kept.
pub(crate) fn get(
    conn: &Connection,
    username: &str,
    kind: ControlKind,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT vals, at FROM login_controls WHERE username = ?1 AND kind = ?2",
            params![Name::new(username), kind.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Whether any user has values of `kind` (most installations keep none: then
/// accounting reads nothing more).
pub(crate) fn any(conn: &Connection, kind: ControlKind) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM login_controls WHERE kind = ?1 LIMIT 1",
            params![kind.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}
