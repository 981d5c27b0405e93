//! The effective configuration written back as TOML (`config check`): every
//! key with the value in force, defaults included, in the file's own syntax
//! so the output loads as a config again. Must not validate or read files;
//! it only turns a validated [`Config`] back into the raw form.

use super::*;
use crate::users::Source;

impl Config {
    /// Every setting, defaults filled in, as a config file would say it.
    pub fn effective_toml(&self) -> String {
        let raw = self.to_raw();
        match toml::to_string(&raw) {
            Ok(s) => s,
            // The raw form holds only strings, numbers, booleans, arrays and
            // string maps, which TOML can always hold.
            Err(e) => format!("# cannot be written as TOML: {e}\n"),
        }
    }

    /// One raw section per typed one; `[tls]` names the loaded files.
    fn to_raw(&self) -> Raw {
        Raw {
            hostname: Some(self.hostname.clone()),
            postmaster_address: self.postmaster_address.clone(),
            user: self.run_as.as_ref().map(|a| a.user.clone()),
            group: self.run_as.as_ref().and_then(|a| a.group.clone()),
            lmtp: lmtp(&self.lmtp),
            smtp: smtp(&self.smtp),
            tls: tls(self.tls.as_ref()),
            storage: storage(&self.storage),
            users: users(&self.users),
            limits: limits(&self.limits),
            delivery: delivery(&self.delivery),
            log: log(&self.log),
            sieve: sieve(&self.sieve),
            outbound: outbound(&self.outbound),
            quota: quota(&self.quota),
            index: index(&self.index),
            metrics: metrics(&self.metrics),
            managesieve: managesieve(&self.managesieve),
            proxy: proxy(&self.proxy),
        }
    }
}

fn secs(d: Duration) -> Option<u64> {
    Some(d.as_secs())
}

fn listen<T: ToString>(v: &[T]) -> Option<Vec<String>> {
    Some(v.iter().map(ToString::to_string).collect())
}

fn lmtp(c: &LmtpConfig) -> RawLmtp {
    RawLmtp {
        listen: listen(&c.listen),
        socket_mode: Some(format!("{:04o}", c.socket_mode)),
        save_to_detail_mailbox: Some(c.save_to_detail_mailbox),
        tls: Some(c.tls),
    }
}

fn smtp(c: &SmtpConfig) -> RawSmtp {
    RawSmtp {
        listen: listen(&c.listen),
        domains: Some(c.domains.clone()),
    }
}

fn tls(c: Option<&TlsConfig>) -> RawTls {
    RawTls {
        certificate: c.map(|t| t.certificate.clone()),
        key: c.map(|t| t.key.clone()),
    }
}

fn storage(c: &StorageConfig) -> RawStorage {
    RawStorage {
        mail_root: Some(c.mail_root.clone()),
        folder_encoding: Some(c.folder_encoding),
        keywords: Some(c.keywords),
        subscriptions: Some(c.subscriptions),
        flush: Some(c.flush),
    }
}

fn users(c: &UsersConfig) -> RawUsers {
    let mut raw = RawUsers {
        driver: Some(c.driver()),
        recipient_delimiter: Some(c.recipient_delimiter.clone()),
        ..RawUsers::default()
    };
    match &c.source {
        Source::PasswdFile(p) => raw.passwd_file = Some(p.clone()),
        Source::Dovecot(d) => {
            raw.dovecot_userdb_socket = Some(d.userdb_socket.clone());
            raw.dovecot_auth_socket = Some(d.auth_socket.clone());
            raw.dovecot_timeout = Some(d.timeout.as_secs());
            raw.cache_ttl = Some(d.cache_ttl.as_secs());
            raw.negative_cache_ttl = Some(d.negative_cache_ttl.as_secs());
        }
        Source::System(s) => {
            raw.domains = Some(s.domains.clone());
            raw.min_uid = Some(s.min_uid);
        }
    }
    raw
}

