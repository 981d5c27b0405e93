//! The one executor of Sieve plans: what a delivery does once its plan is
//! known (each copy saved with quota checked and counted and its index
//! row, then redirects, then replies and notifications), and the same
//! saving for `sieve filter --apply`, which refiles a stored message.
//! Blocking. Must not decide where mail goes (the plan did) nor parse
//! protocol lines.

use std::path::Path;
use std::time::SystemTime;

use mailstow_index::scan::HEAD_MAX;
use mailstow_maildir::{self as store, Body, Content, Flags, Maildir, StoreError};
use mailstow_sieve::{OutKind, Outgoing, Plan, Store};

use super::envelope::{Envelope, Recipient};
use super::indexer::{self, Row};
use super::outcome::{Failure, RcptOutcome};
use super::pipeline::{Deliverer, Sharing};
use super::shared::Claim;
use super::spool::Spool;
use super::state::LazyState;
use crate::config::SenderPolicy;
use crate::users::User;

/// One copy to save: where, with which flags and what bytes, and the head
/// its index row reads.
struct Copy<'a> {
    folder: String,
    create: bool,
    flags: Flags,
    content: Content<'a>,
    head: &'a [u8],
    /// The content is the delivery's trace block and message (not a copy
    /// a script edited): the same bytes as its transaction's other such
    /// copies with the same trace, so it may share their file.
    original: bool,
}

/// Why a redirect did not go out.
struct RedirectFailed {
    detail: String,
    /// The MTA refused it for good: sending again cannot help.
    permanent: bool,
}

/// What `sieve filter --apply` did with one stored message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refiled {
    /// Folders the message was copied into.
    pub copied: Vec<String>,
    /// The source file was removed (after the copies were durable).
    pub moved: bool,
}

