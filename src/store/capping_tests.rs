use crate::capping::{
    evaluate, parse_limits, EvalInput, EvalOptions, Period, PeriodKind, RawLimits, Usage,
};
use crate::sessions::{AcctStatus, AcctUpdate};
use crate::store::testdb;
use crate::store::{AcctCapping, OutboxResult, Store, StoreError, StoreOptions};
use crate::topups::{ConsumptionRow, NewTopup, Topup, MIB, TYPE_AUTO, TYPE_TRAFFIC, TYPE_UPTIME};

const DAY: i64 = 86_400;
/// 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
const NOV: i64 = 1_793_491_200;
const DEC: i64 = NOV + 30 * DAY;

/// An accounting packet of session `sid` of `user`, `input` octets so far.
fn packet(status: AcctStatus, user: &str, sid: &str, input: u64, at: i64) -> AcctUpdate {
    crate::store::tests::upd(status, user, sid, input, 0, Some(60), at)
}

/// The capping part of an accounting update at `now`: monthly, disconnect when over.
fn acct_capping(control: &[(&str, &str)], now: i64) -> AcctCapping {
    AcctCapping {
        control: RawLimits::from_pairs(control.iter().copied()),
        caveat_captrafzero: false,
        period: PeriodKind::Month,
        opts: EvalOptions::default(),
        over_limit: crate::capping::OverLimitPolicy::Disconnect,
        now,
        quota_control: Default::default(),
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        testdb::at(dir.path().join("rlm.sqlite")),
        StoreOptions::default(),
    )
    .unwrap()
}

fn manual(user: &str, type_bits: u32, from: i64, to: i64, value: u64) -> NewTopup {
    NewTopup {
        user: user.into(),
        type_bits,
        valid_from: from,
        valid_to: to,
        value,
        created: from,
        consumed: 0,
        depleted: false,
    }
}

type Snapshot = (
    Vec<Topup>,
    Vec<Vec<ConsumptionRow>>,
    Vec<crate::store::OutboxRow>,
);

fn snapshot(store: &Store) -> Snapshot {
    let topups = store.topup_list(None, true, 0).unwrap();
    let consumption = topups
        .iter()
        .map(|t| store.topup_consumption(t.id).unwrap())
        .collect();
    (
        topups,
        consumption,
        store.outbox_due(i64::MAX, 100).unwrap(),
    )
}

#[test]
fn period_constants_are_month_boundaries() {
    let p = Period::containing(PeriodKind::Month, NOV + 5 * DAY, &chrono_tz::UTC).unwrap();
    assert_eq!((p.start, p.end), (NOV, DEC));
}

#[test]
fn topups_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = store
        .topup_add(manual("alice", TYPE_TRAFFIC, NOV, DEC, 500))
        .unwrap();
    let b = store
        .topup_add(manual("alice", TYPE_UPTIME, NOV - DAY * 40, NOV - DAY, 60))
        .unwrap();
    let c = store
        .topup_add(manual("bob", TYPE_TRAFFIC, NOV, DEC, 100))
        .unwrap();
    assert!(a < b && b < c);

    let now = NOV + DAY;
    let ids = |v: Vec<Topup>| v.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.topup_list(Some("alice"), false, now).unwrap()),
        [a]
    );
    assert_eq!(
        ids(store.topup_list(Some("alice"), true, now).unwrap()),
        [a, b]
    );
    assert_eq!(ids(store.topup_list(None, false, now).unwrap()), [a, c]);

    let got = store.topup_get(a).unwrap().unwrap();
    assert_eq!(
        (got.user.as_str(), got.type_bits, got.value, got.depleted),
        ("alice", TYPE_TRAFFIC, 500, false)
    );

    assert!(store.topup_remove(a).unwrap());
    assert!(!store.topup_remove(a).unwrap());
    assert_eq!(store.topup_get(a).unwrap(), None);
}

#[test]
fn topup_with_reversed_validity_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let err = store
        .topup_add(manual("alice", TYPE_TRAFFIC, DEC, NOV, 1))
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
}

