//! What a Sieve script sees of the local hop and what it sends, end to
//! end: mailstow over LMTP with users' scripts and a sendmail stand-in that
//! captures every message handed to it (its exit code chosen per
//! recipient), and the same script and message through a private Dovecot
//! LMTP with Pigeonhole as the reference. Checks the trace fields a script
//! sees (and that they are the stored file's), `sieve test
//! --delivery-headers`, what redirect, vacation and notify send
//! (docs/sieve-compat.md, "What Sieve sends") and what a failed redirect
//! does. Must not send anything anywhere (the stand-in only writes files),
//! or bind anything but loopback.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::peers::Dovecot;
use crate::util::{
    apt_install_missing, chown, code, free_v4, poll, temp_dir, toml_str, vmail, write_passwd_file,
    LmtpClient, Mailstow, Options, HOSTNAME, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const SHOP: &str = "alice+shop@example.org";
const SENDER: &str = "sender@example.net";

/// A message that already crossed one hop before ours.
fn incoming(to: &str, subject: &str) -> Vec<u8> {
    format!(
        "Received: from outer.example by mta.example; Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         From: Sender <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{}@example.net>\r\n\r\nHello.\r\n",
        subject.replace(' ', "-")
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// The sendmail stand-in
// ---------------------------------------------------------------------------

/// A sendmail that keeps each message in `sent/` (the arguments on a first
/// `X-Capture-Args:` line) and exits 0, or with the code written in
/// `fail` beside it for a call whose arguments contain the text before it
/// (`carol@example.net 75`).
struct Capture {
    dir: TempDir,
}

/// One message handed to the stand-in.
#[derive(Debug, Clone)]
struct Sent {
    /// The envelope sender as passed to `-f` (`<>` for the null sender).
    from: String,
    to: Vec<String>,
    message: String,
}

impl Sent {
    /// The unfolded value of the first header field `name`.
    fn header(&self, name: &str) -> Option<String> {
        let head = self.message.split("\r\n\r\n").next().unwrap_or("");
        let head = head.split("\n\n").next().unwrap_or(head);
        let mut found: Option<String> = None;
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    found = Some(v.trim().to_owned());
                }
            }
        }
        found
    }

    /// The header field names, in order.
    fn field_names(&self) -> Vec<String> {
        let head = self.message.split("\n\n").next().unwrap_or("");
        let head = head.split("\r\n\r\n").next().unwrap_or(head);
        head.lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect()
    }
}

impl Capture {
    fn new() -> Capture {
        let dir = temp_dir("mailstow-sendmail-");
        let d = dir.path();
        fs::create_dir(d.join("sent")).expect("mkdir sent");
        fs::set_permissions(d.join("sent"), fs::Permissions::from_mode(0o777)).expect("chmod");
        let script = format!(
            "#!/bin/sh\n# sendmail stand-in (tests/sieve_sends.rs): keeps, sends nothing\n\
             f={d}/sent/$(date +%s%N).$$.msg\n\
             {{ echo \"X-Capture-Args: $*\"; cat; }} > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n\
             if [ -r {d}/fail ]; then\n\
             \x20 read pat rc < {d}/fail\n\
             \x20 case \"$*\" in *\"$pat\"*) exit \"$rc\";; esac\n\
             fi\n\
             exit 0\n",
            d = d.display()
        );
        fs::write(d.join("sendmail"), script).expect("write sendmail");
        fs::set_permissions(d.join("sendmail"), fs::Permissions::from_mode(0o755))
            .expect("chmod sendmail");
        Capture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("sendmail")
    }

    /// Calls whose arguments contain `pattern` exit with `code`.
    fn fail(&self, pattern: &str, code: u8) {
        fs::write(self.dir.path().join("fail"), format!("{pattern} {code}\n")).expect("write fail");
    }

    fn clear_failure(&self) {
        let _ = fs::remove_file(self.dir.path().join("fail"));
    }

