//! Vacation auto-replies (RFC 5230, RFC 3834, RFC 6131): whether a message
//! may be answered at all, and turning the reply that sieve-rs generates
//! into a proper MIME message. Pure functions over bytes; must not send,
//! store or remember anything (the duplicate tracking is the Sieve host's).
//!
//! What sieve-rs 0.7.3 already does before it emits a vacation reply, and
//! what it misses (each was checked against the crate with a probe):
//! - it skips an empty envelope sender, senders starting `mailer-daemon` or
//!   `owner-`, containing `-request@`, or equal to one of the user's
//!   addresses; `List-*` headers; `X-Auto-Response-Suppress: All/OOF`;
//!   `Precedence: bulk`; more than 10 `Received` headers; and a user that is
//!   not named in To/Cc/Bcc/Resent-* (exactly, so `user+tag@` is missed);
//! - its `Auto-Submitted` check never fires with mail-parser 0.11 (the crate
//!   looks for `HeaderName::Other`, mail-parser now has a named variant), so
//!   two auto-responders would answer each other;
//! - it misses `Precedence: junk/list`, `postmaster`, `LISTSERV`,
//!   `majordomo`;
//! - the reply copies the decoded Subject of the original raw into its own
//!   header, so an encoded CR LF in that Subject injects header lines (and a
//!   body) into a message sent from the user's address.
//!
//! [`suppress_reason`] covers all of these; the host calls it before
//! answering the crate's vacation `DuplicateId` event.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mail_parser::{Address, HeaderValue, MessageParser};

use super::encode::{encode_header, encode_phrase, fold_header, quoted_printable, rfc5322_date};

/// Local parts (lower case, `+detail` removed) that RFC 3834 2 and RFC 5230
/// 4.6 name as never to be answered.
const SYSTEM_LOCAL_PARTS: &[&str] = &["mailer-daemon", "postmaster", "listserv", "majordomo"];

/// RFC 2369 and RFC 2919 list headers.
const LIST_HEADERS: &[&str] = &[
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
];

/// Headers naming the recipients (RFC 5230 4.5).
const RECIPIENT_HEADERS: &[&str] = &["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"];

/// Why no auto-reply may be sent to this message, or `None` when one may.
///
/// `envelope_from` is the envelope sender (`None` or empty: the null
/// sender); `user_addresses` are the user's addresses (the recipient, its
/// aliases, any `:addresses` of the script). Addresses are compared with
/// local part and domain case-insensitive and any `+detail` removed.
/// A message whose headers cannot be found is not answered.
pub fn suppress_reason(
    message: &[u8],
    envelope_from: Option<&str>,
    user_addresses: &[String],
) -> Option<&'static str> {
    reason(message, envelope_from, user_addresses, true)
}

/// As [`suppress_reason`], without the "user named in To, Cc or Bcc" rule:
/// for the Sieve host, whose interpreter already checked it against the
/// script's `:addresses` too, which this function cannot see.
pub fn suppress_reason_after_recipient_check(
    message: &[u8],
    envelope_from: Option<&str>,
    user_addresses: &[String],
) -> Option<&'static str> {
    reason(message, envelope_from, user_addresses, false)
}

