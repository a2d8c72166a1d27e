//! Product policies: their definitions (fields and custom attributes), which user
//! has which, and the devices each user was seen on since. Writes run on the writer
//! (each op under the item's savepoint, so all-or-nothing); reads on the read pool.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::db::{params, Conn as Connection, OptionalExtension};

use super::read::{from_db, name, Name};
use super::StoreError;
use crate::periods;
use crate::policies::quota::{self, Room};
use crate::policies::{fields, Quotas, RawPolicy, Reached};
use crate::sessions::Usage;

/// One custom check or reply attribute of a policy (`Attr op value`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CustomAttrRow {
    pub attribute: String,
    pub op: String,
    pub value: String,
}

/// A stored policy as written: field values are raw text, parsed by
/// [`crate::policies`]; validated by [`crate::policies::validate_def`] before saving.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct PolicyDef {
    pub name: String,
    pub description: Option<String>,
    /// (field name, value), in [`fields::FIELDS`] order when read back.
    pub fields: Vec<(String, String)>,
    pub check: Vec<CustomAttrRow>,
    pub reply: Vec<CustomAttrRow>,
}

impl PolicyDef {
    /// The value of a field by its name or attribute.
    pub fn field(&self, name_or_attribute: &str) -> Option<&str> {
        let def = fields::lookup(name_or_attribute)?;
        self.fields
            .iter()
            .find(|(f, _)| f == def.name)
            .map(|(_, v)| v.as_str())
    }

    /// The fields as a [`fields::RawPolicy`] (the lowest layer of a user's policy).
    pub fn raw(&self) -> fields::RawPolicy {
        let mut raw = fields::RawPolicy::new();
        for (f, v) in &self.fields {
            raw.insert(f, v);
        }
        raw
    }
}

/// When a policy was written and how many users have it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyStats {
    pub name: String,
    pub created: i64,
    pub updated: i64,
    pub users: u64,
}

/// A device a user was seen on since the policy was assigned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceRow {
    pub calling_station_id: String,
    pub first_seen: i64,
}

/// What a login needs of a user's policy, from one read transaction
/// ([`crate::store::Reader::login_policy`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyView {
    /// The assigned policy (None: none assigned, or assigned but since removed by
    /// hand: the store refuses removing an assigned one, or not read because the
    /// caller has it parsed at this revision: see [`LoginQuery::parsed`]).
    pub policy: Option<PolicyDef>,
    /// The assigned policy's name.
    pub policy_name: Option<String>,
    /// The store's policy revision (bumped by every change to any definition).
    pub revision: i64,
    pub assigned_at: Option<i64>,
    /// Distinct devices (Calling-Station-Id) seen since the assignment.
    pub devices: u64,
    /// The login's Calling-Station-Id is among them.
    pub device_known: bool,
    /// Open sessions of the user, without those not updated for `stale_after_secs`.
    pub open_sessions: u64,
    /// The NAS row of [`LoginQuery::nas_ip`] (read with a policy only).
    pub nas: Option<super::NasRow>,
    /// Usage today and this month ([`LoginQuery::tz`]; read when the stored policy
    /// or the control list has a quota, zero otherwise).
    pub day: Usage,
    pub month: Usage,
}

/// Whether the caller has policy `name` parsed at store revision `rev`: Some(it has
/// a quota) when it does (its definition is not read), None when not.
pub type ParsedAt<'a> = &'a dyn Fn(&str, i64) -> Option<bool>;

/// What a login asks of the store about its user, answered from one read
/// transaction by [`crate::store::Reader::login`].
#[derive(Clone)]
pub struct LoginQuery<'a> {
    pub username: &'a str,
    pub csid: Option<&'a str>,
    pub now: i64,
    /// Open sessions not updated for this long are not counted (0: all are).
    pub stale_after_secs: u64,
    /// Read the counts, NAS and usage without an assigned policy too (the control
    /// list sets policy fields).
    pub always_count: bool,
    pub nas_ip: Option<&'a str>,
    /// The module's time zone: usage of `now`'s day and month in it.
    pub tz: chrono_tz::Tz,
    /// The control list sets a quota field (usage is read even if the stored
    /// policy has none).
    pub control_quotas: bool,
    pub parsed: ParsedAt<'a>,
}

