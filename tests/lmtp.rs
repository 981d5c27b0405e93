//! LMTP over a real socket against the real binary: pipelining, per-
//! recipient replies, limits (size, recipients, line length, connections),
//! timeouts and sequence errors, checked on the wire and in the Maildir.
//! Must not need Postfix or Dovecot: these run without the peers.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{code, message, Mailstow, Options};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

fn codes(replies: &[Vec<String>]) -> Vec<u16> {
    replies.iter().map(|r| code(r)).collect()
}

#[test]
fn pipelined_transaction_gets_replies_in_order_one_per_recipient() {
    let ms = Mailstow::start(&[ALICE, BOB]);
    let mut c = ms.connect();
    let msg = message("s@example.net", ALICE, "pipelined", "body\r\n");
    let mut wire = format!(
        "LHLO client.test\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n"
    )
    .into_bytes();
    wire.extend_from_slice(&crate::util::dot_stuff(&msg));
    wire.extend_from_slice(b".\r\nQUIT\r\n");
    c.write_raw(&wire);
    let replies: Vec<_> = (0..9).map(|_| c.read_reply()).collect();
    assert_eq!(
        codes(&replies),
        vec![250, 250, 250, 550, 250, 354, 250, 250, 221],
        "{replies:?}"
    );
    assert!(replies[3][0].starts_with("550 5.1.1"), "{:?}", replies[3]);
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);
    assert_eq!(ms.maildir(BOB).messages("INBOX").len(), 1);
}

/// With `single_copy = false`; the default is tests/single_copy.rs's.
#[test]
fn each_copy_carries_its_own_trace_headers() {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.extra_toml = "[delivery]\nsingle_copy = false\n".into();
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    let msg = message("s@example.net", ALICE, "trace", "hello\r\n");
    let r = c.deliver("s@example.net", &[ALICE, BOB], &msg);
    assert_eq!(codes(&r), vec![250, 250]);
    for who in [ALICE, BOB] {
        let files = ms.maildir(who).messages("INBOX");
        let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
        assert!(
            text.starts_with("Return-Path: <s@example.net>\nDelivered-To: "),
            "{text}"
        );
        assert!(text.contains(&format!("Delivered-To: {who}\n")), "{text}");
        assert!(text.contains("with LMTP"), "{text}");
        assert!(text.contains(&format!("for <{who}>;")), "{text}");
        let stored = crate::util::stored_form(&msg);
        assert!(
            text.ends_with(std::str::from_utf8(&stored).unwrap()),
            "{text}"
        );
        assert!(!text.contains('\r'), "one line-end convention: {text:?}");
    }
}

#[test]
fn oversized_message_is_refused_per_recipient_and_the_session_stays_in_sync() {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.max_message_size = 10_000;
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net> SIZE=10001")), 552);
    let big = message("s@example.net", ALICE, "big", &"x".repeat(20_000));
    let r = c.deliver("s@example.net", &[ALICE, BOB], &big);
    assert_eq!(codes(&r), vec![552, 552], "{r:?}");
    assert!(r[0][0].starts_with("552 5.3.4"), "{r:?}");
    // Still in sync: the next transaction goes through.
    let small = message("s@example.net", ALICE, "small", "ok\r\n");
    assert_eq!(
        codes(&c.deliver("s@example.net", &[ALICE], &small)),
        vec![250]
    );
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);
    assert!(ms.maildir(BOB).messages("INBOX").is_empty());
    // Refused while the data came in: no queue id, sender or size to log.
    let log = ms.log();
    let line = log
        .lines()
        .find(|l| l.contains(" delivery ") && l.contains(&format!("to=<{BOB}>")))
        .unwrap_or_else(|| panic!("no delivery line for {BOB}:\n{log}"));
    assert!(
        line.contains(" status=bounced reply=\"552 5.3.4 "),
        "{line}"
    );
    for absent in [" id=", " from=", " size=", " stored="] {
        assert!(!line.contains(absent), "{absent} in {line}");
    }
}

