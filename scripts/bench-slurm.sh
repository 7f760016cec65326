#!/usr/bin/env bash
# Slurm executor overhead over local shards for the digits release policy (process sandbox on both sides, so the
# comparison is the executor, not the backend). Usage: scripts/bench-slurm.sh [SHARDS...] (default: 1 4 8).
# Needs the single-node cluster of scripts/setup.d/60-slurm.sh and a Release build. Prints wall seconds per run,
# the load before each pair, and whether each decision's content equals the 1-shard local run's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
# GATE_BENCH_KEEP=DIR keeps the runs' decisions (for per-unit costs) in DIR; otherwise a temporary folder is removed.
if [ -n "${GATE_BENCH_KEEP:-}" ]; then work="$GATE_BENCH_KEEP"; mkdir -p "$work"; else work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
gate=(dotnet "$repo/Gate.Cli/bin/Release/net10.0/gate.dll")
sed -e "s#../examples/#$repo/examples/#g" -e "s#isolation: container#isolation: process#" policies/digits-release.yaml > "$work/release.yaml"
mkdir -p "$work/shared"
run() { # name, extra args...
  local name="$1"; shift
  local s e; s=$(date +%s.%N)
  "${gate[@]}" check -m examples/digits/digits-cnn.onnx -p "$work/release.yaml" -o "$work/out-$name" --sandbox process --json "$@" > "$work/$name.json" 2>/dev/null || true
  e=$(date +%s.%N); printf '%-10s %8.1f s\n' "$name" "$(echo "$e - $s" | bc)"
}
for n in "${@:-1 4 8}"; do
  echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
  run "local-$n" --shards "$n"
  run "slurm-$n" --executor slurm --shards "$n" --shared-dir "$work/shared"
done
python3 - "$work" <<'PY'
import json, sys, glob, os
def content(p):
    d = json.load(open(p))
    for k in ("startedAt", "endedAt", "execution", "sandbox"): d.pop(k, None)
    def strip(x):
        if isinstance(x, dict): return {k: strip(v) for k, v in x.items() if k not in ("durationSeconds", "wallTimeMs")}
        if isinstance(x, list): return [strip(v) for v in x]
        return x
    return json.dumps(strip(d), sort_keys=True)
files = sorted(glob.glob(os.path.join(sys.argv[1], "*.json")))
ref = content(os.path.join(sys.argv[1], "local-1.json")) if os.path.exists(os.path.join(sys.argv[1], "local-1.json")) else None
for f in files:
    if f.endswith("release.yaml"): continue
    print(f"{os.path.basename(f):16} same content as local-1: {content(f) == ref}")
PY
