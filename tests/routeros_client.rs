//! Client ↔ server-double integration tests (127.0.0.1, ephemeral ports).

use std::time::Duration;

use rlm_rust::routeros::codec::Command;
use rlm_rust::routeros::double::{DoubleConfig, Faults, LoginMode, RouterOsDouble};
use rlm_rust::routeros::{
    disconnect_started_before, disconnect_user, find_user_sessions, Client, ConnectOptions, Error,
    LoginMethod, SessionTable, TlsOptions, TlsVerify,
};

const USER: &str = "api";
const PASS: &str = "pa55-w0rd";

fn double(mode: LoginMode, faults: Faults) -> RouterOsDouble {
    RouterOsDouble::start(DoubleConfig {
        user: USER.into(),
        password: PASS.into(),
        login_mode: mode,
        faults,
    })
    .unwrap()
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(5),
        tls: None,
    }
}

fn connect(d: &RouterOsDouble) -> Client {
    Client::connect("127.0.0.1", d.port(), &opts()).unwrap()
}

fn logged_in(d: &RouterOsDouble) -> Client {
    let mut c = connect(d);
    c.login(USER, PASS).unwrap();
    c
}

#[test]
fn login_plain_and_md5() {
    let d = double(LoginMode::Plain, Faults::default());
    assert_eq!(connect(&d).login(USER, PASS).unwrap(), LoginMethod::Plain);
    d.set_login_mode(LoginMode::Md5Challenge);
    assert_eq!(
        connect(&d).login(USER, PASS).unwrap(),
        LoginMethod::Md5Challenge
    );
    let c = d.counters();
    assert_eq!((c.logins_ok, c.logins_failed), (2, 0));
}

#[test]
fn wrong_password_is_refused_without_leaking_it() {
    for mode in [LoginMode::Plain, LoginMode::Md5Challenge] {
        let d = double(mode, Faults::default());
        let secret = "hunter2-not-the-password";
        let err = connect(&d).login(USER, secret).unwrap_err();
        assert!(
            matches!(err, Error::LoginRefused(ref m) if m.contains("invalid")),
            "{err:?}"
        );
        assert!(!err.to_string().contains(secret));
        assert!(!format!("{err:?}").contains(secret));
        let err = connect(&d).login("nobody", PASS).unwrap_err();
        assert!(matches!(err, Error::LoginRefused(_)), "{err:?}");
        assert_eq!(d.counters().logins_failed, 2);
        assert_eq!(d.counters().logins_ok, 0);
    }
}

#[test]
fn commands_before_login_trap() {
    let d = double(LoginMode::Plain, Faults::default());
    let mut c = connect(&d);
    let err = c.print("/ppp/active", &[], &[]).unwrap_err();
    assert!(matches!(err, Error::Trap { ref message, .. } if message == "not logged in"));
}

#[test]
fn print_with_proplist_and_query() {
    let d = double(LoginMode::Plain, Faults::default());
    let a = d.add_session(SessionTable::Ppp, "alice", "100.64.0.2", "1h");
    d.add_session(SessionTable::Ppp, "bob", "100.64.0.3", "2d03:04:05");
    d.add_session(SessionTable::Hotspot, "carol", "100.65.0.9", "45s");
    let mut c = logged_in(&d);

    let all = c.print("/ppp/active", &[], &[]).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["service"], "pppoe");

    let rows = c
        .print("/ppp/active", &[".id", "uptime"], &[("name", "alice")])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][".id"], a);
    assert_eq!(rows[0]["uptime"], "1h");
    assert!(
        !rows[0].contains_key("name"),
        "proplist honoured: {:?}",
        rows[0]
    );

    let hs = c.print("/ip/hotspot/active", &["user"], &[]).unwrap();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["user"], "carol");

    assert!(c
        .print("/ppp/active", &[], &[("name", "zed")])
        .unwrap()
        .is_empty());
    let err = c.print("/no/such", &[], &[]).unwrap_err();
    assert!(matches!(err, Error::Trap { .. }), "{err:?}");
}

