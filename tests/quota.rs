//! Maildir++ quota over a real socket: a full mailbox refuses at RCPT when
//! the client announced SIZE, and at the end of DATA otherwise, with 552
//! 5.2.2 (or 452 4.2.2 when configured as temporary); maildirsize keeps the
//! usage in the format Dovecot and Courier read. The `dovecot_` tests then
//! start a real Dovecot with its maildir quota plugin on the same Maildirs
//! and check that both count the same usage, that each sees the other's
//! changes, and that both leave a `Trash:ignore` folder out; and with the
//! same quota_warning thresholds, Dovecot's LMTP and mailstow fire the same
//! warnings at the same deliveries. Must not touch the system Dovecot.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::peers::Dovecot;
use crate::util::{code, message, passwd_line, Mailstow, Options, PASSWORD};

const ALICE: &str = "alice@example.org";

fn start(over: &str) -> Mailstow {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!("[quota]\nrule = \"*:storage=3K\"\nover_quota = \"{over}\"\n");
    Mailstow::start_with(opts)
}

#[test]
fn a_full_mailbox_refuses_at_rcpt_with_size_and_at_data_without() {
    let ms = start("permanent");
    let mut c = ms.connect();
    c.lhlo();
    let body = "x".repeat(400);
    for i in 0..3 {
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, &format!("m{i}"), &body),
        );
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    let usage =
        std::fs::read_to_string(ms.maildir(ALICE).folder("INBOX").join("maildirsize")).unwrap();
    assert!(usage.starts_with("3072S\n"), "{usage}");
    // Announced size over what is left: refused before the upload.
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net> SIZE=2000")), 250);
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    c.cmd("RSET");
    // No SIZE: accepted at RCPT, refused after the data, nothing stored.
    c.cmd("MAIL FROM:<s@example.net>");
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(
        &message("s@example.net", ALICE, "big", &"y".repeat(2000)),
        1,
    );
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 3);
}

#[test]
fn over_quota_can_be_a_temporary_failure() {
    let ms = start("temporary");
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "fill", &"x".repeat(2500)),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
    c.cmd("MAIL FROM:<s@example.net> SIZE=500");
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert!(r[0].starts_with("452 4.2.2"), "{r:?}");
}

/// A mailstow whose only user has the passwd-file extra field
/// `userdb_quota_rule=<rule>` and no Maildir yet.
fn start_with_user_rule(rule: &str, over: &str) -> Mailstow {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!("[quota]\nover_quota = \"{over}\"\n");
    let ms = Mailstow::start_with(opts);
    let line = passwd_line(ALICE, PASSWORD, ms.owner);
    fs::write(
        &ms.users_file,
        format!("{}userdb_quota_rule={rule}\n", line.trim_end()),
    )
    .unwrap();
    assert!(!ms.home(ALICE).exists());
    ms
}

#[test]
fn a_mailbox_not_created_yet_refuses_what_its_quota_cannot_hold() {
    let ms = start_with_user_rule("*:storage=1K", "permanent");
    let mut c = ms.connect();
    c.lhlo();
    // Announced size over the limit of an empty mailbox: refused at RCPT.
    let r = rcpt_with_size(&mut c, 500_000);
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    let r = rcpt_with_size(&mut c, 1025);
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    assert!(!ms.home(ALICE).exists(), "the RCPT check created the home");
    // No SIZE: accepted at RCPT, refused after the data, nothing stored.
    let big = message("s@example.net", ALICE, "big", &"y".repeat(5000));
    let r = c.deliver("s@example.net", &[ALICE], &big);
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    assert!(
        !ms.maildir(ALICE).root.exists(),
        "a refused message created the Maildir"
    );
}

#[test]
fn a_mailbox_not_created_yet_can_refuse_temporarily() {
    let ms = start_with_user_rule("*:storage=1K", "temporary");
    let mut c = ms.connect();
    c.lhlo();
    let r = rcpt_with_size(&mut c, 500_000);
    assert!(r[0].starts_with("452 4.2.2"), "{r:?}");
    let big = message("s@example.net", ALICE, "big", &"y".repeat(5000));
    let r = c.deliver("s@example.net", &[ALICE], &big);
    assert!(r[0][0].starts_with("452 4.2.2"), "{r:?}");
    assert!(!ms.maildir(ALICE).root.exists());
}

