//! The session store: SQLite (WAL, the embedded default) or PostgreSQL (several
//! servers on one database), with writer threads doing group commit (one for
//! SQLite, [`PG_WRITERS`] for PostgreSQL).
//!
//! All SQL of the crate lives under this module; [`db`] holds what differs between
//! the backends. Callers use [`Store`] (the module, read-write), [`Reader`] (the
//! CLI, read-only) or [`Admin`] (background jobs and the CLI's writes).

mod acct;
mod capping;
mod console;
mod copy;
pub(crate) mod db;
mod disconnect;
mod logins;
mod modulation;
mod perms;
mod policies;
mod queue;
mod read;
mod schema;
mod states;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::NaiveDate;
use chrono_tz::Tz;
use db::{Conn as Connection, DbError, Location};

pub use crate::pipeline::{merge_limits, AcctCapping, CapOutcome};
pub(crate) use capping::cap_usage;
pub use capping::{DecideRequest, LimitRow, OutboxResult, OutboxRow, UserSnapshot};
pub use console::{ConsoleSession, NasSessionCounts, OperatorRow, QueueCount, Role};
pub use copy::{sqlite_to_postgres, CopyReport};
pub use db::{Backend, Location as DbLocation};
pub use disconnect::{
    backoff_secs, Admin, BulkRun, DisconnectJob, JobOutcome, JobState, Method, NasConfig, NasRow,
    NewDisconnectJob, RetryTarget,
};
pub use logins::ControlKind;
pub use modulation::{CoaJob, CoaOutcome, CoaPurpose, ModulatedSession, NewCoaJob};
pub use policies::{
    CustomAttrRow, DeviceRow, LoginQuery, ParsedAt, PolicyDef, PolicyStats, PolicyView,
};
pub use queue::{server_id, Lease};
pub use read::{OpenState, PeriodKind, SessionFilter, SessionRow, UsageRow};
pub use schema::{PG_SCHEMA_VERSION, SCHEMA_VERSION};
pub use states::{
    ActionOutcome, EventRow, HookOutcome, HookPlan, NasActionRow, NewEvent, PresenceDue,
    PresenceMark, ServiceChange, StateChange, SubscriberRow, UserServiceRow,
};

use crate::capping::{Decision, RawLimits};
use crate::sessions::{AcctUpdate, Outcome, Usage};
use crate::topups::{ConsumptionRow, NewTopup, Topup, TopupBalance};
use writer::{Counters, Job, Reply, Request, Writer};

/// Writers (connections doing group commit) of a PostgreSQL store.
const PG_WRITERS: usize = 4;

/// Users whose capping headroom the writer keeps (about 150 B each); beyond that
/// the table starts over, which costs one capping decision per user.
const HEADROOM_USERS: usize = 100_000;

/// A login's read of the user's state: subscriber row, service sessions, NAS type.
pub type LoginStateView = (Option<SubscriberRow>, Vec<UserServiceRow>, Option<String>);

/// Errors of the store. Messages are meant for an operator's log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot open database {location}: {source}")]
    Open { location: String, source: DbError },
    /// (The string is not shown: it may hold a password.)
    #[error("the database connection string is not valid: {why}")]
    BadLocation { why: String },
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade rlm_rust")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("the database has no rlm_rust schema (never opened by the module?)")]
    NoSchema,
    #[error("{}", migration_failed(*.version, .source))]
    Migration { version: u32, source: DbError },
    #[error("database {} cannot use WAL journaling (journal_mode is {mode}); is it on a network filesystem?", path.display())]
    NotWal { path: PathBuf, mode: String },
    #[error("cannot start the store's writer thread: {0}")]
    Spawn(std::io::Error),
    #[error("invalid accounting packet: {0}")]
    Invalid(String),
    /// A capping write (limits, topups) with bad values; the message says which.
    #[error("{0}")]
    Rejected(String),
    /// The transaction of a whole batch failed; nothing of the batch was saved.
    #[error("write transaction failed: {0}")]
    Batch(String),
    /// The database cannot be reached (logged by the store when this starts and
    /// ends, not with every request).
    #[error("the database cannot be written: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Db(#[from] DbError),
    #[error("the store is shut down")]
    Closed,
    #[error("the store's writer thread stopped unexpectedly")]
    WriterGone,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.into())
    }
}

