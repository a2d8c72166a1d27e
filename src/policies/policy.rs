//! The typed policy: raw field values (control list over the store, per field)
//! parsed and checked once, with errors that name the field and the value.

use super::curves::Curve;
use super::fields::{def_of, Field, RawPolicy, ValueKind};
use super::modulation::{Modulation, OnExhausted, Period, TrafficKind};
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
    /// Rate modulation by traffic (None: off).
    pub modulation: Option<Modulation>,
    pub on_exhausted: OnExhausted,
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
        ValueKind::Choice(words) if words.iter().any(|w| w.eq_ignore_ascii_case(v)) => Ok(()),
        ValueKind::Choice(words) => Err(error(
            field,
            value,
            format!("must be one of {}", words.join(", ")),
        )),
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
            modulation: None,
            on_exhausted: OnExhausted::Disconnect,
            check,
            reply,
        };
        let mut p = p;
        p.modulation = modulation(raw, &p)?;
        p.on_exhausted = on_exhausted(raw)?;
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

fn word(raw: &RawPolicy, f: Field) -> Option<String> {
    raw.get(f).map(|v| v.trim().to_ascii_lowercase())
}

const MODULATION_FIELDS: &[Field] = &[
    Field::ModulationActivate,
    Field::ModulationDeactivate,
    Field::ModulationPeriod,
    Field::ModulationHours,
    Field::ModulationTraffic,
    Field::ModulationMaxTotal,
    Field::ModulationMaxDown,
    Field::ModulationMaxUp,
    Field::ModulationMinDown,
    Field::ModulationMinUp,
    Field::ModulationIgnoreInactive,
];

/// Longest `modulation-hours`: hour buckets are kept for 32 days.
pub const MAX_MODULATION_HOURS: u64 = 31 * 24;

/// The modulation fields, checked together (kinds are checked already).
fn modulation(raw: &RawPolicy, p: &Policy) -> Result<Option<Modulation>, PolicyError> {
    let given = |f: Field| raw.get(f).unwrap_or("");
    let Some(curve) = word(raw, Field::Modulation) else {
        // The details without the switch are a mistake, not a silent no-op.
        if let Some(f) = MODULATION_FIELDS.iter().find(|f| raw.get(**f).is_some()) {
            return Err(error(*f, given(*f), "set without modulation"));
        }
        return Ok(None);
    };
    if curve == "off" {
        return Ok(None);
    }
    let curve: Curve = curve
        .parse()
        .map_err(|e: super::curves::CurveError| error(Field::Modulation, &curve, e.to_string()))?;
    if p.rate_down.is_none() && p.rate_up.is_none() {
        return Err(error(
            Field::Modulation,
            given(Field::Modulation),
            "modulation needs rate-down or rate-up",
        ));
    }
    let count = |f: Field| raw.get(f).and_then(|v| v.trim().parse::<u64>().ok());
    let hour = |f: Field| -> Result<u8, PolicyError> {
        match count(f) {
            None => Ok(0),
            Some(h) if h <= 23 => Ok(h as u8),
            Some(_) => Err(error(f, given(f), "an hour 0..23")),
        }
    };
    let (activate, deactivate) = (
        hour(Field::ModulationActivate)?,
        hour(Field::ModulationDeactivate)?,
    );
    let period = match word(raw, Field::ModulationPeriod).as_deref() {
        Some("month") => {
            if raw.get(Field::ModulationHours).is_some() {
                return Err(error(
                    Field::ModulationHours,
                    given(Field::ModulationHours),
                    "only with modulation-period hours",
                ));
            }
            Period::Month
        }
        Some(_) => match count(Field::ModulationHours) {
            Some(n @ 1..=MAX_MODULATION_HOURS) => Period::Hours(n as u32),
            Some(_) => {
                return Err(error(
                    Field::ModulationHours,
                    given(Field::ModulationHours),
                    format!("must be 1..{MAX_MODULATION_HOURS}"),
                ))
            }
            None => {
                return Err(error(
                    Field::ModulationHours,
                    "",
                    "required with modulation-period hours",
                ))
            }
        },
        None => {
            return Err(error(
                Field::ModulationPeriod,
                "",
                "required with modulation",
            ))
        }
    };
    let traffic = match word(raw, Field::ModulationTraffic).as_deref() {
        Some("total") => TrafficKind::Total,
        Some("separate") => TrafficKind::Separate,
        Some("down") => TrafficKind::Down,
        Some("up") => TrafficKind::Up,
        _ => {
            return Err(error(
                Field::ModulationTraffic,
                given(Field::ModulationTraffic),
                "required with modulation",
            ))
        }
    };
    let mb = |f: Field| count(f).unwrap_or(0).saturating_mul(1 << 20);
    let needed: &[Field] = match traffic {
        TrafficKind::Total => &[Field::ModulationMaxTotal],
        TrafficKind::Separate => &[Field::ModulationMaxDown, Field::ModulationMaxUp],
        TrafficKind::Down => &[Field::ModulationMaxDown],
        TrafficKind::Up => &[Field::ModulationMaxUp],
    };
    for f in needed {
        if mb(*f) == 0 {
            return Err(error(
                *f,
                given(*f),
                format!(
                    "a maximum above 0 is required with modulation-traffic {}",
                    given(Field::ModulationTraffic).trim()
                ),
            ));
        }
    }
    let rate = |f: Field| {
        raw.get(f)
            .and_then(|v| super::rates::parse_rate(v.trim()).ok())
    };
    let min = |f: Field, of: Option<u64>, rate_field: Field| -> Result<u64, PolicyError> {
        let Some(max) = of else { return Ok(0) };
        match rate(f) {
            // A zero Mikrotik rate means unlimited: never the minimum.
            None | Some(0) => Err(error(
                f,
                given(f),
                format!("required (above 0) with {}", def_of(rate_field).name),
            )),
            Some(m) if m > max => Err(error(
                f,
                given(f),
                format!(
                    "above {} ({})",
                    def_of(rate_field).name,
                    super::rates::format_rate(max)
                ),
            )),
            Some(m) => Ok(m),
        }
    };
    Ok(Some(Modulation {
        curve,
        activate,
        deactivate,
        period,
        traffic,
        max_total: mb(Field::ModulationMaxTotal),
        max_down: mb(Field::ModulationMaxDown),
        max_up: mb(Field::ModulationMaxUp),
        min_down: min(Field::ModulationMinDown, p.rate_down, Field::RateDown)?,
        min_up: min(Field::ModulationMinUp, p.rate_up, Field::RateUp)?,
        ignore_inactive: word(raw, Field::ModulationIgnoreInactive).as_deref() == Some("yes"),
    }))
}

