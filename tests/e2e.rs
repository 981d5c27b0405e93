//! End-to-end tests: mail enters through a private Postfix (sendmail and
//! SMTP) or a raw LMTP client, mailstow stores it, and a private Dovecot
//! reads it back over IMAP and POP3, byte for byte. Must not look inside
//! mailstow (only its listeners, exit status, log and Maildir files), and
//! must not depend on the exact text of replies or log lines beyond codes.

use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::peers::{lmtp_inet, lmtp_unix, Dovecot, Fetched, Postfix};
use crate::util::{
    assert_dir, assert_maildir_file, code, dot_stuff, find, lf_to_crlf, message, message_bytes,
    poll, socket_mode, LmtpClient, Mailstow, Options, PASSWORD, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const NOBODY: &str = "nobody@example.org";
const JORG: &str = "jörg@example.org";
const SENDER: &str = "sender@example.net";

fn start(opts: Options) -> (Mailstow, Dovecot) {
    let ms = Mailstow::start_with(opts);
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    (ms, dc)
}

/// The reply to the end of DATA for a single recipient must be 250.
fn assert_delivered(replies: &[Vec<String>]) {
    assert_eq!(replies.len(), 1);
    assert_eq!(code(&replies[0]), 250, "end of DATA: {:?}", replies[0]);
}

/// Wait until `user`'s `folder` holds exactly `originals.len()` messages,
/// then check them three ways:
/// - files: Maildir name, S = size, W = size + bare LF, 0600 vmail, dirs 0700;
/// - IMAP (EXAMINE): each BODY[] is its file in CRLF form, RFC822.SIZE is W,
///   each original is the suffix of exactly one message, after headers that
///   mailstow (and Postfix) prepended, among them Return-Path and Received
///   (Delivered-To only when its transaction had one recipient: Postfix
///   groups them, and `single_copy` then writes one trace block for all);
/// - POP3 (INBOX only, when `pop3`): STAT and LIST count W, RETR equals IMAP.
///
/// Returns the IMAP messages.
fn assert_read_back(
    ms: &Mailstow,
    dc: &Dovecot,
    user: &str,
    folder: &str,
    originals: &[&[u8]],
    pop3: bool,
) -> Vec<Fetched> {
    let md = ms.maildir(user);
    let files = md.wait_messages(folder, originals.len());
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(files.len(), originals.len(), "{user} {folder}: {names:?}");
    let dir = md.folder(folder);
    for d in [
        md.root.clone(),
        dir.clone(),
        dir.join("new"),
        dir.join("cur"),
        dir.join("tmp"),
    ] {
        assert_dir(&d, 0o700, ms.owner);
    }
    if dir != md.root {
        assert!(
            dir.join("maildirfolder").is_file(),
            "{} lacks maildirfolder",
            dir.display()
        );
    }
    for f in &files {
        assert_maildir_file(f, ms.owner);
    }

    let mut imap = dc.imap_login(user, PASSWORD);
    let mailbox = if folder.is_empty() { "INBOX" } else { folder };
    assert_eq!(imap.examine(mailbox) as usize, files.len());
    let fetched = imap.fetch_all();
    imap.logout();
    assert_eq!(fetched.len(), files.len());
    for f in &fetched {
        let file = files
            .iter()
            .find(|m| lf_to_crlf(&m.bytes) == f.body)
            .unwrap_or_else(|| panic!("IMAP UID {} is no file byte for byte: {names:?}", f.uid));
        assert_eq!(
            Some(f.size),
            file.w_field(),
            "RFC822.SIZE != W of {}",
            file.name
        );
        assert_eq!(f.body.len() as u64, f.size, "BODY[] length != RFC822.SIZE");
    }
    for (i, original) in originals.iter().enumerate() {
        let original = lf_to_crlf(original);
        let holders: Vec<&Fetched> = fetched
            .iter()
            .filter(|f| f.body.ends_with(&original))
            .collect();
        assert_eq!(
            holders.len(),
            1,
            "original #{i} must end exactly one message"
        );
        let added = &holders[0].body[..holders[0].body.len() - original.len()];
        for header in ["Return-Path:", "Received:"] {
            assert!(
                added.starts_with(header.as_bytes())
                    || find(added, format!("\r\n{header}").as_bytes()).is_some(),
                "message #{i}: no {header} prepended:\n{}",
                String::from_utf8_lossy(added)
            );
        }
    }

    if pop3 {
        assert_eq!(mailbox, "INBOX", "POP3 reads only INBOX");
        let mut pop = dc.pop3_login(user, PASSWORD);
        let w_sum: u64 = fetched.iter().map(|f| f.size).sum();
        assert_eq!(pop.stat(), (fetched.len(), w_sum), "POP3 STAT");
        for (n, size) in pop.list() {
            let body = pop.retr(n);
            assert_eq!(body.len() as u64, size, "POP3 LIST size != RETR length");
            assert!(
                fetched.iter().any(|f| f.body == body && f.size == size),
                "POP3 RETR {n} differs from every IMAP BODY[]"
            );
        }
        pop.quit();
    }
    fetched
}

#[test]
fn postfix_sendmail_and_smtp_reach_imap_and_pop3_byte_exact() {
    let (ms, dc) = start(Options::new(&[ALICE, BOB]));
    let pf = Postfix::start(&lmtp_inet(ms.tcp));
    let via_sendmail = message(
        SENDER,
        ALICE,
        "via sendmail",
        "Hello through sendmail.\nBye.\n",
    );
    let via_smtp = message(
        SENDER,
        ALICE,
        "via SMTP",
        "Hello through SMTP.\n\nTwo paragraphs.\n",
    );
    pf.sendmail(SENDER, &[ALICE], &via_sendmail);
    pf.send_smtp(SENDER, &[ALICE], &via_smtp);
    pf.wait_queue_empty(TIMEOUT);
    pf.wait_maillog(&["to=<alice@example.org>", "status=sent"], 2);
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&via_sendmail, &via_smtp], true);
    assert!(ms.maildir(BOB).messages("INBOX").is_empty());
}

