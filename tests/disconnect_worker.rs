//! The disconnect queue worker and the bulk path against in-process doubles: an RFC 5176
//! NAS double (UDP, on 127.0.0.2) and RouterOS API doubles (TCP, on 127.0.0.3, ...).
//! No freeradius here: tests/e2e_disconnect.rs runs the same through the real server.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use rlm_rust::bulk::{self, AutoBulk, BulkOptions};
use rlm_rust::disconnect::{ClientSecrets, QueueWorker, WorkerConfig};
use rlm_rust::radius::attrs;
use rlm_rust::radius::double::{Answer, NasDouble};
use rlm_rust::routeros::double::{DoubleConfig, Faults, RouterOsDouble};
use rlm_rust::routeros::SessionTable;
use rlm_rust::sessions::{AcctStatus, AcctUpdate};
use rlm_rust::store::{Admin, JobState, Method, NasConfig, NewDisconnectJob, Store, StoreOptions};

const NOW: i64 = 1_793_491_200 + 600; // 2026-11-01T00:10:00Z
const SECRET: &str = "nas-secret";

fn bind(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    admin: Admin,
    secrets: ClientSecrets,
    stop: Arc<AtomicBool>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rlm.sqlite");
        let admin = Admin::open(&db).unwrap();
        Fixture {
            _dir: dir,
            db,
            admin,
            secrets: ClientSecrets::default(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn worker(&self) -> QueueWorker {
        let cfg = WorkerConfig {
            dm_timeout: Duration::from_millis(200),
            dm_retries: 1,
            ..WorkerConfig::new(&self.db)
        };
        QueueWorker::new(cfg, self.secrets.clone(), Arc::clone(&self.stop))
    }

    fn enqueue(&self, nas_ip: &str, user: &str, framed_ip: Option<&str>) -> i64 {
        let job = NewDisconnectJob {
            nas_ip: nas_ip.into(),
            session_key: format!("sess-{user}"),
            username: user.into(),
            acct_session_id: format!("sess-{user}"),
            framed_ip: framed_ip.map(String::from),
            session_start: NOW - 86_400,
            reason: "month boundary".into(),
        };
        assert!(self.admin.queue_enqueue(&job, NOW).unwrap());
        self.job(user).id
    }

    fn job(&self, user: &str) -> rlm_rust::store::DisconnectJob {
        self.admin
            .queue_list(None)
            .unwrap()
            .into_iter()
            .find(|j| j.username == user)
            .unwrap()
    }
}

/// A NAS row: DM to `dm` (if any) with our secret, API on `api` (if any).
fn nas(ip: &str, dm: Option<&NasDouble>, api: Option<(&RouterOsDouble, &str)>) -> NasConfig {
    let mut n = NasConfig::new(ip);
    n.name = Some(format!("nas-{ip}"));
    if let Some(d) = dm {
        n.coa_host = Some(d.addr().ip().to_string());
        n.coa_port = d.addr().port();
        n.secret = Some(SECRET.into());
    } else {
        // Nobody listens there: an ICMP-refused or silent target.
        n.coa_host = Some("127.0.0.9".into());
        n.coa_port = 9;
        n.secret = Some(SECRET.into());
    }
    if let Some((r, password)) = api {
        n.api_host = Some(r.addr().ip().to_string());
        n.api_port = r.port();
        n.api_user = Some("admin".into());
        n.api_password = Some(password.into());
        n.api_timeout_ms = 1000;
    }
    n
}

fn routeros() -> RouterOsDouble {
    RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap()
}

#[test]
fn ack_finishes_the_job_by_dm_with_full_identification() {
    let f = Fixture::new();
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.10", Some(&dm), None), NOW)
        .unwrap();
    f.enqueue("192.0.2.10", "alice", Some("100.64.0.10"));
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!((r.due, r.done_dm, r.done_api, r.retry), (1, 1, 0, 0));
    let job = f.job("alice");
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.method, Some(Method::Dm));
    let reqs = dm.requests();
    assert_eq!(reqs.len(), 1);
    let p = &reqs[0];
    assert_eq!(p.text(attrs::USER_NAME).as_deref(), Some("alice"));
    assert_eq!(
        p.text(attrs::ACCT_SESSION_ID).as_deref(),
        Some("sess-alice")
    );
    assert_eq!(
        p.ipv4(attrs::FRAMED_IP_ADDRESS).map(|a| a.to_string()),
        Some("100.64.0.10".into())
    );
    assert_eq!(
        p.ipv4(attrs::NAS_IP_ADDRESS).map(|a| a.to_string()),
        Some("192.0.2.10".into())
    );
    assert!(p.get(attrs::EVENT_TIMESTAMP).is_some());
    assert!(p.get(attrs::MESSAGE_AUTHENTICATOR).is_some());
    // Done jobs are not taken again.
    assert_eq!(f.worker().pass(NOW + 3600).unwrap().due, 0);
}

/// An Interim at `at` of `user`'s session that started a day before NOW (last month).
fn interim(user: &str, at: i64) -> AcctUpdate {
    AcctUpdate {
        status: AcctStatus::Interim,
        nas_ip: "192.0.2.11".into(),
        session_id: format!("sess-{user}"),
        unique_id: None,
        username: user.into(),
        input_octets: 1000,
        output_octets: 1000,
        gigawords: false,
        session_time: Some(u32::try_from(at - (NOW - 86_400)).unwrap()),
        framed_ip: Some("100.64.0.11".into()),
        calling_station_id: None,
        nas_port: None,
        terminate_cause: None,
        event_time: at,
    }
}

#[test]
fn a_nak_from_a_nas_without_api_leaves_the_job_unconfirmed_until_the_next_interim() {
    let f = Fixture::new();
    let dm =
        NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(Some(503))).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.11", Some(&dm), None), NOW)
        .unwrap();
    let store = Store::open(
        &f.db,
        StoreOptions {
            month_boundary_disconnect: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(store.record(interim("bob", NOW)).unwrap().disconnect_queued);
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(
        (r.due, r.done_dm, r.unconfirmed, r.retry),
        (1, 0, 1, 0),
        "{r:?}"
    );
    let job = f.job("bob");
    assert_eq!((job.state, job.method), (JobState::Unconfirmed, None));
    assert_eq!(job.error_cause, Some(503));
    let err = job.last_error.unwrap();
    assert!(err.contains("not confirmed"), "{err}");
    // Not retried on its own...
    assert_eq!(f.worker().pass(NOW + 7200).unwrap().due, 0);
    assert_eq!(dm.requests().len(), 1);
    // ...but the session's next Interim shows it is still up: due again, same job.
    assert!(
        store
            .record(interim("bob", NOW + 300))
            .unwrap()
            .disconnect_queued
    );
    assert_eq!(f.job("bob").state, JobState::Pending);
    let r = f.worker().pass(NOW + 300).unwrap();
    assert_eq!(r.unconfirmed, 1, "{r:?}");
    assert_eq!(dm.requests().len(), 2);
    let job = f.job("bob");
    assert_eq!((job.state, job.attempts), (JobState::Unconfirmed, 2));
    assert_eq!(f.admin.queue_list(None).unwrap().len(), 1);
}

#[test]
fn a_nak_is_checked_over_the_api_when_the_nas_has_credentials() {
    let f = Fixture::new();
    let no_cause =
        NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(None)).unwrap();
    let r1 = routeros();
    f.admin
        .nas_upsert(
            &nas("192.0.2.12", Some(&no_cause), Some((&r1, "secret"))),
            NOW,
        )
        .unwrap();
    // The NAT case: the NAK came from a box without the session; the router has it.
    r1.add_session(SessionTable::Ppp, "olga", "100.64.0.12", "1d");
    r1.add_session(SessionTable::Ppp, "other", "100.64.0.13", "1d");
    f.enqueue("192.0.2.12", "olga", Some("100.64.0.12"));
    f.enqueue("192.0.2.12", "pete", None); // not there either: gone
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!((r.done_dm, r.done_api, r.unconfirmed), (0, 2, 0), "{r:?}");
    for user in ["olga", "pete"] {
        let j = f.job(user);
        assert_eq!(
            (j.state, j.method),
            (JobState::Done, Some(Method::Api)),
            "{j:?}"
        );
    }
    let left: Vec<String> = r1
        .rows("/ppp/active")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(left, ["other"]);
}

#[test]
fn a_latin1_user_is_found_on_the_router_by_its_exact_bytes() {
    let f = Fixture::new();
    let nak = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(None)).unwrap();
    let r1 = routeros();
    f.admin
        .nas_upsert(&nas("192.0.2.14", Some(&nak), Some((&r1, "secret"))), NOW)
        .unwrap();
    // The router sends the PPP name as the Latin-1 bytes the RADIUS packets had.
    let latin1 = rlm_rust::names::decode(b"m\xfcller");
    r1.add_session(SessionTable::Ppp, &latin1, "100.64.0.14", "1d");
    r1.add_session(SessionTable::Ppp, "m\u{fc}ller", "100.64.0.15", "1d");
    f.enqueue("192.0.2.14", &latin1, Some("100.64.0.14"));
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(r.done_api, 1, "{r:?}");
    let left: Vec<String> = r1
        .rows("/ppp/active")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    // The UTF-8 "müller" is another user, kept.
    assert_eq!(left, ["m\u{fc}ller"]);
}

