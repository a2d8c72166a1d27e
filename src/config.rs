//! The module's configuration (`mods-available/rust`), validated in plain Rust.
//!
//! The server hands every option over as text; [`parse`] turns it into typed values or
//! a [`ConfigError`] that names the option, so `freeradius -XC` fails with a message an
//! operator can act on.
use crate::capping::{EvalOptions, OverLimitPolicy, PeriodKind};
use chrono_tz::Tz;
use std::fmt;
use std::path::PathBuf;

/// Options as written in the config file (None = not set, default applies).
#[derive(Debug, Default, Clone)]
pub struct RawConfig {
    pub db: Option<String>,
    pub timezone: Option<String>,
    pub stale_after: Option<String>,
    pub synchronous: Option<String>,
    pub background_interval: Option<String>,
    pub disconnect_prior_month: Option<String>,
    pub dm_timeout: Option<String>,
    pub dm_retries: Option<String>,
    pub disconnect_batch: Option<String>,
    pub bulk_disconnect: Option<String>,
    pub bulk_disconnect_delay: Option<String>,
    pub max_session_rate: Option<String>,
    pub events_keep: Option<String>,
    pub queue_lease: Option<String>,
    pub metrics_listen: Option<String>,
    pub metrics_token: Option<String>,
    pub capping: RawCapping,
    pub hooks: RawHooks,
}

/// The `hooks { ... }` subsection as written: a command per event name
/// ([`HOOK_OPTIONS`]), `all` for every event without its own, `timeout`, `retries`.
#[derive(Debug, Default, Clone)]
pub struct RawHooks {
    pub all: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<String>,
    /// Indexed like [`HOOK_OPTIONS`].
    pub events: [Option<String>; 11],
}

/// The per-event options of `hooks { ... }`, in [`crate::states::Event::ALL`] order.
pub const HOOK_OPTIONS: [(&str, &str); 11] = [
    ("user_add", "hooks.user_add"),
    ("user_del", "hooks.user_del"),
    ("user_auth", "hooks.user_auth"),
    ("user_disconnect", "hooks.user_disconnect"),
    ("user_redirect", "hooks.user_redirect"),
    ("user_redirect_cancel", "hooks.user_redirect_cancel"),
    ("own_disabled", "hooks.own_disabled"),
    ("own_disabled_cancel", "hooks.own_disabled_cancel"),
    ("user_rate_set", "hooks.user_rate_set"),
    ("service_activated", "hooks.service_activated"),
    ("service_deactivated", "hooks.service_deactivated"),
];

/// Operator hooks: argv per event name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub commands: std::collections::BTreeMap<String, Vec<String>>,
    /// A run taking longer is killed and counts as a failure.
    pub timeout_secs: u64,
    /// Failed runs are retried this many times (with backoff), then given up.
    pub retries: u32,
}

impl Hooks {
    /// For writers outside the module (the CLI), which cannot see its hooks: every
    /// event's hook is queued, and the module's runner drops those it has none for.
    pub fn deferred() -> Hooks {
        Hooks {
            commands: HOOK_OPTIONS
                .iter()
                .map(|(e, _)| (e.to_string(), Vec::new()))
                .collect(),
            ..Hooks::default()
        }
    }

    pub fn command(&self, event: &str) -> Option<&[String]> {
        self.commands.get(event).map(Vec::as_slice)
    }
}

/// The `capping { ... }` subsection as written.
#[derive(Debug, Default, Clone)]
pub struct RawCapping {
    pub period: Option<String>,
    pub caveat_captrafzero: Option<String>,
    pub mikrotik: Option<String>,
    pub over_limit: Option<String>,
    pub traffic_message: Option<String>,
    pub uptime_message: Option<String>,
    pub notify_command: Option<String>,
    pub notify_template: Option<String>,
}

pub use crate::store::Synchronous;

