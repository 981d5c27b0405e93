//! Private instances of the real peers for the end-to-end tests: a Postfix
//! that feeds mailstow over LMTP and a Dovecot that reads back what mailstow
//! wrote, plus tiny IMAP and POP3 clients. Installs the packages once when
//! missing (under the host lock). Must not touch the system instances or
//! their configuration, listen anywhere but on loopback (or on the address
//! of a network namespace the test made, `Dovecot::start_at`), or leave a
//! daemon running after Drop.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::Duration;

use tempfile::TempDir;

use crate::util::{
    self, code, free_v4, poll, read_text, tail, temp_dir, until_ready, LmtpClient, Proc,
    TEST_DOMAINS, TIMEOUT,
};

/// The packaging snippets the peers are configured from.
fn packaging(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(rel)
}

/// Install Postfix, Dovecot and Pigeonhole (dovecot-sieve: sieve-test and
/// the LDA sieve plugin) when missing (fresh CI machines), once per
/// test process and under the host lock so that parallel test binaries do
/// not run apt-get at the same time.
pub fn ensure_installed() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let present = || {
            [
                "/usr/sbin/postfix",
                "/usr/sbin/postqueue",
                "/usr/sbin/sendmail",
                "/usr/sbin/dovecot",
                "/usr/lib/dovecot/imap",
                "/usr/lib/dovecot/pop3",
                "/usr/lib/dovecot/dovecot-lda",
                "/usr/bin/sieve-test",
                "/usr/lib/dovecot/managesieve",
            ]
            .iter()
            .all(|p| Path::new(p).exists())
        };
        if present() {
            return;
        }
        let _lock = util::host_lock();
        if present() {
            return;
        }
        let mut preseed = Command::new("debconf-set-selections")
            .stdin(Stdio::piped())
            .spawn()
            .expect("run debconf-set-selections");
        preseed
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"postfix postfix/main_mailer_type select No configuration\n")
            .expect("write preseed");
        assert!(
            preseed.wait().expect("wait").success(),
            "debconf-set-selections failed"
        );
        util::run(Command::new("apt-get").arg("update"));
        util::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-y",
                    "postfix",
                    "dovecot-core",
                    "dovecot-imapd",
                    "dovecot-pop3d",
                    "dovecot-sieve",
                    "dovecot-managesieved",
                ]),
        );
        assert!(
            present(),
            "postfix/dovecot/pigeonhole still missing after apt-get install"
        );
    });
}

