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
#      /sys (cgroup hierarchies included), /dev and /run/sandcell from the
#      host, /tmp, /dev/shm and /run on tmpfs, /var/tmp a directory on disk
#      (the root itself is unpacked on a tmpfs, see below);
#   4. there, tools/fresh-check-inside.sh: `make` as an unprivileged user
#      must stop with the list of missing packages, `make demo` as root must
#      install them, build and run the demo in one go (full isolation), the
#      warm server built there must run the same analysis, then a subset of
#      the tests runs with pytest's directories on the tmpfs /tmp and on disk;
#   5. nothing started in the root may still run afterwards.
#
# Environment:
#   SANDCELL_FRESH_CACHE   cache directory (default /var/cache/sandcell-fresh):
#                          base-<key>.tar, the root as debootstrap left it,
#                          rebuilt after SANDCELL_FRESH_MAX_AGE days (7) or
#                          when the key (suite, architecture, packages,
#                          mirror) changes; debs/, the root's apt archive
#                          directory (apt takes a package from it only if it
#                          matches the fresh index, and autoclean drops the
#                          superseded ones: downloads are reused, never an
#                          installation); logs/, the last run's step logs.
#   SANDCELL_FRESH_WORK    where the root's /var/tmp lives (default /var/tmp;
#                          must be on disk: the on-disk case is tested there)
#   SANDCELL_FRESH_REV     commit to clone (default HEAD), e.g. main to see
#                          the tier fail on an older Makefile
#   SANDCELL_FRESH_MIRROR  Debian mirror (default: the one this host's apt
#                          has for bookworm)
#   SANDCELL_FRESH_TARGETS after `make demo`, `make deps` and these make
#                          targets instead of the subset (e.g. "lint")
#   SANDCELL_FRESH_FULL    1: after `make demo`, the README's second command,
#                          the whole `make check`, runs in the root instead
#                          of the subset (an hour or more on two cores; its
#                          own fresh-check tier then debootstraps a root
#                          inside this one); `make fresh-check-full`
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SANDCELL_FRESH_CACHE:-/var/cache/sandcell-fresh}
WORKBASE=${SANDCELL_FRESH_WORK:-/var/tmp}
REV=${SANDCELL_FRESH_REV:-HEAD}
MAX_AGE=${SANDCELL_FRESH_MAX_AGE:-7}
SUITE=bookworm
INCLUDE="build-essential,git"
# What the in-root steps may take at most, installation and build included.
FULL=${SANDCELL_FRESH_FULL:-0}
if [ "$FULL" = 1 ]; then LIMIT=${SANDCELL_FRESH_TIMEOUT:-7200}; else LIMIT=${SANDCELL_FRESH_TIMEOUT:-1800}; fi

say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: $*" >&2; exit 1; }
now() { date +%s; }
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
# Trees are built and unpacked on tmpfs, inside a mount namespace that takes
# them along when it ends: deleting a 2 GB root on a disk mounted with
# discard took over two minutes here.
key=$(printf '%s\n' "v1" "$SUITE" "$arch" minbase "$INCLUDE" "$mirror" | sha256sum | cut -c1-16)
base=$CACHE/base-$key.tar
if [ -s "$base" ] && [ -z "$(find "$base" -mtime "+$MAX_AGE")" ]; then
	say "base root from the cache: $base"