fn reason(
    message: &[u8],
    envelope_from: Option<&str>,
    user_addresses: &[String],
    require_named: bool,
) -> Option<&'static str> {
    let from = envelope_from
        .map(|f| f.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|f| !f.is_empty());
    let Some(from) = from else {
        return Some("null envelope sender");
    };
    let sender = normalize(from);
    let local = sender.0.as_str();
    if SYSTEM_LOCAL_PARTS.contains(&local)
        || local.starts_with("mailer-daemon")
        || local.starts_with("owner-")
        || local.ends_with("-owner")
        || local.ends_with("-request")
        || local.ends_with("-bounces")
    {
        return Some("sender is a mailing list or system address");
    }
    let users: Vec<(String, String)> = user_addresses.iter().map(|a| normalize(a)).collect();
    if users.contains(&sender) {
        return Some("sender is the user");
    }

    // Other headers decoded as text, so the control-character check sees
    // what a script would see.
    let parser = MessageParser::new().default_header_text();
    let Some(parsed) = parser.parse_headers(message) else {
        return Some("message has no header section");
    };
    let mut named = false;
    for header in parsed.headers() {
        let name = header.name.as_str().to_ascii_lowercase();
        let raw = message
            .get(header.offset_start as usize..header.offset_end as usize)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        match name.as_str() {
            "auto-submitted" if first_token(&raw) != "no" => {
                return Some("Auto-Submitted is not \"no\"");
            }
            "precedence" if ["bulk", "junk", "list"].contains(&first_token(&raw).as_str()) => {
                return Some("Precedence is bulk, junk or list");
            }
            "x-auto-response-suppress"
                if raw
                    .split(',')
                    .any(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "all" | "oof")) =>
            {
                return Some("X-Auto-Response-Suppress asks for no auto-replies");
            }
            n if LIST_HEADERS.contains(&n) => return Some("mailing list header"),
            _ => {}
        }
        if has_control_chars(&header.value) {
            return Some("a header decodes to line breaks or control characters");
        }
        if !named && RECIPIENT_HEADERS.contains(&name.as_str()) {
            if let HeaderValue::Address(addresses) = &header.value {
                named = addresses
                    .iter()
                    .filter_map(|a| a.address())
                    .any(|a| users.contains(&normalize(a)));
            }
        }
    }
    if require_named && !named {
        return Some("user not named in To, Cc or Bcc");
    }
    None
}

/// (local part without `+detail`, domain), both lower case.
fn normalize(address: &str) -> (String, String) {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    let local = match local.split_once('+') {
        Some((base, _)) if !base.is_empty() => base,
        _ => local,
    };
    (local.to_lowercase(), domain.to_lowercase())
}

/// The first word of a header value, lower case, without comments or
/// parameters (`auto-replied; x=y (comment)` gives `auto-replied`).
fn first_token(raw: &str) -> String {
    raw.trim_start()
        .split(|c: char| c == ';' || c == '(' || c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// A decoded value holding a line break that is not folding (CR LF or LF
/// followed by a space or tab) or another control character but tab:
/// copied into a reply header, it would start new header lines.
fn has_control_chars(value: &HeaderValue) -> bool {
    let bad = |s: &str| {
        let b = s.as_bytes();
        let wsp = |i: usize| matches!(b.get(i), Some(b' ' | b'\t'));
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'\r' if b.get(i + 1) == Some(&b'\n') && wsp(i + 2) => i += 3,
                b'\n' if wsp(i + 1) => i += 2,
                b'\t' => i += 1,
                c if c < 0x20 || c == 0x7f => return true,
                _ => i += 1,
            }
        }
        false
    };
    match value {
        HeaderValue::Text(t) => bad(t),
        HeaderValue::TextList(list) => list.iter().any(|t| bad(t)),
        HeaderValue::Address(a) => a
            .iter()
            .any(|a| a.name().is_some_and(bad) || a.address().is_some_and(bad)),
        _ => false,
    }
}

/// Header fields a message carries at most once (RFC 5322 3.6, RFC 2045,
/// RFC 3834).
const SINGLE: &[&str] = &[
    "date",
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "message-id",
    "in-reply-to",
    "references",
    "subject",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "auto-submitted",
];