fn limits(l: &Limits) -> RawLimits {
    RawLimits {
        max_message_size: Some(l.max_message_size),
        max_recipients: Some(l.max_recipients),
        max_connections: Some(l.max_connections),
        max_connections_per_ip: Some(l.max_connections_per_ip),
        max_commands: Some(l.max_commands),
        max_errors: Some(l.max_errors),
        max_line_length: Some(l.max_line_length),
        idle_timeout: secs(l.idle_timeout),
        data_timeout: secs(l.data_timeout),
        data_total_timeout: secs(l.data_total_timeout),
        shutdown_grace: secs(l.shutdown_grace),
    }
}

fn delivery(d: &DeliveryConfig) -> RawDelivery {
    RawDelivery {
        threads: Some(d.threads),
        queue_depth: Some(d.queue_depth),
        spool_memory_max: Some(d.spool_memory_max),
        spool_dir: Some(d.spool_dir.clone()),
        duplicate_suppression: Some(d.duplicate_window.is_some()),
        duplicate_window: d.duplicate_window.map(|w| w.as_secs()),
        original_recipient_header: d.original_recipient_header.clone(),
        single_copy: Some(d.single_copy),
    }
}

fn log(c: &LogConfig) -> RawLog {
    RawLog {
        level: Some(c.level.clone()),
        format: Some(c.format),
        delivery_format: c.delivery_format.clone(),
    }
}

fn sieve(s: &SieveConfig) -> RawSieve {
    let (spam_header, spam_type, spam_max) = score(&s.spam);
    let (virus_header, virus_type, virus_max) = score(&s.virus);
    RawSieve {
        enabled: Some(s.enabled),
        script: Some(s.script.clone()),
        user_dir: Some(s.user_dir.clone()),
        before: Some(s.before.clone()),
        after: Some(s.after.clone()),
        global_dir: s.global_dir.clone(),
        max_script_size: Some(s.max_script_size),
        max_actions: Some(s.max_actions),
        max_redirects: Some(s.max_redirects),
        max_cpu: Some(s.max_cpu),
        max_include_depth: Some(s.max_include_depth),
        user_editheader: Some(s.user_editheader),
        autocreate: Some(s.autocreate),
        vacation_min_period: secs(s.vacation_min_period),
        vacation_default_period: secs(s.vacation_default_period),
        vacation_max_period: secs(s.vacation_max_period),
        spam_header,
        spam_type,
        spam_max,
        virus_header,
        virus_type,
        virus_max,
    }
}

/// A score header's three keys (`*_header`, `*_type`, `*_max`).
fn score(h: &Option<ScoreHeader>) -> (Option<String>, Option<ScoreType>, Option<f64>) {
    match h {
        Some(h) => (Some(h.header.clone()), Some(h.kind), Some(h.max)),
        None => (None, None, None),
    }
}

fn outbound(o: &OutboundConfig) -> RawOutbound {
    RawOutbound {
        smtp: o.smtp.clone(),
        sendmail: o.sendmail.clone(),
        redirect_sender: Some(o.redirect_sender),
        vacation_sender: Some(o.vacation_sender),
        timeout: secs(o.timeout),
    }
}

/// Always as `rules`, the general form.
fn quota(c: &QuotaConfig) -> RawQuota {
    RawQuota {
        rule: None,
        rules: Some(c.rules.clone()),
        over_quota: Some(c.over_quota),
        warnings: Some(c.warnings.iter().map(|w| w.text.clone()).collect()),
    }
}

fn index(c: &IndexConfig) -> RawIndex {
    RawIndex {
        enabled: Some(c.enabled),
        uids: Some(c.uids),
        special_use: Some(c.special_use.clone()),
    }
}

fn metrics(c: &MetricsConfig) -> RawMetrics {
    RawMetrics {
        listen: c.listen.map(|a| a.to_string()),
    }
}

fn managesieve(m: &ManagesieveConfig) -> RawManagesieve {
    RawManagesieve {
        listen: listen(&m.listen),
        plaintext_on_loopback: Some(m.plaintext_on_loopback),
        max_scripts: Some(m.max_scripts),
        max_storage: Some(m.max_storage),
        max_connections: Some(m.max_connections),
        auth_failure_delay: secs(m.auth_failure_delay),
        max_auth_failures: Some(m.max_auth_failures),
        idle_timeout: secs(m.idle_timeout),
    }
}

