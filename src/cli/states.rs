//! `rlm-rust service ...`, the state commands of `rlm-rust user ...` and
//! `rlm-rust events`. Changes go through [`crate::states::worker::apply`] on a
//! direct connection: the state table decides, the module's background thread
//! sends what they queue (CoAs, disconnects, API changes) and runs the hooks.

use chrono_tz::Tz;
use clap::{Args, Subcommand};

use super::capping::json_out;
use super::format::{cell, human_bytes, local_time, rfc3339, table, Align};
use super::{open_admin, open_reader, Cli, CliError};
use crate::config::Hooks;
use crate::periods;
use crate::services::EndReason;
use crate::services::{parse_threshold, Service};
use crate::states::worker::{apply, rate_with, Change};
use crate::states::{Input, Outcome, Source};
use crate::store::{Admin, EventRow, Reader, ServiceChange, StoreError};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Define a service, or change one (thresholds wrap modulo 2^24 like ERX's).
    Add(ServiceAddArgs),
    /// Delete a service no user has waiting or active.
    Remove { name: String },
    /// The services, or with --user one user's service sessions.
    List {
        #[arg(long, value_parser = crate::cli::user_arg())]
        user: Option<String>,
    },
    /// Start a service for a user: now on its open sessions (CoA), else at its next login.
    Activate(ServiceUserArgs),
    /// End a user's service (CoA) and drop it from later logins.
    Deactivate(ServiceUserArgs),
}

#[derive(Debug, Args)]
pub struct ServiceAddArgs {
    pub name: String,
    /// Service-Timeout: seconds of activity, 0 = no limit (0-16777215; larger wraps).
    #[arg(long, default_value = "0")]
    pub timeout: String,
    /// Service-Volume: MB of output traffic, 0 = no limit (0-16777215; larger wraps).
    #[arg(long, default_value = "0")]
    pub volume: String,
    /// Mikrotik-Rate-Limit while the service runs (NASes that cannot run services).
    #[arg(long)]
    pub rate: Option<String>,
    /// The service as the NAS knows it (ERX-Service-Activate value, ISG service name).
    #[arg(long)]
    pub nas_service: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServiceUserArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    pub service: String,
    /// Activate: start it again at every login.
    #[arg(long)]
    pub persistent: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub purge: Option<EventsCommand>,
    #[arg(long, value_parser = crate::cli::user_arg())]
    pub user: Option<String>,
    /// Only events at or after this unix time, or this many seconds ago ("-3600").
    #[arg(long, allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Most events shown (the newest).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Keep printing new events as they come (one JSON object per line with --json).
    #[arg(long)]
    pub follow: bool,
}

fn services_table(list: &[Service]) -> String {
    let limit = |v: u32, unit: &str| {
        if v == 0 {
            "-".to_string()
        } else {
            format!("{v}{unit}")
        }
    };
    let body: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                limit(s.timeout, "s"),
                limit(s.volume_mb, " MB"),
                s.rate_limit.clone().unwrap_or_else(|| "-".into()),
                s.nas_name().to_string(),
                s.description.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            ("NAME", Align::Left),
            ("TIMEOUT", Align::Right),
            ("VOLUME", Align::Right),
            ("RATE", Align::Left),
            ("NAS-SERVICE", Align::Left),
            ("DESCRIPTION", Align::Left),
        ],
        &body,
    )
}

fn events_json(o: &Outcome) -> Vec<serde_json::Value> {
    o.events
        .iter()
        .map(|e| {
            serde_json::json!({
                "event": e.event.as_str(), "old": e.old, "new": e.new, "detail": e.detail,
            })
        })
        .collect()
}

fn events_text(o: &Outcome) -> String {
    if o.events.is_empty() {
        return "no change\n".into();
    }
    o.events
        .iter()
        .map(|e| {
            format!(
                "{}: {} -> {}{}\n",
                e.event.as_str(),
                e.old.as_deref().unwrap_or("-"),
                e.new.as_deref().unwrap_or("-"),
                e.detail
                    .as_deref()
                    .map_or(String::new(), |d| format!(" ({d})"))
            )
        })
        .collect()
}

