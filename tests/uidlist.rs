//! End-to-end: the UIDs that `mailstow_index::uidlist::assign` appends to
//! `dovecot-uidlist`, and the UIDVALIDITY it allocates for a new folder, are
//! what a real Dovecot shows over IMAP (also to a session that stays
//! selected) and POP3, also after a writer died mid-line, and Dovecot logs
//! no complaint about our files. Calls the module directly (no mailstow
//! server); must not write any Dovecot control file except through the
//! module, but for the simulated half-written lines.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use mailstow_index::uidlist::{self, Assigned, LOCK_WAIT};
use mailstow_maildir::Owner;

use crate::peers::{Dovecot, Imap};
use crate::util::{self, chown, temp_dir, write_passwd_file, Maildir, PASSWORD};

const USER: &str = "uids@example.org";

/// A Maildir laid out like mailstow's, for one user Dovecot serves.
struct Mail {
    owner: Owner,
    root: PathBuf,
    host: String,
    /// Q counter of the unique names, so that they sort in creation order.
    next_q: u32,
}

impl Mail {
    fn new(mail_root: &Path) -> Mail {
        let vmail = util::vmail();
        let root = Maildir::of(mail_root, USER).root;
        let home = root.parent().expect("home");
        let domain = home.parent().expect("domain dir");
        fs::create_dir(domain).expect("mkdir domain");
        fs::set_permissions(domain, fs::Permissions::from_mode(0o711)).expect("chmod");
        for d in [home, &root] {
            fs::create_dir(d).expect("mkdir");
            fs::set_permissions(d, fs::Permissions::from_mode(0o700)).expect("chmod");
            chown(d, vmail);
        }
        let mail = Mail {
            owner: Owner {
                uid: vmail.uid,
                gid: vmail.gid,
            },
            root,
            host: nix::unistd::gethostname()
                .expect("gethostname")
                .to_string_lossy()
                .into_owned(),
            next_q: 1,
        };
        mail.make_subdirs(&mail.root);
        mail
    }

    fn vmail(&self) -> util::Owner {
        util::Owner {
            uid: self.owner.uid,
            gid: self.owner.gid,
        }
    }

    fn make_subdirs(&self, dir: &Path) {
        for sub in ["cur", "new", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir(&d).expect("mkdir cur/new/tmp");
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).expect("chmod");
            chown(&d, self.vmail());
        }
    }

    /// `.name` with cur/new/tmp and maildirfolder.
    fn folder(&self, name: &str) -> PathBuf {
        let dir = self.root.join(format!(".{name}"));
        fs::create_dir(&dir).expect("mkdir folder");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        chown(&dir, self.vmail());
        self.make_subdirs(&dir);
        let marker = dir.join("maildirfolder");
        fs::write(&marker, b"").expect("write maildirfolder");
        chown(&marker, self.vmail());
        dir
    }

    /// A CRLF message written to tmp/ and renamed into new/, named
    /// `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<size>`. Returns the base.
    fn deliver(&mut self, dir: &Path) -> String {
        let q = self.next_q;
        self.next_q += 1;
        let body = format!(
            "From: sender@example.net\r\nTo: {USER}\r\nSubject: uidlist {q}\r\n\
             Message-ID: <uidlist-{q}@example.net>\r\n\
             Date: Sat, 28 Nov 2026 12:00:00 +0000\r\n\r\nMessage {q}.\r\n"
        );
        let sec = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let base = format!(
            "{sec}.M{q}P{}Q{q}.uidtest,S={len},W={len}",
            std::process::id(),
            len = body.len()
        );
        let tmp = dir.join("tmp").join(&base);
        fs::write(&tmp, &body).expect("write message");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).expect("chmod");
        chown(&tmp, self.vmail());
        fs::rename(&tmp, dir.join("new").join(&base)).expect("rename into new/");
        base
    }

    fn assign(&self, dir: &Path, bases: &[&str], min_next: u32) -> Assigned {
        uidlist::assign(
            dir,
            &self.root,
            bases,
            min_next,
            Some(self.owner),
            &self.host,
            LOCK_WAIT,
        )
        .unwrap_or_else(|e| panic!("assign in {}: {e}", dir.display()))
    }
}

