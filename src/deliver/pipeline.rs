//! The per-recipient delivery pipeline: choose the folder, build the added
//! headers, save through the Maildir store, turn the result into an outcome
//! and log exactly one line for it. Blocking; runs on a delivery thread (or
//! in pipe mode's main thread). Must not parse protocol lines or reply.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::{Config, OverQuota, SenderPolicy};
use crate::outbound::Outbound;
use crate::users::{Directory, User, UsersError};
use mailstow_index::scan::HEAD_MAX;
use mailstow_index::state::UserState;
use mailstow_maildir::quota;
use mailstow_maildir::{self as store, Body, Content, Flags, Maildir, Owner, StoreError};
use mailstow_sieve::{Filter, Lookups, MessageEnvelope, OutKind, Plan, Store};

use super::folders::Folders;
use super::headers::{self, Origin, Trace};
use super::indexer::{self, IndexWriters, Row};
use super::outcome::{Failure, RcptOutcome};
use super::spool::Spool;

/// Recipients of one transaction delivered at once, at most.
const RCPT_PARALLEL: usize = 8;

/// What is the same for every recipient of one transaction.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The delivery id (headers, logs, replies).
    pub id: String,
    /// Envelope sender as text, None for `<>`.
    pub mail_from: Option<String>,
    pub origin: Origin,
    /// When the data was complete: the Received date and the files' mtime.
    pub received: SystemTime,
    /// When the data began (DATA or the first BDAT; in pipe mode, when
    /// reading stdin began), for `delay=`.
    pub started: Instant,
}

/// One accepted recipient.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The address as given in RCPT TO (or -d).
    pub address: String,
    /// The original recipient (ORCPT), when the client sent one.
    pub orcpt: Option<String>,
    pub user: User,
    /// A folder chosen by the caller (pipe mode's -m), created if missing.
    pub folder: Option<String>,
}

/// Shared by all delivery threads: configuration, user directory, the
/// Sieve host and the outbound submitter.
pub struct Deliverer {
    cfg: Arc<Config>,
    users: Directory,
    filter: Filter,
    outbound: Outbound,
    /// Write index rows after the reply, in batches (the server); None:
    /// each delivery writes its own before returning (pipe mode).
    /// Shared with the generations a reload makes.
    indexers: Option<Arc<IndexWriters>>,
}

impl Deliverer {
    pub fn new(cfg: Arc<Config>) -> Result<Deliverer, UsersError> {
        let users = Directory::open(&cfg.users, &cfg.storage.mail_root)?;
        Ok(Deliverer {
            filter: Filter::new(&cfg.sieve, &cfg.hostname),
            outbound: Outbound::new(&cfg.outbound, &cfg.hostname),
            users,
            indexers: None,
            cfg,
        })
    }

    /// Hands index rows to `n` writer threads, which record them after the
    /// reply in batches, instead of writing each before the reply.
    pub fn with_index_writers(mut self, n: usize) -> std::io::Result<Deliverer> {
        if self.cfg.index.enabled {
            self.indexers = Some(Arc::new(IndexWriters::start(&self.cfg.index, n)?));
        }
        Ok(self)
    }

    /// A deliverer for a reloaded configuration: the users file, Sieve and
    /// the other settings come from `cfg`, the index writers are this one's
    /// (index settings take effect at restart).
    pub fn reloaded(&self, cfg: Arc<Config>) -> Result<Deliverer, UsersError> {
        let mut d = Deliverer::new(cfg)?;
        d.indexers = self.indexers.clone();
        Ok(d)
    }

    /// The configuration this deliverer was made from.
    pub fn config_arc(&self) -> Arc<Config> {
        Arc::clone(&self.cfg)
    }

