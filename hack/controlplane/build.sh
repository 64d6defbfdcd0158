#!/usr/bin/env bash
# Builds the real control-plane programs (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok; kubelet and kube-proxy for real nodes) and the other
# Go peers of the tests (Karpenter's kwok provider, krew, ...) from published Go
# modules pinned in the sibling directories.
# Each binary is cached on its own, keyed by a hash of its module's go.mod/go.sum, package
# and flags ($cache/go/<name>-<key>), so pinning a new tool never rebuilds the control
# plane. The printed bin directory (keyed by all pins) holds symlinks to those binaries.
# A second run with the same pins builds nothing and prints the directory.
#
# Usage: hack/controlplane/build.sh            -> prints the bin directory on stdout
# Env:   STEWARD_CACHE (default ~/.cache/steward)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${STEWARD_CACHE:-$HOME/.cache/steward}
K8S_VERSION=v1.34.4
key=$(cd "$here" && find . -name build.sh -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-16)
bin="$cache/controlplane-$K8S_VERSION-$key/bin"
mkdir -p "$bin"

log() { echo "controlplane: $*" >&2; }

build() { # module-dir package output [ldflags]
  local dir=$1 pkg=$2 out=$3 ldflags=${4:-}
  local k dest
  k=$( { cat "$here/$dir/go.mod" "$here/$dir/go.sum"; echo "$pkg|$ldflags|CGO_ENABLED=0 -trimpath -s -w"; } | sha256sum | cut -c1-16)
  dest="$cache/go/$out-$k"
  if [ ! -x "$dest" ]; then
    log "building $out from $pkg (cold builds take minutes; one at a time to fit 2 cores)"
    local start=$SECONDS
    mkdir -p "$cache/go"
    (cd "$here/$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp.$$" "$pkg")
    mv "$dest.tmp.$$" "$dest"
    log "built $out in $((SECONDS - start))s"
  fi
  ln -sfn "$dest" "$bin/$out"
}

# kubectl, kwok and helm refuse a server that reports v0.0.0: stamp the version.
major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
v=k8s.io/component-base/version
kver="-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
kver="$kver -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$major -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd go.etcd.io/etcd/server/v3 etcd
build kwok sigs.k8s.io/kwok/cmd/kwok kwok
for c in kubectl kube-scheduler kube-controller-manager kube-apiserver; do
  build kubernetes "k8s.io/kubernetes/cmd/$c" "$c" "$kver"
done
# Real nodes (steward-sim, docs/simulated-cluster.md): kubelet and kube-proxy from the same pins. Upstream
# links kubelet with cgo, but nothing it needs by default does (cadvisor's cgo parts
# sit behind the libpfm/libipmctl build tags): CGO_ENABLED=0 like the rest.
for c in kubelet kube-proxy; do
  build kubernetes "k8s.io/kubernetes/cmd/$c" "$c" "$kver"
done
# Karpenter with its kwok cloud provider: real NodePools, NodeClaims and karpenter_*
# metrics for the drain tests. Its CRDs come from the same module version.
build karpenter sigs.k8s.io/karpenter/kwok karpenter-kwok
# helm for the helm install mode of steward monitor.
build helm helm.sh/helm/v3/cmd/helm helm "-X helm.sh/helm/v3/internal/version.version=v3.22.0"
# krew: `kubectl krew install --manifest --archive` checks the plugin manifest and the
# archive hack/release.sh writes, as a user's krew would install them.
build krew sigs.k8s.io/krew/cmd/krew kubectl-krew "-X sigs.k8s.io/krew/internal/version.gitTag=v0.4.3"
# promtool with Kubernetes service discovery (Debian's is built without it), to check
# the Prometheus configuration steward monitor generates.
build promtool github.com/prometheus/prometheus/cmd/promtool promtool
# Prometheus and node_exporter, static, for the real nodes' images (hack/realnode/
# images.sh): monitor's generated kubernetes_sd configuration running in a pod.
build prometheus github.com/prometheus/prometheus/cmd/prometheus prometheus
build node-exporter github.com/prometheus/node_exporter node_exporter
crds="$bin/../karpenter-crds"
if [ ! -f "$crds/.done" ]; then
  src=$(cd "$here/karpenter" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)
  mkdir -p "$crds"
  cp "$src"/kwok/charts/crds/karpenter.sh_*.yaml "$src"/kwok/apis/crds/*.yaml "$crds/"
  touch "$crds/.done"
fi
# The Vertical Pod Autoscaler's updater: the real evicter of the graceful-drain tests.
# Its CRDs come from the same module version.
build vpa k8s.io/autoscaler/vertical-pod-autoscaler/pkg/updater vpa-updater
vcrds="$bin/../vpa-crds"
if [ ! -f "$vcrds/.done" ]; then
  src=$(cd "$here/vpa" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/autoscaler/vertical-pod-autoscaler)
  mkdir -p "$vcrds"
  # The upstream RBAC too: the tests run the updater as its own ServiceAccount.
  cp "$src"/deploy/vpa-v1-crd-gen.yaml "$src"/deploy/vpa-rbac.yaml "$vcrds/"
  touch "$vcrds/.done"
fi
# prometheus-operator: checks that the ServiceMonitor and PrometheusRule objects steward
# monitor writes are accepted and selected. Its CRDs come from the same module version.
build prometheus-operator github.com/prometheus-operator/prometheus-operator/cmd/operator prometheus-operator
pcrds="$bin/../prometheus-operator-crds"
if [ ! -f "$pcrds/.done" ]; then
  src=$(cd "$here/prometheus-operator" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/prometheus-operator/prometheus-operator)
  mkdir -p "$pcrds"
  cp "$src"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$pcrds/"
  touch "$pcrds/.done"
fi
echo "$bin"