/// The fields of a log line after its message, in order, as (name, value);
/// only for lines whose values hold no spaces.
fn log_fields<'a>(line: &'a str, message: &str) -> Vec<(&'a str, &'a str)> {
    let (_, fields) = line
        .split_once(&format!(" {message} "))
        .unwrap_or_else(|| panic!("no {message:?} in {line}"));
    fields
        .split(' ')
        .map(|f| {
            f.split_once('=')
                .unwrap_or_else(|| panic!("{f:?} in {line}"))
        })
        .collect()
}

#[test]
fn each_recipient_gets_one_delivery_line_with_each_field_once() {
    let ms = Mailstow::start(&[ALICE, BOB]);
    let mut c = ms.connect();
    c.lhlo();
    let msg = message("s@example.net", ALICE, "logged", "body\r\n");
    let r = c.deliver("s@example.net", &[ALICE, BOB], &msg);
    assert_eq!(codes(&r), vec![250, 250], "{r:?}");
    // "250 2.0.0 <queue id> Saved in INBOX"
    let id = r[0][0].split(' ').nth(2).unwrap().to_owned();
    let text = String::from_utf8_lossy(&msg).into_owned();
    let msgid = text
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap();
    let log = ms.log();
    for who in [ALICE, BOB] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" INFO delivery ") && l.contains(&format!(" to=<{who}> ")))
            .collect();
        assert_eq!(lines.len(), 1, "{log}");
        let fields = log_fields(lines[0], "delivery");
        let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "id", "to", "from", "size", "msgid", "folder", "stored", "delay", "status",
                "session", "peer"
            ],
            "{}",
            lines[0]
        );
        let value = |n: &str| fields.iter().find(|f| f.0 == n).unwrap().1;
        let file = &ms.maildir(who).messages("INBOX")[0];
        assert_eq!(value("id"), id);
        assert_eq!(value("from"), "<s@example.net>");
        assert_eq!(value("size"), msg.len().to_string());
        assert_eq!(value("msgid"), msgid);
        assert_eq!(value("folder"), "INBOX");
        assert_eq!(value("stored"), file.bytes.len().to_string());
        assert!(value("delay").parse::<f64>().is_ok(), "{}", lines[0]);
        assert_eq!(value("status"), "delivered");
        assert!(value("peer").starts_with("[127.0.0.1]:"), "{}", lines[0]);
        assert_ne!(value("session"), id);
    }
}

#[test]
fn bdat_chunks_deliver_byte_exact() {
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net> BODY=8BITMIME")), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    let msg = b"Subject: chunks\r\n\r\n.line with dot\r\n\xff\xfe bytes\n.\r\n";
    let (a, b) = msg.split_at(20);
    c.write_raw(format!("BDAT {}\r\n", a.len()).as_bytes());
    c.write_raw(a);
    assert_eq!(code(&c.read_reply()), 250);
    c.write_raw(format!("BDAT {} LAST\r\n", b.len()).as_bytes());
    c.write_raw(b);
    assert_eq!(code(&c.read_reply()), 250);
    let files = ms.maildir(ALICE).messages("INBOX");
    assert!(
        files[0].bytes.ends_with(&crate::util::stored_form(msg)),
        "BDAT content is stored as sent, with LF line ends"
    );
}

#[test]
fn too_many_recipients_get_452_and_the_accepted_ones_deliver() {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.max_recipients = 1;
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    let r = c.cmd(&format!("RCPT TO:<{BOB}>"));
    assert!(r[0].starts_with("452 4.5.3"), "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(&message("s@example.net", ALICE, "one", "x\r\n"), 1);
    assert_eq!(codes(&r), vec![250]);
}

#[test]
fn overlong_command_line_is_refused_and_the_session_continues() {
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    let r = c.cmd(&format!("NOOP {}", "a".repeat(10_000)));
    assert!(r[0].starts_with("500 5.5.2"), "{r:?}");
    assert_eq!(code(&c.cmd("NOOP")), 250);
    // Before LHLO, MAIL is a sequence error (Dovecot accepts it; we do not).
    assert!(c.cmd("MAIL FROM:<a@b.example>")[0].starts_with("503 5.5.1"));
    assert!(c.cmd("EHLO x")[0].starts_with("500"));
    assert!(c.cmd("VRFY alice")[0].starts_with("252"));
}

#[test]
fn idle_client_gets_421_after_the_idle_timeout() {
    let mut opts = Options::new(&[ALICE]);
    opts.limits_extra = "idle_timeout = 1\ndata_timeout = 1".into();
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    // The client's own read timeout would fail this if no 421 came.
    let r = c.read_reply();
    assert!(r[0].starts_with("421 4.4.2"), "{r:?}");
    assert!(c.try_read_reply().is_err(), "connection closed after 421");
    // A client stalling in the middle of DATA: 421, and nothing delivered.
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&c.cmd("DATA")), 354);
    c.write_raw(b"Subject: stalled\r\n\r\npart");
    assert!(c.read_reply()[0].starts_with("421 4.4.2"));
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    assert!(ms.maildir(ALICE).tmp_files("INBOX").is_empty());
}

