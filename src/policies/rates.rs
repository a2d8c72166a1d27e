//! Data rates (bit/s), MikroTik burst, and the reply attributes that carry them:
//! `Mikrotik-Rate-Limit` and `WISPr-Bandwidth-Max-Down`/`-Up`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("bad rate {0:?} (digits with an optional k, M or G suffix: 256k, 10M, 1.5M)")]
    Invalid(String),
    #[error("rate {0:?} is too large")]
    Overflow(String),
    #[error("partial burst: missing {}; give all six burst fields or none", .0.join(", "))]
    PartialBurst(Vec<&'static str>),
}

/// A data rate in bit/s. Operator text: `256k`, `10M`, `1G`, `1.5M`, `64000`;
/// k/M/G are powers of 1000 as in RouterOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(pub u64);

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_rate(s).map(Rate)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_rate(self.0))
    }
}

/// Parses `256k`, `10M`, `1G`, `1.5M`, `64000` (suffix case-insensitive) into bit/s.
/// A fraction must come out whole (`1.5k` = 1500; `1.0005k` is refused).
pub fn parse_rate(text: &str) -> Result<u64, RateError> {
    let t = text.trim();
    let invalid = || RateError::Invalid(text.to_string());
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000u64),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        Some(_) => (t, 1),
        None => return Err(invalid()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (num.contains('.') && frac.is_empty()) {
        return Err(invalid());
    }
    let overflow = || RateError::Overflow(text.to_string());
    let int: u64 = int.parse().map_err(|_| overflow())?;
    let mut value = int.checked_mul(mult).ok_or_else(overflow)?;
    // Fraction digits scaled exactly: each digit is worth mult / 10^k.
    let mut place = mult;
    for b in frac.bytes() {
        if place % 10 != 0 {
            // More fraction digits than the suffix allows, unless they are zeros.
            if b != b'0' {
                return Err(invalid());
            }
            continue;
        }
        place /= 10;
        value = value
            .checked_add(u64::from(b - b'0') * place)
            .ok_or_else(overflow)?;
    }
    Ok(value)
}

