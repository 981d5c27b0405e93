//! `mailstow deliver`: pipe mode. One message on stdin for one recipient,
//! through the same pipeline as LMTP; the outcome is the exit code an MTA
//! reads (sysexits). Must not hold delivery logic.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mailstow::config::Config;
use mailstow::deliver::headers::{self, Origin};
use mailstow::deliver::lead::Lead;
use mailstow::deliver::outcome::{Failure, RcptOutcome};
use mailstow::deliver::{Deliverer, Envelope, Recipient, Spool};

use super::common::setup;
use super::exit::{EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE};

pub fn deliver(
    config: PathBuf,
    from: Option<String>,
    recipient: String,
    mailbox: Option<String>,
) -> u8 {
    let cfg = match setup(&config, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let fail = |code: u8, msg: String| {
        eprintln!("mailstow: {msg}");
        code
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
    let user = match deliverer.lookup(local, domain) {
        Ok(Some(u)) => u,
        Ok(None) => return fail(EX_NOUSER, format!("{recipient}: user unknown")),
        Err(f) => return fail(EX_TEMPFAIL, format!("{recipient}: {}", f.detail())),
    };
    let started = Instant::now();
    let Piped { spool, return_path } = match read_stdin(&cfg) {
        Ok(p) => p,
        Err(Failure::TooLarge) => {
            return fail(EX_DATAERR, "message exceeds limits.max_message_size".into())
        }
        Err(f) => return fail(EX_TEMPFAIL, f.detail()),
    };
    // -f, else what the MTA wrote above the message (as Dovecot's LDA),
    // else its SENDER variable (Exim, OpenSMTPD, Postfix's local), else <>.
    let from = from
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
        address: recipient.clone(),
        orcpt: None,
        user,
        folder: mailbox,
    };
    let outcomes = deliverer.deliver(&env, std::slice::from_ref(&rcpt), &spool);
    match outcomes.first() {
        Some(o @ (RcptOutcome::Delivered { .. } | RcptOutcome::Discarded)) => o.exit_code(),
        Some(o @ RcptOutcome::Failed(f)) => {
            fail(o.exit_code(), format!("{recipient}: {}", f.detail()))
        }
        None => EX_SOFTWARE,
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
fn read_stdin(cfg: &Config) -> Result<Piped, Failure> {
    let mut spool = Spool::new(
        cfg.delivery.spool_dir.clone(),
        cfg.delivery.spool_memory_max,
    );
    let limit = cfg.limits.max_message_size;
    let mut lead = Lead::new(true);
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
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
