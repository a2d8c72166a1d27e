//! What a policy decides at login: refuse (with a Reply-Message that says why) or
//! let in with the reply attributes it implies. Pure: the caller gathers the facts.

use chrono_tz::Tz;

use super::modulation::{self, OnExhausted, Rates, Traffic};
use super::policy::{CustomAttr, Policy};
use super::quota::{Quota, Quotas};
use super::rates::wispr;
use super::schedule::{evaluate, Verdict};
use crate::sessions::Usage;

/// Which rate attributes a NAS understands (the NAS row's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NasKind {
    /// `Mikrotik-Rate-Limit` (and `Mikrotik-Address-List`).
    Mikrotik,
    /// `WISPr-Bandwidth-Max-Down/Up` (hotspot gateways, most other NASes).
    Other,
}

impl NasKind {
    /// From the NAS row's type; a NAS without a row is taken as MikroTik (the
    /// module's default type).
    pub fn of(nas_type: Option<&str>) -> NasKind {
        match nas_type {
            None => NasKind::Mikrotik,
            Some(t) if t.eq_ignore_ascii_case("mikrotik") => NasKind::Mikrotik,
            Some(_) => NasKind::Other,
        }
    }
}

/// Everything a login decision depends on besides the policy.
pub struct LoginFacts<'a> {
    pub now: i64,
    /// The NAS's time zone (schedules are in its wall clock).
    pub nas_tz: Tz,
    pub nas_kind: NasKind,
    /// Open sessions of the user, stale ones excluded.
    pub open_sessions: u64,
    /// Distinct devices since the policy was assigned, and whether this login's
    /// Calling-Station-Id is one of them (None: the request has none).
    pub devices: u64,
    pub device_known: Option<bool>,
    /// Usage today and this month (the module's time zone).
    pub day: Usage,
    pub month: Usage,
    /// The request's value of an attribute, as text (for check attributes).
    pub request_value: &'a dyn Fn(&str) -> Option<String>,
    /// Traffic in the modulation window (zero without modulation).
    pub traffic: Traffic,
    /// Capping says the allowance is used up and the policy throttles or redirects
    /// (a `disconnect` policy never gets here: capping rejected).
    pub exhausted: bool,
}

/// Reply-Messages of the refusals.
pub mod messages {
    pub const CONCURRENT: &str = "Too many concurrent connections";
    pub const DEVICES: &str = "Too many devices for this account";
    pub const SCHEDULE: &str = "Login not allowed at this time";
    pub const DAILY_TIME: &str = "Daily time limit reached";
    pub const MONTHLY_TIME: &str = "Monthly time limit reached";
    pub const DAILY_TRAFFIC: &str = "Daily traffic limit reached";
    pub const MONTHLY_TRAFFIC: &str = "Monthly traffic limit reached";
    pub const CHECK: &str = "Login not allowed for this connection";

    /// The refusal of a reached quota (also the reason of its disconnect).
    pub fn of(q: super::Quota) -> &'static str {
        match q {
            super::Quota::DailyTime => DAILY_TIME,
            super::Quota::MonthlyTime => MONTHLY_TIME,
            super::Quota::DailyTraffic => DAILY_TRAFFIC,
            super::Quota::MonthlyTraffic => MONTHLY_TRAFFIC,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    Reject {
        message: &'static str,
        /// For the log: the numbers behind the refusal.
        why: String,
    },
    Accept(Grant),
}

/// What an accepted login gets from its policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The policy's bound on the session (its timeout, the schedule window, the
    /// time quotas); the caller takes the smallest of this, capping's and the
    /// reply's own.
    pub session_timeout: Option<u32>,
    /// (attribute, value, op): op is `:=` for the policy's own attributes, the
    /// operator given for custom reply attributes.
    pub reply: Vec<(String, String, String)>,
    /// Record this Calling-Station-Id as a device of the user.
    pub new_device: bool,
    /// For the debug line.
    pub notes: Vec<String>,
    /// The Mikrotik-Rate-Limit worked out (also for WISPr NASes), if any.
    pub rate_limit: Option<String>,
    /// Let in at the throttle rate or with the redirect list (exhausted).
    pub throttled: bool,
}

fn set(out: &mut Vec<(String, String, String)>, attr: &str, value: String) {
    out.push((attr.to_string(), value, ":=".to_string()));
}

