//! Carrying state changes out, on the module's background thread (never a
//! freeRADIUS worker thread) and in the CLI:
//! - [`apply`]: read the user's state, decide ([`transition`], [`plan`]) and commit
//!   onto the version read (again on a conflict);
//! - [`States`]: the periodic job that turns the session triggers' presence marks
//!   into logins and logouts, ends services at their thresholds and cancels
//!   redirects once the capping limit allows the user again;
//! - [`NasActions`]: sends the queued CoA-Requests and RouterOS API changes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{plan, transition, Action, Input, NasActionKind, OpenSession, Outcome, Source};
use crate::background::Job;
use crate::coa::{self, DmClient, DmOutcome};
use crate::config::Hooks;
use crate::disconnect::{api_login, dm_target, ClientSecrets};
use crate::periods;
use crate::services::{self, EndReason, NasFamily, Service};
use crate::store::{
    ActionOutcome, Admin, HookPlan, NasActionRow, NasRow, NewDisconnectJob, NewEvent, PresenceMark,
    ServiceChange, StateChange, Store, StoreError, SubscriberRow,
};

/// What [`apply`] reads and writes: the CLI's and background jobs' [`Admin`], or
/// the module's [`Store`] (its writer) on the request path.
pub trait StateStore {
    fn subscriber(&self, user: &str) -> Result<Option<SubscriberRow>, StoreError>;
    fn open_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError>;
    fn redirected_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError>;
    fn service(&self, name: &str) -> Result<Option<Service>, StoreError>;
    fn commit(&self, change: StateChange) -> Result<bool, StoreError>;
}

impl StateStore for Admin {
    fn subscriber(&self, user: &str) -> Result<Option<SubscriberRow>, StoreError> {
        Admin::subscriber(self, user)
    }
    fn open_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError> {
        self.open_sessions_of(user)
    }
    fn redirected_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError> {
        Admin::redirected_sessions(self, user)
    }
    fn service(&self, name: &str) -> Result<Option<Service>, StoreError> {
        self.service_get(name)
    }
    fn commit(&self, change: StateChange) -> Result<bool, StoreError> {
        self.state_commit(&change)
    }
}

impl StateStore for Store {
    fn subscriber(&self, user: &str) -> Result<Option<SubscriberRow>, StoreError> {
        (**self).subscriber(user)
    }
    fn open_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError> {
        self.open_sessions_of(user)
    }
    fn redirected_sessions(&self, user: &str) -> Result<Vec<OpenSession>, StoreError> {
        (**self).redirected_sessions(user)
    }
    fn service(&self, name: &str) -> Result<Option<Service>, StoreError> {
        self.service_get(name)
    }
    fn commit(&self, change: StateChange) -> Result<bool, StoreError> {
        self.state_commit(change)
    }
}

/// One input to apply, with what goes along with it in the same commit.
#[derive(Debug, Clone)]
pub struct Change {
    pub input: Input,
    pub source: Source,
    pub now: i64,
    /// Service session changes committed with it.
    pub services: Vec<ServiceChange>,
    pub presence: Option<PresenceMark>,
    /// The user_disconnect hook is not run (the NAS row says not to).
    pub skip_disconnect_hook: bool,
    /// Added to every event of the change.
    pub detail: Option<String>,
}

impl Change {
    pub fn new(input: Input, source: Source, now: i64) -> Self {
        Change {
            input,
            source,
            now,
            services: Vec::new(),
            presence: None,
            skip_disconnect_hook: false,
            detail: None,
        }
    }
}

/// Decides and commits `change` for `user`; returns what was decided. Retries on
/// a concurrent change of the same user (the CLI and the module may both write).
pub fn apply(
    st: &dyn StateStore,
    hooks: &Hooks,
    user: &str,
    change: &Change,
) -> Result<Outcome, StoreError> {
    for _ in 0..8 {
        let row = st.subscriber(user)?;
        let (o, commit) = prepare(st, hooks, user, change, row.as_ref())?;
        let Some(commit) = commit else {
            return Ok(o);
        };
        if st.commit(commit)? {
            log_events(user, &o, change.source);
            return Ok(o);
        }
    }
    Err(StoreError::Rejected(format!(
        "{user:?} kept changing while its state was being updated; try again"
    )))
}

/// Logs what a committed change did.
pub fn log_events(user: &str, o: &Outcome, source: Source) {
    for e in &o.events {
        log::info!(
            "{user:?}: {} ({} -> {}, {})",
            e.event.as_str(),
            e.old.as_deref().unwrap_or("-"),
            e.new.as_deref().unwrap_or("-"),
            source.as_str()
        );
    }
}

