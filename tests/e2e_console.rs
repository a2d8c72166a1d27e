//! The operator console for real: freeradius with the module records sessions from
//! radclient and serves its own /metrics; `rlm-rust serve` runs on the same store;
//! headless Chromium (Debian's chromium and chromium-driver over WebDriver) logs in,
//! opens every screen, runs a bulk disconnect against RouterOS API doubles and reads
//! the per-NAS result, queues a session's disconnect and adds a topup that the CLI
//! then lists. Each screen is saved as a PNG: into docs/screenshots with
//! RLM_SCREENSHOTS=1 (scripts/screenshots.sh), else into the test's temp dir.
mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Datelike;
use fantoccini::{Client, ClientBuilder, Locator};
use rlm_rust::routeros::double::{DoubleConfig, RouterOsDouble};
use rlm_rust::routeros::SessionTable;

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` with an optional bearer token: status line and body.
fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// A metric's value from Prometheus text (the first sample whose name and labels
/// start with `series`).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

struct Shots {
    dir: std::path::PathBuf,
}

impl Shots {
    async fn take(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5000,
            "{name}: not a real screenshot"
        );
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
    }
}

async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn log_in(c: &Client, name: &str, password: &str) {
    type_into(c, "input[name=name]", name).await;
    type_into(c, "input[name=password]", password).await;
    click(c, "form.login button").await;
}

async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!("{css}: {e}\n{}", c.source().await.unwrap_or_default()),
    }
}

/// The text of `css` once it contains `needle` (after a click the old page may still
/// be the one shown).
async fn wait_for_text(c: &Client, css: &str, needle: &str) -> String {
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(needle) {
                    return t;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{css} never said {needle:?}:\n{}",
        c.source().await.unwrap_or_default()
    );
}

async fn wait_text(c: &Client, css: &str, what: &str) -> String {
    for _ in 0..100 {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                return t;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what}: {css} never appeared:\n{}",
        c.source().await.unwrap_or_default()
    );
}

// Not a tokio test: the setup reaches PostgreSQL's (blocking) client under
// RLM_E2E_BACKEND=postgres, which must not run on a runtime's thread.
#[test]
fn an_operator_runs_the_console_in_a_real_browser() {
    let metrics_port = free_tcp_port();
    let dm_port = free_udp_port();
    let server = Server::start(Options {
        users: "noc-user Cleartext-Password := \"pw\"\n".into(),
        raddb_env: vec![
            ("BULK_DISCONNECT".into(), "no".into()),
            ("DM_TIMEOUT".into(), "1s".into()),
            ("DM_RETRIES".into(), "0".into()),
            ("METRICS_LISTEN".into(), format!("127.0.0.1:{metrics_port}")),
            ("METRICS_TOKEN".into(), "\"module-metrics-t0ken\"".into()),
        ],
        ..Default::default()
    });
    let tz = "UTC";

    // Two MikroTiks with API credentials, one whose API is down, one without any.
    let a =
        RouterOsDouble::start_on("127.0.0.3:0".parse().unwrap(), DoubleConfig::default()).unwrap();
    let b =
        RouterOsDouble::start_on("127.0.0.4:0".parse().unwrap(), DoubleConfig::default()).unwrap();
    a.add_session(SessionTable::Ppp, "a-old", "100.64.2.1", "10w");
    a.add_session(SessionTable::Hotspot, "a-old2", "100.64.2.2", "10w1d");
    a.add_session(SessionTable::Ppp, "a-new", "100.64.2.3", "5s");
    b.add_session(SessionTable::Ppp, "b-old", "100.64.3.1", "1000:00:00");
    let dead_api = free_tcp_port().to_string();
    let dm = dm_port.to_string();
    for (ip, name, host, port) in [
        ("192.0.2.31", "tower-a", "127.0.0.3", a.port().to_string()),
        ("192.0.2.32", "tower-b", "127.0.0.4", b.port().to_string()),
        ("192.0.2.33", "tower-down", "127.0.0.5", dead_api.clone()),
    ] {
        let args = [
            "nas",
            "add",
            ip,
            "--name",
            name,
            "--coa-host",
            "127.0.0.2",
            "--coa-port",
            &dm,
            "--api-host",
            host,
            "--api-port",
            &port,
            "--api-user",
            "admin",
            "--api-timeout-ms",
            "1000",
            "--api-password-stdin",
        ];
        cli::stdout(&cli::run(&server.db, tz, &args, "secret\n"));
    }
    server.cli_ok(&[
        "nas",
        "add",
        "192.0.2.34",
        "--name",
        "no-api",
        "--coa-host",
        "127.0.0.2",
        "--coa-port",
        &dm,
    ]);

    // Sessions the module records, and a login.
    for (user, nas) in [
        ("alice", "192.0.2.31"),
        ("bob", "192.0.2.31"),
        ("carol", "192.0.2.32"),
    ] {
        server.session_update("Start", user, nas, 0);
        server.session_update("Interim-Update", user, nas, 300 << 20);
    }
    // One that started last month (its first packet an Interim two days in).
    let month_secs = {
        let now = chrono::Utc::now();
        let start = chrono::NaiveDate::from_ymd_opt(now.year(), now.month(), 1).unwrap();
        (now.naive_utc() - start.and_hms_opt(0, 0, 0).unwrap()).num_seconds() as u32
    };
    let r = server.acct(&acct_attrs(
        "Interim-Update",
        "dave",
        "sess-dave",
        "192.0.2.31",
        0,
        1 << 30,
        month_secs + 2 * 86_400,
    ));
    assert!(r.ok, "{}", r.output);
    assert!(server.auth("noc-user", "pw", "").has("Access-Accept"));
    // A user whose name is Latin-1 bytes, not UTF-8, on the NAS without API.
    {
        use rlm_rust::radius::attrs::Attribute;
        let base = |status: u32| {
            vec![
                Attribute::new(1, b"m\xfcller".to_vec()),
                Attribute::integer(40, status),
                Attribute::new(44, b"latin-1".to_vec()),
                Attribute::ipv4(4, "192.0.2.34".parse().unwrap()),
            ]
        };
        let mut interim = base(3);
        interim.extend([Attribute::integer(43, 40 << 20), Attribute::integer(46, 60)]);
        assert_eq!(send_all(&server, &[base(1), interim], 1), 2);
    }

    // Operators: the password from standard input, never the command line.
    let db = server.db.clone();
    for (name, role) in [("noc", "admin"), ("watcher", "viewer")] {
        let out = cli::run(
            &db,
            tz,
            &["operator", "add", name, "--role", role],
            &format!("{name}-password-1\n"),
        );
        cli::stdout(&out);
    }
    cli::fails_with(
        &cli::run(&db, tz, &["operator", "add", "short"], "tiny\n"),
        "at least 10",
    );
    let ops = cli::json(&cli::run(&db, tz, &["--json", "operator", "list"], ""));
    assert_eq!(ops["operators"].as_array().unwrap().len(), 2);
    assert!(
        !ops.to_string().contains("argon2"),
        "no hashes in output: {ops}"
    );

    // The console, with its own token for /metrics.
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("metrics.token");
    std::fs::write(&token_file, "console-metrics-t0ken\n").unwrap();
    std::fs::set_permissions(
        &token_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut serve = Proc(
        Command::new(cli::BIN)
            .arg("--db")
            .arg(&db)
            .args([
                "--timezone",
                tz,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-token-file",
            ])
            .arg(&token_file)
            .env_remove("RLM_RUST_DB")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(serve.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("serve printed {line:?}"))
        .trim_end_matches('/')
        .to_string();
    let console: SocketAddr = base.trim_start_matches("http://").parse().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Chromium over WebDriver.
        let driver_port = free_tcp_port();
        let _driver = Proc(
            Command::new("chromedriver")
                .arg(format!("--port={driver_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (scripts/deps.sh installs chromium-driver)"),
        );
        let profile = tmp.path().join("chromium-profile");
        let mut caps = serde_json::Map::new();
        caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1366,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
        let mut c = None;
        for _ in 0..50 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await
            {
                Ok(client) => {
                    c = Some(client);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let c = c.expect("chromedriver did not start a session");
        let shots = Shots {
            dir: if std::env::var_os("RLM_SCREENSHOTS").is_some() {
                repo().join("docs/screenshots")
            } else {
                tmp.path().to_path_buf()
            },
        };
        std::fs::create_dir_all(&shots.dir).unwrap();

        // Not logged in: the login page.
        c.goto(&format!("{base}/nas")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        shots.take(&c, "login").await;
        log_in(&c, "noc", "wrong password").await;
        assert!(wait_text(&c, "p.error", "wrong password")
            .await
            .contains("Wrong operator or password"));
        log_in(&c, "noc", "noc-password-1").await;

        // NAS list: counts from the module's sessions, credentials without secrets.
        let nas = wait_text(&c, "#nas-list", "NAS list").await;
        assert!(c.current_url().await.unwrap().path().ends_with("/nas"));
        assert_eq!(text_of(&c, "tr[data-nas='192.0.2.31'] td.prior").await, "1");
        let row = text_of(&c, "tr[data-nas='192.0.2.31']").await;
        assert!(
            row.contains("tower-a")
                && row.contains("127.0.0.2:")
                && row.contains("admin@127.0.0.3"),
            "{row}"
        );
        assert!(text_of(&c, "tr[data-nas='192.0.2.34'] td.api")
            .await
            .contains("not set"));
        assert!(nas.contains("192.0.2.32"), "{nas}");
        shots.take(&c, "nas-list").await;

        // Bulk disconnect all: dry run first, then for real.
        click(&c, "#bulk-all").await;
        let summary = wait_text(&c, "#summary", "dry run").await;
        assert!(summary.contains("Dry run finished"), "{summary}");
        let would = text_of(&c, "#would-remove").await;
        assert!(
            would.contains("a-old") && would.contains("a-old2") && would.contains("b-old"),
            "{would}"
        );
        assert!(!would.contains("a-new"), "{would}");
        assert_eq!(
            a.ids(SessionTable::Ppp).len(),
            2,
            "a dry run removes nothing"
        );
        shots.take(&c, "bulk-dry-run").await;
        click(&c, "#confirm").await;
        // The dry run's page says "Dry run finished": wait for the real run's.
        let summary = wait_for_text(&c, "#summary", "Finished.").await;
        assert!(
            summary.contains("Finished") && summary.contains("1 failed"),
            "{summary}"
        );
        let cell = |ip: &'static str, col: &'static str| {
            let c = &c;
            async move { text_of(c, &format!("#bulk-results tr[data-nas='{ip}'] td.{col}")).await }
        };
        assert_eq!(cell("192.0.2.31", "removed").await, "2");
        assert_eq!(cell("192.0.2.31", "result").await, "ok");
        assert_eq!(cell("192.0.2.32", "removed").await, "1");
        assert!(cell("192.0.2.33", "result")
            .await
            .starts_with("failed: RouterOS API"));
        assert!(cell("192.0.2.34", "result")
            .await
            .starts_with("skipped: no RouterOS API credentials"));
        assert_eq!(a.rows("/ppp/active")[0]["name"], "a-new");
        assert!(a.ids(SessionTable::Hotspot).is_empty() && b.ids(SessionTable::Ppp).is_empty());
        shots.take(&c, "bulk-result").await;
        // The NAS list now shows each one's last run.
        c.goto(&format!("{base}/nas")).await.unwrap();
        assert!(text_of(&c, "tr[data-nas='192.0.2.31'] td.last")
            .await
            .contains("2 removed"));
        assert!(text_of(&c, "tr[data-nas='192.0.2.33'] td.last")
            .await
            .contains("failed"));

        // Active sessions: filter, then disconnect one (queued for the module's worker).
        c.goto(&format!("{base}/sessions")).await.unwrap();
        assert!(text_of(&c, "#total").await.starts_with("5 open session"));
        shots.take(&c, "sessions").await;
        // The Latin-1 user: shown escaped, its page at its exact bytes.
        c.goto(&format!("{base}/sessions?nas=192.0.2.34"))
            .await
            .unwrap();
        let link = c.find(Locator::Css("#sessions td a")).await.unwrap();
        assert_eq!(
            link.attr("href").await.unwrap().as_deref(),
            Some("/users/m%FCller")
        );
        link.click().await.unwrap();
        let title = wait_for_text(&c, "h1", "ller").await;
        assert!(!title.contains('\u{fffd}'), "{title}");
        c.find(Locator::Css("svg.chart rect.down"))
            .await
            .expect("the Latin-1 user's usage");
        c.goto(&format!("{base}/sessions?nas=192.0.2.32"))
            .await
            .unwrap();
        assert!(text_of(&c, "#total").await.starts_with("1 open session"));
        assert!(text_of(&c, "#sessions").await.contains("carol"));
        click(&c, "#sessions button[name=one]").await;
        assert!(wait_text(&c, "#result", "disconnect")
            .await
            .starts_with("1 disconnect job(s) queued"));
        let jobs = server.cli_json(&["queue", "list"]);
        assert!(
            jobs["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|j| j["username"] == "carol" && j["reason"] == "operator noc (console)"),
            "{jobs}"
        );
        c.goto(&format!("{base}/queue")).await.unwrap();
        assert!(text_of(&c, "#jobs")
            .await
            .contains("operator noc (console)"));
        shots.take(&c, "queue").await;

        // A user: charts, limits; a topup the CLI then lists.
        c.goto(&format!("{base}/users?name=alice")).await.unwrap();
        assert!(c
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/users/alice"));
        c.find(Locator::Css("svg.chart rect.down"))
            .await
            .expect("a usage bar");
        type_into(&c, "#topup-form input[name=amount]", "500").await;
        click(&c, "#topup-form button").await;
        let topups = wait_for_text(&c, "#topups", "500 MB").await;
        assert!(topups.contains("traffic"), "{topups}");
        let listed = server.cli_json(&["topup", "list", "alice"]);
        assert_eq!(listed["topups"][0]["value"], 500, "{listed}");
        assert_eq!(listed["topups"][0]["kind"], "traffic");
        shots.take(&c, "user").await;

        // Logging out ends the session.
        click(&c, "form.logout button").await;
        wait_text(&c, "form.login", "the login page after logging out").await;
        c.goto(&format!("{base}/queue")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        c.close().await.unwrap();
    });

    // The module's own counters: this server's accounting, commits, logins.
    let maddr: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    assert!(http_get(maddr, "/metrics", None).0.contains("401"));
    let (status, m) = http_get(maddr, "/metrics", Some("module-metrics-t0ken"));
    assert!(status.contains("200"), "{status}");
    assert!(
        metric(
            &m,
            "rlm_rust_accounting_requests_total{outcome=\"recorded\"}"
        )
        .unwrap()
            >= 9.0,
        "{m}"
    );
    assert!(
        metric(&m, "rlm_rust_commit_batch_size_count").unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "rlm_rust_commit_seconds_bucket{le=\"+Inf\"}").unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "rlm_rust_authorize_total").is_some()
            && metric(&m, "rlm_rust_post_auth_total").is_some(),
        "{m}"
    );
    // The queued disconnect's Disconnect-Request to a silent NAS times out.
    server.wait_for("the DM timeout counted", Duration::from_secs(30), || {
        let (_, m) = http_get(maddr, "/metrics", Some("module-metrics-t0ken"));
        metric(
            &m,
            "rlm_rust_dm_results_total{kind=\"disconnect\",result=\"timeout\"}",
        )
        .is_some()
    });
    // The console's: store gauges and its own bulk run.
    assert!(http_get(console, "/metrics", None).0.contains("401"));
    let (_, m) = http_get(console, "/metrics", Some("console-metrics-t0ken"));
    assert_eq!(
        metric(&m, "rlm_rust_bulk_nas_runs_total{result=\"failed\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "rlm_rust_bulk_sessions_total{result=\"removed\"}"),
        Some(3.0),
        "{m}"
    );
    assert!(
        metric(&m, "rlm_rust_routeros_api_errors_total{stage=\"connect\"}").unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "rlm_rust_queue_jobs{queue=\"disconnect\"").is_some(),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "rlm_rust_open_sessions{nas=\"192.0.2.31\",started=\"any\"}"
        ),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "rlm_rust_open_sessions{nas=\"192.0.2.31\",started=\"prior_month\"}"
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "rlm_rust_bulk_last_run{nas=\"192.0.2.31\",value=\"removed\"}"
        ),
        Some(2.0),
        "{m}"
    );

    // Nothing secret in what the console logged.
    drop(serve.0.stdin.take());
    let _ = serve.0.kill();
    let mut err = String::new();
    serve
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("noc logged in"), "{err}");
    for secret in ["noc-password-1", "console-metrics-t0ken", "secret"] {
        assert!(
            !err.contains(secret),
            "{secret} in the console's log: {err}"
        );
    }
}
