//! Daily and monthly time and traffic quotas: which one a user's usage today and
//! this month (the module's time zone) has reached. Used by the login decision (a
//! reached quota refuses the login) and by accounting (a Start / Interim that brings
//! the usage to a quota queues the session's disconnection). Pure.

use super::fields::{def_of, Field, RawPolicy};
use super::policy::{check_value, Policy, PolicyError};
use crate::sessions::Usage;

/// The policy fields that are quotas, in the order they are checked and reported.
pub const QUOTA_FIELDS: [Field; 4] = [
    Field::DailyTime,
    Field::MonthlyTime,
    Field::DailyTraffic,
    Field::MonthlyTraffic,
];

/// One quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    DailyTime,
    MonthlyTime,
    DailyTraffic,
    MonthlyTraffic,
}

impl Quota {
    /// "daily traffic", for reasons and logs.
    pub fn label(self) -> &'static str {
        match self {
            Quota::DailyTime => "daily time",
            Quota::MonthlyTime => "monthly time",
            Quota::DailyTraffic => "daily traffic",
            Quota::MonthlyTraffic => "monthly traffic",
        }
    }

    pub fn is_time(self) -> bool {
        matches!(self, Quota::DailyTime | Quota::MonthlyTime)
    }

    fn unit(self) -> &'static str {
        if self.is_time() {
            "s"
        } else {
            "bytes"
        }
    }
}

/// A policy's quotas in seconds and bytes; None = unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    pub daily_time_secs: Option<u64>,
    pub monthly_time_secs: Option<u64>,
    pub daily_traffic_bytes: Option<u64>,
    pub monthly_traffic_bytes: Option<u64>,
}

/// A quota the usage has reached, with the numbers behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub quota: Quota,
    pub used: u64,
    pub limit: u64,
}

impl std::fmt::Display for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = self.quota.unit();
        write!(
            f,
            "{} {} {unit} used of {} {unit}",
            self.quota.label(),
            self.used,
            self.limit
        )
    }
}

impl Quotas {
    pub fn of(p: &Policy) -> Quotas {
        Quotas {
            daily_time_secs: p.daily_time_secs,
            monthly_time_secs: p.monthly_time_secs,
            daily_traffic_bytes: p.daily_traffic_bytes,
            monthly_traffic_bytes: p.monthly_traffic_bytes,
        }
    }

    /// The quota fields of raw values (the other fields are ignored), checked as
    /// [`Policy::parse`] checks them: the same units, 0 = unlimited.
    pub fn from_raw(raw: &RawPolicy) -> Result<Quotas, PolicyError> {
        let mut only = RawPolicy::new();
        for f in QUOTA_FIELDS {
            if let Some(v) = raw.get(f) {
                check_value(f, v)?;
                only.insert(def_of(f).name, v);
            }
        }
        Policy::parse(&only, Vec::new(), Vec::new()).map(|p| Quotas::of(&p))
    }

    pub fn is_unlimited(&self) -> bool {
        *self == Quotas::default()
    }

    /// (quota, limit, used) in [`QUOTA_FIELDS`] order.
    fn each(&self, day: &Usage, month: &Usage) -> [(Quota, Option<u64>, u64); 4] {
        [
            (Quota::DailyTime, self.daily_time_secs, day.session_time),
            (
                Quota::MonthlyTime,
                self.monthly_time_secs,
                month.session_time,
            ),
            (
                Quota::DailyTraffic,
                self.daily_traffic_bytes,
                day.total_octets(),
            ),
            (
                Quota::MonthlyTraffic,
                self.monthly_traffic_bytes,
                month.total_octets(),
            ),
        ]
    }

    /// The first quota (in [`QUOTA_FIELDS`] order) that `day`'s and `month`'s usage
    /// has reached: usage equal to the quota is reached (nothing is left).
    pub fn reached(&self, day: &Usage, month: &Usage) -> Option<Reached> {
        self.each(day, month)
            .into_iter()
            .find_map(|(quota, limit, used)| {
                limit
                    .filter(|&l| used >= l)
                    .map(|limit| Reached { quota, used, limit })
            })
    }

