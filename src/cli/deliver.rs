//! `mailstow deliver`: pipe mode. One message on stdin for one recipient,
//! through the same pipeline as LMTP; the outcome is the exit code an MTA
//! reads (sysexits). Must not hold delivery logic.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mailstow::config::Config;
use mailstow::deliver::headers::{self, Origin};
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

/// The longest line examined as a leading `From ` line or Return-Path
/// field; a longer line is message content, read in pieces.
const MAX_LEAD_LINE: u64 = 64 * 1024;

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
/// and the Return-Path fields at the top (ours replaces them, so a stored
/// file never has two), whose address is kept as a sender to fall back on.
fn read_stdin(cfg: &Config) -> Result<Piped, Failure> {
    let mut input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
    let mut spool = Spool::new(
        cfg.delivery.spool_dir.clone(),
        cfg.delivery.spool_memory_max,
    );
    let limit = cfg.limits.max_message_size;
    let mut line = Vec::new();
    next_line(&mut input, &mut line)?;
    if line.starts_with(b"From ") {
        next_line(&mut input, &mut line)?;
    }
    let mut return_path = None;
    while is_field(&line, b"return-path:") {
        let mut field = std::mem::take(&mut line);
        next_line(&mut input, &mut line)?;
        while line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            field.extend_from_slice(&line);
            next_line(&mut input, &mut line)?;
        }
        return_path = address_of(&field);
    }
    append_limited(&mut spool, &line, limit)?;
    loop {
        let buf = input.fill_buf().map_err(stdin_failure)?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        append_limited(&mut spool, buf, limit)?;
        input.consume(n);
    }
    spool.finish().map_err(|e| Failure::spool(&e))?;
    Ok(Piped { spool, return_path })
}

/// The next line of stdin into `line` (empty at the end), at most
/// [`MAX_LEAD_LINE`] bytes of it.
fn next_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<(), Failure> {
    line.clear();
    input
        .take(MAX_LEAD_LINE)
        .read_until(b'\n', line)
        .map(drop)
        .map_err(stdin_failure)
}

fn stdin_failure(e: std::io::Error) -> Failure {
    Failure::Spool(format!("reading stdin: {e}"))
}

fn append_limited(spool: &mut Spool, bytes: &[u8], limit: u64) -> Result<(), Failure> {
    if spool.received() + bytes.len() as u64 > limit {
        return Err(Failure::TooLarge);
    }
    spool.append(bytes).map_err(|e| Failure::spool(&e))
}

/// Does `line` start the header field `name` (lowercase, with its colon)?
fn is_field(line: &[u8], name: &[u8]) -> bool {
    line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name)
}

/// The address of a Return-Path field (`Return-path: <a@b>`, folded or
/// not): "" for `<>`; None when the value is not one plain address.
fn address_of(field: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(&field[b"return-path:".len()..]).ok()?;
    let value = value.trim_matches(|c: char| c.is_ascii_whitespace());
    let inner = value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value);
    let plain = !inner.is_empty()
        && inner.contains('@')
        && !inner
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()\"".contains(c));
    (inner.is_empty() || plain).then(|| inner.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_path_fields_give_their_address_or_nothing() {
        assert_eq!(
            address_of(b"Return-path: <s@example.net>\n").as_deref(),
            Some("s@example.net")
        );
        assert_eq!(
            address_of(b"Return-Path:\n\t<s@example.net>\r\n").as_deref(),
            Some("s@example.net")
        );
        assert_eq!(address_of(b"Return-Path: <>\n").as_deref(), Some(""));
        assert_eq!(
            address_of(b"Return-Path: s@example.net\n").as_deref(),
            Some("s@example.net")
        );
        assert_eq!(address_of(b"Return-Path: <a b@example.net>\n"), None);
        assert_eq!(address_of(b"Return-Path: <(x)@example.net>\n"), None);
        assert_eq!(address_of(b"Return-Path: junk\n"), None);
        assert_eq!(address_of(b"Return-Path: <\xff@x>\n"), None);
    }

    #[test]
    fn field_names_compare_without_case() {
        assert!(is_field(b"Return-path: <>", b"return-path:"));
        assert!(is_field(b"RETURN-PATH:<>", b"return-path:"));
        assert!(!is_field(b"Return-Paths: <>", b"return-path:"));
        assert!(!is_field(b"Ret", b"return-path:"));
    }
}