    /// Records every row handed to the writers and stops them (at shutdown,
    /// after the last delivery).
    pub fn finish_index(&self) {
        if let Some(w) = &self.indexers {
            w.finish();
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The submitter for messages that leave through the MTA.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Find the user for a recipient: Ok(None) is unknown (550), Err is a
    /// temporary failure. Blocking (may stat and re-read the users file).
    pub fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, Failure> {
        self.users.lookup(local, domain).map_err(|e| {
            tracing::error!(error = %e, "user lookup failed");
            Failure::UserLookup(e.to_string())
        })
    }

    /// The user's quota rules, chained as Dovecot reads `quota_rule`,
    /// `quota_rule2`, ...: rule N is the passwd-file's `userdb_quota_rule<N>`
    /// extra field if the user has one, else `[quota] rules[N-1]`; the chain
    /// ends at the first missing or empty rule. A rule that does not parse
    /// is left out with a warning.
    pub fn quota_rules(&self, user: &User) -> quota::Rules {
        let mut chain: std::collections::BTreeMap<usize, &str> = self
            .cfg
            .quota
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r.as_str()))
            .collect();
        for (key, value) in &user.extra {
            let k = key.strip_prefix("userdb_").unwrap_or(key);
            let n = match k.strip_prefix("quota_rule") {
                Some("") => 1,
                // quota_rule2, quota_rule3, ...; never quota_rule1 or 02.
                Some(digits) => match digits.parse::<usize>() {
                    Ok(n) if n >= 2 && n.to_string() == digits => n,
                    _ => continue,
                },
                None => continue,
            };
            chain.insert(n, value);
        }
        let mut rules = quota::Rules::default();
        for n in 1.. {
            let Some(rule) = chain.remove(&n).filter(|r| !r.is_empty()) else {
                break;
            };
            if let Err(e) = rules.apply(rule) {
                tracing::warn!(user = %user.name, rule = %rule, error = %e, "quota rule ignored");
            }
        }
        if let Some((n, rule)) = chain.iter().find(|(_, r)| !r.is_empty()) {
            tracing::warn!(user = %user.name, rule = %rule, "quota_rule{n} ignored: it does not follow an earlier rule (Dovecot stops at the first gap)");
        }
        rules
    }

    /// Would one more message of `size` bytes fit into INBOX (the check at
    /// RCPT, as Dovecot's LMTP makes it with `lmtp_rcpt_check_quota`)? The
    /// rules when it does; `OverQuota` when it does not. Blocking (reads
    /// maildirsize).
    pub fn quota_check(&self, user: &User, size: u64) -> Result<quota::Rules, Failure> {
        self.quota_check_stores(user, &[("INBOX", size)])
    }

    /// Would every copy fit, each `(folder, size)` checked against its
    /// folder's limit after the copies before it? A copy into a folder
    /// whose rule is `ignore` is neither checked nor counted. A Maildir
    /// that does not exist yet uses nothing, and is not created here.
    fn quota_check_stores(
        &self,
        user: &User,
        stores: &[(&str, u64)],
    ) -> Result<quota::Rules, Failure> {
        let rules = self.quota_rules(user);
        if rules.is_unlimited() {
            return Ok(rules);
        }
        let mut used = self.quota_usage(user, &rules)?;
        for &(folder, size) in stores {
            if !rules.counts(folder) {
                continue;
            }
            if quota::over(&rules.limit_for(folder), &used, size) {
                return Err(Failure::OverQuota {
                    temporary: self.cfg.quota.over_quota == OverQuota::Temporary,
                });
            }
            used.bytes = used.bytes.saturating_add(size);
            used.messages += 1;
        }
        Ok(rules)
    }

