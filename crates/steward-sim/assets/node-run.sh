#!/usr/bin/env bash
# A real node's first process (steward-sim, realnode/node.rs, writes this file and
# starts it). Shell because this is a short list of mounts and three daemons in one
# namespace; the kernel's PID namespace does the supervising.
#
# Runs inside the node's network namespace and mount namespace (from `ip netns exec`)
# and PID namespace (from unshare; steward-sim starts both) as its first process:
# containerd, then the images imported, then kubelet and kube-proxy. They share this
# mount namespace, so the kubelet's volume mounts are what runc bind-mounts, and every
# mount made here (overlay rootfs, pod netns, tmpfs volumes) ends with the node.
# Usage: node-run.sh NODE_DIR BIN_DIR IMAGE_ARCHIVE...
set -euo pipefail
d=$1 bin=$2; shift 2
log=$d/logs; mkdir -p "$log"

# Volumes with mount propagation (node-exporter's host root, HostToContainer) need
# "/" to be a shared or slave mount where runc runs, as on every real node (kind's
# node entrypoint does the same). unshare left this namespace's mounts private, so
# nothing of it propagates to the machine; shared here means among this node's own
# mounts and its containers' only.
mount --make-rshared /

# `ip netns exec` mounted a sysfs of the node's netns over /sys, hiding the cgroup
# hierarchies under it: mount them again, as the host has them (the same hierarchies;
# runc, containerd and the kubelet find them through this mount namespace's mountinfo).
mount -t tmpfs -o mode=755 cgroup-root /sys/fs/cgroup
while read -r _ dir fs opts _; do
  mkdir -p "$dir"
  mount -t "$fs" -o "$opts" "$fs" "$dir"
done <"$d/cgroup-mounts"
# Join the node's cgroups before starting anything: everything below is born there,
# and the clean-up kills whatever is left in them.
cg=$(cat "$d/cgroup")
for s in /sys/fs/cgroup/*/; do
  if [ -d "$s${cg#/}/node" ]; then echo $$ >"$s${cg#/}/node/cgroup.procs"; fi
done

# Paths containerd and the CNI plugins use whatever the configuration says: shim
# sockets and fifos (/run/containerd), CNI result caches (/var/lib/cni). A private
# tmpfs each, so a killed node leaves none of them on the machine and never sees
# another containerd's.
for p in /run/containerd /var/lib/cni; do
  mkdir -p "$p"
  mount -t tmpfs -o mode=700 node-private "$p"
done

# The kubelet sets VM-wide sysctls (kernel.panic_on_oops=1, kernel.panic=10,
# vm.overcommit_memory=1) when they differ from what it wants. On a shared machine
# the node shows it its values instead, in this mount namespace only.
for kv in kernel/panic=10 kernel/panic_on_oops=1 vm/overcommit_memory=1 vm/panic_on_oom=0; do
  f=/proc/sys/${kv%=*} want=${kv#*=}
  [ "$(cat "$f")" = "$want" ] && continue
  shown=$d/sysctl.$(tr / . <<<"${kv%=*}")
  echo "$want" >"$shown"
  mount --bind "$shown" "$f"
done

# STEWARD_CONTAINERD_DIR: containerd, containerd-shim-runc-v2 and ctr from elsewhere
# (e.g. containerd 2 built from Go modules) instead of Debian's.
if [ -n "${STEWARD_CONTAINERD_DIR:-}" ]; then export PATH=$STEWARD_CONTAINERD_DIR:$PATH; fi

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null; wait; exit 0; }
trap stop TERM INT

containerd --config "$d/containerd.toml" >"$log/containerd.log" 2>&1 & pids+=($!)
for _ in $(seq 400); do
  ctr --address "$d/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.05
done
t0=$(date +%s%N)
for img in "$@"; do
  if ! ctr --address "$d/containerd.sock" -n k8s.io images import --snapshotter overlayfs "$img" >>"$log/import.log" 2>&1; then
    echo "importing $img failed: $(tail -3 "$log/import.log")" >&2; exit 1
  fi
done
echo "imported $# images in $((($(date +%s%N) - t0) / 1000000))ms" >>"$log/import.log"

"$bin/kubelet" --config="$d/kubelet.yaml" --kubeconfig="$d/kubelet.kubeconfig" \
  --root-dir="$d/kubelet" --hostname-override="$(cat "$d/name")" --node-ip="$(cat "$d/ip")" \
  --node-labels="steward.io/real-node=true" --v=2 >"$log/kubelet.log" 2>&1 & pids+=($!)
"$bin/kube-proxy" --config="$d/kube-proxy.yaml" --v=2 >"$log/kube-proxy.log" 2>&1 & pids+=($!)
echo "${pids[*]}" >"$d/pids"
wait -n
echo "a node process exited; stopping the node" >&2
stop
