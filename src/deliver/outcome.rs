//! Delivery outcomes as values, and the one table that maps them to LMTP
//! replies, to SMTP's one reply per transaction and to sysexits codes for
//! pipe mode. Must not perform delivery; every reply code a recipient (or
//! an SMTP transaction) can get after its data is chosen here.

use mailstow_proto::Reply;

/// What happened to one recipient's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    /// On stable storage in `folder` (the IMAP name, "INBOX" for the root;
    /// several folders are listed with commas; "(redirected)" when the
    /// filter only forwarded it).
    Delivered { folder: String },
    /// The user's filter discarded it: accepted, stored nowhere.
    Discarded,
    /// Not delivered; the sender keeps its copy.
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// ENOSPC / EDQUOT (the mailbox's file system or the spool's): 452
    /// 4.3.1; the text says where (for the log).
    NoSpace(String),
    /// Any other I/O problem: 451 4.3.0, the text says what failed (for the
    /// log; the client sees a generic text).
    Io(String),
    /// The user's directory entry is unusable right now: 451 4.3.0.
    UserLookup(String),
    /// The message could not be spooled: 451 4.3.0.
    Spool(String),
    /// The recipient disappeared from the directory between RCPT and DATA
    /// (reload): 550 5.1.1.
    NoSuchUser,
    /// Too large (pipe mode, where no session enforced it): 552 5.3.4.
    TooLarge,
    /// Over the user's quota: 552 5.2.2, or 452 4.2.2 when configured as
    /// temporary.
    OverQuota { temporary: bool },
    /// The user's filter rejected it (Sieve reject/ereject): 550 5.7.1 with
    /// the script's reason; pipe mode exits 77.
    Rejected(String),
}

impl RcptOutcome {
    /// The failure's label (see [`Failure::label`]), "" when it is none.
    pub fn reason_label(&self) -> &'static str {
        match self {
            RcptOutcome::Failed(f) => f.label(),
            _ => "",
        }
    }

    pub fn status(&self) -> &'static str {
        match self {
            RcptOutcome::Delivered { .. } => "delivered",
            RcptOutcome::Discarded => "discarded",
            RcptOutcome::Failed(f) if f.is_permanent() => "bounced",
            RcptOutcome::Failed(_) => "deferred",
        }
    }

    /// The LMTP reply for this recipient.
    pub fn reply(&self, id: &str) -> Reply {
        match self {
            RcptOutcome::Delivered { folder } => {
                Reply::new(250, "2.0.0", format!("{id} Saved in {folder}"))
            }
            RcptOutcome::Discarded => Reply::new(250, "2.0.0", format!("{id} Discarded by filter")),
            RcptOutcome::Failed(f) => f.reply(),
        }
    }

    /// The sysexits(3) code for pipe mode.
    pub fn exit_code(&self) -> u8 {
        match self {
            RcptOutcome::Delivered { .. } | RcptOutcome::Discarded => EX_OK,
            RcptOutcome::Failed(Failure::NoSuchUser) => EX_NOUSER,
            RcptOutcome::Failed(Failure::Rejected(_)) => EX_NOPERM,
            RcptOutcome::Failed(f) if f.is_permanent() => EX_DATAERR,
            RcptOutcome::Failed(_) => EX_TEMPFAIL,
        }
    }
}

impl Failure {
    /// A fixed word per kind of failure, for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::NoSpace(_) => "no_space",
            Failure::Io(_) => "io",
            Failure::UserLookup(_) => "user_lookup",
            Failure::Spool(_) => "spool",
            Failure::NoSuchUser => "unknown_user",
            Failure::TooLarge => "too_large",
            Failure::OverQuota { .. } => "over_quota",
            Failure::Rejected(_) => "sieve_reject",
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Failure::NoSuchUser
                | Failure::TooLarge
                | Failure::Rejected(_)
                | Failure::OverQuota { temporary: false }
        )
    }

    pub fn reply(&self) -> Reply {
        match self {
            Failure::NoSpace(_) => Reply::new(452, "4.3.1", "Insufficient system storage"),
            Failure::Io(_) | Failure::Spool(_) => {
                Reply::new(451, "4.3.0", "Temporary local error, try again later")
            }
            Failure::UserLookup(_) => Reply::new(451, "4.3.0", "Temporary user lookup failure"),
            Failure::NoSuchUser => unknown_user(),
            Failure::TooLarge => Reply::new(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            ),
            Failure::OverQuota { temporary: false } => {
                Reply::new(552, "5.2.2", "Mailbox full: over quota")
            }
            Failure::OverQuota { temporary: true } => {
                Reply::new(452, "4.2.2", "Mailbox full: over quota, try again later")
            }
            Failure::Rejected(reason) => reject_reply(reason),
        }
    }

    /// A spool that could not be written: a full disk (or quota) is
    /// `NoSpace`, as for the mailbox, anything else `Spool`.
    pub fn spool(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind;
        let text = format!("spool: {e}");
        match e.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => Failure::NoSpace(text),
            _ => Failure::Spool(text),
        }
    }

    /// The detail for logs.
    pub fn detail(&self) -> String {
        match self {
            Failure::NoSpace(s) | Failure::Io(s) | Failure::UserLookup(s) | Failure::Spool(s) => {
                s.clone()
            }
            Failure::NoSuchUser => "user unknown".into(),
            Failure::TooLarge => "message too large".into(),
            Failure::Rejected(r) => format!("rejected by filter: {r}"),
            Failure::OverQuota { .. } => "over quota".into(),
        }
    }
}

