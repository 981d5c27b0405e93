//! Configuration: the TOML file parsed raw, then validated once into typed
//! values shared as `Arc<Config>`. Must not be re-read deep in the code; every
//! other module takes the typed values it needs from here.
//!
//! - `raw`: the file as written, one serde struct per section.
//! - `sections`: each raw section checked into its typed value, defaults
//!   filled in; `Config::parse` calls them in turn.
//! - `tls`: the `[tls]` certificate and key loaded.
//! - `effective`: a [`Config`] written back as TOML (`config check`).
//! - `check`: what a loaded [`Config`] needs from the system.
//! - [`from_dovecot`]: `doveconf -n` output converted into this file's form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod check;
mod effective;
#[cfg(test)]
mod example_file;
pub mod from_dovecot;
mod raw;
mod sections;
mod tls;

pub use crate::users::UsersConfig;
pub use check::{check, check_config_file, Finding, Findings, Scope};
pub use mailstow_index::{IndexConfig, UidMode, SPECIAL_USES};
pub use mailstow_maildir::{Flush, FolderEncoding, Readers};
pub use mailstow_sieve::{ScoreHeader, ScoreType, SieveConfig};
// The raw form by name here too, for `effective` and the example-file test.
use raw::*;

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

/// Sets `key` (`section.key` or a top-level `key`) in `table` to `value`,
/// read as a TOML value when it parses as one, else as a string.
fn set_key(table: &mut toml::Table, key: &str, value: &str) -> Result<(), String> {
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (section, name) = match key.split_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, key),
    };
    if name.is_empty() || name.contains('.') {
        return Err(format!("{key:?} is not section.key"));
    }
    let target = match section {
        None => table,
        Some(s) => table
            .entry(s)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("[{s}] is not a section"))?,
    };
    target.insert(name.to_owned(), value);
    Ok(())
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
    /// Dovecot's `quota_warning`s, in order; the first whose threshold a
    /// delivery crosses upward runs.
    pub warnings: Vec<QuotaWarning>,
}

/// One `quota_warning`: when a delivery takes `resource` from below
/// `percent` of the limit to at least it, `command` runs (as the mailbox
/// owner, `%u` `%n` `%d` `%h` expanded in its arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWarning {
    pub resource: QuotaResource,
    pub percent: u64,
    pub command: Vec<String>,
    /// The setting as written (for the effective configuration).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaResource {
    Storage,
    Messages,
}

impl QuotaWarning {
    /// Reads Dovecot's form, `storage=95%% cmd args` (or `95%`).
    pub fn parse(text: &str) -> Result<QuotaWarning, String> {
        let mut words = text.split_whitespace();
        let spec = words.next().ok_or("an empty warning")?;
        let (resource, percent) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?} is not storage=N% or messages=N%"))?;
        let resource = match resource {
            "storage" => QuotaResource::Storage,
            "messages" => QuotaResource::Messages,
            other => return Err(format!("{other:?}: storage or messages")),
        };
        let percent = percent
            .trim_end_matches('%')
            .parse::<u64>()
            .ok()
            .filter(|p| (1..=100).contains(p) && percent.ends_with('%'))
            .ok_or_else(|| format!("{percent:?} is not a percentage from 1% to 100%"))?;
        let command: Vec<String> = words.map(str::to_owned).collect();
        match command.first() {
            Some(c) if c.starts_with('/') => {}
            _ => return Err("the command must be an absolute path".into()),
        }
        Ok(QuotaWarning {
            resource,
            percent,
            command,
            text: text.to_owned(),
        })
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name used in greetings, Received headers and Maildir unique names.
    pub hostname: String,
    /// `postmaster_address`: the From of the messages mailstow writes
    /// itself (delivery reports, Sieve rejections); None: Dovecot's
    /// default, see [`Config::postmaster`].
    pub postmaster_address: Option<String>,
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
    pub proxy: ProxyConfig,
}

