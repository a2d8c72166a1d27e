use super::*;
use crate::sessions::{octets, AcctStatus, OutcomeKind};
use crate::store::testdb;
use chrono::DateTime;
use chrono_tz::{Europe, UTC};

fn ts(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp()
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub(crate) fn upd(
    status: AcctStatus,
    user: &str,
    sid: &str,
    input: u64,
    output: u64,
    time: Option<u32>,
    at: i64,
) -> AcctUpdate {
    AcctUpdate {
        status,
        nas_ip: "127.0.0.2".into(),
        session_id: sid.into(),
        unique_id: None,
        username: user.into(),
        input_octets: input,
        output_octets: output,
        gigawords: false,
        session_time: time,
        framed_ip: Some("100.64.0.9".into()),
        calling_station_id: Some("AA-BB-CC-DD-EE-FF".into()),
        nas_port: Some(15),
        terminate_cause: (status == AcctStatus::Stop).then(|| "User-Request".into()),
        event_time: at,
    }
}

fn open_in(dir: &tempfile::TempDir, tz: Tz) -> Store {
    let opts = StoreOptions {
        timezone: tz,
        ..StoreOptions::default()
    };
    Store::open(testdb::at(dir.path().join("rlm.sqlite")), opts).unwrap()
}

fn usage(i: u64, o: u64, t: u64) -> Usage {
    Usage {
        input_octets: i,
        output_octets: o,
        session_time: t,
    }
}

const GIB: u32 = 1 << 30;

/// A 5+ GiB session (counters with gigawords) crossing a month end.
fn month_end_session() -> Vec<AcctUpdate> {
    vec![
        // 2026-10-31 23:00 in Berlin (CET, UTC+1).
        upd(
            AcctStatus::Start,
            "alice",
            "s1",
            0,
            0,
            None,
            ts("2026-10-31T22:00:00Z"),
        ),
        // 23:59 Berlin: 4 GiB + 123 in (one gigaword).
        upd(
            AcctStatus::Interim,
            "alice",
            "s1",
            octets(123, 1),
            1000,
            Some(3540),
            ts("2026-10-31T22:59:00Z"),
        ),
        // 00:30 Berlin on Nov 1 (still Oct 31 in UTC): 5 GiB + 456 in, 4 GiB + 7 out.
        upd(
            AcctStatus::Stop,
            "alice",
            "s1",
            octets(GIB + 456, 1),
            octets(7, 1),
            Some(5400),
            ts("2026-10-31T23:30:00Z"),
        ),
    ]
}

#[test]
fn month_end_split_is_exact_in_berlin() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, Europe::Berlin);
    for u in month_end_session() {
        store.record(u).unwrap();
    }
    let g = 1u64 << 32;
    let cases = [
        ("2026-10-01", usage(g + 123, 1000, 3540)),
        (
            "2026-11-01",
            usage(u64::from(GIB) + 333, g + 7 - 1000, 1860),
        ),
        ("2026-12-01", usage(0, 0, 0)),
    ];
    for (month, want) in cases {
        assert_eq!(
            store.month_usage("alice", date(month)).unwrap(),
            want,
            "{month}"
        );
    }
    assert_eq!(
        store.day_usage("alice", date("2026-10-31")).unwrap(),
        usage(g + 123, 1000, 3540)
    );
    assert_eq!(
        store.day_usage("alice", date("2026-11-01")).unwrap(),
        usage(u64::from(GIB) + 333, g + 7 - 1000, 1860)
    );
    let rows = store.usage("alice").unwrap();
    let keys: Vec<(PeriodKind, &str)> = rows.iter().map(|r| (r.kind, r.period.as_str())).collect();
    assert_eq!(
        keys,
        [
            (PeriodKind::Month, "2026-11"),
            (PeriodKind::Month, "2026-10"),
            (PeriodKind::Day, "2026-11-01"),
            (PeriodKind::Day, "2026-10-31"),
        ]
    );
    let total = rows
        .iter()
        .filter(|r| r.kind == PeriodKind::Month)
        .fold(0, |a, r| a + r.usage.input_octets);
    assert_eq!(
        total,
        5 * u64::from(GIB) + 456,
        "months add up to the session's counter"
    );
}

