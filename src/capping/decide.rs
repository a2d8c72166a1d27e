//! The capping decision: limits + period usage + topups → allow / reject, topup
//! bookkeeping, auto-topups and notifications. Pure: the caller passes the time.

use std::fmt::Write as _;

use super::limits::{AutoTopup, Limits};
use super::Period;
use crate::notify::Vars;
use crate::sessions::AcctStatus;
use crate::topups::{
    allocate_in_time, consumption_order_key, segments, ConsumptionRow, Kind, NewTopup,
    TimeAllocation, TopupBalance, Window, TYPE_AUTO,
};

/// Usage in the period being evaluated (all of the user's sessions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Input + output octets.
    pub traffic_bytes: u64,
    pub uptime_secs: u64,
}

impl Usage {
    pub fn of(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Traffic => self.traffic_bytes,
            Kind::Uptime => self.uptime_secs,
        }
    }

    pub fn saturating_sub(&self, other: Usage) -> Usage {
        Usage {
            traffic_bytes: self.traffic_bytes.saturating_sub(other.traffic_bytes),
            uptime_secs: self.uptime_secs.saturating_sub(other.uptime_secs),
        }
    }
}

/// The user's usage in the period recorded before time `at`, a topup's `valid_from`
/// or `valid_to` inside the period: what lies before that boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct UsageMark {
    pub at: i64,
    pub usage: Usage,
}

/// Operator settings for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Reply-Message when the traffic allowance is used up.
    pub traffic_message: String,
    /// Reply-Message when the uptime allowance is used up.
    pub uptime_message: String,
    /// Most auto-topups of one kind added by one decision (guards against a tiny
    /// amount with no limit creating millions of rows).
    pub max_auto_topups: u32,
    /// Build [`Decision::explanation`] (costs formatting on a hot path; the module
    /// asks only when debug logging is on).
    pub explain: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            traffic_message: "Traffic limit reached".into(),
            uptime_message: "Uptime limit reached".into(),
            max_auto_topups: 1000,
            explain: true,
        }
    }
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct EvalInput<'a> {
    pub username: &'a str,
    pub limits: &'a Limits,
    /// Usage in `period`, including the session being accounted, if any.
    pub usage: Usage,
    /// The accounting update being decided (part of `usage`, attributed at `now`);
    /// zero for logins and the CLI.
    pub delta: Usage,
    /// Stored [`UsageMark`]s of `period`. A boundary `≤ now` without one reads as
    /// `usage − delta`: nothing was recorded since it passed.
    pub marks: &'a [UsageMark],
    /// The user's topups that may count in `period`, with their earlier consumption.
    /// Rows that do not count (other kind, no overlap, depleted earlier) are skipped.
    pub topups: &'a [TopupBalance],
    pub period: Period,
    /// Unix seconds.
    pub now: i64,
    pub opts: &'a EvalOptions,
}

/// Which allowance is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Which {
    Traffic,
    Uptime,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum State {
    /// `None` = unlimited. Otherwise > 0.
    Allowed {
        remaining_traffic_bytes: Option<u64>,
        remaining_uptime_secs: Option<u64>,
    },
    Exhausted {
        which: Which,
        reply_message: String,
    },
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// Auto-topups were added (`autotopup.toAdd` > 0).
    Added,
    /// Auto-topups were needed but the per-period limit allows none (`autotopup.toAdd` = 0).
    LimitReached,
}

/// One message to one target. Render with [`crate::notify::render`] and the
/// operator's template. `key` is unique per user, kind, period, event and target:
/// store it with a unique constraint and send only on insert, so re-evaluation
/// never sends twice.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    pub kind: Kind,
    pub event: NotifyEvent,
    pub target: String,
    pub key: String,
    pub vars: Vars,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    pub state: State,
    /// Auto-topups to insert (with their own consumption in this period).
    pub new_auto_topups: Vec<NewTopup>,
    /// This period's consumption of every counted existing topup, zeros included:
    /// replace the stored rows for (topup, period) with these.
    pub topup_consumption: Vec<ConsumptionRow>,
    /// Existing topups used up now: set `depleted`, `depleted_at = now`.
    pub depleted: Vec<u64>,
    /// Usage marks to store (boundaries that passed without one), for the period.
    pub marks: Vec<UsageMark>,
    pub notifications: Vec<Notification>,
    /// One operator-readable line: what was found, what was decided, why.
    pub explanation: String,
}

