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
    // API-SSL without a CA: verification is on, so nothing would be sent.
    assert!(
        lines[1].ends_with("radius@127.0.0.9:8729 tls (no CA: refused)"),
        "{out}"
    );
    assert!(lines[2].contains("127.0.0.10:1700"), "{out}");
    // A password but no user: no API credentials, and the table says what is missing.
    assert!(lines[2].ends_with(" none (no API user)"), "{out}");

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
    assert_eq!(core["api_credentials"], true);
    assert_eq!(core["api_effective_host"], "127.0.0.9");
    assert_eq!(nas[1]["secret_set"], false);
    assert_eq!(nas[1]["api_password_set"], true);
    assert_eq!(nas[1]["api_credentials"], false);

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

    // Every queue's jobs by state.
    let out = stdout(&rlm(&db, &["queue", "counts"]));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["QUEUE", "STATE", "JOBS"], "{out}");
    for want in [
        ["disconnect", "failed", "2"],
        ["disconnect", "done", "2"],
        ["disconnect", "dm-failed", "1"],
    ] {
        assert!(rows.iter().any(|r| r[..] == want[..]), "{want:?}:\n{out}");
    }
    let v = json(&rlm(&db, &["--json", "queue", "counts"]));
    let total: u64 = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["jobs"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 5);

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

#[test]
fn nas_list_shows_the_api_host_defaulting_to_the_nas_ip_and_nases_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let pw = format!("{PASSWORD}\n");
    // API credentials, no --api-host: the API is reached on the NAS IP.
    let with_api = [
        "nas",
        "add",
        "127.0.0.5",
        "--name",
        "ip-api",
        "--api-user",
        "radius",
        "--api-password-stdin",
    ];
    stdout(&rlm_with_stdin(&db, &with_api, &pw));
    stdout(&rlm(&db, &["nas", "add", "127.0.0.6", "--name", "bare"]));
    let no_pw = [
        "nas",
        "add",
        "127.0.0.7",
        "--name",
        "nopw",
        "--api-user",
        "radius",
    ];
    stdout(&rlm(&db, &no_pw));

    let out = stdout(&rlm(&db, &["nas", "list"]));
    let row = |ip: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .unwrap_or_else(|| panic!("no {ip}: {out}"))
    };
    assert!(
        row("127.0.0.5").ends_with(" radius@127.0.0.5:8728"),
        "{out}"
    );
    assert!(row("127.0.0.6").ends_with(" none"), "{out}");
    assert!(
        row("127.0.0.7").ends_with(" none (no API password)"),
        "{out}"
    );

    let v = json(&rlm(&db, &["--json", "nas", "list"]));
    let fields = |i: usize| {
        let n = &v["nas"][i];
        (
            n["nas_ip"].as_str().unwrap().to_string(),
            n["api_host"].clone(),
            n["api_effective_host"].as_str().unwrap().to_string(),
            n["api_credentials"].as_bool().unwrap(),
        )
    };
    let null = serde_json::Value::Null;
    assert_eq!(
        [fields(0), fields(1), fields(2)],
        [
            ("127.0.0.5".into(), null.clone(), "127.0.0.5".into(), true),
            ("127.0.0.6".into(), null.clone(), "127.0.0.6".into(), false),
            ("127.0.0.7".into(), null, "127.0.0.7".into(), false),
        ]
    );
}

