#!/bin/sh
# Runs inside the throwaway Debian 12 root of tools/fresh-check.sh, as root,
# with a clean clone of the tree in /root/sandcell and /tmp on a tmpfs.
# Every step must pass the first time: nothing is retried.  A failed step
# that later ones do not depend on is reported and the rest still run;
# the exit status is 1 if any failed.
set -eu
SRC=/root/sandcell
# On disk, bound from the host: tools/fresh-check.sh keeps them.
LOGS=/var/tmp/fresh-check-logs
mkdir -p "$LOGS"
failed=
say() { echo "fresh-check: $*"; }
die() { echo "fresh-check: FAILED: $*" >&2; exit 1; }
fail() { echo "fresh-check: FAILED: $*" >&2; failed="$failed
  $*"; }
now() { date +%s; }
# The tail of a failed step's log, its compiler errors first.
show() {
	grep -m 5 -E 'fatal error|error:|\*\*\*' "$1" >&2 || true
	echo "---- last lines of $1:" >&2
	tail -n 25 "$1" >&2
}

# ---- the state this must start from ----------------------------------------
[ "$(stat -f -c %T /tmp)" = tmpfs ] || die "/tmp is not a tmpfs"
[ "$(stat -f -c %T /var/tmp)" != tmpfs ] || die "/var/tmp is a tmpfs, the on-disk case would not be tested"
for p in python3 python3-dev libjansson-dev libseccomp-dev; do
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ]; then
		die "$p is already installed: not a fresh machine"
	fi
done
say "fresh root: $(dpkg-query -W -f='.\n' | wc -l) packages, no python3, /tmp on a tmpfs"

# ---- plain make, unprivileged: a clear message, no compiler ---------------------
t=$(now)
user_tree=/var/tmp/sandcell-as-nobody
git -c advice.detachedHead=false clone -q "$SRC" "$user_tree"
chown -R nobody:nogroup "$user_tree"
rc=0
(cd "$user_tree" && setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/nonexistent make) \
	>"$LOGS"/make-as-nobody.log 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
	fail "make as nobody without the packages succeeded"
elif grep -qE 'error:|\.h: No such file' "$LOGS"/make-as-nobody.log || [ -e "$user_tree/build" ]; then
	show "$LOGS"/make-as-nobody.log
	fail "make as nobody started compiling without the packages"
elif ! grep -q "sandcell: missing Debian packages:.* python3-dev" "$LOGS"/make-as-nobody.log; then
	show "$LOGS"/make-as-nobody.log
	fail "make as nobody did not name the missing packages"
else
	say "make as nobody: stops before compiling and names the packages ($(($(now) - t)) s)"
fi
rm -rf "$user_tree"

# ---- the README's first command ---------------------------------------------
cd "$SRC"
# A run's report says ok with every layer held, and the demo's CSV and PNG
# were collected.
check_demo() { # REPORT OUTPUT-DIR
	/usr/bin/python3 - "$1" "$2" <<'EOF'
import glob, json, sys
report = json.load(open(sys.argv[1]))
files = glob.glob(sys.argv[2] + "/**", recursive=True)
csv = [f for f in files if f.endswith(".csv")]
png = [f for f in files if f.endswith(".png")]
iso = report.get("isolation") or {}
if report.get("status") != "ok" or iso.get("mode") != "full" or iso.get("not_held") or not csv or not png:
    sys.exit("status %r, isolation %r, files %r" % (report.get("status"), iso, files))
for f in png:
    if open(f, "rb").read(8) != b"\x89PNG\r\n\x1a\n":
        sys.exit("%s is not a PNG" % f)
EOF
}
# The notebook demo: three cells with every layer held, the first two ok,
# the third ending in its deliberate NameError; a notebook that nbformat
# validates, holding a figure and a table; the dataset cell 2 published.
check_notebook() { # DIR
	/usr/bin/python3 - "$1" <<'EOF'
import json, sys, nbformat
d = sys.argv[1]
s = json.load(open(d + "/summary.json"))
cells = s["cells"]
if [c["status"] for c in cells] != ["ok", "ok", "exited"] or \
        any(c["isolation"] != "full" or c["not_held"] for c in cells):
    sys.exit("cells: %r" % cells)
nb = nbformat.read(d + "/notebook.ipynb", as_version=4)
nbformat.validate(nb)
mimes = {m for c in nb.cells for o in c.outputs for m in o.get("data", {})}
if not {"image/png", "text/html"} <= mimes:
    sys.exit("outputs lack a figure or a table: %r" % mimes)
if "by_region" not in cells[1]["datasets"] or not open(d + "/by_region.csv").read().startswith("region,"):
    sys.exit("no published by_region dataset")
EOF
}
t=$(now)
say "make demo (installs the packages, builds, runs the demo)"
make demo >"$LOGS"/make-demo.log 2>&1 || { show "$LOGS"/make-demo.log; die "make demo"; }
check_notebook build/demo || { show "$LOGS"/make-demo.log; die "make demo's results"; }
say "make demo: ok, three cells with full isolation, a valid notebook with a figure and a table, the published dataset ($(($(now) - t)) s)"