/// `PRAGMA synchronous` for the write connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL at every commit: a committed update survives power loss.
    #[default]
    Full,
    /// fsync only at checkpoints: faster; a power loss may drop the last commits
    /// (never corrupts the database).
    Normal,
}

impl std::str::FromStr for Synchronous {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Synchronous::Full),
            "normal" => Ok(Synchronous::Normal),
            _ => Err(format!(
                "synchronous must be \"full\" or \"normal\", not {s:?}"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Time zone whose local days and months usage is attributed to.
    pub timezone: Tz,
    pub synchronous: Synchronous,
    /// How long a connection waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// Most updates committed in one transaction.
    pub max_batch: usize,
    /// Queue a month-boundary disconnect job, in the update's own transaction, for a
    /// Start/Interim of a session that started in an earlier month
    /// (see [`crate::disconnect::month_boundary_job`]).
    pub month_boundary_disconnect: bool,
    /// What one update may plausibly add (`max_session_rate`).
    pub bounds: crate::sessions::Bounds,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            timezone: chrono_tz::UTC,
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            max_batch: 1024,
            month_boundary_disconnect: false,
            bounds: crate::sessions::Bounds::default(),
        }
    }
}

/// Group-commit counters since open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// Transactions run by the writer.
    pub batches: u64,
    /// Jobs (updates and stale sweeps) handled.
    pub items: u64,
    /// Transactions that failed as a whole.
    pub failed_batches: u64,
}

struct Inner {
    path: PathBuf,
    /// One per writer; None once shut down.
    sender: RwLock<Option<Vec<Sender<Job>>>>,
    writer: Mutex<Vec<JoinHandle<()>>>,
    reader: Reader,
    counters: Arc<Counters>,
}

