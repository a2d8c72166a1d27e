//! `nas ...` and `queue ...`: the NAS registry and the disconnect queue.
//! Secrets and API passwords are never printed, only whether they are set.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::format::{cell, local_time, rfc3339, table, Align};
use super::{open_reader, Cli, CliError};
use crate::bulk::has_api;
use crate::store::{Admin, DisconnectJob, JobState, NasConfig, NasRow, RetryTarget};
use crate::{config, periods};

#[derive(Debug, Subcommand)]
pub enum NasCommand {
    /// List the NASes.
    List,
    /// Add a NAS (creates the database if missing).
    Add(NasAddArgs),
    /// Change a NAS's settings.
    Set(NasSetArgs),
    /// Remove a NAS.
    Remove {
        /// The NAS's IP (NAS-IP-Address) or name.
        #[arg(value_name = "NAME_OR_IP")]
        nas: String,
    },
}

#[derive(Debug, Args)]
pub struct NasAddArgs {
    /// The NAS-IP-Address the NAS sends.
    #[arg(value_name = "NAS_IP")]
    pub nas_ip: IpAddr,
    #[arg(long, value_name = "N")]
    pub name: String,
    #[command(flatten)]
    pub opts: NasOptions,
}

#[derive(Debug, Args)]
pub struct NasSetArgs {
    /// The NAS's IP (NAS-IP-Address) or name.
    #[arg(value_name = "NAME_OR_IP")]
    pub nas: String,
    /// New name.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    #[command(flatten)]
    pub opts: NasOptions,
}

#[derive(Debug, Args)]
pub struct NasOptions {
    /// NAS type.
    #[arg(long = "type", value_name = "T")]
    pub nas_type: Option<String>,
    /// Address for RFC 5176 requests if not NAS_IP (NAT).
    #[arg(long, value_name = "H")]
    pub coa_host: Option<String>,
    /// RFC 5176 port (3799; 1700 for older RouterOS).
    #[arg(long, value_name = "P")]
    pub coa_port: Option<u16>,
    /// Shared secret if not the client's from clients.conf (visible in the process
    /// list: prefer --secret-stdin or --secret-file).
    #[arg(long, value_name = "S", conflicts_with_all = ["secret_stdin", "secret_file"])]
    pub secret: Option<String>,
    /// Read the shared secret from the first line of stdin.
    #[arg(long, conflicts_with_all = ["secret_file", "api_password_stdin"])]
    pub secret_stdin: bool,
    /// Read the shared secret from the first line of a file (not open to other users).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// RouterOS API address.
    #[arg(long, value_name = "H")]
    pub api_host: Option<String>,
    /// RouterOS API port (8728; 8729 for API-SSL).
    #[arg(long, value_name = "P")]
    pub api_port: Option<u16>,
    #[arg(long, value_name = "U")]
    pub api_user: Option<String>,
    /// API password (visible in the process list: prefer --api-password-stdin or
    /// --api-password-file).
    #[arg(long, value_name = "P", conflicts_with_all = ["api_password_stdin", "api_password_file"])]
    pub api_password: Option<String>,
    /// Read the API password from the first line of stdin.
    #[arg(long, conflicts_with = "api_password_file")]
    pub api_password_stdin: bool,
    /// Read the API password from the first line of a file (not open to other users).
    #[arg(long, value_name = "PATH")]
    pub api_password_file: Option<PathBuf>,
    /// Use API-SSL.
    #[arg(long, conflicts_with = "no_api_tls")]
    pub api_tls: bool,
    /// API-SSL: the PEM file of the router's certificate or its CA, which its
    /// certificate must chain to and name its API host in ("" removes it).
    #[arg(long, value_name = "FILE")]
    pub api_ca: Option<String>,
    /// API-SSL: accept any certificate (MikroTik's default self-signed one). Anyone
    /// on the path can then read the API password.
    #[arg(long, conflicts_with = "api_tls_verify")]
    pub api_tls_insecure: bool,
    /// API-SSL: verify the certificate against --api-ca again (the default).
    #[arg(long)]
    pub api_tls_verify: bool,
    /// Plain API (no TLS).
    #[arg(long)]
    pub no_api_tls: bool,
    #[arg(long, value_name = "MS")]
    pub api_timeout_ms: Option<u32>,
    /// `auto` (default): count a 32-bit octet counter that goes backwards, on a NAS
    /// that never sends Gigawords, as a wrap when plausible; `off`: never.
    #[arg(long, value_name = "auto|off", value_parser = ["auto", "off"])]
    pub counter_wrap: Option<String>,
    /// The NAS's IANA time zone (policy schedules are read in its wall clock);
    /// "" = the module's.
    #[arg(long = "nas-timezone", value_name = "TZ")]
    pub nas_timezone: Option<String>,
    /// `yes` (default): an Accounting-Stop ending a user's last session runs the
    /// user_disconnect hook; `no`: it does not (the state still changes).
    #[arg(long, value_name = "yes|no", value_parser = ["yes", "no"])]
    pub stop_event: Option<String>,
    /// RouterOS firewall address list that redirected (limit reached) users'
    /// addresses go into over the API; "" = none.
    #[arg(long, value_name = "LIST")]
    pub redirect_list: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// NAS actions of subscriber events (service and rate CoAs, redirect address
    /// lists), oldest first, with their outcome.
    Actions {
        #[arg(long, value_parser = crate::cli::user_arg())]
        user: Option<String>,
    },
    /// Jobs of every queue by state (disconnect, coa, nas_action, hook,
    /// notification): what is waiting, done and given up.
    Counts,
    /// List disconnect jobs, oldest first.
    List {
        /// Only jobs in this state (pending, dm-failed, unconfirmed, done, failed).
        #[arg(long, value_name = "S")]
        state: Option<JobState>,
    },
    /// Make jobs due again now.
    Retry {
        /// The job's id.
        #[arg(
            value_name = "ID",
            required_unless_present = "all_failed",
            conflicts_with = "all_failed"
        )]
        id: Option<i64>,
        /// Every job whose last attempt failed (failed, dm-failed, unconfirmed).
        #[arg(long)]
        all_failed: bool,
    },
    /// Delete finished (done) jobs.
    Purge {
        /// All done jobs.
        #[arg(
            long,
            required_unless_present = "older_than",
            conflicts_with = "older_than"
        )]
        done: bool,
        /// Only done jobs last changed longer ago than this (30s, 15m, 12h, 7d).
        #[arg(long, value_name = "AGE", value_parser = parse_age)]
        older_than: Option<i64>,
    },
}

