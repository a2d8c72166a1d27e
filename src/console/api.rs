//! What the screens show and do, once: each `*_data` / action function is used by
//! its JSON endpoint here and by its page in [`super::pages`].

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::auth::Operator;
use super::{blocking, Fail, Shared};
use crate::bulk::BulkOptions;
use crate::periods;
use crate::store::{OpenState, SessionFilter, SessionRow};

/// Sessions per page of the active sessions screen.
pub const PAGE: usize = 50;
/// Most sessions one disconnect request may name.
pub const MAX_DISCONNECT: usize = 1000;

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

fn name_arg(name: &str) -> OsString {
    OsString::from_vec(crate::names::encode(name).into_owned())
}

/// A CLI command's JSON, run in this process on the console's store.
pub(crate) fn cli(app: &Shared, words: Vec<OsString>) -> Result<Value, Fail> {
    Ok(crate::cli::run_json(&app.opts.db, app.opts.tz, words)?)
}

fn words(w: &[&str]) -> Vec<OsString> {
    w.iter().map(OsString::from).collect()
}

/// The user name of a `/users/NAME...` or `/api/users/NAME...` path: the raw
/// segment's percent-decoded bytes, as the module keeps them (axum's `Path` would
/// refuse a Latin-1 name and decode `%25` before this could).
pub(crate) fn user_of(uri: &axum::http::Uri) -> Result<String, Fail> {
    let path = uri.path();
    let rest = path
        .strip_prefix("/api/users/")
        .or_else(|| path.strip_prefix("/users/"))
        .ok_or_else(|| Fail::bad("not a user path"))?;
    user_from_path(rest.split('/').next().unwrap_or(""))
}

fn user_from_path(raw: &str) -> Result<String, Fail> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Fail::bad("bad percent-encoding in the user name"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.is_empty() || out.len() > 253 {
        return Err(Fail::bad("a user name is 1 to 253 bytes"));
    }
    Ok(crate::names::decode(&out))
}

// ---- NAS list ----

pub(crate) fn nas_data(app: &Shared) -> Result<Value, Fail> {
    let listed = cli(app, words(&["nas", "list"]))?;
    let now = periods::now();
    let month = periods::month_start(now, app.opts.tz);
    let counts = app.reader.nas_session_counts(month)?;
    let mut last_runs = app.admin().last_bulk_runs()?;
    let mut out = Vec::new();
    for mut n in listed["nas"].as_array().cloned().unwrap_or_default() {
        let ip = n["nas_ip"].as_str().unwrap_or_default().to_string();
        let c = counts.get(&ip).copied().unwrap_or_default();
        let last = last_runs.remove(&ip);
        let o = n.as_object_mut().expect("nas list rows are objects");
        o.insert("open_sessions".into(), json!(c.open));
        o.insert("prior_month_sessions".into(), json!(c.open_before));
        o.insert(
            "dm_target".into(),
            json!(format!(
                "{}:{}",
                o.get("coa_host").and_then(Value::as_str).unwrap_or(&ip),
                o.get("coa_port").and_then(Value::as_u64).unwrap_or(3799)
            )),
        );
        o.insert(
            "last_bulk_run".into(),
            match last {
                None => Value::Null,
                Some(r) => json!({
                    "started": r.started,
                    "finished": r.finished,
                    "seen": r.seen,
                    "removed": r.removed,
                    "failed": r.failed,
                    "error": r.error,
                }),
            },
        );
        out.push(n);
    }
    Ok(json!({ "month_start": month, "nas": out }))
}

pub async fn nas(_op: Operator, State(app): State<Shared>) -> Result<Json<Value>, Fail> {
    Ok(Json(blocking(move || nas_data(&app)).await?))
}

// ---- Sessions ----

#[derive(Debug, Default, Deserialize)]
pub struct SessionQuery {
    pub user: Option<String>,
    pub nas: Option<String>,
    /// YYYY-MM-DD or RFC 3339.
    pub before: Option<String>,
    /// The cursor of the next page: `START.ID`.
    pub after: Option<String>,
}

