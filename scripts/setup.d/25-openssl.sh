#!/usr/bin/env bash
# The attestation interop tests verify Gate's signatures with the openssl command line (Debian package "openssl").
set -euo pipefail
if command -v openssl >/dev/null 2>&1; then
  echo "openssl: present ($(openssl version))"
  exit 0
fi
echo "openssl: installing the Debian package"
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends openssl
else
  sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends openssl
fi