/// Check that the connection accepts: used to wait for a daemon's listener.
fn accepting(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

// ---------------------------------------------------------------------------
// Dovecot
// ---------------------------------------------------------------------------

/// A private Dovecot (IMAP and POP3 on free loopback ports) that reads the
/// users and Maildirs of one test through packaging/dovecot/mailstow.conf.
pub struct Dovecot {
    /// Declared before `dir`: the daemon stops before its files go.
    proc: Proc,
    dir: TempDir,
    pub imap: SocketAddr,
    pub pop3: SocketAddr,
    pub log_path: PathBuf,
}

impl Dovecot {
    pub fn start(users_file: &Path, mail_root: &Path) -> Dovecot {
        Dovecot::start_with(users_file, mail_root, "")
    }

    /// Like [`Dovecot::start`], with `extra_conf` appended after the
    /// packaging snippet (e.g. the quota plugin and its rules).
    pub fn start_with(users_file: &Path, mail_root: &Path, extra_conf: &str) -> Dovecot {
        Dovecot::launch(users_file, mail_root, extra_conf, &[], free_v4(), free_v4())
    }

    /// Like [`Dovecot::start_with`], run by `launcher` (e.g. `ip netns
    /// exec NAME`, which execs dovecot: the PID stays dovecot's) and
    /// listening on `ip`, IMAP on 143 and POP3 on 110: the address of a
    /// network namespace of the test's own, which the test thread reaches.
    pub fn start_at(
        users_file: &Path,
        mail_root: &Path,
        extra_conf: &str,
        launcher: &[String],
        ip: IpAddr,
    ) -> Dovecot {
        let (imap, pop3) = (SocketAddr::new(ip, 143), SocketAddr::new(ip, 110));
        Dovecot::launch(users_file, mail_root, extra_conf, launcher, imap, pop3)
    }

    fn launch(
        users_file: &Path,
        mail_root: &Path,
        extra_conf: &str,
        launcher: &[String],
        imap: SocketAddr,
        pop3: SocketAddr,
    ) -> Dovecot {
        ensure_installed();
        util::vmail();
        let dir = temp_dir("mailstow-dovecot-");
        let d = dir.path();

        // The packaging snippet with the two deployment paths replaced.
        let snippet_path = packaging("dovecot/mailstow.conf");
        let snippet = fs::read_to_string(&snippet_path).expect("read dovecot snippet");
        for p in ["/etc/mailstow/users", "/var/vmail"] {
            assert!(
                snippet.contains(p),
                "{} no longer mentions {p}",
                snippet_path.display()
            );
        }
        let snippet = snippet
            .replace("/etc/mailstow/users", &users_file.to_string_lossy())
            .replace("/var/vmail", &mail_root.to_string_lossy());
        fs::write(d.join("mailstow.conf"), snippet).expect("write snippet");
        fs::create_dir(d.join("state")).expect("mkdir state");

        let log_path = d.join("dovecot.log");
        let conf = format!(
            "# A private Dovecot for one test (tests/peers.rs).\n\
             instance_name = mailstow-test-{ip}-{imap_port}\n\
             base_dir = {d}/run\n\
             state_dir = {d}/state\n\
             log_path = {log}\n\
             protocols = imap pop3\n\
             listen = {ip}\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             auth_verbose = yes\n\
             first_valid_uid = 1\n\
             first_valid_gid = 1\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = {ip}\n    port = {imap_port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service pop3-login {{\n  chroot =\n  inet_listener pop3 {{\n    address = {ip}\n    port = {pop3_port}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n\
             !include {d}/mailstow.conf\n\
             {extra_conf}\n",
            d = d.display(),
            log = log_path.display(),
            ip = imap.ip(),
            imap_port = imap.port(),
            pop3_port = pop3.port(),
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf).expect("write dovecot.conf");

        let out = fs::File::create(d.join("dovecot.out")).expect("create dovecot.out");
        let mut cmd = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg("dovecot");
                c
            }
            None => Command::new("dovecot"),
        };
        let proc = Proc::spawn(
            "dovecot",
            cmd.arg("-F")
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out),
            false,
        );
        let mut dc = Dovecot {
            proc,
            dir,
            imap,
            pop3,
            log_path,
        };
        for addr in [imap, pop3] {
            let ok = until_ready(&mut dc.proc, || accepting(addr));
            assert!(ok, "dovecot does not listen on {addr}:\n{}", dc.log());
        }
        dc
    }

    /// Dovecot's log file and whatever it printed before logging started.
    pub fn log(&self) -> String {
        format!(
            "{}{}",
            read_text(&self.dir.path().join("dovecot.out")),
            read_text(&self.log_path)
        )
    }

    /// `doveadm -c <this instance's config> ARGS`: its standard output; a
    /// failure panics with stderr and the log.
    pub fn doveadm(&self, args: &[&str]) -> String {
        self.doveadm_input(args, b"")
    }

    /// This instance's dovecot.conf (for dovecot-lda and other tools).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// As [`Dovecot::doveadm`], with `input` on standard input (e.g.
    /// `sieve put`).
    pub fn doveadm_input(&self, args: &[&str], input: &[u8]) -> String {
        let out = util::output_with_input(
            Command::new("doveadm")
                .arg("-c")
                .arg(self.config_path())
                .args(args),
            input,
        );
        assert!(
            out.status.success(),
            "doveadm {args:?} failed ({}): {}\ndovecot log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `doveadm quota get -u USER` as (type, value, limit) rows, e.g.
    /// ("STORAGE", 3, Some(6)) in kilobytes or ("MESSAGE", 4, None).
    pub fn quota_get(&self, user: &str) -> Vec<(String, u64, Option<u64>)> {
        self.doveadm(&["-f", "tab", "quota", "get", "-u", user])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((
                    f.get(1)?.to_string(),
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok(),
                ))
            })
            .collect()
    }

    pub fn imap_login(&self, user: &str, pass: &str) -> Imap {
        let mut c = Imap::connect(self.imap);
        if let Err(e) = c.login(user, pass) {
            panic!(
                "IMAP LOGIN {user}: {e}\ndovecot log:\n{}",
                tail(&self.log(), 30)
            );
        }
        c
    }

    pub fn pop3_login(&self, user: &str, pass: &str) -> Pop3 {
        let mut c = Pop3::connect(self.pop3);
        if let Err(e) = c.login(user, pass) {
            panic!(
                "POP3 login {user}: {e}\ndovecot log:\n{}",
                tail(&self.log(), 30)
            );
        }
        c
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(15));
        if std::thread::panicking() {
            eprintln!("---- dovecot log ----\n{}", tail(&self.log(), 60));
        }
    }
}

// ---------------------------------------------------------------------------
// IMAP client
// ---------------------------------------------------------------------------

/// One response line with its literals taken out: `text` keeps the `{n}`
/// markers, `literals` holds the bytes in order.
#[derive(Debug, Clone)]
pub struct ImapLine {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

/// One message fetched with `UID FETCH n (RFC822.SIZE BODY.PEEK[])`.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub size: u64,
    pub body: Vec<u8>,
}

/// A minimal IMAP4rev1 client: enough to log in, list, select and fetch.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// `"quoted"` for ASCII, a non-synchronising literal otherwise.
fn imap_string(s: &str) -> String {
    if s.is_ascii() && !s.contains(['"', '\\', '\r', '\n']) {
        format!("\"{s}\"")
    } else {
        format!("{{{}+}}\r\n{s}", s.len())
    }
}