else
	say "debootstrap $SUITE ($arch, minbase + $INCLUDE) from $mirror"
	tb=$(now)
	mkdir -p "$CACHE/base.build"
	# shellcheck disable=SC2016 # the inner shell expands them
	if ! unshare --mount --propagation private /bin/sh -eu -c '
		b=$1 base=$2
		mount -t tmpfs -o mode=755 tmpfs "$b"
		debootstrap --variant=minbase --include="$3" "$4" "$b" "$5"
		# As the installer leaves a machine: no downloaded packages lying
		# around (the runs keep theirs in debs/).
		rm -f "$b"/var/cache/apt/archives/*.deb
		tar -C "$b" --numeric-owner -cf "$base.tmp" .
		mv "$base.tmp" "$base"
		' sh "$CACHE/base.build" "$base" "$INCLUDE" "$SUITE" "$mirror" >"$CACHE/debootstrap.log" 2>&1 9>&-; then
		tail -n 30 "$CACHE/debootstrap.log" >&2
		rm -f "$base.tmp"
		die "debootstrap failed (log: $CACHE/debootstrap.log)"
	fi
	rmdir "$CACHE/base.build"
	find "$CACHE" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
	say "base root built in $(($(now) - tb)) s, cached as $base"
fi

# ---- 2.-4. unpack, clone, enter, run ---------------------------------------------
avail=$(df -Pk "$WORKBASE" | awk 'NR == 2 { print $4 }')
[ "$avail" -gt 1000000 ] || die "less than 1 GB free in $WORKBASE"
work=$(mktemp -d "$WORKBASE/sandcell-fresh.XXXXXX")
cleanup() {
	rc=$?
	# The mounts live in the namespace that died with the run; if one
	# still showed here, deleting the tree could reach the host's /dev,
	# /sys or /proc: leave it.
	if grep -qF " $work/" /proc/self/mountinfo; then
		echo "fresh-check: mounts left below $work, not removing it" >&2
	else
		rm -rf --one-file-system "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The root's /var/tmp: a directory on disk, where the tests run again.
mkdir -m 1777 "$work/root" "$work/var-tmp"
# apt downloads into the cache and takes a package from it only if it
# matches the fresh index; only the download is saved, never an installation.
mkdir -p "$CACHE/debs/partial"
rm -rf "$CACHE/logs"
# What every sandcell on this kernel shares is shared with the host, or
# runs here and on the host could collide: no pid namespace (the cgroup
# hierarchies are the host's, and sandcell names a run's cgroup after its
# supervisor's pid), and the host's /run/sandcell (the lock file through
# which live runs claim distinct host uids, src/lib/userns.c).
[ -d /run/sandcell ] || mkdir -m 0700 /run/sandcell
ti=$(now)
rc=0
# shellcheck disable=SC2016 # the inner shell expands them
timeout -k 30 "$LIMIT" unshare --mount --propagation private \
	/bin/sh -eu -c '
	work=$1 base=$2 repo=$3 sha=$4 debs=$5
	r=$work/root
	readlink /proc/self/ns/mnt >"$work/mntns"
	mount -t tmpfs -o mode=755 tmpfs "$r"
	tar -C "$r" --numeric-owner -xf "$base"
	# A local clone copies the whole object store, so $sha is there even
	# on no branch; only committed files are.
	git clone -q --no-hardlinks --no-checkout "$repo" "$r/root/sandcell"
	git -C "$r/root/sandcell" -c advice.detachedHead=false checkout -q --detach "$sha"
	echo "fresh-check: clone of $(git -C "$repo" log -1 --format="%h %s" "$sha")"
	cp "$repo/tools/fresh-check-inside.sh" "$r/fresh-check-inside.sh"
	cat /etc/resolv.conf >"$r/etc/resolv.conf"
	# dpkg without an fsync per file, as in Debian container images: what
	# gets installed is the same, and this root is thrown away anyway.
	echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/fresh-check-unsafe-io"
	mount --bind "$work/var-tmp" "$r/var/tmp"
	mount --bind "$debs" "$r/var/cache/apt/archives"
	mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
	mount --rbind /sys "$r/sys"
	mount --rbind /dev "$r/dev"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$r/dev/shm"
	mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$r/tmp"
	mount -t tmpfs -o nosuid,nodev,mode=755 tmpfs "$r/run"
	mkdir -m 0700 "$r/run/sandcell"
	mount --bind /run/sandcell "$r/run/sandcell"
	cd "$r"
	mkdir .old-root
	pivot_root . .old-root
	exec /usr/sbin/chroot . /bin/sh -c "umount -l /.old-root && rmdir /.old-root && exec \"\$@\"" sh \
		env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		${http_proxy+http_proxy="$http_proxy"} ${https_proxy+https_proxy="$https_proxy"} \
		${no_proxy+no_proxy="$no_proxy"} SANDCELL_FRESH_FULL="$6" SANDCELL_FRESH_TARGETS="$7" \
		/bin/sh /fresh-check-inside.sh
	' sh "$work" "$base" "$REPO" "$sha" "$CACHE/debs" "$FULL" "${SANDCELL_FRESH_TARGETS:-}" 9>&- || rc=$?
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
[ -d "$work/var-tmp/fresh-check-logs" ] && cp -r "$work/var-tmp/fresh-check-logs" "$CACHE/logs"
say "total $(($(now) - t0)) s (logs of the steps in the root: $CACHE/logs)"
[ "$rc" -eq 0 ] || die "FAILED: the README's first command on a fresh Debian $SUITE (see above)"
if [ "$FULL" = 1 ]; then
	say "passed: make demo and make check on a fresh Debian $SUITE"
else
	say "passed: make demo and the subset on a fresh Debian $SUITE (/tmp on tmpfs and on disk)"
fi
