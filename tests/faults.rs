//! Faults of the file system under a running server. Disk full: the mail
//! root on a small tmpfs of its own (index beside the Maildirs, as by
//! default; the spool on the system temp dir): a message that runs out of
//! space midway and every one after the disk fills get `452 4.3.1`, nothing
//! stored earlier is damaged, no partial file is visible, the index stays
//! sound, and delivery resumes by itself when space returns — also for a
//! message Postfix deferred meanwhile; a full spool directory gets `452
//! 4.3.1` too. Permissions and missing directories (spool included),
//! with mailstow running unprivileged: `451 4.3.0`, a log line naming the
//! path, never a 250 and never a crash (the same connection delivers the
//! next transaction). Must not leave a mount behind (unmounted on Drop, also
//! when a test panics); fails, saying why, when not run as root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::peers::{lmtp_inet, Postfix};
use crate::util::{
    chown, code, find, message_bytes, poll, run, tail, LmtpClient, Maildir, Mailstow, MsgFile,
    Options, Owner, PASSWORD, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const SENDER: &str = "sender@example.net";

/// Root is needed to mount, and to see permissions bite (root bypasses
/// them, so the server must drop to `vmail`, which only root can start).
/// A test that cannot run fails rather than passing untested.
fn require_root(test: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{test}: needs root (to mount a tmpfs and to start mailstow as vmail); \
         the integration tests run as root"
    );
}

/// A tmpfs mounted on a directory, lazily unmounted on Drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, options: &str) -> Tmpfs {
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "mailstow-test"])
            .arg(path));
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Bytes free for an unprivileged writer.
    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.path).expect("statvfs");
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still hold an index open there.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Every file in tmp/, new/ and cur/ of every folder of a Maildir.
fn all_files(md: &Maildir) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs = vec![md.root.clone()];
    if let Ok(entries) = fs::read_dir(&md.root) {
        dirs.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path()),
        );
    }
    for d in dirs {
        for sub in ["tmp", "new", "cur"] {
            if let Ok(entries) = fs::read_dir(d.join(sub)) {
                out.extend(entries.flatten().map(|e| (sub.to_owned(), e.path())));
            }
        }
    }
    out.sort();
    out
}

/// One LMTP transaction to `rcpts`; the replies after the data.
fn send(c: &mut LmtpClient, rcpts: &[&str], msg: &[u8]) -> Vec<Vec<String>> {
    c.deliver(SENDER, rcpts, msg)
}

/// The stored file is our header block followed by exactly `sent`.
fn assert_intact(f: &MsgFile, sent: &[u8]) {
    assert!(f.bytes.starts_with(b"Return-Path: "), "{}", f.name);
    assert!(
        f.bytes.ends_with(&crate::util::stored_form(sent)),
        "{}: body differs from what was sent",
        f.name
    );
    assert_eq!(f.s_field(), Some(f.bytes.len() as u64), "{}: S=", f.name);
}

