//! Dovecot-compatible dotlocks (`dovecot-uidlist.lock`, `subscriptions.lock`;
//! docs/maildir.md, 'Dot-locks'): a file created with O_EXCL holding
//! `<pid>:<host>`, broken when older than 120 s or when its pid, on this
//! host, no longer exists; waited for with backoff; unlinked on drop. Must
//! not remove a lock that another holder has taken meanwhile, and must not
//! hold one for long.

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::fsops;
use super::{io_err, Owner, StoreError};

/// Dovecot's dotlock convention: a lock unchanged this long is abandoned.
const STALE_AFTER: Duration = Duration::from_secs(120);
/// How long a delivery waits for a lock before failing temporarily.
pub const WAIT: Duration = Duration::from_secs(10);
/// First and longest pause between attempts.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// A held dotlock, unlinked on drop if it is still ours.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
    /// Kept open to know our lock file on drop: if we were judged stale (a
    /// holder stuck for two minutes), another process may hold a new lock
    /// under the same name, which drop must leave alone. The open file pins
    /// its inode, so the new one cannot have the same inode number.
    file: File,
}

impl DotLock {
    /// Takes the lock at `path`, breaking a stale one, waiting up to `wait`.
    /// A timeout is an `Io` error with op "lock" (temporary).
    pub fn acquire(
        path: PathBuf,
        owner: Option<Owner>,
        host: &str,
        wait: Duration,
    ) -> Result<DotLock, StoreError> {
        let deadline = Instant::now() + wait;
        let mut pause = FIRST_PAUSE;
        loop {
            match fsops::create_file(&path, owner) {
                Ok(file) => return DotLock::fill(path, file, host),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", &path)(e)),
            }
            if break_if_stale(&path, host) {
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                let source = io::Error::new(io::ErrorKind::TimedOut, "held by another process");
                return Err(StoreError::Io {
                    op: "lock",
                    path,
                    source,
                });
            }
            std::thread::sleep(jittered(pause).min(deadline - now));
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    fn fill(path: PathBuf, file: File, host: &str) -> Result<DotLock, StoreError> {
        // From here on, an error drops (and so unlinks) the lock.
        let lock = DotLock { path, file };
        let content = format!("{}:{host}", std::process::id());
        (&lock.file)
            .write_all(content.as_bytes())
            .map_err(io_err("write", &lock.path))?;
        Ok(lock)
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Ok(mine) = self.file.metadata() {
            if same_file(&self.path, &mine) {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes the lock at `path` if it is stale: unchanged for two minutes,
/// or held by a process of this host that no longer exists. True when the
/// caller should try again at once (removed, or already gone).
fn break_if_stale(path: &Path, host: &str) -> bool {
    let mut file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return e.kind() == io::ErrorKind::NotFound,
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER);
    let mut content = String::new();
    // A lock holds "pid:host"; anything longer is not worth reading.
    let _ = (&mut file).take(512).read_to_string(&mut content);
    if !old && !holder_is_dead(&content, host) {
        return false;
    }
    // Unlink only the file judged (still open, so its inode number cannot
    // have been reused), not one a new holder created since.
    if same_file(path, &meta) {
        tracing::warn!(path = %path.display(), holder = content.trim_end(), "breaking a stale lock");
        let _ = fs::remove_file(path);
    }
    true
}

/// Is `path` (not following a symlink) the file that `open` describes?
fn same_file(path: &Path, open: &fs::Metadata) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == (open.dev(), open.ino()))
}

/// "pid:host" naming this host and a pid that does not exist.
fn holder_is_dead(content: &str, host: &str) -> bool {
    match content.trim_end().split_once(':') {
        Some((pid, holder)) if holder == host => pid
            .parse::<i32>()
            .is_ok_and(|pid| pid > 0 && kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH)),
        _ => false,
    }
}

/// Between half and all of `pause`, so that waiters do not retry in step.
fn jittered(pause: Duration) -> Duration {
    let random = std::hash::RandomState::new().build_hasher().finish();
    let half = pause / 2;
    half + Duration::from_nanos(random % (half.as_nanos() as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::FileTimes;
    use std::time::SystemTime;

    const HOST: &str = "testhost";

    fn acquire(path: &Path, wait: Duration) -> Result<DotLock, StoreError> {
        DotLock::acquire(path.to_owned(), None, HOST, wait)
    }

    /// Reports when a file is opened (inotify IN_OPEN). A waiter opens a
    /// held lock to judge whether it is stale, which it does only after its
    /// own create failed: the test sees it waiting instead of guessing.
    struct OpenWatch(File);

    impl OpenWatch {
        fn new(path: &Path) -> OpenWatch {
            use std::os::unix::ffi::OsStrExt;
            use std::os::unix::io::FromRawFd;
            // SAFETY: inotify_init1 returns a new descriptor (or -1), owned
            // by the File from here on.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            assert!(fd >= 0, "inotify_init1: {}", io::Error::last_os_error());
            let file = unsafe { File::from_raw_fd(fd) };
            let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid descriptor and a NUL-terminated path.
            let wd = unsafe { libc::inotify_add_watch(fd, name.as_ptr(), libc::IN_OPEN) };
            assert!(wd >= 0, "inotify_add_watch: {}", io::Error::last_os_error());
            OpenWatch(file)
        }

        /// Blocks until the file has been opened (again); a minute without
        /// is a failure, not a hang.
        fn wait(&mut self) {
            use std::os::unix::io::AsRawFd;
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut pfd, 1, 60_000) };
            assert_eq!(ready, 1, "the file was never opened");
            let mut events = [0u8; 4096];
            let n = self.0.read(&mut events).expect("read inotify events");
            assert!(n > 0);
        }
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_lock_holds_pid_and_host_and_is_gone_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let lock = acquire(&path, Duration::ZERO).unwrap();
        let content = fs::read_to_string(&path).unwrap();
        assert_eq!(content, format!("{}:{HOST}", std::process::id()));
        drop(lock);
        assert!(!path.exists());
    }

    #[test]
    fn a_live_lock_is_waited_for_then_reported_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = acquire(&path, Duration::ZERO).unwrap();
        let started = Instant::now();
        let err = acquire(&path, Duration::from_millis(200)).unwrap_err();
        // A lower bound the deadline guarantees, however loaded the machine.
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert!(matches!(err, StoreError::Io { op: "lock", .. }), "{err}");
        assert!(path.exists());
        drop(held);
        acquire(&path, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_lock_released_while_waiting_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = acquire(&path, Duration::ZERO).unwrap();
        let mut opened = OpenWatch::new(&path);
        // A wait far longer than the test needs: it ends by the release.
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || acquire(&path, Duration::from_secs(60)).map(|_| ()))
        };
        // The waiter found the lock taken and is judging it.
        opened.wait();
        drop(held);
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn old_locks_and_locks_of_dead_local_processes_are_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        // Old, held by a live process elsewhere.
        fs::write(&path, "1:otherhost").unwrap();
        let old = SystemTime::now() - Duration::from_secs(200);
        let f = fs::File::options().write(true).open(&path).unwrap();
        f.set_times(FileTimes::new().set_modified(old)).unwrap();
        drop(acquire(&path, Duration::ZERO).unwrap());
        // Fresh, held by a process of this host that has exited.
        fs::write(&path, format!("{}:{HOST}", dead_pid())).unwrap();
        drop(acquire(&path, Duration::ZERO).unwrap());
    }

    #[test]
    fn fresh_locks_of_other_hosts_or_live_processes_are_not_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        for content in [
            format!("{}:otherhost", dead_pid()),
            format!("{}:{HOST}", std::process::id()),
            String::new(),
            "garbage".to_owned(),
        ] {
            fs::write(&path, &content).unwrap();
            let err = acquire(&path, Duration::from_millis(20)).unwrap_err();
            assert!(
                matches!(err, StoreError::Io { op: "lock", .. }),
                "{content}"
            );
            assert_eq!(fs::read_to_string(&path).unwrap(), content);
        }
    }

    #[test]
    fn dropping_a_lock_that_was_broken_and_retaken_leaves_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = acquire(&path, Duration::ZERO).unwrap();
        // Another process judged it stale and took the lock.
        fs::remove_file(&path).unwrap();
        fs::write(&path, "1:otherhost").unwrap();
        drop(first);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1:otherhost");
    }
}