/// The reply of a Sieve reject or ereject (RFC 5429 2.5): 550 5.7.1 with
/// the script's reason, one reply line per line of it, each at most
/// [`REJECT_LINE`] characters, at most [`REJECT_LINES`] lines. A reason that
/// is not ASCII cannot go in a reply (2.1.1, 2.2: no extension for UTF-8
/// replies is offered), nor an empty one: a fixed text stands for it.
fn reject_reply(reason: &str) -> Reply {
    let mut lines: Vec<String> = Vec::new();
    if reason.is_ascii() {
        for line in reason.lines() {
            let line: String = line
                .chars()
                .map(|c| if c.is_ascii_control() { ' ' } else { c })
                .collect();
            let mut rest = line.trim_end();
            loop {
                let cut = if rest.len() <= REJECT_LINE {
                    rest.len()
                } else {
                    rest[..REJECT_LINE]
                        .rfind(' ')
                        .filter(|&i| i > 0)
                        .unwrap_or(REJECT_LINE)
                };
                lines.push(rest[..cut].to_owned());
                rest = rest[cut..].trim_start();
                if rest.is_empty() {
                    break;
                }
            }
        }
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    if lines.is_empty() {
        lines.push("Rejected by the recipient's filter".to_owned());
    }
    lines.truncate(REJECT_LINES);
    Reply {
        code: 550,
        enhanced: Some("5.7.1"),
        lines,
    }
}

/// Characters of a reject reason per reply line: with "550-5.7.1 " and
/// CRLF well inside SMTP's 512 octets (RFC 5321 4.5.3.1.5).
const REJECT_LINE: usize = 400;
/// Reply lines of a reject reason, at most.
const REJECT_LINES: usize = 20;

/// What the outcomes of one SMTP transaction add up to: SMTP has one reply
/// after the data where LMTP has one per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpVerdict {
    /// Every copy was stored (or discarded by a filter): 250.
    Delivered(Reply),
    /// None was: the first temporary failure's reply when there is one (the
    /// client keeps the message and retries every recipient), else the
    /// first permanent one.
    Failed(Reply),
    /// Some were stored; these (indexes into the outcomes) failed. The reply
    /// is 250, and the sender gets a delivery status notification for them
    /// (we cannot ask the client to retry only some recipients).
    Partial { failed: Vec<usize> },
}

pub fn smtp_verdict(id: &str, outcomes: &[RcptOutcome]) -> SmtpVerdict {
    let failed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, RcptOutcome::Failed(_)))
        .map(|(i, _)| i)
        .collect();
    if failed.is_empty() {
        return SmtpVerdict::Delivered(match outcomes {
            [one] => one.reply(id),
            _ => Reply::new(
                250,
                "2.0.0",
                format!("{id} Delivered to {} recipients", outcomes.len()),
            ),
        });
    }
    if failed.len() < outcomes.len() {
        return SmtpVerdict::Partial { failed };
    }
    let first = |temporary: bool| {
        outcomes.iter().find_map(|o| match o {
            RcptOutcome::Failed(f) if f.is_permanent() != temporary => Some(f.reply()),
            _ => None,
        })
    };
    SmtpVerdict::Failed(
        first(true)
            .or_else(|| first(false))
            .unwrap_or_else(|| Failure::Io("no outcome".into()).reply()),
    )
}

/// SMTP's 250 when only some recipients got the message; `notified`: a
/// report of the others went to the sender (none goes to a null sender).
pub fn smtp_partial(id: &str, delivered: usize, total: usize, notified: bool) -> Reply {
    let tail = if notified {
        "; the sender is notified of the others"
    } else {
        ""
    };
    Reply::new(
        250,
        "2.0.0",
        format!("{id} Delivered to {delivered} of {total} recipients{tail}"),
    )
}

/// SMTP, some recipients failed and their report could not be handed to
/// the MTA: the client must retry the whole message (the recipients that
/// got it get it twice: duplicates rather than a silent loss).
pub fn smtp_report_failed() -> Reply {
    Reply::new(451, "4.3.0", "Temporary local error, try again later")
}

/// SMTP RCPT of an address in a domain that is not ours: we never relay.
pub fn relay_denied() -> Reply {
    Reply::new(550, "5.7.1", "Relay access denied")
}

/// RCPT of an address with no user: 550 5.1.1.
pub fn unknown_user() -> Reply {
    Reply::new(550, "5.1.1", "User unknown in local recipient table")
}

