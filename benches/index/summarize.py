#!/usr/bin/env python3
# summarize.py - turns delivery.sh's load.csv and latency.csv into markdown tables (median [min–max], index cost per delivery against enabled = false); must not modify its input files.
"""Usage: summarize.py OUTDIR   (the OUTDIR given to delivery.sh)"""
import csv
import os
import statistics
import sys
from collections import defaultdict

MODES = ["off", "own", "dovecot"]
LABEL = {"off": "index off", "own": "index, own UIDs (default)", "dovecot": "index, uids = \"dovecot\""}


def mm(vals, fmt="{:.0f}"):
    vals = sorted(vals)
    return f"{fmt.format(statistics.median(vals))} [{fmt.format(vals[0])}–{fmt.format(vals[-1])}]"


def spread(vals):
    m = statistics.median(vals)
    return (max(vals) - min(vals)) / m * 100 if m else float("nan")


def rss(rs):
    v = [int(r["peak_rss_kib"]) / 1024 for r in rs if r.get("peak_rss_kib")]
    return mm(v, "{:.1f}") if v else "–"


def main():
    d = sys.argv[1]
    load = list(csv.DictReader(open(os.path.join(d, "load.csv"))))
    g = defaultdict(list)
    for r in load:
        g[(r["mode"], int(r["concurrency"]))].append(r)
    off = {(r["rep"], int(r["concurrency"])): float(r["deliveries_per_s"]) for r in load if r["mode"] == "off"}
    print("| load | conc | n | deliveries/s | spread (max-min)/median | ms per delivery (1000/rate) | index cost ms/delivery, paired with the same rep's \"off\" run | peak server RSS MiB | files ok | load1 at start |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for conc in sorted({k[1] for k in g}):
        base = None
        for mode in MODES:
            rs = g.get((mode, conc))
            if not rs:
                continue
            rates = [float(r["deliveries_per_s"]) for r in rs]
            med = statistics.median(rates)
            if mode == "off":
                base = med
            paired = [1000 / float(r["deliveries_per_s"]) - 1000 / off[(r["rep"], conc)]
                      for r in rs if (r["rep"], conc) in off]
            cost = "–" if mode == "off" or not paired else mm(paired, "{:.2f}")
            ok = all(r["files_found"] == r["expected"] and r["rc"] == "0" for r in rs)
            print(f"| {LABEL[mode]} | {conc} | {len(rs)} | {mm(rates)} | {spread(rates):.0f}% | {1000 / med:.2f} | {cost} | "
                  f"{rss(rs)} | {'yes' if ok else 'NO'} | "
                  f"{mm([float(r['load1']) for r in rs], '{:.2f}')} |")
    p = os.path.join(d, "latency.csv")
    if os.path.exists(p):
        lat = list(csv.DictReader(open(p)))
        g = defaultdict(list)
        for r in lat:
            g[(r["mode"], int(r["concurrency"]))].append(r)
        print()
        print("| load | conc | n | msgs/s | p50 ms | p90 ms | p99 ms | max ms | errors |")
        print("|---|---|---|---|---|---|---|---|---|")
        for conc in sorted({k[1] for k in g}):
            for mode in MODES:
                rs = g.get((mode, conc))
                if not rs:
                    continue
                f = lambda c, fmt="{:.2f}": mm([float(r[c]) for r in rs], fmt)
                print(f"| {LABEL[mode]} | {conc} | {len(rs)} | {f('msgs_per_s', '{:.0f}')} | {f('p50_ms')} | {f('p90_ms')} | "
                      f"{f('p99_ms', '{:.1f}')} | {f('max_ms', '{:.0f}')} | {sum(int(r['errors']) for r in rs)} |")


if __name__ == "__main__":
    main()
