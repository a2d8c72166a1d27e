//! The single writer: group commit of accounting updates.
//!
//! Server threads send jobs over a channel and block on their own reply channel.
//! The writer takes the first job, drains whatever else is queued (up to
//! `max_batch`), applies them in ONE `BEGIN IMMEDIATE` transaction, each under its
//! own SAVEPOINT so a bad item fails alone, COMMITs once (one fsync for the whole
//! batch) and only then answers every waiter. Each item reads the session row it
//! needs, so a rolled-back batch leaves nothing stale; the one thing kept in memory,
//! the capping [`Headrooms`], is dropped with any failed batch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use super::db::{params, Conn as Connection, OptionalExtension};
use chrono_tz::Tz;

use super::acct::WriterTx;
use super::policies::QuotaCache;
use super::read::{count, session_row, to_db, Name, SESSION_COLUMNS};
use super::StoreError;
use crate::periods;
use crate::pipeline::capping::{Headrooms, Totals};
use crate::pipeline::{self, AcctCapping, CapOutcome, Rules};
use crate::sessions::{self, AcctUpdate, Attribution, Outcome, Session, Usage};

pub(crate) enum Request {
    Record(AcctUpdate),
    /// Record, then decide capping for the session's user in the same commit.
    RecordCapped(AcctUpdate, Box<AcctCapping>),
    CloseStale {
        now: i64,
        stale_after_secs: u64,
    },
    Capping(super::capping::Op),
    Policy(super::policies::Op),
    /// Queue a disconnect job (one per session) at `now`.
    Enqueue(super::NewDisconnectJob, i64),
    /// A subscriber state transition (see [`super::states::commit`]).
    State(Box<super::StateChange>),
    /// A login's control-list values, kept or forgotten.
    LoginControl {
        username: String,
        kind: super::ControlKind,
        vals: Option<String>,
        at: i64,
    },
}

#[derive(Debug)]
pub(crate) enum Reply {
    Recorded(Outcome),
    RecordedCapped(Outcome, CapOutcome),
    StaleClosed(usize),
    Capping(super::capping::Done),
    Policy(super::policies::Done),
    Enqueued(bool),
    State(bool),
    Done,
}

pub(crate) struct Job {
    pub(crate) request: Request,
    pub(crate) reply: SyncSender<Result<Reply, StoreError>>,
}

/// Counters about group commit, for operators and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) items: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    pub(crate) reopen: Reopen,
    pub(crate) headrooms: Headrooms,
    pub(crate) hourly: super::modulation::HourlyUsers,
    pub(crate) quotas: QuotaCache,
    pub(crate) tz: Tz,
    pub(crate) rules: Rules,
    pub(crate) max_batch: usize,
    pub(crate) counters: Arc<Counters>,
    pub(crate) outage: Arc<SharedOutage>,
}

/// How the writer opens its connection again (PostgreSQL restarted, network cut,
/// the SQLite file restored).
pub(crate) struct Reopen {
    pub(crate) location: super::db::Location,
    pub(crate) opts: super::StoreOptions,
    /// SQLite: the (device, inode) of the file the connection has open.
    pub(crate) file: Option<(u64, u64)>,
}

enum FileCheck {
    Same,
    /// Deleted (or moved away): writes would go to a file nobody opens again.
    Gone(String),
    /// Another file at the path (restored from a backup): open that one.
    Replaced,
}

impl Reopen {
    fn check_file(&self) -> FileCheck {
        let Some(had) = self.file else {
            return FileCheck::Same;
        };
        match super::file_identity(&self.location) {
            Some(now) if now == had => FileCheck::Same,
            Some(_) => FileCheck::Replaced,
            None => FileCheck::Gone(format!(
                "the database file {} was deleted or moved; restore it",
                self.location
            )),
        }
    }
}

/// Times a batch is tried again after a deadlock or serialisation failure.
const RETRIES: u32 = 3;

