//! The screens: server-rendered HTML over the functions in [`super::api`]. Forms
//! post back here and redirect (post/redirect/get); failures render in the layout.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, PreEscaped};
use serde_json::Value;

use super::api::{self, BulkBody, PurgeForm, QueueQuery, RetryForm, SessionQuery, TopupForm};
use super::auth::{self, Operator};
use super::chart::{self, Bar};
use super::view::{self, csrf, page, Tab};
use super::{blocking, Fail, Shared};
use crate::periods;

/// A posted form's fields, repeated names kept (checkboxes).
struct FormData(Vec<(String, String)>);

impl FormData {
    fn parse(body: &Bytes) -> FormData {
        FormData(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn render<T>(r: Result<T, Fail>, op: &Operator, ok: impl FnOnce(T) -> Response) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(f) => view::fail_page(f, Some(op)),
    }
}

pub async fn home(_op: Operator) -> Redirect {
    Redirect::to("/nas")
}

// ---- Login ----

pub async fn login_form() -> Response {
    login_page(None, StatusCode::OK)
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let body = html! {
        form.login method="post" action="/login" {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            label { "Operator" input name="name" autocomplete="username" required autofocus; }
            label { "Password" input name="password" type="password" autocomplete="current-password" required; }
            button type="submit" { "Log in" }
        }
    };
    (status, page("Log in", Tab::None, None, body)).into_response()
}

pub async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let f = FormData::parse(&body);
    let name = f.get("name").unwrap_or_default();
    let password = f.get("password").unwrap_or_default();
    let now = periods::now();
    if let Some(wait) = app.limiter.locked(&name, now) {
        log::warn!("console: login of {name:?} refused: too many failures");
        return login_page(
            Some(&format!("Too many failed logins: try again in {wait} s.")),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let app2 = app.clone();
    let checked = blocking(move || {
        let row = match auth::valid_name(&name) {
            Ok(()) => app2.reader.operator_get(&name)?,
            Err(_) => None,
        };
        let hash = row
            .as_ref()
            .map_or(auth::dummy_hash(), |r| r.password_hash.as_str());
        let ok = auth::verify_password(&password, hash) && row.is_some();
        if !ok {
            app2.limiter.failed(&name, now);
            log::warn!("console: failed login as {name:?}");
            return Ok(None);
        }
        app2.limiter.succeeded(&name);
        let token = auth::random_token()?;
        let csrf = auth::random_token()?;
        app2.admin().console_session_add(
            &auth::token_hash(&token),
            &name,
            &csrf,
            now,
            now + app2.opts.session_secs,
        )?;
        log::info!("console: {name} logged in");
        Ok(Some(token))
    })
    .await;
    match checked {
        Ok(Some(token)) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/nas".to_string()),
                (
                    header::SET_COOKIE,
                    auth::cookie(Some(&token), app.opts.session_secs, app.opts.secure_cookie),
                ),
            ],
        )
            .into_response(),
        Ok(None) => login_page(
            Some("Wrong operator or password."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(f) => login_page(Some(&f.message), f.status),
    }
}

pub async fn logout(op: Operator, State(app): State<Shared>, body: Bytes) -> Response {
    let f = FormData::parse(&body);
    if let Err(e) = op.check_csrf(f.get("csrf").as_deref()) {
        return view::fail_page(e, Some(&op));
    }
    let hash = op.token_hash.clone();
    let app2 = app.clone();
    let _ = blocking(move || Ok(app2.admin().console_session_remove(&hash)?)).await;
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (
                header::SET_COOKIE,
                auth::cookie(None, 0, app.opts.secure_cookie),
            ),
        ],
    )
        .into_response()
}

// ---- NAS list and bulk disconnect ----

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