#[test]
fn nak_and_silence_fall_back_to_the_api_with_one_login_per_nas() {
    let f = Fixture::new();
    let nak =
        NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(Some(506))).unwrap();
    let silent = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Silent).unwrap();
    let r1 = routeros();
    let r2 = RouterOsDouble::start_on(bind("127.0.0.4"), DoubleConfig::default()).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.20", Some(&nak), Some((&r1, "secret"))), NOW)
        .unwrap();
    f.admin
        .nas_upsert(
            &nas("192.0.2.21", Some(&silent), Some((&r2, "secret"))),
            NOW,
        )
        .unwrap();
    // On r1: carol (PPP) and dave (Hotspot) to remove, erin keeps hers (other address).
    let carol = r1.add_session(SessionTable::Ppp, "carol", "100.64.1.1", "1d2h");
    let dave = r1.add_session(SessionTable::Hotspot, "dave", "100.64.1.2", "1d2h");
    r1.add_session(SessionTable::Ppp, "erin", "100.64.1.99", "10m");
    let frank = r2.add_session(SessionTable::Ppp, "frank", "100.64.2.1", "3w");
    f.enqueue("192.0.2.20", "carol", Some("100.64.1.1"));
    f.enqueue("192.0.2.20", "dave", Some("100.64.1.2"));
    f.enqueue("192.0.2.20", "erin", Some("100.64.1.3")); // reconnected meanwhile
    f.enqueue("192.0.2.21", "frank", None);
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(
        (r.due, r.done_dm, r.done_api, r.retry),
        (4, 0, 4, 0),
        "{r:?}"
    );
    for user in ["carol", "dave", "erin", "frank"] {
        let j = f.job(user);
        assert_eq!(
            (j.state, j.method),
            (JobState::Done, Some(Method::Api)),
            "{j:?}"
        );
    }
    let left: Vec<String> = r1.ids(SessionTable::Ppp);
    assert_eq!(left.len(), 1, "erin's new session stays: {left:?}");
    assert!(!left.contains(&carol));
    assert!(r1.ids(SessionTable::Hotspot).is_empty(), "{dave} removed");
    assert!(!r2.ids(SessionTable::Ppp).contains(&frank));
    assert_eq!(r1.counters().logins_ok, 1, "one login for three jobs");
    assert_eq!(r2.counters().logins_ok, 1);
    // The silent NAS got the first attempt and one retransmission.
    assert_eq!(silent.requests().len(), 2);
    assert_eq!(nak.requests().len(), 3);
}