/// bit/s with the largest of G/M/k that is exact (`10M`, `512k`, `1G`, `1500`).
pub fn format_rate(bps: u64) -> String {
    suffixed(bps, &[(1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")])
}

/// RouterOS's Rate-Limit documents only `k` and `M`, so 1 Gbit/s is written `1000M`.
fn routeros_rate(bps: u64) -> String {
    suffixed(bps, &[(1_000_000, "M"), (1_000, "k")])
}

fn suffixed(bps: u64, units: &[(u64, &str)]) -> String {
    if bps != 0 {
        for &(unit, suffix) in units {
            if bps % unit == 0 {
                return format!("{}{suffix}", bps / unit);
            }
        }
    }
    bps.to_string()
}

/// MikroTik burst: above the max rate up to `limit` while the average over `time_secs`
/// stays below `threshold`. HSNM requires all six fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Burst {
    pub down_limit: u64,
    pub up_limit: u64,
    pub down_threshold: u64,
    pub up_threshold: u64,
    pub down_time_secs: u64,
    pub up_time_secs: u64,
}

/// Field names in [`burst_from`]'s order, as errors report them.
pub const BURST_FIELDS: [&str; 6] = [
    "down_limit",
    "up_limit",
    "down_threshold",
    "up_threshold",
    "down_time_secs",
    "up_time_secs",
];

/// All six parts (in [`BURST_FIELDS`] order) or none; a partial burst names what is missing.
pub fn burst_from(parts: [Option<u64>; 6]) -> Result<Option<Burst>, RateError> {
    match parts {
        [None, None, None, None, None, None] => Ok(None),
        [Some(dl), Some(ul), Some(dt), Some(ut), Some(dtime), Some(utime)] => Ok(Some(Burst {
            down_limit: dl,
            up_limit: ul,
            down_threshold: dt,
            up_threshold: ut,
            down_time_secs: dtime,
            up_time_secs: utime,
        })),
        _ => Err(RateError::PartialBurst(
            parts
                .iter()
                .zip(BURST_FIELDS)
                .filter(|(p, _)| p.is_none())
                .map(|(_, name)| name)
                .collect(),
        )),
    }
}

/// `Mikrotik-Rate-Limit` value:
/// `rx/tx [rx-burst/tx-burst [rx-threshold/tx-threshold [rx-time/tx-time [priority [rx-min/tx-min]]]]]`.
///
/// Format per MikroTik's wiki, Manual:RADIUS_Client, Access-Accept attributes
/// (wiki.mikrotik.com/wiki/Manual:RADIUS_Client#Access-Accept, quoted in
/// forum.mikrotik.com/t/how-this-equations-exactly-work/47597): rates "from the point of
/// view of the router (so rx is client upload, and tx is client download)", suffixes
/// `k` (1,000s) and `M` (1,000,000s), priority 1..8 (1 highest), burst time in seconds.
///
/// So the pairs are written `up/down`. Later positional fields need the earlier ones:
/// priority or min without a burst writes `0/0 0/0 0/0` (burst limit 0 = no burst);
/// min without a priority writes RouterOS's default priority 8. Priority is clamped
/// to 1..=8. `min` is `(down, up)` like the other arguments.
pub fn mikrotik_rate_limit(
    down: u64,
    up: u64,
    burst: Option<&Burst>,
    priority: Option<u8>,
    min: Option<(u64, u64)>,
) -> String {
    let pair = |up: u64, down: u64| format!("{}/{}", routeros_rate(up), routeros_rate(down));
    let mut out = pair(up, down);
    if burst.is_none() && priority.is_none() && min.is_none() {
        return out;
    }
    match burst {
        Some(b) => {
            out.push(' ');
            out.push_str(&pair(b.up_limit, b.down_limit));
            out.push(' ');
            out.push_str(&pair(b.up_threshold, b.down_threshold));
            out.push_str(&format!(" {}/{}", b.up_time_secs, b.down_time_secs));
        }
        None => out.push_str(" 0/0 0/0 0/0"),
    }
    if priority.is_none() && min.is_none() {
        return out;
    }
    out.push_str(&format!(" {}", priority.unwrap_or(8).clamp(1, 8)));
    if let Some((down_min, up_min)) = min {
        out.push(' ');
        out.push_str(&pair(up_min, down_min));
    }
    out
}

pub const WISPR_DOWN: &str = "WISPr-Bandwidth-Max-Down";
pub const WISPR_UP: &str = "WISPr-Bandwidth-Max-Up";

/// WISPr reply attributes, bit/s as plain integers.
pub fn wispr(down: u64, up: u64) -> [(&'static str, String); 2] {
    [(WISPR_DOWN, down.to_string()), (WISPR_UP, up.to_string())]
}

/// Burst for a modulated rate: HSNM scales burst limit and threshold by the same factor
/// as the rate; burst times stay.
pub fn scale_burst(b: &Burst, factor_down: f64, factor_up: f64) -> Burst {
    Burst {
        down_limit: scale(b.down_limit, factor_down),
        up_limit: scale(b.up_limit, factor_up),
        down_threshold: scale(b.down_threshold, factor_down),
        up_threshold: scale(b.up_threshold, factor_up),
        down_time_secs: b.down_time_secs,
        up_time_secs: b.up_time_secs,
    }
}

/// `v * factor` rounded; a NaN factor leaves `v` (a bug upstream must not zero the rate),
/// negative gives 0, the `as` cast saturates at u64::MAX.
fn scale(v: u64, factor: f64) -> u64 {
    if factor.is_nan() {
        return v;
    }
    (v as f64 * factor.max(0.0)).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rate_table() {
        let ok: &[(&str, u64)] = &[
            ("0", 0),
            ("64000", 64_000),
            ("256k", 256_000),
            ("256K", 256_000),
            ("10M", 10_000_000),
            ("10m", 10_000_000),
            ("1G", 1_000_000_000),
            ("1.5M", 1_500_000),
            ("1.5k", 1_500),
            ("0.5G", 500_000_000),
            ("2.000k", 2_000),
            (" 512k ", 512_000),
            ("18446744073709551615", u64::MAX),
            ("18446744073G", 18_446_744_073_000_000_000),
        ];
        for (text, want) in ok {
            assert_eq!(parse_rate(text), Ok(*want), "{text:?}");
        }
        let bad: &[(&str, RateError)] = &[
            ("", RateError::Invalid("".into())),
            ("k", RateError::Invalid("k".into())),
            ("1.5", RateError::Invalid("1.5".into())),
            ("1.0005k", RateError::Invalid("1.0005k".into())),
            ("1.k", RateError::Invalid("1.k".into())),
            (".5M", RateError::Invalid(".5M".into())),
            ("-1", RateError::Invalid("-1".into())),
            ("10 M", RateError::Invalid("10 M".into())),
            ("10Mb", RateError::Invalid("10Mb".into())),
            ("1T", RateError::Invalid("1T".into())),
            ("10é", RateError::Invalid("10é".into())),
            (
                "18446744073709551616",
                RateError::Overflow("18446744073709551616".into()),
            ),
            ("18446744074G", RateError::Overflow("18446744074G".into())),
        ];
        for (text, want) in bad {
            assert_eq!(parse_rate(text).as_ref(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn format_rate_round_trips() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (999, "999"),
            (1_000, "1k"),
            (1_500, "1500"),
            (512_000, "512k"),
            (1_500_000, "1500k"),
            (10_000_000, "10M"),
            (1_000_000_000, "1G"),
            (2_500_000_000, "2500M"),
            (u64::MAX, "18446744073709551615"),
        ];
        for (bps, text) in cases {
            assert_eq!(Rate(*bps).to_string(), *text);
            assert_eq!(text.parse::<Rate>(), Ok(Rate(*bps)));
        }
    }

    #[test]
    fn burst_all_or_nothing() {
        assert_eq!(burst_from([None; 6]), Ok(None));
        let b = burst_from([Some(1), Some(2), Some(3), Some(4), Some(5), Some(6)])
            .unwrap()
            .unwrap();
        assert_eq!((b.down_limit, b.up_time_secs), (1, 6));
        let partial: &[([Option<u64>; 6], &[&str])] = &[
            (
                [Some(1), None, None, None, None, None],
                &[
                    "up_limit",
                    "down_threshold",
                    "up_threshold",
                    "down_time_secs",
                    "up_time_secs",
                ],
            ),
            (
                [Some(1), Some(2), Some(3), Some(4), Some(5), None],
                &["up_time_secs"],
            ),
            (
                [None, Some(2), Some(3), Some(4), Some(5), Some(6)],
                &["down_limit"],
            ),
        ];
        for (parts, missing) in partial {
            assert_eq!(
                burst_from(*parts),
                Err(RateError::PartialBurst(missing.to_vec()))
            );
        }
        let msg = burst_from([Some(1), Some(2), Some(3), Some(4), Some(5), None])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("up_time_secs"), "{msg}");
    }

    const B: Burst = Burst {
        down_limit: 20_000_000,
        up_limit: 4_000_000,
        down_threshold: 8_000_000,
        up_threshold: 1_500_000,
        down_time_secs: 16,
        up_time_secs: 8,
    };

    #[test]
    fn mikrotik_rate_limit_exact_strings() {
        type Case = (
            u64,
            u64,
            Option<Burst>,
            Option<u8>,
            Option<(u64, u64)>,
            &'static str,
        );
        let cases: &[Case] = &[
            // rx/tx = client upload/download.
            (10_000_000, 2_000_000, None, None, None, "2M/10M"),
            (1_000_000_000, 512_000, None, None, None, "512k/1000M"),
            (1_500_000, 64_500, None, None, None, "64500/1500k"),
            (0, 0, None, None, None, "0/0"),
            (
                10_000_000,
                2_000_000,
                Some(B),
                None,
                None,
                "2M/10M 4M/20M 1500k/8M 8/16",
            ),
            (
                10_000_000,
                2_000_000,
                Some(B),
                Some(5),
                None,
                "2M/10M 4M/20M 1500k/8M 8/16 5",
            ),
            (
                10_000_000,
                2_000_000,
                Some(B),
                Some(1),
                Some((1_000_000, 256_000)),
                "2M/10M 4M/20M 1500k/8M 8/16 1 256k/1M",
            ),
            (
                10_000_000,
                2_000_000,
                None,
                Some(3),
                None,
                "2M/10M 0/0 0/0 0/0 3",
            ),
            (
                10_000_000,
                2_000_000,
                None,
                None,
                Some((1_000_000, 256_000)),
                "2M/10M 0/0 0/0 0/0 8 256k/1M",
            ),
            (
                10_000_000,
                2_000_000,
                None,
                Some(0),
                None,
                "2M/10M 0/0 0/0 0/0 1",
            ),
            (
                10_000_000,
                2_000_000,
                None,
                Some(200),
                None,
                "2M/10M 0/0 0/0 0/0 8",
            ),
        ];
        for (down, up, burst, prio, min, want) in cases {
            assert_eq!(
                mikrotik_rate_limit(*down, *up, burst.as_ref(), *prio, *min),
                *want
            );
        }
    }

    #[test]
    fn wispr_pairs() {
        assert_eq!(
            wispr(10_000_000, 2_000_000),
            [
                ("WISPr-Bandwidth-Max-Down", "10000000".to_string()),
                ("WISPr-Bandwidth-Max-Up", "2000000".to_string())
            ]
        );
    }

    #[test]
    fn scale_burst_scales_limit_and_threshold_not_time() {
        let s = scale_burst(&B, 0.5, 0.25);
        assert_eq!(
            s,
            Burst {
                down_limit: 10_000_000,
                up_limit: 1_000_000,
                down_threshold: 4_000_000,
                up_threshold: 375_000,
                down_time_secs: 16,
                up_time_secs: 8,
            }
        );
        let cases: &[(f64, u64)] = &[
            (1.0, 20_000_000),
            (0.0, 0),
            (-1.0, 0),
            (f64::NAN, 20_000_000),
            (f64::INFINITY, u64::MAX),
            (0.333_333, 6_666_660),
        ];
        for (f, want) in cases {
            assert_eq!(scale_burst(&B, *f, 1.0).down_limit, *want, "factor {f}");
        }
    }

    #[test]
    fn odd_input_is_an_error_not_a_panic() {
        for w in super::super::WEIRD_INPUT {
            assert!(parse_rate(w).is_err(), "{w:?}");
        }
    }
}
