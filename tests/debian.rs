//! Clean Debian 12 roots for the package and install tests: the mirror
//! taken from this machine's apt sources, roots made by debootstrap once per
//! machine and cached as tars under /var/cache/mailstow-test, and a root
//! booted under `systemd-nspawn --boot`. Must not install anything into the
//! host's own /etc or /usr (apt and dpkg run only inside the roots), name a
//! mirror itself, or leave a container running.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, poll, run, tail, Proc, TIMEOUT};

/// Where the roots are cached, outside any checkout.
pub const CACHE_DIR: &str = "/var/cache/mailstow-test";
/// The suite of the roots (and of the machine the tests are written for).
const SUITE: &str = "bookworm";
/// What the mail-host root holds beyond minbase: systemd to boot it, and
/// the .debs (downloaded, not installed) of the peers README.md tells an
/// admin to install with the package, so that `apt install` in a container
/// without network finds them. Change it and the cache name changes too.
const MAILHOST_INSTALLED: &[&str] = &["systemd", "systemd-sysv", "dbus"];
pub const MAILHOST_PEERS: &[&str] = &[
    "postfix",
    "dovecot-imapd",
    "dovecot-pop3d",
    "dovecot-managesieved",
];

/// A command's exit status and output (stdout then stderr), whatever the
/// status; stdin is /dev/null.
pub fn output(cmd: &mut Command) -> (ExitStatus, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// The Debian mirror this machine's apt sources name for [`SUITE`] (one-line
/// `deb URI SUITE ...` entries and deb822 `.sources` files), never the
/// security archive. Panics naming the files when there is none: the tests
/// do not pick a mirror of their own.
pub fn debian_mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        let found = match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => mirror_in_deb822(&text),
            Some("list") => mirror_in_one_line(&text),
            _ => None,
        };
        if let Some(uri) = found {
            return uri;
        }
    }
    panic!("no apt source on this machine names a mirror for {SUITE} (read {files:?})");
}

/// The first `deb URI SUITE` line's URI.
fn mirror_in_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        // Skip an options block: deb [signed-by=...] URI SUITE
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == SUITE).then(|| uri.trim_end_matches('/').to_owned())
    })
}

/// The first deb822 stanza of type deb whose Suites hold [`SUITE`]: its
/// first URI.
fn mirror_in_deb822(text: &str) -> Option<String> {
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim().to_owned())
            })
        };
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let deb = field("Types")?.split_whitespace().any(|t| t == "deb");
        let suite = field("Suites")?.split_whitespace().any(|s| s == SUITE);
        let uri = field("URIs")?.split_whitespace().next()?.to_owned();
        (enabled && deb && suite).then(|| uri.trim_end_matches('/').to_owned())
    })
}

/// A tar under [`CACHE_DIR`], made by `build` into a fresh directory the
/// first time (under the host lock, so parallel tests build it once; so
/// `build` must not take that lock itself) and renamed into place only when
/// complete.
fn cached_tar(name: &str, build: impl FnOnce(&Path)) -> PathBuf {
    let cache = Path::new(CACHE_DIR).join(name);
    if cache.is_file() {
        return cache;
    }
    let _lock = util::host_lock();
    if cache.is_file() {
        return cache;
    }
    let started = Instant::now();
    fs::create_dir_all(CACHE_DIR).expect("mkdir the root cache");
    let dir = tempfile::Builder::new()
        .prefix("root-")
        .tempdir_in(CACHE_DIR)
        .expect("temp dir for a root");
    build(dir.path());
    let partial = cache.with_extension("tar.partial");
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&partial)
        .arg("."));
    fs::rename(&partial, &cache).expect("rename the root tar");
    eprintln!("debian: built {name} in {:.1?}", started.elapsed());
    cache
}

/// Unpack `tar` into a fresh directory under the target dir.
fn unpack(tar: &Path) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix("debian-root-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir for the root");
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(root.path())
        .arg("-xf")
        .arg(tar));
    root
}

