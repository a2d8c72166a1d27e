//! Per-kind numbers of a user's allowance, for people (the CLI) and for unlang (the
//! `%{rust:...}` xlat): what the limit is, what was used, what topups add, what remains.
//! Computed by the decision's own rule ([`super::evaluate`]), so they always agree.

use super::decide::{kind_numbers, EvalInput};
use super::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct KindSummary {
    /// Configured limit (MB / minutes); None = unlimited.
    pub limit: Option<u64>,
    /// Limit × multiplier in bytes / seconds.
    pub effective_limit: Option<u64>,
    /// Used in the period, bytes / seconds.
    pub usage: u64,
    /// What topups give this period, bytes / seconds: what each covered while
    /// valid, plus the unused rest of those valid now (not yet started: nothing;
    /// expired: only what they covered).
    pub topups: u64,
    /// Usage that nothing valid at the time covered (over everything): a topup
    /// that starts later does not absorb it.
    pub uncovered: u64,
    /// What is left now (base limit + rest of the topups valid now); when nothing
    /// is, minus the uncovered usage. None = unlimited.
    pub remaining: Option<i64>,
}

/// Summarizes one kind for `input` (rows of other kinds or not counting in the
/// period are skipped). Auto-topups the decision would add are not included: the
/// callers summarize after storing them.
pub fn summarize(input: &EvalInput<'_>, kind: Kind) -> KindSummary {
    let (topups, uncovered, remaining) = kind_numbers(input, kind);
    KindSummary {
        limit: input.limits.limit(kind),
        effective_limit: input.limits.effective_limit(kind),
        usage: input.usage.of(kind),
        topups,
        uncovered,
        remaining: remaining.map(|r| r.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capping::{EvalOptions, Limits, Period, PeriodKind, Usage, UsageMark};
    use crate::topups::{TopupBalance, MIB};

    fn topup(id: u64, type_bits: u32, value: u64, from: i64, to: i64) -> TopupBalance {
        TopupBalance {
            topup: crate::topups::tests::topup(id, type_bits, from, to, value),
            consumed_before: 0,
        }
    }

    const PERIOD: Period = Period {
        kind: PeriodKind::Month,
        start: 1000,
        end: 2000,
    };

    fn input<'a>(
        limits: &'a Limits,
        usage: Usage,
        topups: &'a [TopupBalance],
        marks: &'a [UsageMark],
        opts: &'a EvalOptions,
    ) -> EvalInput<'a> {
        EvalInput {
            username: "joe",
            limits,
            usage,
            delta: Usage::default(),
            marks,
            topups,
            period: PERIOD,
            now: 1600,
            opts,
        }
    }

    #[test]
    fn remaining_is_limit_plus_counted_topups_minus_usage() {
        let opts = EvalOptions::default();
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
            topup(1, 1, 1, 500, 1700),  // counts: valid throughout until now
            topup(2, 1, 5, 2000, 3000), // next period only
            topup(3, 2, 9, 500, 1700),  // uptime
        ];
        let i = input(&limits, usage, &topups, &[], &opts);
        let t = summarize(&i, Kind::Traffic);
        assert_eq!(t.effective_limit, Some(3 * MIB));
        assert_eq!(t.topups, MIB);
        assert_eq!(t.remaining, Some(0));
        let u = summarize(&i, Kind::Uptime);
        assert_eq!(
            (u.limit, u.remaining, u.topups, u.usage),
            (None, None, 0, 60)
        );
        let over = Usage {
            traffic_bytes: 5 * MIB,
            uptime_secs: 0,
        };
        let t = summarize(&input(&limits, over, &topups, &[], &opts), Kind::Traffic);
        assert_eq!(t.remaining, Some(-(MIB as i64)), "may go negative");
        assert_eq!(t.uncovered, MIB);
    }

    /// The summary and the decision agree, whatever the validity windows.
    #[test]
    fn summary_agrees_with_the_decision() {
        let opts = EvalOptions::default();
        let limits = Limits {
            traffic_mb: Some(2),
            ..Default::default()
        };
        // (topups (MB, from, to), usage MB, marks (at, MB), topups given MB, remaining MB)
        type Case = (
            &'static [(u64, i64, i64)],
            u64,
            &'static [(i64, u64)],
            u64,
            i64,
        );
        let cases: [Case; 5] = [
            (&[(3, 500, 1700)], 4, &[], 3, 1),
            // Expired at 1200 after covering 1 MB (1 MB of usage before it, 2 MB base).
            (&[(3, 500, 1200)], 3, &[(1200, 3)], 1, 0),
            // Starts at 1800, after now: gives nothing yet.
            (&[(3, 1800, 1900)], 1, &[], 0, 1),
            // Started at 1200 with 1 MB over before it: not absorbed; 1 MB used after.
            (&[(3, 1200, 1900)], 4, &[(1200, 3)], 3, 2),
            // No mark: all usage counts as before its start (1 MB over stays uncovered).
            (&[(3, 1200, 1900)], 3, &[], 3, 3),
        ];
        for (ts, used, marks, want_given, want_remaining) in cases {
            let topups: Vec<TopupBalance> = ts
                .iter()
                .enumerate()
                .map(|(i, &(v, f, t))| topup(i as u64 + 1, 1, v, f, t))
                .collect();
            let marks: Vec<UsageMark> = marks
                .iter()
                .map(|&(at, mb)| UsageMark {
                    at,
                    usage: Usage {
                        traffic_bytes: mb * MIB,
                        uptime_secs: 0,
                    },
                })
                .collect();
            let usage = Usage {
                traffic_bytes: used * MIB,
                uptime_secs: 0,
            };
            let i = input(&limits, usage, &topups, &marks, &opts);
            let s = summarize(&i, Kind::Traffic);
            let d = crate::capping::evaluate(&i);
            assert_eq!(s.topups, want_given * MIB, "{ts:?} {marks:?}");
            assert_eq!(s.remaining, Some(want_remaining * MIB as i64), "{ts:?}");
            let decided = match d.state {
                crate::capping::State::Allowed {
                    remaining_traffic_bytes,
                    ..
                } => remaining_traffic_bytes.unwrap_or(0) as i64,
                crate::capping::State::Exhausted { .. } => 0,
            };
            assert_eq!(
                decided,
                s.remaining.unwrap().max(0),
                "{ts:?}: {}",
                d.explanation
            );
        }
    }
}
