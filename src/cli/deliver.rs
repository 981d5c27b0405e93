//! `mailstow deliver`: pipe mode. One message on stdin for one recipient,
//! through the same pipeline as LMTP; the outcome is the exit code an MTA
//! reads (sysexits). Must not hold delivery logic.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mailstow::config::Config;
use mailstow::deliver::headers::{self, Origin};
use mailstow::deliver::outcome::{Failure, RcptOutcome};
use mailstow::deliver::{Deliverer, Envelope, Recipient, Spool};

use super::common::setup;
use super::exit::{EX_DATAERR, EX_NOUSER, EX_SOFTWARE, EX_TEMPFAIL, EX_USAGE};

pub fn deliver(config: PathBuf, from: String, recipient: String, mailbox: Option<String>) -> u8 {
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
    let spool = match read_stdin(&cfg) {
        Ok(s) => s,
        Err(Failure::TooLarge) => {
            return fail(EX_DATAERR, "message exceeds limits.max_message_size".into())
        }
        Err(f) => return fail(EX_TEMPFAIL, f.detail()),
    };
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

/// Spool stdin, dropping a leading mbox "From " line as Dovecot's LDA does.
fn read_stdin(cfg: &Config) -> Result<Spool, Failure> {
    let mut spool = Spool::new(
        cfg.delivery.spool_dir.clone(),
        cfg.delivery.spool_memory_max,
    );
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 64 * 1024];
    // None: not yet known whether stdin starts with "From "; Some(true):
    // inside that line, dropping it; Some(false): message bytes.
    let mut in_from_line: Option<bool> = None;
    let mut head = Vec::new();
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Spool(format!("reading stdin: {e}"))),
        };
        let mut chunk = &buf[..n];
        if in_from_line.is_none() {
            // Decide on the first five bytes, however stdin splits them.
            head.extend_from_slice(chunk);
            if head.len() < 5 {
                continue;
            }
            in_from_line = Some(head.starts_with(b"From "));
            chunk = &head;
        }
        if in_from_line == Some(true) {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    chunk = &chunk[i + 1..];
                    in_from_line = Some(false);
                }
                None => continue,
            }
        }
        if spool.len() + chunk.len() as u64 > cfg.limits.max_message_size {
            return Err(Failure::TooLarge);
        }
        spool.append(chunk).map_err(|e| Failure::spool(&e))?;
    }
    if in_from_line.is_none() {
        // Fewer than five bytes in all.
        spool.append(&head).map_err(|e| Failure::spool(&e))?;
    }
    spool.finish().map_err(|e| Failure::spool(&e))?;
    Ok(spool)
}
