//! The accounting pipeline, written once for every backend: an update's session
//! ([`sessions::apply`]), its usage by local day and month, the month-boundary
//! disconnect, then for capped users the capping decision, the policy's quotas and
//! what they queue (a disconnect, or a CoA when the policy throttles or redirects).
//! The rules decide; the store only persists: [`AcctStore`] is everything the
//! pipeline asks of it, inside the writer's transaction.

pub(crate) mod capping;

use chrono_tz::Tz;

pub use capping::{merge_limits, AcctCapping, CapOutcome};
use capping::{Headrooms, Totals};

use crate::capping::{AcctAction, Decision, Period, Usage as CapUsage, UsageMark};
use crate::periods;
use crate::policies::{RawPolicy, Reached};
use crate::sessions::{self, AcctUpdate, Attribution, Outcome, OutcomeKind, Session, Usage};
use crate::store::{CoaPurpose, LimitRow, NewCoaJob, NewDisconnectJob, StoreError};
use crate::topups::TopupBalance;

/// What the pipeline reads and writes, in the transaction of the update's batch.
pub(crate) trait AcctStore {
    /// Closes every open session of the NAS (Accounting-On/Off) at `at`.
    fn close_nas(&self, nas_ip: &str, at: i64, reason: &str) -> Result<usize, StoreError>;
    fn load_session(&self, nas_ip: &str, key: &str) -> Result<Option<Session>, StoreError>;
    /// The NAS's `counter_wrap` setting allows counting a 32-bit wrap.
    fn nas_counts_wraps(&self, nas_ip: &str) -> bool;
    fn save_session(
        &self,
        nas_ip: &str,
        key: &str,
        prev: Option<&Session>,
        s: &Session,
    ) -> Result<(), StoreError>;
    /// Adds to the user's day and month (and hour, for modulated users); the day's
    /// and the month's totals after it.
    /// (None where only this server writes: SQLite.)
    fn add_usage(
        &self,
        user: &str,
        at: Attribution,
        event_time: i64,
        d: Usage,
    ) -> Result<Option<Totals>, StoreError>;
    /// Queues a disconnect (one per session); true when it was queued.
    fn enqueue_disconnect(&self, job: &NewDisconnectJob, now: i64) -> Result<bool, StoreError>;
    fn user_limits(&self, user: &str) -> Result<Vec<LimitRow>, StoreError>;
    /// The period's usage (unless given), topups and usage marks.
    fn capping_inputs(
        &self,
        user: &str,
        period: Period,
        usage: Option<CapUsage>,
    ) -> Result<(CapUsage, Vec<TopupBalance>, Vec<UsageMark>), StoreError>;
    /// Writes what a decision calls for; the ids of the auto-topups added.
    fn apply_decision(
        &self,
        user: &str,
        period_start: i64,
        now: i64,
        d: &Decision,
    ) -> Result<Vec<u64>, StoreError>;
    /// Runs `f` so that its writes are undone if it fails (the record's stay).
    fn nested<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError>;
    /// What the user's stored policy does to an exhausted user instead of a
    /// disconnect: (what, rate limit, address list).
    fn exhausted_change(
        &self,
        user: &str,
    ) -> Option<(&'static str, Option<String>, Option<String>)>;
    fn enqueue_coa(&self, job: &NewCoaJob, why: &str, now: i64) -> Result<bool, StoreError>;
    /// The quota of the user's policy this update reached, if any; `totals`: what
    /// [`AcctStore::add_usage`] returned for it.
    fn policy_quota(
        &self,
        outcome: &Outcome,
        now: i64,
        control: &RawPolicy,
        totals: Option<&Totals>,
    ) -> Result<Option<Reached>, StoreError>;
}

/// The accounting rules' settings the writer applies to every update.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Rules {
    /// Queue a disconnect for Start/Interim of sessions started in an earlier month.
    pub(crate) month_boundary: bool,
    pub(crate) bounds: sessions::Bounds,
}

/// Applies one update; returns its outcome and the session as stored after it (None
/// for Accounting-On/Off).
/// Also the user's totals after it, when it added usage.
pub(crate) fn record(
    tx: &impl AcctStore,
    tz: Tz,
    rules: &Rules,
    u: &AcctUpdate,
) -> Result<(Outcome, Option<Session>, Option<Totals>), StoreError> {
    sessions::validate(u).map_err(|why| StoreError::Invalid(why.to_string()))?;
    if let Some(reason) = sessions::nas_close_reason(u.status) {
        let closed = tx.close_nas(&u.nas_ip, u.event_time, reason)?;
        return Ok((
            Outcome::new(OutcomeKind::NasClosed { closed }, u),
            None,
            None,
        ));
    }
    let prev = tx.load_session(&u.nas_ip, u.session_key())?;
    let mut wrap_ok = || tx.nas_counts_wraps(&u.nas_ip);
    let Some(applied) = sessions::apply(prev.as_ref(), u, &rules.bounds, &mut wrap_ok) else {
        return Err(StoreError::Invalid(format!(
            "{} is not a session packet",
            u.status
        )));
    };
    let mut outcome = Outcome::new(applied.kind, u);
    outcome.regressed = applied.regressed;
    outcome.anomalies = applied.anomalies;
    if let Some(p) = &prev {
        outcome.username = p.username.clone();
    }
    if let Some(state) = &applied.state {
        tx.save_session(&u.nas_ip, u.session_key(), prev.as_ref(), state)?;
        outcome.username = state.username.clone();
    }
    let mut totals = None;
    if !applied.delta.is_zero() {
        let attributed = Attribution {
            day: periods::local_day(u.event_time, tz),
            month: periods::local_month(u.event_time, tz),
        };
        totals = tx.add_usage(&outcome.username, attributed, u.event_time, applied.delta)?;
        outcome.delta = applied.delta;
        outcome.attributed = Some(attributed);
    }
    if rules.month_boundary {
        // Same transaction as the update: the job exists exactly when the update does.
        let session = applied.state.as_ref().or(prev.as_ref());
        if let Some(job) = crate::disconnect::month_boundary_job(u, session, u.event_time, tz) {
            outcome.disconnect_queued = tx.enqueue_disconnect(&job, u.event_time)?;
        }
    }
    Ok((outcome, applied.state.or(prev), totals))
}