#[derive(Serialize)]
pub struct SessionPage {
    pub total: u64,
    pub sessions: Vec<SessionRow>,
    /// The `after` of the next page, if there is one.
    pub next: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

pub(crate) fn session_filter(app: &Shared, q: &SessionQuery) -> Result<SessionFilter, Fail> {
    let started_before = match nonempty(&q.before) {
        None => None,
        Some(d) => Some(
            crate::cli::capping::parse_date(&d, app.opts.tz)
                .map_err(|e| Fail::bad(format!("before: {e}")))?,
        ),
    };
    let after = match nonempty(&q.after) {
        None => None,
        Some(a) => {
            let (s, i) = a
                .split_once('.')
                .and_then(|(s, i)| Some((s.parse().ok()?, i.parse().ok()?)))
                .ok_or_else(|| Fail::bad("after: a page cursor is START.ID"))?;
            Some((s, i))
        }
    };
    if let Some(n) = nonempty(&q.nas) {
        if n.parse::<std::net::IpAddr>().is_err() {
            return Err(Fail::bad(format!("nas: {n:?} is not an IP address")));
        }
    }
    Ok(SessionFilter {
        username: nonempty(&q.user),
        nas_ip: nonempty(&q.nas),
        state: OpenState::Open,
        started_before,
        after,
        limit: Some(PAGE),
    })
}

pub(crate) fn sessions_data(app: &Shared, q: &SessionQuery) -> Result<SessionPage, Fail> {
    let f = session_filter(app, q)?;
    let sessions = app.reader.list_sessions(&f)?;
    let total = app.reader.count_sessions(&f)?;
    let next = (sessions.len() == PAGE)
        .then(|| sessions.last())
        .flatten()
        .map(|s| format!("{}.{}", s.session.start_time, s.id));
    Ok(SessionPage {
        total,
        sessions,
        next,
    })
}

pub async fn sessions(
    _op: Operator,
    State(app): State<Shared>,
    Query(q): Query<SessionQuery>,
) -> Result<Json<SessionPage>, Fail> {
    Ok(Json(blocking(move || sessions_data(&app, &q)).await?))
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Disconnected {
    /// New disconnect jobs.
    pub queued: usize,
    /// Sessions that already had a job.
    pub already_queued: usize,
    /// Ids of no open session.
    pub not_open: usize,
}

/// Queues a disconnect job per open session (the module's queue worker sends them:
/// it knows the NASes' client secrets).
pub(crate) fn disconnect_sessions(
    app: &Shared,
    op: &Operator,
    ids: &[i64],
) -> Result<Disconnected, Fail> {
    if ids.is_empty() {
        return Err(Fail::bad("no session selected"));
    }
    if ids.len() > MAX_DISCONNECT {
        return Err(Fail::bad(format!(
            "at most {MAX_DISCONNECT} sessions at once; use bulk disconnect for more"
        )));
    }
    let now = periods::now();
    let mut r = Disconnected::default();
    let admin = app.admin();
    for id in ids {
        let Some(s) = admin.session_by_id(*id)?.filter(|s| s.session.is_open()) else {
            r.not_open += 1;
            continue;
        };
        let job = crate::store::NewDisconnectJob {
            nas_ip: s.nas_ip.clone(),
            session_key: s.session_key.clone(),
            username: s.session.username.clone(),
            acct_session_id: s.session.acct_session_id.clone(),
            framed_ip: s.session.framed_ip.clone(),
            session_start: s.session.start_time,
            reason: format!("operator {} (console)", op.name),
        };
        if admin.queue_enqueue(&job, now)? {
            r.queued += 1;
        } else {
            r.already_queued += 1;
        }
    }
    log::info!(
        "console: {} queued {} disconnect(s) ({} already queued, {} not open)",
        op.name,
        r.queued,
        r.already_queued,
        r.not_open
    );
    Ok(r)
}

#[derive(Deserialize)]
pub struct DisconnectBody {
    pub ids: Vec<i64>,
}

fn csrf_header(h: &HeaderMap) -> Option<&str> {
    h.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

pub async fn sessions_disconnect(
    op: Operator,
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<DisconnectBody>,
) -> Result<Json<Disconnected>, Fail> {
    op.may_change(csrf_header(&headers))?;
    Ok(Json(
        blocking(move || disconnect_sessions(&app, &op, &body.ids)).await?,
    ))
}

// ---- Users ----

/// Usage, limits and topups, policy, services and state, recent events: what the
/// CLI's `usage`, `limits`, `topup list --all`, `user show` and `events` say.
pub(crate) fn user_data(app: &Shared, user: &str) -> Result<Value, Fail> {
    let n = || name_arg(user);
    let usage = cli(app, vec!["usage".into(), n()])?;
    let limits = cli(app, vec!["limits".into(), n()])?;
    let topups = cli(
        app,
        vec!["topup".into(), "list".into(), n(), "--all".into()],
    )?;
    let state = cli(app, vec!["user".into(), "show".into(), n()])?;
    let events = cli(app, vec!["events".into(), "--user".into(), n()])?;
    Ok(json!({
        "username": user,
        "usage": usage,
        "limits": limits,
        "topups": topups["topups"],
        "user": state,
        "events": events,
    }))
}

pub async fn user(
    _op: Operator,
    State(app): State<Shared>,
    uri: axum::http::Uri,
) -> Result<Json<Value>, Fail> {
    let user = user_of(&uri)?;
    Ok(Json(blocking(move || user_data(&app, &user)).await?))
}

#[derive(Debug, Deserialize)]
pub struct TopupForm {
    /// traffic (MB) or uptime (minutes).
    pub kind: String,
    pub amount: String,
    /// Default now.
    #[serde(default)]
    pub valid_from: Option<String>,
    pub valid_to: String,
}

/// Adds a topup through the CLI's `topup add` (its checks, the store's writer).
pub(crate) fn topup_add_do(
    app: &Shared,
    op: &Operator,
    user: &str,
    f: &TopupForm,
) -> Result<Value, Fail> {
    let amount: u64 = f
        .amount
        .trim()
        .parse()
        .map_err(|_| Fail::bad(format!("amount: {:?} is not a whole number", f.amount)))?;
    let flag = match f.kind.as_str() {
        "traffic" => "--traffic",
        "uptime" => "--uptime",
        k => {
            return Err(Fail::bad(format!(
                "kind must be traffic or uptime, not {k:?}"
            )))
        }
    };
    let mut w: Vec<OsString> = vec![
        "topup".into(),
        "add".into(),
        name_arg(user),
        flag.into(),
        amount.to_string().into(),
        "--valid-to".into(),
        f.valid_to.trim().into(),
    ];
    if let Some(from) = nonempty(&f.valid_from) {
        w.extend(["--valid-from".into(), from.into()]);
    }
    let out = cli(app, w)?;
    log::info!(
        "console: {} added a topup of {amount} {} for {:?}",
        op.name,
        if flag == "--traffic" { "MB" } else { "min" },
        user
    );
    Ok(out)
}

pub async fn topup_add(
    op: Operator,
    State(app): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Json(f): Json<TopupForm>,
) -> Result<Json<Value>, Fail> {
    op.may_change(csrf_header(&headers))?;
    let user = user_of(&uri)?;
    Ok(Json(
        blocking(move || topup_add_do(&app, &op, &user, &f)).await?,
    ))
}

// ---- Queue ----

#[derive(Debug, Default, Deserialize)]
pub struct QueueQuery {
    pub state: Option<String>,
}

pub(crate) fn queue_data(app: &Shared, q: &QueueQuery) -> Result<Value, Fail> {
    let counts = app.reader.queue_counts()?;
    let mut w = words(&["queue", "list"]);
    if let Some(s) = nonempty(&q.state) {
        s.parse::<crate::store::JobState>().map_err(Fail::bad)?;
        w.extend(["--state".into(), s.into()]);
    }
    let jobs = cli(app, w)?;
    Ok(json!({ "counts": counts, "jobs": jobs["jobs"] }))
}

pub async fn queue(
    _op: Operator,
    State(app): State<Shared>,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, Fail> {
    Ok(Json(blocking(move || queue_data(&app, &q)).await?))
}

#[derive(Debug, Deserialize)]
pub struct RetryForm {
    /// A job id, or none with `all_failed`.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub all_failed: Option<String>,
}

pub(crate) fn queue_retry_do(app: &Shared, op: &Operator, f: &RetryForm) -> Result<Value, Fail> {
    let w = match (nonempty(&f.id), f.all_failed.is_some()) {
        (Some(id), false) => {
            let id: i64 = id
                .parse()
                .map_err(|_| Fail::bad(format!("id: {id:?} is not a job id")))?;
            vec!["queue".into(), "retry".into(), id.to_string().into()]
        }
        (None, true) => words(&["queue", "retry", "--all-failed"]),
        _ => return Err(Fail::bad("give a job id or all_failed")),
    };
    let out = cli(app, w)?;
    log::info!("console: {} retried queue jobs: {out}", op.name);
    Ok(out)
}

pub async fn queue_retry(
    op: Operator,
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(f): Json<RetryForm>,
) -> Result<Json<Value>, Fail> {
    op.may_change(csrf_header(&headers))?;
    Ok(Json(blocking(move || queue_retry_do(&app, &op, &f)).await?))
}

#[derive(Debug, Deserialize)]
pub struct PurgeForm {
    /// Only done jobs last changed longer ago than this (7d, 12h, ...); none: all done.
    #[serde(default)]
    pub older_than: Option<String>,
}

pub(crate) fn queue_purge_do(app: &Shared, op: &Operator, f: &PurgeForm) -> Result<Value, Fail> {
    let w = match nonempty(&f.older_than) {
        Some(age) => vec![
            "queue".into(),
            "purge".into(),
            "--older-than".into(),
            age.into(),
        ],
        None => words(&["queue", "purge", "--done"]),
    };
    let out = cli(app, w)?;
    log::info!("console: {} purged done jobs: {out}", op.name);
    Ok(out)
}

pub async fn queue_purge(
    op: Operator,
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(f): Json<PurgeForm>,
) -> Result<Json<Value>, Fail> {
    op.may_change(csrf_header(&headers))?;
    Ok(Json(blocking(move || queue_purge_do(&app, &op, &f)).await?))
}

// ---- Bulk disconnect ----

#[derive(Debug, Default, Deserialize)]
pub struct BulkBody {
    /// NAS IPs or names; empty with `all`.
    #[serde(default)]
    pub nas: Vec<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// Sessions started before this (YYYY-MM-DD or RFC 3339); default the month start.
    #[serde(default)]
    pub before: Option<String>,
}

pub(crate) fn bulk_start_do(app: &Shared, op: &Operator, b: &BulkBody) -> Result<u64, Fail> {
    let now = periods::now();
    let before = match nonempty(&b.before) {
        Some(d) => crate::cli::capping::parse_date(&d, app.opts.tz)
            .map_err(|e| Fail::bad(format!("before: {e}")))?,
        None => periods::month_start(now, app.opts.tz),
    };
    let nases = crate::bulk::select(&app.admin(), b.all, &b.nas).map_err(|e| match e {
        crate::bulk::SelectError::Store(e) => Fail::from(e),
        e => Fail::bad(e.to_string()),
    })?;
    let opts = BulkOptions {
        now,
        boundary: before,
        dry_run: b.dry_run,
        parallel: 32,
    };
    Ok(app.bulk.start(app.opts.db.clone(), &op.name, nases, opts))
}

pub async fn bulk_start(
    op: Operator,
    State(app): State<Shared>,
    headers: HeaderMap,
    Json(b): Json<BulkBody>,
) -> Result<Response, Fail> {
    op.may_change(csrf_header(&headers))?;
    let id = blocking(move || bulk_start_do(&app, &op, &b)).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/bulk/{id}"))],
        Json(json!({ "id": id })),
    )
        .into_response())
}

pub async fn bulk_get(
    _op: Operator,
    State(app): State<Shared>,
    Path(id): Path<u64>,
) -> Result<Json<super::bulk_runs::Run>, Fail> {
    app.bulk
        .get(id)
        .map(Json)
        .ok_or_else(|| Fail::new(StatusCode::NOT_FOUND, format!("no bulk run {id}")))
}

// ---- Who am I, metrics ----

pub async fn me(op: Operator) -> Json<Value> {
    Json(json!({ "operator": op.name, "role": op.role, "csrf": op.csrf }))
}

/// This process's counters and the store's gauges: queue depth by queue and state,
/// open sessions, each NAS's last bulk run.
pub(crate) fn metrics_text(app: &Shared) -> Result<String, Fail> {
    use crate::metrics::{header as head, sample};
    let mut out = crate::metrics::global().render();
    head(
        &mut out,
        "rlm_rust_queue_jobs",
        "Jobs in the store's queues by queue (disconnect, coa, nas_action, hook) and state.",
        "gauge",
    );
    for c in app.reader.queue_counts()? {
        sample(
            &mut out,
            "rlm_rust_queue_jobs",
            &[("queue", c.queue), ("state", &c.state)],
            c.jobs as f64,
        );
    }
    let month = periods::month_start(periods::now(), app.opts.tz);
    let counts = app.reader.nas_session_counts(month)?;
    head(
        &mut out,
        "rlm_rust_open_sessions",
        "Open sessions in the store by NAS; prior_month: started before this month.",
        "gauge",
    );
    for (nas, c) in &counts {
        sample(
            &mut out,
            "rlm_rust_open_sessions",
            &[("nas", nas), ("started", "any")],
            c.open as f64,
        );
        sample(
            &mut out,
            "rlm_rust_open_sessions",
            &[("nas", nas), ("started", "prior_month")],
            c.open_before as f64,
        );
    }
    head(
        &mut out,
        "rlm_rust_bulk_last_run",
        "Each NAS's last recorded bulk disconnect: removed and failed sessions, and when it finished (unix seconds).",
        "gauge",
    );
    let admin = app.admin();
    let runs = admin.last_bulk_runs()?;
    for n in admin.nas_list()? {
        if let Some(r) = runs.get(&n.config.nas_ip) {
            let ip = n.config.nas_ip.as_str();
            sample(
                &mut out,
                "rlm_rust_bulk_last_run",
                &[("nas", ip), ("value", "removed")],
                f64::from(r.removed),
            );
            sample(
                &mut out,
                "rlm_rust_bulk_last_run",
                &[("nas", ip), ("value", "failed")],
                f64::from(r.failed),
            );
            sample(
                &mut out,
                "rlm_rust_bulk_last_run",
                &[("nas", ip), ("value", "finished")],
                r.finished.unwrap_or(r.started) as f64,
            );
        }
    }
    Ok(out)
}

pub async fn metrics(State(app): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(want) = app.opts.metrics_token.clone() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| crate::metrics::token_matches(g, &want)) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    match blocking(move || metrics_text(&app)).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(f) => (f.status, f.message).into_response(),
    }
}
