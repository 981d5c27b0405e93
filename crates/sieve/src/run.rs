//! Running the chain for one recipient ([`Filter::run`]): each script in
//! turn on the message as earlier scripts left it, the host's answer to
//! every event the interpreter emits, and the end-of-script rules that
//! decide what reaches the [`Plan`]. A script's actions wait in [`Actions`]
//! and join the plan only if the script ends without error. Must not carry
//! out anything: no mail written or sent, no duplicate id recorded.
//!
//! Reading order: `Filter::run` (the chain), [`Chain`] (what passes from
//! script to script), [`Run`] (one script: `script`, then `answer` with one
//! method per event), [`Actions`] (the end-of-script rules).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow::{self, Break, Continue};
use std::path::Path;
use std::sync::Arc;

use sieve::{Envelope, Event, Input, Mailbox, Recipient, Script, Sieve, SpamStatus, VirusStatus};

use crate::compile::{self, CompileFailure, EXPLICIT_KEEP};
use crate::spamtest::{spam_status, virus_status};
use crate::{
    generated, header_values, vacation, Account, ErrorKind, Filter, Lookups, Mailboxes,
    MessageEnvelope, OutKind, Outgoing, Plan, PlanError, Reject, ScriptRef, Store, TempFailure,
};

/// A message with this many Received headers is looping.
const MAX_RECEIVED: usize = 30;

impl Filter {
    /// Run the chain for one recipient: before scripts, the user's script
    /// (`script`, or the configured one), after scripts. The scripts see
    /// `message` as it is (a stored message, a message to try a script on).
    pub fn run(
        &self,
        user: &Account<'_>,
        script: Option<&Path>,
        env: &MessageEnvelope<'_>,
        message: &[u8],
        look: &mut Lookups<'_>,
    ) -> Result<Plan, TempFailure> {
        self.run_with_trace(user, script, env, b"", message, look)
    }

    /// As [`Filter::run`], for a message being delivered: `trace` is the
    /// header fields the host will put before `message` in every copy it
    /// stores (Return-Path, Delivered-To, Received), and the scripts see
    /// `trace` then `message`, the bytes of the stored file, as they do
    /// under Dovecot's LMTP. That takes one copy of the message, made only
    /// when the chain has a script. The loop and auto-reply rules judge the
    /// message as it arrived, without `trace`.
    pub fn run_with_trace(
        &self,
        user: &Account<'_>,
        script: Option<&Path>,
        env: &MessageEnvelope<'_>,
        trace: &[u8],
        message: &[u8],
        look: &mut Lookups<'_>,
    ) -> Result<Plan, TempFailure> {
        let scripts = self.load_chain(user, script)?;
        let n = scripts.len();
        let mut chain = Chain::new();
        if n == 0 {
            return Ok(chain.finish(false));
        }
        let delivered: Cow<'_, [u8]> = if trace.is_empty() {
            Cow::Borrowed(message)
        } else {
            Cow::Owned([trace, message].concat())
        };
        let arrival = Arrival {
            user,
            env,
            message,
            loops: LoopFacts::of(message, user, env),
        };
        for (i, (sref, compiled)) in scripts.into_iter().enumerate() {
            let flow = match compiled {
                Err(e) => chain.did_not_compile(user, &sref, &e),
                Ok(script) => {
                    let msg: &[u8] = chain.current.as_deref().map_or(&delivered, Vec::as_slice);
                    let flags = chain.keep.clone().unwrap_or_default();
                    let base = chain.current.clone();
                    let run = Run::new(self, &sref, &arrival, msg, base, look, &mut chain.plan);
                    match run.script(script, &flags, i + 1 == n) {
                        Ok(outcome) => chain.succeeded(outcome),
                        Err(ScriptError::Temp(t)) => return Err(t),
                        Err(ScriptError::Failed(e)) => chain.failed(self, user, &sref, &e),
                    }
                }
            };
            if flow.is_break() {
                break;
            }
        }
        Ok(chain.finish(true))
    }
}

/// What is the same for every script of one recipient's chain.
struct Arrival<'a> {
    user: &'a Account<'a>,
    env: &'a MessageEnvelope<'a>,
    /// The message as it arrived (without the host's trace fields): what
    /// the loop and auto-reply rules judge.
    message: &'a [u8],
    loops: LoopFacts,
}

