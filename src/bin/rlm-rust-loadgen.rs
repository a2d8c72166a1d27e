//! rlm-rust-loadgen: a RADIUS load generator for benchmarking a server.
//!
//! Sends Access-Request (PAP) and/or Accounting-Request (Start, Interim..., Stop per
//! session, over many users and sessions) with a window of outstanding requests,
//! retransmits on timeout, and reports throughput, latency and losses.
//! Only loopback destinations unless --allow-non-loopback: never flood a network.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use rlm_rust::radius::attrs::{self, Attribute};
use rlm_rust::radius::client::{run_pipeline, Exchange, ExchangeError, PipelineConfig};
use rlm_rust::radius::{Code, Packet};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Accounting-Request only: Start, Interim(s), Stop per session.
    Acct,
    /// Access-Request (PAP) only, cycling over users.
    Auth,
    /// Per session: Access-Request, then its accounting sequence.
    Mixed,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "RADIUS load generator (loopback only unless told otherwise)"
)]
struct Args {
    /// Destination host:port (accounting port in acct mode, auth port otherwise).
    #[arg(long)]
    server: SocketAddr,
    /// Accounting destination in mixed mode [default: --server with port + 1].
    #[arg(long)]
    acct_server: Option<SocketAddr>,
    /// Shared secret.
    #[arg(
        long,
        env = "LOADGEN_SECRET",
        default_value = "testing123",
        hide_env_values = true
    )]
    secret: String,
    #[arg(long, value_enum, default_value = "acct")]
    mode: Mode,
    /// Requests to send [default: 10000 unless --duration].
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds to keep sending (instead of a request count).
    #[arg(long)]
    duration: Option<f64>,
    /// Pace new requests to at most this many per second (0: as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Requests outstanding at once (one socket and thread per 128).
    #[arg(long, default_value_t = 256)]
    window: usize,
    #[arg(long, default_value_t = 1000)]
    users: u32,
    #[arg(long, default_value_t = 1)]
    sessions_per_user: u32,
    /// Interim-Updates per session between Start and Stop.
    #[arg(long, default_value_t = 1)]
    interims: u32,
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions after the first attempt.
    #[arg(long, default_value_t = 2)]
    retries: u32,
    #[arg(long, default_value = "loadgen")]
    user_prefix: String,
    #[arg(long, default_value = "loadgen")]
    password: String,
    /// NAS-IP-Address attribute value (not a destination).
    #[arg(long, default_value = "127.0.0.1")]
    nas_ip: Ipv4Addr,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Allow destinations outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    allow_non_loopback: bool,
}

