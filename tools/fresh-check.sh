#!/bin/sh
# The README's first command on a fresh Debian 12, as CI's tier
# (make fresh-check, part of make check):
#
#   1. a throwaway Debian 12 root with only build-essential and git
#      (debootstrap --variant=minbase, from the Debian mirror this host's apt
#      uses), cached as a tarball;
#   2. a clean `git clone` of this repository's HEAD in it (/root/sandcell),
#      so what is not committed is not there either;
#   3. entered as root in a mount namespace of its own (pivot_root, not
#      chroot: a chrooted process cannot create user namespaces) with /proc,
#      /sys (cgroup hierarchies included) and /dev from the host and /tmp on
#      a tmpfs;
#   4. there, tools/fresh-check-inside.sh: `make` as an unprivileged user
#      must stop with the list of missing packages, `make demo` as root must
#      install them, build and run the demo in one go, then a subset of the
#      tests runs with pytest's directories on the tmpfs /tmp and on disk.
#
# Environment:
#   SANDCELL_FRESH_CACHE   cache directory (default /var/cache/sandcell-fresh):
#                          base-<key>.tar, the root as debootstrap left it,
#                          rebuilt after SANDCELL_FRESH_MAX_AGE days (7) or
#                          when the key (suite, architecture, packages,
#                          mirror) changes; debs/, the packages the last run
#                          downloaded (apt checks them against the fresh
#                          index; only the download is saved, never the
#                          installation).
#   SANDCELL_FRESH_WORK    where the root is unpacked (default /var/tmp; on
#                          disk, not a tmpfs: the on-disk case is tested there)
#   SANDCELL_FRESH_REV     commit to clone (default HEAD), e.g. main to see
#                          the tier fail on an older Makefile
#   SANDCELL_FRESH_MIRROR  Debian mirror (default: the one this host's apt
#                          has for bookworm)
#   SANDCELL_FRESH_KEEP=1  keep the unpacked root (path printed at the end)
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SANDCELL_FRESH_CACHE:-/var/cache/sandcell-fresh}
WORKBASE=${SANDCELL_FRESH_WORK:-/var/tmp}
REV=${SANDCELL_FRESH_REV:-HEAD}
MAX_AGE=${SANDCELL_FRESH_MAX_AGE:-7}
SUITE=bookworm
INCLUDE="build-essential,git"
# What the in-root steps may take at most, installation and build included.
LIMIT=${SANDCELL_FRESH_TIMEOUT:-1800}

