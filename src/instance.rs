//! One configured `rust { ... }` instance in plain Rust: its config, store and
//! background thread, and what each server callback decides. The FFI layer only
//! converts C data to these calls and the [`Rcode`] back.
use crate::accounting::{self, Skip};
use crate::attrs::Attrs;
use crate::background::{Background, Job};
use crate::bulk::AutoBulk;
use crate::capping::{AcctAction, RawLimits};
use crate::config::Config;
use crate::disconnect::{ClientLookup, ClientSecrets, QueueWorker, WorkerConfig};
use crate::enforcement::{Answer, Enforcer};
use crate::periods;
use crate::policies::RawPolicy;
use crate::policy_enforcement::{Login, PolicyEnforcer, Verdict};
use crate::store::{Store, StoreOptions};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Module return codes, as unlang sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    Reject,
    Fail,
    Ok,
    Handled,
    Invalid,
    Userlock,
    Notfound,
    Noop,
    Updated,
}

impl Rcode {
    /// unlang's name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::Reject => "reject",
            Rcode::Fail => "fail",
            Rcode::Ok => "ok",
            Rcode::Handled => "handled",
            Rcode::Invalid => "invalid",
            Rcode::Userlock => "userlock",
            Rcode::Notfound => "notfound",
            Rcode::Noop => "noop",
            Rcode::Updated => "updated",
        }
    }
}

pub struct Instance {
    pub name: String,
    pub config: Config,
    store: Store,
    enforcer: Arc<Enforcer>,
    policies: PolicyEnforcer,
    states: crate::states::enforce::StateEnforcer,
    background: Option<Background>,
    /// The operator hooks' own thread (a slow hook delays nothing else).
    hooks: Option<Background>,
    /// Client secrets by NAS IP, for Disconnect-Requests to NASes without their own.
    secrets: ClientSecrets,
    /// Tells the disconnect jobs to end their network waits early at detach.
    stopping: Arc<AtomicBool>,
    /// `/metrics`, shared with other instances on the same address.
    _metrics: Option<Arc<crate::metrics::listener::Listener>>,
}

/// Closes sessions that sent nothing for `stale_after`.
struct StaleSessions {
    store: Store,
    stale_after: u64,
}

impl Job for StaleSessions {
    fn name(&self) -> &'static str {
        "stale sessions"
    }
    fn run(&mut self) -> Result<(), String> {
        let closed = self
            .store
            .close_stale(periods::now(), self.stale_after)
            .map_err(|e| e.to_string())?;
        if closed > 0 {
            log::info!(
                "closed {closed} stale session(s) (no update for {}s)",
                self.stale_after
            );
        }
        Ok(())
    }
}