impl Writer {
    /// Runs until every sender is gone, then returns (closing the connection).
    pub(crate) fn run(mut self, rx: Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < self.max_batch.max(1) {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let requests: Vec<&Request> = batch.iter().map(|j| &j.request).collect();
            let started = std::time::Instant::now();
            let results = self.apply(&requests);
            if results.first().is_some_and(Result::is_ok) {
                crate::metrics::global().committed(batch.len(), started.elapsed());
            }
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
            self.counters
                .items
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if matches!(
                results.first(),
                Some(Err(StoreError::Batch(_) | StoreError::Unavailable(_)))
            ) {
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            }
            // Each caller logs its own outcome, in its request's log.
            for (job, result) in batch.into_iter().zip(results) {
                // The waiter may have gone away; nothing to do then.
                let _ = job.reply.send(result);
            }
        }
    }

    /// One batch, on a live connection (opened again if the server dropped it),
    /// tried again when the database asks for it (a deadlock between servers).
    fn apply(&mut self, requests: &[&Request]) -> Vec<Result<Reply, StoreError>> {
        let unavailable = |why: &str| -> Vec<Result<Reply, StoreError>> {
            requests
                .iter()
                .map(|_| Err(StoreError::Unavailable(why.to_string())))
                .collect()
        };
        let mut attempt = 0;
        // PostgreSQL: without savepoints first (see Conn::set_savepoints).
        let mut fast = self.conn.backend() == super::db::Backend::Postgres;
        let mut reopen = match self.reopen.check_file() {
            FileCheck::Same => false,
            FileCheck::Replaced => true,
            FileCheck::Gone(why) => {
                Outage::failed(&self.outage, &why);
                return unavailable(&why);
            }
        };
        loop {
            if reopen || self.conn.is_broken() {
                match super::open_writer(&self.reopen.location, &self.reopen.opts) {
                    Ok(conn) => {
                        self.conn = conn;
                        self.reopen.file = super::file_identity(&self.reopen.location);
                        // What was learnt may be of another file's data.
                        self.headrooms.clear();
                        self.quotas.clear();
                        reopen = false;
                    }
                    Err(e) => {
                        let why = e.to_string();
                        Outage::failed(&self.outage, &why);
                        return unavailable(&why);
                    }
                }
            }
            self.conn.set_savepoints(!fast);
            let (results, failure) = try_batch(
                &mut self.conn,
                &mut self.headrooms,
                &mut self.hourly,
                &mut self.quotas,
                self.tz,
                &self.rules,
                requests,
            );
            self.conn.set_savepoints(true);
            match failure {
                Some(Failure::Slow) if fast => {
                    fast = false;
                    continue;
                }
                Some(Failure::Retry) if attempt < RETRIES => {
                    attempt += 1;
                    log::debug!("store: batch retried after a deadlock or serialisation failure");
                    continue;
                }
                Some(Failure::Connection(why)) => {
                    Outage::failed(&self.outage, &why);
                    return unavailable(&why);
                }
                _ => Outage::ended(&self.outage),
            }
            return results;
        }
    }
}

/// A run of failed batches because the database could not be written (unreachable,
/// disk full, read-only, locked, deleted): logged when it starts and when it ends,
/// not once per batch (nor per writer).
pub(crate) struct Outage {
    since: std::time::Instant,
    batches: u64,
}

/// The writers' common [`Outage`].
pub(crate) type SharedOutage = std::sync::Mutex<Option<Outage>>;

impl Outage {
    fn failed(outage: &SharedOutage, why: &str) {
        let mut outage = outage.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *outage {
            Some(o) => o.batches += 1,
            None => {
                log::error!("store: the database cannot be written ({why}); accounting requests fail (no response, the NAS retransmits) until it is back");
                *outage = Some(Outage {
                    since: std::time::Instant::now(),
                    batches: 1,
                });
            }
        }
    }

    fn ended(outage: &SharedOutage) {
        let mut outage = outage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = outage.take() {
            log::info!(
                "store: the database is back after {:.1} s; {} batches failed meanwhile",
                o.since.elapsed().as_secs_f64(),
                o.batches
            );
        }
    }
}