#[test]
fn empty_reply_of_new_firmware_is_handled() {
    let d = double(
        LoginMode::Plain,
        Faults {
            send_empty: true,
            ..Faults::default()
        },
    );
    let mut c = logged_in(&d);
    assert!(c.print("/ppp/active", &[], &[]).unwrap().is_empty());
    d.add_session(SessionTable::Ppp, "x", "100.64.0.1", "1s");
    assert_eq!(c.print("/ppp/active", &[], &[]).unwrap().len(), 1);
}

#[test]
fn remove_several_ids_in_one_command() {
    let d = double(LoginMode::Plain, Faults::default());
    let ids: Vec<String> = (0..5)
        .map(|i| d.add_session(SessionTable::Ppp, &format!("u{i}"), "100.64.0.1", "1h"))
        .collect();
    let mut c = logged_in(&d);
    let report = c.remove_many("/ppp/active", &ids[..3]).unwrap();
    assert_eq!(report.removed, ids[..3].to_vec());
    assert_eq!(report.commands, 1);
    assert!(report.already_gone.is_empty() && report.failed.is_empty());
    assert_eq!(d.counters().remove_commands, 1);
    assert_eq!(d.counters().removed_ids, 3);
    assert_eq!(d.ids(SessionTable::Ppp), ids[3..].to_vec());

    // remove() is a plain multi-id command; an unknown id traps.
    let err = c.remove("/ppp/active", &["*FFFF".to_string()]).unwrap_err();
    assert!(err.is_no_such_item(), "{err:?}");
    c.remove("/ppp/active", &ids[3..]).unwrap();
    assert!(d.ids(SessionTable::Ppp).is_empty());
    c.remove("/ppp/active", &[]).unwrap();
    assert_eq!(
        d.counters().remove_commands,
        3,
        "empty remove sends nothing"
    );
}

#[test]
fn multi_remove_trap_falls_back_to_pipelined_singles() {
    let d = double(
        LoginMode::Plain,
        Faults {
            multi_remove_traps: true,
            ..Faults::default()
        },
    );
    let ids: Vec<String> = (0..6)
        .map(|i| d.add_session(SessionTable::Hotspot, &format!("u{i}"), "100.64.0.1", "1h"))
        .collect();
    let mut c = logged_in(&d);
    let report = c.remove_many("/ip/hotspot/active", &ids[..4]).unwrap();
    assert_eq!(report.removed, ids[..4].to_vec());
    assert_eq!(report.commands, 1 + 4);
    assert_eq!(d.counters().removed_ids, 4);
    // The connection now knows multi-id remove doesn't work: singles only.
    let report = c.remove_many("/ip/hotspot/active", &ids[4..]).unwrap();
    assert_eq!(report.commands, 2);
    assert_eq!(report.removed, ids[4..].to_vec());
    assert_eq!(d.counters().remove_commands, 1 + 4 + 2);
    assert!(d.ids(SessionTable::Hotspot).is_empty());
}

