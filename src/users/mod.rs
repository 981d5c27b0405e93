//! Recipient -> user: the Dovecot passwd-file (the same file the IMAP server
//! authenticates from), Dovecot's userdb over its auth socket (`dovecot`)
//! or the system's accounts (`system.rs`), the recipient delimiter, and
//! domain and case rules.
//! Must not know protocol details or build a path from a recipient address;
//! blocking (file reads, socket requests), called from delivery threads,
//! never from async code.
//!
//! # The file
//!
//! `user:password:uid:gid:gecos:home:shell:extra_fields`, one user a line;
//! see `passwd.rs` for the format. `user` is `local@domain` or a bare `local`
//! that matches that local part in every domain. uid and gid are decimal or
//! empty (0 is refused: never deliver as root); home is absolute or empty.
//! An empty home is `{mail_root}/{domain}/{local}` with the local part as
//! written in the file and the domain lowercased, or `{mail_root}/{local}`
//! for an entry without a domain (what Dovecot's `%d/%n` gives for such a
//! login). Those names must be plain path components (no '/', NUL, '@' in
//! the local part, "." or ".."). The maildir is `{home}/Maildir`.
//!
//! # Finding a recipient
//!
//! [`Directory::lookup`] takes the local part (unquoted, may carry a detail)
//! and the domain, and tries, stopping at the first hit:
//!
//! 1. the full local part, then
//! 2. when `recipient_delimiter` is set, the part before the first of its
//!    characters (`alice+lists` -> `alice`, detail `lists`; `alice+` has no
//!    detail; a leading delimiter never matches). So a user literally named
//!    `a+b` wins over `a` with detail `b`.
//!
//! For each candidate local part:
//!
//! - Domains compare ASCII case-insensitively.
//! - Entries for the recipient's domain are searched before entries without
//!   a domain: a domainless entry is a wildcard and never shadows a specific
//!   one.
//! - Within each, an exact local-part match wins; otherwise an ASCII
//!   case-insensitive match (`Alice@` finds `alice@`) - but only when a single
//!   entry matches that way. When several entries differ only by case
//!   (`Ann@`, `ann@`), only exact matches reach them.
//!
//! # Failures are temporary
//!
//! An entry whose user name parses but whose other fields do not (bad uid,
//! relative home, ...) is kept as *broken*: looking it up returns
//! [`UsersError::Broken`] (a temporary failure, 4xx) and never "unknown user"
//! (550, a bounce). A line without a usable user name is logged as a warning
//! with file:line and ignored. Of duplicate entries the first wins (warning).
//!
//! # Reload
//!
//! Every lookup stats the file (one `stat()`); when its device, inode, size,
//! mtime or ctime changed, the file is read again. A re-read that fails keeps
//! the old table and logs an error naming the file, once per change of the
//! file; so does a re-read that finds no entries at all while the old table
//! had some (most likely a file caught half-written). Replace the file
//! atomically (write a copy, then rename it over) so a lookup never sees a
//! half-written file.

pub(crate) mod dovecot;
mod passwd;
mod system;

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use passwd::{Entry, Table};

/// Where users are found and how addresses are split, as the
/// configuration file's `[users]` says.
#[derive(Debug, Clone)]
pub struct UsersConfig {
    pub source: Source,
    /// Characters any of which separates the user from the detail; empty: off.
    pub recipient_delimiter: String,
}

impl UsersConfig {
    /// The passwd-file, when that is where users are found.
    pub fn passwd_file(&self) -> Option<&Path> {
        match &self.source {
            Source::PasswdFile(p) => Some(p),
            _ => None,
        }
    }

    /// Does each mailbox belong to its own account, written with that
    /// account's rights (`crate::privilege`'s per-user mode)? The system
    /// driver's accounts do.
    pub fn per_user_rights(&self) -> bool {
        matches!(self.source, Source::System(_))
    }

    pub fn driver(&self) -> UsersDriver {
        match self.source {
            Source::PasswdFile(_) => UsersDriver::PasswdFile,
            Source::Dovecot(_) => UsersDriver::Dovecot,
            Source::System(_) => UsersDriver::System,
        }
    }
}

/// `[users] driver`: which kind of source is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsersDriver {
    PasswdFile,
    Dovecot,
    System,
}