/// Decides `change` on the state `row` (None: no row) and builds what to commit
/// onto it (None: nothing to write).
pub fn prepare(
    st: &dyn StateStore,
    hooks: &Hooks,
    user: &str,
    change: &Change,
    row: Option<&SubscriberRow>,
) -> Result<(Outcome, Option<StateChange>), StoreError> {
    let before = row.map(|r| &r.state);
    let o = transition(before, &change.input);
    if !o.changed(before) && change.services.is_empty() && change.presence.is_none() {
        return Ok((o, None));
    }
    let needs_sessions = o
        .actions
        .iter()
        .any(|a| !matches!(a, Action::EndServices(_) | Action::Unredirect));
    let sessions = if needs_sessions {
        st.open_sessions(user)?
    } else {
        Vec::new()
    };
    let redirected = if o.actions.contains(&Action::Unredirect) {
        st.redirected_sessions(user)?
    } else {
        Vec::new()
    };
    let rate_after = match &change.input {
        Input::ServiceOff { rate_after, .. } => rate_after.clone(),
        _ => o.state.rate.clone(),
    };
    let lookup = |n: &str| st.service(n).ok().flatten();
    let p = plan(
        user,
        &o.actions,
        &sessions,
        &redirected,
        &lookup,
        rate_after.as_deref(),
    );
    let events = o
        .events
        .iter()
        .map(|e| {
            let mut record = e.clone();
            if let Some(d) = &change.detail {
                record.detail = Some(match record.detail {
                    Some(own) => format!("{own}; {d}"),
                    None => d.clone(),
                });
            }
            let hook = match hooks.command(e.event.as_str()) {
                None => HookPlan::None,
                Some(_)
                    if change.skip_disconnect_hook && e.event == super::Event::UserDisconnect =>
                {
                    HookPlan::Skipped
                }
                Some(_) => HookPlan::Pending,
            };
            NewEvent {
                record,
                source: change.source,
                hook,
            }
        })
        .collect();
    let commit = StateChange {
        username: user.to_string(),
        expected_version: row.map(|r| r.version),
        state: o.state.clone(),
        events,
        plan: p,
        services: change.services.clone(),
        presence: change.presence,
        now: change.now,
    };
    Ok((o, Some(commit)))
}

/// The rate a user has while `active` services run (activation order) over its
/// operator and login rates.
pub fn rate_with(
    st: &dyn StateStore,
    sub: Option<&super::Subscriber>,
    active: &[String],
) -> Option<String> {
    let services: Vec<Service> = active
        .iter()
        .filter_map(|n| st.service(n).ok().flatten())
        .collect();
    super::effective_rate(
        services::service_rate(services.iter()),
        sub.and_then(|s| s.rate_override.as_deref()),
        sub.and_then(|s| s.base_rate.as_deref()),
    )
}

/// Whether a user is over the capping limit now (None: cannot tell).
pub type OverLimit = Box<dyn Fn(&str, i64) -> Option<bool> + Send>;

/// Settings of the [`States`] job.
pub struct StatesConfig {
    pub db: PathBuf,
    pub hooks: Hooks,
    /// A login whose session has not started this long after is a logout.
    pub login_grace: i64,
    pub over_limit: OverLimit,
    /// The request path's copy of the redirected users, renewed every tick.
    pub redirected: super::enforce::Redirected,
    /// Seconds events and finished actions are kept (0 = forever).
    pub keep: u64,
}

/// Logins, logouts, service thresholds and redirect cancels (see the module doc).
pub struct States {
    cfg: StatesConfig,
    admin: Option<Admin>,
    /// The last redirected user evaluated (they take turns).
    redirect_cursor: String,
    last_purge: i64,
}

/// What one run of [`States`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatesReport {
    pub presence: usize,
    pub services_ended: usize,
    pub redirects_cancelled: usize,
}

/// Presence marks handled per run (the rest wait for the next tick).
const PRESENCE_BATCH: usize = 2000;

impl States {
    pub fn new(cfg: StatesConfig) -> Self {
        States {
            cfg,
            admin: None,
            redirect_cursor: String::new(),
            last_purge: 0,
        }
    }