impl Imap {
    pub fn connect(addr: SocketAddr) -> Imap {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect IMAP {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let writer = s.try_clone().expect("dup");
        let mut c = Imap {
            reader: BufReader::new(s),
            writer,
            tag: 0,
        };
        let greeting = c.read_line();
        assert!(
            greeting.text.starts_with("* OK"),
            "IMAP greeting: {}",
            greeting.text
        );
        c
    }

    /// Read one response line, literals included.
    fn read_line(&mut self) -> ImapLine {
        let mut text = String::new();
        let mut literals = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self.reader.read_until(b'\n', &mut buf).expect("IMAP read");
            assert!(n > 0, "IMAP server closed the connection after {text:?}");
            let piece = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            text.push_str(&piece);
            // A line ending in {n} announces n bytes of literal.
            let len = piece
                .strip_suffix('}')
                .and_then(|p| p.rfind('{').map(|i| &p[i + 1..]))
                .and_then(|n| n.parse::<usize>().ok());
            match len {
                Some(len) => {
                    let mut lit = vec![0; len];
                    self.reader.read_exact(&mut lit).expect("IMAP literal");
                    literals.push(lit);
                }
                None => return ImapLine { text, literals },
            }
        }
    }

    /// Send a tagged command; the untagged lines on OK, the tagged line on
    /// NO or BAD.
    pub fn run(&mut self, command: &str) -> Result<Vec<ImapLine>, String> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.writer
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .expect("IMAP write");
        let mut lines = Vec::new();
        loop {
            let line = self.read_line();
            if let Some(rest) = line.text.strip_prefix(&format!("{tag} ")) {
                return if rest.starts_with("OK") {
                    Ok(lines)
                } else {
                    Err(line.text)
                };
            }
            lines.push(line);
        }
    }

    fn run_ok(&mut self, command: &str) -> Vec<ImapLine> {
        self.run(command)
            .unwrap_or_else(|e| panic!("IMAP {command}: {e}"))
    }

    pub fn login(&mut self, user: &str, pass: &str) -> Result<(), String> {
        self.run(&format!(
            "LOGIN {} {}",
            imap_string(user),
            imap_string(pass)
        ))
        .map(|_| ())
    }

    /// `LIST "" "*"` as (attributes, name) pairs.
    pub fn list(&mut self) -> Vec<(String, String)> {
        self.run_ok("LIST \"\" \"*\"")
            .into_iter()
            .filter_map(|l| {
                let rest = l.text.strip_prefix("* LIST (")?;
                let (attrs, rest) = rest.split_once(')')?;
                // rest: ` "." name` or ` NIL name`
                let rest = rest.trim_start();
                let rest = if let Some(r) = rest.strip_prefix('"') {
                    r.split_once('"')?.1
                } else {
                    rest.split_once(' ')?.1
                };
                let name = match l.literals.first() {
                    Some(lit) => String::from_utf8_lossy(lit).into_owned(),
                    None => rest.trim().trim_matches('"').to_owned(),
                };
                Some((attrs.to_owned(), name))
            })
            .collect()
    }

    /// Names from `LIST "" "*"`.
    pub fn mailbox_names(&mut self) -> Vec<String> {
        self.list().into_iter().map(|(_, n)| n).collect()
    }

    fn exists(lines: &[ImapLine]) -> u32 {
        lines
            .iter()
            .find_map(|l| {
                l.text
                    .strip_prefix("* ")?
                    .strip_suffix(" EXISTS")?
                    .parse()
                    .ok()
            })
            .expect("EXISTS in SELECT/EXAMINE response")
    }

    /// Read-write: Dovecot moves new/ to cur/. Returns EXISTS.
    pub fn select(&mut self, mailbox: &str) -> u32 {
        Imap::exists(&self.run_ok(&format!("SELECT {}", imap_string(mailbox))))
    }

    /// Read-only: files stay in new/. Returns EXISTS.
    pub fn examine(&mut self, mailbox: &str) -> u32 {
        Imap::exists(&self.run_ok(&format!("EXAMINE {}", imap_string(mailbox))))
    }

    /// Every message of the selected mailbox, in UID order.
    pub fn fetch_all(&mut self) -> Vec<Fetched> {
        self.fetch_set("1:*")
    }

    pub fn fetch(&mut self, uid: u32) -> Fetched {
        let mut v = self.fetch_set(&uid.to_string());
        assert_eq!(v.len(), 1, "UID FETCH {uid}");
        v.remove(0)
    }

    fn fetch_set(&mut self, set: &str) -> Vec<Fetched> {
        let lines = self
            .run(&format!("UID FETCH {set} (RFC822.SIZE BODY.PEEK[])"))
            .unwrap_or_else(|e| panic!("UID FETCH {set}: {e}"));
        let mut out: Vec<Fetched> = lines
            .into_iter()
            .filter(|l| l.text.starts_with("* ") && l.text.contains(" FETCH ("))
            .map(|l| {
                let (uid, size) = uid_and_size(&l.text);
                assert!(l.text.contains("BODY[] {"), "no BODY[] literal: {}", l.text);
                let body = l.literals.last().cloned().expect("BODY[] literal");
                Fetched { uid, size, body }
            })
            .collect();
        out.sort_by_key(|f| f.uid);
        out
    }

    /// `CREATE mailbox` (the name already in modified UTF-7).
    pub fn create(&mut self, mailbox: &str) {
        self.run_ok(&format!("CREATE {}", imap_string(mailbox)));
    }

    /// Every message of the selected mailbox with its FLAGS (system flags
    /// and keywords as Dovecot reports them, `\Recent` left out), in UID
    /// order.
    pub fn fetch_all_flags(&mut self) -> Vec<FetchedFlags> {
        let lines = self
            .run("UID FETCH 1:* (FLAGS RFC822.SIZE BODY.PEEK[])")
            .unwrap_or_else(|e| panic!("UID FETCH 1:* with FLAGS: {e}"));
        let mut out: Vec<FetchedFlags> = lines
            .into_iter()
            .filter(|l| l.text.starts_with("* ") && l.text.contains(" FETCH ("))
            .map(|l| {
                let (uid, size) = uid_and_size(&l.text);
                let flags_at = l.text.find("FLAGS (").expect("FLAGS in FETCH") + 7;
                let flags_end = flags_at + l.text[flags_at..].find(')').expect("FLAGS )");
                let flags = l.text[flags_at..flags_end]
                    .split_whitespace()
                    .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                    .map(str::to_owned)
                    .collect();
                let body = l.literals.last().cloned().expect("BODY[] literal");
                FetchedFlags {
                    uid,
                    flags,
                    size,
                    body,
                }
            })
            .collect();
        out.sort_by_key(|f| f.uid);
        out
    }

    pub fn logout(mut self) {
        let _ = self.run("LOGOUT");
    }

    /// `APPEND mailbox` (a LITERAL+ literal); Err is the tagged NO/BAD
    /// line, e.g. `NO [OVERQUOTA] ...`.
    pub fn append(&mut self, mailbox: &str, message: &[u8]) -> Result<(), String> {
        let message = String::from_utf8_lossy(message);
        self.run(&format!(
            "APPEND {} {{{}+}}\r\n{message}",
            imap_string(mailbox),
            message.len()
        ))
        .map(|_| ())
    }

    /// `GETQUOTAROOT mailbox` (RFC 2087): each resource of the first root
    /// as (name, usage, limit), e.g. ("STORAGE", 3, 6) in kilobytes.
    pub fn quota_root(&mut self, mailbox: &str) -> Vec<(String, u64, u64)> {
        let lines = self
            .run(&format!("GETQUOTAROOT {}", imap_string(mailbox)))
            .unwrap_or_else(|e| panic!("GETQUOTAROOT {mailbox}: {e}"));
        let quota = lines
            .iter()
            .find(|l| l.text.starts_with("* QUOTA "))
            .unwrap_or_else(|| panic!("no QUOTA response: {lines:?}"));
        let list = quota.text.rsplit_once('(').map_or("", |(_, r)| r);
        let words: Vec<&str> = list.trim_end_matches(')').split_whitespace().collect();
        words
            .chunks(3)
            .filter_map(|c| {
                Some((
                    c.first()?.to_string(),
                    c.get(1)?.parse().ok()?,
                    c.get(2)?.parse().ok()?,
                ))
            })
            .collect()
    }

    /// Mark every message of the selected mailbox `\Deleted` and EXPUNGE.
    pub fn expunge_all(&mut self) {
        self.run_ok("STORE 1:* +FLAGS.SILENT (\\Deleted)");
        self.run_ok("EXPUNGE");
    }
}

