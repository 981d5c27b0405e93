//! Hostile input over a real LMTP socket: smuggling attempts, NUL, bare CR
//! and LF, over-long lines and addresses, pipelined garbage, commands out of
//! sequence, bad BDAT sizes, address edge cases, 8-bit commands, early
//! hang-ups, and the limits (errors, commands, connections per IP, slow
//! clients, memory). Each table case checks the exact replies, that nothing
//! was delivered or lost, and that a fresh client still gets a delivery
//! through. Must not need Postfix or Dovecot, nor bind anything but loopback.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{code, message, Mailstow, Options};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
/// `max_message_size` of the table's server.
const MAX_SIZE: usize = 100_000;
/// `max_commands` of the table's server.
const MAX_COMMANDS: usize = 40;

/// What the connection must look like once the expected replies are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// Still in sync: NOOP gets 250 and QUIT 221.
    Open,
    /// The server closed it (after a 421).
    Closed,
    /// The client hangs up without waiting for more.
    HangUp,
}

/// One hostile conversation: bytes sent at once after the greeting, the
/// replies expected (each a prefix of the reply's last line: code and
/// enhanced code), then the state of the connection and the messages that
/// must have been stored (in alice's and bob's INBOX together).
struct Case {
    name: &'static str,
    send: Vec<u8>,
    expect: Vec<&'static str>,
    after: After,
    delivered: usize,
    /// Bytes every message stored by the case must contain.
    stored: Option<Vec<u8>>,
}

fn case(name: &'static str, send: impl AsRef<[u8]>, expect: &[&'static str]) -> Case {
    Case {
        name,
        send: send.as_ref().to_vec(),
        expect: expect.to_vec(),
        after: After::Open,
        delivered: 0,
        stored: None,
    }
}

impl Case {
    fn closed(mut self) -> Case {
        self.after = After::Closed;
        self
    }
    fn hang_up(mut self) -> Case {
        self.after = After::HangUp;
        self
    }
    /// `n` messages stored, holding `containing` (as sent: compared in
    /// the stored form, CRLF made LF).
    fn delivers(mut self, n: usize, containing: &[u8]) -> Case {
        self.delivered = n;
        self.stored = Some(crate::util::stored_form(containing));
        self
    }
}

