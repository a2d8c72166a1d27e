//! Bulk month-boundary disconnect: for each NAS with RouterOS API credentials, one
//! login, print the active PPP and Hotspot sessions, and remove every one that started
//! before the boundary in as few commands as possible. NASes are worked on in
//! parallel; each gets a result (and, for real runs, a `bulk_runs` row). NASes without
//! API credentials are left to the per-session path ([`crate::disconnect`]).
//!
//! Used by `rlm-rust bulk-disconnect` and, once a month shortly after the month
//! starts, by the module's background thread ([`AutoBulk`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono_tz::Tz;
use serde::Serialize;

use crate::background::Job;
use crate::disconnect::api_login;
use crate::periods;
use crate::routeros::{self, sessions_to_remove, SessionTable};
use crate::store::{Admin, BulkRun, NasConfig, NasRow, StoreError};

/// Whether the NAS can be worked on over its RouterOS API.
pub fn has_api(nas: &NasConfig) -> bool {
    nas.api_user.as_deref().is_some_and(|u| !u.is_empty()) && nas.api_password.is_some()
}

/// Why a NAS is not in the bulk run, if it is not.
pub fn skip_reason(nas: &NasConfig) -> Option<String> {
    (!has_api(nas)).then(|| {
        "no RouterOS API credentials: its sessions fall back to the per-session path \
         (Disconnect-Request when their next interim arrives)"
            .to_string()
    })
}

/// Why [`select`] found no NASes to work on.
#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no NAS with IP or name {0:?}")]
    Unknown(String),
    #[error("no NASes registered (add them with `rlm-rust nas add`)")]
    NoneRegistered,
    #[error("choose a NAS (by IP or name), or all")]
    NoneChosen,
}

/// The NASes a bulk run works on: every registered one (`all`), or those named by IP
/// or name, in that order.
pub fn select(admin: &Admin, all: bool, keys: &[String]) -> Result<Vec<NasConfig>, SelectError> {
    let nases: Vec<NasConfig> = if all {
        admin.nas_list()?.into_iter().map(|n| n.config).collect()
    } else {
        if keys.is_empty() {
            return Err(SelectError::NoneChosen);
        }
        let mut v = Vec::new();
        for key in keys {
            let row = admin
                .nas_get(key)?
                .ok_or_else(|| SelectError::Unknown(key.clone()))?;
            v.push(row.config);
        }
        v
    };
    if nases.is_empty() {
        return Err(SelectError::NoneRegistered);
    }
    Ok(nases)
}

#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// "Now" for turning uptimes into start times (unix seconds).
    pub now: i64,
    /// Sessions that started strictly before this are removed.
    pub boundary: i64,
    /// List what would be removed; remove nothing.
    pub dry_run: bool,
    /// Most NASes worked on at once.
    pub parallel: usize,
}

/// A session a dry run would remove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub table: &'static str,
    pub id: String,
    pub user: String,
    pub address: Option<String>,
    pub uptime_secs: u64,
    pub started: i64,
}

/// The result for one NAS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NasResult {
    pub nas_ip: String,
    pub name: Option<String>,
    /// Active sessions read from both tables.
    pub seen: usize,
    /// Sessions that started before the boundary.
    pub selected: usize,
    pub removed: usize,
    /// Selected, but gone by the time of the remove.
    pub already_gone: usize,
    pub failed: usize,
    /// Command sentences sent (login excluded).
    pub commands: usize,
    /// Why the NAS failed as a whole (login refused, timeout, ...), or the first
    /// per-session failure.
    pub error: Option<String>,
    /// Set for NASes left to the per-session path.
    pub skipped: Option<String>,
    /// Dry run only: what would be removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_remove: Vec<Candidate>,
    pub elapsed_ms: u64,
}

impl NasResult {
    /// The NAS failed: error, or sessions that could not be removed.
    pub fn is_failure(&self) -> bool {
        self.skipped.is_none() && (self.error.is_some() || self.failed > 0)
    }
}