impl Instance {
    /// Opens the store and starts the background thread. `client_secret` looks a RADIUS
    /// client's secret up in the server's client list (for Disconnect-Requests).
    pub fn start(
        name: String,
        config: Config,
        client_secret: ClientLookup,
    ) -> Result<Self, String> {
        let opts = StoreOptions {
            timezone: config.timezone,
            synchronous: config.synchronous,
            month_boundary_disconnect: config.disconnect_prior_month,
            bounds: crate::sessions::Bounds {
                max_bytes_per_sec: config.max_session_rate / 8,
            },
            ..Default::default()
        };
        crate::store::Lease::set_current(config.queue_lease);
        let metrics = match config.metrics_listen {
            None => None,
            Some(addr) => Some(
                crate::metrics::listener::start(addr, config.metrics_token.clone()).map_err(
                    |e| format!("option 'metrics_listen' = \"{addr}\": cannot listen: {e}"),
                )?,
            ),
        };
        let store = Store::open(&config.db, opts)
            .map_err(|e| format!("option 'db' = \"{}\": {e}", config.db_shown))?;
        // A restart after a crash: this host's earlier process left claimed jobs
        // (only a shared store leases them).
        if store.backend() == crate::store::Backend::Postgres {
            match crate::store::Admin::open(&config.db)
                .and_then(|a| a.release_dead_claims(crate::periods::now()))
            {
                Ok(0) => {}
                Ok(n) => log::info!(
                    "rlm_rust: {n} queued job(s) claimed by a process that is gone are due again"
                ),
                Err(e) => {
                    log::warn!("rlm_rust: cannot release the claims of an earlier process: {e}")
                }
            }
        }
        for n in store.nas_list().unwrap_or_default() {
            let c = &n.config;
            if c.api_tls && !c.api_tls_verify {
                log::warn!(
                    "NAS {}: its API-SSL certificate is not verified (api-tls-insecure): anyone on \
                     the path can take its API password; give it its CA with `rlm-rust nas set {} \
                     --api-ca FILE --api-tls-verify`",
                    c.nas_ip,
                    c.nas_ip
                );
            }
        }
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        if config.stale_after > 0 {
            jobs.push(Box::new(StaleSessions {
                store: store.clone(),
                stale_after: config.stale_after,
            }));
        }
        if let Some(command) = &config.capping.notify_command {
            let template = crate::notify::Template::parse(&config.capping.notify_template)
                .map_err(|e| format!("option 'capping.notify_template': {e}"))?;
            jobs.push(Box::new(crate::outbox::Outbox {
                store: store.clone(),
                command: command.clone(),
                template,
            }));
        }
        let secrets = ClientSecrets::with_lookup(client_secret);
        let stopping = Arc::new(AtomicBool::new(false));
        if config.bulk_disconnect {
            jobs.push(Box::new(AutoBulk::new(
                config.db.clone(),
                config.timezone,
                config.bulk_disconnect_delay,
                Arc::clone(&stopping),
            )));
        }
        // Before the disconnect queue: a CoA that fails queues a disconnect, sent in the
        // same tick.
        jobs.push(Box::new(crate::rate_coa::RateCoa::new(
            crate::rate_coa::RateCoaConfig {
                db: config.db.clone(),
                tz: config.timezone,
                timeout: Duration::from_secs(config.dm_timeout),
                retries: config.dm_retries,
                batch: config.disconnect_batch,
                hooks: config.hooks.clone(),
            },
            secrets.clone(),
            Arc::clone(&stopping),
        )));
        // Always drained: capping queues jobs too, and jobs from before a restart remain.
        let worker = WorkerConfig {
            dm_timeout: Duration::from_secs(config.dm_timeout),
            dm_retries: config.dm_retries,
            batch: config.disconnect_batch,
            ..WorkerConfig::new(config.db.clone())
        };
        jobs.push(Box::new(QueueWorker::new(
            worker,
            secrets.clone(),
            Arc::clone(&stopping),
        )));
        let enforcer = Arc::new(Enforcer::new(
            config.capping.clone(),
            config.timezone,
            store.clone(),
        ));
        let login_grace = i64::try_from(config.background_interval.max(30) * 3).unwrap_or(90);
        let capping = Arc::clone(&enforcer);
        let redirected = crate::states::enforce::Redirected::default();
        jobs.push(Box::new(crate::states::worker::States::new(
            crate::states::worker::StatesConfig {
                db: config.db.clone(),
                hooks: config.hooks.clone(),
                login_grace,
                over_limit: Box::new(move |user, now| {
                    match capping.login(user, &RawLimits::new(), false, now) {
                        // No limits known (control-list limits are remembered from
                        // the login, so not after a restart): the next update decides.
                        Ok((_, None)) => None,
                        Ok((_, Some(c))) => Some(matches!(
                            c.decision.state,
                            crate::capping::State::Exhausted { .. }
                        )),
                        Err(_) => None,
                    }
                }),
                redirected: Arc::clone(&redirected),
                keep: config.events_keep,
            },
        )));
        jobs.push(Box::new(crate::states::worker::NasActions::new(
            crate::states::worker::ActionsConfig {
                db: config.db.clone(),
                timeout: Duration::from_secs(config.dm_timeout),
                retries: config.dm_retries,
                batch: config.disconnect_batch,
                max_attempts: 5,
            },
            secrets.clone(),
            Arc::clone(&stopping),
        )));
        let background = Background::spawn(Duration::from_secs(config.background_interval), jobs)
            .map_err(|e| format!("cannot start the background thread: {e}"))?;
        // Always: events the CLI queued wait for it to see whether a hook is set.
        let runner = crate::states::hooks::HookRunner::new(config.db.clone(), config.hooks.clone());
        let hooks = Some(
            Background::spawn(
                Duration::from_secs(config.background_interval.min(5)),
                vec![Box::new(runner)],
            )
            .map_err(|e| format!("cannot start the hooks thread: {e}"))?,
        );
        log::info!(
            "instance {name}: db {}, timezone {}, stale_after {}s, synchronous {:?}",
            config.db_shown,
            config.timezone,
            config.stale_after,
            config.synchronous
        );
        let states = crate::states::enforce::StateEnforcer::new(
            store.clone(),
            config.hooks.clone(),
            login_grace,
            redirected,
        );
        let policies = PolicyEnforcer::new(store.clone(), config.timezone, config.stale_after);
        Ok(Instance {
            name,
            config,
            policies,
            states,
            store,
            enforcer,
            background: Some(background),
            hooks,
            secrets,
            stopping,
            _metrics: metrics,
        })
    }

