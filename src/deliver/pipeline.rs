//! The per-recipient delivery pipeline: choose the folder, build the added
//! headers, save through the Maildir store, turn the result into an outcome
//! and log exactly one line for it. Blocking; runs on a delivery thread (or
//! in pipe mode's main thread). Must not parse protocol lines or reply.

use std::sync::Arc;

use mailstow_index::scan::HEAD_MAX;
use mailstow_maildir::Maildir;
use mailstow_sieve::{Filter, Lookups, MessageEnvelope, Plan, Store};

use super::envelope::{Envelope, Recipient};
use super::folders::Folders;
use super::headers::{self, Trace};
use super::indexer::IndexWriters;
use super::log::{log_outcome, rcpt_span, Logged};
use super::outcome::{Failure, RcptOutcome};
use super::shared::{Key, SharedCopies};
use super::spool::Spool;
use super::state::LazyState;
use crate::config::Config;
use crate::outbound::Outbound;
use crate::privilege::{AsUser, Identity};
use crate::users::{Directory, User, UsersError};

/// Recipients of one transaction delivered at once, at most.
pub const RCPT_PARALLEL: usize = 8;

/// What the recipients of one transaction share while it is delivered.
struct Txn<'a> {
    env: &'a Envelope,
    body: &'a Spool,
    /// The Message-ID, read once (log line, duplicate suppression).
    msgid: &'a Result<Option<String>, String>,
    /// One trace block for all recipients (`[delivery] single_copy` with
    /// more than one): their copies are the same bytes.
    one_trace: bool,
    /// The files saved so far, which copies of the same bytes link.
    copies: SharedCopies,
}

/// A copy's share in its transaction's files: where they are, and what
/// makes a file this copy's (see [`SharedCopies`]).
pub(super) struct Sharing<'a> {
    pub(super) copies: &'a SharedCopies,
    pub(super) key: Key,
}

/// Shared by all delivery threads: configuration, user directory, the
/// Sieve host and the outbound submitter.
pub struct Deliverer {
    pub(super) cfg: Arc<Config>,
    users: Directory,
    filter: Filter,
    pub(super) outbound: Outbound,
    /// Write index rows after the reply, in batches (the server); None:
    /// each delivery writes its own before returning (pipe mode).
    /// Shared with the generations a reload makes.
    pub(super) indexers: Option<Arc<IndexWriters>>,
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

    /// [`crate::users::Directory::lookup_account`]: an account by name.
    pub fn lookup_account(&self, name: &str) -> Result<Option<User>, Failure> {
        self.users.lookup_account(name).map_err(|e| {
            tracing::error!(error = %e, "user lookup failed");
            Failure::UserLookup(e.to_string())
        })
    }

    /// Who works on `user`'s files: with per-user rights (the system
    /// driver), the account's uid, gid and groups; otherwise nobody in
    /// particular (None: this process's own identity). Blocking (the group
    /// database).
    pub fn identity(&self, user: &User) -> Result<Option<Identity>, Failure> {
        if !self.cfg.users.per_user_rights() {
            return Ok(None);
        }
        let (Some(uid), Some(gid)) = (user.uid, user.gid) else {
            return Err(Failure::Io(format!("{}: no uid or gid", user.name)));
        };
        Identity::of_account(&user.local, uid, gid)
            .map(Some)
            .map_err(|e| {
                tracing::error!(user = %user.name, error = %e, "cannot find the account's groups");
                Failure::UserLookup(e)
            })
    }

    /// Who owns the files saved for `user`: with per-user rights the
    /// account (this thread acts as it), else the owner files are chowned
    /// to (running as root), else None (this process, the same for every
    /// mailbox). Copies of different owners never share a file.
    fn file_owner(&self, user: &User, maildir: &Maildir) -> Option<(u32, u32)> {
        if self.cfg.users.per_user_rights() {
            return user.uid.zip(user.gid);
        }
        maildir.chown().map(|o| (o.uid, o.gid))
    }

