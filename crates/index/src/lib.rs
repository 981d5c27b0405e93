//! A per-mailbox SQLite index beside a Maildir++
//! ({home}/.mailstow/index.sqlite; docs/index.md describes the database):
//! folders with UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ, messages with UID,
//! flags, sizes, dates and header fields, expunged UIDs with their MODSEQ,
//! and a full-text table. A
//! delivery agent records each message it made durable
//! ([`Index::add_delivered`]); [`Index::reconcile`] brings the index in line
//! with whatever other programs did to the Maildir (docs/maildir.md, 'What
//! the index reconciles'). UIDs are the index's own, Dovecot's from its
//! `dovecot-uidlist` or Courier-IMAP's from its `courierimapuiddb`
//! ([`UidMode`]). Must not be the truth (the Maildir is),
//! and must never hand out a UID or MODSEQ a reader may have seen, even after
//! a power loss undid its last commits (durable reservations, and a jump
//! past them after a reboot).
//!
//! # Example
//!
//! ```
//! use mailstow_index::{Index, IndexConfig, Search, UidMode};
//! use mailstow_maildir::{save_test_message, FolderEncoding, Maildir};
//!
//! let home = tempfile::tempdir().unwrap();
//! let md = Maildir::new(home.path().join("Maildir"), None, FolderEncoding::Utf7, "mx.example.org");
//! // Two messages some other program wrote; the second one in a new folder.
//! save_test_message(&md, "INBOX", "hello", &[]);
//! save_test_message(&md, "Lists.rust", "release notes", &["\\Seen", "$Important"]);
//!
//! let cfg = IndexConfig { enabled: true, uids: UidMode::Own, special_use: Default::default() };
//! let index = Index::open(md.clone(), home.path(), &cfg).unwrap();
//! assert_eq!(index.reconcile().unwrap().added, 2);
//!
//! // A message we deliver ourselves is recorded at once, with the next UID.
//! let (saved, bytes) = save_test_message(&md, "INBOX", "invoice 42", &[]);
//! let uid = index.add_delivered(&saved, &bytes, std::time::SystemTime::now()).unwrap();
//! assert_eq!(uid, 2);
//!
//! let inbox = index.list(Some("INBOX")).unwrap();
//! let subjects: Vec<_> = inbox.iter().map(|m| (m.uid, m.subject.as_deref())).collect();
//! assert_eq!(subjects, [(1, Some("hello")), (2, Some("invoice 42"))]);
//!
//! // Full-text search over From, To and Subject.
//! let found = index
//!     .search(&Search { subject: Some("release".into()), ..Search::default() })
//!     .unwrap();
//! assert_eq!(found.len(), 1);
//! assert_eq!(found[0].folder, "Lists.rust");
//! assert_eq!(found[0].flags, ["\\Seen", "$Important"]);
//! ```
//!
//! # Modules
//!
//! - this file: [`Index`] (open, record deliveries, the durable
//!   reservations), [`IndexConfig`], [`with_cached`] (a process-wide pool);
//! - `reconcile`: [`Index::reconcile`] and [`Index::resync_all`];
//! - `query`: [`Index::list`], [`Index::search`], [`Index::stats`] and
//!   [`Index::verify`];
//! - [`scan`]: reading a folder and a message file as they are on disk;
//! - [`uidlist`]: Dovecot's `dovecot-uidlist` and its UIDVALIDITY counter;
//! - [`courier_uids`]: Courier-IMAP's `courierimapuiddb`;
//! - [`state`]: per-user Sieve state (`duplicate`, vacation) in SQLite;
//! - `db`: opening a per-user database (WAL, migrations);
//! - `error`: [`IndexError`].

pub mod courier_uids;
mod db;
mod error;
mod pending;
mod query;
mod reconcile;
pub mod scan;
pub mod state;
#[cfg(test)]
mod tests;
pub mod uidlist;

