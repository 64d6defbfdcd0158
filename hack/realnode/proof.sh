#!/usr/bin/env bash
# The prototype end to end: a simulated cluster whose API server sits on a host
# bridge, one real node, and the checks of issue 15's prototype step. Prints timings.
# Usage: hack/realnode/proof.sh [STEWARD_BIN]   (root; needs hack/setup.sh done)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
steward=${1:-$here/../../target/debug/steward}
export STEWARD_CONTROLPLANE_BIN=${STEWARD_CONTROLPLANE_BIN:-$("$here/../setup.sh")}
images=$("$here/images.sh")
sim=$(mktemp -d /tmp/steward-realnode.XXXXXX)
export KUBECONFIG=$sim/kubeconfig
k() { "$STEWARD_CONTROLPLANE_BIN/kubectl" "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
n=$("$here/net.sh" up)
ns=stw${n}n1
cleanup() {
  set +e
  "$here/node.sh" down "$sim" "$n" 1
  "$steward" sim down --dir "$sim" >/dev/null
  "$here/net.sh" down "$n"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

t=$(now)
STEWARD_SIM_REALNODE_NET=10.$n "$steward" sim up --dir "$sim" --nodes 0 >/dev/null
echo "control plane ready: $(since "$t")s"

t=$(now)
"$here/node.sh" up "$sim" "$n" 1 "$images"/*.tar
k wait --for=condition=Ready node/real-node-1 --timeout=120s >/dev/null
echo "real node Ready: $(since "$t")s  ($(cat "$sim/realnodes/real-node-1/logs/import.log" | tail -1))"

# 1. a Job from the busybox image: echo hello, Succeeded, kubectl logs
t=$(now)
k create job hello --image=steward.local/busybox:1 -- sh -c 'echo hello' >/dev/null
k patch job hello --type=json -p='[{"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"}]' >/dev/null 2>&1 || true
k wait --for=condition=Complete job/hello --timeout=60s >/dev/null
echo "job hello complete: $(since "$t")s"
[ "$(k logs job/hello)" = hello ] || fail "kubectl logs job/hello: $(k logs job/hello)"
echo "ok: kubectl logs job/hello = hello"
