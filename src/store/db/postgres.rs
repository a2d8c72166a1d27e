//! The PostgreSQL backend: connection strings, connections with a statement cache,
//! and the schema's migrations (its own numbered files, tracked in `rlm_schema`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use postgres::config::Host;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls, Statement};

use super::{dollar_placeholders, DbError, DbResult, Value};

/// Migration N (1-based) is `MIGRATIONS[N - 1]`. Append only: never edit a shipped one.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_shared_queues.sql"),
    include_str!("../migrations/postgres/0003_store_version.sql"),
    include_str!("../migrations/postgres/0004_console.sql"),
    include_str!("../migrations/postgres/0005_api_ca.sql"),
];

/// Serialises migrations of servers starting at once (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x726c_6d5f_7275_7374;

/// libpq keywords: a word `KEY=...` with one of these makes a string a connection
/// string even when another word is malformed, so the parse error is reported
/// (without echoing the string) instead of the string being taken for a SQLite
/// path and shown, password and all.
const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "connect_timeout",
    "options",
    "application_name",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslrootcert",
    "target_session_attrs",
    "keepalives",
    "channel_binding",
];

/// A connection string looks like PostgreSQL's.
pub(crate) fn looks_like(s: &str) -> bool {
    s.starts_with("postgresql://")
        || s.starts_with("postgres://")
        || s.split_whitespace().any(|w| {
            w.split_once('=')
                .is_some_and(|(k, _)| KEYWORDS.contains(&k.trim()))
        })
}

/// Where the PostgreSQL store is. The password comes from the string or from
/// `passfile=FILE` (libpq's `.pgpass` format: `host:port:db:user:password`), and is
/// never shown.
#[derive(Clone)]
pub struct Target {
    config: postgres::Config,
    shown: String,
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.config.get_password() == other.config.get_password()
    }
}
impl Eq for Target {}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Target {
    pub(crate) fn parse(s: &str) -> Result<Target, String> {
        let (rest, passfile) = take_passfile(s);
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e| format!("not a PostgreSQL connection string: {e}"))?;
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        if hosts.is_empty() {
            return Err("the PostgreSQL connection string names no host".into());
        }
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let dbname = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("")
            .to_string();
        let user = config.get_user().unwrap_or("").to_string();
        if let Some(file) = passfile {
            if config.get_password().is_none() {
                let pw = read_passfile(&file, &hosts[0], port, &dbname, &user)?;
                config.password(pw);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A cut connection must fail the batch, not hang the writer.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(15));
        }
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("rlm_rust");
        }
        // NOTICEs ("... already exists, skipping") are not news for an operator.
        config.notice_callback(|n| log::debug!("PostgreSQL: {}", n.message()));
        let shown = format!("postgresql://{user}@{}:{port}/{dbname}", hosts.join(","));
        Ok(Target { config, shown })
    }

    /// `lock_timeout`: how long a statement waits for a lock another server (or
    /// tool) holds, as `busy_timeout` is for SQLite.
    pub(crate) fn connect(
        &self,
        synchronous_commit: bool,
        lock_timeout: Duration,
    ) -> DbResult<PgConn> {
        let mut client = self.config.connect(NoTls)?;
        // Acknowledged means durable, unless the operator chose `synchronous = normal`.
        client.batch_execute(&format!(
            "SET synchronous_commit = {}; SET lock_timeout = {}",
            if synchronous_commit { "on" } else { "off" },
            lock_timeout.as_millis().max(1)
        ))?;
        Ok(PgConn {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            tx: Cell::new(false),
            failed: Cell::new(false),
            savepoints: Cell::new(true),
        })
    }
}

/// Splits off `passfile=FILE` (a URL query parameter or a key=value word).
fn take_passfile(s: &str) -> (String, Option<String>) {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let Some((base, query)) = s.split_once('?') else {
            return (s.to_string(), None);
        };
        let mut file = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.strip_prefix("passfile=") {
                Some(f) => {
                    file = Some(f.to_string());
                    false
                }
                None => true,
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (rest, file)
    } else {
        let mut file = None;
        let kept: Vec<&str> = s
            .split_whitespace()
            .filter(|w| match w.strip_prefix("passfile=") {
                Some(f) => {
                    file = Some(f.to_string());
                    false
                }
                None => true,
            })
            .collect();
        (kept.join(" "), file)
    }
}

/// The first `.pgpass` line matching host, port, database and user (`*` matches any).
fn read_passfile(
    path: &str,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the PostgreSQL passfile {path}: {e}"))?;
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() != 5 {
            continue;
        }
        let want = [host, port.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Ok(fields[4].clone());
        }
    }
    Err(format!(
        "the PostgreSQL passfile {path} has no line for {host}:{port}:{db}:{user}"
    ))
}

