//! GNU Mailutils 3.15 imap4d (Debian 12's mailutils-imap4d) reads what
//! mailstow wrote: a cached Debian root with the package (not the host: it
//! enables a unit running `imap4d --daemon` on port 143, Dovecot's port),
//! run chrooted in a private mount namespace with the mail root bound in,
//! `--daemon --foreground` on a loopback port with a private config,
//! stopped by PID. The user is an account of the root's own passwd/shadow
//! (uid and gid of the mail owner, home as mailstow has it). Proves INBOX
//! byte-exact (BODY[] is the stored LF file with CRLF line ends,
//! RFC822.SIZE its `W=`), Sieve's `\Seen`/`\Flagged`, a 3 MiB message,
//! 8-bit text and dot lines, what LIST shows of a Maildir++ folder and how
//! to open it, the `.mu-prop` it writes, and what a read-write SELECT does
//! to the file names and to `\Seen` after a read-only first open. Must not install Mailutils on the host, touch the
//! host's passwd or PAM, or sleep to synchronise.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::debian::{in_root, peer_root};
use crate::peers::{FetchedFlags, Imap};
use crate::util::{
    self, free_v4, lf_to_crlf, poll, run, Mailstow, MsgFile, Options, Proc, PASSWORD, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
/// The login name: the root's account named after ALICE's local part.
const LOGIN: &str = "alice";
const CONFIG: &str = "/etc/mailstow-test-imap4d.conf";

/// imap4d from its own root, listening on `addr`.
struct Imap4d {
    proc: Proc,
    addr: SocketAddr,
    log: std::path::PathBuf,
    /// Dropped last: the process runs from it.
    _root: tempfile::TempDir,
}

impl Imap4d {
    /// Starts imap4d for ALICE of `ms`: the account `alice` (password
    /// [`PASSWORD`], mailstow's owner, ALICE's home) in the root's
    /// /etc/passwd and /etc/shadow, INBOX at `{home}/Maildir`.
    fn start(ms: &Mailstow) -> Imap4d {
        util::apt_install_missing(&["/usr/bin/openssl"], &["openssl"]);
        let root = peer_root(&["mailutils-imap4d"]);
        let r = root.path();
        let home = ms.home(ALICE);
        let hash = run(Command::new("openssl").args(["passwd", "-6", PASSWORD]));
        append(
            &r.join("etc/passwd"),
            &format!(
                "{LOGIN}:x:{}:{}::{}:/bin/sh\n",
                ms.owner.uid,
                ms.owner.gid,
                home.display()
            ),
        );
        append(
            &r.join("etc/shadow"),
            &format!("{LOGIN}:{}:19000:0:99999:7:::\n", hash.trim()),
        );
        let addr = free_v4();
        let pattern = home
            .parent()
            .expect("home has a parent")
            .join("${user}/Maildir");
        fs::write(
            r.join(CONFIG.trim_start_matches('/')),
            format!(
                "logging {{ syslog false; }};\n\
                 auth {{ authorization system; authentication system; }};\n\
                 mailbox {{ mailbox-type maildir; mailbox-pattern \"{}\"; }};\n\
                 server {addr} {{ }};\n",
                pattern.display()
            ),
        )
        .expect("write imap4d config");
        let log = r.join("imap4d.log");
        let out = fs::File::create(&log).expect("imap4d log");
        let mut cmd = in_root(
            r,
            &[&ms.mail_root],
            "/usr/sbin/imap4d",
            &[
                &format!("--config-file={CONFIG}"),
                "--daemon",
                "--foreground",
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out)
            .process_group(0);
        let mut proc = Proc::spawn("imap4d", &mut cmd, true);
        let up = poll(TIMEOUT, || {
            if proc.exited().is_some() {
                return Some(false);
            }
            std::net::TcpStream::connect(addr).ok().map(|_| true)
        });
        assert_eq!(
            up,
            Some(true),
            "imap4d listens on {addr}: {}",
            util::read_text(&log)
        );
        Imap4d {
            proc,
            addr,
            log,
            _root: root,
        }
    }

    fn login(&self) -> Imap {
        let mut c = Imap::connect(self.addr);
        c.login(LOGIN, PASSWORD)
            .unwrap_or_else(|e| panic!("imap4d LOGIN: {e}\n{}", util::read_text(&self.log)));
        c
    }
}

impl Drop for Imap4d {
    fn drop(&mut self) {
        // A process group: the daemon and the session children it forked.
        let _ = kill(Pid::from_raw(-(self.proc.pid() as i32)), Signal::SIGTERM);
        self.proc.terminate(Duration::from_secs(10));
    }
}

fn append(path: &std::path::Path, line: &str) {
    let mut text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.push_str(line);
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

const SIEVE: &str = r#"require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "report" {
    fileinto :create :flags ["\\Flagged", "\\Seen"] "Reports";
} elsif header :contains "subject" "already read" {
    addflag "\\Seen";
} elsif header :contains "subject" "urgent" {
    addflag "\\Flagged";
}
"#;

fn deliver(ms: &Mailstow, subject: &str, body: &[u8]) {
    let msg = util::message_bytes("bob@example.net", ALICE, subject, body);
    let mut c = ms.connect();
    c.lhlo();
    let replies = c.deliver("bob@example.net", &[ALICE], &msg);
    c.quit();
    assert_eq!(util::code(&replies[0]), 250, "{subject}: {replies:?}");
}

/// 3 MiB of 8-bit lines, some starting with dots.
fn large_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(3 << 20);
    let mut n = 0u32;
    while body.len() < 3 << 20 {
        n += 1;
        let line = if n.is_multiple_of(97) {
            format!(".{n:08} eine Zeile mit Punkt am Anfang, Grüße\n")
        } else {
            format!("{n:08} Große Zeile: äöü ÄÖÜ ß — «ça va» 0123456789abcdefghij\n")
        };
        body.extend_from_slice(line.as_bytes());
    }
    body
}

/// The stored file whose bytes, CRLF-ended, are `body`.
fn file_of<'a>(files: &'a [MsgFile], body: &[u8]) -> &'a MsgFile {
    files
        .iter()
        .find(|f| lf_to_crlf(&f.bytes) == body)
        .unwrap_or_else(|| {
            panic!(
                "BODY[] of {} bytes is no stored file byte-exact (CRLF-ended): {:?}",
                body.len(),
                files.iter().map(|f| &f.name).collect::<Vec<_>>()
            )
        })
}

