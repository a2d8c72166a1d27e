//! End to end through the real freeradius: rate modulation and throttling instead of
//! cutting. The NAS is played by in-process RFC 5176 doubles on their own loopback
//! addresses (127.0.0.2 answers ACK, 127.0.0.4 NAK); the module's background thread
//! runs every second on the real clock.
mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;

use rlm_rust::radius::attrs;
use rlm_rust::radius::double::{Answer, NasDouble};
use rlm_rust::radius::Code;

const WAIT: Duration = Duration::from_secs(20);
const MB: u64 = 1 << 20;

fn bind(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

fn server(users: &str) -> Server {
    Server::start(Options {
        users: users.into(),
        timezone: Some("UTC".into()),
        background_interval: Some("1s".into()),
        stale_after: Some("0".into()),
        raddb_env: vec![
            ("BULK_DISCONNECT".into(), "no".into()),
            ("DM_TIMEOUT".into(), "1s".into()),
            ("DM_RETRIES".into(), "0".into()),
        ],
        ..Default::default()
    })
}

fn login_rate(s: &Server, user: &str, nas: &str) -> String {
    let r = s.auth(user, "pw", &format!(", NAS-IP-Address = {nas}"));
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);
    r.output
        .lines()
        .rev()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Mikrotik-Rate-Limit = ")
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no Mikrotik-Rate-Limit: {}", r.output))
}

