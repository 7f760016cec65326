#!/usr/bin/env bash
# VNN-COMP tool interface: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Nothing to convert (gate reads ONNX and VNN-LIB directly); checks that the inputs exist and that no prover started
# by an earlier run_instance.sh is still running (it would steal the two cores). Does no analysis.
set -euo pipefail
[ "${1:-}" = "v1" ] || { echo "prepare_instance.sh: expected version string 'v1', got '${1:-}'" >&2; exit 1; }
[ $# -eq 4 ] || { echo "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB" >&2; exit 1; }
onnx="$3"; vnnlib="$4"
[ -f "$onnx" ] || { echo "prepare_instance.sh: no such ONNX file: $onnx" >&2; exit 1; }
[ -f "$vnnlib" ] || { echo "prepare_instance.sh: no such VNN-LIB file: $vnnlib" >&2; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/pidfile.sh"; pidfile="$vnncomp_pidfile"
if [ -f "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  # Only the process run_instance.sh recorded, and only if it is still a gate prover.
  if [ -n "$pid" ] && grep -q "prove" "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
fi
exit 0
