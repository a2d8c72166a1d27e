//! Runs the built `rlm-rust` binary's `nas` and `queue` commands.

use std::path::Path;
use std::process::Output;

use rlm_rust::store::{Admin, JobOutcome, JobState, Method, NewDisconnectJob};

mod common;
use common::cli::{fails_with as fails, json, stdout};

/// Runs the CLI and checks that neither secret ever reaches its output.
fn rlm_with_stdin(db: &Path, args: &[&str], stdin: &str) -> Output {
    let out = common::cli::run(db, "UTC", args, stdin);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(PASSWORD), "password printed: {all}");
    assert!(!all.contains(SECRET), "secret printed: {all}");
    out
}
const SECRET: &str = "Sh4redS3cret-xyz";
const PASSWORD: &str = "ApiPassw0rd-abc";

fn rlm(db: &Path, args: &[&str]) -> Output {
    rlm_with_stdin(db, args, "")
}

#[test]
fn nas_add_list_set_remove() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    stdout(&rlm_with_stdin(
        &db,
        &[
            "nas",
            "add",
            "127.0.0.2",
            "--name",
            "core",
            "--secret",
            SECRET,
            "--api-host",
            "127.0.0.9",
            "--api-user",
            "radius",
            "--api-password-stdin",
            "--api-tls",
            "--api-port",
            "8729",
        ],
        &format!("{PASSWORD}\n"),
    ));
    // The password came over stdin.
    let o = rlm_with_stdin(
        &db,
        &[
            "nas",
            "add",
            "127.0.0.3",
            "--name",
            "edge",
            "--coa-host",
            "127.0.0.10",
            "--coa-port",
            "1700",
            "--api-host",
            "127.0.0.11",
            "--api-password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    stdout(&o);
    // Same IP or name again is refused.
    fails(
        &rlm(&db, &["nas", "add", "127.0.0.2", "--name", "other"]),
        "exists already",
    );
    fails(
        &rlm(&db, &["nas", "add", "127.0.0.4", "--name", "core"]),
        "exists already",
    );

    let out = stdout(&rlm(&db, &["nas", "list"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for col in ["NAS-IP", "NAME", "TYPE", "COA", "SECRET", "API"] {
        assert!(lines[0].contains(col), "{out}");
    }
    assert!(lines[1].starts_with("127.0.0.2 "), "{out}");
    assert!(
        lines[1].contains("127.0.0.2:3799") && lines[1].contains(" set "),
        "{out}"
    );
    assert!(lines[1].ends_with("radius@127.0.0.9:8729 tls"), "{out}");
    assert!(lines[2].contains("127.0.0.10:1700"), "{out}");
    assert!(lines[2].ends_with("127.0.0.11:8728"), "{out}");

    let v = json(&rlm(&db, &["--json", "nas", "list"]));
    let nas = v["nas"].as_array().unwrap();
    assert_eq!(nas.len(), 2);
    let core = &nas[0];
    assert_eq!(core["nas_ip"], "127.0.0.2");
    assert_eq!(core["name"], "core");
    assert_eq!(core["type"], "mikrotik");
    assert_eq!(core["coa_host"], serde_json::Value::Null);
    assert_eq!(core["coa_port"], 3799);
    assert_eq!(core["secret_set"], true);
    assert_eq!(core["api_port"], 8729);
    assert_eq!(core["api_user"], "radius");
    assert_eq!(core["api_tls"], true);
    assert_eq!(core["api_timeout_ms"], 5000);
    assert!(core.get("secret").is_none() && core.get("api_password").is_none());
    assert_eq!(nas[1]["secret_set"], false);
    assert_eq!(nas[1]["api_password_set"], true);

    // Set by name; set the password inline (it still never shows up).
    stdout(&rlm(
        &db,
        &[
            "nas",
            "set",
            "core",
            "--no-api-tls",
            "--api-port",
            "8728",
            "--api-timeout-ms",
            "2000",
            "--secret",
            "",
            "--api-password",
            PASSWORD,
        ],
    ));
    let v = json(&rlm(&db, &["--json", "nas", "list"]));
    let core = &v["nas"][0];
    assert_eq!(
        (
            &core["api_tls"],
            &core["api_port"],
            &core["api_timeout_ms"],
            &core["secret_set"],
            &core["api_password_set"],
        ),
        (
            &serde_json::json!(false),
            &serde_json::json!(8728),
            &serde_json::json!(2000),
            &serde_json::json!(false),
            &serde_json::json!(true),
        )
    );
    fails(
        &rlm(&db, &["nas", "set", "nope", "--coa-port", "1"]),
        "no NAS",
    );

    stdout(&rlm(&db, &["nas", "remove", "127.0.0.3"]));
    fails(&rlm(&db, &["nas", "remove", "edge"]), "no NAS");
    let v = json(&rlm(&db, &["--json", "nas", "list"]));
    assert_eq!(v["nas"].as_array().unwrap().len(), 1);
}

#[test]
fn write_commands_need_an_existing_db_except_add() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.sqlite");
    fails(&rlm(&db, &["nas", "remove", "x"]), "does not exist");
    fails(&rlm(&db, &["queue", "purge", "--done"]), "does not exist");
    assert!(!db.exists());
    // Bad usage is exit 2 (clap).
    let o = rlm(&db, &["queue", "purge"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rlm(&db, &["nas", "add", "not-an-ip", "--name", "x"]);
    assert_eq!(o.status.code(), Some(2));
}

fn job(key: &str) -> NewDisconnectJob {
    NewDisconnectJob {
        nas_ip: "127.0.0.2".into(),
        session_key: key.into(),
        username: format!("u-{key}"),
        acct_session_id: key.into(),
        framed_ip: Some("100.64.0.5".into()),
        session_start: 1_700_000_000,
        reason: "month-boundary".into(),
    }
}

#[test]
fn queue_list_retry_purge() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let now = chrono::Utc::now().timestamp();
    let ids: Vec<i64> = {
        let admin = Admin::open(&db).unwrap();
        for k in ["a", "b", "c", "d", "e"] {
            assert!(admin.queue_enqueue(&job(k), now - 100).unwrap());
        }
        let ids: Vec<i64> = admin
            .queue_list(None)
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        let failed = JobOutcome::Failed {
            error: "Disconnect-NAK".into(),
            error_cause: Some(503),
        };
        admin.queue_mark(ids[0], &failed, now - 50).unwrap();
        admin.queue_mark(ids[1], &failed, now - 50).unwrap();
        // One done long ago, one just now.
        admin
            .queue_mark(ids[2], &JobOutcome::Done(Method::Dm), now - 10 * 86_400)
            .unwrap();
        admin
            .queue_mark(ids[3], &JobOutcome::Done(Method::Stop), now)
            .unwrap();
        // Waiting out its backoff after a DM and API failure.
        let dm_failed = JobOutcome::DmFailed {
            error: "DM: timeout; API: login refused".into(),
            error_cause: None,
        };
        admin.queue_mark(ids[4], &dm_failed, now - 50).unwrap();
        ids
    };

    let out = stdout(&rlm(&db, &["queue", "list", "--state", "failed"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[1].contains("u-a") && lines[1].contains("failed"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("Disconnect-NAK (Error-Cause 503)"),
        "{out}"
    );

    let v = json(&rlm(&db, &["--json", "queue", "list"]));
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5);
    assert_eq!(jobs[0]["state"], "failed");
    assert_eq!(jobs[0]["attempts"], 1);
    assert_eq!(jobs[0]["error_cause"], 503);
    assert_eq!(jobs[0]["session_key"], "a");
    assert_eq!(jobs[0]["framed_ip"], "100.64.0.5");
    assert_eq!(jobs[3]["state"], "done");
    assert_eq!(jobs[3]["method"], "stop");
    assert!(jobs[0]["next_attempt_at_local"].is_string());

    // Retry one by id, then all failed; done jobs cannot be retried.
    stdout(&rlm(&db, &["queue", "retry", &ids[0].to_string()]));
    fails(&rlm(&db, &["queue", "retry", &ids[2].to_string()]), "done");
    // --all-failed: the other failed job and the dm-failed one.
    let v = json(&rlm(&db, &["--json", "queue", "retry", "--all-failed"]));
    assert_eq!(v["retried"], 2);
    let v = json(&rlm(
        &db,
        &["--json", "queue", "list", "--state", "pending"],
    ));
    let pending = v["jobs"].as_array().unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|j| j["attempts"] == 0));
    assert!(pending
        .iter()
        .all(|j| j["next_attempt_at"].as_i64().unwrap() >= now));

    // Purge: by age first (only the old done job), then all done.
    let v = json(&rlm(
        &db,
        &["--json", "queue", "purge", "--older-than", "7d"],
    ));
    assert_eq!(v["purged"], 1);
    let out = stdout(&rlm(&db, &["queue", "purge", "--done"]));
    assert_eq!(out, "purged 1 job(s)\n");
    let reader = rlm_rust::store::Reader::open(&db).unwrap();
    let left = reader.queue_list(None).unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|j| j.state == JobState::Pending));
}