pub async fn nas_list(op: Operator, State(app): State<Shared>) -> Response {
    let tz = app.opts.tz;
    let data = blocking(move || api::nas_data(&app)).await;
    render(data, &op.clone(), |d| {
        let rows = d["nas"].as_array().cloned().unwrap_or_default();
        let month = d["month_start"].as_i64().unwrap_or(0);
        let admin = op.role == crate::store::Role::Admin;
        let body = html! {
            p.muted { "Prior-month sessions: open sessions that started before " (view::time(month, tz)) ". "
                "Bulk disconnect logs into each NAS's RouterOS API once and removes them all; "
                "a NAS without API credentials is left to the per-session Disconnect-Request." }
            form method="post" action="/bulk" {
                (csrf(&op))
                input type="hidden" name="dry_run" value="1";
                table.data id="nas-list" {
                    thead { tr {
                        th { input type="checkbox" data-select-all="nas" aria-label="select all"; }
                        th { "NAS" } th { "Name" } th { "Type" } th { "DM target" } th { "DM secret" }
                        th { "RouterOS API" } th.num { "Open" } th.num { "Prior month" } th { "Last bulk run" } th {}
                    } }
                    tbody {
                        @for n in &rows {
                            @let ip = s(n, "nas_ip");
                            tr data-nas=(ip) {
                                td { input type="checkbox" name="nas" value=(ip) aria-label=(format!("select {ip}")); }
                                td { (ip) }
                                td { (s(n, "name")) }
                                td { (s(n, "type")) }
                                td { (s(n, "dm_target")) }
                                td { @if n["secret_set"].as_bool() == Some(true) { "set" } @else { span.muted { "from clients.conf" } } }
                                td.api {
                                    @if n["api_credentials"].as_bool() == Some(true) {
                                        (s(n, "api_user")) "@" (s(n, "api_effective_host")) ":" (n["api_port"]) @if n["api_tls"].as_bool() == Some(true) {
                                            @if n["api_tls_verify"].as_bool() == Some(false) { " " span.bad { "(TLS not verified)" } }
                                            @else if n["api_ca_set"].as_bool() == Some(true) { " (TLS, CA)" }
                                            @else { " " span.bad { "(TLS, no CA: refused)" } }
                                        }
                                    } @else { span.muted { "not set" } }
                                }
                                td.num { (n["open_sessions"]) }
                                td.num.prior { (n["prior_month_sessions"]) }
                                td.last {
                                    @match n["last_bulk_run"].as_object() {
                                        None => span.muted { "never" },
                                        Some(r) => {
                                            (view::time(r["finished"].as_i64().or(r["started"].as_i64()).unwrap_or(0), tz)) ": "
                                            (r["removed"]) " removed"
                                            @if r["failed"].as_u64().unwrap_or(0) > 0 { ", " span.bad { (r["failed"]) " failed" } }
                                            @if let Some(e) = r["error"].as_str() { " " span.bad { "failed: " (e) } }
                                        }
                                    }
                                }
                                td { @if admin { button.secondary type="submit" name="one" value=(ip) { "Bulk disconnect" } } }
                            }
                        }
                    }
                }
                @if rows.is_empty() { p.muted { "No NASes registered: add them with " code { "rlm-rust nas add" } "." } }
                @if admin && !rows.is_empty() {
                    div.actions {
                        button type="submit" name="selected" value="1" { "Bulk disconnect selected" }
                        button type="submit" name="all" value="1" id="bulk-all" { "Bulk disconnect all NASes" }
                    }
                    p.muted { "Each button first shows a dry run: what would be removed on each NAS. Nothing is removed until you confirm there." }
                }
            }
        };
        page("NAS list", Tab::Nas, Some(&op), body).into_response()
    })
}

/// Bulk form: `one` (a row's button), `selected` (the boxes) or `all`; `dry_run`;
/// `before`. A dry run's page offers the real run with the same choice.
pub async fn bulk_start(op: Operator, State(app): State<Shared>, body: Bytes) -> Response {
    let f = FormData::parse(&body);
    if let Err(e) = op.may_change(f.get("csrf").as_deref()) {
        return view::fail_page(e, Some(&op));
    }
    let b = BulkBody {
        nas: match f.get("one") {
            Some(one) => vec![one],
            None => f.all("nas"),
        },
        all: f.get("all").is_some() && f.get("one").is_none(),
        dry_run: f.get("dry_run").as_deref() == Some("1"),
        before: f.get("before"),
    };
    let op2 = op.clone();
    match blocking(move || api::bulk_start_do(&app, &op2, &b)).await {
        Ok(id) => Redirect::to(&format!("/bulk/{id}")).into_response(),
        Err(e) => view::fail_page(e, Some(&op)),
    }
}

