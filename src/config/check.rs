//! `config check` and reload validation: what a loaded [`Config`] needs from
//! the system (directories there and writable by the account mailstow runs
//! as, the passwd-file readable and well-formed, Sieve scripts compiling,
//! listener paths possible). Each finding names the key and the reason.
//! Must not change anything on disk, and must not bind or connect.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{Config, ListenAddr};
use crate::privilege::Account;

/// What [`check`] found: errors make the configuration unusable (the
/// command exits non-zero, a reload is refused); warnings cost no mail.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// What was checked, for the report ("3 users, 2 scripts compiled").
    pub notes: Vec<String>,
}

/// One problem: the config key it is about and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: String,
    pub reason: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]: {}", self.key, self.reason)
    }
}

impl Findings {
    fn error(&mut self, key: &str, reason: String) {
        self.errors.push(Finding {
            key: key.to_owned(),
            reason,
        });
    }

    fn warn(&mut self, key: &str, reason: String) {
        self.warnings.push(Finding {
            key: key.to_owned(),
            reason,
        });
    }

    /// The errors in one line, for a log line ("reload refused: ...").
    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How much to check. A reload skips user scripts (many on a big server;
/// they are compiled at delivery and never cost mail) and the listeners
/// (kept from the running configuration; they were bound as root, which a
/// reload no longer is). Only `config check` asks Dovecot's sockets: a
/// reload while Dovecot is down must still go through (lookups then fail
/// temporarily until it is back).
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub user_scripts: bool,
    pub listeners: bool,
    pub dovecot: bool,
}

impl Scope {
    /// Everything (`config check`).
    pub const ALL: Scope = Scope {
        user_scripts: true,
        listeners: true,
        dovecot: true,
    };
    /// What a reload puts in force.
    pub const RELOAD: Scope = Scope {
        user_scripts: false,
        listeners: false,
        dovecot: false,
    };
}

/// Read/write/search access wanted on a path.
#[derive(Debug, Clone, Copy)]
struct Want {
    read: bool,
    write: bool,
    search: bool,
}

const DIR_RW: Want = Want {
    read: true,
    write: true,
    search: true,
};
const FILE_R: Want = Want {
    read: true,
    write: false,
    search: false,
};

/// Check everything `cfg` needs from the system, as the account mailstow
/// will run as (`user`, else this process's own).
pub fn check(cfg: &Config, scope: Scope) -> Findings {
    let mut f = Findings::default();
    let who = Who::of(cfg);
    let will_create = who.root_now && cfg.run_as.is_some();

    dir_check(
        &mut f,
        "storage.mail_root",
        &cfg.storage.mail_root,
        &who,
        will_create,
    );
    dir_check(
        &mut f,
        "delivery.spool_dir",
        &cfg.delivery.spool_dir,
        &who,
        will_create,
    );
    passwd_check(&mut f, cfg, &who);
    if scope.dovecot {
        dovecot_check(&mut f, cfg);
    }
    sieve_check(&mut f, cfg, scope);

    let listeners: [(&str, &[ListenAddr]); 2] = if scope.listeners {
        [
            ("lmtp.listen", &cfg.lmtp.listen),
            ("smtp.listen", &cfg.smtp.listen),
        ]
    } else {
        [("lmtp.listen", &[]), ("smtp.listen", &[])]
    };
    for (key, list) in listeners {
        for addr in list {
            match addr {
                // Bound (and its directory created) before privileges are
                // dropped, so by this process as it is.
                ListenAddr::Unix(p) => {
                    let me = Who {
                        account: None,
                        root_now: who.root_now,
                    };
                    let usable = match p.parent() {
                        Some(d) if d.is_dir() => me.access(d, DIR_RW),
                        Some(d) => nearest_existing(d).and_then(|b| me.access(b, DIR_RW)),
                        None => Err("no parent directory".to_owned()),
                    };
                    if let Err(reason) = usable {
                        f.error(key, format!("{addr}: cannot create the socket: {reason}"));
                    }
                }
                ListenAddr::Tcp(a) if a.port() < 1024 && !who.root_now => f.warn(
                    key,
                    format!("{addr}: a port below 1024 needs root (or socket activation)"),
                ),
                ListenAddr::Tcp(_) => {}
            }
        }
    }
    if cfg.outbound.smtp.is_none() {
        if let Some(sendmail) = &cfg.outbound.sendmail {
            let runnable = std::fs::metadata(sendmail)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !runnable {
                f.warn(
                    "outbound.sendmail",
                    format!(
                        "{} is not an executable file: redirect, vacation and \
                         notify messages cannot be sent",
                        sendmail.display()
                    ),
                );
            }
        }
    }
    f
}

/// The config file itself: `serve` reads it again on SIGHUP as the account
/// it runs as, which must be able to (a warning: only reload is lost).
pub fn check_config_file(cfg: &Config, path: &Path, f: &mut Findings) {
    let who = Who::of(cfg);
    if who.account.is_none() {
        return;
    }
    if let Err(reason) = who.access(path, FILE_R) {
        f.warn(
            "user",
            format!("{reason}: a reload (SIGHUP) reads the file as this user and would fail"),
        );
    }
}

/// The account whose access counts.
struct Who {
    /// The account `serve` drops to; None: this process as it is.
    account: Option<Account>,
    /// This process is root now (so it can create what is missing before
    /// dropping privileges).
    root_now: bool,
}

impl Who {
    fn of(cfg: &Config) -> Who {
        Who {
            account: cfg.run_as.clone(),
            root_now: nix::unistd::geteuid().is_root(),
        }
    }

