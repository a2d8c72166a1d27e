//! Month-boundary disconnects, per session: the decision (pure), and the background
//! [`QueueWorker`] that drains the durable `disconnect_queue`.
//!
//! The accounting path only decides and inserts a job, in the same group commit as
//! the update (see `store::writer`); it never touches the network. The worker, on the
//! module's background thread, first closes jobs whose session sent Stop meanwhile, then
//! sends RFC 5176 Disconnect-Requests for all due jobs at once (pipelined over one UDP
//! socket), and for those that fail logs into the NAS's RouterOS API (one login per
//! NAS, NASes in parallel) and removes the session there. Jobs are generic over their
//! reason: capping queues "over limit" jobs into the same queue.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono_tz::Tz;

use crate::background::Job;
use crate::coa::{self, CoaError, DisconnectRequest, DmClient, DmOutcome};
use crate::periods;
use crate::radius::attrs::describe_error_cause;
use crate::radius::client::PipelineConfig;
use crate::routeros::codec::{Command, ReplyKind};
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

/// Shared secrets of RADIUS clients as the server knows them (clients.conf), learned
/// from accounting requests, by NAS IP: the default secret for Disconnect-Requests
/// when the `nas` row has none. Never logged.
#[derive(Clone, Default)]
pub struct ClientSecrets(Arc<RwLock<HashMap<String, String>>>);

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map(|m| m.len()).unwrap_or(0);
        write!(f, "ClientSecrets({n} NASes)")
    }
}

impl ClientSecrets {
    /// Remembers `secret` for `nas_ip`; cheap when nothing changed (read lock only).
    pub fn learn(&self, nas_ip: &str, secret: &str) {
        if nas_ip.is_empty() || secret.is_empty() {
            return;
        }
        let known = self
            .0
            .read()
            .map(|m| m.get(nas_ip).is_some_and(|s| s == secret))
            .unwrap_or(false);
        if !known {
            let mut m = self.0.write().unwrap_or_else(|e| e.into_inner());
            m.insert(nas_ip.to_string(), secret.to_string());
        }
    }

