#!/usr/bin/env bash
# sigstore-js, the standard Sigstore verifier, for the interop tests (Gate.Tests/Attestation/SigstoreInteropTests.cs) and
# for users who want to check a Gate bundle without Gate (scripts/sigstore-verify.cjs). Exact versions from the npm
# registry into .cache/sigstore-js (git-ignored); install scripts never run. @sigstore/verify 3.x is the newest line
# that supports Node 20. Without npm this is only an error when GATE_REQUIRE_SIGSTORE=1 (CI).
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=("@sigstore/verify@3.1.1" "@sigstore/bundle@4.0.0" "@sigstore/core@3.2.1" "@sigstore/protobuf-specs@0.5.2")
dest=".cache/sigstore-js"

fail() {
  echo "40-sigstore-js: $*" >&2
  if [ "${GATE_REQUIRE_SIGSTORE:-0}" = "1" ]; then exit 1; fi
  echo "40-sigstore-js: continuing without it (the Sigstore interop tests will be skipped)" >&2
  exit 0
}

installed() {
  for p in "${packages[@]}"; do
    name="${p%@*}"; version="${p##*@}"
    [ "$(node -p "require('./$dest/node_modules/$name/package.json').version" 2>/dev/null)" = "$version" ] || return 1
  done
}

command -v node >/dev/null && command -v npm >/dev/null || fail "node and npm are required"
if installed; then echo "sigstore-js: cached in $dest (${packages[*]})"; exit 0; fi
mkdir -p "$dest"
[ -f "$dest/package.json" ] || echo '{ "private": true }' > "$dest/package.json"
npm install --prefix "$dest" --ignore-scripts --no-audit --no-fund --save-exact --loglevel=error "${packages[@]}" || fail "npm install failed"
installed || fail "installed versions differ from the pinned ones"
echo "sigstore-js: installed ${packages[*]} into $dest"