    /// The usage of the user's Maildir: zero when there is none yet (its
    /// first delivery creates it); read from maildirsize otherwise. Any
    /// other error (not a directory, no permission) is a temporary failure.
    fn quota_usage(&self, user: &User, rules: &quota::Rules) -> Result<quota::Usage, Failure> {
        let failure =
            |e: std::io::Error| Failure::Io(format!("quota {}: {e}", user.maildir.display()));
        match std::fs::metadata(&user.maildir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(quota::Usage::default())
            }
            Err(e) => return Err(failure(e)),
            Ok(_) => {}
        }
        quota::usage(&user.maildir, rules, self.cfg.storage.folder_encoding).map_err(failure)
    }

    /// Count a copy stored in `folder` in maildirsize: appended when the
    /// file exists (even without a limit, so that a file Dovecot keeps stays
    /// right), created on first use when there is a limit; not at all when
    /// the folder is ignored.
    fn quota_count(&self, user: &User, rules: &quota::Rules, folder: &str, size: u64) {
        if !rules.counts(folder) {
            return;
        }
        let r = if user.maildir.join("maildirsize").exists() {
            quota::add(&user.maildir, size as i64, 1)
        } else if !rules.is_unlimited() {
            quota::recalculate(&user.maildir, rules, self.cfg.storage.folder_encoding).map(|_| ())
        } else {
            return;
        };
        if let Err(e) = r {
            tracing::warn!(user = %user.name, error = %e, "could not update maildirsize; it is recalculated later");
        }
    }

    /// Deliver one copy per recipient; one outcome each, in recipient
    /// order. The recipients of one transaction are delivered side by side
    /// (up to [`RCPT_PARALLEL`] at once), so that their fsyncs overlap
    /// instead of adding up; recipients of the same mailbox (an alias and
    /// its user) stay in order on one lane, so the second sees what the
    /// first stored (duplicate suppression, quota).
    pub fn deliver(&self, env: &Envelope, rcpts: &[Recipient], body: &Spool) -> Vec<RcptOutcome> {
        // The Message-ID, read once for every recipient: for the log line
        // and duplicate suppression.
        let msgid = body
            .head(HEAD_MAX)
            .map(|h| message_id(&h))
            .map_err(|e| e.to_string());
        let msgid = &msgid;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: std::collections::HashMap<&std::path::Path, usize> =
            std::collections::HashMap::new();
        for (i, r) in rcpts.iter().enumerate() {
            let g = *group_of.entry(&r.user.home).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        let lanes = groups.len().min(RCPT_PARALLEL);
        if lanes <= 1 {
            return rcpts
                .iter()
                .map(|r| self.deliver_one(env, r, body, msgid))
                .collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let mut outcomes: Vec<Option<RcptOutcome>> = vec![None; rcpts.len()];
        let done = std::sync::Mutex::new(&mut outcomes);
        let span = tracing::Span::current();
        let lane = || {
            let _span = span.enter();
            loop {
                let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(group) = groups.get(g) else { break };
                for &i in group {
                    let outcome = self.deliver_one(env, &rcpts[i], body, msgid);
                    done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                }
            }
        };
        std::thread::scope(|s| {
            let spawned: Vec<_> = (1..lanes)
                .filter_map(|_| std::thread::Builder::new().spawn_scoped(s, lane).ok())
                .collect();
            // This thread takes its share too (and all of it if none spawned).
            lane();
            for t in spawned {
                if t.join().is_err() {
                    tracing::error!(id = %env.id, "a delivery lane panicked");
                }
            }
        });
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| RcptOutcome::Failed(Failure::Io("internal error".into()))))
            .collect()
    }

    fn deliver_one(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        msgid: &Result<Option<String>, String>,
    ) -> RcptOutcome {
        let _span = rcpt_span(rcpt).entered();
        let (outcome, stored) = match self.filter_and_store(env, rcpt, body, msgid) {
            Ok(done) => done,
            Err(f) => (RcptOutcome::Failed(f), None),
        };
        let logged = Logged {
            size: Some(body.len()),
            stored,
            msgid: msgid.as_ref().ok().and_then(Option::as_deref),
            ..Logged::of(env)
        };
        log_outcome(rcpt, &outcome, env.started, &logged);
        outcome
    }

    fn maildir(&self, user: &User) -> Maildir {
        maildir_of(&self.cfg, user)
    }

    /// The folder the implicit keep goes to: pipe mode's -m, the detail with
    /// `save_to_detail_mailbox`, else INBOX.
    fn default_folder(&self, rcpt: &Recipient) -> Option<String> {
        rcpt.folder.clone().or_else(|| {
            self.cfg
                .lmtp
                .save_to_detail_mailbox
                .then(|| rcpt.user.detail.clone())
                .flatten()
        })
    }

    /// Filter, then carry out the plan. Returns the outcome and the size
    /// of the file stored, if one was (for the log).
    fn filter_and_store(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        msgid: &Result<Option<String>, String>,
    ) -> Result<(RcptOutcome, Option<u64>), Failure> {
        let user = &rcpt.user;
        refuse_root(user)?;
        let maildir = self.maildir(user);
        let state = LazyState::new(user, &maildir);
        // Optional duplicate suppression: a Message-ID already stored for
        // this user within the window is answered 250 and stored once.
        let dup_id = match self.cfg.delivery.duplicate_window {
            Some(_) => msgid
                .as_ref()
                .map_err(|e| Failure::Spool(e.clone()))?
                .as_ref()
                .map(|id| format!("mailstow-dup:{id}")),
            None => None,
        };
        if let Some(id) = &dup_id {
            if state
                .seen(id)
                .map_err(|e| Failure::Io(format!("duplicate state: {e}")))?
            {
                let msgid = msgid.as_ref().ok().and_then(Option::as_deref);
                tracing::info!(id = %env.id, msgid = msgid.map(log_msgid), "duplicate suppressed");
                return Ok((
                    RcptOutcome::Delivered {
                        folder: "(duplicate)".into(),
                    },
                    None,
                ));
            }
        }
        let plan = if self.filter.enabled() {
            let bytes = body
                .bytes()
                .map_err(|e| Failure::Spool(format!("mapping the spool: {e}")))?;
            let mut duplicate = |id: &str| state.seen(id);
            let mut look = Lookups {
                duplicate: &mut duplicate,
                mailboxes: &Folders(&maildir),
            };
            // mail-parser splits a detail only at '+': with another
            // delimiter configured, the script sees "local+detail@domain".
            let to = sieve_address(rcpt);
            let menv = MessageEnvelope {
                from: env.mail_from.as_deref(),
                to: &to,
                orcpt: rcpt.orcpt.as_deref(),
            };
            let plan = self
                .filter
                .run(&user.account(), None, &menv, &bytes, &mut look)
                .map_err(|e| Failure::Io(format!("sieve: {e}")))?;
            crate::metrics::sieve_plan(&plan);
            plan
        } else {
            let mut p = Plan::default();
            p.store(Store {
                folder: "INBOX".into(),
                flags: Vec::new(),
                create: false,
                implicit: true,
                message: None,
            });
            p
        };
        let done = self.execute(env, rcpt, body, &maildir, &state, plan)?;
        if let (Some(id), Some(window)) = (&dup_id, self.cfg.delivery.duplicate_window) {
            state.record(id, window.as_secs());
        }
        Ok(done)
    }

    fn execute(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        maildir: &Maildir,
        state: &LazyState<'_>,
        plan: Plan,
    ) -> Result<(RcptOutcome, Option<u64>), Failure> {
        let user = &rcpt.user;
        if let Some(r) = &plan.reject {
            return Err(Failure::Rejected(r.reason.clone()));
        }
        // Redirects first: if the MTA cannot take one, nothing was stored
        // yet and the whole delivery is retried.
        for o in plan.outgoing.iter().filter(|o| o.kind == OutKind::Redirect) {
            let from = match self.cfg.outbound.redirect_sender {
                SenderPolicy::Sender => env.mail_from.clone(),
                SenderPolicy::Recipient => Some(rcpt.address.clone()),
                SenderPolicy::Null => None,
            };
            let original;
            let message: &[u8] = match &o.message {
                Some(m) => m,
                None => {
                    original = body.bytes().map_err(|e| Failure::Spool(e.to_string()))?;
                    &original
                }
            };
            // Marks on the forwarded copy let a loop back to this user be
            // recognised (see filter): Pigeonhole's X-Sieve-Redirected-From
            // and Postfix's Delivered-To.
            let mut copy = format!(
                "X-Sieve-Redirected-From: {0}\r\nDelivered-To: {0}\r\n",
                user.name
            )
            .into_bytes();
            copy.extend_from_slice(message);
            self.outbound
                .submit(from.as_deref(), &o.to, &copy)
                .map_err(|e| Failure::Io(format!("redirect to {}: {e}", o.to.join(","))))?;
            tracing::info!(id = %env.id, redirect_to = %o.to.join(","), "redirected");
        }

        let header = headers::build(&Trace {
            return_path: env.mail_from.as_deref(),
            delivered_to: &rcpt.address,
            origin: &env.origin,
            hostname: &self.cfg.hostname,
            id: &env.id,
            received: env.received,
        });
        let (header_lf, _) = store::count_bare_lf(false, &header);
        let default_folder = self.default_folder(rcpt);
        // Quota: every copy, in the folder the loop below saves it to (an
        // ignored folder, e.g. `Trash:ignore`, is never refused).
        let copies: Vec<(&str, u64)> = plan
            .stores
            .iter()
            .map(|s| {
                let folder = match (&default_folder, s.implicit) {
                    (Some(d), true) => d.as_str(),
                    _ => s.folder.as_str(),
                };
                let len = s.message.as_ref().map_or(body.len(), |m| m.len() as u64);
                (folder, header.len() as u64 + len)
            })
            .collect();
        let quota_rules = if copies.is_empty() {
            quota::Rules::default()
        } else {
            self.quota_check_stores(user, &copies)?
        };
        let mut stored: Vec<String> = Vec::new();
        let mut size = None;
        let mut original_head: Option<Vec<u8>> = None;
        for s in &plan.stores {
            let mut flags = Flags::default();
            for f in &s.flags {
                if !flags.insert_imap(f) {
                    tracing::debug!(flag = %f, "flag not stored");
                }
            }
            let content = match &s.message {
                Some(m) => Content {
                    header: &header,
                    body: Body::Bytes(m),
                    bare_lf: header_lf + store::count_bare_lf(false, m).0,
                },
                None => Content {
                    header: &header,
                    body: body.body(),
                    bare_lf: header_lf + body.bare_lf(),
                },
            };
            let (folder, create) = match (&default_folder, s.implicit) {
                (Some(d), true) => (d.clone(), true),
                _ => (s.folder.clone(), s.create || self.cfg.sieve.autocreate),
            };
            let saved = match maildir.save(&folder, create, &flags, &content, env.received) {
                Ok(saved) => (folder, saved),
                Err(e @ (StoreError::InvalidFolder { .. } | StoreError::NoSuchFolder(_))) => {
                    tracing::warn!(id = %env.id, folder = %folder, error = %e, "folder refused, saving to INBOX");
                    if stored.iter().any(|f| f.eq_ignore_ascii_case("INBOX")) {
                        continue;
                    }
                    let saved = maildir
                        .save("INBOX", true, &flags, &content, env.received)
                        .map_err(store_failure)?;
                    ("INBOX".to_owned(), saved)
                }
                Err(e) => return Err(store_failure(e)),
            };
            size = Some(saved.1.size);
            let head: &[u8] = match &s.message {
                Some(m) => m,
                None => {
                    original_head.get_or_insert_with(|| body.head(HEAD_MAX).unwrap_or_default())
                }
            };
            crash_point("after-save");
            self.index_add(user, maildir, &saved.1, head, env.received);
            self.quota_count(user, &quota_rules, &saved.0, saved.1.size);
            stored.push(saved.0);
        }

        // Replies and notifications: a failure is logged, never a reason to
        // defer mail that is already stored.
        for o in plan.outgoing.iter().filter(|o| o.kind != OutKind::Redirect) {
            let Some(m) = &o.message else { continue };
            // A reply comes from the user, or from <> (RFC 3834) when so
            // configured; "sender" would send it back to where it came from.
            let from = match (&o.kind, self.cfg.outbound.vacation_sender) {
                (OutKind::Vacation, SenderPolicy::Null) => None,
                _ => Some(rcpt.address.clone()),
            };
            let marker = if o.kind == OutKind::Notify {
                "auto-notified"
            } else {
                "auto-replied"
            };
            let message = crate::outbound::vacation::fix_generated(
                m,
                &self.cfg.hostname,
                env.received,
                marker,
            );
            match self.outbound.submit(from.as_deref(), &o.to, &message) {
                Ok(()) => {
                    tracing::info!(id = %env.id, kind = ?o.kind, reply_to = %o.to.join(","), "sent");
                    if let Some((id, secs)) = &o.remember {
                        state.record(id, *secs);
                    }
                }
                Err(e) => {
                    tracing::warn!(id = %env.id, kind = ?o.kind, error = %e, "could not send")
                }
            }
        }
        for (id, secs) in &plan.remember {
            state.record(id, *secs);
        }
        let outcome = if !stored.is_empty() {
            RcptOutcome::Delivered {
                folder: stored.join(","),
            }
        } else if plan.outgoing.iter().any(|o| o.kind == OutKind::Redirect) {
            RcptOutcome::Delivered {
                folder: "(redirected)".into(),
            }
        } else {
            RcptOutcome::Discarded
        };
        Ok((outcome, size))
    }
}

