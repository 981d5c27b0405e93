//! `mailstow deliver`: pipe mode. One message on stdin for one recipient,
//! through the same pipeline as LMTP; the outcome is the exit code an MTA
//! reads (sysexits). Must not hold delivery logic.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mailstow::config::Config;
use mailstow::deliver::headers::{self, Origin};
use mailstow::deliver::lead::Lead;
use mailstow::deliver::outcome::{Failure, RcptOutcome};
use mailstow::deliver::{Deliverer, Envelope, Recipient, Spool};

use super::common::setup;
use super::exit::{
    EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_NOUSER, EX_OK, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE,
};
use super::DeliverArgs;

pub fn deliver(args: DeliverArgs) -> u8 {
    let cfg = match setup_with(&args.config, &args.overrides) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(recipient) = args.recipient.clone().or_else(invoking_user) else {
        return fail(
            EX_USAGE,
            "no recipient: give -d, or run as the recipient's own account".into(),
        );
    };
    let deliverer = match Deliverer::new(Arc::clone(&cfg)) {
        Ok(d) => d,
        Err(e) => return fail(EX_TEMPFAIL, e.to_string()),
    };
    let (local, domain) = recipient
        .rsplit_once('@')
        .unwrap_or((recipient.as_str(), ""));
    if local.is_empty() {
        return fail(EX_USAGE, format!("bad recipient {recipient:?}"));
    }
    let found = match &args.recipient {
        Some(_) => deliverer.lookup(local, domain),
        None => deliverer.lookup_account(&recipient),
    };
    let user = match found {
        Ok(Some(u)) => u,
        Ok(None) => return fail(EX_NOUSER, format!("{recipient}: user unknown")),
        Err(f) => return fail(EX_TEMPFAIL, format!("{recipient}: {}", f.detail())),
    };
    let started = Instant::now();
    let Piped { spool, return_path } = match read_input(&cfg, args.path.as_deref()) {
        Ok(p) => p,
        Err(Failure::TooLarge) => {
            return fail(EX_DATAERR, "message exceeds limits.max_message_size".into())
        }
        Err(Failure::Spool(e)) if args.path.is_some() => return fail(EX_NOINPUT, e),
        Err(f) => return fail(EX_TEMPFAIL, f.detail()),
    };
    // -f, else what the MTA wrote above the message (as Dovecot's LDA),
    // else its SENDER variable (Exim, OpenSMTPD, Postfix's local), else <>.
    let from = args
        .from
        .clone()
        .or(return_path)
        .or_else(|| std::env::var("SENDER").ok())
        .unwrap_or_default();
    let from = from.trim_start_matches('<').trim_end_matches('>');
    let received = SystemTime::now();
    let env = Envelope {
        id: headers::new_id(received),
        mail_from: (!from.is_empty()).then(|| from.to_owned()),
        origin: Origin::Local,
        received,
        started,
    };
    let rcpt = Recipient {
        address: final_address(&args, &recipient, &cfg.hostname),
        orcpt: args.original_recipient.clone(),
        user,
        folder: args.mailbox.clone(),
    };
    let outcomes = deliverer.deliver(&env, std::slice::from_ref(&rcpt), &spool);
    match outcomes.first() {
        Some(o @ (RcptOutcome::Delivered { .. } | RcptOutcome::Discarded)) => o.exit_code(),
        Some(RcptOutcome::Failed(Failure::Rejected(reason))) if !args.reject_by_exit => {
            mail_rejection(&deliverer, &env, &rcpt, reason, &spool)
        }
        Some(o @ RcptOutcome::Failed(f)) => {
            fail(o.exit_code(), format!("{}: {}", rcpt.address, f.detail()))
        }
        None => EX_SOFTWARE,
    }
}