fn is_loopback(addr: &SocketAddr) -> bool {
    match addr {
        SocketAddr::V4(a) => a.ip().is_loopback(),
        SocketAddr::V6(a) => {
            a.ip().is_loopback() || a.ip().to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Outstanding requests per socket. Identifiers would allow 256 per destination,
/// but a burst of 256 replies fills a default 208 KiB receive buffer on Linux
/// (about 830 octets of kernel memory per small datagram), and replies the
/// kernel drops at our end would be reported as the server's losses.
const MAX_PER_SOCKET: usize = 128;

/// Where each kind of request goes.
#[derive(Debug, Clone, Copy)]
struct Targets {
    auth: SocketAddr,
    acct: SocketAddr,
}

fn targets(args: &Args) -> Result<Targets, String> {
    let acct = match args.mode {
        Mode::Acct => args.server,
        Mode::Auth => args.server,
        Mode::Mixed => match args.acct_server {
            Some(a) => a,
            None => {
                let port = args.server.port().checked_add(1).ok_or(
                    "--server port 65535 leaves no room for accounting; give --acct-server",
                )?;
                SocketAddr::new(args.server.ip(), port)
            }
        },
    };
    let t = Targets {
        auth: args.server,
        acct,
    };
    if !args.allow_non_loopback {
        for a in [t.auth, t.acct] {
            if !is_loopback(&a) {
                return Err(format!(
                    "refusing to send to non-loopback {a}; pass --allow-non-loopback if you really mean it"
                ));
            }
        }
    }
    Ok(t)
}

/// What to send at step `n` of the run: a pure function of `n`, so the request
/// stream is reproducible whatever the threading.
#[derive(Debug, Clone)]
struct Plan {
    mode: Mode,
    users: u64,
    sessions: u64,
    interims: u64,
    prefix: String,
    password: Vec<u8>,
    secret: Vec<u8>,
    nas_ip: Ipv4Addr,
    targets: Targets,
}

/// The kind of packet a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Auth,
    Start,
    Interim(u64),
    Stop,
}

impl Plan {
    fn steps_per_session(&self) -> u64 {
        match self.mode {
            Mode::Auth => 1,
            Mode::Acct => self.interims + 2,
            Mode::Mixed => self.interims + 3,
        }
    }

    /// (generation, session index, step). Sessions advance in rounds, so packets
    /// of one session are spread apart (Start of all, then Interim of all, ...).
    fn locate(&self, n: u64) -> (u64, u64, Step) {
        let per_gen = self.sessions * self.steps_per_session();
        let gen = n / per_gen;
        let rem = n % per_gen;
        let (round, session) = (rem / self.sessions, rem % self.sessions);
        let round = if self.mode == Mode::Mixed {
            if round == 0 {
                return (gen, session, Step::Auth);
            }
            round - 1
        } else {
            round
        };
        let step = match self.mode {
            Mode::Auth => Step::Auth,
            _ if round == 0 => Step::Start,
            _ if round > self.interims => Step::Stop,
            _ => Step::Interim(round),
        };
        (gen, session, step)
    }

    fn exchange(&self, n: u64, now_unix: u32) -> Result<Exchange, String> {
        let (gen, session, step) = self.locate(n);
        let user = session % self.users;
        let user_name = format!("{}{}", self.prefix, user);
        let u = user as u32;
        // Shared address space (RFC 6598), as a CGNAT pool would hand out.
        let framed = Ipv4Addr::new(100, 64 + ((u >> 16) & 63) as u8, (u >> 8) as u8, u as u8);
        let mac = format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            u >> 24,
            (u >> 16) & 0xff,
            (u >> 8) & 0xff,
            u & 0xff
        );
        let common = [
            Attribute::string(attrs::USER_NAME, &user_name),
            Attribute::ipv4(attrs::NAS_IP_ADDRESS, self.nas_ip),
            Attribute::integer(attrs::NAS_PORT, session as u32),
            Attribute::integer(attrs::NAS_PORT_TYPE, 15), // Ethernet
            Attribute::string(attrs::CALLING_STATION_ID, &mac),
        ];
        if step == Step::Auth {
            let mut p = Packet::access_request(0).map_err(|e| e.to_string())?;
            p.add_message_authenticator();
            p.attributes.extend(common);
            p.set_user_password(&self.password, &self.secret)
                .map_err(|e| e.to_string())?;
            return Ok(Exchange {
                target: self.targets.auth,
                secret: self.secret.clone(),
                packet: p,
            });
        }
        let (status, tick) = match step {
            Step::Start => (attrs::ACCT_STATUS_START, 0),
            Step::Interim(i) => (attrs::ACCT_STATUS_INTERIM, i),
            _ => (attrs::ACCT_STATUS_STOP, self.interims + 1),
        };
        // Counters grow with each update; past 4 GiB they spill into Gigawords.
        let input = tick * 50_000_000 + session;
        let output = tick * 400_000_000 + session;
        let mut p = Packet::new(Code::AccountingRequest, 0);
        p.attributes.extend(common);
        p.add(Attribute::integer(attrs::ACCT_STATUS_TYPE, status))
            .add(Attribute::string(
                attrs::ACCT_SESSION_ID,
                &format!("{:08x}-{gen:x}", session),
            ))
            .add(Attribute::ipv4(attrs::FRAMED_IP_ADDRESS, framed))
            .add(Attribute::integer(attrs::ACCT_DELAY_TIME, 0))
            .add(Attribute::date(attrs::EVENT_TIMESTAMP, now_unix));
        if step != Step::Start {
            p.add(Attribute::integer(
                attrs::ACCT_SESSION_TIME,
                (tick * 300) as u32,
            ))
            .add(Attribute::integer(attrs::ACCT_INPUT_OCTETS, input as u32))
            .add(Attribute::integer(
                attrs::ACCT_INPUT_GIGAWORDS,
                (input >> 32) as u32,
            ))
            .add(Attribute::integer(attrs::ACCT_OUTPUT_OCTETS, output as u32))
            .add(Attribute::integer(
                attrs::ACCT_OUTPUT_GIGAWORDS,
                (output >> 32) as u32,
            ));
        }
        if step == Step::Stop {
            p.add(Attribute::integer(attrs::ACCT_TERMINATE_CAUSE, 1)); // User-Request
        }
        Ok(Exchange {
            target: self.targets.acct,
            secret: self.secret.clone(),
            packet: p,
        })
    }
}

/// Hands out step numbers until the count or the deadline is reached.
struct Source {
    next: u64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    /// (start, requests per second): step n is not handed out before start + n / rate.
    pace: Option<(Instant, f64)>,
}

/// When step `n` may start at `rate` requests per second (None: unpaced).
fn paced_at(start: Instant, rate: f64, n: u64) -> Option<Instant> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    start.checked_add(Duration::from_secs_f64(n as f64 / rate))
}

