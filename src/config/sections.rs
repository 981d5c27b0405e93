//! Validation of the raw configuration, one function per section: each takes
//! its raw section (see `raw`) and a [`Context`], fills in the defaults and
//! returns the typed value or a [`ConfigError`] naming the key.
//! `Config::parse` calls them in the order errors are reported in. Must not
//! read files other than `[tls]`'s (the `user` lookup asks the system's user
//! database) and must not act on the values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{
    RawDelivery, RawIndex, RawLimits, RawLmtp, RawLog, RawManagesieve, RawMetrics, RawOutbound,
    RawProxy, RawQuota, RawSieve, RawSmtp, RawStorage, RawTls, RawUsers,
};
use super::{
    tls, ConfigError, DeliveryConfig, FolderEncoding, IndexConfig, Limits, ListenAddr, LmtpConfig,
    LogConfig, LogFormat, ManagesieveConfig, MetricsConfig, OutboundConfig, OverQuota, ProxyConfig,
    QuotaConfig, ScoreHeader, ScoreType, SenderPolicy, SieveConfig, SmtpConfig, StorageConfig,
    TlsConfig, UidMode, UsersConfig, DEFAULT_MAX_MESSAGE_SIZE, SPECIAL_USES,
};
use crate::users::{DovecotConfig, Source, SystemConfig, UsersDriver};

/// What every section needs: the file's name for errors and the directory
/// relative paths are taken from.
pub(super) struct Context<'a> {
    pub(super) path: &'a Path,
    pub(super) base: &'a Path,
}

impl Context<'_> {
    /// The error for `key`, naming the file.
    pub(super) fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// `p`, taken relative to the config file's directory.
    fn resolve(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// `v`, or `default` when not set; 0 is refused.
    fn positive(&self, key: &str, v: Option<u64>, default: u64) -> Result<u64, ConfigError> {
        match v {
            Some(0) => Err(self.invalid(key, "must be greater than 0")),
            Some(v) => Ok(v),
            None => Ok(default),
        }
    }

    /// [`Context::positive`] for counts.
    fn positive_count(
        &self,
        key: &str,
        v: Option<usize>,
        default: usize,
    ) -> Result<usize, ConfigError> {
        Ok(self.positive(key, v.map(|v| v as u64), default as u64)? as usize)
    }

    /// [`Context::positive`] for a number of seconds.
    fn positive_secs(
        &self,
        key: &str,
        v: Option<u64>,
        default: u64,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.positive(key, v, default)?))
    }

    /// Listener addresses; unix socket paths are resolved.
    fn listen(&self, key: &str, specs: Vec<String>) -> Result<Vec<ListenAddr>, ConfigError> {
        let mut addrs = Vec::new();
        for s in specs {
            let addr = match parse_listen(&s).map_err(|r| self.invalid(key, r))? {
                ListenAddr::Unix(p) => ListenAddr::Unix(self.resolve(p)),
                tcp => tcp,
            };
            addrs.push(addr);
        }
        Ok(addrs)
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

/// `v` seconds, or `default` when not set (0 allowed).
fn secs(v: Option<u64>, default: Duration) -> Duration {
    v.map_or(default, Duration::from_secs)
}

/// `hostname`, by default the machine's.
/// `postmaster_address`: one plain address when set.
pub(super) fn postmaster(raw: Option<String>, cx: &Context) -> Result<Option<String>, ConfigError> {
    match raw {
        Some(a) if !plain_address(&a) => Err(cx.invalid(
            "postmaster_address",
            format!("{a:?} is not an address (local@domain, no spaces or brackets)"),
        )),
        other => Ok(other),
    }
}

fn plain_address(a: &str) -> bool {
    a.split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()\",;".contains(c))
}

pub(super) fn hostname(raw: Option<String>, cx: &Context) -> Result<String, ConfigError> {
    let hostname = match raw {
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
        return Err(cx.invalid(
            "hostname",
            format!("{hostname:?} is not a host name (no spaces, control characters or '/')"),
        ));
    }
    Ok(hostname)
}