pub async fn bulk_view(op: Operator, State(app): State<Shared>, Path(id): Path<u64>) -> Response {
    let tz = app.opts.tz;
    let Some(run) = app.bulk.get(id) else {
        return view::fail_page(
            Fail::new(StatusCode::NOT_FOUND, format!("no bulk run {id}")),
            Some(&op),
        );
    };
    let done = run.finished.is_some();
    let title = if run.dry_run {
        "Bulk disconnect: dry run"
    } else {
        "Bulk disconnect"
    };
    let body = html! {
        p { "Sessions started before " strong { (view::time(run.before, tz)) } ", started by " (run.operator) " at " (view::time(run.started, tz)) "." }
        @if !done {
            div data-running="1" {
                p { "Running: " span #progress { (run.results.len()) " of " (run.nases.len()) } " NASes done." }
                progress max=(run.nases.len()) value=(run.results.len()) {}
            }
        } @else {
            p #summary class=(if run.failed_nases() > 0 { "bad" } else { "good" }) {
                @if run.dry_run { "Dry run finished: nothing was removed. " } @else { "Finished. " }
                (run.results.len()) " NAS(es), " (run.failed_nases()) " failed."
            }
        }
        @if let Some(e) = &run.error { p.error { (e) } }
        table.data #bulk-results {
            thead { tr {
                th { "NAS" } th { "Name" } th.num { "Seen" } th.num { "Before" }
                th.num { (if run.dry_run { "Would remove" } else { "Removed" }) } th.num { "Gone" } th.num { "Failed" } th.num { "ms" } th { "Result" }
            } }
            tbody {
                @for r in &run.results {
                    tr data-nas=(r.nas_ip) {
                        td { (r.nas_ip) } td { (r.name.as_deref().unwrap_or("")) }
                        td.num { (r.seen) } td.num { (r.selected) }
                        td.num.removed { (if run.dry_run { r.would_remove.len() } else { r.removed }) }
                        td.num { (r.already_gone) } td.num { (r.failed) } td.num { (r.elapsed_ms) }
                        td.result {
                            @if let Some(why) = &r.skipped { span.muted { "skipped: " (why) } }
                            @else if let Some(e) = &r.error { span.bad { "failed: " (e) } }
                            @else { span.good { "ok" } }
                        }
                    }
                }
            }
        }
        @if run.dry_run && done {
            @let candidates: Vec<_> = run.results.iter().flat_map(|r| r.would_remove.iter().map(move |c| (r, c))).collect();
            h2 { "Would remove (" (candidates.len()) ")" }
            @if !candidates.is_empty() {
                table.data #would-remove {
                    thead { tr { th { "NAS" } th { "Table" } th { "User" } th { "Address" } th { "Uptime" } th { "Started" } } }
                    tbody { @for (r, c) in candidates.iter().take(500) {
                        tr { td { (r.nas_ip) } td { (c.table) } td { (view::name(&c.user)) } td { (c.address.as_deref().unwrap_or("-")) } td { (view::duration(c.uptime_secs)) } td { (view::time(c.started, tz)) } }
                    } }
                }
            }
            @if candidates.is_empty() && run.failed_nases() == 0 {
                p.notice { "Nothing to remove." }
            } @else if op.role == crate::store::Role::Admin {
                form method="post" action="/bulk" {
                    (csrf(&op))
                    input type="hidden" name="before" value=(chrono::DateTime::from_timestamp(run.before, 0).map(|t| t.to_rfc3339()).unwrap_or_default());
                    @for ip in &run.nases { input type="hidden" name="nas" value=(ip); }
                    div.actions { button.danger type="submit" #confirm { "Disconnect these sessions now" } a href="/nas" { "Cancel" } }
                }
            }
        }
    };
    page(title, Tab::Nas, Some(&op), body).into_response()
}

