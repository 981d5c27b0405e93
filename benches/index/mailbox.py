#!/usr/bin/env python3
# mailbox.py - times `mailstow index rebuild|verify|list|sync|search` on one large generated mailbox (gen-maildir.py), cold and warm page cache, with wall time and peak RSS from /usr/bin/time -v and the index file size; must not write outside WORK (under /tmp), touch any other process, or use the network (dropping the page cache, as root, is its only system-wide effect).
"""Usage: mailbox.py MAILSTOW_BIN [--work /tmp/ix-mailbox] [--count 100000] [--reps 3]
                    [--search-reps 5] [--no-cold] [--no-search] [--only-fresh] [--uids own|dovecot]
                    [--out FILE.json]
       mailbox.py --summarize FILE.json

WORK gets users, m.toml and mail/example.test/user/Maildir (generated once by
gen-maildir.py when missing; delete WORK to regenerate). Per rep, in order:
  rebuild-fresh  cold, then warm   (index.sqlite* deleted first)
  rebuild-again  warm, then cold   (everything indexed: every file re-read)
  verify         warm, cold
  list           warm, cold        (reconcile with nothing changed, rows to /dev/null)
  sync           warm              (the reconcile alone)
  renames+sync   1000 flag renames (flag-renames.py, :2,S -> :2,RS on odd reps,
                 back on even reps), then `index sync`; then `index sync` again at
                 once (cur/ mtimes under 2 s old are not trusted, so it rescans),
                 then once more after 2.5 s (settled)
Then the searches (warm, --search-reps runs each, median), each also with --limit 50.
"Cold" = `sync; echo 3 > /proc/sys/vm/drop_caches` right before the command.
Wall time is measured around the command (perf_counter, includes /usr/bin/time's exec);
peak RSS is /usr/bin/time -v's "Maximum resident set size".
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
USER = "user@example.test"


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(cmd, cwd, cold=False, stdout=subprocess.DEVNULL):
    """Runs cmd under /usr/bin/time -v; returns a dict of measurements."""
    if cold:
        drop_caches()
    load1 = float(open("/proc/loadavg").read().split()[0])
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    err = p.stderr

    def field(name, conv=int):
        m = re.search(re.escape(name) + r":\s*(\S+)", err)
        return conv(m.group(1)) if m else None

    r = {
        "wall_s": wall,
        "rss_kib": field("Maximum resident set size (kbytes)"),
        "user_s": field("User time (seconds)", float),
        "sys_s": field("System time (seconds)", float),
        "major_faults": field("Major (requiring I/O) page faults"),
        "fs_inputs": field("File system inputs"),
        "fs_outputs": field("File system outputs"),
        "rc": p.returncode,
        "cold": cold,
        "load1": load1,
    }
    if stdout == subprocess.PIPE:
        r["stdout"] = p.stdout
    tail = [l for l in err.splitlines() if not l.startswith("\t") and "Command exited" not in l]
    if tail:
        r["stderr"] = "\n".join(tail[-5:])
    return r


def index_size(home):
    d = os.path.join(home, ".mailstow")
    out = {}
    for s in ("", "-wal", "-shm"):
        p = os.path.join(d, "index.sqlite" + s)
        out["index.sqlite" + s] = os.path.getsize(p) if os.path.exists(p) else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin")
    ap.add_argument("--work", default="/tmp/ix-mailbox")
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--search-reps", type=int, default=5)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--only-fresh", action="store_true", help="only rebuild-fresh and rebuild-again (memory scaling)")
    ap.add_argument("--uids", choices=["own", "dovecot"], default="own", help="[index] uids")
    ap.add_argument("--out")
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    if not work.startswith("/tmp/"):
        sys.exit("mailbox.py: --work must be under /tmp")
    binp = os.path.abspath(a.bin)
    home = os.path.join(work, "mail/example.test/user")
    maildir = os.path.join(home, "Maildir")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(work, "users"), "w") as f:
        f.write(f"{USER}:{{PLAIN}}x::::::\n")
    with open(os.path.join(work, "m.toml"), "w") as f:
        f.write('hostname = "bench.test"\n[storage]\nmail_root = "mail"\n[users]\npasswd_file = "users"\n[log]\nlevel = "warn"\n')
        if a.uids == "dovecot":
            f.write('[index]\nuids = "dovecot"\n')
    manifest = os.path.join(work, "gen-manifest.json")
    if not os.path.isdir(maildir):
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(HERE, "gen-maildir.py"), maildir, "--count", str(a.count),
                        "--manifest", manifest], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["sync"], check=True)
        print(f"generated {a.count} messages in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        time.sleep(2.5)  # let the folders' mtimes settle (the index ignores mtimes < 2 s old)
    exp = json.load(open(manifest))
    du = subprocess.run(["du", "-sb", maildir], capture_output=True, text=True).stdout.split()[0]
    results = {"bin": binp, "uids": a.uids, "count": exp["total"], "maildir_bytes": int(du), "runs": [], "searches": [],
               "expected": exp}

    def ix(sub, *args):
        return [binp, "index", sub, USER, "--config", "m.toml", *args]

    def rec(step, rep, r, **extra):
        r.update(step=step, rep=rep, **extra)
        r.pop("stdout", None)
        results["runs"].append(r)
        print(f"{step:<22} rep={rep} {'cold' if r['cold'] else 'warm'} wall={r['wall_s']:.3f}s "
              f"rss={r['rss_kib'] / 1024:.1f}MiB user={r['user_s']} sys={r['sys_s']} "
              f"in={r['fs_inputs']} rc={r['rc']} load={r['load1']} {r.get('stderr', '')}", file=sys.stderr)

    def rm_index():
        for s in ("", "-wal", "-shm"):
            p = os.path.join(home, ".mailstow", "index.sqlite" + s)
            if os.path.exists(p):
                os.remove(p)

    cold_ok = not a.no_cold
    for rep in range(1, a.reps + 1):
        modes = [True, False] if cold_ok else [False]
        for cold in modes:
            rm_index()
            # warm: every file has just been read by the cold run (or a previous step)
            rec("rebuild-fresh", rep, timed(ix("rebuild"), work, cold=cold), size=index_size(home))
        for cold in reversed(modes):
            rec("rebuild-again", rep, timed(ix("rebuild"), work, cold=cold), size=index_size(home))
        if a.only_fresh:
            continue
        for cold in reversed(modes):
            rec("verify", rep, timed(ix("verify"), work, cold=cold))
        for cold in reversed(modes):
            rec("list", rep, timed(ix("list"), work, cold=cold))
        rec("sync", rep, timed(ix("sync"), work))
        frm, to = ("2,S", "2,RS") if rep % 2 else ("2,RS", "2,S")
        subprocess.run([sys.executable, os.path.join(HERE, "flag-renames.py"), maildir, "-n", "1000",
                        "--from-info", frm, "--to-info", to, "--seed", str(rep)], check=True,
                       stdout=subprocess.DEVNULL)
        rec("renames-sync", rep, timed(ix("sync"), work))
        rec("renames-sync-again", rep, timed(ix("sync"), work))
        time.sleep(2.5)
        rec("renames-sync-settled", rep, timed(ix("sync"), work))
        rec("sync-after-settled", rep, timed(ix("sync"), work))

    if not a.no_search and not a.only_fresh:
        mid = exp["message_id_probe"]
        queries = [
            ("sync (reconcile only, no search)", None, None),
            ("--from zimmermann", ["--from", "zimmermann"], "from_zimmermann"),
            ("--subject \"quarterly report\"", ["--subject", "quarterly report"], "subject_quarterly_report"),
            ("--message-id", ["--message-id", mid], None),
            ("--since 2024-03-01 --before 2024-04-01", ["--since", "2024-03-01", "--before", "2024-04-01"],
             "since_2024_03_01_before_2024_04_01"),
            ("--since 2025-01-01 --before 2026-01-01", ["--since", "2025-01-01", "--before", "2026-01-01"],
             "since_2025_01_01_before_2026_01_01"),
            ("--flag \\Seen", ["--flag", "\\Seen"], "seen"),
            ("--flag $Forwarded (keyword)", ["--flag", "$Forwarded"], "keyword_forwarded"),
            ("--from zimmermann --flag \\Seen --since 2025-01-01 --before 2026-01-01",
             ["--from", "zimmermann", "--flag", "\\Seen", "--since", "2025-01-01", "--before", "2026-01-01"],
             "zimmermann_and_seen_2025"),
            ("--folder Lists.rust --subject async --no-flag \\Seen",
             ["--folder", "Lists.rust", "--subject", "async", "--no-flag", "\\Seen"], None),
        ]
        for name, args, key in queries:
            for limit in ([None] if args is None else [None, 50]):
                cmd = ix("sync") if args is None else ix("search", *args, *(["--limit", str(limit)] if limit else []))
                runs = []
                rows = None
                for _ in range(a.search_reps):
                    r = timed(cmd, work, stdout=subprocess.PIPE)
                    rows = len(r.get("stdout", "").splitlines())
                    runs.append(r)
                walls = sorted(r["wall_s"] for r in runs)
                s = {"query": name, "limit": limit, "rows": rows, "expected": exp.get(key) if key else None, "median_s": statistics.median(walls),
                     "min_s": walls[0], "max_s": walls[-1],
                     "rss_kib": statistics.median(r["rss_kib"] for r in runs),
                     "rc": max(r["rc"] for r in runs), "load1": runs[0]["load1"]}
                results["searches"].append(s)
                print(f"search {name} limit={limit}: rows={rows} median={s['median_s'] * 1000:.1f}ms "
                      f"[{walls[0] * 1000:.1f}-{walls[-1] * 1000:.1f}] rss={s['rss_kib'] / 1024:.1f}MiB rc={s['rc']}",
                      file=sys.stderr)

    out = a.out or os.path.join(work, "results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    summarize(results)


def summarize(res):
    from collections import defaultdict
    g = defaultdict(list)
    for r in res["runs"]:
        g[(r["step"], r["cold"])].append(r)
    print(f"mailbox: {res['count']} messages, {res['maildir_bytes'] / 2**20:.0f} MiB; uids = {res.get('uids', 'own')}; {res['bin']}")
    print("| step | cache | n | wall s, median [min–max] | peak RSS MiB, median [min–max] | user+sys s |")
    print("|---|---|---|---|---|---|")
    order = ["rebuild-fresh", "rebuild-again", "verify", "list", "sync", "renames-sync", "renames-sync-again",
             "renames-sync-settled", "sync-after-settled"]
    for step in order:
        for cold in (True, False):
            rs = g.get((step, cold))
            if not rs:
                continue
            w = sorted(r["wall_s"] for r in rs)
            m = sorted(r["rss_kib"] / 1024 for r in rs)
            cpu = statistics.median(r["user_s"] + r["sys_s"] for r in rs)
            print(f"| {step} | {'cold' if cold else 'warm'} | {len(rs)} | {statistics.median(w):.3f} [{w[0]:.3f}–{w[-1]:.3f}] | "
                  f"{statistics.median(m):.1f} [{m[0]:.1f}–{m[-1]:.1f}] | {cpu:.2f} |")
    sizes = [r["size"] for r in res["runs"] if r["step"] == "rebuild-fresh" and "size" in r]
    if sizes:
        print(f"index size after rebuild-fresh: {sizes[-1]}")
    if res["searches"]:
        print()
        print("| query | limit | rows (generator's count) | median ms [min–max] | peak RSS MiB |")
        print("|---|---|---|---|---|")
        for s in res["searches"]:
            e = f" ({s['expected']})" if s.get("expected") is not None else ""
            print(f"| {s['query']} | {s['limit'] or '-'} | {s['rows']}{e} | {s['median_s'] * 1000:.0f} "
                  f"[{s['min_s'] * 1000:.0f}–{s['max_s'] * 1000:.0f}] | {s['rss_kib'] / 1024:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":
        summarize(json.load(open(sys.argv[2])))
    else:
        main()
