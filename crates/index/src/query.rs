//! Reads the index for the `mailstow index` commands: messages of a folder,
//! searches (header text through FTS5), per-folder statistics, and a
//! verification of the index against a fresh reading of the Maildir. Must
//! not change rows (verify reconciles first, through the usual path).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Row};

use super::error::io;
use super::reconcile::Known;
use super::scan;
use super::{Index, IndexError, KeywordNames};

/// One message as the commands print it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MessageRow {
    pub folder: String,
    pub uid: u32,
    pub flags: Vec<String>,
    pub size: i64,
    /// RFC822.SIZE.
    pub vsize: i64,
    /// Unix seconds.
    pub internal_date: i64,
    pub modseq: i64,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The Date: header, Unix seconds.
    pub date: Option<i64>,
    /// The file, relative to the Maildir.
    pub path: String,
}

/// What `index search` looks for; every given criterion must match.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// IMAP name; all folders when None.
    pub folder: Option<String>,
    /// Words or a phrase in From / To / Subject (full-text).
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// INTERNALDATE at or after / before (Unix seconds).
    pub since: Option<i64>,
    pub before: Option<i64>,
    /// Flags (`\Seen`, or keywords) the message must have / must not have.
    pub flagged: Vec<String>,
    pub unflagged: Vec<String>,
    /// With or without angle brackets.
    pub message_id: Option<String>,
    pub limit: Option<u64>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct FolderStats {
    pub folder: String,
    pub storage_name: String,
    pub messages: i64,
    pub unseen: i64,
    pub size: i64,
    pub vsize: i64,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: i64,
    pub expunged_kept: i64,
    pub special_use: Option<String>,
    pub subscribed: bool,
}

const SELECT: &str = "SELECT f.display_name, m.uid, m.flags, m.keywords, m.size, m.vsize,
    m.internal_date, m.modseq, m.message_id, m.in_reply_to, m.references_ids, m.from_addr,
    m.to_addrs, m.subject, m.date_hdr, f.storage_name, m.in_cur, m.base, m.info
    FROM messages m JOIN folders f ON f.id = m.folder_id";

impl Index {
    /// Messages of one folder (IMAP name) or of all, by folder and UID.
    pub fn list(&self, folder: Option<&str>) -> Result<Vec<MessageRow>, IndexError> {
        self.search(&Search {
            folder: folder.map(str::to_owned),
            ..Search::default()
        })
    }