#[test]
fn wrong_api_password_keeps_the_job_queued_with_the_reason() {
    let f = Fixture::new();
    let r1 = routeros();
    r1.add_session(SessionTable::Ppp, "gina", "100.64.3.1", "2d");
    f.admin
        .nas_upsert(&nas("192.0.2.30", None, Some((&r1, "wrong"))), NOW)
        .unwrap();
    f.enqueue("192.0.2.30", "gina", None);
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(r.retry, 1);
    let j = f.job("gina");
    assert_eq!(j.state, JobState::DmFailed);
    assert_eq!(j.attempts, 1);
    assert!(j.next_attempt_at > NOW, "backs off");
    let err = j.last_error.unwrap();
    assert!(err.starts_with("DM: "), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("wrong"), "the password is never shown: {err}");
    assert_eq!(r1.ids(SessionTable::Ppp).len(), 1);
    // Not due again before the backoff; due after it, and then fixed credentials work.
    assert_eq!(f.worker().pass(NOW + 1).unwrap().due, 0);
    f.admin
        .nas_upsert(&nas("192.0.2.30", None, Some((&r1, "secret"))), NOW)
        .unwrap();
    let r = f.worker().pass(j.next_attempt_at).unwrap();
    assert_eq!(r.done_api, 1);
    assert!(r1.ids(SessionTable::Ppp).is_empty());
}