// ---- Active sessions ----

pub async fn sessions(
    op: Operator,
    State(app): State<Shared>,
    Query(q): Query<SessionQuery>,
) -> Response {
    let tz = app.opts.tz;
    let query = (q.user.clone(), q.nas.clone(), q.before.clone());
    let data = blocking(move || api::sessions_data(&app, &q)).await;
    let (user, nas, before) = query;
    render(data, &op.clone(), |p| {
        let admin = op.role == crate::store::Role::Admin;
        let mut next_q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [("user", &user), ("nas", &nas), ("before", &before)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                next_q.append_pair(k, v);
            }
        }
        let base = next_q.finish();
        let body = html! {
            form.filters method="get" action="/sessions" {
                label { "User" input name="user" value=(user.as_deref().unwrap_or("")); }
                label { "NAS IP" input name="nas" value=(nas.as_deref().unwrap_or("")); }
                label { "Started before" input name="before" placeholder="YYYY-MM-DD" value=(before.as_deref().unwrap_or("")); }
                button type="submit" { "Filter" }
                a href="/sessions" { "Clear" }
            }
            p #total { (p.total) " open session(s) match." }
            form method="post" action="/sessions/disconnect" {
                (csrf(&op))
                table.data #sessions {
                    thead { tr {
                        th { input type="checkbox" data-select-all="id" aria-label="select all"; }
                        th { "User" } th { "NAS" } th { "Session" } th { "Framed IP" } th { "Started" } th { "Last update" }
                        th.num { "Time" } th.num { "Download" } th.num { "Upload" } th {}
                    } }
                    tbody {
                        @for r in &p.sessions {
                            @let se = &r.session;
                            tr data-session=(r.id) {
                                td { input type="checkbox" name="id" value=(r.id) aria-label="select"; }
                                td { a href=(view::user_href(&se.username)) { (view::name(&se.username)) } }
                                td { (r.nas_ip) } td { (view::name(&se.acct_session_id)) }
                                td { (se.framed_ip.as_deref().unwrap_or("-")) }
                                td { (view::time(se.start_time, tz)) } td { (view::time(se.last_update, tz)) }
                                td.num { (view::duration(se.session_time)) }
                                td.num { (view::bytes(se.output_octets)) } td.num { (view::bytes(se.input_octets)) }
                                td { @if admin { button.secondary type="submit" name="one" value=(r.id) { "Disconnect" } } }
                            }
                        }
                    }
                }
                @if admin && !p.sessions.is_empty() {
                    div.actions { button type="submit" name="selected" value="1" { "Disconnect selected" } }
                }
            }
            div.pager {
                @if let Some(n) = &p.next {
                    a #next href=(format!("/sessions?{}{}after={}", base, if base.is_empty() { "" } else { "&" }, n)) { "Next page →" }
                }
                a href=(format!("/sessions?{base}")) { "First page" }
            }
            @if admin {
                h2 { "Bulk disconnect" }
                form.stack method="post" action="/bulk" {
                    (csrf(&op))
                    input type="hidden" name="dry_run" value="1";
                    @if let Some(n) = nas.as_deref().filter(|n| !n.is_empty()) { input type="hidden" name="nas" value=(n); }
                    @else { input type="hidden" name="all" value="1"; }
                    label { "Sessions started before (default: this month's start)" input name="before" placeholder="YYYY-MM-DD" value=(before.as_deref().unwrap_or("")); }
                    button type="submit" { (if nas.as_deref().is_some_and(|n| !n.is_empty()) { "Bulk disconnect on this NAS…" } else { "Bulk disconnect on all NASes…" }) }
                }
            }
        };
        page("Active sessions", Tab::Sessions, Some(&op), body).into_response()
    })
}

