use crate::store::testdb;

use crate::sessions::AcctStatus;
use crate::store::tests::upd;
use crate::store::{CustomAttrRow, PolicyDef, PolicyView, Store, StoreError, StoreOptions};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        testdb::at(dir.path().join("rlm.sqlite")),
        StoreOptions::default(),
    )
    .unwrap()
}

fn attr(a: &str, op: &str, v: &str) -> CustomAttrRow {
    CustomAttrRow {
        attribute: a.into(),
        op: op.into(),
        value: v.into(),
    }
}

fn gold() -> PolicyDef {
    PolicyDef {
        name: "gold".into(),
        description: Some("10M, two devices".into()),
        // Out of FIELDS order and one by attribute name: read back canonical.
        fields: vec![
            ("rate-down".into(), "10M".into()),
            ("Rust-Policy-Max-Devices".into(), "2".into()),
            ("concurrent-connections".into(), "1".into()),
        ],
        check: vec![attr("NAS-Port-Type", "==", "Wireless-802.11")],
        reply: vec![
            attr("Filter-Id", ":=", "gold"),
            attr("Reply-Message", "=", "welcome"),
        ],
    }
}

const NOW: i64 = 1_793_491_200;

#[test]
fn put_get_list_remove_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.policy_put(gold()).unwrap();
    let got = store.policy_get("gold").unwrap().unwrap();
    assert_eq!(
        got.fields,
        vec![
            ("concurrent-connections".to_string(), "1".to_string()),
            ("max-devices".to_string(), "2".to_string()),
            ("rate-down".to_string(), "10M".to_string()),
        ]
    );
    assert_eq!(got.check, gold().check);
    assert_eq!(got.reply, gold().reply);
    assert_eq!(got.description.as_deref(), Some("10M, two devices"));
    assert_eq!(got.field("Rust-Policy-Rate-Down"), Some("10M"));

    // Replacing drops what the new definition does not have; created stays.
    let created = store.policy_stats().unwrap()[0].created;
    let mut less = gold();
    less.description = None;
    less.fields.truncate(1);
    less.reply.clear();
    store.policy_put(less).unwrap();
    let got = store.policy_get("gold").unwrap().unwrap();
    assert_eq!(got.fields, vec![("rate-down".into(), "10M".into())]);
    assert!(got.reply.is_empty() && got.description.is_none());
    assert_eq!(got.check.len(), 1);
    assert_eq!(store.policy_stats().unwrap()[0].created, created);

    let mut silver = gold();
    silver.name = "silver".into();
    store.policy_put(silver).unwrap();
    let names: Vec<String> = store
        .policy_list()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["gold", "silver"]);

    assert!(store.policy_remove("gold").unwrap());
    assert!(!store.policy_remove("gold").unwrap());
    assert!(store.policy_get("gold").unwrap().is_none());
    // Its rows went with it.
    let conn = testdb::raw(store.path());
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM policy_fields WHERE policy = 'gold') + \
             (SELECT COUNT(*) FROM policy_attrs WHERE policy = 'gold')",
            (),
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(store.policy_list().unwrap().len(), 1);
}

#[test]
fn invalid_definitions_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut bad = gold();
    bad.fields.push(("session-timeout".into(), "soon".into()));
    match store.policy_put(bad) {
        Err(StoreError::Rejected(m)) => {
            assert!(m.contains("session-timeout") && m.contains("soon"))
        }
        other => panic!("{other:?}"),
    }
    let mut bad = gold();
    bad.name = " gold".into();
    assert!(matches!(
        store.policy_put(bad),
        Err(StoreError::Rejected(_))
    ));
    assert!(store.policy_list().unwrap().is_empty());
}

