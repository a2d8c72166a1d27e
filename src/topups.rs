//! Topups: extra traffic or uptime granted on top of a user's capping limit.
//!
//! A topup row is what the operator (or the auto-topup rule in [`crate::capping`])
//! adds; this module holds the row type, the rules that say when a row counts, and
//! the allocation of usage to topups over time ([`segments`], [`allocate_in_time`]):
//! a topup covers only usage during its validity. Nothing here touches SQL.
//!
//! Consumption is kept per topup **and per period** ([`ConsumptionRow`]): what a
//! topup absorbed in earlier periods is the sum of its rows for periods that started
//! before the current one ([`consumed_before`]). The current period's rows are
//! recomputed from scratch on every decision and *replace* the stored ones, so a
//! repeated evaluation with the same inputs writes the same rows (idempotent), and a
//! late accounting packet for the current period simply raises that period's rows.

use std::collections::BTreeMap;

/// Bytes in one MB as used by limits and topups (SMRadius counts Mbyte = 1024 * 1024).
pub const MIB: u64 = 1024 * 1024;

/// Topup type bits (the SMRadius `Type` column).
pub const TYPE_TRAFFIC: u32 = 1;
pub const TYPE_UPTIME: u32 = 2;
pub const TYPE_AUTO: u32 = 4;

/// What a limit or topup measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Input + output octets; configured in MB.
    Traffic,
    /// Session time; configured in minutes.
    Uptime,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Traffic, Kind::Uptime];

    /// The type bit of topups of this kind.
    pub fn bit(self) -> u32 {
        match self {
            Kind::Traffic => TYPE_TRAFFIC,
            Kind::Uptime => TYPE_UPTIME,
        }
    }

    /// Base units (bytes or seconds) in one configured unit (MB or minute).
    pub fn unit_size(self) -> u64 {
        match self {
            Kind::Traffic => MIB,
            Kind::Uptime => 60,
        }
    }

    /// The configured unit's name, for messages.
    pub fn unit_name(self) -> &'static str {
        match self {
            Kind::Traffic => "MB",
            Kind::Uptime => "min",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Traffic => "traffic",
            Kind::Uptime => "uptime",
        }
    }

    /// Configured units (MB / minutes) to base units (bytes / seconds), saturating.
    pub fn to_base(self, units: u64) -> u64 {
        units.saturating_mul(self.unit_size())
    }
}

/// One row of the topups table. Times are unix seconds; validity is `[valid_from, valid_to)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topup {
    pub id: u64,
    pub user: String,
    /// Bitmask of [`TYPE_TRAFFIC`], [`TYPE_UPTIME`], [`TYPE_AUTO`].
    pub type_bits: u32,
    pub valid_from: i64,
    pub valid_to: i64,
    /// MB for traffic, minutes for uptime.
    pub value: u64,
    pub depleted: bool,
    pub depleted_at: Option<i64>,
    pub created: i64,
}

impl Topup {
    /// The kind, when exactly one of the traffic/uptime bits is set. A row with both or
    /// neither has no defined unit and never counts.
    pub fn kind(&self) -> Option<Kind> {
        match self.type_bits & (TYPE_TRAFFIC | TYPE_UPTIME) {
            TYPE_TRAFFIC => Some(Kind::Traffic),
            TYPE_UPTIME => Some(Kind::Uptime),
            _ => None,
        }
    }

    pub fn is_auto(&self) -> bool {
        self.type_bits & TYPE_AUTO != 0
    }

    /// Value in bytes / seconds.
    pub fn value_base(&self) -> u64 {
        self.kind().map_or(0, |k| k.to_base(self.value))
    }

    /// Validity overlaps `[start, end)`: the topup may count in that period, but
    /// only for usage during its validity (see [`allocate_in_time`]).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.valid_from < end && self.valid_to > start && self.valid_from < self.valid_to
    }

    /// Marked depleted before the period began (by consumption in an earlier period or
    /// by an operator; a flag without a time counts as earlier). A topup depleted
    /// during the period still counts in it: its consumption there is what used it up,
    /// so re-evaluating the period must see it again.
    pub fn depleted_before(&self, period_start: i64) -> bool {
        self.depleted
            && match self.depleted_at {
                None => true,
                Some(t) => t < period_start,
            }
    }

    /// May count towards `kind` in the period `[start, end)` (during its validity).
    pub fn counts_in(&self, kind: Kind, start: i64, end: i64) -> bool {
        self.kind() == Some(kind) && self.overlaps(start, end) && !self.depleted_before(start)
    }
}

