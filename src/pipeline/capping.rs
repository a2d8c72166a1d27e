//! The capping decision of an accounting update (or a login, or the CLI): the user's
//! limits, the period's usage and topups as the store has them, the pure
//! [`crate::capping::evaluate`], and what it writes, all in the writer's transaction.

use std::collections::HashMap;

use chrono_tz::Tz;

use super::AcctStore;
use crate::capping::{
    accounting_action, evaluate, headroom, parse_limits, AcctAction, Decision, EvalInput,
    EvalOptions, Headroom, Limits, OverLimitPolicy, Period, PeriodKind, RawLimits,
    Usage as CapUsage,
};
use crate::periods;
use crate::sessions::{Outcome, Usage};
use crate::store::{cap_usage, DecideRequest, LimitRow, StoreError};

/// The capping part of an accounting update, decided in the update's own commit
/// (see [`crate::store::Store::record_capped`]).
#[derive(Debug, Clone)]
pub struct AcctCapping {
    /// Capping attributes from the control list (or remembered from the login).
    pub control: RawLimits,
    pub caveat_captrafzero: bool,
    pub period: PeriodKind,
    pub opts: EvalOptions,
    /// Over the allowance on Start / Interim: queue a disconnect (in the same commit)
    /// or only report.
    pub over_limit: OverLimitPolicy,
    pub now: i64,
    /// Quota fields of the user's policy from the control list (or remembered from
    /// the login); the stored policy's fill the rest (see [`crate::policies::quota`]).
    pub quota_control: crate::policies::RawPolicy,
}

/// What the capping part of an accounting update came to. The record itself is
/// committed whatever this says.
#[derive(Debug)]
pub enum CapOutcome {
    /// No limit for the user: nothing decided.
    Unlimited,
    /// Within the headroom of an earlier decision in this period that wrote
    /// nothing (see [`crate::capping::headroom`]): a decision now would write and
    /// do nothing too, so none was made.
    Within,
    /// Decided and written; with the ids of auto-topups added and what the session's
    /// update calls for (a `Disconnect` is already queued, see
    /// [`crate::sessions::Outcome::disconnect_queued`]).
    Decided(Box<Decision>, Vec<u64>, AcctAction),
    /// The user's limit attributes are invalid.
    Invalid(crate::capping::LimitError),
    /// The decision failed (its writes were rolled back, the record was not).
    Failed(String),
}

/// Loads the period's topups (and usage, unless given), evaluates and applies the
/// decision, all inside the writer's transaction: concurrent decisions for one user
/// are serialized, so two racing updates cannot both add auto-topups.
pub(crate) fn decide(
    tx: &impl AcctStore,
    r: &DecideRequest,
) -> Result<(Decision, Vec<u64>, Option<Headroom>), StoreError> {
    let (usage, topups, marks) = tx.capping_inputs(&r.username, r.period, r.usage)?;
    let input = EvalInput {
        username: &r.username,
        limits: &r.limits,
        usage,
        delta: r.delta,
        marks: &marks,
        topups: &topups,
        period: r.period,
        now: r.now,
        opts: &r.opts,
    };
    let d = evaluate(&input);
    let room = headroom(&input, &d);
    let ids = tx.apply_decision(&r.username, r.period.start, r.now, &d)?;
    Ok((d, ids, room))
}

/// Runs after an accounting update in the writer's transaction: the user's limits
/// (control list first, then the store), then the decision with the period's usage,
/// under its own savepoint so a failure there never undoes the record. Also returns
/// the decision's period and [`Headroom`] when it wrote nothing (unlimited users
/// included), for [`Headrooms`].
pub(crate) fn decide_after_record(
    tx: &impl AcctStore,
    tz: Tz,
    outcome: &crate::sessions::Outcome,
    status: crate::sessions::AcctStatus,
    c: &AcctCapping,
) -> (CapOutcome, Option<(Period, Headroom)>) {
    let username = outcome.username.as_str();
    let Some(period) = Period::containing(c.period, c.now, &tz) else {
        return (
            CapOutcome::Failed(format!("time {} is out of range", c.now)),
            None,
        );
    };
    let stored = match tx.user_limits(username) {
        Ok(rows) => rows,
        Err(e) => return (CapOutcome::Failed(e.to_string()), None),
    };
    let unlimited = (CapOutcome::Unlimited, Some((period, Headroom::UNBOUNDED)));
    if c.control.is_empty() && stored.is_empty() && !c.caveat_captrafzero {
        return unlimited;
    }
    let limits = match merge_limits(username, c.control.clone(), &stored, c.caveat_captrafzero) {
        Ok(l) if l.is_unlimited() => return unlimited,
        Ok(l) => l,
        Err(e) => return (CapOutcome::Invalid(e), None),
    };
    // The update's delta is part of the period's usage only if attributed to it.
    let in_period = outcome.attributed.is_some_and(|a| match period.kind {
        PeriodKind::Month => a.month == periods::local_month(period.start, tz),
        PeriodKind::Day => a.day == periods::local_day(period.start, tz),
    });
    let request = DecideRequest {
        username: username.to_string(),
        limits,
        period,
        now: c.now,
        opts: c.opts.clone(),
        usage: None,
        delta: if in_period {
            cap_usage(&outcome.delta)
        } else {
            CapUsage::default()
        },
    };
    match tx.nested(|| decide(tx, &request)) {
        Ok((d, ids, room)) => {
            let action = accounting_action(status, &d, c.over_limit);
            (
                CapOutcome::Decided(Box::new(d), ids, action),
                room.map(|h| (period, h)),
            )
        }
        Err(e) => (CapOutcome::Failed(e.to_string()), None),
    }
}