/// One message fetched with `UID FETCH n (FLAGS RFC822.SIZE BODY.PEEK[])`.
#[derive(Debug, Clone)]
pub struct FetchedFlags {
    pub uid: u32,
    /// As in the FETCH response (`\Seen`, `$Important`), without `\Recent`.
    pub flags: Vec<String>,
    pub size: u64,
    pub body: Vec<u8>,
}

// ---------------------------------------------------------------------------
// POP3 client
// ---------------------------------------------------------------------------

/// A minimal POP3 client (RFC 1939).
pub struct Pop3 {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Pop3 {
    pub fn connect(addr: SocketAddr) -> Pop3 {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect POP3 {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let writer = s.try_clone().expect("dup");
        let mut c = Pop3 {
            reader: BufReader::new(s),
            writer,
        };
        let g = c.line();
        assert!(
            g.starts_with(b"+OK"),
            "POP3 greeting: {}",
            String::from_utf8_lossy(&g)
        );
        c
    }

    /// One line without CRLF.
    fn line(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf).expect("POP3 read");
        assert!(n > 0, "POP3 server closed the connection");
        if buf.ends_with(b"\n") {
            buf.pop();
        }
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        buf
    }

    /// A single-line command: the text after `+OK`, or the `-ERR` line.
    pub fn cmd(&mut self, line: &str) -> Result<String, String> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("POP3 write");
        let r = String::from_utf8_lossy(&self.line()).into_owned();
        match r.strip_prefix("+OK") {
            Some(rest) => Ok(rest.trim().to_owned()),
            None => Err(r),
        }
    }