    fn name(&self) -> String {
        match &self.account {
            Some(a) => format!("user {} (uid {})", a.user, a.uid),
            None => format!("uid {}", nix::unistd::geteuid()),
        }
    }

    /// Can this account use `path` as `want`, searching every directory on
    /// the way? Judged from the mode bits as the kernel would for a process
    /// with the account's uid and only its gid (what `drop_to` leaves);
    /// ACLs are not read. Err: the reason, naming the path that stops it.
    fn access(&self, path: &Path, want: Want) -> Result<(), String> {
        let Some(acct) = &self.account else {
            // As ourselves: ask the kernel.
            use nix::unistd::AccessFlags;
            let mut flags = AccessFlags::empty();
            if want.read {
                flags |= AccessFlags::R_OK;
            }
            if want.write {
                flags |= AccessFlags::W_OK;
            }
            if want.search {
                flags |= AccessFlags::X_OK;
            }
            return nix::unistd::access(path, flags)
                .map_err(|e| format!("{}: {}", path.display(), e.desc()));
        };
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors.into_iter().filter(|d| !d.as_os_str().is_empty()) {
            let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if !allowed(&m, acct, 0o1) {
                return Err(format!(
                    "{} cannot enter directory {} (owner {}, group {}, mode {:04o})",
                    self.name(),
                    dir.display(),
                    m.uid(),
                    m.gid(),
                    m.mode() & 0o7777
                ));
            }
        }
        let m = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bits = u32::from(want.read) * 4 + u32::from(want.write) * 2 + u32::from(want.search);
        if !allowed(&m, acct, bits) {
            let what = match (want.read, want.write) {
                (_, true) => "write to",
                _ => "read",
            };
            return Err(format!(
                "{} cannot {what} {} (owner {}, group {}, mode {:04o})",
                self.name(),
                path.display(),
                m.uid(),
                m.gid(),
                m.mode() & 0o7777
            ));
        }
        Ok(())
    }
}

/// Do the mode bits of `m` grant `bits` (rwx as 4/2/1) to `acct`?
fn allowed(m: &std::fs::Metadata, acct: &Account, bits: u32) -> bool {
    let mode = m.mode();
    let granted = if m.uid() == acct.uid {
        mode >> 6
    } else if m.gid() == acct.gid {
        mode >> 3
    } else {
        mode
    } & 0o7;
    granted & bits == bits
}

/// A directory mailstow writes into: there and writable by the account, or
/// missing but creatable at start (by root before it drops privileges, or
/// by the account itself in the nearest directory that exists).
fn dir_check(f: &mut Findings, key: &str, dir: &Path, who: &Who, will_create: bool) {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => f.error(key, format!("{} is not a directory", dir.display())),
        Ok(_) => {
            if let Err(reason) = who.access(dir, DIR_RW) {
                f.error(key, reason);
            }
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            let creatable = match nearest_existing(dir) {
                Ok(_) if will_create => Ok(()),
                Ok(base) => who.access(base, DIR_RW),
                Err(e) => Err(e),
            };
            match creatable {
                Ok(()) => f.notes.push(format!(
                    "{key}: {} does not exist yet; it is created when first needed",
                    dir.display()
                )),
                Err(reason) => f.error(
                    key,
                    format!(
                        "{} does not exist and cannot be created: {reason}",
                        dir.display()
                    ),
                ),
            }
        }
        Err(e) => f.error(key, format!("{}: {e}", dir.display())),
    }
}