#[test]
fn month_end_in_utc_stays_in_october() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    for u in month_end_session() {
        store.record(u).unwrap();
    }
    let oct = store.month_usage("alice", date("2026-10-01")).unwrap();
    assert_eq!(oct.input_octets, octets(GIB + 456, 1));
    assert_eq!(
        store.month_usage("alice", date("2026-11-01")).unwrap(),
        Usage::default()
    );
}

#[test]
fn retransmits_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-05-10T10:00:00Z");
    let packets = [
        upd(AcctStatus::Start, "bob", "r1", 0, 0, None, t),
        upd(
            AcctStatus::Interim,
            "bob",
            "r1",
            1000,
            100,
            Some(60),
            t + 60,
        ),
        upd(
            AcctStatus::Interim,
            "bob",
            "r1",
            3000,
            300,
            Some(120),
            t + 120,
        ),
        upd(AcctStatus::Stop, "bob", "r1", 4000, 400, Some(150), t + 150),
    ];
    let mut kinds = Vec::new();
    for p in &packets {
        for _ in 0..2 {
            kinds.push(store.record(p.clone()).unwrap().kind);
        }
    }
    use OutcomeKind::*;
    assert_eq!(
        kinds,
        [
            Opened,
            DuplicateStart,
            Updated,
            Updated,
            Updated,
            Updated,
            Stopped,
            DuplicateStop
        ]
    );
    assert_eq!(
        store.month_usage("bob", date("2026-05-01")).unwrap(),
        usage(4000, 400, 150)
    );
    let rows = store.list_sessions(&SessionFilter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    let s = &rows[0].session;
    assert_eq!(
        (s.input_octets, s.stop_time, s.closed_reason.as_deref()),
        (4000, Some(t + 150), Some("stop"))
    );
    assert_eq!(s.terminate_cause.as_deref(), Some("User-Request"));
    assert_eq!(s.framed_ip.as_deref(), Some("100.64.0.9"));
}

#[test]
fn outcome_line_names_the_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, Europe::Berlin);
    let t = ts("2026-11-21T10:00:00Z");
    store
        .record(upd(AcctStatus::Start, "alice", "abc", 0, 0, None, t))
        .unwrap();
    let o = store
        .record(upd(
            AcctStatus::Interim,
            "alice",
            "abc",
            1_048_576,
            2048,
            Some(60),
            t + 60,
        ))
        .unwrap();
    assert_eq!(
        o.to_string(),
        "interim for session \"abc\" of \"alice\" on 127.0.0.2: updated; +1048576 in, +2048 out, +60 s attributed to 2026-11-21 / 2026-11"
    );
}

