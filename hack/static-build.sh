#!/usr/bin/env bash
# Builds the steward binary statically linked against musl, reproducibly, and
# prints its path last on stdout. Used by hack/image.sh and hack/release.sh.
#
# Static musl because the image has no libraries and no NSS: musl's resolver reads
# /etc/hosts and /etc/resolv.conf itself (search domains, ndots, TCP fallback since
# musl 1.2.4; Rust bundles musl 1.2.5), so kubernetes.default.svc and Slack or
# Prometheus host names resolve in a pod. glibc linked statically would still try to
# dlopen NSS modules for getaddrinfo. ring's C and assembly are compiled with
# Debian's musl-gcc (musl-tools); the workspace has no other C dependency.
#
# Reproducible: paths of this checkout, of cargo's registry and of the toolchain are
# remapped (--remap-path-prefix for Rust, -ffile-prefix-map for C), RUSTFLAGS from
# the environment are ignored (they would take precedence over these). The release
# profile strips symbols.
#
# Usage: hack/static-build.sh [TARGET]      (default x86_64-unknown-linux-musl)
# Env:   CARGO_TARGET_DIR (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-x86_64-unknown-linux-musl}
case $target in
  x86_64-unknown-linux-musl) cc=musl-gcc ;;
  aarch64-unknown-linux-musl) cc=aarch64-linux-musl-gcc ;;
  *) echo "static-build: target $target is not a musl target this script knows (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)" >&2; exit 2 ;;
esac
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  echo "static-build: the Rust target $target is not installed: rustup target add $target" >&2
  exit 1
fi
if ! command -v "$cc" >/dev/null; then
  echo "static-build: $cc not found (ring's C code needs a musl C compiler; on Debian: apt-get install musl-tools, which hack/setup.sh does)" >&2
  exit 1
fi
# Physical paths: the same toolchain can be reached through a symlink (rustup's
# 1.95.0 -> stable), and a different spelling would change RUSTFLAGS and rebuild all.
cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" && pwd -P)
sysroot=$(cd "$(rustc --print sysroot)" && pwd -P)
root=$(pwd -P)
t=${target//-/_}
T=${t^^}
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export "CARGO_TARGET_${T}_RUSTFLAGS=--remap-path-prefix=$root=/steward --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$sysroot=/rust"
export "CC_$t=$cc"
export "CFLAGS_$t=-ffile-prefix-map=$root=/steward -ffile-prefix-map=$cargo_home=/cargo"
# Nothing in the binary carries a date, and the cc crate makes ring's build script
# rerun whenever SOURCE_DATE_EPOCH changes, which would rebuild nearly the whole tree
# at every commit; so the build runs without it (the image and archives use it).
unset SOURCE_DATE_EPOCH
# A parent cargo (the tests run this from `cargo test`) leaves its per-crate variables
# in the environment; cc has ring's build script track CARGO_MANIFEST_DIR, so keeping
# them would rebuild nearly the whole tree whenever the caller changes.
clean=()
while IFS='=' read -r name _; do
  case $name in
    CARGO_MANIFEST_*|CARGO_PKG_*|CARGO_CRATE_*|CARGO_BIN_*|CARGO_TARGET_TMPDIR|CARGO_PRIMARY_PACKAGE|OUT_DIR) clean+=(-u "$name") ;;
  esac
done < <(env)
echo "static-build: cargo build --release --target $target -p steward (cold builds take minutes)" >&2
env "${clean[@]}" nice cargo build --locked --release --target "$target" -p steward >&2
echo "${CARGO_TARGET_DIR:-$root/target}/$target/release/steward"
