//! `mailstow config from-dovecot`: the text of `doveconf -n` in, the
//! equivalent mailstow configuration (TOML) out, with every Dovecot setting
//! it could not carry over named with the reason, and the ones that do not
//! matter to delivery (IMAP, POP3, services, TLS for IMAP) named as such.
//! Must not read files, run doveconf or look anything up on the system:
//! the CLI does that; the same text always gives the same output, and no
//! input makes it panic.
//!
//! - [`doveconf`]: the parser of doveconf's format.
//!
//! Dovecot applies `protocol lmtp { }` (LMTP) and `protocol lda { }`
//! (dovecot-lda) over the global settings; mailstow has one value for its
//! LMTP service and its pipe mode, so the LMTP one wins when they differ
//! (and the difference is named).

pub mod doveconf;

use std::collections::{BTreeMap, BTreeSet};

pub use doveconf::ParseError;
use doveconf::Section;

/// What the conversion gives.
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The mailstow configuration file.
    pub toml: String,
    /// (setting, why it is not carried over).
    pub not_carried: Vec<(String, String)>,
    /// Settings (and sections) that do not matter to delivery.
    pub not_about_delivery: Vec<String>,
    /// Carried over, with something the admin should know.
    pub notes: Vec<String>,
}

impl Conversion {
    /// The report for stderr, one finding a line.
    pub fn report(&self) -> String {
        let mut out = String::new();
        for (k, why) in &self.not_carried {
            out.push_str(&format!("not carried over: {k}: {why}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        if !self.not_about_delivery.is_empty() {
            out.push_str(&format!(
                "not about delivery (left out): {}\n",
                self.not_about_delivery.join(", ")
            ));
        }
        out
    }
}

/// Dovecot's defaults for what `doveconf -n` leaves out.
const DOVECOT_BASE_DIR: &str = "/run/dovecot";
const DOVECOT_FIRST_VALID_UID: &str = "500";
const DOVECOT_RECIPIENT_DELIMITER: &str = "+";

/// Convert the output of `doveconf -n`.
pub fn convert(text: &str) -> Result<Conversion, ParseError> {
    let root = doveconf::parse(text)?;
    let mut c = Converter::new(&root);
    c.run(doveconf::version(text));
    Ok(c.finish())
}

/// One effective value: where it was set (`protocol lmtp`, `plugin`, ``).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Val {
    value: String,
    line: usize,
}

/// The settings one protocol sees: globals, then its `protocol X { }`
/// over them; `plugin { }` settings apart.
#[derive(Debug, Default)]
struct View {
    main: BTreeMap<String, Val>,
    plugin: BTreeMap<String, Val>,
}

impl View {
    fn of(root: &Section, protocol: &str) -> View {
        let mut v = View::default();
        v.overlay(root, None);
        if let Some(p) = root.named("protocol", protocol) {
            let global_plugins = v.main.get("mail_plugins").map(|x| x.value.clone());
            v.overlay(p, global_plugins.as_deref());
        }
        v
    }

    fn overlay(&mut self, s: &Section, global_plugins: Option<&str>) {
        for st in &s.settings {
            let mut value = st.value.clone();
            if st.key == "mail_plugins" {
                value = value.replace("$mail_plugins", global_plugins.unwrap_or(""));
            }
            self.main.insert(
                st.key.clone(),
                Val {
                    value,
                    line: st.line,
                },
            );
        }
        for p in s.all("plugin") {
            for st in &p.settings {
                self.plugin.insert(
                    st.key.clone(),
                    Val {
                        value: st.value.clone(),
                        line: st.line,
                    },
                );
            }
        }
    }