/// LHLO, MAIL, RCPT alice, DATA, then `body` (its own end marker included).
fn data(body: &[u8]) -> Vec<u8> {
    let mut v =
        format!("LHLO c.test\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
            .into_bytes();
    v.extend_from_slice(body);
    v
}

/// The replies to [`data`]'s commands, up to 354.
const TX: [&str; 4] = ["250 ", "250 2.1.0", "250 2.1.5", "354 "];

fn tx_then(rest: &[&'static str]) -> Vec<&'static str> {
    TX.iter().chain(rest).copied().collect()
}

/// LHLO, MAIL and RCPT alice, then `rest`.
fn rcpt(rest: &[u8]) -> Vec<u8> {
    let mut v =
        format!("LHLO c.test\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\n").into_bytes();
    v.extend_from_slice(rest);
    v
}

/// The smuggled transaction: if any of it were read as commands, bob would
/// get a message and the replies would not line up.
const EVIL: &[u8] =
    b"MAIL FROM:<evil@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: evil\r\n\r\nsmuggled\r\n";

fn smuggle(name: &'static str, marker: &[u8]) -> Case {
    let body = [
        b"Subject: s\r\n\r\nhello".as_slice(),
        marker,
        EVIL,
        b".\r\n",
    ]
    .concat();
    case(name, data(&body), &tx_then(&["250 2.0.0"])).delivers(1, b"MAIL FROM:<evil@example.net>")
}

fn cases() -> Vec<Case> {
    let long_local = format!("<{}@example.org>", "l".repeat(65));
    let local64 = format!("<{}@example.org>", "l".repeat(64));
    let label = "d".repeat(63);
    let domain256 = format!("x{label}.{label}.{label}.{}", "e".repeat(63));
    // 64 + 1 + 189 + 2 = 256: the longest path; one more octet is too long.
    let path256 = format!("<{}@{}.org>", "p".repeat(64), "q".repeat(185));
    let path257 = format!("<{}@{}.org>", "p".repeat(64), "q".repeat(186));
    let line_4096 = format!("NOOP {}\r\n", "a".repeat(4096 - 7));
    let line_4097 = format!("NOOP {}\r\n", "a".repeat(4096 - 6));
    let endless = [vec![b'Z'; 300_000], b"\r\nNOOP\r\n".to_vec()].concat();
    let bdat_exact = b"Subject: b\r\n\r\nx\0y\r\n.\r\nMAIL FROM:<evil@example.net>\r\n";
    let too_big = vec![b'b'; MAX_SIZE + 1];
    vec![
        // --- SMTP smuggling: only CRLF.CRLF ends DATA ---
        smuggle("smuggle LF.LF", b"\n.\n"),
        smuggle("smuggle CR.CR", b"\r.\r"),
        smuggle("smuggle LF.CRLF", b"\n.\r\n"),
        smuggle("smuggle CRLF.LF", b"\r\n.\n"),
        smuggle("smuggle CR.CRLF", b"\r.\r\n"),
        smuggle("smuggle CRLF.CR", b"\r\n.\r"),
        smuggle("smuggle CRLF.CRCRLF", b"\r\n.\r\r\n"),
        smuggle("smuggle LFCR.CRLF", b"\n\r.\r\n"),
        smuggle("smuggle CRLF.LFCRLF", b"\r\n.\n\r\n"),
        smuggle("smuggle CRLF..CRLF (stuffed)", b"\r\n..\r\n"),
        smuggle("smuggle CRLF.NUL CRLF", b"\r\n.\0\r\n"),
        case(
            "smuggle inside a BDAT chunk",
            rcpt(
                &[
                    format!("BDAT {} LAST\r\n", bdat_exact.len()).as_bytes(),
                    bdat_exact,
                ]
                .concat(),
            ),
            &["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0"],
        )
        .delivers(1, bdat_exact),
        // --- NUL: refused in commands, kept in message data ---
        case("NUL in NOOP", "NOOP a\0b\r\n", &["500 5.5.2"]),
        case("NUL alone", "\0\0\0\r\n", &["500 5.5.2"]),
        case("NUL in LHLO", "LHLO a\0b\r\n", &["500 5.5.2"]),
        case(
            "NUL in MAIL FROM",
            "LHLO c\r\nMAIL FROM:<a\0@example.net>\r\n",
            &["250 ", "500 5.5.2"],
        ),
        case(
            "NUL in RCPT TO",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<alice\0@example.org>\r\n",
            &["250 ", "250 2.1.0", "500 5.5.2"],
        ),
        case(
            "NUL in DATA is stored as sent",
            data(b"Subject: n\0ul\r\n\r\nbody\0with\0nuls\r\n.\r\n"),
            &tx_then(&["250 2.0.0"]),
        )
        .delivers(1, b"Subject: n\0ul\r\n\r\nbody\0with\0nuls\r\n"),
        // --- bare LF and bare CR in commands ---
        case("bare LF ends no command", "NOOP\n", &["500 5.5.2"]),
        case("bare CR inside a command", "NOOP\rNOOP\r\n", &["500 5.5.2"]),
        case(
            "bare LF then a command",
            "LHLO x\nMAIL FROM:<a@example.net>\r\n",
            &["500 5.5.2", "503 5.5.1"],
        ),
        case("empty line", "\r\n", &["500 5.5.2"]),
        // --- over-long lines and addresses (RFC 5321 4.5.3.1) ---
        case("line of exactly 4096 octets", line_4096, &["250 2.0.0"]),
        case("line of 4097 octets", line_4097, &["500 5.5.2"]),
        case(
            "300 kB without a line end",
            endless,
            &["500 5.5.2", "250 2.0.0"],
        ),
        case(
            "local part of 64 octets",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:{local64}\r\n"),
            &["250 ", "250 2.1.0", "550 5.1.1"],
        ),
        case(
            "local part of 65 octets",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:{long_local}\r\n"),
            &["250 ", "250 2.1.0", "501 5.1.3"],
        ),
        case(
            "sender local part of 65 octets",
            format!("LHLO c\r\nMAIL FROM:{long_local}\r\n"),
            &["250 ", "501 5.1.7"],
        ),
        case(
            "domain of 256 octets",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<a@{domain256}>\r\n"),
            &["250 ", "250 2.1.0", "501 5.1.3"],
        ),
        case(
            "path of 256 octets",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:{path256}\r\n"),
            &["250 ", "250 2.1.0", "550 5.1.1"],
        ),
        case(
            "path of 257 octets",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:{path257}\r\n"),
            &["250 ", "250 2.1.0", "501 5.1.3"],
        ),
        // --- unknown commands, 8-bit and non-UTF-8 in commands ---
        case("unknown verb", "XYZZY now\r\n", &["500 5.5.2"]),
        case("EXPN", "EXPN staff\r\n", &["500 5.5.2"]),
        case("HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &["500 5.5.2"; 3]),
        case(
            "TLS ClientHello bytes",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n",
            &["500 5.5.2"],
        ),
        case("MAIL without a space", "LHLO c\r\nMAILFROM:<a@b.example>\r\n", &["250 ", "500 5.5.2"]),
        case("Latin-1 byte in NOOP", b"NOOP caf\xe9\r\n", &["500 5.5.2"]),
        case(
            "Latin-1 byte in an address",
            b"LHLO c\r\nMAIL FROM:<j\xf6rg@example.net>\r\n",
            &["250 ", "500 5.5.2"],
        ),
        case(
            "UTF-8 sender without SMTPUTF8",
            "LHLO c\r\nMAIL FROM:<jörg@example.net>\r\n",
            &["250 ", "553 5.6.7"],
        ),
        case(
            "UTF-8 recipient without SMTPUTF8",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<ålice@example.org>\r\n",
            &["250 ", "250 2.1.0", "553 5.6.7"],
        ),
        case(
            "UTF-8 addresses with SMTPUTF8",
            "LHLO c\r\nMAIL FROM:<jörg@bücher.example> SMTPUTF8\r\nRCPT TO:<ålice@example.org>\r\n",
            &["250 ", "250 2.1.0", "550 5.1.1"],
        ),
        // --- commands out of sequence ---
        case("MAIL before LHLO", "MAIL FROM:<a@example.net>\r\n", &["503 5.5.1"]),
        case("RCPT without MAIL", format!("LHLO c\r\nRCPT TO:<{ALICE}>\r\n"), &["250 ", "503 5.5.1"]),
        case("DATA without MAIL", "LHLO c\r\nDATA\r\n", &["250 ", "503 5.5.1"]),
        case(
            "DATA without RCPT",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n",
            &["250 ", "250 2.1.0", "554 5.5.1", "500 5.5.2", "500 5.5.2", "500 5.5.2"],
        ),
        case(
            "DATA when every RCPT failed",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\n",
            &["250 ", "250 2.1.0", "550 5.1.1", "554 5.5.1"],
        ),
        case(
            "nested MAIL",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nMAIL FROM:<s@example.net>\r\n",
            &["250 ", "250 2.1.0", "503 5.5.1"],
        ),
        case("HELO in LMTP", "HELO c\r\n", &["500 5.5.1"]),
        case("EHLO in LMTP", "EHLO c\r\n", &["500 5.5.1"]),
        case(
            "DATA after BDAT",
            rcpt(b"BDAT 3\r\nabcDATA\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"],
        ),
        case(
            "RCPT after BDAT",
            rcpt(format!("BDAT 3\r\nabcRCPT TO:<{BOB}>\r\n").as_bytes()),
            &["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0", "503 5.5.1"],
        ),
        // --- BDAT with wrong sizes ---
        case("BDAT without MAIL eats its chunk", "LHLO c\r\nBDAT 6\r\nNOOP\r\n", &["250 ", "503 5.5.1"]),
        case("BDAT -1", rcpt(b"BDAT -1\r\n"), &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"]),
        case("BDAT +5", rcpt(b"BDAT +5\r\n"), &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"]),
        case("BDAT 0x10", rcpt(b"BDAT 0x10\r\n"), &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"]),
        case(
            "BDAT over 64 bits",
            rcpt(b"BDAT 99999999999999999999 LAST\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"],
        ),
        case("BDAT without size", rcpt(b"BDAT\r\n"), &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"]),
        case(
            "BDAT with a word after LAST",
            rcpt(b"BDAT 1 LAST NOW\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5", "501 5.5.4"],
        ),
        case(
            "BDAT shorter than what follows",
            rcpt(b"BDAT 3 LAST\r\nabcdefg\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0", "500 5.5.2"],
        )
        .delivers(1, b"abc"),
        case(
            "BDAT over the size limit",
            rcpt(&[format!("BDAT {} LAST\r\n", too_big.len()).as_bytes(), &too_big].concat()),
            &["250 ", "250 2.1.0", "250 2.1.5", "552 5.3.4"],
        ),
        case(
            "BDAT after a failed BDAT",
            rcpt(&[format!("BDAT {}\r\n", too_big.len()).as_bytes(), &too_big, b"BDAT 1 LAST\r\nx"].concat()),
            &["250 ", "250 2.1.0", "250 2.1.5", "552 5.3.4", "503 5.5.1"],
        ),
        case(
            "DATA over the size limit",
            data(&[&too_big[..], b"\r\n.\r\n"].concat()),
            &tx_then(&["552 5.3.4"]),
        ),
        // --- address edge cases (RFC 5321 4.1.2) ---
        case(
            "quoted local part reaches the user",
            "LHLO c\r\nMAIL FROM:<\"s x\"@example.net>\r\nRCPT TO:<\"alice\"@example.org>\r\nDATA\r\nSubject: q\r\n\r\nquoted\r\n.\r\n",
            &["250 ", "250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0"],
        )
        .delivers(1, b"quoted"),
        case(
            "source route is accepted and ignored",
            "LHLO c\r\nMAIL FROM:<@a.example,@b.example:s@example.net>\r\nRCPT TO:<@relay.example:alice@example.org>\r\nDATA\r\nSubject: r\r\n\r\nrouted\r\n.\r\n",
            &["250 ", "250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0"],
        )
        .delivers(1, b"Return-Path: <s@example.net>\r\n"),
        case(
            "address literals",
            "LHLO c\r\nMAIL FROM:<s@[IPv6:2001:db8::1]>\r\nRCPT TO:<alice@[IPv6:::1]>\r\nRCPT TO:<alice@[127.0.0.1]>\r\nRCPT TO:<alice@[IPv6:zz::1]>\r\nRCPT TO:<alice@[1.2.3.999]>\r\n",
            &["250 ", "250 2.1.0", "550 5.1.1", "550 5.1.1", "501 5.1.3", "501 5.1.3"],
        ),
        case(
            "malformed paths",
            "LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<>\r\nRCPT TO:alice@example.org\r\nRCPT TO:<alice@example.org\r\nRCPT TO:<al..ice@example.org>\r\nRCPT TO:<@x:>\r\n",
            &["250 ", "250 2.1.0", "501 5.1.3", "501 5.1.3", "501 5.1.3", "501 5.1.3", "501 5.1.3"],
        ),
        case(
            "bad parameters",
            "LHLO c\r\nMAIL FROM:<s@example.net> SIZE=abc\r\nMAIL FROM:<s@example.net> FOO=1\r\nMAIL FROM:<s@example.net> BODY=BINARYMIME\r\n",
            &["250 ", "501 5.5.4", "555 5.5.4", "501 5.5.4"],
        ),
        case(
            "null sender and Postmaster",
            "LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<ALICE@EXAMPLE.ORG>\r\n",
            &["250 ", "250 2.1.0", "550 5.1.1", "250 2.1.5"],
        ),
        // --- pipelined garbage, limits and hang-ups ---
        case(
            "pipelined transaction with a bad RCPT in the middle",
            format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<bad\r\nRCPT TO:<{BOB}>\r\nDATA\r\nSubject: p\r\n\r\npipelined\r\n.\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5", "501 5.1.3", "250 2.1.5", "354 ", "250 2.0.0", "250 2.0.0"],
        )
        .delivers(2, b"pipelined"),
        case(
            "nine garbage lines stay under the error limit",
            "junk\r\n".repeat(9),
            &["500 5.5.2"; 9],
        ),
        case(
            "the tenth error closes with 421",
            "junk\r\n".repeat(12),
            &[&["500 5.5.2"; 10][..], &["421 4.7.0"]].concat(),
        )
        .closed(),
        case(
            "errors of every kind count",
            "MAIL FROM:<a@b.example>\r\nLHLO c\r\nDATA\r\nRCPT TO:<x@y.example>\r\nBDAT x\r\nMAIL FROM:<a@b> FOO=1\r\nNOOP\0\r\nHELO x\r\nVRFY\n\r\nRSET now\r\nQUIT\r\n",
            &["503 5.5.1", "250 ", "503 5.5.1", "503 5.5.1", "501 5.5.4", "555 5.5.4", "500 5.5.2", "500 5.5.1", "500 5.5.2", "500 5.5.2", "501 5.5.4", "421 4.7.0"],
        )
        .closed(),
        case(
            "the command over max_commands closes with 421",
            "NOOP\r\n".repeat(MAX_COMMANDS + 3),
            &[&["250 2.0.0"; MAX_COMMANDS][..], &["421 4.7.0"]].concat(),
        )
        .closed(),
        case("hang-up mid-command", "LHLO c\r\nMAIL FROM:<s@exa", &["250 "]).hang_up(),
        case("hang-up right after 354", data(b""), &TX).hang_up(),
        case("hang-up mid-DATA", data(b"Subject: cut\r\n\r\nhalf a mes"), &TX).hang_up(),
        case("hang-up after CRLF. in DATA", data(b"Subject: cut\r\n\r\nbody\r\n."), &TX).hang_up(),
        case("hang-up after CRLF.CR in DATA", data(b"Subject: cut\r\n\r\nbody\r\n.\r"), &TX).hang_up(),
        case(
            "hang-up mid-BDAT chunk",
            rcpt(b"BDAT 100 LAST\r\nSubject: cut\r\n\r\n"),
            &["250 ", "250 2.1.0", "250 2.1.5"],
        )
        .hang_up(),
        case(
            "hang-up between BDAT chunks",
            rcpt(b"BDAT 4\r\nabcd"),
            &["250 ", "250 2.1.0", "250 2.1.5", "250 2.0.0"],
        )
        .hang_up(),
    ]
}

/// Every message file in alice's and bob's INBOX, by name.
fn stored(ms: &Mailstow) -> BTreeSet<String> {
    [ALICE, BOB]
        .iter()
        .flat_map(|u| ms.maildir(u).messages("INBOX"))
        .map(|m| m.path.to_string_lossy().into_owned())
        .collect()
}

/// A fresh client completes a delivery to alice.
fn fresh_delivery_works(ms: &Mailstow, after: &str) {
    let before = stored(ms).len();
    // A connection the client just closed may count against the per-IP
    // limit for a moment: wait for a place rather than take a 421.
    let mut c = crate::util::poll(std::time::Duration::from_secs(20), || {
        crate::util::LmtpClient::try_tcp(ms.tcp).ok()
    })
    .unwrap_or_else(|| panic!("{after}: no place for a fresh client"));
    c.lhlo();
    let msg = message(
        "s@example.net",
        ALICE,
        "fresh",
        "after a hostile client\r\n",
    );
    let r = c.deliver("s@example.net", &[ALICE], &msg);
    assert_eq!(code(&r[0]), 250, "{after}: fresh delivery: {r:?}");
    c.quit();
    assert_eq!(
        stored(ms).len(),
        before + 1,
        "{after}: fresh delivery stored once"
    );
}

/// Run one case on a fresh connection and check everything it promises.
fn check(ms: &Mailstow, case: &Case) {
    let name = case.name;
    let before = stored(ms);
    let mut c = ms.connect();
    c.write_raw(&case.send);
    for (i, want) in case.expect.iter().enumerate() {
        let r = c
            .try_read_reply()
            .unwrap_or_else(|e| panic!("{name}: reply {i} (want {want:?}): {e}"));
        let last = r.last().map(String::as_str).unwrap_or("");
        assert!(
            last.starts_with(want),
            "{name}: reply {i} is {r:?}, want {want:?}"
        );
    }
    match case.after {
        After::Open => {
            let r = c.cmd("NOOP");
            assert!(
                r[0].starts_with("250 2.0.0"),
                "{name}: in sync? NOOP got {r:?}"
            );
            let r = c.cmd("QUIT");
            assert!(r[0].starts_with("221 2.0.0"), "{name}: QUIT got {r:?}");
        }
        After::Closed => {
            let more = c.try_read_reply();
            assert!(
                more.is_err(),
                "{name}: closed after the replies, got {more:?}"
            );
        }
        After::HangUp => drop(c),
    }
    let now = stored(ms);
    assert!(before.is_subset(&now), "{name}: a message was lost");
    let new: Vec<&String> = now.difference(&before).collect();
    assert_eq!(
        new.len(),
        case.delivered,
        "{name}: messages stored by the case: {new:?}"
    );
    if let Some(want) = &case.stored {
        for path in &new {
            let bytes = std::fs::read(path).unwrap_or_default();
            assert!(
                crate::util::find(&bytes, want).is_some(),
                "{name}: {path} lacks {:?}:\n{}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    fresh_delivery_works(ms, name);
    // Nothing turned up late either (a hung-up transaction delivered later).
    assert_eq!(
        stored(ms).len(),
        now.len() + 1,
        "{name}: stored after the fresh delivery"
    );
    for u in [ALICE, BOB] {
        assert!(
            ms.maildir(u).tmp_files("INBOX").is_empty(),
            "{name}: left in tmp/"
        );
    }
}

#[test]
fn hostile_inputs_get_exact_replies_and_the_server_keeps_serving() {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.max_message_size = MAX_SIZE as u64;
    opts.limits_extra = format!("max_commands = {MAX_COMMANDS}\nmax_errors = 10");
    let ms = Mailstow::start_with(opts);
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut names = BTreeSet::new();
    for case in &cases {
        assert!(names.insert(case.name), "two cases named {:?}", case.name);
        check(&ms, case);
    }
}

/// A raw client for tests that pace their bytes: the stream and a reader
/// over a clone of it, greeting read.
fn raw(ms: &Mailstow) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(ms.tcp).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("220 "), "{line:?}");
    (s, r)
}

/// Send `prefix` and read its `replies`, then write `bytes` (repeated) one
/// at a time, `pause` apart, until the server answers; returns that answer
/// (the connection must be closed after it) and the time from before the
/// prefix was sent, so no server timer can have started earlier.
fn drip(
    ms: &Mailstow,
    prefix: &[u8],
    replies: usize,
    bytes: &[u8],
    pause: Duration,
) -> (String, Duration) {
    let (mut s, mut r) = raw(ms);
    let t = Instant::now();
    s.write_all(prefix).unwrap();
    for _ in 0..replies {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with('2') || line.starts_with('3'), "{line:?}");
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    let mut writer = s.try_clone().unwrap();
    let bytes = bytes.to_vec();
    let dripper = std::thread::spawn(move || {
        for b in bytes.iter().cycle().take(10_000) {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let took = t.elapsed();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "closed after {line:?}, then {rest:?}");
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = dripper.join();
    (line, took)
}

#[test]
fn a_slow_loris_is_cut_by_the_timeouts() {
    let mut opts = Options::new(&[ALICE]);
    opts.limits_extra = "idle_timeout = 2\ndata_timeout = 1\ndata_total_timeout = 3".into();
    let ms = Mailstow::start_with(opts);
    let pause = Duration::from_millis(100);
    // The drips go on for 1,000 s, far past the client's 60 s read
    // timeout: a timeout the drips kept open fails the read, not a clock.
    // One byte per 100 ms of a command line that never ends: the idle
    // timeout covers the whole line, so the bytes do not keep it open.
    let (line, _) = drip(&ms, b"", 0, b"NOOP aaaaaaaa", pause);
    assert!(line.starts_with("421 4.4.2"), "{line:?}");
    // One byte per 100 ms of message data: each block comes well within the
    // data timeout, the total data timeout ends it.
    let prefix = format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n");
    let (line, took) = drip(
        &ms,
        prefix.as_bytes(),
        4,
        b"Subject: slow\r\n\r\nxxx\r\n",
        pause,
    );
    assert!(line.starts_with("421 4.4.2"), "{line:?}");
    // Measured from before DATA was sent: a lower bound no load can break.
    assert!(
        took >= Duration::from_secs(3),
        "not before the total timeout: {took:?}"
    );
    // The same through BDAT: one chunk that never completes.
    let prefix =
        format!("LHLO c\r\nMAIL FROM:<s@example.net>\r\nRCPT TO:<{ALICE}>\r\nBDAT 100000 LAST\r\n");
    let (line, _) = drip(&ms, prefix.as_bytes(), 3, b"y", pause);
    assert!(line.starts_with("421 4.4.2"), "{line:?}");
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    assert!(ms.maildir(ALICE).tmp_files("INBOX").is_empty());
    fresh_delivery_works(&ms, "slow loris");
}

#[test]
fn a_client_that_never_reads_its_replies_is_dropped_after_the_idle_timeout() {
    let mut opts = Options::new(&[ALICE]);
    opts.limits_extra =
        "idle_timeout = 2\nmax_connections_per_ip = 1\nmax_commands = 1000000".into();
    let ms = Mailstow::start_with(opts);
    // 200,000 pipelined HELPs (1.2 MB) ask for some 15 MB of replies, far
    // more than the socket buffers hold; the client reads none of them (a
    // client may also reset max_commands by delivering now and then).
    // The start-up probe may hold the only place for a moment.
    let mut stuck = crate::util::poll(Duration::from_secs(20), || {
        let mut s = TcpStream::connect(ms.tcp).ok()?;
        let mut greeting = [0u8; 4];
        s.read_exact(&mut greeting).ok()?;
        (&greeting == b"220 ").then_some(s)
    })
    .expect("a place for the client");
    stuck
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // Before anything is sent, so no server timer can have started earlier.
    let t = Instant::now();
    // It may block too once the server stops reading: that is the point.
    let _ = stuck.write_all(&b"HELP\r\n".repeat(200_000));
    // Its place (the only one for 127.0.0.1) frees once the server gives up
    // writing to it.
    let freed = crate::util::poll(Duration::from_secs(30), || {
        let s = TcpStream::connect(ms.tcp).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        line.starts_with("220 ").then_some(())
    });
    assert!(
        freed.is_some(),
        "the connection that does not read is never dropped"
    );
    // Not before the idle timeout: a lower bound no load can break.
    assert!(t.elapsed() >= Duration::from_secs(2), "{:?}", t.elapsed());
    drop(stuck);
    fresh_delivery_works(&ms, "client not reading");
}

#[test]
fn connections_over_the_per_ip_limit_get_421_at_once() {
    let mut opts = Options::new(&[ALICE]);
    opts.ipv6 = true;
    opts.limits_extra = "max_connections_per_ip = 3".into();
    let ms = Mailstow::start_with(opts);
    // The start-up probe's connection may still count for a moment after
    // it closed: take the three places as they become free.
    let held: Vec<_> = (0..3)
        .map(|_| {
            crate::util::poll(Duration::from_secs(20), || {
                crate::util::LmtpClient::try_tcp(ms.tcp).ok()
            })
            .expect("three places")
        })
        .collect();
    // The fourth from 127.0.0.1 is told at once, not queued: queued, it
    // would hear nothing while the three are held, and the read times out.
    let (_s, mut r) = {
        let s = TcpStream::connect(ms.tcp).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = BufReader::new(s.try_clone().unwrap());
        (s, r)
    };
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("421 4.7.0 "), "{line:?}");
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the 421");
    // Another address is another client: ::1 is not 127.0.0.1.
    let v6 = ms.tcp6.expect("listening on [::1]");
    let mut other = BufReader::new(TcpStream::connect(v6).unwrap());
    let mut line = String::new();
    other.read_line(&mut line).unwrap();
    assert!(line.starts_with("220 "), "{line:?}");
    drop(other);
    // One of the three leaves: its place is free again.
    let mut held = held;
    held.pop().expect("three").quit();
    let mut free = None;
    let got = crate::util::poll(Duration::from_secs(20), || {
        let s = TcpStream::connect(ms.tcp).ok()?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        if line.starts_with("220 ") {
            free = Some(r);
            Some(())
        } else {
            None
        }
    });
    assert!(got.is_some(), "a place frees when a connection ends");
    drop(free);
    drop(held);
    fresh_delivery_works(&ms, "per-IP limit");
    assert!(
        ms.log().contains("too many connections from this address"),
        "{}",
        ms.log()
    );
}

/// A field of /proc/<pid>/status in kB (VmRSS, VmHWM).
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

#[test]
fn memory_stays_bounded_whatever_the_client_streams() {
    let ms = Mailstow::start(&[ALICE]);
    fresh_delivery_works(&ms, "warm-up");
    let pid = ms.pid();
    let base = status_kb(pid, "VmHWM");
    // Generous: the read buffer, the 1 MB memory spool, allocator slack. A
    // buffer that grew with the input would pass it many times over.
    let bound = base + 48 * 1024;
    let chunk = vec![b'x'; 1 << 20];

    // 100 MB with no line end as a command: refused once, dropped.
    let mut c = ms.connect();
    for _ in 0..100 {
        c.write_raw(&chunk);
    }
    c.write_raw(b"\r\nNOOP\r\n");
    assert!(c.read_reply()[0].starts_with("500 5.5.2"));
    assert!(c.read_reply()[0].starts_with("250 2.0.0"));

    // 100 MB with no line end as message data (over the 50 MB limit): the
    // spool goes to disk, then stops storing; the end is still found.
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&c.cmd("DATA")), 354);
    for _ in 0..100 {
        c.write_raw(&chunk);
    }
    c.write_raw(b"\r\n.\r\n");
    assert!(c.read_reply()[0].starts_with("552 5.3.4"));
    let after_long = status_kb(pid, "VmHWM");

    // Four million short lines (12 MB): delivered, never held whole.
    c.cmd("MAIL FROM:<s@example.net>");
    c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert_eq!(code(&c.cmd("DATA")), 354);
    c.write_raw(b"Subject: lines\r\n\r\n");
    let lines = b"a\r\n".repeat(1 << 18);
    for _ in 0..16 {
        c.write_raw(&lines);
    }
    c.write_raw(b".\r\n");
    let r = c.read_reply();
    assert!(r[0].starts_with("250 2.0.0"), "{r:?}");
    c.quit();
    let after_lines = status_kb(pid, "VmHWM");
    let files = ms.maildir(ALICE).messages("INBOX");
    // 4M lines of "a\r\n", stored as "a\n".
    assert!(files.iter().any(|f| f.bytes.len() > 8 << 20));
    eprintln!("VmRSS before {base} kB; VmHWM after 100 MB lines {after_long} kB, after 4M lines {after_lines} kB");
    assert!(
        after_long < bound,
        "peak RSS {after_long} kB, bound {bound} kB"
    );
    assert!(
        after_lines < bound,
        "peak RSS {after_lines} kB, bound {bound} kB"
    );
    fresh_delivery_works(&ms, "memory");
}
