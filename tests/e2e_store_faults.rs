//! The store's faults end to end, on SQLite, with the real server: the disk fills
//! up, another process holds the lock, the file is deleted and restored while the
//! server runs; a corrupt or read-only database at start. Each write fault fails
//! the Accounting-Request (no response: the NAS retransmits), is logged once per
//! burst, and clears by itself; nothing acknowledged is lost.
//!
//! Needs root (tmpfs mounts); scripts/test.sh runs as root.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A small tmpfs of the test's own, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, opts: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs (the store fault tests need root)");
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` to the last byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.flush();
    p
}

fn session_out(s: &Server, key: &str) -> Option<i64> {
    rusqlite::Connection::open_with_flags(&s.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap()
        .query_row(
            "SELECT output_octets FROM sessions WHERE acct_session_id = ?1",
            [key],
            |r| r.get(0),
        )
        .ok()
}

/// One try, no retransmission: did the server answer?
fn answered(s: &Server, status: &str, key: &str, out: u64) -> bool {
    radclient(
        s.acct_port,
        "acct",
        &acct_attrs(status, "fay", key, "127.0.0.2", 0, out, 60),
        1,
        2,
    )
    .ok
}

const FAULT: &str = "store: the database cannot be written";
const BACK: &str = "store: the database is back after";

#[test]
fn a_full_disk_a_lock_and_a_deleted_file_fail_requests_once_logged_and_clear() {
    if on_postgres() {
        return; // SQLite's faults; PostgreSQL's outage is e2e_postgres's
    }
    let tmp = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(&tmp.path().join("db"), "size=8m");
    let db = tmp.path().join("db/rlm_rust.sqlite");
    let s = Server::start(Options {
        db: Some(db.display().to_string()),
        ..Default::default()
    });
    assert!(answered(&s, "Start", "f-1", 0));

    // The disk fills up: every request fails, one line says so, however many come.
    let filler = fill(&tmp.path().join("db"));
    for i in 1..=4 {
        assert!(
            !answered(&s, "Interim-Update", "f-1", i * 1000),
            "answered on a full disk"
        );
    }
    wait_until("the fault logged", Duration::from_secs(5), || {
        s.log_text().contains(FAULT)
    });
    let log = s.log_text();
    assert_eq!(log.matches(FAULT).count(), 1, "one line per burst:\n{log}");
    assert!(log.contains("full"), "the line says why:\n{log}");
    std::fs::remove_file(&filler).unwrap();
    // The NAS's retransmission is recorded once there is room again.
    assert!(answered(&s, "Interim-Update", "f-1", 4000));
    assert_eq!(session_out(&s, "f-1"), Some(4000));
    assert_eq!(s.log_text().matches(BACK).count(), 1);

    // Another process holds the write lock past the busy timeout: a second burst.
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert!(!answered(&s, "Interim-Update", "f-1", 5000));
    wait_until("the lock fault logged", Duration::from_secs(10), || {
        s.log_text().matches(FAULT).count() == 2
    });
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert!(answered(&s, "Interim-Update", "f-1", 5000));
    let log = s.log_text();
    assert_eq!(log.matches(FAULT).count(), 2, "{log}");
    assert!(log.contains("locked"), "{log}");

    // The file is deleted while the server runs: writes would go to a file nobody
    // opens again, so they fail until it is back; then the writer opens the new file.
    let backup = tmp.path().join("backup.sqlite");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&format!("VACUUM INTO '{}'", backup.display()))
        .unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    assert!(!answered(&s, "Interim-Update", "f-1", 6000));
    let log = s.log_text();
    assert_eq!(log.matches(FAULT).count(), 3, "{log}");
    assert!(log.contains("was deleted or moved"), "{log}");
    std::fs::copy(&backup, &db).unwrap();
    assert!(answered(&s, "Interim-Update", "f-1", 6000));
    assert_eq!(session_out(&s, "f-1"), Some(6000));
    assert_eq!(s.log_text().matches(BACK).count(), 3);
    assert!(!s.log_text().contains("panic"));
}

/// Writes a raddb for `db` and starts `freeradius -X` on it, expecting it to stop.
fn start_fails(dir: &Path, db: &Path) -> String {
    let out = Command::new(repo().join("scripts/raddb.sh"))
        .arg(dir)
        .env("RLM_RUST_LIB", target_dir().join("librlm_rust.so"))
        .env("DB", db)
        .output()
        .unwrap();
    assert!(out.status.success());
    let raddb = dir.join("raddb");
    let mut text = String::new();
    for args in [&["-XC"][..], &["-X"][..]] {
        let mut child = Command::new("freeradius")
            .args(args)
            .arg("-d")
            .arg(&raddb)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("freeradius {args:?} started on an unusable database");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        text += &String::from_utf8_lossy(&out.stdout);
        text += &String::from_utf8_lossy(&out.stderr);
    }
    text
}

#[test]
fn a_corrupt_or_read_only_database_at_start_is_refused_naming_db() {
    if on_postgres() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Not a database (a truncated copy, an overwritten header): -XC and the start
    // both refuse it and name the option; the file is left as it was.
    let corrupt = tmp.path().join("corrupt.sqlite");
    let junk: Vec<u8> = (0..16384u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&corrupt, &junk).unwrap();
    let text = start_fails(&tmp.path().join("a"), &corrupt);
    assert!(
        text.contains("option 'db'") && text.contains("not a usable database"),
        "{text}"
    );
    assert!(
        text.contains("file is not a database"),
        "SQLite's reason: {text}"
    );
    assert_eq!(
        std::fs::read(&corrupt).unwrap(),
        junk,
        "the file was changed"
    );

    // A database on a read-only file system.
    let ro = tmp.path().join("ro");
    let fs = Tmpfs::mount(&ro, "size=2m");
    let db = ro.join("rlm_rust.sqlite");
    drop(rlm_rust::store::Store::open(&db, Default::default()).unwrap());
    assert!(Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro)
        .status()
        .unwrap()
        .success());
    let text = start_fails(&tmp.path().join("b"), &db);
    assert!(
        text.contains("option 'db'") && text.contains("Read-only file system"),
        "{text}"
    );
    drop(fs);
}
