//! `[users] driver = "system"` through a real socket, with real Unix
//! accounts: mailstow runs in a private mount namespace whose /etc/passwd
//! and /etc/group are copies with the test accounts appended (the host's
//! files are never changed), the homes are 0700 directories under the
//! test's temp dir. Proves per-user rights: mail, folders, index and Sieve
//! state belong to their account, supplementary groups count, a symlinked
//! Maildir or a hostile file leads nowhere the account could not write,
//! the process keeps only CAP_SETUID and CAP_SETGID, and the accounts it
//! never delivers to get 550 5.1.1. Must not touch the host's account
//! databases.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::accounts::Accounts;
use crate::peers::{self, Imap};
use crate::util::{
    chown, code, free_v4, message, poll, until_ready, Mailstow, Options, Owner, Proc, TIMEOUT,
};

/// The test accounts: name and uid (the gid is the same, a group each).
const ACCOUNTS: &[(&str, u32)] = &[
    ("alice", 61_001),
    ("bob", 61_002),
    ("carol", 61_003),
    ("dave", 61_004),
    ("erin", 61_005),
    ("frank", 61_006),
    ("grace", 61_007),
    ("lowuid", 901),
];
/// A group with grace as a member, to see supplementary groups at work.
const SHARED_GROUP: (&str, u32) = ("mailshare", 61_010);

/// The test accounts, with a group that has grace as a member.
fn accounts() -> Accounts {
    let shared = format!("{}:x:{}:grace", SHARED_GROUP.0, SHARED_GROUP.1);
    Accounts::new("mailstow-sysusers-", ACCOUNTS, &[shared])
}

impl Accounts {
    /// A private Dovecot IMAP in the same kind of namespace: the accounts
    /// from NSS (`userdb passwd`), mail in `~/Maildir`, every password
    /// [`crate::util::PASSWORD`].
    fn dovecot(&self) -> (Proc, std::net::SocketAddr) {
        let d = self.dir.path().join("dovecot");
        fs::create_dir_all(d.join("state")).expect("mkdir dovecot");
        let imap = free_v4();
        let conf = format!(
            "{base}first_valid_uid = 1000\n\
             passdb {{\n  driver = static\n  args = password={pass}\n}}\n\
             userdb {{\n  driver = passwd\n}}\n",
            base = crate::util::dovecot_imap_base("mailstow-sys", &d, imap.port()),
            pass = crate::util::PASSWORD,
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf).expect("write dovecot.conf");
        let mut argv = self.launcher();
        argv.extend(["dovecot", "-F", "-c"].map(String::from));
        argv.push(conf_path.to_string_lossy().into_owned());
        let out = fs::File::create(d.join("dovecot.out")).expect("dovecot.out");
        let mut proc = Proc::spawn(
            "dovecot",
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(out.try_clone().expect("dup"))
                .stderr(out),
            false,
        );
        let up = until_ready(&mut proc, || std::net::TcpStream::connect(imap).is_ok());
        assert!(
            up,
            "dovecot does not listen:\n{}{}",
            crate::util::read_text(&d.join("dovecot.out")),
            crate::util::read_text(&d.join("dovecot.log"))
        );
        (proc, imap)
    }

    fn start(&self, extra_toml: &str) -> Mailstow {
        let mut opts = Options::new(&[]);
        opts.users_toml = Some(
            "driver = \"system\"\nrecipient_delimiter = \"+\"\ndomains = [\"example.org\"]\nmin_uid = 1000"
                .into(),
        );
        opts.launcher = self.launcher();
        opts.extra_toml = extra_toml.into();
        Mailstow::start_with(opts)
    }

    /// A directory of `name`'s (so `name` could write there) outside the
    /// home.
    fn outside_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("outside-{name}"));
        fs::create_dir(&dir).expect("mkdir outside");
        chown(&dir, owner(name));
        dir
    }

    /// A real Maildir (tmp, new, cur) in `name`'s home, owned by `name`.
    fn make_maildir(&self, name: &str) -> PathBuf {
        let md = self.home(name).join("Maildir");
        for p in [md.clone(), md.join("tmp"), md.join("new"), md.join("cur")] {
            fs::create_dir_all(&p).expect("mkdir maildir");
            chown(&p, owner(name));
        }
        md
    }
}

fn owner(name: &str) -> Owner {
    let uid = ACCOUNTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, uid)| uid)
        .unwrap_or_else(|| panic!("no test account {name}"));
    Owner { uid, gid: uid }
}

/// Every path under `root` (itself included), not following symlinks.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    if fs::symlink_metadata(root).is_ok_and(|m| m.is_dir()) {
        for e in fs::read_dir(root).expect("read_dir") {
            out.extend(walk(&e.expect("dir entry").path()));
        }
    }
    out
}

/// The message files of a Maildir folder directory (new/ and cur/).
fn messages(folder_dir: &Path) -> Vec<PathBuf> {
    ["new", "cur"]
        .iter()
        .flat_map(|s| fs::read_dir(folder_dir.join(s)).into_iter().flatten())
        .map(|e| e.expect("dir entry").path())
        .collect()
}

