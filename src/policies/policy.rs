//! The typed policy: raw field values (control list over the store, per field)
//! parsed and checked once, with errors that name the field and the value.

use super::fields::{def_of, Field, RawPolicy, ValueKind};
use super::rates::{burst_from, parse_rate, Burst};
use super::schedule::Schedule;

/// The smallest Acct-Interim-Interval a policy may ask for (the seed's floor: fewer
/// seconds load the server for no gain, and some NASes misbehave).
pub const MIN_INTERIM_SECS: u32 = 300;

/// One custom check or reply attribute of a policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CustomAttr {
    pub attribute: String,
    pub op: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Open sessions allowed at once; 0 = unlimited.
    pub concurrent: u32,
    /// Distinct devices since the policy was assigned; 0 = unlimited.
    pub max_devices: u32,
    pub session_timeout_secs: Option<u32>,
    pub idle_timeout_secs: Option<u32>,
    /// (as configured, as sent: raised to [`MIN_INTERIM_SECS`]).
    pub interim: Option<(u32, u32)>,
    pub daily_time_secs: Option<u64>,
    pub monthly_time_secs: Option<u64>,
    pub daily_traffic_bytes: Option<u64>,
    pub monthly_traffic_bytes: Option<u64>,
    pub schedule: Option<Schedule>,
    /// bit/s; None = not limited by the policy.
    pub rate_down: Option<u64>,
    pub rate_up: Option<u64>,
    pub burst: Option<Burst>,
    pub address_list: Option<String>,
    pub check: Vec<CustomAttr>,
    pub reply: Vec<CustomAttr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy field '{field}' = {value:?}: {why}")]
pub struct PolicyError {
    pub field: &'static str,
    pub value: String,
    pub why: String,
}

fn error(field: Field, value: &str, why: impl Into<String>) -> PolicyError {
    PolicyError {
        field: def_of(field).name,
        value: value.to_string(),
        why: why.into(),
    }
}

/// A value checked against its field's kind (used by the CLI before saving, and
/// by [`Policy::parse`]).
pub fn check_value(field: Field, value: &str) -> Result<(), PolicyError> {
    let v = value.trim();
    match def_of(field).kind {
        ValueKind::Count => v
            .parse::<u64>()
            .map(drop)
            .map_err(|_| error(field, value, "must be a whole number ≥ 0")),
        ValueKind::Rate => parse_rate(v)
            .map(drop)
            .map_err(|e| error(field, value, e.to_string())),
        ValueKind::Schedule => Schedule::parse(v)
            .map(drop)
            .map_err(|e| error(field, value, e.to_string())),
        ValueKind::Text if v.is_empty() => Err(error(field, value, "must not be empty")),
        ValueKind::Text => Ok(()),
    }
}

