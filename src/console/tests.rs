//! Every endpoint in-process (the router answering requests without a socket): login
//! and its limit, sessions and logout, CSRF, the viewer role, cross-origin POSTs,
//! input validation, and what each screen and API shows and changes.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::sessions::{AcctStatus, AcctUpdate};
use crate::store::{testdb, NasConfig, Role, Store, StoreOptions};

/// Synchronous tests: store calls (PostgreSQL's client among them) must not run on a
/// tokio thread, so only the router runs in this runtime.
struct Env {
    _dir: tempfile::TempDir,
    app: Shared,
    store: Store,
    rt: tokio::runtime::Runtime,
}

struct Res {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Res {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn acct(status: AcctStatus, user: &str, sid: &str, nas: &str, out: u64, at: i64) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: nas.into(),
        session_id: sid.into(),
        unique_id: None,
        username: user.into(),
        input_octets: out / 4,
        output_octets: out,
        gigawords: false,
        session_time: Some(60),
        framed_ip: Some("100.64.0.9".into()),
        calling_station_id: None,
        nas_port: Some(1),
        terminate_cause: None,
        event_time: at,
    }
}

fn env_with(metrics_token: Option<&str>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let db = testdb::at(dir.path().join("rlm.sqlite"));
    let store = Store::open(&db, StoreOptions::default()).unwrap();
    let admin = Admin::open_existing(&db).unwrap();
    for (name, role) in [("alice", Role::Admin), ("victor", Role::Viewer)] {
        let h = auth::hash_password(&format!("{name}-password")).unwrap();
        assert!(admin.operator_add(name, &h, role, 1).unwrap());
    }
    let mut nas = NasConfig::new("192.0.2.10");
    nas.name = Some("tower-a".into());
    nas.secret = Some("nas-secret-value".into());
    nas.api_user = Some("admin".into());
    nas.api_password = Some("api-secret-value".into());
    // Nothing listens there: a bulk run fails to connect.
    nas.api_host = Some("127.0.0.1".into());
    nas.api_port = 9;
    nas.api_timeout_ms = 500;
    admin.nas_upsert(&nas, 1).unwrap();
    admin.nas_upsert(&NasConfig::new("192.0.2.11"), 1).unwrap();
    let app = Arc::new(App {
        opts: Options {
            db: db.clone(),
            tz: chrono_tz::UTC,
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics_listen: None,
            metrics_token: metrics_token.map(Into::into),
            session_secs: 3600,
            secure_cookie: true,
        },
        reader: Reader::open(&db).unwrap(),
        admin: Mutex::new(admin),
        bulk: bulk_runs::Runs::default(),
        limiter: auth::Limiter::default(),
    });
    Env {
        _dir: dir,
        app,
        store,
        rt: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    }
}

fn env() -> Env {
    env_with(None)
}

impl Env {
    fn send(&self, req: Request<Body>) -> Res {
        let app = Arc::clone(&self.app);
        self.rt.block_on(async move {
            let res = router(app).oneshot(req).await.unwrap();
            let status = res.status();
            let headers = res.headers().clone();
            let body = axum::body::to_bytes(res.into_body(), 1 << 24)
                .await
                .unwrap();
            Res {
                status,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        })
    }

    fn get(&self, path: &str, cookie: Option<&str>) -> Res {
        let mut b = Request::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::empty()).unwrap())
    }

    fn post_form(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Res {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut b =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(body)).unwrap())
    }

    fn post_json(
        &self,
        path: &str,
        s: &Session,
        csrf: Option<&str>,
        body: serde_json::Value,
    ) -> Res {
        let mut b = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, &s.cookie);
        if let Some(c) = csrf {
            b = b.header("x-csrf-token", c);
        }
        self.send(b.body(Body::from(body.to_string())).unwrap())
    }

    /// Logs in; the cookie and the session's CSRF token.
    fn login(&self, name: &str) -> Session {
        let r = self.post_form(
            "/login",
            None,
            &[("name", name), ("password", &format!("{name}-password"))],
        );
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let me = self.get("/api/me", Some(&cookie)).json();
        Session {
            cookie,
            set_cookie: set,
            csrf: me["csrf"].as_str().unwrap().to_string(),
        }
    }
}

