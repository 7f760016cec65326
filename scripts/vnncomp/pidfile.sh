# Sourced by prepare_instance.sh and run_instance.sh: where run_instance.sh records its prover's pid, so that the
# next prepare_instance.sh can stop a prover an earlier run left behind (the competition's contract).
# One file per tool install (keyed by this repository's path), not one per machine: two benchmark runs from
# different checkouts on one machine must not stop each other's provers (a shared /tmp file did, and the victim
# came back `error` or `unknown` after a few seconds). A run that shares the install with another concurrent run
# (run_benchmark.sh) sets GATE_VNNCOMP_PIDFILE to a file of its own.
vnncomp_pidfile="${GATE_VNNCOMP_PIDFILE:-${TMPDIR:-/tmp}/gate-vnncomp-$(printf '%s' "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)" | sha256sum | cut -c1-16).pid}"