/// The closest ancestor of `path` that exists; Err when it is not a
/// directory (nothing can be created under it).
fn nearest_existing(path: &Path) -> Result<&Path, String> {
    let base = path
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .ok_or_else(|| "no parent directory exists".to_owned())?;
    if base.is_dir() {
        Ok(base)
    } else {
        Err(format!("{} is not a directory", base.display()))
    }
}

fn passwd_check(f: &mut Findings, cfg: &Config, who: &Who) {
    let key = "users.passwd_file";
    let Some(path) = cfg.users.passwd_file() else {
        return;
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return f.error(key, format!("{}: {e}", path.display())),
    };
    // Read again as the account after every change, so it must be able to.
    if let Err(reason) = who.access(path, FILE_R) {
        f.error(key, reason);
    }
    let (usable, problems) = crate::users::check_passwd(&bytes, &cfg.storage.mail_root);
    for p in problems {
        f.error(key, format!("{}: {p}", path.display()));
    }
    f.notes
        .push(format!("{key}: {usable} users in {}", path.display()));
}

/// `driver = "dovecot"`: both sockets answer the handshake, and the
/// userdb answers NOTFOUND for a name nobody has. Asked as this process
/// is (the socket's mode must also let `user` in; see the README).
fn dovecot_check(f: &mut Findings, cfg: &Config) {
    let crate::users::Source::Dovecot(d) = &cfg.users.source else {
        return;
    };
    let key = "users.dovecot_userdb_socket";
    match crate::users::dovecot::probe_userdb(&d.userdb_socket, d.timeout) {
        Ok(()) => f.notes.push(format!(
            "{key}: {} answers lookups",
            d.userdb_socket.display()
        )),
        Err(e) => f.error(key, format!("{}: {e}", d.userdb_socket.display())),
    }
    let key = "users.dovecot_auth_socket";
    match crate::auth::dovecot::probe(&d.auth_socket, d.timeout) {
        Ok(()) => f.notes.push(format!(
            "{key}: {} answers (ManageSieve logins)",
            d.auth_socket.display()
        )),
        Err(e) => f.error(key, format!("{}: {e}", d.auth_socket.display())),
    }
}

