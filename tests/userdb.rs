//! `[users] driver = "dovecot"` against a real Dovecot 2.3 auth service:
//! the same deliveries through a passwd-file, an SQLite (PostfixAdmin-like)
//! and an LDAP (private slapd) userdb land in the same homes with the same
//! quotas, and Dovecot's IMAP reads them back; Dovecot stopped under a
//! Postfix stream gives 451s and, once it is back, exactly-once delivery;
//! ManageSieve logins relayed to Dovecot's auth; `config check` naming the
//! socket. Must not touch the system's Dovecot or slapd, listen anywhere
//! but loopback and temp-dir sockets, or leave a daemon running.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use tempfile::TempDir;

use crate::peers::{lmtp_inet, Imap, Postfix};
use crate::util::{
    self, chown, code, free_v4, message, poll, read_text, tail, temp_dir, toml_str, until_ready,
    vmail, Maildir, Mailstow, Options, Owner, Proc, TIMEOUT,
};

const ALICE: &str = "alice@example.org";
/// Has a quota of 2 KiB.
const CAROL: &str = "carol@example.org";
const PASS: &str = "userdb pass";

/// Each userdb kind the tests put behind Dovecot's auth.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    PasswdFile,
    Sqlite,
    Ldap,
}

fn ensure_packages() {
    crate::peers::ensure_installed();
    util::apt_install_missing(
        &[
            "/usr/lib/dovecot/modules/auth/libdriver_sqlite.so",
            "/usr/lib/dovecot/modules/auth/libauthdb_ldap.so",
            "/usr/sbin/slapd",
            "/usr/sbin/slapadd",
            "/usr/bin/sqlite3",
        ],
        &[
            "dovecot-core",
            "dovecot-imapd",
            "dovecot-sqlite",
            "dovecot-ldap",
            "slapd",
            "ldap-utils",
            "sqlite3",
        ],
    );
}

/// A private slapd on a loopback port with its own cn=config (built by
/// slapadd), one mdb database for dc=example,dc=org. Stopped by PID.
struct Slapd {
    /// Declared before `_dir`: the daemon stops before its files go.
    proc: Proc,
    port: u16,
    _dir: TempDir,
}

impl Slapd {
    fn start(users: &[(&str, PathBuf, &str)], owner: Owner) -> Slapd {
        let dir = temp_dir("mailstow-slapd-");
        let d = dir.path();
        fs::create_dir(d.join("slapd.d")).unwrap();
        fs::create_dir(d.join("db")).unwrap();
        let config = format!(
            "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {d}/slapd.pid\n\n\
             dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
             include: file:///etc/ldap/schema/core.ldif\n\n\
             include: file:///etc/ldap/schema/cosine.ldif\n\n\
             include: file:///etc/ldap/schema/nis.ldif\n\n\
             include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
             dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
             olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
             dn: olcDatabase={{-1}}frontend,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcFrontendConfig\nolcDatabase: {{-1}}frontend\nolcAccess: {{0}}to * by * read\n\n\
             dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\n\
             olcDatabase: {{0}}config\nolcAccess: {{0}}to * by * none\n\n\
             dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\n\
             objectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\nolcSuffix: dc=example,dc=org\n\
             olcDbDirectory: {d}/db\nolcRootDN: cn=admin,dc=example,dc=org\nolcRootPW: admin\n\
             olcAccess: {{0}}to * by * read\n",
            d = d.display()
        );
        let mut data = "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\n\
                        dc: example\no: example\n\n\
                        dn: ou=people,dc=example,dc=org\nobjectClass: organizationalUnit\nou: people\n"
            .to_owned();
        for (i, (addr, home, quota)) in users.iter().enumerate() {
            let local = addr.split('@').next().unwrap();
            data.push_str(&format!(
                "\ndn: uid={local},ou=people,dc=example,dc=org\n\
                 objectClass: inetOrgPerson\nobjectClass: posixAccount\n\
                 uid: {local}\ncn: {local}\nsn: {local}\nmail: {addr}\n\
                 uidNumber: {uid}\ngidNumber: {gid}\nhomeDirectory: {home}\n\
                 userPassword: {{PLAIN}}{PASS}\ndescription: *:storage={quota}\nemployeeNumber: {i}\n",
                uid = owner.uid,
                gid = owner.gid,
                home = home.display(),
            ));
        }
        fs::write(d.join("config.ldif"), config).unwrap();
        fs::write(d.join("data.ldif"), data).unwrap();
        util::run(
            Command::new("slapadd")
                .arg("-F")
                .arg(d.join("slapd.d"))
                .args(["-n", "0", "-l"])
                .arg(d.join("config.ldif")),
        );
        util::run(
            Command::new("slapadd")
                .arg("-F")
                .arg(d.join("slapd.d"))
                .args(["-b", "dc=example,dc=org", "-l"])
                .arg(d.join("data.ldif")),
        );
        let port = free_v4().port();
        let out = fs::File::create(d.join("slapd.out")).unwrap();
        let proc = Proc::spawn(
            "slapd",
            Command::new("slapd")
                .args(["-d", "0", "-F"])
                .arg(d.join("slapd.d"))
                .args(["-h", &format!("ldap://127.0.0.1:{port}/")])
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
            false,
        );
        let mut s = Slapd {
            proc,
            port,
            _dir: dir,
        };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let up = until_ready(&mut s.proc, || TcpStream::connect(addr).is_ok());
        assert!(
            up,
            "slapd does not listen: {}",
            read_text(&s._dir.path().join("slapd.out"))
        );
        s
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(15));
    }
}