#[derive(Debug, Clone)]
pub struct Config {
    /// A SQLite file, or a PostgreSQL connection string (see [`crate::store::DbLocation`]).
    pub db: PathBuf,
    /// `db` as logs show it: never a password.
    pub db_shown: String,
    pub timezone: Tz,
    /// Seconds without an update after which an open session is closed; 0 = never.
    pub stale_after: u64,
    pub synchronous: Synchronous,
    /// Seconds between runs of the background jobs.
    pub background_interval: u64,
    pub capping: Capping,
    /// Queue a disconnect for sessions that started in an earlier month.
    pub disconnect_prior_month: bool,
    /// Seconds to wait for a Disconnect-ACK/NAK per attempt.
    pub dm_timeout: u64,
    /// Disconnect-Request retransmissions after the first attempt.
    pub dm_retries: u32,
    /// Most disconnect jobs the worker takes per pass.
    pub disconnect_batch: usize,
    /// Automatic bulk disconnect (RouterOS API) once a month.
    pub bulk_disconnect: bool,
    /// Seconds after the month starts before the automatic bulk disconnect.
    pub bulk_disconnect_delay: u64,
    /// Most bit/s one session can carry per direction: a delta beyond it (for the
    /// time elapsed) is refused as implausible.
    pub max_session_rate: u64,
    pub hooks: Hooks,
    /// Seconds events and finished NAS actions are kept; 0 = forever.
    pub events_keep: u64,
    /// Seconds a server keeps a queued job it claimed (several servers on one
    /// database: a job of a server killed mid-job is taken over after this).
    pub queue_lease: u64,
    /// Where the module serves its `/metrics` (off when unset).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A bearer token `/metrics` requires, if set.
    pub metrics_token: Option<String>,
}

/// Capping settings (`capping { ... }`).
#[derive(Debug, Clone)]
pub struct Capping {
    pub period: PeriodKind,
    /// SMRadius `caveat_captrafzero`: unset = prepaid, 0 = unlimited.
    pub caveat_captrafzero: bool,
    /// Send Mikrotik-Total-Limit(-Gigawords) with the remaining traffic.
    pub mikrotik: bool,
    pub over_limit: OverLimitPolicy,
    pub eval: EvalOptions,
    /// argv of the delivery command (stdin = rendered message); None = keep queued.
    pub notify_command: Option<Vec<String>>,
    /// Template source (file contents, or the built-in default).
    pub notify_template: String,
}

impl Default for Capping {
    fn default() -> Self {
        Capping {
            period: PeriodKind::Month,
            caveat_captrafzero: false,
            mikrotik: false,
            over_limit: OverLimitPolicy::Disconnect,
            eval: EvalOptions::default(),
            notify_command: None,
            notify_template: DEFAULT_NOTIFY_TEMPLATE.to_string(),
        }
    }
}

/// Used when `notify_template` is not set: a complete mail for `sendmail -t`.
pub const DEFAULT_NOTIFY_TEMPLATE: &str = "\
To: [% notify.target %]
Subject: [% IF autotopup.toAdd > 0 %]Auto-topup added[% ELSE %]Auto-topup limit reached[% END %] for [% user.username %]

[% IF autotopup.toAdd > 0 -%]
[% autotopup.toAdd %] auto-topup(s) of [% autotopup.amount %] [% autotopup.unit %] were added for [% user.username %] ([% autotopup.type %]).
[%- ELSE -%]
[% user.username %] needs more [% autotopup.type %], but the auto-topup limit of [% autotopup.limit %] [% autotopup.unit %] for this period is reached.
[%- END %]
Usage this period: [% usage.total %] of [% usage.limit %] [% autotopup.unit %].
";

pub const DEFAULT_DB: &str = "/var/lib/freeradius/rlm_rust.sqlite";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub option: &'static str,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "option '{}' = \"{}\": {}",
            self.option, self.value, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

