use super::*;
use crate::notify;
use crate::sessions::AcctStatus;
use crate::topups::{
    consumed_before, ConsumptionRow, Topup, TopupBalance, MIB, TYPE_AUTO, TYPE_TRAFFIC, TYPE_UPTIME,
};

type Pairs<'a> = &'a [(&'a str, &'a str)];
type Attrs = Vec<(String, String)>;

const P1: Period = Period {
    kind: PeriodKind::Month,
    start: 1_000_000,
    end: 2_000_000,
};
const P2: Period = Period {
    kind: PeriodKind::Month,
    start: 2_000_000,
    end: 3_000_000,
};
const P3: Period = Period {
    kind: PeriodKind::Month,
    start: 3_000_000,
    end: 4_000_000,
};

fn traffic(limit_mb: Option<u64>, mult: f64) -> Limits {
    Limits {
        traffic_mb: limit_mb,
        traffic_multiplier: mult,
        ..Limits::default()
    }
}

fn uptime(limit_min: Option<u64>, mult: f64) -> Limits {
    Limits {
        uptime_min: limit_min,
        uptime_multiplier: mult,
        ..Limits::default()
    }
}

fn with_auto(mut l: Limits, amount: u64, limit: Option<u64>, threshold: Option<u64>) -> Limits {
    l.autotopup_traffic = Some(AutoTopup {
        amount,
        limit,
        threshold: threshold.unwrap_or(amount / 2),
        notify: vec!["joe@example.com".into(), "ops@example.com".into()],
    });
    l
}

use crate::topups::tests::topup;

fn bal(t: Topup, consumed_before: u64) -> TopupBalance {
    TopupBalance {
        topup: t,
        consumed_before,
    }
}

fn usage_mb(mb: u64) -> Usage {
    Usage {
        traffic_bytes: mb * MIB,
        uptime_secs: 0,
    }
}

/// joe's input in `period`, 500 s after its start, as if one accounting update
/// at that time brought all of `usage` (no usage marks).
fn input_in<'a>(
    limits: &'a Limits,
    usage: Usage,
    topups: &'a [TopupBalance],
    period: Period,
    opts: &'a EvalOptions,
) -> EvalInput<'a> {
    EvalInput {
        username: "joe",
        limits,
        usage,
        delta: usage,
        marks: &[],
        topups,
        period,
        now: period.start + 500,
        opts,
    }
}

fn eval(limits: &Limits, usage: Usage, topups: &[TopupBalance], period: Period) -> Decision {
    let opts = EvalOptions::default();
    evaluate(&input_in(limits, usage, topups, period, &opts))
}

fn remaining(d: &Decision) -> (Option<u64>, Option<u64>) {
    match d.state {
        State::Allowed {
            remaining_traffic_bytes,
            remaining_uptime_secs,
        } => (remaining_traffic_bytes, remaining_uptime_secs),
        State::Exhausted { .. } => panic!("exhausted: {}", d.explanation),
    }
}

fn which(d: &Decision) -> Option<Which> {
    match d.state {
        State::Exhausted { which, .. } => Some(which),
        State::Allowed { .. } => None,
    }
}

#[test]
fn limit_boundaries_multipliers_and_topups() {
    // (limits, usage, topups (MB, all valid in P1), expected: None = exhausted, Some(remaining traffic, remaining uptime))
    type Want = Option<(Option<u64>, Option<u64>)>;
    let cases: Vec<(&str, Limits, Usage, Vec<u64>, Want)> = vec![
        (
            "unlimited",
            traffic(None, 1.0),
            usage_mb(10_000),
            vec![],
            Some((None, None)),
        ),
        (
            "unlimited ignores topups",
            traffic(None, 1.0),
            usage_mb(1),
            vec![5],
            Some((None, None)),
        ),
        (
            "under",
            traffic(Some(100), 1.0),
            Usage {
                traffic_bytes: 100 * MIB - 1,
                uptime_secs: 0,
            },
            vec![],
            Some((Some(1), None)),
        ),
        (
            "exactly equal is over",
            traffic(Some(100), 1.0),
            usage_mb(100),
            vec![],
            None,
        ),
        ("over", traffic(Some(100), 1.0), usage_mb(101), vec![], None),
        (
            "limit 0 without topups",
            traffic(Some(0), 1.0),
            usage_mb(0),
            vec![],
            None,
        ),
        (
            "limit 0 with a topup",
            traffic(Some(0), 1.0),
            usage_mb(20),
            vec![50],
            Some((Some(30 * MIB), None)),
        ),
        (
            "limit 0, topup exactly used",
            traffic(Some(0), 1.0),
            usage_mb(50),
            vec![50],
            None,
        ),
        (
            "limit plus two topups",
            traffic(Some(100), 1.0),
            usage_mb(160),
            vec![50, 20],
            Some((Some(10 * MIB), None)),
        ),
        (
            "multiplier 0.5 under",
            traffic(Some(100), 0.5),
            usage_mb(40),
            vec![],
            Some((Some(10 * MIB), None)),
        ),
        (
            "multiplier 0.5 over",
            traffic(Some(100), 0.5),
            usage_mb(50),
            vec![],
            None,
        ),
        (
            "multiplier 0.5 topup not scaled",
            traffic(Some(100), 0.5),
            usage_mb(50),
            vec![10],
            Some((Some(10 * MIB), None)),
        ),
        (
            "multiplier 2",
            traffic(Some(100), 2.0),
            usage_mb(150),
            vec![],
            Some((Some(50 * MIB), None)),
        ),
        (
            "multiplier 2 equal",
            traffic(Some(100), 2.0),
            usage_mb(200),
            vec![],
            None,
        ),
        (
            "multiplier 0",
            traffic(Some(100), 0.0),
            usage_mb(0),
            vec![],
            None,
        ),
        (
            "uptime under",
            uptime(Some(60), 1.0),
            Usage {
                traffic_bytes: 0,
                uptime_secs: 3599,
            },
            vec![],
            Some((None, Some(1))),
        ),
        (
            "uptime equal",
            uptime(Some(60), 1.0),
            Usage {
                traffic_bytes: 0,
                uptime_secs: 3600,
            },
            vec![],
            None,
        ),
        (
            "uptime x0.5",
            uptime(Some(60), 0.5),
            Usage {
                traffic_bytes: 0,
                uptime_secs: 1000,
            },
            vec![],
            Some((None, Some(800))),
        ),
        (
            "uptime x2",
            uptime(Some(60), 2.0),
            Usage {
                traffic_bytes: 0,
                uptime_secs: 7000,
            },
            vec![],
            Some((None, Some(200))),
        ),
    ];
    for (name, limits, usage, tops, want) in cases {
        let bits = if limits.uptime_min.is_some() {
            TYPE_UPTIME
        } else {
            TYPE_TRAFFIC
        };
        let topups: Vec<_> = tops
            .iter()
            .enumerate()
            .map(|(i, &v)| bal(topup(i as u64 + 1, bits, P1.start, P1.end, v), 0))
            .collect();
        let d = eval(&limits, usage, &topups, P1);
        match want {
            None => assert!(d.is_exhausted(), "{name}: {}", d.explanation),
            Some(r) => assert_eq!(remaining(&d), r, "{name}: {}", d.explanation),
        }
    }
}