#[test]
fn concurrent_records_all_commit_with_exact_totals() {
    const THREADS: u64 = 16;
    const PER_THREAD: u64 = 500;
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t0 = ts("2026-03-10T00:00:00Z");
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                let user = format!("user{i}");
                let sid = format!("sess{i}");
                for n in 0..PER_THREAD {
                    let status = match n {
                        0 => AcctStatus::Start,
                        n if n == PER_THREAD - 1 => AcctStatus::Stop,
                        _ => AcctStatus::Interim,
                    };
                    // Thread i's counters grow by (i + 1) KiB per packet.
                    let counter = n * (i + 1) * 1024;
                    let u = upd(
                        status,
                        &user,
                        &sid,
                        counter,
                        counter / 2,
                        Some(n as u32),
                        t0 + n as i64,
                    );
                    store.record(u).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for i in 0..THREADS {
        let last = (PER_THREAD - 1) * (i + 1) * 1024;
        let got = store
            .month_usage(&format!("user{i}"), date("2026-03-01"))
            .unwrap();
        assert_eq!(got, usage(last, last / 2, PER_THREAD - 1), "user{i}");
    }
    let closed = store
        .list_sessions(&SessionFilter {
            state: OpenState::Closed,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(closed.len(), THREADS as usize);
    let stats = store.stats();
    assert_eq!(stats.items, THREADS * PER_THREAD);
    assert_eq!(stats.failed_batches, 0);
    // Group commit: with 16 writers waiting, batches hold more than one item.
    assert!(stats.batches < stats.items, "{stats:?}");
}

#[test]
fn a_bad_item_fails_alone_within_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    let mut conn = open_writer(&location(&path).unwrap(), &StoreOptions::default()).unwrap();
    // Fails "boom"'s item after its session row was written: the savepoint must undo it.
    conn.execute_batch(match conn.backend() {
        Backend::Sqlite => {
            "CREATE TRIGGER fail_boom BEFORE INSERT ON usage_day WHEN NEW.username = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        }
        Backend::Postgres => {
            "CREATE FUNCTION fail_boom() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'injected failure'; END $$; \
             CREATE TRIGGER fail_boom BEFORE INSERT ON usage_day FOR EACH ROW \
             WHEN (NEW.username = 'boom') EXECUTE FUNCTION fail_boom();"
        }
    })
    .unwrap();
    let t = ts("2026-02-01T12:00:00Z");
    let requests = [
        Request::Record(upd(AcctStatus::Interim, "ann", "a", 10, 1, Some(5), t)),
        Request::Record(upd(AcctStatus::Interim, "boom", "b", 20, 2, Some(5), t)),
        Request::Record(upd(AcctStatus::Stop, "cid", "", 30, 3, Some(5), t)),
        Request::CloseStale {
            now: t,
            stale_after_secs: 3600,
        },
        Request::Record(upd(AcctStatus::Interim, "dee", "d", 40, 4, Some(5), t)),
    ];
    let refs: Vec<&Request> = requests.iter().collect();
    let results = writer::apply_batch(
        &mut conn,
        &mut crate::pipeline::capping::Headrooms::new(16),
        &mut Default::default(),
        &mut policies::QuotaCache::new(16),
        UTC,
        &crate::pipeline::Rules::default(),
        &refs,
    );
    let summary: Vec<Result<(), String>> = results
        .into_iter()
        .map(|r| {
            r.map(|_| ()).map_err(|e| {
                e.to_string()
                    .replace("PostgreSQL: ", "")
                    .replace(" (SQLSTATE P0001)", "")
            })
        })
        .collect();
    assert_eq!(
        summary,
        [
            Ok(()),
            Err("database error: injected failure".to_string()),
            Err("invalid accounting packet: no Acct-Session-Id".to_string()),
            Ok(()),
            Ok(()),
        ]
    );
    let users: Vec<String> = conn
        .prepare("SELECT username FROM sessions ORDER BY username")
        .unwrap()
        .query_map((), |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(users, ["ann", "dee"], "boom's session row was rolled back");
}

#[test]
fn invalid_packet_through_the_store_does_not_hurt_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-02-01T12:00:00Z");
    let mut bad = upd(AcctStatus::Interim, "x", "s", 1, 1, None, t);
    bad.nas_ip.clear();
    assert!(matches!(store.record(bad), Err(StoreError::Invalid(_))));
    store
        .record(upd(AcctStatus::Interim, "y", "s", 5, 5, None, t))
        .unwrap();
    assert_eq!(
        store.month_usage("y", date("2026-02-01")).unwrap(),
        usage(5, 5, 0)
    );
}

#[test]
fn locked_database_fails_the_whole_batch_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    let opts = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let store = Store::open(&path, opts).unwrap();
    let other = testdb::raw(&path);
    testdb::block_writes(&other, "sessions");
    let t = ts("2026-02-01T12:00:00Z");
    let err = store
        .record(upd(AcctStatus::Start, "z", "s", 0, 0, None, t))
        .unwrap_err();
    // An outage (logged once, not per request) until the lock is gone.
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("lock"), "{err}");
    other.rollback().unwrap();
    let o = store
        .record(upd(AcctStatus::Start, "z", "s", 0, 0, None, t))
        .unwrap();
    assert_eq!(
        o.kind,
        OutcomeKind::Opened,
        "nothing of the failed batch was kept"
    );
    assert_eq!(store.stats().failed_batches, 1);
}

#[test]
fn data_survives_reopen_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let t = ts("2026-07-01T08:00:00Z");
    {
        let store = open_in(&dir, UTC);
        store
            .record(upd(AcctStatus::Interim, "eve", "e", 77, 7, Some(9), t))
            .unwrap();
        // Dropped here: the writer is joined and the connection closed.
    }
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    let mut conn = testdb::raw(&path);
    assert_eq!(
        schema::migrate(&mut conn).unwrap(),
        0,
        "nothing left to migrate"
    );
    assert_eq!(testdb::schema_version(&conn), testdb::supported_version());
    drop(conn);
    let store = open_in(&dir, UTC);
    assert_eq!(
        store.month_usage("eve", date("2026-07-01")).unwrap(),
        usage(77, 7, 9)
    );
    let o = store
        .record(upd(AcctStatus::Interim, "eve", "e", 77, 7, Some(9), t))
        .unwrap();
    assert!(o.delta.is_zero(), "the baseline survived the reopen");
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    testdb::set_schema_version(&testdb::raw(&path), testdb::supported_version() + 1);
    let err = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
    let err = Reader::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
}

