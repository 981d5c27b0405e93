//! Fuzz the Sieve host with arbitrary scripts: written as a user's active
//! script and run through the whole chain on a fixed message. Must not
//! panic, hang past the CPU limit, or plan a store whose folder could leave
//! the Maildir.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mailstow::config::{Config, FolderEncoding};
use mailstow::deliver::Folders;
use mailstow::users::User;
use mailstow_maildir::Maildir;
use mailstow_sieve::{Filter, Lookups, Mailboxes, MessageEnvelope};

const MSG: &[u8] = b"From: S <s@example.net>\r\nTo: a@example.org\r\nSubject: fuzz\r\nDate: Mon, 15 Jan 2024 09:30:00 +0100\r\nList-Id: <l.example.net>\r\nX-Spam-Score: 5\r\n\r\nbody\r\n";

struct Env {
    filter: Filter,
    user: User,
    script: PathBuf,
    maildir: Maildir,
}

/// Every folder exists (so `mailboxexists` takes its true branch); names
/// and flags are judged as the delivery path judges them.
struct AllExist<'a>(Folders<'a>);

impl Mailboxes for AllExist<'_> {
    fn exists(&self, _: &str) -> bool {
        true
    }
    fn refuse_name(&self, folder: &str) -> Option<String> {
        self.0.refuse_name(folder)
    }
    fn keeps_flag(&self, flag: &str) -> bool {
        self.0.keeps_flag(flag)
    }
}

fn env() -> &'static Env {
    static E: OnceLock<Env> = OnceLock::new();
    E.get_or_init(|| {
        // The host contains panics of sieve-rs (catch_unwind); libFuzzer's
        // hook would abort before that. A panic the host does not contain
        // still aborts: libfuzzer-sys catches it at the target's edge.
        std::panic::set_hook(Box::new(|_| {}));
        let dir = std::env::temp_dir().join(format!("mailstow-fuzz-{}", std::process::id()));
        let home = dir.join("home");
        std::fs::create_dir_all(home.join("sieve")).unwrap();
        let text = format!(
            "[storage]\nmail_root = \"{0}/m\"\n[users]\npasswd_file = \"{0}/u\"\n[sieve]\nmax_cpu = 5000\nspam_header = \"X-Spam-Score\"\n",
            dir.display()
        );
        let cfg = Config::from_toml(&text, Path::new("fuzz.toml"), &dir).unwrap();
        let user = User {
            name: "a@example.org".into(),
            local: "a".into(),
            domain: "example.org".into(),
            detail: Some("x".into()),
            uid: None,
            gid: None,
            maildir: home.join("Maildir"),
            home: home.clone(),
            extra: Vec::new(),
        };
        let maildir = Maildir::new(user.maildir.clone(), None, FolderEncoding::Utf7, "fuzz");
        Env {
            filter: Filter::new(&cfg.sieve, &cfg.hostname),
            script: home.join(".dovecot.sieve"),
            user,
            maildir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let e = env();
    if std::fs::write(&e.script, data).is_err() {
        return;
    }
    let mut dup = |_: &str| Ok(false);
    let store = AllExist(Folders(&e.maildir));
    let mut look = Lookups { duplicate: &mut dup, mailboxes: &store };
    let menv = MessageEnvelope { from: Some("s@example.net"), to: "a+x@example.org", orcpt: None };
    if let Ok(plan) = e.filter.run(&e.user.account(), None, &menv, MSG, &mut look) {
        for s in &plan.stores {
            if !s.folder.eq_ignore_ascii_case("INBOX") {
                let stored = mailstow_maildir::storage_name(&s.folder, FolderEncoding::Utf7)
                    .expect("the host validated the folder");
                assert!(!stored.contains('/'));
            }
        }
    }
});
