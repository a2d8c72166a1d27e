//! End-to-end harness: a real `freeradius` (threaded) with our module, on free loopback
//! ports, in a temporary raddb written by scripts/raddb.sh; packets sent with `radclient`.
//! Each server is started with `setsid`, and only that PID is ever signalled.
#![allow(dead_code)]
pub mod cli;
pub mod pg;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SECRET: &str = "testing123";
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// RLM_E2E_BACKEND=postgres: servers start on a fresh PostgreSQL database.
pub fn on_postgres() -> bool {
    std::env::var("RLM_E2E_BACKEND").as_deref() == Ok("postgres")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/debug (or release): where cargo put the module and the CLI for this test run.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Extra lines for the users file.
    pub users: String,
    pub timezone: Option<String>,
    pub stale_after: Option<String>,
    pub background_interval: Option<String>,
    pub synchronous: Option<String>,
    /// Start the server's clock here (libfaketime), e.g. "2026-10-31 23:00:00".
    pub fake_time: Option<String>,
    /// -X (single-threaded, debug log) instead of the threaded server.
    pub debug: bool,
    pub extra_env: Vec<(String, String)>,
    /// Lines for the module's `capping { }` section.
    pub capping: String,
    /// Unlang placed in post-auth right after `rust`.
    pub post_auth_unlang: String,
    /// Extra environment for scripts/raddb.sh (e.g. DM_TIMEOUT=1s).
    pub raddb_env: Vec<(String, String)>,
    /// The store (default: a SQLite file of the server's own), e.g. a PostgreSQL
    /// connection string shared with another server.
    pub db: Option<String>,
}

