//! `limits`, `topup` and `autotopup`: capping limits and topups kept in the store.
//!
//! Write commands open the store read-write (its writer serializes them with the
//! module's own writes); they never create a database.

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::format::{cell, human_bytes, human_duration, local_time, rfc3339, table, Align};
use super::{open_reader, Cli, CliError};
use crate::capping::{
    evaluate, parse_limits, summarize, EvalInput, EvalOptions, Period, PeriodKind, Usage,
};
use crate::periods;
use crate::store::{raw_limits, Store, StoreError, StoreOptions};
use crate::topups::{Kind, NewTopup, Topup, TYPE_TRAFFIC, TYPE_UPTIME};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LimitsArgs {
    /// Show this user's limits, this month's usage, topups and what remains.
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: Option<String>,
    /// The module's capping period (`capping { period }`).
    #[arg(long, value_enum, default_value = "month")]
    pub period: PeriodArg,
    /// As the module's `capping { caveat_captrafzero = yes }`: unset = prepaid, 0 = unlimited.
    #[arg(long)]
    pub caveat_captrafzero: bool,
    #[command(subcommand)]
    pub command: Option<LimitsCommand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeriodArg {
    Month,
    Day,
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Set a user's traffic and/or uptime limit per month.
    Set(LimitsSetArgs),
    /// Remove a user's limits (both when neither flag is given): unlimited again.
    Unset(LimitsUnsetArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("limit").required(true).multiple(true))]
pub struct LimitsSetArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    /// Traffic per month in MB (input + output); 0 = only topups.
    #[arg(long, value_name = "N", group = "limit")]
    pub traffic_mb: Option<u64>,
    /// Uptime per month in minutes; 0 = only topups.
    #[arg(long, value_name = "N", group = "limit")]
    pub uptime_min: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LimitsUnsetArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    #[arg(long)]
    pub traffic: bool,
    #[arg(long)]
    pub uptime: bool,
}

#[derive(Debug, Subcommand)]
pub enum TopupCommand {
    /// Add a topup of traffic (MB) or uptime (minutes).
    Add(TopupAddArgs),
    /// List topups, by user then id (default: only current ones).
    List(TopupListArgs),
    /// Delete a topup and what it consumed.
    Remove(TopupRemoveArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("amount").required(true))]
pub struct TopupAddArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    /// Extra traffic in MB.
    #[arg(long, value_name = "MB", group = "amount")]
    pub traffic: Option<u64>,
    /// Extra uptime in minutes.
    #[arg(long, value_name = "MIN", group = "amount")]
    pub uptime: Option<u64>,
    /// Start of validity: YYYY-MM-DD (local midnight in --timezone) or RFC 3339; default now.
    #[arg(long, value_name = "DATE")]
    pub valid_from: Option<String>,
    /// End of validity (exclusive), same formats.
    #[arg(long, value_name = "DATE")]
    pub valid_to: String,
}

#[derive(Debug, Args)]
pub struct TopupListArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: Option<String>,
    /// Include expired and depleted topups.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct TopupRemoveArgs {
    pub id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Traffic,
    Uptime,
}

