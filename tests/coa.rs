//! RFC 5176 client against a NAS double played by pyrad (tests/python/pyrad_nas.py),
//! an independent RADIUS implementation that checks our authenticators.
//! Skipped (with a message) only when python3 or pyrad is missing.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use rlm_rust::coa::{
    send_coa, send_disconnect, CoaError, DisconnectRequest, DmClient, DmOutcome, Job,
};
use rlm_rust::radius::attrs::{self, Attribute};
use rlm_rust::radius::client::PipelineConfig;
use serde_json::Value;

const SECRET: &[u8] = b"nas-secret";

struct Nas {
    child: Child,
    _stdin: ChildStdin,
    lines: Receiver<Value>,
    addr: SocketAddr,
}

impl Nas {
    /// Starts the double on `ip`; None (after printing why) if pyrad is unavailable.
    fn start(ip: &str, extra: &[&str]) -> Option<Nas> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/pyrad_nas.py");
        let mut child = match Command::new("python3")
            .arg(script)
            .args([
                "--bind",
                ip,
                "--secret",
                std::str::from_utf8(SECRET).unwrap(),
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!(
                    "SKIP: cannot run python3 ({e}); install python3 and `pip install pyrad`"
                );
                return None;
            }
        };
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line).expect("NAS prints JSON lines");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("NAS double did not start");
        if first.get("error").is_some() {
            eprintln!("SKIP: pyrad is not installed (`pip install pyrad`): {first}");
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        let port = first["port"].as_u64().expect("port line") as u16;
        Some(Nas {
            child,
            _stdin: stdin,
            lines: rx,
            addr: SocketAddr::new(ip.parse().unwrap(), port),
        })
    }

    /// Records received so far, waiting until `quiet` passes without a new one.
    fn records(&self, quiet: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(v) = self.lines.recv_timeout(quiet) {
            out.push(v);
        }
        out
    }
}

impl Drop for Nas {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn user_records<'a>(recs: &'a [Value], user: &str) -> Vec<&'a Value> {
    recs.iter()
        .filter(|r| r["attrs"]["User-Name"][0] == user)
        .collect()
}

fn dm(user: &str) -> DisconnectRequest {
    DisconnectRequest {
        user_name: user.into(),
        acct_session_id: Some(format!("sess-{user}")),
        framed_ip: Some(Ipv4Addr::new(100, 64, 30, 40)),
        nas_ip: Some(Ipv4Addr::new(192, 0, 2, 7)),
        extra: vec![],
    }
}

const SHORT: Duration = Duration::from_millis(200);

#[test]
fn disconnect_ack_carries_identification_and_verifies_at_nas() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let out = send_disconnect(
        nas.addr,
        SECRET,
        &dm("ack-alice"),
        2,
        Duration::from_secs(2),
    );
    assert_eq!(out.unwrap(), DmOutcome::Ack);
    let recs = nas.records(SHORT);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!(r["code"], 40);
    assert_eq!(
        r["auth_ok"], true,
        "pyrad rejected our Request Authenticator"
    );
    assert_eq!(r["ma_present"], true);
    assert_eq!(r["ma_ok"], true, "pyrad rejected our Message-Authenticator");
    let a = &r["attrs"];
    assert_eq!(a["User-Name"][0], "ack-alice");
    assert_eq!(a["Acct-Session-Id"][0], "sess-ack-alice");
    assert_eq!(a["Framed-IP-Address"][0], "100.64.30.40");
    assert_eq!(a["NAS-IP-Address"][0], "192.0.2.7");
    let ts = a["Event-Timestamp"][0].as_i64().expect("Event-Timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - ts).abs() < 60, "Event-Timestamp {ts} vs now {now}");
}

#[test]
fn disconnect_nak_reports_error_cause() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let cases = [
        ("nak-503-x", Some(503)),
        ("nak-401-x", Some(401)),
        ("nak-none-x", None),
    ];
    for (user, cause) in cases {
        let out = send_disconnect(nas.addr, SECRET, &dm(user), 1, Duration::from_secs(2));
        assert_eq!(
            out.unwrap(),
            DmOutcome::Nak { error_cause: cause },
            "{user}"
        );
    }
    let recs = nas.records(SHORT);
    assert!(recs.iter().all(|r| r["auth_ok"] == true), "{recs:?}");
}

