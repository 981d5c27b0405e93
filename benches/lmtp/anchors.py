#!/usr/bin/env python3
"""anchors.py - what an admin would use instead of mailstow, measured end to
end from one private Postfix queue to the Maildir (issue 19, item 5). Must
not touch anything outside WORK (under /tmp) and its own cgroup, send mail
anywhere but 127.0.0.1, or signal a process it did not start (it stops every
process it started by PID and removes its Postfix instance and cgroup).

A private Postfix (config, queue and log under WORK/postfix, smtpd on a
loopback port) receives 4 KiB messages from smtp-source and hands them, one
transport at a time, to:

  virtual        virtual(8) writing Maildir (virtual_mailbox_base, texthash maps)
  dovecot-lda    pipe(8) running /usr/lib/dovecot/dovecot-lda -d ${user}@${nexthop}
                 (flags=DRhu, the private Dovecot of dovecot.sh for its userdb)
  maildrop       pipe(8) running maildrop with a filter file (flags=DRXhu)
  mailstow-pipe  pipe(8) running `mailstow deliver -e` (packaging/postfix's line)
  mailstow-lmtp  lmtp(8) to mailstow's LMTP (the settings of main.cf.snippet)
  dovecot-lmtp   lmtp(8) to Dovecot's LMTP (dovecot.sh)

with the same limit for each: <transport>_destination_concurrency_limit,
its initial concurrency and the service's process limit (master.cf maxproc)
all equal the load's concurrency. pipe(8) transports take one recipient per
delivery (their commands take one -d); lmtp(8) and virtual(8) up to 50.

Per cell (transport x concurrency x recipients per message) it reports:
  deliveries/s  messages x recipients over the time from starting smtp-source
                to the newest ctime of a delivered file (files are counted in
                new/ and cur/; they must equal the deliveries, and Postfix's
                log must show one status=sent per delivery and no deferral or
                bounce);
  CPU           ms per delivery from cgroup v2 cpu.stat: the whole tree
                (Postfix from smtpd to the delivery agents, plus the LMTP
                server or the Dovecot that dovecot-lda asks for users), and
                the agent: virtual(8) itself; the command pipe(8) runs (the
                pipe(8) process's own CPU taken out) plus its server; the LMTP
                server;
  latency       from Postfix's log (delay_logging_resolution_limit = 6): the
                median and p99 of d in delays=a/b/c/d (the delivery agent's
                time) and of delay= (queue arrival to delivered).

Usage (as root; installs postfix, dovecot and maildrop when missing):
  benches/lmtp/anchors.py --bin target/release/mailstow [--out DIR]
      [--work /tmp/mailstow-anchors] [--transports virtual,dovecot-lda,...]
      [--concs 1,16] [--rcpts 1,10] [--size 4096] [--scale 1.0]
      [--smtp-port 25250]
Output (DIR): anchors.csv and anchors.md (the markdown table).
"""
import argparse
import csv
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import bench  # noqa: E402  (the helpers of the side-by-side benchmark)
from bench import DOMAIN, NUSERS, log  # noqa: E402

TRANSPORTS = ["virtual", "dovecot-lda", "maildrop", "mailstow-pipe", "mailstow-lmtp",
              "dovecot-lmtp"]
PIPE = {"dovecot-lda", "maildrop", "mailstow-pipe"}
DAEMON_DIR = "/usr/lib/postfix/sbin"
COLS = ["transport", "size", "concurrency", "rcpts", "count", "deliveries", "inject_s", "wall_s",
        "deliveries_per_s", "cpu_tree_ms", "cpu_postfix_ms", "cpu_agent_ms", "cpu_server_ms",
        "d_p50_ms", "d_p99_ms", "delay_p50_ms", "delay_p99_ms", "files_found", "sent",
        "deferred", "bounced", "rc", "ok"]


# ---------------------------------------------------------------- cgroup v2

def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            dev, path, fstype = line.split()[:3]
            if fstype == "cgroup2":
                return path
    raise SystemExit("anchors: no cgroup v2 hierarchy is mounted (needed for CPU per delivery)")


