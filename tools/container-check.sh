#!/bin/sh
# Builds deploy/Containerfile with podman from Debian 12 packages only and
# runs the image the way docs/container.md says (make container-check):
#
#   1. a Debian 12 base image: debootstrap --variant=minbase from the mirror
#      this host's apt uses, imported into podman (cached for 7 days as
#      localhost/sandcell-base:debian12; registries are not needed);
#   2. `podman build` of the working tree (.containerignore);
#   3. tests/container (pytest): the image without the runtime's extra
#      rights refuses to serve; with them, its selftest passes, /readyz says
#      ready and a run over HTTP reports full isolation.
#
# Environment: SANDCELL_CONTAINER_IMAGE (default localhost/sandcell:check).
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=localhost/sandcell-base:debian12
IMAGE=${SANDCELL_CONTAINER_IMAGE:-localhost/sandcell:check}
say() { echo "container-check: $*"; }
die() { echo "container-check: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (podman rootful, debootstrap)"
command -v podman >/dev/null 2>&1 || die "podman not found (sh tools/install-deps.sh installs it)"
# crun (podman's default runtime) refuses a hybrid cgroup host; runc runs there.
RUNTIME=""
if [ -d /sys/fs/cgroup/unified ] && command -v runc >/dev/null 2>&1; then RUNTIME="--runtime runc"; fi
# podman asks for more open files and processes than a shell here may have.
# At most this shell's hard limits (what podman may set), and no more than
# a build and a server need.
hard() { awk -v k="$1" -v cap="$2" '$0 ~ "^" k { v = $(NF - 1); print (v == "unlimited" || v + 0 > cap ? cap : v) }' /proc/self/limits; }
nofile=$(hard 'Max open files' 16384)
nproc=$(hard 'Max processes' 4096)
ULIMITS="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"

# ---- 1. base image ----------------------------------------------------------
fresh=$(podman image inspect --format '{{.Created.Unix}}' "$BASE" 2>/dev/null || echo 0)
if [ $(( $(date +%s) - fresh )) -gt $((7 * 86400)) ]; then
	mirror=$(apt-get update --print-uris 2>/dev/null |
		sed -n "s|^'\(.*\)/dists/bookworm/InRelease'.*|\1/|p" | head -n 1)
	[ -n "$mirror" ] || die "no Debian bookworm mirror in this host's apt sources"
	say "debootstrap bookworm (minbase) from $mirror"
	tar=$(mktemp /var/tmp/sandcell-base.XXXXXX)
	# shellcheck disable=SC2016 # the inner shell expands them
	unshare --mount --propagation private /bin/sh -eu -c '
		b=$(mktemp -d)
		mount -t tmpfs -o mode=755 tmpfs "$b"
		debootstrap --variant=minbase bookworm "$b" "$2" >/dev/null
		rm -f "$b"/var/cache/apt/archives/*.deb
		tar -C "$b" --numeric-owner -cf "$1" .
		' sh "$tar" "$mirror"
	podman import --change 'CMD ["/bin/bash"]' "$tar" "$BASE" >/dev/null
	rm -f "$tar"
fi

# ---- 2. the image -----------------------------------------------------------
say "podman build $IMAGE"
# shellcheck disable=SC2086 # option lists
podman build $RUNTIME $ULIMITS --build-arg BASE="$BASE" -f "$REPO/deploy/Containerfile" \
	-t "$IMAGE" "$REPO" >"${TMPDIR:-/tmp}/sandcell-container-build.log" 2>&1 ||
	{ tail -n 30 "${TMPDIR:-/tmp}/sandcell-container-build.log" >&2; die "podman build failed"; }

# ---- 3. run it --------------------------------------------------------------
SANDCELL_CONTAINER_IMAGE=$IMAGE SANDCELL_PODMAN_OPTS="$RUNTIME $ULIMITS" \
	/usr/bin/python3 -m pytest -q -p no:cacheprovider "$REPO/tests/container"