#[test]
fn exhausted_names_the_kind_and_message() {
    let both = Limits {
        traffic_mb: Some(1),
        uptime_min: Some(1),
        ..Limits::default()
    };
    let cases = [
        (
            Usage {
                traffic_bytes: MIB,
                uptime_secs: 0,
            },
            Which::Traffic,
            "Traffic limit reached",
        ),
        (
            Usage {
                traffic_bytes: 0,
                uptime_secs: 60,
            },
            Which::Uptime,
            "Uptime limit reached",
        ),
        (
            Usage {
                traffic_bytes: MIB,
                uptime_secs: 60,
            },
            Which::Both,
            "Traffic limit reached; Uptime limit reached",
        ),
    ];
    for (usage, w, msg) in cases {
        let d = eval(&both, usage, &[], P1);
        assert_eq!(
            d.state,
            State::Exhausted {
                which: w,
                reply_message: msg.into()
            }
        );
        assert!(
            d.explanation.contains("user 'joe'") && d.explanation.contains("reject"),
            "{}",
            d.explanation
        );
        assert!(d.explanation.contains("EXHAUSTED"), "{}", d.explanation);
    }
}

#[test]
fn caveat_swap_end_to_end() {
    let t0 = ("SMRadius-Capping-Traffic-Limit", "0");
    let u0 = ("Rust-Capping-Uptime-Limit", "0");
    let cases: [(Pairs, bool, Option<Which>); 6] = [
        (&[], false, None),
        (&[], true, Some(Which::Both)),
        (&[t0], false, Some(Which::Traffic)),
        (&[t0], true, Some(Which::Uptime)),
        (&[t0, u0], false, Some(Which::Both)),
        (&[t0, u0], true, None),
    ];
    for (pairs, swap, want) in cases {
        let limits =
            parse_limits("joe", &RawLimits::from_pairs(pairs.iter().copied()), swap).unwrap();
        let d = eval(&limits, Usage::default(), &[], P1);
        assert_eq!(which(&d), want, "{pairs:?} swap={swap}: {}", d.explanation);
    }
}

/// A tiny in-memory store: topups plus per-period consumption rows, driven the way
/// the real store must apply a decision.
#[derive(Default)]
struct Store {
    topups: Vec<Topup>,
    rows: Vec<ConsumptionRow>,
    /// (period start, mark)
    marks: Vec<(i64, UsageMark)>,
    /// Usage at the last run, per period start: each run's delta is the growth since.
    last_usage: Vec<(i64, Usage)>,
}

impl Store {
    fn balances(&self, period: &Period) -> Vec<TopupBalance> {
        let before = consumed_before(&self.rows, period.start);
        self.topups
            .iter()
            .map(|t| bal(t.clone(), before.get(&t.id).copied().unwrap_or(0)))
            .collect()
    }

    /// One accounting update at `now` that brings the period's usage to `usage`.
    fn run(&mut self, limits: &Limits, usage: Usage, period: Period, now: i64) -> Decision {
        let opts = EvalOptions::default();
        let topups = self.balances(&period);
        let last = self
            .last_usage
            .iter()
            .find(|(p, _)| *p == period.start)
            .map_or(Usage::default(), |(_, u)| *u);
        let marks: Vec<UsageMark> = self
            .marks
            .iter()
            .filter(|(p, _)| *p == period.start)
            .map(|(_, m)| *m)
            .collect();
        let d = evaluate(&EvalInput {
            username: "joe",
            limits,
            usage,
            delta: usage.saturating_sub(last),
            marks: &marks,
            topups: &topups,
            period,
            now,
            opts: &opts,
        });
        self.apply(&d, &period, now);
        self.last_usage.retain(|(p, _)| *p != period.start);
        self.last_usage.push((period.start, usage));
        d
    }

    fn apply(&mut self, d: &Decision, period: &Period, now: i64) {
        for m in &d.marks {
            assert!(
                !self
                    .marks
                    .iter()
                    .any(|(p, x)| *p == period.start && x.at == m.at),
                "a mark is written once"
            );
            self.marks.push((period.start, *m));
        }
        for r in &d.topup_consumption {
            self.rows
                .retain(|x| !(x.topup_id == r.topup_id && x.period_start == r.period_start));
            self.rows.push(*r);
        }
        for id in &d.depleted {
            let t = self.topups.iter_mut().find(|t| t.id == *id).unwrap();
            t.depleted = true;
            t.depleted_at = Some(now);
        }
        for n in &d.new_auto_topups {
            let id = self.topups.iter().map(|t| t.id).max().unwrap_or(0) + 1;
            self.topups.push(Topup {
                id,
                user: n.user.clone(),
                type_bits: n.type_bits,
                valid_from: n.valid_from,
                valid_to: n.valid_to,
                value: n.value,
                depleted: n.depleted,
                depleted_at: n.depleted.then_some(n.created),
                created: n.created,
            });
            self.rows.push(ConsumptionRow {
                topup_id: id,
                period_start: period.start,
                consumed: n.consumed,
            });
        }
    }

    fn consumed(&self, id: u64, period: &Period) -> u64 {
        self.rows
            .iter()
            .filter(|r| r.topup_id == id && r.period_start == period.start)
            .map(|r| r.consumed)
            .sum()
    }
}

