//! Weekly activation schedule of a policy (HSNM "Activation Scheduler").
//!
//! Text form: `mon-fri 08:00-18:00,20:00-23:30; sat 10:00-14:00; sun 22:00-02:00`.
//! Entries are separated by `;` (or newlines); each is a day spec (`mon`, `mon-fri`,
//! `sat,sun`, `fri-mon`, `*`/`all`) followed by time windows `HH:MM-HH:MM` separated by
//! `,` or spaces. `24:00` is allowed as an end; a window whose end ≤ start runs past
//! midnight into the next day. `none` is the empty schedule (never open).
//!
//! Windows are wall-clock times of the NAS's time zone; [`evaluate`] turns them into
//! real seconds. DST rules (see [`resolve_local`]):
//! - a local time in a spring-forward gap (02:30 in Berlin on 2026-03-29) is the first
//!   instant after the gap (03:00 CEST);
//! - an ambiguous local time (fall back) is the **earlier** instant, the first time the
//!   clock reads it, unless that instant is already past (we are in the repeated hour),
//!   then the later one: "the next time the wall clock shows it";
//! - a window wholly inside a gap does not open that night, and a window whose end moved
//!   to the gap's end runs on if the next window is open at that instant.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike,
};
use chrono_tz::Tz;

const DAY_MIN: u16 = 24 * 60;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty schedule (write `none` for a schedule that is never open)")]
    Empty,
    #[error("unknown day {0:?} (mon..sun, a range mon-fri, a list sat,sun, or * / all)")]
    UnknownDay(String),
    #[error("bad time {0:?} (HH:MM, 00:00..23:59, 24:00 only as an end)")]
    BadTime(String),
    #[error("bad window {0:?} (HH:MM-HH:MM)")]
    BadWindow(String),
    #[error("no time window after the days {0:?}")]
    MissingWindow(String),
}

/// Minute range `[start, end)` within one day, `0 <= start < end <= 1440`.
pub type Range = (u16, u16);

/// Normalized weekly schedule: per weekday (0 = Monday) sorted, merged minute ranges.
/// A window past midnight is stored split over the two days, so equality is semantic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Schedule {
    days: [Vec<Range>; 7],
}

/// Where the clock is inside an open window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenWindow {
    /// Local wall-clock end, following adjacent windows across midnight;
    /// `None` when the schedule is always open.
    pub end: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Outside every window; `next_open` is the unix time the next window starts
    /// (`None` for an empty schedule).
    Closed { next_open: Option<i64> },
    /// Inside a window; real seconds until it ends (`None` = never ends).
    Open { seconds_left: Option<u64> },
}

impl Schedule {
    /// A schedule open at every minute of the week.
    pub fn always() -> Self {
        Schedule {
            days: std::array::from_fn(|_| vec![(0, DAY_MIN)]),
        }
    }

