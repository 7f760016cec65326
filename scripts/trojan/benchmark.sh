#!/bin/sh
# The trojan-scan benchmark of docs/benchmarks/mechanistic.md: models neither the calibration (seeds 0-29) nor the
# development of the detectors (seeds 200-202) saw — generator seeds 300-302 for every trigger kind and both
# architectures, plus clean seeds 303-311 — each scanned by `trojan-scan` with its default options and the committed
# calibration, production runtime ONNX Runtime. Prints the Markdown table.
set -eu
cd "$(dirname "$0")/../.."
out=${OUT:-out/trojan}
rm -rf "$out/heldout" "$out/heldout-clean" "$out/heldout-results.jsonl"
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout" --seeds 300-302
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout-clean" --seeds 303-311 --kinds clean
dotnet build Gate.Benchmarks -c Release -v quiet -nologo
for d in heldout heldout-clean; do
  nice -n 5 dotnet Gate.Benchmarks/bin/Release/net10.0/Gate.Benchmarks.dll trojan-scan "$out/$d" ../shared/fixtures/data "$out/heldout-results.jsonl"
done
/usr/bin/python3 scripts/trojan/evaluate.py report "$out/heldout-results.jsonl"