/// sysexits(3) codes used by pipe mode.
pub const EX_OK: u8 = 0;
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOINPUT: u8 = 66;
pub const EX_NOUSER: u8 = 67;
pub const EX_NOPERM: u8 = 77;
pub const EX_SOFTWARE: u8 = 70;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_CONFIG: u8 = 78;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_reason_goes_out_as_ascii_lines_of_bounded_length() {
        let wire = |reason: &str| {
            let mut out = Vec::new();
            Failure::Rejected(reason.into()).reply().write_to(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(wire("Not here."), "550 5.7.1 Not here.\r\n");
        assert_eq!(
            wire("Too big.\r\nPut it on a web site.\r\n"),
            "550-5.7.1 Too big.\r\n550 5.7.1 Put it on a web site.\r\n"
        );
        // RFC 5429 2.1.1: no UTF-8 in a reply without an extension for it.
        assert_eq!(
            wire("Zu groß"),
            "550 5.7.1 Rejected by the recipient's filter\r\n"
        );
        assert_eq!(
            wire(" \r\n"),
            "550 5.7.1 Rejected by the recipient's filter\r\n"
        );
        let long = "word ".repeat(200);
        let out = wire(&long);
        assert!(out.lines().count() > 1, "{out}");
        assert!(out.lines().all(|l| l.len() <= 512), "{out}");
        assert_eq!(
            out.lines()
                .map(|l| l[10..].trim_end().len() + 1)
                .sum::<usize>(),
            1000,
            "every word kept: {out}"
        );
    }

    #[test]
    fn smtp_has_one_reply_per_transaction() {
        let ok = RcptOutcome::Delivered {
            folder: "INBOX".into(),
        };
        let reject = RcptOutcome::Failed(Failure::Rejected("not here".into()));
        let gone = RcptOutcome::Failed(Failure::NoSuchUser);
        let full = RcptOutcome::Failed(Failure::NoSpace("no space at /m".into()));
        let summary = |v: SmtpVerdict| match v {
            SmtpVerdict::Delivered(r) | SmtpVerdict::Failed(r) => r.summary(),
            SmtpVerdict::Partial { failed } => format!("partial {failed:?}"),
        };
        assert_eq!(
            summary(smtp_verdict("X", std::slice::from_ref(&ok))),
            "250 2.0.0 X Saved in INBOX"
        );
        assert_eq!(
            summary(smtp_verdict("X", &[ok.clone(), RcptOutcome::Discarded])),
            "250 2.0.0 X Delivered to 2 recipients"
        );
        assert_eq!(
            summary(smtp_verdict("X", &[reject.clone(), gone.clone()])),
            "550 5.7.1 not here"
        );
        // Any temporary failure makes the client retry, never bounce.
        assert_eq!(
            summary(smtp_verdict("X", &[reject.clone(), full.clone()])),
            "452 4.3.1 Insufficient system storage"
        );
        assert_eq!(
            summary(smtp_verdict("X", &[reject, ok.clone(), full])),
            "partial [0, 2]"
        );
        assert_eq!(
            smtp_partial("X", 1, 3, true).summary(),
            "250 2.0.0 X Delivered to 1 of 3 recipients; the sender is notified of the others"
        );
    }

    #[test]
    fn the_table() {
        let ok = RcptOutcome::Delivered {
            folder: "INBOX".into(),
        };
        assert_eq!(ok.reply("X").summary(), "250 2.0.0 X Saved in INBOX");
        assert_eq!(ok.exit_code(), EX_OK);
        let full = RcptOutcome::Failed(Failure::NoSpace("no space at /m".into()));
        assert_eq!(
            full.reply("X").summary(),
            "452 4.3.1 Insufficient system storage"
        );
        assert_eq!(full.exit_code(), EX_TEMPFAIL);
        assert_eq!(full.status(), "deferred");
        let io = RcptOutcome::Failed(Failure::Io("fsync /x: EIO".into()));
        assert_eq!(io.reply("X").code, 451);
        assert!(
            !io.reply("X").summary().contains("/x"),
            "paths stay in the log"
        );
        let gone = RcptOutcome::Failed(Failure::NoSuchUser);
        assert_eq!(gone.reply("X").code, 550);
        assert_eq!(gone.exit_code(), EX_NOUSER);
        assert_eq!(
            RcptOutcome::Failed(Failure::TooLarge).exit_code(),
            EX_DATAERR
        );
    }

    #[test]
    fn a_full_spool_is_a_full_disk_and_other_spool_errors_are_451() {
        use std::io::{Error, ErrorKind};
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let f = Failure::spool(&Error::from_raw_os_error(errno));
            assert_eq!(f.reply().summary(), "452 4.3.1 Insufficient system storage");
        }
        // The kind decides, so a message that names the directory keeps it.
        let named = Error::new(ErrorKind::StorageFull, "spool file in /var/tmp: full");
        let f = Failure::spool(&named);
        assert_eq!(f.reply().code, 452);
        assert!(f.detail().contains("/var/tmp"), "{}", f.detail());
        let f = Failure::spool(&Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(
            f.reply().summary(),
            "451 4.3.0 Temporary local error, try again later"
        );
        assert!(f.detail().starts_with("spool: "), "{}", f.detail());
    }
}
