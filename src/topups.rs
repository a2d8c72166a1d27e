//! Topups: extra traffic or uptime granted on top of a user's capping limit.
//!
//! A topup row is what the operator (or the auto-topup rule in [`crate::capping`])
//! adds; this module holds the row type, the rules that say when a row counts, and
//! the greedy allocation of over-limit usage to topups. Nothing here touches SQL.
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

    /// Validity overlaps `[start, end)`: the topup counts in that whole period, even
    /// if it starts or ends inside it.
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

    /// Counts towards `kind` in the period `[start, end)`.
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

/// Spreads `overage` over topups given in consumption order (earliest `valid_to`
/// first) with their available amounts; returns what each one absorbs. Whatever
/// does not fit is simply not absorbed (the user is over).
pub fn allocate_overage(overage: u64, available_in_order: &[u64]) -> Vec<u64> {
    let mut left = overage;
    available_in_order
        .iter()
        .map(|&avail| {
            let take = avail.min(left);
            left -= take;
            take
        })
        .collect()
}

/// Ordering key for consumption: earliest end of validity first, then earliest start,
/// then lowest id; rows not yet inserted (`None`) after existing ones, since they get
/// the highest ids when inserted (keeps the split identical after the insert).
pub fn consumption_order_key(valid_to: i64, valid_from: i64, id: Option<u64>) -> (i64, i64, u64) {
    (valid_to, valid_from, id.unwrap_or(u64::MAX))
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
    fn allocation_is_greedy_in_order() {
        let cases: [(u64, &[u64], &[u64]); 5] = [
            (0, &[10, 10], &[0, 0]),
            (5, &[10, 10], &[5, 0]),
            (15, &[10, 10], &[10, 5]),
            (25, &[10, 10], &[10, 10]),
            (7, &[0, 3, 10], &[0, 3, 4]),
        ];
        for (over, avail, want) in cases {
            assert_eq!(allocate_overage(over, avail), want, "over {over}");
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