#[test]
fn assignment_with_exact_user_bytes_and_refused_removal() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.policy_put(gold()).unwrap();
    let latin1 = crate::names::decode(b"m\xfcller");
    let utf8 = "müller";
    assert_eq!(
        store.policy_assign(&latin1, Some("gold"), NOW).unwrap(),
        None
    );
    assert_eq!(
        store.user_policy(&latin1).unwrap(),
        Some(("gold".to_string(), NOW))
    );
    assert_eq!(store.user_policy(utf8).unwrap(), None);
    // Stored as the exact bytes (PostgreSQL: as their escaped form, TEXT being UTF-8).
    let conn = testdb::raw(store.path());
    if let Some(c) = conn.sqlite() {
        let raw: Vec<u8> = c
            .query_row(
                "SELECT CAST(username AS BLOB) FROM user_policies",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(raw, b"m\xfcller");
    }

    match store.policy_remove("gold") {
        Err(StoreError::Rejected(m)) => assert!(m.contains("1 user"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(store.policy_get("gold").unwrap().is_some());
    assert!(matches!(
        store.policy_assign(utf8, Some("platinum"), NOW),
        Err(StoreError::Rejected(m)) if m.contains("platinum")
    ));
    assert_eq!(store.policy_stats().unwrap()[0].users, 1);

    assert_eq!(
        store.policy_assign(&latin1, None, NOW + 1).unwrap(),
        Some("gold".to_string())
    );
    assert_eq!(store.user_policy(&latin1).unwrap(), None);
    assert!(store.policy_remove("gold").unwrap());
}

#[test]
fn devices_are_idempotent_and_reset_by_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store.policy_put(gold()).unwrap();
    let user = crate::names::decode(b"m\xfcller");
    store.policy_assign(&user, Some("gold"), NOW).unwrap();
    assert!(store.record_device(&user, "AA-01", NOW + 1).unwrap());
    assert!(!store.record_device(&user, "AA-01", NOW + 5).unwrap());
    assert!(store.record_device(&user, "AA-02", NOW + 2).unwrap());
    // Another user's devices are theirs.
    assert!(store.record_device("müller", "AA-01", NOW).unwrap());
    let devices = store.user_devices(&user).unwrap();
    assert_eq!(devices.len(), 2);
    assert_eq!(
        (
            devices[0].calling_station_id.as_str(),
            devices[0].first_seen
        ),
        ("AA-01", NOW + 1)
    );
    let v = store
        .login_policy(&user, Some("AA-02"), NOW + 10, 0)
        .unwrap();
    assert_eq!((v.devices, v.device_known), (2, true));

    // The same policy again is a new purchase: the count starts over.
    store.policy_assign(&user, Some("gold"), NOW + 20).unwrap();
    let v = store
        .login_policy(&user, Some("AA-02"), NOW + 30, 0)
        .unwrap();
    assert_eq!(
        (v.devices, v.device_known, v.assigned_at),
        (0, false, Some(NOW + 20))
    );
    assert_eq!(store.user_devices("müller").unwrap().len(), 1);
}

#[test]
fn login_policy_counts_open_sessions_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Without a policy: nothing read beyond the assignment.
    assert_eq!(
        store.login_policy("joe", Some("AA-01"), NOW, 0).unwrap(),
        PolicyView::default()
    );
    store.policy_put(gold()).unwrap();
    store
        .policy_assign("joe", Some("gold"), NOW - 1000)
        .unwrap();
    store.record_device("joe", "AA-01", NOW - 900).unwrap();
    // Two open sessions, one updated long ago (stale), one closed.
    for (sid, at) in [("s1", NOW - 60), ("s2", NOW - 600), ("s3", NOW - 30)] {
        store
            .record(upd(AcctStatus::Start, "joe", sid, 0, 0, Some(0), at))
            .unwrap();
    }
    store
        .record(upd(AcctStatus::Stop, "joe", "s3", 1, 1, Some(10), NOW - 20))
        .unwrap();
    store
        .record(upd(AcctStatus::Start, "ann", "s4", 0, 0, Some(0), NOW - 5))
        .unwrap();

    let v = store.login_policy("joe", Some("AA-01"), NOW, 300).unwrap();
    assert_eq!(v.policy.as_ref().map(|p| p.name.as_str()), Some("gold"));
    assert_eq!(v.assigned_at, Some(NOW - 1000));
    assert_eq!((v.devices, v.device_known, v.open_sessions), (1, true, 1));
    let v = store.login_policy("joe", Some("BB-02"), NOW, 0).unwrap();
    assert_eq!((v.devices, v.device_known, v.open_sessions), (1, false, 2));
    let v = store.login_policy("joe", None, NOW, 0).unwrap();
    assert!(!v.device_known);

    // login_counts reads the counts without a policy too.
    let v = store.login_counts("ann", None, NOW, 300).unwrap();
    assert_eq!((v.policy, v.open_sessions), (None, 1));
}

#[test]
fn one_login_read_has_the_nas_row_and_the_usage_a_quota_needs() {
    use crate::store::{Admin, LoginQuery, NasConfig};
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut nas = NasConfig::new("127.0.0.9");
    nas.nas_type = "other".into();
    nas.timezone = Some("Europe/Rome".into());
    Admin::open(store.path())
        .unwrap()
        .nas_upsert(&nas, NOW)
        .unwrap();
    store
        .record(upd(AcctStatus::Interim, "q", "s", 100, 200, Some(30), NOW))
        .unwrap();
    store
        .record(upd(AcctStatus::Interim, "c", "s2", 1, 2, Some(3), NOW))
        .unwrap();
    let query = |user, control_quotas, always_count| LoginQuery {
        username: user,
        csid: None,
        now: NOW,
        stale_after_secs: 0,
        always_count,
        nas_ip: Some("127.0.0.9"),
        tz: chrono_tz::UTC,
        control_quotas,
        parsed: &|_, _| None,
    };
    // No policy: nothing but the assignment lookup.
    assert_eq!(
        store.login(&query("q", false, false)).unwrap(),
        PolicyView::default()
    );
    quota_policy(&store, "quota", &[("daily-traffic", "10")]);
    quota_policy(&store, "plain", &[("rate-down", "1M")]);
    store.policy_assign("q", Some("quota"), NOW).unwrap();
    store.policy_assign("p", Some("plain"), NOW).unwrap();
    let v = store.login(&query("q", false, false)).unwrap();
    let row = v.nas.expect("the NAS row");
    assert_eq!(
        (row.config.nas_type.as_str(), row.config.timezone.as_deref()),
        ("other", Some("Europe/Rome"))
    );
    assert_eq!((v.day.total_octets(), v.month.session_time), (300, 30));
    // A policy without quotas: the usage is not read.
    let v = store.login(&query("p", false, false)).unwrap();
    assert!(v.nas.is_some() && v.day.is_zero() && v.month.is_zero());
    // Control-list fields only (no assignment): counts, NAS and, with a quota, usage.
    let v = store.login(&query("c", true, true)).unwrap();
    assert!(v.policy.is_none() && v.nas.is_some());
    assert_eq!((v.day.total_octets(), v.open_sessions), (3, 1));
}

/// The login's reads are lookups in primary keys and sessions_by_user.
#[test]
fn login_reads_use_indexes() {
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let n = stmt.parameter_count();
        let args: Vec<&str> = vec!["x"; n];
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("; ")
    };
    let cases = [
        (
            "SELECT policy, assigned_at FROM user_policies WHERE username = ?1",
            "USING PRIMARY KEY (username=?)",
        ),
        (
            "SELECT COUNT(*), COALESCE(MAX(calling_station_id = ?2), 0) FROM user_devices \
             WHERE username = ?1",
            "USING PRIMARY KEY (username=?)",
        ),
        (
            "SELECT COUNT(*) FROM sessions \
             WHERE username = ?1 AND stop_time IS NULL AND last_update >= ?2",
            "INDEX sessions_by_user (username=? AND stop_time=?)",
        ),
        (
            "SELECT field, value FROM policy_fields WHERE policy = ?1",
            "USING PRIMARY KEY (policy=?)",
        ),
        (
            "SELECT list, attribute, op, value FROM policy_attrs WHERE policy = ?1 \
             ORDER BY list, position",
            "USING PRIMARY KEY (policy=?)",
        ),
        (
            "SELECT COUNT(*) FROM user_policies WHERE policy = ?1",
            "INDEX user_policies_by_policy (policy=?)",
        ),
        // The login's NAS row, and accounting's quota lookup.
        ("SELECT type FROM nas WHERE nas_ip = ?1", "nas_ip=?"),
        (
            "SELECT f.field, f.value FROM user_policies u JOIN policy_fields f \
             ON f.policy = u.policy WHERE u.username = ?1 AND f.field IN ('daily-time', 'daily-traffic')",
            "USING PRIMARY KEY (username=?)",
        ),
    ];
    for (sql, want) in cases {
        let p = plan(sql);
        assert!(p.contains(want) && !p.contains("SCAN"), "{sql}: {p}");
    }
}

