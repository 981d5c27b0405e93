//! The SMTP receiver (RFC 5321 final delivery) and STARTTLS (RFC 3207)
//! against the real binary: a private Postfix relays to mailstow's SMTP
//! port with TLS required and Dovecot reads the result back byte for byte;
//! on raw sockets, relaying is refused, LHLO is not SMTP, commands pipelined
//! after STARTTLS never run, the session starts over after the handshake,
//! and a transaction has one reply after its data, with a delivery report
//! to the sender (at a capturing SMTP relay in this file) when only some
//! recipients got the message. Must not look inside mailstow (only its
//! replies, files, log and what the peers see), bind anything but
//! loopback, or use a sleep as synchronisation.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tempfile::TempDir;

use crate::peers::{Dovecot, Postfix};
use crate::util::{
    code, dot_stuff, free_v4, message, temp_dir, toml_str, LmtpClient, Mailstow, Options, PASSWORD,
    TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const SENDER: &str = "sender@example.net";

// ---------------------------------------------------------------------------
// mailstow with an SMTP listener and a certificate
// ---------------------------------------------------------------------------

/// A self-signed certificate for mailstow's hostname, and its files.
pub struct Cert {
    dir: TempDir,
    der: CertificateDer<'static>,
}

impl Cert {
    pub fn new() -> Cert {
        let pair = rcgen::generate_simple_self_signed(vec![crate::util::HOSTNAME.to_owned()])
            .expect("generate a certificate");
        let dir = temp_dir("mailstow-tls-");
        fs::write(dir.path().join("cert.pem"), pair.cert.pem()).expect("write cert.pem");
        let key = dir.path().join("key.pem");
        fs::write(&key, pair.key_pair.serialize_pem()).expect("write key.pem");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod key");
        Cert {
            dir,
            der: pair.cert.der().clone(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client configuration that trusts this certificate alone.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the certificate");
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(cfg)
    }
}

/// mailstow taking SMTP for example.org on `smtp`, STARTTLS with `cert`.
struct Smtp {
    ms: Mailstow,
    smtp: SocketAddr,
    cert: Cert,
}

impl Smtp {
    /// `extra_toml` is appended after `[smtp]` and `[tls]`.
    fn start(users: &[&str], extra_toml: &str) -> Smtp {
        Smtp::start_with(Options::new(users), extra_toml)
    }

    fn start_with(mut opts: Options, extra_toml: &str) -> Smtp {
        let cert = Cert::new();
        let smtp = free_v4();
        opts.extra_toml = format!(
            "[smtp]\nlisten = [{}]\ndomains = [\"Example.ORG\"]\n\
             [tls]\ncertificate = {}\nkey = {}\n{extra_toml}\n",
            toml_str(&smtp.to_string()),
            toml_str(&cert.path("cert.pem").to_string_lossy()),
            toml_str(&cert.path("key.pem").to_string_lossy()),
        );
        let mut ms = Mailstow::start_with(opts);
        ms.wait_until(&format!("SMTP on {smtp}"), |_| {
            TcpStream::connect_timeout(&smtp, Duration::from_secs(1)).ok()
        });
        Smtp { ms, smtp, cert }
    }

    fn connect(&self) -> Client {
        Client::connect(self.smtp)
    }
}

// ---------------------------------------------------------------------------
// An SMTP client that can start TLS
// ---------------------------------------------------------------------------

enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// One reply is a list of lines without CRLF, as in util's client.
struct Client {
    io: Option<BufReader<Wire>>,
    greeting: Vec<String>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("read timeout");
        let mut c = Client {
            io: Some(BufReader::new(Wire::Plain(s))),
            greeting: Vec::new(),
        };
        c.greeting = c.read_reply();
        assert_eq!(code(&c.greeting), 220, "greeting {:?}", c.greeting);
        c
    }

    fn io(&mut self) -> &mut BufReader<Wire> {
        self.io.as_mut().expect("connection")
    }

    fn try_read_reply(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            if self.io().read_until(b'\n', &mut buf)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("closed after {lines:?}"),
                ));
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Ok(lines);
            }
        }
    }

    fn read_reply(&mut self) -> Vec<String> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    fn write(&mut self, bytes: &[u8]) {
        let w = self.io().get_mut();
        w.write_all(bytes)
            .and_then(|_| w.flush())
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    fn cmd(&mut self, line: &str) -> Vec<String> {
        self.write(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    /// STARTTLS (must get 220), then the handshake, trusting `cert`.
    fn starttls(&mut self, cert: &Cert) {
        let r = self.cmd("STARTTLS");
        assert_eq!(code(&r), 220, "STARTTLS: {r:?}");
        let io = self.io.take().expect("connection");
        assert!(io.buffer().is_empty(), "bytes after the 220");
        let Wire::Plain(tcp) = io.into_inner() else {
            panic!("TLS twice")
        };
        let name = ServerName::try_from(crate::util::HOSTNAME).expect("server name");
        let conn = rustls::ClientConnection::new(cert.client_config(), name).expect("TLS client");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
        }
        self.io = Some(BufReader::new(Wire::Tls(Box::new(tls))));
    }

    /// MAIL, every RCPT (each must be accepted), DATA; the one reply to
    /// the final dot.
    fn transaction(&mut self, from: &str, rcpts: &[&str], msg: &[u8]) -> Vec<String> {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert_eq!(code(&r), 250, "MAIL: {r:?}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert_eq!(code(&r), 250, "RCPT TO:<{rcpt}>: {r:?}");
        }
        let r = self.cmd("DATA");
        assert_eq!(code(&r), 354, "DATA: {r:?}");
        let mut wire = dot_stuff(msg);
        wire.extend_from_slice(b".\r\n");
        self.write(&wire);
        self.read_reply()
    }
}

/// The lines of an EHLO reply after the first, e.g. "STARTTLS".
fn keywords(reply: &[String]) -> Vec<String> {
    reply.iter().skip(1).map(|l| l[4..].to_owned()).collect()
}

// ---------------------------------------------------------------------------
// A relay that captures what mailstow submits (delivery reports)
// ---------------------------------------------------------------------------

/// One message handed to the [`Sink`].
#[derive(Debug, Clone)]
struct Captured {
    from: String,
    to: Vec<String>,
    /// The DATA lines, dot-stuffed as sent, without the final ".".
    data: String,
}

/// An SMTP server on a loopback port that accepts everything and keeps it.
struct Sink {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (got, stop) = (Arc::clone(&got), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Ok(conn) = conn {
                        let _ = Sink::session(conn, &got);
                    }
                }
            })
        };
        Sink {
            addr,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn session(conn: TcpStream, got: &Mutex<Vec<Captured>>) -> io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut out = conn.try_clone()?;
        let mut input = BufReader::new(conn);
        out.write_all(b"220 sink.test ESMTP\r\n")?;
        let mut msg = Captured {
            from: String::new(),
            to: Vec::new(),
            data: String::new(),
        };
        loop {
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let upper = line.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                msg.from = line[10..].trim().to_owned();
                b"250 2.1.0 Ok\r\n"
            } else if upper.starts_with("RCPT TO:") {
                msg.to.push(line[8..].trim().to_owned());
                b"250 2.1.5 Ok\r\n"
            } else if upper.starts_with("DATA") {
                out.write_all(b"354 go ahead\r\n")?;
                loop {
                    let mut l = String::new();
                    if input.read_line(&mut l)? == 0 || l == ".\r\n" {
                        break;
                    }
                    msg.data.push_str(&l);
                }
                got.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(msg.clone());
                b"250 2.0.0 Ok: queued\r\n"
            } else if upper.starts_with("QUIT") {
                out.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            } else {
                b"250 2.0.0 Ok\r\n"
            };
            out.write_all(reply)?;
        }
    }

    fn messages(&self) -> Vec<Captured> {
        self.got.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `[outbound]` pointing at the sink.
fn outbound_to(sink: &Sink) -> String {
    format!(
        "[outbound]\nsmtp = {}\ntimeout = 30\n",
        toml_str(&sink.addr.to_string())
    )
}

/// Make `address`'s delivery fail temporarily: its home is a file, so no
/// Maildir can be made there (an I/O error, 451 4.3.0).
fn break_home(ms: &Mailstow, address: &str) {
    let home = ms.home(address);
    let domain = home.parent().expect("domain dir");
    fs::create_dir_all(domain).expect("mkdir domain");
    fs::write(&home, b"not a directory").expect("write a file in the home's place");
}

const REJECT: &str = "require \"reject\";\nreject \"not wanted here\";\n";

// ---------------------------------------------------------------------------
// The end-to-end proof
// ---------------------------------------------------------------------------

#[test]
fn postfix_relays_over_required_starttls_and_dovecot_reads_it_back_byte_exact() {
    // Postfix sends both recipients in one transaction: each copy names
    // its own only with single_copy off (tests/single_copy.rs: on).
    let s = Smtp::start(&[ALICE, BOB], "[delivery]\nsingle_copy = false\n");
    let dc = Dovecot::start(&s.ms.users_file, &s.ms.mail_root);
    let transport = format!("smtp:[{}]:{}", s.smtp.ip(), s.smtp.port());
    let pf = Postfix::start_custom(
        &transport,
        &["example.org"],
        None,
        "smtp_tls_security_level = encrypt\nsmtp_tls_loglevel = 1\n",
        "tlsmgr    unix  -       -       n       1000?   1       tlsmgr\n",
    );
    let msg = message(SENDER, ALICE, "over TLS", "Grüße über SMTP\n.leading dot\n");
    pf.send_smtp(SENDER, &[ALICE, BOB], &msg);
    pf.wait_queue_empty(TIMEOUT);
    let sent = pf.wait_maillog(&["status=sent"], 2);
    let relay = format!("relay={0}[{0}]:{1}", s.smtp.ip(), s.smtp.port());
    assert!(sent.iter().all(|l| l.contains(&relay)), "{relay}: {sent:?}");
    let tls = pf.maillog_lines(&["TLS connection established to"]);
    assert!(
        !tls.is_empty(),
        "Postfix logged no TLS connection:\n{}",
        pf.maillog()
    );

    for who in [ALICE, BOB] {
        let files = s.ms.maildir(who).wait_messages("INBOX", 1);
        assert_eq!(files.len(), 1, "{who}");
        let file = &files[0].bytes;
        let text = String::from_utf8_lossy(file);
        assert!(
            file.ends_with(&crate::util::stored_form(&msg)),
            "{who}: the original is not the end:\n{text}"
        );
        // Our trace block first, then Postfix's Received, then the message.
        assert!(
            text.starts_with(&format!(
                "Return-Path: <{SENDER}>\nDelivered-To: {who}\nReceived: from postfix.test"
            )),
            "{text}"
        );
        // Ours is the first Received field; Postfix's follows it.
        let first = text.find("Received: from").expect("a Received field");
        let rest = &text[first..];
        let ours = &rest[..rest[1..].find("\nReceived:").map_or(rest.len(), |i| i + 1)];
        assert!(ours.contains("with ESMTPS"), "{ours}");
        assert!(ours.contains("(using TLSv1."), "{ours}");
        assert!(ours.contains(&format!("for <{who}>;")), "{ours}");

        let mut imap = dc.imap_login(who, PASSWORD);
        assert_eq!(imap.examine("INBOX"), 1);
        let fetched = imap.fetch_all();
        imap.logout();
        assert_eq!(fetched.len(), 1);
        // The file has LF line ends; IMAP shows it with CRLF, so what
        // Postfix relayed comes back byte for byte.
        let crlf = crate::util::lf_to_crlf(file);
        assert_eq!(&fetched[0].body, &crlf, "{who}: IMAP BODY[] != the file");
        assert!(fetched[0].body.ends_with(&msg), "{who}: not as sent");
        assert_eq!(fetched[0].size, crlf.len() as u64);
    }
    let log = s.ms.log();
    assert!(log.contains("TLS started"), "{log}");
}

// ---------------------------------------------------------------------------
// On the socket
// ---------------------------------------------------------------------------

#[test]
fn relaying_is_refused_and_only_our_users_are_taken() {
    let s = Smtp::start(&[ALICE], "");
    let mut c = s.connect();
    assert!(c.greeting[0].contains("ESMTP"), "{:?}", c.greeting);
    assert_eq!(code(&c.cmd("EHLO client.test")), 250);
    assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{SENDER}>"))), 250);
    for (rcpt, want) in [
        ("someone@example.net", "550 5.7.1"),
        ("alice@example.org.evil.test", "550 5.7.1"),
        ("alice@[127.0.0.1]", "550 5.7.1"),
        ("nobody@example.org", "550 5.1.1"),
        ("alice@EXAMPLE.org", "250 2.1.5"),
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r[0].starts_with(want), "{rcpt}: {r:?}");
    }
    assert_eq!(code(&c.cmd("QUIT")), 221);
    assert!(s.ms.maildir(ALICE).messages("INBOX").is_empty());
}

