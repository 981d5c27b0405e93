//! Differential Sieve conformance: every case in `tests/sieve_cases/` runs
//! through Pigeonhole and through `mailstow sieve test --json`, both results
//! are reduced to one normalised `Outcome` and must be equal, except for the
//! cases on the documented allow-list (docs/sieve-compat.md). Also the
//! shared machinery of `sieve_examples.rs`: the Pigeonhole runner, the
//! mailstow runner, the outcome and a small JSON reader/writer. Must not send
//! mail (Pigeonhole's sendmail is a capture script), touch the system Dovecot
//! configuration, or hand-write what Pigeonhole would do: the reference is
//! always computed live.
//!
//! The Pigeonhole reference is two runs on the same files and settings:
//! - `dovecot-lda` with the sieve plugin, as the user (vmail when root):
//!   the real delivery path of Dovecot's LDA/LMTP. What it stored is read
//!   back from its Maildir (folder, flags, keywords), what it sent from the
//!   capture script and its log (redirect, vacation, notify, reject). It is
//!   the reference because `sieve-test` cannot express some inputs (a null
//!   envelope sender) and only *plans* sends: its vacation line appears even
//!   for a mailing-list message that the real run never answers.
//! - `sieve-test` (plan mode, no `-e`): what the script asked for. Used for
//!   the cross-check notes printed at the end (where the plan and the real
//!   run of Pigeonhole itself disagree) and nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

use crate::peers::ensure_installed;
use crate::util::{temp_dir, vmail, Owner};

/// Where the cases live.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sieve_cases")
}

/// Documented differences (docs/sieve-compat.md), by case name. A case here
/// must differ; once it matches, the entry has to go.
pub const ALLOWED: &[(&str, &str)] = &[(
    "025-ereject",
    "mailstow implements RFC 5429 ereject, Pigeonhole 0.5.19 does not",
)];

pub const DEFAULT_FROM: &str = "sender@example.net";
pub const DEFAULT_USER: &str = "alice@example.org";

// ---------------------------------------------------------------------------
// The input of one run
// ---------------------------------------------------------------------------

/// Everything one run needs: script, message, envelope and the server-side
/// setup (admin scripts, include dirs, existing folders).
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub script: PathBuf,
    pub message: PathBuf,
    /// `None`: the null sender `<>`.
    pub from: Option<String>,
    /// Envelope recipient (RCPT TO), may carry a +detail.
    pub to: String,
    /// The user whose script runs.
    pub user: String,
    /// Admin scripts run before the user's (files, copied in).
    pub before: Vec<PathBuf>,
    /// editheader allowed in the user's script.
    pub user_editheader: bool,
    /// Folders that exist before delivery (for mailboxexists).
    pub mailboxes: Vec<String>,
    /// `include :personal` and `include :global` sources (every *.sieve).
    pub personal_dir: Option<PathBuf>,
    pub global_dir: Option<PathBuf>,
}

impl Input {
    /// Read `NAME.env` beside the script, if any: `key: value` lines with
    /// from (`<>` = null sender), to, user, before (file names under
    /// `admin/` of the cases dir, comma separated), editheader (`user`),
    /// mailboxes (comma separated). `#` starts a comment line.
    pub fn case(dir: &Path, name: &str) -> Input {
        let mut input = Input {
            name: name.to_owned(),
            script: dir.join(format!("{name}.sieve")),
            message: dir.join(format!("{name}.eml")),
            from: Some(DEFAULT_FROM.to_owned()),
            to: DEFAULT_USER.to_owned(),
            user: DEFAULT_USER.to_owned(),
            before: Vec::new(),
            user_editheader: false,
            mailboxes: Vec::new(),
            personal_dir: Some(dir.join("personal")),
            global_dir: Some(dir.join("global")),
        };
        let env = dir.join(format!("{name}.env"));
        if let Ok(text) = fs::read_to_string(&env) {
            input.apply_env(&env, &text, &dir.join("admin"));
        }
        assert!(input.script.is_file(), "{} missing", input.script.display());
        assert!(
            input.message.is_file(),
            "{} missing",
            input.message.display()
        );
        input
    }