    pub fn search(&self, q: &Search) -> Result<Vec<MessageRow>, IndexError> {
        let storage = match &q.folder {
            Some(f) => Some(mailstow_maildir::storage_name(f, self.maildir.encoding())?),
            None => None,
        };
        let (wh, args) = conditions(q, storage);
        let mut sql = SELECT.to_owned();
        if !wh.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&wh.join(" AND "));
        }
        sql.push_str(" ORDER BY f.storage_name, m.uid");
        if let Some(n) = q.limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), message_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    pub fn stats(&self) -> Result<Vec<FolderStats>, IndexError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT f.display_name, f.storage_name, count(m.id),
                 coalesce(sum((m.flags & 1) = 0), 0), coalesce(sum(m.size), 0),
                 coalesce(sum(m.vsize), 0), f.uidvalidity, f.uidnext, f.highestmodseq,
                 (SELECT count(*) FROM expunged e WHERE e.folder_id = f.id),
                 f.special_use, f.subscribed
                 FROM folders f LEFT JOIN messages m ON m.folder_id = f.id
                 GROUP BY f.id ORDER BY f.storage_name",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(FolderStats {
                    folder: r.get(0)?,
                    storage_name: r.get(1)?,
                    messages: r.get(2)?,
                    unseen: r.get(3)?,
                    size: r.get(4)?,
                    vsize: r.get(5)?,
                    uidvalidity: r.get(6)?,
                    uidnext: r.get(7)?,
                    highestmodseq: r.get(8)?,
                    expunged_kept: r.get(9)?,
                    special_use: r.get(10)?,
                    subscribed: r.get(11)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Reconciles, then compares every row with a fresh reading of its file
    /// and checks the IMAP invariants (UID below UIDNEXT, MODSEQ at most
    /// HIGHESTMODSEQ, no expunged UID alive, full-text table consistent;
    /// in dovecot mode, UIDs and UIDVALIDITY as the uidlist has them).
    /// Returns the differences, one line each; empty when the index is
    /// right.
    pub fn verify(&self) -> Result<Vec<String>, IndexError> {
        self.reconcile()?;
        let mut out = Vec::new();
        let on_disk = self.maildir.folders()?;
        let indexed: HashMap<String, (i64, i64)> = self
            .conn
            .prepare("SELECT storage_name, id, uidvalidity FROM folders")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| self.sql(e))?;
        for name in indexed.keys().filter(|n| !on_disk.contains(n)) {
            out.push(format!("{}: indexed, but not on disk", self.display(name)));
        }
        for storage in &on_disk {
            match indexed.get(storage) {
                Some(&(id, uidvalidity)) => {
                    self.verify_folder(storage, id, uidvalidity, &mut out)?
                }
                None => out.push(format!("{}: on disk, not indexed", self.display(storage))),
            }
        }
        for (what, sql) in INVARIANTS {
            let bad: Vec<String> = self
                .conn
                .prepare(sql)
                .and_then(|mut s| {
                    s.query_map([], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()
                })
                .map_err(|e| self.sql(e))?;
            out.extend(bad.into_iter().map(|b| format!("{b}: {what}")));
        }
        if let Err(e) = self.conn.execute(
            "INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')",
            [],
        ) {
            out.push(format!("full-text table: {e}"));
        }
        out.sort();
        Ok(out)
    }

    /// Compares the rows of one indexed folder with its files (and, in
    /// dovecot mode, its uidlist); adds a line to `out` per difference.
    fn verify_folder(
        &self,
        storage: &str,
        id: i64,
        uidvalidity: i64,
        out: &mut Vec<String>,
    ) -> Result<(), IndexError> {
        let shown = self.display(storage);
        let dir = self.maildir.folder_dir(storage);
        let files = scan::list(&dir).map_err(io("readdir", &dir))?;
        let known = self.known(id, true)?;
        let mut keywords = KeywordNames::new(&dir);
        let list = self.mode.read(&dir)?;
        if let Some(l) = &list {
            if i64::from(l.uidvalidity) != uidvalidity {
                out.push(format!(
                    "{shown}: UIDVALIDITY {uidvalidity}, {} has {}",
                    self.mode.file_name(),
                    l.uidvalidity
                ));
            }
        }
        for (base, entry) in &files {
            let Some(k) = known.get(base) else {
                out.push(format!("{shown}: {base}: on disk, not indexed"));
                continue;
            };
            let kw = keywords.text(&entry.info)?;
            let listed = list.as_ref().and_then(|l| l.uid_of(base));
            out.extend(compare_file(&shown, &dir, base, entry, k, &kw, listed));
        }
        for base in known.keys().filter(|b| !files.contains_key(*b)) {
            out.push(format!("{shown}: {base}: indexed, but no file"));
        }
        Ok(())
    }
}

/// The differences between the row `k` and its file as listed (`entry`
/// in folder `dir`) and read (place and name, contents, keywords `kw`, the
/// uidlist's UID when `listed`), one line each.
fn compare_file(
    shown: &str,
    dir: &Path,
    base: &str,
    entry: &scan::Entry,
    k: &Known,
    kw: &str,
    listed: Option<u32>,
) -> Vec<String> {
    let mut out = Vec::new();
    if k.entry != *entry {
        out.push(format!(
            "{shown}: {base}: indexed as {:?}, on disk {:?}",
            k.entry, entry
        ));
    }
    match scan::read_message(&entry.path(dir, base), base) {
        Ok(meta) if meta != k.meta => out.push(format!(
            "{shown}: {base}: indexed {:?}, file has {:?}",
            k.meta, meta
        )),
        Ok(_) => {}
        Err(e) => out.push(format!("{shown}: {base}: cannot read: {e}")),
    }
    if kw != k.keywords {
        out.push(format!(
            "{shown}: {base}: keywords {:?}, file has {:?}",
            k.keywords, kw
        ));
    }
    if let Some(u) = listed.filter(|&u| i64::from(u) != k.uid) {
        out.push(format!(
            "{shown}: {base}: UID {}, the UID file has {u}",
            k.uid
        ));
    }
    out
}

