//! End to end: two real freeradius servers with the module on one PostgreSQL
//! database (a throw-away cluster of this test process), as an ISP runs them for NAS
//! failover and load balancing. What one server records, decides and queues, the
//! other sees, and nothing is counted, topped up or sent twice.
mod common;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rlm_rust::radius::double::{Answer, NasDouble};

const MIB: u64 = 1024 * 1024;

fn pair(db: &str, users: &str, env: &[(&str, &str)]) -> (Server, Server) {
    let opts = Options {
        db: Some(db.to_string()),
        users: users.to_string(),
        background_interval: Some("1s".into()),
        stale_after: Some("0".into()),
        raddb_env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    (Server::start(opts.clone()), Server::start(opts))
}

fn one_i64(db: &str, sql: &str) -> i64 {
    pg::connect(db).query_one(sql, &[]).unwrap().get(0)
}

/// Interim-Updates of one user's sessions go to both servers in turn, the sessions
/// at once; the same Interim sent to both (a NAS failing over mid-retransmit) counts
/// once. The month's usage is the exact sum of the sessions' last counters.
#[test]
fn interleaved_interims_through_two_servers_give_exact_usage() {
    let db = pg::fresh_db();
    let (a, b) = pair(&db, "", &[]);
    let nas = "127.0.0.2";
    let sessions = 8;
    let rounds = 6;
    let batch = |status: &str, round: u64| -> String {
        (0..sessions)
            .map(|i| {
                acct_attrs(
                    status,
                    "u",
                    &format!("s{i}"),
                    nas,
                    round * MIB,
                    round * 2 * MIB,
                    60,
                )
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    a.radclient_parallel("acct", &batch("Start", 0), sessions);
    for round in 1..=rounds {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let text = batch("Interim-Update", round);
        // This round's Interims to one server, and again (the same packets) to the
        // other, at the same time.
        std::thread::scope(|s| {
            s.spawn(|| first.radclient_parallel("acct", &text, sessions));
            s.spawn(|| second.radclient_parallel("acct", &text, sessions));
        });
    }
    let got = |col: &str| {
        one_i64(
            &db,
            &format!("SELECT {col} FROM usage_month WHERE username = 'u'"),
        ) as u64
    };
    assert_eq!(got("input_octets"), sessions as u64 * rounds * MIB);
    assert_eq!(got("output_octets"), sessions as u64 * rounds * 2 * MIB);
    // Both servers' CLIs read the one store.
    let usage = b.cli_json(&["usage", "u"]);
    assert!(
        usage
            .to_string()
            .contains(&(sessions as u64 * rounds * MIB).to_string()),
        "{usage}"
    );
}

/// The limits of a login on one server (the users file, here) apply to the
/// accounting that reaches the other; 24 Interims at once through both servers cross
/// the limit many times over, and each auto-topup is added once: the capping
/// decisions of one user are serialised across the servers.
#[test]
fn capping_decisions_of_one_user_are_serialised_across_servers() {
    let db = pg::fresh_db();
    let limits = "Cleartext-Password := \"pw\", Rust-Capping-Traffic-Limit := \"10\", \
                  Rust-AutoTopup-Traffic-Enabled := \"yes\", Rust-AutoTopup-Traffic-Amount := \"10\", \
                  Rust-AutoTopup-Traffic-Threshold := \"2\"";
    let users = format!(
        "burst\t{limits}\nnear0\t{limits}\nnear1\t{limits}\nnear2\t{limits}\nnear3\t{limits}\n"
    );
    let (a, b) = pair(&db, &users, &[]);
    assert_eq!(a.auth("burst", "pw", "").code(), Some("Access-Accept"));
    let nas = "127.0.0.2";
    let batch = |status: &str, mb: u64, range: std::ops::Range<usize>| -> String {
        range
            .map(|i| acct_attrs(status, "burst", &format!("b{i}"), nas, mb * MIB, 0, 30))
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    // Sessions 0-11 account through A, 12-23 through B (B never saw the login).
    for (status, mb) in [("Start", 0), ("Interim-Update", 5)] {
        let (ta, tb) = (batch(status, mb, 0..12), batch(status, mb, 12..24));
        std::thread::scope(|s| {
            s.spawn(|| a.radclient_parallel("acct", &ta, 12));
            s.spawn(|| b.radclient_parallel("acct", &tb, 12));
        });
    }
    let used = b.cli_json(&["limits", "burst"]);
    assert_eq!(used["traffic"]["usage"].as_u64(), Some(120 * MIB), "{used}");
    let stored = a.topups_total("burst");
    // 120 MB used of 10 + topups, 2 MB kept free: 12 topups of 10 MB, no more (two
    // servers deciding side by side would both have added the same ones).
    assert_eq!(
        stored,
        120,
        "{}",
        a.cli_json(&["topup", "list", "burst", "--all"])
    );
    let r = b.auth("burst", "pw", "");
    assert_eq!(r.code(), Some("Access-Accept"), "{}", r.output);

    // Logins at once on both servers of users 1 MB short of the limit, under the
    // 2 MB threshold: the first login's decision adds one auto-topup, every later
    // one finds it (none of these logins records usage that could serialise them).
    for user in ["near0", "near1", "near2", "near3"] {
        a.session_update("Start", user, nas, 0);
        a.session_update("Interim-Update", user, nas, 9 * MIB);
        assert_eq!(
            b.cli_json(&["topup", "list", user, "--all"])["topups"],
            serde_json::json!([])
        );
        let logins =
            vec![format!("User-Name = \"{user}\", User-Password = \"pw\""); 16].join("\n\n");
        std::thread::scope(|s| {
            s.spawn(|| a.radclient_parallel("auth", &logins, 16));
            s.spawn(|| b.radclient_parallel("auth", &logins, 16));
        });
        let got = b.cli_json(&["topup", "list", user, "--all"]);
        assert_eq!(got["topups"].as_array().unwrap().len(), 1, "{got}");
    }
}

fn bind(ip: &str) -> SocketAddr {
    format!("{ip}:0").parse().unwrap()
}

/// A queued Disconnect-Request is sent once although both servers' workers look at
/// the queue every second; a server killed -9 while it holds a job (its NAS slow to
/// answer) leaves the job to the other after the lease; every Accounting-Start the
/// killed server acknowledged under load is in the store.
#[test]
fn jobs_are_done_once_and_taken_over_from_a_killed_server() {
    let db = pg::fresh_db();
    let env = [
        ("DM_TIMEOUT", "20s"),
        ("DM_RETRIES", "0"),
        ("QUEUE_LEASE", "5s"),
        ("BULK_DISCONNECT", "no"),
    ];
    let (a, b) = pair(&db, "", &env);
    let nas = NasDouble::start(bind("127.0.0.2"), SECRET.as_bytes(), Answer::Ack).unwrap();
    a.add_nas("127.0.0.2", "mikrotik", nas.addr());

    // Exactly once, with both workers running.
    a.session_update("Start", "one", "127.0.0.2", 0);
    a.cli_ok(&["user", "disconnect", "one"]);
    b.wait_for("the DM job done", Duration::from_secs(20), || {
        one_i64(
            &db,
            "SELECT COUNT(*) FROM disconnect_queue WHERE state = 'done'",
        ) == 1
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        nas.requests().len(),
        1,
        "one Disconnect-Request for one job"
    );

    // A job held by a server that is then killed: the NAS takes 10 s to answer.
    nas.set_latency(Duration::from_secs(10));
    a.session_update("Start", "two", "127.0.0.2", 0);
    a.cli_ok(&["user", "disconnect", "two"]);
    let claimer = || -> Option<String> {
        pg::connect(&db)
            .query_opt(
                "SELECT claimed_by FROM disconnect_queue WHERE username = 'two' AND state <> 'done'",
                &[],
            )
            .unwrap()
            .and_then(|r| r.get(0))
    };
    b.wait_for("a server to claim the job", Duration::from_secs(20), || {
        claimer().is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    let holder = claimer().unwrap();
    let (mut holder_server, other) = if holder.ends_with(&format!(":{}", a.pid())) {
        (a, b)
    } else {
        assert!(holder.ends_with(&format!(":{}", b.pid())), "{holder}");
        (b, a)
    };
    // Under load: Starts of new sessions to the server about to be killed.
    let sent = std::sync::Mutex::new(Vec::new());
    let port = holder_server.acct_port;
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..400 {
                let attrs = acct_attrs(
                    "Start",
                    &format!("load{i}"),
                    &format!("l{i}"),
                    "127.0.0.3",
                    0,
                    0,
                    0,
                );
                let r = radclient(port, "acct", &attrs, 1, 1);
                if !r.ok {
                    eprintln!("load stopped at {i}: {}", r.output);
                    break;
                }
                sent.lock().unwrap().push(format!("l{i}"));
            }
        });
        std::thread::sleep(Duration::from_millis(800));
        holder_server.kill9();
    });
    let acked = sent.into_inner().unwrap();
    assert!(
        !acked.is_empty() && acked.len() < 400,
        "{} acknowledged",
        acked.len()
    );
    let stored = one_i64(
        &db,
        "SELECT COUNT(*) FROM sessions WHERE nas_ip = '127.0.0.3'",
    );
    assert!(
        stored as usize >= acked.len(),
        "{stored} stored of {} acknowledged",
        acked.len()
    );
    for sid in &acked {
        let n = one_i64(
            &db,
            &format!("SELECT COUNT(*) FROM sessions WHERE acct_session_id = '{sid}'"),
        );
        assert_eq!(n, 1, "acknowledged {sid} is stored");
    }
    // The survivor takes the job over after the lease and the NAS now answers.
    nas.set_latency(Duration::ZERO);
    let t = Instant::now();
    other.wait_for(
        "the other server to take the job over",
        Duration::from_secs(30),
        || {
            one_i64(
                &db,
                "SELECT COUNT(*) FROM disconnect_queue WHERE username = 'two' AND state = 'done'",
            ) == 1
        },
    );
    let by: String = pg::connect(&db)
        .query_one(
            "SELECT claimed_by FROM disconnect_queue WHERE username = 'two'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        by.ends_with(&format!(":{}", other.pid())),
        "{by} finished it"
    );
    assert!(t.elapsed() < Duration::from_secs(30));
}

/// The database server stops: accounting requests fail (no Accounting-Response,
/// so the NAS sends them again), logged once for the whole outage; when it is back
/// the module reconnects by itself and the next Interim, carrying the session's
/// totals, leaves nothing uncounted.
#[test]
fn a_database_outage_fails_requests_and_the_module_recovers_by_itself() {
    // The cluster is stopped and started again in this directory: a TempDir keeps
    // it across the restart and removes it at the end.
    let tmp = tempfile::Builder::new()
        .prefix("rlm-pg-outage")
        .tempdir()
        .unwrap();
    // The cluster runs as nobody (pg-cluster.sh, as root): it must reach its directory.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("pg");
    let mut cluster = pg::OwnCluster::start(&dir, None);
    pg::connect(&cluster.base)
        .batch_execute("CREATE DATABASE rlm")
        .unwrap();
    let db = format!(
        "host=127.0.0.1 port={} user=postgres dbname=rlm",
        cluster.port
    );
    let s = Server::start(Options {
        db: Some(db.clone()),
        stale_after: Some("0".into()),
        ..Default::default()
    });
    let nas = "127.0.0.2";
    s.session_update("Start", "u", nas, 0);
    s.session_update("Interim-Update", "u", nas, 10 * MIB);
    cluster.stop();
    for down in [20, 30, 40] {
        let r = s.acct(&acct_attrs(
            "Interim-Update",
            "u",
            "sess-u",
            nas,
            0,
            down * MIB,
            60,
        ));
        assert!(!r.ok, "answered while the database is down: {}", r.output);
    }
    // A login needs the store's reads: refused, not let in unchecked.
    let login = s.auth("demo", "demo", "");
    assert_ne!(login.code(), Some("Access-Accept"), "{}", login.output);
    let log = s.log_text();
    assert_eq!(
        log.matches("the database cannot be written").count(),
        1,
        "{log}"
    );
    let port = cluster.port;
    let _cluster = pg::OwnCluster::start(&dir, Some(port));
    let mut answered = false;
    for _ in 0..20 {
        if s.acct(&acct_attrs(
            "Interim-Update",
            "u",
            "sess-u",
            nas,
            0,
            50 * MIB,
            60,
        ))
        .ok
        {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(answered, "{}", s.log_text());
    assert!(
        s.log_text().contains("the database is back"),
        "{}",
        s.log_text()
    );
    assert_eq!(
        one_i64(
            &db,
            "SELECT output_octets FROM usage_month WHERE username = 'u'"
        ) as u64,
        50 * MIB
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An operator moves a SQLite store to PostgreSQL: `migrate-store` copies
/// everything (sessions, usage, NASes with their secrets, topups, a Latin-1 user),
/// the CLI shows the same on both, a server on PostgreSQL goes on counting from the
/// copied baseline, and a second copy into the now full database is refused.
#[test]
fn migrate_store_copies_a_sqlite_store_into_postgres() {
    let mut old = Server::start(Options {
        stale_after: Some("0".into()),
        ..Default::default()
    });
    let nas = "127.0.0.2";
    old.session_update("Start", "ann", nas, 0);
    old.session_update("Interim-Update", "ann", nas, 7 * MIB);
    let latin1 = "User-Name = \"m\\374ller\", Acct-Status-Type = Start, Acct-Session-Id = \"l1\", \
                  NAS-IP-Address = 127.0.0.2, Framed-IP-Address = 100.64.0.20";
    assert!(old.acct(latin1).ok);
    old.cli_ok(&[
        "nas",
        "add",
        nas,
        "--name",
        "edge-1",
        "--secret",
        "s3cret",
        "--api-user",
        "api",
        "--api-password",
        "apipw",
    ]);
    old.cli_ok(&["limits", "set", "ann", "--traffic-mb", "100"]);
    old.cli_ok(&[
        "topup",
        "add",
        "ann",
        "--traffic",
        "50",
        "--valid-to",
        "2099-01-01",
    ]);
    let views = |s: &Server| {
        [
            s.cli_json(&["sessions", "list"]),
            s.cli_json(&["usage", "ann"]),
            s.cli_json(&["nas", "list"]),
            s.cli_json(&["topup", "list", "ann", "--all"]),
            s.cli_json(&["limits", "ann"]),
        ]
    };
    let before = views(&old);
    old.stop();

    let db = pg::fresh_db();
    let out = std::process::Command::new(target_dir().join("rlm-rust"))
        .args(["migrate-store", "--from"])
        .arg(&old.db)
        .env("RLM_RUST_MIGRATE_TO", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        report.contains("sessions") && report.contains("topups"),
        "{report}"
    );
    let new = Server::start(Options {
        db: Some(db.clone()),
        stale_after: Some("0".into()),
        ..Default::default()
    });
    let after = views(&new);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    // The secret came along (it is not shown), and the Latin-1 user's exact bytes.
    let secret: String = pg::connect(&db)
        .query_one("SELECT secret FROM nas WHERE nas_ip = '127.0.0.2'", &[])
        .unwrap()
        .get(0);
    assert_eq!(secret, "s3cret");
    let user: String = pg::connect(&db)
        .query_one(
            "SELECT username FROM sessions WHERE acct_session_id = 'l1'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rlm_rust::names::encode(&user).as_ref(), b"m\xfcller");
    // Counting goes on from the copied baseline: 7 MB more, not 14.
    new.session_update("Interim-Update", "ann", nas, 14 * MIB);
    assert_eq!(
        one_i64(
            &db,
            "SELECT output_octets FROM usage_month WHERE username = 'ann'"
        ) as u64,
        14 * MIB
    );
    let again = std::process::Command::new(target_dir().join("rlm-rust"))
        .args(["migrate-store", "--from"])
        .arg(&old.db)
        .env("RLM_RUST_MIGRATE_TO", &db)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
}