fn report(cli: &Cli, user: &str, o: &Outcome, note: &str) -> Result<String, CliError> {
    if cli.json {
        return json_out(&serde_json::json!({
            "username": user,
            "events": events_json(o),
            "actions": o.actions.len(),
            "state": o.state,
        }));
    }
    let mut out = format!("{}: {}", cell(user), events_text(o));
    if !note.is_empty() {
        out.push_str(note);
        out.push('\n');
    }
    Ok(out)
}

pub fn run_service(cli: &Cli, cmd: &ServiceCommand, tz: Tz) -> Result<String, CliError> {
    let now = periods::now();
    match cmd {
        ServiceCommand::Add(a) => {
            let svc = Service {
                name: a.name.clone(),
                timeout: parse_threshold("--timeout", &a.timeout).map_err(CliError::Input)?,
                volume_mb: parse_threshold("--volume", &a.volume).map_err(CliError::Input)?,
                rate_limit: a.rate.clone().filter(|r| !r.is_empty()),
                nas_service: a.nas_service.clone().filter(|r| !r.is_empty()),
                description: a.description.clone(),
            };
            let admin = open_admin(cli)?;
            let existed = admin.service_get(&svc.name)?.is_some();
            admin.service_put(&svc, now).map_err(|e| match e {
                StoreError::Rejected(m) => CliError::Input(m),
                e => e.into(),
            })?;
            if cli.json {
                return json_out(&serde_json::json!({"service": svc, "updated": existed}));
            }
            Ok(format!(
                "{} service {} (timeout {}s, volume {} MB; 0 = no limit)\n",
                if existed { "updated" } else { "added" },
                svc.name,
                svc.timeout,
                svc.volume_mb
            ))
        }
        ServiceCommand::Remove { name } => {
            let admin = open_admin(cli)?;
            let removed = admin.service_remove(name).map_err(|e| match e {
                StoreError::Rejected(m) => CliError::Input(m),
                e => e.into(),
            })?;
            if !removed {
                return Err(CliError::Input(format!("no service {name:?}")));
            }
            if cli.json {
                return json_out(&serde_json::json!({"removed": name}));
            }
            Ok(format!("removed service {name}\n"))
        }
        ServiceCommand::List { user: None } => {
            let list = open_reader(cli)?.service_list()?;
            if cli.json {
                return json_out(&serde_json::json!({ "services": list }));
            }
            Ok(services_table(&list))
        }
        ServiceCommand::List { user: Some(u) } => {
            let reader = open_reader(cli)?;
            let rows = reader.user_services(Some(u))?;
            if cli.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "service": r.service, "state": r.state, "persistent": r.persistent,
                            "activated_at": r.activated_at,
                            "activated_at_local": r.activated_at.and_then(|t| rfc3339(t, tz)),
                            "output_octets": r.used_output, "ended_at": r.ended_at,
                            "end_reason": r.end_reason,
                        })
                    })
                    .collect();
                return json_out(&serde_json::json!({"username": u, "services": rows}));
            }
            Ok(user_services_table(&rows, tz))
        }
        ServiceCommand::Activate(a) => activate(cli, a, now),
        ServiceCommand::Deactivate(a) => deactivate(cli, a, now),
    }
}

fn user_services_table(rows: &[crate::store::UserServiceRow], tz: Tz) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.service.clone(),
                r.state.clone(),
                if r.persistent { "yes" } else { "no" }.into(),
                r.activated_at.map_or("-".into(), |t| local_time(t, tz)),
                human_bytes(r.used_output),
                r.end_reason.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            ("SERVICE", Align::Left),
            ("STATE", Align::Left),
            ("PERSISTENT", Align::Left),
            ("ACTIVATED", Align::Left),
            ("OUTPUT", Align::Right),
            ("ENDED-BY", Align::Left),
        ],
        &body,
    )
}

fn active_services(admin: &Admin, user: &str, except: &str) -> Result<Vec<String>, CliError> {
    Ok(admin
        .user_services(Some(user))?
        .into_iter()
        .filter(|r| r.state == "active" && r.service != except)
        .map(|r| r.service)
        .collect())
}