/// The NAS's stored secret and API password, read with SQLite directly.
fn stored_secrets(db: &Path, nas_ip: &str) -> (Option<String>, Option<String>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT secret, api_password FROM nas WHERE nas_ip = ?1",
        [nas_ip],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// A secret file only its owner may read.
fn secret_file(dir: &Path, name: &str, content: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn nas_secret_from_stdin_or_a_file_is_stored_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let secret2 = format!("{SECRET}-2");
    let sfile = secret_file(
        dir.path(),
        "secret",
        &format!("{secret2}\nignored\n"),
        0o600,
    );
    let pfile = secret_file(dir.path(), "password", PASSWORD, 0o640);

    let add = [
        "nas",
        "add",
        "127.0.0.2",
        "--name",
        "core",
        "--secret-stdin",
        "--api-user",
        "radius",
        "--api-password-file",
        &pfile,
    ];
    stdout(&rlm_with_stdin(&db, &add, &format!("{SECRET}\r\n")));
    assert_eq!(
        stored_secrets(&db, "127.0.0.2"),
        (Some(SECRET.to_string()), Some(PASSWORD.to_string()))
    );
    let v = json(&rlm(&db, &["--json", "nas", "list"]));
    assert_eq!(
        (&v["nas"][0]["secret_set"], &v["nas"][0]["api_credentials"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );

    stdout(&rlm(&db, &["nas", "set", "core", "--secret-file", &sfile]));
    assert_eq!(
        stored_secrets(&db, "127.0.0.2").0.as_deref(),
        Some(&*secret2)
    );
    let pw2 = format!("{PASSWORD}-2\n");
    stdout(&rlm_with_stdin(
        &db,
        &["nas", "set", "core", "--api-password-stdin"],
        &pw2,
    ));
    assert_eq!(
        stored_secrets(&db, "127.0.0.2"),
        (Some(secret2.clone()), Some(format!("{PASSWORD}-2")))
    );
    // Inline still works (and an empty one still clears).
    stdout(&rlm(&db, &["nas", "set", "core", "--secret", SECRET]));
    assert_eq!(stored_secrets(&db, "127.0.0.2").0.as_deref(), Some(SECRET));
    stdout(&rlm(&db, &["nas", "set", "core", "--secret", ""]));
    assert_eq!(stored_secrets(&db, "127.0.0.2").0, None);
}

#[test]
fn nas_secret_options_refuse_bad_sources() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    let ok = secret_file(dir.path(), "ok", SECRET, 0o600);
    fn add<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["nas", "add", "127.0.0.2", "--name", "core"];
        args.extend_from_slice(extra);
        args
    }
    // Two sources for one value, or two values from stdin: usage errors.
    let usage: [&[&str]; 5] = [
        &["--secret", SECRET, "--secret-stdin"],
        &["--secret", SECRET, "--secret-file", &ok],
        &["--secret-stdin", "--secret-file", &ok],
        &["--secret-stdin", "--api-password-stdin"],
        &["--api-password", PASSWORD, "--api-password-file", &ok],
    ];
    for extra in usage {
        let o = rlm_with_stdin(&db, &add(extra), &format!("{SECRET}\n"));
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {o:?}");
    }
    assert!(!db.exists(), "a usage error writes nothing");

    let open = secret_file(dir.path(), "open", SECRET, 0o644);
    fails(
        &rlm(&db, &add(&["--secret-file", &open])),
        "open to every user (mode 0644)",
    );
    let missing = dir.path().join("missing").to_str().unwrap().to_string();
    fails(
        &rlm(&db, &add(&["--api-password-file", &missing])),
        "cannot open the API password",
    );
    let empty = secret_file(dir.path(), "empty", "\n", 0o600);
    fails(
        &rlm(&db, &add(&["--secret-file", &empty])),
        "no RADIUS secret on the first line",
    );
    fails(
        &rlm_with_stdin(&db, &add(&["--secret-stdin"]), ""),
        "no RADIUS secret on the first line of stdin",
    );
    assert!(!db.exists(), "bad input creates no database");
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// The database and any -wal / -shm next to it.
fn db_files(db: &Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|s| std::path::PathBuf::from(format!("{}{s}", db.display())))
        .filter(|p| p.exists())
        .collect()
}

#[test]
fn nas_add_creates_a_database_closed_to_other_users_and_tightens_an_open_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rlm.sqlite");
    stdout(&rlm(&db, &["nas", "add", "127.0.0.2", "--name", "core"]));
    let files = db_files(&db);
    assert!(!files.is_empty());
    for p in &files {
        let m = mode_of(p);
        assert_eq!(m & 0o607, 0o600, "{}: {m:o}", p.display());
    }

    // A database from before (0644): tightened at the next write command, with a warning.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = rlm(&db, &["nas", "set", "core", "--coa-port", "1700"]);
    stdout(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("rlm-rust: warning: store: ")
            && err.contains("was open to every user (mode 0644)")
            && err.contains("changed to 0640"),
        "{err}"
    );
    assert_eq!(mode_of(&db), 0o640);
    // Only once.
    let o = rlm(&db, &["nas", "set", "core", "--coa-port", "3799"]);
    stdout(&o);
    assert!(o.stderr.is_empty(), "{o:?}");
}

/// Runs the CLI as another user and group (setpriv, util-linux).
fn rlm_as(uid: u32, gid: u32, db: &Path, args: &[&str]) -> Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
        ])
        .arg(common::cli::BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RLM_RUST_DB")
        .output()
        .expect("setpriv (util-linux)")
}

#[test]
fn a_database_root_creates_belongs_to_the_server_and_its_group_may_read_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    if std::fs::metadata(dir.path()).unwrap().uid() != 0 {
        eprintln!("skipped: needs root (to act as the server's user and group)");
        return;
    }
    // The server's directory, as `install -d -o freerad -g freerad` makes it;
    // 65534 plays freerad, 65533 an operator in its group and a stranger.
    let (server, operator) = (65534, 65533);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let var = dir.path().join("var");
    std::fs::create_dir(&var).unwrap();
    std::os::unix::fs::chown(&var, Some(server), Some(server)).unwrap();
    let db = var.join("rlm_rust.sqlite");

    // root registers a NAS before the server ever ran.
    stdout(&rlm(&db, &["nas", "add", "127.0.0.2", "--name", "core"]));
    let meta = std::fs::metadata(&db).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), mode_of(&db)),
        (server, server, 0o640)
    );
    // The server's user can write it.
    stdout(&rlm_as(
        server,
        server,
        &db,
        &["nas", "set", "core", "--coa-port", "1700"],
    ));

    // While the server has it open (its -wal and -shm exist, 0640 too): the group
    // reads it, others don't.
    let running = rlm_rust::store::Admin::open(&db).unwrap();
    assert_eq!(db_files(&db).len(), 3);
    for p in db_files(&db) {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), mode_of(&p)),
            (server, server, 0o640),
            "{}",
            p.display()
        );
    }
    let out = stdout(&rlm_as(operator, server, &db, &["nas", "list"]));
    assert!(out.contains("127.0.0.2:1700"), "{out}");
    fails(
        &rlm_as(operator, operator, &db, &["nas", "list"]),
        "cannot open database",
    );
    drop(running);
}