/// `mailstow index verify USER`, with its output.
fn index_verify(ms: &Mailstow, user: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["index", "verify", user, "--config"])
        .arg(&ms.config)
        .output()
        .expect("run mailstow index verify");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn integrity(db: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", db.display()));
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn body(tag: &str, size: usize) -> Vec<u8> {
    let line = format!("{tag}: a line of the body of this message\n");
    let text = line.repeat(size / line.len() + 1);
    message_bytes(SENDER, ALICE, tag, text.as_bytes())
}

#[test]
fn a_full_disk_gets_452_4_3_1_damages_nothing_and_delivery_resumes_when_space_returns() {
    require_root("disk full");
    let t0 = std::time::Instant::now();
    let ms = Mailstow::start(&[ALICE, BOB]);
    // The mail root (Maildirs and their indexes) on 4 MiB of its own; the
    // spool stays on the system temp dir, as by default.
    let fs_ = Tmpfs::mount(&ms.mail_root, "size=4m,nr_inodes=4096,mode=0755");
    let mut c = ms.connect();
    c.lhlo();
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    let first = body("first", 20_000);
    let r = send(&mut c, &[ALICE, BOB], &first);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    stored.push(("first".into(), first));
    // Its index rows are written just after the reply; let them land, so
    // that the free space measured below stays put.
    for u in [ALICE, BOB] {
        let db = ms.home(u).join(".mailstow/index.sqlite");
        let rows = poll(TIMEOUT, || {
            let conn = rusqlite::Connection::open(&db).ok()?;
            conn.query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
                .ok()
                .filter(|&n| n == 1)
        });
        assert_eq!(rows, Some(1), "{u}: the first row was never indexed");
    }

    // A filler leaves about 600 KB; a 1.5 MB message then runs out of
    // space midway through its file.
    let filler = ms.mail_root.join("filler");
    let leave = 600 * 1024;
    let fill = fs_.free().saturating_sub(leave);
    fs::write(&filler, vec![0u8; fill as usize]).expect("write the filler");
    let free_before = fs_.free();
    let big = body("big", 1_500_000);
    let r = send(&mut c, &[ALICE], &big);
    assert!(r[0][0].starts_with("452 4.3.1 "), "midway: {r:?}");
    let md = ms.maildir(ALICE);
    assert!(
        all_files(&md).iter().all(|(sub, _)| sub != "tmp"),
        "a partial file is left in tmp/: {:?}",
        all_files(&md)
    );
    assert_eq!(md.messages("INBOX").len(), 1, "only the first message");
    let shown = md.root.display().to_string();
    assert!(
        ms.log()
            .lines()
            .any(|l| l.contains("452 4.3.1") && l.contains(&shown)),
        "no log line names the full Maildir:\n{}",
        tail(&ms.log(), 10)
    );
    assert!(
        fs_.free() + 64 * 1024 >= free_before,
        "the partial file's space came back"
    );

    // Small messages until the disk is full.
    let mut full_reply = None;
    for i in 0..200 {
        let tag = format!("fill{i}");
        let m = body(&tag, 30_000);
        let r = send(&mut c, &[ALICE], &m);
        match code(&r[0]) {
            250 => stored.push((tag, m)),
            _ => {
                full_reply = Some(r[0][0].clone());
                break;
            }
        }
    }
    let full_reply = full_reply.expect("the disk never filled");
    assert!(full_reply.starts_with("452 4.3.1 "), "{full_reply}");
    let before_full = stored.len();
    // Full: every recipient of a transaction gets its own 452.
    let r = send(&mut c, &[ALICE, BOB], &body("while-full", 30_000));
    assert!(
        r.iter().all(|r| r[0].starts_with("452 4.3.1 ")),
        "while full: {r:?}"
    );

    // Nothing earlier is damaged and no partial file is visible.
    let files = md.messages("INBOX");
    assert_eq!(files.len(), stored.len());
    for (tag, sent) in &stored {
        let subject = format!("Subject: {tag}\n");
        let f = files
            .iter()
            .find(|f| find(&f.bytes, subject.as_bytes()).is_some())
            .unwrap_or_else(|| panic!("{tag} is gone"));
        assert_intact(f, sent);
    }
    assert!(all_files(&md).iter().all(|(sub, _)| sub != "tmp"));
    let bob = ms.maildir(BOB).messages("INBOX");
    assert_eq!(bob.len(), 1);
    assert_intact(&bob[0], &stored[0].1);
    let db = ms.home(ALICE).join(".mailstow/index.sqlite");
    assert_eq!(integrity(&db), "ok");

    // Postfix, the real peer: a message it hands over now is deferred.
    let pf = Postfix::start(&lmtp_inet(ms.tcp));
    let deferred = body("via-postfix", 30_000);
    pf.send_smtp(SENDER, &[ALICE], &deferred);
    let lines = pf.wait_maillog(&["status=deferred", "452 4.3.1"], 1);
    assert!(lines[0].contains(ALICE), "{}", lines[0]);

    // Space returns: the same server delivers again, without a restart.
    let pid = ms.pid();
    fs::remove_file(&filler).unwrap();
    let after = body("after", 30_000);
    let r = send(&mut c, &[ALICE], &after);
    assert!(
        r[0][0].starts_with("250 2.0.0 "),
        "after space returned: {r:?}"
    );
    stored.push(("after".into(), after));
    assert_eq!(ms.pid(), pid);
    run(Command::new("postqueue")
        .arg("-c")
        .arg(&pf.config_dir)
        .arg("-f"));
    pf.wait_queue_empty(TIMEOUT);
    let files = md.wait_messages("INBOX", stored.len() + 1);
    assert_eq!(files.len(), stored.len() + 1);
    let via = files
        .iter()
        .find(|f| find(&f.bytes, b"Subject: via-postfix").is_some())
        .expect("the deferred message arrived");
    assert!(
        find(
            &via.bytes,
            &crate::util::stored_form(&deferred[find(&deferred, b"\r\n\r\n").unwrap()..])
        )
        .is_some(),
        "the deferred message's body"
    );
    // The index catches up with every file and is sound.
    let (rc, out) = index_verify(&ms, ALICE);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(integrity(&db), "ok");
    eprintln!(
        "disk full: {before_full} messages stored before the disk filled, then {:?}; \
         a 1.5 MB message midway: 452 4.3.1, no partial file; resumed with 250 after the \
         filler was removed (same pid), Postfix's deferred message delivered after a flush; {:.1} s",
        full_reply,
        t0.elapsed().as_secs_f64()
    );
    drop(pf);
    drop(c);
    drop(fs_);
}

/// A running mailstow as `vmail` with the mail root handed over to it, and
/// users with homes of the test's choosing.
fn unprivileged(extra_toml: &str) -> Mailstow {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.top_extra = "user = \"vmail\"\ngroup = \"vmail\"".into();
    opts.extra_toml = extra_toml.into();
    let ms = Mailstow::start_with(opts);
    chown(&ms.mail_root, ms.owner);
    ms
}

/// Replaces the passwd-file (by rename, as an admin's tool would).
fn write_users(ms: &Mailstow, lines: &[(&str, Option<&Path>)]) {
    let text: String = lines
        .iter()
        .map(|(a, home)| {
            format!(
                "{a}:{{PLAIN}}{PASSWORD}:{}:{}::{}::\n",
                ms.owner.uid,
                ms.owner.gid,
                home.map(|h| h.display().to_string()).unwrap_or_default()
            )
        })
        .collect();
    let tmp = ms.dir().join("users.new");
    fs::write(&tmp, text).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&tmp, &ms.users_file).unwrap();
}