fn activate(cli: &Cli, a: &ServiceUserArgs, now: i64) -> Result<String, CliError> {
    let admin = open_admin(cli)?;
    let hooks = Hooks::deferred();
    let svc = admin.service_get(&a.service)?.ok_or_else(|| {
        CliError::Input(format!(
            "no service {:?}: add it with `rlm-rust service add`",
            a.service
        ))
    })?;
    let sub = admin.subscriber(&a.user)?;
    if let Some(s) = sub.as_ref().filter(|s| s.state.deleted || s.state.blocked) {
        let why = if s.state.deleted {
            "deleted"
        } else {
            "blocked"
        };
        return Err(CliError::Input(format!("{} is {why}", cell(&a.user))));
    }
    let open = admin.open_sessions_of(&a.user)?;
    if open.is_empty() {
        let mut c = Change::new(Input::Touch, Source::Operator, now);
        c.services.push(ServiceChange::Wait {
            service: svc.name.clone(),
            persistent: a.persistent,
        });
        let o = apply(&admin, &hooks, &a.user, &c)?;
        return report(
            cli,
            &a.user,
            &o,
            &format!(
                "service {} waits for the next login (the user has no open session)",
                svc.name
            ),
        );
    }
    let mut running = active_services(&admin, &a.user, &svc.name)?;
    running.insert(0, svc.name.clone());
    let rate_after = rate_with(&admin, sub.as_ref().map(|s| &s.state), &running);
    let mut c = Change::new(
        Input::ServiceOn {
            service: svc.name.clone(),
            rate_after,
        },
        Source::Operator,
        now,
    );
    c.services.push(ServiceChange::Activate {
        service: svc.name.clone(),
        persistent: a.persistent,
        base_output: open.iter().map(|s| s.output_octets).sum(),
    });
    let o = apply(&admin, &hooks, &a.user, &c)?;
    report(
        cli,
        &a.user,
        &o,
        &format!(
            "service {} active on {} open session(s); the module's background thread sends the CoA(s)",
            svc.name,
            open.len()
        ),
    )
}

fn deactivate(cli: &Cli, a: &ServiceUserArgs, now: i64) -> Result<String, CliError> {
    let admin = open_admin(cli)?;
    let hooks = Hooks::deferred();
    let row = admin
        .user_services(Some(&a.user))?
        .into_iter()
        .find(|r| r.service == a.service && (r.state != "ended" || r.persistent))
        .ok_or_else(|| {
            CliError::Input(format!(
                "{} has no service {:?} waiting or active",
                cell(&a.user),
                a.service
            ))
        })?;
    let end = ServiceChange::End {
        service: a.service.clone(),
        reason: EndReason::Operator,
        unsubscribe: true,
    };
    let mut c = if row.state == "active" {
        let sub = admin.subscriber(&a.user)?;
        let still = active_services(&admin, &a.user, &a.service)?;
        let rate_after = rate_with(&admin, sub.as_ref().map(|s| &s.state), &still);
        Change::new(
            Input::ServiceOff {
                service: a.service.clone(),
                reason: EndReason::Operator,
                rate_after,
            },
            Source::Operator,
            now,
        )
    } else {
        Change::new(Input::Touch, Source::Operator, now)
    };
    c.services.push(end);
    let o = apply(&admin, &hooks, &a.user, &c)?;
    report(cli, &a.user, &o, "")
}

/// The state commands of `rlm-rust user`.
#[derive(Debug, Clone, Copy)]
pub enum UserAction {
    Add,
    Delete,
    Block,
    Unblock,
    Disconnect,
}

pub fn run_user_state(cli: &Cli, user: &str, action: UserAction) -> Result<String, CliError> {
    let admin = open_admin(cli)?;
    let now = periods::now();
    let input = match action {
        UserAction::Add => Input::Add,
        UserAction::Delete => Input::Delete,
        UserAction::Block => Input::Block,
        UserAction::Unblock => Input::Unblock,
        UserAction::Disconnect => Input::Disconnect,
    };
    let mut c = Change::new(input, Source::Operator, now);
    if matches!(action, UserAction::Delete) {
        // The services go with the user (and its later logins with them).
        for r in admin.user_services(Some(user))? {
            if r.state != "ended" || r.persistent {
                c.services.push(ServiceChange::End {
                    service: r.service,
                    reason: EndReason::Operator,
                    unsubscribe: true,
                });
            }
        }
    }
    let o = apply(&admin, &Hooks::deferred(), user, &c)?;
    let sessions = o
        .actions
        .iter()
        .any(|a| matches!(a, crate::states::Action::DisconnectSessions(_)))
        .then(|| admin.open_sessions_of(user).map(|s| s.len()))
        .transpose()?;
    let note = match sessions {
        Some(0) => "no open session to disconnect".to_string(),
        Some(n) => format!("{n} open session(s) queued for disconnection"),
        None => String::new(),
    };
    report(cli, user, &o, &note)
}

