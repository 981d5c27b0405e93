//! The order of durability, checked from a system-call trace (strace): for
//! every message mailstow acknowledged (a `250 2.0.0 <id>` written to an
//! LMTP client, or `mailstow deliver` exiting 0), its file's data was
//! flushed after its last write and before it was linked into `new/` or
//! `cur/`, the directory that received it was fsynced after the link and
//! before the acknowledgement, and so was the parent of every directory the
//! delivery created. A copy hard-linked from a name already published (one
//! file for several recipients, `[delivery] single_copy`) is held to the
//! same: its file flushed before that link, its directory fsynced after it
//! and before the acknowledgement. A build that skips one flush (`MAILSTOW_SKIP_FLUSH`,
//! compiled only into test builds) must fail the same check, so the check
//! is seen to bite. Must not rely on timing: the trace's order is the
//! order the kernel saw.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{self, code, message, poll, Mailstow, Options, Proc, TIMEOUT};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";

/// The system calls the check reads.
const TRACED: &str = "trace=write,writev,pwrite64,pwritev,pwritev2,sendto,sendmsg,\
copy_file_range,sendfile,splice,fsync,fdatasync,syncfs,link,linkat,rename,renameat,\
renameat2,mkdir,mkdirat,exit_group";

// ---------------------------------------------------------------------------
// Reading a trace
// ---------------------------------------------------------------------------

/// One system call: where its line starts and ends in the trace (a call
/// another thread interrupted spans an "unfinished" and a "resumed" line).
#[derive(Debug, Clone)]
struct Call {
    pid: u32,
    name: String,
    args: String,
    ret: String,
    start: usize,
    end: usize,
}

/// The calls of an `strace -f -yy` trace, in the order their lines end,
/// and the pids that exited with status 0 (with the line index).
fn parse(trace: &str) -> (Vec<Call>, Vec<(u32, usize)>) {
    let mut calls = Vec::new();
    let mut exits = Vec::new();
    let mut pending: HashMap<u32, (String, String, usize)> = HashMap::new();
    for (i, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++ exited with 0 +++") {
            exits.push((pid, i));
        } else if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            if let Some((name, args)) = head.split_once('(') {
                pending.insert(pid, (name.to_owned(), args.to_owned(), i));
            }
        } else if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((name, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            let (args0, start) = pending
                .remove(&pid)
                .map_or((String::new(), i), |(_, a, s)| (a, s));
            if let Some(c) = call(pid, name, &format!("{args0}{tail}"), start, i) {
                calls.push(c);
            }
        } else if let Some((name, tail)) = rest.split_once('(') {
            if let Some(c) = call(pid, name, tail, i, i) {
                calls.push(c);
            }
        }
    }
    (calls, exits)
}

fn call(pid: u32, name: &str, tail: &str, start: usize, end: usize) -> Option<Call> {
    // strace pads a resumed call's result: ")      = 0".
    let (args, ret) = tail.rsplit_once(" = ")?;
    let args = args.trim_end().strip_suffix(')')?;
    Some(Call {
        pid,
        name: name.to_owned(),
        args: args.to_owned(),
        ret: ret.split_whitespace().next().unwrap_or("").to_owned(),
        start,
        end,
    })
}

/// The path in an `-yy` file descriptor argument: `7</a/b>` -> `/a/b`.
fn fd_path(arg: &str) -> Option<&str> {
    let inner = arg.trim().split_once('<')?.1.strip_suffix('>')?;
    inner.starts_with('/').then_some(inner)
}

/// The arguments, split at top-level commas (not inside quotes, brackets
/// or braces).
fn split_args(args: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quoted, mut esc, mut from) = (Vec::new(), 0i32, false, false, 0);
    for (i, c) in args.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if quoted => esc = true,
            '"' => quoted = !quoted,
            '[' | '{' | '<' if !quoted => depth += 1,
            ']' | '}' | '>' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(args[from..i].trim());
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(args[from..].trim());
    out
}

/// A path argument of an `*at` call: the name when absolute, else joined
/// to its directory descriptor's path.
fn at_path(dirfd: &str, name: &str) -> Option<String> {
    let name = name.trim().trim_matches('"');
    if name.starts_with('/') {
        return Some(name.to_owned());
    }
    Some(format!("{}/{name}", fd_path(dirfd)?))
}

