//! Per-user SQLite databases kept beside the Maildir (Sieve state, the
//! mailbox index): created private to the user, WAL, busy timeout, schema
//! migrations by `user_version`, writers with BEGIN IMMEDIATE. Must not know
//! what the tables mean.

use std::fs::{DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use mailstow_maildir::Owner;

use crate::error::{io, sql, IndexError};

/// The page cache a connection opens with (KiB): what one delivery's
/// writes touch (readers set more once it is open).
pub const SMALL_CACHE_KIB: i64 = 32;

/// How long a writer waits for another connection's write transaction.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens or creates `dir`/`file`: the directory 0700 and the file 0600,
/// both chowned to `owner` when given and running as root. WAL, busy
/// timeout, synchronous=NORMAL; the schema is brought to
/// `migrations.len()` (entry n takes `user_version` n to n + 1). The
/// directory's parent must exist.
pub fn open(
    dir: &Path,
    file: &str,
    migrations: &[&str],
    owner: Option<Owner>,
) -> Result<(Connection, PathBuf), IndexError> {
    let owner = owner.filter(|_| nix::unistd::geteuid().is_root());
    make_private_dir(dir, owner)?;
    let path = dir.join(file);
    create_private_file(&path, owner)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let sql = sql(&path);
    no_bulk_page_allocation();
    let mut conn = Connection::open_with_flags(&path, flags).map_err(sql)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    // The last connection to close would otherwise checkpoint the WAL into
    // the database and delete it: several fsyncs, on every delivery in pipe
    // mode. Checkpoints happen as the WAL grows instead (wal_autocheckpoint).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .map_err(sql)?;
    no_lookaside(&conn);
    // Before the first page is read: SQLite allocates a new cache's first
    // pages in one block of up to 20 (86 KiB), bounded by this size.
    conn.pragma_update(None, "cache_size", -SMALL_CACHE_KIB)
        .map_err(sql)?;
    // Switching a new database to WAL needs a lock upgrade that SQLite
    // refuses at once (no busy wait) while another connection does the
    // same; the first opens of a database race, so retry for a while.
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match set_up(&mut conn, &path, migrations) {
            Err(IndexError::Sqlite { source, .. })
                if is_busy(&source) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => break result?,
        }
    }
    Ok((conn, path))
}

/// Runs `f` in a write transaction taken up front (BEGIN IMMEDIATE), so a
/// busy database is waited for at BEGIN rather than failing mid-way.
pub fn write<T>(
    conn: &Connection,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

/// Before SQLite's first use in the process: no page cache takes 20 pages
/// (86 KiB) in one block at its first read, which is most of what an idle
/// open connection holds; pages are allocated as they are used. Does
/// nothing when SQLite is already initialised (the call is refused).
fn no_bulk_page_allocation() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sqlite3_config before sqlite3_initialize, once, with the
    // documented (pointer, size, count) arguments; a NULL buffer with a
    // count of 0 asks for no initial allocation.
    ONCE.call_once(|| unsafe {
        rusqlite::ffi::sqlite3_config(
            rusqlite::ffi::SQLITE_CONFIG_PAGECACHE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as std::ffi::c_int,
            0 as std::ffi::c_int,
        );
    });
}

/// Turns off the connection's lookaside allocator: SQLite gives every
/// connection 120 KiB of it up front, most of a pooled connection's memory
/// (a server keeps a hundred open), for a small saving in malloc calls.
fn no_lookaside(conn: &Connection) {
    // SAFETY: the handle is this open connection's, used on this thread
    // before any statement exists (SQLite refuses the call otherwise, which
    // leaves the default in place).
    unsafe {
        rusqlite::ffi::sqlite3_db_config(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBCONFIG_LOOKASIDE,
            std::ptr::null_mut::<std::ffi::c_void>(),
            0 as std::ffi::c_int,
            0 as std::ffi::c_int,
        );
    }
}

