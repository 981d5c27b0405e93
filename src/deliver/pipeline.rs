//! The per-recipient delivery pipeline: choose the folder, build the added
//! headers, save through the Maildir store, turn the result into an outcome
//! and log exactly one line for it. Blocking; runs on a delivery thread (or
//! in pipe mode's main thread). Must not parse protocol lines or reply.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::Config;
use crate::store::{self, Content, Flags, Maildir, Owner, StoreError};
use crate::users::{Directory, User, UsersError};

use super::headers::{self, Origin, Trace};
use super::outcome::{Failure, RcptOutcome};
use super::spool::Spool;

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
    /// When the transaction started, for `delay=`.
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

/// Shared by all delivery threads: configuration and user directory.
pub struct Deliverer {
    cfg: Arc<Config>,
    users: Directory,
}

impl Deliverer {
    pub fn new(cfg: Arc<Config>) -> Result<Deliverer, UsersError> {
        let users = Directory::open(&cfg.users, &cfg.storage.mail_root)?;
        Ok(Deliverer { cfg, users })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Find the user for a recipient: Ok(None) is unknown (550), Err is a
    /// temporary failure. Blocking (may stat and re-read the users file).
    pub fn lookup(&self, local: &str, domain: &str) -> Result<Option<User>, Failure> {
        self.users.lookup(local, domain).map_err(|e| {
            tracing::error!(error = %e, "user lookup failed");
            Failure::UserLookup(e.to_string())
        })
    }

    /// Deliver one copy per recipient, in order; one outcome each.
    pub fn deliver(&self, env: &Envelope, rcpts: &[Recipient], body: &Spool) -> Vec<RcptOutcome> {
        rcpts
            .iter()
            .map(|r| self.deliver_one(env, r, body))
            .collect()
    }

    fn deliver_one(&self, env: &Envelope, rcpt: &Recipient, body: &Spool) -> RcptOutcome {
        let _span = tracing::info_span!("rcpt", addr = %rcpt.address).entered();
        let (outcome, size) = match self.save(env, rcpt, body) {
            Ok(saved) => (RcptOutcome::Delivered { folder: saved.0 }, saved.1),
            Err(f) => (RcptOutcome::Failed(f), body.len()),
        };
        log_outcome(env, rcpt, &outcome, size);
        outcome
    }

    /// Returns the folder's IMAP name and the stored size.
    fn save(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
    ) -> Result<(String, u64), Failure> {
        let user = &rcpt.user;
        let owner = match (user.uid, user.gid) {
            (Some(uid), Some(gid)) => Some(Owner { uid, gid }),
            _ => None,
        };
        let maildir = Maildir::new(
            user.maildir.clone(),
            owner,
            self.cfg.storage.folder_encoding,
            &self.cfg.hostname,
        );
        let header = headers::build(&Trace {
            return_path: env.mail_from.as_deref(),
            delivered_to: &rcpt.address,
            origin: &env.origin,
            hostname: &self.cfg.hostname,
            id: &env.id,
            received: env.received,
        });
        let (header_lf, _) = store::count_bare_lf(false, &header);
        let content = Content {
            header: &header,
            body: body.body(),
            bare_lf: header_lf + body.bare_lf(),
        };
        let flags = Flags::default();
        let wanted = rcpt.folder.clone().or_else(|| {
            self.cfg
                .lmtp
                .save_to_detail_mailbox
                .then(|| user.detail.clone())
                .flatten()
        });
        if let Some(folder) = wanted {
            match maildir.save(&folder, true, &flags, &content, env.received) {
                Ok(saved) => return Ok((folder, saved.size)),
                Err(e @ (StoreError::InvalidFolder { .. } | StoreError::NoSuchFolder(_))) => {
                    tracing::warn!(id = %env.id, to = %rcpt.address, folder = %folder, error = %e, "folder refused, saving to INBOX");
                }
                Err(e) => return Err(store_failure(e)),
            }
        }
        maildir
            .save("INBOX", true, &flags, &content, env.received)
            .map(|saved| ("INBOX".to_owned(), saved.size))
            .map_err(store_failure)
    }
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        StoreError::NoSpace { .. } => Failure::NoSpace,
        other => Failure::Io(other.to_string()),
    }
}

/// The one INFO line per recipient outcome, Postfix style.
pub fn log_outcome(env: &Envelope, rcpt: &Recipient, outcome: &RcptOutcome, size: u64) {
    let delay = format!("{:.3}", env.started.elapsed().as_secs_f64());
    let to = format!("<{}>", rcpt.address);
    let orig_to = rcpt.orcpt.as_deref().map(|o| format!("<{o}>"));
    match outcome {
        RcptOutcome::Delivered { folder } => tracing::info!(
            id = %env.id, to = %to, orig_to, folder = %folder, size, delay = %delay,
            status = "delivered", "delivery"
        ),
        RcptOutcome::Discarded => tracing::info!(
            id = %env.id, to = %to, orig_to, delay = %delay, status = "discarded", "delivery"
        ),
        RcptOutcome::Failed(f) => tracing::info!(
            id = %env.id, to = %to, orig_to, size, delay = %delay,
            status = outcome.status(), reply = %f.reply(), reason = %f.detail(), "delivery"
        ),
    }
}
