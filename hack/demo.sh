#!/usr/bin/env bash
# The demo: a simulated cluster (real control plane, kwok nodes), the real Karpenter
# (kwok provider) provisioning a NodePool for some workloads, a real Prometheus
# scraping Karpenter, and steward rotating the NodePool's oldest nodes.
# KEEP=1 leaves the cluster running (Karpenter and Prometheus stop with the script).
#
# No step reads part of a pipe (`... | head -1` under pipefail dies of SIGPIPE when
# the reader leaves first); every step that can fail is named, and a failure says
# which one, with its exit code.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
step="set up the control plane binaries (hack/setup.sh)"
trap 'code=$?; echo "demo: failed at step \"$step\" (exit $code, line $LINENO)" >&2; exit $code' ERR
STEWARD_CONTROLPLANE_BIN=$(hack/setup.sh)
export STEWARD_CONTROLPLANE_BIN
step="build steward (cargo build -p steward)"
cargo build --quiet -p steward
steward=$PWD/target/debug/steward
kubectl="$STEWARD_CONTROLPLANE_BIN/kubectl"
export STEWARD_SIM_DIR=${STEWARD_SIM_DIR:-$PWD/target/demo-sim}
say() { step=$*; printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ -f "$STEWARD_SIM_DIR/state.json" ]; then
  step="stop the previous demo cluster"
  $steward sim down >/dev/null 2>&1 || true
fi
say "start a simulated cluster"
$steward sim up --nodes 1
export KUBECONFIG=$STEWARD_SIM_DIR/kubeconfig
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || $steward sim down
}
trap cleanup EXIT
# A free port below the kernel's ephemeral range, where no outgoing connection or
# port-0 bind can take it before the program binds it (as steward-sim picks them).
port() {
  python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for p in random.sample(range(10000, max(lo, 11000)), 200):
    try:
        s = socket.socket(); s.bind(("127.0.0.1", p)); s.close(); print(p); break
    except OSError:
        pass
PY
}
wait_for() { # seconds description command...
  local n=$1 what=$2; shift 2
  for _ in $(seq $((n * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for $what" >&2; return 1
}

say "start Karpenter (kwok cloud provider) and a NodePool"
$kubectl apply --server-side -f "$STEWARD_CONTROLPLANE_BIN/../karpenter-crds/" >/dev/null
kmetrics=$(port); khealth=$(port)
SYSTEM_NAMESPACE=kube-system DISABLE_LEADER_ELECTION=true KUBERNETES_MIN_VERSION=1.19.0-0 \
  METRICS_PORT=$kmetrics HEALTH_PROBE_PORT=$khealth \
  "$STEWARD_CONTROLPLANE_BIN/karpenter-kwok" > "$STEWARD_SIM_DIR/logs/karpenter.log" 2>&1 &
pids+=($!)
wait_for 60 "Karpenter (log: $STEWARD_SIM_DIR/logs/karpenter.log)" curl -sf "http://127.0.0.1:$kmetrics/metrics"
$kubectl apply -f hack/demo/karpenter.yaml

say "deploy workloads; Karpenter provisions nodes for them"
$kubectl apply -f hack/demo/workloads.yaml
$kubectl -n demo rollout status deployment/web --timeout=180s
$kubectl -n demo rollout status statefulset/db --timeout=180s
$kubectl get nodeclaims
$kubectl get nodes -L karpenter.sh/nodepool,karpenter.kwok.sh/instance-type

say "start Prometheus scraping Karpenter"
pport=$(port)
cat > "$STEWARD_SIM_DIR/prometheus.yml" <<YAML
global: { scrape_interval: 2s }
scrape_configs:
- job_name: karpenter
  static_configs: [ { targets: ['127.0.0.1:$kmetrics'] } ]
YAML
prometheus --config.file="$STEWARD_SIM_DIR/prometheus.yml" --storage.tsdb.path="$STEWARD_SIM_DIR/prometheus" \
  --web.listen-address="127.0.0.1:$pport" > "$STEWARD_SIM_DIR/logs/prometheus.log" 2>&1 &
pids+=($!)
prom=http://127.0.0.1:$pport
# The whole answer is read, then matched: no reader leaves a pipe early.
pool_requests_in_prometheus() {
  local answer
  answer=$(curl -sf "$prom/api/v1/query" --data-urlencode 'query=karpenter_nodes_total_pod_requests{nodepool="workers"} > 0') || return 1
  [[ $answer == *'"value"'* ]]
}
wait_for 60 "Karpenter metrics in Prometheus (log: $STEWARD_SIM_DIR/logs/prometheus.log)" pool_requests_in_prometheus
flags=(--nodepool-name workers --prometheus-address "$prom" --cluster-name demo)

say "steward karpenter allocate-rate"
$steward karpenter allocate-rate "${flags[@]}"
say "steward drain --dry-run"
$steward drain "${flags[@]}" --dry-run
# The pool is full, so the computed batch is 0 (see the plan above). Rotate the oldest
# node by hand; Karpenter provisions a replacement for the pods that cannot fit, and
# removes the drained node once steward deletes its NodeClaim.
step="find the NodePool's oldest node"
oldest=$($kubectl get nodes -l karpenter.sh/nodepool=workers --sort-by=.metadata.creationTimestamp -o jsonpath='{.items[0].metadata.name}')
[ -n "$oldest" ] || { echo "demo: the NodePool workers has no nodes" >&2; false; }
say "steward drain --nodes $oldest"
$steward drain "${flags[@]}" --nodes "$oldest" --timeout 3m
$kubectl -n demo rollout status deployment/web --timeout=180s
$kubectl get nodeclaims
say "after the drain"
$kubectl get nodes -o custom-columns='NAME:.metadata.name,NODEPOOL:.metadata.labels.karpenter\.sh/nodepool,UNSCHEDULABLE:.spec.unschedulable,DRAIN-STATE:.metadata.annotations.steward\.io/drain-state'
$kubectl -n demo get pods -o wide
[ "${KEEP:-0}" = 1 ] && echo "left running: export KUBECONFIG=$KUBECONFIG; stop with: $steward sim down"
exit 0
