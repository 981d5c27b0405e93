//! Courier-IMAP's own files in a Maildir (docs/maildir.md, 'Courier-IMAP'),
//! as Courier 5 (courier-libs maildir/maildirkeywords2.c, imap/imapd.c)
//! reads and writes them: a message's keywords as an update file
//! `courierimapkeywords/<base>` (one keyword per line, written in the
//! folder's tmp/ and renamed into place, no lock), the subscriptions file
//! `courierimapsubscribed` (one `INBOX.<name>` per line), and a reader of
//! the keywords a folder holds (`:list` plus the update files).
//!
//! Must not write Courier's `:list` (Courier merges the update files into
//! it, and only it may drop entries), edit a file in place, or trust a size
//! or count from a file: every read is bounded.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dotlock::DotLock;
use super::fsops;
use super::{io_err, Owner, StoreError};

/// The keyword directory in each folder.
pub const KEYWORD_DIR: &str = "courierimapkeywords";
/// Courier's merged list of every message's keywords, inside [`KEYWORD_DIR`].
const LIST: &str = ":list";
/// The subscriptions file in the Maildir root.
pub const SUBSCRIBED: &str = "courierimapsubscribed";
/// Serialises our own writers of [`SUBSCRIBED`] (Courier takes no lock: it
/// replaces the file by rename, as we do).
const SUBSCRIBED_LOCK: &str = "courierimapsubscribed.lock";
/// Files larger than this are not read: a keyword list of a huge folder
/// still fits many times over.
pub const MAX_FILE_SIZE: u64 = 16 << 20;
/// Update files read per folder at most.
const MAX_UPDATE_FILES: usize = 100_000;
/// Keywords one message may carry as read.
const MAX_KEYWORDS: usize = 1000;

/// Makes `keywords` the keywords of the message `base` in the folder at
/// `dir`, as Courier-IMAP does: the update file is written in `dir/tmp/`,
/// fsynced, renamed to `courierimapkeywords/<base>`, and the directory is
/// fsynced. Creates the keyword directory (mode 0700, as the folder) if
/// needed. Nothing to do for no keywords.
pub(super) fn set_keywords(
    dir: &Path,
    base: &str,
    keywords: &[String],
    owner: Option<Owner>,
) -> Result<(), StoreError> {
    if keywords.is_empty() {
        return Ok(());
    }
    let kw_dir = dir.join(KEYWORD_DIR);
    if fsops::make_dir(&kw_dir, owner)? {
        fsops::fsync_path(dir)?;
    }
    let text: String = keywords.iter().map(|k| format!("{k}\n")).collect();
    let tmp_name = format!("{base}.kw{}", std::process::id());
    let tmp = dir.join("tmp").join(tmp_name);
    write_synced(&tmp, text.as_bytes(), owner)?;
    let dest = kw_dir.join(base);
    if let Err(e) = fs::rename(&tmp, &dest) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename into", &dest)(e));
    }
    fsops::fsync_path(&kw_dir)
}

/// Takes back the update file of a message that was not delivered.
pub(super) fn remove_keywords(dir: &Path, base: &str) {
    let _ = fs::remove_file(dir.join(KEYWORD_DIR).join(base));
}

fn write_synced(path: &Path, bytes: &[u8], owner: Option<Owner>) -> Result<(), StoreError> {
    let file = fsops::create_file(path, owner).map_err(io_err("create", path))?;
    let written = (&file)
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fsops::close(file));
    written.map_err(|e| {
        let _ = fs::remove_file(path);
        io_err("write", path)(e)
    })
}

/// Adds `INBOX.<storage>` to the root's `courierimapsubscribed` unless it
/// is there (compared as Courier does: `INBOX` in any case, the rest
/// exactly). The new file is written in the root's tmp/ and renamed over
/// the old one, as Courier's SUBSCRIBE does.
pub(super) fn subscribe(
    root: &Path,
    storage: &str,
    owner: Option<Owner>,
    host: &str,
    wait: Duration,
) -> Result<(), StoreError> {
    let _lock = DotLock::acquire(root.join(SUBSCRIBED_LOCK), owner, host, wait)?;
    let path = root.join(SUBSCRIBED);
    let old = read_bounded(&path)?.unwrap_or_default();
    let entry = format!("INBOX.{storage}");
    let Some(new) = with_subscription(&old, &entry) else {
        return Ok(());
    };
    let tmp = root.join("tmp").join(format!(
        "{}.imapsubscribe{}",
        unix_now(),
        std::process::id()
    ));
    write_synced(&tmp, &new, owner)?;
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename into", &path)(e));
    }
    fsops::fsync_path(root)
}

