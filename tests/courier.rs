//! Courier-IMAP 5 and Courier-POP3 (Debian 12) read what mailstow wrote:
//! a cached Debian root with courier-imap, courier-pop and courier-authlib
//! (a userdb built with makeuserdb from the same users), run chrooted in a
//! private mount namespace with the mail root bound in, on loopback ports,
//! stopped by PID. Proves INBOX and Sieve-created folders (a UTF-8 name),
//! flags, keywords (`keywords = "courier"`), byte-exact BODY[] and sizes,
//! LSUB (`subscriptions = "courier"`), UIDs equal to the index's
//! (`uids = "courier"`, also for a message delivered while Courier has the
//! folder open) and the maildirsize quota after Courier's APPEND and
//! EXPUNGE. Must not install Courier on the host (it conflicts with
//! Dovecot's imap-server) or sleep to synchronise.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::debian::{in_root, peer_root};
use crate::peers::{Imap, Pop3};
use crate::util::{
    self, free_v4, lf_to_crlf, poll, run, Mailstow, Options, Proc, PASSWORD, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const PACKAGES: &[&str] = &["courier-imap", "courier-pop", "courier-authlib-userdb"];

/// authdaemond, and couriertcpd for IMAP and POP3, from one root.
struct Courier {
    procs: Vec<Proc>,
    imap: SocketAddr,
    pop3: SocketAddr,
    /// Dropped last: the processes run from it.
    _root: tempfile::TempDir,
}

impl Courier {
    /// Starts Courier for the users of `ms` (password [`PASSWORD`], homes
    /// and owner as mailstow has them).
    fn start(ms: &Mailstow, users: &[&str]) -> Courier {
        util::apt_install_missing(&["/usr/bin/openssl"], &["openssl"]);
        let root = peer_root(PACKAGES);
        let r = root.path();
        write_userdb(r, ms, users);
        let rc = r.join("etc/courier/authdaemonrc");
        let text = fs::read_to_string(&rc).expect("authdaemonrc");
        let text = text.replace(
            "authmodulelist=\"authpam\"",
            "authmodulelist=\"authuserdb\"",
        );
        fs::write(&rc, text).expect("write authdaemonrc");
        fs::create_dir_all(r.join("run/courier/authdaemon")).expect("authdaemon dir");
        let (imap, pop3) = (free_v4(), free_v4());
        fs::write(r.join("run-auth.sh"), AUTH_SH).expect("run-auth.sh");
        fs::write(
            r.join("run-imap.sh"),
            tcpd_script(imap, "imapd", IMAP_PROGRAMS),
        )
        .expect("run-imap.sh");
        fs::write(
            r.join("run-pop3.sh"),
            tcpd_script(pop3, "pop3d", POP3_PROGRAMS),
        )
        .expect("run-pop3.sh");
        let mut procs = vec![spawn(r, &ms.mail_root, "run-auth.sh", "authdaemond")];
        let socket = r.join("run/courier/authdaemon/socket");
        poll(TIMEOUT, || socket.exists().then_some(())).expect("authdaemond's socket");
        procs.push(spawn(r, &ms.mail_root, "run-imap.sh", "courier imapd"));
        procs.push(spawn(r, &ms.mail_root, "run-pop3.sh", "courier pop3d"));
        for addr in [imap, pop3] {
            poll(TIMEOUT, || std::net::TcpStream::connect(addr).ok())
                .unwrap_or_else(|| panic!("Courier listens on {addr}"));
        }
        Courier {
            procs,
            imap,
            pop3,
            _root: root,
        }
    }

    fn imap_login(&self, user: &str) -> Imap {
        let mut c = Imap::connect(self.imap);
        c.login(user, PASSWORD)
            .unwrap_or_else(|e| panic!("Courier IMAP LOGIN {user}: {e}"));
        c
    }

    /// `APPEND` with a synchronising literal (Courier has no LITERAL+), on
    /// a connection of its own.
    fn append(&self, user: &str, mailbox: &str, message: &[u8]) {
        use std::io::{BufRead, BufReader, Write};
        let s = std::net::TcpStream::connect(self.imap).expect("connect Courier IMAP");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut w = s.try_clone().expect("dup");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        let mut until = |r: &mut BufReader<std::net::TcpStream>, prefix: &str| loop {
            line.clear();
            r.read_line(&mut line).expect("read from Courier");
            assert!(!line.is_empty(), "Courier closed the connection");
            if line.starts_with(prefix) {
                return line.clone();
            }
        };
        until(&mut r, "* OK");
        write!(w, "a1 LOGIN \"{user}\" \"{PASSWORD}\"\r\n").expect("write");
        assert!(until(&mut r, "a1 ").starts_with("a1 OK"));
        write!(w, "a2 APPEND \"{mailbox}\" {{{}}}\r\n", message.len()).expect("write");
        until(&mut r, "+");
        w.write_all(message)
            .and_then(|()| w.write_all(b"\r\n"))
            .expect("write");
        let done = until(&mut r, "a2 ");
        assert!(done.starts_with("a2 OK"), "Courier APPEND: {done}");
        write!(w, "a3 LOGOUT\r\n").expect("write");
    }

    fn pop3_login(&self, user: &str) -> Pop3 {
        let mut c = Pop3::connect(self.pop3);
        c.login(user, PASSWORD)
            .unwrap_or_else(|e| panic!("Courier POP3 login {user}: {e}"));
        c
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        for p in &mut self.procs {
            // Each is a process group: its server and the children it forked.
            let _ = kill(Pid::from_raw(-(p.pid() as i32)), Signal::SIGTERM);
            p.terminate(Duration::from_secs(10));
        }
    }
}

const AUTH_SH: &str = "set -a\n. /etc/courier/authdaemonrc\n\
                       exec /usr/lib/courier/courier-authlib/authdaemond\n";
const IMAP_PROGRAMS: &str = "/usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir";
const POP3_PROGRAMS: &str =
    "/usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir";

/// Debian's start script for `config` (imapd or pop3d), in the foreground,
/// without TLS, on `addr`.
fn tcpd_script(addr: SocketAddr, config: &str, programs: &str) -> String {
    format!(
        "set -a\nprefix=/usr; exec_prefix=/usr; sbindir=/usr/sbin; bindir=/usr/bin\n\
         . /etc/courier/{config}\n. /etc/courier/{config}-ssl\n\
         IMAP_STARTTLS=NO; POP3_STARTTLS=NO; IMAP_TLS_REQUIRED=0; POP3_TLS_REQUIRED=0\n\
         exec /usr/sbin/couriertcpd -address={ip} -maxprocs=10 -nodnslookup \
         -noidentlookup {port} {programs}\n",
        ip = addr.ip(),
        port = addr.port()
    )
}

fn spawn(root: &Path, mail_root: &Path, script: &str, name: &str) -> Proc {
    let mut cmd = in_root(root, &[mail_root], "sh", &[&format!("/{script}")]);
    cmd.stdin(Stdio::null()).process_group(0);
    Proc::spawn(name, &mut cmd, true)
}

/// /etc/courier/userdb with each user's uid, gid, home and Maildir as
/// mailstow has them, then `makeuserdb`.
fn write_userdb(root: &Path, ms: &Mailstow, users: &[&str]) {
    let hash = run(Command::new("openssl").args(["passwd", "-6", PASSWORD]));
    let mut text = String::new();
    for user in users {
        let home = ms.home(user);
        text.push_str(&format!(
            "{user}\tuid={}|gid={}|home={}|mail={}/Maildir|systempw={}\n",
            ms.owner.uid,
            ms.owner.gid,
            home.display(),
            home.display(),
            hash.trim()
        ));
    }
    let path = root.join("etc/courier/userdb");
    fs::write(&path, text).expect("write userdb");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod userdb");
    run(Command::new("chroot").arg(root).arg("/usr/sbin/makeuserdb"));
}

fn courier_options() -> Options {
    let mut opts = Options::new(&[ALICE]);
    opts.storage_extra =
        "folder_encoding = \"utf8\"\nkeywords = \"courier\"\nsubscriptions = \"courier\"\n".into();
    opts.extra_toml = "[index]\nuids = \"courier\"\n[quota]\nrule = \"*:storage=10M\"\n".into();
    opts
}

const SIEVE: &str = r#"require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "report" {
    addflag "$Label1";
    addflag "\\Flagged";
    fileinto :create "Reçus";
} elsif header :contains "subject" "tagged" {
    addflag "$Label2";
}
"#;