    pub fn get(&self, nas_ip: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(nas_ip)
            .cloned()
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
    /// Most jobs taken per pass; a run repeats passes while full batches are due.
    pub batch: usize,
    /// Most NASes worked on at once in the API fallback.
    pub api_parallel: usize,
}

impl WorkerConfig {
    pub fn new(db: impl Into<PathBuf>) -> Self {
        WorkerConfig {
            db: db.into(),
            dm_timeout: Duration::from_secs(2),
            dm_retries: 2,
            batch: 1000,
            api_parallel: 16,
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
    /// Still queued after this pass (retried later with backoff).
    pub retry: usize,
}

impl PassReport {
    fn add(&mut self, o: PassReport) {
        self.due += o.due;
        self.closed_by_stop += o.closed_by_stop;
        self.done_dm += o.done_dm;
        self.done_api += o.done_api;
        self.retry += o.retry;
    }
}

/// How a Disconnect-Request attempt ended, for one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmVerdict {
    /// Disconnect-ACK.
    Acked,
    /// Disconnect-NAK 503: the NAS has no such session (it is gone already).
    Gone,
    /// Anything else; the API fallback is next.
    Failed {
        error: String,
        error_cause: Option<u32>,
    },
}

/// Maps a Disconnect-Request's result to what happens to the job.
pub fn dm_verdict(result: &Result<DmOutcome, CoaError>, attempts: u32) -> DmVerdict {
    match result {
        Ok(DmOutcome::Ack) => DmVerdict::Acked,
        Ok(DmOutcome::Nak {
            error_cause: Some(SESSION_CONTEXT_NOT_FOUND),
        }) => DmVerdict::Gone,
        Ok(DmOutcome::Nak { error_cause }) => DmVerdict::Failed {
            error: match error_cause {
                Some(c) => format!("Disconnect-NAK ({})", describe_error_cause(*c)),
                None => "Disconnect-NAK (no Error-Cause)".to_string(),
            },
            error_cause: *error_cause,
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

/// Where a Disconnect-Request for a job on this NAS goes, and with which secret:
/// `coa_host` (else the NAS IP) and `coa_port` (3799 without a `nas` row); the row's
/// secret, else the client secret learned from its requests.
pub fn dm_target(
    nas_ip: &str,
    nas: Option<&NasConfig>,
    learned_secret: Option<String>,
) -> Result<(SocketAddr, String), String> {
    let host = nas
        .and_then(|n| n.coa_host.as_deref())
        .filter(|h| !h.is_empty())
        .unwrap_or(nas_ip);
    let port = nas.map_or(3799, |n| n.coa_port);
    let secret = nas
        .and_then(|n| n.secret.clone())
        .filter(|s| !s.is_empty())
        .or(learned_secret)
        .ok_or_else(|| match nas {
            None => format!(
                "no network device (NAS) for {nas_ip} and no client secret learned from its \
                 requests: add it with `rlm-rust nas add`"
            ),
            Some(_) => {
                format!("NAS {nas_ip} has no secret and none was learned from its requests yet")
            }
        })?;
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve RFC 5176 target {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("RFC 5176 target {host:?} has no address"))?,
    };
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
    let opts = routeros::ConnectOptions {
        connect_timeout: timeout,
        io_timeout: timeout,
        tls: nas.api_tls.then_some(routeros::TlsOptions {
            verify: routeros::TlsVerify::AcceptAny,
            server_name: None,
        }),
    };
    let mut client = Client::connect(host, nas.api_port, &opts)
        .map_err(|e| format!("RouterOS API {host}:{}: connect: {e}", nas.api_port))?;
    client.login(user, password).map_err(|e| match e {
        routeros::Error::LoginRefused(why) => format!(
            "RouterOS API {host}:{}: login as {user:?} refused: {why}",
            nas.api_port
        ),
        e => format!("RouterOS API {host}:{}: login: {e}", nas.api_port),
    })?;
    Ok(client)
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

/// Finds and removes the sessions of `jobs` on one logged-in router: one pipelined
/// print per job and table, then one multi-id remove per table. Per job: Ok(n) with
/// the sessions now gone (0 = already gone), or the router's error.
pub fn api_remove_jobs(client: &mut Client, jobs: &[&DisconnectJob]) -> Vec<Result<usize, String>> {
    let mut cmds = Vec::with_capacity(jobs.len() * 2);
    for job in jobs {
        for table in SessionTable::ALL {
            let mut cmd = Command::new(&format!("{}/print", table.path()))
                .proplist(&[".id", table.user_key(), "address", "uptime"])
                .query_eq(table.user_key(), &job.username);
            if let Some(a) = &job.framed_ip {
                cmd = cmd.query_eq("address", a);
            }
            cmds.push(cmd);
        }
    }
    let replies = match client.pipeline(&cmds) {
        Ok(r) => r,
        Err(e) => return jobs.iter().map(|_| Err(format!("find: {e}"))).collect(),
    };
    // ids[job] = (table, id) of its sessions.
    let mut ids: Vec<Vec<(SessionTable, String)>> = vec![Vec::new(); jobs.len()];
    for (k, reply) in replies.into_iter().enumerate() {
        let (j, table) = (k / 2, SessionTable::ALL[k % 2]);
        // A table the router lacks (no hotspot package) traps: nothing there.
        let Ok(sentences) = reply else { continue };
        for r in sentences.into_iter().filter(|r| r.kind == ReplyKind::Re) {
            let row: HashMap<String, String> = r.attrs.into_iter().collect();
            match ActiveSession::from_row(table, &row) {
                Ok(s) if row_matches(&s, jobs[j]) => ids[j].push((table, s.id)),
                Ok(_) => {}
                Err(e) => log::debug!("disconnect: skipping {} row: {e}", table.path()),
            }
        }
    }
    let mut failed: HashMap<String, String> = HashMap::new();
    for table in SessionTable::ALL {
        let mut all: Vec<String> = ids
            .iter()
            .flatten()
            .filter(|(t, _)| *t == table)
            .map(|(_, id)| id.clone())
            .collect();
        all.sort();
        all.dedup();
        if all.is_empty() {
            continue;
        }
        match client.remove_many(table.path(), &all) {
            Ok(report) => failed.extend(report.failed),
            Err(e) => {
                let msg = format!("remove: {e}");
                failed.extend(all.into_iter().map(|id| (id, msg.clone())));
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
    cfg: WorkerConfig,
    secrets: ClientSecrets,
    stop: Arc<AtomicBool>,
    admin: Option<Admin>,
    dm: Option<DmClient>,
    /// NASes that answered none of their probe requests in this run: later passes of
    /// the same run send them nothing.
    silent: HashSet<String>,
}

impl QueueWorker {
    /// `stop` is set when the module detaches: a run in progress then ends after its
    /// current network wait.
    pub fn new(cfg: WorkerConfig, secrets: ClientSecrets, stop: Arc<AtomicBool>) -> Self {
        QueueWorker {
            cfg,
            secrets,
            stop,
            admin: None,
            dm: None,
            silent: HashSet::new(),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Passes until no full batch is due (or stopped).
    pub fn run_at(&mut self, now: i64) -> Result<PassReport, String> {
        let mut total = PassReport::default();
        self.silent.clear();
        loop {
            let r = self.pass(now)?;
            total.add(r);
            if r.due < self.cfg.batch.max(1) || self.stopped() {
                return Ok(total);
            }
        }
    }

    /// One pass: close stopped sessions' jobs, then up to `batch` due jobs.
    pub fn pass(&mut self, now: i64) -> Result<PassReport, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open(&self.cfg.db).map_err(|e| e.to_string())?,
        };
        let r = self.pass_with(&admin, now);
        self.admin = Some(admin);
        r
    }

    fn pass_with(&mut self, admin: &Admin, now: i64) -> Result<PassReport, String> {
        let mut report = PassReport {
            closed_by_stop: admin
                .queue_close_if_stopped(now)
                .map_err(|e| e.to_string())?,
            ..Default::default()
        };
        let jobs = admin
            .queue_due(now, self.cfg.batch.max(1))
            .map_err(|e| e.to_string())?;
        report.due = jobs.len();
        if jobs.is_empty() {
            return Ok(report);
        }
        let mut nases: HashMap<String, Option<NasRow>> = HashMap::new();
        for job in &jobs {
            if !nases.contains_key(&job.nas_ip) {
                let row = admin.nas_get(&job.nas_ip).map_err(|e| e.to_string())?;
                nases.insert(job.nas_ip.clone(), row);
            }
        }
        let nas_of = |ip: &str| nases.get(ip).and_then(Option::as_ref);

        // RFC 5176 first, all due jobs at once.
        let mut verdicts: Vec<DmVerdict> = Vec::with_capacity(jobs.len());
        let mut to_send: Vec<(usize, coa::Job)> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let nas = nas_of(&job.nas_ip).map(|r| &r.config);
            match dm_target(&job.nas_ip, nas, self.secrets.get(&job.nas_ip)) {
                Ok((target, secret)) => {
                    let req = disconnect_request(job);
                    to_send.push((i, coa::Job::disconnect(target, secret.as_bytes(), &req)));
                    verdicts.push(DmVerdict::Gone); // replaced below
                }
                Err(error) => verdicts.push(DmVerdict::Failed {
                    error,
                    error_cause: None,
                }),
            }
        }
        // A few requests per NAS first: a NAS that answers none of them (wrong port,
        // NAT, down) is unreachable for this pass, and its other jobs go straight to
        // the API instead of each waiting out the timeouts.
        let mut per_nas: HashMap<&str, usize> = HashMap::new();
        let (to_send, known_silent): (Vec<_>, Vec<_>) = to_send
            .into_iter()
            .partition(|(i, _)| !self.silent.contains(&jobs[*i].nas_ip));
        let (probe, rest): (Vec<_>, Vec<_>) = to_send.into_iter().partition(|(i, _)| {
            let n = per_nas.entry(jobs[*i].nas_ip.as_str()).or_default();
            *n += 1;
            *n <= DM_PROBE_PER_NAS
        });
        let mut answering: HashSet<&str> = HashSet::new();
        let sent = self.send_dms(probe.iter().map(|(_, j)| j.clone()).collect());
        for ((i, _), (v, answered)) in probe.iter().zip(sent) {
            if answered {
                answering.insert(jobs[*i].nas_ip.as_str());
            }
            verdicts[*i] = v;
        }
        for (i, _) in &probe {
            if !answering.contains(jobs[*i].nas_ip.as_str()) {
                self.silent.insert(jobs[*i].nas_ip.clone());
            }
        }
        let (rest, mut skipped): (Vec<_>, Vec<_>) = rest
            .into_iter()
            .partition(|(i, _)| answering.contains(jobs[*i].nas_ip.as_str()));
        skipped.extend(known_silent);
        for (i, _) in skipped {
            verdicts[i] = DmVerdict::Failed {
                error: format!(
                    "not sent: the NAS answered none of the first {DM_PROBE_PER_NAS} \
                     Disconnect-Requests of this run"
                ),
                error_cause: None,
            };
        }
        let sent = self.send_dms(rest.iter().map(|(_, j)| j.clone()).collect());
        for ((i, _), (v, _)) in rest.iter().zip(sent) {
            verdicts[*i] = v;
        }

        // The API fallback for the rest, one login per NAS, NASes in parallel.
        let mut fallback: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, v) in verdicts.iter().enumerate() {
            if let DmVerdict::Failed { .. } = v {
                fallback.entry(jobs[i].nas_ip.as_str()).or_default().push(i);
            }
        }
        let api = api_fallback(&jobs, &fallback, &nases, self.cfg.api_parallel, &self.stop);

        let mut marks = Vec::with_capacity(jobs.len());
        for (i, (job, verdict)) in jobs.iter().zip(&verdicts).enumerate() {
            let outcome = match verdict {
                DmVerdict::Acked | DmVerdict::Gone => {
                    report.done_dm += 1;
                    log::info!(
                        "disconnect: {:?} on {} ({}): {}",
                        job.username,
                        job.nas_ip,
                        job.reason,
                        if *verdict == DmVerdict::Acked {
                            "Disconnect-ACK"
                        } else {
                            "NAS has no such session (already gone)"
                        }
                    );
                    JobOutcome::Done(Method::Dm)
                }
                DmVerdict::Failed { error, error_cause } => match api.get(&i) {
                    Some(Ok(n)) => {
                        report.done_api += 1;
                        log::info!(
                            "disconnect: {:?} on {} ({}): {error}; RouterOS API: {}",
                            job.username,
                            job.nas_ip,
                            job.reason,
                            if *n == 0 {
                                "no such session (already gone)".to_string()
                            } else {
                                format!("removed {n} session(s)")
                            }
                        );
                        JobOutcome::Done(Method::Api)
                    }
                    api_err => {
                        report.retry += 1;
                        let api_err = match api_err {
                            Some(Err(e)) => e.clone(),
                            _ => "not tried (stopping)".to_string(),
                        };
                        let error = format!("DM: {error}; API: {api_err}");
                        log::warn!(
                            "disconnect: {:?} on {} ({}) not done, retried later: {error}",
                            job.username,
                            job.nas_ip,
                            job.reason
                        );
                        JobOutcome::DmFailed {
                            error,
                            error_cause: *error_cause,
                        }
                    }
                },
            };
            marks.push((job.id, outcome));
        }
        admin
            .queue_mark_many(&marks, now)
            .map_err(|e| e.to_string())?;
        Ok(report)
    }

    /// Sends the Disconnect-Requests in rounds (first attempt, then retransmissions of
    /// the silent ones), checking for a stop between rounds.
    /// Per job: the verdict, and whether the NAS answered at all (a verified reply).
    fn send_dms(&mut self, jobs: Vec<coa::Job>) -> Vec<(DmVerdict, bool)> {
        let n = jobs.len();
        let mut results: Vec<Option<Result<DmOutcome, CoaError>>> = (0..n).map(|_| None).collect();
        if n == 0 {
            return Vec::new();
        }
        if self.dm.is_none() {
            let cfg = PipelineConfig {
                window: 128,
                timeout: self.cfg.dm_timeout,
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
        while !pending.is_empty() && attempts <= self.cfg.dm_retries && !self.stopped() {
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
}

/// Per job index: the API result for the jobs in `by_nas`, NASes in parallel.
fn api_fallback(
    jobs: &[DisconnectJob],
    by_nas: &HashMap<&str, Vec<usize>>,
    nases: &HashMap<String, Option<NasRow>>,
    parallel: usize,
    stop: &AtomicBool,
) -> HashMap<usize, Result<usize, String>> {
    let work: Vec<(&str, &Vec<usize>)> = by_nas.iter().map(|(k, v)| (*k, v)).collect();
    let results = std::sync::Mutex::new(HashMap::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = parallel.clamp(1, work.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some((nas_ip, idx)) = work.get(k) else {
                    return;
                };
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let mine: Vec<&DisconnectJob> = idx.iter().map(|&i| &jobs[i]).collect();
                let nas = nases.get(*nas_ip).and_then(Option::as_ref);
                let out = api_for_nas(nas_ip, nas, &mine);
                let mut r = results.lock().unwrap_or_else(|e| e.into_inner());
                r.extend(idx.iter().copied().zip(out));
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

fn api_for_nas(
    nas_ip: &str,
    nas: Option<&NasRow>,
    jobs: &[&DisconnectJob],
) -> Vec<Result<usize, String>> {
    let all = |e: String| jobs.iter().map(|_| Err(e.clone())).collect();
    let Some(nas) = nas else {
        return all(format!(
            "no network device (NAS) for {nas_ip}: add it with `rlm-rust nas add` and set its \
             RouterOS API credentials"
        ));
    };
    let mut client = match api_login(&nas.config) {
        Ok(c) => c,
        Err(e) => return all(e),
    };
    api_remove_jobs(&mut client, jobs)
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
                     API, {} retried later; {} closed by their session's Stop",
                    r.due,
                    r.done_dm,
                    r.done_api,
                    r.retry,
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