pub struct Server {
    pub dir: PathBuf,
    pub raddb: PathBuf,
    pub db: PathBuf,
    pub auth_port: u16,
    pub acct_port: u16,
    pub log: PathBuf,
    opts: Options,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    pub fn start(opts: Options) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("rlm-rust-e2e")
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Server::configure(dir, opts);
        s._tmp = Some(tmp);
        s.launch();
        s
    }

    /// Writes the raddb into `dir` (an existing store there is kept).
    fn configure(dir: PathBuf, opts: Options) -> Server {
        let auth_port = free_udp_port();
        let mut acct_port = free_udp_port();
        while acct_port == auth_port {
            acct_port = free_udp_port();
        }
        std::fs::write(dir.join("users.extra"), &opts.users).unwrap();
        // RLM_E2E_BACKEND=postgres: a server of its own on a fresh PostgreSQL database
        // (scripts/test.sh runs the storage-heavy end-to-end files so too).
        let db = match &opts.db {
            Some(d) => PathBuf::from(d),
            None if on_postgres() => PathBuf::from(pg::fresh_db()),
            None => dir.join("db").join("rlm_rust.sqlite"),
        };
        let lib = target_dir().join("librlm_rust.so");
        assert!(
            lib.exists(),
            "{} not built (run cargo build first)",
            lib.display()
        );
        let mut cmd = Command::new(repo().join("scripts/raddb.sh"));
        cmd.arg(&dir)
            .env("RLM_RUST_LIB", &lib)
            .env("AUTH_PORT", auth_port.to_string())
            .env("ACCT_PORT", acct_port.to_string())
            .env("DB", &db)
            .env("TIMEZONE", opts.timezone.as_deref().unwrap_or("UTC"))
            .env("STALE_AFTER", opts.stale_after.as_deref().unwrap_or("3h"))
            .env(
                "BACKGROUND_INTERVAL",
                opts.background_interval.as_deref().unwrap_or("10s"),
            )
            .env("SYNCHRONOUS", opts.synchronous.as_deref().unwrap_or("full"))
            .env("CAPPING", &opts.capping)
            .env("POST_AUTH_UNLANG", &opts.post_auth_unlang);
        for (k, v) in &opts.raddb_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "raddb.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let raddb = dir.join("raddb");
        let log = dir.join("log").join("radius.log");
        Server {
            dir,
            raddb,
            db,
            auth_port,
            acct_port,
            log,
            opts,
            child: None,
            _tmp: None,
        }
    }

    fn launch(&mut self) {
        let _ = std::fs::remove_file(&self.log);
        let mut cmd = Command::new("setsid");
        cmd.arg("freeradius");
        if self.opts.debug {
            cmd.arg("-X");
        } else {
            cmd.arg("-f");
        }
        cmd.arg("-d").arg(&self.raddb).arg("-l").arg(&self.log);
        if let Some(t) = &self.opts.fake_time {
            cmd.env("LD_PRELOAD", FAKETIME_LIB)
                .env("FAKETIME", format!("@{t}"))
                .env("FAKETIME_DONT_RESET", "1");
        }
        for (k, v) in &self.opts.extra_env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("cannot start freeradius");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains("Ready to process requests")
            {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "freeradius exited with {status} at start:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "freeradius not ready after 20 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server not running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends one packet; returns radclient's output (sent and received packets).
    pub fn radclient(&self, kind: &str, attrs: &str) -> Reply {
        radclient(self.port_for(kind), kind, attrs, 2, 1)
    }

    fn port_for(&self, kind: &str) -> u16 {
        if kind == "acct" {
            self.acct_port
        } else {
            self.auth_port
        }
    }

    pub fn acct(&self, attrs: &str) -> Reply {
        self.radclient("acct", attrs)
    }

    pub fn auth(&self, user: &str, password: &str, extra: &str) -> Reply {
        let attrs = format!("User-Name = \"{user}\", User-Password = \"{password}\"{extra}");
        self.radclient("auth", &attrs)
    }

    fn signal(&mut self, sig: &str) {
        if let Some(child) = self.child.as_mut() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status();
            let _ = child.wait();
        }
        self.child = None;
    }

    /// SIGTERM and wait: a clean shutdown (module detach runs).
    pub fn stop(&mut self) {
        self.signal("TERM");
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill9(&mut self) {
        self.signal("KILL");
    }

    /// Starts again on the same raddb and store, optionally at another fake time.
    pub fn restart(&mut self, fake_time: Option<String>) {
        self.stop();
        self.opts.fake_time = fake_time;
        self.launch();
    }

    /// One update of the session `sess-USER` on `nas`: `down` output octets after
    /// 60 s; fails the test without an Accounting-Response.
    pub fn session_update(&self, status: &str, user: &str, nas: &str, down: u64) {
        let r = self.acct(&acct_attrs(
            status,
            user,
            &format!("sess-{user}"),
            nas,
            0,
            down,
            60,
        ));
        assert!(r.ok, "no Accounting-Response: {}", r.output);
    }

    /// Registers a NAS of `kind` whose RFC 5176 requests go to `dm` (a NAS double).
    pub fn add_nas(&self, nas_ip: &str, kind: &str, dm: std::net::SocketAddr) {
        let (host, port) = (dm.ip().to_string(), dm.port().to_string());
        self.cli_ok(&[
            "nas",
            "add",
            nas_ip,
            "--name",
            nas_ip,
            "--type",
            kind,
            "--coa-host",
            &host,
            "--coa-port",
            &port,
        ]);
    }

    /// Sends `requests` (radclient input, blank-line separated) all at once, `n` in
    /// flight; fails the test unless every one is answered.
    pub fn radclient_parallel(&self, kind: &str, requests: &str, n: usize) {
        use std::io::Write;
        let port = if kind == "auth" {
            self.auth_port
        } else {
            self.acct_port
        };
        let mut child = Command::new("radclient")
            .args(["-q", "-p", &n.to_string(), "-r", "3", "-t", "3"])
            .arg(format!("127.0.0.1:{port}"))
            .args([kind, SECRET])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(requests.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "every {kind} answered; log:\n{}",
            self.log_text()
        );
    }

    /// Waits until `f` holds; on timeout fails the test with the server's log.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !f() {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs the `rlm-rust` CLI on this server's store.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(target_dir().join("rlm-rust"))
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .env(
                "RLM_RUST_TIMEZONE",
                self.opts.timezone.as_deref().unwrap_or("UTC"),
            )
            .output()
            .unwrap()
    }

    /// Runs the CLI, asserts success, returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "rlm-rust {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "rlm-rust {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("rlm-rust {args:?}: bad JSON ({e})"))
    }

    /// MB of all the user's topups (`topup list --all`).
    pub fn topups_total(&self, user: &str) -> u64 {
        self.cli_json(&["topup", "list", user, "--all"])["topups"]
            .as_array()
            .expect("a topups array")
            .iter()
            .map(|t| t["value"].as_u64().unwrap())
            .sum()
    }

    /// The store for a test's own queries, whichever backend it is on.
    pub fn sql(&self) -> TestDb {
        if self.db.exists() {
            TestDb::Sqlite(
                rusqlite::Connection::open_with_flags(
                    &self.db,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )
                .unwrap(),
            )
        } else {
            TestDb::Pg(std::cell::RefCell::new(pg::connect(
                self.db.to_str().unwrap(),
            )))
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("KILL");
    }
}

#[derive(Debug)]
pub struct Reply {
    pub ok: bool,
    pub output: String,
}

