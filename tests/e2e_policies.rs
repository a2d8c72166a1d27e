//! Product policies end to end: the real freeRADIUS with the module, policies and
//! NASes set with the CLI, logins and accounting with radclient.
mod common;

use common::{acct_attrs, Options, Reply, Server};

/// Every value of `attr` in the reply (radclient -x prints "\tName = value").
fn values(r: &Reply, attr: &str) -> Vec<String> {
    r.output
        .lines()
        .skip_while(|l| !l.starts_with("Received "))
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(" = ")?;
            (name == attr).then(|| value.trim().trim_matches('"').to_string())
        })
        .collect()
}

fn one(r: &Reply, attr: &str) -> Option<String> {
    let v = values(r, attr);
    assert!(v.len() <= 1, "{attr} {} times: {}", v.len(), r.output);
    v.into_iter().next()
}

fn login(s: &Server, user: &str, extra: &str) -> Reply {
    s.auth(user, "pw", &format!(", NAS-IP-Address = 127.0.0.2{extra}"))
}

fn accepted(r: &Reply) -> bool {
    r.code() == Some("Access-Accept")
}

fn rejected_with(r: &Reply, message: &str) -> bool {
    r.code() == Some("Access-Reject") && values(r, "Reply-Message").iter().any(|m| m == message)
}

