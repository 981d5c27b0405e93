//! Per-user Sieve state in SQLite ({home}/.mailstow/sieve-state.sqlite):
//! the ids that `duplicate` (RFC 7352) and vacation's "replied recently"
//! check record, each with an expiry. Must not decide what a test means (the
//! Sieve host does), must not grow without bound (ids are size-bounded, rows
//! capped), and must not be shared between threads at the same time.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use mailstow_maildir::Owner;

use crate::IndexError;

/// Directory under the home, and the database in it.
const STATE_DIR: &str = ".mailstow";
const STATE_FILE: &str = "sieve-state.sqlite";
/// Ids up to this many bytes are stored as they are; longer ones as a
/// prefix and a hash (`key_for`).
pub const MAX_ID_BYTES: usize = 1024;
/// Bytes of a long id kept in front of its hash, so a row stays readable.
const LONG_ID_PREFIX: usize = 128;
/// Rows kept per user; a prune beyond this drops those that expire first.
pub const MAX_ROWS: u64 = 100_000;
/// `record` prunes about once in this many calls.
const PRUNE_ONE_IN: u64 = 100;

/// Schema steps: entry `n` takes `user_version` n to n + 1.
const MIGRATIONS: &[&str] = &[
    // 1: ids (as `key_for` stores them) with expiry in Unix seconds.
    "CREATE TABLE duplicate (
         id      TEXT PRIMARY KEY NOT NULL,
         expires INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE INDEX duplicate_expires ON duplicate (expires);",
];

/// One user's Sieve state: one SQLite connection, used by one delivery
/// thread at a time (the type is Send, not Sync). Several `UserState`s,
/// in this or other processes, may open the same file at once.
#[derive(Debug)]
pub struct UserState {
    /// Owned, never shared: concurrent deliveries to one user each open
    /// their own, and SQLite (WAL, busy timeout, BEGIN IMMEDIATE) orders them.
    conn: Connection,
    path: PathBuf,
}

impl UserState {
    /// Opens or creates {home}/.mailstow/sieve-state.sqlite: the directory
    /// 0700 and the file 0600, both chowned to `owner` when given and
    /// running as root. WAL, busy timeout 5 s, synchronous=NORMAL; the
    /// schema is brought to the current version. The home must exist.
    pub fn open(home: &Path, owner: Option<Owner>) -> Result<UserState, IndexError> {
        let (conn, path) = crate::db::open(&home.join(STATE_DIR), STATE_FILE, MIGRATIONS, owner)?;
        Ok(UserState { conn, path })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is `id` recorded and not yet expired at `now`?
    pub fn seen(&self, id: &str, now: SystemTime) -> Result<bool, IndexError> {
        let found = self
            .conn
            .prepare_cached("SELECT 1 FROM duplicate WHERE id = ?1 AND expires > ?2")
            .and_then(|mut stmt| {
                stmt.query_row(params![key_for(id), unix_secs(now)], |_| Ok(()))
                    .optional()
            })
            .map_err(|source| self.sql(source))?;
        Ok(found.is_some())
    }

    /// Records `id` until `now + expiry`, keeping the later expiry when it
    /// is already recorded. RFC 7352 leaves when to call this to the caller:
    /// without `:last`, only for an id not [`seen`](Self::seen). About one
    /// call in 100 (`PRUNE_ONE_IN`) also prunes; a failed prune is only
    /// logged.
    pub fn record(&self, id: &str, expiry: Duration, now: SystemTime) -> Result<(), IndexError> {
        let expires =
            unix_secs(now).saturating_add(i64::try_from(expiry.as_secs()).unwrap_or(i64::MAX));
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO duplicate (id, expires) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET expires = max(expires, excluded.expires)",
            )?
            .execute(params![key_for(id), expires])?;
            Ok(())
        })?;
        if one_in(PRUNE_ONE_IN) {
            if let Err(e) = self.prune(now) {
                tracing::warn!(error = %e, "could not prune sieve state");
            }
        }
        Ok(())
    }

    /// Deletes the rows expired at `now`, then, beyond [`MAX_ROWS`], those
    /// that expire first. Returns how many rows went.
    pub fn prune(&self, now: SystemTime) -> Result<usize, IndexError> {
        self.prune_to(now, MAX_ROWS)
    }

    fn prune_to(&self, now: SystemTime, max_rows: u64) -> Result<usize, IndexError> {
        self.write(|tx| {
            let expired = tx
                .prepare_cached("DELETE FROM duplicate WHERE expires <= ?1")?
                .execute(params![unix_secs(now)])?;
            let rows: i64 = tx.query_row("SELECT count(*) FROM duplicate", [], |r| r.get(0))?;
            let excess = rows.saturating_sub(i64::try_from(max_rows).unwrap_or(i64::MAX));
            let evicted = if excess > 0 {
                tx.execute(
                    "DELETE FROM duplicate WHERE id IN
                     (SELECT id FROM duplicate ORDER BY expires, id LIMIT ?1)",
                    params![excess],
                )?
            } else {
                0
            };
            Ok(expired + evicted)
        })
    }

    /// Runs `f` in a write transaction taken up front (BEGIN IMMEDIATE).
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, IndexError> {
        crate::db::write(&self.conn, f).map_err(|source| self.sql(source))
    }

    fn sql(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }
}

