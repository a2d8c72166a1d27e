//! The background job of rate modulation and exhausted-user throttling: it runs on the
//! module's background thread, never on a freeRADIUS worker thread.
//!
//! Each tick it
//! 1. recomputes the rate of every open session of a user whose stored policy
//!    modulates ([`crate::policies::modulation::rates`], the NAS's time zone) and,
//!    where it differs from what the session last got (its last CoA, else what the
//!    login was given), queues a `modulation` CoA in `coa_queue`; so a rate changes
//!    at the activation / deactivation hours and when traffic moves it a step;
//! 2. sends every pending CoA-Request (those and the `exhausted` ones the writer
//!    queued in accounting) pipelined over one socket, signed like the disconnect
//!    worker's Disconnect-Requests (the NAS row's secret, else the RADIUS client's);
//!    CoA-ACK: the row keeps the rate as what the session has; CoA-NAK or no answer:
//!    the session is queued for disconnection (the user logs in again and gets the
//!    rate at login), in the same transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;

use crate::background::Job;
use crate::coa::{self, DmClient};
use crate::disconnect::{dm_target, ClientSecrets};
use crate::periods;
use crate::policies::modulation::{rates, Source, Traffic};
use crate::policies::{parts, Policy};
use crate::radius::attrs::{self, Attribute};
use crate::store::{
    Admin, CoaJob, CoaOutcome, CoaPurpose, ModulatedSession, NasRow, NewCoaJob, NewDisconnectJob,
};

/// Hour buckets are kept this long (the longest window is a month).
const KEEP_HOURS_SECS: i64 = 32 * 86_400;
/// A login recorded this long before a session's start is taken as that session's.
const LOGIN_SLACK_SECS: i64 = 300;

#[derive(Debug, Clone)]
pub struct RateCoaConfig {
    pub db: std::path::PathBuf,
    /// The module's time zone (usage_month; NASes without their own zone).
    pub tz: Tz,
    pub timeout: Duration,
    pub retries: u32,
    pub batch: usize,
    /// For the user_rate_set events of the rate changes.
    pub hooks: crate::config::Hooks,
}

pub struct RateCoa {
    cfg: RateCoaConfig,
    secrets: ClientSecrets,
    stop: Arc<AtomicBool>,
    admin: Option<Admin>,
    client: Option<DmClient>,
    last_purge: i64,
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunReport {
    pub sessions: usize,
    pub changed: usize,
    pub sent: usize,
    pub acked: usize,
    pub fallback: usize,
}

/// The rate a session has now, as far as the module knows: its last CoA's, else the
/// login's (when recorded around the session's start). None: unknown (then a CoA
/// with the rate is sent: setting the rate it already has is harmless).
pub fn baseline(s: &ModulatedSession) -> Option<&str> {
    if let Some(sent) = &s.sent {
        return Some(sent);
    }
    match &s.login {
        Some((rate, _, at)) if *at >= s.start_time - LOGIN_SLACK_SECS => rate.as_deref(),
        _ => None,
    }
}

/// The CoA attributes for a job: session identification and the change.
pub fn coa_attributes(j: &CoaJob) -> Vec<Attribute> {
    let mut v = coa::session_identity(
        &j.username,
        &j.acct_session_id,
        j.framed_ip.as_deref(),
        &j.nas_ip,
    );
    let vsa = |t: u8, s: &str| Attribute::vsa(attrs::VENDOR_MIKROTIK, t, s.as_bytes()).ok();
    v.extend(
        j.rate_limit
            .as_deref()
            .and_then(|r| vsa(attrs::MIKROTIK_RATE_LIMIT, r)),
    );
    v.extend(
        j.address_list
            .as_deref()
            .and_then(|l| vsa(attrs::MIKROTIK_ADDRESS_LIST, l)),
    );
    v
}

/// What to record for a CoA's result: `failure` as [`coa::coa_failure`] gives it (or
/// why it could not even be sent); None: acknowledged.
pub fn outcome(j: &CoaJob, failure: Option<(String, Option<u32>)>) -> CoaOutcome {
    let Some(error) = failure else {
        return CoaOutcome::Acked;
    };
    let change = match (j.rate_limit.as_deref(), j.address_list.as_deref()) {
        (Some(r), _) => format!("rate {r}"),
        (None, Some(l)) => format!("address list {l}"),
        (None, None) => "change".to_string(),
    };
    let reason = match j.purpose.as_str() {
        "exhausted" => format!("{}; {change} not applied: {}", j.reason, error.0),
        _ => format!("rate change: {change} not applied: {}", error.0),
    };
    CoaOutcome::Fallback {
        error: error.0,
        error_cause: error.1,
        disconnect: NewDisconnectJob {
            nas_ip: j.nas_ip.clone(),
            session_key: j.session_key.clone(),
            username: j.username.clone(),
            acct_session_id: j.acct_session_id.clone(),
            framed_ip: j.framed_ip.clone(),
            session_start: j.session_start,
            reason,
        },
    }
}

impl RateCoa {
    pub fn new(cfg: RateCoaConfig, secrets: ClientSecrets, stop: Arc<AtomicBool>) -> Self {
        RateCoa {
            cfg,
            secrets,
            stop,
            admin: None,
            client: None,
            last_purge: 0,
        }
    }