    /// Apply one `.env` text (see [`Input::case`]); `before` names files
    /// in `admin_dir`. `file` is only for messages.
    pub fn apply_env(&mut self, file: &Path, text: &str, admin_dir: &Path) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{}: not `key: value`: {line:?}", file.display()));
            let v = v.trim();
            let list = || {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            match k.trim() {
                "from" => {
                    self.from = (v != "<>" && !v.is_empty())
                        .then(|| v.trim_matches(|c| c == '<' || c == '>').to_owned())
                }
                "to" => self.to = v.to_owned(),
                "user" => self.user = v.to_owned(),
                "before" => self.before = list().iter().map(|f| admin_dir.join(f)).collect(),
                "editheader" => self.user_editheader = v == "user",
                "mailboxes" => self.mailboxes = list(),
                other => panic!("{}: unknown key {other:?}", file.display()),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The normalised outcome
// ---------------------------------------------------------------------------

/// A set of IMAP flags, compared case-insensitively (RFC 3501 2.3.2; Dovecot
/// merges `$Foo` and `$foo`), shown as first written.
#[derive(Debug, Clone, Default)]
pub struct Flags(pub BTreeMap<String, String>);

impl Flags {
    pub fn from_names<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Flags {
        let mut map = BTreeMap::new();
        for n in names {
            let n = n.as_ref().trim();
            if !n.is_empty() {
                map.entry(n.to_ascii_lowercase())
                    .or_insert_with(|| canonical_flag(n));
            }
        }
        Flags(map)
    }
}

/// System flags in their RFC 3501 spelling, keywords as written.
fn canonical_flag(name: &str) -> String {
    const SYSTEM: &[&str] = &["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    SYSTEM
        .iter()
        .find(|s| s.eq_ignore_ascii_case(name))
        .map(|s| s.to_string())
        .unwrap_or_else(|| name.to_owned())
}

impl PartialEq for Flags {
    fn eq(&self, other: &Flags) -> bool {
        self.0.keys().eq(other.0.keys())
    }
}
impl Eq for Flags {}
impl PartialOrd for Flags {
    fn partial_cmp(&self, other: &Flags) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Flags {
    fn cmp(&self, other: &Flags) -> std::cmp::Ordering {
        self.0.keys().cmp(other.0.keys())
    }
}

/// What a Sieve run means for the message, in terms both implementations
/// can be held to.
///
/// - `stores`: one entry per copy stored (a folder twice means two copies),
///   `INBOX` in any case spelled `INBOX`; the implicit keep is a store.
/// - discard is not a field: it only cancels the implicit keep, which shows
///   as no store; [`Outcome::dropped`] says "went nowhere".
/// - `redirects`, `notify`: addresses mail was (or would be) sent to.
/// - `vacation`: the address each reply goes to and its subject, only when
///   a reply is really sent (Pigeonhole decides at execution time).
/// - `error`: a runtime error (the failed script's actions are dropped and
///   the implicit keep is done); `compile_error`: the script did not compile
///   (delivery then keeps into INBOX).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub compile_error: bool,
    pub error: bool,
    pub stores: Vec<(String, Flags)>,
    pub reject: Option<String>,
    pub redirects: BTreeSet<String>,
    pub vacation: BTreeSet<(String, String)>,
    pub notify: BTreeSet<String>,
}

/// `INBOX` in any case is the INBOX (RFC 3501 5.1).
pub fn folder_name(name: &str) -> String {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        name.to_owned()
    }
}

impl Outcome {
    /// The message is stored nowhere, not refused and not forwarded.
    pub fn dropped(&self) -> bool {
        self.stores.is_empty() && self.reject.is_none() && self.redirects.is_empty()
    }

    /// Without what only execution decides (whether a reply or notification
    /// is really sent) and the reject text (sieve-test's plan mangles line
    /// ends): what the plan and the execution can be compared on.
    pub fn script_level(&self) -> Outcome {
        Outcome {
            reject: self.reject.as_ref().map(|_| String::new()),
            vacation: BTreeSet::new(),
            notify: BTreeSet::new(),
            ..self.clone()
        }
    }

    /// Sort the stores; a compile error reduces to "kept in INBOX".
    pub fn normalise(mut self) -> Outcome {
        if self.compile_error {
            return Outcome {
                compile_error: true,
                stores: vec![("INBOX".to_owned(), Flags::default())],
                ..Outcome::default()
            };
        }
        for s in &mut self.stores {
            s.0 = folder_name(&s.0);
        }
        self.stores.sort();
        self.reject = self.reject.map(|r| r.trim().to_owned());
        self
    }

    /// The outcome as the `actions` of expected.json (the shape of
    /// `mailstow sieve test --json`, reduced).
    pub fn to_json(&self) -> json::Value {
        use json::Value as V;
        let obj = |pairs: Vec<(&str, V)>| {
            V::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        let s = |t: &str| V::String(t.to_owned());
        let mut actions = Vec::new();
        for (folder, flags) in &self.stores {
            actions.push(obj(vec![
                ("type", s("store")),
                ("folder", s(folder)),
                ("flags", V::Array(flags.0.values().map(|f| s(f)).collect())),
            ]));
        }
        if self.dropped() && !self.compile_error {
            actions.push(obj(vec![("type", s("discard"))]));
        }
        if let Some(r) = &self.reject {
            actions.push(obj(vec![("type", s("reject")), ("reason", s(r))]));
        }
        for r in &self.redirects {
            actions.push(obj(vec![("type", s("redirect")), ("to", s(r))]));
        }
        for (to, subject) in &self.vacation {
            actions.push(obj(vec![
                ("type", s("vacation")),
                ("to", s(to)),
                ("subject", s(subject)),
            ]));
        }
        for n in &self.notify {
            actions.push(obj(vec![
                ("type", s("notify")),
                ("method", s(&format!("mailto:{n}"))),
            ]));
        }
        let mut top = vec![("actions", V::Array(actions))];
        if self.compile_error {
            top.push(("compile_error", V::Bool(true)));
        }
        top.push(("error", V::Bool(self.error)));
        obj(top)
    }

    /// Read a `mailstow sieve test --json` object (or an expected.json,
    /// which has the same shape) into an outcome.
    pub fn from_json(v: &json::Value) -> Result<Outcome, String> {
        let mut o = Outcome {
            compile_error: v.get("compile_error").and_then(json::Value::as_bool) == Some(true),
            ..Outcome::default()
        };
        o.error = match v.get("errors") {
            Some(json::Value::Array(a)) => !a.is_empty(),
            _ => v.get("error").and_then(json::Value::as_bool) == Some(true),
        };
        let actions = v
            .get("actions")
            .and_then(json::Value::as_array)
            .ok_or("no \"actions\" array")?;
        for a in actions {
            let field = |k: &str| a.get(k).and_then(json::Value::as_str).unwrap_or("");
            match field("type") {
                "store" => {
                    let flags = a
                        .get("flags")
                        .and_then(json::Value::as_array)
                        .map(|f| f.iter().filter_map(json::Value::as_str).collect::<Vec<_>>())
                        .unwrap_or_default();
                    o.stores
                        .push((field("folder").to_owned(), Flags::from_names(flags)));
                }
                "discard" => {}
                "reject" => o.reject = Some(field("reason").to_owned()),
                "redirect" => {
                    o.redirects.insert(field("to").to_owned());
                }
                "vacation" => {
                    o.vacation
                        .insert((field("to").to_owned(), field("subject").to_owned()));
                }
                "notify" => {
                    let method = field("method");
                    let rcpts = mailto_recipients(method);
                    if rcpts.is_empty() {
                        o.notify.insert(method.to_owned());
                    }
                    o.notify.extend(rcpts);
                }
                other => return Err(format!("unknown action type {other:?} in {a}")),
            }
        }
        Ok(o.normalise())
    }
}

/// The recipients of a `mailto:` URI (RFC 6068): the path and `to=`
/// fields, percent-decoded.
pub fn mailto_recipients(uri: &str) -> Vec<String> {
    let Some(rest) = uri
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri[7..])
    else {
        return Vec::new();
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut out: Vec<String> = path
        .split(',')
        .map(percent_decode)
        .filter(|s| !s.is_empty())
        .collect();
    for field in query.split('&') {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("to") {
                out.extend(v.split(',').map(percent_decode).filter(|s| !s.is_empty()));
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).trim().to_owned()
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.compile_error {
            parts.push("COMPILE ERROR".to_owned());
        }
        if self.error {
            parts.push("RUNTIME ERROR".to_owned());
        }
        for (folder, flags) in &self.stores {
            if flags.0.is_empty() {
                parts.push(format!("store {folder:?}"));
            } else {
                let fl: Vec<&str> = flags.0.values().map(String::as_str).collect();
                parts.push(format!("store {folder:?} [{}]", fl.join(" ")));
            }
        }
        if self.dropped() && !self.compile_error {
            parts.push("discard".to_owned());
        }
        if let Some(r) = &self.reject {
            parts.push(format!("reject {r:?}"));
        }
        for r in &self.redirects {
            parts.push(format!("redirect <{r}>"));
        }
        for (to, subject) in &self.vacation {
            parts.push(format!("vacation <{to}> {subject:?}"));
        }
        for n in &self.notify {
            parts.push(format!("notify <{n}>"));
        }
        write!(f, "{}", parts.join("; "))
    }
}

// ---------------------------------------------------------------------------
// Pigeonhole
// ---------------------------------------------------------------------------

/// The uid/gid Pigeonhole runs as: vmail when we are root (Dovecot refuses
/// root), else ourselves.
pub fn mail_owner() -> Owner {
    if nix::unistd::geteuid().is_root() {
        vmail()
    } else {
        Owner {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }
}

pub fn chown_tree(path: &Path, owner: Owner) {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    nix::unistd::chown(path, Some(owner.uid.into()), Some(owner.gid.into()))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for e in fs::read_dir(path).expect("readdir") {
            chown_tree(&e.expect("readdir").path(), owner);
        }
    }
}

/// The system host name: Pigeonhole's `environment "host"` ignores the
/// `hostname` setting, so mailstow is given the same.
pub fn system_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Copy every `*.sieve` of `src` (if it exists) into a new `dst`.
pub fn copy_scripts(src: Option<&Path>, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir scripts dir");
    let Some(src) = src else { return };
    let Ok(entries) = fs::read_dir(src) else {
        return;
    };
    for e in entries {
        let p = e.expect("readdir").path();
        if p.extension().is_some_and(|x| x == "sieve") {
            fs::copy(&p, dst.join(p.file_name().expect("name"))).expect("copy script");
        }
    }
}

/// A Maildir++ folder directory (tmp, new, cur), `maildirfolder` unless root.
pub fn make_maildir_folder(dir: &Path, sub: bool) {
    for d in ["tmp", "new", "cur"] {
        fs::create_dir_all(dir.join(d)).expect("mkdir maildir");
    }
    if sub {
        fs::write(dir.join("maildirfolder"), b"").expect("maildirfolder");
    }
}

/// What Pigeonhole did with one input.
#[derive(Debug)]
pub struct Pigeonhole {
    /// The real delivery (dovecot-lda): the reference.
    pub outcome: Outcome,
    /// sieve-test's plan, reduced the same way (sends as planned).
    pub plan: Outcome,
    /// Raw output, for failure messages.
    pub lda_log: String,
    pub plan_text: String,
    /// What dovecot-lda handed to its sendmail (redirects, vacation
    /// replies, notifications, reject bounces), as captured.
    pub sent: Vec<Captured>,
}

/// The dovecot.conf both Pigeonhole tools read.
fn dovecot_conf(d: &Path, input: &Input, before: &[PathBuf], owner: Owner) -> String {
    let mut before_lines = String::new();
    for (i, b) in before.iter().enumerate() {
        let key = if i == 0 {
            "sieve_before".to_owned()
        } else {
            format!("sieve_before{}", i + 1)
        };
        before_lines.push_str(&format!("  {key} = {}\n", b.display()));
    }
    // An extension in sieve_global_extensions is refused to personal
    // scripts even when sieve_extensions lists it too.
    let (user_ext, global_ext) = if input.user_editheader {
        (" +editheader", "")
    } else {
        ("", "+editheader")
    };
    format!(
        "# Pigeonhole for one Sieve case (tests/sieve_diff.rs).\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = /dev/stderr\n\
         info_log_path = /dev/stderr\n\
         mail_uid = {uid}\n\
         mail_gid = {gid}\n\
         first_valid_uid = 1\n\
         first_valid_gid = 1\n\
         mail_location = maildir:{d}/home/Maildir\n\
         namespace inbox {{\n  inbox = yes\n  separator = .\n}}\n\
         recipient_delimiter = +\n\
         hostname = mx.test\n\
         postmaster_address = postmaster@example.org\n\
         sendmail_path = {d}/capture.sh\n\
         lda_mailbox_autocreate = yes\n\
         protocol lda {{\n  mail_plugins = sieve\n}}\n\
         plugin {{\n\
         \x20 sieve = file:{d}/personal;active={d}/home/.dovecot.sieve\n\
         \x20 sieve_global = {d}/global\n\
         {before_lines}\
         \x20 sieve_extensions = +vacation-seconds +spamtest +spamtestplus +virustest +special-use{user_ext}\n\
         \x20 sieve_global_extensions = {global_ext}\n\
         \x20 sieve_spamtest_status_type = score\n\
         \x20 sieve_spamtest_status_header = X-Spam-Score\n\
         \x20 sieve_spamtest_max_value = 10\n\
         \x20 sieve_virustest_status_type = score\n\
         \x20 sieve_virustest_status_header = X-Virus-Score\n\
         \x20 sieve_virustest_max_value = 5\n\
         }}\n",
        d = d.display(),
        uid = owner.uid,
        gid = owner.gid,
    )
}

/// Run `input` through Pigeonhole: dovecot-lda (executes) and sieve-test
/// (plans), each on a fresh copy of the same files.
pub fn pigeonhole(input: &Input) -> Pigeonhole {
    ensure_installed();
    let owner = mail_owner();
    let dir: TempDir = temp_dir("mailstow-sieve-pigeonhole-");
    let d = dir.path();
    fs::write(
        d.join("msg.eml"),
        fs::read(&input.message).expect("read message"),
    )
    .expect("write message");
    for sub in ["run", "state", "sent", "home", "admin"] {
        fs::create_dir_all(d.join(sub)).expect("mkdir");
    }
    copy_scripts(input.personal_dir.as_deref(), &d.join("personal"));
    copy_scripts(input.global_dir.as_deref(), &d.join("global"));
    let mut before = Vec::new();
    for (i, b) in input.before.iter().enumerate() {
        let p = d.join("admin").join(format!(
            "{i}-{}",
            b.file_name().expect("name").to_string_lossy()
        ));
        fs::copy(b, &p).unwrap_or_else(|e| panic!("copy {}: {e}", b.display()));
        before.push(p);
    }
    fs::copy(&input.script, d.join("home/.dovecot.sieve")).expect("copy script");
    let maildir = d.join("home/Maildir");
    make_maildir_folder(&maildir, false);
    for mb in &input.mailboxes {
        make_maildir_folder(&maildir.join(format!(".{}", mutf7_encode(mb))), true);
    }
    let capture = d.join("capture.sh");
    fs::write(
        &capture,
        format!(
            "#!/bin/sh\n# sendmail stand-in: keeps the message, sends nothing\n\
             {{ echo \"X-Capture-Args: $*\"; cat; }} > {}/sent/$$.msg\n",
            d.display()
        ),
    )
    .expect("write capture.sh");
    fs::set_permissions(&capture, fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = d.join("dovecot.conf");
    fs::write(&conf, dovecot_conf(d, input, &before, owner)).expect("write dovecot.conf");
    for p in [
        "run", "state", "sent", "home", "admin", "personal", "global", "msg.eml",
    ] {
        chown_tree(&d.join(p), owner);
    }

    // The LDA first, on its own copy: a binary that sieve-test saved (it
    // lets the main script use sieve_global_extensions) makes the LDA
    // "re-compile a corrupt binary", fail, and panic in 0.5.19.
    let lda_out = dovecot_lda(d, input, owner);
    let lda_log = format!(
        "{}{}",
        String::from_utf8_lossy(&lda_out.stdout),
        String::from_utf8_lossy(&lda_out.stderr)
    );
    assert!(
        !lda_log.contains("Panic:") && !lda_log.contains("Fatal:"),
        "{}: dovecot-lda crashed:\n{lda_log}",
        input.name
    );

    let plan_dir = d.join("plan");
    fs::create_dir_all(&plan_dir).expect("mkdir plan");
    fs::copy(&input.script, plan_dir.join("script.sieve")).expect("copy script");
    chown_tree(&plan_dir, owner);
    let plan_out = sieve_test(d, input, &before);
    let plan_text = format!(
        "{}{}",
        String::from_utf8_lossy(&plan_out.stdout),
        String::from_utf8_lossy(&plan_out.stderr)
    );
    let plan = parse_plan(&plan_text, plan_out.status.code());
    let mut outcome = read_delivery(d, &lda_log);
    if outcome.reject.as_deref() == Some("") {
        // Rejected without a bounce (null sender): the reason is the plan's.
        outcome.reject = plan.reject.clone().or(Some(String::new()));
    }
    Pigeonhole {
        outcome,
        plan,
        lda_log,
        plan_text,
        sent: captured(&d.join("sent")),
    }
}

fn sieve_test(d: &Path, input: &Input, before: &[PathBuf]) -> Output {
    let mut cmd = Command::new("sieve-test");
    // No -C: with -C, sieve-test 0.5.19 fails to open every -s script
    // ("failed to open script: internal error"). The directory is new, so
    // no stale binary can be reused.
    cmd.arg("-c").arg(d.join("dovecot.conf"));
    for b in before {
        cmd.arg("-s").arg(b);
    }
    // sieve-test cannot express the null sender (-f "" is refused and a
    // Return-Path: <> falls back to From:); the plan then uses From:.
    if let Some(f) = &input.from {
        cmd.args(["-f", f]);
    }
    cmd.args(["-a", &input.to, "-r", &input.to]);
    cmd.arg(d.join("plan/script.sieve")).arg(d.join("msg.eml"));
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("USER", "root")
        .stdin(Stdio::null())
        .output()
        .expect("run sieve-test (dovecot-sieve installed?)")
}

fn dovecot_lda(d: &Path, input: &Input, owner: Owner) -> Output {
    let lda = "/usr/lib/dovecot/dovecot-lda";
    let mut cmd = if nix::unistd::geteuid().is_root() {
        let mut c = Command::new("setpriv");
        c.arg(format!("--reuid={}", owner.uid))
            .arg(format!("--regid={}", owner.gid))
            .arg("--clear-groups")
            .arg(lda);
        c
    } else {
        Command::new(lda)
    };
    cmd.arg("-c").arg(d.join("dovecot.conf"));
    cmd.args(["-f", input.from.as_deref().unwrap_or("")]);
    cmd.args(["-a", &input.to, "-r", &input.to]);
    cmd.arg("-p").arg(d.join("msg.eml"));
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", d.join("home"))
        .env("USER", &input.user)
        .stdin(Stdio::null())
        .output()
        .expect("run dovecot-lda")
}

/// The rest of `line` after `marker`, trimmed.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| line[i + marker.len()..].trim())
}

fn angle(s: &str) -> String {
    s.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Reduce what dovecot-lda did: its log, its Maildir, its captured mail.
fn read_delivery(d: &Path, log: &str) -> Outcome {
    let mut o = Outcome::default();
    for line in log.lines() {
        if line.contains("Failed to compile script") {
            o.compile_error = true;
        } else if line.contains("Execution of script") && line.contains("failed") {
            o.error = true;
        } else if let Some(r) = after(line, "redirect action: forwarded to ") {
            o.redirects.insert(angle(r));
        } else if let Some(r) = after(line, "notify action: sent mail notification to ") {
            o.notify.insert(angle(r));
        }
    }
    o.stores = read_maildir(&d.join("home/Maildir"));
    for msg in captured(&d.join("sent")) {
        let parsed = mail_parser::MessageParser::default().parse(&msg.bytes);
        let Some(m) = parsed else { continue };
        let auto = m
            .header_raw("Auto-Submitted")
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if auto.starts_with("auto-replied (vacation)") {
            let to = msg.recipients.first().cloned().unwrap_or_default();
            o.vacation
                .insert((to, m.subject().unwrap_or("").to_owned()));
        } else if auto.starts_with("auto-replied (rejected)") {
            let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
            let reason = text
                .split_once("automatically rejected:")
                .map(|(_, r)| r.trim().to_owned())
                .unwrap_or(text);
            o.reject = Some(reason.replace("\r\n", "\n"));
        }
    }
    // A reject with nothing to bounce to (null sender) sends no bounce:
    // "reject action: not sending reject message to <>".
    if o.reject.is_none() && log.contains("reject action: ") {
        o.reject = Some(String::new());
    }
    o.normalise()
}

/// One message a sendmail stand-in kept: its command line (`-f SENDER
/// -- RCPT...`), the recipients after `--`, and the message.
#[derive(Debug, Clone)]
pub struct Captured {
    pub args: String,
    pub recipients: Vec<String>,
    pub bytes: Vec<u8>,
}

/// Messages the capture script kept: the argument line, then the message.
pub fn captured(dir: &Path) -> Vec<Captured> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.expect("readdir").path()).collect();
    paths.sort();
    for p in paths {
        let bytes = fs::read(&p).expect("read captured");
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let args = String::from_utf8_lossy(&bytes[..nl]).into_owned();
        let recipients = args
            .split_once(" -- ")
            .map(|(_, r)| r.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        out.push(Captured {
            args: args.trim_start_matches("X-Capture-Args:").trim().to_owned(),
            recipients,
            bytes: bytes[(nl + 1).min(bytes.len())..].to_vec(),
        });
    }
    out
}

/// Every message in a Dovecot Maildir++: (folder, flags), one per file.
pub fn read_maildir(root: &Path) -> Vec<(String, Flags)> {
    let mut out = Vec::new();
    let mut folders = vec![("INBOX".to_owned(), root.to_owned())];
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries {
            let e = e.expect("readdir");
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && name.starts_with('.') && name != "." && name != ".." {
                folders.push((mutf7_decode(&name[1..]), e.path()));
            }
        }
    }
    for (folder, dir) in folders {
        let keywords: BTreeMap<char, String> = fs::read_to_string(dir.join("dovecot-keywords"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (n, k) = l.split_once(' ')?;
                let n: u8 = n.parse().ok()?;
                Some(((b'a' + n) as char, k.to_owned()))
            })
            .collect();
        for sub in ["new", "cur"] {
            let Ok(files) = fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for f in files {
                let name = f
                    .expect("readdir")
                    .file_name()
                    .to_string_lossy()
                    .into_owned();
                let letters = name.split_once(":2,").map(|(_, l)| l).unwrap_or("");
                let flags = letters.chars().filter_map(|c| match c {
                    'S' => Some("\\Seen".to_owned()),
                    'F' => Some("\\Flagged".to_owned()),
                    'R' => Some("\\Answered".to_owned()),
                    'D' => Some("\\Draft".to_owned()),
                    'T' => Some("\\Deleted".to_owned()),
                    c if c.is_ascii_lowercase() => {
                        Some(keywords.get(&c).cloned().unwrap_or_else(|| format!("?{c}")))
                    }
                    _ => None,
                });
                out.push((folder.clone(), Flags::from_names(flags)));
            }
        }
    }
    out
}

/// Reduce sieve-test's plan (stdout + stderr) the same way; `status` is
/// its exit code (89 = did not compile, 1 = failed at run time).
pub fn parse_plan(text: &str, status: Option<i32>) -> Outcome {
    let mut o = Outcome::default();
    if text.contains("failed to compile sieve script") || status == Some(89) {
        o.compile_error = true;
        return o.normalise();
    }
    if text.contains("final result: failed") {
        o.error = true;
        o.stores.push(("INBOX".to_owned(), Flags::default()));
        return o.normalise();
    }
    // A store line may be followed by "+ add IMAP flags: a b". With admin
    // scripts the plan has one section per script ("## Executing script");
    // "* keep" there is the keep deferred to the next script, which only
    // the last section turns into a store.
    let sections = text.matches("## Executing script:").count();
    let mut section = 0;
    let mut last_store: Option<usize> = None;
    // A vacation line, until its subject (or handle, when none) is read.
    let mut vacation_subject: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("## Executing script:") {
            section += 1;
            continue;
        }
        if t == "* keep" && section < sections {
            last_store = None;
            continue;
        }
        if let Some(f) = t.strip_prefix("* store message in folder: ") {
            o.stores.push((f.to_owned(), Flags::default()));
            last_store = Some(o.stores.len() - 1);
        } else if t == "* keep" {
            o.stores.push(("INBOX".to_owned(), Flags::default()));
            last_store = Some(o.stores.len() - 1);
        } else if let Some(fl) = t.strip_prefix("+ add IMAP flags: ") {
            if let Some(i) = last_store {
                o.stores[i].1 = Flags::from_names(fl.split_whitespace());
            }
        } else if t.starts_with('*') {
            last_store = None;
            if let Some(r) = t.strip_prefix("* redirect message to: ") {
                o.redirects.insert(angle(r));
            } else if let Some(r) = t.strip_prefix("* reject message with reason: ") {
                o.reject = Some(r.to_owned());
            } else if t.starts_with("* send vacation message") {
                vacation_subject = Some(String::new());
            }
        } else if let Some(r) = t.strip_prefix("+ To: ") {
            o.notify.insert(r.to_owned());
        } else if let Some(s) = t.strip_prefix("=> subject : ") {
            if let Some(v) = vacation_subject.take() {
                o.vacation
                    .insert(("?".to_owned(), if v.is_empty() { s.to_owned() } else { v }));
            }
        } else if t.starts_with("=> handle") {
            if let Some(v) = vacation_subject.take() {
                o.vacation.insert(("?".to_owned(), v));
            }
        }
    }
    o.normalise()
}

/// Modified UTF-7 (RFC 3501 5.1.3) of a folder name, for directory names.
pub fn mutf7_encode(name: &str) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        for chunk in bytes.chunks(3) {
            let n = chunk.len();
            let v = (chunk[0] as u32) << 16
                | (*chunk.get(1).unwrap_or(&0) as u32) << 8
                | *chunk.get(2).unwrap_or(&0) as u32;
            let digits = [18, 12, 6, 0].map(|s| B64[((v >> s) & 63) as usize] as char);
            out.extend(&digits[..n + 1]);
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// The inverse of [`mutf7_encode`]; undecodable input is returned as is.
pub fn mutf7_decode(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let Some(end) = tail.find('-') else {
            return s.to_owned();
        };
        let b64 = &tail[..end];
        if b64.is_empty() {
            out.push('&');
        } else {
            let mut bits = 0u32;
            let mut nbits = 0;
            let mut units = Vec::new();
            let mut bytes = Vec::new();
            for c in b64.bytes() {
                let v = match c {
                    b'A'..=b'Z' => c - b'A',
                    b'a'..=b'z' => c - b'a' + 26,
                    b'0'..=b'9' => c - b'0' + 52,
                    b'+' => 62,
                    b',' => 63,
                    _ => return s.to_owned(),
                } as u32;
                bits = (bits << 6) | v;
                nbits += 6;
                if nbits >= 8 {
                    nbits -= 8;
                    bytes.push((bits >> nbits) as u8);
                    bits &= (1 << nbits) - 1;
                }
            }
            for pair in bytes.chunks(2) {
                if pair.len() == 2 {
                    units.push(u16::from_be_bytes([pair[0], pair[1]]));
                }
            }
            out.push_str(&String::from_utf16_lossy(&units));
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// mailstow
// ---------------------------------------------------------------------------

/// Whether this build has `mailstow sieve test` (answered once).
pub fn mailstow_has_sieve_test() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .args(["sieve", "test", "--help"])
            .stdin(Stdio::null())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Until `mailstow sieve test` exists: `SIEVE_DIFF_PIGEONHOLE_ONLY=1` lets
/// the tests check Pigeonhole against the data alone. Without it a missing
/// command is a failure.
pub fn require_mailstow() -> bool {
    if mailstow_has_sieve_test() {
        return true;
    }
    assert!(
        std::env::var_os("SIEVE_DIFF_PIGEONHOLE_ONLY").is_some(),
        "`mailstow sieve test` is missing from this build \
         (set SIEVE_DIFF_PIGEONHOLE_ONLY=1 to check the Pigeonhole side alone)"
    );
    eprintln!("note: `mailstow sieve test` missing: Pigeonhole side only");
    false
}

/// What `mailstow sieve test --json` said, raw and reduced.
#[derive(Debug)]
pub struct Mailstow {
    pub outcome: Result<Outcome, String>,
    pub raw: String,
}

/// Run `input` through `mailstow sieve test --json` with a config that
/// matches the Pigeonhole one (spam/virus headers, admin scripts, include
/// dirs, editheader).
pub fn mailstow(input: &Input) -> Mailstow {
    let dir: TempDir = temp_dir("mailstow-sieve-test-");
    let d = dir.path();
    let owner = mail_owner();
    let mail_root = d.join("mail");
    let (local, domain) = input.user.rsplit_once('@').expect("user has @");
    let maildir = mail_root.join(domain).join(local).join("Maildir");
    make_maildir_folder(&maildir, false);
    for mb in &input.mailboxes {
        make_maildir_folder(&maildir.join(format!(".{}", mutf7_encode(mb))), true);
    }
    chown_tree(&mail_root, owner);
    copy_scripts(input.personal_dir.as_deref(), &d.join("personal"));
    copy_scripts(input.global_dir.as_deref(), &d.join("global"));
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
    // `sieve test` resolves `include :personal` beside SCRIPT, so the
    // script runs from the personal dir, as the active script would.
    let script = d
        .join("personal")
        .join(format!("{}.sieve", input.name.replace('/', "-")));
    fs::copy(&input.script, &script).expect("copy script");
    let users = d.join("users");
    let mut passwd = crate::util::passwd_line(&input.user, crate::util::PASSWORD, owner);
    if !input.user.eq_ignore_ascii_case(DEFAULT_USER) {
        passwd.push_str(&crate::util::passwd_line(
            DEFAULT_USER,
            crate::util::PASSWORD,
            owner,
        ));
    }
    fs::write(&users, passwd).expect("write users");
    let config = d.join("mailstow.toml");
    fs::write(
        &config,
        format!(
            "# mailstow for one Sieve case (tests/sieve_diff.rs)\n\
             hostname = {host}\n\
             [storage]\nmail_root = {root}\n\
             [users]\npasswd_file = {users}\nrecipient_delimiter = \"+\"\n\
             [log]\nlevel = \"warn\"\n\
             [sieve]\n\
             user_dir = {personal}\n\
             global_dir = {global}\n\
             before = [{before}]\n\
             user_editheader = {editheader}\n\
             spam_header = \"X-Spam-Score\"\nspam_type = \"score\"\nspam_max = 10\n\
             virus_header = \"X-Virus-Score\"\nvirus_type = \"score\"\nvirus_max = 5\n",
            host = toml_str(&system_hostname()),
            root = toml_str(&mail_root.to_string_lossy()),
            users = toml_str(&users.to_string_lossy()),
            personal = toml_str(&d.join("personal").to_string_lossy()),
            global = toml_str(&d.join("global").to_string_lossy()),
            before = before.join(", "),
            editheader = input.user_editheader,
        ),
    )
    .expect("write mailstow.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["sieve", "test", "--config"])
        .arg(&config)
        .args(["--user", &input.user])
        .args(["-f", input.from.as_deref().unwrap_or("")])
        // dovecot-lda, the reference, adds no header fields before the
        // script runs (Dovecot's LMTP does, and so does mailstow's delivery).
        .args(["-t", &input.to, "--json", "--no-delivery-headers"])
        .arg(&script)
        .arg(&input.message)
        .stdin(Stdio::null())
        .output()
        .expect("run mailstow sieve test");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let raw = format!(
        "exit {:?}\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome = match out.status.code() {
        Some(1) => Ok(Outcome {
            compile_error: true,
            ..Outcome::default()
        }
        .normalise()),
        Some(0) => json::parse(stdout.trim())
            .map_err(|e| format!("not JSON ({e})"))
            .and_then(|v| Outcome::from_json(&v)),
        other => Err(format!("exit status {other:?}")),
    };
    Mailstow { outcome, raw }
}

pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

// ---------------------------------------------------------------------------
// A small JSON reader and writer (no serde_json among the dependencies)
// ---------------------------------------------------------------------------

pub mod json {
    use std::fmt;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        /// Keys in the order written.
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(o) => o.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }
        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }
        pub fn as_bool(&self) -> Option<bool> {
            match self {
                Value::Bool(b) => Some(*b),
                _ => None,
            }
        }
        pub fn as_array(&self) -> Option<&Vec<Value>> {
            match self {
                Value::Array(a) => Some(a),
                _ => None,
            }
        }

        /// Pretty form: one action per line, as in the examples.
        pub fn pretty(&self) -> String {
            let mut s = String::new();
            self.write(&mut s, 0);
            s.push('\n');
            s
        }

        fn write(&self, out: &mut String, indent: usize) {
            match self {
                Value::Array(a)
                    if !a.is_empty() && a.iter().any(|v| matches!(v, Value::Object(_))) =>
                {
                    out.push_str("[\n");
                    for (i, v) in a.iter().enumerate() {
                        out.push_str(&" ".repeat(indent + 2));
                        out.push_str(&v.to_string());
                        out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
                    }
                    out.push_str(&" ".repeat(indent));
                    out.push(']');
                }
                Value::Object(o) if indent == 0 => {
                    out.push_str("{\n");
                    for (i, (k, v)) in o.iter().enumerate() {
                        out.push_str(&format!("  {}: ", Value::String(k.clone())));
                        v.write(out, indent + 2);
                        out.push_str(if i + 1 < o.len() { ",\n" } else { "\n" });
                    }
                    out.push('}');
                }
                v => out.push_str(&v.to_string()),
            }
        }
    }

    impl fmt::Display for Value {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Value::Null => write!(f, "null"),
                Value::Bool(b) => write!(f, "{b}"),
                Value::Number(n) => write!(f, "{n}"),
                Value::String(s) => {
                    write!(f, "\"")?;
                    for c in s.chars() {
                        match c {
                            '"' => write!(f, "\\\"")?,
                            '\\' => write!(f, "\\\\")?,
                            '\n' => write!(f, "\\n")?,
                            '\r' => write!(f, "\\r")?,
                            '\t' => write!(f, "\\t")?,
                            c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                            c => write!(f, "{c}")?,
                        }
                    }
                    write!(f, "\"")
                }
                Value::Array(a) => {
                    write!(f, "[")?;
                    for (i, v) in a.iter().enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{v}")?;
                    }
                    write!(f, "]")
                }
                Value::Object(o) => {
                    write!(f, "{{")?;
                    for (i, (k, v)) in o.iter().enumerate() {
                        if i > 0 {
                            write!(f, ", ")?;
                        }
                        write!(f, "{}: {v}", Value::String(k.clone()))?;
                    }
                    write!(f, "}}")
                }
            }
        }
    }

