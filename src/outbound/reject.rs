//! The rejection a Sieve `reject` sends in pipe mode when the MTA is not
//! told with `-e` (as dovecot-lda without -e): an MDN (RFC 3798, RFC 5429
//! 2.2.2) to the envelope sender, "deleted", with the script's reason, the
//! disposition report, and the original header. Must not send anything
//! itself or decide whether a rejection is due.

use std::fmt::Write as _;
use std::time::SystemTime;

use mailstow_proto::date::rfc5322;

/// What the rejection says.
pub struct Rejection<'a> {
    /// postmaster_address: the From.
    pub from: &'a str,
    /// The envelope sender, who gets it.
    pub sender: &'a str,
    /// The recipient whose script rejected the message.
    pub recipient: &'a str,
    pub reason: &'a str,
    /// The reporting host (Reporting-UA, Message-ID, boundary).
    pub hostname: &'a str,
    pub id: &'a str,
    pub now: SystemTime,
    /// The start of the message: its header block is quoted.
    pub message: &'a [u8],
}

/// The rejection as a complete message with CRLF line ends.
pub fn build(r: &Rejection<'_>) -> Vec<u8> {
    let head = super::dsn::header_block(r.message);
    let original = String::from_utf8_lossy(head);
    let subject = mailstow_sieve::header_values(head, "subject")
        .into_iter()
        .next()
        .unwrap_or_default();
    let msgid = mailstow_sieve::header_values(head, "message-id")
        .into_iter()
        .next();
    let boundary = format!("{}/{}", r.id, r.hostname);
    let mut m = String::with_capacity(1024 + head.len());
    let _ = write!(
        m,
        "From: Mail Delivery System <{from}>\r\n\
         To: <{sender}>\r\n\
         Subject: Rejected: {subject}\r\n\
         Date: {date}\r\n\
         Message-ID: <{id}.reject@{host}>\r\n\
         Auto-Submitted: auto-replied (rejected)\r\n\
         Precedence: bulk\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=disposition-notification;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Disposition: inline\r\n\
         Content-Transfer-Encoding: 8bit\r\n\
         \r\n\
         Your message to <{rcpt}> was automatically rejected:\r\n\
         {reason}\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: message/disposition-notification\r\n\
         \r\n\
         Reporting-UA: {host}; mailstow\r\n\
         Final-Recipient: rfc822; {rcpt}\r\n",
        from = r.from,
        sender = r.sender,
        subject = one_line(&subject),
        date = rfc5322(r.now),
        id = r.id,
        host = r.hostname,
        rcpt = r.recipient,
        reason = r.reason.lines().collect::<Vec<_>>().join("\r\n"),
    );
    if let Some(id) = msgid {
        let _ = write!(m, "Original-Message-ID: {}\r\n", one_line(&id));
    }
    let _ = write!(
        m,
        "Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n"
    );
    for line in original.lines() {
        m.push_str(line);
        m.push_str("\r\n");
    }
    let _ = write!(m, "\r\n--{boundary}--\r\n");
    m.into_bytes()
}

/// A header value fit for one line (folds and controls made spaces).
fn one_line(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_is_an_mdn_to_the_sender_with_the_reason_and_the_header() {
        let r = Rejection {
            from: "postmaster@example.org",
            sender: "s@example.net",
            recipient: "alice@example.org",
            reason: "Not wanted\nhere",
            hostname: "mx.test",
            id: "ID1",
            now: SystemTime::UNIX_EPOCH,
            message: b"Subject: offer\nMessage-ID: <m1@x>\n\nsecret body\n",
        };
        let text = String::from_utf8(build(&r)).unwrap();
        for want in [
            "From: Mail Delivery System <postmaster@example.org>\r\nTo: <s@example.net>\r\nSubject: Rejected: offer\r\n",
            "Auto-Submitted: auto-replied (rejected)\r\n",
            "report-type=disposition-notification",
            "Your message to <alice@example.org> was automatically rejected:\r\nNot wanted\r\nhere\r\n",
            "Final-Recipient: rfc822; alice@example.org\r\nOriginal-Message-ID: <m1@x>\r\nDisposition: automatic-action/MDN-sent-automatically; deleted\r\n",
            "Content-Type: text/rfc822-headers\r\n\r\nSubject: offer\r\nMessage-ID: <m1@x>\r\n",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        assert!(!text.contains("secret body"), "only the header is quoted");
        assert!(!text.replace("\r\n", "").contains('\n'), "CRLF throughout");
    }
}