/// `[lmtp] listen`. Apart from the rest of `[lmtp]`, which needs `[tls]`,
/// because its errors are reported before those of `[smtp]` and `[tls]`.
pub(super) fn lmtp_listen(
    raw: Option<Vec<String>>,
    cx: &Context,
) -> Result<Vec<ListenAddr>, ConfigError> {
    let specs = raw.unwrap_or_else(|| vec!["127.0.0.1:24".to_owned()]);
    cx.listen("lmtp.listen", specs)
}

/// `[lmtp]` but its `listen` (given parsed). `lmtp.tls` needs `tls`, the
/// loaded `[tls]`; when `[tls]` was not loaded (`load_tls` false) it is
/// accepted and off.
pub(super) fn lmtp(
    raw: RawLmtp,
    listen: Vec<ListenAddr>,
    tls: Option<&TlsConfig>,
    load_tls: bool,
    cx: &Context,
) -> Result<LmtpConfig, ConfigError> {
    let lmtp_tls = raw.tls.unwrap_or(false);
    if lmtp_tls && tls.is_none() && load_tls {
        return Err(cx.invalid("lmtp.tls", "needs [tls] certificate and key"));
    }
    let socket_mode = match raw.socket_mode {
        None => 0o660,
        Some(s) => u32::from_str_radix(&s, 8)
            .ok()
            .filter(|m| !s.is_empty() && *m <= 0o7777)
            .ok_or_else(|| {
                cx.invalid(
                    "lmtp.socket_mode",
                    format!("{s:?} is not an octal mode like \"0660\""),
                )
            })?,
    };
    Ok(LmtpConfig {
        listen,
        socket_mode,
        save_to_detail_mailbox: raw.save_to_detail_mailbox.unwrap_or(false),
        tls: lmtp_tls && tls.is_some(),
    })
}

/// `[smtp]`: listeners need the domains mail is accepted for.
pub(super) fn smtp(raw: RawSmtp, cx: &Context) -> Result<SmtpConfig, ConfigError> {
    let listen = cx.listen("smtp.listen", raw.listen.unwrap_or_default())?;
    let mut domains = Vec::new();
    for d in raw.domains.unwrap_or_default() {
        if d.is_empty()
            || d.starts_with('[')
            || d.chars()
                .any(|c| c == '@' || c.is_whitespace() || c.is_control())
        {
            return Err(cx.invalid("smtp.domains", format!("{d:?} is not a domain name")));
        }
        domains.push(d.to_lowercase());
    }
    if !listen.is_empty() && domains.is_empty() {
        return Err(cx.invalid(
            "smtp.domains",
            "is required with smtp.listen: the domains mail is accepted for (never relayed)",
        ));
    }
    Ok(SmtpConfig { listen, domains })
}

/// `[tls]`: both files or neither. They are read only when `load_tls`;
/// otherwise only that pairing is checked and the result is None.
pub(super) fn tls(
    raw: RawTls,
    load_tls: bool,
    cx: &Context,
) -> Result<Option<TlsConfig>, ConfigError> {
    match (raw.certificate, raw.key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(cx.invalid("tls.key", "is required with tls.certificate")),
        (None, Some(_)) => Err(cx.invalid("tls.certificate", "is required with tls.key")),
        (Some(cert), Some(key)) if load_tls => {
            let (certificate, key) = (cx.resolve(cert), cx.resolve(key));
            let server =
                tls::server_config(&certificate, &key).map_err(|(k, r)| cx.invalid(k, r))?;
            Ok(Some(TlsConfig {
                certificate,
                key,
                server,
            }))
        }
        (Some(_), Some(_)) => Ok(None),
    }
}

