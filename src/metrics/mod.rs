//! Counters of what this process did, in Prometheus text format (exposition 0.0.4).
//!
//! One process-wide set ([`global`]): the module's callbacks, its writer and its
//! background jobs count here, and so does `rlm-rust serve` for what it does itself.
//! The module serves them with [`listener`] when `metrics_listen` is set; the console
//! adds the store-wide gauges (queue depth, last bulk runs) to its own `/metrics`.
//! Label values are from small fixed sets (never user names or NAS addresses), so
//! no series grows with the number of users.

pub mod listener;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};

/// A counter (or, made with [`CounterVec::gauge`], a gauge) per combination of
/// label values.
pub struct CounterVec {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    kind: &'static str,
    values: RwLock<BTreeMap<Vec<String>, AtomicU64>>,
}

impl CounterVec {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::family(name, help, labels, "counter")
    }

    /// A family whose values are set, not added to.
    pub const fn gauge(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        Self::family(name, help, labels, "gauge")
    }

    const fn family(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        kind: &'static str,
    ) -> Self {
        CounterVec {
            name,
            help,
            labels,
            kind,
            values: RwLock::new(BTreeMap::new()),
        }
    }

    /// Sets a gauge's series.
    pub fn set(&self, values: &[&str], n: u64) {
        self.with_series(values, |c| c.store(n, Ordering::Relaxed));
    }

    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    pub fn add(&self, values: &[&str], n: u64) {
        self.with_series(values, |c| {
            c.fetch_add(n, Ordering::Relaxed);
        });
    }

    /// Runs `f` on the series of `values`, made on first use.
    fn with_series(&self, values: &[&str], f: impl FnOnce(&AtomicU64)) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        {
            // The common case: the series exists; a shared lock and an atomic op.
            let map = self.values.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = map
                .iter()
                .find_map(|(k, c)| (k.iter().eq(values.iter())).then_some(c))
            {
                return f(c);
            }
        }
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let mut map = self.values.write().unwrap_or_else(|e| e.into_inner());
        f(map.entry(key).or_insert_with(|| AtomicU64::new(0)));
    }

    /// The current value of one series (0 if never counted).
    pub fn get(&self, values: &[&str]) -> u64 {
        let map = self.values.read().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .find_map(|(k, c)| (k.iter().eq(values.iter())).then(|| c.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, self.kind);
        let map = self.values.read().unwrap_or_else(|e| e.into_inner());
        for (k, v) in map.iter() {
            let pairs: Vec<(&str, &str)> = self
                .labels
                .iter()
                .copied()
                .zip(k.iter().map(String::as_str))
                .collect();
            sample(out, self.name, &pairs, v.load(Ordering::Relaxed) as f64);
        }
    }
}

/// A histogram with fixed bucket bounds.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for +Inf.
    buckets: Vec<AtomicU64>,
    /// The sum, as f64 bits.
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        Histogram {
            name,
            help,
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        let bucket = format!("{}_bucket", self.name);
        let mut cumulative = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            sample(out, &bucket, &[("le", &fmt_f64(*b))], cumulative as f64);
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        sample(out, &bucket, &[("le", "+Inf")], cumulative as f64);
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        sample(out, &format!("{}_sum", self.name), &[], sum);
        sample(out, &format!("{}_count", self.name), &[], cumulative as f64);
    }
}

/// Every counter of the process.
pub struct Metrics {
    /// Accounting-Requests by what became of them.
    pub accounting: CounterVec,
    /// authorize's answer (the rcode unlang sees).
    pub authorize: CounterVec,
    /// post-auth's answer.
    pub post_auth: CounterVec,
    /// Accounting updates per group-commit transaction.
    pub batch_size: Histogram,
    /// Time from a batch's first statement to its commit.
    pub commit_seconds: Histogram,
    /// Disconnect-Requests and CoA-Requests by their result.
    pub dm_results: CounterVec,
    /// RouterOS API failures by stage.
    pub api_errors: CounterVec,
    /// Bulk disconnect: NASes by result.
    pub bulk_nases: CounterVec,
    /// Bulk disconnect: sessions by result.
    pub bulk_sessions: CounterVec,
    /// Users whose login values are kept in memory, by kind (bounded).
    pub login_memory: CounterVec,
}