fn coa_rows(s: &Server) -> Vec<(String, String, String, Option<String>)> {
    let c = s.sql();
    let mut st = c
        .prepare("SELECT username, purpose, state, rate_limit FROM coa_queue ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn disconnect_reasons(s: &Server) -> Vec<(String, String)> {
    let c = s.sql();
    let mut st = c
        .prepare("SELECT username, reason FROM disconnect_queue ORDER BY id")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn coa_rate_change_acked_and_a_nak_falls_back_to_a_disconnect_request() {
    let ack = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let nak =
        NasDouble::start(bind("127.0.0.4"), SECRET.as_bytes(), Answer::Nak(Some(404))).unwrap();
    let s = server("mia\tCleartext-Password := \"pw\"\nnoa\tCleartext-Password := \"pw\"\n");
    s.add_nas("127.0.0.2", "mikrotik", ack.addr());
    s.add_nas("127.0.0.4", "mikrotik", nak.addr());
    s.cli_ok(&[
        "policy",
        "add",
        "mod",
        "--rate-down",
        "10M",
        "--rate-up",
        "2M",
        "--modulation",
        "linear",
        "--modulation-activate",
        "0",
        "--modulation-deactivate",
        "0",
        "--modulation-period",
        "hours",
        "--modulation-hours",
        "2",
        "--modulation-traffic",
        "total",
        "--modulation-max-total",
        "100",
        "--modulation-min-down",
        "1M",
        "--modulation-min-up",
        "200k",
    ]);
    s.cli_ok(&["user", "policy", "mia", "mod"]);
    s.cli_ok(&["user", "policy", "noa", "mod"]);

    // Login: no traffic yet, the full rate.
    assert_eq!(login_rate(&s, "mia", "127.0.0.2"), "2M/10M");
    s.session_update("Start", "mia", "127.0.0.2", 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ack.requests().is_empty(), "no change, no CoA");
    // Half the maximum traffic: the rate falls to the middle, by CoA.
    s.session_update("Interim-Update", "mia", "127.0.0.2", 50 * MB);
    s.wait_for("a CoA at 127.0.0.2", WAIT, || !ack.requests().is_empty());
    let p = &ack.requests()[0];
    assert_eq!(p.code, Code::CoaRequest);
    assert_eq!(rate_of(p).as_deref(), Some("1100k/5500k"));
    assert_eq!(p.text(attrs::USER_NAME).as_deref(), Some("mia"));
    assert_eq!(p.text(attrs::ACCT_SESSION_ID).as_deref(), Some("sess-mia"));
    assert_eq!(
        p.ipv4(attrs::FRAMED_IP_ADDRESS).map(|a| a.to_string()),
        Some("100.64.0.10".into())
    );
    assert_eq!(
        p.ipv4(attrs::NAS_IP_ADDRESS).map(|a| a.to_string()),
        Some("127.0.0.2".into())
    );
    assert!(p.integer(attrs::EVENT_TIMESTAMP).is_some());
    assert!(p.get(attrs::MESSAGE_AUTHENTICATOR).is_some());
    assert_eq!(ack.bad_requests(), 0, "signed with the client's secret");
    s.wait_for("the CoA row acked", WAIT, || {
        coa_rows(&s).iter().any(|r| r.2 == "acked")
    });
    assert_eq!(
        coa_rows(&s),
        [(
            "mia".into(),
            "modulation".into(),
            "acked".into(),
            Some("1100k/5500k".into())
        )]
    );
    // The change is a user_rate_set event (old rate: the login's).
    let ev = s.cli_json(&["events", "--user", "mia"]);
    let rate_set: Vec<&serde_json::Value> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "user_rate_set")
        .collect();
    assert_eq!(rate_set.len(), 1, "{ev}");
    assert_eq!(rate_set[0]["source"], "policy");
    assert_eq!(rate_set[0]["old"], "2M/10M");
    assert_eq!(rate_set[0]["new"], "1100k/5500k");
    // Sent once: the next ticks find the rate unchanged.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(ack.requests().len(), 1);
    // A new login gets the modulated rate right away.
    assert_eq!(login_rate(&s, "mia", "127.0.0.2"), "1100k/5500k");
    assert!(disconnect_reasons(&s).is_empty());

    // The NAS refuses the CoA: the session is queued for disconnection instead, and
    // the disconnect worker sends the Disconnect-Request.
    assert_eq!(login_rate(&s, "noa", "127.0.0.4"), "2M/10M");
    s.session_update("Start", "noa", "127.0.0.4", 0);
    s.session_update("Interim-Update", "noa", "127.0.0.4", 100 * MB);
    s.wait_for("a Disconnect-Request at 127.0.0.4", WAIT, || {
        nak.requests()
            .iter()
            .any(|p| p.code == Code::DisconnectRequest)
    });
    let reqs = nak.requests();
    assert_eq!(reqs[0].code, Code::CoaRequest);
    assert_eq!(rate_of(&reqs[0]).as_deref(), Some("200k/1M"));
    let reasons = disconnect_reasons(&s);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert_eq!(reasons[0].0, "noa");
    assert!(
        reasons[0]
            .1
            .starts_with("rate change: rate 200k/1M not applied: CoA-NAK"),
        "{reasons:?}"
    );
}

#[test]
fn throttle_lets_an_exhausted_user_in_slowly_and_slows_an_over_limit_session() {
    let dm = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    let s = server(
        "tim\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"1\"\n\
         cut\tCleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"1\"\n",
    );
    s.add_nas("127.0.0.2", "mikrotik", dm.addr());
    s.cli_ok(&[
        "policy",
        "add",
        "slow",
        "--rate-down",
        "10M",
        "--rate-up",
        "2M",
        "--on-exhausted",
        "throttle",
        "--throttle-rate-down",
        "256k",
        "--throttle-rate-up",
        "64k",
    ]);
    s.cli_ok(&["policy", "add", "plain", "--rate-down", "10M"]);
    s.cli_ok(&["user", "policy", "tim", "slow"]);
    s.cli_ok(&["user", "policy", "cut", "plain"]);

    // Within the allowance: the normal rate.
    assert_eq!(login_rate(&s, "tim", "127.0.0.2"), "2M/10M");
    s.session_update("Start", "tim", "127.0.0.2", 0);
    // Over the 1 MB: a CoA with the throttle rate, no disconnect.
    s.session_update("Interim-Update", "tim", "127.0.0.2", 2 * MB);
    s.wait_for("a CoA with the throttle rate", WAIT, || {
        !dm.requests().is_empty()
    });
    let p = &dm.requests()[0];
    assert_eq!(p.code, Code::CoaRequest);
    assert_eq!(rate_of(p).as_deref(), Some("64k/256k"));
    assert_eq!(p.text(attrs::ACCT_SESSION_ID).as_deref(), Some("sess-tim"));
    s.wait_for("the CoA acked", WAIT, || {
        coa_rows(&s)
            == [(
                "tim".into(),
                "exhausted".into(),
                "acked".into(),
                Some("64k/256k".into()),
            )]
    });
    // Later updates over the limit change nothing more.
    s.session_update("Interim-Update", "tim", "127.0.0.2", 3 * MB);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(dm.requests().len(), 1);
    assert!(disconnect_reasons(&s).is_empty());

    // Logging in again while exhausted: let in at the throttle rate.
    assert_eq!(login_rate(&s, "tim", "127.0.0.2"), "64k/256k");
    assert!(
        s.log_text().contains("let in by the policy's on-exhausted"),
        "{}",
        s.log_text()
    );

    // Without throttle in the policy an exhausted user is still refused and cut.
    assert_eq!(login_rate(&s, "cut", "127.0.0.2"), "0/10M");
    s.session_update("Start", "cut", "127.0.0.2", 0);
    s.session_update("Interim-Update", "cut", "127.0.0.2", 2 * MB);
    s.wait_for("a Disconnect-Request for cut", WAIT, || {
        dm.requests()
            .iter()
            .any(|p| p.code == Code::DisconnectRequest)
    });
    let r = s.auth("cut", "pw", ", NAS-IP-Address = 127.0.0.2");
    assert_eq!(r.code(), Some("Access-Reject"), "{}", r.output);
}
