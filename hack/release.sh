#!/usr/bin/env bash
# Builds steward's release files and prints their directory last on stdout
# (default target/release-dist/v<version>):
#   steward-v<version>-linux-amd64                 the static binary (hack/static-build.sh)
#   kubectl-steward-v<version>-linux-amd64.tar.gz  the same binary as kubectl-steward
#                                                  (plus LICENSE when the repository has one)
#   <file>.sha256 for each, and SHA256SUMS for all  (sha256sum -c SHA256SUMS)
#   steward.yaml                                   krew plugin manifest for `kubectl steward`
#
# Only linux/amd64 is built by default. aarch64 needs the Rust target
# aarch64-unknown-linux-musl and a musl C cross compiler for ring
# (aarch64-linux-musl-gcc), which Debian does not package; where both exist,
# STEWARD_RELEASE_TARGETS="x86_64-unknown-linux-musl aarch64-unknown-linux-musl" adds it.
#
# Reproducible like the image: the binary from hack/static-build.sh, archives with
# sorted entries, mtime SOURCE_DATE_EPOCH (the commit time), owner 0:0, gzip -n.
#
# Env: STEWARD_RELEASE_URL      where the archives will be downloaded from, for the
#                               krew manifest (default <repository>/releases/download/v<version>)
#      STEWARD_RELEASE_DIR      output directory
#      STEWARD_RELEASE_TARGETS  Rust targets (default x86_64-unknown-linux-musl)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
repository=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -1)
tag="v$version"
url=${STEWARD_RELEASE_URL:-$repository/releases/download/$tag}
case $url in
  https://*) ;;
  *) echo "release: STEWARD_RELEASE_URL must be an https:// URL (krew downloads only over https), got $url" >&2; exit 2 ;;
esac
out=${STEWARD_RELEASE_DIR:-${CARGO_TARGET_DIR:-$PWD/target}/release-dist/$tag}
targets=${STEWARD_RELEASE_TARGETS:-x86_64-unknown-linux-musl}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH

rm -rf "$out"
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
platforms=""
artifacts=()
for target in $targets; do
  case $target in
    x86_64-unknown-linux-musl) arch=amd64 ;;
    aarch64-unknown-linux-musl) arch=arm64 ;;
    *) echo "release: unknown target $target (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)" >&2; exit 2 ;;
  esac
  bin=$(hack/static-build.sh "$target" | tail -1)
  plain="steward-$tag-linux-$arch"
  archive="kubectl-steward-$tag-linux-$arch.tar.gz"
  install -m 0755 "$bin" "$out/$plain"
  rm -rf "${stage:?}"/*
  install -m 0755 "$bin" "$stage/kubectl-steward"
  files=(kubectl-steward)
  if [ -f LICENSE ]; then install -m 0644 LICENSE "$stage/LICENSE"; files+=(LICENSE); fi
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
      --format=ustar -C "$stage" -cf - "${files[@]}" | gzip -n -9 > "$out/$archive"
  artifacts+=("$plain" "$archive")
  sum=$(sha256sum "$out/$archive" | cut -d' ' -f1)
  platforms+="  - selector:
      matchLabels:
        os: linux
        arch: $arch
    uri: $url/$archive
    sha256: $sum
    bin: kubectl-steward
"
done

cat > "$out/steward.yaml" <<YAML
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: steward
spec:
  version: $tag
  homepage: $repository
  shortDescription: Node rotation, graceful drain, monitoring and CI workers
  description: |
    steward is a Kubernetes operations toolkit in one binary: rotate the nodes of
    a Karpenter NodePool (drain), graceful drain for VPA evictions, install and
    keep a monitoring stack and onboard nodes into it (monitor), and scale CI
    workers over gRPC (ottoscaler). Run \`kubectl steward --help\`.
  platforms:
$platforms
YAML
# Trailing blank line of the heredoc aside, the manifest ends with the last platform.
sed -i -e '${/^$/d}' "$out/steward.yaml"

artifacts+=(steward.yaml)
(cd "$out" && for f in "${artifacts[@]}"; do sha256sum "$f" > "$f.sha256"; done &&
  sha256sum "${artifacts[@]}" > SHA256SUMS)
echo "release: ${artifacts[*]} with .sha256 files and SHA256SUMS" >&2
echo "$out"
