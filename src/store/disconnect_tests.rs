use super::*;
use crate::sessions::{AcctStatus, AcctUpdate};
use crate::store::testdb;
use crate::store::{Lease, Reader, Store};

fn open(dir: &tempfile::TempDir) -> Admin {
    Admin::open(testdb::at(dir.path().join("db.sqlite"))).unwrap()
}

fn job(nas: &str, key: &str) -> NewDisconnectJob {
    NewDisconnectJob {
        nas_ip: nas.into(),
        session_key: key.into(),
        username: format!("user-{key}"),
        acct_session_id: key.into(),
        framed_ip: Some("100.64.0.7".into()),
        session_start: 1_000,
        reason: "month-boundary".into(),
    }
}

#[test]
fn backoff_doubles_and_caps_at_an_hour() {
    let cases = [
        (0, 30),
        (1, 60),
        (2, 120),
        (6, 1920),
        (7, 3600),
        (40, 3600),
        (u32::MAX, 3600),
    ];
    for (attempts, want) in cases {
        assert_eq!(backoff_secs(attempts), want, "{attempts}");
    }
}

#[test]
fn job_state_round_trips() {
    for s in [
        JobState::Pending,
        JobState::DmFailed,
        JobState::Done,
        JobState::Failed,
        JobState::Unconfirmed,
    ] {
        assert_eq!(s.as_str().parse::<JobState>(), Ok(s));
    }
    assert!("running".parse::<JobState>().is_err());
}

#[test]
fn nas_upsert_get_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut a = NasConfig::new("127.0.0.2");
    a.name = Some("core".into());
    a.secret = Some("s3cret".into());
    a.api_password = Some("pw".into());
    let id = db.nas_upsert(&a, 100).unwrap();
    let mut b = NasConfig::new("127.0.0.3");
    b.coa_port = 1700;
    db.nas_upsert(&b, 100).unwrap();

    let got = db.nas_get("core").unwrap().unwrap();
    assert_eq!((got.id, &got.config, got.created), (id, &a, 100));
    assert_eq!(db.nas_get("127.0.0.3").unwrap().unwrap().config, b);
    assert!(db.nas_get("nope").unwrap().is_none());

    // Same IP updates in place, keeping id and created.
    a.api_tls = true;
    a.api_port = 8729;
    assert_eq!(db.nas_upsert(&a, 200).unwrap(), id);
    let got = db.nas_get("127.0.0.2").unwrap().unwrap();
    assert_eq!((&got.config, got.created, got.updated), (&a, 100, 200));

    let ips: Vec<String> = db
        .nas_list()
        .unwrap()
        .into_iter()
        .map(|n| n.config.nas_ip)
        .collect();
    assert_eq!(ips, ["127.0.0.2", "127.0.0.3"]);

    // Names are unique.
    let mut c = NasConfig::new("127.0.0.4");
    c.name = Some("core".into());
    assert!(db.nas_upsert(&c, 300).is_err());

    assert!(db.nas_remove("core").unwrap());
    assert!(!db.nas_remove("core").unwrap());
    assert_eq!(db.nas_list().unwrap().len(), 1);
}

#[test]
fn nas_debug_hides_secrets() {
    let mut a = NasConfig::new("127.0.0.2");
    a.secret = Some("very-secret-1".into());
    a.api_password = Some("very-secret-2".into());
    let s = format!("{a:?}");
    assert!(!s.contains("very-secret"), "{s}");
    assert!(s.contains("secret_set: true"), "{s}");
}

#[test]
fn enqueue_is_once_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    assert!(db.queue_enqueue(&job("127.0.0.2", "s1"), 10).unwrap());
    assert!(!db.queue_enqueue(&job("127.0.0.2", "s1"), 20).unwrap());
    assert!(db.queue_enqueue(&job("127.0.0.3", "s1"), 20).unwrap());
    let all = db.queue_list(None).unwrap();
    assert_eq!(all.len(), 2);
    let j = &all[0];
    assert_eq!(
        (j.state, j.attempts, j.next_attempt_at, j.created, j.method),
        (JobState::Pending, 0, 10, 10, None)
    );
    assert_eq!(j.username, "user-s1");
    assert_eq!(j.framed_ip.as_deref(), Some("100.64.0.7"));
}

