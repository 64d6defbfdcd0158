#!/usr/bin/env bash
# A real node (kubelet + containerd + runc + CNI bridge + kube-proxy) in a network
# namespace of its own, joined to a simulated cluster started with
# STEWARD_SIM_REALNODE_NET=10.N (see net.sh for the address plan).
#   node.sh up   SIM_DIR N I [IMAGE_ARCHIVE...]   node I (1..100) of the cluster in SIM_DIR
#   node.sh down SIM_DIR N I
# Needs: hack/controlplane/build.sh output in STEWARD_CONTROLPLANE_BIN (kubelet,
# kube-proxy), Debian's containerd, runc, containernetworking-plugins, iptables, openssl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: node.sh up|down SIM_DIR N I [IMAGE...]}
sim=${2:?SIM_DIR} n=${3:?N} i=${4:?I}; shift 4
name=real-node-$i ns=stw${n}n$i
d=$sim/realnodes/$name
ip=10.$n.0.$((10 + i)) gw=10.$n.0.1 pods=10.$n.$((128 + i)).0/24
cgroot=/steward-$ns

cg_kill() { # every process of the node's cgroup tree (containers, shims, daemons)
  local c
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local left=0
    for c in $(find /sys/fs/cgroup/pids$cgroot -name cgroup.procs 2>/dev/null); do
      while read -r p; do kill -KILL "$p" 2>/dev/null && left=1; done <"$c"
    done
    [ $left = 0 ] && break; sleep 0.2
  done
  for s in /sys/fs/cgroup/*/; do
    [ -d "$s$cgroot" ] && find "$s$cgroot" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  true
}

if [ "$cmd" = down ]; then
  [ -f "$d/supervisor.pid" ] && kill -TERM "$(cat "$d/supervisor.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$d/supervisor.pid" ] && kill -0 "$(cat "$d/supervisor.pid")" 2>/dev/null || break; sleep 0.1; done
  cg_kill
  ip route del "$pods" 2>/dev/null || true
  if ip route show "10.$n.64.0/20" | grep -q "via $ip "; then # Services: via another node
    ip route del "10.$n.64.0/20"
    for other in "$sim"/realnodes/*/; do
      o=$(cat "$other/ip" 2>/dev/null) || continue
      [ "$o" != "$ip" ] && ip netns exec "stw${n}n$(basename "$other" | sed 's/real-node-//')" true 2>/dev/null \
        && ip route add "10.$n.64.0/20" via "$o" && break
    done
  fi
  ip netns del "$ns" 2>/dev/null || true
  ip link del "$ns" 2>/dev/null || true
  exit 0
fi
[ "$cmd" = up ] || { echo "node.sh: unknown command $cmd" >&2; exit 2; }
bin=${STEWARD_CONTROLPLANE_BIN:?set STEWARD_CONTROLPLANE_BIN=\$(hack/setup.sh)}
pki=$sim/pki
server=https://$gw:$(grep -oE 'server: https://[^ ]+' "$sim/kubeconfig" | grep -oE '[0-9]+$')
t0=$(date +%s%N)
mkdir -p "$d"/{logs,cni/net.d,cni/ipam,kubelet,pod-logs,pki}
echo "$name" >"$d/name"; echo "$ip" >"$d/ip"

# --- identity: kubelet (system:node:NAME, Node authorizer) and kube-proxy ---
cert() { # file CN O [ip]
  local f=$1 cn=$2 o=$3 san=${4:-}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/pki/$f.key" \
    -subj "/O=$o/CN=$cn" -out "$d/pki/$f.csr" 2>/dev/null
  openssl x509 -req -in "$d/pki/$f.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -out "$d/pki/$f.crt" ${san:+-extfile <(printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$san")} 2>/dev/null
}
cert kubelet-client "system:node:$name" system:nodes
cert kubelet-serving "system:node:$name" system:nodes "$ip"
cert kube-proxy system:kube-proxy system:node-proxiers
kubeconfig() { # file cert
  cat >"$d/$1" <<KC
apiVersion: v1
kind: Config
clusters: [{name: sim, cluster: {server: "$server", certificate-authority: "$pki/ca.crt"}}]
users: [{name: u, user: {client-certificate: "$d/pki/$2.crt", client-key: "$d/pki/$2.key"}}]
contexts: [{name: c, context: {cluster: sim, user: u}}]
current-context: c
KC
}
kubeconfig kubelet.kubeconfig kubelet-client
kubeconfig kube-proxy.kubeconfig kube-proxy