    /// Everything handed over so far, oldest first.
    fn sent(&self) -> Vec<Sent> {
        let mut paths: Vec<PathBuf> = fs::read_dir(self.dir.path().join("sent"))
            .expect("read sent")
            .map(|e| e.expect("readdir").path())
            .filter(|p| p.extension().is_some_and(|x| x == "msg"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let text = String::from_utf8_lossy(&fs::read(&p).expect("read sent")).into_owned();
                let (args, message) = text.split_once('\n').unwrap_or((&text, ""));
                let args = args.trim_start_matches("X-Capture-Args:").trim();
                let (opts, rcpts) = args.split_once(" -- ").unwrap_or((args, ""));
                let from = opts
                    .split_once("-f ")
                    .map(|(_, f)| f.split_whitespace().next().unwrap_or("").to_owned())
                    .unwrap_or_default();
                Sent {
                    from,
                    to: rcpts.split_whitespace().map(str::to_owned).collect(),
                    message: message.to_owned(),
                }
            })
            .collect()
    }
}

/// mailstow for `users`, sending through `capture`, with `toml` appended
/// (more `[outbound]` keys first, then other tables).
fn mailstow(users: &[&str], capture: &Capture, toml: &str) -> Mailstow {
    let mut opts = Options::new(users);
    opts.extra_toml = format!(
        "[outbound]\nsendmail = {}\ntimeout = 30\n{toml}\n",
        toml_str(&capture.path().to_string_lossy())
    );
    Mailstow::start_with(opts)
}

/// Deliver over LMTP; the reply to the final dot, per recipient.
fn lmtp(addr: SocketAddr, from: &str, rcpts: &[&str], msg: &[u8]) -> Vec<Vec<String>> {
    let mut c = LmtpClient::tcp(addr);
    c.lhlo();
    let replies = c.deliver(from, rcpts, msg);
    c.quit();
    replies
}