#[test]
fn silence_times_out_after_retries_with_identical_retransmissions() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let start = Instant::now();
    let err = send_disconnect(nas.addr, SECRET, &dm("silent-1"), 2, SHORT).unwrap_err();
    let took = start.elapsed();
    match err {
        CoaError::Timeout {
            attempts,
            bad_replies,
        } => {
            assert_eq!(attempts, 3);
            assert_eq!(bad_replies, 0);
        }
        e => panic!("expected timeout, got {e:?}"),
    }
    assert!(took >= SHORT * 3, "gave up after {took:?}");
    let recs = nas.records(SHORT);
    assert_eq!(recs.len(), 3, "{recs:?}");
    let transmissions: Vec<i64> = recs
        .iter()
        .map(|r| r["transmission"].as_i64().unwrap())
        .collect();
    // Same identifier and authenticator each time: the NAS sees duplicates.
    assert_eq!(transmissions, vec![1, 2, 3]);
}

#[test]
fn wrong_secret_reply_fails_verification_and_times_out() {
    let Some(nas) = Nas::start("127.0.0.1", &["--reply-on-bad-auth"]) else {
        return;
    };
    let err = send_disconnect(nas.addr, b"not-the-secret", &dm("ack-bob"), 1, SHORT).unwrap_err();
    match err {
        CoaError::Timeout {
            attempts,
            bad_replies,
        } => {
            assert_eq!(attempts, 2);
            assert_eq!(bad_replies, 2, "both replies should fail verification");
        }
        e => panic!("expected timeout, got {e:?}"),
    }
    let recs = nas.records(SHORT);
    assert!(!recs.is_empty());
    assert!(recs.iter().all(|r| r["auth_ok"] == false), "{recs:?}");
}

#[test]
fn retransmission_gets_the_answer() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let out = send_disconnect(nas.addr, SECRET, &dm("drop1-carol"), 2, SHORT);
    assert_eq!(out.unwrap(), DmOutcome::Ack);
    assert_eq!(nas.records(SHORT).len(), 2);
}

#[test]
fn forged_reply_is_ignored_and_real_one_accepted() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let out = send_disconnect(
        nas.addr,
        SECRET,
        &dm("forged-dave"),
        0,
        Duration::from_secs(2),
    );
    assert_eq!(out.unwrap(), DmOutcome::Ack);
}

/// A client that sends each request once and waits 2 s for its reply.
fn one_try_client() -> DmClient {
    DmClient::new(PipelineConfig {
        window: 8,
        timeout: Duration::from_secs(2),
        retries: 0,
    })
    .unwrap()
}

/// Replies that must not complete a request: correctly signed by the NAS, but for
/// another identifier, or from another address than the one asked (a NAS behind NAT,
/// or a spoofer); or late, after the request gave up.
#[test]
fn replies_for_another_id_from_another_address_or_late_are_ignored() {
    let Some(nas) = Nas::start("127.0.0.2", &["--alt-bind", "127.0.0.3"]) else {
        return;
    };
    for user in ["wrongid-eve", "othersrc-eve", "late-600-eve"] {
        let err = send_disconnect(nas.addr, SECRET, &dm(user), 1, SHORT).unwrap_err();
        assert!(
            matches!(err, CoaError::Timeout { attempts: 2, .. }),
            "{user}: {err:?}"
        );
    }
    // The late replies arrive while the next requests wait: they complete nothing,
    // and the next exchanges still get their own answers.
    let mut client = one_try_client();
    let jobs: Vec<Job> = (0..4)
        .map(|i| Job::disconnect(nas.addr, SECRET, &dm(&format!("ok{i}-frank"))))
        .collect();
    for (i, r) in client.send_many(jobs).into_iter().enumerate() {
        assert_eq!(r.unwrap(), DmOutcome::Ack, "request {i}");
    }
}

