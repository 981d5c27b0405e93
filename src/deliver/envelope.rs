//! What a delivery is about: the transaction's envelope (shared by its
//! recipients) and one accepted recipient. Plain values; must not do
//! anything.

use std::time::{Instant, SystemTime};

use super::headers::Origin;
use crate::users::User;

/// What is the same for every recipient of one transaction.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The delivery id (headers, logs, replies).
    pub id: String,
    /// Envelope sender as text, None for `<>`.
    pub mail_from: Option<String>,
    pub origin: Origin,
    /// When the data was complete: the Received date and the files' mtime.
    pub received: SystemTime,
    /// When the data began (DATA or the first BDAT; in pipe mode, when
    /// reading stdin began), for `delay=`.
    pub started: Instant,
}

/// One accepted recipient.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// The address as given in RCPT TO (or -d).
    pub address: String,
    /// The original recipient (ORCPT), when the client sent one.
    pub orcpt: Option<String>,
    pub user: User,
    /// A folder chosen by the caller (pipe mode's -m), created if missing.
    pub folder: Option<String>,
}