/// `[proxy]`: per-user routing to the node that holds the mailbox (LMTP
/// forwarded per recipient), and mailboxes held back while they move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Forward recipients whose user names another node (`host`, `proxy`).
    pub enabled: bool,
    /// The names and addresses that are this node (`proxy_maybe` delivers
    /// locally when `host` is one of them), lower case.
    pub self_hosts: Vec<String>,
    /// The backend's LMTP port when the user has no `port`.
    pub port: u16,
    /// For the TCP connect and the greeting of a backend.
    pub connect_timeout: Duration,
    /// For each reply of a backend after the greeting.
    pub timeout: Duration,
    /// Idle connections kept per backend for the next transaction.
    pub max_idle: usize,
    /// Users (as the user source names them) answered 451 4.2.1 while
    /// their mailbox moves between nodes; lower case.
    pub maintenance: Vec<String>,
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
    /// Where Sieve keywords are stored: Dovecot's `dovecot-keywords`
    /// letters, Courier-IMAP's `courierimapkeywords/`, or both.
    pub keywords: Readers,
    /// Which subscriptions files an auto-created folder is added to:
    /// Dovecot's `subscriptions`, Courier-IMAP's `courierimapsubscribed`,
    /// or both.
    pub subscriptions: Readers,
    /// How a saved message and its directory entry are made durable:
    /// per file, or grouped with the other deliveries on its file system.
    pub flush: Flush,
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
    /// A header field holding the original recipient (Postfix's
    /// X-Original-To), read when the MTA gives none (no ORCPT, no `-a`);
    /// Dovecot's `lda_original_recipient_header`.
    pub original_recipient_header: Option<String>,
    /// A transaction with several recipients gets one trace block for all
    /// (no Delivered-To, no Received `for`), as Dovecot's LMTP writes it,
    /// so that its copies are the same bytes and are stored once and
    /// hard-linked (docs/maildir.md, 'One copy for many recipients').
    pub single_copy: bool,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter (`info`, `mailstow=debug`); RUST_LOG wins when set.
    pub level: String,
    pub format: LogFormat,
    /// The per-recipient line's text with Dovecot's deliver_log_format
    /// variables (see `deliver::log::expand`); None: the default line.
    pub delivery_format: Option<String>,
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

    /// As [`Config::load_without_tls`], with keys set over the file's:
    /// each `section.key=value` (or `key=value` at the top level), the
    /// value read as TOML when it is one (`true`, `10`, `["a"]`), else as a
    /// string (dovecot-lda's `-o`).
    pub fn load_with_overrides(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        if overrides.is_empty() {
            return Config::read(path, false);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| invalid(o, "-o wants key=value".into()))?;
            set_key(&mut table, key.trim(), value.trim())
                .map_err(|reason| invalid(key.trim(), format!("-o: {reason}")))?;
        }
        let text = toml::to_string(&table).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Config::parse_text(&text, path, false)
    }

    fn read(path: &Path, load_tls: bool) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse_text(&text, path, load_tls)
    }

    fn parse_text(text: &str, path: &Path, load_tls: bool) -> Result<Config, ConfigError> {
        // Absolute, so every path derived from the file is absolute too.
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/"));
        Config::parse(text, path, &base, load_tls)
    }

    /// Parse `text` (named `path` in errors), resolving relative paths
    /// against `base`; `[tls]` files are read.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, path, base, true)
    }

    fn parse(text: &str, path: &Path, base: &Path, load_tls: bool) -> Result<Config, ConfigError> {
        let mut raw: Raw = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let cx = sections::Context { path, base };
        // In the order errors are reported in: of several mistakes in a
        // file, the first one here is named.
        let hostname = sections::hostname(raw.hostname, &cx)?;
        let lmtp_listen = sections::lmtp_listen(raw.lmtp.listen.take(), &cx)?;
        let smtp = sections::smtp(raw.smtp, &cx)?;
        let tls = sections::tls(raw.tls, load_tls, &cx)?;
        let lmtp = sections::lmtp(raw.lmtp, lmtp_listen, tls.as_ref(), load_tls, &cx)?;
        let storage = sections::storage(raw.storage, &cx)?;
        let users = sections::users(raw.users, &cx)?;
        let limits = sections::limits(raw.limits, &cx)?;
        let delivery = sections::delivery(raw.delivery, &cx)?;
        let sieve = sections::sieve(raw.sieve, &cx)?;
        let outbound = sections::outbound(raw.outbound, &cx)?;
        let quota = sections::quota(raw.quota, &cx)?;
        let index = sections::index(raw.index, &cx)?;
        let run_as = sections::run_as(raw.user, raw.group, &cx)?;
        if run_as.is_some() && users.per_user_rights() {
            return Err(cx.invalid(
                "user",
                "[users] driver = \"system\" writes each mailbox as its own account: start mailstow as root and leave `user` out (see README, Unix accounts)",
            ));
        }
        let metrics = sections::metrics(raw.metrics, &cx)?;
        let managesieve = sections::managesieve(raw.managesieve, &cx)?;
        let proxy = sections::proxy(raw.proxy, &cx)?;
        let postmaster_address = sections::postmaster(raw.postmaster_address, &cx)?;
        Ok(Config {
            hostname,
            postmaster_address,
            run_as,
            lmtp,
            smtp,
            tls,
            storage,
            users,
            limits,
            delivery,
            log: sections::log(raw.log),
            sieve,
            outbound,
            quota,
            index,
            metrics,
            managesieve,
            proxy,
        })
    }
}

impl Config {
    /// The From of a message mailstow writes itself about mail to
    /// `domain`: `postmaster_address`, else Dovecot's default,
    /// postmaster@ the recipient's domain (the host name without one).
    pub fn postmaster(&self, domain: Option<&str>) -> String {
        match (&self.postmaster_address, domain) {
            (Some(a), _) => a.clone(),
            (None, Some(d)) if !d.is_empty() => format!("postmaster@{d}"),
            (None, _) => format!("postmaster@{}", self.hostname),
        }
    }