/// An age like `7d`, `12h`, `15m`, `30s` (or plain seconds) in seconds; also weeks.
pub fn parse_age(s: &str) -> Result<i64, String> {
    const UNITS: &[(char, u64)] = &[
        ('s', 1),
        ('m', 60),
        ('h', 3600),
        ('d', 86_400),
        ('w', 604_800),
    ];
    match config::parse_duration_in(s, UNITS) {
        Ok(secs) => i64::try_from(secs).map_err(|_| format!("age {s:?} is too large")),
        Err(config::DurationError::TooLarge) => Err(format!("age {s:?} is too large")),
        Err(config::DurationError::Invalid) => {
            Err(format!("bad age {s:?}: use e.g. 30s, 15m, 12h, 7d"))
        }
    }
}

/// The first line of `input` (`from`: "stdin", "file PATH"), not empty.
fn read_secret_line(input: &mut impl BufRead, what: &str, from: &str) -> Result<String, CliError> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| CliError::Input(format!("cannot read the {what} from {from}: {e}")))?;
    let value = line.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() {
        return Err(CliError::Input(format!(
            "no {what} on the first line of {from}"
        )));
    }
    Ok(value)
}

/// The value of a secret's options: `--X` as given (empty clears), else the first
/// line of stdin (`--X-stdin`) or of a file (`--X-file`), which keep it out of `ps`.
fn secret_value(
    what: &str,
    arg: &Option<String>,
    stdin: bool,
    file: Option<&Path>,
) -> Result<Option<String>, CliError> {
    if stdin {
        return read_secret_line(&mut std::io::stdin().lock(), what, "stdin").map(Some);
    }
    let Some(path) = file else {
        return Ok(arg.clone());
    };
    let from = format!("file {}", path.display());
    let file = File::open(path)
        .map_err(|e| CliError::Input(format!("cannot open the {what} {from}: {e}")))?;
    let mode = file
        .metadata()
        .map_err(|e| CliError::Input(format!("cannot read the {what} from {from}: {e}")))?
        .permissions()
        .mode();
    // Refused rather than used: the secret may be leaking already.
    if mode & 0o007 != 0 {
        return Err(CliError::Input(format!(
            "the {what} {from} is open to every user (mode {:04o}): chmod o-rwx it",
            mode & 0o7777
        )));
    }
    read_secret_line(&mut BufReader::new(file), what, &from).map(Some)
}