    /// Seconds left of the time quotas (the smaller of the day's and the month's);
    /// None when neither is set.
    pub fn time_left(&self, day: &Usage, month: &Usage) -> Option<(Quota, u64)> {
        self.each(day, month)
            .into_iter()
            .filter(|(q, _, _)| q.is_time())
            .filter_map(|(q, limit, used)| limit.map(|l| (q, l.saturating_sub(used))))
            .min_by_key(|&(_, left)| left)
    }
}

/// What is left of the quotas before one is reached: the least time and the least
/// traffic left of the day's and the month's. Updates attributed to the same day and
/// month count down both; while something is left of every quota, none is reached
/// and nothing needs to be read again (see [`Quotas::room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// None: no time (or traffic) quota.
    pub time_secs: Option<u64>,
    pub traffic_bytes: Option<u64>,
}

impl Room {
    /// Counts an update's usage down; false when that reaches a quota (or may: then
    /// the caller decides on the stored usage).
    pub fn take(&mut self, delta: &Usage) -> bool {
        let left =
            |room: Option<u64>, used: u64| room.map(|r| r.checked_sub(used).filter(|&l| l > 0));
        match (
            left(self.time_secs, delta.session_time),
            left(self.traffic_bytes, delta.total_octets()),
        ) {
            (Some(None), _) | (_, Some(None)) => false,
            (t, b) => {
                self.time_secs = t.flatten();
                self.traffic_bytes = b.flatten();
                true
            }
        }
    }
}

impl Quotas {
    /// What is left of every quota given the usage (see [`Room`]).
    pub fn room(&self, day: &Usage, month: &Usage) -> Room {
        let least = |time: bool| {
            self.each(day, month)
                .into_iter()
                .filter(|(q, _, _)| q.is_time() == time)
                .filter_map(|(_, limit, used)| limit.map(|l| l.saturating_sub(used)))
                .min()
        };
        Room {
            time_secs: least(true),
            traffic_bytes: least(false),
        }
    }
}

