//! Month-boundary disconnect benchmark (not a test): 10 NAS doubles on 127.0.0.2..11,
//! each with 20 ms added latency per reply, 10,000 sessions that started last month.
//!
//! 1. bulk path: one login per NAS, print, remove (NASes in parallel);
//! 2. queue path, RFC 5176: the sessions' Interims queue 10,000 jobs through the store's
//!    writer (group commit), then the worker sends the Disconnect-Requests (ACK);
//! 3. queue path, API fallback: the NASes' RFC 5176 targets are silent, the worker
//!    probes each, then removes the sessions over the RouterOS API;
//! 4. the same with one NAS whose RouterOS API accepts the connection and never
//!    answers: how long the other NASes' jobs take, and when that NAS's jobs are given
//!    back to the queue (its API timeout is the schema default, 5 s).
//!
//! `cargo run --release --bin rlm-rust-bench-disconnect [-- --nases 10 --sessions 10000 --latency-ms 20]`
//! prints a markdown table.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rlm_rust::bulk::{self, BulkOptions};
use rlm_rust::disconnect::{ClientSecrets, QueueWorker, WorkerConfig};
use rlm_rust::periods;
use rlm_rust::radius::double::{Answer, NasDouble};
use rlm_rust::routeros::double::{DoubleConfig, Faults, RouterOsDouble};
use rlm_rust::routeros::SessionTable;
use rlm_rust::sessions::{AcctStatus, AcctUpdate};
use rlm_rust::store::{Admin, JobState, NasConfig, Reader, Store, StoreOptions, Synchronous};

const SECRET: &str = "bench-secret";

