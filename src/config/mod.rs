//! Configuration: the TOML file parsed raw, then validated once into typed
//! values shared as `Arc<Config>`. Must not be re-read deep in the code; every
//! other module takes the typed values it needs from here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

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

/// How folder names are stored on disk (Dovecot's default is modified UTF-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderEncoding {
    Utf7,
    Utf8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name used in greetings, Received headers and Maildir unique names.
    pub hostname: String,
    pub lmtp: LmtpConfig,
    pub storage: StorageConfig,
    pub users: UsersConfig,
    pub limits: Limits,
    pub delivery: DeliveryConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone)]
pub struct LmtpConfig {
    pub listen: Vec<ListenAddr>,
    /// Permission bits for unix sockets.
    pub socket_mode: u32,
    /// File `alice+lists@` into folder `lists` (created when missing).
    pub save_to_detail_mailbox: bool,
}

#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Homes default to `{mail_root}/{domain}/{localpart}`.
    pub mail_root: PathBuf,
    pub folder_encoding: FolderEncoding,
}

#[derive(Debug, Clone)]
pub struct UsersConfig {
    pub passwd_file: PathBuf,
    /// Characters any of which separates the user from the detail; empty: off.
    pub recipient_delimiter: String,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// Longest command line accepted, CRLF included.
    pub max_line_length: usize,
    /// Waiting for a command (RFC 5321 4.5.3.2: 5 minutes).
    pub idle_timeout: Duration,
    /// Waiting for the next data block (RFC 5321 4.5.3.2: 3 minutes).
    pub data_timeout: Duration,
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
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A tracing filter (`info`, `mailstow=debug`); RUST_LOG wins when set.
    pub level: String,
    pub format: LogFormat,
}

// ---- raw form, exactly as written in the file ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    hostname: Option<String>,
    #[serde(default)]
    lmtp: RawLmtp,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLmtp {
    listen: Option<Vec<String>>,
    socket_mode: Option<String>,
    save_to_detail_mailbox: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    mail_root: Option<PathBuf>,
    folder_encoding: Option<FolderEncoding>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    passwd_file: Option<PathBuf>,
    recipient_delimiter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_message_size: Option<u64>,
    max_recipients: Option<usize>,
    max_connections: Option<usize>,
    max_line_length: Option<usize>,
    idle_timeout: Option<u64>,
    data_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    threads: Option<usize>,
    queue_depth: Option<usize>,
    spool_memory_max: Option<usize>,
    spool_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
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
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Absolute, so every path derived from the file is absolute too.
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_else(|| PathBuf::from("/"));
        Config::from_toml(&text, path, &base)
    }

    /// Parse `text` (named `path` in errors), resolving relative paths
    /// against `base`.
    pub fn from_toml(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
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
        };

        Ok(Config {
            hostname,
            lmtp: LmtpConfig {
                listen,
                socket_mode,
                save_to_detail_mailbox: raw.lmtp.save_to_detail_mailbox.unwrap_or(false),
            },
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
    fn unknown_keys_are_refused() {
        let e = parse(&format!("{MINIMAL}[lmtp]\nlisten_on = []\n")).unwrap_err();
        assert!(e.to_string().contains("listen_on"), "{e}");
    }
}