#[test]
fn topup_spanning_three_months_carries_over_and_depletes() {
    let limits = traffic(Some(100), 1.0);
    let mut s = Store::default();
    // Starts mid-P1, ends mid-P3: counts fully in all three months.
    s.topups.push(topup(
        7,
        TYPE_TRAFFIC,
        P1.start + 600_000,
        P3.start + 500_000,
        300,
    ));

    // P1: 200 MB used, 100 over the limit: the topup gives 100, 200 carried.
    let d = s.run(&limits, usage_mb(200), P1, P1.end - 1);
    assert_eq!(remaining(&d).0, Some(200 * MIB), "{}", d.explanation);
    assert_eq!(s.consumed(7, &P1), 100 * MIB);
    // Re-running the same period with the same usage changes nothing (idempotent).
    let again = s.run(&limits, usage_mb(200), P1, P1.end - 1);
    assert_eq!(
        (&again.state, &again.topup_consumption),
        (&d.state, &d.topup_consumption)
    );
    assert!(
        again.marks.is_empty(),
        "its start was marked by the first run"
    );
    assert_eq!(s.rows.len(), 1);

    // P2: 150 MB: 50 more from the topup; 150 left.
    let d = s.run(&limits, usage_mb(150), P2, P2.start + 10);
    assert_eq!(remaining(&d).0, Some(150 * MIB));
    assert_eq!(s.consumed(7, &P2), 50 * MIB);
    assert!(d.depleted.is_empty());

    // P3: 250 MB: the last 150 are used exactly: exhausted and depleted.
    let d = s.run(&limits, usage_mb(250), P3, P3.start + 10);
    assert!(d.is_exhausted());
    assert_eq!(d.depleted, vec![7]);
    assert_eq!(s.consumed(7, &P3), 150 * MIB);
    // Re-evaluation in P3 still counts it (depleted during P3) and does not re-mark it.
    let d2 = s.run(&limits, usage_mb(250), P3, P3.start + 20);
    assert!(d2.depleted.is_empty());
    assert_eq!(d2.topup_consumption, d.topup_consumption);
    // A fourth month would not count it even if it were still valid.
    let p4 = Period {
        kind: PeriodKind::Month,
        start: 4_000_000,
        end: 5_000_000,
    };
    s.topups[0].valid_to = p4.end;
    let d = s.run(&limits, usage_mb(50), p4, p4.start + 1);
    assert!(d.topup_consumption.is_empty());
}

#[test]
fn partially_used_topup_carries_into_next_month_earliest_expiry_first() {
    let limits = traffic(Some(100), 1.0);
    let mut s = Store::default();
    // B expires later but has the lower id: A must still be used first.
    s.topups.push(topup(1, TYPE_TRAFFIC, P1.start, P3.end, 100)); // B
    s.topups.push(topup(2, TYPE_TRAFFIC, P1.start, P2.end, 100)); // A
    let d = s.run(&limits, usage_mb(160), P1, P1.start + 100);
    assert_eq!(remaining(&d).0, Some(140 * MIB));
    assert_eq!((s.consumed(2, &P1), s.consumed(1, &P1)), (60 * MIB, 0));
    // Usage grows within P1: the period's rows are replaced, not added to.
    let d = s.run(&limits, usage_mb(230), P1, P1.start + 200);
    assert_eq!(remaining(&d).0, Some(70 * MIB));
    assert_eq!(
        (s.consumed(2, &P1), s.consumed(1, &P1)),
        (100 * MIB, 30 * MIB)
    );
    assert_eq!(d.depleted, vec![2]);
    // P2: A is gone (depleted in P1), B has 70 left.
    let d = s.run(&limits, usage_mb(120), P2, P2.start + 1);
    assert_eq!(remaining(&d).0, Some(50 * MIB), "{}", d.explanation);
    assert_eq!(
        d.topup_consumption,
        vec![ConsumptionRow {
            topup_id: 1,
            period_start: P2.start,
            consumed: 20 * MIB
        }]
    );
}

#[test]
fn which_topups_count() {
    let limits = Limits {
        traffic_mb: Some(0),
        uptime_min: Some(0),
        ..Limits::default()
    };
    let mut depleted_earlier = topup(4, TYPE_TRAFFIC, P1.start, P2.end, 10);
    depleted_earlier.depleted = true;
    depleted_earlier.depleted_at = Some(P2.start - 1);
    let mut depleted_now = topup(5, TYPE_TRAFFIC, P1.start, P2.end, 10);
    depleted_now.depleted = true;
    depleted_now.depleted_at = Some(P2.start + 1);
    let mut admin_no_time = topup(6, TYPE_TRAFFIC, P2.start, P2.end, 10);
    admin_no_time.depleted = true;
    // (topup, consumed before, counts towards traffic in P2)
    let cases = [
        (topup(1, TYPE_TRAFFIC, P1.start, P2.start, 10), 0, false),
        (topup(1, TYPE_TRAFFIC, P2.end, P3.end, 10), 0, false),
        // Decided at P2.start + 500: one that starts later does not count yet, one
        // that expired earlier no longer does.
        (topup(1, TYPE_TRAFFIC, P2.end - 1, P3.end, 10), 0, false),
        (topup(1, TYPE_TRAFFIC, P2.start + 500, P3.end, 10), 0, true),
        (topup(1, TYPE_TRAFFIC, P1.start, P2.start + 1, 10), 0, false),
        (
            topup(1, TYPE_TRAFFIC, P1.start, P2.start + 501, 10),
            0,
            true,
        ),
        (
            topup(1, TYPE_TRAFFIC | TYPE_AUTO, P2.start, P2.end, 10),
            0,
            true,
        ),
        (
            topup(1, TYPE_TRAFFIC | TYPE_UPTIME, P2.start, P2.end, 10),
            0,
            false,
        ),
        (topup(1, TYPE_UPTIME, P2.start, P2.end, 10), 0, false),
        (
            topup(1, TYPE_TRAFFIC, P1.start, P2.end, 10),
            10 * MIB,
            false,
        ),
        (depleted_earlier, 0, false),
        (depleted_now, 0, true),
        (admin_no_time, 0, false),
    ];
    for (t, before, counts) in cases {
        let desc = format!("{t:?} before={before}");
        let d = eval(
            &limits,
            Usage {
                traffic_bytes: 0,
                uptime_secs: 0,
            },
            &[bal(t, before)],
            P2,
        );
        let traffic_ok = matches!(
            d.state,
            State::Exhausted {
                which: Which::Uptime,
                ..
            }
        );
        assert_eq!(traffic_ok, counts, "{desc}: {}", d.explanation);
    }
}

