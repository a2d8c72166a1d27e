//! The `rlm-rust` command line: operators' view of the module's database.
//!
//! Conventions every command follows: one subcommand per noun (`sessions list`,
//! `usage USER`, ...); human tables by default and `--json` (global) for machines,
//! always a top-level JSON object with stable snake_case fields, bytes and seconds
//! as integers, times as unix seconds plus `*_local` RFC 3339 strings; errors on
//! stderr with exit code 1 (2 for usage errors, from clap). Read commands open the
//! database read-only, so they are safe while the server runs. Write commands open it
//! read-write: `nas add/set/remove` and `queue retry/purge` directly, `limits set`,
//! `topup add`, `policy add`, `user policy`, ... through the store's writer.

mod bulk;
pub(crate) mod capping;
pub(crate) mod format;
mod nas;
mod operator;
mod policy;
mod states;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::store::{
    OpenState, PeriodKind, Reader, SessionFilter, SessionRow, StoreError, UsageRow,
};
use format::{cell, human_bytes, human_duration, local_time, rfc3339, table, Align};

pub use crate::config::DEFAULT_DB;

#[derive(Debug, Parser)]
#[command(
    name = "rlm-rust",
    version,
    about = "Inspect rlm_rust's sessions and usage; manage NASes, the disconnect queue, capping limits, topups and product policies"
)]
pub struct Cli {
    /// The module's store: a SQLite file, or a PostgreSQL connection string (pass it in the environment to keep a password out of the process list).
    #[arg(long, global = true, env = "RLM_RUST_DB", default_value = DEFAULT_DB, value_name = "PATH")]
    pub db: PathBuf,
    /// Machine-readable JSON output instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Time zone for displaying times (default: the system's). Usage periods are the
    /// module's own, computed in its configured zone when it recorded them.
    #[arg(long, global = true, env = "RLM_RUST_TIMEZONE", value_name = "TZ", value_parser = parse_tz)]
    pub timezone: Option<Tz>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accounting sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Usage of a user per month and per day.
    Usage(UsageArgs),
    /// NASes the module disconnects sessions on (RFC 5176, RouterOS API).
    #[command(subcommand)]
    Nas(nas::NasCommand),
    /// The disconnect queue.
    #[command(subcommand)]
    Queue(nas::QueueCommand),
    /// Remove sessions that started before the month (or --before) over each NAS's
    /// RouterOS API; NASes without API credentials are left to the per-session path.
    BulkDisconnect(bulk::BulkArgs),
    /// Capping limits of a user: show, set, unset.
    Limits(capping::LimitsArgs),
    /// Topups (extra traffic or uptime).
    #[command(subcommand)]
    Topup(capping::TopupCommand),
    /// Automatic topups.
    #[command(subcommand)]
    Autotopup(capping::AutotopupCommand),
    /// Product policies: named sets of rules (concurrency, devices, timeouts, quotas,
    /// schedule, rates, custom attributes) assigned to users.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// A user's policy: assign, unassign, show.
    #[command(subcommand)]
    User(policy::UserCommand),
    /// Service sessions (Service-Timeout / Service-Volume) on top of users' sessions.
    #[command(subcommand)]
    Service(states::ServiceCommand),
    /// Subscriber state changes (user_auth, user_redirect, own_disabled, ...) and
    /// their hooks' outcomes.
    Events(states::EventsArgs),
    /// Copy a SQLite store into a new, empty PostgreSQL one (stop the servers that
    /// write the SQLite file first).
    MigrateStore(MigrateStoreArgs),
    /// The operator console: web screens and a JSON API on this store (runs until
    /// SIGTERM or Ctrl-C).
    Serve(operator::ServeArgs),
    /// The console's operators: add, list, passwd, role, remove.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
}

#[derive(Debug, Args)]
pub struct MigrateStoreArgs {
    /// The SQLite store to copy.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The PostgreSQL store, as the module's `db` option. Pass it in the environment
    /// (or with passfile=) to keep a password out of the process list.
    #[arg(
        long,
        env = "RLM_RUST_MIGRATE_TO",
        value_name = "URL",
        hide_env_values = true
    )]
    pub to: String,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this user's sessions.
    #[arg(long, value_name = "USER", value_parser = crate::cli::user_arg())]
    pub user: Option<String>,
    /// Only sessions of this NAS (its IP address).
    #[arg(long, value_name = "IP")]
    pub nas: Option<String>,
    /// Only open sessions.
    #[arg(long, conflicts_with = "closed")]
    pub open: bool,
    /// Only closed sessions.
    #[arg(long)]
    pub closed: bool,
    /// At most N sessions (0: all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The username (User-Name) to show.
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
}

