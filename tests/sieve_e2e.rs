//! End-to-end Sieve through real peers: messages enter mailstow over LMTP
//! (directly or from a private Postfix), users' `.dovecot.sieve` scripts
//! file, flag, reject, discard, redirect and answer them, redirects and
//! replies go out through mailstow's `[outbound] smtp` to that Postfix and
//! come back to mailstow users, and a private Dovecot reads every result back
//! over IMAP (folders, FLAGS with keywords, bytes). Covers every example in
//! sieve-examples/, redirect with and without :copy, vacation (one reply per
//! sender, none to lists), redirect loops, broken and edited scripts, and a
//! reject for one recipient of two. Must not edit sieve-examples/ or look
//! inside mailstow (only its replies, log, files and what the peers see),
//! bind anything but loopback, use a sleep as synchronisation (poll with a
//! deadline), or skip an example silently: one that cannot run end to end is
//! listed in [`NOT_END_TO_END`] with the reason.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::peers::{lmtp_inet, Dovecot, FetchedFlags, Postfix};
use crate::util::{
    after_headers, chown, code, free_v4, lf_to_crlf, message, toml_str, Mailstow, Options,
    PASSWORD, TEST_DOMAINS, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const DAVE: &str = "dave@example.org";
const CAROL: &str = "carol@example.net";
const ERIN: &str = "erin@example.net";
/// Receives the barrier messages of [`World::settle`]; never has a script.
const MARKER: &str = "marker@example.org";

// ---------------------------------------------------------------------------
// A world: mailstow, Dovecot on the same files, Postfix both ways
// ---------------------------------------------------------------------------

/// mailstow with `[outbound] smtp` at a private Postfix whose virtual
/// domains go back to mailstow's LMTP listener, and a Dovecot that reads
/// the same users and Maildirs. Fields drop in order: mailstow first.
struct World {
    ms: Mailstow,
    dc: Dovecot,
    pf: Postfix,
    markers: usize,
}

impl World {
    /// `users` (plus [`MARKER`]) in the passwd-file; Postfix hands
    /// [`TEST_DOMAINS`] and every domain of `users` to mailstow;
    /// `extra_toml` is appended to mailstow's config after `[outbound]`
    /// (so it may hold `key = value` lines for it, then other tables).
    fn start(users: &[&str], extra_toml: &str) -> World {
        let mut all: Vec<&str> = users.to_vec();
        if !all.contains(&MARKER) {
            all.push(MARKER);
        }
        let mut domains: Vec<&str> = TEST_DOMAINS.to_vec();
        for u in &all {
            let d = u.rsplit_once('@').expect("address has @").1;
            if !domains.contains(&d) {
                domains.push(d);
            }
        }
        let smtp = free_v4();
        let mut opts = Options::new(&all);
        opts.extra_toml = format!(
            "[outbound]\nsmtp = {}\ntimeout = 30\n{extra_toml}\n",
            toml_str(&smtp.to_string())
        );
        let ms = Mailstow::start_with(opts);
        let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
        let pf = Postfix::start_custom(&lmtp_inet(ms.tcp), &domains, Some(smtp), "", "");
        World {
            ms,
            dc,
            pf,
            markers: 0,
        }
    }

    /// Wait until everything mailstow handed to Postfix so far is delivered
    /// and logged: the queue is empty (a submission happens inside an LMTP
    /// transaction, so a message in flight keeps its cause in the queue),
    /// then a marker sent after that is logged as sent (postlogd writes in
    /// order, so every earlier line is in the maillog), then empty again.
    fn settle(&mut self) {
        self.pf.wait_queue_empty(TIMEOUT);
        self.markers += 1;
        let m = message(
            MARKER,
            MARKER,
            &format!("barrier {}", self.markers),
            "barrier\n",
        );
        self.pf.send_smtp(MARKER, &[MARKER], &m);
        self.pf
            .wait_maillog(&[&format!("to=<{MARKER}>"), "status="], self.markers);
        self.pf.wait_queue_empty(TIMEOUT);
    }

    /// Postfix's delivery attempts (marker messages left out).
    fn deliveries(&self) -> Vec<PfDelivery> {
        pf_deliveries(&self.pf.maillog())
            .into_iter()
            .filter(|d| d.to != MARKER)
            .collect()
    }

    /// Every message of every selectable mailbox of `user`, read over IMAP
    /// with EXAMINE (nothing changes): (mailbox name as LISTed, message).
    fn read_all(&self, user: &str) -> Vec<(String, FetchedFlags)> {
        read_all(&self.ms, &self.dc, user)
    }

    /// The INBOX of `user` over IMAP.
    fn inbox(&self, user: &str) -> Vec<FetchedFlags> {
        self.read_all(user)
            .into_iter()
            .filter(|(f, _)| f.eq_ignore_ascii_case("INBOX"))
            .map(|(_, m)| m)
            .collect()
    }
}

/// Every message of every selectable mailbox of `user`, over IMAP. A user
/// without a home has no mail: nothing is read, because Dovecot (as vmail)
/// cannot create the home in the root-owned 0711 `{mail_root}/{domain}`
/// that mailstow makes, and its INBOX autocreate fails with SERVERBUG.
fn read_all(ms: &Mailstow, dc: &Dovecot, user: &str) -> Vec<(String, FetchedFlags)> {
    if !ms.home(user).exists() {
        return Vec::new();
    }
    let mut imap = dc.imap_login(user, PASSWORD);
    let mut out = Vec::new();
    for (attrs, name) in imap.list() {
        let attrs = attrs.to_ascii_lowercase();
        if attrs.contains("\\noselect") || attrs.contains("\\nonexistent") {
            continue;
        }
        if imap.examine(&name) == 0 {
            continue;
        }
        for m in imap.fetch_all_flags() {
            out.push((name.clone(), m));
        }
    }
    imap.logout();
    out
}

/// One `to=<...> status=...` line of the Postfix maillog.
#[derive(Debug, Clone)]
struct PfDelivery {
    qid: String,
    to: String,
    status: String,
    line: String,
}

fn pf_deliveries(maillog: &str) -> Vec<PfDelivery> {
    maillog
        .lines()
        .filter(|l| l.contains(": to=<") && l.contains(" status="))
        .filter_map(|l| {
            let i = l.find(": to=<")?;
            let qid = l[..i].rsplit(' ').next()?.to_owned();
            let rest = &l[i + 6..];
            let to = rest[..rest.find('>')?].to_owned();
            let s = &l[l.find(" status=")? + 8..];
            let status = s.split([' ', ',']).next()?.to_owned();
            Some(PfDelivery {
                qid,
                to,
                status,
                line: l.to_owned(),
            })
        })
        .collect()
}

/// The envelope sender qmgr logged for a queue id (`""` for `<>`).
fn pf_sender(maillog: &str, qid: &str) -> Option<String> {
    let key = format!("{qid}: from=<");
    maillog.lines().find_map(|l| {
        let i = l.find(&key)? + key.len();
        let rest = &l[i..];
        Some(rest[..rest.find('>')?].to_owned())
    })
}

/// Deliver one message straight over LMTP; the reply to the final dot.
fn lmtp_deliver(ms: &Mailstow, from: &str, rcpt: &str, msg: &[u8]) -> Vec<String> {
    let mut c = ms.connect();
    c.lhlo();
    let mut replies = c.deliver(from, &[rcpt], msg);
    c.quit();
    replies.remove(0)
}

// ---------------------------------------------------------------------------
// Messages: headers, RFC 2047, transfer encodings, modified UTF-7
// ---------------------------------------------------------------------------

/// The header fields of a message, unfolded: (name, value) in order.
fn headers(msg: &[u8]) -> Vec<(String, String)> {
    let body = after_headers(msg);
    let head = String::from_utf8_lossy(&msg[..msg.len() - body.len()]);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// The values of header `name` (case-insensitive).
fn header(msg: &[u8], name: &str) -> Vec<String> {
    headers(msg)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

fn header1(msg: &[u8], name: &str) -> Option<String> {
    header(msg, name).into_iter().next()
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

fn base64_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let Some(v) = b64_value(c) else { continue };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn base64_encode_unpadded(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, &b| (a << 8) | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn qp_decode(text: &[u8], underscore_is_space: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'=' if text[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' if text[i + 1..].starts_with(b"\n") => i += 2,
            b'=' if i + 2 < text.len() => match (hex(text[i + 1]), hex(text[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'=');
                    i += 1;
                }
            },
            b'_' if underscore_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Decode RFC 2047 encoded-words (UTF-8 or US-ASCII charsets); whitespace
/// between two adjacent encoded-words goes. Err names an unknown charset or
/// a malformed word.
fn decode_rfc2047(value: &str) -> Result<String, String> {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = value;
    let mut pending_ws = String::new();
    let mut last_was_word = false;
    loop {
        let Some(start) = rest.find("=?") else {
            out.extend_from_slice(pending_ws.as_bytes());
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        let (plain, word) = rest.split_at(start);
        let parts: Vec<&str> = word[2..].splitn(3, '?').collect();
        let end = parts
            .get(2)
            .and_then(|p| p.find("?="))
            .filter(|_| parts.len() == 3);
        let Some(end) = end else {
            out.extend_from_slice(pending_ws.as_bytes());
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        let (charset, enc, text) = (parts[0], parts[1], &parts[2][..end]);
        if plain.trim().is_empty() && last_was_word {
            // Whitespace between two encoded-words is not content.
        } else {
            out.extend_from_slice(plain.as_bytes());
        }
        let cs = charset
            .split('*')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if cs != "utf-8" && cs != "us-ascii" {
            return Err(format!("charset {charset:?} in {value:?}"));
        }
        let bytes = match enc {
            "B" | "b" => base64_decode(text.as_bytes()),
            "Q" | "q" => qp_decode(text.as_bytes(), true),
            _ => return Err(format!("encoding {enc:?} in {value:?}")),
        };
        out.extend_from_slice(&bytes);
        last_was_word = true;
        pending_ws.clear();
        let consumed = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
        rest = &word[consumed..];
    }
    String::from_utf8(out).map_err(|_| format!("not UTF-8 after decoding {value:?}"))
}

/// The body as text: Content-Transfer-Encoding undone (single part).
fn body_text(msg: &[u8]) -> String {
    let body = after_headers(msg);
    let cte = header1(msg, "content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let decoded = match cte.trim() {
        "base64" => base64_decode(body),
        "quoted-printable" => qp_decode(body, false),
        _ => body.to_vec(),
    };
    String::from_utf8_lossy(&decoded).into_owned()
}

/// An IMAP mailbox name in modified UTF-7 (RFC 3501 5.1.3).
fn mutf7(name: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::new();
    let mut wide: Vec<u16> = Vec::new();
    let flush = |wide: &mut Vec<u16>, out: &mut String| {
        if !wide.is_empty() {
            let bytes: Vec<u8> = wide.iter().flat_map(|u| u.to_be_bytes()).collect();
            out.push('&');
            out.push_str(&base64_encode_unpadded(&bytes, ALPHABET));
            out.push('-');
            wide.clear();
        }
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut wide, &mut out);
            out.push_str(if c == '&' { "&-" } else { "" });
            if c != '&' {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            wide.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut wide, &mut out);
    out
}

/// A flag as compared: system flags in their RFC 3501 spelling (they are
/// case-insensitive), keywords as written.
fn canonical_flag(f: &str) -> String {
    const SYSTEM: &[&str] = &["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];
    SYSTEM
        .iter()
        .find(|s| s.eq_ignore_ascii_case(f))
        .map_or_else(|| f.to_owned(), |s| s.to_string())
}

fn flag_set<S: AsRef<str>>(flags: &[S]) -> BTreeSet<String> {
    flags.iter().map(|f| canonical_flag(f.as_ref())).collect()
}

/// Collapse runs of whitespace (reply texts may be wrapped).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of a reply without codes: `550-5.7.1 a` / `550 5.7.1 b` -> `a b`.
fn reply_text(reply: &[String]) -> String {
    squash(
        &reply
            .iter()
            .map(|l| {
                let t = l.get(4..).unwrap_or("");
                t.strip_prefix("5.7.1 ").unwrap_or(t).to_owned()
            })
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn addr_of(a: &str) -> String {
    let a = a.trim();
    match (a.rfind('<'), a.rfind('>')) {
        (Some(i), Some(j)) if i < j => a[i + 1..j].to_owned(),
        _ => a.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// 1. The example library, end to end
// ---------------------------------------------------------------------------

/// Example messages that cannot run end to end, as ("NN-name/message",
/// reason). They still run with the checks that apply (stores, replies on
/// the wire); the test fails when an entry is no longer needed.
const NOT_END_TO_END: &[(&str, &str)] = &[];

/// What expected.json says, reduced to what the peers can observe.
#[derive(Debug, Default)]
struct Expected {
    /// (folder in UTF-8, flags) per copy stored.
    stores: Vec<(String, BTreeSet<String>)>,
    reject: Option<String>,
    redirects: Vec<String>,
    /// (to, subject)
    vacations: Vec<(String, String)>,
    /// Recipients of mailto: notifications.
    notify: Vec<String>,
}

/// One example message, ready to run.
#[derive(Debug)]
struct Case {
    name: String,
    dir: PathBuf,
    eml: PathBuf,
    from: String,
    to: String,
    user: String,
    before: Vec<PathBuf>,
    user_editheader: bool,
    mailboxes: Vec<String>,
    expected: Expected,
    /// `[sieve]` (and other) tables for mailstow, from the example's
    /// mailstow.toml with paths pointed into the example dir.
    extra_toml: String,
    /// Why part of it cannot be checked end to end.
    limits: Vec<String>,
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sieve-examples")
}

fn sorted_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("readdir").path())
        .collect();
    v.sort();
    v
}

/// `mailto:a@b,c@d?to=e@f` -> its recipients.
fn mailto(uri: &str) -> Option<Vec<String>> {
    let rest = uri
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("mailto:"))
        .map(|_| &uri[7..])?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let decode = |s: &str| {
        s.replace("%40", "@")
            .replace("%2B", "+")
            .replace("%2b", "+")
    };
    let mut out: Vec<String> = path
        .split(',')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    for field in query.split('&') {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("to") {
                out.extend(v.split(',').filter(|s| !s.is_empty()).map(decode));
            }
        }
    }
    Some(out)
}

fn parse_expected(path: &Path, limits: &mut Vec<String>) -> Result<Expected, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let actions = v
        .get("actions")
        .and_then(|a| a.as_array())
        .ok_or_else(|| format!("{}: no \"actions\" array", path.display()))?;
    let mut e = Expected::default();
    for a in actions {
        let field = |k: &str| a.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        match field("type").as_str() {
            "store" => {
                let flags: Vec<String> = a
                    .get("flags")
                    .and_then(|f| f.as_array())
                    .map(|f| {
                        f.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                e.stores.push((field("folder"), flag_set(&flags)));
            }
            "discard" => {}
            "reject" => e.reject = Some(field("reason")),
            "redirect" => e.redirects.push(field("to")),
            "vacation" => e.vacations.push((field("to"), field("subject"))),
            "notify" => match mailto(&field("method")) {
                Some(r) if !r.is_empty() => e.notify.extend(r),
                _ => limits.push(format!(
                    "notify method {:?} is not a mailto: mailstow can send",
                    field("method")
                )),
            },
            other => return Err(format!("{}: unknown action type {other:?}", path.display())),
        }
    }
    Ok(e)
}

/// The example's mailstow.toml with paths pointed into the example dir,
/// plus what its `.env` asks for; Err: a reason it cannot run at all.
fn example_toml(
    dir: &Path,
    before: &[PathBuf],
    user_editheader: bool,
    limits: &mut Vec<String>,
) -> Result<String, String> {
    let snippet_path = dir.join("mailstow.toml");
    let mut table: toml::Table = match fs::read_to_string(&snippet_path) {
        Ok(t) => toml::from_str(&t).map_err(|e| format!("{}: {e}", snippet_path.display()))?,
        Err(_) => toml::Table::new(),
    };
    for key in table.keys() {
        if key != "sieve" {
            limits.push(format!(
                "mailstow.toml sets [{key}], which the test fixture writes itself"
            ));
        }
    }
    table.retain(|k, _| k == "sieve");
    let sieve = table
        .entry("sieve")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("mailstow.toml: sieve is not a table")?;
    let paths = |v: Vec<PathBuf>| {
        toml::Value::Array(
            v.iter()
                .map(|p| toml::Value::String(p.to_string_lossy().into_owned()))
                .collect(),
        )
    };
    // Admin scripts: the .env's `before:` names files in the example dir;
    // paths in the snippet (written for /etc/mailstow) map by file name.
    for key in ["before", "after"] {
        let mut files: Vec<PathBuf> = if key == "before" && !before.is_empty() {
            before.to_vec()
        } else {
            Vec::new()
        };
        if files.is_empty() {
            if let Some(list) = sieve.get(key).and_then(|v| v.as_array()) {
                for p in list {
                    let name = Path::new(p.as_str().unwrap_or_default())
                        .file_name()
                        .map(|n| dir.join(n))
                        .filter(|p| p.is_file())
                        .ok_or_else(|| format!("[sieve] {key} names {p}, not in the example"))?;
                    files.push(name);
                }
            }
        }
        if !files.is_empty() {
            sieve.insert(key.to_owned(), paths(files));
        }
    }
    if dir.join("global").is_dir() {
        sieve.insert(
            "global_dir".into(),
            toml::Value::String(dir.join("global").to_string_lossy().into_owned()),
        );
    } else if sieve.contains_key("global_dir") {
        return Err("[sieve] global_dir set but the example has no global/".into());
    }
    if user_editheader {
        sieve.insert("user_editheader".into(), toml::Value::Boolean(true));
    }
    toml::to_string(&table).map_err(|e| format!("serialising the config: {e}"))
}

/// Every message of every example, with its envelope and expectations;
/// Err entries are examples that cannot run at all (name, why).
fn cases() -> (Vec<Case>, Vec<(String, String)>) {
    let mut cases = Vec::new();
    let mut broken = Vec::new();
    let dirs: Vec<PathBuf> = sorted_dir(&examples_dir())
        .into_iter()
        .filter(|d| d.is_dir())
        .collect();
    for dir in dirs {
        let example = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if !dir.join("script.sieve").is_file() {
            broken.push((example, "no script.sieve".to_owned()));
            continue;
        }
        let emls: Vec<PathBuf> = sorted_dir(&dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        if emls.is_empty() {
            broken.push((example.clone(), "no *.eml".to_owned()));
        }
        for eml in emls {
            let stem = eml
                .file_stem()
                .expect("stem")
                .to_string_lossy()
                .into_owned();
            let name = format!("{example}/{stem}");
            let mut limits = Vec::new();
            let mut case = Case {
                name: name.clone(),
                dir: dir.clone(),
                eml: eml.clone(),
                from: "sender@example.net".into(),
                to: ALICE.into(),
                user: ALICE.into(),
                before: Vec::new(),
                user_editheader: false,
                mailboxes: Vec::new(),
                expected: Expected::default(),
                extra_toml: String::new(),
                limits: Vec::new(),
            };
            let mut to_set = false;
            let mut env_error = None;
            for env in [dir.join("example.env"), dir.join(format!("{stem}.env"))] {
                let Ok(text) = fs::read_to_string(&env) else {
                    continue;
                };
                for line in text.lines().map(str::trim) {
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let Some((k, v)) = line.split_once(':') else {
                        env_error = Some(format!("{}: not `key: value`: {line:?}", env.display()));
                        continue;
                    };
                    let v = v.trim();
                    let list = || {
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    };
                    match k.trim() {
                        "from" => case.from = v.trim_matches(['<', '>']).to_owned(),
                        "to" => {
                            case.to = v.trim_matches(['<', '>']).to_owned();
                            to_set = true;
                        }
                        "user" => case.user = v.to_owned(),
                        "before" => case.before = list().iter().map(|f| dir.join(f)).collect(),
                        "editheader" => case.user_editheader = v == "user",
                        "mailboxes" => case.mailboxes = list(),
                        other => {
                            env_error = Some(format!("{}: unknown key {other:?}", env.display()))
                        }
                    }
                }
            }
            if let Some(e) = env_error {
                broken.push((name, e));
                continue;
            }
            if !to_set {
                case.to = case.user.clone();
            }
            // mailstow runs the script of the user the recipient resolves
            // to: the recipient without its +detail.
            let base = match case.to.rsplit_once('@') {
                Some((l, d)) => format!("{}@{d}", l.split('+').next().unwrap_or(l)),
                None => case.to.clone(),
            };
            if !base.eq_ignore_ascii_case(&case.user) {
                broken.push((
                    name,
                    format!(
                        "envelope recipient {} is not the user {} (aliases are resolved before mailstow)",
                        case.to, case.user
                    ),
                ));
                continue;
            }
            if let Some(b) = case.before.iter().find(|b| !b.is_file()) {
                broken.push((name, format!("before script {} missing", b.display())));
                continue;
            }
            match parse_expected(&eml.with_extension("expected.json"), &mut limits) {
                Ok(e) => case.expected = e,
                Err(e) => {
                    broken.push((name, e));
                    continue;
                }
            }
            match example_toml(&dir, &case.before, case.user_editheader, &mut limits) {
                Ok(t) => case.extra_toml = t,
                Err(e) => {
                    broken.push((name, e));
                    continue;
                }
            }
            case.limits = limits;
            cases.push(case);
        }
    }
    (cases, broken)
}

/// Run one example message end to end; Err lists every difference.
fn run_case(case: &Case) -> Result<(), String> {
    let e = &case.expected;
    let mut targets: Vec<String> = Vec::new();
    targets.extend(e.redirects.iter().cloned());
    targets.extend(e.vacations.iter().map(|(t, _)| t.clone()));
    targets.extend(e.notify.iter().cloned());
    let mut users: Vec<&str> = vec![case.user.as_str()];
    for t in &targets {
        if !users.iter().any(|u| u.eq_ignore_ascii_case(t)) {
            users.push(t);
        }
    }
    let mut w = World::start(&users, &case.extra_toml);
    let mut problems = Vec::new();

    // The user's script as the active script, the example's other scripts
    // as the personal script directory (include :personal).
    let script_text = fs::read_to_string(case.dir.join("script.sieve")).expect("read script");
    w.ms.install_sieve(&case.user, &script_text);
    let personal = w.ms.home(&case.user).join("sieve");
    fs::create_dir(&personal).expect("mkdir sieve dir");
    chown(&personal, w.ms.owner);
    for f in sorted_dir(&case.dir) {
        if f.extension().is_some_and(|x| x == "sieve") && f.is_file() {
            let dest = personal.join(f.file_name().expect("name"));
            fs::copy(&f, &dest).expect("copy personal script");
            chown(&dest, w.ms.owner);
        }
    }
    // The folders that exist before delivery: the example's `mailboxes:`,
    // and, unless the script creates folders itself (`:create`), the ones
    // it files into, as a mail client would have made them (Junk,
    // Newsletters). expected.json comes from Pigeonhole with
    // lda_mailbox_autocreate = yes; mailstow (like Dovecot's default) does
    // not create a folder for a plain fileinto but stores into INBOX
    // instead (docs/sieve-compat.md, "Not covered").
    let mut existing: Vec<String> = case.mailboxes.clone();
    if !script_text.contains(":create") {
        for (f, _) in &e.stores {
            if !f.eq_ignore_ascii_case("INBOX") && !existing.contains(f) {
                existing.push(f.clone());
            }
        }
    }
    if !existing.is_empty() {
        let mut imap = w.dc.imap_login(&case.user, PASSWORD);
        for m in &existing {
            imap.create(&mutf7(m));
        }
        imap.logout();
    }

    let original = lf_to_crlf(&fs::read(&case.eml).expect("read eml"));
    let reply = lmtp_deliver(&w.ms, &case.from, &case.to, &original);
    match &e.reject {
        Some(reason) => {
            let ok = code(&reply) == 550
                && reply.last().is_some_and(|l| l.get(4..9) == Some("5.7.1"))
                && reply_text(&reply).contains(&squash(reason));
            if !ok {
                problems.push(format!(
                    "expected `550 5.7.1 {reason}` on the wire, got {reply:?}"
                ));
            }
        }
        None => {
            if code(&reply) != 250 {
                problems.push(format!("expected 250 on the wire, got {reply:?}"));
            }
        }
    }
    w.settle();

    // Stores: the folders it landed in and the FLAGS Dovecot reports.
    let mut actual: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (folder, m) in w.read_all(&case.user) {
        if after_headers(&m.body) != after_headers(&original) {
            problems.push(format!(
                "{folder} UID {} holds a body that is not the example's",
                m.uid
            ));
        }
        let folder = if folder.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            folder
        };
        actual.push((folder, flag_set(&m.flags)));
    }
    let mut want: Vec<(String, BTreeSet<String>)> = e
        .stores
        .iter()
        .map(|(f, fl)| {
            let f = if f.eq_ignore_ascii_case("INBOX") {
                "INBOX".to_owned()
            } else {
                mutf7(f)
            };
            (f, fl.clone())
        })
        .collect();
    actual.sort();
    want.sort();
    if actual != want {
        problems.push(format!(
            "stores: expected {want:?}, Dovecot shows {actual:?}"
        ));
    }

    // What went out through Postfix: exactly the expected recipients, each
    // delivered (status=sent), and each arrived as the right kind.
    let checks_outgoing = !case.limits.iter().any(|l| l.contains("notify method"));
    if checks_outgoing {
        let sent = w.deliveries();
        let mut got: Vec<String> = sent.iter().map(|d| d.to.to_ascii_lowercase()).collect();
        let mut exp: Vec<String> = targets.iter().map(|t| t.to_ascii_lowercase()).collect();
        got.sort();
        exp.sort();
        if got != exp {
            problems.push(format!(
                "outgoing mail: expected to {exp:?}, Postfix handled {:?}",
                sent.iter().map(|d| &d.line).collect::<Vec<_>>()
            ));
        }
        for d in sent.iter().filter(|d| d.status != "sent") {
            problems.push(format!("outgoing mail not delivered: {}", d.line));
        }
        let message_id = header1(&original, "message-id").unwrap_or_default();
        for t in targets.iter().collect::<BTreeSet<_>>() {
            let inbox = w.inbox(t);
            let kind = |m: &FetchedFlags| {
                let auto = header1(&m.body, "auto-submitted")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if auto.starts_with("auto-replied") {
                    "vacation"
                } else if auto.starts_with("auto-notified") {
                    "notify"
                } else {
                    "redirect"
                }
            };
            // Told apart by Auto-Submitted: auto-replied (RFC 3834, vacation),
            // auto-notified (RFC 5436 2.7, MUST for mailto notifications),
            // none (a redirect passes the message on unchanged).
            let count = |k: &str| inbox.iter().filter(|m| kind(m) == k).count();
            let n_redirect = e.redirects.iter().filter(|r| *r == t).count();
            let n_vacation = e.vacations.iter().filter(|(r, _)| r == t).count();
            let n_notify = e.notify.iter().filter(|r| *r == t).count();
            if (count("redirect"), count("vacation"), count("notify"))
                != (n_redirect, n_vacation, n_notify)
            {
                problems.push(format!(
                    "{t} expected {n_redirect} redirect(s) (no Auto-Submitted), {n_vacation} vacation \
                     reply(ies) (auto-replied) and {n_notify} notification(s) (auto-notified); \
                     it received {} message(s) with Auto-Submitted {:?}, Subject {:?}",
                    inbox.len(),
                    inbox
                        .iter()
                        .map(|m| header1(&m.body, "auto-submitted"))
                        .collect::<Vec<_>>(),
                    inbox
                        .iter()
                        .map(|m| header1(&m.body, "subject"))
                        .collect::<Vec<_>>()
                ));
                continue;
            }
            for m in &inbox {
                match kind(m) {
                    // Passed on unchanged: only trace fields are prepended.
                    "redirect" if !m.body.ends_with(&original) => problems.push(format!(
                        "redirected copy at {t} does not end with the example byte for byte"
                    )),
                    "vacation" => {
                        let subject = header1(&m.body, "subject").unwrap_or_default();
                        let decoded = decode_rfc2047(&subject).unwrap_or_else(|e| e);
                        if !e.vacations.iter().any(|(r, s)| r == t && *s == decoded) {
                            problems.push(format!(
                                "vacation reply at {t} has Subject {decoded:?}, expected {:?}",
                                e.vacations
                            ));
                        }
                        if header1(&m.body, "return-path").as_deref() != Some("<>") {
                            problems.push(format!(
                                "vacation reply at {t}: Return-Path {:?}, expected <> (vacation_sender = null)",
                                header1(&m.body, "return-path")
                            ));
                        }
                        if !message_id.is_empty()
                            && header1(&m.body, "in-reply-to").as_deref() != Some(&message_id)
                        {
                            problems.push(format!(
                                "vacation reply at {t}: In-Reply-To {:?}, expected {message_id}",
                                header1(&m.body, "in-reply-to")
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n  mailstow log:\n    {}",
            problems.join("\n  "),
            crate::util::tail(&w.ms.log(), 12).replace('\n', "\n    ")
        ))
    }
}

/// Each example message delivered over LMTP to a user whose active script
/// is the example's script (with its admin scripts and config): what
/// Dovecot shows (folders, FLAGS with keywords, bytes), the LMTP reply
/// (550 5.7.1 with the reason for a reject) and what reached Postfix and
/// came back to the recipients (redirects, vacation replies,
/// notifications) match the example's expected.json.
#[test]
fn every_sieve_example_delivered_over_lmtp_reads_back_through_dovecot_as_expected() {
    let (mut cases, broken) = cases();
    assert!(
        cases.len() >= 15,
        "only {} example messages found in {}",
        cases.len(),
        examples_dir().display()
    );
    let mut failures: Vec<String> = Vec::new();
    for (name, why) in &broken {
        match NOT_END_TO_END.iter().find(|(n, _)| n == name) {
            Some((_, listed)) => eprintln!("not run end to end: {name}: {listed} ({why})"),
            None => failures.push(format!(
                "{name}: cannot run end to end ({why}); list it in NOT_END_TO_END with the reason"
            )),
        }
    }
    for case in &cases {
        let listed = NOT_END_TO_END.iter().find(|(n, _)| *n == case.name);
        match (listed, case.limits.is_empty()) {
            (None, false) => failures.push(format!(
                "{}: only partly checkable end to end ({}); list it in NOT_END_TO_END with the reason",
                case.name,
                case.limits.join("; ")
            )),
            (Some(_), true) => failures.push(format!(
                "{}: listed in NOT_END_TO_END but runs end to end: remove the entry",
                case.name
            )),
            (Some((_, why)), false) => {
                eprintln!("partly end to end: {}: {why}", case.name)
            }
            (None, true) => {}
        }
    }
    for (name, _) in NOT_END_TO_END {
        if !cases.iter().any(|c| c.name == *name) && !broken.iter().any(|(n, _)| n == name) {
            failures.push(format!("NOT_END_TO_END lists {name}, which does not exist"));
        }
    }

    // SIEVE_E2E_ONLY=substring runs only the matching messages (debugging).
    let only = std::env::var("SIEVE_E2E_ONLY").unwrap_or_default();
    if !only.is_empty() {
        cases.retain(|c| c.name.contains(&only));
        failures.clear();
        eprintln!("SIEVE_E2E_ONLY={only}: running {} message(s)", cases.len());
    }
    let started = Instant::now();
    // Mostly waiting (Postfix's start-up check alone takes seconds of
    // idle time), so more worlds than CPUs at once.
    let workers = 8;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<(), String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case(case)))
                    .unwrap_or_else(|p| {
                        Err(format!(
                            "panicked: {}",
                            p.downcast_ref::<String>()
                                .cloned()
                                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                .unwrap_or_default()
                        ))
                    });
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    for (i, r) in &results {
        if let Err(e) = r {
            failures.push(format!("{}:\n  {e}", cases[*i].name));
        }
    }
    eprintln!(
        "{} example messages end to end in {:?}",
        cases.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} problem(s) with the example library end to end:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// 2. Redirect and vacation through a real Postfix
// ---------------------------------------------------------------------------

const VACATION_SUBJECT: &str = "Abwesend – zurück am 3. Juni";

fn alice_script() -> String {
    format!(
        "require [\"copy\", \"vacation\"];\n\
         redirect :copy \"{BOB}\";\n\
         vacation :days 1 :subject \"{VACATION_SUBJECT}\"\n  \
         \"Ich bin bis 3. Juni nicht im Büro.\\nGrüße, Alice\";\n"
    )
}

/// A body whose bytes must survive two LMTP hops and an SMTP submission:
/// lines starting with dots, 8-bit UTF-8, trailing spaces, a long line.
fn tricky_body(tag: &str) -> String {
    format!(
        "Hello Alice ({tag}),\n.\n..two dots\n.leading dot\nUmlaute: äöü ß € 😀\n\
         trailing spaces   \n{}\nend\n",
        "x".repeat(900)
    )
}

/// The stored messages of `msgs` whose bytes end with `original` (what was
/// submitted, after the headers the hops prepended).
fn holding<'a>(msgs: &'a [FetchedFlags], original: &[u8]) -> Vec<&'a FetchedFlags> {
    msgs.iter().filter(|m| m.body.ends_with(original)).collect()
}

#[test]
fn redirect_copy_reaches_b_through_postfix_and_vacation_answers_the_sender_once() {
    let mut w = World::start(&[ALICE, BOB, CAROL, ERIN], "");
    w.ms.install_sieve(ALICE, &alice_script());

    // 1: carol writes to alice.
    let m1 = message(CAROL, ALICE, "Quarterly report", &tricky_body("m1"));
    w.pf.send_smtp(CAROL, &[ALICE], &m1);
    w.settle();
    let bob = w.inbox(BOB);
    assert_eq!(bob.len(), 1, "bob gets the redirected copy");
    assert_eq!(
        holding(&bob, &m1).len(),
        1,
        "bob's copy ends with the submitted message byte for byte:\n{}",
        String::from_utf8_lossy(&bob[0].body)
    );
    assert_eq!(
        after_headers(&bob[0].body),
        after_headers(&m1),
        "body byte for byte"
    );
    assert_eq!(
        header1(&bob[0].body, "return-path").as_deref(),
        Some(format!("<{CAROL}>").as_str()),
        "redirect keeps the original envelope sender (redirect_sender = sender)"
    );
    assert!(
        header(&bob[0].body, "delivered-to")
            .iter()
            .any(|v| addr_of(v) == ALICE),
        "the redirected copy carries alice's Delivered-To (loop detection)"
    );
    let alice = w.inbox(ALICE);
    assert_eq!(holding(&alice, &m1).len(), 1, ":copy keeps alice's copy");

    let carol = w.inbox(CAROL);
    assert_eq!(carol.len(), 1, "carol gets exactly one vacation reply");
    let reply = &carol[0].body;
    let shown = String::from_utf8_lossy(reply).into_owned();
    assert_eq!(
        header1(reply, "return-path").as_deref(),
        Some("<>"),
        "vacation reply has the null envelope sender:\n{shown}"
    );
    assert_eq!(
        header1(reply, "auto-submitted")
            .map(|v| v.to_ascii_lowercase())
            .as_deref(),
        Some("auto-replied"),
        "Auto-Submitted:\n{shown}"
    );
    assert_eq!(
        header1(reply, "mime-version")
            .map(|v| squash(&v))
            .as_deref(),
        Some("1.0"),
        "MIME-Version:\n{shown}"
    );
    let subject = header1(reply, "subject").expect("Subject");
    assert!(
        subject.is_ascii() && subject.contains("=?"),
        "a non-ASCII Subject is RFC 2047 encoded, not raw 8-bit: {subject:?}"
    );
    assert_eq!(
        decode_rfc2047(&subject).as_deref(),
        Ok(VACATION_SUBJECT),
        "Subject decodes to the script's :subject"
    );
    assert!(
        header(reply, "to").iter().any(|v| v.contains(CAROL)),
        "To: carol:\n{shown}"
    );
    assert!(
        header(reply, "from").iter().any(|v| v.contains(ALICE)),
        "From: alice:\n{shown}"
    );
    assert_eq!(
        header1(reply, "in-reply-to"),
        header1(&m1, "message-id"),
        "In-Reply-To names the answered message:\n{shown}"
    );
    assert!(
        body_text(reply).contains("nicht im Büro"),
        "the reply's text:\n{shown}"
    );

    // The reply is remembered per user on disk, not in mailstow's memory:
    // restart it before carol writes again.
    assert!(
        w.ms.home(ALICE)
            .join(".mailstow/sieve-state.sqlite")
            .is_file(),
        "alice's Sieve state is in her home"
    );
    w.ms.stop();
    w.ms.restart();

    // 2: carol again: redirected and kept, but no second reply.
    let m2 = message(CAROL, ALICE, "Re: Quarterly report", &tricky_body("m2"));
    w.pf.send_smtp(CAROL, &[ALICE], &m2);
    w.settle();
    // 3: a mailing-list message from erin: no reply to a list.
    let mut m3 = b"List-Id: Team list <team.lists.example.net>\r\n".to_vec();
    m3.extend_from_slice(&message(ERIN, ALICE, "[team] minutes", &tricky_body("m3")));
    w.pf.send_smtp(ERIN, &[ALICE], &m3);
    w.settle();

    let bob = w.inbox(BOB);
    for (i, m) in [&m1, &m2, &m3].iter().enumerate() {
        assert_eq!(holding(&bob, m).len(), 1, "bob has redirected m{}", i + 1);
        assert_eq!(
            holding(&w.inbox(ALICE), m).len(),
            1,
            "alice kept m{}",
            i + 1
        );
    }
    assert_eq!(bob.len(), 3);
    assert_eq!(
        w.inbox(CAROL).len(),
        1,
        "a second message from the same sender gets no second reply"
    );
    assert!(
        w.inbox(ERIN).is_empty(),
        "a mailing-list message (List-Id) gets no vacation reply"
    );

    // The maillog: mailstow's submissions were delivered, the reply with a
    // null sender, the redirects with the original sender.
    let log = w.pf.maillog();
    let sent = w.deliveries();
    let to_bob: Vec<&PfDelivery> = sent.iter().filter(|d| d.to == BOB).collect();
    let to_carol: Vec<&PfDelivery> = sent.iter().filter(|d| d.to == CAROL).collect();
    assert_eq!(to_bob.len(), 3, "three redirects went through Postfix");
    assert_eq!(to_carol.len(), 1, "one vacation reply went through Postfix");
    for d in to_bob.iter().chain(&to_carol) {
        assert_eq!(d.status, "sent", "{}", d.line);
        assert!(
            d.line.contains(&format!("relay={}", w.ms.tcp.ip())) && d.line.contains("Saved in"),
            "delivered back to mailstow: {}",
            d.line
        );
    }
    assert_eq!(
        pf_sender(&log, &to_carol[0].qid).as_deref(),
        Some(""),
        "the vacation reply was submitted with MAIL FROM:<>"
    );
    let bob_senders: BTreeSet<String> = to_bob
        .iter()
        .map(|d| pf_sender(&log, &d.qid).unwrap_or_default())
        .collect();
    assert_eq!(
        bob_senders,
        [CAROL.to_owned(), ERIN.to_owned()].into_iter().collect(),
        "redirects keep the original envelope sender"
    );
    assert!(
        !sent.iter().any(|d| d.to == ERIN),
        "nothing went to erin: {sent:?}"
    );
}

#[test]
fn redirect_without_copy_reaches_b_through_postfix_and_keeps_nothing_for_a() {
    let mut w = World::start(&[DAVE, BOB, CAROL], "");
    w.ms.install_sieve(DAVE, &format!("redirect \"{BOB}\";\n"));
    let m = message(CAROL, DAVE, "Forward me", &tricky_body("plain redirect"));
    w.pf.send_smtp(CAROL, &[DAVE], &m);
    w.settle();

    let bob = w.inbox(BOB);
    assert_eq!(bob.len(), 1, "bob gets the redirected message");
    assert_eq!(holding(&bob, &m).len(), 1, "byte for byte");
    assert_eq!(after_headers(&bob[0].body), after_headers(&m));
    assert!(
        w.ms.maildir(DAVE).messages("INBOX").is_empty() && w.read_all(DAVE).is_empty(),
        "without :copy dave keeps nothing"
    );
    let sent = w.deliveries();
    let dave: Vec<&PfDelivery> = sent.iter().filter(|d| d.to == DAVE).collect();
    assert_eq!(dave.len(), 1);
    assert_eq!(dave[0].status, "sent", "{}", dave[0].line);
    let bob_d: Vec<&PfDelivery> = sent.iter().filter(|d| d.to == BOB).collect();
    assert_eq!(bob_d.len(), 1, "{sent:?}");
    assert_eq!(bob_d[0].status, "sent", "{}", bob_d[0].line);
    assert!(w.inbox(CAROL).is_empty(), "no bounce, no reply to carol");
}

// ---------------------------------------------------------------------------
// 3. A redirect loop
// ---------------------------------------------------------------------------

#[test]
fn redirect_loop_between_two_users_ends_with_the_message_kept_not_bouncing() {
    let mut w = World::start(&[ALICE, BOB, CAROL], "");
    w.ms.install_sieve(ALICE, &format!("redirect \"{BOB}\";\n"));
    w.ms.install_sieve(BOB, &format!("redirect \"{ALICE}\";\n"));
    let m = message(CAROL, ALICE, "Round and round", &tricky_body("loop"));
    w.pf.send_smtp(CAROL, &[ALICE], &m);
    // Bounded: the queue drains within the deadline (settle panics if not).
    w.settle();
    w.ms.wait_until("mailstow to log \"redirect skipped\"", |ms| {
        ms.log().contains("redirect skipped").then_some(())
    });

    let alice = w.inbox(ALICE);
    let bob = w.inbox(BOB);
    eprintln!(
        "loop: alice kept {}, bob kept {}, Postfix deliveries {:?}",
        alice.len(),
        bob.len(),
        w.deliveries().iter().map(|d| &d.to).collect::<Vec<_>>()
    );
    assert!(
        !alice.is_empty() || !bob.is_empty(),
        "the message is kept somewhere"
    );
    for (who, msgs) in [(ALICE, &alice), (BOB, &bob)] {
        assert!(msgs.len() <= 2, "{who} got {} copies", msgs.len());
        for f in msgs.iter() {
            assert!(f.body.ends_with(&m), "{who}'s copy is the message");
        }
    }
    let sent = w.deliveries();
    assert!(
        sent.iter().all(|d| d.status == "sent"),
        "nothing bounced or deferred: {sent:?}"
    );
    assert!(
        sent.len() <= 4,
        "a handful of hops, not a loop: {} deliveries",
        sent.len()
    );
    assert!(w.inbox(CAROL).is_empty(), "no bounce to the sender");
    // The loop is over: another settle finds nothing new.
    let before = w.deliveries().len();
    w.settle();
    assert_eq!(w.deliveries().len(), before, "no further hops");
}

// ---------------------------------------------------------------------------
// 4. Broken and edited scripts
// ---------------------------------------------------------------------------

fn start_plain(users: &[&str]) -> (Mailstow, Dovecot) {
    let ms = Mailstow::start(users);
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    (ms, dc)
}

#[test]
fn script_that_does_not_compile_keeps_the_message_in_inbox_and_logs_the_line_beside_it() {
    // (user, script, line of the error as Pigeonhole's sievec reports it)
    let cases: [(&str, &str, usize); 3] = [
        (
            ALICE,
            "require \"fileinto\";\nif header :contains \"subject\" \"x\" {\n    fileinto \"X\"\n}\n",
            4,
        ),
        (
            BOB,
            "require \"fileinto\";\n# an unknown command\nfrobnicate \"x\";\nkeep;\n",
            3,
        ),
        (
            DAVE,
            "require \"fileinto\";\n\nfileinto :bogus \"x\";\n",
            3,
        ),
    ];
    let users: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let (ms, dc) = start_plain(&users);
    let mut failures = Vec::new();
    for (user, script, line) in cases {
        let path = ms.install_sieve(user, script);
        let m = message("sender@example.net", user, "x marks the spot", "hello\n");
        let reply = lmtp_deliver(&ms, "sender@example.net", user, &m);
        if code(&reply) != 250 {
            failures.push(format!("{user}: reply {reply:?}, expected 250"));
        }
        let stored = read_all(&ms, &dc, user);
        let folders: Vec<&str> = stored.iter().map(|(f, _)| f.as_str()).collect();
        if folders != ["INBOX"] || !stored[0].1.body.ends_with(&m) {
            failures.push(format!(
                "{user}: stored in {folders:?}, expected INBOX only"
            ));
        }
        let log_path = PathBuf::from(format!("{}.log", path.display()));
        let log = crate::util::read_text(&log_path);
        let names_line = log.contains(&format!("{}: {line}:", path.display()))
            || log.contains(&format!("line {line}"));
        if !names_line {
            failures.push(format!(
                "{user}: {} does not name line {line}:\n{log}",
                log_path.display()
            ));
        }
        match fs::metadata(&log_path) {
            Ok(md) if (md.uid(), md.gid()) != (ms.owner.uid, ms.owner.gid) => failures.push(
                format!("{user}: {} is not owned by the user", log_path.display()),
            ),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nmailstow log:\n{}",
        failures.join("\n"),
        crate::util::tail(&ms.log(), 20)
    );
}

#[test]
fn script_edited_between_two_deliveries_takes_effect_without_restarting_mailstow() {
    let (mut ms, dc) = start_plain(&[ALICE]);
    let pid = ms.pid();
    let deliver_and_see = |ms: &Mailstow, n: usize| -> Vec<String> {
        let m = message(
            "sender@example.net",
            ALICE,
            &format!("delivery {n}"),
            "hi\n",
        );
        let reply = lmtp_deliver(ms, "sender@example.net", ALICE, &m);
        assert_eq!(code(&reply), 250, "delivery {n}: {reply:?}");
        read_all(ms, &dc, ALICE)
            .into_iter()
            .filter(|(_, f)| f.body.ends_with(&m))
            .map(|(folder, _)| folder)
            .collect()
    };
    let script = |folder: &str| {
        format!("require [\"fileinto\", \"mailbox\"];\nfileinto :create \"{folder}\";\n")
    };

    // Installed by rename (ManageSieve, editors).
    let path = ms.install_sieve(ALICE, &script("One"));
    assert_eq!(deliver_and_see(&ms, 1), ["One"]);
    // Rewritten in place with the same size (same inode, same length).
    fs::write(&path, script("Two")).expect("rewrite script");
    assert_eq!(deliver_and_see(&ms, 2), ["Two"], "in-place edit seen");
    // Broken: the message is kept.
    fs::write(
        &path,
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Three\"\n",
    )
    .expect("break script");
    assert_eq!(deliver_and_see(&ms, 3), ["INBOX"], "broken script keeps");
    // Fixed by rename.
    ms.install_sieve(ALICE, &script("Four"));
    assert_eq!(deliver_and_see(&ms, 4), ["Four"], "fixed script seen");
    // Removed: the implicit keep.
    fs::remove_file(&path).expect("remove script");
    assert_eq!(deliver_and_see(&ms, 5), ["INBOX"], "no script: INBOX");
    assert!(ms.exited().is_none(), "mailstow kept running");
    assert_eq!(ms.pid(), pid, "never restarted");
}

// ---------------------------------------------------------------------------
// 5. reject for one recipient of two
// ---------------------------------------------------------------------------

#[test]
fn reject_for_one_of_two_recipients_answers_550_for_it_and_250_for_the_other() {
    let (ms, dc) = start_plain(&[ALICE, BOB]);
    let reason = "I do not accept mail about this subject.";
    ms.install_sieve(
        ALICE,
        &format!("require \"reject\";\nreject \"{reason}\";\n"),
    );
    let mut failures = Vec::new();
    let mut delivered: Vec<Vec<u8>> = Vec::new();
    for order in [[ALICE, BOB], [BOB, ALICE]] {
        let m = message(
            "sender@example.net",
            ALICE,
            &format!("to {} then {}", order[0], order[1]),
            "please\n",
        );
        let mut c = ms.connect();
        c.lhlo();
        let replies = c.deliver("sender@example.net", &order, &m);
        c.quit();
        for (rcpt, reply) in order.iter().zip(&replies) {
            let ok = if *rcpt == ALICE {
                code(reply) == 550
                    && reply.len() == 1
                    && reply[0].starts_with("550 5.7.1 ")
                    && reply_text(reply).contains(reason)
            } else {
                code(reply) == 250 && reply.len() == 1
            };
            if !ok {
                failures.push(format!("order {order:?}: {rcpt} got {reply:?}"));
            }
        }
        delivered.push(m);
    }
    let bob = read_all(&ms, &dc, BOB);
    for m in &delivered {
        if bob
            .iter()
            .filter(|(f, b)| f == "INBOX" && b.body.ends_with(m))
            .count()
            != 1
        {
            failures.push("bob's INBOX lacks a message he was sent".into());
        }
    }
    let alice = read_all(&ms, &dc, ALICE);
    if !alice.is_empty() {
        failures.push(format!("alice rejected but has {} message(s)", alice.len()));
    }
    assert!(
        failures.is_empty(),
        "{}\nmailstow log:\n{}",
        failures.join("\n"),
        crate::util::tail(&ms.log(), 20)
    );
}

/// The small codecs above, on known values (RFC 3501 5.1.3 and RFC 2047
/// examples), so a failure of the end-to-end tests is never theirs.
#[test]
fn test_codecs_mutf7_rfc2047_and_transfer_encodings_decode_known_values() {
    assert_eq!(mutf7("INBOX"), "INBOX");
    assert_eq!(mutf7("Grüße"), "Gr&APwA3w-e");
    assert_eq!(mutf7("A&B"), "A&-B");
    assert_eq!(mutf7("日本語"), "&ZeVnLIqe-");
    assert_eq!(
        decode_rfc2047("=?utf-8?q?Abwesend_=E2=80=93?= =?UTF-8?B?IHp1csO8Y2s=?=").as_deref(),
        Ok("Abwesend – zurück")
    );
    assert_eq!(decode_rfc2047("plain text").as_deref(), Ok("plain text"));
    assert!(decode_rfc2047("Re: =?iso-8859-1?q?caf=E9?=")
        .unwrap_err()
        .contains("charset"));
    assert_eq!(base64_decode(b"w7xiZXI="), "über".as_bytes());
    assert_eq!(
        qp_decode(b"f=C3=BCr =\r\nalle", false),
        "für alle".as_bytes()
    );
    assert_eq!(
        reply_text(&["550-5.7.1 a b".into(), "550 5.7.1 c".into()]),
        "a b c"
    );
    let log = "Nov 28 16:37:19 h postfix/lmtp[1]: ABC123: to=<a@b.c>, relay=x, status=sent (250 ok)\n\
               Nov 28 16:37:19 h postfix/qmgr[2]: ABC123: from=<>, size=9, nrcpt=1 (queue active)\n";
    let d = pf_deliveries(log);
    assert_eq!(
        (d[0].qid.as_str(), d[0].to.as_str(), d[0].status.as_str()),
        ("ABC123", "a@b.c", "sent")
    );
    assert_eq!(pf_sender(log, "ABC123").as_deref(), Some(""));
}