impl Decision {
    /// Allowed with no limit, nothing to write: the starting point of [`evaluate`].
    pub fn unlimited() -> Decision {
        Decision {
            state: State::Allowed {
                remaining_traffic_bytes: None,
                remaining_uptime_secs: None,
            },
            new_auto_topups: Vec::new(),
            topup_consumption: Vec::new(),
            depleted: Vec::new(),
            marks: Vec::new(),
            notifications: Vec::new(),
            explanation: String::new(),
        }
    }

    pub fn is_exhausted(&self) -> bool {
        matches!(self.state, State::Exhausted { .. })
    }
}

/// A topup counted in the period, existing or planned.
#[derive(Debug, Clone)]
struct Slot {
    id: Option<u64>,
    order: (i64, i64, u64),
    valid_from: i64,
    valid_to: i64,
    value: u64,
    available: u64,
    consumed_before: u64,
    already_depleted: bool,
}

/// Auto-topup arithmetic for one kind, in configured units (MB / minutes).
#[derive(Debug, Clone, Copy, Default)]
struct AutoPlan {
    needed: u64,
    added: u64,
    added_before: u64,
}

/// The result for one kind.
#[derive(Debug, Clone)]
struct KindOutcome {
    kind: Kind,
    /// Effective limit (bytes / seconds); `None` = unlimited.
    limit: Option<u64>,
    used: u64,
    /// What existing topups give this period: what they covered plus the rest of
    /// those valid now.
    topups_given: u64,
    /// Usage that nothing valid at the time covered.
    uncovered: u64,
    topups_counted: usize,
    slots: Vec<Slot>,
    consumed: Vec<u64>,
    plan: AutoPlan,
    /// Remaining before / after the planned auto-topups (signed: may be negative).
    remaining_before: i128,
    remaining: i128,
}

impl KindOutcome {
    fn exhausted(&self) -> bool {
        self.limit.is_some() && self.remaining <= 0
    }

    fn remaining_opt(&self) -> Option<u64> {
        self.limit
            .map(|_| u64::try_from(self.remaining.max(0)).unwrap_or(u64::MAX))
    }
}

fn plan_auto(
    kind: Kind,
    auto: &AutoTopup,
    remaining: i128,
    added_before: u64,
    max: u32,
) -> AutoPlan {
    let unit = i128::from(kind.unit_size());
    let amount = i128::from(auto.amount) * unit;
    let threshold = i128::from(auto.threshold) * unit;
    if remaining > threshold || amount <= 0 {
        return AutoPlan {
            added_before,
            ..AutoPlan::default()
        };
    }
    // Fewest topups that lift the remaining allowance above the threshold.
    let needed = u64::try_from((threshold - remaining) / amount + 1).unwrap_or(u64::MAX);
    let allowed = auto
        .limit
        .map_or(u64::MAX, |l| l.saturating_sub(added_before) / auto.amount);
    AutoPlan {
        needed,
        added: needed.min(allowed).min(u64::from(max)),
        added_before,
    }
}

/// The usage before the boundary `at` for `kind`, if marked.
fn mark_at(marks: &[UsageMark], at: i64, kind: Kind) -> Option<u64> {
    marks.iter().find(|m| m.at == at).map(|m| m.usage.of(kind))
}