fn err(option: &'static str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

pub fn parse(raw: &RawConfig) -> Result<Config, ConfigError> {
    let db = match raw.db.as_deref().map(str::trim) {
        None => PathBuf::from(DEFAULT_DB),
        Some("") => {
            return Err(err(
                "db",
                "",
                "must name the SQLite file or a PostgreSQL server",
            ))
        }
        Some(p) => PathBuf::from(p),
    };
    // Checked here so -XC names the option; never echoed (it may hold a password).
    let db_shown = match crate::store::DbLocation::parse(&db) {
        Ok(l) => l.to_string(),
        Err(r) => return Err(err("db", "(a PostgreSQL connection string)", r)),
    };
    let timezone = match raw.timezone.as_deref() {
        None => parse_timezone("local").map_err(|r| err("timezone", "local", r))?,
        Some(v) => parse_timezone(v).map_err(|r| err("timezone", v, r))?,
    };
    let stale_after = match raw.stale_after.as_deref() {
        None => 3 * 3600,
        Some(v) => parse_duration(v).map_err(|r| err("stale_after", v, r))?,
    };
    let synchronous = choice(
        "synchronous",
        raw.synchronous.as_deref(),
        Synchronous::Full,
        &[("full", Synchronous::Full), ("normal", Synchronous::Normal)],
    )?;
    let background_interval = match raw.background_interval.as_deref() {
        None => 10,
        Some(v) => match parse_duration(v) {
            Ok(0) => return Err(err("background_interval", v, "must be at least 1s")),
            Ok(n) => n,
            Err(r) => return Err(err("background_interval", v, r)),
        },
    };
    let number = |option: &'static str, v: Option<&str>, default: u64, min: u64, max: u64| {
        let Some(v) = v else { return Ok(default) };
        match v.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(err(
                option,
                v,
                format!("must be a whole number from {min} to {max}"),
            )),
        }
    };
    let dm_timeout = match raw.dm_timeout.as_deref() {
        None => 2,
        Some(v) => match parse_duration(v) {
            Ok(n) if (1..=60).contains(&n) => n,
            Ok(_) => return Err(err("dm_timeout", v, "must be from 1s to 60s")),
            Err(r) => return Err(err("dm_timeout", v, r)),
        },
    };
    let bulk_disconnect_delay = match raw.bulk_disconnect_delay.as_deref() {
        None => 300,
        Some(v) => parse_duration(v).map_err(|r| err("bulk_disconnect_delay", v, r))?,
    };
    Ok(Config {
        db,
        db_shown,
        timezone,
        stale_after,
        synchronous,
        background_interval,
        capping: parse_capping(&raw.capping)?,
        disconnect_prior_month: parse_bool(
            "disconnect_prior_month",
            raw.disconnect_prior_month.as_deref(),
            true,
        )?,
        dm_timeout,
        dm_retries: number("dm_retries", raw.dm_retries.as_deref(), 2, 0, 10)? as u32,
        disconnect_batch: number(
            "disconnect_batch",
            raw.disconnect_batch.as_deref(),
            1000,
            1,
            100_000,
        )? as usize,
        bulk_disconnect: parse_bool("bulk_disconnect", raw.bulk_disconnect.as_deref(), true)?,
        bulk_disconnect_delay,
        max_session_rate: match raw.max_session_rate.as_deref() {
            None => DEFAULT_MAX_SESSION_RATE,
            Some(v) => parse_rate(v).map_err(|r| err("max_session_rate", v, r))?,
        },
        hooks: parse_hooks(&raw.hooks)?,
        queue_lease: match raw.queue_lease.as_deref() {
            None => 300,
            Some(v) => match parse_duration(v) {
                Ok(n) if (5..=86_400).contains(&n) => n,
                Ok(_) => return Err(err("queue_lease", v, "must be between 5s and 1d")),
                Err(r) => return Err(err("queue_lease", v, r)),
            },
        },
        metrics_listen: match raw.metrics_listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(v.parse().map_err(|_| {
                err(
                    "metrics_listen",
                    v,
                    "must be an address and port, as 127.0.0.1:9812 or [::1]:9812",
                )
            })?),
        },
        metrics_token: raw.metrics_token.clone().filter(|t| !t.is_empty()),
        events_keep: match raw.events_keep.as_deref() {
            None => 90 * 86_400,
            Some(v) => parse_duration(v).map_err(|r| err("events_keep", v, r))?,
        },
    })
}

