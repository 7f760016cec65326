#!/bin/bash
# GPU smoke check of the GPU flavour (docs/gpu.md): the same policies run on the CPU and with `--gpu` through the
# process sandbox; the decisions must agree check by check and metric by metric, and the GPU run must record
# CUDAExecutionProvider. Usage, from the repository root:
#   scripts/gpu/smoke.sh GATE_DIR [OUT]
# GATE_DIR holds the GPU flavour's gate.dll with libonnxruntime_providers_cuda.so beside it (docs/gpu.md step 2).
# CUDA 13 and cuDNN 9 are found through the loader, or else anywhere on this filesystem (e.g. a Python venv's
# nvidia/cu13/lib), and added to LD_LIBRARY_PATH. Exit 0 only when every pair agrees and the GPU ran.
set -u
GATE_DIR=$(cd "${1:?usage: scripts/gpu/smoke.sh GATE_DIR [OUT]}" && pwd); OUT=${2:-gpu-smoke-out}; mkdir -p "$OUT"
DOTNET=${DOTNET:-dotnet}
missing=$(ldd "$GATE_DIR/libonnxruntime_providers_cuda.so" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
  dirs=$(for l in $missing; do find / -xdev -name "$l" -not -path '/proc/*' -printf '%h\n' 2>/dev/null | head -1; done | sort -u | paste -sd:)
  export LD_LIBRARY_PATH=$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
ldd "$GATE_DIR/libonnxruntime_providers_cuda.so" | grep -E 'not found|libcu' | tee "$OUT/ldd.txt"
# The edited policies sit one folder below the repository root, like policies/, so their relative data paths hold.
work=$(mktemp -d "$PWD/.gpu-smoke.XXXXXX"); trap 'rm -rf "$work"' EXIT
pair() { # name policy model
  local n=$1 policy=$2 model=$3
  # The example policies ask for a container; this check uses the process sandbox, and gpu: required on the GPU side
  # so that a CPU fallback cannot pass for a GPU run.
  sed -e 's/isolation: container/isolation: process-netns/' -e '/^    gpu:/d' "$policy" > "$work/$n-cpu.yaml"
  sed -e 's/isolation: container/isolation: process-netns/' -e '/^    gpu:/d' -e 's/^  sandbox:$/  sandbox:\n    gpu: required/' "$policy" > "$work/$n-gpu.yaml"
  for side in cpu gpu; do
    local flags=(); [ $side = gpu ] && flags=(--gpu)
    local t0=$(date +%s%N)
    "$DOTNET" "$GATE_DIR/gate.dll" check --model "$model" --policy "$work/$n-$side.yaml" \
        --sandbox process --out "$work/out-$n-$side" "${flags[@]}" > "$OUT/$n-$side.log" 2>&1
    echo "$n $side exit=$? wall=$(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$OUT/summary.txt"
    cp "$work/out-$n-$side/decision.json" "$OUT/$n-$side.decision.json"
  done
}
pair digits policies/digits-release.yaml examples/digits/digits-cnn.onnx
pair resnet8 policies/shapes-resnet8-release.yaml examples/real-arch/resnet8-shapes.onnx
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, os
out, ok = sys.argv[1], True
for n in ("digits", "resnet8"):
    cpu, gpu = (json.load(open(os.path.join(out, f"{n}-{s}.decision.json"))) for s in ("cpu", "gpu"))
    rt = gpu["runtime"]
    ran = rt["provider"] == "CUDAExecutionProvider" and rt["device"].startswith("cuda")
    same = cpu["decision"] == gpu["decision"] and all(
        a["verdict"] == b["verdict"] and a.get("metrics") == b.get("metrics") for a, b in zip(cpu["checks"], gpu["checks"]))
    ok &= ran and same
    print(f"{n}: cpu {cpu['decision']} / gpu {gpu['decision']} on {rt['provider']} {rt['device']}; verdicts and metrics equal: {same}")
print("GPU SMOKE", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