    /// The merged ranges of a weekday (0 = Monday).
    pub fn day(&self, weekday: usize) -> &[Range] {
        self.days.get(weekday).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn is_empty(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    pub fn is_always(&self) -> bool {
        self.days.iter().all(|d| d.as_slice() == [(0, DAY_MIN)])
    }

    /// Adds the window `start..end` on `weekday`; `end <= start` continues on the next day.
    fn add(&mut self, weekday: usize, start: u16, end: u16) {
        if end > start {
            self.days[weekday].push((start, end));
        } else {
            self.days[weekday].push((start, DAY_MIN));
            if end > 0 {
                self.days[(weekday + 1) % 7].push((0, end));
            }
        }
    }

    fn normalize(&mut self) {
        for d in &mut self.days {
            d.sort_unstable();
            let mut merged: Vec<Range> = Vec::with_capacity(d.len());
            for &(s, e) in d.iter() {
                match merged.last_mut() {
                    // Overlapping or touching (`08:00-12:00,12:00-14:00`): one window.
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            *d = merged;
        }
    }

    /// Is `local` inside a window, and when does that window end (local wall clock).
    /// Granularity is the minute: 17:59:30 is inside a window ending at 18:00.
    pub fn window_at(&self, local: NaiveDateTime) -> Option<OpenWindow> {
        let wd = local.weekday().num_days_from_monday() as usize;
        let minute = minute_of(local.time());
        let &(_, mut end) = self
            .day(wd)
            .iter()
            .find(|r| r.0 <= minute && minute < r.1)?;
        let mut days_ahead = 0u64;
        // Follow windows touching midnight; 8 steps is a full week plus one.
        for _ in 0..8 {
            if end < DAY_MIN {
                break;
            }
            let next = self.day((wd + days_ahead as usize + 1) % 7);
            match next.first() {
                Some(&(0, e)) => {
                    days_ahead += 1;
                    end = e;
                }
                _ => break,
            }
        }
        if end == DAY_MIN && self.is_always() {
            return Some(OpenWindow { end: None });
        }
        Some(OpenWindow {
            end: at_minute(local.date(), days_ahead, end),
        })
    }

    /// The next local wall-clock time a window starts, strictly after `local`'s minute.
    pub fn next_open_after(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let wd = local.weekday().num_days_from_monday() as usize;
        let minute = minute_of(local.time());
        for ahead in 0..=7u64 {
            let day = self.day((wd + ahead as usize) % 7);
            let start = day.iter().map(|r| r.0).find(|&s| ahead > 0 || s > minute);
            if let Some(s) = start {
                return at_minute(local.date(), ahead, s);
            }
        }
        None
    }

    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let entries: Vec<&str> = text
            .split([';', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut s = Schedule::default();
        if entries.len() == 1 && entries[0].eq_ignore_ascii_case("none") {
            return Ok(s);
        }
        for entry in entries {
            let (days_tok, rest) = entry.split_once(char::is_whitespace).unwrap_or((entry, ""));
            let days = parse_days(days_tok)?;
            let windows: Vec<&str> = rest
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty())
                .collect();
            if windows.is_empty() {
                return Err(ScheduleError::MissingWindow(days_tok.to_string()));
            }
            for w in windows {
                let (start, end) = parse_window(w)?;
                for (wd, on) in days.iter().enumerate() {
                    if *on {
                        s.add(wd, start, end);
                    }
                }
            }
        }
        s.normalize();
        Ok(s)
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

/// Canonical text: consecutive days with the same windows grouped (`mon-fri`), `*` when
/// all seven agree, windows past midnight shown split (`sun 22:00-24:00; mon 00:00-02:00`).
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        if self.days.iter().all(|d| *d == self.days[0]) {
            return write!(f, "* {}", ranges_text(&self.days[0]));
        }
        let mut first = true;
        let mut i = 0;
        while i < 7 {
            let mut j = i;
            while j + 1 < 7 && self.days[j + 1] == self.days[i] {
                j += 1;
            }
            if !self.days[i].is_empty() {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                if i == j {
                    write!(f, "{} ", DAY_NAMES[i])?;
                } else {
                    write!(f, "{}-{} ", DAY_NAMES[i], DAY_NAMES[j])?;
                }
                f.write_str(&ranges_text(&self.days[i]))?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// Open or closed at `now_unix`, windows read in the wall clock of `tz`.
pub fn evaluate(s: &Schedule, now_unix: i64, tz: Tz) -> Verdict {
    let Some(local) = local_at(now_unix, tz) else {
        return Verdict::Closed { next_open: None };
    };
    match s.window_at(local) {
        Some(OpenWindow { end: None }) => Verdict::Open { seconds_left: None },
        Some(OpenWindow { end: Some(end) }) => {
            let mut end_ts = resolve_local(tz, end, now_unix);
            // An end moved to the end of a spring-forward gap can land inside the next
            // window (00:00-02:30 and 02:45-03:15 both reach 03:00): the real window
            // goes on. Bounded: each step moves the end forward.
            for _ in 0..8 {
                let Some(t) = end_ts else { break };
                match local_at(t, tz).and_then(|l| s.window_at(l)) {
                    Some(OpenWindow { end: None }) => return Verdict::Open { seconds_left: None },
                    Some(OpenWindow { end: Some(e) }) => match resolve_local(tz, e, t) {
                        Some(next) if next > t => end_ts = Some(next),
                        _ => break,
                    },
                    None => break,
                }
            }
            let seconds_left = end_ts.map(|t| t.saturating_sub(now_unix).max(0) as u64);
            Verdict::Open { seconds_left }
        }
        None => {
            // A window lying wholly in a spring-forward gap does not open that night:
            // its start resolves to an instant after it; look for the next one then.
            let mut from = local;
            for _ in 0..16 {
                let Some(start) = s.next_open_after(from) else {
                    break;
                };
                let Some(ts) = resolve_local(tz, start, now_unix) else {
                    break;
                };
                if local_at(ts, tz).and_then(|l| s.window_at(l)).is_some() {
                    return Verdict::Closed {
                        next_open: Some(ts),
                    };
                }
                from = start;
            }
            Verdict::Closed { next_open: None }
        }
    }
}

/// Wall-clock time of a unix time in `tz`. Not `naive_local()`: it panics at the edge
/// of chrono's range.
fn local_at(unix: i64, tz: Tz) -> Option<NaiveDateTime> {
    let utc = DateTime::from_timestamp(unix, 0)?.naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset)
}

/// Unix time of a local wall-clock time in `tz`:
/// - unique: that instant;
/// - ambiguous (fall back): the earlier instant, or the later one if the earlier is
///   before `not_before` (the clock will show it again);
/// - in a gap (spring forward): the first instant after the gap, i.e. the first
///   existing local minute after it.
pub fn resolve_local(tz: Tz, local: NaiveDateTime, not_before: i64) -> Option<i64> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.timestamp()),
        LocalResult::Ambiguous(a, b) => {
            let (early, late) = (
                a.timestamp().min(b.timestamp()),
                a.timestamp().max(b.timestamp()),
            );
            Some(if early >= not_before { early } else { late })
        }
        LocalResult::None => {
            // Gaps are whole minutes and never longer than a day (Samoa 2011); 2 days bound.
            let mut t = local;
            for _ in 0..2 * DAY_MIN as u32 {
                t = t.checked_add_signed(Duration::minutes(1))?;
                let t0 = t.with_second(0)?;
                match tz.from_local_datetime(&t0) {
                    LocalResult::Single(x) => return Some(x.timestamp()),
                    LocalResult::Ambiguous(a, b) => return Some(a.timestamp().min(b.timestamp())),
                    LocalResult::None => {}
                }
            }
            None
        }
    }
}

fn minute_of(t: NaiveTime) -> u16 {
    // hour <= 23, minute <= 59: fits in u16.
    (t.hour() * 60 + t.minute()) as u16
}

/// `date + days` at minute-of-day `minute` (1440 = next day's midnight).
fn at_minute(date: NaiveDate, days: u64, minute: u16) -> Option<NaiveDateTime> {
    let days = days.checked_add(u64::from(minute / DAY_MIN))?;
    let m = minute % DAY_MIN;
    let d = date.checked_add_days(chrono::Days::new(days))?;
    d.and_hms_opt(u32::from(m / 60), u32::from(m % 60), 0)
}

fn ranges_text(ranges: &[Range]) -> String {
    ranges
        .iter()
        .map(|&(s, e)| format!("{}-{}", hhmm(s), hhmm(e)))
        .collect::<Vec<_>>()
        .join(",")
}

fn hhmm(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

fn day_index(tok: &str) -> Option<usize> {
    let lower = tok.to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == lower)
}

/// `mon`, `mon-fri`, `fri-mon` (wraps), `sat,sun`, `mon-wed,fri`, `*`, `all`.
fn parse_days(tok: &str) -> Result<[bool; 7], ScheduleError> {
    let mut days = [false; 7];
    let bad = || ScheduleError::UnknownDay(tok.to_string());
    for item in tok.split(',') {
        if item == "*" || item.eq_ignore_ascii_case("all") {
            days = [true; 7];
            continue;
        }
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (
                day_index(a).ok_or_else(|| ScheduleError::UnknownDay(a.to_string()))?,
                day_index(b).ok_or_else(|| ScheduleError::UnknownDay(b.to_string()))?,
            ),
            None => {
                let d = day_index(item).ok_or_else(|| {
                    if item.is_empty() {
                        bad()
                    } else {
                        ScheduleError::UnknownDay(item.to_string())
                    }
                })?;
                (d, d)
            }
        };
        let mut d = a;
        loop {
            days[d] = true;
            if d == b {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(days)
}

/// `HH:MM-HH:MM` into minutes; the end may be `24:00`.
fn parse_window(tok: &str) -> Result<(u16, u16), ScheduleError> {
    let (a, b) = tok
        .split_once('-')
        .ok_or_else(|| ScheduleError::BadWindow(tok.to_string()))?;
    let start = parse_time(a)?;
    if start == DAY_MIN {
        return Err(ScheduleError::BadTime(a.to_string()));
    }
    // `end <= start` (including 10:00-10:00) means past midnight; see `Schedule::add`.
    Ok((start, parse_time(b)?))
}

fn parse_time(tok: &str) -> Result<u16, ScheduleError> {
    let bad = || ScheduleError::BadTime(tok.to_string());
    let (h, m) = tok.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) => Ok(DAY_MIN),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;

    fn dt(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn unix(tz: Tz, s: &str) -> i64 {
        resolve_local(tz, dt(s), i64::MIN).unwrap()
    }

    #[test]
    fn parse_display_canonical() {
        let cases: &[(&str, &str)] = &[
            ("mon-fri 08:00-18:00", "mon-fri 08:00-18:00"),
            (
                "MON-Fri 08:00-18:00,20:00-23:30; sat 10:00-14:00",
                "mon-fri 08:00-18:00,20:00-23:30; sat 10:00-14:00",
            ),
            ("sun 22:00-02:00", "mon 00:00-02:00; sun 22:00-24:00"),
            ("* 00:00-24:00", "* 00:00-24:00"),
            ("all 00:00-00:00", "* 00:00-24:00"),
            ("sat,sun 10:00-12:00 12:00-14:00", "sat-sun 10:00-14:00"),
            ("mon 09:00-12:00,10:00-11:00,11:30-13:00", "mon 09:00-13:00"),
            ("fri-mon 9:00-10:00", "mon 09:00-10:00; fri-sun 09:00-10:00"),
            (
                "mon-wed,fri 08:00-09:00",
                "mon-wed 08:00-09:00; fri 08:00-09:00",
            ),
            ("tue 10:00-10:00", "tue 10:00-24:00; wed 00:00-10:00"),
            ("none", "none"),
            ("mon 08:00-18:00\ntue 08:00-18:00;", "mon-tue 08:00-18:00"),
            // Every day 22:00-02:00: all seven days the same after splitting.
            ("* 22:00-02:00", "* 00:00-02:00,22:00-24:00"),
        ];
        for (input, canonical) in cases {
            let s = Schedule::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.to_string(), *canonical, "{input}");
            assert_eq!(
                Schedule::parse(&s.to_string()).unwrap(),
                s,
                "round trip {input}"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_token() {
        let cases: &[(&str, ScheduleError)] = &[
            ("", ScheduleError::Empty),
            (" ; ", ScheduleError::Empty),
            ("mon", ScheduleError::MissingWindow("mon".into())),
            ("moon 08:00-09:00", ScheduleError::UnknownDay("moon".into())),
            (
                "mon-fry 08:00-09:00",
                ScheduleError::UnknownDay("fry".into()),
            ),
            ("mon, 08:00-09:00", ScheduleError::UnknownDay("mon,".into())),
            ("mon 08:00", ScheduleError::BadWindow("08:00".into())),
            ("mon 8-9", ScheduleError::BadTime("8".into())),
            ("mon 24:00-02:00", ScheduleError::BadTime("24:00".into())),
            ("mon 08:00-24:01", ScheduleError::BadTime("24:01".into())),
            ("mon 08:60-09:00", ScheduleError::BadTime("08:60".into())),
            ("mon 25:00-26:00", ScheduleError::BadTime("25:00".into())),
            ("mon 08:0-09:00", ScheduleError::BadTime("08:0".into())),
            ("mon +8:00-09:00", ScheduleError::BadTime("+8:00".into())),
            ("08:00-18:00", ScheduleError::UnknownDay("08:00".into())),
        ];
        for (input, want) in cases {
            assert_eq!(Schedule::parse(input).unwrap_err(), *want, "{input:?}");
        }
    }

    #[test]
    fn window_at_table() {
        // 2026-03-02 is a Monday.
        let s = Schedule::parse(
            "mon-fri 08:00-18:00,20:00-23:30; sat 10:00-14:00; sun 22:00-02:00; wed 23:30-24:00",
        )
        .unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            ("2026-03-02 07:59", None),
            ("2026-03-02 08:00", Some("2026-03-02 18:00")),
            ("2026-03-02 17:59", Some("2026-03-02 18:00")),
            ("2026-03-02 18:00", None),
            ("2026-03-02 23:29", Some("2026-03-02 23:30")),
            ("2026-03-02 23:30", None),
            // Wed 20:00-23:30 and 23:30-24:00 merge; nothing on Thu at 00:00.
            ("2026-03-04 21:00", Some("2026-03-05 00:00")),
            ("2026-03-04 23:59", Some("2026-03-05 00:00")),
            ("2026-03-05 00:00", None),
            // Sun 22:00-02:00 wraps the week into Mon.
            ("2026-03-08 21:59", None),
            ("2026-03-08 22:00", Some("2026-03-09 02:00")),
            ("2026-03-08 23:59", Some("2026-03-09 02:00")),
            ("2026-03-09 00:00", Some("2026-03-09 02:00")),
            ("2026-03-09 01:59", Some("2026-03-09 02:00")),
            ("2026-03-09 02:00", None),
            ("2026-03-07 13:59", Some("2026-03-07 14:00")),
        ];
        for (at, want) in cases {
            let got = s.window_at(dt(at)).map(|w| w.end.expect("has an end"));
            assert_eq!(got, want.map(dt), "{at}");
        }
    }

    #[test]
    fn window_end_follows_adjacent_days() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            // Explicit split windows join across midnight.
            (
                "sun 22:00-24:00; mon 00:00-02:00",
                "2026-03-08 23:00",
                Some("2026-03-09 02:00"),
            ),
            // Whole days chain: fri..sun whole, ends mon 00:00.
            (
                "fri-sun 00:00-24:00",
                "2026-03-06 12:00",
                Some("2026-03-09 00:00"),
            ),
            // Six whole days plus mon until 06:00: ends the next mon 06:00.
            (
                "tue-sun 00:00-24:00; mon 00:00-06:00",
                "2026-03-03 12:00",
                Some("2026-03-09 06:00"),
            ),
        ];
        for (text, at, want) in cases {
            let s = Schedule::parse(text).unwrap();
            let got = s.window_at(dt(at)).unwrap().end;
            assert_eq!(got, want.map(dt), "{text} at {at}");
        }
        let always = Schedule::parse("* 00:00-24:00").unwrap();
        assert_eq!(always, Schedule::always());
        assert_eq!(
            always.window_at(dt("2026-03-04 12:00")),
            Some(OpenWindow { end: None })
        );
    }

    #[test]
    fn next_open_table() {
        let s = Schedule::parse("mon-fri 08:00-18:00; sun 22:00-02:00").unwrap();
        let cases: &[(&str, &str)] = &[
            ("2026-03-02 07:00", "2026-03-02 08:00"),
            ("2026-03-02 18:00", "2026-03-03 08:00"),
            ("2026-03-06 18:30", "2026-03-08 22:00"),
            ("2026-03-09 03:00", "2026-03-09 08:00"),
        ];
        for (at, want) in cases {
            assert_eq!(s.next_open_after(dt(at)), Some(dt(want)), "{at}");
        }
        assert_eq!(
            Schedule::parse("none")
                .unwrap()
                .next_open_after(dt("2026-03-02 07:00")),
            None
        );
    }

    #[test]
    fn evaluate_dst_and_plain() {
        use Verdict::*;
        // (schedule, tz, now local, expected)
        let h = 3600u64;
        let cases: &[(&str, Tz, &str, Verdict)] = &[
            // Plain winter day, Berlin: 08:00 in 08:00-18:00 -> 10 h.
            (
                "* 08:00-18:00",
                Berlin,
                "2026-03-02 08:00",
                Open {
                    seconds_left: Some(10 * h),
                },
            ),
            // Spring forward 2026-03-29 02:00 -> 03:00: 22:00 -> 03:00 is 4 real hours.
            (
                "sat 22:00-03:00",
                Berlin,
                "2026-03-28 22:00",
                Open {
                    seconds_left: Some(4 * h),
                },
            ),
            // Window ending in the gap (02:30) ends at the first instant after it (03:00 CEST).
            (
                "sat 22:00-02:30",
                Berlin,
                "2026-03-28 22:00",
                Open {
                    seconds_left: Some(4 * h),
                },
            ),
            (
                "sat 22:00-02:30",
                Berlin,
                "2026-03-29 01:59",
                Open {
                    seconds_left: Some(60),
                },
            ),
            // Fall back 2026-10-25 03:00 -> 02:00: 22:00 -> 03:00 is 6 real hours.
            (
                "sat 22:00-03:00",
                Berlin,
                "2026-10-24 22:00",
                Open {
                    seconds_left: Some(6 * h),
                },
            ),
            // End at ambiguous 02:30: the first 02:30 (CEST) -> 4.5 h.
            (
                "sat 22:00-02:30",
                Berlin,
                "2026-10-24 22:00",
                Open {
                    seconds_left: Some(4 * h + 1800),
                },
            ),
            // New York spring forward 2026-03-08 02:00 -> 03:00.
            (
                "sat 20:00-03:00",
                New_York,
                "2026-03-07 20:00",
                Open {
                    seconds_left: Some(6 * h),
                },
            ),
            (
                "sat 20:00-02:15",
                New_York,
                "2026-03-07 20:00",
                Open {
                    seconds_left: Some(6 * h),
                },
            ),
            // New York fall back 2026-11-01 02:00 -> 01:00: 20:00 -> 03:00 is 8 real hours.
            (
                "sat 20:00-03:00",
                New_York,
                "2026-10-31 20:00",
                Open {
                    seconds_left: Some(8 * h),
                },
            ),
            (
                "* 00:00-24:00",
                New_York,
                "2026-10-31 20:00",
                Open { seconds_left: None },
            ),
        ];
        for (text, tz, now, want) in cases {
            let s = Schedule::parse(text).unwrap();
            let got = evaluate(&s, unix(*tz, now), *tz);
            assert_eq!(got, *want, "{text} {tz} at {now}");
        }
    }

    #[test]
    fn evaluate_in_repeated_hour_uses_the_later_instant() {
        // 2026-10-25 Berlin: 02:10 CET (second pass) = 01:10 UTC; window ends 02:30.
        let s = Schedule::parse("sun 00:00-02:30").unwrap();
        let now = DateTime::parse_from_rfc3339("2026-10-25T01:10:00Z")
            .unwrap()
            .timestamp();
        assert_eq!(
            evaluate(&s, now, Berlin),
            Verdict::Open {
                seconds_left: Some(1200)
            }
        );
        // First pass: 02:10 CEST = 00:10 UTC -> 20 minutes too.
        let now = DateTime::parse_from_rfc3339("2026-10-25T00:10:00Z")
            .unwrap()
            .timestamp();
        assert_eq!(
            evaluate(&s, now, Berlin),
            Verdict::Open {
                seconds_left: Some(1200)
            }
        );
    }

    #[test]
    fn evaluate_closed_next_open() {
        let cases: &[(&str, Tz, &str, Option<&str>)] = &[
            (
                "mon-fri 08:00-18:00",
                Berlin,
                "2026-03-06 19:00",
                Some("2026-03-09T07:00:00Z"),
            ),
            // Opening time in the spring-forward gap: opens at 03:00 CEST = 01:00 UTC.
            (
                "sun 02:30-05:00",
                Berlin,
                "2026-03-29 01:00",
                Some("2026-03-29T01:00:00Z"),
            ),
            // Opening at ambiguous 02:30 on fall back: the first one (CEST) = 00:30 UTC.
            (
                "sun 02:30-05:00",
                Berlin,
                "2026-10-25 01:00",
                Some("2026-10-25T00:30:00Z"),
            ),
            ("none", Berlin, "2026-03-06 19:00", None),
            // 02:10-02:40 lies wholly in the gap on 2026-03-29: next is Monday's 02:10 CEST.
            (
                "* 02:10-02:40",
                Berlin,
                "2026-03-29 01:00",
                Some("2026-03-30T00:10:00Z"),
            ),
        ];
        for (text, tz, now, want) in cases {
            let s = Schedule::parse(text).unwrap();
            let want = want.map(|w| DateTime::parse_from_rfc3339(w).unwrap().timestamp());
            assert_eq!(
                evaluate(&s, unix(*tz, now), *tz),
                Verdict::Closed { next_open: want },
                "{text} at {now}"
            );
        }
    }

    #[test]
    fn evaluate_extreme_times_do_not_panic() {
        let s = Schedule::parse("sun 22:00-02:00").unwrap();
        for t in [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            253_402_300_799,
            8_210_266_876_799,
        ] {
            let _ = evaluate(&s, t, Berlin);
            let _ = evaluate(&Schedule::always(), t, New_York);
        }
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for w in super::super::WEIRD_INPUT {
            assert!(Schedule::parse(w).is_err() || *w == "none", "{w:?}");
        }
    }

    #[test]
    fn verdicts_are_sane_across_dst_nights() {
        // Windows that start and end inside the gap and the repeated hour.
        let s = Schedule::parse("* 01:30-02:30,02:45-03:15; sat 23:00-02:15").unwrap();
        let nights: &[(Tz, &str)] = &[
            (Berlin, "2026-03-28T12:00:00Z"),
            (Berlin, "2026-10-24T12:00:00Z"),
            (New_York, "2026-03-07T12:00:00Z"),
            (New_York, "2026-10-31T12:00:00Z"),
        ];
        for (tz, from) in nights {
            let start = DateTime::parse_from_rfc3339(from).unwrap().timestamp();
            for now in (start..start + 36 * 3600).step_by(300) {
                match evaluate(&s, now, *tz) {
                    Verdict::Open {
                        seconds_left: Some(left),
                    } => {
                        assert!((1..=6 * 3600).contains(&left), "{tz} {now}: {left}");
                        // Just before the end it is still open, at the end it is not.
                        let end = now + left as i64;
                        assert!(
                            matches!(evaluate(&s, end - 1, *tz), Verdict::Open { .. }),
                            "{tz} {now}"
                        );
                        assert!(
                            matches!(evaluate(&s, end, *tz), Verdict::Closed { .. }),
                            "{tz} {now} end {end}"
                        );
                    }
                    Verdict::Closed {
                        next_open: Some(next),
                    } => {
                        assert!(next > now && next - now <= 24 * 3600, "{tz} {now}: {next}");
                        assert!(
                            matches!(evaluate(&s, next, *tz), Verdict::Open { .. }),
                            "{tz} {now} next {next}"
                        );
                    }
                    other => panic!("{tz} {now}: {other:?}"),
                }
            }
        }
    }
}