fn on_exhausted(raw: &RawPolicy) -> Result<OnExhausted, PolicyError> {
    let given = |f: Field| raw.get(f).unwrap_or("");
    let rate = |f: Field| {
        raw.get(f)
            .and_then(|v| super::rates::parse_rate(v.trim()).ok())
    };
    let what = word(raw, Field::OnExhausted);
    let stray = |fields: &[Field], why: &str| -> Result<(), PolicyError> {
        match fields.iter().find(|f| raw.get(**f).is_some()) {
            Some(f) => Err(error(*f, given(*f), why.to_string())),
            None => Ok(()),
        }
    };
    let throttle = [Field::ThrottleRateDown, Field::ThrottleRateUp];
    let redirect = [Field::RedirectAddressList];
    match what.as_deref() {
        Some("throttle") => {
            stray(&redirect, "only with on-exhausted redirect")?;
            let mut r = [0u64; 2];
            for (i, f) in throttle.iter().enumerate() {
                r[i] = rate(*f).filter(|&v| v > 0).ok_or_else(|| {
                    error(
                        *f,
                        given(*f),
                        "required (above 0) with on-exhausted throttle",
                    )
                })?;
            }
            Ok(OnExhausted::Throttle {
                down: r[0],
                up: r[1],
            })
        }
        Some("redirect") => {
            stray(&throttle, "only with on-exhausted throttle")?;
            let list = raw
                .get(Field::RedirectAddressList)
                .map(|v| v.trim().to_string())
                .ok_or_else(|| {
                    error(
                        Field::RedirectAddressList,
                        "",
                        "required with on-exhausted redirect",
                    )
                })?;
            Ok(OnExhausted::Redirect { address_list: list })
        }
        _ => {
            stray(&throttle, "only with on-exhausted throttle")?;
            stray(&redirect, "only with on-exhausted redirect")?;
            Ok(OnExhausted::Disconnect)
        }
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
            (&[("modulation", "steep")], "modulation"),
            (&[("modulation", "linear")], "modulation"),
            (&[("modulation-hours", "3")], "modulation-hours"),
            (
                &[("rate-down", "10M"), ("modulation", "linear")],
                "modulation-period",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "hours"),
                ],
                "modulation-hours",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "weeks"),
                ],
                "modulation-period",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                ],
                "modulation-traffic",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                    ("modulation-traffic", "separate"),
                    ("modulation-max-down", "100"),
                ],
                "modulation-max-up",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                    ("modulation-traffic", "total"),
                    ("modulation-max-total", "0"),
                ],
                "modulation-max-total",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                    ("modulation-traffic", "down"),
                    ("modulation-max-down", "100"),
                ],
                "modulation-min-down",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                    ("modulation-traffic", "down"),
                    ("modulation-max-down", "100"),
                    ("modulation-min-down", "20M"),
                ],
                "modulation-min-down",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-activate", "24"),
                ],
                "modulation-activate",
            ),
            (
                &[
                    ("rate-down", "10M"),
                    ("modulation", "linear"),
                    ("modulation-period", "month"),
                    ("modulation-hours", "5"),
                ],
                "modulation-hours",
            ),
            (&[("on-exhausted", "throttle")], "throttle-rate-down"),
            (
                &[("on-exhausted", "throttle"), ("throttle-rate-down", "1M")],
                "throttle-rate-up",
            ),
            (&[("on-exhausted", "redirect")], "redirect-address-list"),
            (&[("on-exhausted", "cut")], "on-exhausted"),
            (&[("throttle-rate-down", "1M")], "throttle-rate-down"),
            (
                &[
                    ("on-exhausted", "disconnect"),
                    ("redirect-address-list", "x"),
                ],
                "redirect-address-list",
            ),
            (
                &[("modulation-ignore-inactive", "maybe")],
                "modulation-ignore-inactive",
            ),
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
