//! File-system steps the store builds on: directories and files created with
//! exact modes and owners, fsync of paths, a positional body copy, a checked
//! close, a guard that unlinks an unfinished tmp file, and reading and
//! replacing (write-temp, fsync, rename) small control files. Must not follow
//! a symlink for anything it reads, creates or changes the owner of.

use std::fs::{self, DirBuilder, File, FileTimes, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;

use super::dirsync::DirSync;
use super::{io_err, Owner, StoreError};

const DIR_MODE: u32 = 0o700;
/// Directories above a home (mail_root/domain) are shared by the users
/// below them: traversable by all, listable by none.
pub(super) const SHARED_DIR_MODE: u32 = 0o711;
const FILE_MODE: u32 = 0o600;

/// Creates a directory 0700 owned by `owner`. Ok(false) if it already
/// exists (another delivery may be creating the same folder right now).
pub fn make_dir(path: &Path, owner: Option<Owner>) -> Result<bool, StoreError> {
    make_dir_mode(path, DIR_MODE, owner)
}

/// As `make_dir`, with explicit permission bits.
pub(super) fn make_dir_mode(
    path: &Path,
    mode: u32,
    owner: Option<Owner>,
) -> Result<bool, StoreError> {
    match DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(io_err("mkdir", path)(e)),
    }
    // Through a descriptor, so a directory swapped for a symlink is not followed.
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err("open", path))?;
    set_mode_owner(&dir, mode, owner).map_err(io_err("chmod/chown", path))?;
    Ok(true)
}

/// Creates a new file (O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC) 0600 owned by
/// `owner`, open for writing. AlreadyExists is left for the caller to judge.
///
/// Created by root, the file is readable by all until it is chowned (inside
/// the user's 0700 Maildir, so only the user and root can reach it): a
/// Dovecot process of the user that opens or watches it (Dovecot puts an
/// inotify watch on a lock it waits for) in that instant would otherwise
/// get EACCES and log an error.
pub fn create_file(path: &Path, owner: Option<Owner>) -> io::Result<File> {
    let initial = if owner.is_some() { 0o644 } else { FILE_MODE };
    // std adds O_CLOEXEC; create_new is O_CREAT|O_EXCL.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(initial)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if let Err(e) = set_mode_owner(&file, FILE_MODE, owner) {
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(file)
}

/// The owner, then exact permission bits whatever the umask (in this
/// order, so the user can read it all along).
fn set_mode_owner(file: &File, mode: u32, owner: Option<Owner>) -> io::Result<()> {
    if let Some(o) = owner {
        std::os::unix::fs::fchown(file, Some(o.uid), Some(o.gid))?;
    }
    file.set_permissions(Permissions::from_mode(mode))
}

/// fsync a file or directory by path.
pub fn fsync_path(path: &Path) -> Result<(), StoreError> {
    fsync_dir(path).map_err(io_err("fsync", path))
}

/// As [`fsync_path`], shared with the other threads syncing the same
/// directory at the same time (group commit, see `dirsync`): returns once
/// an fsync of `dir` that started after this call has succeeded.
pub fn fsync_dir_shared(dir: &Path) -> Result<(), StoreError> {
    type Fsync = fn(&Path) -> io::Result<()>;
    static SHARED: std::sync::LazyLock<DirSync<Fsync>> =
        std::sync::LazyLock::new(|| DirSync::new(fsync_dir));
    SHARED.sync(dir).map_err(io_err("fsync", dir))
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    if crate::skip_flush("dir") {
        return Ok(());
    }
    let t = std::time::Instant::now();
    let synced = file.sync_all();
    crate::fsynced(crate::Synced::Directory, t.elapsed());
    match synced {
        // Like Dovecot: some file systems cannot fsync a directory at all.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EBADF)) => Ok(()),
        r => r,
    }
}

/// Gives the file at `from` the name `to` without ever replacing a file
/// there (AlreadyExists instead): one rename(2) with RENAME_NOREPLACE, or
/// where the file system cannot do that, link(2), leaving `from` for the
/// caller to unlink. Ok(true) when `from` is gone.
pub fn move_new(from: &Path, to: &Path) -> io::Result<bool> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EINVAL | Errno::ENOSYS | Errno::ENOTSUP) => {
            fs::hard_link(from, to).map(|()| false)
        }
        Err(e) => Err(e.into()),
    }
}

/// close(2), reporting its error (some file systems report write errors
/// only here), unlike dropping a File.
pub(super) fn close(file: File) -> io::Result<()> {
    nix::unistd::close(file.into_raw_fd()).map_err(io::Error::from)
}

/// `path` opened for reading without following a symlink; None when it
/// does not exist.
fn open_if_exists(path: &Path) -> Result<Option<File>, StoreError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("open", path)(e)),
    }
}

/// A whole small file and its metadata, read without following a symlink;
/// None when it does not exist.
pub(super) fn read_if_exists(path: &Path) -> Result<Option<(Vec<u8>, Metadata)>, StoreError> {
    let Some(mut file) = open_if_exists(path)? else {
        return Ok(None);
    };
    let meta = file.metadata().map_err(io_err("stat", path))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(io_err("read", path))?;
    Ok(Some((buf, meta)))
}