/// What one recipient's chain carries from script to script.
struct Chain {
    plan: Plan,
    /// The message as the scripts so far edited it; None: the original.
    current: Option<Arc<Vec<u8>>>,
    /// The keep in effect, with its flags; None: a script cancelled it
    /// (and the chain stops).
    keep: Option<Vec<String>>,
}

impl Chain {
    fn new() -> Chain {
        Chain {
            plan: Plan::default(),
            current: None,
            keep: Some(Vec::new()),
        }
    }

    /// A script ran to its end: its keep is the one in effect, and the
    /// chain goes on while there is one.
    fn succeeded(&mut self, outcome: ScriptOutcome) -> ControlFlow<()> {
        if let Some(edited) = outcome.edited {
            self.current = Some(edited);
        }
        self.keep = outcome.keep;
        match self.keep {
            Some(_) => Continue(()),
            None => Break(()),
        }
    }

    /// A script does not compile: the keep in effect (with its flags)
    /// stays, and the chain stops.
    fn did_not_compile(
        &mut self,
        user: &Account<'_>,
        sref: &ScriptRef,
        e: &CompileFailure,
    ) -> ControlFlow<()> {
        let msg = format!("{}: {e}", sref.path.display());
        tracing::warn!(user = %user.name, script = %sref.path.display(), error = %e, "sieve script does not compile; keeping the message");
        self.plan.errors.push(PlanError {
            kind: ErrorKind::Compile,
            text: msg,
        });
        self.keep = Some(self.keep.take().unwrap_or_default());
        Break(())
    }

    /// A script failed while it ran: its actions are dropped, the message
    /// is kept (without flags), and the chain stops.
    fn failed(
        &mut self,
        filter: &Filter,
        user: &Account<'_>,
        sref: &ScriptRef,
        e: &str,
    ) -> ControlFlow<()> {
        let msg = format!("{}: {e}", sref.path.display());
        tracing::warn!(user = %user.name, script = %sref.path.display(), error = %e, "sieve script failed; its actions are dropped and the message kept");
        if !sref.admin {
            filter.user_log(user, &sref.path, e);
        }
        self.plan.errors.push(PlanError {
            kind: ErrorKind::Runtime,
            text: msg,
        });
        self.keep = Some(Vec::new());
        Break(())
    }

    /// The plan, with the implicit keep if one is still in effect. `ran`:
    /// a script was found (the plan is a filter's).
    fn finish(mut self, ran: bool) -> Plan {
        if let Some(flags) = self.keep {
            self.plan.store(Store {
                folder: "INBOX".into(),
                flags,
                create: false,
                implicit: true,
                message: self.current,
            });
        }
        self.plan.ran = ran;
        self.plan
    }
}

enum ScriptError {
    /// The script failed: drop its actions, keep the message.
    Failed(String),
    Temp(TempFailure),
}

struct ScriptOutcome {
    /// The implicit keep is in effect, with these flags.
    keep: Option<Vec<String>>,
    /// The message as the script left it (editheader), if it changed it.
    edited: Option<Arc<Vec<u8>>>,
}

/// One script's run: the host's answers to the interpreter's events, one
/// method per event.
struct Run<'r, 'l> {
    filter: &'r Filter,
    sref: &'r ScriptRef,
    arrival: &'r Arrival<'r>,
    user: &'r Account<'r>,
    env: &'r MessageEnvelope<'r>,
    /// The message as this script sees it.
    message: &'r [u8],
    /// The message as earlier scripts of the chain edited it (None: not
    /// edited): what this script's actions on "the message" (the
    /// interpreter's id 0) mean.
    base: Option<Arc<Vec<u8>>>,
    look: &'r mut Lookups<'l>,
    /// The trace and notes go straight into the plan, whether or not the
    /// script succeeds; its actions wait in `acts`.
    plan: &'r mut Plan,
    acts: Actions,
    /// The script and the scripts it included so far (for a vacation
    /// reply's `:addresses`).
    programs: Vec<Arc<Sieve>>,
}

