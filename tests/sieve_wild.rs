//! Sieve scripts from the wild against messages from the wild: every
//! script in `tests/sieve_wild/` (webmail and client filter editors, the
//! global scripts mail-server distributions ship, people's own filters,
//! providers' help pages, Pigeonhole's and sieve-rs's trees; each names its
//! source in a header comment) runs against every message in
//! `tests/sieve_wild/messages/` (or the subset its `.env` names), through
//! Pigeonhole's `dovecot-lda` and through a real `mailstow deliver`. Both
//! results are reduced to a [`Delivery`]: the normalised [`Outcome`] of
//! sieve_diff.rs plus what was sent (redirects, vacation replies,
//! notifications: recipients, envelope sender, From, Subject, In-Reply-To,
//! Auto-Submitted), captured by a sendmail stand-in on both sides. They must
//! be equal except for the pairs on [`ALLOWED`], and a listed pair must
//! still differ. Must not send mail (both sendmails only capture), edit a
//! script beyond what its header says, or hand-write what Pigeonhole does.
//!
//! Layout of `tests/sieve_wild/`:
//! - `NNN-name.sieve`, optional `NNN-name.env`: `role: before` runs the
//!   script as the admin before-script (`sieve_before` / `[sieve] before`)
//!   of a user without filters (`user/none.sieve`); `messages: 01, 07`
//!   limits it to those messages (by number); other keys as in
//!   sieve_diff.rs (`mailboxes`, `editheader`).
//! - `messages/NN-name.eml` with `NN-name.env` (`from:`, `to:`).
//! - `personal/`: the `include :personal` scripts.
//!
//! `SIEVE_WILD=NNN-name/NN-name cargo test --test tests show_sieve_wild --
//! --ignored --nocapture` prints everything both sides did for one pair.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::sieve_diff::{
    chown_tree, copy_scripts, mail_owner, make_maildir_folder, mutf7_encode, par_map, pigeonhole,
    read_maildir, system_hostname, toml_str, Captured, Input, Outcome, DEFAULT_FROM, DEFAULT_USER,
};
use crate::util::{passwd_line, temp_dir, PASSWORD};

/// Differences seen today, by script and message numbers, with the cause
/// as diagnosed. Every listed pair must still differ (remove it when it
/// matches); any difference not listed fails the test.
const ALLOWED: &[(&str, &[&str], &str)] = &[
    (
        "004-roundcube-notify",
        &["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "14", "16", "17", "18"],
        "deliberate (docs/sieve-compat.md, \"What Sieve sends\"): a notification without :from comes from the recipient (From and envelope sender, RFC 5436 2.7), Pigeonhole's from its postmaster address",
    ),
    (
        "054-sieve-rs-rfc5235",
        &["01", "04", "05", "06", "08", "09", "10", "12", "13", "14", "15", "16", "17", "18"],
        "deliberate (docs/sieve-compat.md, \"Decided differences\"): spamtest :count is 0 for a message the spam header does not score, as RFC 5235 3.2.2 has it and its example 3 relies on; Pigeonhole counts one value (\"0\") whether or not the message was scored",
    ),
];

fn wild_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sieve_wild")
}

// ---------------------------------------------------------------------------
// What was sent
// ---------------------------------------------------------------------------

/// One message handed to sendmail, reduced to what both implementations
/// can be held to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sent {
    /// `redirect` (the original message again: same Message-ID),
    /// `vacation` (Auto-Submitted: auto-replied), `notify`
    /// (auto-notified), or `other`.
    pub kind: String,
    /// Envelope recipients, lower case, sorted.
    pub rcpts: Vec<String>,
    /// Envelope sender (`-f`), `<>` for the null sender.
    pub env_from: String,
    /// The From header's address, lower case.
    pub from: String,
    /// The Subject, decoded.
    pub subject: String,
    /// In-Reply-To as written, whitespace folded.
    pub in_reply_to: String,
    /// The Auto-Submitted keyword (RFC 3834: comments and parameters
    /// dropped), lower case; empty when absent.
    pub auto_submitted: String,
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to [{}] env-from <{}> From <{}> Subject {:?} In-Reply-To {:?} Auto-Submitted {:?}",
            self.kind,
            self.rcpts.join(" "),
            self.env_from.trim_matches(|c| c == '<' || c == '>'),
            self.from,
            self.subject,
            self.in_reply_to,
            self.auto_submitted
        )
    }
}

