//! Running mailstow in production: `config check` through the real binary,
//! SIGHUP reload under load, and the Prometheus endpoint scraped over HTTP.
//! Must not depend on anything but the binary's output, replies and files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use nix::sys::signal::Signal;

use crate::util::{
    chown, code, find, message, temp_dir, toml_str, vmail, write_passwd_file, Mailstow, Owner,
};

fn mailstow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailstow"))
}

fn config_check(config: &Path, quiet: bool) -> Output {
    let mut cmd = mailstow();
    cmd.args(["config", "check", "--config"]).arg(config);
    if quiet {
        cmd.arg("--quiet");
    }
    cmd.output().expect("run mailstow config check")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A config in `dir` with a mail root and passwd-file there; `extra` is
/// appended.
fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let mail = dir.join("mail");
    fs::create_dir_all(&mail).unwrap();
    fs::create_dir_all(dir.join("spool")).unwrap();
    write_passwd_file(&dir.join("users"), &["a@example.org".to_owned()], vmail());
    let config = dir.join("mailstow.toml");
    fs::write(
        &config,
        format!(
            "{extra}\n[storage]\nmail_root = {}\n[users]\npasswd_file = \"users\"\n\
             [delivery]\nspool_dir = \"spool\"\n",
            toml_str(&mail.to_string_lossy())
        ),
    )
    .unwrap();
    config
}

/// No panic text or Rust debug dump reaches the admin.
fn assert_readable(text: &str) {
    for bad in ["panicked", "RUST_BACKTRACE", "Some(", "Err(", "{ "] {
        assert!(!text.contains(bad), "{bad:?} in:\n{text}");
    }
}

#[test]
fn config_check_prints_the_effective_config_which_loads_again() {
    let t = temp_dir("config-check-");
    let config = write_config(t.path(), "");
    let first = config_check(&config, false);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("ok"), "{}", stderr(&first));
    let printed = String::from_utf8(first.stdout).unwrap();
    // The defaults are spelled out.
    assert!(printed.contains("max_recipients = 1000"), "{printed}");
    assert!(printed.contains("[sieve]"), "{printed}");
    // Loading the printout gives the same effective configuration.
    let again = t.path().join("effective.toml");
    fs::write(&again, &printed).unwrap();
    let second = config_check(&again, false);
    assert!(second.status.success(), "{}", stderr(&second));
    let reprinted = String::from_utf8(second.stdout).unwrap();
    let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_eq!(body(&printed), body(&reprinted));
}

#[test]
fn config_check_names_the_key_and_the_reason() {
    let t = temp_dir("config-check-");
    for (extra, key) in [
        ("[limits]\nmax_errors = 0", "[limits.max_errors]"),
        ("[lmtp]\nlisten = [\"nowhere\"]", "[lmtp.listen]"),
        ("[metrics]\nlisten = \"192.0.2.1:9154\"", "[metrics.listen]"),
        ("[limits]\nmax_errors = \"ten\"", "max_errors"),
        ("[log]\nbogus = 1", "unknown field `bogus`"),
    ] {
        let config = write_config(t.path(), extra);
        let out = config_check(&config, true);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(78), "{extra}: {err}");
        assert!(err.contains(key), "{extra}: {err}");
        assert!(err.contains("mailstow.toml"), "{extra}: {err}");
        assert_readable(&err);
    }
    // A script that does not compile is named with its line.
    fs::write(
        t.path().join("before.sieve"),
        "require \"fileinto\";\nfileinto\n",
    )
    .unwrap();
    let config = write_config(t.path(), "[sieve]\nbefore = [\"before.sieve\"]");
    let out = config_check(&config, true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("[sieve.before]") && err.contains("before.sieve:"),
        "{err}"
    );
}

#[test]
fn config_check_judges_directories_as_the_configured_user() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root to name another user (user = \"vmail\"); the integration tests run as root"
    );
    let t = temp_dir("config-check-");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_config(t.path(), "user = \"vmail\"");
    let mail = t.path().join("mail");
    let root = Owner { uid: 0, gid: 0 };
    chown(&mail, root);
    fs::set_permissions(&mail, fs::Permissions::from_mode(0o755)).unwrap();
    chown(&t.path().join("spool"), vmail());
    let out = config_check(&config, true);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("[storage.mail_root]")
            && err.contains("vmail")
            && err.contains("cannot write"),
        "{err}"
    );
    assert!(err.contains(&mail.display().to_string()), "{err}");
    chown(&mail, vmail());
    let out = config_check(&config, true);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Rewrite the running config with `edit` and send SIGHUP; wait for the
