//! Courier-IMAP's per-folder `courierimapuiddb` (docs/maildir.md,
//! 'Courier-IMAP'), as Courier 5 reads and writes it in
//! imap/imapscanclient.c: a header `1 <uidvalidity> <nextuid>`, then one
//! `<uid> <base>` line per message of cur/. Courier rewrites it whole
//! (temp file in tmp/, rename) while it holds the folder's
//! `tmp/courier.lock` (IMAP_USELOCKS=1, Debian's default); we give
//! delivered messages their UIDs the same way, under the same lock.
//!
//! Must never renumber or drop a listed message, never list a file that is
//! not in cur/ (Courier gives every file of new/ a fresh UID whatever the
//! file says), and never trust the file: a parse is bounded and skips
//! lines Courier would skip.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mailstow_maildir::dotlock::DotLock;
use mailstow_maildir::fsops::{create_file, fsync_path};
use mailstow_maildir::{io_err, Owner, StoreError};

use crate::uidlist::{check_bases, Assigned, Record, Uidlist};

pub const UIDDB: &str = "courierimapuiddb";
/// Courier's maildir lock (maildir/maildirwatch.h WATCHDOTLOCK), inside the
/// folder.
pub const LOCK: &str = "tmp/courier.lock";
/// Courier's IMAPDBVERSION.
const VERSION: u32 = 1;
/// Courier's IMAP_EPOCH: UIDVALIDITY is a time minus this.
const IMAP_EPOCH: u64 = 1_000_000_000;
/// Files larger than this are refused (about 50 bytes a message).
pub const MAX_FILE_SIZE: u64 = 64 << 20;
/// Courier cuts lines at 10000 bytes (its "DOS check").
const MAX_LINE: usize = 10_000;

/// Parses a `courierimapuiddb` as Courier does: None unless the first line
/// is `1 <uidvalidity> <nextuid>`; record lines without a space or a
/// number are skipped. Records come out sorted by UID, a UID listed twice
/// keeping its first base, so the result is a valid [`Uidlist`]
/// (version 1).
pub fn parse(bytes: &[u8]) -> Option<Uidlist> {
    let mut lines = bytes
        .split(|&b| b == b'\n')
        .map(|l| &l[..l.len().min(MAX_LINE)]);
    let (uidvalidity, next) = header(lines.next()?)?;
    let mut records: Vec<Record> = lines.filter_map(record).collect();
    records.sort_by_key(|r| r.uid);
    records.dedup_by_key(|r| r.uid);
    Some(Uidlist::from_records(VERSION, uidvalidity, next, records))
}

fn header(line: &[u8]) -> Option<(u32, u32)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    let version: u32 = words.next()?.parse().ok()?;
    let uidvalidity: u32 = words.next()?.parse().ok()?;
    let next: u32 = words.next()?.parse().ok()?;
    (version == VERSION).then_some((uidvalidity, next))
}

fn record(line: &[u8]) -> Option<Record> {
    let space = line.iter().position(|&b| b == b' ')?;
    let uid: u32 = std::str::from_utf8(&line[..space]).ok()?.parse().ok()?;
    let base = String::from_utf8_lossy(&line[space + 1..]).into_owned();
    (uid > 0 && !base.is_empty()).then_some(Record { uid, base })
}

/// Reads the folder's `courierimapuiddb` without a lock (Courier replaces
/// it only by rename). Ok(None) when it is missing or not a version 1 file.
pub fn read(folder_dir: &Path) -> Result<Option<Uidlist>, StoreError> {
    Ok(read_bytes(&folder_dir.join(UIDDB))?.and_then(|b| parse(&b)))
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    mailstow_maildir::fsops::read_bounded(path, MAX_FILE_SIZE)
}

/// Gives each of `bases` (messages in the folder's cur/) its Courier UID:
/// the one listed, else the next, never below `min_next`. Under
/// `tmp/courier.lock`, reads the file (creating it, with a time-based
/// UIDVALIDITY as Courier does, when missing or unreadable as version 1),
/// and replaces it with the new lines added, in tmp/ then by rename.
pub fn assign(
    folder_dir: &Path,
    bases: &[&str],
    min_next: u32,
    owner: Option<Owner>,
    lock_host: &str,
    wait: Duration,
) -> Result<Assigned, StoreError> {
    let path = folder_dir.join(UIDDB);
    check_bases(bases, &path)?;
    let _lock = DotLock::acquire(folder_dir.join(LOCK), owner, lock_host, wait)?;
    let current = read(folder_dir)?;
    let listed = current.as_ref().map(|l| l.records.len());
    let (list, uids) = numbered(current, bases, min_next, &path)?;
    if listed != Some(list.records.len()) {
        replace(folder_dir, &render(&list), owner)?;
    }
    Ok(Assigned {
        uidvalidity: list.uidvalidity,
        uids,
    })
}

