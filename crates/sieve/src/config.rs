//! The Sieve host's settings, validated by the caller (a configuration
//! file's `[sieve]` section, say), with Pigeonhole's defaults. Must not
//! read files or the environment.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a spam or virus header is read (Pigeonhole's status types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreType {
    /// A number (e.g. "X-Spam-Score: 7.3"), scaled against `max`.
    Score,
    /// The length of a run of characters (e.g. "X-Spam-Level: *****").
    Strlen,
    /// "Yes"/"No" at the start (e.g. "X-Spam-Flag: YES").
    Yesno,
}

/// A header that spamtest/virustest read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreHeader {
    pub header: String,
    pub kind: ScoreType,
    /// The value that means "certainly spam" (score and strlen).
    pub max: f64,
}

/// What the Sieve host does, as the host's configuration says (Pigeonhole's
/// settings and defaults; see mailstow(8) for each key).
#[derive(Debug, Clone)]
pub struct SieveConfig {
    pub enabled: bool,
    /// The user's active script; %h home, %u user, %d domain, %n local part.
    pub script: String,
    /// The user's script directory (`include :personal`).
    pub user_dir: String,
    /// Admin scripts run before and after the user's (absolute paths).
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    /// `include :global` scripts.
    pub global_dir: Option<PathBuf>,
    pub max_script_size: usize,
    pub max_actions: usize,
    pub max_redirects: usize,
    /// Interpreter instructions per script run.
    pub max_cpu: usize,
    pub max_include_depth: usize,
    /// editheader in the user's script (admin scripts always have it).
    pub user_editheader: bool,
    /// fileinto creates a missing folder even without `:create` (Dovecot's
    /// lda_mailbox_autocreate); off: the copy goes to INBOX with a log line.
    pub autocreate: bool,
    pub vacation_min_period: Duration,
    pub vacation_default_period: Duration,
    pub vacation_max_period: Duration,
    pub spam: Option<ScoreHeader>,
    pub virus: Option<ScoreHeader>,
}

impl Default for SieveConfig {
    /// Pigeonhole's defaults: Dovecot's script locations, 1 MiB scripts,
    /// 32 actions, 4 redirects, vacation periods of at least 1 day and 7 by
    /// default (and at most 90, our own: Pigeonhole has no maximum);
    /// editheader only in admin scripts; no admin scripts, no spam or
    /// virus header.
    fn default() -> SieveConfig {
        SieveConfig {
            enabled: true,
            script: "%h/.dovecot.sieve".to_owned(),
            user_dir: "%h/sieve".to_owned(),
            before: Vec::new(),
            after: Vec::new(),
            global_dir: None,
            max_script_size: 1024 * 1024,
            max_actions: 32,
            max_redirects: 4,
            max_cpu: 100_000,
            max_include_depth: 10,
            user_editheader: false,
            autocreate: false,
            vacation_min_period: Duration::from_secs(86_400),
            vacation_default_period: Duration::from_secs(7 * 86_400),
            vacation_max_period: Duration::from_secs(90 * 86_400),
            spam: None,
            virus: None,
        }
    }
}