/// The subscriptions file with `entry` at its end; None when it is listed.
fn with_subscription(old: &[u8], entry: &str) -> Option<Vec<u8>> {
    let listed = old
        .split(|&b| b == b'\n')
        .any(|line| same_subscription(line, entry.as_bytes()));
    if listed {
        return None;
    }
    let mut out = old.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(entry.as_bytes());
    out.push(b'\n');
    Some(out)
}

/// Courier's `sub_strcmp`: a leading "inbox" in any case on both, then the
/// rest compared exactly.
fn same_subscription(a: &[u8], b: &[u8]) -> bool {
    let inbox = |s: &[u8]| s.len() >= 5 && s[..5].eq_ignore_ascii_case(b"inbox");
    if inbox(a) && inbox(b) {
        a[5..] == b[5..]
    } else {
        a == b
    }
}

/// The names in a `courierimapsubscribed` file, as they are written.
pub fn subscribed(root: &Path) -> Result<Vec<String>, StoreError> {
    let bytes = read_bounded(&root.join(SUBSCRIBED))?.unwrap_or_default();
    Ok(bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect())
}

/// The keywords of every message of the folder at `dir` that has some, by
/// base name, as Courier would read them now: `:list`, then each update
/// file (`<base>` over `.<N>.<base>`, the highest N of those). Files that
/// cannot be read are skipped; nothing is written or removed.
pub fn folder_keywords(dir: &Path) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let kw_dir = dir.join(KEYWORD_DIR);
    let mut out = match read_bounded(&kw_dir.join(LIST))? {
        Some(bytes) => parse_list(&bytes),
        None => HashMap::new(),
    };
    for (base, file) in update_files(&kw_dir)? {
        if let Some(bytes) = read_bounded(&kw_dir.join(&file))? {
            let words = parse_update(&bytes);
            if words.is_empty() {
                out.remove(&base);
            } else {
                out.insert(base, words);
            }
        }
    }
    Ok(out)
}

/// The update file that wins for each base: `<base>` itself, else the
/// `.<N>.<base>` with the highest N.
fn update_files(kw_dir: &Path) -> Result<Vec<(String, String)>, StoreError> {
    let entries = match fs::read_dir(kw_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("readdir", kw_dir)(e)),
    };
    // base -> (rank, file name); a plain `<base>` ranks above every N.
    let mut best: HashMap<String, (u64, String)> = HashMap::new();
    for entry in entries.take(MAX_UPDATE_FILES) {
        let entry = entry.map_err(io_err("readdir", kw_dir))?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some((rank, base)) = update_name(&name) else {
            continue;
        };
        if best.get(base).is_none_or(|(r, _)| rank > *r) {
            best.insert(base.to_owned(), (rank, name.clone()));
        }
    }
    Ok(best.into_iter().map(|(b, (_, f))| (b, f)).collect())
}

/// (rank, base) of an update file name: `<base>` ranks u64::MAX, `.<N>.<base>`
/// ranks N; `:list`, `.tmp.*` and anything else: None.
fn update_name(name: &str) -> Option<(u64, &str)> {
    if name.starts_with(':') || name.is_empty() {
        return None;
    }
    let Some(rest) = name.strip_prefix('.') else {
        return Some((u64::MAX, name));
    };
    let (n, base) = rest.split_once('.')?;
    let n: u64 = n.parse().ok().filter(|&n| n > 0)?;
    (!base.is_empty()).then_some((n, base))
}

/// `:list`: keyword names one per line up to an empty line, then
/// `<base>:<index> <index>...` lines (indexes into the names). Lines that do
/// not fit are skipped, as Courier skips them.
pub fn parse_list(bytes: &[u8]) -> HashMap<String, Vec<String>> {
    let mut lines = bytes.split(|&b| b == b'\n');
    let mut names = Vec::new();
    for line in lines.by_ref() {
        if line.is_empty() {
            break;
        }
        names.push(String::from_utf8_lossy(line).into_owned());
    }
    let mut out = HashMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let base = String::from_utf8_lossy(&line[..colon]).into_owned();
        let words: Vec<String> = line[colon + 1..]
            .split(|&b| b == b' ')
            .filter_map(|i| std::str::from_utf8(i).ok()?.parse::<usize>().ok())
            .filter_map(|i| names.get(i).cloned())
            .take(MAX_KEYWORDS)
            .collect();
        if !words.is_empty() && !base.is_empty() {
            out.insert(base, words);
        }
    }
    out
}

