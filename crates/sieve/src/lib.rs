//! A Sieve host (RFC 5228 and its extensions) over sieve-rs, with
//! Pigeonhole's semantics: finds a user's scripts (the active script,
//! admin scripts before and after it, includes), compiles them once and
//! recompiles them when they change, runs the chain on one recipient's copy,
//! answers the interpreter's questions through the host's [`Lookups`], and
//! returns a [`Plan`]: what to store where, what to send, what to refuse.
//! Must not write mail, send anything or touch a mailbox: the host carries
//! out the plan, and answers "does this folder exist" itself. The only file
//! it writes is Pigeonhole's `<script>.log` beside a user's failing script.
//!
//! # Example
//!
//! ```
//! use mailstow_sieve::{Account, Filter, Lookups, Mailboxes, MessageEnvelope, SieveConfig};
//!
//! struct NoFolders;
//! impl Mailboxes for NoFolders {
//!     fn exists(&self, _folder: &str) -> bool { false }
//!     fn refuse_name(&self, _folder: &str) -> Option<String> { None }
//!     fn keeps_flag(&self, _flag: &str) -> bool { true }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(
//!     dir.path().join(".dovecot.sieve"),
//!     "require \"fileinto\"; if header :contains \"subject\" \"invoice\" { fileinto \"Bills\"; }",
//! ).unwrap();
//! let filter = Filter::new(&SieveConfig::default(), "mx.example.org");
//! let account = Account {
//!     name: "alice@example.org",
//!     local: "alice",
//!     domain: "example.org",
//!     detail: None,
//!     home: dir.path(),
//!     owner: None,
//!     script: None,
//!     script_dir: None,
//! };
//! let mut seen = |_: &str| Ok(false);
//! let mut look = Lookups { duplicate: &mut seen, mailboxes: &NoFolders };
//! let env = MessageEnvelope { from: Some("bob@example.net"), to: "alice@example.org", orcpt: None };
//! let plan = filter
//!     .run(&account, None, &env, b"Subject: invoice 42\r\n\r\nPay me.\r\n", &mut look)
//!     .unwrap();
//! assert_eq!(plan.stores.len(), 1);
//! assert_eq!(plan.stores[0].folder, "Bills");
//! ```
//!
//! Rules sieve-rs leaves to its host (README.md, 'sieve-rs 0.7.3: what the
//! host handles'), each with a test:
//! - the whole plan is buffered; a script that fails (compile error,
//!   runtime error, a limit) loses all its actions and the message gets an
//!   implicit keep; the chain stops there;
//! - explicit `keep` survives a later `fileinto` (see `compile`);
//! - `keep` and `fileinto "INBOX"` (any case) are one store, flags merged;
//! - redirects are judged here, not by the crate's silent limits: more than
//!   `max_redirects` is a runtime error (as in Pigeonhole); one that would
//!   loop (our X-Sieve-Redirected-From or Delivered-To, 30 Received
//!   headers) is skipped, logged and noted, and the message kept; one to the
//!   user's own address is allowed, as in Pigeonhole;
//! - at most `max_actions` actions; vacation periods clamped to the
//!   configured minimum and maximum;
//! - with [`Filter::run_with_trace`] the scripts see the header fields the
//!   caller stores above the message, as under Dovecot's LMTP.
//!
//! # Modules
//!
//! - this file: the host's surface ([`Filter`], [`Lookups`], [`Mailboxes`],
//!   [`Account`]), where scripts are found, the compile cache and the
//!   user's log;
//! - `run`: running the chain ([`Filter::run`]) and answering the
//!   interpreter's events;
//! - [`compile`]: compiling a script with our checks and the allowed
//!   extensions;
//! - [`plan`]: the result, as values;
//! - [`vacation`]: the auto-reply rules sieve-rs misses;
//! - [`generated`]: the fields of a vacation reply or notification that
//!   depend on the delivery (who it comes from, whose script sent it);
//! - `spamtest`: spam and virus scores from configured headers;
//! - `config`: the settings ([`SieveConfig`]).

