#!/usr/bin/env bash
# The purely mechanical moves of issue #20 items 5–6 (arch-cleanup): files to neutral homes, namespaces and usings
# rewritten to follow, test folders mirroring Gate.Core. Written so that it can be run again after other branches
# are merged (each step skips what is already done), one commit per step.
#
#   scripts/dev/arch-moves.sh [--commit] [--build] [STEP...]
#
# Steps (default: all, in this order): shared-types numerics audit-split node-accessors test-folders.
# --build builds Gate.sln after each step and stops at the first failure; --commit commits each step that changed
# something (after its build, if --build). Run from anywhere inside the repository.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

commit=0 build=0 steps=()
for a in "$@"; do
  case "$a" in
    --commit) commit=1 ;;
    --build) build=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) steps+=("$a") ;;
  esac
done
[ ${#steps[@]} -gt 0 ] || steps=(shared-types numerics audit-split node-accessors test-folders)

# Files moved by this run, with the namespace they had: they still use what that namespace let them see.
export ARCH_OLDNS_FILE; ARCH_OLDNS_FILE=$(mktemp)
trap 'rm -f "$ARCH_OLDNS_FILE"' EXIT

# Rewrites C# sources for one moved set of types. Arguments: a JSON list of moves
#   {"types": [...], "from": "Old.Namespace", "to": "New.Namespace", "partial": "Audit"?}
# For every .cs file: fully qualified Old.Namespace.Type becomes New.Namespace.Type; a file that uses a moved type
# by its short name and could see it before (a using of, or a namespace inside, Old.Namespace) gets a using of
# New.Namespace; "using Old.Namespace;" is dropped when that namespace no longer exists (gone=true); duplicate usings
# are removed.
retarget() {
  python3 - "$1" <<'PY'
import json, os, re, subprocess, sys
moves = json.loads(sys.argv[1])
oldns = {}
for line in open(os.environ["ARCH_OLDNS_FILE"]):
    if "\t" in line:
        k, v = line.rstrip("\n").split("\t"); oldns[k] = v
files = [f for f in subprocess.run(["git", "ls-files", "*.cs"], capture_output=True, text=True, check=True).stdout.split("\n") if f]
files += [f for f in subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "*.cs"], capture_output=True, text=True, check=True).stdout.split("\n") if f]
for path in sorted(set(files)):
    if not os.path.exists(path): continue
    src = open(path, encoding="utf-8").read()
    text = src
    m = re.search(r"^namespace ([\w.]+)\s*;", text, re.M)
    file_ns = m.group(1) if m else ""
    was_ns = oldns.get(path, file_ns)
    usings = set(re.findall(r"^using ([\w.]+);", text, re.M))
    need = []
    for mv in moves:
        old, new, types = mv["from"], mv["to"], mv["types"]
        if not types:
            if mv.get("gone"): text = re.sub(r"^using " + re.escape(old) + r";\n", "", text, flags=re.M)
            continue
        words = "|".join(map(re.escape, types))
        text = re.sub(r"\b" + re.escape(old) + r"\.(" + words + r")\b", new + r".\1", text)
        if mv.get("partial"):
            # partly qualified (e.g. Audit.AtomicFile inside Gate.Core.X)
            text = re.sub(r"(?<![\w.])" + re.escape(mv["partial"]) + r"\.(" + words + r")\b", new + r".\1", text)
        sees_old = old in usings or any(n == old or n.startswith(old + ".") for n in (file_ns, was_ns))
        body = re.sub(r"^using [\w.]+;\s*$", "", text, flags=re.M)
        if sees_old and file_ns != new and not file_ns.startswith(new + ".") and re.search(r"(?<![\w.])(" + words + r")\b", body):
            need.append(new)
        if mv.get("gone"):
            text = re.sub(r"^using " + re.escape(old) + r";\n", "", text, flags=re.M)
    if need:
        lines = text.split("\n")
        last = max([i for i, l in enumerate(lines) if re.match(r"^using [\w.]+;$", l)], default=-1)
        have = set(re.findall(r"^using ([\w.]+);", text, re.M))
        add = [f"using {n};" for n in dict.fromkeys(need) if n not in have]
        for u in add:
            # before the first using that sorts after it (System.* first, then ordinal by name), else after the last
            key = lambda l: (not l[6:].startswith("System"), l[6:-1])
            idx = [i for i, l in enumerate(lines) if re.match(r"^using [\w.]+;$", l)]
            after = [i for i in idx if key(lines[i]) > key(u)]
            if after: lines.insert(after[0], u)
            elif idx: lines.insert(idx[-1] + 1, u)
            else: lines[0:0] = [u, ""]
            text = "\n".join(lines)
    # drop duplicate usings
    seen, out = set(), []
    for l in text.split("\n"):
        if re.match(r"^using [\w.]+;$", l):
            if l in seen: continue
            seen.add(l)
        out.append(l)
    text = "\n".join(out)
    if text != src:
        open(path, "w", encoding="utf-8").write(text)
PY
}