impl<'r, 'l> Run<'r, 'l> {
    fn new(
        filter: &'r Filter,
        sref: &'r ScriptRef,
        arrival: &'r Arrival<'r>,
        message: &'r [u8],
        base: Option<Arc<Vec<u8>>>,
        look: &'r mut Lookups<'l>,
        plan: &'r mut Plan,
    ) -> Self {
        Run {
            filter,
            sref,
            arrival,
            user: arrival.user,
            env: arrival.env,
            message,
            base,
            look,
            plan,
            acts: Actions::default(),
            programs: Vec::new(),
        }
    }

    /// Run `script` to its end, answering every event, then apply the
    /// end-of-script rules. `flags`: imap4flags' flags so far in the chain.
    fn script(
        mut self,
        script: Arc<Sieve>,
        flags: &[String],
        last: bool,
    ) -> Result<ScriptOutcome, ScriptError> {
        let mut ctx = self.context(flags);
        self.programs.push(Arc::clone(&script));
        let mut input = Input::script(script_name(&self.sref.path), script);
        loop {
            // The interpreter is a dependency: a panic in it fails this
            // script (implicit keep), never the delivery.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.run(input)))
                .map_err(|_| {
                    ScriptError::Failed("the Sieve interpreter failed (internal error)".into())
                })?;
            let event = match step {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(e)) => return Err(ScriptError::Failed(format!("runtime error: {e:?}"))),
            };
            self.plan.trace.push(trace_line(&event));
            input = self.answer(event)?;
        }
        self.acts
            .finish(self.plan, self.look.mailboxes, last, self.base.as_ref())
    }

    /// The interpreter's context for this script and message: envelope,
    /// environment, the chain's flags, spam and virus status.
    fn context(&self, flags: &[String]) -> sieve::Context<'r> {
        let filter: &'r Filter = self.filter;
        let rt = if self.sref.admin {
            &filter.admin_rt
        } else {
            &filter.user_rt
        };
        let (user, env, message) = (self.user, self.env, self.message);
        let mut ctx = rt.filter(message);
        ctx.set_envelope(Envelope::From, env.from.unwrap_or(""));
        ctx.set_envelope(Envelope::To, env.to);
        if let Some(o) = env.orcpt {
            ctx.set_envelope(Envelope::Orcpt, o);
        }
        if let Some(d) = user.detail {
            ctx.set_env_variable("vnd.mailstow.detail", d.to_owned());
        }
        // The recipient's domain: what a virtual-domain MDA serves.
        ctx.set_env_variable("domain", user.domain.to_owned());
        // imap4flags' internal variable carries across the script chain.
        if !flags.is_empty() {
            ctx.set_global_variable("__flags", flags.join(" "));
        }
        let cfg = &filter.cfg;
        ctx.set_spam_status(
            cfg.spam
                .as_ref()
                .map_or(SpamStatus::Unknown, |h| spam_status(h, message)),
        );
        ctx.set_virus_status(
            cfg.virus
                .as_ref()
                .map_or(VirusStatus::Unknown, |h| virus_status(h, message)),
        );
        ctx
    }

    /// The host's answer to one event. Tests get True or False; actions
    /// are collected (not done) and acknowledged with True.
    fn answer(&mut self, event: Event) -> Result<Input, ScriptError> {
        match event {
            Event::IncludeScript { name, optional } => return self.include(name, optional),
            Event::MailboxExists {
                mailboxes,
                special_use,
            } => return Ok(self.mailbox_exists(&mailboxes, &special_use)),
            Event::DuplicateId { id, expiry, .. } => return self.duplicate_id(id, expiry),
            // Extlists and vnd.stalwart functions are not offered.
            Event::ListContains { .. } => return Ok(Input::False),
            Event::Function { .. } => {
                return Ok(Input::result(sieve::runtime::Variable::default()))
            }
            Event::SetEnvelope { .. } => {}
            Event::CreatedMessage {
                message_id,
                message,
            } => self.created_message(message_id, message),
            Event::Keep { flags, message_id } => self.acts.keep = Some((flags, message_id)),
            Event::Discard => self.acts.discard = true,
            Event::Reject { extended, reason } => {
                self.count_action()?;
                self.acts.reject = Some(Reject { reason, extended });
            }
            Event::FileInto {
                folder,
                flags,
                create,
                message_id,
                mailbox_id,
                ..
            } => {
                let keep = mailbox_id.as_deref() == Some(EXPLICIT_KEEP);
                self.file_into(folder, flags, create, message_id, keep)?
            }
            Event::SendMessage {
                recipient,
                message_id,
                ..
            } => self.send_message(recipient, message_id)?,
            Event::Notify { method, .. } => {
                tracing::info!(user = %self.user.name, method = %method, "sieve notify method not supported; ignored");
            }
        }
        Ok(Input::True)
    }

    fn count_action(&mut self) -> Result<(), ScriptError> {
        self.acts.count_action(self.filter.cfg.max_actions)
    }

    /// `include`: a script by name (never a path) from the user's directory
    /// or the global one, compiled with the same limits; a missing script
    /// is False when optional and an error otherwise.
    fn include(&mut self, name: Script, optional: bool) -> Result<Input, ScriptError> {
        let (dir, n, admin) = match &name {
            Script::Personal(n) => (
                self.filter.personal_dir(self.sref, self.user),
                n,
                self.sref.admin,
            ),
            Script::Global(n) => match &self.filter.cfg.global_dir {
                Some(d) => (d.clone(), n, true),
                None => {
                    return Err(ScriptError::Failed(format!(
                        "include :global \"{n}\": no [sieve] global_dir configured"
                    )))
                }
            },
        };
        if !valid_script_name(n) {
            return Err(ScriptError::Failed(format!(
                "include \"{n}\": invalid script name"
            )));
        }
        let path = dir.join(format!("{n}.sieve"));
        match self
            .filter
            .compile_cached(&path, self.filter.limits(admin))
            .map_err(ScriptError::Temp)?
        {
            Some((Ok(s), _)) => {
                self.programs.push(Arc::clone(&s));
                Ok(Input::script(name, s))
            }
            Some((Err(e), _)) => Err(ScriptError::Failed(format!(
                "include {}: {e}",
                path.display()
            ))),
            None if optional => Ok(Input::False),
            None => Err(ScriptError::Failed(format!(
                "include: {} does not exist",
                path.display()
            ))),
        }
    }

    /// `mailboxexists`: true only if every folder exists (by name; special
    /// use and mailbox ids are not supported).
    fn mailbox_exists(&self, mailboxes: &[Mailbox], special_use: &[String]) -> Input {
        let all = special_use.is_empty()
            && mailboxes.iter().all(|m| match m {
                Mailbox::Name(n) => self.look.mailboxes.exists(n),
                Mailbox::Id(_) => false,
            });
        Input::from(all)
    }

    /// `duplicate` (and vacation's "replied already?", ids starting `_v`):
    /// True when the id was seen; a new id is remembered once delivery
    /// succeeds.
    fn duplicate_id(&mut self, id: String, expiry: u64) -> Result<Input, ScriptError> {
        if id.starts_with("_v") {
            return self.vacation_id(id, expiry);
        }
        let seen = self.seen(&id)?;
        if !seen {
            self.acts.remember.push((id, expiry));
        }
        Ok(Input::from(seen))
    }

    /// Vacation's question: one vacation per script, its period clamped to
    /// the configured bounds. The RFC 3834/5230 rules the crate misses
    /// (Auto-Submitted, Precedence junk/list, system senders, injected
    /// header lines) answer "already replied", which cancels the reply.
    fn vacation_id(&mut self, id: String, expiry: u64) -> Result<Input, ScriptError> {
        self.acts.vacations += 1;
        if self.acts.vacations > 1 {
            return Err(ScriptError::Failed("duplicate vacation action".into()));
        }
        let cfg = &self.filter.cfg;
        let expiry = expiry.clamp(
            cfg.vacation_min_period.as_secs(),
            cfg.vacation_max_period.as_secs(),
        );
        let addresses = [self.user.name.to_owned(), self.env.to.to_owned()];
        let suppressed = vacation::suppress_reason_after_recipient_check(
            self.arrival.message,
            self.env.from,
            &addresses,
        );
        if let Some(why) = suppressed {
            self.plan.trace.push(format!("vacation suppressed: {why}"));
            tracing::info!(user = %self.user.name, reason = why, "vacation reply suppressed");
            self.acts.pending_vacation = None;
            return Ok(Input::True);
        }
        let seen = self.seen(&id)?;
        self.acts.pending_vacation = (!seen).then_some((id, expiry));
        Ok(Input::from(seen))
    }

    /// Has the host recorded this duplicate-tracking id?
    fn seen(&mut self, id: &str) -> Result<bool, ScriptError> {
        (self.look.duplicate)(id)
            .map_err(|e| ScriptError::Temp(TempFailure(format!("duplicate tracking: {e}"))))
    }

    /// A message the script made, which later actions name by id: a
    /// vacation reply (right after a vacation check said "not replied"), a
    /// notification (Auto-Submitted: auto-notified), or else an edited copy
    /// of the message (editheader).
    fn created_message(&mut self, message_id: usize, message: Vec<u8>) {
        let kind = if self.acts.pending_vacation.is_some() {
            Created::Vacation
        } else if header_values(&message, "auto-submitted")
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case("auto-notified"))
        {
            Created::Notify
        } else {
            Created::Edited
        };
        let m = Arc::new(message);
        if kind == Created::Edited {
            self.acts.edited = Some(Arc::clone(&m));
        }
        self.acts.created.insert(message_id, (kind, m));
    }

    /// `fileinto`, and an explicit `keep` (`keep`: compiled as `fileinto
    /// :copy "INBOX"`, see `compile`). As Pigeonhole: a name no IMAP server
    /// could use is a runtime error, not a silent INBOX; flags the store
    /// cannot keep are dropped.
    fn file_into(
        &mut self,
        folder: String,
        flags: Vec<String>,
        create: bool,
        message_id: usize,
        keep: bool,
    ) -> Result<(), ScriptError> {
        self.count_action()?;
        if let Some(why) = self.look.mailboxes.refuse_name(&folder) {
            return Err(ScriptError::Failed(format!("fileinto: {why}")));
        }
        let store = Store {
            folder,
            flags: valid_flags(flags, self.look.mailboxes),
            create,
            implicit: false,
            message: self.acts.message(message_id),
        };
        self.acts.stores.push(Pending { store, keep });
        Ok(())
    }

    /// A message for the MTA: a vacation reply, a notification, or else a
    /// redirect of the message (as received or as edited).
    fn send_message(&mut self, recipient: Recipient, message_id: usize) -> Result<(), ScriptError> {
        self.count_action()?;
        let to = match recipient {
            Recipient::Address(a) => vec![a],
            Recipient::List(a) => vec![a],
            Recipient::Group(g) => g,
        };
        let created = self.acts.created.get(&message_id);
        match created.map(|(k, m)| (*k, Arc::clone(m))) {
            Some((Created::Vacation, m)) => {
                let m = self.vacation_from(m);
                let remember = self.acts.pending_vacation.take();
                self.acts.outgoing.push(Outgoing {
                    kind: OutKind::Vacation,
                    to,
                    note: header_values(&m, "subject")
                        .into_iter()
                        .next()
                        .unwrap_or_default(),
                    message: Some(m),
                    remember,
                });
            }
            // RFC 5436 2.7: no notification about auto-submitted mail.
            Some((Created::Notify, _)) if auto_submitted(self.arrival.message) => {
                self.plan
                    .trace
                    .push("notify suppressed: Auto-Submitted".into());
            }
            Some((Created::Notify, m)) => self.acts.outgoing.push(Outgoing {
                kind: OutKind::Notify,
                note: format!("mailto:{}", to.join(",")),
                to,
                message: Some(Arc::new(generated::fix_notification(&m, self.env.to))),
                remember: None,
            }),
            other => self.redirect(to, other.map(|(_, m)| m))?,
        }
        Ok(())
    }

    /// A vacation reply from the address the correspondent wrote to, as
    /// Pigeonhole sends it: sieve-rs, without a `:from`, puts the
    /// recipient in From (it would put the user's address, which the host
    /// does not give it). The recipient, the original recipient or the
    /// first of the script's `:addresses` the message names, in
    /// Pigeonhole's order; an address given through a variable is not
    /// known here, and then the recipient stays.
    fn vacation_from(&self, reply: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        let from = header_values(&reply, "from");
        if !from.first().is_some_and(|f| addr_eq(f, self.env.to)) {
            return reply; // the script's :from
        }
        let listed: Vec<String> = self
            .programs
            .iter()
            .flat_map(|p| compile::vacation_addresses(p))
            .collect();
        let mut candidates = vec![self.env.to];
        candidates.extend(self.env.orcpt);
        candidates.extend(listed.iter().map(String::as_str));
        match generated::reply_from(self.message, &candidates) {
            Some(a) if !addr_eq(a, self.env.to) => {
                Arc::new(generated::replace_field(&reply, "From", a))
            }
            _ => reply,
        }
    }

    /// `redirect`: more than `max_redirects` is a runtime error (as in
    /// Pigeonhole); one that would loop is skipped, logged and noted, and
    /// the message kept instead. `message`: None is the message as received.
    fn redirect(
        &mut self,
        to: Vec<String>,
        message: Option<Arc<Vec<u8>>>,
    ) -> Result<(), ScriptError> {
        self.acts.redirects += 1;
        let max = self.filter.cfg.max_redirects;
        if self.acts.redirects > max {
            return Err(ScriptError::Failed(format!("more than {max} redirects")));
        }
        let target = to.first().cloned().unwrap_or_default();
        // A redirect to the user's own address is allowed (as in
        // Pigeonhole); it comes back marked.
        if let Some(why) = self.arrival.loops.reason() {
            tracing::warn!(user = %self.user.name, redirect_to = %target, reason = why, "redirect skipped: mail loop; the message is kept");
            self.plan.notes.push(format!(
                "{}: redirect to {target} skipped: {why}",
                self.sref.path.display()
            ));
            self.acts.skipped_redirect = true;
        } else {
            self.acts.outgoing.push(Outgoing {
                kind: OutKind::Redirect,
                to,
                message,
                remember: None,
                note: String::new(),
            });
        }
        Ok(())
    }
}

