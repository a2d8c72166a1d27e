//! Calendar periods (local day and month) of unix instants in an operator's time zone.
//!
//! Usage is attributed to the local day and month of each accounting event, and
//! month boundaries decide when quotas reset, so these must be exact across DST.
//! All functions are total: instants outside chrono's range are clamped.

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: instants outside are clamped so
/// that bad input (a NAS with a broken clock) can never panic.
const MIN_TS: i64 = -62_135_596_800;
const MAX_TS: i64 = 253_402_300_799;

fn local(t: i64, tz: Tz) -> DateTime<Tz> {
    let t = t.clamp(MIN_TS, MAX_TS);
    // In range by construction; the fallback only keeps this free of unwrap.
    DateTime::from_timestamp(t, 0)
        .unwrap_or(DateTime::UNIX_EPOCH)
        .with_timezone(&tz)
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The local calendar day of instant `t`.
pub fn local_day(t: i64, tz: Tz) -> NaiveDate {
    local(t, tz).date_naive()
}

/// The local month of instant `t`, as the first day of that month.
pub fn local_month(t: i64, tz: Tz) -> NaiveDate {
    first_of_month(local_day(t, tz))
}

/// The first day of the month containing `d`.
pub fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// First instant (unix seconds) of local day `day`. Where midnight does not exist
/// (a DST gap at 00:00, as in America/Santiago), the day starts when the gap ends;
/// where it exists twice, at the earlier one.
pub fn day_start(day: NaiveDate, tz: Tz) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    first_existing_instant(midnight, tz)
}

fn first_existing_instant(naive: NaiveDateTime, tz: Tz) -> i64 {
    // Gaps are whole minutes and never longer than a day, so a minute-by-minute
    // walk finds the end of one quickly and always terminates.
    for minutes in 0..=24 * 60 {
        let candidate = naive + chrono::Duration::minutes(minutes);
        match tz.from_local_datetime(&candidate) {
            LocalResult::Single(dt) => return dt.timestamp(),
            LocalResult::Ambiguous(early, _) => return early.timestamp(),
            LocalResult::None => continue,
        }
    }
    // Unreachable with real tz data; fall back to reading the wall time as UTC.
    naive.and_utc().timestamp()
}

/// First instant of the local day after `day`.
pub fn day_end(day: NaiveDate, tz: Tz) -> i64 {
    match day.checked_add_days(Days::new(1)) {
        Some(next) => day_start(next, tz),
        None => MAX_TS,
    }
}

/// First instant of the month whose first day is `month` (any day of it is accepted).
pub fn month_start_of(month: NaiveDate, tz: Tz) -> i64 {
    day_start(first_of_month(month), tz)
}

/// First instant of the month after `month`.
pub fn month_end_of(month: NaiveDate, tz: Tz) -> i64 {
    match first_of_month(month).checked_add_months(Months::new(1)) {
        Some(next) => day_start(next, tz),
        None => MAX_TS,
    }
}

/// First instant of the local month containing `t`.
pub fn month_start(t: i64, tz: Tz) -> i64 {
    month_start_of(local_month(t, tz), tz)
}

/// First instant of the local month after the one containing `t`.
pub fn next_month_start(t: i64, tz: Tz) -> i64 {
    month_end_of(local_month(t, tz), tz)
}

/// Storage key of a day: `YYYY-MM-DD`.
pub fn day_key(day: NaiveDate) -> String {
    use chrono::Datelike;
    // Without strftime's parsing: every accounting update and login formats keys.
    match day.year() {
        0..=9999 => format!("{:04}-{:02}-{:02}", day.year(), day.month(), day.day()),
        _ => day.format("%Y-%m-%d").to_string(),
    }
}

/// Storage key of a month: `YYYY-MM`.
pub fn month_key(month: NaiveDate) -> String {
    use chrono::Datelike;
    match month.year() {
        0..=9999 => format!("{:04}-{:02}", month.year(), month.month()),
        _ => month.format("%Y-%m").to_string(),
    }
}