fn proxy(p: &ProxyConfig) -> RawProxy {
    RawProxy {
        enabled: Some(p.enabled),
        self_hosts: Some(p.self_hosts.clone()),
        port: Some(p.port),
        connect_timeout: secs(p.connect_timeout),
        timeout: secs(p.timeout),
        max_idle: Some(p.max_idle),
        maintenance: Some(p.maintenance.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_toml(text, Path::new("test.toml"), Path::new("/etc/mailstow"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Printing and loading again gives the same configuration, so no key
    /// is left out of the printout (Debug shows every field).
    fn round_trips(text: &str) {
        let cfg = parse(text);
        let printed = cfg.effective_toml();
        let again = parse(&printed);
        assert_eq!(format!("{cfg:?}"), format!("{again:?}"), "{printed}");
    }

    #[test]
    fn the_defaults_round_trip() {
        round_trips("[storage]\nmail_root = \"mail\"\n[users]\npasswd_file = \"users\"\n");
    }

    #[test]
    fn the_packaged_example_round_trips() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/mailstow.example.toml");
        round_trips(&std::fs::read_to_string(path).unwrap());
    }

    #[test]
    fn every_optional_setting_round_trips() {
        round_trips(
            r#"hostname = "mx.example.org"
[lmtp]
listen = ["127.0.0.1:2424", "[::1]:24", "unix:/run/mailstow/lmtp"]
socket_mode = "0666"
save_to_detail_mailbox = true
[smtp]
listen = ["127.0.0.1:2525"]
domains = ["Example.ORG"]
[storage]
mail_root = "/var/vmail"
folder_encoding = "utf8"
keywords = "both"
subscriptions = "courier"
[users]
passwd_file = "users"
recipient_delimiter = "+-"
[limits]
max_message_size = 1000
idle_timeout = 7
shutdown_grace = 0
[delivery]
threads = 3
queue_depth = 9
spool_dir = "spool"
duplicate_suppression = true
duplicate_window = 60
single_copy = false
[log]
level = "mailstow=debug"
format = "json"
[sieve]
enabled = false
before = ["b1.sieve", "/abs/b2.sieve"]
after = ["a.sieve"]
global_dir = "global"
user_editheader = true
spam_header = "X-Spam-Score"
spam_type = "score"
spam_max = 15.5
virus_header = "X-Virus"
virus_type = "yesno"
[outbound]
smtp = "127.0.0.1:25"
redirect_sender = "recipient"
timeout = 5
[quota]
rule = "*:storage=1G"
over_quota = "temporary"
[index]
enabled = false
uids = "courier"
special_use = { Archive = "\\Archive" }
[metrics]
listen = "127.0.0.1:9154"
[managesieve]
listen = ["127.0.0.1:4190", "[::1]:4190"]
plaintext_on_loopback = true
max_scripts = 7
max_storage = 1000
max_connections = 5
auth_failure_delay = 0
max_auth_failures = 9
idle_timeout = 60
[proxy]
enabled = true
self = ["10.0.0.1", "node1.example.org"]
port = 2424
connect_timeout = 2
timeout = 9
max_idle = 0
maintenance = ["alice@example.org"]
"#,
        );
    }

    #[test]
    fn the_printout_names_the_defaults_it_filled_in() {
        let cfg = parse("[storage]\nmail_root = \"mail\"\n[users]\npasswd_file = \"users\"\n");
        let printed = cfg.effective_toml();
        for line in [
            "mail_root = \"/etc/mailstow/mail\"",
            "max_recipients = 1000",
            "idle_timeout = 300",
            "script = \"%h/.dovecot.sieve\"",
            "socket_mode = \"0660\"",
        ] {
            assert!(printed.contains(line), "{line} missing in\n{printed}");
        }
    }
}
