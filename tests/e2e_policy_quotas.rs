//! Policy quotas end to end: the real freeradius with the module, policies assigned
//! with the CLI, radclient packets, a NAS double on loopback for the
//! Disconnect-Request.
//!
//! Days are driven by the server's packet times: libfaketime sets the server's clock
//! (the module takes a request's time from the server), not the module's own clock
//! calls (the background thread runs on real time, see e2e_disconnect.rs). So the
//! fake days are in the past, and "the next day" is a restart with FAKETIME a day
//! later.
mod common;
use common::*;
use std::time::Duration;

use rlm_rust::radius::attrs;
use rlm_rust::radius::double::{Answer, NasDouble};

const MIB: u64 = 1 << 20;
const WAIT: Duration = Duration::from_secs(20);

/// `days_ago` days before today (UTC), at 12:00, as libfaketime takes it.
fn noon(days_ago: i64) -> String {
    let today = chrono::Utc::now().date_naive();
    (today - chrono::Duration::days(days_ago))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn reply_value(r: &Reply, attr: &str) -> Option<String> {
    r.output
        .lines()
        .skip_while(|l| !l.starts_with("Received "))
        .find_map(|l| {
            let (name, value) = l.trim().split_once(" = ")?;
            (name == attr).then(|| value.trim().trim_matches('"').to_string())
        })
}

fn jobs(s: &Server) -> Vec<serde_json::Value> {
    s.cli_json(&["queue", "list"])["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_daily_traffic_quota_cuts_the_session_refuses_today_and_lets_in_tomorrow() {
    let nas = "127.0.0.2";
    let dm = NasDouble::start(
        format!("{nas}:0").parse().unwrap(),
        SECRET.as_bytes(),
        Answer::Ack,
    )
    .unwrap();
    let mut s = Server::start(Options {
        users: "quser\tCleartext-Password := \"pw\"\n".into(),
        timezone: Some("UTC".into()),
        stale_after: Some("0".into()),
        background_interval: Some("1s".into()),
        fake_time: Some(noon(3)),
        raddb_env: vec![
            ("BULK_DISCONNECT".into(), "no".into()),
            ("DM_TIMEOUT".into(), "1s".into()),
            ("DM_RETRIES".into(), "0".into()),
        ],
        ..Default::default()
    });
    let port = dm.addr().port().to_string();
    s.cli_ok(&["nas", "add", nas, "--name", "nas1", "--coa-port", &port]);
    s.cli_ok(&["policy", "add", "q", "--daily-traffic", "10"]);
    s.cli_ok(&["user", "policy", "quser", "q"]);

    let r = s.auth("quser", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    let acct = |status: &str, octets: u64, secs: u32| {
        let r = s.acct(&acct_attrs(
            status,
            "quser",
            "q1",
            nas,
            octets / 2,
            octets / 2,
            secs,
        ));
        assert!(r.ok, "no Accounting-Response: {}", r.output);
    };
    acct("Start", 0, 0);
    acct("Interim-Update", 6 * MIB, 60);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(jobs(&s).is_empty(), "under the quota: {:?}", jobs(&s));
    assert!(dm.requests().is_empty());

    // The Interim that crosses 10 MB today: one job, one Disconnect-Request.
    acct("Interim-Update", 11 * MIB, 120);
    wait_until("the Disconnect-Request", WAIT, || !dm.requests().is_empty());
    let req = &dm.requests()[0];
    assert_eq!(req.text(attrs::USER_NAME).as_deref(), Some("quser"));
    assert_eq!(req.text(attrs::ACCT_SESSION_ID).as_deref(), Some("q1"));
    let j = jobs(&s);
    assert_eq!(j.len(), 1, "{j:?}");
    let reason = j[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("policy quota: daily traffic 11534336 bytes used of 10485760"),
        "{reason}"
    );
    assert!(
        s.log_text().contains("reached a policy quota"),
        "{}",
        s.log_text()
    );
    // Another Interim of the same session: still the one job.
    acct("Interim-Update", 12 * MIB, 180);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(jobs(&s).len(), 1);
    assert_eq!(dm.requests().len(), 1);

    // Refused for the rest of the day, saying why.
    let r = s.auth("quser", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(
        reply_value(&r, "Reply-Message").as_deref(),
        Some("Daily traffic limit reached"),
        "{}",
        r.output
    );

    // The next day: let in again, the day's usage starts from zero.
    s.restart(Some(noon(2)));
    let r = s.auth("quser", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    // The usage stays with the day it was used on.
    let usage = s.cli_json(&["usage", "quser"]);
    let text = usage.to_string();
    assert!(text.contains(&noon(3)[..10]), "{text}");
    // And an Interim of the new day under the quota queues nothing more.
    let r = s.acct(&acct_attrs(
        "Interim-Update",
        "quser",
        "q2",
        nas,
        MIB,
        MIB,
        60,
    ));
    assert!(r.ok);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(jobs(&s).len(), 1);
}

#[test]
fn a_daily_time_quota_bounds_session_timeout_and_ends_the_session() {
    let nas = "127.0.0.4";
    let dm = NasDouble::start(
        format!("{nas}:0").parse().unwrap(),
        SECRET.as_bytes(),
        Answer::Ack,
    )
    .unwrap();
    let s = Server::start(Options {
        users: "tuser\tCleartext-Password := \"pw\"\n\tSession-Timeout := 7200\n".into(),
        timezone: Some("UTC".into()),
        stale_after: Some("0".into()),
        background_interval: Some("1s".into()),
        fake_time: Some(noon(1)),
        raddb_env: vec![
            ("BULK_DISCONNECT".into(), "no".into()),
            ("DM_TIMEOUT".into(), "1s".into()),
            ("DM_RETRIES".into(), "0".into()),
        ],
        ..Default::default()
    });
    let port = dm.addr().port().to_string();
    s.cli_ok(&["nas", "add", nas, "--name", "nas2", "--coa-port", &port]);
    s.cli_ok(&["policy", "add", "t", "--daily-time", "60"]);
    s.cli_ok(&["user", "policy", "tuser", "t"]);
    let timeout = |r: &Reply| -> Vec<String> {
        r.output
            .lines()
            .skip_while(|l| !l.starts_with("Received "))
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("Session-Timeout = ")
                    .map(str::to_string)
            })
            .collect()
    };
    // Nothing used yet: the hour, below the users file's two.
    let r = s.auth("tuser", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(timeout(&r), ["3600"], "{}", r.output);
    // 20 minutes used today: 40 left, and exactly one Session-Timeout.
    assert!(s.acct(&acct_attrs("Start", "tuser", "t1", nas, 0, 0, 0)).ok);
    assert!(
        s.acct(&acct_attrs(
            "Interim-Update",
            "tuser",
            "t1",
            nas,
            1,
            1,
            1200
        ))
        .ok
    );
    let r = s.auth("tuser", "pw", "");
    assert_eq!(timeout(&r), ["2400"], "{}", r.output);
    // The Interim at the hour: the session is cut, the next login refused.
    assert!(
        s.acct(&acct_attrs(
            "Interim-Update",
            "tuser",
            "t1",
            nas,
            2,
            2,
            3600
        ))
        .ok
    );
    wait_until("the Disconnect-Request", WAIT, || !dm.requests().is_empty());
    let j = jobs(&s);
    assert_eq!(j.len(), 1, "{j:?}");
    assert!(
        j[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("policy quota: daily time 3600 s used of 3600 s"),
        "{j:?}"
    );
    let r = s.auth("tuser", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(
        reply_value(&r, "Reply-Message").as_deref(),
        Some("Daily time limit reached")
    );
}
