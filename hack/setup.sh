#!/usr/bin/env bash
# Installs what steward's tests and demo need on a fresh Debian machine and prints
# nothing else on stdout. Idempotent: a warm machine skips every step.
#  - Debian: Prometheus, Alertmanager, node-exporter, promtool (real peers for tests);
#    python3, util-linux, iproute2 (pod server processes in their own netns, agent tests);
#    containerd, runc, CNI plugins, iptables, conntrack, busybox-static, openssl (real
#    nodes, hack/realnode)
#  - the control plane, built from Go modules into a cache keyed by version
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
for pair in prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
            prometheus-node-exporter:prometheus-node-exporter curl:curl /usr/bin/time:time \
            python3:python3-minimal unshare:util-linux nsenter:util-linux ip:iproute2 \
            containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
            iptables:iptables conntrack:conntrack /bin/busybox:busybox-static openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq >&2
  # Services are not started here (no init system); tests run their own processes.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

command -v go >/dev/null || { echo "setup: Go is required to build the control plane" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup: Rust (cargo) is required" >&2; exit 1; }
"$here/controlplane/build.sh"
