//! How a saved message and its directory entry reach stable storage: each
//! with its own fsync ([`Flush::PerFile`], the default), or, for
//! deliveries that run at the same time on one file system, together
//! ([`Flush::Grouped`]): one `syncfs` writes every waiting message's data
//! and inode and ends with one cache flush, then the links, then one
//! `syncfs` for every directory entry. Must not let a caller return before
//! a flush that started after its last write has completed, nor hide a
//! write error of its own file; must not change what a lone delivery does.
//!
//! # Why a grouped batch is as durable as per-file fsyncs
//!
//! - File phase. `syncfs(fd)` writes back every dirty page and inode of the
//!   file system and waits for them (so every member's data and size, all
//!   written before the batch started), then has the file system make them
//!   durable: a journal commit (ext4, XFS) or a cache flush (ext4 without
//!   a journal). Without a journal it writes the inode table blocks after
//!   that flush, so the leader then `fdatasync`s its own, already clean,
//!   file: that issues one more cache flush, after those writes completed.
//!   Each member then asks the kernel, on its own descriptor, for any
//!   write-back error of its file since it opened it (`sync_file_range`
//!   with WAIT_AFTER reports the file's error sequence, as fsync does): a
//!   page that failed to write fails that delivery, not the batch's
//!   others. `syncfs` itself fails the batch on any error it saw.
//! - Directory phase, after the links: the same two calls on a directory
//!   one of the members opened before its link. When every member linked
//!   into one directory, its fsync alone is enough, as in per-file mode.
//! - A batch of one is exactly the per-file protocol (fsync of the file,
//!   fsync of its directory).
//!
//! The cost: `syncfs` also writes whatever else is dirty on that file
//! system (another program's files), so a busy shared file system makes
//! every batch slower; it pays off only when many deliveries share a
//! flush the kernel would not already merge (BENCHMARKS.md measures it).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::LazyLock;

use crate::dirsync::Batches;

/// How message files and their directory entries are made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum Flush {
    /// An fsync of each file and of its directory (concurrent deliveries
    /// into one directory share the directory's).
    #[default]
    PerFile,
    /// Deliveries on one file system at the same time share a `syncfs`
    /// for their files and one for their directory entries.
    Grouped,
}

/// Batches by file system (st_dev); a member's token is a descriptor it
/// holds open until the batch's result is in.
static FILES: LazyLock<Batches<u64, RawFd>> = LazyLock::new(Batches::new);
static DIRS: LazyLock<Batches<u64, (RawFd, u64)>> = LazyLock::new(Batches::new);

/// Makes `file`'s data and size durable together with the other files of
/// its file system being saved now.
pub(crate) fn file_grouped(file: &File) -> io::Result<()> {
    let dev = file.metadata()?.dev();
    FILES.join(&dev, file.as_raw_fd(), |fds| {
        if let [fd] = fds {
            return fsync(*fd);
        }
        syncfs(fds[0])?;
        fdatasync(fds[0])
    })?;
    own_write_error(file.as_raw_fd())
}

/// Makes the entries linked into `dir` (opened before the link) durable
/// together with the other directories of its file system linked into now.
pub(crate) fn dir_grouped(dir: &File) -> io::Result<()> {
    let meta = dir.metadata()?;
    DIRS.join(&meta.dev(), (dir.as_raw_fd(), meta.ino()), |dirs| {
        let (fd, ino) = dirs[0];
        if dirs.iter().all(|&(_, i)| i == ino) {
            return fsync_dir(fd);
        }
        syncfs(fd)?;
        fsync_dir(fd)
    })
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn fsync(fd: RawFd) -> io::Result<()> {
    // SAFETY: fd is a member's open descriptor; its owner waits for this batch.
    check(unsafe { libc::fsync(fd) })
}

fn fdatasync(fd: RawFd) -> io::Result<()> {
    // SAFETY: as in `fsync`.
    check(unsafe { libc::fdatasync(fd) })
}

fn syncfs(fd: RawFd) -> io::Result<()> {
    // SAFETY: as in `fsync`.
    check(unsafe { libc::syncfs(fd) })
}

/// A directory fsync, which some file systems refuse (as `fsops` allows).
fn fsync_dir(fd: RawFd) -> io::Result<()> {
    match fsync(fd) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EBADF)) => Ok(()),
        r => r,
    }
}

/// Any write-back error of this descriptor's file since it was opened (or
/// last reported), without a flush: the batch's flush wrote its pages.
fn own_write_error(fd: RawFd) -> io::Result<()> {
    let how = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: fd is the caller's open descriptor.
    check(unsafe { libc::sync_file_range(fd, 0, 0, how) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn concurrent_saves_on_one_file_system_all_return_ok_with_their_files_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = dir.path().join(format!("d{i}"));
                s.spawn(move || {
                    std::fs::create_dir(&path).unwrap();
                    let mut f = File::create(path.join("tmp")).unwrap();
                    f.write_all(format!("message {i}").as_bytes()).unwrap();
                    file_grouped(&f).unwrap();
                    let d = File::open(&path).unwrap();
                    std::fs::rename(path.join("tmp"), path.join("new")).unwrap();
                    dir_grouped(&d).unwrap();
                });
            }
        });
        for i in 0..8 {
            let new = dir.path().join(format!("d{i}/new"));
            assert_eq!(
                std::fs::read_to_string(new).unwrap(),
                format!("message {i}")
            );
        }
    }

    #[test]
    fn a_file_that_cannot_be_flushed_fails_its_own_save() {
        // fsync of a character device is EINVAL: the caller sees it.
        let dev_null = File::options().write(true).open("/dev/null").unwrap();
        let e = file_grouped(&dev_null).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn a_closed_descriptor_fails_its_batch_with_the_error() {
        // Not a real file: the flush's error is what the caller gets back.
        let e = FILES.join(&u64::MAX, -1, |fds| fsync(fds[0])).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    }
}