/// log line that says how it went (`expect`), counting earlier ones.
fn reload(ms: &mut Mailstow, edit: impl FnOnce(String) -> String, expect: &str) {
    // SIGHUP is caught once the server says it is ready.
    ms.wait_until("the server to be ready", |m| {
        m.log().contains(" ready").then_some(())
    });
    let before = ms.log().matches(expect).count();
    let text = fs::read_to_string(&ms.config).unwrap();
    fs::write(&ms.config, edit(text)).unwrap();
    ms.signal(Signal::SIGHUP);
    ms.wait_until(&format!("log line {expect:?}"), |m| {
        (m.log().matches(expect).count() > before).then_some(())
    });
}

#[test]
fn sighup_reloads_users_sieve_and_limits_without_dropping_a_transaction() {
    const A: &str = "a@example.org";
    const NEW: &str = "new@example.org";
    let mut ms = Mailstow::start(&[A]);
    ms.install_sieve(
        A,
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Filtered\";\n",
    );

    // A transaction in flight across the reload: RCPTs taken, DATA later.
    let mut open = ms.connect();
    open.lhlo();
    assert_eq!(code(&open.cmd("MAIL FROM:<s@example.net>")), 250);
    assert_eq!(code(&open.cmd(&format!("RCPT TO:<{A}>"))), 250);

    // Another users file, Sieve off, one recipient per transaction.
    let users2 = ms.dir().join("users2");
    write_passwd_file(&users2, &[A.to_owned(), NEW.to_owned()], vmail());
    let users2_str = toml_str(&users2.to_string_lossy());
    let old_users = toml_str(&ms.users_file.to_string_lossy());
    reload(
        &mut ms,
        |t| {
            t.replace(
                &format!("passwd_file = {old_users}"),
                &format!("passwd_file = {users2_str}"),
            )
            .replace("max_recipients = 1000", "max_recipients = 1")
                + "[sieve]\nenabled = false\n"
        },
        "configuration reloaded",
    );

    // The open transaction finishes, under the settings it started with:
    // a second recipient is still allowed and its script still runs.
    assert_eq!(
        code(&open.cmd(&format!("RCPT TO:<{A}>"))),
        250,
        "old limit kept"
    );
    assert_eq!(code(&open.cmd("DATA")), 354);
    let replies = open.send_data(&message("s@example.net", A, "during", "x"), 2);
    assert!(replies.iter().all(|r| code(r) == 250), "{replies:?}");
    open.quit();

    // New connections: the new users file, the new limit, Sieve off.
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net>")), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{NEW}>"))), 250, "new user");
    let r = c.cmd(&format!("RCPT TO:<{A}>"));
    assert_eq!(r.last().map(|l| &l[..9]), Some("452 4.5.3"), "{r:?}");
    assert_eq!(code(&c.cmd("DATA")), 354);
    let r = c.send_data(&message("s@example.net", NEW, "after", "y"), 1);
    assert_eq!(code(&r[0]), 250, "{r:?}");
    c.deliver(
        "s@example.net",
        &[A],
        &message("s@example.net", A, "unfiltered", "z"),
    );
    c.quit();
    let filtered = ms.maildir(A).wait_messages("Filtered", 1);
    assert!(find(&filtered[0].bytes, b"Subject: during").is_some());
    let inbox = ms.maildir(A).wait_messages("INBOX", 1);
    assert!(find(&inbox[0].bytes, b"Subject: unfiltered").is_some());
    ms.maildir(NEW).wait_messages("INBOX", 1);

    // A config that does not validate is refused; the running one stays.
    reload(
        &mut ms,
        |t| t.replace("max_recipients = 1\n", "max_recipients = 0\n"),
        "reload refused",
    );
    let log = ms.log();
    let line = log.lines().rfind(|l| l.contains("reload refused")).unwrap();
    assert!(line.contains("limits.max_recipients"), "{line}");
    let mut c = ms.connect();
    c.lhlo();
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net>")), 250);
    assert_eq!(code(&c.cmd(&format!("RCPT TO:<{NEW}>"))), 250);
    assert_eq!(
        code(&c.cmd(&format!("RCPT TO:<{A}>"))),
        452,
        "limit 1 still"
    );
    c.quit();

    // A listener change waits for a restart, and says so.
    let port = ms.tcp.port().to_string();
    reload(
        &mut ms,
        |t| {
            t.replace("max_recipients = 0\n", "max_recipients = 5\n")
                .replace(&format!(":{port}\""), ":1\"")
        },
        "takes effect at the next restart",
    );
    assert!(ms.log().contains("key=\"lmtp.listen\"") || ms.log().contains("key=lmtp.listen"));
    let mut c = ms.connect();
    c.lhlo();
    c.quit();
    assert!(ms.exited().is_none());
}

