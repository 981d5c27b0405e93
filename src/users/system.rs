//! `driver = "system"`: recipients are Unix accounts found through NSS
//! (getpwnam: /etc/passwd, LDAP through nslcd or sssd), mail in
//! `~/Maildir`, owned by the account. Must not deliver to root, to an
//! account below `min_uid` or to `nobody`, must not tell the sender why a
//! recipient is unknown (the log says it), and must not build a path from
//! the address: the home comes from the account.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;

use super::{split_detail, SystemConfig, User, UsersConfig, UsersError};

/// The kernel's overflow uid, Debian's `nobody`: never a mailbox.
const NOBODY_UID: u32 = 65_534;

/// The accounts of the system, as `[users] driver = "system"` configures.
#[derive(Debug)]
pub(super) struct SystemDirectory {
    cfg: SystemConfig,
    delimiters: Vec<char>,
}

/// One account as getpwnam returned it.
struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl SystemDirectory {
    pub(super) fn open(cfg: &SystemConfig, users: &UsersConfig) -> SystemDirectory {
        SystemDirectory {
            cfg: cfg.clone(),
            delimiters: users.recipient_delimiter.chars().collect(),
        }
    }

    /// The full local part, then the part before the delimiter; for each,
    /// the account of that exact name, then of its lowercase. The first
    /// account found decides: a refused one (root, below `min_uid`) is an
    /// unknown user, not a reason to try the next candidate.
    pub(super) fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, UsersError> {
        let domain = domain.to_ascii_lowercase();
        if !self.cfg.domains.is_empty() && !self.cfg.domains.contains(&domain) {
            tracing::info!(domain = %domain, "unknown user: the domain is not in [users] domains");
            return Ok(None);
        }
        let mut candidates = vec![(local, None)];
        if let Some((base, detail)) = split_detail(local, &self.delimiters) {
            candidates.push((base, Some(detail)));
        }
        for (name, detail) in candidates {
            if let Some(account) = find(name)? {
                return self.user(account, &domain, detail);
            }
        }
        tracing::info!(local = %local, "unknown user: no such account");
        Ok(None)
    }

    /// The account of exactly this name, without a domain (and without
    /// the domain check: it is not an address).
    pub(super) fn account(&self, name: &str) -> Result<Option<User>, UsersError> {
        match find(name)? {
            Some(a) => self.user(a, "", None),
            None => Ok(None),
        }
    }

    fn user(
        &self,
        a: Account,
        domain: &str,
        detail: Option<&str>,
    ) -> Result<Option<User>, UsersError> {
        if let Some(why) = refused(&a, self.cfg.min_uid) {
            tracing::info!(account = %a.name, uid = a.uid, "unknown user: {why}");
            return Ok(None);
        }
        if !a.home.is_absolute() || a.home == Path::new("/") {
            return Err(UsersError::Unavailable(format!(
                "account {:?}: home {:?} is not a usable absolute directory",
                a.name, a.home
            )));
        }
        Ok(Some(User {
            name: a.name.clone(),
            local: a.name,
            domain: domain.to_owned(),
            detail: detail.filter(|d| !d.is_empty()).map(str::to_owned),
            uid: Some(a.uid),
            gid: Some(a.gid),
            maildir: a.home.join("Maildir"),
            home: a.home,
            extra: Vec::new(),
        }))
    }

    /// Every account a lookup would deliver to (getpwent), without a domain.
    pub(super) fn users(&self) -> Vec<User> {
        all_accounts()
            .into_iter()
            .filter(|a| refused(a, self.cfg.min_uid).is_none() && a.home.is_absolute())
            .filter_map(|a| self.user(a, "", None).ok().flatten())
            .collect()
    }
}

/// Why an account is never delivered to, if it is not.
fn refused(a: &Account, min_uid: u32) -> Option<String> {
    match a.uid {
        0 => Some("root is never delivered to".into()),
        NOBODY_UID => Some("nobody is never delivered to".into()),
        uid if uid < min_uid => Some(format!("uid {uid} is below min_uid {min_uid}")),
        _ => None,
    }
}

/// The account named `name`, else the one named its lowercase (ASCII).
fn find(name: &str) -> Result<Option<Account>, UsersError> {
    if let Some(a) = getpwnam(name)? {
        return Ok(Some(a));
    }
    let lower = name.to_ascii_lowercase();
    if lower != name {
        return getpwnam(&lower);
    }
    Ok(None)
}

