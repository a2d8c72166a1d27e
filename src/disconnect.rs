//! Month-boundary disconnects, per session: the decision (pure), and the background
//! [`QueueWorker`] that drains the durable `disconnect_queue`.
//!
//! The accounting path only decides and inserts a job, in the same group commit as
//! the update (see `store::writer`); it never touches the network. The worker, on the
//! module's background thread, first closes jobs whose session sent Stop meanwhile, then
//! works on every NAS with due jobs on its own thread: RFC 5176 Disconnect-Requests for
//! its jobs at once (pipelined), and for those that fail one login into the NAS's
//! RouterOS API, one print per active table, and multi-id removes. Each NAS's results
//! are recorded as soon as its pass ends, so a NAS that does not answer delays only its
//! own jobs. Jobs are generic over their reason: capping queues "over limit" jobs into
//! the same queue.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono_tz::Tz;

use crate::background::Job;
use crate::coa::{self, CoaError, DisconnectRequest, DmClient, DmOutcome};
use crate::periods;
use crate::radius::attrs::describe_error_cause;
use crate::radius::client::PipelineConfig;
use crate::routeros::{self, ActiveSession, Client, SessionTable};
use crate::sessions::{AcctStatus, AcctUpdate, Session};
use crate::store::{Admin, DisconnectJob, JobOutcome, Method, NasConfig, NasRow, NewDisconnectJob};

/// `reason` of the jobs queued at the month boundary.
pub const MONTH_BOUNDARY_REASON: &str = "month boundary";

/// Disconnect-Requests sent to each NAS before the rest of its jobs (see `pass`).
const DM_PROBE_PER_NAS: usize = 4;

/// RFC 5176 Error-Cause 503: the NAS has no such session (already gone).
const SESSION_CONTEXT_NOT_FOUND: u32 = 503;

/// True when `start` lies in an earlier local month than `now`.
pub fn started_in_earlier_month(start: i64, now: i64, tz: Tz) -> bool {
    start < periods::month_start(now, tz)
}

/// The month-boundary job for an accounting update, if one is due: a Start or
/// Interim of an open session whose start (its stored start, else `now` −
/// Acct-Session-Time) lies in an earlier month than `now`.
pub fn month_boundary_job(
    u: &AcctUpdate,
    session: Option<&Session>,
    now: i64,
    tz: Tz,
) -> Option<NewDisconnectJob> {
    if !matches!(u.status, AcctStatus::Start | AcctStatus::Interim) {
        return None;
    }
    if session.is_some_and(|s| !s.is_open()) {
        return None;
    }
    let start = match session {
        Some(s) => s.start_time,
        None => now.saturating_sub(i64::from(u.session_time.unwrap_or(0))),
    };
    if !started_in_earlier_month(start, now, tz) {
        return None;
    }
    log::debug!(
        "session {:?} of {:?} on {} started {} (before this month, {}): queueing a disconnect",
        u.session_key(),
        u.username,
        u.nas_ip,
        start,
        periods::month_key(periods::local_month(now, tz))
    );
    Some(session_job(
        u,
        session,
        start,
        MONTH_BOUNDARY_REASON.to_string(),
    ))
}

/// The disconnect job for the session an update belongs to: what the store knows of
/// it (`session`) first, else what the update says.
pub fn session_job(
    u: &AcctUpdate,
    session: Option<&Session>,
    start: i64,
    reason: String,
) -> NewDisconnectJob {
    NewDisconnectJob {
        nas_ip: u.nas_ip.clone(),
        session_key: u.session_key().to_string(),
        username: session.map_or_else(|| u.username.clone(), |s| s.username.clone()),
        acct_session_id: session
            .map_or_else(|| u.session_id.clone(), |s| s.acct_session_id.clone()),
        framed_ip: session
            .and_then(|s| s.framed_ip.clone())
            .or_else(|| u.framed_ip.clone()),
        session_start: start,
        reason,
    }
}

/// Looks a RADIUS client's secret up in the server's client list (clients.conf) by
/// address: the server's own in the module, a fake in tests.
pub type ClientLookup = Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>;

