//! Dynamic rate modulation (HSNM "Dynamic Modulation Data Rate based on Developed
//! Traffic"): the more traffic in the period, the lower the rate, down to a minimum.
//!
//! With x = used / max_traffic clamped to 0..=1, `rate = min + (max - min) * f(x)`:
//!
//! | curve        | f(x)        | f(0.5)  |
//! |--------------|-------------|---------|
//! | `very-low`   | 1 - x⁴      | 0.9375  |
//! | `low`        | 1 - x²      | 0.75    |
//! | `linear`     | 1 - x       | 0.5     |
//! | `medium`     | (1 - x)²    | 0.25    |
//! | `high`       | (1 - x)⁴    | 0.0625  |
//! | `min-at-max` | 1 if x < 1, else 0     |
//!
//! All are monotone non-increasing with f(0) = 1, f(1) = 0. Computed in integers
//! (u128) and floored, so a rate never exceeds the exact curve value.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Curve {
    VeryLow,
    Low,
    Linear,
    Medium,
    High,
    MinAtMax,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown modulation curve {0:?} (very-low, low, linear, medium, high, min-at-max)")]
pub struct CurveError(pub String);

impl Curve {
    pub const ALL: [Curve; 6] = [
        Curve::VeryLow,
        Curve::Low,
        Curve::Linear,
        Curve::Medium,
        Curve::High,
        Curve::MinAtMax,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Curve::VeryLow => "very-low",
            Curve::Low => "low",
            Curve::Linear => "linear",
            Curve::Medium => "medium",
            Curve::High => "high",
            Curve::MinAtMax => "min-at-max",
        }
    }

    /// The colours of HSNM's chart (green, blue, yellow, magenta, red, dark green);
    /// yellow darkened to be readable on white.
    fn colour(self) -> &'static str {
        match self {
            Curve::VeryLow => "#22c022",
            Curve::Low => "#1f5fd0",
            Curve::Linear => "#c9a400",
            Curve::Medium => "#c000c0",
            Curve::High => "#e02020",
            Curve::MinAtMax => "#006400",
        }
    }
}