/// A private Dovecot whose auth service serves one userdb kind on
/// `{dir}/run/auth-userdb` and `{dir}/run/auth-client` (mode 0666), with
/// IMAP on a loopback port and the homes under `{dir}/vmail`.
struct AuthDovecot {
    /// Declared before `dir`: the daemon stops before its files go.
    proc: Option<Proc>,
    _slapd: Option<Slapd>,
    dir: TempDir,
    imap: SocketAddr,
    owner: Owner,
}

impl AuthDovecot {
    fn start(kind: Kind) -> AuthDovecot {
        AuthDovecot::start_with(kind, "")
    }

    /// As [`AuthDovecot::start`]; `alice_extra` is appended to alice's
    /// passwd-file line (passwd-file kind only).
    fn start_with(kind: Kind, alice_extra: &str) -> AuthDovecot {
        ensure_packages();
        let owner = vmail();
        let dir = temp_dir("mailstow-userdb-");
        let d = dir.path().to_owned();
        let vmail_root = d.join("vmail");
        fs::create_dir(&vmail_root).unwrap();
        chown(&vmail_root, owner);
        fs::create_dir(d.join("state")).unwrap();
        let homes: Vec<(&str, PathBuf, &str)> = vec![
            (ALICE, home(&vmail_root, ALICE), "100M"),
            (CAROL, home(&vmail_root, CAROL), "2K"),
        ];
        let mut slapd = None;
        let dbs = match kind {
            Kind::PasswdFile => passwd_file_dbs(&d, &homes, owner, alice_extra),
            Kind::Sqlite => sqlite_dbs(&d, &homes, owner),
            Kind::Ldap => {
                let s = Slapd::start(&homes, owner);
                let dbs = ldap_dbs(&d, s.port);
                slapd = Some(s);
                dbs
            }
        };
        let imap = free_v4();
        let conf = format!(
            "{base}auth_verbose = yes\n\
             first_valid_uid = 1\n\
             first_valid_gid = 1\n\
             mail_plugins = quota\n\
             protocol imap {{\n  mail_plugins = $mail_plugins imap_quota\n}}\n\
             plugin {{\n  quota = maildir:User quota\n}}\n\
             service auth {{\n  unix_listener auth-userdb {{\n    mode = 0666\n  }}\n  unix_listener auth-client {{\n    mode = 0666\n  }}\n}}\n\
             {dbs}\n",
            base = util::dovecot_imap_base("mailstow-userdb", &d, imap.port()),
        );
        fs::write(d.join("dovecot.conf"), conf).unwrap();
        let mut dc = AuthDovecot {
            proc: None,
            _slapd: slapd,
            dir,
            imap,
            owner,
        };
        dc.run();
        dc
    }