/// The envelope sender of a sendmail command line (`-f X`, `-fX`, `-f
/// <>`); `<>` when null or missing.
fn envelope_sender(args: &str) -> String {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut from = None;
    for (i, w) in words.iter().enumerate() {
        if *w == "--" {
            break;
        }
        if *w == "-f" {
            from = words.get(i + 1).map(|s| s.to_string());
        } else if let Some(rest) = w.strip_prefix("-f") {
            from = Some(rest.to_owned());
        }
    }
    let bare = from
        .unwrap_or_default()
        .trim_matches(|c| c == '<' || c == '>' || c == '"' || c == '\'')
        .to_ascii_lowercase();
    if bare.is_empty() {
        "<>".to_owned()
    } else {
        bare
    }
}

fn header_text(m: &mail_parser::Message<'_>, name: &str) -> String {
    m.header_raw(name)
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a sendmail stand-in kept, reduced; reject bounces are left out
/// (the outcome's `reject` covers them: Pigeonhole sends its own, mailstow
/// has the MTA bounce).
fn sends(captured: &[Captured], original_msgid: &str) -> Vec<Sent> {
    let mut out = Vec::new();
    for c in captured {
        let Some(m) = mail_parser::MessageParser::default().parse(&c.bytes) else {
            out.push(Sent {
                kind: "unparsable".to_owned(),
                rcpts: c.recipients.clone(),
                env_from: envelope_sender(&c.args),
                from: String::new(),
                subject: String::new(),
                in_reply_to: String::new(),
                auto_submitted: String::new(),
            });
            continue;
        };
        let auto_raw = header_text(&m, "Auto-Submitted").to_ascii_lowercase();
        let auto = auto_raw
            .split(|c: char| c == '(' || c == ';' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_owned();
        let content_type = header_text(&m, "Content-Type").to_ascii_lowercase();
        let kind = if !original_msgid.is_empty() && m.message_id() == Some(original_msgid) {
            "redirect"
        } else if auto_raw.contains("rejected") || content_type.contains("disposition-notification")
        {
            continue;
        } else if auto == "auto-replied" {
            "vacation"
        } else if auto == "auto-notified" {
            "notify"
        } else {
            "other"
        };
        let mut rcpts: Vec<String> = c
            .recipients
            .iter()
            .map(|r| {
                r.trim_matches(|c| c == '<' || c == '>')
                    .to_ascii_lowercase()
            })
            .collect();
        rcpts.sort();
        out.push(Sent {
            kind: kind.to_owned(),
            rcpts,
            env_from: envelope_sender(&c.args),
            from: m
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or("")
                .to_ascii_lowercase(),
            subject: m.subject().unwrap_or("").to_owned(),
            in_reply_to: header_text(&m, "In-Reply-To"),
            auto_submitted: auto,
        });
    }
    out.sort();
    out
}

/// The normalised outcome of one delivery plus what it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    pub sends: Vec<Sent>,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        for s in &self.sends {
            write!(f, "\n      sent: {s}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The suite's inputs
// ---------------------------------------------------------------------------

/// One script of the suite and how it runs.
#[derive(Debug, Clone)]
struct WildScript {
    name: String,
    path: PathBuf,
    /// Runs as the admin before-script of a user without filters.
    before: bool,
    /// Message numbers (`01`, ...) it runs against; None: all.
    messages: Option<Vec<String>>,
    /// The rest of its `.env`, for [`Input::apply_env`].
    env: String,
}

fn scripts() -> Vec<WildScript> {
    let dir = wild_dir();
    crate::sieve_diff::case_names(&dir)
        .into_iter()
        .map(|name| {
            let env_path = dir.join(format!("{name}.env"));
            let text = fs::read_to_string(&env_path).unwrap_or_default();
            let mut s = WildScript {
                path: dir.join(format!("{name}.sieve")),
                name,
                before: false,
                messages: None,
                env: String::new(),
            };
            for line in text.lines() {
                match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("role", "before")) => s.before = true,
                    Some(("role", other)) => {
                        panic!("{}: unknown role {other:?}", env_path.display())
                    }
                    Some(("messages", v)) => {
                        s.messages = Some(
                            v.split(',')
                                .map(|m| m.trim().to_owned())
                                .filter(|m| !m.is_empty())
                                .collect(),
                        )
                    }
                    _ => {
                        s.env.push_str(line);
                        s.env.push('\n');
                    }
                }
            }
            s
        })
        .collect()
}

/// Every `NN-name.eml` of messages/, sorted, as (stem, path).
fn messages() -> Vec<(String, PathBuf)> {
    let dir = wild_dir().join("messages");
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "eml" {
                return None;
            }
            Some((p.file_stem()?.to_string_lossy().into_owned(), p))
        })
        .collect();
    out.sort();
    out
}