#[test]
fn a_message_that_fits_creates_the_mailbox_and_is_counted() {
    let ms = start_with_user_rule("*:storage=1K", "permanent");
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&rcpt_with_size(&mut c, 300)), 250);
    let small = message("s@example.net", ALICE, "small", &"x".repeat(300));
    let r = c.deliver("s@example.net", &[ALICE], &small);
    assert_eq!(code(&r[0]), 250, "{r:?}");
    let (bytes, count) = stored(&ms, ALICE, &["INBOX"]);
    assert_eq!(count, 1);
    assert!(bytes > 300 && bytes <= 1024, "{bytes}");
    assert_eq!(maildirsize(&ms, ALICE), ("1024S".to_owned(), bytes, 1));
    // What is left is checked against what was stored.
    let r = rcpt_with_size(&mut c, 1024 - bytes + 1);
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
}

/// The quota plugin as a Dovecot admin would enable it for these Maildirs,
/// with `rules` as `quota_rule`, `quota_rule2`, ... (none: from userdb).
fn dovecot_quota_conf(rules: &[&str]) -> String {
    let mut conf = String::from(
        "mail_plugins = $mail_plugins quota\n\
         protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n\
         plugin {\n  quota = maildir:User quota\n",
    );
    for (i, r) in rules.iter().enumerate() {
        let n = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        conf.push_str(&format!("  quota_rule{n} = {r}\n"));
    }
    conf.push_str("}\n");
    conf
}

/// maildirsize of `address`: the limit line and the summed usage.
fn maildirsize(ms: &Mailstow, address: &str) -> (String, u64, u64) {
    let path = ms.maildir(address).root.join("maildirsize");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text.lines();
    let limit = lines.next().unwrap_or_default().to_owned();
    let (mut bytes, mut messages) = (0i64, 0i64);
    for l in lines {
        let (b, m) = l.split_once(' ').unwrap_or_else(|| panic!("line {l:?}"));
        bytes += b.parse::<i64>().expect("bytes");
        messages += m.parse::<i64>().expect("count");
    }
    (limit, bytes as u64, messages as u64)
}

/// Bytes (the S= sizes) and messages stored in these folders.
fn stored(ms: &Mailstow, address: &str, folders: &[&str]) -> (u64, u64) {
    let md = ms.maildir(address);
    folders
        .iter()
        .flat_map(|f| md.messages(f))
        .fold((0, 0), |(b, n), m| {
            (b + m.s_field().expect("S= in the name"), n + 1)
        })
}

