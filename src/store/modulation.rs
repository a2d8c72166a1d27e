//! Rate modulation and exhausted-user CoAs (migration 0011): hourly usage of
//! modulated users, the rate each modulated login was given, and the CoA queue the
//! background thread drains. See the migration for the why of each table.

use std::collections::HashSet;

use super::db::{params, Conn as Connection, DbResult, OptionalExtension, Row};

use super::read::{from_db, name, to_db, Name};
use super::{NewDisconnectJob, StoreError};
use crate::sessions::Usage;

/// Users whose stored policy modulates: their usage also goes into hour buckets.
/// Reloaded when another connection committed (the CLI assigning a policy) or a
/// policy op ran on the writer.
#[derive(Debug, Default)]
pub(crate) struct HourlyUsers {
    users: HashSet<String>,
    data_version: Option<i64>,
    dirty: bool,
    loaded: bool,
}

/// Users of a policy whose `modulation` is a curve (not `off`).
const MODULATED_USERS: &str = "SELECT u.username FROM policy_fields f \
     JOIN user_policies u ON u.policy = f.policy \
     WHERE f.field = 'modulation' AND lower(trim(f.value)) <> 'off'";

impl HourlyUsers {
    pub(crate) fn invalidate(&mut self) {
        self.dirty = true;
    }

    /// At the start of a batch (holding the write lock).
    /// `version`: the batch's `PRAGMA data_version` (read once for every cache).
    pub(crate) fn sync(&mut self, conn: &Connection, version: Option<i64>) {
        if self.loaded && !self.dirty && version.is_some() && version == self.data_version {
            return;
        }
        let loaded = conn.prepare_cached(MODULATED_USERS).and_then(|mut s| {
            s.query_map((), |r| name(r, 0))?
                .collect::<Result<HashSet<String>, _>>()
        });
        match loaded {
            Ok(users) => {
                self.users = users;
                self.loaded = true;
                self.dirty = false;
                self.data_version = version;
            }
            // Kept as they were; tried again at the next batch.
            Err(e) => log::error!("store: cannot read the modulated users: {e}"),
        }
    }

    pub(crate) fn contains(&self, username: &str) -> bool {
        self.users.contains(username)
    }
}

/// Adds an update's usage to the user's bucket of the hour containing `at`.
pub(crate) fn add_hour_usage(
    conn: &Connection,
    username: &str,
    at: i64,
    d: Usage,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO usage_hour (username, hour, input_octets, output_octets) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (username, hour) DO UPDATE SET \
         input_octets = CASE WHEN usage_hour.input_octets > 9223372036854775807 - excluded.input_octets THEN 9223372036854775807 ELSE usage_hour.input_octets + excluded.input_octets END, \
         output_octets = CASE WHEN usage_hour.output_octets > 9223372036854775807 - excluded.output_octets THEN 9223372036854775807 ELSE usage_hour.output_octets + excluded.output_octets END",
    )?
    .execute(params![
        Name::new(username),
        crate::policies::modulation::hour_start(at),
        to_db(d.input_octets),
        to_db(d.output_octets)
    ])?;
    Ok(())
}

/// `(hour start, down, up)` buckets of the user from `since` on (down = output).
pub(crate) fn hour_usage(
    conn: &Connection,
    username: &str,
    since: i64,
) -> Result<Vec<(i64, u64, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT hour, output_octets, input_octets FROM usage_hour \
         WHERE username = ?1 AND hour >= ?2 ORDER BY hour",
    )?;
    let rows = stmt
        .query_map(params![Name::new(username), since], |r| {
            Ok((r.get(0)?, from_db(r.get(1)?), from_db(r.get(2)?)))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn record_login_rate(
    conn: &Connection,
    username: &str,
    nas_ip: &str,
    rate_limit: Option<&str>,
    throttled: bool,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO policy_logins (username, nas_ip, rate_limit, throttled, at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (username, nas_ip) DO UPDATE SET \
         rate_limit = excluded.rate_limit, throttled = excluded.throttled, at = excluded.at",
    )?
    .execute(params![
        Name::new(username),
        nas_ip,
        rate_limit,
        throttled,
        now
    ])?;
    Ok(())
}

/// Why a CoA is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CoaPurpose {
    Modulation,
    Exhausted,
}

impl CoaPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            CoaPurpose::Modulation => "modulation",
            CoaPurpose::Exhausted => "exhausted",
        }
    }
}

/// A CoA to queue for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoaJob {
    pub session: NewDisconnectJob,
    pub purpose: CoaPurpose,
    pub rate_limit: Option<String>,
    pub address_list: Option<String>,
}

/// A stored CoA job.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CoaJob {
    pub id: i64,
    pub nas_ip: String,
    pub session_key: String,
    pub username: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub session_start: i64,
    pub purpose: String,
    pub rate_limit: Option<String>,
    pub address_list: Option<String>,
    pub reason: String,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub error_cause: Option<u32>,
    pub created: i64,
    pub updated: i64,
}