impl UsersDriver {
    /// The name `driver` takes in the file.
    pub fn name(self) -> &'static str {
        match self {
            UsersDriver::PasswdFile => "passwd-file",
            UsersDriver::Dovecot => "dovecot",
            UsersDriver::System => "system",
        }
    }
}

/// Where users are found, with the settings of that driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A Dovecot passwd-file (`driver = "passwd-file"`, the default).
    PasswdFile(PathBuf),
    /// Dovecot's auth service (`driver = "dovecot"`).
    Dovecot(DovecotConfig),
    /// The system's accounts through NSS (`driver = "system"`).
    System(SystemConfig),
}

/// `driver = "dovecot"`: Dovecot's auth service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DovecotConfig {
    /// The auth-userdb socket (`dovecot_userdb_socket`), for lookups.
    pub userdb_socket: PathBuf,
    /// The auth-client socket (`dovecot_auth_socket`), for ManageSieve
    /// logins.
    pub auth_socket: PathBuf,
    /// How long one request may take before it is a temporary failure.
    pub timeout: std::time::Duration,
    /// How long a found user is remembered (`cache_ttl`; 0: not at all).
    pub cache_ttl: std::time::Duration,
    /// How long "no such user" is remembered (`negative_cache_ttl`).
    pub negative_cache_ttl: std::time::Duration,
}

/// `driver = "system"`: Unix accounts, mail in `~/Maildir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// Lowercased; empty: any domain.
    pub domains: Vec<String>,
    /// Accounts below this uid (and root) are never delivered to.
    pub min_uid: u32,
}

/// A recipient that exists, as the passwd-file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The entry's name as in the file, domain lowercased:
    /// `alice@example.org`, or `alice` for an entry without a domain.
    pub name: String,
    /// Local part as written in the file (not as the sender wrote it).
    pub local: String,
    /// Lowercased domain: the entry's, or the recipient's for an entry
    /// without a domain.
    pub domain: String,
    /// `lists` for `alice+lists@` when a delimiter is configured; never
    /// `Some("")`. Only a string: never a path.
    pub detail: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// From the file, or the default under `mail_root` (see the module doc).
    pub home: PathBuf,
    /// `{home}/Maildir`.
    pub maildir: PathBuf,
    /// The extra fields, `key=value` as written (`key` alone: value "").
    pub extra: Vec<(String, String)>,
}

impl User {
    /// Who owns what is created for this user (files chowned to it when
    /// running as root): the entry's uid and gid, when it has both.
    pub fn owner(&self) -> Option<mailstow_maildir::Owner> {
        match (self.uid, self.gid) {
            (Some(uid), Some(gid)) => Some(mailstow_maildir::Owner { uid, gid }),
            _ => None,
        }
    }

