#!/usr/bin/python3
"""Turns trojan-scan benchmark lines (Gate.Benchmarks trojan-scan ... OUT.jsonl) into
  calibrate SCORES.jsonl   -> the calibration table (JSON, for Gate.Core/Checks/TrojanScan/trojan-calibration.json)
  report    RESULTS.jsonl  -> Markdown tables: detection / false-positive rate per trigger kind, per detector and combined.
Only clean models may be calibrated on: calibrate refuses any other kind."""
import hashlib
import json
import os
import statistics
import sys

import numpy as np

DETECTORS = ["neural-cleanse", "tabor", "mm-bd"]
# The class-referenced consensus over the detectors (Gate.Core/Checks/TrojanScan/ClassReference.cs): a column of the
# report, and computed by the check itself from the reference section below, so calibrate does not score it.
CONSENSUS = "class-reference"
DATA = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/fixtures/data"))


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
            if d["name"] not in DETECTORS:
                continue
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
        # Per-class values of every reference model: ClassReference compares each class of a scanned model with the same
        # class here. It applies only to scans whose dataset inputs have this SHA-256 (float32, C order): the same task.
        "reference": {
            "datasetSha256": hashlib.sha256(np.load(os.path.join(DATA, "digits_test_x.npy")).astype("<f4").tobytes()).hexdigest(),
            "classes": len(rows[0]["detectors"][0]["perClass"]),
            "inputShape": [1, 8, 8],
            "models": [{"file": r["file"], "perClass": {d["name"]: d["perClass"] for d in r["detectors"] if d["name"] in DETECTORS}} for r in rows],
        },
    }
    print(json.dumps(out, indent=2))


def pct(k, n):
    return "—" if n == 0 else f"{100 * k / n:.0f}% ({k}/{n})"


def report(path):
    rows = load(path)
    kinds = ["clean"] + sorted({r["kind"] for r in rows} - {"clean"})
    print("| trigger kind | models | " + " | ".join(DETECTORS + [CONSENSUS]) + " | combined (FAIL, right class) | INCONCLUSIVE | median / max scan time |")
    print("|---|---|" + "---|" * (len(DETECTORS) + 1) + "---|---|---|")
    for kind in kinds:
        sel = [r for r in rows if r["kind"] == kind]
        cells = []
        for name in DETECTORS + [CONSENSUS]:
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