fn deliver_one(ms: &Mailstow, to: &str, subject: &str) -> Vec<String> {
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[to],
        &message("s@example.net", to, subject, "hi\n"),
    );
    r.into_iter().next().expect("one reply")
}

#[test]
fn accounts_with_private_homes_get_mail_sieve_index_and_state_all_their_own() {
    peers::ensure_installed(); // before the account databases are copied
    let acc = accounts();
    // alice's own script, in her 0700 home, files lists away.
    acc.write_as(
        "alice",
        ".dovecot.sieve",
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"[list]\" { fileinto :create \"Lists\"; }\n",
    );
    let ms = acc.start("[delivery]\nduplicate_suppression = true\n");
    let mut c = ms.connect();
    c.lhlo();
    // Both in one transaction: delivered side by side, each as its owner.
    let both = ["alice@example.org", "bob@example.org"];
    let msg = message("s@example.net", "alice@example.org", "hello both", "hi\n");
    let r = c.deliver("s@example.net", &both, &msg);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}\n{}", ms.log());
    let msg = message("s@example.net", "alice@example.org", "[list] news", "hi\n");
    let r = c.deliver("s@example.net", &["Alice+news@EXAMPLE.org"], &msg);
    assert_eq!(code(&r[0]), 250, "{r:?}\n{}", ms.log());

    let alice_md = acc.home("alice").join("Maildir");
    assert_eq!(messages(&alice_md).len(), 1, "{}", ms.log());
    assert_eq!(messages(&alice_md.join(".Lists")).len(), 1, "{}", ms.log());
    assert_eq!(messages(&acc.home("bob").join("Maildir")).len(), 1);
    for name in ["alice", "bob"] {
        let home = acc.home(name);
        // Index rows are written after the reply; the state at delivery.
        for f in [".mailstow/index.sqlite", ".mailstow/sieve-state.sqlite"] {
            let p = home.join(f);
            poll(TIMEOUT, || p.exists().then_some(()))
                .unwrap_or_else(|| panic!("{} never appeared\n{}", p.display(), ms.log()));
        }
        let o = owner(name);
        for p in walk(&home) {
            let m = fs::symlink_metadata(&p).unwrap();
            assert_eq!(
                (m.uid(), m.gid()),
                (o.uid, o.gid),
                "{} is not {name}'s",
                p.display()
            );
        }
    }
    assert!(!ms.log().contains("ERROR"), "{}", ms.log());

    // Dovecot, as each account, reads what mailstow wrote.
    let (_dovecot, addr) = acc.dovecot();
    let mut imap = Imap::connect(addr);
    imap.login("alice", crate::util::PASSWORD)
        .expect("alice logs in");
    assert_eq!(imap.examine("INBOX"), 1);
    let inbox = imap.fetch_all();
    assert!(peers_body(&inbox[0]).contains("Subject: hello both"));
    assert_eq!(imap.examine("Lists"), 1);
    assert!(peers_body(&imap.fetch_all()[0]).contains("Subject: [list] news"));
    imap.logout();
    let mut imap = Imap::connect(addr);
    imap.login("bob", crate::util::PASSWORD)
        .expect("bob logs in");
    assert_eq!(imap.examine("INBOX"), 1);
    imap.logout();
}

fn peers_body(f: &peers::Fetched) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

#[test]
fn serve_keeps_only_setuid_and_setgid_and_no_new_privileges() {
    let acc = accounts();
    let ms = acc.start("");
    let status = fs::read_to_string(format!("/proc/{}/status", ms.pid())).unwrap();
    let s = mailstow::privilege::CapStatus::parse(&status).expect("caps in status");
    assert_eq!(s.effective, mailstow::privilege::KEPT_CAPS, "{status}");
    assert_eq!(s.permitted, mailstow::privilege::KEPT_CAPS, "{status}");
    assert_eq!(s.bounding, mailstow::privilege::KEPT_CAPS, "{status}");
    assert_eq!((s.inheritable, s.ambient), (0, 0), "{status}");
    assert!(s.no_new_privs, "{status}");
    // Still uid 0 (that is what keeps fsuid switches possible), no groups.
    let line = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("Uid:").split_whitespace().nth(1), Some("0"));
    assert_eq!(line("Groups:").trim_end(), "Groups:");
    // And it delivers, with those rights only.
    let r = deliver_one(&ms, "bob@example.org", "caps");
    assert_eq!(code(&r), 250, "{r:?}\n{}", ms.log());
}

#[test]
fn root_low_uids_nobody_unknown_accounts_and_other_domains_are_unknown_users() {
    let acc = accounts();
    let ms = acc.start("");
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    for rcpt in [
        "root@example.org",
        "Root+x@example.org",
        "lowuid@example.org",
        "daemon@example.org",
        "nobody@example.org",
        "no-such-account@example.org",
        "alice@example.net",
    ] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
        assert!(r[0].starts_with("550 5.1.1"), "{rcpt}: {r:?}");
    }
    let r = c.cmd("RCPT TO:<alice@example.org>");
    assert_eq!(code(&r), 250, "{r:?}\n{}", ms.log());
    let log = ms.log();
    assert!(log.contains("root is never delivered to"), "{log}");
    assert!(log.contains("below min_uid"), "{log}");
    assert!(log.contains("not in [users] domains"), "{log}");
}