/// What the check needs of a trace.
#[derive(Default, Debug)]
struct Events {
    /// Path -> line indexes where a write to it ended.
    writes: HashMap<String, Vec<usize>>,
    /// (path, start, end) of each fsync/fdatasync; "" for a syncfs.
    syncs: Vec<(String, usize, usize)>,
    /// (from, to, end) of each link or rename.
    links: Vec<(String, String, usize)>,
    /// (directory, end) of each mkdir.
    mkdirs: Vec<(String, usize)>,
    /// Queue id -> the tmp/ files whose data names it.
    files_of: HashMap<String, Vec<String>>,
    /// (queue id, start) of each `250 2.0.0 <id>` written to a socket.
    acks: Vec<(String, usize)>,
}

fn events(calls: &[Call]) -> Events {
    let mut e = Events::default();
    for c in calls.iter().filter(|c| !c.ret.starts_with('-')) {
        let a = split_args(&c.args);
        match c.name.as_str() {
            "write" | "writev" | "pwrite64" | "pwritev" | "pwritev2" | "sendto" | "sendmsg" => {
                written(&mut e, a[0], &c.args, c);
            }
            "copy_file_range" | "splice" if a.len() > 2 => written(&mut e, a[2], "", c),
            "sendfile" => written(&mut e, a[0], "", c),
            "fsync" | "fdatasync" => {
                if let Some(p) = fd_path(a[0]) {
                    e.syncs.push((p.to_owned(), c.start, c.end));
                }
            }
            "syncfs" => e.syncs.push((String::new(), c.start, c.end)),
            "link" | "rename" => {
                e.links.push((unquote(a[0]), unquote(a[1]), c.end));
            }
            "linkat" | "renameat" | "renameat2" => {
                if let (Some(from), Some(to)) = (at_path(a[0], a[1]), at_path(a[2], a[3])) {
                    e.links.push((from, to, c.end));
                }
            }
            "mkdir" => e.mkdirs.push((unquote(a[0]), c.end)),
            "mkdirat" => {
                if let Some(p) = at_path(a[0], a[1]) {
                    e.mkdirs.push((p, c.end));
                }
            }
            _ => {}
        }
    }
    e
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches('"').to_owned()
}

/// A write: to a file (its path remembered, and the queue id its data
/// names), or to a socket (a 250 for a queue id).
fn written(e: &mut Events, fd: &str, data: &str, c: &Call) {
    match fd_path(fd) {
        Some(p) => {
            e.writes.entry(p.to_owned()).or_default().push(c.end);
            if let Some(id) = after(data, "\\tid ") {
                e.files_of.entry(id).or_default().push(p.to_owned());
            }
        }
        None => {
            let mut rest = data;
            while let Some(at) = rest.find("250 2.0.0 ") {
                rest = &rest[at + 10..];
                let id: String = rest
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                e.acks.push((id, c.start));
            }
        }
    }
}

/// The alphanumeric word after `marker` in `s`.
fn after(s: &str, marker: &str) -> Option<String> {
    let at = s.find(marker)? + marker.len();
    let id: String = s[at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    (!id.is_empty()).then_some(id)
}

// ---------------------------------------------------------------------------
// The check
// ---------------------------------------------------------------------------

/// Every way the trace breaks the promise for an acknowledged message;
/// empty when it keeps it. `acks`: (queue id, line index) of each
/// acknowledgement.
fn violations(e: &Events, acks: &[(String, usize)], mail_root: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (id, ack) in acks {
        let files = e.files_of.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let published = published(e, files, *ack);
        if published.is_empty() {
            bad.push(format!(
                "{id}: acknowledged at line {ack} but no file of it was linked into place before"
            ));
        }
        for (from, to, linked) in &published {
            check_file(e, id, from, *linked, &mut bad);
            check_dir(e, id, parent(to), *linked, *ack, &mut bad);
            for (dir, made) in e
                .mkdirs
                .iter()
                .filter(|(d, m)| m < ack && to.starts_with(d.as_str()) && d.starts_with(mail_root))
            {
                check_dir(e, id, parent(dir), *made, *ack, &mut bad);
            }
        }
    }
    bad
}

/// The links before `ack` that put `files` into place, as (written file,
/// name linked, line): a link from one of them, or from a name linked so
/// (a copy sharing the file), then named by the file written.
fn published(e: &Events, files: &[String], ack: usize) -> Vec<(String, String, usize)> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for (from, to, end) in e.links.iter().filter(|l| l.2 < ack) {
        let root = match files.contains(from) {
            true => Some(from.clone()),
            false => out
                .iter()
                .find(|p| p.1 == *from && p.2 < *end)
                .map(|p| p.0.clone()),
        };
        if let Some(root) = root {
            out.push((root, to.clone(), *end));
        }
    }
    out
}

