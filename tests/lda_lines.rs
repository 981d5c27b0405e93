//! Dovecot's documented dovecot-lda lines, with `mailstow deliver` in
//! dovecot-lda's place, driven by a real Postfix: local(8)'s
//! `mailbox_command = ... -f "$SENDER" -a "$RECIPIENT"` and procmail as the
//! mailbox_command with a ~/.procmailrc in Dovecot's form. The recipients
//! are test-owned Unix accounts that exist only in a private mount
//! namespace (copies of /etc/passwd and /etc/group bound over the host's),
//! where Postfix's master and everything it starts (local(8), the command)
//! run. Must not change the host's account databases, sleep to wait (every
//! wait polls for observable state), or send mail outside the test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::accounts::Accounts;
use crate::peers::Postfix;
use crate::util::{apt_install_missing, poll, toml_str, TIMEOUT};

/// The local(8) domain.
const LOCAL: &str = "local.test";
/// The test's accounts: name and uid (the gid is the same).
const USER: (&str, u32) = ("ldauser", 61_201);
const SENDER: (&str, u32) = ("ldasender", 61_202);

/// An account's address in the local(8) domain.
fn address(account: (&str, u32)) -> String {
    format!("{}@{LOCAL}", account.0)
}

/// The test's two accounts.
fn accounts() -> Accounts {
    Accounts::new("mailstow-lda-", &[USER, SENDER], &[])
}

impl Accounts {
    /// Where mailstow's configuration is (read at each delivery).
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mailstow.toml")
    }

    /// mailstow's configuration for the invoking account (`driver =
    /// "system"`, mail in ~/Maildir), rejections submitted to `smtp`;
    /// readable by the accounts.
    fn write_config(&self, smtp: std::net::SocketAddr, extra: &str) {
        let path = self.config_path();
        let text = format!(
            "hostname = \"mx.test\"\n\
             [storage]\nmail_root = {root}\n\
             [users]\ndriver = \"system\"\nmin_uid = 1000\ndomains = [\"{LOCAL}\"]\n\
             [outbound]\nsmtp = \"{smtp}\"\n\
             [log]\nlevel = \"info\"\nformat = \"text\"\n{extra}",
            root = toml_str(&self.dir.path().join("unused").to_string_lossy()),
        );
        fs::write(&path, text).expect("write mailstow.toml");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    /// The files of a Maildir folder (`""` is INBOX) of the account, in
    /// new/ and cur/.
    fn messages(&self, account: (&str, u32), folder: &str) -> Vec<String> {
        let md = self.home(account.0).join("Maildir").join(folder);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = fs::read_dir(md.join(sub)) {
                for e in rd.flatten() {
                    let bytes = fs::read(e.path()).expect("read message");
                    out.push(String::from_utf8_lossy(&bytes).into_owned());
                }
            }
        }
        out
    }

    /// Waits until the folder holds `n` messages; returns them.
    fn wait_messages(&self, account: (&str, u32), folder: &str, n: usize) -> Vec<String> {
        poll(TIMEOUT, || {
            let m = self.messages(account, folder);
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} {folder:?}: {} message(s), want {n}",
                account.0,
                self.messages(account, folder).len()
            )
        })
    }
}

/// A Postfix whose local(8) delivers `local.test` with `mailbox_command`,
/// run in the accounts' namespace.
fn postfix(acc: &Accounts, mailbox_command: &str) -> Postfix {
    let main = format!(
        "mydestination = {LOCAL}\n\
         local_transport = local\n\
         recipient_delimiter = +\n\
         mailbox_size_limit = 0\n\
         mailbox_command = {mailbox_command}\n"
    );
    let master = "local     unix  -       n       n       -       -       local\n";
    Postfix::start_launched(&acc.launcher(), &main, master)
}

fn msg(from: &str, to: &str, subject: &str, extra: &str) -> Vec<u8> {
    format!("From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n{extra}\r\nhello\r\n")
        .into_bytes()
}

