//! Pipe mode (`mailstow deliver`) against the real binary: exit codes
//! (sysexits) for each outcome, a leading mbox From_ line dropped, LF-only
//! input stored with the right W=, -m folders, and delivery through a real
//! Postfix pipe(8) transport, read back through Dovecot. Must not depend on
//! log text beyond what it names.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use crate::peers::{Dovecot, Postfix};
use crate::util::{bare_lf_count, lf_to_crlf, Mailstow, Options, PASSWORD, TIMEOUT};

const ALICE: &str = "alice@example.org";

/// Run `mailstow deliver` with `input` on stdin; (exit code, stderr).
fn deliver(ms: &Mailstow, args: &[&str], input: &[u8]) -> (i32, String) {
    deliver_through(
        Command::new(env!("CARGO_BIN_EXE_mailstow")),
        ms,
        args,
        input,
    )
}

/// As [`deliver`], run by `cmd`: the mailstow binary with its environment
/// set, or a wrapper (setpriv) whose last argument it is.
fn deliver_through(mut cmd: Command, ms: &Mailstow, args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = cmd
        .arg("deliver")
        .arg("--config")
        .arg(&ms.config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mailstow deliver");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refusing child may close stdin early: that is not a test failure.
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pipe_mode_delivers_lf_input_byte_exact_and_dovecot_reads_it() {
    let ms = Mailstow::start(&[ALICE]);
    let body = b"Subject: piped\nFrom: s@example.net\n\nline one\n.dot line\nend\n";
    let mut input = b"From s@example.net Sat Nov 28 12:00:00 2026\n".to_vec();
    input.extend_from_slice(body);
    let (code, err) = deliver(&ms, &["-f", "s@example.net", "-d", ALICE], &input);
    assert_eq!(code, 0, "{err}");
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert!(
        f.bytes.ends_with(body),
        "stored as received, From_ line dropped"
    );
    assert!(!String::from_utf8_lossy(&f.bytes).contains("From s@example.net Sat"));
    assert_eq!(f.s_field(), Some(f.bytes.len() as u64));
    assert_eq!(
        f.w_field(),
        Some(f.bytes.len() as u64 + bare_lf_count(&f.bytes))
    );
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.examine("INBOX");
    let fetched = imap.fetch_all();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].body, lf_to_crlf(&f.bytes));
    assert_eq!(fetched[0].size, f.vsize());
    imap.logout();
}

#[test]
fn without_f_the_sender_is_the_return_path_the_mta_wrote_and_the_file_has_one() {
    let ms = Mailstow::start(&[ALICE]);
    let body = b"Subject: from exim\nFrom: s@example.net\n\nhi\n";
    // What Exim's return_path_add writes (folded, to show it is read as a
    // field), and an mbox From_ line above it, as a pipe transport may.
    let mut input =
        b"From s@example.net Sat Nov 28 12:00:00 2026\nReturn-path:\n <s@example.net>\n".to_vec();
    input.extend_from_slice(body);
    let (code, err) = deliver(&ms, &["-d", ALICE], &input);
    assert_eq!(code, 0, "{err}");
    // No Return-Path field: $SENDER, as Exim and OpenSMTPD set it.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailstow"));
    cmd.env("SENDER", "env@example.net");
    let (code, err) = deliver_through(cmd, &ms, &["-d", ALICE], b"Subject: env\n\nhi\n");
    assert_eq!(code, 0, "{err}");
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 2);
    let mut texts: Vec<String> = files
        .iter()
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect();
    texts.sort_by_key(|t| t.contains("Subject: env"));
    assert!(
        texts[0].starts_with("Return-Path: <s@example.net>\n"),
        "{}",
        texts[0]
    );
    assert_eq!(
        texts[0]
            .to_ascii_lowercase()
            .matches("return-path:")
            .count(),
        1,
        "{}",
        texts[0]
    );
    assert!(
        texts[0].ends_with(std::str::from_utf8(body).unwrap()),
        "{}",
        texts[0]
    );
    assert!(
        texts[1].starts_with("Return-Path: <env@example.net>\n"),
        "{}",
        texts[1]
    );
    // -f wins over both; the MTA's field is still dropped.
    let (code, err) = deliver(
        &ms,
        &["-f", "", "-d", ALICE, "-m", "Null"],
        b"Return-Path: <s@example.net>\nSubject: null\n\nhi\n",
    );
    assert_eq!(code, 0, "{err}");
    let null = &ms.maildir(ALICE).messages("Null")[0].bytes;
    assert!(
        null.starts_with(b"Return-Path: <>\nDelivered-To:"),
        "{}",
        String::from_utf8_lossy(null)
    );
    assert!(!String::from_utf8_lossy(null).contains("<s@example.net>"));
}