#[test]
fn a_topup_gives_allowance_only_while_valid() {
    // Limit 100 MB in P1 / P2; each step is one accounting update at P1.start + `at`
    // bringing the period's usage to `used` MB. (name, topups (id, MB, from, to as
    // offsets from P1.start), steps (at, used MB, remaining MB or None = exhausted,
    // consumption (id, MB) in the step's period)).
    type Step = (i64, u64, Option<u64>, &'static [(u64, u64)]);
    type Case = (
        &'static str,
        &'static [(u64, u64, i64, i64)],
        &'static [Step],
    );
    const D: i64 = 100_000;
    let cases: [Case; 8] = [
        (
            "expired earlier this month: counts only what it covered while valid",
            &[(1, 50, D, 3 * D)],
            &[
                (2 * D, 120, Some(30), &[(1, 20)]),
                // Its unused 30 MB are gone; the 20 it covered stay covered.
                (4 * D, 120, None, &[(1, 20)]),
                (5 * D, 125, None, &[(1, 20)]),
            ],
        ),
        (
            "starts later this month: counts nothing yet",
            &[(1, 50, 6 * D, 10 * D)],
            &[
                (2 * D, 90, Some(10), &[(1, 0)]),
                (3 * D, 120, None, &[(1, 0)]),
            ],
        ),
        (
            "starts mid-period with overage before: not absorbed",
            &[(1, 50, 6 * D, 10 * D)],
            &[
                (2 * D, 120, None, &[(1, 0)]),
                // 20 MB over before it started stay uncovered: 50 left, not 30.
                (7 * D, 120, Some(50), &[(1, 0)]),
                (8 * D, 150, Some(20), &[(1, 30)]),
            ],
        ),
        (
            "usage during its validity consumes it",
            &[(1, 50, D, 5 * D)],
            &[
                (D / 2, 80, Some(20), &[(1, 0)]),
                (2 * D, 130, Some(20), &[(1, 30)]),
                (3 * D, 160, None, &[(1, 50)]),
            ],
        ),
        (
            "covered, then expired: stays covered, only its rest is gone",
            &[(1, 50, D, 3 * D), (2, 100, D, 10 * D)],
            // 1 expires first, so it is used first.
            &[
                (2 * D, 130, Some(120), &[(1, 30), (2, 0)]),
                (4 * D, 130, Some(100), &[(1, 30), (2, 0)]),
                (5 * D, 150, Some(80), &[(1, 30), (2, 20)]),
            ],
        ),
        (
            "valid beyond the period: the rest carries over while valid",
            &[(1, 300, D, 15 * D)],
            &[
                (2 * D, 150, Some(250), &[(1, 50)]),
                (10 * D + 10, 120, Some(230), &[(1, 20)]),
                // Expired in P2: its last 230 MB are gone.
                (16 * D, 120, None, &[(1, 20)]),
            ],
        ),
        (
            "valid from before the period: the whole period",
            &[(1, 50, -D, 3 * D)],
            &[(D, 120, Some(30), &[(1, 20)])],
        ),
        (
            "ends and starts in one second: the new one takes over",
            &[(1, 50, D, 3 * D), (2, 50, 3 * D, 10 * D)],
            &[
                (2 * D, 130, Some(20), &[(1, 30), (2, 0)]),
                (4 * D, 160, Some(20), &[(1, 30), (2, 30)]),
            ],
        ),
    ];
    let limits = traffic(Some(100), 1.0);
    for (name, topups, steps) in cases {
        let mut s = Store::default();
        for &(id, mb, from, to) in topups {
            s.topups
                .push(topup(id, TYPE_TRAFFIC, P1.start + from, P1.start + to, mb));
        }
        for &(at, used, want, consumed) in steps {
            let now = P1.start + at;
            let period = if now < P2.start { P1 } else { P2 };
            let d = s.run(&limits, usage_mb(used), period, now);
            let got = match d.state {
                State::Allowed {
                    remaining_traffic_bytes,
                    ..
                } => remaining_traffic_bytes,
                State::Exhausted { .. } => None,
            };
            assert_eq!(
                got,
                want.map(|mb| mb * MIB),
                "{name} at {at}: {}",
                d.explanation
            );
            for &(id, mb) in consumed {
                assert_eq!(
                    s.consumed(id, &period),
                    mb * MIB,
                    "{name} at {at}: topup {id}"
                );
            }
            // The summary (CLI, xlat) agrees with the decision.
            let opts = EvalOptions::default();
            let balances = s.balances(&period);
            let marks: Vec<UsageMark> = s
                .marks
                .iter()
                .filter(|(p, _)| *p == period.start)
                .map(|(_, m)| *m)
                .collect();
            let read = EvalInput {
                username: "joe",
                limits: &limits,
                usage: usage_mb(used),
                delta: Usage::default(),
                marks: &marks,
                topups: &balances,
                period,
                now,
                opts: &opts,
            };
            let sum = summarize(&read, Kind::Traffic);
            assert_eq!(
                u64::try_from(sum.remaining.unwrap().max(0)).unwrap(),
                want.map_or(0, |mb| mb * MIB),
                "{name} at {at}: summary {sum:?}"
            );
        }
    }
}

#[test]
fn boundaries_without_a_mark_read_as_the_usage_before_the_update() {
    // A topup from P1.start + 1000, limit 100 MB, 120 MB used, read at + 2000.
    let limits = traffic(Some(100), 1.0);
    let t = [bal(topup(1, TYPE_TRAFFIC, P1.start + 1000, P1.end, 50), 0)];
    let mark = |mb: u64| UsageMark {
        at: P1.start + 1000,
        usage: usage_mb(mb),
    };
    let opts = EvalOptions::default();
    // (marks, delta MB, remaining MB, marks written)
    let cases: [(Vec<UsageMark>, u64, u64, Vec<UsageMark>); 5] = [
        // Nothing recorded since it started: all 120 MB lie before it.
        (vec![], 0, 50, vec![mark(120)]),
        // The update being decided (15 MB) lies after it.
        (vec![], 15, 35, vec![mark(105)]),
        (vec![mark(90)], 0, 30, vec![]),
        (vec![mark(90)], 15, 30, vec![]),
        // A mark above the usage before the update is clamped to it.
        (vec![mark(500)], 15, 35, vec![]),
    ];
    for (marks, delta, want, written) in cases {
        let input = EvalInput {
            username: "joe",
            limits: &limits,
            usage: usage_mb(120),
            delta: usage_mb(delta),
            marks: &marks,
            topups: &t,
            period: P1,
            now: P1.start + 2000,
            opts: &opts,
        };
        let d = evaluate(&input);
        assert_eq!(
            remaining(&d).0,
            Some(want * MIB),
            "{marks:?} +{delta}: {}",
            d.explanation
        );
        assert_eq!(d.marks, written, "{marks:?} +{delta}");
    }
}

#[test]
fn auto_topup_covers_the_update_that_triggered_it_not_earlier_overage() {
    // Amount 500, threshold 250, limit 1000 MB; (used before MB, update MB, added,
    // remaining MB).
    let limits = with_auto(traffic(Some(1000), 1.0), 500, None, None);
    let cases = [
        (900, 1000, 3, 600),
        (1000, 100, 1, 400),
        // 500 MB over from before (when no auto-topup was allowed) stay uncovered.
        (1500, 100, 1, 400),
        (1500, 0, 1, 500),
    ];
    let opts = EvalOptions::default();
    for (before, delta, added, want) in cases {
        let input = EvalInput {
            username: "joe",
            limits: &limits,
            usage: usage_mb(before + delta),
            delta: usage_mb(delta),
            marks: &[],
            topups: &[],
            period: P1,
            now: P1.start + 500,
            opts: &opts,
        };
        let d = evaluate(&input);
        assert_eq!(
            d.new_auto_topups.len(),
            added,
            "{before}+{delta}: {}",
            d.explanation
        );
        assert_eq!(remaining(&d).0, Some(want * MIB), "{before}+{delta}");
        // Its start gets a mark: the usage before the update.
        assert_eq!(
            d.marks,
            vec![UsageMark {
                at: P1.start + 500,
                usage: usage_mb(before)
            }]
        );
    }
}

#[test]
fn auto_topups() {
    use NotifyEvent::{Added, LimitReached as Reached};
    // Amount 500 MB; (name, (limit, used, auto limit, threshold, count of 500 MB
    // auto-topups already added this period), (added now, remaining MB or None =
    // exhausted, event)).
    type Case = (
        &'static str,
        (u64, u64, Option<u64>, Option<u64>, u64),
        (usize, Option<u64>, Option<NotifyEvent>),
    );
    let cases: [Case; 13] = [
        (
            "far from threshold",
            (1000, 700, Some(2000), None, 0),
            (0, Some(300), None),
        ),
        (
            "default threshold amount/2 reached",
            (1000, 750, Some(2000), None, 0),
            (1, Some(750), Some(Added)),
        ),
        (
            "exactly at limit: topped up, not rejected",
            (1000, 1000, Some(2000), None, 0),
            (1, Some(500), Some(Added)),
        ),
        (
            "far over: several at once",
            (1000, 1900, Some(2000), None, 0),
            (3, Some(600), Some(Added)),
        ),
        (
            "no auto limit",
            (0, 5000, None, None, 0),
            (11, Some(500), Some(Added)),
        ),
        (
            "threshold 0, still above",
            (1000, 999, Some(2000), Some(0), 0),
            (0, Some(1), None),
        ),
        (
            "threshold 0, exhausted",
            (1000, 1000, Some(2000), Some(0), 0),
            (1, Some(500), Some(Added)),
        ),
        (
            "explicit threshold 600",
            (1000, 450, Some(2000), Some(600), 0),
            (1, Some(1050), Some(Added)),
        ),
        (
            "auto limit reached, still under",
            (1000, 2800, Some(2000), None, 4),
            (0, Some(200), Some(Reached)),
        ),
        (
            "auto limit reached, exhausted",
            (1000, 3000, Some(2000), None, 4),
            (0, None, Some(Reached)),
        ),
        (
            "auto limit allows too few: none added",
            (1000, 3000, Some(2000), None, 3),
            (0, None, Some(Reached)),
        ),
        (
            "auto limit allows fewer than needed",
            (1000, 2800, Some(2000), None, 3),
            (1, Some(200), Some(Added)),
        ),
        (
            "auto limit not a multiple: whole only",
            (1000, 1000, Some(499), None, 0),
            (0, None, Some(Reached)),
        ),
    ];
    for c in cases {
        let (name, (limit_mb, used_mb, auto_limit, threshold, already_auto), want) = c;
        let (want_added, want_remaining_mb, want_event) = want;
        let limits = with_auto(traffic(Some(limit_mb), 1.0), 500, auto_limit, threshold);
        // Auto-topups already added in this period (still available).
        let mut s = Store::default();
        for i in 0..already_auto {
            s.topups.push(topup(
                100 + i,
                TYPE_TRAFFIC | TYPE_AUTO,
                P1.start + 1,
                P1.end,
                500,
            ));
        }
        let d = s.run(&limits, usage_mb(used_mb), P1, P1.start + 1000);
        assert_eq!(
            d.new_auto_topups.len(),
            want_added,
            "{}: {}",
            name,
            d.explanation
        );
        match want_remaining_mb {
            Some(mb) => assert_eq!(
                remaining(&d).0,
                Some(mb * MIB),
                "{}: {}",
                name,
                d.explanation
            ),
            None => assert!(d.is_exhausted(), "{}", name),
        }
        let events: Vec<_> = d.notifications.iter().map(|n| n.event).collect();
        let want: Vec<_> = want_event.into_iter().flat_map(|e| [e, e]).collect();
        assert_eq!(events, want, "{}: one per target", name);
        for n in &d.new_auto_topups {
            assert_eq!(
                (n.type_bits, n.value, n.valid_from, n.valid_to),
                (TYPE_TRAFFIC | TYPE_AUTO, 500, P1.start + 1000, P1.end)
            );
        }
        // Re-evaluating once the new rows are stored adds nothing and keeps the answer.
        if want_added > 0 {
            let again = s.run(&limits, usage_mb(used_mb), P1, P1.start + 2000);
            assert!(
                again.new_auto_topups.is_empty(),
                "{}: {}",
                name,
                again.explanation
            );
            assert_eq!(again.state, d.state, "{}", name);
        }
    }
}

#[test]
fn auto_topups_consume_in_order_and_deplete() {
    let limits = with_auto(traffic(Some(1000), 1.0), 500, Some(2000), None);
    let mut s = Store::default();
    let d = s.run(&limits, usage_mb(1900), P1, P1.start + 1000);
    let split: Vec<_> = d
        .new_auto_topups
        .iter()
        .map(|n| (n.consumed / MIB, n.depleted))
        .collect();
    assert_eq!(split, vec![(500, true), (400, false), (0, false)]);
    // After insertion the stored split is recomputed identically.
    let again = s.run(&limits, usage_mb(1900), P1, P1.start + 2000);
    let stored: Vec<_> = again
        .topup_consumption
        .iter()
        .map(|r| r.consumed / MIB)
        .collect();
    assert_eq!(stored, vec![500, 400, 0]);
    assert!(again.depleted.is_empty(), "already depleted at insert");
}

#[test]
fn auto_topup_dropped_when_other_kind_exhausted() {
    let mut limits = with_auto(traffic(Some(1000), 1.0), 500, Some(2000), None);
    limits.uptime_min = Some(60);
    let d = eval(
        &limits,
        Usage {
            traffic_bytes: 900 * MIB,
            uptime_secs: 3600,
        },
        &[],
        P1,
    );
    assert_eq!(which(&d), Some(Which::Uptime));
    assert!(d.new_auto_topups.is_empty());
    assert!(d.notifications.is_empty());
    assert!(
        d.explanation.contains("planned auto-topups dropped"),
        "{}",
        d.explanation
    );
}

#[test]
fn auto_topup_guard_against_runaway() {
    let limits = with_auto(traffic(Some(0), 1.0), 1, None, None);
    let d = eval(&limits, usage_mb(10_000), &[], P1);
    assert!(d.is_exhausted(), "1000 x 1 MB cannot cover 10000 MB");
    assert!(d.new_auto_topups.is_empty());
    let d = eval(&limits, usage_mb(900), &[], P1);
    assert_eq!(d.new_auto_topups.len(), 901);
}

#[test]
fn notification_vars_render_the_seed_template() {
    let limits = with_auto(traffic(Some(1000), 1.0), 500, Some(2000), None);
    let mut s = Store::default();
    s.topups.push(topup(
        50,
        TYPE_TRAFFIC | TYPE_AUTO,
        P1.start + 1,
        P1.end,
        500,
    ));
    let d = s.run(&limits, usage_mb(1300), P1, P1.start + 1000);
    assert_eq!(d.notifications.len(), 2);
    let n = &d.notifications[0];
    assert_eq!(
        (n.kind, n.event, n.target.as_str()),
        (Kind::Traffic, NotifyEvent::Added, "joe@example.com")
    );
    assert_eq!(
        n.key,
        format!("joe|traffic|{}|added-1000|joe@example.com", P1.start)
    );
    assert_ne!(n.key, d.notifications[1].key);
    let r = notify::render(SEED_TEMPLATE, &n.vars).unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert!(r.text.starts_with("To: joe@example.com\n"));
    assert!(
        r.text.contains(
            "Please note that you have 200Mbyte available on username joe. We added another 1 \
             automatic topup(s) totalling 500Mbyte to your username. Your automatic topup usage \
             is 1000Mbyte of 2000Mbyte."
        ),
        "{}",
        r.text
    );

    // Limit reached: the ELSE branch.
    let limits = with_auto(traffic(Some(1000), 1.0), 500, Some(500), None);
    let d = s.run(&limits, usage_mb(1800), P1, P1.start + 3000);
    assert_eq!(d.notifications[0].event, NotifyEvent::LimitReached);
    assert!(d.notifications[0]
        .key
        .ends_with("|limit-reached|joe@example.com"));
    let r = notify::render(SEED_TEMPLATE, &d.notifications[0].vars).unwrap();
    assert!(
        r.text.contains(
            "We cannot add another 500Mbyte to your username as you have reached your automatic \
             topup limit of 500Mbyte. Your total usage is 1800Mbyte."
        ),
        "{}",
        r.text
    );
}

const SEED_TEMPLATE: &str = "To: [% notify.target %]
Subject: [Test ISP] Your account [% user.username %]
[% IF autotopup.toAdd %]
Please note that you have [% usage.limit - usage.total %]Mbyte available on username [% user.username %]. We added another [% autotopup.toAdd %] automatic topup(s) totalling [% autotopup.toAddAmount %]Mbyte to your username. Your automatic topup usage is [% autotopup.added + autotopup.toAddAmount %]Mbyte of [% autotopup.limit ? autotopup.limit : '-no-limit-' %]Mbyte.
[% ELSE %]
We cannot add another [% autotopup.amount %]Mbyte to your username as you have reached your automatic topup limit of [% autotopup.limit %]Mbyte. Your total usage is [% usage.total %]Mbyte.
[% END %]
";

fn allowed(traffic: Option<u64>, uptime: Option<u64>) -> Decision {
    Decision {
        state: State::Allowed {
            remaining_traffic_bytes: traffic,
            remaining_uptime_secs: uptime,
        },
        ..Decision::unlimited()
    }
}

#[test]
fn reply_attribute_cases() {
    let gib = 1u64 << 30;
    let attrs = |v: &[(&str, String)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.clone()))
            .collect::<Vec<_>>()
    };
    let cases: Vec<(Decision, Option<u32>, bool, Attrs)> = vec![
        (allowed(None, None), Some(30), true, vec![]),
        (
            allowed(None, Some(3600)),
            None,
            false,
            attrs(&[("Session-Timeout", "3600".into())]),
        ),
        (
            allowed(None, Some(3600)),
            Some(600),
            false,
            attrs(&[("Session-Timeout", "600".into())]),
        ),
        (
            allowed(None, Some(3600)),
            Some(7200),
            false,
            attrs(&[("Session-Timeout", "3600".into())]),
        ),
        (
            allowed(None, Some(1 << 40)),
            None,
            false,
            attrs(&[("Session-Timeout", u32::MAX.to_string())]),
        ),
        (allowed(Some(5 * gib + 123), None), None, false, vec![]),
        (
            allowed(Some(5 * gib + 123), None),
            None,
            true,
            attrs(&[
                ("Mikrotik-Total-Limit", (gib + 123).to_string()),
                ("Mikrotik-Total-Limit-Gigawords", "1".into()),
            ]),
        ),
        (
            allowed(Some(4 * gib), Some(60)),
            Some(90),
            true,
            attrs(&[
                ("Session-Timeout", "60".into()),
                ("Mikrotik-Total-Limit", "0".into()),
                ("Mikrotik-Total-Limit-Gigawords", "1".into()),
            ]),
        ),
        (
            allowed(Some(100 * MIB), None),
            None,
            true,
            attrs(&[
                ("Mikrotik-Total-Limit", (100 * MIB).to_string()),
                ("Mikrotik-Total-Limit-Gigawords", "0".into()),
            ]),
        ),
        (
            allowed(Some(u64::MAX), None),
            None,
            true,
            attrs(&[
                ("Mikrotik-Total-Limit", "4294967295".into()),
                ("Mikrotik-Total-Limit-Gigawords", "4294967295".into()),
            ]),
        ),
    ];
    for (d, existing, mt, want) in cases {
        assert_eq!(
            reply_attributes(&d, existing, mt),
            want,
            "{:?} {existing:?} {mt}",
            d.state
        );
    }
    let mut ex = allowed(None, None);
    ex.state = State::Exhausted {
        which: Which::Traffic,
        reply_message: "Traffic limit reached".into(),
    };
    assert_eq!(
        reply_attributes(&ex, Some(5), true),
        attrs(&[("Reply-Message", "Traffic limit reached".into())])
    );
}

