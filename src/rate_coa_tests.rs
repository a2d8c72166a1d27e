use super::*;
use crate::capping::{EvalOptions, OverLimitPolicy, PeriodKind, RawLimits};
use crate::radius::double::{Answer, NasDouble};
use crate::radius::Packet;
use crate::sessions::{AcctStatus, AcctUpdate};
use crate::store::{AcctCapping, NasConfig, PolicyDef, Store, StoreOptions};

const SECRET: &[u8] = b"s3cret";
const MB: u64 = 1 << 20;

fn upd(status: AcctStatus, user: &str, sid: &str, output: u64, at: i64) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: "127.0.0.2".into(),
        session_id: sid.into(),
        unique_id: None,
        username: user.into(),
        input_octets: 0,
        output_octets: output,
        gigawords: false,
        session_time: Some(60),
        framed_ip: Some("100.64.0.9".into()),
        calling_station_id: None,
        nas_port: None,
        terminate_cause: None,
        event_time: at,
    }
}

fn policy(name: &str, fields: &[(&str, &str)]) -> PolicyDef {
    PolicyDef {
        name: name.into(),
        fields: fields
            .iter()
            .map(|(f, v)| (f.to_string(), v.to_string()))
            .collect(),
        ..PolicyDef::default()
    }
}

const MODULATED: &[(&str, &str)] = &[
    ("rate-down", "10M"),
    ("rate-up", "2M"),
    ("modulation", "linear"),
    ("modulation-period", "hours"),
    ("modulation-hours", "2"),
    ("modulation-traffic", "total"),
    ("modulation-max-total", "100"),
    ("modulation-min-down", "1M"),
    ("modulation-min-up", "200k"),
];

struct Env {
    _dir: tempfile::TempDir,
    store: Store,
    job: RateCoa,
    nas: NasDouble,
}

fn env(answer: Answer) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let nas = NasDouble::start("127.0.0.1:0".parse().unwrap(), SECRET, answer).unwrap();
    let admin = Admin::open(&db).unwrap();
    let mut cfg = NasConfig::new("127.0.0.2");
    cfg.coa_host = Some("127.0.0.1".into());
    cfg.coa_port = nas.addr().port();
    cfg.secret = Some(String::from_utf8(SECRET.to_vec()).unwrap());
    admin.nas_upsert(&cfg, 0).unwrap();
    let job = RateCoa::new(
        RateCoaConfig {
            db,
            tz: chrono_tz::UTC,
            timeout: Duration::from_millis(300),
            retries: 0,
            batch: 100,
            hooks: Default::default(),
        },
        ClientSecrets::default(),
        Arc::new(AtomicBool::new(false)),
    );
    Env {
        _dir: dir,
        store,
        job,
        nas,
    }
}

fn rate_of(p: &Packet) -> Option<String> {
    p.attributes.iter().find_map(|a| {
        let (vendor, subs) = a.as_vsa()?;
        (vendor == attrs::VENDOR_MIKROTIK)
            .then(|| {
                subs.iter()
                    .find(|s| s.vendor_type == attrs::MIKROTIK_RATE_LIMIT)
                    .map(|s| String::from_utf8_lossy(s.value).into_owned())
            })
            .flatten()
    })
}

// 2026-11-30 12:00:00 UTC.
const NOW: i64 = 1_796_040_000;

#[test]
fn hour_buckets_only_for_modulated_users() {
    let e = env(Answer::Ack);
    e.store.policy_put(policy("mod", MODULATED)).unwrap();
    e.store
        .policy_put(policy("flat", &[("rate-down", "1M")]))
        .unwrap();
    e.store.policy_assign("alice", Some("mod"), NOW).unwrap();
    e.store.policy_assign("bob", Some("flat"), NOW).unwrap();
    for u in ["alice", "bob", "carol"] {
        e.store
            .record(upd(AcctStatus::Start, u, &format!("s-{u}"), 0, NOW))
            .unwrap();
        e.store
            .record(upd(
                AcctStatus::Interim,
                u,
                &format!("s-{u}"),
                5 * MB,
                NOW + 60,
            ))
            .unwrap();
        e.store
            .record(upd(
                AcctStatus::Interim,
                u,
                &format!("s-{u}"),
                7 * MB,
                NOW + 3600,
            ))
            .unwrap();
    }
    assert_eq!(
        e.store.hour_usage("alice", 0).unwrap(),
        [(NOW, 5 * MB, 0), (NOW + 3600, 2 * MB, 0)]
    );
    assert!(e.store.hour_usage("bob", 0).unwrap().is_empty());
    assert!(e.store.hour_usage("carol", 0).unwrap().is_empty());
    assert_eq!(e.store.hour_usage("alice", NOW + 1).unwrap().len(), 1);
    // Unassigned: no more buckets.
    e.store.policy_assign("alice", None, NOW).unwrap();
    e.store
        .record(upd(
            AcctStatus::Interim,
            "alice",
            "s-alice",
            9 * MB,
            NOW + 3700,
        ))
        .unwrap();
    assert_eq!(
        e.store.hour_usage("alice", NOW + 3600).unwrap(),
        [(NOW + 3600, 2 * MB, 0)]
    );
}