#[test]
fn unknown_nas_without_secret_is_explained() {
    let f = Fixture::new();
    f.enqueue("127.0.0.7", "hank", None);
    f.worker().pass(NOW).unwrap();
    let j = f.job("hank");
    assert_eq!(j.state, JobState::DmFailed);
    let err = j.last_error.unwrap();
    assert!(
        err.contains("no network device (NAS) for 127.0.0.7"),
        "{err}"
    );
}

#[test]
fn learned_client_secret_is_used_when_the_nas_row_has_none() {
    let f = Fixture::new();
    let dm = NasDouble::start(bind("127.0.0.2"), b"from-clients-conf", Answer::Ack).unwrap();
    let mut n = nas("192.0.2.40", Some(&dm), None);
    n.secret = None;
    f.admin.nas_upsert(&n, NOW).unwrap();
    f.secrets.learn("192.0.2.40", "from-clients-conf");
    f.enqueue("192.0.2.40", "ivy", None);
    f.worker().pass(NOW).unwrap();
    assert_eq!(f.job("ivy").method, Some(Method::Dm));
    assert_eq!(dm.bad_requests(), 0);
}

#[test]
fn the_servers_client_list_signs_the_request_when_nothing_was_learned() {
    let f = Fixture::new();
    let dm = NasDouble::start(bind("127.0.0.2"), b"from-clients-conf", Answer::Ack).unwrap();
    let mut n = nas("192.0.2.41", Some(&dm), None);
    n.secret = None;
    f.admin.nas_upsert(&n, NOW).unwrap();
    f.enqueue("192.0.2.41", "jill", None);
    // Nothing learned (as after a restart): the lookup answers for the NAS IP.
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let lookup = ClientSecrets::with_lookup(Arc::new(move |ip: std::net::IpAddr| {
        log.lock().unwrap().push(ip.to_string());
        (ip.to_string() == "192.0.2.41").then(|| "from-clients-conf".to_string())
    }));
    let cfg = WorkerConfig {
        dm_timeout: Duration::from_millis(200),
        dm_retries: 1,
        ..WorkerConfig::new(&f.db)
    };
    let r = QueueWorker::new(cfg, lookup, Arc::clone(&f.stop))
        .pass(NOW)
        .unwrap();
    assert_eq!(r.done_dm, 1, "{r:?}");
    assert_eq!(f.job("jill").method, Some(Method::Dm));
    assert_eq!(dm.requests().len(), 1);
    assert_eq!(dm.bad_requests(), 0, "signed with the client list's secret");
    assert_eq!(asked.lock().unwrap().as_slice(), ["192.0.2.41"]);
}