#[test]
fn session_timeout_from_evaluation_is_seconds() {
    let d = eval(
        &uptime(Some(90), 1.0),
        Usage {
            traffic_bytes: 0,
            uptime_secs: 1800,
        },
        &[],
        P1,
    );
    assert_eq!(
        reply_attributes(&d, None, false),
        vec![("Session-Timeout".to_string(), "3600".to_string())]
    );
}

#[test]
fn accounting_actions() {
    let ok = allowed(Some(1), None);
    let mut over = allowed(None, None);
    over.state = State::Exhausted {
        which: Which::Uptime,
        reply_message: "Uptime limit reached".into(),
    };
    let dis = AcctAction::Disconnect {
        reason: "Uptime limit reached".into(),
    };
    let rep = AcctAction::Report {
        reason: "Uptime limit reached".into(),
    };
    let cases = [
        (
            AcctStatus::Start,
            &over,
            OverLimitPolicy::Disconnect,
            dis.clone(),
        ),
        (AcctStatus::Interim, &over, OverLimitPolicy::Disconnect, dis),
        (AcctStatus::Interim, &over, OverLimitPolicy::Report, rep),
        (
            AcctStatus::Stop,
            &over,
            OverLimitPolicy::Disconnect,
            AcctAction::None,
        ),
        (
            AcctStatus::AccountingOn,
            &over,
            OverLimitPolicy::Disconnect,
            AcctAction::None,
        ),
        (
            AcctStatus::Interim,
            &ok,
            OverLimitPolicy::Disconnect,
            AcctAction::None,
        ),
    ];
    for (status, d, policy, want) in cases {
        assert_eq!(
            accounting_action(status, d, policy),
            want,
            "{status:?} {policy:?}"
        );
    }
}

