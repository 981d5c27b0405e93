//! What spamtest and virustest see: the score a configured header carries
//! (Pigeonhole's status types), as the interpreter's status values. Reads
//! the message head only; must not decide anything about the mail.

use sieve::{SpamStatus, VirusStatus};

use crate::{header_values, ScoreHeader, ScoreType};

/// Pigeonhole's spamtest value 1..=10 from the configured header, mapped to
/// the crate's status (its value is Ham 1, MaybeSpam 2..9, Spam 10).
pub(crate) fn spam_status(h: &ScoreHeader, message: &[u8]) -> SpamStatus {
    match score(h, message) {
        None => SpamStatus::Unknown,
        Some(1) => SpamStatus::Ham,
        Some(10) => SpamStatus::Spam,
        Some(n) => SpamStatus::MaybeSpam(n as f64 / 10.0),
    }
}

pub(crate) fn virus_status(h: &ScoreHeader, message: &[u8]) -> VirusStatus {
    match score(h, message) {
        None => VirusStatus::Unknown,
        Some(1) => VirusStatus::Clean,
        Some(10) => VirusStatus::Virus,
        Some(_) => VirusStatus::MaybeVirus,
    }
}

/// 1 (certainly not) to 10 (certainly), None when the header is absent or
/// unreadable.
fn score(h: &ScoreHeader, message: &[u8]) -> Option<u8> {
    let v = header_values(message, &h.header.to_ascii_lowercase())
        .into_iter()
        .next()?;
    let frac = match h.kind {
        ScoreType::Yesno => {
            let w = v.trim().to_ascii_lowercase();
            if w.starts_with("yes") {
                1.0
            } else if w.starts_with("no") {
                0.0
            } else {
                return None;
            }
        }
        ScoreType::Strlen => v.trim().chars().count() as f64 / h.max,
        ScoreType::Score => {
            let num: String = v
                .trim()
                .chars()
                .skip_while(|c| !(c.is_ascii_digit() || *c == '-' || *c == '.'))
                .take_while(|c| c.is_ascii_digit() || *c == '-' || *c == '.')
                .collect();
            num.parse::<f64>().ok()? / h.max
        }
    };
    let frac = frac.clamp(0.0, 1.0);
    Some((1.0 + (9.0 * frac).round()) as u8)
}