    fn run(&mut self) {
        let d = self.dir.path();
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("dovecot.out"))
            .unwrap();
        let mut proc = Proc::spawn(
            "dovecot",
            Command::new("dovecot")
                .arg("-F")
                .arg("-c")
                .arg(d.join("dovecot.conf"))
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out),
            false,
        );
        let imap = self.imap;
        let socket = self.userdb_socket();
        let up = until_ready(&mut proc, || {
            TcpStream::connect(imap).is_ok()
                && std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
        self.proc = Some(proc);
        assert!(up, "dovecot did not start:\n{}", self.log());
    }

    /// Stop the whole Dovecot (auth included) and wait until it is gone.
    /// Stop the master, then kill the children it leaves behind: Dovecot's
    /// auth process outlives its master for a while (measured: 3 s) and
    /// keeps answering the clients still connected, mailstow's pooled
    /// connections among them.
    fn stop(&mut self) {
        let Some(mut p) = self.proc.take() else {
            return;
        };
        let children = children_of(p.pid());
        p.terminate(Duration::from_secs(15));
        for pid in children {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            poll(TIMEOUT, || (!alive(pid)).then_some(()))
                .unwrap_or_else(|| panic!("dovecot child {pid} does not exit"));
        }
    }

    fn userdb_socket(&self) -> PathBuf {
        self.dir.path().join("run/auth-userdb")
    }

    fn auth_socket(&self) -> PathBuf {
        self.dir.path().join("run/auth-client")
    }

    fn vmail_root(&self) -> PathBuf {
        self.dir.path().join("vmail")
    }

    fn log(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}{}",
            read_text(&d.join("dovecot.out")),
            tail(&read_text(&d.join("dovecot.log")), 40)
        )
    }

    /// The `[users]` table of a mailstow that asks this Dovecot; no cache,
    /// so that every lookup reaches the socket.
    fn users_toml(&self) -> String {
        format!(
            "driver = \"dovecot\"\ndovecot_userdb_socket = {}\ndovecot_auth_socket = {}\n\
             dovecot_timeout = 5\ncache_ttl = 0\nnegative_cache_ttl = 0\nrecipient_delimiter = \"+\"\n",
            toml_str(&self.userdb_socket().to_string_lossy()),
            toml_str(&self.auth_socket().to_string_lossy()),
        )
    }

    fn imap_login(&self, user: &str) -> Imap {
        let mut c = Imap::connect(self.imap);
        if let Err(e) = c.login(user, PASS) {
            panic!("IMAP LOGIN {user}: {e}\n{}", self.log());
        }
        c
    }
}

impl Drop for AuthDovecot {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("---- dovecot log ----\n{}", self.log());
        }
    }
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    let stat = read_text(Path::new(&format!("/proc/{pid}/stat")));
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The pids whose parent is `pid` (from /proc).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            // "pid (comm) state ppid ...": comm may hold spaces, so split
            // after its closing parenthesis.
            let stat = read_text(Path::new(&format!("/proc/{child}/stat")));
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

fn home(root: &Path, addr: &str) -> PathBuf {
    let (local, domain) = addr.split_once('@').unwrap();
    root.join(domain).join(local)
}

fn passwd_file_dbs(
    d: &Path,
    homes: &[(&str, PathBuf, &str)],
    owner: Owner,
    alice_extra: &str,
) -> String {
    let text: String = homes
        .iter()
        .map(|(addr, home, quota)| {
            format!(
                "{addr}:{{PLAIN}}{PASS}:{uid}:{gid}::{home}::userdb_quota_rule=*:storage={quota}{extra}\n",
                uid = owner.uid,
                gid = owner.gid,
                home = home.display(),
                extra = if *addr == ALICE { alice_extra } else { "" },
            )
        })
        .collect();
    let path = d.join("users");
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    format!(
        "passdb {{\n  driver = passwd-file\n  args = {p}\n}}\n\
         userdb {{\n  driver = passwd-file\n  args = {p}\n}}\n",
        p = path.display()
    )
}

