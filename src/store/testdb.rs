//! The store's tests run on either backend: SQLite by default, PostgreSQL with
//! `RLM_TEST_BACKEND=postgres` (scripts/test.sh runs them both ways). On PostgreSQL
//! each SQLite path a test uses maps to a fresh database of one cluster: the one at
//! `RLM_TEST_PG`, or one started for this test process by scripts/pg-cluster.sh.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use super::db::{Backend, Conn, Location};

/// The backend these tests run on.
pub(crate) fn backend() -> Backend {
    match std::env::var("RLM_TEST_BACKEND").as_deref() {
        Ok("postgres") | Ok("postgresql") => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// A test of something only SQLite has (PRAGMAs, file permissions): true when it
/// should not run here.
pub(crate) fn not_sqlite() -> bool {
    backend() != Backend::Sqlite
}

struct Cluster {
    base: String,
    /// Its stdin stays open for as long as the test process lives.
    _child: Option<Child>,
    /// SQLite path → database name.
    dbs: Mutex<HashMap<PathBuf, String>>,
}

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let (base, child) = match std::env::var("RLM_TEST_PG") {
            Ok(base) => (base, None),
            Err(_) => start_cluster(),
        };
        Cluster {
            base,
            _child: child,
            dbs: Mutex::new(HashMap::new()),
        }
    })
}

pub(crate) fn start_cluster() -> (String, Option<Child>) {
    let dir = std::env::temp_dir().join(format!("rlm-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster.sh");
    let mut child = Command::new("bash")
        .arg(script)
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
    (line.trim().to_string(), Some(child))
}

/// Where a test's store at `path` is: `path` itself on SQLite, else its database.
pub(crate) fn at(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    if backend() == Backend::Sqlite {
        return path.to_path_buf();
    }
    let c = cluster();
    let mut dbs = c.dbs.lock().unwrap();
    let n = dbs.len();
    let name = dbs
        .entry(path.to_path_buf())
        .or_insert_with(|| {
            let name = format!("t{}_{n}", std::process::id());
            let admin = Location::parse(&c.base).unwrap();
            let Location::Postgres(t) = admin else {
                unreachable!()
            };
            let conn = t
                .connect(true, std::time::Duration::from_secs(5))
                .expect("connect to the test cluster");
            conn.batch(&format!("CREATE DATABASE {name}")).unwrap();
            name
        })
        .clone();
    PathBuf::from(format!("{} dbname={name}", base_without_dbname(&c.base)))
}

fn base_without_dbname(base: &str) -> String {
    base.split_whitespace()
        .filter(|w| !w.starts_with("dbname="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A plain read-write connection to a test's store (already created), for poking
/// at it as an outside tool would.
pub(crate) fn raw(path: impl AsRef<Path>) -> Conn {
    match Location::parse(path.as_ref()).unwrap() {
        Location::Sqlite(p) => Conn::Sqlite(rusqlite::Connection::open(p).unwrap()),
        Location::Postgres(t) => {
            Conn::Postgres(t.connect(true, std::time::Duration::from_secs(5)).unwrap())
        }
    }
}

/// An open transaction on the test's store that holds its write lock (SQLite) or
/// the lock of `table` (PostgreSQL), until [`db::Conn::rollback`].
pub(crate) fn block_writes(conn: &Conn, table: &str) {
    match conn {
        Conn::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE").unwrap(),
        Conn::Postgres(c) => {
            c.begin().unwrap();
            c.batch(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                .unwrap()
        }
    }
}

/// The schema version stored in a test's store.
pub(crate) fn schema_version(conn: &Conn) -> u32 {
    match conn {
        Conn::Sqlite(c) => super::db::sqlite::user_version(c).unwrap(),
        Conn::Postgres(c) => super::db::postgres::version(c).unwrap().unwrap_or(0),
    }
}

pub(crate) fn set_schema_version(conn: &Conn, v: u32) {
    match conn {
        Conn::Sqlite(c) => c.pragma_update(None, "user_version", v).unwrap(),
        Conn::Postgres(c) => c
            .batch(&format!("UPDATE rlm_schema SET version = {v}"))
            .unwrap(),
    }
}

/// The schema version this build writes on the backend under test.
pub(crate) fn supported_version() -> u32 {
    match backend() {
        Backend::Sqlite => super::SCHEMA_VERSION,
        Backend::Postgres => super::PG_SCHEMA_VERSION,
    }
}