// ---------------------------------------------------------------- quotas in accounting

const MIB: u64 = 1 << 20;
/// Monday 2026-11-30 12:00 UTC.
const NOON: i64 = 1_796_040_000;

fn acct(quota_control: &[(&str, &str)], now: i64) -> crate::store::AcctCapping {
    let mut quota = crate::policies::RawPolicy::new();
    for (k, v) in quota_control {
        quota.insert(k, v);
    }
    crate::store::AcctCapping {
        control: Default::default(),
        caveat_captrafzero: false,
        period: crate::capping::PeriodKind::Month,
        opts: Default::default(),
        over_limit: crate::capping::OverLimitPolicy::Disconnect,
        now,
        quota_control: quota,
    }
}

fn quota_policy(store: &Store, name: &str, fields: &[(&str, &str)]) {
    store
        .policy_put(PolicyDef {
            name: name.into(),
            fields: fields
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
            ..PolicyDef::default()
        })
        .unwrap();
}

/// Records an update; the quota reached, if any.
#[allow(clippy::too_many_arguments)]
fn interim(
    store: &Store,
    status: AcctStatus,
    user: &str,
    sid: &str,
    octets: u64,
    secs: u32,
    at: i64,
    control: &[(&str, &str)],
) -> Option<crate::policies::Reached> {
    let u = upd(
        status,
        user,
        sid,
        octets / 2,
        octets - octets / 2,
        Some(secs),
        at,
    );
    let (o, _) = store.record_capped(u, acct(control, at)).unwrap();
    if o.quota_reached.is_some() {
        assert!(o.disconnect_queued || !store.queue_list(None).unwrap().is_empty());
    }
    o.quota_reached
}