#[test]
fn an_unconfirmed_job_is_armed_again_by_the_next_enqueue_of_its_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    assert!(db.queue_enqueue(&job("127.0.0.2", "s1"), 10).unwrap());
    let id = db.queue_list(None).unwrap()[0].id;
    let nak = JobOutcome::Unconfirmed {
        error: "DM: Disconnect-NAK: not confirmed".into(),
        error_cause: Some(503),
    };
    db.queue_mark(id, &nak, 20).unwrap();
    let j = &db.queue_list(None).unwrap()[0];
    assert_eq!((j.state, j.attempts), (JobState::Unconfirmed, 1));
    assert!(
        db.queue_due(10_000, 10).unwrap().is_empty(),
        "not due by itself"
    );
    // The session's next Interim: due again at once, the same job.
    assert!(db.queue_enqueue(&job("127.0.0.2", "s1"), 300).unwrap());
    let all = db.queue_list(None).unwrap();
    assert_eq!(all.len(), 1);
    let j = &all[0];
    assert_eq!(
        (j.id, j.state, j.next_attempt_at, j.attempts, j.created),
        (id, JobState::Pending, 300, 1, 10)
    );
    assert_eq!(
        j.last_error.as_deref(),
        Some("DM: Disconnect-NAK: not confirmed")
    );
    assert_eq!(db.queue_due(300, 10).unwrap().len(), 1);
    // Pending, dm-failed and done jobs are left as they are.
    assert!(!db.queue_enqueue(&job("127.0.0.2", "s1"), 400).unwrap());
    let failed = JobOutcome::DmFailed {
        error: "x".into(),
        error_cause: None,
    };
    db.queue_mark(id, &failed, 400).unwrap();
    assert!(!db.queue_enqueue(&job("127.0.0.2", "s1"), 410).unwrap());
    assert_eq!(db.queue_list(None).unwrap()[0].next_attempt_at, 460);
    db.queue_mark(id, &JobOutcome::Done(Method::Dm), 500)
        .unwrap();
    assert!(!db.queue_enqueue(&job("127.0.0.2", "s1"), 510).unwrap());
    assert_eq!(db.queue_list(None).unwrap()[0].state, JobState::Done);
}

#[test]
fn migration_8_keeps_the_queue_and_allows_unconfirmed() {
    // SQLite only: PostgreSQL's schema starts at SQLite's 13.
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("old.sqlite"));
    {
        // A store as a build before migration 8 left it (at 5), with a job in it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &crate::store::db::sqlite::MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute(
            "INSERT INTO disconnect_queue (nas_ip, session_key, username, acct_session_id, \
                 session_start, reason, state, attempts, last_error, next_attempt_at, created, \
                 updated) \
             VALUES ('127.0.0.2', 'k', 'u', 'k', 1, 'month boundary', 'dm-failed', 2, 'e', 5, 3, 4)", ())
        .unwrap();
        let e = conn.execute("UPDATE disconnect_queue SET state = 'unconfirmed'", ());
        assert!(e.is_err(), "the old CHECK refuses the new state");
    }
    let db = Admin::open(&path).unwrap();
    let jobs = db.queue_list(None).unwrap();
    assert_eq!(jobs.len(), 1);
    let j = &jobs[0];
    assert_eq!(
        (j.state, j.attempts, j.next_attempt_at, j.created, j.updated),
        (JobState::DmFailed, 2, 5, 3, 4)
    );
    assert_eq!(db.queue_due(5, 10).unwrap().len(), 1);
    let nak = JobOutcome::Unconfirmed {
        error: "x".into(),
        error_cause: None,
    };
    assert!(db.queue_mark(j.id, &nak, 6).unwrap());
    assert_eq!(db.queue_list(Some(JobState::Unconfirmed)).unwrap().len(), 1);
    // UNIQUE (nas_ip, session_key) survived: the session's next Interim re-arms the
    // job instead of adding a second one.
    assert!(db.queue_enqueue(&job("127.0.0.2", "k"), 8).unwrap());
    let jobs = db.queue_list(None).unwrap();
    assert_eq!((jobs.len(), jobs[0].state), (1, JobState::Pending));
}

