//! Exim 4 (Debian 12's exim4-daemon-light, 4.96) in front of mailstow,
//! configured from packaging/exim/mailstow.conf as an admin would: the LMTP
//! transport over the unix socket and over TCP, and the pipe transport
//! running `mailstow deliver` with untainted arguments only; and Dovecot's
//! documented transport for dovecot-lda, which Exim refuses verbatim
//! (tainted arguments) and runs once they come from lookups. Exim is the
//! system MTA in its package, as Postfix is, so it runs from a cached
//! Debian root (chroot, private mount namespace, the test's directories
//! bound in at the same paths); messages go in with `exim -bm`, deliveries
//! are synchronous (`-odi`), and Exim's own log and bounces are read.
//! Must not touch the host's MTA or send to any address outside the test.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::debian::{getent, in_root, peer_root};
use crate::peers::Dovecot;
use crate::util::{self, find, lf_to_crlf, temp_dir, Mailstow, Options, PASSWORD};

const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
const SENDER: &str = "s@example.net";

/// A private Exim: its root, its directory (config, spool, log, bounces)
/// and the host paths bound into the root.
struct Exim {
    root: tempfile::TempDir,
    dir: tempfile::TempDir,
    binds: Vec<PathBuf>,
}

/// Which of the snippet's routers and transports the config uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    LmtpUnix,
    LmtpTcp,
    Pipe,
}

impl Exim {
    /// Exim for `ms`; `lookup` is the file the pipe router looks addresses
    /// up in (the snippet's /etc/mailstow/users).
    fn start(ms: &Mailstow, via: Via, lookup: &Path) -> Exim {
        let root = peer_root(&["exim4-daemon-light"]);
        let dir = temp_dir("mailstow-exim-");
        let d = dir.path();
        let exim_ids = getent(root.path(), "passwd", "Debian-exim");
        let (uid, gid) = (exim_ids[2].parse().unwrap(), exim_ids[3].parse().unwrap());
        for sub in ["spool", "log", "bounces"] {
            fs::create_dir(d.join(sub)).unwrap();
            util::chown(&d.join(sub), util::Owner { uid, gid });
        }
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        let conf = d.join("exim.conf");
        fs::write(&conf, config(ms, via, lookup, d)).unwrap();
        // A config named on the command line keeps Exim's privileges (to
        // run the pipe as vmail) only when it is listed as trusted.
        fs::write(
            root.path().join("etc/exim4/trusted_configs"),
            format!("{}\n", conf.display()),
        )
        .unwrap();
        add_vmail(root.path(), ms.owner);
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_mailstow"));
        let ms_dir = ms.config.parent().unwrap().to_owned();
        let mut binds = vec![d.to_owned(), ms_dir, bin];
        if lookup.parent() != ms.config.parent() {
            binds.push(lookup.to_owned());
        }
        Exim { root, dir, binds }
    }

    fn command(&self, args: &[&str]) -> Command {
        let conf = self.dir.path().join("exim.conf");
        let mut all = vec!["-C", conf.to_str().unwrap()];
        all.extend_from_slice(args);
        let binds: Vec<&Path> = self.binds.iter().map(PathBuf::as_path).collect();
        in_root(self.root.path(), &binds, "/usr/sbin/exim4", &all)
    }