/// Shared secrets of RADIUS clients as the server knows them (clients.conf), by NAS IP:
/// the default secret for Disconnect-Requests when the `nas` row has none. Learned from
/// accounting requests (which also covers clients the server's global list lacks), and
/// else looked up in the server's client list, so a job needs no request of its NAS
/// since the last restart. Never logged.
#[derive(Clone, Default)]
pub struct ClientSecrets {
    learned: Arc<RwLock<HashMap<String, String>>>,
    lookup: Option<ClientLookup>,
}

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.learned.read().map(|m| m.len()).unwrap_or(0);
        write!(
            f,
            "ClientSecrets({n} NASes learned, lookup {})",
            if self.lookup.is_some() {
                "set"
            } else {
                "unset"
            }
        )
    }
}

impl ClientSecrets {
    /// Secrets learned from requests, else looked up with `lookup`.
    pub fn with_lookup(lookup: ClientLookup) -> Self {
        ClientSecrets {
            lookup: Some(lookup),
            ..Default::default()
        }
    }

    /// Remembers `secret` for `nas_ip`; cheap when nothing changed (read lock only).
    pub fn learn(&self, nas_ip: &str, secret: &str) {
        if nas_ip.is_empty() || secret.is_empty() {
            return;
        }
        let known = self
            .learned
            .read()
            .map(|m| m.get(nas_ip).is_some_and(|s| s == secret))
            .unwrap_or(false);
        if !known {
            let mut m = self.learned.write().unwrap_or_else(|e| e.into_inner());
            m.insert(nas_ip.to_string(), secret.to_string());
        }
    }

    /// The secret for a NAS whose Disconnect-Requests go to `target`: learned from its
    /// requests, else the client list's entry for the NAS IP, else for the target (a
    /// NAS behind NAT is a client under the address its packets come from, which is
    /// where its requests go).
    pub fn get(&self, nas_ip: &str, target: IpAddr) -> Option<String> {
        let learned = self
            .learned
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(nas_ip)
            .cloned();
        if learned.is_some() {
            return learned;
        }
        let lookup = self.lookup.as_ref()?;
        let nas = nas_ip.parse::<IpAddr>().ok();
        nas.and_then(|ip| lookup(ip))
            .or_else(|| (nas != Some(target)).then(|| lookup(target)).flatten())
    }
}

/// Settings of the queue worker (from the module's config).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub db: PathBuf,
    /// Wait for a Disconnect-ACK/NAK per attempt.
    pub dm_timeout: Duration,
    /// Retransmissions after the first Disconnect-Request.
    pub dm_retries: u32,
    /// Most jobs of one NAS taken per pass; a run repeats passes while full batches
    /// are due.
    pub batch: usize,
    /// Most NASes worked on at once, each on its own thread (its own UDP socket and
    /// API login): a NAS that does not answer holds up only its own jobs.
    pub parallel: usize,
}

impl WorkerConfig {
    pub fn new(db: impl Into<PathBuf>) -> Self {
        WorkerConfig {
            db: db.into(),
            dm_timeout: Duration::from_secs(2),
            dm_retries: 2,
            batch: 1000,
            parallel: 16,
        }
    }
}

/// What one pass (or run) did, for logs and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub due: usize,
    pub closed_by_stop: usize,
    pub done_dm: usize,
    pub done_api: usize,
    /// "No such session" from a NAS without API credentials: left unconfirmed.
    pub unconfirmed: usize,
    /// Still queued after this pass (retried later with backoff).
    pub retry: usize,
    /// Given up after [`MAX_ATTEMPTS`]: failed until an operator retries them.
    pub given_up: usize,
}

impl PassReport {
    fn add(&mut self, o: PassReport) {
        self.due += o.due;
        self.closed_by_stop += o.closed_by_stop;
        self.done_dm += o.done_dm;
        self.done_api += o.done_api;
        self.unconfirmed += o.unconfirmed;
        self.retry += o.retry;
        self.given_up += o.given_up;
    }
}