/// Splits the period at the slots' boundaries and covers each stretch's usage
/// (see [`allocate_in_time`]); `slots` in consumption order.
fn allocate(input: &EvalInput<'_>, kind: Kind, base: u64, slots: &[Slot]) -> TimeAllocation {
    let used = input.usage.of(kind);
    let before = used.saturating_sub(input.delta.of(kind));
    let points: Vec<(i64, Option<u64>)> = slots
        .iter()
        .flat_map(|s| [s.valid_from, s.valid_to])
        .map(|b| (b, mark_at(input.marks, b, kind)))
        .collect();
    let segs = segments(input.period.start, input.now, &points, before, used);
    let windows: Vec<Window> = slots
        .iter()
        .map(|s| Window {
            from: s.valid_from,
            to: s.valid_to,
            available: s.available,
        })
        .collect();
    allocate_in_time(base, &segs, &windows)
}

/// What is left now, or (when nothing is) minus the usage nothing covered.
fn signed_remaining(a: &TimeAllocation) -> i128 {
    if a.available_now > 0 {
        i128::from(a.available_now)
    } else {
        -i128::from(a.uncovered)
    }
}

fn kind_outcome(input: &EvalInput<'_>, kind: Kind, allow_auto: bool) -> KindOutcome {
    let (start, end) = (input.period.start, input.period.end);
    let limit = input.limits.effective_limit(kind);
    let used = input.usage.of(kind);
    let mut slots: Vec<Slot> = Vec::new();
    if limit.is_some() {
        for b in input
            .topups
            .iter()
            .filter(|b| b.topup.counts_in(kind, start, end))
        {
            let t = &b.topup;
            slots.push(Slot {
                id: Some(t.id),
                order: consumption_order_key(t.valid_to, t.valid_from, Some(t.id)),
                valid_from: t.valid_from,
                valid_to: t.valid_to,
                value: t.value_base(),
                available: b.available(),
                consumed_before: b.consumed_before,
                already_depleted: t.depleted,
            });
        }
    }
    slots.sort_by_key(|s| s.order);
    let topups_counted = slots.len();
    let first = limit.map(|l| allocate(input, kind, l, &slots));
    let given = |a: &TimeAllocation, slots: &[Slot]| {
        slots
            .iter()
            .zip(&a.consumed)
            .filter(|(s, _)| s.id.is_some())
            .map(|(s, &c)| {
                let valid_now = s.valid_from <= input.now && input.now < s.valid_to;
                c.saturating_add(if valid_now {
                    s.available.saturating_sub(c)
                } else {
                    0
                })
            })
            .fold(0u64, u64::saturating_add)
    };
    // Auto-topups start now, so they can cover only the update being decided: plan
    // with what is left minus its uncovered part (earlier overage stays uncovered).
    let remaining_before = first.as_ref().map_or(0, |a| {
        i128::from(a.available_now) - i128::from(a.uncovered_last)
    });
    let added_before = input
        .topups
        .iter()
        .map(|b| &b.topup)
        .filter(|t| t.is_auto() && t.kind() == Some(kind) && (start..end).contains(&t.created))
        .fold(0u64, |a, t| a.saturating_add(t.value));
    let plan = match input.limits.autotopup(kind) {
        Some(auto) if limit.is_some() => {
            let mut p = plan_auto(
                kind,
                auto,
                remaining_before,
                added_before,
                input.opts.max_auto_topups,
            );
            if !allow_auto {
                p.added = 0;
            }
            p
        }
        _ => AutoPlan {
            added_before,
            ..AutoPlan::default()
        },
    };
    let mut alloc = first;
    if let (Some(auto), Some(l)) = (input.limits.autotopup(kind), limit) {
        if plan.added > 0 {
            let value = kind.to_base(auto.amount);
            for _ in 0..plan.added {
                slots.push(Slot {
                    id: None,
                    order: consumption_order_key(end, input.now, None),
                    valid_from: input.now,
                    valid_to: end,
                    value,
                    available: value,
                    consumed_before: 0,
                    already_depleted: false,
                });
            }
            // Stable sort: planned topups keep their insertion order among themselves.
            slots.sort_by_key(|s| s.order);
            alloc = Some(allocate(input, kind, l, &slots));
        }
    }
    let (consumed, remaining, topups_given, uncovered) = match &alloc {
        Some(a) => (
            a.consumed.clone(),
            signed_remaining(a),
            given(a, &slots),
            a.uncovered,
        ),
        None => (vec![0; slots.len()], 0, 0, 0),
    };
    KindOutcome {
        kind,
        limit,
        used,
        topups_given,
        uncovered,
        topups_counted,
        slots,
        consumed,
        plan,
        remaining_before,
        remaining,
    }
}