    /// `exim -bm`: one message from `from` to `rcpts`, delivered before
    /// this returns (`-odi`); a line holding a single dot is content
    /// (`-oi`).
    fn submit(&self, from: &str, rcpts: &[&str], msg: &[u8]) {
        let mut args = vec!["-odi", "-oi", "-f", from, "--"];
        args.extend_from_slice(rcpts);
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run exim4");
        child.stdin.take().unwrap().write_all(msg).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "exim -bm: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.mainlog()
        );
    }

    /// A forced queue run, every deferred message tried now.
    fn queue_run(&self) {
        let out = self.command(&["-qff"]).output().expect("exim -qff");
        assert!(out.status.success(), "{out:?}");
    }

    fn mainlog(&self) -> String {
        fs::read_to_string(self.dir.path().join("log/mainlog")).unwrap_or_default()
    }

    /// Lines of Exim's main log holding every one of `parts`.
    fn log_lines(&self, parts: &[&str]) -> Vec<String> {
        util::lines_with(&self.mainlog(), parts)
    }

    /// Exim's daemon on a loopback port, in the foreground; stopped (by
    /// PID, with its process group) when the returned `Proc` drops.
    fn daemon(&self) -> (util::Proc, std::net::SocketAddr) {
        let addr = util::free_v4();
        let iface = format!("127.0.0.1.{}", addr.port());
        let pid = self.dir.path().join("exim.pid");
        let mut cmd = self.command(&["-bdf", "-oX", &iface, "-oP", pid.to_str().unwrap()]);
        cmd.stdout(Stdio::null())
            .stderr(fs::File::create(self.dir.path().join("daemon.err")).unwrap());
        let proc = util::Proc::spawn("exim", &mut cmd, true);
        util::poll(util::TIMEOUT, || util::LmtpClient::try_tcp(addr).ok()).unwrap_or_else(|| {
            let err = fs::read_to_string(self.dir.path().join("daemon.err"));
            panic!("Exim never listened: {err:?}\n{}", self.mainlog())
        });
        (proc, addr)
    }

    /// Replaces the routers and transports (Exim reads its configuration
    /// again for every command, the daemon excepted).
    fn set_config(&self, routers: &str, transports: &str) {
        let d = self.dir.path();
        fs::write(d.join("exim.conf"), main_config(d, routers, transports)).unwrap();
    }

    /// The bounces Exim sent to the test's sender (an mbox).
    fn bounces(&self) -> String {
        fs::read_to_string(self.dir.path().join("bounces/all")).unwrap_or_default()
    }
}

/// vmail, as on the host, in the root's account files (the pipe runs as it).
fn add_vmail(root: &Path, owner: util::Owner) {
    let mut passwd = fs::OpenOptions::new()
        .append(true)
        .open(root.join("etc/passwd"))
        .unwrap();
    writeln!(
        passwd,
        "vmail:x:{}:{}::/nonexistent:/usr/sbin/nologin",
        owner.uid, owner.gid
    )
    .unwrap();
    let mut group = fs::OpenOptions::new()
        .append(true)
        .open(root.join("etc/group"))
        .unwrap();
    writeln!(group, "vmail:x:{}:", owner.gid).unwrap();
}

/// A whole Exim configuration: the main settings, then the routers and
/// transports of packaging/exim/mailstow.conf with the deployment paths
/// replaced, the router of `via` only, and a router that keeps bounces to
/// the test's sender in a file.
fn config(ms: &Mailstow, via: Via, lookup: &Path, d: &Path) -> String {
    let snippet = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/exim/mailstow.conf"
    ))
    .unwrap();
    let unix = ms.unix.as_ref().map(|p| p.display().to_string());
    let snippet = snippet
        .replace("/usr/bin/mailstow", env!("CARGO_BIN_EXE_mailstow"))
        .replace("/etc/mailstow/mailstow.toml", &ms.config.to_string_lossy())
        .replace("/etc/mailstow/users", &lookup.to_string_lossy())
        .replace(
            "/run/mailstow/lmtp.sock",
            unix.as_deref().unwrap_or("/nonexistent"),
        )
        .replace("  port = 24\n", &format!("  port = {}\n", ms.tcp.port()));
    let (routers, transports) = snippet
        .split_once("# --- transports ---")
        .expect("the snippet has a transports part");
    let routers = routers
        .split_once("# --- routers ---")
        .expect("the snippet has a routers part")
        .1;
    main_config(d, &pick_router(routers, via), transports)
}

/// Exim's main settings around `routers` and `transports`, with a router
/// and a transport that keep bounces to the test's sender (example.net)
/// in a file. Over SMTP, Exim accepts mail for the local domains, and
/// for example.net from loopback only (a rejection `mailstow deliver`
/// sends there).
fn main_config(d: &Path, routers: &str, transports: &str) -> String {
    format!(
        "primary_hostname = exim.test\n\
         qualify_domain = example.net\n\
         domainlist local_domains = example.org\n\
         spool_directory = {d}/spool\n\
         log_file_path = {d}/log/%slog\n\
         keep_environment =\n\
         acl_smtp_rcpt = rcpt\n\
         begin acl\n\
         rcpt:\n  accept domains = +local_domains\n  \
         accept hosts = 127.0.0.1\n    domains = example.net\n  deny\n\
         begin routers\n\
         {routers}\n\
         bounces:\n  driver = accept\n  domains = example.net\n  transport = bounce_file\n\
         begin transports\n\
         {transports}\n\
         bounce_file:\n  driver = appendfile\n  file = {d}/bounces/all\n  user = Debian-exim\n\
         begin retry\n\
         *   *   F,1h,1m\n",
        d = d.display()
    )
}

