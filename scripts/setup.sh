#!/usr/bin/env bash
# Installs and prepares what the tests and the README example need. Idempotent; each step says what it does.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
for step in scripts/setup.d/*.sh; do
  [ -e "$step" ] || continue
  echo "setup: $(basename "$step")"
  bash "$step"
done
dotnet build Gate.sln -c Release -v quiet -nologo