#[test]
fn stopped_sessions_close_their_jobs_without_network() {
    let f = Fixture::new();
    let store = Store::open(&f.db, StoreOptions::default()).unwrap();
    let mut u = AcctUpdate {
        status: AcctStatus::Start,
        nas_ip: "192.0.2.50".into(),
        session_id: "sess-jack".into(),
        unique_id: None,
        username: "jack".into(),
        input_octets: 0,
        output_octets: 0,
        gigawords: false,
        session_time: Some(0),
        framed_ip: None,
        calling_station_id: None,
        nas_port: None,
        terminate_cause: None,
        event_time: NOW - 86_400,
    };
    store.record(u.clone()).unwrap();
    f.enqueue("192.0.2.50", "jack", None);
    u.status = AcctStatus::Stop;
    u.event_time = NOW;
    store.record(u).unwrap();
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!((r.closed_by_stop, r.due), (1, 0));
    let j = f.job("jack");
    assert_eq!((j.state, j.method), (JobState::Done, Some(Method::Stop)));
}

#[test]
fn a_stopping_worker_sends_nothing() {
    let f = Fixture::new();
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.60", Some(&dm), None), NOW)
        .unwrap();
    f.enqueue("192.0.2.60", "kim", None);
    f.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    f.worker().pass(NOW).unwrap();
    assert!(dm.requests().is_empty());
    assert_ne!(f.job("kim").state, JobState::Done);
}

#[test]
fn large_batches_are_drained_in_passes() {
    let f = Fixture::new();
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.70", Some(&dm), None), NOW)
        .unwrap();
    for i in 0..25 {
        f.enqueue("192.0.2.70", &format!("u{i}"), None);
    }
    let cfg = WorkerConfig {
        batch: 10,
        ..WorkerConfig::new(&f.db)
    };
    let mut w = QueueWorker::new(cfg, f.secrets.clone(), Arc::clone(&f.stop));
    let r = w.run_at(NOW).unwrap();
    assert_eq!((r.due, r.done_dm), (25, 25));
    assert!(f.admin.queue_due(NOW, 100).unwrap().is_empty());
}

fn bulk_nases() -> (RouterOsDouble, RouterOsDouble, Vec<NasConfig>) {
    let a = routeros();
    let b = RouterOsDouble::start_on(bind("127.0.0.4"), DoubleConfig::default()).unwrap();
    // Started before the boundary (10 min before NOW): uptime > 10m.
    a.add_session(SessionTable::Ppp, "p1", "100.64.5.1", "1d");
    a.add_session(SessionTable::Ppp, "p2", "100.64.5.2", "1w2d03:04:05");
    a.add_session(SessionTable::Ppp, "p3", "100.64.5.3", "00:05:00");
    a.add_session(SessionTable::Hotspot, "h1", "100.64.5.4", "11m");
    b.add_session(SessionTable::Hotspot, "h2", "100.64.6.1", "2h");
    b.add_session(SessionTable::Hotspot, "h3", "100.64.6.2", "9m59s");
    let mut none = NasConfig::new("192.0.2.99");
    none.name = Some("no-api".into());
    let nases = vec![
        nas("192.0.2.80", None, Some((&a, "secret"))),
        nas("192.0.2.81", None, Some((&b, "secret"))),
        none,
    ];
    (a, b, nases)
}