const COA_COLUMNS: &str = "id, nas_ip, session_key, username, acct_session_id, framed_ip, \
     session_start, purpose, rate_limit, address_list, reason, state, attempts, last_error, \
     error_cause, created, updated";

fn coa_row(r: &Row<'_>) -> DbResult<CoaJob> {
    Ok(CoaJob {
        id: r.get(0)?,
        nas_ip: r.get(1)?,
        session_key: name(r, 2)?,
        username: name(r, 3)?,
        acct_session_id: name(r, 4)?,
        framed_ip: r.get(5)?,
        session_start: r.get(6)?,
        purpose: r.get(7)?,
        rate_limit: r.get(8)?,
        address_list: r.get(9)?,
        reason: r.get(10)?,
        state: r.get(11)?,
        attempts: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(0),
        last_error: r.get(13)?,
        error_cause: r
            .get::<_, Option<i64>>(14)?
            .and_then(|v| u32::try_from(v).ok()),
        created: r.get(15)?,
        updated: r.get(16)?,
    })
}

/// Queues a CoA. `exhausted`: once per session (a later update over the limit finds
/// it queued or sent and adds nothing); `modulation`: the session's row takes the
/// new rate and is due again. True when something is due to be sent.
pub(crate) fn enqueue_coa(
    conn: &Connection,
    job: &NewCoaJob,
    reason: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let on_conflict = match job.purpose {
        CoaPurpose::Exhausted => "DO NOTHING",
        CoaPurpose::Modulation => {
            "DO UPDATE SET rate_limit = excluded.rate_limit, \
             address_list = excluded.address_list, reason = excluded.reason, \
             state = 'pending', attempts = 0, last_error = NULL, error_cause = NULL, \
             next_attempt_at = 0, \
             acct_session_id = excluded.acct_session_id, framed_ip = excluded.framed_ip, \
             updated = excluded.updated"
        }
    };
    let s = &job.session;
    let n = conn
        .prepare_cached(&format!(
            "INSERT INTO coa_queue (nas_ip, session_key, username, acct_session_id, framed_ip, \
               session_start, purpose, rate_limit, address_list, reason, state, created, updated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?11) \
             ON CONFLICT (nas_ip, session_key, purpose) {on_conflict}"
        ))?
        .execute(params![
            s.nas_ip,
            Name::new(&s.session_key),
            Name::new(&s.username),
            Name::new(&s.acct_session_id),
            s.framed_ip,
            s.session_start,
            job.purpose.as_str(),
            job.rate_limit,
            job.address_list,
            reason,
            now
        ])?;
    Ok(n > 0)
}

pub(crate) fn coa_list(conn: &Connection) -> Result<Vec<CoaJob>, StoreError> {
    let sql = format!("SELECT {COA_COLUMNS} FROM coa_queue ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map((), coa_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn coa_pending(conn: &Connection, limit: usize) -> Result<Vec<CoaJob>, StoreError> {
    let sql =
        format!("SELECT {COA_COLUMNS} FROM coa_queue WHERE state = 'pending' ORDER BY id LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], coa_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn coa_claim(
    conn: &Connection,
    now: i64,
    limit: usize,
    lease: super::Lease,
) -> Result<Vec<CoaJob>, StoreError> {
    super::queue::claim(
        conn,
        "coa_queue",
        COA_COLUMNS,
        "state = 'pending'",
        None,
        now,
        limit,
        lease,
        coa_row,
        |j| j.id,
    )
}

/// How a CoA ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoaOutcome {
    Acked,
    /// NAK, no answer or not sendable: the session is queued for disconnection with
    /// this reason instead.
    Fallback {
        error: String,
        error_cause: Option<u32>,
        disconnect: NewDisconnectJob,
    },
    /// The session sent Stop meanwhile: nothing to change.
    Gone,
}

/// Records a CoA's outcome (and queues the fallback disconnect), in the caller's
/// transaction.
pub(crate) fn coa_mark(
    conn: &Connection,
    id: i64,
    outcome: &CoaOutcome,
    now: i64,
) -> Result<(), StoreError> {
    match outcome {
        CoaOutcome::Acked | CoaOutcome::Gone => {
            conn.prepare_cached(
                "UPDATE coa_queue SET state = 'acked', attempts = attempts + 1, \
                 last_error = ?3, updated = ?2 WHERE id = ?1",
            )?
            .execute(params![
                id,
                now,
                (*outcome == CoaOutcome::Gone).then_some("session stopped before sending")
            ])?;
        }
        CoaOutcome::Fallback {
            error,
            error_cause,
            disconnect,
        } => {
            conn.prepare_cached(
                "UPDATE coa_queue SET state = 'fallback', attempts = attempts + 1, \
                 last_error = ?2, error_cause = ?3, updated = ?4 WHERE id = ?1",
            )?
            .execute(params![id, error, error_cause, now])?;
            super::disconnect::enqueue(conn, disconnect, now)?;
        }
    }
    Ok(())
}

/// An open session of a user whose stored policy modulates, with what the background
/// job compares against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulatedSession {
    pub nas_ip: String,
    pub session_key: String,
    pub username: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub start_time: i64,
    pub policy: String,
    /// The rate of the session's modulation CoA row (sent, or due).
    pub sent: Option<String>,
    /// What the user's last login on this NAS was given, and when.
    pub login: Option<(Option<String>, bool, i64)>,
    /// Throttled or redirected as exhausted, or being disconnected: left alone.
    pub hands_off: bool,
}