/// Applies the given options over `nas`.
fn apply(nas: &mut NasConfig, o: &NasOptions) -> Result<(), CliError> {
    let set = |field: &mut Option<String>, v: &Option<String>| {
        if let Some(v) = v {
            // An empty value clears the setting (back to the default behaviour).
            *field = (!v.is_empty()).then(|| v.clone());
        }
    };
    if let Some(t) = &o.nas_type {
        nas.nas_type = t.clone();
    }
    let secret = secret_value(
        "RADIUS secret",
        &o.secret,
        o.secret_stdin,
        o.secret_file.as_deref(),
    )?;
    let api_password = secret_value(
        "API password",
        &o.api_password,
        o.api_password_stdin,
        o.api_password_file.as_deref(),
    )?;
    set(&mut nas.coa_host, &o.coa_host);
    set(&mut nas.secret, &secret);
    set(&mut nas.api_host, &o.api_host);
    set(&mut nas.api_user, &o.api_user);
    set(&mut nas.api_password, &api_password);
    if let Some(p) = o.coa_port {
        nas.coa_port = p;
    }
    if let Some(p) = o.api_port {
        nas.api_port = p;
    }
    if o.api_tls || o.no_api_tls {
        nas.api_tls = o.api_tls;
    }
    if o.api_tls_insecure || o.api_tls_verify {
        nas.api_tls_verify = o.api_tls_verify;
    }
    match o.api_ca.as_deref() {
        None => {}
        Some("") => nas.api_ca = None,
        Some(p) => {
            let p = Path::new(p);
            let pem = std::fs::read_to_string(p)
                .map_err(|e| CliError::Input(format!("--api-ca {}: {e}", p.display())))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(CliError::Input(format!(
                    "--api-ca {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
                    p.display()
                )));
            }
            nas.api_ca = Some(pem);
        }
    }
    if let Some(ms) = o.api_timeout_ms {
        nas.api_timeout_ms = ms;
    }
    if let Some(w) = &o.counter_wrap {
        nas.counter_wrap = w == "auto";
    }
    if let Some(v) = &o.stop_event {
        nas.stop_event = v == "yes";
    }
    set(&mut nas.redirect_list, &o.redirect_list);
    match o.nas_timezone.as_deref().map(str::trim) {
        None => {}
        Some("") => nas.timezone = None,
        Some(tz) => {
            crate::config::parse_timezone(tz)
                .map_err(|why| CliError::Input(format!("--nas-timezone {tz:?}: {why}")))?;
            nas.timezone = Some(tz.to_string());
        }
    }
    if nas.coa_port == 0 || nas.api_port == 0 || nas.api_timeout_ms == 0 {
        return Err(CliError::Input(
            "ports and the API timeout must be greater than 0".into(),
        ));
    }
    Ok(())
}

pub(super) fn run_nas(cli: &Cli, cmd: &NasCommand, tz: Tz) -> Result<String, CliError> {
    match cmd {
        NasCommand::List => {
            let rows = open_reader(cli)?.nas_list()?;
            if cli.json {
                nas_json(&rows, tz)
            } else {
                Ok(nas_table(&rows))
            }
        }
        NasCommand::Add(args) => {
            let ip = args.nas_ip.to_string();
            let mut nas = NasConfig::new(ip.clone());
            nas.name = Some(args.name.clone());
            // Before the open: bad input (a secret file open to all) creates no database.
            apply(&mut nas, &args.opts)?;
            let db = Admin::open(&cli.db).map_err(super::map_open)?;
            if db.nas_get(&ip)?.is_some() || db.nas_get(&args.name)?.is_some() {
                return Err(CliError::Input(format!(
                    "a NAS {ip} or named {} exists already; use `nas set`",
                    cell(&args.name)
                )));
            }
            db.nas_upsert(&nas, periods::now())?;
            Ok(format!("added NAS {}\n", nas.nas_ip))
        }
        NasCommand::Set(args) => {
            let db = super::open_admin(cli)?;
            let Some(row) = db.nas_get(&args.nas)? else {
                return Err(no_nas(&args.nas));
            };
            let mut nas = row.config;
            if let Some(name) = &args.name {
                nas.name = (!name.is_empty()).then(|| name.clone());
            }
            apply(&mut nas, &args.opts)?;
            db.nas_upsert(&nas, periods::now())?;
            Ok(format!("updated NAS {}\n", nas.nas_ip))
        }
        NasCommand::Remove { nas } => {
            let db = super::open_admin(cli)?;
            if db.nas_remove(nas)? {
                Ok(format!("removed NAS {}\n", cell(nas)))
            } else {
                Err(no_nas(nas))
            }
        }
    }
}