/// The snippet's routers with only the one for `via` kept (each router is
/// a block starting at an unindented `name:` line).
fn pick_router(routers: &str, via: Via) -> String {
    let want = match via {
        Via::LmtpUnix | Via::LmtpTcp => "mailstow_lmtp:",
        Via::Pipe => "mailstow_pipe:",
    };
    let mut out = String::new();
    let mut keep = false;
    for line in routers.lines() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            keep = line == want;
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no {want} router in the snippet");
    if via == Via::LmtpTcp {
        out = out.replace("transport = mailstow_lmtp", "transport = mailstow_lmtp_tcp");
    }
    out
}

/// A message as a local program hands it to Exim: LF line ends, dot lines,
/// 8-bit text.
fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <{SENDER}>\nTo: <{ALICE}>\nSubject: {subject}\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n{body}"
    )
    .into_bytes()
}

/// The users file with `line_for(address)` as the line of `address`.
fn set_user_line(ms: &Mailstow, address: &str, line: &str) {
    let users = fs::read_to_string(&ms.users_file).unwrap();
    let mut out = String::new();
    for l in users.lines() {
        if l.starts_with(&format!("{address}:")) {
            out.push_str(line);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    fs::write(&ms.users_file, out).unwrap();
}

fn user_line(ms: &Mailstow, address: &str) -> String {
    fs::read_to_string(&ms.users_file)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&format!("{address}:")))
        .unwrap()
        .to_owned()
}

/// Reads `who`'s INBOX through Dovecot and checks each message is the
/// stored file (LF) served with CRLF, RFC822.SIZE its W=.
fn dovecot_reads(ms: &Mailstow, who: &str, n: usize) -> Vec<Vec<u8>> {
    let dc = Dovecot::start(&ms.users_file, &ms.mail_root);
    let mut imap = dc.imap_login(who, PASSWORD);
    assert_eq!(imap.examine("INBOX") as usize, n);
    let fetched = imap.fetch_all();
    imap.logout();
    let files = ms.maildir(who).messages("INBOX");
    for f in &fetched {
        let file = files
            .iter()
            .find(|m| lf_to_crlf(&m.bytes) == f.body)
            .unwrap_or_else(|| panic!("{who}: IMAP shows a message no file holds"));
        assert!(!file.bytes.contains(&b'\r'), "one line-end convention");
        assert_eq!(f.size, file.vsize());
        assert_eq!(file.w_field(), Some(file.vsize()));
    }
    fetched.into_iter().map(|f| f.body).collect()
}

/// Alice's Sieve script rejects a message whose subject has "unwanted"
/// (her home made, owned by mailstow's user).
fn reject_unwanted_for_alice(ms: &Mailstow) {
    util::chown(&ms.mail_root, ms.owner);
    let home = ms.home(ALICE);
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join(".dovecot.sieve"),
        "require \"reject\";\nif header :contains \"subject\" \"unwanted\" { reject \"Not wanted here\"; }\n",
    )
    .unwrap();
    for p in [ms.mail_root.join("example.org"), home.clone()] {
        util::chown(&p, ms.owner);
    }
    util::chown(&home.join(".dovecot.sieve"), ms.owner);
}