    pub fn run_at(&mut self, now: i64) -> Result<StatesReport, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open_existing(&self.cfg.db).map_err(|e| e.to_string())?,
        };
        let r = self.pass(&admin, now).map_err(|e| e.to_string());
        if r.is_ok() {
            self.admin = Some(admin);
        }
        r
    }

    fn pass(&mut self, admin: &Admin, now: i64) -> Result<StatesReport, StoreError> {
        let mut report = StatesReport::default();
        for due in admin.presence_due(now, PRESENCE_BATCH)? {
            report.presence += 1;
            if let Err(e) = self.presence(admin, &due.username, due.rowid, now) {
                log::error!("state of {:?}: {e}", due.username);
            }
        }
        report.services_ended += self.watch_services(admin, now)?;
        if self.cfg.keep > 0 && now - self.last_purge >= 3600 {
            let before = now.saturating_sub(i64::try_from(self.cfg.keep).unwrap_or(i64::MAX));
            let (e, a) = admin.purge_history(before)?;
            if e + a > 0 {
                log::info!("events_keep: deleted {e} event(s) and {a} finished NAS action(s)");
            }
            self.last_purge = now;
        }
        report.redirects_cancelled += self.watch_redirects(admin, now)?;
        Ok(report)
    }

    /// A session of the user opened or closed, or a login is due for its Start.
    fn presence(&self, admin: &Admin, user: &str, rowid: i64, now: i64) -> Result<(), StoreError> {
        let open = admin.open_sessions_of(user)?;
        let sub = admin.subscriber(user)?;
        let logged_in = sub.as_ref().is_some_and(|s| s.state.logged_in);
        let mut change = if !open.is_empty() {
            Change::new(
                Input::Login {
                    rate: None,
                    base_rate: None,
                },
                Source::Accounting,
                now,
            )
        } else if logged_in {
            let mut c = Change::new(Input::Logout, Source::Accounting, now);
            if let Some(nas) = admin.last_stop_nas(user)? {
                c.skip_disconnect_hook = admin.nas_get(&nas)?.is_some_and(|n| !n.config.stop_event);
                c.detail = Some(format!("last session on {nas}"));
            } else {
                c.detail = Some("no accounting Start after the login".into());
            }
            c
        } else {
            // Nothing to change (a Stop of a user already logged out).
            admin.presence_drop(rowid)?;
            return Ok(());
        };
        change.presence = Some(PresenceMark::Done(rowid));
        apply(admin, &self.cfg.hooks, user, &change)?;
        Ok(())
    }

    /// Ends the active services that reached a threshold, on the NASes that do not
    /// end them themselves. Volume is the output counted by the sessions' last
    /// Interim: the check is as fine as the NAS's interim interval.
    fn watch_services(&self, admin: &Admin, now: i64) -> Result<usize, StoreError> {
        let mut ended = 0;
        let mut defs: HashMap<String, Option<Service>> = HashMap::new();
        for us in admin.active_services()? {
            let Some(svc) = defs
                .entry(us.service.clone())
                .or_insert_with(|| admin.service_get(&us.service).ok().flatten())
                .clone()
            else {
                continue;
            };
            let Some(since) = us.activated_at else {
                continue;
            };
            let open = admin.open_sessions_of(&us.username)?;
            if !open.is_empty() && open.iter().all(|s| s.family.enforces_thresholds()) {
                continue;
            }
            let output = admin
                .output_since(&us.username, since)?
                .saturating_sub(us.base_output);
            if output != us.used_output {
                admin.service_used(&us.username, &us.service, output)?;
            }
            let Some(reason) = services::threshold_reached(&svc, now - since, output) else {
                continue;
            };
            let sub = admin.subscriber(&us.username)?;
            let still: Vec<String> = admin
                .user_services(Some(&us.username))?
                .into_iter()
                .filter(|r| r.state == "active" && r.service != us.service)
                .map(|r| r.service)
                .collect();
            let rate_after = rate_with(admin, sub.as_ref().map(|s| &s.state), &still);
            let source = match reason {
                EndReason::Volume => Source::Accounting,
                _ => Source::Schedule,
            };
            let mut c = Change::new(
                Input::ServiceOff {
                    service: us.service.clone(),
                    reason,
                    rate_after,
                },
                source,
                now,
            );
            c.services.push(ServiceChange::End {
                service: us.service.clone(),
                reason,
                unsubscribe: false,
            });
            log::info!(
                "service {} of {:?} reached its {} threshold ({}s, {} output octets): deactivating",
                us.service,
                us.username,
                reason.as_str(),
                now - since,
                output
            );
            apply(admin, &self.cfg.hooks, &us.username, &c)?;
            ended += 1;
        }
        Ok(ended)
    }

    /// Cancels the redirects a topup or a new period ended. Up to
    /// [`REDIRECT_CHECKS`] users are evaluated per tick, in turns, so a month end with
    /// many redirected users costs a bounded amount per tick.
    fn watch_redirects(&mut self, admin: &Admin, now: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        let all = admin.redirected_subscribers()?;
        let mut still: std::collections::HashSet<String> =
            all.iter().map(|s| s.username.clone()).collect();
        let start = all
            .iter()
            .position(|s| s.username > self.redirect_cursor)
            .unwrap_or(0);
        let turn: Vec<&SubscriberRow> = all
            .iter()
            .cycle()
            .skip(start)
            .take(all.len().min(REDIRECT_CHECKS))
            .collect();
        for sub in turn {
            self.redirect_cursor = sub.username.clone();
            if (self.cfg.over_limit)(&sub.username, now) == Some(false) {
                let c = Change::new(Input::LimitCleared, Source::Capping, now);
                apply(admin, &self.cfg.hooks, &sub.username, &c)?;
                still.remove(&sub.username);
                n += 1;
            }
        }
        // A change made meanwhile is seen again by the request path (its transition
        // reads the store), so replacing the copy loses nothing.
        *self
            .cfg
            .redirected
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = still;
        Ok(n)
    }
}