    fn plugins(&self) -> Vec<String> {
        self.main
            .get("mail_plugins")
            .map(|v| v.value.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

/// The output, section by section in a fixed order.
#[derive(Default)]
struct Out {
    /// section ("" is the top level) -> lines.
    sections: BTreeMap<&'static str, Vec<String>>,
}

const ORDER: &[&str] = &[
    "",
    "lmtp",
    "storage",
    "users",
    "delivery",
    "limits",
    "log",
    "sieve",
    "outbound",
    "quota",
    "index",
    "managesieve",
    "proxy",
];

impl Out {
    fn set(&mut self, section: &'static str, key: &str, value: toml::Value, from: &str) {
        let lines = self.sections.entry(section).or_default();
        if !from.is_empty() {
            lines.push(format!("# from Dovecot's {from}"));
        }
        lines.push(format!("{key} = {value}"));
    }

    fn render(&self, header: &str) -> String {
        let mut out = String::from(header);
        for name in ORDER {
            let Some(lines) = self.sections.get(name) else {
                continue;
            };
            if !name.is_empty() {
                out.push_str(&format!("\n[{name}]\n"));
            }
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

fn s(v: &str) -> toml::Value {
    toml::Value::String(v.to_owned())
}

struct Converter<'a> {
    root: &'a Section,
    /// What LMTP (or dovecot-lda when LMTP is not used) sees.
    view: View,
    /// The other protocol's view, to name differences.
    other: Option<(String, View)>,
    primary: &'static str,
    used: BTreeSet<String>,
    used_plugin: BTreeSet<String>,
    out: Out,
    conv: Conversion,
    /// Dovecot's version, from doveconf's first line.
    version: String,
}

/// Dovecot's yes/no.
fn bool_of(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "1" => Some(true),
        "no" | "n" | "false" | "0" | "" => Some(false),
        _ => None,
    }
}

/// Dovecot's size (`10M`, `1 G`, `512k`, plain bytes).
fn size_of(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..digits].parse().ok()?;
    let unit = v[digits..].trim().to_ascii_lowercase();
    let m: u64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(m)
}

/// Dovecot's time interval (`1d`, `7 days`, `90d`, `3600`, `1h`) in seconds.
fn secs_of(v: &str) -> Option<u64> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..digits].parse().ok()?;
    let unit = v[digits..].trim().to_ascii_lowercase();
    let m: u64 = match unit.as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 604_800,
        _ => return None,
    };
    n.checked_mul(m)
}

/// `~` and `~/...` as mailstow's `%h`; None when the template has a
/// %-variable mailstow does not expand (it knows %h %u %d %n).
fn user_template(v: &str) -> Option<String> {
    let t = if v == "~" {
        "%h".to_owned()
    } else if let Some(rest) = v.strip_prefix("~/") {
        format!("%h/{rest}")
    } else {
        v.to_owned()
    };
    let mut chars = t.chars();
    while let Some(c) = chars.next() {
        if c == '%' && !matches!(chars.next(), Some('h' | 'u' | 'd' | 'n' | '%')) {
            return None;
        }
    }
    Some(t)
}

/// `/var/vmail` of a home or Maildir template `/var/vmail/%d/%n[suffix]`:
/// mailstow's default home is `{mail_root}/{domain}/{localpart}`.
fn root_of(template: &str, suffix: &str) -> Option<String> {
    let t = template.strip_suffix(suffix)?.trim_end_matches('/');
    for tail in ["/%d/%n", "/%Ld/%Ln", "/%Ld/%n", "/%d/%Ln"] {
        if let Some(r) = t.strip_suffix(tail) {
            if r.starts_with('/') && !r.contains('%') {
                return Some(r.to_owned());
            }
        }
    }
    None
}

/// Is this setting about something other than delivery?
fn not_about_delivery(key: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "imap_",
        "pop3_",
        "ssl",
        "login_",
        "auth_",
        "managesieve_",
        "submission_",
        "doveadm_",
        "director_",
        "verbose_",
        "log_",
        "info_",
        "debug_",
        "mail_debug",
        "syslog_",
        "maildir_",
        "mbox_",
        "mdbox_",
        "sdbox_",
        "mail_max_userip",
        "imapc_",
        "pop3c_",
        "replication_",
        "shutdown_",
        "mail_access_groups",
        "mail_cache",
        "mail_index",
        "mailbox_list_",
        "mail_attribute",
        "mail_server_",
        "mail_shared_",
        "stats_",
        "metric",
        "old_stats",
        "dsync_",
        "haproxy_",
        "lock_method",
        "mmap_",
        "dotlock_",
        "mail_nfs",
        "mail_prefetch",
        "pop3c",
    ];
    const KEYS: &[&str] = &[
        "protocols",
        "listen",
        "base_dir",
        "state_dir",
        "instance_name",
        "disable_plaintext_auth",
        "login_greeting",
        "mail_privileged_group",
        "import_environment",
        "default_vsz_limit",
        "default_process_limit",
        "default_client_limit",
        "default_login_user",
        "default_internal_user",
        "default_internal_group",
        "version_ignore",
        "shutdown_clients",
        "mail_always_cache_fields",
        "mail_never_cache_fields",
        "mail_full_filesystem_access",
        "last_valid_uid",
        "last_valid_gid",
        "first_valid_gid",
        "mail_chroot",
        "valid_chroot_dirs",
        "mail_log_prefix",
        "postmaster_address_",
        "config_cache_size",
        "dict_db_config",
        "managesieve_notify_capability",
        "managesieve_sieve_capability",
        "login_trusted_networks",
        "hostname_",
        "pop3_uidl_format",
        "mail_vsize_bg_after_count",
        "mail_sort_max_read_count",
    ];
    KEYS.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

impl<'a> Converter<'a> {
    fn new(root: &'a Section) -> Converter<'a> {
        let protocols = root.get("protocols").unwrap_or("");
        let lmtp = protocols.split_whitespace().any(|p| p == "lmtp")
            || root.named("protocol", "lmtp").is_some();
        let (primary, other) = if lmtp {
            ("lmtp", "lda")
        } else {
            ("lda", "lmtp")
        };
        let other = (root.named("protocol", other).is_some())
            .then(|| (other.to_owned(), View::of(root, other)));
        Converter {
            root,
            view: View::of(root, primary),
            other,
            primary,
            used: BTreeSet::new(),
            used_plugin: BTreeSet::new(),
            out: Out::default(),
            conv: Conversion::default(),
            version: String::new(),
        }
    }

    /// `deliver_log_format` → `[log] delivery_format` when every variable
    /// it uses is one mailstow's line has (see `deliver::log::expand`).
    fn log_format(&mut self) {
        let Some(f) = self.get("deliver_log_format") else {
            return;
        };
        const KNOWN: &[&str] = &[
            "$",
            "m",
            "s",
            "f",
            "e",
            "p",
            "%",
            "{size}",
            "{delivery_time}",
            "{mailbox}",
            "{to}",
            "{orig_to}",
            "{id}",
        ];
        let unknown = f.split('%').skip(1).find_map(|after| {
            let var = match after.strip_prefix('{') {
                Some(a) => format!("{{{}}}", a.split('}').next().unwrap_or("")),
                None => after.chars().next().map(String::from).unwrap_or_default(),
            };
            (!KNOWN.contains(&var.as_str()) && !var.is_empty()).then_some(var)
        });
        match unknown {
            None => self
                .out
                .set("log", "delivery_format", s(&f), "deliver_log_format"),
            Some(v) => self.not_carried(
                "deliver_log_format",
                format!("{f:?}: %{v} has no equivalent in mailstow's line"),
            ),
        }
    }

    fn get(&mut self, key: &str) -> Option<String> {
        self.used.insert(key.to_owned());
        self.view.main.get(key).map(|v| v.value.clone())
    }

    /// A `quota_warning` value with its service name replaced by the
    /// service's script (`service NAME { executable = script PATH }`), or
    /// kept when it names an absolute path already; `%%` made `%`.
    fn warning_command(&self, value: &str) -> Option<String> {
        let value = value.replace("%%", "%");
        let mut words = value.split_whitespace();
        let spec = words.next()?;
        let program = words.next()?;
        let rest: Vec<&str> = words.collect();
        let path = if program.starts_with('/') {
            program.to_owned()
        } else {
            let exe = self.root.named("service", program)?.get("executable")?;
            let path = exe
                .strip_prefix("script ")
                .unwrap_or(exe)
                .split_whitespace()
                .next()?;
            path.starts_with('/').then(|| path.to_owned())?
        };
        let command = std::iter::once(spec)
            .chain(std::iter::once(path.as_str()))
            .chain(rest)
            .collect::<Vec<_>>()
            .join(" ");
        // Only what mailstow reads (not Dovecot's `-storage=`, fired on
        // the way down).
        crate::config::QuotaWarning::parse(&command)
            .ok()
            .map(|_| command)
    }

    fn plugin(&mut self, key: &str) -> Option<String> {
        self.used_plugin.insert(key.to_owned());
        self.view.plugin.get(key).map(|v| v.value.clone())
    }

    /// Where `key` was set, for the output's comments.
    fn origin(&self, key: &str) -> String {
        let line = self.view.main.get(key).map(|v| v.line).unwrap_or(0);
        format!("{key} (doveconf -n line {line})")
    }

    fn plugin_origin(&self, key: &str) -> String {
        let line = self.view.plugin.get(key).map(|v| v.line).unwrap_or(0);
        format!("plugin {{ {key} }} (line {line})")
    }

    fn not_carried(&mut self, key: &str, why: impl Into<String>) {
        self.conv.not_carried.push((key.to_owned(), why.into()));
    }

    fn note(&mut self, text: impl Into<String>) {
        self.conv.notes.push(text.into());
    }

    fn run(&mut self, version: Option<&str>) {
        self.header(version);
        self.protocols_differ();
        self.top_level();
        self.lmtp();
        let mail_root = self.storage_and_users();
        self.out.set(
            "storage",
            "mail_root",
            s(&mail_root),
            "mail_location / userdb home",
        );
        self.delivery();
        self.sieve();
        self.quota();
        self.namespaces();
        self.rest();
    }

    fn header(&mut self, version: Option<&str>) {
        self.version = version.unwrap_or("unknown").to_owned();
    }

    /// Settings lmtp and lda see differently: mailstow has one value.
    fn protocols_differ(&mut self) {
        let Some((name, other)) = &self.other else {
            return;
        };
        let mut differ = Vec::new();
        for (k, v) in &other.main {
            if self.view.main.get(k).map(|x| &x.value) != Some(&v.value) {
                differ.push(k.clone());
            }
        }
        for (k, v) in &other.plugin {
            if self.view.plugin.get(k).map(|x| &x.value) != Some(&v.value) {
                differ.push(format!("plugin {{ {k} }}"));
            }
        }
        if !differ.is_empty() {
            let msg = format!(
                "protocol {name} {{ }} sets {} differently from protocol {} {{ }}: \
                 mailstow has one value for LMTP and pipe delivery, and takes {}'s",
                differ.join(", "),
                self.primary,
                self.primary
            );
            self.not_carried(&format!("protocol {name}"), msg);
        }
    }

    fn top_level(&mut self) {
        if let Some(h) = self.get("hostname") {
            let o = self.origin("hostname");
            self.out.set("", "hostname", s(&h), &o);
        }
        if let Some(p) = self.get("postmaster_address") {
            if p.is_empty() || p == "postmaster@%d" || p.starts_with("postmaster@%{if;%d") {
                // Dovecot's default, and mailstow's.
            } else if p.contains('%') {
                self.not_carried(
                    "postmaster_address",
                    format!("{p:?}: mailstow takes a fixed address (its default is Dovecot's, postmaster@ the recipient's domain)"),
                );
            } else {
                let o = self.origin("postmaster_address");
                self.out.set("", "postmaster_address", s(&p), &o);
            }
        }
        // mail_uid/mail_gid: the account mail is written as when the
        // userdb gives none.
        if let Some(u) = self.get("mail_uid") {
            let o = self.origin("mail_uid");
            self.out.set("", "user", s(&u), &o);
            if let Some(g) = self.get("mail_gid") {
                let o = self.origin("mail_gid");
                self.out.set("", "group", s(&g), &o);
            }
        } else if self.get("mail_gid").is_some() {
            self.not_carried(
                "mail_gid",
                "mailstow's `group` needs `user` (mail_uid) as well",
            );
        }
    }

    /// `service lmtp { inet_listener / unix_listener }`.
    fn lmtp(&mut self) {
        if let Some(d) = self.get("lmtp_save_to_detail_mailbox") {
            match bool_of(&d) {
                Some(b) => {
                    let o = self.origin("lmtp_save_to_detail_mailbox");
                    self.out.set(
                        "lmtp",
                        "save_to_detail_mailbox",
                        toml::Value::Boolean(b),
                        &o,
                    );
                }
                None => self.not_carried(
                    "lmtp_save_to_detail_mailbox",
                    format!("{d:?} is not yes or no"),
                ),
            }
        }
        let base_dir = self
            .root
            .get("base_dir")
            .unwrap_or(DOVECOT_BASE_DIR)
            .trim_end_matches('/')
            .to_owned();
        let global_listen = self.root.get("listen").unwrap_or("*, ::").to_owned();
        let Some(service) = self.root.named("service", "lmtp") else {
            if self.primary == "lmtp" {
                self.note(format!(
                    "Dovecot's LMTP listened on its default socket {base_dir}/lmtp only: \
                     mailstow listens on 127.0.0.1:24 by default; point the MTA at the \
                     [lmtp] listen you choose"
                ));
            }
            return;
        };
        let mut listen = Vec::new();
        let mut mode = None;
        for l in service.all("inet_listener") {
            let port = l.get("port").unwrap_or("24");
            if port == "0" {
                continue;
            }
            let addrs = l.get("address").unwrap_or(&global_listen).to_owned();
            for a in addrs.split([',', ' ']).filter(|a| !a.is_empty()) {
                let a = match a {
                    "*" => "0.0.0.0".to_owned(),
                    "::" | "[::]" => "[::]".to_owned(),
                    a if a.contains(':') && !a.starts_with('[') => format!("[{a}]"),
                    a => a.to_owned(),
                };
                listen.push(format!("{a}:{port}"));
            }
        }
        for l in service.all("unix_listener") {
            let Some(name) = l.name.clone() else { continue };
            let path = if name.starts_with('/') {
                name
            } else {
                format!("{base_dir}/{name}")
            };
            listen.push(format!("unix:{path}"));
            if let Some(m) = l.get("mode") {
                mode = Some(m.to_owned());
            }
            if l.get("user").is_some() || l.get("group").is_some() {
                self.not_carried(
                    &format!("service lmtp {{ unix_listener {} {{ user group }} }}", l.name.as_deref().unwrap_or("")),
                    "mailstow's sockets belong to the account it runs as; give the MTA access through socket_mode and group membership",
                );
            }
        }
        if !listen.is_empty() {
            let v = toml::Value::Array(listen.iter().map(|a| s(a)).collect());
            self.out
                .set("lmtp", "listen", v, "service lmtp { } listeners");
        }
        if let Some(m) = mode {
            let m = if m.len() < 4 { format!("{m:0>4}") } else { m };
            self.out.set(
                "lmtp",
                "socket_mode",
                s(&m),
                "service lmtp { unix_listener { mode } }",
            );
        }
    }

    /// mail_location, mail_home, userdb and passdb: where mail goes and
    /// who the users are. Returns the mail root.
    fn storage_and_users(&mut self) -> String {
        let mut mail_root: Option<String> = None;
        let userdbs: Vec<&Section> = self.root.all("userdb").collect();
        let passdbs: Vec<&Section> = self.root.all("passdb").collect();
        let userdb = userdbs
            .iter()
            .find(|u| u.get("driver") != Some("prefetch"))
            .copied();
        for extra in userdbs.iter().filter(|u| Some(**u) != userdb) {
            self.not_carried(
                &format!(
                    "userdb {{ driver = {} }}",
                    extra.get("driver").unwrap_or("")
                ),
                "mailstow reads one user source",
            );
        }
        let default_fields: Vec<(String, String)> = userdb
            .and_then(|u| u.get("default_fields"))
            .map(|f| {
                f.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let field = |k: &str| {
            default_fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| v.clone())
        };

        // The home template: userdb default_fields home=, else mail_home.
        let home = field("home").or_else(|| self.get("mail_home"));
        self.used.insert("mail_home".into());
        if let Some(h) = &home {
            mail_root = root_of(h, "");
            if mail_root.is_none() {
                self.note(format!(
                    "home template {h:?} is not {{root}}/%d/%n: mailstow's default home is \
                     {{mail_root}}/{{domain}}/{{localpart}}; users need their home in the user source"
                ));
            }
        }

        // mail_location (or userdb's mail field).
        let location = field("mail").or_else(|| self.get("mail_location"));
        self.used.insert("mail_location".into());
        match location.as_deref() {
            None | Some("") => self.note(
                "mail_location is not set: Dovecot looks for ~/Maildir, then mbox files; \
                 mailstow writes Maildir++ in {home}/Maildir",
            ),
            Some(loc) => {
                if let Some(r) = self.location(loc) {
                    mail_root = Some(r);
                }
            }
        }

        // userdb / passdb.
        let driver = userdb.and_then(|u| u.get("driver")).unwrap_or("");
        let args = userdb.and_then(|u| u.get("args")).unwrap_or("").to_owned();
        for k in [
            "override_fields",
            "result_success",
            "result_failure",
            "result_internalfail",
            "skip",
            "auth_verbose",
        ] {
            if let Some(v) = userdb.and_then(|u| u.get(k)) {
                self.not_carried(
                    &format!("userdb {{ {k} }}"),
                    format!("{v:?}: mailstow has no equivalent"),
                );
            }
        }
        match driver {
            "passwd-file" => {
                let (path, opts) = passwd_file_args(&args);
                match path {
                    Some(p) if !p.contains('%') => {
                        self.out.set(
                            "users",
                            "passwd_file",
                            s(&p),
                            "userdb { driver = passwd-file args }",
                        );
                    }
                    Some(p) => {
                        self.not_carried(
                            "userdb { args }",
                            format!("{p:?}: one file per %-variable is not supported; mailstow reads one passwd-file"),
                        );
                        self.out
                            .set("users", "passwd_file", s(&p.replace('%', "_")), "");
                    }
                    None => {
                        self.not_carried("userdb { args }", format!("{args:?}: no file named"));
                        self.out
                            .set("users", "passwd_file", s("/etc/dovecot/users"), "");
                    }
                }
                for (k, v) in opts {
                    if k == "username_format"
                        && (v == "%u" || v == "%n" || v == "%Lu" || v == "%Ln")
                    {
                        continue;
                    }
                    self.not_carried(
                        &format!("userdb {{ args {k}= }}"),
                        format!("{v:?}: mailstow looks up user@domain, then the local part"),
                    );
                }
            }
            "passwd" => {
                self.out
                    .set("users", "driver", s("system"), "userdb { driver = passwd }");
                let first = self.get("first_valid_uid");
                let uid = first.as_deref().unwrap_or(DOVECOT_FIRST_VALID_UID);
                match uid.parse::<u32>() {
                    Ok(n) => self.out.set(
                        "users",
                        "min_uid",
                        toml::Value::Integer(n.into()),
                        "first_valid_uid (default 500)",
                    ),
                    Err(_) => {
                        self.not_carried("first_valid_uid", format!("{uid:?} is not a number"))
                    }
                }
                if home.is_none() && mail_root.is_none() {
                    mail_root = Some("/var/vmail".into());
                    self.note("[storage] mail_root is required by mailstow but unused with driver = \"system\" (homes come from the accounts); /var/vmail is a placeholder");
                }
            }
            "" => self.not_carried(
                "userdb",
                "none in the configuration; mailstow needs a user source",
            ),
            other => {
                let base_dir = self
                    .root
                    .get("base_dir")
                    .unwrap_or(DOVECOT_BASE_DIR)
                    .trim_end_matches('/');
                self.out.set(
                    "users",
                    "driver",
                    s("dovecot"),
                    &format!("userdb {{ driver = {other} }}"),
                );
                self.out.set(
                    "users",
                    "dovecot_userdb_socket",
                    s(&format!("{base_dir}/auth-userdb")),
                    "base_dir",
                );
                self.out.set(
                    "users",
                    "dovecot_auth_socket",
                    s(&format!("{base_dir}/auth-client")),
                    "base_dir",
                );
                self.note(format!(
                    "userdb driver {other}: mailstow asks Dovecot's auth service on its auth-userdb socket, \
                     so Dovecot's auth must keep running, and the socket's mode must let mailstow's account in \
                     (service auth {{ unix_listener auth-userdb {{ mode user group }} }})"
                ));
                if location
                    .as_deref()
                    .is_some_and(|l| !l.starts_with("maildir:~/Maildir"))
                {
                    self.note("with driver = \"dovecot\" mailstow takes a user's Maildir from the userdb's `mail` field, else {home}/Maildir: return mail= from the userdb when mail_location is something else");
                }
            }
        }
        if driver != "passwd" {
            self.used.insert("first_valid_uid".into());
        }
        for (k, v) in &default_fields {
            match k.as_str() {
                "home" | "mail" => {}
                "uid" => {
                    self.note(format!("userdb default_fields uid={v}: mailstow writes as the passwd-file uid, else as its `user`"));
                    if !self
                        .out
                        .sections
                        .get("")
                        .is_some_and(|l| l.iter().any(|x| x.starts_with("user =")))
                    {
                        self.out
                            .set("", "user", s(v), "userdb { default_fields uid= }");
                        if let Some(g) = field("gid") {
                            self.out
                                .set("", "group", s(&g), "userdb { default_fields gid= }");
                        }
                    }
                }
                "gid" => {}
                "quota_rule" => {
                    // Dovecot's userdb quota_rule replaces plugin quota_rule.
                    self.view.plugin.insert(
                        "quota_rule".into(),
                        Val {
                            value: v.clone(),
                            line: userdb.map(|u| u.line).unwrap_or(0),
                        },
                    );
                }
                _ => self.not_carried(
                    &format!("userdb {{ default_fields {k}= }}"),
                    "mailstow has no per-user default for it",
                ),
            }
        }
        let passdb_drivers: Vec<&str> = passdbs
            .iter()
            .map(|p| p.get("driver").unwrap_or(""))
            .collect();
        if !passdb_drivers.is_empty() {
            let same_file = passdbs.iter().any(|p| {
                p.get("driver") == Some("passwd-file")
                    && passwd_file_args(p.get("args").unwrap_or("")).0 == passwd_file_args(&args).0
            });
            if driver == "passwd-file" && !same_file {
                self.not_carried(
                    "passdb",
                    format!("driver {}: mailstow's ManageSieve checks passwords in the passwd-file (or with driver = \"dovecot\" through Dovecot's auth)", passdb_drivers.join(", ")),
                );
            } else {
                self.conv.not_about_delivery.push(format!(
                    "passdb {{ driver = {} }}",
                    passdb_drivers.join(", ")
                ));
            }
            if passdbs
                .iter()
                .any(|p| p.get("args").is_some_and(|a| a.contains("proxy")))
            {
                self.note("passdb fields proxy/host: mailstow's [proxy] reads them from the passwd-file extra fields");
            }
        }
        let rd = self.get("recipient_delimiter");
        let rd = rd.as_deref().unwrap_or(DOVECOT_RECIPIENT_DELIMITER);
        self.out.set(
            "users",
            "recipient_delimiter",
            s(rd),
            "recipient_delimiter (Dovecot's default is \"+\")",
        );
        if let Some(f) = self.get("auth_username_format") {
            if f != "%Lu" {
                self.not_carried(
                    "auth_username_format",
                    format!("{f:?}: mailstow looks up the address as given (domain lower-cased)"),
                );
            }
        }
        mail_root.unwrap_or_else(|| {
            self.note("no mail root follows from mail_location or the userdb's home: [storage] mail_root = \"/var/vmail\" is a placeholder for users without a home in the user source");
            "/var/vmail".to_owned()
        })
    }

    /// One mail_location; the mail root when it gives one.
    fn location(&mut self, loc: &str) -> Option<String> {
        let (format, rest) = loc.split_once(':').unwrap_or((loc, ""));
        if format != "maildir" {
            self.not_carried(
                "mail_location",
                format!("{loc:?}: the {format} format is not supported: mailstow writes Maildir++ only (convert the mailboxes first, e.g. with doveadm sync -1 maildir:~/Maildir)"),
            );
            return None;
        }
        let mut parts = rest.split(':');
        let path = parts.next().unwrap_or("");
        let mut ok = true;
        for opt in parts {
            let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
            match k.to_ascii_uppercase().as_str() {
                "UTF-8" => self
                    .out
                    .set("storage", "folder_encoding", s("utf8"), "mail_location :UTF-8"),
                "LAYOUT" if v.eq_ignore_ascii_case("maildir++") => {}
                "LAYOUT" => {
                    ok = false;
                    self.not_carried("mail_location", format!("LAYOUT={v} is not supported: mailstow writes Maildir++ folders (.Name)"));
                }
                "INDEX" | "VOLATILEDIR" | "ITERINDEX" | "NO-NOSELECT" => {}
                "CONTROL" => self.note(format!("mail_location CONTROL={v}: Dovecot keeps dovecot-uidlist apart; keep [index] uids = \"own\" (the default)")),
                _ => {
                    ok = false;
                    self.not_carried("mail_location", format!("option {opt} is not supported"));
                }
            }
        }
        if !ok {
            return None;
        }
        if path == "~/Maildir" || path == "~/Maildir/" {
            return None; // the home decides
        }
        if let Some(r) = root_of(path, "/Maildir") {
            return Some(r);
        }
        if let Some(r) = root_of(path, "") {
            self.not_carried(
                "mail_location",
                format!(
                    "{loc:?}: mailstow keeps the Maildir in {{home}}/Maildir (home {r}/%d/%n): move each \
                     Maildir one level down (/Maildir) and use maildir:~/Maildir with home={r}/%d/%n, or \
                     the written configuration delivers to {r}/DOMAIN/USER/Maildir"
                ),
            );
            return Some(r);
        }
        self.not_carried(
            "mail_location",
            format!("{loc:?}: mailstow's Maildir is {{home}}/Maildir with the home {{mail_root}}/{{domain}}/{{localpart}} unless the user source names one"),
        );
        None
    }

    fn delivery(&mut self) {
        if let Some(h) = self.get("lda_original_recipient_header") {
            let o = self.origin("lda_original_recipient_header");
            self.out
                .set("delivery", "original_recipient_header", s(&h), &o);
        }
        if let Some(t) = self.get("mail_temp_dir") {
            let o = self.origin("mail_temp_dir");
            self.out.set("delivery", "spool_dir", s(&t), &o);
        }
        if let Some(f) = self.get("quota_full_tempfail") {
            match bool_of(&f) {
                Some(true) => {
                    let o = self.origin("quota_full_tempfail");
                    self.out.set("quota", "over_quota", s("temporary"), &o);
                }
                Some(false) => {}
                None => self.not_carried("quota_full_tempfail", format!("{f:?} is not yes or no")),
            }
        }
        if let Some(v) = self.get("lmtp_rcpt_check_quota") {
            if bool_of(&v) != Some(true) {
                self.note("lmtp_rcpt_check_quota = no: mailstow refuses at RCPT a user already over quota (as with yes); a message that does not fit is refused after DATA either way");
            }
        } else {
            self.note("lmtp_rcpt_check_quota (Dovecot's default no): mailstow refuses at RCPT a user already over quota, as with yes; the message is refused either way");
        }
        if let Some(v) = self.get("lmtp_proxy") {
            if bool_of(&v) == Some(true) {
                let o = self.origin("lmtp_proxy");
                self.out
                    .set("proxy", "enabled", toml::Value::Boolean(true), &o);
            }
        }
        if let Some(p) = self.get("sendmail_path") {
            let mut words = p.split_whitespace();
            if let Some(bin) = words.next() {
                if bin != "/usr/sbin/sendmail" {
                    let o = self.origin("sendmail_path");
                    self.out.set("outbound", "sendmail", s(bin), &o);
                }
                if words.next().is_some() {
                    self.not_carried(
                        "sendmail_path",
                        format!("{p:?}: mailstow runs sendmail with its own arguments"),
                    );
                }
            }
        }
        if let Some(h) = self.get("submission_host") {
            if !h.is_empty() {
                let hp = if h
                    .rsplit_once(':')
                    .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                {
                    h.clone()
                } else {
                    format!("{h}:25")
                };
                let o = self.origin("submission_host");
                self.out.set("outbound", "smtp", s(&hp), &o);
            }
        }
        let autocreate = self.get("lda_mailbox_autocreate").map(|v| bool_of(&v));
        match autocreate {
            Some(Some(b)) => {
                let o = self.origin("lda_mailbox_autocreate");
                self.out
                    .set("sieve", "autocreate", toml::Value::Boolean(b), &o);
            }
            Some(None) => self.not_carried("lda_mailbox_autocreate", "not yes or no"),
            None => {}
        }
        if let Some(v) = self.get("lda_mailbox_autosubscribe") {
            if bool_of(&v) != Some(true) && autocreate == Some(Some(true)) {
                self.not_carried(
                    "lda_mailbox_autosubscribe",
                    "no: mailstow always subscribes a folder it creates ([storage] subscriptions)",
                );
            }
        } else if autocreate == Some(Some(true)) {
            self.note("lda_mailbox_autosubscribe (default no): mailstow subscribes the folders it creates");
        }
    }

    fn sieve(&mut self) {
        let plugins = self.view.plugins();
        let enabled = plugins.iter().any(|p| p == "sieve");
        if !enabled {
            self.out.set(
                "sieve",
                "enabled",
                toml::Value::Boolean(false),
                &format!("mail_plugins without sieve (for {})", self.primary),
            );
            let keys: Vec<String> = self
                .view
                .plugin
                .keys()
                .filter(|k| k.starts_with("sieve"))
                .cloned()
                .collect();
            for k in keys {
                self.used_plugin.insert(k.clone());
                self.conv.not_about_delivery.push(format!(
                    "plugin {{ {k} }} (Sieve is not in mail_plugins for {}: Dovecot runs no scripts at delivery)",
                    self.primary
                ));
            }
            return;
        }
        if let Some(loc) = self.plugin("sieve") {
            self.sieve_location(&loc);
        }
        if let Some(d) = self.plugin("sieve_dir") {
            match user_template(&d) {
                Some(t) => {
                    let o = self.plugin_origin("sieve_dir");
                    self.out.set("sieve", "user_dir", s(&t), &o)
                }
                None => self.not_carried(
                    "plugin { sieve_dir }",
                    format!("{d:?}: mailstow expands %h %u %d %n only"),
                ),
            }
        }
        for (which, key) in [("before", "sieve_before"), ("after", "sieve_after")] {
            let mut paths = Vec::new();
            for n in 1.. {
                let k = if n == 1 {
                    key.to_owned()
                } else {
                    format!("{key}{n}")
                };
                let Some(v) = self.plugin(&k) else { break };
                let p = v.strip_prefix("file:").unwrap_or(&v);
                let p = p.split(';').next().unwrap_or("");
                if p.is_empty() {
                    continue;
                }
                if !p.starts_with('/') {
                    self.not_carried(
                        &format!("plugin {{ {k} }}"),
                        format!("{v:?}: mailstow's admin scripts are files named by absolute path"),
                    );
                    continue;
                }
                if p.ends_with('/') {
                    self.note(format!("plugin {{ {k} = {v} }} is a directory: list its scripts in [sieve] {which} in the order Dovecot runs them (by name)"));
                }
                paths.push(s(p));
            }
            if !paths.is_empty() {
                self.out.set(
                    "sieve",
                    which,
                    toml::Value::Array(paths),
                    &format!("plugin {{ {key}, {key}2, ... }}"),
                );
            }
        }
        let global = self
            .plugin("sieve_global")
            .or_else(|| self.plugin("sieve_global_dir"));
        if let Some(g) = global {
            let p = g.strip_prefix("file:").unwrap_or(&g);
            let p = p.split(';').next().unwrap_or("");
            if p.starts_with('/') {
                self.out
                    .set("sieve", "global_dir", s(p), "plugin { sieve_global }");
            } else {
                self.not_carried(
                    "plugin { sieve_global }",
                    format!("{g:?}: mailstow reads global scripts from a directory"),
                );
            }
        }
        for (key, to) in [
            ("sieve_max_redirects", "max_redirects"),
            ("sieve_max_actions", "max_actions"),
            ("sieve_include_max_nesting_depth", "max_include_depth"),
        ] {
            if let Some(v) = self.plugin(key) {
                match v.trim().parse::<u32>() {
                    Ok(n) => {
                        let o = self.plugin_origin(key);
                        self.out
                            .set("sieve", to, toml::Value::Integer(n.into()), &o)
                    }
                    Err(_) => self.not_carried(
                        &format!("plugin {{ {key} }}"),
                        format!("{v:?} is not a number"),
                    ),
                }
            }
        }
        if let Some(v) = self.plugin("sieve_max_script_size") {
            match size_of(&v).filter(|n| *n <= 64 << 20) {
                Some(n) => {
                    let o = self.plugin_origin("sieve_max_script_size");
                    self.out.set(
                        "sieve",
                        "max_script_size",
                        toml::Value::Integer(n as i64),
                        &o,
                    )
                }
                None => self.not_carried(
                    "plugin { sieve_max_script_size }",
                    format!("{v:?}: not a size up to 64M"),
                ),
            }
        }
        let mut periods = Vec::new();
        for (key, to) in [
            ("sieve_vacation_min_period", "vacation_min_period"),
            ("sieve_vacation_default_period", "vacation_default_period"),
            ("sieve_vacation_max_period", "vacation_max_period"),
        ] {
            if let Some(v) = self.plugin(key) {
                match secs_of(&v).and_then(|n| i64::try_from(n).ok()) {
                    Some(n) => periods.push((key, to, n)),
                    None => self.not_carried(
                        &format!("plugin {{ {key} }}"),
                        format!("{v:?} is not a time interval"),
                    ),
                }
            }
        }
        let get = |to: &str, d: i64| periods.iter().find(|p| p.1 == to).map(|p| p.2).unwrap_or(d);
        let (min, def, max) = (
            get("vacation_min_period", 86_400),
            get("vacation_default_period", 604_800),
            get("vacation_max_period", 7_776_000),
        );
        if min <= def && def <= max {
            for (key, to, n) in periods {
                let o = self.plugin_origin(key);
                self.out.set("sieve", to, toml::Value::Integer(n), &o);
            }
        } else if !periods.is_empty() {
            self.not_carried(
                "plugin { sieve_vacation_*_period }",
                "min <= default <= max does not hold: mailstow refuses it",
            );
        }
        if let Some(ext) = self.plugin("sieve_extensions") {
            for e in ext.split_whitespace() {
                match e {
                    "+editheader" => {
                        let o = self.plugin_origin("sieve_extensions");
                        self.out.set("sieve", "user_editheader", toml::Value::Boolean(true), &o)
                    }
                    e if e.starts_with('-') => self.not_carried(
                        "plugin { sieve_extensions }",
                        format!("{e}: mailstow cannot take an extension away from users"),
                    ),
                    e => self.not_carried(
                        "plugin { sieve_extensions }",
                        format!("{e}: mailstow offers sieve-rs's extensions, editheader for users through user_editheader; not this one"),
                    ),
                }
            }
        }
        if let Some(ext) = self.plugin("sieve_global_extensions") {
            for e in ext.split_whitespace().filter(|e| *e != "+editheader") {
                self.not_carried(
                    "plugin { sieve_global_extensions }",
                    format!("{e}: not offered (admin scripts have editheader always; the vnd.dovecot extensions are Pigeonhole's)"),
                );
            }
        }
        if let Some(v) = self.plugin("sieve_redirect_envelope_from") {
            let policy = match v.as_str() {
                "sender" => Some("sender"),
                "recipient" | "orig_recipient" => Some("recipient"),
                "<>" => Some("null"),
                _ => None,
            };
            match policy {
                Some(p) => {
                    let o = self.plugin_origin("sieve_redirect_envelope_from");
                    self.out.set("outbound", "redirect_sender", s(p), &o)
                }
                None => self.not_carried(
                    "plugin { sieve_redirect_envelope_from }",
                    format!("{v:?}: mailstow has sender, recipient or null"),
                ),
            }
        }
        if let Some(v) = self.plugin("sieve_vacation_send_from_recipient") {
            if bool_of(&v) == Some(true) {
                let o = self.plugin_origin("sieve_vacation_send_from_recipient");
                self.out
                    .set("outbound", "vacation_sender", s("recipient"), &o);
            }
        }
        for (key, kind) in [("sieve_spamtest", "spam"), ("sieve_virustest", "virus")] {
            let header = self.plugin(&format!("{key}_status_header"));
            let ty = self.plugin(&format!("{key}_status_type"));
            let max = self.plugin(&format!("{key}_max_value"));
            self.used_plugin.insert(format!("{key}_max_header"));
            self.used_plugin.insert(format!("{key}_text_value1"));
            let Some(h) = header else { continue };
            if h.contains(':') {
                self.not_carried(
                    &format!("plugin {{ {key}_status_header }}"),
                    format!("{h:?}: a regular expression after the header name is not supported"),
                );
                continue;
            }
            self.out.set(
                "sieve",
                &format!("{kind}_header"),
                s(&h),
                &format!("plugin {{ {key}_status_header }}"),
            );
            match ty.as_deref() {
                None | Some("score") => {}
                Some("strlen") => self
                    .out
                    .set("sieve", &format!("{kind}_type"), s("strlen"), ""),
                Some(t) => self.not_carried(
                    &format!("plugin {{ {key}_status_type }}"),
                    format!("{t:?}: mailstow reads score, strlen or yesno"),
                ),
            }
            if let Some(m) = max.and_then(|m| m.trim().parse::<f64>().ok()) {
                self.out
                    .set("sieve", &format!("{kind}_max"), toml::Value::Float(m), "");
            }
        }
        if let Some(v) = self.plugin("sieve_quota_max_scripts") {
            if let Ok(n) = v.trim().parse::<u32>() {
                self.out.set(
                    "managesieve",
                    "max_scripts",
                    toml::Value::Integer(n.into()),
                    "plugin { sieve_quota_max_scripts }",
                );
            }
        }
        if let Some(v) = self.plugin("sieve_quota_max_storage") {
            if let Some(n) = size_of(&v).and_then(|n| i64::try_from(n).ok()) {
                self.out.set(
                    "managesieve",
                    "max_storage",
                    toml::Value::Integer(n),
                    "plugin { sieve_quota_max_storage }",
                );
            }
        }
    }

    fn sieve_location(&mut self, loc: &str) {
        let (kind, rest) = match loc.split_once(':') {
            Some((k, r)) if !k.contains('/') && !k.starts_with('~') => (k, r),
            _ => ("file", loc),
        };
        if kind != "file" {
            self.not_carried(
                "plugin { sieve }",
                format!("{loc:?}: the {kind} script storage is not supported (files only)"),
            );
            return;
        }
        let mut parts = rest.split(';');
        let path = parts.next().unwrap_or("");
        let mut active = None;
        for p in parts {
            match p.split_once('=') {
                Some(("active", a)) => active = Some(a.to_owned()),
                Some((k, _)) if k == "name" || k == "bindir" => {}
                _ => self.not_carried("plugin { sieve }", format!("option {p:?} is not supported")),
            }
        }
        match active {
            // The old form: the location is the script itself.
            None => match user_template(path) {
                Some(t) => self.out.set("sieve", "script", s(&t), "plugin { sieve }"),
                None => self.not_carried(
                    "plugin { sieve }",
                    format!("{path:?}: mailstow expands %h %u %d %n only"),
                ),
            },
            Some(a) => {
                match user_template(&a) {
                    Some(t) => {
                        self.out
                            .set("sieve", "script", s(&t), "plugin { sieve = ...;active= }")
                    }
                    None => self.not_carried(
                        "plugin { sieve }",
                        format!("active={a}: mailstow expands %h %u %d %n only"),
                    ),
                }
                match user_template(path) {
                    Some(t) => {
                        self.out
                            .set("sieve", "user_dir", s(&t), "plugin { sieve = file:... }")
                    }
                    None => self.not_carried(
                        "plugin { sieve }",
                        format!("{path:?}: mailstow expands %h %u %d %n only"),
                    ),
                }
            }
        }
    }

    fn quota(&mut self) {
        let enabled = self.view.plugins().iter().any(|p| p == "quota");
        let keys: Vec<String> = self
            .view
            .plugin
            .keys()
            .filter(|k| k.starts_with("quota"))
            .cloned()
            .collect();
        if !enabled {
            for k in keys {
                self.used_plugin.insert(k.clone());
                self.conv.not_about_delivery.push(format!(
                    "plugin {{ {k} }} (quota is not in mail_plugins for {}: Dovecot enforces no quota at delivery)",
                    self.primary
                ));
            }
            return;
        }
        if let Some(q) = self.plugin("quota") {
            let backend = q.split(':').next().unwrap_or("");
            if backend != "maildir" {
                self.note(format!("plugin {{ quota = {q} }}: mailstow counts with Maildir++'s maildirsize (Dovecot's maildir backend); the rules are the same"));
            }
        }
        if self.plugin("quota2").is_some() {
            self.not_carried("plugin { quota2 }", "mailstow has one quota root");
        }
        let mut rules: Vec<String> = Vec::new();
        for n in 1.. {
            let k = if n == 1 {
                "quota_rule".to_owned()
            } else {
                format!("quota_rule{n}")
            };
            let Some(r) = self.plugin(&k) else { break };
            if r.is_empty() {
                break;
            }
            let mut check = mailstow_maildir::quota::Rules::default();
            for earlier in &rules {
                let _ = check.apply(earlier);
            }
            match check.apply(&r) {
                Ok(()) => rules.push(r),
                Err(e) => self.not_carried(&format!("plugin {{ {k} }}"), format!("{r:?}: {e}")),
            }
        }
        if !rules.is_empty() {
            let v = toml::Value::Array(rules.iter().map(|r| s(r)).collect());
            self.out.set(
                "quota",
                "rules",
                v,
                "plugin { quota_rule, quota_rule2, ... }",
            );
        }
        let mut warnings = Vec::new();
        for n in 1.. {
            let k = if n == 1 {
                "quota_warning".to_owned()
            } else {
                format!("quota_warning{n}")
            };
            let Some(w) = self.plugin(&k) else { break };
            warnings.push((k, w));
        }
        // Dovecot runs a warning's first word as a service (`quota-warning`,
        // `executable = script /path`); mailstow runs the script itself.
        let mut carried = Vec::new();
        for (k, w) in std::mem::take(&mut warnings) {
            match self.warning_command(&w) {
                Some(c) => carried.push(c),
                None => self.not_carried(
                    &format!("plugin {{ {k} }}"),
                    format!("{w:?}: its command is neither an absolute path nor a service with `executable = script PATH`"),
                ),
            }
        }
        if !carried.is_empty() {
            let v = toml::Value::Array(carried.iter().map(|w| s(w)).collect());
            self.out.set(
                "quota",
                "warnings",
                v,
                "plugin { quota_warning, quota_warning2, ... }",
            );
        }
        if let Some(v) = self.plugin("quota_max_mail_size") {
            match size_of(&v)
                .filter(|n| *n > 0)
                .and_then(|n| i64::try_from(n).ok())
            {
                Some(n) => self.out.set(
                    "limits",
                    "max_message_size",
                    toml::Value::Integer(n),
                    "plugin { quota_max_mail_size }",
                ),
                None => self.not_carried(
                    "plugin { quota_max_mail_size }",
                    format!("{v:?} is not a size"),
                ),
            }
        }
    }

    /// The inbox namespace: special-use folders carry over to [index].
    fn namespaces(&mut self) {
        let mut special = toml::Table::new();
        for ns in self.root.all("namespace") {
            let name = ns.name.clone().unwrap_or_default();
            let inbox = ns.get("inbox").and_then(bool_of).unwrap_or(false);
            if !inbox {
                self.conv
                    .not_about_delivery
                    .push(format!("namespace {name}"));
                continue;
            }
            if let Some(p) = ns.get("prefix").filter(|p| !p.is_empty()) {
                self.not_carried(
                    &format!("namespace {name} {{ prefix }}"),
                    format!("{p:?}: mailstow's Sieve folder names have no prefix"),
                );
            }
            if let Some(sep) = ns.get("separator").filter(|s| !s.is_empty() && *s != ".") {
                self.not_carried(
                    &format!("namespace {name} {{ separator }}"),
                    format!(
                        "{sep:?}: mailstow's folder names (fileinto, :detail) are separated by '.'"
                    ),
                );
            }
            for mb in ns.all("mailbox") {
                let Some(folder) = mb.name.clone() else {
                    continue;
                };
                let Some(su) = mb.get("special_use") else {
                    continue;
                };
                let mut uses = su.split_whitespace();
                if let Some(first) = uses.next() {
                    if crate::config::SPECIAL_USES
                        .iter()
                        .any(|u| u.eq_ignore_ascii_case(first))
                    {
                        special.insert(folder.clone(), s(first));
                    }
                }
                if uses.next().is_some() {
                    self.not_carried(
                        &format!("namespace {name} {{ mailbox {folder} }}"),
                        "more than one special_use: mailstow's index takes the first",
                    );
                }
                if let Some(a) = mb.get("auto").filter(|a| *a != "no") {
                    self.conv.not_about_delivery.push(format!("namespace {name} {{ mailbox {folder} {{ auto = {a} }} }} (IMAP creates it)"));
                }
            }
        }
        if !special.is_empty() {
            self.out.set(
                "index",
                "special_use",
                toml::Value::Table(special),
                "namespace inbox { mailbox { special_use } }",
            );
        }
    }

    /// Everything not looked at yet: not about delivery, or not carried.
    fn rest(&mut self) {
        if let Some(p) = self.get("mail_plugins") {
            let others: Vec<&str> = p
                .split_whitespace()
                .filter(|p| *p != "quota" && *p != "sieve")
                .collect();
            let why = if others.is_empty() {
                "mailstow has no plugins; quota and Sieve are built in".to_owned()
            } else {
                format!(
                    "mailstow has no plugins; quota and Sieve are built in, {} have no equivalent",
                    others.join(" ")
                )
            };
            self.not_carried("mail_plugins", why);
        }
        self.log_format();
        const NOT_CARRIED: &[(&str, &str)] = &[
            ("lda_mailbox_autocreate", ""),
            (
                "lmtp_user_concurrency_limit",
                "mailstow limits connections ([limits]), not deliveries per user",
            ),
            ("lmtp_address_translate", "no equivalent"),
            ("lmtp_client_workarounds", "no equivalent"),
            (
                "lmtp_add_received_header",
                "mailstow always adds its Received header",
            ),
            (
                "lmtp_hdr_delivery_address",
                "mailstow has no setting for the Delivered-To address",
            ),
            (
                "lmtp_verbose_replies",
                "mailstow's replies name the cause already",
            ),
            (
                "rejection_subject",
                "mailstow's rejection messages are fixed",
            ),
            (
                "rejection_reason",
                "mailstow's rejection messages are fixed",
            ),
            (
                "mail_fsync",
                "mailstow always fsyncs the message and the directory",
            ),
            ("quota_full_tempfail", ""),
            ("mail_save_crlf", "mailstow stores line ends as received"),
        ];
        let keys: Vec<String> = self.view.main.keys().cloned().collect();
        for k in keys {
            if self.used.contains(&k) {
                continue;
            }
            if let Some((_, why)) = NOT_CARRIED.iter().find(|(n, _)| *n == k) {
                if !why.is_empty() {
                    self.not_carried(&k, *why);
                }
            } else if not_about_delivery(&k) {
                self.conv.not_about_delivery.push(k);
            } else {
                let v = self
                    .view
                    .main
                    .get(&k)
                    .map(|v| v.value.clone())
                    .unwrap_or_default();
                self.not_carried(&k, format!("{v:?}: mailstow has no equivalent"));
            }
        }
        let pkeys: Vec<String> = self.view.plugin.keys().cloned().collect();
        for k in pkeys {
            if self.used_plugin.contains(&k) {
                continue;
            }
            if k.starts_with("sieve") || k.starts_with("quota") {
                let v = self
                    .view
                    .plugin
                    .get(&k)
                    .map(|v| v.value.clone())
                    .unwrap_or_default();
                self.not_carried(
                    &format!("plugin {{ {k} }}"),
                    format!("{v:?}: mailstow has no equivalent"),
                );
            } else {
                self.conv
                    .not_about_delivery
                    .push(format!("plugin {{ {k} }}"));
            }
        }
        for sec in &self.root.sections {
            let label = match &sec.name {
                Some(n) => format!("{} {n}", sec.kind),
                None => sec.kind.clone(),
            };
            match sec.kind.as_str() {
                "plugin" | "passdb" | "userdb" | "namespace" => {}
                "protocol" if matches!(sec.name.as_deref(), Some("lmtp" | "lda")) => {}
                "service" if sec.name.as_deref() == Some("lmtp") => {}
                "protocol" | "service" | "dict" | "ssl_client" | "metric" | "event_exporter" => {
                    self.conv.not_about_delivery.push(label)
                }
                "local" | "remote" | "local_name" => {
                    self.not_carried(&label, "settings by connection address are not supported")
                }
                _ => self.not_carried(&label, "mailstow has no equivalent"),
            }
        }
    }

    fn finish(mut self) -> Conversion {
        let header = format!(
            "# mailstow configuration written by `mailstow config from-dovecot`\n\
             # from the output of `doveconf -n` (Dovecot {}). Check it with\n\
             # `mailstow config check`. What was not carried over was printed on\n\
             # stderr; docs/from-dovecot.md lists every Dovecot delivery setting.\n",
            self.version
        );
        self.conv.toml = self.out.render(&header);
        self.conv
    }
}

/// `[scheme=X] [username_format=Y] PATH` of a passwd-file driver.
fn passwd_file_args(args: &str) -> (Option<String>, Vec<(String, String)>) {
    let mut path = None;
    let mut opts = Vec::new();
    for w in args.split_whitespace() {
        match w.split_once('=') {
            Some((k, v)) if path.is_none() && !w.starts_with('/') => {
                opts.push((k.to_owned(), v.to_owned()))
            }
            _ => path = Some(w.to_owned()),
        }
    }
    (path, opts)
}

#[cfg(test)]
mod tests;
