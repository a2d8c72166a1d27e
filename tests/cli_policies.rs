//! `policy` and `user` through the built `rlm-rust` binary on a temporary store.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use rlm_rust::store::{Store, StoreOptions};

mod common;
use common::cli::{fails_with, json, stdout, BIN};

fn rlm(db: &Path, args: &[&str]) -> Output {
    common::cli::run(db, "UTC", args, "")
}

/// A store as the module leaves it (the CLI never creates one).
fn new_db(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let db = dir.path().join("rlm.sqlite");
    Store::open(&db, StoreOptions::default())
        .unwrap()
        .shutdown();
    db
}

/// The command with raw-byte arguments (a Latin-1 user name).
fn rlm_os(db: &Path, args: &[&OsStr]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--timezone", "UTC"])
        .args(args)
        .env_remove("RLM_RUST_DB")
        .env_remove("RLM_RUST_TIMEZONE")
        .output()
        .unwrap()
}

fn add_gold(db: &Path) -> serde_json::Value {
    json(&rlm(
        db,
        &[
            "--json",
            "policy",
            "add",
            "gold",
            "--description",
            "10M, two devices",
            "--concurrent-connections",
            "1",
            "--max-devices",
            "2",
            "--session-timeout",
            "60",
            "--rate-down",
            "10M",
            "--schedule",
            "mon-fri 08:00-18:00",
            "--set",
            "Rust-Policy-Rate-Up=2M",
            "--check",
            "NAS-Port-Type == Wireless-802.11",
            "--reply",
            "Filter-Id := gold",
            "--reply",
            "Reply-Message = \"welcome, gold\"",
        ],
    ))
}

#[test]
fn add_show_list_set_unset_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(&dir);
    assert!(stdout(&rlm(&db, &["policy", "list"])).starts_with("no policies"));

    let added = add_gold(&db);
    let p = &added["policy"];
    assert_eq!(p["name"], "gold");
    assert_eq!(p["description"], "10M, two devices");
    assert_eq!(p["users"], 0);
    assert_eq!(p["fields"]["concurrent-connections"], "1");
    assert_eq!(p["fields"]["rate-up"], "2M");
    assert_eq!(p["fields"]["schedule"], "mon-fri 08:00-18:00");
    assert_eq!(p["fields"].as_object().unwrap().len(), 6);
    assert_eq!(
        p["check"][0],
        serde_json::json!({"attribute": "NAS-Port-Type", "op": "==", "value": "Wireless-802.11"})
    );
    assert_eq!(p["reply"][1]["value"], "welcome, gold");
    assert!(p["created"].is_i64() && p["updated_local"].is_string());
    // Every field, set or not, with its unit.
    let all = p["all_fields"].as_array().unwrap();
    assert_eq!(all.len(), rlm_rust::policies::FIELDS.len());
    let st = all
        .iter()
        .find(|f| f["field"] == "session-timeout")
        .unwrap();
    assert_eq!(
        (st["value"].as_str(), st["unit"].as_str()),
        (Some("60"), Some("min"))
    );
    let idle = all.iter().find(|f| f["field"] == "idle-timeout").unwrap();
    assert!(idle["value"].is_null());

    let shown = stdout(&rlm(&db, &["policy", "show", "gold"]));
    assert!(
        shown.contains("session-timeout")
            && shown.contains("min")
            && shown.contains("Filter-Id := \"gold\""),
        "{shown}"
    );
    let list = stdout(&rlm(&db, &["policy", "list"]));
    assert!(
        list.contains("gold")
            && list.contains("rate-down=10M")
            && list.contains("10M, two devices"),
        "{list}"
    );
    let v = json(&rlm(&db, &["--json", "policy", "list"]));
    assert_eq!(v["policies"].as_array().unwrap().len(), 1);
    assert_eq!(v["policies"][0]["fields"]["max-devices"], "2");

    // A second add of the same name is refused.
    fails_with(&rlm(&db, &["policy", "add", "gold"]), "exists");

    let v = json(&rlm(
        &db,
        &[
            "--json",
            "policy",
            "set",
            "gold",
            "--unset",
            "schedule",
            "--unset",
            "Rust-Policy-Rate-Up",
            "--rate-down",
            "20M",
            "--idle-timeout",
            "5",
            "--clear-reply",
            "--reply",
            "Filter-Id := gold2",
            "--check",
            "Called-Station-Id == hotspot-1",
            "--description",
            "",
        ],
    ));
    let p = &v["policy"];
    assert_eq!(p["fields"]["rate-down"], "20M");
    assert_eq!(p["fields"]["idle-timeout"], "5");
    assert!(p["fields"]["schedule"].is_null() && p["fields"]["rate-up"].is_null());
    assert_eq!(p["fields"]["concurrent-connections"], "1");
    assert_eq!(p["reply"].as_array().unwrap().len(), 1);
    assert_eq!(p["check"].as_array().unwrap().len(), 2);
    assert!(p["description"].is_null());

    fails_with(
        &rlm(&db, &["policy", "set", "silver", "--max-devices", "1"]),
        "no policy named \"silver\"",
    );
    let v = json(&rlm(&db, &["--json", "policy", "remove", "gold"]));
    assert_eq!(v["removed"], "gold");
    fails_with(
        &rlm(&db, &["policy", "show", "gold"]),
        "no policy named \"gold\"",
    );
    fails_with(&rlm(&db, &["policy", "remove", "gold"]), "no policy named");
}

