//! Whether a message may be answered by a vacation auto-reply (RFC 5230,
//! RFC 3834): the rules sieve-rs 0.7.3 misses, checked before the host
//! answers the interpreter's vacation `DuplicateId` question. Pure
//! functions over bytes; must not send, store or remember anything.
//!
//! What sieve-rs 0.7.3 already does before it emits a vacation reply, and
//! what it misses (each was checked against the crate with a probe):
//! - it skips an empty envelope sender, senders starting `mailer-daemon` or
//!   `owner-`, containing `-request@`, or equal to one of the user's
//!   addresses; `List-*` headers; `X-Auto-Response-Suppress: All/OOF`;
//!   `Precedence: bulk`; more than 10 `Received` headers (off in this host,
//!   whose runtime raises the crate's `Received` limit for redirects: see
//!   the README, so the bound is kept here); and a user that is not named
//!   in To/Cc/Bcc/Resent-* (exactly, so `user+tag@` is missed);
//! - its `Auto-Submitted` check never fired with mail-parser 0.11 (the
//!   crate looked for `HeaderName::Other`, mail-parser now has a named
//!   variant), so two auto-responders would answer each other; the
//!   workspace's patched sieve-rs fixes it (crates/sieve-rs/PATCHES.md,
//!   patch 1), and this check stays as a second guard;
//! - it misses `Precedence: junk/list`, `postmaster`, `LISTSERV`,
//!   `majordomo`;
//! - a header that decodes to line breaks could inject header lines into a
//!   reply that copies it.
//!
//! [`suppress_reason`] covers all of these, the crate's `Received` bound
//! included ([`MAX_RECEIVED`]).

use mail_parser::{HeaderValue, MessageParser};

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

/// A message that arrived with more `Received` header fields than this
/// may be looping: no auto-reply (sieve-rs's own bound, which its vacation
/// check applies with the crate's default `Received` limit).
pub const MAX_RECEIVED: usize = 10;

/// Headers naming the recipients (RFC 5230 4.5).
const RECIPIENT_HEADERS: &[&str] = &["to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"];

/// Why no auto-reply may be sent to this message, or `None` when one may.
///
/// `envelope_from` is the envelope sender (`None` or empty: the null
/// sender); `user_addresses` are the user's addresses (the recipient, its
/// aliases, any `:addresses` of the script). Addresses are compared with
/// local part and domain case-insensitive and any `+detail` removed.
/// A message whose headers cannot be found is not answered. `message` is
/// the message as it arrived, without the trace fields the delivering host
/// adds (its `Received` would count as a hop).
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
    let mut received = 0;
    for header in parsed.headers() {
        let name = header.name.as_str().to_ascii_lowercase();
        if name == "received" {
            received += 1;
            if received > MAX_RECEIVED {
                return Some("more than 10 Received header fields (a mail loop?)");
            }
        }
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
pub fn first_token(raw: &str) -> String {
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

#[cfg(test)]
mod tests;