/// The folders of a Maildir++ that hold at least one message ("INBOX" for
/// the root).
fn folders(maildir: &Path) -> BTreeSet<String> {
    let has_mail = |d: &Path| {
        ["new", "cur"]
            .iter()
            .any(|s| fs::read_dir(d.join(s)).is_ok_and(|mut e| e.next().is_some()))
    };
    let mut out = BTreeSet::new();
    if has_mail(maildir) {
        out.insert("INBOX".to_owned());
    }
    for e in fs::read_dir(maildir).into_iter().flatten() {
        let e = e.expect("readdir");
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(folder) = name.strip_prefix('.') {
            if !folder.is_empty() && folder != "." && has_mail(&e.path()) {
                out.insert(folder.to_owned());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Dovecot LMTP with Pigeonhole: the reference
// ---------------------------------------------------------------------------

/// A private Dovecot whose LMTP service runs users' scripts with
/// Pigeonhole, on its own passwd-file and mail root, and sends through
/// `capture`.
struct DovecotLmtp {
    dc: Dovecot,
    lmtp: SocketAddr,
    root: PathBuf,
    _dir: TempDir,
}

impl DovecotLmtp {
    fn start(users: &[&str], capture: &Capture) -> DovecotLmtp {
        apt_install_missing(&["/usr/lib/dovecot/lmtp"], &["dovecot-lmtpd"]);
        let owner = vmail();
        let dir = temp_dir("mailstow-dovecot-lmtp-");
        let root = dir.path().join("mail");
        fs::create_dir(&root).expect("mkdir mail root");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod");
        let users_file = dir.path().join("users");
        let names: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        write_passwd_file(&users_file, &names, owner);
        let lmtp = free_v4();
        let conf = format!(
            "protocols = imap pop3 lmtp\n\
             hostname = {HOSTNAME}\n\
             recipient_delimiter = +\n\
             postmaster_address = postmaster@example.org\n\
             sendmail_path = {sendmail}\n\
             lda_mailbox_autocreate = yes\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n\
             protocol lmtp {{\n  mail_plugins = $mail_plugins sieve\n}}\n\
             plugin {{\n  sieve = file:~/sieve;active=~/.dovecot.sieve\n}}\n",
            sendmail = capture.path().display(),
            port = lmtp.port(),
        );
        let dc = Dovecot::start_with(&users_file, &root, &conf);
        let up = poll(TIMEOUT, || LmtpClient::try_tcp(lmtp).ok().map(|c| c.quit()));
        assert!(
            up.is_some(),
            "Dovecot's LMTP does not answer:\n{}",
            dc.log()
        );
        DovecotLmtp {
            dc,
            lmtp,
            root,
            _dir: dir,
        }
    }

    fn home(&self, address: &str) -> PathBuf {
        let (local, domain) = address.rsplit_once('@').expect("address has @");
        self.root.join(domain).join(local)
    }

    /// The user's active script (the home made as Dovecot would want it).
    fn install_sieve(&self, address: &str, text: &str) {
        let owner = vmail();
        let home = self.home(address);
        for dir in [home.parent().expect("domain dir"), home.as_path()] {
            if !dir.exists() {
                fs::create_dir(dir).expect("mkdir home");
                chown(dir, owner);
            }
        }
        let script = home.join(".dovecot.sieve");
        fs::write(&script, text).expect("write script");
        chown(&script, owner);
    }

    fn folders(&self, address: &str) -> BTreeSet<String> {
        folders(&self.home(address).join("Maildir"))
    }
}

// ---------------------------------------------------------------------------
// 1. The local trace fields
// ---------------------------------------------------------------------------

/// Files into one folder per thing the script sees of the local hop. The
/// date is today's in UTC (sieve-rs sets no match variables for `date`,
/// so `currentdate` cannot give it).
fn sees_the_hop() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .expect("run date");
    let today = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    format!(
        r#"require ["fileinto", "copy", "mailbox", "date", "index", "relational", "comparator-i;ascii-numeric"];
if header :is "Delivered-To" "alice+shop@example.org" {{ fileinto :copy :create "DeliveredTo"; }}
if header :contains "Received" "for <alice+shop@example.org>" {{ fileinto :copy :create "ReceivedFor"; }}
if header :index 1 :contains "Received" "by mx.test" {{ fileinto :copy :create "TopReceivedIsOurs"; }}
if header :index 2 :contains "Received" "outer.example" {{ fileinto :copy :create "ThenTheirs"; }}
if header :is "Return-Path" "<sender@example.net>" {{ fileinto :copy :create "ReturnPath"; }}
if header :count "eq" :comparator "i;ascii-numeric" "Received" "2" {{ fileinto :copy :create "TwoHops"; }}
if date :zone "+0000" :is "received" "date" "{today}" {{ fileinto :copy :create "ReceivedToday"; }}
"#
    )
}

#[test]
fn scripts_see_the_local_hop_as_under_dovecot_lmtp_and_as_the_stored_file() {
    let capture = Capture::new();
    let ms = mailstow(&[ALICE], &capture, "");
    let dc = DovecotLmtp::start(&[ALICE], &capture);
    let script = sees_the_hop();
    ms.install_sieve(ALICE, &script);
    dc.install_sieve(ALICE, &script);
    let msg = incoming(SHOP, "the local hop");
    for addr in [ms.tcp, dc.lmtp] {
        let replies = lmtp(addr, SENDER, &[SHOP], &msg);
        assert_eq!(code(&replies[0]), 250, "{addr}: {replies:?}");
    }
    let want: BTreeSet<String> = [
        "INBOX",
        "DeliveredTo",
        "ReceivedFor",
        "TopReceivedIsOurs",
        "ThenTheirs",
        "ReturnPath",
        "TwoHops",
        "ReceivedToday",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(dc.folders(ALICE), want, "Pigeonhole:\n{}", dc.dc.log());
    let maildir = ms.maildir(ALICE);
    assert_eq!(folders(&maildir.root), want, "{}", ms.log());

    // What the script saw is the stored file: our three fields, once each,
    // then the message as it arrived.
    let stored = maildir.messages("INBOX");
    let text = String::from_utf8_lossy(&stored[0].bytes).into_owned();
    assert!(
        text.starts_with(&format!(
            "Return-Path: <{SENDER}>\nDelivered-To: {SHOP}\nReceived: from client.test"
        )),
        "{text}"
    );
    assert_eq!(text.matches("Delivered-To:").count(), 1, "{text}");
    let msg = crate::util::stored_form(&msg);
    assert!(text.ends_with(&*String::from_utf8_lossy(&msg)), "{text}");
}

#[test]
fn sieve_test_shows_the_fields_a_delivery_adds_when_asked() {
    let capture = Capture::new();
    let ms = mailstow(&[ALICE], &capture, "");
    let dir = temp_dir("mailstow-sieve-test-hop-");
    let script = dir.path().join("hop.sieve");
    fs::write(&script, sees_the_hop()).expect("write script");
    let message = dir.path().join("msg.eml");
    fs::write(&message, incoming(SHOP, "sieve test")).expect("write message");
    let fields = dir.path().join("fields");
    fs::write(
        &fields,
        "Delivered-To: alice+shop@example.org\nReceived: from a by mx.test; Mon, 1 Jan 2024 11:00:00 +0000\n",
    )
    .expect("write fields");
    let run = |extra: &[&str]| -> BTreeSet<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .args(["sieve", "test", "--config"])
            .arg(&ms.config)
            .args(["-f", SENDER, "-t", SHOP])
            .args(extra)
            .arg(&script)
            .arg(&message)
            .stdin(Stdio::null())
            .output()
            .expect("run sieve test");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("store: "))
            .map(|f| f.split(" flags").next().unwrap_or(f).to_owned())
            .chain(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|l| l.starts_with("keep (implicit)"))
                    .then(|| "INBOX".to_owned()),
            )
            .collect()
    };
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    // --delivery-headers: what the delivery above stored (the Received of
    // `sieve test` is pipe mode's, "by mx.test" without a "from").
    assert_eq!(
        run(&["--delivery-headers"]),
        set(&[
            "INBOX",
            "DeliveredTo",
            "ReceivedFor",
            "TopReceivedIsOurs",
            "ThenTheirs",
            "ReturnPath",
            "TwoHops",
            "ReceivedToday"
        ])
    );
    let with_file = format!("--delivery-headers={}", fields.display());
    assert_eq!(
        run(&[&with_file]),
        set(&[
            "INBOX",
            "DeliveredTo",
            "TopReceivedIsOurs",
            "ThenTheirs",
            "TwoHops"
        ])
    );
    // By default as --delivery-headers: what a delivery would show.
    assert_eq!(run(&[]), run(&["--delivery-headers"]));
    // --no-delivery-headers: the message as it is, as dovecot-lda shows it.
    assert_eq!(run(&["--no-delivery-headers"]), set(&["INBOX"]));
}

// ---------------------------------------------------------------------------
// 2. What Sieve sends
// ---------------------------------------------------------------------------

/// Both implementations with the same script for alice, each sending
/// through its own stand-in: (mailstow, its capture, Dovecot, its capture).
fn both(script: &str, toml: &str) -> (Mailstow, Capture, DovecotLmtp, Capture) {
    let (ms_out, dc_out) = (Capture::new(), Capture::new());
    let ms = mailstow(&[ALICE], &ms_out, toml);
    let dc = DovecotLmtp::start(&[ALICE], &dc_out);
    ms.install_sieve(ALICE, script);
    dc.install_sieve(ALICE, script);
    (ms, ms_out, dc, dc_out)
}

/// Deliver `msg` from `from` to `rcpt` through both; both must say 250.
fn deliver_both(ms: &Mailstow, dc: &DovecotLmtp, from: &str, rcpt: &str, msg: &[u8]) {
    for (who, addr) in [("mailstow", ms.tcp), ("Dovecot", dc.lmtp)] {
        let r = lmtp(addr, from, &[rcpt], msg);
        assert_eq!(code(&r[0]), 250, "{who}: {r:?}");
    }
}

/// What each stand-in got, once each has something.
fn sent_by_both(ms_out: &Capture, dc_out: &Capture, n: usize) -> (Vec<Sent>, Vec<Sent>) {
    let wait = |c: &Capture| {
        poll(TIMEOUT, || Some(c.sent()).filter(|s| s.len() >= n)).unwrap_or_else(|| c.sent())
    };
    (wait(ms_out), wait(dc_out))
}

#[test]
fn a_redirect_goes_out_as_delivered_as_pigeonhole_forwards_it() {
    let (ms, ms_out, dc, dc_out) = both("redirect \"bob@example.net\";\n", "");
    let msg = incoming(SHOP, "forward me");
    deliver_both(&ms, &dc, SENDER, SHOP, &msg);
    let (ours, theirs) = sent_by_both(&ms_out, &dc_out, 1);
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(theirs.len(), 1, "{theirs:?}");
    let (ours, theirs) = (&ours[0], &theirs[0]);
    for s in [ours, theirs] {
        assert_eq!(s.from, SENDER, "the original sender: {s:?}");
        assert_eq!(s.to, ["bob@example.net"]);
        // The message as delivered: our Delivered-To (with the detail)
        // and Received above the message's own, no Return-Path.
        assert_eq!(s.header("Delivered-To").as_deref(), Some(SHOP), "{s:?}");
        let received = s.header("Received").unwrap_or_default();
        assert!(
            received.contains("by mx.test") && received.contains("for <alice+shop@example.org>"),
            "{received}"
        );
        assert!(s.header("Return-Path").is_none(), "{s:?}");
        assert!(s
            .message
            .replace("\r\n", "\n")
            .ends_with(&String::from_utf8_lossy(&msg).replace("\r\n", "\n")));
    }
    // The same fields in the same order, after Pigeonhole's X-Sieve.
    let names = |s: &Sent| -> Vec<String> {
        s.field_names()
            .into_iter()
            .filter(|n| !n.eq_ignore_ascii_case("X-Sieve"))
            .collect()
    };
    assert_eq!(names(ours), names(theirs));
    assert_eq!(
        ours.header("X-Sieve-Redirected-From").as_deref(),
        Some(ALICE),
        "the account, without the detail: the loop mark"
    );
}

/// `<shop@alias.example>` or `Name <a@b>` or `a@b`: the address.
fn address_in(field: &str) -> String {
    field
        .rsplit_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(field, |(a, _)| a)
        .trim()
        .to_owned()
}

#[test]
fn a_vacation_reply_comes_from_the_address_the_correspondent_wrote_to_as_in_pigeonhole() {
    let script = "require \"vacation\";\n\
                  vacation :addresses [\"Shop <shop@alias.example>\"] :subject \"away\" \"I am away.\";\n";
    let (ms, ms_out, dc, dc_out) = both(script, "");
    // Written to an address of :addresses, delivered to the account.
    let to_alias = incoming("Shop <shop@alias.example>", "to the alias");
    deliver_both(&ms, &dc, SENDER, ALICE, &to_alias);
    // Written to the recipient with its detail (another correspondent: the
    // first one has had its reply).
    let to_detail = incoming(SHOP, "to the detail");
    deliver_both(&ms, &dc, "other@example.net", SHOP, &to_detail);
    let (ours, theirs) = sent_by_both(&ms_out, &dc_out, 2);
    for (who, sent) in [("mailstow", &ours), ("Pigeonhole", &theirs)] {
        let got: Vec<(String, String, Vec<String>)> = sent
            .iter()
            .map(|s| {
                (
                    address_in(&s.header("From").unwrap_or_default()),
                    s.from.clone(),
                    s.to.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "shop@alias.example".to_owned(),
                    "<>".to_owned(),
                    vec![SENDER.to_owned()]
                ),
                (
                    SHOP.to_owned(),
                    "<>".to_owned(),
                    vec!["other@example.net".to_owned()]
                ),
            ],
            "{who}: {sent:?}"
        );
    }
}

#[test]
fn a_notification_has_a_from_names_its_owner_and_keeps_the_null_sender() {
    let script = "require \"enotify\";\n\
                  if header :contains \"subject\" \"from alice\" {\n\
                  \x20 notify :from \"Alice <alice@example.org>\" :message \"new mail\" \"mailto:carol@example.net\";\n\
                  } else {\n\
                  \x20 notify :message \"new mail\" \"mailto:carol@example.net\";\n\
                  }\n";
    let (ms, ms_out, dc, dc_out) = both(script, "");
    deliver_both(&ms, &dc, SENDER, SHOP, &incoming(SHOP, "plain"));
    deliver_both(&ms, &dc, "", SHOP, &incoming(SHOP, "null sender"));
    deliver_both(&ms, &dc, SENDER, SHOP, &incoming(SHOP, "from alice"));
    let (ours, theirs) = sent_by_both(&ms_out, &dc_out, 3);
    assert_eq!(ours.len(), 3, "{ours:?}");
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    let owner = format!("auto-notified; owner-email=\"{SHOP}\"");
    for s in ours.iter().chain(&theirs) {
        assert_eq!(s.to, ["carol@example.net"], "{s:?}");
        assert_eq!(
            s.header("Auto-Submitted").as_deref(),
            Some(owner.as_str()),
            "{s:?}"
        );
        assert!(!s.header("From").unwrap_or_default().is_empty(), "{s:?}");
    }
    // Without :from: Pigeonhole writes the postmaster, mailstow the
    // recipient (RFC 5436 2.7 allows both); the null sender stays null
    // (2.7: MUST) on both.
    let got = |sent: &[Sent]| -> Vec<(String, String)> {
        sent.iter()
            .map(|s| (s.header("From").unwrap_or_default(), s.from.clone()))
            .collect()
    };
    assert_eq!(
        got(&theirs),
        [
            (
                "Postmaster <postmaster@example.org>".to_owned(),
                "postmaster@example.org".to_owned()
            ),
            (
                "Postmaster <postmaster@example.org>".to_owned(),
                "<>".to_owned()
            ),
            (
                "Alice <alice@example.org>".to_owned(),
                "alice@example.org".to_owned()
            ),
        ]
    );
    assert_eq!(
        got(&ours),
        [
            (SHOP.to_owned(), SHOP.to_owned()),
            (SHOP.to_owned(), "<>".to_owned()),
            ("Alice <alice@example.org>".to_owned(), SHOP.to_owned()),
        ]
    );
}

// ---------------------------------------------------------------------------
// 3. A redirect the MTA does not take
// ---------------------------------------------------------------------------

/// One user per script, so that no compiled script is stale.
const FAILING: [(&str, &str); 4] = [
    ("only@example.org", "redirect \"carol@example.net\";\n"),
    (
        "filed@example.org",
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Work\";\nredirect \"carol@example.net\";\n",
    ),
    (
        "second@example.org",
        "redirect \"bob@example.net\";\nredirect \"carol@example.net\";\n",
    ),
    (
        "copied@example.org",
        "require \"copy\";\nredirect :copy \"carol@example.net\";\n",
    ),
];

#[test]
fn a_redirect_the_mta_cannot_take_defers_only_while_a_retry_repeats_nothing() {
    let (ms_out, dc_out) = (Capture::new(), Capture::new());
    let users: Vec<&str> = FAILING.iter().map(|(u, _)| *u).collect();
    let ms = mailstow(&users, &ms_out, "");
    let dc = DovecotLmtp::start(&users, &dc_out);
    for (user, script) in FAILING {
        ms.install_sieve(user, script);
        dc.install_sieve(user, script);
    }
    ms_out.fail("carol@example.net", 75);
    dc_out.fail("carol@example.net", 75);
    let mut results = Vec::new();
    for (who, addr) in [("mailstow", ms.tcp), ("Pigeonhole", dc.lmtp)] {
        for (user, _) in FAILING {
            let r = lmtp(addr, SENDER, &[user], &incoming(user, "outbound down"));
            let stored = match who {
                "mailstow" => folders(&ms.maildir(user).root),
                _ => dc.folders(user),
            };
            results.push((who, user, code(&r[0]), stored));
        }
    }
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let want = |who, stored_copied: &[&str], copied_code| {
        vec![
            // Nothing done yet: deferred, the client retries.
            (who, "only@example.org", 451, set(&[])),
            // Stored already: kept as well, never deferred.
            (who, "filed@example.org", 250, set(&["INBOX", "Work"])),
            // Another redirect went out: kept, never sent twice.
            (who, "second@example.org", 250, set(&["INBOX"])),
            (who, "copied@example.org", copied_code, set(stored_copied)),
        ]
    };
    let mut expected = want("mailstow", &["INBOX"], 250);
    // The one difference: Pigeonhole defers `redirect :copy` (its implicit
    // keep comes after the redirect); mailstow has stored the keep first,
    // so the copy is kept and the redirect only logged.
    expected.extend(want("Pigeonhole", &[], 451));
    assert_eq!(results, expected, "mailstow log:\n{}", ms.log());
    assert!(ms
        .log()
        .contains("redirect failed; the message is kept instead"));
    let to = |sent: &[Sent], rcpt: &str| sent.iter().filter(|s| s.to == [rcpt]).count();
    let ours = ms_out.sent();
    assert_eq!(to(&ours, "bob@example.net"), 1, "{ours:?}");
    assert_eq!(to(&ours, "carol@example.net"), 4, "one try each");

    // The outbound is back: the deferred message goes out on the retry,
    // once, and nothing is stored for it.
    ms_out.clear_failure();
    let r = lmtp(
        ms.tcp,
        SENDER,
        &["only@example.org"],
        &incoming("only@example.org", "retry"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
    assert_eq!(to(&ms_out.sent(), "carol@example.net"), 5);
    assert!(folders(&ms.maildir("only@example.org").root).is_empty());
}

// ---------------------------------------------------------------------------
// 4. The address test on a header without addresses
// ---------------------------------------------------------------------------

#[test]
fn an_address_test_compiles_for_the_same_headers_as_under_pigeonhole() {
    crate::peers::ensure_installed();
    let dir = temp_dir("mailstow-address-headers-");
    let headers = [
        "From",
        "sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Resent-From",
        "Resent-Sender",
        "Resent-To",
        "Resent-Cc",
        "Resent-Bcc",
        "Resent-Reply-To",
        "Return-Receipt-To",
        "Errors-To",
        "Delivered-To",
        "X-Original-To",
        "Mail-Followup-To",
        "Mail-Reply-To",
        "Apparently-To",
        "X-Delivered-To",
        "Return-Path",
        "Envelope-To",
        "X-Envelope-To",
        "Original-To",
        "Original-Recipient",
        "Disposition-Notification-To",
        "List-Post",
        "Message-ID",
        "In-Reply-To",
        "Subject",
        "X-Foo",
    ];
    let mut differ = Vec::new();
    for h in headers {
        let script = dir.path().join(format!("{h}.sieve"));
        fs::write(
            &script,
            format!("if address :is \"{h}\" \"a@b.example\" {{ discard; }}\n"),
        )
        .expect("write script");
        let pigeonhole = Command::new("sievec")
            .arg(&script)
            .arg(dir.path().join(format!("{h}.svbin")))
            .stdin(Stdio::null())
            .output()
            .expect("run sievec")
            .status
            .success();
        let ours = Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .args(["sieve", "check"])
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .expect("run sieve check");
        let mailstow = ours.status.success();
        if pigeonhole != mailstow {
            differ.push(format!(
                "{h}: Pigeonhole {pigeonhole}, mailstow {mailstow}: {}",
                String::from_utf8_lossy(&ours.stdout).trim()
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn a_store_that_fails_is_answered_before_any_redirect_goes_out() {
    // Over quota (552): before, the redirect went out first and the sender
    // was told the message was not delivered although it was forwarded.
    let out = Capture::new();
    let ms = mailstow(&[ALICE], &out, "[quota]\nrule = \"*:storage=1K\"\n");
    ms.install_sieve(
        ALICE,
        "require \"copy\";\nredirect :copy \"carol@example.net\";\n",
    );
    let mut big = incoming(ALICE, "too big");
    big.extend(std::iter::repeat_n(b'x', 2000));
    big.extend_from_slice(b"\r\n");
    let r = lmtp(ms.tcp, SENDER, &[ALICE], &big);
    assert_eq!(code(&r[0]), 552, "{r:?}");
    assert!(out.sent().is_empty(), "{:?}", out.sent());
}