/// `[storage]`: `mail_root` is required.
pub(super) fn storage(raw: RawStorage, cx: &Context) -> Result<StorageConfig, ConfigError> {
    let mail_root = raw
        .mail_root
        .map(|p| cx.resolve(p))
        .ok_or_else(|| cx.invalid("storage.mail_root", "is required"))?;
    Ok(StorageConfig {
        mail_root,
        folder_encoding: raw.folder_encoding.unwrap_or(FolderEncoding::Utf7),
        keywords: raw.keywords.unwrap_or_default(),
        subscriptions: raw.subscriptions.unwrap_or_default(),
        flush: raw.flush.unwrap_or_default(),
    })
}

/// `[users]`: `driver` picks the source; `passwd_file` is required for
/// the passwd-file driver (the default). The other drivers' keys are
/// ignored, as Dovecot ignores the settings of a driver it does not use.
pub(super) fn users(raw: RawUsers, cx: &Context) -> Result<UsersConfig, ConfigError> {
    let recipient_delimiter = raw.recipient_delimiter.clone().unwrap_or_default();
    if recipient_delimiter
        .chars()
        .any(|c| c == '@' || c.is_whitespace() || c.is_control())
    {
        return Err(cx.invalid(
            "users.recipient_delimiter",
            "must not contain '@', spaces or control characters",
        ));
    }
    let driver = raw.driver.unwrap_or(UsersDriver::PasswdFile);
    let source = match driver {
        UsersDriver::PasswdFile => Source::PasswdFile(
            raw.passwd_file
                .clone()
                .map(|p| cx.resolve(p))
                .ok_or_else(|| cx.invalid("users.passwd_file", "is required"))?,
        ),
        UsersDriver::Dovecot => Source::Dovecot(dovecot_users(&raw, cx)?),
        UsersDriver::System => Source::System(SystemConfig {
            domains: raw
                .domains
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            min_uid: raw.min_uid.unwrap_or(1000).max(1),
        }),
    };
    Ok(UsersConfig {
        source,
        recipient_delimiter,
    })
}

fn dovecot_users(raw: &RawUsers, cx: &Context) -> Result<DovecotConfig, ConfigError> {
    let socket = |v: &Option<PathBuf>, default: &str| {
        cx.resolve(v.clone().unwrap_or_else(|| PathBuf::from(default)))
    };
    Ok(DovecotConfig {
        userdb_socket: socket(&raw.dovecot_userdb_socket, "/run/dovecot/auth-userdb"),
        auth_socket: socket(&raw.dovecot_auth_socket, "/run/dovecot/auth-client"),
        timeout: cx.positive_secs("users.dovecot_timeout", raw.dovecot_timeout, 10)?,
        cache_ttl: secs(raw.cache_ttl, Duration::from_secs(60)),
        negative_cache_ttl: secs(raw.negative_cache_ttl, Duration::from_secs(10)),
    })
}

/// `[limits]`: the defaults are RFC 5321's and Postfix's; only
/// `shutdown_grace` may be 0.
pub(super) fn limits(l: RawLimits, cx: &Context) -> Result<Limits, ConfigError> {
    let max_line_length = l.max_line_length.unwrap_or(4096);
    if max_line_length < 512 {
        return Err(cx.invalid(
            "limits.max_line_length",
            "must be at least 512 (RFC 5321 4.5.3.1.4)",
        ));
    }
    Ok(Limits {
        max_message_size: cx.positive(
            "limits.max_message_size",
            l.max_message_size,
            DEFAULT_MAX_MESSAGE_SIZE,
        )?,
        max_recipients: cx.positive_count("limits.max_recipients", l.max_recipients, 1000)?,
        max_connections: cx.positive_count("limits.max_connections", l.max_connections, 256)?,
        max_connections_per_ip: cx.positive_count(
            "limits.max_connections_per_ip",
            l.max_connections_per_ip,
            20,
        )?,
        max_commands: cx.positive_count("limits.max_commands", l.max_commands, 10_000)?,
        max_errors: cx.positive_count("limits.max_errors", l.max_errors, 10)?,
        max_line_length,
        idle_timeout: cx.positive_secs("limits.idle_timeout", l.idle_timeout, 300)?,
        data_timeout: cx.positive_secs("limits.data_timeout", l.data_timeout, 180)?,
        data_total_timeout: cx.positive_secs(
            "limits.data_total_timeout",
            l.data_total_timeout,
            600,
        )?,
        shutdown_grace: secs(l.shutdown_grace, Duration::from_secs(600)),
    })
}