/// Postfix's local(8) runs Dovecot's documented line, `mailbox_command =
/// /usr/lib/dovecot/dovecot-lda -f "$SENDER" -a "$RECIPIENT"`, with
/// `mailstow deliver -c CONF` in its place, as the recipient: the message
/// lands in ~/Maildir with mailstow's Delivered-To naming the -a address
/// (Sieve's envelope "to" sees it, +detail and all); a Sieve reject without
/// -e mails the sender an MDN and Postfix logs the delivery as sent; an
/// unwritable Maildir exits 75 and Postfix defers, then delivers once the
/// Maildir is writable again.
#[test]
fn postfix_mailbox_command_runs_the_documented_lda_line_as_the_recipient() {
    let acc = accounts();
    acc.write_as(
        USER.0,
        ".dovecot.sieve",
        "require [\"reject\", \"envelope\", \"subaddress\", \"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"unwanted\" { reject \"Not wanted here\"; stop; }\n\
         if envelope :detail \"to\" \"lists\" { fileinto :create \"Lists\"; }\n",
    );
    let command = format!(
        "{} deliver -c {} -f \"$SENDER\" -a \"$RECIPIENT\"",
        env!("CARGO_BIN_EXE_mailstow"),
        acc.config_path().display()
    );
    let pf = postfix(&acc, &command);
    acc.write_config(pf.smtp, "");
    let (user, sender) = (address(USER), address(SENDER));
    let to_lists = format!("{}+lists@{LOCAL}", USER.0);

    pf.send_smtp(&sender, &[&user], &msg(&sender, &user, "plain", ""));
    pf.send_smtp(
        &sender,
        &[&to_lists],
        &msg(&sender, &to_lists, "a list", ""),
    );
    pf.wait_maillog(&[&format!("to=<{user}>"), "status=sent"], 1);
    pf.wait_maillog(&[&format!("to=<{to_lists}>"), "status=sent"], 1);
    let inbox = acc.wait_messages(USER, "", 1);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let want = format!("Return-Path: <{sender}>\nDelivered-To: {user}\nReceived: ");
    assert!(inbox[0].starts_with(&want), "{}", inbox[0]);
    assert!(inbox[0].contains(&format!("X-Original-To: {user}\n")));
    let lists = acc.wait_messages(USER, ".Lists", 1);
    let want = format!("Return-Path: <{sender}>\nDelivered-To: {to_lists}\nReceived: ");
    assert!(lists[0].starts_with(&want), "{}", lists[0]);

    // A Sieve reject without -e: the sender gets the MDN (through Postfix,
    // into its own Maildir by the same command), Postfix logs "sent".
    pf.send_smtp(
        &sender,
        &[&user],
        &msg(&sender, &user, "unwanted offer", ""),
    );
    let mdn = acc.wait_messages(SENDER, "", 1);
    for want in [
        "Subject: Rejected: unwanted offer",
        "Not wanted here",
        &format!("Final-Recipient: rfc822; {user}"),
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
    ] {
        assert!(mdn[0].contains(want), "{want:?} in {}", mdn[0]);
    }
    pf.wait_maillog(&[&format!("to=<{user}>"), "status=sent"], 2);
    pf.wait_queue_empty(TIMEOUT);
    assert_eq!(
        acc.messages(USER, "").len(),
        1,
        "the rejected one is not stored"
    );
    assert_eq!(pf.maillog_lines(&["status=bounced"]), Vec::<String>::new());

    // ~/Maildir/tmp unwritable: exit 75, Postfix defers and keeps it.
    let tmp = acc.home(USER.0).join("Maildir/tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o500)).expect("chmod tmp");
    pf.send_smtp(&sender, &[&user], &msg(&sender, &user, "later", ""));
    let deferred = pf.wait_maillog(&[&format!("to=<{user}>"), "status=deferred"], 1);
    // local(8) words exit 75 (EX_TEMPFAIL) as "temporary failure".
    assert!(
        deferred[0].contains("dsn=4.3.0") && deferred[0].contains("(temporary failure."),
        "{deferred:?}"
    );
    assert_eq!(pf.maillog_lines(&["status=bounced"]), Vec::<String>::new());
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700)).expect("chmod tmp");
    pf.wait_maillog(&[&format!("to=<{user}>"), "status=sent"], 3);
    pf.wait_queue_empty(TIMEOUT);
    let inbox = acc.wait_messages(USER, "", 2);
    assert_eq!(inbox.len(), 2);
    assert!(inbox.iter().any(|m| m.contains("Subject: later")));
}

/// procmail as Postfix's mailbox_command (`/usr/bin/procmail -a
/// "$EXTENSION"`) with Dovecot's documented ~/.procmailrc: spam goes
/// through `$DELIVER -m Junk`, the rest through `$DELIVER`; mailstow files
/// each once, and procmail's own fallback delivery never runs (the file
/// counts are exact).
#[test]
fn procmail_as_mailbox_command_runs_dovecots_procmailrc_through_mailstow() {
    apt_install_missing(&["/usr/bin/procmail"], &["procmail"]);
    let acc = accounts();
    acc.write_as(
        USER.0,
        ".procmailrc",
        &format!(
            "DELIVER=\"{} deliver -c {}\"\n\
             # fallback:\nDEFAULT=\"$HOME/Maildir/\"\nMAILDIR=\"$HOME/Maildir/\"\n\n\
             :0 w\n* ^X-Spam-Status: Yes\n| $DELIVER -m Junk\n\n\
             :0 w\n| $DELIVER\n",
            env!("CARGO_BIN_EXE_mailstow"),
            acc.config_path().display()
        ),
    );
    let pf = postfix(&acc, "/usr/bin/procmail -a \"$EXTENSION\"");
    acc.write_config(pf.smtp, "[sieve]\nautocreate = true\n");
    let (user, sender) = (address(USER), address(SENDER));
    let spam = msg(&sender, &user, "spam", "X-Spam-Status: Yes, score=9.9\r\n");
    pf.send_smtp(&sender, &[&user], &spam);
    pf.send_smtp(&sender, &[&user], &msg(&sender, &user, "ham 1", ""));
    pf.sendmail(&sender, &[&user], &msg(&sender, &user, "ham 2", ""));
    pf.wait_maillog(&[&format!("to=<{user}>"), "status=sent"], 3);
    pf.wait_queue_empty(TIMEOUT);
    let junk = acc.wait_messages(USER, ".Junk", 1);
    let inbox = acc.wait_messages(USER, "", 2);
    assert_eq!(junk.len(), 1);
    assert!(junk[0].contains("Subject: spam"), "{}", junk[0]);
    assert_eq!(inbox.len(), 2);
    assert!(inbox.iter().all(|m| m.contains("Subject: ham")));
    for m in junk.iter().chain(&inbox) {
        assert!(m.starts_with(&format!("Return-Path: <{sender}>\n")), "{m}");
        assert!(m.contains("(mailstow)"), "stored by mailstow: {m}");
    }
    let folders: Vec<String> = fs::read_dir(acc.home(USER.0).join("Maildir"))
        .expect("read Maildir")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert_eq!(folders, [".Junk"], "no other folder");
}
