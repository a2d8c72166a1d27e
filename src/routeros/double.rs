//! A RouterOS API server double for tests and benches: listens on 127.0.0.1
//! (port 0), speaks the wire protocol, and serves an in-memory `/ppp/active`
//! and `/ip/hotspot/active` with login (plain or MD5 challenge), `print`
//! (`.proplist`, simple queries), `remove` (one or several ids), `.tag` echo,
//! and fault injection (reply latency, dropped connections, traps, `!fatal`,
//! silence, old-firmware multi-id remove).
//!
//! Replies are delayed by [`Faults::latency`] from the moment the command was
//! read, so latency models a round trip: pipelined commands overlap, sequential
//! ones add up.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::client::md5_challenge_response;
use super::codec::{encode_sentence, parse_attr, Decoder, Reply, ReplyKind};
use super::uptime::SessionTable;

/// One table row: property name → value (`.id` included).
pub type Row = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMode {
    /// RouterOS 6.43+: `/login =name= =password=`.
    Plain,
    /// Pre-6.43: any `/login` without `=response=` gets `!done =ret=<challenge>`.
    Md5Challenge,
}

/// Misbehaviour to inject; change it at any time with [`RouterOsDouble::set_faults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Delay of every reply after its command was read.
    pub latency: Duration,
    /// Close the connection, without replying, on this command path.
    pub drop_on: Option<String>,
    /// Answer this command path with `!trap =message=<msg>` then `!done`.
    pub trap_on: Option<(String, String)>,
    /// Answer this command path with `!fatal <msg>`, then close.
    pub fatal_on: Option<(String, String)>,
    /// Read commands but never answer.
    pub silent: bool,
    /// Old firmware: a `remove` with several ids traps "no such item".
    pub multi_remove_traps: bool,
    /// RouterOS 7.18+: a print without rows answers `!empty` before `!done`.
    pub send_empty: bool,
}

#[derive(Debug, Clone)]
pub struct DoubleConfig {
    pub user: String,
    pub password: String,
    pub login_mode: LoginMode,
    pub faults: Faults,
}

impl Default for DoubleConfig {
    fn default() -> Self {
        DoubleConfig {
            user: "admin".into(),
            password: "secret".into(),
            login_mode: LoginMode::Plain,
            faults: Faults::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub connections: u64,
    pub logins_ok: u64,
    pub logins_failed: u64,
    /// Every command sentence read.
    pub commands: u64,
    pub prints: u64,
    pub remove_commands: u64,
    /// Ids actually removed.
    pub removed_ids: u64,
    /// Most commands seen in flight on one connection (read, reply not yet sent).
    pub max_in_flight: u64,
}

struct State {
    cfg: DoubleConfig,
    tables: BTreeMap<String, Vec<Row>>,
    next_id: u64,
    counters: Counters,
    rng: u64,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the double down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct RouterOsDouble {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl RouterOsDouble {
    /// Starts listening on 127.0.0.1 with an ephemeral port.
    pub fn start(cfg: DoubleConfig) -> io::Result<RouterOsDouble> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg)
    }

    /// Starts listening on `bind` (e.g. 127.0.0.3:0, one loopback address per NAS).
    pub fn start_on(bind: SocketAddr, cfg: DoubleConfig) -> io::Result<RouterOsDouble> {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        let mut tables = BTreeMap::new();
        for t in SessionTable::ALL {
            tables.insert(t.path().to_string(), Vec::new());
        }
        tables.insert(ADDRESS_LIST.to_string(), Vec::new());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                cfg,
                tables,
                next_id: 1,
                counters: Counters::default(),
                rng: seed,
            }),
            stop: AtomicBool::new(false),
        });
        let sh = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("routeros-double".into())
            .spawn(move || accept_loop(listener, sh))?;
        Ok(RouterOsDouble {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Adds an active session; returns its `.id` (`*1`, `*2`, ... in hex like RouterOS).
    pub fn add_session(
        &self,
        table: SessionTable,
        user: &str,
        address: &str,
        uptime: &str,
    ) -> String {
        let service = match table {
            SessionTable::Ppp => "pppoe",
            SessionTable::Hotspot => "hotspot",
        };
        self.add_row(
            table.path(),
            &[
                (table.user_key(), user),
                ("address", address),
                ("uptime", uptime),
                ("service", service),
            ],
        )
    }

    /// Adds a row to any table (created on first use); returns its `.id`.
    pub fn add_row(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let mut st = self.shared.lock();
        let id = format!("*{:X}", st.next_id);
        st.next_id += 1;
        let mut row: Row = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        row.insert(".id".into(), id.clone());
        st.tables.entry(path.to_string()).or_default().push(row);
        id
    }

    pub fn rows(&self, path: &str) -> Vec<Row> {
        self.shared
            .lock()
            .tables
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    pub fn ids(&self, table: SessionTable) -> Vec<String> {
        self.rows(table.path())
            .into_iter()
            .filter_map(|mut r| r.remove(".id"))
            .collect()
    }

    /// Removes a row behind the client's back (the session ended by itself),
    /// so a later remove of this id meets a stale id. True if it existed.
    pub fn vanish(&self, id: &str) -> bool {
        let mut st = self.shared.lock();
        st.tables.values_mut().any(|rows| {
            let before = rows.len();
            rows.retain(|r| r.get(".id").map(String::as_str) != Some(id));
            rows.len() != before
        })
    }

    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().cfg.faults = faults;
    }

    pub fn set_login_mode(&self, mode: LoginMode) {
        self.shared.lock().cfg.login_mode = mode;
    }
}

impl Drop for RouterOsDouble {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = conn else { continue };
        shared.lock().counters.connections += 1;
        let sh = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name("routeros-double-conn".into())
            .spawn(move || {
                if let Err(e) = serve(stream, &sh) {
                    log::debug!("routeros double: connection ended: {e}");
                }
            });
    }
}

