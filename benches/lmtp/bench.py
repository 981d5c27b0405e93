#!/usr/bin/env python3
"""bench.py - mailstow against Debian's Dovecot LMTP, side by side, in one run.

Starts a private Dovecot (dovecot.sh: LMTP + Pigeonhole, its default fsync
policy) and mailstow with the same 100 users, the same users file format and
the same Sieve script, then loads both with the same load, cell by cell:

  throughput  Postfix's smtp-source speaking LMTP (-L -d): deliveries/s, CPU
              seconds per 1000 deliveries (the server's whole process tree),
              peak RSS and PSS, and the files found on disk (nothing lost).
              smtp-source sends every message to user@ (one mailbox), or
              with 10 recipients to 10user@ .. user@ (ten mailboxes).
  latency     lmtp-client (benches/lmtp/client.rs): p50/p90/p99 of each
              transaction, recipients spread round-robin over the 100 users.

It also measures the disk's floor (floor.py) in the same run, and extras:
RSS with 100 idle sessions, RSS growth for one 100 MiB message, and mailstow
with 10 vs 10,000 users. Must not touch anything outside WORK (under /tmp),
send traffic anywhere but 127.0.0.1, or signal a process it did not start.

Usage (as root; installs postfix and dovecot packages when missing):
  benches/lmtp/bench.py --bin target/release/mailstow \\
      --client target/release/examples/lmtp-client [--out DIR] [--work /tmp/mailstow-bench]
      [--sizes 4096,102400,10485760] [--concs 1,4,16,64] [--rcpts 1,10]
      [--modes nosieve,sieve10] [--scale 1.0] [--no-extras] [--no-floor]
      [--metrics 127.0.0.1:9154]
Output (DIR): floor.csv, load.csv, latency.csv, extras.csv, machine.txt,
and results.md (summarize.py).
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = "example.test"
NUSERS = 100
# BENCH_DOVECOT_PORT / BENCH_MAILSTOW_PORT (and dovecot.sh's IMAP_PORT) move
# the listeners when another run holds these ports.
DOVECOT_PORT = int(os.environ.get("BENCH_DOVECOT_PORT", "24024"))
MAILSTOW_PORT = int(os.environ.get("BENCH_MAILSTOW_PORT", "24200"))
# BENCH_MAILSTOW_TOML: more lines for mailstow's config (e.g.
# "[delivery]\nsingle_copy = false" to measure one file per recipient).
MAILSTOW_EXTRA = os.environ.get("BENCH_MAILSTOW_TOML", "").replace("\\n", "\n")
SIEVE = os.path.join(HERE, "ten-rules.sieve")
# --metrics ADDR: mailstow serves Prometheus metrics there (to measure what
# recording them costs).
METRICS = None
HZ = os.sysconf("SC_CLK_TCK")

LOAD_COLS = ["mode", "server", "size", "concurrency", "rcpts", "count", "wall_s", "msgs_per_s",
             "deliveries_per_s", "cpu_s", "cpu_s_per_1000", "peak_rss_kib", "peak_pss_kib",
             "procs", "files_found", "expected", "rc"]
LAT_COLS = ["mode", "server", "size", "concurrency", "rcpts", "count", "wall_s", "msgs_per_s",
            "deliveries_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors", "cpu_s",
            "cpu_s_per_1000", "peak_rss_kib", "peak_pss_kib", "files_found", "expected"]


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- processes

def tree(pid):
    """pid and all its descendants."""
    out, frontier = [pid], [pid]
    while frontier:
        nxt = []
        for p in frontier:
            try:
                for t in os.listdir(f"/proc/{p}/task"):
                    with open(f"/proc/{p}/task/{t}/children") as f:
                        nxt += [int(k) for k in f.read().split()]
            except OSError:
                pass
        out += nxt
        frontier = nxt
    return out


def cpu_ticks(pid):
    """utime+stime+cutime+cstime summed over the tree (reaped children
    count in their parent's cutime/cstime, so nothing is lost when a worker
    exits during a run)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total


def memory(pid):
    """(rss_kib, pss_kib, procs) summed over the tree."""
    rss = pss = n = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    k, v = line.split()[:2]
                    if k == "Rss:":
                        rss += int(v)
                        n += 1
                    elif k == "Pss:":
                        pss += int(v)
        except (OSError, ValueError):
            pass
    return rss, pss, n


