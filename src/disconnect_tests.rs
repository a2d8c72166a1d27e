use super::*;
use chrono::DateTime;
use chrono_tz::{Europe, UTC};

fn ts(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

fn update(status: AcctStatus, now: i64, session_time: Option<u32>) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: "192.0.2.1".into(),
        session_id: "s1".into(),
        unique_id: None,
        username: "alice".into(),
        input_octets: 0,
        output_octets: 0,
        gigawords: false,
        session_time,
        framed_ip: Some("100.64.0.9".into()),
        calling_station_id: None,
        nas_port: None,
        terminate_cause: None,
        event_time: now,
    }
}

fn session(start: &str, open: bool) -> Session {
    Session {
        username: "alice".into(),
        acct_session_id: "s1".into(),
        nas_port: None,
        framed_ip: Some("100.64.0.10".into()),
        calling_station_id: None,
        start_time: ts(start),
        last_update: ts(start),
        stop_time: (!open).then(|| ts(start) + 60),
        session_time: 0,
        input_octets: 0,
        output_octets: 0,
        gigawords: false,
        terminate_cause: None,
        closed_reason: None,
    }
}

#[test]
fn month_boundary_decision_table() {
    use AcctStatus::*;
    let now = "2026-11-01T00:10:00Z";
    // (status, stored session (start, open), Acct-Session-Time, now, tz, queued?)
    type Case<'a> = (
        AcctStatus,
        Option<(&'a str, bool)>,
        Option<u32>,
        &'a str,
        Tz,
        bool,
    );
    let cases: Vec<Case> = vec![
        // Stored start last month: queue.
        (
            Interim,
            Some(("2026-10-31T23:00:00Z", true)),
            None,
            now,
            UTC,
            true,
        ),
        (
            Start,
            Some(("2026-10-31T23:00:00Z", true)),
            None,
            now,
            UTC,
            true,
        ),
        // Same month: nothing.
        (
            Interim,
            Some(("2026-11-01T00:00:00Z", true)),
            None,
            now,
            UTC,
            false,
        ),
        // Exactly at the boundary belongs to the new month.
        (
            Interim,
            Some(("2026-11-01T00:00:00Z", true)),
            None,
            now,
            UTC,
            false,
        ),
        // One second before it does not.
        (
            Interim,
            Some(("2026-10-31T23:59:59Z", true)),
            None,
            now,
            UTC,
            true,
        ),
        // Closed sessions and Stops never.
        (
            Interim,
            Some(("2026-10-01T00:00:00Z", false)),
            None,
            now,
            UTC,
            false,
        ),
        (
            Stop,
            Some(("2026-10-01T00:00:00Z", true)),
            None,
            now,
            UTC,
            false,
        ),
        (AccountingOn, None, None, now, UTC, false),
        // No stored session: now - Acct-Session-Time.
        (Interim, None, Some(3600), now, UTC, true),
        (Interim, None, Some(300), now, UTC, false),
        (Interim, None, None, now, UTC, false),
        // The time zone decides the month: 23:30Z Oct 31 is already November in Berlin,
        // so a session started 22:30Z (23:30 Berlin, October) is from last month there...
        (
            Interim,
            Some(("2026-10-31T22:30:00Z", true)),
            None,
            "2026-10-31T23:30:00Z",
            Europe::Berlin,
            true,
        ),
        // ...but not in UTC, where it is still October.
        (
            Interim,
            Some(("2026-10-31T22:30:00Z", true)),
            None,
            "2026-10-31T23:30:00Z",
            UTC,
            false,
        ),
        // Sessions running for months.
        (
            Interim,
            Some(("2026-08-15T10:00:00Z", true)),
            None,
            now,
            UTC,
            true,
        ),
    ];
    for (status, stored, st, now, tz, want) in cases {
        let s = stored.map(|(start, open)| session(start, open));
        let u = update(status, ts(now), st);
        let got = month_boundary_job(&u, s.as_ref(), ts(now), tz);
        assert_eq!(
            got.is_some(),
            want,
            "{status:?} {stored:?} {st:?} {now} {tz}"
        );
        if let Some(job) = got {
            assert_eq!(job.reason, MONTH_BOUNDARY_REASON);
            assert_eq!(job.session_key, "s1");
            assert_eq!(job.username, "alice");
            let start = s.map_or(ts(now) - i64::from(st.unwrap_or(0)), |s| s.start_time);
            assert_eq!(job.session_start, start);
        }
    }
}

#[test]
fn job_prefers_stored_address_and_falls_back_to_the_packet() {
    let now = ts("2026-11-01T00:10:00Z");
    let u = update(AcctStatus::Interim, now, Some(7200));
    let stored = session("2026-10-31T22:00:00Z", true);
    let job = month_boundary_job(&u, Some(&stored), now, UTC).unwrap();
    assert_eq!(job.framed_ip.as_deref(), Some("100.64.0.10"));
    let job = month_boundary_job(&u, None, now, UTC).unwrap();
    assert_eq!(job.framed_ip.as_deref(), Some("100.64.0.9"));
    assert_eq!(job.session_start, now - 7200);
}