# ---- chosen tiers instead (SANDCELL_FRESH_TARGETS), after all packages --------
if [ -n "${SANDCELL_FRESH_TARGETS:-}" ]; then
	t=$(now)
	say "make deps, then make $SANDCELL_FRESH_TARGETS (log: $LOGS/make-targets.log)"
	rc=0
	# shellcheck disable=SC2086 # a list of make targets
	{ make deps && env -u SANDCELL_FRESH_TARGETS make $SANDCELL_FRESH_TARGETS; } >"$LOGS"/make-targets.log 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || { show "$LOGS"/make-targets.log; die "make $SANDCELL_FRESH_TARGETS (exit status $rc)"; }
	say "make $SANDCELL_FRESH_TARGETS: passed ($(($(now) - t)) s)"
	exit 0
fi

# ---- the README's second command, when asked for: nothing else to do ------
if [ "${SANDCELL_FRESH_FULL:-0}" = 1 ]; then
	t=$(now)
	say "make check (the README's second command; log: $LOGS/make-check.log)"
	rc=0
	# The tier's own fresh-check (a root inside this one) runs the subset,
	# not this whole check again.
	env -u SANDCELL_FRESH_FULL make check >"$LOGS"/make-check.log 2>&1 || rc=$?
	grep -E '^(fresh-check:|[0-9]+ passed|=+ .*(passed|failed|error))|FAILED|Error [0-9]' "$LOGS"/make-check.log || true
	[ "$rc" -eq 0 ] || { show "$LOGS"/make-check.log; die "make check (exit status $rc)"; }
	say "make check: passed ($(($(now) - t)) s)"
	apt-get autoclean -q >"$LOGS/autoclean.log" 2>&1 || true
	exit 0
fi

# ---- the same analysis through the warm server (build/sandcell-warm embeds
# the python3-dev that was missing at the start) ------------------------------
t=$(now)
wdir=$(mktemp -d /tmp/sandcell-fresh-warm.XXXXXX)
build/sandcell serve --socket "$wdir/sock" >"$wdir/server.log" 2>&1 &
srv=$!
i=0
until [ -S "$wdir/sock" ] && build/sandcell run --server "$wdir/sock" -c pass </dev/null >/dev/null 2>&1; do
	if ! kill -0 "$srv" 2>/dev/null || [ $i -ge 600 ]; then
		cat "$wdir/server.log" >&2
		die "the warm server did not come up"
	fi
	sleep 0.1
	i=$((i + 1))
done
rc=0
build/sandcell run --server "$wdir/sock" --input sales=examples/data/sales.csv --value top=3 \
	--output "$wdir/out" --report "$wdir/report.json" --wall-time 60 --memory 1G \
	examples/analyze.py >"$wdir/run.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || ! check_demo "$wdir/report.json" "$wdir/out"; then
	tail -n 20 "$wdir/run.log" "$wdir/server.log" >&2
	fail "the demo's analysis through the warm server (exit status $rc)"
else
	say "warm server: the demo's analysis ok, full isolation ($(($(now) - t)) s)"
fi
kill -TERM "$srv"
wait "$srv" || true
rm -rf "$wdir"

# ---- a subset of the tests, pytest's directories on the tmpfs /tmp ----------------
# `make demo` installed what the demo needs; the tests need pytest too.
apt-get install -y -q python3-pytest >"$LOGS/pytest-install.log" 2>&1 ||
	{ show "$LOGS/pytest-install.log"; die "apt-get install python3-pytest"; }
export SANDCELL_BIN="$SRC/build/sandcell"
PYTEST="/usr/bin/python3 -m pytest -q -p no:cacheprovider"
SUBSET="tests/integration/test_selftest.py tests/attack/test_proc_leaks.py tests/attack/test_filesystem.py"
t=$(now)
say "tests with /tmp on a tmpfs: $SUBSET"
# shellcheck disable=SC2086
$PYTEST $SUBSET || fail "tests with /tmp on a tmpfs"
say "tmpfs /tmp: $(($(now) - t)) s"

# ---- the same on disk ----------------------------------------------------------
t=$(now)
mkdir -p /var/tmp/sandcell-fresh-tmp
say "tests with TMPDIR and pytest's basetemp on disk (/var/tmp)"
# shellcheck disable=SC2086
TMPDIR=/var/tmp/sandcell-fresh-tmp $PYTEST --basetemp=/var/tmp/sandcell-fresh-tmp/pytest \
	tests/attack/test_proc_leaks.py tests/attack/test_filesystem.py || fail "tests with TMPDIR on disk"
rm -rf /var/tmp/sandcell-fresh-tmp
say "on-disk /var/tmp: $(($(now) - t)) s"
# The packages this run did not use leave the download cache.
apt-get autoclean -q >"$LOGS/autoclean.log" 2>&1 || fail "apt-get autoclean"
[ -z "$failed" ] || die "$failed"