fn no_nas(key: &str) -> CliError {
    CliError::Input(format!("no NAS with IP or name {}", cell(key)))
}

pub(super) fn run_queue(cli: &Cli, cmd: &QueueCommand, tz: Tz) -> Result<String, CliError> {
    match cmd {
        QueueCommand::Actions { user } => super::states::run_actions(cli, user.as_deref(), tz),
        QueueCommand::Counts => {
            let counts = open_reader(cli)?.queue_counts()?;
            if cli.json {
                return super::capping::json_out(&counts);
            }
            if counts.is_empty() {
                return Ok("every queue is empty\n".to_string());
            }
            let rows: Vec<Vec<String>> = counts
                .iter()
                .map(|c| vec![c.queue.to_string(), c.state.clone(), c.jobs.to_string()])
                .collect();
            Ok(table(
                &[
                    ("QUEUE", Align::Left),
                    ("STATE", Align::Left),
                    ("JOBS", Align::Right),
                ],
                &rows,
            ))
        }
        QueueCommand::List { state } => {
            let jobs = open_reader(cli)?.queue_list(*state)?;
            if cli.json {
                queue_json(&jobs, tz)
            } else {
                Ok(queue_table(&jobs, tz))
            }
        }
        QueueCommand::Retry { id, all_failed } => {
            let db = super::open_admin(cli)?;
            let target = match (id, all_failed) {
                (Some(id), false) => RetryTarget::Id(*id),
                _ => RetryTarget::AllFailed,
            };
            let n = db.queue_retry(target, periods::now())?;
            if let (RetryTarget::Id(id), 0) = (target, n) {
                return Err(CliError::Input(format!(
                    "no job {id} to retry (no such job, or it is done)"
                )));
            }
            count_reply(cli, "retried", n)
        }
        QueueCommand::Purge { older_than, .. } => {
            let db = super::open_admin(cli)?;
            let n = db.queue_purge(older_than.map(|age| periods::now().saturating_sub(age)))?;
            count_reply(cli, "purged", n)
        }
    }
}

fn count_reply(cli: &Cli, verb: &str, n: usize) -> Result<String, CliError> {
    if cli.json {
        super::capping::json_out(&serde_json::json!({ verb: n }))
    } else {
        Ok(format!("{verb} {n} job(s)\n"))
    }
}

#[derive(Serialize)]
struct NasJson<'a> {
    id: i64,
    nas_ip: &'a str,
    name: Option<&'a str>,
    #[serde(rename = "type")]
    nas_type: &'a str,
    coa_host: Option<&'a str>,
    coa_port: u16,
    secret_set: bool,
    api_host: Option<&'a str>,
    /// `api_host`, else the NAS IP: where the API is reached.
    api_effective_host: &'a str,
    api_port: u16,
    api_user: Option<&'a str>,
    api_password_set: bool,
    /// User and password set: the NAS can be worked on over its API (bulk sweep).
    api_credentials: bool,
    api_tls: bool,
    api_tls_verify: bool,
    api_ca_set: bool,
    api_timeout_ms: u32,
    counter_wrap: &'static str,
    timezone: Option<&'a str>,
    stop_event: bool,
    redirect_list: Option<&'a str>,
    created: i64,
    created_local: Option<String>,
    updated: i64,
    updated_local: Option<String>,
}

