//! End to end through the real freeradius: the Acct-Unique-Session-Id rust sets in
//! preacct is the one the stock `acct_unique` policy computes, for awkward values too.
mod common;
use common::*;

/// After rust: keep its value, let the stock policy compute its own, and answer
/// only if they are equal (preacct `reject` means no Accounting-Response).
const COMPARE_WITH_STOCK: &str = "\tupdate request {
\t\t&Tmp-String-0 := &Acct-Unique-Session-Id
\t}
\tupdate request {
\t\t&Acct-Unique-Session-Id !* ANY
\t}
\tacct_unique
\tif (&Acct-Unique-Session-Id != &Tmp-String-0) {
\t\treject
\t}";

fn start(preacct: &str) -> Server {
    Server::start(Options {
        raddb_env: vec![("PREACCT_UNLANG".into(), preacct.into())],
        debug: std::env::var_os("UID_DEBUG").is_some(),
        ..Options::default()
    })
}

#[test]
fn unique_id_equals_the_stock_policy() {
    let s = start(COMPARE_WITH_STOCK);
    let class = |rest: &str| format!("0x61693a{}", hex(rest.as_bytes()));
    // (what, attributes besides Acct-Status-Type and Acct-Session-Id)
    let cases: Vec<(&str, String)> = vec![
        (
            "plain",
            "User-Name = \"joe\", NAS-IP-Address = 192.0.2.1, NAS-Port = 7".into(),
        ),
        (
            "escaped characters",
            "User-Name = \"a\\\\b\\\"c d\\te\", NAS-Identifier = \"nas-\u{fc}\u{20ac}\", \
             NAS-Port-Id = \"ether1/0 \\\"x\\\"\", NAS-IP-Address = 192.0.2.1"
                .into(),
        ),
        (
            "IPv6 before IPv4",
            "User-Name = \"joe\", NAS-IPv6-Address = 2001:db8::1, NAS-IP-Address = 192.0.2.1"
                .into(),
        ),
        (
            "IPv4-compatible IPv6",
            "User-Name = \"joe\", NAS-IPv6-Address = ::192.0.2.9".into(),
        ),
        (
            "Class from insert_acct_class",
            format!(
                "User-Name = \"joe\", Class = {}",
                class("0123456789abcdef0123456789ABCDEFzz")
            ),
        ),
        (
            "Class too short",
            format!("User-Name = \"joe\", Class = {}", class("0123")),
        ),
        (
            "other Class",
            "User-Name = \"joe\", Class = 0x0102ff".into(),
        ),
        ("nothing else", String::new()),
    ];
    for (i, (what, attrs)) in cases.iter().enumerate() {
        let sep = if attrs.is_empty() { "" } else { ", " };
        let packet = format!("Acct-Status-Type = Start, Acct-Session-Id = \"uid-{i}\"{sep}{attrs}");
        let reply = s.acct(&packet);
        assert!(
            reply.ok,
            "{what}: ours differs from acct_unique (or failed):\n{}\n{}",
            reply.output,
            s.log_text()
        );
    }
    // Every session is keyed by the id: 32 hex digits, one per packet.
    let keys: Vec<String> = s
        .sql()
        .prepare("SELECT session_key FROM sessions ORDER BY acct_session_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(keys.len(), cases.len(), "{keys:?}");
    for k in &keys {
        assert!(
            k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit()),
            "{k}"
        );
    }
}

/// The shipped site (no acct_unique): the module's id keys the session; one that is
/// already set is kept.
#[test]
fn shipped_site_keys_sessions_by_the_modules_id_and_keeps_one_set_before() {
    let s = start("");
    let site = std::fs::read_to_string(s.raddb.join("sites-available/rust")).unwrap();
    let preacct = &site[site.find("preacct {").unwrap()..];
    let preacct = &preacct[..preacct.find("\n}").unwrap()];
    assert!(!preacct.contains("\tacct_unique"), "{preacct}");
    let reply = s.acct(
        "Acct-Status-Type = Start, Acct-Session-Id = \"81200001\", User-Name = \"joe\", \
         NAS-IP-Address = 192.0.2.1, NAS-Port = 7",
    );
    assert!(reply.ok, "{}", reply.output);
    // md5("joe,81200001,192.0.2.1,,,7"), as `printf %s ... | md5sum` prints it.
    assert_eq!(
        session_key(&s, "81200001"),
        md5_hex(b"joe,81200001,192.0.2.1,,,7")
    );

    // Set before rust (here: rust runs a second time after an update).
    let s = start("\tupdate request {\n\t\t&Acct-Unique-Session-Id := \"set-before\"\n\t}\n\trust");
    let reply = s.acct(
        "Acct-Status-Type = Start, Acct-Session-Id = \"s2\", User-Name = \"joe\", \
         NAS-IP-Address = 192.0.2.1",
    );
    assert!(reply.ok, "{}", reply.output);
    assert_eq!(session_key(&s, "s2"), "set-before");
}

fn session_key(s: &Server, acct_session_id: &str) -> String {
    s.sql()
        .query_row(
            "SELECT session_key FROM sessions WHERE acct_session_id = ?1",
            [acct_session_id],
            |r| r.get(0),
        )
        .unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn md5_hex(b: &[u8]) -> String {
    let out = std::process::Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b)?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}