/// A topup with what it consumed in periods before the one being evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopupBalance {
    pub topup: Topup,
    /// Bytes / seconds consumed in earlier periods (see [`consumed_before`]).
    pub consumed_before: u64,
}

impl TopupBalance {
    /// What is left for the current period, in bytes / seconds.
    pub fn available(&self) -> u64 {
        self.topup.value_base().saturating_sub(self.consumed_before)
    }
}

/// Persisted consumption of one topup in one period (bytes / seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ConsumptionRow {
    pub topup_id: u64,
    pub period_start: i64,
    pub consumed: u64,
}

/// Per topup id: consumption in periods that started before `period_start`.
pub fn consumed_before(rows: &[ConsumptionRow], period_start: i64) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    for r in rows.iter().filter(|r| r.period_start < period_start) {
        let e = out.entry(r.topup_id).or_insert(0u64);
        *e = e.saturating_add(r.consumed);
    }
    out
}

/// An auto-topup to insert. `consumed` is its consumption in the current period
/// (store it as a [`ConsumptionRow`] once the row has an id); `depleted` means it was
/// used up right away (set `depleted_at` = `created`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewTopup {
    pub user: String,
    pub type_bits: u32,
    pub valid_from: i64,
    pub valid_to: i64,
    pub value: u64,
    pub created: i64,
    pub consumed: u64,
    pub depleted: bool,
}

/// Ordering key for consumption: earliest end of validity first, then earliest start,
/// then lowest id; rows not yet inserted (`None`) after existing ones, since they get
/// the highest ids when inserted (keeps the split identical after the insert).
pub fn consumption_order_key(valid_to: i64, valid_from: i64, id: Option<u64>) -> (i64, i64, u64) {
    (valid_to, valid_from, id.unwrap_or(u64::MAX))
}

/// A stretch `[from, to)` of the period in which no topup starts or ends, with the
/// usage recorded in it (bytes / seconds). The last one ends just after `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: i64,
    pub to: i64,
    pub usage: u64,
}

/// Splits the period's usage at validity boundaries.
///
/// `points`: the boundaries (topup `valid_from` / `valid_to`) with, for each,
/// the period usage recorded before it (`None`: no mark yet). Only points in
/// `(start, now]` split; `now` always does, so the last segment `[now, now + 1)`
/// holds exactly the update being decided (`total − before`). A missing mark reads as
/// `before`, the usage before that update: nothing was recorded since the boundary
/// passed. Usage only grows, so values are clamped to be monotonic and ≤ `before`.
pub fn segments(
    start: i64,
    now: i64,
    points: &[(i64, Option<u64>)],
    before: u64,
    total: u64,
) -> Vec<Segment> {
    let mut at: Vec<(i64, Option<u64>)> = points
        .iter()
        .copied()
        .filter(|&(b, _)| b > start && b <= now)
        .collect();
    if now > start {
        at.push((now, None));
    }
    // The same boundary may come from several topups: keep one, with its mark.
    at.sort_by_key(|&(b, m)| (b, m.is_none()));
    at.dedup_by_key(|p| p.0);
    let before = before.min(total);
    let mut out = Vec::with_capacity(at.len() + 1);
    let (mut from, mut used) = (start, 0u64);
    for (b, mark) in at {
        let u = mark.unwrap_or(before).clamp(used, before);
        out.push(Segment {
            from,
            to: b,
            usage: u - used,
        });
        (from, used) = (b, u);
    }
    out.push(Segment {
        from,
        to: now.saturating_add(1),
        usage: total - used,
    });
    out
}

/// A topup as the allocation sees it: validity `[from, to)` and what it has left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub available: u64,
}

impl Window {
    fn covers(&self, s: &Segment) -> bool {
        self.from <= s.from && self.to >= s.to
    }
}

/// Result of [`allocate_in_time`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeAllocation {
    /// Per window (same order): what it covered.
    pub consumed: Vec<u64>,
    /// Base limit not used.
    pub base_left: u64,
    /// Base left + unused rest of the windows valid in the last segment (at now).
    pub available_now: u64,
    /// Usage nothing valid at the time covered, over the whole period.
    pub uncovered: u64,
    /// The part of it in the last segment (the update being decided).
    pub uncovered_last: u64,
}

