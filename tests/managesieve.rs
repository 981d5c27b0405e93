//! ManageSieve end to end, with real clients: sieve-connect (Debian's) over
//! STARTTLS with a hashed password, and Python's `managesieve` library on
//! loopback without TLS (allowed by `plaintext_on_loopback`). A script
//! uploaded and activated through them files the next LMTP delivery, and
//! Dovecot's IMAP sees it there; hostile input gets clean answers; every
//! password scheme doveadm writes verifies. Must not send traffic anywhere
//! but 127.0.0.1.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::peers::Dovecot;
use crate::util::{code, free_v4, message, run, Mailstow, Options, PASSWORD};

const ALICE: &str = "alice@example.org";
const FILTER: &str = "require [\"fileinto\", \"mailbox\"];\n\
                      if header :contains \"subject\" \"[list]\" {\n  fileinto :create \"Lists\";\n}\n";

/// Debian's sieve-connect and PyPI's managesieve, installed when missing,
/// and Dovecot (doveadm writes the password hashes).
fn ensure_clients() {
    crate::peers::ensure_installed();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        crate::util::apt_install_missing(&["/usr/bin/sieve-connect"], &["sieve-connect"]);
        let have_py = Command::new("python3")
            .args(["-c", "import managesieve"])
            .status()
            .is_ok_and(|s| s.success());
        if !have_py {
            run(Command::new("python3").args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "managesieve==0.8.1",
            ]));
        }
    });
}

/// A hashed password for the users file, made by Dovecot itself.
fn hashed(scheme: &str, password: &str) -> String {
    run(Command::new("doveadm").args(["pw", "-s", scheme, "-p", password]))
        .trim()
        .to_owned()
}

/// Every scheme the installed doveadm writes, hashed fresh now, verifies
/// with the password it was made from and refuses another.
#[test]
fn every_scheme_doveadm_writes_verifies_the_password_and_refuses_another() {
    crate::util::apt_install_missing(&["/usr/bin/doveadm"], &["dovecot-core"]);
    let pw = "fresh ünïcode pass";
    for scheme in [
        "PLAIN",
        "PLAIN.b64",
        "PLAIN.hex",
        "CLEAR",
        "CLEARTEXT",
        "CRYPT",
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "MD5-CRYPT",
        "BLF-CRYPT",
        "ARGON2I",
        "ARGON2ID",
        "SSHA512",
        "SSHA512.hex",
        "SSHA256",
        "SSHA",
        "SHA512",
        "SHA512.hex",
        "SHA256",
        "SHA",
        "SHA1",
    ] {
        let stored = hashed(scheme, pw);
        let verify = |candidate: &str| {
            mailstow::auth::password::verify(stored.as_bytes(), candidate.as_bytes())
        };
        assert_eq!(verify(pw), Ok(true), "{scheme}: {stored}");
        assert_eq!(
            verify("fresh unicode pass"),
            Ok(false),
            "{scheme}: {stored}"
        );
    }
}

/// Mailstow with a certificate and ManageSieve, and ALICE's password in
/// the users file replaced by `hash`.
fn start_tls(cert: &crate::smtp::Cert, hash: &str) -> (Mailstow, SocketAddr) {
    let (ms, port) = start(&format!(
        "[tls]\ncertificate = {}\nkey = {}\n",
        crate::util::toml_str(&cert.path("cert.pem").to_string_lossy()),
        crate::util::toml_str(&cert.path("key.pem").to_string_lossy()),
    ));
    let text = fs::read_to_string(&ms.users_file).unwrap();
    fs::write(
        &ms.users_file,
        text.replace(&format!("{{PLAIN}}{PASSWORD}"), hash),
    )
    .unwrap();
    (ms, port)
}

fn start(extra: &str) -> (Mailstow, SocketAddr) {
    let port = free_v4();
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!("[managesieve]\nlisten = [\"{port}\"]\n{extra}\n");
    let mut ms = Mailstow::start_with(opts);
    ms.wait_until("the ManageSieve listener", |_| {
        TcpStream::connect(port).ok()
    });
    (ms, port)
}