/// alice: 100 MB limit, auto-topups of 50 MB (threshold 25), a manual 50 MB topup.
fn alice_limits() -> crate::capping::Limits {
    let raw = RawLimits::from_pairs([
        ("Rust-Capping-Traffic-Limit", "100"),
        ("Rust-AutoTopup-Traffic-Enabled", "yes"),
        ("Rust-AutoTopup-Traffic-Amount", "50"),
        ("Rust-AutoTopup-Traffic-Notify", "ops@example.net"),
    ]);
    parse_limits("alice", &raw, false).unwrap()
}

fn decide(store: &Store, usage_mb: u64, now: i64) -> crate::capping::Decision {
    let limits = alice_limits();
    let period = Period::containing(PeriodKind::Month, now, &chrono_tz::UTC).unwrap();
    let topups = store
        .topups_for_period("alice", period.start, period.end)
        .unwrap();
    let opts = EvalOptions::default();
    evaluate(&EvalInput {
        username: "alice",
        limits: &limits,
        usage: Usage {
            traffic_bytes: usage_mb * MIB,
            uptime_secs: 0,
        },
        // As if one update brought all of it, at `now`.
        delta: Usage {
            traffic_bytes: usage_mb * MIB,
            uptime_secs: 0,
        },
        marks: &[],
        topups: &topups,
        period,
        now,
        opts: &opts,
    })
}

#[test]
fn applied_decision_and_reevaluation_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let manual_id = store
        .topup_add(manual("alice", TYPE_TRAFFIC, NOV, DEC + 60 * DAY, 50))
        .unwrap();
    let now = NOV + 10 * DAY;

    // 180 MB used: 100 limit + 50 manual = -30 left, two 50 MB auto-topups lift it to 70.
    let d = decide(&store, 180, now);
    assert!(!d.is_exhausted(), "{}", d.explanation);
    assert_eq!(d.new_auto_topups.len(), 2, "{}", d.explanation);
    let ids = store.apply_decision("alice", NOV, now, &d).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|&id| id > manual_id));
    let first = snapshot(&store);

    let (topups, consumption, outbox) = &first;
    assert_eq!(topups.len(), 3, "{topups:#?}");
    let autos: Vec<&Topup> = topups.iter().filter(|t| t.is_auto()).collect();
    assert_eq!(autos.len(), 2);
    assert!(autos
        .iter()
        .all(|t| t.type_bits == TYPE_TRAFFIC | TYPE_AUTO && t.value == 50 && t.valid_to == DEC));
    // 80 MB over: the auto-topups end first (period end), so they absorb it: the
    // first is used up, the second takes 30 MB, the manual one nothing (no row: a
    // missing row reads as 0).
    assert_eq!(consumption[0], []);
    assert!(!topups[0].depleted);
    let per_auto: Vec<u64> = consumption[1..]
        .iter()
        .flatten()
        .map(|r| r.consumed)
        .collect();
    assert_eq!(per_auto, [50 * MIB, 30 * MIB]);
    assert!(topups[1].depleted);
    assert_eq!(topups[1].depleted_at, Some(now));
    assert!(!topups[2].depleted);
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].target, "ops@example.net");
    assert_eq!(outbox[0].event, "added");
    assert!(outbox[0].body.starts_with('{'), "{}", outbox[0].body);

    // Re-evaluating from the stored state adds nothing and rewrites the same rows.
    let again = decide(&store, 180, now + 60);
    assert!(again.new_auto_topups.is_empty(), "{}", again.explanation);
    store
        .apply_decision("alice", NOV, now + 60, &again)
        .unwrap();
    assert_eq!(snapshot(&store).1, first.1);

    // Usage grows: consumption rows rise, the earlier-depleted manual row stays.
    let more = decide(&store, 200, now + 120);
    store
        .apply_decision("alice", NOV, now + 120, &more)
        .unwrap();
    let (topups, consumption, _) = snapshot(&store);
    let per_auto: Vec<u64> = consumption[1..]
        .iter()
        .flatten()
        .map(|r| r.consumed)
        .collect();
    assert_eq!(per_auto, [50 * MIB, 50 * MIB]);
    assert!(topups[2].depleted);
    assert_eq!(topups[2].depleted_at, Some(now + 120));
}

