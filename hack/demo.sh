#!/usr/bin/env bash
# The demo: a simulated cluster (real control plane, kwok nodes) with workloads on a
# Karpenter-style NodePool, shown with kubectl and steward. KEEP=1 leaves it running.
set -euo pipefail
cd "$(dirname "$0")/.."
STEWARD_CONTROLPLANE_BIN=$(hack/setup.sh)
export STEWARD_CONTROLPLANE_BIN
cargo build --quiet -p steward
steward=target/debug/steward
kubectl="$STEWARD_CONTROLPLANE_BIN/kubectl"
export STEWARD_SIM_DIR=${STEWARD_SIM_DIR:-$PWD/target/demo-sim}

[ -f "$STEWARD_SIM_DIR/state.json" ] && $steward sim down >/dev/null 2>&1 || true
$steward sim up --nodes 4 --node-label karpenter.sh/nodepool=default --node-cpu 4 --node-memory 16Gi
export KUBECONFIG=$STEWARD_SIM_DIR/kubeconfig
cleanup() { [ "${KEEP:-0}" = 1 ] || $steward sim down; }
trap cleanup EXIT

$kubectl apply -f hack/demo/workloads.yaml
$kubectl -n demo rollout status deployment/web --timeout=120s
$kubectl -n demo rollout status statefulset/db --timeout=120s
$kubectl -n demo rollout status daemonset/node-agent --timeout=120s
echo; $kubectl get nodes -L karpenter.sh/nodepool
echo; $kubectl -n demo get pods -o wide
echo; $kubectl -n demo get pdb
echo; $steward version
echo; $steward sim status
[ "${KEEP:-0}" = 1 ] && echo "left running: export KUBECONFIG=$KUBECONFIG; stop with: $steward sim down"
