//! Capping: traffic and uptime limits per period, topups, auto-topups.
//!
//! Pure rules only; the store supplies usage, topups and consumption, the FreeRADIUS
//! glue supplies attributes and applies the [`Decision`]. Time is always passed in.
//!
//! # Attributes
//!
//! Read from the request's control list (or the module's own store), by our name or
//! by the SMRadius alias (names are case-insensitive). See [`ATTRIBUTES`].
//!
//! | Attribute | SMRadius alias | Value |
//! |---|---|---|
//! | `Rust-Capping-Traffic-Limit` | `SMRadius-Capping-Traffic-Limit` | integer, MB (1 MB = 1 048 576 bytes, input + output) |
//! | `Rust-Capping-Uptime-Limit` | `SMRadius-Capping-Uptime-Limit` | integer, minutes |
//! | `Rust-Capping-Traffic-Multiplier` | `SMRadius-Config-Capping-Traffic-Multiplier` | decimal ≥ 0, default 1 |
//! | `Rust-Capping-Uptime-Multiplier` | `SMRadius-Config-Capping-Uptime-Multiplier` | decimal ≥ 0, default 1 |
//! | `Rust-AutoTopup-{Traffic,Uptime}-Enabled` | `SMRadius-AutoTopup-{Traffic,Uptime}-Enabled` | yes/no, true/false, on/off, 1/0 |
//! | `Rust-AutoTopup-{Traffic,Uptime}-Amount` | `SMRadius-AutoTopup-…-Amount` | integer > 0, MB / minutes per auto-topup |
//! | `Rust-AutoTopup-{Traffic,Uptime}-Limit` | `SMRadius-AutoTopup-…-Limit` | integer, most MB / minutes auto-added per period; unset or 0 = no limit |
//! | `Rust-AutoTopup-{Traffic,Uptime}-Threshold` | `SMRadius-AutoTopup-…-Threshold` | integer MB / minutes; unset = amount / 2 (rounded down); 0 = only once exhausted |
//! | `Rust-AutoTopup-{Traffic,Uptime}-Notify` | `SMRadius-AutoTopup-…-Notify` | targets separated by `,` or `;` |
//!
//! Precedence: if both our name and the alias are present, ours wins; if the same
//! name occurs twice, the first instance wins.
//!
//! Validation is strict: an integer must be digits only (surrounding blanks are
//! ignored), a multiplier digits with an optional `.` and digits (no sign, exponent,
//! `inf`, `nan`). Any bad value, and auto-topup enabled without a positive amount, is
//! a [`LimitError`] naming the user, the attribute (as spelled in the request) and the
//! value; the caller must **reject** the user and log it. Values of disabled
//! auto-topups are validated too.
//!
//! # Limits
//!
//! - Unset limit = unlimited; `0` = nothing without topups (prepaid). With
//!   `caveat_captrafzero` (`parse_limits(.., caveat_swap = true)`) the two meanings
//!   swap, for traffic and uptime alike: unset = prepaid, `0` = unlimited. Note that
//!   this makes every user without a limit attribute prepaid.
//! - Effective limit = limit × unit × multiplier, rounded down to whole bytes/seconds.
//!   The multiplier scales the limit only, not topups (a 500 MB topup is always
//!   500 MB). Multiplier 0 turns a set limit into 0 (prepaid); it never limits an
//!   unlimited user. Login and accounting use the same [`evaluate`], so the same
//!   effective limit.
//! - The period (calendar month or day in the configured timezone) is given by the
//!   caller as `[start, end)` unix seconds, see [`Period::containing`]. Usage is the
//!   user's total over the period (all sessions).
//!
//! # Allowance and exhaustion
//!
//! Per kind: `remaining` as described under Topups (the limit and the topups valid
//! now, with new auto-topups). The user is **exhausted** when `remaining ≤ 0`: usage
//! exactly equal to the allowance is over. Exhausted in either
//! kind → [`State::Exhausted`] with the configured Reply-Message (both kinds: both
//! messages joined by `; `). Unlimited kinds ignore topups and are never exhausted.
//!
//! # Topups
//!
//! Rows of the topups table ([`crate::topups::Topup`]): type bits 1 traffic, 2 uptime,
//! 4 auto (a row with both or neither of 1/2 never counts), value in MB / minutes,
//! validity `[valid_from, valid_to)`.
//!
//! - A topup gives allowance only while valid. The period is cut at every topup
//!   boundary (`valid_from` / `valid_to`) in `(start, now]`
//!   ([`crate::topups::segments`]); each stretch's usage is covered first by what is
//!   left of the effective limit, then by the topups valid throughout the stretch, in
//!   order of earliest `valid_to`, then earliest `valid_from`, then lowest id
//!   ([`crate::topups::allocate_in_time`]); auto-topups added by the decision sort as
//!   rows with the highest ids, so the split is the same after they are inserted.
//!   A topup's unused rest is gone at its `valid_to`; one with `valid_from > now`
//!   does not count yet; usage nothing valid covered stays uncovered (a later topup
//!   never absorbs it). Remaining = limit left + unused rest of the topups valid at
//!   `now`, or, when that is 0, minus the uncovered usage.
//! - Where a boundary lies in the usage: [`UsageMark`]s, the period usage recorded
//!   before the boundary, stored by the first decision after it
//!   ([`Decision::marks`], value = usage before the update being decided, whose delta
//!   is attributed at `now`). A boundary without a mark reads as `usage − delta`:
//!   nothing was recorded since it passed. Headrooms end at the next boundary, so
//!   every boundary gets its mark from the first update after it.
//! - Consumption is persisted per topup and per period (bytes / seconds,
//!   [`crate::topups::ConsumptionRow`]). A topup's available rest in a period is its
//!   value minus the consumption of all earlier periods; the rest carries over while
//!   the topup is valid. Every decision recomputes the current period's consumption of
//!   each counted topup from the period's total usage and returns all of it
//!   (zeros included) in [`Decision::topup_consumption`]; the store *replaces* the
//!   rows for that period. The same inputs therefore always yield the same rows
//!   (deterministic, idempotent), usage arriving late in the period just raises the
//!   rows, and earlier periods are never rewritten. Consumption is only written when
//!   a decision runs, so the last decision of a period (normally the session's Stop
//!   or last Interim-Update) fixes what carries over.
//!   Why not recompute from usage history instead: that would need each past
//!   period's limits and multipliers, which change; the per-period rows record what
//!   was actually decided.
//! - A topup is marked depleted (returned in [`Decision::depleted`], set
//!   `depleted_at = now`) when its total consumption reaches its value. It still
//!   counts in the period where that happened (so re-evaluation is stable) and no
//!   longer in later periods; likewise a row an operator marks depleted stops
//!   counting from the next period (a flag without a time: at once). To withdraw a
//!   topup immediately, delete it or set `valid_to = valid_from`.
//!
//! # Auto-topups
//!
//! Per kind, only when the kind has a limit and auto-topup is enabled. Computed after
//! the existing topups: if `remaining ≤ threshold`, add the fewest `amount`-sized
//! topups that lift `remaining` above the threshold, but no more than the per-period
//! limit allows (`(limit − auto amount created in the period) / amount`, rounded
//! down: only whole topups) and no more than [`EvalOptions::max_auto_topups`]. They
//! are valid from `now` to the period end, so they cover the update being decided
//! (its overage, if it pushed usage over) but not earlier uncovered usage; the
//! `remaining` they are planned against counts only the update's uncovered part. They
//! count immediately in the same decision
//! (so a user is never rejected right after being topped up) and are returned in
//! [`Decision::new_auto_topups`] with their own consumption. The amount already
//! auto-added in the period is the sum of auto rows of the kind `created` within it.
//! If the user ends up exhausted anyway (the other kind, or the limit fell short),
//! no auto-topup is added at all: nobody is charged for a rejected login.
//!
//! Notifications (one per target, [`Notification`]) go out when topups are added
//! ([`NotifyEvent::Added`]) or when they were needed but the limit allowed none or
//! too few ([`NotifyEvent::LimitReached`], `autotopup.toAdd` = 0). Template
//! variables ([`crate::notify`]): `user.ID` (the username), `user.username`,
//! `usage.total` (usage in MB / minutes), `usage.limit` (allowance before this
//! decision's auto-topups, MB / minutes), `autotopup.type` (`traffic`/`uptime`),
//! `autotopup.amount`, `autotopup.limit` (0 = no limit), `autotopup.added` (auto
//! amount already added this period), `autotopup.toAdd` (count added now),
//! `autotopup.toAddAmount`, `notify.target`. [`Notification::key`] is unique per
//! user, kind, period, event (and total auto amount) and target, for de-duplication.
//!
//! # Enforcement
//!
//! - authorize / post-auth: exhausted → reject with the Reply-Message. Otherwise
//!   [`reply_attributes`]: `Session-Timeout` = remaining uptime in **seconds**, or the
//!   existing Session-Timeout if smaller; with `enable_mikrotik`,
//!   `Mikrotik-Total-Limit` = remaining bytes & 0xFFFFFFFF and
//!   `Mikrotik-Total-Limit-Gigawords` = remaining bytes >> 32.
//! - accounting Start / Interim-Update: evaluate with usage including the session;
//!   exhausted → [`accounting_action`] per [`OverLimitPolicy`]: disconnect or report.
//!
//! # Applying a decision (store)
//!
//! Load, evaluate and write in one transaction per user (two Interim-Updates racing
//! must not both add auto-topups): replace the period's consumption rows with
//! [`Decision::topup_consumption`], set `depleted`/`depleted_at = now` for
//! [`Decision::depleted`], insert [`Decision::new_auto_topups`] (ids must be larger
//! than existing ones) with a consumption row each, insert [`Decision::marks`]
//! (a mark is never rewritten), and insert notifications by
//! [`Notification::key`], ignoring duplicates.

