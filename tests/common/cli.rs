//! Running the built `rlm-rust` binary in tests, and checking its output.
use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_rlm-rust");

/// `rlm-rust --db DB --timezone TZ ARGS`, with STDIN fed in and the environment's
/// RLM_RUST_* settings removed so only the arguments count.
pub fn run(db: &Path, tz: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--timezone", tz])
        .args(args)
        .env_remove("RLM_RUST_DB")
        .env_remove("RLM_RUST_TIMEZONE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit without reading stdin.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Standard output of a command that must have succeeded.
pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap()
}

/// Exit code 1 and a message on stderr containing `needle`.
pub fn fails_with(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "{err}");
}