    /// Parse one JSON text (RFC 8259); trailing whitespace only.
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at byte {}", c as char, self.i))
            }
        }
        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > 64 {
                return Err("nested too deep".into());
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b'{') => {
                    self.i += 1;
                    let mut o = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(o));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        let v = self.value(depth + 1)?;
                        o.push((k, v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(o));
                            }
                            _ => return Err(format!("expected , or }} at byte {}", self.i)),
                        }
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    let mut a = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(a));
                    }
                    loop {
                        a.push(self.value(depth + 1)?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(a));
                            }
                            _ => return Err(format!("expected , or ] at byte {}", self.i)),
                        }
                    }
                }
                Some(b'"') => self.string().map(Value::String),
                Some(b't') if self.s[self.i..].starts_with(b"true") => {
                    self.i += 4;
                    Ok(Value::Bool(true))
                }
                Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                    self.i += 5;
                    Ok(Value::Bool(false))
                }
                Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                    self.i += 4;
                    Ok(Value::Null)
                }
                Some(c) if *c == b'-' || c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len()
                        && matches!(
                            self.s[self.i],
                            b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                        )
                    {
                        self.i += 1;
                    }
                    std::str::from_utf8(&self.s[start..self.i])
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .map(Value::Number)
                        .ok_or_else(|| format!("bad number at byte {start}"))
                }
                _ => Err(format!("unexpected input at byte {}", self.i)),
            }
        }
        fn hex4(&mut self) -> Result<u32, String> {
            let h = self
                .s
                .get(self.i..self.i + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad \\u escape at byte {}", self.i))?;
            self.i += 4;
            Ok(h)
        }
        fn string(&mut self) -> Result<String, String> {
            self.eat(b'"')?;
            let mut out = Vec::new();
            loop {
                let Some(&c) = self.s.get(self.i) else {
                    return Err("unterminated string".into());
                };
                self.i += 1;
                match c {
                    b'"' => break,
                    b'\\' => {
                        let Some(&e) = self.s.get(self.i) else {
                            return Err("unterminated escape".into());
                        };
                        self.i += 1;
                        let ch = match e {
                            b'"' => '"',
                            b'\\' => '\\',
                            b'/' => '/',
                            b'b' => '\u{8}',
                            b'f' => '\u{c}',
                            b'n' => '\n',
                            b'r' => '\r',
                            b't' => '\t',
                            b'u' => {
                                let hi = self.hex4()?;
                                let cp = if (0xd800..0xdc00).contains(&hi)
                                    && self.s[self.i..].starts_with(b"\\u")
                                {
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    0x10000
                                        + ((hi - 0xd800) << 10)
                                        + (lo.wrapping_sub(0xdc00) & 0x3ff)
                                } else {
                                    hi
                                };
                                char::from_u32(cp).unwrap_or('\u{fffd}')
                            }
                            _ => return Err(format!("bad escape at byte {}", self.i)),
                        };
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    c => out.push(c),
                }
            }
            String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
        }
    }
}