#[test]
fn due_mark_and_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    db.queue_enqueue(&job("127.0.0.2", "s1"), 100).unwrap();
    db.queue_enqueue(&job("127.0.0.2", "s2"), 105).unwrap();
    assert!(db.queue_due(99, 10).unwrap().is_empty());
    let due = db.queue_due(110, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(db.queue_due(110, 1).unwrap().len(), 1);
    let (s1, s2) = (due[0].id, due[1].id);

    let nak = JobOutcome::DmFailed {
        error: "Disconnect-NAK".into(),
        error_cause: Some(503),
    };
    assert!(db.queue_mark(s1, &nak, 110).unwrap());
    let j = &db.queue_list(Some(JobState::DmFailed)).unwrap()[0];
    assert_eq!(
        (j.attempts, j.next_attempt_at, j.error_cause),
        (1, 140, Some(503))
    );
    assert_eq!(j.last_error.as_deref(), Some("Disconnect-NAK"));

    // Second failure doubles the wait; dm-failed jobs are still due.
    let timeout = JobOutcome::Retry {
        error: "timeout".into(),
        error_cause: None,
    };
    assert_eq!(db.queue_due(139, 10).unwrap().len(), 1);
    assert_eq!(db.queue_due(140, 10).unwrap().len(), 2);
    db.queue_mark(s1, &timeout, 140).unwrap();
    let j = db
        .queue_list(None)
        .unwrap()
        .into_iter()
        .find(|j| j.id == s1)
        .unwrap();
    assert_eq!(
        (j.state, j.attempts, j.next_attempt_at, j.error_cause),
        (JobState::Pending, 2, 200, None)
    );

    db.queue_mark(s2, &JobOutcome::Done(Method::Dm), 150)
        .unwrap();
    let done = db.queue_list(Some(JobState::Done)).unwrap();
    assert_eq!(
        (done.len(), done[0].method, done[0].updated),
        (1, Some(Method::Dm), 150)
    );
    assert!(db.queue_due(10_000, 10).unwrap().iter().all(|j| j.id != s2));

    let gave_up = JobOutcome::Failed {
        error: "api refused".into(),
        error_cause: None,
    };
    db.queue_mark(s1, &gave_up, 200).unwrap();
    assert!(db.queue_due(10_000, 10).unwrap().is_empty());
    assert!(!db.queue_mark(9999, &gave_up, 200).unwrap());
}

#[test]
fn due_per_nas() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    db.queue_enqueue(&job("127.0.0.3", "a"), 100).unwrap();
    db.queue_enqueue(&job("127.0.0.2", "b"), 100).unwrap();
    db.queue_enqueue(&job("127.0.0.2", "c"), 101).unwrap();
    db.queue_enqueue(&job("127.0.0.4", "later"), 200).unwrap();
    assert_eq!(db.queue_due_nases(150).unwrap(), ["127.0.0.2", "127.0.0.3"]);
    let keys = |jobs: Vec<DisconnectJob>| -> Vec<String> {
        jobs.into_iter().map(|j| j.session_key).collect()
    };
    assert_eq!(
        keys(db.queue_due_on("127.0.0.2", 150, 10).unwrap()),
        ["b", "c"]
    );
    assert_eq!(keys(db.queue_due_on("127.0.0.2", 150, 1).unwrap()), ["b"]);
    assert!(db.queue_due_on("127.0.0.4", 150, 10).unwrap().is_empty());
    let b = db.queue_due_on("127.0.0.2", 150, 1).unwrap()[0].id;
    db.queue_mark(b, &JobOutcome::Done(Method::Dm), 150)
        .unwrap();
    assert_eq!(keys(db.queue_due_on("127.0.0.2", 150, 10).unwrap()), ["c"]);
    assert_eq!(db.queue_due_nases(300).unwrap().len(), 3);
}

