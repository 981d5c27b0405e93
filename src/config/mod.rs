//! Configuration: the TOML file parsed raw, then validated once into typed
//! values shared as `Arc<Config>`. Must not be re-read deep in the code; every
//! other module takes the typed values it needs from here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod check;
mod effective;
#[cfg(test)]
mod example_file;
mod tls;

pub use crate::users::UsersConfig;
pub use check::{check, check_config_file, Finding, Findings, Scope};
pub use mailstow_index::{IndexConfig, UidMode, SPECIAL_USES};
pub use mailstow_maildir::FolderEncoding;
pub use mailstow_sieve::{ScoreHeader, ScoreType, SieveConfig};

/// A configuration problem, naming the file and the key.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: [{key}]: {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// Where an LMTP listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Envelope sender of a message we send on a user's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SenderPolicy {
    /// The original envelope sender (a null sender stays null).
    Sender,
    /// The recipient whose script acted.
    Recipient,
    /// The null sender `<>`.
    Null,
}

#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// SMTP relay "host:port" (tried first when set).
    pub smtp: Option<String>,
    /// sendmail-compatible binary, used when `smtp` is not set.
    pub sendmail: Option<PathBuf>,
    pub redirect_sender: SenderPolicy,
    pub vacation_sender: SenderPolicy,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverQuota {
    /// 552 5.2.2: the sender gets a bounce.
    Permanent,
    /// 452 4.2.2: the MTA keeps trying until the user makes room.
    Temporary,
}

#[derive(Debug, Clone)]
pub struct QuotaConfig {
    /// Quota rules in Dovecot's syntax, in order: the first is Dovecot's
    /// `quota_rule`, the second `quota_rule2`, and so on. A user's
    /// passwd-file extra field `userdb_quota_rule<N>` replaces rule N.
    /// Each is known to parse.
    pub rules: Vec<String>,
    pub over_quota: OverQuota,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name used in greetings, Received headers and Maildir unique names.
    pub hostname: String,
    /// The account `serve` runs as once its listeners are bound (when
    /// started as root); None keeps the starting account.
    pub run_as: Option<crate::privilege::Account>,
    pub lmtp: LmtpConfig,
    pub smtp: SmtpConfig,
    /// `[tls]`: the certificate and key STARTTLS uses; None when not set
    /// (or not loaded, see [`Config::load_without_tls`]).
    pub tls: Option<TlsConfig>,
    pub storage: StorageConfig,
    pub users: UsersConfig,
    pub limits: Limits,
    pub delivery: DeliveryConfig,
    pub log: LogConfig,
    pub sieve: SieveConfig,
    pub outbound: OutboundConfig,
    pub quota: QuotaConfig,
    pub index: IndexConfig,
    pub metrics: MetricsConfig,
    pub managesieve: ManagesieveConfig,
}

/// `[managesieve]`: the ManageSieve service (RFC 5804).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagesieveConfig {
    /// TCP addresses; empty: no ManageSieve.
    pub listen: Vec<std::net::SocketAddr>,
    /// PLAIN and LOGIN without TLS for clients on a loopback address.
    pub plaintext_on_loopback: bool,
    /// Scripts a user may keep (QUOTA/MAXSCRIPTS); 0: no limit.
    pub max_scripts: usize,
    /// Bytes all of a user's scripts may take (QUOTA); 0: no limit.
    pub max_storage: u64,
    pub max_connections: usize,
    /// Before a refused login is answered.
    pub auth_failure_delay: Duration,
    /// Refused logins before the connection is closed.
    pub max_auth_failures: u32,
    /// For one command line.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// A loopback address (the endpoint has no authentication); None: off.
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct LmtpConfig {
    pub listen: Vec<ListenAddr>,
    /// Permission bits for unix sockets.
    pub socket_mode: u32,
    /// File `alice+lists@` into folder `lists` (created when missing).
    pub save_to_detail_mailbox: bool,
    /// Offer STARTTLS on the TCP listeners (needs `[tls]`).
    pub tls: bool,
}

/// The SMTP receiver for final delivery (RFC 5321): mail for `domains`
/// only, never relayed.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Empty: no SMTP service.
    pub listen: Vec<ListenAddr>,
    /// The domains we are the final destination for, lower case.
    pub domains: Vec<String>,
}

impl SmtpConfig {
    /// Is `domain` one of ours (case-insensitive)? An address literal
    /// (`[192.0.2.1]`) never is.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.to_lowercase();
        self.domains.contains(&d)
    }
}