#[test]
fn topups_for_period_sums_only_earlier_consumption() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let id = store
        .topup_add(manual(
            "alice",
            TYPE_TRAFFIC,
            NOV - 30 * DAY,
            DEC + DAY,
            500,
        ))
        .unwrap();
    let oct = NOV - 31 * DAY;
    let mut d = decide(&store, 0, oct + DAY);
    d.topup_consumption = vec![ConsumptionRow {
        topup_id: id,
        period_start: oct,
        consumed: 7,
    }];
    store.apply_decision("alice", oct, oct + DAY, &d).unwrap();
    d.topup_consumption = vec![ConsumptionRow {
        topup_id: id,
        period_start: NOV,
        consumed: 11,
    }];
    store.apply_decision("alice", NOV, NOV + DAY, &d).unwrap();

    let nov = store.topups_for_period("alice", NOV, DEC).unwrap();
    assert_eq!(nov.len(), 1);
    assert_eq!(nov[0].consumed_before, 7);
    let dec = store
        .topups_for_period("alice", DEC, DEC + 31 * DAY)
        .unwrap();
    assert_eq!(dec[0].consumed_before, 18);
    assert!(store
        .topups_for_period("alice", DEC + 2 * DAY, DEC + 3 * DAY)
        .unwrap()
        .is_empty());
    assert!(store.topups_for_period("bob", NOV, DEC).unwrap().is_empty());

    // Removing the topup removes its consumption too.
    store.topup_remove(id).unwrap();
    assert!(store.topup_consumption(id).unwrap().is_empty());
}

#[test]
fn outbox_mark_sent_and_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = NOV + 10 * DAY;
    let d = decide(&store, 120, now);
    assert_eq!(d.notifications.len(), 1, "{}", d.explanation);
    store.apply_decision("alice", NOV, now, &d).unwrap();
    let due = store.outbox_due(now, 10).unwrap();
    assert_eq!(due.len(), 1);
    let key = due[0].key.clone();
    assert!(store.outbox_due(now - 1, 10).unwrap().is_empty());

    let failed = OutboxResult::Failed {
        error: "connection refused".into(),
        retry_at: now + 300,
    };
    assert!(store.outbox_mark(&key, now, failed).unwrap());
    assert!(store.outbox_due(now, 10).unwrap().is_empty());
    let retry = store.outbox_due(now + 300, 10).unwrap();
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].last_error.as_deref(), Some("connection refused"));

    assert!(store
        .outbox_mark(&key, now + 300, OutboxResult::Sent)
        .unwrap());
    assert!(store.outbox_due(i64::MAX, 10).unwrap().is_empty());
    assert!(!store.outbox_mark("nope", now, OutboxResult::Sent).unwrap());
}

#[test]
fn limits_set_validates_and_canonicalizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .limits_set("alice", &[("SMRadius-Capping-Traffic-Limit", "100")])
        .unwrap();
    store
        .limits_set("alice", &[("Rust-Capping-Uptime-Limit", "60")])
        .unwrap();
    let rows = store.user_limits("alice").unwrap();
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.attribute.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("Rust-Capping-Traffic-Limit", "100"),
            ("Rust-Capping-Uptime-Limit", "60")
        ]
    );

    // Overwrite wins over the stored value.
    store
        .limits_set("alice", &[("Rust-Capping-Traffic-Limit", "200")])
        .unwrap();
    let limits = parse_limits("alice", &store.raw_limits("alice").unwrap(), false).unwrap();
    assert_eq!(limits.traffic_mb, Some(200));

    for bad in [
        vec![("Rust-Capping-Traffic-Limit", "-5")],
        vec![("Rust-Capping-Traffic-Limit", "12MB")],
        vec![("Rust-AutoTopup-Uptime-Enabled", "yes")], // no amount
        vec![("No-Such-Attribute", "1")],
    ] {
        let err = store.limits_set("alice", &bad).unwrap_err();
        assert!(matches!(err, StoreError::Rejected(_)), "{bad:?}: {err}");
    }
    assert_eq!(store.user_limits("alice").unwrap().len(), 2);

    assert_eq!(
        store
            .limits_unset(
                "alice",
                &[
                    "Rust-Capping-Traffic-Limit",
                    "SMRadius-Capping-Uptime-Limit"
                ]
            )
            .unwrap(),
        2
    );
    assert!(store.user_limits("alice").unwrap().is_empty());
}