/// SELECT: (UIDVALIDITY, EXISTS).
fn select(imap: &mut Imap, mailbox: &str) -> (u32, u32) {
    let lines = imap
        .run(&format!("SELECT {mailbox}"))
        .unwrap_or_else(|e| panic!("SELECT {mailbox}: {e}"));
    let uidvalidity = lines
        .iter()
        .find_map(|l| {
            let rest = &l.text[l.text.find("[UIDVALIDITY ")? + 13..];
            rest[..rest.find(']')?].parse().ok()
        })
        .expect("UIDVALIDITY in SELECT");
    let exists = lines
        .iter()
        .find_map(|l| {
            l.text
                .strip_prefix("* ")?
                .strip_suffix(" EXISTS")?
                .parse()
                .ok()
        })
        .expect("EXISTS in SELECT");
    (uidvalidity, exists)
}

/// The UIDs of the selected mailbox (`UID FETCH 1:* (FLAGS)`), ascending.
fn uids(imap: &mut Imap) -> Vec<u32> {
    let lines = imap
        .run("UID FETCH 1:* (FLAGS)")
        .unwrap_or_else(|e| panic!("UID FETCH: {e}"));
    let mut uids: Vec<u32> = lines
        .iter()
        .filter(|l| l.text.contains(" FETCH ("))
        .map(|l| {
            let tokens: Vec<&str> = l.text.split([' ', '(', ')']).collect();
            let i = tokens
                .iter()
                .position(|t| *t == "UID")
                .unwrap_or_else(|| panic!("no UID in {}", l.text));
            tokens[i + 1].parse().expect("UID number")
        })
        .collect();
    uids.sort_unstable();
    uids
}

/// Appends bytes to a folder's uidlist as a writer that died would have
/// left them (the one write here that does not go through the module).
fn append_raw(dir: &Path, bytes: &[u8]) {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(dir.join("dovecot-uidlist"))
        .expect("open uidlist");
    file.write_all(bytes).expect("append to uidlist");
}

fn run_ok(imap: &mut Imap, command: &str) {
    imap.run(command)
        .unwrap_or_else(|e| panic!("IMAP {command}: {e}"));
}