#[test]
fn stale_ids_count_as_already_gone() {
    let d = double(LoginMode::Plain, Faults::default());
    let ids: Vec<String> = (0..4)
        .map(|i| d.add_session(SessionTable::Ppp, &format!("u{i}"), "100.64.0.1", "1h"))
        .collect();
    let mut c = logged_in(&d);
    assert!(d.vanish(&ids[1]));
    assert!(!d.vanish(&ids[1]));
    let report = c.remove_many("/ppp/active", &ids).unwrap();
    assert_eq!(report.already_gone, vec![ids[1].clone()]);
    assert_eq!(
        report.removed,
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
    assert!(report.failed.is_empty());
    assert!(d.ids(SessionTable::Ppp).is_empty());
}

#[test]
fn pipelined_commands_are_matched_by_tag() {
    let d = double(
        LoginMode::Plain,
        Faults {
            latency: Duration::from_millis(20),
            ..Faults::default()
        },
    );
    for i in 0..10 {
        d.add_session(
            SessionTable::Ppp,
            &format!("user{i}"),
            &format!("100.64.0.{i}"),
            "1m",
        );
    }
    let mut c = logged_in(&d);
    let cmds: Vec<Command> = (0..10)
        .rev()
        .map(|i| Command::new("/ppp/active/print").query_eq("name", &format!("user{i}")))
        .chain(std::iter::once(Command::new("/ppp/active/bogus")))
        .collect();
    let results = c.pipeline(&cmds).unwrap();
    assert_eq!(results.len(), 11);
    for (k, r) in results[..10].iter().enumerate() {
        let replies = r.as_ref().unwrap();
        let i = 9 - k;
        assert_eq!(replies.len(), 2, "one !re and the !done");
        assert_eq!(replies[0].attrs["name"], format!("user{i}"));
        assert_eq!(replies[0].attrs["address"], format!("100.64.0.{i}"));
    }
    assert!(matches!(results[10], Err(Error::Trap { .. })));
    assert!(
        d.counters().max_in_flight >= 2,
        "commands were in flight together: {:?}",
        d.counters()
    );
    // Still usable after a per-command trap.
    assert_eq!(c.print("/ppp/active", &[], &[]).unwrap().len(), 10);
}

#[test]
fn long_pipeline_beyond_window() {
    let d = double(LoginMode::Plain, Faults::default());
    let ids: Vec<String> = (0..300)
        .map(|i| d.add_session(SessionTable::Ppp, &format!("u{i}"), "100.64.0.1", "1h"))
        .collect();
    let mut c = logged_in(&d);
    let results = c.remove_each("/ppp/active", &ids).unwrap();
    assert_eq!(results.len(), 300);
    assert!(results.iter().all(Result::is_ok));
    assert!(d.ids(SessionTable::Ppp).is_empty());
    assert!(d.counters().max_in_flight <= 64);
}

#[test]
fn silent_server_times_out_and_connection_is_then_unusable() {
    let d = double(LoginMode::Plain, Faults::default());
    let mut c = Client::connect(
        "127.0.0.1",
        d.port(),
        &ConnectOptions {
            io_timeout: Duration::from_millis(200),
            ..opts()
        },
    )
    .unwrap();
    c.login(USER, PASS).unwrap();
    d.set_faults(Faults {
        silent: true,
        ..Faults::default()
    });
    let err = c.print("/ppp/active", &[], &[]).unwrap_err();
    assert!(
        matches!(err, Error::Timeout(t) if t == Duration::from_millis(200)),
        "{err:?}"
    );
    d.set_faults(Faults::default());
    let err = c.print("/ppp/active", &[], &[]).unwrap_err();
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
}

#[test]
fn fatal_and_dropped_connections() {
    let d = double(
        LoginMode::Plain,
        Faults {
            fatal_on: Some(("/ppp/active/print".into(), "too many sessions".into())),
            drop_on: Some("/ip/hotspot/active/print".into()),
            ..Faults::default()
        },
    );
    let mut c = logged_in(&d);
    let err = c.print("/ppp/active", &[], &[]).unwrap_err();
    assert!(
        matches!(err, Error::Fatal(ref m) if m == "too many sessions"),
        "{err:?}"
    );

    let mut c = logged_in(&d);
    let err = c.print("/ip/hotspot/active", &[], &[]).unwrap_err();
    assert!(matches!(err, Error::Closed | Error::Io(_)), "{err:?}");
}

#[test]
fn injected_trap_leaves_connection_usable() {
    let d = double(
        LoginMode::Plain,
        Faults {
            trap_on: Some(("/ppp/active/remove".into(), "failure: busy".into())),
            ..Faults::default()
        },
    );
    let id = d.add_session(SessionTable::Ppp, "a", "100.64.0.1", "1h");
    let mut c = logged_in(&d);
    let err = c
        .remove("/ppp/active", std::slice::from_ref(&id))
        .unwrap_err();
    assert_eq!(err.to_string(), "router trap: failure: busy");
    assert_eq!(c.print("/ppp/active", &[".id"], &[]).unwrap()[0][".id"], id);
}

#[test]
fn connect_refused_and_tls_against_plain_server_are_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert!(Client::connect("127.0.0.1", port, &opts()).is_err());

    let d = double(LoginMode::Plain, Faults::default());
    let tls = ConnectOptions {
        tls: Some(TlsOptions {
            verify: TlsVerify::AcceptAny,
            server_name: None,
        }),
        io_timeout: Duration::from_millis(500),
        ..opts()
    };
    // The double speaks plain TCP: a TLS client must fail, not hang or succeed.
    assert!(Client::connect("127.0.0.1", d.port(), &tls)
        .and_then(|mut c| c.login(USER, PASS))
        .is_err());
}

