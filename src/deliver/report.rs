//! SMTP's one reply after the data, and the delivery status notification
//! for the recipients that failed while others were delivered: SMTP cannot
//! answer each recipient as LMTP does, so the sender learns of those
//! failures by mail (never a null sender). Blocking (the report is handed
//! to the MTA through outbound); must not store mail, speak the protocol,
//! queue or retry.

use std::time::SystemTime;

use super::envelope::{Envelope, Recipient};
use super::outcome::{self, RcptOutcome, SmtpVerdict};
use super::pipeline::Deliverer;
use crate::outbound::dsn;
use mailstow_proto::Reply;

/// How much of the message start is kept for the report: its header block
/// is quoted, up to this much of it.
pub const HEADER_MAX: usize = 64 * 1024;

impl Deliverer {
    /// The one reply for an SMTP transaction whose recipients had
    /// `outcomes` (in the order of `rcpts`). When some but not all failed,
    /// a report about those goes to the envelope sender first; if it cannot
    /// be handed over, the reply is a temporary failure so that the client
    /// keeps the message (recipients who got it may get it twice, but no
    /// failure goes unreported). `head` is the start of the message.
    pub fn smtp_reply(
        &self,
        env: &Envelope,
        rcpts: &[Recipient],
        outcomes: &[RcptOutcome],
        head: &[u8],
    ) -> Reply {
        let failed = match outcome::smtp_verdict(&env.id, outcomes) {
            SmtpVerdict::Delivered(r) | SmtpVerdict::Failed(r) => return r,
            SmtpVerdict::Partial { failed } => failed,
        };
        let (total, delivered) = (outcomes.len(), outcomes.len() - failed.len());
        let Some(sender) = env.mail_from.as_deref() else {
            tracing::info!(id = %env.id, failed = failed.len(), "no delivery report: the sender is null");
            return outcome::smtp_partial(&env.id, delivered, total, false);
        };
        let replies: Vec<(usize, Reply)> = failed
            .iter()
            .filter_map(|&i| match outcomes.get(i) {
                Some(RcptOutcome::Failed(f)) => Some((i, f.reply())),
                _ => None,
            })
            .collect();
        let diagnostics: Vec<String> = replies.iter().map(|(_, r)| r.summary()).collect();
        let entries: Vec<dsn::Failed<'_>> = replies
            .iter()
            .zip(&diagnostics)
            .filter_map(|((i, r), diagnostic)| {
                let rcpt = rcpts.get(*i)?;
                Some(dsn::Failed {
                    address: &rcpt.address,
                    orcpt: rcpt.orcpt.as_deref(),
                    status: r
                        .enhanced
                        .unwrap_or(if r.is_permanent() { "5.0.0" } else { "4.0.0" }),
                    diagnostic,
                })
            })
            .collect();
        let hostname = &self.config().hostname;
        // Dovecot's default postmaster is at the recipient's domain.
        let domain = entries
            .first()
            .and_then(|f| f.address.rsplit_once('@'))
            .map(|(_, d)| d);
        let from = self.config().postmaster(domain);
        let message = dsn::build(&dsn::Report {
            hostname,
            from: &from,
            id: &env.id,
            sender,
            arrival: env.received,
            now: SystemTime::now(),
            failed: &entries,
            message: head,
        });
        // RFC 3464 2: a report has the null reverse-path, so it is never
        // answered by another report.
        match self.outbound().submit(None, &[sender.to_owned()], &message) {
            Ok(()) => {
                tracing::info!(id = %env.id, to = %format!("<{sender}>"), failed = entries.len(), "delivery report sent");
                outcome::smtp_partial(&env.id, delivered, total, true)
            }
            Err(e) => {
                tracing::warn!(id = %env.id, to = %format!("<{sender}>"), error = %e, "delivery report not sent: the client is asked to retry the message");
                outcome::smtp_report_failed()
            }
        }
    }
}
