//! Shared helpers of the integration tests: host preparation (the `vmail`
//! user, the host-wide lock), free loopback ports, polling with a deadline,
//! child processes stopped by PID, the `Mailstow` fixture (config with extra
//! tables, passwd-file, users' active Sieve scripts, `mailstow serve`, log
//! capture), a raw-line LMTP/SMTP client and Maildir inspection. Must not
//! bind anything but loopback (or, for a mailstow given `Options::listen`,
//! the address of a network namespace the test made), use a sleep as
//! synchronisation (poll with a deadline instead), or leave a process
//! behind: every child is stopped by PID on Drop, also when a test panics.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;

/// The domain of the test users.
pub const DOMAIN: &str = "example.org";
/// Every domain the private Postfix hands to mailstow.
pub const TEST_DOMAINS: &[&str] = &["example.org", "example.net"];
/// The password of every test user (Dovecot logins).
pub const PASSWORD: &str = "secret";
/// mailstow's `hostname`: greetings, Received and Maildir unique names.
pub const HOSTNAME: &str = "mx.test";
/// How long a test waits for anything that should happen "soon".
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// The file lock that serialises apt-get and useradd across test binaries.
pub const HOST_LOCK: &str = "/tmp/mailstow-test-apt.lock";

// ---------------------------------------------------------------------------
// Host preparation, commands, polling
// ---------------------------------------------------------------------------

/// Take the host-wide lock (flock on [`HOST_LOCK`]); released on drop.
pub fn host_lock() -> nix::fcntl::Flock<File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HOST_LOCK)
        .unwrap_or_else(|e| panic!("open {HOST_LOCK}: {e}"));
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock {HOST_LOCK}: {e}"))
}

/// Numeric owner of mail files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The `vmail` system user, created once when missing.
pub fn vmail() -> Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    *OWNER.get_or_init(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the end-to-end tests run as root: mailstow chowns mail, Postfix and Dovecot start as root"
        );
        let lookup = || nix::unistd::User::from_name("vmail").expect("getpwnam(vmail)");
        let user = match lookup() {
            Some(u) => u,
            None => {
                let _lock = host_lock();
                match lookup() {
                    Some(u) => u,
                    None => {
                        run(Command::new("useradd").args([
                            "--system",
                            "--user-group",
                            "--no-create-home",
                            "--shell",
                            "/usr/sbin/nologin",
                            "vmail",
                        ]));
                        lookup().expect("vmail exists after useradd")
                    }
                }
            }
        };
        Owner {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    })
}

/// Install Debian `packages` unless every one of `paths` exists already:
/// under the host lock (parallel test binaries never run apt-get at once),
/// checking again once it is held; panics when the paths are still missing.
pub fn apt_install_missing(paths: &[&str], packages: &[&str]) {
    let present = || paths.iter().all(|p| Path::new(p).exists());
    if present() {
        return;
    }
    let _lock = host_lock();
    if present() {
        return;
    }
    run(Command::new("apt-get").arg("update"));
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y"])
        .args(packages));
    assert!(
        present(),
        "{paths:?} still missing after installing {packages:?}"
    );
}

