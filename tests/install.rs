//! The install path exactly as README.md writes it: a clean Debian 12 booted
//! under systemd-nspawn (its own network, so Postfix's port 25 and
//! Dovecot's 143, 110 and 4190 are its own), the README's install block run
//! as it stands with the package, Debian's Postfix and Dovecot, then mail
//! sent with `sendmail` and over SMTP, read over IMAP and POP3, a Sieve
//! script uploaded over ManageSieve, and a reload and a restart of mailstow
//! under load that lose nothing. Must not edit what the README does not
//! tell an admin to edit, nor touch the host's own mail services.

use std::collections::BTreeMap;
use std::path::Path;

use crate::debian::{mailhost_root, output, Container, Network, MAILHOST_PEERS};
use crate::util::{self, poll, TIMEOUT};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
/// The password the test types where doveadm would ask for one.
const PASSWORD: &str = "install-secret";
/// What README.md says to answer Postfix's installer.
const POSTFIX_TYPE: &str = "Internet Site";
const MAILNAME: &str = "mx.example.org";
/// The marker README.md puts before the install block.
const MARKER: &str = "<!-- tests/install.rs runs this block as it stands";

/// The indented code block after [`MARKER`] in README.md, as a script.
fn readme_install_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let at = readme
        .find(MARKER)
        .expect("README.md marks its install block");
    let block: Vec<&str> = readme[at..]
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(""))
        .collect();
    assert!(!block.is_empty(), "README.md's install block is empty");
    block.join("\n")
}

/// Replace `from` (which must occur exactly once) by `to`: the few places
/// where the script does what an admin at a terminal would do by hand.
fn substitute(script: &str, from: &str, to: &str) -> String {
    assert_eq!(
        script.matches(from).count(),
        1,
        "README.md's install block should hold {from:?} once:\n{script}"
    );
    script.replacen(from, to, 1)
}

/// The README's block, runnable without a terminal: apt without questions
/// (the answers README.md gives are preseeded), doveadm given the password
/// it would ask for; and the mailbox line once more for bob.
fn install_script() -> String {
    let block = readme_install_block();
    let deb = format!(
        "./target/debian/mailstow_{}-1_amd64.deb",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        block.contains(&deb),
        "README.md installs {deb}, the name cargo deb gives this version:\n{block}"
    );
    let mut script = substitute(&block, "apt install ", "apt-get install -y -q ");
    script = substitute(
        &script,
        "$(doveadm pw -s SHA512-CRYPT)",
        &format!("$(doveadm pw -s SHA512-CRYPT -p {PASSWORD})"),
    );
    let alice_line = script
        .lines()
        .find(|l| l.contains(ALICE) && l.contains("/etc/mailstow/users"))
        .expect("README.md adds alice@example.org to the users file")
        .to_owned();
    let preseed = format!(
        "printf '%s\\n' 'postfix postfix/main_mailer_type select {POSTFIX_TYPE}' \
         'postfix postfix/mailname string {MAILNAME}' | debconf-set-selections\n"
    );
    format!(
        "set -ex\ncd /root\n{preseed}{script}\n{}\n",
        alice_line.replace(ALICE, BOB)
    )
}

/// Runs the mail client (tests/mailclient.py) from the host in the
/// container's network.
struct Client<'a> {
    ct: &'a Container,
}