fn work_on(nas: &NasConfig, opts: &BulkOptions) -> NasResult {
    let t0 = Instant::now();
    let mut r = NasResult {
        nas_ip: nas.nas_ip.clone(),
        name: nas.name.clone(),
        ..Default::default()
    };
    if let Some(why) = skip_reason(nas) {
        r.skipped = Some(why);
        return r;
    }
    match api_login(nas) {
        Err(e) => r.error = Some(e),
        Ok(mut client) if opts.dry_run => {
            for table in SessionTable::ALL {
                r.commands += 1;
                let active = match routeros::list_active(&mut client, table) {
                    Ok(a) => a,
                    Err(routeros::Error::Trap { .. }) => continue,
                    Err(e) => {
                        r.error = Some(format!("print {}: {e}", table.path()));
                        break;
                    }
                };
                r.seen += active.len();
                let ids = sessions_to_remove(&active, opts.now, opts.boundary);
                r.selected += ids.len();
                r.would_remove
                    .extend(
                        active
                            .iter()
                            .filter(|s| ids.contains(&s.id))
                            .map(|s| Candidate {
                                table: table.path(),
                                id: s.id.clone(),
                                user: s.user.clone(),
                                address: s.address.clone(),
                                uptime_secs: s.uptime_secs,
                                started: s.started_at(opts.now),
                            }),
                    );
            }
        }
        Ok(mut client) => {
            match routeros::disconnect_started_before(&mut client, opts.now, opts.boundary) {
                Ok(rep) => {
                    r.seen = rep.seen;
                    r.selected = rep.selected;
                    r.removed = rep.removed;
                    r.already_gone = rep.already_gone;
                    r.failed = rep.failed.len();
                    r.commands = rep.commands;
                    r.error = rep
                        .failed
                        .first()
                        .map(|(path, id, msg)| format!("remove {id} in {path}: {msg}"));
                }
                Err(e) => r.error = Some(format!("RouterOS API: {e}")),
            }
        }
    }
    r.elapsed_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    r
}

/// Works on `nases` in parallel (at most `opts.parallel` at once); results in the
/// order of `nases`. `progress` is called from the worker threads as each NAS
/// finishes; `stop` (when set) keeps NASes not yet started from starting.
pub fn run(
    nases: &[NasConfig],
    opts: &BulkOptions,
    stop: Option<&AtomicBool>,
    progress: &(dyn Fn(&NasResult) + Sync),
) -> Vec<NasResult> {
    crate::parallel::map(nases, opts.parallel, |nas| {
        let r = if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            NasResult {
                nas_ip: nas.nas_ip.clone(),
                name: nas.name.clone(),
                error: Some("not started: stopping".into()),
                ..Default::default()
            }
        } else {
            work_on(nas, opts)
        };
        progress(&r);
        r
    })
}

/// Stores a `bulk_runs` row for every NAS that was worked on (not the skipped).
pub fn record(
    admin: &Admin,
    results: &[NasResult],
    started: i64,
    finished: i64,
) -> Result<(), StoreError> {
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    for r in results {
        crate::metrics::global().bulk(r);
    }
    for r in results.iter().filter(|r| r.skipped.is_none()) {
        admin.bulk_run_record(&BulkRun {
            nas_ip: r.nas_ip.clone(),
            started,
            finished: Some(finished),
            seen: n(r.seen),
            removed: n(r.removed),
            failed: n(r.failed),
            error: r.error.clone(),
        })?;
    }
    Ok(())
}

/// NASes due for this month's automatic run at `now`: those with API credentials
/// and no bulk run since the month started; none before `month start + delay`.
pub fn due_for_month(
    admin: &Admin,
    now: i64,
    tz: Tz,
    delay_secs: u64,
) -> Result<Vec<NasRow>, StoreError> {
    let month_start = periods::month_start(now, tz);
    let delay = i64::try_from(delay_secs).unwrap_or(i64::MAX);
    if now < month_start.saturating_add(delay) {
        return Ok(Vec::new());
    }
    let mut due = Vec::new();
    for nas in admin.nas_list()? {
        if !has_api(&nas.config) {
            continue;
        }
        let last = admin
            .bulk_runs(&nas.config.nas_ip)?
            .first()
            .map(|r| r.started);
        if last.map_or(true, |t| t < month_start) {
            due.push(nas);
        }
    }
    Ok(due)
}