    /// The user as the Sieve host sees a script's owner.
    pub fn account(&self) -> mailstow_sieve::Account<'_> {
        mailstow_sieve::Account {
            name: &self.name,
            local: &self.local,
            domain: &self.domain,
            detail: self.detail.as_deref(),
            home: &self.home,
            owner: self.uid.zip(self.gid),
            script: self.extra_path("sieve"),
            script_dir: self.extra_path("sieve_dir"),
        }
    }

    /// An absolute path in extra field `key` (exactly that key: the
    /// dovecot driver stores the user's Sieve paths there, resolved).
    fn extra_path(&self, key: &str) -> Option<&Path> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| Path::new(v.as_str()))
            .filter(|p| p.is_absolute())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The passwd-file could not be read (at open; later failures keep the
    /// old table).
    #[error("{path}: cannot read: {source}", path = path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The source cannot be asked now (socket down, timeout, ...): a
    /// temporary failure, never a 550.
    #[error("{0}")]
    Unavailable(String),
    /// Dovecot's userdb answered with a user mailstow cannot deliver to
    /// (a mail format it does not write, no home, ...): a temporary
    /// failure, never a 550.
    #[error("dovecot userdb: user {user}: {reason}")]
    Reply { user: String, reason: String },
    /// The entry for this user is unusable: a temporary failure, never a 550.
    #[error("{path}:{line}: unusable entry: {reason}", path = path.display())]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The user directory: the configured source behind one interface.
/// `Send + Sync`: shared by the delivery threads.
#[derive(Debug)]
pub struct Directory {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    File(FileDirectory),
    Dovecot(dovecot::DovecotDirectory),
    System(system::SystemDirectory),
}

impl Directory {
    /// Opens the configured source: a passwd-file is read now (an
    /// unreadable file is an error naming it); Dovecot's socket is first
    /// connected at the first lookup.
    pub fn open(cfg: &UsersConfig, mail_root: &Path) -> Result<Directory, UsersError> {
        let inner = match &cfg.source {
            Source::PasswdFile(_) => Inner::File(FileDirectory::open(cfg, mail_root)?),
            Source::Dovecot(d) => Inner::Dovecot(dovecot::DovecotDirectory::open(cfg, d)),
            Source::System(s) => Inner::System(system::SystemDirectory::open(s, cfg)),
        };
        Ok(Directory { inner })
    }

    /// Look up a recipient given as local part (unquoted, may contain
    /// detail) and domain. `Ok(None)`: no such user (a 550). `Err`: the
    /// source cannot answer or the user's entry is unusable (a temporary
    /// failure, never a 550). Blocking.
    pub fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, UsersError> {
        match &self.inner {
            Inner::File(d) => d.lookup(local, domain),
            Inner::Dovecot(d) => d.lookup(local, domain),
            Inner::System(d) => d.lookup(local, domain),
        }
    }

    /// The user for an account name, not an address (`deliver` without
    /// -d: the account that runs it): the system driver takes the account
    /// itself, whatever `[users] domains` lists; the other sources look
    /// the name up without a domain. Blocking.
    pub fn lookup_account(&self, name: &str) -> Result<Option<User>, UsersError> {
        match &self.inner {
            Inner::System(d) => d.account(name),
            _ => self.lookup(name, ""),
        }
    }

    /// Every user the source can list, for admin commands (a passwd-file's
    /// usable entries in file order; a user without a domain gets an empty
    /// one). Dovecot's userdb lists nobody (see `dovecot`).
    pub fn users(&self) -> Vec<User> {
        match &self.inner {
            Inner::File(d) => d.users(),
            Inner::Dovecot(d) => d.users(),
            Inner::System(d) => d.users(),
        }
    }
}

/// Splits `local` at the first of `delimiters`: `alice+lists` ->
/// (`alice`, `lists`). None when there is no delimiter or nothing before
/// it (a leading delimiter never splits).
pub(crate) fn split_detail<'a>(local: &'a str, delimiters: &[char]) -> Option<(&'a str, &'a str)> {
    let (at, delim) = local.char_indices().find(|(_, c)| delimiters.contains(c))?;
    let base = &local[..at];
    (!base.is_empty()).then(|| (base, &local[at + delim.len_utf8()..]))
}

/// The user directory read from one passwd-file.
struct FileDirectory {
    path: PathBuf,
    mail_root: PathBuf,
    delimiters: Vec<char>,
    /// Behind a mutex because every delivery thread may notice a change of
    /// the file and swap in a new table; lookups hold it only to compare the
    /// stamp and clone the `Arc`, and search the table without it.
    state: Mutex<State>,
}

impl std::fmt::Debug for FileDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDirectory")
            .field("path", &self.path)
            .field("mail_root", &self.mail_root)
            .field("delimiters", &self.delimiters)
            .finish_non_exhaustive()
    }
}

struct State {
    table: Arc<Table>,
    /// Identity of the file the table was read from.
    loaded: Stamp,
    /// What the file looked like when a re-read last failed: not retried
    /// (nor logged again) until it changes.
    failed: Option<Seen>,
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The result of one stat() of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File(Stamp),
    Unreachable(ErrorKind),
}

/// Check a passwd-file's text without opening a directory: the number of
/// usable entries and every problem as "line N: reason" (ignored lines,
/// duplicates, broken entries). For config checks and fuzzing.
pub fn check_passwd(bytes: &[u8], mail_root: &Path) -> (usize, Vec<String>) {
    let (table, warnings) = passwd::parse_file(bytes, mail_root);
    let mut problems: Vec<(usize, String)> =
        warnings.into_iter().map(|w| (w.line, w.message)).collect();
    problems.extend(table.broken().map(|(l, r)| (l, r.to_owned())));
    let usable = table.len() - table.broken().count();
    problems.sort_by_key(|p| p.0);
    let problems = problems
        .into_iter()
        .map(|(l, m)| format!("line {l}: {m}"))
        .collect();
    (usable, problems)
}