/// Make `cargo SUBCOMMAND` work: install crate `krate` at `version` with
/// `cargo install --locked` when it is missing (as on a fresh machine),
/// under the host lock, checking again once the lock is held.
pub fn ensure_cargo_subcommand(subcommand: &str, krate: &str, version: &str) {
    let works = || {
        Command::new("cargo")
            .args([subcommand, "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if works() {
        return;
    }
    let _lock = host_lock();
    if !works() {
        run(Command::new("cargo").args(["install", krate, "--locked", "--version", version]));
    }
}

/// Run a command to completion; panic with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command with `input` on its stdin, stdout and stderr captured;
/// its output whatever the status (the caller judges it). Panics only
/// when the command cannot be started or fed.
pub fn output_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .unwrap_or_else(|e| panic!("write to {cmd:?}: {e}"));
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {cmd:?}: {e}"))
}

/// Call `check` until it returns `Some` or `timeout` passes (then `None`).
/// The pause between calls grows from 2 ms to 100 ms.
pub fn poll<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A temporary directory that other users (Dovecot's vmail processes, the
/// postfix user) can traverse.
pub fn temp_dir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    dir
}

/// Read a whole file as text (lossy), empty when it does not exist yet.
pub fn read_text(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `n` lines of a text, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

/// A loopback port that was free a moment ago (it was bound and dropped),
/// outside the ephemeral range; never the same port twice in one test
/// process.
pub fn free_port(ip: IpAddr) -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    assert!(ip.is_loopback(), "tests bind loopback only, not {ip}");
    // Below the kernel's ephemeral range (32768 and up by default), so that
    // no peer binding port 0 (a Dovecot or Postfix listener, an outgoing
    // connection) is handed a port given here and then released; spread by
    // pid so that test processes running at once rarely try the same one.
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let start = std::process::id().wrapping_mul(7_919);
    for i in 0..SPAN {
        let port = (FIRST + (start.wrapping_add(given.len() as u32 * 101 + i) % SPAN)) as u16;
        if given.contains(&port) || TcpListener::bind((ip, port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
    panic!("no free port on {ip} from {FIRST} to {}", FIRST + SPAN);
}

pub fn free_v4() -> SocketAddr {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    SocketAddr::new(ip, free_port(ip))
}

pub fn free_v6() -> SocketAddr {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    SocketAddr::new(ip, free_port(ip))
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// A child process, stopped by PID on Drop: SIGTERM, wait, then SIGKILL.
pub struct Proc {
    name: String,
    child: Child,
    status: Option<ExitStatus>,
    /// The child leads its own process group (Postfix's master); the KILL
    /// fallback then hits the whole group so no daemon outlives the test.
    group_leader: bool,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, group_leader: bool) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_owned(),
            child,
            status: None,
            group_leader,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by PID (ignored once the child has been reaped).
    pub fn signal(&self, sig: Signal) {
        if self.status.is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
        }
    }

    /// The exit status if the child has exited, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid");
        }
        self.status
    }

    /// Wait up to `timeout` for the child to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll(timeout, || self.exited())
    }

    /// SIGTERM, wait up to `timeout`, then SIGKILL. Returns the status and
    /// whether the KILL was needed.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, bool) {
        if let Some(s) = self.exited() {
            return (s, false);
        }
        self.signal(Signal::SIGTERM);
        if let Some(s) = self.wait_exit(timeout) {
            return (s, false);
        }
        let pid = self.child.id() as i32;
        let target = if self.group_leader { -pid } else { pid };
        let _ = kill(Pid::from_raw(target), Signal::SIGKILL);
        let s = self.child.wait().expect("waitpid after SIGKILL");
        self.status = Some(s);
        eprintln!("{} (pid {pid}) ignored SIGTERM and was killed", self.name);
        (s, true)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(15));
        if self.group_leader {
            // Daemons the leader started and that are still alive.
            let _ = kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGKILL);
        }
    }
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

/// One Dovecot passwd-file line; the home is left empty so that mailstow
/// and Dovecot both use their default `{mail_root}/{domain}/{localpart}`.
pub fn passwd_line(address: &str, password: &str, owner: Owner) -> String {
    format!(
        "{address}:{{PLAIN}}{password}:{}:{}::::\n",
        owner.uid, owner.gid
    )
}

/// Write a passwd-file with every address and [`PASSWORD`], mode 0644 (the
/// Dovecot auth process reads it as the dovecot user).
pub fn write_passwd_file(path: &Path, addresses: &[String], owner: Owner) {
    let text: String = addresses
        .iter()
        .map(|a| passwd_line(a, PASSWORD, owner))
        .collect();
    fs::write(path, text).expect("write passwd-file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod passwd-file");
}

// ---------------------------------------------------------------------------
// The mailstow server
// ---------------------------------------------------------------------------

/// `mailstow serve --config` with stdout and stderr appended to `log_path`,
/// run by `launcher` when it is not empty (a command that execs its
/// arguments, such as systemd-socket-activate).
fn spawn_serve(config: &Path, log_path: &Path, launcher: &[String]) -> Proc {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("open mailstow.log");
    let bin = env!("CARGO_BIN_EXE_mailstow");
    let mut cmd = match launcher.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    Proc::spawn(
        "mailstow",
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log fd"))
            .stderr(log),
        false,
    )
}