/// Kilobytes as Dovecot shows them (rounded up).
fn kb(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

/// `doveadm quota get`: (STORAGE used, STORAGE limit) in kilobytes and
/// the message count.
fn dovecot_usage(dc: &Dovecot, user: &str) -> (u64, Option<u64>, u64) {
    let rows = dc.quota_get(user);
    let row = |t: &str| {
        rows.iter()
            .find(|r| r.0 == t)
            .cloned()
            .unwrap_or_else(|| panic!("no {t} in {rows:?}"))
    };
    let (storage, messages) = (row("STORAGE"), row("MESSAGE"));
    (storage.1, storage.2, messages.1)
}

/// MAIL FROM with SIZE, then RCPT: the RCPT reply (then RSET).
fn rcpt_with_size(c: &mut crate::util::LmtpClient, size: u64) -> Vec<String> {
    assert_eq!(
        code(&c.cmd(&format!("MAIL FROM:<s@example.net> SIZE={size}"))),
        250
    );
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    c.cmd("RSET");
    r
}

#[test]
fn dovecot_reads_mailstows_usage_and_mailstow_sees_dovecots_changes() {
    const LIMIT: u64 = 8192;
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[quota]\nrules = [\"*:storage=8\"]\n".into();
    let ms = Mailstow::start_with(opts);
    ms.install_sieve(
        ALICE,
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"list\" { fileinto :create \"Lists.rust\"; }\n",
    );
    let mut c = ms.connect();
    c.lhlo();
    for subject in ["a", "list 1", "b", "list 2", "c"] {
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, subject, &"x".repeat(500)),
        );
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    let (inbox, lists) = (
        ms.maildir(ALICE).messages("INBOX"),
        ms.maildir(ALICE).messages("Lists.rust"),
    );
    assert_eq!((inbox.len(), lists.len()), (3, 2));
    // mailstow's tally: `storage=8` is 8 kilobytes, as in Dovecot.
    let (limit, used, count) = maildirsize(&ms, ALICE);
    assert_eq!(limit, "8192S");
    assert_eq!((used, count), stored(&ms, ALICE, &["INBOX", "Lists.rust"]));
    assert_eq!(count, 5);
    // Dovecot, running as the user, must be able to rewrite it.
    let meta = fs::metadata(ms.maildir(ALICE).root.join("maildirsize")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (ms.owner.uid, ms.owner.gid));

    let dc = Dovecot::start_with(
        &ms.users_file,
        &ms.mail_root,
        &dovecot_quota_conf(&["*:storage=8K"]),
    );
    let before = fs::read(ms.maildir(ALICE).root.join("maildirsize")).unwrap();
    assert_eq!(dovecot_usage(&dc, ALICE), (kb(used), Some(8), 5));
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    let root = imap.quota_root("INBOX");
    assert_eq!(root, vec![("STORAGE".to_owned(), kb(used), 8)]);
    assert_eq!(
        fs::read(ms.maildir(ALICE).root.join("maildirsize")).unwrap(),
        before,
        "Dovecot took mailstow's maildirsize as it was"
    );
    // Dovecot's own count from the files, to the byte.
    dc.doveadm(&["quota", "recalc", "-u", ALICE]);
    assert_eq!(maildirsize(&ms, ALICE), ("8192S".to_owned(), used, 5));

    // Dovecot adds a message: mailstow refuses what no longer fits.
    let remaining = LIMIT - used;
    assert_eq!(code(&rcpt_with_size(&mut c, remaining)), 250);
    let appended = message("s@example.net", ALICE, "appended", &"y\r\n".repeat(600));
    imap.append("INBOX", &appended).expect("APPEND under quota");
    let (_, used2, count2) = maildirsize(&ms, ALICE);
    assert!(used2 > used && count2 == 6, "{used2} {count2}");
    let r = rcpt_with_size(&mut c, LIMIT - used2 + 1);
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    assert_eq!(code(&rcpt_with_size(&mut c, LIMIT - used2)), 250);
    let big = message(
        "s@example.net",
        ALICE,
        "big",
        &"z".repeat((LIMIT - used2) as usize + 200),
    );
    let r = c.deliver("s@example.net", &[ALICE], &big);
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");

    // Dovecot expunges INBOX: the same message now fits.
    assert_eq!(imap.select("INBOX"), 4);
    imap.expunge_all();
    let (_, used3, count3) = maildirsize(&ms, ALICE);
    assert_eq!((used3, count3), stored(&ms, ALICE, &["Lists.rust"]));
    let r = c.deliver("s@example.net", &[ALICE], &big);
    assert_eq!(code(&r[0]), 250, "{r:?}");
    let (_, used4, count4) = maildirsize(&ms, ALICE);
    assert_eq!(
        (used4, count4),
        stored(&ms, ALICE, &["INBOX", "Lists.rust"])
    );
    assert_eq!(count4, 3);
    assert_eq!(
        imap.quota_root("INBOX"),
        vec![("STORAGE".to_owned(), kb(used4), 8)]
    );
    imap.logout();
    dc.doveadm(&["quota", "recalc", "-u", ALICE]);
    assert_eq!(maildirsize(&ms, ALICE), ("8192S".to_owned(), used4, 3));
}

#[test]
fn dovecot_and_mailstow_leave_an_ignored_trash_out_of_a_full_quota() {
    let ms = Mailstow::start_with(Options::new(&[ALICE]));
    // One passwd-file for both: the rules are userdb extra fields.
    let line = passwd_line(ALICE, PASSWORD, ms.owner);
    fs::write(
        &ms.users_file,
        format!(
            "{}userdb_quota_rule=*:storage=3K userdb_quota_rule2=Trash:ignore userdb_quota_rule3=Junk:storage=+2K\n",
            line.trim_end()
        ),
    )
    .unwrap();
    ms.install_sieve(
        ALICE,
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"deleted\" { fileinto :create \"Trash\"; }\n\
         elsif header :contains \"subject\" \"spam\" { fileinto :create \"Junk\"; }\n",
    );
    let mut c = ms.connect();
    c.lhlo();
    let send = |c: &mut crate::util::LmtpClient, subject: &str, body: usize| {
        c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, subject, &"x".repeat(body)),
        )
    };
    for subject in ["a", "b"] {
        assert_eq!(code(&send(&mut c, subject, 1000)[0]), 250);
    }
    let (limit, full, _) = maildirsize(&ms, ALICE);
    assert_eq!(limit, "3072S");
    // INBOX is full: refused at RCPT (SIZE) and after DATA.
    let r = rcpt_with_size(&mut c, 3072 - full + 1);
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    let r = send(&mut c, "c", 1000);
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");
    // Filed into the ignored Trash: accepted and not counted.
    for subject in ["deleted 1", "deleted 2"] {
        let r = send(&mut c, subject, 1000);
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    assert_eq!(ms.maildir(ALICE).messages("Trash").len(), 2);
    assert_eq!(maildirsize(&ms, ALICE).1, full);
    // Junk may go 2K over the mailbox limit, not further.
    let r = send(&mut c, "spam big", 3000);
    assert!(r[0][0].starts_with("552 5.2.2"), "{r:?}");
    assert_eq!(code(&send(&mut c, "spam 1", 1000)[0]), 250);
    let (_, used, count) = maildirsize(&ms, ALICE);
    assert_eq!((used, count), stored(&ms, ALICE, &["INBOX", "Junk"]));
    assert!(used > 3072 && count == 3, "{used} {count}");
    // Now over the mailbox limit: RCPT refuses even without SIZE, before
    // Sieve could choose a folder (as Dovecot's lmtp_rcpt_check_quota).
    c.cmd("MAIL FROM:<s@example.net>");
    let r = c.cmd(&format!("RCPT TO:<{ALICE}>"));
    assert!(r[0].starts_with("552 5.2.2"), "{r:?}");
    c.cmd("RSET");

    // Dovecot, reading the same rules from the same passwd-file.
    let dc = Dovecot::start_with(&ms.users_file, &ms.mail_root, &dovecot_quota_conf(&[]));
    assert_eq!(dovecot_usage(&dc, ALICE), (kb(used), Some(3), 3));
    dc.doveadm(&["quota", "recalc", "-u", ALICE]);
    assert_eq!(
        maildirsize(&ms, ALICE),
        ("3072S".to_owned(), used, 3),
        "Dovecot's own count leaves Trash out too"
    );
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    let small = message("s@example.net", ALICE, "small", "tiny\r\n");
    let e = imap.append("INBOX", &small).unwrap_err();
    assert!(e.contains("OVERQUOTA"), "{e}");
    imap.append("Trash", &small)
        .expect("APPEND to the ignored Trash");
    assert_eq!(
        maildirsize(&ms, ALICE).1,
        used,
        "Dovecot did not count Trash"
    );
    assert_eq!(ms.maildir(ALICE).messages("Trash").len(), 3);
    imap.logout();
}