// ---------------------------------------------------------------------------
// Running many inputs
// ---------------------------------------------------------------------------

/// Run `f` over `items` on a few threads, results in input order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(4)
        .clamp(1, 8);
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// The case names in `dir`: every `NNN-name.sieve`, sorted.
pub fn case_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "sieve" || !p.is_file() {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn run_case(name: &str) -> Pigeonhole {
        pigeonhole(&Input::case(&cases_dir(), name))
    }

    #[test]
    fn mutf7_round_trips_folder_names() {
        for (name, enc) in [
            ("Lists.Rust", "Lists.Rust"),
            ("Überweisungen", "&ANw-berweisungen"),
            ("A&B", "A&-B"),
            ("日本語", "&ZeVnLIqe-"),
        ] {
            assert_eq!(mutf7_encode(name), enc, "{name}");
            assert_eq!(mutf7_decode(enc), name, "{enc}");
        }
    }

    #[test]
    fn json_reader_reads_the_contract_shape() {
        let v = json::parse(
            r#"{"actions":[{"type":"store","folder":"INBOX","flags":["\\Seen","$Important"],"implicit":false},
               {"type":"notify","method":"mailto:x@example.org?subject=a%20b"},
               {"type":"vacation","to":"s@example.net","subject":"Gr\u00fc\u00dfe \ud83d\ude00"}],"errors":[]}"#,
        )
        .expect("parse");
        let o = Outcome::from_json(&v).expect("outcome");
        assert_eq!(o.stores.len(), 1);
        assert_eq!(o.stores[0].1, Flags::from_names(["\\seen", "$important"]));
        assert_eq!(o.notify, BTreeSet::from(["x@example.org".to_owned()]));
        assert_eq!(
            o.vacation.iter().map(|v| v.1.as_str()).collect::<Vec<_>>(),
            ["Grüße 😀"]
        );
        assert!(!o.error);
        let back = json::parse(&o.to_json().pretty()).expect("reparse");
        assert_eq!(Outcome::from_json(&back).expect("outcome"), o);
    }

    /// The harness itself: Pigeonhole's behaviour on the SIEVE-HOST traps
    /// is what docs/sieve-compat.md says (if this fails, the reference
    /// runner is broken, not mailstow).
    #[test]
    fn pigeonhole_reference_behaves_as_documented() {
        let inbox = |flags: &[&str]| ("INBOX".to_owned(), Flags::from_names(flags));
        let folder = |f: &str| (f.to_owned(), Flags::default());

        let p = run_case("060-trap-keep-then-fileinto");
        assert_eq!(
            p.outcome.stores,
            vec![inbox(&[]), folder("X")],
            "{}",
            p.lda_log
        );

        let p = run_case("061-trap-fileinto-inbox-and-keep");
        assert_eq!(p.outcome.stores, vec![inbox(&[])], "{}", p.lda_log);

        let p = run_case("063-trap-redirect-localhost");
        assert_eq!(
            p.outcome.redirects,
            BTreeSet::from(["bob@localhost".to_owned()]),
            "{}",
            p.lda_log
        );

        let p = run_case("064-trap-five-redirects");
        assert!(
            p.outcome.error && p.outcome.redirects.is_empty(),
            "{}",
            p.lda_log
        );
        assert_eq!(p.outcome.stores, vec![inbox(&[])]);

        let p = run_case("042-vacation-mailing-list");
        assert_eq!(
            p.plan.vacation.len(),
            1,
            "plan mode plans it: {}",
            p.plan_text
        );
        assert!(
            p.outcome.vacation.is_empty(),
            "execution does not answer a list: {}",
            p.lda_log
        );

        let p = run_case("040-vacation-basic");
        assert_eq!(
            p.outcome.vacation,
            BTreeSet::from([("sender@example.net".to_owned(), "Out of office".to_owned())]),
            "{}",
            p.lda_log
        );

        let p = run_case("044-vacation-null-sender");
        assert!(p.outcome.vacation.is_empty(), "{}", p.lda_log);
    }

    /// Debugging aid: `SIEVE_CASE=NNN-name cargo test --test tests
    /// show_sieve_case -- --ignored --nocapture` prints everything both
    /// sides said about one case.
    #[test]
    #[ignore]
    fn show_sieve_case() {
        let name = std::env::var("SIEVE_CASE").expect("set SIEVE_CASE=NNN-name");
        let input = Input::case(&cases_dir(), &name);
        let ph = pigeonhole(&input);
        eprintln!("== dovecot-lda: {}\n{}", ph.outcome, ph.lda_log);
        eprintln!("== sieve-test: {}\n{}", ph.plan, ph.plan_text);
        if mailstow_has_sieve_test() {
            let ms = mailstow(&input);
            eprintln!(
                "== mailstow: {:?}\n{}",
                ms.outcome.map(|o| o.to_string()),
                ms.raw
            );
        }
    }

    /// Every case: Pigeonhole and mailstow reach the same outcome, or the
    /// case is on the allow-list (and then it must still differ).
    #[test]
    fn every_sieve_case_matches_pigeonhole() {
        let dir = cases_dir();
        let names = case_names(&dir);
        assert!(names.len() >= 60, "only {} cases", names.len());
        let with_mailstow = require_mailstow();
        let results = par_map(&names, |name| {
            let input = Input::case(&dir, name);
            let ph = pigeonhole(&input);
            let ms = with_mailstow.then(|| mailstow(&input));
            (input, ph, ms)
        });

        let mut failures = Vec::new();
        let mut allowed_seen = Vec::new();
        let mut notes = Vec::new();
        for (input, ph, ms) in &results {
            if ph.plan.script_level() != ph.outcome.script_level() {
                notes.push(format!(
                    "{}: sieve-test plans [{}], dovecot-lda does [{}]",
                    input.name, ph.plan, ph.outcome
                ));
            }
            let Some(ms) = ms else { continue };
            let allowed = ALLOWED.iter().find(|(n, _)| *n == input.name);
            match (&ms.outcome, allowed) {
                (Ok(o), None) if *o == ph.outcome => {}
                (Ok(o), Some((_, why))) if *o == ph.outcome => failures.push(format!(
                    "{}: on the allow-list ({why}) but now matches Pigeonhole: remove it",
                    input.name
                )),
                (_, Some(_)) => allowed_seen.push(input.name.clone()),
                (Ok(o), None) => failures.push(format!(
                    "{}:\n  script:     {}\n  pigeonhole: {}\n  mailstow:   {}\n  mailstow raw: {}",
                    input.name,
                    fs::read_to_string(&input.script)
                        .unwrap_or_default()
                        .trim()
                        .replace('\n', "\n              "),
                    ph.outcome,
                    o,
                    ms.raw.trim().replace('\n', "\n    ")
                )),
                (Err(e), None) => failures.push(format!(
                    "{}: mailstow gave no outcome ({e}):\n{}",
                    input.name, ms.raw
                )),
            }
        }
        for n in &notes {
            eprintln!("note: {n}");
        }
        if !allowed_seen.is_empty() {
            eprintln!("documented differences seen: {}", allowed_seen.join(", "));
        }
        assert!(
            failures.is_empty(),
            "{} of {} Sieve cases differ from Pigeonhole:\n\n{}",
            failures.len(),
            results.len(),
            failures.join("\n\n")
        );
    }
}