    /// Records one Accounting-Request; returns only once it is committed.
    /// Then, for a capped user, decides again with the new usage and queues a
    /// disconnect when the policy says so. `control`: capping attributes of the
    /// request's control list.
    pub fn accounting(
        &self,
        attrs: &impl Attrs,
        control: &RawLimits,
        control_policy: &RawPolicy,
        src_ip: Option<IpAddr>,
        received_at: i64,
    ) -> Rcode {
        let (rcode, outcome) =
            self.accounting_outcome(attrs, control, control_policy, src_ip, received_at);
        crate::metrics::global().accounting.inc(&[outcome]);
        rcode
    }

    /// What [`Instance::accounting`] returns, and its outcome for the metrics.
    fn accounting_outcome(
        &self,
        attrs: &impl Attrs,
        control: &RawLimits,
        control_policy: &RawPolicy,
        src_ip: Option<IpAddr>,
        received_at: i64,
    ) -> (Rcode, &'static str) {
        let update = match accounting::extract(attrs, src_ip, received_at) {
            Ok(u) => u,
            Err(Skip::Untracked(code)) => {
                let code = code.map_or_else(|| "missing".to_string(), |c| c.to_string());
                log::debug!(
                    "Acct-Status-Type {code} is not tracked: acknowledged without recording"
                );
                return (Rcode::Ok, "not_tracked");
            }
            Err(Skip::Invalid(why)) => {
                log::error!("invalid accounting request: {why}");
                return (Rcode::Invalid, "invalid");
            }
        };
        let capping = self
            .enforcer
            .acct_capping(&update.username, update.status, control, received_at)
            .map(|mut c| {
                c.quota_control = self
                    .policies
                    .acct_quota_control(&update.username, control_policy);
                c
            });
        let recorded = match capping {
            Some(c) => self
                .store
                .record_capped(update, c)
                .map(|(o, c)| (o, Some(c))),
            None => self.store.record(update).map(|o| (o, None)),
        };
        match recorded {
            Ok((outcome, cap)) => {
                if outcome.anomalies.refused() {
                    log::warn!("{outcome}");
                } else {
                    log::debug!("{outcome}");
                }
                if let Some(r) = &outcome.quota_reached {
                    log::info!(
                        "{:?} reached a policy quota ({r}): session {} on {} is queued for disconnection",
                        outcome.username,
                        outcome.session_key,
                        outcome.nas_ip
                    );
                }
                // Whether the capping rules looked at this update at all.
                let checked = matches!(
                    cap,
                    Some(
                        crate::store::CapOutcome::Unlimited
                            | crate::store::CapOutcome::Within
                            | crate::store::CapOutcome::Decided(..)
                    )
                );
                let action = cap.map_or(AcctAction::None, |c| {
                    self.enforcer.acct_action(&outcome.username, c)
                });
                if checked {
                    let over = !matches!(action, AcctAction::None);
                    self.states
                        .capping_checked(&outcome.username, over, received_at);
                }
                match action {
                    AcctAction::None => {}
                    AcctAction::Report { reason } => {
                        log::warn!(
                            "{:?} is over the limit ({reason}); over_limit = report: session left up",
                            outcome.username
                        );
                    }
                    AcctAction::Disconnect { reason } if outcome.disconnect_queued => {
                        log::info!(
                            "{:?} is over the limit ({reason}): session {} on {} is queued for disconnection",
                            outcome.username,
                            outcome.session_key,
                            outcome.nas_ip
                        );
                    }
                    AcctAction::Disconnect { .. } => {}
                    AcctAction::Change { reason } if outcome.coa_queued => {
                        log::info!(
                            "{:?} is over the limit ({reason}): session {} on {} is queued for a CoA",
                            outcome.username,
                            outcome.session_key,
                            outcome.nas_ip
                        );
                    }
                    AcctAction::Change { .. } => {}
                }
                (Rcode::Ok, "recorded")
            }
            // The store logs an outage once, when it starts and when it ends.
            Err(e @ crate::store::StoreError::Unavailable(_)) => {
                log::debug!(
                    "accounting not recorded, no Accounting-Response so the NAS retransmits: {e}"
                );
                (Rcode::Fail, "failed")
            }
            Err(e) => {
                log::error!(
                    "accounting not recorded, no Accounting-Response so the NAS retransmits: {e}"
                );
                (Rcode::Fail, "failed")
            }
        }
    }

