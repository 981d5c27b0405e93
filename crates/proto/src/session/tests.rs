//! Transcript and property tests of the LMTP and SMTP session: a fake host answers
//! the session's requests; client bytes in, server bytes out. Must not open
//! sockets: the real-socket tests live in tests/.

use super::*;
use proptest::prelude::*;

fn cfg() -> SessionConfig {
    SessionConfig {
        hostname: "mx.test".into(),
        mode: Mode::Lmtp,
        starttls: false,
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 512,
        max_commands: 100,
        max_errors: 10,
    }
}

/// What the fake host saw and sent.
#[derive(Debug, Default, PartialEq, Eq)]
struct Run {
    wire: String,
    delivered: Vec<(Vec<String>, Vec<u8>)>,
    aborted: usize,
    refused: Vec<String>,
    closed: bool,
    /// TLS handshakes the host ran (each one succeeded).
    tls: usize,
}

/// Drive a session over `chunks` of client input with a host that knows
/// alice and bob, and that fails delivery to bob (to prove per-recipient
/// replies).
fn run_with(cfg: SessionConfig, chunks: &[&[u8]]) -> Run {
    let mut s: Session<String> = Session::new(cfg);
    let mut run = Run::default();
    let mut out = Vec::new();
    s.greeting().write_to(&mut out);
    let mut spool: Option<Vec<u8>> = None;
    for chunk in chunks {
        s.feed(chunk);
        while let Some(ev) = s.poll() {
            match ev {
                Event::Reply(r) => r.write_to(&mut out),
                Event::CheckRecipient { rcpt, .. } => {
                    let r = if rcpt.local == "alice" || rcpt.local == "bob" {
                        Ok(rcpt.to_string())
                    } else {
                        Err(Reply::new(550, "5.1.1", "User unknown"))
                    };
                    s.rcpt_checked(r);
                }
                Event::DataStart => {
                    assert!(spool.is_none(), "DataStart twice");
                    spool = Some(Vec::new());
                }
                Event::Body(b) => spool.as_mut().expect("Body before DataStart").extend(b),
                Event::DataAborted { refused } => {
                    run.refused.extend(refused);
                    spool.take().expect("DataAborted without DataStart");
                    run.aborted += 1;
                }
                Event::Deliver(tx) => {
                    let body = spool.take().expect("Deliver without DataStart");
                    assert_eq!(tx.size, body.len() as u64);
                    let replies = tx
                        .recipients
                        .iter()
                        .map(|r| {
                            if r.starts_with("bob") {
                                Reply::new(452, "4.3.1", "Insufficient system storage")
                            } else {
                                Reply::new(250, "2.0.0", "Saved")
                            }
                        })
                        .collect();
                    run.delivered.push((tx.recipients, body));
                    if s.mode() == Mode::Smtp {
                        s.delivered(vec![Reply::new(250, "2.0.0", "Accepted")]);
                    } else {
                        s.delivered(replies);
                    }
                }
                Event::Close => run.closed = true,
                Event::StartTls => {
                    assert!(!s.has_pending_input(), "input buffered at STARTTLS");
                    run.tls += 1;
                    s.tls_started();
                }
            }
        }
    }
    run.wire = String::from_utf8_lossy(&out).into_owned();
    run
}

fn run(input: &str) -> Run {
    run_with(cfg(), &[input.as_bytes()])
}

const GREETING: &str = "220 mx.test LMTP mailstow ready\r\n";
const LHLO_REPLY: &str = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 XMAILSTOW-HOPS\r\n";

#[test]
fn lhlo_announces_the_extensions() {
    let r = run("LHLO client\r\n");
    assert_eq!(r.wire, format!("{GREETING}{LHLO_REPLY}"));
}

