//! The durability promise under SIGKILL, at scale: 16 concurrent LMTP
//! clients deliver thousands of copies (small, medium and spooled-to-disk
//! large messages, one to three recipients each) while mailstow is killed at
//! moments drawn from a seeded RNG (some of them while a large message's
//! data is half sent) and restarted. Afterwards every (message, recipient)
//! that got a 250 is in that user's Maildir exactly once and byte for byte,
//! no partial file is in new/ or cur/, nothing landed at a recipient it was
//! not sent to; after a clean restart the tmp/ leftovers of the killed
//! processes are swept (a foreign young file stays, a 40-hour-old one goes),
//! each index holds each file exactly once and passes `index verify` and
//! SQLite's integrity check, and Dovecot sees exactly the files. Must rely
//! on nothing but replies, files on disk, the index commands and the
//! database file; the seed is printed, and `MAILSTOW_CRASH_SEED` replays it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::peers::Dovecot;
use crate::util::{
    self, code, dot_stuff, find, poll, LmtpClient, Mailstow, Rng, HOSTNAME, PASSWORD,
};

const USERS: [&str; 8] = [
    "k0@example.org",
    "k1@example.org",
    "k2@example.org",
    "k3@example.org",
    "k4@example.org",
    "k5@example.org",
    "k6@example.org",
    "k7@example.org",
];
const CLIENTS: usize = 16;
/// Kill/restart cycles at least; more only if the copies acknowledged are
/// still under [`MIN_ACKED`] (up to [`MAX_CYCLES`]).
const KILLS: usize = 9;
const MAX_CYCLES: usize = 40;
/// Acknowledged (message, recipient) pairs the run must reach.
const MIN_ACKED: usize = 3_000;
/// Large messages exceed this (the default `spool_memory_max`): their
/// data goes to a spool file.
const SPOOL_MEMORY_MAX: usize = 1 << 20;
/// The env variable that replays a run.
const SEED_VAR: &str = "MAILSTOW_CRASH_SEED";

/// A message whose completeness can be checked from its last line; the
/// same tag and size always give the same bytes.
fn message(tag: &str, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: {tag}\r\nMessage-ID: <{tag}@crash.test>\r\n\r\n").into_bytes();
    let line = format!("{tag} padding line of the body to make it longer\r\n");
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m.extend_from_slice(format!("END {tag}\r\n").as_bytes());
    m
}

/// What the clients share with the test.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// Clients now between the first and the last chunk of a large body.
    mid_data: AtomicUsize,
    /// tag -> (size, recipients): every transaction whose data was started.
    sent: Mutex<HashMap<String, (usize, Vec<&'static str>)>>,
    /// (tag, recipient) pairs that got 250.
    acked: Mutex<Vec<(String, &'static str)>>,
}

/// Decrements `mid_data` when a large body's sending ends, however it ends.
struct MidData<'a>(&'a AtomicUsize, bool);

impl MidData<'_> {
    fn enter(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1 = true;
        }
    }
}