#[test]
fn retry_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    for k in ["a", "b", "c"] {
        db.queue_enqueue(&job("127.0.0.2", k), 100).unwrap();
    }
    let ids: Vec<i64> = db.queue_list(None).unwrap().iter().map(|j| j.id).collect();
    let fail = JobOutcome::Failed {
        error: "x".into(),
        error_cause: None,
    };
    db.queue_mark(ids[0], &fail, 100).unwrap();
    db.queue_mark(ids[1], &fail, 100).unwrap();
    db.queue_mark(ids[2], &JobOutcome::Done(Method::Api), 100)
        .unwrap();

    assert_eq!(db.queue_retry(RetryTarget::Id(ids[0]), 500).unwrap(), 1);
    let j = &db.queue_list(Some(JobState::Pending)).unwrap()[0];
    assert_eq!((j.id, j.attempts, j.next_attempt_at), (ids[0], 0, 500));
    // Done jobs stay done.
    assert_eq!(db.queue_retry(RetryTarget::Id(ids[2]), 500).unwrap(), 0);
    assert_eq!(db.queue_retry(RetryTarget::AllFailed, 600).unwrap(), 1);
    assert!(db.queue_list(Some(JobState::Failed)).unwrap().is_empty());

    // Purge only removes done jobs, by age.
    assert_eq!(db.queue_purge(Some(100)).unwrap(), 0);
    assert_eq!(db.queue_purge(Some(101)).unwrap(), 1);
    db.queue_mark(ids[0], &JobOutcome::Done(Method::Dm), 700)
        .unwrap();
    assert_eq!(db.queue_purge(None).unwrap(), 1);
    assert_eq!(db.queue_list(None).unwrap().len(), 1);
}

#[test]
fn retry_all_failed_takes_every_state_that_is_not_done() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    for k in ["failed", "dm-failed", "unconfirmed", "pending", "done"] {
        db.queue_enqueue(&job("127.0.0.2", k), 100).unwrap();
    }
    let id = |key: &str| {
        db.queue_list(None)
            .unwrap()
            .into_iter()
            .find(|j| j.session_key == key)
            .unwrap()
            .id
    };
    let error = || "x".to_string();
    db.queue_mark(
        id("failed"),
        &JobOutcome::Failed {
            error: error(),
            error_cause: None,
        },
        100,
    )
    .unwrap();
    db.queue_mark(
        id("dm-failed"),
        &JobOutcome::DmFailed {
            error: error(),
            error_cause: None,
        },
        100,
    )
    .unwrap();
    db.queue_mark(id("done"), &JobOutcome::Done(Method::Dm), 100)
        .unwrap();
    db.queue_mark(
        id("unconfirmed"),
        &JobOutcome::Unconfirmed {
            error: error(),
            error_cause: Some(503),
        },
        100,
    )
    .unwrap();
    // Failed, dm-failed and unconfirmed jobs are re-armed; pending and done ones are
    // left alone.
    assert_eq!(db.queue_retry(RetryTarget::AllFailed, 500).unwrap(), 3);
    let jobs = db.queue_list(None).unwrap();
    for j in &jobs {
        let want = if j.session_key == "done" {
            JobState::Done
        } else {
            JobState::Pending
        };
        assert_eq!(j.state, want, "{j:?}");
    }
    let rearmed: Vec<&str> = jobs
        .iter()
        .filter(|j| j.next_attempt_at == 500)
        .map(|j| j.session_key.as_str())
        .collect();
    assert_eq!(rearmed, ["failed", "dm-failed", "unconfirmed"]);
}

