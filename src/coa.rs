//! RFC 5176 Dynamic Authorization client: Disconnect-Request and CoA-Request to
//! NASes, many at once. Meant for the module's background thread, never for
//! server worker threads (it blocks for up to timeout * (retries + 1)).
//!
//! A reply only counts when its Identifier matches and its Response Authenticator
//! (and Message-Authenticator, if any) verify with the secret; other datagrams are
//! ignored, so a wrong secret shows up as [`CoaError::Timeout`] with
//! `bad_replies > 0`.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::debug;

use crate::radius::attrs::{self, describe_error_cause, Attribute};
use crate::radius::client::{run_pipeline, Exchange, ExchangeError, PipelineConfig, Reply};
use crate::radius::{Code, Packet};

/// What identifies the session to kill (RFC 5176 section 3: session identification
/// attributes). Set what is known; NASes differ in what they match on (MikroTik
/// matches User-Name / Acct-Session-Id / Framed-IP-Address).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DisconnectRequest {
    pub user_name: String,
    pub acct_session_id: Option<String>,
    pub framed_ip: Option<Ipv4Addr>,
    pub nas_ip: Option<Ipv4Addr>,
    /// Further attributes to include as given (e.g. Calling-Station-Id, VSAs).
    pub extra: Vec<Attribute>,
}

/// The NAS's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmOutcome {
    /// Disconnect-ACK / CoA-ACK.
    Ack,
    /// Disconnect-NAK / CoA-NAK, with its Error-Cause if it sent one.
    Nak { error_cause: Option<u32> },
}