pub async fn sessions_disconnect(op: Operator, State(app): State<Shared>, body: Bytes) -> Response {
    let f = FormData::parse(&body);
    if let Err(e) = op.may_change(f.get("csrf").as_deref()) {
        return view::fail_page(e, Some(&op));
    }
    let raw = match f.get("one") {
        Some(one) => vec![one],
        None => f.all("id"),
    };
    let ids: Result<Vec<i64>, Fail> = raw
        .iter()
        .map(|i| {
            i.parse()
                .map_err(|_| Fail::bad(format!("{i:?} is not a session id")))
        })
        .collect();
    let op2 = op.clone();
    let done = match ids {
        Ok(ids) => blocking(move || api::disconnect_sessions(&app, &op2, &ids)).await,
        Err(e) => Err(e),
    };
    render(done, &op.clone(), |d| {
        let body = html! {
            p.notice #result { (d.queued) " disconnect job(s) queued, " (d.already_queued) " already queued, " (d.not_open) " not open." }
            p { "The module's queue worker sends each a Disconnect-Request (then the RouterOS API). " a href="/queue" { "Follow them in the queue" } " or go " a href="/sessions" { "back to the sessions" } "." }
        };
        page("Disconnect queued", Tab::Sessions, Some(&op), body).into_response()
    })
}

// ---- Users ----

#[derive(serde::Deserialize)]
pub struct FindQuery {
    name: Option<String>,
}

pub async fn user_find(op: Operator, Query(q): Query<FindQuery>) -> Response {
    if let Some(n) = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return Redirect::to(&view::user_href(n)).into_response();
    }
    let body = html! {
        form.filters method="get" action="/users" {
            label { "User name" input name="name" autofocus; }
            button type="submit" { "Show" }
        }
        p.muted { "Or open a user from the active sessions." }
    };
    page("Users", Tab::Users, Some(&op), body).into_response()
}

fn bars(rows: &Value, key: &str, take: usize) -> Vec<Bar> {
    let mut v: Vec<Bar> = rows
        .as_array()
        .into_iter()
        .flatten()
        .take(take)
        .map(|r| Bar {
            label: r[key].as_str().unwrap_or("").to_string(),
            upload: r["input_octets"].as_u64().unwrap_or(0),
            download: r["output_octets"].as_u64().unwrap_or(0),
        })
        .collect();
    v.reverse();
    v
}

fn topups_table(t: &Value, tz: chrono_tz::Tz) -> Markup {
    let rows = t.as_array().cloned().unwrap_or_default();
    let at = |v: &Value| v.as_i64().map_or("-".to_string(), |t| view::time(t, tz));
    html! {
        @if rows.is_empty() { p.muted { "No topups." } }
        @else {
            table.data {
                thead { tr { th { "Id" } th { "Kind" } th.num { "Amount" } th { "Valid from" } th { "Valid to" } th { "State" } } }
                tbody { @for r in &rows {
                    tr {
                        td { (r["id"]) }
                        td { (s(r, "kind")) @if r["auto"].as_bool() == Some(true) { " (auto-topup)" } }
                        td.num { (r["value"]) " " (s(r, "unit")) }
                        td { (at(&r["valid_from"])) } td { (at(&r["valid_to"])) }
                        td { @if r["depleted"].as_bool() == Some(true) { "depleted " (at(&r["depleted_at"])) } @else { "available" } }
                    }
                } }
            }
        }
    }
}

/// Bytes for traffic, a duration for uptime (the limits JSON counts in those).
fn amount(kind: &str, v: i64) -> String {
    let abs = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    match kind {
        "traffic" => format!("{sign}{}", view::bytes(abs)),
        _ => format!("{sign}{}", view::duration(abs)),
    }
}

fn limits_table(l: &Value) -> Markup {
    html! {
        table.data #limits {
            thead { tr { th { "Kind" } th.num { "Limit" } th.num { "Used" } th.num { "Topups" } th.num { "Remaining" } } }
            tbody {
                @for (kind, unit) in [("traffic", "MB"), ("uptime", "min")] {
                    @let r = &l[kind];
                    tr data-kind=(kind) {
                        td { (kind) }
                        td.num { @match r["limit"].as_u64() { Some(x) => { (x) " " (unit) }, None => "unlimited" } }
                        td.num { (amount(kind, r["usage"].as_i64().unwrap_or(0))) } td.num { (amount(kind, r["topups"].as_i64().unwrap_or(0))) }
                        td.num { @match r["remaining"].as_i64() { Some(x) => { (amount(kind, x)) @if x <= 0 { " (over)" } }, None => "unlimited" } }
                    }
                }
            }
        }
    }
}