/// Parses a `YYYY-MM` month key into the first day of that month.
pub fn parse_month(s: &str) -> Option<NaiveDate> {
    let (y, m) = s.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe, Pacific, UTC};

    fn ts(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
    }
    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn local_day_and_month() {
        // (instant, tz, local day, local month)
        let cases = [
            // Berlin is UTC+1 in winter: 23:30Z on Oct 31 is already November there.
            (
                "2026-10-31T23:30:00Z",
                Europe::Berlin,
                "2026-11-01",
                "2026-11-01",
            ),
            ("2026-10-31T23:30:00Z", UTC, "2026-10-31", "2026-10-01"),
            (
                "2026-10-31T22:59:59Z",
                Europe::Berlin,
                "2026-10-31",
                "2026-10-01",
            ),
            // Summer time (UTC+2).
            (
                "2026-06-30T22:00:00Z",
                Europe::Berlin,
                "2026-07-01",
                "2026-07-01",
            ),
            (
                "2026-06-30T21:59:59Z",
                Europe::Berlin,
                "2026-06-30",
                "2026-06-01",
            ),
            // Auckland is UTC+13 until DST ends on 2026-04-05.
            (
                "2026-03-31T11:00:00Z",
                Pacific::Auckland,
                "2026-04-01",
                "2026-04-01",
            ),
            (
                "2026-03-31T10:59:59Z",
                Pacific::Auckland,
                "2026-03-31",
                "2026-03-01",
            ),
            // Year boundary.
            (
                "2026-12-31T23:00:00Z",
                Europe::Berlin,
                "2027-01-01",
                "2027-01-01",
            ),
        ];
        for (t, tz, day, month) in cases {
            assert_eq!(local_day(ts(t), tz), date(day), "{t} in {tz}");
            assert_eq!(local_month(ts(t), tz), date(month), "{t} in {tz}");
        }
    }

    #[test]
    fn month_start_and_next() {
        // (instant, tz, month start, next month start)
        let cases = [
            (
                "2026-11-15T12:00:00Z",
                Europe::Berlin,
                "2026-10-31T23:00:00Z",
                "2026-11-30T23:00:00Z",
            ),
            // October in Berlin starts in summer time and ends in winter time.
            (
                "2026-10-31T22:00:00Z",
                Europe::Berlin,
                "2026-09-30T22:00:00Z",
                "2026-10-31T23:00:00Z",
            ),
            // March: starts in winter time, ends in summer time.
            (
                "2026-03-29T12:00:00Z",
                Europe::Berlin,
                "2026-02-28T23:00:00Z",
                "2026-03-31T22:00:00Z",
            ),
            (
                "2026-11-15T12:00:00Z",
                UTC,
                "2026-11-01T00:00:00Z",
                "2026-12-01T00:00:00Z",
            ),
            // April in Auckland starts at +13 and ends at +12.
            (
                "2026-04-10T00:00:00Z",
                Pacific::Auckland,
                "2026-03-31T11:00:00Z",
                "2026-04-30T12:00:00Z",
            ),
            // September in Auckland starts at +12 and ends at +13 (DST from Sep 27).
            (
                "2026-09-15T00:00:00Z",
                Pacific::Auckland,
                "2026-08-31T12:00:00Z",
                "2026-09-30T11:00:00Z",
            ),
            (
                "2026-12-20T00:00:00Z",
                UTC,
                "2026-12-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
        ];
        for (t, tz, start, next) in cases {
            assert_eq!(month_start(ts(t), tz), ts(start), "start of {t} in {tz}");
            assert_eq!(next_month_start(ts(t), tz), ts(next), "next of {t} in {tz}");
            assert!(month_start(ts(t), tz) <= ts(t) && ts(t) < next_month_start(ts(t), tz));
        }
    }

    #[test]
    fn day_bounds_across_dst() {
        // (day, tz, start, end)
        let cases = [
            // Berlin spring forward: a 23-hour day.
            (
                "2026-03-29",
                Europe::Berlin,
                "2026-03-28T23:00:00Z",
                "2026-03-29T22:00:00Z",
            ),
            // Berlin fall back: a 25-hour day.
            (
                "2026-10-25",
                Europe::Berlin,
                "2026-10-24T22:00:00Z",
                "2026-10-25T23:00:00Z",
            ),
            // Santiago springs forward at midnight: the day begins at 01:00 -03.
            (
                "2026-09-06",
                America::Santiago,
                "2026-09-06T04:00:00Z",
                "2026-09-07T03:00:00Z",
            ),
            (
                "2026-02-28",
                UTC,
                "2026-02-28T00:00:00Z",
                "2026-03-01T00:00:00Z",
            ),
        ];
        for (d, tz, start, end) in cases {
            assert_eq!(day_start(date(d), tz), ts(start), "start of {d} in {tz}");
            assert_eq!(day_end(date(d), tz), ts(end), "end of {d} in {tz}");
        }
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for t in [i64::MIN, i64::MAX, MIN_TS - 1, MAX_TS + 1] {
            let _ = local_day(t, Pacific::Auckland);
            assert!(month_start(t, Europe::Berlin) <= next_month_start(t, Europe::Berlin));
        }
    }

    #[test]
    fn keys_round_trip() {
        let cases = [
            ("2026-11", Some("2026-11-01")),
            ("2026-1", None),
            ("x-11", None),
            ("2026-13", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_month(s), want.map(date), "{s}");
        }
        assert_eq!(month_key(date("2026-11-21")), "2026-11");
        assert_eq!(day_key(date("2026-01-02")), "2026-01-02");
        // The same as strftime's, at the edges too.
        for d in ["0001-01-01", "0999-12-31", "9999-12-31"] {
            assert_eq!(day_key(date(d)), d);
            assert_eq!(month_key(date(d)), &d[..7]);
        }
        let far = NaiveDate::from_ymd_opt(12345, 6, 7).unwrap();
        assert_eq!(day_key(far), far.format("%Y-%m-%d").to_string());
        assert_eq!(month_key(far), far.format("%Y-%m").to_string());
    }
}
