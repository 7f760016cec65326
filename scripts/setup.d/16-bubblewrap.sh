#!/usr/bin/env bash
# The bubblewrap sandbox backend (the default when no Docker engine answers): installs Debian's bubblewrap when
# bwrap is missing. A host that cannot use it (no user namespaces) falls back to the process backend; that is only
# an error when GATE_REQUIRE_BWRAP=1 (CI), where bubblewrap tests may not be skipped.
set -euo pipefail
if ! command -v bwrap >/dev/null 2>&1; then
  echo "16-bubblewrap: installing bubblewrap"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; }; then
    echo "16-bubblewrap: apt-get install bubblewrap failed" >&2
    [ "${GATE_REQUIRE_BWRAP:-0}" = "1" ] && exit 1
    exit 0
  fi
fi
if bwrap --unshare-all --die-with-parent --ro-bind / / true 2>/dev/null; then echo "16-bubblewrap: $(bwrap --version) works"
else
  echo "16-bubblewrap: bwrap cannot create its namespaces on this host" >&2
  [ "${GATE_REQUIRE_BWRAP:-0}" = "1" ] && exit 1
fi
exit 0