#[test]
fn pipe_mode_exit_codes_follow_sysexits() {
    let mut opts = Options::new(&[ALICE]);
    opts.max_message_size = 1000;
    let ms = Mailstow::start_with(opts);
    let msg = b"Subject: x\n\nhi\n";
    assert_eq!(
        deliver(&ms, &["-d", "nobody@example.org"], msg).0,
        67,
        "unknown user"
    );
    assert_eq!(
        deliver(&ms, &["-d", ALICE], &vec![b'x'; 5000]).0,
        65,
        "too large"
    );
    assert_eq!(deliver(&ms, &["--bogus"], msg).0, 64, "usage");
    // A broken passwd entry is a temporary failure, never "unknown user".
    let mut users = std::fs::read_to_string(&ms.users_file).unwrap();
    users.push_str("broken@example.org:x:notanumber:1::::\n");
    std::fs::write(&ms.users_file, users).unwrap();
    assert_eq!(
        deliver(&ms, &["-d", "broken@example.org"], msg).0,
        75,
        "broken entry"
    );
    let missing = ms.dir().join("missing.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["deliver", "--config"])
        .arg(&missing)
        .args(["-d", ALICE])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "configuration error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    // -m files into a folder, created when missing; the null sender is kept.
    let (code, err) = deliver(&ms, &["-f", "", "-d", ALICE, "-m", "Archive.2026"], msg);
    assert_eq!(code, 0, "{err}");
    let files = ms.maildir(ALICE).messages("Archive.2026");
    assert_eq!(files.len(), 1);
    assert!(files[0].bytes.starts_with(b"Return-Path: <>\n"));
    assert!(
        !files[0].bytes.contains(&b'\r'),
        "one line-end convention in the file"
    );
}

#[test]
fn postfix_pipe_transport_delivers_and_bounces_unknown_users() {
    let ms = Mailstow::start(&[ALICE]);
    // Postfix runs the pipe as vmail: the mail root must be vmail's.
    nix::unistd::chown(
        &ms.mail_root,
        Some(nix::unistd::Uid::from_raw(ms.owner.uid)),
        Some(nix::unistd::Gid::from_raw(ms.owner.gid)),
    )
    .unwrap();
    std::fs::set_permissions(&ms.mail_root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let snippet = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/postfix/master.cf.snippet"
    );
    let master = std::fs::read_to_string(snippet)
        .unwrap()
        .replace("/usr/bin/mailstow", env!("CARGO_BIN_EXE_mailstow"))
        .replace("/etc/mailstow/mailstow.toml", &ms.config.to_string_lossy());
    assert!(
        master.contains(env!("CARGO_BIN_EXE_mailstow")),
        "snippet names the binary"
    );
    // pipe(8) puts every recipient of a batch on one command line; mailstow
    // (like Dovecot's LDA) takes one -d, so one recipient per delivery.
    let main = "mailstow_destination_recipient_limit = 1\n";
    let pf = Postfix::start_with("mailstow:", main, &master);
    let msg = b"Subject: via pipe\r\n\r\nhello through pipe(8)\r\n";
    pf.send_smtp("s@example.net", &[ALICE, "nobody@example.org"], msg);
    pf.wait_maillog(&["to=<alice@example.org>", "status=sent"], 1);
    pf.wait_maillog(&["to=<nobody@example.org>", "status=bounced"], 1);
    pf.wait_queue_empty(TIMEOUT);
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    assert!(crate::util::find(&files[0].bytes, b"hello through pipe(8)").is_some());
    assert_eq!(files[0].w_field(), Some(files[0].vsize()));
}

#[test]
fn pipe_mode_logs_one_delivery_line_with_queue_id_sender_and_sizes() {
    let ms = Mailstow::start(&[ALICE]);
    let msg = b"Subject: logged\nMessage-ID: <p1 x@client.test>\n\nhi\n";
    let (code, err) = deliver(&ms, &["-f", "<>", "-d", ALICE], msg);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" delivery ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let file = &ms.maildir(ALICE).messages("INBOX")[0];
    // No session or transaction span: the line carries it all, once.
    let fields: Vec<&str> = lines[0]
        .split_once(" INFO delivery ")
        .unwrap_or_else(|| panic!("{err}"))
        .1
        .split(' ')
        .collect();
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f.split('=').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["id", "to", "from", "size", "msgid", "folder", "stored", "delay", "status"],
        "{err}"
    );
    assert_eq!(fields[1], format!("to=<{ALICE}>"));
    assert_eq!(fields[2], "from=<>");
    assert_eq!(fields[3], format!("size={}", msg.len()));
    assert_eq!(
        fields[4], "msgid=<p1?x@client.test>",
        "the space is not kept"
    );
    assert_eq!(fields[6], format!("stored={}", file.bytes.len()));
    assert_eq!(fields[8], "status=delivered");
    let received = String::from_utf8_lossy(&file.bytes).into_owned();
    let id = fields[0].strip_prefix("id=").unwrap();
    assert!(received.contains(&format!("\tid {id}\n")), "{received}");
}

