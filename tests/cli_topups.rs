//! `limits`, `topup` and `autotopup` through the built `rlm-rust` binary, with usage
//! written through the library's store.

use std::path::Path;
use std::process::Output;

use rlm_rust::sessions::{AcctStatus, AcctUpdate};
use rlm_rust::store::{Store, StoreOptions};

mod common;
use common::cli::{fails_with, json, stdout};

fn rlm(db: &Path, args: &[&str]) -> Output {
    common::cli::run(db, "UTC", args, "")
}
const MIB: i64 = 1024 * 1024;

fn upd(status: AcctStatus, input: u64, output: u64, time: u32, at: i64) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: "127.0.0.2".into(),
        session_id: "s1".into(),
        unique_id: None,
        username: "alice".into(),
        input_octets: input,
        output_octets: output,
        gigawords: false,
        session_time: Some(time),
        framed_ip: None,
        calling_station_id: None,
        nas_port: Some(1),
        terminate_cause: None,
        event_time: at,
    }
}

/// alice used 300 MiB in + 100 MiB out and 600 s this month (UTC).
fn populate(path: &Path) {
    let store = Store::open(path, StoreOptions::default()).unwrap();
    let now = chrono::Utc::now().timestamp();
    store
        .record(upd(AcctStatus::Start, 0, 0, 0, now - 1))
        .unwrap();
    store
        .record(upd(AcctStatus::Interim, 300 << 20, 100 << 20, 600, now))
        .unwrap();
    store.shutdown();
}

fn next_year() -> String {
    use chrono::Datelike;
    format!("{}-01-01", chrono::Utc::now().year() + 1)
}

#[test]
fn limits_topups_and_remaining() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    populate(&db);

    let set = json(&rlm(
        &db,
        &[
            "--json",
            "limits",
            "set",
            "alice",
            "--traffic-mb",
            "300",
            "--uptime-min",
            "60",
        ],
    ));
    assert_eq!(set["attributes"].as_array().unwrap().len(), 2);

    let v = json(&rlm(&db, &["--json", "limits", "alice"]));
    assert_eq!(v["traffic"]["usage"], 400 * MIB);
    assert_eq!(v["traffic"]["remaining"], -100 * MIB);
    assert_eq!(v["uptime"]["usage"], 600);
    assert_eq!(v["uptime"]["remaining"], 3000);
    assert_eq!(v["state"], "exhausted");

    let added = json(&rlm(
        &db,
        &[
            "--json",
            "topup",
            "add",
            "alice",
            "--traffic",
            "200",
            "--valid-to",
            &next_year(),
        ],
    ));
    let id = added["topup"]["id"].as_u64().unwrap();
    assert_eq!(added["topup"]["value"], 200);
    assert_eq!(added["topup"]["kind"], "traffic");

    // Valid from now: all 200 MB left; the 100 MB over from before it started stay
    // uncovered (a topup covers only usage during its validity).
    let v = json(&rlm(&db, &["--json", "limits", "alice"]));
    assert_eq!(v["traffic"]["topups"], 200 * MIB);
    assert_eq!(v["traffic"]["uncovered"], 100 * MIB);
    assert_eq!(v["traffic"]["remaining"], 200 * MIB);
    assert_eq!(v["state"], "allowed");
    assert_eq!(v["topups"].as_array().unwrap().len(), 1);

    let human = stdout(&rlm(&db, &["limits", "alice"]));
    assert!(
        human.contains("300 MB") && human.contains("allowed"),
        "{human}"
    );

    let list = json(&rlm(&db, &["--json", "topup", "list", "alice"]));
    assert_eq!(list["topups"][0]["id"].as_u64(), Some(id));
    let table = stdout(&rlm(&db, &["topup", "list"]));
    assert!(
        table.contains("200 MB") && table.contains("alice"),
        "{table}"
    );

    stdout(&rlm(&db, &["topup", "remove", &id.to_string()]));
    let v = json(&rlm(&db, &["--json", "limits", "alice"]));
    assert_eq!(v["traffic"]["remaining"], -100 * MIB);
    assert!(v["topups"].as_array().unwrap().is_empty());

    // Unset traffic: unlimited, only uptime left.
    stdout(&rlm(&db, &["limits", "unset", "alice", "--traffic"]));
    let v = json(&rlm(&db, &["--json", "limits", "alice"]));
    assert!(v["traffic"]["remaining"].is_null());
    assert_eq!(v["uptime"]["remaining"], 3000);
    assert_eq!(v["state"], "allowed");
}

