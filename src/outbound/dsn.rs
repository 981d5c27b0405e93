//! Delivery status notifications (RFC 3464; RFC 6533 when an address or the
//! quoted header is not ASCII): the multipart/report sent to an SMTP sender
//! for the recipients whose copies failed while others were delivered. A
//! pure builder over strings and bytes; must not decide who gets one (the
//! caller does), submit it, or quote more of the message than its header.

use std::fmt::Write as _;
use std::time::SystemTime;

use mailstow_proto::date::rfc5322;

/// One recipient the report is about.
#[derive(Debug, Clone)]
pub struct Failed<'a> {
    pub address: &'a str,
    /// The original recipient (ORCPT), when the client gave one.
    pub orcpt: Option<&'a str>,
    /// The enhanced status code, e.g. "5.7.1".
    pub status: &'a str,
    /// The reply an LMTP client would have had, e.g. "550 5.7.1 no".
    pub diagnostic: &'a str,
}

/// Everything a report says.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// The reporting host (Reporting-MTA, Message-ID).
    pub hostname: &'a str,
    /// The report's From (`postmaster_address`).
    pub from: &'a str,
    /// The transaction's delivery id (logs, Message-ID, boundary).
    pub id: &'a str,
    /// The envelope sender, who gets the report.
    pub sender: &'a str,
    pub arrival: SystemTime,
    pub now: SystemTime,
    pub failed: &'a [Failed<'a>],
    /// The start of the message: its header block is quoted, nothing after.
    pub message: &'a [u8],
}

/// The report as a complete RFC 5322 message with CRLF line ends.
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let headers = header_block(r.message);
    let global = !r.sender.is_ascii()
        || r.failed.iter().any(|f| {
            !f.address.is_ascii()
                || !f.diagnostic.is_ascii()
                || f.orcpt.is_some_and(|o| !o.is_ascii())
        })
        || !headers.is_ascii();
    let boundary = format!("{}/{}", r.id, r.hostname);
    let eight_bit = if global {
        "Content-Transfer-Encoding: 8bit\r\n"
    } else {
        ""
    };
    let mut m = String::with_capacity(2048);
    let _ = write!(
        m,
        "From: Mail Delivery System <{from}>\r\n\
         To: <{sender}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.dsn@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         {eight_bit}\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Description: Notification\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         {eight_bit}\
         \r\n\
         This is the mail system at host {host}.\r\n\
         \r\n\
         Your message was delivered to some of its recipients, but it could\r\n\
         not be delivered to the ones below. The mail system said:\r\n\
         \r\n",
        host = r.hostname,
        from = r.from,
        sender = r.sender,
        date = rfc5322(r.now),
        id = r.id,
    );
    for f in r.failed {
        let _ = write!(m, "<{}>: {}\r\n", f.address, f.diagnostic);
    }
    let status_type = if global {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Description: Delivery report\r\n\
         Content-Type: {status_type}\r\n\
         {eight_bit}\
         \r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Mailstow-Id: {id}\r\n\
         Arrival-Date: {arrival}\r\n",
        host = r.hostname,
        id = r.id,
        arrival = rfc5322(r.arrival),
    );
    for f in r.failed {
        let _ = write!(
            m,
            "\r\nFinal-Recipient: {}; {}\r\n",
            address_type(f.address),
            f.address
        );
        if let Some(o) = f.orcpt {
            let _ = write!(m, "Original-Recipient: {}; {o}\r\n", address_type(o));
        }
        let _ = write!(
            m,
            "Action: failed\r\nStatus: {}\r\nDiagnostic-Code: smtp; {}\r\n",
            f.status, f.diagnostic
        );
    }
    let headers_type = if global {
        "message/global-headers"
    } else {
        "text/rfc822-headers"
    };
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Description: Undelivered Message Headers\r\n\
         Content-Type: {headers_type}\r\n\
         {eight_bit}\
         \r\n"
    );
    let mut out = m.into_bytes();
    out.extend_from_slice(headers);
    if !headers.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// RFC 3464's address type: "rfc822", or RFC 6533's "utf-8".