/// getpwnam through NSS. "Not found" (also as ENOENT or ESRCH, which some
/// NSS modules return) is None; any other error is temporary.
fn getpwnam(name: &str) -> Result<Option<Account>, UsersError> {
    if name.is_empty() || name.contains('\0') || name.contains('/') {
        return Ok(None);
    }
    match nix::unistd::User::from_name(name) {
        Ok(found) => Ok(found.map(|u| Account {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        })),
        Err(Errno::ENOENT | Errno::ESRCH) => Ok(None),
        Err(e) => Err(UsersError::Unavailable(format!(
            "looking up account {name:?}: {e}"
        ))),
    }
}

/// Every account of the system (setpwent/getpwent/endpwent, which share
/// one cursor per process: serialised here).
fn all_accounts() -> Vec<Account> {
    static CURSOR: Mutex<()> = Mutex::new(());
    let _one = CURSOR.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    // SAFETY: the cursor functions are used under the lock above; each
    // entry is copied before the next call reuses glibc's buffer.
    unsafe {
        libc::setpwent();
        loop {
            let p = libc::getpwent();
            if p.is_null() {
                break;
            }
            let text =
                |s: *const libc::c_char| std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned();
            out.push(Account {
                name: text((*p).pw_name),
                uid: (*p).pw_uid,
                gid: (*p).pw_gid,
                home: PathBuf::from(text((*p).pw_dir)),
            });
        }
        libc::endpwent();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Directory, Source};
    use super::*;

    fn open(domains: &[&str], min_uid: u32) -> Directory {
        let cfg = UsersConfig {
            source: Source::System(SystemConfig {
                domains: domains.iter().map(|d| d.to_string()).collect(),
                min_uid,
            }),
            recipient_delimiter: "+".into(),
        };
        Directory::open(&cfg, Path::new("/unused")).unwrap()
    }

    #[test]
    fn root_nobody_low_uids_and_unknown_accounts_are_unknown_users() {
        let d = open(&[], 1000);
        assert_eq!(d.lookup("root", "example.org").unwrap(), None);
        assert_eq!(d.lookup("ROOT+x", "example.org").unwrap(), None);
        assert_eq!(d.lookup("nobody", "example.org").unwrap(), None);
        assert_eq!(d.lookup("daemon", "example.org").unwrap(), None);
        assert_eq!(d.lookup("no-such-account-here", "x").unwrap(), None);
        assert_eq!(d.lookup("", "x").unwrap(), None);
        assert_eq!(d.lookup("../etc", "x").unwrap(), None);
        // Even with min_uid 0, root and nobody stay out.
        let d = open(&[], 0);
        assert_eq!(d.lookup("root", "x").unwrap(), None);
        assert_eq!(d.lookup("nobody", "x").unwrap(), None);
    }

    #[test]
    fn an_account_at_or_above_min_uid_is_found_with_case_detail_and_home() {
        let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
        let d = open(&[], daemon.uid.as_raw());
        let u = d.lookup("DAEMON+Lists", "Example.ORG").unwrap().unwrap();
        assert_eq!(u.name, "daemon");
        assert_eq!(u.local, "daemon");
        assert_eq!(u.domain, "example.org");
        assert_eq!(u.detail.as_deref(), Some("Lists"));
        assert_eq!(u.uid, Some(daemon.uid.as_raw()));
        assert_eq!(u.gid, Some(daemon.gid.as_raw()));
        assert_eq!(u.home, daemon.dir);
        assert_eq!(u.maildir, daemon.dir.join("Maildir"));
        assert_eq!(d.lookup("daemon+", "x").unwrap().unwrap().detail, None);
        let d = open(&[], daemon.uid.as_raw() + 1);
        assert_eq!(d.lookup("daemon", "x").unwrap(), None);
    }

    #[test]
    fn domains_limit_which_recipient_domains_are_ours() {
        let daemon = nix::unistd::User::from_name("daemon").unwrap().unwrap();
        let d = open(&["example.org"], daemon.uid.as_raw());
        assert!(d.lookup("daemon", "EXAMPLE.org").unwrap().is_some());
        assert_eq!(d.lookup("daemon", "example.net").unwrap(), None);
    }

    #[test]
    fn users_lists_only_deliverable_accounts() {
        let d = open(&[], 1);
        let names: Vec<String> = d.users().into_iter().map(|u| u.name).collect();
        assert!(names.iter().any(|n| n == "daemon"), "{names:?}");
        assert!(
            !names.iter().any(|n| n == "root" || n == "nobody"),
            "{names:?}"
        );
    }
}
