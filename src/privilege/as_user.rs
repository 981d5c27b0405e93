//! One thread's file-system identity for one delivery: [`AsUser::enter`]
//! gives the calling thread a user's fsuid, fsgid and supplementary groups
//! (per-thread system calls, never glibc's process-wide setgroups), checks
//! that each took effect, and its guard restores the thread's own identity
//! on drop. Must not change the process's real, effective or saved ids, nor
//! any other thread's; must not be held across an await (the guard is not
//! `Send`).

use std::cell::Cell;
use std::ffi::CString;
use std::marker::PhantomData;

/// Who a delivery acts as: the account's uid, primary gid and groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included), as `initgroups`
    /// would give the account.
    pub groups: Vec<u32>,
}

impl Identity {
    /// `name`'s identity, its groups from the group database
    /// (getgrouplist: files, LDAP through NSS). Blocking.
    pub fn of_account(name: &str, uid: u32, gid: u32) -> Result<Identity, String> {
        let c = CString::new(name).map_err(|_| format!("account {name:?}: NUL in the name"))?;
        let groups = nix::unistd::getgrouplist(&c, nix::unistd::Gid::from_raw(gid))
            .map_err(|e| format!("groups of {name:?}: {e}"))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        Ok(Identity { uid, gid, groups })
    }
}

thread_local! {
    /// The uid this thread acts as under an [`AsUser`], if any.
    static ACTING: Cell<Option<u32>> = const { Cell::new(None) };
}

/// While alive, the thread that made it has the user's file-system
/// identity: what it creates belongs to the user, and what it opens is
/// checked against the user's rights (the kernel drops the file-system
/// capabilities of a thread whose fsuid is not 0).
#[derive(Debug)]
pub struct AsUser {
    /// What to restore; None for a guard that changed nothing (nested, or
    /// not running as root and already the user).
    saved: Option<Saved>,
    /// Restored on the thread that entered: not `Send`.
    _thread: PhantomData<*const ()>,
}

#[derive(Debug)]
struct Saved {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<u32>,
}

impl AsUser {
    /// Acts as `id` on this thread until the guard drops. As root: switches
    /// (uid 0 is refused). Not root: only when this process already is
    /// that user (pipe mode run by the MTA as the recipient). Nested for
    /// the same uid: a guard that changes nothing; for another: an error.
    pub fn enter(id: &Identity) -> Result<AsUser, String> {
        if id.uid == 0 {
            return Err("refusing to act as root".into());
        }
        match ACTING.with(Cell::get) {
            Some(uid) if uid == id.uid => return Ok(AsUser::unchanged()),
            Some(uid) => return Err(format!("already acting as uid {uid}, not {}", id.uid)),
            None => {}
        }
        let euid = nix::unistd::geteuid().as_raw();
        if euid != 0 {
            return match euid == id.uid {
                true => Ok(AsUser::unchanged()),
                false => Err(format!(
                    "running as uid {euid}: cannot act as uid {}",
                    id.uid
                )),
            };
        }
        let groups = thread_groups().map_err(|e| format!("getgroups: {e}"))?;
        let fsgid = set_fsgid(id.gid);
        let mut saved = Saved {
            fsuid: 0,
            fsgid,
            groups,
        };
        if let Err(e) = switch(id, &mut saved) {
            restore(&saved);
            return Err(e);
        }
        ACTING.with(|a| a.set(Some(id.uid)));
        Ok(AsUser {
            saved: Some(saved),
            _thread: PhantomData,
        })
    }

    fn unchanged() -> AsUser {
        AsUser {
            saved: None,
            _thread: PhantomData,
        }
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            restore(saved);
            ACTING.with(|a| a.set(None));
        }
    }
}

/// After the fsgid: the groups, then the fsuid, each read back.
fn switch(id: &Identity, saved: &mut Saved) -> Result<(), String> {
    if set_fsgid(id.gid) != id.gid {
        return Err(format!("setfsgid({}) did not take effect", id.gid));
    }
    set_thread_groups(&id.groups).map_err(|e| format!("setgroups: {e}"))?;
    if thread_groups().map_err(|e| format!("getgroups: {e}"))? != id.groups {
        return Err("setgroups did not take effect".into());
    }
    saved.fsuid = set_fsuid(id.uid);
    if set_fsuid(id.uid) != id.uid {
        return Err(format!("setfsuid({}) did not take effect", id.uid));
    }
    Ok(())
}