/// `[delivery]`: by default 8 threads per CPU and twice as many waiting
/// transactions.
pub(super) fn delivery(d: RawDelivery, cx: &Context) -> Result<DeliveryConfig, ConfigError> {
    let threads = d.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() * 8)
            .unwrap_or(16)
    });
    if threads == 0 {
        return Err(cx.invalid("delivery.threads", "must be greater than 0"));
    }
    Ok(DeliveryConfig {
        threads,
        queue_depth: d.queue_depth.unwrap_or(threads * 2).max(1),
        spool_memory_max: d.spool_memory_max.unwrap_or(1024 * 1024),
        spool_dir: d
            .spool_dir
            .map(|p| cx.resolve(p))
            .unwrap_or_else(std::env::temp_dir),
        duplicate_window: d
            .duplicate_suppression
            .unwrap_or(false)
            .then(|| Duration::from_secs(d.duplicate_window.unwrap_or(86_400))),
        original_recipient_header: match d.original_recipient_header {
            Some(h) if h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':') => {
                return Err(cx.invalid(
                    "delivery.original_recipient_header",
                    format!("{h:?} is not a header field name"),
                ))
            }
            other => other,
        },
        single_copy: d.single_copy.unwrap_or(true),
    })
}

/// `[log]`: nothing to check.
pub(super) fn log(raw: RawLog) -> LogConfig {
    LogConfig {
        level: raw.level.unwrap_or_else(|| "info".to_owned()),
        format: raw.format.unwrap_or(LogFormat::Text),
        delivery_format: raw.delivery_format.filter(|f| !f.is_empty()),
    }
}

/// `[sieve]`: the defaults are [`SieveConfig::default`] (Pigeonhole's).
/// The largest `[sieve] max_script_size` accepted.
const MAX_SCRIPT_SIZE: usize = 64 << 20;

pub(super) fn sieve(sv: RawSieve, cx: &Context) -> Result<SieveConfig, ConfigError> {
    let sd = SieveConfig::default();
    let paths = |v: Option<Vec<PathBuf>>| {
        v.unwrap_or_default()
            .into_iter()
            .map(|p| cx.resolve(p))
            .collect()
    };
    let sieve = SieveConfig {
        enabled: sv.enabled.unwrap_or(sd.enabled),
        script: sv.script.unwrap_or(sd.script),
        user_dir: sv.user_dir.unwrap_or(sd.user_dir),
        before: paths(sv.before),
        after: paths(sv.after),
        global_dir: sv.global_dir.map(|p| cx.resolve(p)),
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
        spam: score_header(
            "sieve.spam_header",
            sv.spam_header,
            sv.spam_type,
            sv.spam_max,
            cx,
        )?,
        virus: score_header(
            "sieve.virus_header",
            sv.virus_header,
            sv.virus_type,
            sv.virus_max,
            cx,
        )?,
    };
    // A script is read into memory, and ManageSieve adds room for a
    // command around it: a size past this is a typo, not a script.
    if sieve.max_script_size > MAX_SCRIPT_SIZE {
        return Err(cx.invalid(
            "sieve.max_script_size",
            format!("must be at most {MAX_SCRIPT_SIZE} bytes (64 MiB)"),
        ));
    }
    if sieve.vacation_min_period > sieve.vacation_default_period
        || sieve.vacation_default_period > sieve.vacation_max_period
    {
        return Err(cx.invalid(
            "sieve.vacation_default_period",
            "must lie between vacation_min_period and vacation_max_period",
        ));
    }
    Ok(sieve)
}