/// What the writer thread sends, and when.
struct Outgoing {
    due: Instant,
    bytes: Vec<u8>,
    close: bool,
}

enum Outcome {
    Replies(Vec<Reply>),
    RepliesThenClose(Vec<Reply>),
    Drop,
    Silent,
}

#[derive(Default)]
struct Session {
    logged_in: bool,
    challenge: Option<String>,
}

fn serve(stream: TcpStream, shared: &Arc<Shared>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut reader = stream.try_clone()?;
    let writer_stream = stream.try_clone()?;
    let (tx, rx) = mpsc::channel::<Outgoing>();
    let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let wf = Arc::clone(&in_flight);
    let writer = thread::spawn(move || write_loop(writer_stream, rx, &wf));

    let mut decoder = Decoder::new();
    let mut session = Session::default();
    let mut buf = [0u8; 16 * 1024];
    let result = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => break Err(e),
        };
        let received = Instant::now();
        decoder.feed(&buf[..n]);
        let mut closing = false;
        loop {
            let words = match decoder.next_sentence() {
                Ok(Some(w)) => w,
                Ok(None) => break,
                Err(e) => {
                    // Garbage: a real router would drop us too.
                    let _ = stream.shutdown(Shutdown::Both);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            };
            let (outcome, latency) = {
                let mut st = shared.lock();
                let outcome = handle(&mut st, &mut session, &words);
                let now_in_flight = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                st.counters.max_in_flight = st.counters.max_in_flight.max(now_in_flight);
                (outcome, st.cfg.faults.latency)
            };
            let (replies, close) = match outcome {
                Outcome::Replies(r) => (r, false),
                Outcome::RepliesThenClose(r) => (r, true),
                Outcome::Silent => {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                Outcome::Drop => {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.shutdown(Shutdown::Both);
                    closing = true;
                    break;
                }
            };
            let mut bytes = Vec::new();
            for r in &replies {
                // Reply words are built here from short strings; cannot exceed 4 GiB.
                if let Ok(b) = encode_sentence(&r.to_words()) {
                    bytes.extend(b);
                }
            }
            let _ = tx.send(Outgoing {
                due: received + latency,
                bytes,
                close,
            });
            if close {
                closing = true;
                break;
            }
        }
        if closing {
            break Ok(());
        }
    };
    drop(tx);
    let _ = writer.join();
    result
}

fn write_loop(
    mut stream: TcpStream,
    rx: mpsc::Receiver<Outgoing>,
    in_flight: &std::sync::atomic::AtomicU64,
) {
    for out in rx {
        let wait = out.due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            thread::sleep(wait);
        }
        in_flight.fetch_sub(1, Ordering::SeqCst);
        if stream.write_all(&out.bytes).is_err() {
            return;
        }
        if out.close {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// A parsed command sentence.
struct Request<'a> {
    path: &'a str,
    attrs: BTreeMap<&'a str, &'a str>,
    queries: Vec<&'a str>,
    tag: Option<&'a str>,
}

fn parse_request(words: &[String]) -> Request<'_> {
    let mut req = Request {
        path: words.first().map(String::as_str).unwrap_or(""),
        attrs: BTreeMap::new(),
        queries: Vec::new(),
        tag: None,
    };
    for w in words.iter().skip(1) {
        if let Some(t) = w.strip_prefix(".tag=") {
            req.tag = Some(t);
        } else if let Some(q) = w.strip_prefix('?') {
            req.queries.push(q);
        } else if let Some((k, v)) = parse_attr(w) {
            req.attrs.insert(k, v);
        }
    }
    req
}

