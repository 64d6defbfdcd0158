#!/usr/bin/env bash
# Builds steward's container image without a container engine and prints the path
# of the result last on stdout: an OCI image layout (oci-layout, index.json,
# blobs/sha256/...) as one tar archive. Load it with `ctr images import`, copy it
# with `skopeo copy oci-archive:...`, or unpack it and `crane push` the directory
# (README, "Container image").
#
# The image: the static musl binary at /usr/local/bin/steward (entrypoint), user
# 65532:65532, /etc/passwd and /etc/group naming that user, Mozilla's CA roots at
# /etc/ssl/certs/ca-certificates.crt for outbound TLS, an empty /tmp (1777). No
# shell, no package manager, no libraries. Labels org.opencontainers.image.{source,
# version,revision}.
#
# Tool: crates/image-tool, a small workspace crate on oci-spec (the OCI image-spec
# types), tar, flate2 and sha2. Reproducibility is the hard part of this job and
# none of the ready tools gives it for free: `ocidir` stamps history with the wall
# clock and links OpenSSL; go-containerregistry's `crane append` writes docker
# tarballs (a layout needs a registry round trip) and `umoci` packs a directory
# whose mtimes and owners would have to be faked first; each would add a tool to
# build and pin. image-tool writes every tar header from the entry alone (mtime =
# SOURCE_DATE_EPOCH, uid/gid 0, no names), sorts entries and JSON keys, and gzips
# with no name and mtime 0, so the same commit gives the same manifest digest; it
# is tested by `cargo test` with the rest of the workspace.
#
# Usage: hack/image.sh [--binary PATH]
#   --binary PATH  package this static binary instead of building one
#                  (hack/static-build.sh); a dynamically linked one is refused.
# Env:   STEWARD_IMAGE      repository (default localhost/steward)
#        STEWARD_IMAGE_TAG  tag (default: the crate version)
#        STEWARD_IMAGE_DIR  output directory (default target/image)
#        SOURCE_DATE_EPOCH  creation time and every mtime (default: commit time)
#        IMAGE_TOOL         a built image-tool binary (default: cargo build -p image-tool)
set -euo pipefail
cd "$(dirname "$0")/.."
binary=""
while [ $# -gt 0 ]; do
  case $1 in
    --binary) [ $# -ge 2 ] || { echo "image: --binary needs a path" >&2; exit 2; }; binary=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
source_url=$(sed -n 's/^repository = "\(.*\)"$/\1/p' Cargo.toml | head -1)
revision=$(git rev-parse HEAD)
# A build of uncommitted changes says so in its revision label.
[ -z "$(git status --porcelain --untracked-files=no)" ] || revision="$revision-dirty"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export SOURCE_DATE_EPOCH
name=${STEWARD_IMAGE:-localhost/steward}
tag=${STEWARD_IMAGE_TAG:-$version}
out_dir=${STEWARD_IMAGE_DIR:-$target_dir/image}

[ -n "$binary" ] || binary=$(hack/static-build.sh | tail -1)
tool=${IMAGE_TOOL:-}
if [ -z "$tool" ]; then
  cargo build --locked -q -p image-tool >&2
  tool=$target_dir/debug/image-tool
fi
mkdir -p "$out_dir"
out="$out_dir/steward-$tag-linux-amd64.oci.tar"
"$tool" --binary "$binary" --name "$name" --tag "$tag" --version "$version" \
  --revision "$revision" --source "$source_url" --created "$SOURCE_DATE_EPOCH" \
  --arch amd64 --out "$out" >&2
echo "$out"