/// A PostfixAdmin-like `mailbox` table: maildir relative to the vmail
/// root, quota in bytes, an active flag.
fn sqlite_dbs(d: &Path, homes: &[(&str, PathBuf, &str)], owner: Owner) -> String {
    let db = d.join("mail.sqlite");
    let mut sql = "CREATE TABLE mailbox (username TEXT PRIMARY KEY, password TEXT, \
                   maildir TEXT, quota INTEGER, active INTEGER);\n"
        .to_owned();
    for (addr, _, quota) in homes {
        let bytes: u64 = match *quota {
            "2K" => 2048,
            "100M" => 100 << 20,
            q => panic!("quota {q}"),
        };
        let (local, domain) = addr.split_once('@').unwrap();
        sql.push_str(&format!(
            "INSERT INTO mailbox VALUES ('{addr}', '{{PLAIN}}{PASS}', '{domain}/{local}', {bytes}, 1);\n"
        ));
    }
    sql.push_str(
        "INSERT INTO mailbox VALUES ('gone@example.org', '{PLAIN}x', 'example.org/gone', 0, 0);\n",
    );
    let out = util::output_with_input(Command::new("sqlite3").arg(&db), sql.as_bytes());
    assert!(out.status.success(), "sqlite3: {:?}", out);
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    let root = d.join("vmail");
    let ext = d.join("dovecot-sql.conf.ext");
    fs::write(
        &ext,
        format!(
            "driver = sqlite\nconnect = {db}\ndefault_pass_scheme = PLAIN\n\
             password_query = SELECT username AS user, password FROM mailbox \
             WHERE username = '%u' AND active = 1\n\
             user_query = SELECT '{root}/' || maildir AS home, 'maildir:~/Maildir' AS mail, \
             {uid} AS uid, {gid} AS gid, '*:storage=' || quota || 'B' AS quota_rule \
             FROM mailbox WHERE username = '%u' AND active = 1\n",
            db = db.display(),
            root = root.display(),
            uid = owner.uid,
            gid = owner.gid,
        ),
    )
    .unwrap();
    format!(
        "passdb {{\n  driver = sql\n  args = {e}\n}}\nuserdb {{\n  driver = sql\n  args = {e}\n}}\n",
        e = ext.display()
    )
}

fn ldap_dbs(d: &Path, port: u16) -> String {
    let ext = d.join("dovecot-ldap.conf.ext");
    fs::write(
        &ext,
        format!(
            "uris = ldap://127.0.0.1:{port}\nbase = ou=people,dc=example,dc=org\n\
             auth_bind = no\ndefault_pass_scheme = PLAIN\n\
             user_filter = (&(objectClass=posixAccount)(mail=%u))\n\
             user_attrs = homeDirectory=home,uidNumber=uid,gidNumber=gid,\
             description=quota_rule,=mail=maildir:~/Maildir\n\
             pass_filter = (&(objectClass=posixAccount)(mail=%u))\n\
             pass_attrs = mail=user,userPassword=password\n"
        ),
    )
    .unwrap();
    format!(
        "passdb {{\n  driver = ldap\n  args = {e}\n}}\nuserdb {{\n  driver = ldap\n  args = {e}\n}}\n",
        e = ext.display()
    )
}

fn start_mailstow(dc: &AuthDovecot, extra_toml: &str) -> Mailstow {
    let mut opts = Options::new(&[]);
    opts.users_toml = Some(dc.users_toml());
    opts.extra_toml = extra_toml.to_owned();
    Mailstow::start_with(opts)
}

/// The same four deliveries for every kind: plain, +detail, over quota,
/// unknown; then IMAP reads the two stored ones back.
fn same_deliveries(kind: Kind) {
    let dc = AuthDovecot::start(kind);
    let ms = start_mailstow(&dc, "");
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "plain", "hello"),
    );
    assert_eq!(code(&r[0]), 250, "{kind:?} plain: {r:?}\n{}", ms.log());
    let to = "alice+lists@example.org";
    let r = c.deliver(
        "s@example.net",
        &[to],
        &message("s@example.net", to, "detail", "hello detail"),
    );
    assert_eq!(code(&r[0]), 250, "{kind:?} detail: {r:?}\n{}", ms.log());
    let r = c.deliver(
        "s@example.net",
        &[CAROL],
        &message("s@example.net", CAROL, "big", &"y".repeat(5000)),
    );
    assert!(
        r[0][0].starts_with("552 5.2.2"),
        "{kind:?} over quota: {r:?}"
    );
    let r = c.cmd("MAIL FROM:<s@example.net>");
    assert_eq!(code(&r), 250);
    let r = c.cmd("RCPT TO:<nobody@example.org>");
    assert!(r[0].starts_with("550 5.1.1"), "{kind:?} unknown: {r:?}");
    c.cmd("RSET");

    // Stored in the home Dovecot's userdb gives, owned by its uid.
    let md = Maildir::of(&dc.vmail_root(), ALICE);
    let stored = md.messages("INBOX");
    assert_eq!(stored.len(), 2, "{kind:?}: {:?}", md.root);
    assert!(Maildir::of(&dc.vmail_root(), CAROL)
        .messages("INBOX")
        .is_empty());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(&stored[0].path).unwrap().uid(), dc.owner.uid);

    // Dovecot's IMAP (same instance, same userdb) reads them, and sees
    // the quota mailstow applied.
    let mut imap = dc.imap_login(ALICE);
    assert_eq!(imap.examine("INBOX"), 2);
    let bodies: Vec<String> = imap
        .fetch_all()
        .iter()
        .map(|f| String::from_utf8_lossy(&f.body).into_owned())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("Subject: plain")),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.contains("Subject: detail")),
        "{bodies:?}"
    );
    imap.logout();
    let mut imap = dc.imap_login(CAROL);
    let q = imap.quota_root("INBOX");
    assert!(
        q.iter()
            .any(|(res, _, limit)| res == "STORAGE" && *limit == 2),
        "{kind:?}: carol's quota as Dovecot sees it: {q:?}"
    );
    imap.logout();
}