#[test]
fn exim_lmtp_over_the_unix_socket_delivers_bounces_defers_and_retries() {
    let mut opts = Options::new(&[ALICE, BOB, CAROL]);
    opts.unix_socket = true;
    opts.extra_toml = "[quota]\nover_quota = \"temporary\"\n".into();
    let ms = Mailstow::start_with(opts);
    let carol = user_line(&ms, CAROL);
    set_user_line(
        &ms,
        CAROL,
        &format!("{carol}userdb_quota_rule=*:storage=1K"),
    );
    let exim = Exim::start(&ms, Via::LmtpUnix, &ms.users_file);
    let body = format!(
        ".dot at the start\n..two dots\nGrüße, 8-bit text\n{}\nend\n",
        "x".repeat(2000)
    );
    let msg = message("one transaction, four recipients", &body);
    exim.submit(SENDER, &[ALICE, BOB, "nobody@example.org", CAROL], &msg);

    let log = exim.mainlog();
    for who in [ALICE, BOB] {
        assert_eq!(
            // "=>" for the first address of a delivery, "->" for the others.
            exim.log_lines(&["> ", who, "T=mailstow_lmtp", "250 2.0.0"])
                .len(),
            1,
            "{log}"
        );
    }
    assert_eq!(
        exim.log_lines(&["** nobody@example.org", "550 5.1.1"])
            .len(),
        1,
        "{log}"
    );
    assert_eq!(
        exim.log_lines(&["== ", CAROL, "452 4.2.2"]).len(),
        1,
        "{log}"
    );
    assert!(
        exim.bounces().contains("nobody@example.org"),
        "{}",
        exim.bounces()
    );
    assert!(ms.maildir(CAROL).messages("INBOX").is_empty());

    // The quota raised, the queue run delivers the deferred copy, once.
    set_user_line(&ms, CAROL, &carol);
    exim.queue_run();
    assert_eq!(
        exim.log_lines(&["=> ", CAROL, "250 2.0.0"]).len(),
        1,
        "{}",
        exim.mainlog()
    );
    for who in [ALICE, BOB, CAROL] {
        let files = ms.maildir(who).messages("INBOX");
        assert_eq!(files.len(), 1, "{who}");
        let text = String::from_utf8_lossy(&files[0].bytes);
        assert!(
            text.ends_with(&body),
            "{who}: dot lines and 8-bit text as sent:\n{text}"
        );
        // Alice and Bob shared one transaction: Dovecot's trace block for
        // several recipients, one file ([delivery] single_copy); Carol's
        // retry was a transaction of her own.
        let trace = match who {
            CAROL => format!("Return-Path: <{SENDER}>\nDelivered-To: {who}\nReceived: "),
            _ => format!("Return-Path: <{SENDER}>\nReceived: "),
        };
        assert!(text.starts_with(&trace), "{text}");
    }
    let shown = dovecot_reads(&ms, ALICE, 1);
    assert!(shown[0].ends_with(&lf_to_crlf(body.as_bytes())));
}

#[test]
fn exim_lmtp_over_tcp_carries_a_20_mib_message_byte_exact() {
    let mut opts = Options::new(&[ALICE]);
    opts.max_message_size = 64 << 20;
    let ms = Mailstow::start_with(opts);
    let exim = Exim::start(&ms, Via::LmtpTcp, &ms.users_file);
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;\n";
    let body = line.repeat((20 << 20) / line.len() + 1);
    let msg = message("20 MiB", &body);
    exim.submit(SENDER, &[ALICE], &msg);
    assert_eq!(
        exim.log_lines(&["=> ", ALICE, "T=mailstow_lmtp_tcp", "250 2.0.0"])
            .len(),
        1,
        "{}",
        exim.mainlog()
    );
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    assert!(files[0].bytes.len() > 20 << 20);
    assert!(files[0].bytes.ends_with(body.as_bytes()));
    let shown = dovecot_reads(&ms, ALICE, 1);
    assert!(shown[0].ends_with(&lf_to_crlf(body.as_bytes())));
}

