//! Least privilege: after the listeners are bound, and while the process
//! still has one thread, root is given up for good (supplementary groups,
//! group, then user), and the change is checked by trying to get root back.
//! Must not run after any thread was started (the runtime's), and must not
//! leave a way back to root.

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