pub mod compile;
mod config;
pub mod generated;
pub mod plan;
mod run;
mod spamtest;
pub mod vacation;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sieve::compiler::grammar::Capability;
use sieve::{Runtime, Sieve};

use compile::{CompileFailure, CompileLimits};
pub use config::{ScoreHeader, ScoreType, SieveConfig};
pub use plan::{ErrorKind, OutKind, Outgoing, Plan, PlanError, Reject, Store};

/// A failure that must not become a verdict on the mail: the recipient gets
/// 451 and the MTA tries again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TempFailure(pub String);

/// What the host needs from the outside while a script runs.
pub struct Lookups<'a> {
    /// Has this duplicate-tracking id been recorded (and not expired)?
    pub duplicate: &'a mut dyn FnMut(&str) -> Result<bool, String>,
    /// The user's mailbox, as far as a script may ask about it.
    pub mailboxes: &'a dyn Mailboxes,
}

/// The user's mail store as a script may ask about it; the host answers
/// from its own storage (this crate never touches it).
pub trait Mailboxes {
    /// Does this folder (an IMAP name, "." between levels) exist?
    fn exists(&self, folder: &str) -> bool;
    /// Why the store could never hold a folder of this name (a name no
    /// IMAP server could use), or None when it could.
    fn refuse_name(&self, folder: &str) -> Option<String>;
    /// Can the store keep this IMAP flag or keyword? Others are dropped,
    /// as Pigeonhole drops them.
    fn keeps_flag(&self, flag: &str) -> bool;
}

/// Whose script runs: the names a script path template expands (`%u`,
/// `%d`, `%n`, `%h`), what the script's environment sees, and who owns
/// what the host writes for the user.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// The user's address, `local@domain`.
    pub name: &'a str,
    pub local: &'a str,
    pub domain: &'a str,
    /// The recipient's `+detail`, if the address had one.
    pub detail: Option<&'a str>,
    pub home: &'a Path,
    /// (uid, gid) of the user's files, used when running as root.
    pub owner: Option<(u32, u32)>,
    /// The user's own active script path, when the user directory names
    /// one (Dovecot's userdb `sieve` field); else `[sieve] script`.
    pub script: Option<&'a Path>,
    /// The user's own script directory (`include :personal`, ManageSieve),
    /// when the user directory names one (`sieve_dir`); else `[sieve]
    /// user_dir`.
    pub script_dir: Option<&'a Path>,
}

/// The user's active script: `user.script`, or `template` (`[sieve]
/// script`) expanded for the user.
pub fn user_script_path(template: &str, user: &Account<'_>) -> PathBuf {
    user.script
        .map_or_else(|| PathBuf::from(expand(template, user)), Path::to_owned)
}

/// The user's script directory: `user.script_dir`, or `template` (`[sieve]
/// user_dir`) expanded for the user.
pub fn user_dir_path(template: &str, user: &Account<'_>) -> PathBuf {
    user.script_dir
        .map_or_else(|| PathBuf::from(expand(template, user)), Path::to_owned)
}

/// One recipient's envelope as the script sees it.
pub struct MessageEnvelope<'a> {
    pub from: Option<&'a str>,
    pub to: &'a str,
    pub orcpt: Option<&'a str>,
}

/// The host: runtimes and the compiled-script cache, shared by all threads.
pub struct Filter {
    cfg: SieveConfig,
    user_rt: Runtime,
    admin_rt: Runtime,
    cache: Mutex<HashMap<PathBuf, Cached>>,
}

/// A compiled script, or why it does not compile.
type Compiled = Result<Arc<Sieve>, CompileFailure>;

#[derive(Clone)]
struct Cached {
    stamp: Stamp,
    compiled: Compiled,
}

/// Identity of a script file's contents: a change of any part recompiles.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

const CACHE_MAX: usize = 10_000;

/// A script in the chain.
#[derive(Clone, Debug)]
struct ScriptRef {
    path: PathBuf,
    admin: bool,
    /// Named on the command line (`sieve test`), not found by lookup.
    explicit: bool,
}

