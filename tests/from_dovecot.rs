//! `mailstow config from-dovecot` end to end: Debian 12's default
//! configuration and the configurations our tests run Dovecot with (the
//! IMAP reader of tests/peers.rs with LMTP on, Sieve at delivery as in
//! tests/sieve_sends.rs, the quota plugin as in tests/quota.rs) are read
//! through `doveconf -n`, converted, checked with `config check`, and then
//! the same messages are delivered through Dovecot's LMTP with the original
//! configuration and through mailstow with the converted one, into
//! separate mail roots; the Maildirs (folders, flags, file counts) and the
//! replies (over-quota refusals) must be the same. Must not touch the
//! system's Dovecot or its configuration (it only reads it with doveconf),
//! nor sleep to wait: every wait polls for observable state.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::peers::Dovecot;
use crate::util::{
    apt_install_missing, chown, code, free_v4, message, poll, read_text, tail, temp_dir, vmail,
    write_passwd_file, LmtpClient, Proc, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// `mailstow ARGS`: (exit code, stdout, stderr).
fn mailstow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run mailstow");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Convert `doveconf` (its text) into `dir/mailstow.toml` with the CLI and
/// run `config check` on it; the conversion's stderr.
fn convert_and_check(dir: &Path, doveconf: &str) -> (PathBuf, String) {
    let input = dir.join("doveconf-n.txt");
    fs::write(&input, doveconf).expect("write doveconf -n text");
    let output = dir.join("mailstow.toml");
    let (rc, _, err) = mailstow(&[
        "config",
        "from-dovecot",
        "--input",
        &input.to_string_lossy(),
        "--output",
        &output.to_string_lossy(),
    ]);
    assert_eq!(rc, 0, "from-dovecot failed:\n{err}");
    let (rc, out, check) = mailstow(&["config", "check", "-c", &output.to_string_lossy()]);
    assert_eq!(
        rc,
        0,
        "config check refused the converted file:\n{check}\n{out}\n{}",
        read_text(&output)
    );
    (output, err)
}

/// `doveconf -n` of a private instance's configuration.
fn doveconf_n(config: &Path) -> String {
    let out = Command::new("doveconf")
        .arg("-n")
        .arg("-c")
        .arg(config)
        .output()
        .expect("run doveconf");
    assert!(
        out.status.success(),
        "doveconf -n -c {}: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn debians_default_dovecot_converts_to_a_config_that_passes_check_and_names_mbox() {
    crate::peers::ensure_installed();
    apt_install_missing(&["/usr/lib/dovecot/lmtp"], &["dovecot-lmtpd"]);
    let dir = temp_dir("mailstow-from-dovecot-");
    let stored = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dovecot-configs/debian12-default.conf"),
    )
    .expect("read the stored Debian default");
    let (_, err) = convert_and_check(dir.path(), &stored);
    assert!(
        err.contains("not carried over: mail_location: \"mbox:~/mail:INBOX=/var/mail/%u\""),
        "{err}"
    );
    assert!(err.contains("not about delivery (left out): "), "{err}");
    assert_eq!(err.matches("not about delivery").count(), 1, "{err}");

    // Without --input, doveconf -n runs: this machine's Dovecot config.
    let (rc, toml, err) = mailstow(&["config", "from-dovecot"]);
    assert_eq!(rc, 0, "{err}");
    assert!(toml.contains("[users]"), "{toml}");
    assert!(err.contains("mailstow: from-dovecot: "), "{err}");
}

/// What one message got: the reply class and enhanced code, at RCPT or
/// after DATA (Dovecot refuses an over-quota message after DATA by
/// default, mailstow at RCPT when the user is already over quota).
fn send(c: &mut LmtpClient, rcpt: &str, msg: &[u8]) -> String {
    let r = c.cmd("MAIL FROM:<sender@example.net>");
    assert_eq!(code(&r), 250, "{r:?}");
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    let last = if code(&r) != 250 {
        c.cmd("RSET");
        r
    } else {
        let d = c.cmd("DATA");
        assert_eq!(code(&d), 354, "{d:?}");
        c.send_data(msg, 1).remove(0)
    };
    let line = last.last().cloned().unwrap_or_default();
    let mut words = line.split_whitespace();
    let class = words.next().unwrap_or("").get(..1).unwrap_or("").to_owned();
    let enhanced = words.next().unwrap_or("").to_owned();
    format!("{class}xx {enhanced}")
}

/// Every message under `root` (a mail root): (user, folder, subject,
/// flags with keywords by name) sorted, and the folders each user has.
type Snapshot = (Vec<(String, String, String, String)>, Vec<(String, String)>);

fn snapshot(root: &Path, users: &[&str]) -> Snapshot {
    let mut msgs = Vec::new();
    let mut folders = Vec::new();
    for user in users {
        let (local, domain) = user.rsplit_once('@').expect("address");
        let md = root.join(domain).join(local).join("Maildir");
        let mut dirs = vec![("INBOX".to_owned(), md.clone())];
        if let Ok(rd) = fs::read_dir(&md) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(f) = name.strip_prefix('.') {
                    if e.path().join("cur").is_dir() {
                        dirs.push((f.to_owned(), e.path()));
                    }
                }
            }
        }
        for (folder, path) in dirs {
            if !path.join("cur").is_dir() {
                continue;
            }
            folders.push((user.to_string(), folder.clone()));
            let keywords: BTreeMap<char, String> = read_text(&path.join("dovecot-keywords"))
                .lines()
                .filter_map(|l| {
                    let (n, name) = l.split_once(' ')?;
                    let n: u32 = n.parse().ok()?;
                    Some((char::from_u32('a' as u32 + n)?, name.to_owned()))
                })
                .collect();
            for sub in ["new", "cur"] {
                for e in fs::read_dir(path.join(sub))
                    .expect("read maildir")
                    .flatten()
                {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let letters = name.split_once(":2,").map(|x| x.1).unwrap_or("");
                    let mut flags: Vec<String> = letters
                        .chars()
                        .map(|c| keywords.get(&c).cloned().unwrap_or_else(|| c.to_string()))
                        .collect();
                    flags.sort();
                    let text =
                        String::from_utf8_lossy(&fs::read(e.path()).expect("read")).into_owned();
                    let subject = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: "))
                        .unwrap_or("")
                        .to_owned();
                    msgs.push((user.to_string(), folder.clone(), subject, flags.join(" ")));
                }
            }
        }
    }
    msgs.sort();
    folders.sort();
    (msgs, folders)
}