#[test]
fn bad_values_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(&dir);
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--session-timeout", "1h"], &["session-timeout", "\"1h\""]),
        (&["--set", "max-devices=-1"], &["max-devices", "\"-1\""]),
        (
            &["--set", "frobs=3"],
            &["unknown policy field \"frobs\"", "\"3\""],
        ),
        (&["--set", "rate-down"], &["FIELD=VALUE"]),
        (
            &["--rate-down", "1M", "--set", "rate-down=2M"],
            &["rate-down", "twice"],
        ),
        (&["--reply", "Filter-Id == gold"], &["Filter-Id", "=="]),
    ];
    for (extra, needles) in cases {
        let mut args = vec!["policy", "add", "p"];
        args.extend_from_slice(extra);
        let o = rlm(&db, &args);
        for n in needles {
            fails_with(&o, n);
        }
    }
    fails_with(
        &rlm(&db, &["policy", "add", "p", "--check", "Filter-Id gold"]),
        "Filter-Id",
    );
    // Checked against the freeRADIUS dictionaries: a misspelt attribute, a value
    // of the wrong type.
    fails_with(
        &rlm(
            &db,
            &["policy", "add", "p", "--reply", "Filter-Idd := gold"],
        ),
        "Filter-Idd",
    );
    fails_with(
        &rlm(
            &db,
            &["policy", "add", "p", "--reply", "Session-Timeout := soon"],
        ),
        "soon",
    );
    fails_with(
        &rlm(
            &db,
            &[
                "policy",
                "add",
                "p",
                "--reply",
                "Filter-Id := x",
                "--dictionary",
                "/nonexistent",
            ],
        ),
        "--dictionary",
    );
    fails_with(&rlm(&db, &["policy", "add", " p"]), "invalid policy name");
    // Nothing was saved.
    let v = json(&rlm(&db, &["--json", "policy", "list"]));
    assert!(v["policies"].as_array().unwrap().is_empty());
    stdout(&rlm(&db, &["policy", "add", "p"]));
    fails_with(
        &rlm(&db, &["policy", "set", "p", "--unset", "frobs"]),
        "frobs",
    );
    fails_with(
        &rlm(&db, &["policy", "set", "p", "--daily-time", "x"]),
        "daily-time",
    );
    // Unknown option and missing arguments are usage errors.
    assert_eq!(
        rlm(&db, &["policy", "add", "q", "--frobs", "1"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(rlm(&db, &["user", "policy", "joe"]).status.code(), Some(2));
    assert_eq!(
        rlm(&db, &["user", "policy", "joe", "p", "--unassign"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn user_policy_assign_show_unassign_with_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(&dir);
    add_gold(&db);
    let latin1 = OsStr::from_bytes(b"m\xfcller");
    let a = |s: &'static str| OsStr::new(s);

    let v: serde_json::Value = serde_json::from_str(&stdout(&rlm_os(
        &db,
        &[a("--json"), a("user"), a("policy"), latin1, a("gold")],
    )))
    .unwrap();
    assert_eq!(v["policy"], "gold");
    assert!(v["previous"].is_null() && v["assigned_at"].is_i64());

    // Devices the module saw for that exact user.
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let user = rlm_rust::names::decode(b"m\xfcller");
    store
        .record_device(&user, "AA-BB-CC-00-00-01", 1_800_000_000)
        .unwrap();
    store.shutdown();

    let shown = stdout(&rlm_os(&db, &[a("user"), a("show"), latin1]));
    assert!(
        shown.contains("\"m\\xfcller\"")
            && shown.contains("policy: gold")
            && shown.contains("devices seen: 1 of 2")
            && shown.contains("AA-BB-CC-00-00-01"),
        "{shown}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&rlm_os(
        &db,
        &[a("--json"), a("user"), a("show"), latin1],
    )))
    .unwrap();
    assert_eq!(v["policy"], "gold");
    assert_eq!(v["devices_seen"], 1);
    assert_eq!(v["devices"][0]["calling_station_id"], "AA-BB-CC-00-00-01");
    assert_eq!(v["open_sessions"], 0);
    // The UTF-8 spelling is another user.
    let v = json(&rlm(&db, &["--json", "user", "show", "müller"]));
    assert!(v["policy"].is_null() && v["devices_seen"] == 0);

    let v = json(&rlm(&db, &["--json", "policy", "show", "gold"]));
    assert_eq!(v["policy"]["users"], 1);
    fails_with(
        &rlm(&db, &["policy", "remove", "gold"]),
        "assigned to 1 user",
    );
    fails_with(
        &rlm(&db, &["user", "policy", "joe", "platinum"]),
        "no policy named \"platinum\"",
    );

    // Assigning again (a new purchase) starts the device count over.
    stdout(&rlm_os(&db, &[a("user"), a("policy"), latin1, a("gold")]));
    let v: serde_json::Value = serde_json::from_str(&stdout(&rlm_os(
        &db,
        &[a("--json"), a("user"), a("show"), latin1],
    )))
    .unwrap();
    assert_eq!(v["devices_seen"], 0);

    let out = stdout(&rlm_os(
        &db,
        &[a("user"), a("policy"), latin1, a("--unassign")],
    ));
    assert!(out.contains("was gold"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&stdout(&rlm_os(
        &db,
        &[a("--json"), a("user"), a("show"), latin1],
    )))
    .unwrap();
    assert!(v["policy"].is_null() && v["assigned_at"].is_null());
    stdout(&rlm(&db, &["policy", "remove", "gold"]));
}

#[test]
fn modulation_fields_and_the_curves_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = new_db(&dir);
    let out = rlm(
        &db,
        &[
            "policy",
            "add",
            "mod",
            "--rate-down",
            "10M",
            "--rate-up",
            "2M",
            "--modulation",
            "linear",
            "--modulation-period",
            "hours",
            "--modulation-hours",
            "24",
            "--modulation-traffic",
            "total",
            "--modulation-max-total",
            "1000",
            "--modulation-min-down",
            "1M",
            "--modulation-min-up",
            "200k",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = rlm(&db, &["policy", "curves", "--policy", "mod"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (pct, rate) in [
        ("0%", "2M/10M"),
        ("25%", "1550k/7750k"),
        ("50%", "1100k/5500k"),
        ("75%", "650k/3250k"),
        ("100%", "200k/1M"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(pct) && l.ends_with(rate)),
            "{pct} {rate}:\n{text}"
        );
    }
    let svg = dir.path().join("c.svg");
    let out = rlm(&db, &["policy", "curves", "--svg", svg.to_str().unwrap()]);
    assert!(out.status.success());
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg") && chart.contains("min-at-max"),
        "{chart}"
    );
    let out = rlm(&db, &["policy", "curves"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("medium") && text.contains("25%"), "{text}");
    // Inconsistent sets are refused, naming the field.
    let base = [
        "policy",
        "add",
        "bad",
        "--rate-down",
        "10M",
        "--modulation",
        "low",
        "--modulation-period",
        "month",
    ];
    for (extra, field) in [
        (
            &[
                "--modulation-traffic",
                "separate",
                "--modulation-max-down",
                "5",
                "--modulation-min-down",
                "1M",
            ][..],
            "modulation-max-up",
        ),
        (
            &[
                "--modulation-traffic",
                "total",
                "--modulation-max-total",
                "10",
                "--modulation-min-down",
                "20M",
            ][..],
            "modulation-min-down",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = rlm(&db, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(field),
            "{field}: {err}"
        );
    }
    let out = rlm(
        &db,
        &[
            "policy",
            "add",
            "t",
            "--on-exhausted",
            "throttle",
            "--throttle-rate-down",
            "1M",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("throttle-rate-up"),
        "{err}"
    );
}