#[test]
fn bulk_dry_run_then_real_run() {
    let (a, b, nases) = bulk_nases();
    let boundary = NOW - 600;
    let mut opts = BulkOptions {
        now: NOW,
        boundary,
        dry_run: true,
        parallel: 4,
    };
    let seen = std::sync::Mutex::new(Vec::new());
    let dry = bulk::run(&nases, &opts, None, &|r| {
        seen.lock().unwrap().push(r.nas_ip.clone())
    });
    assert_eq!(seen.lock().unwrap().len(), 3, "progress for every NAS");
    assert_eq!((dry[0].seen, dry[0].selected, dry[0].removed), (4, 3, 0));
    let mut users: Vec<&str> = dry[0]
        .would_remove
        .iter()
        .map(|c| c.user.as_str())
        .collect();
    users.sort();
    assert_eq!(users, ["h1", "p1", "p2"]);
    assert_eq!((dry[1].seen, dry[1].selected), (2, 1));
    assert!(dry[2].skipped.as_deref().unwrap().contains("per-session"));
    assert_eq!(a.ids(SessionTable::Ppp).len(), 3, "dry run removes nothing");

    opts.dry_run = false;
    let real = bulk::run(&nases, &opts, None, &|_| {});
    assert_eq!(
        (real[0].selected, real[0].removed, real[0].failed),
        (3, 3, 0)
    );
    assert_eq!((real[1].selected, real[1].removed), (1, 1));
    assert!(real.iter().all(|r| !r.is_failure()), "{real:?}");
    assert_eq!(a.rows("/ppp/active").len(), 1);
    assert_eq!(a.rows("/ppp/active")[0]["name"], "p3");
    assert_eq!(b.rows("/ip/hotspot/active")[0]["user"], "h3");
    assert_eq!(a.counters().logins_ok, 2, "one login per run");
}

#[test]
fn bulk_reports_a_refused_login_per_nas() {
    let (a, _b, mut nases) = bulk_nases();
    nases[0].api_password = Some("wrong".into());
    let opts = BulkOptions {
        now: NOW,
        boundary: NOW - 600,
        dry_run: false,
        parallel: 4,
    };
    let r = bulk::run(&nases, &opts, None, &|_| {});
    assert!(r[0].is_failure());
    assert!(r[0].error.as_deref().unwrap().contains("refused"));
    assert!(!r[1].is_failure(), "the other NAS is not affected");
    assert_eq!(a.ids(SessionTable::Ppp).len(), 3);
}

#[test]
fn automatic_bulk_runs_once_per_month_after_the_delay() {
    let f = Fixture::new();
    let (a, _b, nases) = bulk_nases();
    for n in &nases {
        f.admin.nas_upsert(n, NOW).unwrap();
    }
    let month_start = NOW - 600;
    let mut auto = AutoBulk::new(f.db.clone(), chrono_tz::UTC, 900, Arc::clone(&f.stop));
    assert!(
        auto.run_at(NOW).unwrap().is_empty(),
        "before month start + 15m"
    );
    let results = auto.run_at(month_start + 900).unwrap();
    assert_eq!(
        results.len(),
        2,
        "the NAS without API is not run: {results:?}"
    );
    // Relative to the run's own now (month start + 15m), p1 and p2 started before the
    // month; p3 (5m) and h1 (11m) started in it.
    assert_eq!(a.ids(SessionTable::Ppp).len(), 1);
    assert_eq!(a.ids(SessionTable::Hotspot).len(), 1);
    let runs = f.admin.bulk_runs("192.0.2.80").unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].seen, runs[0].removed), (4, 2));
    assert!(
        auto.run_at(month_start + 3600).unwrap().is_empty(),
        "once a month"
    );
    // Next month it is due again.
    let next = month_start + 30 * 86_400 + 1000;
    assert_eq!(auto.run_at(next).unwrap().len(), 2);
}

