#!/usr/bin/env bash
# The torch engine on a CUDA GPU, outside the sandbox: the runner's --bench aid with --device cpu and --device cuda:0
# on the same models, so the two devices' timings and checksums (outputL1, gradientL1) can be compared (docs/gpu.md).
# libtorch comes from a PyTorch CUDA install (python3 -c 'import torch' must work and see a GPU): the CPU build's
# TorchSharp loads its libraries through LD_LIBRARY_PATH.
#
# usage: scripts/gpu/torch-device.sh RUNNER_DIR MODEL.onnx...     (RUNNER_DIR: Gate.Sandbox/Runner/bin/Release/net10.0)
# Environment: DOTNET (default: dotnet), BATCH (32), REPEAT (3).
set -euo pipefail
# The runner's folder without the CPU libtorch it ships (it would shadow the CUDA build's libraries).
runner=$(mktemp -d); trap 'rm -rf "$runner"' EXIT
for f in "$1"/*; do
  case $(basename "$f") in libtorch*.so|libc10*.so|libgomp*|libshm.so) ;; *) ln -s "$(readlink -f "$f")" "$runner/" ;; esac
done
shift
torch_lib=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
libs=$torch_lib
nvidia=$(python3 -c 'import nvidia, os; print(nvidia.__path__[0])' 2>/dev/null || true)
for d in "$nvidia"/*/lib; do [ -d "$d" ] && libs=$libs:$d; done
python3 -c 'import torch; print("# torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
for model in "$@"; do
  for device in cpu cuda:0; do
    LD_LIBRARY_PATH=$libs "${DOTNET:-dotnet}" "$runner/Gate.Sandbox.Runner.dll" --bench "$model" --runtime torch \
      --device "$device" --batch "${BATCH:-32}" --repeat "${REPEAT:-3}" 2> >(grep -v 'no current CUDA context' >&2)
  done
done
