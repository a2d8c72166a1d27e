//! Dynamic rate modulation (HSNM "Dynamic Modulation Data Rate based on Developed
//! Traffic") and what a policy does once the capping allowance is used up. Pure: the
//! caller reads the traffic; [`super::curves`] has the curve formulas.
//!
//! - Active hours: from `activate` (inclusive) to `deactivate` (exclusive), in the
//!   NAS's wall clock; a window may cross midnight (22 → 6); equal hours = always.
//!   While inactive the policy's full rate applies.
//! - Traffic counted: `period hours` = the current hour and the `hours - 1` before it
//!   (hour buckets); `period month` = the current month. With `ignore-inactive` only
//!   buckets whose hour (at its start, NAS wall clock) is an active hour count.
//! - Which traffic drives which rate: `total` (down + up against `max-total`) and `down`
//!   / `up` (that direction against its maximum) drive both rates with one fraction;
//!   `separate` drives each rate by its own direction.
//! - Rate per direction: `curves::rate(curve, rate, min, used, max)`, rounded to the
//!   nearest of [`super::curves::STEPS`] steps; burst limit and threshold scale by the
//!   same factor (`rates::scale_burst`), burst times stay.

use chrono::{DateTime, Timelike};
use chrono_tz::Tz;

use super::curves::{self, Curve};
use super::policy::Policy;
use super::rates::{mikrotik_rate_limit, scale_burst, Burst};

/// Over which time traffic is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The current hour and the N − 1 before it.
    Hours(u32),
    /// The current calendar month.
    Month,
}

/// Which traffic counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficKind {
    Total,
    Separate,
    Down,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modulation {
    pub curve: Curve,
    pub activate: u8,
    pub deactivate: u8,
    pub period: Period,
    pub traffic: TrafficKind,
    /// Bytes; 0 = not set (validation requires those the traffic kind needs).
    pub max_total: u64,
    pub max_down: u64,
    pub max_up: u64,
    /// bit/s.
    pub min_down: u64,
    pub min_up: u64,
    pub ignore_inactive: bool,
}

/// What a login or a session gets once capping says the allowance is used up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OnExhausted {
    /// Reject the login, disconnect the session (capping's own behaviour).
    #[default]
    Disconnect,
    /// Let in / keep up at this rate (bit/s).
    Throttle { down: u64, up: u64 },
    /// Let in / keep up with this Mikrotik-Address-List (e.g. a captive page rule).
    Redirect { address_list: String },
}

impl OnExhausted {
    /// The CoA / reply attribute it sets: (Mikrotik-Rate-Limit, Mikrotik-Address-List).
    pub fn attributes(&self) -> Option<(Option<String>, Option<String>)> {
        match self {
            OnExhausted::Disconnect => None,
            OnExhausted::Throttle { down, up } => Some((
                Some(mikrotik_rate_limit(*down, *up, None, None, None)),
                None,
            )),
            OnExhausted::Redirect { address_list } => Some((None, Some(address_list.clone()))),
        }
    }
}

/// Traffic in the modulation window, bytes (down = to the user, Acct-Output-Octets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub down: u64,
    pub up: u64,
}

/// Where the traffic of the window comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The month's usage (usage_month, the module's time zone).
    Month,
    /// Hour buckets starting at or after this time, filtered by [`counts`].
    HoursSince(i64),
}

pub const HOUR: i64 = 3600;

/// Start of the hour bucket containing `t`.
pub fn hour_start(t: i64) -> i64 {
    t.div_euclid(HOUR) * HOUR
}

fn local_hour(t: i64, tz: Tz) -> u8 {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.with_timezone(&tz).hour() as u8)
        .unwrap_or(0)
}