/// What to configure in a mailstow under test.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses in the passwd-file (password [`PASSWORD`], owner vmail).
    pub users: Vec<String>,
    pub save_to_detail_mailbox: bool,
    /// Also listen on `[::1]:PORT`.
    pub ipv6: bool,
    /// Also listen on `unix:{dir}/lmtp.sock`.
    pub unix_socket: bool,
    pub socket_mode: u32,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_connections: usize,
    /// More `key = value` lines for the `[limits]` table.
    pub limits_extra: String,
    /// More `key = value` lines for the `[lmtp]` table.
    pub lmtp_extra: String,
    /// More `key = value` lines for the `[storage]` table.
    pub storage_extra: String,
    /// The `[users]` table's lines instead of the generated passwd-file
    /// ones (`passwd_file`, `recipient_delimiter = "+"`); `{dir}` is the
    /// instance's directory.
    pub users_toml: Option<String>,
    /// More `key = value` lines at the top level (`user`, `group`).
    pub top_extra: String,
    /// Appended to the end of the generated config: whole tables the
    /// fixture does not write itself (`[sieve]`, `[outbound]`, `[delivery]`).
    pub extra_toml: String,
    /// A command that runs mailstow (its program and arguments, the
    /// mailstow command line appended); `{tcp}` in an argument is the IPv4
    /// listener's address, `{unix}` the unix socket's path. Empty: mailstow
    /// runs directly.
    pub launcher: Vec<String>,
    /// The IPv4 listener's address instead of a free loopback port: an
    /// address in the network namespace the launcher runs mailstow in
    /// (tests/cluster.rs), which the test thread must be able to reach.
    pub listen: Option<SocketAddr>,
}

impl Options {
    pub fn new(users: &[&str]) -> Options {
        Options {
            users: users.iter().map(|u| u.to_string()).collect(),
            save_to_detail_mailbox: false,
            ipv6: false,
            unix_socket: false,
            socket_mode: 0o666,
            max_message_size: 52_428_800,
            max_recipients: 1000,
            max_connections: 256,
            limits_extra: String::new(),
            lmtp_extra: String::new(),
            storage_extra: String::new(),
            users_toml: None,
            top_extra: String::new(),
            extra_toml: String::new(),
            launcher: Vec::new(),
            listen: None,
        }
    }
}

/// A running `mailstow serve` with its own config, passwd-file and mail
/// root in a temp dir; stderr (and stdout) go to `log_path`.
pub struct Mailstow {
    /// Declared before `dir`: the process stops before its files go.
    proc: Proc,
    dir: TempDir,
    pub tcp: SocketAddr,
    pub tcp6: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
    pub config: PathBuf,
    pub mail_root: PathBuf,
    pub users_file: PathBuf,
    pub log_path: PathBuf,
    pub owner: Owner,
    /// [`Options::launcher`], `{tcp}` and `{unix}` replaced.
    launcher: Vec<String>,
}