/// An update file: one keyword per line, up to an empty line.
pub fn parse_update(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|&b| b == b'\n')
        .take_while(|l| !l.is_empty())
        .take(MAX_KEYWORDS)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    crate::fsops::read_bounded(path, MAX_FILE_SIZE)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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

    #[test]
    fn keywords_are_an_update_file_named_after_the_base_one_per_line() {
        let d = folder();
        let kws = vec!["$Label1".to_owned(), "project-x".to_owned()];
        set_keywords(d.path(), "1.M2P3Q4.h,S=5,W=6", &kws, None).unwrap();
        let file = d.path().join(KEYWORD_DIR).join("1.M2P3Q4.h,S=5,W=6");
        assert_eq!(fs::read(file).unwrap(), b"$Label1\nproject-x\n");
        assert_eq!(fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
        let read = folder_keywords(d.path()).unwrap();
        assert_eq!(read["1.M2P3Q4.h,S=5,W=6"], kws);
    }

    #[test]
    fn courier_list_and_newer_update_files_merge_without_losing_others() {
        let d = folder();
        let kw = d.path().join(KEYWORD_DIR);
        fs::create_dir(&kw).unwrap();
        // Courier's merged list: two keywords, three messages.
        fs::write(kw.join(LIST), "$Work\n$Home\n\na:0\nb:1 0\nc:1\n").unwrap();
        // A newer rename-style update for c (no keywords now), an older N
        // for b losing to a higher N.
        fs::write(kw.join(".5.b"), "old\n").unwrap();
        fs::write(kw.join(".9.b"), "$Home\n").unwrap();
        fs::write(kw.join("c"), "").unwrap();
        set_keywords(d.path(), "d", &["$New".to_owned()], None).unwrap();
        let got = folder_keywords(d.path()).unwrap();
        assert_eq!(got["a"], ["$Work"]);
        assert_eq!(got["b"], ["$Home"]);
        assert!(!got.contains_key("c"));
        assert_eq!(got["d"], ["$New"]);
        // Courier's list itself is left as it was.
        assert_eq!(
            fs::read(kw.join(LIST)).unwrap(),
            b"$Work\n$Home\n\na:0\nb:1 0\nc:1\n"
        );
    }

    #[test]
    fn subscriptions_append_full_names_once_keeping_others() {
        let d = folder();
        fs::write(d.path().join(SUBSCRIBED), "INBOX.Sent\n").unwrap();
        let sub = |s| subscribe(d.path(), s, None, "h", Duration::from_secs(1)).unwrap();
        sub("Reçus");
        sub("Lists.rust");
        sub("Reçus");
        assert_eq!(
            subscribed(d.path()).unwrap(),
            ["INBOX.Sent", "INBOX.Reçus", "INBOX.Lists.rust"]
        );
        assert!(with_subscription("inbox.Reçus\n".as_bytes(), "INBOX.Reçus").is_none());
        assert!(!d.path().join(SUBSCRIBED_LOCK).exists());
    }

    #[test]
    fn update_names_rank_plain_above_numbered_and_skip_the_rest() {
        assert_eq!(update_name("abc"), Some((u64::MAX, "abc")));
        assert_eq!(update_name(".12.abc"), Some((12, "abc")));
        assert_eq!(update_name(".tmp.12abc"), None);
        assert_eq!(update_name(":list"), None);
        assert_eq!(update_name(".0.x"), None);
        assert_eq!(update_name(".5."), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let list = parse_list(&bytes);
            prop_assert!(list.values().all(|v| v.len() <= MAX_KEYWORDS));
            let words = parse_update(&bytes);
            prop_assert!(words.len() <= MAX_KEYWORDS);
            let _ = with_subscription(&bytes, "INBOX.x");
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = update_name(s);
            }
        }

        #[test]
        fn list_lines_map_indexes_to_names(
            names in proptest::collection::vec("[A-Za-z$]{1,8}", 1..5),
            picks in proptest::collection::vec(0usize..8, 1..6),
        ) {
            let mut text = names.join("\n");
            text.push_str("\n\nbase:");
            text.push_str(&picks.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "));
            text.push('\n');
            let got = parse_list(text.as_bytes());
            let want: Vec<String> = picks.iter().filter_map(|&p| names.get(p).cloned()).collect();
            prop_assert_eq!(got.get("base").cloned().unwrap_or_default(), want);
        }
    }
}
