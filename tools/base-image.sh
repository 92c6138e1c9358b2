#!/usr/bin/env bash
# A local base image made from Debian packages alone, for building the project's images where no
# registry can be reached: a Debian bookworm root (debootstrap, variant minbase) with python3,
# python3-venv, python3-pip, ca-certificates and redis-server, imported into podman.
#
#   tools/base-image.sh     make the image unless it exists with this recipe; print its name
#
# The image is ${WSPOOL_BASE_IMAGE:-localhost/wspool-base:bookworm}, labelled with a hash of its
# recipe (this script, the mirror and the host's CA bundle): a changed recipe makes it again,
# an unchanged one does nothing. Progress goes to stderr, the image's name is the only stdout.
# Needs root (debootstrap), debootstrap and podman. The host's CA bundle is added to the image's
# own, and pip is pointed at it, so that pip in a build trusts a TLS-intercepting proxy that the
# host trusts. Packages come from ${DEBIAN_MIRROR:-http://deb.debian.org/debian}.
set -euo pipefail

image=${WSPOOL_BASE_IMAGE:-localhost/wspool-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_bundle=/etc/ssl/certs/ca-certificates.crt
bundle=/etc/ssl/certs/ca-certificates.crt # the same path inside the image
packages=python3,python3-venv,python3-pip,ca-certificates,redis-server
label=io.wspool.base-recipe

say() { echo "base-image: $*" >&2; }

recipe=$( (cat "$0"; echo "$mirror"; cat "$host_bundle" 2>/dev/null || true) | sha256sum | cut -c1-16)

current_recipe() {
  podman image inspect --format "{{ index .Labels \"$label\" }}" "$image" 2>/dev/null || true
}

if [ "$(current_recipe)" = "$recipe" ]; then
  echo "$image"
  exit 0
fi

for tool in debootstrap podman; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    say "needs $tool on PATH (Debian: apt-get install $tool)"
    exit 1
  fi
done
if [ "$(id -u)" != 0 ]; then
  say "debootstrap needs root; run it as root (e.g. sudo $0)"
  exit 1
fi

# Two sessions may ask at once: the second waits, then finds the image made.
exec 9>"${TMPDIR:-/tmp}/wspool-base-image.lock"
flock 9
if [ "$(current_recipe)" = "$recipe" ]; then
  echo "$image"
  exit 0
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/wspool-base.XXXXXX")
cleanup() {
  # debootstrap mounts proc and sys inside the root; a failed run can leave them mounted, and
  # removing the folder must never walk into them.
  grep -o " $root/[^ ]*" /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT

started=$SECONDS
say "debootstrap bookworm (minbase + ${packages//,/ }) from $mirror into $root ..."
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
  | while read -r line; do say "$line"; done
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/apt/*
if [ -r "$host_bundle" ]; then
  cat "$host_bundle" >>"$root$bundle"
fi
say "debootstrap done in $((SECONDS - started))s; importing as $image ..."

previous=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$root" --numeric-owner -c . | podman import \
  --change "LABEL $label=$recipe" \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV PIP_CERT=$bundle" \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap bookworm minbase + $packages" \
  - "$image" >/dev/null
if [ -n "$previous" ]; then
  # The image of the old recipe; kept when images built from it still use it.
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
say "made $image (recipe $recipe) in $((SECONDS - started))s"
echo "$image"
