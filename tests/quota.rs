//! Maildir++ quota over a real socket: a full mailbox refuses at RCPT when
//! the client announced SIZE, and at the end of DATA otherwise, with 552
//! 5.2.2 (or 452 4.2.2 when configured as temporary); maildirsize keeps the
//! usage in the format Dovecot and Courier read. Must not need the peers.

use crate::util::{code, message, Mailstow, Options};

const ALICE: &str = "alice@example.org";

fn start(over: &str) -> Mailstow {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!("[quota]\nrule = \"*:storage=3K\"\nover_quota = \"{over}\"\n");
    Mailstow::start_with(opts)
}

#[test]
fn a_full_mailbox_refuses_at_rcpt_with_size_and_at_data_without() {
    let ms = start("permanent");
    let mut c = ms.connect();
    c.lhlo();
    let body = "x".repeat(400);
    for i in 0..3 {
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, &format!("m{i}"), &body),
        );
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    let usage =
        std::fs::read_to_string(ms.maildir(ALICE).folder("INBOX").join("maildirsize")).unwrap();
    assert!(usage.starts_with("3072S\n"), "{usage}");
    // Announced size over what is left: refused before the upload.
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net> SIZE=2000")), 250);
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    c.cmd("RSET");
    // No SIZE: accepted at RCPT, refused after the data, nothing stored.
    c.cmd("MAIL FROM:<s@example.net>");
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(
        &message("s@example.net", ALICE, "big", &"y".repeat(2000)),
        1,
    );
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 3);
}

#[test]
fn over_quota_can_be_a_temporary_failure() {
    let ms = start("temporary");
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "fill", &"x".repeat(3000)),
    );
    assert_eq!(code(&r[0]), 250);
    c.cmd("MAIL FROM:<s@example.net> SIZE=500");
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert!(r[0].starts_with("452 4.2.2"), "{r:?}");
}