/// What the message's head says about a mail loop, read once per script.
struct LoopFacts {
    /// Received headers.
    received: usize,
    /// An X-Sieve-Redirected-From naming this user or recipient.
    redirected_by_us: bool,
    /// A Delivered-To naming this user or recipient.
    delivered_to_us: bool,
}

impl LoopFacts {
    fn of(message: &[u8], user: &Account<'_>, env: &MessageEnvelope<'_>) -> LoopFacts {
        let names_us = |header: &str| {
            header_values(message, header)
                .iter()
                .any(|v| addr_eq(v, user.name) || addr_eq(v, env.to))
        };
        LoopFacts {
            received: header_values(message, "received").len(),
            redirected_by_us: names_us("x-sieve-redirected-from"),
            delivered_to_us: names_us("delivered-to"),
        }
    }

    /// Why redirecting this message would loop, or None.
    fn reason(&self) -> Option<&'static str> {
        if self.redirected_by_us {
            Some("already redirected by this user (X-Sieve-Redirected-From)")
        } else if self.delivered_to_us {
            Some("already delivered to this user (Delivered-To)")
        } else if self.received >= MAX_RECEIVED {
            Some("too many Received headers")
        } else {
            None
        }
    }
}

/// What a message the script made is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Created {
    Edited,
    Vacation,
    Notify,
}