# Public/internal type names declared in the given files.
types_of() {
  python3 - "$@" <<'PY'
import json, re, sys
names = []
for p in sys.argv[1:]:
    for m in re.finditer(r"^(?:public|internal)\s+(?:(?:sealed|static|readonly|abstract|partial)\s+)*(?:class|record struct|record|struct|enum|interface)\s+(\w+)", open(p).read(), re.M):
        names.append(m.group(1))
print(json.dumps(sorted(set(names))))
PY
}

# Moves a block of declarations out of a file into a new file. Arguments: source, target, start marker (the
# first line of the block), end marker (a line after the block, exclusive; "EOF" = to the end), header of the
# new file (usings and namespace).
extract() {
  python3 - "$@" <<'PY'
import sys
src, dst, start, end, header = sys.argv[1:6]
text = open(src, encoding="utf-8").read()
i = text.find(start)
if i < 0: sys.exit(f"extract: '{start[:60]}' not found in {src}")
j = len(text) if end == "EOF" else text.find(end, i)
if j < 0: sys.exit(f"extract: '{end[:60]}' not found in {src}")
block = text[i:j].rstrip() + "\n"
open(dst, "w", encoding="utf-8").write(header.rstrip("\n") + "\n\n" + block)
open(src, "w", encoding="utf-8").write((text[:i].rstrip() + "\n" + ("\n" + text[j:] if end != "EOF" else "")).rstrip() + "\n")
PY
}

mv_to() { # git mv FILE... DIR, creating DIR; missing sources are skipped (already moved)
  local dir="${!#}" f; mkdir -p "$dir"
  for f in "${@:1:$#-1}"; do [ -e "$f" ] && git mv "$f" "$dir/"; done; return 0
}

set_namespace() { # FILE NAMESPACE (remembers the old one for retarget)
  local was; was=$(sed -n -E 's/^namespace ([A-Za-z0-9_.]+);.*/\1/p' "$1" | head -1)
  printf '%s\t%s\n' "$1" "$was" >> "$ARCH_OLDNS_FILE"
  sed -i -E "s/^namespace [A-Za-z0-9_.]+;/namespace $2;/" "$1"
}