    /// The lines of a multi-line response, dot-unstuffed, without the end.
    fn multiline(&mut self) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l == b"." {
                return lines;
            }
            lines.push(match l.strip_prefix(b".") {
                Some(rest) => rest.to_vec(),
                None => l,
            });
        }
    }

    pub fn login(&mut self, user: &str, pass: &str) -> Result<(), String> {
        self.cmd(&format!("USER {user}"))?;
        self.cmd(&format!("PASS {pass}")).map(|_| ())
    }

    /// (messages, octets)
    pub fn stat(&mut self) -> (usize, u64) {
        let r = self.cmd("STAT").expect("STAT");
        let mut it = r
            .split_whitespace()
            .map(|t| t.parse::<u64>().expect("STAT number"));
        (
            it.next().expect("STAT count") as usize,
            it.next().expect("STAT size"),
        )
    }

    /// (number, octets) per message.
    pub fn list(&mut self) -> Vec<(usize, u64)> {
        self.cmd("LIST").expect("LIST");
        self.multiline()
            .iter()
            .map(|l| {
                let l = String::from_utf8_lossy(l);
                let (n, s) = l.split_once(' ').expect("LIST line");
                (
                    n.parse().expect("LIST n"),
                    s.trim().parse().expect("LIST size"),
                )
            })
            .collect()
    }

    /// (number, unique id) per message.
    pub fn uidl(&mut self) -> Vec<(usize, String)> {
        self.cmd("UIDL").expect("UIDL");
        self.multiline()
            .iter()
            .map(|l| {
                let l = String::from_utf8_lossy(l);
                let (n, u) = l.split_once(' ').expect("UIDL line");
                (n.parse().expect("UIDL n"), u.trim().to_owned())
            })
            .collect()
    }

    /// The message with CRLF line ends, dot-unstuffed.
    pub fn retr(&mut self, n: usize) -> Vec<u8> {
        self.cmd(&format!("RETR {n}"))
            .unwrap_or_else(|e| panic!("RETR {n}: {e}"));
        let mut out = Vec::new();
        for l in self.multiline() {
            out.extend_from_slice(&l);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

// ---------------------------------------------------------------------------
// Postfix
// ---------------------------------------------------------------------------

/// A private Postfix: smtpd on a free loopback port, its own queue, the
/// test domains handed to `transport` (e.g. `lmtp:inet:127.0.0.1:PORT` or
/// `lmtp:unix:/path`) through packaging/postfix/main.cf.snippet.
pub struct Postfix {
    /// Declared before `dir`: master (and through it every daemon) stops
    /// before the queue goes.
    proc: Proc,
    dir: TempDir,
    pub config_dir: PathBuf,
    pub smtp: SocketAddr,
    pub maillog_path: PathBuf,
}

/// Our master.cf: no chroot (the queue is a temp dir without the files a
/// chroot needs), smtpd on `{smtp}`, and the services delivery needs.
const MASTER_CF: &str = "\
{smtp} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// Replace the values of `overrides` keys in a main.cf text (continuation
/// lines of a replaced key are dropped); every key must be present.
fn override_main_cf(text: &str, overrides: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut found = vec![false; overrides.len()];
    let mut skipping = false;
    for line in text.lines() {
        if skipping && line.starts_with([' ', '\t']) {
            continue;
        }
        skipping = false;
        let key = line.split('=').next().unwrap_or("").trim();
        if let Some(i) = overrides
            .iter()
            .position(|(k, _)| !line.starts_with('#') && *k == key)
        {
            out.push_str(&format!("{key} = {}\n", overrides[i].1));
            found[i] = true;
            skipping = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    for (i, (k, _)) in overrides.iter().enumerate() {
        assert!(
            found[i],
            "packaging/postfix/main.cf.snippet no longer sets {k}"
        );
    }
    out
}

impl Postfix {
    pub fn start(transport: &str) -> Postfix {
        Postfix::start_with(transport, "", "")
    }

    /// As `start`, with more main.cf lines and master.cf service lines
    /// (e.g. a pipe(8) transport).
    pub fn start_with(transport: &str, main_extra: &str, master_extra: &str) -> Postfix {
        Postfix::start_custom(transport, TEST_DOMAINS, None, main_extra, master_extra)
    }

    /// As `start_with`, handing `domains` (instead of [`TEST_DOMAINS`]) to
    /// `transport`, with smtpd on `smtp` when given (a port chosen before
    /// the peer that submits to it was configured) or on a free port.
    pub fn start_custom(
        transport: &str,
        domains: &[&str],
        smtp: Option<SocketAddr>,
        main_extra: &str,
        master_extra: &str,
    ) -> Postfix {
        Postfix::launch(transport, domains, smtp, main_extra, master_extra, &[])
    }

    /// As `start_with`, master (and every daemon it starts) run by
    /// `launcher`, a command that execs its arguments (e.g. a private
    /// mount namespace whose /etc/passwd holds the test's accounts, for
    /// local(8)).
    pub fn start_launched(launcher: &[String], main_extra: &str, master_extra: &str) -> Postfix {
        let transport = "error:5.1.1 no virtual mailboxes here";
        Postfix::launch(
            transport,
            TEST_DOMAINS,
            None,
            main_extra,
            master_extra,
            launcher,
        )
    }

    fn launch(
        transport: &str,
        domains: &[&str],
        smtp: Option<SocketAddr>,
        main_extra: &str,
        master_extra: &str,
        launcher: &[String],
    ) -> Postfix {
        ensure_installed();
        let dir = temp_dir("mailstow-postfix-");
        let d = dir.path();
        let config_dir = d.join("etc");
        let queue = d.join("queue");
        let data = d.join("data");
        for p in [&config_dir, &queue, &data] {
            fs::create_dir(p).expect("mkdir");
        }
        let postfix_user = nix::unistd::User::from_name("postfix")
            .expect("getpwnam")
            .expect("the postfix user exists");
        nix::unistd::chown(&data, Some(postfix_user.uid), None).expect("chown data_directory");
        fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
        let smtp = smtp.unwrap_or_else(free_v4);
        assert!(smtp.ip().is_loopback(), "postfix listens on loopback only");
        let maillog_path = d.join("maillog");

        let snippet_path = packaging("postfix/main.cf.snippet");
        let snippet = fs::read_to_string(&snippet_path).expect("read postfix snippet");
        let snippet = override_main_cf(
            &snippet,
            &[
                ("virtual_mailbox_domains", domains.join(", ")),
                ("virtual_transport", transport.to_owned()),
            ],
        );
        let main_cf = format!(
            "# A private Postfix for one test (tests/peers.rs).\n\
             compatibility_level = 3.6\n\
             meta_directory = /etc/postfix\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             maillog_file = {maillog}\n\
             maillog_file_prefixes = /var, /tmp, {d}\n\
             myhostname = postfix.test\n\
             mydomain = postfix.test\n\
             myorigin = $myhostname\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mydestination =\n\
             mynetworks = 127.0.0.0/8\n\
             relayhost =\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             default_transport = error:5.1.2 not a test domain\n\
             smtpd_banner = $myhostname ESMTP private test instance\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             biff = no\n\
             \n# ---- packaging/postfix/main.cf.snippet ----\n{snippet}\n{main_extra}",
            queue = queue.display(),
            data = data.display(),
            maillog = maillog_path.display(),
            d = d.display(),
        );
        fs::write(config_dir.join("main.cf"), main_cf).expect("write main.cf");
        fs::write(
            config_dir.join("master.cf"),
            MASTER_CF.replace("{smtp}", &smtp.to_string()) + master_extra,
        )
        .expect("write master.cf");

        // Creates the queue directories and checks the configuration.
        util::run(
            Command::new("postfix")
                .arg("-c")
                .arg(&config_dir)
                .arg("check"),
        );
        let daemon_dir = util::run(
            Command::new("postconf")
                .arg("-c")
                .arg(&config_dir)
                .args(["-h", "daemon_directory"]),
        );
        // master without -w stays in the foreground (our child, so we hold
        // its PID) and leads its own process group.
        let master = Path::new(daemon_dir.trim()).join("master");
        let mut cmd = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&master);
                c
            }
            None => Command::new(&master),
        };
        let proc = Proc::spawn(
            "postfix master",
            cmd.arg("-c")
                .arg(&config_dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            true,
        );
        let mut pf = Postfix {
            proc,
            dir,
            config_dir,
            smtp,
            maillog_path,
        };
        let ok = until_ready(&mut pf.proc, || accepting(smtp));
        assert!(ok, "postfix does not listen on {smtp}:\n{}", pf.maillog());
        pf
    }

    pub fn maillog(&self) -> String {
        read_text(&self.maillog_path)
    }

    /// Submit over SMTP; every recipient and the message must be accepted.
    pub fn send_smtp(&self, from: &str, rcpts: &[&str], msg: &[u8]) {
        let mut c = LmtpClient::tcp(self.smtp);
        let r = c.cmd("EHLO client.test");
        assert_eq!(code(&r), 250, "EHLO: {r:?}");
        let utf8 = !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());
        let mail = format!("MAIL FROM:<{from}>{}", if utf8 { " SMTPUTF8" } else { "" });
        let r = c.cmd(&mail);
        assert_eq!(code(&r), 250, "{mail}: {r:?}");
        for rcpt in rcpts {
            let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert_eq!(code(&r), 250, "RCPT TO:<{rcpt}>: {r:?}");
        }
        let r = c.cmd("DATA");
        assert_eq!(code(&r), 354, "DATA: {r:?}");
        let r = c.send_data(msg, 1).remove(0);
        assert_eq!(code(&r), 250, "end of DATA: {r:?}");
        c.quit();
    }

    /// Submit through Postfix's sendmail (`-C DIR -i`, so a lone `.` line is
    /// content, not the end).
    pub fn sendmail(&self, from: &str, rcpts: &[&str], msg: &[u8]) {
        let out = util::output_with_input(
            Command::new("sendmail")
                .arg("-C")
                .arg(&self.config_dir)
                .args(["-i", "-f", from, "--"])
                .args(rcpts),
            msg,
        );
        assert!(
            out.status.success(),
            "sendmail failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postqueue -j`: one JSON object per queued message.
    pub fn queue(&self) -> String {
        util::run(
            Command::new("postqueue")
                .arg("-c")
                .arg(&self.config_dir)
                .arg("-j"),
        )
    }

    /// Poll until the queue is empty (every message delivered or bounced).
    pub fn wait_queue_empty(&self, timeout: Duration) {
        if poll(timeout, || self.queue().trim().is_empty().then_some(())).is_none() {
            panic!(
                "postfix queue not empty after {timeout:?}:\n{}\nmaillog:\n{}",
                self.queue(),
                tail(&self.maillog(), 40)
            );
        }
    }

    /// Maillog lines that contain every one of `parts`.
    pub fn maillog_lines(&self, parts: &[&str]) -> Vec<String> {
        self.maillog()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_owned)
            .collect()
    }

    /// Poll until the maillog has `n` lines containing every one of
    /// `parts` (logging is asynchronous: a drained queue may not be logged
    /// yet); returns them.
    pub fn wait_maillog(&self, parts: &[&str], n: usize) -> Vec<String> {
        poll(TIMEOUT, || {
            Some(self.maillog_lines(parts)).filter(|l| l.len() >= n)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} maillog line(s) with {parts:?}:\n{}",
                tail(&self.maillog(), 40)
            )
        })
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(15));
        if std::thread::panicking() {
            eprintln!("---- postfix maillog ----\n{}", tail(&self.maillog(), 60));
        }
    }
}