/// How a Disconnect-Request attempt ended, for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmVerdict {
    /// Disconnect-ACK.
    Acked,
    /// Disconnect-NAK 503 (Session-Context-Not-Found) or without an Error-Cause: the
    /// box that got the request has no such session. Not proof that it is gone: behind
    /// NAT the request may have reached another box than the one holding it.
    NotFound {
        error: String,
        error_cause: Option<u32>,
    },
    /// Anything else; the API fallback is next.
    Failed {
        error: String,
        error_cause: Option<u32>,
    },
}

impl DmVerdict {
    /// Whether the job goes on to the RouterOS API: after a failure always (without
    /// credentials that says why in `last_error`), after "no such session" only to
    /// check it on a NAS that has credentials.
    pub fn needs_api(&self, nas_has_api: bool) -> bool {
        match self {
            DmVerdict::Acked => false,
            DmVerdict::NotFound { .. } => nas_has_api,
            DmVerdict::Failed { .. } => true,
        }
    }
}

/// Maps a Disconnect-Request's result to what happens to the job.
pub fn dm_verdict(result: &Result<DmOutcome, CoaError>, attempts: u32) -> DmVerdict {
    match result {
        Ok(DmOutcome::Ack) => DmVerdict::Acked,
        Ok(DmOutcome::Nak {
            error_cause: error_cause @ (None | Some(SESSION_CONTEXT_NOT_FOUND)),
        }) => DmVerdict::NotFound {
            error: match error_cause {
                Some(c) => format!("Disconnect-NAK ({})", describe_error_cause(*c)),
                None => "Disconnect-NAK (no Error-Cause)".to_string(),
            },
            error_cause: *error_cause,
        },
        Ok(DmOutcome::Nak {
            error_cause: Some(c),
        }) => DmVerdict::Failed {
            error: format!("Disconnect-NAK ({})", describe_error_cause(*c)),
            error_cause: Some(*c),
        },
        Err(CoaError::Timeout { bad_replies, .. }) => DmVerdict::Failed {
            error: if *bad_replies > 0 {
                format!(
                    "no Disconnect reply after {attempts} attempt(s); {bad_replies} replies failed \
                     the authenticator check (wrong secret?)"
                )
            } else {
                format!("no Disconnect reply after {attempts} attempt(s)")
            },
            error_cause: None,
        },
        Err(e) => DmVerdict::Failed {
            error: format!("Disconnect-Request: {e}"),
            error_cause: None,
        },
    }
}

/// What to record for a job: its Disconnect-Request's verdict, then the RouterOS API's
/// result if it went there (`api`: the sessions removed, 0 = not there either).
pub fn job_outcome(verdict: &DmVerdict, api: Option<&Result<usize, String>>) -> JobOutcome {
    let (DmVerdict::NotFound { error, error_cause } | DmVerdict::Failed { error, error_cause }) =
        verdict
    else {
        return JobOutcome::Done(Method::Dm);
    };
    match (verdict, api) {
        (_, Some(Ok(_))) => JobOutcome::Done(Method::Api),
        (DmVerdict::NotFound { .. }, None) => JobOutcome::Unconfirmed {
            error: format!(
                "DM: {error}: not confirmed (no RouterOS API credentials to check); queued \
                 again at the session's next Interim"
            ),
            error_cause: *error_cause,
        },
        (_, api) => JobOutcome::DmFailed {
            error: format!(
                "DM: {error}; API: {}",
                match api {
                    Some(Err(e)) => e.as_str(),
                    _ => "not tried (stopping)",
                }
            ),
            error_cause: *error_cause,
        },
    }
}

/// Attempts after which a job that keeps failing is given up (state failed, until
/// `rlm-rust queue retry`): with the backoff capped at an hour, about a day.
pub const MAX_ATTEMPTS: u32 = 30;

