//! RouterOS uptime strings and the month-boundary selection of active sessions.
//!
//! Formats seen across RouterOS versions:
//! `1w2d3h4m5s` (any subset: `45s`, `3h`), `1s200ms`, `1w2d03:04:05`,
//! `2d03:04:05`, `03:04:05`. Sub-second parts are dropped.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unparsable uptime {0:?}")]
pub struct UptimeError(pub String);

/// Parses an uptime to whole seconds.
pub fn parse_uptime(text: &str) -> Result<u64, UptimeError> {
    let err = || UptimeError(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    // Units must appear largest first; this index is the last unit seen.
    let mut last_rank = 0usize;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let tail = &rest[digits..];
        if tail.starts_with(':') {
            // The clock must be the last part: H:MM:SS, optionally with .fraction.
            let clock = clock_seconds(rest).ok_or_else(err)?;
            if last_rank >= 3 {
                return Err(err()); // hours already given as a unit
            }
            return total.checked_add(clock).ok_or_else(err);
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err())?;
        let unit_len = tail.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let (rank, mult) = match &tail[..unit_len] {
            "w" => (1, 7 * 86_400),
            "d" => (2, 86_400),
            "h" => (3, 3_600),
            "m" => (4, 60),
            "s" => (5, 1),
            "ms" => (6, 0),
            "us" => (7, 0),
            "ns" => (8, 0),
            _ => return Err(err()),
        };
        if rank <= last_rank {
            return Err(err());
        }
        last_rank = rank;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
        rest = &tail[unit_len..];
    }
    Ok(total)
}

fn clock_seconds(s: &str) -> Option<u64> {
    let mut parts = s.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let sec = match sec.split_once('.') {
        Some((whole, frac)) if frac.bytes().all(|b| b.is_ascii_digit()) => whole,
        Some(_) => return None,
        None => sec,
    };
    let num = |p: &str, max: u64| -> Option<u64> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok().filter(|v| *v <= max)
    };
    let (h, m, sec) = (num(h, u64::MAX)?, num(m, 59)?, num(sec, 59)?);
    h.checked_mul(3600)?.checked_add(m * 60 + sec)
}

/// Which table an active session lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionTable {
    Ppp,
    Hotspot,
}

impl SessionTable {
    pub const ALL: [SessionTable; 2] = [SessionTable::Ppp, SessionTable::Hotspot];

    /// API menu path, e.g. `/ppp/active`.
    pub fn path(self) -> &'static str {
        match self {
            SessionTable::Ppp => "/ppp/active",
            SessionTable::Hotspot => "/ip/hotspot/active",
        }
    }

    /// Property holding the user name (`name` in PPP, `user` in Hotspot).
    pub fn user_key(self) -> &'static str {
        match self {
            SessionTable::Ppp => "name",
            SessionTable::Hotspot => "user",
        }
    }
}