/// A raw ManageSieve client: lines until OK, NO or BYE.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> (Raw, Vec<String>) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut raw = Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = raw.response();
        (raw, greeting)
    }

    /// One response: its lines, a literal (`{n}` at a line's end) read
    /// whole into the line that announced it.
    fn response(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            loop {
                let mut part = String::new();
                if self.r.read_line(&mut part).unwrap_or(0) == 0 {
                    if !line.is_empty() {
                        lines.push(line);
                    }
                    return lines;
                }
                let part = part.trim_end_matches(['\r', '\n']).to_owned();
                let size = part
                    .rsplit_once('{')
                    .and_then(|(_, n)| n.strip_suffix('}'))
                    .map(|n| n.trim_end_matches('+'))
                    .and_then(|n| n.parse::<usize>().ok());
                line.push_str(&part);
                let Some(n) = size else { break };
                let mut literal = vec![0u8; n];
                self.r.read_exact(&mut literal).unwrap();
                line.push_str(&String::from_utf8_lossy(&literal));
            }
            let done = ["OK", "NO", "BYE"].iter().any(|w| line.starts_with(w));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    fn cmd(&mut self, bytes: &[u8]) -> Vec<String> {
        self.w.write_all(bytes).unwrap();
        self.response()
    }
}

#[test]
fn sieve_connect_over_starttls_with_a_hashed_password_puts_a_script_that_files_the_next_delivery() {
    ensure_clients();
    let cert = crate::smtp::Cert::new();
    let (ms, port) = start_tls(&cert, &hashed("SHA512-CRYPT", "s3cret pass"));
    let script = ms.dir().join("filter.sieve");
    fs::write(&script, FILTER).unwrap();

    let sieve_connect = |args: &[&str]| {
        let out = crate::util::output_with_input(
            Command::new("sieve-connect")
                .args(["--server", "127.0.0.1", "--port", &port.port().to_string()])
                .args([
                    "--user",
                    ALICE,
                    "--passwordfd",
                    "0",
                    "--notlsverify",
                    "--noclearchan",
                ])
                .args(args),
            b"s3cret pass\n",
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "sieve-connect {args:?}:\n{text}\n{}",
            ms.log()
        );
        text
    };
    sieve_connect(&[
        "--upload",
        "--localsieve",
        script.to_str().unwrap(),
        "--remotesieve",
        "main",
    ]);
    sieve_connect(&["--activate", "--remotesieve", "main"]);
    let listed = sieve_connect(&["--list"]);
    assert!(
        listed.contains("main") && listed.to_lowercase().contains("active"),
        "{listed}"
    );
    // Pigeonhole's layout: the script in ~/sieve, the active path a
    // symlink to it.
    let home = ms.home(ALICE);
    assert_eq!(
        fs::read_to_string(home.join("sieve/main.sieve")).unwrap(),
        FILTER
    );
    assert_eq!(
        fs::read_link(home.join(".dovecot.sieve")).unwrap(),
        std::path::Path::new("sieve/main.sieve")
    );

    // The next delivery uses it; Dovecot sees the message in Lists.
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "[list] hello", "body\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
    assert!(r[0][0].contains("Lists"), "{r:?}");
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, "s3cret pass");
    assert_eq!(imap.examine("Lists"), 1);
    imap.logout();
    // Plaintext login without TLS is refused on this listener.
    let (mut raw, greeting) = Raw::connect(port);
    assert!(greeting.iter().any(|l| l == "\"STARTTLS\""), "{greeting:?}");
    assert!(
        greeting.iter().any(|l| l == "\"SASL\" \"\""),
        "{greeting:?}"
    );
    let r = raw.cmd(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlQGV4YW1wbGUub3JnAHMzY3JldCBwYXNz\"\r\n");
    assert!(r[0].starts_with("NO (ENCRYPT-NEEDED)"), "{r:?}");
}

