//! A folder's `dovecot-keywords` file (docs/maildir.md, 'Keywords' and 'Info
//! suffix and flags'): maps IMAP keywords to the letters a..z of Maildir file
//! names, appending new names under `dovecot-uidlist.lock` and replacing the
//! file by write-temp, fsync, rename. Must not edit the file in place,
//! renumber or drop an existing entry, or give one letter two names.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::dotlock::DotLock;
use super::fsops;
use super::{Owner, StoreError};

const FILE: &str = "dovecot-keywords";
/// Dovecot writes the new file under this name (its dotlock on the file,
/// `file_dotlock_replace`) and, holding the uidlist lock, first unlinks any
/// leftover; we do the same, so neither trips over the other's crash.
const TMP: &str = "dovecot-keywords.lock";
const LOCK: &str = "dovecot-uidlist.lock";
/// Letters a..z.
pub(super) const MAX_LETTERS: usize = 26;

/// Index (letter) to name, as the file says. Names are bytes: entries we
/// cannot read as keywords are kept as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Table([Option<Vec<u8>>; MAX_LETTERS]);

impl Table {
    /// Parses like Dovecot's `maildir_keywords_sync`: "<index> <name>" per
    /// line; lines without a space, with a bad index or an empty name are
    /// skipped; a later line for the same index wins.
    fn parse(bytes: &[u8]) -> Table {
        let mut table = Table::default();
        for line in bytes.split(|&b| b == b'\n') {
            let Some(space) = line.iter().position(|&b| b == b' ') else {
                continue;
            };
            let (index, name) = (&line[..space], &line[space + 1..]);
            let index = std::str::from_utf8(index)
                .ok()
                .filter(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|i| i.parse::<usize>().ok());
            if let Some(i) = index.filter(|&i| i < MAX_LETTERS && !name.is_empty()) {
                table.0[i] = Some(name.to_vec());
            }
        }
        table
    }

    /// As Dovecot writes it: "<index> <name>\n" in index order.
    fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, name) in self.0.iter().enumerate() {
            if let Some(name) = name {
                out.extend_from_slice(format!("{i} ").as_bytes());
                out.extend_from_slice(name);
                out.push(b'\n');
            }
        }
        out
    }

    /// The index of `keyword`, compared ignoring ASCII case as Dovecot does
    /// (its keyword hash uses strcasecmp); the lowest on duplicates.
    fn find(&self, keyword: &str) -> Option<usize> {
        self.0.iter().position(|name| {
            name.as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(keyword.as_bytes()))
        })
    }

    /// Adds `keyword` at the first free index; None when all 26 are taken.
    fn add(&mut self, keyword: &str) -> Option<usize> {
        let free = self.0.iter().position(Option::is_none)?;
        self.0[free] = Some(keyword.as_bytes().to_vec());
        Some(free)
    }
}

/// The keyword names of the folder at `dir`, by letter index (a = 0), as
/// its `dovecot-keywords` says; all None when there is no such file.
pub(super) fn names(dir: &Path) -> Result<Vec<Option<String>>, StoreError> {
    let path = dir.join(FILE);
    let table = match fsops::read_if_exists(&path)? {
        Some((bytes, _)) => Table::parse(&bytes),
        None => Table::default(),
    };
    Ok(table
        .0
        .into_iter()
        .map(|n| n.map(|n| String::from_utf8_lossy(&n).into_owned()))
        .collect())
}

