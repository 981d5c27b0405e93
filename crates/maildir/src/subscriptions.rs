//! The Maildir root's `subscriptions` file in Dovecot's version 2 format
//! (docs/maildir.md, 'Subscriptions'): adds a folder under the dotlock
//! `subscriptions.lock`, replacing the file by write-temp, fsync, rename. Must
//! not drop, reorder or duplicate existing entries, and must not edit the file
//! in place.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use super::dotlock::DotLock;
use super::fsops;
use super::{Owner, StoreError};

const HEADER: &[u8] = b"V\t2\n\n";

/// Subscribes `storage` (a storage name, levels separated by '.').
pub(super) fn subscribe(
    root: &Path,
    storage: &str,
    owner: Option<Owner>,
    host: &str,
    wait: Duration,
) -> Result<(), StoreError> {
    let _lock = DotLock::acquire(root.join("subscriptions.lock"), owner, host, wait)?;
    let old = fsops::read_if_exists(&root.join("subscriptions"))?
        .map(|(bytes, _)| bytes)
        .unwrap_or_default();
    let entry = storage.replace('.', "\t");
    let Some(new) = with_entry(&old, entry.as_bytes()) else {
        return Ok(());
    };
    // We hold the lock, so a fixed temp name is ours.
    let tmp = "subscriptions.mailstow-tmp";
    fsops::replace_file(root, tmp, "subscriptions", &new, owner, None)
}

/// The file's new content (always version 2) with `entry` (TAB between
/// levels) at the end; None when a version 2 file already has it.
fn with_entry(old: &[u8], entry: &[u8]) -> Option<Vec<u8>> {
    let (v2, body) = match old.strip_prefix(b"V\t2\n") {
        Some(body) => (true, body),
        None => (false, old),
    };
    let mut entries: Vec<Cow<[u8]>> = body
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| {
            if v2 {
                Cow::Borrowed(line)
            } else {
                Cow::Owned(v1_to_v2(line))
            }
        })
        .collect();
    let present = entries.iter().any(|e| **e == *entry);
    if v2 && present {
        return None;
    }
    if !present {
        entries.push(Cow::Borrowed(entry));
    }
    let mut out = HEADER.to_vec();
    for e in entries {
        out.extend_from_slice(&e);
        out.push(b'\n');
    }
    Some(out)
}

/// A version 1 line ('.' between levels) as version 2: TAB between levels,
/// each level tab-escaped the way Dovecot's `str_tabescape` does.
fn v1_to_v2(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for &b in line {
        match b {
            b'.' => out.push(b'\t'),
            0x01 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, FileTimes};
    use std::time::SystemTime;

    fn subscribe_in(root: &Path, storage: &str) -> Result<(), StoreError> {
        subscribe(root, storage, None, "testhost", Duration::from_millis(300))
    }

    #[test]
    fn entries_are_added_once_in_version_2_with_tabs_between_levels() {
        let root = tempfile::tempdir().unwrap();
        subscribe_in(root.path(), "Lists.rust").unwrap();
        subscribe_in(root.path(), "Re&AOc-us").unwrap();
        subscribe_in(root.path(), "Lists.rust").unwrap();
        let content = fs::read(root.path().join("subscriptions")).unwrap();
        assert_eq!(content, b"V\t2\n\nLists\trust\nRe&AOc-us\n");
        assert!(!root.path().join("subscriptions.lock").exists());
        assert!(!root.path().join("subscriptions.mailstow-tmp").exists());
    }

    #[test]
    fn a_version_1_file_is_rewritten_as_version_2_keeping_entries() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("subscriptions");
        fs::write(&path, "INBOX\nLists.rust\n").unwrap();
        subscribe_in(root.path(), "Lists.rust").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"V\t2\n\nINBOX\nLists\trust\n");
        subscribe_in(root.path(), "Sent").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"V\t2\n\nINBOX\nLists\trust\nSent\n"
        );
    }

    #[test]
    fn a_live_lock_is_waited_for_and_then_reported() {
        let root = tempfile::tempdir().unwrap();
        let lock = root.path().join("subscriptions.lock");
        fs::write(&lock, format!("{}:testhost", std::process::id())).unwrap();
        let err = subscribe_in(root.path(), "Sent").unwrap_err();
        assert!(matches!(err, StoreError::Io { op: "lock", .. }), "{err}");
        assert!(lock.exists());
        assert!(!root.path().join("subscriptions").exists());
    }

    #[test]
    fn stale_locks_are_broken() {
        let root = tempfile::tempdir().unwrap();
        let lock = root.path().join("subscriptions.lock");
        // Old, held by a live process elsewhere.
        fs::write(&lock, "1:otherhost").unwrap();
        let old = SystemTime::now() - Duration::from_secs(200);
        let f = fs::File::options().write(true).open(&lock).unwrap();
        f.set_times(FileTimes::new().set_modified(old)).unwrap();
        subscribe_in(root.path(), "A").unwrap();
        // Fresh, held by a process of this host that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        fs::write(&lock, format!("{dead}:testhost")).unwrap();
        subscribe_in(root.path(), "B").unwrap();
        assert_eq!(
            fs::read(root.path().join("subscriptions")).unwrap(),
            b"V\t2\n\nA\nB\n"
        );
    }
}
