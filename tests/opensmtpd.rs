//! OpenSMTPD 6.8 (Debian 12's opensmtpd) in front of mailstow, configured
//! from packaging/opensmtpd/smtpd.conf as an admin would: the lmtp action
//! over mailstow's unix socket and the mda action running `mailstow
//! deliver`. OpenSMTPD is the system MTA in its package, as Postfix is, so
//! it runs from a cached Debian root (chroot, private mount namespace, the
//! test's directories bound in at the same paths), in the foreground,
//! stopped by PID; mail goes in over SMTP on a loopback port, and
//! OpenSMTPD's own log and bounces are read. Must not touch the host's MTA
//! or send to any address outside the test.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::debian::{in_root, peer_root};
use crate::peers::Dovecot;
use crate::util::{
    self, code, free_v4, lf_to_crlf, poll, temp_dir, LmtpClient, Mailstow, Options, Proc, PASSWORD,
    TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const SENDER: &str = "s@example.net";

/// Which of the snippet's actions the rule uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Lmtp,
    Mda,
}

/// A private OpenSMTPD: its root, directory and process.
struct OpenSmtpd {
    /// Declared first: the process stops before its files go.
    _proc: Proc,
    root: tempfile::TempDir,
    dir: tempfile::TempDir,
    smtp: SocketAddr,
}

impl OpenSmtpd {
    /// OpenSMTPD for `ms`, taking mail for example.org for `addresses`.
    fn start(ms: &Mailstow, via: Via, addresses: &[&str]) -> OpenSmtpd {
        let root = peer_root(&["opensmtpd"]);
        let dir = temp_dir("mailstow-opensmtpd-");
        let d = dir.path();
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(d.join("addresses"), addresses.join("\n") + "\n").unwrap();
        fs::write(
            d.join("virtual"),
            "@example.org vmail\n@example.net vmail\n",
        )
        .unwrap();
        fs::write(d.join("bounces"), "").unwrap();
        util::chown(&d.join("bounces"), ms.owner);
        add_vmail(root.path(), ms.owner);
        let smtp = free_v4();
        let conf = d.join("smtpd.conf");
        fs::write(&conf, config(ms, via, d, smtp)).unwrap();
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_mailstow"));
        let ms_dir = ms.config.parent().unwrap().to_owned();
        let binds = [d, ms_dir.as_path(), bin.as_path()];
        let mut cmd = in_root(
            root.path(),
            &binds,
            "/usr/sbin/smtpd",
            &["-d", "-f", conf.to_str().unwrap()],
        );
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(d.join("smtpd.log")).unwrap());
        let proc = Proc::spawn("smtpd", &mut cmd, true);
        let s = OpenSmtpd {
            _proc: proc,
            root,
            dir,
            smtp,
        };
        poll(TIMEOUT, || LmtpClient::try_tcp(smtp).ok())
            .unwrap_or_else(|| panic!("OpenSMTPD never listened:\n{}", s.log()));
        s
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("smtpd.log")).unwrap_or_default()
    }

    /// Lines of OpenSMTPD's log holding every one of `parts`.
    fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        util::lines_with(&self.log(), parts)
    }

    /// Waits until the log holds `n` lines with every one of `parts`.
    fn wait_log(&self, parts: &[&str], n: usize) {
        poll(TIMEOUT, || (self.log_lines(parts).len() >= n).then_some(()))
            .unwrap_or_else(|| panic!("no {n} x {parts:?} in OpenSMTPD's log:\n{}", self.log()));
    }

    /// One SMTP transaction; the reply to each RCPT, then to the data
    /// (None when no recipient was taken).
    fn send(&self, rcpts: &[&str], msg: &[u8]) -> (Vec<u16>, Option<u16>) {
        let mut c = LmtpClient::tcp(self.smtp);
        assert_eq!(code(&c.cmd("EHLO client.test")), 250);
        assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{SENDER}>"))), 250);
        let rcpt: Vec<u16> = rcpts
            .iter()
            .map(|r| code(&c.cmd(&format!("RCPT TO:<{r}>"))))
            .collect();
        if !rcpt.contains(&250) {
            return (rcpt, None);
        }
        assert_eq!(code(&c.cmd("DATA")), 354);
        let data = c.send_data(msg, 1);
        c.quit();
        (rcpt, Some(code(&data[0])))
    }

    /// `smtpctl schedule all`: every queued message tried now.
    fn schedule_all(&self) {
        let out = std::process::Command::new("chroot")
            .arg(self.root.path())
            .args(["smtpctl", "schedule", "all"])
            .output()
            .expect("smtpctl");
        assert!(out.status.success(), "{out:?}");
    }

    fn bounces(&self) -> String {
        fs::read_to_string(self.dir.path().join("bounces")).unwrap_or_default()
    }
}