/// Without -d, the account that runs us (as dovecot-lda does: Postfix's
/// mailbox_command and procmail run the delivery agent as the recipient),
/// looked up by its name; never root.
fn invoking_user() -> Option<String> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return None;
    }
    nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The final recipient (Sieve's envelope "to", Delivered-To, the
/// rejection's Final-Recipient), as dovecot-lda sets it: -r, else -a, else
/// the user, `@hostname` added to a name without a domain.
fn final_address(args: &DeliverArgs, user: &str, hostname: &str) -> String {
    match (&args.final_recipient, &args.original_recipient) {
        (Some(r), _) | (None, Some(r)) => r.clone(),
        (None, None) if user.contains('@') => user.to_owned(),
        (None, None) => format!("{user}@{hostname}"),
    }
}

fn fail(code: u8, msg: String) -> u8 {
    eprintln!("mailstow: {msg}");
    code
}

/// The configuration, with `-o` keys set over the file's.
fn setup_with(path: &Path, overrides: &[String]) -> Result<Arc<Config>, u8> {
    if overrides.is_empty() {
        return setup(path, false);
    }
    let cfg =
        Config::load_with_overrides(path, overrides).map_err(|e| fail(EX_CONFIG, e.to_string()))?;
    if let Err(e) = mailstow::telemetry::init(&cfg.log) {
        return Err(fail(EX_CONFIG, format!("{e:#}")));
    }
    Ok(Arc::new(cfg))
}

/// A Sieve reject without -e: the sender gets a rejection (an MDN from
/// postmaster_address) and the message is gone, exit 0, as dovecot-lda
/// does; to the null sender nothing is sent. A rejection that cannot be
/// sent now is a temporary failure (75), so the MTA tries again.
fn mail_rejection(
    d: &Deliverer,
    env: &Envelope,
    rcpt: &Recipient,
    reason: &str,
    spool: &Spool,
) -> u8 {
    let Some(sender) = env.mail_from.as_deref() else {
        tracing::info!(id = %env.id, "rejected; no rejection sent: the sender is null");
        return EX_OK;
    };
    let cfg = d.config();
    let head = spool
        .head(mailstow::deliver::report::HEADER_MAX)
        .unwrap_or_default();
    let message = mailstow::outbound::reject::build(&mailstow::outbound::reject::Rejection {
        from: &cfg.postmaster(Some(&rcpt.user.domain)),
        sender,
        recipient: &rcpt.address,
        reason,
        hostname: &cfg.hostname,
        id: &env.id,
        now: SystemTime::now(),
        message: &head,
    });
    match d.outbound().submit(None, &[sender.to_owned()], &message) {
        Ok(()) => {
            tracing::info!(id = %env.id, to = %format!("<{sender}>"), "rejection sent");
            EX_OK
        }
        Err(e) => fail(
            EX_TEMPFAIL,
            format!(
                "{}: rejected, but the rejection could not be sent: {e}",
                rcpt.address
            ),
        ),
    }
}

/// What came on stdin: the message, and the envelope sender the MTA wrote
/// above it in a leading Return-Path field (Exim's `return_path_add`,
/// OpenSMTPD's MDA interface, Postfix pipe's `flags=R`).
struct Piped {
    spool: Spool,
    /// The last leading Return-Path's address ("" for `<>`); None: none,
    /// or not an address.
    return_path: Option<String>,
}

/// Spool stdin, dropping a leading mbox "From " line as Dovecot's LDA does
/// and the Return-Path fields at the top (see `deliver::lead`), whose
/// address is kept as a sender to fall back on.
fn read_input(cfg: &Config, path: Option<&Path>) -> Result<Piped, Failure> {
    let mut spool = Spool::new(
        cfg.delivery.spool_dir.clone(),
        cfg.delivery.spool_memory_max,
    );
    let limit = cfg.limits.max_message_size;
    let mut lead = Lead::new(true);
    let mut input: Box<dyn Read> = match path {
        None => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(
            std::fs::File::open(p).map_err(|e| Failure::Spool(format!("{}: {e}", p.display())))?,
        ),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Spool(format!("reading stdin: {e}"))),
        };
        append_limited(&mut spool, &lead.pass(&buf[..n]), limit)?;
    }
    append_limited(&mut spool, &lead.finish(), limit)?;
    spool.finish().map_err(|e| Failure::spool(&e))?;
    let return_path = lead.return_path().map(str::to_owned);
    Ok(Piped { spool, return_path })
}

fn append_limited(spool: &mut Spool, bytes: &[u8], limit: u64) -> Result<(), Failure> {
    if spool.received() + bytes.len() as u64 > limit {
        return Err(Failure::TooLarge);
    }
    spool.append(bytes).map_err(|e| Failure::spool(&e))
}