    pub fn run_at(&mut self, now: i64) -> Result<RunReport, String> {
        let admin = match self.admin.take() {
            Some(a) => a,
            None => Admin::open(&self.cfg.db).map_err(|e| e.to_string())?,
        };
        let r = self.run_with(&admin, now);
        self.admin = Some(admin);
        r
    }

    fn run_with(&mut self, admin: &Admin, now: i64) -> Result<RunReport, String> {
        let e = |e: crate::store::StoreError| e.to_string();
        let mut report = RunReport::default();
        if now - self.last_purge >= 3600 {
            admin.purge_hours(now - KEEP_HOURS_SECS).map_err(e)?;
            self.last_purge = now;
        }
        let sessions = admin.modulated_sessions().map_err(e)?;
        report.sessions = sessions.len();
        let mut policies: HashMap<String, Option<Policy>> = HashMap::new();
        let mut nases: HashMap<String, Option<NasRow>> = HashMap::new();
        let mut traffic: HashMap<(String, String), Traffic> = HashMap::new();
        for s in sessions.iter().filter(|s| !s.hands_off) {
            if s.login.as_ref().is_some_and(|(_, throttled, at)| {
                *throttled && *at >= s.start_time - LOGIN_SLACK_SECS
            }) {
                continue;
            }
            let policy = policies.entry(s.policy.clone()).or_insert_with(|| {
                let def = admin.policy_get(&s.policy).ok().flatten()?;
                let (raw, check, reply) = parts(&def);
                Policy::parse(&raw, check, reply)
                    .map_err(|e| log::error!("rate modulation: policy {:?}: {e}", s.policy))
                    .ok()
            });
            let Some(policy) = policy.as_ref() else {
                continue;
            };
            let Some(m) = &policy.modulation else {
                continue;
            };
            let nas = nases
                .entry(s.nas_ip.clone())
                .or_insert_with(|| admin.nas_get(&s.nas_ip).ok().flatten());
            // Mikrotik-Rate-Limit is RouterOS's: other NASes keep their login rate.
            let kind = nas.as_ref().map(|n| n.config.nas_type.as_str());
            if crate::policies::login::NasKind::of(kind)
                != crate::policies::login::NasKind::Mikrotik
            {
                continue;
            }
            let tz = nas
                .as_ref()
                .and_then(|n| n.config.timezone.as_deref())
                .and_then(|z| crate::config::parse_timezone(z).ok())
                .unwrap_or(self.cfg.tz);
            let key = (s.username.clone(), s.nas_ip.clone());
            let used = match traffic.get(&key) {
                Some(t) => *t,
                None => {
                    let t = match m.source(now, periods::month_start(now, tz)) {
                        Source::Month => {
                            let u = admin
                                .month_usage(&s.username, periods::local_month(now, self.cfg.tz))
                                .map_err(e)?;
                            Traffic {
                                down: u.output_octets,
                                up: u.input_octets,
                            }
                        }
                        Source::HoursSince(since) => {
                            m.sum_hours(&admin.hour_usage(&s.username, since).map_err(e)?, tz)
                        }
                    };
                    traffic.insert(key, t);
                    t
                }
            };
            let Some(r) = rates(policy, used, now, tz) else {
                continue;
            };
            let new = r.mikrotik();
            let old = baseline(s);
            if old == Some(new.as_str()) {
                continue;
            }
            let job = NewCoaJob {
                session: NewDisconnectJob {
                    nas_ip: s.nas_ip.clone(),
                    session_key: s.session_key.clone(),
                    username: s.username.clone(),
                    acct_session_id: s.acct_session_id.clone(),
                    framed_ip: s.framed_ip.clone(),
                    session_start: s.start_time,
                    reason: String::new(),
                },
                purpose: CoaPurpose::Modulation,
                rate_limit: Some(new.clone()),
                address_list: None,
            };
            let reason = format!("rate change: {} -> {new}", old.unwrap_or("unknown"));
            log::info!(
                "rate modulation: {:?} on {} ({}): {reason}",
                s.username,
                s.nas_ip,
                s.session_key
            );
            admin.coa_enqueue(&job, &reason, now).map_err(e)?;
            report.changed += 1;
            let change = crate::states::worker::Change::new(
                crate::states::Input::RateChanged { rate: Some(new) },
                crate::states::Source::Policy,
                now,
            );
            if let Err(err) =
                crate::states::worker::apply(admin, &self.cfg.hooks, &s.username, &change)
            {
                log::error!("{:?}: user_rate_set not recorded: {err}", s.username);
            }
        }
        self.send_pending(admin, now, &mut nases, &mut report)?;
        Ok(report)
    }