/// The file with `bases` numbered (a new file when `current` is None), and
/// their UIDs in order.
fn numbered(
    current: Option<Uidlist>,
    bases: &[&str],
    min_next: u32,
    path: &Path,
) -> Result<(Uidlist, Vec<u32>), StoreError> {
    let list =
        current.unwrap_or_else(|| Uidlist::from_records(VERSION, new_uidvalidity(), 1, Vec::new()));
    let mut next = list.next_uid().max(min_next);
    let mut records = list.records.clone();
    let mut uids = Vec::with_capacity(bases.len());
    let mut added: HashSet<&str> = HashSet::new();
    for &base in bases {
        if let Some(uid) = list.uid_of(base) {
            uids.push(uid);
            continue;
        }
        if !added.insert(base) {
            let same = records.iter().rev().find(|r| r.base == base);
            uids.push(same.map_or(0, |r| r.uid));
            continue;
        }
        if next == u32::MAX {
            let source = io::Error::other("UIDs exhausted; Courier must renumber the folder");
            return Err(StoreError::Io {
                op: "assign a UID in",
                path: path.to_owned(),
                source,
            });
        }
        records.push(Record {
            uid: next,
            base: base.to_owned(),
        });
        uids.push(next);
        next += 1;
    }
    let list = Uidlist::from_records(VERSION, list.uidvalidity, next, records);
    Ok((list, uids))
}

/// As Courier writes it: header, then records by UID.
fn render(list: &Uidlist) -> Vec<u8> {
    let mut out = format!("{VERSION} {} {}\n", list.uidvalidity, list.next_uid()).into_bytes();
    for r in &list.records {
        out.extend_from_slice(format!("{} {}\n", r.uid, r.base).as_bytes());
    }
    out
}

/// Writes `bytes` to a fresh file in the folder's tmp/, fsyncs it, renames
/// it over the uiddb and fsyncs the folder.
fn replace(folder_dir: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), StoreError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let tmp = folder_dir.join("tmp").join(format!(
        "{}.{}_imapuid_mailstow.{}",
        now.as_secs(),
        std::process::id(),
        now.subsec_nanos()
    ));
    let file = create_file(&tmp, owner).map_err(io_err("create", &tmp))?;
    let written = (&file).write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let dest = folder_dir.join(UIDDB);
    let done = written.and_then(|()| fs::rename(&tmp, &dest));
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("replace", &dest)(e));
    }
    fsync_path(folder_dir)
}

/// Courier's UIDVALIDITY for a new file: its mtime minus IMAP_EPOCH.
fn new_uidvalidity() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs.saturating_sub(IMAP_EPOCH)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for s in ["tmp", "new", "cur"] {
            fs::create_dir(d.path().join(s)).unwrap();
        }
        d
    }

    fn assign_in(dir: &Path, bases: &[&str], min_next: u32) -> Assigned {
        assign(dir, bases, min_next, None, "h", Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn the_file_courier_wrote_parses() {
        // As Courier 5.0.13 wrote it after one SELECT.
        let l = parse(b"1 796675505 2\n1 1700000000.M1P1Q1.x,S=31\n").unwrap();
        assert_eq!((l.uidvalidity, l.next_uid()), (796675505, 2));
        assert_eq!(l.uid_of("1700000000.M1P1Q1.x,S=31"), Some(1));
        assert_eq!(l.uid_of("1700000000.M1P1Q1.x,S=31:2,S"), Some(1));
    }

    #[test]
    fn other_versions_and_garbage_headers_are_not_read() {
        assert!(parse(b"2 5 6\n").is_none());
        assert!(parse(b"1 x 6\n").is_none());
        assert!(parse(b"").is_none());
        // Bad records are skipped, not fatal.
        let l = parse(b"1 7 9\nx base\n3\n0 zero\n4 good\n").unwrap();
        assert_eq!(l.records.len(), 1);
        assert_eq!(l.next_uid(), 9);
    }

    #[test]
    fn assign_appends_after_courier_and_keeps_everything_listed() {
        let d = folder();
        fs::write(d.path().join(UIDDB), "1 796675505 4\n1 a\n3 b\n").unwrap();
        let a = assign_in(d.path(), &["c", "b"], 1);
        assert_eq!(
            a,
            Assigned {
                uidvalidity: 796675505,
                uids: vec![4, 3]
            }
        );
        assert_eq!(
            fs::read_to_string(d.path().join(UIDDB)).unwrap(),
            "1 796675505 5\n1 a\n3 b\n4 c\n"
        );
        let a = assign_in(d.path(), &["d"], 10);
        assert_eq!(a.uids, [10]);
        assert!(!d.path().join(LOCK).exists());
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_file_is_created_with_a_time_based_uidvalidity() {
        let d = folder();
        let a = assign_in(d.path(), &["x"], 1);
        assert_eq!(a.uids, [1]);
        assert!(a.uidvalidity > 700_000_000);
        let text = fs::read_to_string(d.path().join(UIDDB)).unwrap();
        assert_eq!(text, format!("1 {} 2\n1 x\n", a.uidvalidity));
    }

    #[test]
    fn a_held_courier_lock_times_out_without_writing() {
        let d = folder();
        fs::write(d.path().join(LOCK), format!("{}:h", std::process::id())).unwrap();
        let r = assign(
            d.path(),
            &["x"],
            1,
            None,
            "other",
            Duration::from_millis(50),
        );
        assert!(r.is_err());
        assert!(!d.path().join(UIDDB).exists());
    }

    #[test]
    fn bad_bases_are_refused() {
        let d = folder();
        let r = assign(d.path(), &["a:2,S"], 1, None, "h", Duration::from_secs(1));
        assert!(r.is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_gives_ascending_uids(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut text = b"1 5 6\n".to_vec();
            text.extend_from_slice(&bytes);
            for input in [&bytes[..], &text[..]] {
                if let Some(l) = parse(input) {
                    prop_assert!(l.records.windows(2).all(|w| w[0].uid < w[1].uid));
                }
            }
        }
    }
}
