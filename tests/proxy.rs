//! The LMTP proxy on loopback: a front mailstow with `[proxy] enabled` and
//! backend mailstows from the fixture, each with its own mail root. Proves
//! per-recipient routing in one transaction, replies relayed as the
//! backend gave them, a dead or silent backend costing its own recipients
//! only, loops refused, a mailbox held back and moved. Must not sleep to
//! synchronise: it waits for observable state.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

use crate::util::*;

const FROM: &str = "sender@example.net";
const LOCAL: &str = "local@example.org";

/// One passwd-file line with extra fields appended.
fn line_with(address: &str, extra: &str) -> String {
    format!(
        "{}{extra}\n",
        passwd_line(address, PASSWORD, vmail()).trim_end()
    )
}

/// Extra fields that route a user to `backend`.
fn to(backend: SocketAddr) -> String {
    format!("proxy=y host={} port={}", backend.ip(), backend.port())
}

/// Replace a passwd-file atomically (mailstow re-reads it on change).
fn write_users(path: &Path, lines: &[String]) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, lines.concat()).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A front whose passwd-file holds `lines`, with `[proxy]` extra lines.
fn front(lines: &[String], proxy: &str) -> (Mailstow, tempfile::TempDir, PathBuf) {
    let dir = temp_dir("mailstow-front-");
    let users = dir.path().join("front-users");
    write_users(&users, lines);
    let mut opts = Options::new(&[]);
    opts.users_toml = Some(format!(
        "passwd_file = {}\nrecipient_delimiter = \"+\"",
        toml_str(&users.to_string_lossy())
    ));
    opts.extra_toml =
        format!("[proxy]\nenabled = true\nconnect_timeout = 2\ntimeout = 5\n{proxy}\n");
    (Mailstow::start_with(opts), dir, users)
}

fn backend(users: &[&str]) -> Mailstow {
    Mailstow::start(users)
}

/// MAIL, then RCPT for each address: the RCPT replies.
fn open_tx(c: &mut LmtpClient, rcpts: &[&str]) -> Vec<Vec<String>> {
    assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{FROM}>"))), 250);
    rcpts
        .iter()
        .map(|r| c.cmd(&format!("RCPT TO:<{r}>")))
        .collect()
}

fn first(r: &[String]) -> &str {
    r.first().map(String::as_str).unwrap_or("")
}

#[test]
fn proxy_splits_one_transaction_over_local_and_two_backends_and_stores_only_on_the_backends() {
    let b1 = backend(&["a1@example.org", "a2@example.org"]);
    let b2 = backend(&["c1@example.org"]);
    let lines = [
        line_with(LOCAL, ""),
        line_with("a1@example.org", &to(b1.tcp)),
        line_with(
            "a2@example.org",
            &format!(
                "userdb_proxy=y userdb_host=127.0.0.1 userdb_port={}",
                b1.tcp.port()
            ),
        ),
        line_with("c1@example.org", &to(b2.tcp)),
    ];
    let (f, _dir, _) = front(&lines, "");
    let mut c = f.connect();
    c.lhlo();
    let rcpts = [LOCAL, "a1@example.org", "c1@example.org", "a2@example.org"];
    for round in 0..2 {
        let msg = message(
            FROM,
            LOCAL,
            &format!("split {round}"),
            "one transaction, three nodes",
        );
        let replies = c.deliver(FROM, &rcpts, &msg);
        for (r, rcpt) in replies.iter().zip(rcpts) {
            assert_eq!(code(r), 250, "{rcpt}: {r:?}");
        }
    }
    assert_eq!(f.maildir(LOCAL).wait_messages("INBOX", 2).len(), 2);
    assert_eq!(
        b1.maildir("a1@example.org").wait_messages("INBOX", 2).len(),
        2
    );
    assert_eq!(
        b1.maildir("a2@example.org").wait_messages("INBOX", 2).len(),
        2
    );
    assert_eq!(
        b2.maildir("c1@example.org").wait_messages("INBOX", 2).len(),
        2
    );
    for remote in ["a1@example.org", "a2@example.org", "c1@example.org"] {
        assert!(!f.home(remote).exists(), "the front stored {remote}");
    }
    assert!(!b1.home(LOCAL).exists() && !b2.home("a1@example.org").exists());
    // The body reached the backend intact (dot-stuffing undone and redone).
    let stored = fs::read(&b2.maildir("c1@example.org").messages("INBOX")[0].path).unwrap();
    assert!(find(&stored, b"one transaction, three nodes").is_some());
    let log = f.log();
    assert!(
        log.contains(&format!("relay={}", b2.tcp)),
        "{}",
        tail(&log, 20)
    );
}

