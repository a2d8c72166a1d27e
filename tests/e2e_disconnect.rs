//! End to end: month-boundary disconnects through the real freeradius with the module.
//! The server's clock is put just after a month start (libfaketime), so the packets'
//! receive times are there; radclient sends an Interim for a session that started last
//! month; the NAS is played by in-process doubles on their own loopback addresses:
//! RFC 5176 (UDP, 127.0.0.2 / .4) and the RouterOS API (TCP, 127.0.0.3 / .5).
//!
//! libfaketime does not reach the module's own clock calls inside freeradius (observed:
//! the server's times are faked, the module's are real), so the background thread runs
//! on real time: the fake time is chosen in the past (the start of the current month,
//! or of the previous one in a month's first hour), stale closing is off, and the
//! automatic bulk test uses uptimes that are before any month start or clearly after.
mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use rlm_rust::radius::attrs;
use rlm_rust::radius::double::{Answer, NasDouble};
use rlm_rust::routeros::double::{DoubleConfig, RouterOsDouble};
use rlm_rust::routeros::SessionTable;
use serde_json::Value;

/// One minute after a month boundary (UTC), not after the real now.
fn after_boundary() -> String {
    let now = chrono::Utc::now().timestamp();
    let start = rlm_rust::periods::month_start(now - 3600, chrono_tz::UTC) + 60;
    chrono::DateTime::from_timestamp(start, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
const WAIT: Duration = Duration::from_secs(20);

fn bind(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

fn server(background_interval: &str, env: &[(&str, &str)]) -> Server {
    let mut raddb_env: Vec<(String, String)> = vec![
        ("BULK_DISCONNECT".into(), "no".into()),
        ("DM_TIMEOUT".into(), "1s".into()),
        ("DM_RETRIES".into(), "0".into()),
    ];
    let fake_time = Some(after_boundary());
    raddb_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Server::start(Options {
        timezone: Some("UTC".into()),
        background_interval: Some(background_interval.into()),
        stale_after: Some("0".into()),
        fake_time,
        raddb_env,
        ..Default::default()
    })
}

/// `nas add` for a NAS whose RFC 5176 target is `dm` and API (if any) is `api`.
fn add_nas(s: &Server, nas_ip: &str, dm: SocketAddr, api: Option<(&RouterOsDouble, &str)>) {
    let port = dm.port().to_string();
    let host = dm.ip().to_string();
    let mut args = vec![
        "nas",
        "add",
        nas_ip,
        "--name",
        nas_ip,
        "--coa-host",
        &host,
        "--coa-port",
        &port,
    ];
    let (api_host, api_port);
    if let Some((r, password)) = api {
        api_host = r.addr().ip().to_string();
        api_port = r.port().to_string();
        args.extend([
            "--api-host",
            &api_host,
            "--api-port",
            &api_port,
            "--api-user",
            "admin",
            "--api-password",
            password,
            "--api-timeout-ms",
            "2000",
        ]);
    }
    s.cli_ok(&args);
}

/// An Interim for a session running for 2 hours: started on October 31.
fn interim(s: &Server, user: &str, nas_ip: &str) {
    let r = s.acct(&acct_attrs(
        "Interim-Update",
        user,
        &format!("sess-{user}"),
        nas_ip,
        1000,
        2000,
        7200,
    ));
    assert!(r.ok, "no Accounting-Response: {}", r.output);
}

fn jobs(s: &Server) -> Vec<Value> {
    s.cli_json(&["queue", "list"])["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn job_of(s: &Server, user: &str) -> Option<Value> {
    jobs(s).into_iter().find(|j| j["username"] == user)
}

fn wait_job(s: &Server, user: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(j) = job_of(s, user).filter(|j| f(j)) {
            return j;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}; jobs: {:#?}\nserver log:\n{}",
                jobs(s),
                s.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn done_by(method: &'static str) -> impl Fn(&Value) -> bool {
    move |j| j["state"] == "done" && j["method"] == method
}

#[test]
fn ack_finishes_the_job_with_the_client_secret_and_one_job_per_session() {
    // The NAS row has no secret: the client's from clients.conf is used.
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let s = server("1s", &[]);
    add_nas(&s, "127.0.0.2", dm.addr(), None);
    interim(&s, "alice", "127.0.0.2");
    let j = wait_job(&s, "alice", "job done by DM", done_by("dm"));
    assert_eq!(j["reason"], "month boundary");
    assert_eq!(j["acct_session_id"], "sess-alice");
    let reqs = dm.requests();
    assert_eq!(reqs.len(), 1, "one Disconnect-Request");
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
    assert_eq!(dm.bad_requests(), 0, "signed with the clients.conf secret");
    // More interims of the same session: still one job, no new request.
    interim(&s, "alice", "127.0.0.2");
    interim(&s, "alice", "127.0.0.2");
    assert_eq!(jobs(&s).len(), 1);
    // A session of this month is not disconnected.
    let r = s.acct(&acct_attrs(
        "Interim-Update",
        "bob",
        "sess-bob",
        "127.0.0.2",
        1,
        1,
        60,
    ));
    assert!(r.ok);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(jobs(&s).len(), 1);
    assert_eq!(dm.requests().len(), 1);
}

#[test]
fn nak_and_silence_fall_back_to_the_routeros_api() {
    let nak =
        NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(Some(506))).unwrap();
    let silent = NasDouble::start(bind("127.0.0.4"), SECRET.as_bytes(), Answer::Silent).unwrap();
    let api1 = RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap();
    let api2 = RouterOsDouble::start_on(bind("127.0.0.5"), DoubleConfig::default()).unwrap();
    api1.add_session(SessionTable::Ppp, "carol", "100.64.0.10", "2h");
    api1.add_session(SessionTable::Ppp, "other", "100.64.0.11", "2h");
    api2.add_session(SessionTable::Hotspot, "dave", "100.64.0.10", "02:00:10");
    let s = server("1s", &[]);
    add_nas(&s, "127.0.0.2", nak.addr(), Some((&api1, "secret")));
    add_nas(&s, "127.0.0.4", silent.addr(), Some((&api2, "secret")));
    interim(&s, "carol", "127.0.0.2");
    interim(&s, "dave", "127.0.0.4");
    wait_job(&s, "carol", "carol done by API", done_by("api"));
    wait_job(&s, "dave", "dave done by API", done_by("api"));
    let ppp: Vec<String> = api1
        .rows("/ppp/active")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(ppp, ["other"], "only carol's session removed");
    assert!(api2.ids(SessionTable::Hotspot).is_empty());
    assert_eq!(nak.requests().len(), 1);
    assert_eq!(silent.requests().len(), 1, "dm_retries = 0");
}

#[test]
fn a_nak_without_api_is_unconfirmed_and_the_next_interim_queues_it_again() {
    let dm =
        NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(Some(503))).unwrap();
    let s = server("1s", &[]);
    add_nas(&s, "127.0.0.2", dm.addr(), None);
    interim(&s, "gwen", "127.0.0.2");
    let j = wait_job(&s, "gwen", "an unconfirmed job", |j| {
        j["state"] == "unconfirmed"
    });
    assert_eq!(j["attempts"], 1);
    assert_eq!(j["error_cause"], 503);
    assert!(j["method"].is_null(), "{j}");
    let table = s.cli_ok(&["queue", "list", "--state", "unconfirmed"]);
    assert!(
        table.contains("gwen") && table.contains("next interim") && table.contains("not confirmed"),
        "{table}"
    );
    // Not sent again by itself.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(dm.requests().len(), 1);
    // The session is still up: its next Interim queues it again, and it is sent again.
    interim(&s, "gwen", "127.0.0.2");
    let j = wait_job(&s, "gwen", "a second attempt", |j| {
        j["attempts"] == 2 && j["state"] == "unconfirmed"
    });
    assert_eq!(j["reason"], "month boundary");
    assert_eq!(dm.requests().len(), 2);
    assert_eq!(jobs(&s).len(), 1, "still one job for the session");
    // An operator can re-arm it as well (attempts start again from 0).
    let v = s.cli_json(&["queue", "retry", "--all-failed"]);
    assert_eq!(v["retried"], 1);
    wait_job(&s, "gwen", "a third request", |j| {
        j["state"] == "unconfirmed" && dm.requests().len() == 3
    });
}

#[test]
fn a_nak_is_checked_over_the_routeros_api() {
    // NAK without Error-Cause: the box that got it has no such session; the router does.
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Nak(None)).unwrap();
    let api = RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap();
    api.add_session(SessionTable::Ppp, "hugo", "100.64.0.10", "2h");
    api.add_session(SessionTable::Ppp, "other", "100.64.0.11", "2h");
    let s = server("1s", &[]);
    add_nas(&s, "127.0.0.2", dm.addr(), Some((&api, "secret")));
    interim(&s, "hugo", "127.0.0.2");
    wait_job(&s, "hugo", "hugo done by API", done_by("api"));
    let ppp: Vec<String> = api
        .rows("/ppp/active")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(ppp, ["other"]);
    assert_eq!(dm.requests().len(), 1);
}

#[test]
fn wrong_api_password_leaves_the_job_queued_with_the_reason() {
    // Nothing answers RFC 5176 at 127.0.0.6; the API refuses the password.
    let api = RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap();
    api.add_session(SessionTable::Ppp, "erin", "100.64.0.10", "2h");
    let s = server("1s", &[]);
    let nowhere: SocketAddr = format!("127.0.0.6:{}", free_udp_port()).parse().unwrap();
    add_nas(&s, "127.0.0.6", nowhere, Some((&api, "wrong-password")));
    interim(&s, "erin", "127.0.0.6");
    let j = wait_job(&s, "erin", "a failed attempt", |j| j["attempts"] == 1);
    assert_eq!(j["state"], "dm-failed");
    let err = j["last_error"].as_str().unwrap();
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    let table = s.cli_ok(&["queue", "list"]);
    assert!(
        table.contains("erin") && table.contains("refused"),
        "{table}"
    );
    assert!(!table.contains("wrong-password"));
    assert_eq!(api.ids(SessionTable::Ppp).len(), 1, "session still there");
    assert!(api.counters().logins_failed >= 1);
}

#[test]
fn a_queued_job_survives_a_restart_and_is_signed_with_the_clients_conf_secret() {
    // The NAS row has no secret; the double expects the clients.conf one.
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    // The worker's first run is an hour away: the job stays queued.
    let mut s = server("1h", &[]);
    add_nas(&s, "127.0.0.2", dm.addr(), None);
    interim(&s, "frank", "127.0.0.2");
    let j = job_of(&s, "frank").expect("queued in the accounting commit");
    assert_eq!(j["state"], "pending");
    s.stop();
    let module = s.raddb.join("mods-available/rust");
    let conf = std::fs::read_to_string(&module).unwrap();
    assert!(conf.contains("background_interval = 1h"));
    std::fs::write(
        &module,
        conf.replace("background_interval = 1h", "background_interval = 1s"),
    )
    .unwrap();
    // No request from the NAS after the restart: the secret comes from the server's
    // client list.
    s.restart(Some(after_boundary()));
    let j = wait_job(&s, "frank", "job done after restart", |j| {
        j["state"] == "done" || j["attempts"] != 0
    });
    assert_eq!(j["method"], "dm", "{j}");
    assert_eq!(dm.requests().len(), 1);
    assert_eq!(dm.bad_requests(), 0, "signed with the clients.conf secret");
    assert!(!s.log_text().contains(SECRET), "the secret is never logged");
}

#[test]
fn automatic_bulk_disconnect_runs_after_the_month_starts() {
    let api = RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap();
    // 5 and 6 weeks: before the month start whenever this runs; 3 s: after it.
    api.add_session(SessionTable::Ppp, "old1", "100.64.1.1", "5w");
    api.add_session(SessionTable::Hotspot, "old2", "100.64.1.2", "6w00:00:00");
    api.add_session(SessionTable::Ppp, "new1", "100.64.1.3", "3s");
    let nowhere: SocketAddr = format!("127.0.0.6:{}", free_udp_port()).parse().unwrap();
    let s = server(
        "1s",
        &[("BULK_DISCONNECT", "yes"), ("BULK_DISCONNECT_DELAY", "0")],
    );
    add_nas(&s, "127.0.0.6", nowhere, Some((&api, "secret")));
    wait_until("bulk run", WAIT, || {
        s.sql()
            .query_row("SELECT count(*) FROM bulk_runs", [], |r| r.get::<_, i64>(0))
            .unwrap_or(0)
            > 0
    });
    let (seen, removed, error): (i64, i64, Option<String>) = s
        .sql()
        .query_row(
            "SELECT seen, removed, error FROM bulk_runs WHERE nas_ip = '127.0.0.6'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((seen, removed, error), (3, 2, None));
    let left: Vec<String> = api
        .rows("/ppp/active")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(left, ["new1"]);
    assert!(api.ids(SessionTable::Hotspot).is_empty());
    // Once a month: later ticks do not log in again.
    let logins = api.counters().logins_ok;
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(api.counters().logins_ok, logins);
}

#[test]
fn bulk_disconnect_cli_dry_run_real_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("rlm.sqlite");
    let a = RouterOsDouble::start_on(bind("127.0.0.3"), DoubleConfig::default()).unwrap();
    let b = RouterOsDouble::start_on(bind("127.0.0.4"), DoubleConfig::default()).unwrap();
    // 10 weeks: surely before this month; 5 s: surely in it.
    a.add_session(SessionTable::Ppp, "a-old", "100.64.2.1", "10w");
    a.add_session(SessionTable::Hotspot, "a-old2", "100.64.2.2", "10w1d");
    a.add_session(SessionTable::Ppp, "a-new", "100.64.2.3", "5s");
    b.add_session(SessionTable::Ppp, "b-old", "100.64.3.1", "1000:00:00");
    let run = |args: &[&str]| cli::run(&db, "UTC", args, "");
    for (ip, d) in [("192.0.2.31", &a), ("192.0.2.32", &b)] {
        let port = d.port().to_string();
        let host = d.addr().ip().to_string();
        cli::stdout(&run(&[
            "nas",
            "add",
            ip,
            "--name",
            ip,
            "--api-host",
            &host,
            "--api-port",
            &port,
            "--api-user",
            "admin",
            "--api-password",
            "secret",
        ]));
    }
    cli::stdout(&run(&["nas", "add", "192.0.2.33", "--name", "no-api"]));

    let dry = cli::json(&run(&["--json", "bulk-disconnect", "--all", "--dry-run"]));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["failed_nases"], 0);
    let nases = dry["nases"].as_array().unwrap();
    assert_eq!(nases.len(), 3);
    let first = &nases[0];
    assert_eq!(
        (first["seen"].as_u64(), first["selected"].as_u64()),
        (Some(3), Some(2))
    );
    let mut users: Vec<&str> = first["would_remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    users.sort();
    assert_eq!(users, ["a-old", "a-old2"]);
    assert!(nases[2]["skipped"]
        .as_str()
        .unwrap()
        .contains("per-session"));
    assert_eq!(a.ids(SessionTable::Ppp).len(), 2, "dry run removes nothing");

    let human = cli::stdout(&run(&[
        "bulk-disconnect",
        "--nas",
        "192.0.2.32",
        "--dry-run",
    ]));
    assert!(
        human.contains("would remove") && human.contains("b-old"),
        "{human}"
    );

    let real = cli::json(&run(&["--json", "bulk-disconnect", "--all"]));
    assert_eq!(real["dry_run"], false);
    let nases = real["nases"].as_array().unwrap();
    assert_eq!(nases[0]["removed"], 2);
    assert_eq!(nases[1]["removed"], 1);
    assert!(nases[0]["error"].is_null());
    assert_eq!(a.rows("/ppp/active")[0]["name"], "a-new");
    assert!(a.ids(SessionTable::Hotspot).is_empty());
    assert!(b.ids(SessionTable::Ppp).is_empty());
    let runs: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM bulk_runs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(runs, 2, "one row per NAS worked on, none for the skipped");

    // A NAS that refuses the login: its row says why, and the exit code is 1.
    cli::stdout(&run(&["nas", "set", "192.0.2.31", "--api-password", "bad"]));
    let out = run(&[
        "bulk-disconnect",
        "--nas",
        "192.0.2.31",
        "--before",
        "2026-01-01",
    ]);
    cli::fails_with(&out, "1 of 1 NAS(es) failed");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("FAILED") && table.contains("refused"),
        "{table}"
    );
    assert!(!table.contains("bad"), "{table}");
    cli::fails_with(&run(&["bulk-disconnect", "--nas", "nope"]), "no NAS");
}
