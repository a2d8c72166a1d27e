//! Services, service sessions, subscriber states, events, NAS actions and the
//! presence marks the session triggers leave (schema migration 0013).
//!
//! The store only persists: [`crate::states::transition`] and
//! [`crate::states::plan`] decide what a [`StateChange`] holds, and [`commit`]
//! writes it all or nothing, onto the subscriber version it was computed from.

use super::db::{params, Conn as Connection, DbResult, OptionalExtension, Row};

use super::read::{from_db, name, to_db, Name};
use super::StoreError;
use crate::services::{EndReason, NasFamily, Service};
use crate::states::{
    EventRecord, NasActionKind, NewNasAction, OpenSession, Plan, Source, Subscriber,
};

/// A subscriber row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRow {
    pub username: String,
    pub state: Subscriber,
    pub version: i64,
    pub created: i64,
    pub updated: i64,
}

/// What becomes of the event's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPlan {
    /// No hook is configured for the event.
    None,
    /// Run it from `at` on.
    Pending,
    /// The NAS row says not to.
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub record: EventRecord,
    pub source: Source,
    pub hook: HookPlan,
}

/// A change to a user's service session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChange {
    /// Starts (or restarts) now, from this output baseline.
    Activate {
        service: String,
        persistent: bool,
        base_output: u64,
    },
    /// Starts at the next login.
    Wait { service: String, persistent: bool },
    End {
        service: String,
        reason: EndReason,
        /// Drop the subscription too (no activation at later logins).
        unsubscribe: bool,
    },
    /// The output counted so far (the watch job's last look).
    Used { service: String, output: u64 },
}

/// What to do with the user's presence mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceMark {
    /// Delete the mark that was read (by its rowid).
    Done(i64),
    /// Look again at `due` (a login without a session yet).
    Recheck(i64),
}

/// Everything one transition writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub username: String,
    /// The version the change was computed from; None: there was no row.
    pub expected_version: Option<i64>,
    pub state: Subscriber,
    pub events: Vec<NewEvent>,
    pub plan: Plan,
    pub services: Vec<ServiceChange>,
    pub presence: Option<PresenceMark>,
    pub now: i64,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRow {
    pub id: i64,
    pub username: String,
    pub event: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub source: String,
    pub at: i64,
    pub detail: Option<String>,
    pub hook_state: String,
    pub hook_attempts: u32,
    pub hook_exit: Option<i32>,
    pub hook_output: Option<String>,
    pub next_attempt_at: Option<i64>,
}

/// A user's service session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserServiceRow {
    pub username: String,
    pub service: String,
    pub state: String,
    pub persistent: bool,
    pub activated_at: Option<i64>,
    pub base_output: u64,
    pub used_output: u64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
}

/// A stored NAS action.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NasActionRow {
    pub id: i64,
    pub event_id: Option<i64>,
    pub action: String,
    pub nas_ip: String,
    pub session_key: String,
    pub username: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub session_start: i64,
    pub service: Option<String>,
    pub nas_service: Option<String>,
    pub svc_timeout: Option<u32>,
    pub svc_volume: Option<u32>,
    pub rate_limit: Option<String>,
    pub disconnect_on_failure: bool,
    pub state: String,
    pub method: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub error_cause: Option<u32>,
    pub next_attempt_at: i64,
    pub created: i64,
    pub updated: i64,
}

impl NasActionRow {
    pub fn kind(&self) -> Option<NasActionKind> {
        NasActionKind::parse(&self.action)
    }

    /// The service as the action was queued with it.
    pub fn service(&self) -> Option<Service> {
        Some(Service {
            name: self.service.clone()?,
            timeout: self.svc_timeout.unwrap_or(0),
            volume_mb: self.svc_volume.unwrap_or(0),
            rate_limit: None,
            nas_service: self.nas_service.clone(),
            description: None,
        })
    }
}

/// How a NAS action attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Done {
        method: &'static str,
    },
    /// Try again after a backoff.
    Retry {
        error: String,
        error_cause: Option<u32>,
    },
    /// Gave up; queue this disconnect if set.
    Failed {
        error: String,
        error_cause: Option<u32>,
        disconnect: Option<super::NewDisconnectJob>,
    },
    /// The session is gone: nothing to change.
    Gone,
}

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Done {
        exit: i32,
        output: String,
    },
    Retry {
        exit: Option<i32>,
        output: String,
        at: i64,
    },
    Failed {
        exit: Option<i32>,
        output: String,
    },
    /// The module has no hook for the event (queued by the CLI, which cannot tell).
    NotConfigured,
}

/// A user whose sessions opened or closed (or who logged in) since last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceDue {
    pub rowid: i64,
    pub username: String,
}

fn bool_col(r: &Row<'_>, i: usize) -> DbResult<bool> {
    Ok(r.get::<_, i64>(i)? != 0)
}

fn u32_col(r: &Row<'_>, i: usize) -> DbResult<Option<u32>> {
    Ok(r.get::<_, Option<i64>>(i)?
        .map(|v| u32::try_from(v).unwrap_or(0)))
}