/// A spam or virus score header (`key` names it in errors); None when
/// `header` is not set.
fn score_header(
    key: &str,
    header: Option<String>,
    kind: Option<ScoreType>,
    max: Option<f64>,
    cx: &Context,
) -> Result<Option<ScoreHeader>, ConfigError> {
    let Some(header) = header else {
        return Ok(None);
    };
    if header.is_empty() || header.contains(':') || header.contains(char::is_whitespace) {
        return Err(cx.invalid(key, format!("{header:?} is not a header name")));
    }
    let max = max.unwrap_or(10.0);
    if !(max > 0.0 && max.is_finite()) {
        return Err(cx.invalid(key, "the maximum must be a positive number"));
    }
    Ok(Some(ScoreHeader {
        header,
        kind: kind.unwrap_or(ScoreType::Score),
        max,
    }))
}

/// `[outbound]`: an SMTP relay, else /usr/sbin/sendmail unless another
/// sendmail is named.
pub(super) fn outbound(ob: RawOutbound, cx: &Context) -> Result<OutboundConfig, ConfigError> {
    if let Some(s) = &ob.smtp {
        if s.rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            return Err(cx.invalid("outbound.smtp", format!("{s:?} is not host:port")));
        }
    }
    Ok(OutboundConfig {
        sendmail: match (&ob.smtp, ob.sendmail) {
            (_, Some(p)) => Some(cx.resolve(p)),
            (Some(_), None) => None,
            (None, None) => Some(PathBuf::from("/usr/sbin/sendmail")),
        },
        smtp: ob.smtp,
        redirect_sender: ob.redirect_sender.unwrap_or(SenderPolicy::Sender),
        vacation_sender: ob.vacation_sender.unwrap_or(SenderPolicy::Null),
        timeout: secs(ob.timeout, Duration::from_secs(60)),
    })
}

