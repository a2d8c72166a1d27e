//! Product policies at the module's hooks: the user's policy (control list over the
//! store, per field), the facts its rules need (open sessions, devices, today's and
//! this month's usage, the NAS's kind and time zone), and the decision turned into
//! what post-auth answers. The rules are in [`crate::policies`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono_tz::Tz;

use crate::login_memory::LoginMemory;
use crate::periods;
use crate::policies::login::{decide, Grant, LoginDecision, LoginFacts, NasKind};
use crate::policies::modulation::{OnExhausted, Source, Traffic};
use crate::policies::quota::{quota_part, QUOTA_FIELDS};
use crate::policies::{parts, Policy, PolicyError, Quotas, RawPolicy};
use crate::store::{LoginQuery, PolicyDef, Store, StoreError};

/// Reply-Message for a user whose policy fields are invalid. Details go to the log.
pub const INVALID_POLICY_MESSAGE: &str = "Account policy is misconfigured; contact support";

/// One login as post-auth sees it.
pub struct Login<'a> {
    pub user: &'a str,
    /// `Rust-Policy-*` attributes of the control list.
    pub control: &'a RawPolicy,
    pub calling_station_id: Option<&'a str>,
    /// NAS-IP-Address, else the packet's source.
    pub nas_ip: Option<String>,
    pub now: i64,
    pub request_value: &'a dyn Fn(&str) -> Option<String>,
}

/// What the policy says about a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No policy for this user.
    None,
    Reject(String),
    Accept(Grant),
}

pub struct PolicyEnforcer {
    store: Store,
    tz: Tz,
    stale_after: u64,
    /// Quota fields of the control list at the user's last login, for accounting.
    seen: LoginMemory<RawPolicy>,
    /// Stored policies parsed, at one store revision: a login then reads one number
    /// instead of the definition, and parses nothing (schedule, rates, attributes).
    parsed: RwLock<Parsed>,
}

#[derive(Default)]
struct Parsed {
    /// The store's policy revision these were read at.
    revision: i64,
    by_name: HashMap<String, Arc<Stored>>,
}

/// One stored policy as read, and parsed.
struct Stored {
    def: PolicyDef,
    policy: Result<Arc<Policy>, PolicyError>,
    has_quotas: bool,
}