impl Modulation {
    /// Whether modulation is active at wall-clock hour `hour`.
    pub fn active_hour(&self, hour: u8) -> bool {
        let (a, d) = (self.activate, self.deactivate);
        match a.cmp(&d) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (a..d).contains(&hour),
            std::cmp::Ordering::Greater => hour >= a || hour < d,
        }
    }

    pub fn active_at(&self, t: i64, tz: Tz) -> bool {
        self.active_hour(local_hour(t, tz))
    }

    /// Where the window's traffic is read from at `now`; `month_start` is the start
    /// of the current month in the NAS's zone.
    pub fn source(&self, now: i64, month_start: i64) -> Source {
        match (self.period, self.ignore_inactive) {
            (Period::Month, false) => Source::Month,
            (Period::Month, true) => Source::HoursSince(hour_start(month_start)),
            (Period::Hours(n), _) => {
                Source::HoursSince(hour_start(now) - HOUR * i64::from(n.max(1) - 1))
            }
        }
    }

    /// Whether an hour bucket starting at `hour` counts (ignore-inactive).
    pub fn counts(&self, hour: i64, tz: Tz) -> bool {
        !self.ignore_inactive || self.active_at(hour, tz)
    }

    /// Sums the hour buckets `(hour start, down, up)` that count.
    pub fn sum_hours(&self, rows: &[(i64, u64, u64)], tz: Tz) -> Traffic {
        rows.iter().filter(|(h, _, _)| self.counts(*h, tz)).fold(
            Traffic::default(),
            |t, (_, d, u)| Traffic {
                down: t.down.saturating_add(*d),
                up: t.up.saturating_add(*u),
            },
        )
    }

    /// (used, max) driving the download and the upload rate.
    fn drivers(&self, t: Traffic) -> [(u64, u64); 2] {
        match self.traffic {
            TrafficKind::Total => {
                let x = (t.down.saturating_add(t.up), self.max_total);
                [x, x]
            }
            TrafficKind::Separate => [(t.down, self.max_down), (t.up, self.max_up)],
            TrafficKind::Down => [(t.down, self.max_down); 2],
            TrafficKind::Up => [(t.up, self.max_up); 2],
        }
    }
}

/// A policy's effective rates: bit/s (0 = not limited by the policy) and burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub down: u64,
    pub up: u64,
    pub burst: Option<Burst>,
    /// Modulation lowered (or could lower) the rate now.
    pub modulated: bool,
}

impl Rates {
    pub fn mikrotik(&self) -> String {
        mikrotik_rate_limit(self.down, self.up, self.burst.as_ref(), None, None)
    }
}

/// One direction: the curve's rate, on a step; unlimited (0) stays unlimited.
fn direction(curve: Curve, max: u64, min: u64, (used, max_traffic): (u64, u64)) -> u64 {
    if max == 0 {
        return 0;
    }
    curves::step(curves::rate(curve, max, min, used, max_traffic), min, max)
}

fn factor(rate: u64, max: u64) -> f64 {
    if max == 0 {
        1.0
    } else {
        rate as f64 / max as f64
    }
}

