//! The messages sieve-rs makes for a script to send (vacation replies,
//! mailto notifications), given the header fields it cannot fill because
//! they depend on the delivery: who a reply or notification comes from and
//! whose script sent it. Pure functions over bytes; must not send anything
//! or decide whether a message is sent at all (that is `vacation` and the
//! run's). MIME repairs are the caller's (README: "Vacation replies have no
//! `MIME-Version`").

use mail_parser::{HeaderValue, MessageParser};

/// Headers a vacation reply's sender is looked for in, in Pigeonhole's
/// order (`_my_address_headers`).
const ADDRESS_HEADERS: &[&str] = &["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"];

/// The address a vacation reply comes from, as Pigeonhole chooses it: the
/// first of `candidates` (the recipient, the original recipient, then the
/// script's `:addresses`, in that order) that the message names, looking
/// through To, Cc, Bcc, Resent-To, Resent-Cc and Resent-Bcc in that order.
/// Addresses compare without regard to case. None: the message names none
/// of them.
pub fn reply_from<'a>(message: &[u8], candidates: &[&'a str]) -> Option<&'a str> {
    let parsed = MessageParser::new().parse_headers(message)?;
    for name in ADDRESS_HEADERS {
        let mut named: Vec<String> = Vec::new();
        for header in parsed.headers() {
            if !header.name.as_str().eq_ignore_ascii_case(name) {
                continue;
            }
            if let HeaderValue::Address(list) = &header.value {
                named.extend(list.iter().filter_map(|a| a.address()).map(str::to_owned));
            }
        }
        if let Some(c) = candidates
            .iter()
            .find(|c| named.iter().any(|n| n.eq_ignore_ascii_case(c)))
        {
            return Some(c);
        }
    }
    None
}

/// A notification as RFC 5436 2.7 wants it: sieve-rs leaves `From:` empty
/// when the script gave no `:from` (it would fill it from the user's
/// address, which the host does not give it, see README) and names no
/// owner in `Auto-Submitted`. Here an empty From becomes `recipient` (the
/// envelope "to" as the script saw it, one of the two choices of RFC 5436
/// 2.7), and Auto-Submitted gets `owner-email="recipient"` (2.7.1: one of
/// owner-email and owner-token is required), as Pigeonhole writes it.
pub fn fix_notification(message: &[u8], recipient: &str) -> Vec<u8> {
    let from_given = crate::header_values(message, "from")
        .first()
        .is_some_and(|v| !v.trim().is_empty());
    let message = if from_given {
        message.to_vec()
    } else {
        replace_field(message, "From", recipient)
    };
    let owner = recipient.replace('\\', "\\\\").replace('"', "\\\"");
    replace_field(
        &message,
        "Auto-Submitted",
        &format!("auto-notified; owner-email=\"{owner}\""),
    )
}

/// One header field of a message: its name and its bytes (folded lines
/// included).
pub struct Field<'a> {
    pub name: &'a [u8],
    pub range: std::ops::Range<usize>,
}

/// The header fields of `message`, in order, and where the header section
/// ends: at the first empty line, or at a line that is no field (the rest,
/// from there, is the body as it is).
pub fn fields(message: &[u8]) -> (Vec<Field<'_>>, usize) {
    let mut out: Vec<Field<'_>> = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let end = memchr::memchr(b'\n', &message[pos..]).map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        let bare = bare.strip_suffix(b"\r").unwrap_or(bare);
        if bare.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // A fold continues the field before it; before any, it is kept.
            match out.last_mut() {
                Some(f) => f.range.end = end,
                None => out.push(Field {
                    name: b"",
                    range: pos..end,
                }),
            }
        } else {
            let Some(colon) = memchr::memchr(b':', bare) else {
                break;
            };
            out.push(Field {
                name: bare[..colon].trim_ascii_end(),
                range: pos..end,
            });
        }
        pos = end;
    }
    (out, pos)
}

/// `message` with the first `name` field's value (folded lines included)
/// replaced by `value`, or the field added at the top when there is none.
/// Control characters in `value` become spaces.
pub fn replace_field(message: &[u8], name: &str, value: &str) -> Vec<u8> {
    let value: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let field = format!("{name}: {value}\r\n");
    let (fields, end) = fields(message);
    let mut out = Vec::with_capacity(message.len() + field.len());
    let mut replaced = false;
    for f in &fields {
        if !replaced && f.name.eq_ignore_ascii_case(name.as_bytes()) {
            out.extend_from_slice(field.as_bytes());
            replaced = true;
        } else {
            out.extend_from_slice(&message[f.range.clone()]);
        }
    }
    if !replaced {
        let mut top = field.into_bytes();
        top.extend_from_slice(&out);
        out = top;
    }
    out.extend_from_slice(&message[end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: Sender <sender@example.net>\r\nTo: Shop <SHOP@alias.example>, bob@example.org\r\nCc: alice+shop@example.org\r\nSubject: order\r\n\r\nbody\r\n";

    #[test]
    fn a_reply_comes_from_the_address_the_correspondent_wrote_to() {
        let rcpt = "alice+shop@example.org";
        // To comes before Cc: the :addresses entry named in To wins over
        // the recipient named only in Cc, as in Pigeonhole.
        assert_eq!(
            reply_from(MSG, &[rcpt, "shop@alias.example"]),
            Some("shop@alias.example")
        );
        // Within one header the recipient comes first.
        let both = b"To: alice+shop@example.org, shop@alias.example\r\n\r\n";
        assert_eq!(reply_from(both, &[rcpt, "shop@alias.example"]), Some(rcpt));
        assert_eq!(reply_from(MSG, &["nobody@example.org"]), None);
        assert_eq!(
            reply_from(b"Resent-Bcc: a@b.example\r\n\r\n", &["A@B.example"]),
            Some("A@B.example")
        );
    }

    #[test]
    fn an_empty_notification_from_becomes_the_recipient_and_the_owner_is_named() {
        let made = b"From: \r\nTo: <carol@example.net>\r\nSubject: new mail\r\nAuto-Submitted: auto-notified\r\nX-Sieve: yes\r\n\r\nnew mail";
        let fixed = String::from_utf8(fix_notification(made, "alice+shop@example.org")).unwrap();
        assert_eq!(
            fixed,
            "From: alice+shop@example.org\r\nTo: <carol@example.net>\r\nSubject: new mail\r\nAuto-Submitted: auto-notified; owner-email=\"alice+shop@example.org\"\r\nX-Sieve: yes\r\n\r\nnew mail"
        );
        // A :from the script gave stays.
        let given = b"From: Alice <alice@example.org>\r\nAuto-Submitted: auto-notified\r\n\r\n";
        let fixed = String::from_utf8(fix_notification(given, "alice@example.org")).unwrap();
        assert!(
            fixed.starts_with("From: Alice <alice@example.org>\r\n"),
            "{fixed}"
        );
    }

    #[test]
    fn replace_field_takes_folded_values_and_adds_missing_fields_on_top() {
        let m = b"Subject: a\r\n b\r\nFrom: x\r\n\r\nFrom: in the body\r\n";
        assert_eq!(
            String::from_utf8(replace_field(m, "subject", "new\r\nInjected: yes")).unwrap(),
            "subject: new  Injected: yes\r\nFrom: x\r\n\r\nFrom: in the body\r\n"
        );
        assert_eq!(
            String::from_utf8(replace_field(b"X: 1\n\nbody", "From", "a@b")).unwrap(),
            "From: a@b\r\nX: 1\n\nbody"
        );
    }
}
