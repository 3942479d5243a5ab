#!/bin/sh
# Runs the black-box suite as an unprivileged user (needs root to set up).
# The user gets a delegated cgroup for each controller, as a systemd
# Delegate=yes unit would give it, and the suite runs from a copy of the
# tree it can read.
set -eu
BIN=$1
shift
[ $# -gt 0 ] || set -- tests/integration tests/attack tests/proof
USER_NAME=sandcell-test
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "run-as-user: must start as root to create $USER_NAME" >&2
	exit 1
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME"
WORK=$(mktemp -d /tmp/sandcell-user.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/build"
cp "$BIN" "$WORK/build/sandcell"
# The warm server beside it, for the warm tests (`sandcell serve` execs it).
[ -x "$(dirname "$BIN")/sandcell-warm" ] && cp "$(dirname "$BIN")/sandcell-warm" "$WORK/build/"
cp -r "$ROOT/tests" "$WORK/tests"
[ -d "$ROOT/docs" ] && cp -r "$ROOT/docs" "$WORK/docs"
[ -d "$ROOT/examples" ] && cp -r "$ROOT/examples" "$WORK/examples"
# The in-sandbox modules: tests build frame archives with src/py/sandcell_frames.py.
mkdir -p "$WORK/src" && cp -r "$ROOT/src/py" "$WORK/src/py"
chown -R "$USER_NAME" "$WORK"
chmod -R a+rX "$WORK"
# Delegate one cgroup per hierarchy; the runner moves into the v2 one so
# its runs are below it (v2 moves need write access to the common parent).
PARENT=sandcell-test-$$
for h in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/cpuacct; do
	[ -e "$h/cgroup.procs" ] || continue
	mkdir -p "$h/$PARENT"
	chown -R "$USER_NAME" "$h/$PARENT"
done
cleanup() {
	for h in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup/cpuacct; do
		[ -d "$h/$PARENT" ] || continue
		# move ourselves out before removing
		if [ -e "$h/cgroup.procs" ]; then
			echo $$ > "$h/cgroup.procs" 2>/dev/null || true
		fi
		find "$h/$PARENT" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
		rmdir "$h/$PARENT" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
# v2: the runner lives in a leaf beside the runs, so the parent itself
# holds no process and can enable controllers for its children.
for h in /sys/fs/cgroup/unified /sys/fs/cgroup; do
	if [ -d "$h/$PARENT" ] && [ "$(stat -f -c %T "$h")" = cgroup2fs ]; then
		mkdir -p "$h/$PARENT/runner"
		chown -R "$USER_NAME" "$h/$PARENT/runner"
		echo $$ > "$h/$PARENT/runner/cgroup.procs"
	fi
done
cd "$WORK"
setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups --reset-env -- \
	env SANDCELL_BIN="$WORK/build/sandcell" SANDCELL_CGROUP_PARENT="/$PARENT" SANDCELL_VIA="${SANDCELL_VIA:-}" HOME="$WORK" PATH=/usr/bin:/bin \
	python3 -m pytest -q -p no:cacheprovider "$@"