/// `:`-separated fields with `\:` and `\\` escapes.
fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// What an operator needs from a PostgreSQL error: the server's message and
/// SQLSTATE, or the connection's failure.
pub(crate) fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        );
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

pub(crate) fn is_retryable(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

pub(crate) fn is_connection(e: &postgres::Error) -> bool {
    // 08: connection exceptions; 57P01-03: the server shutting down or starting.
    let gone = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
    });
    gone || e.is_closed() || e.as_db_error().is_none()
}

/// Statements kept per connection; beyond it the cache starts over.
const STATEMENTS: usize = 256;

/// One PostgreSQL connection with its named statements.
pub(crate) struct PgConn {
    client: RefCell<Client>,
    /// SQL text as written (with `?N`) → statements by parameter types.
    statements: RefCell<HashMap<String, Vec<(Vec<Type>, Statement)>>>,
    tx: Cell<bool>,
    /// A statement of the open transaction failed: PostgreSQL ignores the rest, and
    /// its COMMIT would roll back silently.
    failed: Cell<bool>,
    /// Savepoints are taken (see [`super::Conn::set_savepoints`]).
    pub(crate) savepoints: Cell<bool>,
}

impl PgConn {
    fn statement(&self, sql: &str, types: &[Type]) -> DbResult<Statement> {
        if let Some(s) = self
            .statements
            .borrow()
            .get(sql)
            .and_then(|v| v.iter().find(|(t, _)| t == types))
        {
            return Ok(s.1.clone());
        }
        let stmt = self
            .client
            .borrow_mut()
            .prepare_typed(&dollar_placeholders(sql), types)?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= STATEMENTS {
            cache.clear();
        }
        cache
            .entry(sql.to_string())
            .or_default()
            .push((types.to_vec(), stmt.clone()));
        Ok(stmt)
    }

    /// Notes a failure inside the transaction (and a ROLLBACK TO that undid one).
    fn track<T>(&self, sql: &str, r: DbResult<T>) -> DbResult<T> {
        match &r {
            Err(_) if self.tx.get() => self.failed.set(true),
            Ok(_) if sql.starts_with("ROLLBACK TO") => self.failed.set(false),
            _ => {}
        }
        r
    }

