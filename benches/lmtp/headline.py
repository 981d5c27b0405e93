#!/usr/bin/env python3
"""headline.py - BENCHMARKS.md's headline table against issue 19's targets,
every ratio from one run of exactly the cells the targets need (bench.py's
and anchors.py's functions). Must not touch anything outside WORK (under
/tmp), OUT and its own cgroup, send mail anywhere but 127.0.0.1, or signal a
process it did not start.

Cells:
  disk floor    floor.py, 4 KiB, 1 and 16 writers (one directory; a directory each)
  4 KiB x 1     Dovecot's LMTP and mailstow, c=1 and c=16, smtp-source into
                one mailbox and lmtp-client over 100 users (bench.py's cells)
  10 MiB x 10   Dovecot's LMTP and mailstow, c=1 and c=16, smtp-source
  memory        mailstow: RSS with 100 idle sessions after deliveries to all
                100 users (their indexes open); RSS growth for one 100 MiB message
  scale         mailstow with 10 and with 10,000 users, c=16 (lmtp-client)
  anchors       anchors.py: Postfix into virtual(8), dovecot-lda, maildrop,
                mailstow pipe and mailstow LMTP, 4 KiB x 1, c=1 and c=16

Usage (as root): benches/lmtp/headline.py --bin target/release/mailstow
    --client target/release/examples/lmtp-client --out OUT [--scale 1.0]
    [--work /tmp/mailstow-headline]
Output (OUT): headline.md (the table, also on stdout), results.md
(summarize.py's tables of the same run), anchors.md, and the CSV files.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import anchors  # noqa: E402
import bench  # noqa: E402
from bench import log  # noqa: E402

KIB4, MIB10 = 4096, 10 * 1024 * 1024


def git(*args):
    r = subprocess.run(["git", "-C", HERE, *args], capture_output=True, text=True)
    return r.stdout.strip()


def utc():
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def measure(a):
    """Run every cell; returns the measurements as a dict."""
    res = {"floor": {}, "load": {}, "lat": {}}
    log("disk floor")
    fl = os.path.join(a.out, "floor.csv")
    with open(fl, "w") as f:
        bench.run([sys.executable, os.path.join(HERE, "floor.py"), os.path.join(a.work, "floor"),
                   "--header", "--sizes", str(KIB4), "--writers", "1,16"], stdout=f)
    for r in csv.DictReader(open(fl)):
        res["floor"][(int(r["writers"]), r["layout"])] = float(r["ops_per_s"])

    load = bench.Csv(os.path.join(a.out, "load.csv"), bench.LOAD_COLS)
    lat = bench.Csv(os.path.join(a.out, "latency.csv"), bench.LAT_COLS)
    servers = [bench.Dovecot(a.work), bench.Mailstow(a.work, a.bin)]
    try:
        for s in servers:  # as bench.py's matrix: start, then warm up
            s.start("nosieve")
            bench.settle(s)
            subprocess.run([a.client, "--target", s.target, "-n", "300", "-c", "16", "--rcpts",
                            "10"], stdout=subprocess.DEVNULL)
        flip = False
        for size, rcpts in ((KIB4, 1), (MIB10, 10)):
            for conc in (1, 16):
                n = bench.count_for(a, size, conc, rcpts)
                flip = not flip
                order = servers if flip else servers[::-1]
                key = dict(mode="nosieve", size=size, concurrency=conc, rcpts=rcpts)
                for s in order:
                    bench.settle(s, a)
                    r = dict(key, server=s.name, **bench.smtp_source(s, n, conc, size, rcpts))
                    load.row(r)
                    res["load"][(size, rcpts, conc, s.name)] = r
                    log(f"{s.name:8} smtp-source size={size} c={conc} r={rcpts}: "
                        f"{r['deliveries_per_s']}/s cpu/1000={r['cpu_s_per_1000']} "
                        f"files {r['files_found']}/{r['expected']}")
                if size != KIB4:
                    continue
                for s in order:
                    bench.settle(s, a)
                    r = dict(key, server=s.name, **bench.client(a, s, n, conc, size, rcpts))
                    lat.row(r)
                    res["lat"][(size, rcpts, conc, s.name)] = r
                    log(f"{s.name:8} lmtp-client c={conc}: {r['deliveries_per_s']}/s "
                        f"files {r['files_found']}/{r['expected']}")
    finally:
        for s in servers:
            s.stop()

    ex = bench.Csv(os.path.join(a.out, "extras.csv"), ["server", "what", "value", "unit"])
    m = servers[1]
    try:
        m.start("nosieve")
        base, idle = bench.idle_rss(a, m)
        before, big = bench.big_message(a, m)
    finally:
        m.stop()
    res["idle"], res["big"] = (base, idle), (before, big)
    for what, v in (("rss before idle sessions", base[0]), ("rss with 100 idle sessions", idle[0]),
                    ("rss before 100 MiB message", before[0]),
                    ("peak rss during 100 MiB message", big["peak_rss_kib"])):
        ex.row(dict(server="mailstow", what=what, value=v, unit="KiB"))
    res["scale"] = {}
    for nusers in (10, 10000):
        r = bench.users_scale(a, a.work, nusers, count=max(int(4000 * a.scale), 400))
        res["scale"][nusers] = r
        for k in ("deliveries_per_s", "cpu_s_per_1000", "peak_rss_kib", "files_found",
                  "expected"):
            ex.row(dict(server="mailstow", what=f"{nusers} users, c=16: {k}", value=r[k],
                        unit=""))
        log(f"mailstow {nusers} users: {r['deliveries_per_s']}/s cpu/1000 {r['cpu_s_per_1000']}")

    aa = SimpleNamespace(bin=a.bin, out=a.out, work=os.path.join(a.work, "anchors"),
                         size=KIB4, scale=a.scale, smtp_port=a.smtp_port)
    os.makedirs(aa.work, exist_ok=True)
    os.chmod(aa.work, 0o755)
    rows = anchors.run_anchors(aa, ["virtual", "dovecot-lda", "maildrop", "mailstow-pipe",
                                    "mailstow-lmtp"], [1, 16], [1],
                               os.path.join(a.out, "anchors.csv"))
    with open(os.path.join(a.out, "anchors.md"), "w") as f:
        f.write(anchors.markdown(rows))
    res["anchors"] = {(r["transport"], int(r["concurrency"])): r for r in rows}
    return res


def f(x):
    return float(x) if x not in (None, "") else float("nan")


def yes(ok):
    return "yes" if ok else "no"


def table(res):
    """[(target, measured, met)]"""
    out = []
    L, T, F = res["load"], res["lat"], res["floor"]
    bad = [k for k, r in L.items() if r["files_found"] != r["expected"] or r["rc"] != 0]
    bad += [k for k, r in T.items() if r["files_found"] != r["expected"] or r["errors"] not in ("0", "")]

    def dps(d, k, who):
        return f(d[k + (who,)]["deliveries_per_s"])

    def cpu(d, k, who):
        return f(d[k + (who,)]["cpu_s_per_1000"])

    for conc in (1, 16):
        k = (KIB4, 1, conc)
        ms, ds, mc, dc = dps(L, k, "mailstow"), dps(L, k, "dovecot"), dps(T, k, "mailstow"), \
            dps(T, k, "dovecot")
        out.append((f"4 KiB, 1 rcpt, c={conc}: deliveries/s ≥ 3x Dovecot's LMTP",
                    f"smtp-source {ms:.0f} vs {ds:.0f} ({ms / ds:.2f}x); "
                    f"lmtp-client {mc:.0f} vs {dc:.0f} ({mc / dc:.2f}x)",
                    yes(ms >= 3 * ds and mc >= 3 * dc)))
    fl1 = F.get((1, "shared"), float("nan"))
    ms, mc = dps(L, (KIB4, 1, 1), "mailstow"), dps(T, (KIB4, 1, 1), "mailstow")
    out.append(("c=1 at ≥ 70% of the one-writer disk floor",
                f"smtp-source {ms:.0f}/s = {100 * ms / fl1:.0f}%, lmtp-client {mc:.0f}/s = "
                f"{100 * mc / fl1:.0f}% of {fl1:.0f}/s", yes(ms >= 0.7 * fl1 and mc >= 0.7 * fl1)))
    fs, fo = F.get((16, "shared"), float("nan")), F.get((16, "own"), float("nan"))
    ms, mc = dps(L, (KIB4, 1, 16), "mailstow"), dps(T, (KIB4, 1, 16), "mailstow")
    out.append(("c=16 above the 16-writer floor",
                f"smtp-source (one mailbox) {ms:.0f}/s vs {fs:.0f}/s in one directory; "
                f"lmtp-client (100 users) {mc:.0f}/s vs {fo:.0f}/s in a directory each",
                yes(ms > fs and mc > fo)))
    parts, ok = [], True
    for conc in (1, 16):
        k = (MIB10, 10, conc)
        m, d = dps(L, k, "mailstow"), dps(L, k, "dovecot")
        parts.append(f"c={conc}: {m:.1f} vs {d:.1f} ({m / d:.2f}x)")
        ok &= m >= 2 * d
    out.append(("10 MiB x 10 rcpts: deliveries/s ≥ 2x Dovecot's LMTP (smtp-source)",
                "; ".join(parts), yes(ok)))
    s10, s10k = res["scale"][10], res["scale"][10000]
    d10, d10k = f(s10["deliveries_per_s"]), f(s10k["deliveries_per_s"])
    c10, c10k = f(s10["cpu_s_per_1000"]), f(s10k["cpu_s_per_1000"])
    out.append(("10,000 mailboxes within 20% of 10 (deliveries/s and CPU per delivery, c=16)",
                f"{d10k:.0f} vs {d10:.0f}/s ({d10k / d10:.2f}); CPU {c10k:.2f} vs {c10:.2f} ms "
                f"({c10k / c10:.2f})", yes(d10k >= 0.8 * d10 and c10k <= 1.2 * c10)))
    base, idle = res["idle"]
    out.append(("RSS < 40 MiB with 100 idle sessions and 100 open indexes",
                f"{idle[0] / 1024:.1f} MiB (before the sessions {base[0] / 1024:.1f} MiB)",
                yes(idle[0] < 40 * 1024)))
    before, big = res["big"]
    grow = big["peak_rss_kib"] - before[0]
    out.append(("a 100 MiB message grows RSS < 20 MiB",
                f"{before[0] / 1024:.1f} → {big['peak_rss_kib'] / 1024:.1f} MiB "
                f"(+{grow / 1024:.1f} MiB)", yes(grow < 20 * 1024 and big["files_found"] == 1)))
    for conc in (1, 16):
        k = (KIB4, 1, conc)
        ms, ds, mc, dc = cpu(L, k, "mailstow"), cpu(L, k, "dovecot"), cpu(T, k, "mailstow"), \
            cpu(T, k, "dovecot")
        out.append((f"CPU per delivery ≤ 1/4 of Dovecot's, c={conc}",
                    f"smtp-source {ms:.2f} vs {ds:.2f} ms ({ms / ds:.2f}); "
                    f"lmtp-client {mc:.2f} vs {dc:.2f} ms ({mc / dc:.2f})",
                    yes(ms <= ds / 4 and mc <= dc / 4)))
    A = res["anchors"]
    for mine, label in (("mailstow-lmtp", "mailstow's LMTP"), ("mailstow-pipe", "mailstow's pipe mode")):
        parts, ok = [], True
        for conc in (1, 16):
            v = {t: f(A[(t, conc)]["deliveries_per_s"]) for t in
                 ("virtual", "dovecot-lda", "maildrop", mine)}
            best = max(("virtual", "dovecot-lda", "maildrop"), key=lambda t: v[t])
            parts.append(f"c={conc}: {v[mine]:.0f}/s; virtual {v['virtual']:.0f}, dovecot-lda "
                         f"{v['dovecot-lda']:.0f}, maildrop {v['maildrop']:.0f} "
                         f"({v[mine] / v[best]:.2f}x the best)")
            ok &= v[mine] > v[best]
        out.append((f"Postfix → {label} ahead of virtual(8), dovecot-lda and maildrop "
                    "(end to end, 4 KiB x 1)", "; ".join(parts), yes(ok)))
    bad += [k for k, r in A.items() if r["ok"] != "yes"]
    for n, r in res["scale"].items():
        if r["files_found"] != r["expected"]:
            bad.append(("scale", n))
    out.append(("nothing lost: every cell's files = deliveries (Postfix: no deferral or bounce)",
                "all cells" if not bad else "NOT: " + ", ".join(str(b) for b in bad),
                yes(not bad)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default="/tmp/mailstow-headline")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the messages per cell")
    ap.add_argument("--smtp-port", type=int, default=25250)
    a = ap.parse_args()
    if not a.work.startswith("/tmp/"):
        raise SystemExit("headline: --work must be under /tmp")
    a.bin, a.client = os.path.abspath(a.bin), os.path.abspath(a.client)
    os.makedirs(a.out, exist_ok=True)
    for name in ("floor.csv", "load.csv", "latency.csv", "extras.csv", "anchors.csv"):
        if os.path.exists(os.path.join(a.out, name)):  # one run per OUT
            os.unlink(os.path.join(a.out, name))
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    bench.ensure_setup()
    anchors.ensure_packages()
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    started = utc()
    bench.machine(a)
    res = measure(a)
    ended = utc()
    rows = table(res)
    text = [f"Headline of issue 19's targets at {commit[:12]}"
            f"{' (with uncommitted changes)' if dirty else ''} ({git('log', '-1', '--format=%s')}),"
            f" measured {started} – {ended}, --scale {a.scale}; every ratio from this one run.",
            "4 KiB messages unless said otherwise; smtp-source sends to one mailbox, "
            "lmtp-client spreads over 100 users.", "",
            "| target | measured | met? |", "| --- | --- | --- |"]
    text += [f"| {t} | {m} | {ok} |" for t, m, ok in rows]
    text = "\n".join(text) + "\n"
    with open(os.path.join(a.out, "headline.md"), "w") as fh:
        fh.write(text)
    bench.run([sys.executable, os.path.join(HERE, "summarize.py"), a.out],
              stdout=open(os.path.join(a.out, "results.md"), "w"))
    shutil.rmtree(a.work, ignore_errors=True)
    print(text)


if __name__ == "__main__":
    main()