/// Redirected users whose allowance is evaluated per tick.
const REDIRECT_CHECKS: usize = 200;

impl Job for States {
    fn name(&self) -> &'static str {
        "subscriber states"
    }

    fn run(&mut self) -> Result<(), String> {
        self.run_at(periods::now()).map(drop)
    }
}

/// Settings of the [`NasActions`] job.
#[derive(Debug, Clone)]
pub struct ActionsConfig {
    pub db: PathBuf,
    pub timeout: Duration,
    pub retries: u32,
    pub batch: usize,
    /// Attempts before an unanswered action is given up.
    pub max_attempts: u32,
}

/// Sends the queued NAS actions.
pub struct NasActions {
    cfg: ActionsConfig,
    secrets: ClientSecrets,
    stop: Arc<AtomicBool>,
    admin: Option<Admin>,
    client: Option<DmClient>,
}

/// The attributes of a CoA action (identification and change).
pub fn coa_attributes(
    a: &NasActionRow,
    family: NasFamily,
) -> Result<Vec<crate::radius::attrs::Attribute>, String> {
    let mut v = coa::session_identity(
        &a.username,
        &a.acct_session_id,
        a.framed_ip.as_deref(),
        &a.nas_ip,
    );
    let change = match a.kind() {
        Some(NasActionKind::Rate) => services::rate_change(
            a.rate_limit
                .as_deref()
                .ok_or("rate action without a rate")?,
        )?,
        Some(k @ (NasActionKind::ServiceOn | NasActionKind::ServiceOff)) => {
            let on = k == NasActionKind::ServiceOn;
            let mut svc = a.service().ok_or("service action without a service")?;
            if on {
                svc.rate_limit = a.rate_limit.clone();
            }
            services::coa_change(family, &svc, on, a.rate_limit.as_deref())?
        }
        _ => return Err(format!("{} is not a CoA action", a.action)),
    };
    if change.is_empty() {
        return Err("nothing to change on this NAS".into());
    }
    v.extend(change);
    Ok(v)
}

fn comment(user: &str) -> String {
    format!("rlm_rust:{user}")
}

fn given_up(a: &NasActionRow, error: String, error_cause: Option<u32>) -> ActionOutcome {
    let disconnect = a.disconnect_on_failure.then(|| NewDisconnectJob {
        nas_ip: a.nas_ip.clone(),
        session_key: a.session_key.clone(),
        username: a.username.clone(),
        acct_session_id: a.acct_session_id.clone(),
        framed_ip: a.framed_ip.clone(),
        session_start: a.session_start,
        reason: format!("{} not applied: {error}", a.action),
    });
    ActionOutcome::Failed {
        error,
        error_cause,
        disconnect,
    }
}

impl NasActions {
    pub fn new(cfg: ActionsConfig, secrets: ClientSecrets, stop: Arc<AtomicBool>) -> Self {
        NasActions {
            cfg,
            secrets,
            stop,
            admin: None,
            client: None,
        }
    }