impl Deliverer {
    /// Carry out `plan` for one recipient's copy of `body`: the outcome, and
    /// the size of the (last) file stored, if one was. `header` is the trace
    /// fields the original message is stored with; a message a script
    /// edited holds them already (the scripts saw them). A copy of the
    /// original links the transaction's file of the same bytes when
    /// `sharing` has one.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn execute(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        header: &[u8],
        maildir: &Maildir,
        state: &LazyState<'_>,
        mut plan: Plan,
        sharing: &Sharing<'_>,
    ) -> Result<(RcptOutcome, Option<u64>), Failure> {
        if let Some(r) = &plan.reject {
            return Err(Failure::Rejected(r.reason.clone()));
        }
        // A copy the script edited is stored with LF line ends, as the
        // message itself (see `Spool`).
        for s in &mut plan.stores {
            if let Some(m) = &mut s.message {
                *m = std::sync::Arc::new(store::to_lf(m));
            }
        }
        let redirects: Vec<&Outgoing> = plan
            .outgoing
            .iter()
            .filter(|o| o.kind == OutKind::Redirect)
            .collect();
        let original_head =
            if !redirects.is_empty() || plan.stores.iter().any(|s| s.message.is_none()) {
                body.head(HEAD_MAX).unwrap_or_default()
            } else {
                Vec::new()
            };
        let default_folder = self.default_folder(rcpt);
        let autocreate = self.cfg.sieve.autocreate;
        let copy_of = |s| copy_of(s, &default_folder, autocreate, header, body, &original_head);
        // Stores first, then redirects: a store that fails (quota, disk)
        // is answered before anything went out, so the retry or the bounce
        // it causes never duplicates a redirect.
        let copies = plan.stores.iter().map(copy_of).collect();
        let delivery = Some((env, sharing));
        let (mut stored, mut size) =
            self.save_copies(&rcpt.user, maildir, copies, env.received, delivery)?;
        let sent = self.redirects(env, rcpt, body, header, &redirects, !stored.is_empty())?;
        if sent < redirects.len() {
            let keep = Store {
                folder: "INBOX".into(),
                flags: Vec::new(),
                create: false,
                implicit: true,
                message: None,
            };
            let done = sent > 0 || !stored.is_empty();
            if let Some((folder, s)) =
                self.keep_instead((env, sharing), rcpt, maildir, copy_of(&keep), &stored, done)?
            {
                stored.push(folder);
                size = s.or(size);
            }
        }
        // Replies and notifications: a failure is logged, never a reason to
        // defer mail that is already stored.
        for o in plan.outgoing.iter().filter(|o| o.kind != OutKind::Redirect) {
            self.send_generated(env, rcpt, state, o);
        }
        for (id, secs) in &plan.remember {
            state.record(id, *secs);
        }
        let outcome = if !stored.is_empty() {
            RcptOutcome::Delivered {
                folder: stored.join(","),
            }
        } else if sent > 0 {
            RcptOutcome::Delivered {
                folder: "(redirected)".into(),
            }
        } else {
            RcptOutcome::Discarded
        };
        Ok((outcome, size))
    }

    /// A redirect failed for good, or when deferring would repeat what is
    /// done: the message is kept (Pigeonhole's failsafe keep) in the keep's
    /// folder, unless it is `stored` there already. The folder and size
    /// saved, if saved. A failure to save is the delivery's only when
    /// nothing is `done` (stored or sent) yet; otherwise the message is not
    /// lost and a retry would repeat what is done, so it is logged.
    fn keep_instead(
        &self,
        (env, sharing): (&Envelope, &Sharing<'_>),
        rcpt: &Recipient,
        maildir: &Maildir,
        copy: Copy<'_>,
        stored: &[String],
        done: bool,
    ) -> Result<Option<(String, Option<u64>)>, Failure> {
        let same = |f: &str| {
            f == copy.folder
                || (f.eq_ignore_ascii_case("INBOX") && copy.folder.eq_ignore_ascii_case("INBOX"))
        };
        if stored.iter().any(|f| same(f)) {
            return Ok(None);
        }
        let delivery = Some((env, sharing));
        match self.save_copies(&rcpt.user, maildir, vec![copy], env.received, delivery) {
            Ok((folders, size)) => Ok(folders.into_iter().next().map(|f| (f, size))),
            Err(e) if !done => Err(e),
            Err(e) => {
                tracing::error!(id = %env.id, error = %e.detail(), "could not keep the message whose redirect failed");
                Ok(None)
            }
        }
    }

    /// Hand the plan's redirects to the MTA, once the stores are done;
    /// the number that went out. One the MTA cannot take for now defers
    /// the whole delivery (Err: 451, the client tries again later) while
    /// nothing is done that a retry would repeat: nothing `stored`, no
    /// redirect sent. Otherwise, and when the MTA refuses it for good, it
    /// is logged and the caller keeps the message instead, as Pigeonhole
    /// does (a redirect-only script there is deferred too).
    fn redirects(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        header: &[u8],
        redirects: &[&Outgoing],
        stored: bool,
    ) -> Result<usize, Failure> {
        let mut sent = 0;
        for o in redirects {
            match self.redirect(env, rcpt, body, header, o) {
                Ok(()) => sent += 1,
                Err(e) if !e.permanent && !stored && sent == 0 => {
                    return Err(Failure::Io(e.detail))
                }
                Err(e) => {
                    tracing::error!(id = %env.id, redirect_to = %o.to.join(","), error = %e.detail, "redirect failed; the message is kept instead")
                }
            }
        }
        Ok(sent)
    }

    /// Hand one redirect to the MTA: the message as delivered (with the
    /// trace fields it is stored with, `header`, or as the scripts edited
    /// it, which holds them), as Pigeonhole forwards it, so the copy
    /// carries our Received line (RFC 5321 4.4) and the Delivered-To of
    /// this recipient. Return-Path goes (the final delivery adds it, RFC
    /// 5321 4.4; Pigeonhole drops it too). X-Sieve-Redirected-From names
    /// the account, so that a loop back to this user is recognised (see the
    /// Sieve host).
    fn redirect(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        body: &Spool,
        header: &[u8],
        o: &Outgoing,
    ) -> Result<(), RedirectFailed> {
        let from = match self.cfg.outbound.redirect_sender {
            SenderPolicy::Sender => env.mail_from.clone(),
            SenderPolicy::Recipient => Some(rcpt.address.clone()),
            SenderPolicy::Null => None,
        };
        let mut copy = format!("X-Sieve-Redirected-From: {}\r\n", rcpt.user.name).into_bytes();
        match &o.message {
            Some(m) => copy_without_return_path(&mut copy, m),
            None => {
                let original = body.bytes().map_err(|e| RedirectFailed {
                    detail: format!("mapping the spool: {e}"),
                    permanent: false,
                })?;
                copy.reserve(header.len() + original.len());
                copy_without_return_path(&mut copy, header);
                copy_without_return_path(&mut copy, &original);
            }
        }
        self.outbound
            .submit(from.as_deref(), &o.to, &copy)
            .map_err(|e| RedirectFailed {
                detail: format!("redirect to {}: {e}", o.to.join(",")),
                permanent: e.is_permanent(),
            })?;
        tracing::info!(id = %env.id, redirect_to = %o.to.join(","), "redirected");
        Ok(())
    }

    /// Send a vacation reply or a notification; a failure is only logged.
    /// The id it answers is remembered once it went out.
    fn send_generated(
        &self,
        env: &Envelope,
        rcpt: &Recipient,
        state: &LazyState<'_>,
        o: &Outgoing,
    ) {
        let Some(m) = &o.message else { return };
        // A reply comes from <> (RFC 3834 3.3, the default) or the
        // recipient; "sender" would send it back to where it came from. A
        // notification comes from the recipient (RFC 5436 2.7 allows it, and
        // a bounce reaches the script's owner), and from <> when the message
        // it is about had the null sender (2.7: MUST, against loops).
        let from = match (&o.kind, self.cfg.outbound.vacation_sender) {
            (OutKind::Vacation, SenderPolicy::Null) => None,
            (OutKind::Notify, _) if env.mail_from.is_none() => None,
            _ => Some(rcpt.address.clone()),
        };
        let marker = if o.kind == OutKind::Notify {
            "auto-notified"
        } else {
            "auto-replied"
        };
        let message =
            crate::outbound::vacation::fix_generated(m, &self.cfg.hostname, env.received, marker);
        match self.outbound.submit(from.as_deref(), &o.to, &message) {
            Ok(()) => {
                tracing::info!(id = %env.id, kind = ?o.kind, reply_to = %o.to.join(","), "sent");
                if let Some((id, secs)) = &o.remember {
                    state.record(id, *secs);
                }
            }
            Err(e) => tracing::warn!(id = %env.id, kind = ?o.kind, error = %e, "could not send"),
        }
    }

    /// Save every copy: quota checked for all of them first (an ignored
    /// folder, e.g. `Trash:ignore`, is never refused), then each saved,
    /// indexed and counted. For a delivery (`env` given), a folder the
    /// Maildir refuses gets its copy into INBOX instead (once); otherwise it
    /// is an error; a copy of the original may share its transaction's file
    /// ([`Deliverer::store_copy`]). Returns the folders stored into and the
    /// last file's size.
    fn save_copies(
        &self,
        user: &User,
        maildir: &Maildir,
        copies: Vec<Copy<'_>>,
        received: SystemTime,
        delivery: Option<(&Envelope, &Sharing<'_>)>,
    ) -> Result<(Vec<String>, Option<u64>), Failure> {
        let (env, sharing) = (delivery.map(|d| d.0), delivery.map(|d| d.1));
        let sizes: Vec<(&str, u64)> = copies
            .iter()
            .map(|c| (c.folder.as_str(), c.content.size()))
            .collect();
        let rules = if copies.is_empty() {
            mailstow_maildir::quota::Rules::default()
        } else {
            self.quota_check_stores(user, &sizes)?
        };
        let warn_from = self.quota_warn_from(user, &rules);
        let mut stored: Vec<String> = Vec::new();
        let mut size = None;
        for c in copies {
            self.confine_folder(maildir, &c.folder)?;
            let share = sharing.filter(|_| c.original);
            let saved = store_copy(maildir, &c, received, share);
            let (folder, saved) = match (saved, env) {
                (Ok(saved), _) => (c.folder, saved),
                (
                    Err(e @ (StoreError::InvalidFolder { .. } | StoreError::NoSuchFolder(_))),
                    Some(_),
                ) => {
                    tracing::warn!(folder = %c.folder, error = %e, "folder refused, saving to INBOX");
                    if stored.iter().any(|f| f.eq_ignore_ascii_case("INBOX")) {
                        continue;
                    }
                    let saved = maildir
                        .save("INBOX", true, &c.flags, &c.content, received)
                        .map_err(store_failure)?;
                    ("INBOX".to_owned(), saved)
                }
                (Err(e), None) => return Err(Failure::Io(format!("{}: {e}", c.folder))),
                (Err(e), Some(_)) => return Err(store_failure(e)),
            };
            size = Some(saved.size);
            crash_point("after-save");
            self.index_add(user, maildir, &saved, c.head, received);
            self.quota_count(user, &rules, &folder, saved.size);
            stored.push(folder);
        }
        if let Some(before) = warn_from {
            self.quota_warn(user, &rules, before);
        }
        Ok((stored, size))
    }

    /// With per-user rights, a folder (when its name is valid: the store
    /// judges the others) must not be or hold a symlink.
    fn confine_folder(&self, maildir: &Maildir, folder: &str) -> Result<(), Failure> {
        if !self.cfg.users.per_user_rights() {
            return Ok(());
        }
        match store::storage_name(folder, maildir.encoding()) {
            Ok(storage) => super::confine::folder(maildir.root(), &maildir.folder_dir(&storage)),
            Err(_) => Ok(()),
        }
    }

    /// `sieve filter --apply` for one message stored in `source` as `file`
    /// (`bytes` its content): a copy into every other folder the plan files
    /// it into, saved as a delivery saves (quota, index), with the file's
    /// own receive time; then, when the plan keeps it nowhere in `source`
    /// and it was copied somewhere, the source file goes (its directory
    /// fsynced, maildirsize counted down). Never sends; a discard or a
    /// redirect alone never deletes stored mail.
    pub fn refile(
        &self,
        user: &User,
        source: &str,
        file: &Path,
        bytes: &[u8],
        plan: &Plan,
    ) -> Result<Refiled, Failure> {
        let maildir = self.maildir(user);
        let same = |f: &str| {
            f == source || (f.eq_ignore_ascii_case("INBOX") && source.eq_ignore_ascii_case("INBOX"))
        };
        let stays = plan.stores.iter().any(|s| s.implicit || same(&s.folder));
        let received = std::fs::metadata(file)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let copies = plan
            .stores
            .iter()
            .filter(|s| !s.implicit && !same(&s.folder))
            .map(|s| {
                let m: &[u8] = s.message.as_deref().map_or(bytes, Vec::as_slice);
                Copy {
                    folder: s.folder.clone(),
                    create: s.create,
                    flags: flags_of(s),
                    content: with_header(b"", Body::Bytes(m), None),
                    head: m,
                    original: false,
                }
            })
            .collect();
        let (copied, _) = self.save_copies(user, &maildir, copies, received, None)?;
        let moved = !stays && !copied.is_empty();
        if moved {
            let gone = |e: std::io::Error| Failure::Io(format!("{}: {e}", file.display()));
            std::fs::remove_file(file).map_err(gone)?;
            if let Some(dir) = file.parent() {
                store::fsops::fsync_path(dir).map_err(store_failure)?;
            }
            self.quota_uncount(user, source, bytes.len() as u64);
        }
        Ok(Refiled { copied, moved })
    }

    /// Records a durable message in the user's index: through the index
    /// writers when there are (after the reply), else now, with an open
    /// index from the process's pool (see [`mailstow_index::with_cached`]). A
    /// failure is only logged: the message is stored, and the next
    /// reconcile indexes it.
    pub(super) fn index_add(
        &self,
        user: &User,
        maildir: &Maildir,
        saved: &store::Saved,
        head: &[u8],
        received: SystemTime,
    ) {
        if !self.cfg.index.enabled {
            return;
        }
        let identity = match self.identity(user) {
            Ok(id) => id,
            Err(_) => return, // logged; the next reconcile indexes it
        };
        let row = Box::new(Row {
            identity,
            user: user.name.clone(),
            maildir: maildir.clone(),
            home: user.home.clone(),
            saved: saved.clone(),
            head: head[..mailstow_index::scan::header_end(head)].to_vec(),
            received,
        });
        let row = match &self.indexers {
            Some(w) => match w.submit(row) {
                Ok(()) => return,
                Err(row) => row,
            },
            None => row,
        };
        indexer::write_rows(&self.cfg.index, &[&row]);
    }
}

/// The copy a delivery saves for `s`: an implicit keep goes to the
/// default folder (created) when there is one; the original message gets
/// the trace fields `header` (its head is `original_head`), an edited one
/// holds them already.
fn copy_of<'a>(
    s: &'a Store,
    default_folder: &Option<String>,
    autocreate: bool,
    header: &'a [u8],
    body: &'a Spool,
    original_head: &'a [u8],
) -> Copy<'a> {
    let (folder, create) = match (default_folder, s.implicit) {
        (Some(d), true) => (d.clone(), true),
        _ => (s.folder.clone(), s.create || autocreate),
    };
    let (content, head) = match &s.message {
        Some(m) => (with_header(b"", Body::Bytes(m), None), m.as_slice()),
        None => (
            with_header(header, body.body(), Some(body.bare_lf())),
            original_head,
        ),
    };
    Copy {
        folder,
        create,
        flags: flags_of(s),
        content,
        head,
        original: s.message.is_none(),
    }
}