fn decide_request(now: i64, usage_mb: Option<u64>) -> crate::store::DecideRequest {
    crate::store::DecideRequest {
        username: "alice".into(),
        limits: alice_limits(),
        period: Period::containing(PeriodKind::Month, now, &chrono_tz::UTC).unwrap(),
        now,
        opts: EvalOptions::default(),
        usage: usage_mb.map(|mb| Usage {
            traffic_bytes: mb * MIB,
            uptime_secs: 0,
        }),
        // As if one update brought all of it, at `now`.
        delta: Usage {
            traffic_bytes: usage_mb.unwrap_or(0) * MIB,
            uptime_secs: 0,
        },
    }
}

#[test]
fn decide_reads_stored_usage_and_never_doubles_auto_topups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = NOV + 10 * DAY;
    store
        .record(packet(AcctStatus::Start, "alice", "s", 0, now - 60))
        .unwrap();
    store
        .record(packet(AcctStatus::Interim, "alice", "s", 90 * MIB, now))
        .unwrap();

    // 90 of 100 MB used: 10 left ≤ threshold 25, one 50 MB auto-topup.
    let (d, ids) = store.decide(decide_request(now, None)).unwrap();
    assert_eq!(ids.len(), 1, "{}", d.explanation);
    assert!(!d.is_exhausted());

    // Racing decisions from many threads: still exactly one auto-topup.
    std::thread::scope(|s| {
        for i in 0..8 {
            let store = store.clone();
            s.spawn(move || store.decide(decide_request(now + i, None)).unwrap());
        }
    });
    let autos = store
        .topup_list(Some("alice"), true, 0)
        .unwrap()
        .into_iter()
        .filter(|t| t.is_auto())
        .count();
    assert_eq!(autos, 1);

    // Explicit usage overrides the stored one.
    let (d, _) = store.decide(decide_request(now + 100, Some(10))).unwrap();
    assert!(d.new_auto_topups.is_empty());
    assert!(d.topup_consumption.iter().all(|r| r.consumed == 0));
}

/// Auto-topups (MB) stored for alice, and the total the last "added" notification
/// announced (`autotopup.added` + `toAddAmount`), for every notification.
fn autos_and_announced(store: &Store) -> (Vec<u64>, Vec<i64>) {
    let autos = store
        .topup_list(Some("alice"), true, 0)
        .unwrap()
        .into_iter()
        .filter(|t| t.is_auto())
        .map(|t| t.value)
        .collect();
    let mut totals: Vec<i64> = store
        .outbox_due(i64::MAX, 1000)
        .unwrap()
        .iter()
        .filter(|n| n.event == "added")
        .map(|n| {
            let v: serde_json::Value = serde_json::from_str(&n.body).unwrap();
            let n = |k: &str| {
                v[k].as_str()
                    .map_or_else(|| v[k].as_i64().unwrap(), |s| s.parse().unwrap())
            };
            n("autotopup.added") + n("autotopup.toAddAmount")
        })
        .collect();
    totals.sort();
    (autos, totals)
}

#[test]
fn auto_topups_decided_in_the_same_second_are_each_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = NOV + 10 * DAY;
    // Two interims in one second, each needing one more 50 MB topup.
    let (_, first) = store.decide(decide_request(now, Some(90))).unwrap();
    let (_, second) = store.decide(decide_request(now, Some(140))).unwrap();
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_ne!(first, second, "two rows, not one reused");
    let (autos, announced) = autos_and_announced(&store);
    assert_eq!(autos, [50, 50]);
    assert_eq!(announced, [50, 100]);

    // Many at once, all in the same second, usage growing: the store and the
    // notifications agree whatever the interleaving.
    std::thread::scope(|s| {
        for i in 0..16u64 {
            let store = store.clone();
            s.spawn(move || {
                store
                    .decide(decide_request(now, Some(150 + 10 * i)))
                    .unwrap()
            });
        }
    });
    let (autos, announced) = autos_and_announced(&store);
    let stored: u64 = autos.iter().sum();
    assert_eq!(
        announced.last().copied(),
        Some(stored as i64),
        "{autos:?} vs {announced:?}"
    );
    // 300 MB used of 100 + topups: remaining above the 25 MB threshold.
    assert!(100 + stored > 300 + 25, "{autos:?}");
    let (d, ids) = store.decide(decide_request(now, Some(300))).unwrap();
    assert!(ids.is_empty() && !d.is_exhausted(), "{}", d.explanation);
}

