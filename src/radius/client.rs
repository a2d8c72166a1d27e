//! Pipelined RADIUS exchanges over one UDP socket: up to `window` requests in
//! flight, per-target identifier allocation (256 per target), per-request
//! retransmission and timeout. Blocking std only, one thread.
//!
//! Replies are matched on (source address, identifier) and must verify against
//! the request's authenticator and secret; anything else is ignored (and counted),
//! so a forged or stale reply cannot complete a request.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use log::debug;

use super::packet::{verify_reply, Packet, MAX_PACKET_LEN};
use super::{random_bytes, RadiusError};

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Most requests in flight at once (all targets together). Keep it near 128:
    /// a burst of 256 replies can overflow a default Linux receive buffer
    /// (about 830 octets of kernel memory per small datagram, 208 KiB default).
    pub window: usize,
    /// Wait per attempt.
    pub timeout: Duration,
    /// Retransmissions after the first attempt.
    pub retries: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            window: 128,
            timeout: Duration::from_secs(3),
            retries: 2,
        }
    }
}

/// One request to send. The identifier is assigned by the pipeline; the packet's
/// authenticator is computed at encoding (or kept, for Access-Request).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub target: SocketAddr,
    pub secret: Vec<u8>,
    pub packet: Packet,
}

/// A verified reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub packet: Packet,
    /// From the first transmission to the verified reply.
    pub latency: Duration,
    /// Transmissions made (1 = no retransmission).
    pub attempts: u32,
    /// Replies for this request that failed verification and were ignored.
    pub bad_replies: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(
        "no valid reply after {attempts} attempts ({bad_replies} replies failed verification)"
    )]
    Timeout { attempts: u32, bad_replies: u32 },
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("cannot encode request: {0}")]
    Encode(#[from] RadiusError),
}

/// Identifiers in use towards one target.
struct IdPool {
    used: [bool; 256],
    in_use: usize,
    cursor: u8,
}

impl IdPool {
    fn new() -> Self {
        // A random start makes a stale reply from an earlier run unlikely to match.
        let mut b = [0u8; 1];
        let _ = random_bytes(&mut b);
        IdPool {
            used: [false; 256],
            in_use: 0,
            cursor: b[0],
        }
    }

    /// Next free identifier after the last one handed out, so a just-released
    /// identifier is reused as late as possible.
    fn alloc(&mut self) -> Option<u8> {
        if self.in_use >= 256 {
            return None;
        }
        for _ in 0..256 {
            let id = self.cursor;
            self.cursor = self.cursor.wrapping_add(1);
            if !self.used[id as usize] {
                self.used[id as usize] = true;
                self.in_use += 1;
                return Some(id);
            }
        }
        None
    }

    fn release(&mut self, id: u8) {
        if self.used[id as usize] {
            self.used[id as usize] = false;
            self.in_use -= 1;
        }
    }
}

struct InFlight {
    index: usize,
    secret: Vec<u8>,
    bytes: Vec<u8>,
    request_auth: [u8; 16],
    first_sent: Instant,
    deadline: Instant,
    attempts: u32,
    bad_replies: u32,
}

/// IPv4-mapped IPv6 addresses compare equal to their IPv4 form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

struct Pipeline<'a, F> {
    socket: &'a UdpSocket,
    cfg: &'a PipelineConfig,
    pools: HashMap<SocketAddr, IdPool>,
    blocked: HashMap<SocketAddr, VecDeque<(usize, Exchange)>>,
    blocked_count: usize,
    inflight: HashMap<(SocketAddr, u8), InFlight>,
    on_done: F,
}