/// Invariants every index keeps, each with a query listing what breaks it.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "UID not below UIDNEXT",
        "SELECT f.display_name || ' UID ' || m.uid FROM messages m JOIN folders f
         ON f.id = m.folder_id WHERE m.uid >= f.uidnext",
    ),
    (
        "MODSEQ above HIGHESTMODSEQ",
        "SELECT f.display_name || ' UID ' || m.uid FROM messages m JOIN folders f
         ON f.id = m.folder_id WHERE m.modseq > f.highestmodseq",
    ),
    (
        "expunged UID still present",
        "SELECT f.display_name || ' UID ' || e.uid FROM expunged e JOIN messages m
         ON m.folder_id = e.folder_id AND m.uid = e.uid JOIN folders f ON f.id = e.folder_id",
    ),
    (
        "UIDNEXT or HIGHESTMODSEQ above its durable reservation",
        "SELECT display_name FROM folders
         WHERE uidnext > uid_reserved OR highestmodseq > modseq_reserved",
    ),
    (
        "expunged UID not below UIDNEXT",
        "SELECT f.display_name || ' UID ' || e.uid FROM expunged e JOIN folders f
         ON f.id = e.folder_id WHERE e.uid >= f.uidnext",
    ),
];

/// The WHERE conditions of a search (joined with AND) and their
/// arguments; `storage` is the folder's storage name.
fn conditions(q: &Search, storage: Option<String>) -> (Vec<String>, Vec<Value>) {
    let mut wh: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    if let Some(storage) = storage {
        wh.push("f.storage_name = ?".into());
        args.push(storage.into());
    }
    if let Some(query) = fts_query(q) {
        wh.push("m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)".into());
        args.push(query.into());
    }
    if let Some(t) = q.since {
        wh.push("m.internal_date >= ?".into());
        args.push(t.into());
    }
    if let Some(t) = q.before {
        wh.push("m.internal_date < ?".into());
        args.push(t.into());
    }
    if let Some(id) = &q.message_id {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        wh.push("m.message_id = ?".into());
        args.push(id.to_owned().into());
    }
    for (names, has) in [(&q.flagged, true), (&q.unflagged, false)] {
        let not = if has { "" } else { "NOT " };
        for name in names {
            match scan::FLAGS
                .iter()
                .find(|(_, _, n)| n.eq_ignore_ascii_case(name))
            {
                Some((bit, _, _)) => wh.push(format!("{not}(m.flags & {bit}) != 0")),
                None => {
                    wh.push(format!("{not}(' ' || lower(m.keywords) || ' ') LIKE ?"));
                    args.push(format!("% {} %", name.to_lowercase()).into());
                }
            }
        }
    }
    (wh, args)
}

/// The FTS5 query for the From / To / Subject criteria (each a phrase in
/// its column); None when there are none.
fn fts_query(q: &Search) -> Option<String> {
    let mut fts = Vec::new();
    for (col, v) in [
        ("from_addr", &q.from),
        ("to_addrs", &q.to),
        ("subject", &q.subject),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            fts.push(format!("{col} : \"{}\"", v.replace('"', "\"\"")));
        }
    }
    (!fts.is_empty()).then(|| fts.join(" AND "))
}

/// One row of [`SELECT`] as the commands print it: system flags and
/// keywords as names, the path relative to the Maildir.
fn message_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    let bits: i64 = r.get(2)?;
    let keywords: String = r.get(3)?;
    let mut flags: Vec<String> = scan::FLAGS
        .iter()
        .filter(|(b, _, _)| bits & b != 0)
        .map(|(_, _, n)| (*n).to_owned())
        .collect();
    flags.extend(
        keywords
            .split(' ')
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
    );
    let storage: String = r.get(15)?;
    let in_cur: bool = r.get(16)?;
    let base: String = r.get(17)?;
    let info: String = r.get(18)?;
    let entry = scan::Entry { in_cur, info };
    let dir = if storage.is_empty() {
        String::new()
    } else {
        format!(".{storage}/")
    };
    Ok(MessageRow {
        folder: r.get(0)?,
        uid: r.get(1)?,
        flags,
        size: r.get(4)?,
        vsize: r.get(5)?,
        internal_date: r.get(6)?,
        modseq: r.get(7)?,
        message_id: r.get(8)?,
        in_reply_to: r.get(9)?,
        references: r.get(10)?,
        from: r.get(11)?,
        to: r.get(12)?,
        subject: r.get(13)?,
        date: r.get(14)?,
        path: format!(
            "{dir}{}/{}",
            if in_cur { "cur" } else { "new" },
            entry.file_name(&base)
        ),
    })
}
