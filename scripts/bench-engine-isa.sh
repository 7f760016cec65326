#!/bin/bash
# The built-in engine with and without AVX-512, alternated per row: BEFORE and AFTER are two builds' runner dlls
# (e.g. a worktree at an older commit and this one), both run with AVX-512 switched off for the runtime
# (DOTNET_EnableAVX512=0, the .NET 10 name); AFTER also runs with it on, as the reference.
# usage: BEFORE=/path/Gate.Sandbox.Runner.dll [AFTER=...] [MODELS=.cache/bench-torch] scripts/bench-engine-isa.sh [rounds]
set -euo pipefail
AFTER=${AFTER:-Gate.Cli/bin/Release/net10.0/Gate.Sandbox.Runner.dll}
MODELS=${MODELS:-.cache/bench-torch}
: "${BEFORE:?set BEFORE to the Gate.Sandbox.Runner.dll of the older build}"
SUMMARY='import json,sys; d=json.loads(sys.argv[1]); f=d["forwardMs"]; g=d["forwardGradientMs"]; print("fwd min/median", f["min"], f["median"], "fwd+grad", g["min"], g["median"])'
for round in $(seq 1 "${1:-3}"); do
  for spec in "resnet18-32.onnx 32 3" "resnet18-224.onnx 1 3" "resnet18-32.onnx 1 8"; do
    set -- $spec
    for who in before after avx512; do
      case $who in before) dll=$BEFORE; isa=0;; after) dll=$AFTER; isa=0;; avx512) dll=$AFTER; isa=1;; esac
      line=$(DOTNET_EnableAVX512=$isa dotnet "$dll" --bench "$MODELS/$1" --runtime builtin --batch "$2" --repeat "$3" 2>&1 | tail -1)
      load=$(cut -d' ' -f1 /proc/loadavg)
      times=$(python3 -c "$SUMMARY" "$line")
      echo "round=$round $who $1 b$2 load=$load $times"
    done
  done
done
