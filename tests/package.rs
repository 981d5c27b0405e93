//! The Debian package and the systemd integration: the packaged files agree
//! with each other; the .deb that cargo-deb builds holds the binary,
//! conffiles, units, man page, examples and maintainer scripts; both units
//! pass `systemd-analyze verify`; socket activation and sd_notify work end
//! to end under systemd-socket-activate; and the package installs into a
//! clean Debian 12 root (tests/debian.rs), where the
//! installed mailstow runs as the unit runs it and delivers. Must not
//! install anything into the host's own /etc, /usr or services (dpkg runs
//! only inside the chroot), nor leave a process behind.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::debian::{
    chroot_sh, getent, mailhost_root, minbase_root, output, proc_status, Container, Network,
};
use crate::util::{
    self, code, message, poll, run, tail, toml_str, LmtpClient, Maildir, Mailstow, Options, Proc,
    TIMEOUT,
};

const ALICE: &str = "alice@example.org";
/// The cargo-deb the tests install when `cargo deb` is missing (it builds
/// with Rust 1.95).
const CARGO_DEB_VERSION: &str = "3.8.0";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// These tests install into roots and boot containers: as root, as CI
/// runs them. Anyone else gets a failure saying so, never a pass.
fn assert_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root: run the tests as root, as CI does"
    );
}

/// The value of `key=` in a unit file (the last one; a unit may repeat a
/// key, but ours do not).
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .map(|v| v.trim().to_owned())
}

/// Install what these tests run (systemd-analyze and
/// systemd-socket-activate, man) when missing, as on a fresh
/// machine: once per test process, under the host lock.
fn ensure_tools() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        util::apt_install_missing(
            &[
                "/usr/bin/systemd-analyze",
                "/usr/bin/systemd-socket-activate",
                "/usr/bin/man",
            ],
            &["systemd", "man-db"],
        );
    });
}

// ---------------------------------------------------------------------------
// The packaged files, without building anything
// ---------------------------------------------------------------------------

#[test]
fn packaged_config_units_and_postfix_snippet_name_the_same_paths() {
    util::vmail(); // the config's `user` must exist to validate
    let text = fs::read_to_string(repo("packaging/debian/mailstow.toml")).unwrap();
    let cfg = mailstow::config::Config::from_toml(
        &text,
        Path::new("/etc/mailstow/mailstow.toml"),
        Path::new("/etc/mailstow"),
    )
    .unwrap_or_else(|e| panic!("the packaged configuration does not load: {e}"));
    assert_eq!(cfg.storage.mail_root, Path::new("/var/vmail"));
    assert_eq!(
        cfg.users.passwd_file(),
        Some(Path::new("/etc/mailstow/users"))
    );
    assert_eq!(cfg.delivery.spool_dir, Path::new("/var/spool/mailstow"));
    assert!(cfg.run_as.is_some(), "the package runs as vmail");
    let sock = "/var/spool/postfix/private/mailstow";
    assert_eq!(
        cfg.lmtp.listen,
        vec![mailstow::config::ListenAddr::Unix(sock.into())]
    );

    // mailstow.socket listens where the configuration does, with the name
    // that makes it LMTP.
    let socket = fs::read_to_string(repo("packaging/systemd/mailstow.socket")).unwrap();
    assert_eq!(unit_value(&socket, "ListenStream").as_deref(), Some(sock));
    assert_eq!(
        unit_value(&socket, "FileDescriptorName").as_deref(),
        Some("lmtp")
    );
    assert_eq!(
        unit_value(&socket, "Service").as_deref(),
        Some("mailstow.service")
    );

    // The service may write exactly where the configuration writes.
    let service = fs::read_to_string(repo("packaging/systemd/mailstow.service")).unwrap();
    let rw = unit_value(&service, "ReadWritePaths").unwrap();
    let rw: Vec<&str> = rw
        .split_whitespace()
        .map(|p| p.trim_start_matches('-'))
        .collect();
    for needed in [
        "/var/vmail",
        "/var/spool/mailstow",
        "/var/spool/postfix/private",
    ] {
        assert!(
            rw.contains(&needed),
            "ReadWritePaths lacks {needed}: {rw:?}"
        );
    }
    assert!(
        !cfg.storage.mail_root.starts_with("/home"),
        "ProtectHome=yes"
    );
    assert_eq!(
        unit_value(&service, "ExecStart").as_deref(),
        Some("/usr/bin/mailstow serve --config /etc/mailstow/mailstow.toml")
    );

    // Postfix's chrooted lmtp client reaches the same socket.
    let main_cf = fs::read_to_string(repo("packaging/postfix/main.cf.snippet")).unwrap();
    let transport = main_cf
        .lines()
        .find_map(|l| l.strip_prefix("virtual_transport = "))
        .unwrap();
    let rel = transport.strip_prefix("lmtp:unix:").unwrap();
    assert_eq!(Path::new("/var/spool/postfix").join(rel), Path::new(sock));

    // The users file grants nobody a mailbox.
    let users = fs::read_to_string(repo("packaging/debian/users")).unwrap();
    let entries: Vec<&str> = users
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert!(entries.is_empty(), "{entries:?}");
}