/// `[tls]`, read and checked at load: STARTTLS is offered on the SMTP
/// listeners (and on LMTP TCP ones with `[lmtp] tls`).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// The loaded chain and key. Loaded before privileges are dropped, so
    /// the key file may be readable by root alone.
    pub server: std::sync::Arc<rustls::ServerConfig>,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Homes default to `{mail_root}/{domain}/{localpart}`.
    pub mail_root: PathBuf,
    pub folder_encoding: FolderEncoding,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// Connections at once from one client IP address (TCP only); the one
    /// over it gets 421 4.7.0 and is closed at once.
    pub max_connections_per_ip: usize,
    /// Commands a session may send without delivering a message; the next
    /// gets 421 4.7.0 and the connection is closed.
    pub max_commands: usize,
    /// Syntax and sequence errors (500, 501, 502, 503, 504, 555) a session
    /// may make without delivering a message; the last one is followed by
    /// 421 4.7.0 and the close (Postfix's smtpd_hard_error_limit).
    pub max_errors: usize,
    /// Longest command line accepted, CRLF included.
    pub max_line_length: usize,
    /// For one whole command line, from the end of the previous one (RFC
    /// 5321 4.5.3.2: 5 minutes); bytes that do not finish a line do not
    /// restart it.
    pub idle_timeout: Duration,
    /// Waiting for the next data block (RFC 5321 4.5.3.2: 3 minutes).
    pub data_timeout: Duration,
    /// For a whole message body, from DATA (or the first BDAT) to its end
    /// (RFC 5321 4.5.3.2's 10 minutes), however fast the blocks come.
    pub data_total_timeout: Duration,
    /// After SIGTERM, how long transactions in flight may take to finish.
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Delivery threads (blocking work: lookups, writes, fsync).
    pub threads: usize,
    /// Transactions waiting for a thread before connections wait.
    pub queue_depth: usize,
    /// Messages larger than this are spooled to a file instead of memory.
    pub spool_memory_max: usize,
    /// Directory for spool files (unlinked on creation).
    pub spool_dir: PathBuf,
    /// The same Message-ID for the same user within this window is stored
    /// once (Cyrus's duplicatesuppression); None: off (the default).
    pub duplicate_window: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter (`info`, `mailstow=debug`); RUST_LOG wins when set.
    pub level: String,
    pub format: LogFormat,
}