    fn send_pending(
        &mut self,
        admin: &Admin,
        now: i64,
        nases: &mut HashMap<String, Option<NasRow>>,
        report: &mut RunReport,
    ) -> Result<(), String> {
        let e = |e: crate::store::StoreError| e.to_string();
        let jobs = admin
            .coa_claim(now, self.cfg.batch.max(1), crate::store::Lease::current())
            .map_err(e)?;
        if jobs.is_empty() {
            return Ok(());
        }
        let mut marks: Vec<(i64, CoaOutcome)> = Vec::new();
        let mut requests = Vec::new();
        let mut sent: Vec<&CoaJob> = Vec::new();
        for j in &jobs {
            if !admin.session_open(&j.nas_ip, &j.session_key).map_err(e)? {
                marks.push((j.id, CoaOutcome::Gone));
                continue;
            }
            let nas = nases
                .entry(j.nas_ip.clone())
                .or_insert_with(|| admin.nas_get(&j.nas_ip).ok().flatten());
            match dm_target(&j.nas_ip, nas.as_ref().map(|n| &n.config), &self.secrets) {
                Ok((target, secret)) => {
                    requests.push(coa::Job::coa(target, secret.as_bytes(), coa_attributes(j)));
                    sent.push(j);
                }
                Err(why) => marks.push((j.id, outcome(j, Some((why, None))))),
            }
        }
        if !requests.is_empty() && !self.stop.load(Ordering::Relaxed) {
            let client = coa::client_in(&mut self.client, self.cfg.timeout, self.cfg.retries)?;
            report.sent += requests.len();
            for (j, r) in sent.iter().zip(client.send_many(requests)) {
                let o = outcome(j, coa::coa_failure(&r));
                match &o {
                    CoaOutcome::Acked => log::info!(
                        "CoA: {:?} on {} ({}): CoA-ACK",
                        j.username,
                        j.nas_ip,
                        j.reason
                    ),
                    CoaOutcome::Fallback { error, .. } => log::warn!(
                        "CoA: {:?} on {} ({}): {error}; queued for disconnection",
                        j.username,
                        j.nas_ip,
                        j.reason
                    ),
                    CoaOutcome::Gone => {}
                }
                marks.push((j.id, o));
            }
        }
        report.acked += marks
            .iter()
            .filter(|(_, o)| *o == CoaOutcome::Acked)
            .count();
        report.fallback += marks
            .iter()
            .filter(|(_, o)| matches!(o, CoaOutcome::Fallback { .. }))
            .count();
        admin.coa_mark_many(&marks, now).map_err(e)
    }
}

impl Job for RateCoa {
    fn name(&self) -> &'static str {
        "rate modulation and CoA"
    }

    fn run(&mut self) -> Result<(), String> {
        match self.run_at(periods::now()) {
            Ok(r) => {
                if r.sent > 0 {
                    log::info!(
                        "CoA: {} sent: {} acked, {} queued for disconnection ({} rate \
                         change(s) among {} modulated session(s))",
                        r.sent,
                        r.acked,
                        r.fallback,
                        r.changed,
                        r.sessions
                    );
                }
                Ok(())
            }
            Err(e) => {
                // Reopen next time: the database may have been replaced or locked.
                self.admin = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[path = "rate_coa_tests.rs"]
mod tests;
