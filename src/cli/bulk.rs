//! `bulk-disconnect`: remove, over each NAS's RouterOS API, every session that started
//! before a boundary (default: the start of the current month). See [`crate::bulk`].

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono_tz::Tz;
use clap::Args;
use serde::Serialize;

use super::capping::parse_date;
use super::format::{cell, human_duration, local_time, rfc3339, table, Align};
use super::{Cli, CliError};
use crate::bulk::{self, BulkOptions, NasResult};
use crate::periods;

#[derive(Debug, Args)]
pub struct BulkArgs {
    /// A NAS by IP or name (repeat for several).
    #[arg(
        long,
        value_name = "NAME_OR_IP",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub nas: Vec<String>,
    /// Every registered NAS.
    #[arg(long)]
    pub all: bool,
    /// Remove sessions that started before DATE: YYYY-MM-DD (local midnight) or
    /// RFC 3339. Default: the start of the current month in --timezone.
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,
    /// Show what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// NASes worked on at once.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub parallel: usize,
}

#[derive(Serialize)]
struct Output<'a> {
    before: i64,
    before_local: Option<String>,
    dry_run: bool,
    nases: &'a [NasResult],
    failed_nases: usize,
}

pub fn run_bulk(cli: &Cli, args: &BulkArgs, tz: Tz) -> Result<String, CliError> {
    let admin = super::open_admin(cli)?;
    let now = periods::now();
    let before = match &args.before {
        Some(d) => parse_date(d, tz).map_err(CliError::Input)?,
        None => periods::month_start(now, tz),
    };
    let nases = bulk::select(&admin, args.all, &args.nas).map_err(|e| match e {
        bulk::SelectError::Store(e) => CliError::Store(e),
        e => CliError::Input(e.to_string()),
    })?;
    let opts = BulkOptions {
        now,
        boundary: before,
        dry_run: args.dry_run,
        parallel: args.parallel.max(1),
    };
    let interactive = std::io::stderr().is_terminal();
    let done = AtomicUsize::new(0);
    let total = nases.len();
    let progress = |r: &NasResult| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if interactive {
            let mut e = std::io::stderr().lock();
            let _ = write!(
                e,
                "\r\x1b[Kbulk-disconnect: {n}/{total} NASes done (last: {})",
                r.name.as_deref().unwrap_or(&r.nas_ip)
            );
            let _ = e.flush();
        }
    };
    let results = bulk::run(&nases, &opts, None, &progress);
    if interactive {
        eprintln!();
    }
    if !args.dry_run {
        bulk::record(&admin, &results, now, periods::now())?;
    }
    let failed = results.iter().filter(|r| r.is_failure()).count();
    let out = if cli.json {
        super::capping::json_out(&Output {
            before,
            before_local: rfc3339(before, tz),
            dry_run: args.dry_run,
            nases: &results,
            failed_nases: failed,
        })?
    } else {
        human(&results, before, args.dry_run, tz)
    };
    if failed > 0 {
        return Err(CliError::Partial {
            stdout: out,
            message: format!("{failed} of {total} NAS(es) failed"),
        });
    }
    Ok(out)
}

fn outcome(r: &NasResult) -> String {
    match (&r.skipped, &r.error) {
        (Some(why), _) => format!("skipped: {why}"),
        (None, Some(e)) => format!("FAILED: {}", cell(e)),
        (None, None) => "ok".to_string(),
    }
}

fn human(results: &[NasResult], before: i64, dry_run: bool, tz: Tz) -> String {
    let mut out = format!(
        "{} sessions started before {} ({tz})\n\n",
        if dry_run {
            "dry run: would remove"
        } else {
            "removed"
        },
        local_time(before, tz)
    );
    let headers = [
        ("NAS", Align::Left),
        ("NAME", Align::Left),
        ("SEEN", Align::Right),
        ("BEFORE", Align::Right),
        ("REMOVED", Align::Right),
        ("GONE", Align::Right),
        ("FAILED", Align::Right),
        ("MS", Align::Right),
        ("RESULT", Align::Left),
    ];
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.nas_ip.clone(),
                r.name.as_deref().map_or("-".into(), cell),
                r.seen.to_string(),
                r.selected.to_string(),
                r.removed.to_string(),
                r.already_gone.to_string(),
                r.failed.to_string(),
                r.elapsed_ms.to_string(),
                outcome(r),
            ]
        })
        .collect();
    out.push_str(&table(&headers, &rows));
    if dry_run {
        let rows: Vec<Vec<String>> = results
            .iter()
            .flat_map(|r| {
                r.would_remove.iter().map(|c| {
                    vec![
                        r.nas_ip.clone(),
                        c.table.to_string(),
                        c.id.clone(),
                        cell(&c.user),
                        c.address.as_deref().map_or("-".into(), cell),
                        human_duration(c.uptime_secs),
                        local_time(c.started, tz),
                    ]
                })
            })
            .collect();
        if !rows.is_empty() {
            out.push('\n');
            out.push_str(&table(
                &[
                    ("NAS", Align::Left),
                    ("TABLE", Align::Left),
                    ("ID", Align::Left),
                    ("USER", Align::Left),
                    ("ADDRESS", Align::Left),
                    ("UPTIME", Align::Right),
                    ("STARTED", Align::Left),
                ],
                &rows,
            ));
        }
    }
    out
}
