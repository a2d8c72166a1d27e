//! Subscriber states and events (seed 004, a billing system's NAS integration):
//! per user exists / deleted, logged in, redirected (limit reached), voluntarily
//! blocked, current rate; every change is an event, and events become actions:
//! Disconnect-Requests, CoA-Requests, RouterOS API address-list changes and the
//! operator's hook.
//!
//! [`transition`] is the whole table (state × input → new state, events, actions);
//! [`plan`] turns actions into the rows the store queues for the user's sessions.
//! Both are pure; the background jobs in [`worker`] carry the rows out.

pub mod enforce;
pub mod hooks;
pub mod worker;

use crate::services::{EndReason, NasFamily, Service};
use crate::store::NewDisconnectJob;

/// A user's state as stored. A user without a row has never been seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Subscriber {
    pub deleted: bool,
    pub logged_in: bool,
    pub redirected: bool,
    pub blocked: bool,
    /// The rate the user has now, as far as the module knows.
    pub rate: Option<String>,
    /// What the last login got before the module's own rates (users file, policy).
    pub base_rate: Option<String>,
    /// The operator's rate (`user rate`), over the base rate.
    pub rate_override: Option<String>,
}

/// Event names, as the seed names its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    UserAdd,
    UserDel,
    UserAuth,
    UserDisconnect,
    UserRedirect,
    UserRedirectCancel,
    OwnDisabled,
    OwnDisabledCancel,
    UserRateSet,
    ServiceActivated,
    ServiceDeactivated,
}

impl Event {
    pub const ALL: [Event; 11] = [
        Event::UserAdd,
        Event::UserDel,
        Event::UserAuth,
        Event::UserDisconnect,
        Event::UserRedirect,
        Event::UserRedirectCancel,
        Event::OwnDisabled,
        Event::OwnDisabledCancel,
        Event::UserRateSet,
        Event::ServiceActivated,
        Event::ServiceDeactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::UserAdd => "user_add",
            Event::UserDel => "user_del",
            Event::UserAuth => "user_auth",
            Event::UserDisconnect => "user_disconnect",
            Event::UserRedirect => "user_redirect",
            Event::UserRedirectCancel => "user_redirect_cancel",
            Event::OwnDisabled => "own_disabled",
            Event::OwnDisabledCancel => "own_disabled_cancel",
            Event::UserRateSet => "user_rate_set",
            Event::ServiceActivated => "service_activated",
            Event::ServiceDeactivated => "service_deactivated",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Who caused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Accounting,
    Auth,
    Operator,
    Capping,
    Policy,
    Schedule,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Accounting => "accounting",
            Source::Auth => "auth",
            Source::Operator => "operator",
            Source::Capping => "capping",
            Source::Policy => "policy",
            Source::Schedule => "schedule",
        }
    }
}

/// What happened to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing happens to the state (service changes committed alone).
    Touch,
    /// The operator (re)creates the user.
    Add,
    /// The operator deletes the user.
    Delete,
    /// An Access-Accept (source auth; `rate`: the reply's Mikrotik-Rate-Limit,
    /// `base_rate`: before the module's own) or a session seen open (accounting).
    Login {
        rate: Option<String>,
        base_rate: Option<String>,
    },
    /// The user's last session closed.
    Logout,
    /// The operator's "disconnect".
    Disconnect,
    /// The capping limit is reached / no longer is (topup, new period).
    LimitReached,
    LimitCleared,
    /// Voluntary block and its end.
    Block,
    Unblock,
    /// The operator's rate; `rate_after`: the rate the user has then
    /// ([`effective_rate`]).
    RateOverride {
        rate: Option<String>,
        rate_after: Option<String>,
    },
    /// A policy or schedule changed the rate (already sent by its own job).
    RateChanged {
        rate: Option<String>,
    },
    /// A new tariff (policy): its rate is the login rate from now on;
    /// `rate_after` as for [`Input::RateOverride`].
    Tariff {
        base_rate: Option<String>,
        rate_after: Option<String>,
    },
    ServiceOn {
        service: String,
        rate_after: Option<String>,
    },
    ServiceOff {
        service: String,
        reason: EndReason,
        rate_after: Option<String>,
    },
}