/// An absolute command line, split on whitespace (no shell).
fn command_line(option: &'static str, c: &str) -> Result<Vec<String>, ConfigError> {
    let argv: Vec<String> = c.split_whitespace().map(str::to_string).collect();
    match argv.first() {
        Some(p) if p.starts_with('/') => Ok(argv),
        _ => Err(err(
            option,
            c,
            "must start with an absolute path (the server's PATH is not searched)",
        )),
    }
}

fn parse_hooks(raw: &RawHooks) -> Result<Hooks, ConfigError> {
    let set = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    let all = match set(&raw.all) {
        Some(c) => Some(command_line("hooks.all", &c)?),
        None => None,
    };
    let mut commands = std::collections::BTreeMap::new();
    for ((event, option), v) in HOOK_OPTIONS.iter().zip(&raw.events) {
        let argv = match set(v) {
            Some(c) => Some(command_line(option, &c)?),
            None => all.clone(),
        };
        if let Some(argv) = argv {
            commands.insert(event.to_string(), argv);
        }
    }
    let timeout_secs = match raw.timeout.as_deref() {
        None => 10,
        Some(v) => match parse_duration(v) {
            Ok(n) if (1..=600).contains(&n) => n,
            Ok(_) => return Err(err("hooks.timeout", v, "must be from 1s to 600s")),
            Err(r) => return Err(err("hooks.timeout", v, r)),
        },
    };
    let retries = match raw.retries.as_deref() {
        None => 5,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n <= 20 => n,
            _ => {
                return Err(err(
                    "hooks.retries",
                    v,
                    "must be a whole number from 0 to 20",
                ))
            }
        },
    };
    Ok(Hooks {
        commands,
        timeout_secs,
        retries,
    })
}

pub const DEFAULT_MAX_SESSION_RATE: u64 = 100_000_000_000;

/// A rate in bit/s: a whole number, optionally with k, M, G or T (powers of 1000),
/// from 1 Mbit/s (less would refuse real traffic) to 100 Tbit/s.
pub fn parse_rate(value: &str) -> Result<u64, String> {
    let v = value.trim();
    let (digits, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(format!("unknown unit '{c}' (use k, M, G or T bit/s)")),
            };
            (&v[..i], m)
        }
        _ => (v, 1),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| "must be a whole number of bit/s, e.g. 100G or 500M".to_string())?;
    match n.checked_mul(mult) {
        Some(r) if (1_000_000..=100_000_000_000_000).contains(&r) => Ok(r),
        _ => Err("must be from 1M to 100T bit/s".to_string()),
    }
}

/// One of a few keywords (case-insensitive); unset = `default`.
fn choice<T: Copy>(
    option: &'static str,
    value: Option<&str>,
    default: T,
    names: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let key = v.trim().to_ascii_lowercase();
    if let Some((_, t)) = names.iter().find(|(n, _)| *n == key) {
        return Ok(*t);
    }
    let quoted: Vec<String> = names.iter().map(|(n, _)| format!("'{n}'")).collect();
    Err(err(option, v, format!("must be {}", quoted.join(" or "))))
}

fn message(
    option: &'static str,
    value: Option<&str>,
    default: String,
) -> Result<String, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.trim().is_empty() => Err(err(option, v, "must not be empty")),
        Some(v) => Ok(v.to_string()),
    }
}

