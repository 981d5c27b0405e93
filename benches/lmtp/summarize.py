#!/usr/bin/env python3
"""summarize.py DIR - the markdown tables of one bench.py run (floor.csv,
load.csv, latency.csv, extras.csv in DIR) on stdout: mailstow and Dovecot side
by side per cell, with ratios and the fraction of the disk's floor. Reads
only; several rows of one cell (repeated runs) are shown as their median.
"""
import csv
import os
import statistics
import sys
from collections import defaultdict


def rows(d, name):
    p = os.path.join(d, name)
    return list(csv.DictReader(open(p))) if os.path.exists(p) else []


def med(rs, col):
    vals = [float(r[col]) for r in rs if r.get(col) not in (None, "")]
    return statistics.median(vals) if vals else float("nan")


def by_cell(rows_, mode):
    """(size, rcpts, concurrency) -> server -> rows of one mode."""
    g = defaultdict(lambda: defaultdict(list))
    for r in rows_:
        if r["mode"] == mode:
            g[(int(r["size"]), int(r["rcpts"]), int(r["concurrency"]))][r["server"]].append(r)
    return g


def size_name(s):
    s = int(s)
    return f"{s // 1048576} MiB" if s >= 1048576 else f"{s // 1024} KiB"


def ratio(a, b, invert=False):
    if not a or not b or a != a or b != b:
        return "–"
    return f"{(b / a if invert else a / b):.1f}x"


def main():
    d = sys.argv[1]
    floor = defaultdict(dict)
    fl = rows(d, "floor.csv")
    if fl:
        print("### Disk floor (floor.py: create + write + fsync + rename + fsync(dir))\n")
        print("| size | writers | one directory /s | a directory each /s |")
        print("| --- | --- | --- | --- |")
        by = defaultdict(dict)
        for r in fl:
            by[(int(r["size"]), int(r["writers"]))][r["layout"]] = float(r["ops_per_s"])
        for (size, w), v in sorted(by.items()):
            floor[size][w] = v
            print(f"| {size_name(size)} | {w} | {v.get('shared', 0):.0f} | "
                  f"{v.get('own', v.get('shared', 0)):.0f} |")
        print()

    load, lat = rows(d, "load.csv"), rows(d, "latency.csv")
    for mode in sorted({r["mode"] for r in load}, key=lambda m: m != "nosieve"):
        g = by_cell(load, mode)
        title = "no Sieve" if mode == "nosieve" else "10-rule Sieve script"
        print(f"### Throughput, {title} (smtp-source)\n")
        print("| size | rcpts | conc | mailstow deliveries/s | Dovecot | ratio | mailstow % of floor "
              "| CPU s/1000 mailstow | Dovecot | ratio | peak RSS MiB mailstow | Dovecot RSS / PSS MiB "
              "| files ok |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in sorted(g):
            m, v = g[k].get("mailstow", []), g[k].get("dovecot", [])
            size, rc, conc = k
            md, vd = med(m, "deliveries_per_s"), med(v, "deliveries_per_s")
            mc, vc = med(m, "cpu_s_per_1000"), med(v, "cpu_s_per_1000")
            # one mailbox (r=1) writes one directory; ten mailboxes, ten
            fl = floor.get(size, {}).get(conc, {})
            fv = fl.get("shared" if rc == 1 or conc == 1 else "own")
            frac = f"{100 * md / fv:.0f}%" if fv and md == md else "–"
            ok = all(r["files_found"] == r["expected"] and r["rc"] == "0" for r in m + v)
            print(f"| {size_name(size)} | {rc} | {conc} | {md:.0f} | {vd:.0f} | {ratio(md, vd)} | {frac} "
                  f"| {mc:.2f} | {vc:.2f} | {ratio(mc, vc, True)} | {med(m, 'peak_rss_kib') / 1024:.1f} "
                  f"| {med(v, 'peak_rss_kib') / 1024:.0f} / {med(v, 'peak_pss_kib') / 1024:.0f} "
                  f"| {'yes' if ok else 'NO'} |")
        print()
        g = by_cell(lat, mode)
        print(f"### Latency, {title} (lmtp-client, 100 users)\n")
        print("| size | rcpts | conc | mailstow p50 / p99 ms | Dovecot p50 / p99 ms | p99 ratio "
              "| mailstow deliveries/s | Dovecot | ratio | refused | files ok |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for k in sorted(g):
            m, v = g[k].get("mailstow", []), g[k].get("dovecot", [])
            size, rc, conc = k
            mp, vp = med(m, "p99_ms"), med(v, "p99_ms")
            md, vd = med(m, "deliveries_per_s"), med(v, "deliveries_per_s")
            ok = all(r["files_found"] == r["expected"] for r in m + v)
            err = sum(int(r["errors"] or 0) for r in m + v)
            print(f"| {size_name(size)} | {rc} | {conc} | {med(m, 'p50_ms'):.1f} / {mp:.1f} "
                  f"| {med(v, 'p50_ms'):.1f} / {vp:.1f} | {ratio(mp, vp, True)} | {md:.0f} | {vd:.0f} "
                  f"| {ratio(md, vd)} | {err} | {'yes' if ok else 'NO'} |")
        print()

    ex = rows(d, "extras.csv")
    if ex:
        print("### Memory and scale\n")
        print("| server | measurement | value |")
        print("| --- | --- | --- |")
        for r in ex:
            v, u = r["value"], r["unit"]
            if u == "KiB":
                v, u = f"{int(v) / 1024:.1f}", "MiB"
            print(f"| {r['server']} | {r['what']} | {v} {u} |")
        print()


if __name__ == "__main__":
    main()