/// What the user's sessions need because of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A Disconnect-Request to every open session (the durable disconnect queue).
    DisconnectSessions(String),
    /// Every service session ends (their sessions are gone or going).
    EndServices(EndReason),
    /// A CoA with the rate to every open session.
    SendRate(String),
    /// The sessions' addresses into / out of the NAS's redirect address list.
    Redirect,
    Unredirect,
    /// A service's CoA (on or off) to every open session.
    ServiceCoa {
        service: String,
        on: bool,
    },
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub event: Event,
    pub old: Option<String>,
    pub new: Option<String>,
    pub detail: Option<String>,
}

fn ev(event: Event, old: &str, new: &str) -> EventRecord {
    EventRecord {
        event,
        old: Some(old.into()),
        new: Some(new.into()),
        detail: None,
    }
}

/// The result of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: Subscriber,
    pub events: Vec<EventRecord>,
    pub actions: Vec<Action>,
}

impl Outcome {
    /// Whether anything is to be stored.
    pub fn changed(&self, before: Option<&Subscriber>) -> bool {
        !self.events.is_empty() || !self.actions.is_empty() || before != Some(&self.state)
    }
}

/// The rate a user has: a running service's, else the operator's, else the login's.
pub fn effective_rate(
    service_rate: Option<&str>,
    rate_override: Option<&str>,
    base_rate: Option<&str>,
) -> Option<String> {
    service_rate
        .or(rate_override)
        .or(base_rate)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
}