/// `sh -c SCRIPT` inside `root` by chroot, non-interactive apt; panics with
/// the output on failure.
pub fn chroot_sh(root: &Path, script: &str) -> String {
    run(Command::new("chroot")
        .arg(root)
        .args(["sh", "-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
}

/// The minbase tar: debootstrap (installed when missing) from the
/// machine's own mirror, with adduser and init-system-helpers.
fn minbase_tar() -> PathBuf {
    // Before the cache's lock: the host lock is not re-entrant.
    util::apt_install_missing(&["/usr/sbin/debootstrap"], &["debootstrap"]);
    cached_tar(&format!("{SUITE}-minbase.tar"), |dir| {
        run(Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=adduser,init-system-helpers",
                SUITE,
            ])
            .arg(dir)
            .arg(debian_mirror()));
    })
}

/// A clean Debian 12 (minbase, with adduser and init-system-helpers) root
/// in a fresh directory.
pub fn minbase_root() -> tempfile::TempDir {
    unpack(&minbase_tar())
}

/// A clean Debian 12 that boots: minbase with systemd and dbus installed,
/// and the .debs of [`MAILHOST_PEERS`] (and their dependencies and
/// recommendations, as a plain `apt install` takes them) waiting in apt's
/// archive cache, so that a container without network can install them.
pub fn mailhost_root() -> tempfile::TempDir {
    let base = minbase_tar();
    let name = format!(
        "{SUITE}-mailhost-{}.tar",
        MAILHOST_INSTALLED
            .iter()
            .chain(MAILHOST_PEERS)
            .copied()
            .collect::<Vec<_>>()
            .join("+")
    );
    let tar = cached_tar(&name, |dir| {
        minbase_with(dir, &base);
        chroot_sh(
            dir,
            &format!(
                "apt-get update -q && \
                 apt-get install -y -q --no-install-recommends {} && \
                 apt-get install -y -q --download-only {}",
                MAILHOST_INSTALLED.join(" "),
                MAILHOST_PEERS.join(" ")
            ),
        );
    });
    unpack(&tar)
}

/// Unpacks the minbase tar `base` into `dir`, with the host's resolver
/// configuration so apt can reach the mirror.
fn minbase_with(dir: &Path, base: &Path) {
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-C")
        .arg(dir)
        .arg("-xf")
        .arg(base));
    fs::copy("/etc/resolv.conf", dir.join("etc/resolv.conf")).expect("resolv.conf");
}

/// A Debian 12 root (minbase) with `packages` installed by apt (their
/// services are not started: policy-rc.d refuses), cached as a tar named
/// after them, in a fresh directory. For peers whose packages conflict
/// with the host's (Exim and OpenSMTPD are each the system MTA), run
/// from the root with [`in_root`].
pub fn peer_root(packages: &[&str]) -> tempfile::TempDir {
    let base = minbase_tar();
    let name = format!("{SUITE}-peers-{}.tar", packages.join("+"));
    let tar = cached_tar(&name, |dir| {
        minbase_with(dir, &base);
        fs::write(dir.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n").expect("policy-rc.d");
        run(Command::new("chmod")
            .arg("755")
            .arg(dir.join("usr/sbin/policy-rc.d")));
        chroot_sh(
            dir,
            &format!(
                "apt-get update -q && apt-get install -y -q --no-install-recommends {}",
                packages.join(" ")
            ),
        );
    });
    unpack(&tar)
}

/// A command that runs `program args` chrooted into `root`, in a private
/// mount namespace where each of `binds` (host paths: directories or
/// files) is bind-mounted at the same path inside the root, so the peer
/// and the test see the same files (sockets included). The network is the
/// host's (loopback ports are shared).
pub fn in_root(root: &Path, binds: &[&Path], program: &str, args: &[&str]) -> Command {
    let mut script = String::from("set -e\n");
    for b in binds {
        let inside = root.join(b.strip_prefix("/").expect("absolute bind path"));
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
        if b.is_dir() {
            script.push_str(&format!("mkdir -p {}\n", q(&inside)));
        } else {
            script.push_str(&format!(
                "mkdir -p {} && touch {}\n",
                q(inside.parent().expect("parent")),
                q(&inside)
            ));
        }
        script.push_str(&format!("mount --bind {} {}\n", q(b), q(&inside)));
    }
    script.push_str("exec chroot \"$0\" \"$@\"\n");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(root)
        .arg(program)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

/// The number after `key` in /proc/PID/status (the first of several).
pub fn proc_status(pid: u32, key: &str) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
}

/// `getent DB KEY` inside the root, split on ':'.
pub fn getent(root: &Path, db: &str, key: &str) -> Vec<String> {
    run(Command::new("chroot").arg(root).args(["getent", db, key]))
        .trim()
        .split(':')
        .map(str::to_owned)
        .collect()
}

/// A Debian root booted by `systemd-nspawn --boot` (systemd as the
/// container's PID 1), powered off on drop.
pub struct Container {
    nspawn: Proc,
    /// The host pid of the container's systemd.
    init: u32,
    log: PathBuf,
}

/// The container's network.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's (what it binds, the host sees on its own addresses).
    Host,
    /// Its own, with only a loopback interface: fixed ports (25, 143, 110,
    /// 4190) cannot collide with anything on the host; host programs reach
    /// it through [`Container::net_command`].
    Private,
}