#[test]
fn rate_change_ack_is_remembered_and_a_nak_falls_back_to_a_disconnect() {
    let mut e = env(Answer::Ack);
    e.store.policy_put(policy("mod", MODULATED)).unwrap();
    e.store.policy_assign("alice", Some("mod"), NOW).unwrap();
    e.store
        .record_login_rate("alice", "127.0.0.2", Some("2M/10M"), false, NOW)
        .unwrap();
    e.store
        .record(upd(AcctStatus::Start, "alice", "s1", 0, NOW))
        .unwrap();
    // Nothing moved yet: the login's rate stands, no CoA.
    let r = e.job.run_at(NOW + 10).unwrap();
    assert_eq!((r.sessions, r.changed, r.sent), (1, 0, 0));
    e.store
        .record(upd(AcctStatus::Interim, "alice", "s1", 50 * MB, NOW + 300))
        .unwrap();
    let r = e.job.run_at(NOW + 310).unwrap();
    assert_eq!((r.changed, r.sent, r.acked), (1, 1, 1), "{r:?}");
    let reqs = e.nas.requests();
    assert_eq!(reqs.len(), 1);
    let p = &reqs[0];
    assert_eq!(p.code, crate::radius::Code::CoaRequest);
    assert_eq!(rate_of(p).as_deref(), Some("1100k/5500k"));
    assert_eq!(p.text(attrs::USER_NAME).as_deref(), Some("alice"));
    assert_eq!(p.text(attrs::ACCT_SESSION_ID).as_deref(), Some("s1"));
    assert_eq!(
        p.ipv4(attrs::FRAMED_IP_ADDRESS).map(|a| a.to_string()),
        Some("100.64.0.9".into())
    );
    assert_eq!(
        p.ipv4(attrs::NAS_IP_ADDRESS).map(|a| a.to_string()),
        Some("127.0.0.2".into())
    );
    assert!(p.integer(attrs::EVENT_TIMESTAMP).is_some());
    assert!(p.get(attrs::MESSAGE_AUTHENTICATOR).is_some());
    let coa = e.store.coa_list().unwrap();
    assert_eq!(coa.len(), 1);
    assert_eq!(
        (coa[0].state.as_str(), coa[0].rate_limit.as_deref()),
        ("acked", Some("1100k/5500k"))
    );
    assert!(
        coa[0].reason.contains("2M/10M -> 1100k/5500k"),
        "{}",
        coa[0].reason
    );
    // Same traffic: nothing to send (the acked rate is remembered in the store).
    let r = e.job.run_at(NOW + 320).unwrap();
    assert_eq!(r.sent, 0);
    // A restart (new job, new Admin) remembers it too.
    let mut again = RateCoa::new(
        e.job.cfg.clone(),
        ClientSecrets::default(),
        e.job.stop.clone(),
    );
    assert_eq!(again.run_at(NOW + 330).unwrap().sent, 0);

    // Traffic moves it again, the NAS refuses: queued for disconnection.
    e.nas.set_answer(Answer::Nak(Some(404)));
    e.store
        .record(upd(AcctStatus::Interim, "alice", "s1", 100 * MB, NOW + 600))
        .unwrap();
    let r = e.job.run_at(NOW + 610).unwrap();
    assert_eq!((r.sent, r.fallback), (1, 1), "{r:?}");
    let coa = e.store.coa_list().unwrap();
    assert_eq!(coa[0].state, "fallback");
    assert_eq!(coa[0].error_cause, Some(404));
    let jobs = e.store.queue_list(None).unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        jobs[0]
            .reason
            .starts_with("rate change: rate 200k/1M not applied: CoA-NAK"),
        "{}",
        jobs[0].reason
    );
    // Being disconnected: left alone.
    let r = e.job.run_at(NOW + 620).unwrap();
    assert_eq!((r.changed, r.sent), (0, 0));
}

