//! Unit tests of the converter on doveconf -n texts: Debian 12's default
//! and a virtual-hosting setup (tests/dovecot-configs/), each converted
//! output loaded by the configuration parser. Must not run doveconf or
//! touch the system.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::config::{Config, OverQuota};

const DEBIAN: &str = include_str!("../../../tests/dovecot-configs/debian12-default.conf");
const VIRTUAL: &str = include_str!("../../../tests/dovecot-configs/virtual-sql.conf");

fn load(toml: &str) -> Config {
    Config::from_toml(
        toml,
        Path::new("converted.toml"),
        Path::new("/etc/mailstow"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{toml}"))
}

fn named<'a>(c: &'a Conversion, key: &str) -> Option<&'a str> {
    c.not_carried
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, why)| why.as_str())
}

#[test]
fn debians_default_names_mbox_unsupported_and_maps_system_users() {
    let c = convert(DEBIAN).unwrap();
    let why = named(&c, "mail_location").expect("mail_location named");
    assert!(
        why.contains("mbox") && why.contains("not supported"),
        "{why}"
    );
    let cfg = load(&c.toml);
    assert!(matches!(&cfg.users.source, crate::users::Source::System(s) if s.min_uid == 500));
    assert_eq!(cfg.users.recipient_delimiter, "+");
    // Debian's Sieve plugin setting is there, but sieve is not in
    // mail_plugins: Dovecot runs no scripts at delivery.
    assert!(!cfg.sieve.enabled);
    assert!(c.toml.contains("Dovecot 2.3.19.1"), "{}", c.toml);
    let nad = c.not_about_delivery.join("|");
    for k in [
        "ssl_cert",
        "protocols",
        "managesieve_sieve_capability",
        "passdb",
    ] {
        assert!(nad.contains(k), "{k} not in {nad}");
    }
    // Each setting is named once, in one list.
    assert_eq!(nad.matches("ssl_cert").count(), 1);
    assert!(named(&c, "ssl_cert").is_none());
}

