# Sourced by proof.sh and density.sh: a simulated cluster on a fresh 10.N bridge with
# REAL_NODES real nodes (default 2), torn down on exit. Defines k, nsx, until_ok, since.
# (here and steward are set by the caller.)
export STEWARD_CONTROLPLANE_BIN=${STEWARD_CONTROLPLANE_BIN:-$("$here/../setup.sh")}
images=$("$here/images.sh")
sim=$(mktemp -d /tmp/steward-realnode.XXXXXX)
export KUBECONFIG=$sim/kubeconfig
k() { "$STEWARD_CONTROLPLANE_BIN/kubectl" "$@"; }
now() { date +%s%N; }
since() { local ms=$((($(now) - $1) / 1000000)); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }
fail() { echo "FAIL: $*" >&2; exit 1; }
until_ok() { # seconds description command... : retry until it succeeds
  local deadline=$(($(date +%s) + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt $deadline ] || fail "$what (not within the deadline)"
    sleep 0.05
  done
}
node_ready() { [ "$(k get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }

n=$("$here/net.sh" up)
cleanup() {
  set +e
  mkdir -p "$sim.logs"  # the nodes' logs outlive the cluster, for a look afterwards
  for l in "$sim"/realnodes/*/logs; do cp -r "$l" "$sim.logs/$(basename "$(dirname "$l")")"; done
  for i in $(seq "${REAL_NODES:-2}"); do "$here/node.sh" down "$sim" "$n" "$i"; done
  "$steward" sim down --dir "$sim" >/dev/null
  "$here/net.sh" down "$n"
}
trap cleanup EXIT
nsx() { ip netns exec "stw${n}n$1" "${@:2}"; }

t=$(now)
STEWARD_SIM_REALNODE_NET=10.$n "$steward" sim up --dir "$sim" --nodes 0 >/dev/null 2>&1
k apply -f "$here/never-pull.yaml" >/dev/null
echo "control plane on 10.$n.0.1 ready: $(since "$t")s"
for i in $(seq "${REAL_NODES:-2}"); do
  t=$(now)
  "$here/node.sh" up "$sim" "$n" "$i" "$images"/*.tar 2>/dev/null
  until_ok 60 "real-node-$i Ready" node_ready "real-node-$i"
  echo "real-node-$i Ready: $(since "$t")s ($(tail -1 "$sim/realnodes/real-node-$i/logs/import.log"))"
done