/// Why a whole batch failed.
enum Failure {
    /// Nothing was saved; the same batch may simply run again.
    Retry,
    /// The database cannot be written now: the connection broke, the disk or file
    /// refuses writes, or a lock held elsewhere (a tool's transaction) outlasted the
    /// wait. Nothing was saved, or (a cut during COMMIT) it may have been. Either
    /// way every waiter gets an error and the NAS sends again; an update carries its
    /// session's totals, so a second copy adds nothing.
    Connection(String),
    /// An item failed in a batch run without savepoints: run it again with them.
    Slow,
    Other,
}

/// The users a request writes for, so that each server takes their locks in one
/// order (PostgreSQL).
fn request_user<'a>(r: &'a Request) -> Option<&'a str> {
    use super::capping::Op;
    match r {
        Request::Record(u) | Request::RecordCapped(u, _) => Some(&u.username),
        Request::Capping(Op::Decide(d)) => Some(&d.username),
        Request::Capping(Op::TopupAdd(t)) => Some(&t.user),
        Request::Capping(Op::LimitsSet { username, .. } | Op::LimitsUnset { username, .. }) => {
            Some(username)
        }
        Request::State(c) => Some(&c.username),
        Request::LoginControl { username, .. } => Some(username),
        _ => None,
    }
}

/// The writer (of `n`) that handles `r`: its user's, so one user's requests keep
/// their order; requests of no user go to the first.
pub(crate) fn shard(r: &Request, n: usize) -> usize {
    match (n, request_user(r)) {
        (0 | 1, _) | (_, None) => 0,
        (n, Some(u)) => (user_lock_key(u) as u64 % n as u64) as usize,
    }
}

