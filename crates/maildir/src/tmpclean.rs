//! The start-up sweep of Maildir tmp/ directories: below the mail root,
//! removes what a crashed writer left in each folder's tmp/ — files not
//! touched for 36 hours (the Maildir rule, as Dovecot applies it), and files
//! whose unique name says a mailstow of this host wrote them in a process
//! that no longer exists. Runs on a thread of its own so that a mail root
//! of many users delays neither the start nor the first delivery. Must not
//! remove a file that a live process may still be writing, follow a
//! symbolic link, leave the mail root, or read new/ or cur/.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::dir::{Dir, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::unistd::UnlinkatFlags;

use super::filename::escape_host;

/// A file in tmp/ untouched this long is abandoned (cr.yp.to's Maildir
/// spec; Dovecot's `MAILDIR_TMP_DELETE_SECS`).
pub const STALE_AFTER: Duration = Duration::from_secs(36 * 60 * 60);

/// Directory levels below the mail root searched for Maildirs: the default
/// home is `{mail_root}/{domain}/{local}`, its Maildir one level deeper;
/// two more allow hashed layouts. A Maildir's folders are searched too.
pub const MAX_DEPTH: usize = 5;

/// What a sweep found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// tmp/ directories read (one per Maildir++ folder).
    pub folders: u64,
    /// Files unlinked.
    pub removed: u64,
    /// Files left in place (young, or a live process's).
    pub kept: u64,
    /// Directories or files that could not be read or removed (logged).
    pub errors: u64,
}

/// Why a file in tmp/ goes, or that it stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Neither read nor written for [`STALE_AFTER`].
    Stale,
    /// Written by a mailstow of this host whose process is gone.
    Orphan,
}

/// Who this process is, as its tmp file names say it.
#[derive(Clone, Debug)]
pub struct Me {
    /// The host part of our unique names (escaped as `filename` writes it).
    pub name_host: String,
    pub pid: u32,
}

impl Me {
    pub fn new(hostname: &str) -> Me {
        Me {
            name_host: escape_host(hostname),
            pid: std::process::id(),
        }
    }
}

/// The process id in a unique name `<sec>.M<usec>P<pid>Q<n>.<host>,...`
/// when its host part is `host`; None for any other name.
pub fn our_pid(name: &str, host: &str) -> Option<u32> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (sec, rest) = name.split_once('.')?;
    let rest = rest.strip_prefix('M')?;
    let (usec, rest) = rest.split_once('P')?;
    let (pid, rest) = rest.split_once('Q')?;
    let (q, rest) = rest.split_once('.')?;
    let name_host = rest.split_once(",S=").map_or(rest, |(h, _)| h);
    if !(digits(sec) && digits(usec) && digits(q)) || name_host != host || !digits(pid) {
        return None;
    }
    pid.parse().ok().filter(|&p| p > 0)
}

/// Is process `pid` alive? A process of another user counts as alive
/// (EPERM); only ESRCH says it is gone.
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(Errno::ESRCH)
    )
}

/// The decision for one regular file in tmp/: `touched` is the later of
/// its atime and mtime (writers refresh the mtime as they write, and a
/// saver that dates a message back, as Dovecot does, sets the atime to
/// now). Stale when untouched for [`STALE_AFTER`]; an orphan when its name
/// is ours, from another process, and that process is gone; else kept.
pub fn judge(
    name: &str,
    touched: SystemTime,
    now: SystemTime,
    me: &Me,
    alive: impl Fn(u32) -> bool,
) -> Verdict {
    if now
        .duration_since(touched)
        .is_ok_and(|age| age > STALE_AFTER)
    {
        return Verdict::Stale;
    }
    match our_pid(name, &me.name_host) {
        Some(pid) if pid != me.pid && !alive(pid) => Verdict::Orphan,
        _ => Verdict::Keep,
    }
}

