//! Messages that leave through the MTA: redirects, vacation replies,
//! notifications, delivery status reports. [`Outbound::submit`] hands one
//! message to the configured SMTP relay or sendmail binary; [`vacation`]
//! decides whether a message may be answered and makes sieve-rs's reply a
//! proper MIME message; [`dsn`] builds RFC 3464 reports; the encoders write
//! RFC 2047 header text. Must not deliver locally, queue or
//! retry (a failure goes back to the caller as a temporary error), connect
//! anywhere the configuration does not name, or log message bodies.

pub mod dsn;
mod encode;
pub mod reject;
mod sendmail;
pub(crate) mod smtp;
pub mod vacation;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::OutboundConfig;

pub use encode::{encode_header, encode_rfc2047};

/// Why a message could not be handed over. The caller treats every one as
/// temporary unless [`OutboundError::is_permanent`] says the relay refused
/// for good.
#[derive(Debug, Error)]
pub enum OutboundError {
    #[error("no outbound transport configured (outbound.smtp or outbound.sendmail)")]
    NotConfigured,
    #[error("no recipients")]
    NoRecipients,
    #[error("{0:?} is not a usable envelope address")]
    BadAddress(String),
    #[error("SMTP {server}: {stage}: {source}")]
    Io {
        server: String,
        stage: String,
        source: std::io::Error,
    },
    #[error("SMTP {server}: {stage}: no answer in time")]
    Timeout { server: String, stage: String },
    #[error("SMTP {server}: {stage}: server replied {code} {text}")]
    Rejected {
        server: String,
        stage: String,
        code: u16,
        text: String,
    },
    #[error("SMTP {server}: {stage}: {detail}")]
    Protocol {
        server: String,
        stage: String,
        detail: String,
    },
    #[error("SMTP {server}: {what} needed but not offered")]
    Unsupported { server: String, what: &'static str },
    #[error("sendmail {}: {detail}", .path.display())]
    Sendmail { path: PathBuf, detail: String },
    #[error("sendmail {}: {status}: {stderr}", .path.display())]
    SendmailFailed {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("{smtp}; fallback: {sendmail}")]
    BothFailed {
        smtp: Box<OutboundError>,
        sendmail: Box<OutboundError>,
    },
}

impl OutboundError {
    /// The relay refused for good (a 5xx reply, an address it cannot take):
    /// sending the same message again will fail the same way.
    pub fn is_permanent(&self) -> bool {
        match self {
            OutboundError::BadAddress(_)
            | OutboundError::NoRecipients
            | OutboundError::Unsupported { .. } => true,
            OutboundError::Rejected { code, .. } => *code >= 500,
            _ => false,
        }
    }
}

/// Hands messages to the MTA. Built once from the configuration; shared by
/// the delivery threads (it holds no connection between messages).
#[derive(Debug, Clone)]
pub struct Outbound {
    smtp: Option<String>,
    sendmail: Option<PathBuf>,
    /// EHLO name.
    hostname: String,
    timeout: Duration,
}

impl Outbound {
    pub fn new(cfg: &OutboundConfig, hostname: &str) -> Outbound {
        Outbound {
            smtp: cfg.smtp.clone(),
            sendmail: cfg.sendmail.clone(),
            hostname: hostname.to_owned(),
            timeout: cfg.timeout,
        }
    }

    /// Hand one message to the MTA. `from` None (or empty) = null sender
    /// `<>`. Blocking, bounded by the configured timeout in all (DNS lookup
    /// of the relay's name aside). Err is a temporary failure naming what
    /// failed.
    ///
    /// With `smtp` set, the relay is used; when it cannot be reached at all
    /// (nothing of the transaction sent) and `sendmail` is set too, sendmail
    /// gets the rest of the time. A failure after the relay saw the
    /// envelope is returned as is, never retried another way (no
    /// duplicates).
    pub fn submit(
        &self,
        from: Option<&str>,
        to: &[String],
        message: &[u8],
    ) -> Result<(), OutboundError> {
        let deadline = Instant::now() + self.timeout;
        let from = from.filter(|f| !f.is_empty());
        if let Some(f) = from {
            check_address(f)?;
        }
        if to.is_empty() {
            return Err(OutboundError::NoRecipients);
        }
        for rcpt in to {
            check_address(rcpt)?;
        }
        match (&self.smtp, &self.sendmail) {
            (Some(server), sendmail) => {
                let result = smtp::send(server, &self.hostname, from, to, message, deadline);
                match (result, sendmail) {
                    (Err(e), Some(path)) if smtp::unreachable(&e) => {
                        tracing::warn!(error = %e, "SMTP relay unreachable, using sendmail");
                        sendmail::send(path, from, to, message, deadline).map_err(|s| {
                            OutboundError::BothFailed {
                                smtp: Box::new(e),
                                sendmail: Box::new(s),
                            }
                        })
                    }
                    (result, _) => result,
                }
            }
            (None, Some(path)) => sendmail::send(path, from, to, message, deadline),
            (None, None) => Err(OutboundError::NotConfigured),
        }
    }
}

/// An envelope address must not be able to break out of `<...>` in an SMTP
/// command or be taken for an option by sendmail.
fn check_address(address: &str) -> Result<(), OutboundError> {
    let bad = address.is_empty()
        || address.starts_with('-')
        || address
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>');
    if bad {
        return Err(OutboundError::BadAddress(address.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