#[test]
fn a_virtual_setup_carries_over_users_storage_sieve_and_quota() {
    let c = convert(VIRTUAL).unwrap();
    let cfg = load(&c.toml);
    assert_eq!(cfg.hostname, "mx.example.org");
    assert_eq!(
        cfg.postmaster_address.as_deref(),
        Some("postmaster@example.org")
    );
    assert_eq!(cfg.storage.mail_root, Path::new("/var/vmail"));
    assert_eq!(
        cfg.storage.folder_encoding,
        crate::config::FolderEncoding::Utf8
    );
    match &cfg.users.source {
        crate::users::Source::Dovecot(d) => {
            assert_eq!(d.userdb_socket, Path::new("/run/dovecot/auth-userdb"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cfg.users.recipient_delimiter, "+-");
    assert!(cfg.lmtp.save_to_detail_mailbox);
    assert_eq!(
        cfg.lmtp.listen,
        [crate::config::ListenAddr::Unix(
            "/var/spool/postfix/private/dovecot-lmtp".into()
        )]
    );
    assert_eq!(cfg.lmtp.socket_mode, 0o600);
    assert_eq!(
        cfg.delivery.original_recipient_header.as_deref(),
        Some("X-Original-To")
    );
    assert!(cfg.sieve.enabled && cfg.sieve.autocreate && cfg.sieve.user_editheader);
    assert_eq!(cfg.sieve.script, "%h/.dovecot.sieve");
    assert_eq!(cfg.sieve.user_dir, "%h/sieve");
    assert_eq!(cfg.sieve.before.len(), 2);
    assert_eq!(
        cfg.sieve.after,
        [Path::new("/etc/dovecot/sieve/after.sieve")]
    );
    assert_eq!(
        cfg.sieve.global_dir.as_deref(),
        Some(Path::new("/etc/dovecot/sieve/global"))
    );
    assert_eq!(cfg.sieve.max_redirects, 8);
    assert_eq!(cfg.sieve.vacation_min_period.as_secs(), 3600);
    assert_eq!(cfg.sieve.spam.as_ref().map(|s| s.max), Some(5.0));
    assert_eq!(cfg.quota.rules, ["*:storage=1G", "Trash:storage=+100M"]);
    assert_eq!(cfg.quota.over_quota, OverQuota::Temporary);
    assert_eq!(
        cfg.index.special_use.get("Archive").map(String::as_str),
        Some("\\Archive")
    );
    // What could not come along, each with its reason.
    assert!(named(&c, "mail_plugins").unwrap().contains("zlib"));
    assert!(named(&c, "mail_plugins")
        .unwrap()
        .contains("mailstow has no plugins; quota"));
    let c2 = convert("deliver_log_format = %$ from=%f vsize=%w\n").unwrap();
    assert!(named(&c2, "deliver_log_format").unwrap().contains("%w"));
    let c3 = convert("deliver_log_format = msgid=%m: %$ %{delivery_time}\n").unwrap();
    assert!(named(&c3, "deliver_log_format").is_none());
    assert!(
        c3.toml
            .contains("delivery_format = \"msgid=%m: %$ %{delivery_time}\""),
        "{}",
        c3.toml
    );
    assert!(named(&c, "plugin { quota_warning }").is_some());
    assert!(named(&c, "plugin { quota_warning2 }").is_some());
    assert!(named(&c, "plugin { quota_grace }").is_some());
    assert!(named(&c, "plugin { sieve_extensions }")
        .unwrap()
        .contains("vnd.dovecot.pipe"));
    assert!(c.not_about_delivery.iter().any(|k| k == "service auth"));
    assert!(c
        .not_about_delivery
        .iter()
        .any(|k| k == "imap_idle_notify_interval"));
}

#[test]
fn maildir_layouts_map_where_mailstows_layout_can_hold_them() {
    let base = "protocols = lmtp\nuserdb {\n  driver = passwd-file\n  args = username_format=%u /etc/mail/users\n  default_fields = home=/srv/mail/%d/%n\n}\n";
    let c = convert(&format!("mail_location = maildir:~/Maildir\n{base}")).unwrap();
    let cfg = load(&c.toml);
    assert_eq!(cfg.storage.mail_root, Path::new("/srv/mail"));
    assert_eq!(cfg.users.passwd_file(), Some(Path::new("/etc/mail/users")));
    assert!(named(&c, "mail_location").is_none(), "{:?}", c.not_carried);

    // The Maildir directly in the user's directory: named, not hidden.
    let c = convert(&format!("mail_location = maildir:/srv/vmail/%d/%n\n{base}")).unwrap();
    assert!(named(&c, "mail_location").unwrap().contains("/Maildir"));
    load(&c.toml);
    for (loc, what) in [
        ("sdbox:~/dbox", "sdbox"),
        ("mdbox:~/mdbox", "mdbox"),
        ("maildir:~/Maildir:LAYOUT=fs", "LAYOUT=fs"),
    ] {
        let c = convert(&format!("mail_location = {loc}\n{base}")).unwrap();
        let why = named(&c, "mail_location").unwrap_or_else(|| panic!("{loc}"));
        assert!(why.contains(what), "{loc}: {why}");
        load(&c.toml);
    }
}

#[test]
fn protocol_lda_differences_are_named_and_lmtp_wins() {
    let text = "protocols = lmtp\nmail_location = maildir:~/Maildir\n\
        userdb {\n  driver = passwd-file\n  args = /etc/users\n}\n\
        protocol lmtp {\n  mail_plugins = sieve\n  lda_mailbox_autocreate = yes\n}\n\
        protocol lda {\n  mail_plugins = sieve\n  lda_mailbox_autocreate = no\n}\n";
    let c = convert(text).unwrap();
    assert!(load(&c.toml).sieve.autocreate);
    let why = named(&c, "protocol lda").unwrap();
    assert!(why.contains("lda_mailbox_autocreate"), "{why}");
}

#[test]
fn quota_only_counts_when_the_plugin_is_loaded_for_delivery() {
    let text = "userdb {\n  driver = passwd-file\n  args = /etc/users\n}\n\
        protocol imap {\n  mail_plugins = quota imap_quota\n}\n\
        plugin {\n  quota = maildir\n  quota_rule = *:storage=1M\n}\n";
    let c = convert(text).unwrap();
    assert!(load(&c.toml).quota.rules.is_empty());
    assert!(c
        .not_about_delivery
        .iter()
        .any(|k| k.contains("quota_rule")));
    // A rule mailstow refuses is named, never written.
    let text = text
        .replace("protocol imap", "protocol lda")
        .replace("*:storage=1M", "*:storage=1M\n  quota_rule2 = ?:storage=2M");
    let c = convert(&text).unwrap();
    assert_eq!(load(&c.toml).quota.rules, ["*:storage=1M"]);
    assert!(named(&c, "plugin { quota_rule2 }").is_some());
}

#[test]
fn a_text_that_is_not_doveconf_output_is_an_error_naming_the_line() {
    let e = convert("mail_location = maildir:~/Maildir\nplugin {\n").unwrap_err();
    assert_eq!(e.line, 2);
}

proptest! {
    #[test]
    fn conversion_never_panics(text in "(?s).{0,300}") {
        let _ = convert(&text);
    }

    #[test]
    fn conversion_of_settings_dovecot_knows_never_panics_and_loads(
        pairs in proptest::collection::vec(
            (
                prop_oneof![
                    Just("mail_location"), Just("recipient_delimiter"), Just("hostname"),
                    Just("lda_mailbox_autocreate"), Just("quota_full_tempfail"),
                    Just("postmaster_address"), Just("lmtp_save_to_detail_mailbox"),
                    Just("mail_plugins"), Just("lda_original_recipient_header"),
                ],
                "[ -~]{0,20}",
            ),
            0..8,
        )
    ) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let text = format!("{text}userdb {{\n  driver = passwd-file\n  args = /etc/users\n}}\n");
        let c = convert(&text).unwrap();
        // The output is TOML, whatever went in (it may be refused by the
        // checks, e.g. a recipient_delimiter with '@').
        prop_assert!(c.toml.parse::<toml::Table>().is_ok(), "{}", c.toml);
    }
}

#[test]
fn quota_warnings_carry_over_with_the_services_script_in_place_of_its_name() {
    let text = "mail_location = maildir:~/Maildir\n\
                userdb {\n  args = /etc/dovecot/users\n  driver = passwd-file\n}\n\
                protocol lmtp {\n  mail_plugins = quota\n}\n\
                plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=1G\n  \
                quota_warning = storage=95%% quota-warning 95 %u\n  \
                quota_warning2 = storage=80%% /usr/local/bin/warn 80 %u\n  \
                quota_warning3 = storage=50%% nowhere 50 %u\n  \
                quota_warning4 = -storage=100%% quota-warning below %u\n}\n\
                service quota-warning {\n  executable = script /usr/local/bin/quota-warning.sh\n}\n";
    let c = convert(text).unwrap();
    let cfg = load(&c.toml);
    let got: Vec<&str> = cfg.quota.warnings.iter().map(|w| w.text.as_str()).collect();
    assert_eq!(
        got,
        [
            "storage=95% /usr/local/bin/quota-warning.sh 95 %u",
            "storage=80% /usr/local/bin/warn 80 %u"
        ],
        "{}",
        c.toml
    );
    assert!(named(&c, "plugin { quota_warning3 }").is_some());
    assert!(named(&c, "plugin { quota_warning4 }").is_some());
}
