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
//! Rules the crate leaves to us (SIEVE-HOST.md), each with a test:
//! - the whole plan is buffered; a script that fails (compile error,
//!   runtime error, a limit) loses all its actions and the message gets an
//!   implicit keep; the chain stops there;
//! - explicit `keep` survives a later `fileinto` (see `compile`);
//! - `keep` and `fileinto "INBOX"` (any case) are one store, flags merged;
//! - redirects the crate would drop silently are seen and logged here:
//!   loops (our Delivered-To, Received count), the user's own address, and
//!   more than `max_redirects` (a runtime error, as in Pigeonhole);
//! - at most `max_actions` actions; vacation periods clamped to the
//!   configured minimum and maximum.

pub mod compile;
mod config;
pub mod plan;
pub mod vacation;

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sieve::compiler::grammar::Capability;
use sieve::{
    Envelope, Event, Input, Mailbox, Recipient, Runtime, Script, Sieve, SpamStatus, VirusStatus,
};

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

#[derive(Clone)]
struct Cached {
    stamp: Stamp,
    compiled: Result<Arc<Sieve>, CompileFailure>,
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
/// A message with this many Received headers is looping.
const MAX_RECEIVED: usize = 30;

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

    /// The user's active script path (`[sieve] script` expanded).
    pub fn user_script(&self, user: &Account<'_>) -> PathBuf {
        PathBuf::from(expand(&self.cfg.script, user))
    }

    /// Run the chain for one recipient: before scripts, the user's script
    /// (`script`, or the configured one), after scripts.
    pub fn run(
        &self,
        user: &Account<'_>,
        script: Option<&Path>,
        env: &MessageEnvelope<'_>,
        message: &[u8],
        look: &mut Lookups<'_>,
    ) -> Result<Plan, TempFailure> {
        let mut chain: Vec<ScriptRef> = self
            .cfg
            .before
            .iter()
            .map(|p| ScriptRef {
                path: p.clone(),
                admin: true,
                explicit: false,
            })
            .collect();
        chain.push(ScriptRef {
            path: script.map_or_else(|| self.user_script(user), Path::to_owned),
            admin: false,
            explicit: script.is_some(),
        });
        chain.extend(self.cfg.after.iter().map(|p| ScriptRef {
            path: p.clone(),
            admin: true,
            explicit: false,
        }));

        let mut plan = Plan::default();
        let mut current: Option<Arc<Vec<u8>>> = None;
        let mut keep_flags: Option<Vec<String>> = Some(Vec::new());
        // Scripts that exist, so that each knows whether it is the last.
        let mut loaded = Vec::new();
        for sref in chain {
            if let Some(c) = self.load(&sref, user)? {
                loaded.push((sref, c));
            }
        }
        let n = loaded.len();
        for (i, (sref, compiled)) in loaded.into_iter().enumerate() {
            let compiled = match compiled {
                Ok(s) => s,
                Err(e) => {
                    let msg = format!("{}: {e}", sref.path.display());
                    tracing::warn!(user = %user.name, script = %sref.path.display(), error = %e, "sieve script does not compile; keeping the message");
                    plan.errors.push(PlanError {
                        kind: ErrorKind::Compile,
                        text: msg,
                    });
                    keep_flags = Some(keep_flags.unwrap_or_default());
                    break;
                }
            };
            let msg: &[u8] = current.as_deref().map_or(message, Vec::as_slice);
            let flags = keep_flags.clone().unwrap_or_default();
            let last = i + 1 == n;
            match self.run_one(
                &sref, compiled, user, env, msg, look, &mut plan, &flags, last,
            ) {
                Ok(outcome) => {
                    if let Some(edited) = outcome.edited {
                        current = Some(edited);
                    }
                    keep_flags = outcome.keep;
                    if keep_flags.is_none() {
                        break;
                    }
                }
                Err(ScriptError::Temp(t)) => return Err(t),
                Err(ScriptError::Failed(e)) => {
                    let msg = format!("{}: {e}", sref.path.display());
                    tracing::warn!(user = %user.name, script = %sref.path.display(), error = %e, "sieve script failed; its actions are dropped and the message kept");
                    if !sref.admin {
                        self.user_log(user, &sref.path, &e);
                    }
                    plan.errors.push(PlanError {
                        kind: ErrorKind::Runtime,
                        text: msg,
                    });
                    keep_flags = Some(Vec::new());
                    break;
                }
            }
        }
        if let Some(flags) = keep_flags {
            plan.store(Store {
                folder: "INBOX".into(),
                flags,
                create: false,
                implicit: true,
                message: current.clone(),
            });
        }
        plan.ran = n > 0;
        Ok(plan)
    }

