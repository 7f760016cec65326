#!/usr/bin/env bash
# Sandbox overhead benchmark (docs/benchmarks/sandbox.md): median over 20 runs of a no-check job, per backend
# (docker, bubblewrap, process). Needs the runner image for the Docker row (scripts/setup.d/20-docker.sh builds it)
# and the runner rootfs for Docker and bubblewrap (scripts/setup.d/15-rootfs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build Gate.Cli/Gate.Cli.csproj -c Release -v quiet -nologo
dotnet Gate.Cli/bin/Release/net10.0/gate.dll sandbox bench \
  --model examples/digits/digits-cnn.onnx --policy docs/benchmarks/sandbox-bench.yaml --runs "${RUNS:-20}" "$@"