impl Curve {
    /// min-at-max is dashed: it runs along the grid's top and right lines.
    fn dash(self) -> &'static str {
        if self == Curve::MinAtMax {
            " stroke-dasharray=\"8 4\""
        } else {
            ""
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Curve {
    type Err = CurveError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Curve::ALL
            .into_iter()
            .find(|c| c.name() == norm)
            .ok_or_else(|| CurveError(s.to_string()))
    }
}

/// Modulated rate for `used` of `max_traffic` (same unit, e.g. bytes).
/// `max_traffic == 0` (no maximum) gives the full rate; `min_rate > max_rate` is read as
/// `min_rate = max_rate` (the policy's max rate is never exceeded).
pub fn rate(curve: Curve, max_rate: u64, min_rate: u64, used: u64, max_traffic: u64) -> u64 {
    let min_rate = min_rate.min(max_rate);
    if max_traffic == 0 {
        return max_rate;
    }
    let span = u128::from(max_rate - min_rate);
    let used = used.min(max_traffic);
    let (num, den) = match curve {
        Curve::MinAtMax => {
            return if used >= max_traffic {
                min_rate
            } else {
                max_rate
            }
        }
        Curve::Linear => {
            let (u, m) = (u128::from(used), u128::from(max_traffic));
            (m - u, m)
        }
        Curve::Low | Curve::Medium => {
            let (u, m) = reduce(used, max_traffic, 32);
            match curve {
                Curve::Low => (m * m - u * u, m * m),
                _ => ((m - u) * (m - u), m * m),
            }
        }
        Curve::VeryLow | Curve::High => {
            let (u, m) = reduce(used, max_traffic, 16);
            let p4 = |v: u128| v * v * v * v;
            match curve {
                Curve::VeryLow => (p4(m) - p4(u), p4(m)),
                _ => (p4(m - u), p4(m)),
            }
        }
    };
    // span < 2^64 and num <= den < 2^64, so span * num fits in u128; den > 0 as m >= 1.
    let offset = span * num / den;
    // offset <= span, so this fits in u64.
    min_rate + offset as u64
}

/// Shifts `used`/`max` right until `max < 2^bits`, so `max^(64/bits)` fits in 64 bits.
/// Keeps the ratio to about 2^-bits, far finer than a [`STEPS`] step.
fn reduce(used: u64, max: u64, bits: u32) -> (u128, u128) {
    let shift = (64 - max.leading_zeros()).saturating_sub(bits);
    // max >= 1 and shift leaves its top bit, so m >= 1.
    (u128::from(used >> shift), u128::from(max >> shift))
}

/// Steps over the span between min and max rate.
pub const STEPS: u64 = 100;

/// `rate` rounded to the nearest of [`STEPS`] equal steps between `min_rate` and
/// `max_rate` (both ends exact), so the background sender resends a rate only when it
/// moved a step, not on every byte. Rates outside the span are clamped into it.
pub fn step(rate: u64, min_rate: u64, max_rate: u64) -> u64 {
    let min_rate = min_rate.min(max_rate);
    let span = u128::from(max_rate - min_rate);
    if span == 0 {
        return max_rate;
    }
    let above = u128::from(rate.clamp(min_rate, max_rate) - min_rate);
    let steps = u128::from(STEPS);
    let k = (above * steps + span / 2) / span;
    min_rate + (span * k / steps) as u64
}

/// An SVG line chart of `curves`: x = traffic 0..100 % of the maximum, y = rate from
/// min to max, one polyline per curve and a legend. Deterministic output.
pub fn svg(curves: &[Curve], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width.max(400)), f64::from(height.max(200)));
    let (left, right, top, bottom) = (60.0, 150.0, 20.0, 45.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let px = |frac: f64| left + pw * frac;
    let py = |frac: f64| top + ph * (1.0 - frac);
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    s.push_str("<title>Rate modulation curves</title>\n");
    s.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{w:.0}\" height=\"{h:.0}\" fill=\"white\"/>\n"
    ));
    // Grid and tick labels every 25 %.
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        s.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n",
            py(0.0),
            py(1.0),
            x = px(f)
        ));
        s.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n",
            px(0.0),
            px(1.0),
            y = py(f)
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}%</text>\n",
            px(f),
            py(0.0) + 16.0,
            i * 25
        ));
        let label = match i {
            0 => "min".to_string(),
            4 => "max".to_string(),
            _ => format!("{}%", i * 25),
        };
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>\n",
            px(0.0) - 6.0,
            py(f) + 4.0
        ));
    }
    // Axes only on the left and bottom: a full frame would hide min-at-max, which runs
    // along the top and right edges.
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#333\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>\n",
        px(0.0),
        py(1.0),
        px(0.0),
        py(0.0),
        px(1.0),
        py(0.0)
    ));
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">traffic (% of the maximum)</text>\n",
        px(0.5),
        h - 8.0
    ));
    s.push_str(&format!(
        "<text x=\"14\" y=\"{y:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {y:.1})\">rate</text>\n",
        y = py(0.5)
    ));
    const SAMPLES: u64 = 200;
    const FULL: u64 = 1_000_000;
    for c in curves {
        let mut pts: Vec<(f64, f64)> = (0..=SAMPLES)
            .map(|i| {
                let r = rate(*c, FULL, 0, i, SAMPLES);
                (i as f64 / SAMPLES as f64, r as f64 / FULL as f64)
            })
            .collect();
        if *c == Curve::MinAtMax {
            // The drop is vertical at 100 %, not a slope from the last sample.
            pts.insert(pts.len() - 1, (1.0, 1.0));
        }
        let points: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{} points=\"{}\"><title>{}</title></polyline>\n",
            c.colour(),
            c.dash(),
            points.join(" "),
            c.name()
        ));
    }
    // Legend to the right of the plot.
    let lx = px(1.0) + 15.0;
    for (i, c) in curves.iter().enumerate() {
        let y = py(1.0) + 10.0 + 20.0 * i as f64;
        s.push_str(&format!(
            "<line x1=\"{lx:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"3\"{}/>\n",
            lx + 24.0,
            c.colour(),
            c.dash()
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            lx + 30.0,
            y + 4.0,
            c.name()
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use Curve::*;

    #[test]
    fn names_round_trip() {
        for c in Curve::ALL {
            assert_eq!(c.to_string().parse::<Curve>(), Ok(c));
        }
        assert_eq!("Very_Low".parse::<Curve>(), Ok(VeryLow));
        assert_eq!("MIN-AT-MAX".parse::<Curve>(), Ok(MinAtMax));
        assert_eq!("steep".parse::<Curve>(), Err(CurveError("steep".into())));
    }

    #[test]
    fn rate_at_0_50_100_and_beyond() {
        // max 10M, min 1M: span 9M. Traffic max 1000 MB.
        let (max, min, mt) = (10_000_000, 1_000_000, 1_000);
        let cases: &[(Curve, [u64; 5])] = &[
            //          0 %         50 %       100 %      150 %      75 %
            (
                VeryLow,
                [10_000_000, 9_437_500, 1_000_000, 1_000_000, 7_152_343],
            ),
            (
                Low,
                [10_000_000, 7_750_000, 1_000_000, 1_000_000, 4_937_500],
            ),
            (
                Linear,
                [10_000_000, 5_500_000, 1_000_000, 1_000_000, 3_250_000],
            ),
            (
                Medium,
                [10_000_000, 3_250_000, 1_000_000, 1_000_000, 1_562_500],
            ),
            (
                High,
                [10_000_000, 1_562_500, 1_000_000, 1_000_000, 1_035_156],
            ),
            (
                MinAtMax,
                [10_000_000, 10_000_000, 1_000_000, 1_000_000, 10_000_000],
            ),
        ];
        for (c, want) in cases {
            let got = [0, 500, 1_000, 1_500, 750].map(|u| rate(*c, max, min, u, mt));
            assert_eq!(got, *want, "{c}");
        }
    }

    #[test]
    fn rate_edges() {
        type Case = (Curve, u64, u64, u64, u64, u64);
        let cases: &[Case] = &[
            // No traffic maximum: full rate.
            (High, 10_000, 1_000, 5, 0, 10_000),
            (MinAtMax, 10_000, 1_000, u64::MAX, 0, 10_000),
            // min > max: min read as max.
            (Linear, 1_000, 5_000, 500, 1_000, 1_000),
            (MinAtMax, 1_000, 5_000, 1_000, 1_000, 1_000),
            // Huge values: no overflow, ends exact.
            (VeryLow, u64::MAX, 0, 0, u64::MAX, u64::MAX),
            (VeryLow, u64::MAX, 0, u64::MAX, u64::MAX, 0),
            (High, u64::MAX, 0, 1 << 39, 1 << 40, u64::MAX / 16),
            (
                Linear,
                u64::MAX,
                0,
                u64::MAX / 2,
                u64::MAX,
                u64::MAX / 2 + 1,
            ),
            (
                Medium,
                u64::MAX,
                7,
                1 << 40,
                1 << 41,
                (u64::MAX - 7) / 4 + 7,
            ),
            // Zero rates.
            (Linear, 0, 0, 1, 2, 0),
        ];
        for (c, max, min, used, mt, want) in cases {
            assert_eq!(
                rate(*c, *max, *min, *used, *mt),
                *want,
                "{c} {max} {min} {used} {mt}"
            );
        }
    }

    #[test]
    fn curves_are_monotone_and_ordered() {
        let (max, min, mt) = (100_000_000u64, 2_000_000u64, 10_000_000_000u64);
        for c in Curve::ALL {
            let mut prev = u64::MAX;
            for i in 0..=1000 {
                let r = rate(c, max, min, mt / 1000 * i, mt);
                assert!(r <= prev, "{c} rises at {i}");
                assert!((min..=max).contains(&r), "{c} out of range at {i}");
                prev = r;
            }
        }
        // Strictly inside (0, 1): very-low > low > linear > medium > high.
        for i in 1..100 {
            let rs: Vec<u64> = [VeryLow, Low, Linear, Medium, High]
                .iter()
                .map(|c| rate(*c, max, min, mt / 100 * i, mt))
                .collect();
            assert!(rs.windows(2).all(|w| w[0] > w[1]), "at {i}%: {rs:?}");
        }
    }

    #[test]
    fn step_table() {
        // min 1M, max 10M: steps of 90k.
        let cases: &[(u64, u64, u64, u64)] = &[
            (10_000_000, 1_000_000, 10_000_000, 10_000_000),
            (9_990_000, 1_000_000, 10_000_000, 10_000_000),
            (9_950_000, 1_000_000, 10_000_000, 9_910_000),
            (1_000_000, 1_000_000, 10_000_000, 1_000_000),
            (1_044_000, 1_000_000, 10_000_000, 1_000_000),
            (1_045_000, 1_000_000, 10_000_000, 1_090_000),
            (5_500_000, 1_000_000, 10_000_000, 5_500_000),
            // Clamped into the span; empty or inverted span gives max.
            (0, 1_000_000, 10_000_000, 1_000_000),
            (u64::MAX, 1_000_000, 10_000_000, 10_000_000),
            (5, 7, 7, 7),
            (5, 9, 7, 7),
            (u64::MAX / 2, 0, u64::MAX, u64::MAX / 2),
        ];
        for (r, min, max, want) in cases {
            assert_eq!(step(*r, *min, *max), *want, "step({r}, {min}, {max})");
        }
    }

    /// Minimal XML check: every `<tag` is closed by `/>` or a matching `</tag>`.
    fn well_formed(s: &str) -> bool {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let Some(end) = rest.find('>') else {
                return false;
            };
            let tag = &rest[..end];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop() != Some(name) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or(""));
            }
            rest = &rest[end + 1..];
        }
        stack.is_empty()
    }

    #[test]
    fn svg_has_six_curves_and_a_legend() {
        let out = svg(&Curve::ALL, 800, 450);
        assert!(out.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\""));
        assert!(out.ends_with("</svg>\n"));
        assert!(well_formed(&out));
        assert!(
            !well_formed("<svg><g></svg>"),
            "the checker itself can fail"
        );
        // Six curves plus the axes.
        assert_eq!(out.matches("<polyline").count(), 7);
        assert_eq!(out.matches("</polyline>").count(), 6);
        for c in Curve::ALL {
            assert_eq!(
                out.matches(&format!(">{}</text>", c.name())).count(),
                1,
                "legend {c}"
            );
        }
        assert_eq!(out, svg(&Curve::ALL, 800, 450), "deterministic");
        assert_eq!(svg(&[Linear], 10, 10).matches("</polyline>").count(), 1);
    }
}

#[cfg(test)]
mod docs_tests {
    #[test]
    fn the_chart_in_docs_is_the_one_the_code_draws() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/modulation-curves.svg");
        let drawn = super::svg(&super::Curve::ALL, 800, 450);
        if std::env::var_os("RLM_RUST_REGENERATE_DOCS").is_some() {
            std::fs::write(path, &drawn).unwrap();
        }
        let stored = std::fs::read_to_string(path).unwrap();
        assert!(
            stored == drawn,
            "docs/modulation-curves.svg is stale: RLM_RUST_REGENERATE_DOCS=1 cargo test --lib docs_tests"
        );
    }
}