/// A scratch directory removed on drop (tempfile is only a dev-dependency).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Result<Scratch, String> {
        let p = std::env::temp_dir().join(format!(
            "rlm-rust-bench-{tag}-{}-{}",
            std::process::id(),
            periods::now()
        ));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Scratch(p))
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Args {
    nases: usize,
    sessions: usize,
    latency: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        nases: 10,
        sessions: 10_000,
        latency: Duration::from_millis(20),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--nases" => a.nases = value()?.clamp(1, 250) as usize,
            "--sessions" => a.sessions = value()?.max(1) as usize,
            "--latency-ms" => a.latency = Duration::from_millis(value()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

fn ip(k: usize) -> String {
    format!("127.0.0.{}", k + 2)
}

fn user(nas: usize, i: usize) -> String {
    format!("u{nas}-{i}")
}

fn address(nas: usize, i: usize) -> String {
    format!("100.{}.{}.{}", 64 + nas, i / 250, i % 250 + 1)
}

/// One RouterOS double per NAS with its share of last month's sessions (80 % PPP,
/// 20 % Hotspot) and a few of this month that must stay. The first `silent` of them
/// never answer.
fn routers(a: &Args, silent: usize) -> Vec<RouterOsDouble> {
    (0..a.nases)
        .map(|k| {
            let bind: SocketAddr = format!("{}:0", ip(k)).parse().expect("address");
            let faults = Faults {
                latency: a.latency,
                silent: k < silent,
                ..Default::default()
            };
            let r = RouterOsDouble::start_on(
                bind,
                DoubleConfig {
                    faults,
                    ..Default::default()
                },
            )
            .expect("start RouterOS double");
            for i in (k..a.sessions).step_by(a.nases) {
                let table = if i % 5 == 0 {
                    SessionTable::Hotspot
                } else {
                    SessionTable::Ppp
                };
                r.add_session(table, &user(k, i), &address(k, i), "5w2d03:04:05");
            }
            for i in 0..5 {
                r.add_session(
                    SessionTable::Ppp,
                    &format!("new{k}-{i}"),
                    "100.127.0.1",
                    "5s",
                );
            }
            r
        })
        .collect()
}

/// A NAS row; a silent router keeps the schema's default API timeout (5 s).
fn nas_row(k: usize, r: &RouterOsDouble, dm: Option<SocketAddr>, silent: bool) -> NasConfig {
    let mut n = NasConfig::new(ip(k));
    n.name = Some(format!("nas{k}"));
    n.api_host = Some(r.addr().ip().to_string());
    n.api_port = r.port();
    n.api_user = Some("admin".into());
    n.api_password = Some("secret".into());
    if !silent {
        n.api_timeout_ms = 10_000;
    }
    if let Some(dm) = dm {
        n.coa_host = Some(dm.ip().to_string());
        n.coa_port = dm.port();
        n.secret = Some(SECRET.into());
    }
    n
}

fn left(routers: &[RouterOsDouble]) -> usize {
    routers
        .iter()
        .map(|r| r.ids(SessionTable::Ppp).len() + r.ids(SessionTable::Hotspot).len())
        .sum()
}

/// API commands the routers read (prints, removes; logins excluded).
fn api_commands(routers: &[RouterOsDouble]) -> (u64, u64) {
    routers.iter().fold((0, 0), |(p, r), d| {
        let c = d.counters();
        (p + c.prints, r + c.remove_commands)
    })
}

struct Row {
    path: &'static str,
    work: String,
    latency: String,
    secs: f64,
    result: String,
}

fn bench_bulk(a: &Args) -> Result<Row, String> {
    let dir = Scratch::new("bulk")?;
    let admin = Admin::open(dir.path().join("b.sqlite")).map_err(|e| e.to_string())?;
    let routers = routers(a, 0);
    let now = periods::now();
    let nases: Vec<NasConfig> = routers
        .iter()
        .enumerate()
        .map(|(k, r)| nas_row(k, r, None, false))
        .collect();
    for n in &nases {
        admin.nas_upsert(n, now).map_err(|e| e.to_string())?;
    }
    let opts = BulkOptions {
        now,
        boundary: periods::month_start(now, chrono_tz::UTC),
        dry_run: false,
        parallel: 32,
    };
    let t0 = Instant::now();
    let results = bulk::run(&nases, &opts, None, &|_| {});
    bulk::record(&admin, &results, now, periods::now()).map_err(|e| e.to_string())?;
    let secs = t0.elapsed().as_secs_f64();
    let removed: usize = results.iter().map(|r| r.removed).sum();
    let commands: usize = results.iter().map(|r| r.commands).sum();
    let errors = results.iter().filter(|r| r.is_failure()).count();
    Ok(Row {
        path: "bulk (RouterOS API, NASes in parallel)",
        work: format!("{} NASes, {} sessions", a.nases, a.sessions),
        latency: format!("API {} ms", a.latency.as_millis()),
        secs,
        result: format!(
            "{removed} removed in {commands} commands, {} kept, {errors} NAS errors",
            left(&routers)
        ),
    })
}

/// Queues one job per session through the accounting path: an Interim of a session
/// that started last month, recorded by the store (writer thread, group commit).
fn queue_jobs(store: &Store, a: &Args) -> Result<Duration, String> {
    let now = periods::now();
    let month_start = periods::month_start(now, chrono_tz::UTC);
    let uptime = u32::try_from(now - month_start + 86_400).unwrap_or(u32::MAX);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let threads = 32;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<(), String> {
                    for i in (t..a.sessions).step_by(threads) {
                        let k = i % a.nases;
                        let u = AcctUpdate {
                            status: AcctStatus::Interim,
                            nas_ip: ip(k),
                            session_id: format!("s{i}"),
                            unique_id: None,
                            username: user(k, i),
                            input_octets: 1000,
                            output_octets: 1000,
                            gigawords: false,
                            session_time: Some(uptime),
                            framed_ip: Some(address(k, i)),
                            calling_station_id: None,
                            nas_port: None,
                            terminate_cause: None,
                            event_time: now,
                        };
                        let o = store.record(u).map_err(|e| e.to_string())?;
                        if !o.disconnect_queued {
                            return Err(format!("session s{i}: no job queued"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_string())?)
    })?;
    Ok(t0.elapsed())
}

/// What the NASes of a queue bench do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Disconnect-ACK for every request.
    Ack,
    /// RFC 5176 silent, RouterOS API answers.
    ApiFallback,
    /// As ApiFallback, but the first NAS's API never answers either.
    OneApiSilent,
}

fn bench_queue(a: &Args, scenario: Scenario) -> Result<(Row, Duration), String> {
    let dir = Scratch::new("queue")?;
    let db = dir.path().join("q.sqlite");
    let store = Store::open(
        &db,
        StoreOptions {
            month_boundary_disconnect: true,
            synchronous: Synchronous::Full,
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let admin = Admin::open(&db).map_err(|e| e.to_string())?;
    let silent_apis = usize::from(scenario == Scenario::OneApiSilent);
    let routers = routers(a, silent_apis);
    let answer = match scenario {
        Scenario::Ack => Answer::Ack,
        _ => Answer::Silent,
    };
    let mut doubles = Vec::new();
    for (k, r) in routers.iter().enumerate() {
        let bind: SocketAddr = format!("{}:0", ip(k)).parse().expect("address");
        let d = NasDouble::start(bind, SECRET.as_bytes(), answer).map_err(|e| e.to_string())?;
        d.set_latency(a.latency);
        admin
            .nas_upsert(
                &nas_row(k, r, Some(d.addr()), k < silent_apis),
                periods::now(),
            )
            .map_err(|e| e.to_string())?;
        doubles.push(d);
    }
    let enqueue = queue_jobs(&store, a)?;
    let silent_jobs = (0..a.sessions)
        .filter(|i| i % a.nases < silent_apis)
        .count();
    let cfg = WorkerConfig {
        dm_timeout: Duration::from_secs(1),
        dm_retries: 0,
        batch: 1000,
        ..WorkerConfig::new(&db)
    };
    let mut worker = QueueWorker::new(
        cfg,
        ClientSecrets::default(),
        Arc::new(AtomicBool::new(false)),
    );
    // When the answering NASes' jobs are all done, seen from another connection.
    let others = a.sessions - silent_jobs;
    let finished = AtomicBool::new(false);
    let t0 = Instant::now();
    let (r, others_done) = std::thread::scope(|s| {
        let watch = s.spawn(|| -> Option<Duration> {
            let reader = Reader::open(&db).ok()?;
            loop {
                let done = reader.queue_list(Some(JobState::Done)).ok()?.len();
                if done >= others {
                    return Some(t0.elapsed());
                }
                if finished.load(std::sync::atomic::Ordering::SeqCst) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = worker.run_at(periods::now());
        finished.store(true, std::sync::atomic::Ordering::SeqCst);
        (r, watch.join().ok().flatten())
    });
    let r = r?;
    let secs = t0.elapsed().as_secs_f64();
    let requests: usize = doubles.iter().map(|d| d.requests().len()).sum();
    let (prints, removes) = api_commands(&routers);
    let api = format!("{prints} prints, {removes} removes");
    let dm_latency = format!("DM {} ms", a.latency.as_millis());
    let (path, latency, result) = match scenario {
        Scenario::Ack => (
            "queue: Disconnect-Request, ACK",
            dm_latency,
            format!(
                "{} done by DM ({requests} requests), {} retry",
                r.done_dm, r.retry
            ),
        ),
        Scenario::ApiFallback => (
            "queue: DM silent, RouterOS API fallback",
            format!("DM silent, API {} ms", a.latency.as_millis()),
            format!(
                "{} done by API ({requests} DM probes; {api}), {} retry, {} sessions left",
                r.done_api,
                r.retry,
                left(&routers)
            ),
        ),
        Scenario::OneApiSilent => (
            "queue: DM silent, API fallback, 1 NAS's API silent too",
            format!(
                "DM silent, API {} ms; 1 NAS's API silent (5 s timeout)",
                a.latency.as_millis()
            ),
            format!(
                "the other NASes' {others} jobs done after {}; {} done by API, {} retry \
                 ({api})",
                others_done.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64())),
                r.done_api,
                r.retry
            ),
        ),
    };
    Ok((
        Row {
            path,
            work: format!("{} jobs over {} NASes", r.due, a.nases),
            latency,
            secs,
            result,
        },
        enqueue,
    ))
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rlm-rust-bench-disconnect: {e}");
            std::process::exit(2);
        }
    };
    let run = || -> Result<(Vec<Row>, Duration), String> {
        let bulk = bench_bulk(&a)?;
        let (dm, enqueue) = bench_queue(&a, Scenario::Ack)?;
        let (api, _) = bench_queue(&a, Scenario::ApiFallback)?;
        let (one_silent, _) = bench_queue(&a, Scenario::OneApiSilent)?;
        Ok((vec![bulk, dm, api, one_silent], enqueue))
    };
    match run() {
        Ok((rows, enqueue)) => {
            println!(
                "{} NASes, {} sessions, {} ms added latency per reply\n",
                a.nases,
                a.sessions,
                a.latency.as_millis()
            );
            println!("| path | work | NAS latency | seconds | result |");
            println!("| --- | --- | --- | --- | --- |");
            for r in rows {
                println!(
                    "| {} | {} | {} | {:.2} | {} |",
                    r.path, r.work, r.latency, r.secs, r.result
                );
            }
            println!(
                "\nQueueing the {} jobs through the accounting path (32 threads, group \
                 commit, synchronous=full) took {:.2} s.",
                a.sessions,
                enqueue.as_secs_f64()
            );
        }
        Err(e) => {
            eprintln!("rlm-rust-bench-disconnect: {e}");
            std::process::exit(1);
        }
    }
}