/// A user name argument, taken as the bytes the shell passed (a NAS may have sent
/// Latin-1: `rlm-rust usage $'m\xfcller'`), exact as the module stores it.
pub(crate) fn user_arg() -> impl clap::builder::TypedValueParser<Value = String> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(|s| crate::names::from_os(&s))
}

fn parse_tz(s: &str) -> Result<Tz, String> {
    crate::config::parse_timezone(s).map_err(|why| format!("unknown time zone {s:?}: {why}"))
}

/// The system's time zone, else UTC.
fn system_tz() -> Tz {
    crate::config::parse_timezone("local").unwrap_or(chrono_tz::UTC)
}

/// Errors a command reports to the operator.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "database {} does not exist; point --db or RLM_RUST_DB at the module's database (default {DEFAULT_DB})",
        path.display()
    )]
    NoDatabase { path: PathBuf },
    #[error("{source} (check the path and that this user may read it, and its directory)")]
    CannotOpen { source: StoreError },
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Bad input or a missing object; the message says which.
    #[error("{0}")]
    Input(String),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The command ran but part of it failed: `stdout` is still printed.
    #[error("{message}")]
    Partial { stdout: String, message: String },
}

/// A store that cannot be opened, as the CLI says it.
pub(crate) fn map_open(e: StoreError) -> CliError {
    match e {
        StoreError::NotFound { path } => CliError::NoDatabase { path },
        e @ StoreError::Open { .. } => CliError::CannotOpen { source: e },
        e => CliError::Store(e),
    }
}

pub(crate) fn open_reader(cli: &Cli) -> Result<Reader, CliError> {
    Reader::open(&cli.db).map_err(map_open)
}

/// The database read-write on a direct connection (it must exist).
pub(crate) fn open_admin(cli: &Cli) -> Result<crate::store::Admin, CliError> {
    crate::store::Admin::open_existing(&cli.db).map_err(map_open)
}

/// Runs a command given as its words after `rlm-rust` with `--json`, in this process:
/// how the console reads and changes what the CLI does, through the same code.
pub fn run_json(
    db: &std::path::Path,
    tz: Tz,
    words: Vec<std::ffi::OsString>,
) -> Result<serde_json::Value, CliError> {
    let mut argv: Vec<std::ffi::OsString> = vec!["rlm-rust".into(), "--json".into()];
    argv.extend(words);
    let mut cli = Cli::try_parse_from(argv).map_err(|e| {
        CliError::Input(
            e.render()
                .to_string()
                .lines()
                .next()
                .unwrap_or("invalid input")
                .trim_start_matches("error: ")
                .to_string(),
        )
    })?;
    cli.db = db.to_path_buf();
    cli.timezone = Some(tz);
    let out = match run(&cli) {
        Ok(out) => out,
        Err(CliError::Partial { stdout, message }) if !stdout.is_empty() => {
            return Err(CliError::Partial { stdout, message })
        }
        Err(e) => return Err(e),
    };
    Ok(serde_json::from_str(&out)?)
}

/// Runs a parsed command; returns what to print on stdout.
pub fn run(cli: &Cli) -> Result<String, CliError> {
    let tz = cli.timezone.unwrap_or_else(system_tz);
    match &cli.command {
        Command::Sessions(SessionsCommand::List(args)) => {
            let reader = open_reader(cli)?;
            let filter = SessionFilter {
                username: args.user.clone(),
                nas_ip: args.nas.clone(),
                state: match (args.open, args.closed) {
                    (true, _) => OpenState::Open,
                    (_, true) => OpenState::Closed,
                    _ => OpenState::Any,
                },
                limit: (args.limit > 0).then_some(args.limit),
                ..Default::default()
            };
            let rows = reader.list_sessions(&filter)?;
            if cli.json {
                sessions_json(&rows, tz)
            } else {
                Ok(sessions_table(&rows, tz))
            }
        }
        Command::Usage(args) => {
            let reader = open_reader(cli)?;
            let rows = reader.usage(&args.user)?;
            if cli.json {
                usage_json(&args.user, &rows)
            } else {
                Ok(usage_table(&args.user, &rows))
            }
        }
        Command::Nas(cmd) => nas::run_nas(cli, cmd, tz),
        Command::Queue(cmd) => nas::run_queue(cli, cmd, tz),
        Command::BulkDisconnect(args) => bulk::run_bulk(cli, args, tz),
        Command::Limits(args) => capping::run_limits(cli, args, tz),
        Command::Topup(cmd) => capping::run_topup(cli, cmd, tz),
        Command::Autotopup(cmd) => capping::run_autotopup(cli, cmd, tz),
        Command::Policy(cmd) => policy::run_policy(cli, cmd, tz),
        Command::User(cmd) => policy::run_user(cli, cmd, tz),
        Command::Service(cmd) => states::run_service(cli, cmd, tz),
        Command::Events(args) => states::run_events(cli, args, tz),
        Command::MigrateStore(args) => migrate_store(cli, args),
        Command::Serve(args) => operator::run_serve(cli, args, tz),
        Command::Operator(cmd) => operator::run_operator(cli, cmd, tz),
    }
}