#[test]
fn pythons_managesieve_library_over_starttls_with_an_argon2_password_manages_scripts() {
    ensure_clients();
    let cert = crate::smtp::Cert::new();
    let (ms, port) = start_tls(&cert, &hashed("ARGON2ID", "py pass"));
    let port = port.port();
    let py = format!(
        r#"
import managesieve
m = managesieve.MANAGESIEVE("127.0.0.1", {port})
assert "PLAIN" not in m.loginmechs, m.loginmechs
typ, _ = m.starttls(verify=False)
assert typ == "OK", typ
assert "PLAIN" in m.loginmechs, m.loginmechs
assert m.authenticate("PLAIN", "{ALICE}", "py pass") == "OK", "login"
assert m.putscript("one", {FILTER:?}) == "OK"
assert m.putscript("two", "keep;\n") == "OK"
assert m.setactive("one") == "OK"
typ, scripts = m.listscripts()
assert typ == "OK" and sorted(scripts) == [("one", True), ("two", False)], (typ, scripts)
typ, text = m.getscript("one")
assert typ == "OK" and text == {FILTER:?}, (typ, text)
assert m.deletescript("one") == "NO"
assert m.deletescript("two") == "OK"
assert m.havespace("big", 50 * 1024 * 1024) == "NO"
assert m.putscript("bad", "require \"nosuchextension\";\n") == "NO"
assert m.logout() == "OK"
print("python client ok")
"#
    );
    let out = Command::new("python3").args(["-c", &py]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python client ok"),
        "{text}\n{}",
        ms.log()
    );
    let home = ms.home(ALICE);
    assert!(!home.join("sieve/two.sieve").exists());
    assert_eq!(
        fs::read_link(home.join(".dovecot.sieve")).unwrap(),
        std::path::Path::new("sieve/one.sieve")
    );
}

#[test]
fn hostile_input_gets_clean_answers() {
    let metrics = free_v4();
    let (mut ms, port) = start(&format!(
        "plaintext_on_loopback = true\nauth_failure_delay = 0\n[metrics]\nlisten = \"{metrics}\""
    ));
    let (mut raw, greeting) = Raw::connect(port);
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
    // Before authentication.
    assert_eq!(raw.cmd(b"LISTSCRIPTS\r\n"), ["NO \"Authenticate first.\""]);
    let r = raw.cmd(b"AUTHENTICATE \"PLAIN\" \"%%%not base64\"\r\n");
    assert!(r[0].starts_with("NO \"Invalid base64"), "{r:?}");
    // A wrong password, then the right one; then path tricks in names and
    // a huge literal.
    let r = raw.cmd(b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlQGV4YW1wbGUub3JnAHdyb25n\"\r\n");
    assert_eq!(r, ["NO \"Authentication failed.\""]);
    let login = format!("\0{ALICE}\0{PASSWORD}");
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, login);
    assert_eq!(
        raw.cmd(format!("AUTHENTICATE \"PLAIN\" \"{b64}\"\r\n").as_bytes()),
        ["OK \"Logged in.\""]
    );
    for name in ["../evil", "a/b", ".hidden", ""] {
        let r = raw.cmd(format!("PUTSCRIPT \"{name}\" \"keep;\"\r\n").as_bytes());
        assert!(r[0].starts_with("NO"), "{name:?}: {r:?}");
    }
    let mut big = b"PUTSCRIPT \"big\" {2000000000+}\r\n".to_vec();
    big.extend_from_slice(&[b'#'; 64 * 1024]);
    raw.w.write_all(&big).unwrap();
    let r = raw.response();
    assert!(r[0].starts_with("NO (QUOTA/MAXSIZE)"), "{r:?}");
    drop(raw);
    // The server goes on.
    let (mut raw, _) = Raw::connect(port);
    assert_eq!(raw.cmd(b"LOGOUT\r\n"), ["OK \"Logout completed.\""]);
    let mut rest = String::new();
    let _ = raw.r.read_to_string(&mut rest);
    assert!(rest.is_empty());
    assert!(!ms.home(ALICE).join("evil.sieve").exists());
    assert!(!ms.mail_root.join("evil.sieve").exists());
    // Counted: one refused login, one accepted; bad base64 is no attempt.
    ms.wait_until("the metrics endpoint", |_| TcpStream::connect(metrics).ok());
    let (s, text) = crate::ops::scrape(metrics);
    let logins =
        |r: &str| crate::ops::value(&s, "mailstow_managesieve_logins_total", &[("result", r)]);
    assert_eq!((logins("ok"), logins("failed")), (1.0, 1.0), "{text}");
}

/// The response class of a reply: OK, NO or BYE, with its response code's
/// first word (e.g. "NO NONEXISTENT", "OK TAG"), and how many lines came
/// before it.
fn class(reply: &[String]) -> (String, usize) {
    let last = reply.last().map(String::as_str).unwrap_or("(none)");
    let word = last.split(' ').next().unwrap_or("");
    let code = last
        .strip_prefix(word)
        .and_then(|r| r.trim_start().strip_prefix('('))
        .and_then(|r| r.split([')', ' ']).next())
        .map(|c| format!(" {c}"))
        .unwrap_or_default();
    (format!("{word}{code}"), reply.len().saturating_sub(1))
}

