//! Runs the built `rlm-rust` binary against a store populated through the library.

use std::path::Path;
use std::process::{Command, Output};

use rlm_rust::sessions::{octets, AcctStatus, AcctUpdate};
use rlm_rust::store::{Store, StoreOptions};

mod common;
use common::cli::{json, stdout, BIN};

fn rlm(db: &Path, args: &[&str]) -> Output {
    common::cli::run(db, "Europe/Berlin", args, "")
}

fn ts(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp()
}

#[allow(clippy::too_many_arguments)] // a test row builder: one argument per column
fn upd(
    status: AcctStatus,
    user: &str,
    sid: &str,
    nas: &str,
    input: u64,
    output: u64,
    time: u32,
    at: i64,
) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: nas.into(),
        session_id: sid.into(),
        unique_id: None,
        username: user.into(),
        input_octets: input,
        output_octets: output,
        gigawords: false,
        session_time: Some(time),
        framed_ip: Some("100.64.1.2".into()),
        calling_station_id: None,
        nas_port: Some(3),
        terminate_cause: (status == AcctStatus::Stop).then(|| "Idle-Timeout".into()),
        event_time: at,
    }
}

/// alice: one closed 5 GiB session across the Oct/Nov month end (Berlin) on
/// 127.0.0.2; bob: one open session on 127.0.0.3.
fn populate(path: &Path) -> Store {
    let opts = StoreOptions {
        timezone: chrono_tz::Europe::Berlin,
        ..StoreOptions::default()
    };
    let store = Store::open(path, opts).unwrap();
    let packets = [
        upd(
            AcctStatus::Start,
            "alice",
            "a1",
            "127.0.0.2",
            0,
            0,
            0,
            ts("2026-10-31T22:00:00Z"),
        ),
        upd(
            AcctStatus::Interim,
            "alice",
            "a1",
            "127.0.0.2",
            octets(0, 1),
            1024,
            3540,
            ts("2026-10-31T22:59:00Z"),
        ),
        upd(
            AcctStatus::Stop,
            "alice",
            "a1",
            "127.0.0.2",
            octets(1 << 30, 1),
            4096,
            5400,
            ts("2026-10-31T23:30:00Z"),
        ),
        upd(
            AcctStatus::Start,
            "bob",
            "b1",
            "127.0.0.3",
            0,
            0,
            0,
            ts("2026-11-02T08:00:00Z"),
        ),
        upd(
            AcctStatus::Interim,
            "bob",
            "b1",
            "127.0.0.3",
            1_048_576,
            2048,
            600,
            ts("2026-11-02T08:10:00Z"),
        ),
    ];
    for p in packets {
        store.record(p).unwrap();
    }
    store
}

#[test]
fn sessions_list_table_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let _store = populate(&db); // still open: the CLI reads alongside the writer
    let out = stdout(&rlm(&db, &["sessions", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("USER "), "{out}");
    for col in [
        "NAS",
        "SESSION",
        "STARTED",
        "ENDED",
        "TIME",
        "IN",
        "OUT",
        "FRAMED-IP",
        "STATE",
    ] {
        assert!(lines[0].contains(col), "{col} missing: {out}");
    }
    // Newest first; times in Berlin.
    assert!(lines[1].starts_with("bob "), "{out}");
    assert!(
        lines[1].contains("2026-11-02 09:00:00") && lines[1].ends_with("open"),
        "{out}"
    );
    assert!(lines[1].contains("1.00 MiB"), "{out}");
    assert!(lines[2].starts_with("alice "), "{out}");
    assert!(
        lines[2].contains("2026-10-31 23:00:00") && lines[2].contains("2026-11-01 00:30:00"),
        "{out}"
    );
    assert!(
        lines[2].contains("5.00 GiB") && lines[2].contains("01:30:00"),
        "{out}"
    );
    assert!(lines[2].ends_with("closed (stop: Idle-Timeout)"), "{out}");
}

#[test]
fn sessions_list_filters_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    drop(populate(&db));
    let v = json(&rlm(&db, &["--json", "sessions", "list", "--closed"]));
    let s = v["sessions"].as_array().unwrap();
    assert_eq!(s.len(), 1);
    let a = &s[0];
    assert_eq!(a["username"], "alice");
    assert_eq!(a["nas_ip"], "127.0.0.2");
    assert_eq!(a["session_key"], "a1");
    assert_eq!(a["open"], false);
    assert_eq!(a["input_octets"].as_u64(), Some(5 << 30));
    assert_eq!(a["output_octets"].as_u64(), Some(4096));
    assert_eq!(a["session_time"].as_u64(), Some(5400));
    assert_eq!(a["start_time"].as_i64(), Some(ts("2026-10-31T22:00:00Z")));
    assert_eq!(a["start_time_local"], "2026-10-31T23:00:00+01:00");
    assert_eq!(a["stop_time_local"], "2026-11-01T00:30:00+01:00");
    assert_eq!(a["closed_reason"], "stop");
    assert_eq!(a["terminate_cause"], "Idle-Timeout");

    let cases: [(&[&str], &[&str]); 5] = [
        (&["--open"], &["bob"]),
        (&["--user", "alice"], &["alice"]),
        (&["--nas", "127.0.0.3"], &["bob"]),
        (&["--limit", "1"], &["bob"]),
        (&["--user", "nobody"], &[]),
    ];
    for (args, users) in cases {
        let mut full = vec!["sessions", "list", "--json"];
        full.extend_from_slice(args);
        let v = json(&rlm(&db, &full));
        let got: Vec<&str> = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["username"].as_str().unwrap())
            .collect();
        assert_eq!(got, users, "{args:?}");
    }
    assert_eq!(
        stdout(&rlm(&db, &["sessions", "list", "--user", "nobody"])),
        "no sessions match\n"
    );
}