impl std::fmt::Display for DmOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DmOutcome::Ack => f.write_str("ACK"),
            DmOutcome::Nak { error_cause: None } => f.write_str("NAK"),
            DmOutcome::Nak {
                error_cause: Some(c),
            } => write!(f, "NAK ({})", describe_error_cause(*c)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoaError {
    /// No verified reply after all attempts.
    #[error("no valid reply after {attempts} attempts{}", bad_note(*bad_replies))]
    Timeout { attempts: u32, bad_replies: u32 },
    /// The request could not be sent (no route, wrong address family, ...).
    #[error("cannot send: {0}")]
    Io(#[from] io::Error),
    /// A verified reply that is not an answer to this kind of request, or a
    /// request that could not be encoded.
    #[error("bad response: {0}")]
    BadResponse(String),
}

fn bad_note(bad: u32) -> String {
    if bad == 0 {
        String::new()
    } else {
        format!(" ({bad} replies failed authenticator checks: wrong secret?)")
    }
}

/// One request for [`DmClient::send_many`].
#[derive(Debug, Clone)]
pub struct Job {
    pub target: SocketAddr,
    pub secret: Vec<u8>,
    /// `Code::DisconnectRequest` or `Code::CoaRequest`.
    pub code: Code,
    pub attributes: Vec<Attribute>,
}

impl Job {
    pub fn disconnect(target: SocketAddr, secret: &[u8], req: &DisconnectRequest) -> Job {
        Job {
            target,
            secret: secret.to_vec(),
            code: Code::DisconnectRequest,
            attributes: disconnect_attributes(req),
        }
    }

    /// A CoA-Request carrying `attributes` (session identification plus the
    /// changes, e.g. a Mikrotik-Rate-Limit VSA).
    pub fn coa(target: SocketAddr, secret: &[u8], attributes: Vec<Attribute>) -> Job {
        Job {
            target,
            secret: secret.to_vec(),
            code: Code::CoaRequest,
            attributes,
        }
    }

    /// The packet as sent (identifier assigned later): the job's attributes, an
    /// Event-Timestamp unless given (RFC 5176 section 3: replay protection) and a
    /// Message-Authenticator.
    fn packet(&self, now_unix: u32) -> Packet {
        let mut p = Packet::new(self.code, 0);
        p.attributes = self.attributes.clone();
        if p.get(attrs::EVENT_TIMESTAMP).is_none() {
            p.add(Attribute::date(attrs::EVENT_TIMESTAMP, now_unix));
        }
        p.add_message_authenticator();
        p
    }
}

/// User-Name, Acct-Session-Id, Framed-IP-Address and NAS-IP-Address (those known).
/// Names go out as the exact bytes the NAS sent ([`crate::names`]), not as their
/// in-memory form.
fn identity(
    username: &str,
    acct_session_id: Option<&str>,
    framed_ip: Option<Ipv4Addr>,
    nas_ip: Option<Ipv4Addr>,
) -> Vec<Attribute> {
    let name = |typ, s: &str| Attribute::new(typ, crate::names::encode(s).into_owned());
    let mut v = vec![name(attrs::USER_NAME, username)];
    v.extend(
        acct_session_id
            .filter(|id| !id.is_empty())
            .map(|id| name(attrs::ACCT_SESSION_ID, id)),
    );
    v.extend(framed_ip.map(|ip| Attribute::ipv4(attrs::FRAMED_IP_ADDRESS, ip)));
    v.extend(nas_ip.map(|ip| Attribute::ipv4(attrs::NAS_IP_ADDRESS, ip)));
    v
}

/// The attributes that identify a session to its NAS in a CoA-Request (addresses
/// as stored, as text).
pub fn session_identity(
    username: &str,
    acct_session_id: &str,
    framed_ip: Option<&str>,
    nas_ip: &str,
) -> Vec<Attribute> {
    identity(
        username,
        Some(acct_session_id),
        framed_ip.and_then(|a| a.parse().ok()),
        nas_ip.parse().ok(),
    )
}

/// Session identification attributes for a Disconnect-Request, and its extras.
pub fn disconnect_attributes(req: &DisconnectRequest) -> Vec<Attribute> {
    let mut v = identity(
        &req.user_name,
        req.acct_session_id.as_deref(),
        req.framed_ip,
        req.nas_ip,
    );
    v.extend(req.extra.iter().cloned());
    v
}

/// Maps a verified reply to the outcome, checking it answers `request`.
pub fn outcome_of(request: Code, reply: &Packet) -> Result<DmOutcome, CoaError> {
    let error_cause = reply.integer(attrs::ERROR_CAUSE);
    match (request, reply.code) {
        (Code::DisconnectRequest, Code::DisconnectAck) | (Code::CoaRequest, Code::CoaAck) => {
            Ok(DmOutcome::Ack)
        }
        (Code::DisconnectRequest, Code::DisconnectNak) | (Code::CoaRequest, Code::CoaNak) => {
            Ok(DmOutcome::Nak { error_cause })
        }
        (req, got) => Err(CoaError::BadResponse(format!("{got} in reply to {req}"))),
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

/// Owns one UDP socket; requests to any number of NASes share it, with up to
/// `config.window` in flight and an identifier space of 256 per NAS.
/// What a CoA-Request's failure was, for logs and queue rows: the NAK (and its
/// Error-Cause), or why no answer counted.
pub fn coa_failure(result: &Result<DmOutcome, CoaError>) -> Option<(String, Option<u32>)> {
    match result {
        Ok(DmOutcome::Ack) => None,
        Ok(DmOutcome::Nak { error_cause }) => Some((
            match error_cause {
                Some(c) => format!("CoA-NAK ({})", describe_error_cause(*c)),
                None => "CoA-NAK".to_string(),
            },
            *error_cause,
        )),
        Err(CoaError::Timeout {
            attempts,
            bad_replies,
        }) => Some((
            format!(
                "no CoA reply after {attempts} attempt(s){}",
                if *bad_replies > 0 {
                    format!(
                        "; {bad_replies} replies failed the authenticator check (wrong secret?)"
                    )
                } else {
                    String::new()
                }
            ),
            None,
        )),
        Err(other) => Some((format!("CoA-Request: {other}"), None)),
    }
}

/// The client in `slot`, created on first use (background jobs keep one socket).
pub fn client_in(
    slot: &mut Option<DmClient>,
    timeout: Duration,
    retries: u32,
) -> Result<&mut DmClient, String> {
    if slot.is_none() {
        let cfg = PipelineConfig {
            window: 128,
            timeout,
            retries,
        };
        *slot = Some(DmClient::new(cfg).map_err(|e| format!("UDP socket: {e}"))?);
    }
    Ok(slot.as_mut().expect("set above"))
}

pub struct DmClient {
    socket: UdpSocket,
    config: PipelineConfig,
}

impl DmClient {
    /// Binds an ephemeral port: dual-stack `[::]:0` (reaches IPv4 and IPv6 NASes),
    /// else `0.0.0.0:0` where IPv6 is disabled.
    pub fn new(config: PipelineConfig) -> io::Result<Self> {
        let any6: SocketAddr = "[::]:0".parse().expect("literal address");
        Self::bind(any6, config.clone())
            .or_else(|_| Self::bind("0.0.0.0:0".parse().expect("literal address"), config))
    }

    /// Binds `local` (e.g. a specific source address the NASes expect).
    pub fn bind(local: SocketAddr, config: PipelineConfig) -> io::Result<Self> {
        Ok(DmClient {
            socket: UdpSocket::bind(local)?,
            config,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends all jobs, pipelined; results are in the order of `jobs`.
    pub fn send_many(&mut self, jobs: Vec<Job>) -> Vec<Result<DmOutcome, CoaError>> {
        let now = unix_now();
        let codes: Vec<Code> = jobs.iter().map(|j| j.code).collect();
        let exchanges: Vec<Exchange> = jobs
            .into_iter()
            .map(|j| Exchange {
                target: j.target,
                packet: j.packet(now),
                secret: j.secret,
            })
            .collect();
        let targets: Vec<SocketAddr> = exchanges.iter().map(|e| e.target).collect();
        let mut results: Vec<Option<Result<DmOutcome, CoaError>>> =
            (0..exchanges.len()).map(|_| None).collect();
        let run = run_pipeline(&self.socket, &self.config, exchanges, |i, r| {
            let res = convert(codes[i], r);
            match &res {
                Ok(o) => debug!("coa: {} to {}: {o}", codes[i], targets[i]),
                Err(e) => debug!("coa: {} to {}: {e}", codes[i], targets[i]),
            }
            results[i] = Some(res);
        });
        let abort = run.err().map(|e| e.to_string());
        let results: Vec<Result<DmOutcome, CoaError>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(CoaError::Io(io::Error::other(
                        abort.clone().unwrap_or_else(|| "request not run".into()),
                    )))
                })
            })
            .collect();
        let counted = &crate::metrics::global().dm_results;
        for (code, r) in codes.iter().zip(&results) {
            let kind = if *code == Code::CoaRequest {
                "coa"
            } else {
                "disconnect"
            };
            let result = match r {
                Ok(DmOutcome::Ack) => "ack",
                Ok(DmOutcome::Nak { .. }) => "nak",
                Err(CoaError::Timeout { .. }) => "timeout",
                Err(_) => "error",
            };
            counted.inc(&[kind, result]);
        }
        results
    }

    pub fn send_one(&mut self, job: Job) -> Result<DmOutcome, CoaError> {
        self.send_many(vec![job])
            .pop()
            .unwrap_or_else(|| Err(CoaError::BadResponse("no result".into())))
    }
}

fn convert(code: Code, r: Result<Reply, ExchangeError>) -> Result<DmOutcome, CoaError> {
    match r {
        Ok(reply) => outcome_of(code, &reply.packet),
        Err(ExchangeError::Timeout {
            attempts,
            bad_replies,
        }) => Err(CoaError::Timeout {
            attempts,
            bad_replies,
        }),
        Err(ExchangeError::Io(e)) => Err(CoaError::Io(e)),
        Err(ExchangeError::Encode(e)) => Err(CoaError::BadResponse(format!("cannot encode: {e}"))),
    }
}

fn one_shot_client(
    target: SocketAddr,
    retries: u32,
    timeout: Duration,
) -> Result<DmClient, CoaError> {
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    Ok(DmClient::bind(
        local,
        PipelineConfig {
            window: 1,
            timeout,
            retries,
        },
    )?)
}

/// Sends one Disconnect-Request and waits for its verified answer.
pub fn send_disconnect(
    target: SocketAddr,
    secret: &[u8],
    req: &DisconnectRequest,
    retries: u32,
    timeout: Duration,
) -> Result<DmOutcome, CoaError> {
    one_shot_client(target, retries, timeout)?.send_one(Job::disconnect(target, secret, req))
}

/// Sends one CoA-Request with `attributes` and waits for its verified answer.
pub fn send_coa(
    target: SocketAddr,
    secret: &[u8],
    attributes: Vec<Attribute>,
    retries: u32,
    timeout: Duration,
) -> Result<DmOutcome, CoaError> {
    one_shot_client(target, retries, timeout)?.send_one(Job::coa(target, secret, attributes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_out_as_the_bytes_the_nas_sent() {
        let latin1 = crate::names::decode(b"m\xfcller");
        let sid = crate::names::decode(b"s\xff1");
        let v = session_identity(&latin1, &sid, Some("100.64.0.1"), "127.0.0.2");
        assert_eq!(v[0].value, b"m\xfcller");
        assert_eq!(v[1].value, b"s\xff1");
        let req = DisconnectRequest {
            user_name: latin1,
            acct_session_id: Some(sid),
            ..DisconnectRequest::default()
        };
        let d = disconnect_attributes(&req);
        assert_eq!(d[0].value, b"m\xfcller");
        assert_eq!(d[1].value, b"s\xff1");
        assert_eq!(
            session_identity("bob", "", None, "x").len(),
            1,
            "empty id, bad NAS IP: left out"
        );
    }

    #[test]
    fn failures_are_described_once_for_every_job() {
        assert_eq!(coa_failure(&Ok(DmOutcome::Ack)), None);
        assert_eq!(
            coa_failure(&Ok(DmOutcome::Nak {
                error_cause: Some(503)
            })),
            Some(("CoA-NAK (503 Session-Context-Not-Found)".into(), Some(503)))
        );
        assert_eq!(
            coa_failure(&Ok(DmOutcome::Nak { error_cause: None })),
            Some(("CoA-NAK".into(), None))
        );
        let (why, cause) = coa_failure(&Err(CoaError::Timeout {
            attempts: 3,
            bad_replies: 2,
        }))
        .unwrap();
        assert_eq!(cause, None);
        assert!(why.starts_with("no CoA reply after 3 attempt(s)"), "{why}");
        assert!(why.contains("wrong secret?"), "{why}");
    }

    use crate::radius::packet::verify_request;

    #[test]
    fn disconnect_packet_has_identification_and_protection() {
        let req = DisconnectRequest {
            user_name: "alice".into(),
            acct_session_id: Some("8100000a".into()),
            framed_ip: Some(Ipv4Addr::new(10, 5, 0, 9)),
            nas_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            extra: vec![],
        };
        let job = Job::disconnect("127.0.0.1:1".parse().unwrap(), b"sec", &req);
        let p = job.packet(1_800_000_000);
        assert_eq!(p.text(attrs::USER_NAME).as_deref(), Some("alice"));
        assert_eq!(p.text(attrs::ACCT_SESSION_ID).as_deref(), Some("8100000a"));
        assert_eq!(
            p.ipv4(attrs::FRAMED_IP_ADDRESS),
            Some(Ipv4Addr::new(10, 5, 0, 9))
        );
        assert_eq!(
            p.ipv4(attrs::NAS_IP_ADDRESS),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(p.integer(attrs::EVENT_TIMESTAMP), Some(1_800_000_000));
        let raw = p.encode_request(b"sec").unwrap();
        assert_eq!(raw[0], 40);
        assert_eq!(verify_request(&raw, b"sec"), Ok(true));
    }

    #[test]
    fn optional_fields_are_left_out() {
        let req = DisconnectRequest {
            user_name: "bob".into(),
            ..Default::default()
        };
        let a = disconnect_attributes(&req);
        assert_eq!(a, vec![Attribute::string(attrs::USER_NAME, "bob")]);
    }

    #[test]
    fn given_event_timestamp_is_kept() {
        let job = Job::coa(
            "127.0.0.1:1".parse().unwrap(),
            b"s",
            vec![Attribute::date(attrs::EVENT_TIMESTAMP, 5)],
        );
        let p = job.packet(99);
        assert_eq!(p.get_all(attrs::EVENT_TIMESTAMP).count(), 1);
        assert_eq!(p.integer(attrs::EVENT_TIMESTAMP), Some(5));
    }

    #[test]
    fn outcome_table() {
        let nak =
            Packet::new(Code::DisconnectNak, 1).with(Attribute::integer(attrs::ERROR_CAUSE, 503));
        let cases: Vec<(Code, Packet, Option<DmOutcome>)> = vec![
            (
                Code::DisconnectRequest,
                Packet::new(Code::DisconnectAck, 1),
                Some(DmOutcome::Ack),
            ),
            (
                Code::DisconnectRequest,
                nak.clone(),
                Some(DmOutcome::Nak {
                    error_cause: Some(503),
                }),
            ),
            (
                Code::CoaRequest,
                Packet::new(Code::CoaNak, 1),
                Some(DmOutcome::Nak { error_cause: None }),
            ),
            (
                Code::CoaRequest,
                Packet::new(Code::CoaAck, 1),
                Some(DmOutcome::Ack),
            ),
            (Code::CoaRequest, Packet::new(Code::DisconnectAck, 1), None),
            (
                Code::DisconnectRequest,
                nak.clone().with(Attribute::integer(1, 1)),
                Some(DmOutcome::Nak {
                    error_cause: Some(503),
                }),
            ),
            (
                Code::DisconnectRequest,
                Packet::new(Code::AccessAccept, 1),
                None,
            ),
        ];
        for (req, reply, want) in cases {
            assert_eq!(outcome_of(req, &reply).ok(), want, "{req} / {}", reply.code);
        }
    }

    #[test]
    fn outcome_display_names_error_cause() {
        let o = DmOutcome::Nak {
            error_cause: Some(503),
        };
        assert_eq!(o.to_string(), "NAK (503 Session-Context-Not-Found)");
        assert_eq!(DmOutcome::Ack.to_string(), "ACK");
        let e = CoaError::Timeout {
            attempts: 3,
            bad_replies: 2,
        };
        assert!(e.to_string().contains("wrong secret"), "{e}");
    }
}
