//! Least privilege over a real socket: `serve` with `user`/`group` binds,
//! then runs with no root left (real, effective, saved and filesystem ids,
//! and supplementary groups, read from /proc), and its mail belongs to that
//! account; without `user`, a recipient with no uid is refused rather than
//! written as root. Must not need the peers.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::util::{chown, code, message, Mailstow, Options};

const ALICE: &str = "alice@example.org";

/// The numbers of a /proc/PID/status line ("Uid:", "Gid:", "Groups:").
fn status_ids(pid: u32, key: &str) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_default()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn serve_gives_up_root_after_binding_and_writes_as_its_user() {
    let mut opts = Options::new(&[ALICE]);
    opts.top_extra = "user = \"vmail\"\ngroup = \"vmail\"".into();
    let ms = Mailstow::start_with(opts);
    let vmail = ms.owner;
    assert_eq!(status_ids(ms.pid(), "Uid:"), vec![vmail.uid; 4]);
    assert_eq!(status_ids(ms.pid(), "Gid:"), vec![vmail.gid; 4]);
    assert_eq!(status_ids(ms.pid(), "Groups:"), vec![vmail.gid]);
    // The mail root is the admin's to hand over.
    chown(&ms.mail_root, vmail);
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "as vmail", "hi\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}\n{}", ms.log());
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    let meta = fs::metadata(&files[0].path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (vmail.uid, vmail.gid));
}

#[test]
fn a_user_that_would_be_written_as_root_is_refused() {
    let ms = Mailstow::start(&[ALICE]);
    // The same user without uid and gid, while mailstow runs as root.
    fs::write(&ms.users_file, format!("{ALICE}:{{PLAIN}}x::::::\n")).unwrap();
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "as root?", "hi\n"),
    );
    assert!(r[0][0].starts_with("451 4.3.0"), "{r:?}");
    assert!(ms.log().contains("refusing to deliver as root"));
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 0);
}