    /// This thread acts as `user` (see [`Deliverer::identity`]) until the
    /// guard drops; None when there is no one to switch to.
    pub fn act_as(&self, user: &User) -> Result<Option<AsUser>, Failure> {
        let Some(id) = self.identity(user)? else {
            return Ok(None);
        };
        AsUser::enter(&id).map(Some).map_err(|e| {
            tracing::error!(user = %user.name, error = %e, "cannot act as the mailbox's owner");
            Failure::Io(format!("acting as {}: {e}", user.name))
        })
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
        let head = body.head(HEAD_MAX);
        let msgid = head
            .as_ref()
            .map(|h| message_id(h))
            .map_err(|e| e.to_string());
        let with_orig;
        let rcpts = match head
            .as_ref()
            .ok()
            .and_then(|h| self.original_recipients(rcpts, h))
        {
            Some(r) => {
                with_orig = r;
                &with_orig[..]
            }
            None => rcpts,
        };
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
        let txn = &Txn {
            env,
            body,
            msgid: &msgid,
            one_trace: self.cfg.delivery.single_copy && rcpts.len() > 1,
            copies: SharedCopies::default(),
        };
        if lanes <= 1 {
            return rcpts.iter().map(|r| self.deliver_one(txn, r)).collect();
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
                    let outcome = self.deliver_one(txn, &rcpts[i]);
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

    fn deliver_one(&self, txn: &Txn<'_>, rcpt: &Recipient) -> RcptOutcome {
        let (env, body, msgid) = (txn.env, txn.body, txn.msgid);
        let _span = rcpt_span(rcpt).entered();
        let (outcome, stored) = match self.filter_and_store(txn, rcpt) {
            Ok(done) => done,
            Err(f) => (RcptOutcome::Failed(f), None),
        };
        let format = self.cfg.log.delivery_format.as_deref();
        // Subject and From only for a format that may show them.
        let head = format
            .and_then(|_| body.head(HEAD_MAX).ok())
            .unwrap_or_default();
        let first = |name| {
            mailstow_sieve::header_values(&head, name)
                .into_iter()
                .next()
        };
        let (subject, header_from) = (first("subject"), first("from"));
        let logged = Logged {
            size: Some(body.received()),
            stored,
            msgid: msgid.as_ref().ok().and_then(Option::as_deref),
            format,
            subject: subject.as_deref(),
            header_from: header_from.as_deref(),
            ..Logged::of(env)
        };
        log_outcome(rcpt, &outcome, env.started, &logged);
        outcome
    }

    pub(super) fn maildir(&self, user: &User) -> Maildir {
        maildir_of(&self.cfg, user)
    }

    /// The folder the implicit keep goes to: pipe mode's -m, the detail with
    /// `save_to_detail_mailbox`, else INBOX.
    pub(super) fn default_folder(&self, rcpt: &Recipient) -> Option<String> {
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
        txn: &Txn<'_>,
        rcpt: &Recipient,
    ) -> Result<(RcptOutcome, Option<u64>), Failure> {
        let (env, body, msgid) = (txn.env, txn.body, txn.msgid);
        let user = &rcpt.user;
        refuse_root(user)?;
        // Everything below touches the user's files: with the user's rights.
        let _rights = self.act_as(user)?;
        let maildir = self.maildir(user);
        if self.cfg.users.per_user_rights() {
            super::confine::maildir(&user.home, maildir.root())?;
            super::confine::folder(maildir.root(), maildir.root())?;
        }
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
                tracing::info!(id = %env.id, msgid = msgid.map(super::log::log_msgid), "duplicate suppressed");
                return Ok((
                    RcptOutcome::Delivered {
                        folder: "(duplicate)".into(),
                    },
                    None,
                ));
            }
        }
        // The header fields every copy gets, which the scripts see too.
        let trace = headers::build(&Trace {
            return_path: env.mail_from.as_deref(),
            delivered_to: (!txn.one_trace).then_some(rcpt.address.as_str()),
            origin: &env.origin,
            hostname: &self.cfg.hostname,
            id: &env.id,
            received: env.received,
        });
        let plan = self.plan(env, rcpt, body, &trace, &maildir, &state)?;
        let sharing = Sharing {
            copies: &txn.copies,
            key: Key {
                header: trace.clone(),
                owner: self.file_owner(user, &maildir),
            },
        };
        let done = self.execute(env, rcpt, body, &trace, &maildir, &state, plan, &sharing)?;
        if let (Some(id), Some(window)) = (&dup_id, self.cfg.delivery.duplicate_window) {
            state.record(id, window.as_secs());
        }
        Ok(done)
    }

    /// The recipient's Sieve plan, or the implicit keep when Sieve is off.
    /// The scripts see `trace` (the fields the copy will be stored with),
    /// then the message: the stored file's bytes.
    fn plan(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        trace: &[u8],
        maildir: &Maildir,
        state: &LazyState<'_>,
    ) -> Result<Plan, Failure> {
        if !self.filter.enabled() {
            let mut p = Plan::default();
            p.store(Store {
                folder: "INBOX".into(),
                flags: Vec::new(),
                create: false,
                implicit: true,
                message: None,
            });
            return Ok(p);
        }
        let bytes = body
            .bytes()
            .map_err(|e| Failure::Spool(format!("mapping the spool: {e}")))?;
        let mut duplicate = |id: &str| state.seen(id);
        let mut look = Lookups {
            duplicate: &mut duplicate,
            mailboxes: &Folders(maildir),
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
            .run_with_trace(&rcpt.user.account(), None, &menv, trace, &bytes, &mut look)
            .map_err(|e| Failure::Io(format!("sieve: {e}")))?;
        crate::metrics::sieve_plan(&plan);
        Ok(plan)
    }
}

impl Deliverer {
    /// The recipients with the original recipient from
    /// `[delivery] original_recipient_header` where the MTA gave none;
    /// None when nothing changes.
    fn original_recipients(&self, rcpts: &[Recipient], head: &[u8]) -> Option<Vec<Recipient>> {
        let name = self.cfg.delivery.original_recipient_header.as_deref()?;
        if rcpts.iter().all(|r| r.orcpt.is_some()) {
            return None;
        }
        let value = mailstow_sieve::header_values(head, name)
            .into_iter()
            .next()?;
        let address = value
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        if address.is_empty() || address.contains(char::is_whitespace) {
            return None;
        }
        Some(
            rcpts
                .iter()
                .map(|r| Recipient {
                    orcpt: r.orcpt.clone().or_else(|| Some(address.to_owned())),
                    ..r.clone()
                })
                .collect(),
        )
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
/// passwd-file's uid:gid when running as root; keywords and subscriptions
/// for the configured readers; into cur/ when Courier numbers the UIDs).
pub fn maildir_of(cfg: &Config, user: &User) -> Maildir {
    let courier_uids = cfg.index.enabled && cfg.index.uids == crate::config::UidMode::Courier;
    Maildir::new(
        user.maildir.clone(),
        user.owner(),
        cfg.storage.folder_encoding,
        &cfg.hostname,
    )
    .with_readers(cfg.storage.keywords, cfg.storage.subscriptions)
    .with_always_cur(courier_uids)
    .with_flush(cfg.storage.flush)
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