/// vmail, as on the host, in the root's account files.
fn add_vmail(root: &Path, owner: util::Owner) {
    let add = |file: &str, line: String| {
        let mut text = fs::read_to_string(root.join(file)).unwrap();
        text.push_str(&line);
        fs::write(root.join(file), text).unwrap();
    };
    add(
        "etc/passwd",
        format!(
            "vmail:x:{}:{}::/nonexistent:/usr/sbin/nologin\n",
            owner.uid, owner.gid
        ),
    );
    add("etc/group", format!("vmail:x:{}:\n", owner.gid));
}

/// The snippet with the paths replaced and the rule's action chosen, a
/// listener, and a rule that keeps bounces to the test's sender in a file.
fn config(ms: &Mailstow, via: Via, d: &Path, smtp: SocketAddr) -> String {
    let snippet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/opensmtpd/smtpd.conf"
    ))
    .unwrap();
    let unix = ms.unix.as_ref().expect("mailstow listens on a unix socket");
    let mut conf = snippet
        .replace("/usr/bin/mailstow", env!("CARGO_BIN_EXE_mailstow"))
        .replace("/etc/mailstow/mailstow.toml", &ms.config.to_string_lossy())
        .replace(
            "/etc/mailstow/addresses",
            &d.join("addresses").to_string_lossy(),
        )
        .replace(
            "/etc/mailstow/opensmtpd-virtual",
            &d.join("virtual").to_string_lossy(),
        )
        .replace("/run/mailstow/lmtp.sock", &unix.to_string_lossy());
    if via == Via::Mda {
        conf = conf.replace("action \"mailstow\"\n", "action \"mailstow-mda\"\n");
    }
    format!(
        "listen on {ip} port {port}\n{conf}\n\
         action \"bounces\" mda \"/bin/sh -c 'cat >> {b}'\" virtual <mailstow-owner>\n\
         match from any for domain \"example.net\" action \"bounces\"\n",
        ip = smtp.ip(),
        port = smtp.port(),
        b = d.join("bounces").display()
    )
}

/// A message with dot lines and 8-bit text, CRLF as over SMTP.
fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: <{SENDER}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         .dot at the start\r\n..two\r\nGrüße\r\n"
    )
    .into_bytes()
}

/// Rewrites `address`'s line of the users file with `f`.
fn edit_user(ms: &Mailstow, address: &str, f: impl Fn(&str) -> String) {
    let users = fs::read_to_string(&ms.users_file).unwrap();
    let out: String = users
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{address}:")) {
                f(l)
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&ms.users_file, out).unwrap();
}

/// `who`'s INBOX holds one message, the one sent, read back through
/// Dovecot as sent; the stored file has one Return-Path, ours.
fn holds_the_message(ms: &Mailstow, who: &str, msg: &[u8]) {
    let files = ms.maildir(who).messages("INBOX");
    assert_eq!(files.len(), 1, "{who}: exactly one copy");
    let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
    assert!(
        text.starts_with(&format!("Return-Path: <{SENDER}>\nDelivered-To: {who}\n")),
        "{text}"
    );
    assert_eq!(
        text.to_ascii_lowercase().matches("return-path:").count(),
        1,
        "{text}"
    );
    assert!(!text.contains('\r'), "one line-end convention");
    let body_at = util::find(msg, b"\r\n\r\n").unwrap();
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(who, PASSWORD);
    imap.examine("INBOX");
    let fetched = imap.fetch_all();
    imap.logout();
    assert_eq!(fetched[0].body, lf_to_crlf(&files[0].bytes));
    assert!(
        fetched[0].body.ends_with(&msg[body_at..]),
        "dot lines and 8-bit text as sent"
    );
    assert_eq!(fetched[0].size, files[0].vsize());
}

fn mailstow(users: &[&str]) -> Mailstow {
    let mut opts = Options::new(users);
    opts.unix_socket = true;
    opts.extra_toml = "[quota]\nover_quota = \"temporary\"\n".into();
    let ms = Mailstow::start_with(opts);
    // `mailstow deliver` runs as vmail: the mail root must be vmail's.
    util::chown(&ms.mail_root, ms.owner);
    ms
}

