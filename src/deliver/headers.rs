//! The trace headers mailstow prepends to each copy: Return-Path,
//! Delivered-To and Received (RFC 5321 4.4), plus RFC 5322 dates and
//! delivery ids. Must not read or change the message itself.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use mailstow_proto::date::rfc5322;

/// Where the message came from, for the Received header.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A network session: the client's LHLO/EHLO/HELO name and address.
    Remote {
        protocol: Protocol,
        helo: String,
        peer: String,
        /// SMTPUTF8 was used.
        utf8: bool,
        /// The TLS version and cipher, when the session was encrypted.
        tls: Option<String>,
    },
    /// Pipe mode (`mailstow deliver`).
    Local,
}

/// How a network session spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Lmtp,
    /// SMTP after EHLO.
    Esmtp,
    /// SMTP after HELO.
    Smtp,
}

/// The Received header's `with` keyword (RFC 3848, RFC 6531 3.7.3).
fn with_keyword(protocol: Protocol, utf8: bool, tls: bool) -> &'static str {
    match (protocol, utf8, tls) {
        (Protocol::Lmtp, false, false) => "LMTP",
        (Protocol::Lmtp, false, true) => "LMTPS",
        (Protocol::Lmtp, true, false) => "UTF8LMTP",
        (Protocol::Lmtp, true, true) => "UTF8LMTPS",
        // STARTTLS needs EHLO; a HELO after it is still ESMTPS.
        (Protocol::Smtp, false, false) => "SMTP",
        (_, false, false) => "ESMTP",
        (_, false, true) => "ESMTPS",
        (_, true, false) => "UTF8SMTP",
        (_, true, true) => "UTF8SMTPS",
    }
}

/// What goes into the added header block of one copy.
pub struct Trace<'a> {
    /// Envelope sender, None for `<>`.
    pub return_path: Option<&'a str>,
    /// The recipient this copy is for; None for a block shared by the
    /// recipients of one transaction (`[delivery] single_copy`): then no
    /// Delivered-To and no Received `for`, as Dovecot's LMTP writes it
    /// when a transaction has more than one recipient.
    pub delivered_to: Option<&'a str>,
    pub origin: &'a Origin,
    pub hostname: &'a str,
    pub id: &'a str,
    pub received: SystemTime,
}

/// The header block, each line ending LF, as the message it is stored above.
pub fn build(t: &Trace<'_>) -> Vec<u8> {
    let mut h = String::with_capacity(256);
    let _ = writeln!(h, "Return-Path: <{}>", t.return_path.unwrap_or(""));
    if let Some(to) = t.delivered_to {
        let _ = writeln!(h, "Delivered-To: {to}");
    }
    // `\n\tfor <rcpt>` before the date, when there is one recipient.
    let for_rcpt = t
        .delivered_to
        .map_or_else(String::new, |to| format!("\n\tfor <{to}>"));
    match t.origin {
        Origin::Remote {
            protocol,
            helo,
            peer,
            utf8,
            tls,
        } => {
            let with = with_keyword(*protocol, *utf8, tls.is_some());
            let _ = writeln!(h, "Received: from {helo} ({peer})");
            if let Some(using) = tls {
                let _ = writeln!(h, "\t(using {using})");
            }
            let _ = writeln!(
                h,
                "\tby {} (mailstow) with {with}\n\tid {}\n\t(envelope-from <{}>){for_rcpt}; {}",
                t.hostname,
                t.id,
                t.return_path.unwrap_or(""),
                rfc5322(t.received)
            );
        }
        Origin::Local => {
            let _ = writeln!(
                h,
                "Received: by {} (mailstow)\n\tid {}{for_rcpt}; {}",
                t.hostname,
                t.id,
                rfc5322(t.received)
            );
        }
    }
    h.into_bytes()
}