/// `outcome` for a job that had `attempts` before this one: a failure that would be
/// retried becomes final once the job has used [`MAX_ATTEMPTS`].
pub fn give_up_after(outcome: JobOutcome, attempts: u32) -> JobOutcome {
    match outcome {
        JobOutcome::DmFailed { error, error_cause } | JobOutcome::Retry { error, error_cause }
            if attempts.saturating_add(1) >= MAX_ATTEMPTS =>
        {
            JobOutcome::Failed {
                error: format!(
                    "{error} (given up after {MAX_ATTEMPTS} attempts: `rlm-rust queue retry` tries again)"
                ),
                error_cause,
            }
        }
        o => o,
    }
}

/// Where a Disconnect-Request for a job on this NAS goes, and with which secret:
/// `coa_host` (else the NAS IP) and `coa_port` (3799 without a `nas` row); the row's
/// secret, else the RADIUS client's (see [`ClientSecrets::get`]).
pub fn dm_target(
    nas_ip: &str,
    nas: Option<&NasConfig>,
    secrets: &ClientSecrets,
) -> Result<(SocketAddr, String), String> {
    let host = nas
        .and_then(|n| n.coa_host.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(nas_ip);
    let port = nas.map_or(3799, |n| n.coa_port);
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve RFC 5176 target {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("RFC 5176 target {host:?} has no address"))?,
    };
    let secret = nas
        .and_then(|n| n.secret.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| secrets.get(nas_ip, addr.ip()))
        .ok_or_else(|| match nas {
            None => format!(
                "no network device (NAS) for {nas_ip} and no RADIUS client for it in the \
                 server's client list: add it with `rlm-rust nas add`"
            ),
            Some(_) => format!(
                "NAS {nas_ip} has no secret and the server has no RADIUS client for it (nor \
                 for {host}): set one with `rlm-rust nas set {nas_ip} --secret ...`"
            ),
        })?;
    Ok((addr, secret))
}

/// Connects to and logs into a NAS's RouterOS API; errors say which step failed
/// (never the password).
pub fn api_login(nas: &NasConfig) -> Result<Client, String> {
    let (Some(user), Some(password)) = (nas.api_user.as_deref(), nas.api_password.as_deref())
    else {
        return Err(format!(
            "no RouterOS API credentials for NAS {} (set --api-user and --api-password-stdin)",
            nas.nas_ip
        ));
    };
    let host = nas.api_host_or_ip();
    let timeout = Duration::from_millis(u64::from(nas.api_timeout_ms.max(1)));
    let errors = &crate::metrics::global().api_errors;
    let tls = match api_tls_verify(nas) {
        Ok(v) => v.map(|verify| routeros::TlsOptions {
            verify,
            server_name: None,
        }),
        Err(e) => {
            errors.inc(&["connect"]);
            return Err(format!("RouterOS API {host}:{}: {e}", nas.api_port));
        }
    };
    let opts = routeros::ConnectOptions {
        connect_timeout: timeout,
        io_timeout: timeout,
        tls,
    };
    let mut client = Client::connect(host, nas.api_port, &opts).map_err(|e| {
        errors.inc(&["connect"]);
        format!("RouterOS API {host}:{}: connect: {e}", nas.api_port)
    })?;
    client
        .login(user, password)
        .map_err(|e| {
            errors.inc(&["login"]);
            e
        })
        .map_err(|e| match e {
            routeros::Error::LoginRefused(why) => format!(
                "RouterOS API {host}:{}: login as {user:?} refused: {why}",
                nas.api_port
            ),
            e => format!("RouterOS API {host}:{}: login: {e}", nas.api_port),
        })?;
    Ok(client)
}

/// How API-SSL checks the NAS's certificate (None: plain API). Verification needs the
/// NAS's CA: without one (and without an explicit opt-out) the password is not sent.
pub fn api_tls_verify(nas: &NasConfig) -> Result<Option<routeros::TlsVerify>, String> {
    if !nas.api_tls {
        return Ok(None);
    }
    if !nas.api_tls_verify {
        return Ok(Some(routeros::TlsVerify::AcceptAny));
    }
    match nas.api_ca.as_deref().filter(|c| !c.trim().is_empty()) {
        Some(pem) => Ok(Some(routeros::TlsVerify::CaPem(pem.as_bytes().to_vec()))),
        None => Err(
            "API-SSL certificate cannot be verified: no CA for this NAS (rlm-rust nas set NAS \
             --api-ca FILE with the router's certificate or its CA, or --api-tls-insecure to \
             accept any certificate)"
                .into(),
        ),
    }
}

