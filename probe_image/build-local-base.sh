#!/usr/bin/env bash
# Build a local base image (Debian bookworm + python3, no registry needed) with debootstrap and `docker import`.
# Used by CI and by the integration tests, where no container registry can be reached.
# Usage: probe_image/build-local-base.sh [TAG]   (default mldoctor-base:bookworm; reused when the daemon has it)
set -euo pipefail
tag=${1:-mldoctor-base:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install -y debootstrap" >&2; exit 1; }
mirror=$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -v security | head -n1 | awk '{print $2}' || true)
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$(mktemp -d /tmp/mldoctor-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3 bookworm "$rootfs" "$mirror" >/dev/null
tar -C "$rootfs" -c . | docker import - "$tag" >/dev/null
echo "built base image $tag"