fn nas_json(rows: &[NasRow], tz: Tz) -> Result<String, CliError> {
    let nas: Vec<NasJson> = rows
        .iter()
        .map(|r| {
            let c = &r.config;
            NasJson {
                id: r.id,
                nas_ip: &c.nas_ip,
                name: c.name.as_deref(),
                nas_type: &c.nas_type,
                coa_host: c.coa_host.as_deref(),
                coa_port: c.coa_port,
                secret_set: c.secret.is_some(),
                api_host: c.api_host.as_deref(),
                api_effective_host: c.api_host_or_ip(),
                api_port: c.api_port,
                api_user: c.api_user.as_deref(),
                api_password_set: c.api_password.is_some(),
                api_credentials: has_api(c),
                api_tls: c.api_tls,
                api_tls_verify: c.api_tls_verify,
                api_ca_set: c.api_ca.is_some(),
                api_timeout_ms: c.api_timeout_ms,
                counter_wrap: wrap_name(c),
                timezone: c.timezone.as_deref(),
                stop_event: c.stop_event,
                redirect_list: c.redirect_list.as_deref(),
                created: r.created,
                created_local: rfc3339(r.created, tz),
                updated: r.updated,
                updated_local: rfc3339(r.updated, tz),
            }
        })
        .collect();
    super::capping::json_out(&serde_json::json!({ "nas": nas }))
}

/// `user@host:port tls` (the host defaults to the NAS IP), without the password;
/// `none`, and what is missing, for a NAS without API credentials.
fn api_cell(c: &NasConfig) -> String {
    if !has_api(c) {
        let user = c.api_user.as_deref().is_some_and(|u| !u.is_empty());
        return match (user, c.api_password.is_some()) {
            (false, false) => "none",
            (false, true) => "none (no API user)",
            (true, _) => "none (no API password)",
        }
        .into();
    }
    let user = c.api_user.as_deref().unwrap_or_default();
    let tls = tls_name(c);
    cell(&format!(
        "{user}@{}:{}{tls}",
        c.api_host_or_ip(),
        c.api_port
    ))
}

/// API-SSL and how its certificate is checked, as `nas list` shows it.
fn tls_name(c: &NasConfig) -> &'static str {
    match (c.api_tls, c.api_tls_verify, c.api_ca.is_some()) {
        (false, _, _) => "",
        (true, false, _) => " tls NOT VERIFIED",
        (true, true, true) => " tls (CA)",
        (true, true, false) => " tls (no CA: refused)",
    }
}

fn wrap_name(c: &NasConfig) -> &'static str {
    if c.counter_wrap {
        "auto"
    } else {
        "off"
    }
}

fn nas_table(rows: &[NasRow]) -> String {
    if rows.is_empty() {
        return "no NASes configured\n".to_string();
    }
    let headers = [
        ("NAS-IP", Align::Left),
        ("NAME", Align::Left),
        ("TYPE", Align::Left),
        ("COA", Align::Left),
        ("SECRET", Align::Left),
        ("WRAP", Align::Left),
        ("API", Align::Left),
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = &r.config;
            let coa_host = c.coa_host.as_deref().unwrap_or(&c.nas_ip);
            vec![
                cell(&c.nas_ip),
                c.name.as_deref().map_or("-".to_string(), cell),
                cell(&c.nas_type),
                cell(&format!("{coa_host}:{}", c.coa_port)),
                if c.secret.is_some() { "set" } else { "-" }.to_string(),
                wrap_name(c).to_string(),
                api_cell(c),
            ]
        })
        .collect();
    table(&headers, &body)
}

#[derive(Serialize)]
struct JobJson<'a> {
    id: i64,
    nas_ip: &'a str,
    session_key: &'a str,
    username: &'a str,
    acct_session_id: &'a str,
    framed_ip: Option<&'a str>,
    session_start: i64,
    reason: &'a str,
    state: JobState,
    method: Option<crate::store::Method>,
    attempts: u32,
    last_error: Option<&'a str>,
    error_cause: Option<u32>,
    next_attempt_at: i64,
    next_attempt_at_local: Option<String>,
    created: i64,
    created_local: Option<String>,
    updated: i64,
    updated_local: Option<String>,
}

fn queue_json(jobs: &[DisconnectJob], tz: Tz) -> Result<String, CliError> {
    let jobs: Vec<JobJson> = jobs
        .iter()
        .map(|j| JobJson {
            id: j.id,
            nas_ip: &j.nas_ip,
            session_key: &j.session_key,
            username: &j.username,
            acct_session_id: &j.acct_session_id,
            framed_ip: j.framed_ip.as_deref(),
            session_start: j.session_start,
            reason: &j.reason,
            state: j.state,
            method: j.method,
            attempts: j.attempts,
            last_error: j.last_error.as_deref(),
            error_cause: j.error_cause,
            next_attempt_at: j.next_attempt_at,
            next_attempt_at_local: rfc3339(j.next_attempt_at, tz),
            created: j.created,
            created_local: rfc3339(j.created, tz),
            updated: j.updated,
            updated_local: rfc3339(j.updated, tz),
        })
        .collect();
    super::capping::json_out(&serde_json::json!({ "jobs": jobs }))
}