struct Session {
    cookie: String,
    set_cookie: String,
    csrf: String,
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_wrong_passwords_are_refused_then_limited() {
    let e = env();
    let s = e.login("alice");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/",
        "Max-Age=3600",
    ] {
        assert!(s.set_cookie.contains(flag), "{flag}: {}", s.set_cookie);
    }
    let me = e.get("/api/me", Some(&s.cookie)).json();
    assert_eq!(
        (me["operator"].as_str(), me["role"].as_str()),
        (Some("alice"), Some("admin"))
    );
    // The store keeps the token's hash, never the token.
    let token = s.cookie.split('=').nth(1).unwrap();
    let stored = e
        .app
        .reader
        .console_session(&auth::token_hash(token), crate::periods::now());
    assert!(stored.unwrap().is_some());

    for (name, password) in [
        ("alice", "wrong-password"),
        ("nobody", "alice-password"),
        ("<x>", "y"),
    ] {
        let r = e.post_form("/login", None, &[("name", name), ("password", password)]);
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(r.headers.get(header::SET_COOKIE).is_none());
        assert!(r.body.contains("Wrong operator or password"), "{}", r.body);
    }
    for _ in 0..4 {
        e.post_form("/login", None, &[("name", "victor"), ("password", "guess")]);
    }
    e.post_form("/login", None, &[("name", "victor"), ("password", "guess")]);
    // Locked out now, even with the right password.
    let r = e.post_form(
        "/login",
        None,
        &[("name", "victor"), ("password", "victor-password")],
    );
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
}

#[test]
fn nothing_but_login_and_metrics_is_reachable_without_a_session() {
    let e = env();
    for path in [
        "/",
        "/nas",
        "/sessions",
        "/users/alice",
        "/queue",
        "/bulk/1",
    ] {
        let r = e.get(path, None);
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers[header::LOCATION], "/login", "{path}");
    }
    for path in [
        "/api/me",
        "/api/nas",
        "/api/sessions",
        "/api/users/alice",
        "/api/queue",
        "/api/bulk/1",
    ] {
        assert_eq!(e.get(path, None).status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // A made-up or malformed cookie is no session.
    let fake = format!("{}={}", auth::COOKIE, "ab".repeat(32));
    assert_eq!(
        e.get("/api/me", Some(&fake)).status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        e.get("/api/me", Some("rlm_console=x'--")).status,
        StatusCode::UNAUTHORIZED
    );
    let login = e.get("/login", None);
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let m = e.get("/metrics", None);
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.body.contains("# TYPE rlm_rust_queue_jobs gauge"),
        "{}",
        m.body
    );
    assert!(m.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
}

#[test]
fn metrics_with_a_token_need_it() {
    let e = env_with(Some("metrics-t0ken"));
    assert_eq!(e.get("/metrics", None).status, StatusCode::UNAUTHORIZED);
    let with = |t: &str| {
        Request::get("/metrics")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(e.send(with("wrong")).status, StatusCode::UNAUTHORIZED);
    let ok = e.send(with("metrics-t0ken"));
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.body.contains("rlm_rust_accounting_requests_total"));
}

#[test]
fn posts_need_the_csrf_token_the_admin_role_and_the_same_origin() {
    let e = env();
    let admin = e.login("alice");
    let viewer = e.login("victor");
    let body = serde_json::json!({ "all_failed": "1" });
    let cases: [(&Session, Option<&str>, StatusCode); 4] = [
        (&admin, None, StatusCode::FORBIDDEN),
        (
            &admin,
            Some("0".repeat(64).as_str()).map(|_| "bad-token"),
            StatusCode::FORBIDDEN,
        ),
        (&viewer, Some(viewer.csrf.as_str()), StatusCode::FORBIDDEN),
        (&admin, Some(admin.csrf.as_str()), StatusCode::OK),
    ];
    for (s, csrf, want) in cases {
        let r = e.post_json("/api/queue/retry", s, csrf, body.clone());
        assert_eq!(r.status, want, "{csrf:?}: {}", r.body);
    }
    // One session's token is not another's.
    let r = e.post_json("/api/queue/retry", &admin, Some(&viewer.csrf), body.clone());
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Forms: the same rules.
    let r = e.post_form("/queue/retry", Some(&admin.cookie), &[("all_failed", "1")]);
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    let r = e.post_form(
        "/queue/retry",
        Some(&viewer.cookie),
        &[("csrf", &viewer.csrf), ("all_failed", "1")],
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("viewer"), "{}", r.body);
    // A page elsewhere posting with the admin's cookie (and even a stolen token).
    let req = Request::post("/queue/retry")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &admin.cookie)
        .header(header::HOST, "127.0.0.1:8088")
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::from(format!("csrf={}&all_failed=1", admin.csrf)))
        .unwrap();
    assert_eq!(e.send(req).status, StatusCode::FORBIDDEN);
    let req = Request::post("/queue/retry")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &admin.cookie)
        .header(header::HOST, "127.0.0.1:8088")
        .header(header::ORIGIN, "http://127.0.0.1:8088")
        .body(Body::from(format!("csrf={}&all_failed=1", admin.csrf)))
        .unwrap();
    assert_eq!(e.send(req).status, StatusCode::SEE_OTHER);
    // Viewers read every screen.
    for path in ["/nas", "/sessions", "/queue", "/users/alice"] {
        let r = e.get(path, Some(&viewer.cookie));
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(
            !r.body.contains("Add a topup"),
            "no change forms for viewers: {path}"
        );
    }
}

