//! End to end through the real freeradius: service sessions and subscriber states.
//! NASes are in-process RFC 5176 doubles (127.0.0.2 ...) and a RouterOS API double;
//! the module's background thread runs every second on the real clock.
mod common;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rlm_rust::radius::double::{Answer, NasDouble};
use rlm_rust::radius::Code;
use rlm_rust::routeros::double::{DoubleConfig, RouterOsDouble};

const WAIT: Duration = Duration::from_secs(20);
const MB: u64 = 1 << 20;

fn bind(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

fn server(users: &str, extra: &[(&str, &str)]) -> Server {
    let mut raddb_env = vec![
        ("BULK_DISCONNECT".to_string(), "no".to_string()),
        ("DM_TIMEOUT".into(), "1s".into()),
        ("DM_RETRIES".into(), "0".into()),
    ];
    raddb_env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Server::start(Options {
        users: users.into(),
        timezone: Some("UTC".into()),
        background_interval: Some("1s".into()),
        stale_after: Some("0".into()),
        raddb_env,
        ..Default::default()
    })
}

fn events(s: &Server, user: &str) -> Vec<(String, String, Option<String>)> {
    let v = s.cli_json(&["events", "--user", user]);
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
                e["detail"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn has_event(s: &Server, user: &str, event: &str) -> bool {
    events(s, user).iter().any(|(e, _, _)| e == event)
}

#[test]
fn a_mikrotik_service_is_applied_by_coa_and_ended_by_the_module_at_its_timeout() {
    let nas = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let s = server(
        "turbo1 Cleartext-Password := \"pw\"\n\tMikrotik-Rate-Limit := \"2M/2M\"\n",
        &[],
    );
    s.add_nas("127.0.0.2", "mikrotik", nas.addr());
    s.cli_ok(&[
        "service",
        "add",
        "turbo",
        "--timeout",
        "15",
        "--rate",
        "50M/50M",
    ]);
    let r = s.auth("turbo1", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    s.session_update("Start", "turbo1", "127.0.0.2", 0);
    s.wait_for("logged in", WAIT, || {
        s.cli_json(&["user", "show", "turbo1"])["state"]["logged_in"] == true
    });
    assert_eq!(
        s.cli_json(&["user", "show", "turbo1"])["state"]["base_rate"],
        "2M/2M"
    );
    let activated = Instant::now();
    s.cli_ok(&["service", "activate", "turbo1", "turbo"]);
    s.wait_for("the turbo CoA", WAIT, || {
        nas.requests()
            .iter()
            .any(|p| rate_of(p).as_deref() == Some("50M/50M"))
    });
    let coa = nas
        .requests()
        .into_iter()
        .find(|p| rate_of(p).is_some())
        .unwrap();
    assert_eq!(coa.code, Code::CoaRequest);
    // A second login while turbo runs gets the turbo rate in its Accept.
    let r = s.auth("turbo1", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert!(r.has("Mikrotik-Rate-Limit = \"50M/50M\""), "{}", r.output);
    assert!(!r.has("\"2M/2M\""), "one rate: {}", r.output);
    // The module ends it at 15 s of activity (whole seconds) and restores the base rate.
    s.wait_for("the base-rate CoA", Duration::from_secs(45), || {
        nas.requests()
            .iter()
            .any(|p| rate_of(p).as_deref() == Some("2M/2M"))
    });
    let elapsed = activated.elapsed();
    assert!(
        elapsed >= Duration::from_secs(14),
        "ended after {elapsed:?}"
    );
    let ev = events(&s, "turbo1");
    let names: Vec<&str> = ev.iter().map(|(e, _, _)| e.as_str()).collect();
    assert!(names.starts_with(&["user_add", "user_auth"]), "{names:?}");
    assert!(
        ev.contains(&(
            "service_activated".into(),
            "operator".into(),
            Some("turbo".into())
        )),
        "{ev:?}"
    );
    assert!(
        ev.contains(&(
            "service_deactivated".into(),
            "schedule".into(),
            Some("turbo: timeout".into())
        )),
        "{ev:?}"
    );
    let svc = s.cli_json(&["service", "list", "--user", "turbo1"]);
    assert_eq!(svc["services"][0]["state"], "ended");
    assert_eq!(svc["services"][0]["end_reason"], "timeout");
    let actions: Vec<(String, String)> = {
        let c = s.sql();
        let mut st = c
            .prepare("SELECT action, state FROM nas_actions ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(
        actions,
        [
            ("service-on".into(), "done".into()),
            ("service-off".into(), "done".into())
        ]
    );
    // A new tariff mid-session: its rate by CoA (user_rate_set), and the same rate
    // for the next login.
    s.cli_ok(&[
        "policy",
        "add",
        "fast",
        "--rate-down",
        "8M",
        "--rate-up",
        "4M",
    ]);
    let out = s.cli_ok(&["user", "policy", "turbo1", "fast"]);
    assert!(out.contains("sent to the open sessions"), "{out}");
    let rate = s.cli_json(&["user", "show", "turbo1"])["state"]["rate"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rate, "2M/2M");
    s.wait_for("the tariff's CoA", WAIT, || {
        nas.requests()
            .iter()
            .any(|p| rate_of(p).as_deref() == Some(rate.as_str()))
    });
    let r = s.auth("turbo1", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert!(
        r.has(&format!("Mikrotik-Rate-Limit = \"{rate}\"")),
        "{rate}: {}",
        r.output
    );
    let ev = events(&s, "turbo1");
    assert!(
        ev.iter()
            .any(|(e, src, _)| e == "user_rate_set" && src == "policy"),
        "{ev:?}"
    );
}

#[test]
fn juniper_and_cisco_get_their_service_attributes_and_the_thresholds_wrap() {
    let juniper = NasDouble::start(bind("127.0.0.3"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let cisco = NasDouble::start(bind("127.0.0.4"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let users = "jun1 Cleartext-Password := \"pw\"\nisg1 Cleartext-Password := \"pw\"\n";
    let s = server(users, &[]);
    s.add_nas("127.0.0.3", "juniper", juniper.addr());
    s.add_nas("127.0.0.4", "cisco", cisco.addr());
    s.cli_ok(&[
        "service",
        "add",
        "iptv",
        "--timeout",
        "16777218",
        "--volume",
        "16777217",
        "--nas-service",
        "iptv-hd",
    ]);
    let list = s.cli_json(&["service", "list"]);
    assert_eq!(list["services"][0]["timeout"], 2);
    assert_eq!(list["services"][0]["volume_mb"], 1);
    for user in ["jun1", "isg1"] {
        let out = s.cli_ok(&["service", "activate", user, "iptv", "--persistent"]);
        assert!(out.contains("waits for the next login"), "{out}");
    }
    let r = s.auth("jun1", "pw", ", NAS-IP-Address = 127.0.0.3");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    for line in [
        "ERX-Service-Activate:1 = \"iptv-hd\"",
        "ERX-Service-Timeout:1 = 2",
        "ERX-Service-Volume:1 = 1",
    ] {
        assert!(r.has(line), "{line} missing: {}", r.output);
    }
    let r = s.auth("isg1", "pw", ", NAS-IP-Address = 127.0.0.4");
    assert!(r.has("Cisco-Account-Info = \"Aiptv-hd\""), "{}", r.output);
    // Deactivating mid-session: ERX-Service-Deactivate / ISG service logoff by CoA.
    s.session_update("Start", "jun1", "127.0.0.3", 0);
    s.session_update("Start", "isg1", "127.0.0.4", 0);
    s.cli_ok(&["service", "deactivate", "jun1", "iptv"]);
    s.cli_ok(&["service", "deactivate", "isg1", "iptv"]);
    s.wait_for("the deactivation CoAs", WAIT, || {
        !juniper.requests().is_empty() && !cisco.requests().is_empty()
    });
    let j = &juniper.requests()[0];
    assert_eq!(vsa_value(j, 4874, 66).as_deref(), Some(&b"iptv-hd"[..]));
    let c = &cisco.requests()[0];
    assert_eq!(vsa_value(c, 9, 252).as_deref(), Some(&b"\x0ciptv-hd"[..]));
    // Deactivated drops it from later logins.
    let r = s.auth("jun1", "pw", ", NAS-IP-Address = 127.0.0.3");
    assert!(!r.has("ERX-Service-Activate"), "{}", r.output);
}

#[test]
fn a_voluntary_block_refuses_logins_and_disconnects_the_open_session() {
    let nas = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let s = server("blk Cleartext-Password := \"pw\"\n", &[]);
    s.add_nas("127.0.0.2", "mikrotik", nas.addr());
    let r = s.auth("blk", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    s.session_update("Start", "blk", "127.0.0.2", 0);
    // An operator watching the events as they come.
    let mut follow = std::process::Command::new(target_dir().join("rlm-rust"))
        .arg("--db")
        .arg(&s.db)
        .args(["--json", "events", "--follow", "--user", "blk"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let followed = {
        let out = follow.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str(&line).unwrap());
            }
        });
        rx
    };
    let out = s.cli_ok(&["user", "block", "blk"]);
    assert!(out.contains("own_disabled"), "{out}");
    assert!(
        out.contains("1 open session(s) queued for disconnection"),
        "{out}"
    );
    s.wait_for("the Disconnect-Request", WAIT, || {
        nas.requests()
            .iter()
            .any(|p| p.code == Code::DisconnectRequest)
    });
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &serde_json::Value| e["event"] == "own_disabled")
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let e = followed
            .recv_timeout(left)
            .expect("events --follow printed own_disabled");
        assert_eq!(e["username"], "blk");
        seen.push(e);
    }
    follow.kill().unwrap();
    let _ = follow.wait();
    assert_eq!(seen[0]["event"], "user_add", "{seen:?}");
    let q = s.cli_json(&["queue", "list"]);
    // The block's reason, or the states job's if it saw the session after the block.
    let reason = q["jobs"][0]["reason"].as_str().unwrap();
    assert!(
        ["blocked by its owner", "user blocked"].contains(&reason),
        "{q}"
    );
    // The NAS drops the session and says so.
    s.session_update("Stop", "blk", "127.0.0.2", 0);
    s.wait_for("logged out", WAIT, || {
        has_event(&s, "blk", "user_disconnect")
    });
    let r = s.auth("blk", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert!(r.has("blocked"), "{}", r.output);
    let blocked = s.cli_json(&["user", "list", "--blocked"]);
    assert_eq!(blocked["users"].as_array().unwrap().len(), 1, "{blocked}");
    assert_eq!(blocked["users"][0]["username"], "blk");
    assert!(s.cli_ok(&["user", "list", "--redirected"]).lines().count() <= 1);
    // Blocking twice changes nothing; unblocking lets the user in again.
    assert!(s.cli_ok(&["user", "block", "blk"]).contains("no change"));
    s.cli_ok(&["user", "unblock", "blk"]);
    let r = s.auth("blk", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    // Deleting disconnects too, frees the session once the NAS dropped it, and
    // refuses the user until it is added back.
    let r = s.acct(&acct_attrs(
        "Start",
        "blk",
        "sess-blk-2",
        "127.0.0.2",
        0,
        0,
        0,
    ));
    assert!(r.ok, "{}", r.output);
    let dms = || {
        nas.requests()
            .iter()
            .filter(|p| p.code == Code::DisconnectRequest)
            .count()
    };
    let before = dms();
    let out = s.cli_ok(&["user", "delete", "blk"]);
    assert!(out.contains("user_del"), "{out}");
    s.wait_for("the session freed", WAIT, || {
        let v = s.cli_json(&["sessions", "list", "--user", "blk"]);
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["acct_session_id"] == "sess-blk-2" && x["closed_reason"] == "user-deleted")
    });
    assert_eq!(dms(), before + 1);
    let r = s.auth("blk", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert!(r.has("Account deleted"), "{}", r.output);
    s.cli_ok(&["user", "add", "blk"]);
    let r = s.auth("blk", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    let ev: Vec<String> = events(&s, "blk").into_iter().map(|e| e.0).collect();
    for e in [
        "own_disabled",
        "own_disabled_cancel",
        "user_del",
        "user_add",
    ] {
        assert!(ev.contains(&e.to_string()), "{e} in {ev:?}");
    }
    // History can be purged by age (whole seconds: the last events are this second's).
    std::thread::sleep(Duration::from_millis(1100));
    let purged = s.cli_json(&["events", "purge", "--older-than", "0s"]);
    assert!(purged["events"].as_u64().unwrap() >= 6, "{purged}");
    assert!(events(&s, "blk").is_empty());
}

#[test]
fn a_redirect_adds_the_address_to_the_routeros_list_and_a_topup_removes_it() {
    let api = RouterOsDouble::start_on(bind("127.0.0.5"), DoubleConfig::default()).unwrap();
    let (host, port) = (api.addr().ip().to_string(), api.port().to_string());
    // Report only: the session stays up, redirected.
    let s = Server::start(Options {
        users: "red1 Cleartext-Password := \"pw\"\n".into(),
        timezone: Some("UTC".into()),
        background_interval: Some("1s".into()),
        stale_after: Some("0".into()),
        capping: "\t\tover_limit = report".into(),
        raddb_env: vec![("BULK_DISCONNECT".into(), "no".into())],
        ..Default::default()
    });
    let out = s.cli(&[
        "nas",
        "add",
        "127.0.0.5",
        "--name",
        "api5",
        "--api-host",
        &host,
        "--api-port",
        &port,
        "--api-user",
        "admin",
        "--api-password",
        "secret",
        "--redirect-list",
        "over-limit",
    ]);
    assert!(out.status.success());
    s.cli_ok(&["limits", "set", "red1", "--traffic-mb", "1"]);
    s.session_update("Start", "red1", "127.0.0.5", 0);
    s.session_update("Interim-Update", "red1", "127.0.0.5", 2 * MB);
    let listed = || {
        api.rows("/ip/firewall/address-list")
            .iter()
            .filter(|r| r.get("list").map(String::as_str) == Some("over-limit"))
            .map(|r| (r.get("address").cloned(), r.get("comment").cloned()))
            .collect::<Vec<_>>()
    };
    s.wait_for("the address-list entry", WAIT, || !listed().is_empty());
    assert_eq!(
        listed(),
        [(
            Some("100.64.0.10".to_string()),
            Some("rlm_rust:red1".to_string())
        )]
    );
    assert!(has_event(&s, "red1", "user_redirect"));
    // More interims while redirected: one entry, one event.
    s.session_update("Interim-Update", "red1", "127.0.0.5", 3 * MB);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(listed().len(), 1);
    let redirects = events(&s, "red1")
        .iter()
        .filter(|e| e.0 == "user_redirect")
        .count();
    assert_eq!(redirects, 1);
    // A topup lets the user in again: the redirect is cancelled without a re-login.
    let valid_to = (chrono::Utc::now() + chrono::Duration::days(40))
        .format("%Y-%m-%d")
        .to_string();
    s.cli_ok(&[
        "topup",
        "add",
        "red1",
        "--traffic",
        "200",
        "--valid-to",
        &valid_to,
    ]);
    s.wait_for("the entry's removal", WAIT, || listed().is_empty());
    let ev = events(&s, "red1");
    assert!(
        ev.contains(&("user_redirect_cancel".into(), "capping".into(), None)),
        "{ev:?}"
    );
    // Over again (past the topup): redirected again, though the background job was
    // the one that cancelled it.
    s.session_update("Interim-Update", "red1", "127.0.0.5", 300 * MB);
    s.wait_for("the entry again", WAIT, || listed().len() == 1);
    // Limits gone: the next update cancels the redirect (the accounting path).
    s.cli_ok(&["limits", "unset", "red1", "--traffic"]);
    s.session_update("Interim-Update", "red1", "127.0.0.5", 301 * MB);
    s.wait_for("the entry removed again", WAIT, || listed().is_empty());
    let names: Vec<String> = events(&s, "red1")
        .into_iter()
        .map(|e| e.0)
        .filter(|e| e.starts_with("user_redirect"))
        .collect();
    assert_eq!(
        names,
        [
            "user_redirect",
            "user_redirect_cancel",
            "user_redirect",
            "user_redirect_cancel"
        ]
    );
}

#[test]
fn hooks_get_every_event_and_a_kill_9_loses_no_pending_event_or_action() {
    let tmp = tempfile::tempdir().unwrap();
    let got = tmp.path().join("events.log");
    let gate = tmp.path().join("gate");
    let hook = tmp.path().join("hook.sh");
    // The hook waits for the gate: events pile up pending while it is closed.
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.1; done\n\
             printf '%s %s %s %s\\n' \"$RLM_EVENT_ID\" \"$RLM_EVENT\" \"$RLM_USER\" \"$RLM_SOURCE\" >> {got}\n\
             cat >> {got}.json\n",
            gate = gate.display(),
            got = got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let silent = NasDouble::start(bind("127.0.0.6"), SECRET.as_bytes(), Answer::Silent).unwrap();
    let mut s = Server::start(Options {
        users: "hk Cleartext-Password := \"pw\"\n".into(),
        timezone: Some("UTC".into()),
        background_interval: Some("1s".into()),
        stale_after: Some("0".into()),
        raddb_env: vec![
            ("BULK_DISCONNECT".into(), "no".into()),
            ("DM_TIMEOUT".into(), "1s".into()),
            ("DM_RETRIES".into(), "0".into()),
            (
                "HOOKS".into(),
                format!("\t\tall = {}\n\t\ttimeout = 600", hook.display()),
            ),
        ],
        ..Default::default()
    });
    s.add_nas("127.0.0.6", "mikrotik", silent.addr());
    s.cli_ok(&["service", "add", "turbo", "--rate", "9M/9M"]);
    let r = s.auth("hk", "pw", ", NAS-IP-Address = 127.0.0.6");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    s.session_update("Start", "hk", "127.0.0.6", 0);
    s.cli_ok(&["service", "activate", "hk", "turbo"]);
    s.cli_ok(&["user", "rate", "hk", "3M/3M"]);
    // The NAS never answers: the CoA stays pending (retried with backoff).
    s.wait_for("a CoA attempt", WAIT, || !silent.requests().is_empty());
    let pending = |s: &Server| -> (i64, i64) {
        let c = s.sql();
        let hooks: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM events WHERE hook_state = 'pending'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let actions: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM nas_actions WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (hooks, actions)
    };
    let (hooks_before, actions_before) = pending(&s);
    assert!(
        hooks_before >= 4,
        "user_add, user_auth, service_activated, ...: {hooks_before}"
    );
    assert!(actions_before >= 1, "{actions_before}");
    let ids: Vec<i64> = {
        let c = s.sql();
        let mut st = c.prepare("SELECT id FROM events ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    s.kill9();
    let (hooks_after, actions_after) = pending(&s);
    assert_eq!((hooks_after, actions_after), (hooks_before, actions_before));
    std::fs::write(&gate, "").unwrap();
    s.restart(None);
    // Every event reaches the hook (at least once: one may have been running at the kill).
    s.wait_for("every event's hook", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&got).unwrap_or_default();
        ids.iter().all(|id| {
            text.lines()
                .any(|l| l.split(' ').next() == Some(&id.to_string()))
        })
    });
    s.wait_for("the hooks marked done", WAIT, || {
        let c = s.sql();
        let left: i64 = c
            .query_row(
                "SELECT COUNT(*) FROM events WHERE id <= ?1 AND hook_state <> 'done'",
                [ids.last().unwrap().to_string().as_str()],
                |r| r.get(0),
            )
            .unwrap();
        left == 0
    });
    let text = std::fs::read_to_string(&got).unwrap();
    assert!(text.contains(" user_auth hk auth"), "{text}");
    assert!(text.contains(" service_activated hk operator"), "{text}");
    assert!(text.contains(" user_rate_set hk operator"), "{text}");
    let json = std::fs::read_to_string(format!("{}.json", got.display())).unwrap();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["username"], "hk");
    let shown = s.cli_json(&["events", "--user", "hk"]);
    assert!(shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["hook_state"] == "done" || e["id"].as_i64() > ids.last().copied()));
    // A NAS that says not to: its Stop logs the user out without the hook.
    s.cli_ok(&["nas", "set", "127.0.0.6", "--stop-event", "no"]);
    s.session_update("Stop", "hk", "127.0.0.6", 0);
    s.wait_for("the logout", WAIT, || {
        has_event(&s, "hk", "user_disconnect")
    });
    let ev = s.cli_json(&["events", "--user", "hk"]);
    let out = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "user_disconnect")
        .unwrap()
        .clone();
    assert_eq!(out["hook_state"], "skipped", "{out}");
    assert_eq!(out["source"], "accounting");
    // The actions are still there after the kill, and tried again.
    let c = s.sql();
    let actions: i64 = c
        .query_row("SELECT COUNT(*) FROM nas_actions", [], |r| r.get(0))
        .unwrap();
    assert!(actions >= actions_before);
}

#[test]
fn many_logins_and_sessions_of_one_new_user_at_once_make_one_user_add_and_one_user_auth() {
    let s = server("crowd Cleartext-Password := \"pw\"\n", &[]);
    let logins: Vec<String> = (0..32)
        .map(|i| {
            format!(
                "User-Name = \"crowd\", User-Password = \"pw\", NAS-IP-Address = 127.0.0.2, \
                 Calling-Station-Id = \"02:00:00:00:00:{i:02x}\""
            )
        })
        .collect();
    s.radclient_parallel("auth", &logins.join("\n\n"), 32);
    let starts: Vec<String> = (0..32)
        .map(|i| acct_attrs("Start", "crowd", &format!("c{i}"), "127.0.0.2", 0, 0, 0))
        .collect();
    s.radclient_parallel("acct", &starts.join("\n\n"), 32);
    s.wait_for("the presence marks handled", WAIT, || {
        let c = s.sql();
        c.query_row(
            "SELECT COUNT(*) FROM presence_check WHERE due = 0",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 0
    });
    let count = |name: &str| events(&s, "crowd").iter().filter(|e| e.0 == name).count();
    assert_eq!(count("user_add"), 1);
    assert_eq!(count("user_auth"), 1);
    // All 32 stop at once: one logout, once the last is gone.
    let stops: Vec<String> = (0..32)
        .map(|i| acct_attrs("Stop", "crowd", &format!("c{i}"), "127.0.0.2", 0, 10, 30))
        .collect();
    s.radclient_parallel("acct", &stops.join("\n\n"), 32);
    s.wait_for("the logout", WAIT, || {
        has_event(&s, "crowd", "user_disconnect")
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count("user_disconnect"), 1);
    assert_eq!(
        s.cli_json(&["user", "show", "crowd"])["state"]["logged_in"],
        false
    );
}

#[test]
fn a_service_end_the_nas_refuses_disconnects_the_session_instead() {
    let nak =
        NasDouble::start(bind("127.0.0.7"), SECRET.as_bytes(), Answer::Nak(Some(503))).unwrap();
    let s = server(
        "nk Cleartext-Password := \"pw\"\n\tMikrotik-Rate-Limit := \"2M/2M\"\n",
        &[],
    );
    s.add_nas("127.0.0.7", "mikrotik", nak.addr());
    s.cli_ok(&[
        "service",
        "add",
        "short",
        "--timeout",
        "3",
        "--rate",
        "9M/9M",
    ]);
    let r = s.auth("nk", "pw", ", NAS-IP-Address = 127.0.0.7");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    s.session_update("Start", "nk", "127.0.0.7", 0);
    s.wait_for("logged in", WAIT, || {
        s.cli_json(&["user", "show", "nk"])["state"]["logged_in"] == true
    });
    s.cli_ok(&["service", "activate", "nk", "short"]);
    // The activation is refused: recorded, the session left alone.
    s.wait_for("the refused activation", WAIT, || {
        let a = s.cli_json(&["queue", "actions", "--user", "nk"]);
        a["actions"][0]["state"] == "failed"
    });
    let a = s.cli_json(&["queue", "actions", "--user", "nk"]);
    assert_eq!(a["actions"][0]["action"], "service-on");
    assert!(
        a["actions"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("CoA-NAK"),
        "{a}"
    );
    // The end at the timeout is refused too: the session is disconnected instead.
    s.wait_for("the fallback disconnect", WAIT, || {
        let q = s.cli_json(&["queue", "list"]);
        q["jobs"].as_array().unwrap().iter().any(|j| {
            j["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("service-off not applied")
        })
    });
    s.wait_for("a Disconnect-Request at the NAS", WAIT, || {
        nak.requests()
            .iter()
            .any(|p| p.code == Code::DisconnectRequest)
    });
}

#[test]
fn a_latin1_user_is_blocked_and_seen_by_its_hook_with_its_exact_bytes_across_a_restart() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let got = tmp.path().join("users.bin");
    let hook = tmp.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s %s\\n' \"$RLM_EVENT\" \"$RLM_USER\" >> {}\n",
            got.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let nas = NasDouble::start(bind("127.0.0.8"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let mut s = server(
        "DEFAULT\tCleartext-Password := \"pw\"\n",
        &[("HOOKS", &format!("\t\tall = {}", hook.display()))],
    );
    s.add_nas("127.0.0.8", "mikrotik", nas.addr());
    // radclient writes the Latin-1 byte as an octal escape in a string.
    let login = |s: &Server| {
        s.radclient(
            "auth",
            "User-Name = \"m\\374ller\", User-Password = \"pw\", NAS-IP-Address = 127.0.0.8",
        )
    };
    assert_eq!(login(&s).code(), Some("Access-Accept"));
    let start = "User-Name = \"m\\374ller\", Acct-Status-Type = Start, Acct-Session-Id = \"l1\", \
                 NAS-IP-Address = 127.0.0.8, Framed-IP-Address = 100.64.0.20";
    assert!(s.acct(start).ok);
    // The UTF-8 "müller" is another user, left alone.
    assert_eq!(
        s.auth("müller", "pw", ", NAS-IP-Address = 127.0.0.8")
            .code(),
        Some("Access-Accept")
    );
    let cli_raw = |s: &Server, args: &[&str]| {
        let out = std::process::Command::new(target_dir().join("rlm-rust"))
            .arg("--db")
            .arg(&s.db)
            .args(&args[..args.len() - 1])
            .arg(std::ffi::OsStr::from_bytes(b"m\xfcller"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = cli_raw(&s, &["user", "block", "USER"]);
    assert!(out.contains("own_disabled"), "{out}");
    assert!(out.contains("\"m\\xfcller\""), "shown escaped: {out}");
    s.wait_for("the Disconnect-Request", WAIT, || {
        nas.requests().iter().any(|p| {
            p.code == Code::DisconnectRequest
                && p.get(rlm_rust::radius::attrs::USER_NAME)
                    .map(|a| a.value.as_slice())
                    == Some(&b"m\xfcller"[..])
        })
    });
    // Across a restart the block holds; the other user is untouched.
    s.restart(None);
    let r = login(&s);
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
    assert_eq!(
        s.auth("müller", "pw", ", NAS-IP-Address = 127.0.0.8")
            .code(),
        Some("Access-Accept")
    );
    // The hook got the exact bytes.
    s.wait_for("the hook's own_disabled", WAIT, || {
        std::fs::read(&got)
            .unwrap_or_default()
            .windows(19)
            .any(|w| w == b"own_disabled m\xfcller")
    });
    let bytes = std::fs::read(&got).unwrap();
    let utf8 = "own_disabled müller".as_bytes();
    assert!(
        !bytes.windows(utf8.len()).any(|w| w == utf8),
        "the UTF-8 user was not blocked"
    );
    let shown = s.cli_json(&["user", "list", "--blocked"]);
    assert_eq!(shown["users"].as_array().unwrap().len(), 1, "{shown}");
    cli_raw(&s, &["user", "unblock", "USER"]);
    assert_eq!(login(&s).code(), Some("Access-Accept"));
}