fn sieve_check(f: &mut Findings, cfg: &Config, scope: Scope) {
    if !cfg.sieve.enabled {
        return;
    }
    let filter = mailstow_sieve::Filter::new(&cfg.sieve, &cfg.hostname);
    let compile = |key: &str, path: &Path, admin: bool, f: &mut Findings| -> bool {
        let problem = match filter.check(path, admin) {
            Ok(Some(Ok(()))) => return true,
            Ok(Some(Err(e))) => {
                format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message)
            }
            Ok(None) => format!("{}: no such file", path.display()),
            Err(e) => format!("{}: {e}", path.display()),
        };
        if admin {
            f.error(key, problem);
        } else {
            f.warn(key, format!("{problem} (its user's mail goes to INBOX)"));
        }
        false
    };
    let mut admin_ok = 0;
    for (key, list) in [
        ("sieve.before", &cfg.sieve.before),
        ("sieve.after", &cfg.sieve.after),
    ] {
        for path in list {
            admin_ok += usize::from(compile(key, path, true, f));
        }
    }
    if let Some(dir) = &cfg.sieve.global_dir {
        if !dir.is_dir() {
            f.warn(
                "sieve.global_dir",
                format!(
                    "{} is not a directory: `include :global` fails",
                    dir.display()
                ),
            );
        }
    }
    let mut note = format!("sieve: {admin_ok} admin scripts compiled");
    if scope.user_scripts {
        if let Ok(users) = crate::users::Directory::open(&cfg.users, &cfg.storage.mail_root) {
            let (mut scripts, mut ok) = (0, 0);
            for user in users.users() {
                let path = filter.user_script(&user.account());
                if path.exists() {
                    scripts += 1;
                    ok += usize::from(compile("sieve.script", &path, false, f));
                }
            }
            note.push_str(&format!(", {ok} of {scripts} user scripts"));
        }
    }
    f.notes.push(note);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn config(dir: &Path, extra: &str) -> Config {
        config_in(dir, "mail", extra)
    }

    fn config_in(dir: &Path, mail_root: &str, extra: &str) -> Config {
        let text = format!(
            "[storage]\nmail_root = \"{mail_root}\"\n[users]\npasswd_file = \"users\"\n\
             [delivery]\nspool_dir = \"spool\"\n{extra}"
        );
        Config::from_toml(&text, &dir.join("t.toml"), dir).unwrap()
    }

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().to_owned();
        fs::create_dir(d.join("mail")).unwrap();
        fs::create_dir(d.join("spool")).unwrap();
        fs::write(d.join("users"), "alice@example.org:{PLAIN}x::::::\n").unwrap();
        (t, d)
    }

    const ALL: Scope = Scope::ALL;

    #[test]
    fn a_sound_setup_has_no_findings() {
        let (_t, d) = setup();
        let f = check(&config(&d, ""), ALL);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert!(
            f.notes.iter().any(|n| n.contains("1 users")),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn an_uncreatable_directory_and_a_broken_passwd_line_are_named() {
        let (_t, d) = setup();
        fs::remove_dir(d.join("spool")).unwrap();
        // Missing, but creatable: fine.
        let f = check(&config(&d, ""), ALL);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert!(f.notes.iter().any(|n| n.contains("delivery.spool_dir")));
        // A file where a directory should be, or on the way to it.
        fs::write(d.join("spool"), "").unwrap();
        fs::write(
            d.join("users"),
            "alice@example.org:{PLAIN}x::::::\nbob@example.org:x:notanumber::::\n",
        )
        .unwrap();
        let f = check(&config_in(&d, "spool/mail", ""), ALL);
        let about = |key: &str, text: &str| {
            f.errors
                .iter()
                .any(|e| e.key == key && e.reason.contains(text))
        };
        assert!(
            about("delivery.spool_dir", "is not a directory"),
            "{:?}",
            f.errors
        );
        assert!(
            about("storage.mail_root", "cannot be created"),
            "{:?}",
            f.errors
        );
        assert!(about("users.passwd_file", "line 2"), "{:?}", f.errors);
    }

    #[test]
    fn an_admin_script_that_does_not_compile_is_an_error_a_users_a_warning() {
        let (_t, d) = setup();
        fs::write(
            d.join("before.sieve"),
            "require \"fileinto\";\nfileinto \"x\"\nkeep;\n",
        )
        .unwrap();
        let home = d.join("mail/example.org/alice");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join(".dovecot.sieve"), "if true {\n").unwrap();
        let f = check(&config(&d, "[sieve]\nbefore = [\"before.sieve\"]\n"), ALL);
        assert!(
            f.errors
                .iter()
                .any(|e| e.key == "sieve.before" && e.reason.contains("before.sieve:")),
            "{:?}",
            f.errors
        );
        assert!(
            f.warnings
                .iter()
                .any(|e| e.key == "sieve.script" && e.reason.contains(".dovecot.sieve")),
            "{:?}",
            f.warnings
        );
        // A reload does not read user scripts.
        let f = check(&config(&d, ""), Scope::RELOAD);
        assert!(f.warnings.iter().all(|w| w.key != "sieve.script"));
    }

    #[test]
    fn mode_bits_are_judged_as_the_account_sees_them() {
        let (_t, d) = setup();
        let m = fs::metadata(d.join("mail")).unwrap();
        let other = Account {
            uid: m.uid() + 1000,
            gid: m.gid() + 1000,
            user: "nobody-here".into(),
            group: None,
        };
        let owner = Account {
            uid: m.uid(),
            ..other.clone()
        };
        fs::set_permissions(d.join("mail"), fs::Permissions::from_mode(0o755)).unwrap();
        let meta = fs::metadata(d.join("mail")).unwrap();
        assert!(allowed(&meta, &owner, 7));
        assert!(!allowed(&meta, &other, 2));
        assert!(allowed(&meta, &other, 5));
        let who = Who {
            account: Some(other),
            root_now: true,
        };
        let e = who.access(&d.join("mail"), DIR_RW).unwrap_err();
        assert!(
            e.contains("cannot write to") && e.contains("mode 0755"),
            "{e}"
        );
        fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
        let e = who.access(&d.join("mail"), DIR_RW).unwrap_err();
        assert!(e.contains("cannot enter directory"), "{e}");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_unix_listener_in_a_missing_directory_is_an_error() {
        let (_t, d) = setup();
        let f = check(
            &config(&d, "[lmtp]\nlisten = [\"unix:users/x/lmtp\"]\n"),
            ALL,
        );
        assert!(
            f.errors
                .iter()
                .any(|e| e.key == "lmtp.listen" && e.reason.contains("users is not a directory")),
            "{:?}",
            f.errors
        );
        // A reload keeps the running listeners, so it does not judge them
        // (it runs without root, which bound them).
        let cfg = config(&d, "[lmtp]\nlisten = [\"unix:users/x/lmtp\"]\n");
        assert!(check(&cfg, Scope::RELOAD).errors.is_empty());
        // A missing directory that can be made is fine.
        let f = check(&config(&d, "[lmtp]\nlisten = [\"unix:run/lmtp\"]\n"), ALL);
        assert!(f.errors.is_empty(), "{:?}", f.errors);
    }

    #[test]
    fn dovecot_sockets_that_do_not_answer_are_named() {
        let (_t, d) = setup();
        let text = "[storage]\nmail_root = \"mail\"\n[users]\ndriver = \"dovecot\"\n\
                    dovecot_userdb_socket = \"run/auth-userdb\"\n\
                    dovecot_auth_socket = \"run/auth-client\"\ndovecot_timeout = 1\n\
                    [delivery]\nspool_dir = \"spool\"\n";
        let cfg = Config::from_toml(text, &d.join("t.toml"), &d).unwrap();
        let f = check(&cfg, Scope::ALL);
        for key in ["users.dovecot_userdb_socket", "users.dovecot_auth_socket"] {
            assert!(
                f.errors
                    .iter()
                    .any(|e| e.key == key && e.reason.contains("cannot connect")),
                "{key}: {:?}",
                f.errors
            );
        }
        // A reload does not ask them.
        assert!(check(&cfg, Scope::RELOAD).errors.is_empty());
    }
}