    /// Runs `sql` (prepared once for its parameters' types) through `run`.
    fn with_statement<T>(
        &self,
        sql: &str,
        values: &[Value<'_>],
        run: impl FnOnce(&mut Client, &Statement, &[&(dyn ToSql + Sync)]) -> Result<T, postgres::Error>,
    ) -> DbResult<T> {
        let r = (|| {
            let types: Vec<Type> = values.iter().map(Value::pg_type).collect();
            let stmt = self.statement(sql, &types)?;
            let args: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
            Ok(run(&mut self.client.borrow_mut(), &stmt, &args)?)
        })();
        self.track(sql, r)
    }

    pub(crate) fn query(&self, sql: &str, values: &[Value<'_>]) -> DbResult<Vec<postgres::Row>> {
        self.with_statement(sql, values, |c, st, args| c.query(st, args))
    }

    pub(crate) fn execute(&self, sql: &str, values: &[Value<'_>]) -> DbResult<usize> {
        let n = self.with_statement(sql, values, |c, st, args| c.execute(st, args))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn batch(&self, sql: &str) -> DbResult<()> {
        let r = self
            .client
            .borrow_mut()
            .batch_execute(sql)
            .map_err(DbError::from);
        self.track(sql, r)
    }

    /// A statement of the open transaction failed (and was not rolled back to a
    /// savepoint).
    pub(crate) fn failed(&self) -> bool {
        self.failed.get()
    }

    pub(crate) fn in_transaction(&self) -> bool {
        // A dead connection has no transaction left to continue.
        self.tx.get() && !self.client.borrow().is_closed()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    pub(crate) fn begin(&self) -> DbResult<()> {
        self.batch("BEGIN")?;
        self.tx.set(true);
        self.failed.set(false);
        Ok(())
    }

    pub(crate) fn commit(&self) -> DbResult<()> {
        if self.failed.get() {
            let _ = self.rollback();
            return Err(DbError::Other(
                "a statement of the transaction failed; it was rolled back".into(),
            ));
        }
        // Whatever COMMIT answers, the transaction is over.
        self.tx.set(false);
        self.batch("COMMIT")
    }

    pub(crate) fn rollback(&self) -> DbResult<()> {
        self.failed.set(false);
        if !self.tx.replace(false) || self.is_closed() {
            return Ok(());
        }
        self.batch("ROLLBACK")
    }
}

/// Brings the schema up to date in one transaction; returns how many migrations ran.
pub(crate) fn migrate(conn: &PgConn) -> DbResult<(u32, u32)> {
    conn.begin()?;
    let result = (|| {
        conn.query(
            "SELECT pg_advisory_xact_lock(?1)",
            &[Value::Int(MIGRATION_LOCK)],
        )?;
        conn.batch("CREATE TABLE IF NOT EXISTS rlm_schema (version BIGINT NOT NULL)")?;
        let current = version(conn)?.unwrap_or(0);
        let supported = MIGRATIONS.len() as u32;
        if current > supported {
            return Ok((current, 0));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            conn.batch(sql)
                .map_err(|e| DbError::Other(format!("schema migration {} failed: {e}", i + 1)))?;
            log::info!("store: applied PostgreSQL schema migration {}", i + 1);
        }
        conn.batch("DELETE FROM rlm_schema")?;
        conn.execute(
            "INSERT INTO rlm_schema (version) VALUES (?1)",
            &[Value::Int(supported.into())],
        )?;
        Ok((current, supported - current))
    })();
    match result {
        Ok(v) => {
            conn.commit()?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// The schema version, None when the database has no rlm_rust schema.
pub(crate) fn version(conn: &PgConn) -> DbResult<Option<u32>> {
    let exists = conn.query("SELECT to_regclass('rlm_schema') IS NOT NULL", &[])?;
    if !exists.first().map(|r| r.get::<_, bool>(0)).unwrap_or(false) {
        return Ok(None);
    }
    let rows = conn.query("SELECT max(version) FROM rlm_schema", &[])?;
    Ok(rows
        .first()
        .and_then(|r| r.get::<_, Option<i64>>(0))
        .map(|v| u32::try_from(v).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_a_connection_string() {
        for (s, pg) in [
            ("postgresql://rlm@db/rlm", true),
            ("postgres://db/rlm", true),
            ("host=db dbname=rlm", true),
            // A malformed word (found by tests/randomised.rs): still PostgreSQL, so
            // the parse fails without echoing the password.
            ("host=db password=s3cret 0", true),
            ("dbname=rlm user", true),
            ("/var/lib/freeradius/rlm_rust.sqlite", false),
            ("/srv/a=b.sqlite", false),
            ("file:rlm.sqlite?mode=rwc", false),
            ("rlm.sqlite", false),
        ] {
            assert_eq!(looks_like(s), pg, "{s}");
        }
        assert!(Target::parse("host=db password=s3cret 0").is_err());
    }

    #[test]
    fn passfile_is_taken_out_of_both_forms() {
        assert_eq!(
            take_passfile("postgresql://u@h/db?passfile=/etc/p&sslmode=disable"),
            (
                "postgresql://u@h/db?sslmode=disable".to_string(),
                Some("/etc/p".to_string())
            )
        );
        assert_eq!(
            take_passfile("postgresql://u@h/db?passfile=/etc/p"),
            (
                "postgresql://u@h/db".to_string(),
                Some("/etc/p".to_string())
            )
        );
        assert_eq!(
            take_passfile("host=h passfile=/etc/p dbname=x"),
            ("host=h dbname=x".to_string(), Some("/etc/p".to_string()))
        );
        assert_eq!(take_passfile("host=h"), ("host=h".to_string(), None));
    }

    #[test]
    fn passfile_lines_match_with_wildcards_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(
            &f,
            "# comment\nother:5432:db:u:wrong\n127.0.0.1:*:rlm:rlm:s3cr\\:et\n*:*:*:*:fallback\n",
        )
        .unwrap();
        let f = f.to_str().unwrap();
        assert_eq!(
            read_passfile(f, "127.0.0.1", 5433, "rlm", "rlm").unwrap(),
            "s3cr:et"
        );
        assert_eq!(read_passfile(f, "h", 1, "x", "y").unwrap(), "fallback");
        let t = Target::parse(&format!(
            "host=127.0.0.1 port=5433 dbname=rlm user=rlm passfile={f}"
        ))
        .unwrap();
        assert_eq!(t.config.get_password(), Some(&b"s3cr:et"[..]));
        assert!(!t.to_string().contains("s3cr"));
        assert!(Target::parse("host=h passfile=/nonexistent user=u").is_err());
    }

    #[test]
    fn shown_without_password() {
        let t = Target::parse("postgresql://rlm:hunter2@127.0.0.1:5433/rlm").unwrap();
        assert_eq!(t.to_string(), "postgresql://rlm@127.0.0.1:5433/rlm");
        assert!(!format!("{:?}", super::super::Location::Postgres(t)).contains("hunter2"));
    }
}