impl KindArg {
    fn kind(self) -> Kind {
        match self {
            KindArg::Traffic => Kind::Traffic,
            KindArg::Uptime => Kind::Uptime,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AutotopupCommand {
    /// Enable automatic topups of one kind (replaces that kind's settings).
    Set(AutotopupSetArgs),
    /// Disable automatic topups of one kind.
    Disable(AutotopupDisableArgs),
}

#[derive(Debug, Args)]
pub struct AutotopupSetArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    #[arg(long = "type", value_enum)]
    pub kind: KindArg,
    /// MB / minutes per automatic topup.
    #[arg(long, value_name = "N")]
    pub amount: u64,
    /// Most MB / minutes added per month (default: no limit).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Add when at most this much remains (default: amount / 2).
    #[arg(long, value_name = "N")]
    pub threshold: Option<u64>,
    /// Notification targets, comma separated.
    #[arg(long, value_name = "LIST")]
    pub notify: Option<String>,
}

#[derive(Debug, Args)]
pub struct AutotopupDisableArgs {
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    #[arg(long = "type", value_enum)]
    pub kind: KindArg,
}

fn limit_attr(kind: Kind) -> &'static str {
    match kind {
        Kind::Traffic => "Rust-Capping-Traffic-Limit",
        Kind::Uptime => "Rust-Capping-Uptime-Limit",
    }
}

fn auto_attr(kind: Kind, what: &str) -> String {
    let k = match kind {
        Kind::Traffic => "Traffic",
        Kind::Uptime => "Uptime",
    };
    format!("Rust-AutoTopup-{k}-{what}")
}

/// Opens the store for writing; refuses to create a new database.
pub(super) fn open_writer(cli: &Cli, tz: Tz) -> Result<Store, CliError> {
    match crate::store::DbLocation::parse(&cli.db) {
        Ok(l) if l.path().is_some_and(|p| !p.exists()) => {
            return Err(CliError::NoDatabase {
                path: cli.db.clone(),
            })
        }
        // PostgreSQL: the module must have created its schema there.
        Ok(l) if l.path().is_none() => drop(super::open_reader(cli)?),
        _ => {}
    }
    let opts = StoreOptions {
        timezone: tz,
        ..StoreOptions::default()
    };
    Store::open(&cli.db, opts).map_err(|e| match e {
        e @ StoreError::Open { .. } => CliError::CannotOpen { source: e },
        e => CliError::Store(e),
    })
}

/// Every command's `--json` output: pretty, one trailing newline.
pub(super) fn json_out(value: &impl serde::Serialize) -> Result<String, CliError> {
    let mut out = serde_json::to_string_pretty(value)?;
    out.push('\n');
    Ok(out)
}

/// `YYYY-MM-DD` (local midnight in `tz`) or RFC 3339.
pub fn parse_date(s: &str, tz: Tz) -> Result<i64, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        return Ok(periods::day_start(d, tz));
    }
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.timestamp())
        .map_err(|_| format!("invalid date {s:?} (use YYYY-MM-DD or RFC 3339)"))
}

pub fn run_limits(cli: &Cli, args: &LimitsArgs, tz: Tz) -> Result<String, CliError> {
    match (&args.command, &args.user) {
        (Some(LimitsCommand::Set(a)), _) => {
            let store = open_writer(cli, tz)?;
            let mut values = Vec::new();
            let traffic = a.traffic_mb.map(|n| n.to_string());
            let uptime = a.uptime_min.map(|n| n.to_string());
            if let Some(v) = &traffic {
                values.push((limit_attr(Kind::Traffic), v.as_str()));
            }
            if let Some(v) = &uptime {
                values.push((limit_attr(Kind::Uptime), v.as_str()));
            }
            store.limits_set(&a.user, &values)?;
            limits_changed(cli, &store, &a.user, "limits set")
        }
        (Some(LimitsCommand::Unset(a)), _) => {
            let store = open_writer(cli, tz)?;
            let both = !a.traffic && !a.uptime;
            let mut attrs = Vec::new();
            if a.traffic || both {
                attrs.push(limit_attr(Kind::Traffic));
            }
            if a.uptime || both {
                attrs.push(limit_attr(Kind::Uptime));
            }
            store.limits_unset(&a.user, &attrs)?;
            limits_changed(cli, &store, &a.user, "limits unset")
        }
        (None, Some(user)) => {
            let kind = match args.period {
                PeriodArg::Month => PeriodKind::Month,
                PeriodArg::Day => PeriodKind::Day,
            };
            show_limits(cli, user, tz, kind, args.caveat_captrafzero)
        }
        (None, None) => Err(CliError::Input(
            "give a USER, or `limits set` / `limits unset`".into(),
        )),
    }
}

fn limits_changed(cli: &Cli, store: &Store, user: &str, what: &str) -> Result<String, CliError> {
    let rows = store.user_limits(user)?;
    if cli.json {
        return json_out(&serde_json::json!({ "username": user, "attributes": rows }));
    }
    let mut out = format!("{what} for {}\n", cell(user));
    for r in &rows {
        out.push_str(&format!("  {} = {}\n", r.attribute, cell(&r.value)));
    }
    Ok(out)
}