#[test]
fn one_reply_per_recipient_after_data_in_rcpt_order() {
    let r = run("LHLO c\r\nMAIL FROM:<s@x.example>\r\nRCPT TO:<alice@x.example>\r\nRCPT TO:<nobody@x.example>\r\nRCPT TO:<bob@x.example>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    let expect = format!(
        "{GREETING}{LHLO_REPLY}250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 User unknown\r\n250 2.1.5 OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Saved\r\n452 4.3.1 Insufficient system storage\r\n221 2.0.0 mx.test closing connection\r\n"
    );
    assert_eq!(r.wire, expect);
    assert_eq!(r.delivered.len(), 1);
    assert_eq!(r.delivered[0].0, vec!["alice@x.example", "bob@x.example"]);
    assert_eq!(r.delivered[0].1, b"Subject: hi\r\n\r\nbody\r\n");
    assert!(r.closed);
}

#[test]
fn dot_unstuffing_and_only_crlf_dot_crlf_ends_data() {
    let r = run("LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@x>\r\nDATA\r\n..leading dot\r\nsmuggle\n.\r\nMAIL FROM:<evil@x>\r\nstill\r.\r\nbody\r\n.\r\n");
    assert_eq!(r.delivered.len(), 1);
    assert_eq!(
        r.delivered[0].1,
        b".leading dot\r\nsmuggle\n.\r\nMAIL FROM:<evil@x>\r\nstill\r.\r\nbody\r\n"
    );
    assert!(r.wire.ends_with("250 2.0.0 Saved\r\n"));
}

#[test]
fn sequence_errors() {
    let r = run("MAIL FROM:<a@x>\r\nLHLO c\r\nRCPT TO:<alice@x>\r\nDATA\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nDATA\r\nHELO c\r\n");
    let want = [
        "503 5.5.1 Send LHLO first",
        "503 5.5.1 Need MAIL command first",
        "503 5.5.1 Need MAIL command first",
        "250 2.1.0 OK",
        "503 5.5.1 Nested MAIL command",
        "554 5.5.1 No valid recipients",
        "500 5.5.1 This is LMTP (RFC 2033): use LHLO",
    ];
    let mut at = 0;
    for w in want {
        let i = r.wire[at..]
            .find(w)
            .unwrap_or_else(|| panic!("{w} in {}", r.wire));
        at += i + w.len();
    }
}

