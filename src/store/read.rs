//! Read side: queries for the CLI and for capping, on read-only connections that
//! WAL lets run alongside the writer without blocking it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::NaiveDate;

use super::db::{Conn as Connection, Count, DbResult, Location, NameCol, Row, ToValue, Value};

use super::{schema, StoreError};
use crate::periods;
use crate::sessions::{Session, Usage};

/// Which sessions [`SessionFilter`] keeps by open/closed state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenState {
    #[default]
    Any,
    Open,
    Closed,
}

/// Selects sessions for [`Store::list_sessions`](super::Store::list_sessions); newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub username: Option<String>,
    pub nas_ip: Option<String>,
    pub state: OpenState,
    /// Only sessions that started before this (unix seconds).
    pub started_before: Option<i64>,
    /// Keyset paging: only sessions after this `(start_time, id)` in the newest-first
    /// order (the last row of the previous page).
    pub after: Option<(i64, i64)>,
    /// None: all matching sessions.
    pub limit: Option<usize>,
}

/// One stored session with its identity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRow {
    pub id: i64,
    pub nas_ip: String,
    pub session_key: String,
    #[serde(flatten)]
    pub session: Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    Day,
    Month,
}

/// Usage of one user in one day (`YYYY-MM-DD`) or month (`YYYY-MM`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRow {
    pub kind: PeriodKind,
    pub period: String,
    #[serde(flatten)]
    pub usage: Usage,
}

/// Counters are stored as i64; a negative value can only come from outside edits.
pub(crate) fn from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A counter column, read so that one bad row never makes a user unreadable (see
/// [`Count`]).
pub(crate) fn count(r: &Row<'_>, i: usize) -> DbResult<u64> {
    Ok(r.get::<_, Count>(i)?.0)
}

/// A user name or session id bound as the exact bytes it came from (see
/// [`crate::names`] and [`Value::Name`]).
pub(crate) struct Name<'a>(&'a str);

impl<'a> Name<'a> {
    pub(crate) fn new(name: &'a str) -> Self {
        Name(name)
    }
}

impl super::db::NullKind for Name<'_> {
    const KIND: super::db::value::NullType = super::db::value::NullType::Text;
}

impl ToValue for Name<'_> {
    fn to_value(&self) -> Value<'_> {
        Value::Name {
            bytes: crate::names::encode(self.0),
            text: self.0,
        }
    }
}

/// Reads a name column written through [`Name`].
pub(crate) fn name(r: &Row<'_>, i: usize) -> DbResult<String> {
    Ok(r.get::<_, NameCol>(i)?.0)
}

/// Saturates instead of wrapping: u64 counters beyond i64::MAX (16 EiB) are not real traffic.
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) const SESSION_COLUMNS: &str =
    "id, nas_ip, session_key, acct_session_id, username, nas_port, \
     framed_ip, calling_station_id, start_time, last_update, stop_time, session_time, \
     input_octets, output_octets, terminate_cause, closed_reason, gigawords";

/// Maps a row selected with [`SESSION_COLUMNS`].
pub(crate) fn session_row(r: &Row<'_>) -> DbResult<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        nas_ip: r.get(1)?,
        session_key: name(r, 2)?,
        session: Session {
            acct_session_id: name(r, 3)?,
            username: name(r, 4)?,
            nas_port: r
                .get::<_, Option<i64>>(5)?
                .and_then(|p| u32::try_from(p).ok()),
            framed_ip: r.get(6)?,
            calling_station_id: r.get(7)?,
            start_time: r.get(8)?,
            last_update: r.get(9)?,
            stop_time: r.get(10)?,
            session_time: count(r, 11)?,
            input_octets: count(r, 12)?,
            output_octets: count(r, 13)?,
            terminate_cause: r.get(14)?,
            closed_reason: r.get(15)?,
            gigawords: r.get::<_, Option<i64>>(16)?.unwrap_or(0) != 0,
        },
    })
}

fn usage_of(r: &Row<'_>, first: usize) -> DbResult<Usage> {
    Ok(Usage {
        input_octets: count(r, first)?,
        output_octets: count(r, first + 1)?,
        session_time: count(r, first + 2)?,
    })
}