use std::collections::{btree_map, BTreeMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

pub use error::IndexError;
use mailstow_maildir::{self as store, Maildir, Saved};
pub use pending::PENDING_FILE;

pub use query::{FolderStats, MessageRow, Search};
pub use reconcile::Changes;

/// The index lives beside the Sieve state, in the home, outside the Maildir.
pub const INDEX_DIR: &str = ".mailstow";
pub const INDEX_FILE: &str = "index.sqlite";

/// UIDs and MODSEQs reserved per durable commit (see [`Index::write`]).
const UID_RESERVE: i64 = 1024;
const MODSEQ_RESERVE: i64 = 4096;

/// Expunged UIDs kept per folder; older ones raise `vanished_floor`.
const MAX_TOMBSTONES: i64 = 10_000;

/// Who numbers messages (docs/maildir.md, 'dovecot-uidlist').
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UidMode {
    /// The index keeps its own UID space (works beside any IMAP server).
    Own,
    /// The index takes part in Dovecot's `dovecot-uidlist` protocol, so its
    /// UIDs are the ones Dovecot's IMAP and POP3 show.
    Dovecot,
    /// The index takes part in Courier-IMAP's `courierimapuiddb` protocol,
    /// so its UIDs are the ones Courier-IMAP shows; messages are delivered
    /// into cur/ (Courier numbers new/ afresh).
    Courier,
}

impl UidMode {
    /// Is an IMAP server's file the UID authority?
    pub fn shared(self) -> bool {
        self != UidMode::Own
    }

    /// The name of the folder's UID file in this mode.
    pub fn file_name(self) -> &'static str {
        match self {
            UidMode::Own => "(none)",
            UidMode::Dovecot => "dovecot-uidlist",
            UidMode::Courier => courier_uids::UIDDB,
        }
    }

    /// The folder's UID file in this mode (None in own mode, or when the
    /// file is missing).
    pub fn read(self, folder_dir: &Path) -> Result<Option<uidlist::Uidlist>, store::StoreError> {
        match self {
            UidMode::Own => Ok(None),
            UidMode::Dovecot => uidlist::read(folder_dir),
            UidMode::Courier => courier_uids::read(folder_dir),
        }
    }
}

/// RFC 6154 special-use attributes a folder may be given.
pub const SPECIAL_USES: &[&str] = &[
    "\\All",
    "\\Archive",
    "\\Drafts",
    "\\Flagged",
    "\\Junk",
    "\\Sent",
    "\\Trash",
];

/// What the index does, as the host's configuration says.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Keep the per-mailbox index ({home}/.mailstow/index.sqlite).
    pub enabled: bool,
    pub uids: UidMode,
    /// Folder (IMAP name) to special-use attribute, e.g. "Sent" = "\\Sent".
    pub special_use: std::collections::BTreeMap<String, String>,
}

/// Schema steps: entry `n` takes `user_version` n to n + 1. docs/index.md
/// describes the result; change both together.
const MIGRATIONS: &[&str] = &[
    // 1: folders, messages, expunged, full-text search.
    "CREATE TABLE meta (
         key   TEXT PRIMARY KEY NOT NULL,
         value INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE folders (
         id             INTEGER PRIMARY KEY,
         storage_name   TEXT NOT NULL UNIQUE,
         display_name   TEXT NOT NULL,
         uidvalidity    INTEGER NOT NULL CHECK (uidvalidity > 0),
         uidnext        INTEGER NOT NULL CHECK (uidnext > 0),
         highestmodseq  INTEGER NOT NULL CHECK (highestmodseq > 0),
         vanished_floor INTEGER NOT NULL DEFAULT 0,
         special_use    TEXT,
         subscribed     INTEGER NOT NULL DEFAULT 0,
         new_mtime_ns   INTEGER,
         cur_mtime_ns   INTEGER
     );
     CREATE TABLE messages (
         id             INTEGER PRIMARY KEY,
         folder_id      INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
         uid            INTEGER NOT NULL CHECK (uid > 0),
         base           TEXT NOT NULL,
         in_cur         INTEGER NOT NULL,
         info           TEXT NOT NULL,
         flags          INTEGER NOT NULL,
         keywords       TEXT NOT NULL,
         size           INTEGER NOT NULL,
         vsize          INTEGER NOT NULL,
         internal_date  INTEGER NOT NULL,
         saved_date     INTEGER NOT NULL,
         modseq         INTEGER NOT NULL,
         message_id     TEXT,
         in_reply_to    TEXT,
         references_ids TEXT,
         from_addr      TEXT,
         to_addrs       TEXT,
         subject        TEXT,
         date_hdr       INTEGER,
         UNIQUE (folder_id, uid),
         UNIQUE (folder_id, base)
     );
     CREATE INDEX messages_modseq ON messages (folder_id, modseq);
     CREATE INDEX messages_message_id ON messages (message_id);
     CREATE INDEX messages_date ON messages (internal_date);
     CREATE TABLE expunged (
         folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
         uid       INTEGER NOT NULL,
         modseq    INTEGER NOT NULL,
         PRIMARY KEY (folder_id, uid)
     ) WITHOUT ROWID;
     CREATE VIRTUAL TABLE messages_fts USING fts5 (
         from_addr, to_addrs, subject,
         content = 'messages', content_rowid = 'id'
     );
     CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
         INSERT INTO messages_fts (rowid, from_addr, to_addrs, subject)
         VALUES (new.id, new.from_addr, new.to_addrs, new.subject);
     END;
     CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
         INSERT INTO messages_fts (messages_fts, rowid, from_addr, to_addrs, subject)
         VALUES ('delete', old.id, old.from_addr, old.to_addrs, old.subject);
     END;
     CREATE TRIGGER messages_fts_update AFTER UPDATE OF from_addr, to_addrs, subject ON messages BEGIN
         INSERT INTO messages_fts (messages_fts, rowid, from_addr, to_addrs, subject)
         VALUES ('delete', old.id, old.from_addr, old.to_addrs, old.subject);
         INSERT INTO messages_fts (rowid, from_addr, to_addrs, subject)
         VALUES (new.id, new.from_addr, new.to_addrs, new.subject);
     END;",
    // 2: durable high-water marks of UIDNEXT and HIGHESTMODSEQ.
    "ALTER TABLE folders ADD COLUMN uid_reserved INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE folders ADD COLUMN modseq_reserved INTEGER NOT NULL DEFAULT 0;",
];