/// Saves `c`: with a `share`, as a hard link of the transaction's file of
/// the same bytes and owner when there is one (waiting while another
/// recipient writes it), else written and offered to the copies after it.
/// A link that cannot be made (another file system, the file gone) is a
/// written copy.
fn store_copy(
    maildir: &Maildir,
    c: &Copy<'_>,
    received: SystemTime,
    share: Option<&Sharing<'_>>,
) -> Result<store::Saved, StoreError> {
    let save = || maildir.save(&c.folder, c.create, &c.flags, &c.content, received);
    let Some(share) = share else { return save() };
    match share.copies.claim(&share.key) {
        Claim::Link(source) => {
            if let Some(saved) = maildir.save_linked(&c.folder, c.create, &c.flags, &source)? {
                tracing::debug!(folder = %c.folder, source = %source.path.display(), "linked");
                return Ok(saved);
            }
            let saved = save()?;
            share.copies.offer(&share.key, &saved);
            Ok(saved)
        }
        Claim::Write(writer) => {
            let saved = save()?;
            writer.done(&saved);
            Ok(saved)
        }
    }
}

/// A message to save: `header` (our trace fields) before `body`, with the
/// bare LFs of both (`body_lf`: counted already, None: count now).
fn with_header<'a>(header: &'a [u8], body: Body<'a>, body_lf: Option<u64>) -> Content<'a> {
    let body_lf = match (body_lf, body) {
        (Some(n), _) => n,
        (None, Body::Bytes(b)) => store::count_bare_lf(false, b).0,
        (None, Body::File { .. }) => 0,
    };
    Content {
        header,
        body,
        bare_lf: store::count_bare_lf(false, header).0 + body_lf,
    }
}

