//! The dovecot driver against a fake auth-userdb server in this process
//! (a UnixListener thread): lookups, detail, failures, timeouts, request
//! ids, reconnects and the cache. Must not need a real Dovecot (the
//! integration tests in tests/userdb.rs do).

use super::*;
use crate::users::{Directory, Source};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// How the fake server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Normal,
    /// Never answers a USER request.
    Silent,
    /// Closes the connection after each answer.
    CloseAfterReply,
    /// Answers with the wrong id.
    WrongId,
}

struct Fake {
    dir: tempfile::TempDir,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Fake {
    fn path(&self) -> PathBuf {
        self.dir.path().join("auth-userdb")
    }

    fn start(mode: Mode) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("auth-userdb")).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (r, c) = (requests.clone(), connections.clone());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || serve(s, mode, &r));
            }
        });
        Fake {
            dir,
            requests,
            connections,
        }
    }

    fn directory(&self, delim: &str, ttl: u64, neg_ttl: u64) -> Directory {
        let cfg = UsersConfig {
            source: Source::Dovecot(DovecotConfig {
                userdb_socket: self.path(),
                auth_socket: self.dir.path().join("auth-client"),
                timeout: Duration::from_millis(500),
                cache_ttl: Duration::from_secs(ttl),
                negative_cache_ttl: Duration::from_secs(neg_ttl),
            }),
            recipient_delimiter: delim.into(),
        };
        Directory::open(&cfg, Path::new("/unused")).unwrap()
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Users: alice@x.org (quota), a+b@x.org; fail@x.org answers FAIL;
/// mbox@x.org has an mbox location.
fn answer(id: &str, name: &str, mode: Mode) -> String {
    let id = if mode == Mode::WrongId { "999" } else { id };
    match name {
        "alice@x.org" => format!(
            "USER\t{id}\talice@x.org\thome=/srv/alice\tuid=1000\tgid=1000\tquota_rule=*:storage=1M\n"
        ),
        "a+b@x.org" => format!("USER\t{id}\ta+b@x.org\thome=/srv/ab\n"),
        "fail@x.org" => format!("FAIL\t{id}\treason=db\x01tdown\n"),
        "mbox@x.org" => format!("USER\t{id}\tmbox@x.org\thome=/srv/m\tmail=mbox:~/mail\n"),
        _ => format!("NOTFOUND\t{id}\n"),
    }
}

fn serve(s: UnixStream, mode: Mode, requests: &AtomicUsize) {
    let mut w = s.try_clone().unwrap();
    let r = BufReader::new(s);
    if w.write_all(b"VERSION\t1\t2\nMECH\tx\nSPID\t123\n").is_err() {
        return;
    }
    for line in r.lines() {
        let Ok(line) = line else { return };
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] != "USER" {
            continue;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        assert_eq!(f.get(3), Some(&"service=lmtp"), "{line}");
        if mode == Mode::Silent {
            continue;
        }
        let name = String::from_utf8(wire::unescape(f[2].as_bytes())).unwrap();
        if w.write_all(answer(f[1], &name, mode).as_bytes()).is_err()
            || mode == Mode::CloseAfterReply
        {
            return;
        }
    }
}

#[test]
fn found_not_found_and_detail() {
    let fake = Fake::start(Mode::Normal);
    let d = fake.directory("+", 0, 0);
    let u = d.lookup("alice", "X.ORG").unwrap().unwrap();
    assert_eq!(u.name, "alice@x.org");
    assert_eq!(u.maildir, Path::new("/srv/alice/Maildir"));
    assert_eq!(u.owner().map(|o| o.uid), Some(1000));
    assert_eq!(
        u.extra,
        [("quota_rule".to_owned(), "*:storage=1M".to_owned())]
    );
    let u = d.lookup("alice+lists", "x.org").unwrap().unwrap();
    assert_eq!(u.detail.as_deref(), Some("lists"));
    // A user literally named a+b wins over a with detail b.
    let u = d.lookup("a+b", "x.org").unwrap().unwrap();
    assert_eq!((u.name.as_str(), u.detail), ("a+b@x.org", None));
    assert_eq!(d.lookup("bob", "x.org").unwrap(), None);
    assert_eq!(d.lookup("bob+x", "x.org").unwrap(), None);
    assert!(d.users().is_empty());
}

#[test]
fn fail_and_undeliverable_replies_are_temporary() {
    let fake = Fake::start(Mode::Normal);
    let d = fake.directory("+", 60, 60);
    let e = d.lookup("fail", "x.org").unwrap_err();
    assert!(matches!(e, UsersError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("db\tdown"), "{e}");
    let e = d.lookup("mbox", "x.org").unwrap_err();
    assert!(matches!(e, UsersError::Reply { .. }), "{e:?}");
    assert!(e.to_string().contains("mail=mbox:~/mail"), "{e}");
    // Failures are not cached.
    let before = fake.requests();
    assert!(d.lookup("fail", "x.org").is_err());
    assert_eq!(fake.requests(), before + 1);
}

#[test]
fn a_missing_socket_is_temporary_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake {
        dir,
        requests: Arc::default(),
        connections: Arc::default(),
    };
    let e = fake
        .directory("", 0, 0)
        .lookup("alice", "x.org")
        .unwrap_err();
    assert!(matches!(e, UsersError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().contains("auth-userdb"), "{e}");
}

#[test]
fn a_silent_server_times_out() {
    let fake = Fake::start(Mode::Silent);
    let d = fake.directory("+", 0, 0);
    let start = Instant::now();
    let e = d.lookup("alice+x", "x.org").unwrap_err();
    assert!(e.to_string().contains("no answer"), "{e}");
    // One deadline per request: 500 ms, not one per retry.
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_reply_to_another_id_is_refused() {
    let fake = Fake::start(Mode::WrongId);
    let e = fake
        .directory("", 0, 0)
        .lookup("alice", "x.org")
        .unwrap_err();
    assert!(e.to_string().contains("999"), "{e}");
}

#[test]
fn connections_are_reused_and_a_closed_one_replaced_once() {
    let fake = Fake::start(Mode::Normal);
    let d = fake.directory("", 0, 0);
    for _ in 0..5 {
        assert!(d.lookup("alice", "x.org").unwrap().is_some());
    }
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1);

    let fake = Fake::start(Mode::CloseAfterReply);
    let d = fake.directory("", 0, 0);
    for _ in 0..3 {
        assert!(d.lookup("alice", "x.org").unwrap().is_some());
    }
    // The first, then for each later lookup a dead pooled one and a fresh one.
    assert_eq!(fake.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn cache_keeps_found_and_not_found_for_their_ttls() {
    let fake = Fake::start(Mode::Normal);
    let d = fake.directory("", 60, 60);
    d.lookup("alice", "x.org").unwrap().unwrap();
    d.lookup("alice", "X.org").unwrap().unwrap();
    assert_eq!(d.lookup("nobody", "x.org").unwrap(), None);
    assert_eq!(d.lookup("nobody", "x.org").unwrap(), None);
    assert_eq!(fake.requests(), 2);
    // negative_cache_ttl = 0: never cached.
    let d = fake.directory("", 60, 0);
    assert_eq!(d.lookup("nobody", "x.org").unwrap(), None);
    assert_eq!(d.lookup("nobody", "x.org").unwrap(), None);
    assert_eq!(fake.requests(), 4);
}

#[test]
fn cache_stays_bounded() {
    let c = Cache::new(Duration::from_secs(60), Duration::from_secs(60));
    for i in 0..CACHE_MAX + 100 {
        c.put((i.to_string(), "x".into()), None);
    }
    assert_eq!(c.lock().len(), CACHE_MAX);
}

#[test]
fn requests_from_many_threads_get_their_own_answers() {
    let fake = Fake::start(Mode::Normal);
    let d = Arc::new(fake.directory("+", 0, 0));
    let handles: Vec<_> = (0..6)
        .map(|i| {
            let d = d.clone();
            std::thread::spawn(move || {
                (0..30).all(|j| {
                    if (i + j) % 2 == 0 {
                        matches!(d.lookup("alice+t", "x.org"), Ok(Some(u)) if u.name == "alice@x.org")
                    } else {
                        matches!(d.lookup("zed", "x.org"), Ok(None))
                    }
                })
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
    assert!(fake.connections.load(Ordering::SeqCst) <= 6);
}

#[test]
fn user_names_are_escaped_on_the_wire() {
    assert_eq!(
        user_request(5, "a\tb@x"),
        b"USER\t5\ta\x01tb@x\tservice=lmtp\n"
    );
}

#[test]
fn probe_wants_notfound() {
    let fake = Fake::start(Mode::Normal);
    assert_eq!(probe_userdb(&fake.path(), Duration::from_secs(2)), Ok(()));
    let e = probe_userdb(&fake.dir.path().join("nope"), Duration::from_secs(2)).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
}