/// Dovecot's quota_warning: the first warning whose threshold a delivery
/// crosses upward runs its command once, as the mailbox owner, with %u
/// expanded; deliveries that stay above it, or below the next, run nothing.
#[test]
fn a_quota_warning_runs_once_when_a_delivery_crosses_its_threshold() {
    let out = tempfile::tempdir().unwrap();
    let script = out.path().join("warn.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$* uid=$(id -u)\" >> {}/warned\n",
            out.path().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!(
        "[quota]\nrule = \"*:storage=10K\"\nwarnings = [\"storage=90%% {s} 90 %u\", \"storage=50% {s} 50 %u\"]\n",
        s = script.display()
    );
    let ms = Mailstow::start_with(opts);
    let warned = || fs::read_to_string(out.path().join("warned")).unwrap_or_default();
    let mut c = ms.connect();
    c.lhlo();
    let send = |c: &mut crate::util::LmtpClient, i: usize| {
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, &format!("m{i}"), &"x".repeat(1500)),
        );
        assert_eq!(code(&r[0]), 250, "{r:?}");
    };
    // About 1.9K each (body and headers): 1, 2 below 50% of 10K.
    for i in 0..2 {
        send(&mut c, i);
    }
    assert_eq!(warned(), "");
    // The third crosses 50% (5,120 bytes): the 50% warning, once.
    send(&mut c, 2);
    let one = crate::util::poll(crate::util::TIMEOUT, || {
        let w = warned();
        (!w.is_empty()).then_some(w)
    })
    .expect("the 50% warning ran");
    assert_eq!(
        one,
        format!("50 {ALICE} uid={}\n", ms.owner.uid),
        "as the mailbox owner"
    );
    // The fourth stays between 50% and 90%: nothing more.
    send(&mut c, 3);
    // The fifth crosses 90% (9,216 bytes): the 90% warning (first listed).
    send(&mut c, 4);
    let both = crate::util::poll(crate::util::TIMEOUT, || {
        let w = warned();
        (w.lines().count() >= 2).then_some(w)
    })
    .expect("the 90% warning ran");
    assert_eq!(
        both.lines().nth(1),
        Some(format!("90 {ALICE} uid={}", ms.owner.uid).as_str())
    );
    assert_eq!(both.lines().count(), 2, "{both}");
}