#[test]
fn passwd_file_userdb_behind_dovecot_auth_delivers_the_same() {
    same_deliveries(Kind::PasswdFile);
}

#[test]
fn sqlite_userdb_postfixadmin_schema_delivers_the_same() {
    same_deliveries(Kind::Sqlite);
}

#[test]
fn ldap_userdb_private_slapd_delivers_the_same() {
    same_deliveries(Kind::Ldap);
}

/// Postfix relays a stream to mailstow; Dovecot (its auth with it) stops
/// after the first deliveries. mailstow answers 451 4.3.0, Postfix defers;
/// with Dovecot back and the queue flushed every message is in the
/// Maildir exactly once.
#[test]
fn dovecot_stopped_under_a_postfix_stream_defers_then_delivers_exactly_once() {
    const N: usize = 40;
    let mut dc = AuthDovecot::start(Kind::PasswdFile);
    let ms = start_mailstow(&dc, "");
    let pf = Postfix::start(&lmtp_inet(ms.tcp));
    let md = Maildir::of(&dc.vmail_root(), ALICE);
    let count = |md: &Maildir| md.messages("INBOX").len();
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let send = |i: usize| {
        let subject = format!("stream {i:03}");
        pf.send_smtp(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, &subject, "body"),
        );
    };
    std::thread::scope(|s| {
        let sender = s.spawn(|| {
            // The first half races with the stop; the second half is sent
            // once Dovecot and its auth are gone, so some surely meet that.
            (0..N / 2).for_each(send);
            poll(TIMEOUT, || stopped.load(Ordering::SeqCst).then_some(()))
                .expect("dovecot was not stopped");
            (N / 2..N).for_each(send);
        });
        // Mid-stream: once some have landed, Dovecot goes away.
        poll(TIMEOUT, || (count(&md) >= 5).then_some(()))
            .unwrap_or_else(|| panic!("no deliveries:\n{}", tail(&pf.maillog(), 30)));
        dc.stop();
        stopped.store(true, Ordering::SeqCst);
        sender.join().unwrap();
    });
    let deferred = pf.wait_maillog(&["status=deferred", "451 4.3.0"], 1);
    assert!(count(&md) < N, "nothing was deferred: {deferred:?}");
    assert!(
        ms.log().contains("auth-userdb"),
        "mailstow's log does not name the socket:\n{}",
        tail(&ms.log(), 20)
    );
    dc.run();
    util::run(
        Command::new("postqueue")
            .arg("-c")
            .arg(&pf.config_dir)
            .arg("-f"),
    );
    pf.wait_queue_empty(TIMEOUT);
    let mut subjects: Vec<String> = md
        .messages("INBOX")
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(&m.bytes)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect();
    subjects.sort();
    let want: Vec<String> = (0..N).map(|i| format!("stream {i:03}")).collect();
    assert_eq!(subjects, want, "every message exactly once");
}

/// A raw ManageSieve exchange, one response (lines up to OK/NO/BYE).
fn sieve_cmd(w: &mut TcpStream, r: &mut BufReader<TcpStream>, line: &str) -> String {
    if !line.is_empty() {
        w.write_all(line.as_bytes()).unwrap();
    }
    let mut out = String::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return out;
        }
        out.push_str(&l);
        if ["OK", "NO", "BYE"].iter().any(|w| l.starts_with(w)) {
            return out;
        }
    }
}

fn plain(login: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{login}\0{pass}"))
}