/// Exim's `lmtp` driver (the unix socket) sends a UTF-8 sender without
/// the SMTPUTF8 parameter, which mailstow refuses (553 5.6.7, RFC 6531
/// 3.4); its `smtp` driver speaking LMTP over TCP relays it.
#[test]
fn exim_relays_smtputf8_over_lmtp_on_tcp() {
    let ms = Mailstow::start(&[ALICE]);
    let exim = Exim::start(&ms, Via::LmtpTcp, &ms.users_file);
    let (_daemon, addr) = exim.daemon();
    let mut c = util::LmtpClient::tcp(addr);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.iter().any(|l| l.ends_with("SMTPUTF8")), "{ehlo:?}");
    assert_eq!(
        util::code(&c.cmd("MAIL FROM:<jösé@example.net> SMTPUTF8")),
        250
    );
    assert_eq!(util::code(&c.cmd(&format!("RCPT TO:<{ALICE}>"))), 250);
    assert_eq!(util::code(&c.cmd("DATA")), 354);
    let msg = "From: Jösé <jösé@example.net>\r\nSubject: Grüße\r\n\r\nünïcödé\r\n";
    let r = c.send_data(msg.as_bytes(), 1);
    assert_eq!(util::code(&r[0]), 250, "{r:?}");
    c.quit();
    let files = util::poll(util::TIMEOUT, || {
        let f = ms.maildir(ALICE).messages("INBOX");
        (!f.is_empty()).then_some(f)
    })
    .unwrap_or_else(|| panic!("not delivered:\n{}", exim.mainlog()));
    let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
    assert!(
        text.starts_with("Return-Path: <jösé@example.net>\n"),
        "{text}"
    );
    assert!(text.contains("(mailstow) with UTF8LMTP\n"), "{text}");
    assert!(text.ends_with("Subject: Grüße\n\nünïcödé\n"), "{text}");
    // Exim logs the delivery after mailstow's reply: wait for the line.
    util::poll(util::TIMEOUT, || {
        (exim.log_lines(&["=> ", ALICE, "250 2.0.0"]).len() == 1).then_some(())
    })
    .unwrap_or_else(|| panic!("no delivery line:\n{}", exim.mainlog()));
}

#[test]
fn exim_pipe_transport_runs_mailstow_deliver_with_untainted_arguments() {
    let ms = Mailstow::start(&[ALICE, BOB]);
    // `mailstow deliver` runs as vmail: the mail root must be vmail's.
    reject_unwanted_for_alice(&ms);
    // The router's lookup file lists one address mailstow does not know
    // (ghost: its 67 is a bounce) besides the users.
    let lookup = ms.config.parent().unwrap().join("exim-addresses");
    fs::write(&lookup, format!("{ALICE}\n{BOB}\nghost@example.org\n")).unwrap();
    let bob = user_line(&ms, BOB);
    set_user_line(&ms, BOB, "bob@example.org:x:notanumber:1::::");
    let exim = Exim::start(&ms, Via::Pipe, &lookup);

    let body = ".dot line\nGrüße\n";
    exim.submit(
        SENDER,
        &[ALICE, BOB, "ghost@example.org"],
        &message("piped", body),
    );
    exim.submit(SENDER, &[ALICE], &message("unwanted offer", "buy\n"));
    let log = exim.mainlog();
    assert_eq!(
        exim.log_lines(&["=> ", ALICE, "T=mailstow_pipe"]).len(),
        1,
        "{log}"
    );
    assert_eq!(
        exim.log_lines(&["** ", "ghost@example.org", "returned 67"])
            .len(),
        1,
        "{log}"
    );
    assert_eq!(
        exim.log_lines(&["== ", BOB, "returned 75"]).len(),
        1,
        "{log}"
    );
    assert_eq!(
        exim.log_lines(&["** ", ALICE, "returned 77"]).len(),
        1,
        "{log}"
    );
    let bounces = exim.bounces();
    assert!(
        bounces.contains("ghost@example.org: user unknown"),
        "{bounces}"
    );
    assert!(
        bounces.contains("Not wanted here"),
        "the script's reason: {bounces}"
    );

    // The sender came from the Return-path Exim wrote; the file has one.
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
    assert!(
        text.starts_with(&format!("Return-Path: <{SENDER}>\n")),
        "{text}"
    );
    assert_eq!(
        text.to_ascii_lowercase().matches("return-path:").count(),
        1,
        "{text}"
    );
    assert!(text.ends_with(body), "{text}");
    assert!(
        find(text.as_bytes(), b"\n\n\n").is_none(),
        "no blank line added"
    );

    // bob's entry fixed, the deferred copy is delivered by the queue run.
    set_user_line(&ms, BOB, &bob);
    exim.queue_run();
    assert_eq!(
        exim.log_lines(&["=> ", BOB, "T=mailstow_pipe"]).len(),
        1,
        "{}",
        exim.mainlog()
    );
    assert_eq!(ms.maildir(BOB).messages("INBOX").len(), 1);
    let shown = dovecot_reads(&ms, ALICE, 1);
    assert!(shown[0].ends_with(&lf_to_crlf(body.as_bytes())));
}