/// The quota both sides run: 100K and 11 messages, three warnings in
/// Dovecot's order (the first that matches runs).
const WARN_RULE: &str = "*:storage=100K:messages=11";
const WARNINGS: [(&str, &str); 3] = [
    ("storage=95%%", "95"),
    ("storage=80%%", "80"),
    ("messages=50%%", "m50"),
];

/// A script that appends its arguments to `dir/name.warned`.
fn recorder(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let script = dir.join(format!("{name}.sh"));
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}/{name}.warned\n",
            dir.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script
}

/// Dovecot with LMTP on `lmtp`, the quota plugin, WARN_RULE and WARNINGS
/// run through a `script` service that runs `script`.
fn dovecot_warning_conf(lmtp: std::net::SocketAddr, script: &std::path::Path) -> String {
    let mut warnings = String::new();
    for (i, (spec, arg)) in WARNINGS.iter().enumerate() {
        let n = if i == 0 {
            String::new()
        } else {
            (i + 1).to_string()
        };
        warnings.push_str(&format!(
            "  quota_warning{n} = {spec} quota-warning {arg} %u\n"
        ));
    }
    let quota = dovecot_quota_conf(&[WARN_RULE])
        .replace("  quota_rule =", &format!("{warnings}  quota_rule ="));
    format!(
        "protocols = imap pop3 lmtp\n\
         service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    port = {}\n  }}\n}}\n\
         service quota-warning {{\n  executable = script {}\n  user = vmail\n  \
         unix_listener quota-warning {{\n    mode = 0666\n  }}\n}}\n{quota}",
        lmtp.port(),
        script.display()
    )
}

/// mailstow with the same rule and warnings, each running `script`.
fn mailstow_warning_conf(script: &std::path::Path) -> String {
    let warnings: Vec<String> = WARNINGS
        .iter()
        .map(|(spec, arg)| format!("\"{spec} {} {arg} %u\"", script.display()))
        .collect();
    format!(
        "[quota]\nrule = \"{WARN_RULE}\"\nwarnings = [{}]\n",
        warnings.join(", ")
    )
}

/// One delivery over LMTP at `addr`; must be accepted.
fn deliver_one(addr: std::net::SocketAddr, subject: &str, body: usize) {
    let mut c = crate::util::LmtpClient::tcp(addr);
    c.lhlo();
    let m = message("s@example.net", ALICE, subject, &"x".repeat(body));
    let r = c.deliver("s@example.net", &[ALICE], &m);
    assert_eq!(code(&r[0]), 250, "{subject}: {r:?}");
    c.quit();
}