/// chown to a numeric owner (the tests run as root).
pub fn chown(path: &Path, owner: Owner) {
    nix::unistd::chown(
        path,
        Some(nix::unistd::Uid::from_raw(owner.uid)),
        Some(nix::unistd::Gid::from_raw(owner.gid)),
    )
    .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A TOML basic string for `s`, quoted and escaped.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

impl Mailstow {
    /// Start with default options for these users.
    pub fn start(users: &[&str]) -> Mailstow {
        Mailstow::start_with(Options::new(users))
    }

    pub fn start_with(opts: Options) -> Mailstow {
        let owner = vmail();
        let dir = temp_dir("mailstow-e2e-");
        let mail_root = dir.path().join("mail");
        fs::create_dir(&mail_root).expect("mkdir mail root");
        fs::set_permissions(&mail_root, fs::Permissions::from_mode(0o755)).expect("chmod");
        let users_file = dir.path().join("users");
        write_passwd_file(&users_file, &opts.users, owner);

        let tcp = opts.listen.unwrap_or_else(free_v4);
        let tcp6 = opts.ipv6.then(free_v6);
        let unix = opts.unix_socket.then(|| dir.path().join("lmtp.sock"));
        let mut listen = vec![toml_str(&tcp.to_string())];
        if let Some(a) = tcp6 {
            listen.push(toml_str(&a.to_string()));
        }
        if let Some(p) = &unix {
            listen.push(toml_str(&format!("unix:{}", p.display())));
        }
        let config_text = format!(
            "hostname = {host}\n\
             {top_extra}\n\
             [lmtp]\n\
             listen = [{listen}]\n\
             socket_mode = \"{mode:04o}\"\n\
             save_to_detail_mailbox = {detail}\n\
             {lmtp_extra}\n\
             [storage]\n\
             mail_root = {root}\n\
             {storage_extra}\n\
             [users]\n\
             {users}\n\
             [limits]\n\
             max_message_size = {max}\n\
             max_recipients = {max_rcpt}\n\
             max_connections = {max_conn}\n\
             {limits_extra}\n\
             [log]\n\
             level = \"info\"\n\
             format = \"text\"\n\
             {extra_toml}\n",
            host = toml_str(HOSTNAME),
            listen = listen.join(", "),
            mode = opts.socket_mode,
            detail = opts.save_to_detail_mailbox,
            root = toml_str(&mail_root.to_string_lossy()),
            users = match &opts.users_toml {
                Some(t) => t.replace("{dir}", &dir.path().to_string_lossy()),
                None => format!(
                    "passwd_file = {}\nrecipient_delimiter = \"+\"",
                    toml_str(&users_file.to_string_lossy())
                ),
            },
            max = opts.max_message_size,
            max_rcpt = opts.max_recipients,
            max_conn = opts.max_connections,
            limits_extra = opts.limits_extra,
            lmtp_extra = opts.lmtp_extra,
            storage_extra = opts.storage_extra,
            top_extra = opts.top_extra,
            extra_toml = opts.extra_toml,
        );
        let config = dir.path().join("mailstow.toml");
        fs::write(&config, config_text).expect("write mailstow.toml");

        let log_path = dir.path().join("mailstow.log");
        let launcher: Vec<String> = opts
            .launcher
            .iter()
            .map(|a| {
                let a = a.replace("{tcp}", &tcp.to_string());
                match &unix {
                    Some(p) => a.replace("{unix}", &p.to_string_lossy()),
                    None => a,
                }
            })
            .collect();
        let proc = spawn_serve(&config, &log_path, &launcher);
        let mut m = Mailstow {
            proc,
            dir,
            tcp,
            tcp6,
            unix,
            config,
            mail_root,
            users_file,
            log_path,
            owner,
            launcher,
        };
        m.wait_ready();
        m
    }

    /// Wait until every listener accepts a connection.
    fn wait_ready(&mut self) {
        let mut tcp = vec![self.tcp];
        tcp.extend(self.tcp6);
        // A greeting, not only a connect: the listeners are bound (and
        // connects succeed) while the process is still root; it greets
        // only once it has given root up and started serving.
        for addr in tcp {
            self.wait_until(&format!("{addr} to greet"), |_| {
                LmtpClient::try_tcp(addr).ok()
            });
        }
        if let Some(path) = self.unix.clone() {
            self.wait_until(&format!("{} to greet", path.display()), |_| {
                LmtpClient::try_unix(&path).ok()
            });
        }
    }

    /// Poll `check` until it holds; panic with the log if mailstow exits or
    /// the timeout passes.
    pub fn wait_until<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&Mailstow) -> Option<T>,
    ) -> T {
        let mut exited = None;
        let found = poll(TIMEOUT, || {
            if let Some(v) = check(self) {
                return Some(Some(v));
            }
            exited = self.proc.exited();
            exited.map(|_| None)
        });
        match found {
            Some(Some(v)) => v,
            _ => panic!(
                "waiting for {what}: {}\nmailstow log:\n{}",
                match exited {
                    Some(s) => format!("mailstow exited with {s}"),
                    None => format!("timed out after {TIMEOUT:?}"),
                },
                tail(&self.log(), 60)
            ),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Everything mailstow wrote to stderr/stdout so far.
    pub fn log(&self) -> String {
        read_text(&self.log_path)
    }

    pub fn signal(&self, sig: Signal) {
        self.proc.signal(sig);
    }

    /// The exit status if mailstow has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// Wait for mailstow to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.proc.wait_exit(timeout) {
            Some(s) => s,
            None => panic!(
                "mailstow did not exit within {timeout:?}\nlog:\n{}",
                tail(&self.log(), 60)
            ),
        }
    }

    /// SIGTERM, wait, return the exit status; panics if a KILL was needed.
    pub fn stop(&mut self) -> ExitStatus {
        let (status, killed) = self.proc.terminate(TIMEOUT);
        assert!(
            !killed,
            "mailstow did not exit on SIGTERM within {TIMEOUT:?}\nlog:\n{}",
            tail(&self.log(), 60)
        );
        status
    }

    /// Start `mailstow serve` again with the same configuration (after it
    /// exited or was killed); the log is appended to.
    pub fn restart(&mut self) {
        assert!(
            self.proc.exited().is_some(),
            "restart needs a stopped mailstow"
        );
        self.proc = spawn_serve(&self.config, &self.log_path, &self.launcher);
        self.wait_ready();
    }

    /// A client on the IPv4 listener (greeting already read).
    pub fn connect(&self) -> LmtpClient {
        LmtpClient::tcp(self.tcp)
    }

    /// The Maildir of `address` under the default home.
    pub fn maildir(&self, address: &str) -> Maildir {
        Maildir::of(&self.mail_root, address)
    }

    /// The default home of `address`: `{mail_root}/{domain}/{localpart}`.
    pub fn home(&self, address: &str) -> PathBuf {
        let (local, domain) = address.rsplit_once('@').expect("address has @");
        self.mail_root.join(domain).join(local)
    }

    /// Make `text` the active Sieve script of `address`
    /// (`{home}/.dovecot.sieve`, the default `[sieve] script`), as
    /// ManageSieve or an editor would: written beside it, then renamed over
    /// it. The home is created like mailstow does (0700, the domain dir
    /// 0711) and the script belongs to the user (vmail), mode 0600.
    /// Returns the script's path.
    pub fn install_sieve(&self, address: &str, text: &str) -> PathBuf {
        let home = self.home(address);
        let domain_dir = home.parent().expect("home has a parent");
        for (dir, mode) in [(domain_dir, 0o711), (home.as_path(), 0o700)] {
            if !dir.exists() {
                fs::create_dir(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
                fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("chmod");
                if dir == home {
                    chown(dir, self.owner);
                }
            }
        }
        let script = home.join(".dovecot.sieve");
        let tmp = home.join(".dovecot.sieve.tmp");
        fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).expect("chmod script");
        chown(&tmp, self.owner);
        fs::rename(&tmp, &script).unwrap_or_else(|e| panic!("rename to {}: {e}", script.display()));
        script
    }
}