/// A store a script asked for, and whether it is an explicit `keep`.
struct Pending {
    store: Store,
    keep: bool,
}

/// One script's actions, applied to the plan only if the script succeeds.
#[derive(Default)]
struct Actions {
    /// Message None: the message as this script got it.
    stores: Vec<Pending>,
    outgoing: Vec<Outgoing>,
    reject: Option<Reject>,
    discard: bool,
    /// The final `Keep` event: the implicit keep (explicit keeps are
    /// compiled as `fileinto :copy "INBOX"`), with its flags.
    keep: Option<(Vec<String>, usize)>,
    /// A redirect was skipped as a loop: keep the message. Still an
    /// action the script took (a reject beside it is a conflict).
    skipped_redirect: bool,
    remember: Vec<(String, u64)>,
    /// A vacation check said "not replied yet": the reply comes next.
    pending_vacation: Option<(String, u64)>,
    created: HashMap<usize, (Created, Arc<Vec<u8>>)>,
    edited: Option<Arc<Vec<u8>>>,
    actions: usize,
    redirects: usize,
    vacations: usize,
}

impl Actions {
    fn count_action(&mut self, max: usize) -> Result<(), ScriptError> {
        self.actions += 1;
        if self.actions > max {
            return Err(ScriptError::Failed(format!("more than {max} actions")));
        }
        Ok(())
    }

