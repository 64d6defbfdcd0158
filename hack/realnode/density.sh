#!/usr/bin/env bash
# How many pods one real node holds here, and how fast they start: one real node,
# then PODS pods (busybox `sleep`, 1m CPU, 4Mi memory requested) in one Deployment.
# Prints the time to all Running/Ready and the memory of the node's cgroup tree;
# before that, single-pod start times.
# Usage: hack/realnode/density.sh [PODS (default 100)] [STEWARD_BIN]   (root)
set -euo pipefail
pods=${1:-100}
here=$(cd "$(dirname "$0")" && pwd)
steward=${2:-$here/../../target/debug/steward}
REAL_NODES=1
. "$here/lib.sh"
# One pod at a time first: created to Ready, 10 times (image present, node warm).
ready() { [ "$(k get pod "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
times=()
for j in $(seq 10); do
  t=$(now)
  k run "one-$j" --image=steward.local/busybox:1 -- sleep 100000 >/dev/null
  until_ok 60 "pod one-$j Ready" ready "one-$j"
  times+=("$(since "$t")")
done
echo "single pod created to Ready (s), 10 runs, sorted: $(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')"
k delete pod $(printf 'one-%s ' $(seq 10)) --grace-period=1 --wait=true >/dev/null

mem() { echo $(($(cat /sys/fs/cgroup/memory/steward-stw${n}n1/memory.usage_in_bytes) / 1048576)); }
echo "node cgroup memory before pods: $(mem) MiB"
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleepers}
spec:
  replicas: $pods
  selector: {matchLabels: {app: sleepers}}
  template:
    metadata: {labels: {app: sleepers}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: s
        image: steward.local/busybox:1
        command: ["sleep", "100000"]
        resources: {requests: {cpu: 1m, memory: 4Mi}}
YAML
t=$(now)
k rollout status deploy/sleepers --timeout=600s >/dev/null
echo "$pods pods: created to all available $(since "$t")s"
echo "node cgroup memory with $pods pods: $(mem) MiB"
t=$(now)
k delete deploy sleepers --wait=true >/dev/null
until_ok 600 "all sleeper pods gone" sh -c "[ -z \"\$($STEWARD_CONTROLPLANE_BIN/kubectl get pods -l app=sleepers -o name)\" ]"
echo "$pods pods: deleted to all gone $(since "$t")s"