/// One side of the comparison: a mail root owned by vmail, with the
/// users' Sieve scripts installed (the active one a symlink, Pigeonhole's
/// layout).
fn prepare_root(root: &Path, scripts: &[(&str, &str)]) {
    let owner = vmail();
    fs::create_dir_all(root).expect("mkdir root");
    chown(root, owner);
    for (user, script) in scripts {
        let (local, domain) = user.rsplit_once('@').expect("address");
        let home = root.join(domain).join(local);
        fs::create_dir_all(home.join("sieve")).expect("mkdir sieve");
        fs::write(home.join("sieve/main.sieve"), script).expect("write script");
        symlink("sieve/main.sieve", home.join(".dovecot.sieve")).expect("symlink");
        for p in [
            root.join(domain),
            home.clone(),
            home.join("sieve"),
            home.join("sieve/main.sieve"),
        ] {
            chown(&p, owner);
        }
        std::os::unix::fs::lchown(
            home.join(".dovecot.sieve"),
            Some(owner.uid),
            Some(owner.gid),
        )
        .expect("lchown the active script link");
    }
}

/// A scenario: Dovecot's extra configuration (after the packaging
/// snippet, with `{port}` its LMTP port), users, scripts and messages.
struct Scenario<'a> {
    name: &'a str,
    dovecot_conf: String,
    users: &'a [&'a str],
    scripts: &'a [(&'a str, &'a str)],
    /// (recipient, subject, body size)
    messages: &'a [(&'a str, &'a str, usize)],
}

/// Deliver the scenario's messages over LMTP at `addr`; the outcomes.
fn deliver_all(addr: std::net::SocketAddr, s: &Scenario) -> Vec<String> {
    let mut c = LmtpClient::tcp(addr);
    c.lhlo();
    let outcomes = s
        .messages
        .iter()
        .map(|(rcpt, subject, size)| {
            let body = "x".repeat(*size);
            let m = message("sender@example.net", rcpt, subject, &body);
            format!("{rcpt} {subject}: {}", send(&mut c, rcpt, &m))
        })
        .collect();
    c.quit();
    outcomes
}