#[test]
fn accounting_crossing_the_limit_mid_session() {
    let limits = traffic(Some(100), 1.0);
    let at_login = eval(&limits, usage_mb(90), &[], P1);
    assert_eq!(
        accounting_action(AcctStatus::Start, &at_login, OverLimitPolicy::Disconnect),
        AcctAction::None
    );
    let interim = eval(&limits, usage_mb(100), &[], P1);
    assert!(matches!(
        accounting_action(AcctStatus::Interim, &interim, OverLimitPolicy::Disconnect),
        AcctAction::Disconnect { .. }
    ));
}

#[test]
fn explanation_is_one_readable_line() {
    let limits = Limits {
        traffic_mb: Some(500),
        ..Limits::default()
    };
    let topups = [bal(topup(1, TYPE_TRAFFIC, P1.start, P1.end, 100), 0)];
    let d = eval(&limits, usage_mb(550), &topups, P1);
    assert!(!d.explanation.contains('\n'));
    for part in [
        "user 'joe'",
        "traffic used 550.0 MB of 600.0 MB",
        "limit 500 MB x1",
        "100.0 MB from 1 topup(s)",
        "remaining 50.0 MB",
        "uptime unlimited",
        "-> allow",
    ] {
        assert!(
            d.explanation.contains(part),
            "missing {part:?} in {}",
            d.explanation
        );
    }
}

