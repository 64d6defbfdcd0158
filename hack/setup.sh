#!/usr/bin/env bash
# Installs what steward's tests and demo need on a fresh Debian machine and prints
# nothing else on stdout. Idempotent: a warm machine skips every step.
#  - Debian: Prometheus, Alertmanager, node-exporter, promtool (real peers for tests);
#    python3, util-linux, iproute2 (pod server processes in their own netns, agent tests);
#    containerd, runc, CNI plugins, iptables, conntrack (real nodes, docs/simulated-cluster.md),
#    gcc and libc6-dev (the static pause image, hack/realnode/images.sh);
#    musl-tools (ring's C for the static binary of hack/image.sh and hack/release.sh),
#    skopeo and containerd (independent readers of the image archive in its tests),
#    python3-botocore (AWS's own SigV4, checking steward's signatures in a test)
#  - the Rust target x86_64-unknown-linux-musl (static steward, the real nodes' test images)
#  - the control plane, built from Go modules into a cache keyed by version
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
for pair in prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
            prometheus-node-exporter:prometheus-node-exporter curl:curl /usr/bin/time:time \
            python3:python3-minimal unshare:util-linux nsenter:util-linux ip:iproute2 \
            containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins nft:nftables \
            iptables:iptables conntrack:conntrack gcc:gcc /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev \
            musl-gcc:musl-tools skopeo:skopeo ctr:containerd \
            /usr/lib/python3/dist-packages/botocore:python3-botocore; do
  f=${pair%%:*}
  if [[ $f == /* ]]; then [ -e "$f" ]; else command -v "$f" >/dev/null 2>&1; fi || need+=("${pair#*:}")
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
# The static binaries of the image and the releases (hack/static-build.sh) and of
# the real nodes' test images (hack/realnode/images.sh).
rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl ||
  rustup target add x86_64-unknown-linux-musl >&2
"$here/controlplane/build.sh"
