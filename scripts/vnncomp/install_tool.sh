#!/usr/bin/env bash
# VNN-COMP tool interface: install_tool.sh v1
# Builds the gate CLI and fetches ONNX Runtime (counterexamples are confirmed on it, as the competition checks them).
set -euo pipefail
[ "${1:-}" = "v1" ] || { echo "install_tool.sh: expected version string 'v1', got '${1:-}'" >&2; exit 1; }
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
bash scripts/setup.d/10-onnxruntime.sh
dotnet build Gate.Cli/Gate.Cli.csproj -c Release -v quiet -nologo
test -x Gate.Cli/bin/Release/net10.0/gate || { echo "install_tool.sh: the gate CLI was not built" >&2; exit 1; }
echo "gate installed: $repo/Gate.Cli/bin/Release/net10.0/gate"