pub async fn user(op: Operator, State(app): State<Shared>, uri: axum::http::Uri) -> Response {
    let tz = app.opts.tz;
    let user = match api::user_of(&uri) {
        Ok(u) => u,
        Err(e) => return view::fail_page(e, Some(&op)),
    };
    let u2 = user.clone();
    let data = blocking(move || api::user_data(&app, &u2)).await;
    render(data, &op.clone(), |d| {
        let days = bars(&d["usage"]["days"], "day", 31);
        let months = bars(&d["usage"]["months"], "month", 12);
        let shown = view::name(&user);
        let default_to = {
            let now = periods::now();
            let next = periods::month_start(now, tz) + 40 * 86_400;
            view::time(periods::month_start(next, tz), tz)
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string()
        };
        let body = html! {
            div.grid {
                section {
                    h2 { "Usage per day (last 31 days with usage)" }
                    (PreEscaped(chart::usage_bars(&format!("daily usage of {shown}"), &days)))
                }
                section {
                    h2 { "Usage per month" }
                    (PreEscaped(chart::usage_bars(&format!("monthly usage of {shown}"), &months)))
                }
            }
            h2 { "Limits this period: " span #cap-state { (s(&d["limits"], "state")) } }
            (limits_table(&d["limits"]))
            @if let Some(e) = d["limits"]["explanation"].as_str() { p.muted { (e) } }
            h2 { "Topups and auto-topups" }
            div #topups { (topups_table(&d["topups"], tz)) }
            @if op.role == crate::store::Role::Admin {
                h2 { "Add a topup" }
                form.stack #topup-form method="post" action=(format!("{}/topups", view::user_href(&user))) {
                    (csrf(&op))
                    label { "Kind" select name="kind" { option value="traffic" { "traffic (MB)" } option value="uptime" { "uptime (minutes)" } } }
                    label { "Amount" input name="amount" inputmode="numeric" required; }
                    label { "Valid from (default now)" input name="valid_from" placeholder="YYYY-MM-DD"; }
                    label { "Valid to (exclusive)" input name="valid_to" value=(default_to) required; }
                    button type="submit" { "Add topup" }
                }
            }
            h2 { "Policy, services and state" }
            (view::json(&d["user"]))
            h2 { "Events" }
            (view::json(&d["events"]["events"]))
        };
        page(&format!("User {shown}"), Tab::Users, Some(&op), body).into_response()
    })
}

pub async fn topup_add(
    op: Operator,
    State(app): State<Shared>,
    uri: axum::http::Uri,
    body: Bytes,
) -> Response {
    let f = FormData::parse(&body);
    if let Err(e) = op.may_change(f.get("csrf").as_deref()) {
        return view::fail_page(e, Some(&op));
    }
    let user = match api::user_of(&uri) {
        Ok(u) => u,
        Err(e) => return view::fail_page(e, Some(&op)),
    };
    let form = TopupForm {
        kind: f.get("kind").unwrap_or_default(),
        amount: f.get("amount").unwrap_or_default(),
        valid_from: f.get("valid_from"),
        valid_to: f.get("valid_to").unwrap_or_default(),
    };
    let (op2, u2) = (op.clone(), user.clone());
    match blocking(move || api::topup_add_do(&app, &op2, &u2, &form)).await {
        Ok(_) => Redirect::to(&view::user_href(&user)).into_response(),
        Err(e) => view::fail_page(e, Some(&op)),
    }
}

// ---- Queue ----

const STATES: [&str; 5] = ["pending", "dm-failed", "unconfirmed", "failed", "done"];