    /// Where `include :personal` looks: the user's script directory, or the
    /// directory of a script named explicitly (as Pigeonhole's sieve-test).
    fn personal_dir(&self, sref: &ScriptRef, user: &Account<'_>) -> PathBuf {
        match (&sref.explicit, sref.path.parent()) {
            (true, Some(dir)) => dir.to_owned(),
            _ => PathBuf::from(expand(&self.cfg.user_dir, user)),
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
    #[allow(clippy::type_complexity)]
    fn load(
        &self,
        sref: &ScriptRef,
        user: &Account<'_>,
    ) -> Result<Option<Result<Arc<Sieve>, CompileFailure>>, TempFailure> {
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
    #[allow(clippy::type_complexity)]
    fn compile_cached(
        &self,
        path: &Path,
        limits: CompileLimits,
    ) -> Result<Option<(Result<Arc<Sieve>, CompileFailure>, bool)>, TempFailure> {
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

    #[allow(clippy::too_many_arguments)]
    fn run_one(
        &self,
        sref: &ScriptRef,
        script: Arc<Sieve>,
        user: &Account<'_>,
        env: &MessageEnvelope<'_>,
        message: &[u8],
        look: &mut Lookups<'_>,
        plan: &mut Plan,
        flags: &[String],
        last: bool,
    ) -> Result<ScriptOutcome, ScriptError> {
        let rt = if sref.admin {
            &self.admin_rt
        } else {
            &self.user_rt
        };
        let mut ctx = rt.filter(message);
        ctx.set_envelope(Envelope::From, env.from.unwrap_or(""));
        ctx.set_envelope(Envelope::To, env.to);
        if let Some(o) = env.orcpt {
            ctx.set_envelope(Envelope::Orcpt, o);
        }
        if let Some(d) = user.detail {
            ctx.set_env_variable("vnd.mailstow.detail", d.to_owned());
        }
        // The recipient's domain: what a virtual-domain MDA serves.
        ctx.set_env_variable("domain", user.domain.to_owned());
        // imap4flags' internal variable carries across the script chain.
        if !flags.is_empty() {
            ctx.set_global_variable("__flags", flags.join(" "));
        }
        ctx.set_spam_status(
            self.cfg
                .spam
                .as_ref()
                .map_or(SpamStatus::Unknown, |h| spam_status(h, message)),
        );
        ctx.set_virus_status(
            self.cfg
                .virus
                .as_ref()
                .map_or(VirusStatus::Unknown, |h| virus_status(h, message)),
        );

        let mut run = Run::default();
        let mut input = Input::script(script_name(&sref.path), script);
        let received = count_header(message, "received");
        let redirected_by_us = header_values(message, "x-sieve-redirected-from")
            .iter()
            .any(|v| addr_eq(v, user.name) || addr_eq(v, env.to));
        let delivered_to_us = header_values(message, "delivered-to")
            .iter()
            .any(|v| addr_eq(v, user.name) || addr_eq(v, env.to));
        loop {
            // The interpreter is a dependency: a panic in it fails this
            // script (implicit keep), never the delivery.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.run(input)))
                .map_err(|_| {
                    ScriptError::Failed("the Sieve interpreter failed (internal error)".into())
                })?;
            let event = match step {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(e)) => return Err(ScriptError::Failed(format!("runtime error: {e:?}"))),
            };
            plan.trace.push(trace_line(&event));
            input = Input::True;
            match event {
                Event::IncludeScript { name, optional } => {
                    let (dir, n, admin) = match &name {
                        Script::Personal(n) => (self.personal_dir(sref, user), n, sref.admin),
                        Script::Global(n) => match &self.cfg.global_dir {
                            Some(d) => (d.clone(), n, true),
                            None => {
                                return Err(ScriptError::Failed(format!(
                                    "include :global \"{n}\": no [sieve] global_dir configured"
                                )))
                            }
                        },
                    };
                    if !valid_script_name(n) {
                        return Err(ScriptError::Failed(format!(
                            "include \"{n}\": invalid script name"
                        )));
                    }
                    let path = dir.join(format!("{n}.sieve"));
                    match self
                        .compile_cached(&path, self.limits(admin))
                        .map_err(ScriptError::Temp)?
                    {
                        Some((Ok(s), _)) => input = Input::script(name, s),
                        Some((Err(e), _)) => {
                            return Err(ScriptError::Failed(format!(
                                "include {}: {e}",
                                path.display()
                            )))
                        }
                        None if optional => input = Input::False,
                        None => {
                            return Err(ScriptError::Failed(format!(
                                "include: {} does not exist",
                                path.display()
                            )))
                        }
                    }
                }
                Event::MailboxExists {
                    mailboxes,
                    special_use,
                } => {
                    let all = special_use.is_empty()
                        && mailboxes.iter().all(|m| match m {
                            Mailbox::Name(n) => look.mailboxes.exists(n),
                            Mailbox::Id(_) => false,
                        });
                    input = if all { Input::True } else { Input::False };
                }
                Event::DuplicateId { id, expiry, .. } => {
                    let vacation = id.starts_with("_v");
                    if vacation {
                        run.vacations += 1;
                        if run.vacations > 1 {
                            return Err(ScriptError::Failed("duplicate vacation action".into()));
                        }
                    }
                    let expiry = if vacation {
                        expiry.clamp(
                            self.cfg.vacation_min_period.as_secs(),
                            self.cfg.vacation_max_period.as_secs(),
                        )
                    } else {
                        expiry
                    };
                    // RFC 3834/5230 rules the crate misses (Auto-Submitted,
                    // Precedence junk/list, system senders, injected header
                    // lines): answering "already replied" cancels the reply.
                    let suppressed = if vacation {
                        vacation::suppress_reason_after_recipient_check(
                            message,
                            env.from,
                            &[user.name.to_owned(), env.to.to_owned()],
                        )
                    } else {
                        None
                    };
                    if let Some(why) = suppressed {
                        plan.trace.push(format!("vacation suppressed: {why}"));
                        tracing::info!(user = %user.name, reason = why, "vacation reply suppressed");
                        run.pending_vacation = None;
                        input = Input::True;
                        continue;
                    }
                    let seen = (look.duplicate)(&id).map_err(|e| {
                        ScriptError::Temp(TempFailure(format!("duplicate tracking: {e}")))
                    })?;
                    input = if seen { Input::True } else { Input::False };
                    if vacation {
                        run.pending_vacation = (!seen).then_some((id, expiry));
                    } else if !seen {
                        run.remember.push((id, expiry));
                    }
                }
                Event::ListContains { .. } => input = Input::False,
                Event::Function { .. } => {
                    input = Input::result(sieve::runtime::Variable::default())
                }
                Event::SetEnvelope { .. } => {}
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    let kind = if run.pending_vacation.is_some() {
                        Created::Vacation
                    } else if header_values(&message, "auto-submitted")
                        .iter()
                        .any(|v| v.trim().eq_ignore_ascii_case("auto-notified"))
                    {
                        Created::Notify
                    } else {
                        Created::Edited
                    };
                    let m = Arc::new(message);
                    if kind == Created::Edited {
                        run.edited = Some(Arc::clone(&m));
                    }
                    run.created.insert(message_id, (kind, m));
                }
                Event::Keep { flags, message_id } => {
                    run.keep = Some((flags, message_id));
                }
                Event::Discard => run.discard = true,
                Event::Reject { extended, reason } => {
                    run.count_action(self.cfg.max_actions)?;
                    run.reject = Some(Reject { reason, extended });
                }
                Event::FileInto {
                    folder,
                    flags,
                    create,
                    message_id,
                    ..
                } => {
                    run.count_action(self.cfg.max_actions)?;
                    // As Pigeonhole: a name no IMAP server could use is a
                    // runtime error, not a silent INBOX.
                    if let Some(why) = look.mailboxes.refuse_name(&folder) {
                        return Err(ScriptError::Failed(format!("fileinto: {why}")));
                    }
                    run.stores.push(Store {
                        folder,
                        flags: valid_flags(flags, look.mailboxes),
                        create,
                        implicit: false,
                        message: run.message(message_id),
                    });
                }
                Event::SendMessage {
                    recipient,
                    message_id,
                    ..
                } => {
                    run.count_action(self.cfg.max_actions)?;
                    let to = match recipient {
                        Recipient::Address(a) => vec![a],
                        Recipient::List(a) => vec![a],
                        Recipient::Group(g) => g,
                    };
                    match run
                        .created
                        .get(&message_id)
                        .map(|(k, m)| (*k, Arc::clone(m)))
                    {
                        Some((Created::Vacation, m)) => {
                            let remember = run.pending_vacation.take();
                            run.outgoing.push(Outgoing {
                                kind: OutKind::Vacation,
                                to,
                                note: header_values(&m, "subject")
                                    .into_iter()
                                    .next()
                                    .unwrap_or_default(),
                                message: Some(m),
                                remember,
                            });
                        }
                        // RFC 5436 2.7: no notification about auto-submitted mail.
                        Some((Created::Notify, _)) if auto_submitted(message) => {
                            plan.trace.push("notify suppressed: Auto-Submitted".into());
                        }
                        Some((Created::Notify, m)) => run.outgoing.push(Outgoing {
                            kind: OutKind::Notify,
                            note: format!("mailto:{}", to.join(",")),
                            to,
                            message: Some(m),
                            remember: None,
                        }),
                        other => {
                            run.redirects += 1;
                            if run.redirects > self.cfg.max_redirects {
                                return Err(ScriptError::Failed(format!(
                                    "more than {} redirects",
                                    self.cfg.max_redirects
                                )));
                            }
                            let message = other.map(|(_, m)| m);
                            let target = to.first().cloned().unwrap_or_default();
                            // A redirect to the user's own address is allowed
                            // (as in Pigeonhole); it comes back marked.
                            let loop_reason = if redirected_by_us {
                                Some("already redirected by this user (X-Sieve-Redirected-From)")
                            } else if delivered_to_us {
                                Some("already delivered to this user (Delivered-To)")
                            } else if received >= MAX_RECEIVED {
                                Some("too many Received headers")
                            } else {
                                None
                            };
                            if let Some(why) = loop_reason {
                                tracing::warn!(user = %user.name, redirect_to = %target, reason = why, "redirect skipped: mail loop; the message is kept");
                                plan.notes.push(format!(
                                    "{}: redirect to {target} skipped: {why}",
                                    sref.path.display()
                                ));
                                run.keep_instead = true;
                            } else {
                                run.outgoing.push(Outgoing {
                                    kind: OutKind::Redirect,
                                    to,
                                    message,
                                    remember: None,
                                    note: String::new(),
                                });
                            }
                        }
                    }
                }
                Event::Notify { method, .. } => {
                    tracing::info!(user = %user.name, method = %method, "sieve notify method not supported; ignored");
                }
            }
        }
        if run.reject.is_some() && (!run.stores.is_empty() || !run.outgoing.is_empty()) {
            return Err(ScriptError::Failed(
                "reject conflicts with keep, fileinto, redirect and vacation".into(),
            ));
        }
        let mut keep = match run.keep.take() {
            Some((flags, _)) => Some(valid_flags(flags, look.mailboxes)),
            None if run.keep_instead => Some(Vec::new()),
            None => None,
        };
        if !last {
            // Pigeonhole defers an explicit keep of a script that is not the
            // last one: it becomes the keep in effect, which the next script
            // may still cancel.
            let (inbox, rest): (Vec<Store>, Vec<Store>) = std::mem::take(&mut run.stores)
                .into_iter()
                .partition(|s| s.folder.eq_ignore_ascii_case("INBOX") && s.message.is_none());
            if !inbox.is_empty() {
                let k = keep.get_or_insert_with(Vec::new);
                for f in inbox.into_iter().flat_map(|s| s.flags) {
                    if !k.iter().any(|g| g.eq_ignore_ascii_case(&f)) {
                        k.push(f);
                    }
                }
            }
            run.stores = rest;
        }
        plan.discarded |= run.discard;
        for s in run.stores {
            plan.store(s);
        }
        if run.reject.is_some() {
            plan.reject = run.reject;
        }
        plan.outgoing.extend(run.outgoing);
        plan.remember.extend(run.remember);
        Ok(ScriptOutcome {
            keep,
            edited: run.edited,
        })
    }
}

enum ScriptError {
    /// The script failed: drop its actions, keep the message.
    Failed(String),
    Temp(TempFailure),
}

struct ScriptOutcome {
    /// The implicit keep is in effect, with these flags.
    keep: Option<Vec<String>>,
    edited: Option<Arc<Vec<u8>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Created {
    Edited,
    Vacation,
    Notify,
}

/// One script's actions, applied to the plan only if the script succeeds.
#[derive(Default)]
struct Run {
    stores: Vec<Store>,
    outgoing: Vec<Outgoing>,
    reject: Option<Reject>,
    discard: bool,
    keep: Option<(Vec<String>, usize)>,
    keep_instead: bool,
    remember: Vec<(String, u64)>,
    pending_vacation: Option<(String, u64)>,
    created: HashMap<usize, (Created, Arc<Vec<u8>>)>,
    edited: Option<Arc<Vec<u8>>>,
    actions: usize,
    redirects: usize,
    vacations: usize,
}

impl Run {
    fn count_action(&mut self, max: usize) -> Result<(), ScriptError> {
        self.actions += 1;
        if self.actions > max {
            return Err(ScriptError::Failed(format!("more than {max} actions")));
        }
        Ok(())
    }

    /// The message an action refers to: an edited one, or None (original).
    fn message(&self, id: usize) -> Option<Arc<Vec<u8>>> {
        match self.created.get(&id) {
            Some((Created::Edited, m)) => Some(Arc::clone(m)),
            _ => None,
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

fn script_name(path: &Path) -> Script {
    Script::Personal(path.to_string_lossy().into_owned())
}

/// Include names: a file name in the script directory, never a path.
fn valid_script_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && !n.starts_with('.')
        && !n.contains(['/', '\0', '\\'])
        && !n.chars().any(char::is_control)
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

/// An Auto-Submitted header other than "no".
fn auto_submitted(message: &[u8]) -> bool {
    header_values(message, "auto-submitted").iter().any(|v| {
        !v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("no")
    })
}

/// Only flags the store can keep (Pigeonhole ignores the others).
fn valid_flags(flags: Vec<String>, mailboxes: &dyn Mailboxes) -> Vec<String> {
    flags
        .into_iter()
        .filter(|f| mailboxes.keeps_flag(f))
        .collect()
}

fn count_header(message: &[u8], name: &str) -> usize {
    header_values(message, name).len()
}

/// Addresses equal: domain case-insensitive, angle brackets ignored.
fn addr_eq(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    };
    let (a, b) = (clean(a), clean(b));
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => {
            la.eq_ignore_ascii_case(lb) && da.eq_ignore_ascii_case(db)
        }
        _ => a.eq_ignore_ascii_case(&b),
    }
}

/// Pigeonhole's spamtest value 1..=10 from the configured header, mapped to
/// the crate's status (its value is Ham 1, MaybeSpam 2..9, Spam 10).
fn spam_status(h: &ScoreHeader, message: &[u8]) -> SpamStatus {
    match score(h, message) {
        None => SpamStatus::Unknown,
        Some(1) => SpamStatus::Ham,
        Some(10) => SpamStatus::Spam,
        Some(n) => SpamStatus::MaybeSpam(n as f64 / 10.0),
    }
}

fn virus_status(h: &ScoreHeader, message: &[u8]) -> VirusStatus {
    match score(h, message) {
        None => VirusStatus::Unknown,
        Some(1) => VirusStatus::Clean,
        Some(10) => VirusStatus::Virus,
        Some(_) => VirusStatus::MaybeVirus,
    }
}

/// 1 (certainly not) to 10 (certainly), None when the header is absent or
/// unreadable.
fn score(h: &ScoreHeader, message: &[u8]) -> Option<u8> {
    let v = header_values(message, &h.header.to_ascii_lowercase())
        .into_iter()
        .next()?;
    let frac = match h.kind {
        ScoreType::Yesno => {
            let w = v.trim().to_ascii_lowercase();
            if w.starts_with("yes") {
                1.0
            } else if w.starts_with("no") {
                0.0
            } else {
                return None;
            }
        }
        ScoreType::Strlen => v.trim().chars().count() as f64 / h.max,
        ScoreType::Score => {
            let num: String = v
                .trim()
                .chars()
                .skip_while(|c| !(c.is_ascii_digit() || *c == '-' || *c == '.'))
                .take_while(|c| c.is_ascii_digit() || *c == '-' || *c == '.')
                .collect();
            num.parse::<f64>().ok()? / h.max
        }
    };
    let frac = frac.clamp(0.0, 1.0);
    Some((1.0 + (9.0 * frac).round()) as u8)
}

fn trace_line(e: &Event) -> String {
    match e {
        Event::CreatedMessage {
            message_id,
            message,
        } => {
            format!("created message {message_id} ({} bytes)", message.len())
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