/// Per-kind numbers without planning auto-topups, for [`super::summarize`]: what
/// topups give this period, the usage nothing covered, and the remaining allowance
/// (signed; `None` = unlimited), exactly as [`evaluate`] counts them.
pub(crate) fn kind_numbers(input: &EvalInput<'_>, kind: Kind) -> (u64, u64, Option<i128>) {
    let o = kind_outcome(input, kind, false);
    (o.topups_given, o.uncovered, o.limit.map(|_| o.remaining))
}

/// Boundaries `(start, now]` of the counted topups (and planned auto-topups) that
/// have no mark yet: each gets the usage before the update being decided.
fn new_marks(input: &EvalInput<'_>, outcomes: &[KindOutcome]) -> Vec<UsageMark> {
    let mut at: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.limit.is_some())
        .flat_map(|o| o.slots.iter().flat_map(|s| [s.valid_from, s.valid_to]))
        .filter(|&b| b > input.period.start && b <= input.now)
        .filter(|&b| !input.marks.iter().any(|m| m.at == b))
        .collect();
    at.sort_unstable();
    at.dedup();
    let before = input.usage.saturating_sub(input.delta);
    at.into_iter()
        .map(|at| UsageMark { at, usage: before })
        .collect()
}

fn fmt_amount(kind: Kind, v: i128) -> String {
    match kind {
        Kind::Traffic => format!("{:.1} MB", v as f64 / crate::topups::MIB as f64),
        Kind::Uptime => format!("{:.1} min", v as f64 / 60.0),
    }
}

fn describe(o: &KindOutcome, limits: &Limits) -> String {
    let k = o.kind;
    if o.limit.is_none() {
        return format!("{} unlimited", k.name());
    }
    let mut s = format!(
        "{} used {} of {} (limit {} {} x{}",
        k.name(),
        fmt_amount(k, i128::from(o.used)),
        fmt_amount(k, i128::from(o.used) + o.remaining),
        limits.limit(k).unwrap_or(0),
        k.unit_name(),
        limits.multiplier(k),
    );
    let _ = write!(
        s,
        " + {} from {} topup(s)",
        fmt_amount(k, i128::from(o.topups_given)),
        o.topups_counted
    );
    if o.plan.added > 0 {
        let _ = write!(
            s,
            " + {} auto-topup(s) of {} {}",
            o.plan.added,
            limits.autotopup(k).map_or(0, |a| a.amount),
            k.unit_name()
        );
    } else if o.plan.needed > 0 {
        let _ = write!(s, ", auto-topup needed but none allowed");
    }
    let _ = write!(s, ")");
    if o.uncovered > 0 {
        let _ = write!(
            s,
            " ({} not covered by anything valid at the time)",
            fmt_amount(k, i128::from(o.uncovered))
        );
    }
    if o.remaining > 0 {
        let _ = write!(s, " remaining {}", fmt_amount(k, o.remaining));
    } else {
        let _ = write!(s, " EXHAUSTED (over by {})", fmt_amount(k, -o.remaining));
    }
    s
}

