#!/usr/bin/env bash
# The container sandbox: installs docker.io when missing, starts dockerd when no engine answers (waiting up to
# 60 s), then builds this checkout's runner image offline (gate sandbox build-image --prune): tagged by content,
# the tag this checkout's gate asks for. --prune removes this build's older images only; other checkouts on the
# same engine keep theirs. Without an engine the bubblewrap backend is used; that is only an error when
# GATE_REQUIRE_DOCKER=1 (CI), where Docker tests may not be skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .cache

fail() {
  echo "20-docker: $*" >&2
  if [ "${GATE_REQUIRE_DOCKER:-0}" = "1" ]; then exit 1; fi
  echo "20-docker: continuing without Docker (the bubblewrap sandbox backend will be used)" >&2
  exit 0
}

sock="/var/run/docker.sock"
case "${DOCKER_HOST:-}" in
  unix://*) sock="${DOCKER_HOST#unix://}" ;;
  "") ;;
  *) fail "DOCKER_HOST=$DOCKER_HOST is not a unix:// socket" ;;
esac

answers() {
  if command -v curl >/dev/null 2>&1; then curl -sf --max-time 3 --unix-socket "$sock" http://docker/_ping >/dev/null 2>&1
  else docker -H "unix://$sock" version >/dev/null 2>&1; fi
}

if ! answers; then
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "20-docker: installing docker.io"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; }; then
      fail "apt-get install docker.io failed"
    fi
  fi
  echo "20-docker: starting dockerd (log: .cache/dockerd.log)"
  nohup dockerd -H "unix://$sock" >.cache/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do answers && break; sleep 1; done
  answers || fail "dockerd did not answer on $sock within 60 s (see .cache/dockerd.log)"
fi

echo "20-docker: building the sandbox runner image"
dotnet build Gate.Cli/Gate.Cli.csproj -c Release -v quiet -nologo
dotnet Gate.Cli/bin/Release/net10.0/gate.dll sandbox build-image --prune || fail "gate sandbox build-image failed"