/// A write on the policy tables, executed by the writer.
#[derive(Debug)]
pub(crate) enum Op {
    Put(Box<PolicyDef>, i64),
    Remove(String),
    Assign {
        username: String,
        policy: Option<String>,
        now: i64,
    },
    RecordDevice {
        username: String,
        csid: String,
        now: i64,
    },
    /// What a modulated or throttled login was given.
    LoginRate {
        username: String,
        nas_ip: String,
        rate_limit: Option<String>,
        throttled: bool,
        now: i64,
    },
}

/// What an [`Op`] returns.
#[derive(Debug)]
pub(crate) enum Done {
    Put,
    /// Remove: whether the policy existed; RecordDevice: whether the device was new.
    Flag(bool),
    /// Assign: the user's previous policy.
    Previous(Option<String>),
}

impl Op {
    /// Whether the op may change what a capping decision reads (policy quotas may
    /// become capping inputs): recording a device never does.
    pub(crate) fn touches_limits(&self) -> bool {
        !matches!(self, Op::RecordDevice { .. } | Op::LoginRate { .. })
    }

    /// Whether the op may change which users modulate (the writer's hourly set).
    pub(crate) fn touches_modulation(&self) -> bool {
        matches!(self, Op::Put(..) | Op::Remove(_) | Op::Assign { .. })
    }
}

pub(crate) fn apply(conn: &Connection, op: &Op) -> Result<Done, StoreError> {
    match op {
        Op::Put(def, now) => put(conn, def, *now).map(|()| Done::Put),
        Op::Remove(name) => remove(conn, name).map(Done::Flag),
        Op::Assign {
            username,
            policy,
            now,
        } => assign(conn, username, policy.as_deref(), *now).map(Done::Previous),
        Op::RecordDevice {
            username,
            csid,
            now,
        } => {
            let n = conn
                .prepare_cached(
                    "INSERT INTO user_devices (username, calling_station_id, first_seen) \
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )?
                .execute(params![Name::new(username), Name::new(csid), now])?;
            Ok(Done::Flag(n > 0))
        }
        Op::LoginRate {
            username,
            nas_ip,
            rate_limit,
            throttled,
            now,
        } => super::modulation::record_login_rate(
            conn,
            username,
            nas_ip,
            rate_limit.as_deref(),
            *throttled,
            *now,
        )
        .map(|()| Done::Put),
    }
}

/// A policy name: shown in tables and given on the command line.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.trim() != name || name.chars().any(char::is_control) {
        return Err(StoreError::Rejected(format!(
            "invalid policy name {name:?}: it must be non-empty, without control characters \
             or leading/trailing spaces"
        )));
    }
    Ok(())
}

fn put(conn: &Connection, def: &PolicyDef, now: i64) -> Result<(), StoreError> {
    check_name(&def.name)?;
    let mut canonical = Vec::with_capacity(def.fields.len());
    for (f, v) in &def.fields {
        let d = fields::lookup(f).ok_or_else(|| {
            StoreError::Rejected(format!("unknown policy field {f:?} (value {v:?})"))
        })?;
        canonical.push((d.name, v));
    }
    conn.prepare_cached(
        "INSERT INTO policies (name, description, created, updated) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
           updated = excluded.updated",
    )?
    .execute(params![def.name, def.description, now])?;
    // Replace everything else: the definition is whole.
    delete_contents(conn, &def.name)?;
    for (f, v) in canonical {
        conn.prepare_cached(
            "INSERT INTO policy_fields (policy, field, value) VALUES (?1, ?2, ?3) \
             ON CONFLICT (policy, field) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![def.name, f, v])?;
    }
    for (list, rows) in [("check", &def.check), ("reply", &def.reply)] {
        for (i, a) in rows.iter().enumerate() {
            conn.prepare_cached(
                "INSERT INTO policy_attrs (policy, list, position, attribute, op, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                def.name,
                list,
                i as i64,
                a.attribute,
                a.op,
                a.value
            ])?;
        }
    }
    Ok(())
}