// ---- raw form, exactly as written in the file ----

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    hostname: Option<String>,
    user: Option<String>,
    group: Option<String>,
    #[serde(default)]
    lmtp: RawLmtp,
    #[serde(default)]
    smtp: RawSmtp,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    users: RawUsers,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    sieve: RawSieve,
    #[serde(default)]
    outbound: RawOutbound,
    #[serde(default)]
    quota: RawQuota,
    #[serde(default)]
    index: RawIndex,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    managesieve: RawManagesieve,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawManagesieve {
    listen: Option<Vec<String>>,
    plaintext_on_loopback: Option<bool>,
    max_scripts: Option<usize>,
    max_storage: Option<u64>,
    max_connections: Option<usize>,
    auth_failure_delay: Option<u64>,
    max_auth_failures: Option<u32>,
    idle_timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    enabled: Option<bool>,
    uids: Option<UidMode>,
    special_use: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawQuota {
    /// Dovecot quota rule syntax, e.g. "*:storage=1G:messages=10000";
    /// short for `rules = [rule]`.
    rule: Option<String>,
    /// Several rules, in Dovecot's order (`quota_rule`, `quota_rule2`, ...),
    /// e.g. ["*:storage=1G", "Trash:ignore"].
    rules: Option<Vec<String>>,
    over_quota: Option<OverQuota>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSieve {
    enabled: Option<bool>,
    script: Option<String>,
    user_dir: Option<String>,
    before: Option<Vec<PathBuf>>,
    after: Option<Vec<PathBuf>>,
    global_dir: Option<PathBuf>,
    max_script_size: Option<usize>,
    max_actions: Option<usize>,
    max_redirects: Option<usize>,
    max_cpu: Option<usize>,
    max_include_depth: Option<usize>,
    user_editheader: Option<bool>,
    autocreate: Option<bool>,
    vacation_min_period: Option<u64>,
    vacation_default_period: Option<u64>,
    vacation_max_period: Option<u64>,
    spam_header: Option<String>,
    spam_type: Option<ScoreType>,
    spam_max: Option<f64>,
    virus_header: Option<String>,
    virus_type: Option<ScoreType>,
    virus_max: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawOutbound {
    smtp: Option<String>,
    sendmail: Option<PathBuf>,
    redirect_sender: Option<SenderPolicy>,
    vacation_sender: Option<SenderPolicy>,
    timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    listen: Option<Vec<String>>,
    socket_mode: Option<String>,
    save_to_detail_mailbox: Option<bool>,
    tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    listen: Option<Vec<String>>,
    domains: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    mail_root: Option<PathBuf>,
    folder_encoding: Option<FolderEncoding>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    passwd_file: Option<PathBuf>,
    recipient_delimiter: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_size: Option<u64>,
    max_recipients: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    max_commands: Option<usize>,
    max_errors: Option<usize>,
    max_line_length: Option<usize>,
    idle_timeout: Option<u64>,
    data_timeout: Option<u64>,
    data_total_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    threads: Option<usize>,
    queue_depth: Option<usize>,
    spool_memory_max: Option<usize>,
    spool_dir: Option<PathBuf>,
    duplicate_suppression: Option<bool>,
    duplicate_window: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<LogFormat>,
}

pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;

impl Config {
    /// Read and validate `path`. Relative paths inside the file are taken
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::read(path, true)
    }

    /// As [`Config::load`], but `[tls]` is only checked for syntax, not
    /// read: for commands that never listen (pipe delivery, sieve, index),
    /// which may run as a user that cannot read the key. `tls` is None.
    pub fn load_without_tls(path: &Path) -> Result<Config, ConfigError> {
        Config::read(path, false)
    }

    fn read(path: &Path, load_tls: bool) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Absolute, so every path derived from the file is absolute too.
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/"));
        Config::parse(&text, path, &base, load_tls)
    }

    /// Parse `text` (named `path` in errors), resolving relative paths
    /// against `base`; `[tls]` files are read.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, path, base, true)
    }

    fn parse(text: &str, path: &Path, base: &Path, load_tls: bool) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let hostname = match raw.hostname {
            Some(h) => h,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        if hostname.is_empty()
            || hostname
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
        {
            return Err(invalid(
                "hostname",
                format!("{hostname:?} is not a host name (no spaces, control characters or '/')"),
            ));
        }

        let mut listen = Vec::new();
        for s in raw
            .lmtp
            .listen
            .unwrap_or_else(|| vec!["127.0.0.1:24".to_owned()])
        {
            let addr = match parse_listen(&s).map_err(|r| invalid("lmtp.listen", r))? {
                ListenAddr::Unix(p) => ListenAddr::Unix(resolve(p)),
                tcp => tcp,
            };
            listen.push(addr);
        }
        let mut smtp_listen = Vec::new();
        for s in raw.smtp.listen.unwrap_or_default() {
            let addr = match parse_listen(&s).map_err(|r| invalid("smtp.listen", r))? {
                ListenAddr::Unix(p) => ListenAddr::Unix(resolve(p)),
                tcp => tcp,
            };
            smtp_listen.push(addr);
        }
        let mut domains = Vec::new();
        for d in raw.smtp.domains.unwrap_or_default() {
            if d.is_empty()
                || d.starts_with('[')
                || d.chars()
                    .any(|c| c == '@' || c.is_whitespace() || c.is_control())
            {
                return Err(invalid(
                    "smtp.domains",
                    format!("{d:?} is not a domain name"),
                ));
            }
            domains.push(d.to_lowercase());
        }
        if !smtp_listen.is_empty() && domains.is_empty() {
            return Err(invalid(
                "smtp.domains",
                "is required with smtp.listen: the domains mail is accepted for (never relayed)"
                    .into(),
            ));
        }
        let tls = match (raw.tls.certificate, raw.tls.key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "tls.key",
                    "is required with tls.certificate".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "tls.certificate",
                    "is required with tls.key".into(),
                ))
            }
            (Some(cert), Some(key)) if load_tls => {
                let (certificate, key) = (resolve(cert), resolve(key));
                let server =
                    tls::server_config(&certificate, &key).map_err(|(k, r)| invalid(k, r))?;
                Some(TlsConfig {
                    certificate,
                    key,
                    server,
                })
            }
            (Some(_), Some(_)) => None,
        };
        let lmtp_tls = raw.lmtp.tls.unwrap_or(false);
        if lmtp_tls && tls.is_none() && load_tls {
            return Err(invalid(
                "lmtp.tls",
                "needs [tls] certificate and key".into(),
            ));
        }
        let socket_mode = match raw.lmtp.socket_mode {
            None => 0o660,
            Some(s) => u32::from_str_radix(&s, 8)
                .ok()
                .filter(|m| !s.is_empty() && *m <= 0o7777)
                .ok_or_else(|| {
                    invalid(
                        "lmtp.socket_mode",
                        format!("{s:?} is not an octal mode like \"0660\""),
                    )
                })?,
        };

        let mail_root = raw
            .storage
            .mail_root
            .map(resolve)
            .ok_or_else(|| invalid("storage.mail_root", "is required".into()))?;
        let passwd_file = raw
            .users
            .passwd_file
            .map(resolve)
            .ok_or_else(|| invalid("users.passwd_file", "is required".into()))?;
        let recipient_delimiter = raw.users.recipient_delimiter.unwrap_or_default();
        if recipient_delimiter
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "users.recipient_delimiter",
                "must not contain '@', spaces or control characters".into(),
            ));
        }

        let l = raw.limits;
        let positive = |key: &str, v: Option<u64>, default: u64| -> Result<u64, ConfigError> {
            match v {
                Some(0) => Err(invalid(key, "must be greater than 0".into())),
                Some(v) => Ok(v),
                None => Ok(default),
            }
        };
        let max_line_length = l.max_line_length.unwrap_or(4096);
        if max_line_length < 512 {
            return Err(invalid(
                "limits.max_line_length",
                "must be at least 512 (RFC 5321 4.5.3.1.4)".into(),
            ));
        }
        let limits = Limits {
            max_message_size: positive(
                "limits.max_message_size",
                l.max_message_size,
                DEFAULT_MAX_MESSAGE_SIZE,
            )?,
            max_recipients: positive(
                "limits.max_recipients",
                l.max_recipients.map(|v| v as u64),
                1000,
            )? as usize,
            max_connections: positive(
                "limits.max_connections",
                l.max_connections.map(|v| v as u64),
                256,
            )? as usize,
            max_connections_per_ip: positive(
                "limits.max_connections_per_ip",
                l.max_connections_per_ip.map(|v| v as u64),
                20,
            )? as usize,
            max_commands: positive(
                "limits.max_commands",
                l.max_commands.map(|v| v as u64),
                10_000,
            )? as usize,
            max_errors: positive("limits.max_errors", l.max_errors.map(|v| v as u64), 10)? as usize,
            max_line_length,
            idle_timeout: Duration::from_secs(positive(
                "limits.idle_timeout",
                l.idle_timeout,
                300,
            )?),
            data_timeout: Duration::from_secs(positive(
                "limits.data_timeout",
                l.data_timeout,
                180,
            )?),
            data_total_timeout: Duration::from_secs(positive(
                "limits.data_total_timeout",
                l.data_total_timeout,
                600,
            )?),
            shutdown_grace: Duration::from_secs(l.shutdown_grace.unwrap_or(600)),
        };

        let d = raw.delivery;
        let threads = d.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 8)
                .unwrap_or(16)
        });
        if threads == 0 {
            return Err(invalid("delivery.threads", "must be greater than 0".into()));
        }
        let delivery = DeliveryConfig {
            threads,
            queue_depth: d.queue_depth.unwrap_or(threads * 2).max(1),
            spool_memory_max: d.spool_memory_max.unwrap_or(1024 * 1024),
            spool_dir: d.spool_dir.map(resolve).unwrap_or_else(std::env::temp_dir),
            duplicate_window: d
                .duplicate_suppression
                .unwrap_or(false)
                .then(|| Duration::from_secs(d.duplicate_window.unwrap_or(86_400))),
        };

        let sv = raw.sieve;
        let score = |key: &str,
                     header: Option<String>,
                     kind: Option<ScoreType>,
                     max: Option<f64>|
         -> Result<Option<ScoreHeader>, ConfigError> {
            let Some(header) = header else {
                return Ok(None);
            };
            if header.is_empty() || header.contains(':') || header.contains(char::is_whitespace) {
                return Err(invalid(key, format!("{header:?} is not a header name")));
            }
            let max = max.unwrap_or(10.0);
            if !(max > 0.0 && max.is_finite()) {
                return Err(invalid(key, "the maximum must be a positive number".into()));
            }
            Ok(Some(ScoreHeader {
                header,
                kind: kind.unwrap_or(ScoreType::Score),
                max,
            }))
        };
        let sd = SieveConfig::default();
        let secs = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_secs);
        let sieve = SieveConfig {
            enabled: sv.enabled.unwrap_or(sd.enabled),
            script: sv.script.unwrap_or(sd.script),
            user_dir: sv.user_dir.unwrap_or(sd.user_dir),
            before: sv
                .before
                .unwrap_or_default()
                .into_iter()
                .map(resolve)
                .collect(),
            after: sv
                .after
                .unwrap_or_default()
                .into_iter()
                .map(resolve)
                .collect(),
            global_dir: sv.global_dir.map(resolve),
            max_script_size: sv.max_script_size.unwrap_or(sd.max_script_size),
            max_actions: sv.max_actions.unwrap_or(sd.max_actions),
            max_redirects: sv.max_redirects.unwrap_or(sd.max_redirects),
            max_cpu: sv.max_cpu.unwrap_or(sd.max_cpu),
            max_include_depth: sv.max_include_depth.unwrap_or(sd.max_include_depth),
            user_editheader: sv.user_editheader.unwrap_or(sd.user_editheader),
            autocreate: sv.autocreate.unwrap_or(sd.autocreate),
            vacation_min_period: secs(sv.vacation_min_period, sd.vacation_min_period),
            vacation_default_period: secs(sv.vacation_default_period, sd.vacation_default_period),
            vacation_max_period: secs(sv.vacation_max_period, sd.vacation_max_period),
            spam: score(
                "sieve.spam_header",
                sv.spam_header,
                sv.spam_type,
                sv.spam_max,
            )?,
            virus: score(
                "sieve.virus_header",
                sv.virus_header,
                sv.virus_type,
                sv.virus_max,
            )?,
        };
        if sieve.vacation_min_period > sieve.vacation_default_period
            || sieve.vacation_default_period > sieve.vacation_max_period
        {
            return Err(invalid(
                "sieve.vacation_default_period",
                "must lie between vacation_min_period and vacation_max_period".into(),
            ));
        }
        let ob = raw.outbound;
        if let Some(s) = &ob.smtp {
            if s.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid("outbound.smtp", format!("{s:?} is not host:port")));
            }
        }
        let outbound = OutboundConfig {
            sendmail: match (&ob.smtp, ob.sendmail) {
                (_, Some(p)) => Some(resolve(p)),
                (Some(_), None) => None,
                (None, None) => Some(PathBuf::from("/usr/sbin/sendmail")),
            },
            smtp: ob.smtp,
            redirect_sender: ob.redirect_sender.unwrap_or(SenderPolicy::Sender),
            vacation_sender: ob.vacation_sender.unwrap_or(SenderPolicy::Null),
            timeout: secs(ob.timeout, Duration::from_secs(60)),
        };

        let (key, rules) = match (raw.quota.rule, raw.quota.rules) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "quota.rule",
                    "set either rule or rules, not both".into(),
                ))
            }
            (Some(r), None) => ("quota.rule", vec![r]),
            (None, r) => ("quota.rules", r.unwrap_or_default()),
        };
        let mut check = mailstow_maildir::quota::Rules::default();
        for rule in &rules {
            if rule.is_empty() {
                return Err(invalid(key, "an empty rule".into()));
            }
            check.apply(rule).map_err(|e| invalid(key, e))?;
        }
        let quota = QuotaConfig {
            rules,
            over_quota: raw.quota.over_quota.unwrap_or(OverQuota::Permanent),
        };

        let special_use = match raw.index.special_use {
            // Dovecot's default namespace (10-mail.conf in Debian).
            None => [
                ("Drafts", "\\Drafts"),
                ("Junk", "\\Junk"),
                ("Trash", "\\Trash"),
                ("Sent", "\\Sent"),
                ("Sent Messages", "\\Sent"),
            ]
            .into_iter()
            .map(|(f, u)| (f.to_owned(), u.to_owned()))
            .collect(),
            Some(map) => {
                for (folder, attr) in &map {
                    if !SPECIAL_USES.iter().any(|u| u.eq_ignore_ascii_case(attr)) {
                        return Err(invalid(
                            "index.special_use",
                            format!(
                                "{folder:?}: {attr:?} is not one of {}",
                                SPECIAL_USES.join(" ")
                            ),
                        ));
                    }
                }
                map
            }
        };
        let index = IndexConfig {
            enabled: raw.index.enabled.unwrap_or(true),
            uids: raw.index.uids.unwrap_or(UidMode::Own),
            special_use,
        };

        let run_as = match (&raw.user, &raw.group) {
            (Some(u), g) => {
                Some(crate::privilege::resolve(u, g.as_deref()).map_err(|r| invalid("user", r))?)
            }
            (None, Some(_)) => {
                return Err(invalid("group", "needs user as well".into()));
            }
            (None, None) => None,
        };

        let metrics = MetricsConfig {
            listen: match raw.metrics.listen {
                None => None,
                Some(s) => {
                    let addr: std::net::SocketAddr = s.parse().map_err(|_| {
                        invalid("metrics.listen", format!("{s:?} is not host:port"))
                    })?;
                    if !addr.ip().is_loopback() {
                        return Err(invalid(
                            "metrics.listen",
                            format!(
                                "{addr} is not a loopback address (the endpoint has no \
                                 authentication: put a proxy in front to export it)"
                            ),
                        ));
                    }
                    Some(addr)
                }
            },
        };

        let ms = raw.managesieve;
        let mut ms_listen = Vec::new();
        for s in ms.listen.unwrap_or_default() {
            ms_listen.push(s.parse().map_err(|_| {
                invalid(
                    "managesieve.listen",
                    format!("{s:?} is not host:port or [ipv6]:port (ManageSieve is TCP only)"),
                )
            })?);
        }
        let managesieve = ManagesieveConfig {
            listen: ms_listen,
            plaintext_on_loopback: ms.plaintext_on_loopback.unwrap_or(false),
            max_scripts: ms.max_scripts.unwrap_or(100),
            max_storage: ms.max_storage.unwrap_or(10 * 1024 * 1024),
            max_connections: positive(
                "managesieve.max_connections",
                ms.max_connections.map(|v| v as u64),
                64,
            )? as usize,
            auth_failure_delay: Duration::from_secs(ms.auth_failure_delay.unwrap_or(2)),
            max_auth_failures: positive(
                "managesieve.max_auth_failures",
                ms.max_auth_failures.map(u64::from),
                3,
            )? as u32,
            idle_timeout: Duration::from_secs(positive(
                "managesieve.idle_timeout",
                ms.idle_timeout,
                1800,
            )?),
        };

        Ok(Config {
            run_as,
            metrics,
            managesieve,
            index,
            quota,
            sieve,
            outbound,
            hostname,
            lmtp: LmtpConfig {
                listen,
                socket_mode,
                save_to_detail_mailbox: raw.lmtp.save_to_detail_mailbox.unwrap_or(false),
                tls: lmtp_tls && tls.is_some(),
            },
            smtp: SmtpConfig {
                listen: smtp_listen,
                domains,
            },
            tls,
            storage: StorageConfig {
                mail_root,
                folder_encoding: raw.storage.folder_encoding.unwrap_or(FolderEncoding::Utf7),
            },
            users: UsersConfig {
                passwd_file,
                recipient_delimiter,
            },
            limits,
            delivery,
            log: LogConfig {
                level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
                format: raw.log.format.unwrap_or(LogFormat::Text),
            },
        })
    }
}