// ---------------------------------------------------------------------------
// The .deb
// ---------------------------------------------------------------------------

/// The .deb, built once per run: `cargo deb --no-build` around the mailstow
/// binary this test run was built with (cargo-deb installed first when
/// missing). Panics with cargo-deb's output when it fails.
pub(crate) fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let started = Instant::now();
        ensure_tools();
        util::ensure_cargo_subcommand("deb", "cargo-deb", CARGO_DEB_VERSION);
        let bin = Path::new(env!("CARGO_BIN_EXE_mailstow"));
        // .../target/debug/mailstow: the target dir and the profile's dir.
        let profile_dir = bin.parent().expect("binary has a directory");
        let target_dir = profile_dir.parent().expect("profile dir has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(p) => p,
            None => panic!("unexpected binary path {}", bin.display()),
        };
        let out_dir = target_dir.join("package-test");
        fs::create_dir_all(&out_dir).expect("mkdir package-test");
        let deb = out_dir.join("mailstow.deb");
        let _ = fs::remove_file(&deb);
        run(Command::new("cargo")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("CARGO_TARGET_DIR", target_dir)
            .args([
                "deb",
                "--no-build",
                "--fast",
                "--profile",
                profile,
                "--output",
            ])
            .arg(&deb));
        assert!(deb.is_file(), "cargo deb made no {}", deb.display());
        eprintln!(
            "package: built {} in {:.1?}",
            deb.display(),
            started.elapsed()
        );
        deb
    })
}

/// `dpkg-deb -c` as (mode string, owner/group, path without the leading `.`).
fn deb_contents(deb: &Path) -> Vec<(String, String, String)> {
    run(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let path = f.get(5)?.trim_start_matches('.').to_owned();
            Some((f[0].to_owned(), f[1].to_owned(), path))
        })
        .collect()
}