pub(crate) fn subscriber_get(
    conn: &Connection,
    username: &str,
) -> Result<Option<SubscriberRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT username, deleted, logged_in, redirected, blocked, rate, base_rate, \
                 rate_override, version, created, updated \
             FROM subscribers WHERE username = ?1",
        )?
        .query_row([Name::new(username)], subscriber_row)
        .optional()?)
}

fn subscriber_row(r: &Row<'_>) -> DbResult<SubscriberRow> {
    Ok(SubscriberRow {
        username: name(r, 0)?,
        state: Subscriber {
            deleted: bool_col(r, 1)?,
            logged_in: bool_col(r, 2)?,
            redirected: bool_col(r, 3)?,
            blocked: bool_col(r, 4)?,
            rate: r.get(5)?,
            base_rate: r.get(6)?,
            rate_override: r.get(7)?,
        },
        version: r.get(8)?,
        created: r.get(9)?,
        updated: r.get(10)?,
    })
}

/// The subscriber row, whether the user has service sessions that are not over,
/// and the NAS's type, in one statement.
pub(crate) fn login_view(
    conn: &Connection,
    username: &str,
    nas_ip: Option<&str>,
) -> Result<(Option<SubscriberRow>, bool, Option<String>), StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT s.username, s.deleted, s.logged_in, s.redirected, s.blocked, s.rate, \
                 s.base_rate, s.rate_override, s.version, s.created, s.updated, \
                 EXISTS (SELECT 1 FROM user_services u WHERE u.username = ?1 \
                     AND (u.state <> 'ended' OR u.persistent = 1)), \
                 (SELECT type FROM nas WHERE nas_ip = ?2) \
             FROM (SELECT 1) AS one LEFT JOIN subscribers s ON s.username = ?1",
        )?
        .query_row(params![Name::new(username), nas_ip], |r| {
            let sub = match r.is_null(0)? {
                true => None,
                false => Some(subscriber_row(r)?),
            };
            Ok((sub, r.get::<_, i64>(11)? != 0, r.get(12)?))
        })?)
}