#[test]
fn postfix_bounces_only_the_unknown_recipient_and_delivers_the_others() {
    let (ms, dc) = start(Options::new(&[ALICE, BOB, CAROL]));
    let pf = Postfix::start(&lmtp_inet(ms.tcp));
    let msg = message(
        ALICE,
        BOB,
        "three recipients",
        "One of us does not exist.\n",
    );
    // Postfix accepts all three (it does not know the users) and hands them
    // to mailstow in one LMTP transaction; mailstow refuses nobody.
    pf.send_smtp(ALICE, &[BOB, NOBODY, CAROL], &msg);
    pf.wait_queue_empty(TIMEOUT);
    pf.wait_maillog(&["to=<nobody@example.org>", "status=bounced"], 1);
    pf.wait_maillog(&["to=<bob@example.org>", "status=sent"], 1);
    pf.wait_maillog(&["to=<carol@example.org>", "status=sent"], 1);
    // The bounce to alice went through mailstow too.
    pf.wait_maillog(&["to=<alice@example.org>", "status=sent"], 1);
    let other = pf.maillog_lines(&["status="]);
    assert_eq!(
        other.len(),
        4,
        "one status per recipient and the bounce:\n{other:#?}"
    );

    assert_read_back(&ms, &dc, BOB, "INBOX", &[&msg], true);
    assert_read_back(&ms, &dc, CAROL, "INBOX", &[&msg], true);
    assert!(!ms.mail_root.join("example.org").join("nobody").exists());

    let bounce = ms.maildir(ALICE).wait_messages("INBOX", 1);
    assert_eq!(bounce.len(), 1);
    assert_maildir_file(&bounce[0], ms.owner);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    assert_eq!(imap.examine("INBOX"), 1);
    let report = imap.fetch_all().remove(0);
    imap.logout();
    assert_eq!(report.body, lf_to_crlf(&bounce[0].bytes));
    assert!(
        find(&report.body, b"Return-Path: <>").is_some(),
        "a bounce has the null sender"
    );
    assert!(find(&report.body, b"Final-Recipient: rfc822; nobody@example.org").is_some());
    assert!(find(&report.body, b"Final-Recipient: rfc822; bob@example.org").is_none());
}

#[test]
fn lmtp_20_mib_message_reads_back_through_imap_with_w_as_size() {
    let (ms, dc) = start(Options::new(&[ALICE]));
    let mut body = Vec::with_capacity(21 << 20);
    let mut x: u32 = 0x2545_f491;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while body.len() < 20 << 20 {
        for _ in 0..76 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            body.push(ALPHABET[(x % 64) as usize]);
        }
        body.extend_from_slice(b"\r\n");
    }
    let msg = message_bytes(SENDER, ALICE, "twenty MiB", &body);
    assert!(msg.len() > 20 << 20);
    let mut c = ms.connect();
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &[ALICE], &msg));
    c.quit();
    let fetched = assert_read_back(&ms, &dc, ALICE, "INBOX", &[&msg], false);
    assert!(fetched[0].size > 20 << 20);
}

