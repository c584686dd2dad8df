#!/usr/bin/env bash
# For a machine that cannot reach docker.io or gcr.io (only Debian's mirror and crates.io): makes
# local stand-ins for the Dockerfile's two base images, so the Dockerfile itself can still be built
# and run (tests/container/run.sh uses them when LOCAL_BASES=1).
#   localhost/circle-runtime-base:local  Debian 12 minbase with a "nonroot" user (uid 65532), as in
#                                        distroless's :nonroot image
#   localhost/circle-builder-base:local  the same plus gcc and this machine's Rust toolchain (rustup's
#                                        "stable"), at the paths of the official rust image
set -euo pipefail
command -v debootstrap >/dev/null || { apt-get update; apt-get install -y debootstrap; }
TOOLCHAIN=${TOOLCHAIN:-$HOME/.rustup/toolchains/stable-x86_64-unknown-linux-gnu}
[ -x "$TOOLCHAIN/bin/cargo" ] || { echo "local-bases: no Rust toolchain at $TOOLCHAIN" >&2; exit 1; }

ROOTFS=$(mktemp -d /tmp/circle-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm "$ROOTFS" http://deb.debian.org/debian
echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >>"$ROOTFS/etc/passwd"
echo 'nonroot:x:65532:' >>"$ROOTFS/etc/group"
tar -C "$ROOTFS" -c . | podman import - localhost/circle-runtime-base:local

mkdir -p "$ROOTFS/usr/local/rustup/toolchains" "$ROOTFS/usr/local/cargo"
# The builder fetches crates from crates.io: it trusts what this machine trusts (which may include
# the CA of a proxy in front of the registry).
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
cp -a "$TOOLCHAIN" "$ROOTFS/usr/local/rustup/toolchains/stable"
tar -C "$ROOTFS" -c . | podman import \
  --change 'ENV PATH=/usr/local/rustup/toolchains/stable/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV CARGO_HOME=/usr/local/cargo' \
  - localhost/circle-builder-base:local