fn parse_capping(raw: &RawCapping) -> Result<Capping, ConfigError> {
    let d = Capping::default();
    let period = choice(
        "capping.period",
        raw.period.as_deref(),
        d.period,
        &[("month", PeriodKind::Month), ("day", PeriodKind::Day)],
    )?;
    let over_limit = choice(
        "capping.over_limit",
        raw.over_limit.as_deref(),
        d.over_limit,
        &[
            ("disconnect", OverLimitPolicy::Disconnect),
            ("report", OverLimitPolicy::Report),
        ],
    )?;
    let notify_command = match raw.notify_command.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(command_line("capping.notify_command", c)?),
    };
    let notify_template = match raw.notify_template.as_deref().map(str::trim) {
        None | Some("") => d.notify_template,
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| err("capping.notify_template", path, format!("cannot read: {e}")))?,
    };
    if let Err(e) = crate::notify::Template::parse(&notify_template) {
        let v = raw.notify_template.as_deref().unwrap_or("(built-in)");
        return Err(err("capping.notify_template", v, e.to_string()));
    }
    Ok(Capping {
        period,
        caveat_captrafzero: parse_bool(
            "capping.caveat_captrafzero",
            raw.caveat_captrafzero.as_deref(),
            false,
        )?,
        mikrotik: parse_bool("capping.mikrotik", raw.mikrotik.as_deref(), false)?,
        over_limit,
        eval: EvalOptions {
            traffic_message: message(
                "capping.traffic_message",
                raw.traffic_message.as_deref(),
                d.eval.traffic_message,
            )?,
            uptime_message: message(
                "capping.uptime_message",
                raw.uptime_message.as_deref(),
                d.eval.uptime_message,
            )?,
            ..d.eval
        },
        notify_command,
        notify_template,
    })
}

/// yes/no, true/false, on/off, 1/0 (FreeRADIUS's own spellings).
fn parse_bool(option: &'static str, v: Option<&str>, default: bool) -> Result<bool, ConfigError> {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("yes" | "true" | "on" | "1") => Ok(true),
        Some("no" | "false" | "off" | "0") => Ok(false),
        Some(_) => Err(err(option, v.unwrap_or_default(), "must be yes or no")),
    }
}

/// An IANA zone name, `UTC`, or `local` (the system zone, as the OS reports it).
pub fn parse_timezone(value: &str) -> Result<Tz, String> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("local") {
        let name = iana_time_zone::get_timezone().unwrap_or_else(|_| "UTC".to_string());
        return name.parse::<Tz>().map_err(|_| {
            format!("the system time zone {name:?} is not a known IANA zone; set one explicitly")
        });
    }
    v.parse::<Tz>().map_err(|_| {
        "not a known IANA time zone (for example Europe/Berlin, UTC, or 'local')".to_string()
    })
}

/// Units of the module's duration options.
pub const DURATION_UNITS: &[(char, u64)] = &[('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationError {
    /// Not a whole number with at most one of the allowed unit suffixes.
    Invalid,
    TooLarge,
}

/// Seconds from a whole number with an optional unit suffix taken from `units`
/// (no suffix: seconds). Used by the config options and by the CLI's ages.
pub fn parse_duration_in(value: &str, units: &[(char, u64)]) -> Result<u64, DurationError> {
    let v = value.trim();
    let (digits, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let &(_, mult) = units
                .iter()
                .find(|(u, _)| *u == c)
                .ok_or(DurationError::Invalid)?;
            (&v[..i], mult)
        }
        _ => (v, 1),
    };
    let n: u64 = digits.trim().parse().map_err(|_| DurationError::Invalid)?;
    n.checked_mul(mult).ok_or(DurationError::TooLarge)
}