/// The state table. `before`: None for a user never seen (a first login or an
/// operator command creates the row, with a `user_add` event first).
pub fn transition(before: Option<&Subscriber>, input: &Input) -> Outcome {
    let exists = before.is_some_and(|s| !s.deleted);
    let mut s = before.cloned().unwrap_or_default();
    let mut events = Vec::new();
    let mut actions = Vec::new();
    // Inputs that bring a user into existence (only an operator's add brings a
    // deleted one back).
    let creates = matches!(input, Input::Add)
        || (before.is_none() && !matches!(input, Input::Delete | Input::Logout));
    if creates && !exists {
        let old = if before.is_some() {
            "deleted"
        } else {
            "absent"
        };
        s = Subscriber::default();
        events.push(ev(Event::UserAdd, old, "exists"));
    }
    let rate_event = |s: &mut Subscriber, events: &mut Vec<EventRecord>, rate: &Option<String>| {
        if s.rate != *rate {
            events.push(EventRecord {
                event: Event::UserRateSet,
                old: s.rate.clone(),
                new: rate.clone(),
                detail: None,
            });
            s.rate = rate.clone();
            true
        } else {
            false
        }
    };
    match input {
        Input::Touch | Input::Add => {}
        Input::Delete => {
            if exists || before.is_none() {
                events.push(ev(Event::UserDel, "exists", "deleted"));
                actions.push(Action::DisconnectSessions("user deleted".into()));
                actions.push(Action::EndServices(EndReason::Operator));
                if s.redirected {
                    actions.push(Action::Unredirect);
                }
                s = Subscriber {
                    deleted: true,
                    logged_in: s.logged_in,
                    ..Subscriber::default()
                };
            }
        }
        Input::Login { rate, base_rate } => {
            if s.deleted || s.blocked {
                // A session of a user who may not have one (authenticated elsewhere
                // or before the block): it goes.
                let why = if s.deleted {
                    "user deleted"
                } else {
                    "user blocked"
                };
                actions.push(Action::DisconnectSessions(why.into()));
            } else {
                if !s.logged_in {
                    s.logged_in = true;
                    events.push(ev(Event::UserAuth, "logged out", "logged in"));
                    if s.redirected {
                        actions.push(Action::Redirect);
                    }
                }
                if base_rate.is_some() {
                    s.base_rate = base_rate.clone();
                }
                // The login's own rate is part of user_auth, not a change of it.
                if rate.is_some() {
                    s.rate = rate.clone();
                }
            }
        }
        Input::Logout => {
            if s.logged_in {
                s.logged_in = false;
                events.push(ev(Event::UserDisconnect, "logged in", "logged out"));
                actions.push(Action::EndServices(EndReason::Logout));
                if s.redirected {
                    actions.push(Action::Unredirect);
                }
                s.rate = None;
            }
        }
        Input::Disconnect => {
            if s.logged_in {
                events.push(ev(
                    Event::UserDisconnect,
                    "logged in",
                    "disconnect requested",
                ));
            }
            actions.push(Action::DisconnectSessions("operator disconnect".into()));
        }
        Input::LimitReached => {
            if !s.redirected && !s.deleted {
                s.redirected = true;
                events.push(ev(Event::UserRedirect, "within limits", "limit reached"));
                actions.push(Action::Redirect);
            }
        }
        Input::LimitCleared => {
            if s.redirected {
                s.redirected = false;
                events.push(ev(
                    Event::UserRedirectCancel,
                    "limit reached",
                    "within limits",
                ));
                actions.push(Action::Unredirect);
            }
        }
        Input::Block => {
            if !s.blocked && !s.deleted {
                s.blocked = true;
                events.push(ev(Event::OwnDisabled, "open", "blocked"));
                actions.push(Action::DisconnectSessions("blocked by its owner".into()));
            }
        }
        Input::Unblock => {
            if s.blocked {
                s.blocked = false;
                events.push(ev(Event::OwnDisabledCancel, "blocked", "open"));
            }
        }
        Input::RateOverride { rate, rate_after } => {
            s.rate_override = rate.clone();
            if s.logged_in && rate_event(&mut s, &mut events, rate_after) {
                if let Some(r) = rate_after {
                    actions.push(Action::SendRate(r.clone()));
                }
            }
        }
        Input::RateChanged { rate } => {
            rate_event(&mut s, &mut events, rate);
        }
        Input::Tariff {
            base_rate,
            rate_after,
        } => {
            s.base_rate = base_rate.clone();
            if s.logged_in && rate_event(&mut s, &mut events, rate_after) {
                if let Some(r) = rate_after {
                    actions.push(Action::SendRate(r.clone()));
                }
            }
        }
        Input::ServiceOn {
            service,
            rate_after,
        } => {
            if !s.deleted && !s.blocked {
                events.push(EventRecord {
                    detail: Some(service.clone()),
                    ..ev(Event::ServiceActivated, "inactive", "active")
                });
                actions.push(Action::ServiceCoa {
                    service: service.clone(),
                    on: true,
                });
                if s.logged_in {
                    rate_event(&mut s, &mut events, rate_after);
                }
            }
        }
        Input::ServiceOff {
            service,
            reason,
            rate_after,
        } => {
            events.push(EventRecord {
                detail: Some(format!("{service}: {}", reason.as_str())),
                ..ev(Event::ServiceDeactivated, "active", "inactive")
            });
            if *reason != EndReason::Logout {
                actions.push(Action::ServiceCoa {
                    service: service.clone(),
                    on: false,
                });
                if s.logged_in {
                    rate_event(&mut s, &mut events, rate_after);
                }
            }
        }
    }
    Outcome {
        state: s,
        events,
        actions,
    }
}

/// An open session as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSession {
    pub nas_ip: String,
    pub session_key: String,
    pub acct_session_id: String,
    pub framed_ip: Option<String>,
    pub start_time: i64,
    pub output_octets: u64,
    pub family: NasFamily,
    /// The NAS row's redirect address list (RouterOS API), if any.
    pub redirect_list: Option<String>,
}

/// What a NAS action row does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NasActionKind {
    ServiceOn,
    ServiceOff,
    Rate,
    Redirect,
    RedirectCancel,
}