pub(crate) fn subscribers_where(
    conn: &Connection,
    redirected_only: bool,
) -> Result<Vec<SubscriberRow>, StoreError> {
    let sql = format!(
        "SELECT username, deleted, logged_in, redirected, blocked, rate, base_rate, \
             rate_override, version, created, updated FROM subscribers {} ORDER BY username",
        if redirected_only {
            "WHERE redirected = 1 AND deleted = 0"
        } else {
            ""
        }
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map((), subscriber_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Writes a change; false (nothing written) when the subscriber row is no longer
/// at `expected_version`: the caller reads again and decides anew.
pub(crate) fn commit(conn: &Connection, c: &StateChange) -> Result<bool, StoreError> {
    let s = &c.state;
    let user = Name::new(&c.username);
    let n = match c.expected_version {
        Some(v) => conn
            .prepare_cached(
                "UPDATE subscribers SET deleted = ?2, logged_in = ?3, redirected = ?4, \
                     blocked = ?5, rate = ?6, base_rate = ?7, rate_override = ?8, \
                     version = version + 1, updated = ?9 \
                 WHERE username = ?1 AND version = ?10",
            )?
            .execute(params![
                user,
                s.deleted,
                s.logged_in,
                s.redirected,
                s.blocked,
                s.rate,
                s.base_rate,
                s.rate_override,
                c.now,
                v
            ])?,
        None => conn
            .prepare_cached(
                "INSERT INTO subscribers (username, deleted, logged_in, redirected, blocked, \
                     rate, base_rate, rate_override, version, created, updated) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9) \
                 ON CONFLICT (username) DO NOTHING",
            )?
            .execute(params![
                user,
                s.deleted,
                s.logged_in,
                s.redirected,
                s.blocked,
                s.rate,
                s.base_rate,
                s.rate_override,
                c.now
            ])?,
    };
    if n == 0 {
        return Ok(false);
    }
    // The last event is the one the actions belong to (a user_add comes first).
    let mut event_id = None;
    for e in &c.events {
        let (state, next) = match e.hook {
            HookPlan::None => ("none", None),
            HookPlan::Pending => ("pending", Some(c.now)),
            HookPlan::Skipped => ("skipped", None),
        };
        let id: i64 = conn
            .prepare_cached(
                "INSERT INTO events (username, event, old_value, new_value, source, at, detail, \
                     hook_state, next_attempt_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            )?
            .query_row(
                params![
                    user,
                    e.record.event.as_str(),
                    e.record.old,
                    e.record.new,
                    e.source.as_str(),
                    c.now,
                    e.record.detail,
                    state,
                    next
                ],
                |r| r.get(0),
            )?;
        event_id = Some(id);
    }
    for d in &c.plan.disconnects {
        super::disconnect::enqueue_again(conn, d, c.now)?;
    }
    for a in &c.plan.nas_actions {
        insert_action(conn, a, event_id, c.now)?;
    }
    if let Some(reason) = c.plan.end_services {
        end_all_services(conn, &c.username, reason, c.now)?;
    }
    for ch in &c.services {
        service_change(conn, &c.username, ch, c.now)?;
    }
    match c.presence {
        Some(PresenceMark::Done(rowid)) => {
            conn.prepare_cached("DELETE FROM presence_check WHERE rowid = ?1")?
                .execute([rowid])?;
        }
        Some(PresenceMark::Recheck(due)) => {
            conn.prepare_cached(
                "INSERT INTO presence_check (username, due) VALUES (?1, ?2) \
                 ON CONFLICT (username) DO UPDATE SET \
                     due = CASE WHEN excluded.due < presence_check.due THEN excluded.due ELSE presence_check.due END",
            )?
            .execute(params![user, due])?;
        }
        None => {}
    }
    Ok(true)
}

fn insert_action(
    conn: &Connection,
    a: &NewNasAction,
    event_id: Option<i64>,
    now: i64,
) -> Result<(), StoreError> {
    let j = &a.session;
    let svc = a.service.as_ref();
    conn.prepare_cached(
        "INSERT INTO nas_actions (event_id, action, nas_ip, session_key, username, \
             acct_session_id, framed_ip, session_start, service, nas_service, svc_timeout, \
             svc_volume, rate_limit, on_failure, next_attempt_at, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15, ?15)",
    )?
    .execute(params![
        event_id,
        a.kind.as_str(),
        j.nas_ip,
        Name::new(&j.session_key),
        Name::new(&j.username),
        Name::new(&j.acct_session_id),
        j.framed_ip,
        j.session_start,
        svc.map(|s| s.name.as_str()),
        svc.map(|s| s.nas_name()),
        svc.map(|s| s.timeout),
        svc.map(|s| s.volume_mb),
        a.rate_limit,
        if a.disconnect_on_failure {
            "disconnect"
        } else {
            "keep"
        },
        now
    ])?;
    Ok(())
}

fn end_all_services(
    conn: &Connection,
    username: &str,
    reason: EndReason,
    now: i64,
) -> Result<(), StoreError> {
    // Persistent services wait for the next login; the others are over.
    conn.prepare_cached(
        "UPDATE user_services SET state = CASE WHEN persistent = 1 AND ?3 = 'logout' \
             THEN 'waiting' ELSE 'ended' END, \
             persistent = CASE WHEN ?3 = 'logout' THEN persistent ELSE 0 END, \
             ended_at = ?2, end_reason = ?3, updated = ?2 \
         WHERE username = ?1 AND state = 'active'",
    )?
    .execute(params![Name::new(username), now, reason.as_str()])?;
    if reason != EndReason::Logout {
        conn.prepare_cached(
            "UPDATE user_services SET state = 'ended', persistent = 0, ended_at = ?2, \
                 end_reason = ?3, updated = ?2 WHERE username = ?1 AND state = 'waiting'",
        )?
        .execute(params![Name::new(username), now, reason.as_str()])?;
    }
    Ok(())
}

fn service_change(
    conn: &Connection,
    username: &str,
    ch: &ServiceChange,
    now: i64,
) -> Result<(), StoreError> {
    let user = Name::new(username);
    match ch {
        ServiceChange::Activate {
            service,
            persistent,
            base_output,
        } => conn
            .prepare_cached(
                "INSERT INTO user_services (username, service, state, persistent, activated_at, \
                     base_output, used_output, updated) VALUES (?1, ?2, 'active', ?3, ?4, ?5, 0, ?4) \
                 ON CONFLICT (username, service) DO UPDATE SET state = 'active', \
                     persistent = CASE WHEN excluded.persistent > user_services.persistent \
                         THEN excluded.persistent ELSE user_services.persistent END, \
                     activated_at = excluded.activated_at, base_output = excluded.base_output, \
                     used_output = 0, ended_at = NULL, end_reason = NULL, updated = excluded.updated",
            )?
            .execute(params![user, service, persistent, now, to_db(*base_output)])?,
        ServiceChange::Wait {
            service,
            persistent,
        } => conn
            .prepare_cached(
                "INSERT INTO user_services (username, service, state, persistent, updated) \
                 VALUES (?1, ?2, 'waiting', ?3, ?4) \
                 ON CONFLICT (username, service) DO UPDATE SET state = 'waiting', \
                     persistent = excluded.persistent, ended_at = NULL, end_reason = NULL, \
                     updated = excluded.updated",
            )?
            .execute(params![user, service, persistent, now])?,
        ServiceChange::End {
            service,
            reason,
            unsubscribe,
        } => conn
            .prepare_cached(
                "UPDATE user_services SET state = 'ended', ended_at = ?3, end_reason = ?4, \
                     persistent = CASE WHEN ?5 <> 0 THEN 0 ELSE persistent END, updated = ?3 \
                 WHERE username = ?1 AND service = ?2",
            )?
            .execute(params![user, service, now, reason.as_str(), unsubscribe])?,
        ServiceChange::Used { service, output } => conn
            .prepare_cached(
                "UPDATE user_services SET used_output = ?3 WHERE username = ?1 AND service = ?2",
            )?
            .execute(params![user, service, to_db(*output)])?,
    };
    Ok(())
}

pub(crate) fn user_services(
    conn: &Connection,
    username: Option<&str>,
) -> Result<Vec<UserServiceRow>, StoreError> {
    const COLUMNS: &str = "SELECT username, service, state, persistent, activated_at, \
         base_output, used_output, ended_at, end_reason FROM user_services";
    let rows = match username {
        Some(u) => conn
            .prepare_cached(&format!(
                "{COLUMNS} WHERE username = ?1 ORDER BY activated_at, service"
            ))?
            .query_map([Name::new(u)], user_service_row)?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached(&format!(
                "{COLUMNS} ORDER BY username, activated_at, service"
            ))?
            .query_map((), user_service_row)?
            .collect::<Result<_, _>>()?,
    };
    Ok(rows)
}

fn user_service_row(r: &Row<'_>) -> DbResult<UserServiceRow> {
    Ok(UserServiceRow {
        username: name(r, 0)?,
        service: r.get(1)?,
        state: r.get(2)?,
        persistent: bool_col(r, 3)?,
        activated_at: r.get(4)?,
        base_output: from_db(r.get(5)?),
        used_output: from_db(r.get(6)?),
        ended_at: r.get(7)?,
        end_reason: r.get(8)?,
    })
}

/// Active service sessions of every user (the watch job's list).
pub(crate) fn active_services(conn: &Connection) -> Result<Vec<UserServiceRow>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT username, service, state, persistent, activated_at, base_output, used_output, \
             ended_at, end_reason FROM user_services WHERE state = 'active' \
         ORDER BY username, activated_at",
    )?;
    let rows = st.query_map((), user_service_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Output octets of the user's sessions open at `since` or started after (their
/// counters as of their last update).
pub(crate) fn output_since(
    conn: &Connection,
    username: &str,
    since: i64,
) -> Result<u64, StoreError> {
    let v: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(output_octets), 0) FROM sessions \
             WHERE username = ?1 AND (stop_time IS NULL OR stop_time >= ?2)",
        )?
        .query_row(params![Name::new(username), since], |r| r.get(0))?;
    Ok(from_db(v))
}

fn open_session_row(r: &Row<'_>) -> DbResult<OpenSession> {
    Ok(OpenSession {
        nas_ip: r.get(0)?,
        session_key: name(r, 1)?,
        acct_session_id: name(r, 2)?,
        framed_ip: r.get(3)?,
        start_time: r.get(4)?,
        output_octets: from_db(r.get(5)?),
        family: NasFamily::of(r.get::<_, Option<String>>(6)?.as_deref()),
        redirect_list: r.get(7)?,
    })
}

/// The user's open sessions with what the planner needs of their NAS.
pub(crate) fn open_sessions_of(
    conn: &Connection,
    username: &str,
) -> Result<Vec<OpenSession>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT s.nas_ip, s.session_key, s.acct_session_id, s.framed_ip, s.start_time, \
             s.output_octets, n.type, n.redirect_list \
         FROM sessions s LEFT JOIN nas n ON n.nas_ip = s.nas_ip \
         WHERE s.username = ?1 AND s.stop_time IS NULL ORDER BY s.start_time",
    )?;
    let rows = st.query_map([Name::new(username)], open_session_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions whose address the module put into a redirect list and has not taken
/// out since (the targets of a redirect cancel, also after the session closed).
pub(crate) fn redirected_sessions(
    conn: &Connection,
    username: &str,
) -> Result<Vec<OpenSession>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT a.nas_ip, a.session_key, a.acct_session_id, a.framed_ip, a.session_start, \
             0, n.type, n.redirect_list \
         FROM nas_actions a LEFT JOIN nas n ON n.nas_ip = a.nas_ip \
         WHERE a.username = ?1 AND a.action = 'redirect' AND a.state IN ('pending', 'done') \
             AND a.id > COALESCE((SELECT MAX(id) FROM nas_actions c \
                 WHERE c.username = ?1 AND c.action = 'redirect-cancel'), 0) \
         ORDER BY a.id",
    )?;
    let rows = st.query_map([Name::new(username)], open_session_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The NAS of the user's most recently closed session.
pub(crate) fn last_stop_nas(
    conn: &Connection,
    username: &str,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT nas_ip FROM sessions WHERE username = ?1 AND stop_time IS NOT NULL \
             ORDER BY stop_time DESC LIMIT 1",
        )?
        .query_row([Name::new(username)], |r| r.get(0))
        .optional()?)
}

