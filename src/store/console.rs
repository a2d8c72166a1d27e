//! What the operator console keeps and asks: operators and their login sessions,
//! and the counts its screens and `/metrics` show.

use std::collections::BTreeMap;

use super::db::{params, Conn as Connection, OptionalExtension};
use super::{Admin, Reader, StoreError};

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything the console offers.
    Admin,
    /// Every screen, no change.
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" | "read-only" | "readonly" => Ok(Role::Viewer),
            _ => Err(format!("role must be admin or viewer, not {s:?}")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OperatorRow {
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub role: Role,
    pub created: i64,
    pub updated: i64,
}

/// A logged-in console session, found by its token's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub operator: String,
    pub role: Role,
    pub csrf: String,
    pub expires: i64,
}

/// Jobs of one queue in one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueCount {
    pub queue: &'static str,
    pub state: String,
    pub jobs: u64,
}

/// Open sessions of a NAS: all, and those that started before a boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NasSessionCounts {
    pub open: u64,
    pub open_before: u64,
}

fn role_of(s: &str) -> Result<Role, super::db::DbError> {
    s.parse()
        .map_err(|e: String| super::db::DbError::Other(format!("operators.role: {e}")))
}

fn operator_row(r: &super::db::Row<'_>) -> super::db::DbResult<OperatorRow> {
    Ok(OperatorRow {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        role: role_of(&r.get::<_, String>(2)?)?,
        created: r.get(3)?,
        updated: r.get(4)?,
    })
}

const OPERATOR_COLUMNS: &str = "name, password_hash, role, created, updated";

fn operator_get(conn: &Connection, name: &str) -> Result<Option<OperatorRow>, StoreError> {
    Ok(conn
        .query_row(
            &format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE name = ?1"),
            [name],
            operator_row,
        )
        .optional()?)
}

fn operator_list(conn: &Connection) -> Result<Vec<OperatorRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY name"
    ))?;
    let rows = stmt.query_map((), operator_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn queue_counts(conn: &Connection) -> Result<Vec<QueueCount>, StoreError> {
    let outbox = format!(
        "SELECT CASE WHEN sent_at IS NOT NULL THEN 'sent' WHEN next_attempt_at = {} THEN 'failed' \
           ELSE 'pending' END, COUNT(*) FROM notification_outbox GROUP BY 1",
        super::NEVER
    );
    let queries: [(&'static str, &str); 5] = [
        ("notification", &outbox),
        ("disconnect", "SELECT state, COUNT(*) FROM disconnect_queue GROUP BY state"),
        ("coa", "SELECT state, COUNT(*) FROM coa_queue GROUP BY state"),
        ("nas_action", "SELECT state, COUNT(*) FROM nas_actions GROUP BY state"),
        (
            "hook",
            "SELECT hook_state, COUNT(*) FROM events WHERE hook_state <> 'none' GROUP BY hook_state",
        ),
    ];
    let _tx = conn.read_transaction()?;
    let mut out = Vec::new();
    for (queue, sql) in queries {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map((), |r| {
            Ok(QueueCount {
                queue,
                state: r.get(0)?,
                jobs: super::read::count(r, 1)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    out.sort_by(|a, b| (a.queue, &a.state).cmp(&(b.queue, &b.state)));
    Ok(out)
}

fn nas_session_counts(
    conn: &Connection,
    before: i64,
) -> Result<BTreeMap<String, NasSessionCounts>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT nas_ip, COUNT(*), SUM(CASE WHEN start_time < ?1 THEN 1 ELSE 0 END) \
         FROM sessions WHERE stop_time IS NULL GROUP BY nas_ip",
    )?;
    let rows = stmt.query_map([before], |r| {
        Ok((
            r.get::<_, String>(0)?,
            NasSessionCounts {
                open: super::read::count(r, 1)?,
                open_before: super::read::count(r, 2)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

impl Reader {
    /// Jobs per queue and state (disconnect, coa, nas_action, hook).
    pub fn queue_counts(&self) -> Result<Vec<QueueCount>, StoreError> {
        self.pool.with(queue_counts)
    }

    /// Open sessions per NAS IP, and how many of them started before `before`.
    pub fn nas_session_counts(
        &self,
        before: i64,
    ) -> Result<BTreeMap<String, NasSessionCounts>, StoreError> {
        self.pool.with(|c| nas_session_counts(c, before))
    }

    /// Sessions matching `filter`; the total without its limit and cursor too.
    pub fn count_sessions(&self, filter: &super::SessionFilter) -> Result<u64, StoreError> {
        self.pool.with(|c| super::read::count_sessions(c, filter))
    }

    pub fn operator_get(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        self.pool.with(|c| operator_get(c, name))
    }

    pub fn operator_list(&self) -> Result<Vec<OperatorRow>, StoreError> {
        self.pool.with(operator_list)
    }

    /// The unexpired session with this token hash, and its operator's current role.
    pub fn console_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        self.pool.with(|c| {
            let row = c
                .query_row(
                    "SELECT s.operator, o.role, s.csrf, s.expires FROM operator_sessions s \
                     JOIN operators o ON o.name = s.operator \
                     WHERE s.token_hash = ?1 AND s.expires > ?2",
                    params![token_hash, now],
                    |r| {
                        Ok(ConsoleSession {
                            operator: r.get(0)?,
                            role: role_of(&r.get::<_, String>(1)?)?,
                            csrf: r.get(2)?,
                            expires: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            Ok(row)
        })
    }
}

impl Admin {
    /// One session by its row id.
    pub fn session_by_id(&self, id: i64) -> Result<Option<super::SessionRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM sessions WHERE id = ?1",
                    super::read::SESSION_COLUMNS
                ),
                [id],
                super::read::session_row,
            )
            .optional()?)
    }

    pub fn operator_get(&self, name: &str) -> Result<Option<OperatorRow>, StoreError> {
        operator_get(&self.conn, name)
    }

    pub fn operator_list(&self) -> Result<Vec<OperatorRow>, StoreError> {
        operator_list(&self.conn)
    }

    /// Adds an operator; false if the name is taken.
    pub fn operator_add(
        &self,
        name: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO operators (name, password_hash, role, created, updated) \
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO NOTHING",
            params![name, password_hash, role.as_str(), now],
        )?;
        Ok(n > 0)
    }

    /// Changes an operator's password and/or role; logs their sessions out. False if
    /// there is no such operator.
    pub fn operator_update(
        &self,
        name: &str,
        password_hash: Option<&str>,
        role: Option<Role>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE operators SET password_hash = COALESCE(?2, password_hash), \
             role = COALESCE(?3, role), updated = ?4 WHERE name = ?1",
            params![name, password_hash, role.map(Role::as_str), now],
        )?;
        tx.execute("DELETE FROM operator_sessions WHERE operator = ?1", [name])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Removes an operator and their sessions; false if there is none.
    pub fn operator_remove(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM operator_sessions WHERE operator = ?1", [name])?;
        let n = tx.execute("DELETE FROM operators WHERE name = ?1", [name])?;
        tx.commit()?;
        Ok(n > 0)
    }

    /// Keeps a new console session; expired ones are dropped on the way.
    pub fn console_session_add(
        &self,
        token_hash: &str,
        operator: &str,
        csrf: &str,
        now: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM operator_sessions WHERE expires <= ?1", [now])?;
        tx.execute(
            "INSERT INTO operator_sessions (token_hash, operator, csrf, created, expires) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token_hash, operator, csrf, now, expires],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn console_session_remove(&self, token_hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM operator_sessions WHERE token_hash = ?1",
            [token_hash],
        )?;
        Ok(())
    }
}
