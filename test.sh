#!/usr/bin/env bash
# Runs every test. Installs what the tests need first (see scripts/setup.sh), so that on a fresh Debian
# machine with the .NET 10 SDK this one command is enough. Ends with one line: "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")"
./scripts/setup.sh
results="$(pwd)/.cache/test-results"
rm -rf "$results"
set +e
# Benchmarks are measurements, not tests: they run on their own (docs/benchmarks.md), never inside this suite.
dotnet test Gate.sln -c Release --no-build --filter "Category!=Benchmark" --logger "trx;LogFileName=gate.trx" --results-directory "$results" "$@"
status=$?
set -e
python3 scripts/trx-summary.py "$results"
exit $status