#[test]
fn activation_hour_changes_the_rate_and_silence_falls_back() {
    let mut e = env(Answer::Silent);
    let mut fields = MODULATED.to_vec();
    // Active from 13:00: at 12:xx the full rate.
    fields.extend([
        ("modulation-activate", "13"),
        ("modulation-deactivate", "20"),
    ]);
    e.store.policy_put(policy("mod", &fields)).unwrap();
    e.store.policy_assign("alice", Some("mod"), NOW).unwrap();
    e.store
        .record_login_rate("alice", "127.0.0.2", Some("2M/10M"), false, NOW)
        .unwrap();
    e.store
        .record(upd(AcctStatus::Start, "alice", "s1", 0, NOW))
        .unwrap();
    e.store
        .record(upd(AcctStatus::Interim, "alice", "s1", 100 * MB, NOW + 300))
        .unwrap();
    assert_eq!(e.job.run_at(NOW + 310).unwrap().sent, 0, "inactive");
    let r = e.job.run_at(NOW + 3600).unwrap();
    assert_eq!((r.changed, r.sent, r.fallback), (1, 1, 1), "{r:?}");
    assert_eq!(rate_of(&e.nas.requests()[0]).as_deref(), Some("200k/1M"));
    let jobs = e.store.queue_list(None).unwrap();
    assert!(
        jobs[0].reason.contains("no CoA reply"),
        "{}",
        jobs[0].reason
    );
}

fn capping(now: i64) -> AcctCapping {
    AcctCapping {
        control: RawLimits::new(),
        caveat_captrafzero: false,
        period: PeriodKind::Month,
        opts: EvalOptions::default(),
        over_limit: OverLimitPolicy::Disconnect,
        now,
        quota_control: Default::default(),
    }
}

#[test]
fn exhausted_throttle_queues_one_coa_instead_of_a_disconnect() {
    let mut e = env(Answer::Ack);
    e.store
        .policy_put(policy(
            "slow",
            &[
                ("on-exhausted", "throttle"),
                ("throttle-rate-down", "256k"),
                ("throttle-rate-up", "64k"),
            ],
        ))
        .unwrap();
    e.store.policy_assign("tom", Some("slow"), NOW).unwrap();
    for u in ["tom", "dan"] {
        e.store
            .limits_set(u, &[("Rust-Capping-Traffic-Limit", "1")])
            .unwrap();
        for (t, bytes) in [(0, 0), (300, 2 * MB), (600, 3 * MB)] {
            let (o, c) = e
                .store
                .record_capped(
                    upd(AcctStatus::Interim, u, &format!("s-{u}"), bytes, NOW + t),
                    capping(NOW + t),
                )
                .unwrap();
            if u == "tom" && t == 300 {
                assert!(o.coa_queued && !o.disconnect_queued, "{o:?}");
                assert!(
                    matches!(
                        &c,
                        crate::store::CapOutcome::Decided(
                            _,
                            _,
                            crate::capping::AcctAction::Change { .. }
                        )
                    ),
                    "{c:?}"
                );
            }
        }
    }
    let coa = e.store.coa_list().unwrap();
    assert_eq!(coa.len(), 1, "one CoA for tom's session: {coa:?}");
    assert_eq!(
        (
            coa[0].username.as_str(),
            coa[0].purpose.as_str(),
            coa[0].rate_limit.as_deref()
        ),
        ("tom", "exhausted", Some("64k/256k"))
    );
    let jobs = e.store.queue_list(None).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].username, "dan", "no throttle policy: disconnected");
    let r = e.job.run_at(NOW + 700).unwrap();
    assert_eq!((r.sent, r.acked), (1, 1));
    assert_eq!(rate_of(&e.nas.requests()[0]).as_deref(), Some("64k/256k"));
    assert_eq!(e.store.coa_list().unwrap()[0].state, "acked");
}

#[test]
fn redirect_sets_the_address_list() {
    let j = CoaJob {
        id: 1,
        nas_ip: "127.0.0.2".into(),
        session_key: "k".into(),
        username: "u".into(),
        acct_session_id: "a".into(),
        framed_ip: None,
        session_start: 0,
        purpose: "exhausted".into(),
        rate_limit: None,
        address_list: Some("expired".into()),
        reason: "over limit: x; redirect".into(),
        state: "pending".into(),
        attempts: 0,
        last_error: None,
        error_cause: None,
        created: 0,
        updated: 0,
    };
    let a = coa_attributes(&j);
    let list = a.iter().find_map(|a| {
        let (_, subs) = a.as_vsa()?;
        subs.first()
            .filter(|s| s.vendor_type == attrs::MIKROTIK_ADDRESS_LIST)
            .map(|s| s.value.to_vec())
    });
    assert_eq!(list.as_deref(), Some(&b"expired"[..]));
    match outcome(&j, Some(("no CoA reply after 1 attempt(s)".into(), None))) {
        CoaOutcome::Fallback { disconnect, .. } => assert_eq!(
            disconnect.reason,
            "over limit: x; redirect; address list expired not applied: no CoA reply after 1 attempt(s)"
        ),
        o => panic!("{o:?}"),
    }
    assert_eq!(outcome(&j, None), CoaOutcome::Acked);
}