    /// For a reload: settings that only take effect at restart (listeners,
    /// the account, TLS files, the mail root and its encoding, the delivery
    /// threads, the index, logging, metrics, and the users settings when
    /// a reload would turn per-user rights on or off) are taken from
    /// `running`.
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
        // Per-user rights are set up at start (the capability drop): a
        // reload into or out of driver = "system" keeps the running users.
        let rights_change = self.users.per_user_rights() != running.users.per_user_rights();
        keep("users.driver", rights_change);
        if rights_change {
            self.users = running.users.clone();
        }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"), Path::new("/etc/mailstow"))
    }

    const MINIMAL: &str =
        "[storage]\nmail_root = \"mail\"\n[users]\npasswd_file = \"/etc/users\"\n";

    #[test]
    fn quota_warnings_read_dovecots_form() {
        let w = QuotaWarning::parse("storage=95%% /bin/warn 95 %u").unwrap();
        assert_eq!((w.resource, w.percent), (QuotaResource::Storage, 95));
        assert_eq!(w.command, ["/bin/warn", "95", "%u"]);
        let w = QuotaWarning::parse("messages=80% /bin/warn").unwrap();
        assert_eq!((w.resource, w.percent), (QuotaResource::Messages, 80));
        for bad in [
            "",
            "storage=95",
            "storage=0% /bin/x",
            "storage=101% /bin/x",
            "bytes=5% /bin/x",
            "storage=5%",
            "storage=5% relative/script",
        ] {
            assert!(QuotaWarning::parse(bad).is_err(), "{bad:?}");
        }
    }

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
    fn a_script_size_past_64_mib_is_refused_before_it_can_overflow() {
        let at = |n: u64| parse(&format!("{MINIMAL}[sieve]\nmax_script_size = {n}\n"));
        assert_eq!(at(64 << 20).unwrap().sieve.max_script_size, 64 << 20);
        for n in [(64 << 20) + 1, u64::MAX / 2, i64::MAX as u64] {
            let e = at(n).unwrap_err().to_string();
            assert!(e.contains("sieve.max_script_size"), "{e}");
        }
    }

    #[test]
    fn reader_files_default_to_dovecot_and_take_courier_or_both() {
        let cfg = parse(MINIMAL).unwrap();
        assert_eq!(cfg.storage.keywords, Readers::Dovecot);
        assert_eq!(cfg.storage.subscriptions, Readers::Dovecot);
        let with = |lines: &str| {
            parse(&format!(
                "[storage]\nmail_root = \"mail\"\n{lines}[users]\npasswd_file = \"/etc/users\"\n"
            ))
        };
        let cfg = with("keywords = \"courier\"\nsubscriptions = \"both\"\n").unwrap();
        assert_eq!(cfg.storage.keywords, Readers::Courier);
        assert_eq!(cfg.storage.subscriptions, Readers::Both);
        assert!(with("keywords = \"uw\"\n").is_err());
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
        let courier = parse(&format!("{MINIMAL}[index]\nuids = \"courier\"\n")).unwrap();
        assert_eq!(courier.index.uids, UidMode::Courier);
        assert!(parse(&format!("{MINIMAL}[index]\nuids = \"uw\"\n")).is_err());
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
    fn a_reload_never_switches_per_user_rights_on_or_off() {
        let system = "[storage]\nmail_root = \"mail\"\n[users]\ndriver = \"system\"\n";
        let running = parse(MINIMAL).unwrap();
        let mut new = parse(system).unwrap();
        assert_eq!(new.adopt_restart_only(&running), ["users.driver"]);
        assert!(!new.users.per_user_rights());
        let running = parse(system).unwrap();
        let mut new = parse(MINIMAL).unwrap();
        assert_eq!(new.adopt_restart_only(&running), ["users.driver"]);
        assert!(new.users.per_user_rights());
        // Within the system driver, its keys reload.
        let mut new = parse(&system.replace("system\"", "system\"\nmin_uid = 2000")).unwrap();
        assert!(new.adopt_restart_only(&running).is_empty());
        assert!(matches!(&new.users.source, crate::users::Source::System(s) if s.min_uid == 2000));
    }

    #[test]
    fn the_system_driver_refuses_a_service_account() {
        let e = parse(&format!(
            "user = \"nobody\"\n{}",
            MINIMAL.replace("passwd_file = \"/etc/users\"", "driver = \"system\"")
        ))
        .unwrap_err();
        assert!(e.to_string().contains("leave `user` out"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse(&format!("{MINIMAL}[lmtp]\nlisten_on = []\n")).unwrap_err();
        assert!(e.to_string().contains("listen_on"), "{e}");
    }
}