class Sampler:
    """Peak memory of a process tree, sampled every 0.2 s, and its CPU time."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, (0, 0, 0), threading.Event()
        self.cpu0 = cpu_ticks(pid)
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while True:
            m = memory(self.pid)
            self.peak = tuple(max(a, b) for a, b in zip(self.peak, m))
            if self.stop.wait(0.2):
                return

    def finish(self):
        self.stop.set()
        self.t.join()
        m = memory(self.pid)
        self.peak = tuple(max(a, b) for a, b in zip(self.peak, m))
        return (cpu_ticks(self.pid) - self.cpu0) / HZ, self.peak


def count_files(root):
    n = 0
    for d, _, files in os.walk(root):
        if os.path.basename(d) in ("new", "cur"):
            n += len(files)
    return n


# ---------------------------------------------------------------- servers

class Dovecot:
    name = "dovecot"

    def __init__(self, work):
        self.work = os.path.join(work, "dovecot")
        self.root = os.path.join(self.work, "mail", DOMAIN)
        self.target = f"127.0.0.1:{DOVECOT_PORT}"

    def sh(self, *args, sieve=None):
        env = dict(os.environ, SIEVE_SCRIPT=sieve or "", LMTP_PORT=str(DOVECOT_PORT),
                   NUSERS=str(NUSERS))
        run([os.path.join(HERE, "dovecot.sh"), self.work, *args], env=env,
            stdout=subprocess.DEVNULL)

    def start(self, mode):
        self.sh("stop")
        self.sh("start", sieve=SIEVE if mode == "sieve10" else None)
        with open(os.path.join(self.work, "dovecot.pid")) as f:
            self.pid = int(f.read())

    def stop(self):
        self.sh("stop")

    def wipe(self):
        set_aside(self.root, self.work)


class Mailstow:
    name = "mailstow"

    def __init__(self, work, binary, nusers=NUSERS, port=MAILSTOW_PORT, sub="mailstow"):
        self.bin, self.nusers, self.port = binary, nusers, port
        self.work = os.path.join(work, sub)
        self.root = os.path.join(self.work, "mail", DOMAIN)
        self.target = f"127.0.0.1:{port}"
        self.proc = None

    def setup(self, mode):
        os.makedirs(self.root, exist_ok=True)
        for d in (self.work, os.path.join(self.work, "mail")):
            os.chmod(d, 0o755)
        shutil.chown(self.root, "vmail", "vmail")
        uid, gid = vmail_ids()
        with open(os.path.join(self.work, "users"), "w") as f:
            for i in range(self.nusers):
                f.write(f"user{i}@{DOMAIN}:{{PLAIN}}x:{uid}:{gid}::{self.root}/user{i}::\n")
            # smtp-source's recipients: user@, then 2user@ .. 10user@ with -r
            f.write(f"user@{DOMAIN}:{{PLAIN}}x:{uid}:{gid}::{self.root}/user0::\n")
            for i in range(1, min(self.nusers, 100)):
                f.write(f"{i}user@{DOMAIN}:{{PLAIN}}x:{uid}:{gid}::{self.root}/user{i}::\n")
        for i in range(self.nusers):
            home = os.path.join(self.root, f"user{i}")
            os.makedirs(home, exist_ok=True)
            for p in ("sieve", ".dovecot.sieve"):
                q = os.path.join(home, p)
                if os.path.islink(q) or os.path.isfile(q):
                    os.unlink(q)
                elif os.path.isdir(q):
                    shutil.rmtree(q)
            if mode == "sieve10":
                os.makedirs(os.path.join(home, "sieve"))
                shutil.copy(SIEVE, os.path.join(home, "sieve", "bench.sieve"))
                os.symlink("sieve/bench.sieve", os.path.join(home, ".dovecot.sieve"))
            run(["chown", "-R", "vmail:vmail", home])
        with open(os.path.join(self.work, "mailstow.toml"), "w") as f:
            f.write(f"""# Generated by benches/lmtp/bench.py