fn number(stem: &str) -> &str {
    stem.split('-').next().unwrap_or(stem)
}

/// The input for one (script, message) pair.
fn input(script: &WildScript, stem: &str, message: &Path) -> Input {
    let dir = wild_dir();
    let mut input = Input {
        name: format!("{}/{stem}", script.name),
        script: script.path.clone(),
        message: message.to_owned(),
        from: Some(DEFAULT_FROM.to_owned()),
        to: DEFAULT_USER.to_owned(),
        user: DEFAULT_USER.to_owned(),
        before: Vec::new(),
        user_editheader: false,
        mailboxes: Vec::new(),
        personal_dir: Some(dir.join("personal")),
        global_dir: None,
    };
    if script.before {
        input.before = vec![script.path.clone()];
        input.script = dir.join("user/none.sieve");
    }
    let script_env = dir.join(format!("{}.env", script.name));
    input.apply_env(&script_env, &script.env, &dir);
    let message_env = message.with_extension("env");
    if let Ok(text) = fs::read_to_string(&message_env) {
        input.apply_env(&message_env, &text, &dir);
    }
    input
}

/// Every pair the suite runs.
fn inputs() -> Vec<Input> {
    let messages = messages();
    let mut out = Vec::new();
    for s in scripts() {
        for (stem, path) in &messages {
            let wanted = s
                .messages
                .as_ref()
                .is_none_or(|m| m.iter().any(|n| n == number(stem)));
            if wanted {
                out.push(input(&s, stem, path));
            }
        }
    }
    out
}