impl FileDirectory {
    /// Read the passwd-file now. An unreadable file is an error naming it;
    /// broken lines are logged and kept (see the module doc).
    fn open(cfg: &UsersConfig, mail_root: &Path) -> Result<FileDirectory, UsersError> {
        let Some(path) = cfg.passwd_file().map(Path::to_owned) else {
            return Err(UsersError::Unavailable("no passwd-file configured".into()));
        };
        let (table, loaded) = load(&path, mail_root).map_err(|source| UsersError::Read {
            path: path.clone(),
            source,
        })?;
        tracing::debug!(file = %path.display(), entries = table.len(), "user directory loaded");
        Ok(FileDirectory {
            path,
            mail_root: mail_root.to_owned(),
            delimiters: cfg.recipient_delimiter.chars().collect(),
            state: Mutex::new(State {
                table: Arc::new(table),
                loaded,
                failed: None,
            }),
        })
    }

    /// As [`Directory::lookup`].
    fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, UsersError> {
        let table = self.current();
        let domain = domain.to_ascii_lowercase();
        if let Some(e) = find(&table, &domain, local) {
            return self.user(e, &domain, None).map(Some);
        }
        let Some((base, detail)) = split_detail(local, &self.delimiters) else {
            return Ok(None);
        };
        match find(&table, &domain, base) {
            Some(e) => self.user(e, &domain, Some(detail)).map(Some),
            None => Ok(None),
        }
    }

    /// As [`Directory::users`].
    fn users(&self) -> Vec<User> {
        let table = self.current();
        table
            .entries
            .iter()
            .filter_map(|e| self.user(e, "", None).ok())
            .collect()
    }

    fn user(&self, e: &Entry, domain: &str, detail: Option<&str>) -> Result<User, UsersError> {
        let f = e.fields.as_ref().map_err(|reason| UsersError::Broken {
            path: self.path.clone(),
            line: e.line,
            reason: reason.clone(),
        })?;
        Ok(User {
            name: passwd::display_name(&e.local, e.domain.as_deref()),
            local: e.local.clone(),
            domain: e.domain.clone().unwrap_or_else(|| domain.to_owned()),
            detail: detail.filter(|d| !d.is_empty()).map(str::to_owned),
            uid: f.uid,
            gid: f.gid,
            home: f.home.clone(),
            maildir: f.home.join("Maildir"),
            extra: f.extra.clone(),
        })
    }

    /// The table to search: re-read first when the file changed.
    fn current(&self) -> Arc<Table> {
        let seen = match std::fs::metadata(&self.path) {
            Ok(m) => Seen::File(Stamp::of(&m)),
            Err(e) => Seen::Unreachable(e.kind()),
        };
        let mut st = self.lock();
        if seen == Seen::File(st.loaded) || st.failed == Some(seen) {
            return st.table.clone();
        }
        if let Seen::Unreachable(kind) = seen {
            tracing::error!(
                file = %self.path.display(),
                error = %std::io::Error::from(kind),
                "cannot stat the passwd-file; keeping the users read before"
            );
            st.failed = Some(seen);
            return st.table.clone();
        }
        match load(&self.path, &self.mail_root) {
            Ok((table, _)) if table.len() == 0 && st.table.len() > 0 => {
                tracing::error!(
                    file = %self.path.display(),
                    "the passwd-file now has no entries (half-written?); keeping the {} read before",
                    st.table.len()
                );
                st.failed = Some(seen);
            }
            Ok((table, loaded)) => {
                tracing::info!(
                    file = %self.path.display(),
                    entries = table.len(),
                    "user directory reloaded"
                );
                st.table = Arc::new(table);
                st.loaded = loaded;
                st.failed = None;
            }
            Err(e) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %e,
                    "cannot re-read the passwd-file; keeping the users read before"
                );
                st.failed = Some(seen);
            }
        }
        st.table.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a consistent
        // State (it is only ever replaced whole), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One entry as authentication (`crate::auth`) sees it, with its password
/// field borrowed from the file's bytes (never copied into a table). No
/// `Debug`: it must not end up in a log line.
pub(crate) struct Credentials<'a> {
    /// As [`User::name`]: the entry's name, domain lowercased.
    pub name: String,
    /// As [`User::local`] and [`User::domain`]: `Directory::lookup(local,
    /// domain)` finds this same entry.
    pub local: String,
    pub domain: String,
    pub line: usize,
    /// Why the entry is unusable, as [`Directory::lookup`] would report it.
    pub broken: Option<String>,
    /// `None` when the line has no password field at all.
    pub password: Option<&'a [u8]>,
}