/// The stored form of an id: as is up to [`MAX_ID_BYTES`]; longer, its
/// first bytes, then its FNV-1a 64 hash and length. Ids are chosen by the
/// sender or the script anyway, so a non-cryptographic hash gives nothing
/// away; the length and prefix make an accidental match rarer still.
fn key_for(id: &str) -> std::borrow::Cow<'_, str> {
    if id.len() <= MAX_ID_BYTES {
        return id.into();
    }
    let mut cut = LONG_ID_PREFIX;
    while !id.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\u{1}fnv1a64:{:016x}:{}",
        &id[..cut],
        fnv1a64(id.as_bytes()),
        id.len()
    )
    .into()
}

/// FNV-1a, 64 bits: stable across runs and builds, unlike std's hashers.
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Unix seconds; times before 1970 count as 0.
fn unix_secs(t: SystemTime) -> i64 {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// True about once in `n` calls (std's per-instance random SipHash keys).
fn one_in(n: u64) -> bool {
    std::hash::RandomState::new()
        .build_hasher()
        .finish()
        .is_multiple_of(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailstow_maildir::StoreError;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::{Arc, Barrier};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_700_000_000;

    fn rows(state: &UserState) -> i64 {
        state
            .conn
            .query_row("SELECT count(*) FROM duplicate", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_recorded_id_is_seen_until_it_expires() {
        let home = tempfile::tempdir().unwrap();
        let state = UserState::open(home.path(), None).unwrap();
        assert!(!state.seen("<a@x>", at(T0)).unwrap());
        state
            .record("<a@x>", Duration::from_secs(60), at(T0))
            .unwrap();
        assert!(state.seen("<a@x>", at(T0)).unwrap());
        assert!(state.seen("<a@x>", at(T0 + 59)).unwrap());
        assert!(!state.seen("<a@x>", at(T0 + 60)).unwrap());
        assert!(!state.seen("<b@x>", at(T0)).unwrap());
        assert!(!state.seen("_v<a@x>", at(T0)).unwrap());
    }

    #[test]
    fn recording_again_keeps_the_later_expiry() {
        let home = tempfile::tempdir().unwrap();
        let state = UserState::open(home.path(), None).unwrap();
        state
            .record("id", Duration::from_secs(100), at(T0))
            .unwrap();
        // A shorter expiry does not cut the first one short.
        state
            .record("id", Duration::from_secs(10), at(T0 + 1))
            .unwrap();
        assert!(state.seen("id", at(T0 + 99)).unwrap());
        // A later one extends it (":last").
        state
            .record("id", Duration::from_secs(100), at(T0 + 50))
            .unwrap();
        assert!(state.seen("id", at(T0 + 149)).unwrap());
        assert!(!state.seen("id", at(T0 + 150)).unwrap());
        // An expired record is replaced.
        state
            .record("id", Duration::from_secs(5), at(T0 + 1000))
            .unwrap();
        assert!(state.seen("id", at(T0 + 1004)).unwrap());
        assert_eq!(rows(&state), 1);
    }

    #[test]
    fn records_persist_across_reopen_and_the_schema_is_versioned() {
        let home = tempfile::tempdir().unwrap();
        {
            let state = UserState::open(home.path(), None).unwrap();
            state
                .record("kept", Duration::from_secs(600), at(T0))
                .unwrap();
        }
        let state = UserState::open(home.path(), None).unwrap();
        assert!(state.seen("kept", at(T0 + 1)).unwrap());
        let version: i64 = state
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String = state
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_newer_schema_is_refused_not_downgraded() {
        let home = tempfile::tempdir().unwrap();
        let path = UserState::open(home.path(), None)
            .unwrap()
            .path()
            .to_owned();
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = UserState::open(home.path(), None).unwrap_err();
        assert!(
            matches!(err, IndexError::NewerSchema { found: 99, .. }),
            "{err}"
        );
    }

    #[test]
    fn prune_deletes_expired_rows_and_caps_the_rest_by_expiry() {
        let home = tempfile::tempdir().unwrap();
        let state = UserState::open(home.path(), None).unwrap();
        for (id, secs) in [("a", 10), ("b", 20), ("c", 300), ("d", 400), ("e", 200)] {
            state.record(id, Duration::from_secs(secs), at(T0)).unwrap();
        }
        assert_eq!(state.prune(at(T0 + 20)).unwrap(), 2);
        assert_eq!(rows(&state), 3);
        // Over the cap, the rows that would expire first go.
        assert_eq!(state.prune_to(at(T0 + 20), 2).unwrap(), 1);
        assert!(!state.seen("e", at(T0 + 21)).unwrap());
        assert!(state.seen("c", at(T0 + 21)).unwrap() && state.seen("d", at(T0 + 21)).unwrap());
        assert_eq!(state.prune(at(T0 + 20)).unwrap(), 0);
    }

    #[test]
    fn long_ids_are_stored_bounded_and_still_told_apart() {
        let home = tempfile::tempdir().unwrap();
        let state = UserState::open(home.path(), None).unwrap();
        let long_a = "é".repeat(2000);
        // Same length, same first bytes: only the hash tells them apart.
        let long_b = format!("{}xy", &long_a[..long_a.len() - 2]);
        assert_eq!(long_a.len(), long_b.len());
        let exact = "x".repeat(MAX_ID_BYTES);
        state
            .record(&long_a, Duration::from_secs(60), at(T0))
            .unwrap();
        state
            .record(&exact, Duration::from_secs(60), at(T0))
            .unwrap();
        assert!(state.seen(&long_a, at(T0)).unwrap());
        assert!(!state.seen(&long_b, at(T0)).unwrap());
        assert!(state.seen(&exact, at(T0)).unwrap());
        let longest: i64 = state
            .conn
            .query_row(
                "SELECT max(length(CAST(id AS BLOB))) FROM duplicate",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(longest, MAX_ID_BYTES as i64);
        assert!(key_for(&long_a).len() < 200);
        assert!(key_for(&long_a).starts_with("éé"));
    }

    #[test]
    fn the_id_hash_is_fnv1a_64() {
        // Published FNV-1a test vectors: the hash must never change, or
        // every stored long id would be forgotten.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn four_connections_opening_and_writing_at_once_do_not_fail_busy() {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 200;
        let home = tempfile::tempdir().unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (home, barrier) = (home.path().to_owned(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let state = UserState::open(&home, None)?;
                    for i in 0..PER_THREAD {
                        let id = format!("t{t}-{i}");
                        state.record(&id, Duration::from_secs(60), at(T0))?;
                        state.seen(&id, at(T0))?;
                    }
                    state.prune(at(T0))?;
                    Ok::<_, IndexError>(())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let state = UserState::open(home.path(), None).unwrap();
        assert_eq!(rows(&state), (THREADS * PER_THREAD) as i64);
    }

    #[test]
    fn the_directory_is_0700_and_the_database_0600() {
        let home = tempfile::tempdir().unwrap();
        let state = UserState::open(home.path(), None).unwrap();
        state.record("x", Duration::from_secs(1), at(T0)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = home.path().join(".mailstow");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(state.path(), dir.join("sieve-state.sqlite"));
        assert_eq!(mode(state.path()), 0o600);
        assert_eq!(mode(&dir.join("sieve-state.sqlite-wal")), 0o600);
    }

    #[test]
    fn a_symlinked_state_directory_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join(".mailstow")).unwrap();
        let err = UserState::open(home.path(), None).unwrap_err();
        assert!(
            matches!(err, IndexError::Store(StoreError::Io { op: "use", .. })),
            "{err}"
        );
        assert!(!elsewhere.path().join("sieve-state.sqlite").exists());
    }

    #[test]
    fn as_root_the_state_belongs_to_the_owner() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root to give files to another uid; the tests run as root"
        );
        let home = tempfile::tempdir().unwrap();
        let owner = Owner {
            uid: 65534,
            gid: 65534,
        };
        let state = UserState::open(home.path(), Some(owner)).unwrap();
        state.record("x", Duration::from_secs(1), at(T0)).unwrap();
        for name in [
            ".mailstow",
            ".mailstow/sieve-state.sqlite",
            ".mailstow/sieve-state.sqlite-wal",
        ] {
            let meta = std::fs::symlink_metadata(home.path().join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{name}");
        }
    }
}