step_shared_types() {
  # ProgressUpdate/ProgressPhase: reported by checks, the executor and the sandbox protocol, shown by the CLI; they
  # carry a Verdict, so they live beside it in Evidence rather than in Checks (which Gate.Sandbox should not need).
  if grep -q "public readonly record struct ProgressUpdate" Gate.Core/Checks/CheckContext.cs 2>/dev/null; then
    extract Gate.Core/Checks/CheckContext.cs Gate.Core/Evidence/Progress.cs \
      $'/// <summary>\n/// Progress of long work' $'/// <summary>Everything a running check may use.' \
      'namespace Gate.Core.Evidence;'
    retarget '[{"types":["ProgressUpdate","ProgressPhase"],"from":"Gate.Core.Checks","to":"Gate.Core.Evidence"}]'
  fi
  # The JSON options of every file Gate writes and reads back: Gate.Core/IO/GateJson, not DecisionRecord.
  if grep -q "public static JsonSerializerOptions JsonOptions" Gate.Core/Decision/DecisionRecord.cs 2>/dev/null; then
    python3 - <<'PY'
import re
p = "Gate.Core/Decision/DecisionRecord.cs"
s = open(p).read()
i = s.index("    public static JsonSerializerOptions JsonOptions { get; } = new()")
j = s.index("    };\n", i) + len("    };\n")
options = s[i:j]
s = s[:i] + s[j:].lstrip("\n")
s = s.replace("JsonSerializer.Serialize(this, JsonOptions)", "JsonSerializer.Serialize(this, GateJson.Options)")
open(p, "w").write(s)
body = options.replace("    public static JsonSerializerOptions JsonOptions { get; } = new()", "    public static JsonSerializerOptions Options { get; } = new()")
open("Gate.Core/IO/GateJson.cs", "w").write(
"""using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gate.Core.IO;

/// <summary>
/// The JSON options of every file Gate writes and reads back — decision.json, the sandbox job protocol, attestation
/// predicates — so that a result round-trips unchanged: camelCase names, enums as camelCase strings, named floats
/// (NaN, Infinity), no escaping of non-ASCII text. <see cref="Compact"/> is the same on one line.
/// </summary>
public static class GateJson
{
""" + body + """
    public static JsonSerializerOptions Compact { get; } = new(Options) { WriteIndented = false };
}
""")
PY
    for f in $(git grep -l "DecisionRecord.JsonOptions" -- '*.cs'); do
      sed -i -E 's/new\((Gate\.Core\.Decision\.)?DecisionRecord\.JsonOptions\) \{ WriteIndented = false \}/GateJson.Compact/g;
                 s/Gate\.Core\.Decision\.DecisionRecord\.JsonOptions/Gate.Core.IO.GateJson.Options/g;
                 s/DecisionRecord\.JsonOptions/GateJson.Options/g' "$f"
    done
    retarget '[{"types":["GateJson"],"from":"Gate.Core","to":"Gate.Core.IO"}]'
    python3 - <<'PY'
import subprocess, re
# files that now say GateJson without seeing Gate.Core.IO (retarget only adds usings where Gate.Core was imported)
for p in subprocess.run(["git", "grep", "-l", r"\bGateJson\.", "--", "*.cs"], capture_output=True, text=True).stdout.split():
    s = open(p).read()
    ns = (re.search(r"^namespace ([\w.]+);", s, re.M) or [None, ""])[1]
    if ns == "Gate.Core.IO" or "using Gate.Core.IO;" in s or not re.search(r"(?<![\w.])GateJson\.", s): continue
    lines = s.split("\n")
    idx = [i for i, l in enumerate(lines) if l.startswith("using ")]
    at = idx[-1] + 1 if idx else 0
    lines.insert(at, "using Gate.Core.IO;")
    open(p, "w").write("\n".join(lines))
PY
  fi
  # RunnerLocation: the host's runner files, used by both backends (process and Docker image), not only by Process.
  if grep -q "public sealed record RunnerLocation" Gate.Sandbox/Process/ProcessBackend.cs 2>/dev/null; then
    extract Gate.Sandbox/Process/ProcessBackend.cs Gate.Sandbox/RunnerLocation.cs \
      '/// <summary>Where the runner program and what it needs live on this host.</summary>' EOF \
      $'using System.Runtime.InteropServices;\n\nnamespace Gate.Sandbox;'
    retarget '[{"types":["RunnerLocation"],"from":"Gate.Sandbox.Process","to":"Gate.Sandbox"}]'
  fi
  # geteuid: one P/Invoke for the host (staging, process backend) and the runner (self-test).
  if [ ! -e Gate.Sandbox/Posix.cs ]; then
    cat > Gate.Sandbox/Posix.cs <<'CS'
using System.Runtime.InteropServices;

namespace Gate.Sandbox;

/// <summary>The libc calls the host side and the runner both need.</summary>
public static class Posix
{
    /// <summary>The effective user id of this process.</summary>
    [DllImport("libc")] public static extern uint geteuid();
}
CS
    sed -i '/\[DllImport("libc")\] internal static extern uint geteuid();/d' Gate.Sandbox/Protocol/JobStaging.cs
    sed -i '/\[DllImport("libc")\] private static extern uint geteuid();/d' Gate.Sandbox/Runner/SelfTestProbes.cs
    sed -i -E 's/([^.A-Za-z_])geteuid\(\)/\1Posix.geteuid()/g' Gate.Sandbox/Protocol/JobStaging.cs Gate.Sandbox/Runner/SelfTestProbes.cs
    for f in $(git grep -l "JobStaging\.geteuid" -- '*.cs'); do
      sed -i -E 's/Gate\.Sandbox\.Protocol\.JobStaging\.geteuid/Gate.Sandbox.Posix.geteuid/g; s/JobStaging\.geteuid/Posix.geteuid/g' "$f"
    done
    retarget '[{"types":["Posix"],"from":"Gate.Sandbox.Protocol","to":"Gate.Sandbox"}]'
  fi
}

