//! The durability promise under SIGKILL: many concurrent LMTP clients
//! deliver while mailstow is killed at random moments and restarted; every
//! recipient that got a 250 has its message exactly once and complete, no
//! partial message is ever in new/ or cur/, and Dovecot reads every file.
//! Must not rely on anything but replies and files on disk.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::peers::Dovecot;
use crate::util::{code, find, LmtpClient, Mailstow, PASSWORD};

const USERS: [&str; 3] = ["k0@example.org", "k1@example.org", "k2@example.org"];
const CLIENTS: usize = 8;
const ROUNDS: usize = 4;

/// A message whose completeness can be checked from its last line.
fn message(tag: &str, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: {tag}\r\nMessage-ID: <{tag}@crash.test>\r\n\r\n").into_bytes();
    let line = format!("{tag} padding line of the body to make it longer\r\n");
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m.extend_from_slice(format!("END {tag}\r\n").as_bytes());
    m
}

/// One client: deliver to all users until the server goes away; record
/// (tag, user) pairs that got 250.
fn client(
    addr: std::net::SocketAddr,
    id: usize,
    round: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<(String, String)>>,
) {
    let Ok(mut c) = LmtpClient::try_tcp(addr) else {
        return;
    };
    let mut n = 0;
    let mut send = |c: &mut LmtpClient| -> std::io::Result<()> {
        let tag = format!("r{round}c{id}n{n}");
        n += 1;
        let size = if n % 5 == 0 { 200_000 } else { 3_000 };
        let msg = message(&tag, size);
        let mut wire = b"MAIL FROM:<s@example.net>\r\n".to_vec();
        for u in USERS {
            wire.extend_from_slice(format!("RCPT TO:<{u}>\r\n").as_bytes());
        }
        wire.extend_from_slice(b"DATA\r\n");
        wire.extend_from_slice(&crate::util::dot_stuff(&msg));
        wire.extend_from_slice(b".\r\n");
        c.try_write(&wire)?;
        for _ in 0..1 + USERS.len() + 1 {
            let r = c.try_read_reply()?;
            if code(&r) >= 400 {
                return Err(std::io::Error::other(format!("{r:?}")));
            }
        }
        for u in USERS {
            let r = c.try_read_reply()?;
            if code(&r) == 250 {
                acked.lock().unwrap().push((tag.clone(), u.to_owned()));
            }
        }
        Ok(())
    };
    if c.try_cmd("LHLO crash.test").is_err() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        if send(&mut c).is_err() {
            return;
        }
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_message_nor_shows_a_partial_one() {
    let mut ms = Mailstow::start(&USERS);
    let acked = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        if round > 0 {
            ms.restart();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (stop, acked, addr) = (Arc::clone(&stop), Arc::clone(&acked), ms.tcp);
                std::thread::spawn(move || client(addr, id, round, &stop, &acked))
            })
            .collect();
        // Kill at a different moment each round, while deliveries run.
        std::thread::sleep(Duration::from_millis(300 + 170 * round as u64));
        ms.signal(Signal::SIGKILL);
        ms.wait_exit(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 20,
        "the load delivered something ({} acks)",
        acked.len()
    );

    let mut on_disk: HashMap<String, HashSet<String>> = HashMap::new();
    for u in USERS {
        let mut seen = HashSet::new();
        for f in ms.maildir(u).messages("INBOX") {
            assert_eq!(
                f.s_field(),
                Some(f.bytes.len() as u64),
                "S= is the size: {}",
                f.name
            );
            let tag_at = find(&f.bytes, b"Subject: ").expect("subject") + 9;
            let tag_end = tag_at + find(&f.bytes[tag_at..], b"\r\n").unwrap();
            let tag = String::from_utf8_lossy(&f.bytes[tag_at..tag_end]).into_owned();
            assert!(
                f.bytes.ends_with(format!("END {tag}\r\n").as_bytes()),
                "partial message visible: {}",
                f.name
            );
            assert!(seen.insert(tag.clone()), "{tag} twice for {u}");
            on_disk.entry(u.to_owned()).or_default().insert(tag);
        }
    }
    for (tag, u) in &acked {
        assert!(
            on_disk.get(u).is_some_and(|s| s.contains(tag)),
            "{u} got 250 for {tag} but it is not on disk"
        );
    }
    let orphans: usize = USERS
        .iter()
        .map(|u| ms.maildir(u).tmp_files("INBOX").len())
        .sum();
    let stored: usize = on_disk.values().map(HashSet::len).sum();
    eprintln!(
        "crash: {} acks, {stored} files, {orphans} orphans in tmp/",
        acked.len()
    );
    // Dovecot sees exactly the complete files, nothing more.
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(USERS[0], PASSWORD);
    let n = imap.examine("INBOX");
    assert_eq!(n as usize, on_disk.get(USERS[0]).map_or(0, |s| s.len()));
    imap.logout();
}