#[test]
fn accounting_on_closes_only_that_nas() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-04-01T00:00:00Z");
    for sid in ["a", "b", "c"] {
        store
            .record(upd(AcctStatus::Start, "u", sid, 0, 0, None, t))
            .unwrap();
    }
    let mut other_nas = upd(AcctStatus::Start, "v", "a", 0, 0, None, t);
    other_nas.nas_ip = "127.0.0.3".into();
    store.record(other_nas).unwrap();
    store
        .record(upd(AcctStatus::Stop, "u", "c", 5, 5, Some(5), t + 5))
        .unwrap();
    let mut on = upd(AcctStatus::AccountingOn, "", "", 0, 0, None, t + 100);
    on.terminate_cause = None;
    let o = store.record(on.clone()).unwrap();
    assert_eq!(o.kind, OutcomeKind::NasClosed { closed: 2 });
    assert_eq!(
        o.to_string(),
        "Accounting-On from 127.0.0.2: closed 2 open sessions"
    );
    assert_eq!(
        store.record(on).unwrap().kind,
        OutcomeKind::NasClosed { closed: 0 }
    );
    let open = store
        .list_sessions(&SessionFilter {
            state: OpenState::Open,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].nas_ip, "127.0.0.3");
    let reasons: Vec<Option<String>> = store
        .list_sessions(&SessionFilter {
            nas_ip: Some("127.0.0.2".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.session.closed_reason)
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_deref() == Some("nas-reboot"))
            .count(),
        2
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_deref() == Some("stop"))
            .count(),
        1
    );
}

#[test]
fn stale_sessions_close_and_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-04-01T00:00:00Z");
    store
        .record(upd(AcctStatus::Interim, "old", "o", 10, 10, Some(10), t))
        .unwrap();
    store
        .record(upd(
            AcctStatus::Interim,
            "new",
            "n",
            10,
            10,
            Some(10),
            t + 3000,
        ))
        .unwrap();
    assert_eq!(store.close_stale(t + 3600, 1800).unwrap(), 1);
    assert_eq!(store.close_stale(t + 3600, 1800).unwrap(), 0);
    let old = store
        .list_sessions(&SessionFilter {
            username: Some("old".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(old[0].session.closed_reason.as_deref(), Some("stale"));
    assert_eq!(
        old[0].session.stop_time,
        Some(t),
        "closed at its last update"
    );
    let o = store
        .record(upd(
            AcctStatus::Interim,
            "old",
            "o",
            15,
            10,
            Some(20),
            t + 4000,
        ))
        .unwrap();
    assert_eq!(o.kind, OutcomeKind::Reopened);
    assert_eq!(
        store.month_usage("old", date("2026-04-01")).unwrap(),
        usage(15, 10, 20)
    );
}

#[test]
fn list_sessions_filters_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-04-01T00:00:00Z");
    for n in 0..5 {
        store
            .record(upd(
                AcctStatus::Start,
                if n % 2 == 0 { "even" } else { "odd" },
                &format!("s{n}"),
                0,
                0,
                None,
                t + n,
            ))
            .unwrap();
    }
    store
        .record(upd(AcctStatus::Stop, "even", "s0", 1, 1, Some(1), t + 10))
        .unwrap();
    let ids = |f: SessionFilter| -> Vec<String> {
        store
            .list_sessions(&f)
            .unwrap()
            .into_iter()
            .map(|r| r.session_key)
            .collect()
    };
    let user = |u: &str| Some(u.to_string());
    let cases = [
        (SessionFilter::default(), vec!["s4", "s3", "s2", "s1", "s0"]),
        (
            SessionFilter {
                username: user("even"),
                ..Default::default()
            },
            vec!["s4", "s2", "s0"],
        ),
        (
            SessionFilter {
                username: user("even"),
                state: OpenState::Open,
                ..Default::default()
            },
            vec!["s4", "s2"],
        ),
        (
            SessionFilter {
                state: OpenState::Closed,
                ..Default::default()
            },
            vec!["s0"],
        ),
        (
            SessionFilter {
                limit: Some(2),
                ..Default::default()
            },
            vec!["s4", "s3"],
        ),
        (
            SessionFilter {
                nas_ip: Some("127.0.0.9".into()),
                ..Default::default()
            },
            vec![],
        ),
        (
            SessionFilter {
                started_before: Some(t + 3),
                ..Default::default()
            },
            vec!["s2", "s1", "s0"],
        ),
        (
            SessionFilter {
                started_before: Some(t + 3),
                state: OpenState::Open,
                ..Default::default()
            },
            vec!["s2", "s1"],
        ),
        // Keyset pages: after (start, id) in newest-first order.
        (
            SessionFilter {
                after: Some((t + 3, i64::MAX)),
                limit: Some(2),
                ..Default::default()
            },
            vec!["s3", "s2"],
        ),
        (
            SessionFilter {
                after: Some((t + 3, 0)),
                ..Default::default()
            },
            vec!["s2", "s1", "s0"],
        ),
    ];
    for (f, want) in cases {
        assert_eq!(ids(f.clone()), want, "{f:?}");
        let all = SessionFilter {
            after: None,
            limit: None,
            ..f.clone()
        };
        assert_eq!(
            store.count_sessions(&f).unwrap(),
            ids(all).len() as u64,
            "the count ignores cursor and limit: {f:?}"
        );
    }
    // Walking pages of 2 by the last row's (start, id) visits every session once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_sessions(&SessionFilter {
                after,
                limit: Some(2),
                ..Default::default()
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.session.start_time, last.id));
        seen.extend(page.into_iter().map(|r| r.session_key));
    }
    assert_eq!(seen, ["s4", "s3", "s2", "s1", "s0"]);
}

