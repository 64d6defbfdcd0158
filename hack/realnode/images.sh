#!/usr/bin/env bash
# Builds the prototype's images as OCI archives from what is on this machine (nothing
# is pulled): the pod sandbox (pause.c, static) and a test image whose rootfs is
# Debian's static busybox (sh, httpd, nc, wget, sleep...), and a test webhook server.
# Prints the archive dir.
# Usage: hack/realnode/images.sh [OUT_DIR]   (needs gcc, busybox-static, python3)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-${STEWARD_CACHE:-$HOME/.cache/steward}/realnode-images}
mkdir -p "$out"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

mkdir -p "$work/pause"
gcc -static -Os -s -Wall -Wextra -Werror -o "$work/pause/pause" "$here/pause.c"
python3 "$here/oci-image.py" --name steward.local/pause:1 --rootfs "$work/pause" \
  --entrypoint '["/pause"]' --user 65535:65535 --out "$out/pause.tar" >&2

r="$work/busybox"
mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/www" "$r/proc" "$r/sys" "$r/dev"
chmod 1777 "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
echo ok >"$r/www/index.html"
python3 "$here/oci-image.py" --name steward.local/busybox:1 --rootfs "$r" \
  --cmd '["sh"]' --out "$out/busybox.tar" >&2
# An admission webhook server (webhook/, Go stdlib only) to show the API server
# reaching a pod through its Service.
mkdir -p "$work/webhook"
(cd "$here/webhook" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/webhook/webhook" .)
python3 "$here/oci-image.py" --name steward.local/webhook:1 --rootfs "$work/webhook" \
  --entrypoint '["/webhook", "/tls/tls.crt", "/tls/tls.key"]' --user 65534:65534 --out "$out/webhook.tar" >&2
echo "$out"