pub async fn queue(
    op: Operator,
    State(app): State<Shared>,
    Query(q): Query<QueueQuery>,
) -> Response {
    let state = q.state.clone().filter(|s| !s.is_empty());
    let data = blocking(move || api::queue_data(&app, &q)).await;
    render(data, &op.clone(), |d| {
        let admin = op.role == crate::store::Role::Admin;
        let counts = d["counts"].as_array().cloned().unwrap_or_default();
        let count = |queue: &str, st: &str| {
            counts
                .iter()
                .find(|c| c["queue"] == queue && c["state"] == st)
                .and_then(|c| c["jobs"].as_u64())
                .unwrap_or(0)
        };
        let jobs = d["jobs"].as_array().cloned().unwrap_or_default();
        let body = html! {
            table.data #queue-counts {
                thead { tr { th { "Disconnect jobs" } @for st in STATES { th.num { a href=(format!("/queue?state={st}")) { (st) } } } } }
                tbody { tr { td { a href="/queue" { "all" } } @for st in STATES { td.num data-state=(st) { (count("disconnect", st)) } } } }
            }
            @let others: Vec<_> = counts.iter().filter(|c| c["queue"] != "disconnect").collect();
            @if !others.is_empty() {
                p.muted { "Other queues: " @for c in &others { (s(c, "queue")) " " (s(c, "state")) ": " (c["jobs"]) "; " } }
            }
            @if admin {
                div.actions {
                    form.inline method="post" action="/queue/retry" { (csrf(&op)) input type="hidden" name="all_failed" value="1"; button type="submit" #retry-failed { "Retry all failed" } }
                    form.inline method="post" action="/queue/purge" { (csrf(&op)) button.secondary type="submit" #purge-done { "Purge done jobs" } }
                    form.inline method="post" action="/queue/purge" { (csrf(&op)) input name="older_than" value="7d" size="4" aria-label="older than"; button.secondary type="submit" { "Purge done jobs older than" } }
                }
            }
            h2 { (state.as_deref().unwrap_or("All")) " jobs (" (jobs.len()) ")" }
            table.data #jobs {
                thead { tr { th { "Id" } th { "State" } th { "User" } th { "NAS" } th { "Session" } th { "Reason" } th.num { "Attempts" } th { "Last error" } th { "Next attempt" } th {} } }
                tbody {
                    @for j in jobs.iter().take(1000) {
                        tr data-job=(j["id"]) {
                            td { (j["id"]) } td.state { (s(j, "state")) } td { (view::name(s(j, "username"))) } td { (s(j, "nas_ip")) }
                            td { (view::name(s(j, "session_key"))) } td { (s(j, "reason")) } td.num { (j["attempts"]) }
                            td.bad { (s(j, "last_error")) } td { (s(j, "next_attempt_local")) }
                            td { @if admin && s(j, "state") != "done" {
                                form.inline method="post" action="/queue/retry" { (csrf(&op)) input type="hidden" name="id" value=(j["id"]); button.secondary type="submit" { "Retry" } }
                            } }
                        }
                    }
                }
            }
        };
        page("Disconnect queue", Tab::Queue, Some(&op), body).into_response()
    })
}

async fn queue_change(
    op: Operator,
    app: Shared,
    body: Bytes,
    f: impl FnOnce(&Shared, &Operator, &FormData) -> Result<Value, Fail> + Send + 'static,
) -> Response {
    let form = FormData::parse(&body);
    if let Err(e) = op.may_change(form.get("csrf").as_deref()) {
        return view::fail_page(e, Some(&op));
    }
    let op2 = op.clone();
    match blocking(move || f(&app, &op2, &form)).await {
        Ok(_) => Redirect::to("/queue").into_response(),
        Err(e) => view::fail_page(e, Some(&op)),
    }
}

pub async fn queue_retry(op: Operator, State(app): State<Shared>, body: Bytes) -> Response {
    queue_change(op, app, body, |app, op, f| {
        api::queue_retry_do(
            app,
            op,
            &RetryForm {
                id: f.get("id"),
                all_failed: f.get("all_failed"),
            },
        )
    })
    .await
}

pub async fn queue_purge(op: Operator, State(app): State<Shared>, body: Bytes) -> Response {
    queue_change(op, app, body, |app, op, f| {
        api::queue_purge_do(
            app,
            op,
            &PurgeForm {
                older_than: f.get("older_than"),
            },
        )
    })
    .await
}
