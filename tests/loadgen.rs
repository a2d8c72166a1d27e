//! Smoke tests of the rlm-rust-loadgen binary against an in-test RADIUS responder
//! on 127.0.0.1 (our own codec answering with correct authenticators).

use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rlm_rust::radius::attrs::{self, Attribute};
use rlm_rust::radius::packet::verify_request;
use rlm_rust::radius::{Code, Packet};
use serde_json::Value;

const SECRET: &str = "loadgen-secret";

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Answer,
    /// Ignore the first transmission of every request, answer retransmissions.
    DropFirst,
    Silent,
}

#[derive(Debug, Default)]
struct Seen {
    valid: u64,
    invalid: u64,
    dropped: u64,
    acct_status: BTreeMap<u32, u64>,
    sessions: HashSet<String>,
    access_with_ma: u64,
    good_passwords: u64,
}

struct Responder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Seen>,
}

impl Responder {
    fn start(behaviour: Behaviour, password: &'static str) -> Responder {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut first_seen = HashSet::new();
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let raw = &buf[..n];
                let ma = match verify_request(raw, SECRET.as_bytes()) {
                    Ok(ma) => ma,
                    Err(_) => {
                        seen.invalid += 1;
                        continue;
                    }
                };
                let req = Packet::decode(raw).unwrap();
                seen.valid += 1;
                let fresh = first_seen.insert((from, req.identifier, req.authenticator));
                if behaviour == Behaviour::Silent || (behaviour == Behaviour::DropFirst && fresh) {
                    seen.dropped += 1;
                    continue;
                }
                let reply = match req.code {
                    Code::AccountingRequest => {
                        let st = req.integer(attrs::ACCT_STATUS_TYPE).unwrap();
                        *seen.acct_status.entry(st).or_default() += 1;
                        seen.sessions
                            .insert(req.text(attrs::ACCT_SESSION_ID).unwrap());
                        Packet::reply_to(&req, Code::AccountingResponse)
                    }
                    Code::AccessRequest => {
                        seen.access_with_ma += u64::from(ma);
                        let pw = req.user_password(SECRET.as_bytes()).unwrap().unwrap();
                        if pw == password.as_bytes() {
                            seen.good_passwords += 1;
                            let mut r = Packet::reply_to(&req, Code::AccessAccept);
                            r.add_message_authenticator();
                            r.add(Attribute::integer(attrs::SESSION_TIMEOUT, 3600));
                            r
                        } else {
                            Packet::reply_to(&req, Code::AccessReject)
                        }
                    }
                    _ => continue,
                };
                let bytes = reply
                    .encode_reply(&req.authenticator, SECRET.as_bytes())
                    .unwrap();
                sock.send_to(&bytes, from).unwrap();
            }
            seen
        });
        Responder { addr, stop, handle }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

fn loadgen(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rlm-rust-loadgen"))
        .args(["--secret", SECRET, "--json"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr)
}

#[test]
fn acct_sequences_all_answered() {
    let r = Responder::start(Behaviour::Answer, "");
    let server = r.addr.to_string();
    let (code, v, err) = loadgen(&[
        "--server",
        &server,
        "--mode",
        "acct",
        "--requests",
        "2000",
        "--window",
        "64",
        "--users",
        "50",
        "--interims",
        "1",
        "--timeout-ms",
        "2000",
    ]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["total"], 2000, "{v}");
    assert_eq!(v["answered"], 2000);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["retransmissions"], 0);
    assert_eq!(v["codes"]["Accounting-Response"], 2000);
    assert!(v["latency_ms"]["max"].as_f64().unwrap() >= v["latency_ms"]["p50"].as_f64().unwrap());
    assert_eq!(seen.valid, 2000);
    assert_eq!(seen.invalid, 0);
    // 50 sessions x (Start, Interim, Stop) = 150 per generation; 2000 = 13 full
    // generations + 50 Starts.
    let want: BTreeMap<u32, u64> = [(1, 700), (3, 650), (2, 650)].into_iter().collect();
    assert_eq!(seen.acct_status, want);
    assert_eq!(seen.sessions.len(), 14 * 50);
}