/// Links whose source was a name in new/ or cur/ (a shared file), not tmp/.
fn shared_links(trace: &str) -> usize {
    let (calls, _) = parse(trace);
    let linked = |p: &str| p.contains("/new/") || p.contains("/cur/");
    events(&calls).links.iter().filter(|l| linked(&l.0)).count()
}

/// The file's data was flushed after its last write and before its link.
fn check_file(e: &Events, id: &str, file: &str, linked: usize, bad: &mut Vec<String>) {
    let last_write = e
        .writes
        .get(file)
        .and_then(|w| w.iter().filter(|&&w| w < linked).max().copied())
        .unwrap_or(0);
    let flushed = e
        .syncs
        .iter()
        .any(|(p, start, end)| (p == file || p.is_empty()) && *start > last_write && *end < linked);
    if !flushed {
        bad.push(format!(
            "{id}: {file} linked at line {linked} without a flush after its last write (line {last_write})"
        ));
    }
}

/// `dir` was fsynced by a call that began after `after` and ended before
/// `ack`.
fn check_dir(e: &Events, id: &str, dir: &str, after: usize, ack: usize, bad: &mut Vec<String>) {
    let synced = e
        .syncs
        .iter()
        .any(|(p, start, end)| (p == dir || p.is_empty()) && *start > after && *end < ack);
    if !synced {
        bad.push(format!(
            "{id}: directory {dir} not fsynced between line {after} and the acknowledgement at line {ack}"
        ));
    }
}

fn parent(p: &str) -> &str {
    p.rsplit_once('/').map_or(p, |(d, _)| d)
}

// ---------------------------------------------------------------------------
// Running mailstow under strace
// ---------------------------------------------------------------------------

fn ensure_strace() {
    util::apt_install_missing(&["/usr/bin/strace"], &["strace"]);
}

fn strace_args(out: &Path) -> Vec<String> {
    ["-f", "-yy", "-s", "600", "-e", TRACED, "-o"]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
}

/// A server with two users: alice's script files reports into a folder it
/// creates and sets a keyword; a quota rule keeps maildirsize.
fn server(skip_flush: Option<&str>, flush: &str) -> Mailstow {
    let mut opts = Options::new(&[ALICE, BOB]);
    opts.extra_toml = "[quota]\nrule = \"*:storage=100M\"\n".into();
    opts.storage_extra = format!("flush = \"{flush}\"\n");
    if let Some(kind) = skip_flush {
        opts.launcher = vec!["env".into(), format!("MAILSTOW_SKIP_FLUSH={kind}")];
    }
    let ms = Mailstow::start_with(opts);
    let home = ms.mail_root.join("example.org/alice");
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join(".dovecot.sieve"),
        "require [\"fileinto\", \"mailbox\", \"imap4flags\"];\n\
         if header :contains \"subject\" \"report\" { addflag \"$Label1\"; fileinto :create \"Reports.Daily\"; }\n",
    )
    .unwrap();
    ms
}

/// Attaches strace to the running server (every thread), delivers a few
/// transactions over LMTP, detaches; the trace and the acknowledgements.
fn traced_lmtp(ms: &Mailstow, dir: &Path) -> (String, Vec<(String, usize)>) {
    let out = dir.join("lmtp.trace");
    let mut st = attach_strace(ms, &out, dir);
    let mut c = ms.connect();
    c.lhlo();
    for (i, subject) in ["hello", "daily report", "second report", "plain", "last"]
        .iter()
        .enumerate()
    {
        let msg = message("s@example.net", ALICE, subject, &format!("body {i}\r\n"));
        let r = c.deliver("s@example.net", &[ALICE, BOB], &msg);
        assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
    }
    c.quit();
    detach(st.as_mut(), &out)
}

/// strace attached to every thread of the running server, writing `out`.
fn attach_strace(ms: &Mailstow, out: &Path, dir: &Path) -> Box<Proc> {
    let err = dir.join("strace.err");
    let mut args = strace_args(out);
    args.extend(["-p".into(), ms.pid().to_string()]);
    let mut cmd = Command::new("strace");
    cmd.args(&args)
        .stdin(Stdio::null())
        .stderr(fs::File::create(&err).unwrap());
    let st = Proc::spawn("strace", &mut cmd, false);
    // strace says "Process N attached with T threads" once it holds
    // every thread of the server, before any mail goes in.
    poll(TIMEOUT, || {
        fs::read_to_string(&err)
            .ok()
            .filter(|e| e.contains("attached"))
    })
    .unwrap_or_else(|| panic!("strace did not attach: {:?}", fs::read_to_string(&err)));
    Box::new(st)
}