    fn failure(
        &self,
        a: &NasActionRow,
        error: String,
        error_cause: Option<u32>,
        definite: bool,
    ) -> ActionOutcome {
        if definite || a.attempts + 1 >= self.cfg.max_attempts {
            given_up(a, error, error_cause)
        } else {
            ActionOutcome::Retry { error, error_cause }
        }
    }

    pub fn run_at(&mut self, now: i64) -> Result<usize, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open_existing(&self.cfg.db).map_err(|e| e.to_string())?,
        };
        let r = self.pass(&admin, now);
        if r.is_ok() {
            self.admin = Some(admin);
        }
        r
    }

    fn pass(&mut self, admin: &Admin, now: i64) -> Result<usize, String> {
        let e = |e: StoreError| e.to_string();
        let due = admin
            .actions_claim(now, self.cfg.batch.max(1), crate::store::Lease::current())
            .map_err(e)?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut nases: HashMap<String, Option<NasRow>> = HashMap::new();
        let mut marks: Vec<(i64, ActionOutcome)> = Vec::new();
        let mut coas: Vec<(&NasActionRow, coa::Job)> = Vec::new();
        let mut api: HashMap<String, Vec<&NasActionRow>> = HashMap::new();
        for a in &due {
            let Some(kind) = a.kind() else {
                marks.push((
                    a.id,
                    given_up(a, format!("unknown action {:?}", a.action), None),
                ));
                continue;
            };
            // Taking an address out of a list is still right once the session closed.
            if kind != NasActionKind::RedirectCancel
                && !admin.session_open(&a.nas_ip, &a.session_key).map_err(e)?
            {
                marks.push((a.id, ActionOutcome::Gone));
                continue;
            }
            let nas = nases
                .entry(a.nas_ip.clone())
                .or_insert_with(|| admin.nas_get(&a.nas_ip).ok().flatten())
                .clone();
            if matches!(
                kind,
                NasActionKind::Redirect | NasActionKind::RedirectCancel
            ) {
                api.entry(a.nas_ip.clone()).or_default().push(a);
                continue;
            }
            let family = NasFamily::of(nas.as_ref().map(|n| n.config.nas_type.as_str()));
            let attrs = match coa_attributes(a, family) {
                Ok(v) => v,
                Err(why) => {
                    marks.push((a.id, given_up(a, why, None)));
                    continue;
                }
            };
            match dm_target(&a.nas_ip, nas.as_ref().map(|n| &n.config), &self.secrets) {
                Ok((target, secret)) => {
                    coas.push((a, coa::Job::coa(target, secret.as_bytes(), attrs)))
                }
                Err(why) => marks.push((a.id, self.failure(a, why, None, false))),
            }
        }
        if !coas.is_empty() && !self.stop.load(Ordering::Relaxed) {
            let client = coa::client_in(&mut self.client, self.cfg.timeout, self.cfg.retries)?;
            let (rows, jobs): (Vec<&NasActionRow>, Vec<coa::Job>) = coas.into_iter().unzip();
            for (a, r) in rows.into_iter().zip(client.send_many(jobs)) {
                let o = match coa::coa_failure(&r) {
                    None => ActionOutcome::Done { method: "coa" },
                    // A NAK is the NAS's answer; no answer may be a passing outage.
                    Some((why, cause)) => {
                        let definite = matches!(r, Ok(DmOutcome::Nak { .. }));
                        self.failure(a, why, cause, definite)
                    }
                };
                match &o {
                    ActionOutcome::Done { .. } => {
                        log::info!("{} for {:?} on {}: CoA-ACK", a.action, a.username, a.nas_ip)
                    }
                    ActionOutcome::Failed {
                        error, disconnect, ..
                    } => log::warn!(
                        "{} for {:?} on {}: {error}; given up{}",
                        a.action,
                        a.username,
                        a.nas_ip,
                        if disconnect.is_some() {
                            ", session queued for disconnection"
                        } else {
                            ""
                        }
                    ),
                    ActionOutcome::Retry { error, .. } => log::warn!(
                        "{} for {:?} on {}: {error}; will retry",
                        a.action,
                        a.username,
                        a.nas_ip
                    ),
                    ActionOutcome::Gone => {}
                }
                marks.push((a.id, o));
            }
        }
        for (nas_ip, actions) in api {
            let nas = nases.get(&nas_ip).cloned().flatten();
            for (a, o) in self.api(nas.as_ref(), &actions) {
                marks.push((a, o));
            }
        }
        let n = marks.len();
        admin.action_mark_many(&marks, now).map_err(e)?;
        Ok(n)
    }

    /// Redirect actions on one NAS over its RouterOS API: the address into the
    /// NAS row's `redirect_list` (commented with the user), or out of it.
    fn api(&self, nas: Option<&NasRow>, actions: &[&NasActionRow]) -> Vec<(i64, ActionOutcome)> {
        let all = |o: &dyn Fn(&NasActionRow) -> ActionOutcome| -> Vec<(i64, ActionOutcome)> {
            actions.iter().map(|a| (a.id, o(a))).collect()
        };
        let Some(nas) = nas else {
            return all(&|a| {
                given_up(a, "no NAS row: add it with `rlm-rust nas add`".into(), None)
            });
        };
        let Some(list) = nas.config.redirect_list.clone().filter(|l| !l.is_empty()) else {
            return all(&|a| given_up(a, "the NAS has no redirect list".into(), None));
        };
        let mut client = match api_login(&nas.config) {
            Ok(c) => c,
            Err(why) => return all(&|a| self.failure(a, why.clone(), None, false)),
        };
        let path = crate::routeros::ADDRESS_LIST;
        let mut out = Vec::new();
        for a in actions {
            let Some(ip) = a.framed_ip.as_deref() else {
                out.push((
                    a.id,
                    given_up(a, "the session has no Framed-IP-Address".into(), None),
                ));
                continue;
            };
            let result = if a.action == NasActionKind::Redirect.as_str() {
                let cmd = crate::routeros::Command::new(&format!("{path}/add"))
                    .attr("list", &list)
                    .attr("address", ip)
                    .attr("comment", &comment(&a.username));
                match client.command(&cmd) {
                    Ok(_) => Ok(()),
                    // Already listed (a retry after a lost reply): what we wanted.
                    Err(e) if e.to_string().contains("already have") => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                client
                    .print(path, &[".id"], &[("list", &list), ("address", ip)])
                    .map_err(|e| e.to_string())
                    .and_then(|rows| {
                        let ids: Vec<String> = rows
                            .into_iter()
                            .filter_map(|r| r.get(".id").cloned())
                            .collect();
                        client.remove(path, &ids).map_err(|e| e.to_string())
                    })
            };
            let o = match result {
                Ok(()) => {
                    log::info!(
                        "{} for {:?}: {ip} {} address list {list} on {}",
                        a.action,
                        a.username,
                        if a.action == "redirect" {
                            "added to"
                        } else {
                            "removed from"
                        },
                        nas.config.nas_ip
                    );
                    ActionOutcome::Done { method: "api" }
                }
                Err(why) => self.failure(a, format!("RouterOS API: {why}"), None, false),
            };
            out.push((a.id, o));
        }
        out
    }
}

