//! One user's Sieve scripts as ManageSieve sees them, stored in Pigeonhole's
//! file layout so that Dovecot's ManageSieve and mailstow can manage the
//! same user: each script is `NAME.sieve` in the script directory
//! (`[sieve] user_dir`), the active one is a symlink at `[sieve] script`
//! whose target is relative (`sieve/NAME.sieve`), uploads go through the
//! directory's `tmp/` (write, fsync, rename, fsync the directory) and the
//! active symlink is replaced by renaming a new symlink over it.
//!
//! Must not follow a symlink to read or list a script (a `x.sieve` that
//! links to /etc/shadow is not a script), turn a name into anything but one
//! file name inside the script directory, delete a file it did not name
//! (a regular file at the active path is moved into the directory as
//! `dovecot.orig`, as Pigeonhole does, never lost), run scripts, or speak
//! the protocol: errors are values that the protocol layer maps to RFC 5804
//! response codes with [`ScriptError::code`]. Whether a script may be
//! stored (it compiles, its extensions are allowed) is the host's
//! [`ScriptCheck`]; this module never parses Sieve.
//!
//! Pigeonhole's rules followed here (checked against Dovecot 2.3.19 and its
//! sources; see the tests): names are UTF-8 without control characters,
//! '/', DEL, U+0080..U+009F, U+00FF, U+2028 and U+2029, at most 256
//! characters; only `*.sieve` entries are scripts (compiled `.svbin` files
//! and `tmp/` are not); a symlink that does not point into the script
//! directory, or a regular file at the active path, means "no active
//! script"; activating or deactivating first rescues such a regular file.
//! Stricter than Pigeonhole: a leading '.' (hidden files, "..") and names
//! whose file name would pass 255 bytes are refused, and an existing
//! `dovecot.orig` is never overwritten by a rescue (the next free
//! `dovecot.orig-N` is taken).

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use crate::{fsops, Owner, StoreError};

/// File name extension of a script (Pigeonhole's `sieve_script_file_from_name`).
const EXT: &str = ".sieve";
/// Pigeonhole's compiled form beside a script.
const BIN_EXT: &str = ".svbin";
/// Pigeonhole's SIEVE_MAX_SCRIPT_NAME_LEN, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// A file name (NAME_MAX) holds at most 255 bytes, ".sieve" included.
const MAX_NAME_BYTES: usize = 255 - EXT.len();
/// Where a regular file found at the active path goes (Pigeonhole's name).
const RESCUE_NAME: &str = "dovecot.orig";
/// A script file larger than this is not read into memory, whatever the
/// configured script size (a file put there by other means).
const READ_CAP: u64 = 64 << 20;

/// Limits on one user's script storage (Pigeonhole's `sieve_quota_*` and
/// `sieve_max_script_size`). 0 means no limit for the two quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    /// One script's size in bytes (QUOTA/MAXSIZE).
    pub max_script_size: u64,
    /// Number of scripts (QUOTA/MAXSCRIPTS); 0: no limit.
    pub max_scripts: usize,
    /// All scripts together, in bytes (QUOTA); 0: no limit.
    pub max_storage: u64,
}

impl Default for ScriptLimits {
    /// Pigeonhole's defaults: 1 MiB per script, no quota.
    fn default() -> ScriptLimits {
        ScriptLimits {
            max_script_size: 1 << 20,
            max_scripts: 0,
            max_storage: 0,
        }
    }
}

/// Why a script operation failed. [`ScriptError::code`] gives the RFC 5804
/// response code; the Display text is for the human reading the reply.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("invalid script name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("there is no script named {0:?}")]
    NonExistent(String),
    #[error("script {0:?} is active: activate another script (or none) first")]
    Active(String),
    #[error("a script named {0:?} already exists")]
    AlreadyExists(String),
    #[error("the script is {size} bytes, over the limit of {limit} bytes")]
    TooBig { size: u64, limit: u64 },
    #[error("too many scripts (at most {limit})")]
    TooManyScripts { limit: usize },
    #[error("script storage quota exceeded (at most {limit} bytes)")]
    OverQuota { limit: u64 },
    /// The host's [`ScriptCheck`] refused the script (it does not compile,
    /// or requires an extension that is unknown or not allowed).
    #[error("{0}")]
    Invalid(InvalidScript),
    /// Something at the active path that needs an administrator.
    #[error("{0}")]
    Broken(String),
    /// The file system failed (ENOSPC and EDQUOT are
    /// [`StoreError::NoSpace`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the host refused a script: where (1-based; 0 when unknown) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidScript {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for InvalidScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.message),
            (l, 0) => write!(f, "line {l}: {}", self.message),
            (l, c) => write!(f, "line {l}, column {c}: {}", self.message),
        }
    }
}

/// The host's judgement of a script before it is stored or activated
/// (PUTSCRIPT, CHECKSCRIPT, SETACTIVE): a Sieve compiler with the host's
/// policy. The store itself never parses Sieve.
pub trait ScriptCheck: Send + Sync {
    fn check(&self, script: &[u8]) -> Result<(), InvalidScript>;
}

impl ScriptError {
    /// The RFC 5804 response code, or None for a plain NO.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            ScriptError::NonExistent(_) => Some("NONEXISTENT"),
            ScriptError::Active(_) => Some("ACTIVE"),
            ScriptError::AlreadyExists(_) => Some("ALREADYEXISTS"),
            ScriptError::TooBig { .. } => Some("QUOTA/MAXSIZE"),
            ScriptError::TooManyScripts { .. } => Some("QUOTA/MAXSCRIPTS"),
            // Pigeonhole says QUOTA/MAXSTORAGE, which RFC 5804 does not
            // define; plain QUOTA is what every client understands.
            ScriptError::OverQuota { .. } | ScriptError::Store(StoreError::NoSpace { .. }) => {
                Some("QUOTA")
            }
            ScriptError::Store(StoreError::Io { .. }) => Some("TRYLATER"),
            ScriptError::InvalidName { .. }
            | ScriptError::Invalid(_)
            | ScriptError::Broken(_)
            | ScriptError::Store(_) => None,
        }
    }
}

