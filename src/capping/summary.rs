//! Per-kind numbers of a user's allowance, for people (the CLI) and for unlang (the
//! `%{rust:...}` xlat): what the limit is, what was used, what topups add, what remains.

use super::{Kind, Limits, Period, Usage};
use crate::topups::TopupBalance;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindSummary {
    /// Configured limit (MB / minutes); None = unlimited.
    pub limit: Option<u64>,
    /// Limit × multiplier in bytes / seconds.
    pub effective_limit: Option<u64>,
    /// Used in the period, bytes / seconds.
    pub usage: u64,
    /// Available topups counted in the period, bytes / seconds.
    pub topups: u64,
    /// effective limit + topups − usage; None = unlimited; may be negative.
    pub remaining: Option<i64>,
}

/// Summarizes one kind. `topups` are the period's balances as the store returns them
/// (rows of other kinds or not counting in `period` are skipped here).
pub fn summarize(
    limits: &Limits,
    kind: Kind,
    usage: &Usage,
    topups: &[TopupBalance],
    period: &Period,
) -> KindSummary {
    let used = usage.of(kind);
    let counted = topups
        .iter()
        .filter(|t| t.topup.counts_in(kind, period.start, period.end))
        .map(TopupBalance::available)
        .fold(0u64, u64::saturating_add);
    let effective = limits.effective_limit(kind);
    KindSummary {
        limit: limits.limit(kind),
        effective_limit: effective,
        usage: used,
        topups: counted,
        remaining: effective.map(|e| {
            let allowance = i128::from(e) + i128::from(counted);
            (allowance - i128::from(used)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capping::PeriodKind;
    use crate::topups::MIB;

    fn topup(id: u64, type_bits: u32, value: u64, from: i64, to: i64) -> TopupBalance {
        TopupBalance {
            topup: crate::topups::tests::topup(id, type_bits, from, to, value),
            consumed_before: 0,
        }
    }

    #[test]
    fn remaining_is_limit_plus_counted_topups_minus_usage() {
        let period = Period {
            kind: PeriodKind::Month,
            start: 1000,
            end: 2000,
        };
        let limits = Limits {
            traffic_mb: Some(2),
            uptime_min: None,
            traffic_multiplier: 1.5,
            ..Default::default()
        };
        let usage = Usage {
            traffic_bytes: 4 * MIB,
            uptime_secs: 60,
        };
        let topups = [
            topup(1, 1, 1, 500, 1500),  // counts: overlaps
            topup(2, 1, 5, 2000, 3000), // next period only
            topup(3, 2, 9, 500, 1500),  // uptime
        ];
        let t = summarize(&limits, Kind::Traffic, &usage, &topups, &period);
        assert_eq!(t.effective_limit, Some(3 * MIB));
        assert_eq!(t.topups, MIB);
        assert_eq!(t.remaining, Some(0));
        let u = summarize(&limits, Kind::Uptime, &usage, &topups, &period);
        assert_eq!(
            (u.limit, u.remaining, u.topups, u.usage),
            (None, None, 540, 60)
        );
        let over = Usage {
            traffic_bytes: 5 * MIB,
            uptime_secs: 0,
        };
        let t = summarize(&limits, Kind::Traffic, &over, &topups, &period);
        assert_eq!(t.remaining, Some(-(MIB as i64)), "may go negative");
    }
}