/// Does the request satisfy a check attribute? Numbers compare as numbers when
/// both sides are whole numbers, else as text; `=*` / `!*` test presence.
pub fn check_matches(c: &CustomAttr, have: Option<&str>) -> bool {
    let want = c.value.as_str();
    let ord = |h: &str| match (h.trim().parse::<i128>(), want.trim().parse::<i128>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => h.cmp(want),
    };
    match (c.op.as_str(), have) {
        ("=*", h) => h.is_some(),
        ("!*", h) => h.is_none(),
        (_, None) => false,
        ("==", Some(h)) => ord(h).is_eq(),
        ("!=", Some(h)) => !ord(h).is_eq(),
        ("<", Some(h)) => ord(h).is_lt(),
        ("<=", Some(h)) => ord(h).is_le(),
        (">", Some(h)) => ord(h).is_gt(),
        (">=", Some(h)) => ord(h).is_ge(),
        // Refused when the policy is saved; never matches if one got in anyway.
        _ => false,
    }
}

/// The operators [`check_matches`] understands.
pub const CHECK_OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">=", "=*", "!*"];
/// The operators a reply attribute may use.
pub const REPLY_OPS: &[&str] = &["=", ":=", "+="];

pub fn decide(p: &Policy, f: &LoginFacts<'_>) -> LoginDecision {
    let reject = |message, why: String| LoginDecision::Reject { message, why };
    if p.concurrent > 0 && f.open_sessions >= u64::from(p.concurrent) {
        return reject(
            messages::CONCURRENT,
            format!(
                "{} open session(s), {} allowed",
                f.open_sessions, p.concurrent
            ),
        );
    }
    // Devices are only counted for a policy that limits them (a write per new one).
    let new_device = p.max_devices > 0 && f.device_known == Some(false);
    if p.max_devices > 0 && new_device && f.devices >= u64::from(p.max_devices) {
        return reject(
            messages::DEVICES,
            format!("{} device(s) seen, {} allowed", f.devices, p.max_devices),
        );
    }
    for c in &p.check {
        let have = (f.request_value)(&c.attribute);
        if !check_matches(c, have.as_deref()) {
            return reject(
                messages::CHECK,
                format!(
                    "check {} {} {:?} not met (request has {have:?})",
                    c.attribute, c.op, c.value
                ),
            );
        }
    }
    let mut g = Grant {
        new_device,
        ..Grant::default()
    };
    let bound = |secs: u64, what: &str, g: &mut Grant| {
        let s = u32::try_from(secs).unwrap_or(u32::MAX);
        if g.session_timeout.map_or(true, |t| s < t) {
            g.session_timeout = Some(s);
            g.notes.push(format!("Session-Timeout {s} s from {what}"));
        }
    };
    if let Some(s) = &p.schedule {
        match evaluate(s, f.now, f.nas_tz) {
            Verdict::Closed { next_open } => {
                return reject(
                    messages::SCHEDULE,
                    format!("outside the schedule \"{s}\"; next window opens at {next_open:?}"),
                )
            }
            Verdict::Open {
                seconds_left: Some(left),
            } => bound(left, "the end of the schedule window", &mut g),
            Verdict::Open { seconds_left: None } => {}
        }
    }
    let quotas = Quotas::of(p);
    if let Some(r) = quotas.reached(&f.day, &f.month) {
        return reject(messages::of(r.quota), r.to_string());
    }
    if let Some((quota, left)) = quotas.time_left(&f.day, &f.month) {
        bound(left, &format!("the {} quota", quota.label()), &mut g);
    }
    if let Some(t) = p.session_timeout_secs {
        bound(u64::from(t), "the policy's session-timeout", &mut g);
    }
    if let Some(t) = p.idle_timeout_secs {
        set(&mut g.reply, "Idle-Timeout", t.to_string());
    }
    if let Some((asked, sent)) = p.interim {
        if asked != sent {
            g.notes.push(format!(
                "interim-interval {asked} s raised to {sent} s (the minimum)"
            ));
        }
        set(&mut g.reply, "Acct-Interim-Interval", sent.to_string());
    }
    let exhausted = if f.exhausted {
        &p.on_exhausted
    } else {
        &OnExhausted::Disconnect
    };
    g.throttled = !matches!(exhausted, OnExhausted::Disconnect);
    let rates = match exhausted {
        OnExhausted::Throttle { down, up } => Some(Rates {
            down: *down,
            up: *up,
            burst: None,
            modulated: false,
        }),
        _ => modulation::rates(p, f.traffic, f.now, f.nas_tz),
    };
    if let Some(r) = rates {
        if r.modulated {
            g.notes.push(format!(
                "modulated rate {} (traffic {} down, {} up)",
                r.mikrotik(),
                f.traffic.down,
                f.traffic.up
            ));
        }
        g.rate_limit = Some(r.mikrotik());
        match f.nas_kind {
            NasKind::Mikrotik => set(&mut g.reply, "Mikrotik-Rate-Limit", r.mikrotik()),
            NasKind::Other => {
                for (attr, v) in wispr(r.down, r.up) {
                    if v != "0" {
                        set(&mut g.reply, attr, v);
                    }
                }
            }
        }
    }
    let list = match exhausted {
        OnExhausted::Redirect { address_list } => Some(address_list),
        _ => p.address_list.as_ref(),
    };
    if let (Some(list), NasKind::Mikrotik) = (list, f.nas_kind) {
        set(&mut g.reply, "Mikrotik-Address-List", list.clone());
    }
    for r in &p.reply {
        g.reply
            .push((r.attribute.clone(), r.value.clone(), r.op.clone()));
    }
    LoginDecision::Accept(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::{Policy, RawPolicy};

    // Monday 2026-11-30 12:00:00 UTC.
    const NOON_MON: i64 = 1_796_040_000;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        let mut raw = RawPolicy::new();
        for (k, v) in pairs {
            raw.insert(k, v);
        }
        Policy::parse(&raw, vec![], vec![]).unwrap()
    }

    fn no_attrs(_: &str) -> Option<String> {
        None
    }

    fn facts() -> LoginFacts<'static> {
        LoginFacts {
            now: NOON_MON,
            nas_tz: chrono_tz::UTC,
            nas_kind: NasKind::Mikrotik,
            open_sessions: 0,
            devices: 0,
            device_known: None,
            day: Usage::default(),
            month: Usage::default(),
            request_value: &no_attrs,
            traffic: Traffic::default(),
            exhausted: false,
        }
    }

    fn grant(d: LoginDecision) -> Grant {
        match d {
            LoginDecision::Accept(g) => g,
            LoginDecision::Reject { message, why } => panic!("rejected: {message} ({why})"),
        }
    }

    fn refusal(d: LoginDecision) -> &'static str {
        match d {
            LoginDecision::Reject { message, .. } => message,
            LoginDecision::Accept(g) => panic!("accepted: {g:?}"),
        }
    }

    fn attr(g: &Grant, name: &str) -> Option<String> {
        g.reply.iter().find(|r| r.0 == name).map(|r| r.1.clone())
    }

    #[test]
    fn concurrency_and_devices() {
        let p = policy(&[("concurrent-connections", "2"), ("max-devices", "2")]);
        // (open sessions, devices seen, this device known, refusal)
        let cases = [
            (0, 0, None, None),
            (1, 1, Some(true), None),
            (2, 1, Some(true), Some(messages::CONCURRENT)),
            (1, 2, Some(true), None),
            (1, 2, Some(false), Some(messages::DEVICES)),
            (1, 1, Some(false), None),
            (0, 5, None, None),
        ];
        let unlimited = policy(&[("concurrent-connections", "2")]);
        let f = LoginFacts {
            device_known: Some(false),
            ..facts()
        };
        assert!(
            !grant(decide(&unlimited, &f)).new_device,
            "no count without max-devices"
        );
        for (open, devices, known, want) in cases {
            let f = LoginFacts {
                open_sessions: open,
                devices,
                device_known: known,
                ..facts()
            };
            match (decide(&p, &f), want) {
                (LoginDecision::Accept(g), None) => {
                    assert_eq!(
                        g.new_device,
                        known == Some(false),
                        "{open} {devices} {known:?}"
                    )
                }
                (LoginDecision::Reject { message, .. }, Some(w)) => assert_eq!(message, w),
                (d, w) => panic!("{open} {devices} {known:?}: {d:?}, wanted {w:?}"),
            }
        }
    }

    #[test]
    fn session_timeout_is_the_smallest_bound() {
        // Window ends 18:00 (6 h), the policy says 60 min, 30 min of the day left.
        let p = policy(&[
            ("schedule", "mon-fri 08:00-18:00"),
            ("session-timeout", "60"),
            ("daily-time", "120"),
        ]);
        let f = |used_min: u64| LoginFacts {
            day: Usage {
                session_time: used_min * 60,
                ..Usage::default()
            },
            ..facts()
        };
        assert_eq!(grant(decide(&p, &f(0))).session_timeout, Some(3600));
        assert_eq!(grant(decide(&p, &f(90))).session_timeout, Some(1800));
        assert_eq!(refusal(decide(&p, &f(120))), messages::DAILY_TIME);
        let late = LoginFacts {
            now: NOON_MON + 5 * 3600 + 30 * 60,
            ..facts()
        };
        assert_eq!(
            grant(decide(&p, &late)).session_timeout,
            Some(1800),
            "window"
        );
        let evening = LoginFacts {
            now: NOON_MON + 7 * 3600,
            ..facts()
        };
        assert_eq!(refusal(decide(&p, &evening)), messages::SCHEDULE);
        // The NAS's zone: 12:00 UTC is 07:00 in New York, before the window.
        let ny = LoginFacts {
            nas_tz: chrono_tz::America::New_York,
            ..facts()
        };
        assert_eq!(refusal(decide(&p, &ny)), messages::SCHEDULE);
    }

    #[test]
    fn quotas_refuse_when_reached() {
        let mb = 1 << 20;
        let p = policy(&[
            ("daily-traffic", "100"),
            ("monthly-traffic", "1000"),
            ("monthly-time", "600"),
        ]);
        let cases = [
            (99 * mb, 99 * mb, 0, None),
            (100 * mb, 100 * mb, 0, Some(messages::DAILY_TRAFFIC)),
            (0, 1000 * mb, 0, Some(messages::MONTHLY_TRAFFIC)),
            (0, 0, 36_000, Some(messages::MONTHLY_TIME)),
        ];
        for (day, month, month_time, want) in cases {
            let f = LoginFacts {
                day: Usage {
                    input_octets: day,
                    ..Usage::default()
                },
                month: Usage {
                    output_octets: month,
                    session_time: month_time,
                    ..Usage::default()
                },
                ..facts()
            };
            match want {
                None => assert_eq!(grant(decide(&p, &f)).session_timeout, Some(36_000)),
                Some(w) => assert_eq!(refusal(decide(&p, &f)), w),
            }
        }
    }

    #[test]
    fn reply_attributes_per_nas_kind() {
        let p = policy(&[
            ("rate-down", "10M"),
            ("rate-up", "2M"),
            ("idle-timeout", "5"),
            ("interim-interval", "60"),
            ("address-list", "vip"),
        ]);
        let g = grant(decide(&p, &facts()));
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("2M/10M"));
        assert_eq!(attr(&g, "Idle-Timeout").as_deref(), Some("300"));
        assert_eq!(attr(&g, "Acct-Interim-Interval").as_deref(), Some("300"));
        assert!(
            g.notes.iter().any(|n| n.contains("raised to 300")),
            "{:?}",
            g.notes
        );
        assert_eq!(attr(&g, "Mikrotik-Address-List").as_deref(), Some("vip"));
        let other = grant(decide(
            &p,
            &LoginFacts {
                nas_kind: NasKind::Other,
                ..facts()
            },
        ));
        assert_eq!(
            attr(&other, "WISPr-Bandwidth-Max-Down").as_deref(),
            Some("10000000")
        );
        assert_eq!(
            attr(&other, "WISPr-Bandwidth-Max-Up").as_deref(),
            Some("2000000")
        );
        assert_eq!(attr(&other, "Mikrotik-Rate-Limit"), None);
        assert_eq!(attr(&other, "Mikrotik-Address-List"), None);
    }

    #[test]
    fn custom_check_and_reply_attributes() {
        let mut p = policy(&[]);
        p.check = vec![
            CustomAttr {
                attribute: "NAS-Port-Type".into(),
                op: "==".into(),
                value: "Wireless-802.11".into(),
            },
            CustomAttr {
                attribute: "NAS-Port".into(),
                op: "<".into(),
                value: "100".into(),
            },
        ];
        p.reply = vec![CustomAttr {
            attribute: "Filter-Id".into(),
            op: "+=".into(),
            value: "gold".into(),
        }];
        let request = |port: &'static str| {
            move |name: &str| match name {
                "NAS-Port-Type" => Some("Wireless-802.11".to_string()),
                "NAS-Port" => Some(port.to_string()),
                _ => None,
            }
        };
        let ok = request("7");
        let g = grant(decide(
            &p,
            &LoginFacts {
                request_value: &ok,
                ..facts()
            },
        ));
        assert_eq!(g.reply, [("Filter-Id".into(), "gold".into(), "+=".into())]);
        // 100 < 100 fails; numbers compare as numbers (not "7" > "100" as text).
        let bad = request("100");
        let f = LoginFacts {
            request_value: &bad,
            ..facts()
        };
        assert_eq!(refusal(decide(&p, &f)), messages::CHECK);
        assert_eq!(
            refusal(decide(&p, &facts())),
            messages::CHECK,
            "absent attribute"
        );
    }

    #[test]
    fn modulated_rate_at_login() {
        let p = policy(&[
            ("rate-down", "10M"),
            ("rate-up", "2M"),
            ("modulation", "linear"),
            ("modulation-period", "hours"),
            ("modulation-hours", "24"),
            ("modulation-traffic", "total"),
            ("modulation-max-total", "100"),
            ("modulation-min-down", "1M"),
            ("modulation-min-up", "200k"),
        ]);
        let f = |mb: u64| LoginFacts {
            traffic: Traffic {
                down: mb << 20,
                up: 0,
            },
            ..facts()
        };
        let g = grant(decide(&p, &f(0)));
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("2M/10M"));
        let g = grant(decide(&p, &f(50)));
        assert_eq!(
            attr(&g, "Mikrotik-Rate-Limit").as_deref(),
            Some("1100k/5500k")
        );
        assert_eq!(g.rate_limit.as_deref(), Some("1100k/5500k"));
        let g = grant(decide(&p, &f(100)));
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("200k/1M"));
        assert!(!g.throttled);
    }

    #[test]
    fn exhausted_throttle_and_redirect() {
        let throttle = policy(&[
            ("rate-down", "10M"),
            ("rate-up", "2M"),
            ("address-list", "vip"),
            ("on-exhausted", "throttle"),
            ("throttle-rate-down", "256k"),
            ("throttle-rate-up", "64k"),
        ]);
        let over = LoginFacts {
            exhausted: true,
            ..facts()
        };
        let g = grant(decide(&throttle, &over));
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("64k/256k"));
        assert_eq!(attr(&g, "Mikrotik-Address-List").as_deref(), Some("vip"));
        assert!(g.throttled);
        let g = grant(decide(&throttle, &facts()));
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("2M/10M"));
        assert!(!g.throttled);
        let redirect = policy(&[
            ("rate-down", "10M"),
            ("address-list", "vip"),
            ("on-exhausted", "redirect"),
            ("redirect-address-list", "expired"),
        ]);
        let g = grant(decide(&redirect, &over));
        assert_eq!(
            attr(&g, "Mikrotik-Address-List").as_deref(),
            Some("expired")
        );
        assert_eq!(attr(&g, "Mikrotik-Rate-Limit").as_deref(), Some("0/10M"));
        assert!(g.throttled);
        // A policy refusal still refuses an exhausted user.
        let closed = policy(&[
            ("schedule", "sun 00:00-01:00"),
            ("on-exhausted", "redirect"),
            ("redirect-address-list", "expired"),
        ]);
        assert_eq!(refusal(decide(&closed, &over)), messages::SCHEDULE);
    }

    #[test]
    fn check_operators() {
        let c = |op: &str, v: &str| CustomAttr {
            attribute: "X".into(),
            op: op.into(),
            value: v.into(),
        };
        let cases = [
            ("==", "a", Some("a"), true),
            ("==", "a", Some("b"), false),
            ("!=", "a", Some("b"), true),
            (">=", "10", Some("9"), false),
            (">", "9", Some("10"), true),
            ("<=", "b", Some("a"), true),
            ("=*", "", Some("x"), true),
            ("=*", "", None, false),
            ("!*", "", None, true),
            ("==", "a", None, false),
            ("=~", "a", Some("a"), false),
        ];
        for (op, v, have, want) in cases {
            assert_eq!(check_matches(&c(op, v), have), want, "{op} {v} {have:?}");
        }
    }
}