/// [`crate::io_err`], as a script error.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ScriptError + 'a {
    move |e| ScriptError::Store(crate::io_err(op, path)(e))
}

/// Checks a script name: RFC 5804 section 1.6 as Pigeonhole enforces it
/// (`sieve_script_name_is_valid`), and never a path: no '/', no NUL, no
/// leading '.', at most [`MAX_NAME_CHARS`] characters and a file name
/// that fits in 255 bytes.
pub fn validate_name(name: &str) -> Result<(), ScriptError> {
    let bad = |reason| {
        Err(ScriptError::InvalidName {
            name: name.chars().take(MAX_NAME_CHARS).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("longer than 256 characters");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("too long for a file name (249 bytes of UTF-8 at most)");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    for c in name.chars() {
        let reason = match c {
            '/' => "'/' is not allowed",
            '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => "control characters are not allowed",
            '\u{2028}' | '\u{2029}' => "line and paragraph separators are not allowed",
            // Pigeonhole refuses U+00FF (a 0xFF byte once meant "no name").
            '\u{ff}' => "U+00FF is not allowed",
            _ => continue,
        };
        return bad(reason);
    }
    Ok(())
}

/// A user's script store: the script directory, the active-script symlink,
/// who owns what is created, and the limits.
#[derive(Clone)]
pub struct ScriptStore {
    dir: PathBuf,
    active: PathBuf,
    /// Set only when running as root: created files, directories and the
    /// symlink are chowned to it.
    owner: Option<Owner>,
    limits: ScriptLimits,
    check: Arc<dyn ScriptCheck>,
}

impl std::fmt::Debug for ScriptStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptStore")
            .field("dir", &self.dir)
            .field("active", &self.active)
            .field("owner", &self.owner)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ScriptStore {
    /// The scripts in `dir`, the active one a symlink at `active`, judged
    /// by `check` before they are stored or activated. `owner` is used only
    /// when running as root.
    pub fn new(
        dir: PathBuf,
        active: PathBuf,
        owner: Option<Owner>,
        limits: ScriptLimits,
        check: Arc<dyn ScriptCheck>,
    ) -> ScriptStore {
        ScriptStore {
            dir,
            active,
            owner: owner.filter(|_| nix::unistd::geteuid().is_root()),
            limits,
            check,
        }
    }

    /// The script directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The active-script symlink's path.
    pub fn active_path(&self) -> &Path {
        &self.active
    }

    pub fn limits(&self) -> ScriptLimits {
        self.limits
    }

    /// Every script (regular `NAME.sieve` files with a valid name, sorted)
    /// and whether it is the active one. No directory: no scripts.
    pub fn list(&self) -> Result<Vec<(String, bool)>, ScriptError> {
        let active = self.active_name()?;
        Ok(self
            .scan()?
            .into_iter()
            .map(|(name, _)| {
                let is_active = active.as_deref() == Some(name.as_str());
                (name, is_active)
            })
            .collect())
    }

    /// The active script's name: the symlink at the active path, when it
    /// points to `NAME.sieve` in the script directory (relative to the
    /// symlink's directory, or absolute). None when there is no symlink,
    /// it points elsewhere, or a regular file is there (Pigeonhole: "no
    /// active script"). The script itself may be missing.
    pub fn active_name(&self) -> Result<Option<String>, ScriptError> {
        let target = match fs::read_link(&self.active) {
            Ok(t) => t,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                return Ok(None)
            }
            Err(e) => return Err(io_err("readlink", &self.active)(e)),
        };
        let Some(file) = target.file_name().and_then(OsStr::to_str) else {
            return Ok(None);
        };
        let Some(name) = file.strip_suffix(EXT) else {
            return Ok(None);
        };
        if validate_name(name).is_err() || self.reserved(name) {
            return Ok(None);
        }
        let link_dir = self.active.parent().unwrap_or(Path::new("/"));
        let target_dir = match target.parent() {
            Some(p) if p.is_absolute() => p.to_owned(),
            Some(p) => link_dir.join(p),
            None => link_dir.to_owned(),
        };
        if normalize(&target_dir) == normalize(&self.dir) || same_dir(&target_dir, &self.dir) {
            Ok(Some(name.to_owned()))
        } else {
            Ok(None)
        }
    }

    /// A script's text; None when there is no such script (a symlink or
    /// anything but a regular file is no script).
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, ScriptError> {
        self.validate(name)?;
        let path = self.script_path(name);
        // O_NONBLOCK: a FIFO named like a script must not hang the open.
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let meta = file.metadata().map_err(io_err("stat", &path))?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > READ_CAP {
            return Err(ScriptError::TooBig {
                size: meta.len(),
                limit: READ_CAP,
            });
        }
        let mut text = Vec::with_capacity(meta.len() as usize);
        file.take(READ_CAP + 1)
            .read_to_end(&mut text)
            .map_err(io_err("read", &path))?;
        Ok(Some(text))
    }

    /// The size limit, then the host's [`ScriptCheck`]. For CHECKSCRIPT,
    /// and before PUTSCRIPT stores anything.
    pub fn check(&self, script: &[u8]) -> Result<(), ScriptError> {
        let size = script.len() as u64;
        if size > self.limits.max_script_size {
            return Err(ScriptError::TooBig {
                size,
                limit: self.limits.max_script_size,
            });
        }
        self.check.check(script).map_err(ScriptError::Invalid)
    }

    /// Would a script `name` of `size` bytes fit (HAVESPACE)? Replacing a
    /// script counts the new size instead of the old one.
    pub fn have_space(&self, name: &str, size: u64) -> Result<(), ScriptError> {
        self.validate(name)?;
        let l = self.limits;
        if size > l.max_script_size {
            return Err(ScriptError::TooBig {
                size,
                limit: l.max_script_size,
            });
        }
        if l.max_scripts == 0 && l.max_storage == 0 {
            return Ok(());
        }
        let others: Vec<(String, u64)> = self
            .scan()?
            .into_iter()
            .filter(|(n, _)| n != name)
            .collect();
        if l.max_scripts > 0 && others.len() + 1 > l.max_scripts {
            return Err(ScriptError::TooManyScripts {
                limit: l.max_scripts,
            });
        }
        let total = others.iter().map(|(_, s)| *s).sum::<u64>() + size;
        if l.max_storage > 0 && total > l.max_storage {
            return Err(ScriptError::OverQuota {
                limit: l.max_storage,
            });
        }
        Ok(())
    }

    /// PUTSCRIPT: checks the name, the limits and the script, then writes
    /// it atomically (a new file in `tmp/`, fsync, rename over
    /// `NAME.sieve`, fsync the directory). Replacing the active script
    /// keeps it active.
    pub fn put(&self, name: &str, script: &[u8]) -> Result<(), ScriptError> {
        self.validate(name)?;
        let _lock = self.lock()?;
        self.have_space(name, script.len() as u64)?;
        self.check(script)?;
        fsops::replace_file(
            &self.dir,
            &format!("tmp/{}", unique("put")),
            &format!("{name}{EXT}"),
            script,
            self.owner,
            None,
        )?;
        Ok(())
    }

    /// SETACTIVE: Some(name) makes that script (which must exist and
    /// compile) the active one by renaming a new relative symlink over
    /// the active path; None removes the symlink. A regular file at the
    /// active path is first moved into the script directory as
    /// `dovecot.orig` (Pigeonhole's rescue).
    pub fn set_active(&self, name: Option<&str>) -> Result<(), ScriptError> {
        let Some(name) = name else {
            let _lock = self.lock()?;
            self.rescue_regular()?;
            return match fs::remove_file(&self.active) {
                Ok(()) => self.sync_active_dir(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io_err("unlink", &self.active)(e)),
            };
        };
        self.validate(name)?;
        let _lock = self.lock()?;
        let Some(text) = self.get(name)? else {
            return Err(ScriptError::NonExistent(name.to_owned()));
        };
        self.check(&text)?;
        self.rescue_regular()?;
        if self.active_name()?.as_deref() == Some(name) {
            return Ok(());
        }
        self.replace_link(name)
    }

    /// DELETESCRIPT: never the active script; NONEXISTENT unless a regular
    /// `NAME.sieve` is there. Pigeonhole's compiled `NAME.svbin` goes too.
    pub fn delete(&self, name: &str) -> Result<(), ScriptError> {
        self.validate(name)?;
        let _lock = self.lock()?;
        if !self.is_script(name)? {
            return Err(ScriptError::NonExistent(name.to_owned()));
        }
        if self.active_name()?.as_deref() == Some(name) {
            return Err(ScriptError::Active(name.to_owned()));
        }
        let path = self.script_path(name);
        fs::remove_file(&path).map_err(io_err("unlink", &path))?;
        self.remove_binary(name);
        self.sync_dir()
    }

    /// RENAMESCRIPT: NONEXISTENT when `old` is missing, ALREADYEXISTS when
    /// `new` is taken (never replaced). The active script stays active
    /// under its new name, and the symlink never dangles meanwhile: the
    /// new name is linked, the symlink switched, then the old name removed.
    pub fn rename(&self, old: &str, new: &str) -> Result<(), ScriptError> {
        self.validate(old)?;
        self.validate(new)?;
        let _lock = self.lock()?;
        if !self.is_script(old)? {
            return Err(ScriptError::NonExistent(old.to_owned()));
        }
        let (from, to) = (self.script_path(old), self.script_path(new));
        let exists = |e: io::Error| match e.kind() {
            io::ErrorKind::AlreadyExists => ScriptError::AlreadyExists(new.to_owned()),
            _ => io_err("rename into", &to)(e),
        };
        if fs::symlink_metadata(&to).is_ok() {
            return Err(ScriptError::AlreadyExists(new.to_owned()));
        }
        if self.active_name()?.as_deref() == Some(old) {
            fs::hard_link(&from, &to).map_err(exists)?;
            if let Err(e) = self.replace_link(new) {
                let _ = fs::remove_file(&to);
                return Err(e);
            }
            fs::remove_file(&from).map_err(io_err("unlink", &from))?;
        } else if !fsops::move_new(&from, &to).map_err(exists)? {
            // The file system could only link: drop the old name.
            fs::remove_file(&from).map_err(io_err("unlink", &from))?;
        }
        self.remove_binary(old);
        self.sync_dir()
    }

    // -- helpers ------------------------------------------------------------

    fn validate(&self, name: &str) -> Result<(), ScriptError> {
        validate_name(name)?;
        if self.reserved(name) {
            return Err(ScriptError::InvalidName {
                name: name.to_owned(),
                reason: "reserved: the active-script symlink has this name",
            });
        }
        Ok(())
    }

    /// Pigeonhole reserves the active symlink's own name when the symlink
    /// lies inside the script directory.
    fn reserved(&self, name: &str) -> bool {
        let Some(parent) = self.active.parent() else {
            return false;
        };
        normalize(parent) == normalize(&self.dir)
            && self.active.file_name().and_then(OsStr::to_str) == Some(&format!("{name}{EXT}"))
    }

    fn script_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{EXT}"))
    }

    /// Is `NAME.sieve` a regular file (not a symlink)?
    fn is_script(&self, name: &str) -> Result<bool, ScriptError> {
        let path = self.script_path(name);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(false),
            Err(e) => Err(io_err("stat", &path)(e)),
        }
    }

    /// The scripts with their sizes: regular files named `NAME.sieve` with
    /// a valid NAME, sorted by name.
    fn scan(&self) -> Result<Vec<(String, u64)>, ScriptError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(io_err("read directory", &self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &self.dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|f| f.strip_suffix(EXT)) else {
                continue;
            };
            if validate_name(name).is_err() || self.reserved(name) {
                continue;
            }
            // DirEntry::metadata does not follow symlinks.
            match entry.metadata() {
                Ok(m) if m.is_file() => out.push((name.to_owned(), m.len())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("stat", &entry.path())(e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Creates the script directory (and missing parents) and its `tmp/`,
    /// 0700 and owned by the user.
    fn ensure_dirs(&self) -> Result<(), ScriptError> {
        let mut missing = Vec::new();
        let mut at = Some(self.dir.as_path());
        while let Some(p) = at {
            if p.as_os_str().is_empty() || fs::metadata(p).is_ok() {
                break;
            }
            missing.push(p);
            at = p.parent();
        }
        for p in missing.into_iter().rev() {
            fsops::make_dir(p, self.owner)?;
        }
        fsops::make_dir(&self.dir.join("tmp"), self.owner)?;
        Ok(())
    }

    /// An exclusive lock on the script directory for the length of one
    /// change, so two sessions of the user (mailstow's) cannot both pass
    /// the quota check and then both write. Pigeonhole takes no lock; its
    /// changes are single renames, which stay safe beside ours.
    fn lock(&self) -> Result<Flock<File>, ScriptError> {
        self.ensure_dirs()?;
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.dir)
            .map_err(io_err("open", &self.dir))?;
        Flock::lock(dir, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_err("lock", &self.dir)(errno.into()))
    }

    /// Moves a regular file found at the active path into the script
    /// directory as `dovecot.orig` (or `dovecot.orig-N` when taken), by a
    /// hard link as Pigeonhole does (a copy across file systems); the
    /// caller then replaces or removes the active path.
    fn rescue_regular(&self) -> Result<(), ScriptError> {
        let meta = match fs::symlink_metadata(&self.active) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("stat", &self.active)(e)),
        };
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        if !meta.is_file() {
            return Err(ScriptError::Broken(format!(
                "{} is neither a symlink nor a regular file; it needs fixing by hand",
                self.active.display()
            )));
        }
        for n in 0..100 {
            let name = match n {
                0 => RESCUE_NAME.to_owned(),
                n => format!("{RESCUE_NAME}-{n}"),
            };
            let to = self.script_path(&name);
            if let Ok(there) = fs::symlink_metadata(&to) {
                if there.dev() == meta.dev() && there.ino() == meta.ino() {
                    return Ok(()); // rescued before, the switch did not follow
                }
                continue;
            }
            let linked = match fs::hard_link(&self.active, &to) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EXDEV | libc::EPERM)) => {
                    self.copy_new(&self.active, &to)
                }
                Err(e) => Err(io_err("link", &to)(e)),
            };
            match linked {
                Err(ScriptError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            self.sync_dir()?;
            tracing::info!(
                from = %self.active.display(),
                to = %to.display(),
                "moved the regular file at the active Sieve path into the script directory"
            );
            return Ok(());
        }
        Err(ScriptError::Broken(format!(
            "{} is a regular file and no free {RESCUE_NAME} name is left to keep it",
            self.active.display()
        )))
    }

    /// Copies `from` to the new file `to` (never replacing one), durably:
    /// a file in `tmp/`, fsync, then a rename that refuses to replace.
    fn copy_new(&self, from: &Path, to: &Path) -> Result<(), ScriptError> {
        let text = fs::read(from).map_err(io_err("read", from))?;
        let tmp = self.dir.join("tmp").join(unique("rescue"));
        let file = fsops::create_file(&tmp, self.owner).map_err(io_err("create", &tmp))?;
        let written = (&file)
            .write_all(&text)
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &tmp));
        drop(file);
        let moved = written.and_then(|()| match fsops::move_new(&tmp, to) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(ScriptError::AlreadyExists(to.display().to_string()))
            }
            Err(e) => Err(io_err("rename into", to)(e)),
        });
        let _ = fs::remove_file(&tmp);
        moved
    }

    /// Points the active symlink at `name` atomically: a new symlink with a
    /// relative target (Pigeonhole's `sieve/NAME.sieve`) under a unique
    /// name beside the active path, renamed over it.
    fn replace_link(&self, name: &str) -> Result<(), ScriptError> {
        let link_dir = self.active.parent().unwrap_or(Path::new("/"));
        let target = relative_target(link_dir, &self.dir).join(format!("{name}{EXT}"));
        let base = self
            .active
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or(".dovecot.sieve");
        let mut attempt = 0;
        let tmp = loop {
            let tmp = link_dir.join(format!("{base}-new.{}", unique("link")));
            match std::os::unix::fs::symlink(&target, &tmp) {
                Ok(()) => break tmp,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 5 => attempt += 1,
                Err(e) => return Err(io_err("symlink", &tmp)(e)),
            }
        };
        if let Some(o) = self.owner {
            if let Err(e) = std::os::unix::fs::lchown(&tmp, Some(o.uid), Some(o.gid)) {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("lchown", &tmp)(e));
            }
        }
        if let Err(e) = fs::rename(&tmp, &self.active) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("rename into", &self.active)(e));
        }
        self.sync_active_dir()
    }

    fn remove_binary(&self, name: &str) {
        let _ = fs::remove_file(self.dir.join(format!("{name}{BIN_EXT}")));
    }

    fn sync_dir(&self) -> Result<(), ScriptError> {
        Ok(fsops::fsync_path(&self.dir)?)
    }

    fn sync_active_dir(&self) -> Result<(), ScriptError> {
        Ok(fsops::fsync_path(
            self.active.parent().unwrap_or(Path::new("/")),
        )?)
    }
}

