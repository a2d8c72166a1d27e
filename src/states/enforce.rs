//! The request-path side of states and services: refusing blocked and deleted
//! users at authorize, and at post-auth recording the login (`user_auth`),
//! starting the user's waiting services and putting them (and the operator's rate)
//! into the Access-Accept. Only local reads and the store's writer: nothing here
//! waits on the network.

use super::worker::{apply, log_events, prepare, Change};
use super::{Input, Source};
use crate::config::Hooks;
use crate::services::{self, NasFamily};
use crate::store::{PresenceMark, ServiceChange, Store, StoreError, SubscriberRow, UserServiceRow};

/// The redirected users in memory, shared with the states job.
pub type Redirected = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

pub struct StateEnforcer {
    store: Store,
    /// Users redirected (over their capping allowance), as last recorded; the
    /// states job brings it in line with the store every tick.
    redirected: Redirected,
    hooks: Hooks,
    /// A login whose session has not started this long after counts as logged out.
    login_grace: i64,
}

/// The user's state as a login sees it.
#[derive(Debug, Clone, Default)]
pub struct LoginView {
    pub subscriber: Option<SubscriberRow>,
    pub services: Vec<UserServiceRow>,
    /// The NAS row's type (None: no row).
    pub nas_type: Option<String>,
}

impl LoginView {
    /// Why the user may not log in now (deleted, blocked by its owner).
    pub fn refusal(&self) -> Option<&'static str> {
        let s = &self.subscriber.as_ref()?.state;
        if s.deleted {
            Some("Account deleted")
        } else if s.blocked {
            Some("Account blocked at the owner's request")
        } else {
            None
        }
    }
}

/// What the Access-Accept gets from the user's state and services.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoginReply {
    /// (attribute, value, operator).
    pub reply: Vec<(String, String, &'static str)>,
}

impl StateEnforcer {
    pub fn new(store: Store, hooks: Hooks, login_grace: i64, redirected: Redirected) -> Self {
        match store.redirected_users() {
            Ok(users) => {
                *redirected.lock().unwrap_or_else(|e| e.into_inner()) = users.into_iter().collect()
            }
            Err(e) => log::error!("cannot read the redirected users: {e}"),
        }
        StateEnforcer {
            redirected,
            store,
            hooks,
            login_grace,
        }
    }

    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// What a login needs of the user's state, in one read.
    pub fn view(&self, user: &str, nas_ip: Option<&str>) -> Result<LoginView, StoreError> {
        let (subscriber, services, nas_type) = self.store.login_view(user, nas_ip)?;
        Ok(LoginView {
            subscriber,
            services,
            nas_type,
        })
    }

    /// post-auth of an Access-Accept, with the [`view`](Self::view) read before;
    /// `reply_rate`: the Mikrotik-Rate-Limit the reply has so far (users
    /// file, policy).
    pub fn login(
        &self,
        user: &str,
        view: LoginView,
        reply_rate: Option<&str>,
        now: i64,
    ) -> Result<LoginReply, StoreError> {
        let st: &Store = &self.store;
        let LoginView {
            subscriber: sub,
            services: rows,
            nas_type,
        } = view;
        let family = NasFamily::of(nas_type.as_deref());
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
        let plain = starting.is_empty() && active.is_empty() && override_rate.is_none();
        if logged_in && plain && !base_changed {
            return Ok(LoginReply::default());
        }
        // The definitions of the services running in this session, read once.
        let defs: Vec<services::Service> = active
            .iter()
            .chain(starting.iter().map(|(s, _)| s))
            .filter_map(|n| st.service_get(n).ok().flatten())
            .collect();
        let rate = match family {
            NasFamily::Mikrotik => super::effective_rate(
                services::service_rate(defs.iter()),
                override_rate.as_deref(),
                reply_rate,
            ),
            _ => None,
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
        if plain {
            // Nothing for the reply depends on it: the Accept does not wait for
            // the commit (the group-commit writer takes it with the next batch).
            let (o, commit) = prepare(st, &self.hooks, user, &login, sub.as_ref())?;
            if let Some(c) = commit {
                st.state_commit_nowait(c)?;
                log_events(user, &o, Source::Auth);
            }
            return Ok(LoginReply::default());
        }
        apply(st, &self.hooks, user, &login)?;
        let mut started = Vec::new();
        if !starting.is_empty() {
            // The new session is not open yet: the baseline is the others' output.
            let base_output: u64 = st
                .open_sessions_of(user)?
                .iter()
                .map(|s| s.output_octets)
                .sum();
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
        }
        let mut on: Vec<String> = active;
        on.extend(started);
        let refs: Vec<&services::Service> = defs.iter().filter(|d| on.contains(&d.name)).collect();
        let mut reply = LoginReply {
            reply: services::accept_attributes(family, &refs),
        };
        // The operator's rate applies where no service sets one.
        if family == NasFamily::Mikrotik && services::service_rate(refs.iter().copied()).is_none() {
            if let Some(r) = &override_rate {
                reply
                    .reply
                    .push(("Mikrotik-Rate-Limit".into(), r.clone(), ":="));
            }
        }
        Ok(reply)
    }

    /// accounting, once capping decided on the update: `over` the allowance or
    /// not. Only a change is written (`user_redirect` / `user_redirect_cancel`);
    /// the redirected users are kept in memory so that the others' updates read
    /// nothing more. Topups and new periods between updates are the states job's.
    pub fn capping_checked(&self, user: &str, over: bool, now: i64) {
        let known = self
            .redirected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user);
        if known == over {
            return;
        }
        let input = if over {
            Input::LimitReached
        } else {
            Input::LimitCleared
        };
        match apply(
            &self.store,
            &self.hooks,
            user,
            &Change::new(input, Source::Capping, now),
        ) {
            Ok(_) => {
                let mut set = self.redirected.lock().unwrap_or_else(|e| e.into_inner());
                if over {
                    set.insert(user.to_string());
                } else {
                    set.remove(user);
                }
            }
            Err(e) => log::error!("{user:?}: the capping state was not recorded: {e}"),
        }
    }
}