const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const SECONDS_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    fn new() -> Self {
        Metrics {
            accounting: CounterVec::new(
                "rlm_rust_accounting_requests_total",
                "Accounting-Requests by outcome: recorded, not_tracked (acknowledged, not stored), invalid, failed (no response; the NAS retransmits).",
                &["outcome"],
            ),
            authorize: CounterVec::new(
                "rlm_rust_authorize_total",
                "authorize calls by the rcode returned.",
                &["outcome"],
            ),
            post_auth: CounterVec::new(
                "rlm_rust_post_auth_total",
                "post-auth calls by the rcode returned (reject: a limit, policy or state refused the login).",
                &["outcome"],
            ),
            batch_size: Histogram::new(
                "rlm_rust_commit_batch_size",
                "Accounting updates committed per group-commit transaction.",
                BATCH_BOUNDS,
            ),
            commit_seconds: Histogram::new(
                "rlm_rust_commit_seconds",
                "Time to write and commit one group-commit transaction.",
                SECONDS_BOUNDS,
            ),
            dm_results: CounterVec::new(
                "rlm_rust_dm_results_total",
                "RFC 5176 requests sent by kind (disconnect, coa) and result (ack, nak, timeout, error).",
                &["kind", "result"],
            ),
            api_errors: CounterVec::new(
                "rlm_rust_routeros_api_errors_total",
                "RouterOS API failures by stage: connect, login (refused or cut off), connection (lost mid-conversation), command (a trap other than no such item).",
                &["stage"],
            ),
            bulk_nases: CounterVec::new(
                "rlm_rust_bulk_nas_runs_total",
                "Bulk disconnect runs per NAS by result (ok, failed, skipped).",
                &["result"],
            ),
            bulk_sessions: CounterVec::new(
                "rlm_rust_bulk_sessions_total",
                "Sessions handled by bulk disconnect runs by result (removed, already_gone, failed).",
                &["result"],
            ),
            login_memory: CounterVec::gauge(
                "rlm_rust_login_memory_users",
                "Users whose login control values (limits, policy) are kept in memory; at most 100000 each, the rest read from the store.",
                &["kind"],
            ),
        }
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in [
            &self.accounting,
            &self.authorize,
            &self.post_auth,
            &self.dm_results,
            &self.api_errors,
            &self.bulk_nases,
            &self.bulk_sessions,
            &self.login_memory,
        ] {
            c.render(&mut out);
        }
        self.batch_size.render(&mut out);
        self.commit_seconds.render(&mut out);
        out
    }

    /// One committed group-commit batch.
    pub fn committed(&self, updates: usize, took: std::time::Duration) {
        self.batch_size.observe(updates as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// One bulk disconnect result for a NAS.
    pub fn bulk(&self, r: &crate::bulk::NasResult) {
        let result = if r.skipped.is_some() {
            "skipped"
        } else if r.is_failure() {
            "failed"
        } else {
            "ok"
        };
        self.bulk_nases.inc(&[result]);
        self.bulk_sessions.add(&["removed"], r.removed as u64);
        self.bulk_sessions
            .add(&["already_gone"], r.already_gone as u64);
        self.bulk_sessions.add(&["failed"], r.failed as u64);
    }
}

/// The process's counters.
pub fn global() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

/// Compares a presented token with the configured one in time independent of where
/// they differ.
pub fn token_matches(given: &str, want: &str) -> bool {
    let (g, w) = (given.as_bytes(), want.as_bytes());
    let mut diff = g.len() ^ w.len();
    for (i, b) in w.iter().enumerate() {
        diff |= usize::from(g.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

/// The `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label(v));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", fmt_f64(value));
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_one_line_per_series() {
        let c = CounterVec::new("t_total", "Things.", &["kind", "result"]);
        c.inc(&["dm", "ack"]);
        c.add(&["dm", "ack"], 2);
        c.inc(&["coa", "na\"k"]);
        assert_eq!(c.get(&["dm", "ack"]), 3);
        assert_eq!(c.get(&["dm", "nak"]), 0);
        let mut out = String::new();
        c.render(&mut out);
        assert_eq!(
            out,
            "# HELP t_total Things.\n# TYPE t_total counter\n\
             t_total{kind=\"coa\",result=\"na\\\"k\"} 1\n\
             t_total{kind=\"dm\",result=\"ack\"} 3\n"
        );
    }

    #[test]
    fn gauges_are_set() {
        let g = CounterVec::gauge("g", "G.", &["kind"]);
        g.set(&["a"], 5);
        g.set(&["a"], 3);
        let mut out = String::new();
        g.render(&mut out);
        assert_eq!(out, "# HELP g G.\n# TYPE g gauge\ng{kind=\"a\"} 3\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        static B: &[f64] = &[1.0, 10.0];
        let h = Histogram::new("h", "H.", B);
        for v in [0.5, 1.0, 3.0, 20.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out);
        let lines: Vec<&str> = out.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "h_bucket{le=\"1\"} 2",
                "h_bucket{le=\"10\"} 3",
                "h_bucket{le=\"+Inf\"} 4",
                "h_sum 24.5",
                "h_count 4",
            ]
        );
    }

    #[test]
    fn concurrent_increments_are_all_counted() {
        let c = std::sync::Arc::new(CounterVec::new("c", "C.", &["x"]));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.inc(&[if i % 2 == 0 { "a" } else { "b" }]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(&["a"]) + c.get(&["b"]), 4000);
    }
}
