//! Re-filtering stored mail (`mailstow sieve filter`), as Pigeonhole's
//! sieve-filter: run a user's script over the messages already in one
//! folder; by default only report, with `apply` copy each message into the
//! folders its plan names and take it out of the source folder when the
//! plan no longer keeps it there. Never sends (redirects, replies and
//! notifications are reported, not performed) and never deletes a message
//! that a plan discards.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use mailstow_maildir::{self as store, Body, Content, Flags, Maildir};
use mailstow_sieve::{Filter, Lookups, MessageEnvelope, OutKind, Plan};

use super::Folders;
use crate::users::User;

/// What happened to one stored message.
#[derive(Debug)]
pub struct Refiltered {
    pub file: PathBuf,
    pub plan: Plan,
    /// Folders the message was copied into (apply only).
    pub copied: Vec<String>,
    /// The source file was removed (apply only, after the copies were
    /// durable).
    pub moved: bool,
}

/// Run the user's script over `folder`. `apply` carries out stores.
pub fn refilter(
    filter: &Filter,
    user: &User,
    maildir: &Maildir,
    folder: &str,
    apply: bool,
) -> Result<Vec<Refiltered>, String> {
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
            mailboxes: &Folders(maildir),
        };
        let env = MessageEnvelope {
            from: from.as_deref(),
            to: &user.name,
            orcpt: None,
        };
        let plan = filter
            .run(&user.account(), None, &env, &bytes, &mut look)
            .map_err(|e| e.to_string())?;
        let mut r = Refiltered {
            file,
            plan,
            copied: Vec::new(),
            moved: false,
        };
        if apply {
            apply_plan(maildir, folder, &bytes, &mut r)?;
        }
        out.push(r);
    }
    Ok(out)
}

fn apply_plan(
    maildir: &Maildir,
    source: &str,
    bytes: &[u8],
    r: &mut Refiltered,
) -> Result<(), String> {
    let same = |f: &str| {
        f == source || (f.eq_ignore_ascii_case("INBOX") && source.eq_ignore_ascii_case("INBOX"))
    };
    let mut stays = false;
    for s in &r.plan.stores {
        if s.implicit || same(&s.folder) {
            stays = true;
            continue;
        }
        let mut flags = Flags::default();
        for f in &s.flags {
            flags.insert_imap(f);
        }
        let body: &[u8] = s.message.as_deref().map_or(bytes, Vec::as_slice);
        let content = Content {
            header: b"",
            body: Body::Bytes(body),
            bare_lf: store::count_bare_lf(false, body).0,
        };
        let received = std::fs::metadata(&r.file)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        maildir
            .save(&s.folder, s.create, &flags, &content, received)
            .map_err(|e| format!("{}: {e}", s.folder))?;
        r.copied.push(s.folder.clone());
    }
    // Only a message that was copied elsewhere leaves the source; a discard
    // or a redirect alone never deletes stored mail.
    if !stays && !r.copied.is_empty() {
        std::fs::remove_file(&r.file).map_err(|e| format!("{}: {e}", r.file.display()))?;
        if let Some(dir) = r.file.parent() {
            fsync_dir(dir)?;
        }
        r.moved = true;
    }
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
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
    let done = if r.moved {
        " [moved]"
    } else if !r.copied.is_empty() {
        " [copied]"
    } else {
        ""
    };
    format!("{name}: {}{done}", what.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, FolderEncoding};

    #[test]
    fn dry_run_reports_and_apply_moves_only_what_the_script_files_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\nmail_root = \"{0}/m\"\n[users]\npasswd_file = \"{0}/u\"\n",
            dir.path().display()
        );
        let cfg = Config::from_toml(&text, Path::new("t.toml"), dir.path()).unwrap();
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
        let md = Maildir::new(user.maildir.clone(), None, FolderEncoding::Utf7, "h");
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
        let filter = Filter::new(&cfg.sieve, &cfg.hostname);
        let dry = refilter(&filter, &user, &md, "INBOX", false).unwrap();
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
        let done = refilter(&filter, &user, &md, "INBOX", true).unwrap();
        assert_eq!(done.iter().filter(|r| r.moved).count(), 2);
        assert_eq!(md.message_files("INBOX").unwrap().len(), 1);
        assert_eq!(md.message_files("Invoices").unwrap().len(), 2);
        // Running again moves nothing more.
        let again = refilter(&filter, &user, &md, "INBOX", true).unwrap();
        assert!(again.iter().all(|r| !r.moved));
    }
}