pub(crate) fn modulated_sessions(conn: &Connection) -> Result<Vec<ModulatedSession>, StoreError> {
    let _tx = conn.read_transaction()?;
    let mut stmt = conn.prepare_cached(
        "SELECT s.nas_ip, s.session_key, s.username, s.acct_session_id, s.framed_ip, \
           s.start_time, u.policy, \
           (SELECT c.rate_limit FROM coa_queue c WHERE c.nas_ip = s.nas_ip \
              AND c.session_key = s.session_key AND c.purpose = 'modulation'), \
           l.rate_limit, l.throttled, l.at, \
           EXISTS (SELECT 1 FROM coa_queue c WHERE c.nas_ip = s.nas_ip \
              AND c.session_key = s.session_key AND c.purpose = 'exhausted') \
           OR EXISTS (SELECT 1 FROM disconnect_queue d WHERE d.nas_ip = s.nas_ip \
              AND d.session_key = s.session_key AND d.state <> 'done') \
         FROM policy_fields f \
         JOIN user_policies u ON u.policy = f.policy \
         JOIN sessions s ON s.username = u.username AND s.stop_time IS NULL \
         LEFT JOIN policy_logins l ON l.username = s.username AND l.nas_ip = s.nas_ip \
         WHERE f.field = 'modulation' AND lower(trim(f.value)) <> 'off' \
         ORDER BY s.nas_ip, s.session_key",
    )?;
    let rows = stmt.query_map((), |r| {
        let at: Option<i64> = r.get(10)?;
        Ok(ModulatedSession {
            nas_ip: r.get(0)?,
            session_key: name(r, 1)?,
            username: name(r, 2)?,
            acct_session_id: name(r, 3)?,
            framed_ip: r.get(4)?,
            start_time: r.get(5)?,
            policy: r.get(6)?,
            sent: r.get(7)?,
            login: match at {
                Some(at) => Some((r.get(8)?, r.get::<_, Option<i64>>(9)? == Some(1), at)),
                None => None,
            },
            hands_off: r.get::<_, i64>(11)? != 0,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Whether the session is still open (a CoA for a stopped one is pointless).
pub(crate) fn session_open(
    conn: &Connection,
    nas_ip: &str,
    session_key: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sessions WHERE nas_ip = ?1 AND session_key = ?2 AND stop_time IS NULL",
        )?
        .query_row(params![nas_ip, Name::new(session_key)], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Deletes hour buckets older than `before`; returns how many.
pub(crate) fn purge_hours(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM usage_hour WHERE hour < ?1")?
        .execute([before])?)
}

/// What the user's stored policy does once the capping allowance is used up, when it
/// is not a disconnect: ("throttle" | "redirect", Mikrotik-Rate-Limit,
/// Mikrotik-Address-List). Read only when capping decided a disconnect (rare), in the
/// accounting update's commit. A policy that does not parse disconnects.
pub(crate) fn exhausted_change(
    conn: &Connection,
    username: &str,
) -> Option<(&'static str, Option<String>, Option<String>)> {
    let def = match super::policies::current_policy(conn, username)
        .and_then(|p| p.map_or(Ok(None), |(p, _)| super::policies::policy_get(conn, &p)))
    {
        Ok(Some(def)) => def,
        Ok(None) => return None,
        Err(e) => {
            log::error!("cannot read the policy of {username:?}: {e}; disconnecting");
            return None;
        }
    };
    let (raw, check, reply) = crate::policies::parts(&def);
    let policy = match crate::policies::Policy::parse(&raw, check, reply) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{username:?}: policy {:?}: {e}; disconnecting", def.name);
            return None;
        }
    };
    let kind = match policy.on_exhausted {
        crate::policies::modulation::OnExhausted::Disconnect => return None,
        crate::policies::modulation::OnExhausted::Throttle { .. } => "throttle",
        crate::policies::modulation::OnExhausted::Redirect { .. } => "redirect",
    };
    let (rate, list) = policy.on_exhausted.attributes()?;
    Some((kind, rate, list))
}