/// Takes the transaction-scoped advisory lock of every user in the batch, in one
/// order on every server: two servers' updates of one user then never interleave
/// (usage, the session row, the capping decision), and never deadlock.
fn lock_users(conn: &Connection, requests: &[&Request]) -> Result<(), StoreError> {
    let mut keys: Vec<i64> = requests
        .iter()
        .filter_map(|r| request_user(r))
        .map(user_lock_key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    let list = keys
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    conn.query_row(
        "SELECT count(pg_advisory_xact_lock(k::bigint)) \
         FROM unnest(string_to_array(?1, ',')) AS t(k)",
        params![list],
        |_| Ok(()),
    )?;
    Ok(())
}

/// A user's advisory lock key: FNV-1a of the name's bytes (stable across servers
/// and builds, unlike std's hasher).
pub(crate) fn user_lock_key(username: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in crate::names::encode(username).iter() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Applies `requests` in one transaction. The result for each is its own outcome or
/// error; if the transaction as a whole fails, every item gets that failure.
#[cfg(test)]
pub(crate) fn apply_batch(
    conn: &mut Connection,
    headrooms: &mut Headrooms,
    hourly: &mut super::modulation::HourlyUsers,
    quotas: &mut QuotaCache,
    tz: Tz,
    rules: &Rules,
    requests: &[&Request],
) -> Vec<Result<Reply, StoreError>> {
    try_batch(conn, headrooms, hourly, quotas, tz, rules, requests).0
}

fn failure_of(e: &StoreError) -> Failure {
    match e {
        StoreError::Db(d) if d.is_retryable() => Failure::Retry,
        StoreError::Db(d) if d.is_connection() => Failure::Connection(d.to_string()),
        StoreError::Db(d) if d.is_busy() => {
            Failure::Connection(format!("locked by another process: {d}"))
        }
        _ => Failure::Other,
    }
}

fn try_batch(
    conn: &mut Connection,
    headrooms: &mut Headrooms,
    hourly: &mut super::modulation::HourlyUsers,
    quotas: &mut QuotaCache,
    tz: Tz,
    rules: &Rules,
    requests: &[&Request],
) -> (Vec<Result<Reply, StoreError>>, Option<Failure>) {
    let all_failed =
        |headrooms: &mut Headrooms, quotas: &mut QuotaCache, why: String, f: Failure| {
            // What was learnt in this batch may rest on what was just rolled back.
            headrooms.clear();
            quotas.clear();
            let results = requests
                .iter()
                .map(|_| Err(StoreError::Batch(why.clone())))
                .collect();
            (results, Some(f))
        };
    let conn: &Connection = conn;
    let tx = match conn.transaction() {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            let f = failure_of(&e);
            return all_failed(
                headrooms,
                quotas,
                format!("could not begin the write transaction: {e}"),
                f,
            );
        }
    };
    if tx.backend() == super::db::Backend::Postgres {
        if let Err(e) = lock_users(&tx, requests) {
            let f = failure_of(&e);
            return all_failed(
                headrooms,
                quotas,
                format!("could not lock the batch's users: {e}"),
                f,
            );
        }
    }
    // SQLite: holding the write lock, nobody else can commit until we do.
    let version = data_version(&tx);
    headrooms.sync(version);
    quotas.sync(version);
    hourly.sync(&tx, version);
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        // A failed item is rolled back to its savepoint; the others stay.
        let result = in_savepoint(&tx, &ITEM, || {
            apply_one(&tx, headrooms, hourly, quotas, tz, rules, request)
        });
        if let Err(e) = &result {
            // A deadlock, or the server gone: the batch as a whole is over.
            match failure_of(e) {
                Failure::Other => {}
                f => {
                    return all_failed(
                        headrooms,
                        quotas,
                        format!("nothing of this batch was saved: {e}"),
                        f,
                    )
                }
            }
            // Without savepoints only an item refused before it wrote anything may
            // fail alone.
            if !tx.savepoints() && (tx.tx_failed() || !matches!(e, StoreError::Invalid(_))) {
                return all_failed(
                    headrooms,
                    quotas,
                    format!("an item failed: {e}"),
                    Failure::Slow,
                );
            }
        }
        // Some errors (disk full, I/O) make SQLite roll back the whole transaction:
        // then the items before this one are gone too, so the batch has failed.
        if result.is_err() && tx.is_autocommit() {
            let why = match result {
                Err(e) => format!("the transaction was rolled back by the database: {e}"),
                Ok(_) => String::new(),
            };
            return all_failed(headrooms, quotas, why, Failure::Other);
        }
        results.push(result);
    }
    if tx.tx_failed() {
        // A failure the pipeline absorbed (a capping decision) left the transaction
        // unusable: never report it committed.
        let f = if tx.savepoints() {
            Failure::Other
        } else {
            Failure::Slow
        };
        return all_failed(
            headrooms,
            quotas,
            "a statement of the batch failed".into(),
            f,
        );
    }
    match tx.commit() {
        Ok(()) => (results, None),
        Err(e) => {
            let e = StoreError::from(e);
            let f = failure_of(&e);
            all_failed(
                headrooms,
                quotas,
                format!("commit failed, nothing of this batch was saved: {e}"),
                f,
            )
        }
    }
}

/// Runs `f` under a savepoint through cached statements (rusqlite's `Savepoint`
/// parses its SQL anew for every item, on the one thread every write waits for).
/// On error the savepoint's changes are undone and the error returned.
pub(crate) fn in_savepoint<T>(
    conn: &Connection,
    sp: &Savepoint,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if !conn.savepoints() {
        return f();
    }
    let exec = |sql: &str| -> Result<(), StoreError> {
        conn.prepare_cached(sql)?.execute(())?;
        Ok(())
    };
    exec(sp.begin)?;
    match f() {
        Ok(v) => {
            exec(sp.release)?;
            Ok(v)
        }
        Err(e) => {
            // SQLite may already have rolled back everything (then there is no savepoint).
            if !conn.is_autocommit() {
                let _ = exec(sp.rollback);
                let _ = exec(sp.release);
            }
            Err(e)
        }
    }
}

/// A savepoint's statements, spelled out once (no formatting per item).
pub(crate) struct Savepoint {
    begin: &'static str,
    release: &'static str,
    rollback: &'static str,
}