    /// Remembers the RADIUS client's secret for this request's NAS (NAS-IP-Address,
    /// else the packet source): the default secret of Disconnect-Requests to it.
    pub fn learn_client_secret(
        &self,
        attrs: &impl Attrs,
        src_ip: Option<IpAddr>,
        secret: Option<&str>,
    ) {
        let nas = attrs
            .ipv4(crate::attrs::std_attr::NAS_IP_ADDRESS, 0)
            .map(IpAddr::V4)
            .or(src_ip);
        if let (Some(nas), Some(secret)) = (nas, secret) {
            self.secrets.learn(&nas.to_string(), secret);
        }
    }

    /// What authorize tells unlang about the user (control attributes): open
    /// sessions, this month's usage and, for a capped user, the allowance.
    /// `request`: the server's request number (authorize's decision is reused by the
    /// same request's post-auth).
    pub fn authorize(
        &self,
        request: u32,
        username: Option<&str>,
        control: &RawLimits,
        now: i64,
    ) -> Answer {
        let a = match username.filter(|u| !u.is_empty()) {
            Some(user) => self.enforcer.authorize(request, user, control, now),
            None => {
                log::debug!("no User-Name: nothing to look up");
                Answer::rcode(Rcode::Noop)
            }
        };
        crate::metrics::global().authorize.inc(&[a.rcode.as_str()]);
        a
    }

    /// `session`: the user's open sessions in the module's table (stale ones, silent
    /// for `stale_after`, excluded) for the server's Simultaneous-Use check.
    pub fn open_sessions(&self, username: Option<&str>, now: i64) -> (Rcode, Option<u64>) {
        let Some(user) = username.filter(|u| !u.is_empty()) else {
            return (Rcode::Noop, None);
        };
        match self.store.open_sessions(user, now, self.config.stale_after) {
            Ok(n) => {
                log::debug!("{user:?}: {n} open session(s) for Simultaneous-Use");
                (Rcode::Ok, Some(n))
            }
            Err(e) => {
                log::error!("cannot count the open sessions of {user:?}: {e}");
                (Rcode::Fail, None)
            }
        }
    }

    /// Enforces the user's limits: reject with Reply-Message, or the remaining
    /// allowance as reply attributes.
    /// Then the user's policy: reject with why, or its reply attributes; the reply
    /// ends with exactly one Session-Timeout, the smallest of the reply's own, the
    /// capping allowance and the policy's bounds (timeout, schedule window, quotas).
    /// Then the user's state and services: the login is recorded (`user_auth`),
    /// waiting services start and go into the reply with the operator's rate.
    /// `existing_rate`: the reply's Mikrotik-Rate-Limit before this module's.
    pub fn post_auth(
        &self,
        request: u32,
        login: &Login<'_>,
        control: &RawLimits,
        existing_session_timeout: Option<u32>,
        existing_rate: Option<&str>,
    ) -> Answer {
        let a = self.post_auth_answer(
            request,
            login,
            control,
            existing_session_timeout,
            existing_rate,
        );
        crate::metrics::global().post_auth.inc(&[a.rcode.as_str()]);
        a
    }