/// Find a login in the text of the passwd-file with the rules of
/// [`Directory::lookup`] (domain case, exact then case-insensitive local
/// part, the domain's entries before domainless ones) but without the
/// recipient delimiter: a login names a user, never a detail. `domain` is
/// "" for a login without one; only domainless entries match it then.
pub(crate) fn credentials<'a>(
    bytes: &'a [u8],
    local: &str,
    domain: &str,
) -> Option<Credentials<'a>> {
    // The mail root only shapes default homes, which authentication does
    // not use; whether an entry is broken does not depend on it.
    let (table, _warnings) = passwd::parse_file(bytes, Path::new("/"));
    let domain = domain.to_ascii_lowercase();
    let e = find(&table, &domain, local)?;
    Some(Credentials {
        name: passwd::display_name(&e.local, e.domain.as_deref()),
        local: e.local.clone(),
        domain: e.domain.clone().unwrap_or(domain),
        line: e.line,
        broken: e.fields.as_ref().err().cloned(),
        password: passwd::password_field(bytes, e.line),
    })
}

/// The entry for one candidate local part: the recipient's domain first,
/// then the entries without a domain.
fn find<'t>(table: &'t Table, domain: &str, local: &str) -> Option<&'t Entry> {
    table
        .find(Some(domain), local)
        .or_else(|| table.find(None, local))
}

/// Read and parse the file; warnings are logged with file:line. The stamp is
/// taken from the open file before reading, so a later change is noticed.
fn load(path: &Path, mail_root: &Path) -> std::io::Result<(Table, Stamp)> {
    let mut file = File::open(path)?;
    let stamp = Stamp::of(&file.metadata()?);
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (table, warnings) = passwd::parse_file(&bytes, mail_root);
    for w in warnings {
        tracing::warn!("{}:{}: {}", path.display(), w.line, w.message);
    }
    Ok((table, stamp))
}

#[cfg(test)]
mod check_tests {
    use super::*;

    #[test]
    fn check_passwd_counts_usable_entries_and_names_lines() {
        let text = b"# c\nalice@x.org:{PLAIN}p:1000:1000::::\nbob@x.org:p:abc:1000::::\n:nobody\n";
        let (n, problems) = check_passwd(text, Path::new("/m"));
        assert_eq!(n, 1);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("line 3:"), "{problems:?}");
        assert!(problems[1].starts_with("line 4:"), "{problems:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    struct Fixture {
        dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Fixture {
        fn new(text: &str) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("users");
            let f = Fixture { dir, path };
            f.write(text, 1_000_000);
            f
        }

        /// Rewrite the file in place with an explicit mtime, so a rewrite in
        /// the same second is still a change.
        fn write(&self, text: &str, mtime_secs: u64) {
            std::fs::write(&self.path, text).unwrap();
            let f = File::options().write(true).open(&self.path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime_secs))
                .unwrap();
        }