fn migrate_store(cli: &Cli, args: &MigrateStoreArgs) -> Result<String, CliError> {
    if !args.from.exists() {
        return Err(CliError::NoDatabase {
            path: args.from.clone(),
        });
    }
    let to = crate::store::DbLocation::parse(&args.to).map_err(CliError::Input)?;
    let report = crate::store::sqlite_to_postgres(&args.from, &to)?;
    if cli.json {
        let tables: serde_json::Map<String, serde_json::Value> = report
            .iter()
            .map(|(t, n)| (t.clone(), serde_json::json!(n)))
            .collect();
        return capping::json_out(&serde_json::json!({ "to": to.to_string(), "rows": tables }));
    }
    let rows: Vec<Vec<String>> = report
        .iter()
        .map(|(t, n)| vec![t.clone(), n.to_string()])
        .collect();
    Ok(format!(
        "copied {} into {to}\n{}",
        args.from.display(),
        table(&[("TABLE", Align::Left), ("ROWS", Align::Right)], &rows)
    ))
}

/// The library's warnings (e.g. the store tightening a database open to every user)
/// on stderr; the module sends the same to radiusd's log.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        // The console's own lines (logins, changes) only: not its HTTP stack's.
        if self.enabled(r.metadata()) && r.target().starts_with("rlm_rust") {
            let level = match r.level() {
                log::Level::Error => "error",
                log::Level::Warn => "warning",
                _ => "info",
            };
            eprintln!("rlm-rust: {level}: {}", r.args());
        }
    }
    fn flush(&self) {}
}

/// Entry point of the `rlm-rust` binary.
pub fn main() -> ExitCode {
    static LOG: StderrLog = StderrLog;
    if log::set_logger(&LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        log::set_max_level(log::LevelFilter::Info);
    }
    match run(&cli) {
        Ok(out) => {
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            if let CliError::Partial { stdout, .. } = &e {
                let _ = std::io::stdout().lock().write_all(stdout.as_bytes());
            }
            eprintln!("rlm-rust: error: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Serialize)]
struct SessionJson<'a> {
    id: i64,
    username: &'a str,
    nas_ip: &'a str,
    session_key: &'a str,
    acct_session_id: &'a str,
    nas_port: Option<u32>,
    framed_ip: Option<&'a str>,
    calling_station_id: Option<&'a str>,
    open: bool,
    start_time: i64,
    start_time_local: Option<String>,
    last_update: i64,
    last_update_local: Option<String>,
    stop_time: Option<i64>,
    stop_time_local: Option<String>,
    session_time: u64,
    input_octets: u64,
    output_octets: u64,
    terminate_cause: Option<&'a str>,
    closed_reason: Option<&'a str>,
}

fn sessions_json(rows: &[SessionRow], tz: Tz) -> Result<String, CliError> {
    let sessions: Vec<SessionJson> = rows
        .iter()
        .map(|r| {
            let s = &r.session;
            SessionJson {
                id: r.id,
                username: &s.username,
                nas_ip: &r.nas_ip,
                session_key: &r.session_key,
                acct_session_id: &s.acct_session_id,
                nas_port: s.nas_port,
                framed_ip: s.framed_ip.as_deref(),
                calling_station_id: s.calling_station_id.as_deref(),
                open: s.is_open(),
                start_time: s.start_time,
                start_time_local: rfc3339(s.start_time, tz),
                last_update: s.last_update,
                last_update_local: rfc3339(s.last_update, tz),
                stop_time: s.stop_time,
                stop_time_local: s.stop_time.and_then(|t| rfc3339(t, tz)),
                session_time: s.session_time,
                input_octets: s.input_octets,
                output_octets: s.output_octets,
                terminate_cause: s.terminate_cause.as_deref(),
                closed_reason: s.closed_reason.as_deref(),
            }
        })
        .collect();
    capping::json_out(&serde_json::json!({ "sessions": sessions }))
}

fn state_of(r: &SessionRow) -> String {
    let s = &r.session;
    match (&s.closed_reason, &s.terminate_cause) {
        _ if s.is_open() => "open".to_string(),
        (Some(reason), Some(cause)) => format!("closed ({reason}: {})", cell(cause)),
        (Some(reason), None) => format!("closed ({reason})"),
        (None, _) => "closed".to_string(),
    }
}

fn sessions_table(rows: &[SessionRow], tz: Tz) -> String {
    if rows.is_empty() {
        return "no sessions match\n".to_string();
    }
    let headers = [
        ("USER", Align::Left),
        ("NAS", Align::Left),
        ("SESSION", Align::Left),
        ("STARTED", Align::Left),
        ("ENDED", Align::Left),
        ("TIME", Align::Right),
        ("IN", Align::Right),
        ("OUT", Align::Right),
        ("FRAMED-IP", Align::Left),
        ("STATE", Align::Left),
    ];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = &r.session;
            vec![
                cell(&s.username),
                cell(&r.nas_ip),
                cell(&r.session_key),
                local_time(s.start_time, tz),
                s.stop_time.map_or("-".to_string(), |t| local_time(t, tz)),
                human_duration(s.session_time),
                human_bytes(s.input_octets),
                human_bytes(s.output_octets),
                s.framed_ip.as_deref().map_or("-".to_string(), cell),
                state_of(r),
            ]
        })
        .collect();
    table(&headers, &body)
}

#[derive(Serialize)]
struct PeriodJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    month: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<&'a str>,
    input_octets: u64,
    output_octets: u64,
    total_octets: u64,
    session_time: u64,
}