fn show_limits(
    cli: &Cli,
    user: &str,
    tz: Tz,
    kind: PeriodKind,
    caveat_captrafzero: bool,
) -> Result<String, CliError> {
    let reader = open_reader(cli)?;
    let now = periods::now();
    let period = Period::containing(kind, now, &tz)
        .ok_or_else(|| CliError::Input("the current time is out of range".into()))?;
    let rows = reader.user_limits(user)?;
    let limits = parse_limits(user, &raw_limits(&rows), caveat_captrafzero)
        .map_err(|e| CliError::Input(format!("stored limits are invalid: {e}")))?;
    let (usage, topups, marks) = reader.capping_inputs(user, period, tz)?;
    let opts = EvalOptions::default();
    let input = EvalInput {
        username: user,
        limits: &limits,
        usage,
        delta: Usage::default(),
        marks: &marks,
        topups: &topups,
        period,
        now,
        opts: &opts,
    };
    let traffic = summarize(&input, Kind::Traffic);
    let uptime = summarize(&input, Kind::Uptime);
    let decision = evaluate(&input);
    let state = if decision.is_exhausted() {
        "exhausted"
    } else {
        "allowed"
    };
    let topup_list: Vec<Topup> = topups.iter().map(|t| t.topup.clone()).collect();
    if cli.json {
        return json_out(&serde_json::json!({
            "username": user,
            "period": {
                "start": period.start,
                "start_local": rfc3339(period.start, tz),
                "end": period.end,
                "end_local": rfc3339(period.end, tz),
            },
            "attributes": rows,
            "traffic": traffic,
            "uptime": uptime,
            "topups": topups_json(&topup_list, tz),
            "state": state,
            "pending_auto_topups": decision.new_auto_topups.len(),
            "explanation": decision.explanation,
        }));
    }
    let mut out = format!(
        "{} — {} to {}: {state}\n",
        cell(user),
        local_time(period.start, tz),
        local_time(period.end, tz)
    );
    let fmt = |kind: Kind, v: u64| match kind {
        Kind::Traffic => human_bytes(v),
        Kind::Uptime => human_duration(v),
    };
    let body: Vec<Vec<String>> = [(Kind::Traffic, &traffic), (Kind::Uptime, &uptime)]
        .iter()
        .map(|(kind, r)| {
            vec![
                kind.name().to_string(),
                r.limit
                    .map_or("unlimited".into(), |l| format!("{l} {}", kind.unit_name())),
                fmt(*kind, r.usage),
                fmt(*kind, r.topups),
                match r.remaining {
                    None => "unlimited".into(),
                    Some(x) if x <= 0 => format!("-{} (over)", fmt(*kind, x.unsigned_abs())),
                    Some(x) => fmt(*kind, x.unsigned_abs()),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            ("KIND", Align::Left),
            ("LIMIT", Align::Right),
            ("USED", Align::Right),
            ("TOPUPS", Align::Right),
            ("REMAINING", Align::Right),
        ],
        &body,
    ));
    if !topup_list.is_empty() {
        out.push('\n');
        out.push_str(&topups_table(&topup_list, tz));
    }
    Ok(out)
}

#[derive(Serialize)]
struct TopupJson<'a> {
    id: u64,
    username: &'a str,
    kind: Option<Kind>,
    auto: bool,
    type_bits: u32,
    value: u64,
    unit: &'static str,
    valid_from: i64,
    valid_from_local: Option<String>,
    valid_to: i64,
    valid_to_local: Option<String>,
    depleted: bool,
    depleted_at: Option<i64>,
    created: i64,
}

fn topups_json(rows: &[Topup], tz: Tz) -> Vec<TopupJson<'_>> {
    rows.iter()
        .map(|t| TopupJson {
            id: t.id,
            username: &t.user,
            kind: t.kind(),
            auto: t.is_auto(),
            type_bits: t.type_bits,
            value: t.value,
            unit: t.kind().map_or("", Kind::unit_name),
            valid_from: t.valid_from,
            valid_from_local: rfc3339(t.valid_from, tz),
            valid_to: t.valid_to,
            valid_to_local: rfc3339(t.valid_to, tz),
            depleted: t.depleted,
            depleted_at: t.depleted_at,
            created: t.created,
        })
        .collect()
}

fn topups_table(rows: &[Topup], tz: Tz) -> String {
    if rows.is_empty() {
        return "no topups\n".to_string();
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                cell(&t.user),
                format!(
                    "{}{}",
                    t.kind().map_or("invalid", Kind::name),
                    if t.is_auto() { " (auto)" } else { "" }
                ),
                format!("{} {}", t.value, t.kind().map_or("", Kind::unit_name)),
                local_time(t.valid_from, tz),
                local_time(t.valid_to, tz),
                if t.depleted { "depleted" } else { "-" }.to_string(),
            ]
        })
        .collect();
    table(
        &[
            ("ID", Align::Right),
            ("USER", Align::Left),
            ("TYPE", Align::Left),
            ("VALUE", Align::Right),
            ("VALID-FROM", Align::Left),
            ("VALID-TO", Align::Left),
            ("STATE", Align::Left),
        ],
        &body,
    )
}