#[test]
fn usage_table_and_json_split_at_the_month_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    drop(populate(&db));
    let v = json(&rlm(&db, &["usage", "alice", "--json"]));
    assert_eq!(v["username"], "alice");
    let months = v["months"].as_array().unwrap();
    assert_eq!(months.len(), 2);
    assert_eq!(months[0]["month"], "2026-11");
    assert_eq!(months[0]["input_octets"].as_u64(), Some(1 << 30));
    assert_eq!(months[0]["output_octets"].as_u64(), Some(3072));
    assert_eq!(months[0]["total_octets"].as_u64(), Some((1 << 30) + 3072));
    assert_eq!(months[0]["session_time"].as_u64(), Some(1860));
    assert_eq!(months[1]["month"], "2026-10");
    assert_eq!(months[1]["input_octets"].as_u64(), Some(4 << 30));
    let days: Vec<&str> = v["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-11-01", "2026-10-31"]);

    let out = stdout(&rlm(&db, &["usage", "alice"]));
    assert!(out.starts_with("usage of alice\n"), "{out}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {out}"))
            .to_string()
    };
    assert!(line("MONTH").contains("TOTAL"), "{out}");
    assert!(
        line("2026-11 ").contains("1.00 GiB") && line("2026-11 ").contains("3.00 KiB"),
        "{out}"
    );
    assert!(
        line("2026-10 ").contains("4.00 GiB") && line("2026-10 ").contains("00:59:00"),
        "{out}"
    );
    assert!(line("DAY").contains("IN"), "{out}");
    assert!(line("2026-10-31").contains("4.00 GiB"), "{out}");

    assert_eq!(
        stdout(&rlm(&db, &["usage", "nobody"])),
        "no usage recorded for nobody\n"
    );
    let v = json(&rlm(&db, &["usage", "nobody", "--json"]));
    assert_eq!(v["months"].as_array().unwrap().len(), 0);
}

#[test]
fn db_from_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    drop(populate(&db));
    let o = Command::new(BIN)
        .args(["--json", "usage", "bob"])
        .env("RLM_RUST_DB", &db)
        .env("RLM_RUST_TIMEZONE", "UTC")
        .output()
        .unwrap();
    assert_eq!(
        json(&o)["months"][0]["input_octets"].as_u64(),
        Some(1_048_576)
    );
}

#[test]
fn errors_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sqlite");
    let o = rlm(&missing, &["sessions", "list"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&missing.display().to_string()) && err.contains("RLM_RUST_DB"),
        "{err}"
    );
    assert!(!missing.exists(), "the CLI never creates the database");

    let usage_errors: [&[&str]; 3] = [
        &["sessions", "list", "--open", "--closed"],
        &["usage"],
        &["frobnicate"],
    ];
    for args in usage_errors {
        assert_eq!(rlm(&missing, args).status.code(), Some(2), "{args:?}");
    }
    let o = Command::new(BIN)
        .args(["--timezone", "Nowhere/Land", "usage", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown time zone"));
}