/// Only the quota fields of `raw` (what accounting needs of a control list).
pub fn quota_part(raw: &RawPolicy) -> RawPolicy {
    let mut only = RawPolicy::new();
    for f in QUOTA_FIELDS {
        if let Some(v) = raw.get(f) {
            only.insert(def_of(f).name, v);
        }
    }
    only
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn raw(pairs: &[(&str, &str)]) -> RawPolicy {
        let mut r = RawPolicy::new();
        for (k, v) in pairs {
            assert!(r.insert(k, v), "{k}");
        }
        r
    }

    fn usage(bytes: u64, secs: u64) -> Usage {
        Usage {
            input_octets: bytes / 2,
            output_octets: bytes - bytes / 2,
            session_time: secs,
        }
    }

    #[test]
    fn which_quota_is_reached() {
        use Quota::*;
        let q = Quotas::from_raw(&raw(&[
            ("daily-time", "60"),
            ("monthly-time", "600"),
            ("daily-traffic", "10"),
            ("monthly-traffic", "100"),
        ]))
        .unwrap();
        // (today, this month, reached)
        let cases = [
            (usage(0, 0), usage(0, 0), None),
            (usage(10 * MB - 1, 3599), usage(10 * MB - 1, 3599), None),
            (usage(10 * MB, 0), usage(10 * MB, 0), Some(DailyTraffic)),
            (usage(11 * MB, 0), usage(11 * MB, 0), Some(DailyTraffic)),
            (usage(0, 3600), usage(0, 3600), Some(DailyTime)),
            (usage(0, 0), usage(100 * MB, 0), Some(MonthlyTraffic)),
            (usage(0, 0), usage(0, 36_000), Some(MonthlyTime)),
            // Several at once: time before traffic, the day before the month.
            (
                usage(10 * MB, 3600),
                usage(100 * MB, 36_000),
                Some(DailyTime),
            ),
            (
                usage(10 * MB, 0),
                usage(100 * MB, 36_000),
                Some(MonthlyTime),
            ),
            (usage(10 * MB, 0), usage(100 * MB, 0), Some(DailyTraffic)),
        ];
        for (day, month, want) in cases {
            assert_eq!(
                q.reached(&day, &month).map(|r| r.quota),
                want,
                "{day:?} {month:?}"
            );
        }
        let r = q.reached(&usage(10 * MB, 0), &usage(0, 0)).unwrap();
        assert_eq!((r.used, r.limit), (10 * MB, 10 * MB));
        assert_eq!(
            r.to_string(),
            "daily traffic 10485760 bytes used of 10485760 bytes"
        );
    }

    #[test]
    fn zero_and_absent_are_unlimited() {
        let huge = usage(u64::MAX / 2, u64::MAX / 2);
        for pairs in [
            &[][..],
            &[("daily-traffic", "0"), ("monthly-time", "0")][..],
        ] {
            let q = Quotas::from_raw(&raw(pairs)).unwrap();
            assert!(q.is_unlimited());
            assert_eq!(q.reached(&huge, &huge), None);
            assert_eq!(q.time_left(&huge, &huge), None);
        }
        // Only one kind set: the others never trigger.
        let q = Quotas::from_raw(&raw(&[("monthly-traffic", "1")])).unwrap();
        assert_eq!(q.reached(&usage(0, u64::MAX / 2), &usage(MB - 1, 0)), None);
    }

    #[test]
    fn other_fields_are_ignored_and_bad_values_name_the_field() {
        let q = Quotas::from_raw(&raw(&[
            ("daily-time", "1"),
            ("rate-down", "not a rate"),
            ("max-devices", "3"),
        ]))
        .unwrap();
        assert_eq!(q.daily_time_secs, Some(60));
        let e = Quotas::from_raw(&raw(&[("daily-traffic", "10MB")])).unwrap_err();
        assert_eq!(e.field, "daily-traffic");
        assert_eq!(
            quota_part(&raw(&[
                ("rate-down", "1M"),
                ("Rust-Policy-Daily-Time", "5")
            ])),
            raw(&[("daily-time", "5")])
        );
    }

    #[test]
    fn room_counts_down_until_a_quota_is_reached() {
        let q = Quotas::from_raw(&raw(&[
            ("daily-traffic", "10"),
            ("monthly-traffic", "15"),
            ("daily-time", "60"),
        ]))
        .unwrap();
        let mut room = q.room(&usage(4 * MB, 600), &usage(12 * MB, 600));
        // The month's 3 MB is less than the day's 6 MB.
        assert_eq!(
            room,
            Room {
                time_secs: Some(3000),
                traffic_bytes: Some(3 * MB)
            }
        );
        // (update, still within)
        let steps = [
            (usage(MB, 60), true),
            (usage(MB - 1, 60), true),
            (usage(MB, 2879), true),
            (usage(1, 0), false), // 1 byte (and 1 s) left before it: reached
        ];
        for (delta, within) in steps {
            assert_eq!(room.take(&delta), within, "{delta:?} {room:?}");
        }
        let mut time = q.room(&usage(0, 3590), &usage(0, 0));
        assert!(!time.take(&usage(0, 10)), "exactly used up is reached");
        // No quota of a kind: that kind never runs out.
        let mut only_time = Quotas::from_raw(&raw(&[("monthly-time", "1")]))
            .unwrap()
            .room(&usage(0, 0), &usage(0, 0));
        assert!(only_time.take(&usage(u64::MAX, 59)));
        assert!(!only_time.take(&usage(0, 1)));
    }

    #[test]
    fn time_left_is_the_smaller_of_day_and_month() {
        let q = Quotas::from_raw(&raw(&[("daily-time", "60"), ("monthly-time", "90")])).unwrap();
        let t = |d, m| q.time_left(&usage(0, d), &usage(0, m));
        assert_eq!(t(0, 0), Some((Quota::DailyTime, 3600)));
        assert_eq!(t(600, 3000), Some((Quota::MonthlyTime, 2400)));
        assert_eq!(t(3600, 3600), Some((Quota::DailyTime, 0)));
        assert_eq!(t(7200, 9000), Some((Quota::DailyTime, 0)));
        let traffic_only = Quotas::from_raw(&raw(&[("daily-traffic", "1")])).unwrap();
        assert_eq!(traffic_only.time_left(&usage(0, 0), &usage(0, 0)), None);
    }
}