/// Open indexes the process keeps for the next delivery to the same
/// mailbox, shared by all delivery threads (most recently used first):
/// opening one parses the schema, and closing the last connection to a WAL
/// database makes the next open rebuild its shared-memory index from the
/// whole WAL. A mailbox that several threads deliver to at once may have
/// several here.
const POOLED: usize = 128;

/// Page cache of an index opened for reading (SQLite's default); a
/// pooled one keeps [`db::SMALL_CACHE_KIB`]: a delivery touches a handful
/// of pages.
const READER_CACHE_KIB: i64 = 2000;

static POOL: Mutex<Vec<Index>> = Mutex::new(Vec::new());

/// Runs `f` with an open index of the mailbox whose home is `home`, taken
/// from the process's pool (opened on first use) and given back after; one
/// whose file was replaced or removed meanwhile (a rebuild moved it aside)
/// is opened afresh. The pool keeps the `POOLED` (128) most recently used.
pub fn with_cached<T>(
    maildir: &Maildir,
    home: &Path,
    cfg: &IndexConfig,
    f: impl FnOnce(&Index) -> T,
) -> Result<T, IndexError> {
    let path = home.join(INDEX_DIR).join(INDEX_FILE);
    let found = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.iter()
            .position(|ix| ix.path == path)
            .map(|i| pool.remove(i))
    };
    let ix = match found.filter(Index::is_current) {
        Some(ix) => ix,
        None => {
            let ix = Index::open(maildir.clone(), home, cfg)?;
            let _ = ix
                .conn
                .pragma_update(None, "cache_size", -db::SMALL_CACHE_KIB);
            ix
        }
    };
    let out = f(&ix);
    let evicted = {
        let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
        pool.insert(0, ix);
        let keep = pool.len().min(POOLED);
        pool.split_off(keep)
    };
    // Closed outside the lock.
    drop(evicted);
    Ok(out)
}

/// Batches this small for a mailbox whose index is not open wait in its
/// pending file instead of opening it (see [`record`]).
const DEFER_BELOW: usize = 4;

/// A pending file this long is recorded by the delivery that made it so.
const APPLY_AT: u64 = 32 << 10;

/// What [`record`] did with a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Rows written, with their UIDs (0: not numbered, see
    /// [`Index::add_delivered_batch`]).
    Indexed(Vec<u32>),
    /// Appended to the pending file, which the next open of the index
    /// records (every reader opens it first).
    Deferred,
}

