//! The configuration file's raw form: one serde struct per section, every
//! key optional and spelled exactly as in the file; unknown keys are refused.
//! Must not hold defaults or checks: `sections` turns these into the typed
//! values, and `effective` turns typed values back into these.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{
    Flush, FolderEncoding, LogFormat, OverQuota, Readers, ScoreType, SenderPolicy, UidMode,
};
use crate::users::UsersDriver;

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) hostname: Option<String>,
    pub(super) postmaster_address: Option<String>,
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
    #[serde(default)]
    pub(super) lmtp: RawLmtp,
    #[serde(default)]
    pub(super) smtp: RawSmtp,
    #[serde(default)]
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) users: RawUsers,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) delivery: RawDelivery,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) sieve: RawSieve,
    #[serde(default)]
    pub(super) outbound: RawOutbound,
    #[serde(default)]
    pub(super) quota: RawQuota,
    #[serde(default)]
    pub(super) index: RawIndex,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) managesieve: RawManagesieve,
    #[serde(default)]
    pub(super) proxy: RawProxy,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLmtp {
    pub(super) listen: Option<Vec<String>>,
    pub(super) socket_mode: Option<String>,
    pub(super) save_to_detail_mailbox: Option<bool>,
    pub(super) tls: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) listen: Option<Vec<String>>,
    pub(super) domains: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) certificate: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) mail_root: Option<PathBuf>,
    pub(super) folder_encoding: Option<FolderEncoding>,
    pub(super) keywords: Option<Readers>,
    pub(super) subscriptions: Option<Readers>,
    pub(super) flush: Option<Flush>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUsers {
    pub(super) driver: Option<UsersDriver>,
    pub(super) passwd_file: Option<PathBuf>,
    pub(super) recipient_delimiter: Option<String>,
    pub(super) dovecot_userdb_socket: Option<PathBuf>,
    pub(super) dovecot_auth_socket: Option<PathBuf>,
    pub(super) dovecot_timeout: Option<u64>,
    pub(super) cache_ttl: Option<u64>,
    pub(super) negative_cache_ttl: Option<u64>,
    pub(super) domains: Option<Vec<String>>,
    pub(super) min_uid: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_message_size: Option<u64>,
    pub(super) max_recipients: Option<usize>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_ip: Option<usize>,
    pub(super) max_commands: Option<usize>,
    pub(super) max_errors: Option<usize>,
    pub(super) max_line_length: Option<usize>,
    pub(super) idle_timeout: Option<u64>,
    pub(super) data_timeout: Option<u64>,
    pub(super) data_total_timeout: Option<u64>,
    pub(super) shutdown_grace: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    pub(super) threads: Option<usize>,
    pub(super) queue_depth: Option<usize>,
    pub(super) spool_memory_max: Option<usize>,
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) duplicate_suppression: Option<bool>,
    pub(super) duplicate_window: Option<u64>,
    pub(super) original_recipient_header: Option<String>,
    pub(super) single_copy: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) format: Option<LogFormat>,
    pub(super) delivery_format: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSieve {
    pub(super) enabled: Option<bool>,
    pub(super) script: Option<String>,
    pub(super) user_dir: Option<String>,
    pub(super) before: Option<Vec<PathBuf>>,
    pub(super) after: Option<Vec<PathBuf>>,
    pub(super) global_dir: Option<PathBuf>,
    pub(super) max_script_size: Option<usize>,
    pub(super) max_actions: Option<usize>,
    pub(super) max_redirects: Option<usize>,
    pub(super) max_cpu: Option<usize>,
    pub(super) max_include_depth: Option<usize>,
    pub(super) user_editheader: Option<bool>,
    pub(super) autocreate: Option<bool>,
    pub(super) vacation_min_period: Option<u64>,
    pub(super) vacation_default_period: Option<u64>,
    pub(super) vacation_max_period: Option<u64>,
    pub(super) spam_header: Option<String>,
    pub(super) spam_type: Option<ScoreType>,
    pub(super) spam_max: Option<f64>,
    pub(super) virus_header: Option<String>,
    pub(super) virus_type: Option<ScoreType>,
    pub(super) virus_max: Option<f64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutbound {
    pub(super) smtp: Option<String>,
    pub(super) sendmail: Option<PathBuf>,
    pub(super) redirect_sender: Option<SenderPolicy>,
    pub(super) vacation_sender: Option<SenderPolicy>,
    pub(super) timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuota {
    /// Dovecot quota rule syntax, e.g. "*:storage=1G:messages=10000";
    /// short for `rules = [rule]`.
    pub(super) rule: Option<String>,
    /// Several rules, in Dovecot's order (`quota_rule`, `quota_rule2`, ...),
    /// e.g. ["*:storage=1G", "Trash:ignore"].
    pub(super) rules: Option<Vec<String>>,
    pub(super) over_quota: Option<OverQuota>,
    /// Dovecot's `quota_warning`, `quota_warning2`, ... in order:
    /// "storage=95% /path/to/script 95 %u".
    pub(super) warnings: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIndex {
    pub(super) enabled: Option<bool>,
    pub(super) uids: Option<UidMode>,
    pub(super) special_use: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManagesieve {
    pub(super) listen: Option<Vec<String>>,
    pub(super) plaintext_on_loopback: Option<bool>,
    pub(super) max_scripts: Option<usize>,
    pub(super) max_storage: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) auth_failure_delay: Option<u64>,
    pub(super) max_auth_failures: Option<u32>,
    pub(super) idle_timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) enabled: Option<bool>,
    #[serde(rename = "self")]
    pub(super) self_hosts: Option<Vec<String>>,
    pub(super) port: Option<u16>,
    pub(super) connect_timeout: Option<u64>,
    pub(super) timeout: Option<u64>,
    pub(super) max_idle: Option<usize>,
    pub(super) maintenance: Option<Vec<String>>,
}