#[test]
fn close_if_stopped_uses_the_session_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("db.sqlite"));
    let store = Store::open(&path, Default::default()).unwrap();
    let pkt = |status, sid: &str, at| AcctUpdate {
        status,
        nas_ip: "127.0.0.2".into(),
        session_id: sid.into(),
        unique_id: None,
        username: "alice".into(),
        input_octets: 0,
        output_octets: 0,
        gigawords: false,
        session_time: Some(0),
        framed_ip: None,
        calling_station_id: None,
        nas_port: None,
        terminate_cause: None,
        event_time: at,
    };
    store.record(pkt(AcctStatus::Start, "open1", 100)).unwrap();
    store.record(pkt(AcctStatus::Start, "gone1", 100)).unwrap();
    store.record(pkt(AcctStatus::Stop, "gone1", 150)).unwrap();
    let keys: Vec<String> = store
        .list_sessions(&Default::default())
        .unwrap()
        .into_iter()
        .map(|r| r.session_key)
        .collect();
    assert_eq!(keys.len(), 2);

    let db = Admin::open(&path).unwrap();
    for k in &keys {
        db.queue_enqueue(&job("127.0.0.2", k), 200).unwrap();
    }
    // An unconfirmed job is confirmed by the Stop.
    let gone = db
        .queue_list(None)
        .unwrap()
        .into_iter()
        .find(|j| j.session_key == "gone1")
        .unwrap();
    let nak = JobOutcome::Unconfirmed {
        error: "x".into(),
        error_cause: Some(503),
    };
    db.queue_mark(gone.id, &nak, 250).unwrap();
    assert_eq!(db.queue_close_if_stopped(300).unwrap(), 1);
    assert_eq!(db.queue_close_if_stopped(300).unwrap(), 0);
    let done = db.queue_list(Some(JobState::Done)).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].method, Some(Method::Stop));
    assert_eq!(db.queue_list(Some(JobState::Pending)).unwrap().len(), 1);

    // The read-only side sees the same rows.
    let reader = Reader::open(&path).unwrap();
    assert_eq!(reader.queue_list(None).unwrap().len(), 2);
}

#[test]
fn bulk_runs_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let run = BulkRun {
        nas_ip: "127.0.0.2".into(),
        started: 10,
        finished: Some(20),
        seen: 50,
        removed: 3,
        failed: 1,
        error: None,
    };
    let id1 = db.bulk_run_record(&run).unwrap();
    let later = BulkRun {
        started: 30,
        finished: None,
        error: Some("api timeout".into()),
        ..run.clone()
    };
    let id2 = db.bulk_run_record(&later).unwrap();
    assert_ne!(id1, id2);
    assert_eq!(
        db.bulk_runs("127.0.0.2").unwrap(),
        vec![later.clone(), run.clone()]
    );
    assert!(db.bulk_runs("127.0.0.9").unwrap().is_empty());
    // The newest of each NAS in one read: by start, not by insertion order.
    let other = BulkRun {
        nas_ip: "127.0.0.3".into(),
        ..run.clone()
    };
    db.bulk_run_record(&other).unwrap();
    db.bulk_run_record(&BulkRun {
        started: 5,
        ..run.clone()
    })
    .unwrap();
    let last = db.last_bulk_runs().unwrap();
    assert_eq!(last.len(), 2);
    assert_eq!(last["127.0.0.2"], later);
    assert_eq!(last["127.0.0.3"], other);
}

#[test]
fn open_existing_requires_the_file() {
    // SQLite only: a file.
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("missing.sqlite"));
    assert!(matches!(
        Admin::open_existing(&path),
        Err(StoreError::NotFound { .. })
    ));
    assert!(!path.exists());
}