fn delete_contents(conn: &Connection, policy: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM policy_fields WHERE policy = ?1")?
        .execute([policy])?;
    conn.prepare_cached("DELETE FROM policy_attrs WHERE policy = ?1")?
        .execute([policy])?;
    Ok(())
}

fn users_of(conn: &Connection, policy: &str) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM user_policies WHERE policy = ?1")?
        .query_row([policy], |r| r.get(0))?;
    Ok(from_db(n))
}

fn remove(conn: &Connection, policy: &str) -> Result<bool, StoreError> {
    let users = users_of(conn, policy)?;
    if users > 0 {
        return Err(StoreError::Rejected(format!(
            "policy {policy:?} is assigned to {users} user{}: unassign it first \
             (rlm-rust user policy USER --unassign)",
            if users == 1 { "" } else { "s" }
        )));
    }
    delete_contents(conn, policy)?;
    let n = conn
        .prepare_cached("DELETE FROM policies WHERE name = ?1")?
        .execute([policy])?;
    Ok(n > 0)
}

fn assign(
    conn: &Connection,
    username: &str,
    policy: Option<&str>,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let previous = current_policy(conn, username)?.map(|(p, _)| p);
    match policy {
        Some(p) => {
            let exists = conn
                .prepare_cached("SELECT 1 FROM policies WHERE name = ?1")?
                .query_row([p], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::Rejected(format!("no policy named {p:?}")));
            }
            conn.prepare_cached(
                "INSERT INTO user_policies (username, policy, assigned_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (username) DO UPDATE SET policy = excluded.policy, \
                   assigned_at = excluded.assigned_at",
            )?
            .execute(params![Name::new(username), p, now])?;
        }
        None => {
            conn.prepare_cached("DELETE FROM user_policies WHERE username = ?1")?
                .execute([Name::new(username)])?;
        }
    }
    // Devices count from the assignment (also of the same policy again: a new
    // purchase), so the old ones go.
    conn.prepare_cached("DELETE FROM user_devices WHERE username = ?1")?
        .execute([Name::new(username)])?;
    Ok(previous)
}