/// Does the RouterOS API row belong to this job's session? Same user, and the job's
/// address if it has one (a user who already reconnected keeps the new session).
fn row_matches(s: &ActiveSession, job: &DisconnectJob) -> bool {
    s.user == job.username
        && job
            .framed_ip
            .as_deref()
            .map_or(true, |a| s.address.as_deref() == Some(a))
}

/// Finds and removes the sessions of `jobs` on one logged-in router: each active
/// table printed once (a print per job would have the router scan its table once per
/// job), then one multi-id remove per table. Per job: Ok(n) with the sessions now
/// gone (0 = already gone), or the router's error.
pub fn api_remove_jobs(client: &mut Client, jobs: &[&DisconnectJob]) -> Vec<Result<usize, String>> {
    let all = |e: String| jobs.iter().map(|_| Err(e.clone())).collect();
    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::new();
    for (j, job) in jobs.iter().enumerate() {
        by_user.entry(job.username.as_str()).or_default().push(j);
    }
    // ids[job] = (table, id) of its sessions.
    let mut ids: Vec<Vec<(SessionTable, String)>> = vec![Vec::new(); jobs.len()];
    for table in SessionTable::ALL {
        let active = match routeros::list_active(client, table) {
            Ok(a) => a,
            // A table the router lacks (no hotspot package) traps: nothing there.
            Err(routeros::Error::Trap { .. }) => continue,
            Err(e) => return all(format!("print {}: {e}", table.path())),
        };
        for s in &active {
            for &j in by_user.get(s.user.as_str()).into_iter().flatten() {
                if row_matches(s, jobs[j]) {
                    ids[j].push((table, s.id.clone()));
                }
            }
        }
    }
    let mut failed: HashMap<String, String> = HashMap::new();
    for table in SessionTable::ALL {
        let mut mine: Vec<String> = ids
            .iter()
            .flatten()
            .filter(|(t, _)| *t == table)
            .map(|(_, id)| id.clone())
            .collect();
        mine.sort();
        mine.dedup();
        if mine.is_empty() {
            continue;
        }
        match client.remove_many(table.path(), &mine) {
            Ok(report) => failed.extend(report.failed),
            Err(e) => {
                let msg = format!("remove: {e}");
                failed.extend(mine.into_iter().map(|id| (id, msg.clone())));
            }
        }
    }
    ids.iter()
        .map(
            |mine| match mine.iter().find_map(|(_, id)| failed.get(id)) {
                Some(msg) => Err(msg.clone()),
                None => Ok(mine.len()),
            },
        )
        .collect()
}

/// The background job that drains the disconnect queue.
pub struct QueueWorker {
    ctx: Context,
    admin: Option<Admin>,
}

/// What the per-NAS threads of a run share.
struct Context {
    cfg: WorkerConfig,
    secrets: ClientSecrets,
    stop: Arc<AtomicBool>,
}

fn lock(db: &Mutex<Admin>) -> std::sync::MutexGuard<'_, Admin> {
    db.lock().unwrap_or_else(|e| e.into_inner())
}

impl QueueWorker {
    /// `stop` is set when the module detaches: a run in progress then ends after its
    /// current network wait.
    pub fn new(cfg: WorkerConfig, secrets: ClientSecrets, stop: Arc<AtomicBool>) -> Self {
        QueueWorker {
            ctx: Context { cfg, secrets, stop },
            admin: None,
        }
    }

    /// Every NAS with due jobs, on its own thread (at most `parallel` at once), in
    /// passes of `batch` jobs until none of its jobs is due (or stopped).
    pub fn run_at(&mut self, now: i64) -> Result<PassReport, String> {
        self.drain(now, usize::MAX)
    }