/// `[quota]`: `rule` or `rules`, each parsed once here so that delivery
/// never meets a bad one.
pub(super) fn quota(raw: RawQuota, cx: &Context) -> Result<QuotaConfig, ConfigError> {
    let (key, rules) = match (raw.rule, raw.rules) {
        (Some(_), Some(_)) => {
            return Err(cx.invalid("quota.rule", "set either rule or rules, not both"))
        }
        (Some(r), None) => ("quota.rule", vec![r]),
        (None, r) => ("quota.rules", r.unwrap_or_default()),
    };
    let mut check = mailstow_maildir::quota::Rules::default();
    for rule in &rules {
        if rule.is_empty() {
            return Err(cx.invalid(key, "an empty rule"));
        }
        check.apply(rule).map_err(|e| cx.invalid(key, e))?;
    }
    let warnings = raw
        .warnings
        .unwrap_or_default()
        .iter()
        .map(|w| crate::config::QuotaWarning::parse(w).map_err(|e| cx.invalid("quota.warnings", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(QuotaConfig {
        rules,
        over_quota: raw.over_quota.unwrap_or(OverQuota::Permanent),
        warnings,
    })
}

/// `[index]`: `special_use` defaults to Dovecot's default namespace.
pub(super) fn index(raw: RawIndex, cx: &Context) -> Result<IndexConfig, ConfigError> {
    let special_use = match raw.special_use {
        None => default_special_use(),
        Some(map) => {
            for (folder, attr) in &map {
                if !SPECIAL_USES.iter().any(|u| u.eq_ignore_ascii_case(attr)) {
                    return Err(cx.invalid(
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
    Ok(IndexConfig {
        enabled: raw.enabled.unwrap_or(true),
        uids: raw.uids.unwrap_or(UidMode::Own),
        special_use,
    })
}

/// Dovecot's default namespace (10-mail.conf in Debian).
fn default_special_use() -> BTreeMap<String, String> {
    [
        ("Drafts", "\\Drafts"),
        ("Junk", "\\Junk"),
        ("Trash", "\\Trash"),
        ("Sent", "\\Sent"),
        ("Sent Messages", "\\Sent"),
    ]
    .into_iter()
    .map(|(f, u)| (f.to_owned(), u.to_owned()))
    .collect()
}

/// `user` and `group`: the account looked up now; a group needs a user.
pub(super) fn run_as(
    user: Option<String>,
    group: Option<String>,
    cx: &Context,
) -> Result<Option<crate::privilege::Account>, ConfigError> {
    match (&user, &group) {
        (Some(u), g) => Ok(Some(
            crate::privilege::resolve(u, g.as_deref()).map_err(|r| cx.invalid("user", r))?,
        )),
        (None, Some(_)) => Err(cx.invalid("group", "needs user as well")),
        (None, None) => Ok(None),
    }
}

/// `[metrics]`: a loopback address only, the endpoint having no
/// authentication.
pub(super) fn metrics(raw: RawMetrics, cx: &Context) -> Result<MetricsConfig, ConfigError> {
    let Some(s) = raw.listen else {
        return Ok(MetricsConfig { listen: None });
    };
    let addr: std::net::SocketAddr = s
        .parse()
        .map_err(|_| cx.invalid("metrics.listen", format!("{s:?} is not host:port")))?;
    if !addr.ip().is_loopback() {
        return Err(cx.invalid(
            "metrics.listen",
            format!(
                "{addr} is not a loopback address (the endpoint has no \
                 authentication: put a proxy in front to export it)"
            ),
        ));
    }
    Ok(MetricsConfig { listen: Some(addr) })
}

/// `[managesieve]`: TCP listeners only.
pub(super) fn managesieve(
    ms: RawManagesieve,
    cx: &Context,
) -> Result<ManagesieveConfig, ConfigError> {
    let mut listen = Vec::new();
    for s in ms.listen.unwrap_or_default() {
        listen.push(s.parse().map_err(|_| {
            cx.invalid(
                "managesieve.listen",
                format!("{s:?} is not host:port or [ipv6]:port (ManageSieve is TCP only)"),
            )
        })?);
    }
    Ok(ManagesieveConfig {
        listen,
        plaintext_on_loopback: ms.plaintext_on_loopback.unwrap_or(false),
        max_scripts: ms.max_scripts.unwrap_or(100),
        max_storage: ms.max_storage.unwrap_or(10 * 1024 * 1024),
        max_connections: cx.positive_count(
            "managesieve.max_connections",
            ms.max_connections,
            64,
        )?,
        auth_failure_delay: Duration::from_secs(ms.auth_failure_delay.unwrap_or(2)),
        max_auth_failures: cx.positive(
            "managesieve.max_auth_failures",
            ms.max_auth_failures.map(u64::from),
            3,
        )? as u32,
        idle_timeout: cx.positive_secs("managesieve.idle_timeout", ms.idle_timeout, 1800)?,
    })
}

/// `[proxy]`: names compared case-insensitively; timeouts positive.
pub(super) fn proxy(raw: RawProxy, cx: &Context) -> Result<ProxyConfig, ConfigError> {
    let lower = |v: Option<Vec<String>>| -> Vec<String> {
        v.unwrap_or_default()
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    };
    let port = match raw.port {
        Some(0) => return Err(cx.invalid("proxy.port", "must be greater than 0")),
        p => p.unwrap_or(24),
    };
    Ok(ProxyConfig {
        enabled: raw.enabled.unwrap_or(false),
        self_hosts: lower(raw.self_hosts),
        port,
        connect_timeout: cx.positive_secs("proxy.connect_timeout", raw.connect_timeout, 5)?,
        timeout: cx.positive_secs("proxy.timeout", raw.timeout, 30)?,
        max_idle: raw.max_idle.unwrap_or(4),
        maintenance: lower(raw.maintenance),
    })
}