impl NasActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NasActionKind::ServiceOn => "service-on",
            NasActionKind::ServiceOff => "service-off",
            NasActionKind::Rate => "rate",
            NasActionKind::Redirect => "redirect",
            NasActionKind::RedirectCancel => "redirect-cancel",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            NasActionKind::ServiceOn,
            NasActionKind::ServiceOff,
            NasActionKind::Rate,
            NasActionKind::Redirect,
            NasActionKind::RedirectCancel,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A NAS action to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNasAction {
    pub kind: NasActionKind,
    pub session: NewDisconnectJob,
    /// Service actions: the service as it was defined then.
    pub service: Option<Service>,
    /// The rate to set (rate actions; service-off: the rate to go back to).
    pub rate_limit: Option<String>,
    /// Give up by disconnecting the session (the change must not be missed).
    pub disconnect_on_failure: bool,
}

/// What the store queues for a change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub disconnects: Vec<NewDisconnectJob>,
    pub nas_actions: Vec<NewNasAction>,
    /// Service sessions end (with this reason).
    pub end_services: Option<EndReason>,
}

fn session_job(user: &str, s: &OpenSession, reason: &str) -> NewDisconnectJob {
    NewDisconnectJob {
        nas_ip: s.nas_ip.clone(),
        session_key: s.session_key.clone(),
        username: user.to_string(),
        acct_session_id: s.acct_session_id.clone(),
        framed_ip: s.framed_ip.clone(),
        session_start: s.start_time,
        reason: reason.to_string(),
    }
}

/// Turns actions into rows for the user's open sessions. `redirected`: the
/// sessions whose addresses the module put into a redirect list (for Unredirect,
/// which also runs after the sessions closed). `service`: looks a service up.
pub fn plan(
    user: &str,
    actions: &[Action],
    sessions: &[OpenSession],
    redirected: &[OpenSession],
    service: &dyn Fn(&str) -> Option<Service>,
    rate_after: Option<&str>,
) -> Plan {
    let mut p = Plan::default();
    for a in actions {
        match a {
            Action::DisconnectSessions(why) => {
                p.disconnects
                    .extend(sessions.iter().map(|s| session_job(user, s, why)));
            }
            Action::EndServices(reason) => p.end_services = Some(*reason),
            Action::SendRate(rate) => {
                for s in sessions.iter().filter(|s| s.family == NasFamily::Mikrotik) {
                    p.nas_actions.push(NewNasAction {
                        kind: NasActionKind::Rate,
                        session: session_job(user, s, &format!("rate {rate}")),
                        service: None,
                        rate_limit: Some(rate.clone()),
                        disconnect_on_failure: true,
                    });
                }
            }
            Action::Redirect => {
                for s in sessions
                    .iter()
                    .filter(|s| s.framed_ip.is_some() && s.redirect_list.is_some())
                {
                    p.nas_actions.push(NewNasAction {
                        kind: NasActionKind::Redirect,
                        session: session_job(user, s, "limit reached"),
                        service: None,
                        rate_limit: None,
                        disconnect_on_failure: false,
                    });
                }
            }
            Action::Unredirect => {
                for s in redirected {
                    p.nas_actions.push(NewNasAction {
                        kind: NasActionKind::RedirectCancel,
                        session: session_job(user, s, "redirect cancelled"),
                        service: None,
                        rate_limit: None,
                        disconnect_on_failure: false,
                    });
                }
            }
            Action::ServiceCoa { service: name, on } => {
                let Some(svc) = service(name) else {
                    continue;
                };
                for s in sessions {
                    let rate = if *on {
                        svc.rate_limit.clone()
                    } else {
                        rate_after.map(str::to_string)
                    };
                    match s.family {
                        // No service attributes of its own.
                        NasFamily::Other => continue,
                        // Only rates: nothing to tell it without one.
                        NasFamily::Mikrotik if rate.is_none() => continue,
                        _ => {}
                    }
                    let kind = if *on {
                        NasActionKind::ServiceOn
                    } else {
                        NasActionKind::ServiceOff
                    };
                    p.nas_actions.push(NewNasAction {
                        kind,
                        session: session_job(user, s, &format!("service {name}")),
                        service: Some(svc.clone()),
                        rate_limit: rate,
                        // A service that must end does, even if the NAS will not be told.
                        disconnect_on_failure: !*on,
                    });
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests;