#[test]
fn a_duplicated_reply_completes_its_request_once_and_disturbs_no_other() {
    let Some(nas) = Nas::start("127.0.0.2", &[]) else {
        return;
    };
    let mut client = one_try_client();
    let jobs: Vec<Job> = ["dup-a", "plain-b", "dup-c", "plain-d"]
        .iter()
        .map(|u| Job::disconnect(nas.addr, SECRET, &dm(u)))
        .collect();
    let results = client.send_many(jobs);
    assert_eq!(results.len(), 4);
    for r in results {
        assert_eq!(r.unwrap(), DmOutcome::Ack);
    }
    assert_eq!(
        nas.records(SHORT).len(),
        4,
        "no retransmissions were needed"
    );
}

#[test]
fn reply_of_the_wrong_kind_is_a_bad_response() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let err = send_disconnect(
        nas.addr,
        SECRET,
        &dm("wrongcode-x"),
        0,
        Duration::from_secs(2),
    )
    .unwrap_err();
    assert!(
        matches!(err, CoaError::BadResponse(ref m) if m.contains("CoA-ACK")),
        "{err:?}"
    );
}

#[test]
fn coa_request_with_mikrotik_rate_limit() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let attributes = vec![
        Attribute::string(attrs::USER_NAME, "ack-erin"),
        Attribute::string(attrs::ACCT_SESSION_ID, "81a"),
        Attribute::vsa(attrs::VENDOR_MIKROTIK, attrs::MIKROTIK_RATE_LIMIT, b"1M/2M").unwrap(),
    ];
    let out = send_coa(
        nas.addr,
        SECRET,
        attributes.clone(),
        1,
        Duration::from_secs(2),
    );
    assert_eq!(out.unwrap(), DmOutcome::Ack);
    let mut nak_attrs = attributes;
    nak_attrs[0] = Attribute::string(attrs::USER_NAME, "nak-506-erin");
    let out = send_coa(nas.addr, SECRET, nak_attrs, 1, Duration::from_secs(2));
    assert_eq!(
        out.unwrap(),
        DmOutcome::Nak {
            error_cause: Some(506)
        }
    );
    let recs = nas.records(SHORT);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["code"], 43);
        assert_eq!(r["auth_ok"], true);
        assert_eq!(r["ma_ok"], true);
        assert_eq!(r["attrs"]["Mikrotik-Rate-Limit"][0], "1M/2M", "{r}");
    }
}