pub(crate) fn presence_due(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<PresenceDue>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT rowid, username FROM presence_check WHERE due <= ?1 ORDER BY due, rowid LIMIT ?2",
    )?;
    let rows = st.query_map(
        params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(PresenceDue {
                rowid: r.get(0)?,
                username: name(r, 1)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn presence_drop(conn: &Connection, rowid: i64) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM presence_check WHERE rowid = ?1")?
        .execute([rowid])?;
    Ok(())
}

// ---- services --------------------------------------------------------------

pub(crate) fn service_put(conn: &Connection, s: &Service, now: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO services (name, timeout, volume_mb, rate_limit, nas_service, description, \
             created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
         ON CONFLICT (name) DO UPDATE SET timeout = excluded.timeout, \
             volume_mb = excluded.volume_mb, rate_limit = excluded.rate_limit, \
             nas_service = excluded.nas_service, description = excluded.description, \
             updated = excluded.updated",
    )?
    .execute(params![
        s.name,
        s.timeout,
        s.volume_mb,
        s.rate_limit,
        s.nas_service,
        s.description,
        now
    ])?;
    Ok(())
}

/// Deletes a service; refused while users have it waiting or active.
pub(crate) fn service_remove(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let users: i64 = conn.query_row(
        "SELECT COUNT(*) FROM user_services WHERE service = ?1 AND state IN ('waiting', 'active')",
        [name],
        |r| r.get(0),
    )?;
    if users > 0 {
        return Err(StoreError::Rejected(format!(
            "service {name:?} is waiting or active for {users} user(s): deactivate it first"
        )));
    }
    conn.execute("DELETE FROM user_services WHERE service = ?1", [name])?;
    Ok(conn.execute("DELETE FROM services WHERE name = ?1", [name])? > 0)
}

fn service_row(r: &Row<'_>) -> DbResult<Service> {
    Ok(Service {
        name: r.get(0)?,
        timeout: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
        volume_mb: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        rate_limit: r.get(3)?,
        nas_service: r.get(4)?,
        description: r.get(5)?,
    })
}

pub(crate) fn service_get(conn: &Connection, name: &str) -> Result<Option<Service>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT name, timeout, volume_mb, rate_limit, nas_service, description \
             FROM services WHERE name = ?1",
        )?
        .query_row([name], service_row)
        .optional()?)
}