impl Inner {
    fn shutdown(&self) {
        // Dropping the last sender lets the writer finish the queued jobs and exit.
        self.sender
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let handles = std::mem::take(&mut *self.writer.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            if h.join().is_err() {
                log::error!("store: writer thread panicked");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Handle to the store: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// The (device, inode) of a SQLite store's file, if it is one and exists: a file
/// deleted or replaced under open connections is seen by comparing these.
pub(crate) fn file_identity(location: &Location) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(location.path()?).ok()?;
    Some((m.dev(), m.ino()))
}

/// `next_attempt_at` of a queued item that was given up: never due again.
pub const NEVER: i64 = i64::MAX;

/// Version 0: before any migration (reading or taking the schema).
fn migration_failed(version: u32, source: &DbError) -> String {
    match version {
        0 => format!("cannot check the schema: {source}"),
        v => format!("schema migration {v} failed: {source}"),
    }
}

/// What `freeradius -C` can tell of a store without opening it for writing: a
/// SQLite file that exists must be a database of a schema this build knows, and
/// the server's user must be able to write it and create `-wal` / `-shm` beside
/// it. PostgreSQL is checked at the first start (`-C` does not connect).
pub fn check_location(db: &Path) -> Result<(), String> {
    let Location::Sqlite(path) = location(db).map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    let probe = dir.join(format!(".rlm_rust-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => {
            return Err(format!(
                "cannot create files in {} ({e}): the server's user needs to write there",
                dir.display()
            ))
        }
    }
    if !path.exists() {
        return Ok(()); // created at the first start
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        return Err(format!("cannot open {} for writing ({e})", path.display()));
    }
    match db::sqlite::check_file(&path) {
        Ok(v) if v > schema::SCHEMA_VERSION => Err(format!(
            "{} has schema version {v}, newer than this module knows ({}): a newer rlm_rust wrote it",
            path.display(),
            schema::SCHEMA_VERSION
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{} is not a usable database: {e}", path.display())),
    }
}

fn location(path: &Path) -> Result<Location, StoreError> {
    Location::parse(path).map_err(|why| StoreError::BadLocation { why })
}

/// A read-write connection to the store, migrated.
fn open_writer(loc: &Location, opts: &StoreOptions) -> Result<Connection, StoreError> {
    let full = opts.synchronous == Synchronous::Full;
    let mut conn = match loc {
        Location::Sqlite(path) => {
            perms::secure(path);
            db::sqlite::open_writer(path, opts.busy_timeout, full)
                .map(Connection::Sqlite)
                .map_err(|(source, not_wal)| match not_wal {
                    Some(mode) => StoreError::NotWal {
                        path: path.clone(),
                        mode,
                    },
                    None => StoreError::Open {
                        location: loc.to_string(),
                        source,
                    },
                })?
        }
        Location::Postgres(t) => t
            .connect(full, opts.busy_timeout)
            .map(Connection::Postgres)
            .map_err(|source| StoreError::Open {
                location: loc.to_string(),
                source,
            })?,
    };
    schema::migrate(&mut conn)?;
    Ok(conn)
}

/// A read-only connection (PostgreSQL: an ordinary one; the code only reads).
fn open_reader(loc: &Location, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        location: loc.to_string(),
        source,
    };
    match loc {
        Location::Sqlite(path) => {
            if !path.exists() {
                return Err(StoreError::NotFound { path: path.clone() });
            }
            db::sqlite::open_reader(path, busy_timeout)
                .map(Connection::Sqlite)
                .map_err(open_err)
        }
        Location::Postgres(t) => {
            let conn = t.connect(true, busy_timeout).map_err(open_err)?;
            // What only reads cannot write by mistake.
            conn.batch("SET default_transaction_read_only = on")?;
            Ok(Connection::Postgres(conn))
        }
    }
}

impl Store {
    /// Opens (creating if needed) the database, migrates it and starts the writer thread.
    pub fn open(path: impl AsRef<Path>, opts: StoreOptions) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let loc = location(path)?;
        let conn = open_writer(&loc, &opts)?;
        let reader = Reader {
            pool: read::ReadPool::new(loc.clone(), opts.busy_timeout)?,
        };
        let counters = Arc::new(Counters::default());
        let backend = loc.backend();
        // PostgreSQL: several writers, each its own connection and group commit, a
        // user always on the same one (its updates stay in order); like servers
        // sharing the database. SQLite has one write lock: one writer.
        let writers = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => PG_WRITERS,
        };
        let mut senders = Vec::with_capacity(writers);
        let mut handles = Vec::with_capacity(writers);
        let mut first = Some(conn);
        let outage = Arc::new(writer::SharedOutage::default());
        for i in 0..writers {
            let conn = match first.take() {
                Some(c) => c,
                None => open_writer(&loc, &opts)?,
            };
            let (tx, rx) = mpsc::channel();
            let writer = Writer {
                conn,
                reopen: writer::Reopen {
                    location: loc.clone(),
                    opts: opts.clone(),
                    file: file_identity(&loc),
                },
                headrooms: match backend {
                    Backend::Sqlite => crate::pipeline::capping::Headrooms::new(HEADROOM_USERS),
                    Backend::Postgres => {
                        crate::pipeline::capping::Headrooms::shared(HEADROOM_USERS)
                    }
                },
                hourly: Default::default(),
                quotas: policies::QuotaCache::new(HEADROOM_USERS),
                tz: opts.timezone,
                rules: crate::pipeline::Rules {
                    month_boundary: opts.month_boundary_disconnect,
                    bounds: opts.bounds,
                },
                max_batch: opts.max_batch,
                counters: Arc::clone(&counters),
                outage: Arc::clone(&outage),
            };
            let name = if writers == 1 {
                "rlm_rust-store".to_string()
            } else {
                format!("rlm_rust-store{i}")
            };
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || writer.run(rx))
                .map_err(StoreError::Spawn)?;
            senders.push(tx);
            handles.push(handle);
        }
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                sender: RwLock::new(Some(senders)),
                writer: Mutex::new(handles),
                reader,
                counters,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Hands a job to the writer of its user.
    fn send(&self, job: Job) -> Result<(), StoreError> {
        let senders = self.inner.sender.read().unwrap_or_else(|e| e.into_inner());
        let senders = senders.as_ref().ok_or(StoreError::Closed)?;
        let i = writer::shard(&job.request, senders.len());
        senders[i].send(job).map_err(|_| StoreError::WriterGone)
    }

    /// Hands a request over without waiting for its commit (nobody reads the reply).
    fn send_nowait(&self, request: Request) -> Result<(), StoreError> {
        let (reply, _) = mpsc::sync_channel(1);
        self.send(Job { request, reply })
    }

    fn submit(&self, request: Request) -> Result<Reply, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Job { request, reply })?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Applies one accounting packet. Blocks until the transaction containing it
    /// has committed (Ok) or failed (Err); safe to call from many threads at once.
    pub fn record(&self, update: AcctUpdate) -> Result<Outcome, StoreError> {
        match self.submit(Request::Record(update))? {
            Reply::Recorded(o) => Ok(o),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// [`Store::record`], then, in the same commit, the capping decision for the
    /// session's user (limits from `capping.control`, then the store). The record
    /// stands whatever the decision comes to.
    pub fn record_capped(
        &self,
        update: AcctUpdate,
        capping: AcctCapping,
    ) -> Result<(Outcome, CapOutcome), StoreError> {
        match self.submit(Request::RecordCapped(update, Box::new(capping)))? {
            Reply::RecordedCapped(o, c) => Ok((o, c)),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Queues a disconnect job through the writer (cheap: one insert in the next group
    /// commit); false if the session already has a job. For hot paths such as capping.
    pub fn enqueue_disconnect(&self, job: NewDisconnectJob, now: i64) -> Result<bool, StoreError> {
        match self.submit(Request::Enqueue(job, now))? {
            Reply::Enqueued(queued) => Ok(queued),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Closes open sessions whose last update is more than `stale_after_secs`
    /// before `now` (unix seconds); returns how many. Goes through the writer.
    pub fn close_stale(&self, now: i64, stale_after_secs: u64) -> Result<usize, StoreError> {
        match self.submit(Request::CloseStale {
            now,
            stale_after_secs,
        })? {
            Reply::StaleClosed(n) => Ok(n),
            _ => Err(StoreError::WriterGone),
        }
    }

    fn capping(&self, op: capping::Op) -> Result<capping::Done, StoreError> {
        match self.submit(Request::Capping(op))? {
            Reply::Capping(d) => Ok(d),
            _ => Err(StoreError::WriterGone),
        }
    }

    fn capping_count(&self, op: capping::Op) -> Result<usize, StoreError> {
        match self.capping(op)? {
            capping::Done::Count(n) => Ok(n),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Inserts a topup (manual: `consumed` 0, `depleted` false); returns its id.
    pub fn topup_add(&self, topup: NewTopup) -> Result<u64, StoreError> {
        match self.capping(capping::Op::TopupAdd(topup))? {
            capping::Done::Id(id) => Ok(id),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Deletes a topup and its consumption rows; false when there was no such id.
    pub fn topup_remove(&self, id: u64) -> Result<bool, StoreError> {
        Ok(self.capping_count(capping::Op::TopupRemove(id))? > 0)
    }

    /// Writes a capping decision for the period starting at `period_start`, all in
    /// one savepoint: replaces the period's consumption rows of the user's topups,
    /// marks `depleted` (at `now`), inserts the new auto-topups with their
    /// consumption and queues notifications (a key already queued is kept as is).
    /// Returns the ids of the decision's auto-topups. Tests only: applying a decision
    /// twice adds its auto-topups twice; the module decides on the writer
    /// ([`Store::decide`]), against the current state.
    #[cfg(test)]
    pub fn apply_decision(
        &self,
        username: &str,
        period_start: i64,
        now: i64,
        decision: &Decision,
    ) -> Result<Vec<u64>, StoreError> {
        match self.capping(capping::Op::ApplyDecision {
            username: username.to_string(),
            period_start,
            now,
            decision: Box::new(decision.clone()),
        })? {
            capping::Done::Ids(ids) => Ok(ids),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Evaluates and applies in one step on the writer (one savepoint): loads the
    /// period's topups (and usage when `usage` is None), runs
    /// [`crate::capping::evaluate`] and writes the result like [`Store::apply_decision`].
    /// Decisions for the same user are serialized, so racing updates cannot both add
    /// auto-topups. Returns the decision and the ids of its auto-topups.
    pub fn decide(&self, request: DecideRequest) -> Result<(Decision, Vec<u64>), StoreError> {
        match self.capping(capping::Op::Decide(Box::new(request)))? {
            capping::Done::Decided(d, ids) => Ok((*d, ids)),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Sets capping attributes of a user (our names or SMRadius aliases; stored under
    /// our names). The user's resulting limits must parse, else [`StoreError::Invalid`]
    /// and nothing is written.
    pub fn limits_set(&self, username: &str, values: &[(&str, &str)]) -> Result<usize, StoreError> {
        self.capping_count(capping::Op::LimitsSet {
            username: username.to_string(),
            values: values
                .iter()
                .map(|(a, v)| (a.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// Removes capping attributes of a user; returns how many existed.
    pub fn limits_unset(&self, username: &str, attributes: &[&str]) -> Result<usize, StoreError> {
        self.capping_count(capping::Op::LimitsUnset {
            username: username.to_string(),
            attributes: attributes.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// Records a delivery attempt of a queued notification; false when no such key.
    pub fn outbox_mark(
        &self,
        key: &str,
        now: i64,
        result: OutboxResult,
    ) -> Result<bool, StoreError> {
        Ok(self.capping_count(capping::Op::OutboxMark {
            key: key.to_string(),
            now,
            result,
        })? > 0)
    }

    fn policy_op(&self, op: policies::Op) -> Result<policies::Done, StoreError> {
        match self.submit(Request::Policy(op))? {
            Reply::Policy(d) => Ok(d),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Inserts or replaces a policy with all its fields and custom attributes (one
    /// savepoint; `created` is kept on replace). The definition must pass
    /// [`crate::policies::validate_def`], else [`StoreError::Rejected`] and nothing
    /// is written; field names are stored as their [`crate::policies::FieldDef`] name.
    pub fn policy_put(&self, def: PolicyDef) -> Result<(), StoreError> {
        crate::policies::validate_def(&def).map_err(StoreError::Rejected)?;
        match self.policy_op(policies::Op::Put(Box::new(def), crate::periods::now()))? {
            policies::Done::Put => Ok(()),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Deletes a policy and its fields and attributes; false when there was none.
    /// Refused ([`StoreError::Rejected`], saying how many) while users have it.
    pub fn policy_remove(&self, name: &str) -> Result<bool, StoreError> {
        match self.policy_op(policies::Op::Remove(name.to_string()))? {
            policies::Done::Flag(existed) => Ok(existed),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Assigns a policy to a user at `now` (None: unassigns) and forgets the user's
    /// devices, also when it is the same policy again (a new purchase starts the
    /// device count afresh). Returns the previous policy. An unknown policy is
    /// [`StoreError::Rejected`].
    pub fn policy_assign(
        &self,
        username: &str,
        policy: Option<&str>,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        match self.policy_op(policies::Op::Assign {
            username: username.to_string(),
            policy: policy.map(str::to_string),
            now,
        })? {
            policies::Done::Previous(p) => Ok(p),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Records that `username` logged in from device `csid` (Calling-Station-Id) at
    /// `now`; true when the device is new (a known one keeps its first_seen). For the
    /// module, only when [`PolicyView::device_known`] was false.
    pub fn record_device(&self, username: &str, csid: &str, now: i64) -> Result<bool, StoreError> {
        match self.policy_op(policies::Op::RecordDevice {
            username: username.to_string(),
            csid: csid.to_string(),
            now,
        })? {
            policies::Done::Flag(new) => Ok(new),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Remembers the Mikrotik-Rate-Limit a modulated (or throttled) login of
    /// `username` on `nas_ip` was given: the background job's baseline for its
    /// sessions until it sends one of its own.
    pub fn record_login_rate(
        &self,
        username: &str,
        nas_ip: &str,
        rate_limit: Option<&str>,
        throttled: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        match self.policy_op(policies::Op::LoginRate {
            username: username.to_string(),
            nas_ip: nas_ip.to_string(),
            rate_limit: rate_limit.map(str::to_string),
            throttled,
            now,
        })? {
            policies::Done::Put => Ok(()),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// Commits a subscriber state transition through the writer (the module's
    /// threads); false when the subscriber changed meanwhile (decide again).
    pub fn state_commit(&self, change: StateChange) -> Result<bool, StoreError> {
        match self.submit(Request::State(Box::new(change)))? {
            Reply::State(applied) => Ok(applied),
            _ => Err(StoreError::WriterGone),
        }
    }

    /// [`Store::state_commit`] without waiting for the commit: for bookkeeping a
    /// request must not wait for (a login's `user_auth`; should it be lost, or
    /// conflict with a concurrent one, the session's Start records the login).
    pub fn state_commit_nowait(&self, change: StateChange) -> Result<(), StoreError> {
        self.send_nowait(Request::State(Box::new(change)))
    }

    /// Keeps (Some) or forgets (None) the control-list values of the user's login,
    /// without waiting for the commit (a login must not wait for a write).
    pub fn login_control_put_nowait(
        &self,
        username: &str,
        kind: ControlKind,
        vals: Option<String>,
        at: i64,
    ) -> Result<(), StoreError> {
        self.send_nowait(Request::LoginControl {
            username: username.to_string(),
            kind,
            vals,
            at,
        })
    }

    /// Stops the writer after it has finished the queued jobs. Idempotent; later
    /// writes fail with [`StoreError::Closed`]; reads keep working.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            batches: c.batches.load(Ordering::Relaxed),
            items: c.items.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
        }
    }
}

/// A store reads like a [`Reader`]: every read method is available on it too, served
/// by its own read connections (WAL readers never wait for the writer).
impl std::ops::Deref for Store {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.inner.reader
    }
}

/// Read-only access for tools (the CLI): never creates, migrates or writes, and
/// works while the module writes (WAL).
pub struct Reader {
    pool: read::ReadPool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, StoreError> {
        Ok(Reader {
            pool: read::ReadPool::new(location(path.as_ref())?, Duration::from_secs(5))?,
        })
    }

    pub fn backend(&self) -> Backend {
        self.pool.location().backend()
    }

    /// The control-list values of the user's last login (see
    /// [`Store::login_control_put_nowait`]) and when they were kept.
    pub fn login_control(
        &self,
        username: &str,
        kind: ControlKind,
    ) -> Result<Option<(String, i64)>, StoreError> {
        self.pool.with(|c| logins::get(c, username, kind))
    }

    /// Whether any user has such values kept.
    pub fn login_controls_any(&self, kind: ControlKind) -> Result<bool, StoreError> {
        self.pool.with(|c| logins::any(c, kind))
    }

    pub fn subscriber(&self, username: &str) -> Result<Option<SubscriberRow>, StoreError> {
        self.pool.with(|c| states::subscriber_get(c, username))
    }

    /// The users redirected now (over their capping allowance).
    pub fn redirected_users(&self) -> Result<Vec<String>, StoreError> {
        self.pool.with(|c| {
            Ok(states::subscribers_where(c, true)?
                .into_iter()
                .map(|r| r.username)
                .collect())
        })
    }

    /// What a login needs of the user's state in one read: its subscriber row,
    /// service sessions (only read when it has some) and the NAS's type (None: no
    /// NAS row). One statement: this runs for every Access-Accept.
    pub fn login_view(
        &self,
        username: &str,
        nas_ip: Option<&str>,
    ) -> Result<LoginStateView, StoreError> {
        self.pool.with(|c| {
            let (sub, services, nas) = states::login_view(c, username, nas_ip)?;
            let services = if services {
                states::user_services(c, Some(username))?
            } else {
                Vec::new()
            };
            Ok((sub, services, nas))
        })
    }

    /// Service sessions of one user (or everyone's).
    pub fn user_services(&self, username: Option<&str>) -> Result<Vec<UserServiceRow>, StoreError> {
        self.pool.with(|c| states::user_services(c, username))
    }

    pub fn service_get(&self, name: &str) -> Result<Option<crate::services::Service>, StoreError> {
        self.pool.with(|c| states::service_get(c, name))
    }

    pub fn service_list(&self) -> Result<Vec<crate::services::Service>, StoreError> {
        self.pool.with(states::service_list)
    }

    /// Events after id `after` (oldest first), of one user, since a time.
    pub fn events(
        &self,
        username: Option<&str>,
        since: Option<i64>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRow>, StoreError> {
        self.pool
            .with(|c| states::events(c, username, since, after, limit))
    }

    pub fn nas_actions(&self, username: Option<&str>) -> Result<Vec<NasActionRow>, StoreError> {
        self.pool.with(|c| states::actions_list(c, username))
    }

    pub fn open_sessions_of(
        &self,
        username: &str,
    ) -> Result<Vec<crate::states::OpenSession>, StoreError> {
        self.pool.with(|c| states::open_sessions_of(c, username))
    }

    pub fn output_since(&self, username: &str, since: i64) -> Result<u64, StoreError> {
        self.pool.with(|c| states::output_since(c, username, since))
    }

    pub fn redirected_sessions(
        &self,
        username: &str,
    ) -> Result<Vec<crate::states::OpenSession>, StoreError> {
        self.pool.with(|c| states::redirected_sessions(c, username))
    }

    pub fn list_sessions(&self, filter: &SessionFilter) -> Result<Vec<SessionRow>, StoreError> {
        self.pool.with(|c| read::list_sessions(c, filter))
    }

    /// Usage of `username` per month (newest first), then per day (newest first).
    pub fn usage(&self, username: &str) -> Result<Vec<UsageRow>, StoreError> {
        self.pool.with(|c| read::usage(c, username))
    }

    /// Usage of `username` in the month containing `month` (zero if none).
    pub fn month_usage(&self, username: &str, month: NaiveDate) -> Result<Usage, StoreError> {
        self.pool.with(|c| read::month_usage(c, username, month))
    }

    /// Usage of `username` on local day `day` (zero if none).
    pub fn day_usage(&self, username: &str, day: NaiveDate) -> Result<Usage, StoreError> {
        self.pool.with(|c| read::day_usage(c, username, day))
    }

    /// All NASes, by IP.
    pub fn nas_list(&self) -> Result<Vec<NasRow>, StoreError> {
        self.pool.with(disconnect::nas_list)
    }

    /// The NAS with this IP or name.
    pub fn nas_get(&self, key: &str) -> Result<Option<NasRow>, StoreError> {
        self.pool.with(|c| disconnect::nas_get(c, key))
    }

    /// Disconnect jobs (of one state, or all), oldest first.
    pub fn queue_list(&self, state: Option<JobState>) -> Result<Vec<DisconnectJob>, StoreError> {
        self.pool.with(|c| disconnect::queue_list(c, state))
    }

    /// Capping attributes stored for a user, by name.
    pub fn user_limits(&self, username: &str) -> Result<Vec<LimitRow>, StoreError> {
        self.pool.with(|c| capping::user_limits(c, username))
    }

    /// The user's stored capping attributes as [`RawLimits`] for `parse_limits`.
    pub fn raw_limits(&self, username: &str) -> Result<RawLimits, StoreError> {
        self.user_limits(username).map(|rows| raw_limits(&rows))
    }

    pub fn topup_get(&self, id: u64) -> Result<Option<Topup>, StoreError> {
        self.pool.with(|c| capping::topup_get(c, id))
    }

    /// Topups of a user (all when None); without `include_expired` only those still
    /// valid at `now` and not depleted.
    pub fn topup_list(
        &self,
        username: Option<&str>,
        include_expired: bool,
        now: i64,
    ) -> Result<Vec<Topup>, StoreError> {
        self.pool
            .with(|c| capping::topup_list(c, username, include_expired, now))
    }

    /// Topups overlapping `[start, end)` with their consumption before `start`: the
    /// `topups` input of [`crate::capping::evaluate`].
    pub fn topups_for_period(
        &self,
        username: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<TopupBalance>, StoreError> {
        self.pool
            .with(|c| capping::topups_for_period(c, username, start, end))
    }

    /// The inputs of a capping decision without writing anything: the user's usage in
    /// `period` (days and months in zone `tz`), the topups that may count in it and
    /// the period's usage marks.
    #[allow(clippy::type_complexity)]
    pub fn capping_inputs(
        &self,
        username: &str,
        period: crate::capping::Period,
        tz: Tz,
    ) -> Result<
        (
            crate::capping::Usage,
            Vec<TopupBalance>,
            Vec<crate::capping::UsageMark>,
        ),
        StoreError,
    > {
        self.pool
            .with(|c| capping::capping_inputs(c, tz, username, period))
    }

    /// The user's open sessions, without those silent for `stale_after_secs` (their
    /// NAS forgot to send Stop; 0: every open session).
    pub fn open_sessions(
        &self,
        username: &str,
        now: i64,
        stale_after_secs: u64,
    ) -> Result<u64, StoreError> {
        let since = read::stale_cutoff(now, stale_after_secs);
        self.pool.with(|c| read::open_sessions(c, username, since))
    }

    /// A user's open sessions, `month`'s usage, stored limits, capping-period usage
    /// and (when `with_topups` or the user has stored limits) topups, all from one
    /// read transaction.
    pub fn user_snapshot(
        &self,
        username: &str,
        period: crate::capping::Period,
        month: NaiveDate,
        tz: Tz,
        with_topups: bool,
    ) -> Result<UserSnapshot, StoreError> {
        self.pool
            .with(|c| capping::user_snapshot(c, tz, username, period, month, with_topups))
    }

    /// Consumption rows of one topup, oldest period first.
    pub fn topup_consumption(&self, topup_id: u64) -> Result<Vec<ConsumptionRow>, StoreError> {
        self.pool.with(|c| capping::topup_consumption(c, topup_id))
    }

    /// The policy with this name.
    pub fn policy_get(&self, name: &str) -> Result<Option<PolicyDef>, StoreError> {
        self.pool.with(|c| policies::policy_get(c, name))
    }

    /// Every policy, by name (one read transaction).
    pub fn policy_list(&self) -> Result<Vec<PolicyDef>, StoreError> {
        self.pool.with(policies::policy_list)
    }

    /// Every policy's times and number of users, by name.
    pub fn policy_stats(&self) -> Result<Vec<PolicyStats>, StoreError> {
        self.pool.with(policies::policy_stats)
    }

    /// The user's policy and when it was assigned.
    pub fn user_policy(&self, username: &str) -> Result<Option<(String, i64)>, StoreError> {
        self.pool.with(|c| policies::current_policy(c, username))
    }

    /// Devices the user was seen on since the assignment, first seen first.
    pub fn user_devices(&self, username: &str) -> Result<Vec<DeviceRow>, StoreError> {
        self.pool.with(|c| policies::user_devices(c, username))
    }

    /// What a login needs of the user's policy, from one read transaction: the
    /// assigned policy, the devices seen since (and whether `csid` is one), and the
    /// open sessions whose last update is at or after `now - stale_after_secs`
    /// (0: every open session). A user without a policy costs one indexed read and
    /// gets zero counts; see [`Reader::login_counts`] for policy fields that come
    /// only from the control list.
    pub fn login_policy(
        &self,
        username: &str,
        csid: Option<&str>,
        now: i64,
        stale_after_secs: u64,
    ) -> Result<PolicyView, StoreError> {
        self.login(&Self::counts_query(
            username,
            csid,
            now,
            stale_after_secs,
            false,
        ))
    }

    fn counts_query<'a>(
        username: &'a str,
        csid: Option<&'a str>,
        now: i64,
        stale_after_secs: u64,
        always_count: bool,
    ) -> LoginQuery<'a> {
        LoginQuery {
            username,
            csid,
            now,
            stale_after_secs,
            always_count,
            nas_ip: None,
            tz: chrono_tz::UTC,
            control_quotas: false,
            parsed: &|_, _| None,
        }
    }

    /// Everything a login's policy decision reads, from one read transaction: the
    /// policy and counts of [`Reader::login_policy`], the NAS row and, when the
    /// policy or the control list has a quota, the day's and month's usage.
    pub fn login(&self, q: &LoginQuery<'_>) -> Result<PolicyView, StoreError> {
        self.pool.with(|c| policies::login_view(c, q))
    }

    /// [`Reader::login_policy`] with the counts read also when no policy is assigned
    /// (the control list sets `Rust-Policy-Max-Devices` or `-Concurrent-Connections`).
    pub fn login_counts(
        &self,
        username: &str,
        csid: Option<&str>,
        now: i64,
        stale_after_secs: u64,
    ) -> Result<PolicyView, StoreError> {
        self.login(&Self::counts_query(
            username,
            csid,
            now,
            stale_after_secs,
            true,
        ))
    }

    /// The user's hour buckets `(hour start, down, up)` from `since` on (kept only
    /// for users whose stored policy modulates).
    pub fn hour_usage(
        &self,
        username: &str,
        since: i64,
    ) -> Result<Vec<(i64, u64, u64)>, StoreError> {
        self.pool
            .with(|c| modulation::hour_usage(c, username, since))
    }

    /// Open sessions of users whose stored policy modulates, with the rate each was
    /// last given.
    pub fn modulated_sessions(&self) -> Result<Vec<ModulatedSession>, StoreError> {
        self.pool.with(modulation::modulated_sessions)
    }

    /// Every CoA job, oldest first.
    pub fn coa_list(&self) -> Result<Vec<CoaJob>, StoreError> {
        self.pool.with(modulation::coa_list)
    }

    /// Unsent notifications due at `now`, oldest first, at most `limit`.
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.pool.with(|c| capping::outbox_due(c, now, limit))
    }
}

/// Stored limit rows as [`RawLimits`].
pub fn raw_limits(rows: &[LimitRow]) -> RawLimits {
    RawLimits::from_pairs(
        rows.iter()
            .map(|r| (r.attribute.as_str(), r.value.as_str())),
    )
}

#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod tests;