fn jobs_of(store: &Store, user: &str) -> Vec<crate::store::DisconnectJob> {
    store
        .queue_list(None)
        .unwrap()
        .into_iter()
        .filter(|j| j.username == user)
        .collect()
}

#[test]
fn an_interim_reaching_a_daily_quota_queues_one_disconnect_per_session() {
    use crate::policies::Quota;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    quota_policy(&store, "q", &[("daily-traffic", "10")]);
    store.policy_assign("u", Some("q"), NOON).unwrap();
    let i = AcctStatus::Interim;
    assert_eq!(
        interim(&store, AcctStatus::Start, "u", "s1", 0, 0, NOON, &[]),
        None
    );
    assert_eq!(
        interim(&store, i, "u", "s1", 6 * MIB, 60, NOON + 60, &[]),
        None
    );
    assert!(jobs_of(&store, "u").is_empty());
    // 10 MiB exactly: reached.
    let r = interim(&store, i, "u", "s1", 10 * MIB, 120, NOON + 120, &[]).unwrap();
    assert_eq!(
        (r.quota, r.used, r.limit),
        (Quota::DailyTraffic, 10 * MIB, 10 * MIB)
    );
    let jobs = jobs_of(&store, "u");
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].reason,
        "policy quota: daily traffic 10485760 bytes used of 10485760 bytes"
    );
    assert_eq!(jobs[0].acct_session_id, "s1");
    // More interims of the session: still the one job.
    interim(&store, i, "u", "s1", 11 * MIB, 180, NOON + 180, &[]);
    assert_eq!(jobs_of(&store, "u").len(), 1);
    // A second session of the same user over the quota: its own job.
    assert!(interim(&store, i, "u", "s2", MIB, 60, NOON + 200, &[]).is_some());
    assert_eq!(jobs_of(&store, "u").len(), 2);
    // A Stop is never disconnected.
    assert_eq!(
        interim(
            &store,
            AcctStatus::Stop,
            "u",
            "s3",
            MIB,
            60,
            NOON + 300,
            &[]
        ),
        None
    );
    // The next day (UTC, the store's zone) starts from zero.
    let tomorrow = NOON + 86_400;
    assert_eq!(
        interim(&store, i, "u", "s4", 9 * MIB, 60, tomorrow, &[]),
        None
    );
    assert_eq!(jobs_of(&store, "u").len(), 2);
}