#[test]
fn record_capped_decides_in_the_same_commit_and_never_loses_the_record() {
    use crate::store::CapOutcome;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = NOV + 10 * DAY;
    let update =
        |user: &str, sid: &str, octets: u64| packet(AcctStatus::Interim, user, sid, octets, now);
    let capping = |control: &[(&str, &str)]| acct_capping(control, now);
    // Control-list limit of 1 MB, 2 MB used: exhausted, decided in the commit.
    let (o, c) = store
        .record_capped(
            update("cap", "s1", 2 * MIB),
            capping(&[("Rust-Capping-Traffic-Limit", "1")]),
        )
        .unwrap();
    assert_eq!(o.username, "cap");
    match c {
        CapOutcome::Decided(d, ids, action) => {
            assert!(d.is_exhausted());
            assert!(ids.is_empty());
            assert!(matches!(
                action,
                crate::capping::AcctAction::Disconnect { .. }
            ));
            // The over-limit job is in the update's commit.
            assert!(o.disconnect_queued);
            let jobs = store.queue_list(None).unwrap();
            assert_eq!(jobs.len(), 1);
            assert_eq!(jobs[0].username, "cap");
            assert!(
                jobs[0].reason.starts_with("over limit: "),
                "{}",
                jobs[0].reason
            );
        }
        other => panic!("{other:?}"),
    }
    // Stored limit as the default: 10 MB, allowed.
    store
        .limits_set("stored", &[("Rust-Capping-Traffic-Limit", "10")])
        .unwrap();
    let (_, c) = store
        .record_capped(update("stored", "s2", 2 * MIB), capping(&[]))
        .unwrap();
    assert!(
        matches!(c, CapOutcome::Decided(ref d, _, _) if !d.is_exhausted()),
        "{c:?}"
    );
    // No limit anywhere; an invalid value: nothing decided, the record stands.
    let (_, c) = store
        .record_capped(update("free", "s3", MIB), capping(&[]))
        .unwrap();
    assert!(matches!(c, CapOutcome::Unlimited), "{c:?}");
    let (_, c) = store
        .record_capped(
            update("bad", "s4", MIB),
            capping(&[("Rust-Capping-Traffic-Limit", "lots")]),
        )
        .unwrap();
    assert!(matches!(c, CapOutcome::Invalid(_)), "{c:?}");
    for user in ["cap", "stored", "free", "bad"] {
        let u = store
            .month_usage(user, crate::periods::local_month(now, chrono_tz::UTC))
            .unwrap();
        assert!(u.total_octets() > 0, "{user} recorded");
    }
}

