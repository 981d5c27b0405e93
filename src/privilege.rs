//! Least privilege, in one of two ways. Must not run a switch after any
//! thread was started (the runtime's), must not leave a way back to root,
//! and must not let mail be written with more rights than its owner has.
//!
//! # A service account (`user = "vmail"`, the passwd-file driver)
//!
//! After the listeners are bound, and while the process still has one
//! thread, root is given up for good ([`drop_to`]: supplementary groups,
//! group, then user), and the change is checked by trying to get root back.
//! Every mailbox belongs to that one account.
//!
//! # Per-user rights (`driver = "system"`)
//!
//! Each mailbox belongs to its own Unix account, in a home that may be 0700.
//! The contract: `mailstow serve` is started as root with no top-level
//! `user`. After binding (and reading the TLS key), while it has one thread,
//! the process keeps only CAP_SETUID and CAP_SETGID ([`keep_only_setid`]):
//! every other capability leaves the effective, permitted, inheritable,
//! ambient and bounding sets; no_new_privs is set; the securebits NOROOT
//! (locked) make sure no exec (sendmail, a helper) gets root's capabilities
//! back. The process keeps uid 0 but without CAP_DAC_OVERRIDE, CAP_FOWNER or
//! CAP_CHOWN it has only the rights of the owner of root's own files.
//!
//! Each piece of work on a user's files - the RCPT quota check, the whole
//! per-recipient delivery (Sieve scripts and state, Maildir, quota, index)
//! and the index rows written after the reply - runs on its thread under
//! [`AsUser`]: the thread's fsuid, fsgid and supplementary groups become the
//! user's (per-thread system calls; checked by reading each back) and are
//! restored when the guard drops. The kernel checks every open, create,
//! rename and chown of that thread against the user's own rights, and what
//! it creates belongs to the user. So a symlink or a hostile file in a
//! user's home can lead mailstow only where that user could write anyway.
//! The delivery pipeline also refuses (451) a Maildir whose root, folder or
//! tmp/new/cur is a symlink; the check is made before writing and a user
//! could swap the link afterwards (a TOCTOU window), but what remains is
//! bounded by the user's own rights, as above.
//!
//! Never by DAC override and never as root: the spool is created by the
//! async side (fsuid 0, no capabilities) in a root-owned directory and read
//! by delivery threads through the descriptor already open. A program a
//! delivery thread starts (`[outbound] sendmail`) runs with uid 0 and no
//! capabilities at all (exec resets the fsuid to the euid, NOROOT keeps the
//! capabilities away, no_new_privs makes set-id programs such as Postfix's
//! postdrop useless): use `[outbound] smtp` with this driver.

mod as_user;
mod caps;

pub use as_user::{AsUser, Identity};
pub use caps::{keep_only_setid, Status as CapStatus, KEPT as KEPT_CAPS};

use nix::unistd::{self, Gid, Group, Uid, User};

/// The account a process runs as after [`drop_to`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
    /// The names as configured (`user`, `group`), for messages and
    /// `config check`.
    pub user: String,
    pub group: Option<String>,
}

/// Looks up `user` (and `group`, else the user's primary group) in the
/// system's databases; names and numbers are both accepted.
pub fn resolve(user: &str, group: Option<&str>) -> Result<Account, String> {
    let u = match user.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)),
        Err(_) => User::from_name(user),
    }
    .map_err(|e| format!("user {user:?}: {e}"))?
    .ok_or_else(|| format!("user {user:?}: no such user"))?;
    let gid = match group {
        None => u.gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => Gid::from_raw(n),
            Err(_) => {
                Group::from_name(g)
                    .map_err(|e| format!("group {g:?}: {e}"))?
                    .ok_or_else(|| format!("group {g:?}: no such group"))?
                    .gid
            }
        },
    };
    if u.uid.is_root() {
        return Err(format!(
            "user {user:?} is root: name an unprivileged account"
        ));
    }
    Ok(Account {
        uid: u.uid.as_raw(),
        gid: gid.as_raw(),
        user: user.to_owned(),
        group: group.map(str::to_owned),
    })
}

/// Becomes `account` for good: only its group as supplementary group, then
/// the group, then the user (real, effective and saved ids). Must be called
/// before any other thread exists. Fails, changing nothing it can undo,
/// when not running as root or when root could be regained afterwards.
pub fn drop_to(account: &Account) -> Result<(), String> {
    if !unistd::geteuid().is_root() {
        return Err("not running as root: cannot change user".into());
    }
    let gid = Gid::from_raw(account.gid);
    let uid = Uid::from_raw(account.uid);
    unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    unistd::setresgid(gid, gid, gid).map_err(|e| format!("setresgid: {e}"))?;
    unistd::setresuid(uid, uid, uid).map_err(|e| format!("setresuid: {e}"))?;
    if unistd::setuid(Uid::from_raw(0)).is_ok() || unistd::geteuid().is_root() {
        return Err("root could be regained after dropping privileges".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_resolve_by_name_or_number_and_root_is_refused() {
        let nobody = resolve("nobody", None).unwrap();
        assert_ne!(nobody.uid, 0);
        assert_eq!(
            resolve(&nobody.uid.to_string(), None).unwrap().uid,
            nobody.uid
        );
        assert_eq!(resolve("nobody", Some("0")).unwrap().gid, 0);
        assert!(resolve("root", None).unwrap_err().contains("is root"));
        assert!(resolve("0", None).is_err());
        assert!(resolve("no-such-user-here", None)
            .unwrap_err()
            .contains("no such user"));
        assert!(resolve("nobody", Some("no-such-group-here"))
            .unwrap_err()
            .contains("no such group"));
    }
}