    /// The message an action refers to: one this script edited, or None
    /// (the message as this script got it).
    fn message(&self, id: usize) -> Option<Arc<Vec<u8>>> {
        match self.created.get(&id) {
            Some((Created::Edited, m)) => Some(Arc::clone(m)),
            _ => None,
        }
    }

    /// The end-of-script rules, for a script that ran without error:
    /// reject conflicts with anything that stores or sends (a redirect
    /// skipped as a loop included, as in Pigeonhole); the keep in effect; a
    /// non-last script's explicit keep deferred. Then the actions join the
    /// plan, "the message" meaning `base` (the chain's edits so far).
    fn finish(
        mut self,
        plan: &mut Plan,
        mailboxes: &dyn Mailboxes,
        last: bool,
        base: Option<&Arc<Vec<u8>>>,
    ) -> Result<ScriptOutcome, ScriptError> {
        if self.reject.is_some()
            && (!self.stores.is_empty() || !self.outgoing.is_empty() || self.skipped_redirect)
        {
            return Err(ScriptError::Failed(
                "reject conflicts with keep, fileinto, redirect and vacation".into(),
            ));
        }
        let mut keep = match self.keep.take() {
            Some((flags, _)) => Some(valid_flags(flags, mailboxes)),
            None if self.skipped_redirect => Some(Vec::new()),
            None => None,
        };
        if !last {
            self.defer_explicit_keep(&mut keep);
        }
        let edited = self.edited.take();
        self.apply(plan, base);
        Ok(ScriptOutcome { keep, edited })
    }