#[test]
fn reader_is_read_only_and_sees_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    assert!(matches!(
        Reader::open(&path),
        Err(StoreError::NotFound { .. } | StoreError::NoSchema)
    ));
    assert!(!path.exists(), "a reader never creates the database");
    let store = open_in(&dir, UTC);
    let reader = Reader::open(&path).unwrap();
    let t = ts("2026-04-01T00:00:00Z");
    store
        .record(upd(AcctStatus::Interim, "r", "s", 3, 4, Some(5), t))
        .unwrap();
    assert_eq!(
        reader.month_usage("r", date("2026-04-15")).unwrap(),
        usage(3, 4, 5)
    );
    let writes = reader
        .pool
        .with(|c| Ok(c.execute("DELETE FROM sessions", ())));
    assert!(
        writes.unwrap().is_err(),
        "read-only connection refused the write"
    );
}

#[test]
fn foreign_file_is_not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("empty.sqlite"));
    testdb::raw(&path)
        .execute_batch("CREATE TABLE t (x BIGINT)")
        .unwrap();
    assert!(matches!(Reader::open(&path), Err(StoreError::NoSchema)));
}

#[test]
fn shutdown_is_idempotent_and_reads_continue() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = ts("2026-04-01T00:00:00Z");
    store
        .record(upd(AcctStatus::Interim, "s", "s", 1, 1, None, t))
        .unwrap();
    let clone = store.clone();
    store.shutdown();
    clone.shutdown();
    assert!(matches!(
        clone.record(upd(AcctStatus::Interim, "s", "s", 2, 2, None, t)),
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.close_stale(t, 1), Err(StoreError::Closed)));
    assert_eq!(
        store.month_usage("s", date("2026-04-01")).unwrap(),
        usage(1, 1, 0)
    );
}

#[test]
fn store_is_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<Store>();
}

