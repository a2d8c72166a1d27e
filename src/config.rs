//! The module's configuration (`mods-available/rust`), validated in plain Rust.
//!
//! The server hands every option over as text; [`parse`] turns it into typed values or
//! a [`ConfigError`] that names the option, so `freeradius -XC` fails with a message an
//! operator can act on.
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
}

pub use crate::store::Synchronous;

#[derive(Debug, Clone)]
pub struct Config {
    pub db: PathBuf,
    pub timezone: Tz,
    /// Seconds without an update after which an open session is closed; 0 = never.
    pub stale_after: u64,
    pub synchronous: Synchronous,
    /// Seconds between runs of the background jobs.
    pub background_interval: u64,
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
}

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
        Some("") => return Err(err("db", "", "must name the SQLite file")),
        Some(p) => PathBuf::from(p),
    };
    let timezone = match raw.timezone.as_deref() {
        None => parse_timezone("local").map_err(|r| err("timezone", "local", r))?,
        Some(v) => parse_timezone(v).map_err(|r| err("timezone", v, r))?,
    };
    let stale_after = match raw.stale_after.as_deref() {
        None => 3 * 3600,
        Some(v) => parse_duration(v).map_err(|r| err("stale_after", v, r))?,
    };
    let synchronous = match raw
        .synchronous
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase())
    {
        None => Synchronous::Full,
        Some(s) if s == "full" => Synchronous::Full,
        Some(s) if s == "normal" => Synchronous::Normal,
        Some(_) => {
            let v = raw.synchronous.as_deref().unwrap_or_default();
            return Err(err("synchronous", v, "must be 'full' or 'normal'"));
        }
    };
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
        timezone,
        stale_after,
        synchronous,
        background_interval,
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

/// For `freeradius -C`: the database's directory must exist (the file may not yet).
pub fn check_db_path(db: &std::path::Path) -> Result<(), ConfigError> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(err(
            "db",
            &db.display().to_string(),
            format!("directory {} does not exist", dir.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
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
        let bad: [Case; 7] = [
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
    fn zones() {
        assert_eq!(
            parse_timezone("Europe/Berlin").unwrap(),
            chrono_tz::Europe::Berlin
        );
        assert!(parse_timezone("local").is_ok());
        assert!(parse_timezone("Europe/Nowhere").is_err());
    }
}
