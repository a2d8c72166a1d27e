//! Capping end to end: the real freeRADIUS with the module, radclient packets, the
//! CLI for topups and limits.
mod common;

use common::{acct_attrs, wait_until, Options, Server, SECRET};
use rlm_rust::radius::double::{Answer, NasDouble};
use std::time::Duration;

const MIB: u64 = 1024 * 1024;

/// The period value unlang sees, on Filter-Id of every Access-Accept.
const XLAT_ECHO: &str = "\tupdate reply {\n\t\tFilter-Id := \"%{rust:state}/%{rust:remaining_traffic}/%{rust:traffic_used}\"\n\t}";

/// The reply's one value of `attr`; more than one instance fails the test (RFC 2865
/// allows one Session-Timeout, and a NAS reads whichever it likes).
fn reply_int(r: &common::Reply, attr: &str) -> Option<u64> {
    // radclient -x prints received attributes as "\tName = value".
    let values: Vec<u64> = r
        .output
        .lines()
        .skip_while(|l| !l.starts_with("Received "))
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(" = ")?;
            (name == attr).then(|| value.trim().parse().ok())?
        })
        .collect();
    assert!(
        values.len() <= 1,
        "{attr} {} times: {}",
        values.len(),
        r.output
    );
    values.first().copied()
}