impl Config {
    /// For a reload: settings that only take effect at restart (listeners,
    /// the account, TLS files, the mail root and its encoding, the delivery
    /// threads, the index, logging, metrics) are taken from `running`.
    /// Returns the keys whose new value differs and therefore waits for a
    /// restart. TLS is not compared: a reload reads no key files (it runs
    /// after root was given up), so the running certificate stays.
    pub fn adopt_restart_only(&mut self, running: &Config) -> Vec<&'static str> {
        fn same<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
            format!("{a:?}") == format!("{b:?}")
        }
        let mut changed = Vec::new();
        let mut keep = |key: &'static str, differs: bool| {
            if differs {
                changed.push(key);
            }
        };
        keep("user", !same(&self.run_as, &running.run_as));
        keep("lmtp.listen", self.lmtp.listen != running.lmtp.listen);
        keep(
            "lmtp.socket_mode",
            self.lmtp.socket_mode != running.lmtp.socket_mode,
        );
        keep("smtp.listen", self.smtp.listen != running.smtp.listen);
        keep("storage", !same(&self.storage, &running.storage));
        keep(
            "delivery.threads",
            self.delivery.threads != running.delivery.threads,
        );
        keep(
            "delivery.queue_depth",
            self.delivery.queue_depth != running.delivery.queue_depth,
        );
        keep("index", !same(&self.index, &running.index));
        keep("log", !same(&self.log, &running.log));
        keep("metrics", self.metrics != running.metrics);
        keep(
            "managesieve.listen",
            self.managesieve.listen != running.managesieve.listen,
        );

        self.run_as = running.run_as.clone();
        self.lmtp.listen = running.lmtp.listen.clone();
        self.lmtp.socket_mode = running.lmtp.socket_mode;
        self.lmtp.tls = running.lmtp.tls;
        self.smtp.listen = running.smtp.listen.clone();
        self.tls = running.tls.clone();
        self.storage = running.storage.clone();
        self.delivery.threads = running.delivery.threads;
        self.delivery.queue_depth = running.delivery.queue_depth;
        self.index = running.index.clone();
        self.log = running.log.clone();
        self.metrics = running.metrics.clone();
        self.managesieve.listen = running.managesieve.listen.clone();
        changed
    }
}

