//! The ManageSieve script store against Pigeonhole on the same home: what
//! Dovecot's `doveadm sieve` writes, mailstow's store reads (active script
//! included), and what mailstow's store writes and activates, Dovecot lists
//! as ACTIVE, serves and applies to mail (dovecot-lda with the sieve
//! plugin). Must not configure anything but a private Dovecot in a temp
//! dir, or run mailstow's server.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mailstow::managesieve::Compiles;
use mailstow_maildir::sieve_scripts::{ScriptLimits, ScriptStore};
use mailstow_maildir::Owner;
use mailstow_sieve::compile::CompileLimits;
use tempfile::TempDir;

use crate::peers::Dovecot;
use crate::util::{chown, temp_dir, vmail, write_passwd_file};

const USER: &str = "alice@example.org";

/// Pigeonhole as Debian and our README configure it for the user.
const SIEVE_CONF: &str = "plugin {\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}\n\
    protocol lda {\n  mail_plugins = $mail_plugins sieve\n}\n\
    lda_mailbox_autocreate = yes\n\
    postmaster_address = postmaster@example.org\n";

struct Setup {
    dovecot: Dovecot,
    home: PathBuf,
    store: ScriptStore,
    _dir: TempDir,
}

fn setup() -> Setup {
    let owner = vmail();
    let dir = temp_dir("mailstow-sieve-store-");
    let users = dir.path().join("users");
    write_passwd_file(&users, &[USER.to_owned()], owner);
    let mail_root = dir.path().join("mail");
    let home = mail_root.join("example.org/alice");
    fs::create_dir_all(&home).expect("mkdir home");
    fs::set_permissions(
        mail_root.join("example.org"),
        fs::Permissions::from_mode(0o711),
    )
    .expect("chmod");
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).expect("chmod home");
    chown(&home, owner);
    let dovecot = Dovecot::start_with(&users, &mail_root, SIEVE_CONF);
    let store = ScriptStore::new(
        home.join("sieve"),
        home.join(".dovecot.sieve"),
        Some(Owner {
            uid: owner.uid,
            gid: owner.gid,
        }),
        ScriptLimits::default(),
        std::sync::Arc::new(Compiles(CompileLimits {
            max_script_size: 1 << 20,
            max_include_depth: 10,
            editheader: false,
        })),
    );
    Setup {
        dovecot,
        home,
        store,
        _dir: dir,
    }
}

impl Setup {
    /// `doveadm sieve list` as (name, active) pairs, sorted.
    fn dovecot_list(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .dovecot
            .doveadm(&["sieve", "list", "-u", USER])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match l.trim_end().strip_suffix(" ACTIVE") {
                Some(n) => (n.trim_end().to_owned(), true),
                None => (l.trim_end().to_owned(), false),
            })
            .collect();
        v.sort();
        v
    }

    fn dovecot_put(&self, name: &str, text: &[u8], activate: bool) {
        let mut args = vec!["sieve", "put", "-u", USER];
        if activate {
            args.push("-a");
        }
        args.push(name);
        self.dovecot.doveadm_input(&args, text);
    }

    /// Deliver one message with dovecot-lda (Pigeonhole runs the active
    /// script); the files that landed, by folder directory.
    fn lda_deliver(&self, subject: &str) {
        let msg = self.home.join("../msg.eml");
        fs::write(
            &msg,
            format!(
                "From: bob@example.net\nTo: {USER}\nSubject: {subject}\nMessage-ID: <{subject}@example.net>\n\nhello\n"
            ),
        )
        .expect("write message");
        let out = Command::new("/usr/lib/dovecot/dovecot-lda")
            .arg("-c")
            .arg(self.dovecot.config_path())
            .args(["-d", USER, "-f", "bob@example.net", "-p"])
            .arg(&msg)
            .stdin(Stdio::null())
            .output()
            .expect("run dovecot-lda");
        assert!(
            out.status.success(),
            "dovecot-lda: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.dovecot.log()
        );
    }

    fn new_count(&self, folder: &str) -> usize {
        let dir = match folder {
            "INBOX" => self.home.join("Maildir/new"),
            f => self.home.join(format!("Maildir/.{f}/new")),
        };
        fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }
}

fn owned(v: &[(&str, bool)]) -> Vec<(String, bool)> {
    v.iter().map(|(n, a)| (n.to_string(), *a)).collect()
}

#[test]
fn scripts_dovecot_uploads_and_activates_are_what_our_store_lists_and_serves() {
    let s = setup();
    let one = b"require \"fileinto\";\r\nfileinto \"Lists\";\r\n";
    s.dovecot_put("one", one, true);
    s.dovecot_put("two", b"keep;\r\n", false);
    assert_eq!(s.dovecot_list(), owned(&[("one", true), ("two", false)]));
    // Pigeonhole's layout, as our store writes it too.
    assert_eq!(
        fs::read_link(s.home.join(".dovecot.sieve")).expect("readlink"),
        Path::new("sieve/one.sieve")
    );
    assert!(s.home.join("sieve/tmp").is_dir());
    assert_eq!(
        s.store.list().expect("list"),
        owned(&[("one", true), ("two", false)])
    );
    assert_eq!(s.store.get("one").expect("get").as_deref(), Some(&one[..]));

    // Dovecot switches: we follow.
    s.dovecot.doveadm(&["sieve", "activate", "-u", USER, "two"]);
    assert_eq!(
        s.store.list().expect("list"),
        owned(&[("one", false), ("two", true)])
    );
    s.dovecot.doveadm(&["sieve", "deactivate", "-u", USER]);
    assert_eq!(s.store.active_name().expect("active"), None);

    // A compiled binary Pigeonhole leaves beside a script is not a script.
    s.dovecot.doveadm(&["sieve", "activate", "-u", USER, "one"]);
    s.lda_deliver("compile-me");
    assert_eq!(s.new_count("Lists"), 1, "{}", s.dovecot.log());
    // Pigeonhole keeps the active script's binary beside the symlink
    // (~/.dovecot.svbin), and sievec writes NAME.svbin beside a script.
    assert!(
        s.home.join(".dovecot.svbin").exists(),
        "Pigeonhole compiled the active script beside the symlink"
    );
    let sievec = Command::new("sievec")
        .arg("-c")
        .arg(s.dovecot.config_path())
        .arg(s.home.join("sieve/two.sieve"))
        .output()
        .expect("run sievec");
    assert!(sievec.status.success(), "{sievec:?}");
    assert!(s.home.join("sieve/two.svbin").exists());
    assert_eq!(
        s.store.list().expect("list"),
        owned(&[("one", true), ("two", false)])
    );
    let e = s.store.delete("one").expect_err("active");
    assert_eq!(e.code(), Some("ACTIVE"));
}

