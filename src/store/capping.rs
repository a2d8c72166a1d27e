//! Capping tables: topups, per-period topup consumption, the notification outbox and
//! per-user limits. Writes run on the writer thread (each op under its own
//! savepoint, so an op is all-or-nothing); reads run on the read pool.

use super::db::{params, Conn as Connection, DbResult, OptionalExtension, Row};

use super::read::{from_db, to_db, Name};
use super::StoreError;
use chrono_tz::Tz;

use crate::capping::{
    lookup_attribute, parse_limits, Decision, EvalOptions, Limits, Period, PeriodKind, RawLimits,
    Usage as CapUsage, UsageMark,
};
use crate::periods;
use crate::topups::{NewTopup, Topup, TopupBalance};

/// A write on the capping tables, executed by the writer.
#[derive(Debug)]
pub(crate) enum Op {
    TopupAdd(NewTopup),
    TopupRemove(u64),
    /// Tests only: writes a decision made outside the writer.
    #[cfg(test)]
    ApplyDecision {
        username: String,
        period_start: i64,
        now: i64,
        decision: Box<Decision>,
    },
    Decide(Box<DecideRequest>),
    LimitsSet {
        username: String,
        values: Vec<(String, String)>,
    },
    LimitsUnset {
        username: String,
        attributes: Vec<String>,
    },
    OutboxMark {
        key: String,
        now: i64,
        result: OutboxResult,
    },
}

/// Inputs of [`crate::store::Store::decide`] besides the stored topups.
#[derive(Debug, Clone)]
pub struct DecideRequest {
    pub username: String,
    pub limits: Limits,
    pub period: Period,
    pub now: i64,
    pub opts: EvalOptions,
    /// Usage in the period; None: the stored usage of the period (usage_month or
    /// usage_day, in the store's time zone).
    pub usage: Option<CapUsage>,
    /// The accounting update being decided, already part of the usage (zero for
    /// logins and the CLI): see [`crate::capping::EvalInput::delta`].
    pub delta: CapUsage,
}

/// Result of one delivery attempt, for [`crate::store::Store::outbox_mark`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxResult {
    Sent,
    /// Failed; try again at `retry_at` (unix seconds).
    Failed {
        error: String,
        retry_at: i64,
    },
}

/// What an [`Op`] returns.
#[derive(Debug)]
pub(crate) enum Done {
    Id(u64),
    Count(usize),
    #[cfg(test)]
    Ids(Vec<u64>),
    Decided(Box<Decision>, Vec<u64>),
}

/// One queued notification.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxRow {
    pub key: String,
    pub username: String,
    pub kind: String,
    pub event: String,
    pub target: String,
    /// JSON object of the template variables ([`crate::notify::Vars`]).
    pub body: String,
    pub created: i64,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub sent_at: Option<i64>,
    pub last_error: Option<String>,
}

/// One stored limit attribute (canonical `Rust-*` name).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LimitRow {
    pub attribute: String,
    pub value: String,
}

pub(crate) fn apply(conn: &Connection, tz: Tz, op: &Op) -> Result<Done, StoreError> {
    match op {
        Op::Decide(r) => {
            let tx = super::acct::WriterTx {
                conn,
                tz,
                quotas: None,
                hourly: None,
            };
            let (d, ids, _) = crate::pipeline::capping::decide(&tx, r)?;
            Ok(Done::Decided(Box::new(d), ids))
        }
        Op::TopupAdd(t) => insert_topup(conn, t).map(Done::Id),
        Op::TopupRemove(id) => {
            conn.prepare_cached("DELETE FROM topup_consumption WHERE topup_id = ?1")?
                .execute([to_db(*id)])?;
            let n = conn
                .prepare_cached("DELETE FROM topups WHERE id = ?1")?
                .execute([to_db(*id)])?;
            Ok(Done::Count(n))
        }
        #[cfg(test)]
        Op::ApplyDecision {
            username,
            period_start,
            now,
            decision,
        } => apply_decision(conn, username, *period_start, *now, decision).map(Done::Ids),
        Op::LimitsSet { username, values } => limits_set(conn, username, values).map(Done::Count),
        Op::LimitsUnset {
            username,
            attributes,
        } => {
            let mut n = 0;
            for a in attributes {
                let name = canonical(a)?;
                n += conn
                    .prepare_cached(
                        "DELETE FROM user_limits WHERE username = ?1 AND attribute = ?2",
                    )?
                    .execute(params![Name::new(username), name])?;
            }
            Ok(Done::Count(n))
        }
        Op::OutboxMark { key, now, result } => {
            let n = match result {
                OutboxResult::Sent => conn
                    .prepare_cached(
                        "UPDATE notification_outbox SET sent_at = ?2, attempts = attempts + 1, \
                         last_error = NULL WHERE key = ?1",
                    )?
                    .execute(params![key, now])?,
                OutboxResult::Failed { error, retry_at } => conn
                    .prepare_cached(
                        "UPDATE notification_outbox SET attempts = attempts + 1, \
                         last_error = ?2, next_attempt_at = ?3 WHERE key = ?1",
                    )?
                    .execute(params![key, error, retry_at])?,
            };
            Ok(Done::Count(n))
        }
    }
}