#[test]
fn message_too_large_is_refused_per_recipient_and_session_stays_in_sync() {
    let big = "x".repeat(1500);
    let r = run(&format!("LHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\n{big}\r\n.\r\nNOOP\r\n"));
    assert!(r.delivered.is_empty());
    assert_eq!(r.aborted, 1);
    assert_eq!(r.refused, vec!["alice@x", "bob@x"]);
    assert!(r.wire.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"), "{}", r.wire);
}

#[test]
fn mail_size_parameter_over_the_limit() {
    let r = run("LHLO c\r\nMAIL FROM:<a@x> SIZE=1001\r\nMAIL FROM:<a@x> SIZE=1000\r\n");
    assert!(r.wire.ends_with(
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.1.0 OK\r\n"
    ));
}

#[test]
fn too_many_recipients_is_a_temporary_refusal() {
    let r = run("LHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<alice@x>\r\n");
    assert!(r
        .wire
        .ends_with("250 2.1.5 OK\r\n452 4.5.3 Too many recipients\r\n"));
}

#[test]
fn non_ascii_addresses_need_smtputf8() {
    let r = run("LHLO c\r\nMAIL FROM:<jösé@x>\r\nMAIL FROM:<a@x>\r\nRCPT TO:<ålice@x>\r\nRSET\r\nMAIL FROM:<jösé@x> SMTPUTF8\r\n");
    assert!(r.wire.contains("553 5.6.7 Non-ASCII sender"));
    assert!(r.wire.contains("553 5.6.7 Non-ASCII recipient"));
    assert!(r.wire.ends_with("250 2.0.0 OK\r\n250 2.1.0 OK\r\n"));
}

#[test]
fn bdat_chunks_and_last() {
    let r = run("LHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nBDAT 5\r\nab\r\ncBDAT 3 LAST\r\n.\r\nNOOP\r\n");
    assert_eq!(r.delivered.len(), 1);
    assert_eq!(r.delivered[0].1, b"ab\r\nc.\r\n");
    assert!(
        r.wire
            .ends_with("250 2.0.0 5 octets received\r\n250 2.0.0 Saved\r\n250 2.0.0 OK\r\n"),
        "{}",
        r.wire
    );
}

#[test]
fn bdat_without_recipients_consumes_the_chunk_and_later_chunks_are_refused() {
    let r =
        run("LHLO c\r\nBDAT 4\r\nRSETMAIL FROM:<a@x>\r\nBDAT 3\r\nxyzBDAT 2 LAST\r\nqqRSET\r\n");
    assert!(r.delivered.is_empty());
    assert!(r.wire.ends_with("503 5.5.1 Need MAIL command first\r\n250 2.1.0 OK\r\n554 5.5.1 No valid recipients\r\n503 5.5.1 Earlier BDAT failed: send RSET\r\n250 2.0.0 OK\r\n"), "{}", r.wire);
}

#[test]
fn bdat_over_the_limit_aborts_once() {
    let big = "y".repeat(1200);
    let r = run(&format!("LHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nBDAT 1200\r\n{big}BDAT 1 LAST\r\nzRSET\r\n"));
    assert!(r.delivered.is_empty());
    assert_eq!(r.aborted, 1);
    assert!(r.wire.ends_with("552 5.3.4 Message size exceeds fixed maximum message size\r\n503 5.5.1 Earlier BDAT failed: send RSET\r\n250 2.0.0 OK\r\n"), "{}", r.wire);
}

#[test]
fn rset_between_chunks_drops_the_spool() {
    let r = run("LHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nBDAT 2\r\nabRSET\r\n");
    assert_eq!(r.aborted, 1);
    assert!(r.refused.is_empty(), "an abandoned message refuses nobody");
    assert!(r.delivered.is_empty());
}

#[test]
fn long_lines_and_bare_line_ends_in_commands() {
    let long = "N".repeat(600);
    let r = run(&format!("{long}\r\nNOOP\nNOOP\rNOOP\r\nNOOP\r\n"));
    assert_eq!(
        r.wire,
        format!("{GREETING}500 5.5.2 Line too long\r\n500 5.5.2 Bare LF in command line: lines end with CRLF\r\n500 5.5.2 Bare CR in command line\r\n250 2.0.0 OK\r\n")
    );
}

#[test]
fn an_endless_line_is_refused_once_and_memory_stays_bounded() {
    let mut s: Session<String> = Session::new(cfg());
    let mut replies = 0;
    for _ in 0..1000 {
        s.feed(&[b'A'; 1024]);
        while let Some(ev) = s.poll() {
            assert!(matches!(ev, Event::Reply(ref r) if r.code == 500));
            replies += 1;
        }
        assert!(s.inbuf.len() <= 512 + 1024);
    }
    s.feed(b"\r\nNOOP\r\n");
    let ev: Vec<_> = std::iter::from_fn(|| s.poll()).collect();
    assert_eq!(replies, 1);
    assert_eq!(ev, vec![Event::Reply(Reply::new(250, "2.0.0", "OK"))]);
}

#[test]
fn vrfy_help_noop_quit() {
    let r = run("VRFY alice\r\nHELP\r\nNOOP\r\nQUIT\r\nNOOP\r\n");
    assert!(r.wire.contains("252 2.5.0"));
    assert!(r.wire.contains("214 2.0.0"));
    assert!(r.wire.ends_with("221 2.0.0 mx.test closing connection\r\n"));
    assert!(r.closed);
}

#[test]
fn transaction_state_is_visible_for_shutdown() {
    let mut s: Session<String> = Session::new(cfg());
    s.feed(b"LHLO c\r\nMAIL FROM:<a@x>\r\n");
    while s.poll().is_some() {}
    assert!(s.in_transaction());
    s.feed(b"RSET\r\n");
    while s.poll().is_some() {}
    assert!(!s.in_transaction());
}

#[test]
fn nul_in_a_command_line_is_refused_whatever_the_command() {
    let r = run("NOOP a\0b\r\nVRFY \0\r\nHELP\0\r\nLHLO c\r\nMAIL FROM:<a\0@x>\r\nNOOP\r\n");
    assert_eq!(
        r.wire.matches("500 5.5.2 NUL in command line\r\n").count(),
        4,
        "{}",
        r.wire
    );
    assert!(
        r.wire.ends_with(&format!(
            "{LHLO_REPLY}500 5.5.2 NUL in command line\r\n250 2.0.0 OK\r\n"
        )),
        "{}",
        r.wire
    );
}

#[test]
fn the_tenth_error_is_followed_by_421_and_the_close() {
    let bad = "BOGUS\r\n".repeat(9);
    let r = run(&format!(
        "{bad}NOOP\r\nRCPT TO:<alice@x>\r\nNOOP\r\nNOOP\r\n"
    ));
    assert_eq!(r.wire.matches("500 5.5.2").count(), 9);
    assert!(
        r.wire.ends_with("250 2.0.0 OK\r\n503 5.5.1 Need MAIL command first\r\n421 4.7.0 mx.test Too many errors, closing connection\r\n"),
        "{}",
        r.wire
    );
    assert!(r.closed);
}

#[test]
fn refused_recipients_and_policy_replies_are_not_errors() {
    let rcpts = "RCPT TO:<nobody@x>\r\n".repeat(20);
    let r = run(&format!(
        "LHLO c\r\nMAIL FROM:<a@x> SIZE=5000\r\nMAIL FROM:<a@x>\r\n{rcpts}DATA\r\nNOOP\r\n"
    ));
    assert_eq!(r.wire.matches("550 5.1.1").count(), 20);
    assert!(r.wire.contains("552 5.3.4"));
    assert!(
        r.wire
            .ends_with("554 5.5.1 No valid recipients\r\n250 2.0.0 OK\r\n"),
        "{}",
        r.wire
    );
    assert!(!r.closed);
}

#[test]
fn the_command_over_max_commands_gets_421_and_a_delivery_restarts_the_counts() {
    let small = || SessionConfig {
        max_commands: 7,
        max_errors: 3,
        ..cfg()
    };
    let r = run_with(small(), &["NOOP\r\n".repeat(9).as_bytes()]);
    assert_eq!(r.wire.matches("250 2.0.0 OK").count(), 7);
    assert!(r
        .wire
        .ends_with("421 4.7.0 mx.test Too many commands, closing connection\r\n"));
    assert!(r.closed);
    // Two errors in six commands, a delivered message, two errors in five
    // commands: no limit hit.
    let r = run_with(
        small(),
        &[b"X\r\nY\r\nLHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nDATA\r\nhi\r\n.\r\nX\r\nY\r\nNOOP\r\nNOOP\r\nNOOP\r\n"],
    );
    assert_eq!(r.delivered.len(), 1);
    assert!(!r.closed, "{}", r.wire);
    assert!(r
        .wire
        .ends_with("250 2.0.0 OK\r\n250 2.0.0 OK\r\n250 2.0.0 OK\r\n"));
    // A failed delivery does not restart them.
    let r = run_with(
        small(),
        &[b"X\r\nY\r\nLHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\nhi\r\n.\r\nZ\r\n"],
    );
    assert!(r.closed, "{}", r.wire);
    assert!(r.wire.ends_with("452 4.3.1 Insufficient system storage\r\n500 5.5.2 Command unrecognized\r\n421 4.7.0 mx.test Too many errors, closing connection\r\n"), "{}", r.wire);
}

#[test]
fn an_error_limit_never_cuts_a_message_in_the_middle() {
    let cfg = SessionConfig {
        max_errors: 1,
        ..cfg()
    };
    // BDAT without MAIL: the chunk is read and dropped first, then 503 and 421.
    let r = run_with(cfg, &[b"BDAT 5\r\nNOOP\rNOOP\r\n"]);
    assert_eq!(
        r.wire,
        format!("{GREETING}503 5.5.1 Need MAIL command first\r\n421 4.7.0 mx.test Too many errors, closing connection\r\n")
    );
}

const SCRIPT: &str = "LHLO c\r\nMAIL FROM:<s@x> BODY=8BITMIME\r\nRCPT TO:<alice@x>\r\nRCPT TO:<zed@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\nFrom: s\r\n\r\n..dot\r\nbare\nlf\r.\r\nété\r\n.\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice@x>\r\nBDAT 7\r\nchunk\r\nBDAT 0 LAST\r\nBAD\r\nQUIT\r\n";

proptest! {
    /// The same input split at arbitrary byte boundaries gives the same
    /// replies and the same delivered bodies.
    #[test]
    fn any_split_gives_the_same_outcome(cuts in proptest::collection::vec(0usize..SCRIPT.len(), 0..12)) {
        let bytes = SCRIPT.as_bytes();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&bytes[at..c.max(at)]);
            at = c.max(at);
        }
        chunks.push(&bytes[at..]);
        let whole = run_with(cfg(), &[bytes]);
        let split = run_with(cfg(), &chunks);
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(whole.delivered.len(), 2);
    }

    /// Arbitrary input never panics and never grows the input buffer past
    /// one line plus what was fed.
    #[test]
    fn arbitrary_input_never_panics(input in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let r = run_with(cfg(), &[&input]);
        prop_assert!(r.wire.starts_with(GREETING));
    }
}

