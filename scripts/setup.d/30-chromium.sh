#!/usr/bin/env bash
# Headless Chromium for the HTML report test (Gate.Tests/Report): Debian's own package, driven by
# Microsoft.Playwright with ExecutablePath=/usr/bin/chromium. Playwright's browser download is never used
# (no network but the package registries).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium: present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
# apt's lock may be held by a parallel install; wait for it instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