pub(crate) fn list_sessions(
    conn: &Connection,
    f: &SessionFilter,
) -> Result<Vec<SessionRow>, StoreError> {
    let user = f.username.as_deref().map(Name::new);
    let (after_start, after_id) = f.after.unwrap_or((0, 0));
    let mut params: Vec<&dyn ToValue> = Vec::new();
    let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE TRUE");
    session_conditions(&mut sql, &mut params, f, &user);
    if f.after.is_some() {
        sql.push_str(" AND (start_time < ? OR (start_time = ? AND id < ?))");
        params.extend([&after_start as &dyn ToValue, &after_start, &after_id]);
    }
    sql.push_str(" ORDER BY start_time DESC, id DESC LIMIT ?");
    let limit = f
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    params.push(&limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params.as_slice(), session_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The filter's conditions (not its cursor or limit). A handful of fixed SQL shapes,
/// so each stays cached and can use its index.
fn session_conditions<'a>(
    sql: &mut String,
    params: &mut Vec<&'a dyn ToValue>,
    f: &'a SessionFilter,
    user: &'a Option<Name<'a>>,
) {
    if let Some(u) = user {
        sql.push_str(" AND username = ?");
        params.push(u);
    }
    if let Some(n) = &f.nas_ip {
        sql.push_str(" AND nas_ip = ?");
        params.push(n);
    }
    match f.state {
        OpenState::Any => {}
        OpenState::Open => sql.push_str(" AND stop_time IS NULL"),
        OpenState::Closed => sql.push_str(" AND stop_time IS NOT NULL"),
    }
    if let Some(b) = &f.started_before {
        sql.push_str(" AND start_time < ?");
        params.push(b);
    }
}

/// How many sessions match the filter's conditions (its cursor and limit aside).
pub(crate) fn count_sessions(conn: &Connection, f: &SessionFilter) -> Result<u64, StoreError> {
    let user = f.username.as_deref().map(Name::new);
    let mut params: Vec<&dyn ToValue> = Vec::new();
    let mut sql = "SELECT COUNT(*) FROM sessions WHERE TRUE".to_string();
    session_conditions(&mut sql, &mut params, f, &user);
    let mut stmt = conn.prepare_cached(&sql)?;
    Ok(stmt.query_row(params.as_slice(), |r| count(r, 0))?)
}

pub(crate) fn usage(conn: &Connection, username: &str) -> Result<Vec<UsageRow>, StoreError> {
    // One read transaction: months and days from the same snapshot.
    let _tx = conn.read_transaction()?;
    let mut out = Vec::new();
    let queries = [
        (
            PeriodKind::Month,
            "SELECT month, input_octets, output_octets, session_time FROM usage_month \
             WHERE username = ?1 ORDER BY month DESC",
        ),
        (
            PeriodKind::Day,
            "SELECT day, input_octets, output_octets, session_time FROM usage_day \
             WHERE username = ?1 ORDER BY day DESC",
        ),
    ];
    for (kind, sql) in queries {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map([Name::new(username)], |r| {
            Ok(UsageRow {
                kind,
                period: r.get(0)?,
                usage: usage_of(r, 1)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
    }
    Ok(out)
}

fn usage_at(conn: &Connection, sql: &str, username: &str, key: &str) -> Result<Usage, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_row(super::db::params![Name::new(username), key], |r| {
        usage_of(r, 0)
    });
    match rows {
        Ok(u) => Ok(u),
        Err(super::db::DbError::NoRows) => Ok(Usage::default()),
        Err(e) => Err(e.into()),
    }
}

/// The oldest last update of a session that is not stale (`stale_after_secs` 0:
/// none is).
pub(crate) fn stale_cutoff(now: i64, stale_after_secs: u64) -> i64 {
    match stale_after_secs {
        0 => i64::MIN,
        s => now.saturating_sub(i64::try_from(s).unwrap_or(i64::MAX)),
    }
}

/// Open sessions of `username` updated at or after `since` (see [`stale_cutoff`]).
pub(crate) fn open_sessions(
    conn: &Connection,
    username: &str,
    since: i64,
) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM sessions WHERE username = ?1 AND stop_time IS NULL \
             AND last_update >= ?2",
        )?
        .query_row(super::db::params![Name::new(username), since], |r| r.get(0))?;
    Ok(from_db(n))
}

pub(crate) fn month_usage(
    conn: &Connection,
    username: &str,
    month: NaiveDate,
) -> Result<Usage, StoreError> {
    usage_at(
        conn,
        "SELECT input_octets, output_octets, session_time FROM usage_month WHERE username = ?1 AND month = ?2",
        username,
        &periods::month_key(month),
    )
}

pub(crate) fn day_usage(
    conn: &Connection,
    username: &str,
    day: NaiveDate,
) -> Result<Usage, StoreError> {
    usage_at(
        conn,
        "SELECT input_octets, output_octets, session_time FROM usage_day WHERE username = ?1 AND day = ?2",
        username,
        &periods::day_key(day),
    )
}

/// Idle read connections kept for reuse; more are opened on demand under load. As many
/// as the server has worker threads (Debian's max_servers is 32): a connection opened
/// and closed per request costs more than the query (schema parse, statement cache).
const MAX_IDLE_READERS: usize = 64;

/// Read connections opened on demand and reused.
pub(crate) struct ReadPool {
    location: Location,
    busy_timeout: Duration,
    idle: Mutex<Idle>,
}

struct Idle {
    conns: Vec<Connection>,
    /// SQLite: the (device, inode) the connections have open; another file at the
    /// path (a restored backup) makes them all stale.
    file: Option<(u64, u64)>,
    /// Counts such replacements: a connection of an older one is not kept.
    generation: u64,
}

impl ReadPool {
    /// Opens one connection now so a missing or foreign database fails at open time.
    pub(crate) fn new(location: Location, busy_timeout: Duration) -> Result<Self, StoreError> {
        let file = super::file_identity(&location);
        let pool = ReadPool {
            location,
            busy_timeout,
            idle: Mutex::new(Idle {
                conns: Vec::new(),
                file,
                generation: 0,
            }),
        };
        let first = pool.connect()?;
        schema::check(&first)?;
        pool.idle_conns().conns.push(first);
        Ok(pool)
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Idle> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        super::open_reader(&self.location, self.busy_timeout)
    }

    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A deleted file keeps being read through the open connections (the writer
        // refuses to write until it is back); a file put in its place is opened anew.
        let now = super::file_identity(&self.location);
        let (pooled, generation) = {
            let mut idle = self.idle_conns();
            if now.is_some() && now != idle.file {
                idle.conns.clear();
                idle.file = now;
                idle.generation += 1;
            }
            (idle.conns.pop(), idle.generation)
        };
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&conn);
        let mut idle = self.idle_conns();
        // A connection left inside a transaction (a failed ROLLBACK), or whose server
        // went away, or of a replaced file, is not reused.
        if idle.conns.len() < MAX_IDLE_READERS
            && idle.generation == generation
            && conn.is_autocommit()
            && !conn.is_broken()
        {
            idle.conns.push(conn);
        }
        result
    }
}
