#!/usr/bin/env bash
# Builds the real nodes' image archives on this machine (nothing is pulled) and prints
# their paths, one per line, on stdout:
#   steward.local/pause:1        pause.c (ours), gcc -static: the pod sandbox
#   steward.local/test-http:1    crates/test-images test-http, static musl
#   steward.local/test-worker:1  crates/test-images test-worker, static musl
#   steward.local/prometheus:<v>       Prometheus, static, from hack/controlplane/build.sh
#   steward.local/node-exporter:<v>    node_exporter, static, from the same script
#   localhost/steward:<version>  steward's own image, hack/image.sh (unless --no-steward)
# All but steward's are packed by crates/test-image-pack with image-tool's archive
# writer (the one hack/image.sh uses) and cached by a hash of their sources under
# $STEWARD_CACHE/realnode-images/<key>/, so a second run builds nothing; the steward
# image is hack/image.sh's own (cargo rebuilds only what changed).
#
# Usage: hack/realnode/images.sh [--no-steward]   (needs gcc, libc6-dev, musl-tools and
#        the Rust target x86_64-unknown-linux-musl; hack/setup.sh installs them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
steward=1
case ${1:-} in
  --no-steward) steward=0 ;;
  "") ;;
  *) echo "images: unknown argument $1 (usage: images.sh [--no-steward])" >&2; exit 2 ;;
esac
# The key: the sources, the toolchain, and the locked versions of the test programs'
# only dependencies (not the whole Cargo.lock, which changes with every crate), and
# the packer with image-tool.
bin=$(bash "$root/hack/controlplane/build.sh")
prom_v=$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" {print $3}' "$root/hack/controlplane/prometheus/go.mod")
nodex_v=$(awk '$1 == "require" && $2 == "github.com/prometheus/node_exporter" {print $3}' "$root/hack/controlplane/node-exporter/go.mod")
key=$( { cat "$here/pause.c" "$0"; rustc --version; gcc --version | head -1;
         readlink -f "$bin/prometheus" "$bin/node_exporter";
         grep -A1 -E '^name = "(signal-hook|signal-hook-registry|libc)"$' "$root/Cargo.lock";
         find "$root/crates/test-images" "$root/crates/test-image-pack" "$root/crates/image-tool/src" \
           -type f -not -path '*/target/*' | LC_ALL=C sort | xargs cat; } \
       | sha256sum | cut -c1-16)
out=${STEWARD_CACHE:-$HOME/.cache/steward}/realnode-images/$key
target_dir=${CARGO_TARGET_DIR:-$root/target}
if [ ! -f "$out/.done" ]; then
  echo "realnode images: building into $out" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  mkdir -p "$out"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$work/pause" "$here/pause.c"
  musl=x86_64-unknown-linux-musl
  (cd "$root" && nice cargo build --locked --release -q --target $musl -p test-images >&2 &&
     nice cargo build --locked -q -p test-image-pack >&2)
  pack=$target_dir/debug/test-image-pack
  "$pack" --binary "$work/pause" --name steward.local/pause --user 65535:65535 --out "$out/pause.tar"
  for b in test-http test-worker; do
    "$pack" --binary "$target_dir/$musl/release/$b" --name "steward.local/$b" --out "$out/$b.tar"
  done
  # The program lands in /bin: Prometheus's data volume is mounted at /prometheus.
  "$pack" --binary "$(readlink -f "$bin/prometheus")" --dir bin --name steward.local/prometheus \
    --tag "$prom_v" --source github.com/prometheus/prometheus --out "$out/prometheus.tar"
  "$pack" --binary "$(readlink -f "$bin/node_exporter")" --dir bin --name steward.local/node-exporter \
    --tag "$nodex_v" --source github.com/prometheus/node_exporter --out "$out/node-exporter.tar"
  touch "$out/.done"
fi
for n in pause test-http test-worker prometheus node-exporter; do echo "$out/$n.tar"; done
if [ $steward = 1 ]; then
  "$root/hack/image.sh" | tail -1
fi