/// Decisions that write nothing leave a headroom; updates within it skip the
/// decision, and anything that could change its outcome ends the skipping.
#[test]
fn record_capped_skips_decisions_within_the_headroom_until_something_changes() {
    use crate::capping::AcctAction;
    use crate::store::CapOutcome;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let now = NOV + 10 * DAY;
    let run = |user: &str, mb: u64, control: &[(&str, &str)], at: i64| {
        let (_, c) = store
            .record_capped(
                packet(
                    AcctStatus::Interim,
                    user,
                    &format!("{user}-1"),
                    mb * MIB,
                    at,
                ),
                acct_capping(control, at),
            )
            .unwrap();
        match c {
            CapOutcome::Within => "within",
            CapOutcome::Unlimited => "unlimited",
            CapOutcome::Decided(d, _, AcctAction::None) if !d.is_exhausted() => "allowed",
            CapOutcome::Decided(d, _, AcctAction::Disconnect { .. }) if d.is_exhausted() => {
                "disconnect"
            }
            other => panic!("{other:?}"),
        }
    };
    for user in ["joe", "amy"] {
        store
            .limits_set(user, &[("Rust-Capping-Traffic-Limit", "10")])
            .unwrap();
    }
    let ten = [("Rust-Capping-Traffic-Limit", "10")];
    let twenty = [("Rust-Capping-Traffic-Limit", "20")];
    // (user, cumulative MB, control list, time, expected)
    type Step<'a> = (&'a str, u64, &'a [(&'a str, &'a str)], i64, &'a str);
    let steps: &[Step] = &[
        ("joe", 1, &[], now, "allowed"),
        ("joe", 2, &[], now + 60, "within"),
        ("joe", 3, &[], now + 120, "within"),
        // Counted down to the last byte: 9 MB − 1 B of headroom after 1 MB.
        ("amy", 1, &[], now, "allowed"),
        ("amy", 9, &[], now + 60, "within"),
        ("amy", 10, &[], now + 120, "disconnect"),
        // Control-list limits are part of what was decided.
        ("cc", 1, &ten, now, "allowed"),
        ("cc", 2, &ten, now + 60, "within"),
        ("cc", 3, &twenty, now + 120, "allowed"),
        ("cc", 4, &twenty, now + 180, "within"),
        // A new period decides again.
        ("cc", 5, &twenty, DEC + 60, "allowed"),
        // No limit anywhere is remembered too.
        ("free", 1, &[], now, "unlimited"),
        ("free", 500, &[], now + 60, "within"),
    ];
    for (i, &(user, mb, control, at, want)) in steps.iter().enumerate() {
        assert_eq!(
            run(user, mb, control, at),
            want,
            "step {i}: {user} at {mb} MB"
        );
    }
    // Another process (the CLI) lowers joe's limit to 3 MB: the next update,
    // however small, is decided again and finds him over.
    let cli = testdb::raw(testdb::at(dir.path().join("rlm.sqlite")));
    cli.execute(
        "UPDATE user_limits SET value = '3' WHERE username = 'joe'",
        (),
    )
    .unwrap();
    assert_eq!(run("joe", 3, &[], now + 180), "disconnect");
    // A limit for the unlimited user through this store's own writer.
    store
        .limits_set("free", &[("Rust-Capping-Traffic-Limit", "100")])
        .unwrap();
    assert_eq!(run("free", 501, &[], now + 120), "disconnect");
    // Another server on the same store counts 8 MB of pat's: this one's headroom
    // (9 MB after 1 MB) no longer holds, and pat's next MB here exhausts him.
    store
        .limits_set("pat", &[("Rust-Capping-Traffic-Limit", "10")])
        .unwrap();
    assert_eq!(run("pat", 1, &[], now), "allowed");
    assert_eq!(run("pat", 2, &[], now + 10), "within");
    let other = open(&dir);
    other
        .record_capped(
            packet(AcctStatus::Interim, "pat", "pat-2", 7 * MIB, now + 20),
            acct_capping(&[], now + 20),
        )
        .unwrap();
    assert_eq!(run("pat", 3, &[], now + 30), "disconnect");
}

