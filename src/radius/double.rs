//! An RFC 5176 NAS double for tests and benches: a UDP responder on a given
//! address that verifies each Disconnect-/CoA-Request with its secret and answers
//! ACK, NAK (with an Error-Cause) or nothing, after an optional latency.
//! Requests that fail verification are counted and ignored, as a NAS would.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::attrs::{self, Attribute};
use super::packet::verify_request;
use super::{Code, Packet};

/// How the double answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ack,
    /// NAK with this Error-Cause (None: without one).
    Nak(Option<u32>),
    /// Read and never answer.
    Silent,
}

#[derive(Debug, Default)]
struct State {
    answer: Option<Answer>,
    latency: Duration,
    requests: Vec<Packet>,
    bad: u64,
}

/// A running NAS double; stops when dropped.
pub struct NasDouble {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl NasDouble {
    /// Binds `bind` (port 0: any free port) and answers with `answer`.
    pub fn start(bind: SocketAddr, secret: &[u8], answer: Answer) -> io::Result<NasDouble> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let addr = socket.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            answer: Some(answer),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>, SocketAddr)>();
        let out = socket.try_clone()?;
        let sender = thread::Builder::new()
            .name("nas-double-tx".into())
            .spawn(move || {
                // Latency is the same for every reply, so due times arrive in order.
                for (due, bytes, to) in rx {
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        thread::sleep(wait);
                    }
                    let _ = out.send_to(&bytes, to);
                }
            })?;
        let (st, sp, secret) = (Arc::clone(&state), Arc::clone(&stop), secret.to_vec());
        let receiver = thread::Builder::new()
            .name("nas-double-rx".into())
            .spawn(move || receive_loop(&socket, &secret, &st, &sp, &tx))?;
        Ok(NasDouble {
            addr,
            state,
            stop,
            threads: vec![receiver, sender],
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_answer(&self, answer: Answer) {
        self.lock().answer = Some(answer);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Verified requests received so far (retransmissions included).
    pub fn requests(&self) -> Vec<Packet> {
        self.lock().requests.clone()
    }

    /// Datagrams that failed verification (wrong secret, garbage).
    pub fn bad_requests(&self) -> u64 {
        self.lock().bad
    }
}

impl Drop for NasDouble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

type Outbox = mpsc::Sender<(Instant, Vec<u8>, SocketAddr)>;

fn receive_loop(
    socket: &UdpSocket,
    secret: &[u8],
    state: &Mutex<State>,
    stop: &AtomicBool,
    tx: &Outbox,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(_) => continue,
        };
        let received = Instant::now();
        let raw = &buf[..n];
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let packet = match (verify_request(raw, secret), Packet::decode(raw)) {
            (Ok(_), Ok(p)) => p,
            _ => {
                st.bad += 1;
                continue;
            }
        };
        let (ack, nak) = match packet.code {
            Code::DisconnectRequest => (Code::DisconnectAck, Code::DisconnectNak),
            Code::CoaRequest => (Code::CoaAck, Code::CoaNak),
            _ => {
                st.bad += 1;
                continue;
            }
        };
        let reply = match st.answer.unwrap_or(Answer::Silent) {
            Answer::Ack => Packet::reply_to(&packet, ack),
            Answer::Nak(cause) => {
                let mut r = Packet::reply_to(&packet, nak);
                if let Some(c) = cause {
                    r.add(Attribute::integer(attrs::ERROR_CAUSE, c));
                }
                r
            }
            Answer::Silent => {
                st.requests.push(packet);
                continue;
            }
        };
        let due = received + st.latency;
        let authenticator = packet.authenticator;
        st.requests.push(packet);
        drop(st);
        if let Ok(bytes) = reply.encode_reply(&authenticator, secret) {
            let _ = tx.send((due, bytes, from));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coa::{send_disconnect, CoaError, DisconnectRequest, DmOutcome};

    fn req() -> DisconnectRequest {
        DisconnectRequest {
            user_name: "alice".into(),
            ..Default::default()
        }
    }

    #[test]
    fn answers_as_told_and_ignores_wrong_secret() {
        let nas = NasDouble::start("127.0.0.1:0".parse().unwrap(), b"s3", Answer::Ack).unwrap();
        let t = Duration::from_millis(300);
        let ok = send_disconnect(nas.addr(), b"s3", &req(), 0, t).unwrap();
        assert_eq!(ok, DmOutcome::Ack);
        nas.set_answer(Answer::Nak(Some(503)));
        let nak = send_disconnect(nas.addr(), b"s3", &req(), 0, t).unwrap();
        assert_eq!(
            nak,
            DmOutcome::Nak {
                error_cause: Some(503)
            }
        );
        let wrong = send_disconnect(nas.addr(), b"other", &req(), 0, t);
        assert!(matches!(wrong, Err(CoaError::Timeout { .. })), "{wrong:?}");
        assert_eq!(nas.bad_requests(), 1);
        assert_eq!(nas.requests().len(), 2);
        assert_eq!(
            nas.requests()[0].text(attrs::USER_NAME).as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn latency_delays_replies() {
        let nas = NasDouble::start("127.0.0.1:0".parse().unwrap(), b"s", Answer::Ack).unwrap();
        nas.set_latency(Duration::from_millis(80));
        let t0 = Instant::now();
        send_disconnect(nas.addr(), b"s", &req(), 0, Duration::from_secs(2)).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(80));
    }
}