#[test]
fn periods_in_a_timezone() {
    use chrono::{TimeZone, Utc};
    let ts = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp();
    let berlin = chrono_tz::Europe::Berlin;
    let santiago = chrono_tz::America::Santiago;
    let cases = [
        // 2024-03-15 12:00 UTC, Berlin month March: starts 2024-02-29 23:00 UTC (CET), ends 2024-03-31 22:00 UTC (CEST).
        (
            PeriodKind::Month,
            ts(2024, 3, 15, 12),
            berlin,
            ts(2024, 2, 29, 23),
            ts(2024, 3, 31, 22),
        ),
        // December rolls into January of the next year.
        (
            PeriodKind::Month,
            ts(2023, 12, 31, 22),
            berlin,
            ts(2023, 11, 30, 23),
            ts(2023, 12, 31, 23),
        ),
        // 2023-12-31 23:30 UTC is already January 2024 in Berlin.
        (
            PeriodKind::Month,
            ts(2023, 12, 31, 23) + 1800,
            berlin,
            ts(2023, 12, 31, 23),
            ts(2024, 1, 31, 23),
        ),
        // DST day in Berlin is 23 hours long.
        (
            PeriodKind::Day,
            ts(2024, 3, 31, 12),
            berlin,
            ts(2024, 3, 30, 23),
            ts(2024, 3, 31, 22),
        ),
        // Chile skips local midnight 2022-09-11 00:00 (-04 -> -03): the day starts at 01:00 local.
        (
            PeriodKind::Day,
            ts(2022, 9, 11, 12),
            santiago,
            ts(2022, 9, 11, 4),
            ts(2022, 9, 12, 3),
        ),
    ];
    for (kind, now, tz, start, end) in cases {
        let p = Period::containing(kind, now, &tz).unwrap();
        assert_eq!((p.start, p.end), (start, end), "{kind:?} {now} {tz}");
        assert!(p.contains(now) && !p.contains(p.end));
    }
    let utc = Period::containing(PeriodKind::Day, 86_400 * 3 + 5, &Utc).unwrap();
    assert_eq!((utc.start, utc.end), (86_400 * 3, 86_400 * 4));
    assert_eq!(Period::containing(PeriodKind::Day, i64::MAX, &Utc), None);
}

fn headroom_of(limits: &Limits, usage: Usage, topups: &[TopupBalance]) -> Option<Headroom> {
    let opts = EvalOptions::default();
    let input = input_in(limits, usage, topups, P1, &opts);
    headroom(&input, &evaluate(&input))
}