fn address_type(address: &str) -> &'static str {
    if address.is_ascii() {
        "rfc822"
    } else {
        "utf-8"
    }
}

/// The header block at the start of `message`, without the empty line that
/// ends it; when no end is in sight, up to the last complete line.
pub(super) fn header_block(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let Some(lf) = memchr::memchr(b'\n', &message[start..]) else {
            break;
        };
        let line = &message[start..start + lf + 1];
        if line == b"\n" || line == b"\r\n" {
            return &message[..start];
        }
        start += lf + 1;
    }
    &message[..start]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn report<'a>(failed: &'a [Failed<'a>], message: &'a [u8]) -> String {
        let r = Report {
            hostname: "mx.test",
            from: "postmaster@example.org",
            id: "ID1",
            sender: "s@example.net",
            arrival: UNIX_EPOCH,
            now: UNIX_EPOCH + Duration::from_secs(1),
            failed,
            message,
        };
        String::from_utf8(build(&r)).unwrap()
    }

    #[test]
    fn a_report_names_each_failed_recipient_and_quotes_the_header_only() {
        let failed = [
            Failed {
                address: "bob@example.org",
                orcpt: Some("robert@example.org"),
                status: "5.7.1",
                diagnostic: "550 5.7.1 not wanted",
            },
            Failed {
                address: "carol@example.org",
                orcpt: None,
                status: "4.3.0",
                diagnostic: "451 4.3.0 Temporary local error, try again later",
            },
        ];
        let text = report(
            &failed,
            b"Subject: hi\r\nFrom: s@example.net\r\n\r\nsecret body\r\n",
        );
        assert!(
            text.starts_with(
                "From: Mail Delivery System <postmaster@example.org>\r\nTo: <s@example.net>\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"ID1/mx.test\"\r\n"), "{text}");
        assert!(text.contains("\r\n--ID1/mx.test\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n"), "{text}");
        assert!(text.contains("Arrival-Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"));
        assert!(text.contains("\r\n\r\nFinal-Recipient: rfc822; bob@example.org\r\nOriginal-Recipient: rfc822; robert@example.org\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 not wanted\r\n"), "{text}");
        assert!(text.contains("\r\n\r\nFinal-Recipient: rfc822; carol@example.org\r\nAction: failed\r\nStatus: 4.3.0\r\n"), "{text}");
        assert!(text.contains("<bob@example.org>: 550 5.7.1 not wanted\r\n"));
        assert!(text.ends_with("Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\nFrom: s@example.net\r\n\r\n--ID1/mx.test--\r\n"), "{text}");
        assert!(!text.contains("secret body"));
        assert!(!text.contains("8bit"));
        // Every line ends in CRLF.
        assert!(!text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn utf8_addresses_make_a_global_report() {
        let failed = [Failed {
            address: "jörg@example.org",
            orcpt: None,
            status: "5.1.1",
            diagnostic: "550 5.1.1 User unknown in local recipient table",
        }];
        let text = report(&failed, b"Subject: x\nTo: j\xc3\xb6rg@example.org\n");
        assert!(text.contains("Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n"), "{text}");
        assert!(text.contains("Final-Recipient: utf-8; jörg@example.org\r\n"));
        assert!(text.contains("Content-Type: message/global-headers\r\n"));
        // A header block without its end is quoted up to its last line.
        assert!(text.ends_with("Subject: x\nTo: jörg@example.org\n\r\n--ID1/mx.test--\r\n"));
    }

    #[test]
    fn header_block_stops_at_the_empty_line_or_the_last_complete_line() {
        assert_eq!(
            header_block(b"A: 1\r\nB: 2\r\n\r\nbody"),
            b"A: 1\r\nB: 2\r\n"
        );
        assert_eq!(header_block(b"A: 1\nB: 2\n\nbody"), b"A: 1\nB: 2\n");
        assert_eq!(header_block(b"A: 1\r\nB: 2 cut off"), b"A: 1\r\n");
        assert_eq!(header_block(b"\r\nbody"), b"");
        assert_eq!(header_block(b""), b"");
    }
}