#[test]
fn month_boundary_sweep_over_both_tables() {
    let d = double(LoginMode::Md5Challenge, Faults::default());
    let boundary: i64 = 1_700_000_000;
    let now = boundary + 3600; // one hour into the new month
    let old_ppp = d.add_session(SessionTable::Ppp, "old1", "100.64.0.1", "1w2d3h4m5s");
    let new_ppp = d.add_session(SessionTable::Ppp, "new1", "100.64.0.2", "59m59s");
    let old_hs = d.add_session(SessionTable::Hotspot, "old2", "100.65.0.1", "1d01:00:00");
    let new_hs = d.add_session(SessionTable::Hotspot, "new2", "100.65.0.2", "00:10:00");
    let edge = d.add_session(SessionTable::Hotspot, "edge", "100.65.0.3", "1h");
    let old_ppp2 = d.add_session(SessionTable::Ppp, "old3", "100.64.0.3", "1h1s");
    d.add_row("/ppp/active", &[("name", "broken"), ("uptime", "later")]);

    let mut c = logged_in(&d);
    let report = disconnect_started_before(&mut c, now, boundary).unwrap();
    assert_eq!(report.seen, 6, "the unparsable row is skipped");
    assert_eq!(report.selected, 3);
    assert_eq!(report.removed, 3);
    assert!(report.failed.is_empty() && report.unavailable.is_empty());
    assert_eq!(
        report.commands,
        2 + 1 + 1,
        "two prints, one multi remove in PPP, one in Hotspot"
    );
    let ppp = d.ids(SessionTable::Ppp);
    assert!(ppp.contains(&new_ppp) && !ppp.contains(&old_ppp) && !ppp.contains(&old_ppp2));
    assert_eq!(d.ids(SessionTable::Hotspot), vec![new_hs, edge]);
    let _ = old_hs;
    assert_eq!(d.counters().logins_ok, 1);
}

#[test]
fn sweep_tolerates_a_missing_hotspot_menu() {
    let d = double(
        LoginMode::Plain,
        Faults {
            trap_on: Some((
                "/ip/hotspot/active/print".into(),
                "no such command prefix".into(),
            )),
            ..Faults::default()
        },
    );
    d.add_session(SessionTable::Ppp, "old", "100.64.0.1", "40d");
    let mut c = logged_in(&d);
    let report = disconnect_started_before(&mut c, 2_000_000, 1_000_000).unwrap();
    assert_eq!(report.removed, 1);
    assert_eq!(
        report.unavailable,
        vec![(
            "/ip/hotspot/active".to_string(),
            "no such command prefix".to_string()
        )]
    );
}

