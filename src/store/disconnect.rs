//! NAS registry, disconnect queue and bulk-run log (schema migrations 0002, 0007).
//!
//! These are background and operator paths, not the accounting hot path: they run
//! on direct connections ([`Admin`] for writes, [`Reader`](super::Reader) for reads)
//! that wait on the writer's lock through `busy_timeout`.

use std::path::Path;

use super::db::{params, Conn as Connection, DbResult, OptionalExtension, Row};

use super::read::{name, Name};
use super::{open_writer, StoreError, StoreOptions};

/// How a NAS is reached for disconnects. Secrets are kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct NasConfig {
    /// The NAS-IP-Address the NAS sends in its packets.
    pub nas_ip: String,
    pub name: Option<String>,
    pub nas_type: String,
    /// Where RFC 5176 requests go; None: `nas_ip` (set it when the NAS is behind NAT).
    pub coa_host: Option<String>,
    /// 3799 (RFC 5176); older RouterOS listen on 1700.
    pub coa_port: u16,
    /// None: use the client's secret from clients.conf.
    pub secret: Option<String>,
    pub api_host: Option<String>,
    /// 8728, or 8729 for API-SSL.
    pub api_port: u16,
    pub api_user: Option<String>,
    pub api_password: Option<String>,
    pub api_tls: bool,
    /// API-SSL: CA certificate(s), PEM, the router's certificate must chain to.
    pub api_ca: Option<String>,
    /// API-SSL: verify the certificate (against `api_ca`); off accepts any.
    pub api_tls_verify: bool,
    pub api_timeout_ms: u32,
    /// `counter_wrap = auto`: a 32-bit counter (no Gigawords) that goes backwards
    /// while the session time goes forward is counted as a wrap when plausible.
    pub counter_wrap: bool,
    /// IANA zone of the NAS (policy schedules); None: the module's.
    pub timezone: Option<String>,
    /// An Accounting-Stop ending a user's last session on this NAS runs the
    /// user_disconnect hook.
    pub stop_event: bool,
    /// RouterOS firewall address list of redirected users' addresses (API).
    pub redirect_list: Option<String>,
}

impl NasConfig {
    /// A NAS with the schema's defaults.
    pub fn new(nas_ip: impl Into<String>) -> NasConfig {
        NasConfig {
            nas_ip: nas_ip.into(),
            name: None,
            nas_type: "mikrotik".into(),
            coa_host: None,
            coa_port: 3799,
            secret: None,
            api_host: None,
            api_port: 8728,
            api_user: None,
            api_password: None,
            api_tls: false,
            api_ca: None,
            api_tls_verify: true,
            api_timeout_ms: 5000,
            counter_wrap: true,
            timezone: None,
            stop_event: true,
            redirect_list: None,
        }
    }

    /// Where the RouterOS API is reached: `api_host`, else the NAS IP.
    pub fn api_host_or_ip(&self) -> &str {
        self.api_host
            .as_deref()
            .filter(|h| !h.is_empty())
            .unwrap_or(&self.nas_ip)
    }
}

impl std::fmt::Debug for NasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NasConfig")
            .field("nas_ip", &self.nas_ip)
            .field("name", &self.name)
            .field("nas_type", &self.nas_type)
            .field("coa_host", &self.coa_host)
            .field("coa_port", &self.coa_port)
            .field("secret_set", &self.secret.is_some())
            .field("api_host", &self.api_host)
            .field("api_port", &self.api_port)
            .field("api_user", &self.api_user)
            .field("api_password_set", &self.api_password.is_some())
            .field("api_tls", &self.api_tls)
            .field("api_ca_set", &self.api_ca.is_some())
            .field("api_tls_verify", &self.api_tls_verify)
            .field("api_timeout_ms", &self.api_timeout_ms)
            .field("counter_wrap", &self.counter_wrap)
            .field("timezone", &self.timezone)
            .field("stop_event", &self.stop_event)
            .field("redirect_list", &self.redirect_list)
            .finish()
    }
}

/// A stored NAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NasRow {
    pub id: i64,
    pub config: NasConfig,
    pub created: i64,
    pub updated: i64,
}