fn deliver(ms: &Mailstow, subject: &str) -> Vec<u8> {
    let msg = util::message(
        "bob@example.net",
        ALICE,
        subject,
        "Bonjour.\r\nLigne deux.\r\n",
    );
    let mut c = ms.connect();
    c.lhlo();
    let replies = c.deliver("bob@example.net", &[ALICE], &msg);
    c.quit();
    assert_eq!(util::code(&replies[0]), 250, "{replies:?}");
    msg
}

/// (storage name, base) -> UID, from the index database (read-only; None
/// while it does not exist or has no tables yet).
fn index_uids(ms: &Mailstow) -> Option<BTreeMap<(String, String), u32>> {
    let path = ms.home(ALICE).join(".mailstow/index.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let db = rusqlite::Connection::open_with_flags(path, flags).ok()?;
    let mut stmt = db
        .prepare(
            "SELECT f.storage_name, m.base, m.uid FROM messages m \
             JOIN folders f ON f.id = m.folder_id",
        )
        .ok()?;
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .ok()?;
    rows.collect::<Result<_, _>>().ok()
}

/// Waits until the index has `n` rows.
fn wait_index(ms: &Mailstow, n: usize) -> BTreeMap<(String, String), u32> {
    poll(TIMEOUT, || index_uids(ms).filter(|rows| rows.len() >= n))
        .unwrap_or_else(|| panic!("the index holds {n} rows: {:?}", index_uids(ms)))
}

/// The stored file of each message of a folder, by base.
fn stored(ms: &Mailstow, folder: &str) -> BTreeMap<String, Vec<u8>> {
    ms.maildir(ALICE)
        .messages(folder)
        .into_iter()
        .map(|m| {
            (
                m.base().to_owned(),
                fs::read(&m.path).expect("read message"),
            )
        })
        .collect()
}

#[test]

fn courier_reads_folders_flags_keywords_subscriptions_and_the_index_uids() {
    let ms = Mailstow::start_with(courier_options());
    ms.install_sieve(ALICE, SIEVE);
    deliver(&ms, "plain");
    deliver(&ms, "monthly report");
    deliver(&ms, "tagged note");
    let index = wait_index(&ms, 3);
    let courier = Courier::start(&ms, &[ALICE]);
    let mut imap = courier.imap_login(ALICE);

    let names = imap.mailbox_names();
    assert!(names.contains(&"INBOX.Re&AOc-us".to_owned()), "{names:?}");
    let lsub = imap.run("LSUB \"\" \"*\"").expect("LSUB");
    assert!(
        lsub.iter().any(|l| l.text.contains("INBOX.Re&AOc-us")),
        "LSUB: {lsub:?}"
    );

    for (folder, storage, want_flags) in [
        ("INBOX", "", vec![vec![], vec!["$Label2"]]),
        (
            "INBOX.Re&AOc-us",
            "Reçus",
            vec![vec!["\\Flagged", "$Label1"]],
        ),
    ] {
        let on_disk = stored(&ms, if storage.is_empty() { "INBOX" } else { storage });
        imap.select(folder);
        let got = imap.fetch_all_flags();
        assert_eq!(got.len(), want_flags.len(), "{folder}");
        for (m, want) in got.iter().zip(&want_flags) {
            let (base, bytes) = on_disk
                .iter()
                .find(|(b, _)| index.get(&(storage.to_owned(), (*b).clone())) == Some(&m.uid))
                .unwrap_or_else(|| {
                    panic!(
                        "{folder}: Courier UID {} is no indexed file: {index:?}",
                        m.uid
                    )
                });
            assert_eq!(m.body, lf_to_crlf(bytes), "{folder} {base}: BODY[]");
            assert_eq!(m.size, m.body.len() as u64, "{folder} {base}: RFC822.SIZE");
            let mut flags = m.flags.clone();
            flags.sort();
            let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(flags, want, "{folder} {base}: FLAGS");
        }
    }

    // Delivered while Courier has INBOX open: the UID Courier shows is the
    // index's.
    imap.select("INBOX");
    deliver(&ms, "while open");
    let index = wait_index(&ms, 4);
    imap.run("NOOP").expect("NOOP");
    let got = imap.fetch_all_flags();
    let inbox: Vec<u32> = index
        .iter()
        .filter(|((s, _), _)| s.is_empty())
        .map(|(_, &u)| u)
        .collect();
    let mut shown: Vec<u32> = got.iter().map(|m| m.uid).collect();
    shown.sort();
    let mut inbox_sorted = inbox.clone();
    inbox_sorted.sort();
    assert_eq!(
        shown, inbox_sorted,
        "Courier's INBOX UIDs against the index's"
    );
    imap.logout();

    let mut pop = courier.pop3_login(ALICE);
    let on_disk = stored(&ms, "INBOX");
    let (count, total) = pop.stat();
    assert_eq!(count, on_disk.len());
    let crlf_total: u64 = on_disk.values().map(|b| lf_to_crlf(b).len() as u64).sum();
    assert_eq!(total, crlf_total, "POP3 STAT octets");
    for n in 1..=count {
        let body = pop.retr(n);
        assert!(
            on_disk.values().any(|b| lf_to_crlf(b) == body),
            "POP3 RETR {n} is byte-exact one of the stored messages"
        );
    }
    pop.quit();
}

/// The sum of the sizes of every message file (new/ and cur/ of every
/// folder), and the usage `maildirsize` adds up to.
fn usage(ms: &Mailstow) -> (u64, u64) {
    let root = ms.home(ALICE).join("Maildir");
    let mut files = 0;
    for dir in [root.clone(), root.join(".Reçus")] {
        for sub in ["new", "cur"] {
            for e in fs::read_dir(dir.join(sub)).into_iter().flatten().flatten() {
                files += e.metadata().expect("stat").len();
            }
        }
    }
    let text = fs::read_to_string(root.join("maildirsize")).expect("maildirsize");
    let counted = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse::<i64>().ok())
        .sum::<i64>();
    (files, u64::try_from(counted).unwrap_or(0))
}