    /// One pass: close stopped sessions' jobs, then up to `batch` due jobs per NAS.
    pub fn pass(&mut self, now: i64) -> Result<PassReport, String> {
        self.drain(now, 1)
    }

    fn drain(&mut self, now: i64, passes: usize) -> Result<PassReport, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open(&self.ctx.cfg.db).map_err(|e| e.to_string())?,
        };
        // Each NAS's thread reads its jobs and marks them as soon as they are worked
        // on: jobs of a NAS that answers are done while a silent one still waits.
        let db = Mutex::new(admin);
        let r = self.ctx.drain(&db, now, passes);
        self.admin = Some(db.into_inner().unwrap_or_else(|e| e.into_inner()));
        r
    }
}

impl Context {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn drain(&self, db: &Mutex<Admin>, now: i64, passes: usize) -> Result<PassReport, String> {
        let mut report = PassReport {
            closed_by_stop: lock(db)
                .queue_close_if_stopped(now)
                .map_err(|e| e.to_string())?,
            ..Default::default()
        };
        let nases = lock(db).queue_due_nases(now).map_err(|e| e.to_string())?;
        let results = crate::parallel::map(&nases, self.cfg.parallel, |nas_ip| {
            self.drain_nas(db, nas_ip, now, passes)
        });
        let mut first_error = None;
        for r in results {
            match r {
                Ok(r) => report.add(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(report), Err)
    }

    fn drain_nas(
        &self,
        db: &Mutex<Admin>,
        nas_ip: &str,
        now: i64,
        passes: usize,
    ) -> Result<PassReport, String> {
        let batch = self.cfg.batch.max(1);
        let nas = lock(db).nas_get(nas_ip).map_err(|e| e.to_string())?;
        let mut run = NasRun {
            ctx: self,
            nas_ip,
            nas,
            dm: None,
            silent: false,
            api_error: None,
        };
        let mut total = PassReport::default();
        for _ in 0..passes {
            if self.stopped() {
                break;
            }
            let jobs = lock(db)
                .queue_claim_on(nas_ip, now, batch, crate::store::Lease::current())
                .map_err(|e| e.to_string())?;
            if jobs.is_empty() {
                break;
            }
            let (marks, r) = run.pass(&jobs);
            lock(db)
                .queue_mark_many(&marks, now)
                .map_err(|e| e.to_string())?;
            total.add(r);
            if jobs.len() < batch {
                break;
            }
        }
        Ok(total)
    }
}

/// One NAS during one run.
struct NasRun<'a> {
    ctx: &'a Context,
    nas_ip: &'a str,
    nas: Option<NasRow>,
    dm: Option<DmClient>,
    /// It answered none of its probe requests in this run: later passes send it none.
    silent: bool,
    /// Its API login failed in this run: later passes do not wait for it again.
    api_error: Option<String>,
}

impl NasRun<'_> {
    /// RFC 5176 for all `jobs`, the RouterOS API for those that failed or that the NAS
    /// says it does not have; what to record for each job.
    fn pass(&mut self, jobs: &[DisconnectJob]) -> (Vec<(i64, JobOutcome)>, PassReport) {
        let mut report = PassReport {
            due: jobs.len(),
            ..Default::default()
        };
        let config = self.nas.as_ref().map(|r| &r.config);
        let verdicts = match dm_target(self.nas_ip, config, &self.ctx.secrets) {
            Ok((target, secret)) => self.send_dms(jobs, target, &secret),
            Err(error) => jobs
                .iter()
                .map(|_| DmVerdict::Failed {
                    error: error.clone(),
                    error_cause: None,
                })
                .collect(),
        };
        let has_api = self
            .nas
            .as_ref()
            .is_some_and(|r| crate::bulk::has_api(&r.config));
        let fallback: Vec<usize> = (0..jobs.len())
            .filter(|&i| verdicts[i].needs_api(has_api))
            .collect();
        let api: HashMap<usize, Result<usize, String>> = if fallback.is_empty() {
            HashMap::new()
        } else {
            let mine: Vec<&DisconnectJob> = fallback.iter().map(|&i| &jobs[i]).collect();
            fallback.iter().copied().zip(self.api(&mine)).collect()
        };

        let mut marks = Vec::with_capacity(jobs.len());
        for (i, (job, verdict)) in jobs.iter().zip(&verdicts).enumerate() {
            let outcome = give_up_after(job_outcome(verdict, api.get(&i)), job.attempts);
            let who = format!("{:?} on {} ({})", job.username, job.nas_ip, job.reason);
            match (&outcome, verdict, api.get(&i)) {
                (JobOutcome::Done(Method::Dm), ..) => {
                    report.done_dm += 1;
                    log::info!("disconnect: {who}: Disconnect-ACK");
                }
                (
                    JobOutcome::Done(_),
                    DmVerdict::NotFound { error, .. } | DmVerdict::Failed { error, .. },
                    Some(Ok(n)),
                ) => {
                    report.done_api += 1;
                    log::info!(
                        "disconnect: {who}: {error}; RouterOS API: {}",
                        if *n == 0 {
                            "no such session (already gone)".to_string()
                        } else {
                            format!("removed {n} session(s)")
                        }
                    );
                }
                (JobOutcome::Unconfirmed { error, .. }, ..) => {
                    report.unconfirmed += 1;
                    log::warn!("disconnect: {who}: {error}");
                }
                (JobOutcome::DmFailed { error, .. }, ..) => {
                    report.retry += 1;
                    log::warn!("disconnect: {who} not done, retried later: {error}");
                }
                (JobOutcome::Failed { error, .. }, ..) => {
                    report.given_up += 1;
                    log::error!("disconnect: {who}: {error}");
                }
                (other, ..) => log::error!("disconnect: {who}: unexpected outcome {other:?}"),
            }
            marks.push((job.id, outcome));
        }
        (marks, report)
    }

