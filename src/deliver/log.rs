//! The delivery's log: the spans a transaction's and a recipient's
//! delivery run in, and the one INFO line per recipient outcome, Postfix
//! style (docs/operations.md, "The per-recipient log line"), which also
//! records the delivery metrics. Must not decide anything about the mail.

use std::time::Instant;

use super::envelope::{Envelope, Recipient};
use super::outcome::RcptOutcome;

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
pub const MSGID_LOG_MAX: usize = 200;

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
}