/// Starts the sweep of `mail_root` on a background thread that logs one
/// line when done. A thread that cannot start is logged: the sweep is
/// housekeeping, never a reason not to serve.
pub fn spawn(mail_root: &Path, hostname: &str) {
    let (root, me) = (mail_root.to_path_buf(), Me::new(hostname));
    let started = std::thread::Builder::new()
        .name("tmp-sweep".into())
        .spawn(move || {
            let t = Instant::now();
            let r = sweep(&root, &me, SystemTime::now());
            tracing::info!(
                mail_root = %root.display(),
                folders = r.folders,
                removed = r.removed,
                kept = r.kept,
                errors = r.errors,
                ms = t.elapsed().as_millis() as u64,
                "tmp/ cleanup done"
            );
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "tmp/ cleanup not started");
    }
}

/// Sweeps every Maildir found below `mail_root` (within [`MAX_DEPTH`]
/// levels): each folder's tmp/ loses its stale and orphaned files.
/// Blocking. Every directory is opened relative to its parent with
/// O_NOFOLLOW, so no symbolic link is followed at any level.
pub fn sweep(mail_root: &Path, me: &Me, now: SystemTime) -> Report {
    let mut r = Report::default();
    match open_dir(nix::fcntl::AT_FDCWD, mail_root.as_os_str()) {
        Ok(dir) => walk(dir, mail_root.to_path_buf(), 0, me, now, &mut r),
        // Nothing delivered yet.
        Err(Errno::ENOENT) => {}
        Err(e) => failed(&mut r, "open", mail_root, e),
    }
    r
}

fn open_dir(parent: BorrowedFd<'_>, name: &OsStr) -> nix::Result<Dir> {
    Dir::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn failed(r: &mut Report, op: &str, path: &Path, e: Errno) {
    r.errors += 1;
    tracing::warn!(path = %path.display(), error = %e, "tmp/ cleanup: {op} failed");
}

/// One directory entry: its name, and whether it is a directory (never
/// true for a symlink).
struct Entry {
    name: Vec<u8>,
    is_dir: bool,
}

fn entries(dir: &mut Dir, path: &Path, r: &mut Report) -> Vec<Entry> {
    // SAFETY: `dir` owns this open descriptor and outlives every use of
    // `fd` below; the iterator borrows `dir` mutably, hence the raw copy.
    let fd = unsafe { BorrowedFd::borrow_raw(dir.as_raw_fd()) };
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                failed(r, "readdir", path, err);
                break;
            }
        };
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            Some(t) => t == Type::Directory,
            // The file system does not say: ask without following a link.
            None => lstat_at(fd, e.file_name()).is_ok_and(|st| is_type(&st, libc::S_IFDIR)),
        };
        out.push(Entry {
            name: name.to_vec(),
            is_dir,
        });
    }
    out
}

fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> nix::Result<FileStat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn is_type(st: &FileStat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

/// A directory below the mail root at `depth`: a Maildir (it has cur/ and
/// tmp/) is swept with its folders; any other is searched further.
fn walk(mut dir: Dir, path: PathBuf, depth: usize, me: &Me, now: SystemTime, r: &mut Report) {
    let list = entries(&mut dir, &path, r);
    let has = |n: &[u8]| list.iter().any(|e| e.is_dir && e.name == n);
    if has(b"cur") && has(b"tmp") {
        sweep_folder(&dir, &path, me, now, r);
        for e in list.iter().filter(|e| e.is_dir && is_folder_name(&e.name)) {
            let name = OsStr::from_bytes(&e.name);
            let sub = path.join(name);
            match open_dir(dir.as_fd(), name) {
                Ok(folder) => sweep_folder(&folder, &sub, me, now, r),
                Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => {}
                Err(e) => failed(r, "open", &sub, e),
            }
        }
        return;
    }
    if depth >= MAX_DEPTH {
        return;
    }
    for e in list.iter().filter(|e| e.is_dir) {
        let name = OsStr::from_bytes(&e.name);
        let sub = path.join(name);
        match open_dir(dir.as_fd(), name) {
            Ok(child) => walk(child, sub, depth + 1, me, now, r),
            // Gone, or swapped for a link since the listing.
            Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => {}
            Err(e) => failed(r, "open", &sub, e),
        }
    }
}

/// `.Name` (a Maildir++ folder), not `.` or `..`.
fn is_folder_name(name: &[u8]) -> bool {
    name.len() > 1 && name[0] == b'.' && name != b".."
}

/// Sweeps `folder`/tmp/ (a folder without tmp/ has nothing to sweep).
fn sweep_folder(folder: &Dir, path: &Path, me: &Me, now: SystemTime, r: &mut Report) {
    let tmp_path = path.join("tmp");
    let mut tmp = match open_dir(folder.as_fd(), OsStr::new("tmp")) {
        Ok(d) => d,
        Err(Errno::ENOENT | Errno::ELOOP | Errno::ENOTDIR) => return,
        Err(e) => return failed(r, "open", &tmp_path, e),
    };
    r.folders += 1;
    let list = entries(&mut tmp, &tmp_path, r);
    let fd = tmp.as_fd();
    for e in list.iter().filter(|e| !e.is_dir) {
        let Ok(cname) = std::ffi::CString::new(e.name.clone()) else {
            continue;
        };
        let st = match lstat_at(fd, &cname) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(err) => {
                failed(r, "stat", &tmp_path.join(OsStr::from_bytes(&e.name)), err);
                continue;
            }
        };
        // Only regular files: a link or anything else is not a message.
        if !is_type(&st, libc::S_IFREG) {
            continue;
        }
        let touched = UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(st.st_atime).max(0) as u64);
        let name = String::from_utf8_lossy(&e.name);
        let verdict = judge(&name, touched, now, me, process_alive);
        if verdict == Verdict::Keep {
            r.kept += 1;
            continue;
        }
        match nix::unistd::unlinkat(fd, cname.as_c_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                r.removed += 1;
                tracing::debug!(path = %tmp_path.join(OsStr::from_bytes(&e.name)).display(), ?verdict, "tmp/ file removed");
            }
            Err(Errno::ENOENT) => {}
            Err(err) => failed(r, "unlink", &tmp_path.join(OsStr::from_bytes(&e.name)), err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, FileTimes};

    const HOST: &str = "mx.test";

    fn me() -> Me {
        Me::new(HOST)
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    /// A pid that no process has: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn name(pid: u32, host: &str) -> String {
        format!("1795877462.M255352P{pid}Q7.{host},S=236,W=246")
    }

    #[test]
    fn our_pid_reads_only_names_of_this_host() {
        assert_eq!(our_pid(&name(4242, HOST), HOST), Some(4242));
        assert_eq!(our_pid("1795877462.M1P4242Q1.mx.test", HOST), Some(4242));
        // Another host, one that only starts like ours, another writer's form.
        assert_eq!(our_pid(&name(4242, "mx.test2"), HOST), None);
        assert_eq!(our_pid(&name(4242, "other"), HOST), None);
        assert_eq!(our_pid("1795877462.M255352P4242.mx.test,S=1", HOST), None);
        assert_eq!(our_pid("1795877462.P4242Q1.mx.test", HOST), None);
        assert_eq!(our_pid("x.M1P4242Q1.mx.test", HOST), None);
        assert_eq!(our_pid("1.M1P0Q1.mx.test", HOST), None);
        assert_eq!(our_pid("1.M1P99999999999Q1.mx.test", HOST), None);
        assert_eq!(our_pid("dovecot-uidlist.lock", HOST), None);
        // The host is compared as names write it (escaped).
        let me = Me::new("mx/1,a");
        assert_eq!(
            our_pid("1.M1P77Q1.mx\\0571\\054a,S=1,W=1", &me.name_host),
            Some(77)
        );
    }

    #[test]
    fn judge_removes_old_files_and_dead_processes_files_only() {
        let now = SystemTime::now();
        let me = me();
        let dead = |_| false;
        let alive = |_| true;
        let young = now - hours(1);
        let old = now - hours(37);
        // Anything untouched for 36 h goes, whoever wrote it.
        assert_eq!(judge("anything", old, now, &me, alive), Verdict::Stale);
        assert_eq!(
            judge(&name(1, "other"), old, now, &me, alive),
            Verdict::Stale
        );
        assert_eq!(
            judge(
                "x",
                now - hours(36) + Duration::from_secs(60),
                now,
                &me,
                dead
            ),
            Verdict::Keep
        );
        // Young: only ours, of another process, and that one dead.
        assert_eq!(
            judge(&name(7, HOST), young, now, &me, dead),
            Verdict::Orphan
        );
        assert_eq!(judge(&name(7, HOST), young, now, &me, alive), Verdict::Keep);
        assert_eq!(
            judge(&name(me.pid, HOST), young, now, &me, dead),
            Verdict::Keep
        );
        assert_eq!(
            judge(&name(7, "other"), young, now, &me, dead),
            Verdict::Keep
        );
        assert_eq!(judge("foreign.tmp", young, now, &me, dead), Verdict::Keep);
        // A file from the future (clock stepped back) is young.
        assert_eq!(judge("x", now + hours(50), now, &me, dead), Verdict::Keep);
    }

    #[test]
    fn liveness_is_read_from_the_kernel() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(dead_pid()));
        assert!(!process_alive(u32::MAX));
    }

    fn age(path: &Path, by: Duration) {
        let t = SystemTime::now() - by;
        let f = fs::File::options().write(true).open(path).unwrap();
        f.set_times(FileTimes::new().set_accessed(t).set_modified(t))
            .unwrap();
    }

    fn maildir(root: &Path) {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_walk_sweeps_every_folder_and_follows_no_link() {
        let base = tempfile::tempdir().unwrap();
        let root = base.path().join("mail");
        let md = root.join("example.org/alice/Maildir");
        maildir(&md);
        maildir(&md.join(".Lists.rust"));
        fs::write(md.join(".Lists.rust/maildirfolder"), "").unwrap();
        let dead = dead_pid();
        let me = me();
        let files = [
            (md.join("tmp").join(name(dead, HOST)), false),
            (md.join("tmp").join(name(me.pid, HOST)), false),
            (md.join("tmp").join(name(dead, "other.host")), false),
            (md.join("tmp/old-foreign"), true),
            (md.join(".Lists.rust/tmp").join(name(dead, HOST)), false),
            (md.join(".Lists.rust/tmp/old"), true),
        ];
        for (p, old) in &files {
            fs::write(p, "x").unwrap();
            if *old {
                age(p, hours(40));
            }
        }
        // Messages are never looked at, however old or named.
        let msg = md.join("new").join(name(dead, HOST));
        fs::write(&msg, "m").unwrap();
        age(&msg, hours(400));
        // Outside the mail root, reached through links: must stay.
        let outside = base.path().join("outside");
        maildir(&outside);
        let bait = outside.join("tmp").join(name(dead, HOST));
        fs::write(&bait, "x").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("example.org/linked")).unwrap();
        let bob = root.join("example.org/bob");
        fs::create_dir_all(&bob).unwrap();
        std::os::unix::fs::symlink(&outside, bob.join("Maildir")).unwrap();
        let carol = root.join("example.org/carol/Maildir");
        fs::create_dir_all(carol.join("cur")).unwrap();
        std::os::unix::fs::symlink(outside.join("tmp"), carol.join("tmp")).unwrap();
        std::os::unix::fs::symlink(outside.join("tmp/x"), md.join("tmp/link")).unwrap();
        // Too deep to be searched.
        let deep = root.join("a/b/c/d/e/f/Maildir");
        maildir(&deep);
        fs::write(deep.join("tmp").join(name(dead, HOST)), "x").unwrap();

        let r = sweep(&root, &me, SystemTime::now());
        let mut kept = vec![name(dead, "other.host"), name(me.pid, HOST), "link".into()];
        kept.sort();
        assert_eq!(names(&md.join("tmp")), kept);
        assert!(names(&md.join(".Lists.rust/tmp")).is_empty());
        assert!(msg.exists());
        assert!(bait.exists(), "a symlink was followed");
        assert_eq!(names(&deep.join("tmp")).len(), 1);
        assert_eq!(
            r,
            Report {
                folders: 2,
                removed: 4,
                kept: 2,
                errors: 0
            }
        );
    }

    #[test]
    fn a_missing_mail_root_is_nothing_to_do() {
        let base = tempfile::tempdir().unwrap();
        let r = sweep(&base.path().join("none"), &me(), SystemTime::now());
        assert_eq!(r, Report::default());
    }
}