#[test]
fn proxy_relays_a_backends_550_and_452_as_they_are() {
    // b1 knows a1 only and takes one recipient per transaction.
    let mut opts = Options::new(&["a1@example.org", "a2@example.org"]);
    opts.max_recipients = 1;
    let b1 = Mailstow::start_with(opts);
    // b2's full user: refused after the data with 452 4.2.2.
    let mut opts = Options::new(&["full@example.org"]);
    opts.extra_toml = "[quota]\nrule = \"*:storage=1K\"\nover_quota = \"temporary\"\n".into();
    let b2 = Mailstow::start_with(opts);
    let lines = [
        line_with(LOCAL, ""),
        line_with("a1@example.org", &to(b1.tcp)),
        line_with("a2@example.org", &to(b1.tcp)),
        line_with("ghost@example.org", &to(b1.tcp)),
        line_with("full@example.org", &to(b2.tcp)),
    ];
    let (f, _dir, _) = front(&lines, "");
    let mut c = f.connect();
    c.lhlo();
    let r = open_tx(
        &mut c,
        &[
            "ghost@example.org",
            "a1@example.org",
            "a2@example.org",
            LOCAL,
            "full@example.org",
        ],
    );
    assert!(first(&r[0]).starts_with("550 5.1.1"), "{r:?}");
    assert_eq!(code(&r[1]), 250, "{r:?}");
    assert!(
        first(&r[2]).starts_with("452 4.5.3 Too many recipients"),
        "{r:?}"
    );
    assert_eq!(code(&r[3]), 250, "{r:?}");
    assert_eq!(code(&r[4]), 250, "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    let big = message(FROM, LOCAL, "big", &"y".repeat(3000));
    let replies = c.send_data(&big, 3);
    assert_eq!(code(&replies[0]), 250, "{replies:?}");
    assert_eq!(code(&replies[1]), 250, "{replies:?}");
    assert!(first(&replies[2]).starts_with("452 4.2.2"), "{replies:?}");
    assert_eq!(
        b1.maildir("a1@example.org").wait_messages("INBOX", 1).len(),
        1
    );
    let new = b2.home("full@example.org").join("Maildir/new");
    assert_eq!(fs::read_dir(new).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn proxy_answers_451_for_a_killed_backends_recipients_only_and_recovers() {
    let b1 = backend(&["a1@example.org"]);
    let mut b2 = backend(&["c1@example.org"]);
    let lines = [
        line_with(LOCAL, ""),
        line_with("a1@example.org", &to(b1.tcp)),
        line_with("c1@example.org", &to(b2.tcp)),
    ];
    let (f, _dir, _) = front(&lines, "");
    let rcpts = [LOCAL, "a1@example.org", "c1@example.org"];
    let mut c = f.connect();
    c.lhlo();
    // A first transaction leaves pooled connections to both backends.
    let r = c.deliver(FROM, &rcpts, &message(FROM, LOCAL, "before", "x"));
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    b2.signal(Signal::SIGKILL);
    b2.wait_exit(TIMEOUT);
    let r = open_tx(&mut c, &rcpts);
    assert_eq!(code(&r[0]), 250, "{r:?}");
    assert_eq!(code(&r[1]), 250, "{r:?}");
    assert!(first(&r[2]).starts_with("451 4.4.1"), "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(&message(FROM, LOCAL, "during", "x"), 2);
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    b2.restart();
    let r = c.deliver(FROM, &rcpts, &message(FROM, LOCAL, "after", "x"));
    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    assert_eq!(
        b1.maildir("a1@example.org").wait_messages("INBOX", 3).len(),
        3
    );
    assert_eq!(
        b2.maildir("c1@example.org").wait_messages("INBOX", 2).len(),
        2
    );
    assert!(f.log().contains("proxy backend failed"));
}

#[test]
fn proxy_answers_451_within_its_timeout_for_a_backend_that_never_greets() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let b1 = backend(&["a1@example.org"]);
    let lines = [
        line_with("a1@example.org", &to(b1.tcp)),
        line_with("s@example.org", &to(silent.local_addr().unwrap())),
    ];
    let (f, _dir, _) = front(&lines, "");
    let mut c = f.connect();
    c.lhlo();
    let started = std::time::Instant::now();
    let r = open_tx(&mut c, &["s@example.org", "a1@example.org"]);
    assert!(first(&r[0]).starts_with("451 4.4.1"), "{r:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(code(&r[1]), 250, "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(&message(FROM, "a1@example.org", "m", "x"), 1);
    assert_eq!(code(&r[0]), 250, "{r:?}");
    drop(silent);
}

#[test]
fn proxy_refuses_a_routing_loop_with_554_and_delivers_proxy_maybe_locally() {
    // A host that is this node: proxy is a loop, proxy_maybe is local.
    let lines = [
        line_with("loop@example.org", "proxy=y host=127.0.0.1"),
        line_with("maybe@example.org", "proxy_maybe=y host=127.0.0.1"),
    ];
    let (f, _dir, _) = front(&lines, "self = [\"127.0.0.1\"]");
    let mut c = f.connect();
    c.lhlo();
    let r = open_tx(&mut c, &["loop@example.org", "maybe@example.org"]);
    assert!(first(&r[0]).starts_with("554 5.4.6"), "{r:?}");
    assert_eq!(code(&r[1]), 250, "{r:?}");
    c.cmd("RSET");
    assert!(f.log().contains("routing loop"));

    // Two fronts that point at each other: refused on the way back in.
    let (a, _da, a_users) = front(&[line_with("x@example.org", "proxy=y host=192.0.2.1")], "");
    let (b, _db, _) = front(&[line_with("x@example.org", &to(a.tcp))], "");
    write_users(&a_users, &[line_with("x@example.org", &to(b.tcp))]);
    let mut c = a.connect();
    c.lhlo();
    let r = poll(TIMEOUT, || {
        let r = open_tx(&mut c, &["x@example.org"]);
        c.cmd("RSET");
        (!first(&r[0]).contains("192.0.2.1") && code(&r[0]) != 451).then_some(r)
    })
    .unwrap();
    assert!(first(&r[0]).starts_with("554 5.4.6"), "{r:?}");
    assert!(a.log().contains("routing loop") && b.log().contains(&format!("relay={}", a.tcp)));
}

#[test]
fn proxy_holds_a_moving_user_back_with_451_4_2_1_by_field_or_by_reloaded_config() {
    let lines = [
        line_with(LOCAL, ""),
        line_with("moving@example.org", "tempfail=y"),
    ];
    let (f, _dir, _) = front(&lines, "");
    let mut c = f.connect();
    c.lhlo();
    let r = open_tx(&mut c, &["moving@example.org", LOCAL]);
    assert!(first(&r[0]).starts_with("451 4.2.1"), "{r:?}");
    assert_eq!(code(&r[1]), 250, "{r:?}");
    c.cmd("RSET");
    // [proxy] maintenance, put in force by SIGHUP.
    let text = fs::read_to_string(&f.config).unwrap();
    fs::write(
        &f.config,
        text.replace(
            "[proxy]\n",
            "[proxy]\nmaintenance = [\"Local@Example.org\"]\n",
        ),
    )
    .unwrap();
    f.signal(Signal::SIGHUP);
    let r = poll(TIMEOUT, || {
        let mut c = f.connect();
        c.lhlo();
        let r = open_tx(&mut c, &[LOCAL]);
        (code(&r[0]) == 451).then_some(r)
    })
    .unwrap();
    assert!(first(&r[0]).starts_with("451 4.2.1"), "{r:?}");
}

/// docs/scale-out.md's move procedure: defer, copy Maildir and index,
/// flip host, resume. Nothing delivered before or after is lost.
#[test]
fn proxy_moves_a_user_between_nodes_as_the_doc_says_without_losing_mail() {
    const U: &str = "mover@example.org";
    let b1 = backend(&[U]);
    let b2 = backend(&[U]);
    let (f, _dir, users) = front(&[line_with(U, &to(b1.tcp))], "");
    let send = |subject: &str| {
        let mut c = f.connect();
        c.lhlo();
        let r = open_tx(&mut c, &[U]);
        if code(&r[0]) != 250 {
            return code(&r[0]);
        }
        c.cmd("DATA");
        code(&c.send_data(&message(FROM, U, subject, "x"), 1)[0])
    };
    assert_eq!(send("on b1"), 250);
    // 1. Defer.
    write_users(
        &users,
        &[line_with(U, &format!("{} tempfail=y", to(b1.tcp)))],
    );
    assert_eq!(
        poll(TIMEOUT, || (send("deferred") == 451).then_some(451)),
        Some(451)
    );
    // 2. Copy the home (Maildir and index) to the new node.
    let (from, dest) = (b1.home(U), b2.home(U));
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    run(std::process::Command::new("cp")
        .arg("-a")
        .arg(&from)
        .arg(dest.parent().unwrap()));
    // 3. Flip host, 4. resume.
    write_users(&users, &[line_with(U, &to(b2.tcp))]);
    assert_eq!(
        poll(TIMEOUT, || (send("on b2") == 250).then_some(250)),
        Some(250)
    );
    let subjects: Vec<String> = b2
        .maildir(U)
        .wait_messages("INBOX", 2)
        .iter()
        .map(|m| String::from_utf8_lossy(&fs::read(&m.path).unwrap()).into_owned())
        .collect();
    assert!(
        subjects.iter().any(|m| m.contains("Subject: on b1")),
        "{subjects:?}"
    );
    assert!(
        subjects.iter().any(|m| m.contains("Subject: on b2")),
        "{subjects:?}"
    );
    // Moved as they were: the same file names (what an IMAP reader's
    // uidlist and the index refer to), nothing twice.
    let names =
        |m: &Maildir| -> Vec<String> { m.messages("INBOX").into_iter().map(|m| m.name).collect() };
    let (old, new) = (names(&b1.maildir(U)), names(&b2.maildir(U)));
    assert!(old.iter().all(|n| new.contains(n)), "{old:?} {new:?}");
    assert_eq!(new.len(), 2, "{new:?}");
}

/// User plus system CPU time of a process so far (Linux /proc).
fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    std::time::Duration::from_micros(ticks * 1_000_000 / hz)
}

/// Median and 99th percentile of `n` one-recipient transactions over one
/// connection to `addr`, in microseconds.
fn latencies(addr: SocketAddr, rcpt: &str, n: usize) -> (u128, u128) {
    let mut c = LmtpClient::tcp(addr);
    c.lhlo();
    let msg = message(FROM, rcpt, "bench", &"x".repeat(2000));
    let mut took: Vec<u128> = (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            let r = c.deliver(FROM, &[rcpt], &msg);
            assert_eq!(code(&r[0]), 250, "{r:?}");
            t.elapsed().as_micros()
        })
        .collect();
    took.sort_unstable();
    (took[n / 2], took[n * 99 / 100])
}

/// The proxy's own cost: the same deliveries straight to a backend and
/// through a front; prints the figures BENCHMARKS.md records.
#[test]
#[ignore = "benchmark: cargo test --release --test tests proxy_overhead -- --ignored --nocapture (see BENCHMARKS.md)"]
fn proxy_overhead_against_direct_delivery() {
    const N: usize = 1000;
    let b = backend(&["direct@example.org", "viaproxy@example.org"]);
    let (f, _dir, _) = front(&[line_with("viaproxy@example.org", &to(b.tcp))], "");
    latencies(b.tcp, "direct@example.org", 50);
    let (cpu_b, cpu_f) = (cpu_time(b.pid()), cpu_time(f.pid()));
    let direct = latencies(b.tcp, "direct@example.org", N);
    let cpu_direct = cpu_time(b.pid()) - cpu_b;
    latencies(f.tcp, "viaproxy@example.org", 50);
    let (cpu_b, cpu_f2) = (cpu_time(b.pid()), cpu_time(f.pid()));
    let proxied = latencies(f.tcp, "viaproxy@example.org", N);
    let cpu_backend = cpu_time(b.pid()) - cpu_b;
    let cpu_front = cpu_time(f.pid()) - cpu_f2;
    let _ = cpu_f;
    println!(
        "direct:  median {} us, p99 {} us, backend CPU {} us/message",
        direct.0,
        direct.1,
        cpu_direct.as_micros() / N as u128
    );
    println!(
        "proxied: median {} us, p99 {} us, backend CPU {} us/message, front CPU {} us/message",
        proxied.0,
        proxied.1,
        cpu_backend.as_micros() / N as u128,
        cpu_front.as_micros() / N as u128
    );
}

/// A fake backend: greets, then answers LHLO with `flood` forever (or
/// until the front hangs up).
fn flooding_backend(flood: &'static [u8]) -> SocketAddr {
    use std::io::{BufRead, BufReader, Write};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = w.write_all(b"220 fake LMTP\r\n");
                let mut line = String::new();
                let _ = BufReader::new(s).read_line(&mut line);
                while w.write_all(flood).is_ok() {}
            });
        }
    });
    addr
}

#[test]
fn proxy_survives_a_backend_that_floods_an_endless_reply_or_line() {
    let endless_reply = flooding_backend(b"250-PIPELINING\r\n");
    let endless_line = flooding_backend(b"250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    let lines = [
        line_with(LOCAL, ""),
        line_with("r@example.org", &to(endless_reply)),
        line_with("l@example.org", &to(endless_line)),
    ];
    let (f, _dir, _) = front(&lines, "");
    let mut c = f.connect();
    c.lhlo();
    let r = open_tx(&mut c, &["r@example.org", "l@example.org", LOCAL]);
    assert!(first(&r[0]).starts_with("451 4.4.1"), "{r:?}");
    assert!(first(&r[1]).starts_with("451 4.4.1"), "{r:?}");
    assert_eq!(code(&r[2]), 250, "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    assert_eq!(
        code(&c.send_data(&message(FROM, LOCAL, "m", "x"), 1)[0]),
        250
    );
    let log = f.log();
    assert!(
        log.contains("too many lines") && log.contains("longer than"),
        "{}",
        tail(&log, 10)
    );
}
