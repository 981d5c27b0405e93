//! Brings the index in line with the Maildir (docs/maildir.md, 'What the
//! index reconciles'): folders created, renamed or deleted; per folder, when
//! new/ or cur/ changed, files moved from new/ to cur/, renamed for flags,
//! deleted, or added by another program, matched by base name. Must not hold the write lock
//! while it reads the disk (deliveries wait on it), must not expunge a
//! file that one listing missed but a second one sees, and must not undo a
//! change another writer made meanwhile.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use rusqlite::{params, Transaction};

use super::error::io;
use super::scan::{self, Entry, Meta};
use super::uidlist::Uidlist;
use super::{
    insert_message, uid_of_base, unix, FolderRow, Index, IndexError, KeywordNames, MAX_TOMBSTONES,
};
use crate::UidMode;

/// A directory mtime this close to now may still change within the same
/// timestamp tick: it is not stored, so the next sync looks again.
const RACY_NS: i64 = 2_000_000_000;
/// New files read and inserted per transaction.
const ADD_BATCH: usize = 2000;

/// What a sync changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changes {
    pub added: u64,
    pub updated: u64,
    pub expunged: u64,
    pub folders_added: u64,
    pub folders_removed: u64,
    pub folders_renamed: u64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// A message row as the index has it.
#[derive(Clone, Debug)]
pub(super) struct Known {
    pub uid: i64,
    pub entry: Entry,
    pub keywords: String,
    pub meta: Meta,
}

/// A file the index does not have yet.
struct New {
    base: String,
    entry: Entry,
    meta: Meta,
    keywords: String,
    /// Dovecot mode: the uidlist's UID.
    uid: Option<i64>,
}

/// A folder's files compared with its rows.
#[derive(Default)]
struct Diff {
    /// Files whose place or name (flags) changed: (base, as indexed, as
    /// listed).
    changed: Vec<(String, Entry, Entry)>,
    /// Rows whose file is gone: (base, UID).
    missing: Vec<(String, i64)>,
    /// A full sync's rows whose contents differ from their file: (base,
    /// as read, keywords).
    refreshed: Vec<(String, Meta, String)>,
    /// Files the index does not have, in name (delivery) order.
    new: Vec<(String, Entry)>,
}

impl Index {
    /// Syncs every folder whose new/ or cur/ changed since the last sync.
    pub fn reconcile(&self) -> Result<Changes, IndexError> {
        self.sync(false)
    }

    /// Syncs every folder and re-reads every message file, correcting any
    /// row that differs from its file; UIDs of files still there are kept.
    pub fn resync_all(&self) -> Result<Changes, IndexError> {
        self.sync(true)
    }

