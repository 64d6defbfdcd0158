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
cargo test --workspace --locked