fn message_id(path: &Path) -> String {
    let bytes = fs::read(path).expect("read message");
    mail_parser::MessageParser::default()
        .parse(&bytes)
        .and_then(|m| m.message_id().map(str::to_owned))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// mailstow: a real delivery
// ---------------------------------------------------------------------------

/// What a real `mailstow deliver` did: reduced, and its raw output.
struct MailstowRun {
    delivery: Result<Delivery, String>,
    raw: String,
    sent: Vec<Captured>,
}

/// Deliver `input` with `mailstow deliver` (pipe mode): a passwd-file
/// user, the script installed as the user's active script, the same
/// Sieve settings as the Pigeonhole run, `[outbound] sendmail` a capture
/// script. Reads back the user's Maildir and the captured messages.
fn mailstow_deliver(input: &Input) -> MailstowRun {
    let dir = temp_dir("mailstow-sieve-wild-");
    let d = dir.path();
    let owner = mail_owner();
    let mail_root = d.join("mail");
    let (local, domain) = input.user.rsplit_once('@').expect("user has @");
    let home = mail_root.join(domain).join(local);
    let maildir = home.join("Maildir");
    make_maildir_folder(&maildir, false);
    for mb in &input.mailboxes {
        make_maildir_folder(&maildir.join(format!(".{}", mutf7_encode(mb))), true);
    }
    fs::copy(&input.script, home.join(".dovecot.sieve")).expect("install the script");
    copy_scripts(input.personal_dir.as_deref(), &home.join("sieve"));
    chown_tree(&mail_root, owner);
    fs::create_dir_all(d.join("admin")).expect("mkdir admin");
    let mut before = Vec::new();
    for (i, b) in input.before.iter().enumerate() {
        let p = d.join("admin").join(format!(
            "{i}-{}",
            b.file_name().expect("name").to_string_lossy()
        ));
        fs::copy(b, &p).expect("copy admin script");
        before.push(toml_str(&p.to_string_lossy()));
    }
    copy_scripts(input.global_dir.as_deref(), &d.join("global"));
    let sent = d.join("sent");
    fs::create_dir_all(&sent).expect("mkdir sent");
    // Whoever mailstow runs its sendmail as may write here.
    fs::set_permissions(&sent, fs::Permissions::from_mode(0o1777)).expect("chmod sent");
    let capture = d.join("capture.sh");
    fs::write(
        &capture,
        format!(
            "#!/bin/sh\n# sendmail stand-in: keeps the message, sends nothing\n\
             {{ echo \"X-Capture-Args: $*\"; cat; }} > {}/$$.msg\n",
            sent.display()
        ),
    )
    .expect("write capture.sh");
    fs::set_permissions(&capture, fs::Permissions::from_mode(0o755)).expect("chmod");
    let users = d.join("users");
    fs::write(&users, passwd_line(&input.user, PASSWORD, owner)).expect("write users");
    fs::set_permissions(&users, fs::Permissions::from_mode(0o644)).expect("chmod users");
    let config = d.join("mailstow.toml");
    fs::write(
        &config,
        format!(
            "# mailstow for one wild Sieve pair (tests/sieve_wild.rs)\n\
             hostname = {host}\n\
             [storage]\nmail_root = {root}\n\
             [users]\npasswd_file = {users}\nrecipient_delimiter = \"+\"\n\
             [log]\nlevel = \"info\"\nformat = \"text\"\n\
             [sieve]\n\
             global_dir = {global}\n\
             before = [{before}]\n\
             user_editheader = {editheader}\n\
             autocreate = true\n\
             spam_header = \"X-Spam-Score\"\nspam_type = \"score\"\nspam_max = 10\n\
             virus_header = \"X-Virus-Score\"\nvirus_type = \"score\"\nvirus_max = 5\n\
             [outbound]\nsendmail = {capture}\n",
            host = toml_str(&system_hostname()),
            root = toml_str(&mail_root.to_string_lossy()),
            users = toml_str(&users.to_string_lossy()),
            global = toml_str(&d.join("global").to_string_lossy()),
            before = before.join(", "),
            editheader = input.user_editheader,
            capture = toml_str(&capture.to_string_lossy()),
        ),
    )
    .expect("write mailstow.toml");
    // -e: a reject is the exit code (77), which the outcome reads; the
    // rejection message dovecot-lda mails is not compared (see `Sent`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["deliver", "-e", "--config"])
        .arg(&config)
        .args(["-f", input.from.as_deref().unwrap_or("")])
        .args(["-d", &input.to])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mailstow deliver");
    let message = fs::read(&input.message).expect("read message");
    if let Some(mut stdin) = child.stdin.take() {
        // A refusing mailstow may close stdin early; the exit code says why.
        let _ = stdin.write_all(&message);
    }
    let out = child.wait_with_output().expect("wait for mailstow deliver");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = format!("exit {:?}\n{log}", out.status.code());
    let mut o = Outcome {
        compile_error: log.contains("does not compile"),
        error: log.contains("sieve script failed"),
        stores: read_maildir(&maildir),
        ..Outcome::default()
    };
    match out.status.code() {
        Some(0) => {}
        // EX_NOPERM: refused by the filter (reject/ereject).
        Some(77) => {
            // The last line: "mailstow: RCPT: rejected by filter: REASON".
            let reason = log
                .rsplit_once("rejected by filter: ")
                .map(|(_, r)| r.trim_end().to_owned())
                .unwrap_or_default();
            o.reject = Some(reason);
        }
        other => {
            return MailstowRun {
                delivery: Err(format!("exit status {other:?}")),
                raw,
                sent: crate::sieve_diff::captured(&sent),
            }
        }
    }
    let captured = crate::sieve_diff::captured(&sent);
    let sends = sends(&captured, &message_id(&input.message));
    for s in &sends {
        match s.kind.as_str() {
            "redirect" => o.redirects.extend(s.rcpts.iter().cloned()),
            "notify" => o.notify.extend(s.rcpts.iter().cloned()),
            _ => {}
        }
    }
    o.vacation = vacation_of(&sends);
    MailstowRun {
        delivery: Ok(Delivery {
            outcome: o.normalise(),
            sends,
        }),
        raw,
        sent: captured,
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// Pigeonhole's real delivery of `input`, with what it sent.
fn pigeonhole_delivery(input: &Input) -> (Delivery, String) {
    let ph = pigeonhole(input);
    let sends = sends(&ph.sent, &message_id(&input.message));
    // Vacation replies as told from the captured mail by Message-ID:
    // sieve_diff's reader takes any "auto-replied (vacation)" message for
    // a reply, also a redirected copy of someone else's auto-reply.
    let mut outcome = ph.outcome;
    outcome.vacation = vacation_of(&sends);
    (Delivery { outcome, sends }, ph.lda_log)
}

/// (recipient, subject) of each vacation reply among `sends`.
fn vacation_of(sends: &[Sent]) -> std::collections::BTreeSet<(String, String)> {
    sends
        .iter()
        .filter(|s| s.kind == "vacation")
        .map(|s| {
            (
                s.rcpts.first().cloned().unwrap_or_default(),
                s.subject.clone(),
            )
        })
        .collect()
}

fn allowed(name: &str) -> Option<&'static str> {
    let (script, message) = name.split_once('/')?;
    ALLOWED
        .iter()
        .find(|(s, msgs, _)| *s == script && msgs.contains(&number(message)))
        .map(|(_, _, why)| *why)
}

#[test]
fn sieve_wild_suite_is_complete() {
    let scripts = scripts();
    assert!(scripts.len() >= 30, "only {} scripts", scripts.len());
    for s in &scripts {
        let text = fs::read_to_string(&s.path).expect("read script");
        let head: String = text.lines().take(12).collect::<Vec<_>>().join("\n");
        assert!(
            head.contains("# Source:") && head.contains("# Adapted:"),
            "{}: the header must name its source and what was adapted",
            s.path.display()
        );
    }
    let messages = messages();
    assert!(messages.len() >= 15, "only {} messages", messages.len());
    for (stem, path) in &messages {
        assert!(
            !message_id(path).is_empty(),
            "{stem}: every message needs a Message-ID (redirects are told by it)"
        );
    }
    let names: Vec<String> = inputs().into_iter().map(|i| i.name).collect();
    for (script, msgs, _) in ALLOWED {
        for m in *msgs {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with(&format!("{script}/{m}-"))),
                "allow-list entry {script}/{m} names no pair of the suite"
            );
        }
    }
}