#[test]
fn service_coas_decode_at_an_independent_nas() {
    use rlm_rust::services::{coa_change, NasFamily, Service};
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let turbo = Service {
        name: "turbo".into(),
        timeout: 16_777_215,
        volume_mb: 300,
        rate_limit: Some("50M/50M".into()),
        nas_service: Some("turbo(50M)".into()),
        description: None,
    };
    let send = |user: &str, family: NasFamily, on: bool| {
        let mut a = vec![Attribute::string(attrs::USER_NAME, user)];
        a.extend(coa_change(family, &turbo, on, Some("2M/2M")).unwrap());
        send_coa(nas.addr, SECRET, a, 1, Duration::from_secs(2)).unwrap()
    };
    assert_eq!(send("ack-jun-on", NasFamily::Juniper, true), DmOutcome::Ack);
    assert_eq!(
        send("ack-jun-off", NasFamily::Juniper, false),
        DmOutcome::Ack
    );
    assert_eq!(send("ack-isg-on", NasFamily::Cisco, true), DmOutcome::Ack);
    assert_eq!(send("ack-isg-off", NasFamily::Cisco, false), DmOutcome::Ack);
    assert_eq!(
        send("ack-mt-off", NasFamily::Mikrotik, false),
        DmOutcome::Ack
    );
    let recs = nas.records(SHORT);
    let by = |u: &str| user_records(&recs, u)[0]["attrs"].clone();
    let on = by("ack-jun-on");
    assert_eq!(on["ERX-Service-Activate:1"][0], "turbo(50M)", "{on}");
    assert_eq!(on["ERX-Service-Timeout:1"][0], 16_777_215, "{on}");
    assert_eq!(on["ERX-Service-Volume:1"][0], 300, "{on}");
    assert_eq!(by("ack-jun-off")["ERX-Service-Deactivate"][0], "turbo(50M)");
    assert_eq!(
        by("ack-isg-on")["Cisco-Command-Code"][0],
        format!("0b{}", hex(b"turbo(50M)"))
    );
    assert_eq!(
        by("ack-isg-off")["Cisco-Command-Code"][0],
        format!("0c{}", hex(b"turbo(50M)"))
    );
    assert_eq!(by("ack-mt-off")["Mikrotik-Rate-Limit"][0], "2M/2M");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn send_many_pipelines_across_nases_and_keeps_order() {
    let Some(nas_a) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let Some(nas_b) = Nas::start("127.0.0.2", &[]) else {
        return;
    };
    let mut client = DmClient::new(PipelineConfig {
        // pyrad is slow (Python, shared CPU): a generous timeout keeps ACKs from
        // being retransmitted; 128 in flight keeps bursts inside its receive buffer.
        window: 128,
        timeout: Duration::from_millis(1000),
        retries: 1,
    })
    .unwrap();
    // More than 256 to one NAS exercises waiting for a free identifier.
    let mut jobs = Vec::new();
    let mut want = Vec::new();
    for i in 0..400 {
        let (nas, kind) = match i % 8 {
            0..=3 => (&nas_a, "ack"),
            4 => (&nas_a, "nak-503"),
            5 => (&nas_b, "ack"),
            6 => (&nas_b, "nak-none"),
            _ => (&nas_b, "silent"),
        };
        jobs.push(Job::disconnect(
            nas.addr,
            SECRET,
            &dm(&format!("{kind}-{i}")),
        ));
        want.push(kind);
    }
    let start = Instant::now();
    let results = client.send_many(jobs);
    let took = start.elapsed();
    assert_eq!(results.len(), 400);
    for (i, (r, kind)) in results.iter().zip(&want).enumerate() {
        let ok = matches!(
            (*kind, r),
            ("ack", Ok(DmOutcome::Ack))
                | (
                    "nak-503",
                    Ok(DmOutcome::Nak {
                        error_cause: Some(503)
                    })
                )
                | ("nak-none", Ok(DmOutcome::Nak { error_cause: None }))
                | ("silent", Err(CoaError::Timeout { attempts: 2, .. }))
        );
        assert!(ok, "job {i} ({kind}): {r:?}");
    }
    // 50 silent jobs one at a time would take 50 * 2 * 1 s = 100 s.
    assert!(took < Duration::from_secs(40), "not pipelined? {took:?}");
    let recs_a = nas_a.records(SHORT);
    let recs_b = nas_b.records(SHORT);
    assert_eq!(recs_a.len(), 250);
    assert!(recs_a
        .iter()
        .chain(&recs_b)
        .all(|r| r["auth_ok"] == true && r["ma_ok"] == true));
    assert_eq!(user_records(&recs_b, "silent-7").len(), 2);
}

#[test]
fn unsendable_target_is_an_io_error() {
    // Port 0 is refused by the kernel at sendto (EINVAL): nothing leaves the host.
    let mut client = DmClient::new(PipelineConfig::default()).unwrap();
    let target: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let r = client.send_one(Job::disconnect(target, SECRET, &dm("x")));
    assert!(matches!(r, Err(CoaError::Io(_))), "{r:?}");
    // An IPv4-only socket cannot reach an IPv6 NAS.
    let mut v4 = DmClient::bind("0.0.0.0:0".parse().unwrap(), PipelineConfig::default()).unwrap();
    let r = v4.send_one(Job::disconnect(
        "[::1]:9".parse().unwrap(),
        SECRET,
        &dm("x"),
    ));
    assert!(matches!(r, Err(CoaError::Io(_))), "{r:?}");
}

#[test]
fn dual_stack_client_reaches_ipv4_nas() {
    let Some(nas) = Nas::start("127.0.0.1", &[]) else {
        return;
    };
    let mut client = DmClient::new(PipelineConfig::default()).unwrap();
    let r = client.send_one(Job::disconnect(nas.addr, SECRET, &dm("ack-v6sock")));
    assert_eq!(
        r.unwrap(),
        DmOutcome::Ack,
        "local {:?}",
        client.local_addr()
    );
}