/// The letters (sorted, as they follow the system flags after `:2,`) of
/// `keywords` in the folder at `dir`, adding the missing names to its
/// `dovecot-keywords` under `dovecot-uidlist.lock`. Keywords that find no
/// free letter are left out with a warning (Dovecot too keeps those only in
/// its index). `keywords` must be valid and distinct ([`super::Flags`]).
pub(super) fn letters(
    dir: &Path,
    keywords: &[String],
    owner: Option<Owner>,
    host: &str,
    wait: Duration,
) -> Result<String, StoreError> {
    if keywords.is_empty() {
        return Ok(String::new());
    }
    // Readers need no lock: the file is only ever replaced whole.
    let (table, _) = read(dir)?;
    let known: Option<Vec<usize>> = keywords.iter().map(|k| table.find(k)).collect();
    if let Some(indexes) = known {
        return Ok(to_letters(indexes));
    }
    let _lock = DotLock::acquire(dir.join(LOCK), owner, host, wait)?;
    // Opened again under the lock: another writer may have replaced it.
    let (mut table, mtime) = read(dir)?;
    let mut changed = false;
    let mut indexes = Vec::with_capacity(keywords.len());
    for keyword in keywords {
        match table.find(keyword) {
            Some(i) => indexes.push(i),
            None => match table.add(keyword) {
                Some(i) => {
                    changed = true;
                    indexes.push(i);
                }
                None => {
                    tracing::warn!(
                        keyword = keyword.as_str(),
                        folder = %dir.display(),
                        "all 26 keyword letters of the folder are taken; keyword not stored"
                    );
                }
            },
        }
    }
    if changed {
        let mtime = next_mtime(mtime, SystemTime::now());
        fsops::replace_file(dir, TMP, FILE, &table.render(), owner, Some(mtime))?;
    }
    Ok(to_letters(indexes))
}

fn read(dir: &Path) -> Result<(Table, Option<SystemTime>), StoreError> {
    Ok(match fsops::read_if_exists(&dir.join(FILE))? {
        Some((bytes, meta)) => (Table::parse(&bytes), meta.modified().ok()),
        None => (Table::default(), None),
    })
}

/// The new file's mtime: Dovecot re-reads the file only when its mtime, in
/// whole seconds, differs from the one it last read, so it must grow even
/// within one second (as Dovecot's own writer makes sure).
fn next_mtime(old: Option<SystemTime>, now: SystemTime) -> SystemTime {
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let now_secs = secs(now);
    match old.map(secs) {
        Some(old) if old >= now_secs => UNIX_EPOCH + Duration::from_secs(old + 1),
        _ => now,
    }
}