/// The policy's rates at `now` (NAS zone `tz`) with `used` traffic in the window; None
/// when the policy sets no rate.
pub fn rates(p: &Policy, used: Traffic, now: i64, tz: Tz) -> Option<Rates> {
    if p.rate_down.is_none() && p.rate_up.is_none() {
        return None;
    }
    let (max_down, max_up) = (p.rate_down.unwrap_or(0), p.rate_up.unwrap_or(0));
    let full = Rates {
        down: max_down,
        up: max_up,
        burst: p.burst,
        modulated: false,
    };
    let Some(m) = p.modulation.as_ref().filter(|m| m.active_at(now, tz)) else {
        return Some(full);
    };
    let [d, u] = m.drivers(used);
    let down = direction(m.curve, max_down, m.min_down, d);
    let up = direction(m.curve, max_up, m.min_up, u);
    Some(Rates {
        down,
        up,
        burst: p
            .burst
            .map(|b| scale_burst(&b, factor(down, max_down), factor(up, max_up))),
        modulated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::RawPolicy;

    // Monday 2026-11-30 12:00:00 UTC.
    const NOON: i64 = 1_796_040_000;
    const MB: u64 = 1 << 20;

    fn policy(pairs: &[(&str, &str)]) -> Policy {
        let mut raw = RawPolicy::new();
        for (k, v) in pairs {
            assert!(raw.insert(k, v), "{k}");
        }
        Policy::parse(&raw, vec![], vec![]).unwrap()
    }

    fn base(curve: &str) -> Vec<(&'static str, String)> {
        vec![
            ("rate-down", "10M".into()),
            ("rate-up", "2M".into()),
            ("modulation", curve.to_string()),
            ("modulation-activate", "0".into()),
            ("modulation-deactivate", "0".into()),
            ("modulation-period", "hours".into()),
            ("modulation-hours", "24".into()),
            ("modulation-traffic", "total".into()),
            ("modulation-max-total", "1000".into()),
            ("modulation-min-down", "1M".into()),
            ("modulation-min-up", "200k".into()),
        ]
    }

    fn with(curve: &str, over: &[(&'static str, &str)]) -> Policy {
        let mut pairs: Vec<(&str, String)> = base(curve);
        for (k, v) in over {
            pairs.retain(|(f, _)| f != k);
            pairs.push((k, v.to_string()));
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        policy(&refs)
    }

    fn total(bytes: u64) -> Traffic {
        Traffic { down: bytes, up: 0 }
    }

    #[test]
    fn each_curve_at_0_50_100_percent() {
        // (curve, down at 50 %, up at 50 %); 0 % = max, 100 % = min for all.
        // down span 9M in 90k steps, up span 1.8M in 18k steps.
        let cases = [
            ("very-low", 9_460_000, 1_892_000), // 1M + 9M * 0.9375 = 9.4375M → step
            ("low", 7_750_000, 1_550_000),
            ("linear", 5_500_000, 1_100_000),
            ("medium", 3_250_000, 650_000),
            ("high", 1_540_000, 308_000), // 1M + 9M * 0.0625 = 1.5625M → step
            ("min-at-max", 10_000_000, 2_000_000),
        ];
        for (curve, down50, up50) in cases {
            let p = with(curve, &[]);
            let at = |used| rates(&p, total(used), NOON, chrono_tz::UTC).unwrap();
            let r0 = at(0);
            assert_eq!((r0.down, r0.up), (10_000_000, 2_000_000), "{curve} 0%");
            let r50 = at(500 * MB);
            assert_eq!((r50.down, r50.up), (down50, up50), "{curve} 50%");
            let r100 = at(1000 * MB);
            assert_eq!((r100.down, r100.up), (1_000_000, 200_000), "{curve} 100%");
            assert_eq!(at(5000 * MB).down, 1_000_000, "{curve} beyond");
            assert!(r50.modulated);
        }
    }

    #[test]
    fn off_means_the_full_rate() {
        let p = policy(&[("rate-down", "10M"), ("modulation", "off")]);
        let r = rates(&p, total(u64::MAX), NOON, chrono_tz::UTC).unwrap();
        assert_eq!((r.down, r.up, r.modulated), (10_000_000, 0, false));
        assert_eq!(r.mikrotik(), "0/10M");
        assert!(rates(&policy(&[]), total(0), NOON, chrono_tz::UTC).is_none());
    }

    #[test]
    fn active_hours_table() {
        // (activate, deactivate, hour, active)
        let cases = [
            (0, 0, 0, true),
            (7, 7, 3, true),
            (7, 7, 23, true),
            (8, 20, 7, false),
            (8, 20, 8, true),
            (8, 20, 19, true),
            (8, 20, 20, false),
            (22, 6, 21, false),
            (22, 6, 22, true),
            (22, 6, 23, true),
            (22, 6, 0, true),
            (22, 6, 5, true),
            (22, 6, 6, false),
            (22, 6, 12, false),
        ];
        for (a, d, h, want) in cases {
            let m = with("linear", &[]).modulation.unwrap();
            let m = Modulation {
                activate: a,
                deactivate: d,
                ..m
            };
            assert_eq!(m.active_hour(h), want, "{a}-{d} at {h}");
        }
        // Inactive: the full rate, whatever the traffic; the NAS's zone decides.
        let p = with(
            "linear",
            &[
                ("modulation-activate", "8"),
                ("modulation-deactivate", "20"),
            ],
        );
        let full = rates(&p, total(1000 * MB), NOON - 5 * 3600, chrono_tz::UTC).unwrap();
        assert_eq!((full.down, full.modulated), (10_000_000, false), "07:00");
        let on = rates(&p, total(1000 * MB), NOON, chrono_tz::UTC).unwrap();
        assert_eq!(on.down, 1_000_000, "12:00");
        // 12:00 UTC is 07:00 in New York: inactive there.
        let ny = rates(&p, total(1000 * MB), NOON, chrono_tz::America::New_York).unwrap();
        assert_eq!(ny.down, 10_000_000);
    }

    #[test]
    fn windows_and_ignore_inactive() {
        let p = with(
            "linear",
            &[
                ("modulation-activate", "22"),
                ("modulation-deactivate", "6"),
                ("modulation-hours", "3"),
            ],
        );
        let m = p.modulation.unwrap();
        let now = NOON + 1234;
        assert_eq!(m.source(now, 0), Source::HoursSince(NOON - 2 * HOUR));
        let month = Modulation {
            period: Period::Month,
            ..m
        };
        assert_eq!(month.source(now, 1000), Source::Month);
        let month_ign = Modulation {
            ignore_inactive: true,
            ..month
        };
        assert_eq!(month_ign.source(now, 3600 + 5), Source::HoursSince(3600));
        // Buckets at 21:00, 22:00 (active), 23:00 (active), 05:00 (active), 06:00.
        let day = NOON - 12 * HOUR; // 00:00 UTC
        let rows = [
            (day - 3 * HOUR, 1, 10),
            (day - 2 * HOUR, 2, 20),
            (day - HOUR, 4, 40),
            (day + 5 * HOUR, 8, 80),
            (day + 6 * HOUR, 16, 160),
        ];
        assert_eq!(
            m.sum_hours(&rows, chrono_tz::UTC),
            Traffic { down: 31, up: 310 },
            "all count"
        );
        let ign = Modulation {
            ignore_inactive: true,
            ..m
        };
        assert_eq!(
            ign.sum_hours(&rows, chrono_tz::UTC),
            Traffic { down: 14, up: 140 },
            "only active hours"
        );
    }

    #[test]
    fn traffic_kinds_drive_the_rates() {
        let t = Traffic {
            down: 500 * MB,
            up: 1000 * MB,
        };
        let sep = with(
            "linear",
            &[
                ("modulation-traffic", "separate"),
                ("modulation-max-down", "1000"),
                ("modulation-max-up", "1000"),
            ],
        );
        let r = rates(&sep, t, NOON, chrono_tz::UTC).unwrap();
        assert_eq!((r.down, r.up), (5_500_000, 200_000));
        let down = with(
            "linear",
            &[
                ("modulation-traffic", "down"),
                ("modulation-max-down", "1000"),
            ],
        );
        let r = rates(&down, t, NOON, chrono_tz::UTC).unwrap();
        assert_eq!((r.down, r.up), (5_500_000, 1_100_000));
        let up = with(
            "linear",
            &[("modulation-traffic", "up"), ("modulation-max-up", "2000")],
        );
        let r = rates(&up, t, NOON, chrono_tz::UTC).unwrap();
        assert_eq!((r.down, r.up), (5_500_000, 1_100_000));
        // total: 1500 of 1000 MB.
        let r = rates(&with("linear", &[]), t, NOON, chrono_tz::UTC).unwrap();
        assert_eq!((r.down, r.up), (1_000_000, 200_000));
    }

    #[test]
    fn burst_scales_with_the_rate() {
        let p = with(
            "linear",
            &[
                ("burst-down-limit", "20M"),
                ("burst-up-limit", "4M"),
                ("burst-down-threshold", "8M"),
                ("burst-up-threshold", "1M"),
                ("burst-down-time", "16"),
                ("burst-up-time", "8"),
            ],
        );
        let r = rates(&p, total(500 * MB), NOON, chrono_tz::UTC).unwrap();
        let b = r.burst.unwrap();
        // factor 0.55 both ways.
        assert_eq!((b.down_limit, b.down_threshold), (11_000_000, 4_400_000));
        assert_eq!((b.up_limit, b.up_threshold), (2_200_000, 550_000));
        assert_eq!((b.down_time_secs, b.up_time_secs), (16, 8));
        assert_eq!(r.mikrotik(), "1100k/5500k 2200k/11M 550k/4400k 8/16");
    }

    #[test]
    fn on_exhausted_attributes() {
        let p = policy(&[
            ("on-exhausted", "throttle"),
            ("throttle-rate-down", "512k"),
            ("throttle-rate-up", "128k"),
        ]);
        assert_eq!(
            p.on_exhausted.attributes(),
            Some((Some("128k/512k".to_string()), None))
        );
        let p = policy(&[
            ("on-exhausted", "redirect"),
            ("redirect-address-list", "expired"),
        ]);
        assert_eq!(
            p.on_exhausted.attributes(),
            Some((None, Some("expired".to_string())))
        );
        assert_eq!(policy(&[]).on_exhausted, OnExhausted::Disconnect);
        assert_eq!(policy(&[]).on_exhausted.attributes(), None);
    }
}