#[test]

fn courier_keeps_the_maildirsize_that_mailstow_started_exact_over_append_and_expunge() {
    let ms = Mailstow::start_with(courier_options());
    ms.install_sieve(ALICE, SIEVE);
    deliver(&ms, "one");
    deliver(&ms, "monthly report");
    wait_index(&ms, 2);
    let (files, counted) = usage(&ms);
    assert_eq!(counted, files, "maildirsize after mailstow's deliveries");
    let courier = Courier::start(&ms, &[ALICE]);
    let mut imap = courier.imap_login(ALICE);
    let appended = util::message("carol@example.net", ALICE, "appended", "By IMAP.\r\n");
    courier.append(ALICE, "INBOX", &appended);
    let (files, counted) = usage(&ms);
    assert_eq!(counted, files, "maildirsize after Courier's APPEND");
    imap.select("INBOX.Re&AOc-us");
    imap.expunge_all();
    let (files, counted) = usage(&ms);
    assert_eq!(counted, files, "maildirsize after Courier's EXPUNGE");
    let quota = imap.quota_root("INBOX");
    let storage = quota
        .iter()
        .find(|(r, _, _)| r == "STORAGE")
        .expect("STORAGE");
    assert_eq!(storage.2, 10 * 1024, "the limit mailstow wrote, in KiB");
    assert_eq!(storage.1, files.div_ceil(1024), "usage in KiB: {quota:?}");
    imap.logout();
    deliver(&ms, "after");
    let (files, counted) = usage(&ms);
    assert_eq!(
        counted, files,
        "maildirsize after a delivery on Courier's file"
    );
}