#[test]
fn dm_verdict_table() {
    let t = |bad| {
        Err(CoaError::Timeout {
            attempts: 1,
            bad_replies: bad,
        })
    };
    let cases: Vec<(Result<DmOutcome, CoaError>, DmVerdict)> = vec![
        (Ok(DmOutcome::Ack), DmVerdict::Acked),
        // "No such session" is not proof of a disconnect (NAT: another box got it).
        (
            Ok(DmOutcome::Nak {
                error_cause: Some(503),
            }),
            DmVerdict::NotFound {
                error: format!("Disconnect-NAK ({})", describe_error_cause(503)),
                error_cause: Some(503),
            },
        ),
        (
            Ok(DmOutcome::Nak {
                error_cause: Some(504),
            }),
            DmVerdict::Failed {
                error: format!("Disconnect-NAK ({})", describe_error_cause(504)),
                error_cause: Some(504),
            },
        ),
        (
            Ok(DmOutcome::Nak { error_cause: None }),
            DmVerdict::NotFound {
                error: "Disconnect-NAK (no Error-Cause)".into(),
                error_cause: None,
            },
        ),
        (
            t(0),
            DmVerdict::Failed {
                error: "no Disconnect reply after 3 attempt(s)".into(),
                error_cause: None,
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(dm_verdict(&input, 3), want, "{input:?}");
    }
    match dm_verdict(&t(2), 3) {
        DmVerdict::Failed { error, .. } => assert!(error.contains("wrong secret"), "{error}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn which_verdicts_go_to_the_api() {
    let not_found = DmVerdict::NotFound {
        error: "Disconnect-NAK (no Error-Cause)".into(),
        error_cause: None,
    };
    let failed = DmVerdict::Failed {
        error: "no Disconnect reply after 1 attempt(s)".into(),
        error_cause: None,
    };
    // (verdict, NAS has API credentials, goes to the API)
    let cases = [
        (&DmVerdict::Acked, true, false),
        (&DmVerdict::Acked, false, false),
        (&not_found, true, true),
        (&not_found, false, false),
        (&failed, true, true),
        // Without credentials the API step only says so, in last_error.
        (&failed, false, true),
    ];
    for (v, has_api, want) in cases {
        assert_eq!(v.needs_api(has_api), want, "{v:?} {has_api}");
    }
}

#[test]
fn job_outcome_table() {
    let nak = |cause| DmVerdict::NotFound {
        error: "Disconnect-NAK (503 Session-Context-Not-Found)".into(),
        error_cause: cause,
    };
    let timeout = DmVerdict::Failed {
        error: "no Disconnect reply after 3 attempt(s)".into(),
        error_cause: None,
    };
    let removed: Result<usize, String> = Ok(1);
    let not_there: Result<usize, String> = Ok(0);
    let refused: Result<usize, String> = Err("login refused".into());
    let dm_failed = |error: &str, error_cause| JobOutcome::DmFailed {
        error: error.into(),
        error_cause,
    };
    // (verdict, the API's result if it went there, what is recorded)
    type Case<'a> = (DmVerdict, Option<&'a Result<usize, String>>, JobOutcome);
    let cases: Vec<Case> = vec![
        (DmVerdict::Acked, None, JobOutcome::Done(Method::Dm)),
        // NAK, then the API: removed there, or not there either: done by API.
        (
            nak(Some(503)),
            Some(&removed),
            JobOutcome::Done(Method::Api),
        ),
        (
            nak(Some(503)),
            Some(&not_there),
            JobOutcome::Done(Method::Api),
        ),
        // NAK and no API to check: not confirmed.
        (
            nak(Some(503)),
            None,
            JobOutcome::Unconfirmed {
                error: "DM: Disconnect-NAK (503 Session-Context-Not-Found): not confirmed (no \
                        RouterOS API credentials to check); queued again at the session's \
                        next Interim"
                    .into(),
                error_cause: Some(503),
            },
        ),
        // NAK and the API failed: retried like any failure.
        (
            nak(None),
            Some(&refused),
            dm_failed(
                "DM: Disconnect-NAK (503 Session-Context-Not-Found); API: login refused",
                None,
            ),
        ),
        (
            timeout.clone(),
            Some(&not_there),
            JobOutcome::Done(Method::Api),
        ),
        (
            timeout.clone(),
            Some(&refused),
            dm_failed(
                "DM: no Disconnect reply after 3 attempt(s); API: login refused",
                None,
            ),
        ),
        (
            timeout,
            None,
            dm_failed(
                "DM: no Disconnect reply after 3 attempt(s); API: not tried (stopping)",
                None,
            ),
        ),
    ];
    for (verdict, api, want) in cases {
        assert_eq!(job_outcome(&verdict, api), want, "{verdict:?} {api:?}");
    }
}

/// A client list with 127.0.0.0/24 (secret "listed") and 198.51.100.7 ("nat-public"),
/// and a record of what was looked up.
fn fake_clients() -> (ClientSecrets, Arc<std::sync::Mutex<Vec<IpAddr>>>) {
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let secrets = ClientSecrets::with_lookup(Arc::new(move |ip: IpAddr| {
        log.lock().unwrap().push(ip);
        match ip {
            IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] => Some("listed".to_string()),
            IpAddr::V4(v4) if v4.octets() == [198, 51, 100, 7] => Some("nat-public".into()),
            _ => None,
        }
    }));
    (secrets, asked)
}

#[test]
fn dm_target_table() {
    let mut nat = NasConfig::new("192.0.2.1");
    nat.coa_host = Some("127.0.0.2".into());
    nat.coa_port = 1700;
    nat.secret = Some("row-secret".into());
    let mut plain = NasConfig::new("127.0.0.5");
    plain.secret = None;
    let mut behind_nat = NasConfig::new("192.0.2.9");
    behind_nat.coa_host = Some("198.51.100.7".into());
    let ok = |a: &str, s: &str| Ok((a.parse::<SocketAddr>().unwrap(), s.to_string()));
    let (clients, _) = fake_clients();
    let (learned, asked) = fake_clients();
    learned.learn("127.0.0.5", "learned");
    learned.learn("127.0.0.6", "learned");
    let none = ClientSecrets::default();
    // The row's target and secret win over everything else.
    assert_eq!(
        dm_target("192.0.2.1", Some(&nat), &learned),
        ok("127.0.0.2:1700", "row-secret")
    );
    // No secret on the row: the one learned from its requests...
    assert_eq!(
        dm_target("127.0.0.5", Some(&plain), &learned),
        ok("127.0.0.5:3799", "learned")
    );
    // ...else the server's client list, by NAS IP (nothing learned since a restart).
    assert_eq!(
        dm_target("127.0.0.5", Some(&plain), &clients),
        ok("127.0.0.5:3799", "listed")
    );
    // ...or by the address the requests go to, for a NAS behind NAT.
    assert_eq!(
        dm_target("192.0.2.9", Some(&behind_nat), &clients),
        ok("198.51.100.7:3799", "nat-public")
    );
    // No row: the NAS IP, port 3799, the client's secret.
    assert_eq!(
        dm_target("127.0.0.6", None, &learned),
        ok("127.0.0.6:3799", "learned")
    );
    assert_eq!(
        dm_target("127.0.0.7", None, &clients),
        ok("127.0.0.7:3799", "listed")
    );
    assert!(
        !asked
            .lock()
            .unwrap()
            .contains(&"127.0.0.6".parse().unwrap()),
        "a learned secret needs no lookup"
    );
    let e = dm_target("192.0.2.6", None, &clients).unwrap_err();
    assert!(e.contains("no network device"), "{e}");
    let e = dm_target("127.0.0.5", Some(&plain), &none).unwrap_err();
    assert!(e.contains("has no secret"), "{e}");
}

#[test]
fn client_secrets_learn_and_replace() {
    let s = ClientSecrets::default();
    let any: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(s.get("192.0.2.1", any), None);
    s.learn("192.0.2.1", "a");
    s.learn("192.0.2.1", "a");
    assert_eq!(s.get("192.0.2.1", any).as_deref(), Some("a"));
    s.learn("192.0.2.1", "b");
    assert_eq!(s.get("192.0.2.1", any).as_deref(), Some("b"));
    s.learn("", "x");
    s.learn("192.0.2.2", "");
    assert_eq!(s.get("192.0.2.2", any), None);
    assert!(!format!("{s:?}").contains('b'), "Debug hides secrets");
    let (clients, _) = fake_clients();
    assert!(!format!("{clients:?}").contains("listed"), "{clients:?}");
}

#[test]
fn api_login_without_credentials_says_so() {
    let nas = NasConfig::new("192.0.2.1");
    let e = api_login(&nas).unwrap_err();
    assert!(e.contains("no RouterOS API credentials"), "{e}");
}

#[test]
fn writer_queues_one_job_per_session_in_the_update_commit() {
    use crate::store::{Reader, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let store = Store::open(
        &path,
        StoreOptions {
            month_boundary_disconnect: true,
            ..Default::default()
        },
    )
    .unwrap();
    let oct = ts("2026-10-31T22:00:00Z");
    let nov = ts("2026-11-01T00:05:00Z");
    let mut start = update(AcctStatus::Start, oct, Some(0));
    start.session_id = "old".into();
    assert!(!store.record(start.clone()).unwrap().disconnect_queued);
    for k in 0..3 {
        let mut u = update(AcctStatus::Interim, nov + k * 300, Some(7500));
        u.session_id = "old".into();
        let o = store.record(u).unwrap();
        assert_eq!(o.disconnect_queued, k == 0, "only the first interim queues");
        if k == 0 {
            assert!(o.to_string().contains("disconnect queued"), "{o}");
        }
    }
    // A session of this month is left alone.
    let mut fresh = update(AcctStatus::Interim, nov, Some(60));
    fresh.session_id = "new".into();
    assert!(!store.record(fresh).unwrap().disconnect_queued);
    let jobs = Reader::open(&path).unwrap().queue_list(None).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].session_key, "old");
    assert_eq!(jobs[0].session_start, oct);
    assert_eq!(jobs[0].reason, MONTH_BOUNDARY_REASON);
    // Capping's entry point: through the writer, one job per session as well.
    let mut job = NewDisconnectJob {
        nas_ip: "192.0.2.1".into(),
        session_key: "new".into(),
        username: "alice".into(),
        acct_session_id: "new".into(),
        framed_ip: None,
        session_start: nov,
        reason: "over limit".into(),
    };
    assert!(store.enqueue_disconnect(job.clone(), nov).unwrap());
    job.reason = "over limit again".into();
    assert!(!store.enqueue_disconnect(job, nov).unwrap());
}

#[test]
fn writer_queues_nothing_when_disabled() {
    use crate::store::{Reader, Store, StoreOptions};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let u = update(
        AcctStatus::Interim,
        ts("2026-11-01T00:05:00Z"),
        Some(86_400),
    );
    assert!(!store.record(u).unwrap().disconnect_queued);
    assert!(Reader::open(&path)
        .unwrap()
        .queue_list(None)
        .unwrap()
        .is_empty());
}

#[test]
fn api_ssl_is_verified_unless_turned_off_and_needs_a_ca() {
    use crate::routeros::TlsVerify;
    let nas = |tls: bool, verify: bool, ca: Option<&str>| {
        let mut n = NasConfig::new("192.0.2.1");
        n.api_tls = tls;
        n.api_tls_verify = verify;
        n.api_ca = ca.map(Into::into);
        n
    };
    let pem = "-----BEGIN CERTIFICATE-----";
    assert_eq!(api_tls_verify(&nas(false, true, None)), Ok(None));
    assert_eq!(api_tls_verify(&nas(false, false, Some(pem))), Ok(None));
    assert_eq!(
        api_tls_verify(&nas(true, false, None)),
        Ok(Some(TlsVerify::AcceptAny))
    );
    assert_eq!(
        api_tls_verify(&nas(true, true, Some(pem))),
        Ok(Some(TlsVerify::CaPem(pem.as_bytes().to_vec())))
    );
    for ca in [None, Some(""), Some("  \n")] {
        let e = api_tls_verify(&nas(true, true, ca)).unwrap_err();
        assert!(
            e.contains("--api-ca") && e.contains("--api-tls-insecure"),
            "{e}"
        );
    }
}

#[test]
fn a_job_that_keeps_failing_is_given_up_after_max_attempts() {
    let failed = |e: &str| JobOutcome::DmFailed {
        error: e.into(),
        error_cause: Some(404),
    };
    let retry = JobOutcome::Retry {
        error: "timeout".into(),
        error_cause: None,
    };
    // Attempts before this one, and whether this failure ends the job.
    let cases = [
        (0, false),
        (MAX_ATTEMPTS - 2, false),
        (MAX_ATTEMPTS - 1, true),
        (u32::MAX, true),
    ];
    for (attempts, gives_up) in cases {
        for outcome in [failed("x"), retry.clone()] {
            let got = give_up_after(outcome.clone(), attempts);
            if gives_up {
                let JobOutcome::Failed { error, .. } = &got else {
                    panic!("{attempts}: {got:?}")
                };
                assert!(
                    error.contains("given up after") && error.contains("queue retry"),
                    "{error}"
                );
            } else {
                assert_eq!(got, outcome, "{attempts}");
            }
        }
    }
    // What is final already, or done, stays as it is.
    let done = JobOutcome::Done(Method::Api);
    assert_eq!(give_up_after(done.clone(), u32::MAX), done);
    let unconfirmed = JobOutcome::Unconfirmed {
        error: "nak".into(),
        error_cause: Some(503),
    };
    assert_eq!(give_up_after(unconfirmed.clone(), u32::MAX), unconfirmed);
    // The error keeps its Error-Cause.
    assert!(matches!(
        give_up_after(failed("x"), MAX_ATTEMPTS),
        JobOutcome::Failed {
            error_cause: Some(404),
            ..
        }
    ));
}