impl Client<'_> {
    fn run(&self, args: &[&str]) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mailclient.py");
        let mut cmd = self.ct.net_command("python3");
        cmd.arg(script).args(args);
        let (status, text) = output(&mut cmd);
        assert!(status.success(), "mailclient {args:?}: {text}");
        text
    }

    fn smtp(&self, from: &str, to: &str, subject: &str) {
        self.run(&["smtp", "127.0.0.1", "25", from, to, subject]);
    }

    /// Every folder IMAP lists, with the subjects in it.
    fn imap(&self, user: &str) -> BTreeMap<String, Vec<String>> {
        let text = self.run(&["imap", "127.0.0.1", "143", user, PASSWORD]);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn pop3(&self, user: &str) -> Vec<String> {
        let text = self.run(&["pop3", "127.0.0.1", "110", user, PASSWORD]);
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

/// `sendmail` inside the container (Postfix's, through postdrop).
fn sendmail(ct: &Container, to: &str, subject: &str) {
    ct.sh(&format!(
        "printf 'From: root@{MAILNAME}\\nSubject: {subject}\\n\\nsent with sendmail\\n' \
         | sendmail -f root@{MAILNAME} {to}"
    ));
}

/// The number of message files in a user's INBOX (new/ and cur/) or in a
/// folder, read inside the container.
fn stored(ct: &Container, user: &str, folder: &str) -> usize {
    let (local, domain) = user.split_once('@').unwrap();
    let dir = match folder {
        "INBOX" => format!("/var/vmail/{domain}/{local}/Maildir"),
        f => format!("/var/vmail/{domain}/{local}/Maildir/.{f}"),
    };
    let (_, text) = ct.exec(&[
        "find",
        &format!("{dir}/new"),
        &format!("{dir}/cur"),
        "-type",
        "f",
    ]);
    text.lines().filter(|l| l.starts_with('/')).count()
}

/// Wait until Postfix's queue is empty, flushing it when mail waits there
/// deferred; how many flushes it took.
fn drain_postfix_queue(ct: &Container) -> usize {
    let mut flushes = 0;
    let drained = poll(TIMEOUT, || {
        let (_, queue) = ct.exec(&["postqueue", "-j"]);
        if queue.trim().is_empty() {
            return Some(());
        }
        if queue.contains("\"deferred\"") {
            flushes += 1;
            ct.exec(&["postqueue", "-f"]);
        }
        None
    });
    assert!(
        drained.is_some(),
        "Postfix's queue did not drain:\n{}\n{}\n{}\n{}",
        ct.exec(&["postqueue", "-p"]).1,
        util::tail(&ct.journal("postfix@-"), 30),
        ct.exec(&["ls", "-la", "/var/spool/postfix/private"]).1,
        ct.exec(&[
            "journalctl",
            "--no-pager",
            "-o",
            "short",
            "-u",
            "mailstow.socket",
            "-u",
            "mailstow.service"
        ])
        .1,
    );
    flushes
}

#[test]
fn readme_install_on_debian_12_delivers_and_serves_imap_pop3_and_managesieve() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "booting a Debian container needs root: run the tests as root, as CI does"
    );
    util::apt_install_missing(&["/usr/bin/sieve-connect"], &["sieve-connect"]);
    let script = install_script();
    let deb = crate::package::deb();
    let root_dir = mailhost_root();
    let root = root_dir.path();
    let target = root.join("root/target/debian");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::copy(
        deb,
        target.join(format!(
            "mailstow_{}-1_amd64.deb",
            env!("CARGO_PKG_VERSION")
        )),
    )
    .unwrap();
    let ct = Container::boot(root, Network::Private);

    // README.md's block, as it stands.
    let (status, text) = output(
        ct.command(&["sh", "-c", &script])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert!(status.success(), "{script}\nfailed:\n{text}");
    let units = ["mailstow.socket", "mailstow.service", "postfix", "dovecot"];
    let (status, text) =
        output(&mut ct.command(&[&["systemctl", "is-active"][..], &units].concat()));
    assert!(
        status.success(),
        "{text}\n{}\n{}",
        ct.journal("mailstow.service"),
        ct.journal("dovecot")
    );
    // The service took its socket from systemd: started in one go with
    // the socket unit by the postinst, before Postfix made private/, it
    // must never have tried to bind it itself.
    let journal = ct.journal("mailstow.service");
    assert!(journal.contains("socket from systemd"), "{journal}");
    for pkg in MAILHOST_PEERS.iter().chain(&["mailstow"]) {
        let (_, state) = ct.exec(&["dpkg-query", "-W", "-f=${Status}", pkg]);
        assert_eq!(state, "install ok installed", "{pkg}");
    }

    // Mail with Postfix's sendmail and over SMTP to port 25, to both.
    let client = Client { ct: &ct };
    for user in [ALICE, BOB] {
        sendmail(&ct, user, &format!("sendmail to {user}"));
        client.smtp("someone@example.net", user, &format!("smtp to {user}"));
    }
    assert_eq!(drain_postfix_queue(&ct), 0, "nothing deferred");
    for user in [ALICE, BOB] {
        let mut want_sorted = vec![format!("sendmail to {user}"), format!("smtp to {user}")];
        want_sorted.sort();
        let folders = client.imap(user);
        assert_eq!(
            folders.get("INBOX"),
            Some(&want_sorted),
            "{user}: {folders:?}"
        );
        assert_eq!(client.pop3(user), want_sorted, "{user} over POP3");
    }
    // Postfix's lines and mailstow's per-recipient lines, side by side in
    // the mail facility (what rsyslog writes to /var/log/mail.log).
    let (_, mail_log) = ct.exec(&["journalctl", "--no-pager", "-o", "cat", "SYSLOG_FACILITY=2"]);
    assert_eq!(
        mail_log.matches("status=sent (250 2.0.0").count(),
        4,
        "{mail_log}"
    );
    let (_, ours) = ct.exec(&[
        "journalctl",
        "--no-pager",
        "-o",
        "cat",
        "SYSLOG_FACILITY=2",
        "SYSLOG_IDENTIFIER=mailstow",
    ]);
    for user in [ALICE, BOB] {
        let line = format!("to=<{user}>");
        assert_eq!(
            ours.lines()
                .filter(|l| l.contains(" delivery ") && l.contains(&line))
                .count(),
            2,
            "mailstow's lines for {user} in the mail facility:\n{ours}"
        );
    }

    // A Sieve script uploaded and activated with sieve-connect (Dovecot's
    // managesieved, STARTTLS with Debian's self-signed certificate) files
    // the next message into a folder that IMAP shows.
    let sieve_file = root_dir.path().join("root/reports.sieve");
    std::fs::write(
        &sieve_file,
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"Subject\" \"report\" { fileinto :create \"Reports\"; }\n",
    )
    .unwrap();
    for action in [&["--upload", "--localsieve"][..], &["--activate"][..]] {
        let mut cmd = ct.net_command("sieve-connect");
        cmd.args(["--server", "127.0.0.1", "--port", "4190", "--user", ALICE])
            .args(["--notlsverify", "--passwordfd", "0"])
            .args(action);
        if action[0] == "--upload" {
            cmd.arg(&sieve_file);
        }
        cmd.args(["--remotesieve", "reports"]);
        let out = util::output_with_input(&mut cmd, format!("{PASSWORD}\n").as_bytes());
        assert!(out.status.success(), "sieve-connect {action:?}: {out:?}");
    }
    client.smtp("boss@example.net", ALICE, "weekly report");
    assert_eq!(drain_postfix_queue(&ct), 0);
    let folders = client.imap(ALICE);
    assert_eq!(
        folders.get("Reports"),
        Some(&vec!["weekly report".to_owned()]),
        "{folders:?}"
    );
    assert_eq!(folders.get("INBOX").map(Vec::len), Some(2), "{folders:?}");

    // A reload and a restart of mailstow while Postfix hands it a stream of
    // mail lose nothing: each message stored once.
    let batch = 60;
    let mut sender = ct.command(&[
        "sh",
        "-c",
        &format!(
            "for i in $(seq 1 {batch}); do printf 'Subject: batch %s\\n\\nn\\n' $i \
             | sendmail -f root@{MAILNAME} {BOB} || exit 1; done"
        ),
    ]);
    let mut sender = sender.spawn().expect("start the sendmail loop");
    let at_least = |n: usize| {
        poll(TIMEOUT, || (stored(&ct, BOB, "INBOX") >= n).then_some(()))
            .unwrap_or_else(|| panic!("bob never had {n} messages"));
    };
    at_least(3);
    let (status, text) = ct.exec(&["systemctl", "reload", "mailstow"]);
    assert!(status.success(), "reload: {text}");
    at_least(2 + 10);
    let (status, text) = ct.exec(&["systemctl", "restart", "mailstow"]);
    assert!(status.success(), "restart: {text}");
    assert!(sender.wait().expect("sendmail loop").success());
    let flushes = drain_postfix_queue(&ct);
    let journal = ct.journal("mailstow.service");
    assert!(journal.contains("configuration reloaded"), "{journal}");
    let subjects = client.pop3(BOB);
    let mut want: Vec<String> = (1..=batch).map(|i| format!("batch {i}")).collect();
    want.extend([format!("sendmail to {BOB}"), format!("smtp to {BOB}")]);
    want.sort();
    assert_eq!(
        subjects, want,
        "every message once (queue flushed {flushes} times)"
    );
    if flushes > 0 {
        eprintln!("install: Postfix deferred mail across the restart; flushed {flushes} times");
    }
}