#[test]
fn monthly_and_time_quotas_and_the_control_list_over_the_store() {
    use crate::policies::Quota;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let i = AcctStatus::Interim;
    // No policy, quota from the control list only (remembered from the login).
    let r = interim(
        &store,
        i,
        "c",
        "s1",
        0,
        3600,
        NOON,
        &[("Rust-Policy-Daily-Time", "60")],
    );
    assert_eq!(r.map(|r| r.quota), Some(Quota::DailyTime));
    // Monthly traffic over several days of the month.
    quota_policy(
        &store,
        "m",
        &[("monthly-traffic", "20"), ("daily-time", "600")],
    );
    store.policy_assign("m", Some("m"), NOON).unwrap();
    assert_eq!(
        interim(&store, i, "m", "a", 15 * MIB, 60, NOON - 5 * 86_400, &[]),
        None
    );
    let r = interim(&store, i, "m", "b", 5 * MIB, 60, NOON, &[]).unwrap();
    assert_eq!((r.quota, r.used), (Quota::MonthlyTraffic, 20 * MIB));
    // The control list wins per field: 0 = unlimited, the store's daily time stays.
    store.policy_assign("o", Some("m"), NOON).unwrap();
    let unlimited = [("monthly-traffic", "0")];
    assert_eq!(
        interim(&store, i, "o", "a", 30 * MIB, 60, NOON, &unlimited),
        None
    );
    let r = interim(&store, i, "o", "b", 0, 36_000, NOON, &unlimited).unwrap();
    assert_eq!(r.quota, Quota::DailyTime);
    // An invalid control value: no decision, the record stands.
    let (o, _) = store
        .record_capped(
            upd(i, "bad", "s", 1, 1, Some(1), NOON),
            acct(&[("daily-traffic", "lots")], NOON),
        )
        .unwrap();
    assert!(o.quota_reached.is_none() && !o.delta.is_zero());
}

#[test]
fn policy_changes_reach_the_writer_whoever_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let i = AcctStatus::Interim;
    quota_policy(&store, "big", &[("daily-traffic", "1000")]);
    store.policy_assign("u", Some("big"), NOON).unwrap();
    assert_eq!(interim(&store, i, "u", "s", 20 * MIB, 60, NOON, &[]), None);
    // Through the writer: a smaller quota.
    quota_policy(&store, "big", &[("daily-traffic", "10")]);
    assert!(interim(&store, i, "u", "s", 21 * MIB, 60, NOON + 1, &[]).is_some());
    // Another connection (the CLI): a user the writer knew without a policy.
    assert_eq!(interim(&store, i, "v", "sv", 20 * MIB, 60, NOON, &[]), None);
    let other = testdb::raw(testdb::at(dir.path().join("rlm.sqlite")));
    other
        .execute(
            "INSERT INTO user_policies (username, policy, assigned_at) VALUES ('v', 'big', 0)",
            (),
        )
        .unwrap();
    assert!(interim(&store, i, "v", "sv", 21 * MIB, 60, NOON + 1, &[]).is_some());
}

#[test]
fn users_without_quotas_cost_no_read_once_known() {
    use super::{quota_after_record, QuotaCache};
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    drop(open(&dir));
    let conn = testdb::raw(&path);
    let outcome = |user: &str| {
        let u = upd(AcctStatus::Interim, user, "s", 1, 1, Some(1), NOON);
        crate::sessions::Outcome::new(crate::sessions::OutcomeKind::Updated, &u)
    };
    let none = crate::policies::RawPolicy::new();
    let check = |cache: &mut QuotaCache, user: &str| {
        quota_after_record(
            &conn,
            chrono_tz::UTC,
            cache,
            &outcome(user),
            NOON,
            &none,
            None,
        )
    };
    // No policy has a quota: one read for everybody, then none.
    let mut cache = QuotaCache::new(16);
    assert_eq!(check(&mut cache, "a").unwrap(), None);
    conn.execute_batch("ALTER TABLE policy_fields RENAME TO gone")
        .unwrap();
    assert_eq!(check(&mut cache, "b").unwrap(), None, "no read");
    conn.execute_batch("ALTER TABLE gone RENAME TO policy_fields")
        .unwrap();
    // Some policy has one: one read per user, then none for that user.
    conn.execute_batch(
        "INSERT INTO policies VALUES ('q', NULL, 0, 0); \
         INSERT INTO policy_fields VALUES ('q', 'daily-traffic', '10')",
    )
    .unwrap();
    cache.clear();
    assert_eq!(check(&mut cache, "a").unwrap(), None);
    conn.execute_batch("ALTER TABLE user_policies RENAME TO gone")
        .unwrap();
    assert_eq!(
        check(&mut cache, "a").unwrap(),
        None,
        "no read for a known user"
    );
    assert!(check(&mut cache, "new").is_err(), "a new user is looked up");
    conn.execute_batch(
        "ALTER TABLE gone RENAME TO user_policies; \
         INSERT INTO user_policies VALUES ('q', 'q', 0); \
         INSERT INTO usage_day VALUES ('q', '2026-11-30', 0, 8388608, 60)",
    )
    .unwrap();
    // A quota user: read once, then not while updates stay within the 2 MiB left.
    let spending = |bytes: u64| {
        let mut o = outcome("q");
        o.delta = crate::sessions::Usage {
            input_octets: bytes,
            ..Default::default()
        };
        o.attributed = Some(crate::sessions::Attribution {
            day: crate::periods::local_day(NOON, chrono_tz::UTC),
            month: crate::periods::local_month(NOON, chrono_tz::UTC),
        });
        o
    };
    let mut cache = QuotaCache::new(16);
    let check = |cache: &mut QuotaCache, o| {
        quota_after_record(&conn, chrono_tz::UTC, cache, &o, NOON, &none, None)
    };
    assert_eq!(check(&mut cache, spending(0)).unwrap(), None);
    conn.execute_batch("ALTER TABLE usage_day RENAME TO gone")
        .unwrap();
    assert_eq!(
        check(&mut cache, spending(MIB)).unwrap(),
        None,
        "within: no read"
    );
    assert!(
        check(&mut cache, spending(MIB)).is_err(),
        "at the quota: read"
    );
    conn.execute_batch("ALTER TABLE gone RENAME TO usage_day")
        .unwrap();
    // The usage rows are the caller's (the writer's update): 8 MiB stored here.
    assert_eq!(check(&mut cache, spending(MIB)).unwrap(), None);
}