say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: $*" >&2; exit 1; }
now() { date +%s; }
# Hard links where the cache and the root share a filesystem, copies elsewhere.
link_debs() {
	for f in "$1"/*.deb; do
		[ -e "$f" ] || continue
		ln -f "$f" "$2/" 2>/dev/null || cp "$f" "$2/"
	done
}
t0=$(now)

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, namespaces, pivot_root)"
for tool in debootstrap unshare pivot_root git tar flock timeout; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (sh tools/install-deps.sh installs it)"
done
sha=$(git -C "$REPO" rev-parse --verify "$REV^{commit}") || die "no commit $REV in $REPO"
arch=$(dpkg --print-architecture)
mirror=${SANDCELL_FRESH_MIRROR:-$(apt-get update --print-uris 2>/dev/null |
	sed -n "s|^'\(.*\)/dists/$SUITE/InRelease'.*|\1/|p" | head -n 1)}
[ -n "$mirror" ] || die "no Debian $SUITE mirror in this host's apt sources (set SANDCELL_FRESH_MIRROR)"

mkdir -p "$CACHE/debs"
# One run at a time on a machine: runs share the cache, and two of them
# would only halve each other's speed on the same cores.
exec 9>"$CACHE/lock"
if ! flock -n 9; then
	say "waiting for another fresh-check to finish"
	flock 9
fi

# ---- 1. the base root, cached -----------------------------------------------
key=$(printf '%s\n' "v1" "$SUITE" "$arch" minbase "$INCLUDE" "$mirror" | sha256sum | cut -c1-16)
base=$CACHE/base-$key.tar
if [ -s "$base" ] && [ -z "$(find "$base" -mtime "+$MAX_AGE")" ]; then
	say "base root from the cache: $base"
else
	say "debootstrap $SUITE ($arch, minbase + $INCLUDE) from $mirror"
	tb=$(now)
	build=$CACHE/base.build
	rm -rf --one-file-system "$build"
	if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$build" "$mirror" \
		>"$CACHE/debootstrap.log" 2>&1; then
		tail -n 30 "$CACHE/debootstrap.log" >&2
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	fi
	# A machine as the installer leaves it: no downloaded packages lying
	# around (the run's own downloads are cached in debs/).
	rm -f "$build"/var/cache/apt/archives/*.deb
	tar -C "$build" --numeric-owner -cf "$base.tmp" .
	mv "$base.tmp" "$base"
	rm -rf --one-file-system "$build"
	find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
	say "base root built in $(($(now) - tb)) s, cached as $base"
fi

# ---- 2. unpack, clone -----------------------------------------------------------
avail=$(df -Pk "$WORKBASE" | awk 'NR == 2 { print $4 }')
[ "$avail" -gt 4000000 ] || die "less than 4 GB free in $WORKBASE"
work=$(mktemp -d "$WORKBASE/sandcell-fresh.XXXXXX")
root=$work/root
keep=${SANDCELL_FRESH_KEEP:-0}
cleanup() {
	rc=$?
	# The mounts live in the namespace that died with the run; if one
	# still showed here, deleting the tree could reach the host's /dev,
	# /sys or /proc: leave it.
	if grep -qF " $work/" /proc/self/mountinfo; then
		echo "fresh-check: mounts left below $work, not removing it" >&2
	elif [ "$keep" = 1 ]; then
		say "root kept in $root"
	else
		rm -rf --one-file-system "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$root"
tar -C "$root" --numeric-owner -xf "$base"
# apt takes a package it already has only if it matches the fresh index.
link_debs "$CACHE/debs" "$root/var/cache/apt/archives"
# A local clone copies the whole object store, so $sha is there even on
# no branch; only committed files are.
git clone -q --no-hardlinks --no-checkout "$REPO" "$root/root/sandcell"
git -C "$root/root/sandcell" -c advice.detachedHead=false checkout -q --detach "$sha"
cp "$REPO/tools/fresh-check-inside.sh" "$root/fresh-check-inside.sh"
cat /etc/resolv.conf >"$root/etc/resolv.conf"
say "clone of $(git -C "$REPO" log -1 --format='%h %s' "$sha") in $root/root/sandcell"

# ---- 3./4. enter it and run the README's first command --------------------------
ti=$(now)
rc=0
# No pid namespace: the cgroup hierarchies are the host's, and sandcell
# names a run's cgroup after its supervisor's pid, which must mean the same
# process here and on the host.
# shellcheck disable=SC2016 # the inner shell expands them
timeout -k 30 "$LIMIT" unshare --mount --propagation private \
	/bin/sh -eu -c '
	r=$1
	readlink /proc/self/ns/mnt >"$2"
	mount --bind "$r" "$r"
	mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount --rbind /dev "$r/dev"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$r/dev/shm"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$r/tmp"
	mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$r/run"
	cd "$r"
	mkdir -p .old-root
	pivot_root . .old-root
	exec /usr/sbin/chroot . /bin/sh -c "umount -l /.old-root && rmdir /.old-root && exec \"\$@\"" sh \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		${http_proxy+http_proxy="$http_proxy"} ${https_proxy+https_proxy="$https_proxy"} \
		${no_proxy+no_proxy="$no_proxy"} \
		/bin/sh /fresh-check-inside.sh
	' sh "$root" "$work/mntns" 9>&- || rc=$?
say "in the root: $(($(now) - ti)) s, exit status $rc"
[ "$rc" -eq 124 ] && echo "fresh-check: timed out after $LIMIT s" >&2

# Nothing started in the root may outlive the run (no pid namespace ends
# them for us): whatever is still in its mount namespace was left behind.
if [ -s "$work/mntns" ]; then
	ns=$(cat "$work/mntns")
	left=
	for d in /proc/[0-9]*; do
		[ "$(readlink "$d/ns/mnt" 2>/dev/null)" = "$ns" ] && left="$left ${d#/proc/}"
	done
	if [ -n "$left" ]; then
		echo "fresh-check: processes left running in the root (killed):" >&2
		# shellcheck disable=SC2086 # a list of pids
		ps -o pid=,args= -p "$(echo $left | tr ' ' ,)" >&2 || true
		# shellcheck disable=SC2086
		kill -KILL $left 2>/dev/null || true
		[ "$rc" -ne 0 ] || rc=1
	fi
fi

# This run's downloads for the next one; after a passing run, only them.
link_debs "$root/var/cache/apt/archives" "$CACHE/debs"
if [ "$rc" -eq 0 ]; then
	for f in "$CACHE"/debs/*.deb; do
		[ -e "$root/var/cache/apt/archives/${f##*/}" ] || rm -f "$f"
	done
fi
say "total $(($(now) - t0)) s"
[ "$rc" -eq 0 ] || die "FAILED: the README's first command on a fresh Debian $SUITE (see above)"
say "passed: make demo and the subset on a fresh Debian $SUITE (/tmp on tmpfs and on disk)"