class Cgroup:
    """Our own cgroup: postfix/ (master, smtpd, cleanup, qmgr, ...),
    delivery/ (the measured transport's Postfix delivery processes and what
    they run) and server/ (an LMTP server, or the Dovecot dovecot-lda asks).
    cpu.stat's usage_usec is hierarchical, so the top is the whole tree."""

    SUBS = ("postfix", "delivery", "server")

    def __init__(self):
        self.path = os.path.join(cgroup2_mount(), f"mailstow-anchors-{os.getpid()}")
        os.mkdir(self.path)
        for s in self.SUBS:
            os.mkdir(os.path.join(self.path, s))

    def procs_file(self, sub):
        return os.path.join(self.path, sub, "cgroup.procs")

    def usage(self, sub=""):
        with open(os.path.join(self.path, sub, "cpu.stat")) as f:
            for line in f:
                k, v = line.split()
                if k == "usage_usec":
                    return int(v)
        return 0

    def usages(self):
        return {s: self.usage(s) for s in ("",) + self.SUBS}

    def joiner(self, sub):
        path = self.procs_file(sub)

        def join():  # runs in the child between fork and exec
            with open(path, "w") as f:
                f.write("0")
        return join

    def move(self, pid, sub):
        """Move a process (and its threads) in; it may have exited."""
        try:
            with open(self.procs_file(sub), "w") as f:
                f.write(str(pid))
        except ProcessLookupError:
            pass

    def pids(self, sub=None):
        out = []
        for s in ([sub] if sub else self.SUBS):
            try:
                with open(self.procs_file(s)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
        return out

    def reap(self, sub=None, wait=10.0):
        """Kill, by PID, what is left in our cgroup (all of it was started
        by us), then wait until it is empty."""
        end = time.monotonic() + wait
        while True:
            left = self.pids(sub)
            if not left:
                return
            if time.monotonic() > end:
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                end = time.monotonic() + wait
            time.sleep(0.1)

    def remove(self):
        self.reap(wait=5.0)
        for s in self.SUBS:
            os.rmdir(os.path.join(self.path, s))
        os.rmdir(self.path)


def proc_ticks(pid):
    """(own, reaped children's) CPU ticks of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            x = f.read().rsplit(")", 1)[1].split()
        return int(x[11]) + int(x[12]), int(x[13]) + int(x[14])
    except (OSError, IndexError, ValueError):
        return 0, 0


# ---------------------------------------------------------------- mail roots

def parse_alias(name):
    """smtp-source's recipient names: user@ is user0, <N>user@ is userN."""
    return "user0" if name == "user" else f"user{name[:-4]}"


def alias_names():
    """(address local part, mailbox user) for every name the load uses."""
    out = [(f"user{i}", f"user{i}") for i in range(NUSERS)]
    out.append(("user", "user0"))
    out += [(f"{i}user", f"user{i}") for i in range(1, NUSERS)]
    return out


class Root:
    """Where a transport's mail lands: ROOT/userN/Maildir/{new,cur}."""

    def __init__(self, root):
        self.root = root

    def maildirs(self, users):
        return [os.path.join(self.root, u, "Maildir") for u in users]

    def count(self, users):
        n = 0
        for md in self.maildirs(users):
            for sub in ("new", "cur"):
                try:
                    n += sum(1 for _ in os.scandir(os.path.join(md, sub)))
                except FileNotFoundError:
                    pass
        return n

    def newest_ctime(self, users):
        t = 0
        for md in self.maildirs(users):
            for sub in ("new", "cur"):
                try:
                    for e in os.scandir(os.path.join(md, sub)):
                        try:
                            t = max(t, e.stat(follow_symlinks=False).st_ctime_ns)
                        except FileNotFoundError:
                            pass
                except FileNotFoundError:
                    pass
        return t / 1e9

    def total(self):
        return bench.count_files(self.root)

    def wipe(self):
        # Moved aside, not deleted (see bench.set_aside); the trash goes with the work dir.
        bench.set_aside(self.root, self.root)


def make_homes(root, maildirs=False):
    """user0..user99 owned by vmail (with empty Maildirs when asked: maildrop
    does not create them), and the alias names as symlinks."""
    uid, gid = bench.vmail_ids()
    os.makedirs(root, exist_ok=True)
    os.chown(root, uid, gid)
    for alias, user in alias_names():
        p = os.path.join(root, alias)
        if alias != user:
            if not os.path.islink(p):
                os.symlink(user, p)
            continue
        os.makedirs(p, exist_ok=True)
        if maildirs:
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(p, "Maildir", sub), exist_ok=True)
        for d, _, files in os.walk(p):
            os.chown(d, uid, gid)
            for f in files:
                os.chown(os.path.join(d, f), uid, gid)


# ---------------------------------------------------------------- Postfix