#[test]
fn dropped_first_attempts_are_retransmitted_and_counted() {
    let r = Responder::start(Behaviour::DropFirst, "");
    let server = r.addr.to_string();
    // Window 300 needs two sockets (256 identifiers each).
    let (code, v, err) = loadgen(&[
        "--server",
        &server,
        "--requests",
        "300",
        "--window",
        "300",
        "--users",
        "100",
        // Long enough that a retransmission is never lost to a slow (shared,
        // debug-build) responder: at 150 ms a loaded CI machine lost some.
        "--timeout-ms",
        "600",
        "--retries",
        "2",
    ]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["answered"], 300, "{v}");
    assert_eq!(v["lost"], 0);
    // Every first transmission is dropped on purpose; a slow (shared, debug-build)
    // responder may cause a few more retransmissions, never fewer.
    let retrans = v["retransmissions"].as_u64().unwrap();
    assert!(retrans >= 300, "{v}");
    assert_eq!(seen.dropped, 300);
    assert!(
        seen.valid >= 600 && seen.valid <= 300 + retrans,
        "{seen:?} {v}"
    );
}

#[test]
fn silence_is_counted_as_lost() {
    let r = Responder::start(Behaviour::Silent, "");
    let server = r.addr.to_string();
    let (code, v, err) = loadgen(&[
        "--server",
        &server,
        "--requests",
        "20",
        "--timeout-ms",
        "50",
        "--retries",
        "1",
    ]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["total"], 20, "{v}");
    assert_eq!(v["answered"], 0);
    assert_eq!(v["lost"], 20);
    assert_eq!(v["retransmissions"], 20);
    assert_eq!(seen.valid, 40);
}

#[test]
fn auth_mode_sends_pap_with_message_authenticator() {
    let r = Responder::start(Behaviour::Answer, "s3cr3t-pw");
    let server = r.addr.to_string();
    let (code, v, err) = loadgen(&[
        "--server",
        &server,
        "--mode",
        "auth",
        "--requests",
        "200",
        "--password",
        "s3cr3t-pw",
    ]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["codes"]["Access-Accept"], 200, "{v}");
    assert_eq!(seen.good_passwords, 200);
    assert_eq!(seen.access_with_ma, 200);

    let r = Responder::start(Behaviour::Answer, "other");
    let server = r.addr.to_string();
    let (_, v, _) = loadgen(&["--server", &server, "--mode", "auth", "--requests", "10"]);
    r.finish();
    assert_eq!(v["codes"]["Access-Reject"], 10, "{v}");
}

#[test]
fn mixed_mode_uses_both_ports() {
    let auth = Responder::start(Behaviour::Answer, "loadgen");
    let acct = Responder::start(Behaviour::Answer, "");
    let (a, b) = (auth.addr.to_string(), acct.addr.to_string());
    let (code, v, err) = loadgen(&[
        "--server",
        &a,
        "--acct-server",
        &b,
        "--mode",
        "mixed",
        "--requests",
        "400",
        "--users",
        "20",
        "--interims",
        "2",
    ]);
    let (sa, sb) = (auth.finish(), acct.finish());
    assert_eq!(code, 0, "{err}");
    // 20 sessions x (Auth, Start, 2 Interims, Stop) = 100 per generation.
    assert_eq!(v["codes"]["Access-Accept"], 80, "{v}");
    assert_eq!(v["codes"]["Accounting-Response"], 320);
    assert_eq!(sa.good_passwords, 80, "{v}");
    assert_eq!(sb.valid, 320, "{v}");
}

#[test]
fn duration_mode_stops_by_itself() {
    let r = Responder::start(Behaviour::Answer, "");
    let server = r.addr.to_string();
    let (code, v, err) = loadgen(&["--server", &server, "--duration", "0.3", "--window", "8"]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    let total = v["total"].as_u64().unwrap();
    assert!(total > 0, "{v}");
    assert_eq!(v["answered"].as_u64().unwrap(), total);
    assert_eq!(seen.valid, total);
}

#[test]
fn non_loopback_destination_is_refused() {
    for extra in [
        &["--server", "192.0.2.1:1813"][..],
        &[
            "--server",
            "127.0.0.1:1812",
            "--mode",
            "mixed",
            "--acct-server",
            "198.51.100.1:1813",
        ],
    ] {
        let (code, v, err) = loadgen(extra);
        assert_eq!(code, 2, "{extra:?}");
        assert_eq!(v, Value::Null);
        assert!(err.contains("non-loopback"), "{err}");
    }
}

#[test]
fn rate_paces_requests() {
    let r = Responder::start(Behaviour::Answer, "");
    let server = r.addr.to_string();
    // 60 requests at 200/s cannot finish before request 59's slot at 295 ms.
    let (code, v, err) = loadgen(&["--server", &server, "--requests", "60", "--rate", "200"]);
    let seen = r.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["answered"], 60, "{v}");
    assert!(v["elapsed_s"].as_f64().unwrap() >= 0.29, "{v}");
    assert_eq!(seen.valid, 60);
    let (code, _, err) = loadgen(&["--server", &server, "--rate=-3"]);
    assert_eq!(code, 2);
    assert!(err.contains("--rate"), "{err}");
}