/// A transaction to `rcpt` gets 451 4.3.0 and the log names `path`; then
/// the same connection delivers to bob.
fn expect_451(ms: &Mailstow, c: &mut LmtpClient, rcpt: &str, path: &Path, case: &str) {
    let log_before = ms.log().len();
    let r = send(c, &[rcpt], &body(case, 2_000));
    assert!(r[0][0].starts_with("451 4.3.0 "), "{case}: {r:?}");
    let shown = path.display().to_string();
    let found = poll(Duration::from_secs(10), || {
        let log = ms.log();
        log[log_before..]
            .lines()
            .find(|l| l.contains("deferred") && l.contains(&shown))
            .map(str::to_owned)
    });
    assert!(
        found.is_some(),
        "{case}: no log line names {shown}:\n{}",
        tail(&ms.log()[log_before..], 20)
    );
    eprintln!("{case}: {} | {}", r[0][0], found.unwrap_or_default().trim());
    let r = send(c, &[BOB], &body(&format!("{case}-next"), 2_000));
    assert!(
        r[0][0].starts_with("250 "),
        "{case}: the next transaction: {r:?}"
    );
}

#[test]
fn unwritable_and_missing_directories_get_451_with_the_path_logged_never_250() {
    require_root("permissions");
    let ms = unprivileged("");
    let mut c = ms.connect();
    c.lhlo();
    let r = send(&mut c, &[ALICE, BOB], &body("ok", 2_000));
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    let md = ms.maildir(ALICE).root;
    let mode = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();

    // tmp/ unwritable: the file cannot be created.
    mode(&md.join("tmp"), 0o000);
    expect_451(&ms, &mut c, ALICE, &md.join("tmp"), "tmp-000");
    mode(&md.join("tmp"), 0o700);
    // new/ owned by another uid: the file cannot be moved in; nothing is left in tmp/.
    chown(&md.join("new"), Owner { uid: 0, gid: 0 });
    expect_451(&ms, &mut c, ALICE, &md.join("new"), "new-root-owned");
    assert!(ms.maildir(ALICE).tmp_files("INBOX").is_empty());
    chown(&md.join("new"), ms.owner);
    // The whole Maildir unreadable.
    mode(&md, 0o000);
    expect_451(&ms, &mut c, ALICE, &md, "maildir-000");
    mode(&md, 0o700);

    // A new user whose home's parent (the domain directory) is not ours.
    let carol = "carol@other.example";
    let other_domain = ms.mail_root.join("other.example");
    fs::create_dir(&other_domain).unwrap();
    mode(&other_domain, 0o755);
    // A home under a regular file: it can never be created.
    let afile = ms.dir().join("afile");
    fs::write(&afile, "x").unwrap();
    let dave = "dave@example.org";
    let dave_home = afile.join("home");
    // A home whose parent is missing in a directory only root may write.
    let erin = "erin@example.org";
    let root_only = ms.dir().join("root-only");
    fs::create_dir(&root_only).unwrap();
    mode(&root_only, 0o755);
    let erin_home = root_only.join("missing/erin");
    write_users(
        &ms,
        &[
            (ALICE, None),
            (BOB, None),
            (carol, None),
            (dave, Some(&dave_home)),
            (erin, Some(&erin_home)),
        ],
    );
    expect_451(
        &ms,
        &mut c,
        carol,
        &other_domain.join("carol"),
        "domain-dir-root-owned",
    );
    expect_451(&ms, &mut c, dave, &dave_home, "home-under-a-file");
    expect_451(
        &ms,
        &mut c,
        erin,
        &root_only.join("missing"),
        "home-parent-uncreatable",
    );

    // Nothing was stored for them; the server is the one it was.
    assert!(!other_domain.join("carol").exists() && !root_only.join("missing").exists());
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);
    let r = send(&mut c, &[ALICE], &body("healed", 2_000));
    assert!(r[0][0].starts_with("250 "), "{r:?}");
    assert!(!ms.log().contains("panicked"), "{}", tail(&ms.log(), 30));
}

