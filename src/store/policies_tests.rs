use rusqlite::Connection;

use crate::sessions::AcctStatus;
use crate::store::tests::upd;
use crate::store::{CustomAttrRow, PolicyDef, PolicyView, Store, StoreError, StoreOptions};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(dir.path().join("rlm.sqlite"), StoreOptions::default()).unwrap()
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
    let conn = Connection::open(store.path()).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM policy_fields WHERE policy = 'gold') + \
             (SELECT COUNT(*) FROM policy_attrs WHERE policy = 'gold')",
            [],
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
    // Stored as the exact bytes.
    let conn = Connection::open(store.path()).unwrap();
    let raw: Vec<u8> = conn
        .query_row(
            "SELECT CAST(username AS BLOB) FROM user_policies",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(raw, b"m\xfcller");

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

/// The login's reads are lookups in primary keys and sessions_by_user.
#[test]
fn login_reads_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = Connection::open(store.path()).unwrap();
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
    ];
    for (sql, want) in cases {
        let p = plan(sql);
        assert!(p.contains(want) && !p.contains("SCAN"), "{sql}: {p}");
    }
}
