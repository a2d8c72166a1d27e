//! Checks the server double against an independent client, Python `librouteros`,
//! so the double (and the client tests built on it) can't share one misreading
//! of the protocol. Skips only when `librouteros` cannot be imported.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn librouteros_available() -> bool {
    Command::new(python())
        .args(["-c", "import librouteros"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r[".id"].as_str().unwrap().to_string())
        .collect()
}

fn run(md5: bool) {
    let mut double = Command::new(env!("CARGO_BIN_EXE_routeros-double"))
        .args(["--user", "api", "--password", "pw1"])
        .args(if md5 { &["--md5"][..] } else { &[][..] })
        .args([
            "--ppp",
            "alice,100.64.0.2,1w2d3h4m5s",
            "--ppp",
            "bob,100.64.0.3,00:10:00",
        ])
        .args([
            "--hotspot",
            "carol,100.65.0.2,45s",
            "--hotspot",
            "dave,100.65.0.3,1h",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start routeros-double");
    let mut out = BufReader::new(double.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/librouteros_check.py");
    let login = if md5 { "token" } else { "plain" };
    let py = Command::new(python())
        .arg(&script)
        .args(["--port", &port, "--user", "api", "--password", "pw1"])
        .args(["--login", login, "--remove-ppp-user", "alice"])
        .output()
        .expect("run python");

    // Stop the double and read its final state before asserting anything.
    drop(double.stdin.take());
    let mut state = String::new();
    out.read_line(&mut state).unwrap();
    double.wait().unwrap();

    assert!(
        py.status.success(),
        "python client failed ({login}): {}\n{}",
        String::from_utf8_lossy(&py.stderr),
        String::from_utf8_lossy(&py.stdout)
    );
    let seen: Value = serde_json::from_slice(&py.stdout).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();

    assert!(
        seen["wrong_password"]
            .as_str()
            .unwrap()
            .contains("invalid user name or password"),
        "{seen}"
    );
    let before = &seen["ppp_before"];
    assert_eq!(before.as_array().unwrap().len(), 2);
    assert_eq!(before[0]["name"], "alice");
    assert_eq!(before[0]["address"], "100.64.0.2");
    assert_eq!(before[0]["uptime"], "1w2d3h4m5s");
    assert_eq!(before[1]["name"], "bob");
    assert_eq!(seen["hotspot_before"][1]["user"], "dave");

    // .proplist honoured, ?=name=value matched.
    let selected = seen["selected"].as_array().unwrap();
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0]["name"], "alice");
    assert_eq!(selected[0].as_object().unwrap().len(), 2, "{selected:?}");

    assert!(
        seen["stale_remove"]
            .as_str()
            .unwrap()
            .contains("no such item"),
        "{seen}"
    );
    assert_eq!(
        ids(&seen["ppp_after"]),
        vec![before[1][".id"].as_str().unwrap()]
    );
    assert!(seen["hotspot_after"].as_array().unwrap().is_empty());

    // The double agrees with what the client saw.
    assert_eq!(state["ppp"], seen["ppp_after"]);
    assert!(state["hotspot"].as_array().unwrap().is_empty());
    let c = &state["counters"];
    assert_eq!(c["logins_ok"], 1);
    assert_eq!(c["logins_failed"], 1);
    assert_eq!(c["removed_ids"], 3);
    assert_eq!(c["remove_commands"], 3);
}

#[test]
fn librouteros_talks_to_the_double() {
    if !librouteros_available() {
        eprintln!(
            "SKIPPED: python module `librouteros` cannot be imported with {} \
             (pip install librouteros); the double was not checked against it",
            python()
        );
        return;
    }
    run(false);
    run(true);
}

#[test]
fn double_binary_rejects_bad_session_spec() {
    let out = Command::new(env!("CARGO_BIN_EXE_routeros-double"))
        .args(["--ppp", "only-a-name"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::io::stderr().write_all(&out.stderr);
}
