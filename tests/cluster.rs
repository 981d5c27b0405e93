//! The cluster of issue 18 on one machine, in network namespaces joined by
//! a bridge: Postfix, two mailstow LMTP proxies, three backends (a mailstow
//! and a Dovecot on their own Maildirs each) and a Dovecot IMAP proxy in
//! front, routed by one passwd-file. Proves, under load over 300 users,
//! that both routings (Postfix's transport_maps straight to the backends,
//! and Postfix to a proxy to the backend) lose no message through a
//! backend killed with SIGKILL and restarted and through a mailbox moved
//! between nodes as docs/scale-out.md says, store a message twice only
//! where Postfix logged it "may be sent more than once", and that all of it
//! reads back over IMAP through the Dovecot proxy. Must not touch the
//! host's own network namespace (every link and address lives in the
//! test's namespaces), sleep to synchronise (it polls observable state),
//! or leave a namespace or process behind (RAII guards, also on panic).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::peers::{Dovecot, Imap, Postfix};
use crate::util::*;

const FROM: &str = "load@example.net";
/// Users of the cluster, spread over the backends by index.
const USERS: usize = 300;
/// Recipients per submitted message (consecutive users: every node).
const RCPTS: usize = 10;
/// Messages each user gets in each of the two phases.
const PER_USER: usize = 5;
/// Every node's connections per client address: all of a node's traffic
/// comes from one Postfix or one proxy, and Postfix keeps cached idle
/// connections beside its 20 busy ones, beyond the default of 20.
const PER_IP: &str = "max_connections_per_ip = 100";
/// The LMTP port of every mailstow (the proxies' default `[proxy] port`).
const LMTP: u16 = 24;

// ---------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------