MASTER_CF = """\
{smtp} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

LOG_RE = re.compile(r"\bto=<[^>]*>.*?\bdelay=([0-9.]+), delays=([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+),"
                    r".*?\bstatus=(\w+)")


class Postfix:
    def __init__(self, work, cg, port):
        self.dir = os.path.join(work, "postfix")
        self.etc = os.path.join(self.dir, "etc")
        self.maillog = os.path.join(self.dir, "maillog")
        self.port, self.cg, self.proc = port, cg, None

    def wrapper(self, daemon):
        """A script master(8) runs instead of DAEMON: it moves itself into
        our delivery/ cgroup and execs the daemon. master.cf names it
        relative to daemon_directory (master(8) prefixes that)."""
        d = os.path.join(self.dir, "libexec")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, daemon)
        with open(p, "w") as f:
            f.write(f"#!/bin/sh\n# anchors.py: run {daemon} in the delivery cgroup\n"
                    f"echo 0 > {self.cg.procs_file('delivery')} || exit 1\n"
                    f"exec {DAEMON_DIR}/{daemon} \"$@\"\n")
        os.chmod(p, 0o755)
        return os.path.relpath(p, DAEMON_DIR)

    def configure(self, a, transport, conc, vroot, mailstow, dovecot, maildrop_filter):
        uid, gid = bench.vmail_ids()
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        os.chmod(os.path.join(self.dir, "data"), 0o700)
        with open(os.path.join(self.dir, "vmailbox"), "w") as f:
            for alias, user in alias_names():
                f.write(f"{alias}@{DOMAIN} {user}/Maildir/\n")
        svc = {"virtual": "virtual", "dovecot-lda": "dovecot", "maildrop": "maildrop",
               "mailstow-pipe": "mailstow", "mailstow-lmtp": "mslmtp",
               "dovecot-lmtp": "dvlmtp"}[transport]
        nexthop = {"mailstow-lmtp": f":inet:127.0.0.1:{bench.MAILSTOW_PORT}",
                   "dovecot-lmtp": f":inet:127.0.0.1:{bench.DOVECOT_PORT}"}.get(transport, ":")
        if transport in PIPE:
            if transport == "dovecot-lda":
                cmd = ("flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/dovecot-lda "
                       f"-c {dovecot.work}/dovecot.conf -d ${{user}}@${{nexthop}} -f ${{sender}}")
            elif transport == "maildrop":
                cmd = (f"flags=DRXhu user=vmail:vmail argv=/usr/bin/maildrop "
                       f"{maildrop_filter} ${{user}}")
            else:  # packaging/postfix/master.cf.snippet's line
                cmd = (f"flags=q user=vmail:vmail argv={a.bin} deliver -e --config "
                       f"{mailstow.work}/mailstow.toml -f ${{sender}} -d ${{recipient}}")
            line = f"{svc} unix  -  n  n  -  {conc}  {self.wrapper('pipe')}\n  {cmd}\n"
            limit = 1
        elif transport == "virtual":
            line = f"{svc} unix  -  n  n  -  {conc}  {self.wrapper('virtual')}\n"
            limit = 50
        else:
            line = f"{svc} unix  -  -  n  -  {conc}  {self.wrapper('lmtp')}\n"
            limit = 50
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.replace("{smtp}", f"127.0.0.1:{self.port}") + line)
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(f"""# Generated by benches/lmtp/anchors.py: a private benchmark instance.
compatibility_level = 3.6
meta_directory = /etc/postfix
queue_directory = {self.dir}/queue
data_directory = {self.dir}/data
maillog_file = {self.maillog}
maillog_file_prefixes = {self.dir}
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
default_transport = error:5.1.2 not a benchmark domain
biff = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
# long-lived processes: CPU is read per process at the end of a cell
max_use = 1000000
max_idle = 3600s
delay_logging_resolution_limit = 6
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{self.dir}/vmailbox
virtual_mailbox_base = {vroot}
virtual_minimum_uid = {uid}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_transport = {svc}{nexthop}
# the same limit for every transport: the load's concurrency
default_destination_concurrency_limit = {conc}
initial_destination_concurrency = {conc}
{svc}_destination_concurrency_limit = {conc}
{svc}_initial_destination_concurrency = {conc}
{svc}_destination_recipient_limit = {limit}
""")
        self.svc = svc

    def start(self):
        # postconf warns about the <transport>_* names of our wrapped
        # services ("unused parameter"); qmgr reads them all the same
        r = subprocess.run(["postfix", "-c", self.etc, "check"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"anchors: postfix check failed:\n{r.stderr}")
        # master without -w stays in the foreground: our child, we hold its PID
        self.proc = subprocess.Popen([os.path.join(DAEMON_DIR, "master"), "-c", self.etc],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=self.cg.joiner("postfix"))
        bench.wait_port(self.port, self.proc)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # master stops its children
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.cg.reap("postfix")
        self.cg.reap("delivery")

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_size(self):
        try:
            return os.path.getsize(self.maillog)
        except OSError:
            return 0

    def log_since(self, off):
        try:
            with open(self.maillog, errors="replace") as f:
                f.seek(off)
                return f.read()
        except OSError:
            return ""

    def queue_empty(self):
        r = subprocess.run(["postqueue", "-c", self.etc, "-j"], capture_output=True, text=True)
        return r.returncode == 0 and not r.stdout.strip()

    def inject(self, count, conc, size, rcpts, to="user", timeout=1800):
        return subprocess.run(
            ["timeout", "-k", "5", str(timeout), "/usr/sbin/smtp-source", "-d", "-m", str(count),
             "-s", str(conc), "-l", str(size), "-r", str(rcpts), "-f", f"bench@{DOMAIN}",
             "-t", f"{to}@{DOMAIN}", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def log_stats(text):
    sent, deferred, bounced, d, total = 0, 0, 0, [], []
    for line in text.splitlines():
        m = LOG_RE.search(line)
        if not m:
            continue
        st = m.group(6)
        if st == "sent":
            sent += 1
            total.append(float(m.group(1)) * 1000)
            d.append(float(m.group(5)) * 1000)
        elif st == "deferred":
            deferred += 1
        else:
            bounced += 1
    return sent, deferred, bounced, d, total


def pct(vals, p):
    if not vals:
        return float("nan")
    v = sorted(vals)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# ---------------------------------------------------------------- one transport

class Dovecot(bench.Dovecot):
    """dovecot.sh's instance, plus what dovecot-lda needs when pipe(8) runs
    it as vmail: the stats-writer socket open to it, its own log file, and
    the Sieve plugin loaded as in LMTP (no script is installed). Both
    Dovecot transports run with this configuration."""

    def sh(self, *args, sieve=None):
        log_file = os.path.join(self.work, "lda.log")
        extra = f"""service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
