//! File modes of the database: it holds NAS secrets and RouterOS API passwords in
//! clear, so neither it nor its -wal and -shm files may be readable by other users.
//!
//! SQLite creates a new database with 0644 minus the umask, and gives the -wal and
//! -shm files it creates the main file's mode (and, when running as root, its owner).
//! So the main file is created here, with [`DB_MODE`], before SQLite opens it. The
//! umask is not touched: it is process-wide and freeRADIUS is multi-threaded.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Owner read-write, group read: operators in the server's group (Debian: freerad,
/// which may read clients.conf too) can use the CLI's read commands. Never others.
pub const DB_MODE: u32 = 0o640;

/// Permission bits of other users.
const OTHERS: u32 = 0o007;

/// Run before SQLite opens `path` for writing: creates a missing database with
/// [`DB_MODE`] and takes other users' access away from an existing one and its
/// -wal and -shm (logged; bits the operator cleared stay cleared). Failures are
/// logged, not returned: SQLite's open reports a path it cannot use.
pub(crate) fn secure(path: &Path) {
    // A URI is SQLite's to parse (and not a file name).
    if path.as_os_str().as_bytes().starts_with(b"file:") {
        return;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(DB_MODE)
        .open(path)
    {
        Ok(file) => give_to_directory_owner(path, &file),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(_) => return,
    }
    // Then -wal and -shm get no more group and other bits than the database, as
    // SQLite does when it creates them: they hold the same data.
    let Some(db_mode) = tighten(path, OTHERS) else {
        return;
    };
    for suffix in ["-wal", "-shm"] {
        tighten(&companion(path, suffix), OTHERS | (0o070 & !db_mode));
    }
}

/// `path` with `suffix` appended (`db.sqlite-wal`).
pub(crate) fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A database root creates (`rlm-rust nas add` before the server's first start) in
/// the server's directory goes to the directory's owner and group: otherwise the
/// server, running as that user, could not open it.
fn give_to_directory_owner(path: &Path, file: &File) {
    let (Ok(meta), Some(dir)) = (file.metadata(), path.parent()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(dir_meta) = fs::metadata(dir) else {
        return;
    };
    if meta.uid() != 0 || (dir_meta.uid(), dir_meta.gid()) == (meta.uid(), meta.gid()) {
        return;
    }
    if let Err(e) = std::os::unix::fs::fchown(file, Some(dir_meta.uid()), Some(dir_meta.gid())) {
        log::warn!(
            "store: cannot give the new database {} to its directory's owner {}:{}: {e}",
            path.display(),
            dir_meta.uid(),
            dir_meta.gid()
        );
    }
}

/// Clears the `bits` (group and other bits only) that are set on `path`; returns
/// its mode, None if it does not exist.
fn tighten(path: &Path, bits: u32) -> Option<u32> {
    let mode = fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    if mode & bits == 0 {
        return Some(mode);
    }
    let strict = mode & !bits;
    match fs::set_permissions(path, fs::Permissions::from_mode(strict)) {
        Ok(()) => {
            log::warn!(
                "store: {} was {} (mode {mode:04o}); it holds NAS secrets: changed to {strict:04o}",
                path.display(),
                open_to(mode, bits)
            );
            Some(strict)
        }
        Err(e) => {
            log::warn!(
                "store: {} is {} (mode {mode:04o}) and holds NAS secrets, but cannot be \
                 changed ({e}): chmod it to {strict:04o}",
                path.display(),
                open_to(mode, bits)
            );
            Some(mode)
        }
    }
}

fn open_to(mode: u32, bits: u32) -> &'static str {
    if mode & bits & OTHERS != 0 {
        "open to every user"
    } else {
        "open to more of its group than the database"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_a_missing_database_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("new.sqlite");
        secure(&db);
        assert_eq!(fs::metadata(&db).unwrap().len(), 0);
        // The umask can only take bits away.
        assert_eq!(mode(&db) & !DB_MODE, 0, "{:o}", mode(&db));
        assert_eq!(mode(&db) & 0o600, 0o600, "{:o}", mode(&db));
    }

    #[test]
    fn takes_other_users_bits_away_and_wal_and_shm_follow_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let (wal, shm) = (companion(&db, "-wal"), companion(&db, "-shm"));
        // (database, -wal and -shm) before, then after.
        let cases = [
            ((0o644, 0o644), (0o640, 0o640)),
            ((0o666, 0o666), (0o660, 0o660)),
            ((0o604, 0o644), (0o600, 0o600)),
            ((0o600, 0o640), (0o600, 0o600)),
            ((0o640, 0o660), (0o640, 0o640)),
            ((0o660, 0o600), (0o660, 0o600)),
            ((0o400, 0o600), (0o400, 0o600)),
        ];
        for ((db_before, comp_before), (db_after, comp_after)) in cases {
            for (p, m) in [(&db, db_before), (&wal, comp_before), (&shm, comp_before)] {
                fs::write(p, b"").unwrap();
                fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
            }
            secure(&db);
            let got = (mode(&db), mode(&wal), mode(&shm));
            assert_eq!(
                got,
                (db_after, comp_after, comp_after),
                "from {db_before:o}, {comp_before:o}"
            );
        }
    }

    #[test]
    fn leaves_a_missing_directory_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        secure(&dir.path().join("no/such/dir/db.sqlite"));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