    /// The Disconnect-Requests of one pass. The first few go alone: a NAS that answers
    /// none of them (wrong port, NAT, down) is taken as unreachable for the run, and
    /// its other jobs go straight to the API instead of each waiting out the timeouts.
    fn send_dms(
        &mut self,
        jobs: &[DisconnectJob],
        target: SocketAddr,
        secret: &str,
    ) -> Vec<DmVerdict> {
        let requests: Vec<coa::Job> = jobs
            .iter()
            .map(|j| coa::Job::disconnect(target, secret.as_bytes(), &disconnect_request(j)))
            .collect();
        let not_sent = || DmVerdict::Failed {
            error: format!(
                "not sent: the NAS answered none of the first {DM_PROBE_PER_NAS} \
                 Disconnect-Requests of this run"
            ),
            error_cause: None,
        };
        if self.silent {
            return jobs.iter().map(|_| not_sent()).collect();
        }
        let (probe, rest) = requests.split_at(DM_PROBE_PER_NAS.min(requests.len()));
        let probed = self.send_rounds(probe.to_vec());
        let answered = probed.iter().any(|(_, answered)| *answered);
        let mut verdicts: Vec<DmVerdict> = probed.into_iter().map(|(v, _)| v).collect();
        if answered {
            verdicts.extend(self.send_rounds(rest.to_vec()).into_iter().map(|(v, _)| v));
        } else {
            self.silent = true;
            verdicts.extend(rest.iter().map(|_| not_sent()));
        }
        verdicts
    }