#[test]
fn autotopup_set_and_disable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    populate(&db);
    let attrs = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["attribute"].as_str().unwrap().to_string(),
                    a["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let v = json(&rlm(
        &db,
        &[
            "--json",
            "autotopup",
            "set",
            "alice",
            "--type",
            "traffic",
            "--amount",
            "50",
            "--limit",
            "200",
            "--notify",
            "a@b,c@d",
        ],
    ));
    let got = attrs(&v);
    for want in [
        ("Rust-AutoTopup-Traffic-Enabled", "yes"),
        ("Rust-AutoTopup-Traffic-Amount", "50"),
        ("Rust-AutoTopup-Traffic-Limit", "200"),
        ("Rust-AutoTopup-Traffic-Notify", "a@b,c@d"),
    ] {
        assert!(got.contains(&(want.0.into(), want.1.into())), "{got:?}");
    }
    // Setting again without --limit drops the old limit.
    let v = json(&rlm(
        &db,
        &[
            "--json",
            "autotopup",
            "set",
            "alice",
            "--type",
            "traffic",
            "--amount",
            "20",
        ],
    ));
    assert_eq!(
        attrs(&v),
        [
            (
                "Rust-AutoTopup-Traffic-Amount".to_string(),
                "20".to_string()
            ),
            ("Rust-AutoTopup-Traffic-Enabled".into(), "yes".into()),
        ]
    );
    let v = json(&rlm(
        &db,
        &[
            "--json",
            "autotopup",
            "disable",
            "alice",
            "--type",
            "traffic",
        ],
    ));
    assert!(attrs(&v).contains(&("Rust-AutoTopup-Traffic-Enabled".into(), "no".into())));
}

#[test]
fn invalid_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    populate(&db);
    let ny = next_year();
    fails_with(
        &rlm(
            &db,
            &[
                "topup",
                "add",
                "alice",
                "--traffic",
                "10",
                "--valid-to",
                "soon",
            ],
        ),
        "invalid date",
    );
    fails_with(
        &rlm(
            &db,
            &[
                "topup",
                "add",
                "alice",
                "--traffic",
                "10",
                "--valid-from",
                &ny,
                "--valid-to",
                &ny,
            ],
        ),
        "must be after",
    );
    fails_with(
        &rlm(
            &db,
            &["topup", "add", "alice", "--uptime", "0", "--valid-to", &ny],
        ),
        "larger than 0",
    );
    fails_with(
        &rlm(&db, &["topup", "remove", "999"]),
        "no topup with id 999",
    );
    fails_with(
        &rlm(
            &db,
            &[
                "autotopup",
                "set",
                "alice",
                "--type",
                "uptime",
                "--amount",
                "0",
            ],
        ),
        "larger than 0",
    );
    // Nothing was stored by the failures.
    let list = json(&rlm(&db, &["--json", "topup", "list", "--all"]));
    assert!(list["topups"].as_array().unwrap().is_empty());

    // Writes never create a database.
    let missing = dir.path().join("missing.sqlite");
    fails_with(
        &rlm(&missing, &["limits", "set", "alice", "--traffic-mb", "1"]),
        "does not exist",
    );
    assert!(!missing.exists());

    // Usage errors (clap): exit 2.
    let o = rlm(&db, &["limits", "set", "alice"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rlm(
        &db,
        &[
            "topup",
            "add",
            "alice",
            "--traffic",
            "1",
            "--uptime",
            "1",
            "--valid-to",
            &ny,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}
