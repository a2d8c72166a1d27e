//! Blocking RouterOS API client over `std::net::TcpStream` (optionally TLS).
//!
//! One `Client` is one logged-in API session. Every command carries a `.tag`, so
//! several can be in flight at once ([`Client::pipeline`]).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::codec::{self, CodecError, Command, Decoder, Reply, ReplyKind};

/// Commands in flight at once: bounds what both sides must buffer, so a long
/// pipeline can't deadlock with both peers blocked on full socket buffers.
const MAX_IN_FLIGHT: usize = 64;
/// Ids per multi-id `remove`, keeping each word short.
pub const REMOVE_CHUNK: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection closed by the router")]
    Closed,
    #[error("login refused: {0}")]
    LoginRefused(String),
    #[error("router trap{}: {message}", category.map(|c| format!(" (category {c})")).unwrap_or_default())]
    Trap {
        category: Option<u32>,
        message: String,
    },
    #[error("router fatal: {0}")]
    Fatal(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<CodecError> for Error {
    fn from(e: CodecError) -> Self {
        Error::Protocol(e.to_string())
    }
}

impl Error {
    /// RouterOS's answer when an id is not (or no longer) in the table.
    pub fn is_no_such_item(&self) -> bool {
        matches!(self, Error::Trap { message, .. } if message.contains("no such item"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to check the router's certificate on API-SSL (port 8729).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsVerify {
    /// Accept any certificate: MikroTik's default certificate is self-signed.
    /// The channel is still encrypted, but not authenticated.
    AcceptAny,
    /// Verify the chain against these PEM-encoded CA certificates.
    CaPem(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub verify: TlsVerify,
    /// Name to verify the certificate against; defaults to the host string.
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    /// Longest wait for any single read or write (an idle timeout, not a total).
    pub io_timeout: Duration,
    pub tls: Option<TlsOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Which login exchange the router accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// `/login =name= =password=` (RouterOS 6.43 and later).
    Plain,
    /// Pre-6.43 MD5 challenge/response.
    Md5Challenge,
}

/// Outcome of [`Client::remove_many`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoveReport {
    pub removed: Vec<String>,
    /// Trapped with "no such item": the session ended on its own (or an earlier
    /// multi-id remove took it before trapping).
    pub already_gone: Vec<String>,
    /// (id, router message)
    pub failed: Vec<(String, String)>,
    /// Command sentences sent.
    pub commands: usize,
}

pub(super) trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub struct Client {
    io: Box<dyn Stream>,
    /// The socket under `io` (shared), for each reply's remaining time.
    tcp: TcpStream,
    peer: SocketAddr,
    decoder: Decoder,
    io_timeout: Duration,
    next_tag: u64,
    broken: bool,
    /// Cleared once a multi-id remove trapped while single removes of the
    /// same ids worked: old firmware; stop trying it on this connection.
    multi_remove_ok: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects (not yet logged in). `host` is an IP address or a name.
    pub fn connect(host: &str, port: u16, opts: &ConnectOptions) -> Result<Client> {
        let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
        let mut last = Error::Protocol(format!("{host}: no address"));
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, opts.connect_timeout) {
                Ok(tcp) => return Self::from_tcp(tcp, host, opts),
                Err(e) => {
                    log::debug!("routeros: connect {addr} failed: {e}");
                    last = io_error(e, opts.connect_timeout);
                }
            }
        }
        Err(last)
    }

    fn from_tcp(tcp: TcpStream, host: &str, opts: &ConnectOptions) -> Result<Client> {
        let peer = tcp.peer_addr()?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(opts.io_timeout))?;
        tcp.set_write_timeout(Some(opts.io_timeout))?;
        let socket = tcp.try_clone()?;
        let io: Box<dyn Stream> = match &opts.tls {
            None => Box::new(tcp),
            Some(tls) => super::tls::wrap(tcp, host, tls, opts.io_timeout)?,
        };
        Ok(Client {
            io,
            tcp: socket,
            peer,
            decoder: Decoder::new(),
            io_timeout: opts.io_timeout,
            next_tag: 1,
            broken: false,
            multi_remove_ok: true,
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Logs in: plain first, then the MD5 challenge if the router answered with
    /// `=ret=` (pre-6.43 firmware ignores the password and sends a challenge).
    pub fn login(&mut self, user: &str, password: &str) -> Result<LoginMethod> {
        let plain = Command::new("/login")
            .attr("name", user)
            .attr("password", password);
        let replies = self.command(&plain).map_err(refused)?;
        let Some(challenge) = replies.iter().find_map(|r| r.attrs.get("ret")) else {
            log::debug!("routeros: {} logged in as {user:?} (plain)", self.peer);
            return Ok(LoginMethod::Plain);
        };
        let response = md5_challenge_response(password, challenge)
            .ok_or_else(|| Error::Protocol(format!("bad login challenge {challenge:?}")))?;
        let md5 = Command::new("/login")
            .attr("name", user)
            .attr("response", &response);
        self.command(&md5).map_err(refused)?;
        log::debug!(
            "routeros: {} logged in as {user:?} (MD5 challenge)",
            self.peer
        );
        Ok(LoginMethod::Md5Challenge)
    }

    /// Runs one command; returns its `!re` sentences and the final `!done`
    /// (which may carry `=ret=`). A `!trap` becomes `Err(Error::Trap)`.
    pub fn command(&mut self, cmd: &Command) -> Result<Vec<Reply>> {
        let mut out = self.pipeline(std::slice::from_ref(cmd))?;
        out.pop()
            .unwrap_or_else(|| Err(Error::Protocol("no result".into())))
    }

    /// Runs several commands with up to 64 in flight, told apart by `.tag`.
    /// The outer error is a connection failure (the connection is then unusable);
    /// inner errors are per-command traps.
    pub fn pipeline(&mut self, cmds: &[Command]) -> Result<Vec<Result<Vec<Reply>>>> {
        if self.broken {
            return Err(Error::Protocol(
                "connection unusable after an earlier error".into(),
            ));
        }
        let res = self.pipeline_inner(cmds);
        let errors = &crate::metrics::global().api_errors;
        match &res {
            Err(_) => {
                self.broken = true;
                errors.inc(&["connection"]);
            }
            Ok(results) => {
                // "no such item" is an answer (the session is already gone), not a failure.
                let traps = results
                    .iter()
                    .filter(|r| r.as_ref().is_err_and(|e| !e.is_no_such_item()))
                    .count();
                if traps > 0 {
                    errors.add(&["command"], traps as u64);
                }
            }
        }
        res
    }

    fn pipeline_inner(&mut self, cmds: &[Command]) -> Result<Vec<Result<Vec<Reply>>>> {
        let first_tag = self.next_tag;
        self.next_tag += cmds.len() as u64;
        let mut replies: Vec<Vec<Reply>> = vec![Vec::new(); cmds.len()];
        let mut traps: Vec<Option<Error>> = (0..cmds.len()).map(|_| None).collect();
        let mut done = vec![false; cmds.len()];
        let (mut sent, mut finished) = (0usize, 0usize);
        while finished < cmds.len() {
            if sent < cmds.len() && sent - finished < MAX_IN_FLIGHT {
                let mut bytes = Vec::new();
                while sent < cmds.len() && sent - finished < MAX_IN_FLIGHT {
                    let mut words = cmds[sent].words().to_vec();
                    words.push(format!(".tag={}", first_tag + sent as u64));
                    log::trace!("routeros: {} <- {:?}", self.peer, cmds[sent]);
                    bytes.extend(codec::encode_sentence(&words)?);
                    sent += 1;
                }
                self.write_all(&bytes)?;
            }
            let reply = self.read_reply()?;
            if let ReplyKind::Fatal(msg) = &reply.kind {
                return Err(Error::Fatal(msg.clone()));
            }
            let idx = reply
                .tag
                .as_deref()
                .and_then(|t| t.parse::<u64>().ok())
                .and_then(|t| t.checked_sub(first_tag))
                .map(|i| i as usize)
                .filter(|&i| i < sent && !done[i])
                .ok_or_else(|| Error::Protocol(format!("reply with unexpected tag: {reply:?}")))?;
            match reply.kind {
                ReplyKind::Trap { category, message } => {
                    // Keep the first trap; the command still ends with !done.
                    traps[idx].get_or_insert(Error::Trap { category, message });
                }
                ReplyKind::Done => {
                    done[idx] = true;
                    finished += 1;
                    replies[idx].push(reply);
                }
                ReplyKind::Re | ReplyKind::Empty => replies[idx].push(reply),
                ReplyKind::Fatal(_) => unreachable!("handled above"),
            }
        }
        Ok(replies
            .into_iter()
            .zip(traps)
            .map(|(r, trap)| match trap {
                Some(e) => Err(e),
                None => Ok(r),
            })
            .collect())
    }

    /// `<path>/print` with an optional property list and `?key=value` queries (ANDed).
    pub fn print(
        &mut self,
        path: &str,
        proplist: &[&str],
        queries: &[(&str, &str)],
    ) -> Result<Vec<HashMap<String, String>>> {
        let mut cmd =
            Command::new(&format!("{}/print", path.trim_end_matches('/'))).proplist(proplist);
        for (k, v) in queries {
            cmd = cmd.query_eq(k, v);
        }
        let replies = self.command(&cmd)?;
        Ok(replies
            .into_iter()
            .filter(|r| r.kind == ReplyKind::Re)
            .map(|r| r.attrs.into_iter().collect())
            .collect())
    }

    /// One `remove` with all ids (`=.id=*1,*2`). No ids: nothing is sent.
    pub fn remove(&mut self, path: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.command(&remove_cmd(path, &ids.join(","))).map(drop)
    }

    /// One `remove` per id, pipelined.
    pub fn remove_each(&mut self, path: &str, ids: &[String]) -> Result<Vec<Result<()>>> {
        let cmds: Vec<Command> = ids.iter().map(|id| remove_cmd(path, id)).collect();
        Ok(self
            .pipeline(&cmds)?
            .into_iter()
            .map(|r| r.map(drop))
            .collect())
    }

    /// Removes ids in chunks of [`REMOVE_CHUNK`] per command; a chunk whose
    /// multi-id remove traps is retried as pipelined single removes.
    pub fn remove_many(&mut self, path: &str, ids: &[String]) -> Result<RemoveReport> {
        let mut report = RemoveReport::default();
        for chunk in ids.chunks(REMOVE_CHUNK) {
            if chunk.len() > 1 && self.multi_remove_ok {
                report.commands += 1;
                match self.remove(path, chunk) {
                    Ok(()) => {
                        report.removed.extend_from_slice(chunk);
                        continue;
                    }
                    Err(e @ Error::Trap { .. }) => {
                        log::debug!(
                            "routeros: {} multi-id remove of {} ids in {path} trapped ({e}); removing one by one",
                            self.peer,
                            chunk.len()
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            report.commands += chunk.len();
            let results = self.remove_each(path, chunk)?;
            let mut singles_ok = 0;
            for (id, r) in chunk.iter().zip(results) {
                match r {
                    Ok(()) => {
                        singles_ok += 1;
                        report.removed.push(id.clone());
                    }
                    Err(e) if e.is_no_such_item() => report.already_gone.push(id.clone()),
                    Err(e) => report.failed.push((id.clone(), e.to_string())),
                }
            }
            if chunk.len() > 1 && singles_ok == chunk.len() && self.multi_remove_ok {
                log::debug!(
                    "routeros: {} refuses multi-id remove; using single removes from now on",
                    self.peer
                );
                self.multi_remove_ok = false;
            }
        }
        Ok(report)
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let t = self.io_timeout;
        self.io.write_all(bytes).map_err(|e| io_error(e, t))?;
        self.io.flush().map_err(|e| io_error(e, t))
    }

    /// One reply sentence, which must arrive whole within `io_timeout`: a router
    /// that trickles a byte now and then cannot hold the worker past it.
    fn read_reply(&mut self) -> Result<Reply> {
        let mut buf = [0u8; 16 * 1024];
        let deadline = std::time::Instant::now() + self.io_timeout;
        loop {
            if let Some(words) = self.decoder.next_sentence()? {
                let reply = Reply::parse(words)?;
                log::trace!("routeros: {} -> {:?}", self.peer, reply);
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout(self.io_timeout));
            }
            self.tcp.set_read_timeout(Some(left))?;
            let n = self
                .io
                .read(&mut buf)
                .map_err(|e| io_error(e, self.io_timeout))?;
            if n == 0 {
                return Err(Error::Closed);
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}

fn remove_cmd(path: &str, ids: &str) -> Command {
    Command::new(&format!("{}/remove", path.trim_end_matches('/'))).attr(".id", ids)
}

fn io_error(e: io::Error, timeout: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::Timeout(timeout),
        io::ErrorKind::UnexpectedEof => Error::Closed,
        _ => Error::Io(e),
    }
}

fn refused(e: Error) -> Error {
    match e {
        Error::Trap { message, .. } => Error::LoginRefused(message),
        other => other,
    }
}

/// Pre-6.43 login: `"00" + hex(md5(0x00 + password + challenge_bytes))`,
/// where the challenge arrives hex-encoded. `None` if the challenge isn't hex.
pub fn md5_challenge_response(password: &str, challenge_hex: &str) -> Option<String> {
    let challenge = hex_decode(challenge_hex)?;
    let mut input = Vec::with_capacity(1 + password.len() + challenge.len());
    input.push(0u8);
    input.extend_from_slice(password.as_bytes());
    input.extend_from_slice(&challenge);
    Some(format!("00{}", crate::digest::md5_hex(&input)))
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_response_known_vector() {
        // Computed independently: python3 -c "import hashlib;print('00'+hashlib.md5(
        //   b'\x00'+b'secret'+bytes.fromhex('00112233445566778899aabbccddeeff')).hexdigest())"
        assert_eq!(
            md5_challenge_response("secret", "00112233445566778899aabbccddeeff").unwrap(),
            "00c17511d224a5e93170632807d36388aa"
        );
        assert_eq!(md5_challenge_response("x", "abc"), None);
        assert_eq!(md5_challenge_response("x", "zz"), None);
        assert_eq!(md5_challenge_response("x", "é1"), None);
    }

    #[test]
    fn error_display_has_no_secret_and_reads_well() {
        let e = Error::Trap {
            category: Some(2),
            message: "no such item".into(),
        };
        assert_eq!(e.to_string(), "router trap (category 2): no such item");
        assert!(e.is_no_such_item());
        let e = refused(Error::Trap {
            category: None,
            message: "invalid user name or password (6)".into(),
        });
        assert_eq!(
            e.to_string(),
            "login refused: invalid user name or password (6)"
        );
        assert!(!Error::Closed.is_no_such_item());
    }
}
