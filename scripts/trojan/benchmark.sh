#!/bin/sh
# The trojan-scan benchmark of docs/benchmarks/mechanistic.md: models the calibration never saw (generator seeds
# 100-102 for every trigger kind and both architectures, plus clean seeds 105-109), each scanned by `trojan-scan` with
# its default options and the committed calibration, production runtime ONNX Runtime. Prints the Markdown table.
set -eu
cd "$(dirname "$0")/../.."
out=${OUT:-out/trojan}
rm -rf "$out/heldout" "$out/heldout-results.jsonl"
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout" --seeds 100-102
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/heldout" --seeds 105-109 --kinds clean
dotnet build Gate.Benchmarks -c Release -v quiet -nologo
nice -n 5 dotnet Gate.Benchmarks/bin/Release/net10.0/Gate.Benchmarks.dll trojan-scan "$out/heldout" ../shared/fixtures/data "$out/heldout-results.jsonl"
/usr/bin/python3 scripts/trojan/evaluate.py report "$out/heldout-results.jsonl"
