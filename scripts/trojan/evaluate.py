#!/usr/bin/python3
"""Turns trojan-scan benchmark lines (Gate.Benchmarks trojan-scan ... OUT.jsonl) into
  calibrate SCORES.jsonl   -> the calibration table (JSON, for Gate.Core/Checks/TrojanScan/trojan-calibration.json)
  report    RESULTS.jsonl  -> Markdown tables: detection / false-positive rate per trigger kind, per detector and combined.
Only clean models may be calibrated on: calibrate refuses any other kind."""
import json
import statistics
import sys

DETECTORS = ["neural-cleanse", "tabor", "mm-bd"]


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def calibrate(path):
    rows = load(path)
    bad = [r["file"] for r in rows if r["kind"] != "clean"]
    if bad:
        sys.exit(f"calibration needs clean models only; got {bad}")
    stats, budgets = {}, {
        "neural-cleanse": {"samples": 64, "steps": 300, "maskPenalty": 0.01},
        "tabor": {"samples": 64, "steps": 300, "maskPenalty": 0.01, "smoothness": 0.5},
        "mm-bd": {"starts": 8, "steps": 200}}
    for r in rows:
        for d in r["detectors"]:
            stats.setdefault(d["name"], {"statistic": d["statistic"], "scores": []})["scores"].append(d["score"] if d["score"] is not None else 1e300)
    seeds = sorted({r["seed"] for r in rows})
    archs = sorted({r["arch"] for r in rows})
    counts = ", ".join(f"{sum(r['arch'] == a for r in rows)} {a.upper()}" for a in archs)
    out = {
        "description": "Trojan-scan detector statistics on clean reference models. The check's threshold for a false-positive rate a is the "
                       "ceil((1-a)(n+1))-th smallest clean score; the rate a threshold t implies is (1 + #{clean > t}) / (n + 1).",
        "referenceSet": f"{len(rows)} clean 8x8-digits classifiers ({counts}) "
                        f"from scripts/trojan/generate.py seeds {seeds[0]}-{seeds[-1]}, scanned with the default budget and policy seed 1234",
        "producedBy": "scripts/trojan/calibrate.sh",
        "detectors": {name: {"statistic": s["statistic"], "budget": budgets.get(name, {}), "cleanScores": sorted(round(v, 4) for v in s["scores"])}
                      for name, s in stats.items()},
    }
    print(json.dumps(out, indent=2))


def pct(k, n):
    return "—" if n == 0 else f"{100 * k / n:.0f}% ({k}/{n})"


def report(path):
    rows = load(path)
    kinds = ["clean"] + sorted({r["kind"] for r in rows} - {"clean"})
    print("| trigger kind | models | " + " | ".join(DETECTORS) + " | combined (FAIL, right class) | INCONCLUSIVE | median / max scan time |")
    print("|---|---|" + "---|" * len(DETECTORS) + "---|---|---|")
    for kind in kinds:
        sel = [r for r in rows if r["kind"] == kind]
        cells = []
        for name in DETECTORS:
            hits = 0
            for r in sel:
                d = next((d for d in r["detectors"] if d["name"] == name), None)
                if d is None:
                    continue
                flagged = d["flagged"]
                hits += flagged if kind == "clean" else (flagged and d["suspectClass"] in r["targets"])
            cells.append(pct(hits, len(sel)))
        if kind == "clean":
            combined = sum(r["verdict"] == "Fail" for r in sel)
        else:
            combined = sum(r["verdict"] == "Fail" and r.get("flaggedClass") in r["targets"] for r in sel)
        inconclusive = sum(r["verdict"] == "Inconclusive" for r in sel)
        times = [r["seconds"] for r in sel]
        label = f"{kind} (false positives)" if kind == "clean" else kind
        print(f"| {label} | {len(sel)} | " + " | ".join(cells) + f" | {pct(combined, len(sel))} | {pct(inconclusive, len(sel))} | "
              f"{statistics.median(times):.1f} s / {max(times):.1f} s |")
    loads = [float(r["loadAverage"]) for r in rows if r.get("loadAverage", "?") != "?"]
    if loads:
        print(f"\nLoad average (1 min) while scanning: {min(loads):.0f}–{max(loads):.0f} on 2 cores.")


if __name__ == "__main__":
    {"calibrate": calibrate, "report": report}[sys.argv[1]](sys.argv[2])