fn reply(kind: ReplyKind, tag: Option<&str>) -> Reply {
    Reply {
        kind,
        attrs: BTreeMap::new(),
        tag: tag.map(str::to_string),
    }
}

fn trap_done(message: &str, tag: Option<&str>) -> Outcome {
    Outcome::Replies(vec![
        reply(
            ReplyKind::Trap {
                category: None,
                message: message.to_string(),
            },
            tag,
        ),
        reply(ReplyKind::Done, tag),
    ])
}

fn done(tag: Option<&str>) -> Outcome {
    Outcome::Replies(vec![reply(ReplyKind::Done, tag)])
}

fn handle(st: &mut State, session: &mut Session, words: &[String]) -> Outcome {
    st.counters.commands += 1;
    let req = parse_request(words);
    let tag = req.tag;
    let faults = &st.cfg.faults;
    if faults.silent {
        return Outcome::Silent;
    }
    if faults.drop_on.as_deref() == Some(req.path) {
        return Outcome::Drop;
    }
    if let Some((_, msg)) = faults.fatal_on.as_ref().filter(|(p, _)| p == req.path) {
        return Outcome::RepliesThenClose(vec![reply(ReplyKind::Fatal(msg.clone()), None)]);
    }
    if let Some((_, msg)) = faults.trap_on.as_ref().filter(|(p, _)| p == req.path) {
        return trap_done(&msg.clone(), tag);
    }
    match req.path {
        "/login" => login(st, session, &req),
        "/quit" => Outcome::RepliesThenClose(vec![reply(
            ReplyKind::Fatal("session terminated on request".into()),
            None,
        )]),
        _ if !session.logged_in => trap_done("not logged in", tag),
        path => {
            if let Some(table) = path
                .strip_suffix("/print")
                .or_else(|| path.strip_suffix("/getall"))
            {
                print(st, table, &req)
            } else if let Some(table) = path.strip_suffix("/remove") {
                remove(st, table, &req)
            } else if let Some(table) = path.strip_suffix("/add") {
                add(st, table, &req)
            } else {
                trap_done("no such command", tag)
            }
        }
    }
}

fn login(st: &mut State, session: &mut Session, req: &Request<'_>) -> Outcome {
    let tag = req.tag;
    let user_ok = req.attrs.get("name") == Some(&st.cfg.user.as_str());
    let ok = match st.cfg.login_mode {
        LoginMode::Plain => user_ok && req.attrs.get("password") == Some(&st.cfg.password.as_str()),
        LoginMode::Md5Challenge => match (req.attrs.get("response"), session.challenge.take()) {
            (None, _) => {
                // Like pre-6.43 firmware: ignore name/password, hand out a challenge.
                let challenge = next_challenge(&mut st.rng);
                session.challenge = Some(challenge.clone());
                let mut r = reply(ReplyKind::Done, tag);
                r.attrs.insert("ret".into(), challenge);
                return Outcome::Replies(vec![r]);
            }
            (Some(resp), Some(ch)) => {
                user_ok && md5_challenge_response(&st.cfg.password, &ch).as_deref() == Some(*resp)
            }
            (Some(_), None) => false,
        },
    };
    if ok {
        st.counters.logins_ok += 1;
        session.logged_in = true;
        done(tag)
    } else {
        st.counters.logins_failed += 1;
        trap_done("invalid user name or password (6)", tag)
    }
}

fn next_challenge(rng: &mut u64) -> String {
    let mut out = String::with_capacity(32);
    for _ in 0..2 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        out.push_str(&format!("{:016x}", *rng));
    }
    out
}