protocol lda {{
  mail_plugins = $mail_plugins sieve
  log_path = {log_file}
  info_log_path = {log_file}
  debug_log_path = {log_file}
}}"""
        if args[0] == "start":
            os.makedirs(self.work, exist_ok=True)
            open(log_file, "a").close()
            shutil.chown(log_file, "vmail", "vmail")
        env = dict(os.environ, SIEVE_SCRIPT=sieve or "", LMTP_PORT=str(bench.DOVECOT_PORT),
                   NUSERS=str(NUSERS), EXTRA_CONF=extra)
        bench.run([os.path.join(HERE, "dovecot.sh"), self.work, *args], env=env,
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Anchor:
    """The receiving side of one transport: its mail root and, where it
    has one, its server."""

    def __init__(self, a, name, work, cg):
        self.a, self.name, self.cg = a, name, cg
        self.work = work
        self.server = None
        if name in ("dovecot-lda", "dovecot-lmtp"):
            self.dovecot = Dovecot(work)
            self.root = Root(self.dovecot.root)
        elif name in ("mailstow-pipe", "mailstow-lmtp"):
            self.mailstow = bench.Mailstow(work, a.bin)
            self.root = Root(self.mailstow.root)
        else:
            self.root = Root(os.path.join(work, name, "mail"))
        self.filter = os.path.join(work, "maildrop", "mailfilter")

    def start(self):
        if self.name in ("dovecot-lda", "dovecot-lmtp"):
            self.dovecot.start("nosieve")
            self.server_pid = self.dovecot.pid
            # the master first (what it forks later is born inside), then
            # twice what it had started
            for _ in range(2):
                for p in bench.tree(self.dovecot.pid):
                    self.cg.move(p, "server")
        elif self.name == "mailstow-lmtp":
            self.mailstow.start("nosieve")
            self.server_pid = self.mailstow.pid
            self.cg.move(self.mailstow.pid, "server")
        elif self.name == "mailstow-pipe":
            self.mailstow.setup("nosieve")
        elif self.name == "maildrop":
            make_homes(self.root.root, maildirs=True)
            uid, gid = bench.vmail_ids()
            with open(self.filter, "w") as f:
                f.write(f'# anchors.py: deliver to the Maildir of the user in $1\n'
                        f'DEFAULT="{self.root.root}/$1/Maildir/"\n')
            os.chown(self.filter, uid, gid)
            os.chmod(self.filter, 0o600)
            os.chown(os.path.dirname(self.filter), uid, gid)
        elif self.name == "virtual":
            make_homes(self.root.root)
        self.root.wipe()
        if self.name == "maildrop":
            make_homes(self.root.root, maildirs=True)

    def stop(self):
        if self.name in ("dovecot-lda", "dovecot-lmtp"):
            self.dovecot.stop()
        elif self.name == "mailstow-lmtp":
            self.mailstow.stop()
        self.cg.reap("server")


def users_for(rcpts):
    """The mailboxes smtp-source's -r R -t user@ writes: user0, user2..userR."""
    return ["user0"] + [f"user{i}" for i in range(2, rcpts + 1)]