pub(crate) fn current_policy(
    conn: &Connection,
    username: &str,
) -> Result<Option<(String, i64)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT policy, assigned_at FROM user_policies WHERE username = ?1")?
        .query_row([Name::new(username)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Where a field sorts: [`fields::FIELDS`] order, unknown names (outside edits) last.
fn field_rank(name: &str) -> usize {
    fields::FIELDS
        .iter()
        .position(|d| d.name == name)
        .unwrap_or(usize::MAX)
}

pub(crate) fn policy_get(conn: &Connection, policy: &str) -> Result<Option<PolicyDef>, StoreError> {
    let description: Option<Option<String>> = conn
        .prepare_cached("SELECT description FROM policies WHERE name = ?1")?
        .query_row([policy], |r| r.get(0))
        .optional()?;
    let Some(description) = description else {
        return Ok(None);
    };
    let mut fields: Vec<(String, String)> = conn
        .prepare_cached("SELECT field, value FROM policy_fields WHERE policy = ?1")?
        .query_map([policy], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    fields.sort_by_cached_key(|(f, _)| field_rank(f));
    let mut def = PolicyDef {
        name: policy.to_string(),
        description,
        fields,
        check: Vec::new(),
        reply: Vec::new(),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT list, attribute, op, value FROM policy_attrs WHERE policy = ?1 \
         ORDER BY list, position",
    )?;
    let rows = stmt.query_map([policy], |r| {
        Ok((
            r.get::<_, String>(0)?,
            CustomAttrRow {
                attribute: r.get(1)?,
                op: r.get(2)?,
                value: r.get(3)?,
            },
        ))
    })?;
    for row in rows {
        let (list, attr) = row?;
        match list.as_str() {
            "check" => def.check.push(attr),
            _ => def.reply.push(attr),
        }
    }
    Ok(Some(def))
}

pub(crate) fn policy_list(conn: &Connection) -> Result<Vec<PolicyDef>, StoreError> {
    let _tx = conn.read_transaction()?;
    let names: Vec<String> = conn
        .prepare_cached("SELECT name FROM policies ORDER BY name")?
        .query_map((), |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        // Removed between the two reads cannot happen inside one transaction.
        out.extend(policy_get(conn, &n)?);
    }
    Ok(out)
}

pub(crate) fn policy_stats(conn: &Connection) -> Result<Vec<PolicyStats>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, created, updated, \
           (SELECT COUNT(*) FROM user_policies u WHERE u.policy = policies.name) \
         FROM policies ORDER BY name",
    )?;
    let rows = stmt
        .query_map((), |r| {
            Ok(PolicyStats {
                name: r.get(0)?,
                created: r.get(1)?,
                updated: r.get(2)?,
                users: from_db(r.get(3)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn user_devices(
    conn: &Connection,
    username: &str,
) -> Result<Vec<DeviceRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT calling_station_id, first_seen FROM user_devices WHERE username = ?1 \
         ORDER BY first_seen, calling_station_id",
    )?;
    let rows = stmt
        .query_map([Name::new(username)], |r| {
            Ok(DeviceRow {
                calling_station_id: name(r, 0)?,
                first_seen: r.get(1)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The counts of [`PolicyView`] (devices, device_known, open_sessions).
fn counts(
    conn: &Connection,
    username: &str,
    csid: Option<&str>,
    now: i64,
    stale_after_secs: u64,
) -> Result<(u64, bool, u64), StoreError> {
    // One range of the primary key gives both the count and whether csid is in it.
    let (devices, known): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(MAX(CASE WHEN calling_station_id = ?2 THEN 1 ELSE 0 END), 0) FROM user_devices \
             WHERE username = ?1",
        )?
        .query_row(params![Name::new(username), csid.map(Name::new)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let open = super::read::open_sessions(
        conn,
        username,
        super::read::stale_cutoff(now, stale_after_secs),
    )?;
    Ok((from_db(devices), known != 0, open))
}

/// The login's reads, in one read transaction (one WAL snapshot, one BEGIN): the
/// policy, the counts, the NAS row and the day's and month's usage. Without an
/// assigned policy, and unless `always_count`, that is the one lookup in
/// user_policies.
pub(crate) fn login_view(conn: &Connection, q: &LoginQuery<'_>) -> Result<PolicyView, StoreError> {
    let _tx = conn.read_transaction()?;
    let assigned: Option<(String, i64, i64)> = conn
        .prepare_cached(
            "SELECT u.policy, u.assigned_at, r.n FROM user_policies u, policy_revision r \
             WHERE u.username = ?1",
        )?
        .query_row([Name::new(q.username)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if assigned.is_none() && !q.always_count {
        return Ok(PolicyView::default());
    }
    let mut known_quotas = None;
    let (policy, policy_name, assigned_at, revision) = match assigned {
        Some((p, at, rev)) => {
            known_quotas = (q.parsed)(&p, rev);
            let def = match known_quotas {
                Some(_) => None,
                None => policy_get(conn, &p)?,
            };
            (def, Some(p), Some(at), rev)
        }
        None => (None, None, None, 0),
    };
    let (devices, device_known, open_sessions) =
        counts(conn, q.username, q.csid, q.now, q.stale_after_secs)?;
    let nas = match q.nas_ip {
        Some(ip) => {
            let sql = format!(
                "SELECT {} FROM nas WHERE nas_ip = ?1",
                super::disconnect::NAS_COLUMNS
            );
            conn.prepare_cached(&sql)?
                .query_row([ip], super::disconnect::nas_row)
                .optional()?
        }
        None => None,
    };
    let stored_quotas = known_quotas.unwrap_or_else(|| {
        policy.as_ref().is_some_and(|p| {
            p.fields.iter().any(|(f, _)| {
                quota::QUOTA_FIELDS
                    .iter()
                    .any(|q| fields::def_of(*q).name == f)
            })
        })
    });
    let (day, month) = if stored_quotas || q.control_quotas {
        (
            super::read::day_usage(conn, q.username, periods::local_day(q.now, q.tz))?,
            super::read::month_usage(conn, q.username, periods::local_month(q.now, q.tz))?,
        )
    } else {
        Default::default()
    };
    Ok(PolicyView {
        policy,
        policy_name,
        revision,
        assigned_at,
        devices,
        device_known,
        open_sessions,
        nas,
        day,
        month,
    })
}

#[cfg(test)]
#[path = "policies_tests.rs"]
mod tests;

/// Whether any stored policy sets a quota field (none: accounting never looks a
/// user's policy up).
fn any_quota_policy(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM policy_fields \
             WHERE field IN ('daily-time', 'monthly-time', 'daily-traffic', 'monthly-traffic'))",
        )?
        .query_row((), |r| r.get(0))?)
}

/// The quota fields of the user's assigned policy (empty: none, or no quota in it).
fn stored_quota_fields(conn: &Connection, username: &str) -> Result<RawPolicy, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.field, f.value FROM user_policies u JOIN policy_fields f ON f.policy = u.policy \
         WHERE u.username = ?1 \
           AND f.field IN ('daily-time', 'monthly-time', 'daily-traffic', 'monthly-traffic')",
    )?;
    let mut raw = RawPolicy::new();
    let rows = stmt.query_map([Name::new(username)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (f, v) = row?;
        raw.insert(&f, &v);
    }
    Ok(raw)
}

/// The quota part of a user's stored policy, as the writer keeps it.
struct StoredQuotas {
    raw: RawPolicy,
    /// `raw` parsed (None: a stored value is invalid; logins refuse such a user).
    parsed: Option<Quotas>,
    /// What was left at the last check, under which control values and in which
    /// day and month.
    room: Option<(RawPolicy, NaiveDate, NaiveDate, Room)>,
}

/// What the writer knows of users' policy quotas, so that an accounting update
/// costs no read for a user without any, nor for one far from them: whether any
/// policy has a quota at all, and per user (once looked up) the quota fields of their
/// policy and the [`Room`] left at the last check, counted down by every update since
/// (as the capping headrooms are). Dropped whenever the store may have changed
/// otherwise: a commit by another connection (the CLI assigning or editing a policy;
/// seen through `PRAGMA data_version`), a policy write through the writer, or a
/// failed batch.
pub(crate) struct QuotaCache {
    any: Option<bool>,
    by_user: HashMap<String, StoredQuotas>,
    data_version: Option<i64>,
    /// Most users kept; beyond it all are dropped and looked up again.
    capacity: usize,
}

impl QuotaCache {
    pub(crate) fn new(capacity: usize) -> Self {
        QuotaCache {
            any: None,
            by_user: HashMap::new(),
            data_version: None,
            capacity,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.any = None;
        self.by_user.clear();
    }

    /// Drops everything if the store's `data_version` moved since the last call.
    pub(crate) fn sync(&mut self, version: Option<i64>) {
        if version.is_none() || version != self.data_version {
            self.clear();
        }
        self.data_version = version;
    }

    /// The user's entry; None when no stored policy has a quota and the control
    /// list has none either (nothing to check, nothing kept).
    fn entry(
        &mut self,
        conn: &Connection,
        username: &str,
        control: &RawPolicy,
    ) -> Result<Option<&mut StoredQuotas>, StoreError> {
        let any = match self.any {
            Some(a) => a,
            None => *self.any.insert(any_quota_policy(conn)?),
        };
        if !any && control.is_empty() {
            return Ok(None);
        }
        if !self.by_user.contains_key(username) {
            let raw = if any {
                stored_quota_fields(conn, username)?
            } else {
                RawPolicy::new()
            };
            let parsed = Quotas::from_raw(&raw).ok();
            if self.by_user.len() >= self.capacity {
                self.by_user.clear();
            }
            self.by_user.insert(
                username.to_string(),
                StoredQuotas {
                    raw,
                    parsed,
                    room: None,
                },
            );
        }
        Ok(self.by_user.get_mut(username))
    }
}

/// After a Start / Interim was recorded, in the writer's transaction: the user's
/// quotas (the control list's quota fields over the stored policy's, per field)
/// against the usage of the update's day and month (the rows just updated; the
/// event's day and month in `tz` when it added nothing), and the quota reached, if
/// any. Reads nothing for a user without quotas once the cache knows the user, nor
/// while the update stays within the room left at the user's last check.
///
/// `totals`: the day's and month's usage the update's own upsert returned (a store
/// several servers write: PostgreSQL). Then they are the usage, read in the same
/// statement, and no room is kept (another server's accounting would not count it
/// down).
pub(crate) fn quota_after_record(
    conn: &Connection,
    tz: chrono_tz::Tz,
    cache: &mut QuotaCache,
    outcome: &crate::sessions::Outcome,
    event_time: i64,
    control: &RawPolicy,
    totals: Option<&crate::pipeline::capping::Totals>,
) -> Result<Option<Reached>, StoreError> {
    use crate::sessions::AcctStatus;
    if !matches!(outcome.status, AcctStatus::Start | AcctStatus::Interim) {
        return Ok(None);
    }
    let user = outcome.username.as_str();
    let Some(entry) = cache.entry(conn, user, control)? else {
        return Ok(None);
    };
    let quotas = if control.is_empty() {
        match entry.parsed {
            Some(q) => q,
            None if entry.raw.is_empty() => return Ok(None),
            None => {
                return Err(StoreError::Rejected(
                    "the user's policy has an invalid quota".into(),
                ))
            }
        }
    } else {
        let mut merged = control.clone();
        merged.fill_from(&entry.raw);
        Quotas::from_raw(&merged).map_err(|e| StoreError::Rejected(e.to_string()))?
    };
    if quotas.is_unlimited() {
        return Ok(None);
    }
    let (day, month, delta) = match outcome.attributed {
        Some(a) => (a.day, a.month, outcome.delta),
        None => (
            periods::local_day(event_time, tz),
            periods::local_month(event_time, tz),
            Usage::default(),
        ),
    };
    if let Some(t) = totals {
        entry.room = None;
        return Ok(quotas.reached(&t.day, &t.month));
    }
    if let Some((c, d, m, room)) = &mut entry.room {
        if (&*c, *d, *m) == (control, day, month) && room.take(&delta) {
            return Ok(None);
        }
    }
    entry.room = None;
    let daily = quotas.daily_time_secs.is_some() || quotas.daily_traffic_bytes.is_some();
    let monthly = quotas.monthly_time_secs.is_some() || quotas.monthly_traffic_bytes.is_some();
    let day_usage = if daily {
        super::read::day_usage(conn, user, day)?
    } else {
        Usage::default()
    };
    let month_usage = if monthly {
        super::read::month_usage(conn, user, month)?
    } else {
        Usage::default()
    };
    let reached = quotas.reached(&day_usage, &month_usage);
    if reached.is_none() {
        let room = quotas.room(&day_usage, &month_usage);
        entry.room = Some((control.clone(), day, month, room));
    }
    Ok(reached)
}