#[test]
fn disconnect_one_user_by_name_and_address() {
    let d = double(LoginMode::Plain, Faults::default());
    let a1 = d.add_session(SessionTable::Ppp, "alice", "100.64.0.2", "1h");
    let a2 = d.add_session(SessionTable::Hotspot, "alice", "100.65.0.2", "1h");
    let b = d.add_session(SessionTable::Ppp, "bob", "100.64.0.3", "1h");
    let mut c = logged_in(&d);

    let found = find_user_sessions(&mut c, "alice", None).unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(
        disconnect_user(&mut c, "alice", Some("100.66.9.9")).unwrap(),
        0
    );
    assert_eq!(
        disconnect_user(&mut c, "alice", Some("100.64.0.2")).unwrap(),
        1
    );
    assert_eq!(d.ids(SessionTable::Ppp), vec![b.clone()]);
    assert_eq!(d.ids(SessionTable::Hotspot), vec![a2.clone()]);
    assert_eq!(disconnect_user(&mut c, "alice", None).unwrap(), 1);
    assert!(d.ids(SessionTable::Hotspot).is_empty());
    assert_eq!(disconnect_user(&mut c, "alice", None).unwrap(), 0);
    let _ = a1;
}

/// A hostile "router" of raw bytes: reads the login sentence, then writes `reply`
/// in pieces of `piece` bytes, `gap` apart.
fn raw_router(reply: Vec<u8>, piece: usize, gap: Duration) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        for p in reply.chunks(piece.max(1)) {
            if s.write_all(p).is_err() {
                return;
            }
            std::thread::sleep(gap);
        }
        std::thread::sleep(Duration::from_secs(5));
    });
    port
}

fn short_opts() -> ConnectOptions {
    ConnectOptions {
        io_timeout: Duration::from_secs(1),
        ..opts()
    }
}

#[test]
fn a_router_that_trickles_its_reply_is_cut_off_at_the_timeout() {
    // "!done" and a 40-byte word, a byte every 150 ms: each read succeeds well
    // within the idle timeout, but the reply would take 7 s.
    let mut reply = vec![5];
    reply.extend_from_slice(b"!done");
    reply.push(40);
    reply.extend_from_slice(&[b'a'; 40]);
    reply.push(0);
    let port = raw_router(reply, 1, Duration::from_millis(150));
    let mut c = Client::connect("127.0.0.1", port, &short_opts()).unwrap();
    let started = std::time::Instant::now();
    let err = c.login(USER, PASS).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "held for {:?}",
        started.elapsed()
    );
}

#[test]
fn garbage_and_oversized_words_end_the_conversation_at_once() {
    for (what, reply) in [
        ("reserved control byte", vec![0xF8, 1, 2, 3, 4, 5]),
        ("4 GiB word", vec![0xF0, 0xFF, 0xFF, 0xFF, 0xFF, b'x']),
        ("2 MiB word", {
            let mut v = vec![0xE0, 0x20, 0x00, 0x00];
            v.extend(std::iter::repeat_n(b'y', 1024));
            v
        }),
        ("9 MiB sentence of 1 MiB words", {
            let mut v = Vec::new();
            for _ in 0..9 {
                v.extend_from_slice(&[0xE0, 0x10, 0x00, 0x00]);
                v.extend(std::iter::repeat_n(b'z', 1 << 20));
            }
            v
        }),
        ("not a reply", {
            let mut v = vec![9];
            v.extend_from_slice(b"HTTP/1.1 ");
            v.push(0);
            v
        }),
    ] {
        let port = raw_router(reply, 4096, Duration::ZERO);
        let mut c = Client::connect("127.0.0.1", port, &short_opts()).unwrap();
        let started = std::time::Instant::now();
        let err = c.login(USER, PASS).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{what}: waited {:?} for {err:?}",
            started.elapsed()
        );
        assert!(!matches!(err, Error::Timeout(_)), "{what}: {err:?}");
        // The connection is not used again after a protocol error.
        assert!(c.print("/ppp/active", &[], &[]).is_err(), "{what}");
    }
}