/// `cargo test --release --lib quota_path_cost -- --ignored --nocapture`: accounting
/// updates per second through the writer, users without a policy vs with quotas.
#[test]
#[ignore]
fn quota_path_cost() {
    use std::time::Instant;
    for with_quotas in [false, true, false, true, false, true, false, true] {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            synchronous: crate::store::Synchronous::Normal,
            ..StoreOptions::default()
        };
        let store = Store::open(testdb::at(dir.path().join("rlm.sqlite")), opts).unwrap();
        if with_quotas {
            quota_policy(
                &store,
                "q",
                &[("daily-traffic", "10000000"), ("monthly-time", "44640")],
            );
            for u in 0..1000 {
                store
                    .policy_assign(&format!("u{u}"), Some("q"), NOON)
                    .unwrap();
            }
        }
        let n = 40_000u64;
        let threads = 8;
        let t = Instant::now();
        std::thread::scope(|s| {
            for th in 0..threads {
                let store = &store;
                s.spawn(move || {
                    for i in (th..n).step_by(threads as usize) {
                        let u = i % 1000;
                        let tick = i / 1000 + 1;
                        let up = upd(
                            AcctStatus::Interim,
                            &format!("u{u}"),
                            &format!("s{u}"),
                            tick * MIB,
                            tick * MIB,
                            Some(tick as u32 * 60),
                            NOON + tick as i64,
                        );
                        store
                            .record_capped(up, acct(&[], NOON + tick as i64))
                            .unwrap();
                    }
                });
            }
        });
        let secs = t.elapsed().as_secs_f64();
        eprintln!("quotas {with_quotas}: {:.0} updates/s", n as f64 / secs);
    }
}

/// Another server's accounting (a second writer on the same store) counts toward
/// a quota this writer checked before: its room is not kept past that.
#[test]
fn another_writers_usage_reaches_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir);
    let b = open(&dir);
    let i = AcctStatus::Interim;
    quota_policy(&a, "q", &[("daily-traffic", "10")]);
    a.policy_assign("u", Some("q"), NOON).unwrap();
    assert_eq!(interim(&a, i, "u", "s1", 2 * MIB, 60, NOON, &[]), None);
    assert_eq!(
        interim(&a, i, "u", "s1", 3 * MIB, 120, NOON + 60, &[]),
        None
    );
    // 6 MB through the other writer: 9 MB of 10.
    assert_eq!(interim(&b, i, "u", "s2", 6 * MIB, 60, NOON + 70, &[]), None);
    // This writer's next MB reaches the quota, though its own room had 7 MB left.
    assert!(interim(&a, i, "u", "s1", 4 * MIB, 180, NOON + 120, &[]).is_some());
}