pub(crate) fn service_list(conn: &Connection) -> Result<Vec<Service>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT name, timeout, volume_mb, rate_limit, nas_service, description \
         FROM services ORDER BY name",
    )?;
    let rows = st.query_map((), service_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---- events ----------------------------------------------------------------

const EVENT_COLUMNS: &str = "id, username, event, old_value, new_value, source, at, detail, \
     hook_state, hook_attempts, hook_exit, hook_output, next_attempt_at";

fn event_row(r: &Row<'_>) -> DbResult<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        username: name(r, 1)?,
        event: r.get(2)?,
        old_value: r.get(3)?,
        new_value: r.get(4)?,
        source: r.get(5)?,
        at: r.get(6)?,
        detail: r.get(7)?,
        hook_state: r.get(8)?,
        hook_attempts: u32_col(r, 9)?.unwrap_or(0),
        hook_exit: r.get(10)?,
        hook_output: r.get(11)?,
        next_attempt_at: r.get(12)?,
    })
}

/// Events after id `after`, oldest first, optionally of one user and since a time.
pub(crate) fn events(
    conn: &Connection,
    username: Option<&str>,
    since: Option<i64>,
    after: i64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // One user's events through events_by_user (username, id); an OR on the user
    // would walk every event.
    let rows = match username {
        Some(u) => conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE username = ?1 AND id > ?2 \
                     AND (?3 IS NULL OR at >= ?3) ORDER BY id LIMIT ?4"
            ))?
            .query_map(params![Name::new(u), after, since, limit], event_row)?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE id > ?1 \
                     AND (?2 IS NULL OR at >= ?2) ORDER BY id LIMIT ?3"
            ))?
            .query_map(params![after, since, limit], event_row)?
            .collect::<Result<_, _>>()?,
    };
    Ok(rows)
}

