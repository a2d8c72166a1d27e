//! Claiming due jobs of the queue tables (disconnects, NAS actions, CoAs, hooks) so
//! that with several servers on one database (PostgreSQL) exactly one works each job: the claim
//! pushes the job's next attempt out by a lease and names the claimer, in one
//! statement (PostgreSQL: skipping rows another server is claiming right now). The
//! job's mark then sets its real next attempt; a claimer that dies leaves the job due
//! again when the lease runs out, for any server to take.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::OnceLock;

use super::db::{params, Conn as Connection, DbResult, Row};
use super::StoreError;

/// How long a claimed job is left to its claimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub secs: i64,
}

impl Default for Lease {
    /// Longer than any one pass (a silent NAS: a few seconds per attempt, the API
    /// fallback its connect and login timeouts).
    fn default() -> Self {
        Lease { secs: 300 }
    }
}

/// The module's `queue_lease` (seconds), for every worker of this process.
static LEASE_SECS: AtomicI64 = AtomicI64::new(300);

impl Lease {
    pub fn current() -> Lease {
        Lease {
            secs: LEASE_SECS.load(Ordering::Relaxed),
        }
    }

    pub fn set_current(secs: u64) {
        LEASE_SECS.store(
            i64::try_from(secs).unwrap_or(i64::MAX).max(1),
            Ordering::Relaxed,
        );
    }
}

/// This process among the servers: `host:pid`, shown on the jobs it claimed.
pub fn server_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

/// The queue tables whose jobs are claimed.
const TABLES: [&str; 4] = ["disconnect_queue", "nas_actions", "coa_queue", "events"];

/// Makes the jobs claimed by an earlier process of this host that is gone (a
/// restart after kill -9 or a crash) due now, instead of after their lease.
/// PostgreSQL only: SQLite leases nothing, and there this would only cut short the
/// backoff of jobs the earlier process had marked. (On PostgreSQL such a job, whose
/// claimer was this host's dead process, is tried once early too.)
pub(crate) fn release_dead(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    if conn.backend() != super::db::Backend::Postgres {
        return Ok(0);
    }
    let id = server_id();
    let Some((host, _)) = id.rsplit_once(':') else {
        return Ok(0);
    };
    let mut released = 0;
    for table in TABLES {
        let sql = format!(
            "SELECT DISTINCT claimed_by FROM {table} WHERE next_attempt_at > ?1 AND claimed_by IS NOT NULL"
        );
        let claimers: Vec<String> = conn
            .prepare(&sql)?
            .query_map(params![now], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for c in claimers {
            let dead = match c.rsplit_once(':') {
                Some((h, pid)) if h == host && c != id => pid
                    .parse::<u32>()
                    .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()),
                _ => false,
            };
            if dead {
                let sql = format!(
                    "UPDATE {table} SET next_attempt_at = ?2 WHERE claimed_by = ?1 AND next_attempt_at > ?2"
                );
                released += conn.execute(&sql, params![c, now])?;
            }
        }
    }
    Ok(released)
}

/// The due rows of `table` (`due` is the state condition), oldest due first, at most
/// `limit`, optionally of one NAS; claimed for `lease` at `now`. Rows come back in
/// id order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn claim<T>(
    conn: &Connection,
    table: &str,
    columns: &str,
    due: &str,
    nas_ip: Option<&str>,
    now: i64,
    limit: usize,
    lease: Lease,
    row: fn(&Row<'_>) -> DbResult<T>,
    id_of: fn(&T) -> i64,
) -> Result<Vec<T>, StoreError> {
    let nas = if nas_ip.is_some() {
        " AND nas_ip = ?4"
    } else {
        ""
    };
    // SQLite has one server: nothing to lease (a job whose mark failed is due again
    // at the next run, as before leases).
    let leased = conn.backend() == super::db::Backend::Postgres;
    let set = if leased {
        "claimed_by = ?3, next_attempt_at = ?5"
    } else {
        "claimed_by = ?3"
    };
    let sql = format!(
        "UPDATE {table} SET {set} WHERE id IN \
             (SELECT id FROM {table} WHERE {due} AND next_attempt_at <= ?1{nas} \
              ORDER BY next_attempt_at, id LIMIT ?2{}) \
         RETURNING {columns}",
        conn.skip_locked()
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let until = now.saturating_add(lease.secs.max(1));
    let mut stmt = conn.prepare_cached(&sql)?;
    let (nas, until) = (nas_ip.unwrap_or(""), leased.then_some(until));
    let rows = match (nas_ip.is_some(), until) {
        (true, Some(u)) => stmt.query_map(params![now, limit, server_id(), nas, u], row)?,
        (false, Some(u)) => {
            stmt.query_map(params![now, limit, server_id(), None::<&str>, u], row)?
        }
        (true, None) => stmt.query_map(params![now, limit, server_id(), nas], row)?,
        (false, None) => stmt.query_map(params![now, limit, server_id()], row)?,
    };
    let mut out: Vec<T> = rows.collect::<Result<_, _>>()?;
    out.sort_by_key(id_of);
    Ok(out)
}