fn insert_topup(conn: &Connection, t: &NewTopup) -> Result<u64, StoreError> {
    if t.valid_to < t.valid_from {
        return Err(StoreError::Rejected(format!(
            "topup valid_to {} is before valid_from {}",
            t.valid_to, t.valid_from
        )));
    }
    let id = conn.prepare_cached(
        "INSERT INTO topups (username, type, valid_from, valid_to, value, depleted, depleted_at, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
    )?
    .query_row(params![
        Name::new(&t.user),
        t.type_bits,
        t.valid_from,
        t.valid_to,
        to_db(t.value),
        t.depleted,
        t.depleted.then_some(t.created),
        t.created,
    ], |r| r.get::<_, i64>(0))?;
    Ok(from_db(id))
}

fn put_consumption(
    conn: &Connection,
    topup_id: u64,
    period_start: i64,
    consumed: u64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO topup_consumption (topup_id, period_start, consumed) VALUES (?1, ?2, ?3) \
         ON CONFLICT (topup_id, period_start) DO UPDATE SET consumed = excluded.consumed",
    )?
    .execute(params![to_db(topup_id), period_start, to_db(consumed)])?;
    Ok(())
}

/// Writes a decision: replaces the period's consumption rows of the user's topups,
/// inserts the new auto-topups with their consumption, marks depleted topups and
/// queues notifications (duplicates by key ignored). Returns the new topups' ids.
pub(crate) fn apply_decision(
    conn: &Connection,
    username: &str,
    period_start: i64,
    now: i64,
    d: &Decision,
) -> Result<Vec<u64>, StoreError> {
    // Replace: rows of this user's topups for this period that the decision no
    // longer mentions are dropped, the others overwritten.
    conn.prepare_cached(
        "DELETE FROM topup_consumption WHERE period_start = ?1 \
         AND topup_id IN (SELECT id FROM topups WHERE username = ?2)",
    )?
    .execute(params![period_start, Name::new(username)])?;
    // A missing row reads as 0: not storing zeros keeps the common case (usage under
    // the limit, every accounting update) to the one DELETE.
    for row in d.topup_consumption.iter().filter(|r| r.consumed > 0) {
        put_consumption(conn, row.topup_id, period_start, row.consumed)?;
    }
    for id in &d.depleted {
        conn.prepare_cached(
            "UPDATE topups SET depleted = 1, depleted_at = ?2 WHERE id = ?1 AND depleted = 0",
        )?
        .execute(params![to_db(*id), now])?;
    }
    // A mark, once written, is what was recorded before its time: never rewritten.
    for m in &d.marks {
        conn.prepare_cached(
            "INSERT INTO usage_marks (username, period_start, at, traffic, uptime) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            Name::new(username),
            period_start,
            m.at,
            to_db(m.usage.traffic_bytes),
            to_db(m.usage.uptime_secs)
        ])?;
    }
    // Every planned auto-topup is a new row. Never matched against stored rows by
    // its fields: two decisions in the same second plan identical rows, and each
    // announced its own (the decision runs on the writer against the current
    // state, so a re-evaluation sees what an earlier one added and plans no more).
    let mut ids: Vec<u64> = Vec::with_capacity(d.new_auto_topups.len());
    for t in &d.new_auto_topups {
        let id = insert_topup(conn, t)?;
        put_consumption(conn, id, period_start, t.consumed)?;
        ids.push(id);
    }
    for n in &d.notifications {
        let body = serde_json::to_string(&n.vars)
            .map_err(|e| StoreError::Rejected(format!("cannot encode notification: {e}")))?;
        conn.prepare_cached(
            "INSERT INTO notification_outbox \
             (key, username, kind, event, target, body, created, next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            n.key,
            Name::new(username),
            n.kind.name(),
            event_name(n.event),
            n.target,
            body,
            now
        ])?;
    }
    Ok(ids)
}

fn event_name(e: crate::capping::NotifyEvent) -> &'static str {
    match e {
        crate::capping::NotifyEvent::Added => "added",
        crate::capping::NotifyEvent::LimitReached => "limit-reached",
    }
}