impl<F: FnMut(usize, Result<Reply, ExchangeError>)> Pipeline<'_, F> {
    fn start(&mut self, index: usize, ex: Exchange) {
        let target = canonical(ex.target);
        let pool = self.pools.entry(target).or_insert_with(IdPool::new);
        let Some(id) = pool.alloc() else {
            self.blocked
                .entry(target)
                .or_default()
                .push_back((index, ex));
            self.blocked_count += 1;
            return;
        };
        let mut packet = ex.packet;
        packet.identifier = id;
        let bytes = match packet.encode_request(&ex.secret) {
            Ok(b) => b,
            Err(e) => {
                pool.release(id);
                (self.on_done)(index, Err(e.into()));
                return;
            }
        };
        let mut request_auth = [0u8; 16];
        request_auth.copy_from_slice(&bytes[4..20]);
        let now = Instant::now();
        if let Err(e) = self.socket.send_to(&bytes, target) {
            debug!(
                "radius: send {} id {id} to {target} failed: {e}",
                packet.code
            );
            pool.release(id);
            (self.on_done)(index, Err(e.into()));
            return;
        }
        debug!("radius: sent {} id {id} to {target}", packet.code);
        self.inflight.insert(
            (target, id),
            InFlight {
                index,
                secret: ex.secret,
                bytes,
                request_auth,
                first_sent: now,
                deadline: now + self.cfg.timeout,
                attempts: 1,
                bad_replies: 0,
            },
        );
    }

    /// Completes a request, frees its identifier and starts a job that was
    /// waiting for one on the same target.
    fn finish(&mut self, key: (SocketAddr, u8), result: Result<Reply, ExchangeError>) {
        let Some(f) = self.inflight.remove(&key) else {
            return;
        };
        if let Some(pool) = self.pools.get_mut(&key.0) {
            pool.release(key.1);
        }
        (self.on_done)(f.index, result);
        if let Some((index, ex)) = self.blocked.get_mut(&key.0).and_then(VecDeque::pop_front) {
            self.blocked_count -= 1;
            self.start(index, ex);
        }
    }

    fn on_datagram(&mut self, data: &[u8], from: SocketAddr) {
        if data.len() < 20 {
            debug!("radius: ignoring {}-octet datagram from {from}", data.len());
            return;
        }
        let key = (canonical(from), data[1]);
        let Some(f) = self.inflight.get_mut(&key) else {
            debug!(
                "radius: ignoring reply id {} from {from}: no such request in flight",
                data[1]
            );
            return;
        };
        if let Err(e) = verify_reply(data, &f.request_auth, &f.secret) {
            f.bad_replies += 1;
            debug!(
                "radius: ignoring reply id {} from {from}: {e} (wrong secret?)",
                data[1]
            );
            return;
        }
        let packet = match Packet::decode(data) {
            Ok(p) => p,
            Err(e) => {
                f.bad_replies += 1;
                debug!("radius: ignoring reply id {} from {from}: {e}", data[1]);
                return;
            }
        };
        let reply = Reply {
            packet,
            latency: f.first_sent.elapsed(),
            attempts: f.attempts,
            bad_replies: f.bad_replies,
        };
        self.finish(key, Ok(reply));
    }

    fn expire(&mut self, now: Instant) {
        let due: Vec<(SocketAddr, u8)> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            let Some(f) = self.inflight.get_mut(&key) else {
                continue;
            };
            if f.attempts > self.cfg.retries {
                let err = ExchangeError::Timeout {
                    attempts: f.attempts,
                    bad_replies: f.bad_replies,
                };
                debug!("radius: id {} to {}: {err}", key.1, key.0);
                self.finish(key, Err(err));
                continue;
            }
            // Retransmit the identical datagram (same id and authenticator) so the
            // NAS can recognise a duplicate.
            f.attempts += 1;
            f.deadline = now + self.cfg.timeout;
            debug!(
                "radius: retransmitting id {} to {} (attempt {})",
                key.1, key.0, f.attempts
            );
            if let Err(e) = self.socket.send_to(&f.bytes, key.0) {
                self.finish(key, Err(e.into()));
            }
        }
    }
}

/// Runs all `jobs` through `socket`, calling `on_done(index, result)` once per job
/// (index = position in `jobs`), in completion order. Jobs are pulled lazily, so
/// `jobs` may be an unbounded iterator that stops on its own (e.g. at a deadline).
/// Only a failure to set the socket's read timeout aborts the run.
pub fn run_pipeline<I, F>(
    socket: &UdpSocket,
    cfg: &PipelineConfig,
    jobs: I,
    on_done: F,
) -> io::Result<()>
where
    I: IntoIterator<Item = Exchange>,
    F: FnMut(usize, Result<Reply, ExchangeError>),
{
    let window = cfg.window.max(1);
    let mut jobs = jobs.into_iter().enumerate().fuse();
    let mut p = Pipeline {
        socket,
        cfg,
        pools: HashMap::new(),
        blocked: HashMap::new(),
        blocked_count: 0,
        inflight: HashMap::new(),
        on_done,
    };
    let mut buf = vec![0u8; MAX_PACKET_LEN + 1];
    let mut exhausted = false;
    loop {
        while !exhausted && p.inflight.len() < window && p.blocked_count < window {
            match jobs.next() {
                Some((i, ex)) => p.start(i, ex),
                None => exhausted = true,
            }
        }
        let Some(next_deadline) = p.inflight.values().map(|f| f.deadline).min() else {
            if exhausted && p.blocked_count == 0 {
                return Ok(());
            }
            // Everything started completed at once (send errors); pull more.
            continue;
        };
        let now = Instant::now();
        if next_deadline > now {
            socket.set_read_timeout(Some(next_deadline - now))?;
            match socket.recv_from(&mut buf) {
                Ok((n, from)) => p.on_datagram(&buf[..n], from),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => debug!("radius: receive error (ignored): {e}"),
            }
        }
        p.expire(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_pool_exhausts_and_reuses_late() {
        let mut p = IdPool::new();
        p.cursor = 250;
        let first = p.alloc().unwrap();
        assert_eq!(first, 250);
        let mut ids = vec![first];
        while let Some(id) = p.alloc() {
            ids.push(id);
        }
        assert_eq!(ids.len(), 256);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 256);
        p.release(3);
        p.release(3);
        assert_eq!(p.in_use, 255);
        assert_eq!(p.alloc(), Some(3));
        assert_eq!(p.alloc(), None);
    }

    #[test]
    fn canonical_unmaps_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:99".parse().unwrap();
        assert_eq!(canonical(mapped), "127.0.0.2:99".parse().unwrap());
        let v6: SocketAddr = "[::1]:99".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