#[test]
fn lines_starting_with_dot_survive_lmtp_sendmail_and_smtp() {
    let (ms, dc) = start(Options::new(&[ALICE]));
    let pf = Postfix::start(&lmtp_inet(ms.tcp));
    let body = ".\n..\n.hidden\n. space\n...three\nmiddle\n.\n\n.\nlast .\n.end\n";
    let over_lmtp = message(SENDER, ALICE, "dots over LMTP", body);
    let over_sendmail = message(SENDER, ALICE, "dots through sendmail", body);
    let over_smtp = message(SENDER, ALICE, "dots through SMTP", body);
    assert!(find(&dot_stuff(&over_lmtp), b"\r\n..\r\n...\r\n..hidden\r\n").is_some());

    let mut c = ms.connect();
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &[ALICE], &over_lmtp));
    c.quit();
    pf.sendmail(SENDER, &[ALICE], &over_sendmail);
    pf.send_smtp(SENDER, &[ALICE], &over_smtp);
    pf.wait_queue_empty(TIMEOUT);
    pf.wait_maillog(&["to=<alice@example.org>", "status=sent"], 2);
    assert_read_back(
        &ms,
        &dc,
        ALICE,
        "INBOX",
        &[&over_lmtp, &over_sendmail, &over_smtp],
        true,
    );
}

#[test]
fn eight_bit_body_and_smtputf8_address_deliver_byte_exact() {
    let (ms, dc) = start(Options::new(&[ALICE, JORG]));
    let mut c = ms.connect();
    let lhlo = c.lhlo();
    for ext in ["8BITMIME", "SMTPUTF8"] {
        assert!(
            lhlo.iter()
                .any(|l| l.get(4..).is_some_and(|e| e.eq_ignore_ascii_case(ext))),
            "LHLO does not announce {ext}: {lhlo:?}"
        );
    }
    // Latin-1 bytes that are not UTF-8, UTF-8 text and a high byte at a line
    // start: all must come back unchanged.
    let body: &[u8] = b"caf\xe9 na\xefve \xff\xfe\n\xe9t\xe9\nGr\xc3\xbc\xc3\x9fe \xe6\x97\xa5\xe6\x9c\xac\n\x80\n";
    let to_alice = message_bytes(SENDER, ALICE, "eight bit", body);
    let r = c.cmd(&format!("MAIL FROM:<{SENDER}> BODY=8BITMIME"));
    assert_eq!(code(&r), 250, "{r:?}");
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&r), 250, "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    assert_delivered(&c.send_data(&to_alice, 1));

    let utf8_sender = "josé@example.net";
    let to_jorg = message_bytes(utf8_sender, JORG, "=?utf-8?q?gr=C3=BC=C3=9Fe?=", body);
    let r = c.cmd(&format!("MAIL FROM:<{utf8_sender}> BODY=8BITMIME SMTPUTF8"));
    assert_eq!(code(&r), 250, "{r:?}");
    let r = c.cmd(&format!("RCPT TO:<{JORG}>"));
    assert_eq!(code(&r), 250, "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    assert_delivered(&c.send_data(&to_jorg, 1));
    c.quit();

    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&to_alice], true);
    let fetched = assert_read_back(&ms, &dc, JORG, "INBOX", &[&to_jorg], true);
    // The home is {mail_root}/{domain}/{UTF-8 local part}.
    assert!(ms
        .mail_root
        .join("example.org")
        .join("jörg")
        .join("Maildir")
        .is_dir());
    let added = &fetched[0].body[..fetched[0].body.len() - to_jorg.len()];
    assert!(
        find(added, JORG.as_bytes()).is_some(),
        "Delivered-To names jörg"
    );
    assert!(
        find(added, utf8_sender.as_bytes()).is_some(),
        "Return-Path names josé"
    );
}

#[test]
fn detail_mailbox_files_plus_address_into_folder_that_imap_lists() {
    let mut opts = Options::new(&[ALICE]);
    opts.save_to_detail_mailbox = true;
    let (ms, dc) = start(opts);
    let to_lists = message(
        SENDER,
        "alice+lists@example.org",
        "to the list",
        "Filed by detail.\n",
    );
    let to_inbox = message(SENDER, ALICE, "plain", "No detail, INBOX.\n");
    let mut c = ms.connect();
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &["alice+lists@example.org"], &to_lists));
    assert_delivered(&c.deliver(SENDER, &[ALICE], &to_inbox));
    c.quit();

    assert_read_back(&ms, &dc, ALICE, "lists", &[&to_lists], false);
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&to_inbox], true);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    let names = imap.mailbox_names();
    imap.logout();
    assert!(names.iter().any(|n| n == "lists"), "LIST: {names:?}");
}

