#!/usr/bin/env bash
# The compromised-runner tests (Gate.Tests/Hostile/CompromisedRunnerTests.cs) build a fake runner image FROM scratch
# around a tiny static C program: they need gcc and the static C library (Debian packages gcc and libc6-dev).
set -euo pipefail
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'int main(void){return 0;}\n' >"$probe/t.c"
if command -v gcc >/dev/null 2>&1 && gcc -static -o "$probe/t" "$probe/t.c" >/dev/null 2>&1; then
  echo "static-cc: gcc -static works"
  exit 0
fi
echo "static-cc: installing gcc and libc6-dev"
sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
$sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null
gcc -static -o "$probe/t" "$probe/t.c"
echo "static-cc: gcc -static works"
