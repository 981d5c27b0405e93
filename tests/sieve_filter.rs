//! `mailstow sieve filter` against the real binary and a real Dovecot:
//! mail already delivered is re-filtered with the user's current script; a
//! dry run changes nothing, `--apply` moves what the script files elsewhere,
//! and Dovecot IMAP sees the result. Must not look inside mailstow.

use std::process::Command;

use crate::peers::Dovecot;
use crate::util::{code, message, Mailstow, PASSWORD};

const ALICE: &str = "alice@example.org";

fn sieve_filter(ms: &Mailstow, apply: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailstow"));
    cmd.args(["sieve", "filter", "--config"])
        .arg(&ms.config)
        .args(["--user", ALICE, "INBOX"]);
    if apply {
        cmd.arg("--apply");
    }
    let out = cmd.output().expect("run sieve filter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn sieve_filter_dry_run_changes_nothing_and_apply_moves_what_the_script_files() {
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    c.lhlo();
    for subject in ["invoice 1", "hello", "invoice 2"] {
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, subject, "x\r\n"),
        );
        assert_eq!(code(&r[0]), 250);
    }
    c.quit();
    ms.install_sieve(
        ALICE,
        "require [\"fileinto\", \"mailbox\", \"vacation\"];\n\
         if header :contains \"subject\" \"invoice\" { fileinto :create \"Invoices\"; }\n\
         vacation \"away\";\n",
    );
    let (rc, out) = sieve_filter(&ms, false);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out.matches("fileinto Invoices").count(), 2, "{out}");
    assert!(
        out.contains("(not sent)"),
        "vacation is reported, never sent: {out}"
    );
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 3, "dry run");

    let (rc, out) = sieve_filter(&ms, true);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(out.matches("[moved]").count(), 2, "{out}");
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    assert_eq!(imap.examine("INBOX"), 1);
    assert_eq!(imap.examine("Invoices"), 2);
    let bodies: Vec<String> = imap
        .fetch_all()
        .into_iter()
        .map(|f| String::from_utf8_lossy(&f.body).into_owned())
        .collect();
    assert!(
        bodies.iter().all(|b| b.contains("Subject: invoice")),
        "{bodies:?}"
    );
    imap.logout();
}
