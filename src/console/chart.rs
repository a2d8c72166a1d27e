//! Usage charts as inline SVG, drawn on the server: stacked bars of download and
//! upload per day or month, a y axis in bytes, a tooltip per bar.

use std::fmt::Write as _;

use crate::cli::format::human_bytes;

/// One bar: a period's label and its octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    /// From the user (Acct-Input-Octets).
    pub upload: u64,
    /// To the user (Acct-Output-Octets).
    pub download: u64,
}

const W: u32 = 720;
const H: u32 = 220;
const LEFT: u32 = 84;
const BOTTOM: u32 = 36;
const TOP: u32 = 12;
const DOWNLOAD: &str = "#2f6fb0";
const UPLOAD: &str = "#8cb7e0";

/// The smallest "nice" axis maximum at or above `v`: 1, 2, 5, 10, 20, 50, 100, 200
/// or 500 times a power of 1024, so the axis reads 500 MiB rather than 476.84 MiB.
pub fn nice_max(v: u64) -> u64 {
    let mut unit: u64 = 1;
    loop {
        for m in [1, 2, 5, 10, 20, 50, 100, 200, 500] {
            let c = unit.saturating_mul(m);
            if c >= v || c == u64::MAX {
                return c.max(1);
            }
        }
        unit = unit.saturating_mul(1024);
    }
}

/// An axis value: "500 MiB", not "500.00 MiB".
fn axis_label(v: u64) -> String {
    human_bytes(v).replace(".00 ", " ")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart; `title` names it for screen readers.
pub fn usage_bars(title: &str, bars: &[Bar]) -> String {
    let plot_w = W - LEFT - 8;
    let plot_h = H - TOP - BOTTOM;
    let top = bars
        .iter()
        .map(|b| b.upload.saturating_add(b.download))
        .max()
        .unwrap_or(0);
    let max = nice_max(top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}" xmlns="http://www.w3.org/2000/svg">"#,
        esc(title)
    );
    let _ = write!(s, "<title>{}</title>", esc(title));
    // Axis: 0, half, max.
    for frac in [0u64, 1, 2] {
        let v = max / 2 * frac;
        let y = TOP + plot_h - (plot_h as u64 * frac / 2) as u32;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{y}" x2="{}" y2="{y}" stroke="#ccc"/><text x="{}" y="{}" font-size="11" text-anchor="end" fill="#444">{}</text>"##,
            W - 8,
            LEFT - 6,
            y + 4,
            esc(&axis_label(v))
        );
    }
    if bars.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="13" text-anchor="middle" fill="#666">no usage recorded</text>"##,
            LEFT + plot_w / 2,
            TOP + plot_h / 2
        );
    }
    let n = bars.len().max(1) as u32;
    let slot = plot_w / n;
    let bar_w = (slot * 7 / 10).clamp(1, 48);
    // At most ~12 labels under the axis.
    let every = (bars.len() / 12).max(1);
    for (i, b) in bars.iter().enumerate() {
        let x = LEFT + slot * i as u32 + (slot - bar_w) / 2;
        let h = |v: u64| ((v as u128 * plot_h as u128) / max as u128) as u32;
        let (hd, hu) = (h(b.download), h(b.upload));
        let base = TOP + plot_h;
        let tip = esc(&format!(
            "{}: download {}, upload {}",
            b.label,
            human_bytes(b.download),
            human_bytes(b.upload)
        ));
        let _ = write!(
            s,
            r#"<g><title>{tip}</title><rect class="down" x="{x}" y="{}" width="{bar_w}" height="{hd}" fill="{DOWNLOAD}"/><rect class="up" x="{x}" y="{}" width="{bar_w}" height="{hu}" fill="{UPLOAD}"/></g>"#,
            base - hd,
            base - hd - hu,
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#444">{}</text>"##,
                x + bar_w / 2,
                H - BOTTOM + 14,
                esc(&b.label)
            );
        }
    }
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{}" width="10" height="10" fill="{DOWNLOAD}"/><text x="{}" y="{}" font-size="11" fill="#444">download</text><rect x="{}" y="{}" width="10" height="10" fill="{UPLOAD}"/><text x="{}" y="{}" font-size="11" fill="#444">upload</text>"##,
        H - 14,
        LEFT + 14,
        H - 5,
        LEFT + 90,
        H - 14,
        LEFT + 104,
        H - 5
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_maxima() {
        let cases = [
            (0, 1),
            (1, 1),
            (3, 5),
            (7, 10),
            (11, 20),
            (499, 500),
            (999, 1024),
            (1025, 2048),
            (300 << 20, 500 << 20),
            (u64::MAX, u64::MAX),
        ];
        for (v, want) in cases {
            assert_eq!(nice_max(v), want, "{v}");
        }
    }

    fn heights(svg: &str, class: &str) -> Vec<u32> {
        svg.split(&format!("class=\"{class}\""))
            .skip(1)
            .map(|r| {
                let h = r.split("height=\"").nth(1).unwrap();
                h[..h.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn bars_are_proportional_stacked_and_escaped() {
        let bars = vec![
            Bar {
                label: "2026-11-01".into(),
                upload: 0,
                download: 1024,
            },
            Bar {
                label: "<b>".into(),
                upload: 256,
                download: 256,
            },
        ];
        let svg = usage_bars("usage of \"x\"", &bars);
        // Axis max 1 KiB over a 172-pixel plot.
        assert_eq!(heights(&svg, "down"), [172, 43]);
        assert_eq!(heights(&svg, "up"), [0, 43]);
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("usage of &quot;x&quot;"));
        assert!(
            svg.contains("2026-11-01: download 1.00 KiB, upload 0 B"),
            "{svg}"
        );
    }

    #[test]
    fn empty_and_huge() {
        assert!(usage_bars("t", &[]).contains("no usage recorded"));
        let svg = usage_bars(
            "t",
            &[Bar {
                label: "m".into(),
                upload: u64::MAX / 2,
                download: u64::MAX / 2,
            }],
        );
        // Each part rounds down on its own.
        let stacked = heights(&svg, "down")[0] + heights(&svg, "up")[0];
        assert!((170..=172).contains(&stacked), "{stacked}");
    }
}