#[test]
fn deb_holds_the_binary_conffiles_units_man_page_examples_and_scripts() {
    util::vmail();
    let deb = deb();
    let field = |f: &str| run(Command::new("dpkg-deb").arg("-f").arg(deb).arg(f));
    assert_eq!(field("Package").trim(), "mailstow");
    assert_eq!(field("Section").trim(), "mail");
    let depends = field("Depends");
    for d in ["libc6", "adduser", "init-system-helpers"] {
        assert!(depends.contains(d), "Depends lacks {d}: {depends}");
    }

    // The Debian changelog names the version the package has.
    let changelog = fs::read_to_string(repo("packaging/debian/changelog")).unwrap();
    let logged = changelog
        .lines()
        .next()
        .and_then(|l| l.split(['(', ')']).nth(1))
        .unwrap_or_default();
    assert_eq!(
        field("Version").trim(),
        logged,
        "packaging/debian/changelog"
    );

    let files = deb_contents(deb);
    let entry = |path: &str| {
        files
            .iter()
            .find(|(_, _, p)| p == path)
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{files:#?}"))
    };
    for (path, mode) in [
        ("/usr/bin/mailstow", "-rwxr-xr-x"),
        ("/etc/mailstow/mailstow.toml", "-rw-r--r--"),
        ("/etc/mailstow/users", "-rw-r-----"),
        ("/usr/lib/systemd/system/mailstow.service", "-rw-r--r--"),
        ("/usr/lib/systemd/system/mailstow.socket", "-rw-r--r--"),
        ("/usr/share/man/man8/mailstow.8.gz", "-rw-r--r--"),
        ("/usr/share/doc/mailstow/copyright", "-rw-r--r--"),
        ("/usr/share/doc/mailstow/changelog.Debian.gz", "-rw-r--r--"),
        ("/usr/share/doc/mailstow/operations.md", "-rw-r--r--"),
        ("/usr/share/lintian/overrides/mailstow", "-rw-r--r--"),
        (
            "/usr/share/doc/mailstow/examples/postfix/main.cf.snippet",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/mailstow/examples/postfix/master.cf.snippet",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/mailstow/examples/dovecot/mailstow.conf",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/mailstow/examples/mailstow.example.toml",
            "-rw-r--r--",
        ),
        (
            "/usr/share/doc/mailstow/examples/systemd/system-users.conf",
            "-rw-r--r--",
        ),
    ] {
        let (m, owner, _) = entry(path);
        assert_eq!(m, mode, "{path}");
        assert!(owner == "root/root" || owner == "0/0", "{path}: {owner}");
    }

    // Control files: conffiles, and maintainer scripts that are valid sh.
    let ctrl = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-e").arg(deb).arg(ctrl.path()));
    let mut conffiles: Vec<String> = fs::read_to_string(ctrl.path().join("conffiles"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    conffiles.sort();
    assert_eq!(
        conffiles,
        ["/etc/mailstow/mailstow.toml", "/etc/mailstow/users"]
    );
    for script in ["postinst", "prerm", "postrm"] {
        let path = ctrl.path().join(script);
        let mode = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{script}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        run(Command::new("sh").arg("-n").arg(&path));
    }
    let postinst = fs::read_to_string(ctrl.path().join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    for unit in ["mailstow.service", "mailstow.socket"] {
        assert!(
            postinst.contains(&format!("deb-systemd-helper enable '{unit}'"))
                || postinst.contains(&format!("deb-systemd-helper enable {unit}")),
            "postinst does not enable {unit}:\n{postinst}"
        );
    }
    // Starting is guarded: a chroot or container without systemd installs.
    let start = postinst
        .find("deb-systemd-invoke")
        .expect("postinst starts the units");
    assert!(
        postinst[..start].contains("if [ -d /run/systemd/system ]"),
        "{postinst}"
    );
    // The account exists before the units start.
    assert!(postinst.find("adduser --system").unwrap() < start);
    let postrm = fs::read_to_string(ctrl.path().join("postrm")).unwrap();
    assert!(postrm.contains("deb-systemd-helper purge"), "{postrm}");

    // The packaged binary runs, and the packaged config loads in the
    // library the binary is built from.
    let root = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(root.path()));
    let version = run(Command::new(root.path().join("usr/bin/mailstow")).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("mailstow {}", env!("CARGO_PKG_VERSION"))
    );
    let etc = root.path().join("etc/mailstow");
    let cfg = mailstow::config::Config::load(&etc.join("mailstow.toml"))
        .unwrap_or_else(|e| panic!("packaged mailstow.toml: {e}"));
    assert_eq!(cfg.storage.mail_root, Path::new("/var/vmail"));

    // The man page is gzipped and renders without a warning.
    let mut man = String::new();
    gunzip(
        &root.path().join("usr/share/man/man8/mailstow.8.gz"),
        &mut man,
    );
    assert!(man.contains(".TH MAILSTOW 8"), "{}", tail(&man, 5));
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(root.path().join("usr/share/man/man8/mailstow.8.gz"))
        .env("MANWIDTH", "80")
        .env_remove("MAN_KEEP_FORMATTING")
        .stdin(Stdio::null())
        .output()
        .expect("run man (man-db)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "man -l failed: {out:?}");
    assert!(text.contains("SOCKET ACTIVATION"), "{}", tail(&text, 10));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "",
        "man page warnings"
    );
}

/// `gzip -dc path` into `out`.
fn gunzip(path: &Path, out: &mut String) {
    let mut child = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip");
    child
        .stdout
        .take()
        .expect("gzip stdout")
        .read_to_string(out)
        .expect("read gzip output");
    assert!(child.wait().expect("wait gzip").success());
}

// ---------------------------------------------------------------------------
// systemd-analyze verify
// ---------------------------------------------------------------------------

#[test]
fn both_units_pass_systemd_analyze_verify() {
    // systemd-analyze checks that ExecStart= names an executable and that
    // Documentation= man pages exist, so the units are verified as
    // installed: under --root, in the package's own tree (where
    // /usr/bin/mailstow and the man page are the packaged ones), beside
    // this Debian's own units (the targets they name) and /bin/sh
    // (ExecReload=). Every line it prints counts, not only its status.
    util::vmail();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb())
        .arg(root.path()));
    let units = root.path().join("usr/lib/systemd/system");
    for e in fs::read_dir("/lib/systemd/system").expect("this Debian's units") {
        let e = e.unwrap();
        let to = units.join(e.file_name());
        if e.file_type().unwrap().is_file() && !to.exists() {
            fs::copy(e.path(), to).unwrap();
        }
    }
    fs::create_dir_all(root.path().join("bin")).unwrap();
    fs::copy("/bin/sh", root.path().join("bin/sh")).expect("copy /bin/sh");
    let verify = || {
        output(
            Command::new("systemd-analyze")
                .arg("verify")
                .arg(format!("--root={}", root.path().display()))
                .arg(units.join("mailstow.socket"))
                .arg(units.join("mailstow.service"))
                .env("MANPATH", root.path().join("usr/share/man")),
        )
    };
    let (status, text) = verify();
    assert!(
        status.success() && text.trim().is_empty(),
        "systemd-analyze verify ({status}):\n{text}"
    );

    // The driver = "system" drop-in, as the README installs it from the
    // packaged example, passes too.
    let drop_in = units.join("mailstow.service.d");
    fs::create_dir_all(&drop_in).unwrap();
    fs::copy(
        root.path()
            .join("usr/share/doc/mailstow/examples/systemd/system-users.conf"),
        drop_in.join("system-users.conf"),
    )
    .expect("the packaged drop-in");
    let (status, text) = verify();
    assert!(
        status.success() && text.trim().is_empty(),
        "systemd-analyze verify with the system-users drop-in ({status}):\n{text}"
    );

    // The check bites: without the packaged binary the service fails it.
    let bin = root.path().join("usr/bin/mailstow");
    fs::rename(&bin, bin.with_extension("moved")).unwrap();
    let (status, text) = verify();
    assert!(
        !status.success() && text.contains("/usr/bin/mailstow is not executable"),
        "a missing ExecStart binary passed ({status}): {text}"
    );
}

// ---------------------------------------------------------------------------
// Socket activation and sd_notify, end to end
// ---------------------------------------------------------------------------

/// The next sd_notify datagram, or None after `timeout`.
fn next_notification(sock: &UnixDatagram, timeout: Duration) -> Option<String> {
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn socket_activation_serves_the_handed_sockets_and_notifies_readiness_reload_and_stop() {
    ensure_tools();
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut opts = Options::new(&[ALICE]);
    opts.unix_socket = true;
    // systemd-socket-activate binds both listeners, waits for the first
    // connection (wait_ready's), then execs mailstow with them as fds 3, 4.
    opts.launcher = [
        "systemd-socket-activate",
        "-l",
        "{tcp}",
        "-l",
        "{unix}",
        "--fdname=lmtp:lmtp",
        "-E",
        &format!("NOTIFY_SOCKET={}", notify_path.display()),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut ms = Mailstow::start_with(opts);
    let ready = next_notification(&notify, TIMEOUT).expect("READY=1 within the timeout");
    assert_eq!(ready, "READY=1\n");
    let log = ms.log();
    assert_eq!(
        log.matches("socket from systemd").count(),
        2,
        "both sockets taken, neither bound anew:\n{log}"
    );
    assert!(!log.contains("not list"), "{log}");
    // The handed fds (3 and 4) are close-on-exec now: no child inherits them.
    for fd in [3, 4] {
        let info = fs::read_to_string(format!("/proc/{}/fdinfo/{fd}", ms.pid())).unwrap();
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
            .unwrap();
        assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "fd {fd}: {info}");
    }

    // Over each handed socket, a delivery.
    let unix = ms.unix.clone().unwrap();
    for mut c in [ms.connect(), LmtpClient::unix(&unix)] {
        c.lhlo();
        let r = c.deliver(
            "s@example.net",
            &[ALICE],
            &message("s@example.net", ALICE, "activated", "hi\n"),
        );
        assert_eq!(code(&r[0]), 250, "{r:?}");
    }
    assert_eq!(ms.maildir(ALICE).messages("INBOX").len(), 2);

    // `systemctl reload` (ExecReload sends SIGHUP): RELOADING=1 with the
    // monotonic time, then READY=1 once the new configuration serves.
    ms.signal(nix::sys::signal::Signal::SIGHUP);
    let reloading = next_notification(&notify, TIMEOUT).expect("RELOADING=1");
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading:?}"
    );
    let ready = next_notification(&notify, TIMEOUT).expect("READY=1 after the reload");
    assert_eq!(ready, "READY=1\n");
    assert!(ms.log().contains("configuration reloaded"), "{}", ms.log());

    assert!(ms.stop().success(), "{}", tail(&ms.log(), 20));
    let stopping = next_notification(&notify, TIMEOUT).expect("STOPPING=1");
    assert_eq!(stopping, "STOPPING=1\n");
    assert!(
        unix.exists(),
        "the unix socket file belongs to whoever made it (systemd), not mailstow"
    );
}