# --- network: netns, veth to the host bridge, routes ---
ip netns add "$ns"
ip link add "$ns" type veth peer name eth0 netns "$ns"
ip link set "$ns" master "stwb$n" up
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx ip addr add "$ip/24" dev eth0
nsx ip link set eth0 up
nsx ip route add default via "$gw"
nsx sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
ip route add "$pods" via "$ip"                                # host -> this node's pods
ip route add "10.$n.64.0/20" via "$ip" 2>/dev/null || true     # host -> Services (first node wins)
for other in "$sim"/realnodes/*/; do                           # node <-> node pod routes
  o=$(basename "$other"); [ "$o" = "$name" ] && continue
  oi=${o#real-node-} ons=stw${n}n$oi
  ip netns exec "$ons" ip route replace "$pods" via "$ip" 2>/dev/null || continue
  nsx ip route replace "10.$n.$((128 + oi)).0/24" via "10.$n.0.$((10 + oi))"
done

# --- cgroups: the kubelet's cgroupRoot, and the node daemons under it ---
for s in /sys/fs/cgroup/*/; do
  case $s in */unified/) continue ;; esac
  mkdir -p "$s$cgroot/node"
done
cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset$cgroot/cpuset.cpus
cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset$cgroot/cpuset.mems
cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset$cgroot/node/cpuset.cpus
cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset$cgroot/node/cpuset.mems

# --- configuration ---
cat >"$d/containerd.toml" <<TOML
version = 2
root = "$d/containerd/root"
state = "$d/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$d/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$d/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "steward.local/pause:1"
  stream_server_address = "127.0.0.1"
  netns_mounts_under_state_dir = true
  # This machine's bounding set lacks CAP_SYS_RESOURCE: nobody may lower an
  # oom_score_adj (the pause container's -998, a Guaranteed pod's -997). Clamp them
  # to containerd's own score, as for rootless containerd.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "${STEWARD_RUNC:-/usr/sbin/runc}"
        # runc's state of this node's containers (default /run/containerd/runc, shared
        # by every containerd on the machine).
        Root = "$d/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$d/containerd/certs.d"
TOML
# Nothing is pulled: every registry resolves to a closed loopback port in the node's
# netns, so a pull fails at once instead of waiting on the outside world.
mkdir -p "$d/containerd/certs.d/_default"
printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
  >"$d/containerd/certs.d/_default/hosts.toml"
cat >"$d/cni/net.d/10-steward.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "steward", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$d/cni/ipam",
            "ranges": [[{"subnet": "$pods"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
CNI
cat >"$d/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$d/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: $cgroot
address: $ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $d/pki/kubelet-serving.crt
tlsPrivateKeyFile: $d/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
podLogsDir: $d/pod-logs
resolvConf: ""
failSwapOn: false
# Images come only from archives imported at start: never collect them.
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
registerWithTaints: []
nodeStatusReportFrequency: 10s
YAML
cat >"$d/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
hostnameOverride: $name
mode: ${STEWARD_PROXY_MODE:-iptables}  # nftables works too (needs the nft binary)
clusterCIDR: 10.$n.128.0/17
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# conntrack limits are VM-wide: leave them alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML

# --- start: the supervisor in the node's netns and a mount namespace of its own ---
# This script joins the node's cgroup first, so that everything it starts is born there.
for s in /sys/fs/cgroup/*/; do
  case $s in */unified/) continue ;; esac
  echo $$ >"$s$cgroot/node/cgroup.procs"
done
# The host's cgroup mounts, for node-run.sh to mount again under the netns' /sys.
grep -E ' cgroup2? ' /proc/self/mounts >"$d/cgroup-mounts"
# A PID namespace of its own: when its first process (node-run.sh) dies, however it
# dies, the kernel kills everything else in it: kubelet, containerd, the shims and
# every container. Nothing of a node outlives a crashed parent.
setsid ip netns exec "$ns" unshare --pid --fork --kill-child --mount-proc \
  "$here/node-run.sh" "$d" "$bin" "$@" >"$d/logs/supervisor.log" 2>&1 &
echo $! >"$d/supervisor.pid"
echo "$((($(date +%s%N) - t0) / 1000000))" >"$d/setup-ms"
echo "$name $ip (netns $ns, pods $pods) starting; logs in $d/logs" >&2