/// One accounting item (or other write) of a batch.
const ITEM: Savepoint = Savepoint {
    begin: "SAVEPOINT item",
    release: "RELEASE item",
    rollback: "ROLLBACK TO item",
};

/// The capping decision after a record, nested in the item's savepoint.
pub(crate) const CAPPING: Savepoint = Savepoint {
    begin: "SAVEPOINT capping",
    release: "RELEASE capping",
    rollback: "ROLLBACK TO capping",
};

fn apply_one(
    conn: &Connection,
    headrooms: &mut Headrooms,
    hourly: &mut super::modulation::HourlyUsers,
    quotas: &mut QuotaCache,
    tz: Tz,
    rules: &Rules,
    request: &Request,
) -> Result<Reply, StoreError> {
    match request {
        Request::Record(u) => {
            let tx = WriterTx::accounting(conn, tz, quotas, hourly);
            let (outcome, _, totals) = pipeline::record(&tx, tz, rules, u)?;
            headrooms.spend(&outcome, totals.as_ref());
            Ok(Reply::Recorded(outcome))
        }
        Request::RecordCapped(u, c) => {
            let tx = WriterTx::accounting(conn, tz, quotas, hourly);
            let (outcome, cap) = pipeline::record_capped(&tx, headrooms, tz, rules, u, c)?;
            Ok(Reply::RecordedCapped(outcome, cap))
        }
        Request::Enqueue(job, now) => {
            super::disconnect::enqueue(conn, job, *now).map(Reply::Enqueued)
        }
        Request::State(change) => super::states::commit(conn, change).map(Reply::State),
        Request::LoginControl {
            username,
            kind,
            vals,
            at,
        } => super::logins::put(conn, username, *kind, vals.as_deref(), *at).map(|()| Reply::Done),
        Request::CloseStale {
            now,
            stale_after_secs,
        } => {
            let cutoff = now.saturating_sub(i64::try_from(*stale_after_secs).unwrap_or(i64::MAX));
            let n = conn
                .prepare_cached(
                    "UPDATE sessions SET stop_time = last_update, closed_reason = ?2 \
                     WHERE stop_time IS NULL AND last_update < ?1",
                )?
                .execute(params![cutoff, sessions::closed_reason::STALE])?;
            Ok(Reply::StaleClosed(n))
        }
        Request::Capping(op) => {
            if !matches!(op, super::capping::Op::OutboxMark { .. }) {
                // Limits or topups changed on this connection, unseen by `sync`.
                headrooms.clear();
            }
            super::capping::apply(conn, tz, op).map(Reply::Capping)
        }
        Request::Policy(op) => {
            if op.touches_modulation() {
                hourly.invalidate();
            }
            if op.touches_limits() {
                // Rare (CLI) writes; they may change a user's quotas.
                headrooms.clear();
                quotas.clear();
            }
            super::policies::apply(conn, op).map(Reply::Policy)
        }
    }
}

/// The NAS's `counter_wrap` (a NAS not registered counts wraps: `auto` is the
/// default). Asked only when an update looks like a 32-bit wrap, so rarely.
pub(crate) fn nas_counts_wraps(conn: &Connection, nas_ip: &str) -> bool {
    let setting: Result<Option<String>, _> = conn
        .prepare_cached("SELECT counter_wrap FROM nas WHERE nas_ip = ?1")
        .and_then(|mut st| st.query_row([nas_ip], |r| r.get(0)).optional());
    match setting {
        Ok(v) => v.as_deref() != Some("off"),
        Err(e) => {
            log::error!("cannot read counter_wrap of NAS {nas_ip}: {e}; not counting the wrap");
            false
        }
    }
}

pub(crate) fn load_session(
    conn: &Connection,
    nas_ip: &str,
    key: &str,
) -> Result<Option<Session>, StoreError> {
    // Built once: this runs for every accounting item, on the thread they all wait for.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE nas_ip = ?1 AND session_key = ?2")
    });
    // PostgreSQL: the row stays locked until the batch commits. The user's advisory
    // lock already serialises the session's updates, unless its packets name
    // different users (then two servers could otherwise read the same baseline).
    static FOR_UPDATE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{} FOR UPDATE", *SQL));
    let sql: &str = match conn.backend() {
        super::db::Backend::Sqlite => &SQL,
        super::db::Backend::Postgres => &FOR_UPDATE,
    };
    let row = conn
        .prepare_cached(sql)?
        .query_row(params![nas_ip, Name::new(key)], session_row)
        .optional()?;
    Ok(row.map(|r| r.session))
}