/// Dovecot's transport for its LDA, virtual users under one uid ("Dovecot
/// LDA with Exim", Single UID, doc.dovecot.org 2.3), with the command of
/// its `# v1.1+:` line: verbatim but for the program,
/// `/usr/local/libexec/dovecot/dovecot-lda` replaced by
/// `MAILSTOW deliver -c CONF`.
const DOVECOT_TRANSPORT: &str = r"dovecot_virtual_delivery:
  driver = pipe
  command = MAILSTOW deliver -c CONF -d $local_part@$domain  -f $sender_address -a $original_local_part@$original_domain
  message_prefix =
  message_suffix =
  delivery_date_add
  envelope_to_add
  return_path_add
  log_output
  user = vmail
  temp_errors = 64 : 69 : 70: 71 : 72 : 73 : 74 : 75 : 78
";

/// The nearest command Exim 4.96 runs: each address is a key a lookup
/// gives back (`ret=key`, untainted); the sender is not an argument
/// (`return_path_add` writes it above the message and mailstow reads it
/// there). As docs/from-dovecot.md shows it.
const UNTAINTED_COMMAND: &str = "MAILSTOW deliver -c CONF -d $address_data  \
     -a ${lookup{$original_local_part@$original_domain}lsearch,ret=key{ALIASES}{$value}{$address_data}}";

/// The routers in front of it, as docs/from-dovecot.md shows them: aliases
/// from a file, then the users mailstow knows (its passwd-file, whose lines
/// start with user@domain), `address_data` the untainted address.
const DOVECOT_ROUTERS: &str = r"dovecot_aliases:
  driver = redirect
  domains = +local_domains
  data = ${lookup{$local_part@$domain}lsearch{ALIASES}}

dovecot_virtual:
  driver = accept
  domains = +local_domains
  condition = ${lookup{$local_part@$domain}lsearch{USERS}{yes}{no}}
  address_data = ${lookup{$local_part@$domain}lsearch,ret=key{USERS}}
  transport = dovecot_virtual_delivery
";