/// A short id naming one transaction in headers and logs: seconds, micro-
/// seconds, pid and a counter, in base 32 — unique on this host.
pub fn new_id(now: SystemTime) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut n: u128 = ((d.as_secs() as u128) << 72)
        | ((d.subsec_micros() as u128) << 52)
        | (((std::process::id() as u128) & 0x3f_ffff) << 30)
        | (seq as u128 & 0x3fff_ffff);
    const DIGITS: &[u8; 32] = b"0123456789BCDFGHJKLMNPQRSTVWXYZb";
    let mut s = Vec::new();
    while n > 0 {
        s.push(DIGITS[(n & 31) as usize]);
        n >>= 5;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An LMTP session from mta.example on 127.0.0.1, without TLS.
    fn lmtp_from_loopback() -> Origin {
        Origin::Remote {
            protocol: Protocol::Lmtp,
            helo: "mta.example".into(),
            peer: "[127.0.0.1]".into(),
            utf8: false,
            tls: None,
        }
    }

    #[test]
    fn lmtp_trace_block() {
        let origin = lmtp_from_loopback();
        let h = build(&Trace {
            return_path: Some("s@example.org"),
            delivered_to: Some("alice@example.org"),
            origin: &origin,
            hostname: "mx.test",
            id: "ID1",
            received: UNIX_EPOCH,
        });
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Return-Path: <s@example.org>\nDelivered-To: alice@example.org\nReceived: from mta.example ([127.0.0.1])\n\tby mx.test (mailstow) with LMTP\n\tid ID1\n\t(envelope-from <s@example.org>)\n\tfor <alice@example.org>; Thu, 1 Jan 1970 00:00:00 +0000\n"
        );
    }

    #[test]
    fn smtp_trace_names_the_protocol_and_the_tls_cipher() {
        let origin = Origin::Remote {
            protocol: Protocol::Esmtp,
            helo: "mta.example".into(),
            peer: "[192.0.2.1]".into(),
            utf8: false,
            tls: Some("TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384".into()),
        };
        let h = build(&Trace {
            return_path: Some("s@example.org"),
            delivered_to: Some("alice@example.org"),
            origin: &origin,
            hostname: "mx.test",
            id: "ID1",
            received: UNIX_EPOCH,
        });
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "Return-Path: <s@example.org>\nDelivered-To: alice@example.org\nReceived: from mta.example ([192.0.2.1])\n\t(using TLSv1.3 with cipher TLS13_AES_256_GCM_SHA384)\n\tby mx.test (mailstow) with ESMTPS\n\tid ID1\n\t(envelope-from <s@example.org>)\n\tfor <alice@example.org>; Thu, 1 Jan 1970 00:00:00 +0000\n"
        );
        assert_eq!(with_keyword(Protocol::Smtp, false, false), "SMTP");
        assert_eq!(with_keyword(Protocol::Esmtp, false, false), "ESMTP");
        assert_eq!(with_keyword(Protocol::Esmtp, true, true), "UTF8SMTPS");
        assert_eq!(with_keyword(Protocol::Lmtp, false, true), "LMTPS");
        assert_eq!(with_keyword(Protocol::Lmtp, true, false), "UTF8LMTP");
    }

    #[test]
    fn a_block_shared_by_several_recipients_names_none_as_dovecot_does() {
        let origin = lmtp_from_loopback();
        let shared = |origin| {
            let h = build(&Trace {
                return_path: Some("s@example.org"),
                delivered_to: None,
                origin,
                hostname: "mx.test",
                id: "ID1",
                received: UNIX_EPOCH,
            });
            String::from_utf8(h).unwrap()
        };
        assert_eq!(
            shared(&origin),
            "Return-Path: <s@example.org>\nReceived: from mta.example ([127.0.0.1])\n\tby mx.test (mailstow) with LMTP\n\tid ID1\n\t(envelope-from <s@example.org>); Thu, 1 Jan 1970 00:00:00 +0000\n"
        );
        assert_eq!(
            shared(&Origin::Local),
            "Return-Path: <s@example.org>\nReceived: by mx.test (mailstow)\n\tid ID1; Thu, 1 Jan 1970 00:00:00 +0000\n"
        );
    }

    #[test]
    fn null_sender_and_ids_are_unique() {
        let h = build(&Trace {
            return_path: None,
            delivered_to: Some("a@b"),
            origin: &Origin::Local,
            hostname: "h",
            id: "x",
            received: UNIX_EPOCH,
        });
        assert!(h.starts_with(b"Return-Path: <>\n"));
        let now = SystemTime::now();
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| new_id(now)).collect();
        assert_eq!(ids.len(), 1000);
    }
}