/// Canonical spellings for the fields this module writes or rewrites.
const CANONICAL: &[&str] = &[
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Address fields whose display names are re-encoded when not ASCII.
const ADDRESS_FIELDS: &[&str] = &["from", "sender", "reply-to", "to", "cc"];

/// One header field: its name and everything after the colon, folded lines
/// joined with CRLF.
struct Field {
    name: String,
    value: Vec<u8>,
}

impl Field {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Make a reply generated by sieve-rs a proper message.
///
/// - CRLF line ends throughout; control characters in header lines become
///   spaces; a later copy of a once-only field (Subject, Date,
///   Content-Type, ...) is dropped.
/// - A Subject that is not ASCII is RFC 2047-encoded and folded; so are
///   display names in From/To/Cc/Reply-To/Sender.
/// - `MIME-Version: 1.0` is added; a reply without Content-Type becomes
///   `text/plain; charset=utf-8`. A single-part body with 8-bit bytes or
///   lines over 998 octets and no Content-Transfer-Encoding is sent as
///   quoted-printable (so it survives relays without 8BITMIME); a
///   multipart or message/* one is labelled `8bit`.
/// - `Auto-Submitted: auto-replied` (RFC 3834 5), `Date` and a
///   `Message-ID` at `hostname` are added when missing.
///
/// The result is stable: fixing a fixed reply changes nothing.
pub fn fix_reply(raw: &[u8], hostname: &str, now: SystemTime) -> Vec<u8> {
    fix_generated(raw, hostname, now, "auto-replied")
}

/// As [`fix_reply`] for any message we generate, with its own
/// Auto-Submitted value: "auto-replied" for vacation (RFC 3834),
/// "auto-notified" for Sieve notifications (RFC 5436).
pub fn fix_generated(raw: &[u8], hostname: &str, now: SystemTime, auto_submitted: &str) -> Vec<u8> {
    let (fields, body) = split_header(raw);

    let mut head: Vec<Field> = Vec::new();
    let mut content: Vec<Field> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for mut field in fields {
        let lower = field.name.to_ascii_lowercase();
        if SINGLE.contains(&lower.as_str()) && !seen.insert(lower.clone()) {
            continue;
        }
        if let Some(c) = CANONICAL.iter().find(|c| c.eq_ignore_ascii_case(&lower)) {
            field.name = (*c).to_owned();
        }
        if lower.starts_with("content-") {
            content.push(field);
        } else {
            head.push(field);
        }
    }

    let mut out: Vec<u8> = Vec::with_capacity(raw.len() + 512);
    let (has_date, has_id, has_mime) = (
        seen.contains("date"),
        seen.contains("message-id"),
        seen.contains("mime-version"),
    );
    for field in &mut head {
        if field.is("subject") {
            write_subject(&mut out, field);
        } else if ADDRESS_FIELDS.iter().any(|n| field.is(n)) && !field.value.is_ascii() {
            match rebuild_addresses(&field.name, &field.value) {
                Some(text) => out.extend_from_slice(text.as_bytes()),
                None => write_field(&mut out, field),
            }
        } else if field.is("auto-submitted") {
            if first_token(&String::from_utf8_lossy(&field.value)) != auto_submitted {
                field.value = format!(" {auto_submitted}").into_bytes();
            }
            write_field(&mut out, field);
        } else {
            write_field(&mut out, field);
        }
    }
    if !has_date {
        out.extend_from_slice(format!("Date: {}\r\n", rfc5322_date(now)).as_bytes());
    }
    if !has_id {
        out.extend_from_slice(format!("Message-ID: {}\r\n", message_id(hostname, now)).as_bytes());
    }
    if !seen.contains("auto-submitted") {
        out.extend_from_slice(format!("Auto-Submitted: {auto_submitted}\r\n").as_bytes());
    }
    if !has_mime {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }

    let mut body = crlf(body);
    let media_type = content
        .iter()
        .find(|f| f.is("content-type"))
        .map(|f| first_token(&String::from_utf8_lossy(&f.value)));
    let has_cte = content.iter().any(|f| f.is("content-transfer-encoding"));
    for field in &content {
        write_field(&mut out, field);
    }
    if media_type.is_none() {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    }
    let media_type = media_type.unwrap_or_default();
    let eight_bit = body.iter().any(|&b| b >= 0x80 || b == 0);
    let long_lines = body.split(|&b| b == b'\n').any(|l| l.len() > 999);
    if !has_cte && (eight_bit || long_lines) {
        if media_type.starts_with("multipart/") || media_type.starts_with("message/") {
            out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        } else {
            out.extend_from_slice(b"Content-Transfer-Encoding: quoted-printable\r\n");
            body = quoted_printable(&body);
        }
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// The header fields of `raw` and the rest. The header section ends at the
/// first empty line, or at the first line that is neither a field nor a
/// continuation (that line starts the body).
fn split_header(raw: &[u8]) -> (Vec<Field>, &[u8]) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i);
        let line = &raw[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let next = (end + 1).min(raw.len());
        if line.is_empty() {
            return (fields, &raw[next..]);
        }
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some(field) => {
                    field.value.extend_from_slice(b"\r\n");
                    field.value.extend(line.iter().map(|&b| clean(b)));
                }
                None => return (fields, &raw[pos..]),
            }
        } else {
            let colon = line.iter().position(|&b| b == b':');
            let name = colon.map(|c| &line[..c]);
            match name {
                Some(name) if !name.is_empty() && name.iter().all(|b| (33..127).contains(b)) => {
                    fields.push(Field {
                        name: String::from_utf8_lossy(name).into_owned(),
                        value: line[name.len() + 1..].iter().map(|&b| clean(b)).collect(),
                    });
                }
                _ => return (fields, &raw[pos..]),
            }
        }
        pos = next;
    }
    (fields, &raw[raw.len()..])
}