/// A user's limits: control-list values first, each missing field from the stored
/// rows.
pub fn merge_limits(
    user: &str,
    mut control: RawLimits,
    stored: &[LimitRow],
    caveat_captrafzero: bool,
) -> Result<Limits, crate::capping::LimitError> {
    if !stored.is_empty() {
        control.fill_from(&crate::store::raw_limits(stored));
    }
    parse_limits(user, &control, caveat_captrafzero)
}

/// What the writer knows of each capped user from the last capping decision that
/// wrote nothing: its [`Headroom`], counted down by every update since. While an
/// update stays within it, under the same control-list limits and in the same
/// period, a new decision would come to the same (nothing to write, nothing to do)
/// and is skipped; that is most Interim-Updates, far below any limit.
///
/// Everything else a decision reads is the store's, so this is dropped whenever the
/// store may have changed otherwise: a commit by another connection (the CLI adding
/// a topup or changing limits; seen through `PRAGMA data_version`), a capping write
/// through this writer, or a failed batch.
///
/// With several servers on the store (PostgreSQL) the others' accounting changes a
/// user's usage too, unseen by the version: there each update also checks that the
/// totals it left are this server's last totals plus its own delta (else another
/// server counted in between, and the user is decided again).
pub(crate) struct Headrooms {
    by_user: HashMap<String, Learnt>,
    data_version: Option<i64>,
    /// Most users kept; beyond it all are dropped and learnt again.
    capacity: usize,
    /// Check each update's totals (several servers may write).
    shared: bool,
}

struct Learnt {
    control: RawLimits,
    caveat_captrafzero: bool,
    period: Period,
    left: Headroom,
    /// The period's totals after the last update seen (shared stores only).
    totals: Option<Usage>,
}

impl Headrooms {
    pub(crate) fn new(capacity: usize) -> Self {
        Headrooms {
            by_user: HashMap::new(),
            data_version: None,
            capacity,
            shared: false,
        }
    }

    /// For a store several servers write (see [`Headrooms`]).
    pub(crate) fn shared(capacity: usize) -> Self {
        Headrooms {
            shared: true,
            ..Headrooms::new(capacity)
        }
    }

    pub(crate) fn clear(&mut self) {
        self.by_user.clear();
    }

    /// Drops everything if another connection committed since the last call.
    pub(crate) fn sync(&mut self, version: Option<i64>) {
        if version.is_none() || version != self.data_version {
            self.by_user.clear();
        }
        self.data_version = version;
    }

    /// Counts a recorded update down from its user's headroom; false when the user
    /// has none left (then it is forgotten).
    pub(crate) fn spend(&mut self, outcome: &Outcome, totals: Option<&Totals>) -> bool {
        let shared = self.shared;
        let Some(learnt) = self.by_user.get_mut(&outcome.username) else {
            return false;
        };
        let consistent = !shared || {
            let now = totals.map(|t| t.of(learnt.period.kind));
            match (learnt.totals, now) {
                // Nothing added by this update: nothing to compare yet.
                (_, None) => outcome.delta.is_zero() && learnt.totals.is_some(),
                (Some(before), Some(after)) => add(before, outcome.delta) == after,
                (None, Some(_)) => false,
            }
        };
        if consistent && learnt.left.take(cap_usage(&outcome.delta)) {
            if let Some(t) = totals {
                learnt.totals = Some(t.of(learnt.period.kind));
            }
            return true;
        }
        self.by_user.remove(&outcome.username);
        false
    }

    /// The user's headroom holds for this update's capping inputs.
    pub(crate) fn covers(&self, username: &str, c: &AcctCapping) -> bool {
        self.by_user.get(username).is_some_and(|l| {
            l.caveat_captrafzero == c.caveat_captrafzero
                && l.period.kind == c.period
                && (l.period.start..l.period.end).contains(&c.now)
                && l.control == c.control
                // A topup starting or expiring since changes the decision.
                && l.left.holds_at(c.now)
        })
    }

    pub(crate) fn learn(
        &mut self,
        username: &str,
        c: &AcctCapping,
        period: Period,
        left: Headroom,
        totals: Option<&Totals>,
    ) {
        let totals = totals.map(|t| t.of(period.kind));
        // A shared store's headroom is only as good as the totals it starts from.
        if self.shared && totals.is_none() {
            self.by_user.remove(username);
            return;
        }
        if self.by_user.len() >= self.capacity && !self.by_user.contains_key(username) {
            self.by_user.clear();
        }
        self.by_user.insert(
            username.to_string(),
            Learnt {
                control: c.control.clone(),
                caveat_captrafzero: c.caveat_captrafzero,
                period,
                left,
                totals,
            },
        );
    }
}

/// The user's day and month totals as an update left them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) day: Usage,
    pub(crate) month: Usage,
}

impl Totals {
    fn of(&self, kind: PeriodKind) -> Usage {
        match kind {
            PeriodKind::Month => self.month,
            PeriodKind::Day => self.day,
        }
    }
}

/// Saturating, as the store adds.
fn add(a: Usage, b: Usage) -> Usage {
    Usage {
        input_octets: a
            .input_octets
            .saturating_add(b.input_octets)
            .min(i64::MAX as u64),
        output_octets: a
            .output_octets
            .saturating_add(b.output_octets)
            .min(i64::MAX as u64),
        session_time: a
            .session_time
            .saturating_add(b.session_time)
            .min(i64::MAX as u64),
    }
}
