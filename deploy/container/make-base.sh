#!/usr/bin/env bash
# Makes the local debian:12 base image the Containerfile starts from, for machines that reach
# Debian's package mirror but no container registry: debootstrap a minimal bookworm and import
# it into podman as docker.io/library/debian:12 (what `FROM debian:12` resolves to).
# Needs root, podman and debootstrap (scripts/setup.sh --containers). Takes a minute or two.
set -euo pipefail
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if podman image exists docker.io/library/debian:12; then
  echo "make-base: docker.io/library/debian:12 is already there" >&2
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
  { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
tar -C "$tmp/rootfs" -c . | podman import - docker.io/library/debian:12 >/dev/null
echo "make-base: imported docker.io/library/debian:12" >&2