#[test]
fn sends_are_reduced_to_comparable_fields() {
    let reply = b"From: Alice <Alice@Example.org>\r\nTo: s@example.net\r\n\
        Subject: =?UTF-8?Q?Abwesend:_Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <r1@x>\r\n\
        In-Reply-To:\r\n <o1@example.net>\r\nAuto-Submitted: auto-replied (vacation)\r\n\r\nbye\r\n";
    let redirect = b"X-Sieve: yes\r\nMessage-ID: <o1@example.net>\r\nSubject: hi\r\n\r\nbody\r\n";
    let c = |args: &str, bytes: &[u8]| Captured {
        args: args.to_owned(),
        recipients: args
            .split_once(" -- ")
            .map(|(_, r)| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        bytes: bytes.to_vec(),
    };
    let s = sends(
        &[
            c("-i -f <> -- S@Example.net", reply),
            c("-i -f sender@example.net -- b@example.test", redirect),
        ],
        "o1@example.net",
    );
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].kind, "redirect");
    assert_eq!(s[0].env_from, "sender@example.net");
    assert_eq!(s[1].kind, "vacation");
    assert_eq!(s[1].rcpts, ["s@example.net"]);
    assert_eq!(s[1].env_from, "<>");
    assert_eq!(s[1].from, "alice@example.org");
    assert_eq!(s[1].subject, "Abwesend: Grüße");
    assert_eq!(s[1].in_reply_to, "<o1@example.net>");
    assert_eq!(s[1].auto_submitted, "auto-replied");
}