/// Simple query words: `name=value` or `=name=value` (equal), `name` (has),
/// `-name` (lacks). Anything else is unsupported by the double.
fn row_matches(row: &Row, query: &str) -> Option<bool> {
    let q = query.strip_prefix('=').unwrap_or(query);
    if let Some((k, v)) = q.split_once('=') {
        return Some(row.get(k).map(String::as_str) == Some(v));
    }
    if let Some(k) = q.strip_prefix('-') {
        return Some(!row.contains_key(k));
    }
    if q.is_empty() || q.starts_with(['#', '<', '>']) {
        return None;
    }
    Some(row.contains_key(q))
}

fn print(st: &mut State, table: &str, req: &Request<'_>) -> Outcome {
    let tag = req.tag;
    st.counters.prints += 1;
    let Some(rows) = st.tables.get(table) else {
        return trap_done("no such command prefix", tag);
    };
    let proplist: Option<Vec<&str>> = req
        .attrs
        .get(".proplist")
        .map(|p| p.split(',').filter(|s| !s.is_empty()).collect());
    let mut out = Vec::new();
    for row in rows {
        let mut keep = true;
        for q in &req.queries {
            match row_matches(row, q) {
                Some(m) => keep &= m,
                None => return trap_done(&format!("unsupported query ?{q}"), tag),
            }
        }
        if !keep {
            continue;
        }
        let attrs = row
            .iter()
            .filter(|(k, _)| proplist.as_ref().map_or(true, |p| p.contains(&k.as_str())))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.push(Reply {
            kind: ReplyKind::Re,
            attrs,
            tag: tag.map(str::to_string),
        });
    }
    if out.is_empty() && st.cfg.faults.send_empty {
        out.push(reply(ReplyKind::Empty, tag));
    }
    out.push(reply(ReplyKind::Done, tag));
    Outcome::Replies(out)
}

use super::ADDRESS_LIST;

/// `add` to an existing table: the row gets the next `.id`, returned as `=ret=`.
/// Like RouterOS, an address-list entry already in the list traps.
fn add(st: &mut State, table: &str, req: &Request<'_>) -> Outcome {
    let tag = req.tag;
    let id = format!("*{:X}", st.next_id);
    let Some(rows) = st.tables.get_mut(table) else {
        return trap_done("no such command prefix", tag);
    };
    let row: Row = req
        .attrs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([(".id".to_string(), id.clone())])
        .collect();
    if table == ADDRESS_LIST
        && rows
            .iter()
            .any(|r| r.get("list") == row.get("list") && r.get("address") == row.get("address"))
    {
        return trap_done("failure: already have such entry", tag);
    }
    rows.push(row);
    st.next_id += 1;
    let mut r = reply(ReplyKind::Done, tag);
    r.attrs.insert("ret".into(), id);
    Outcome::Replies(vec![r])
}

fn remove(st: &mut State, table: &str, req: &Request<'_>) -> Outcome {
    let tag = req.tag;
    st.counters.remove_commands += 1;
    let multi_traps = st.cfg.faults.multi_remove_traps;
    let Some(rows) = st.tables.get_mut(table) else {
        return trap_done("no such command prefix", tag);
    };
    let Some(ids) = req.attrs.get(".id") else {
        return trap_done("missing =.id=", tag);
    };
    let ids: Vec<&str> = ids.split(',').collect();
    if ids.len() > 1 && multi_traps {
        return trap_done("no such item", tag);
    }
    // All or nothing, so a trap leaves the table as it was.
    let exists = |id: &str| {
        rows.iter()
            .any(|r| r.get(".id").map(String::as_str) == Some(id))
    };
    if ids.iter().any(|id| !exists(id)) {
        return trap_done("no such item", tag);
    }
    let before = rows.len();
    rows.retain(|r| !r.get(".id").is_some_and(|id| ids.contains(&id.as_str())));
    st.counters.removed_ids += (before - rows.len()) as u64;
    done(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words() {
        let row: Row = [("name", "bob"), (".id", "*1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(row_matches(&row, "name=bob"), Some(true));
        assert_eq!(row_matches(&row, "=name=bob"), Some(true));
        assert_eq!(row_matches(&row, "name=amy"), Some(false));
        assert_eq!(row_matches(&row, "name"), Some(true));
        assert_eq!(row_matches(&row, "-name"), Some(false));
        assert_eq!(row_matches(&row, "-address"), Some(true));
        assert_eq!(row_matches(&row, "#|"), None);
        assert_eq!(row_matches(&row, "<uptime"), None);
    }

    #[test]
    fn challenges_are_hex_and_vary() {
        let mut rng = 12345;
        let a = next_challenge(&mut rng);
        let b = next_challenge(&mut rng);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