#[test]
fn lhlo_is_not_smtp() {
    let s = Smtp::start(&[ALICE], "");
    let mut c = s.connect();
    let r = c.cmd("LHLO client.test");
    assert_eq!(code(&r), 500, "{r:?}");
    let r = c.cmd(&format!("MAIL FROM:<{SENDER}>"));
    assert_eq!(code(&r), 503, "MAIL before EHLO: {r:?}");
    let r = c.cmd("HELO client.test");
    assert_eq!(r, vec![format!("250 {}", crate::util::HOSTNAME)]);
    let msg = message(SENDER, ALICE, "helo", "plain SMTP\n");
    let r = c.transaction(SENDER, &[ALICE], &msg);
    assert_eq!(code(&r), 250, "{r:?}");
    let files = s.ms.maildir(ALICE).wait_messages("INBOX", 1);
    let text = String::from_utf8_lossy(&files[0].bytes);
    assert!(text.contains("(mailstow) with SMTP\n"), "{text}");
}

#[test]
fn commands_pipelined_after_starttls_are_refused_and_none_runs() {
    let s = Smtp::start(&[ALICE], "");
    let mut c = s.connect();
    let r = c.cmd("EHLO client.test");
    assert!(keywords(&r).contains(&"STARTTLS".to_owned()), "{r:?}");
    // The CVE-2011-0411 injection: plaintext commands behind STARTTLS in
    // one segment, which a vulnerable server runs as if sent inside TLS.
    let msg = message(SENDER, ALICE, "injected", "must never arrive\n");
    let mut wire =
        format!("STARTTLS\r\nRSET\r\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
            .into_bytes();
    wire.extend_from_slice(&dot_stuff(&msg));
    wire.extend_from_slice(b".\r\n");
    c.write(&wire);
    let r = c.read_reply();
    assert_eq!(code(&r), 503, "{r:?}");
    // Nothing answers the injected commands: the connection is closed.
    match c.try_read_reply() {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
    assert!(s.ms.maildir(ALICE).messages("INBOX").is_empty());
    assert!(
        !s.ms.log().contains("to=<alice@example.org>"),
        "{}",
        s.ms.log()
    );
}

#[test]
fn after_starttls_the_client_must_ehlo_again_and_the_mail_says_esmtps() {
    let s = Smtp::start(&[ALICE], "");
    let mut c = s.connect();
    let r = c.cmd("EHLO client.test");
    let before = keywords(&r);
    for k in [
        "PIPELINING",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "CHUNKING",
        "STARTTLS",
    ] {
        assert!(before.contains(&k.to_owned()), "{k} in {r:?}");
    }
    assert!(before.iter().any(|k| k.starts_with("SIZE ")), "{r:?}");
    c.starttls(&s.cert);
    let r = c.cmd(&format!("MAIL FROM:<{SENDER}>"));
    assert!(
        r[0].starts_with("503 5.5.1"),
        "MAIL right after the handshake: {r:?}"
    );
    let r = c.cmd("EHLO client.test");
    let after = keywords(&r);
    assert!(!after.contains(&"STARTTLS".to_owned()), "{r:?}");
    assert_eq!(after.len(), before.len() - 1, "{r:?}");
    let r = c.cmd("STARTTLS");
    assert!(r[0].starts_with("503 5.5.1"), "{r:?}");
    let msg = message(SENDER, ALICE, "inside TLS", "secret\n");
    let r = c.transaction(SENDER, &[ALICE], &msg);
    assert!(r[0].starts_with("250 2.0.0"), "{r:?}");
    assert_eq!(code(&c.cmd("QUIT")), 221);
    let files = s.ms.maildir(ALICE).wait_messages("INBOX", 1);
    let text = String::from_utf8_lossy(&files[0].bytes);
    assert!(text.contains("(mailstow) with ESMTPS\n"), "{text}");
    assert!(text.contains("\t(using TLSv1.3 with cipher "), "{text}");
    assert!(files[0].bytes.ends_with(&crate::util::stored_form(&msg)));
    let log = s.ms.log();
    assert!(
        log.contains("TLS started") && log.contains("TLSv1.3"),
        "{log}"
    );
}

#[test]
fn partial_failure_is_accepted_and_the_sender_gets_a_delivery_report() {
    let sink = Sink::start();
    let s = Smtp::start(&[ALICE, BOB, CAROL], &outbound_to(&sink));
    s.ms.install_sieve(BOB, REJECT);
    break_home(&s.ms, CAROL);
    let mut c = s.connect();
    c.cmd("EHLO client.test");
    let msg = message(SENDER, ALICE, "for three", "some of you\n");
    let r = c.transaction(SENDER, &[ALICE, BOB, CAROL], &msg);
    assert!(r[0].starts_with("250 2.0.0"), "{r:?}");
    assert!(r[0].contains("1 of 3"), "{r:?}");
    assert_eq!(s.ms.maildir(ALICE).messages("INBOX").len(), 1);

    // The report went out before the reply.
    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let dsn = &got[0];
    assert_eq!(dsn.from, "<>", "a report has the null sender");
    assert_eq!(dsn.to, vec![format!("<{SENDER}>")]);
    let text = &dsn.data;
    for want in [
        "From: Mail Delivery System <postmaster@example.org>",
        &format!("To: <{SENDER}>"),
        "Content-Type: multipart/report; report-type=delivery-status;",
        "Content-Type: message/delivery-status",
        "Reporting-MTA: dns; mx.test",
        "Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.7.1\r\nDiagnostic-Code: smtp; 550 5.7.1 not wanted here",
        "Final-Recipient: rfc822; carol@example.org\r\nAction: failed\r\nStatus: 4.3.0",
        "Content-Type: text/rfc822-headers",
        "Subject: for three",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    assert!(!text.contains("alice@example.org\r\nAction"), "{text}");
    assert!(
        !text.contains("some of you"),
        "the body is not quoted:\n{text}"
    );

    // A null sender gets no report; the reply is still 250.
    let r = c.transaction("", &[ALICE, BOB], &msg);
    assert!(
        r[0].starts_with("250 2.0.0") && r[0].contains("1 of 2"),
        "{r:?}"
    );
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(s.ms.maildir(ALICE).messages("INBOX").len(), 2);
}

#[test]
fn total_failure_gets_the_failures_reply_and_no_report() {
    let sink = Sink::start();
    let s = Smtp::start(&[ALICE, BOB, CAROL], &outbound_to(&sink));
    s.ms.install_sieve(ALICE, REJECT);
    s.ms.install_sieve(BOB, REJECT);
    break_home(&s.ms, CAROL);
    let mut c = s.connect();
    c.cmd("EHLO client.test");
    let msg = message(SENDER, ALICE, "for nobody", "no one takes this\n");
    // Every failure permanent: the permanent reply, the client bounces.
    let r = c.transaction(SENDER, &[ALICE, BOB], &msg);
    assert_eq!(r, vec!["550 5.7.1 not wanted here".to_owned()]);
    // One of them temporary: the client keeps it and retries everyone.
    let r = c.transaction(SENDER, &[ALICE, CAROL], &msg);
    assert!(r[0].starts_with("451 4.3.0"), "{r:?}");
    assert_eq!(code(&c.cmd("QUIT")), 221);
    assert!(sink.messages().is_empty(), "{:?}", sink.messages());
    for who in [ALICE, BOB] {
        assert!(s.ms.maildir(who).messages("INBOX").is_empty());
    }
}

#[test]
fn lmtp_offers_starttls_on_tcp_only_with_lmtp_tls() {
    let s = Smtp::start(&[ALICE], "");
    let r = LmtpClient::tcp(s.ms.tcp).lhlo();
    assert!(!r.iter().any(|l| l.ends_with("STARTTLS")), "{r:?}");
    drop(s);

    let mut opts = Options::new(&[ALICE]);
    opts.lmtp_extra = "tls = true".into();
    opts.unix_socket = true;
    let s = Smtp::start_with(opts, "");
    let unix = s.ms.unix.clone().expect("unix socket");
    let r = LmtpClient::unix(&unix).lhlo();
    assert!(!r.iter().any(|l| l.ends_with("STARTTLS")), "unix: {r:?}");
    let mut c = Client::connect(s.ms.tcp);
    assert!(c.greeting[0].contains("LMTP"), "{:?}", c.greeting);
    let r = c.cmd("LHLO client.test");
    assert!(keywords(&r).contains(&"STARTTLS".to_owned()), "{r:?}");
    c.starttls(&s.cert);
    let r = c.cmd("LHLO client.test");
    assert!(!keywords(&r).contains(&"STARTTLS".to_owned()), "{r:?}");
    let msg = message(SENDER, ALICE, "lmtp over TLS", "hello\n");
    let r = c.transaction(SENDER, &[ALICE], &msg);
    assert!(r[0].starts_with("250 2.0.0"), "{r:?}");
    let files = s.ms.maildir(ALICE).wait_messages("INBOX", 1);
    let text = String::from_utf8_lossy(&files[0].bytes);
    assert!(text.contains("(mailstow) with LMTPS\n"), "{text}");
}
