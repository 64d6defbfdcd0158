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
cargo test --workspace --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "steward tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
