//! The request-path side of states and services: refusing blocked and deleted
//! users at authorize, and at post-auth recording the login (`user_auth`),
//! starting the user's waiting services and putting them (and the operator's rate)
//! into the Access-Accept. Only local reads and the store's writer: nothing here
//! waits on the network.

use super::worker::{apply, rate_with, Change};
use super::{Input, Source};
use crate::config::Hooks;
use crate::services::{self, NasFamily};
use crate::store::{PresenceMark, ServiceChange, Store, StoreError};

pub struct StateEnforcer {
    store: Store,
    hooks: Hooks,
    /// A login whose session has not started this long after counts as logged out.
    login_grace: i64,
}

/// What the Access-Accept gets from the user's state and services.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoginReply {
    /// (attribute, value, operator).
    pub reply: Vec<(String, String, &'static str)>,
}

impl StateEnforcer {
    pub fn new(store: Store, hooks: Hooks, login_grace: i64) -> Self {
        StateEnforcer {
            store,
            hooks,
            login_grace,
        }
    }

    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// authorize: why the user may not log in now (blocked by its owner, deleted).
    pub fn refusal(&self, user: &str) -> Result<Option<&'static str>, StoreError> {
        Ok(self.store.subscriber(user)?.and_then(|s| {
            if s.state.deleted {
                Some("Account deleted")
            } else if s.state.blocked {
                Some("Account blocked at the owner's request")
            } else {
                None
            }
        }))
    }

    /// post-auth of an Access-Accept. `nas_type`: the NAS row's type (None: no
    /// row); `reply_rate`: the Mikrotik-Rate-Limit the reply has so far (users
    /// file, policy).
    pub fn login(
        &self,
        user: &str,
        nas_type: Option<&str>,
        reply_rate: Option<&str>,
        now: i64,
    ) -> Result<LoginReply, StoreError> {
        let st: &Store = &self.store;
        let family = NasFamily::of(nas_type);
        let sub = st.subscriber(user)?;
        let rows = st.user_services(Some(user))?;
        let active: Vec<String> = rows
            .iter()
            .filter(|r| r.state == "active")
            .map(|r| r.service.clone())
            .collect();
        let starting: Vec<(String, bool)> = rows
            .iter()
            .filter(|r| r.state == "waiting" || (r.state == "ended" && r.persistent))
            .map(|r| (r.service.clone(), r.persistent))
            .collect();
        let logged_in = sub.as_ref().is_some_and(|s| s.state.logged_in);
        let override_rate = sub.as_ref().and_then(|s| s.state.rate_override.clone());
        let base_changed = sub.as_ref().map(|s| s.state.base_rate.as_deref()) != Some(reply_rate);
        if logged_in
            && starting.is_empty()
            && active.is_empty()
            && override_rate.is_none()
            && !base_changed
        {
            return Ok(LoginReply::default());
        }
        let mut running = active.clone();
        running.extend(starting.iter().map(|(s, _)| s.clone()));
        let mut state_now = sub.as_ref().map(|s| s.state.clone()).unwrap_or_default();
        state_now.base_rate = reply_rate.map(str::to_string);
        let rate = if family == NasFamily::Mikrotik {
            rate_with(st, Some(&state_now), &running)
        } else {
            None
        };
        let mut login = Change::new(
            Input::Login {
                rate: rate.clone(),
                base_rate: reply_rate.map(str::to_string),
            },
            Source::Auth,
            now,
        );
        if !logged_in {
            login.presence = Some(PresenceMark::Recheck(now + self.login_grace));
        }
        apply(st, &self.hooks, user, &login)?;
        // The new session is not open yet: the baseline is the others' output.
        let base_output: u64 = st
            .open_sessions_of(user)?
            .iter()
            .map(|s| s.output_octets)
            .sum();
        let mut started = Vec::new();
        for (service, persistent) in &starting {
            let mut c = Change::new(
                Input::ServiceOn {
                    service: service.clone(),
                    rate_after: rate.clone(),
                },
                Source::Auth,
                now,
            );
            c.services.push(ServiceChange::Activate {
                service: service.clone(),
                persistent: *persistent,
                base_output,
            });
            match apply(st, &self.hooks, user, &c) {
                Ok(o) if !o.events.is_empty() => started.push(service.clone()),
                Ok(_) => {}
                Err(e) => log::error!("{user:?}: service {service} not started at login: {e}"),
            }
        }
        let mut on: Vec<String> = active;
        on.extend(started);
        let defs: Vec<services::Service> = on
            .iter()
            .filter_map(|n| st.service_get(n).ok().flatten())
            .collect();
        let refs: Vec<&services::Service> = defs.iter().collect();
        let mut reply = LoginReply {
            reply: services::accept_attributes(family, &refs),
        };
        // The operator's rate applies where no service sets one.
        if family == NasFamily::Mikrotik && services::service_rate(defs.iter()).is_none() {
            if let Some(r) = &override_rate {
                reply
                    .reply
                    .push(("Mikrotik-Rate-Limit".into(), r.clone(), ":="));
            }
        }
        Ok(reply)
    }

    /// accounting: the user's capping allowance (or a policy quota) is used up.
    pub fn limit_reached(&self, user: &str, source: Source, now: i64) {
        let redirected = self
            .store
            .subscriber(user)
            .ok()
            .flatten()
            .is_some_and(|s| s.state.redirected);
        if redirected {
            return;
        }
        let c = Change::new(Input::LimitReached, source, now);
        if let Err(e) = apply(&self.store, &self.hooks, user, &c) {
            log::error!("{user:?}: the limit-reached state was not recorded: {e}");
        }
    }
}