/// [`record`], then the capping decision for the session's user and what it calls
/// for (skipped while the update stays within the user's headroom).
pub(crate) fn record_capped(
    tx: &impl AcctStore,
    headrooms: &mut Headrooms,
    tz: Tz,
    rules: &Rules,
    u: &AcctUpdate,
    c: &AcctCapping,
) -> Result<(Outcome, CapOutcome), StoreError> {
    let (mut outcome, session, totals) = record(tx, tz, rules, u)?;
    let cap = if headrooms.spend(&outcome, totals.as_ref())
        && headrooms.covers(&outcome.username, c)
    {
        CapOutcome::Within
    } else {
        let (mut cap, room) = capping::decide_after_record(tx, tz, &outcome, u.status, c);
        if let Some((period, left)) = room {
            headrooms.learn(&outcome.username, c, period, left, totals.as_ref());
        }
        let over = match &cap {
            CapOutcome::Decided(_, _, AcctAction::Disconnect { reason }) => Some(reason.clone()),
            _ => None,
        };
        if let (Some(reason), CapOutcome::Decided(_, _, action)) = (over, &mut cap) {
            // The user's stored policy may say throttle or redirect instead: then
            // a CoA is queued for the background thread (once per session).
            match tx.exhausted_change(&outcome.username) {
                Some((kind, rate_limit, address_list)) => {
                    let coa = NewCoaJob {
                        session: session_job_of(
                            u,
                            session.as_ref(),
                            format!("over limit: {reason}"),
                        ),
                        purpose: CoaPurpose::Exhausted,
                        rate_limit,
                        address_list,
                    };
                    let why = format!("over limit: {reason}; {kind}");
                    match tx.enqueue_coa(&coa, &why, u.event_time) {
                        Ok(queued) => outcome.coa_queued |= queued,
                        Err(e) => {
                            log::error!("cannot queue the CoA of {:?}: {e}", coa.session.username)
                        }
                    }
                    *action = AcctAction::Change {
                        reason: format!("{reason}; {kind}"),
                    };
                }
                None => disconnect_session(
                    tx,
                    u,
                    session.as_ref(),
                    &mut outcome,
                    format!("over limit: {reason}"),
                ),
            }
        }
        cap
    };
    // A session already on its way out (or being throttled) needs no quota check.
    if !outcome.disconnect_queued && !outcome.coa_queued {
        match tx.policy_quota(&outcome, u.event_time, &c.quota_control, totals.as_ref()) {
            Ok(Some(reached)) => {
                let reason = format!("policy quota: {reached}");
                disconnect_session(tx, u, session.as_ref(), &mut outcome, reason);
                outcome.quota_reached = Some(reached);
            }
            Ok(None) => {}
            // The record stands; logins refuse a user whose quotas are invalid.
            Err(e) => {
                log::error!("policy quota check of {:?} failed: {e}", outcome.username)
            }
        }
    }
    Ok((outcome, cap))
}

/// The disconnect queue's (or CoA queue's) job for the update's session.
fn session_job_of(u: &AcctUpdate, session: Option<&Session>, reason: String) -> NewDisconnectJob {
    let start = session.map_or_else(
        || u.event_time - i64::from(u.session_time.unwrap_or(0)),
        |s| s.start_time,
    );
    crate::disconnect::session_job(u, session, start, reason)
}

/// Queues the disconnection of the update's session, in the update's commit (one
/// job per session: a session with a job keeps it).
fn disconnect_session(
    tx: &impl AcctStore,
    u: &AcctUpdate,
    session: Option<&Session>,
    outcome: &mut Outcome,
    reason: String,
) {
    let job = session_job_of(u, session, reason);
    // A failed insert is undone by the database alone; the record stands.
    match tx.enqueue_disconnect(&job, u.event_time) {
        Ok(queued) => outcome.disconnect_queued |= queued,
        Err(e) => log::error!("cannot queue the disconnect of {:?}: {e}", job.username),
    }
}