/// Run `s` through Dovecot and through mailstow with the converted
/// configuration; both must come out the same.
fn compare(s: &Scenario) -> String {
    crate::peers::ensure_installed();
    apt_install_missing(&["/usr/lib/dovecot/lmtp"], &["dovecot-lmtpd"]);
    let owner = vmail();
    let dir = temp_dir("mailstow-from-dovecot-");
    let d = dir.path();
    let users_file = d.join("users");
    let names: Vec<String> = s.users.iter().map(|u| u.to_string()).collect();
    write_passwd_file(&users_file, &names, owner);
    let (dovecot_root, mailstow_root) = (d.join("dovecot-mail"), d.join("mailstow-mail"));
    prepare_root(&dovecot_root, s.scripts);
    prepare_root(&mailstow_root, s.scripts);

    // Dovecot with the original configuration.
    let lmtp = free_v4();
    let conf = format!(
        "protocols = imap pop3 lmtp\n\
         service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {}\n  }}\n}}\n{}",
        lmtp.port(),
        s.dovecot_conf
    );
    let dc = Dovecot::start_with(&users_file, &dovecot_root, &conf);
    let up = poll(TIMEOUT, || LmtpClient::try_tcp(lmtp).ok().map(|c| c.quit()));
    assert!(
        up.is_some(),
        "Dovecot's LMTP does not answer:\n{}",
        dc.log()
    );
    let doveconf = doveconf_n(&dc.config_path());
    let by_dovecot = deliver_all(lmtp, s);
    let dovecot_log = dc.log();
    drop(dc);

    // The same configuration converted, its mail root the other one.
    let root_d = dovecot_root.to_string_lossy().into_owned();
    let root_m = mailstow_root.to_string_lossy().into_owned();
    assert!(doveconf.contains(&root_d), "{doveconf}");
    let (config, report) = convert_and_check(d, &doveconf.replace(&root_d, &root_m));
    let log_path = d.join("mailstow.log");
    let log = fs::File::create(&log_path).expect("create log");
    let mut ms = Proc::spawn(
        "mailstow",
        Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log),
        false,
    );
    let up = poll(TIMEOUT, || {
        if let Some(st) = ms.exited() {
            return Some(Err(st));
        }
        LmtpClient::try_tcp(lmtp).ok().map(|c| {
            c.quit();
            Ok(())
        })
    });
    assert!(
        matches!(up, Some(Ok(()))),
        "mailstow on the converted config does not answer on {lmtp} ({up:?}):\n{}\n{}",
        read_text(&log_path),
        read_text(&config)
    );
    let by_mailstow = deliver_all(lmtp, s);
    ms.terminate(std::time::Duration::from_secs(15));

    let context = format!(
        "scenario {}\nconverted config:\n{}\nreport:\n{report}\ndovecot log:\n{}\nmailstow log:\n{}",
        s.name,
        read_text(&config),
        tail(&dovecot_log, 30),
        tail(&read_text(&log_path), 30)
    );
    assert_eq!(by_mailstow, by_dovecot, "replies differ\n{context}");
    let (dm, df) = snapshot(&dovecot_root, s.users);
    let (mm, mf) = snapshot(&mailstow_root, s.users);
    assert_eq!(mf, df, "folders differ\n{context}");
    assert_eq!(mm, dm, "messages and flags differ\n{context}");
    assert!(!dm.is_empty(), "nothing was delivered\n{context}");
    report
}

#[test]
fn the_imap_readers_dovecot_with_lmtp_delivers_as_mailstow_converted_from_it() {
    let report = compare(&Scenario {
        name: "peers",
        dovecot_conf: String::new(),
        users: &[ALICE, BOB],
        scripts: &[],
        messages: &[
            (ALICE, "plain", 100),
            (BOB, "plain", 100),
            ("alice+lists@example.org", "detail", 100),
            ("nobody@example.org", "unknown", 100),
        ],
    });
    assert!(report.contains("service imap-login"), "{report}");
}

const SCRIPT: &str = "require [\"fileinto\", \"imap4flags\", \"envelope\", \"subaddress\"];\n\
    if header :contains \"subject\" \"list\" { fileinto \"Lists\"; stop; }\n\
    if header :contains \"subject\" \"flag\" { addflag \"\\\\Flagged\"; fileinto :flags [\"\\\\Seen\", \"$label1\"] \"Archive\"; stop; }\n\
    if header :contains \"subject\" \"drop\" { discard; stop; }\n\
    if envelope :detail \"to\" \"spam\" { fileinto \"Junk\"; stop; }\n";

#[test]
fn dovecots_lmtp_with_sieve_files_and_flags_as_mailstow_converted_from_it() {
    compare(&Scenario {
        name: "sieve",
        dovecot_conf: "recipient_delimiter = +\n\
             lda_mailbox_autocreate = yes\n\
             lda_mailbox_autosubscribe = yes\n\
             lmtp_save_to_detail_mailbox = yes\n\
             protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n\
             plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n"
            .to_owned(),
        users: &[ALICE, BOB],
        scripts: &[(ALICE, SCRIPT)],
        messages: &[
            (ALICE, "plain", 100),
            (ALICE, "a list mail", 100),
            (ALICE, "flag me", 100),
            (ALICE, "drop me", 100),
            ("alice+spam@example.org", "spammy", 100),
            ("alice+news@example.org", "news", 100),
            ("bob+news@example.org", "bob news", 100),
            (BOB, "bob plain", 100),
        ],
    });
}

#[test]
fn dovecots_quota_refuses_the_same_messages_as_mailstow_converted_from_it() {
    compare(&Scenario {
        name: "quota",
        dovecot_conf: "mail_plugins = $mail_plugins quota\n\
             quota_full_tempfail = yes\n\
             protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n\
             plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=3K\n  quota_rule2 = Trash:ignore\n}\n"
            .to_owned(),
        users: &[ALICE, BOB],
        scripts: &[],
        messages: &[
            (ALICE, "one", 900),
            (ALICE, "two", 900),
            (ALICE, "three", 900),
            // Not a small one here: mailstow's Received header makes each
            // stored copy a few bytes larger than Dovecot's (docs/
            // from-dovecot.md, "Known differences"), so a message within
            // that margin of the limit is stored by one and refused by
            // the other.
            (ALICE, "four", 900),
            (BOB, "bob one", 900),
            (BOB, "bob big", 5000),
            (BOB, "bob two", 900),
        ],
    });
}
