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
    /// `[log] delivery_format`: the line's text instead of the default.
    pub format: Option<&'a str>,
    /// The Subject and From header values (for `format`).
    pub subject: Option<&'a str>,
    pub header_from: Option<&'a str>,
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
    if let Some(format) = m.format {
        let line = expand(format, rcpt, outcome, elapsed, m);
        tracing::info!(status = outcome.status(), "{line}");
        return;
    }
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

/// `[log] delivery_format` with Dovecot's deliver_log_format variables:
/// `%$` what happened ("saved mail to INBOX", "rejected: ...", ...), `%m`
/// Message-ID, `%s` Subject, `%f` From, `%e` envelope sender, `%p` bytes
/// stored, `%{size}` bytes received, `%{delivery_time}` milliseconds,
/// `%{mailbox}` folder, `%{to}`, `%{orig_to}`, `%{id}` queue id, `%%`.
/// Anything else is kept as written. Every value is one line of
/// printable text, bounded, so a header cannot add lines or fields.
pub fn expand(
    format: &str,
    rcpt: &Recipient,
    outcome: &RcptOutcome,
    elapsed: std::time::Duration,
    m: &Logged<'_>,
) -> String {
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "$" => what_happened(outcome),
            "m" => m.msgid.map(log_msgid).unwrap_or_default(),
            "s" => one_line(m.subject.unwrap_or("")),
            "f" => one_line(m.header_from.unwrap_or("")),
            "e" => m.from.unwrap_or("").to_owned(),
            "p" => m.stored.map(|s| s.to_string()).unwrap_or_default(),
            "size" => m.size.map(|s| s.to_string()).unwrap_or_default(),
            "delivery_time" => elapsed.as_millis().to_string(),
            "mailbox" => match outcome {
                RcptOutcome::Delivered { folder } => folder.clone(),
                _ => String::new(),
            },
            "to" => rcpt.address.clone(),
            "orig_to" => rcpt.orcpt.clone().unwrap_or_default(),
            "id" => m.id.unwrap_or("").to_owned(),
            "%" => "%".to_owned(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(format.len() + 64);
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{').and_then(|a| a.split_once('}')) {
            Some((n, _)) => (n, n.len() + 2),
            None => match after.chars().next() {
                Some(c) => (&after[..c.len_utf8()], c.len_utf8()),
                None => ("", 0),
            },
        };
        match value(name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// `%$`: Dovecot's words for what happened.
fn what_happened(outcome: &RcptOutcome) -> String {
    match outcome {
        RcptOutcome::Delivered { folder } => format!("saved mail to {folder}"),
        RcptOutcome::Discarded => "discarded".to_owned(),
        RcptOutcome::Failed(super::outcome::Failure::Rejected(r)) => {
            format!("rejected: {}", one_line(r))
        }
        RcptOutcome::Failed(f) => format!("failed: {}", one_line(&f.detail())),
    }
}

/// A header value as the log shows it: control characters made '?',
/// at most [`MSGID_LOG_MAX`] characters.
fn one_line(v: &str) -> String {
    let mut out: String = v
        .chars()
        .take(MSGID_LOG_MAX + 1)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.chars().count() > MSGID_LOG_MAX {
        out = out.chars().take(MSGID_LOG_MAX - 3).collect();
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_format_expands_dovecots_variables_and_keeps_the_rest() {
        let user = crate::users::User {
            name: "a@x.org".into(),
            local: "a".into(),
            domain: "x.org".into(),
            detail: None,
            uid: None,
            gid: None,
            maildir: "/m/Maildir".into(),
            home: "/m".into(),
            extra: Vec::new(),
        };
        let rcpt = Recipient {
            address: "a@x.org".into(),
            orcpt: None,
            user,
            folder: None,
        };
        let m = Logged {
            id: Some("Q1"),
            from: Some("s@y.org"),
            size: Some(100),
            stored: Some(250),
            msgid: Some("<m@y>"),
            format: None,
            subject: Some("hi\r\nX-Evil: 1"),
            header_from: Some("S <s@y.org>"),
        };
        let ok = RcptOutcome::Delivered {
            folder: "INBOX".into(),
        };
        let line = expand(
            "msgid=%m: %$ from=%f subject=%s env=%e size=%p/%{size} to=%{to} box=%{mailbox} id=%{id} 100%% %q %{nope}",
            &rcpt,
            &ok,
            std::time::Duration::from_millis(7),
            &m,
        );
        assert_eq!(
            line,
            "msgid=<m@y>: saved mail to INBOX from=S <s@y.org> subject=hi??X-Evil: 1 env=s@y.org size=250/100 to=a@x.org box=INBOX id=Q1 100% %q %{nope}"
        );
        let rejected = RcptOutcome::Failed(super::super::outcome::Failure::Rejected(
            "no\nthanks".into(),
        ));
        assert_eq!(
            expand(
                "%$ %{delivery_time}ms%",
                &rcpt,
                &rejected,
                std::time::Duration::from_millis(7),
                &m
            ),
            "rejected: no?thanks 7ms%"
        );
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
}
