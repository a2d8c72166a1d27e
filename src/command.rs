//! Running an operator's command from a background thread: argv (no shell), extra
//! environment, stdin, a timeout after which it is killed, and its output captured
//! (read on threads of their own, so a chatty command cannot fill a pipe and hang).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Output kept of a run (stdout then stderr).
pub const MAX_OUTPUT: usize = 4096;

/// How a command that ran ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code; None when a signal ended it.
    pub code: Option<i32>,
    pub output: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = MAX_OUTPUT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Runs `argv` with `env` added and `input` on stdin. Err: it could not be
/// started, or did not finish within `timeout` (then it is killed).
pub fn run(
    argv: &[String],
    env: &[(&str, OsString)],
    input: &[u8],
    timeout: Duration,
) -> Result<Finished, String> {
    let (prog, args) = argv.split_first().ok_or("no command")?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {prog}: {e}"))?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading gives EPIPE; its status decides.
        let _ = stdin.write_all(input);
    }
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{prog} did not finish within {}s",
                    timeout.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {prog}: {e}")),
        }
    };
    let mut output = out.and_then(|h| h.join().ok()).unwrap_or_default();
    output.extend(err.and_then(|h| h.join().ok()).unwrap_or_default());
    output.truncate(MAX_OUTPUT);
    Ok(Finished {
        code: status.code(),
        output: String::from_utf8_lossy(&output).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn status_output_env_and_stdin() {
        let t = Duration::from_secs(10);
        let f = run(&sh("echo out; echo err >&2; exit 3"), &[], b"", t).unwrap();
        assert_eq!(f.code, Some(3));
        assert!(!f.success());
        assert_eq!(f.output, "out\nerr\n");
        let f = run(
            &sh("printf %s \"$RLM_X\"; cat"),
            &[("RLM_X", "a b".into())],
            b"in",
            t,
        )
        .unwrap();
        assert!(f.success());
        assert_eq!(f.output, "a bin");
        // Far more output than a pipe holds: kept up to the limit, no hang.
        let f = run(&sh("head -c 1000000 /dev/zero | tr '\\0' x"), &[], b"", t).unwrap();
        assert_eq!(f.output.len(), MAX_OUTPUT);
        let e = run(&sh("sleep 5"), &[], b"", Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
        let e = run(&["/nonexistent/hook".to_string()], &[], b"", t).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
    }
}
