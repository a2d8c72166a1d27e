//! Smoke run of the load generator against the real freeradius with the module: a few
//! hundred requests, zero loss, and the store holds exactly what was sent.
//! (The benchmark itself, scripts/bench.sh, is not part of the test suite.)
mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

const USERS: u64 = 40;

fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rlm-rust-loadgen"))
        .args(["--secret", SECRET, "--json", "--timeout-ms", "3000"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "loadgen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn users_file() -> String {
    (0..USERS)
        .map(|i| format!("smoke{i}\tCleartext-Password := \"pw-smoke\"\n"))
        .collect()
}

#[test]
fn loadgen_against_the_real_server_loses_nothing_and_records_everything() {
    let s = Server::start(Options {
        users: users_file(),
        ..Default::default()
    });
    let users = USERS.to_string();
    let common = [
        "--users",
        &users,
        "--user-prefix",
        "smoke",
        "--window",
        "32",
    ];

    // Accounting: 2 generations x 40 sessions x (Start, Interim, Stop).
    let acct = format!("127.0.0.1:{}", s.acct_port);
    let sent = 2 * USERS * 3;
    let v = loadgen(
        &[
            &["--server", &acct, "--mode", "acct", "--interims", "1"][..],
            &["--requests", &sent.to_string(), "--nas-ip", "192.0.2.7"],
            &common,
        ]
        .concat(),
    );
    assert_eq!(v["answered"], sent, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["codes"]["Accounting-Response"], sent, "{v}");

    // Every session closed by its Stop with the Stop's counters: tick 2 of the
    // loadgen's plan is 2 x 50 MB in and 2 x 400 MB out, plus the session index.
    let db = s.sql();
    let mut stmt = db
        .prepare(
            "SELECT nas_port, input_octets, output_octets, session_time, closed_reason, nas_ip \
             FROM sessions ORDER BY id",
        )
        .unwrap();
    type Row = (u64, u64, u64, u64, Option<String>, String);
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len() as u64, 2 * USERS);
    for (port, input, output, time, reason, nas) in &rows {
        assert_eq!(*input, 100_000_000 + port);
        assert_eq!(*output, 800_000_000 + port);
        assert_eq!(*time, 600);
        assert_eq!(reason.as_deref(), Some("stop"));
        assert_eq!(nas, "192.0.2.7");
    }

    // Usage per user over all months: the two sessions of user u are both session u.
    let mut per_user: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut stmt = db
        .prepare("SELECT username, input_octets, output_octets, session_time FROM usage_month")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (user, i, o, t) = row.unwrap();
        let e = per_user.entry(user).or_default();
        e.0 += i;
        e.1 += o;
        e.2 += t;
    }
    assert_eq!(per_user.len() as u64, USERS);
    for u in 0..USERS {
        let got = per_user[&format!("smoke{u}")];
        assert_eq!(
            got,
            (2 * (100_000_000 + u), 2 * (800_000_000 + u), 1200),
            "smoke{u}"
        );
    }
    let daily: u64 = db
        .query_row(
            "SELECT SUM(input_octets + output_octets) FROM usage_day",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let monthly: u64 = per_user.values().map(|u| u.0 + u.1).sum();
    assert_eq!(daily, monthly);

    // Access-Request + post-auth: every user accepted; a wrong password rejected.
    let auth = format!("127.0.0.1:{}", s.auth_port);
    let base = [&["--server", &auth, "--mode", "auth"][..], &common].concat();
    let v = loadgen(&[&base[..], &["--requests", "200", "--password", "pw-smoke"]].concat());
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["codes"]["Access-Accept"], 200, "{v}");
    let v = loadgen(&[&base[..], &["--requests", "20", "--password", "wrong"]].concat());
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["codes"]["Access-Reject"], 20, "{v}");
}