/// Seconds, written as a number (seconds) or with one unit suffix: s, m, h, d.
pub fn parse_duration(value: &str) -> Result<u64, String> {
    parse_duration_in(value, DURATION_UNITS).map_err(|e| match e {
        DurationError::Invalid => {
            "must be a whole number of seconds, or a number with s, m, h or d (e.g. 90m)"
                .to_string()
        }
        DurationError::TooLarge => "is too large".to_string(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_postgresql_db_and_the_queue_lease() {
        let raw = |db: &str, lease: Option<&str>| RawConfig {
            db: Some(db.into()),
            queue_lease: lease.map(Into::into),
            ..Default::default()
        };
        let c = parse(&raw("postgresql://rlm:s3cret@db.example.net/rlm", None)).unwrap();
        assert_eq!(c.db_shown, "postgresql://rlm@db.example.net:5432/rlm");
        assert_eq!(c.queue_lease, 300);
        assert_eq!(
            parse(&raw("/var/lib/x.sqlite", Some("30s")))
                .unwrap()
                .queue_lease,
            30
        );
        for lease in ["1s", "2d", "soon"] {
            assert_eq!(
                parse(&raw("/x", Some(lease))).unwrap_err().option,
                "queue_lease",
                "{lease}"
            );
        }
        // A broken connection string names the option, never echoes the string.
        let e = parse(&raw("host=db port=notaport password=s3cret", None)).unwrap_err();
        assert_eq!(e.option, "db");
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let e = parse(&raw("host=db user=rlm passfile=/nonexistent/pgpass", None)).unwrap_err();
        assert!(e.to_string().contains("passfile"), "{e}");
    }

    #[test]
    fn metrics_listener_address_and_token() {
        let raw = |listen: Option<&str>, token: Option<&str>| RawConfig {
            metrics_listen: listen.map(Into::into),
            metrics_token: token.map(Into::into),
            ..Default::default()
        };
        let off = parse(&raw(None, None)).unwrap();
        assert_eq!((off.metrics_listen, off.metrics_token), (None, None));
        assert_eq!(
            parse(&raw(Some(""), Some(""))).unwrap().metrics_listen,
            None
        );
        let on = parse(&raw(Some("127.0.0.1:9812"), Some("t0k"))).unwrap();
        assert_eq!(on.metrics_listen, Some("127.0.0.1:9812".parse().unwrap()));
        assert_eq!(on.metrics_token.as_deref(), Some("t0k"));
        assert!(parse(&raw(Some("[::1]:9812"), None)).is_ok());
        for bad in ["9812", "localhost:9812", "127.0.0.1", "127.0.0.1:99999"] {
            assert_eq!(
                parse(&raw(Some(bad), None)).unwrap_err().option,
                "metrics_listen",
                "{bad}"
            );
        }
    }

    #[test]
    fn hooks_per_event_and_for_all() {
        let d = parse(&RawConfig::default()).unwrap();
        assert!(d.hooks.commands.is_empty());
        assert_eq!(d.events_keep, 90 * 86_400);
        let mut raw = RawConfig {
            events_keep: Some("0".into()),
            ..Default::default()
        };
        assert_eq!(parse(&raw).unwrap().events_keep, 0);
        raw.events_keep = Some("a while".into());
        assert_eq!(parse(&raw).unwrap_err().option, "events_keep");
        assert_eq!((d.hooks.timeout_secs, d.hooks.retries), (10, 5));
        let mut raw = RawConfig::default();
        raw.hooks.all = Some("/usr/local/bin/all-events --x".into());
        raw.hooks.events[4] = Some("/usr/local/bin/redirect".into());
        raw.hooks.timeout = Some("30".into());
        raw.hooks.retries = Some("0".into());
        let h = parse(&raw).unwrap().hooks;
        assert_eq!(
            h.command("user_redirect").unwrap(),
            ["/usr/local/bin/redirect"]
        );
        assert_eq!(
            h.command("user_add").unwrap(),
            ["/usr/local/bin/all-events", "--x"]
        );
        assert_eq!(h.commands.len(), 11);
        assert_eq!((h.timeout_secs, h.retries), (30, 0));
        let mut raw = RawConfig::default();
        raw.hooks.events[6] = Some("relative/cmd".into());
        assert_eq!(parse(&raw).unwrap_err().option, "hooks.own_disabled");
        let mut raw = RawConfig::default();
        raw.hooks.timeout = Some("0".into());
        assert_eq!(parse(&raw).unwrap_err().option, "hooks.timeout");
        let mut raw = RawConfig::default();
        raw.hooks.retries = Some("many".into());
        assert_eq!(parse(&raw).unwrap_err().option, "hooks.retries");
        for ((event, option), e) in HOOK_OPTIONS.iter().zip(crate::states::Event::ALL) {
            assert_eq!(*event, e.as_str());
            assert_eq!(*option, format!("hooks.{event}"));
        }
    }

    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("0", Ok(0)),
            ("600", Ok(600)),
            ("45s", Ok(45)),
            ("90m", Ok(5400)),
            ("3h", Ok(10800)),
            ("2d", Ok(172800)),
            (" 5 m ", Ok(300)),
            ("", Err(())),
            ("-1", Err(())),
            ("1.5h", Err(())),
            ("ten", Err(())),
            ("5w", Err(())),
        ];
        for (input, want) in cases {
            assert_eq!(parse_duration(input).map_err(|_| ()), want, "{input:?}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&RawConfig {
            timezone: Some("UTC".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.db, PathBuf::from(DEFAULT_DB));
        assert_eq!(c.stale_after, 10800);
        assert_eq!(c.synchronous, Synchronous::Full);
        assert_eq!(c.timezone, chrono_tz::UTC);
        assert!(c.disconnect_prior_month);
        assert_eq!(
            (c.dm_timeout, c.dm_retries, c.disconnect_batch),
            (2, 2, 1000)
        );
        assert!(c.bulk_disconnect);
        assert_eq!(c.bulk_disconnect_delay, 300);
    }

    #[test]
    fn disconnect_options() {
        let c = parse(&RawConfig {
            timezone: Some("UTC".into()),
            disconnect_prior_month: Some("no".into()),
            dm_timeout: Some("5s".into()),
            dm_retries: Some("0".into()),
            disconnect_batch: Some("50".into()),
            bulk_disconnect: Some("Off".into()),
            bulk_disconnect_delay: Some("1h".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(!c.disconnect_prior_month && !c.bulk_disconnect);
        assert_eq!((c.dm_timeout, c.dm_retries, c.disconnect_batch), (5, 0, 50));
        assert_eq!(c.bulk_disconnect_delay, 3600);
        type Case = (fn(&mut RawConfig), &'static str);
        let bad: [Case; 10] = [
            (
                |r| r.max_session_rate = Some("fast".into()),
                "max_session_rate",
            ),
            (
                |r| r.max_session_rate = Some("10k".into()),
                "max_session_rate",
            ),
            (
                |r| r.max_session_rate = Some("5X".into()),
                "max_session_rate",
            ),
            (
                |r| r.disconnect_prior_month = Some("maybe".into()),
                "disconnect_prior_month",
            ),
            (|r| r.dm_timeout = Some("0".into()), "dm_timeout"),
            (|r| r.dm_timeout = Some("2 weeks".into()), "dm_timeout"),
            (|r| r.dm_retries = Some("11".into()), "dm_retries"),
            (
                |r| r.disconnect_batch = Some("0".into()),
                "disconnect_batch",
            ),
            (|r| r.bulk_disconnect = Some("2".into()), "bulk_disconnect"),
            (
                |r| r.bulk_disconnect_delay = Some("-5m".into()),
                "bulk_disconnect_delay",
            ),
        ];
        for (set, option) in bad {
            let mut raw = RawConfig::default();
            set(&mut raw);
            let e = parse(&raw).unwrap_err();
            assert_eq!(e.option, option, "{e}");
        }
    }

    #[test]
    fn session_rates() {
        let cases = [
            ("100G", Ok(100_000_000_000)),
            ("10g", Ok(10_000_000_000)),
            (" 500M ", Ok(500_000_000)),
            ("1000000", Ok(1_000_000)),
            ("100T", Ok(100_000_000_000_000)),
            ("999999", Err(())),
            ("101T", Err(())),
            ("18446744073709551615T", Err(())),
            ("G", Err(())),
        ];
        for (v, want) in cases {
            assert_eq!(parse_rate(v).map_err(|_| ()), want, "{v}");
        }
        assert_eq!(
            parse(&RawConfig::default()).unwrap().max_session_rate,
            DEFAULT_MAX_SESSION_RATE
        );
    }

    #[test]
    fn errors_name_the_option() {
        let cases: [(RawConfig, &str); 5] = [
            (
                RawConfig {
                    timezone: Some("Mars/Olympus".into()),
                    ..Default::default()
                },
                "timezone",
            ),
            (
                RawConfig {
                    stale_after: Some("soon".into()),
                    ..Default::default()
                },
                "stale_after",
            ),
            (
                RawConfig {
                    synchronous: Some("always".into()),
                    ..Default::default()
                },
                "synchronous",
            ),
            (
                RawConfig {
                    db: Some(" ".into()),
                    ..Default::default()
                },
                "db",
            ),
            (
                RawConfig {
                    background_interval: Some("0".into()),
                    ..Default::default()
                },
                "background_interval",
            ),
        ];
        for (raw, option) in cases {
            let e = parse(&raw).unwrap_err();
            assert_eq!(e.option, option);
            assert!(
                e.to_string().starts_with(&format!("option '{option}'")),
                "{e}"
            );
        }
    }

    #[test]
    fn capping_options() {
        let ok = |c: RawCapping| {
            parse(&RawConfig {
                timezone: Some("UTC".into()),
                capping: c,
                ..Default::default()
            })
            .map(|c| c.capping)
        };
        let d = ok(RawCapping::default()).unwrap();
        assert_eq!(d.period, PeriodKind::Month);
        assert!(!d.caveat_captrafzero && !d.mikrotik);
        assert_eq!(d.over_limit, OverLimitPolicy::Disconnect);
        assert_eq!(d.notify_command, None);
        let c = ok(RawCapping {
            period: Some("Day".into()),
            caveat_captrafzero: Some("yes".into()),
            mikrotik: Some("on".into()),
            over_limit: Some("report".into()),
            traffic_message: Some("Out of data".into()),
            notify_command: Some("/usr/sbin/sendmail -t -oi".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.period, PeriodKind::Day);
        assert!(c.caveat_captrafzero && c.mikrotik);
        assert_eq!(c.over_limit, OverLimitPolicy::Report);
        assert_eq!(c.eval.traffic_message, "Out of data");
        assert_eq!(c.eval.uptime_message, EvalOptions::default().uptime_message);
        assert_eq!(
            c.notify_command.unwrap(),
            ["/usr/sbin/sendmail", "-t", "-oi"]
        );
        let bad: [(RawCapping, &str); 6] = [
            (
                RawCapping {
                    period: Some("week".into()),
                    ..Default::default()
                },
                "capping.period",
            ),
            (
                RawCapping {
                    mikrotik: Some("maybe".into()),
                    ..Default::default()
                },
                "capping.mikrotik",
            ),
            (
                RawCapping {
                    over_limit: Some("throttle".into()),
                    ..Default::default()
                },
                "capping.over_limit",
            ),
            (
                RawCapping {
                    traffic_message: Some(" ".into()),
                    ..Default::default()
                },
                "capping.traffic_message",
            ),
            (
                RawCapping {
                    notify_command: Some("sendmail -t".into()),
                    ..Default::default()
                },
                "capping.notify_command",
            ),
            (
                RawCapping {
                    notify_template: Some("/nonexistent/t.tmpl".into()),
                    ..Default::default()
                },
                "capping.notify_template",
            ),
        ];
        for (raw, option) in bad {
            assert_eq!(ok(raw).unwrap_err().option, option);
        }
    }

    #[test]
    fn default_template_renders() {
        let mut vars = crate::notify::Vars::new();
        vars.set("notify.target", "ops@example.net")
            .set("user.username", "bob")
            .set("autotopup.toAdd", 2u64)
            .set("autotopup.amount", 100u64)
            .set("autotopup.unit", "MB")
            .set("autotopup.type", "traffic")
            .set("usage.total", 950u64)
            .set("usage.limit", 1000u64);
        let r = crate::notify::render(DEFAULT_NOTIFY_TEMPLATE, &vars).unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(
            r.text
                .starts_with("To: ops@example.net\nSubject: Auto-topup added for bob\n\n"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .contains("2 auto-topup(s) of 100 MB were added for bob (traffic)."),
            "{}",
            r.text
        );
        assert!(
            r.text.contains("Usage this period: 950 of 1000 MB."),
            "{}",
            r.text
        );
    }

    #[test]
    fn zones() {
        assert_eq!(
            parse_timezone("Europe/Berlin").unwrap(),
            chrono_tz::Europe::Berlin
        );
        assert!(parse_timezone("local").is_ok());
        assert!(parse_timezone("Europe/Nowhere").is_err());
    }
}