/// Header bytes: control characters other than tab become spaces.
fn clean(b: u8) -> u8 {
    if b < 0x20 && b != b'\t' || b == 0x7f {
        b' '
    } else {
        b
    }
}

fn write_field(out: &mut Vec<u8>, field: &Field) {
    out.extend_from_slice(field.name.as_bytes());
    out.push(b':');
    out.extend_from_slice(&field.value);
    out.extend_from_slice(b"\r\n");
}

/// A Subject: non-ASCII text is encoded; long ASCII text is folded.
fn write_subject(out: &mut Vec<u8>, field: &Field) {
    let text = String::from_utf8_lossy(&field.value).replace("\r\n", "");
    let text = text.trim();
    let text = if field.value.is_ascii() {
        if field.value.len() + field.name.len() < 78 {
            return write_field(out, field);
        }
        fold_header(&field.name, text)
    } else {
        encode_header(&field.name, text)
    };
    out.extend_from_slice(text.as_bytes());
}

/// An address field with its display names encoded, or `None` when it is
/// not a plain list of addresses (a group, unparsable) and is kept as is.
fn rebuild_addresses(name: &str, value: &[u8]) -> Option<String> {
    let mut raw = Vec::with_capacity(value.len() + name.len() + 8);
    raw.extend_from_slice(name.as_bytes());
    raw.push(b':');
    raw.extend_from_slice(value);
    raw.extend_from_slice(b"\r\n\r\n");
    let parsed = MessageParser::new().parse_headers(&raw)?;
    let header = parsed.headers().first()?;
    let HeaderValue::Address(Address::List(list)) = &header.value else {
        return None;
    };
    let mut parts = Vec::with_capacity(list.len());
    for addr in list {
        let address = addr.address().filter(|a| plain_address(a))?;
        parts.push(match addr.name().map(str::trim).filter(|n| !n.is_empty()) {
            Some(display) => format!("{} <{address}>", encode_phrase(display)),
            None => address.to_owned(),
        });
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("{name}: {}\r\n", parts.join(",\r\n ")))
}

/// `local@domain`, both non-empty, with nothing that would need quoting or
/// could end the angle brackets (non-ASCII is fine: RFC 6532).
fn plain_address(address: &str) -> bool {
    let special = |c: char| c.is_control() || c.is_whitespace() || "<>()[],;:\\\"".contains(c);
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !local.contains('@')
                && !address.contains(special)
        }
        None => false,
    }
}

/// Bare LF and bare CR become CRLF; a body not ending in a line break gets
/// one.
fn crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 32 + 2);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if body.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A new Message-ID: time, process and a counter make it unique on this
/// host.
fn message_id(hostname: &str, now: SystemTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    let host = if host.is_empty() { "localhost" } else { &host };
    format!(
        "<{}.{:08x}.{}.{n}.mailstow@{host}>",
        t.as_secs(),
        t.subsec_nanos(),
        std::process::id()
    )
}

#[cfg(test)]
mod tests;
