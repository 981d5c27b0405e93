//! One copy for many recipients (`[delivery] single_copy`): an LMTP
//! transaction's recipients of one owner get one file, hard-linked into
//! each mailbox, with Dovecot's trace block for several recipients (no
//! Delivered-To, no Received `for`); quota, index rows and Sieve stay per
//! recipient; a copy a script edited, or of another owner, is its own file;
//! with the option off each copy names its recipient. Dovecot reads every
//! linked copy. Must not rely on timing: every wait polls for a result.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::peers::Dovecot;
use crate::util::{
    code, lf_to_crlf, message, passwd_line, poll, vmail, Mailstow, MsgFile, Options, Owner,
    PASSWORD,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const ERIN: &str = "erin@example.org";
const DAVE: &str = "dave@example.org";
const SENDER: &str = "s@example.net";

/// Bob files a second copy into Archive; Erin's script edits the header.
const BOB_SIEVE: &str =
    "require [\"fileinto\", \"copy\", \"mailbox\"];\nfileinto :copy :create \"Archive\";\n";
const ERIN_SIEVE: &str = "require \"editheader\";\naddheader \"X-Edited\" \"yes\";\n";

fn start(single_copy: bool, users: &[&str]) -> Mailstow {
    let mut opts = Options::new(users);
    opts.extra_toml = format!(
        "[delivery]\nsingle_copy = {single_copy}\n\
         [quota]\nrule = \"*:storage=100M\"\n[sieve]\nuser_editheader = true\n"
    );
    let ms = Mailstow::start_with(opts);
    ms.install_sieve(BOB, BOB_SIEVE);
    ms.install_sieve(ERIN, ERIN_SIEVE);
    ms
}

/// The one message file of `who`'s `folder`.
fn only(ms: &Mailstow, who: &str, folder: &str) -> MsgFile {
    let mut files = ms.maildir(who).messages(folder);
    assert_eq!(files.len(), 1, "{who} {folder}");
    files.remove(0)
}

fn inode(f: &MsgFile) -> (u64, u64, u32) {
    let m = fs::metadata(&f.path).unwrap();
    (m.ino(), m.nlink(), m.uid())
}

/// maildirsize's summed (bytes, messages) of `who`.
fn quota_used(ms: &Mailstow, who: &str) -> (u64, u64) {
    let text = fs::read_to_string(ms.maildir(who).root.join("maildirsize")).unwrap();
    text.lines().skip(1).fold((0, 0), |(b, n), l| {
        let (lb, ln) = l.split_once(' ').unwrap();
        (
            b + lb.parse::<u64>().unwrap(),
            n + ln.parse::<u64>().unwrap(),
        )
    })
}

/// The base names in `who`'s index, once the writer recorded `n` rows.
fn indexed(ms: &Mailstow, who: &str, n: usize) -> Vec<String> {
    let db = ms.home(who).join(".mailstow/index.sqlite");
    let bases = || -> Option<Vec<String>> {
        let db = rusqlite::Connection::open(&db).ok()?;
        let mut st = db.prepare("SELECT base FROM messages ORDER BY base").ok()?;
        let rows = st.query_map([], |r| r.get(0)).ok()?;
        let bases: Vec<String> = rows.filter_map(Result::ok).collect();
        (bases.len() == n).then_some(bases)
    };
    poll(Duration::from_secs(20), bases).unwrap_or_else(|| panic!("{who}: no {n} index rows"))
}

/// Gives `who` its own uid and gid (mailstow chowns its files to them).
fn own_owner(ms: &Mailstow, who: &str, owner: Owner) {
    let users = fs::read_to_string(&ms.users_file).unwrap();
    let out: String = users
        .lines()
        .map(|l| match l.starts_with(&format!("{who}:")) {
            true => passwd_line(who, PASSWORD, owner),
            false => format!("{l}\n"),
        })
        .collect();
    fs::write(&ms.users_file, out).unwrap();
}

#[test]
fn one_transaction_stores_one_file_linked_into_each_mailbox_of_the_same_owner() {
    let ms = start(true, &[ALICE, BOB, CAROL, ERIN, DAVE]);
    let v = vmail();
    let other = Owner {
        uid: v.uid + 7919,
        gid: v.gid + 7919,
    };
    own_owner(&ms, DAVE, other);
    let mut c = ms.connect();
    c.lhlo();
    let msg = message(SENDER, ALICE, "for five", "one copy\r\n");
    let r = c.deliver(SENDER, &[ALICE, BOB, CAROL, ERIN, DAVE], &msg);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");

    // Alice, Bob (INBOX and Archive) and Carol: one inode, four names.
    let shared = [
        only(&ms, ALICE, "INBOX"),
        only(&ms, BOB, "INBOX"),
        only(&ms, BOB, "Archive"),
        only(&ms, CAROL, "INBOX"),
    ];
    let (ino, nlink, uid) = inode(&shared[0]);
    assert_eq!((nlink, uid), (4, v.uid));
    for f in &shared {
        assert_eq!(inode(f), (ino, 4, v.uid), "{}", f.path.display());
        assert_eq!(f.s_field(), Some(f.bytes.len() as u64), "{}", f.name);
    }
    let mut bases: Vec<&str> = shared.iter().map(MsgFile::base).collect();
    bases.dedup();
    assert_eq!(bases.len(), 4, "each name is its own: {bases:?}");
    // Dovecot's block for several recipients: nobody named.
    let text = String::from_utf8_lossy(&shared[0].bytes).into_owned();
    assert!(
        text.starts_with("Return-Path: <s@example.net>\nReceived: "),
        "{text}"
    );
    assert!(
        !text.contains("Delivered-To:") && !text.contains("for <"),
        "{text}"
    );
    assert!(text.contains("(envelope-from <s@example.net>);"), "{text}");

    // Erin's script edited the message: her own file. Dave is another
    // owner: his own file, the same bytes, his uid.
    let erin = only(&ms, ERIN, "INBOX");
    assert_ne!(inode(&erin).0, ino);
    assert_eq!(inode(&erin).1, 1);
    assert!(String::from_utf8_lossy(&erin.bytes).contains("X-Edited: yes"));
    let dave = only(&ms, DAVE, "INBOX");
    assert_eq!(inode(&dave).1, 1);
    assert_eq!(inode(&dave).2, other.uid);
    assert_eq!(dave.bytes, shared[0].bytes);

    // Quota and index per recipient, as if each had its own copy.
    let size = shared[0].bytes.len() as u64;
    for who in [ALICE, CAROL, DAVE] {
        assert_eq!(quota_used(&ms, who), (size, 1), "{who}");
        assert_eq!(indexed(&ms, who, 1), [only(&ms, who, "INBOX").base()]);
    }
    assert_eq!(quota_used(&ms, BOB), (2 * size, 2));
    let mut bob_bases = vec![shared[1].base().to_owned(), shared[2].base().to_owned()];
    bob_bases.sort();
    assert_eq!(indexed(&ms, BOB, 2), bob_bases);
    assert_eq!(quota_used(&ms, ERIN), (erin.bytes.len() as u64, 1));

    // Dovecot reads every linked copy; Alice's SELECT moves her name to
    // cur/, the others still read theirs.
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let want = lf_to_crlf(&shared[0].bytes);
    for (who, folder) in [
        (ALICE, "INBOX"),
        (BOB, "INBOX"),
        (BOB, "Archive"),
        (CAROL, "INBOX"),
    ] {
        let mut imap = dc.imap_login(who, PASSWORD);
        assert_eq!(imap.select(folder), 1, "{who} {folder}");
        let fetched = imap.fetch_all();
        assert_eq!(fetched[0].body, want, "{who} {folder}");
        assert_eq!(Some(fetched[0].size), shared[0].w_field());
        imap.logout();
    }
    let mut pop = dc.pop3_login(CAROL, PASSWORD);
    assert_eq!(pop.retr(1), want);
    pop.quit();
}

#[test]
fn with_single_copy_off_each_recipient_gets_its_own_file_naming_it() {
    let ms = start(false, &[ALICE, BOB]);
    let mut c = ms.connect();
    c.lhlo();
    let msg = message(SENDER, ALICE, "for two", "two copies\r\n");
    let r = c.deliver(SENDER, &[ALICE, BOB], &msg);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    let (alice, bob) = (only(&ms, ALICE, "INBOX"), only(&ms, BOB, "INBOX"));
    assert_ne!(inode(&alice).0, inode(&bob).0);
    assert_eq!(inode(&alice).1, 1);
    for (who, f) in [(ALICE, &alice), (BOB, &bob)] {
        let text = String::from_utf8_lossy(&f.bytes);
        assert!(text.contains(&format!("\nDelivered-To: {who}\n")), "{text}");
        assert!(text.contains(&format!("for <{who}>;")), "{text}");
    }
    // Bob's two copies are the same bytes (his trace): one file.
    let archive = only(&ms, BOB, "Archive");
    assert_eq!(inode(&archive), (inode(&bob).0, 2, inode(&bob).2));
    assert_eq!(quota_used(&ms, BOB), (2 * bob.bytes.len() as u64, 2));
}