fn next_month_date(server: &Server) -> String {
    let q = server.cli_json(&["limits", "capped"]);
    let end = q["period"]["end"].as_i64().unwrap();
    chrono::DateTime::from_timestamp(end + 40 * 86_400, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string()
}

#[test]
fn a_500_mb_user_is_capped_at_login_and_mid_session_and_a_topup_readmits() {
    let server = Server::start(Options {
        users: "capped\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"500\", \
                Rust-Capping-Uptime-Limit := \"120\"\n\
                short\tCleartext-Password := \"pw\", Rust-Capping-Uptime-Limit := \"120\"\n\
                \tSession-Timeout := 600\n\
                free\tCleartext-Password := \"pw\"\n"
            .into(),
        capping: "\t\tmikrotik = yes".into(),
        post_auth_unlang: XLAT_ECHO.into(),
        background_interval: Some("1s".into()),
        ..Default::default()
    });
    // The NAS (loopback only), answering Disconnect-Requests on a free port.
    let nas = "127.0.0.2";
    let dm = NasDouble::start(
        format!("{nas}:0").parse().unwrap(),
        SECRET.as_bytes(),
        Answer::Ack,
    )
    .unwrap();
    let port = dm.addr().port().to_string();
    server.cli_ok(&["nas", "add", nas, "--name", "nas1", "--coa-port", &port]);

    // Login: the whole allowance, Session-Timeout in seconds, 500 MB as Mikrotik limit.
    let r = server.auth("capped", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(
        reply_int(&r, "Session-Timeout"),
        Some(120 * 60),
        "{}",
        r.output
    );
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(500 * MIB),
        "{}",
        r.output
    );
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit-Gigawords"),
        Some(0),
        "{}",
        r.output
    );
    assert!(r.has(&format!("allowed/{}/0", 500 * MIB)), "{}", r.output);

    // A smaller Session-Timeout from the users file stays; no traffic limit, no Mikrotik attrs.
    let r = server.auth("short", "pw", "");
    assert_eq!(reply_int(&r, "Session-Timeout"), Some(600), "{}", r.output);
    assert_eq!(reply_int(&r, "Mikrotik-Total-Limit"), None, "{}", r.output);
    // Unlimited: nothing added, the xlat still answers (empty remaining).
    let r = server.auth("free", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"));
    assert_eq!(reply_int(&r, "Session-Timeout"), None, "{}", r.output);
    assert!(r.has("allowed//0"), "{}", r.output);
    // A wrong password is a plain reject, no limit talk.
    let r = server.auth("capped", "wrong", "");
    assert_eq!(r.code(), Some("Access-Reject"));
    assert!(!r.has("limit"), "{}", r.output);

    // Interims push usage over the limit: the session is queued for disconnection
    // (limits remembered from the login, as accounting runs no authorize).
    assert!(
        server
            .acct(&acct_attrs("Start", "capped", "s1", nas, 0, 0, 0))
            .ok
    );
    let r = server.acct(&acct_attrs(
        "Interim-Update",
        "capped",
        "s1",
        nas,
        200 * MIB,
        100 * MIB,
        60,
    ));
    assert!(r.ok);
    let r = server.auth("capped", "pw", "");
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(200 * MIB),
        "{}",
        r.output
    );
    assert_eq!(
        reply_int(&r, "Session-Timeout"),
        Some(120 * 60 - 60),
        "{}",
        r.output
    );
    let queued = |s: &Server| -> i64 {
        s.sql()
            .query_row(
                "SELECT COUNT(*) FROM disconnect_queue WHERE username = 'capped' AND reason LIKE 'over limit%'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(queued(&server), 0, "still under the limit");
    let r = server.acct(&acct_attrs(
        "Interim-Update",
        "capped",
        "s1",
        nas,
        300 * MIB,
        200 * MIB,
        120,
    ));
    assert!(r.ok, "accounting is acknowledged even over the limit");
    assert_eq!(queued(&server), 1, "usage exactly at the limit is over");
    assert!(
        server
            .acct(&acct_attrs(
                "Interim-Update",
                "capped",
                "s1",
                nas,
                310 * MIB,
                200 * MIB,
                180
            ))
            .ok
    );
    assert_eq!(queued(&server), 1, "one job per session");
    // The queue worker sends the Disconnect-Request; the NAS acknowledges.
    wait_until("the over-limit disconnect", Duration::from_secs(20), || {
        server
            .sql()
            .query_row(
                "SELECT state = 'done' AND method = 'dm' FROM disconnect_queue WHERE username = 'capped'",
                [],
                |r| r.get::<_, bool>(0),
            )
            .unwrap()
    });
    let sent = dm.requests();
    assert_eq!(sent.len(), 1);
    let has = |typ: u8, value: &[u8]| {
        sent[0]
            .attributes
            .iter()
            .any(|a| a.typ == typ && a.value == value)
    };
    assert!(
        has(1, b"capped") && has(44, b"s1"),
        "User-Name and Acct-Session-Id: {:?}",
        sent[0]
    );

    // The next login is rejected with a clear Reply-Message.
    let r = server.auth("capped", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert!(r.has("Traffic limit reached"), "{}", r.output);
    let limits = server.cli_json(&["limits", "capped"]);
    assert_eq!(limits["traffic"]["usage"].as_u64(), Some(510 * MIB));

    // A 200 MB topup added with the CLI lets them in again, with all of it: it is
    // valid from now, and the 10 MB over from before it started stay uncovered (a
    // topup covers only usage during its validity).
    let valid_to = next_month_date(&server);
    server.cli_ok(&[
        "topup",
        "add",
        "capped",
        "--traffic",
        "200",
        "--valid-to",
        &valid_to,
    ]);
    let r = server.auth("capped", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(200 * MIB),
        "{}",
        r.output
    );
    assert!(
        r.has(&format!("allowed/{}/{}", 200 * MIB, 510 * MIB)),
        "{}",
        r.output
    );
}

#[test]
fn one_session_timeout_the_smallest_of_users_and_the_allowance() {
    let server = Server::start(Options {
        users: "st100\tCleartext-Password := \"pw\", Rust-Capping-Uptime-Limit := \"120\"\n\
                \tSession-Timeout := 5000, Session-Timeout += 100\n\
                st3600\tCleartext-Password := \"pw\", Rust-Capping-Uptime-Limit := \"10\"\n\
                \tSession-Timeout := 3600\n"
            .into(),
        ..Default::default()
    });
    let r = server.auth("st100", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(reply_int(&r, "Session-Timeout"), Some(100), "{}", r.output);

    // 4 of 10 minutes used: 6 minutes left, below the users file's hour.
    let nas = "127.0.0.2";
    assert!(
        server
            .acct(&acct_attrs("Start", "st3600", "a", nas, 0, 0, 0))
            .ok
    );
    assert!(
        server
            .acct(&acct_attrs("Stop", "st3600", "a", nas, 1, 1, 240))
            .ok
    );
    let r = server.auth("st3600", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(reply_int(&r, "Session-Timeout"), Some(360), "{}", r.output);
}

#[test]
fn store_limits_aliases_invalid_values_and_report_policy() {
    let server = Server::start(Options {
        users: "stored\tCleartext-Password := \"pw\"\n\
                smr\tCleartext-Password := \"pw\", SMRadius-Capping-Uptime-Limit := \"1\"\n\
                broken\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"5GB\"\n\
                both\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"0\"\n"
            .into(),
        capping: "\t\tover_limit = report\n\t\tuptime_message = \"No minutes left\"".into(),
        ..Default::default()
    });
    // The store's limit (set with the CLI) applies when the control list has none.
    server.cli_ok(&["limits", "set", "stored", "--uptime-min", "2"]);
    let r = server.auth("stored", "pw", "");
    assert_eq!(reply_int(&r, "Session-Timeout"), Some(120), "{}", r.output);
    // ... and the control list wins over it, per attribute.
    server.cli_ok(&["limits", "set", "both", "--uptime-min", "3"]);
    let r = server.auth("both", "pw", "");
    assert_eq!(
        r.code(),
        Some("Access-Reject"),
        "limit 0 without topups is prepaid: {}",
        r.output
    );
    assert!(r.has("Traffic limit reached"), "{}", r.output);

    // The SMRadius name works; the uptime message is configurable.
    let nas = "127.0.0.3";
    assert!(
        server
            .acct(&acct_attrs("Start", "smr", "m1", nas, 0, 0, 0))
            .ok
    );
    let r = server.auth("smr", "pw", "");
    assert_eq!(reply_int(&r, "Session-Timeout"), Some(60), "{}", r.output);
    assert!(
        server
            .acct(&acct_attrs("Interim-Update", "smr", "m1", nas, 10, 10, 60))
            .ok
    );
    let r = server.auth("smr", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert!(r.has("No minutes left"), "{}", r.output);
    // over_limit = report: logged, nothing queued.
    let n: i64 = server
        .sql()
        .query_row("SELECT COUNT(*) FROM disconnect_queue", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
    wait_until("the report line", Duration::from_secs(5), || {
        server.log_text().contains("over_limit = report")
    });

    // Not a number: rejected (never silently uncapped), logged with user and attribute.
    let r = server.auth("broken", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert!(r.has("misconfigured"), "{}", r.output);
    wait_until("the config error", Duration::from_secs(5), || {
        let log = server.log_text();
        log.contains("'broken'") && log.contains("Rust-Capping-Traffic-Limit = '5GB'")
    });
}

#[test]
fn auto_topup_at_an_interim_is_stored_and_its_notification_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let mailbox = tmp.path().join("mailbox");
    let script = tmp.path().join("deliver.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat >> {}\n", mailbox.display()),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let server = Server::start(Options {
        users: "auto\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"10\", \
                Rust-AutoTopup-Traffic-Enabled := \"yes\", Rust-AutoTopup-Traffic-Amount := \"100\", \
                Rust-AutoTopup-Traffic-Limit := \"100\", Rust-AutoTopup-Traffic-Threshold := \"2\", \
                Rust-AutoTopup-Traffic-Notify := \"ops@example.net\"\n"
            .into(),
        capping: format!("\t\tmikrotik = yes\n\t\tnotify_command = {}", script.display()),
        background_interval: Some("1s".into()),
        ..Default::default()
    });
    let r = server.auth("auto", "pw", "");
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(10 * MIB),
        "{}",
        r.output
    );
    let nas = "127.0.0.4";
    assert!(
        server
            .acct(&acct_attrs("Start", "auto", "a1", nas, 0, 0, 0))
            .ok
    );
    // 9 MB used: 1 MB left, at most the threshold (2 MB): one 100 MB topup.
    assert!(
        server
            .acct(&acct_attrs(
                "Interim-Update",
                "auto",
                "a1",
                nas,
                9 * MIB,
                0,
                60
            ))
            .ok
    );
    let topups = server.cli_json(&["topup", "list", "auto"]);
    let rows = topups["topups"].as_array().expect("a topups array");
    assert_eq!(rows.len(), 1, "{topups}");
    assert_eq!(rows[0]["value"].as_u64(), Some(100));
    assert_eq!(rows[0]["auto"].as_bool(), Some(true));
    let r = server.auth("auto", "pw", "");
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(101 * MIB),
        "{}",
        r.output
    );

    // Marked sent only after the command exited, so the mailbox is complete then.
    wait_until("the notification", Duration::from_secs(20), || {
        server
            .sql()
            .query_row(
                "SELECT COUNT(*) FROM notification_outbox WHERE sent_at IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1
    });
    let mail = std::fs::read_to_string(&mailbox).unwrap();
    assert!(mail.starts_with("To: ops@example.net\n"), "{mail}");
    assert!(
        mail.contains("1 auto-topup(s) of 100 MB were added for auto"),
        "{mail}"
    );
    let (attempts, sent): (i64, Option<i64>) = server
        .sql()
        .query_row(
            "SELECT attempts, sent_at FROM notification_outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(attempts, 1);
    assert!(sent.is_some());
}

#[test]
fn many_interims_of_one_user_at_once_store_every_auto_topup_they_announce() {
    let server = Server::start(Options {
        users: "burst\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"10\", \
                Rust-AutoTopup-Traffic-Enabled := \"yes\", Rust-AutoTopup-Traffic-Amount := \"10\", \
                Rust-AutoTopup-Traffic-Threshold := \"2\", \
                Rust-AutoTopup-Traffic-Notify := \"ops@example.net\"\n"
            .into(),
        ..Default::default()
    });
    assert_eq!(server.auth("burst", "pw", "").code(), Some("Access-Accept"));
    let nas = "127.0.0.2";
    // 24 sessions, then one Interim of 5 MB each, all sent at once by one radclient
    // (in parallel, within the same second) to the threaded server.
    let sessions: Vec<String> = (0..24).map(|i| format!("b{i}")).collect();
    let batch = |status: &str, mb: u64| -> String {
        sessions
            .iter()
            .map(|s| acct_attrs(status, "burst", s, nas, mb * MIB, 0, 30))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    for (status, mb) in [("Start", 0), ("Interim-Update", 5)] {
        server.radclient_parallel("acct", &batch(status, mb), 24);
    }
    let used = server.cli_json(&["limits", "burst"]);
    assert_eq!(used["traffic"]["usage"].as_u64(), Some(120 * MIB), "{used}");
    let stored = server.topups_total("burst");
    // What the notifications announced, as totals ("we added ... totalling N MB").
    let announced: Vec<i64> = {
        let db = server.sql();
        let mut stmt = db
            .prepare("SELECT body FROM notification_outbox WHERE event = 'added'")
            .unwrap();
        let bodies: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        bodies
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_str(b).unwrap();
                let n = |k: &str| {
                    v[k].as_i64()
                        .unwrap_or_else(|| v[k].as_str().unwrap().parse().unwrap())
                };
                n("autotopup.added") + n("autotopup.toAddAmount")
            })
            .collect()
    };
    assert!(!announced.is_empty());
    assert_eq!(
        announced.iter().max().copied(),
        Some(stored as i64),
        "stored {stored} MB of topups, announced {announced:?}"
    );
    // Every announced total is distinct: no addition told twice.
    let mut distinct = announced.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), announced.len(), "{announced:?}");
    // And the user is not locked out: 120 MB used of 10 + the topups.
    assert!(10 + stored > 120, "{stored}");
    let r = server.auth("burst", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339()
}

#[test]
fn a_topup_that_expired_or_has_not_started_does_not_count() {
    let server = Server::start(Options {
        users: "gone\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"100\"\n\
                soon\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"100\"\n"
            .into(),
        capping: "\t\tmikrotik = yes".into(),
        ..Default::default()
    });
    // The same limit in the store, so that `limits USER` (which sees only the
    // store) shows what the module decides.
    for user in ["gone", "soon"] {
        server.cli_ok(&["limits", "set", user, "--traffic-mb", "100"]);
    }
    let now = chrono::Utc::now().timestamp();
    let period_end = server.cli_json(&["limits", "gone"])["period"]["end"]
        .as_i64()
        .unwrap();
    // Windows of seconds around the real now (the module reads the real clock).
    let expires = now + 6;
    let starts = now + 3600;
    if starts >= period_end {
        eprintln!("skipped: the month ends within the hour");
        return;
    }
    let nas = "127.0.0.2";
    let traffic = |user: &str| server.cli_json(&["limits", user]);

    // gone: a 50 MB topup valid from an hour ago until a few seconds from now.
    server.cli_ok(&[
        "topup",
        "add",
        "gone",
        "--traffic",
        "50",
        "--valid-from",
        &rfc3339(now - 3600),
        "--valid-to",
        &rfc3339(expires),
    ]);
    assert!(
        server
            .acct(&acct_attrs("Start", "gone", "g1", nas, 0, 0, 0))
            .ok
    );
    assert!(
        server
            .acct(&acct_attrs(
                "Interim-Update",
                "gone",
                "g1",
                nas,
                100 * MIB,
                20 * MIB,
                60
            ))
            .ok
    );
    let v = traffic("gone");
    assert!(
        chrono::Utc::now().timestamp() < expires,
        "too slow: the topup expired before it could be used"
    );
    assert_eq!(
        v["traffic"]["remaining"].as_i64(),
        Some(30 * MIB as i64),
        "{v}"
    );
    let r = server.auth("gone", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    assert_eq!(
        reply_int(&r, "Mikrotik-Total-Limit"),
        Some(30 * MIB),
        "{}",
        r.output
    );
    // Once it has expired its unused 30 MB are gone; the 20 MB it covered stay
    // covered.
    wait_until("the topup to expire", Duration::from_secs(20), || {
        chrono::Utc::now().timestamp() > expires
    });
    let v = traffic("gone");
    assert_eq!(v["traffic"]["topups"].as_u64(), Some(20 * MIB), "{v}");
    assert_eq!(v["traffic"]["remaining"].as_i64(), Some(0), "{v}");
    assert_eq!(v["state"], "exhausted", "{v}");
    let r = server.auth("gone", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert!(r.has("Traffic limit reached"), "{}", r.output);

    // soon: 20 MB over the limit, with a 50 MB topup that starts in an hour.
    server.cli_ok(&[
        "topup",
        "add",
        "soon",
        "--traffic",
        "50",
        "--valid-from",
        &rfc3339(starts),
        "--valid-to",
        &rfc3339(period_end),
    ]);
    assert!(
        server
            .acct(&acct_attrs("Start", "soon", "s1", nas, 0, 0, 0))
            .ok
    );
    assert!(
        server
            .acct(&acct_attrs(
                "Interim-Update",
                "soon",
                "s1",
                nas,
                100 * MIB,
                20 * MIB,
                60
            ))
            .ok
    );
    let v = traffic("soon");
    assert_eq!(v["traffic"]["topups"].as_u64(), Some(0), "{v}");
    assert_eq!(
        v["traffic"]["remaining"].as_i64(),
        Some(-20 * MIB as i64),
        "{v}"
    );
    assert_eq!(v["state"], "exhausted", "{v}");
    let r = server.auth("soon", "pw", "");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    // The accounting decisions marked the boundaries that had passed (gone's start).
    let marks: i64 = server
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM usage_marks WHERE username = 'gone'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let starts_in_period = now - 3600 > v["period"]["start"].as_i64().unwrap();
    assert_eq!(
        marks,
        i64::from(starts_in_period),
        "gone's start, if inside the month"
    );
}
