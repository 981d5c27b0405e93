//! A real power cut: a Debian 12 guest under QEMU (TCG) runs the test build
//! of mailstow with its mail on an ext4 disk of its own (`commit=60`,
//! writeback held back by the vm.dirty_* sysctls), LMTP clients on the host
//! deliver in bursts through a forwarded port and record every 250, and the
//! host SIGKILLs QEMU 1-8 s after each boot's first 250, so the guest's page
//! cache and uncommitted journal are lost. After every cut the host replays
//! the journal on a copy of the disk (a loop mount, QEMU dead) and checks
//! that each acknowledged copy is there exactly once and whole, that nothing
//! partial is in new/ or cur/, and that `mailstow index verify` agrees; then
//! the guest boots again on the disk as the cut left it. Controls with
//! `MAILSTOW_SKIP_FLUSH=file|dir` must lose acknowledged messages under the
//! same cuts, or the harness proves nothing. Must not name a mirror, sleep
//! to synchronise (the kill delays and the pauses between bursts are the
//! experiment; readiness is polled), write to the cached root image, or
//! leave a QEMU process or a loop mount behind, also on panic.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::debian;
use crate::util::{self, code, dot_stuff, find, poll, run, tail, LmtpClient, Maildir, Proc, Rng};

const USERS: [&str; 2] = ["alice@example.org", "bob@example.org"];
/// Concurrent LMTP connections.
const CLIENTS: usize = 4;
/// The cached kernel, initrd and root image, under [`debian::CACHE_DIR`].
/// Change the recipe in [`vm_image`] and this name changes too.
const VM_DIR: &str = "bookworm-powercut-vm-1";
/// What the root gets beyond minbase: Debian's kernel (and its initrd), and
/// busybox for `ip`.
const VM_PACKAGES: &[&str] = &["linux-image-amd64", "busybox"];
/// The only modules the initrd holds and loads (MODULES=list): the guest
/// has no udev after the initrd, so whatever it needs is loaded there.
const INITRD_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "virtio_net", "ext4"];
/// The guest's PID 1, in the root image: mounts the kernel filesystems and
/// the per-run test disk (`/dev/vdc`), then runs that disk's `init`.
const ROOT_INIT: &str = "#!/bin/sh\n\
# PID 1 of the power-cut guest: the root stays read-only.\n\
mount -t proc proc /proc\n\
mount -t sysfs sys /sys 2>/dev/null\n\
mount -t devtmpfs dev /dev 2>/dev/null\n\
mount -t tmpfs run /run\n\
mount -t tmpfs tmp /tmp\n\
mkdir /run/test\n\
mount -t ext4 -o ro /dev/vdc /run/test\n\
exec /run/test/init\n";
/// The per-run init: writeback held back (nothing is flushed but what is
/// fsynced, or after 60 s), the mail disk mounted with the journal
/// committed every 60 s, the network up, then mailstow.
const TEST_INIT: &str = "#!/bin/sh\n\
echo 6000 > /proc/sys/vm/dirty_expire_centisecs\n\
echo 0 > /proc/sys/vm/dirty_writeback_centisecs\n\
echo 90 > /proc/sys/vm/dirty_background_ratio\n\
echo 95 > /proc/sys/vm/dirty_ratio\n\
busybox ip link set lo up\n\
busybox ip addr add 10.0.2.15/24 dev eth0\n\
busybox ip link set eth0 up\n\
mount -t ext4 -o commit=60 /dev/vdb /mail || echo POWERCUT: mail mount failed\n\
echo POWERCUT: starting mailstow\n\
/run/test/mailstow serve --config /run/test/mailstow.toml &\n\
wait\n\
echo POWERCUT: mailstow exited\n\
echo o > /proc/sysrq-trigger\n\
while :; do sleep 3600; done\n";
/// The guest's LMTP port (forwarded from a free loopback port).
const GUEST_PORT: u16 = 24;
/// Booting under TCG takes ~20 s alone; more with other tests running.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);
/// The env variable that replays a run's choices.
const SEED_VAR: &str = "MAILSTOW_POWERCUT_SEED";
/// The env variable that sets the cuts of every run (the long one's,
/// and the controls' for a longer look).
const CUTS_VAR: &str = "MAILSTOW_POWERCUT_CUTS";

/// One run at a time: each guest wants a core of its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// The guest's images
// ---------------------------------------------------------------------------