fn queue_table(jobs: &[DisconnectJob], tz: Tz) -> String {
    if jobs.is_empty() {
        return "no disconnect jobs match\n".to_string();
    }
    let headers = [
        ("ID", Align::Right),
        ("USER", Align::Left),
        ("NAS", Align::Left),
        ("SESSION", Align::Left),
        ("REASON", Align::Left),
        ("STATE", Align::Left),
        ("TRIES", Align::Right),
        ("NEXT", Align::Left),
        ("LAST-ERROR", Align::Left),
    ];
    let body: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let state = match j.method {
                Some(m) => format!("{} ({})", j.state.as_str(), m.as_str()),
                None => j.state.as_str().to_string(),
            };
            let next = match j.state {
                JobState::Pending | JobState::DmFailed => local_time(j.next_attempt_at, tz),
                JobState::Unconfirmed => "next interim".into(),
                _ => "-".into(),
            };
            let err = match (&j.last_error, j.error_cause) {
                (Some(e), Some(c)) => format!("{} (Error-Cause {c})", cell(e)),
                (Some(e), None) => cell(e),
                (None, _) => "-".into(),
            };
            vec![
                j.id.to_string(),
                cell(&j.username),
                cell(&j.nas_ip),
                cell(&j.session_key),
                cell(&j.reason),
                state,
                j.attempts.to_string(),
                next,
                err,
            ]
        })
        .collect();
    table(&headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let ok = [
            ("30", 30),
            ("30s", 30),
            ("15m", 900),
            ("12h", 43_200),
            ("7d", 604_800),
            ("2w", 1_209_600),
        ];
        for (s, want) in ok {
            assert_eq!(parse_age(s), Ok(want), "{s}");
        }
        for bad in ["", "d", "7x", "-1d", "1.5h", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_from_the_first_line() {
        let mut input = std::io::Cursor::new("pa ss\r\nignored\n");
        assert_eq!(read_secret_line(&mut input, "x", "stdin").unwrap(), "pa ss");
        let mut input = std::io::Cursor::new("no newline");
        assert_eq!(
            read_secret_line(&mut input, "x", "stdin").unwrap(),
            "no newline"
        );
        for empty in ["\n", "\r\nsecond", ""] {
            let e = read_secret_line(&mut std::io::Cursor::new(empty), "API password", "stdin");
            assert!(
                matches!(&e, Err(CliError::Input(m)) if m == "no API password on the first line of stdin"),
                "{empty:?}: {e:?}"
            );
        }
    }

    #[test]
    fn api_cell_never_shows_the_password() {
        let mut c = NasConfig::new("127.0.0.2");
        assert_eq!(api_cell(&c), "none");
        c.api_host = Some("127.0.0.9".into());
        assert_eq!(api_cell(&c), "none");
        c.api_user = Some("radius".into());
        assert_eq!(api_cell(&c), "none (no API password)");
        c.api_password = Some("hunter2".into());
        assert_eq!(api_cell(&c), "radius@127.0.0.9:8728");
        c.api_tls = true;
        c.api_port = 8729;
        assert_eq!(api_cell(&c), "radius@127.0.0.9:8729 tls (no CA: refused)");
        c.api_ca = Some("-----BEGIN CERTIFICATE-----".into());
        assert_eq!(api_cell(&c), "radius@127.0.0.9:8729 tls (CA)");
        c.api_tls_verify = false;
        assert_eq!(api_cell(&c), "radius@127.0.0.9:8729 tls NOT VERIFIED");
        c.api_user = Some(String::new());
        assert_eq!(api_cell(&c), "none (no API user)");
    }

    #[test]
    fn api_cell_shows_the_nas_ip_when_no_api_host_is_set() {
        let mut c = NasConfig::new("127.0.0.2");
        c.api_user = Some("radius".into());
        c.api_password = Some("hunter2".into());
        assert_eq!(api_cell(&c), "radius@127.0.0.2:8728");
        c.api_host = Some(String::new());
        assert_eq!(api_cell(&c), "radius@127.0.0.2:8728");
    }
}
