#!/usr/bin/env bash
# A Debian base image for deploy/Containerfile built from Debian's own packages, for machines that
# reach Debian's archive and PyPI but no image registry (the project's build machines): debootstrap
# bookworm (Python 3.11) into a folder, then buildah makes an image of it.
#
#   deploy/base-image.sh                      # -> localhost/selflearn-base:bookworm
#   buildah --storage-driver vfs bud --isolation chroot \
#       --build-arg BASE=localhost/selflearn-base:bookworm -f deploy/Containerfile -t selflearn .
#
# Needs root, debootstrap and buildah (apt-get install debootstrap buildah). The Containerfile's
# default base stays the official python:3.11-slim.
set -euo pipefail
IMAGE=${1:-localhost/selflearn-base:bookworm}
MIRROR=${SELFLEARN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
STORAGE=(--storage-driver "${SELFLEARN_BUILDAH_STORAGE:-vfs}")
[ "$(id -u)" = 0 ] || { echo "base-image: needs root" >&2; exit 2; }
work=$(mktemp -d /tmp/selflearn-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "base-image: debootstrap bookworm (python3, venv, certificates, libgomp1)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libgomp1 \
  bookworm "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
# this machine's certificate bundle (it may hold a proxy's), for pip too (it reads certifi's own)
cp /etc/ssl/certs/ca-certificates.crt "$work/root/etc/ssl/certs/ca-certificates.crt"
tar -C "$work/root" -cf "$work/root.tar" .
ctr=$(buildah "${STORAGE[@]}" from scratch)
buildah "${STORAGE[@]}" add "$ctr" "$work/root.tar" /
buildah "${STORAGE[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$ctr"
buildah "${STORAGE[@]}" commit -q "$ctr" "$IMAGE" >/dev/null
buildah "${STORAGE[@]}" rm "$ctr" >/dev/null
echo "base-image: $IMAGE"