#[test]
fn a_missing_spool_directory_gets_451_with_the_path_logged() {
    require_root("spool");
    // Inside a temp dir, so that it goes even when the test panics.
    let spool_parent = crate::util::temp_dir("mailstow-spool-");
    let spool = spool_parent.path().join("spool");
    let mut ms = unprivileged(&format!(
        "[delivery]\nspool_dir = {}\nspool_memory_max = 4096\n",
        crate::util::toml_str(&spool.to_string_lossy())
    ));
    // Created (and chowned) for vmail at start, before the server says it
    // is ready; removing it any earlier would fail the start itself.
    ms.wait_until("the server to be ready", |m| {
        m.log().contains(" ready").then_some(())
    });
    assert!(
        spool.is_dir(),
        "the spool directory was not created at start"
    );
    fs::remove_dir(&spool).unwrap();
    let mut c = ms.connect();
    c.lhlo();
    // Small enough for memory: delivered.
    let r = send(&mut c, &[ALICE], &body("small", 1_000));
    assert!(r[0][0].starts_with("250 "), "{r:?}");
    // Larger: each recipient gets 451 and the log names the directory.
    let log_before = ms.log().len();
    let r = send(&mut c, &[ALICE, BOB], &body("large", 20_000));
    assert!(r.iter().all(|r| r[0].starts_with("451 4.3.0 ")), "{r:?}");
    let shown = spool.display().to_string();
    let lines: Vec<String> = ms.log()[log_before..]
        .lines()
        .filter(|l| l.contains("deferred") && l.contains(&shown))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{}", tail(&ms.log(), 20));
    eprintln!("spool missing: {} | {}", r[0][0], lines[0].trim());
    // The directory back: the same connection delivers.
    fs::create_dir(&spool).unwrap();
    chown(&spool, ms.owner);
    let r = send(&mut c, &[ALICE], &body("large-again", 20_000));
    assert!(r[0][0].starts_with("250 "), "{r:?}");
}

#[test]
fn a_full_spool_directory_gets_452_4_3_1_with_the_path_logged() {
    require_root("spool full");
    // The spool on 512 KiB of its own; messages over 1 MiB (the default
    // spool_memory_max) are written there.
    let spool_dir = crate::util::temp_dir("mailstow-spoolfs-");
    let spool = spool_dir.path().join("spool");
    fs::create_dir(&spool).unwrap();
    let spool_fs = Tmpfs::mount(&spool, "size=512k,mode=0755");
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.extra_toml = format!(
        "[delivery]\nspool_dir = {}\n",
        crate::util::toml_str(&spool.to_string_lossy())
    );
    let ms = Mailstow::start_with(opts);
    let mut c = ms.connect();
    c.lhlo();
    let log_before = ms.log().len();
    let r = send(
        &mut c,
        &[ALICE, BOB],
        &body("too-big-for-the-spool", 2_000_000),
    );
    assert!(
        r.iter().all(|r| r[0].starts_with("452 4.3.1 ")),
        "spool full: {r:?}"
    );
    let shown = spool.display().to_string();
    let lines: Vec<String> = ms.log()[log_before..]
        .lines()
        .filter(|l| l.contains("deferred") && l.contains(&shown))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 2, "{}", tail(&ms.log(), 20));
    eprintln!("spool full: {} | {}", r[0][0], lines[0].trim());
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    // The spool file was unlinked from the start: its space is back.
    assert!(spool_fs.free() > 400 * 1024, "spool space not returned");
    let r = send(&mut c, &[ALICE], &body("fits-in-memory", 20_000));
    assert!(r[0][0].starts_with("250 "), "{r:?}");
    drop(c);
    drop(ms);
    drop(spool_fs);
}
