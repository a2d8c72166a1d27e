//! `rlm-rust serve`: the operator console. A JSON API under `/api` and server-rendered
//! screens (NAS list with bulk disconnect, active sessions, a user's usage, limits and
//! topups, the disconnect queue), on the same store and the same code the CLI uses:
//! reads through [`Reader`], changes through the CLI's own commands run in-process
//! ([`crate::cli::run_json`]) or the store's admin calls.
//!
//! Everything it serves is compiled in. Operators log in (argon2id hashes in the
//! store, `rlm-rust operator add`); a session is an HttpOnly, SameSite=Strict cookie
//! whose hash the store keeps; every POST carries the session's CSRF token (form
//! field or `X-CSRF-Token` header) and, when the browser sends one, a same-origin
//! `Origin`. Viewers see everything and change nothing.

mod api;
pub mod auth;
mod bulk_runs;
pub mod chart;
mod pages;
mod view;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono_tz::Tz;

use crate::store::{Admin, Reader, StoreError};

/// How `rlm-rust serve` runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub tz: Tz,
    pub listen: SocketAddr,
    /// A separate address for `/metrics` only (then not served on `listen`).
    pub metrics_listen: Option<SocketAddr>,
    /// A bearer token `/metrics` requires, if set.
    pub metrics_token: Option<String>,
    /// Seconds a login lasts.
    pub session_secs: i64,
    /// Mark the session cookie Secure (HTTPS only; browsers also keep it on
    /// http://127.0.0.1 and localhost).
    pub secure_cookie: bool,
}

pub(crate) struct App {
    pub opts: Options,
    pub reader: Reader,
    /// Writes that are not the CLI's: sessions, disconnect jobs, bulk run rows.
    pub admin: Mutex<Admin>,
    pub bulk: bulk_runs::Runs,
    pub limiter: auth::Limiter,
}

pub(crate) type Shared = Arc<App>;

impl App {
    pub(crate) fn admin(&self) -> std::sync::MutexGuard<'_, Admin> {
        self.admin.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a handler failed with; pages show it in the layout, the API as JSON.
#[derive(Debug)]
pub struct Fail {
    pub status: StatusCode,
    pub message: String,
}

impl Fail {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Fail {
        Fail {
            status,
            message: message.into(),
        }
    }
    pub fn bad(message: impl Into<String>) -> Fail {
        Fail::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Fail {
        log::warn!("console: store: {e}");
        Fail::new(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
    }
}

impl From<crate::cli::CliError> for Fail {
    fn from(e: crate::cli::CliError) -> Fail {
        use crate::cli::CliError;
        match e {
            CliError::Input(m) => Fail::bad(m),
            CliError::Partial { message, .. } => Fail::new(StatusCode::BAD_GATEWAY, message),
            e => {
                log::warn!("console: {e}");
                Fail::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
        }
    }
}

/// Runs blocking store work on a thread of its own, outside the async runtime: the
/// PostgreSQL client runs a runtime of its own, which tokio refuses to start on any
/// thread of this one (spawn_blocking's included).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> Result<T, Fail> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("console store".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Fail::new(StatusCode::SERVICE_UNAVAILABLE, format!("no thread: {e}")))?;
    rx.await.unwrap_or_else(|_| {
        Err(Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the store call failed unexpectedly",
        ))
    })
}

/// The console's routes (and `/metrics` unless it has its own listener).
pub(crate) fn router(app: Shared) -> Router {
    let mut r = Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/nas", get(pages::nas_list))
        .route("/bulk", post(pages::bulk_start))
        .route("/bulk/{id}", get(pages::bulk_view))
        .route("/sessions", get(pages::sessions))
        .route("/sessions/disconnect", post(pages::sessions_disconnect))
        .route("/users", get(pages::user_find))
        .route("/users/{name}", get(pages::user))
        .route("/users/{name}/topups", post(pages::topup_add))
        .route("/queue", get(pages::queue))
        .route("/queue/retry", post(pages::queue_retry))
        .route("/queue/purge", post(pages::queue_purge))
        .route("/static/console.css", get(view::css))
        .route("/static/console.js", get(view::js))
        .route("/api/me", get(api::me))
        .route("/api/nas", get(api::nas))
        .route("/api/sessions", get(api::sessions))
        .route("/api/sessions/disconnect", post(api::sessions_disconnect))
        .route("/api/users/{name}", get(api::user))
        .route("/api/users/{name}/topups", post(api::topup_add))
        .route("/api/queue", get(api::queue))
        .route("/api/queue/retry", post(api::queue_retry))
        .route("/api/queue/purge", post(api::queue_purge))
        .route("/api/bulk", post(api::bulk_start))
        .route("/api/bulk/{id}", get(api::bulk_get));
    if app.opts.metrics_listen.is_none() {
        r = r.route("/metrics", get(api::metrics));
    }
    r.layer(middleware::from_fn(guard)).with_state(app)
}

/// Headers every answer carries, and the same-origin check of every POST.
async fn guard(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(&req) {
        return (StatusCode::FORBIDDEN, "cross-origin request refused\n").into_response();
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (k, v) in set {
        h.insert(k, HeaderValue::from_static(v));
    }
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// A POST from a page of this console (or a client that sends no Origin, as curl).
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://").map(|(_, rest)| rest));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// The `/metrics` router for `metrics_listen`.
fn metrics_router(app: Shared) -> Router {
    Router::new()
        .route("/metrics", get(api::metrics))
        .with_state(app)
}

/// Opens the store (it must exist) and serves until SIGINT/SIGTERM.
pub fn serve(opts: Options) -> Result<(), String> {
    let loc = crate::store::DbLocation::parse(&opts.db).map_err(|e| format!("--db: {e}"))?;
    let shown = loc.to_string();
    let reader = Reader::open(&opts.db).map_err(|e| format!("database {shown}: {e}"))?;
    let admin = Admin::open_existing(&opts.db).map_err(|e| format!("database {shown}: {e}"))?;
    if reader
        .operator_list()
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        log::warn!("no operators yet: add one with `rlm-rust operator add NAME` to log in");
    }
    let app = Arc::new(App {
        opts: opts.clone(),
        reader,
        admin: Mutex::new(admin),
        bulk: bulk_runs::Runs::default(),
        limiter: auth::Limiter::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let main = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| format!("--listen {}: {e}", opts.listen))?;
        let metrics = match opts.metrics_listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| format!("--metrics-listen {a}: {e}"))?,
            ),
            None => None,
        };
        // Printed for scripts and tests that asked for port 0.
        println!(
            "rlm-rust console on http://{}/ (database {shown})",
            main.local_addr().map_err(|e| e.to_string())?
        );
        if let Some(m) = &metrics {
            println!(
                "metrics on http://{}/metrics",
                m.local_addr().map_err(|e| e.to_string())?
            );
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
        if let Some(m) = metrics {
            let r = metrics_router(Arc::clone(&app));
            tokio::spawn(async move { axum::serve(m, r).await });
        }
        axum::serve(main, router(app))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| e.to_string())
    })
}

async fn shutdown() {
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests;