/// A name no other process or call will pick: time, pid, a counter and
/// the host, as Pigeonhole and Maildir build theirs.
fn unique(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.replace(['/', ':'], "_"))
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{}.M{}P{}Q{}.{what}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
    )
}

/// `path` with `.` and `..` resolved by name (not through the file system),
/// as Pigeonhole's t_normpath does.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Do both paths name the same existing directory (through symlinks)?
fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.is_dir() && x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The script directory as seen from the symlink's directory: relative
/// when both are absolute (`sieve` for ~/.dovecot.sieve and ~/sieve,
/// `../x` when they are siblings), else the directory as configured.
fn relative_target(link_dir: &Path, dir: &Path) -> PathBuf {
    let (from, to) = (normalize(link_dir), normalize(dir));
    if !from.is_absolute() || !to.is_absolute() {
        return to;
    }
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c.as_os_str());
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// The host's check, faked: a line holding "invalid" is refused, with
    /// its line number.
    struct Fake;

    impl ScriptCheck for Fake {
        fn check(&self, script: &[u8]) -> Result<(), InvalidScript> {
            match script
                .split(|&b| b == b'\n')
                .position(|l| l.windows(7).any(|w| w == b"invalid"))
            {
                Some(i) => Err(InvalidScript {
                    line: i + 1,
                    column: 1,
                    message: "invalid here".into(),
                }),
                None => Ok(()),
            }
        }
    }

    struct T {
        _tmp: tempfile::TempDir,
        home: PathBuf,
        store: ScriptStore,
    }

    fn setup_with(limits: ScriptLimits) -> T {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir(&home).unwrap();
        let store = ScriptStore::new(
            home.join("sieve"),
            home.join(".dovecot.sieve"),
            None,
            limits,
            Arc::new(Fake),
        );
        T {
            _tmp: tmp,
            home,
            store,
        }
    }

    fn setup() -> T {
        setup_with(ScriptLimits::default())
    }

    fn names(t: &T) -> Vec<(String, bool)> {
        t.store.list().unwrap()
    }

    fn owned(v: &[(&str, bool)]) -> Vec<(String, bool)> {
        v.iter().map(|(n, a)| (n.to_string(), *a)).collect()
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn names_follow_rfc5804_and_pigeonhole_and_are_never_paths() {
        for ok in [
            "one",
            "a b",
            "Ünïcødé ✓",
            "x.svbin",
            "tmp",
            "a..b",
            "dovecot.orig",
        ] {
            assert!(validate_name(ok).is_ok(), "{ok:?}");
        }
        let long_chars = "é".repeat(124); // 248 bytes, 124 chars: fits
        assert!(validate_name(&long_chars).is_ok());
        for bad in [
            String::new(),
            ".".into(),
            "..".into(),
            ".hidden".into(),
            "a/b".into(),
            "../../etc/passwd".into(),
            "a\0b".into(),
            "a\nb".into(),
            "a\u{7f}b".into(),
            "a\u{85}b".into(),
            "\u{2028}".into(),
            "\u{2029}".into(),
            "ÿ".into(),
            "a".repeat(250),
            "é".repeat(125),
            "a".repeat(257),
        ] {
            let e = validate_name(&bad).unwrap_err();
            assert!(matches!(e, ScriptError::InvalidName { .. }), "{bad:?}");
            assert_eq!(e.code(), None);
        }
    }

    #[test]
    fn put_writes_atomically_with_pigeonhole_modes_and_get_returns_the_bytes() {
        let t = setup();
        assert_eq!(names(&t), vec![]);
        assert_eq!(t.store.get("one").unwrap(), None);
        let text = b"require \"fileinto\";\r\nfileinto \"Work\";\r\n";
        t.store.put("one", text).unwrap();
        let dir = t.home.join("sieve");
        assert_eq!(fs::read(dir.join("one.sieve")).unwrap(), text);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("tmp")), 0o700);
        assert_eq!(mode(&dir.join("one.sieve")), 0o600);
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        assert_eq!(t.store.get("one").unwrap().as_deref(), Some(&text[..]));
        assert_eq!(names(&t), owned(&[("one", false)]));
        // Replacing keeps one file.
        t.store.put("one", b"keep;").unwrap();
        assert_eq!(t.store.get("one").unwrap().unwrap(), b"keep;");
        assert_eq!(names(&t), owned(&[("one", false)]));
    }

    #[test]
    fn put_refuses_a_script_the_check_refuses_with_its_line_and_writes_nothing() {
        let t = setup();
        let e = t.store.put("bad", b"# c\ninvalid;\nkeep;\n").unwrap_err();
        match &e {
            ScriptError::Invalid(f) => assert_eq!(f.line, 2, "{f:?}"),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("line 2"), "{e}");
        assert_eq!(e.code(), None);
        assert_eq!(t.store.get("bad").unwrap(), None);
        assert_eq!(names(&t), vec![]);
        assert_eq!(
            fs::read_dir(t.home.join("sieve/tmp")).unwrap().count(),
            0,
            "tmp/ is clean"
        );
        assert!(t.store.check(b"keep;").is_ok());
    }

    #[test]
    fn list_shows_only_regular_sieve_files_with_valid_names() {
        let t = setup();
        t.store.put("real", b"keep;").unwrap();
        let dir = t.home.join("sieve");
        fs::write(dir.join("real.svbin"), b"\0bin").unwrap();
        fs::write(dir.join("notes.txt"), b"x").unwrap();
        fs::write(dir.join(".hidden.sieve"), b"keep;").unwrap();
        fs::write(dir.join(".sieve"), b"keep;").unwrap();
        fs::create_dir(dir.join("folder.sieve")).unwrap();
        fs::write(t.home.join("secret"), b"root:x:0:0").unwrap();
        symlink(t.home.join("secret"), dir.join("shadow.sieve")).unwrap();
        nix::unistd::mkfifo(&dir.join("pipe.sieve"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        fs::write(dir.join("tmp/half.sieve"), b"keep;").unwrap();
        assert_eq!(names(&t), owned(&[("real", false)]));
    }

    #[test]
    fn a_script_that_is_a_symlink_is_never_served_or_deleted_through() {
        let t = setup();
        t.store.put("real", b"keep;").unwrap();
        let secret = t.home.join("shadow");
        fs::write(&secret, b"root:$6$secret").unwrap();
        let dir = t.home.join("sieve");
        symlink(&secret, dir.join("shadow.sieve")).unwrap();
        symlink("/etc/shadow", dir.join("etc.sieve")).unwrap();
        assert_eq!(t.store.get("shadow").unwrap(), None);
        assert_eq!(t.store.get("etc").unwrap(), None);
        let e = t.store.delete("shadow").unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        let e = t.store.set_active(Some("shadow")).unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        let e = t.store.rename("shadow", "x").unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        assert_eq!(fs::read(&secret).unwrap(), b"root:$6$secret");
        // A FIFO named like a script neither hangs nor counts.
        nix::unistd::mkfifo(&dir.join("fifo.sieve"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(t.store.get("fifo").unwrap(), None);
    }

    #[test]
    fn set_active_makes_a_relative_symlink_like_pigeonhole_and_none_removes_it() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        t.store.put("two", b"discard;").unwrap();
        let link = t.home.join(".dovecot.sieve");
        t.store.set_active(Some("one")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("sieve/one.sieve"));
        assert_eq!(fs::read(&link).unwrap(), b"keep;");
        assert_eq!(names(&t), owned(&[("one", true), ("two", false)]));
        t.store.set_active(Some("two")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("sieve/two.sieve"));
        assert_eq!(names(&t), owned(&[("one", false), ("two", true)]));
        // Activating the active script again changes nothing.
        t.store.set_active(Some("two")).unwrap();
        assert_eq!(t.store.active_name().unwrap().as_deref(), Some("two"));
        // Replacing the active script keeps it active.
        t.store.put("two", b"keep;").unwrap();
        assert_eq!(names(&t), owned(&[("one", false), ("two", true)]));
        t.store.set_active(None).unwrap();
        assert!(fs::symlink_metadata(&link).is_err());
        assert_eq!(names(&t), owned(&[("one", false), ("two", false)]));
        t.store.set_active(None).unwrap(); // nothing active: still fine
        let leftovers: Vec<_> = fs::read_dir(&t.home)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("-new."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn set_active_refuses_missing_and_broken_scripts() {
        let t = setup();
        let e = t.store.set_active(Some("nope")).unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        fs::create_dir_all(t.home.join("sieve")).unwrap();
        fs::write(t.home.join("sieve/broken.sieve"), b"invalid {").unwrap();
        let e = t.store.set_active(Some("broken")).unwrap_err();
        assert!(matches!(e, ScriptError::Invalid(_)), "{e:?}");
        assert!(fs::symlink_metadata(t.home.join(".dovecot.sieve")).is_err());
    }

    #[test]
    fn a_regular_file_at_the_active_path_is_not_active_and_is_moved_aside_on_activation() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        let active = t.home.join(".dovecot.sieve");
        fs::write(&active, b"# hand-made\nkeep;\n").unwrap();
        assert_eq!(names(&t), owned(&[("one", false)]));
        assert_eq!(t.store.active_name().unwrap(), None);
        t.store.set_active(Some("one")).unwrap();
        assert_eq!(
            fs::read(t.home.join("sieve/dovecot.orig.sieve")).unwrap(),
            b"# hand-made\nkeep;\n"
        );
        assert_eq!(
            fs::read_link(&active).unwrap(),
            Path::new("sieve/one.sieve")
        );
        assert_eq!(names(&t), owned(&[("dovecot.orig", false), ("one", true)]));
        // Again, with dovecot.orig taken: the older rescue is kept too.
        fs::remove_file(&active).unwrap();
        fs::write(&active, b"# second\nkeep;\n").unwrap();
        t.store.set_active(None).unwrap();
        assert!(fs::symlink_metadata(&active).is_err());
        assert_eq!(
            fs::read(t.home.join("sieve/dovecot.orig.sieve")).unwrap(),
            b"# hand-made\nkeep;\n"
        );
        assert_eq!(
            fs::read(t.home.join("sieve/dovecot.orig-1.sieve")).unwrap(),
            b"# second\nkeep;\n"
        );
    }

    #[test]
    fn something_else_at_the_active_path_is_reported_not_touched() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        fs::create_dir(t.home.join(".dovecot.sieve")).unwrap();
        let e = t.store.set_active(Some("one")).unwrap_err();
        assert!(matches!(e, ScriptError::Broken(_)), "{e:?}");
        assert!(t.home.join(".dovecot.sieve").is_dir());
        assert_eq!(names(&t), owned(&[("one", false)]));
    }

    #[test]
    fn symlinks_that_point_outside_the_script_dir_are_not_active() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        let active = t.home.join(".dovecot.sieve");
        let other = t.home.join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("one.sieve"), b"keep;").unwrap();
        symlink(other.join("one.sieve"), &active).unwrap();
        assert_eq!(t.store.active_name().unwrap(), None);
        fs::remove_file(&active).unwrap();
        symlink("sieve/../other/one.sieve", &active).unwrap();
        assert_eq!(t.store.active_name().unwrap(), None);
        fs::remove_file(&active).unwrap();
        symlink("sieve/notes.txt", &active).unwrap();
        assert_eq!(t.store.active_name().unwrap(), None);
        // An absolute link, or a roundabout relative one, into the dir is fine.
        fs::remove_file(&active).unwrap();
        symlink(t.home.join("sieve/one.sieve"), &active).unwrap();
        assert_eq!(names(&t), owned(&[("one", true)]));
        fs::remove_file(&active).unwrap();
        symlink("./other/../sieve/one.sieve", &active).unwrap();
        assert_eq!(names(&t), owned(&[("one", true)]));
        // Activating replaces a foreign symlink (its target is untouched).
        fs::remove_file(&active).unwrap();
        symlink(other.join("one.sieve"), &active).unwrap();
        t.store.set_active(Some("one")).unwrap();
        assert_eq!(
            fs::read_link(&active).unwrap(),
            Path::new("sieve/one.sieve")
        );
        assert!(other.join("one.sieve").exists());
    }

    #[test]
    fn delete_refuses_the_active_script_and_missing_ones() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        t.store.put("two", b"keep;").unwrap();
        t.store.set_active(Some("one")).unwrap();
        let e = t.store.delete("one").unwrap_err();
        assert_eq!(e.code(), Some("ACTIVE"));
        assert!(t.store.get("one").unwrap().is_some());
        let e = t.store.delete("three").unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        fs::write(t.home.join("sieve/two.svbin"), b"bin").unwrap();
        t.store.delete("two").unwrap();
        assert!(!t.home.join("sieve/two.sieve").exists());
        assert!(!t.home.join("sieve/two.svbin").exists());
        assert_eq!(names(&t), owned(&[("one", true)]));
        t.store.set_active(None).unwrap();
        t.store.delete("one").unwrap();
        assert_eq!(names(&t), vec![]);
    }

    #[test]
    fn rename_keeps_the_active_script_active_and_never_replaces() {
        let t = setup();
        t.store.put("one", b"keep;").unwrap();
        t.store.put("two", b"discard;").unwrap();
        t.store.set_active(Some("one")).unwrap();
        let e = t.store.rename("one", "two").unwrap_err();
        assert_eq!(e.code(), Some("ALREADYEXISTS"));
        assert_eq!(t.store.get("two").unwrap().unwrap(), b"discard;");
        let e = t.store.rename("nope", "x").unwrap_err();
        assert_eq!(e.code(), Some("NONEXISTENT"));
        t.store.rename("one", "uno").unwrap();
        assert_eq!(names(&t), owned(&[("two", false), ("uno", true)]));
        assert_eq!(
            fs::read_link(t.home.join(".dovecot.sieve")).unwrap(),
            Path::new("sieve/uno.sieve")
        );
        assert_eq!(fs::read(t.home.join(".dovecot.sieve")).unwrap(), b"keep;");
        t.store.rename("two", "dos").unwrap();
        assert_eq!(names(&t), owned(&[("dos", false), ("uno", true)]));
        assert_eq!(t.store.get("dos").unwrap().unwrap(), b"discard;");
        let e = t.store.rename("dos", "../escape").unwrap_err();
        assert!(matches!(e, ScriptError::InvalidName { .. }));
    }

    #[test]
    fn limits_map_to_quota_codes_and_replacing_a_script_counts_once() {
        let t = setup_with(ScriptLimits {
            max_script_size: 100,
            max_scripts: 2,
            max_storage: 150,
        });
        let e = t.store.put("big", &[b'#'; 101]).unwrap_err();
        assert_eq!(e.code(), Some("QUOTA/MAXSIZE"), "{e}");
        let e = t.store.check(&[b'#'; 101]).unwrap_err();
        assert_eq!(e.code(), Some("QUOTA/MAXSIZE"));
        t.store.put("a", &[b'#'; 60]).unwrap();
        t.store.put("b", &[b'#'; 60]).unwrap();
        let e = t.store.put("c", b"keep;").unwrap_err();
        assert_eq!(e.code(), Some("QUOTA/MAXSCRIPTS"), "{e}");
        assert!(e.to_string().contains("at most 2"), "{e}");
        // Replacing b counts its new size, not one more script.
        t.store.put("b", &[b'#'; 90]).unwrap();
        let e = t.store.put("b", &[b'#'; 95]).unwrap_err();
        assert_eq!(e.code(), Some("QUOTA"), "{e}");
        assert_eq!(t.store.have_space("a", 60).map_err(|e| e.code()), Ok(()));
        assert_eq!(
            t.store.have_space("z", 1).map_err(|e| e.code()),
            Err(Some("QUOTA/MAXSCRIPTS"))
        );
        assert_eq!(
            t.store.have_space("a", 101).map_err(|e| e.code()),
            Err(Some("QUOTA/MAXSIZE"))
        );
        assert_eq!(names(&t), owned(&[("a", false), ("b", false)]));
    }

    #[test]
    fn concurrent_puts_never_pass_the_script_count_together() {
        let t = setup_with(ScriptLimits {
            max_script_size: 1 << 20,
            max_scripts: 3,
            max_storage: 0,
        });
        let results: Vec<Result<(), ScriptError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..12)
                .map(|i| {
                    let store = t.store.clone();
                    s.spawn(move || store.put(&format!("s{i}"), b"keep;"))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.code(), Some("QUOTA/MAXSCRIPTS"), "{e}");
        }
        assert_eq!(names(&t).len(), 3);
    }

    #[test]
    fn the_active_symlinks_own_name_is_reserved_when_it_lies_in_the_script_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sieve");
        let store = ScriptStore::new(
            dir.clone(),
            dir.join("active.sieve"),
            None,
            ScriptLimits::default(),
            Arc::new(Fake),
        );
        let e = store.put("active", b"keep;").unwrap_err();
        assert!(matches!(e, ScriptError::InvalidName { .. }), "{e:?}");
        store.put("one", b"keep;").unwrap();
        store.set_active(Some("one")).unwrap();
        assert_eq!(
            fs::read_link(dir.join("active.sieve")).unwrap(),
            Path::new("one.sieve")
        );
        assert_eq!(store.list().unwrap(), owned(&[("one", true)]));
    }

    #[test]
    fn link_targets_are_relative_to_the_symlinks_directory() {
        assert_eq!(
            relative_target(Path::new("/h/u"), Path::new("/h/u/sieve")),
            Path::new("sieve")
        );
        assert_eq!(
            relative_target(Path::new("/h/u/a"), Path::new("/h/u/b/c")),
            Path::new("../b/c")
        );
        assert_eq!(
            relative_target(Path::new("/h/u/"), Path::new("/h/./u/sieve/")),
            Path::new("sieve")
        );
        assert_eq!(
            relative_target(Path::new("/h"), Path::new("/h")),
            Path::new("")
        );
        let t = tempfile::tempdir().unwrap();
        let store = ScriptStore::new(
            t.path().join("scripts/sieve"),
            t.path().join("home/.dovecot.sieve"),
            None,
            ScriptLimits::default(),
            Arc::new(Fake),
        );
        fs::create_dir(t.path().join("home")).unwrap();
        store.put("one", b"keep;").unwrap();
        store.set_active(Some("one")).unwrap();
        let link = t.path().join("home/.dovecot.sieve");
        assert_eq!(
            fs::read_link(&link).unwrap(),
            Path::new("../scripts/sieve/one.sieve")
        );
        assert_eq!(fs::read(&link).unwrap(), b"keep;");
        assert_eq!(store.list().unwrap(), owned(&[("one", true)]));
    }

    #[test]
    fn as_root_everything_created_belongs_to_the_user() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "needs root to give files to another uid; the tests run as root"
        );
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir(&home).unwrap();
        let owner = Owner {
            uid: 4242,
            gid: 4243,
        };
        let store = ScriptStore::new(
            home.join("sieve"),
            home.join(".dovecot.sieve"),
            Some(owner),
            ScriptLimits::default(),
            Arc::new(Fake),
        );
        store.put("one", b"keep;").unwrap();
        store.set_active(Some("one")).unwrap();
        fs::remove_file(home.join(".dovecot.sieve")).unwrap();
        fs::write(home.join(".dovecot.sieve"), b"keep;").unwrap();
        // A copy is made only across file systems; the hard link keeps root.
        store.set_active(Some("one")).unwrap();
        for p in ["sieve", "sieve/tmp", "sieve/one.sieve", ".dovecot.sieve"] {
            let m = fs::symlink_metadata(home.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{p}");
        }
    }

    #[test]
    fn no_input_panics_and_no_path_escapes_the_script_dir() {
        let t = setup_with(ScriptLimits {
            max_script_size: 64,
            max_scripts: 3,
            max_storage: 0,
        });
        let nasty = [
            "",
            ".",
            "..",
            "/",
            "//",
            "a/../../x",
            "\0",
            "%",
            "%h",
            "~",
            "~root",
            "\\..\\x",
            "tmp",
            "tmp/x",
            "\u{feff}",
            "\u{202e}abc",
            "x\u{ff}",
            "🙂",
            "CON",
            "*",
            "?",
        ];
        let texts: [&[u8]; 5] = [b"", b"keep;", b"\xff\xfe\x00", b"if", &[b'x'; 65]];
        for n in nasty {
            for text in texts {
                let _ = t.store.put(n, text);
                let _ = t.store.check(text);
            }
            let _ = t.store.get(n);
            let _ = t.store.have_space(n, u64::MAX);
            let _ = t.store.set_active(Some(n));
            let _ = t.store.rename(n, "x");
            let _ = t.store.rename("x", n);
            let _ = t.store.delete(n);
            let _ = t.store.list();
        }
        let _ = t.store.set_active(None);
        // Nothing outside home/sieve and the active path was created.
        let mut top: Vec<_> = fs::read_dir(&t.home)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        assert!(
            top == ["sieve"] || top == [".dovecot.sieve", "sieve"],
            "{top:?}"
        );
        for e in fs::read_dir(t.home.join("sieve")).unwrap() {
            let e = e.unwrap();
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(n == "tmp" || n.ends_with(".sieve"), "{n}");
            assert!(!n.starts_with('.'), "{n}");
        }
    }
}