/// One sample of the Prometheus text format.
#[derive(Debug)]
pub struct Sample {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// GET /metrics over plain HTTP; the body parsed into samples, and the raw
/// text.
pub fn scrape(addr: std::net::SocketAddr) -> (Vec<Sample>, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut samples = Vec::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match key.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (n.to_owned(), labels)
            }
            None => (key.to_owned(), Default::default()),
        };
        let value = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, body.to_owned())
}

/// The sum of the samples named `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

#[test]
fn the_metrics_endpoint_counts_outcomes_sieve_connections_and_fsyncs() {
    const A: &str = "a@example.org";
    const B: &str = "b@example.org";
    const C: &str = "c@example.org";
    let port = crate::util::free_v4();
    let mut opts = crate::util::Options::new(&[A, B, C]);
    opts.extra_toml = format!("[metrics]\nlisten = \"{port}\"\n");
    let mut ms = Mailstow::start_with(opts);
    ms.install_sieve(
        A,
        "require [\"fileinto\", \"mailbox\"];\n\
         if header :contains \"subject\" \"list\" { fileinto :create \"Lists\"; }\n\
         elsif header :contains \"subject\" \"drop\" { discard; }\n",
    );
    ms.install_sieve(C, "if true {\n");
    // The endpoint is bound once the runtime runs (after the listeners).
    ms.wait_until("the metrics endpoint", |_| {
        std::net::TcpStream::connect(port).ok()
    });
    let open = |s: &[Sample]| value(s, "mailstow_connections_open", &[("protocol", "lmtp")]);
    let total = |s: &[Sample]| value(s, "mailstow_connections_total", &[("protocol", "lmtp")]);

    let mut c = ms.connect();
    c.lhlo();
    // Start-up probes were accepted before this one and are counted; once
    // they are closed, this is the one open connection.
    let s = ms.wait_until("the probes to close", |_| {
        let (s, _) = scrape(port);
        (open(&s) == 1.0).then_some(s)
    });
    let before = total(&s);
    let mut c2 = ms.connect();
    c2.lhlo();
    let (s, _) = scrape(port);
    assert_eq!((total(&s), open(&s)), (before + 1.0, 2.0));
    c2.quit();
    let mut bytes = 0;
    for (to, subject) in [(A, "list"), (A, "drop"), (B, "plain"), (C, "kept")] {
        let m = message("s@example.net", to, subject, "body");
        bytes += m.len();
        let r = c.deliver("s@example.net", &[to], &m);
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    assert_eq!(code(&c.cmd("MAIL FROM:<s@example.net>")), 250);
    assert_eq!(code(&c.cmd("RCPT TO:<nobody@example.org>")), 550);
    assert_eq!(code(&c.cmd("RSET")), 250);

    let (s, text) = scrape(port);
    let deliveries = "mailstow_deliveries_total";
    assert_eq!(
        value(&s, deliveries, &[("outcome", "delivered")]),
        3.0,
        "{text}"
    );
    assert_eq!(value(&s, deliveries, &[("outcome", "discarded")]), 1.0);
    assert_eq!(
        value(
            &s,
            deliveries,
            &[("outcome", "rejected"), ("reason", "unknown_user")]
        ),
        1.0
    );
    assert_eq!(
        value(&s, "mailstow_delivery_duration_seconds_count", &[]),
        4.0
    );
    let stored = value(&s, "mailstow_delivered_bytes_total", &[]);
    // The three stored copies, each with the headers mailstow added.
    let three: usize = bytes - message("s@example.net", A, "drop", "body").len();
    assert!(
        stored > three as f64 && stored < (three + 3 * 1024) as f64,
        "{stored}"
    );
    let actions = "mailstow_sieve_actions_total";
    assert_eq!(value(&s, actions, &[("action", "fileinto")]), 1.0);
    assert_eq!(value(&s, actions, &[("action", "discard")]), 1.0);
    assert_eq!(
        value(&s, "mailstow_sieve_errors_total", &[("kind", "compile")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&s, "mailstow_connections_open", &[("protocol", "lmtp")]),
        1.0
    );
    let fsyncs = "mailstow_fsync_duration_seconds_count";
    assert!(value(&s, fsyncs, &[("what", "file")]) >= 3.0, "{text}");
    assert!(value(&s, fsyncs, &[("what", "directory")]) >= 3.0, "{text}");
    assert!(text.contains("mailstow_delivery_queue_depth 0"), "{text}");
    assert!(text.contains("# HELP mailstow_deliveries_total "), "{text}");
    assert!(text.contains("mailstow_delivery_duration_seconds_bucket{le=\"0.001\"}"));
    assert_eq!(value(&s, "mailstow_build_info", &[]), 1.0);
    c.quit();

    // The connection closed; a reload is counted.
    ms.signal(Signal::SIGHUP);
    ms.wait_until("the reload", |m| {
        m.log().contains("configuration reloaded").then_some(())
    });
    let s = ms.wait_until("the gauge to drop", |_| {
        let (s, _) = scrape(port);
        (open(&s) == 0.0 && value(&s, "mailstow_config_reloads_total", &[("result", "ok")]) == 1.0)
            .then_some(s)
    });
    assert_eq!(total(&s), before + 1.0, "no connection counted twice");
}

#[test]
fn a_reload_after_giving_up_root_checks_as_that_user() {
    let mut opts = crate::util::Options::new(&["a@example.org"]);
    opts.top_extra = "user = \"vmail\"".into();
    let mut ms = Mailstow::start_with(opts);
    chown(&ms.mail_root, vmail());
    reload(
        &mut ms,
        |t| t.replace("max_errors", "# max_errors") + "\n",
        "configuration reloaded",
    );
    // Root's mail root: vmail could not deliver into it, so it is refused.
    chown(&ms.mail_root, Owner { uid: 0, gid: 0 });
    reload(&mut ms, |t| t, "reload refused");
    let log = ms.log();
    let line = log.lines().rfind(|l| l.contains("reload refused")).unwrap();
    assert!(
        line.contains("storage.mail_root") && line.contains(&ms.mail_root.display().to_string()),
        "{line}"
    );
    // A config file vmail cannot read: refused, naming the file.
    chown(&ms.mail_root, vmail());
    fs::set_permissions(&ms.config, fs::Permissions::from_mode(0o600)).unwrap();
    reload(&mut ms, |t| t, "reload refused");
    let log = ms.log();
    let line = log.lines().rfind(|l| l.contains("reload refused")).unwrap();
    assert!(
        line.contains("mailstow.toml") && line.contains("ermission denied"),
        "{line}"
    );
    // And `config check` warns about it beforehand.
    let out = config_check(&ms.config, true);
    assert!(
        stderr(&out).contains("warning: [user]") && stderr(&out).contains("reload"),
        "{}",
        stderr(&out)
    );
    let mut c = ms.connect();
    c.lhlo();
    c.quit();
}

/// A client connected at the TCP level; whether the server greeted it
/// within `wait`.
fn greeted(s: &mut std::net::TcpStream, wait: std::time::Duration) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"220 "),
        Err(_) => false,
    }
}