/// State of a disconnect job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum JobState {
    #[serde(rename = "pending")]
    Pending,
    /// The Disconnect-Request failed; the API fallback is next.
    #[serde(rename = "dm-failed")]
    DmFailed,
    #[serde(rename = "done")]
    Done,
    /// Given up; needs an operator (`queue retry`).
    #[serde(rename = "failed")]
    Failed,
    /// The NAS answered "no such session" and could not be checked over its RouterOS
    /// API: not confirmed gone. Not due; the session's next Interim queues it again.
    #[serde(rename = "unconfirmed")]
    Unconfirmed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::DmFailed => "dm-failed",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Unconfirmed => "unconfirmed",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(JobState::Pending),
            "dm-failed" => Ok(JobState::DmFailed),
            "done" => Ok(JobState::Done),
            "failed" => Ok(JobState::Failed),
            "unconfirmed" => Ok(JobState::Unconfirmed),
            _ => Err(format!(
                "state must be pending, dm-failed, unconfirmed, done or failed, not {s:?}"
            )),
        }
    }
}

/// How a job was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// RFC 5176 Disconnect-ACK.
    Dm,
    /// Removed through the RouterOS API.
    Api,
    /// The session sent Accounting-Stop meanwhile.
    Stop,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Dm => "dm",
            Method::Api => "api",
            Method::Stop => "stop",
        }
    }

    fn parse(s: &str) -> Option<Method> {
        match s {
            "dm" => Some(Method::Dm),
            "api" => Some(Method::Api),
            "stop" => Some(Method::Stop),
            _ => None,
        }
    }
}

/// A session to disconnect, as enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisconnectJob {
    pub nas_ip: String,
    pub session_key: String,
    pub username: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub session_start: i64,
    pub reason: String,
}

/// A stored disconnect job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectJob {
    pub id: i64,
    pub nas_ip: String,
    pub session_key: String,
    pub username: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub session_start: i64,
    pub reason: String,
    pub state: JobState,
    pub method: Option<Method>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Error-Cause of a Disconnect-NAK (RFC 5176 section 3.5).
    pub error_cause: Option<u32>,
    pub next_attempt_at: i64,
    pub created: i64,
    pub updated: i64,
}

/// What the worker reports for one attempt at a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished by this method.
    Done(Method),
    /// Transient failure: stays pending, retried after the backoff.
    Retry {
        error: String,
        error_cause: Option<u32>,
    },
    /// The Disconnect-Request failed: state dm-failed (API fallback), after the backoff.
    DmFailed {
        error: String,
        error_cause: Option<u32>,
    },
    /// Given up: state failed until an operator retries it.
    Failed {
        error: String,
        error_cause: Option<u32>,
    },
    /// Not confirmed gone: state unconfirmed until the session's next Interim (or an
    /// operator) queues it again.
    Unconfirmed {
        error: String,
        error_cause: Option<u32>,
    },
}

/// Which jobs [`Admin::queue_retry`] re-arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryTarget {
    /// This job, unless it is done.
    Id(i64),
    /// Every job whose last attempt failed (failed, dm-failed, unconfirmed).
    AllFailed,
}

/// One bulk reconciliation run against a NAS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkRun {
    pub nas_ip: String,
    pub started: i64,
    pub finished: Option<i64>,
    pub seen: u32,
    pub removed: u32,
    pub failed: u32,
    pub error: Option<String>,
}

/// Seconds to wait after a failed attempt, given the failures before it:
/// 30 s, 60 s, 120 s, ... capped at one hour.
pub fn backoff_secs(previous_attempts: u32) -> i64 {
    const BASE: i64 = 30;
    const CAP: i64 = 3600;
    // 2^7 * 30 > 3600 already: avoid overflowing the shift.
    if previous_attempts >= 7 {
        return CAP;
    }
    (BASE << previous_attempts).min(CAP)
}

pub(crate) const NAS_COLUMNS: &str = "id, nas_ip, name, type, coa_host, coa_port, secret, api_host, \
     api_port, api_user, api_password, api_tls, api_timeout_ms, created, updated, counter_wrap, timezone, \
     stop_event, redirect_list, api_ca, api_tls_verify";

fn port(v: i64) -> u16 {
    u16::try_from(v).unwrap_or(0)
}