hostname = "bench.{DOMAIN}"
user = "vmail"
group = "vmail"
[lmtp]
listen = ["{self.target}"]
[storage]
mail_root = "mail"
[users]
passwd_file = "users"
[limits]
max_connections = 1024
max_connections_per_ip = 1024
max_message_size = 209715200
[log]
level = "warn"
[sieve]
autocreate = true
""")
            if METRICS:
                f.write(f'[metrics]\nlisten = "{METRICS}"\n')
            if MAILSTOW_EXTRA:
                f.write(MAILSTOW_EXTRA.rstrip("\n") + "\n")

    def start(self, mode):
        self.stop()
        self.setup(mode)
        logf = open(os.path.join(self.work, "mailstow.log"), "a")
        self.proc = subprocess.Popen([self.bin, "serve", "--config",
                                      os.path.join(self.work, "mailstow.toml")],
                                     stdout=logf, stderr=logf, cwd=self.work)
        self.pid = self.proc.pid
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def wipe(self):
        set_aside(self.root, self.work)


def set_aside(root, work):
    """Empties the mail root for the next cell by moving each home's
    Maildir and index into WORK/../trash (removed when the run ends), not
    by deleting them: ext4 skips the inodes freed in the last minute when
    it allocates new ones, and a cell run right after deleting thousands of
    files spends much of its CPU in that search (perf: recently_deleted),
    a cost of the benchmark's wipe, not of delivering mail."""
    trash = os.path.join(os.path.dirname(work), "trash")
    os.makedirs(trash, exist_ok=True)
    if not os.path.isdir(root):
        return
    for user in os.listdir(root):
        for d in ("Maildir", ".mailstow"):
            path = os.path.join(root, user, d)
            if os.path.isdir(path):
                os.rename(path, os.path.join(trash, f"{len(os.listdir(trash))}"))


def empty_trash(work):
    shutil.rmtree(os.path.join(work, "trash"), ignore_errors=True)


def wait_port(port, proc):
    import socket
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"bench: server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on port {port}")


def vmail_ids():
    import pwd
    p = pwd.getpwnam("vmail")
    return p.pw_uid, p.pw_gid


def ensure_setup():
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (the servers write as user vmail)")
    need = [p for p in ("postfix", "dovecot-core", "dovecot-lmtpd", "dovecot-sieve")
            if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                              text=True).stdout.find("install ok installed") < 0]
    if need:
        log("installing", *need)
        subprocess.run("echo 'postfix postfix/main_mailer_type select No configuration' | "
                       "debconf-set-selections", shell=True, check=True)
        run(["apt-get", "install", "-y", "--no-install-recommends", *need],
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdout=subprocess.DEVNULL)
    if subprocess.run(["getent", "passwd", "vmail"], capture_output=True).returncode != 0:
        run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
             "--no-create-home", "--shell", "/usr/sbin/nologin", "vmail"])


# ---------------------------------------------------------------- loads

def settle(server, a=None):
    """Empty the mail root; with `a`, then give each of the 100 mailboxes
    one small message, so that the run measures deliveries into existing
    mailboxes, not their creation."""
    server.wipe()
    if a is not None:
        subprocess.run([a.client, "--target", server.target, "-n", str(NUSERS), "-c", "4",
                        "--size", "1024", "--users", str(NUSERS)], stdout=subprocess.DEVNULL)
    os.sync()
    time.sleep(0.5)


def smtp_source(server, count, conc, size, rcpts):
    cmd = ["timeout", "-k", "5", "900", "/usr/sbin/smtp-source", "-L", "-d", "-m", str(count),
           "-s", str(conc), "-l", str(size), "-r", str(rcpts), "-f", f"bench@{DOMAIN}",
           "-t", f"user@{DOMAIN}", server.target]
    before = count_files(server.root)
    s = Sampler(server.pid)
    t0 = time.monotonic()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.monotonic() - t0
    cpu, (rss, pss, procs) = s.finish()
    files = count_files(server.root) - before
    d = count * rcpts
    return dict(count=count, wall_s=f"{wall:.3f}", msgs_per_s=f"{count / wall:.1f}",
                deliveries_per_s=f"{d / wall:.1f}", cpu_s=f"{cpu:.2f}",
                cpu_s_per_1000=f"{cpu * 1000 / d:.3f}", peak_rss_kib=rss, peak_pss_kib=pss,
                procs=procs, files_found=files, expected=d, rc=rc)