#[test]
fn connections_over_the_limit_wait_for_a_permit() {
    let mut opts = Options::new(&[ALICE]);
    opts.max_connections = 1;
    let ms = Mailstow::start_with(opts);
    let first = ms.connect();
    // The second connection is queued by the kernel, not served: no greeting.
    let mut second = TcpStream::connect(ms.tcp).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        second.read(&mut buf).is_err(),
        "no greeting while the permit is taken"
    );
    first.quit();
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = second.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"220 "),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn smuggled_end_of_data_with_bare_lf_is_message_content() {
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&c.cmd("DATA")), 354);
    c.write_raw(b"Subject: smuggle\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nevil\r\n.\r\n");
    let r = c.read_reply();
    assert_eq!(code(&r), 250, "{r:?}");
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1, "one message, not two");
    let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
    assert!(
        text.contains("hello\n.\nMAIL FROM:<evil@example.net>"),
        "{text}"
    );
    let lines = files[0].bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(
        files[0].vsize(),
        files[0].bytes.len() as u64 + lines,
        "W counts every LF as CRLF"
    );
}

#[test]
fn a_client_can_hang_up_anywhere_without_harm() {
    let ms = Mailstow::start(&[ALICE]);
    for cut in [
        &b"LHL"[..],
        b"LHLO x\r\nMAIL FROM:<s@example.net>\r\n",
        b"LHLO x\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice@example.org>\r\nBDAT 100\r\nabc",
    ] {
        let mut c = ms.connect();
        c.write_raw(cut);
        drop(c);
    }
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "after", "x\r\n"),
    );
    assert_eq!(codes(&r), vec![250]);
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);
}

#[test]
fn duplicate_suppression_stores_a_message_id_once_when_enabled() {
    let msg = |id: &str| {
        format!("Message-ID: <{id}@example.net>\r\nSubject: dup\r\n\r\nbody\r\n").into_bytes()
    };
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[delivery]\nduplicate_suppression = true\n".into();
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    for id in ["one", "one", "two"] {
        let r = c.deliver("s@example.net", &[ALICE], &msg(id));
        assert_eq!(codes(&r), vec![250], "a duplicate is still answered 250");
    }
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 2);
    assert!(ms.log().contains("duplicate suppressed"), "{}", ms.log());
    // Off by default: both copies stored.
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    c.lhlo();
    for _ in 0..2 {
        assert_eq!(
            codes(&c.deliver("s@example.net", &[ALICE], &msg("one"))),
            vec![250]
        );
    }
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 2);
}

#[test]
fn sigterm_waits_for_a_stalled_transaction_only_for_the_grace_period() {
    let mut opts = Options::new(&[ALICE]);
    // Timeouts far beyond the test's patience: only the grace period can
    // end the stalled transaction before wait_exit gives up.
    opts.limits_extra =
        "shutdown_grace = 1\nidle_timeout = 3600\ndata_timeout = 3600\ndata_total_timeout = 3600"
            .into();
    let mut ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&c.cmd("DATA")), 354);
    c.write_raw(b"Subject: stalled\r\n\r\nhalf a mess");
    ms.signal(nix::sys::signal::Signal::SIGTERM);
    let status = ms.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert!(
        ms.maildir(ALICE).messages("INBOX").is_empty(),
        "nothing half-received is delivered"
    );
}

