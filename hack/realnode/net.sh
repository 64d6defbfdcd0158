#!/usr/bin/env bash
# The host side of the real nodes of one simulated cluster: a bridge stwb<N> holding
# 10.N.0.1/24 (the API server binds there; see STEWARD_SIM_REALNODE_NET), N picked so
# that no address or route of this machine is in 10.N.0.0/16 (other clusters too).
#   net.sh up     -> prints N          net.sh down N
# Layout of 10.N.0.0/16: nodes 10.N.0.(10+i)/24, Services 10.N.64.0/20,
# pods of node i 10.N.(128+i).0/24 (cluster CIDR 10.N.128.0/17).
set -euo pipefail
lock=/run/steward-realnode.lock
case ${1:-} in
up)
  exec 9>"$lock"; flock 9
  used=$( { ip -o -4 addr show; ip -4 route show table all; } | grep -oE '\b10\.[0-9]+\.' | sort -u || true)
  for n in $(seq 200 250); do
    grep -qx "10\.$n\." <<<"$used" && continue
    ip link show "stwb$n" >/dev/null 2>&1 && continue
    ip link add "stwb$n" type bridge
    ip addr add "10.$n.0.1/24" dev "stwb$n"
    ip link set "stwb$n" up
    # Whatever of 10.N.0.0/16 has no route of its own (a Service range before its
    # first node, a stopped node's pods) is unreachable, never sent out of eth0.
    ip route add unreachable "10.$n.0.0/16" metric 4000
    echo "$n"; exit 0
  done
  echo "net.sh: no free 10.N.0.0/16 for N in 200..250" >&2; exit 1 ;;
down)
  n=${2:?usage: net.sh down N}
  ip route del "10.$n.64.0/20" 2>/dev/null || true
  ip route del unreachable "10.$n.0.0/16" metric 4000 2>/dev/null || true
  ip link del "stwb$n" 2>/dev/null || true ;;
*) echo "usage: net.sh up | down N" >&2; exit 2 ;;
esac
