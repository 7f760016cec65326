#!/usr/bin/env bash
# VNN-COMP tool interface: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS TIMEOUT
# Writes RESULTS: one line sat | unsat | unknown | timeout | error; for sat the counterexample follows as
# ((X_0 v) ... (Y_0 v) ...), the outputs being those ONNX Runtime computed for that input. A sat whose
# counterexample was not confirmed on ONNX Runtime is reported as unknown (the competition re-runs it there).
# Settings are the same for every category and instance.
set -uo pipefail
[ "${1:-}" = "v1" ] || { echo "run_instance.sh: expected version string 'v1', got '${1:-}'" >&2; exit 1; }
[ $# -eq 6 ] || { echo "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULTS TIMEOUT" >&2; exit 1; }
onnx="$3"; vnnlib="$4"; results="$5"; timeout="$6"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
gate="${GATE_VNNCOMP_GATE:-$repo/Gate.Cli/bin/Release/net10.0/gate}"  # override: a gate built elsewhere
rm -f "$results"
[ -x "$gate" ] || { echo "error" > "$results"; echo "run_instance.sh: gate is not built (run install_tool.sh v1)" >&2; exit 0; }
# Leave ~3 s for process start-up, model loading and writing the result.
budget="$(awk -v t="$timeout" 'BEGIN { b = t - 3; if (b < 1) b = 1; printf "%.1f", b }')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"$gate" prove --model "$onnx" --spec "$vnnlib" --timeout "$budget" --out "$tmp/result.txt" >"$tmp/stdout" 2>"$tmp/stderr" &
pid=$!
. "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"
echo "$pid" > "$vnncomp_pidfile"
wait "$pid"; rc=$?
rm -f "$vnncomp_pidfile"
cat "$tmp/stderr" >&2
status="$(head -n 1 "$tmp/result.txt" 2>/dev/null || true)"
case "$rc:$status" in
  0:unsat|2:unknown|2:timeout) cp "$tmp/result.txt" "$results" ;;
  1:sat)
    if grep -q "confirmed on: onnxruntime" "$tmp/stderr"; then cp "$tmp/result.txt" "$results"
    else echo "unknown" > "$results"; echo "run_instance.sh: counterexample not confirmed on ONNX Runtime; reported unknown" >&2; fi ;;
  *) echo "error" > "$results" ;;
esac
exit 0