impl Filter {
    /// The host for `cfg`, naming itself `hostname` (the environment's
    /// `host`, generated messages' Message-IDs).
    pub fn new(s: &SieveConfig, hostname: &str) -> Filter {
        let base = Runtime::new()
            .with_cpu_limit(s.max_cpu)
            .with_max_nested_includes(s.max_include_depth)
            // The crate drops redirects past its limits without a word; we
            // let one more through and fail the script ourselves.
            .with_max_redirects(s.max_redirects + 1)
            .with_max_out_messages(s.max_actions + 1)
            .with_max_received_headers(usize::MAX / 2)
            .with_default_vacation_expiry(s.vacation_default_period.as_secs())
            .with_local_hostname(hostname.to_owned())
            .with_protected_headers([
                "Received",
                "Auto-Submitted",
                "Delivered-To",
                "Return-Path",
                "Original-Subject",
                "Original-From",
            ])
            .with_valid_notification_uri("mailto")
            .with_env_variable("name", "mailstow")
            .with_env_variable("version", env!("CARGO_PKG_VERSION"))
            .with_env_variable("host", hostname.to_owned())
            .with_env_variable(
                "domain",
                hostname
                    .split_once('.')
                    .map_or(hostname, |(_, d)| d)
                    .to_owned(),
            )
            .with_env_variable("location", "MDA")
            .with_env_variable("phase", "during");
        let disallowed: Vec<Capability> = Capability::all()
            .iter()
            .filter(|c| !compile::allowed(c, true))
            .cloned()
            .collect();
        let admin_rt = base.clone().without_capabilities(disallowed.clone());
        let mut user_rt = base.without_capabilities(disallowed);
        if !s.user_editheader {
            user_rt = user_rt.without_capability(Capability::EditHeader);
        }
        Filter {
            cfg: s.clone(),
            user_rt,
            admin_rt,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// The user's active script path (the account's own, or `[sieve]
    /// script` expanded).
    pub fn user_script(&self, user: &Account<'_>) -> PathBuf {
        user_script_path(&self.cfg.script, user)
    }

    /// The chain for one recipient, the scripts that exist only (so that
    /// each knows whether it is the last), compiled: before scripts, the
    /// user's script (`script`, or the configured one), after scripts.
    fn load_chain(
        &self,
        user: &Account<'_>,
        script: Option<&Path>,
    ) -> Result<Vec<(ScriptRef, Compiled)>, TempFailure> {
        let admin = |p: &PathBuf| ScriptRef {
            path: p.clone(),
            admin: true,
            explicit: false,
        };
        let mut chain: Vec<ScriptRef> = self.cfg.before.iter().map(admin).collect();
        chain.push(ScriptRef {
            path: script.map_or_else(|| self.user_script(user), Path::to_owned),
            admin: false,
            explicit: script.is_some(),
        });
        chain.extend(self.cfg.after.iter().map(admin));
        let mut loaded = Vec::new();
        for sref in chain {
            if let Some(c) = self.load(&sref, user)? {
                loaded.push((sref, c));
            }
        }
        Ok(loaded)
    }

    /// Where `include :personal` looks: the user's script directory, or the
    /// directory of a script named explicitly (as Pigeonhole's sieve-test).
    fn personal_dir(&self, sref: &ScriptRef, user: &Account<'_>) -> PathBuf {
        match (&sref.explicit, sref.path.parent()) {
            (true, Some(dir)) => dir.to_owned(),
            _ => user_dir_path(&self.cfg.user_dir, user),
        }
    }

    /// Compile one script file with the limits of a user (or admin) script;
    /// for `sieve check`. None: the file does not exist.
    pub fn check(
        &self,
        path: &Path,
        admin: bool,
    ) -> Result<Option<Result<(), CompileFailure>>, TempFailure> {
        Ok(self
            .compile_cached(path, self.limits(admin))?
            .map(|(r, _)| r.map(|_| ())))
    }

    /// The compiled script, None when there is none, or its compile error.
    fn load(&self, sref: &ScriptRef, user: &Account<'_>) -> Result<Option<Compiled>, TempFailure> {
        let limits = self.limits(sref.admin);
        match self.compile_cached(&sref.path, limits)? {
            None => Ok(None),
            Some((Err(e), fresh)) => {
                if fresh && !sref.admin {
                    self.user_log(user, &sref.path, &e.to_string());
                }
                Ok(Some(Err(e)))
            }
            Some((Ok(s), _)) => Ok(Some(Ok(s))),
        }
    }

    fn limits(&self, admin: bool) -> CompileLimits {
        CompileLimits {
            max_script_size: self.cfg.max_script_size,
            max_include_depth: self.cfg.max_include_depth,
            editheader: admin || self.cfg.user_editheader,
        }
    }

    /// Compile `path` unless the cached result is for the same file
    /// contents. Returns the result and whether it was compiled just now.
    fn compile_cached(
        &self,
        path: &Path,
        limits: CompileLimits,
    ) -> Result<Option<(Compiled, bool)>, TempFailure> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TempFailure(format!("{}: {e}", path.display()))),
        };
        if meta.is_dir() {
            return Ok(None);
        }
        let stamp = Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        };
        if let Ok(cache) = self.cache.lock() {
            if let Some(c) = cache.get(path).filter(|c| c.stamp == stamp) {
                return Ok(Some((c.compiled.clone(), false)));
            }
        }
        let compiled = if meta.len() > limits.max_script_size as u64 {
            Err(CompileFailure {
                line: 0,
                column: 0,
                message: format!(
                    "script is {} bytes, over the limit of {}",
                    meta.len(),
                    limits.max_script_size
                ),
            })
        } else {
            let text = match std::fs::read(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(TempFailure(format!("{}: {e}", path.display()))),
            };
            compile::compile(&text, limits)
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(
                path.to_owned(),
                Cached {
                    stamp,
                    compiled: compiled.clone(),
                },
            );
        }
        Ok(Some((compiled, true)))
    }

    /// A readable entry in the log beside the user's script (Pigeonhole
    /// writes `<script>.log`), so the owner can see why a filter did not act.
    fn user_log(&self, user: &Account<'_>, script: &Path, problem: &str) {
        let mut log = script.as_os_str().to_owned();
        log.push(".log");
        let log = PathBuf::from(log);
        // Bounded: start over when it grew past 64 KiB.
        let truncate = std::fs::metadata(&log)
            .map(|m| m.len() > 64 * 1024)
            .unwrap_or(false);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .custom_flags_nofollow()
            .open(&log);
        match file {
            Ok(mut f) => {
                let when = mailstow_proto::date::rfc5322(SystemTime::now());
                let _ = writeln!(f, "{when}: {}: {problem}", script.display());
                if let (Some((uid, gid)), true) = (user.owner, nix::unistd::geteuid().is_root()) {
                    let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
                }
            }
            Err(e) => {
                tracing::debug!(log = %log.display(), error = %e, "cannot write the user's sieve log")
            }
        }
    }
}

trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW).mode(0o600)
    }
}

/// Expand %h (home), %u (user), %d (domain), %n (local part), %% and a
/// leading "~/".
pub fn expand(template: &str, user: &Account<'_>) -> String {
    let home = user.home.to_string_lossy();
    let template = match template.strip_prefix("~/") {
        Some(rest) => format!("%h/{rest}"),
        None => template.to_owned(),
    };
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&home),
            Some('u') => out.push_str(user.name),
            Some('d') => out.push_str(user.domain),
            Some('n') => out.push_str(user.local),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The unfolded values of header `name` (any case) in the message head;
/// the one header reader of the delivery path (the Sieve host, Message-ID
/// for duplicate suppression, Return-Path for `sieve filter`).
pub fn header_values(message: &[u8], name: &str) -> Vec<String> {
    let head_end = memchr::memmem::find(message, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(message, b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut values = Vec::new();
    let mut current: Option<String> = None;
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(v) = current.as_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some(v) = current.take() {
            values.push(v.trim().to_owned());
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.trim().eq_ignore_ascii_case(name) {
                current = Some(v.trim().to_owned());
            }
        }
    }
    values.extend(current.map(|v| v.trim().to_owned()));
    values
}

#[cfg(test)]
mod tests;