#[test]
fn a_policy_sets_the_reply_and_limits_sessions_and_devices() {
    let s = Server::start(Options {
        users: "pol\tCleartext-Password := \"pw\"\n\
                solo\tCleartext-Password := \"pw\", Rust-Policy-Concurrent-Connections := \"1\"\n\
                short\tCleartext-Password := \"pw\"\n\t\tSession-Timeout := 100\n\
                mine\tCleartext-Password := \"pw\", Rust-Policy-Session-Timeout := \"10\"\n"
            .into(),
        ..Default::default()
    });
    s.cli_ok(&[
        "policy",
        "add",
        "basic",
        "--concurrent-connections",
        "1",
        "--max-devices",
        "2",
        "--session-timeout",
        "60",
        "--idle-timeout",
        "5",
        "--interim-interval",
        "60",
        "--rate-down",
        "10M",
        "--rate-up",
        "2M",
        "--burst-down-limit",
        "20M",
        "--burst-up-limit",
        "4M",
        "--burst-down-threshold",
        "8M",
        "--burst-up-threshold",
        "1M",
        "--burst-down-time",
        "16",
        "--burst-up-time",
        "8",
        "--address-list",
        "vip",
        "--reply",
        "Filter-Id := gold",
    ]);
    for user in ["pol", "short", "mine"] {
        s.cli_ok(&["user", "policy", user, "basic"]);
    }
    let a = ", Calling-Station-Id = \"02:00:00:00:00:0a\"";
    let r = login(&s, "pol", a);
    assert!(accepted(&r), "{}", r.output);
    assert_eq!(one(&r, "Session-Timeout").as_deref(), Some("3600"));
    assert_eq!(one(&r, "Idle-Timeout").as_deref(), Some("300"));
    assert_eq!(
        one(&r, "Acct-Interim-Interval").as_deref(),
        Some("300"),
        "raised to 300"
    );
    assert_eq!(
        one(&r, "Mikrotik-Rate-Limit").as_deref(),
        Some("2M/10M 4M/20M 1M/8M 8/16")
    );
    assert_eq!(one(&r, "Mikrotik-Address-List").as_deref(), Some("vip"));
    assert_eq!(one(&r, "Filter-Id").as_deref(), Some("gold"));
    // The users file's smaller Session-Timeout stays, once; the control list's
    // Rust-Policy-Session-Timeout beats the stored policy's.
    let r = login(&s, "short", a);
    assert_eq!(
        one(&r, "Session-Timeout").as_deref(),
        Some("100"),
        "{}",
        r.output
    );
    let r = login(&s, "mine", a);
    assert_eq!(
        one(&r, "Session-Timeout").as_deref(),
        Some("600"),
        "{}",
        r.output
    );

    // One concurrent connection: the second login while a session is open is refused.
    let nas = "127.0.0.2";
    assert!(s.acct(&acct_attrs("Start", "pol", "p1", nas, 0, 0, 0)).ok);
    let r = login(&s, "pol", a);
    assert!(
        rejected_with(&r, "Too many concurrent connections"),
        "{}",
        r.output
    );
    assert!(s.acct(&acct_attrs("Stop", "pol", "p1", nas, 5, 5, 30)).ok);
    assert!(accepted(&login(&s, "pol", a)));

    // The same from the control list alone, with no policy assigned.
    assert!(accepted(&login(&s, "solo", a)));
    assert!(s.acct(&acct_attrs("Start", "solo", "s1", nas, 0, 0, 0)).ok);
    let r = login(&s, "solo", a);
    assert!(
        rejected_with(&r, "Too many concurrent connections"),
        "{}",
        r.output
    );

    // Two devices: a second one is fine, a third is refused, the first still works.
    let b = ", Calling-Station-Id = \"02:00:00:00:00:0b\"";
    let c = ", Calling-Station-Id = \"02:00:00:00:00:0c\"";
    assert!(accepted(&login(&s, "pol", b)));
    let r = login(&s, "pol", c);
    assert!(
        rejected_with(&r, "Too many devices for this account"),
        "{}",
        r.output
    );
    assert!(accepted(&login(&s, "pol", a)));
    let shown = s.cli_json(&["user", "show", "pol"]);
    assert_eq!(
        shown["devices"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    // Assigning the policy again resets the count (as the seed says).
    s.cli_ok(&["user", "policy", "pol", "basic"]);
    assert!(accepted(&login(&s, "pol", c)));
}

/// `* HH:MM-HH:MM` from `from_min` to `to_min` minutes after now in `tz` (a window
/// may span midnight).
fn window(tz: chrono_tz::Tz, from_min: i64, to_min: i64) -> String {
    let now = chrono::Utc::now().with_timezone(&tz);
    let at = |m: i64| {
        (now + chrono::Duration::minutes(m))
            .format("%H:%M")
            .to_string()
    };
    format!("* {}-{}", at(from_min), at(to_min))
}

#[test]
fn schedules_in_the_nas_time_zone_checks_and_quotas() {
    let s = Server::start(Options {
        users: "badpol\tCleartext-Password := \"pw\", Rust-Policy-Rate-Down := \"fast\"\n\
                DEFAULT\tCleartext-Password := \"pw\"\n"
            .into(),
        ..Default::default()
    });
    // A NAS 5:30 ahead of UTC: the window is read in its wall clock.
    let kolkata = chrono_tz::Asia::Kolkata;
    s.cli_ok(&[
        "nas",
        "add",
        "127.0.0.2",
        "--name",
        "in",
        "--nas-timezone",
        "Asia/Kolkata",
    ]);
    let open = window(kolkata, -60, 30);
    let closed = window(kolkata, 60, 120);
    s.cli_ok(&["policy", "add", "open", "--schedule", &open]);
    s.cli_ok(&["policy", "add", "closed", "--schedule", &closed]);
    s.cli_ok(&["user", "policy", "early", "open"]);
    s.cli_ok(&["user", "policy", "late", "closed"]);
    let r = login(&s, "early", "");
    assert!(accepted(&r), "{open}: {}", r.output);
    // Capped at the window's end: 30 minutes away (29 once the minute ticks).
    let st: u32 = one(&r, "Session-Timeout").unwrap().parse().unwrap();
    assert!((29 * 60..=30 * 60).contains(&st), "{st} for {open}");
    let r = login(&s, "late", "");
    assert!(
        rejected_with(&r, "Login not allowed at this time"),
        "{closed}: {}",
        r.output
    );

    // A check attribute must match the request.
    s.cli_ok(&[
        "policy",
        "add",
        "wifi",
        "--check",
        "NAS-Port-Type == Wireless-802.11",
    ]);
    s.cli_ok(&["user", "policy", "wifi", "wifi"]);
    let r = login(&s, "wifi", ", NAS-Port-Type = Ethernet");
    assert!(
        rejected_with(&r, "Login not allowed for this connection"),
        "{}",
        r.output
    );
    assert!(accepted(&login(
        &s,
        "wifi",
        ", NAS-Port-Type = Wireless-802.11"
    )));

    // A daily traffic quota refuses the login once reached.
    s.cli_ok(&["policy", "add", "daily", "--daily-traffic", "1"]);
    s.cli_ok(&["user", "policy", "quota", "daily"]);
    assert!(accepted(&login(&s, "quota", "")));
    let nas = "127.0.0.2";
    assert!(s.acct(&acct_attrs("Start", "quota", "q1", nas, 0, 0, 0)).ok);
    assert!(
        s.acct(&acct_attrs(
            "Stop", "quota", "q1", nas, 600_000, 600_000, 60
        ))
        .ok
    );
    let r = login(&s, "quota", "");
    assert!(
        rejected_with(&r, "Daily traffic limit reached"),
        "{}",
        r.output
    );

    // Rates for a NAS that is not a MikroTik: WISPr attributes.
    s.cli_ok(&[
        "nas",
        "add",
        "127.0.0.3",
        "--name",
        "chilli",
        "--type",
        "coovachilli",
    ]);
    s.cli_ok(&[
        "policy",
        "add",
        "rated",
        "--rate-down",
        "4M",
        "--rate-up",
        "1M",
        "--address-list",
        "x",
    ]);
    s.cli_ok(&["user", "policy", "rated", "rated"]);
    let r = s.auth("rated", "pw", ", NAS-IP-Address = 127.0.0.3");
    assert!(accepted(&r), "{}", r.output);
    assert_eq!(
        one(&r, "WISPr-Bandwidth-Max-Down").as_deref(),
        Some("4000000")
    );
    assert_eq!(
        one(&r, "WISPr-Bandwidth-Max-Up").as_deref(),
        Some("1000000")
    );
    assert_eq!(one(&r, "Mikrotik-Rate-Limit"), None);
    // A bad value from the control list rejects the login (and is logged with
    // the field), never silently ignored.
    let r = login(&s, "badpol", "");
    assert!(
        rejected_with(&r, "Account policy is misconfigured; contact support"),
        "{}",
        r.output
    );
    common::wait_until("the log line", std::time::Duration::from_secs(5), || {
        s.log_text().contains("policy field 'rate-down' = \"fast\"")
    });
}

#[test]
fn a_latin1_user_keeps_the_policy_across_a_restart_and_many_logins_at_once() {
    use std::os::unix::ffi::OsStrExt;
    let mut s = Server::start(Options {
        users: "DEFAULT\tCleartext-Password := \"pw\"\n\t\tAcct-Interim-Interval := 60\n".into(),
        ..Default::default()
    });
    s.cli_ok(&[
        "policy",
        "add",
        "p",
        "--interim-interval",
        "600",
        "--max-devices",
        "1",
        "--concurrent-connections",
        "1",
    ]);
    let out = std::process::Command::new(common::target_dir().join("rlm-rust"))
        .arg("--db")
        .arg(&s.db)
        .args(["user", "policy"])
        .arg(std::ffi::OsStr::from_bytes(b"m\xfcller"))
        .arg("p")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // radclient writes the Latin-1 byte as an octal escape in a string.
    let latin1 = |s: &Server, extra: &str| {
        s.radclient(
            "auth",
            &format!(
                "User-Name = \"m\\374ller\", User-Password = \"pw\", NAS-IP-Address = 127.0.0.2{extra}"
            ),
        )
    };
    let r = latin1(&s, ", Calling-Station-Id = \"aa\"");
    assert!(accepted(&r), "{}", r.output);
    // The policy's interval replaces the users file's.
    assert_eq!(one(&r, "Acct-Interim-Interval").as_deref(), Some("600"));
    // The UTF-8 "müller" is another user, without the policy.
    let r = s.auth(
        "müller",
        "pw",
        ", NAS-IP-Address = 127.0.0.2, Calling-Station-Id = \"bb\"",
    );
    assert_eq!(
        one(&r, "Acct-Interim-Interval").as_deref(),
        Some("60"),
        "{}",
        r.output
    );
    s.restart(None);
    // After the restart the device seen before still counts: a second one is refused,
    // the first is let in, by many logins at once.
    let r = latin1(&s, ", Calling-Station-Id = \"bb\"");
    assert!(
        rejected_with(&r, "Too many devices for this account"),
        "{}",
        r.output
    );
    let replies: Vec<Reply> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| latin1(&s, ", Calling-Station-Id = \"aa\"")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        replies.iter().all(accepted),
        "{:?}",
        replies.iter().map(|r| r.code()).collect::<Vec<_>>()
    );
}
