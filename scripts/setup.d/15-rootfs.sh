#!/usr/bin/env bash
# The runner's root filesystem (docker/rootfs): pinned Debian 13 packages from packages.lock, fetched with a private
# apt configuration (trixie for download only; the host's apt sources are not touched), checked against the lock's
# SHA-256 and unpacked with dpkg -x into .cache/rootfs/<lock id>/. Both the Docker image (20-docker.sh) and the
# bubblewrap backend use it. Cached: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v dpkg >/dev/null && command -v apt-get >/dev/null || { echo "15-rootfs: needs Debian's apt-get and dpkg" >&2; exit 1; }
echo "15-rootfs: $(docker/rootfs/build-rootfs.sh)"