/// WAL, synchronous=NORMAL, the current schema.
fn set_up(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), IndexError> {
    let sql = sql(path);
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "database is not in WAL mode");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql)?;
    truncate_large_wal(conn, path);
    migrate(conn, path, migrations)
}

/// A WAL this long is checkpointed and truncated when the database is
/// opened: 256 pages.
const WAL_TRUNCATE_AT: u64 = 1 << 20;

/// Checkpoints and empties a WAL that has grown past [`WAL_TRUNCATE_AT`].
/// A process that opens the database, commits and exits (the pipe mode)
/// never restarts the WAL: the next open rebuilds the WAL index from the
/// whole file (every frame read), and knows of no earlier checkpoint, so
/// each automatic one copies every frame again and the file only grows.
/// Busy (another connection is in the database) leaves it for a later open.
fn truncate_large_wal(conn: &Connection, path: &Path) {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if std::fs::metadata(&wal).map_or(true, |m| m.len() <= WAL_TRUNCATE_AT) {
        return;
    }
    let r = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    match r {
        Ok(0) => tracing::debug!(path = %wal.display(), "WAL checkpointed and truncated"),
        Ok(_) => tracing::debug!(path = %wal.display(), "WAL busy; not truncated"),
        Err(e) => tracing::warn!(path = %wal.display(), error = %e, "could not checkpoint the WAL"),
    }
}

pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Brings the schema to `migrations.len()`, one step at a time, in one
/// write transaction (two first deliveries may race to create it).
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<(), IndexError> {
    let known = migrations.len() as i64;
    let sql = sql(path);
    let version = |conn: &Connection| -> rusqlite::Result<i64> {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
    };
    let found = version(conn).map_err(sql)?;
    if found == known {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql)?;
    let found = version(&tx).map_err(sql)?;
    if found > known {
        return Err(IndexError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for step in migrations.iter().skip(found.max(0) as usize) {
        tx.execute_batch(step).map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", known).map_err(sql)?;
    tx.commit().map_err(sql)
}

/// Creates `dir` 0700 (owned by `owner`), or accepts an existing real
/// directory; a symlink or other file there is refused.
fn make_private_dir(dir: &Path, owner: Option<Owner>) -> Result<(), IndexError> {
    match DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            if let Some(o) = owner {
                std::os::unix::fs::lchown(dir, Some(o.uid), Some(o.gid))
                    .map_err(io("chown", dir))?;
            }
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("mkdir", dir)(e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io("stat", dir))?;
    if !meta.is_dir() {
        let e = std::io::Error::new(ErrorKind::InvalidInput, "not a directory (or a symlink)");
        return Err(io("use", dir)(e));
    }
    Ok(())
}

/// Creates the database file 0600 owned by `owner` if it is missing, so
/// that SQLite (which gives its -wal and -shm files the database's mode
/// and owner) never creates it with the umask's mode.
pub(crate) fn create_private_file(path: &Path, owner: Option<Owner>) -> Result<(), IndexError> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io("chmod", path))?;
            if let Some(o) = owner {
                std::os::unix::fs::fchown(&file, Some(o.uid), Some(o.gid))
                    .map_err(io("chown", path))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("create", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[&str] = &["CREATE TABLE t (x BLOB NOT NULL);"];

    fn wal_len(path: &Path) -> u64 {
        std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len())
    }

    #[test]
    fn a_wal_grown_by_processes_that_each_commit_and_exit_is_truncated_at_the_next_open() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".mailstow");
        let (conn, path) = open(&dir, "t.sqlite", SCHEMA, None).unwrap();
        // What the pipe mode's processes leave: frames never checkpointed.
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        for _ in 0..300 {
            conn.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
        drop(conn);
        assert!(wal_len(&path) > WAL_TRUNCATE_AT, "{}", wal_len(&path));
        let (conn, _) = open(&dir, "t.sqlite", SCHEMA, None).unwrap();
        assert_eq!(wal_len(&path), 0);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 300);
    }
}