pub(crate) fn nas_row(r: &Row<'_>) -> DbResult<NasRow> {
    Ok(NasRow {
        id: r.get(0)?,
        config: NasConfig {
            nas_ip: r.get(1)?,
            name: r.get(2)?,
            nas_type: r.get(3)?,
            coa_host: r.get(4)?,
            coa_port: port(r.get(5)?),
            secret: r.get(6)?,
            api_host: r.get(7)?,
            api_port: port(r.get(8)?),
            api_user: r.get(9)?,
            api_password: r.get(10)?,
            api_tls: r.get::<_, i64>(11)? != 0,
            api_timeout_ms: u32::try_from(r.get::<_, i64>(12)?).unwrap_or(5000),
            counter_wrap: r.get::<_, String>(15)? != "off",
            timezone: r.get(16)?,
            stop_event: r.get::<_, i64>(17)? != 0,
            redirect_list: r.get(18)?,
            api_ca: r.get(19)?,
            api_tls_verify: r.get::<_, i64>(20)? != 0,
        },
        created: r.get(13)?,
        updated: r.get(14)?,
    })
}

const JOB_COLUMNS: &str = "id, nas_ip, session_key, username, acct_session_id, framed_ip, \
     session_start, reason, state, method, attempts, last_error, error_cause, \
     next_attempt_at, created, updated";

fn job_row(r: &Row<'_>) -> DbResult<DisconnectJob> {
    let state: String = r.get(8)?;
    let method: Option<String> = r.get(9)?;
    Ok(DisconnectJob {
        id: r.get(0)?,
        nas_ip: r.get(1)?,
        session_key: name(r, 2)?,
        username: name(r, 3)?,
        acct_session_id: name(r, 4)?,
        framed_ip: r.get(5)?,
        session_start: r.get(6)?,
        reason: r.get(7)?,
        // The CHECK constraint keeps other values out; treat an outside edit as failed.
        state: state.parse().unwrap_or(JobState::Failed),
        method: method.as_deref().and_then(Method::parse),
        attempts: u32::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
        last_error: r.get(11)?,
        error_cause: r
            .get::<_, Option<i64>>(12)?
            .and_then(|v| u32::try_from(v).ok()),
        next_attempt_at: r.get(13)?,
        created: r.get(14)?,
        updated: r.get(15)?,
    })
}

pub(crate) fn nas_list(conn: &Connection) -> Result<Vec<NasRow>, StoreError> {
    let sql = format!("SELECT {NAS_COLUMNS} FROM nas ORDER BY nas_ip");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map((), nas_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// By NAS IP or by name; an IP match wins over a NAS named like another's IP.
pub(crate) fn nas_get(conn: &Connection, key: &str) -> Result<Option<NasRow>, StoreError> {
    let sql = format!(
        "SELECT {NAS_COLUMNS} FROM nas WHERE nas_ip = ?1 OR name = ?1 \
         ORDER BY nas_ip = ?1 DESC LIMIT 1"
    );
    Ok(conn.query_row(&sql, [key], nas_row).optional()?)
}

pub(crate) fn queue_list(
    conn: &Connection,
    state: Option<JobState>,
) -> Result<Vec<DisconnectJob>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM disconnect_queue WHERE ?1 IS NULL OR state = ?1 ORDER BY id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([state.map(JobState::as_str)], job_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// [`enqueue`] for a disconnect asked for anew (an operator's, a state change's):
/// a finished job of the same session is armed again, with the new reason.
pub(crate) fn enqueue_again(
    conn: &Connection,
    job: &NewDisconnectJob,
    now: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE disconnect_queue SET state = 'pending', attempts = 0, reason = ?3, \
                 last_error = NULL, error_cause = NULL, next_attempt_at = ?4, updated = ?4 \
             WHERE nas_ip = ?1 AND session_key = ?2 AND state IN ('done', 'failed', 'unconfirmed')",
        )?
        .execute(params![
            job.nas_ip,
            Name::new(&job.session_key),
            job.reason,
            now
        ])?;
    Ok(n > 0 || enqueue(conn, job, now)?)
}

/// Queues a disconnect due now; false if the session already has a job, unless that
/// job is unconfirmed: an update of the session shows it is still up, so the job is
/// due again. Also used by the writer thread, inside the transaction of the
/// accounting update.
pub(crate) fn enqueue(
    conn: &Connection,
    job: &NewDisconnectJob,
    now: i64,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO disconnect_queue (nas_ip, session_key, username, \
                 acct_session_id, framed_ip, session_start, reason, state, attempts, \
                 next_attempt_at, created, updated) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?8, ?8) \
             ON CONFLICT (nas_ip, session_key) DO UPDATE SET state = 'pending', \
                 next_attempt_at = excluded.next_attempt_at, updated = excluded.updated \
             WHERE disconnect_queue.state = 'unconfirmed'",
        )?
        .execute(params![
            job.nas_ip,
            Name::new(&job.session_key),
            Name::new(&job.username),
            Name::new(&job.acct_session_id),
            job.framed_ip,
            job.session_start,
            job.reason,
            now
        ])?;
    if n == 0 {
        log::debug!(
            "disconnect queue: {} on {} already queued",
            job.session_key,
            job.nas_ip
        );
    }
    Ok(n > 0)
}