#[test]
fn pipe_mode_sieve_reject_exits_77_with_the_reason_and_fileinto_works() {
    let ms = Mailstow::start(&[ALICE]);
    let home = ms.mail_root.join("example.org/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".dovecot.sieve"),
        "require [\"reject\", \"fileinto\"];\n\
         if header :contains \"subject\" \"unwanted\" { reject \"Not wanted here\"; stop; }\n\
         fileinto \"Piped\";\n",
    )
    .unwrap();
    let (code, err) = deliver(
        &ms,
        &["-e", "-f", "s@example.net", "-d", ALICE],
        b"Subject: unwanted\n\nx\n",
    );
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("Not wanted here"), "{err}");
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    // A missing folder without :create falls back to INBOX.
    let (code, err) = deliver(
        &ms,
        &["-f", "s@example.net", "-d", ALICE],
        b"Subject: fine\n\nx\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);
}

/// A sendmail stand-in keeping each message with its arguments on the
/// first line, in `dir`.
fn capture_sendmail(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("sendmail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nf={}/sent.$$\n{{ echo \"ARGS: $*\"; cat; }} > \"$f\"\n",
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn sent(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("sent."))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

/// dovecot-lda's flags: without -e a Sieve reject mails the sender an MDN
/// from postmaster_address and exits 0 (nothing to the null sender); -a,
/// -r, -p and -o take effect.
#[test]
fn without_e_a_reject_is_mailed_to_the_sender_and_the_lda_flags_work() {
    let out = tempfile::tempdir().unwrap();
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = format!(
        "[outbound]\nsendmail = {}\n",
        crate::util::toml_str(&capture_sendmail(out.path()).to_string_lossy())
    );
    let ms = Mailstow::start_with(opts);
    let home = ms.mail_root.join("example.org/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".dovecot.sieve"),
        "require [\"reject\", \"envelope\", \"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"unwanted\" { reject \"Not wanted here\"; stop; }\n\
         if envelope :is \"to\" \"final@example.org\" { fileinto :create \"Final\"; }\n",
    )
    .unwrap();
    let (code, err) = deliver(
        &ms,
        &["-f", "s@example.net", "-d", ALICE],
        b"Subject: unwanted offer\nMessage-ID: <m1@client.test>\n\nbuy\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    let mails = sent(out.path());
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0];
    assert!(m.starts_with("ARGS: "), "{m}");
    assert!(m.contains("s@example.net"), "to the sender: {m}");
    for want in [
        "From: Mail Delivery System <postmaster@example.org>",
        "Subject: Rejected: unwanted offer",
        "Auto-Submitted: auto-replied (rejected)",
        "Not wanted here",
        "Original-Message-ID: <m1@client.test>",
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
    ] {
        assert!(m.contains(want), "{want:?} in {m}");
    }
    // To the null sender nothing goes out; the exit is still 0.
    let (code, err) = deliver(&ms, &["-f", "", "-d", ALICE], b"Subject: unwanted\n\nx\n");
    assert_eq!(code, 0, "{err}");
    assert_eq!(sent(out.path()).len(), 1);

    // -r is Sieve's envelope "to", -a the original recipient, -p the
    // message from a file, -o a key set over the file's.
    let msg = out.path().join("msg.eml");
    std::fs::write(&msg, "Subject: via -p\n\nhello\n").unwrap();
    let (code, err) = deliver(
        &ms,
        &[
            "-f",
            "s@example.net",
            "-d",
            ALICE,
            "-r",
            "final@example.org",
            "-a",
            "orig@example.org",
            "-p",
            msg.to_str().unwrap(),
            "-k",
            "-o",
            "postmaster_address=pm@example.org",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let files = ms.maildir(ALICE).messages("Final");
    assert_eq!(files.len(), 1, "{err}");
    assert!(String::from_utf8_lossy(&files[0].bytes).ends_with("Subject: via -p\n\nhello\n"));
    assert!(err.contains("orig_to=<orig@example.org>"), "{err}");
    // -o sets the rejection's From.
    let (code, err) = deliver(
        &ms,
        &[
            "-f",
            "s@example.net",
            "-d",
            ALICE,
            "-o",
            "postmaster_address=pm@example.org",
        ],
        b"Subject: unwanted\n\nx\n",
    );
    assert_eq!(code, 0, "{err}");
    let mails = sent(out.path());
    assert_eq!(mails.len(), 2);
    assert!(
        mails
            .iter()
            .any(|m| m.contains("From: Mail Delivery System <pm@example.org>")),
        "{mails:?}"
    );
    // -o with a key that does not exist is a configuration error.
    let (code, err) = deliver(&ms, &["-d", ALICE, "-o", "storage.nonsense=1"], b"x\n");
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("nonsense"), "{err}");
}

#[test]
fn sieve_autocreate_makes_fileinto_create_missing_folders() {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[sieve]\nautocreate = true\n".into();
    let ms = Mailstow::start_with(opts);
    let home = ms.mail_root.join("example.org/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".dovecot.sieve"),
        "require \"fileinto\"; fileinto \"Auto.Made\";",
    )
    .unwrap();
    let (code, err) = deliver(
        &ms,
        &["-f", "s@example.net", "-d", ALICE],
        b"Subject: x\n\nx\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(ms.maildir(ALICE).messages("Auto.Made").len(), 1);
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
}

/// Postfix's mailbox_command and procmail run the delivery agent as the
/// recipient, without -d (dovecot-lda's usage lines): the account that runs
/// `mailstow deliver` is the user, looked up by its name (here a passwd-file
/// entry without a domain); run as root without -d it is a usage error.
#[test]
fn without_d_the_invoking_account_is_the_recipient_as_for_mailbox_command() {
    let ms = Mailstow::start(&[ALICE]);
    crate::util::chown(&ms.mail_root, ms.owner);
    let mut users = std::fs::read_to_string(&ms.users_file).unwrap();
    users.push_str(&crate::util::passwd_line("vmail", "x", ms.owner));
    std::fs::write(&ms.users_file, users).unwrap();
    let mut setpriv = Command::new("setpriv");
    setpriv
        .arg(format!("--reuid={}", ms.owner.uid))
        .arg(format!("--regid={}", ms.owner.gid))
        .arg("--clear-groups")
        .arg(env!("CARGO_BIN_EXE_mailstow"));
    let input = b"Subject: mailbox_command\n\nhi\n";
    let (code, err) = deliver_through(setpriv, &ms, &["-f", "s@example.net"], input);
    assert_eq!(code, 0, "{err}");
    let files = crate::util::poll(TIMEOUT, || {
        let f = std::fs::read_dir(ms.mail_root.join("vmail/Maildir/new")).ok()?;
        let names: Vec<_> = f.filter_map(|e| e.ok()).collect();
        (!names.is_empty()).then_some(names)
    })
    .expect("delivered into the invoking account's Maildir");
    assert_eq!(files.len(), 1);
    let (code, err) = deliver(&ms, &["-f", "s@example.net"], b"Subject: x\n\nx\n");
    assert_eq!(code, 64, "root without -d: {err}");
    assert!(err.contains("no recipient"), "{err}");
}