def wait_delivered(pf, root, users, want, log_off, timeout):
    """Until `want` files are in the users' new/ and cur/ and the log has
    `want` final statuses; (files, timed_out)."""
    end = time.monotonic() + timeout
    last, last_t = -1, time.monotonic()
    while True:
        n = root.count(users)
        if n >= want:
            break
        if n != last:
            last, last_t = n, time.monotonic()
        if time.monotonic() > end or time.monotonic() - last_t > 120:
            return n, True
        time.sleep(0.05)
    # the log lines follow the files
    for _ in range(200):
        s, dfr, b, _, _ = log_stats(pf.log_since(log_off))
        if s + b >= want:
            break
        time.sleep(0.05)
    return n, False


def cell(a, pf, an, conc, rcpts, count):
    users = users_for(rcpts)
    an.root.wipe()
    if an.name == "maildrop":
        make_homes(an.root.root, maildirs=True)
    # prime: each of the 100 mailboxes gets one small message (the cell
    # measures deliveries, not mailbox creation), and the agents' processes
    # start: 99 recipients in one message, then 1user@, then 2*conc to user@
    off = pf.log_size()
    pf.inject(1, 1, 1024, NUSERS - 1)
    pf.inject(1, 1, 1024, 1, to="1user")
    pf.inject(2 * conc, conc, 1024, 1)
    want = NUSERS + 2 * conc
    n, to = wait_delivered(pf, an.root, [f"user{i}" for i in range(NUSERS)], want, off, 300)
    if to:
        log(f"{an.name}: priming delivered {n} of {want}:\n"
            + "\n".join(pf.log_since(off).splitlines()[-5:]))
    os.sync()
    time.sleep(1)
    before = an.root.count(users)
    total0 = an.root.total()
    off = pf.log_size()
    pids0 = {p: proc_ticks(p) for p in an.cg.pids("delivery")} if an.name in PIPE else {}
    u0 = an.cg.usages()
    t0 = time.time()
    rc = pf.inject(count, conc, a.size, rcpts)
    inject = time.time() - t0
    want = count * rcpts
    n, timed_out = wait_delivered(pf, an.root, users, before + want, off, 1800)
    t1 = an.root.newest_ctime(users)
    time.sleep(0.3)
    u1 = an.cg.usages()
    pipe_self = 0.0
    if an.name in PIPE:
        for p in an.cg.pids("delivery"):
            own, _ = proc_ticks(p)
            pipe_self += own - pids0.get(p, (0, 0))[0]
        pipe_self /= bench.HZ
    files = an.root.total() - total0
    sent, deferred, bounced, d, total = log_stats(pf.log_since(off))
    wall = t1 - t0 if not timed_out else float("nan")
    du = {k: (u1[k] - u0[k]) / 1e6 for k in u0}  # seconds
    server = du["server"]
    if an.name == "virtual":
        agent = du["delivery"]
    elif an.name in PIPE:
        agent = max(du["delivery"] - pipe_self, 0.0) + server
    else:
        agent = server
    ms = 1000.0 / max(want, 1)
    ok = (files == want and sent == want and deferred == 0 and bounced == 0 and rc == 0
          and not timed_out)
    if not ok:  # keep the evidence
        with open(os.path.join(a.out, f"maillog-{an.name}-c{conc}-r{rcpts}.txt"), "w") as f:
            f.write(pf.log_since(off))
    return dict(transport=an.name, size=a.size, concurrency=conc, rcpts=rcpts, count=count,
                deliveries=want, inject_s=f"{inject:.3f}", wall_s=f"{wall:.3f}",
                deliveries_per_s=f"{want / wall:.1f}",
                cpu_tree_ms=f"{du[''] * ms:.3f}",
                cpu_postfix_ms=f"{(du[''] - agent) * ms:.3f}",
                cpu_agent_ms=f"{agent * ms:.3f}", cpu_server_ms=f"{server * ms:.3f}",
                d_p50_ms=f"{pct(d, 50):.2f}", d_p99_ms=f"{pct(d, 99):.2f}",
                delay_p50_ms=f"{pct(total, 50):.2f}", delay_p99_ms=f"{pct(total, 99):.2f}",
                files_found=files, sent=sent, deferred=deferred, bounced=bounced, rc=rc,
                ok="yes" if ok else "NO")