/// Several servers on one database: each due job is claimed by exactly one of
/// them, and a claim nobody marked is taken over once its lease runs out.
#[test]
fn claims_are_exclusive_and_lapse_after_the_lease() {
    // Every queue's claim statement runs on this backend.
    {
        let dir = tempfile::tempdir().unwrap();
        let db = Admin::open(testdb::at(dir.path().join("db.sqlite"))).unwrap();
        let lease = Lease { secs: 60 };
        assert!(db.coa_claim(100, 10, lease).unwrap().is_empty());
        assert!(db.actions_claim(100, 10, lease).unwrap().is_empty());
        assert!(db.hooks_claim(100, 10, lease).unwrap().is_empty());
    }
    // Several servers share a PostgreSQL store only; SQLite's one server leases nothing.
    if !testdb::not_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let db = Admin::open(testdb::at(dir.path().join("db.sqlite"))).unwrap();
        assert!(db.queue_enqueue(&job("127.0.0.2", "k"), 100).unwrap());
        let lease = Lease { secs: 60 };
        assert_eq!(
            db.queue_claim_on("127.0.0.2", 200, 7, lease).unwrap().len(),
            1
        );
        // Not marked (the mark failed): due again at once.
        assert_eq!(
            db.queue_claim_on("127.0.0.2", 201, 7, lease).unwrap().len(),
            1
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("db.sqlite"));
    let first = Admin::open(&path).unwrap();
    for i in 0..60 {
        assert!(first
            .queue_enqueue(&job("127.0.0.2", &format!("k{i}")), 100)
            .unwrap());
    }
    let lease = Lease { secs: 60 };
    // Four "servers" claim at once, in small batches, until nothing is due.
    let claimed: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = &path;
                s.spawn(move || {
                    let db = Admin::open(path).unwrap();
                    let mut mine = Vec::new();
                    loop {
                        let jobs = db.queue_claim_on("127.0.0.2", 200, 7, lease).unwrap();
                        if jobs.is_empty() {
                            break mine;
                        }
                        mine.extend(jobs.iter().map(|j| j.id));
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claimed.concat();
    all.sort_unstable();
    let total = all.len();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (60, 60),
        "every job claimed exactly once"
    );
    // Nothing is due within the lease; one job marked done stays done.
    assert!(first
        .queue_claim_on("127.0.0.2", 259, 100, lease)
        .unwrap()
        .is_empty());
    assert!(first
        .queue_mark(all[0], &JobOutcome::Done(Method::Dm), 210)
        .unwrap());
    // After the lease the 59 unmarked ones (their claimer died) are due again.
    let again = first.queue_claim_on("127.0.0.2", 260, 100, lease).unwrap();
    assert_eq!(again.len(), 59);
    assert!(again.iter().all(|j| j.id != all[0]));
    // The monthly bulk run of a NAS goes to one server.
    let second = Admin::open(&path).unwrap();
    assert!(first.bulk_month_claim("127.0.0.2", 1_000, 1_010).unwrap());
    assert!(!second.bulk_month_claim("127.0.0.2", 1_000, 1_011).unwrap());
    assert!(second.bulk_month_claim("127.0.0.2", 2_000, 2_010).unwrap());
}

#[test]
fn migration_16_keeps_api_ssl_nases_working_unverified_and_verifies_new_ones() {
    if testdb::not_sqlite() {
        return; // PostgreSQL's 0005 is the same SQL
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in &crate::store::db::sqlite::MIGRATIONS[..15] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 15).unwrap();
        for (ip, tls) in [("192.0.2.1", 1), ("192.0.2.2", 0)] {
            conn.execute(
                "INSERT INTO nas (nas_ip, name, api_tls, created, updated) VALUES (?1, ?1, ?2, 1, 1)",
                rusqlite::params![ip, tls],
            )
            .unwrap();
        }
    }
    let db = Admin::open(&path).unwrap();
    let old_tls = db.nas_get("192.0.2.1").unwrap().unwrap().config;
    assert_eq!(
        (old_tls.api_tls, old_tls.api_tls_verify, old_tls.api_ca),
        (true, false, None)
    );
    let plain = db.nas_get("192.0.2.2").unwrap().unwrap().config;
    assert!(
        plain.api_tls_verify,
        "verification is on for everything else"
    );
    let mut new = NasConfig::new("192.0.2.3");
    new.api_tls = true;
    new.api_ca = Some("-----BEGIN CERTIFICATE-----\n...".into());
    db.nas_upsert(&new, 2).unwrap();
    let back = db.nas_get("192.0.2.3").unwrap().unwrap().config;
    assert_eq!((back.api_tls_verify, back.api_ca), (true, new.api_ca));
}
