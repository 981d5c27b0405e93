//! Re-filtering stored mail (`mailstow sieve filter`), as Pigeonhole's
//! sieve-filter: run a user's script over the messages already in one
//! folder; by default only report, with `apply` carry each plan out
//! through the delivery's own executor ([`Deliverer::refile`]: copies
//! saved with quota and index kept right, the source taken out of its
//! folder when the plan no longer keeps it there). Never sends (redirects,
//! replies and notifications are reported, not performed) and never
//! deletes a message that a plan discards.

use std::path::PathBuf;

use mailstow_sieve::{Lookups, MessageEnvelope, OutKind, Plan};

use super::{Deliverer, Folders, Refiled};
use crate::users::User;

/// What happened to one stored message.
#[derive(Debug)]
pub struct Refiltered {
    pub file: PathBuf,
    pub plan: Plan,
    /// What `apply` did (nothing in a dry run).
    pub done: Refiled,
}

/// Run the user's script over `folder`. `apply` carries out stores.
pub fn refilter(
    d: &Deliverer,
    user: &User,
    folder: &str,
    apply: bool,
) -> Result<Vec<Refiltered>, String> {
    let maildir = d.maildir(user);
    let files = maildir.message_files(folder).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            // Moved or expunged by an IMAP session meanwhile: not ours to judge.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        let from = return_path(&bytes);
        let mut dup = |_: &str| Ok(false);
        let mut look = Lookups {
            duplicate: &mut dup,
            mailboxes: &Folders(&maildir),
        };
        let env = MessageEnvelope {
            from: from.as_deref(),
            to: &user.name,
            orcpt: None,
        };
        let plan = d
            .filter()
            .run(&user.account(), None, &env, &bytes, &mut look)
            .map_err(|e| e.to_string())?;
        let done = if apply {
            d.refile(user, folder, &file, &bytes, &plan)
                .map_err(|f| f.detail())?
        } else {
            Refiled::default()
        };
        out.push(Refiltered { file, plan, done });
    }
    Ok(out)
}

/// The envelope sender we recorded at delivery (Return-Path), if any.
fn return_path(message: &[u8]) -> Option<String> {
    mailstow_sieve::header_values(message, "return-path")
        .into_iter()
        .next()
        .map(|v| v.trim_start_matches('<').trim_end_matches('>').to_owned())
        .filter(|v| !v.is_empty())
}

/// One line per message for the terminal.
pub fn describe(r: &Refiltered) -> String {
    let name = r
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut what: Vec<String> = r
        .plan
        .stores
        .iter()
        .map(|s| {
            if s.implicit {
                "keep".to_owned()
            } else {
                format!("fileinto {}", s.folder)
            }
        })
        .collect();
    if r.plan.stores.is_empty() && r.plan.discarded {
        what.push("discard (not deleted)".into());
    }
    for o in &r.plan.outgoing {
        let kind = match o.kind {
            OutKind::Redirect => "redirect",
            OutKind::Vacation => "vacation",
            OutKind::Notify => "notify",
        };
        what.push(format!("{kind} {} (not sent)", o.to.join(",")));
    }
    for e in &r.plan.errors {
        what.push(format!("error: {e}"));
    }
    if let Some(rej) = &r.plan.reject {
        what.push(format!("reject {:?} (ignored for stored mail)", rej.reason));
    }
    let done = if r.done.moved {
        " [moved]"
    } else if !r.done.copied.is_empty() {
        " [copied]"
    } else {
        ""
    };
    format!("{name}: {}{done}", what.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use mailstow_maildir::{Body, Content, Flags};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::SystemTime;

    #[test]
    fn dry_run_reports_and_apply_moves_only_what_the_script_files_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\nmail_root = \"{0}/m\"\n[users]\npasswd_file = \"{0}/u\"\n[quota]\nrule = \"*:storage=1M\"\n",
            dir.path().display()
        );
        std::fs::write(dir.path().join("u"), "").unwrap();
        let cfg = Arc::new(Config::from_toml(&text, Path::new("t.toml"), dir.path()).unwrap());
        let d = Deliverer::new(Arc::clone(&cfg)).unwrap();
        let home = dir.path().join("home");
        let user = User {
            name: "a@example.org".into(),
            local: "a".into(),
            domain: "example.org".into(),
            detail: None,
            uid: None,
            gid: None,
            maildir: home.join("Maildir"),
            home: home.clone(),
            extra: Vec::new(),
        };
        let md = d.maildir(&user);
        for subject in ["invoice 1", "hello", "invoice 2"] {
            let m = format!("Return-Path: <s@x.example>\r\nSubject: {subject}\r\n\r\nb\r\n");
            let c = Content {
                header: b"",
                body: Body::Bytes(m.as_bytes()),
                bare_lf: 0,
            };
            md.save("INBOX", true, &Flags::default(), &c, SystemTime::now())
                .unwrap();
        }
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".dovecot.sieve"),
            "require [\"fileinto\", \"mailbox\"]; if header :contains \"subject\" \"invoice\" { fileinto :create \"Invoices\"; }",
        )
        .unwrap();
        let dry = refilter(&d, &user, "INBOX", false).unwrap();
        assert_eq!(dry.len(), 3);
        assert_eq!(
            md.message_files("INBOX").unwrap().len(),
            3,
            "a dry run changes nothing"
        );
        let lines: Vec<String> = dry.iter().map(describe).collect();
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("fileinto Invoices"))
                .count(),
            2,
            "{lines:?}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.ends_with(": keep")).count(),
            1,
            "{lines:?}"
        );
        let done = refilter(&d, &user, "INBOX", true).unwrap();
        assert_eq!(done.iter().filter(|r| r.done.moved).count(), 2);
        assert_eq!(md.message_files("INBOX").unwrap().len(), 1);
        assert_eq!(md.message_files("Invoices").unwrap().len(), 2);
        // The executor kept the quota right: maildirsize (created by the
        // first copy) still counts three messages, of the files' sizes.
        let on_disk: u64 = ["INBOX", "Invoices"]
            .iter()
            .flat_map(|f| md.message_files(f).unwrap())
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        let rules = d.quota_rules(&user);
        let usage = mailstow_maildir::quota::usage(&user.maildir, &rules, md.encoding()).unwrap();
        assert_eq!((usage.bytes, usage.messages), (on_disk, 3));
        // Running again moves nothing more.
        let again = refilter(&d, &user, "INBOX", true).unwrap();
        assert!(again.iter().all(|r| !r.done.moved));
    }
}