pub fn run_user_rate(cli: &Cli, user: &str, rate: Option<&str>) -> Result<String, CliError> {
    let admin = open_admin(cli)?;
    let now = periods::now();
    let sub = admin.subscriber(user)?;
    let mut after = sub.as_ref().map(|s| s.state.clone()).unwrap_or_default();
    after.rate_override = rate.map(str::to_string);
    let running = active_services(&admin, user, "")?;
    let rate_after = rate_with(&admin, Some(&after), &running);
    let c = Change::new(
        Input::RateOverride {
            rate: rate.map(str::to_string),
            rate_after,
        },
        Source::Operator,
        now,
    );
    let o = apply(&admin, &Hooks::deferred(), user, &c)?;
    let note = match rate {
        Some(r) => format!("operator rate {r}: applies to open sessions (CoA) and every login"),
        None => "operator rate cleared".to_string(),
    };
    report(cli, user, &o, &note)
}

/// The state part of `user show`: (JSON, text).
pub fn user_state(
    reader: &Reader,
    user: &str,
    tz: Tz,
) -> Result<(serde_json::Value, String), CliError> {
    let sub = reader.subscriber(user)?;
    let services = reader.user_services(Some(user))?;
    let s = sub.as_ref().map(|r| r.state.clone()).unwrap_or_default();
    let active: Vec<&str> = services
        .iter()
        .filter(|r| r.state == "active")
        .map(|r| r.service.as_str())
        .collect();
    let json = serde_json::json!({
        "exists": sub.as_ref().is_some_and(|r| !r.state.deleted),
        "known": sub.is_some(),
        "deleted": s.deleted,
        "logged_in": s.logged_in,
        "redirected": s.redirected,
        "blocked": s.blocked,
        "rate": s.rate,
        "base_rate": s.base_rate,
        "rate_override": s.rate_override,
        "active_services": active,
    });
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut text = format!(
        "state: {}; logged in: {}; redirected: {}; blocked: {}\nrate: {} (login {}, operator {})\nactive services: {}\n",
        match &sub {
            None => "never seen",
            Some(r) if r.state.deleted => "deleted",
            Some(_) => "exists",
        },
        yes(s.logged_in),
        yes(s.redirected),
        yes(s.blocked),
        s.rate.as_deref().unwrap_or("-"),
        s.base_rate.as_deref().unwrap_or("-"),
        s.rate_override.as_deref().unwrap_or("-"),
        if active.is_empty() { "none".to_string() } else { active.join(", ") }
    );
    if !services.is_empty() {
        text.push('\n');
        text.push_str(&user_services_table(&services, tz));
    }
    Ok((json, text))
}

fn event_json(e: &EventRow, tz: Tz) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "username": e.username, "event": e.event, "old": e.old_value,
        "new": e.new_value, "source": e.source, "at": e.at, "at_local": rfc3339(e.at, tz),
        "detail": e.detail, "hook_state": e.hook_state, "hook_attempts": e.hook_attempts,
        "hook_exit": e.hook_exit, "hook_output": e.hook_output,
    })
}

fn event_line(e: &EventRow, tz: Tz) -> Vec<String> {
    let hook = match (e.hook_state.as_str(), e.hook_exit) {
        ("none", _) => "-".to_string(),
        (s, Some(code)) => format!("{s} (exit {code}, {} run(s))", e.hook_attempts),
        (s, None) if e.hook_attempts > 0 => format!("{s} ({} run(s))", e.hook_attempts),
        (s, None) => s.to_string(),
    };
    vec![
        e.id.to_string(),
        local_time(e.at, tz),
        cell(&e.username),
        e.event.clone(),
        format!(
            "{} -> {}",
            e.old_value.as_deref().unwrap_or("-"),
            e.new_value.as_deref().unwrap_or("-")
        ),
        e.source.clone(),
        e.detail.clone().unwrap_or_default(),
        hook,
    ]
}