fn subject(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
        .trim_end()
        .to_owned()
}

fn sorted(flags: &[String]) -> Vec<String> {
    let mut f = flags.to_vec();
    f.sort();
    f
}

/// Each fetched message is one stored file byte-exact, RFC822.SIZE is its
/// `W=`; returns (subject, flags) pairs.
fn check_bytes(what: &str, got: &[FetchedFlags], files: &[MsgFile]) -> Vec<(String, Vec<String>)> {
    assert_eq!(
        got.len(),
        files.len(),
        "{what}: messages shown against files"
    );
    got.iter()
        .map(|m| {
            let f = file_of(files, &m.body);
            let w = f
                .w_field()
                .unwrap_or_else(|| panic!("{what}: no W= in {}", f.name));
            assert_eq!(m.size, w, "{what} {}: RFC822.SIZE is W=", f.name);
            assert_eq!(m.size, m.body.len() as u64, "{what} {}", f.name);
            (subject(&f.bytes), sorted(&m.flags))
        })
        .collect()
}

#[test]
fn mailutils_imap4d_reads_inbox_byte_exact_with_flags_and_a_folder_by_its_path() {
    let ms = Mailstow::start_with(Options::new(&[ALICE]));
    ms.install_sieve(ALICE, SIEVE);
    let dots = "Grüße aus Köln, 8-bit.\n.\n..two dots\n.leading dot\n. space\nend\n";
    deliver(&ms, "plain with dots", dots.as_bytes());
    deliver(&ms, "already read", b"Seen by Sieve.\n");
    deliver(&ms, "urgent", b"Flagged by Sieve.\n");
    deliver(&ms, "large", &large_body());
    deliver(&ms, "monthly report", "Bericht für März.\n".as_bytes());
    let maildir = ms.maildir(ALICE);
    let inbox = maildir.messages("INBOX");
    let reports = maildir.messages("Reports");
    assert_eq!((inbox.len(), reports.len()), (4, 1), "stored messages");
    for f in inbox.iter().chain(&reports) {
        assert!(
            util::find(&f.bytes, b"\r\n").is_none(),
            "{}: stored with LF line ends only",
            f.name
        );
    }
    let large = inbox
        .iter()
        .find(|f| subject(&f.bytes) == "large")
        .expect("the large message");
    assert!(large.bytes.len() > 3 << 20, "{} bytes", large.bytes.len());

    let imap4d = Imap4d::start(&ms);
    let mut imap = imap4d.login();

    // LIST: INBOX, then the home's directories by their paths; the
    // Maildir++ folder is no "Reports" or "INBOX.Reports" mailbox.
    let names: BTreeSet<String> = imap.mailbox_names().into_iter().collect();
    assert!(names.contains("INBOX"), "LIST: {names:?}");
    assert!(names.contains("Maildir/.Reports"), "LIST: {names:?}");
    for absent in ["Reports", "INBOX.Reports", "INBOX/Reports"] {
        assert!(!names.contains(absent), "LIST shows {absent}: {names:?}");
    }

    // EXAMINE (read-only), the first open: every message byte-exact, flags
    // from the `:2,` info, no file renamed.
    let names_before: Vec<String> = inbox.iter().map(|f| f.name.clone()).collect();
    assert_eq!(imap.examine("INBOX"), 4, "EXISTS");
    let got = check_bytes("INBOX", &imap.fetch_all_flags(), &inbox);
    let flags_of = |shown: &[(String, Vec<String>)], s: &str| {
        shown
            .iter()
            .find(|(subj, _)| subj == s)
            .map(|(_, f)| f.clone())
            .unwrap_or_else(|| panic!("no {s:?} in {shown:?}"))
    };
    assert_eq!(flags_of(&got, "plain with dots"), Vec::<String>::new());
    assert_eq!(flags_of(&got, "already read"), vec!["\\Seen"]);
    assert_eq!(flags_of(&got, "urgent"), vec!["\\Flagged"]);
    assert_eq!(flags_of(&got, "large"), Vec::<String>::new());
    let mut after: Vec<String> = maildir
        .messages("INBOX")
        .iter()
        .map(|f| f.name.clone())
        .collect();
    after.sort();
    assert_eq!(after, names_before, "EXAMINE renames no file");

    // The Sieve folder, opened by its path under the home.
    assert_eq!(imap.examine("Maildir/.Reports"), 1, "EXISTS");
    let got = check_bytes("Maildir/.Reports", &imap.fetch_all_flags(), &reports);
    assert_eq!(got[0].1, vec!["\\Flagged", "\\Seen"]);
    imap.logout();
    // Written when it closes each Maildir it opened.
    for dir in [maildir.root.clone(), maildir.folder("Reports")] {
        let prop = dir.join(".mu-prop");
        poll(TIMEOUT, || prop.is_file().then_some(()))
            .unwrap_or_else(|| panic!("imap4d writes {}", prop.display()));
    }

    // SELECT (read-write), the second open: imap4d moves new/ to cur/ and
    // renames every file to its own name, `,S=` and `,W=` dropped, `,a=`
    // (attributes) and `,u=` (UID) added; the bytes stay. Because the first
    // open was read-only, it has forgotten the `\Seen` of the messages
    // that open saw (it keeps `\Flagged`), and the new names drop the `S`.
    let mut imap = imap4d.login();
    assert_eq!(imap.select("INBOX"), 4, "EXISTS");
    let selected = imap.fetch_all_flags();
    imap.logout();
    let renamed = poll(TIMEOUT, || {
        let files = maildir.messages("INBOX");
        files
            .iter()
            .all(|f| f.sub == "cur" && f.base().contains(",u="))
            .then_some(files)
    })
    .unwrap_or_else(|| panic!("imap4d renames: {:?}", maildir.messages("INBOX")));
    for f in &renamed {
        assert!(f.base().contains(",a="), "{}", f.name);
        assert!(f.w_field().is_none() && f.s_field().is_none(), "{}", f.name);
        assert!(
            inbox.iter().any(|o| o.bytes == f.bytes),
            "{}: bytes unchanged",
            f.name
        );
    }
    let mut shown = Vec::new();
    for m in &selected {
        assert_eq!(m.size, m.body.len() as u64);
        let f = file_of(&renamed, &m.body);
        shown.push((subject(&f.bytes), sorted(&m.flags), f.name.clone()));
    }
    let after_select = |s: &str| {
        shown
            .iter()
            .find(|(subj, _, _)| subj == s)
            .cloned()
            .unwrap_or_else(|| panic!("no {s:?} in {shown:?}"))
    };
    let (_, flags, name) = after_select("already read");
    assert_eq!(flags, Vec::<String>::new(), "\\Seen forgotten: {name}");
    assert!(name.ends_with(":2,"), "the S is gone from the name: {name}");
    let (_, flags, name) = after_select("urgent");
    assert_eq!(flags, vec!["\\Flagged"], "{name}");
    assert!(name.ends_with(":2,F"), "{name}");

    // Once imap4d has opened the Maildir read-write, mailstow's next
    // delivery keeps its `\Seen` and its name, and imap4d reads it
    // byte-exact (RFC822.SIZE its `W=`) beside the renamed ones.
    deliver(&ms, "already read, after select", "Gelesen.\n".as_bytes());
    let now = maildir.wait_messages("INBOX", 5);
    let new = now
        .iter()
        .find(|f| subject(&f.bytes) == "already read, after select")
        .expect("the new message");
    let mut imap = imap4d.login();
    assert_eq!(imap.examine("INBOX"), 5, "EXISTS");
    let got = imap.fetch_all_flags();
    assert_eq!(got.len(), 5);
    for m in &got {
        let f = file_of(&now, &m.body);
        assert_eq!(m.size, m.body.len() as u64, "{}", f.name);
    }
    let m = got
        .iter()
        .find(|m| lf_to_crlf(&new.bytes) == m.body)
        .expect("imap4d shows the new message");
    assert_eq!(Some(m.size), new.w_field(), "RFC822.SIZE is W=");
    assert_eq!(m.flags, vec!["\\Seen"], "{}", new.name);
    imap.logout();
}