impl Job for NasActions {
    fn name(&self) -> &'static str {
        "NAS actions"
    }

    fn run(&mut self) -> Result<(), String> {
        match self.run_at(periods::now()) {
            Ok(_) => Ok(()),
            Err(e) => {
                self.admin = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn redirected_users_take_turns_and_the_cleared_ones_leave_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        drop(Store::open(&db, Default::default()).unwrap());
        {
            let mut c = rusqlite::Connection::open(&db).unwrap();
            let tx = c.transaction().unwrap();
            for i in 0..250 {
                tx.execute(
                    "INSERT INTO subscribers (username, redirected, created, updated) \
                     VALUES (?1, 1, 0, 0)",
                    [format!("u{i:03}")],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let redirected = super::super::enforce::Redirected::default();
        let mut job = States::new(StatesConfig {
            db,
            hooks: Hooks::default(),
            login_grace: 90,
            // u007 is within its limits again; the rest stay over.
            over_limit: Box::new(move |user, _| {
                seen.fetch_add(1, Ordering::SeqCst);
                Some(user != "u007")
            }),
            redirected: Arc::clone(&redirected),
            keep: 0,
        });
        let r = job.run_at(1_800_000_000).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), REDIRECT_CHECKS);
        assert_eq!(r.redirects_cancelled, 1);
        assert_eq!(redirected.lock().unwrap().len(), 249);
        assert!(!redirected.lock().unwrap().contains("u007"));
        // The next tick starts where this one stopped: u200.. then u000..
        calls.store(0, Ordering::SeqCst);
        let r = job.run_at(1_800_000_010).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), REDIRECT_CHECKS);
        assert_eq!(r.redirects_cancelled, 0);
        assert_eq!(
            job.redirect_cursor, "u150",
            "50 after u199, then 150 from the start"
        );
    }
}
