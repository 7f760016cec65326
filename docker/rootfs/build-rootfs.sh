#!/usr/bin/env bash
# Builds the runner's root filesystem from packages.lock, offline from the host's point of view: each pinned
# Debian 13 package is fetched with apt-get download (private apt configuration, apt-env.sh), its SHA-256 checked
# against the lock, and unpacked with dpkg -x. Then documentation is dropped, the usr-merge links and the sandbox's
# mount points and users are added, and the result is checked: no shell, no package manager, no program at all
# outside the loader. Output: .cache/rootfs/<id>/ (printed; id: 16 hex of the SHA-256 of the lock and this script, also
# written to etc/gate-rootfs.id), built in a temporary
# folder and renamed into place, so a half-built rootfs is never found. Idempotent: an existing one is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lock="$here/packages.lock"
. "$here/apt-env.sh"
# The rootfs's identity: the pinned packages and what this script does with them.
id="$(cat "$lock" "$here/build-rootfs.sh" | sha256sum | cut -c1-16)"
cache="${GATE_ROOTFS_CACHE:-$repo/.cache/rootfs}"
out="$cache/$id"
if [ -f "$out/etc/gate-rootfs.id" ]; then echo "$out"; exit 0; fi
mkdir -p "$cache/debs"
chmod 755 "$cache"
debs="$cache/debs"
fetched=0
verify() { [ -f "$debs/$1" ] && [ "$(sha256sum "$debs/$1" | cut -d' ' -f1)" = "$2" ]; }
while read -r name version sha file; do
  case "$name" in ''|'#'*) continue ;; esac
  if verify "$file" "$sha"; then continue; fi
  if [ "$fetched" = 0 ]; then apt_env "$cache/apt"; apt-get update -qq >&2; fetched=1; fi
  rm -f "$debs/$file"
  if ! (cd "$debs" && apt-get download -qq "$name=$version" >&2); then
    echo "build-rootfs: $name $version is no longer in $GATE_ROOTFS_SUITE (a point release replaced it); run docker/rootfs/refresh-lock.sh and commit packages.lock" >&2
    exit 1
  fi
  if ! verify "$file" "$sha"; then
    echo "build-rootfs: $file does not match the SHA-256 in packages.lock (got $(sha256sum "$debs/$file" | cut -d' ' -f1), want $sha)" >&2
    rm -f "$debs/$file"; exit 1
  fi
done <"$lock"

tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
while read -r name version sha file; do
  case "$name" in ''|'#'*) continue ;; esac
  dpkg -x "$debs/$file" "$tmp"
done <"$lock"
rm -rf "$tmp/usr/share/doc" "$tmp/usr/share/man" "$tmp/usr/share/info" "$tmp/usr/share/lintian" "$tmp/usr/share/locale" "$tmp/usr/share/gcc"
# Debian 13 is usr-merged: base-files' links, which the ELF interpreter path (/lib64/ld-linux-x86-64.so.2) needs.
for l in lib lib64 bin sbin; do [ -e "$tmp/$l" ] || [ ! -d "$tmp/usr/$l" ] || ln -s "usr/$l" "$tmp/$l"; done
# Mount points (Docker and bubblewrap mount onto them; the root itself is read-only) and the sandbox user.
mkdir -p "$tmp/proc" "$tmp/dev" "$tmp/tmp" "$tmp/job" "$tmp/results" "$tmp/gate/runner" "$tmp/gate/dotnet" "$tmp/gate/ort" "$tmp/etc"
printf 'root:x:0:0:root:/nonexistent:/nonexistent\nsandbox:x:65534:65534:gate sandbox:/nonexistent:/nonexistent\n' >"$tmp/etc/passwd"
printf 'root:x:0:\nsandbox:x:65534:\n' >"$tmp/etc/group"
# Distroless: no shell, no package manager, and no executable outside the libraries (gconv modules, the loader).
bad="$(find "$tmp" \( -type f -o -type l \) \( -path "$tmp/usr/bin/*" -o -path "$tmp/usr/sbin/*" -o -name sh -o -name bash -o -name dash -o -name dpkg -o -name 'apt*' \) -print)"
if [ -n "$bad" ]; then rm -rf "$tmp/usr/bin" "$tmp/usr/sbin"; fi
bad="$(find "$tmp" \( -name sh -o -name bash -o -name dash -o -name dpkg -o -name 'apt-get' \) -print)"
[ -z "$bad" ] || { echo "build-rootfs: the rootfs would contain $bad" >&2; exit 1; }
cp "$lock" "$tmp/etc/gate-rootfs.lock"
echo "$id" >"$tmp/etc/gate-rootfs.id"
chmod -R u+rwX,go+rX,go-w "$tmp"
chmod 755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