/// Read-write access for the disconnect worker and the CLI's write commands.
pub struct Admin {
    pub(super) conn: Connection,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// Opens the database read-write, creating and migrating it if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<Admin, StoreError> {
        let conn = open_writer(&super::location(path.as_ref())?, &StoreOptions::default())?;
        Ok(Admin { conn })
    }

    /// Like [`Admin::open`] but fails with [`StoreError::NotFound`] if the SQLite file
    /// is missing.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Admin, StoreError> {
        let loc = super::location(path.as_ref())?;
        if let Some(p) = loc.path().filter(|p| !p.exists()) {
            return Err(StoreError::NotFound {
                path: p.to_path_buf(),
            });
        }
        let conn = open_writer(&loc, &StoreOptions::default())?;
        Ok(Admin { conn })
    }

    pub fn backend(&self) -> super::Backend {
        self.conn.backend()
    }

    /// Inserts the NAS or updates the one with the same `nas_ip`; returns its id.
    pub fn nas_upsert(&self, nas: &NasConfig, now: i64) -> Result<i64, StoreError> {
        let id = self.conn.query_row(
            "INSERT INTO nas (nas_ip, name, type, coa_host, coa_port, secret, api_host, api_port, \
                 api_user, api_password, api_tls, api_timeout_ms, created, updated, counter_wrap, timezone, stop_event, redirect_list, \
                 api_ca, api_tls_verify) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
             ON CONFLICT (nas_ip) DO UPDATE SET name = excluded.name, type = excluded.type, \
                 coa_host = excluded.coa_host, coa_port = excluded.coa_port, \
                 secret = excluded.secret, api_host = excluded.api_host, \
                 api_port = excluded.api_port, api_user = excluded.api_user, \
                 api_password = excluded.api_password, api_tls = excluded.api_tls, \
                 api_timeout_ms = excluded.api_timeout_ms, updated = excluded.updated, \
                 counter_wrap = excluded.counter_wrap, timezone = excluded.timezone, \
                 stop_event = excluded.stop_event, redirect_list = excluded.redirect_list, \
                 api_ca = excluded.api_ca, api_tls_verify = excluded.api_tls_verify \
             RETURNING id",
            params![
                nas.nas_ip,
                nas.name,
                nas.nas_type,
                nas.coa_host,
                nas.coa_port,
                nas.secret,
                nas.api_host,
                nas.api_port,
                nas.api_user,
                nas.api_password,
                nas.api_tls,
                nas.api_timeout_ms,
                now,
                if nas.counter_wrap { "auto" } else { "off" },
                nas.timezone,
                nas.stop_event,
                nas.redirect_list,
                nas.api_ca,
                nas.api_tls_verify,
            ],
            |r| r.get(0),
        )?;
        Ok(id)
    }

    pub fn nas_get(&self, key: &str) -> Result<Option<NasRow>, StoreError> {
        nas_get(&self.conn, key)
    }

    pub fn nas_list(&self) -> Result<Vec<NasRow>, StoreError> {
        nas_list(&self.conn)
    }

    /// Removes the NAS with this IP or name; false if there is none.
    pub fn nas_remove(&self, key: &str) -> Result<bool, StoreError> {
        let Some(row) = nas_get(&self.conn, key)? else {
            return Ok(false);
        };
        let n = self
            .conn
            .execute("DELETE FROM nas WHERE id = ?1", [row.id])?;
        Ok(n > 0)
    }

    /// Queues a disconnect due now; false if the session already has a job.
    pub fn queue_enqueue(&self, job: &NewDisconnectJob, now: i64) -> Result<bool, StoreError> {
        enqueue(&self.conn, job, now)
    }

    /// Pending and dm-failed jobs whose next attempt is due, oldest due first.
    pub fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<DisconnectJob>, StoreError> {
        self.due(None, now, limit)
    }

    /// [`Admin::queue_due`] for the jobs of one NAS.
    pub fn queue_due_on(
        &self,
        nas_ip: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DisconnectJob>, StoreError> {
        self.due(Some(nas_ip), now, limit)
    }

    fn due(
        &self,
        nas_ip: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<DisconnectJob>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM disconnect_queue \
             WHERE state IN ('pending', 'dm-failed') AND next_attempt_at <= ?1 \
                 AND (?3 IS NULL OR nas_ip = ?3) \
             ORDER BY next_attempt_at, id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![now, limit, nas_ip], job_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// [`Admin::queue_due_on`], claimed by this server for `lease` (see
    /// [`super::queue`]): what the worker sends.
    pub fn queue_claim_on(
        &self,
        nas_ip: &str,
        now: i64,
        limit: usize,
        lease: super::Lease,
    ) -> Result<Vec<DisconnectJob>, StoreError> {
        super::queue::claim(
            &self.conn,
            "disconnect_queue",
            JOB_COLUMNS,
            "state IN ('pending', 'dm-failed')",
            Some(nas_ip),
            now,
            limit,
            lease,
            job_row,
            |j| j.id,
        )
    }

    /// The NASes that have due jobs (see [`Admin::queue_due`]).
    pub fn queue_due_nases(&self, now: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT nas_ip FROM disconnect_queue \
             WHERE state IN ('pending', 'dm-failed') AND next_attempt_at <= ?1 ORDER BY nas_ip",
        )?;
        let rows = stmt.query_map([now], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records an attempt's outcome; failures count an attempt and back off
    /// (`backoff_secs` of the attempts before this one). False if no such job.
    pub fn queue_mark(&self, id: i64, outcome: &JobOutcome, now: i64) -> Result<bool, StoreError> {
        let n = match outcome {
            JobOutcome::Done(method) => {
                // A deleted user's session is freed once the NAS dropped it: no
                // Stop may ever come for it (seed 004: the billing frees the IP).
                self.conn.execute(
                    "UPDATE sessions SET stop_time = CASE WHEN ?2 > start_time THEN ?2 ELSE start_time END, closed_reason = 'user-deleted' \
                     WHERE stop_time IS NULL AND (nas_ip, session_key) = \
                         (SELECT nas_ip, session_key FROM disconnect_queue WHERE id = ?1) \
                     AND username IN (SELECT username FROM subscribers WHERE deleted = 1)",
                    params![id, now],
                )?;
                self.conn.execute(
                    "UPDATE disconnect_queue SET state = 'done', method = ?2, updated = ?3 \
                     WHERE id = ?1",
                    params![id, method.as_str(), now],
                )?
            }
            JobOutcome::Retry { error, error_cause }
            | JobOutcome::DmFailed { error, error_cause }
            | JobOutcome::Failed { error, error_cause }
            | JobOutcome::Unconfirmed { error, error_cause } => {
                let state = match outcome {
                    JobOutcome::Retry { .. } => JobState::Pending,
                    JobOutcome::DmFailed { .. } => JobState::DmFailed,
                    JobOutcome::Unconfirmed { .. } => JobState::Unconfirmed,
                    _ => JobState::Failed,
                };
                let attempts: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT attempts FROM disconnect_queue WHERE id = ?1",
                        [id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let Some(attempts) = attempts else {
                    return Ok(false);
                };
                let next = now + backoff_secs(u32::try_from(attempts).unwrap_or(u32::MAX));
                self.conn.execute(
                    "UPDATE disconnect_queue SET state = ?2, attempts = attempts + 1, \
                         last_error = ?3, error_cause = ?4, next_attempt_at = ?5, updated = ?6 \
                     WHERE id = ?1",
                    params![id, state.as_str(), error, error_cause, next, now],
                )?
            }
        };
        Ok(n > 0)
    }

    /// [`Admin::queue_mark`] for many jobs in one transaction (one commit, one fsync).
    pub fn queue_mark_many(
        &self,
        outcomes: &[(i64, JobOutcome)],
        now: i64,
    ) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        for (id, outcome) in outcomes {
            n += usize::from(self.queue_mark(*id, outcome, now)?);
        }
        tx.commit()?;
        Ok(n)
    }

    pub fn queue_list(&self, state: Option<JobState>) -> Result<Vec<DisconnectJob>, StoreError> {
        queue_list(&self.conn, state)
    }

    /// Re-arms jobs (state pending, due now, attempts reset); returns how many.
    /// Done jobs are never re-armed.
    pub fn queue_retry(&self, target: RetryTarget, now: i64) -> Result<usize, StoreError> {
        const SET: &str = "UPDATE disconnect_queue SET state = 'pending', attempts = 0, \
                           next_attempt_at = ?1, updated = ?1";
        let n = match target {
            RetryTarget::Id(id) => self.conn.execute(
                &format!("{SET} WHERE id = ?2 AND state <> 'done'"),
                params![now, id],
            )?,
            // dm-failed jobs wait out a backoff of up to an hour, unconfirmed ones the
            // session's next Interim: "retry everything that failed" covers them too.
            RetryTarget::AllFailed => self.conn.execute(
                &format!("{SET} WHERE state IN ('failed', 'dm-failed', 'unconfirmed')"),
                [now],
            )?,
        };
        Ok(n)
    }

    /// Deletes done jobs last updated before `updated_before` (None: all done jobs).
    pub fn queue_purge(&self, updated_before: Option<i64>) -> Result<usize, StoreError> {
        let n = self.conn.execute(
            "DELETE FROM disconnect_queue WHERE state = 'done' AND (?1 IS NULL OR updated < ?1)",
            [updated_before],
        )?;
        Ok(n)
    }

    /// Finishes (method stop) active and unconfirmed jobs whose session has been
    /// closed meanwhile (a Stop confirms what a NAK could not).
    pub fn queue_close_if_stopped(&self, now: i64) -> Result<usize, StoreError> {
        let n = self.conn.execute(
            "UPDATE disconnect_queue SET state = 'done', method = 'stop', updated = ?1 \
             WHERE state IN ('pending', 'dm-failed', 'unconfirmed') \
                 AND EXISTS (SELECT 1 FROM sessions s \
                 WHERE s.nas_ip = disconnect_queue.nas_ip \
                 AND s.session_key = disconnect_queue.session_key \
                 AND s.stop_time IS NOT NULL)",
            [now],
        )?;
        if n > 0 {
            log::debug!("disconnect queue: {n} job(s) closed by their session's Stop");
        }
        Ok(n)
    }

    /// Queues a CoA (see [`super::modulation::enqueue_coa`]).
    pub fn coa_enqueue(
        &self,
        job: &super::NewCoaJob,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        super::modulation::enqueue_coa(&self.conn, job, reason, now)
    }

    /// Pending CoA jobs, oldest first.
    pub fn coa_pending(&self, limit: usize) -> Result<Vec<super::CoaJob>, StoreError> {
        super::modulation::coa_pending(&self.conn, limit)
    }

    /// [`Admin::coa_pending`], claimed by this server for `lease`.
    pub fn coa_claim(
        &self,
        now: i64,
        limit: usize,
        lease: super::Lease,
    ) -> Result<Vec<super::CoaJob>, StoreError> {
        super::modulation::coa_claim(&self.conn, now, limit, lease)
    }

    /// Records CoA outcomes (and their fallback disconnects) in one transaction.
    pub fn coa_mark_many(
        &self,
        outcomes: &[(i64, super::CoaOutcome)],
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (id, o) in outcomes {
            super::modulation::coa_mark(&self.conn, *id, o, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn coa_list(&self) -> Result<Vec<super::CoaJob>, StoreError> {
        super::modulation::coa_list(&self.conn)
    }

    /// Whether the session is still open.
    pub fn session_open(&self, nas_ip: &str, session_key: &str) -> Result<bool, StoreError> {
        super::modulation::session_open(&self.conn, nas_ip, session_key)
    }

    /// Open sessions of modulated users (see [`super::Reader::modulated_sessions`]).
    pub fn modulated_sessions(&self) -> Result<Vec<super::ModulatedSession>, StoreError> {
        super::modulation::modulated_sessions(&self.conn)
    }

    pub fn hour_usage(
        &self,
        username: &str,
        since: i64,
    ) -> Result<Vec<(i64, u64, u64)>, StoreError> {
        super::modulation::hour_usage(&self.conn, username, since)
    }

    pub fn month_usage(
        &self,
        username: &str,
        month: chrono::NaiveDate,
    ) -> Result<crate::sessions::Usage, StoreError> {
        super::read::month_usage(&self.conn, username, month)
    }

    pub fn policy_get(&self, name: &str) -> Result<Option<super::PolicyDef>, StoreError> {
        super::policies::policy_get(&self.conn, name)
    }

    /// Deletes hour buckets older than `before`.
    pub fn purge_hours(&self, before: i64) -> Result<usize, StoreError> {
        super::modulation::purge_hours(&self.conn, before)
    }

    /// Jobs claimed by a process of this host that is gone are due now (see
    /// [`super::queue::release_dead`]); returns how many.
    pub fn release_dead_claims(&self, now: i64) -> Result<usize, StoreError> {
        super::queue::release_dead(&self.conn, now)
    }

    /// Takes this month's automatic bulk run of a NAS for this server; false when
    /// another server (or an earlier run of this one) has it.
    pub fn bulk_month_claim(
        &self,
        nas_ip: &str,
        month_start: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.conn.execute(
            "INSERT INTO bulk_month_claims (nas_ip, month_start, claimed_by, at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            params![nas_ip, month_start, super::server_id(), now],
        )?;
        Ok(n > 0)
    }

    /// Logs a bulk run; returns its id.
    pub fn bulk_run_record(&self, run: &BulkRun) -> Result<i64, StoreError> {
        Ok(self.conn.query_row(
            "INSERT INTO bulk_runs (nas_ip, started, finished, seen, removed, failed, error) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            params![
                run.nas_ip,
                run.started,
                run.finished,
                run.seen,
                run.removed,
                run.failed,
                run.error
            ],
            |r| r.get(0),
        )?)
    }

    /// Bulk runs of one NAS, newest first.
    pub fn bulk_runs(&self, nas_ip: &str) -> Result<Vec<BulkRun>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {BULK_RUN_COLUMNS} FROM bulk_runs WHERE nas_ip = ?1 ORDER BY started DESC, id DESC"
        ))?;
        let rows = stmt.query_map([nas_ip], bulk_run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Each NAS's newest bulk run (as [`Admin::bulk_runs`] orders them), in one read.
    pub fn last_bulk_runs(
        &self,
    ) -> Result<std::collections::BTreeMap<String, BulkRun>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {BULK_RUN_COLUMNS} FROM bulk_runs ORDER BY nas_ip, started DESC, id DESC"
        ))?;
        let mut last = std::collections::BTreeMap::new();
        for run in stmt.query_map((), bulk_run_row)? {
            let run = run?;
            last.entry(run.nas_ip.clone()).or_insert(run);
        }
        Ok(last)
    }
}

const BULK_RUN_COLUMNS: &str = "nas_ip, started, finished, seen, removed, failed, error";

fn bulk_run_row(r: &Row<'_>) -> DbResult<BulkRun> {
    Ok(BulkRun {
        nas_ip: r.get(0)?,
        started: r.get(1)?,
        finished: r.get(2)?,
        seen: r.get(3)?,
        removed: r.get(4)?,
        failed: r.get(5)?,
        error: r.get(6)?,
    })
}

#[cfg(test)]
#[path = "disconnect_tests.rs"]
mod tests;
