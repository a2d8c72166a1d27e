//! Bad input end to end: what a broken or hostile NAS sends must never crash the
//! server, corrupt a user, or merge two users; the module logs it and goes on.
mod common;
use common::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn an_implausible_acct_delay_time_is_ignored_not_clamped() {
    let server = Server::start(Options::default());
    let nas = "127.0.0.2";
    let before = now();
    let start = acct_attrs("Start", "delay", "d1", nas, 0, 0, 0) + ", Acct-Delay-Time = 4000000000";
    assert!(server.acct(&start).ok);
    let interim = acct_attrs("Interim-Update", "delay", "d1", nas, 1000, 1000, 60)
        + ", Acct-Delay-Time = 4000000000";
    assert!(server.acct(&interim).ok);
    let (start_time, jobs): (i64, i64) = server
        .sql()
        .query_row(
            "SELECT start_time, (SELECT COUNT(*) FROM disconnect_queue) FROM sessions \
             WHERE acct_session_id = 'd1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Dated when it arrived, not a week back (which early in a month is last month
    // and queued a month-boundary disconnect).
    assert!(
        (before - 5..=now() + 5).contains(&start_time),
        "start {start_time}, now {before}"
    );
    assert_eq!(
        jobs, 0,
        "no month-boundary disconnect for a session opened now"
    );
    wait_until("the log line", std::time::Duration::from_secs(5), || {
        server.log_text().contains("Acct-Delay-Time 4000000000")
    });
}

/// A NAS double with 32-bit octet counters (OPNsense, CoovaChilli): it keeps the
/// true totals and sends them modulo 2^32, never with Gigawords.
struct Nas32 {
    nas: &'static str,
    session: &'static str,
    user: &'static str,
    input: u64,
    output: u64,
    time: u32,
}

impl Nas32 {
    fn packet(&self, status: &str) -> String {
        format!(
            "User-Name = \"{}\", Acct-Status-Type = {status}, Acct-Session-Id = \"{}\", \
             NAS-IP-Address = {}, Acct-Input-Octets = {}, Acct-Output-Octets = {}, \
             Acct-Session-Time = {}",
            self.user,
            self.session,
            self.nas,
            self.input % (1 << 32),
            self.output % (1 << 32),
            self.time
        )
    }

    /// Moves `input` / `output` more bytes over `secs` and reports an Interim.
    fn carry(&mut self, server: &Server, input: u64, output: u64, secs: u32) {
        self.input += input;
        self.output += output;
        self.time += secs;
        assert!(server.acct(&self.packet("Interim-Update")).ok);
    }
}

fn usage_of(server: &Server, user: &str) -> (u64, u64) {
    let u = server.cli_json(&["usage", user]);
    let m = &u["months"][0];
    (
        m["input_octets"].as_u64().unwrap(),
        m["output_octets"].as_u64().unwrap(),
    )
}

#[test]
fn a_nas_without_gigawords_wraps_twice_and_no_usage_is_lost() {
    let server = Server::start(Options {
        debug: true,
        ..Default::default()
    });
    let g = 1u64 << 30;
    let mut nas = Nas32 {
        nas: "127.0.0.2",
        session: "w1",
        user: "wrapper",
        input: 0,
        output: 0,
        time: 0,
    };
    assert!(server.acct(&nas.packet("Start")).ok);
    nas.carry(&server, 3 * g, g, 300);
    nas.carry(&server, 2 * g, g / 2, 300); // input wraps (5 GiB)
    nas.carry(&server, 3 * g, 3 * g, 300); // input wraps again (8 GiB), output once (4.5 GiB)
    nas.carry(&server, g, g, 300);
    assert_eq!(usage_of(&server, "wrapper"), (nas.input, nas.output));
    assert!(server.acct(&nas.packet("Stop")).ok);
    assert_eq!(usage_of(&server, "wrapper"), (9 * g, 11 * g / 2));
    assert!(
        server.log_text().contains("input counter wrapped at 4 GiB"),
        "the decision is in the debug line"
    );

    // counter_wrap = off on that NAS: a backwards counter counts zero, as before.
    server.cli_ok(&[
        "nas",
        "add",
        "127.0.0.3",
        "--name",
        "old",
        "--counter-wrap",
        "off",
    ]);
    let mut off = Nas32 {
        nas: "127.0.0.3",
        session: "w2",
        user: "nowrap",
        input: 0,
        output: 0,
        time: 0,
    };
    assert!(server.acct(&off.packet("Start")).ok);
    off.carry(&server, 3 * g, 0, 300);
    off.carry(&server, 2 * g, 0, 300);
    assert_eq!(usage_of(&server, "nowrap"), (3 * g, 0));
    let nas_list = server.cli_json(&["nas", "list"]);
    assert_eq!(nas_list["nas"][0]["counter_wrap"], "off", "{nas_list}");
}

#[test]
fn counters_at_their_maximum_never_make_a_user_unreadable() {
    let server = Server::start(Options {
        users: "DEFAULT\tCleartext-Password := \"pw\"\n".into(),
        ..Default::default()
    });
    let nas = "127.0.0.2";
    let max = u32::MAX;
    let huge = format!(
        "User-Name = \"max\", Acct-Status-Type = Interim-Update, Acct-Session-Id = \"m1\", \
         NAS-IP-Address = {nas}, Acct-Input-Octets = {max}, Acct-Input-Gigawords = {max}, \
         Acct-Output-Octets = {max}, Acct-Output-Gigawords = {max}, Acct-Session-Time = {max}"
    );
    assert!(
        server.acct(&huge).ok,
        "acknowledged (and refused in the log)"
    );
    // Then real traffic, in that session and another.
    for (sid, t) in [("m1", 60), ("m2", 60), ("m2", 120)] {
        let r = server.acct(&acct_attrs(
            "Interim-Update",
            "max",
            sid,
            nas,
            1000,
            2000,
            t,
        ));
        assert!(r.ok);
        assert!(
            server
                .acct(&huge.replace("\"m1\"", &format!("\"{sid}\"")))
                .ok
        );
    }
    let u = server.cli_json(&["usage", "max"]);
    assert_eq!(u["months"][0]["input_octets"].as_u64(), Some(2000), "{u}");
    let start: i64 = server
        .sql()
        .query_row("SELECT MIN(start_time) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert!(start > now() - 86_400, "no session dated in 1890: {start}");
    assert_eq!(server.auth("max", "pw", "").code(), Some("Access-Accept"));
    assert!(server.log_text().contains("counters refused"));
}

use rlm_rust::radius::attrs::Attribute;
use rlm_rust::radius::packet::Packet;
use std::net::UdpSocket;
use std::time::Duration;

fn s(typ: u8, v: &[u8]) -> Attribute {
    Attribute::new(typ, v.to_vec())
}
fn i(typ: u8, v: u32) -> Attribute {
    Attribute::integer(typ, v)
}

const NAS_IP: u8 = 4;
const USER_NAME: u8 = 1;
const STATUS: u8 = 40;
const SESSION_ID: u8 = 44;
const IN: u8 = 42;
const OUT: u8 = 43;
const TIME: u8 = 46;
const DELAY: u8 = 41;
const IN_GIGA: u8 = 52;
const OUT_GIGA: u8 = 53;

#[test]
fn user_names_in_latin1_stay_distinct_users() {
    let server = Server::start(Options::default());
    let nas = Attribute::ipv4(NAS_IP, "127.0.0.2".parse().unwrap());
    let names: [&[u8]; 3] = [b"m\xfcller", b"m\xe4ller", "müller".as_bytes()];
    let mut packets = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let sid = [b's', 0xff, b'0' + n as u8];
        packets.push(vec![
            s(USER_NAME, name),
            i(STATUS, 1),
            s(SESSION_ID, &sid),
            nas.clone(),
        ]);
        packets.push(vec![
            s(USER_NAME, name),
            i(STATUS, 3),
            s(SESSION_ID, &sid),
            nas.clone(),
            i(IN, 1000 * (n as u32 + 1)),
            i(OUT, 0),
            i(TIME, 60),
        ]);
    }
    assert_eq!(send_all(&server, &packets, 1), packets.len());
    // Stored exactly: three users, their own bytes, their own usage.
    let db = server.sql();
    let mut stmt = db
        .prepare("SELECT CAST(m.username AS BLOB), m.input_octets, CAST(s.acct_session_id AS BLOB) FROM usage_month m JOIN sessions s USING (username) ORDER BY m.input_octets")
        .unwrap();
    let rows: Vec<(Vec<u8>, i64, Vec<u8>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 3, "{rows:x?}");
    for (n, (user, input, sid)) in rows.iter().enumerate() {
        assert_eq!(&user[..], names[n]);
        assert_eq!(*input, 1000 * (n as i64 + 1));
        assert_eq!(&sid[..], &[b's', 0xff, b'0' + n as u8]);
    }
    // The CLI takes the raw bytes and shows them escaped.
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new(target_dir().join("rlm-rust"))
        .arg("--db")
        .arg(&server.db)
        .args(["--json", "usage"])
        .arg(std::ffi::OsStr::from_bytes(b"m\xe4ller"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let u: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(u["months"][0]["input_octets"].as_u64(), Some(2000), "{u}");
    let table = server.cli_ok(&["sessions", "list"]);
    assert!(
        table.contains("\"m\\xfcller\"") && table.contains("müller"),
        "{table}"
    );
}

/// xorshift64*: reproducible from the seed printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A counter value a broken or hostile NAS might send.
fn wild(rng: &mut Rng, base: u32) -> u32 {
    match rng.below(6) {
        0 => u32::MAX,
        1 => rng.next() as u32,
        2 => 0,
        _ => base.saturating_add(rng.below(1 << 24) as u32),
    }
}

#[test]
fn thousands_of_random_signed_accounting_packets_keep_every_invariant() {
    let seed = std::env::var("RLM_RUST_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now() as u64 | 1);
    eprintln!("seed {seed} (RLM_RUST_FUZZ_SEED to replay)");
    let mut rng = Rng(seed);
    let server = Server::start(Options {
        users: "DEFAULT\tCleartext-Password := \"pw\"\n".into(),
        ..Default::default()
    });
    let users: Vec<Vec<u8>> = (0..30)
        .map(|n| match n % 5 {
            0 => vec![b'm', 0xfc, b'0' + (n / 5) as u8],
            1 => vec![0xff, b'0' + (n / 5) as u8],
            _ => format!("user{n}").into_bytes(),
        })
        .collect();
    let nases = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let mut packets = Vec::new();
    let mut counters = vec![0u32; 120];
    for _ in 0..4000 {
        let sess = rng.below(120) as usize;
        counters[sess] = counters[sess].wrapping_add(rng.below(1 << 22) as u32);
        let mut p = vec![
            s(USER_NAME, &users[sess % users.len()]),
            i(STATUS, rng.pick(&[1, 2, 3, 3, 3, 3, 7, 8, 15, 99])),
            s(SESSION_ID, format!("r{sess}").as_bytes()),
            Attribute::ipv4(NAS_IP, rng.pick(&nases).parse().unwrap()),
        ];
        if rng.below(10) > 0 {
            p.push(i(IN, wild(&mut rng, counters[sess])));
            p.push(i(OUT, wild(&mut rng, counters[sess] / 2)));
        }
        if rng.below(3) == 0 {
            p.push(i(IN_GIGA, wild(&mut rng, 0) % 3));
            p.push(i(OUT_GIGA, wild(&mut rng, 0)));
        }
        if rng.below(5) > 0 {
            p.push(i(TIME, wild(&mut rng, counters[sess] >> 16)));
        }
        if rng.below(8) == 0 {
            p.push(i(DELAY, wild(&mut rng, 0)));
        }
        if rng.below(20) == 0 {
            // A User-Name of random bytes, or none at all.
            p.retain(|a| a.typ != USER_NAME);
            if rng.below(2) == 0 {
                let len = 1 + rng.below(12) as usize;
                p.push(s(
                    USER_NAME,
                    &(0..len).map(|_| rng.next() as u8).collect::<Vec<_>>(),
                ));
            }
        }
        packets.push(p);
    }
    let answered = send_all(&server, &packets, 32);
    assert!(
        answered > packets.len() / 2,
        "{answered} of {} answered",
        packets.len()
    );

    // The server is alive and answers.
    assert_eq!(server.auth("user2", "pw", "").code(), Some("Access-Accept"));
    let db = server.sql();
    if !on_postgres() {
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
    // Every counter an integer (PostgreSQL's BIGINT columns hold nothing else),
    // never negative.
    let not_integer = |col: &str| {
        if on_postgres() {
            "FALSE".to_string()
        } else {
            format!("typeof({col}) <> 'integer'")
        }
    };
    for (table, cols) in [
        (
            "sessions",
            ["input_octets", "output_octets", "session_time"],
        ),
        (
            "usage_month",
            ["input_octets", "output_octets", "session_time"],
        ),
        (
            "usage_day",
            ["input_octets", "output_octets", "session_time"],
        ),
    ] {
        for col in cols {
            let bad: i64 = db
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM {table} WHERE {} OR {col} < 0",
                        not_integer(col)
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(bad, 0, "{table}.{col} (seed {seed})");
        }
    }
    // Per user: the months and the days each sum to what its sessions counted.
    let sums = |sql: &str| -> std::collections::BTreeMap<Vec<u8>, (i64, i64, i64)> {
        let mut stmt = db.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows
    };
    let q = |t: &str| {
        format!(
            "SELECT CAST(username AS BLOB), SUM(input_octets), SUM(output_octets), \
             SUM(session_time) FROM {t} GROUP BY username HAVING SUM(input_octets) + \
             SUM(output_octets) + SUM(session_time) > 0"
        )
    };
    let by_sessions = sums(&q("sessions"));
    assert_eq!(sums(&q("usage_month")), by_sessions, "months (seed {seed})");
    assert_eq!(sums(&q("usage_day")), by_sessions, "days (seed {seed})");
    // Every user readable by the CLI and by authorize (DEFAULT password: Accept).
    use std::os::unix::ffi::OsStrExt;
    let mut stmt = db
        .prepare("SELECT DISTINCT CAST(username AS BLOB) FROM sessions")
        .unwrap();
    let names: Vec<Vec<u8>> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(names.len() > 20, "{}", names.len());
    // A NUL byte cannot be in a command-line argument; those are read by authorize.
    for name in names.iter().filter(|n| !n.contains(&0)) {
        let out = std::process::Command::new(target_dir().join("rlm-rust"))
            .arg("--db")
            .arg(&server.db)
            // `--`: a fuzzed name may start with `-`.
            .args(["--json", "usage", "--"])
            .arg(std::ffi::OsStr::from_bytes(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "usage {name:x?}: {} (seed {seed})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let auth: Vec<Vec<Attribute>> = names
        .iter()
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .map(|n| vec![s(USER_NAME, n)])
        .collect();
    let accepted = authorize_all(&server, &auth);
    assert_eq!(accepted, auth.len(), "every user logs in (seed {seed})");
}

/// Access-Requests with User-Password "pw" for each attribute set; how many got
/// an Access-Accept.
fn authorize_all(server: &Server, requests: &[Vec<Attribute>]) -> usize {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", server.auth_port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut accepted = 0;
    let mut buf = [0u8; 4096];
    for (n, attrs) in requests.iter().enumerate() {
        let mut p = Packet::access_request(n as u8).unwrap();
        p.attributes = attrs.clone();
        p.set_user_password(b"pw", SECRET.as_bytes()).unwrap();
        p.add_message_authenticator();
        sock.send(&p.encode_request(SECRET.as_bytes()).unwrap())
            .unwrap();
        if let Ok(len) = sock.recv(&mut buf) {
            if len >= 20 && buf[0] == 2 {
                accepted += 1;
            }
        }
    }
    accepted
}