/// The recipients of one transaction are stored side by side; the replies
/// still come one per recipient in RCPT order, each for its own outcome.
#[test]
fn many_recipients_delivered_at_once_still_get_their_own_replies_in_order() {
    let users: Vec<String> = (0..12).map(|i| format!("u{i}@example.org")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let ms = Mailstow::start(&refs);
    // Two of them refuse everything: their replies must stay at their places.
    for who in [refs[3], refs[8]] {
        ms.install_sieve(who, "require \"reject\";\nreject \"not here\";\n");
    }
    let mut c = ms.connect();
    c.lhlo();
    for round in 0..3 {
        let msg = message(
            "s@example.net",
            refs[0],
            &format!("fan-out {round}"),
            "x\r\n",
        );
        let replies = c.deliver("s@example.net", &refs, &msg);
        let want: Vec<u16> = (0..12)
            .map(|i| if i == 3 || i == 8 { 550 } else { 250 })
            .collect();
        assert_eq!(codes(&replies), want, "{replies:?}");
    }
    for (i, who) in refs.iter().enumerate() {
        let n = ms.maildir(who).messages("INBOX").len();
        assert_eq!(n, if i == 3 || i == 8 { 0 } else { 3 }, "{who}");
    }
}

#[test]
fn a_return_path_the_mta_wrote_above_the_message_is_replaced_by_ours() {
    // What OpenSMTPD's lmtp action (mail.lmtp) sends: its own Return-Path
    // and Delivered-To above the message. RFC 5321 4.4: the final delivery
    // writes the Return-Path; the stored copy has one, from MAIL FROM.
    let ms = Mailstow::start(&[ALICE]);
    let mut c = ms.connect();
    c.lhlo();
    let msg = b"Return-Path: <forged@example.net>\r\nDelivered-To: alice@example.org\r\nSubject: rp\r\nReturn-Path: <later@example.net>\r\n\r\nhi\r\n";
    let r = c.deliver("s@example.net", &[ALICE], msg);
    assert_eq!(codes(&r), vec![250]);
    let text = String::from_utf8_lossy(&ms.maildir(ALICE).messages("INBOX")[0].bytes).into_owned();
    assert!(text.starts_with("Return-Path: <s@example.net>\n"), "{text}");
    assert!(!text.contains("forged@"), "{text}");
    assert!(
        text.ends_with("Delivered-To: alice@example.org\nSubject: rp\nReturn-Path: <later@example.net>\n\nhi\n"),
        "only the fields at the top are dropped: {text}"
    );
}

#[test]
fn the_original_recipient_comes_from_the_configured_header_when_the_mta_gives_none() {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.extra_toml = "[delivery]\noriginal_recipient_header = \"X-Original-To\"\n".into();
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    let msg = b"X-Original-To: alias@example.org\r\nSubject: orig\r\n\r\nhi\r\n";
    // bob's RCPT carries an ORCPT: the MTA's wins over the header.
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net>")), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(
        code(&c.cmd(&format!("RCPT TO:<{BOB}> ORCPT=rfc822;list@example.org"))),
        250
    );
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(msg, 2);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    let log = ms.log();
    let line = |who: &str| {
        log.lines()
            .find(|l| l.contains(" INFO delivery ") && l.contains(&format!(" to=<{who}> ")))
            .unwrap_or_else(|| panic!("{log}"))
            .to_owned()
    };
    assert!(
        line(ALICE).contains(" orig_to=<alias@example.org> "),
        "{log}"
    );
    assert!(line(BOB).contains(" orig_to=<list@example.org> "), "{log}");
}

#[test]
fn a_delivery_format_writes_the_line_dovecot_would() {
    let mut opts = Options::new(&[ALICE]);
    // The fixture's [log] table is the last before extra_toml.
    opts.extra_toml = "delivery_format = \"msgid=%m: %$ from=%f subject=%s\"\n".into();
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    let msg = b"From: Sender <s@example.net>\r\nSubject: formatted\r\nMessage-ID: <f1@client.test>\r\n\r\nhi\r\n";
    let r = c.deliver("s@example.net", &[ALICE], msg);
    assert_eq!(codes(&r), vec![250]);
    let log = ms.log();
    assert!(
        log.lines().any(|l| l.contains(
            "msgid=<f1@client.test>: saved mail to INBOX from=Sender <s@example.net> subject=formatted"
        )),
        "{log}"
    );
}
