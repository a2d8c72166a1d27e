//! Human output helpers: units, times and aligned tables.

use chrono::DateTime;
use chrono_tz::Tz;

/// Bytes in binary units with two decimals ("1.50 GiB"); plain bytes below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Seconds as `H:MM:SS`, with a day count past 24 h (`2d 03:04:05`).
pub fn human_duration(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let hms = format!(
        "{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    if d > 0 {
        format!("{d}d {hms}")
    } else {
        hms
    }
}

/// Unix seconds as local wall time `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(t: i64, tz: Tz) -> String {
    match DateTime::from_timestamp(t, 0) {
        Some(dt) => dt
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
        None => t.to_string(),
    }
}

/// Unix seconds as RFC 3339 with the zone's offset, for JSON.
pub fn rfc3339(t: i64, tz: Tz) -> Option<String> {
    DateTime::from_timestamp(t, 0).map(|dt| dt.with_timezone(&tz).to_rfc3339())
}

/// Data from the network shown as-is unless it holds control characters, which
/// could break the table or the terminal: then it is shown escaped and quoted.
/// A value for a table cell: user names and session ids may hold raw bytes or
/// control characters (from a NAS), shown escaped and quoted.
pub fn cell(s: &str) -> String {
    match crate::names::escape(s) {
        Some(e) => format!("\"{e}\""),
        None => s.to_string(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Aligned columns separated by two spaces; the last column is not padded.
pub fn table(headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|(h, _)| width(h)).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|(h, _)| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(width(c));
            let align = headers.get(i).map_or(Align::Left, |h| h.1);
            if i > 0 {
                line.push_str("  ");
            }
            match align {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(c);
                }
                Align::Left => {
                    line.push_str(c);
                    if !last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (1_048_576, "1.00 MiB"),
            (5 * (1 << 30) + (1 << 29), "5.50 GiB"),
            (1 << 40, "1.00 TiB"),
            (u64::MAX, "16.00 EiB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            (0, "00:00:00"),
            (61, "00:01:01"),
            (3600 * 25 + 62, "1d 01:01:02"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn times_in_zone() {
        let t = 1_793_487_600; // 2026-10-31T23:00:00Z
        assert_eq!(
            local_time(t, chrono_tz::Europe::Berlin),
            "2026-11-01 00:00:00"
        );
        assert_eq!(
            rfc3339(t, chrono_tz::UTC).unwrap(),
            "2026-10-31T23:00:00+00:00"
        );
    }

    #[test]
    fn cells_escape_control_characters() {
        assert_eq!(cell("alice"), "alice");
        assert_eq!(cell("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn aligned_table() {
        let rows = vec![
            vec!["alice".to_string(), "1.00 GiB".to_string(), "x".to_string()],
            vec!["bo".to_string(), "12 B".to_string(), "yy".to_string()],
        ];
        let t = table(
            &[
                ("USER", Align::Left),
                ("IN", Align::Right),
                ("NOTE", Align::Left),
            ],
            &rows,
        );
        assert_eq!(
            t,
            "USER         IN  NOTE\nalice  1.00 GiB  x\nbo         12 B  yy\n"
        );
    }
}