/// Back to the thread's own identity: fsuid first (which gives back the
/// capabilities the switch suspended, CAP_SETGID for the groups among them),
/// then groups and fsgid. A thread that cannot be restored must not go on
/// delivering for anyone else: the process stops.
fn restore(saved: &Saved) {
    set_fsuid(saved.fsuid);
    let ok = set_fsuid(saved.fsuid) == saved.fsuid && set_thread_groups(&saved.groups).is_ok() && {
        set_fsgid(saved.fsgid);
        set_fsgid(saved.fsgid) == saved.fsgid
    };
    if !ok {
        tracing::error!("cannot restore a delivery thread's identity; stopping");
        std::process::abort();
    }
}

/// setfsuid(2) for this thread; returns the previous fsuid (call twice to
/// read the current one back).
fn set_fsuid(uid: u32) -> u32 {
    // SAFETY: integer argument only; affects the calling thread.
    unsafe { libc::syscall(libc::SYS_setfsuid, uid as libc::c_long) as u32 }
}

/// setfsgid(2) for this thread; returns the previous fsgid.
fn set_fsgid(gid: u32) -> u32 {
    // SAFETY: integer argument only; affects the calling thread.
    unsafe { libc::syscall(libc::SYS_setfsgid, gid as libc::c_long) as u32 }
}

/// The raw setgroups system call: the calling thread only (glibc's wrapper
/// applies it to every thread of the process).
fn set_thread_groups(groups: &[u32]) -> std::io::Result<()> {
    // SAFETY: the kernel reads `groups.len()` gid_t values from the slice.
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's supplementary groups (the raw system call, which
/// reads this thread's credentials).
fn thread_groups() -> std::io::Result<Vec<u32>> {
    // SAFETY: with size 0 the kernel only returns the count.
    let n = unsafe { libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<u32>()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut groups = vec![0u32; n as usize];
    // SAFETY: the buffer holds `n` gid_t values.
    let m = unsafe { libc::syscall(libc::SYS_getgroups, n, groups.as_mut_ptr()) };
    if m < 0 {
        return Err(std::io::Error::last_os_error());
    }
    groups.truncate(m as usize);
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::sync::{Arc, Barrier};

    fn nobody() -> Identity {
        let u = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        Identity::of_account("nobody", u.uid.as_raw(), u.gid.as_raw()).unwrap()
    }

    fn fs_ids() -> (u32, u32) {
        let text = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let ids = |key: &str| -> u32 {
            let line = text.lines().find(|l| l.starts_with(key)).unwrap();
            // Real, effective, saved, file system.
            line.split_whitespace().nth(4).unwrap().parse().unwrap()
        };
        (ids("Uid:"), ids("Gid:"))
    }

    #[test]
    fn a_thread_as_user_creates_files_as_the_user_and_other_threads_stay_root() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test switches identities: run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let private = dir.path().join("root-only");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let id = nobody();
        let both = Arc::new(Barrier::new(2));
        let (b, path, id2, priv2) = (
            both.clone(),
            dir.path().to_owned(),
            id.clone(),
            private.clone(),
        );
        let user = std::thread::spawn(move || {
            let guard = AsUser::enter(&id2).unwrap();
            assert_eq!(fs_ids(), (id2.uid, id2.gid));
            std::fs::write(path.join("by-user"), "u").unwrap();
            // The user's own rights: root's 0700 directory is closed.
            let e = std::fs::write(priv2.join("x"), "u").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
            b.wait(); // the other thread writes now, while this one is the user
            b.wait();
            drop(guard);
            assert_eq!(fs_ids(), (0, 0));
            std::fs::write(priv2.join("after"), "r").unwrap();
        });
        both.wait();
        std::fs::write(dir.path().join("by-root"), "r").unwrap();
        std::fs::write(private.join("meanwhile"), "r").unwrap();
        both.wait();
        user.join().unwrap();
        let owner = |n: &str| {
            let m = std::fs::metadata(dir.path().join(n)).unwrap();
            (m.uid(), m.gid())
        };
        assert_eq!(owner("by-user"), (id.uid, id.gid));
        assert_eq!(owner("by-root"), (0, 0));
        assert!(private.join("after").exists());
    }

    #[test]
    fn nesting_the_same_user_is_allowed_and_another_user_or_root_is_not() {
        assert!(nix::unistd::geteuid().is_root(), "run as root");
        let id = nobody();
        std::thread::spawn(move || {
            let outer = AsUser::enter(&id).unwrap();
            let inner = AsUser::enter(&id).unwrap();
            drop(inner);
            assert_eq!(fs_ids().0, id.uid, "the inner guard restored too early");
            let other = Identity {
                uid: id.uid - 1,
                gid: id.gid,
                groups: vec![],
            };
            assert!(AsUser::enter(&other).is_err());
            drop(outer);
            assert_eq!(fs_ids(), (0, 0));
            let root = Identity {
                uid: 0,
                gid: 0,
                groups: vec![],
            };
            assert!(AsUser::enter(&root).is_err());
        })
        .join()
        .unwrap();
    }
}