/// Most parsed policies kept (there are a few in practice; beyond, start over).
const PARSED_POLICIES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PolicyCheckError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl PolicyEnforcer {
    pub fn new(store: Store, tz: Tz, stale_after: u64) -> Self {
        let seen = LoginMemory::with_store(store.clone(), crate::store::ControlKind::Policy);
        PolicyEnforcer {
            store,
            tz,
            stale_after,
            seen,
            parsed: RwLock::default(),
        }
    }

    /// The policy `name` parsed at store revision `rev`, if kept.
    fn cached(&self, rev: i64, name: &str) -> Option<Arc<Stored>> {
        let c = self.parsed.read().unwrap_or_else(|p| p.into_inner());
        (c.revision == rev).then(|| c.by_name.get(name).cloned())?
    }

    /// Parses a definition read at revision `rev` and keeps it (a newer revision
    /// drops everything kept before).
    fn keep(&self, rev: i64, def: PolicyDef) -> Arc<Stored> {
        let (raw, check, reply) = parts(&def);
        let policy = Policy::parse(&raw, check, reply).map(Arc::new);
        let has_quotas = policy.as_ref().is_ok_and(|p| !Quotas::of(p).is_unlimited());
        let s = Arc::new(Stored {
            def,
            policy,
            has_quotas,
        });
        let mut c = self.parsed.write().unwrap_or_else(|p| p.into_inner());
        if c.revision != rev || c.by_name.len() >= PARSED_POLICIES {
            c.by_name.clear();
            c.revision = rev;
        }
        c.by_name.insert(s.def.name.clone(), Arc::clone(&s));
        s
    }

    /// accounting: the quota fields of the control list for the user's update (the
    /// request's, else those of the user's last login); the writer takes the stored
    /// policy's for the rest.
    pub fn acct_quota_control(&self, user: &str, control: &RawPolicy) -> RawPolicy {
        self.seen.control_part(user, &quota_part(control), false)
    }

    /// post-auth: decides for an authenticated user. A user without a policy in the
    /// store or the control list costs one indexed read. `exhausted`: capping
    /// rejected the user as out of allowance; only a throttle or redirect policy
    /// lets them in then (else [`Verdict::None`]: capping's reject stands).
    pub fn post_auth(&self, l: &Login<'_>, exhausted: bool) -> Result<Verdict, PolicyCheckError> {
        self.seen.control_part(l.user, &quota_part(l.control), true);
        let control_quotas = QUOTA_FIELDS.iter().any(|f| l.control.get(*f).is_some());
        // The kept policy the store was told about, so it is looked up once.
        let hit: RefCell<Option<Arc<Stored>>> = RefCell::new(None);
        let view = self.store.login(&LoginQuery {
            username: l.user,
            csid: l.calling_station_id,
            now: l.now,
            stale_after_secs: self.stale_after,
            // Control-list fields (max devices, concurrency) need the counts too.
            always_count: !l.control.is_empty(),
            nas_ip: l.nas_ip.as_deref(),
            tz: self.tz,
            control_quotas,
            parsed: &|name, rev| {
                let s = self.cached(rev, name);
                let has_quotas = s.as_ref().map(|s| s.has_quotas);
                *hit.borrow_mut() = s;
                has_quotas
            },
        })?;
        let stored = match (&view.policy, &view.policy_name) {
            (Some(def), _) => Some(self.keep(view.revision, def.clone())),
            (None, Some(name)) => match hit.take().or_else(|| self.cached(view.revision, name)) {
                Some(s) => Some(s),
                // Another login met a newer revision in between: read it now.
                None => self
                    .store
                    .policy_get(name)?
                    .map(|def| self.keep(view.revision, def)),
            },
            (None, None) => None,
        };
        let empty = stored.as_ref().map_or(true, |s| {
            s.def.fields.is_empty() && s.def.check.is_empty() && s.def.reply.is_empty()
        });
        if empty && l.control.is_empty() {
            return Ok(Verdict::None);
        }
        let parsed = match stored {
            // The stored policy alone: parsed once per revision.
            Some(s) if l.control.is_empty() => s.policy.clone(),
            s => {
                let (raw, check, reply) = match &s {
                    Some(s) => parts(&s.def),
                    None => (RawPolicy::new(), Vec::new(), Vec::new()),
                };
                // The control list wins per field (users, radcheck, LDAP, unlang).
                let mut merged = l.control.clone();
                merged.fill_from(&raw);
                Policy::parse(&merged, check, reply).map(Arc::new)
            }
        };
        let policy = match parsed {
            Ok(p) => p,
            Err(e) => {
                log::error!("{:?}: {e}; rejecting", l.user);
                return Ok(Verdict::Reject(INVALID_POLICY_MESSAGE.to_string()));
            }
        };
        if exhausted && policy.on_exhausted == OnExhausted::Disconnect {
            return Ok(Verdict::None);
        }
        let nas = view.nas;
        let nas_tz = nas
            .as_ref()
            .and_then(|n| n.config.timezone.as_deref())
            .and_then(|z| crate::config::parse_timezone(z).ok())
            .unwrap_or(self.tz);
        let traffic = match &policy.modulation {
            None => Traffic::default(),
            Some(m) => match m.source(l.now, periods::month_start(l.now, nas_tz)) {
                Source::Month => {
                    let u = self
                        .store
                        .month_usage(l.user, periods::local_month(l.now, self.tz))?;
                    Traffic {
                        down: u.output_octets,
                        up: u.input_octets,
                    }
                }
                Source::HoursSince(since) => {
                    m.sum_hours(&self.store.hour_usage(l.user, since)?, nas_tz)
                }
            },
        };
        let facts = LoginFacts {
            now: l.now,
            nas_tz,
            nas_kind: NasKind::of(nas.as_ref().map(|n| n.config.nas_type.as_str())),
            open_sessions: view.open_sessions,
            devices: view.devices,
            device_known: l.calling_station_id.map(|_| view.device_known),
            day: view.day,
            month: view.month,
            request_value: l.request_value,
            traffic,
            exhausted,
        };
        match decide(&policy, &facts) {
            LoginDecision::Reject { message, why } => {
                log::info!("{:?} rejected by policy: {message} ({why})", l.user);
                Ok(Verdict::Reject(message.to_string()))
            }
            LoginDecision::Accept(g) => {
                for n in &g.notes {
                    log::debug!("{:?}: policy: {n}", l.user);
                }
                if let (true, Some(csid)) = (g.new_device, l.calling_station_id) {
                    // Counted even if the login fails later in post-auth: the device
                    // was used with the user's credentials.
                    self.store.record_device(l.user, csid, l.now)?;
                }
                if let (true, Some(nas_ip)) =
                    (policy.modulation.is_some() || g.throttled, &l.nas_ip)
                {
                    // The background job's baseline for this login's session.
                    self.store.record_login_rate(
                        l.user,
                        nas_ip,
                        g.rate_limit.as_deref(),
                        g.throttled,
                        l.now,
                    )?;
                }
                Ok(Verdict::Accept(g))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    fn no_attrs(_: &str) -> Option<String> {
        None
    }

    fn login<'a>(user: &'a str, control: &'a RawPolicy, now: i64) -> Login<'a> {
        Login {
            user,
            control,
            calling_station_id: None,
            nas_ip: None,
            now,
            request_value: &no_attrs,
        }
    }

    fn rate(v: Verdict) -> Option<String> {
        match v {
            Verdict::Accept(g) => g
                .reply
                .into_iter()
                .find(|r| r.0 == "Mikrotik-Rate-Limit")
                .map(|r| r.1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_edited_policy_is_seen_at_the_next_login_and_the_control_list_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("db"), StoreOptions::default()).unwrap();
        let put = |down: &str| {
            store
                .policy_put(PolicyDef {
                    name: "p".into(),
                    fields: vec![("rate-down".into(), down.into())],
                    ..PolicyDef::default()
                })
                .unwrap()
        };
        put("1M");
        store.policy_assign("u", Some("p"), 0).unwrap();
        let e = PolicyEnforcer::new(store.clone(), chrono_tz::UTC, 0);
        let none = RawPolicy::new();
        let now = 1_796_040_000;
        assert_eq!(
            rate(e.post_auth(&login("u", &none, now), false).unwrap()).as_deref(),
            Some("0/1M")
        );
        assert_eq!(
            rate(e.post_auth(&login("u", &none, now), false).unwrap()).as_deref(),
            Some("0/1M")
        );
        put("2M");
        assert_eq!(
            rate(e.post_auth(&login("u", &none, now), false).unwrap()).as_deref(),
            Some("0/2M")
        );
        let mut control = RawPolicy::new();
        control.insert("Rust-Policy-Rate-Down", "5M");
        assert_eq!(
            rate(e.post_auth(&login("u", &control, now), false).unwrap()).as_deref(),
            Some("0/5M")
        );
        // A bad value written around the CLI rejects (and is not cached as good).
        rusqlite::Connection::open(dir.path().join("db"))
            .unwrap()
            .execute("UPDATE policy_fields SET value = 'fast'", [])
            .unwrap();
        assert_eq!(
            e.post_auth(&login("u", &none, now), false).unwrap(),
            Verdict::Reject(INVALID_POLICY_MESSAGE.into())
        );
        // No policy at all: nothing to say.
        assert_eq!(
            e.post_auth(&login("x", &none, now), false).unwrap(),
            Verdict::None
        );
    }
}
