#!/usr/bin/env bash
# Builds the real nodes' image archives on this machine (nothing is pulled) and prints
# their paths, one per line, on stdout:
#   steward.local/pause:1        pause.c (ours), gcc -static: the pod sandbox
#   steward.local/test-http:1    crates/test-images test-http, static musl
#   steward.local/test-worker:1  crates/test-images test-worker, static musl
# Cached by a hash of their sources under $STEWARD_CACHE/realnode-images/<key>/, so a
# second run builds nothing.
#
# Packing: oci-image.py, the prototype's packer, until hack/image.sh's archive writer
# (crates/image-tool, branch `image`) is on main; then this script uses that.
#
# Usage: hack/realnode/images.sh        (needs gcc, python3, the Rust target
#        x86_64-unknown-linux-musl; hack/setup.sh installs them)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# The key: the sources, the toolchain, and the locked versions of the test programs'
# only dependencies (not the whole Cargo.lock, which changes with every crate).
key=$( { cat "$here/pause.c" "$here/oci-image.py" "$0"; rustc --version; gcc --version | head -1;
         grep -A1 -E '^name = "(signal-hook|signal-hook-registry|libc)"$' "$root/Cargo.lock";
         find "$root/crates/test-images" -type f -not -path '*/target/*' | LC_ALL=C sort | xargs cat; } \
       | sha256sum | cut -c1-16)
out=${STEWARD_CACHE:-$HOME/.cache/steward}/realnode-images/$key
names=(pause test-http test-worker)
if [ ! -f "$out/.done" ]; then
  echo "realnode images: building into $out" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  mkdir -p "$out" "$work/pause" "$work/test-http/etc" "$work/test-worker/etc"
  gcc -static -Os -s -Wall -Wextra -Werror -o "$work/pause/pause" "$here/pause.c"
  python3 "$here/oci-image.py" --name steward.local/pause:1 --rootfs "$work/pause" \
    --entrypoint '["/pause"]' --user 65535:65535 --out "$out/pause.tar" >&2
  target=x86_64-unknown-linux-musl
  (cd "$root" && nice cargo build --locked --release -q --target $target -p test-images >&2)
  bins=${CARGO_TARGET_DIR:-$root/target}/$target/release
  for b in test-http test-worker; do
    cp "$bins/$b" "$work/$b/$b"
    printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$work/$b/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$work/$b/etc/group"
    python3 "$here/oci-image.py" --name "steward.local/$b:1" --rootfs "$work/$b" \
      --entrypoint "[\"/$b\"]" --user 65534:65534 --out "$out/$b.tar" >&2
  done
  touch "$out/.done"
fi
for n in "${names[@]}"; do echo "$out/$n.tar"; done