const EVENT_HEADERS: [(&str, Align); 8] = [
    ("ID", Align::Right),
    ("TIME", Align::Left),
    ("USER", Align::Left),
    ("EVENT", Align::Left),
    ("CHANGE", Align::Left),
    ("SOURCE", Align::Left),
    ("DETAIL", Align::Left),
    ("HOOK", Align::Left),
];

pub fn run_events(cli: &Cli, a: &EventsArgs, tz: Tz) -> Result<String, CliError> {
    let now = periods::now();
    if let Some(EventsCommand::Purge { older_than }) = &a.purge {
        let (events, actions) = open_admin(cli)?.purge_history(now - older_than)?;
        if cli.json {
            return json_out(&serde_json::json!({"events": events, "actions": actions}));
        }
        return Ok(format!(
            "deleted {events} event(s) and {actions} finished NAS action(s)\n"
        ));
    }
    let reader = open_reader(cli)?;
    let since = match a.since.as_deref() {
        None => None,
        Some(s) => Some(match s.trim().parse::<i64>() {
            Ok(v) if v < 0 => now + v,
            Ok(v) => v,
            Err(_) => {
                return Err(CliError::Input(format!(
                    "--since {s:?}: unix seconds, or -SECONDS ago"
                )))
            }
        }),
    };
    let user = a.user.as_deref();
    // The newest `limit`: page through from the start once (ids only grow).
    let mut all: Vec<EventRow> = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.events(user, since, after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page);
        if all.len() > a.limit {
            let cut = all.len() - a.limit;
            all.drain(..cut);
        }
    }
    if !a.follow {
        if cli.json {
            let v: Vec<_> = all.iter().map(|e| event_json(e, tz)).collect();
            return json_out(&serde_json::json!({ "events": v }));
        }
        let body: Vec<Vec<String>> = all.iter().map(|e| event_line(e, tz)).collect();
        return Ok(table(&EVENT_HEADERS, &body));
    }
    // --follow: one line per event, flushed as it comes, until interrupted.
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let print = |out: &mut std::io::StdoutLock<'_>, e: &EventRow| -> std::io::Result<()> {
        if cli.json {
            writeln!(out, "{}", event_json(e, tz))?;
        } else {
            writeln!(out, "{}", event_line(e, tz).join("  "))?;
        }
        out.flush()
    };
    for e in &all {
        if print(&mut out, e).is_err() {
            return Ok(String::new());
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        for e in reader.events(user, since, after, 1000)? {
            after = e.id;
            if print(&mut out, &e).is_err() {
                // The reader went away (a closed pipe): done.
                return Ok(String::new());
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Delete events (whose hook is not pending) and finished NAS actions older than
    /// AGE (the module does this itself after `events_keep`).
    Purge {
        #[arg(long, value_name = "AGE", value_parser = super::nas::parse_age)]
        older_than: i64,
    },
}

/// `queue actions`: the NAS actions and what became of them.
pub fn run_actions(cli: &Cli, user: Option<&str>, tz: Tz) -> Result<String, CliError> {
    let rows = open_reader(cli)?.nas_actions(user)?;
    if cli.json {
        let v: Vec<_> = rows
            .iter()
            .map(|a| {
                serde_json::json!({
                    "id": a.id, "event_id": a.event_id, "action": a.action,
                    "username": a.username, "nas_ip": a.nas_ip, "session_key": a.session_key,
                    "framed_ip": a.framed_ip, "service": a.service, "rate_limit": a.rate_limit,
                    "on_failure": if a.disconnect_on_failure { "disconnect" } else { "keep" },
                    "state": a.state, "method": a.method, "attempts": a.attempts,
                    "last_error": a.last_error, "error_cause": a.error_cause,
                    "next_attempt_at": a.next_attempt_at, "updated": a.updated,
                    "updated_local": rfc3339(a.updated, tz),
                })
            })
            .collect();
        return json_out(&serde_json::json!({ "actions": v }));
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                cell(&a.username),
                a.nas_ip.clone(),
                a.action.clone(),
                a.service
                    .clone()
                    .or_else(|| a.rate_limit.clone())
                    .unwrap_or_else(|| "-".into()),
                a.state.clone(),
                a.method.clone().unwrap_or_else(|| "-".into()),
                a.attempts.to_string(),
                a.last_error.clone().unwrap_or_default(),
                if a.state == "pending" {
                    local_time(a.next_attempt_at, tz)
                } else {
                    local_time(a.updated, tz)
                },
            ]
        })
        .collect();
    Ok(table(
        &[
            ("ID", Align::Right),
            ("USER", Align::Left),
            ("NAS", Align::Left),
            ("ACTION", Align::Left),
            ("WHAT", Align::Left),
            ("STATE", Align::Left),
            ("METHOD", Align::Left),
            ("ATTEMPTS", Align::Right),
            ("LAST-ERROR", Align::Left),
            ("WHEN", Align::Left),
        ],
        &body,
    ))
}

/// After `user policy`: the new policy's rate is the user's login rate, and open
/// sessions get it by CoA (`user_rate_set`, source policy). None: the policy sets
/// no rate (the users file's stays).
pub fn tariff_changed(
    cli: &Cli,
    user: &str,
    policy: Option<&str>,
    now: i64,
) -> Result<Option<Outcome>, CliError> {
    let Some(name) = policy else {
        return Ok(None);
    };
    let admin = open_admin(cli)?;
    let Some(def) = admin.policy_get(name)? else {
        return Ok(None);
    };
    let (raw, check, reply) = crate::policies::parts(&def);
    let Ok(p) = crate::policies::Policy::parse(&raw, check, reply) else {
        return Ok(None);
    };
    let tz = cli.timezone.unwrap_or(chrono_tz::UTC);
    let Some(rates) = crate::policies::modulation::rates(&p, Default::default(), now, tz) else {
        return Ok(None);
    };
    let base = Some(rates.mikrotik());
    let sub = admin.subscriber(user)?;
    let mut after = sub.as_ref().map(|s| s.state.clone()).unwrap_or_default();
    after.base_rate = base.clone();
    let running = active_services(&admin, user, "")?;
    let rate_after = rate_with(&admin, Some(&after), &running);
    let c = Change::new(
        Input::Tariff {
            base_rate: base,
            rate_after,
        },
        Source::Policy,
        now,
    );
    Ok(Some(apply(&admin, &Hooks::deferred(), user, &c)?))
}

#[derive(Debug, Args)]
pub struct UserListArgs {
    /// Only blocked users (own_disabled).
    #[arg(long)]
    pub blocked: bool,
    /// Only redirected users (capping allowance used up).
    #[arg(long)]
    pub redirected: bool,
    /// Only deleted users.
    #[arg(long)]
    pub deleted: bool,
    /// Only users logged in now.
    #[arg(long)]
    pub logged_in: bool,
}

/// `user list`: the subscribers and their state (every filter given must hold).
pub fn run_user_list(cli: &Cli, a: &UserListArgs, tz: Tz) -> Result<String, CliError> {
    let rows: Vec<_> = open_admin(cli)?
        .subscribers()?
        .into_iter()
        .filter(|r| {
            let s = &r.state;
            (!a.blocked || s.blocked)
                && (!a.redirected || s.redirected)
                && (!a.deleted || s.deleted)
                && (!a.logged_in || s.logged_in)
        })
        .collect();
    if cli.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "username": r.username, "deleted": r.state.deleted,
                    "logged_in": r.state.logged_in, "redirected": r.state.redirected,
                    "blocked": r.state.blocked, "rate": r.state.rate,
                    "rate_override": r.state.rate_override, "updated": r.updated,
                    "updated_local": rfc3339(r.updated, tz),
                })
            })
            .collect();
        return json_out(&serde_json::json!({ "users": v }));
    }
    let yes = |b: bool| if b { "yes" } else { "-" }.to_string();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = &r.state;
            vec![
                cell(&r.username),
                if s.deleted { "deleted" } else { "exists" }.into(),
                yes(s.logged_in),
                yes(s.redirected),
                yes(s.blocked),
                s.rate.clone().unwrap_or_else(|| "-".into()),
                local_time(r.updated, tz),
            ]
        })
        .collect();
    Ok(table(
        &[
            ("USER", Align::Left),
            ("STATE", Align::Left),
            ("LOGGED-IN", Align::Left),
            ("REDIRECTED", Align::Left),
            ("BLOCKED", Align::Left),
            ("RATE", Align::Left),
            ("CHANGED", Align::Left),
        ],
        &body,
    ))
}
