#!/bin/sh
# The black-box tiers (integration, attack) against a warm server.
#
#   sh tests/warm/run-warm.sh [PYTEST ARGS...]     (make warm-check)
#
# Starts `sandcell serve --socket $tmp/sock --slots 4`, waits until it
# answers a run, runs pytest with SANDCELL_SERVER set (tests/harness.py
# then adds `--server $SANDCELL_SERVER` right after `run`), stops the
# server and prints one closing line.  The tests
# that cannot apply to warm mode skip themselves when SANDCELL_SERVER is
# set; tests that call the binary directly (usage errors, selftest, ...)
# stay cold.  Exit status: pytest's, or 1 if the server died during the
# suite or left run cgroups or processes behind.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${SANDCELL_BIN:-$ROOT/build/sandcell}
PYTEST=${PYTEST:-/usr/bin/python3 -m pytest}
SLOTS=${WARM_SLOTS:-4}
if [ $# -eq 0 ]; then
	set -- tests/integration tests/attack
fi

tmp=$(mktemp -d /tmp/sandcell-warm-check.XXXXXX)
sock=$tmp/sock
log=$tmp/server.log
srv=

# Run cgroups on the host, all or only those whose supervisor is gone (left
# behind): tests/harness.py is the one place that knows their names.
run_cgroups() {
	/usr/bin/python3 "$ROOT/tests/harness.py" "$1"
}

stop_server() {
	if [ -n "$srv" ] && kill -0 "$srv" 2>/dev/null; then
		kill -TERM "$srv" 2>/dev/null
		i=0
		while kill -0 "$srv" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$srv" 2>/dev/null
	fi
	[ -n "$srv" ] && wait "$srv" 2>/dev/null
	srv=
}
trap 'stop_server; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

cg_before=$(run_cgroups run-cgroups)
# ls is fine for these names: sandcell makes them, without odd bytes.
# shellcheck disable=SC2012
tpl_before=$(ls -d /tmp/sandcell-template-* 2>/dev/null | sort)

"$BIN" serve --socket "$sock" --slots "$SLOTS" >"$log" 2>&1 &
srv=$!

# Ready = the socket exists and a trivial run comes back ok.
i=0
until [ -S "$sock" ] && "$BIN" run --server "$sock" -c 'pass' </dev/null >/dev/null 2>&1; do
	if ! kill -0 "$srv" 2>/dev/null || [ $i -ge 600 ]; then
		echo "warm-check: the server did not come up:" >&2
		cat "$log" >&2
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "warm-check: server pid $srv on $sock (slots $SLOTS)"

cd "$ROOT" || exit 1
SANDCELL_SERVER=$sock SANDCELL_BIN=$BIN $PYTEST -q -p no:cacheprovider "$@" 2>&1 | tee "$tmp/pytest.log"
# POSIX sh has no PIPESTATUS: take pytest's verdict from its summary line.
summary=$(grep -E "^=* ?[0-9]+ (passed|failed|error|skipped|deselected)|^=* ?no tests ran" "$tmp/pytest.log" | tail -n 1)
case "$summary" in
*failed* | *error* | "") rc=1 ;;
*) rc=0 ;;
esac

status=0
if ! kill -0 "$srv" 2>/dev/null; then
	echo "warm-check: the server died during the suite" >&2
	status=1
fi
stop_server
sleep 0.2
# A new run cgroup whose supervisor is gone was left behind; one with a
# live supervisor is another suite's run.
orphans=$(run_cgroups orphan-cgroups)
if [ -n "$cg_before" ] && [ -n "$orphans" ]; then
	orphans=$(printf '%s\n' "$orphans" | grep -vxF "$(printf '%s\n' "$cg_before")" || true)
fi
if [ -n "$orphans" ]; then
	echo "warm-check: run cgroups left behind:" >&2
	printf '%s\n' "$orphans" >&2
	status=1
fi
# shellcheck disable=SC2012 # as for tpl_before
tpl_after=$(ls -d /tmp/sandcell-template-* 2>/dev/null | sort)
if [ "$tpl_after" != "$tpl_before" ]; then
	# shellcheck disable=SC2046 # one word per directory
	echo "warm-check: note: template home directories left in /tmp:" \
		$(printf '%s\n' "$tpl_after" | grep -vxF "$(printf '%s\n' "$tpl_before")") >&2
fi
# A server built with the sanitizers (make asan-check) logs their reports:
# one from a process no test watches (a spare's supervisor) fails the tier.
reports=$(/usr/bin/python3 "$ROOT/tests/harness.py" sanitizer-reports "$log")
if [ -n "$reports" ]; then
	echo "warm-check: sanitizer reports in the server's log (its last 200 lines):" >&2
	tail -n 200 "$log" >&2
	status=1
fi
if grep -q . "$log"; then
	echo "warm-check: server log ($(wc -l <"$log") lines, last 5):"
	tail -n 5 "$log"
fi
[ $rc -ne 0 ] && status=$rc
echo "warm-check (SANDCELL_SERVER, slots $SLOTS): ${summary:-pytest printed no summary}"
exit $status