#[test]
fn managesieve_logins_go_through_dovecots_auth() {
    let dc = AuthDovecot::start(Kind::Sqlite);
    let port = free_v4();
    let ms = start_mailstow(
        &dc,
        &format!("[managesieve]\nlisten = [\"{port}\"]\nplaintext_on_loopback = true\n"),
    );
    let connect = || {
        let s = poll(TIMEOUT, || TcpStream::connect(port).ok()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let greeting = sieve_cmd(&mut w, &mut r, "");
        assert!(greeting.contains("SASL"), "{greeting}");
        (w, r)
    };
    let (mut w, mut r) = connect();
    let no = sieve_cmd(
        &mut w,
        &mut r,
        &format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain(ALICE, "wrong")),
    );
    assert!(no.starts_with("NO"), "wrong password: {no}");
    let (mut w, mut r) = connect();
    let ok = sieve_cmd(
        &mut w,
        &mut r,
        &format!("AUTHENTICATE \"PLAIN\" \"{}\"\r\n", plain(ALICE, PASS)),
    );
    assert!(ok.starts_with("OK"), "{ok}\n{}", tail(&ms.log(), 20));
    let script = "keep;\r\n";
    let put = sieve_cmd(
        &mut w,
        &mut r,
        &format!("PUTSCRIPT \"mine\" {{{}+}}\r\n{script}\r\n", script.len()),
    );
    assert!(put.starts_with("OK"), "{put}");
    let act = sieve_cmd(&mut w, &mut r, "SETACTIVE \"mine\"\r\n");
    assert!(act.starts_with("OK"), "{act}");
    // In the home Dovecot's userdb gives for the name Dovecot's auth returned.
    let home = home(&dc.vmail_root(), ALICE);
    assert!(
        home.join("sieve/mine.sieve").is_file(),
        "{}",
        home.display()
    );
    assert!(home.join(".dovecot.sieve").exists());
}

#[test]
fn config_check_names_the_socket_when_dovecot_is_down() {
    let mut dc = AuthDovecot::start(Kind::PasswdFile);
    let ms = start_mailstow(&dc, "");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_mailstow"))
            .args(["config", "check", "--quiet", "--config"])
            .arg(&ms.config)
            .output()
            .unwrap()
    };
    let up = check();
    let text = String::from_utf8_lossy(&up.stderr).into_owned();
    assert!(
        !text.contains("error: users.dovecot"),
        "Dovecot is up: {text}"
    );
    assert!(text.contains("users.dovecot_userdb_socket"), "{text}");
    dc.stop();
    let down = check();
    let text = String::from_utf8_lossy(&down.stderr).into_owned();
    assert!(!down.status.success(), "{text}");
    for key in ["users.dovecot_userdb_socket", "users.dovecot_auth_socket"] {
        assert!(
            text.lines().any(|l| l.contains("error") && l.contains(key)),
            "{key} not named:\n{text}"
        );
    }
}

/// The userdb's `sieve` field (Pigeonhole's `file:DIR;active=PATH`) is
/// the script mailstow runs, not `[sieve] script`; `~` is the home.
#[test]
fn the_sieve_location_from_the_userdb_is_the_script_that_runs() {
    let dc = AuthDovecot::start_with(
        Kind::PasswdFile,
        " userdb_sieve=file:~/scripts;active=~/scripts.active",
    );
    let ms = start_mailstow(&dc, "");
    let home = home(&dc.vmail_root(), ALICE);
    fs::create_dir_all(home.join("scripts")).unwrap();
    for dir in [
        home.parent().unwrap(),
        home.as_path(),
        &home.join("scripts"),
    ] {
        chown(dir, dc.owner);
    }
    let script = home.join("scripts.active");
    fs::write(
        &script,
        "require [\"fileinto\", \"mailbox\"];\nfileinto :create \"Filed\";\n",
    )
    .unwrap();
    chown(&script, dc.owner);
    // The default place holds a script that would discard: it must not run.
    fs::write(home.join(".dovecot.sieve"), "discard;\n").unwrap();
    chown(&home.join(".dovecot.sieve"), dc.owner);
    let mut c = ms.connect();
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "filed", "x"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
    let md = Maildir::of(&dc.vmail_root(), ALICE);
    assert_eq!(md.messages("Filed").len(), 1, "{}", tail(&ms.log(), 20));
    assert!(md.messages("INBOX").is_empty());
}