impl Source {
    fn take(&mut self) -> Option<u64> {
        if self.limit.is_some_and(|l| self.next >= l) {
            return None;
        }
        if let Some(at) = self.pace.and_then(|(s, r)| paced_at(s, r, self.next)) {
            // Sleeping under the lock is the point: the other sockets wait their turn too.
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    answered: u64,
    lost: u64,
    errors: u64,
    retransmissions: u64,
    bad_replies: u64,
    codes: BTreeMap<String, u64>,
    latencies_us: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.sent += o.sent;
        self.answered += o.answered;
        self.lost += o.lost;
        self.errors += o.errors;
        self.retransmissions += o.retransmissions;
        self.bad_replies += o.bad_replies;
        for (k, v) in o.codes {
            *self.codes.entry(k).or_default() += v;
        }
        self.latencies_us.extend(o.latencies_us);
    }
}

#[derive(Debug, Serialize)]
struct Report {
    mode: String,
    total: u64,
    answered: u64,
    lost: u64,
    errors: u64,
    retransmissions: u64,
    bad_replies: u64,
    elapsed_s: f64,
    requests_per_s: f64,
    latency_ms: Latency,
    codes: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, Default)]
struct Latency {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(mode: Mode, mut t: Tally, elapsed: Duration) -> Report {
    t.latencies_us.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let secs = elapsed.as_secs_f64();
    Report {
        mode: format!("{mode:?}").to_lowercase(),
        total: t.sent,
        answered: t.answered,
        lost: t.lost,
        errors: t.errors,
        retransmissions: t.retransmissions,
        bad_replies: t.bad_replies,
        elapsed_s: secs,
        requests_per_s: if secs > 0.0 {
            t.answered as f64 / secs
        } else {
            0.0
        },
        latency_ms: Latency {
            p50: ms(percentile(&t.latencies_us, 50.0)),
            p99: ms(percentile(&t.latencies_us, 99.0)),
            max: ms(t.latencies_us.last().copied().unwrap_or(0)),
        },
        codes: t.codes,
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// One socket and its share of the window, pulling steps from the shared source.
fn worker(
    plan: Arc<Plan>,
    source: Arc<Mutex<Source>>,
    cfg: PipelineConfig,
    bind: SocketAddr,
) -> Result<Tally, String> {
    let socket = UdpSocket::bind(bind).map_err(|e| format!("bind {bind}: {e}"))?;
    let mut tally = Tally::default();
    let mut build_errors = Vec::new();
    let jobs = std::iter::from_fn(|| {
        let n = source.lock().ok()?.take()?;
        match plan.exchange(n, unix_now()) {
            Ok(ex) => Some(ex),
            Err(e) => {
                build_errors.push(e);
                None
            }
        }
    });
    run_pipeline(&socket, &cfg, jobs, |_, r| {
        tally.sent += 1;
        match r {
            Ok(reply) => {
                tally.answered += 1;
                tally.retransmissions += u64::from(reply.attempts - 1);
                tally.bad_replies += u64::from(reply.bad_replies);
                tally.latencies_us.push(reply.latency.as_micros() as u64);
                *tally
                    .codes
                    .entry(reply.packet.code.name().to_string())
                    .or_default() += 1;
            }
            Err(ExchangeError::Timeout {
                attempts,
                bad_replies,
            }) => {
                tally.lost += 1;
                tally.retransmissions += u64::from(attempts - 1);
                tally.bad_replies += u64::from(bad_replies);
            }
            Err(e) => {
                tally.errors += 1;
                log::debug!("loadgen: {e}");
            }
        }
    })
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(e) = build_errors.pop() {
        return Err(format!("building a request: {e}"));
    }
    Ok(tally)
}

fn run(args: Args) -> Result<Report, String> {
    let targets = targets(&args)?;
    if args.users == 0 || args.sessions_per_user == 0 || args.window == 0 {
        return Err("--users, --sessions-per-user and --window must be at least 1".into());
    }
    let plan = Arc::new(Plan {
        mode: args.mode,
        users: args.users.into(),
        sessions: u64::from(args.users) * u64::from(args.sessions_per_user),
        interims: args.interims.into(),
        prefix: args.user_prefix.clone(),
        password: args.password.clone().into_bytes(),
        secret: args.secret.clone().into_bytes(),
        nas_ip: args.nas_ip,
        targets,
    });
    let start = Instant::now();
    let limit = match (args.requests, args.duration) {
        (Some(n), _) => Some(n),
        (None, None) => Some(10_000),
        (None, Some(_)) => None,
    };
    let deadline = args
        .duration
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be a number of requests per second, 0 for unpaced".into());
    }
    let source = Arc::new(Mutex::new(Source {
        next: 0,
        limit,
        deadline,
        pace: (args.rate > 0.0).then_some((start, args.rate)),
    }));
    let sockets = args.window.div_ceil(MAX_PER_SOCKET);
    let bind: SocketAddr = if targets.auth.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let handles: Vec<_> = (0..sockets)
        .map(|i| {
            let share = args.window / sockets + usize::from(i < args.window % sockets);
            let cfg = PipelineConfig {
                window: share,
                timeout: Duration::from_millis(args.timeout_ms),
                retries: args.retries,
            };
            let (plan, source) = (plan.clone(), source.clone());
            std::thread::spawn(move || worker(plan, source, cfg, bind))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        total.merge(
            h.join()
                .map_err(|_| "worker thread panicked".to_string())??,
        );
    }
    Ok(report(args.mode, total, start.elapsed()))
}

fn print_human(r: &Report) {
    println!("mode            {}", r.mode);
    println!("total           {}", r.total);
    println!("answered        {}", r.answered);
    println!("lost            {}", r.lost);
    println!("errors          {}", r.errors);
    println!("retransmissions {}", r.retransmissions);
    println!("bad replies     {}", r.bad_replies);
    println!("elapsed         {:.3} s", r.elapsed_s);
    println!("requests/s      {:.0}", r.requests_per_s);
    println!(
        "latency ms      p50 {:.3}  p99 {:.3}  max {:.3}",
        r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.max
    );
    for (code, n) in &r.codes {
        println!("  {code:<22}{n}");
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    match run(args) {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            } else {
                print_human(&r);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rlm-rust-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: Mode, users: u64, sessions: u64, interims: u64) -> Plan {
        let t: SocketAddr = "127.0.0.1:1".parse().unwrap();
        Plan {
            mode,
            users,
            sessions,
            interims,
            prefix: "u".into(),
            password: b"pw".to_vec(),
            secret: b"s".to_vec(),
            nas_ip: Ipv4Addr::LOCALHOST,
            targets: Targets { auth: t, acct: t },
        }
    }

    #[test]
    fn acct_rounds() {
        let p = plan(Mode::Acct, 2, 2, 1);
        let steps: Vec<_> = (0..9).map(|n| p.locate(n)).collect();
        assert_eq!(
            steps,
            vec![
                (0, 0, Step::Start),
                (0, 1, Step::Start),
                (0, 0, Step::Interim(1)),
                (0, 1, Step::Interim(1)),
                (0, 0, Step::Stop),
                (0, 1, Step::Stop),
                (1, 0, Step::Start),
                (1, 1, Step::Start),
                (1, 0, Step::Interim(1)),
            ]
        );
    }

    #[test]
    fn mixed_and_auth_rounds() {
        let p = plan(Mode::Mixed, 1, 1, 0);
        let steps: Vec<_> = (0..4).map(|n| p.locate(n).2).collect();
        assert_eq!(steps, vec![Step::Auth, Step::Start, Step::Stop, Step::Auth]);
        let p = plan(Mode::Auth, 3, 3, 5);
        assert!((0..10).all(|n| p.locate(n).2 == Step::Auth));
    }

    #[test]
    fn pacing_table() {
        let t0 = Instant::now();
        for (rate, n, want_ms) in [
            (1000.0, 0, Some(0)),
            (1000.0, 1500, Some(1500)),
            (200.0, 3, Some(15)),
            (0.0, 5, None),
            (-1.0, 5, None),
            (f64::NAN, 5, None),
        ] {
            let got = paced_at(t0, rate, n).map(|t| (t - t0).as_millis() as u64);
            assert_eq!(got, want_ms, "rate {rate} n {n}");
        }
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn loopback_table() {
        for (a, want) in [
            ("127.0.0.1:1813", true),
            ("127.9.9.9:1", true),
            ("[::1]:1", true),
            ("[::ffff:127.0.0.1]:1", true),
            ("192.0.2.1:1813", false),
            ("192.0.2.1:1", false),
            ("[2001:db8::1]:1", false),
        ] {
            assert_eq!(is_loopback(&a.parse().unwrap()), want, "{a}");
        }
    }

    #[test]
    fn stop_carries_counters_with_gigawords() {
        let p = plan(Mode::Acct, 1, 1, 20);
        // Step 21 of the first session is its Stop (tick 21).
        let ex = p.exchange(21, 1).unwrap();
        let pk = &ex.packet;
        assert_eq!(
            pk.integer(attrs::ACCT_STATUS_TYPE),
            Some(attrs::ACCT_STATUS_STOP)
        );
        let out = u64::from(pk.integer(attrs::ACCT_OUTPUT_GIGAWORDS).unwrap()) << 32
            | u64::from(pk.integer(attrs::ACCT_OUTPUT_OCTETS).unwrap());
        assert_eq!(out, 21 * 400_000_000);
        assert!(pk.integer(attrs::ACCT_OUTPUT_GIGAWORDS).unwrap() > 0);
    }
}