/// `host:port`, `[v6]:port` or `unix:PATH` (relative to the config file).
fn parse_listen(s: &str) -> Result<ListenAddr, String> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() {
            return Err(format!("{s:?}: the unix socket path is empty"));
        }
        return Ok(ListenAddr::Unix(PathBuf::from(p)));
    }
    s.parse()
        .map(ListenAddr::Tcp)
        .map_err(|_| format!("{s:?} is neither host:port, [ipv6]:port nor unix:/path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), Path::new("/etc/mailstow"))
    }

    const MINIMAL: &str =
        "[storage]\nmail_root = \"mail\"\n[users]\npasswd_file = \"/etc/users\"\n";

    #[test]
    fn limits_default_to_rfc_5321_and_postfix_values() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.limits.max_connections_per_ip, 20);
        assert_eq!(c.limits.max_commands, 10_000);
        assert_eq!(c.limits.max_errors, 10);
        assert_eq!(c.limits.data_timeout, Duration::from_secs(180));
        assert_eq!(c.limits.data_total_timeout, Duration::from_secs(600));
        for key in [
            "max_connections_per_ip",
            "max_commands",
            "max_errors",
            "data_total_timeout",
        ] {
            let e = parse(&format!("{MINIMAL}[limits]\n{key} = 0\n")).unwrap_err();
            assert!(e.to_string().contains(&format!("limits.{key}")), "{e}");
        }
    }

    #[test]
    fn index_settings_are_validated() {
        let cfg = parse(&format!(
            "{MINIMAL}[index]\nuids = \"dovecot\"\nspecial_use = {{ Archive = \"\\\\Archive\" }}\n"
        ))
        .unwrap();
        assert_eq!(cfg.index.uids, UidMode::Dovecot);
        assert_eq!(
            cfg.index.special_use.get("Archive").map(String::as_str),
            Some("\\Archive")
        );
        let e = parse(&format!(
            "{MINIMAL}[index]\nspecial_use = {{ Stuff = \"\\\\Stuff\" }}\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("index.special_use"), "{e}");
        assert!(parse(&format!("{MINIMAL}[index]\nuids = \"courier\"\n")).is_err());
    }

    #[test]
    fn minimal_config_gets_defaults_and_relative_paths_resolve() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.storage.mail_root, PathBuf::from("/etc/mailstow/mail"));
        assert_eq!(c.lmtp.socket_mode, 0o660);
        assert_eq!(c.limits.max_message_size, DEFAULT_MAX_MESSAGE_SIZE);
        assert_eq!(c.limits.idle_timeout, Duration::from_secs(300));
        assert!(!c.lmtp.save_to_detail_mailbox);
    }

    #[test]
    fn listen_parses_v4_v6_and_unix() {
        let c = parse(&format!(
            "{MINIMAL}[lmtp]\nlisten = [\"127.0.0.1:2424\", \"[::1]:2424\", \"unix:/run/m.sock\", \"unix:run/r.sock\"]\nsocket_mode = \"0600\"\n"
        ))
        .unwrap();
        assert_eq!(c.lmtp.listen.len(), 4);
        assert_eq!(c.lmtp.listen[2], ListenAddr::Unix("/run/m.sock".into()));
        assert_eq!(
            c.lmtp.listen[3],
            ListenAddr::Unix("/etc/mailstow/run/r.sock".into())
        );
        assert_eq!(c.lmtp.socket_mode, 0o600);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse(&format!("{MINIMAL}[lmtp]\nsocket_mode = \"rw\"\n")).unwrap_err();
        assert!(e.to_string().contains("lmtp.socket_mode"), "{e}");
        let e = parse(&format!("{MINIMAL}[lmtp]\nlisten = [\"nowhere\"]\n")).unwrap_err();
        assert!(e.to_string().contains("lmtp.listen"), "{e}");
        let e = parse("[users]\npasswd_file = \"/x\"\n").unwrap_err();
        assert!(e.to_string().contains("storage.mail_root"), "{e}");
        let e = parse(&format!("{MINIMAL}[limits]\nmax_message_size = 0\n")).unwrap_err();
        assert!(e.to_string().contains("limits.max_message_size"), "{e}");
    }

    #[test]
    fn sieve_and_outbound_defaults_follow_pigeonhole() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.sieve.script, "%h/.dovecot.sieve");
        assert_eq!(c.sieve.max_actions, 32);
        assert_eq!(c.sieve.max_redirects, 4);
        assert!(!c.sieve.user_editheader);
        assert_eq!(c.sieve.vacation_min_period, Duration::from_secs(86_400));
        assert_eq!(
            c.outbound.sendmail,
            Some(PathBuf::from("/usr/sbin/sendmail"))
        );
        assert_eq!(c.outbound.vacation_sender, SenderPolicy::Null);
        let c = parse(&format!(
            "{MINIMAL}[sieve]\nbefore = [\"spam.sieve\"]\nspam_header = \"X-Spam-Score\"\n[outbound]\nsmtp = \"127.0.0.1:25\"\nredirect_sender = \"recipient\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.sieve.before,
            vec![PathBuf::from("/etc/mailstow/spam.sieve")]
        );
        assert_eq!(c.sieve.spam.as_ref().unwrap().kind, ScoreType::Score);
        assert_eq!(c.outbound.sendmail, None);
        assert_eq!(c.outbound.redirect_sender, SenderPolicy::Recipient);
        let e = parse(&format!("{MINIMAL}[outbound]\nsmtp = \"nowhere\"\n")).unwrap_err();
        assert!(e.to_string().contains("outbound.smtp"), "{e}");
    }

    #[test]
    fn quota_rule_uses_dovecots_syntax() {
        let c = parse(&format!(
            "{MINIMAL}[quota]\nrule = \"*:storage=10M:messages=5\"\nover_quota = \"temporary\"\n"
        ))
        .unwrap();
        assert_eq!(c.quota.rules, ["*:storage=10M:messages=5"]);
        assert_eq!(c.quota.over_quota, OverQuota::Temporary);
        let e = parse(&format!("{MINIMAL}[quota]\nrule = \"*:storage=huge\"\n")).unwrap_err();
        assert!(e.to_string().contains("quota.rule"), "{e}");
        let c = parse(&format!(
            "{MINIMAL}[quota]\nrules = [\"*:storage=1G\", \"Trash:ignore\", \"Junk:storage=+10%\"]\n"
        ))
        .unwrap();
        assert_eq!(c.quota.rules.len(), 3);
        assert_eq!(c.quota.over_quota, OverQuota::Permanent);
        for bad in [
            "rules = [\"*:storage=1G\", \"?:storage=2G\"]",
            "rules = [\"Trash:storage=-5%\"]",
            "rules = [\"\"]",
            "rule = \"*:storage=1G\"\nrules = []",
        ] {
            let e = parse(&format!("{MINIMAL}[quota]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains("quota.rule"), "{bad}: {e}");
        }
    }

    #[test]
    fn smtp_needs_its_domains_and_tls_its_files() {
        let c = parse(MINIMAL).unwrap();
        assert!(c.smtp.listen.is_empty() && c.tls.is_none() && !c.lmtp.tls);
        let smtp = "[smtp]\nlisten = [\"127.0.0.1:25\", \"unix:smtp.sock\"]\n";
        let c = parse(&format!("{MINIMAL}{smtp}domains = [\"Example.ORG\"]\n")).unwrap();
        assert_eq!(
            c.smtp.listen[1],
            ListenAddr::Unix("/etc/mailstow/smtp.sock".into())
        );
        assert!(c.smtp.is_local_domain("example.org") && c.smtp.is_local_domain("EXAMPLE.org"));
        assert!(!c.smtp.is_local_domain("example.net"));
        assert!(!c.smtp.is_local_domain("[127.0.0.1]"));
        for (bad, key) in [
            (smtp.to_owned(), "smtp.domains"),
            (format!("{smtp}domains = [\"a b\"]\n"), "smtp.domains"),
            (
                format!("{smtp}domains = [\"[10.0.0.1]\"]\n"),
                "smtp.domains",
            ),
            (
                "[smtp]\nlisten = [\"nowhere\"]\ndomains = [\"x\"]\n".into(),
                "smtp.listen",
            ),
            ("[tls]\ncertificate = \"c.pem\"\n".into(), "tls.key"),
            ("[tls]\nkey = \"k.pem\"\n".into(), "tls.certificate"),
            ("[lmtp]\ntls = true\n".into(), "lmtp.tls"),
        ] {
            let e = parse(&format!("{MINIMAL}{bad}")).unwrap_err();
            assert!(e.to_string().contains(key), "{bad}: {e}");
        }

        let dir = tempfile::tempdir().unwrap();
        let pair = rcgen::generate_simple_self_signed(vec!["mx.test".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), pair.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), pair.key_pair.serialize_pem()).unwrap();
        let text = format!(
            "{MINIMAL}[lmtp]\ntls = true\n[tls]\ncertificate = \"cert.pem\"\nkey = \"key.pem\"\n"
        );
        let c = Config::from_toml(&text, Path::new("t.toml"), dir.path()).unwrap();
        let tls = c.tls.expect("tls loaded");
        assert_eq!(tls.certificate, dir.path().join("cert.pem"));
        assert!(c.lmtp.tls);
        // A file that cannot be read is an error naming it at load, but not
        // for commands that never listen.
        let path = dir.path().join("mailstow.toml");
        std::fs::write(&path, text.replace("key.pem", "gone.pem")).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("tls.key") && e.contains("gone.pem"), "{e}");
        let c = Config::load_without_tls(&path).unwrap();
        assert!(c.tls.is_none() && !c.lmtp.tls);
    }

    #[test]
    fn a_reload_keeps_restart_only_settings_and_names_them() {
        let running = parse(MINIMAL).unwrap();
        let mut new = parse(&format!(
            "{MINIMAL}[lmtp]\nlisten = [\"127.0.0.1:2525\"]\n[limits]\nmax_errors = 3\n\
             [delivery]\nthreads = 2\n[index]\nenabled = false\n"
        ))
        .unwrap();
        let changed = new.adopt_restart_only(&running);
        // queue_depth follows threads by default.
        assert_eq!(
            changed,
            [
                "lmtp.listen",
                "delivery.threads",
                "delivery.queue_depth",
                "index"
            ]
        );
        assert_eq!(new.lmtp.listen, running.lmtp.listen);
        assert_eq!(new.delivery.threads, running.delivery.threads);
        assert!(new.index.enabled);
        // What a reload may change, it does.
        assert_eq!(new.limits.max_errors, 3);
        let mut same = parse(MINIMAL).unwrap();
        assert!(same.adopt_restart_only(&running).is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse(&format!("{MINIMAL}[lmtp]\nlisten_on = []\n")).unwrap_err();
        assert!(e.to_string().contains("listen_on"), "{e}");
    }
}