        fn open(&self, delim: &str) -> Directory {
            let cfg = UsersConfig {
                source: Source::PasswdFile(self.path.clone()),
                recipient_delimiter: delim.to_owned(),
            };
            Directory::open(&cfg, Path::new("/srv/mail")).unwrap()
        }
    }

    fn name(d: &Directory, local: &str, domain: &str) -> Option<String> {
        d.lookup(local, domain).unwrap().map(|u| u.name)
    }

    #[test]
    fn directory_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Directory>();
    }

    #[test]
    fn open_names_the_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = UsersConfig {
            source: Source::PasswdFile(dir.path().join("missing")),
            recipient_delimiter: String::new(),
        };
        let e = Directory::open(&cfg, Path::new("/srv/mail")).unwrap_err();
        assert!(matches!(e, UsersError::Read { .. }));
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn found_user_carries_every_field() {
        let f = Fixture::new(
            "# users\n\nalice@Example.org:{PLAIN}x:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n",
        );
        let d = f.open("+");
        let u = d.lookup("alice", "EXAMPLE.ORG").unwrap().unwrap();
        assert_eq!(
            u,
            User {
                name: "alice@example.org".into(),
                local: "alice".into(),
                domain: "example.org".into(),
                detail: None,
                uid: Some(1000),
                gid: Some(1000),
                home: "/home/alice".into(),
                maildir: "/home/alice/Maildir".into(),
                extra: vec![("userdb_quota_rule".into(), "*:storage=1G".into())],
            }
        );
        assert_eq!(d.lookup("bob", "example.org").unwrap(), None);
        assert_eq!(d.lookup("alice", "example.com").unwrap(), None);
    }

    #[test]
    fn default_home_is_under_mail_root_with_lowercased_domain() {
        let f = Fixture::new("Bob@Example.ORG:x\ncarol\n");
        let d = f.open("");
        let u = d.lookup("bob", "example.org").unwrap().unwrap();
        assert_eq!(u.home, PathBuf::from("/srv/mail/example.org/Bob"));
        assert_eq!(
            u.maildir,
            PathBuf::from("/srv/mail/example.org/Bob/Maildir")
        );
        let u = d.lookup("carol", "Any.Domain").unwrap().unwrap();
        assert_eq!(u.name, "carol");
        assert_eq!(u.domain, "any.domain");
        assert_eq!(u.home, PathBuf::from("/srv/mail/carol"));
    }

    #[test]
    fn broken_entry_is_a_temporary_failure_with_its_line() {
        let f = Fixture::new("ok@x.org\n# c\nbad@x.org:p:notanumber:1\nrel@x.org:p:1:1::Maildir\n");
        let d = f.open("+");
        match d.lookup("bad", "x.org") {
            Err(UsersError::Broken { path, line, reason }) => {
                assert_eq!(path, f.path);
                assert_eq!(line, 3);
                assert!(reason.contains("uid"), "{reason}");
            }
            other => panic!("expected Broken, got {other:?}"),
        }
        // Case-insensitive and detail lookups reach the broken entry too.
        assert!(matches!(
            d.lookup("BAD+x", "X.ORG"),
            Err(UsersError::Broken { line: 3, .. })
        ));
        let e = d.lookup("rel", "x.org").unwrap_err();
        assert!(e.to_string().contains(":4:"), "{e}");
        assert!(d.lookup("ok", "x.org").unwrap().is_some());
    }

    #[test]
    fn case_rules() {
        let f = Fixture::new("alice@x.org\nAnn@x.org\nann@x.org\nZed@X.org\n");
        let d = f.open("");
        assert_eq!(name(&d, "Alice", "X.Org").as_deref(), Some("alice@x.org"));
        assert_eq!(name(&d, "ZED", "x.org").as_deref(), Some("Zed@x.org"));
        // Entries differing only by case: only exact matches count.
        assert_eq!(name(&d, "Ann", "x.org").as_deref(), Some("Ann@x.org"));
        assert_eq!(name(&d, "ann", "x.org").as_deref(), Some("ann@x.org"));
        assert_eq!(name(&d, "ANN", "x.org"), None);
    }

    #[test]
    fn domain_entries_win_over_domainless_ones() {
        let f = Fixture::new("postmaster:p:1:1::/home/pm\npostmaster@x.org:p:2:2::/home/xpm\n");
        let d = f.open("");
        let u = d.lookup("postmaster", "x.org").unwrap().unwrap();
        assert_eq!(u.uid, Some(2));
        let u = d.lookup("postmaster", "y.org").unwrap().unwrap();
        assert_eq!(
            (u.uid, u.domain.as_str(), u.name.as_str()),
            (Some(1), "y.org", "postmaster")
        );
        // Even a case-insensitive domain match beats the wildcard.
        let f = Fixture::new("postmaster:p:1:1::/home/pm\nPostMaster@x.org:p:2:2::/home/xpm\n");
        let d = f.open("");
        assert_eq!(
            d.lookup("postmaster", "x.org").unwrap().unwrap().uid,
            Some(2)
        );
    }

    #[test]
    fn delimiter_splits_at_the_first_delimiter() {
        let f = Fixture::new("alice@x.org\n");
        let d = f.open("+");
        let u = d.lookup("alice+lists", "x.org").unwrap().unwrap();
        assert_eq!(
            (u.name.as_str(), u.detail.as_deref()),
            ("alice@x.org", Some("lists"))
        );
        let u = d.lookup("alice+a+b", "x.org").unwrap().unwrap();
        assert_eq!(u.detail.as_deref(), Some("a+b"));
        let u = d.lookup("Alice+Lists", "x.org").unwrap().unwrap();
        assert_eq!(u.detail.as_deref(), Some("Lists"));
        // An empty detail is no detail.
        assert_eq!(d.lookup("alice+", "x.org").unwrap().unwrap().detail, None);
        // '-' is not a delimiter here; a leading delimiter never matches.
        assert_eq!(name(&d, "alice-lists", "x.org"), None);
        assert_eq!(name(&d, "+alice", "x.org"), None);
        assert_eq!(name(&d, "bob+lists", "x.org"), None);
    }

    #[test]
    fn delimiter_set_uses_any_of_its_characters() {
        let f = Fixture::new("alice@x.org\n");
        let d = f.open("+-");
        let u = d.lookup("alice-lists", "x.org").unwrap().unwrap();
        assert_eq!(u.detail.as_deref(), Some("lists"));
        let u = d.lookup("alice-a+b", "x.org").unwrap().unwrap();
        assert_eq!(u.detail.as_deref(), Some("a+b"));
        // Only the first delimiter splits: "al-ice+x" is tried as "al", never "al-ice".
        assert_eq!(name(&d, "al-ice+x", "x.org"), None);
    }

    #[test]
    fn no_delimiter_means_no_splitting() {
        let f = Fixture::new("alice@x.org\n");
        let d = f.open("");
        assert_eq!(name(&d, "alice+lists", "x.org"), None);
    }

    #[test]
    fn literal_user_with_delimiter_wins() {
        let f = Fixture::new("a@x.org:p:1:1::/home/a\na+b@x.org:p:2:2::/home/ab\n");
        let d = f.open("+");
        let u = d.lookup("a+b", "x.org").unwrap().unwrap();
        assert_eq!((u.uid, u.detail.as_deref()), (Some(2), None));
        let u = d.lookup("a+c", "x.org").unwrap().unwrap();
        assert_eq!((u.uid, u.detail.as_deref()), (Some(1), Some("c")));
    }

    #[test]
    fn reload_after_the_file_changes() {
        let f = Fixture::new("alice@x.org:p:1:1::/home/alice\n");
        let d = f.open("+");
        assert_eq!(name(&d, "bob", "x.org"), None);
        // Same size, only the mtime tells them apart.
        f.write("bobby@x.org:p:1:1::/home/alice\n", 1_000_001);
        f.write("bob00@x.org:p:1:1::/home/alice\n", 1_000_002);
        assert_eq!(name(&d, "bob00", "x.org").as_deref(), Some("bob00@x.org"));
        assert_eq!(name(&d, "alice", "x.org"), None);
        // Replaced by rename (new inode).
        let tmp = f.dir.path().join("users.new");
        std::fs::write(&tmp, "carol@x.org\n").unwrap();
        std::fs::rename(&tmp, &f.path).unwrap();
        assert_eq!(name(&d, "carol", "x.org").as_deref(), Some("carol@x.org"));
    }

    #[test]
    fn failed_reload_keeps_the_old_table() {
        let f = Fixture::new("alice@x.org\n");
        let d = f.open("");
        // Gone: stat fails.
        std::fs::remove_file(&f.path).unwrap();
        assert_eq!(name(&d, "alice", "x.org").as_deref(), Some("alice@x.org"));
        assert_eq!(name(&d, "alice", "x.org").as_deref(), Some("alice@x.org"));
        // Unreadable (a directory in its place; works as root too).
        std::fs::create_dir(&f.path).unwrap();
        assert_eq!(name(&d, "alice", "x.org").as_deref(), Some("alice@x.org"));
        std::fs::remove_dir(&f.path).unwrap();
        // Emptied (caught half-written): refused too.
        f.write("", 1_000_005);
        assert_eq!(name(&d, "alice", "x.org").as_deref(), Some("alice@x.org"));
        // Fixed: read again.
        f.write("bob@x.org\n", 1_000_006);
        assert_eq!(name(&d, "bob", "x.org").as_deref(), Some("bob@x.org"));
        assert_eq!(name(&d, "alice", "x.org"), None);
    }

    #[test]
    fn lookups_from_many_threads_share_one_directory() {
        let f = Fixture::new("alice@x.org\n");
        let d = Arc::new(f.open("+"));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let d = d.clone();
                std::thread::spawn(move || {
                    (0..50).all(|_| matches!(d.lookup("alice+t", "x.org"), Ok(Some(_))))
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }
}