#[test]
fn a_silent_nas_is_probed_and_the_rest_goes_straight_to_the_api() {
    let f = Fixture::new();
    let silent = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Silent).unwrap();
    let ack = NasDouble::start(bind("127.0.0.4"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let r1 = routeros();
    f.admin
        .nas_upsert(
            &nas("192.0.2.90", Some(&silent), Some((&r1, "secret"))),
            NOW,
        )
        .unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.91", Some(&ack), None), NOW)
        .unwrap();
    for i in 0..10 {
        let user = format!("s{i}");
        r1.add_session(SessionTable::Ppp, &user, "100.64.9.1", "2d");
        f.enqueue("192.0.2.90", &user, None);
        f.enqueue("192.0.2.91", &format!("a{i}"), None);
    }
    let t0 = std::time::Instant::now();
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(
        (r.due, r.done_dm, r.done_api, r.retry),
        (20, 10, 10, 0),
        "{r:?}"
    );
    // 4 probes, each sent twice (dm_retries = 1); the other 6 jobs were not sent.
    assert_eq!(silent.requests().len(), 8);
    assert_eq!(
        ack.requests().len(),
        10,
        "an answering NAS gets all its requests"
    );
    assert!(r1.ids(SessionTable::Ppp).is_empty());
    let by_api = f
        .admin
        .queue_list(None)
        .unwrap()
        .into_iter()
        .filter(|j| j.method == Some(Method::Api))
        .count();
    assert_eq!(by_api, 10);
    // Two timeout rounds of the probe (200 ms each) plus the API, not 10 x 2 rounds.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn a_silent_nas_is_probed_once_per_run_across_passes() {
    let f = Fixture::new();
    let silent = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Silent).unwrap();
    let r1 = routeros();
    f.admin
        .nas_upsert(
            &nas("192.0.2.92", Some(&silent), Some((&r1, "secret"))),
            NOW,
        )
        .unwrap();
    for i in 0..12 {
        f.enqueue("192.0.2.92", &format!("m{i}"), None);
    }
    let cfg = WorkerConfig {
        dm_timeout: Duration::from_millis(200),
        dm_retries: 0,
        batch: 5,
        ..WorkerConfig::new(&f.db)
    };
    let mut w = QueueWorker::new(cfg, f.secrets.clone(), Arc::clone(&f.stop));
    let r = w.run_at(NOW).unwrap();
    assert_eq!((r.due, r.done_api), (12, 12), "{r:?}");
    assert_eq!(silent.requests().len(), 4, "probed in the first pass only");
}

#[test]
fn the_api_fallback_prints_each_table_once_per_nas_and_removes_with_multi_id_commands() {
    let f = Fixture::new();
    let r1 = routeros();
    f.admin
        .nas_upsert(&nas("192.0.2.93", None, Some((&r1, "secret"))), NOW)
        .unwrap();
    for i in 0..30 {
        let user = format!("p{i}");
        let table = if i % 5 == 0 {
            SessionTable::Hotspot
        } else {
            SessionTable::Ppp
        };
        r1.add_session(table, &user, &format!("100.64.10.{i}"), "2d");
        f.enqueue("192.0.2.93", &user, Some(&format!("100.64.10.{i}")));
    }
    r1.add_session(SessionTable::Ppp, "stays", "100.64.10.99", "2d");
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!((r.due, r.done_api, r.retry), (30, 30, 0), "{r:?}");
    let c = r1.counters();
    assert_eq!(c.logins_ok, 1);
    assert_eq!(
        c.prints, 2,
        "one print per table, not one per job and table"
    );
    assert_eq!(c.remove_commands, 2, "one multi-id remove per table");
    assert_eq!(c.removed_ids, 30);
    assert_eq!(r1.rows("/ppp/active").len(), 1);
    assert_eq!(r1.rows("/ppp/active")[0]["name"], "stays");
}

