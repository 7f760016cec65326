#!/usr/bin/env python3
"""Summarises run_benchmark.sh CSVs as markdown: decided / wrong / undecided, time distribution, peak memory.
usage: summarize.py RESULTS.csv [MORE.csv ...]   (a later file's row replaces an earlier one for the same instance,
so a longer rerun of the undecided instances can be layered over a screening run)"""
import csv, statistics, sys

rows = {}
for path in sys.argv[1:]:
    with open(path) as f:
        for r in csv.DictReader(f):
            rows[(r["onnx"], r["vnnlib"])] = r
rs = list(rows.values())
# As in the competition, an answer that arrives after the timeout does not count (a wrong one still does).
for r in rs:
    if r["verdict"] == "correct" and float(r["wall_s"]) > float(r["timeout_s"]):
        r["verdict"], r["result"] = "undecided", "late " + r["result"]
dec = [r for r in rs if r["verdict"] == "correct"]
wrong = [r for r in rs if r["verdict"] == "WRONG"]
und = [r for r in rs if r["verdict"] == "undecided"]
def by(res, exp): return sum(1 for r in rs if r["result"] == res and r["expected"] == exp and r["verdict"] != "undecided")
t = sorted(float(r["wall_s"]) for r in dec)
q = lambda p: t[min(len(t) - 1, int(p * len(t)))] if t else float("nan")
print(f"| instances | decided | wrong | undecided | sat found / expected sat | unsat proved / expected unsat |")
print(f"|---|---|---|---|---|---|")
print(f"| {len(rs)} | {len(dec)} ({100 * len(dec) / max(1, len(rs)):.0f} %) | {len(wrong)} | {len(und)} "
      f"| {by('sat', 'sat')} / {sum(1 for r in rs if r['expected'] == 'sat')} "
      f"| {by('unsat', 'unsat')} / {sum(1 for r in rs if r['expected'] == 'unsat')} |")
print()
if t:
    print(f"Wall time of decided instances (process start to result file): min {t[0]:.1f} s, median {statistics.median(t):.1f} s, "
          f"90th percentile {q(0.9):.1f} s, max {t[-1]:.1f} s.")
rss = [int(r["peak_rss_kb"]) for r in rs if r["peak_rss_kb"].isdigit()]
if rss:
    print(f"Peak resident memory per instance: median {statistics.median(rss) / 1024:.0f} MiB, max {max(rss) / 1024:.0f} MiB.")
results = {}
for r in und: results[r["result"]] = results.get(r["result"], 0) + 1
if results: print("Undecided by result: " + ", ".join(f"{k} {v}" for k, v in sorted(results.items())) + ".")