/// Append `message` to `out` without its Return-Path fields (folded lines
/// included); the rest is copied as it is.
fn copy_without_return_path(out: &mut Vec<u8>, message: &[u8]) {
    let (fields, end) = mailstow_sieve::generated::fields(message);
    for f in fields
        .iter()
        .filter(|f| !f.name.eq_ignore_ascii_case(b"return-path"))
    {
        out.extend_from_slice(&message[f.range.clone()]);
    }
    out.extend_from_slice(&message[end..]);
}

/// The flags a store asks for, as the Maildir keeps them (others dropped).
fn flags_of(s: &Store) -> Flags {
    let mut flags = Flags::default();
    for f in &s.flags {
        if !flags.insert_imap(f) {
            tracing::debug!(flag = %f, "flag not stored");
        }
    }
    flags
}

fn store_failure(e: StoreError) -> Failure {
    match e {
        e @ StoreError::NoSpace { .. } => Failure::NoSpace(e.to_string()),
        other => Failure::Io(other.to_string()),
    }
}

/// For crash tests (built with the `crash-points` feature, which the tests
/// turn on and a release never has): with `MAILSTOW_CRASH_AT=<point>` in
/// the environment, the process kills itself with SIGKILL there, as a
/// power cut or the OOM killer would. Points: "after-save" (the file is
/// durable, its index row not yet written).
#[cfg(feature = "crash-points")]
fn crash_point(point: &str) {
    if std::env::var_os("MAILSTOW_CRASH_AT").is_some_and(|v| v == point) {
        tracing::warn!(point, "MAILSTOW_CRASH_AT: killing this process");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_point: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(parts: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for p in parts {
            copy_without_return_path(&mut out, p);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_redirected_copy_loses_every_return_path_and_keeps_the_rest_as_it_is() {
        let trace = b"Return-Path: <s@example.net>\r\nDelivered-To: a+x@example.org\r\nReceived: by mx\r\n\tid 1; Mon, 1 Jan 2024 10:00:00 +0000\r\n";
        let message = b"return-path :\r\n <old@example.net>\r\nSubject: hi\r\n\r\nReturn-Path: in the body\r\n";
        assert_eq!(
            stripped(&[trace, message]),
            "Delivered-To: a+x@example.org\r\nReceived: by mx\r\n\tid 1; Mon, 1 Jan 2024 10:00:00 +0000\r\nSubject: hi\r\n\r\nReturn-Path: in the body\r\n"
        );
        // Bare LF, no body, and a line that is no field ends the header.
        assert_eq!(
            stripped(&[b"X-A: 1\nReturn-Path: <x>\nnot a field\nReturn-Path: <y>\n"]),
            "X-A: 1\nnot a field\nReturn-Path: <y>\n"
        );
        assert_eq!(stripped(&[b"Return-Path: <x>"]), "");
    }
}