/// Notifications for one kind. `dropped`: planned auto-topups were dropped because
/// the user is rejected anyway; then only a limit that truly fell short is reported.
fn notifications(input: &EvalInput<'_>, o: &KindOutcome, dropped: bool) -> Vec<Notification> {
    let Some(auto) = input.limits.autotopup(o.kind) else {
        return Vec::new();
    };
    let mut p = o.plan;
    let event = match (p.needed, p.added, dropped) {
        (0, _, _) => return Vec::new(),
        (_, 0, _) => NotifyEvent::LimitReached,
        (needed, added, true) if added < needed => NotifyEvent::LimitReached,
        (_, _, true) => return Vec::new(),
        _ => NotifyEvent::Added,
    };
    if event == NotifyEvent::LimitReached {
        p.added = 0;
    }
    let k = o.kind;
    let unit = i128::from(k.unit_size());
    let to_units = |v: i128| i64::try_from(v.div_euclid(unit)).unwrap_or(i64::MAX);
    let mut vars = Vars::new();
    vars.set("user.ID", input.username)
        .set("user.username", input.username)
        .set("usage.total", to_units(i128::from(o.used)))
        .set(
            "usage.limit",
            to_units(i128::from(o.used) + o.remaining_before),
        )
        .set("autotopup.type", k.name())
        .set("autotopup.unit", k.unit_name())
        .set("autotopup.amount", auto.amount)
        .set("autotopup.limit", auto.limit.unwrap_or(0))
        .set("autotopup.added", p.added_before)
        .set("autotopup.toAdd", p.added)
        .set("autotopup.toAddAmount", p.added.saturating_mul(auto.amount));
    let tag = match event {
        NotifyEvent::Added => format!(
            "added-{}",
            p.added_before
                .saturating_add(p.added.saturating_mul(auto.amount))
        ),
        NotifyEvent::LimitReached => "limit-reached".to_string(),
    };
    auto.notify
        .iter()
        .map(|target| {
            let mut v = vars.clone();
            v.set("notify.target", target.as_str());
            Notification {
                kind: k,
                event,
                target: target.clone(),
                key: format!(
                    "{}|{}|{}|{}|{}",
                    input.username,
                    k.name(),
                    input.period.start,
                    tag,
                    target
                ),
                vars: v,
            }
        })
        .collect()
}

/// Decides for one user in one period. See the module documentation for the rules.
pub fn evaluate(input: &EvalInput<'_>) -> Decision {
    let first: Vec<KindOutcome> = Kind::ALL
        .iter()
        .map(|&k| kind_outcome(input, k, true))
        .collect();
    let any_exhausted = first.iter().any(KindOutcome::exhausted);
    // Never charge auto-topups for a user who is rejected anyway.
    let planned = first.iter().any(|o| o.plan.added > 0);
    let outcomes: Vec<KindOutcome> = if any_exhausted && planned {
        Kind::ALL
            .iter()
            .map(|&k| kind_outcome(input, k, false))
            .collect()
    } else {
        first.clone()
    };

    let mut d = Decision::unlimited();
    for o in &outcomes {
        for (slot, &used) in o.slots.iter().zip(&o.consumed) {
            let fully = used > 0 && slot.consumed_before.saturating_add(used) >= slot.value;
            match slot.id {
                Some(id) => {
                    d.topup_consumption.push(ConsumptionRow {
                        topup_id: id,
                        period_start: input.period.start,
                        consumed: used,
                    });
                    if fully && !slot.already_depleted {
                        d.depleted.push(id);
                    }
                }
                None => d.new_auto_topups.push(NewTopup {
                    user: input.username.to_string(),
                    type_bits: o.kind.bit() | TYPE_AUTO,
                    valid_from: input.now,
                    valid_to: input.period.end,
                    value: input.limits.autotopup(o.kind).map_or(0, |a| a.amount),
                    created: input.now,
                    consumed: used,
                    depleted: fully,
                }),
            }
        }
    }
    // Notifications describe the first pass: what auto-topup wanted to do.
    for f in &first {
        d.notifications
            .extend(notifications(input, f, any_exhausted && planned));
    }
    d.marks = new_marks(input, &outcomes);
    let (t, u) = (&outcomes[0], &outcomes[1]);
    d.state = match (t.exhausted(), u.exhausted()) {
        (false, false) => State::Allowed {
            remaining_traffic_bytes: t.remaining_opt(),
            remaining_uptime_secs: u.remaining_opt(),
        },
        (true, false) => State::Exhausted {
            which: Which::Traffic,
            reply_message: input.opts.traffic_message.clone(),
        },
        (false, true) => State::Exhausted {
            which: Which::Uptime,
            reply_message: input.opts.uptime_message.clone(),
        },
        (true, true) => State::Exhausted {
            which: Which::Both,
            reply_message: format!(
                "{}; {}",
                input.opts.traffic_message, input.opts.uptime_message
            ),
        },
    };
    if input.opts.explain {
        let verdict = match &d.state {
            State::Allowed { .. } => "allow".to_string(),
            State::Exhausted { which, .. } if planned && any_exhausted => {
                format!("reject ({which:?} exhausted; planned auto-topups dropped)")
            }
            State::Exhausted { which, .. } => format!("reject ({which:?} exhausted)"),
        };
        d.explanation = format!(
            "capping user '{}' period {}..{}: {}; {} -> {}",
            input.username,
            input.period.start,
            input.period.end,
            describe(t, input.limits),
            describe(u, input.limits),
            verdict
        );
    }
    d
}