/// What a decision reads: the user's usage in `period` (usage_month or usage_day,
/// in zone `tz`), the topups that may count in it and the period's usage marks.
pub(crate) fn capping_inputs(
    conn: &Connection,
    tz: Tz,
    username: &str,
    period: Period,
) -> Result<(CapUsage, Vec<TopupBalance>, Vec<UsageMark>), StoreError> {
    let usage = cap_usage(&period_usage(conn, tz, username, period)?);
    let topups = topups_for_period(conn, username, period.start, period.end)?;
    let marks = usage_marks(conn, username, period.start)?;
    Ok((usage, topups, marks))
}

/// The user's usage marks in the period starting at `period_start`, by time.
pub(crate) fn usage_marks(
    conn: &Connection,
    username: &str,
    period_start: i64,
) -> Result<Vec<UsageMark>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, traffic, uptime FROM usage_marks \
         WHERE username = ?1 AND period_start = ?2 ORDER BY at",
    )?;
    let rows = stmt
        .query_map(params![Name::new(username), period_start], |r| {
            Ok(UsageMark {
                at: r.get(0)?,
                usage: CapUsage {
                    traffic_bytes: from_db(r.get(1)?),
                    uptime_secs: from_db(r.get(2)?),
                },
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The user's stored usage in the capping period (usage_month or usage_day, in `tz`).
fn period_usage(
    conn: &Connection,
    tz: Tz,
    username: &str,
    period: Period,
) -> Result<crate::sessions::Usage, StoreError> {
    match period.kind {
        PeriodKind::Month => {
            super::read::month_usage(conn, username, periods::local_month(period.start, tz))
        }
        PeriodKind::Day => {
            super::read::day_usage(conn, username, periods::local_day(period.start, tz))
        }
    }
}

pub(crate) fn cap_usage(u: &crate::sessions::Usage) -> CapUsage {
    CapUsage {
        traffic_bytes: u.total_octets(),
        uptime_secs: u.session_time,
    }
}

/// Everything a login decision reads about one user, from one snapshot.
#[derive(Debug, Clone, Default)]
pub struct UserSnapshot {
    pub open_sessions: u64,
    /// Usage in the calendar month asked for (for the Rust-Month-* attributes).
    pub month: crate::sessions::Usage,
    /// The user's limits in the store.
    pub limit_rows: Vec<LimitRow>,
    /// Usage in the capping period.
    pub period_usage: CapUsage,
    /// Topups that may count in the capping period (read only when `with_topups`).
    pub topups: Vec<TopupBalance>,
    /// Usage marks of the capping period (read with the topups).
    pub marks: Vec<UsageMark>,
}

/// One read transaction (one WAL read lock, one consistent view) instead of one per
/// statement: the login path's reads.
pub(crate) fn user_snapshot(
    conn: &Connection,
    tz: Tz,
    username: &str,
    period: Period,
    month: chrono::NaiveDate,
    with_topups: bool,
) -> Result<UserSnapshot, StoreError> {
    let _tx = conn.read_transaction()?;
    let open_sessions: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM sessions WHERE username = ?1 AND stop_time IS NULL")?
        .query_row([Name::new(username)], |r| r.get(0))?;
    let month_usage = super::read::month_usage(conn, username, month)?;
    let limit_rows = user_limits(conn, username)?;
    let same_month =
        period.kind == PeriodKind::Month && periods::local_month(period.start, tz) == month;
    let u = if same_month {
        month_usage
    } else {
        period_usage(conn, tz, username, period)?
    };
    let (topups, marks) = if with_topups || !limit_rows.is_empty() {
        (
            topups_for_period(conn, username, period.start, period.end)?,
            usage_marks(conn, username, period.start)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(UserSnapshot {
        open_sessions: from_db(open_sessions),
        month: month_usage,
        limit_rows,
        period_usage: cap_usage(&u),
        topups,
        marks,
    })
}

/// Our canonical name for a capping attribute (accepts SMRadius aliases).
fn canonical(attribute: &str) -> Result<&'static str, StoreError> {
    lookup_attribute(attribute)
        .map(|(def, _)| def.name)
        .ok_or_else(|| StoreError::Rejected(format!("{attribute:?} is not a capping attribute")))
}

/// Sets values after checking that the user's resulting limits parse.
fn limits_set(
    conn: &Connection,
    username: &str,
    values: &[(String, String)],
) -> Result<usize, StoreError> {
    let mut merged: Vec<(String, String)> = Vec::new();
    for (a, v) in values {
        merged.push((canonical(a)?.to_string(), v.clone()));
    }
    // New values first: RawLimits keeps the first value of a field.
    for r in user_limits(conn, username)? {
        merged.push((r.attribute, r.value));
    }
    let raw = RawLimits::from_pairs(merged.iter().map(|(a, v)| (a.as_str(), v.as_str())));
    parse_limits(username, &raw, false).map_err(|e| StoreError::Rejected(e.to_string()))?;
    for (a, v) in &merged[..values.len()] {
        conn.prepare_cached(
            "INSERT INTO user_limits (username, attribute, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (username, attribute) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![Name::new(username), a, v])?;
    }
    Ok(values.len())
}

pub(crate) fn user_limits(conn: &Connection, username: &str) -> Result<Vec<LimitRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT attribute, value FROM user_limits WHERE username = ?1 ORDER BY attribute",
    )?;
    let rows = stmt
        .query_map([Name::new(username)], |r| {
            Ok(LimitRow {
                attribute: r.get(0)?,
                value: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

const TOPUP_COLUMNS: &str =
    "id, username, type, valid_from, valid_to, value, depleted, depleted_at, created";

fn topup_row(r: &Row<'_>) -> DbResult<Topup> {
    Ok(Topup {
        id: from_db(r.get(0)?),
        user: super::read::name(r, 1)?,
        type_bits: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        valid_from: r.get(3)?,
        valid_to: r.get(4)?,
        value: super::read::count(r, 5)?,
        depleted: r.get::<_, i64>(6)? != 0,
        depleted_at: r.get(7)?,
        created: r.get(8)?,
    })
}

pub(crate) fn topup_get(conn: &Connection, id: u64) -> Result<Option<Topup>, StoreError> {
    let sql = format!("SELECT {TOPUP_COLUMNS} FROM topups WHERE id = ?1");
    let row = conn
        .prepare_cached(&sql)?
        .query_row([to_db(id)], topup_row)
        .optional()?;
    Ok(row)
}

/// Topups of `username` (all users when None), by user then id; without
/// `include_expired` only those valid at or after `now` and not depleted.
pub(crate) fn topup_list(
    conn: &Connection,
    username: Option<&str>,
    include_expired: bool,
    now: i64,
) -> Result<Vec<Topup>, StoreError> {
    let sql = format!(
        "SELECT {TOPUP_COLUMNS} FROM topups WHERE (?1 IS NULL OR username = ?1) \
         AND (?2 <> 0 OR (valid_to > ?3 AND depleted = 0)) ORDER BY username, id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(
            params![username.map(Name::new), include_expired, now],
            topup_row,
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Topups of `username` whose validity overlaps `[start, end)`, with what each
/// consumed in periods before `start`.
pub(crate) fn topups_for_period(
    conn: &Connection,
    username: &str,
    start: i64,
    end: i64,
) -> Result<Vec<TopupBalance>, StoreError> {
    let sql = format!(
        "SELECT {TOPUP_COLUMNS}, (SELECT COALESCE(SUM(consumed), 0) FROM topup_consumption c \
           WHERE c.topup_id = topups.id AND c.period_start < ?2) \
         FROM topups WHERE username = ?1 AND valid_to > ?2 AND valid_from < ?3 ORDER BY id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![Name::new(username), start, end], |r| {
            Ok(TopupBalance {
                topup: topup_row(r)?,
                consumed_before: super::read::count(r, 9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Consumption rows of one topup, oldest period first.
pub(crate) fn topup_consumption(
    conn: &Connection,
    topup_id: u64,
) -> Result<Vec<crate::topups::ConsumptionRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT topup_id, period_start, consumed FROM topup_consumption \
         WHERE topup_id = ?1 ORDER BY period_start",
    )?;
    let rows = stmt
        .query_map([to_db(topup_id)], |r| {
            Ok(crate::topups::ConsumptionRow {
                topup_id: from_db(r.get(0)?),
                period_start: r.get(1)?,
                consumed: super::read::count(r, 2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Unsent notifications due at `now`, oldest first, at most `limit`.
pub(crate) fn outbox_due(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, username, kind, event, target, body, created, attempts, next_attempt_at, \
           sent_at, last_error FROM notification_outbox \
         WHERE sent_at IS NULL AND next_attempt_at <= ?1 ORDER BY next_attempt_at, created, key \
         LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![now, to_db(limit as u64)], |r| {
            Ok(OutboxRow {
                key: r.get(0)?,
                username: super::read::name(r, 1)?,
                kind: r.get(2)?,
                event: r.get(3)?,
                target: r.get(4)?,
                body: r.get(5)?,
                created: r.get(6)?,
                attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                next_attempt_at: r.get(8)?,
                sent_at: r.get(9)?,
                last_error: r.get(10)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[cfg(test)]
#[path = "capping_tests.rs"]
mod tests;