impl Reply {
    pub fn code(&self) -> Option<&str> {
        self.output
            .lines()
            .find_map(|l| l.strip_prefix("Received ")?.split_whitespace().next())
    }
    pub fn has(&self, text: &str) -> bool {
        self.output.contains(text)
    }
}

/// radclient with `retries` (at least 1: radclient refuses 0) and `timeout` seconds;
/// `ok` = a reply came back.
pub fn radclient(port: u16, kind: &str, attrs: &str, retries: u32, timeout: u32) -> Reply {
    use std::io::Write;
    let mut child = Command::new("radclient")
        .args(["-x", "-r", &retries.to_string(), "-t", &timeout.to_string()])
        .arg(format!("127.0.0.1:{port}"))
        .arg(kind)
        .arg(SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient missing (scripts/deps.sh installs freeradius-utils)");
    // radclient may exit before reading (bad options); its output says why.
    let _ = child.stdin.take().unwrap().write_all(attrs.as_bytes());
    let out = child.wait_with_output().unwrap();
    let output =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Reply {
        ok: output.contains("Received "),
        output,
    }
}

/// Accounting attributes for one session update.
pub fn acct_attrs(
    status: &str,
    user: &str,
    session: &str,
    nas: &str,
    input: u64,
    output: u64,
    time: u32,
) -> String {
    format!(
        "User-Name = \"{user}\", Acct-Status-Type = {status}, Acct-Session-Id = \"{session}\", \
         NAS-IP-Address = {nas}, Acct-Input-Octets = {}, Acct-Input-Gigawords = {}, \
         Acct-Output-Octets = {}, Acct-Output-Gigawords = {}, Acct-Session-Time = {time}, \
         Framed-IP-Address = 100.64.0.10, Calling-Station-Id = \"02:00:00:00:00:01\", NAS-Port = 7",
        input & 0xffff_ffff,
        input >> 32,
        output & 0xffff_ffff,
        output >> 32
    )
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The value of a vendor's attribute in a packet (a NAS double received it).
pub fn vsa_value(p: &rlm_rust::radius::Packet, vendor: u32, typ: u8) -> Option<Vec<u8>> {
    p.attributes.iter().find_map(|a| {
        let (v, subs) = a.as_vsa()?;
        (v == vendor)
            .then(|| {
                subs.iter()
                    .find(|s| s.vendor_type == typ)
                    .map(|s| s.value.to_vec())
            })
            .flatten()
    })
}

/// The Mikrotik-Rate-Limit of a packet.
pub fn rate_of(p: &rlm_rust::radius::Packet) -> Option<String> {
    use rlm_rust::radius::attrs;
    vsa_value(p, attrs::VENDOR_MIKROTIK, attrs::MIKROTIK_RATE_LIMIT)
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A test's read connection to the store: rusqlite's calls, as the tests use them
/// (`?N` placeholders, text parameters), on SQLite or PostgreSQL (where every value
/// comes back as text and is parsed).
pub enum TestDb {
    Sqlite(rusqlite::Connection),
    Pg(std::cell::RefCell<postgres::Client>),
}

pub enum TestRow<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::SimpleQueryRow),
}

pub trait TestIdx {
    fn idx(self) -> usize;
}
impl TestIdx for usize {
    fn idx(self) -> usize {
        self
    }
}

/// A column value a test reads.
pub trait TestCol: Sized + rusqlite::types::FromSql {
    fn from_text(t: Option<&str>) -> Option<Self>;
}
macro_rules! test_col {
    ($($t:ty),*) => {$(
        impl TestCol for $t {
            fn from_text(t: Option<&str>) -> Option<Self> {
                t?.parse().ok()
            }
        }
        impl TestCol for Option<$t> {
            fn from_text(t: Option<&str>) -> Option<Self> {
                match t {
                    None => Some(None),
                    Some(v) => v.parse().ok().map(Some),
                }
            }
        }
    )*};
}
test_col!(i64, i32, u32, u64, f64, String);

/// Names as their exact bytes (PostgreSQL keeps them escaped, see rlm_rust::names).
impl TestCol for Vec<u8> {
    fn from_text(t: Option<&str>) -> Option<Self> {
        Some(rlm_rust::names::encode(t?).into_owned())
    }
}

impl TestCol for bool {
    fn from_text(t: Option<&str>) -> Option<Self> {
        match t? {
            "1" | "t" | "true" => Some(true),
            "0" | "f" | "false" => Some(false),
            _ => None,
        }
    }
}

impl TestRow<'_> {
    pub fn get<I: TestIdx, T: TestCol>(&self, i: I) -> rusqlite::Result<T> {
        let i = i.idx();
        match self {
            TestRow::Sqlite(r) => r.get(i),
            TestRow::Pg(r) => T::from_text(r.get(i)).ok_or(rusqlite::Error::InvalidColumnIndex(i)),
        }
    }
}