impl Policy {
    /// Parses and checks the raw values: each field's kind, concurrent connections
    /// not above maximum devices, a burst with all six fields and a rate.
    pub fn parse(
        raw: &RawPolicy,
        check: Vec<CustomAttr>,
        reply: Vec<CustomAttr>,
    ) -> Result<Policy, PolicyError> {
        for (d, v) in raw.iter() {
            check_value(d.field, v)?;
        }
        let count = |f: Field| -> Option<u64> { raw.get(f).and_then(|v| v.trim().parse().ok()) };
        // 0 = none / unlimited, as in the seed.
        let nonzero = |f: Field| count(f).filter(|&n| n > 0);
        let small = |f: Field, scale: u64| -> Result<Option<u32>, PolicyError> {
            match nonzero(f) {
                None => Ok(None),
                Some(n) => n
                    .checked_mul(scale)
                    .and_then(|s| u32::try_from(s).ok())
                    .map(Some)
                    .ok_or_else(|| error(f, raw.get(f).unwrap_or(""), "too large")),
            }
        };
        let rate = |f: Field| raw.get(f).and_then(|v| parse_rate(v.trim()).ok());
        let burst = burst_from([
            rate(Field::BurstDownLimit),
            rate(Field::BurstUpLimit),
            rate(Field::BurstDownThreshold),
            rate(Field::BurstUpThreshold),
            count(Field::BurstDownTime),
            count(Field::BurstUpTime),
        ])
        .map_err(|e| error(Field::BurstDownLimit, "", e.to_string()))?;
        let p = Policy {
            concurrent: small(Field::ConcurrentConnections, 1)?.unwrap_or(0),
            max_devices: small(Field::MaxDevices, 1)?.unwrap_or(0),
            session_timeout_secs: small(Field::SessionTimeout, 60)?,
            idle_timeout_secs: small(Field::IdleTimeout, 60)?,
            interim: small(Field::InterimInterval, 1)?.map(|s| (s, s.max(MIN_INTERIM_SECS))),
            daily_time_secs: nonzero(Field::DailyTime).map(|m| m.saturating_mul(60)),
            monthly_time_secs: nonzero(Field::MonthlyTime).map(|m| m.saturating_mul(60)),
            daily_traffic_bytes: nonzero(Field::DailyTraffic).map(|m| m.saturating_mul(1 << 20)),
            monthly_traffic_bytes: nonzero(Field::MonthlyTraffic)
                .map(|m| m.saturating_mul(1 << 20)),
            schedule: raw
                .get(Field::Schedule)
                .and_then(|v| Schedule::parse(v.trim()).ok()),
            rate_down: rate(Field::RateDown).filter(|&r| r > 0),
            rate_up: rate(Field::RateUp).filter(|&r| r > 0),
            burst,
            address_list: raw.get(Field::AddressList).map(|v| v.trim().to_string()),
            check,
            reply,
        };
        if p.max_devices > 0 && p.concurrent > p.max_devices {
            return Err(error(
                Field::ConcurrentConnections,
                &p.concurrent.to_string(),
                format!("more than max-devices ({})", p.max_devices),
            ));
        }
        if p.max_devices > 0 && p.concurrent == 0 {
            return Err(error(
                Field::ConcurrentConnections,
                "0",
                format!(
                    "unlimited, but max-devices is {}: set at most that many",
                    p.max_devices
                ),
            ));
        }
        if p.burst.is_some() && p.rate_down.is_none() && p.rate_up.is_none() {
            return Err(error(
                Field::BurstDownLimit,
                "",
                "a burst needs rate-down or rate-up",
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawPolicy {
        let mut r = RawPolicy::new();
        for (k, v) in pairs {
            assert!(r.insert(k, v), "{k}");
        }
        r
    }

    #[test]
    fn fields_parse_with_their_units() {
        let p = Policy::parse(
            &raw(&[
                ("concurrent-connections", "1"),
                ("max-devices", "2"),
                ("session-timeout", "60"),
                ("idle-timeout", "0"),
                ("interim-interval", "60"),
                ("daily-time", "90"),
                ("monthly-traffic", "1024"),
                ("schedule", "mon-fri 08:00-18:00"),
                ("rate-down", "10M"),
                ("rate-up", "2M"),
                ("address-list", " vip "),
            ]),
            vec![],
            vec![],
        )
        .unwrap();
        assert_eq!((p.concurrent, p.max_devices), (1, 2));
        assert_eq!(p.session_timeout_secs, Some(3600));
        assert_eq!(p.idle_timeout_secs, None, "0 = none");
        assert_eq!(p.interim, Some((60, 300)), "raised to the floor");
        assert_eq!(p.daily_time_secs, Some(5400));
        assert_eq!(p.monthly_traffic_bytes, Some(1024 << 20));
        assert_eq!(
            (p.rate_down, p.rate_up),
            (Some(10_000_000), Some(2_000_000))
        );
        assert_eq!(p.address_list.as_deref(), Some("vip"));
        assert!(p.schedule.is_some());
    }

    #[test]
    fn interim_floor_table() {
        for (given, sent) in [
            ("1", 300),
            ("299", 300),
            ("300", 300),
            ("301", 301),
            ("3600", 3600),
        ] {
            let p = Policy::parse(&raw(&[("interim-interval", given)]), vec![], vec![]).unwrap();
            assert_eq!(p.interim.map(|i| i.1), Some(sent), "{given}");
        }
    }

    #[test]
    fn bad_policies_name_the_field() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("session-timeout", "1h")], "session-timeout"),
            (&[("rate-down", "fast")], "rate-down"),
            (&[("schedule", "someday 25:00-26:00")], "schedule"),
            (&[("address-list", "  ")], "address-list"),
            (
                &[("concurrent-connections", "3"), ("max-devices", "2")],
                "concurrent-connections",
            ),
            (&[("max-devices", "2")], "concurrent-connections"),
            (
                &[
                    ("rate-down", "1M"),
                    ("burst-down-limit", "2M"),
                    ("burst-up-limit", "2M"),
                ],
                "burst-down-limit",
            ),
            (
                &[
                    ("burst-down-limit", "2M"),
                    ("burst-up-limit", "2M"),
                    ("burst-down-threshold", "1M"),
                    ("burst-up-threshold", "1M"),
                    ("burst-down-time", "8"),
                    ("burst-up-time", "8"),
                ],
                "burst-down-limit",
            ),
            (&[("session-timeout", "99999999")], "session-timeout"),
        ];
        for (pairs, field) in cases {
            let e = Policy::parse(&raw(pairs), vec![], vec![]).unwrap_err();
            assert_eq!(e.field, *field, "{pairs:?}: {e}");
        }
    }

    #[test]
    fn a_complete_burst_is_kept() {
        let p = Policy::parse(
            &raw(&[
                ("rate-down", "10M"),
                ("rate-up", "2M"),
                ("burst-down-limit", "20M"),
                ("burst-up-limit", "4M"),
                ("burst-down-threshold", "8M"),
                ("burst-up-threshold", "1M"),
                ("burst-down-time", "16"),
                ("burst-up-time", "8"),
            ]),
            vec![],
            vec![],
        )
        .unwrap();
        let b = p.burst.unwrap();
        assert_eq!((b.down_limit, b.up_time_secs), (20_000_000, 8));
    }
}