#[test]
fn a_reload_raises_and_lowers_the_connection_limit_without_closing_anyone() {
    use std::net::TcpStream;
    use std::time::Duration;
    let mut opts = crate::util::Options::new(&["a@example.org"]);
    opts.max_connections = 1;
    let mut ms = Mailstow::start_with(opts);
    let mut first = ms.connect();
    first.lhlo();
    let mut second = TcpStream::connect(ms.tcp).unwrap();
    assert!(
        !greeted(&mut second, Duration::from_millis(300)),
        "over the limit: waits"
    );

    reload(
        &mut ms,
        |t| t.replace("max_connections = 1\n", "max_connections = 2\n"),
        "configuration reloaded",
    );
    assert!(
        greeted(&mut second, Duration::from_secs(10)),
        "raised: served"
    );

    // Lowered with two open: both stay; a third waits until one is gone
    // and the count is under the new limit.
    reload(
        &mut ms,
        |t| t.replace("max_connections = 2\n", "max_connections = 1\n"),
        "configuration reloaded",
    );
    assert_eq!(code(&first.cmd("NOOP")), 250, "the open one is kept");
    let mut third = TcpStream::connect(ms.tcp).unwrap();
    first.quit();
    assert!(
        !greeted(&mut third, Duration::from_millis(500)),
        "one still open: limit 1"
    );
    drop(second);
    assert!(
        greeted(&mut third, Duration::from_secs(10)),
        "none open: served"
    );
}

#[test]
fn a_metrics_address_in_use_stops_the_start_naming_the_key() {
    let t = temp_dir("metrics-busy-");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lmtp = crate::util::free_v4();
    let config = write_config(
        t.path(),
        &format!(
            "[lmtp]\nlisten = [\"{lmtp}\"]\n[metrics]\nlisten = \"{}\"",
            taken.local_addr().unwrap()
        ),
    );
    let out = mailstow()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run mailstow serve");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("[metrics] listen = ") && err.contains("in use"),
        "{err}"
    );
    assert_readable(&err);
}