/// A whole file of at most `max` bytes (larger: an error), read without
/// following a symlink; None when it does not exist. For control files
/// other programs write (Courier's), so none can make us hold more.
pub fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(file) = open_if_exists(path)? else {
        return Ok(None);
    };
    let mut buf = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    if buf.len() as u64 > max {
        let source = io::Error::new(io::ErrorKind::InvalidData, "file too large");
        return Err(io_err("read", path)(source));
    }
    Ok(Some(buf))
}

/// Replaces `dir/name` with `content` without ever editing it in place:
/// writes `dir/tmp_name` (a leftover of a crash is removed first: the
/// caller holds the lock that makes this name its own), sets its mtime if
/// asked, fsyncs, closes, renames it over `name` and fsyncs `dir`.
pub fn replace_file(
    dir: &Path,
    tmp_name: &str,
    name: &str,
    content: &[u8],
    owner: Option<Owner>,
    mtime: Option<SystemTime>,
) -> Result<(), StoreError> {
    let tmp = dir.join(tmp_name);
    let path = dir.join(name);
    let _ = fs::remove_file(&tmp);
    let file = create_file(&tmp, owner).map_err(io_err("create", &tmp))?;
    let guard = TmpGuard::new(tmp.clone());
    (&file).write_all(content).map_err(io_err("write", &tmp))?;
    if let Some(t) = mtime {
        let times = FileTimes::new().set_accessed(t).set_modified(t);
        file.set_times(times)
            .map_err(io_err("set times of", &tmp))?;
    }
    file.sync_all().map_err(io_err("fsync", &tmp))?;
    close(file).map_err(io_err("close", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename into", &path))?;
    guard.disarm();
    fsync_path(dir)
}

/// Appends bytes `0..len` of `src` to `dst` without using or moving `src`'s
/// seek position, so one spool file can be copied to many recipients.
/// Returns the bytes copied: fewer than `len` only if `src` is shorter.
pub(super) fn copy_range(src: &File, dst: &File, len: u64) -> io::Result<u64> {
    let mut done = 0u64;
    // In-kernel copy; on file systems or kernels without it, read and write.
    while done < len {
        let mut src_off = done as libc::loff_t;
        let chunk = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors stay open for the call and `src_off` is a
        // valid loff_t; a null output offset means "at dst's position".
        let copied = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut src_off,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                chunk,
                0,
            )
        };
        match Errno::result(copied) {
            Ok(0) => break, // end of file, or a file system that copies nothing: the loop below decides
            Ok(n) => done += n as u64,
            Err(Errno::EINTR) => {}
            Err(
                Errno::ENOSYS | Errno::EXDEV | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EPERM,
            ) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let mut buf = vec![0u8; (len - done).min(128 * 1024) as usize];
    while done < len {
        let want = (len - done).min(buf.len() as u64) as usize;
        match src.read_at(&mut buf[..want], done) {
            Ok(0) => break,
            Ok(n) => {
                (&*dst).write_all(&buf[..n])?;
                done += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A file in tmp/ that is unlinked when the guard drops, unless removed or
/// disarmed first: every early return leaves nothing behind.
pub(super) struct TmpGuard {
    path: PathBuf,
    armed: bool,
}

impl TmpGuard {
    pub(super) fn new(path: PathBuf) -> TmpGuard {
        TmpGuard { path, armed: true }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed away: nothing left to unlink.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }

    /// Unlinks now, reporting the error.
    pub(super) fn remove(mut self) -> Result<(), StoreError> {
        self.armed = false;
        fs::remove_file(&self.path).map_err(io_err("unlink", &self.path))
    }
}

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn move_new_never_replaces_a_file_and_reports_whether_the_source_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, "new").unwrap();
        fs::write(&b, "old").unwrap();
        let e = move_new(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&b).unwrap(), "old");
        let c = d.path().join("c");
        let gone = move_new(&a, &c).unwrap();
        assert_eq!(fs::read_to_string(&c).unwrap(), "new");
        assert_eq!(a.exists(), !gone);
    }

    #[test]
    fn copy_range_ignores_the_seek_position_and_reports_short_sources() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = tempfile::tempfile_in(dir.path()).unwrap();
        src.write_all(b"0123456789").unwrap();
        src.seek(SeekFrom::Start(7)).unwrap();
        let dst_path = dir.path().join("out");
        let dst = create_file(&dst_path, None).unwrap();
        (&dst).write_all(b">").unwrap();
        assert_eq!(copy_range(&src, &dst, 4).unwrap(), 4);
        assert_eq!(copy_range(&src, &dst, 20).unwrap(), 10);
        assert_eq!(fs::read(&dst_path).unwrap(), b">01230123456789");
        assert_eq!(src.stream_position().unwrap(), 7);
    }

    #[test]
    fn created_files_and_dirs_get_exact_modes_and_refuse_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        assert!(make_dir(&d, None).unwrap());
        assert!(!make_dir(&d, None).unwrap());
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        let f = d.join("f");
        create_file(&f, None).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o600
        );
        assert_eq!(
            create_file(&f, None).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let link = d.join("link");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(create_file(&link, None).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }
}