def client(a, server, count, conc, size, rcpts, users=NUSERS, extra=()):
    cmd = [a.client, "--target", server.target, "-n", str(count), "-c", str(conc), "--size",
           str(size), "--rcpts", str(rcpts), "--users", str(users), "--csv", *extra]
    before = count_files(server.root)
    s = Sampler(server.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    cpu, (rss, pss, _) = s.finish()
    if out.returncode != 0:
        log(server.name, "lmtp-client:", out.stderr.strip())
    files = count_files(server.root) - before
    f = (out.stdout.strip().split(",") + [""] * 13)[:13]
    d = count * rcpts
    return dict(count=f[1], wall_s=f[5], msgs_per_s=f[6], deliveries_per_s=f[7], p50_ms=f[8],
                p90_ms=f[9], p99_ms=f[10], max_ms=f[11], errors=f[12], cpu_s=f"{cpu:.2f}",
                cpu_s_per_1000=f"{cpu * 1000 / max(d, 1):.3f}", peak_rss_kib=rss,
                peak_pss_kib=pss, files_found=files, expected=d)


def count_for(a, size, conc, rcpts):
    """Messages per run: about the same bytes for each size, enough to keep
    every session busy."""
    base = {4096: 2000, 102400: 800}.get(size, 24)
    n = base if rcpts == 1 else max(base // 5, 8)
    return max(int(n * a.scale), 2 * conc if size <= 102400 else conc)


class Csv:
    def __init__(self, path, cols):
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=cols, extrasaction="ignore")
        if new:
            self.w.writeheader()

    def row(self, r):
        self.w.writerow(r)
        self.f.flush()


def matrix(a, servers):
    load = Csv(os.path.join(a.out, "load.csv"), LOAD_COLS)
    lat = Csv(os.path.join(a.out, "latency.csv"), LAT_COLS)
    for mode in a.modes:
        for s in servers:
            s.start(mode)
            # warm-up: worker processes, users, compiled scripts, folders
            settle(s)
            subprocess.run([a.client, "--target", s.target, "-n", "300", "-c", "16", "--rcpts",
                            "10"], stdout=subprocess.DEVNULL)
        flip = False
        for size in a.sizes:
            for conc in a.concs:
                for rcpts in a.rcpts:
                    n = count_for(a, size, conc, rcpts)
                    flip = not flip
                    order = servers if flip else servers[::-1]
                    key = dict(mode=mode, size=size, concurrency=conc, rcpts=rcpts)
                    for s in order:
                        settle(s, a)
                        r = dict(key, server=s.name, **smtp_source(s, n, conc, size, rcpts))
                        load.row(r)
                        log(f"{mode} {s.name:8} size={size} c={conc} r={rcpts}: "
                            f"{r['deliveries_per_s']}/s cpu/1000={r['cpu_s_per_1000']} "
                            f"files {r['files_found']}/{r['expected']}")
                    for s in order:
                        settle(s, a)
                        r = dict(key, server=s.name, **client(a, s, n, conc, size, rcpts))
                        lat.row(r)
                        log(f"{mode} {s.name:8} latency: p50 {r['p50_ms']} p99 {r['p99_ms']} ms")
        for s in servers:
            s.stop()


def idle_rss(a, s):
    """(rss, pss) KiB of a started server: before, and with 100 idle LMTP
    sessions open just after deliveries to all 100 users (so their indexes
    are open too)."""
    settle(s)
    client(a, s, 200, 16, 4096, 10)  # warm: processes, users, indexes
    time.sleep(3)  # mailstow writes index rows after the replies
    base = memory(s.pid)
    p = subprocess.Popen([a.client, "--target", s.target, "--idle", "100", "--hold", "4"],
                         stdout=subprocess.PIPE, text=True)
    p.stdout.readline()
    time.sleep(1)
    idle = memory(s.pid)
    p.wait()
    return base, idle


def big_message(a, s):
    """(rss KiB before, client row) for one 100 MiB message."""
    settle(s)
    before = memory(s.pid)
    return before, client(a, s, 1, 1, 100 * 1024 * 1024, 1)


def until_idle(pid, quiet_s=1.0):
    """Waits until the process tree has used no CPU for `quiet_s`."""
    last = -1
    while True:
        now = cpu_ticks(pid)
        if now == last:
            return
        last = now
        time.sleep(quiet_s)


def users_scale(a, work, nusers, count=4000):
    """mailstow with `nusers` users, 4 KiB, concurrency 16: every mailbox
    gets one message first (its first delivery creates the Maildir and the
    index), then `count` are timed; the client row."""
    m = Mailstow(work, a.bin, nusers=nusers, sub=f"mailstow-{nusers}")
    try:
        m.start("nosieve")
        m.wipe()
        client(a, m, nusers, 16, 4096, 1, users=nusers)
        # The index writers record the priming deliveries after the replies
        # (10,000 new indexes take a while): time only the load, not them.
        until_idle(m.pid)
        os.sync()
        return client(a, m, count, 16, 4096, 1, users=nusers)
    finally:
        m.stop()
        shutil.rmtree(m.work, ignore_errors=True)


def extras(a, servers, work):
    """Memory with idle sessions and one 100 MiB message; users 10 vs 10,000."""
    ex = Csv(os.path.join(a.out, "extras.csv"), ["server", "what", "value", "unit"])
    for s in servers:
        s.start("nosieve")
        base, idle = idle_rss(a, s)
        ex.row(dict(server=s.name, what="rss before idle sessions", value=base[0], unit="KiB"))
        ex.row(dict(server=s.name, what="rss with 100 idle sessions", value=idle[0], unit="KiB"))
        ex.row(dict(server=s.name, what="pss with 100 idle sessions", value=idle[1], unit="KiB"))
        before, r = big_message(a, s)
        ex.row(dict(server=s.name, what="rss before 100 MiB message", value=before[0], unit="KiB"))
        ex.row(dict(server=s.name, what="peak rss during 100 MiB message", value=r["peak_rss_kib"],
                    unit="KiB"))
        ex.row(dict(server=s.name, what="peak pss during 100 MiB message", value=r["peak_pss_kib"],
                    unit="KiB"))
        ex.row(dict(server=s.name, what="100 MiB message latency", value=r["p50_ms"], unit="ms"))
        log(s.name, "idle rss", idle[0], "KiB; 100 MiB message peak rss", r["peak_rss_kib"], "KiB")
        s.stop()
    for nusers in (10, 10000):
        r = users_scale(a, work, nusers)
        for k in ("deliveries_per_s", "p50_ms", "p99_ms", "cpu_s_per_1000", "peak_rss_kib"):
            ex.row(dict(server="mailstow", what=f"{nusers} users, c=16: {k}", value=r[k], unit=""))
        log(f"mailstow {nusers} users: {r['deliveries_per_s']}/s p99 {r['p99_ms']} ms")


def machine(a):
    with open(os.path.join(a.out, "machine.txt"), "w") as f:
        for cmd in (["date", "-u"], ["uname", "-srm"], ["nproc"], ["sh", "-c", "grep -m1 'model name' /proc/cpuinfo"],
                    ["sh", "-c", "free -m | sed -n 2p"], ["sh", "-c", f"findmnt -n -o SOURCE,FSTYPE,OPTIONS -T {a.work}"],
                    ["dovecot", "--version"], [a.bin, "--version"],
                    ["sh", "-c", "git -C " + HERE + " rev-parse --short HEAD"]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            f.write(f"{' '.join(cmd)}: {r.stdout.strip()}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--out", default="/tmp/mailstow-bench-results")
    ap.add_argument("--work", default="/tmp/mailstow-bench")
    ap.add_argument("--sizes", default="4096,102400,10485760")
    ap.add_argument("--concs", default="1,4,16,64")
    ap.add_argument("--rcpts", default="1,10")
    ap.add_argument("--modes", default="nosieve,sieve10")
    ap.add_argument("--servers", default="dovecot,mailstow")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the messages per run")
    ap.add_argument("--no-extras", action="store_true")
    ap.add_argument("--metrics", metavar="ADDR", help="mailstow serves [metrics] on ADDR")
    ap.add_argument("--no-floor", action="store_true")
    ap.add_argument("--extras-only", action="store_true", help="no matrix, no floor")
    a = ap.parse_args()
    global METRICS
    METRICS = a.metrics
    if not a.work.startswith("/tmp/"):
        raise SystemExit("bench: --work must be under /tmp")
    a.bin, a.client = os.path.abspath(a.bin), os.path.abspath(a.client)
    a.sizes = [int(x) for x in a.sizes.split(",")]
    a.concs = [int(x) for x in a.concs.split(",")]
    a.rcpts = [int(x) for x in a.rcpts.split(",")]
    a.modes = a.modes.split(",")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    ensure_setup()
    machine(a)
    if not a.no_floor and not a.extras_only:
        log("disk floor")
        with open(os.path.join(a.out, "floor.csv"), "w") as f:
            run([sys.executable, os.path.join(HERE, "floor.py"), os.path.join(a.work, "floor"),
                 "--header", "--sizes", ",".join(str(s) for s in a.sizes),
                 "--writers", ",".join(str(c) for c in a.concs)], stdout=f)
    all_servers = {"dovecot": Dovecot(a.work), "mailstow": Mailstow(a.work, a.bin)}
    servers = [all_servers[n] for n in a.servers.split(",")]
    try:
        if not a.extras_only:
            matrix(a, servers)
        if not a.no_extras:
            extras(a, servers, a.work)
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log("stop", s.name, e)
    empty_trash(a.work)
    run([sys.executable, os.path.join(HERE, "summarize.py"), a.out],
        stdout=open(os.path.join(a.out, "results.md"), "w"))
    log("results in", os.path.join(a.out, "results.md"))


if __name__ == "__main__":
    main()
