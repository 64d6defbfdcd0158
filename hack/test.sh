#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests and integration tests against a
# real local control plane. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
STEWARD_CONTROLPLANE_BIN=$(hack/setup.sh)
export STEWARD_CONTROLPLANE_BIN
echo "test: control plane binaries in $STEWARD_CONTROLPLANE_BIN" >&2
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# Every test binary runs, even after one fails, so the closing line counts them all.
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary). A test
# binary that cargo started ("Running ..." or "Doc-tests ...") but that printed no
# "test result:" line crashed (a signal, an abort, a panic outside a test); a target
# that did not compile ran nothing. Both are named.
awk -v status="$status" '
  function close_binary() { if (current != "") { crashed++; names = names "\n  crashed: " current } current = "" }
  /^ *Running / || /^ *Doc-tests / { close_binary(); bins++; current = $0; sub(/^ +/, "", current) }
  /^test result:/ {
    current = ""
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed/) p += $i
      if ($(i+1) ~ /^failed/) f += $i
      if ($(i+1) ~ /^ignored/) ig += $i
    }
  }
  /^error: could not compile/ { broken++; names = names "\n  did not build: " $0 }
  END {
    close_binary()
    line = sprintf("steward tests: %d passed, %d failed, %d ignored in %d test binaries", p, f, ig, bins)
    if (crashed) line = line sprintf("; %d test binaries crashed", crashed)
    if (broken) line = line sprintf("; %d targets did not build", broken)
    if (status != 0 && !f && !crashed && !broken) line = line sprintf("; cargo test exited %d", status)
    print line names
  }' "$log"
exit "$status"
