#!/usr/bin/env bash
# Issue #17's torch benchmarks (docs/benchmarks/torch.md): ResNet-18 at 32 and 224 and a small ViT, batch 1 and 32,
# forward and forward + input-gradient, on Gate's built-in engine, its torch engine and ONNX Runtime (each in the
# runner's Debian 13 rootfs under bubblewrap, as the bubblewrap sandbox runs it) and on Debian's PyTorch with
# flush-to-zero; then PGD (10 steps, 32 samples) through `gate check` against a plain PyTorch PGD loop.
#
# usage: scripts/bench-torch.sh [engines|pgd|all] [REPEAT]     (default: all 3)
# Needs: a Release build (dotnet build Gate.sln -c Release), the rootfs (scripts/setup.sh), bwrap, /usr/bin/python3
# with python3-torch and python3-onnx. Models and data are exported, seeded, into .cache/bench-torch.
# Environment: PGD_MODELS (pgd: the models, default resnet18-32; also resnet18-224 vit-32), ONLY (regex of "model runtime batch" rows to run), RUNNER (the runner folder to bind), THREADS (default 2: the policies' cpus), SKIP (regex of "model runtime batch" rows to leave out, e.g.
# the built-in engine's 224 x 32 pass, ~10 s an iteration), PROFILE=1 (torch rows: ms per pass by phase and operator,
# TorchProfile), GATE_TORCH_CHANNELS_LAST=0 (torch rows: NCHW convolutions, the layout before channels-last, for an A/B),
# GATE_TORCH_KEEP_HEAP=0 (torch rows: glibc's default allocator thresholds, NativeHeap's A/B).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}; repeat=${2:-3}; threads=${THREADS:-2}; skip=${SKIP:-'^$'}; only=${ONLY:-.}
dir=.cache/bench-torch; mkdir -p "$dir"
[ -f "$dir/vit-32.onnx" ] || (cd scripts/bench-torch && /usr/bin/python3 models.py "../../$dir") >&2
rootfs=$(ls -d .cache/rootfs/*/ | grep -v '/apt/\|/debs/' | head -1)
runner=${RUNNER:-Gate.Sandbox/Runner/bin/Release/net10.0}
dotnet_root=$(dirname "$(readlink -f "$(command -v dotnet)")")
echo "# $(date -u +%FT%TZ) $(uname -n) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); git $(git rev-parse --short HEAD)"
echo "# load: $(uptime)"

# The runner's environment in the bubblewrap sandbox (BubblewrapBackend.Environment), with its --bench aid.
in_sandbox() {
  bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL --ro-bind "$rootfs" / --proc /proc --dev /dev \
    --tmpfs /tmp --ro-bind "$dotnet_root" /gate/dotnet --ro-bind "$runner" /gate/runner --ro-bind "$dir" /job \
    --clearenv --setenv PATH /nonexistent --setenv HOME /tmp --setenv DOTNET_ROOT /gate/dotnet \
    --setenv DOTNET_gcServer 0 --setenv DOTNET_EnableDiagnostics 0 --setenv DOTNET_PROCESSOR_COUNT "$threads" \
    --setenv GATE_TORCH_CHANNELS_LAST "${GATE_TORCH_CHANNELS_LAST:-1}" --setenv GATE_TORCH_KEEP_HEAP "${GATE_TORCH_KEEP_HEAP:-1}" \
    -- /gate/dotnet/dotnet /gate/runner/Gate.Sandbox.Runner.dll "$@"
}

if [ "$what" = engines ] || [ "$what" = all ]; then
  for model in resnet18-32 resnet18-224 vit-32; do
    for batch in 1 32; do
      for runtime in builtin torch onnxruntime; do
        if echo "$model $runtime $batch" | grep -Eq "$skip" || ! echo "$model $runtime $batch" | grep -Eq "$only"; then continue; fi
        in_sandbox --bench "/job/$model.onnx" --runtime "$runtime" --batch "$batch" --repeat "$repeat" --profile "${PROFILE:-0}"
      done
    done
  done
  (cd scripts/bench-torch && ONLY="$only" SKIP="$skip" /usr/bin/python3 pytorch_bench.py "../../$dir" "$threads" "$repeat")
fi

if [ "$what" = pgd ] || [ "$what" = all ]; then
  gate=Gate.Cli/bin/Release/net10.0/gate
  for model in ${PGD_MODELS:-resnet18-32}; do
  size=${model##*-}
  for engine in ${PGD_ENGINES:-torch builtin}; do
    for i in $(seq "$repeat"); do
      sed "s/ENGINE/$engine/; s/SIZE/$size/g; s/MODEL/$model/g" scripts/bench-torch/bench-pgd.yaml > "$dir/bench-pgd-$engine.yaml"
      rm -rf "$dir/out-$engine"
      echo "# load: $(uptime)"
      start=$(date +%s.%N)
      "$gate" check -m "$dir/$model.onnx" -p "$dir/bench-pgd-$engine.yaml" --sandbox bubblewrap -o "$dir/out-$engine" >/dev/null || true
      end=$(date +%s.%N)
      # The check's own wall time and gradient count, as its results record them; wall = the whole gate check.
      /usr/bin/python3 - "$dir/out-$engine" "$engine" "$start" "$end" "$model" <<'PY'
import json, sys, glob
out, engine, start, end, model = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
d = json.load(open(out + "/decision.json"))
c = next(c for c in d["checks"] if c["id"] == "pgd")
def find(o, key):
    if isinstance(o, dict):
        if key in o: return o[key]
        for v in o.values():
            r = find(v, key)
            if r is not None: return r
    if isinstance(o, list):
        for v in o:
            r = find(v, key)
            if r is not None: return r
# decision.json has the check's queries, not its gradients: PGD spends steps gradients + 1 forward per sample.
ms, queries = find(c, "wallTimeMs"), find(c, "queries")
grads = queries - 32 if queries else None
# Steady: the later gradient passes' mean (the first pays one-time costs) per sample of a pass.
passes = find(c, "gradientPasses") or {}
per_pass = grads / passes["count"] if grads and passes.get("count") else None
steady = round(passes["laterMeanMs"] / per_pass, 3) if per_pass and passes.get("laterMeanMs") else None
print(json.dumps({"model": model, "runtime": "gate check, engine: " + engine, "verdict": c.get("verdict"), "whiteBox": find(d, "whiteBox"),
                  "pgd": {"checkWallMs": ms, "gradients": grads, "msPerSampleGradient": round(ms / grads, 3) if ms and grads else None,
                          "steadyMsPerSampleGradient": steady, "gradientPasses": passes, "gateCheckWallS": round(end - start, 2)}}))
PY
    done
  done
  echo "# load: $(uptime)"
  (cd scripts/bench-torch && /usr/bin/python3 pytorch_bench.py "../../$dir" "$threads" "$repeat" pgd 0.0001 "$model")
  done
fi