/// The automatic run: once per month per NAS, `delay` after the month starts, on the
/// background thread. A NAS whose run failed is not retried this month: its sessions
/// are caught by the per-session path at their next interim.
pub struct AutoBulk {
    pub db: PathBuf,
    pub tz: Tz,
    pub delay_secs: u64,
    pub parallel: usize,
    pub stop: Arc<AtomicBool>,
    admin: Option<Admin>,
}

impl AutoBulk {
    pub fn new(db: PathBuf, tz: Tz, delay_secs: u64, stop: Arc<AtomicBool>) -> Self {
        AutoBulk {
            db,
            tz,
            delay_secs,
            parallel: 32,
            stop,
            admin: None,
        }
    }

    /// Runs what is due at `now`; returns the results (empty: nothing due).
    pub fn run_at(&mut self, now: i64) -> Result<Vec<NasResult>, String> {
        if self.admin.is_none() {
            self.admin = Some(Admin::open(&self.db).map_err(|e| e.to_string())?);
        }
        let admin = self.admin.as_ref().ok_or("no database")?;
        let due = due_for_month(admin, now, self.tz, self.delay_secs).map_err(|e| e.to_string())?;
        // With several servers on one database, one of them runs each NAS's month.
        let month_start = periods::month_start(now, self.tz);
        let mut claimed = Vec::with_capacity(due.len());
        for nas in due {
            if admin
                .bulk_month_claim(&nas.config.nas_ip, month_start, now)
                .map_err(|e| e.to_string())?
            {
                claimed.push(nas);
            }
        }
        let due = claimed;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let opts = BulkOptions {
            now,
            boundary: periods::month_start(now, self.tz),
            dry_run: false,
            parallel: self.parallel,
        };
        let configs: Vec<NasConfig> = due.into_iter().map(|n| n.config).collect();
        let results = run(&configs, &opts, Some(&self.stop), &|_| {});
        record(admin, &results, now, periods::now().max(now)).map_err(|e| e.to_string())?;
        Ok(results)
    }
}

impl Job for AutoBulk {
    fn name(&self) -> &'static str {
        "bulk disconnect"
    }

    fn run(&mut self) -> Result<(), String> {
        let results = self
            .run_at(periods::now())
            .inspect_err(|_| self.admin = None)?;
        for r in &results {
            match &r.error {
                None => log::info!(
                    "bulk disconnect of {}: {} sessions seen, {} started before this month, {} \
                     removed, {} already gone ({} ms)",
                    r.nas_ip,
                    r.seen,
                    r.selected,
                    r.removed,
                    r.already_gone,
                    r.elapsed_ms
                ),
                Some(e) => log::error!(
                    "bulk disconnect of {} failed ({} removed, {} failed): {e}; its sessions fall \
                     back to the per-session path",
                    r.nas_ip,
                    r.removed,
                    r.failed
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_credentials_decide_the_path() {
        let mut n = NasConfig::new("192.0.2.1");
        assert!(!has_api(&n));
        assert!(skip_reason(&n).unwrap().contains("per-session"));
        n.api_user = Some("admin".into());
        assert!(!has_api(&n), "user without password");
        n.api_password = Some(String::new());
        assert!(
            has_api(&n),
            "an empty password is a valid RouterOS password"
        );
        n.api_user = Some(String::new());
        assert!(!has_api(&n));
    }

    #[test]
    fn failure_means_error_or_failed_sessions_but_not_skipped() {
        let cases = [
            (None, 0, None, false),
            (Some("login refused"), 0, None, true),
            (None, 2, None, true),
            (None, 0, Some("no API"), false),
        ];
        for (error, failed, skipped, want) in cases {
            let r = NasResult {
                error: error.map(String::from),
                failed,
                skipped: skipped.map(String::from),
                ..Default::default()
            };
            assert_eq!(r.is_failure(), want, "{r:?}");
        }
    }
}