impl Drop for MidData<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One transaction: MAIL, RCPTs and DATA pipelined, then the body (a large
/// one in 64 KiB chunks), then one reply per recipient.
fn transaction(c: &mut LmtpClient, tag: &str, rng: &mut Rng, load: &Load) -> std::io::Result<()> {
    let size = match rng.below(25) {
        0 => SPOOL_MEMORY_MAX + 200_000 + rng.below(800_000) as usize,
        1..=3 => 50_000 + rng.below(100_000) as usize,
        _ => 1_000 + rng.below(4_000) as usize,
    };
    let n = 1 + rng.below(3) as usize;
    let mut rcpts: Vec<&'static str> = Vec::new();
    while rcpts.len() < n {
        let u = USERS[rng.below(USERS.len() as u64) as usize];
        if !rcpts.contains(&u) {
            rcpts.push(u);
        }
    }
    c.try_envelope("s@example.net", &rcpts)?;
    load.sent
        .lock()
        .unwrap()
        .insert(tag.to_owned(), (size, rcpts.clone()));
    let mut wire = dot_stuff(&message(tag, size));
    wire.extend_from_slice(b".\r\n");
    let mut mid = MidData(&load.mid_data, false);
    for chunk in wire.chunks(64 * 1024) {
        c.try_write(chunk)?;
        if size > SPOOL_MEMORY_MAX {
            mid.enter();
            // Paced like a remote MTA, so that kills can land mid-data.
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    drop(mid);
    for u in rcpts {
        let r = c.try_read_reply()?;
        if code(&r) == 250 {
            load.acked.lock().unwrap().push((tag.to_owned(), u));
        }
    }
    Ok(())
}

/// One client: deliver until the server goes away or the test says stop.
fn client(addr: std::net::SocketAddr, id: usize, cycle: usize, seed: u64, load: &Load) {
    let mut rng = Rng(seed ^ ((cycle as u64) << 32) ^ id as u64);
    let Ok(mut c) = LmtpClient::try_tcp(addr) else {
        return;
    };
    if c.try_cmd("LHLO crash.test").is_err() {
        return;
    }
    let mut n = 0;
    while !load.stop.load(Ordering::Relaxed) {
        let tag = format!("r{cycle}c{id}n{n}");
        n += 1;
        if transaction(&mut c, &tag, &mut rng, load).is_err() {
            return;
        }
    }
}

/// Every folder directory of a Maildir (INBOX and the `.Name` ones).
fn folder_dirs(maildir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![maildir.to_path_buf()];
    if let Ok(entries) = fs::read_dir(maildir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') && e.path().join("tmp").is_dir() {
                dirs.push(e.path());
            }
        }
    }
    dirs
}

/// Every file in any tmp/ of the users' Maildirs.
fn tmp_files(ms: &Mailstow) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for u in USERS {
        for dir in folder_dirs(&ms.maildir(u).root) {
            if let Ok(entries) = fs::read_dir(dir.join("tmp")) {
                out.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}

/// `mailstow index ARGS... USER --config`: (exit code, stdout).
fn index_cmd(ms: &Mailstow, args: &[&str], user: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .arg("index")
        .args(args)
        .arg(user)
        .arg("--config")
        .arg(&ms.config)
        .stdin(Stdio::null())
        .output()
        .expect("run mailstow index");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn count(log: &str, what: &str) -> usize {
    log.matches(what).count()
}

#[test]
fn sigkill_never_loses_an_acknowledged_message_nor_shows_a_partial_one() {
    let t0 = Instant::now();
    let seed = util::seed(SEED_VAR);
    eprintln!("crash: seed {seed} ({SEED_VAR}={seed} replays the choices)");
    let mut rng = Rng(seed);
    let mut ms = Mailstow::start(&USERS);
    let load = Arc::new(Load::default());
    let (mut kills, mut kills_mid_data) = (0, 0);
    let mut killed_pids = Vec::new();
    for cycle in 0..MAX_CYCLES {
        if cycle >= KILLS && load.acked.lock().unwrap().len() >= MIN_ACKED {
            break;
        }
        if cycle > 0 {
            ms.restart();
        }
        load.stop.store(false, Ordering::SeqCst);
        let threads: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (load, addr) = (Arc::clone(&load), ms.tcp);
                std::thread::spawn(move || client(addr, id, cycle, seed, &load))
            })
            .collect();
        let delay = Duration::from_millis(300 + rng.below(1_700));
        std::thread::sleep(delay);
        // Every other cycle: kill while a large body is half sent.
        if cycle % 2 == 1 {
            poll(Duration::from_secs(5), || {
                (load.mid_data.load(Ordering::SeqCst) > 0).then_some(())
            });
        }
        let mid = load.mid_data.load(Ordering::SeqCst) > 0;
        killed_pids.push(ms.pid());
        ms.signal(Signal::SIGKILL);
        ms.wait_exit(Duration::from_secs(10));
        kills += 1;
        kills_mid_data += usize::from(mid);
        load.stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().unwrap();
        }
    }
    let acked = load.acked.lock().unwrap().clone();
    let sent = load.sent.lock().unwrap().clone();
    let attempted: usize = sent.values().map(|(_, r)| r.len()).sum();
    assert!(
        acked.len() >= MIN_ACKED,
        "the load reached {} acknowledged copies in {kills} cycles",
        acked.len()
    );
    assert!(
        kills_mid_data > 0,
        "no kill came during a large message's data"
    );

    // What the killed processes left in tmp/, then three planted files in
    // k0's INBOX tmp/: a foreign writer's young file (stays), a 40-hour-old
    // one (goes), and a file named as the last killed mailstow names them.
    let leftovers = tmp_files(&ms);
    let tmp0 = ms.maildir(USERS[0]).root.join("tmp");
    let foreign = tmp0.join("1700000000.M1P1Q1.foreign.host,S=5,W=5");
    let aged = tmp0.join("aged-foreign-file");
    let last_pid = killed_pids.last().copied().unwrap();
    let orphan = tmp0.join(format!("1700000000.M2P{last_pid}Q9.{HOSTNAME},S=5,W=5"));
    for p in [&foreign, &aged, &orphan] {
        fs::write(p, "hello").unwrap();
    }
    let forty_hours_ago = SystemTime::now() - Duration::from_secs(40 * 3600);
    fs::File::options()
        .write(true)
        .open(&aged)
        .unwrap()
        .set_times(
            fs::FileTimes::new()
                .set_accessed(forty_hours_ago)
                .set_modified(forty_hours_ago),
        )
        .unwrap();

    // A clean start: the sweep runs in the background and logs when done.
    let sweeps_before = count(&ms.log(), "tmp/ cleanup done");
    ms.restart();
    ms.wait_until("the tmp/ cleanup", |m| {
        (count(&m.log(), "tmp/ cleanup done") > sweeps_before).then_some(())
    });
    assert_eq!(
        tmp_files(&ms),
        vec![foreign.clone()],
        "after the sweep only the foreign young file is left in tmp/"
    );

    // The Maildirs: complete files only, each acknowledged copy exactly once.
    let mut on_disk: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut files = 0;
    for u in USERS {
        let mut seen = HashSet::new();
        for f in ms.maildir(u).messages("INBOX") {
            files += 1;
            assert_eq!(f.s_field(), Some(f.bytes.len() as u64), "S=: {}", f.name);
            let tag_at = find(&f.bytes, b"Subject: ").expect("subject") + 9;
            let tag_end = tag_at + find(&f.bytes[tag_at..], b"\n").unwrap();
            let tag = String::from_utf8_lossy(&f.bytes[tag_at..tag_end]).into_owned();
            let (size, rcpts) = sent
                .get(&tag)
                .unwrap_or_else(|| panic!("{u}: {} holds a message never sent", f.name));
            assert!(rcpts.contains(&u), "{tag} was not sent to {u}");
            assert!(
                f.bytes
                    .ends_with(&crate::util::stored_form(&message(&tag, *size))),
                "partial or altered message visible: {}",
                f.name
            );
            assert!(seen.insert(tag.clone()), "{tag} twice for {u}");
        }
        on_disk.insert(u, seen);
    }
    let mut lost = 0;
    for (tag, u) in &acked {
        if !on_disk[u].contains(tag) {
            lost += 1;
            eprintln!("LOST: {u} got 250 for {tag} but it is not on disk");
        }
    }

    // The indexes: rows as the killed writers left them, then after the
    // reconcile that `index verify` and `index list` make.
    let mut unindexed_before = 0;
    for u in USERS {
        let db_path = ms.home(u).join(".mailstow/index.sqlite");
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let rows: i64 = db
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        unindexed_before += on_disk[u].len() as i64 - rows;
        let (rc, out) = index_cmd(&ms, &["verify"], u);
        assert_eq!(rc, 0, "index verify {u}:\n{out}");
        let (rc, out) = index_cmd(&ms, &["list", "--json"], u);
        assert_eq!(rc, 0, "index list {u}:\n{out}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let mut subjects: BTreeMap<String, usize> = BTreeMap::new();
        for r in &rows {
            *subjects
                .entry(r["subject"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        assert!(
            subjects.values().all(|&n| n == 1),
            "{u}: a message indexed twice"
        );
        let indexed: HashSet<String> = subjects.into_keys().collect();
        assert_eq!(indexed, on_disk[u], "{u}: index rows differ from the files");
        let db = rusqlite::Connection::open(&db_path).unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{u}: {}", db_path.display());
    }

    // Dovecot sees exactly the files, nothing more.
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    for u in USERS {
        let mut imap = dc.imap_login(u, PASSWORD);
        let n = imap.examine("INBOX");
        assert_eq!(n as usize, on_disk[u].len(), "{u}: IMAP EXISTS");
        imap.logout();
    }
    eprintln!(
        "crash: seed {seed}: {} messages sent ({attempted} copies), {} copies acked, \
         {kills} kills ({kills_mid_data} during a large message's data), {files} files, \
         {lost} lost; {} tmp/ leftovers of killed processes swept (+2 planted, 1 foreign kept); \
         {unindexed_before} files indexed by the reconcile; {:.1} s",
        sent.len(),
        acked.len(),
        leftovers.len(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(lost, 0, "acknowledged copies lost (seed {seed})");
}