/// The warnings recorded in `file`, waiting until there are `n`.
fn wait_warned(file: &std::path::Path, n: usize) -> Vec<String> {
    let lines = || {
        crate::util::read_text(file)
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    crate::util::poll(crate::util::TIMEOUT, || {
        Some(lines()).filter(|l| l.len() >= n)
    })
    .unwrap_or_else(|| panic!("{}: want {n} warnings, have {:?}", file.display(), lines()))
}

/// Deliver (subject, body size, warnings expected after it) to `addr`,
/// waiting for each expected warning in `file` before the next delivery.
fn deliver_and_watch(
    addr: std::net::SocketAddr,
    file: &std::path::Path,
    steps: &[(&str, usize, usize)],
) {
    for &(subject, body, warned) in steps {
        deliver_one(addr, subject, body);
        wait_warned(file, warned);
    }
}

/// Expunge the messages with these subjects through Dovecot's IMAP.
fn expunge_subjects(dc: &Dovecot, subjects: &[&str]) {
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.select("INBOX");
    for s in subjects {
        let found = imap.run(&format!("SEARCH SUBJECT \"{s}\"")).unwrap();
        let n = found
            .iter()
            .find_map(|l| l.text.strip_prefix("* SEARCH ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no {s}: {found:?}"));
        imap.run(&format!("STORE {} +FLAGS.SILENT (\\Deleted)", n.trim()))
            .unwrap();
    }
    imap.run("EXPUNGE").unwrap();
    imap.logout();
}

/// The first file (in name order) of INBOX in `root` for alice.
fn first_stored(root: &std::path::Path, subject: &str) -> Vec<u8> {
    let md = crate::util::Maildir::of(root, ALICE);
    md.messages("INBOX")
        .into_iter()
        .find(|m| crate::util::find(&m.bytes, format!("Subject: {subject}\n").as_bytes()).is_some())
        .unwrap_or_else(|| panic!("no {subject} under {}", root.display()))
        .bytes
}

/// The fields a delivery agent put above the message (up to `From:`).
fn added_fields(stored: &[u8]) -> String {
    let text = String::from_utf8_lossy(stored).into_owned();
    let end = text.find("From: <").expect("the message's own From");
    text[..end].to_owned()
}

/// Dovecot's quota_warning and mailstow's `[quota] warnings`, with the
/// same limit and thresholds, fire at the same deliveries with the same
/// arguments: upward crossings only (an IMAP expunge fires nothing, the
/// next upward crossing fires again), none for a recalculation (maildirsize
/// removed, `doveadm quota recalc`); a percentage of a limit it does not
/// divide is rounded down (messages=50% of 11 is 5). Dovecot's quota reads
/// mailstow's maildirsize as mailstow counts it. Also measures the fields
/// each adds above the message: the same three, mailstow's Received
/// longer.
#[test]
fn quota_warnings_fire_at_the_same_deliveries_as_dovecots() {
    let out = crate::util::temp_dir("mailstow-warn-");
    fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let (d_script, m_script) = (
        recorder(out.path(), "dovecot"),
        recorder(out.path(), "mailstow"),
    );
    let (d_file, m_file) = (
        out.path().join("dovecot.warned"),
        out.path().join("mailstow.warned"),
    );
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = mailstow_warning_conf(&m_script);
    let ms = Mailstow::start_with(opts);
    let d_root = out.path().join("dovecot-mail");
    fs::create_dir(&d_root).unwrap();
    crate::util::chown(&d_root, ms.owner);
    let lmtp = crate::util::free_v4();
    let dc = Dovecot::start_with(
        &ms.users_file,
        &d_root,
        &dovecot_warning_conf(lmtp, &d_script),
    );
    crate::util::poll(crate::util::TIMEOUT, || {
        crate::util::LmtpClient::try_tcp(lmtp).ok()
    })
    .expect("Dovecot's LMTP answers");
    // Mailstow's Maildir read by a Dovecot with the same quota, no LMTP.
    let reader = Dovecot::start_with(
        &ms.users_file,
        &ms.mail_root,
        &dovecot_quota_conf(&[WARN_RULE]),
    );

    // (subject, body bytes, warnings recorded after it): messages=50%
    // at the 5th, storage=80% at the 8th, 95% at the 9th.
    let first: Vec<(String, usize, usize)> = (1..=9)
        .map(|i| {
            let body = match i {
                8 => 12_000,
                9 => 13_500,
                _ => 10_000,
            };
            let warned = match i {
                1..=4 => 0,
                5..=7 => 1,
                8 => 2,
                _ => 3,
            };
            (format!("m{i}"), body, warned)
        })
        .collect();
    let first: Vec<(&str, usize, usize)> =
        first.iter().map(|(s, b, w)| (s.as_str(), *b, *w)).collect();
    for (addr, file) in [(lmtp, &d_file), (ms.tcp, &m_file)] {
        deliver_and_watch(addr, file, &first);
    }
    let (limit, used, count) = maildirsize(&ms, ALICE);
    assert_eq!((limit.as_str(), count), ("102400S,11C", 9));
    assert_eq!(dovecot_usage(&reader, ALICE), (kb(used), Some(100), 9));

    // Expunged through IMAP (below 80% again): nothing fires; then a
    // delivery that stays below, and one that crosses 80% upward again.
    expunge_subjects(&dc, &["m8", "m9"]);
    expunge_subjects(&reader, &["m8", "m9"]);
    for (addr, file) in [(lmtp, &d_file), (ms.tcp, &m_file)] {
        deliver_and_watch(addr, file, &[("m10", 4_000, 3), ("m11", 8_000, 4)]);
    }
    // Recalculated usage, above 80% all along: nothing fires.
    for root in [&d_root, &ms.mail_root] {
        fs::remove_file(
            crate::util::Maildir::of(root, ALICE)
                .root
                .join("maildirsize"),
        )
        .unwrap();
    }
    for (addr, file) in [(lmtp, &d_file), (ms.tcp, &m_file)] {
        deliver_and_watch(addr, file, &[("m12", 1_000, 4)]);
    }
    dc.doveadm(&["quota", "recalc", "-u", ALICE]);
    reader.doveadm(&["quota", "recalc", "-u", ALICE]);
    for (addr, file) in [(lmtp, &d_file), (ms.tcp, &m_file)] {
        deliver_and_watch(addr, file, &[("m13", 500, 4)]);
    }
    let want: Vec<String> = ["m50", "80", "95", "80"]
        .iter()
        .map(|w| format!("{w} {ALICE}"))
        .collect();
    assert_eq!(wait_warned(&d_file, 4), want, "Dovecot");
    assert_eq!(wait_warned(&m_file, 4), want, "mailstow");
    let (_, used, count) = maildirsize(&ms, ALICE);
    assert_eq!(count, 11);
    assert_eq!(dovecot_usage(&reader, ALICE), (kb(used), Some(100), 11));

    // What each put above the same message: the same fields, mailstow's
    // Received longer; that is the whole difference in size.
    let (d_msg, m_msg) = (
        first_stored(&d_root, "m1"),
        first_stored(&ms.mail_root, "m1"),
    );
    let (d_top, m_top) = (added_fields(&d_msg), added_fields(&m_msg));
    let names = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .map(|l| l.split(':').next().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        names(&d_top),
        ["Return-Path", "Delivered-To", "Received"],
        "{d_top}"
    );
    assert_eq!(names(&m_top), names(&d_top), "{m_top}");
    // Below those fields the copies are the same (but for the test's
    // numbered Message-ID): the fields are the whole difference.
    let rest = |m: &[u8], top: &str| -> String {
        String::from_utf8_lossy(&m[top.len()..])
            .lines()
            .filter(|l| !l.starts_with("Message-ID:"))
            .collect()
    };
    assert_eq!(rest(&d_msg, &d_top), rest(&m_msg, &m_top));
    let extra = m_top.len() as i64 - d_top.len() as i64;
    // Line by line: only the `by` host (mailstow adds "(mailstow)"), the
    // id and the date's day (Dovecot pads it to two digits) differ.
    let (d_lines, m_lines): (Vec<&str>, Vec<&str>) =
        (d_top.lines().collect(), m_top.lines().collect());
    assert_eq!(d_lines.len(), m_lines.len(), "{d_top}\n{m_top}");
    for i in [0, 1, 2, 5] {
        assert_eq!(d_lines[i], m_lines[i], "{d_top}\n{m_top}");
    }
    assert!(m_lines[3].ends_with(" (mailstow) with LMTP"), "{m_top}");
    assert!(d_lines[3].ends_with(" with LMTP"), "{d_top}");
    let to = |l: &str| l.split_once("; ").map(|x| x.0.to_owned());
    assert_eq!(to(d_lines[6]), to(m_lines[6]), "{d_top}\n{m_top}");
    assert!(extra.abs() <= 40, "{extra} bytes more:\n{d_top}\n{m_top}");
}