fn period_json(r: &UsageRow) -> PeriodJson<'_> {
    PeriodJson {
        month: (r.kind == PeriodKind::Month).then_some(r.period.as_str()),
        day: (r.kind == PeriodKind::Day).then_some(r.period.as_str()),
        input_octets: r.usage.input_octets,
        output_octets: r.usage.output_octets,
        total_octets: r.usage.total_octets(),
        session_time: r.usage.session_time,
    }
}

fn usage_json(user: &str, rows: &[UsageRow]) -> Result<String, CliError> {
    let of = |kind| {
        rows.iter()
            .filter(|r| r.kind == kind)
            .map(period_json)
            .collect::<Vec<_>>()
    };
    let value = serde_json::json!({
        "username": user,
        "months": of(PeriodKind::Month),
        "days": of(PeriodKind::Day),
    });
    capping::json_out(&value)
}

fn usage_table(user: &str, rows: &[UsageRow]) -> String {
    if rows.is_empty() {
        return format!("no usage recorded for {}\n", cell(user));
    }
    let section = |kind, title| {
        let body: Vec<Vec<String>> = rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| {
                vec![
                    r.period.clone(),
                    human_bytes(r.usage.input_octets),
                    human_bytes(r.usage.output_octets),
                    human_bytes(r.usage.total_octets()),
                    human_duration(r.usage.session_time),
                ]
            })
            .collect();
        let headers = [
            (title, Align::Left),
            ("IN", Align::Right),
            ("OUT", Align::Right),
            ("TOTAL", Align::Right),
            ("TIME", Align::Right),
        ];
        table(&headers, &body)
    };
    format!(
        "usage of {}\n\n{}\n{}",
        cell(user),
        section(PeriodKind::Month, "MONTH"),
        section(PeriodKind::Day, "DAY")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_conventions() {
        let cli = Cli::try_parse_from([
            "rlm-rust",
            "sessions",
            "list",
            "--user",
            "alice",
            "--open",
            "--json",
            "--db",
            "/tmp/x.sqlite",
            "--timezone",
            "Europe/Berlin",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.db, PathBuf::from("/tmp/x.sqlite"));
        assert_eq!(cli.timezone, Some(chrono_tz::Europe::Berlin));
        let Command::Sessions(SessionsCommand::List(args)) = cli.command else {
            panic!("wrong command")
        };
        assert_eq!(
            (args.user.as_deref(), args.open, args.closed, args.limit),
            (Some("alice"), true, false, 100)
        );
    }

    #[test]
    fn rejects_bad_usage() {
        let cases: [&[&str]; 3] = [
            &["rlm-rust", "sessions", "list", "--open", "--closed"],
            &["rlm-rust", "--timezone", "Mars/Olympus", "usage", "a"],
            &["rlm-rust", "usage"],
        ];
        for args in cases {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