def count_for(a, rcpts):
    return max(int((2000 if rcpts == 1 else 400) * a.scale), 20)


def markdown(rows):
    out = ["| transport | conc | rcpts | deliveries/s | CPU ms/delivery: tree | Postfix | agent "
           "| d p50 / p99 ms | delay p50 / p99 ms | files = deliveries, no deferral |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(rows, key=lambda r: (int(r["rcpts"]), int(r["concurrency"]),
                                         TRANSPORTS.index(r["transport"]))):
        out.append(f"| {r['transport']} | {r['concurrency']} | {r['rcpts']} "
                   f"| {float(r['deliveries_per_s']):.0f} | {r['cpu_tree_ms']} "
                   f"| {r['cpu_postfix_ms']} | {r['cpu_agent_ms']} "
                   f"| {r['d_p50_ms']} / {r['d_p99_ms']} | {r['delay_p50_ms']} / {r['delay_p99_ms']} "
                   f"| {r['ok']} ({r['files_found']}/{r['deliveries']}) |")
    return "\n".join(out) + "\n"


def ensure_packages():
    bench.ensure_setup()
    need = [p for p in ("maildrop",)
            if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                              text=True).stdout.find("install ok installed") < 0]
    if need:
        bench.run(["apt-get", "install", "-y", "--no-install-recommends", *need],
                  env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                  stdout=subprocess.DEVNULL)


def run_anchors(a, transports, concs, rcpts_list, out_csv):
    """Every cell; returns the rows (also appended to out_csv)."""
    cg = Cgroup()
    pf = Postfix(a.work, cg, a.smtp_port)
    table = bench.Csv(out_csv, COLS)
    rows = []
    try:
        flip = False
        for rcpts in rcpts_list:
            for conc in concs:
                flip = not flip
                for name in (transports if flip else transports[::-1]):
                    an = Anchor(a, name, a.work, cg)
                    try:
                        an.start()
                        pf.configure(a, name, conc, an.root.root,
                                     getattr(an, "mailstow", None),
                                     getattr(an, "dovecot", None), an.filter)
                        pf.start()
                        r = cell(a, pf, an, conc, rcpts, count_for(a, rcpts))
                    finally:
                        pf.stop()
                        pf.remove()  # a fresh queue for each cell
                        an.stop()
                    table.row(r)
                    rows.append(r)
                    log(f"{name:14} c={conc} r={rcpts}: {float(r['deliveries_per_s']):.0f}/s "
                        f"cpu tree {r['cpu_tree_ms']} agent {r['cpu_agent_ms']} ms "
                        f"d p50 {r['d_p50_ms']} ms files {r['files_found']}/{r['deliveries']} "
                        f"{r['ok']}")
    finally:
        pf.stop()
        pf.remove()
        cg.remove()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default="/tmp/mailstow-anchors-results")
    ap.add_argument("--work", default="/tmp/mailstow-anchors")
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--concs", default="1,16")
    ap.add_argument("--rcpts", default="1,10")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the messages per cell (2000 with 1 rcpt, 400 with 10)")
    ap.add_argument("--smtp-port", type=int, default=25250)
    a = ap.parse_args()
    if not a.work.startswith("/tmp/"):
        raise SystemExit("anchors: --work must be under /tmp")
    a.bin = os.path.abspath(a.bin)
    transports = a.transports.split(",")
    for t in transports:
        if t not in TRANSPORTS:
            raise SystemExit(f"anchors: unknown transport {t}")
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    ensure_packages()
    rows = run_anchors(a, transports, [int(x) for x in a.concs.split(",")],
                       [int(x) for x in a.rcpts.split(",")], os.path.join(a.out, "anchors.csv"))
    with open(os.path.join(a.out, "anchors.md"), "w") as f:
        f.write(markdown(rows))
    print(markdown(rows))
    shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    main()