/// Start mailstow under systemd-socket-activate with a socket named
/// `fdname` on a free port, `[lmtp]`/`[smtp]` configured by `tables`
/// (`{addr}` there is the handed socket's address); trigger it with a
/// connection and return its exit status and output.
fn activate_and_fail(fdname: &str, tables: &str) -> (std::process::ExitStatus, String) {
    ensure_tools();
    let dir = util::temp_dir("mailstow-activation-");
    let addr = util::free_v4();
    fs::write(dir.path().join("users"), "").unwrap();
    let config = dir.path().join("mailstow.toml");
    fs::write(
        &config,
        format!(
            "{}\n[storage]\nmail_root = {}\n[users]\npasswd_file = \"users\"\n",
            tables.replace("{addr}", &addr.to_string()),
            toml_str(&dir.path().join("mail").to_string_lossy()),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("log");
    let log = fs::File::create(&log_path).unwrap();
    let mut p = Proc::spawn(
        "systemd-socket-activate",
        Command::new("systemd-socket-activate")
            .args(["-l", &addr.to_string(), &format!("--fdname={fdname}")])
            .arg(env!("CARGO_BIN_EXE_mailstow"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
        false,
    );
    let _trigger = poll(TIMEOUT, || std::net::TcpStream::connect(addr).ok())
        .expect("systemd-socket-activate listens");
    let status = p
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|| panic!("mailstow kept running: {}", util::read_text(&log_path)));
    (status, util::read_text(&log_path))
}

#[test]
fn a_handed_socket_of_unknown_name_or_of_the_other_protocol_stops_the_start() {
    let (status, text) = activate_and_fail("lmtpx", "[lmtp]\nlisten = [\"{addr}\"]");
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(
        text.contains("\"lmtpx\"") && text.contains("FileDescriptorName"),
        "{text}"
    );

    // Named lmtp, but the configuration lists that address for SMTP.
    let (status, text) = activate_and_fail(
        "lmtp",
        "[lmtp]\nlisten = []\n[smtp]\nlisten = [\"{addr}\"]\ndomains = [\"example.org\"]",
    );
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(
        text.contains("[smtp] listen") && text.contains("FileDescriptorName=smtp"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// Install into a clean Debian 12 root
// ---------------------------------------------------------------------------

#[test]
fn package_installs_in_clean_debian_12_and_the_installed_mailstow_delivers_as_the_unit_runs_it() {
    assert_root("installing into a chroot");
    let started = Instant::now();
    let deb = deb();
    let root_dir = minbase_root();
    let root = root_dir.path();
    eprintln!("package: clean root ready after {:.1?}", started.elapsed());

    // Install as an admin would; no systemd runs in the chroot.
    fs::copy(deb, root.join("tmp/mailstow.deb")).unwrap();
    let (status, text) = output(
        Command::new("chroot")
            .arg(root)
            .args(["dpkg", "-i", "/tmp/mailstow.deb"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert!(status.success(), "dpkg -i failed:\n{text}");
    let state = run(Command::new("chroot").arg(root).args([
        "dpkg-query",
        "-W",
        "-f=${Status}",
        "mailstow",
    ]));
    assert_eq!(state, "install ok installed");

    // The account: a system user with its own group, home the mail root,
    // no login shell.
    let pw = getent(root, "passwd", "vmail");
    let (uid, gid): (u32, u32) = (pw[2].parse().unwrap(), pw[3].parse().unwrap());
    // A system uid, from 500 up: Debian's Dovecot refuses mail access
    // below its first_valid_uid (500).
    assert!((500..1000).contains(&uid), "a system uid from 500: {pw:?}");
    assert_eq!(pw[5], "/var/vmail");
    assert_eq!(pw[6], "/usr/sbin/nologin");
    assert_eq!(getent(root, "group", "vmail")[2], gid.to_string());

    // Directories and files, owners and modes.
    for (path, mode, owner) in [
        ("var/vmail", 0o750, (uid, gid)),
        ("var/spool/mailstow", 0o700, (uid, gid)),
        ("etc/mailstow/users", 0o640, (0, gid)),
        ("etc/mailstow/mailstow.toml", 0o644, (0, 0)),
        ("usr/bin/mailstow", 0o755, (0, 0)),
    ] {
        let m = fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(m.mode() & 0o7777, mode, "{path}");
        assert_eq!((m.uid(), m.gid()), owner, "{path}");
    }
    // Enabled for the next boot, as dh_installsystemd would.
    for link in [
        "etc/systemd/system/multi-user.target.wants/mailstow.service",
        "etc/systemd/system/sockets.target.wants/mailstow.socket",
    ] {
        let target = fs::read_link(root.join(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert!(
            target.to_string_lossy().ends_with(
                Path::new(link)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .as_ref()
            ),
            "{link} -> {}",
            target.display()
        );
    }

    // The packaged configuration validates on the fresh install.
    let (status, text) = output(Command::new("chroot").arg(root).args([
        "/usr/bin/mailstow",
        "config",
        "check",
        "--quiet",
    ]));
    assert!(status.success(), "config check failed:\n{text}");
    assert!(text.contains(": ok"), "{text}");

    // Give alice a mailbox, as the admin would.
    let users = root.join("etc/mailstow/users");
    let mut text = fs::read_to_string(&users).unwrap();
    text.push_str(&format!("{ALICE}:{{PLAIN}}secret:{uid}:{gid}::::\n"));
    fs::write(&users, text).unwrap();

    // Run the installed binary as the units would: ExecStart= from the
    // installed service, the socket from the installed socket unit (bound
    // inside the root, handed over as fd 3 with its FileDescriptorName=),
    // UMask=, LimitNOFILE=, NoNewPrivileges= and the capability bounding
    // set (setpriv, from the root's util-linux) from the service.
    let unit_dir = root.join("usr/lib/systemd/system");
    let service = fs::read_to_string(unit_dir.join("mailstow.service")).unwrap();
    let socket_unit = fs::read_to_string(unit_dir.join("mailstow.socket")).unwrap();
    let exec_start = unit_value(&service, "ExecStart").unwrap();
    let caps: Vec<String> = unit_value(&service, "CapabilityBoundingSet")
        .unwrap()
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let umask = u32::from_str_radix(&unit_value(&service, "UMask").unwrap(), 8).unwrap();
    let nofile: u64 = unit_value(&service, "LimitNOFILE")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        unit_value(&service, "NoNewPrivileges").as_deref(),
        Some("yes")
    );
    let listen = unit_value(&socket_unit, "ListenStream").unwrap();
    let fdname = unit_value(&socket_unit, "FileDescriptorName").unwrap();
    let socket_mode =
        u32::from_str_radix(&unit_value(&socket_unit, "SocketMode").unwrap(), 8).unwrap();
    let host_socket = root.join(listen.trim_start_matches('/'));
    fs::create_dir_all(host_socket.parent().unwrap()).unwrap();

    let unit = UnitRun {
        root,
        exec_start: &exec_start,
        caps: &caps,
        umask,
        nofile,
    };
    let log_path = root_dir.path().join("mailstow.log");
    let handed = Handed {
        path: &listen,
        name: &fdname,
        mode: socket_mode,
    };
    let mut p = unit.spawn(Some(handed), &log_path);
    let pid = p.pid();

    // The socket listens from the start; the greeting says mailstow is up.
    let mut c = LmtpClient::unix(&host_socket);
    assert_eq!(code(&c.greeting), 220, "{}", util::read_text(&log_path));
    let want = format!("{uid}\t{uid}\t{uid}\t{uid}");
    assert_eq!(proc_status(pid, "Uid:"), Some(want), "runs as vmail");
    assert_eq!(
        proc_status(pid, "CapEff:").as_deref(),
        Some("0000000000000000"),
        "no capability left after the drop"
    );
    assert_eq!(proc_status(pid, "NoNewPrivs:").as_deref(), Some("1"));
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "installed", "from the package\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}\n{}", util::read_text(&log_path));
    c.quit();
    let mail = Maildir::of(&root.join("var/vmail"), ALICE).messages("INBOX");
    assert_eq!(mail.len(), 1);
    let m = fs::metadata(&mail[0].path).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (uid, gid, 0o600));
    let log_text = util::read_text(&log_path);
    assert!(log_text.contains("socket from systemd"), "{log_text}");

    // SIGTERM by PID: a clean stop, the socket file left to its maker.
    let (status, killed) = p.terminate(TIMEOUT);
    assert!(status.success() && !killed, "{status}: {log_text}");
    assert!(host_socket.exists());

    // Without mailstow.socket, mailstow binds the socket itself, in a
    // private/ that Postfix owns (mode 0700, here uid 65534): the bounding
    // set must hold what that takes, and CAP_DAC_OVERRIDE is needed.
    fs::remove_file(&host_socket).unwrap();
    let private = host_socket.parent().unwrap();
    nix::unistd::chown(private, Some(65534.into()), Some(65534.into())).unwrap();
    fs::set_permissions(private, fs::Permissions::from_mode(0o700)).unwrap();
    let fewer: Vec<String> = caps
        .iter()
        .filter(|c| *c != "+dac_override")
        .cloned()
        .collect();
    let short = UnitRun {
        caps: &fewer,
        ..unit
    };
    let denied_log = root_dir.path().join("denied.log");
    let mut p = short.spawn(None, &denied_log);
    let status = p
        .wait_exit(TIMEOUT)
        .expect("exits without CAP_DAC_OVERRIDE");
    let text = util::read_text(&denied_log);
    assert_eq!(status.code(), Some(78), "{text}");
    assert!(text.contains("Permission denied"), "{text}");

    let bound_log = root_dir.path().join("bound.log");
    let mut p = unit.spawn(None, &bound_log);
    let mut c = poll(TIMEOUT, || {
        if p.exited().is_some() {
            panic!("exited: {}", util::read_text(&bound_log));
        }
        LmtpClient::try_unix(&host_socket).ok()
    })
    .expect("mailstow binds its socket");
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "bound", "no socket unit\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}\n{}", util::read_text(&bound_log));
    c.quit();
    let (status, _) = p.terminate(TIMEOUT);
    assert!(status.success(), "{}", util::read_text(&bound_log));
    // Nothing listens any more. (The file itself stays: mailstow, now
    // vmail, may not unlink it from Postfix's private/; the next start,
    // as root, replaces the stale socket.)
    assert!(std::os::unix::net::UnixStream::connect(&host_socket).is_err());

    // Pipe mode as Postfix's master.cf snippet runs it: as vmail, with the
    // packaged configuration and files.
    let mut deliver = Command::new("chroot");
    deliver
        .arg(format!("--userspec={uid}:{gid}"))
        .arg(root)
        .args([
            "/usr/bin/mailstow",
            "deliver",
            "--config",
            "/etc/mailstow/mailstow.toml",
            "-f",
            "s@example.net",
            "-d",
            ALICE,
        ])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = deliver.spawn().expect("run mailstow deliver");
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        &message("s@example.net", ALICE, "piped", "pipe mode\n"),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        Maildir::of(&root.join("var/vmail"), ALICE)
            .messages("INBOX")
            .len(),
        3
    );

    // Purge: the units go, the spool goes, the mail and the account stay.
    let (status, text) = output(
        Command::new("chroot")
            .arg(root)
            .args(["dpkg", "--purge", "mailstow"])
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    );
    assert!(status.success(), "dpkg --purge failed:\n{text}");
    assert!(!root.join("usr/bin/mailstow").exists());
    assert!(!root.join("var/spool/mailstow").exists());
    assert!(!root.join("etc/mailstow").exists());
    assert!(!root
        .join("etc/systemd/system/multi-user.target.wants/mailstow.service")
        .exists());
    assert_eq!(
        Maildir::of(&root.join("var/vmail"), ALICE)
            .messages("INBOX")
            .len(),
        3,
        "purge never removes mail"
    );
    assert_eq!(getent(root, "passwd", "vmail")[2], uid.to_string());
    eprintln!("package: install test took {:.1?}", started.elapsed());
}

/// The installed service's settings, applied by hand (no systemd runs
/// here): the root, ExecStart=, CapabilityBoundingSet= (as setpriv
/// arguments), UMask=, LimitNOFILE=, and NoNewPrivileges=yes.
#[derive(Clone, Copy)]
struct UnitRun<'a> {
    root: &'a Path,
    exec_start: &'a str,
    caps: &'a [String],
    umask: u32,
    nofile: u64,
}

/// The socket unit's socket: ListenStream=, FileDescriptorName=,
/// SocketMode=.
struct Handed<'a> {
    path: &'a str,
    name: &'a str,
    mode: u32,
}

impl UnitRun<'_> {
    /// Start ExecStart= in the root, output to `log_path`, with the socket
    /// handed over as fd 3 when `handed` is given.
    fn spawn(&self, handed: Option<Handed>, log_path: &Path) -> Proc {
        let log = fs::File::create(log_path).unwrap();
        let script = format!(
            "export LISTEN_PID=$$; exec setpriv --no-new-privs --bounding-set=-all,{} {}",
            self.caps.join(","),
            self.exec_start
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(h) = &handed {
            cmd.env("LISTEN_FDS", "1").env("LISTEN_FDNAMES", h.name);
        }
        let setup = socket_activation::prepare(
            self.root,
            handed.map(|h| (h.path, h.mode)),
            self.umask,
            self.nofile,
        );
        // SAFETY: the closure only makes async-signal-safe system calls on
        // memory prepared before the fork (see socket_activation::in_child).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || setup.in_child());
        }
        Proc::spawn("installed mailstow", &mut cmd, false)
    }
}

/// What systemd does between fork and exec for a (socket-activated)
/// service, done by hand: enter the root, bind and listen on the socket
/// unit's path there when there is one (so its address is the one the
/// configuration names) and hand it over as fd 3, set the umask and the
/// open-file limit.
mod socket_activation {
    use std::ffi::CString;
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    pub struct HandOver {
        root: CString,
        socket: Option<Socket>,
        umask: libc::mode_t,
        nofile: libc::rlim_t,
    }

    struct Socket {
        path: CString,
        addr: libc::sockaddr_un,
        mode: libc::mode_t,
    }

    pub fn prepare(root: &Path, socket: Option<(&str, u32)>, umask: u32, nofile: u64) -> HandOver {
        let socket = socket.map(|(path, mode)| {
            // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
            let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            assert!(path.len() < addr.sun_path.len(), "socket path too long");
            for (d, s) in addr.sun_path.iter_mut().zip(path.as_bytes()) {
                *d = *s as libc::c_char;
            }
            Socket {
                path: CString::new(path).expect("socket path"),
                addr,
                mode,
            }
        });
        // LimitNOFILE=, as far as this machine lets root raise it (a
        // container may withhold CAP_SYS_RESOURCE).
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
            0
        );
        let nofile = nofile.min(hard.rlim_max);
        HandOver {
            root: CString::new(root.as_os_str().as_bytes()).expect("root path"),
            socket,
            umask,
            nofile,
        }
    }

    fn check(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    impl HandOver {
        /// Runs in the forked child: system calls only, no allocation.
        pub fn in_child(&self) -> io::Result<()> {
            // SAFETY: each call gets pointers to memory owned by `self`,
            // alive for the call; none allocates or takes a lock.
            unsafe {
                check(libc::chroot(self.root.as_ptr()))?;
                check(libc::chdir(c"/".as_ptr()))?;
                if let Some(s) = &self.socket {
                    let fd = check(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0))?;
                    check(libc::bind(
                        fd,
                        std::ptr::addr_of!(s.addr).cast(),
                        std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                    ))?;
                    check(libc::chmod(s.path.as_ptr(), s.mode))?;
                    check(libc::listen(fd, 128))?;
                    if fd != 3 {
                        check(libc::dup2(fd, 3))?;
                        libc::close(fd);
                    }
                }
                libc::umask(self.umask);
                let limit = libc::rlimit {
                    rlim_cur: self.nofile,
                    rlim_max: self.nofile,
                };
                // Lowering the hard limit needs no privilege; raising it
                // past the machine's was ruled out in prepare().
                check(libc::setrlimit(libc::RLIMIT_NOFILE, &limit))?;
            }
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------
// Under a real systemd: the clean root booted in a container
// ---------------------------------------------------------------------------

#[test]
fn the_package_starts_reloads_and_stops_under_systemd_in_a_clean_debian_12() {
    assert_root("booting a container");
    let deb = deb();
    // A bootable minimal Debian (systemd as init), and the package.
    let root_dir = mailhost_root();
    let root = root_dir.path();
    fs::copy(deb, root.join("tmp/mailstow.deb")).unwrap();
    chroot_sh(root, "dpkg -i /tmp/mailstow.deb");
    let uid = getent(root, "passwd", "vmail")[2].clone();
    let gid = getent(root, "group", "vmail")[2].clone();
    let users = root.join("etc/mailstow/users");
    let mut text = fs::read_to_string(&users).unwrap();
    text.push_str(&format!("{ALICE}:{{PLAIN}}secret:{uid}:{gid}::::\n"));
    fs::write(&users, text).unwrap();

    let ct = Container::boot(root, Network::Host);
    // Started at boot, through the socket unit, and notified ready.
    let (status, state) = ct.exec(&[
        "systemctl",
        "is-active",
        "mailstow.socket",
        "mailstow.service",
    ]);
    assert!(
        status.success(),
        "{state}\n{}\n{}",
        ct.journal("mailstow.service"),
        ct.boot_log()
    );
    let show = ct
        .exec(&[
            "systemctl",
            "show",
            "mailstow.service",
            "-p",
            "Type",
            "-p",
            "NRestarts",
            "-p",
            "TriggeredBy",
        ])
        .1;
    assert!(
        show.contains("Type=notify") && show.contains("NRestarts=0"),
        "{show}"
    );
    assert!(show.contains("TriggeredBy=mailstow.socket"), "{show}");
    let journal = ct.journal("mailstow.service");
    assert!(journal.contains("socket from systemd"), "{journal}");

    // The sandbox is applied: the server runs as vmail with no
    // capability, no new privileges and a system-call filter.
    let main_pid = ct
        .exec(&[
            "systemctl",
            "show",
            "mailstow.service",
            "-p",
            "MainPID",
            "--value",
        ])
        .1;
    let main_pid = main_pid.trim().to_owned();
    let (_, status_text) = ct.exec(&["cat", &format!("/proc/{main_pid}/status")]);
    let field = |k: &str| {
        status_text
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(field("Uid:"), uid, "{status_text}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status_text}");
    assert_eq!(field("NoNewPrivs:"), "1", "{status_text}");
    assert_eq!(field("Seccomp:"), "2", "{status_text}");

    // A delivery over the socket systemd made in Postfix's private/.
    let socket = root.join("var/spool/postfix/private/mailstow");
    let mut c = LmtpClient::unix(&socket);
    c.lhlo();
    let r = c.deliver(
        "s@example.net",
        &[ALICE],
        &message("s@example.net", ALICE, "under systemd", "hi\n"),
    );
    assert_eq!(code(&r[0]), 250, "{r:?}");
    c.quit();
    let files = Maildir::of(&root.join("var/vmail"), ALICE).messages("INBOX");
    assert_eq!(files.len(), 1);

    // systemctl reload: SIGHUP through ExecReload, RELOADING then READY.
    let (status, text) = ct.exec(&["systemctl", "reload", "mailstow.service"]);
    assert!(
        status.success(),
        "{text}\n{}",
        ct.journal("mailstow.service")
    );
    let reloaded = poll(TIMEOUT, || {
        ct.journal("mailstow.service")
            .contains("configuration reloaded")
            .then_some(())
    });
    assert!(reloaded.is_some(), "{}", ct.journal("mailstow.service"));
    assert_eq!(
        ct.exec(&["systemctl", "is-active", "mailstow.service"])
            .1
            .trim(),
        "active"
    );

    // systemctl stop: SIGTERM, a clean exit, nothing left running.
    let (status, text) = ct.exec(&["systemctl", "stop", "mailstow.service"]);
    assert!(status.success(), "{text}");
    let journal = ct.journal("mailstow.service");
    assert!(journal.contains("stopped"), "{journal}");
    let result = ct
        .exec(&[
            "systemctl",
            "show",
            "mailstow.service",
            "-p",
            "Result",
            "--value",
        ])
        .1;
    assert_eq!(result.trim(), "success", "{journal}");
}