#[test]
fn the_same_conversation_gets_the_same_response_classes_from_dovecots_managesieve() {
    let (ms, port) = start("plaintext_on_loopback = true\nauth_failure_delay = 0");
    let sieve_port = free_v4();
    let other_root = ms.dir().join("dovecot-mail");
    fs::create_dir(&other_root).unwrap();
    crate::util::chown(&other_root, crate::util::vmail());
    let dc = Dovecot::start_with(
        &ms.users_file,
        &other_root,
        &format!(
            "protocols = $protocols sieve\n\
             auth_failure_delay = 0\n\
             service managesieve-login {{\n  chroot =\n  inet_listener sieve {{\n    address = 127.0.0.1\n    port = {}\n  }}\n}}\n\
             plugin {{\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}}\n",
            sieve_port.port()
        ),
    );
    let reached = crate::util::poll(crate::util::TIMEOUT, || TcpStream::connect(sieve_port).ok());
    assert!(reached.is_some(), "Dovecot's managesieve did not listen");

    let good = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("\0{ALICE}\0{PASSWORD}"),
    );
    let wrong = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("\0{ALICE}\0not it"),
    );
    let conversation: Vec<Vec<u8>> = [
        "CAPABILITY\r\n".to_owned(),
        "LISTSCRIPTS\r\n".to_owned(),
        format!("AUTHENTICATE \"PLAIN\" \"{wrong}\"\r\n"),
        format!("AUTHENTICATE \"PLAIN\" \"{good}\"\r\n"),
        "PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n".to_owned(),
        "PUTSCRIPT \"b\" \"require \\\"nosuchextension\\\";\\r\\n\"\r\n".to_owned(),
        "CHECKSCRIPT {28+}\r\nrequire \"fileinto\";\r\nkeep;\r\n\r\n".to_owned(),
        "CHECKSCRIPT \"if true {\"\r\n".to_owned(),
        "SETACTIVE \"a\"\r\n".to_owned(),
        "SETACTIVE \"zz\"\r\n".to_owned(),
        "LISTSCRIPTS\r\n".to_owned(),
        "GETSCRIPT \"a\"\r\n".to_owned(),
        "GETSCRIPT \"zz\"\r\n".to_owned(),
        "DELETESCRIPT \"a\"\r\n".to_owned(),
        "RENAMESCRIPT \"a\" \"c\"\r\n".to_owned(),
        "PUTSCRIPT \"d\" \"keep;\"\r\n".to_owned(),
        "RENAMESCRIPT \"c\" \"d\"\r\n".to_owned(),
        "RENAMESCRIPT \"zz\" \"e\"\r\n".to_owned(),
        "HAVESPACE \"x\" 100\r\n".to_owned(),
        "SETACTIVE \"\"\r\n".to_owned(),
        "DELETESCRIPT \"c\"\r\n".to_owned(),
        "DELETESCRIPT \"zz\"\r\n".to_owned(),
        "LISTSCRIPTS\r\n".to_owned(),
        "NOOP \"t1\"\r\n".to_owned(),
        "BOGUS\r\n".to_owned(),
        "LOGOUT\r\n".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let (mut ours, _) = Raw::connect(port);
    let (mut theirs, greeting) = Raw::connect(sieve_port);
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
    let mut report = Vec::new();
    let mut differ = Vec::new();
    for cmd in &conversation {
        let (a, b) = (ours.cmd(cmd), theirs.cmd(cmd));
        let shown = String::from_utf8_lossy(cmd)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        let (ca, cb) = (class(&a), class(&b));
        assert!(
            ca.0 != "(none)" && cb.0 != "(none)",
            "{shown}: no answer (mailstow {a:?}, dovecot {b:?})"
        );
        // CAPABILITY lists differ in content (extensions, implementation);
        // the class and the presence of the standard names are compared.
        let same = if shown == "CAPABILITY" {
            ca.0 == cb.0
        } else {
            ca == cb
        };
        report.push(format!("{shown:50} mailstow {ca:?}  dovecot {cb:?}"));
        if !same {
            differ.push(format!("{shown}: mailstow {a:?} dovecot {b:?}"));
        }
    }
    eprintln!("managesieve differential:\n{}", report.join("\n"));
    assert!(
        differ.is_empty(),
        "unexplained differences:\n{}\n{}",
        differ.join("\n"),
        dc.log_path.display()
    );
}