#[test]
fn headroom_cases() {
    let t100 = traffic(Some(100), 1.0);
    let topup50 = [bal(topup(1, TYPE_TRAFFIC, P1.start, P2.start, 50), 0)];
    let auto = with_auto(traffic(Some(1000), 1.0), 500, None, Some(250));
    let both = Limits {
        uptime_min: Some(60),
        ..traffic(Some(100), 1.0)
    };
    let mins = |m: u64| Usage {
        traffic_bytes: 0,
        uptime_secs: m * 60,
    };
    let bounded = |t: Option<u64>, u: Option<u64>| {
        Some(Headroom {
            traffic_bytes: t,
            uptime_secs: u,
            until: None,
        })
    };
    // With the 50 MB topup: only until it expires.
    let until_expiry = |h: Option<Headroom>| {
        h.map(|h| Headroom {
            until: Some(P2.start),
            ..h
        })
    };
    // (name, limits, usage, topups, expected)
    type Case<'a> = (&'a str, Limits, Usage, &'a [TopupBalance], Option<Headroom>);
    let cases: Vec<Case> = vec![
        (
            "unlimited",
            Limits::default(),
            usage_mb(5000),
            &[],
            Some(Headroom::UNBOUNDED),
        ),
        // Without topups the last byte exhausts: one byte less than what remains.
        (
            "under the limit",
            t100.clone(),
            usage_mb(40),
            &[],
            bounded(Some(60 * MIB - 1), None),
        ),
        // With a topup, the limit itself: beyond it the topup is consumed (a write).
        (
            "topup in reserve",
            t100.clone(),
            usage_mb(40),
            &topup50,
            until_expiry(bounded(Some(60 * MIB), None)),
        ),
        (
            "exactly at the limit, topup left",
            t100.clone(),
            usage_mb(100),
            &topup50,
            until_expiry(bounded(Some(0), None)),
        ),
        (
            "consuming a topup",
            t100.clone(),
            usage_mb(120),
            &topup50,
            None,
        ),
        ("exhausted", t100.clone(), usage_mb(100), &[], None),
        // Auto-topups are planned once remaining ≤ threshold (250 MB).
        (
            "above the threshold",
            auto.clone(),
            usage_mb(600),
            &[],
            bounded(Some(150 * MIB - 1), None),
        ),
        ("at the threshold", auto.clone(), usage_mb(750), &[], None),
        (
            "prepaid with a topup",
            traffic(Some(0), 1.0),
            usage_mb(0),
            &topup50,
            until_expiry(bounded(Some(0), None)),
        ),
        (
            "multiplier",
            traffic(Some(100), 0.5),
            usage_mb(10),
            &[],
            bounded(Some(40 * MIB - 1), None),
        ),
        (
            "uptime",
            uptime(Some(60), 1.0),
            mins(59),
            &[],
            bounded(None, Some(59)),
        ),
        (
            "both kinds",
            both.clone(),
            usage_mb(99),
            &[],
            bounded(Some(MIB - 1), Some(3599)),
        ),
    ];
    for (name, limits, usage, topups, want) in cases {
        assert_eq!(headroom_of(&limits, usage, topups), want, "{name}");
    }
}

#[test]
fn headroom_take_counts_down_and_stops_at_the_bound() {
    let mut h = Headroom {
        traffic_bytes: Some(100),
        uptime_secs: None,
        until: Some(50),
    };
    let used = |t, u| Usage {
        traffic_bytes: t,
        uptime_secs: u,
    };
    assert!(h.take(used(60, 1_000_000)));
    assert_eq!(h.traffic_bytes, Some(40));
    assert!(!h.take(used(41, 0)), "beyond the bound");
    assert_eq!(h.traffic_bytes, Some(40), "unchanged when refused");
    assert!(h.take(used(40, 0)));
    assert!(!h.take(used(1, 0)));
    assert!(Headroom::UNBOUNDED.clone().take(used(u64::MAX, u64::MAX)));
    // Time-bounded: sound only before the next validity boundary.
    assert!(h.holds_at(49) && !h.holds_at(50) && !h.holds_at(51));
    assert!(Headroom::UNBOUNDED.holds_at(i64::MAX));
}

/// Soundness against the rules themselves: over a grid of limits, topups and
/// usage, every growth within the headroom evaluates to a decision that writes
/// nothing, and just past a bounded headroom the decision differs.
#[test]
fn headroom_is_sound_against_evaluate() {
    let opts = EvalOptions::default();
    let limit_sets: Vec<Limits> = vec![
        traffic(Some(100), 1.0),
        traffic(Some(0), 1.0),
        traffic(Some(100), 0.3333),
        with_auto(traffic(Some(100), 1.0), 40, Some(80), None),
        with_auto(traffic(Some(100), 1.0), 40, None, Some(0)),
        Limits {
            uptime_min: Some(30),
            ..with_auto(traffic(Some(50), 1.0), 20, None, Some(10))
        },
    ];
    let topup_sets: Vec<Vec<TopupBalance>> = vec![
        vec![],
        vec![bal(topup(1, TYPE_TRAFFIC, P1.start, P2.start, 30), 0)],
        vec![
            bal(
                topup(1, TYPE_TRAFFIC, P1.start - 10, P3.start, 30),
                20 * MIB,
            ),
            bal(topup(2, TYPE_UPTIME, P1.start, P2.start, 10), 0),
        ],
    ];
    let (mut bounded, mut past) = (0, 0);
    for limits in &limit_sets {
        for topups in &topup_sets {
            for used_mb in (0..=160).step_by(7) {
                for used_min in [0u64, 20, 29, 45] {
                    let usage = Usage {
                        traffic_bytes: used_mb * MIB + used_mb,
                        uptime_secs: used_min * 60,
                    };
                    let input = |usage| input_in(limits, usage, topups, P1, &opts);
                    let Some(h) = headroom(&input(usage), &evaluate(&input(usage))) else {
                        continue;
                    };
                    let grow = |t: u64, u: u64| Usage {
                        traffic_bytes: usage.traffic_bytes + t,
                        uptime_secs: usage.uptime_secs + u,
                    };
                    let (ht, hu) = (
                        h.traffic_bytes.unwrap_or(10_000 * MIB),
                        h.uptime_secs.unwrap_or(1_000_000),
                    );
                    for (t, u) in [(0, 0), (ht / 2, hu / 2), (ht, 0), (0, hu), (ht, hu)] {
                        let d = evaluate(&input(grow(t, u)));
                        assert!(
                            d.writes_nothing(),
                            "{limits:?} {topups:?} {usage:?} headroom {h:?}, +{t} B +{u} s: {}",
                            d.explanation
                        );
                    }
                    if let Some(ht) = h.traffic_bytes {
                        bounded += 1;
                        let d = evaluate(&input(grow(ht + 1, 0)));
                        if !d.writes_nothing() {
                            past += 1;
                        }
                    }
                }
            }
        }
    }
    // Not vacuous, and the bound is tight nearly everywhere (it is loose only where
    // an auto-topup is due but its limit allows none and no one is notified).
    assert!(bounded > 100, "only {bounded} bounded cases");
    assert!(
        past * 10 >= bounded * 9,
        "{past} of {bounded} differ just past the bound"
    );
}