/// Records a batch of one mailbox's delivered messages: into its index
/// when the process has it open (see [`with_cached`]), when the batch is
/// large, or when there is no index yet; otherwise appended to the index's
/// pending file, which the next open records. A cold index is opened once
/// per [`APPLY_AT`] bytes of pending rows rather than once per delivery:
/// its schema parse and WAL recovery cost more than the rows.
pub fn record(
    maildir: &Maildir,
    home: &Path,
    cfg: &IndexConfig,
    batch: &[Delivered<'_>],
) -> Result<Recorded, IndexError> {
    let dir = home.join(INDEX_DIR);
    let path = dir.join(INDEX_FILE);
    if batch.len() < DEFER_BELOW && !is_pooled(&path) && path.exists() {
        if pending::append(&dir, maildir.chown(), batch)? < APPLY_AT {
            return Ok(Recorded::Deferred);
        }
        // Opening it records the pending rows, this batch's among them.
        return with_cached(maildir, home, cfg, |_| Recorded::Deferred);
    }
    with_cached(maildir, home, cfg, |ix| {
        // Rows another thread or process left while this index was in use
        // go first, so that they are not kept waiting behind newer ones.
        if pending::waiting(&dir) {
            ix.apply_pending()?;
        }
        ix.add_delivered_batch(batch)
    })?
    .map(Recorded::Indexed)
}

/// Is an index of the database at `path` in the pool?
fn is_pooled(path: &Path) -> bool {
    let pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    pool.iter().any(|ix| ix.path == path)
}

/// A message this process has made durable, for [`Index::add_delivered_batch`].
pub struct Delivered<'a> {
    pub saved: &'a Saved,
    /// At least its header block.
    pub head: &'a [u8],
    /// The receive time (its INTERNALDATE).
    pub received: SystemTime,
}

/// A delivered message's row, before it is written.
struct NewRow {
    entry: scan::Entry,
    meta: scan::Meta,
    /// Keyword names, space-separated.
    keywords: String,
    /// Dovecot mode: UIDVALIDITY and UID from the folder's uidlist.
    assigned: Option<(u32, u32)>,
}

/// Is the delivered file still at its path? An IMAP client may have
/// expunged it, or moved it from new/ to cur/, since the reply.
fn still_there(d: &Delivered<'_>) -> bool {
    std::fs::symlink_metadata(&d.saved.path).is_ok()
}

/// One user's index: one connection, used by one thread at a time.
/// Several `Index`es, in this or other processes, may be open at once.
#[derive(Debug)]
pub struct Index {
    conn: Connection,
    path: PathBuf,
    /// (device, inode) of the database file when opened.
    file_id: (u64, u64),
    /// This connection has made sure the reservations of an earlier boot
    /// were jumped over (once per connection: the boot cannot change).
    boot_checked: std::cell::Cell<bool>,
    maildir: Maildir,
    mode: UidMode,
    /// Storage name to special-use attribute.
    special_use: BTreeMap<String, String>,
}

/// A folder's row.
#[derive(Clone, Debug)]
struct FolderRow {
    id: i64,
    uidvalidity: i64,
    uidnext: i64,
    highestmodseq: i64,
}

impl Index {
    /// Opens (creating if needed) the index of the mailbox whose home is
    /// `home`. No reconcile: call [`Index::reconcile`] for a fresh view.
    pub fn open(maildir: Maildir, home: &Path, cfg: &IndexConfig) -> Result<Index, IndexError> {
        let (conn, path) = db::open(
            &home.join(INDEX_DIR),
            INDEX_FILE,
            MIGRATIONS,
            maildir.chown(),
        )?;
        let sql = error::sql(&path);
        // Commits need not survive a power loss (the Maildir is the truth),
        // but handed-out UIDs and MODSEQs must never come back: see `write`.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)
            .map_err(sql)?;
        let file_id = file_id(&path).map_err(error::io("stat", &path))?;
        let special_use = cfg
            .special_use
            .iter()
            .filter_map(|(name, attr)| {
                store::storage_name(name, maildir.encoding())
                    .ok()
                    .map(|s| (s, attr.clone()))
            })
            .collect();
        let ix = Index {
            conn,
            path,
            file_id,
            boot_checked: std::cell::Cell::new(false),
            maildir,
            mode: cfg.uids,
            special_use,
        };
        if let Err(e) = ix.apply_pending() {
            tracing::warn!(path = %ix.path.display(), error = %e, "could not record the pending rows; the next reconcile finds their messages");
        }
        Ok(ix)
    }

    /// Records the rows other deliveries left in the pending file (see
    /// [`record`]), in the order they were delivered, and empties it.
    /// Returns how many there were.
    pub fn apply_pending(&self) -> Result<usize, IndexError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let Some((file, records)) = pending::take(dir)? else {
            return Ok(0);
        };
        if !records.is_empty() {
            let batch: Vec<Delivered<'_>> =
                records.iter().map(pending::Record::delivered).collect();
            self.add_delivered_batch(&batch)?;
        }
        pending::clear(&file, dir)?;
        Ok(records.len())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Is the file at our path still the one we opened?
    fn is_current(&self) -> bool {
        file_id(&self.path).is_ok_and(|id| id == self.file_id)
    }