mod decide;
mod headroom;
mod limits;
mod summary;

pub use crate::topups::Kind;
pub use decide::{
    accounting_action, evaluate, reply_attributes, AcctAction, Decision, EvalInput, EvalOptions,
    Notification, NotifyEvent, OverLimitPolicy, State, Usage, UsageMark, Which,
};
pub use headroom::{headroom, Headroom};
pub use limits::{
    attribute_field, lookup_attribute, parse_limits, AttributeDef, AutoTopup, Field, LimitError,
    Limits, RawLimits, RawValue, ValueType, ATTRIBUTES,
};
pub use summary::{summarize, KindSummary};

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, TimeZone};

/// Length of a capping period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeriodKind {
    Month,
    Day,
}

/// A capping period `[start, end)` in unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The calendar month or day containing `now` in `tz`. Boundaries are local
    /// midnight; where midnight does not exist (a DST jump at 00:00) the first local
    /// time after it. `None` only for timestamps chrono cannot represent.
    pub fn containing<Tz: TimeZone>(kind: PeriodKind, now: i64, tz: &Tz) -> Option<Period> {
        let local = DateTime::from_timestamp(now, 0)?.with_timezone(tz);
        let date = local.date_naive();
        let (first, next) = match kind {
            PeriodKind::Day => (date, date.succ_opt()?),
            PeriodKind::Month => {
                let first = date.with_day(1)?;
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)?
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)?
                };
                (first, next)
            }
        };
        Some(Period {
            kind,
            start: local_midnight(tz, first)?,
            end: local_midnight(tz, next)?,
        })
    }

    pub fn contains(&self, t: i64) -> bool {
        (self.start..self.end).contains(&t)
    }
}

fn local_midnight<Tz: TimeZone>(tz: &Tz, date: NaiveDate) -> Option<i64> {
    let mut t = date.and_hms_opt(0, 0, 0)?;
    // A DST gap is at most a few hours; step until a local time exists.
    for _ in 0..48 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return Some(x.timestamp()),
            LocalResult::Ambiguous(a, _) => return Some(a.timestamp()),
            LocalResult::None => t += Duration::minutes(15),
        }
    }
    None
}

#[cfg(test)]
mod tests;