/// Detaches strace; the trace and the acknowledgements in it.
fn detach(st: &mut Proc, out: &Path) -> (String, Vec<(String, usize)>) {
    st.signal(nix::sys::signal::Signal::SIGINT);
    st.wait_exit(TIMEOUT).expect("strace detached");
    let trace = fs::read_to_string(out).unwrap();
    let (calls, _) = parse(&trace);
    let acks = events(&calls).acks;
    (trace, acks)
}

/// As [`traced_lmtp`], but four connections deliver at once, round after
/// round, until the trace shows a shared `syncfs` (grouped flushes), so
/// that the check sees batches of more than one delivery.
fn traced_lmtp_concurrent(ms: &Mailstow, dir: &Path) -> (String, Vec<(String, usize)>) {
    let out = dir.join("lmtp.trace");
    let mut st = attach_strace(ms, &out, dir);
    let grouped = || fs::read_to_string(&out).is_ok_and(|t| t.contains("syncfs("));
    for round in 0.. {
        assert!(
            round < 50,
            "no syncfs in the trace after {round} rounds of 4 concurrent deliveries"
        );
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    let mut c = ms.connect();
                    c.lhlo();
                    let subject = if t == 0 {
                        "daily report".to_owned()
                    } else {
                        format!("r{round} t{t}")
                    };
                    let msg = message("s@example.net", ALICE, &subject, "body\r\n");
                    let r = c.deliver("s@example.net", &[ALICE, BOB], &msg);
                    assert!(r.iter().all(|r| code(r) == 250), "{r:?}");
                    c.quit();
                });
            }
        });
        if grouped() {
            break;
        }
    }
    detach(st.as_mut(), &out)
}