/// The directory of `vmlinuz`, `initrd.img` and `root.img` (ext4, made by
/// `mke2fs -d`, used read-only): minbase from the machine's own mirror
/// plus [`VM_PACKAGES`], without the modules, docs and apt caches. Built
/// once per machine under the host lock, renamed into place when complete.
fn vm_image() -> PathBuf {
    util::apt_install_missing(
        &["/usr/bin/qemu-system-x86_64", "/usr/sbin/mke2fs"],
        &["qemu-system-x86", "e2fsprogs"],
    );
    let dir = Path::new(debian::CACHE_DIR).join(VM_DIR);
    if dir.join("root.img").is_file() {
        return dir;
    }
    // Before the lock: minbase_root takes it itself when it builds.
    let base = debian::minbase_root();
    let _lock = util::host_lock();
    if dir.join("root.img").is_file() {
        return dir;
    }
    let started = Instant::now();
    let r = base.path();
    fs::copy("/etc/resolv.conf", r.join("etc/resolv.conf")).expect("resolv.conf");
    write_exec(&r.join("usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n");
    fs::create_dir_all(r.join("etc/initramfs-tools/conf.d")).expect("mkdir conf.d");
    fs::write(
        r.join("etc/initramfs-tools/conf.d/powercut.conf"),
        "MODULES=list\n",
    )
    .expect("initramfs conf");
    let mut modules = fs::read_to_string(r.join("etc/initramfs-tools/modules")).unwrap_or_default();
    for m in INITRD_MODULES {
        modules.push_str(&format!("{m}\n"));
    }
    fs::write(r.join("etc/initramfs-tools/modules"), modules).expect("initramfs modules");
    debian::chroot_sh(
        r,
        &format!(
            "apt-get update -q && apt-get install -y -q --no-install-recommends {}",
            VM_PACKAGES.join(" ")
        ),
    );
    let partial = tempfile::Builder::new()
        .prefix("powercut-vm-")
        .tempdir_in(debian::CACHE_DIR)
        .expect("temp dir for the vm images");
    for entry in fs::read_dir(r.join("boot"))
        .expect("readdir boot")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("vmlinuz-") {
            fs::copy(entry.path(), partial.path().join("vmlinuz")).expect("copy vmlinuz");
        } else if name.starts_with("initrd.img-") {
            fs::copy(entry.path(), partial.path().join("initrd.img")).expect("copy initrd");
        }
    }
    for p in [
        "boot",
        "lib/modules",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "var/lib/apt/lists",
        "var/cache/apt",
    ] {
        let _ = fs::remove_dir_all(r.join(p));
    }
    fs::write(r.join("etc/resolv.conf"), "").expect("empty resolv.conf");
    write_exec(&r.join("sbin/powercut-init"), ROOT_INIT);
    fs::create_dir_all(r.join("mail")).expect("mkdir /mail");
    run(Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-L", "powercut-root", "-d"])
        .arg(r)
        .arg(partial.path().join("root.img"))
        .arg("384M"));
    for f in ["vmlinuz", "initrd.img", "root.img"] {
        assert!(partial.path().join(f).is_file(), "no {f} in the vm images");
    }
    fs::rename(partial.path(), &dir).expect("rename the vm images into place");
    eprintln!("powercut: built {VM_DIR} in {:.1?}", started.elapsed());
    dir
}

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

/// The config of mailstow: in the guest (`mail_root` /mail), or on the
/// host for `index verify` on the mounted copy.
fn config(listen: &str, mail_root: &Path, users: &Path, flush: &str) -> String {
    format!(
        "hostname = {host}\n\
         [lmtp]\n\
         listen = [{listen}]\n\
         [storage]\n\
         mail_root = {root}\n\
         flush = \"{flush}\"\n\
         [users]\n\
         passwd_file = {users}\n\
         recipient_delimiter = \"+\"\n\
         [log]\n\
         level = \"warn\"\n\
         format = \"text\"\n",
        host = util::toml_str(util::HOSTNAME),
        listen = util::toml_str(listen),
        root = util::toml_str(&mail_root.to_string_lossy()),
        users = util::toml_str(&users.to_string_lossy()),
    )
}

/// One run's disks and files: the mail disk (kept across boots), the test
/// disk (the binary, its config and users, the init), the host's config.
struct Rig {
    vm: PathBuf,
    work: tempfile::TempDir,
    mail_img: PathBuf,
    test_img: PathBuf,
    host_config: PathBuf,
    mount: PathBuf,
    port: u16,
}