// ---- SMTP mode and STARTTLS ----

fn smtp_cfg() -> SessionConfig {
    SessionConfig {
        mode: Mode::Smtp,
        starttls: true,
        ..cfg()
    }
}

fn smtp(chunks: &[&str]) -> Run {
    let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
    run_with(smtp_cfg(), &chunks)
}

const SMTP_GREETING: &str = "220 mx.test ESMTP mailstow ready\r\n";
const EHLO_REPLY: &str = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1000\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 STARTTLS\r\n";

#[test]
fn smtp_greets_esmtp_and_ehlo_announces_starttls_helo_nothing() {
    let r = smtp(&["EHLO client.example\r\nHELO client.example\r\n"]);
    assert_eq!(
        r.wire,
        format!("{SMTP_GREETING}{EHLO_REPLY}250 mx.test\r\n"),
        "{}",
        r.wire
    );
}

#[test]
fn smtp_refuses_lhlo_and_needs_a_hello_name() {
    let r = smtp(&["LHLO c\r\nMAIL FROM:<a@x>\r\nEHLO\r\nHELO a\u{7f}b\r\n"]);
    assert_eq!(
        r.wire,
        format!("{SMTP_GREETING}500 5.5.1 This is SMTP: use EHLO or HELO (LHLO is LMTP)\r\n503 5.5.1 Send EHLO first\r\n501 5.5.4 Syntax: EHLO hostname\r\n501 5.5.4 Syntax: HELO hostname\r\n"),
        "{}",
        r.wire
    );
}