/// [`save_session`] for a known session whose user and start are unchanged; `$stop`
/// adds stop_time to the SET list (only when it changes: the partial indexes follow it).
macro_rules! update_progress {
    ($stop:literal) => {
        concat!(
            "UPDATE sessions SET acct_session_id = ?3, nas_port = ?4, \
               framed_ip = ?5, calling_station_id = ?6, \
               last_update = ?7, session_time = ?8, input_octets = ?9, \
               output_octets = ?10, terminate_cause = ?11, \
               closed_reason = ?12, gigawords = ?13",
            $stop,
            " WHERE nas_ip = ?1 AND session_key = ?2"
        )
    };
}
const UPDATE_PROGRESS: &str = update_progress!("");
const UPDATE_PROGRESS_AND_STOP: &str = update_progress!(", stop_time = ?14");

pub(crate) fn save_session(
    conn: &Connection,
    nas_ip: &str,
    key: &str,
    prev: Option<&Session>,
    s: &Session,
) -> Result<(), StoreError> {
    if let Some(p) = prev.filter(|p| (&p.username, p.start_time) == (&s.username, s.start_time)) {
        if p == s {
            return Ok(());
        }
        // Neither the user nor the start moved (an Interim, a Stop): updating only
        // the columns that changed leaves the indexes on the others alone, where the
        // upsert below rewrites an entry in every index, a random page apiece on a
        // large store. An Interim leaves stop_time, and so the partial indexes, too.
        let stopping = p.stop_time != s.stop_time;
        let mut stmt = conn.prepare_cached(if stopping {
            UPDATE_PROGRESS_AND_STOP
        } else {
            UPDATE_PROGRESS
        })?;
        let key = Name::new(key);
        let acct_session_id = Name::new(&s.acct_session_id);
        let session_time = to_db(s.session_time);
        let input = to_db(s.input_octets);
        let output = to_db(s.output_octets);
        let params = params![
            nas_ip,
            key,
            acct_session_id,
            s.nas_port,
            s.framed_ip,
            s.calling_station_id,
            s.last_update,
            session_time,
            input,
            output,
            s.terminate_cause,
            s.closed_reason,
            s.gigawords,
        ];
        if stopping {
            let mut with_stop = params.to_vec();
            with_stop.push(&s.stop_time);
            stmt.execute(with_stop)?;
        } else {
            stmt.execute(params)?;
        }
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO sessions (nas_ip, session_key, acct_session_id, username, nas_port, framed_ip, \
           calling_station_id, start_time, last_update, stop_time, session_time, input_octets, \
           output_octets, terminate_cause, closed_reason, gigawords) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
         ON CONFLICT (nas_ip, session_key) DO UPDATE SET \
           acct_session_id = excluded.acct_session_id, username = excluded.username, \
           nas_port = excluded.nas_port, framed_ip = excluded.framed_ip, \
           calling_station_id = excluded.calling_station_id, start_time = excluded.start_time, \
           last_update = excluded.last_update, stop_time = excluded.stop_time, \
           session_time = excluded.session_time, input_octets = excluded.input_octets, \
           output_octets = excluded.output_octets, terminate_cause = excluded.terminate_cause, \
           closed_reason = excluded.closed_reason, gigawords = excluded.gigawords",
    )?
    .execute(params![
        nas_ip,
        Name::new(key),
        Name::new(&s.acct_session_id),
        Name::new(&s.username),
        s.nas_port,
        s.framed_ip,
        s.calling_station_id,
        s.start_time,
        s.last_update,
        s.stop_time,
        to_db(s.session_time),
        to_db(s.input_octets),
        to_db(s.output_octets),
        s.terminate_cause,
        s.closed_reason,
        s.gigawords,
    ])?;
    Ok(())
}