#[test]
fn scripts_our_store_puts_and_activates_dovecot_lists_serves_and_applies() {
    let s = setup();
    let work = b"require \"fileinto\";\r\nif header :contains \"subject\" \"report\" {\r\n  fileinto \"Work\";\r\n}\r\n";
    s.store.put("work", work).expect("put work");
    s.store.put("plain", b"keep;\r\n").expect("put plain");
    s.store.set_active(Some("work")).expect("activate");
    assert_eq!(s.dovecot_list(), owned(&[("plain", false), ("work", true)]));
    let got = s.dovecot.doveadm(&["sieve", "get", "-u", USER, "work"]);
    // doveadm's flow formatter puts its field name first.
    assert_eq!(
        got.strip_prefix("sieve script:\n").map(str::as_bytes),
        Some(&work[..]),
        "{got:?}"
    );

    s.lda_deliver("weekly report");
    s.lda_deliver("lunch");
    assert_eq!(s.new_count("Work"), 1, "{}", s.dovecot.log());
    assert_eq!(s.new_count("INBOX"), 1);

    // Renaming the active script keeps it active for Dovecot too.
    s.store.rename("work", "büro").expect("rename");
    assert_eq!(s.dovecot_list(), owned(&[("büro", true), ("plain", false)]));
    s.lda_deliver("second report");
    assert_eq!(s.new_count("Work"), 2, "{}", s.dovecot.log());

    // Switching and replacing the active script under Pigeonhole's
    // compiled copy (~/.dovecot.svbin): the new text is what runs.
    s.store.set_active(Some("plain")).expect("activate plain");
    s.lda_deliver("third report");
    assert_eq!(s.new_count("Work"), 2, "{}", s.dovecot.log());
    assert_eq!(s.new_count("INBOX"), 2);
    s.store
        .put(
            "plain",
            b"require \"fileinto\";\r\nfileinto \"Archive\";\r\n",
        )
        .expect("replace the active script");
    s.lda_deliver("anything");
    assert_eq!(s.new_count("Archive"), 1, "{}", s.dovecot.log());
    s.store.put("plain", b"keep;\r\n").expect("replace again");
    s.lda_deliver("anything else");
    assert_eq!(s.new_count("INBOX"), 3, "{}", s.dovecot.log());

    // Dovecot can take over from here: delete what we made, activate ours.
    s.dovecot
        .doveadm(&["sieve", "activate", "-u", USER, "plain"]);
    s.dovecot.doveadm(&["sieve", "delete", "-u", USER, "büro"]);
    assert_eq!(s.store.list().expect("list"), owned(&[("plain", true)]));
    s.store.set_active(None).expect("deactivate");
    assert_eq!(s.dovecot_list(), owned(&[("plain", false)]));
}

#[test]
fn a_regular_file_at_the_active_path_is_handled_as_pigeonhole_does() {
    let s = setup();
    let owner = vmail();
    s.store.put("one", b"keep;\r\n").expect("put");
    let active = s.home.join(".dovecot.sieve");
    fs::write(&active, b"# hand-written\r\nkeep;\r\n").expect("write");
    chown(&active, owner);
    // Neither side calls it active; neither lists it.
    assert_eq!(s.store.list().expect("list"), owned(&[("one", false)]));
    assert_eq!(s.dovecot_list(), owned(&[("one", false)]));

    // Pigeonhole's own activation: the file becomes dovecot.orig.
    s.dovecot.doveadm(&["sieve", "activate", "-u", USER, "one"]);
    assert_eq!(
        fs::read(s.home.join("sieve/dovecot.orig.sieve")).expect("rescued"),
        b"# hand-written\r\nkeep;\r\n"
    );
    // Ours does the same, keeping Pigeonhole's earlier rescue.
    s.dovecot.doveadm(&["sieve", "deactivate", "-u", USER]);
    fs::write(&active, b"# another\r\nkeep;\r\n").expect("write");
    chown(&active, owner);
    s.store.set_active(Some("one")).expect("activate");
    assert_eq!(
        fs::read(s.home.join("sieve/dovecot.orig-1.sieve")).expect("rescued"),
        b"# another\r\nkeep;\r\n"
    );
    assert_eq!(
        s.dovecot_list(),
        owned(&[
            ("dovecot.orig", false),
            ("dovecot.orig-1", false),
            ("one", true)
        ])
    );
    assert_eq!(
        s.store.list().expect("list"),
        owned(&[
            ("dovecot.orig", false),
            ("dovecot.orig-1", false),
            ("one", true)
        ])
    );
}