pub fn run_topup(cli: &Cli, cmd: &TopupCommand, tz: Tz) -> Result<String, CliError> {
    match cmd {
        TopupCommand::Add(a) => {
            let now = periods::now();
            let valid_from = match &a.valid_from {
                Some(s) => parse_date(s, tz).map_err(CliError::Input)?,
                None => now,
            };
            let valid_to = parse_date(&a.valid_to, tz).map_err(CliError::Input)?;
            if valid_to <= valid_from {
                return Err(CliError::Input(format!(
                    "--valid-to ({}) must be after --valid-from ({})",
                    local_time(valid_to, tz),
                    local_time(valid_from, tz)
                )));
            }
            let (type_bits, value) = match (a.traffic, a.uptime) {
                (Some(v), None) => (TYPE_TRAFFIC, v),
                (None, Some(v)) => (TYPE_UPTIME, v),
                _ => return Err(CliError::Input("give --traffic or --uptime".into())),
            };
            if value == 0 {
                return Err(CliError::Input("a topup must be larger than 0".into()));
            }
            let store = open_writer(cli, tz)?;
            let id = store.topup_add(NewTopup {
                user: a.user.clone(),
                type_bits,
                valid_from,
                valid_to,
                value,
                created: now,
                consumed: 0,
                depleted: false,
            })?;
            let added = store.topup_get(id)?.into_iter().collect::<Vec<_>>();
            if cli.json {
                return json_out(&serde_json::json!({ "topup": topups_json(&added, tz).first() }));
            }
            Ok(format!("added topup {id}\n{}", topups_table(&added, tz)))
        }
        TopupCommand::List(a) => {
            let reader = open_reader(cli)?;
            let rows = reader.topup_list(a.user.as_deref(), a.all, periods::now())?;
            if cli.json {
                return json_out(&serde_json::json!({ "topups": topups_json(&rows, tz) }));
            }
            Ok(topups_table(&rows, tz))
        }
        TopupCommand::Remove(a) => {
            let store = open_writer(cli, tz)?;
            if !store.topup_remove(a.id)? {
                return Err(CliError::Input(format!("no topup with id {}", a.id)));
            }
            if cli.json {
                return json_out(&serde_json::json!({ "removed": a.id }));
            }
            Ok(format!("removed topup {}\n", a.id))
        }
    }
}

pub fn run_autotopup(cli: &Cli, cmd: &AutotopupCommand, tz: Tz) -> Result<String, CliError> {
    match cmd {
        AutotopupCommand::Set(a) => {
            let kind = a.kind.kind();
            if a.amount == 0 {
                return Err(CliError::Input("--amount must be larger than 0".into()));
            }
            let store = open_writer(cli, tz)?;
            let (enabled, amount) = (auto_attr(kind, "Enabled"), auto_attr(kind, "Amount"));
            let (limit, threshold) = (auto_attr(kind, "Limit"), auto_attr(kind, "Threshold"));
            let notify = auto_attr(kind, "Notify");
            let amount_v = a.amount.to_string();
            let limit_v = a.limit.map(|n| n.to_string());
            let threshold_v = a.threshold.map(|n| n.to_string());
            let mut set: Vec<(&str, &str)> = vec![(&enabled, "yes"), (&amount, &amount_v)];
            let mut unset: Vec<&str> = Vec::new();
            for (attr, value) in [
                (&limit, limit_v.as_deref()),
                (&threshold, threshold_v.as_deref()),
                (&notify, a.notify.as_deref()),
            ] {
                match value {
                    Some(v) => set.push((attr, v)),
                    None => unset.push(attr),
                }
            }
            // Set first (validated); dropping options cannot make limits invalid.
            store.limits_set(&a.user, &set)?;
            store.limits_unset(&a.user, &unset)?;
            limits_changed(cli, &store, &a.user, "auto-topup set")
        }
        AutotopupCommand::Disable(a) => {
            let store = open_writer(cli, tz)?;
            let enabled = auto_attr(a.kind.kind(), "Enabled");
            store.limits_set(&a.user, &[(&enabled, "no")])?;
            limits_changed(cli, &store, &a.user, "auto-topup disabled")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_local_midnight_or_rfc3339() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let cases: &[(&str, Option<i64>)] = &[
            // 2026-12-01T00:00:00+01:00
            ("2026-12-01", Some(1_796_079_600)),
            ("2026-12-01T00:00:00Z", Some(1_796_083_200)),
            ("2026-12-01T01:00:00+01:00", Some(1_796_083_200)),
            ("2026-13-01", None),
            ("tomorrow", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_date(input, berlin).ok(), *want, "{input}");
        }
    }
}