impl Rig {
    fn new(vm: &Path, skip_flush: &str, flush: &str) -> Rig {
        let owner = util::vmail();
        let work = tempfile::Builder::new()
            .prefix("powercut-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("work dir");
        let w = work.path();
        let t = w.join("test");
        fs::create_dir(&t).expect("mkdir test");
        let bin = Path::new(env!("CARGO_BIN_EXE_mailstow"));
        fs::copy(bin, t.join("mailstow")).expect("copy the mailstow binary");
        let users: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
        util::write_passwd_file(&t.join("users"), &users, owner);
        fs::write(
            t.join("mailstow.toml"),
            config(
                &format!("0.0.0.0:{GUEST_PORT}"),
                Path::new("/mail"),
                Path::new("/run/test/users"),
                flush,
            ),
        )
        .expect("guest config");
        let init = if skip_flush.is_empty() {
            TEST_INIT.to_owned()
        } else {
            TEST_INIT.replace(
                "/run/test/mailstow serve",
                &format!("MAILSTOW_SKIP_FLUSH={skip_flush} /run/test/mailstow serve"),
            )
        };
        write_exec(&t.join("init"), &init);
        let size_mb = fs::metadata(bin).expect("stat binary").len() / (1 << 20) + 64;
        let test_img = w.join("test.img");
        run(Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-d"])
            .arg(&t)
            .arg(&test_img)
            .arg(format!("{size_mb}M")));
        fs::remove_dir_all(&t).expect("rm test dir");
        let mail_img = w.join("mail.img");
        run(Command::new("mke2fs")
            .args(["-q", "-t", "ext4", "-L", "mail"])
            .arg(&mail_img)
            .arg("512M"));
        let mount = w.join("check");
        fs::create_dir(&mount).expect("mkdir check");
        let host_users = w.join("users");
        util::write_passwd_file(&host_users, &users, owner);
        let host_config = w.join("host.toml");
        fs::write(
            &host_config,
            config(&util::free_v4().to_string(), &mount, &host_users, flush),
        )
        .expect("host config");
        Rig {
            vm: vm.to_owned(),
            mail_img,
            test_img,
            host_config,
            mount,
            port: util::free_port(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            work,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn console(&self, boot: usize) -> PathBuf {
        self.work.path().join(format!("console-{boot}.log"))
    }

    /// Boot the guest (TCG: this machine's KVM cannot run Debian's kernel)
    /// and wait until its mailstow greets through the forwarded port.
    fn boot(&self, boot: usize) -> Proc {
        let console = self.console(boot);
        let drive = |file: &Path, ro: bool| {
            format!(
                "file={},format=raw,if=virtio{}",
                file.display(),
                if ro { ",readonly=on" } else { "" }
            )
        };
        let stderr = fs::File::create(self.work.path().join(format!("qemu-{boot}.err")))
            .expect("qemu stderr file");
        let mut qemu = Proc::spawn(
            "qemu",
            Command::new("qemu-system-x86_64")
                .args(["-accel", "tcg", "-m", "512", "-smp", "1", "-nodefaults"])
                .args(["-display", "none", "-monitor", "none", "-no-reboot"])
                .arg("-serial")
                .arg(format!("file:{}", console.display()))
                .arg("-kernel")
                .arg(self.vm.join("vmlinuz"))
                .arg("-initrd")
                .arg(self.vm.join("initrd.img"))
                .arg("-append")
                .arg(
                    "console=ttyS0 root=/dev/vda ro init=/sbin/powercut-init \
                     net.ifnames=0 quiet panic=-1",
                )
                .arg("-drive")
                .arg(drive(&self.vm.join("root.img"), true))
                .arg("-drive")
                .arg(drive(&self.mail_img, false))
                .arg("-drive")
                .arg(drive(&self.test_img, true))
                .arg("-netdev")
                .arg(format!(
                    "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{}-:{GUEST_PORT}",
                    self.port
                ))
                .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
            false,
        );
        let addr = self.addr();
        let mut started = false;
        let up = poll(BOOT_TIMEOUT, || {
            if let Some(s) = qemu.exited() {
                return Some(Err(format!("qemu exited with {s}")));
            }
            if !started {
                // The greeting is asked for only once mailstow started:
                // a connection slirp cannot hand on hangs until it can.
                started = fs::read_to_string(&console)
                    .is_ok_and(|c| c.contains("POWERCUT: starting mailstow"));
                return None;
            }
            LmtpClient::try_tcp(addr).ok().map(|c| {
                drop(c);
                Ok(())
            })
        });
        match up {
            Some(Ok(())) => qemu,
            other => panic!(
                "the guest did not boot to a greeting ({}):\n{}\n{}",
                match other {
                    Some(Err(e)) => e,
                    _ => format!("timed out after {BOOT_TIMEOUT:?}"),
                },
                tail(&fs::read_to_string(&console).unwrap_or_default(), 40),
                fs::read_to_string(self.work.path().join(format!("qemu-{boot}.err")))
                    .unwrap_or_default()
            ),
        }
    }

    /// The disk as a power cut left it, seen through a copy mounted on the
    /// host (the mount replays the journal), with QEMU dead.
    fn check(&self, load: &Load, real: bool) -> Check {
        let copy = self.work.path().join("check.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&self.mail_img)
            .arg(&copy));
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&copy)
            .arg(&self.mount));
        let mounted = Mounted(&self.mount, &copy);
        let sent = load.sent.lock().unwrap();
        let acked = load.acked.lock().unwrap();
        let mut c = Check::default();
        let mut on_disk: HashMap<&str, HashSet<String>> = HashMap::new();
        for u in USERS {
            let mut seen = HashSet::new();
            for f in Maildir::of(&self.mount, u).messages("INBOX") {
                c.files += 1;
                let tag = subject(&f.bytes);
                let whole =
                    tag.as_deref()
                        .and_then(|t| sent.get(t))
                        .is_some_and(|(size, rcpts)| {
                            rcpts.contains(&u)
                                && f.s_field() == Some(f.bytes.len() as u64)
                                && f.bytes.ends_with(&util::stored_form(&message(
                                    tag.as_deref().unwrap(),
                                    *size,
                                )))
                        });
                if !whole {
                    c.partial += 1;
                    eprintln!(
                        "PARTIAL: {u}: {} ({} bytes) is not a whole message sent to {u}",
                        f.name,
                        f.bytes.len()
                    );
                } else if !seen.insert(tag.unwrap()) {
                    c.duplicates += 1;
                    eprintln!("TWICE: {u}: {}", f.name);
                }
            }
            on_disk.insert(u, seen);
        }
        for (tag, u) in acked.iter() {
            if !on_disk[u].contains(tag) {
                c.lost += 1;
                eprintln!("LOST: {u} got 250 for {tag} but it is not there whole");
            }
        }
        c.acked = acked.len();
        if real {
            for u in USERS {
                let out = Command::new(env!("CARGO_BIN_EXE_mailstow"))
                    .args(["index", "verify", u, "--config"])
                    .arg(&self.host_config)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run mailstow index verify");
                if !out.status.success() {
                    c.verify_failures.push(format!(
                        "{u}: {}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        }
        drop(mounted);
        c
    }
}

/// A loop mount of a copy of the mail disk: unmounted (the loop device
/// goes with it) and the copy removed on drop, also on panic.
struct Mounted<'a>(&'a Path, &'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.0)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("powercut: umount {} failed", self.0.display());
        }
        let _ = fs::remove_file(self.1);
    }
}

/// What one look at the disk found (counts of copies, not messages).
#[derive(Default, Debug)]
struct Check {
    files: usize,
    acked: usize,
    lost: usize,
    partial: usize,
    duplicates: usize,
    verify_failures: Vec<String>,
}

// ---------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------

/// A message whose completeness shows in its last line; the same tag and
/// size always give the same bytes.
fn message(tag: &str, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: {tag}\r\nMessage-ID: <{tag}@powercut.test>\r\n\r\n").into_bytes();
    let line = format!("{tag} padding line of the body to make it longer\r\n");
    while m.len() < size {
        m.extend_from_slice(line.as_bytes());
    }
    m.extend_from_slice(format!("END {tag}\r\n").as_bytes());
    m
}

/// The Subject of a stored message (its tag), if it has one.
fn subject(bytes: &[u8]) -> Option<String> {
    let at = find(bytes, b"Subject: ")? + 9;
    let end = at + find(&bytes[at..], b"\n")?;
    Some(String::from_utf8_lossy(&bytes[at..end]).trim().to_owned())
}

/// What the clients share with the test.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    /// tag -> (size, recipients): every transaction whose data was started.
    sent: Mutex<HashMap<String, (usize, Vec<&'static str>)>>,
    /// (tag, recipient) pairs that got 250.
    acked: Mutex<Vec<(String, &'static str)>>,
}

/// One transaction: MAIL, RCPTs and DATA pipelined, the body, then one
/// reply per recipient.
fn transaction(c: &mut LmtpClient, tag: &str, rng: &mut Rng, load: &Load) -> std::io::Result<()> {
    let size = match rng.below(20) {
        0 => 100_000 + rng.below(200_000) as usize,
        1..=3 => 10_000 + rng.below(50_000) as usize,
        _ => 500 + rng.below(4_000) as usize,
    };
    let rcpts: Vec<&'static str> = match rng.below(3) {
        0 => USERS.to_vec(),
        n => vec![USERS[n as usize - 1]],
    };
    c.try_envelope("s@example.net", &rcpts)?;
    load.sent
        .lock()
        .unwrap()
        .insert(tag.to_owned(), (size, rcpts.clone()));
    let mut wire = dot_stuff(&message(tag, size));
    wire.extend_from_slice(b".\r\n");
    c.try_write(&wire)?;
    for u in rcpts {
        let r = c.try_read_reply()?;
        if code(&r) == 250 {
            load.acked.lock().unwrap().push((tag.to_owned(), u));
        }
    }
    Ok(())
}

/// One client: bursts of 1-8 transactions with pauses of up to 1.5 s
/// between them, until the guest dies. The pauses are the load's shape:
/// a cut that lands in one finds the last acknowledged links with no later
/// fsync to commit them (what the directory flush is for).
fn client(addr: SocketAddr, boot: usize, id: usize, seed: u64, load: &Load) {
    let mut rng = Rng(seed ^ ((boot as u64) << 32) ^ (id as u64 + 1));
    let Ok(mut c) = LmtpClient::try_tcp(addr) else {
        return;
    };
    if c.try_cmd("LHLO powercut.test").is_err() {
        return;
    }
    let mut n = 0;
    while !load.stop.load(Ordering::Relaxed) {
        for _ in 0..1 + rng.below(8) {
            let tag = format!("b{boot}c{id}n{n}");
            n += 1;
            if transaction(&mut c, &tag, &mut rng, load).is_err() {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(1_500)));
    }
}

// ---------------------------------------------------------------------------
// A run
// ---------------------------------------------------------------------------

/// What a run of cuts found, summed over the checks after each cut (lost
/// and partial from the last check, which sees every earlier boot's too).
#[derive(Debug)]
struct Outcome {
    cuts: usize,
    sent: usize,
    acked: usize,
    lost: usize,
    partial: usize,
    duplicates: usize,
    /// The most any check after a cut found lost.
    worst_lost: usize,
    verify_failures: Vec<String>,
    secs_per_cut: f64,
}

/// `cuts` boots of one guest on one mail disk, each ended by SIGKILL 1-8 s
/// after its first 250; `skip_flush` is MAILSTOW_SKIP_FLUSH in the guest
/// ("" for the real build); `flush` is the guest's `[storage] flush`.
fn power_cuts(cuts: usize, skip_flush: &str, flush: &str) -> Outcome {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let seed = util::seed(SEED_VAR);
    let mode = if skip_flush.is_empty() {
        format!("real build, flush = {flush}")
    } else {
        format!("MAILSTOW_SKIP_FLUSH={skip_flush}")
    };
    eprintln!("powercut: {mode}, {cuts} cuts, seed {seed} ({SEED_VAR}={seed} replays the choices)");
    let vm = vm_image();
    let rig = Rig::new(&vm, skip_flush, flush);
    let mut rng = Rng(seed);
    let load = Arc::new(Load::default());
    let t0 = Instant::now();
    let mut last = Check::default();
    let (mut worst_lost, mut duplicates, mut verify_failures) = (0, 0, Vec::new());
    for boot in 0..cuts {
        let t = Instant::now();
        let mut qemu = rig.boot(boot);
        let booted = t.elapsed();
        load.stop.store(false, Ordering::SeqCst);
        let before = load.acked.lock().unwrap().len();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|id| {
                let (load, addr) = (Arc::clone(&load), rig.addr());
                std::thread::spawn(move || client(addr, boot, id, seed, &load))
            })
            .collect();
        let first = poll(Duration::from_secs(120), || {
            (load.acked.lock().unwrap().len() > before || qemu.exited().is_some()).then_some(())
        });
        assert!(
            first.is_some() && qemu.exited().is_none(),
            "boot {boot}: no 250 ({:?}):\n{}",
            qemu.exited(),
            tail(
                &fs::read_to_string(rig.console(boot)).unwrap_or_default(),
                40
            )
        );
        // The experiment: the cut lands at a random moment of the load.
        let delay = Duration::from_millis(1_000 + rng.below(7_000));
        std::thread::sleep(delay);
        qemu.signal(Signal::SIGKILL);
        qemu.wait_exit(Duration::from_secs(60))
            .expect("qemu exits after SIGKILL");
        load.stop.store(true, Ordering::SeqCst);
        for th in threads {
            th.join().unwrap();
        }
        let acked_now = load.acked.lock().unwrap().len();
        last = rig.check(&load, skip_flush.is_empty());
        worst_lost = worst_lost.max(last.lost);
        duplicates += last.duplicates;
        verify_failures.extend(
            last.verify_failures
                .iter()
                .map(|f| format!("after cut {boot}: {f}")),
        );
        eprintln!(
            "powercut: {mode}: cut {boot}: booted in {:.1} s, killed {:.1} s after the first 250, \
             {} copies acked this boot ({acked_now} in all), {} files; lost {}, partial {}, \
             twice {}, index verify failures {}; {:.1} s",
            booted.as_secs_f64(),
            delay.as_secs_f64(),
            acked_now - before,
            last.files,
            last.lost,
            last.partial,
            last.duplicates,
            last.verify_failures.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let outcome = Outcome {
        cuts,
        sent: load.sent.lock().unwrap().len(),
        acked: last.acked,
        lost: last.lost,
        partial: last.partial,
        duplicates,
        worst_lost,
        verify_failures,
        secs_per_cut: t0.elapsed().as_secs_f64() / cuts as f64,
    };
    eprintln!(
        "powercut: {mode}: seed {seed}: {} cuts, {} messages sent, {} copies acknowledged, \
         {} lost, {} partial, {} stored twice, {} index verify failures; {:.1} s a cut",
        outcome.cuts,
        outcome.sent,
        outcome.acked,
        outcome.lost,
        outcome.partial,
        outcome.duplicates,
        outcome.verify_failures.len(),
        outcome.secs_per_cut
    );
    outcome
}

/// The cuts of a test: [`CUTS_VAR`] when set, else `default`.
fn cuts(default: usize) -> usize {
    std::env::var(CUTS_VAR)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn assert_nothing_lost(o: &Outcome) {
    assert_eq!(o.lost, 0, "acknowledged copies lost: {o:?}");
    assert_eq!(o.worst_lost, 0, "acknowledged copies lost: {o:?}");
    assert_eq!(o.partial, 0, "partial messages visible: {o:?}");
    assert_eq!(o.duplicates, 0, "messages stored twice: {o:?}");
    assert!(
        o.verify_failures.is_empty(),
        "index verify: {:#?}",
        o.verify_failures
    );
    assert!(o.acked > 0, "nothing was acknowledged: {o:?}");
}

/// The CI variant: 10 cuts of the real build (the short run).
#[test]
fn a_power_cut_loses_no_acknowledged_message() {
    assert_nothing_lost(&power_cuts(cuts(10), "", "per-file"));
}

/// The same with `[storage] flush = "grouped"` (four clients at once, so
/// deliveries share their syncfs batches).
#[test]
fn with_grouped_flushes_a_power_cut_loses_no_acknowledged_message() {
    assert_nothing_lost(&power_cuts(cuts(5), "", "grouped"));
}

/// Control: every message acknowledged since the last journal commit is a
/// 0-byte file after the cut (ext4 had not allocated its blocks).
#[test]
fn without_the_file_flush_a_power_cut_loses_acknowledged_messages() {
    let o = power_cuts(cuts(2), "file", "per-file");
    assert!(
        o.lost + o.partial > 0,
        "the control lost nothing: the harness cannot see a missing flush: {o:?}"
    );
}

/// Control: the renames that no later fsync happened to commit are gone.
#[test]
fn without_the_directory_flush_a_power_cut_loses_acknowledged_links() {
    let o = power_cuts(cuts(3), "dir", "per-file");
    assert!(
        o.worst_lost > 0,
        "the control lost nothing: the harness cannot see a missing flush: {o:?}"
    );
}

/// The long run of docs/durability.md.
#[test]
#[ignore = "50 cuts (MAILSTOW_POWERCUT_CUTS=N for another number, MAILSTOW_POWERCUT_FLUSH=grouped \
            for grouped flushes) of 20-25 s each, too long for CI beside the 10-cut variant: \
            cargo test --test tests powercut::many -- --ignored --nocapture"]
fn many_power_cuts_lose_no_acknowledged_message() {
    let flush = std::env::var("MAILSTOW_POWERCUT_FLUSH").unwrap_or_else(|_| "per-file".into());
    assert_nothing_lost(&power_cuts(cuts(50), "", &flush));
}