#[test]
fn a_nas_whose_api_never_answers_holds_up_no_other_nas() {
    let f = Fixture::new();
    // 192.0.2.94: no RFC 5176 answer, and an API that accepts the connection and then
    // says nothing until its timeout. 192.0.2.95 ACKs.
    let mute = RouterOsDouble::start_on(
        bind("127.0.0.3"),
        DoubleConfig {
            faults: Faults {
                silent: true,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .unwrap();
    let ack = NasDouble::start(bind("127.0.0.4"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let mut slow = nas("192.0.2.94", None, Some((&mute, "secret")));
    slow.api_timeout_ms = 3000;
    f.admin.nas_upsert(&slow, NOW).unwrap();
    f.admin
        .nas_upsert(&nas("192.0.2.95", Some(&ack), None), NOW)
        .unwrap();
    f.enqueue("192.0.2.94", "stuck", None);
    f.enqueue("192.0.2.95", "quick", None);
    let mut w = f.worker();
    std::thread::scope(|s| {
        let run = s.spawn(move || w.run_at(NOW).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while f.job("quick").state != JobState::Done {
            assert!(std::time::Instant::now() < deadline, "quick never done");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Recorded while the other NAS's API is still being waited for.
        assert_eq!(f.job("stuck").state, JobState::Pending);
        let r = run.join().unwrap();
        assert_eq!((r.due, r.done_dm, r.retry), (2, 1, 1), "{r:?}");
    });
    let stuck = f.job("stuck");
    assert_eq!(stuck.state, JobState::DmFailed);
    assert!(
        stuck.last_error.as_deref().unwrap().contains("timed out"),
        "{stuck:?}"
    );
}

#[test]
fn a_refused_api_login_is_tried_once_per_run() {
    let f = Fixture::new();
    let r1 = routeros();
    f.admin
        .nas_upsert(&nas("192.0.2.96", None, Some((&r1, "wrong"))), NOW)
        .unwrap();
    for i in 0..12 {
        f.enqueue("192.0.2.96", &format!("r{i}"), None);
    }
    let cfg = WorkerConfig {
        dm_timeout: Duration::from_millis(200),
        dm_retries: 0,
        batch: 5,
        ..WorkerConfig::new(&f.db)
    };
    let mut w = QueueWorker::new(cfg, f.secrets.clone(), Arc::clone(&f.stop));
    let r = w.run_at(NOW).unwrap();
    assert_eq!((r.due, r.retry), (12, 12), "{r:?}");
    assert_eq!(
        r1.counters().logins_failed,
        1,
        "one login for the three passes"
    );
    assert!(f.admin.queue_list(None).unwrap().iter().all(|j| j
        .last_error
        .as_deref()
        .unwrap()
        .contains("refused")));
}

/// A job that keeps failing is not retried forever: at its last attempt it is
/// given up (failed, with why), and `queue retry` starts it over.
#[test]
fn a_job_that_keeps_failing_is_given_up_after_its_last_attempt() {
    let f = Fixture::new();
    let r1 = routeros();
    f.admin
        .nas_upsert(&nas("192.0.2.31", None, Some((&r1, "wrong"))), NOW)
        .unwrap();
    f.enqueue("192.0.2.31", "hank", None);
    // As after MAX_ATTEMPTS - 1 failed passes.
    rusqlite::Connection::open(&f.db)
        .unwrap()
        .execute(
            "UPDATE disconnect_queue SET attempts = ?1",
            [rlm_rust::disconnect::MAX_ATTEMPTS - 1],
        )
        .unwrap();
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!((r.retry, r.given_up), (0, 1));
    let j = f.job("hank");
    assert_eq!(j.state, JobState::Failed);
    assert_eq!(j.attempts, rlm_rust::disconnect::MAX_ATTEMPTS);
    let err = j.last_error.unwrap();
    assert!(
        err.contains("refused") && err.contains("given up after"),
        "{err}"
    );
    assert_eq!(
        f.worker().pass(NOW + 86_400).unwrap().due,
        0,
        "no longer due"
    );
    f.admin
        .queue_retry(rlm_rust::store::RetryTarget::Id(j.id), NOW)
        .unwrap();
    let r = f.worker().pass(NOW).unwrap();
    assert_eq!(
        (r.due, r.retry),
        (1, 1),
        "an operator's retry starts it over"
    );
}