/// `mailstow deliver` under strace, into a folder it creates; the trace
/// and the acknowledgement (its exit 0), under the queue id in the file.
fn traced_pipe(
    ms: &Mailstow,
    dir: &Path,
    skip_flush: Option<&str>,
) -> (String, Vec<(String, usize)>) {
    let out = dir.join("pipe.trace");
    let mut cmd = Command::new("strace");
    cmd.args(strace_args(&out))
        .arg(env!("CARGO_BIN_EXE_mailstow"))
        .args(["deliver", "--config"])
        .arg(&ms.config)
        .args(["-f", "s@example.net", "-d", BOB, "-m", "Piped.New"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(kind) = skip_flush {
        cmd.env("MAILSTOW_SKIP_FLUSH", kind);
    }
    let mut child = cmd.spawn().expect("strace mailstow deliver");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Subject: piped\n\nhello\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let trace = fs::read_to_string(&out).unwrap();
    let (calls, exits) = parse(&trace);
    let e = events(&calls);
    let main = calls.first().map_or(0, |c| c.pid);
    let exit = exits
        .iter()
        .find(|(pid, _)| *pid == main)
        .map(|(_, i)| *i)
        .expect("mailstow deliver exited 0");
    let acks = e.files_of.keys().map(|id| (id.clone(), exit)).collect();
    (trace, acks)
}

/// The violations of both traces (LMTP deliveries one after another in
/// per-file mode, four at a time in grouped mode, and one pipe delivery),
/// and the number of links from a shared file.
fn check(ms: &Mailstow, skip_flush: Option<&str>, flush: &str) -> (usize, Vec<String>, usize) {
    let dir = util::temp_dir("mailstow-trace-");
    let root = ms.mail_root.display().to_string();
    let mut bad = Vec::new();
    let (mut acked, mut shared) = (0, 0);
    let lmtp = match flush {
        "grouped" => traced_lmtp_concurrent(ms, dir.path()),
        _ => traced_lmtp(ms, dir.path()),
    };
    for (trace, acks) in [lmtp, traced_pipe(ms, dir.path(), skip_flush)] {
        let (calls, _) = parse(&trace);
        acked += acks.len();
        shared += shared_links(&trace);
        bad.extend(violations(&events(&calls), &acks, &root));
    }
    // Recipients of one transaction share its queue id: a file's fault is
    // found once for each of them.
    bad.sort();
    bad.dedup();
    (acked, bad, shared)
}

#[test]
fn every_acknowledged_message_was_flushed_linked_and_its_directory_synced_before_the_reply() {
    ensure_strace();
    let ms = server(None, "per-file");
    let (acked, bad, shared) = check(&ms, None, "per-file");
    // 5 transactions x 2 recipients over LMTP, 1 through the pipe.
    assert_eq!(acked, 11);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // Each transaction's second recipient linked the first one's file.
    assert_eq!(shared, 5);
    assert_eq!(ms.maildir(ALICE).messages("Reports.Daily").len(), 2);
    assert_eq!(ms.maildir(BOB).messages("Piped.New").len(), 1);
}

#[test]
fn with_grouped_flushes_every_acknowledged_message_was_flushed_linked_and_synced_before_the_reply()
{
    ensure_strace();
    let ms = server(None, "grouped");
    let (acked, bad, _) = check(&ms, None, "grouped");
    // Rounds of 4 transactions x 2 recipients over LMTP, 1 through the pipe.
    assert!(acked >= 9 && acked % 8 == 1, "{acked}");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert_eq!(ms.maildir(BOB).messages("Piped.New").len(), 1);
}

#[test]
fn the_check_fails_when_a_message_file_is_not_flushed() {
    ensure_strace();
    for flush in ["per-file", "grouped"] {
        let ms = server(Some("file"), flush);
        let (acked, bad, _) = check(&ms, Some("file"), flush);
        let unflushed = bad.iter().filter(|b| b.contains("without a flush")).count();
        match flush {
            // Every name put into place, once: 6 files written, 5 linked again.
            "per-file" => assert_eq!(
                (acked, unflushed),
                (11, 11),
                "every stored name, once: {bad:#?}"
            ),
            // Another delivery's syncfs between a file's write and its link
            // does make it durable: only most names are found.
            _ => assert!(unflushed * 2 > acked, "{unflushed} of {acked}: {bad:#?}"),
        }
    }
}

#[test]
fn the_check_fails_when_no_directory_is_synced() {
    ensure_strace();
    for flush in ["per-file", "grouped"] {
        let ms = server(Some("dir"), flush);
        let (_, bad, _) = check(&ms, Some("dir"), flush);
        assert!(
            bad.iter()
                .any(|b| b.contains("/new not fsynced") || b.contains("/cur not fsynced")),
            "{flush}: {bad:#?}"
        );
        assert!(
            bad.iter().any(|b| b.contains("Maildir not fsynced")),
            "{flush}: the created folder's parent: {bad:#?}"
        );
    }
}

#[test]
fn the_trace_reader_reads_interrupted_calls_and_at_paths() {
    let trace = "\
10 pwrite64(7</m/tmp/x>, \"Return-Path: <>\\n\\tid Q1\\n\"..., 30, 0) = 30
11 fsync(7</m/tmp/x> <unfinished ...>
10 mkdir(\"/m/.F\", 0700) = 0
11 <... fsync resumed>) = 0
10 linkat(AT_FDCWD</>, \"/m/tmp/x\", 8</m/new>, \"x\", 0) = 0
12 fsync(9</m/new>) = 0
12 write(5<UNIX-STREAM:[1->2,/s.sock]>, \"250 2.0.0 Q1 Saved\\r\\n\", 20) = 20
";
    let (calls, _) = parse(trace);
    assert_eq!(calls.len(), 6);
    let e = events(&calls);
    assert_eq!(e.files_of["Q1"], ["/m/tmp/x"]);
    assert_eq!(e.links, [("/m/tmp/x".to_owned(), "/m/new/x".to_owned(), 4)]);
    assert_eq!(e.syncs[0], ("/m/tmp/x".to_owned(), 1, 3));
    assert_eq!(e.acks, [("Q1".to_owned(), 6)]);
    assert!(violations(&e, &e.acks, "/m").is_empty());
    // Without the directory fsync the same trace breaks the promise.
    let no_dir: String = trace
        .lines()
        .filter(|l| !l.starts_with("12 fsync"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (calls, _) = parse(&no_dir);
    let e = events(&calls);
    assert_eq!(violations(&e, &e.acks, "/m").len(), 1);
}

#[test]
#[ignore = "debugging aid: prints a trace"]
fn show_trace() {
    ensure_strace();
    let ms = server(None, "per-file");
    let dir = util::temp_dir("mailstow-trace-");
    let (trace, acks) = traced_lmtp(&ms, dir.path());
    for l in trace
        .lines()
        .filter(|l| l.contains("250 ") || l.contains("resumed") || l.contains("unfinished"))
    {
        println!("{l}");
    }
    println!("{acks:?}");
}
