//! Headroom: how much more a user may use before a decision could come out
//! differently.
//!
//! Accounting decides capping after every Interim of a capped user, yet most
//! updates are far below any limit, where the decision writes nothing and acts on
//! nothing. A decision that wrote nothing stays that way while usage grows by less
//! than its [`Headroom`] (same limits, topups and period) and until the next topup
//! validity boundary, so the caller may skip the decisions in between and only count
//! the usage down.

use super::decide::{Decision, EvalInput, State, Usage};
use super::Kind;

/// Usage growth a decision holds for, per kind; `None` = no bound (no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    pub traffic_bytes: Option<u64>,
    pub uptime_secs: Option<u64>,
    /// Holds only for decisions before this time (unix seconds): the next topup
    /// `valid_from` / `valid_to` after the decision, where the allowance changes
    /// (and a usage mark is due). `None` = no such boundary.
    pub until: Option<i64>,
}

impl Headroom {
    /// No limit at all: every update is within.
    pub const UNBOUNDED: Headroom = Headroom {
        traffic_bytes: None,
        uptime_secs: None,
        until: None,
    };

    /// Still sound for a decision at `now`.
    pub fn holds_at(&self, now: i64) -> bool {
        self.until.map_or(true, |u| now < u)
    }

    /// Counts `used` down; false (and unchanged) once it would no longer be covered.
    pub fn take(&mut self, used: Usage) -> bool {
        let left = |bound: Option<u64>, used: u64| match bound {
            None => Some(None),
            Some(b) => b.checked_sub(used).map(Some),
        };
        match (
            left(self.traffic_bytes, used.traffic_bytes),
            left(self.uptime_secs, used.uptime_secs),
        ) {
            (Some(t), Some(u)) => {
                self.traffic_bytes = t;
                self.uptime_secs = u;
                true
            }
            _ => false,
        }
    }
}

impl Decision {
    /// Allowed, and nothing to store: no topup consumed, depleted or added, nobody
    /// to notify.
    pub fn writes_nothing(&self) -> bool {
        matches!(self.state, State::Allowed { .. })
            && self.new_auto_topups.is_empty()
            && self.depleted.is_empty()
            && self.notifications.is_empty()
            && self.topup_consumption.iter().all(|r| r.consumed == 0)
    }
}

/// The headroom of `decision` (the result of [`super::evaluate`] on `input`): for
/// any growth within it, evaluating again with the same limits, topups and period
/// also [writes nothing](Decision::writes_nothing). None if the decision writes
/// something or no growth at all is covered.
///
/// Per limited kind the growth must keep usage within the limit itself (beyond it
/// topups are consumed, which is a write), and the remaining allowance above zero
/// (not exhausted) and above the auto-topup threshold (no auto-topup planned).
/// And only until the next boundary of a topup of a limited kind: a topup starting
/// or expiring changes the allowance without any usage.
pub fn headroom(input: &EvalInput<'_>, decision: &Decision) -> Option<Headroom> {
    if !decision.writes_nothing() {
        return None;
    }
    let State::Allowed {
        remaining_traffic_bytes,
        remaining_uptime_secs,
    } = decision.state
    else {
        return None;
    };
    let of = |kind: Kind, remaining: Option<u64>| -> Option<Option<u64>> {
        let Some(limit) = input.limits.effective_limit(kind) else {
            return Some(None);
        };
        let within_limit = limit.checked_sub(input.usage.of(kind))?;
        let floor = input
            .limits
            .autotopup(kind)
            .map_or(0, |a| kind.to_base(a.threshold));
        // remaining − growth must stay > floor.
        let above_floor = remaining?.checked_sub(floor)?.checked_sub(1)?;
        Some(Some(within_limit.min(above_floor)))
    };
    let until = input
        .topups
        .iter()
        .map(|b| &b.topup)
        .filter(|t| {
            t.kind()
                .is_some_and(|k| input.limits.effective_limit(k).is_some())
        })
        .flat_map(|t| [t.valid_from, t.valid_to])
        .filter(|&b| b > input.now)
        .min();
    Some(Headroom {
        traffic_bytes: of(Kind::Traffic, remaining_traffic_bytes)?,
        uptime_secs: of(Kind::Uptime, remaining_uptime_secs)?,
        until,
    })
}