#[test]
fn logout_ends_the_session() {
    let e = env();
    let s = e.login("alice");
    let r = e.post_form("/logout", Some(&s.cookie), &[]);
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "logout needs the token too"
    );
    let r = e.post_form("/logout", Some(&s.cookie), &[("csrf", &s.csrf)]);
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        e.get("/api/me", Some(&s.cookie)).status,
        StatusCode::UNAUTHORIZED
    );
    // A new password ends every session of the operator.
    let s = e.login("alice");
    e.app
        .admin()
        .operator_update("alice", Some("$argon2id$x"), None, 5)
        .unwrap();
    assert_eq!(
        e.get("/api/me", Some(&s.cookie)).status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn nas_list_shows_targets_credentials_and_counts_never_secrets() {
    let e = env();
    let now = crate::periods::now();
    let month = crate::periods::month_start(now, chrono_tz::UTC);
    for (i, start) in [month - 86_400, month - 60, now - 10].iter().enumerate() {
        e.store
            .record(acct(
                AcctStatus::Start,
                "u",
                &format!("s{i}"),
                "192.0.2.10",
                0,
                *start,
            ))
            .unwrap();
    }
    let s = e.login("alice");
    let j = e.get("/api/nas", Some(&s.cookie)).json();
    let a = &j["nas"][0];
    assert_eq!(a["nas_ip"], "192.0.2.10");
    assert_eq!(a["dm_target"], "192.0.2.10:3799");
    assert_eq!(
        (a["secret_set"].as_bool(), a["api_credentials"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (
            a["open_sessions"].as_u64(),
            a["prior_month_sessions"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(j["nas"][1]["api_credentials"], false);
    let page = e.get("/nas", Some(&s.cookie));
    for text in [j.to_string(), page.body.clone()] {
        assert!(
            !text.contains("nas-secret-value") && !text.contains("api-secret-value"),
            "{text}"
        );
    }
    assert!(page.body.contains("admin@127.0.0.1:9"), "{}", page.body);
    assert!(page.body.contains("Bulk disconnect all NASes"));
}

#[test]
fn bulk_runs_report_each_nas_and_are_recorded_for_real_runs() {
    let e = env();
    let s = e.login("alice");
    for bad in [
        serde_json::json!({}),
        serde_json::json!({ "nas": ["203.0.113.99"] }),
        serde_json::json!({ "all": true, "before": "yesterday-ish" }),
    ] {
        let r = e.post_json("/api/bulk", &s, Some(&s.csrf), bad.clone());
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let wait = |id: u64| {
        for _ in 0..100 {
            let run = e.get(&format!("/api/bulk/{id}"), Some(&s.cookie)).json();
            if !run["finished"].is_null() {
                return run;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("bulk run {id} did not finish");
    };
    let r = e.post_json(
        "/api/bulk",
        &s,
        Some(&s.csrf),
        serde_json::json!({ "all": true, "dry_run": true }),
    );
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let run = wait(r.json()["id"].as_u64().unwrap());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results[0]["error"].as_str().unwrap().contains("connect"),
        "{run}"
    );
    assert!(results[1]["skipped"]
        .as_str()
        .unwrap()
        .contains("no RouterOS API credentials"));
    assert_eq!(
        e.app.admin().bulk_runs("192.0.2.10").unwrap().len(),
        0,
        "a dry run records nothing"
    );
    let page = e.get(&format!("/bulk/{}", run["id"]), Some(&s.cookie));
    assert!(
        page.body.contains("Dry run finished")
            && page.body.contains("Disconnect these sessions now")
    );

    // The form route (as the NAS list's row button posts it), for real.
    let r = e.post_form(
        "/bulk",
        Some(&s.cookie),
        &[("csrf", &s.csrf), ("one", "tower-a")],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: u64 = r.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let run = wait(id);
    assert_eq!(run["dry_run"], false);
    let runs = e.app.admin().bulk_runs("192.0.2.10").unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].error.as_deref().unwrap().contains("connect"));
    let page = e.get(&format!("/bulk/{id}"), Some(&s.cookie));
    assert!(page.body.contains("1 failed"), "{}", page.body);
    let m = e.get("/metrics", None).body;
    assert!(
        m.contains("rlm_rust_bulk_last_run{nas=\"192.0.2.10\",value=\"failed\"}"),
        "{m}"
    );
    assert_eq!(
        e.get("/api/bulk/999", Some(&s.cookie)).status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn sessions_page_by_keyset_filter_and_queue_disconnects() {
    let e = env();
    let t = crate::periods::now() - 100_000;
    // Four sessions start in each second: pages split such groups.
    for i in 0..120 {
        let user = if i % 3 == 0 { "<b>bob</b>" } else { "carol" };
        e.store
            .record(acct(
                AcctStatus::Start,
                user,
                &format!("s{i}"),
                "192.0.2.10",
                0,
                t + i / 4,
            ))
            .unwrap();
    }
    let s = e.login("alice");
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/sessions?after={a}"),
            None => "/api/sessions".into(),
        };
        let p = e.get(&path, Some(&s.cookie)).json();
        assert_eq!(p["total"], 120);
        for r in p["sessions"].as_array().unwrap() {
            assert!(
                seen.insert(r["id"].as_i64().unwrap()),
                "a session on two pages"
            );
        }
        pages += 1;
        match p["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (120, 3));
    let bob = e
        .get("/api/sessions?user=%3Cb%3Ebob%3C%2Fb%3E", Some(&s.cookie))
        .json();
    assert_eq!(bob["total"], 40);
    let before = e
        .get(
            &format!(
                "/api/sessions?before={}",
                chrono::DateTime::from_timestamp(t - 50, 0)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%SZ")
            ),
            Some(&s.cookie),
        )
        .json();
    // Started = event time - Acct-Session-Time (60 s): t + i / 4 - 60 < t - 50.
    assert_eq!(before["total"], 40);
    let page = e
        .get("/sessions?user=%3Cb%3Ebob%3C%2Fb%3E", Some(&s.cookie))
        .body;
    assert!(
        page.contains("&lt;b&gt;bob&lt;/b&gt;") && !page.contains("<b>bob</b>"),
        "escaped"
    );
    for bad in [
        "/api/sessions?nas=tower",
        "/api/sessions?after=x",
        "/api/sessions?before=soon",
    ] {
        assert_eq!(
            e.get(bad, Some(&s.cookie)).status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    let ids: Vec<i64> = bob["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let r = e
        .post_json(
            "/api/sessions/disconnect",
            &s,
            Some(&s.csrf),
            serde_json::json!({ "ids": [ids[0], ids[1], 999_999] }),
        )
        .json();
    assert_eq!(
        (r["queued"].as_u64(), r["not_open"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    // The form: a row's button, then the same session again.
    let one = ids[0].to_string();
    let r = e.post_form(
        "/sessions/disconnect",
        Some(&s.cookie),
        &[("csrf", &s.csrf), ("one", &one)],
    );
    assert!(
        r.body
            .contains("0 disconnect job(s) queued, 1 already queued"),
        "{}",
        r.body
    );
    let jobs = e.app.admin().queue_list(None).unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs[0].reason.contains("operator alice"), "{:?}", jobs[0]);
    for bad in [
        serde_json::json!({ "ids": [] }),
        serde_json::json!({ "ids": vec![1; 1001] }),
    ] {
        let r = e.post_json("/api/sessions/disconnect", &s, Some(&s.csrf), bad);
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }
    let q = e.get("/api/queue", Some(&s.cookie)).json();
    assert_eq!(q["jobs"].as_array().unwrap().len(), 2);
    assert!(q["counts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["queue"] == "disconnect" && c["state"] == "pending" && c["jobs"] == 2));
    assert_eq!(
        e.get("/api/queue?state=bogus", Some(&s.cookie)).status,
        StatusCode::BAD_REQUEST
    );
    let page = e.get("/queue", Some(&s.cookie)).body;
    assert!(page.contains("operator alice (console)"), "{page}");
}

#[test]
fn user_screen_charts_usage_and_a_topup_added_there_is_the_clis() {
    let e = env();
    let now = crate::periods::now();
    e.store
        .record(acct(
            AcctStatus::Start,
            "m\u{fc}ller",
            "x1",
            "192.0.2.10",
            0,
            now - 100,
        ))
        .unwrap();
    e.store
        .record(acct(
            AcctStatus::Interim,
            "m\u{fc}ller",
            "x1",
            "192.0.2.10",
            4 << 20,
            now - 50,
        ))
        .unwrap();
    e.store
        .limits_set("m\u{fc}ller", &[("Rust-Capping-Traffic-Limit", "100")])
        .unwrap();
    let s = e.login("alice");
    let path = view::user_href("m\u{fc}ller");
    let page = e.get(&path, Some(&s.cookie));
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<svg class=\"chart\""), "{}", page.body);
    assert!(page.body.contains("download 4.00 MiB"), "{}", page.body);
    assert!(page.body.contains("100 MB"), "the limit: {}", page.body);
    assert!(
        page.body.contains("5.00 MiB"),
        "used, in bytes: {}",
        page.body
    );

    let api = format!("/api{path}/topups");
    let cases = [
        (
            serde_json::json!({ "kind": "traffic", "amount": "abc", "valid_to": "2099-01-01" }),
            "amount",
        ),
        (
            serde_json::json!({ "kind": "bytes", "amount": "5", "valid_to": "2099-01-01" }),
            "kind",
        ),
        (
            serde_json::json!({ "kind": "traffic", "amount": "5", "valid_to": "2000-01-01" }),
            "valid-to",
        ),
        (
            serde_json::json!({ "kind": "traffic", "amount": "0", "valid_to": "2099-01-01" }),
            "larger than 0",
        ),
        (
            serde_json::json!({ "kind": "traffic", "amount": "5", "valid_to": "someday" }),
            "",
        ),
    ];
    for (body, says) in cases {
        let r = e.post_json(&api, &s, Some(&s.csrf), body.clone());
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains(says),
            "{body}: {}",
            r.body
        );
    }
    let r = e.post_form(
        &format!("{path}/topups"),
        Some(&s.cookie),
        &[
            ("csrf", &s.csrf),
            ("kind", "traffic"),
            ("amount", "250"),
            ("valid_to", "2099-01-01"),
        ],
    );
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], path.as_str());
    // What the CLI lists.
    let listed = crate::cli::run_json(
        &e.app.opts.db,
        chrono_tz::UTC,
        vec!["topup".into(), "list".into(), "m\u{fc}ller".into()],
    )
    .unwrap();
    assert_eq!(listed["topups"][0]["value"], 250, "{listed}");
    let j = e.get(&format!("/api{path}"), Some(&s.cookie)).json();
    assert_eq!(j["topups"][0]["value"], 250);
    assert_eq!(j["limits"]["traffic"]["topups"], 250 << 20, "{j}");
    // A Latin-1 name's bytes in the path, and broken ones.
    let latin1 = crate::names::decode(b"m\xfcller");
    assert_eq!(view::user_href(&latin1), "/users/m%FCller");
    assert_eq!(
        e.get("/users/m%FCller", Some(&s.cookie)).status,
        StatusCode::OK
    );
    assert_eq!(
        e.get("/api/users/m%ZZ", Some(&s.cookie)).status,
        StatusCode::BAD_REQUEST
    );
    // A literal '%' in a name stays one: "a%41" is not "aA".
    assert_eq!(view::user_href("a%41"), "/users/a%2541");
    let j = e.get("/api/users/a%2541", Some(&s.cookie)).json();
    assert_eq!(j["username"], "a%41");
}

#[test]
fn queue_retry_and_purge_change_what_the_cli_sees() {
    let e = env();
    let s = e.login("alice");
    let job = crate::store::NewDisconnectJob {
        nas_ip: "192.0.2.10".into(),
        session_key: "k".into(),
        username: "u".into(),
        acct_session_id: "k".into(),
        framed_ip: None,
        session_start: 1,
        reason: "test".into(),
    };
    let admin = e.app.admin();
    admin.queue_enqueue(&job, 1).unwrap();
    let id = admin.queue_list(None).unwrap()[0].id;
    admin
        .queue_mark(
            id,
            &crate::store::JobOutcome::Failed {
                error: "NAS said no".into(),
                error_cause: None,
            },
            2,
        )
        .unwrap();
    drop(admin);
    let page = e.get("/queue?state=failed", Some(&s.cookie)).body;
    assert!(page.contains("NAS said no"), "{page}");
    let r = e.post_json(
        "/api/queue/retry",
        &s,
        Some(&s.csrf),
        serde_json::json!({ "id": "x" }),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = e.post_json(
        "/api/queue/retry",
        &s,
        Some(&s.csrf),
        serde_json::json!({ "id": id.to_string() }),
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        e.app.admin().queue_list(None).unwrap()[0].state,
        crate::store::JobState::Pending
    );
    e.app
        .admin()
        .queue_mark(
            id,
            &crate::store::JobOutcome::Done(crate::store::Method::Dm),
            3,
        )
        .unwrap();
    let r = e.post_json(
        "/api/queue/purge",
        &s,
        Some(&s.csrf),
        serde_json::json!({ "older_than": "soon" }),
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = e.post_json("/api/queue/purge", &s, Some(&s.csrf), serde_json::json!({}));
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(e.app.admin().queue_list(None).unwrap().is_empty());
}