/// One row of `/ppp/active` or `/ip/hotspot/active`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveSession {
    pub table: SessionTable,
    pub id: String,
    pub user: String,
    pub address: Option<String>,
    pub uptime_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("row without {0}")]
    Missing(&'static str),
    #[error(transparent)]
    Uptime(#[from] UptimeError),
}

impl ActiveSession {
    /// From a print row (needs `.id`, the user key and `uptime`).
    pub fn from_row(
        table: SessionTable,
        row: &HashMap<String, String>,
    ) -> Result<ActiveSession, RowError> {
        let id = row.get(".id").ok_or(RowError::Missing(".id"))?;
        let user = row
            .get(table.user_key())
            .ok_or(RowError::Missing(table.user_key()))?;
        let uptime = row.get("uptime").ok_or(RowError::Missing("uptime"))?;
        Ok(ActiveSession {
            table,
            id: id.clone(),
            user: user.clone(),
            address: row.get("address").filter(|a| !a.is_empty()).cloned(),
            uptime_secs: parse_uptime(uptime)?,
        })
    }

    /// Unix time the session started, as seen from `now_unix`.
    pub fn started_at(&self, now_unix: i64) -> i64 {
        now_unix.saturating_sub(i64::try_from(self.uptime_secs).unwrap_or(i64::MAX))
    }
}

/// Ids of sessions that started strictly before `boundary_unix` (a session that
/// started exactly at the boundary belongs to the new period).
pub fn sessions_to_remove(
    active: &[ActiveSession],
    now_unix: i64,
    boundary_unix: i64,
) -> Vec<String> {
    active
        .iter()
        .filter(|s| {
            let start = s.started_at(now_unix);
            let old = start < boundary_unix;
            log::debug!(
                "routeros: {} {} user {:?} started {} ({}s ago): {}",
                s.table.path(),
                s.id,
                s.user,
                start,
                s.uptime_secs,
                if old {
                    "before boundary, remove"
                } else {
                    "current period, keep"
                }
            );
            old
        })
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_table() {
        let table: &[(&str, u64)] = &[
            ("0s", 0),
            ("45s", 45),
            ("3h", 10_800),
            ("4m", 240),
            ("1d", 86_400),
            ("1w", 604_800),
            ("1w2d3h4m5s", 604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
            ("2d5m", 2 * 86_400 + 300),
            ("1s200ms", 1),
            ("200ms", 0),
            ("3m1s999ms", 181),
            ("1w2d03:04:05", 604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5),
            ("2d03:04:05", 2 * 86_400 + 11_045),
            ("03:04:05", 11_045),
            ("00:00:00", 0),
            ("123:00:01", 123 * 3600 + 1),
            ("00:00:07.25", 7),
            (" 5s ", 5),
            ("52w", 52 * 604_800),
        ];
        for (text, want) in table {
            assert_eq!(parse_uptime(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn uptime_rejects_garbage() {
        for bad in [
            "",
            "s",
            "5",
            "5x",
            "1h2d",
            "1s1s",
            "-5s",
            "1:2",
            "1:02:03:04",
            "00:60:00",
            "00:00:60",
            "3h04:05:06",
            "1d:02:03",
            "02:03:xx",
            "1.5s",
            "18446744073709551615w",
            "99999999999999999999s",
            "00:00:01.x",
        ] {
            assert!(parse_uptime(bad).is_err(), "{bad:?} should fail");
        }
    }

    fn session(id: &str, uptime_secs: u64) -> ActiveSession {
        ActiveSession {
            table: SessionTable::Ppp,
            id: id.into(),
            user: format!("u{id}"),
            address: None,
            uptime_secs,
        }
    }

    #[test]
    fn selection_around_boundary() {
        let boundary = 1_700_000_000;
        let now = boundary + 100;
        let active = [
            session("*1", 101), // started 1 s before the boundary
            session("*2", 100), // exactly at the boundary: keep
            session("*3", 99),  // after
            session("*4", 40 * 86_400),
            session("*5", 0),
            session("*6", u64::MAX), // absurd uptime: saturates, still old
        ];
        assert_eq!(
            sessions_to_remove(&active, now, boundary),
            vec!["*1", "*4", "*6"]
        );
        assert!(sessions_to_remove(&active, now, now - 1_000_000_000).len() == 1);
        assert!(sessions_to_remove(&[], now, boundary).is_empty());
    }

    #[test]
    fn from_row_reads_each_table() {
        let row = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let s = ActiveSession::from_row(
            SessionTable::Ppp,
            &row(&[
                (".id", "*A"),
                ("name", "bob"),
                ("address", "100.64.0.2"),
                ("uptime", "1h"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (s.id.as_str(), s.user.as_str(), s.uptime_secs),
            ("*A", "bob", 3600)
        );
        assert_eq!(s.address.as_deref(), Some("100.64.0.2"));
        let s = ActiveSession::from_row(
            SessionTable::Hotspot,
            &row(&[(".id", "*B"), ("user", "amy"), ("uptime", "00:01:00")]),
        )
        .unwrap();
        assert_eq!(
            (s.user.as_str(), s.uptime_secs, s.address),
            ("amy", 60, None)
        );
        assert_eq!(
            ActiveSession::from_row(SessionTable::Hotspot, &row(&[(".id", "*B"), ("name", "x")])),
            Err(RowError::Missing("user"))
        );
        assert!(matches!(
            ActiveSession::from_row(
                SessionTable::Ppp,
                &row(&[(".id", "*C"), ("name", "x"), ("uptime", "soon")])
            ),
            Err(RowError::Uptime(_))
        ));
    }
}
