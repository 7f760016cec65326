#!/usr/bin/env bash
# Runs a VNN-COMP benchmark directory through prepare_instance.sh / run_instance.sh and scores it against
# expected.csv (as in ../shared/vnncomp): a sat counts only with a counterexample that re-checks (run_instance.sh
# reports unconfirmed ones as unknown); a wrong answer is any sat/unsat that disagrees with the known answer.
# usage: run_benchmark.sh BENCH_DIR OUT_CSV [TIMEOUT_OVERRIDE_S] [FILTER_REGEX]
#   TIMEOUT_OVERRIDE_S: run every instance with this timeout instead of the competition's (shorter screening runs).
#   FILTER_REGEX: only instances whose "onnx,vnnlib" matches (e.g. to rerun the undecided ones longer).
# Output CSV: onnx,vnnlib,timeout_s,expected,result,verdict,wall_s,peak_rss_kb
set -uo pipefail
bench="$(cd "$1" && pwd)"; out="$2"; override="${3:-}"; filter="${4:-.}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
category="$(basename "$bench")"
echo "onnx,vnnlib,timeout_s,expected,result,verdict,wall_s,peak_rss_kb" > "$out"
# A pid file of this run's own: a concurrent benchmark of the same install must not stop this run's provers.
pidfile_dir="$(mktemp -d)"; trap 'rm -rf "$pidfile_dir"' EXIT
export GATE_VNNCOMP_PIDFILE="$pidfile_dir/gate-vnncomp.pid"
tail -n +2 "$bench/expected.csv" | while IFS=, read -r onnx vnnlib timeout expected _rest; do
  echo "$onnx,$vnnlib" | grep -Eq -- "$filter" || continue
  t="${override:-$timeout}"
  res="$(mktemp)"; tm="$(mktemp)"
  "$here/prepare_instance.sh" v1 "$category" "$bench/$onnx" "$bench/$vnnlib" >/dev/null
  /usr/bin/time -f "%e %M" -o "$tm" "$here/run_instance.sh" v1 "$category" "$bench/$onnx" "$bench/$vnnlib" "$res" "$t" >/dev/null 2>&1
  result="$(head -n 1 "$res" 2>/dev/null || echo missing)"
  read -r wall rss < "$tm"
  case "$result" in
    sat|unsat) if [ "$result" = "$expected" ]; then verdict=correct; else verdict=WRONG; fi ;;
    *) verdict=undecided ;;
  esac
  echo "$onnx,$vnnlib,$t,$expected,$result,$verdict,$wall,$rss" | tee -a "$out"
  rm -f "$res" "$tm"
done