#[test]
fn pragmas_follow_options() {
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // (option, PRAGMA synchronous value: FULL = 2, NORMAL = 1)
    let cases = [(Synchronous::Full, 2), (Synchronous::Normal, 1)];
    for (sync, want) in cases {
        let opts = StoreOptions {
            synchronous: sync,
            ..StoreOptions::default()
        };
        let conn = open_writer(&location(&dir.path().join("p.sqlite")).unwrap(), &opts).unwrap();
        let conn = conn.sqlite().unwrap();
        let got: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(got, want, "{sync:?}");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    assert_eq!("normal".parse::<Synchronous>(), Ok(Synchronous::Normal));
    assert!("off".parse::<Synchronous>().is_err());
}

/// Per-user reads go through sessions_by_user: the login's open-session count
/// without touching the table, and the history without a full scan.
#[test]
fn per_user_session_reads_use_the_user_index() {
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(["joe"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("; ")
    };
    let count = plan("SELECT COUNT(*) FROM sessions WHERE username = ?1 AND stop_time IS NULL");
    assert!(
        count.contains("COVERING INDEX sessions_by_user (username=? AND stop_time=?)"),
        "{count}"
    );
    let history = plan("SELECT * FROM sessions WHERE 1 AND username = ? ORDER BY start_time DESC");
    assert!(
        history.contains("INDEX sessions_by_user (username=?)"),
        "{history}"
    );
}

fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The database and its -wal and -shm, which exist while a connection is open.
fn db_files(path: &Path) -> [PathBuf; 3] {
    [
        path.to_path_buf(),
        perms::companion(path, "-wal"),
        perms::companion(path, "-shm"),
    ]
}

#[test]
fn a_new_database_and_its_wal_and_shm_are_closed_to_other_users() {
    // SQLite only: files.
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    let store = open_in(&dir, UTC);
    store
        .record(upd(
            AcctStatus::Start,
            "m",
            "m",
            0,
            0,
            None,
            ts("2026-04-01T00:00:00Z"),
        ))
        .unwrap();
    let db_mode = file_mode(&path);
    assert_eq!(db_mode & 0o607, 0o600, "{db_mode:o}");
    for p in db_files(&path) {
        assert_eq!(file_mode(&p), db_mode, "{}", p.display());
    }

    // The disconnect worker's and the CLI's connection create the same way.
    let admin_path = testdb::at(dir.path().join("admin.sqlite"));
    let admin = Admin::open(&admin_path).unwrap();
    for p in db_files(&admin_path) {
        assert_eq!(file_mode(&p) & 0o007, 0, "{}", p.display());
    }
    drop(admin);
}

#[test]
fn an_open_to_all_database_is_tightened_at_open_and_a_stricter_one_kept() {
    // SQLite only: files.
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = testdb::at(dir.path().join("rlm.sqlite"));
    let t = ts("2026-04-01T00:00:00Z");
    // A store from before: 0644 (the umask's), with its -wal and -shm in use.
    let old = open_in(&dir, UTC);
    old.record(upd(AcctStatus::Start, "o", "o", 0, 0, None, t))
        .unwrap();
    for p in db_files(&path) {
        set_mode(&p, 0o644);
    }
    let admin = Admin::open(&path).unwrap();
    for p in db_files(&path) {
        assert_eq!(file_mode(&p), 0o640, "{}", p.display());
    }
    drop((admin, old));

    // The operator's 0600 stays 0600, and new -wal and -shm follow it.
    set_mode(&path, 0o600);
    let store = open_in(&dir, UTC);
    store
        .record(upd(AcctStatus::Interim, "o", "o", 1, 1, None, t + 60))
        .unwrap();
    for p in db_files(&path) {
        assert_eq!(file_mode(&p), 0o600, "{}", p.display());
    }
}

#[test]
fn open_sessions_leave_out_stale_ones_and_other_users() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let t = 1_790_000_000;
    for (user, sid, at) in [
        ("ann", "a1", t - 7200),
        ("ann", "a2", t - 60),
        ("bob", "b1", t),
    ] {
        store
            .record(upd(AcctStatus::Start, user, sid, 0, 0, None, at))
            .unwrap();
    }
    store
        .record(upd(AcctStatus::Start, "ann", "a3", 0, 0, None, t - 30))
        .unwrap();
    store
        .record(upd(AcctStatus::Stop, "ann", "a3", 1, 1, Some(10), t - 20))
        .unwrap();
    // a1 silent for two hours: stale with stale_after = 1h, counted with none.
    assert_eq!(store.open_sessions("ann", t, 3600).unwrap(), 1);
    assert_eq!(store.open_sessions("ann", t, 0).unwrap(), 2);
    assert_eq!(store.open_sessions("nobody", t, 0).unwrap(), 0);
}

/// A store left at any earlier schema version by an older build opens, migrates to
/// this build's, and keeps what it held: a session (whose later Interim counts only
/// what is new) and the month's usage.
#[test]
fn migrations_from_every_earlier_version_keep_the_data() {
    let versions = match testdb::backend() {
        Backend::Sqlite => SCHEMA_VERSION,
        Backend::Postgres => PG_SCHEMA_VERSION,
    };
    for from in 1..versions {
        let dir = tempfile::tempdir().unwrap();
        let path = testdb::at(dir.path().join("old.sqlite"));
        let conn = testdb::raw(&path);
        let migrations = match testdb::backend() {
            Backend::Sqlite => db::sqlite::MIGRATIONS,
            Backend::Postgres => db::postgres::MIGRATIONS,
        };
        if let Connection::Postgres(c) = &conn {
            c.batch("CREATE TABLE rlm_schema (version BIGINT NOT NULL)")
                .unwrap();
        }
        for sql in &migrations[..from as usize] {
            conn.execute_batch(sql).unwrap();
        }
        testdb::set_schema_version(&conn, from);
        if let Connection::Postgres(c) = &conn {
            c.batch(&format!("INSERT INTO rlm_schema (version) VALUES ({from})"))
                .unwrap();
        }
        // Columns that exist since migration 1.
        conn.execute_batch(
            "INSERT INTO sessions (nas_ip, session_key, acct_session_id, username, start_time, \
                 last_update, session_time, input_octets, output_octets) \
             VALUES ('127.0.0.2', 'old', 'old', 'ann', 1780000000, 1780000060, 60, 5, 700); \
             INSERT INTO usage_month (username, month, input_octets, output_octets, session_time) \
             VALUES ('ann', '2026-05', 5, 700, 60)",
        )
        .unwrap();
        drop(conn);
        let store = Store::open(&path, StoreOptions::default())
            .unwrap_or_else(|e| panic!("from version {from}: {e}"));
        assert_eq!(
            testdb::schema_version(&testdb::raw(&path)),
            versions,
            "from {from}"
        );
        assert_eq!(
            store.month_usage("ann", date("2026-05-28")).unwrap(),
            usage(5, 700, 60),
            "from {from}"
        );
        let mut u = upd(
            AcctStatus::Interim,
            "ann",
            "old",
            5,
            1700,
            Some(120),
            1780000120,
        );
        u.session_id = "old".into();
        let o = store.record(u).unwrap();
        assert_eq!(o.delta, usage(0, 1000, 60), "from {from}: {o:?}");
    }
}

/// The database file deleted while open, then a backup put back: the writer fails
/// until the file is back, then writes to it; readers read the restored file too.
#[test]
fn a_deleted_then_restored_file_is_written_and_read_again() {
    if testdb::not_sqlite() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(&dir, UTC);
    let path = store.path().to_path_buf();
    let reader = Reader::open(&path).unwrap();
    let t = ts("2026-03-01T10:00:00Z");
    store
        .record(upd(AcctStatus::Start, "amy", "s1", 0, 0, None, t))
        .unwrap();
    let backup = dir.path().join("backup.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("VACUUM INTO '{}'", backup.display()))
        .unwrap();
    store
        .record(upd(AcctStatus::Start, "amy", "s2", 0, 0, None, t + 1))
        .unwrap();
    let sessions = |r: &Reader| r.list_sessions(&SessionFilter::default()).unwrap().len();
    assert_eq!(sessions(&reader), 2);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let err = store
        .record(upd(AcctStatus::Start, "amy", "s3", 0, 0, None, t + 2))
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("deleted"), "{err}");
    // The deleted file is still read through the open connections meanwhile.
    assert_eq!(sessions(&reader), 2);
    std::fs::copy(&backup, &path).unwrap();
    assert_eq!(
        sessions(&reader),
        1,
        "the reader still reads the deleted file"
    );
    store
        .record(upd(AcctStatus::Start, "amy", "s3", 0, 0, None, t + 2))
        .unwrap();
    assert_eq!(sessions(&reader), 2);
    assert_eq!(sessions(&Reader::open(&path).unwrap()), 2);
}