#[test]
fn smtp_gives_one_reply_after_data_whatever_the_recipients() {
    let r = smtp(&["EHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nNOOP\r\n"]);
    assert_eq!(r.delivered.len(), 1);
    assert_eq!(r.delivered[0].0, vec!["alice@x", "bob@x"]);
    assert!(
        r.wire.ends_with(
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Accepted\r\n250 2.0.0 OK\r\n"
        ),
        "{}",
        r.wire
    );
    // The same with BDAT.
    let r = smtp(&["EHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<bob@x>\r\nBDAT 4 LAST\r\nabcdNOOP\r\n"]);
    assert_eq!(r.delivered.len(), 1);
    assert!(
        r.wire
            .ends_with("250 2.1.5 OK\r\n250 2.0.0 Accepted\r\n250 2.0.0 OK\r\n"),
        "{}",
        r.wire
    );
}

#[test]
fn smtp_message_too_large_is_refused_once() {
    let big = "x".repeat(1500);
    let r = smtp(&[&format!(
        "EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<alice@x>\r\nRCPT TO:<bob@x>\r\nDATA\r\n{big}\r\n.\r\nNOOP\r\n"
    )]);
    assert_eq!(r.refused, vec!["alice@x", "bob@x"]);
    assert!(r.wire.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"), "{}", r.wire);
}

#[test]
fn after_starttls_the_session_starts_over_and_tls_is_not_offered_again() {
    let r = smtp(&[
        "EHLO c\r\nMAIL FROM:<a@x>\r\nRSET\r\nSTARTTLS\r\n",
        "MAIL FROM:<a@x>\r\nEHLO c\r\nSTARTTLS\r\nHELP\r\n",
    ]);
    assert_eq!(r.tls, 1);
    let ehlo_secure = EHLO_REPLY.replace("250-CHUNKING\r\n250 STARTTLS\r\n", "250 CHUNKING\r\n");
    assert_eq!(
        r.wire,
        format!("{SMTP_GREETING}{EHLO_REPLY}250 2.1.0 OK\r\n250 2.0.0 OK\r\n220 2.0.0 Ready to start TLS\r\n503 5.5.1 Send EHLO first\r\n{ehlo_secure}503 5.5.1 TLS already active\r\n214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"),
        "{}",
        r.wire
    );
}

#[test]
fn commands_pipelined_after_starttls_are_refused_and_none_runs() {
    // The CVE-2011-0411 injection: the plaintext after STARTTLS would be
    // taken as sent inside TLS. Whole lines and a partial one alike.
    for tail in ["MAIL FROM:<evil@x>\r\nRCPT TO:<alice@x>\r\n", "R", "\r\n"] {
        let r = smtp(&[&format!("EHLO c\r\nSTARTTLS\r\n{tail}"), "NOOP\r\n"]);
        assert_eq!(r.tls, 0, "{tail:?}");
        assert!(r.closed, "{tail:?}");
        assert_eq!(
            r.wire,
            format!("{SMTP_GREETING}{EHLO_REPLY}503 5.5.1 Commands pipelined after STARTTLS: refused, closing connection\r\n"),
            "{tail:?}"
        );
    }
}

#[test]
fn starttls_is_refused_in_a_transaction_and_unknown_when_not_offered() {
    let r = smtp(&["EHLO c\r\nMAIL FROM:<a@x>\r\nSTARTTLS\r\n"]);
    assert_eq!(r.tls, 0);
    assert!(r
        .wire
        .ends_with("503 5.5.1 STARTTLS not allowed in a mail transaction\r\n"));
    // LMTP without TLS configured answers exactly as before STARTTLS existed.
    let r = run("LHLO c\r\nSTARTTLS\r\n");
    assert_eq!(
        r.wire,
        format!("{GREETING}{LHLO_REPLY}500 5.5.2 Command unrecognized\r\n")
    );
}

#[test]
fn lmtp_with_tls_offers_starttls_and_keeps_its_verbs() {
    let c = SessionConfig {
        starttls: true,
        ..cfg()
    };
    let r = run_with(c, &[b"LHLO c\r\nSTARTTLS\r\n", b"EHLO c\r\nLHLO c\r\n"]);
    assert_eq!(r.tls, 1);
    let lhlo_tls = LHLO_REPLY.replace(
        "250 XMAILSTOW-HOPS\r\n",
        "250-XMAILSTOW-HOPS\r\n250 STARTTLS\r\n",
    );
    assert_eq!(
        r.wire,
        format!("{GREETING}{lhlo_tls}220 2.0.0 Ready to start TLS\r\n500 5.5.1 This is LMTP (RFC 2033): use LHLO\r\n{LHLO_REPLY}")
    );
}