#[test]
fn disconnect_in_the_middle_of_data_delivers_nothing_and_leaves_tmp_empty() {
    let (mut ms, dc) = start(Options::new(&[ALICE]));
    // Larger than an in-memory buffer would likely be, so any spooling is
    // exercised too.
    let big = "x".repeat(998) + "\n";
    let aborted = message(SENDER, ALICE, "never complete", &big.repeat(3000));
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{SENDER}>"))), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(code(&c.cmd("DATA")), 354);
    let stuffed = dot_stuff(&aborted);
    c.write_raw(&stuffed[..stuffed.len() / 2]);
    drop(c);

    let marker = message(
        SENDER,
        ALICE,
        "marker",
        "Delivered after the aborted one.\n",
    );
    let mut c = ms.connect();
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &[ALICE], &marker));
    c.quit();
    // After a clean exit no session is left that could still write.
    assert!(ms.stop().success(), "mailstow exit status\n{}", ms.log());

    let md = ms.maildir(ALICE);
    assert_eq!(
        md.tmp_files("INBOX"),
        Vec::<String>::new(),
        "tmp/ must be empty"
    );
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&marker], true);
}

#[test]
fn sigterm_during_data_finishes_the_transaction_and_exits_zero() {
    let (mut ms, dc) = start(Options::new(&[ALICE]));
    let msg = message(
        SENDER,
        ALICE,
        "in flight",
        &"A line of the body.\n".repeat(5000),
    );
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{SENDER}>"))), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(code(&c.cmd("DATA")), 354);
    let mut wire = dot_stuff(&msg);
    wire.extend_from_slice(b".\r\n");
    let half = wire.len() / 2;
    c.write_raw(&wire[..half]);

    ms.signal(Signal::SIGTERM);
    // Proof that the signal was handled: new connections are no longer
    // served (refused, closed, or not greeted with 220).
    let tcp = ms.tcp;
    let stopped_serving = poll(TIMEOUT, || {
        let Ok(s) = TcpStream::connect_timeout(&tcp, Duration::from_secs(1)) else {
            return Some(());
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut line = [0u8; 3];
        let greeted = std::io::Read::read_exact(&mut &s, &mut line).is_ok() && &line == b"220";
        (!greeted).then_some(())
    });
    assert!(
        stopped_serving.is_some(),
        "mailstow still greets new connections with 220 after SIGTERM\n{}",
        ms.log()
    );
    // A slow client, not synchronisation: the rest of the body arrives well
    // after shutdown began, so a server that drops a session which is
    // quiet in the middle of DATA fails here.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        ms.exited().is_none(),
        "mailstow exited with a transaction in flight"
    );

    c.write_raw(&wire[half..]);
    let reply = c.read_reply();
    assert_eq!(
        code(&reply),
        250,
        "the transaction in flight completes: {reply:?}"
    );
    drop(c);
    let status = ms.wait_exit(TIMEOUT);
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM\n{}",
        ms.log()
    );
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&msg], true);
}

#[test]
fn ipv6_loopback_listener_delivers() {
    let mut opts = Options::new(&[ALICE]);
    opts.ipv6 = true;
    let (ms, dc) = start(opts);
    let addr = ms.tcp6.expect("an IPv6 listener");
    assert!(addr.is_ipv6() && addr.ip().is_loopback());
    let msg = message(SENDER, ALICE, "over ::1", "Delivered over IPv6 loopback.\n");
    let mut c = LmtpClient::tcp(addr);
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &[ALICE], &msg));
    c.quit();
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&msg], true);
}

#[test]
fn unix_socket_listener_has_configured_mode_delivers_from_postfix_and_is_removed_on_exit() {
    let mut opts = Options::new(&[ALICE]);
    opts.unix_socket = true;
    opts.socket_mode = 0o666;
    let (mut ms, dc) = start(opts);
    let path = ms.unix.clone().expect("a unix listener");
    assert_eq!(socket_mode(&path), Some(0o666), "{} mode", path.display());

    // Postfix's lmtp client runs as the postfix user: the mode lets it in.
    let pf = Postfix::start(&lmtp_unix(&path));
    let via_postfix = message(
        SENDER,
        ALICE,
        "over the socket",
        "Postfix to unix socket.\n",
    );
    pf.sendmail(SENDER, &[ALICE], &via_postfix);
    pf.wait_queue_empty(TIMEOUT);
    pf.wait_maillog(&["to=<alice@example.org>", "status=sent"], 1);
    let direct = message(SENDER, ALICE, "direct", "Raw client on the unix socket.\n");
    let mut c = LmtpClient::unix(&path);
    c.lhlo();
    assert_delivered(&c.deliver(SENDER, &[ALICE], &direct));
    c.quit();
    assert_read_back(&ms, &dc, ALICE, "INBOX", &[&via_postfix, &direct], true);

    assert!(ms.stop().success(), "mailstow exit status\n{}", ms.log());
    assert!(!path.exists(), "{} left behind after exit", path.display());
}