/// A network namespace (`ip netns add`), deleted on Drop; its links go
/// with it.
struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Netns {
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`.
    fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// A command prefix that runs a program inside (it execs: the PID is
    /// the program's).
    fn launcher(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("ip netns del {}: {out:?}", self.name);
        }
    }
}

/// The namespaces of one test run: a hub holding the bridge, and one per
/// node with `eth0` on the bridge at 10.18.0.HOST/24. Nodes are declared
/// first: they go before the hub.
struct Net {
    nodes: Vec<Netns>,
    hub: Netns,
    prefix: String,
}

impl Net {
    fn new() -> Net {
        let prefix = format!("ms18c{}", std::process::id());
        remove_stale_namespaces();
        let hub = Netns::add(format!("{prefix}-hub"));
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        Net {
            nodes: Vec::new(),
            hub,
            prefix,
        }
    }

    /// A namespace for node `name` at 10.18.0.`host`.
    fn node(&mut self, name: &str, host: u8) -> usize {
        let ns = Netns::add(format!("{}-{name}", self.prefix));
        let port = format!("v{name}");
        self.hub.ip(&[
            "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        self.hub.ip(&["link", "set", &port, "master", "br0", "up"]);
        ns.ip(&["addr", "add", &format!("{}/24", addr(host)), "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        self.nodes.push(ns);
        self.nodes.len() - 1
    }
}

/// 10.18.0.`host`.
fn addr(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 18, 0, host))
}

/// Namespaces an earlier run of this test left when its process was
/// killed (names carry the pid; only dead pids' are removed).
fn remove_stale_namespaces() {
    let list = run(Command::new("ip").args(["netns", "list"]));
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name.strip_prefix("ms18c").and_then(|r| r.split('-').next()) else {
            continue;
        };
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// The calling thread inside a network namespace until dropped (setns is
/// per thread; what the thread spawns starts there too).
struct Inside {
    home: File,
}

impl Inside {
    fn enter(ns: &Netns) -> Inside {
        let home = File::open("/proc/thread-self/ns/net").expect("open own netns");
        let target = File::open(Path::new("/run/netns").join(&ns.name)).expect("open netns");
        // SAFETY: setns on a valid namespace fd affects this thread only.
        let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns {}: {}",
            ns.name,
            std::io::Error::last_os_error()
        );
        Inside { home }
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        // SAFETY: as in enter; back to the namespace the thread came from.
        let rc = unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            eprintln!("setns back: {}", std::io::Error::last_os_error());
        }
    }
}

// ---------------------------------------------------------------------------
// Users, routes, load
// ---------------------------------------------------------------------------

fn user(i: usize) -> String {
    format!("u{i:03}@{DOMAIN}")
}

/// The backend (0..3) a user starts on.
fn home_node(i: usize) -> usize {
    i % 3
}

fn backend_host(node: usize) -> u8 {
    11 + node as u8
}

fn proxy_host(p: usize) -> u8 {
    21 + p as u8
}

/// One passwd-file line with extra fields.
fn line_with(address: &str, extra: &str) -> String {
    format!(
        "{}{extra}\n",
        passwd_line(address, PASSWORD, vmail()).trim_end()
    )
}

/// A backend's passwd-file: plain entries, no routing fields.
fn users_text(addresses: &[String]) -> String {
    addresses
        .iter()
        .map(|a| passwd_line(a, PASSWORD, vmail()))
        .collect()
}

/// Write a file atomically (write beside, rename), mode 0644: mailstow
/// and Dovecot re-read passwd-files on change.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The routing passwd-file the proxies and the IMAP proxy read: each user
/// `proxy=y host=<its node>` (no `port`: 24 for LMTP, 143 for IMAP), with
/// `tempfail=y` for the ones being moved.
fn routes_text(node_of: &[usize], tempfail: Option<usize>) -> String {
    (0..USERS)
        .map(|i| {
            let t = if tempfail == Some(i) {
                " tempfail=y"
            } else {
                ""
            };
            line_with(
                &user(i),
                &format!("proxy=y host={}{t}", addr(backend_host(node_of[i]))),
            )
        })
        .collect()
}

/// One submitted message: its Subject and recipients (user indices).
struct Msg {
    subject: String,
    rcpts: Vec<usize>,
}

/// Phase `tag`'s messages: each user gets [`PER_USER`] of them, each
/// message goes to [`RCPTS`] consecutive users.
fn plan(tag: &str) -> Vec<Msg> {
    (0..USERS * PER_USER / RCPTS)
        .map(|k| Msg {
            subject: format!("cluster {tag} {k}"),
            rcpts: (0..RCPTS).map(|j| (k * RCPTS + j) % USERS).collect(),
        })
        .collect()
}

/// Submit `msgs` to Postfix over one SMTP connection.
fn submit(pf: &Postfix, msgs: &[Msg]) {
    let mut c = LmtpClient::tcp(pf.smtp);
    assert_eq!(code(&c.cmd("EHLO load.test")), 250);
    for m in msgs {
        let r = c.cmd(&format!("MAIL FROM:<{FROM}>"));
        assert_eq!(code(&r), 250, "{r:?}");
        for &i in &m.rcpts {
            let r = c.cmd(&format!("RCPT TO:<{}>", user(i)));
            assert_eq!(code(&r), 250, "{r:?}");
        }
        assert_eq!(code(&c.cmd("DATA")), 354);
        let body = message(FROM, &user(m.rcpts[0]), &m.subject, "cluster load\n");
        let r = c.send_data(&body, 1);
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    c.quit();
}

/// Postfix with `transport_maps` from `routes` (address, LMTP address).
fn postfix(routes: &[(String, IpAddr)], dir: &Path, name: &str) -> Postfix {
    let map = dir.join(name);
    let text: String = routes
        .iter()
        .map(|(u, ip)| format!("{u} lmtp:inet:{}\n", SocketAddr::new(*ip, LMTP)))
        .collect();
    replace_file(&map, &text);
    Postfix::start_custom(
        "error:5.3.0 not in the test's transport map",
        &[DOMAIN],
        None,
        &format!("transport_maps = texthash:{}\n", map.display()),
        "",
    )
}

/// `postqueue -j` as (address, delay_reason) of every pending recipient.
fn pending(pf: &Postfix) -> Vec<(String, String)> {
    pf.queue()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|m| {
            m["recipients"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    (
                        r["address"].as_str().unwrap_or("").to_owned(),
                        r["delay_reason"].as_str().unwrap_or("").to_owned(),
                    )
                })
        })
        .collect()
}

fn flush(pf: &Postfix) {
    run(Command::new("postqueue")
        .arg("-c")
        .arg(&pf.config_dir)
        .arg("-f"));
}

/// MAIL and RCPT for `rcpt` on a mailstow at `at`: the RCPT reply (RSET
/// after it: nothing is delivered). None when the connection is refused
/// (421: the probe comes from Postfix's address, whose 20 connections may
/// fill `max_connections_per_ip`).
fn probe_rcpt(at: SocketAddr, rcpt: &str) -> Option<Vec<String>> {
    let mut c = LmtpClient::try_tcp(at).ok()?;
    c.lhlo();
    assert_eq!(code(&c.cmd(&format!("MAIL FROM:<{FROM}>"))), 250);
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>"));
    c.cmd("RSET");
    c.quit();
    Some(r)
}

/// The (Subject, Message-ID) of every message in a user's INBOX, read
/// through the IMAP proxy.
fn read_back(imap_at: SocketAddr, address: &str) -> Vec<(String, String)> {
    let mut c = Imap::connect(imap_at);
    c.login(address, PASSWORD)
        .unwrap_or_else(|e| panic!("IMAP LOGIN {address} through the proxy: {e}"));
    c.examine("INBOX");
    let lines = c
        .run("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])")
        .unwrap_or_else(|e| panic!("FETCH {address}: {e}"));
    c.logout();
    lines
        .iter()
        .filter(|l| l.text.contains(" FETCH ("))
        .map(|l| {
            let head = String::from_utf8_lossy(l.literals.last().expect("header literal"));
            let field = |name: &str| {
                head.lines()
                    .find_map(|h| {
                        let (k, v) = h.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            (field("Subject"), field("Message-ID"))
        })
        .collect()
}

/// `doveadm kick USER`: 0 when it kicked someone, 68 (EX_NOUSER) when
/// the user had no session.
fn kick(dovecot: &Dovecot, address: &str) {
    let out = output_with_input(
        Command::new("doveadm")
            .arg("-c")
            .arg(dovecot.config_path())
            .args(["kick", address]),
        b"",
    );
    assert!(
        matches!(out.status.code(), Some(0 | 68)),
        "doveadm kick {address}: {out:?}"
    );
}

/// (recipient, Message-ID) of every delivery Postfix logged as "message
/// may be sent more than once": the backend died after the end of the data
/// and before its reply, so it may have stored the message already, and
/// the retry stores it again. No LMTP server can close that window (the
/// reply is the only acknowledgement); docs/scale-out.md's failure table.
fn maybe_twice(pf: &Postfix) -> HashSet<(String, String)> {
    let log = pf.maillog();
    // Maillog lines: "<date> postfix postfix/<daemon>[pid]: QID: what".
    let fields = |line: &str| -> Option<(String, String)> {
        let mut parts = line.splitn(3, ": ").skip(1);
        Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
    };
    let mut msgid: HashMap<String, String> = HashMap::new();
    for (qid, rest) in log.lines().filter_map(fields) {
        if let Some(id) = rest.strip_prefix("message-id=") {
            msgid.insert(qid, id.trim().to_owned());
        }
    }
    log.lines()
        .filter(|l| l.contains("may be sent more than once"))
        .filter_map(fields)
        .filter_map(|(qid, rest)| {
            let to = rest.strip_prefix("to=<")?.split('>').next()?.to_owned();
            Some((to, msgid.get(&qid)?.clone()))
        })
        .collect()
}

/// Lines of a maillog with `status=deferred`.
fn deferrals(pf: &Postfix) -> Vec<String> {
    pf.maillog_lines(&["status=deferred"])
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

/// Everything of issue 18's cluster in one run: phase A routes with
/// Postfix's transport_maps straight to the backends and kills one
/// backend mid-load; phase B routes through the two mailstow proxies and
/// moves a user from b1 to b3 mid-load. Then every user's INBOX is read
/// through the Dovecot IMAP proxy: none missing, none unexpected, a second
/// copy only of a delivery Postfix logged "may be sent more than once".
#[test]
fn cluster_loses_nothing_through_a_killed_backend_and_a_moved_user_and_dovecot_reads_all_back() {
    crate::peers::ensure_installed();
    let started = Instant::now();
    vmail();
    let work = temp_dir("mailstow-cluster-");

    // Processes are declared after the network: they stop before it goes.
    let mut net = Net::new();
    let mx = net.node("mx", 2);
    let b: Vec<usize> = (0..3)
        .map(|n| net.node(&format!("b{}", n + 1), backend_host(n)))
        .collect();
    let p: Vec<usize> = (0..2)
        .map(|n| net.node(&format!("p{}", n + 1), proxy_host(n)))
        .collect();
    let imap_ns = net.node("imap", 30);
    // The test thread (and Postfix, which it starts) lives in mx.
    let _inside = Inside::enter(&net.nodes[mx]);

    // Three backends: a mailstow and a Dovecot on the same users and
    // Maildirs, in their own namespace; each knows only its own users.
    let mut node_of: Vec<usize> = (0..USERS).map(home_node).collect();
    let mut backends: Vec<Mailstow> = Vec::new();
    let mut readers: Vec<Dovecot> = Vec::new();
    for (n, &ns) in b.iter().enumerate() {
        let users: Vec<String> = (0..USERS).filter(|&i| node_of[i] == n).map(user).collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let mut opts = Options::new(&users);
        opts.launcher = net.nodes[ns].launcher();
        opts.listen = Some(SocketAddr::new(addr(backend_host(n)), LMTP));
        opts.limits_extra = PER_IP.into();
        let m = Mailstow::start_with(opts);
        readers.push(Dovecot::start_at(
            &m.users_file,
            &m.mail_root,
            "",
            &net.nodes[ns].launcher(),
            addr(backend_host(n)),
        ));
        backends.push(m);
    }

    // One routing passwd-file for the two proxies and the IMAP proxy.
    let routes = work.path().join("routes");
    replace_file(&routes, &routes_text(&node_of, None));
    let fronts: Vec<Mailstow> = p
        .iter()
        .enumerate()
        .map(|(n, &ns)| {
            let mut opts = Options::new(&[]);
            opts.users_toml = Some(format!(
                "passwd_file = {}",
                toml_str(&routes.to_string_lossy())
            ));
            opts.extra_toml = format!(
                "[proxy]\nenabled = true\nself = [\"{}\"]\nconnect_timeout = 2\ntimeout = 10\n",
                addr(proxy_host(n))
            );
            opts.launcher = net.nodes[ns].launcher();
            opts.listen = Some(SocketAddr::new(addr(proxy_host(n)), LMTP));
            opts.limits_extra = PER_IP.into();
            Mailstow::start_with(opts)
        })
        .collect();
    let empty_root = work.path().join("imap-proxy-has-no-mail");
    fs::create_dir(&empty_root).unwrap();
    let imap_proxy = Dovecot::start_at(
        &routes,
        &empty_root,
        "",
        &net.nodes[imap_ns].launcher(),
        addr(30),
    );
    let mut expected: HashMap<usize, Vec<String>> = HashMap::new();
    let mut expect = |msgs: &[Msg]| {
        for m in msgs {
            for &i in &m.rcpts {
                expected.entry(i).or_default().push(m.subject.clone());
            }
        }
    };

    // ---- Phase A: Postfix's transport_maps straight to the backends;
    // b2 killed with SIGKILL mid-load, restarted, the queue flushed.
    let t_a = Instant::now();
    let direct: Vec<(String, IpAddr)> = (0..USERS)
        .map(|i| (user(i), addr(backend_host(node_of[i]))))
        .collect();
    let pf = postfix(&direct, work.path(), "transport-direct");
    let msgs = plan("A");
    expect(&msgs);
    let (first, second) = msgs.split_at(msgs.len() / 2);
    submit(&pf, first);
    let b2_relay = format!("relay={}[", addr(backend_host(1)));
    pf.wait_maillog(&[&b2_relay, "status=sent"], 1);
    backends[1].signal(Signal::SIGKILL);
    backends[1].wait_exit(TIMEOUT);
    submit(&pf, second);
    // Everything but b2's recipients drains; b2's wait, deferred.
    let b2_users: Vec<String> = (0..USERS).filter(|&i| node_of[i] == 1).map(user).collect();
    let held = poll(TIMEOUT, || {
        let q = pending(&pf);
        (!q.is_empty()
            && q.iter()
                .all(|(a, why)| b2_users.contains(a) && !why.is_empty()))
        .then_some(q.len())
    })
    .unwrap_or_else(|| {
        panic!(
            "the queue should hold b2's recipients only, deferred: {:?}\n{}",
            pending(&pf),
            tail(&pf.maillog(), 30)
        )
    });
    let deferred_a = deferrals(&pf);
    let others: Vec<&String> = deferred_a
        .iter()
        .filter(|l| !b2_users.iter().any(|u| l.contains(&format!("to=<{u}>"))))
        .take(5)
        .collect();
    assert!(
        others.is_empty(),
        "not b2's recipients deferred: {others:?}"
    );
    backends[1].restart();
    flush(&pf);
    pf.wait_queue_empty(TIMEOUT);
    let deferred_a = deferrals(&pf).len();
    let window = maybe_twice(&pf);
    let sent_a = pf.maillog_lines(&["status=sent"]).len();
    drop(pf);
    let took_a = t_a.elapsed();

    // ---- Phase B: Postfix to the two proxies (half the users each), the
    // proxies to the backends; u000 moved from b1 to b3 mid-load.
    let t_b = Instant::now();
    const MOVER: usize = 0;
    let mover = user(MOVER);
    let (old_node, new_node) = (node_of[MOVER], 2);
    let via_proxies: Vec<(String, IpAddr)> = (0..USERS)
        .map(|i| (user(i), addr(proxy_host(i % 2))))
        .collect();
    let pf = postfix(&via_proxies, work.path(), "transport-proxies");
    let msgs = plan("B");
    expect(&msgs);
    let (first, second) = msgs.split_at(msgs.len() / 2);
    submit(&pf, first);
    pf.wait_maillog(&[&format!("to=<{mover}>"), "status=sent"], 1);
    // 1. Defer: tempfail=y in the routing file; both proxies answer 451.
    replace_file(&routes, &routes_text(&node_of, Some(MOVER)));
    for f in &fronts {
        let r = poll(TIMEOUT, || {
            let r = probe_rcpt(f.tcp, &mover)?;
            r.last()
                .is_some_and(|l| l.starts_with("451 4.2.1"))
                .then_some(r)
        });
        assert!(r.is_some(), "{} still takes {mover}", f.tcp);
    }
    submit(&pf, second);
    // 2. Deliveries in flight finish: every queued copy for the mover has
    // been refused with 4.2.1 (none is being delivered to b1 any more).
    let waiting = poll(TIMEOUT, || {
        let q: Vec<_> = pending(&pf)
            .into_iter()
            .filter(|(a, _)| *a == mover)
            .collect();
        q.iter()
            .all(|(_, why)| why.contains("4.2.1"))
            .then_some(q.len())
    })
    .expect("deliveries to the mover in flight did not finish");
    kick(&readers[old_node], &mover);
    // 3. Copy the home (Maildir, mailstow's index, Dovecot's indexes) to
    // b3, keeping names, modes and owners; b3 learns the user; the index
    // is reconciled with the copied Maildir.
    let (from, to) = (
        backends[old_node].home(&mover),
        backends[new_node].home(&mover),
    );
    let domain_dir = to.parent().unwrap();
    fs::create_dir_all(domain_dir).unwrap();
    run(Command::new("cp").arg("-a").arg(&from).arg(domain_dir));
    let b3_users: Vec<String> = (0..USERS)
        .filter(|&i| node_of[i] == new_node || i == MOVER)
        .map(user)
        .collect();
    replace_file(&backends[new_node].users_file, &users_text(&b3_users));
    run(Command::new(env!("CARGO_BIN_EXE_mailstow"))
        .args(["index", "sync", "--config"])
        .arg(&backends[new_node].config)
        .arg(&mover));
    // 4. Flip host and drop tempfail; both proxies take the mover again.
    node_of[MOVER] = new_node;
    replace_file(&routes, &routes_text(&node_of, None));
    for f in &fronts {
        let r = poll(TIMEOUT, || {
            let r = probe_rcpt(f.tcp, &mover)?;
            (code(&r) == 250).then_some(r)
        });
        assert!(r.is_some(), "{} does not take {mover} back", f.tcp);
    }
    // 5. Resume: the retry delivers to b3.
    flush(&pf);
    pf.wait_queue_empty(TIMEOUT);
    let moved_in = pf
        .maillog_lines(&[&format!("to=<{mover}>"), "status=sent"])
        .len();
    // IMAP reads the mover from b3 now; the old copy goes.
    let on_b3 = read_back(imap_proxy.imap, &mover);
    assert_eq!(on_b3.len(), expected[&MOVER].len(), "{on_b3:?}");
    fs::remove_dir_all(&from).unwrap();
    let b1_users: Vec<String> = (0..USERS)
        .filter(|&i| node_of[i] == old_node)
        .map(user)
        .collect();
    replace_file(&backends[old_node].users_file, &users_text(&b1_users));
    let deferred_b = deferrals(&pf).len();
    let sent_b = pf.maillog_lines(&["status=sent"]).len();
    drop(pf);
    let took_b = t_b.elapsed();

    // ---- Every message read back through the IMAP proxy, once.
    let t_read = Instant::now();
    let (mut lost, mut twice, mut read) = (0, 0, 0);
    let mut report = Vec::new();
    for i in 0..USERS {
        let got = read_back(imap_proxy.imap, &user(i));
        read += got.len();
        let mut count: BTreeMap<&(String, String), usize> = BTreeMap::new();
        for key in &got {
            *count.entry(key).or_default() += 1;
        }
        let subjects: HashSet<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
        let want = &expected[&i];
        let missing: Vec<&String> = want
            .iter()
            .filter(|s| !subjects.contains(s.as_str()))
            .collect();
        let unknown: Vec<&str> = subjects
            .iter()
            .filter(|s| !want.iter().any(|w| w == *s))
            .copied()
            .collect();
        lost += missing.len();
        for ((subject, id), n) in count.iter().filter(|(_, &n)| n > 1) {
            twice += n - 1;
            // A second copy only where Postfix itself says it may have
            // sent the message twice, and never a third.
            if *n > 2 || !window.contains(&(user(i), id.clone())) {
                report.push(format!("{}: {subject:?} {id} stored {n} times", user(i)));
            }
        }
        if !missing.is_empty() || !unknown.is_empty() {
            report.push(format!(
                "{}: missing {missing:?}, unexpected {unknown:?}",
                user(i)
            ));
        }
        // Stored on its node only.
        for (n, m) in backends.iter().enumerate() {
            assert_eq!(
                m.home(&user(i)).exists(),
                n == node_of[i],
                "{} on b{}",
                user(i),
                n + 1
            );
        }
    }
    let took_read = t_read.elapsed();
    let delivered: usize = expected.values().map(Vec::len).sum();
    for f in &fronts {
        assert_eq!(
            fs::read_dir(&f.mail_root).unwrap().count(),
            0,
            "a proxy stored mail"
        );
    }
    println!(
        "cluster: {USERS} users, {delivered} deliveries ({} messages submitted), \
         {read} read back over IMAP; lost {lost}, stored twice {twice} (Postfix logged \
         {} recipients as \"may be sent more than once\")\n\
         phase A (direct, b2 killed): {took_a:.1?}, {sent_a} sent, {deferred_a} deferred \
         ({held} recipients held while b2 was down)\n\
         phase B (via proxies, {mover} moved b1 -> b3): {took_b:.1?}, {sent_b} sent, \
         {deferred_b} deferred ({waiting} held for the move, {moved_in} delivered to the mover)\n\
         read back: {took_read:.1?}; whole test {:.1?}",
        2 * USERS * PER_USER / RCPTS,
        window.len(),
        started.elapsed()
    );
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert_eq!((lost, read), (0, delivered + twice));
}
