//! The mailbox index end to end: messages delivered over LMTP, then changed
//! through a real Dovecot (flags, keywords, copy, move, expunge, folder
//! create and rename), and the index, after reconciling, equal to a rebuild
//! from the Maildir alone; UIDs never going backwards; `uids = "dovecot"`
//! giving the UIDs Dovecot's IMAP and POP3 show while both work at once; a
//! SIGKILL between the durable file and its row repaired by the next open;
//! rows left in the pending file by deliveries to a closed index recorded by
//! the next open under the UIDs Dovecot gave meanwhile.
//! Must drive only the `mailstow index` commands, never the library.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::peers::Dovecot;
use crate::util::{code, message, Mailstow, Options, PASSWORD};

const ALICE: &str = "alice@example.org";
const SENDER: &str = "sender@example.net";

/// `mailstow index ARGS... --config` with the user: (exit code, stdout).
fn index(ms: &Mailstow, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .arg("index")
        .args(args)
        .arg("--config")
        .arg(&ms.config)
        .stdin(Stdio::null())
        .output()
        .expect("run mailstow index");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code != 0 && code != 1 {
        panic!(
            "mailstow index {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (code, stdout)
}

fn list(ms: &Mailstow) -> Vec<Value> {
    let (rc, out) = index(ms, &["list", ALICE, "--json"]);
    assert_eq!(rc, 0, "{out}");
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("index list --json: {e}: {out}"))
        .as_array()
        .cloned()
        .expect("a JSON array")
}

fn verify_clean(ms: &Mailstow) {
    let (rc, out) = index(ms, &["verify", ALICE]);
    assert_eq!(rc, 0, "index verify found differences:\n{out}");
}

/// (folder, uid) -> subject.
fn by_uid(rows: &[Value]) -> BTreeMap<(String, u64), String> {
    rows.iter()
        .map(|r| {
            (
                (
                    r["folder"].as_str().unwrap().to_owned(),
                    r["uid"].as_u64().unwrap(),
                ),
                r["subject"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// What a rebuild must reproduce of a row (everything but UID and MODSEQ,
/// which a rebuild without the old database cannot know).
fn content(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.remove("uid");
            o.remove("modseq");
            r.to_string()
        })
        .collect();
    v.sort();
    v
}

fn deliver(ms: &Mailstow, subject: &str) {
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        SENDER,
        &[ALICE],
        &message(SENDER, ALICE, subject, "hello\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
}

#[test]
fn the_index_follows_dovecot_changes_and_equals_a_rebuild() {
    let ms = Mailstow::start(&[ALICE]);
    for i in 0..6 {
        deliver(&ms, &format!("s{i}"));
    }
    let first = list(&ms);
    let uids: Vec<u64> = first.iter().map(|r| r["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids, vec![1, 2, 3, 4, 5, 6], "{first:?}");
    verify_clean(&ms);

    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.select("INBOX");
    // Dovecot numbers the same files 1..6 (file-name order).
    for cmd in [
        "UID STORE 1 +FLAGS (\\Seen \\Flagged)",
        "UID STORE 2 +FLAGS ($Work)",
        "CREATE Archive",
        "UID COPY 3 Archive",
        "UID MOVE 4 Archive",
        "UID STORE 5 +FLAGS (\\Deleted)",
        "EXPUNGE",
    ] {
        imap.run(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }
    deliver(&ms, "s6");
    deliver(&ms, "s7");
    for cmd in ["CREATE Old", "UID COPY 6 Old", "RENAME Old Older", "NOOP"] {
        imap.run(cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    }

    // What cron would run: every user's index catches up.
    let (rc, out) = index(&ms, &["sync"]);
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.starts_with("alice@example.org: ")
            && out.contains(" 2 expunged")
            && out.contains("folders 2 added"),
        "{out}"
    );
    verify_clean(&ms);
    let after = list(&ms);
    let uids = by_uid(&after);
    let inbox: Vec<(u64, &str)> = uids
        .iter()
        .filter(|((f, _), _)| f == "INBOX")
        .map(|((_, u), s)| (*u, s.as_str()))
        .collect();
    // Survivors keep their UIDs; the two new ones come after every UID
    // ever shown, 4 (moved) and 5 (expunged) included.
    assert_eq!(
        inbox,
        vec![
            (1, "s0"),
            (2, "s1"),
            (3, "s2"),
            (6, "s5"),
            (7, "s6"),
            (8, "s7")
        ],
        "{after:#?}"
    );
    let flags = |folder: &str, uid: u64| -> Vec<String> {
        after
            .iter()
            .find(|r| r["folder"] == folder && r["uid"] == uid)
            .map(|r| {
                r["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(flags("INBOX", 1), vec!["\\Seen", "\\Flagged"]);
    assert_eq!(flags("INBOX", 2), vec!["$Work"]);
    let mut archive: Vec<&str> = uids
        .iter()
        .filter(|((f, _), _)| f == "Archive")
        .map(|(_, s)| s.as_str())
        .collect();
    archive.sort();
    assert_eq!(archive, vec!["s2", "s3"]);
    let older: Vec<&str> = uids
        .iter()
        .filter(|((f, _), _)| f == "Older")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(older, vec!["s5"], "{after:#?}");
    assert!(!after.iter().any(|r| r["folder"] == "Old"));

    // Searches and stats see the same mailbox.
    let search = |args: &[&str]| -> Vec<(String, u64)> {
        let mut a = vec!["search", ALICE, "--json"];
        a.extend_from_slice(args);
        let (rc, out) = index(&ms, &a);
        assert_eq!(rc, 0, "{out}");
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
        rows.iter()
            .map(|r| {
                (
                    r["folder"].as_str().unwrap().to_owned(),
                    r["uid"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(search(&["--flag", "\\Seen"]), vec![("INBOX".into(), 1)]);
    assert_eq!(search(&["--flag", "$work", "--folder", "INBOX"]).len(), 1);
    assert_eq!(search(&["--subject", "s2"]).len(), 2);
    assert_eq!(search(&["--from", SENDER, "--no-flag", "\\Seen"]).len(), 8);
    assert_eq!(search(&["--subject", "nothing-like-this"]), vec![]);
    let id = after[0]["message_id"].as_str().unwrap().to_owned();
    assert_eq!(search(&["--message-id", &format!("<{id}>")]).len(), 1);
    assert_eq!(search(&["--before", "2000-01-01"]), vec![]);
    assert_eq!(search(&["--since", "2000-01-01"]).len(), after.len());
    let (rc, out) = index(&ms, &["stats", ALICE, "--json"]);
    assert_eq!(rc, 0);
    let stats: Value = serde_json::from_str(&out).unwrap();
    let folders = stats[0]["folders"].as_array().unwrap();
    let inbox = folders.iter().find(|f| f["folder"] == "INBOX").unwrap();
    assert_eq!(inbox["messages"], 6);
    assert_eq!(inbox["unseen"], 5);
    assert_eq!(inbox["uidnext"], 9);

    // A fresh rebuild from the Maildir alone says the same.
    let dir = ms.home(ALICE).join(".mailstow");
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let (rc, out) = index(&ms, &["rebuild", ALICE]);
    assert_eq!(rc, 0, "{out}");
    let rebuilt = list(&ms);
    assert_eq!(content(&rebuilt), content(&after));
    verify_clean(&ms);

    // verify does find a wrong row.
    let db = rusqlite::Connection::open(dir.join("index.sqlite")).unwrap();
    db.execute("UPDATE messages SET subject = 'tampered' WHERE uid = 1", [])
        .unwrap();
    drop(db);
    let (rc, out) = index(&ms, &["verify", ALICE]);
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("tampered"), "{out}");
    imap.logout();
}

#[test]
fn dovecot_uid_mode_gives_the_uids_dovecot_shows() {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[index]\nuids = \"dovecot\"\n".into();
    let ms = Mailstow::start_with(opts);
    for i in 0..3 {
        deliver(&ms, &format!("d{i}"));
    }
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.select("INBOX");
    let imap_uids = |imap: &mut crate::peers::Imap| -> Vec<u64> {
        imap.run("NOOP").unwrap();
        imap.fetch_all().iter().map(|f| u64::from(f.uid)).collect()
    };
    let ours = |ms: &Mailstow| -> Vec<u64> {
        list(ms)
            .iter()
            .filter(|r| r["folder"] == "INBOX")
            .map(|r| r["uid"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(imap_uids(&mut imap), vec![1, 2, 3]);
    assert_eq!(ours(&ms), vec![1, 2, 3]);
    // Deliveries while Dovecot has the folder selected and expunges.
    deliver(&ms, "d3");
    imap.run("UID STORE 2 +FLAGS (\\Deleted)").unwrap();
    deliver(&ms, "d4");
    imap.run("EXPUNGE").unwrap();
    deliver(&ms, "d5");
    let seen = imap_uids(&mut imap);
    assert_eq!(seen, vec![1, 3, 4, 5, 6]);
    assert_eq!(ours(&ms), seen);
    // Expunging the newest message must not let its UID come back.
    imap.run("UID STORE 6 +FLAGS (\\Deleted)").unwrap();
    imap.run("EXPUNGE").unwrap();
    deliver(&ms, "d6");
    let seen = imap_uids(&mut imap);
    assert_eq!(seen, vec![1, 3, 4, 5, 7]);
    assert_eq!(ours(&ms), seen);
    imap.logout();
    verify_clean(&ms);

    // POP3 UIDLs are Dovecot's %08Xu%08Xv of the same UIDs.
    let (_, out) = index(&ms, &["stats", ALICE, "--json"]);
    let stats: Value = serde_json::from_str(&out).unwrap();
    let validity = stats[0]["folders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["folder"] == "INBOX")
        .unwrap()["uidvalidity"]
        .as_u64()
        .unwrap();
    let mut pop = dc.pop3_login(ALICE, PASSWORD);
    let uidls: Vec<String> = pop.uidl().into_iter().map(|(_, u)| u).collect();
    let expected: Vec<String> = ours(&ms)
        .iter()
        .map(|u| format!("{u:08x}{validity:08x}"))
        .collect();
    assert_eq!(
        uidls.iter().map(|u| u.to_lowercase()).collect::<Vec<_>>(),
        expected
    );
    pop.quit();
    let log = dc.log();
    assert!(
        !log.contains("Broken file") && !log.contains("Error:"),
        "dovecot log:\n{log}"
    );
}

#[test]
fn a_kill_between_the_file_and_its_row_is_repaired_on_next_open() {
    let ms = Mailstow::start(&[ALICE]);
    deliver(&ms, "before");
    // The server writes the row just after its reply.
    let db_path = ms.home(ALICE).join(".mailstow/index.sqlite");
    let rows = || -> Option<i64> {
        let db = rusqlite::Connection::open(&db_path).ok()?;
        db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .ok()
    };
    let indexed = crate::util::poll(std::time::Duration::from_secs(10), || {
        rows().filter(|&n| n == 1)
    });
    assert_eq!(indexed, Some(1), "the delivery's row was never written");
    let out = crate::util::output_with_input(
        Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .args(["deliver", "-f", SENDER, "-d", ALICE, "--config"])
            .arg(&ms.config)
            .env("MAILSTOW_CRASH_AT", "after-save"),
        &message(SENDER, ALICE, "killed", "x\n"),
    );
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    // The file is durable but has no row yet.
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 2);
    assert_eq!(rows(), Some(1));

    // The next open reconciles: the file gets the next UID.
    let subjects: Vec<(u64, String)> = list(&ms)
        .iter()
        .map(|r| {
            (
                r["uid"].as_u64().unwrap(),
                r["subject"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(subjects, vec![(1, "before".into()), (2, "killed".into())]);
    verify_clean(&ms);
    deliver(&ms, "after");
    let uids: Vec<u64> = list(&ms)
        .iter()
        .map(|r| r["uid"].as_u64().unwrap())
        .collect();
    assert_eq!(uids, vec![1, 2, 3]);
}

/// A small xorshift generator: the seed is printed, so a failing sequence
/// can be replayed with MAILSTOW_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn from_env() -> Rng {
        // xorshift needs a seed that is not 0.
        let seed = crate::util::seed("MAILSTOW_TEST_SEED") | 1;
        eprintln!("MAILSTOW_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// `UID SEARCH ALL` in the selected folder, after a NOOP (Dovecot answers
/// a SEARCH from the view it had before the command).
fn imap_uids(imap: &mut crate::peers::Imap) -> Vec<u32> {
    imap.run("NOOP").unwrap();
    imap.run("UID SEARCH ALL")
        .unwrap()
        .iter()
        .filter_map(|l| l.text.strip_prefix("* SEARCH"))
        .flat_map(|s| s.split_whitespace().filter_map(|u| u.parse().ok()))
        .collect()
}

/// (folder, file base) -> UID, from `index list`.
fn uid_map(rows: &[Value]) -> BTreeMap<(String, String), u64> {
    rows.iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            let file = path.rsplit('/').next().unwrap();
            let base = file.split(':').next().unwrap().to_owned();
            (
                (r["folder"].as_str().unwrap().to_owned(), base),
                r["uid"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn random_deliveries_and_imap_changes_keep_the_index_equal_to_a_rebuild() {
    let mut rng = Rng::from_env();
    let ms = Mailstow::start(&[ALICE]);
    deliver(&ms, "seed");
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.run("CREATE Archive").unwrap();
    imap.select("INBOX");
    let flags = [
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Draft",
        "$Work",
        "$Later",
    ];
    let mut seen: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut high: BTreeMap<String, u64> = BTreeMap::new();
    let mut ops = Vec::new();
    for step in 0..80 {
        let uids = imap_uids(&mut imap);
        let pick = |rng: &mut Rng| uids.get(rng.below(uids.len())).copied();
        let op = rng.below(10);
        let cmd = match (op, pick(&mut rng)) {
            (0..=2, _) | (_, None) => {
                deliver(&ms, &format!("m{step}"));
                "deliver".to_owned()
            }
            (3, Some(u)) => format!("UID STORE {u} +FLAGS ({})", flags[rng.below(flags.len())]),
            (4, Some(u)) => format!("UID STORE {u} -FLAGS ({})", flags[rng.below(flags.len())]),
            (5, Some(u)) => format!("UID COPY {u} Archive"),
            (6, Some(u)) => format!("UID MOVE {u} Archive"),
            (7, Some(u)) => format!("UID STORE {u} +FLAGS (\\Deleted)"),
            (8, Some(_)) => "EXPUNGE".to_owned(),
            (_, Some(_)) => {
                let folder = ["INBOX", "Archive"][rng.below(2)];
                let m = message(SENDER, ALICE, &format!("a{step}"), "appended\n");
                imap.append(folder, &m)
                    .unwrap_or_else(|e| panic!("APPEND: {e}"));
                format!("APPEND {folder}")
            }
        };
        if cmd != "deliver" && !cmd.starts_with("APPEND") {
            imap.run(&cmd).unwrap_or_else(|e| panic!("{cmd}: {e}"));
        }
        ops.push(cmd);
        if step % 20 == 19 {
            // A checkpoint: the index agrees with the Maildir, a message
            // keeps its UID, and new ones come after every UID shown before.
            verify_clean(&ms);
            let now = uid_map(&list(&ms));
            for (key, uid) in &now {
                match seen.get(key) {
                    Some(old) => assert_eq!(old, uid, "{key:?} changed UID; ops {ops:?}"),
                    None => assert!(
                        *uid > high.get(&key.0).copied().unwrap_or(0),
                        "{key:?} got UID {uid}, not above {:?}; ops {ops:?}",
                        high.get(&key.0)
                    ),
                }
            }
            for ((folder, _), uid) in &now {
                let h = high.entry(folder.clone()).or_insert(0);
                *h = (*h).max(*uid);
            }
            seen.extend(now);
        }
    }
    imap.logout();
    let before = list(&ms);
    let dir = ms.home(ALICE).join(".mailstow");
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    let (rc, out) = index(&ms, &["rebuild", ALICE]);
    assert_eq!(rc, 0, "{out}");
    assert_eq!(content(&list(&ms)), content(&before), "ops {ops:?}");
}

#[test]
fn dovecot_uid_mode_holds_under_concurrent_deliveries_and_expunges() {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[index]\nuids = \"dovecot\"\n".into();
    let ms = Mailstow::start_with(opts);
    deliver(&ms, "first");
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.select("INBOX");
    let mut rng = Rng::from_env();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let ms = &ms;
                s.spawn(move || {
                    for i in 0..15 {
                        deliver(ms, &format!("t{t}-{i}"));
                    }
                })
            })
            .collect();
        while writers.iter().any(|w| !w.is_finished()) {
            let uids = imap_uids(&mut imap);
            if let Some(u) = uids.get(rng.below(uids.len())) {
                imap.run(&format!("UID STORE {u} +FLAGS (\\Deleted)"))
                    .unwrap();
                imap.run("EXPUNGE").unwrap();
            }
        }
    });
    let shown = imap_uids(&mut imap);
    imap.logout();
    let ours: Vec<u32> = list(&ms)
        .iter()
        .map(|r| r["uid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ours, shown);
    assert!(ours.len() < 61, "some expunges happened: {ours:?}");
    verify_clean(&ms);
    let log = dc.log();
    assert!(
        !log.contains("Broken file") && !log.contains("Error:"),
        "dovecot log:\n{log}"
    );
}

/// The server records rows after its replies, in batches: concurrent
/// deliveries over LMTP all have their row, each its own UID, by the time
/// the server has stopped, without any reconcile (the database is read
/// directly).
#[test]
fn rows_written_after_the_reply_are_all_there_when_the_server_stops() {
    let mut ms = Mailstow::start(&[ALICE]);
    std::thread::scope(|s| {
        for t in 0..4 {
            let ms = &ms;
            s.spawn(move || {
                let mut c = ms.connect();
                c.lhlo();
                for i in 0..10 {
                    let subject = format!("t{t} m{i}");
                    let r = c.deliver(SENDER, &[ALICE], &message(SENDER, ALICE, &subject, "x\n"));
                    assert_eq!(code(&r[0]), 250, "{r:?}");
                }
            });
        }
    });
    assert!(ms.stop().success());
    let db = rusqlite::Connection::open(ms.home(ALICE).join(".mailstow/index.sqlite")).unwrap();
    let mut uids: Vec<i64> = db
        .prepare("SELECT uid FROM messages ORDER BY uid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    uids.dedup();
    assert_eq!(uids, (1..=40).collect::<Vec<i64>>());
    drop(db);
    verify_clean(&ms);
}

/// `mailstow deliver` to ALICE (a new process: her index is never open in it).
fn deliver_by_pipe(ms: &Mailstow, subject: &str) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["deliver", "--config"])
        .arg(&ms.config)
        .args(["-f", SENDER, "-d", ALICE])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run mailstow deliver");
    let msg = message(SENDER, ALICE, subject, "hello\n");
    child.stdin.take().unwrap().write_all(&msg).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn rows_waiting_in_the_pending_file_get_dovecots_uids_when_the_index_next_opens() {
    let mut opts = Options::new(&[ALICE]);
    opts.extra_toml = "[index]\nuids = \"dovecot\"\n".into();
    let ms = Mailstow::start_with(opts);
    let pending = ms.home(ALICE).join(".mailstow/index.pending");
    // The first delivery creates the index and writes its row; the next ones
    // find it closed and leave their rows in the pending file.
    deliver_by_pipe(&ms, "p0");
    assert!(!pending.exists());
    deliver_by_pipe(&ms, "p1");
    deliver_by_pipe(&ms, "p2");
    assert!(std::fs::metadata(&pending).unwrap().len() > 0);
    // Dovecot lists the folder first: it numbers p1 and p2 itself.
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(ALICE, PASSWORD);
    imap.select("INBOX");
    deliver_by_pipe(&ms, "p3");
    imap.run("NOOP").unwrap();
    let seen: Vec<u64> = imap.fetch_all().iter().map(|f| u64::from(f.uid)).collect();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    imap.logout();
    // Any index command records the pending rows first, under those UIDs.
    let rows = list(&ms);
    let got: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| (r["uid"].as_u64().unwrap(), r["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(got, vec![(1, "p0"), (2, "p1"), (3, "p2"), (4, "p3")]);
    assert_eq!(std::fs::metadata(&pending).unwrap().len(), 0);
    verify_clean(&ms);
}
