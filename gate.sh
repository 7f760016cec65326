#!/usr/bin/env bash
# Runs the gate CLI from a source checkout, building it (and fetching what it needs) on first use.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/Gate.Cli/bin/Release/net10.0/gate" ] || [ -n "$(find "$here/Gate.Core" "$here/Gate.Cli" "$here/Gate.Sandbox" -newer "$here/Gate.Cli/bin/Release/net10.0/gate" -name '*.cs' -print -quit 2>/dev/null)" ]; then
  "$here/scripts/setup.sh" >&2
fi
exec "$here/Gate.Cli/bin/Release/net10.0/gate" "$@"