    pub fn maildir(&self) -> &Maildir {
        &self.maildir
    }

    fn sql(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` in a write transaction taken up front (BEGIN IMMEDIATE);
    /// an error rolls it back.
    ///
    /// Commits are synchronous=NORMAL: a power loss may undo the last ones,
    /// and with them UIDs and MODSEQs a reader may have seen. So every
    /// folder keeps durable reservations: a UID is only handed out below
    /// `uid_reserved` (a MODSEQ below `modseq_reserved`), and a commit that
    /// goes past one raises it by a block and is made durable (the WAL is
    /// fsynced) before it returns. The first write after a reboot (a new
    /// kernel boot id) moves UIDNEXT and HIGHESTMODSEQ up to the
    /// reservations, past anything that may have been lost, durably too.
    /// A clean reboot so skips up to one block per folder: gaps are allowed.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, IndexError>,
    ) -> Result<T, IndexError> {
        let sql = |e| self.sql(e);
        let tx =
            Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate).map_err(sql)?;
        let mut durable = false;
        if !self.boot_checked.get() {
            durable |= jump_after_reboot(&tx).map_err(sql)?;
        }
        let value = f(&tx)?;
        durable |= reserve(&tx).map_err(sql)?;
        tx.commit().map_err(sql)?;
        self.boot_checked.set(true);
        if durable {
            self.sync_wal()?;
        }
        Ok(value)
    }

    /// Makes every commit so far durable: fsync of the WAL (what
    /// synchronous=FULL does at each commit). Without a WAL file (just
    /// checkpointed and removed), the commits are in the database file,
    /// which the checkpoint synced.
    fn sync_wal(&self) -> Result<(), IndexError> {
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        match std::fs::File::open(&wal) {
            Ok(f) => f.sync_data().map_err(error::io("fsync", &wal)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(error::io("open", &wal)(e)),
        }
    }

    /// Records a message this process has just made durable, giving it the
    /// next UID of its folder (own mode) or the one Dovecot's uidlist gives
    /// it (dovecot mode). `head` holds at least its header block. Returns
    /// the UID.
    pub fn add_delivered(
        &self,
        saved: &Saved,
        head: &[u8],
        received: SystemTime,
    ) -> Result<u32, IndexError> {
        let uids = self.add_delivered_batch(&[Delivered {
            saved,
            head,
            received,
        }])?;
        Ok(uids.first().copied().unwrap_or(0))
    }

    /// Records several durable messages in one transaction (one WAL commit
    /// and one full-text segment for all; in dovecot mode one uidlist
    /// append and fdatasync per folder), in the order given. Returns their
    /// UIDs. All or nothing: on an error none is recorded.
    ///
    /// Rows are written after the reply, so an IMAP client may already have
    /// expunged a message, or moved it from new/ to cur/: a file no longer
    /// at its path gets no row (UID 0), and the next reconcile, which its
    /// directory's new mtime triggers, records whatever became of it. The
    /// check is made under the write lock, so no reconcile can pass between
    /// it and the row.
    pub fn add_delivered_batch(&self, batch: &[Delivered<'_>]) -> Result<Vec<u32>, IndexError> {
        let mut rows = self.delivered_rows(batch)?;
        if self.mode.shared() {
            self.dovecot_uids(batch, &mut rows)?;
        }
        let now = unix(SystemTime::now());
        self.write(|tx| {
            let mut uids = Vec::with_capacity(batch.len());
            for (d, row) in batch.iter().zip(&rows) {
                let skip = !still_there(d) || (self.mode.shared() && row.assigned.is_none());
                let uid = if skip {
                    0
                } else {
                    self.record_delivered(tx, d.saved, row, now)?
                };
                uids.push(uid);
            }
            Ok(uids)
        })
    }

    /// The rows of a batch, read from what the delivery knows (no file is
    /// read but the folders' `dovecot-keywords`, once per folder, and only
    /// when a message has keywords).
    fn delivered_rows(&self, batch: &[Delivered<'_>]) -> Result<Vec<NewRow>, IndexError> {
        let mut rows = Vec::with_capacity(batch.len());
        let mut keywords: BTreeMap<&str, Vec<Option<String>>> = BTreeMap::new();
        for d in batch {
            let saved = d.saved;
            let name = saved
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(&saved.base);
            let in_cur = saved.path.parent().and_then(|p| p.file_name()) == Some("cur".as_ref());
            let entry = scan::Entry {
                in_cur,
                info: scan::split_name(name).1.to_owned(),
            };
            let meta = scan::Meta {
                size: saved.size as i64,
                vsize: saved.vsize as i64,
                internal_date: unix(d.received),
                headers: scan::headers(d.head),
            };
            let (_, letters) = scan::parse_info(&entry.info);
            let words = if letters.is_empty() {
                String::new()
            } else {
                let names = match keywords.entry(saved.storage_name.as_str()) {
                    btree_map::Entry::Occupied(o) => o.into_mut(),
                    btree_map::Entry::Vacant(v) => {
                        let dir = self.maildir.folder_dir(&saved.storage_name);
                        v.insert(store::keyword_names(&dir)?)
                    }
                };
                keyword_text(names, &letters)
            };
            rows.push(NewRow {
                entry,
                meta,
                keywords: words,
                assigned: None,
            });
        }
        Ok(rows)
    }

    /// Dovecot mode: the UIDVALIDITY and UID of each message of the batch
    /// still at its path, from its folder's uidlist (one append for all
    /// the messages of a folder).
    fn dovecot_uids(&self, batch: &[Delivered<'_>], rows: &mut [NewRow]) -> Result<(), IndexError> {
        let mut folders: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let numberable = |d: &Delivered<'_>| {
            // Courier numbers a file of new/ afresh: see courier_uids.
            self.mode != UidMode::Courier
                || d.saved.path.parent().and_then(|p| p.file_name()) == Some("cur".as_ref())
        };
        for (i, d) in batch
            .iter()
            .enumerate()
            .filter(|(_, d)| still_there(d) && numberable(d))
        {
            folders.entry(&d.saved.storage_name).or_default().push(i);
        }
        for (storage, items) in folders {
            let known = self.folder_row(storage)?;
            let bases: Vec<&str> = items
                .iter()
                .map(|&i| batch[i].saved.base.as_str())
                .collect();
            let a =
                self.uidlist_assign(&self.maildir.folder_dir(storage), &bases, known.as_ref())?;
            for (&i, &uid) in items.iter().zip(&a.uids) {
                rows[i].assigned = Some((a.uidvalidity, uid));
            }
        }
        Ok(())
    }

    /// Inserts the row of a delivered message at the next MODSEQ, with the
    /// uidlist's UID (dovecot mode) or the folder's UIDNEXT. Returns the
    /// UID, or the one a reconcile gave the file first.
    fn record_delivered(
        &self,
        tx: &Transaction<'_>,
        saved: &Saved,
        row: &NewRow,
        now: i64,
    ) -> Result<u32, IndexError> {
        let folder = match row.assigned {
            Some((validity, _)) => self.folder_with_validity(tx, &saved.storage_name, validity)?,
            None => self.folder_in(tx, &saved.storage_name)?,
        };
        if let Some(uid) = uid_of_base(tx, folder.id, &saved.base).map_err(|e| self.sql(e))? {
            // A reconcile found the file first.
            return Ok(u32::try_from(uid).unwrap_or(0));
        }
        let uid = match row.assigned {
            Some((_, uid)) => i64::from(uid),
            None => folder.uidnext,
        };
        let modseq = folder.highestmodseq + 1;
        insert_message(
            tx,
            folder.id,
            uid,
            modseq,
            &saved.base,
            &row.entry,
            &row.keywords,
            &row.meta,
            now,
        )
        .map_err(|e| self.sql(e))?;
        exec(
            tx,
            "UPDATE folders SET uidnext = max(uidnext, ?2), highestmodseq = ?3 WHERE id = ?1",
            params![folder.id, uid + 1, modseq],
        )
        .map_err(|e| self.sql(e))?;
        Ok(u32::try_from(uid).unwrap_or(0))
    }

    /// Dovecot mode: the UIDs of `bases` from the folder's uidlist,
    /// appended under its lock when missing, never below our UIDNEXT for
    /// the same UIDVALIDITY.
    fn uidlist_assign(
        &self,
        folder_dir: &Path,
        bases: &[&str],
        known: Option<&FolderRow>,
    ) -> Result<uidlist::Assigned, IndexError> {
        let current = self.mode.read(folder_dir)?;
        let min_next = match (known, &current) {
            (Some(f), Some(u)) if i64::from(u.uidvalidity) == f.uidvalidity => {
                u32::try_from(f.uidnext).unwrap_or(u32::MAX)
            }
            _ => 1,
        };
        if self.mode == UidMode::Courier {
            return Ok(courier_uids::assign(
                folder_dir,
                bases,
                min_next,
                self.maildir.chown(),
                self.maildir.lock_host(),
                store::dotlock::WAIT,
            )?);
        }
        Ok(uidlist::assign(
            folder_dir,
            self.maildir.root(),
            bases,
            min_next,
            self.maildir.chown(),
            self.maildir.lock_host(),
            store::dotlock::WAIT,
        )?)
    }

    fn folder_row(&self, storage: &str) -> Result<Option<FolderRow>, IndexError> {
        folder_by_name(&self.conn, storage).map_err(|e| self.sql(e))
    }

    /// The folder's row, created (with a fresh UIDVALIDITY) when missing.
    fn folder_in(&self, tx: &Transaction<'_>, storage: &str) -> Result<FolderRow, IndexError> {
        if let Some(f) = folder_by_name(tx, storage).map_err(|e| self.sql(e))? {
            return Ok(f);
        }
        let v = next_uidvalidity(tx).map_err(|e| self.sql(e))?;
        self.create_folder(tx, storage, v)
    }

    /// The folder's row with this UIDVALIDITY: created when missing, and
    /// emptied (to be filled by the next reconcile) when its UIDVALIDITY
    /// was another: the old UIDs are void then.
    fn folder_with_validity(
        &self,
        tx: &Transaction<'_>,
        storage: &str,
        uidvalidity: u32,
    ) -> Result<FolderRow, IndexError> {
        let v = i64::from(uidvalidity);
        match folder_by_name(tx, storage).map_err(|e| self.sql(e))? {
            Some(f) if f.uidvalidity == v => Ok(f),
            Some(f) => {
                tracing::warn!(
                    folder = storage,
                    old = f.uidvalidity,
                    new = v,
                    "UIDVALIDITY changed; the folder is reindexed"
                );
                tx.execute("DELETE FROM messages WHERE folder_id = ?1", params![f.id])
                    .and_then(|_| {
                        tx.execute("DELETE FROM expunged WHERE folder_id = ?1", params![f.id])
                    })
                    .and_then(|_| {
                        tx.execute(
                            "UPDATE folders SET uidvalidity = ?2, uidnext = 1, vanished_floor = 0,
                         uid_reserved = 0, new_mtime_ns = NULL, cur_mtime_ns = NULL WHERE id = ?1",
                            params![f.id, v],
                        )
                    })
                    .map_err(|e| self.sql(e))?;
                Ok(FolderRow {
                    uidvalidity: v,
                    uidnext: 1,
                    ..f
                })
            }
            None => self.create_folder(tx, storage, v),
        }
    }

    fn create_folder(
        &self,
        tx: &Transaction<'_>,
        storage: &str,
        uidvalidity: i64,
    ) -> Result<FolderRow, IndexError> {
        let display = if storage.is_empty() {
            "INBOX".to_owned()
        } else {
            store::display_name(storage, self.maildir.encoding())
                .unwrap_or_else(|_| storage.to_owned())
        };
        tx.execute(
            "INSERT INTO folders (storage_name, display_name, uidvalidity, uidnext, highestmodseq, special_use)
             VALUES (?1, ?2, ?3, 1, 1, ?4)",
            params![storage, display, uidvalidity, self.special_use.get(storage)],
        )
        .map_err(|e| self.sql(e))?;
        Ok(FolderRow {
            id: tx.last_insert_rowid(),
            uidvalidity,
            uidnext: 1,
            highestmodseq: 1,
        })
    }
}

fn folder_by_name(conn: &Connection, storage: &str) -> rusqlite::Result<Option<FolderRow>> {
    conn.prepare_cached(
        "SELECT id, uidvalidity, uidnext, highestmodseq FROM folders WHERE storage_name = ?1",
    )?
    .query_row(params![storage], |r| {
        Ok(FolderRow {
            id: r.get(0)?,
            uidvalidity: r.get(1)?,
            uidnext: r.get(2)?,
            highestmodseq: r.get(3)?,
        })
    })
    .optional()
}

fn uid_of_base(conn: &Connection, folder: i64, base: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT uid FROM messages WHERE folder_id = ?1 AND base = ?2")?
        .query_row(params![folder, base], |r| r.get(0))
        .optional()
}

/// A UIDVALIDITY not given before in this index: like Dovecot's counter,
/// at least the current time and above the last one handed out.
fn next_uidvalidity(tx: &Transaction<'_>) -> rusqlite::Result<i64> {
    let last: i64 = tx
        .query_row(
            "SELECT value FROM meta WHERE key = 'last_uidvalidity'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let now = unix(SystemTime::now()).clamp(1, i64::from(u32::MAX));
    let mut v = now.max(last + 1);
    if v > i64::from(u32::MAX) {
        v = 1;
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('last_uidvalidity', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![v],
    )?;
    Ok(v)
}

#[allow(clippy::too_many_arguments)]
fn insert_message(
    tx: &Transaction<'_>,
    folder: i64,
    uid: i64,
    modseq: i64,
    base: &str,
    entry: &scan::Entry,
    keywords: &str,
    meta: &scan::Meta,
    saved_date: i64,
) -> rusqlite::Result<()> {
    let (flags, _) = scan::parse_info(&entry.info);
    let h = &meta.headers;
    tx.prepare_cached(
        "INSERT INTO messages (folder_id, uid, base, in_cur, info, flags, keywords, size, vsize,
             internal_date, saved_date, modseq, message_id, in_reply_to, references_ids,
             from_addr, to_addrs, subject, date_hdr)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        folder,
        uid,
        base,
        entry.in_cur,
        entry.info,
        flags,
        keywords,
        meta.size,
        meta.vsize,
        meta.internal_date,
        saved_date,
        modseq,
        h.message_id,
        h.in_reply_to,
        h.references,
        h.from,
        h.to,
        h.subject,
        h.date,
    ])?;
    Ok(())
}

/// The keyword names of a folder, read from its `dovecot-keywords` once,
/// when first needed.
pub(crate) struct KeywordNames<'a> {
    dir: &'a Path,
    names: Option<Vec<Option<String>>>,
}

impl<'a> KeywordNames<'a> {
    pub(crate) fn new(dir: &'a Path) -> KeywordNames<'a> {
        KeywordNames { dir, names: None }
    }

    /// The keyword names an info's letters stand for, space-separated.
    pub(crate) fn text(&mut self, info: &str) -> Result<String, IndexError> {
        let (_, letters) = scan::parse_info(info);
        if letters.is_empty() {
            return Ok(String::new());
        }
        let names = match &mut self.names {
            Some(n) => n,
            slot => slot.insert(store::keyword_names(self.dir)?),
        };
        Ok(keyword_text(names, &letters))
    }
}

/// The names of keyword letters (by index, a = 0), space-separated;
/// letters without a name are left out.
fn keyword_text(names: &[Option<String>], letters: &[usize]) -> String {
    letters
        .iter()
        .filter_map(|&i| names.get(i).cloned().flatten())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a statement through the connection's statement cache (parsed once
/// per connection, not per delivery).
fn exec(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}

/// Raises the reservations a commit is about to go past. Returns whether
/// it did (the commit must then be made durable).
fn reserve(tx: &Transaction<'_>) -> rusqlite::Result<bool> {
    let uids = exec(
        tx,
        "UPDATE folders SET uid_reserved = uidnext + ?1 WHERE uidnext > uid_reserved",
        params![UID_RESERVE],
    )?;
    let modseqs = exec(
        tx,
        "UPDATE folders SET modseq_reserved = highestmodseq + ?1
         WHERE highestmodseq > modseq_reserved",
        params![MODSEQ_RESERVE],
    )?;
    Ok(uids + modseqs > 0)
}

/// After a reboot (or when the boot cannot be known), moves UIDNEXT and
/// HIGHESTMODSEQ of every folder up to their reservations and records this
/// boot. Returns whether it changed anything (to be made durable).
fn jump_after_reboot(tx: &Transaction<'_>) -> rusqlite::Result<bool> {
    let now = boot_id();
    let last: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = 'boot_id'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if now.is_some() && last == now {
        return Ok(false);
    }
    tx.execute(
        "UPDATE folders SET uidnext = max(uidnext, uid_reserved),
         highestmodseq = max(highestmodseq, modseq_reserved)",
        [],
    )?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('boot_id', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![now.unwrap_or(0)],
    )?;
    Ok(true)
}

/// The kernel's boot id (changes at every boot), as a number; None when it
/// cannot be read (then every connection's first write jumps).
fn boot_id() -> Option<i64> {
    static ID: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    *ID.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let hex: String = text.chars().filter(char::is_ascii_hexdigit).collect();
        let n = u128::from_str_radix(&hex, 16).ok()?;
        // 63 bits are plenty to tell boots apart, and keep it positive.
        Some((n as u64 >> 1) as i64)
    })
}

fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Unix seconds; times before 1970 count as 0.
fn unix(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()).unwrap_or(i64::MAX)
}