    /// Pigeonhole defers an explicit keep of a script that is not the last
    /// one: it becomes the keep in effect, which the next script may still
    /// cancel. A `fileinto "INBOX"` is not a keep and is not deferred.
    fn defer_explicit_keep(&mut self, keep: &mut Option<Vec<String>>) {
        let (inbox, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.stores)
            .into_iter()
            .partition(|p| p.keep && p.store.message.is_none());
        if !inbox.is_empty() {
            let k = keep.get_or_insert_with(Vec::new);
            for f in inbox.into_iter().flat_map(|p| p.store.flags) {
                if !k.iter().any(|g| g.eq_ignore_ascii_case(&f)) {
                    k.push(f);
                }
            }
        }
        self.stores = rest;
    }

    fn apply(self, plan: &mut Plan, base: Option<&Arc<Vec<u8>>>) {
        plan.discarded |= self.discard;
        for Pending { mut store, .. } in self.stores {
            if store.message.is_none() {
                store.message = base.cloned();
            }
            plan.store(store);
        }
        if self.reject.is_some() {
            plan.reject = self.reject;
        }
        plan.outgoing.extend(self.outgoing.into_iter().map(|mut o| {
            if o.kind == OutKind::Redirect && o.message.is_none() {
                o.message = base.cloned();
            }
            o
        }));
        plan.remember.extend(self.remember);
    }
}

fn script_name(path: &Path) -> Script {
    Script::Personal(path.to_string_lossy().into_owned())
}

/// Include names: a file name in the script directory, never a path.
fn valid_script_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 255
        && !n.starts_with('.')
        && !n.contains(['/', '\0', '\\'])
        && !n.chars().any(char::is_control)
}

/// An Auto-Submitted header other than "no".
fn auto_submitted(message: &[u8]) -> bool {
    header_values(message, "auto-submitted").iter().any(|v| {
        !v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("no")
    })
}

/// Only flags the store can keep (Pigeonhole ignores the others).
fn valid_flags(flags: Vec<String>, mailboxes: &dyn Mailboxes) -> Vec<String> {
    flags
        .into_iter()
        .filter(|f| mailboxes.keeps_flag(f))
        .collect()
}

/// Addresses equal, ignoring case (local part too) and angle brackets.
fn addr_eq(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        s.trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned()
    };
    let (a, b) = (clean(a), clean(b));
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => {
            la.eq_ignore_ascii_case(lb) && da.eq_ignore_ascii_case(db)
        }
        _ => a.eq_ignore_ascii_case(&b),
    }
}

fn trace_line(e: &Event) -> String {
    match e {
        Event::CreatedMessage {
            message_id,
            message,
        } => {
            format!("created message {message_id} ({} bytes)", message.len())
        }
        other => format!("{other:?}"),
    }
}