    fn post_auth_answer(
        &self,
        request: u32,
        login: &Login<'_>,
        control: &RawLimits,
        existing_session_timeout: Option<u32>,
        existing_rate: Option<&str>,
    ) -> Answer {
        if login.user.is_empty() {
            return Answer::rcode(Rcode::Noop);
        }
        // After the password check: a blocked or deleted account is not revealed
        // to a wrong password.
        let view = match self.states.view(login.user, login.nas_ip.as_deref()) {
            Ok(v) => v,
            Err(e) => {
                log::error!("cannot read the state of {:?}: {e}", login.user);
                return Answer::rcode(Rcode::Fail);
            }
        };
        if let Some(why) = view.refusal() {
            log::info!("{:?}: {why}: rejected", login.user);
            let mut r = Answer::rcode(Rcode::Reject);
            r.reply.push(("Reply-Message".into(), why.into()));
            return r;
        }
        let mut a = self.post_auth_limits(request, login, control, existing_session_timeout);
        if matches!(a.rcode, Rcode::Reject | Rcode::Fail) {
            return a;
        }
        let policy_rate = a
            .reply
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(a.extra.iter().map(|(n, v, _)| (n.as_str(), v.as_str())))
            .filter(|(n, _)| n.eq_ignore_ascii_case("Mikrotik-Rate-Limit"))
            .map(|(_, v)| v.to_string())
            .next_back();
        let rate = policy_rate.as_deref().or(existing_rate);
        match self.states.login(login.user, view, rate, login.now) {
            Ok(extra) => {
                for (name, value, op) in extra.reply {
                    if op == ":=" {
                        a.reply.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
                        a.extra.retain(|(n, _, _)| !n.eq_ignore_ascii_case(&name));
                        a.reply.push((name, value));
                    } else {
                        a.extra.push((name, value, op.to_string()));
                    }
                    if a.rcode != Rcode::Updated {
                        a.rcode = Rcode::Updated;
                    }
                }
            }
            // The login stands; its bookkeeping is retried by the states job.
            Err(e) => log::error!("{:?}: login state not recorded: {e}", login.user),
        }
        a
    }

    fn post_auth_limits(
        &self,
        request: u32,
        login: &Login<'_>,
        control: &RawLimits,
        existing_session_timeout: Option<u32>,
    ) -> Answer {
        let user = login.user;
        if user.is_empty() {
            return Answer::rcode(Rcode::Noop);
        }
        let mut a =
            self.enforcer
                .post_auth(request, user, control, existing_session_timeout, login.now);
        let exhausted = a.rcode == Rcode::Reject && a.exhausted;
        if matches!(a.rcode, Rcode::Reject | Rcode::Fail) && !exhausted {
            return a;
        }
        let grant = match self.policies.post_auth(login, exhausted) {
            Ok(Verdict::None) => return a,
            Ok(Verdict::Reject(message)) => {
                let mut r = Answer::rcode(Rcode::Reject);
                r.reply.push(("Reply-Message".into(), message));
                return r;
            }
            Ok(Verdict::Accept(g)) => g,
            Err(e) => {
                log::error!("policy check for {user:?} failed: {e}");
                return Answer::rcode(Rcode::Fail);
            }
        };
        let capping_st = a
            .reply
            .iter()
            .find(|(n, _)| n == "Session-Timeout")
            .and_then(|(_, v)| v.parse::<u32>().ok());
        let st = [existing_session_timeout, capping_st, grant.session_timeout]
            .into_iter()
            .flatten()
            .min();
        if exhausted {
            log::info!("{user:?}: allowance used up, let in by the policy's on-exhausted");
        }
        a.reply.retain(|(n, _)| n != "Session-Timeout");
        if let Some(st) = st {
            a.reply.push(("Session-Timeout".into(), st.to_string()));
        }
        for (name, value, op) in grant.reply {
            if op == ":=" {
                a.reply.push((name, value));
            } else {
                a.extra.push((name, value, op));
            }
        }
        a.rcode = Rcode::Updated;
        a
    }

    /// `%{rust:KEY}`: a capping value of the request's user.
    pub fn xlat(
        &self,
        key: &str,
        username: Option<&str>,
        control: &RawLimits,
        now: i64,
    ) -> Result<String, String> {
        let user = username
            .filter(|u| !u.is_empty())
            .ok_or("the request has no User-Name")?;
        self.enforcer.xlat(key, user, control, now)
    }

    /// Stops the background thread and the store's writer; called at detach.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(mut bg) = self.background.take() {
            bg.stop();
        }
        if let Some(mut bg) = self.hooks.take() {
            bg.stop();
        }
        self.store.shutdown();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}