/// Through the writer: decisions before and after validity boundaries write each
/// boundary's usage mark once, and a topup covers only usage during its validity.
#[test]
fn decisions_across_validity_boundaries_write_marks_and_count_topups_only_while_valid() {
    use crate::capping::{State, UsageMark};
    use crate::store::CapOutcome;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .limits_set("tina", &[("Rust-Capping-Traffic-Limit", "100")])
        .unwrap();
    let t1 = store
        .topup_add(manual("tina", TYPE_TRAFFIC, NOV + DAY, NOV + 10 * DAY, 50))
        .unwrap();
    let t2 = store
        .topup_add(manual(
            "tina",
            TYPE_TRAFFIC,
            NOV + 20 * DAY,
            DEC + 5 * DAY,
            50,
        ))
        .unwrap();
    let run = |mb: u64, at: i64| -> Option<u64> {
        let (_, c) = store
            .record_capped(
                packet(AcctStatus::Interim, "tina", "t-1", mb * MIB, at),
                acct_capping(&[], at),
            )
            .unwrap();
        match c {
            CapOutcome::Decided(d, _, _) => match d.state {
                State::Allowed {
                    remaining_traffic_bytes,
                    ..
                } => remaining_traffic_bytes.map(|b| b / MIB),
                State::Exhausted { .. } => Some(0),
            },
            other => panic!("not decided: {other:?}"),
        }
    };
    let consumed = |id: u64| -> u64 {
        store
            .topup_consumption(id)
            .unwrap()
            .iter()
            .filter(|r| r.period_start == NOV)
            .map(|r| r.consumed / MIB)
            .sum()
    };
    // (time, cumulative MB, remaining MB (0 = exhausted), consumed by t1, t2)
    let steps = [
        (NOV + 2 * DAY, 90, 60, 0, 0),
        (NOV + 5 * DAY, 130, 20, 30, 0),
        // t1 expired: its last 20 MB are gone, the 30 it covered stay covered.
        (NOV + 12 * DAY, 130, 0, 30, 0),
        (NOV + 13 * DAY, 135, 0, 30, 0),
        // t2 started: the 35 MB over before it are not absorbed.
        (NOV + 21 * DAY, 140, 45, 30, 5),
    ];
    for (i, (at, mb, want, c1, c2)) in steps.into_iter().enumerate() {
        assert_eq!(run(mb, at), Some(want), "step {i}");
        assert_eq!((consumed(t1), consumed(t2)), (c1, c2), "step {i}");
    }
    let period = Period::containing(PeriodKind::Month, NOV + 21 * DAY, &chrono_tz::UTC).unwrap();
    let (_, _, marks) = store
        .capping_inputs("tina", period, chrono_tz::UTC)
        .unwrap();
    let mark = |at: i64, mb: u64, secs: u64| UsageMark {
        at,
        usage: Usage {
            traffic_bytes: mb * MIB,
            uptime_secs: secs,
        },
    };
    // Each the usage before the first update decided after it (the session's
    // 60 s came with its first update).
    assert_eq!(
        marks,
        vec![
            mark(NOV + DAY, 0, 0),
            mark(NOV + 10 * DAY, 130, 60),
            mark(NOV + 20 * DAY, 135, 60)
        ]
    );
    // December: t2 carries its rest (45 MB) while valid.
    assert_eq!(run(150, DEC + DAY), Some(100 - 10 + 45));
}

/// A headroom holds only until the next validity boundary: an update after a
/// topup starts is decided (and marks the start), however small.
#[test]
fn headroom_ends_at_the_next_validity_boundary() {
    use crate::store::CapOutcome;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .limits_set("hank", &[("Rust-Capping-Traffic-Limit", "100")])
        .unwrap();
    store
        .topup_add(manual("hank", TYPE_TRAFFIC, NOV + 5 * DAY, DEC, 50))
        .unwrap();
    let run = |mb: u64, at: i64| -> String {
        let (_, c) = store
            .record_capped(
                packet(AcctStatus::Interim, "hank", "h-1", mb * MIB, at),
                acct_capping(&[], at),
            )
            .unwrap();
        match c {
            CapOutcome::Within => "within".into(),
            CapOutcome::Decided(d, _, _) => format!("{:?}", d.state),
            other => panic!("{other:?}"),
        }
    };
    assert!(run(10, NOV + 2 * DAY).contains("94371840"), "90 MB left");
    assert_eq!(run(20, NOV + 3 * DAY), "within");
    assert_eq!(run(30, NOV + 5 * DAY - 1), "within");
    // The topup has started: decided, 70 MB base + 50 MB topup.
    let d = run(31, NOV + 5 * DAY);
    assert!(d.contains(&(119 * MIB).to_string()), "{d}");
    let period = Period::containing(PeriodKind::Month, NOV + 5 * DAY, &chrono_tz::UTC).unwrap();
    let (_, _, marks) = store
        .capping_inputs("hank", period, chrono_tz::UTC)
        .unwrap();
    assert_eq!(marks.len(), 1);
    assert_eq!(
        (marks[0].at, marks[0].usage.traffic_bytes),
        (NOV + 5 * DAY, 30 * MIB)
    );
}