#[test]
fn opensmtpd_lmtp_action_delivers_defers_over_quota_and_refuses_unknown_at_rcpt() {
    let ms = mailstow(&[ALICE, BOB, CAROL]);
    edit_user(&ms, CAROL, |l| {
        format!("{l}userdb_quota_rule=*:storage=100B")
    });
    // ghost is in OpenSMTPD's table but not mailstow's: mail.lmtp makes
    // mailstow's 550 a temporary failure (documented in the snippet).
    let os = OpenSmtpd::start(&ms, Via::Lmtp, &[ALICE, BOB, CAROL, "ghost@example.org"]);
    let msg = message("lmtp action");
    let (rcpt, data) = os.send(
        &[ALICE, BOB, "nobody@example.org", CAROL, "ghost@example.org"],
        &msg,
    );
    assert_eq!(rcpt, [250, 250, 550, 250, 250], "{}", os.log());
    assert_eq!(data, Some(250));
    for who in [ALICE, BOB] {
        os.wait_log(&["mda delivery", &format!("to=<{who}>"), "result=Ok"], 1);
    }
    os.wait_log(
        &["to=<carol@example.org>", "result=TempFail", "452 4.2.2"],
        1,
    );
    os.wait_log(
        &["to=<ghost@example.org>", "result=TempFail", "550 5.1.1"],
        1,
    );
    assert!(ms.maildir(CAROL).messages("INBOX").is_empty());

    // The quota raised, the retry delivers carol's copy, and nobody else's
    // again (two recipients of one transaction, one copy each).
    edit_user(&ms, CAROL, |l| {
        l.replace("userdb_quota_rule=*:storage=100B", "")
    });
    os.schedule_all();
    os.wait_log(&["mda delivery", "to=<carol@example.org>", "result=Ok"], 1);
    for who in [ALICE, BOB, CAROL] {
        assert_eq!(ms.maildir(who).messages("INBOX").len(), 1, "{who}");
    }
    holds_the_message(&ms, ALICE, &msg);
}

#[test]
fn opensmtpd_mda_action_runs_mailstow_deliver_and_bounces_67_and_77_with_the_reason() {
    let ms = mailstow(&[ALICE, BOB, CAROL]);
    let home = ms.mail_root.join("example.org/bob");
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join(".dovecot.sieve"),
        "require \"reject\";\nreject \"Not wanted here\";\n",
    )
    .unwrap();
    for p in [
        ms.mail_root.join("example.org"),
        home.clone(),
        home.join(".dovecot.sieve"),
    ] {
        util::chown(&p, ms.owner);
    }
    let carol = fs::read_to_string(&ms.users_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("carol@"))
        .unwrap()
        .to_owned();
    edit_user(&ms, CAROL, |_| {
        "carol@example.org:x:notanumber:1::::".into()
    });
    let os = OpenSmtpd::start(&ms, Via::Mda, &[ALICE, BOB, CAROL, "ghost@example.org"]);
    let msg = message("mda action");
    let (rcpt, data) = os.send(&[ALICE, BOB, CAROL, "ghost@example.org"], &msg);
    assert_eq!(rcpt, [250, 250, 250, 250]);
    assert_eq!(data, Some(250));
    os.wait_log(&["mda delivery", "to=<alice@example.org>", "result=Ok"], 1);
    os.wait_log(
        &["to=<bob@example.org>", "result=PermFail", "Not wanted here"],
        1,
    );
    os.wait_log(
        &["to=<ghost@example.org>", "result=PermFail", "user unknown"],
        1,
    );
    os.wait_log(&["to=<carol@example.org>", "result=TempFail"], 1);
    poll(TIMEOUT, || {
        os.bounces().contains("Not wanted here").then_some(())
    })
    .unwrap_or_else(|| panic!("no bounce with the script's reason:\n{}", os.log()));
    assert!(
        os.bounces().contains("ghost@example.org"),
        "{}",
        os.bounces()
    );

    edit_user(&ms, CAROL, |_| carol.clone());
    os.schedule_all();
    os.wait_log(&["mda delivery", "to=<carol@example.org>", "result=Ok"], 1);
    assert_eq!(ms.maildir(CAROL).messages("INBOX").len(), 1);
    assert!(ms.maildir(BOB).messages("INBOX").is_empty());
    holds_the_message(&ms, ALICE, &msg);
}