impl Drop for Mailstow {
    fn drop(&mut self) {
        self.proc.terminate(Duration::from_secs(15));
        if std::thread::panicking() {
            eprintln!(
                "---- mailstow log ({}) ----\n{}",
                self.log_path.display(),
                tail(&self.log(), 80)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// A raw-line LMTP / SMTP client
// ---------------------------------------------------------------------------

/// TCP or unix stream.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn try_clone(&self) -> io::Result<Conn> {
        Ok(match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(Some(t)),
            Conn::Unix(s) => s.set_read_timeout(Some(t)),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// Speaks LMTP (or SMTP: the line protocol is the same) one raw line at a
/// time. Replies are the lines without CRLF, e.g. `["250-mx.test", "250 8BITMIME"]`.
pub struct LmtpClient {
    reader: BufReader<Conn>,
    writer: Conn,
    pub greeting: Vec<String>,
}

/// The code of a reply (0 when it has none).
pub fn code(reply: &[String]) -> u16 {
    reply
        .last()
        .and_then(|l| l.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

impl LmtpClient {
    pub fn tcp(addr: SocketAddr) -> LmtpClient {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        LmtpClient::new(Conn::Tcp(s))
    }

    pub fn unix(path: &Path) -> LmtpClient {
        let s =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        LmtpClient::new(Conn::Unix(s))
    }

    /// Connect without panicking (for clients racing a server that may be
    /// killed): Err if it cannot connect or sends no 220.
    pub fn try_tcp(addr: SocketAddr) -> io::Result<LmtpClient> {
        LmtpClient::try_greeted(Conn::Tcp(TcpStream::connect_timeout(
            &addr,
            Duration::from_secs(10),
        )?))
    }

    /// As [`LmtpClient::try_tcp`], on a unix socket.
    pub fn try_unix(path: &Path) -> io::Result<LmtpClient> {
        LmtpClient::try_greeted(Conn::Unix(UnixStream::connect(path)?))
    }

    /// A client on `conn` once its 220 greeting is read.
    fn try_greeted(conn: Conn) -> io::Result<LmtpClient> {
        conn.set_read_timeout(Duration::from_secs(120))?;
        let writer = conn.try_clone()?;
        let mut c = LmtpClient {
            reader: BufReader::new(conn),
            writer,
            greeting: Vec::new(),
        };
        c.greeting = c.try_read_reply()?;
        if code(&c.greeting) != 220 {
            return Err(io::Error::other(format!("greeting {:?}", c.greeting)));
        }
        Ok(c)
    }

    /// Write without panicking.
    pub fn try_write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }

    /// MAIL FROM, a RCPT TO each and DATA in one write (pipelined), then
    /// their replies, without panicking: an error for any reply of 400 or
    /// more (the transaction was not opened for all of them).
    pub fn try_envelope(&mut self, from: &str, rcpts: &[&str]) -> io::Result<()> {
        let mut head = format!("MAIL FROM:<{from}>\r\n").into_bytes();
        for u in rcpts {
            head.extend_from_slice(format!("RCPT TO:<{u}>\r\n").as_bytes());
        }
        head.extend_from_slice(b"DATA\r\n");
        self.try_write(&head)?;
        for _ in 0..rcpts.len() + 2 {
            let r = self.try_read_reply()?;
            if code(&r) >= 400 {
                return Err(io::Error::other(format!("{r:?}")));
            }
        }
        Ok(())
    }

    /// A command and its reply, without panicking.
    pub fn try_cmd(&mut self, line: &str) -> io::Result<Vec<String>> {
        self.try_write(format!("{line}\r\n").as_bytes())?;
        self.try_read_reply()
    }

    fn new(conn: Conn) -> LmtpClient {
        conn.set_read_timeout(Duration::from_secs(120))
            .expect("set read timeout");
        let writer = conn.try_clone().expect("dup socket");
        let mut c = LmtpClient {
            reader: BufReader::new(conn),
            writer,
            greeting: Vec::new(),
        };
        c.greeting = c.read_reply();
        assert_eq!(code(&c.greeting), 220, "greeting: {:?}", c.greeting);
        c
    }

    /// Read one (possibly multi-line) reply; Err on EOF or a broken stream.
    pub fn try_read_reply(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut buf = Vec::new();
            let n = self.reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {lines:?}"),
                ));
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Ok(lines);
            }
        }
    }

    pub fn read_reply(&mut self) -> Vec<String> {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .and_then(|_| self.writer.flush())
            .unwrap_or_else(|e| panic!("write: {e}"));
    }

    /// Send one command line (CRLF added) and read its reply.
    pub fn cmd(&mut self, line: &str) -> Vec<String> {
        self.write_raw(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    pub fn lhlo(&mut self) -> Vec<String> {
        let r = self.cmd("LHLO client.test");
        assert_eq!(code(&r), 250, "LHLO: {r:?}");
        r
    }

    /// Send the message dot-stuffed, then `.`, and read `replies` replies
    /// (LMTP: one per accepted recipient; SMTP: one).
    pub fn send_data(&mut self, msg: &[u8], replies: usize) -> Vec<Vec<String>> {
        let mut wire = dot_stuff(msg);
        wire.extend_from_slice(b".\r\n");
        self.write_raw(&wire);
        (0..replies).map(|_| self.read_reply()).collect()
    }

    /// A whole LMTP transaction that expects MAIL, every RCPT and DATA to be
    /// accepted; returns the per-recipient replies to the final dot.
    pub fn deliver(&mut self, from: &str, rcpts: &[&str], msg: &[u8]) -> Vec<Vec<String>> {
        let utf8 = !from.is_ascii() || rcpts.iter().any(|r| !r.is_ascii());
        let mail = if utf8 {
            format!("MAIL FROM:<{from}> SMTPUTF8")
        } else {
            format!("MAIL FROM:<{from}>")
        };
        let r = self.cmd(&mail);
        assert_eq!(code(&r), 250, "{mail}: {r:?}");
        for rcpt in rcpts {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>"));
            assert_eq!(code(&r), 250, "RCPT TO:<{rcpt}>: {r:?}");
        }
        let r = self.cmd("DATA");
        assert_eq!(code(&r), 354, "DATA: {r:?}");
        self.send_data(msg, rcpts.len())
    }

    /// QUIT and read the reply if there is one.
    pub fn quit(mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
        let _ = self.try_read_reply();
    }
}

/// Double every `.` that starts a line and make sure the text ends in CRLF.
pub fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + msg.len() / 64 + 3);
    let mut line_start = true;
    for &b in msg {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else if out.ends_with(b"\n") {
            out.pop();
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// A small RFC 5322 message with CRLF line ends; `body` may use `\n`.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    message_bytes(from, to, subject, body.as_bytes())
}

/// Like [`message`] with a body of arbitrary bytes (LF turned into CRLF).
pub fn message_bytes(from: &str, to: &str, subject: &str, body: &[u8]) -> Vec<u8> {
    static N: Mutex<u64> = Mutex::new(0);
    let n = {
        let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        *n
    };
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
         Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n\
         Message-ID: <test-{n}-{pid}@client.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        pid = std::process::id()
    )
    .into_bytes();
    m.extend_from_slice(&lf_to_crlf(body));
    if !m.ends_with(b"\r\n") {
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// Turn every bare LF into CRLF (what IMAP and POP3 send).
pub fn lf_to_crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 32);
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// LFs not preceded by CR: what `W=` adds to the file size.
pub fn bare_lf_count(bytes: &[u8]) -> u64 {
    let mut n = 0;
    let mut prev = 0u8;
    for &b in bytes {
        if b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = b;
    }
    n
}

/// The part after the header block (after the first empty line).
pub fn after_headers(msg: &[u8]) -> &[u8] {
    let crlf = find(msg, b"\r\n\r\n").map(|i| i + 4);
    let lf = find(msg, b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => &msg[a.min(b)..],
        (Some(a), None) | (None, Some(a)) => &msg[a..],
        (None, None) => &[],
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Maildir inspection
// ---------------------------------------------------------------------------

/// One message file in `new/` or `cur/`.
#[derive(Debug, Clone)]
pub struct MsgFile {
    pub path: PathBuf,
    pub name: String,
    /// `"new"` or `"cur"`.
    pub sub: &'static str,
    pub bytes: Vec<u8>,
}

impl MsgFile {
    /// The name up to `:` (the message's permanent identity).
    pub fn base(&self) -> &str {
        self.name.split(':').next().unwrap_or(&self.name)
    }

    /// `,S=` from the name.
    pub fn s_field(&self) -> Option<u64> {
        name_field(self.base(), ",S=")
    }

    /// `,W=` from the name.
    pub fn w_field(&self) -> Option<u64> {
        name_field(self.base(), ",W=")
    }

    /// The RFC822.SIZE the bytes have: size plus one per bare LF.
    pub fn vsize(&self) -> u64 {
        self.bytes.len() as u64 + bare_lf_count(&self.bytes)
    }
}

fn name_field(base: &str, key: &str) -> Option<u64> {
    let i = base.find(key)? + key.len();
    let digits: String = base[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// A user's Maildir++ (`~/Maildir`).
#[derive(Debug, Clone)]
pub struct Maildir {
    pub root: PathBuf,
}

impl Maildir {
    /// `{mail_root}/{domain}/{localpart}/Maildir`.
    pub fn of(mail_root: &Path, address: &str) -> Maildir {
        let (local, domain) = address.rsplit_once('@').expect("address has @");
        Maildir {
            root: mail_root.join(domain).join(local).join("Maildir"),
        }
    }

    /// The directory of a folder: `""` or `"INBOX"` is the root, `"Lists.rust"`
    /// is `.Lists.rust` (the name must already be in modified UTF-7).
    pub fn folder(&self, name: &str) -> PathBuf {
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            self.root.clone()
        } else {
            self.root.join(format!(".{name}"))
        }
    }

    /// Messages in `new/` and `cur/` of a folder, sorted by name; empty when
    /// the folder does not exist.
    pub fn messages(&self, folder: &str) -> Vec<MsgFile> {
        let dir = self.folder(folder);
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for e in entries {
                let e = e.expect("readdir");
                let path = e.path();
                let Ok(bytes) = fs::read(&path) else {
                    continue; // renamed between readdir and open
                };
                out.push(MsgFile {
                    name: e.file_name().to_string_lossy().into_owned(),
                    path,
                    sub,
                    bytes,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Names in `tmp/` of a folder.
    pub fn tmp_files(&self, folder: &str) -> Vec<String> {
        fs::read_dir(self.folder(folder).join("tmp"))
            .map(|d| {
                d.map(|e| {
                    e.expect("readdir")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
            })
            .unwrap_or_default()
    }

    /// Poll until the folder holds at least `n` messages.
    pub fn wait_messages(&self, folder: &str, n: usize) -> Vec<MsgFile> {
        poll(TIMEOUT, || {
            Some(self.messages(folder)).filter(|m| m.len() >= n)
        })
        .unwrap_or_else(|| {
            panic!(
                "{}: expected {n} message(s) in {folder:?}, found {}",
                self.root.display(),
                self.messages(folder).len()
            )
        })
    }
}

/// Check a delivered file against the naming, size, mode and owner rules:
/// `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>`, S == file size,
/// W == size + bare LFs, mode 0600, owned by `owner`.
pub fn assert_maildir_file(m: &MsgFile, owner: Owner) {
    let base = m.base();
    let ok = (|| {
        let (sec, rest) = base.split_once('.')?;
        let rest = rest.strip_prefix('M')?;
        let (usec, rest) = rest.split_once('P')?;
        let (pid, rest) = rest.split_once('Q')?;
        let (q, rest) = rest.split_once('.')?;
        let (host, _) = rest.split_once(",S=")?;
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        Some(numeric(sec) && numeric(usec) && numeric(pid) && numeric(q) && host == HOSTNAME)
    })();
    assert_eq!(
        ok,
        Some(true),
        "{}: not <sec>.M<usec>P<pid>Q<n>.{HOSTNAME},S=..,W=..",
        m.name
    );
    assert_eq!(
        m.s_field(),
        Some(m.bytes.len() as u64),
        "{}: S= is not the file size",
        m.name
    );
    assert_eq!(
        m.w_field(),
        Some(m.vsize()),
        "{}: W= is not size + bare LFs",
        m.name
    );
    let md = fs::metadata(&m.path).expect("stat message");
    assert_eq!(md.mode() & 0o7777, 0o600, "{}: mode", m.name);
    assert_eq!(
        (md.uid(), md.gid()),
        (owner.uid, owner.gid),
        "{}: owner",
        m.name
    );
}

/// A directory's permission bits and owner.
pub fn assert_dir(path: &Path, mode: u32, owner: Owner) {
    let md = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    assert!(md.is_dir(), "{} is not a directory", path.display());
    assert_eq!(
        md.mode() & 0o7777,
        mode,
        "{}: mode {:o}",
        path.display(),
        md.mode() & 0o7777
    );
    assert_eq!(
        (md.uid(), md.gid()),
        (owner.uid, owner.gid),
        "{}: owner",
        path.display()
    );
}

/// Whether `path` is a unix socket, and its permission bits.
pub fn socket_mode(path: &Path) -> Option<u32> {
    let md = fs::symlink_metadata(path).ok()?;
    md.file_type().is_socket().then_some(md.mode() & 0o7777)
}

/// What mailstow stores for message bytes sent to it: every CRLF made LF
/// (Maildir's custom; a lone CR stays).
pub fn stored_form(sent: &[u8]) -> Vec<u8> {
    mailstow_maildir::to_lf(sent)
}

/// The lines of `text` holding every one of `parts` (a peer's log).
pub fn lines_with(text: &str, parts: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|l| parts.iter().all(|p| l.contains(p)))
        .map(str::to_owned)
        .collect()
}

/// splitmix64: a small seeded generator, so that a run can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A run's seed: the number in the environment variable `var` (to replay
/// a run), else the clock's nanoseconds.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// Waits until `ready` (a daemon's listener answers) while `proc` runs:
/// false when it exits first or the wait times out.
pub fn until_ready(proc: &mut Proc, mut ready: impl FnMut() -> bool) -> bool {
    poll(TIMEOUT, || {
        if ready() {
            Some(true)
        } else {
            proc.exited().map(|_| false)
        }
    }) == Some(true)
}

/// The settings every private Dovecot IMAP of the tests starts with: its
/// own instance name and directories under `dir`, IMAP only, without TLS,
/// on 127.0.0.1:`port`, plain logins, `~/Maildir` with a `.` separator,
/// no chroots. The caller adds the user and password databases.
pub fn dovecot_imap_base(name: &str, dir: &Path, port: u16) -> String {
    format!(
        "instance_name = {name}-{port}\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         protocols = imap\n\
         listen = 127.0.0.1\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         mail_location = maildir:~/Maildir\n\
         namespace inbox {{\n  inbox = yes\n  separator = .\n}}\n\
         service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         service anvil {{\n  chroot =\n}}\n",
        d = dir.display(),
    )
}