/// Dovecot's documented Exim transport for dovecot-lda, with `mailstow
/// deliver` in dovecot-lda's place. Exim 4.96 refuses the verbatim command
/// line before running anything: each of `$local_part@$domain`,
/// `$sender_address` and `$original_local_part@$original_domain` is
/// tainted, the address fails (`Tainted arg N ...`) and the message goes
/// back to the sender in a bounce; nothing is stored. With the addresses
/// from lookups and the sender from `return_path_add`, and every other
/// option of Dovecot's transport as documented, Exim runs it: the message
/// lands in the user's Maildir with one Return-Path, Exim's Envelope-to and
/// Delivery-date, and -a's original recipient (an alias) as Delivered-To
/// and in the log line Exim logs (`log_output`); a Sieve reject (no -e)
/// mails the sender a rejection and Exim logs a delivery; exit 75 (an
/// unwritable Maildir) is deferred through `temp_errors`, then delivered
/// by a queue run.
#[test]
fn exim_refuses_dovecots_lda_transport_verbatim_and_runs_it_with_untainted_arguments() {
    const INFO: &str = "info@example.org";
    let ms = Mailstow::start(&[ALICE]);
    // `mailstow deliver` runs as vmail (the transport's `user`).
    reject_unwanted_for_alice(&ms);
    let aliases = ms.config.parent().unwrap().join("exim-aliases");
    fs::write(&aliases, format!("{INFO}: {ALICE}\n")).unwrap();

    // Exim as the other tests set it up; its routers and transports are
    // replaced below, before any message.
    let exim = Exim::start(&ms, Via::Pipe, &ms.users_file);
    let paths = |text: &str| {
        text.replace("MAILSTOW", env!("CARGO_BIN_EXE_mailstow"))
            .replace("CONF", &ms.config.to_string_lossy())
            .replace("ALIASES", &aliases.to_string_lossy())
            .replace("USERS", &ms.users_file.to_string_lossy())
    };
    let routers = paths(DOVECOT_ROUTERS);
    let documented = DOVECOT_TRANSPORT
        .lines()
        .find_map(|l| l.strip_prefix("  command = "))
        .unwrap();
    let with_command = |command: &str| paths(&DOVECOT_TRANSPORT.replace(documented, command));
    // A rejection from mailstow goes to the sender through Exim's daemon.
    let (_daemon, smtp) = exim.daemon();
    fs::OpenOptions::new()
        .append(true)
        .open(&ms.config)
        .unwrap()
        .write_all(format!("\n[outbound]\nsmtp = \"{smtp}\"\n").as_bytes())
        .unwrap();

    // Refused: the verbatim line, and each tainted value alone in an
    // otherwise untainted line. Exim names the first tainted argument
    // (the program is argument 0).
    let refused = [
        (
            documented,
            ALICE,
            format!("Tainted arg 5 for dovecot_virtual_delivery transport command: '{ALICE}'"),
        ),
        (
            "MAILSTOW deliver -c CONF -d $address_data  -f $sender_address",
            ALICE,
            format!("Tainted arg 7 for dovecot_virtual_delivery transport command: '{SENDER}'"),
        ),
        (
            "MAILSTOW deliver -c CONF -d $address_data  -a $original_local_part@$original_domain",
            INFO,
            format!("Tainted arg 7 for dovecot_virtual_delivery transport command: '{INFO}'"),
        ),
    ];
    for (i, (command, to, refusal)) in refused.iter().enumerate() {
        exim.set_config(&routers, &with_command(command));
        exim.submit(SENDER, &[to], &message(&format!("tainted {i}"), "x\n"));
        let want = format!(
            "** {ALICE}{} R=dovecot_virtual T=dovecot_virtual_delivery: {refusal}",
            if *to == ALICE {
                String::new()
            } else {
                format!(" <{to}>")
            }
        );
        assert_eq!(
            exim.log_lines(&[&want]).len(),
            1,
            "{want}\n{}",
            exim.mainlog()
        );
        let bounces = exim.bounces();
        // Exim's bounce does not say why (Status 5.0.0), and it carries
        // the message.
        let bounce = bounces
            .split("\nFrom MAILER-DAEMON ")
            .nth(i)
            .unwrap_or_else(|| panic!("no bounce {i}: {bounces}"));
        for part in [
            "This is a permanent error",
            "Status: 5.0.0\n",
            &format!("Final-Recipient: rfc822;{to}\n"),
            &format!("Subject: tainted {i}\n"),
        ] {
            assert!(bounce.contains(part), "{part:?} in {bounce}");
        }
    }
    assert!(ms.maildir(ALICE).messages("INBOX").is_empty());
    assert!(
        exim.log_lines(&["=> ", "T=dovecot_virtual_delivery"])
            .is_empty(),
        "{}",
        exim.mainlog()
    );

    // Accepted: the nearest form, through the alias.
    exim.set_config(&routers, &with_command(UNTAINTED_COMMAND));
    let body = ".dot line\nGrüße\n";
    exim.submit(SENDER, &[INFO], &message("piped", body));
    let log = exim.mainlog();
    assert_eq!(
        exim.log_lines(&[&format!(
            "=> alice <{INFO}> R=dovecot_virtual T=dovecot_virtual_delivery"
        )])
        .len(),
        1,
        "{log}"
    );
    // log_output: the first line mailstow writes is its delivery line.
    let output = exim.log_lines(&["dovecot_virtual_delivery transport output: "]);
    assert_eq!(output.len(), 1, "{log}");
    for part in [
        format!("to=<{INFO}>"),
        format!("orig_to=<{INFO}>"),
        format!("from=<{SENDER}>"),
        "status=delivered".to_owned(),
    ] {
        assert!(output[0].contains(&part), "{part} in {}", output[0]);
    }
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);
    let text = String::from_utf8_lossy(&files[0].bytes).into_owned();
    // mailstow's Return-Path and Delivered-To (-a) on top; Exim's
    // Return-path line dropped, its Envelope-to and Delivery-date kept.
    assert!(
        text.starts_with(&format!(
            "Return-Path: <{SENDER}>\nDelivered-To: {INFO}\nReceived: "
        )),
        "{text}"
    );
    assert_eq!(
        text.to_ascii_lowercase().matches("return-path:").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("\nEnvelope-to: ").count(), 1, "{text}");
    assert!(
        text.contains(&format!("\nEnvelope-to: {INFO}\nDelivery-date: ")),
        "{text}"
    );
    assert_eq!(text.matches("\nDelivery-date: ").count(), 1, "{text}");
    assert!(text.ends_with(body), "{text}");
    assert!(
        find(text.as_bytes(), b"\n\n\n").is_none(),
        "no blank line added"
    );

    // A Sieve reject without -e: mailstow mails the sender the rejection
    // and exits 0; Exim logs a delivery and bounces nothing.
    exim.submit(SENDER, &[ALICE], &message("unwanted offer", "buy\n"));
    let mdn = util::poll(util::TIMEOUT, || {
        let b = exim.bounces();
        b.contains("Subject: Rejected: unwanted offer").then_some(b)
    })
    .unwrap_or_else(|| panic!("no rejection:\n{}", exim.mainlog()));
    assert!(mdn.contains("Not wanted here"), "{mdn}");
    assert!(
        mdn.contains(&format!("Final-Recipient: rfc822; {ALICE}")),
        "{mdn}"
    );
    assert_eq!(
        exim.log_lines(&[&format!(
            "=> alice <{ALICE}> R=dovecot_virtual T=dovecot_virtual_delivery"
        )])
        .len(),
        1,
        "{}",
        exim.mainlog()
    );
    assert_eq!(
        exim.log_lines(&["** "]).len(),
        refused.len(),
        "{}",
        exim.mainlog()
    );
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 1);

    // Maildir/tmp unwritable: exit 75, one of temp_errors: deferred, kept
    // in the queue, delivered by the queue run once writable again.
    let tmp = ms.maildir(ALICE).root.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o500)).unwrap();
    exim.submit(SENDER, &[ALICE], &message("later", "later\n"));
    let deferred = exim.log_lines(&[
        &format!("== {ALICE} R=dovecot_virtual T=dovecot_virtual_delivery"),
        "returned 75",
    ]);
    assert_eq!(deferred.len(), 1, "{}", exim.mainlog());
    let id = deferred[0].split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(
        exim.log_lines(&["** "]).len(),
        refused.len(),
        "{}",
        exim.mainlog()
    );
    assert!(exim.log_lines(&[&id, "Completed"]).is_empty());
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700)).unwrap();
    exim.queue_run();
    assert_eq!(
        exim.log_lines(&[
            &id,
            &format!("=> alice <{ALICE}> R=dovecot_virtual T=dovecot_virtual_delivery")
        ])
        .len(),
        1,
        "{}",
        exim.mainlog()
    );
    assert_eq!(exim.log_lines(&[&id, "Completed"]).len(), 1);
    let files = ms.maildir(ALICE).messages("INBOX");
    assert_eq!(files.len(), 2);
    assert!(!exim.bounces().contains("Subject: later"));

    // With -e, a Sieve reject exits 77, not one of temp_errors: Exim
    // bounces the message and logs the reason mailstow wrote.
    exim.set_config(&routers, &with_command(&format!("{UNTAINTED_COMMAND} -e")));
    exim.submit(SENDER, &[ALICE], &message("unwanted again", "buy\n"));
    let failed = exim.log_lines(&[
        &format!("** {ALICE} R=dovecot_virtual T=dovecot_virtual_delivery"),
        "returned 77",
    ]);
    assert_eq!(failed.len(), 1, "{}", exim.mainlog());
    let id = failed[0].split_whitespace().nth(2).unwrap().to_owned();
    assert_eq!(
        exim.log_lines(&[&id, "transport output: ", "Not wanted here"])
            .len(),
        1,
        "{}",
        exim.mainlog()
    );
    let bounces = exim.bounces();
    let bounce = bounces.rsplit("\nFrom MAILER-DAEMON ").next().unwrap();
    assert!(bounce.contains("Subject: unwanted again\n"), "{bounce}");
    // Dovecot's transport has no return_fail_output: the bounce does not
    // carry the script's reason.
    assert!(bounce.contains("    local delivery failed\n"), "{bounce}");
    assert!(!bounce.contains("Not wanted here"), "{bounce}");
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 2);
}
