//! The module's `/metrics` listener (`metrics_listen`): one thread, one request at a
//! time, `GET /metrics` only. It is shared by the instances of a process that name
//! the same address, so a HUP (new instance before the old one is freed) keeps the
//! port instead of failing to bind it again.
//!
//! Written on std rather than an HTTP stack: it answers one fixed GET for Prometheus,
//! and the module (loaded into every freeRADIUS worker) then carries no async runtime.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// A running listener; stopped when the last instance using it drops it.
pub struct Listener {
    addr: SocketAddr,
    token: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn running() -> &'static Mutex<HashMap<SocketAddr, Weak<Listener>>> {
    static R: std::sync::OnceLock<Mutex<HashMap<SocketAddr, Weak<Listener>>>> =
        std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// The listener on `addr`: the one this process already runs there, else a new one.
/// `token`: if set, requests must carry `Authorization: Bearer <token>`.
pub fn start(addr: SocketAddr, token: Option<String>) -> std::io::Result<Arc<Listener>> {
    let mut map = running().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(l) = map.get(&addr).and_then(Weak::upgrade) {
        *l.token.lock().unwrap_or_else(|e| e.into_inner()) = token;
        return Ok(l);
    }
    let socket = TcpListener::bind(addr)?;
    socket.set_nonblocking(true)?;
    let bound = socket.local_addr()?;
    let token = Arc::new(Mutex::new(token));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (token, stop) = (Arc::clone(&token), Arc::clone(&stop));
        std::thread::Builder::new()
            .name("rlm_rust metrics".into())
            .spawn(move || serve(socket, &token, &stop))?
    };
    let l = Arc::new(Listener {
        addr: bound,
        token,
        stop,
        thread: Mutex::new(Some(thread)),
    });
    map.retain(|_, w| w.strong_count() > 0);
    map.insert(bound, Arc::downgrade(&l));
    Ok(l)
}

fn serve(socket: TcpListener, token: &Mutex<Option<String>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match socket.accept() {
            Ok((stream, _)) => {
                let token = token.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if let Err(e) = answer(stream, token.as_deref()) {
                    log::debug!("metrics: request failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                log::debug!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Most bytes of a request head read; a scrape sends a few hundred.
const MAX_HEAD: usize = 8192;

fn answer(mut stream: TcpStream, token: Option<&str>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    // A client that connects and sends nothing holds the thread this long at most.
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, 431, "request head too large\n");
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let (status, body) = route(&text, token);
    respond(&mut stream, status, &body)
}

/// The status and body for a request head.
fn route(head: &str, token: Option<&str>) -> (u16, String) {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if method != "GET" {
        return (405, "only GET /metrics\n".into());
    }
    if target.split('?').next() != Some("/metrics") {
        return (404, "only GET /metrics\n".into());
    }
    if let Some(want) = token {
        let given = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.trim().strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| super::token_matches(g, want)) {
            return (401, "a bearer token is required\n".into());
        }
    }
    (200, super::global().render())
}

fn respond(stream: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Request Header Fields Too Large",
    };
    let ctype = if status == 200 {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let auth = if status == 401 {
        "WWW-Authenticate: Bearer\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases: &[(&str, Option<&str>, u16)] = &[
            ("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", None, 200),
            ("GET /metrics?x=1 HTTP/1.1\r\n\r\n", None, 200),
            ("POST /metrics HTTP/1.1\r\n\r\n", None, 405),
            ("GET / HTTP/1.1\r\n\r\n", None, 404),
            ("GET /metrics HTTP/1.1\r\n\r\n", Some("s3"), 401),
            (
                "GET /metrics HTTP/1.1\r\nAuthorization: Bearer s4\r\n\r\n",
                Some("s3"),
                401,
            ),
            (
                "GET /metrics HTTP/1.1\r\nauthorization:  Bearer s3\r\n\r\n",
                Some("s3"),
                200,
            ),
            ("garbage", None, 405),
        ];
        for (head, token, want) in cases {
            assert_eq!(route(head, *token).0, *want, "{head:?}");
        }
    }

    #[test]
    fn serves_over_tcp_and_is_shared_per_address() {
        let a = start("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = a.local_addr();
        super::super::global().accounting.inc(&["recorded"]);
        let get = |req: &[u8]| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let out = get(b"GET /metrics HTTP/1.1\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("rlm_rust_accounting_requests_total{outcome=\"recorded\"}"));
        // Same address again (a HUP): the same listener, now with a token.
        let b = start(addr, Some("t".into())).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(get(b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 401"));
        // Oversized heads are refused, not buffered.
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(big.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.starts_with("HTTP/1.1 431"), "{out}");
        drop((a, b));
        // Stopped with its last user: the port is free again.
        assert!(TcpListener::bind(addr).is_ok());
    }
}