macro_rules! saturating_add {
    ($t:literal, $c:literal) => {
        concat!(
            $c,
            " = CASE WHEN ",
            $t,
            ".",
            $c,
            " > 9223372036854775807 - excluded.",
            $c,
            " THEN 9223372036854775807 ELSE ",
            $t,
            ".",
            $c,
            " + excluded.",
            $c,
            " END"
        )
    };
}

/// Adds `?3..?5` to the user's (`?1`) bucket `?2` of `$t` (period column `$p`).
macro_rules! usage_upsert {
    ($t:literal, $p:literal, $key:literal) => {
        concat!(
            "INSERT INTO ",
            $t,
            " (username, ",
            $p,
            ", input_octets, output_octets, session_time) \
             VALUES (?1, ",
            $key,
            ", ?3, ?4, ?5) ON CONFLICT (username, ",
            $p,
            ") DO UPDATE SET ",
            saturating_add!($t, "input_octets"),
            ", ",
            saturating_add!($t, "output_octets"),
            ", ",
            saturating_add!($t, "session_time")
        )
    };
}

const DAY_UPSERT: &str = usage_upsert!("usage_day", "day", "?2");
const MONTH_UPSERT: &str = usage_upsert!("usage_month", "month", "?2");
/// PostgreSQL: both in one statement (one round trip), with the totals they left.
const BOTH_UPSERT: &str = concat!(
    "WITH d AS (",
    usage_upsert!("usage_day", "day", "?2"),
    " RETURNING input_octets, output_octets, session_time), ",
    "m AS (",
    usage_upsert!("usage_month", "month", "?6"),
    " RETURNING input_octets, output_octets, session_time) ",
    "SELECT d.input_octets, d.output_octets, d.session_time, ",
    "m.input_octets, m.output_octets, m.session_time FROM d, m"
);

/// Adds `d` to the user's day and month; on PostgreSQL also returns the totals
/// after it (see [`crate::pipeline::capping::Headrooms`]).
pub(crate) fn add_usage(
    conn: &Connection,
    username: &str,
    at: Attribution,
    d: Usage,
) -> Result<Option<Totals>, StoreError> {
    let (input, output, time) = (
        to_db(d.input_octets),
        to_db(d.output_octets),
        to_db(d.session_time),
    );
    let (day, month) = (periods::day_key(at.day), periods::month_key(at.month));
    if conn.backend() == super::db::Backend::Postgres {
        let (day, month) = conn.prepare_cached(BOTH_UPSERT)?.query_row(
            params![Name::new(username), day, input, output, time, month],
            |r| {
                let u = |i| -> super::db::DbResult<Usage> {
                    Ok(Usage {
                        input_octets: count(r, i)?,
                        output_octets: count(r, i + 1)?,
                        session_time: count(r, i + 2)?,
                    })
                };
                Ok((u(0)?, u(3)?))
            },
        )?;
        return Ok(Some(Totals { day, month }));
    }
    for (sql, period) in [(DAY_UPSERT, day), (MONTH_UPSERT, month)] {
        conn.prepare_cached(sql)?.execute(params![
            Name::new(username),
            period,
            input,
            output,
            time
        ])?;
    }
    Ok(None)
}

/// What the caches are checked against: SQLite's `PRAGMA data_version` (changes when
/// another connection commits); on PostgreSQL the `store_version` row that triggers
/// bump on every change of limits, topups, usage marks and policies (accounting
/// does not bump it: [`crate::pipeline::capping::Headrooms`] checks usage itself).
fn data_version(conn: &Connection) -> Option<i64> {
    match conn {
        Connection::Sqlite(c) => super::db::sqlite::data_version(c),
        Connection::Postgres(_) => conn
            .prepare_cached("SELECT n FROM store_version WHERE id = 1")
            .and_then(|mut s| s.query_row((), |r| r.get::<_, i64>(0)))
            .ok(),
    }
}
