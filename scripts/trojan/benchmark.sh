#!/bin/sh
# The trojan-scan benchmark of docs/benchmarks/mechanistic.md: models neither the calibration (seeds 0-29), the
# development of the detectors (seeds 200-203) nor an earlier reported round (100-109, 300-311: their misses were
# studied) saw — generator seeds 400-404 for the compact triggers (patch, checkerboard, line), 400-402 for the others,
# both architectures, and clean seeds 400-414 — each scanned by `trojan-scan` with its default options and the
# committed calibration, production runtime ONNX Runtime. Prints the Markdown table.
# SEEDS / OTHER_SEEDS / CLEAN_SEEDS override the three ranges (e.g. to re-run an earlier round).
set -eu
cd "$(dirname "$0")/../.."
out=${OUT:-out/trojan}
seeds=${SEEDS:-400-404} other=${OTHER_SEEDS:-400-402} clean=${CLEAN_SEEDS:-400-414}
rm -rf "$out/heldout" "$out/heldout-other" "$out/heldout-clean" "$out/heldout-results.jsonl"
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout" --seeds "$seeds" --kinds patch,checkerboard,line
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout-other" --seeds "$other" --kinds blend,global,multi
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout-clean" --seeds "$clean" --kinds clean
dotnet build Gate.Benchmarks -c Release -v quiet -nologo
for d in heldout heldout-other heldout-clean; do
  nice -n 5 dotnet Gate.Benchmarks/bin/Release/net10.0/Gate.Benchmarks.dll trojan-scan "$out/$d" ../shared/fixtures/data "$out/heldout-results.jsonl"
done
/usr/bin/python3 scripts/trojan/evaluate.py report "$out/heldout-results.jsonl"
