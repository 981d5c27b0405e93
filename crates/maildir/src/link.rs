//! Storing a message that is already durable in another folder (of this
//! Maildir or another one of the same owner) as a hard link instead of a
//! second copy, as Dovecot's maildir_copy does. Must not write message
//! bytes, nor ever publish a file that is not the very inode it was given:
//! whatever keeps it from linking is a `None` for the caller, who then
//! writes a copy.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{fsops, io_err, storage_name, Flags, Maildir, Saved, StoreError, NAME_ATTEMPTS};

/// A message file made durable by a save, which other folders may link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// Where the save put it (new/ or cur/).
    pub path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    vsize: u64,
}

impl Source {
    /// The file `saved` names, as it is now (not following a symlink).
    pub fn of(saved: &Saved) -> io::Result<Source> {
        let meta = fs::symlink_metadata(&saved.path)?;
        Ok(Source {
            path: saved.path.clone(),
            dev: meta.dev(),
            ino: meta.ino(),
            size: saved.size,
            vsize: saved.vsize,
        })
    }

    /// Is `path` this very file (same device and inode)?
    fn is(&self, path: &Path) -> bool {
        fs::symlink_metadata(path).is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }
}

impl Maildir {
    /// Stores `source` in `folder` as [`Maildir::save`] would store the same
    /// bytes (new/, or cur/ with `flags`; the folder made when `create`),
    /// but as a hard link under a fresh unique name with the source's S=
    /// and W=, then fsyncs the directory that received it. The source must
    /// be durable already and belong to this Maildir's owner: the link
    /// shares its inode (data, mtime, owner and mode).
    ///
    /// `Ok(None)`: not linked, and nothing left behind — the source is on
    /// another file system (EXDEV), gone (an IMAP client moved or
    /// expunged it), has too many links, the link is refused (EPERM,
    /// EACCES), or keywords go to Courier's per-message files; the caller
    /// writes a copy instead. An error is what a save of this folder would
    /// also fail on (an invalid folder, a directory that cannot be synced).
    pub fn save_linked(
        &self,
        folder: &str,
        create: bool,
        flags: &Flags,
        source: &Source,
    ) -> Result<Option<Saved>, StoreError> {
        if self.keyword_files.courier() && !flags.keywords().is_empty() {
            return Ok(None);
        }
        let storage = storage_name(folder, self.encoding)?;
        let dir = self.folder_dir(&storage);
        let created_folder = self.ensure_folder(folder, &storage, &dir, create)?;
        let info = self.info(&dir, flags)?;
        let dest_dir = dir.join(if info.is_some() { "cur" } else { "new" });
        let Some((path, base)) = self.link_new(source, &dest_dir, info.as_deref().unwrap_or(""))
        else {
            return Ok(None);
        };
        if let Err(e) = fsops::fsync_dir_shared(&dest_dir) {
            // Not durable, so not delivered (as in `publish`).
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(Some(Saved {
            path,
            base,
            storage_name: storage,
            size: source.size,
            vsize: source.vsize,
            created_folder,
        }))
    }

    /// Links `source` into `dest_dir` as `<fresh base><info>`, never
    /// replacing a file; the path and base, or None when it cannot (the
    /// reason logged) or what got linked is not the source's inode (then
    /// the name is removed again).
    fn link_new(&self, source: &Source, dest_dir: &Path, info: &str) -> Option<(PathBuf, String)> {
        for _ in 0..NAME_ATTEMPTS {
            let base = self.unique_base(source.size, source.vsize);
            let dest = dest_dir.join(format!("{base}{info}"));
            match fs::hard_link(&source.path, &dest) {
                Ok(()) if source.is(&dest) => return Some((dest, base)),
                Ok(()) => {
                    tracing::warn!(source = %source.path.display(), "the file to link was replaced; writing a copy");
                    if let Err(e) = fs::remove_file(&dest) {
                        let e = io_err("remove", &dest)(e);
                        tracing::error!(error = %e, "could not remove a wrong link");
                    }
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    tracing::debug!(source = %source.path.display(), error = %e, "cannot link; writing a copy");
                    return None;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Body, Content, FolderEncoding};
    use std::time::{Duration, SystemTime};

    fn saved(md: &Maildir, folder: &str) -> Saved {
        let content = Content {
            header: b"Return-Path: <s@example.org>\n",
            body: Body::Bytes(b"Subject: x\n\nhi\n"),
            bare_lf: 4,
        };
        let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        md.save(folder, true, &Flags::default(), &content, received)
            .unwrap()
    }

    #[test]
    fn a_linked_copy_is_the_same_inode_under_its_own_name_with_its_own_flags() {
        let home = tempfile::tempdir().unwrap();
        let a = Maildir::new(home.path().join("a"), None, FolderEncoding::Utf7, "mx");
        let b = Maildir::new(home.path().join("b"), None, FolderEncoding::Utf7, "mx");
        let first = saved(&a, "INBOX");
        let source = Source::of(&first).unwrap();
        let mut seen = Flags::default();
        seen.insert_imap("\\Seen");
        let linked = b
            .save_linked("Lists", true, &seen, &source)
            .unwrap()
            .unwrap();
        assert!(linked.created_folder);
        assert_ne!(linked.base, first.base);
        assert!(linked.path.starts_with(home.path().join("b/.Lists/cur")));
        assert!(linked.path.to_string_lossy().ends_with(":2,S"));
        assert_eq!((linked.size, linked.vsize), (first.size, first.vsize));
        assert!(linked
            .base
            .ends_with(&format!(",S={},W={}", first.size, first.vsize)));
        let (m1, m2) = (
            fs::metadata(&first.path).unwrap(),
            fs::metadata(&linked.path).unwrap(),
        );
        assert_eq!((m2.ino(), m2.nlink()), (m1.ino(), 2));
        // Into new/ without flags, a third name of the same file.
        let again = b.save_linked("INBOX", false, &Flags::default(), &source);
        let again = again.unwrap().unwrap();
        assert!(again.path.starts_with(home.path().join("b/new")));
        assert_eq!(fs::metadata(&first.path).unwrap().nlink(), 3);
    }

    #[test]
    fn a_source_gone_or_replaced_is_not_linked_and_leaves_nothing() {
        let home = tempfile::tempdir().unwrap();
        let a = Maildir::new(home.path().join("a"), None, FolderEncoding::Utf7, "mx");
        let b = Maildir::new(home.path().join("b"), None, FolderEncoding::Utf7, "mx");
        let first = saved(&a, "INBOX");
        let source = Source::of(&first).unwrap();
        // An IMAP client moved it new/ -> cur/.
        let moved = home.path().join("a/cur").join(format!("{}:2,", first.base));
        fs::rename(&first.path, &moved).unwrap();
        assert_eq!(
            b.save_linked("INBOX", true, &Flags::default(), &source)
                .unwrap(),
            None
        );
        assert!(b.message_files("INBOX").unwrap().is_empty());
        // Another file under the source's name is not what was saved.
        fs::write(&first.path, "Subject: other\n\n").unwrap();
        assert_eq!(
            b.save_linked("INBOX", true, &Flags::default(), &source)
                .unwrap(),
            None
        );
        assert!(b.message_files("INBOX").unwrap().is_empty());
        assert_eq!(fs::metadata(&moved).unwrap().nlink(), 1);
    }

    #[test]
    fn an_invalid_folder_is_the_saves_error() {
        let home = tempfile::tempdir().unwrap();
        let a = Maildir::new(home.path().join("a"), None, FolderEncoding::Utf7, "mx");
        let source = Source::of(&saved(&a, "INBOX")).unwrap();
        let missing = a.save_linked("Nope", false, &Flags::default(), &source);
        assert!(matches!(missing, Err(StoreError::NoSuchFolder(_))));
    }
}
