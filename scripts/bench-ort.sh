#!/usr/bin/env bash
# ONNX Runtime through Gate, before and after a change of binding: builds scripts/bench-ort/Program.cs against
# Gate.Core of BASE (a commit; default: the last commit with the hand-written C-API binding) and of the working tree,
# runs them alternately ROUNDS times (default 2) and prints median µs per call, the ratio, and max |Δ| of the logits.
# The old binding needs its ONNX Runtime library: OLD_ORT_LIB (default .cache/onnxruntime/1.30.0/libonnxruntime.so.1,
# where the old setup put it). Usage: scripts/bench-ort.sh [BASE]   (docs/benchmarks/ort-official.md)
set -euo pipefail
cd "$(dirname "$0")/.."
base="${1:-fe88ac3}"
rounds="${ROUNDS:-2}"
old_lib="${OLD_ORT_LIB:-$PWD/.cache/onnxruntime/1.30.0/libonnxruntime.so.1}"
[ -f "$old_lib" ] || { echo "bench-ort: the old binding's library $old_lib is missing (set OLD_ORT_LIB)" >&2; exit 3; }
fixtures="$(cd ../shared/fixtures && pwd)"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
git archive "$base" Gate.Core Directory.Build.props Directory.Packages.props policies/schema | tar -x -C "$work" --one-top-level=old
mkdir -p "$work/new" "$work/out"
for side in old new; do
  src="$PWD"; [ "$side" = old ] && src="$work/old"
  mkdir -p "$work/bench-$side"
  cp scripts/bench-ort/Program.cs "$work/bench-$side/"
  cat > "$work/bench-$side/bench.csproj" <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><ImplicitUsings>enable</ImplicitUsings>
    <Nullable>enable</Nullable><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup>
  <ItemGroup><ProjectReference Include="$src/Gate.Core/Gate.Core.csproj" /></ItemGroup>
</Project>
XML
  dotnet build "$work/bench-$side/bench.csproj" -c Release -v quiet -nologo -o "$work/bin-$side" >/dev/null
done
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); base $base vs working tree $(git rev-parse --short HEAD)"
for r in $(seq "$rounds"); do
  GATE_ORT_LIB="$old_lib" dotnet "$work/bin-old/bench.dll" old "$fixtures" "$work/out"
  env -u GATE_ORT_LIB dotnet "$work/bin-new/bench.dll" new "$fixtures" "$work/out"
done | tee "$work/results.tsv"
python3 - "$work" <<'PY'
import sys, statistics, struct
def npy_f32(path):  # the float32 .npy files Gate's Npy.Write makes (format 1.0, '<f4'); no numpy needed
    b = open(path, "rb").read(); n = struct.unpack_from("<H", b, 8)[0]
    assert b"'<f4'" in b[10:10 + n], path
    data = b[10 + n:]; return struct.unpack(f"<{len(data) // 4}f", data)
work = sys.argv[1]
rows = [l.split("\t") for l in open(f"{work}/results.tsv") if l.strip()]
med = {}
for label, ver, model, batch, us in rows: med.setdefault((model, int(batch)), {}).setdefault(label, []).append(float(us))
vers = {label: ver for label, ver, *_ in rows}
print(f"| model | batch | previous binding (ORT {vers['old']}) µs | official API (ORT {vers['new']}) µs | official / previous |")
print("|---|---:|---:|---:|---:|")
for (model, batch), d in sorted(med.items()):
    o, n = statistics.median(d["old"]), statistics.median(d["new"])
    print(f"| {model} | {batch} | {o:.1f} | {n:.1f} | {n / o:.2f} |")
for model in ("digits-mlp.onnx", "digits-cnn.onnx"):
    a, b = npy_f32(f"{work}/out/old-{model}.npy"), npy_f32(f"{work}/out/new-{model}.npy")
    print(f"{model}: max |Δ logits| over 360 inputs = {max(abs(x - y) for x, y in zip(a, b)):.3g}")
PY