/// Rows of a queue table in `state` whose next attempt is due, oldest due first.
fn due<T>(
    conn: &Connection,
    columns: &str,
    table: &str,
    state_column: &str,
    now: i64,
    limit: usize,
    row: fn(&Row<'_>) -> DbResult<T>,
) -> Result<Vec<T>, StoreError> {
    let sql = format!(
        "SELECT {columns} FROM {table} WHERE {state_column} = 'pending' \
             AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params![now, i64::try_from(limit).unwrap_or(i64::MAX)], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn hooks_due(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<EventRow>, StoreError> {
    due(
        conn,
        EVENT_COLUMNS,
        "events",
        "hook_state",
        now,
        limit,
        event_row,
    )
}

pub(crate) fn hook_mark(conn: &Connection, id: i64, o: &HookOutcome) -> Result<(), StoreError> {
    let (state, exit, output, next) = match o {
        HookOutcome::Done { exit, output } => ("done", Some(*exit), output, None),
        HookOutcome::Retry { exit, output, at } => ("pending", *exit, output, Some(*at)),
        HookOutcome::Failed { exit, output } => ("failed", *exit, output, None),
        HookOutcome::NotConfigured => {
            conn.prepare_cached(
                "UPDATE events SET hook_state = 'none', next_attempt_at = NULL WHERE id = ?1",
            )?
            .execute([id])?;
            return Ok(());
        }
    };
    conn.prepare_cached(
        "UPDATE events SET hook_state = ?2, hook_attempts = hook_attempts + 1, hook_exit = ?3, \
             hook_output = ?4, next_attempt_at = ?5 WHERE id = ?1",
    )?
    .execute(params![id, state, exit, output, next])?;
    Ok(())
}

// ---- NAS actions -----------------------------------------------------------

const ACTION_COLUMNS: &str = "id, event_id, action, nas_ip, session_key, username, \
     acct_session_id, framed_ip, session_start, service, nas_service, svc_timeout, svc_volume, \
     rate_limit, on_failure, state, method, attempts, last_error, error_cause, next_attempt_at, \
     created, updated";

fn action_row(r: &Row<'_>) -> DbResult<NasActionRow> {
    Ok(NasActionRow {
        id: r.get(0)?,
        event_id: r.get(1)?,
        action: r.get(2)?,
        nas_ip: r.get(3)?,
        session_key: name(r, 4)?,
        username: name(r, 5)?,
        acct_session_id: name(r, 6)?,
        framed_ip: r.get(7)?,
        session_start: r.get(8)?,
        service: r.get(9)?,
        nas_service: r.get(10)?,
        svc_timeout: u32_col(r, 11)?,
        svc_volume: u32_col(r, 12)?,
        rate_limit: r.get(13)?,
        disconnect_on_failure: r.get::<_, String>(14)? == "disconnect",
        state: r.get(15)?,
        method: r.get(16)?,
        attempts: u32_col(r, 17)?.unwrap_or(0),
        last_error: r.get(18)?,
        error_cause: u32_col(r, 19)?,
        next_attempt_at: r.get(20)?,
        created: r.get(21)?,
        updated: r.get(22)?,
    })
}

pub(crate) fn actions_due(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<NasActionRow>, StoreError> {
    due(
        conn,
        ACTION_COLUMNS,
        "nas_actions",
        "state",
        now,
        limit,
        action_row,
    )
}

pub(crate) fn actions_list(
    conn: &Connection,
    username: Option<&str>,
) -> Result<Vec<NasActionRow>, StoreError> {
    // Two statements: `?1 IS NULL OR username = ?1` would scan the whole table.
    let rows = match username {
        Some(u) => conn
            .prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM nas_actions WHERE username = ?1 ORDER BY id"
            ))?
            .query_map([Name::new(u)], action_row)?
            .collect::<Result<_, _>>()?,
        None => conn
            .prepare_cached(&format!(
                "SELECT {ACTION_COLUMNS} FROM nas_actions ORDER BY id"
            ))?
            .query_map((), action_row)?
            .collect::<Result<_, _>>()?,
    };
    Ok(rows)
}

/// Records an attempt: failures count it and back off; giving up may queue the
/// session's disconnection, in the same transaction.
pub(crate) fn action_mark(
    conn: &Connection,
    id: i64,
    o: &ActionOutcome,
    now: i64,
) -> Result<(), StoreError> {
    match o {
        ActionOutcome::Done { method } => {
            conn.prepare_cached(
                "UPDATE nas_actions SET state = 'done', method = ?2, attempts = attempts + 1, \
                     updated = ?3 WHERE id = ?1",
            )?
            .execute(params![id, method, now])?;
        }
        ActionOutcome::Gone => {
            conn.prepare_cached(
                "UPDATE nas_actions SET state = 'gone', updated = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
        }
        ActionOutcome::Retry { error, error_cause } => {
            let attempts: i64 = conn.query_row(
                "SELECT attempts FROM nas_actions WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let next = now + super::backoff_secs(u32::try_from(attempts).unwrap_or(u32::MAX));
            conn.prepare_cached(
                "UPDATE nas_actions SET attempts = attempts + 1, last_error = ?2, \
                     error_cause = ?3, next_attempt_at = ?4, updated = ?5 WHERE id = ?1",
            )?
            .execute(params![id, error, error_cause, next, now])?;
        }
        ActionOutcome::Failed {
            error,
            error_cause,
            disconnect,
        } => {
            conn.prepare_cached(
                "UPDATE nas_actions SET state = 'failed', attempts = attempts + 1, \
                     last_error = ?2, error_cause = ?3, updated = ?4 WHERE id = ?1",
            )?
            .execute(params![id, error, error_cause, now])?;
            if let Some(d) = disconnect {
                super::disconnect::enqueue(conn, d, now)?;
            }
        }
    }
    Ok(())
}

/// The background jobs' and the CLI's side: one direct connection, each write its
/// own transaction.
impl super::Admin {
    /// [`commit`] in its own transaction.
    pub fn state_commit(&self, change: &StateChange) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let applied = commit(&self.conn, change)?;
        tx.commit()?;
        Ok(applied)
    }

    pub fn subscriber(&self, username: &str) -> Result<Option<SubscriberRow>, StoreError> {
        subscriber_get(&self.conn, username)
    }

    pub fn redirected_subscribers(&self) -> Result<Vec<SubscriberRow>, StoreError> {
        subscribers_where(&self.conn, true)
    }

    pub fn subscribers(&self) -> Result<Vec<SubscriberRow>, StoreError> {
        subscribers_where(&self.conn, false)
    }

    pub fn open_sessions_of(&self, username: &str) -> Result<Vec<OpenSession>, StoreError> {
        open_sessions_of(&self.conn, username)
    }

    pub fn redirected_sessions(&self, username: &str) -> Result<Vec<OpenSession>, StoreError> {
        redirected_sessions(&self.conn, username)
    }

    pub fn last_stop_nas(&self, username: &str) -> Result<Option<String>, StoreError> {
        last_stop_nas(&self.conn, username)
    }

    pub fn output_since(&self, username: &str, since: i64) -> Result<u64, StoreError> {
        output_since(&self.conn, username, since)
    }

    pub fn user_services(&self, username: Option<&str>) -> Result<Vec<UserServiceRow>, StoreError> {
        user_services(&self.conn, username)
    }

    pub fn active_services(&self) -> Result<Vec<UserServiceRow>, StoreError> {
        active_services(&self.conn)
    }

    /// The output a service session has counted so far (shown by the CLI).
    pub fn service_used(
        &self,
        username: &str,
        service: &str,
        output: u64,
    ) -> Result<(), StoreError> {
        let ch = ServiceChange::Used {
            service: service.to_string(),
            output,
        };
        service_change(&self.conn, username, &ch, 0)
    }

    pub fn service_put(&self, s: &Service, now: i64) -> Result<(), StoreError> {
        crate::services::validate_name(&s.name).map_err(StoreError::Rejected)?;
        service_put(&self.conn, s, now)
    }

    pub fn service_remove(&self, name: &str) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let removed = service_remove(&self.conn, name)?;
        tx.commit()?;
        Ok(removed)
    }

    pub fn service_get(&self, name: &str) -> Result<Option<Service>, StoreError> {
        service_get(&self.conn, name)
    }

    pub fn service_list(&self) -> Result<Vec<Service>, StoreError> {
        service_list(&self.conn)
    }

    pub fn presence_due(&self, now: i64, limit: usize) -> Result<Vec<PresenceDue>, StoreError> {
        presence_due(&self.conn, now, limit)
    }

    pub fn presence_drop(&self, rowid: i64) -> Result<(), StoreError> {
        presence_drop(&self.conn, rowid)
    }

    pub fn hooks_due(&self, now: i64, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        hooks_due(&self.conn, now, limit)
    }

    /// [`Admin::hooks_due`], claimed by this server for `lease`.
    pub fn hooks_claim(
        &self,
        now: i64,
        limit: usize,
        lease: super::Lease,
    ) -> Result<Vec<EventRow>, StoreError> {
        super::queue::claim(
            &self.conn,
            "events",
            EVENT_COLUMNS,
            "hook_state = 'pending'",
            None,
            now,
            limit,
            lease,
            event_row,
            |e| e.id,
        )
    }

    pub fn hook_mark(&self, id: i64, o: &HookOutcome) -> Result<(), StoreError> {
        hook_mark(&self.conn, id, o)
    }

    pub fn actions_due(&self, now: i64, limit: usize) -> Result<Vec<NasActionRow>, StoreError> {
        actions_due(&self.conn, now, limit)
    }

    /// [`Admin::actions_due`], claimed by this server for `lease`.
    pub fn actions_claim(
        &self,
        now: i64,
        limit: usize,
        lease: super::Lease,
    ) -> Result<Vec<NasActionRow>, StoreError> {
        super::queue::claim(
            &self.conn,
            "nas_actions",
            ACTION_COLUMNS,
            "state = 'pending'",
            None,
            now,
            limit,
            lease,
            action_row,
            |a| a.id,
        )
    }

    pub fn actions_list(&self, username: Option<&str>) -> Result<Vec<NasActionRow>, StoreError> {
        actions_list(&self.conn, username)
    }

    /// [`action_mark`] for many, in one transaction.
    pub fn action_mark_many(
        &self,
        marks: &[(i64, ActionOutcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (id, o) in marks {
            action_mark(&self.conn, *id, o, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn events(
        &self,
        username: Option<&str>,
        since: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        events(&self.conn, username, since, after, limit)
    }

    /// Deletes events and finished NAS actions from before `before` (an event whose
    /// hook is still pending stays); returns how many of each.
    pub fn purge_history(&self, before: i64) -> Result<(usize, usize), StoreError> {
        let tx = self.conn.transaction()?;
        let events = self.conn.execute(
            "DELETE FROM events WHERE at < ?1 AND hook_state <> 'pending'",
            [before],
        )?;
        let actions = self.conn.execute(
            "DELETE FROM nas_actions WHERE updated < ?1 AND state <> 'pending'",
            [before],
        )?;
        tx.commit()?;
        Ok((events, actions))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::upd;
    use super::super::{Admin, Store, StoreOptions};
    use super::*;
    use crate::config::Hooks;
    use crate::sessions::AcctStatus;
    use crate::states::worker::{apply, Change};
    use crate::states::{Input, Source};
    use crate::store::testdb;

    #[test]
    fn sessions_mark_presence_and_transitions_commit_onto_their_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = testdb::at(dir.path().join("db.sqlite"));
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        let admin = Admin::open_existing(&db).unwrap();
        let t = 1_800_000_000;
        store
            .record(upd(AcctStatus::Start, "bob", "s1", 0, 0, Some(0), t))
            .unwrap();
        let due = admin.presence_due(t, 10).unwrap();
        assert_eq!(due.len(), 1, "a Start marks the user");
        assert_eq!(due[0].username, "bob");
        // An Interim does not; the mark stays until it is handled.
        store
            .record(upd(
                AcctStatus::Interim,
                "bob",
                "s1",
                1,
                5,
                Some(60),
                t + 60,
            ))
            .unwrap();
        assert_eq!(admin.presence_due(t, 10).unwrap(), due);
        let mut c = Change::new(
            Input::Login {
                rate: None,
                base_rate: None,
            },
            Source::Accounting,
            t,
        );
        c.presence = Some(PresenceMark::Done(due[0].rowid));
        let o = apply(&admin, &Hooks::deferred(), "bob", &c).unwrap();
        assert_eq!(o.events.len(), 2, "user_add, user_auth");
        assert!(admin.presence_due(t, 10).unwrap().is_empty());
        let row = admin.subscriber("bob").unwrap().unwrap();
        assert!(row.state.logged_in);
        // A change computed from an older version is refused, nothing written.
        let stale = StateChange {
            username: "bob".into(),
            expected_version: Some(row.version - 1),
            state: Subscriber::default(),
            events: Vec::new(),
            plan: Plan::default(),
            services: Vec::new(),
            presence: None,
            now: t,
        };
        assert!(!admin.state_commit(&stale).unwrap());
        assert!(admin.subscriber("bob").unwrap().unwrap().state.logged_in);
        // The Stop marks again (and a REPLACE gives the mark a new rowid).
        store
            .record(upd(AcctStatus::Stop, "bob", "s1", 1, 7, Some(90), t + 90))
            .unwrap();
        let due2 = admin.presence_due(t + 90, 10).unwrap();
        assert_eq!(due2.len(), 1);
        let events = admin.events(Some("bob"), None, 0, 10).unwrap();
        assert!(
            events.iter().all(|e| e.hook_state == "pending"),
            "deferred hooks queue"
        );
        assert_eq!(admin.output_since("bob", t).unwrap(), 7);
    }

    #[test]
    fn actions_back_off_then_give_up_with_a_disconnect() {
        let dir = tempfile::tempdir().unwrap();
        let db = testdb::at(dir.path().join("db.sqlite"));
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        let admin = Admin::open_existing(&db).unwrap();
        let t = 1_800_000_000;
        store
            .record(upd(AcctStatus::Start, "amy", "s1", 0, 0, Some(0), t))
            .unwrap();
        admin
            .service_put(
                &Service {
                    name: "turbo".into(),
                    timeout: 0,
                    volume_mb: 0,
                    rate_limit: Some("9M/9M".into()),
                    nas_service: None,
                    description: None,
                },
                t,
            )
            .unwrap();
        let mut c = Change::new(
            Input::ServiceOn {
                service: "turbo".into(),
                rate_after: Some("9M/9M".into()),
            },
            Source::Operator,
            t,
        );
        c.services.push(ServiceChange::Activate {
            service: "turbo".into(),
            persistent: false,
            base_output: 0,
        });
        apply(&admin, &Hooks::default(), "amy", &c).unwrap();
        let due = admin.actions_due(t, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].action, "service-on");
        assert_eq!(due[0].nas_ip, "127.0.0.2");
        let retry = ActionOutcome::Retry {
            error: "no reply".into(),
            error_cause: None,
        };
        admin.action_mark_many(&[(due[0].id, retry)], t).unwrap();
        assert!(
            admin.actions_due(t + 1, 10).unwrap().is_empty(),
            "backed off"
        );
        let again = admin.actions_due(t + 3600, 10).unwrap();
        assert_eq!(again[0].attempts, 1);
        let job = crate::store::NewDisconnectJob {
            nas_ip: "127.0.0.2".into(),
            session_key: again[0].session_key.clone(),
            username: "amy".into(),
            acct_session_id: "s1".into(),
            framed_ip: None,
            session_start: t,
            reason: "service-on not applied".into(),
        };
        let failed = ActionOutcome::Failed {
            error: "CoA-NAK".into(),
            error_cause: Some(404),
            disconnect: Some(job),
        };
        admin.action_mark_many(&[(again[0].id, failed)], t).unwrap();
        assert!(admin.actions_due(i64::MAX, 10).unwrap().is_empty());
        assert_eq!(
            admin.queue_list(None).unwrap().len(),
            1,
            "the fallback disconnect"
        );
        let rows = admin.user_services(Some("amy")).unwrap();
        assert_eq!(
            (rows[0].state.as_str(), rows[0].activated_at),
            ("active", Some(t))
        );
        let events = admin.events(Some("amy"), None, 0, 10).unwrap();
        assert!(
            events.iter().all(|e| e.hook_state == "none"),
            "no hooks configured"
        );
    }
}
