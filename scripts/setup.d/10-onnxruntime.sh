#!/usr/bin/env bash
# Fetches the ONNX Runtime native library that Gate binds to (Gate.Core/Runtime/OnnxRuntime).
# The official C# package is not served here; npm's onnxruntime-node ships the same libonnxruntime.so.1.
# Only the linux-x64 library is extracted, its SHA-256 is pinned, and it is cached under .cache/ (git-ignored).
# Idempotent: a cached library whose hash matches is kept and nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/../.."

version="1.30.0"
expected_sha256="ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23"
member="package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
dest_dir=".cache/onnxruntime/${version}"
dest="${dest_dir}/libonnxruntime.so.1"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$dest" ] && [ "$(sha256_of "$dest")" = "$expected_sha256" ]; then
  echo "onnxruntime ${version}: cached at ${dest} (sha256 ok)"
  exit 0
fi

command -v npm >/dev/null || { echo "onnxruntime: npm is required to fetch onnxruntime-node@${version} (or set GATE_ORT_LIB)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "onnxruntime ${version}: npm pack onnxruntime-node@${version}"
# npm pack only downloads the tarball: no install scripts run.
tarball="$(cd "$work" && npm pack --silent "onnxruntime-node@${version}" | tail -n 1)"
[ -f "$work/$tarball" ] || { echo "onnxruntime: npm pack produced no tarball" >&2; exit 1; }
tar -xzf "$work/$tarball" -C "$work" "$member"

actual="$(sha256_of "$work/$member")"
if [ "$actual" != "$expected_sha256" ]; then
  echo "onnxruntime: REFUSED ${member}: sha256 ${actual}, expected ${expected_sha256}" >&2
  exit 1
fi

mkdir -p "$dest_dir"
# Install atomically so that an interrupted run never leaves a half-written library behind.
cp "$work/$member" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "onnxruntime ${version}: installed ${dest} (sha256 ok)"