#[test]
fn a_symlinked_maildir_or_new_pointing_outside_the_home_gets_451_and_nothing_there() {
    let acc = accounts();
    // carol: ~/Maildir itself leads out (to a directory carol owns).
    let carol_out = acc.outside_dir("carol");
    std::os::unix::fs::symlink(&carol_out, acc.home("carol").join("Maildir")).unwrap();
    // dave: a real Maildir whose new/ leads out.
    let dave_out = acc.outside_dir("dave");
    let md = acc.make_maildir("dave");
    fs::remove_dir(md.join("new")).unwrap();
    std::os::unix::fs::symlink(&dave_out, md.join("new")).unwrap();
    let ms = acc.start("");
    for (to, out) in [
        ("carol@example.org", &carol_out),
        ("dave@example.org", &dave_out),
    ] {
        let r = deliver_one(&ms, to, "out");
        assert!(r[0].starts_with("451 4.3.0"), "{to}: {r:?}\n{}", ms.log());
        assert_eq!(walk(out), vec![out.clone()], "{to}: written outside");
    }
    assert!(ms.log().contains("is a symbolic link"), "{}", ms.log());
}

#[test]
fn hostile_links_in_a_maildir_never_write_root_files() {
    let acc = accounts();
    // Root's files, readable by all: what root could write, the users
    // cannot.
    let uidlist = acc.dir.path().join("root-uidlist");
    let sizes = acc.dir.path().join("root-maildirsize");
    let uidlist_text = "3 V1700000000 N1 G0123456789abcdef0123456789abcdef\n";
    let sizes_text = "1000000000S\n";
    for (p, t) in [(&uidlist, uidlist_text), (&sizes, sizes_text)] {
        fs::write(p, t).unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    // erin's uidlist (appended to in `uids = "dovecot"` mode) is a hard
    // link to root's file (what a system without protected_hardlinks lets
    // a user make): no symlink check can see it, only the user's rights
    // stop the write. frank's maildirsize (appended to with a quota) is a
    // symlink to root's.
    let erin_md = acc.make_maildir("erin");
    fs::hard_link(&uidlist, erin_md.join("dovecot-uidlist")).unwrap();
    let frank_md = acc.make_maildir("frank");
    std::os::unix::fs::symlink(&sizes, frank_md.join("maildirsize")).unwrap();
    let o = owner("frank");
    std::os::unix::fs::lchown(frank_md.join("maildirsize"), Some(o.uid), Some(o.gid)).unwrap();
    let mut ms = acc.start("[index]\nuids = \"dovecot\"\n[quota]\nrule = \"*:storage=1G\"\n");
    // erin's mail is stored; the uidlist append is what fails.
    let r = deliver_one(&ms, "erin@example.org", "hostile");
    assert_eq!(code(&r), 250, "{r:?}\n{}", ms.log());
    let ix = acc.home("erin").join(".mailstow/index.sqlite");
    poll(TIMEOUT, || ix.exists().then_some(())).expect("index");
    // frank's maildirsize is refused as a link: a temporary failure.
    let mut c = ms.connect();
    c.lhlo();
    c.cmd("MAIL FROM:<s@example.net>");
    let r = c.cmd("RCPT TO:<frank@example.org>");
    assert!(r[0].starts_with("451 4.3.0"), "{r:?}");
    c.quit();
    // Stopped: every index row has been written (or failed).
    ms.stop();
    let log = ms.log();
    assert!(
        log.contains("dovecot-uidlist") && log.contains("Permission denied"),
        "the uidlist append was not tried and refused:\n{log}"
    );
    assert_eq!(fs::read_to_string(&uidlist).unwrap(), uidlist_text);
    assert_eq!(fs::read_to_string(&sizes).unwrap(), sizes_text);
    for p in walk(&acc.home("erin")) {
        if p == erin_md.join("dovecot-uidlist") {
            continue; // root's file, linked in
        }
        let m = fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.uid(), owner("erin").uid, "{}", p.display());
    }
}

#[test]
fn a_home_open_to_a_supplementary_group_only_is_written_through_that_group() {
    let acc = accounts();
    // grace's home is root's, 0770 for the group mailshare, of which grace
    // is a member (not her primary group): only her groups let her in.
    let home = acc.home("grace");
    chown(
        &home,
        Owner {
            uid: 0,
            gid: SHARED_GROUP.1,
        },
    );
    fs::set_permissions(&home, fs::Permissions::from_mode(0o770)).unwrap();
    let ms = acc.start("");
    let r = deliver_one(&ms, "grace@example.org", "via the group");
    assert_eq!(code(&r), 250, "{r:?}\n{}", ms.log());
    let md = home.join("Maildir");
    assert_eq!(messages(&md).len(), 1);
    let o = owner("grace");
    for p in walk(&md) {
        let m = fs::symlink_metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (o.uid, o.gid), "{}", p.display());
    }
}