impl Deliverer {
    /// Records a durable message in the user's index: through the index
    /// writers when there are (after the reply), else now, with an open
    /// index from the process's pool (see [`mailstow_index::with_cached`]). A
    /// failure is only logged: the message is stored, and the next
    /// reconcile indexes it.
    fn index_add(
        &self,
        user: &User,
        maildir: &Maildir,
        saved: &store::Saved,
        head: &[u8],
        received: SystemTime,
    ) {
        if !self.cfg.index.enabled {
            return;
        }
        let row = Box::new(Row {
            user: user.name.clone(),
            maildir: maildir.clone(),
            home: user.home.clone(),
            saved: saved.clone(),
            head: head[..mailstow_index::scan::header_end(head)].to_vec(),
            received,
        });
        let row = match &self.indexers {
            Some(w) => match w.submit(row) {
                Ok(()) => return,
                Err(row) => row,
            },
            None => row,
        };
        indexer::write_rows(&self.cfg.index, &[&row]);
    }
}

/// For crash tests: with `MAILSTOW_CRASH_AT=<point>` in the environment,
/// the process kills itself with SIGKILL there, as a power cut or the OOM
/// killer would. Points: "after-save" (the file is durable, its index row
/// not yet written).
fn crash_point(point: &str) {
    if std::env::var_os("MAILSTOW_CRASH_AT").is_some_and(|v| v == point) {
        tracing::warn!(point, "MAILSTOW_CRASH_AT: killing this process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// The Message-ID header's value (angle brackets kept), if any.
fn message_id(head: &[u8]) -> Option<String> {
    mailstow_sieve::header_values(head, "message-id")
        .into_iter()
        .find(|v| !v.is_empty())
}

/// The envelope recipient as the Sieve interpreter must see it: the detail,
/// whatever delimiter separated it, after a '+' (the only one mail-parser's
/// subaddress support knows).
fn sieve_address(rcpt: &Recipient) -> String {
    let Some(detail) = &rcpt.user.detail else {
        return rcpt.address.clone();
    };
    let domain = rcpt.address.rsplit_once('@').map_or("", |(_, d)| d);
    let local_len = rcpt.address.len() - domain.len() - usize::from(!domain.is_empty());
    // The user part as the sender wrote it: everything before the detail.
    let given = &rcpt.address[..local_len];
    let base = given
        .len()
        .checked_sub(detail.len() + 1)
        .and_then(|n| given.get(..n))
        .unwrap_or(&rcpt.user.local);
    if domain.is_empty() {
        format!("{base}+{detail}")
    } else {
        format!("{base}+{detail}@{domain}")
    }
}

/// Mail is never written as root: a user whose passwd-file entry says uid
/// 0, or who has no uid while this process runs as root (set `user` in the
/// config, or uid and gid in the passwd-file), is refused (temporarily: the
/// admin can fix it and the MTA retries).
fn refuse_root(user: &User) -> Result<(), Failure> {
    let why = match user.uid {
        Some(0) => "the passwd-file gives this user uid 0",
        None if nix::unistd::geteuid().is_root() => {
            "this user has no uid and mailstow runs as root (set `user` in the config, or uid:gid in the passwd-file)"
        }
        _ => return Ok(()),
    };
    tracing::error!(user = %user.name, "refusing to deliver as root: {why}");
    Err(Failure::Io(format!("refusing to deliver as root: {why}")))
}

/// The user's Maildir as the configuration stores it (files chowned to the
/// passwd-file's uid:gid when running as root).
pub fn maildir_of(cfg: &Config, user: &User) -> Maildir {
    Maildir::new(
        user.maildir.clone(),
        owner(user),
        cfg.storage.folder_encoding,
        &cfg.hostname,
    )
}

fn owner(user: &User) -> Option<Owner> {
    match (user.uid, user.gid) {
        (Some(uid), Some(gid)) => Some(Owner { uid, gid }),
        _ => None,
    }
}

/// The user's Sieve state, opened on first use (most deliveries never need
/// it).
struct LazyState<'a> {
    user: &'a User,
    /// The state lives in the home, which the Maildir's creation makes.
    maildir: &'a Maildir,
    state: std::cell::RefCell<Option<UserState>>,
}

impl<'a> LazyState<'a> {
    fn new(user: &'a User, maildir: &'a Maildir) -> LazyState<'a> {
        LazyState {
            user,
            maildir,
            state: std::cell::RefCell::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&UserState) -> Result<T, String>) -> Result<T, String> {
        let mut slot = self.state.borrow_mut();
        if slot.is_none() {
            if !self.user.home.is_dir() {
                self.maildir.create().map_err(|e| e.to_string())?;
            }
            *slot = Some(
                UserState::open(&self.user.home, owner(self.user)).map_err(|e| e.to_string())?,
            );
        }
        match slot.as_ref() {
            Some(s) => f(s),
            None => Err("state unavailable".into()),
        }
    }

    fn seen(&self, id: &str) -> Result<bool, String> {
        self.with(|s| s.seen(id, SystemTime::now()).map_err(|e| e.to_string()))
    }

    /// Record after delivery; a failure is logged (the mail is stored).
    fn record(&self, id: &str, secs: u64) {
        let r = self.with(|s| {
            s.record(id, std::time::Duration::from_secs(secs), SystemTime::now())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = r {
            tracing::warn!(user = %self.user.name, error = %e, "could not record a duplicate-tracking id");
        }
    }
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        e @ StoreError::NoSpace { .. } => Failure::NoSpace(e.to_string()),
        other => Failure::Io(other.to_string()),
    }
}

/// The span a recipient's delivery runs in: `to=<address>`, named as the
/// per-recipient line names it, so that the text log prints it once.
pub fn rcpt_span(rcpt: &Recipient) -> tracing::Span {
    tracing::info_span!("rcpt", to = %angle(&rcpt.address))
}

/// The span a transaction's delivery runs in (the server's): `id=` the
/// queue id, `from=<sender>`, `size=` the bytes received; the same names
/// and values as the per-recipient line's own fields.
pub fn txn_span(env: &Envelope, size: u64) -> tracing::Span {
    tracing::info_span!(
        "txn",
        id = %env.id,
        from = %angle(env.mail_from.as_deref().unwrap_or("")),
        size
    )
}

/// `<address>`, as Postfix logs addresses.
fn angle(address: &str) -> String {
    format!("<{address}>")
}

/// What the per-recipient line says about the message besides the
/// recipient and the outcome; a None is left out of the line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logged<'a> {
    /// The queue id ([`Envelope::id`]); None when no transaction reached
    /// delivery (data refused as too large while it came in).
    pub id: Option<&'a str>,
    /// The envelope sender, "" for the null sender `<>`.
    pub from: Option<&'a str>,
    /// Bytes received: the message as the client sent it (after
    /// dot-unstuffing), Postfix's `size=`.
    pub size: Option<u64>,
    /// Bytes of the file stored, added headers included (with several
    /// copies, the last one).
    pub stored: Option<u64>,
    /// The Message-ID header's value as it came (sanitised when logged).
    pub msgid: Option<&'a str>,
}

impl<'a> Logged<'a> {
    /// The queue id and the sender of `env`; sizes and Message-ID unknown.
    pub fn of(env: &'a Envelope) -> Logged<'a> {
        Logged {
            id: Some(&env.id),
            from: Some(env.mail_from.as_deref().unwrap_or("")),
            ..Logged::default()
        }
    }
}

/// The longest Message-ID the log shows, in bytes; longer ones are cut and
/// end in "...".
const MSGID_LOG_MAX: usize = 200;

/// A Message-ID as the log shows it: one token of printable ASCII (any
/// other character, spaces and control characters included, becomes '?'),
/// at most [`MSGID_LOG_MAX`] bytes. The header is the sender's text: it must
/// not break the line or add fields to it.
pub fn log_msgid(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(MSGID_LOG_MAX + 1)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if out.len() > MSGID_LOG_MAX {
        out.truncate(MSGID_LOG_MAX - 3);
        out.push_str("...");
    }
    out
}

/// The one INFO line per recipient outcome, Postfix style (docs/
/// operations.md, "The per-recipient log line"). It carries everything
/// itself (pipe mode has no session or transaction span); the text log
/// leaves out span fields it repeats. `started`: when the data began, for
/// `delay=`.
pub fn log_outcome(rcpt: &Recipient, outcome: &RcptOutcome, started: Instant, m: &Logged<'_>) {
    let elapsed = started.elapsed();
    crate::metrics::delivery(
        outcome.status(),
        outcome.reason_label(),
        m.stored.unwrap_or(0),
        elapsed,
    );
    let delay = format!("{:.3}", elapsed.as_secs_f64());
    let to = angle(&rcpt.address);
    let orig_to = rcpt.orcpt.as_deref().map(angle);
    let from = m.from.map(angle);
    let msgid = m.msgid.map(log_msgid);
    let (id, size, stored) = (m.id, m.size, m.stored);
    match outcome {
        RcptOutcome::Delivered { folder } => tracing::info!(
            id, to = %to, orig_to, from, size, msgid, folder = %folder, stored,
            delay = %delay, status = "delivered", "delivery"
        ),
        RcptOutcome::Discarded => tracing::info!(
            id, to = %to, orig_to, from, size, msgid, delay = %delay,
            status = "discarded", "delivery"
        ),
        RcptOutcome::Failed(f) => tracing::info!(
            id, to = %to, orig_to, from, size, msgid, delay = %delay,
            status = outcome.status(), reply = %f.reply(), reason = %f.detail(), "delivery"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rcpt(address: &str, detail: Option<&str>) -> Recipient {
        Recipient {
            address: address.into(),
            orcpt: None,
            user: User {
                name: "alice@example.org".into(),
                local: "alice".into(),
                domain: "example.org".into(),
                detail: detail.map(str::to_owned),
                uid: None,
                gid: None,
                home: "/h".into(),
                maildir: "/h/Maildir".into(),
                extra: Vec::new(),
            },
            folder: None,
        }
    }

    fn deliverer(dir: &std::path::Path, quota: &str) -> Deliverer {
        std::fs::write(dir.join("u"), "").unwrap();
        let text = format!(
            "[storage]\nmail_root = \"{0}/m\"\n[users]\npasswd_file = \"{0}/u\"\n[quota]\n{quota}\n",
            dir.display()
        );
        let cfg = Arc::new(Config::from_toml(&text, std::path::Path::new("t"), dir).unwrap());
        Deliverer::new(cfg).unwrap()
    }

    #[test]
    fn quota_rules_chain_like_dovecots_quota_rule_n() {
        let dir = tempfile::tempdir().unwrap();
        let d = deliverer(dir.path(), "rules = [\"*:storage=1G\", \"Trash:ignore\"]");
        let mut r = rcpt("alice@example.org", None);
        let q = d.quota_rules(&r.user);
        assert_eq!(q.limit.bytes, Some(1 << 30));
        assert!(!q.counts("Trash"));
        // userdb_quota_rule replaces rules[0] (not added to it), rule 2
        // stays, rule 3 follows it; rule 5 after a gap is not read, nor
        // quota_rule1 or a broken rule.
        r.user.extra = vec![
            ("userdb_quota_rule".into(), "*:messages=7".into()),
            ("userdb_quota_rule3".into(), "Junk:messages=+1".into()),
            ("userdb_quota_rule5".into(), "Sent:ignore".into()),
            ("quota_rule1".into(), "Archive:ignore".into()),
        ];
        let q = d.quota_rules(&r.user);
        assert_eq!((q.limit.bytes, q.limit.messages), (None, Some(7)));
        assert!(!q.counts("Trash"));
        assert_eq!(q.limit_for("Junk").messages, Some(8));
        assert!(q.counts("Sent") && q.counts("Archive"));
        // An empty rule ends the chain.
        r.user.extra = vec![("quota_rule2".into(), String::new())];
        let q = d.quota_rules(&r.user);
        assert_eq!(q.limit.bytes, Some(1 << 30));
        assert!(q.counts("Trash"));
        r.user.extra = vec![("quota_rule".into(), "*:storage=lots".into())];
        assert!(d.quota_rules(&r.user).is_unlimited());
    }

    #[test]
    fn a_mailbox_not_created_yet_uses_no_quota_and_is_still_limited() {
        let dir = tempfile::tempdir().unwrap();
        let d = deliverer(dir.path(), "rule = \"*:storage=1K\"");
        let mut r = rcpt("alice@example.org", None);
        r.user.home = dir.path().join("h");
        r.user.maildir = r.user.home.join("Maildir");
        assert!(matches!(
            d.quota_check(&r.user, 1025),
            Err(Failure::OverQuota { temporary: false })
        ));
        assert!(d.quota_check(&r.user, 1024).is_ok());
        // Each copy counts against the empty mailbox, then the next.
        assert!(matches!(
            d.quota_check_stores(&r.user, &[("INBOX", 600), ("Lists", 600)]),
            Err(Failure::OverQuota { .. })
        ));
        assert!(!r.user.home.exists(), "checking quota created the home");

        let d = deliverer(
            dir.path(),
            "rule = \"*:messages=1\"\nover_quota = \"temporary\"",
        );
        assert!(d.quota_check(&r.user, 0).is_ok());
        assert!(matches!(
            d.quota_check_stores(&r.user, &[("INBOX", 1), ("INBOX", 1)]),
            Err(Failure::OverQuota { temporary: true })
        ));
        // Not a Maildir at all: a temporary failure, not "empty".
        std::fs::write(&r.user.home, "").unwrap();
        assert!(matches!(d.quota_check(&r.user, 0), Err(Failure::Io(_))));
    }

    #[test]
    fn message_id_is_found_unfolded() {
        assert_eq!(
            message_id(b"Subject: x\r\nMessage-Id:\r\n <a@b>\r\n\r\nbody"),
            Some("<a@b>".into())
        );
        assert_eq!(message_id(b"Subject: x\r\n\r\nMessage-ID: <no@body>"), None);
    }

    #[test]
    fn a_logged_message_id_is_one_bounded_token_of_printable_ascii() {
        assert_eq!(log_msgid("<a.b=c+d@example.net>"), "<a.b=c+d@example.net>");
        assert_eq!(
            log_msgid("<x y>\r\n INFO status=delivered\u{202e}é\0"),
            "<x?y>???INFO?status=delivered???"
        );
        let long = format!("<{}@x>", "a".repeat(5000));
        let shown = log_msgid(&long);
        assert_eq!(shown.len(), MSGID_LOG_MAX);
        assert!(
            shown.starts_with("<aaa") && shown.ends_with("a..."),
            "{shown}"
        );
        // Exactly at the bound: shown whole.
        let edge = "b".repeat(MSGID_LOG_MAX);
        assert_eq!(log_msgid(&edge), edge);
        let wide = "é".repeat(MSGID_LOG_MAX + 10);
        assert_eq!(log_msgid(&wide).len(), MSGID_LOG_MAX);
    }

    #[test]
    fn any_delimiter_reaches_sieve_as_plus() {
        assert_eq!(
            sieve_address(&rcpt("Alice-lists@Example.org", Some("lists"))),
            "Alice+lists@Example.org"
        );
        assert_eq!(
            sieve_address(&rcpt("alice+x@example.org", Some("x"))),
            "alice+x@example.org"
        );
        assert_eq!(
            sieve_address(&rcpt("alice@example.org", None)),
            "alice@example.org"
        );
    }
}
