//! ManageSieve end to end, with real clients: sieve-connect (Debian's) over
//! STARTTLS with a hashed password, and Python's `managesieve` library on
//! loopback without TLS (allowed by `plaintext_on_loopback`). A script
//! uploaded and activated through them files the next LMTP delivery, and
//! Dovecot's IMAP sees it there; hostile input gets clean answers. Must
//! not send traffic anywhere but 127.0.0.1.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::peers::Dovecot;
use crate::util::{code, free_v4, message, run, Mailstow, Options, PASSWORD};

const ALICE: &str = "alice@example.org";
const FILTER: &str = "require [\"fileinto\", \"mailbox\"];\n\
                      if header :contains \"subject\" \"[list]\" {\n  fileinto :create \"Lists\";\n}\n";

/// Debian's sieve-connect and PyPI's managesieve, installed when missing.
fn ensure_clients() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if !std::path::Path::new("/usr/bin/sieve-connect").exists() {
            let _lock = crate::util::host_lock();
            run(Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "sieve-connect"]));
        }
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
                "managesieve==0.8",
            ]));
        }
    });
}

/// A hashed password for the users file, made by Dovecot itself.
fn sha512_crypt(password: &str) -> String {
    run(Command::new("doveadm").args(["pw", "-s", "SHA512-CRYPT", "-p", password]))
        .trim()
        .to_owned()
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

    fn response(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut l = String::new();
            if self.r.read_line(&mut l).unwrap_or(0) == 0 {
                return lines;
            }
            let done = ["OK", "NO", "BYE"].iter().any(|w| l.starts_with(w));
            lines.push(l.trim_end().to_owned());
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
    let (ms, port) = start(&format!(
        "[tls]\ncertificate = {}\nkey = {}\n",
        crate::util::toml_str(&cert.path("cert.pem").to_string_lossy()),
        crate::util::toml_str(&cert.path("key.pem").to_string_lossy()),
    ));
    // The users file holds a SHA512-CRYPT hash instead of the plain one.
    let hashed = sha512_crypt("s3cret pass");
    let text = fs::read_to_string(&ms.users_file).unwrap();
    fs::write(
        &ms.users_file,
        text.replace(&format!("{{PLAIN}}{PASSWORD}"), &hashed),
    )
    .unwrap();
    let script = ms.dir().join("filter.sieve");
    fs::write(&script, FILTER).unwrap();

    let sieve_connect = |args: &[&str]| {
        let mut child = Command::new("sieve-connect")
            .args(["--server", "127.0.0.1", "--port", &port.port().to_string()])
            .args([
                "--user",
                ALICE,
                "--passwordfd",
                "0",
                "--notlsverify",
                "--noclearchan",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run sieve-connect");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"s3cret pass\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
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
fn pythons_managesieve_library_on_loopback_manages_scripts() {
    ensure_clients();
    let (ms, port) = start("plaintext_on_loopback = true");
    let port = port.port();
    let py = format!(
        r#"
import managesieve
m = managesieve.MANAGESIEVE("127.0.0.1", {port})
assert m.authenticate("PLAIN", "{ALICE}", "{PASSWORD}") == "OK", "login"
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
    let (ms, port) = start("plaintext_on_loopback = true");
    let (mut raw, greeting) = Raw::connect(port);
    assert!(greeting.last().unwrap().starts_with("OK"), "{greeting:?}");
    // Before authentication.
    assert_eq!(raw.cmd(b"LISTSCRIPTS\r\n"), ["NO \"Authenticate first.\""]);
    let r = raw.cmd(b"AUTHENTICATE \"PLAIN\" \"%%%not base64\"\r\n");
    assert!(r[0].starts_with("NO \"Invalid base64"), "{r:?}");
    // Log in, then path tricks in names and a huge literal.
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
}
