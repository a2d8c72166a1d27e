//! One configured `rust { ... }` instance in plain Rust: its config, store and
//! background thread, and what each server callback decides. The FFI layer only
//! converts C data to these calls and the [`Rcode`] back.
use crate::accounting::{self, Skip};
use crate::attrs::Attrs;
use crate::background::{Background, Job};
use crate::bulk::AutoBulk;
use crate::config::Config;
use crate::disconnect::{ClientSecrets, QueueWorker, WorkerConfig};
use crate::periods;
use crate::store::{OpenState, SessionFilter, Store, StoreOptions};
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

/// Control attributes authorize sets for unlang (see dictionary.rust).
pub const OPEN_SESSIONS_ATTR: &str = "Rust-Open-Sessions";
pub const MONTH_TRAFFIC_ATTR: &str = "Rust-Month-Traffic";
pub const MONTH_UPTIME_ATTR: &str = "Rust-Month-Uptime";

pub struct Instance {
    pub name: String,
    pub config: Config,
    store: Store,
    background: Option<Background>,
    /// Client secrets by NAS IP, for Disconnect-Requests to NASes without their own.
    secrets: ClientSecrets,
    /// Tells the disconnect jobs to end their network waits early at detach.
    stopping: Arc<AtomicBool>,
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
    /// Opens the store and starts the background thread.
    pub fn start(name: String, config: Config) -> Result<Self, String> {
        let opts = StoreOptions {
            timezone: config.timezone,
            synchronous: config.synchronous,
            month_boundary_disconnect: config.disconnect_prior_month,
            ..Default::default()
        };
        let store = Store::open(&config.db, opts)
            .map_err(|e| format!("option 'db' = \"{}\": {e}", config.db.display()))?;
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        if config.stale_after > 0 {
            jobs.push(Box::new(StaleSessions {
                store: store.clone(),
                stale_after: config.stale_after,
            }));
        }
        let secrets = ClientSecrets::default();
        let stopping = Arc::new(AtomicBool::new(false));
        if config.bulk_disconnect {
            jobs.push(Box::new(AutoBulk::new(
                config.db.clone(),
                config.timezone,
                config.bulk_disconnect_delay,
                Arc::clone(&stopping),
            )));
        }
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
        let background = Background::spawn(Duration::from_secs(config.background_interval), jobs)
            .map_err(|e| format!("cannot start the background thread: {e}"))?;
        log::info!(
            "instance {name}: db {}, timezone {}, stale_after {}s, synchronous {:?}",
            config.db.display(),
            config.timezone,
            config.stale_after,
            config.synchronous
        );
        Ok(Instance {
            name,
            config,
            store,
            background: Some(background),
            secrets,
            stopping,
        })
    }

    /// Records one Accounting-Request; returns only once it is committed.
    pub fn accounting(
        &self,
        attrs: &impl Attrs,
        src_ip: Option<IpAddr>,
        received_at: i64,
    ) -> Rcode {
        let update = match accounting::extract(attrs, src_ip, received_at) {
            Ok(u) => u,
            Err(Skip::Untracked(code)) => {
                let code = code.map_or_else(|| "missing".to_string(), |c| c.to_string());
                log::debug!(
                    "Acct-Status-Type {code} is not tracked: acknowledged without recording"
                );
                return Rcode::Ok;
            }
            Err(Skip::Invalid(why)) => {
                log::error!("invalid accounting request: {why}");
                return Rcode::Invalid;
            }
        };
        match self.store.record(update) {
            Ok(outcome) => {
                log::debug!("{outcome}");
                Rcode::Ok
            }
            Err(e) => {
                log::error!(
                    "accounting not recorded, no Accounting-Response so the NAS retransmits: {e}"
                );
                Rcode::Fail
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

    /// What authorize tells unlang about the user: open sessions and this month's usage,
    /// as (attribute, value) pairs for the control list.
    pub fn authorize(
        &self,
        username: Option<&str>,
        now: i64,
    ) -> (Rcode, Vec<(&'static str, String)>) {
        let Some(user) = username.filter(|u| !u.is_empty()) else {
            log::debug!("no User-Name: nothing to look up");
            return (Rcode::Noop, Vec::new());
        };
        let filter = SessionFilter {
            username: Some(user.to_string()),
            state: OpenState::Open,
            ..Default::default()
        };
        let month = periods::local_month(now, self.config.timezone);
        let (open, usage) = match (
            self.store.list_sessions(&filter),
            self.store.month_usage(user, month),
        ) {
            (Ok(open), Ok(usage)) => (open.len(), usage),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("cannot read the store for {user:?}: {e}");
                return (Rcode::Fail, Vec::new());
            }
        };
        log::debug!(
            "{user:?}: {open} open session(s); {} this month: {} bytes, {} s",
            periods::month_key(month),
            usage.total_octets(),
            usage.session_time
        );
        let attrs = vec![
            (OPEN_SESSIONS_ATTR, open.to_string()),
            (MONTH_TRAFFIC_ATTR, usage.total_octets().to_string()),
            (MONTH_UPTIME_ATTR, usage.session_time.to_string()),
        ];
        (Rcode::Updated, attrs)
    }

    /// Stops the background thread and the store's writer; called at detach.
    pub fn stop(&mut self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Some(mut bg) = self.background.take() {
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
