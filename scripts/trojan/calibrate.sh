#!/bin/sh
# Rebuilds the trojan-scan calibration table (Gate.Core/Checks/TrojanScan/trojan-calibration.json) from clean models:
# trains 30 clean MLPs and 30 clean CNNs (generator seeds 0-29), scans each with the default trojan-scan budget, and
# records every detector's statistic and per-class values (the class reference). Held-out benchmark seeds (100-109 and
# 300-311, scripts/trojan/benchmark.sh) never enter it.
# Needs Debian's python3-torch and python3-onnx (apt-get install -y python3-torch python3-onnx) and ONNX Runtime
# (./scripts/setup.sh). About 10 minutes of training and 10 of scanning on the loaded 2-core machine.
set -eu
cd "$(dirname "$0")/../.."
out=${OUT:-out/trojan}
rm -rf "$out/calib" "$out/calib-scores.jsonl"
nice -n 10 /usr/bin/python3 scripts/trojan/generate.py --out "$out/calib" --seeds 0-29 --kinds clean
dotnet build Gate.Benchmarks -c Release -v quiet -nologo
nice -n 5 dotnet Gate.Benchmarks/bin/Release/net10.0/Gate.Benchmarks.dll trojan-scan "$out/calib" ../shared/fixtures/data "$out/calib-scores.jsonl"
/usr/bin/python3 scripts/trojan/evaluate.py calibrate "$out/calib-scores.jsonl" > Gate.Core/Checks/TrojanScan/trojan-calibration.json
echo "wrote Gate.Core/Checks/TrojanScan/trojan-calibration.json (rebuild Gate.Core to embed it)"