/// Every pair: Pigeonhole's delivery and mailstow's give the same
/// outcome and send the same, or the pair is on the allow-list (and then
/// it must still differ).
#[test]
fn sieve_wild_scripts_match_pigeonhole() {
    let all = inputs();
    let results = par_map(&all, |input| {
        let (ph, ph_log) = pigeonhole_delivery(input);
        let ms = mailstow_deliver(input);
        (ph, ph_log, ms)
    });
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for (input, (ph, ph_log, ms)) in all.iter().zip(&results) {
        let why = allowed(&input.name);
        match (&ms.delivery, why) {
            (Ok(d), None) if d == ph => {}
            (Ok(d), Some(why)) if d == ph => failures.push(format!(
                "{}: on the allow-list ({why}) but now matches Pigeonhole: remove it",
                input.name
            )),
            (_, Some(_)) => seen.push(input.name.clone()),
            (Ok(d), None) => failures.push(format!(
                "{}:\n  pigeonhole: {ph}\n  mailstow:   {d}\n  pigeonhole log: {}\n  mailstow raw: {}",
                input.name,
                ph_log.trim().replace('\n', "\n    "),
                ms.raw.trim().replace('\n', "\n    ")
            )),
            (Err(e), None) => failures.push(format!(
                "{}: mailstow gave no outcome ({e}):\n{}",
                input.name, ms.raw
            )),
        }
    }
    eprintln!(
        "{} pairs, {} known differences seen",
        results.len(),
        seen.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} wild pairs differ from Pigeonhole:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

/// Debugging aid: `SIEVE_WILD=NNN-name/NN-name cargo test --test tests
/// show_sieve_wild -- --ignored --nocapture`.
#[test]
#[ignore]
fn show_sieve_wild() {
    let name = std::env::var("SIEVE_WILD").expect("set SIEVE_WILD=NNN-script/NN-message");
    let input = inputs()
        .into_iter()
        .find(|i| i.name == name)
        .unwrap_or_else(|| panic!("no pair {name}"));
    let ph = pigeonhole(&input);
    let sends_ph = sends(&ph.sent, &message_id(&input.message));
    eprintln!("== dovecot-lda: {}\n{}", ph.outcome, ph.lda_log);
    show_sent(&ph.sent, &sends_ph);
    let ms = mailstow_deliver(&input);
    match &ms.delivery {
        Ok(d) => eprintln!("== mailstow deliver: {d}"),
        Err(e) => eprintln!("== mailstow deliver: no outcome: {e}"),
    }
    eprintln!("{}", ms.raw);
    show_sent(&ms.sent, &sends(&ms.sent, &message_id(&input.message)));
}

fn show_sent(captured: &[Captured], reduced: &[Sent]) {
    for s in reduced {
        eprintln!("-- reduced: {s}");
    }
    for c in captured {
        eprintln!(
            "-- sendmail {}\n{}",
            c.args,
            String::from_utf8_lossy(&c.bytes)
        );
    }
}
