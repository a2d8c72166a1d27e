//! A throw-away PostgreSQL cluster for this test process (scripts/pg-cluster.sh,
//! stopped when the process exits) and a fresh database per test.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

struct Cluster {
    base: String,
    _child: Child,
}

fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rlm-pg-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new("bash")
            .arg(super::repo().join("scripts/pg-cluster.sh"))
            .arg("--temporary")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start scripts/pg-cluster.sh");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("port="), "pg-cluster.sh printed {line:?}");
        Cluster {
            base: line.trim().to_string(),
            _child: child,
        }
    })
}

/// A new empty database; its connection string (no password: the cluster trusts
/// loopback).
pub fn fresh_db() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let c = cluster();
    let name = format!(
        "e2e{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(&c.base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    let base: Vec<&str> = c
        .base
        .split_whitespace()
        .filter(|w| !w.starts_with("dbname="))
        .collect();
    format!("{} dbname={name}", base.join(" "))
}

/// A cluster of a test's own, to stop and start again.
pub struct OwnCluster {
    pub dir: std::path::PathBuf,
    pub port: u16,
    pub base: String,
    child: Option<Child>,
}

impl OwnCluster {
    pub fn start(dir: &std::path::Path, port: Option<u16>) -> OwnCluster {
        let mut cmd = Command::new("bash");
        cmd.arg(super::repo().join("scripts/pg-cluster.sh"))
            .arg(dir);
        if let Some(p) = port {
            cmd.arg(p.to_string());
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("port="), "pg-cluster.sh printed {line:?}");
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("port="))
            .unwrap()
            .parse()
            .unwrap();
        OwnCluster {
            dir: dir.to_path_buf(),
            port,
            base: line.trim().to_string(),
            child: Some(child),
        }
    }

    /// Stops the server (a fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn connect(db: &str) -> postgres::Client {
    postgres::Client::connect(db, postgres::NoTls).unwrap()
}