/// `lmtp:inet:HOST:PORT` for a TCP listener (IPv6 in brackets).
pub fn lmtp_inet(addr: SocketAddr) -> String {
    format!("lmtp:inet:{addr}")
}

/// `lmtp:unix:/path` for a unix socket.
pub fn lmtp_unix(path: &Path) -> String {
    format!("lmtp:unix:{}", path.display())
}

// ---------------------------------------------------------------------------
// Our Maildir assumptions, checked against the real Dovecot
// ---------------------------------------------------------------------------

/// The UID and RFC822.SIZE of a `* n FETCH (...)` line.
fn uid_and_size(text: &str) -> (u32, u64) {
    let tokens: Vec<&str> = text
        .split([' ', '(', ')'])
        .filter(|t| !t.is_empty())
        .collect();
    let after = |key: &str| -> Option<u64> {
        let i = tokens.iter().position(|t| *t == key)?;
        tokens.get(i + 1)?.parse().ok()
    };
    let uid = after("UID").expect("UID in FETCH") as u32;
    let size = after("RFC822.SIZE").expect("RFC822.SIZE in FETCH");
    (uid, size)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::util::{
        lf_to_crlf, vmail, write_passwd_file, Maildir, MsgFile, Owner, HOSTNAME, PASSWORD,
    };

    /// mkdir with a mode and owner, like mailstow does.
    fn mkdir(path: &Path, mode: u32, owner: Owner) {
        fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        nix::unistd::chown(path, Some(owner.uid.into()), Some(owner.gid.into())).expect("chown");
    }

    /// A Maildir++ folder (tmp, new, cur; `maildirfolder` unless the root).
    fn make_folder(dir: &Path, subfolder: bool, owner: Owner) {
        mkdir(dir, 0o700, owner);
        for sub in ["tmp", "new", "cur"] {
            mkdir(&dir.join(sub), 0o700, owner);
        }
        if subfolder {
            fs::write(dir.join("maildirfolder"), b"").expect("maildirfolder");
        }
    }

    /// Deliver by hand with the naming scheme mailstow uses: write in tmp/,
    /// then rename into new/ as `<sec>.M<usec>P<pid>Q<n>.<host>,S=,W=`.
    fn hand_deliver(folder: &Path, q: u32, bytes: &[u8], owner: Owner) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        let unique = format!(
            "{}.M{}P{}Q{q}.{HOSTNAME}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id()
        );
        let tmp = folder.join("tmp").join(&unique);
        fs::write(&tmp, bytes).expect("write tmp");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).expect("chmod");
        nix::unistd::chown(&tmp, Some(owner.uid.into()), Some(owner.gid.into())).expect("chown");
        let vsize = bytes.len() as u64 + crate::util::bare_lf_count(bytes);
        let name = format!("{unique},S={},W={vsize}", bytes.len());
        fs::rename(&tmp, folder.join("new").join(&name)).expect("rename into new/");
        name
    }

    /// Every fetched message is byte-exact (CRLF form) one of the files,
    /// and its RFC822.SIZE and literal length are that file's W.
    fn assert_fetched_match(fetched: &[Fetched], files: &[MsgFile]) {
        assert_eq!(fetched.len(), files.len());
        for f in fetched {
            let file = files
                .iter()
                .find(|m| lf_to_crlf(&m.bytes) == f.body)
                .unwrap_or_else(|| panic!("UID {} matches no file byte for byte", f.uid));
            assert_eq!(
                Some(f.size),
                file.w_field(),
                "RFC822.SIZE != W for {}",
                file.name
            );
            assert_eq!(f.body.len() as u64, f.size, "literal length != RFC822.SIZE");
        }
    }

    #[test]
    fn dovecot_reads_handwritten_maildir_byte_exact_with_w_as_rfc822_size() {
        let owner = vmail();
        let dir = temp_dir("mailstow-maildir-");
        let mail_root = dir.path().join("mail");
        fs::create_dir_all(mail_root.join("example.org")).expect("mkdir");
        for p in [&mail_root, &mail_root.join("example.org")] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let users_file = dir.path().join("users");
        let alice = "alice@example.org";
        let jorg = "jörg@example.org";
        write_passwd_file(&users_file, &[alice.to_owned(), jorg.to_owned()], owner);

        // alice: INBOX with an LF-only and a CRLF message, .Lists.rust with one.
        let md = Maildir::of(&mail_root, alice);
        mkdir(md.root.parent().expect("home"), 0o700, owner);
        make_folder(&md.root, false, owner);
        make_folder(&md.folder("Lists.rust"), true, owner);
        let lf_msg: &[u8] = b"From: a@example.net\nTo: alice@example.org\nSubject: lf\n\n\
            .leading dot\n..two dots\n.\nend \xc3\xa9 \xff 8-bit\n";
        let crlf_msg: &[u8] = b"From: a@example.net\r\nSubject: crlf\r\n\r\nbody\r\n";
        let list_msg: &[u8] = b"From: list@example.net\nSubject: rust\n\nin a folder\n";
        hand_deliver(&md.root, 1, lf_msg, owner);
        hand_deliver(&md.root, 2, crlf_msg, owner);
        hand_deliver(&md.folder("Lists.rust"), 3, list_msg, owner);

        // jörg: a UTF-8 local part, home {mail_root}/example.org/jörg.
        let mdj = Maildir::of(&mail_root, jorg);
        mkdir(mdj.root.parent().expect("home"), 0o700, owner);
        make_folder(&mdj.root, false, owner);
        let utf8_msg = "From: a@example.net\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\n\nGrüße\n";
        hand_deliver(&mdj.root, 4, utf8_msg.as_bytes(), owner);

        let dovecot = Dovecot::start(&users_file, &mail_root);
        let inbox = md.messages("INBOX");
        let lists = md.messages("Lists.rust");
        assert_eq!((inbox.len(), lists.len()), (2, 1));

        let mut imap = dovecot.imap_login(alice, PASSWORD);
        let list = imap.list();
        let names: Vec<&str> = list.iter().map(|(_, n)| n.as_str()).collect();
        for want in ["INBOX", "Lists", "Lists.rust"] {
            assert!(names.contains(&want), "LIST lacks {want}: {list:?}");
        }
        let parent = list.iter().find(|(_, n)| n == "Lists").expect("Lists");
        assert!(
            parent.0.contains("\\Noselect"),
            "Lists without a directory: {parent:?}"
        );
        assert_eq!(imap.examine("INBOX"), 2);
        assert_fetched_match(&imap.fetch_all(), &inbox);
        assert_eq!(imap.examine("Lists.rust"), 1);
        assert_fetched_match(&imap.fetch_all(), &lists);
        imap.logout();
        assert!(
            md.messages("INBOX").iter().all(|m| m.sub == "new"),
            "EXAMINE must leave files in new/"
        );

        let mut pop = dovecot.pop3_login(alice, PASSWORD);
        let w_sum: u64 = inbox.iter().map(|m| m.w_field().expect("W")).sum();
        assert_eq!(pop.stat(), (2, w_sum), "POP3 STAT counts W");
        let sizes = pop.list();
        let uidl = pop.uidl();
        assert_eq!(uidl.len(), 2);
        for (n, size) in sizes {
            let body = pop.retr(n);
            assert_eq!(body.len() as u64, size, "POP3 LIST size != RETR length");
            let file = inbox
                .iter()
                .find(|m| lf_to_crlf(&m.bytes) == body)
                .unwrap_or_else(|| panic!("RETR {n} matches no file byte for byte"));
            assert_eq!(file.w_field(), Some(size));
        }
        pop.quit();
        // Login moved new/X to cur/X:2, and RETR added \Seen (X:2,S).
        let moved: Vec<String> = md.messages("INBOX").into_iter().map(|m| m.name).collect();
        assert!(
            moved
                .iter()
                .all(|n| md.root.join("cur").join(n).exists() && n.ends_with(":2,S")),
            "after POP3: {moved:?}"
        );

        let mut imap = dovecot.imap_login(jorg, PASSWORD);
        assert_eq!(imap.examine("INBOX"), 1);
        assert_fetched_match(&imap.fetch_all(), &mdj.messages("INBOX"));
        imap.logout();
    }
}