#[test]
fn dovecot_shows_the_uids_and_uidvalidity_that_assign_wrote() {
    let dir = temp_dir("mailstow-uidlist-");
    let mail_root = dir.path().join("mail");
    fs::create_dir(&mail_root).expect("mkdir mail root");
    fs::set_permissions(&mail_root, fs::Permissions::from_mode(0o755)).expect("chmod");
    let users_file = dir.path().join("users");
    write_passwd_file(&users_file, &[USER.to_owned()], util::vmail());
    let mut mail = Mail::new(&mail_root);
    let inbox = mail.root.clone();

    // Three messages before Dovecot has ever seen the Maildir: we create
    // the uidlist and allocate INBOX's UIDVALIDITY.
    let first: Vec<String> = (0..3).map(|_| mail.deliver(&inbox)).collect();
    let first_refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let a = mail.assign(&inbox, &first_refs, 0);
    assert_eq!(a.uids, [1, 2, 3]);
    for file in ["dovecot-uidlist", "dovecot-uidvalidity"] {
        let meta = fs::metadata(inbox.join(file)).expect("stat");
        assert_eq!(
            (meta.uid(), meta.mode() & 0o7777),
            (mail.owner.uid, 0o600),
            "{file}"
        );
    }
    let uidvalidity = a.uidvalidity;

    let dc = Dovecot::start(&users_file, &mail_root);
    let mut imap = dc.imap_login(USER, PASSWORD);
    assert_eq!(select(&mut imap, "INBOX"), (uidvalidity, 3));
    assert_eq!(uids(&mut imap), [1, 2, 3]);

    // Two more while the session stays selected.
    let second: Vec<String> = (0..2).map(|_| mail.deliver(&inbox)).collect();
    let second_refs: Vec<&str> = second.iter().map(String::as_str).collect();
    let b = mail.assign(&inbox, &second_refs, 0);
    assert_eq!(
        (b.uidvalidity, b.uids.as_slice()),
        (uidvalidity, &[4, 5][..])
    );
    run_ok(&mut imap, "NOOP");
    assert_eq!(uids(&mut imap), [1, 2, 3, 4, 5]);

    // Dovecot has moved the files to cur/ and may have rewritten the
    // uidlist: listed bases keep their UIDs.
    assert_eq!(
        mail.assign(&inbox, &[&first[0], &second[1]], 0).uids,
        [1, 5]
    );

    // Expunge the last message; the next delivery must not reuse its UID.
    let next_before = 6;
    run_ok(&mut imap, "UID STORE 5 +FLAGS.SILENT (\\Deleted)");
    run_ok(&mut imap, "EXPUNGE");
    assert_eq!(uids(&mut imap), [1, 2, 3, 4]);
    let late = mail.deliver(&inbox);
    let c = mail.assign(&inbox, &[&late], next_before);
    assert_eq!((c.uidvalidity, c.uids.as_slice()), (uidvalidity, &[6][..]));
    run_ok(&mut imap, "NOOP");
    assert_eq!(uids(&mut imap), [1, 2, 3, 4, 6]);

    // A writer died in the middle of a line that would be broken once
    // terminated: the file is replaced without it (the selected session
    // follows the rename) and its UID is not reused.
    append_raw(&inbox, b"7 S");
    let after_broken = mail.deliver(&inbox);
    assert_eq!(mail.assign(&inbox, &[&after_broken], 0).uids, [8]);
    run_ok(&mut imap, "NOOP");
    assert_eq!(uids(&mut imap), [1, 2, 3, 4, 6, 8]);

    // A writer died before the LF of a complete record: the LF is added
    // and the record counts.
    let unterminated = mail.deliver(&inbox);
    append_raw(&inbox, format!("9 :{unterminated}").as_bytes());
    assert_eq!(mail.assign(&inbox, &[&unterminated], 0).uids, [9]);
    run_ok(&mut imap, "NOOP");
    assert_eq!(uids(&mut imap), [1, 2, 3, 4, 6, 8, 9]);

    // A second folder gets its own UIDVALIDITY from the same counter.
    let other = mail.folder("Other");
    let in_other = mail.deliver(&other);
    let o = mail.assign(&other, &[&in_other], 0);
    assert_eq!(o.uids, [1]);
    assert_ne!(o.uidvalidity, uidvalidity);
    assert_eq!(select(&mut imap, "Other"), (o.uidvalidity, 1));
    assert_eq!(uids(&mut imap), [1]);

    // Dovecot continues the counter we started; into a folder it created
    // (and gave a uidlist), we append.
    run_ok(&mut imap, "CREATE Third");
    let third = mail.root.join(".Third");
    let in_third = mail.deliver(&third);
    let t = mail.assign(&third, &[&in_third], 0);
    assert_eq!(
        (t.uidvalidity, t.uids.as_slice()),
        (o.uidvalidity + 1, &[1][..])
    );
    assert_eq!(select(&mut imap, "Third"), (t.uidvalidity, 1));
    assert_eq!(uids(&mut imap), [1]);
    imap.logout();

    // POP3 UIDLs derive from the same numbers: the default %08Xu%08Xv,
    // which Dovecot 2.3 expands in lowercase hex.
    let mut pop = dc.pop3_login(USER, PASSWORD);
    let uidls: Vec<String> = pop.uidl().into_iter().map(|(_, u)| u).collect();
    pop.quit();
    let want: Vec<String> = [1u32, 2, 3, 4, 6, 8, 9]
        .iter()
        .map(|u| format!("{u:08x}{uidvalidity:08x}"))
        .collect();
    assert_eq!(uidls, want);

    // What Dovecot left behind still parses, with our UIDs.
    let list = uidlist::read(&inbox)
        .expect("read uidlist")
        .expect("uidlist exists");
    assert_eq!(list.uidvalidity, uidvalidity);
    assert_eq!(list.uid_of(&late), Some(6));
    assert_eq!(list.uid_of(&unterminated), Some(9));
    assert!(list.next_uid() >= 10);

    let log = dc.log();
    for bad in [
        "Broken file",
        "Error",
        "Duplicate file entry",
        "UIDVALIDITY changed",
        "reappeared",
    ] {
        assert!(
            !log.contains(bad),
            "dovecot logged {bad:?}:\n{}",
            util::tail(&log, 40)
        );
    }
}