/// `?N` replaced by quoted values, and SQLite's `CAST(x AS BLOB)` by `x` (a name's
/// text, which [`TestCol`] for `Vec<u8>` reads back as its exact bytes).
fn pg_inline(sql: &str, params: &[&str]) -> String {
    let mut out = sql.to_string();
    while let Some(start) = out.find("CAST(") {
        let Some(len) = out[start..].find(" AS BLOB)") else {
            break;
        };
        let inner = out[start + 5..start + len].to_string();
        out.replace_range(start..start + len + " AS BLOB)".len(), &inner);
    }
    // Highest first: ?10 before ?1.
    for (i, p) in params.iter().enumerate().rev() {
        out = out.replace(
            &format!("?{}", i + 1),
            &format!("'{}'", p.replace('\'', "''")),
        );
    }
    out
}

impl TestDb {
    pub fn query_row<const N: usize, T>(
        &self,
        sql: &str,
        params: [&str; N],
        f: impl FnOnce(&TestRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match self {
            TestDb::Sqlite(c) => c.query_row(sql, rusqlite::params_from_iter(params.iter()), |r| {
                f(&TestRow::Sqlite(r))
            }),
            TestDb::Pg(c) => {
                let msgs = c
                    .borrow_mut()
                    .simple_query(&pg_inline(sql, &params))
                    .unwrap();
                let row = msgs.iter().find_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(r),
                    _ => None,
                });
                match row {
                    Some(r) => f(&TestRow::Pg(r)),
                    None => Err(rusqlite::Error::QueryReturnedNoRows),
                }
            }
        }
    }

    pub fn prepare(&self, sql: &str) -> rusqlite::Result<TestStmt<'_>> {
        Ok(TestStmt {
            db: self,
            sql: sql.to_string(),
        })
    }
}

pub struct TestStmt<'a> {
    db: &'a TestDb,
    sql: String,
}

impl TestStmt<'_> {
    pub fn query_map<const N: usize, T>(
        &mut self,
        params: [&str; N],
        mut f: impl FnMut(&TestRow<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<std::vec::IntoIter<rusqlite::Result<T>>> {
        let mut out = Vec::new();
        match self.db {
            TestDb::Sqlite(c) => {
                let mut st = c.prepare(&self.sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(params.iter()))?;
                while let Some(r) = rows.next()? {
                    out.push(f(&TestRow::Sqlite(r)));
                }
            }
            TestDb::Pg(c) => {
                for m in c
                    .borrow_mut()
                    .simple_query(&pg_inline(&self.sql, &params))
                    .unwrap()
                {
                    if let postgres::SimpleQueryMessage::Row(r) = m {
                        out.push(f(&TestRow::Pg(&r)));
                    }
                }
            }
        }
        Ok(out.into_iter())
    }
}

/// Sends Accounting-Requests straight over UDP (raw bytes anywhere, far faster than a
/// radclient per packet), at most `window` in flight; returns how many were answered
/// with an Accounting-Response.
pub fn send_all(
    server: &Server,
    packets: &[Vec<rlm_rust::radius::attrs::Attribute>],
    window: usize,
) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", server.acct_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let (mut next, mut answered, mut in_flight) = (0usize, 0usize, 0usize);
    let mut last_progress = Instant::now();
    let mut buf = [0u8; 4096];
    while next < packets.len() || in_flight > 0 {
        while in_flight < window && next < packets.len() {
            let mut p = rlm_rust::radius::packet::Packet::new(
                rlm_rust::radius::Code::AccountingRequest,
                (next % 256) as u8,
            );
            p.attributes = packets[next].clone();
            sock.send(&p.encode_request(SECRET.as_bytes()).unwrap())
                .unwrap();
            next += 1;
            in_flight += 1;
        }
        match sock.recv(&mut buf) {
            Ok(n) if n >= 20 && buf[0] == 5 => {
                answered += 1;
                in_flight -= 1;
                last_progress = Instant::now();
            }
            Ok(_) => {}
            // Unanswered (invalid, or refused by the server): give up on them.
            Err(_) if last_progress.elapsed() > Duration::from_secs(2) => {
                in_flight = 0;
                last_progress = Instant::now();
            }
            Err(_) => {}
        }
    }
    answered
}