    /// Sends the Disconnect-Requests in rounds (first attempt, then retransmissions of
    /// the silent ones), checking for a stop between rounds.
    /// Per job: the verdict, and whether the NAS answered at all (a verified reply).
    fn send_rounds(&mut self, jobs: Vec<coa::Job>) -> Vec<(DmVerdict, bool)> {
        let n = jobs.len();
        let mut results: Vec<Option<Result<DmOutcome, CoaError>>> = (0..n).map(|_| None).collect();
        if n == 0 {
            return Vec::new();
        }
        if self.dm.is_none() {
            let cfg = PipelineConfig {
                window: 128,
                timeout: self.ctx.cfg.dm_timeout,
                retries: 0,
            };
            match DmClient::new(cfg) {
                Ok(c) => self.dm = Some(c),
                Err(e) => {
                    let msg = format!("cannot open a UDP socket: {e}");
                    return (0..n)
                        .map(|_| {
                            let v = DmVerdict::Failed {
                                error: msg.clone(),
                                error_cause: None,
                            };
                            (v, false)
                        })
                        .collect();
                }
            }
        }
        let mut pending: Vec<usize> = (0..n).collect();
        let mut attempts = 0;
        let mut bad = vec![0u32; n];
        while !pending.is_empty() && attempts <= self.ctx.cfg.dm_retries && !self.ctx.stopped() {
            attempts += 1;
            let Some(client) = self.dm.as_mut() else {
                break;
            };
            let out = client.send_many(pending.iter().map(|&i| jobs[i].clone()).collect());
            let mut again = Vec::new();
            for (&i, r) in pending.iter().zip(out) {
                if let Err(CoaError::Timeout { bad_replies, .. }) = &r {
                    bad[i] += bad_replies;
                    again.push(i);
                }
                results[i] = Some(r);
            }
            pending = again;
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(Err(CoaError::Timeout { .. })) => {
                    let timeout = Err(CoaError::Timeout {
                        attempts,
                        bad_replies: bad[i],
                    });
                    (dm_verdict(&timeout, attempts), false)
                }
                Some(r) => (dm_verdict(&r, attempts), r.is_ok()),
                None => {
                    let v = DmVerdict::Failed {
                        error: "not sent (stopping)".to_string(),
                        error_cause: None,
                    };
                    (v, false)
                }
            })
            .collect()
    }

    /// The RouterOS API for `jobs`: one login, then [`api_remove_jobs`]. A login that
    /// failed is not tried again in this run.
    fn api(&mut self, jobs: &[&DisconnectJob]) -> Vec<Result<usize, String>> {
        let all = |e: &str| jobs.iter().map(|_| Err(e.to_string())).collect();
        if let Some(e) = &self.api_error {
            return all(e);
        }
        if self.ctx.stopped() {
            return all("not tried (stopping)");
        }
        let Some(nas) = &self.nas else {
            return all(&format!(
                "no network device (NAS) for {}: add it with `rlm-rust nas add` and set its \
                 RouterOS API credentials",
                self.nas_ip
            ));
        };
        match api_login(&nas.config) {
            Ok(mut client) => api_remove_jobs(&mut client, jobs),
            Err(e) => {
                let r = all(&e);
                self.api_error = Some(e);
                r
            }
        }
    }
}

fn disconnect_request(job: &DisconnectJob) -> DisconnectRequest {
    DisconnectRequest {
        user_name: job.username.clone(),
        acct_session_id: Some(job.acct_session_id.clone()).filter(|s| !s.is_empty()),
        framed_ip: job.framed_ip.as_deref().and_then(|a| a.parse().ok()),
        nas_ip: job.nas_ip.parse().ok(),
        extra: Vec::new(),
    }
}

impl Job for QueueWorker {
    fn name(&self) -> &'static str {
        "disconnect queue"
    }

    fn run(&mut self) -> Result<(), String> {
        let r = self.run_at(periods::now());
        if let Err(e) = &r {
            // Reopen next time: the database may have been replaced or locked.
            self.admin = None;
            return Err(e.clone());
        }
        if let Ok(r) = r {
            if r.due > 0 || r.closed_by_stop > 0 {
                log::info!(
                    "disconnect queue: {} due: {} done by Disconnect-Request, {} by RouterOS \
                     API, {} unconfirmed (queued again at their next Interim), {} retried \
                     later, {} given up; {} closed by their session's Stop",
                    r.due,
                    r.done_dm,
                    r.done_api,
                    r.unconfirmed,
                    r.retry,
                    r.given_up,
                    r.closed_by_stop
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "disconnect_tests.rs"]
mod tests;
