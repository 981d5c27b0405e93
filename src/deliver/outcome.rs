//! Delivery outcomes as values, and the one table that maps them to LMTP
//! replies and to sysexits codes for pipe mode. Must not perform delivery;
//! every reply code a recipient can get after its data is chosen here.

use crate::proto::Reply;

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
    /// ENOSPC / EDQUOT: 452 4.3.1.
    NoSpace,
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
            Failure::NoSpace => Reply::new(452, "4.3.1", "Insufficient system storage"),
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
            Failure::Rejected(reason) => Reply::new(
                550,
                "5.7.1",
                if reason.trim().is_empty() {
                    "Rejected by the recipient's filter".to_owned()
                } else {
                    reason.clone()
                },
            ),
        }
    }

    /// The detail for logs.
    pub fn detail(&self) -> String {
        match self {
            Failure::NoSpace => "no space left on device".into(),
            Failure::Io(s) | Failure::UserLookup(s) | Failure::Spool(s) => s.clone(),
            Failure::NoSuchUser => "user unknown".into(),
            Failure::TooLarge => "message too large".into(),
            Failure::Rejected(r) => format!("rejected by filter: {r}"),
            Failure::OverQuota { .. } => "over quota".into(),
        }
    }
}

/// RCPT of an address with no user: 550 5.1.1.
pub fn unknown_user() -> Reply {
    Reply::new(550, "5.1.1", "User unknown in local recipient table")
}

/// sysexits(3) codes used by pipe mode.
pub const EX_OK: u8 = 0;
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_NOPERM: u8 = 77;
pub const EX_SOFTWARE: u8 = 70;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_CONFIG: u8 = 78;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let ok = RcptOutcome::Delivered {
            folder: "INBOX".into(),
        };
        assert_eq!(ok.reply("X").summary(), "250 2.0.0 X Saved in INBOX");
        assert_eq!(ok.exit_code(), EX_OK);
        let full = RcptOutcome::Failed(Failure::NoSpace);
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
}