fn to_letters(mut indexes: Vec<usize>) -> String {
    indexes.sort_unstable();
    indexes.dedup();
    indexes
        .into_iter()
        .filter_map(|i| u8::try_from(i).ok().filter(|&i| i < MAX_LETTERS as u8))
        .map(|i| char::from(b'a' + i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn letters_in(dir: &Path, keywords: &[&str]) -> Result<String, StoreError> {
        let keywords: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
        letters(dir, &keywords, None, "testhost", Duration::from_millis(300))
    }

    fn file(dir: &Path) -> String {
        fs::read_to_string(dir.join(FILE)).unwrap()
    }

    #[test]
    fn new_keywords_are_written_in_dovecots_exact_format() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            letters_in(dir.path(), &["$Important", "Work"]).unwrap(),
            "ab"
        );
        assert_eq!(file(dir.path()), "0 $Important\n1 Work\n");
        assert!(!dir.path().join(LOCK).exists());
        assert!(!dir.path().join(TMP).exists());
    }

    #[test]
    fn known_keywords_reuse_their_letters_ignoring_case_without_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        fs::write(&path, "0 $Custom\n3 project-x\n1 Junk\n").unwrap();
        let before = fs::metadata(&path).unwrap();
        // A live lock held by someone else: the lookup must not need it.
        fs::write(
            dir.path().join(LOCK),
            format!("{}:testhost", std::process::id()),
        )
        .unwrap();
        assert_eq!(
            letters_in(dir.path(), &["PROJECT-X", "$custom", "junk"]).unwrap(),
            "abd"
        );
        let after = fs::metadata(&path).unwrap();
        assert_eq!(
            (
                before.modified().unwrap(),
                std::os::unix::fs::MetadataExt::ino(&before)
            ),
            (
                after.modified().unwrap(),
                std::os::unix::fs::MetadataExt::ino(&after)
            )
        );
    }

    #[test]
    fn new_names_take_the_first_free_indexes_and_keep_existing_lines() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE),
            "0 $Custom\n2 Work\nnot a line\n40 Beyond\n7 \n",
        )
        .unwrap();
        assert_eq!(
            letters_in(dir.path(), &["Work", "New", "Newer"]).unwrap(),
            "bcd"
        );
        assert_eq!(file(dir.path()), "0 $Custom\n1 New\n2 Work\n3 Newer\n");
    }

    #[test]
    fn a_27th_keyword_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<String> = (0..25).map(|i| format!("k{i}")).collect();
        let first: Vec<&str> = first.iter().map(String::as_str).collect();
        letters_in(dir.path(), &first).unwrap();
        assert_eq!(letters_in(dir.path(), &["last", "k3"]).unwrap(), "dz");
        assert_eq!(letters_in(dir.path(), &["over", "k0"]).unwrap(), "a");
        assert_eq!(letters_in(dir.path(), &["over"]).unwrap(), "");
        let content = file(dir.path());
        assert_eq!(content.lines().count(), 26);
        assert!(content.ends_with("24 k24\n25 last\n"), "{content}");
    }

    #[test]
    fn a_stale_uidlist_lock_is_taken_over_and_a_live_one_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join(LOCK);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&lock, format!("{dead}:testhost")).unwrap();
        assert_eq!(letters_in(dir.path(), &["A"]).unwrap(), "a");
        assert!(!lock.exists());

        fs::write(&lock, format!("{}:testhost", std::process::id())).unwrap();
        let err = letters_in(dir.path(), &["B"]).unwrap_err();
        assert!(matches!(err, StoreError::Io { op: "lock", .. }), "{err}");
        assert_eq!(file(dir.path()), "0 A\n");
        assert!(lock.exists());
    }

    #[test]
    fn a_leftover_temp_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TMP), "9 junk from a crash\n").unwrap();
        assert_eq!(letters_in(dir.path(), &["X"]).unwrap(), "a");
        assert_eq!(file(dir.path()), "0 X\n");
        assert!(!dir.path().join(TMP).exists());
    }

    #[test]
    fn concurrent_writers_get_distinct_letters_and_all_names_land() {
        const THREADS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (dir, barrier) = (dir.path().to_owned(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let keywords = [format!("only{t}"), "Shared".to_owned()];
                    letters(&dir, &keywords, None, "testhost", Duration::from_secs(10))
                })
            })
            .collect();
        let got: Vec<String> = threads
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        let table = Table::parse(fs::read(dir.path().join(FILE)).unwrap().as_slice());
        let shared = table.find("Shared").unwrap();
        let mut own = Vec::new();
        for (t, letters) in got.iter().enumerate() {
            let i = table.find(&format!("only{t}")).unwrap();
            let mut want = vec![i, shared];
            want.sort_unstable();
            assert_eq!(*letters, to_letters(want), "thread {t}");
            own.push(i);
        }
        own.push(shared);
        own.sort_unstable();
        own.dedup();
        assert_eq!(own.len(), THREADS + 1);
        assert_eq!(table.0.iter().flatten().count(), THREADS + 1);
    }

    #[test]
    fn the_mtime_grows_by_whole_seconds_even_within_one_second() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        let now = t(1000) + Duration::from_millis(300);
        assert_eq!(next_mtime(None, now), now);
        assert_eq!(next_mtime(Some(t(999)), now), now);
        assert_eq!(next_mtime(Some(t(1000)), now), t(1001));
        assert_eq!(next_mtime(Some(t(1005)), now), t(1006));

        let dir = tempfile::tempdir().unwrap();
        letters_in(dir.path(), &["a"]).unwrap();
        let first = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .modified()
            .unwrap();
        letters_in(dir.path(), &["b"]).unwrap();
        let second = fs::metadata(dir.path().join(FILE))
            .unwrap()
            .modified()
            .unwrap();
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert!(secs(second) > secs(first));
    }
}