impl Container {
    /// Boot `root`; panics when the container does not boot.
    pub fn boot(root: &Path, network: Network) -> Container {
        util::apt_install_missing(&["/usr/bin/systemd-nspawn"], &["systemd-container"]);
        // Inside the root, so it goes with it.
        let log = root.join("nspawn-boot.log");
        let file = fs::File::create(&log).expect("create the boot log");
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args([
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--console=passive",
        ]);
        if network == Network::Private {
            cmd.arg("--private-network");
        }
        cmd.arg("--directory")
            .arg(root)
            .arg("--boot")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file);
        let nspawn = Proc::spawn("systemd-nspawn", &mut cmd, true);
        // The container's systemd is nspawn's child.
        let init = poll(Duration::from_secs(30), || {
            let children =
                fs::read_to_string(format!("/proc/{0}/task/{0}/children", nspawn.pid())).ok()?;
            let pid: u32 = children.split_whitespace().next()?.parse().ok()?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == "systemd").then_some(pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "systemd-nspawn did not start the container's systemd:\n{}",
                util::read_text(&log)
            )
        });
        let c = Container { nspawn, init, log };
        // Booted: the default target reached (or the boot finished with a
        // failed unit, which the caller sees in systemctl's answers).
        let booted = poll(TIMEOUT, || {
            let (_, state) = c.exec(&["systemctl", "is-system-running"]);
            matches!(state.trim(), "running" | "degraded").then_some(())
        });
        assert!(
            booted.is_some(),
            "the container did not boot:\n{}",
            c.boot_log()
        );
        c
    }

    /// A command inside the container: its mounts, pids and network.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.init.to_string())
            .args(["--mount", "--uts", "--ipc", "--pid", "--net", "--"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("SYSTEMD_PAGER", "")
            .env("SYSTEMD_COLORS", "0");
        cmd
    }

    /// A host program in the container's network only (its loopback), with
    /// the host's files: for clients the root does not have.
    pub fn net_command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.init.to_string())
            .args(["--net", "--"])
            .arg(program);
        cmd
    }

    /// Run a command inside the container.
    pub fn exec(&self, args: &[&str]) -> (ExitStatus, String) {
        output(&mut self.command(args))
    }

    /// `sh -c SCRIPT` inside the container (non-interactive apt); panics
    /// with the output unless it succeeds.
    pub fn sh(&self, script: &str) -> String {
        let (status, text) = output(
            self.command(&["sh", "-c", script])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        );
        assert!(status.success(), "{script}\nfailed ({status}):\n{text}");
        text
    }

    pub fn boot_log(&self) -> String {
        tail(&util::read_text(&self.log), 40)
    }

    /// The journal of one unit, as text.
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "--no-pager", "-o", "cat", "-u", unit])
            .1
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.exec(&["systemctl", "poweroff"]);
        if self.nspawn.wait_exit(Duration::from_secs(30)).is_none() {
            self.nspawn.terminate(Duration::from_secs(10));
        }
    }
}

#[test]
fn the_mirror_is_read_from_one_line_and_deb822_sources() {
    assert_eq!(
        mirror_in_one_line(
            "# deb http://old/ bookworm main\n\
             deb-src http://src/ bookworm main\n\
             deb [signed-by=/k.gpg arch=amd64] http://m.example/debian/ bookworm main\n"
        )
        .as_deref(),
        Some("http://m.example/debian")
    );
    assert_eq!(
        mirror_in_one_line("deb http://m.example/debian-security bookworm-security main\n"),
        None
    );
    let deb822 =
        "Types: deb\nURIs: http://sec.example/debian-security\nSuites: bookworm-security\n\n\
                  Types: deb deb-src\nURIs: http://m.example/debian http://other/\n\
                  Suites: bookworm bookworm-updates\nComponents: main\n";
    assert_eq!(
        mirror_in_deb822(deb822).as_deref(),
        Some("http://m.example/debian")
    );
    let disabled = "Enabled: no\nTypes: deb\nURIs: http://m.example/debian\nSuites: bookworm\n";
    assert_eq!(mirror_in_deb822(disabled), None);
}