    fn sync(&self, full: bool) -> Result<Changes, IndexError> {
        let mut ch = Changes::default();
        let on_disk = self.maildir.folders()?;
        let indexed: Vec<(i64, String)> = self
            .conn
            .prepare("SELECT id, storage_name FROM folders")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| self.sql(e))?;
        let disk: HashSet<&str> = on_disk.iter().map(String::as_str).collect();
        let names: HashSet<&str> = indexed.iter().map(|(_, n)| n.as_str()).collect();
        let mut unindexed: Vec<&str> = on_disk
            .iter()
            .map(String::as_str)
            .filter(|n| !names.contains(n))
            .collect();
        for (id, old) in indexed.iter().filter(|(_, n)| !disk.contains(n.as_str())) {
            let target = self.renamed_to(*id, &unindexed)?;
            self.write(|tx| {
                let n = match target {
                    Some(new) => {
                        let display = self.display(new);
                        tx.execute(
                            "UPDATE folders SET storage_name = ?3, display_name = ?4, special_use = ?5,
                             new_mtime_ns = NULL, cur_mtime_ns = NULL
                             WHERE id = ?1 AND storage_name = ?2",
                            params![id, old, new, display, self.special_use.get(new)],
                        )
                    }
                    None => tx.execute(
                        "DELETE FROM folders WHERE id = ?1 AND storage_name = ?2",
                        params![id, old],
                    ),
                }
                .map_err(|e| self.sql(e))?;
                Ok(n)
            })?;
            match target {
                Some(new) => {
                    tracing::info!(from = %old, to = %new, "folder renamed");
                    ch.folders_renamed += 1;
                    unindexed.retain(|n| *n != new);
                }
                None => ch.folders_removed += 1,
            }
        }
        let subscribed = self.subscriptions();
        for storage in &on_disk {
            self.sync_folder(storage, full, subscribed.contains(storage), &mut ch)?;
        }
        Ok(ch)
    }

    /// The unindexed folder holding at least half of the files of vanished
    /// folder `id` (a rename by an IMAP server keeps the files).
    fn renamed_to<'a>(
        &self,
        id: i64,
        candidates: &[&'a str],
    ) -> Result<Option<&'a str>, IndexError> {
        if candidates.is_empty() {
            return Ok(None);
        }
        let bases: Vec<String> = self
            .conn
            .prepare("SELECT base FROM messages WHERE folder_id = ?1")
            .and_then(|mut s| {
                s.query_map(params![id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| self.sql(e))?;
        if bases.is_empty() {
            return Ok(None);
        }
        for c in candidates {
            let dir = self.maildir.folder_dir(c);
            let files = scan::list(&dir).map_err(io("readdir", &dir))?;
            let found = bases.iter().filter(|b| files.contains_key(*b)).count();
            if found * 2 >= bases.len() {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Storage names listed in the Maildir's `subscriptions` (v1 or v2).
    fn subscriptions(&self) -> HashSet<String> {
        let Ok(text) = std::fs::read_to_string(self.maildir.root().join("subscriptions")) else {
            return HashSet::new();
        };
        let mut lines = text.lines().peekable();
        let v2 = lines.peek().is_some_and(|l| l.starts_with("V\t"));
        if v2 {
            // The header ends at the first empty line.
            for l in lines.by_ref() {
                if l.is_empty() {
                    break;
                }
            }
        }
        lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let name = if v2 {
                    l.replace('\t', ".")
                } else {
                    l.to_owned()
                };
                if name.eq_ignore_ascii_case("INBOX") {
                    String::new()
                } else {
                    name
                }
            })
            .collect()
    }

    pub(super) fn display(&self, storage: &str) -> String {
        if storage.is_empty() {
            return "INBOX".to_owned();
        }
        mailstow_maildir::display_name(storage, self.maildir.encoding())
            .unwrap_or_else(|_| storage.to_owned())
    }

    /// The rows of a folder; their content fields only `with_meta`
    /// (else empty), which costs memory on a large folder.
    pub(super) fn known(
        &self,
        folder: i64,
        with_meta: bool,
    ) -> Result<HashMap<String, Known>, IndexError> {
        let sql = if with_meta {
            "SELECT uid, base, in_cur, info, keywords, size, vsize, internal_date, message_id,
             in_reply_to, references_ids, from_addr, to_addrs, subject, date_hdr
             FROM messages WHERE folder_id = ?1"
        } else {
            "SELECT uid, base, in_cur, info, keywords, 0, 0, 0, NULL, NULL, NULL, NULL, NULL,
             NULL, NULL FROM messages WHERE folder_id = ?1"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![folder], |r| {
                Ok((
                    r.get::<_, String>(1)?,
                    Known {
                        uid: r.get(0)?,
                        entry: Entry {
                            in_cur: r.get(2)?,
                            info: r.get(3)?,
                        },
                        keywords: r.get(4)?,
                        meta: Meta {
                            size: r.get(5)?,
                            vsize: r.get(6)?,
                            internal_date: r.get(7)?,
                            headers: scan::Headers {
                                message_id: r.get(8)?,
                                in_reply_to: r.get(9)?,
                                references: r.get(10)?,
                                from: r.get(11)?,
                                to: r.get(12)?,
                                subject: r.get(13)?,
                                date: r.get(14)?,
                            },
                        },
                    },
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<HashMap<_, _>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Brings one folder's rows in line with its files, when its new/ or
    /// cur/ changed (always when `full`). The disk is read first, without
    /// the write lock; then one transaction applies moves, flag changes,
    /// expunges and (full) refreshed contents, new files follow in batches
    /// of [`ADD_BATCH`] (memory stays bounded and deliveries get the lock
    /// in between), and a last one records the folder as synced.
    fn sync_folder(
        &self,
        storage: &str,
        full: bool,
        subscribed: bool,
        ch: &mut Changes,
    ) -> Result<(), IndexError> {
        let dir = self.maildir.folder_dir(storage);
        let row = self.folder_row(storage)?;
        let Some(mtimes) = self.needs_sync(&dir, row.as_ref(), full, subscribed)? else {
            return Ok(());
        };
        let mut keywords = KeywordNames::new(&dir);
        let (diff, list) = self.compare(&dir, row.as_ref(), full, &mut keywords)?;
        // In dovecot mode, the first write takes the uidlist's UIDVALIDITY
        // (emptying the folder's rows when it is another).
        let mut validity = list.as_ref().map(|l| l.uidvalidity);
        let mut c =
            self.write(|tx| self.apply_diff(tx, storage, validity, &diff, &mut keywords))?;
        let mut incomplete = false;
        for batch in diff.new.chunks(ADD_BATCH) {
            let mut added = read_new(&dir, batch, &mut keywords)?;
            if self.mode.shared() {
                let numbered =
                    self.number_new(storage, &dir, list.as_ref(), &mut added, &mut validity)?;
                incomplete |= !numbered;
            }
            let n = self.write(|tx| self.insert_new(tx, storage, validity, &added))?;
            c.added += n.added;
            c.expunged += n.expunged;
        }
        self.finish_sync(storage, validity, mtimes, subscribed, incomplete)?;
        if row.is_none() {
            ch.folders_added += 1;
        }
        ch.added += c.added;
        ch.updated += c.updated;
        ch.expunged += c.expunged;
        if !c.is_empty() {
            tracing::debug!(folder = storage, changes = ?c, "index synced");
        }
        Ok(())
    }

    /// The mtimes of the folder's new/ and cur/ when it needs a sync: it is
    /// new to the index, either directory changed since the last sync, the
    /// sync is `full`, or its subscription changed. None when it needs none,
    /// or when the folder is gone.
    fn needs_sync(
        &self,
        dir: &Path,
        row: Option<&FolderRow>,
        full: bool,
        subscribed: bool,
    ) -> Result<Option<(i64, i64)>, IndexError> {
        let (stored_mtimes, stored_sub) = match row {
            Some(f) => self
                .conn
                .query_row(
                    "SELECT new_mtime_ns, cur_mtime_ns, subscribed FROM folders WHERE id = ?1",
                    params![f.id],
                    |r| {
                        Ok((
                            (r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?),
                            r.get::<_, bool>(2)?,
                        ))
                    },
                )
                .map_err(|e| self.sql(e))?,
            None => ((None, None), false),
        };
        // Stat before listing: a change during the listing moves the mtime
        // past what is stored, and the next sync looks again.
        let Some(mtimes) = scan::dir_mtimes(dir).map_err(io("stat", dir))? else {
            return Ok(None);
        };
        let unchanged = stored_mtimes == (Some(mtimes.0), Some(mtimes.1));
        if row.is_some() && unchanged && !full && stored_sub == subscribed {
            return Ok(None);
        }
        Ok(Some(mtimes))
    }

    /// Compares the folder's files with its rows (`full`: their contents
    /// too, read from every file). Also returns the uidlist in dovecot
    /// mode, where it decides UIDs: a different UIDVALIDITY voids all our
    /// rows, and a base it numbers otherwise is another message.
    fn compare(
        &self,
        dir: &Path,
        row: Option<&FolderRow>,
        full: bool,
        keywords: &mut KeywordNames<'_>,
    ) -> Result<(Diff, Option<Uidlist>), IndexError> {
        let mut known = match row {
            Some(f) => self.known(f.id, full)?,
            None => HashMap::new(),
        };
        let mut files = scan::list(dir).map_err(io("readdir", dir))?;
        let list = self.mode.read(dir)?;
        if let (Some(l), Some(f)) = (&list, row) {
            if i64::from(l.uidvalidity) != f.uidvalidity {
                // The first write empties the folder's rows.
                known.clear();
            } else {
                known.retain(|base, k| l.uid_of(base).is_none_or(|u| i64::from(u) == k.uid));
            }
        }
        let mut diff = Diff {
            missing: missing(dir, &known, &mut files)?,
            ..Diff::default()
        };
        for (base, entry) in files {
            let Some(k) = known.get(&base) else {
                diff.new.push((base, entry));
                continue;
            };
            if full {
                if let Some((meta, kw)) = reread(dir, &base, &entry, k, keywords)? {
                    diff.refreshed.push((base.clone(), meta, kw));
                }
            }
            if k.entry != entry {
                diff.changed.push((base, k.entry.clone(), entry));
            }
        }
        diff.new.sort_by(|(a, _), (b, _)| scan::name_order(a, b));
        Ok((diff, list))
    }

    /// Applies the changes to known files (one transaction): moves and flag
    /// changes, expunges, each at a MODSEQ of its own, and refreshed
    /// contents. A row another writer changed meanwhile is left as it is.
    fn apply_diff(
        &self,
        tx: &Transaction<'_>,
        storage: &str,
        validity: Option<u32>,
        diff: &Diff,
        keywords: &mut KeywordNames<'_>,
    ) -> Result<Changes, IndexError> {
        let f = self.folder_for(tx, storage, validity)?;
        let sql = |e| self.sql(e);
        let mut c = Changes::default();
        let mut modseq = f.highestmodseq;
        for (base, old, new) in &diff.changed {
            let kw = keywords.text(&new.info)?;
            if update_entry(tx, f.id, base, old, new, &kw, modseq + 1).map_err(sql)? {
                modseq += 1;
                c.updated += 1;
            }
        }
        for (base, uid) in &diff.missing {
            if expunge(tx, f.id, *uid, Some(base), modseq + 1).map_err(sql)? {
                modseq += 1;
                c.expunged += 1;
            }
        }
        for (base, meta, kw) in &diff.refreshed {
            update_meta(tx, f.id, base, meta, kw).map_err(sql)?;
            c.updated += 1;
        }
        tx.execute(
            "UPDATE folders SET highestmodseq = ?2 WHERE id = ?1",
            params![f.id, modseq],
        )
        .map_err(sql)?;
        Ok(c)
    }

    /// Dovecot mode: gives the new files of a batch their UIDs from the
    /// uidlist, appending the unlisted ones to it (which may set
    /// `validity`), and drops those it could not number (only Dovecot
    /// numbers files in this mode). Returns false when the uidlist could
    /// not be appended to: those files wait for the next sync.
    fn number_new(
        &self,
        storage: &str,
        dir: &Path,
        list: Option<&Uidlist>,
        added: &mut Vec<New>,
        validity: &mut Option<u32>,
    ) -> Result<bool, IndexError> {
        let listed = |base: &str| list.and_then(|l| l.uid_of(base));
        // Courier numbers a file of new/ afresh whatever its uiddb says:
        // those wait until Courier has moved them to cur/.
        let numberable = |n: &New| self.mode != UidMode::Courier || n.entry.in_cur;
        let unlisted: Vec<&str> = added
            .iter()
            .filter(|n| listed(&n.base).is_none() && numberable(n))
            .map(|n| n.base.as_str())
            .collect();
        let mut numbered = true;
        let mut assigned = HashMap::new();
        if !unlisted.is_empty() {
            let known_row = self.folder_row(storage)?;
            match self.uidlist_assign(dir, &unlisted, known_row.as_ref()) {
                Ok(a) => {
                    *validity = Some(a.uidvalidity);
                    assigned = unlisted
                        .iter()
                        .map(|b| (*b).to_owned())
                        .zip(a.uids.iter().copied())
                        .collect();
                }
                Err(e) => {
                    // A lock held too long, or a file Dovecot will
                    // rebuild: these files wait for the next sync.
                    tracing::warn!(folder = storage, error = %e, file = self.mode.file_name(), "could not number new files through the reader's UID file; they are indexed later");
                    numbered = false;
                }
            }
        }
        for n in added.iter_mut() {
            n.uid = assigned
                .get(&n.base)
                .copied()
                .or_else(|| listed(&n.base))
                .map(i64::from);
        }
        let before = added.len();
        added.retain(|n| n.uid.is_some());
        Ok(numbered && added.len() == before)
    }

    /// Records the folder as synced: the mtimes of new/ and cur/ (unless
    /// too recent to trust, or some files wait for a later sync), its
    /// subscription, special use and display name; old tombstones go.
    fn finish_sync(
        &self,
        storage: &str,
        validity: Option<u32>,
        mtimes: (i64, i64),
        subscribed: bool,
        incomplete: bool,
    ) -> Result<(), IndexError> {
        let now_ns = i64::try_from(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        )
        .unwrap_or(i64::MAX);
        let settled = |m: i64| (!incomplete && now_ns - m >= RACY_NS).then_some(m);
        self.write(|tx| {
            let f = self.folder_for(tx, storage, validity)?;
            tx.execute(
                "UPDATE folders SET new_mtime_ns = ?2, cur_mtime_ns = ?3, subscribed = ?4,
                 special_use = ?5, display_name = ?6 WHERE id = ?1",
                params![
                    f.id,
                    settled(mtimes.0),
                    settled(mtimes.1),
                    subscribed,
                    self.special_use.get(storage),
                    self.display(storage)
                ],
            )
            .map_err(|e| self.sql(e))?;
            prune_tombstones(tx, f.id).map_err(|e| self.sql(e))?;
            Ok(())
        })
    }

    /// The folder's row: with the uidlist's UIDVALIDITY in dovecot mode
    /// (when there is a uidlist), else as it is (created when missing).
    fn folder_for(
        &self,
        tx: &Transaction<'_>,
        storage: &str,
        validity: Option<u32>,
    ) -> Result<FolderRow, IndexError> {
        match validity {
            Some(v) => self.folder_with_validity(tx, storage, v),
            None => self.folder_in(tx, storage),
        }
    }

    /// Inserts files new to the index: with the uidlist's UID when there is
    /// one, else the next UID; a file another writer indexed meanwhile is
    /// skipped.
    fn insert_new(
        &self,
        tx: &Transaction<'_>,
        storage: &str,
        validity: Option<u32>,
        added: &[New],
    ) -> Result<Changes, IndexError> {
        let f = self.folder_for(tx, storage, validity)?;
        let sql = |e| self.sql(e);
        let mut c = Changes::default();
        let mut modseq = f.highestmodseq;
        let mut uidnext = f.uidnext;
        for n in added {
            if uid_of_base(tx, f.id, &n.base).map_err(sql)?.is_some() {
                continue;
            }
            let uid = match n.uid {
                Some(u) => {
                    // The uidlist gives this UID to this file: a row holding
                    // it for another file is stale.
                    if expunge(tx, f.id, u, None, modseq + 1).map_err(sql)? {
                        modseq += 1;
                        c.expunged += 1;
                    }
                    u
                }
                None => uidnext,
            };
            if uid <= 0 {
                continue;
            }
            modseq += 1;
            insert_message(
                tx,
                f.id,
                uid,
                modseq,
                &n.base,
                &n.entry,
                &n.keywords,
                &n.meta,
                unix(SystemTime::now()),
            )
            .map_err(sql)?;
            uidnext = uidnext.max(uid + 1);
            c.added += 1;
        }
        tx.execute(
            "UPDATE folders SET uidnext = ?2, highestmodseq = ?3 WHERE id = ?1",
            params![f.id, uidnext, modseq],
        )
        .map_err(sql)?;
        Ok(c)
    }
}

/// The known files that are gone, as (base, UID). readdir may skip entries
/// renamed meanwhile, so a file one listing missed counts as gone only when
/// a second listing misses it too; files the second one finds join `files`.
fn missing(
    dir: &Path,
    known: &HashMap<String, Known>,
    files: &mut HashMap<String, Entry>,
) -> Result<Vec<(String, i64)>, IndexError> {
    let mut missing: Vec<(String, i64)> = known
        .iter()
        .filter(|(b, _)| !files.contains_key(*b))
        .map(|(b, k)| (b.clone(), k.uid))
        .collect();
    if !missing.is_empty() {
        let again = scan::list(dir).map_err(io("readdir", dir))?;
        missing.retain(|(b, _)| !again.contains_key(b));
        for (b, e) in again {
            files.entry(b).or_insert(e);
        }
    }
    Ok(missing)
}

/// A full sync's reading of a known file: its contents and keywords when
/// they differ from the row (keywords only compared when the name did not
/// change: a changed name updates them anyway). None when they agree, or
/// when the file is gone since the listing.
fn reread(
    dir: &Path,
    base: &str,
    entry: &Entry,
    k: &Known,
    keywords: &mut KeywordNames<'_>,
) -> Result<Option<(Meta, String)>, IndexError> {
    let path = entry.path(dir, base);
    match scan::read_message(&path, base) {
        Ok(meta) => {
            let kw = keywords.text(&entry.info)?;
            let differs = meta != k.meta || (k.entry == *entry && kw != k.keywords);
            Ok(differs.then_some((meta, kw)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("read", &path)(e)),
    }
}

/// Reads the new files of one batch; a file gone since the listing is
/// left out (the next sync sees where it went).
fn read_new(
    dir: &Path,
    batch: &[(String, Entry)],
    keywords: &mut KeywordNames<'_>,
) -> Result<Vec<New>, IndexError> {
    let mut added = Vec::with_capacity(batch.len());
    for (base, entry) in batch {
        let path = entry.path(dir, base);
        let meta = match scan::read_message(&path, base) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("read", &path)(e)),
        };
        added.push(New {
            base: base.clone(),
            entry: entry.clone(),
            keywords: keywords.text(&entry.info)?,
            meta,
            uid: None,
        });
    }
    Ok(added)
}

/// Records a file's new place and name (`old` to `new`) at `modseq`, if
/// its row still has the old ones. Returns whether it did.
fn update_entry(
    tx: &Transaction<'_>,
    folder: i64,
    base: &str,
    old: &Entry,
    new: &Entry,
    keywords: &str,
    modseq: i64,
) -> rusqlite::Result<bool> {
    let (flags, _) = scan::parse_info(&new.info);
    let n = tx
        .prepare_cached(
            "UPDATE messages SET in_cur = ?3, info = ?4, flags = ?5, keywords = ?6, modseq = ?7
             WHERE folder_id = ?1 AND base = ?2 AND in_cur = ?8 AND info = ?9",
        )?
        .execute(params![
            folder, base, new.in_cur, new.info, flags, keywords, modseq, old.in_cur, old.info
        ])?;
    Ok(n > 0)
}

/// Replaces a row's contents (sizes, dates, header fields, keywords) with
/// a fresh reading of its file.
fn update_meta(
    tx: &Transaction<'_>,
    folder: i64,
    base: &str,
    meta: &Meta,
    keywords: &str,
) -> rusqlite::Result<()> {
    let h = &meta.headers;
    tx.execute(
        "UPDATE messages SET size = ?3, vsize = ?4, internal_date = ?5, message_id = ?6,
         in_reply_to = ?7, references_ids = ?8, from_addr = ?9, to_addrs = ?10,
         subject = ?11, date_hdr = ?12, keywords = ?13
         WHERE folder_id = ?1 AND base = ?2",
        params![
            folder,
            base,
            meta.size,
            meta.vsize,
            meta.internal_date,
            h.message_id,
            h.in_reply_to,
            h.references,
            h.from,
            h.to,
            h.subject,
            h.date,
            keywords
        ],
    )?;
    Ok(())
}

/// Moves the row with `uid` (and `base`, when given) to `expunged` at
/// `modseq`. Returns whether there was one.
fn expunge(
    tx: &Transaction<'_>,
    folder: i64,
    uid: i64,
    base: Option<&str>,
    modseq: i64,
) -> rusqlite::Result<bool> {
    let n = match base {
        Some(b) => tx.execute(
            "DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2 AND base = ?3",
            params![folder, uid, b],
        )?,
        None => tx.execute(
            "DELETE FROM messages WHERE folder_id = ?1 AND uid = ?2",
            params![folder, uid],
        )?,
    };
    if n > 0 {
        tx.execute(
            "INSERT INTO expunged (folder_id, uid, modseq) VALUES (?1, ?2, ?3)
             ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq",
            params![folder, uid, modseq],
        )?;
    }
    Ok(n > 0)
}

/// Keeps the newest [`MAX_TOMBSTONES`] expunged UIDs; the MODSEQ of the
/// newest one dropped becomes the folder's `vanished_floor` (readers
/// asking about changes before it must resync fully).
fn prune_tombstones(tx: &Transaction<'_>, folder: i64) -> rusqlite::Result<()> {
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM expunged WHERE folder_id = ?1",
        params![folder],
        |r| r.get(0),
    )?;
    if count <= MAX_TOMBSTONES {
        return Ok(());
    }
    let floor: i64 = tx.query_row(
        "SELECT modseq FROM expunged WHERE folder_id = ?1 ORDER BY modseq LIMIT 1 OFFSET ?2",
        params![folder, count - MAX_TOMBSTONES - 1],
        |r| r.get(0),
    )?;
    tx.execute(
        "DELETE FROM expunged WHERE folder_id = ?1 AND modseq <= ?2",
        params![folder, floor],
    )?;
    tx.execute(
        "UPDATE folders SET vanished_floor = max(vanished_floor, ?2) WHERE id = ?1",
        params![folder, floor],
    )?;
    Ok(())
}