/// Covers each segment's usage first by what is left of the base limit, then by the
/// windows valid throughout the segment, in the given order (consumption order).
/// A window's rest after its `to` is gone; usage that nothing covers stays
/// uncovered (a window that starts later never absorbs it).
pub fn allocate_in_time(base: u64, segments: &[Segment], windows: &[Window]) -> TimeAllocation {
    let mut consumed = vec![0u64; windows.len()];
    let mut base_left = base;
    let (mut uncovered, mut uncovered_last) = (0u64, 0u64);
    for (i, s) in segments.iter().enumerate() {
        let mut left = s.usage;
        let take = base_left.min(left);
        base_left -= take;
        left -= take;
        for (w, c) in windows.iter().zip(consumed.iter_mut()) {
            if left == 0 {
                break;
            }
            if w.covers(s) {
                let take = w.available.saturating_sub(*c).min(left);
                *c += take;
                left -= take;
            }
        }
        uncovered = uncovered.saturating_add(left);
        if i + 1 == segments.len() {
            uncovered_last = left;
        }
    }
    let available_now = match segments.last() {
        Some(last) => windows
            .iter()
            .zip(&consumed)
            .filter(|(w, _)| w.covers(last))
            .fold(base_left, |a, (w, c)| {
                a.saturating_add(w.available.saturating_sub(*c))
            }),
        None => base_left,
    };
    TimeAllocation {
        consumed,
        base_left,
        available_now,
        uncovered,
        uncovered_last,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh topup of user "joe" (also used by the capping tests).
    pub(crate) fn topup(id: u64, bits: u32, from: i64, to: i64, value: u64) -> Topup {
        Topup {
            id,
            user: "joe".into(),
            type_bits: bits,
            valid_from: from,
            valid_to: to,
            value,
            depleted: false,
            depleted_at: None,
            created: from,
        }
    }

    #[test]
    fn kind_from_bits() {
        let cases = [
            (1, Some(Kind::Traffic), false),
            (2, Some(Kind::Uptime), false),
            (5, Some(Kind::Traffic), true),
            (6, Some(Kind::Uptime), true),
            (3, None, false),
            (4, None, true),
            (0, None, false),
        ];
        for (bits, kind, auto) in cases {
            let t = topup(1, bits, 0, 10, 1);
            assert_eq!(t.kind(), kind, "bits {bits}");
            assert_eq!(t.is_auto(), auto, "bits {bits}");
        }
    }

    #[test]
    fn overlap_is_half_open() {
        let t = topup(1, 1, 100, 200, 1);
        let cases = [
            (0, 100, false),
            (0, 101, true),
            (150, 160, true),
            (199, 300, true),
            (200, 300, false),
            (50, 250, true),
        ];
        for (s, e, want) in cases {
            assert_eq!(t.overlaps(s, e), want, "[{s},{e})");
        }
        assert!(
            !topup(1, 1, 200, 200, 1).overlaps(0, 1000),
            "empty validity"
        );
    }

    #[test]
    fn depleted_counts_only_in_its_own_period() {
        let mut t = topup(1, 1, 0, 1000, 1);
        t.depleted = true;
        t.depleted_at = Some(500);
        assert!(t.counts_in(Kind::Traffic, 400, 600));
        assert!(!t.counts_in(Kind::Traffic, 600, 900));
        t.depleted_at = None;
        assert!(
            !t.counts_in(Kind::Traffic, 400, 600),
            "flag without time = earlier"
        );
        assert!(!topup(1, 1, 0, 1000, 1).counts_in(Kind::Uptime, 0, 10));
    }

    #[test]
    fn consumed_before_sums_earlier_periods_only() {
        let rows = [
            ConsumptionRow {
                topup_id: 1,
                period_start: 100,
                consumed: 5,
            },
            ConsumptionRow {
                topup_id: 1,
                period_start: 200,
                consumed: 7,
            },
            ConsumptionRow {
                topup_id: 1,
                period_start: 300,
                consumed: 11,
            },
            ConsumptionRow {
                topup_id: 2,
                period_start: 100,
                consumed: 3,
            },
        ];
        let m = consumed_before(&rows, 300);
        assert_eq!(m.get(&1), Some(&12));
        assert_eq!(m.get(&2), Some(&3));
        assert!(consumed_before(&rows, 100).is_empty());
    }

    #[test]
    fn segments_split_at_boundaries_with_marks() {
        // Period from 0, now 100, 50 before the update, 60 after it.
        let seg = |from, to, usage| Segment { from, to, usage };
        type Case = (&'static [(i64, Option<u64>)], Vec<Segment>);
        let cases: [Case; 5] = [
            (&[], vec![seg(0, 100, 50), seg(100, 101, 10)]),
            // Outside (start, now]: no split.
            (
                &[(0, Some(1)), (101, Some(2))],
                vec![seg(0, 100, 50), seg(100, 101, 10)],
            ),
            (
                &[(40, Some(20)), (70, None)],
                vec![
                    seg(0, 40, 20),
                    seg(40, 70, 30),
                    seg(70, 100, 0),
                    seg(100, 101, 10),
                ],
            ),
            // Duplicates keep the mark; marks are clamped monotonic and to "before".
            (
                &[(70, None), (40, Some(30)), (70, Some(20)), (90, Some(99))],
                vec![
                    seg(0, 40, 30),
                    seg(40, 70, 0),
                    seg(70, 90, 20),
                    seg(90, 100, 0),
                    seg(100, 101, 10),
                ],
            ),
            // A boundary at now: the update lies after it.
            (&[(100, None)], vec![seg(0, 100, 50), seg(100, 101, 10)]),
        ];
        for (points, want) in cases {
            assert_eq!(segments(0, 100, points, 50, 60), want, "{points:?}");
        }
        assert_eq!(
            segments(0, 100, &[], 80, 60),
            vec![seg(0, 100, 60), seg(100, 101, 0)],
            "before above total is clamped"
        );
    }

    #[test]
    fn allocation_in_time_covers_each_segment_with_what_is_valid_then() {
        let seg = |from, to, usage| Segment { from, to, usage };
        let w = |from, to, available| Window {
            from,
            to,
            available,
        };
        // (base, segments, windows, consumed, available now, uncovered, uncovered last)
        type Case = (u64, Vec<Segment>, Vec<Window>, Vec<u64>, u64, u64, u64);
        let cases: Vec<Case> = vec![
            (
                10,
                vec![seg(0, 101, 5)],
                vec![w(0, 200, 10)],
                vec![0],
                15,
                0,
                0,
            ),
            (
                10,
                vec![seg(0, 101, 15)],
                vec![w(0, 200, 10)],
                vec![5],
                5,
                0,
                0,
            ),
            // In order: the first window first.
            (
                0,
                vec![seg(0, 101, 15)],
                vec![w(0, 200, 10), w(0, 300, 10)],
                vec![10, 5],
                5,
                0,
                0,
            ),
            // Expired at 50: covered 5 before, its rest is gone.
            (
                10,
                vec![seg(0, 50, 15), seg(50, 101, 3)],
                vec![w(0, 50, 10)],
                vec![5],
                0,
                3,
                3,
            ),
            // Starts at 50: the 5 over before stay uncovered.
            (
                10,
                vec![seg(0, 50, 15), seg(50, 101, 3)],
                vec![w(50, 200, 10)],
                vec![3],
                7,
                5,
                0,
            ),
            // Not started yet.
            (
                10,
                vec![seg(0, 101, 15)],
                vec![w(150, 200, 10)],
                vec![0],
                0,
                5,
                5,
            ),
            (
                u64::MAX,
                vec![seg(0, 101, u64::MAX)],
                vec![w(0, 200, u64::MAX)],
                vec![0],
                u64::MAX,
                0,
                0,
            ),
        ];
        for (base, segs, windows, consumed, now, uncovered, last) in cases {
            let a = allocate_in_time(base, &segs, &windows);
            assert_eq!(
                (a.consumed, a.available_now, a.uncovered, a.uncovered_last),
                (consumed, now, uncovered, last),
                "{base} {segs:?} {windows:?}"
            );
        }
    }

    #[test]
    fn balance_available_saturates() {
        let b = TopupBalance {
            topup: topup(1, 1, 0, 1, 2),
            consumed_before: 3 * MIB,
        };
        assert_eq!(b.available(), 0);
        let b = TopupBalance {
            topup: topup(1, 2, 0, 1, 2),
            consumed_before: 30,
        };
        assert_eq!(b.available(), 90);
    }
}