/// Reply attributes for an authorize / post-auth decision.
///
/// - Exhausted: `Reply-Message` (the caller rejects).
/// - Allowed with an uptime limit: `Session-Timeout` = remaining seconds, or the
///   existing Session-Timeout if that is smaller (clamped to 32 bits).
/// - Allowed with a traffic limit and `mikrotik`: `Mikrotik-Total-Limit` (low 32 bits
///   of the remaining bytes) and `Mikrotik-Total-Limit-Gigawords` (bytes >> 32).
/// - Unlimited kinds add nothing.
pub fn reply_attributes(
    decision: &Decision,
    existing_session_timeout: Option<u32>,
    mikrotik: bool,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match &decision.state {
        State::Exhausted { reply_message, .. } => {
            out.push(("Reply-Message".to_string(), reply_message.clone()))
        }
        State::Allowed {
            remaining_traffic_bytes,
            remaining_uptime_secs,
        } => {
            if let Some(secs) = remaining_uptime_secs {
                let ours = u32::try_from(*secs).unwrap_or(u32::MAX);
                let st = existing_session_timeout.map_or(ours, |e| e.min(ours));
                out.push(("Session-Timeout".to_string(), st.to_string()));
            }
            if let (true, Some(bytes)) = (mikrotik, remaining_traffic_bytes) {
                out.push((
                    "Mikrotik-Total-Limit".to_string(),
                    (bytes & 0xFFFF_FFFF).to_string(),
                ));
                out.push((
                    "Mikrotik-Total-Limit-Gigawords".to_string(),
                    (bytes >> 32).to_string(),
                ));
            }
        }
    }
    out
}

/// What to do when accounting shows the user over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverLimitPolicy {
    /// Disconnect the session (CoA/Disconnect-Request or NAS API, the caller's job).
    Disconnect,
    /// Only log / report.
    Report,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum AcctAction {
    None,
    Disconnect {
        reason: String,
    },
    Report {
        reason: String,
    },
    /// The user's policy throttles or redirects instead of disconnecting: a CoA is
    /// queued (see `store::modulation`).
    Change {
        reason: String,
    },
}

/// Accounting: on Start / Interim-Update with the user exhausted (usage, including
/// this session, at or over the allowance), act per `policy`. Stop and
/// Accounting-On/Off never act (the session is already gone).
pub fn accounting_action(
    status: AcctStatus,
    decision: &Decision,
    policy: OverLimitPolicy,
) -> AcctAction {
    let active = matches!(status, AcctStatus::Start | AcctStatus::Interim);
    match (&decision.state, active) {
        (State::Exhausted { reply_message, .. }, true) => {
            let reason = reply_message.clone();
            match policy {
                OverLimitPolicy::Disconnect => AcctAction::Disconnect { reason },
                OverLimitPolicy::Report => AcctAction::Report { reason },
            }
        }
        _ => AcctAction::None,
    }
}