step_numerics() {
  # Checks/Mechanistic held two things: numerics several checks share (logistic regression, stratified k-fold, the
  # sample matrix) → Gate.Core/Numerics; and the white-box checks' plumbing (layer choice, activation capture,
  # seeded sampling) → Gate.Core/Checks/MechanisticData.cs beside CheckContext.
  [ -d Gate.Core/Checks/Mechanistic ] || return 0
  local types; types=$(types_of Gate.Core/Checks/Mechanistic/*.cs)
  if grep -q "public sealed record SampleMatrix" Gate.Core/Checks/Mechanistic/MechanisticData.cs; then
    extract Gate.Core/Checks/Mechanistic/MechanisticData.cs Gate.Core/Numerics/SampleMatrix.cs \
      '/// <summary>A sample matrix:' '/// <summary>Shared plumbing of the white-box checks' \
      $'using Gate.Core.Tensors;\n\nnamespace Gate.Core.Numerics;'
  fi
  mv_to Gate.Core/Checks/Mechanistic/LogisticRegression.cs Gate.Core/Checks/Mechanistic/StratifiedKFold.cs Gate.Core/Numerics
  set_namespace Gate.Core/Numerics/LogisticRegression.cs Gate.Core.Numerics
  set_namespace Gate.Core/Numerics/StratifiedKFold.cs Gate.Core.Numerics
  git mv Gate.Core/Checks/Mechanistic/MechanisticData.cs Gate.Core/Checks/MechanisticData.cs
  set_namespace Gate.Core/Checks/MechanisticData.cs Gate.Core.Checks
  rmdir Gate.Core/Checks/Mechanistic 2>/dev/null || true
  local numerics; numerics=$(python3 -c 'import json,sys; t=json.loads(sys.argv[1]); print(json.dumps([x for x in t if x!="MechanisticData"]))' "$types")
  retarget "[{\"types\":$numerics,\"from\":\"Gate.Core.Checks.Mechanistic\",\"to\":\"Gate.Core.Numerics\"},
             {\"types\":[\"MechanisticData\"],\"from\":\"Gate.Core.Checks.Mechanistic\",\"to\":\"Gate.Core.Checks\",\"gone\":true}]"
}

step_audit_split() {
  # Audit held three layers: attestation (keys, DSSE, in-toto statements, Sigstore bundle, model signature, the
  # verifier) → Gate.Core/Attestation; approvals and trust, built on attestation → Gate.Core/Trust; file helpers
  # (atomic write, untrusted input) → Gate.Core/IO.
  [ -d Gate.Core/Audit ] || return 0
  local att=(ArtifactVerifier DecisionAttestation Dsse Keys ModelSignature SigstoreBundle TestResultAttestation)
  local trust=(PolicyApprovals TrustPolicy) io=(AtomicFile UntrustedInput)
  local attT trustT ioT
  attT=$(types_of $(for f in "${att[@]}"; do echo Gate.Core/Audit/$f.cs; done))
  trustT=$(types_of $(for f in "${trust[@]}"; do echo Gate.Core/Audit/$f.cs; done))
  ioT=$(types_of $(for f in "${io[@]}"; do echo Gate.Core/Audit/$f.cs; done))
  for f in "${att[@]}"; do mv_to Gate.Core/Audit/$f.cs Gate.Core/Attestation; set_namespace Gate.Core/Attestation/$f.cs Gate.Core.Attestation; done
  for f in "${trust[@]}"; do mv_to Gate.Core/Audit/$f.cs Gate.Core/Trust; set_namespace Gate.Core/Trust/$f.cs Gate.Core.Trust; done
  for f in "${io[@]}"; do mv_to Gate.Core/Audit/$f.cs Gate.Core/IO; set_namespace Gate.Core/IO/$f.cs Gate.Core.IO; done
  rmdir Gate.Core/Audit 2>/dev/null || true
  retarget "[{\"types\":$attT,\"from\":\"Gate.Core.Audit\",\"to\":\"Gate.Core.Attestation\",\"partial\":\"Audit\"},
             {\"types\":$trustT,\"from\":\"Gate.Core.Audit\",\"to\":\"Gate.Core.Trust\",\"partial\":\"Audit\"},
             {\"types\":$ioT,\"from\":\"Gate.Core.Audit\",\"to\":\"Gate.Core.IO\",\"partial\":\"Audit\",\"gone\":true}]"
}

step_node_accessors() {
  # An int attribute read as a flag: Node.GetBool instead of "GetInt(name, d) != 0" at each call site.
  grep -q "public bool GetBool(" Gate.Core/Model/ModelGraph.cs || sed -i '/    public long GetInt(string name, long @default) => Attr(name)?.I ?? @default;/a\    /// <summary>An int attribute that ONNX uses as a flag (keepdims, ceil_mode, …): any non-zero value is true.</summary>\n    public bool GetBool(string name, bool @default) => Attr(name) is { } a ? a.I != 0 : @default;' Gate.Core/Model/ModelGraph.cs
  for f in $(git grep -lE 'GetInt\("[a-z_]+", [01]\) != 0' -- 'Gate.Core/*.cs'); do
    sed -i -E 's/GetInt\("([a-z_]+)", 0\) != 0/GetBool("\1", false)/g; s/GetInt\("([a-z_]+)", 1\) != 0/GetBool("\1", true)/g' "$f"
  done
}

step_test_folders() {
  # Test folders mirror Gate.Core (and Gate.Cli): Hostile stays, as the catalogue docs/threat-model.md cites.
  tmv() { # FILE... DIR NAMESPACE
    local ns="${!#}" f; local n=$(($# - 1)); local dir="${!n}"
    for f in "${@:1:$#-2}"; do
      [ -e "$f" ] || continue
      mkdir -p "$dir"; git mv "$f" "$dir/"; set_namespace "$dir/$(basename "$f")" "$ns"
    done
  }
  tmv Gate.Tests/Adversarial/*.cs Gate.Tests/Checks/Adversarial Gate.Tests.Checks.Adversarial
  tmv Gate.Tests/Mechanistic/LinearProbeTests.cs Gate.Tests/Checks/LinearProbe Gate.Tests.Checks.LinearProbe
  tmv Gate.Tests/Mechanistic/RepresentationAndSurrogateTests.cs Gate.Tests/Checks/Representation Gate.Tests.Checks.Representation
  tmv Gate.Tests/Mechanistic/StaticInspectionTests.cs Gate.Tests/Checks/StaticInspection Gate.Tests.Checks.StaticInspection
  tmv Gate.Tests/Mechanistic/TrojanScanTests.cs Gate.Tests/Checks/TrojanScan Gate.Tests.Checks.TrojanScan
  tmv Gate.Tests/Mechanistic/MechanisticHarness.cs Gate.Tests/Checks Gate.Tests.Checks
  tmv Gate.Tests/Mechanistic/NumericsTests.cs Gate.Tests/Numerics Gate.Tests.Numerics
  tmv Gate.Tests/Mechanistic/PngTests.cs Gate.Tests/Evidence Gate.Tests.Evidence
  tmv Gate.Tests/Audit/ApprovalTests.cs Gate.Tests/Trust Gate.Tests.Trust
  tmv Gate.Tests/Audit/*.cs Gate.Tests/Attestation Gate.Tests.Attestation
  tmv Gate.Tests/Foundation/CheckCommandTests.cs Gate.Tests/Cli Gate.Tests.Cli
  tmv Gate.Tests/Foundation/MalformedModelTests.cs Gate.Tests/Model Gate.Tests.Model
  tmv Gate.Tests/Foundation/MalformedPolicyTests.cs Gate.Tests/Foundation/PolicySchemaSyncTests.cs Gate.Tests/Policy Gate.Tests.Policy
  tmv Gate.Tests/Foundation/NpyTests.cs Gate.Tests/Tensors Gate.Tests.Tensors
  rmdir Gate.Tests/Adversarial Gate.Tests/Mechanistic Gate.Tests/Audit Gate.Tests/Foundation 2>/dev/null || true
  # Cross-references between the moved test classes (kits used by other folders).
  local T=types_of kits
  kits="[{\"types\":$($T Gate.Tests/Checks/Adversarial/*.cs),\"from\":\"Gate.Tests.Adversarial\",\"to\":\"Gate.Tests.Checks.Adversarial\",\"gone\":true},
    {\"types\":$($T Gate.Tests/Checks/MechanisticHarness.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Checks\"},
    {\"types\":$($T Gate.Tests/Checks/LinearProbe/LinearProbeTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Checks.LinearProbe\"},
    {\"types\":$($T Gate.Tests/Checks/Representation/RepresentationAndSurrogateTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Checks.Representation\"},
    {\"types\":$($T Gate.Tests/Checks/StaticInspection/StaticInspectionTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Checks.StaticInspection\"},
    {\"types\":$($T Gate.Tests/Checks/TrojanScan/TrojanScanTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Checks.TrojanScan\"},
    {\"types\":$($T Gate.Tests/Numerics/NumericsTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Numerics\"},
    {\"types\":$($T Gate.Tests/Evidence/PngTests.cs),\"from\":\"Gate.Tests.Mechanistic\",\"to\":\"Gate.Tests.Evidence\",\"gone\":true},
    {\"types\":$($T Gate.Tests/Trust/ApprovalTests.cs),\"from\":\"Gate.Tests.Audit\",\"to\":\"Gate.Tests.Trust\"},
    {\"types\":$($T Gate.Tests/Attestation/*.cs),\"from\":\"Gate.Tests.Audit\",\"to\":\"Gate.Tests.Attestation\",\"gone\":true},
    {\"types\":$($T Gate.Tests/Cli/CheckCommandTests.cs),\"from\":\"Gate.Tests.Foundation\",\"to\":\"Gate.Tests.Cli\"},
    {\"types\":$($T Gate.Tests/Model/MalformedModelTests.cs),\"from\":\"Gate.Tests.Foundation\",\"to\":\"Gate.Tests.Model\"},
    {\"types\":$($T Gate.Tests/Policy/MalformedPolicyTests.cs Gate.Tests/Policy/PolicySchemaSyncTests.cs),\"from\":\"Gate.Tests.Foundation\",\"to\":\"Gate.Tests.Policy\"},
    {\"types\":$($T Gate.Tests/Tensors/NpyTests.cs),\"from\":\"Gate.Tests.Foundation\",\"to\":\"Gate.Tests.Tensors\",\"gone\":true}]"
  retarget "$kits"
  # Paths the docs and tests name
  git grep -l "Gate.Tests/Audit/" -- '*.md' '*.cs' '*.sh' ':!scripts/dev/arch-moves.sh' | xargs -r sed -i 's#Gate\.Tests/Audit/ApprovalTests#Gate.Tests/Trust/ApprovalTests#g; s#Gate\.Tests/Audit/#Gate.Tests/Attestation/#g'
  git grep -l "Gate.Tests/Mechanistic/\|Gate.Tests/Adversarial/\|Gate.Tests/Foundation/" -- '*.md' '*.cs' '*.sh' ':!scripts/dev/arch-moves.sh' | xargs -r sed -i \
    's#Gate\.Tests/Adversarial/#Gate.Tests/Checks/Adversarial/#g; s#Gate\.Tests/Foundation/NpyTests#Gate.Tests/Tensors/NpyTests#g; s#Gate\.Tests/Foundation/CheckCommandTests#Gate.Tests/Cli/CheckCommandTests#g'
}

for s in "${steps[@]}"; do
  case "$s" in
    shared-types) step_shared_types; msg="Neutral homes for shared types: ProgressUpdate → Core/Evidence, the wire JSON options → Core/IO/GateJson, RunnerLocation → Gate.Sandbox, one geteuid (Gate.Sandbox/Posix) (scripts/dev/arch-moves.sh shared-types)" ;;
    numerics) step_numerics; msg="Checks/Mechanistic is what it is: shared numerics → Core/Numerics, white-box check plumbing → Checks/MechanisticData.cs (scripts/dev/arch-moves.sh numerics)" ;;
    audit-split) step_audit_split; msg="Split Core/Audit by dependency: Attestation (keys, DSSE, statements, bundle, model signature, verifier), Trust (approvals, trust policy), IO (atomic write, untrusted input) (scripts/dev/arch-moves.sh audit-split)" ;;
    node-accessors) step_node_accessors; msg="Engine ops read flag attributes through Node.GetBool (scripts/dev/arch-moves.sh node-accessors)" ;;
    test-folders) step_test_folders; msg="Test folders mirror Core and Cli: Checks/<Type>, Numerics, Evidence, Attestation, Trust, Cli, Model, Policy, Tensors; Hostile stays (scripts/dev/arch-moves.sh test-folders)" ;;
    *) echo "arch-moves: unknown step '$s'" >&2; exit 3 ;;
  esac
  if [ $build = 1 ]; then
    echo "arch-moves: $s: building" >&2
    if ! out=$(dotnet build Gate.sln -c Release -v quiet -nologo 2>&1); then
      echo "$out" | grep -E " error " | sort -u | head -40 >&2
      echo "arch-moves: $s does not build" >&2; exit 1
    fi
  fi
  if [ $commit = 1 ] && [ -n "$(git status --porcelain)" ]; then git add -A && git commit -q -m "$msg" && echo "arch-moves: committed $s" >&2; fi
done
