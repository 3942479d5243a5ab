#!/bin/sh
# Static checks over the whole tree.  Every step runs; the script fails
# (non-zero) when any of them has a finding.
#   analyzer: gcc -fanalyzer with -Werror on the library, the CLI, the warm
#     server, tools/gen-bpf.c and the unit tests (a build in build/analyzer),
#     then on the fuzz harnesses;
#   clang: the same build with clang, warning-free (the fuzz harnesses are
#     clang builds already: make fuzz-replay);
#   cppcheck: all of that C, plain and with SANDCELL_TEST_HOOKS;
#   shell scripts: shellcheck on every one;
#   pyflakes: all Python;
#   mypy: mypy --strict on src/py (the in-sandbox module and the warm
#     server's Python), the host package (python/sandcell) and the test
#     harness (tests/harness.py, tests/conftest.py).
# Builds are incremental: a second run only redoes what changed.
# LINT_JOBS sets the parallelism (default 2).
set -u
cd "$(dirname "$0")/.." || exit 1
jobs=${LINT_JOBS:-2}
failed=
start=$(date +%s)

step() {
	name=$1
	shift
	t0=$(date +%s)
	if "$@"; then
		echo "lint: $name clean ($(($(date +%s) - t0)) s)"
	else
		echo "lint: $name FAILED" >&2
		failed="$failed $name"
	fi
}

unit_bins() {
	for t in tests/unit/test_*.c; do
		b=${t#tests/unit/}
		echo "$1/unit/${b%.c}"
	done
}

# Both compilers build the same targets; compiler output goes to stderr.
build_with() { # BUILD CC [OPT]
	# shellcheck disable=SC2046 # one word per unit-test binary
	make --no-print-directory -j"$jobs" BUILD="$1" CC="$2" ${3:+OPT="$3"} \
		"$1/sandcell" "$1/sandcell-warm" "$1/sandcell-http" $(unit_bins "$1") >/dev/null
}

analyzer() {
	build_with build/analyzer gcc "-O2 -g -fanalyzer" &&
		make --no-print-directory -j"$jobs" -f tests/fuzz/Makefile fuzz-analyze >/dev/null
}

cppcheck_all() {
	for cfg in "" "-DSANDCELL_TEST_HOOKS"; do
		# shellcheck disable=SC2086 # no argument for the plain configuration
		cppcheck --quiet --error-exitcode=1 --std=c11 -j"$jobs" \
			--enable=warning,portability,performance --inline-suppr \
			--suppress=missingIncludeSystem -D_GNU_SOURCE $cfg -Iinclude -Isrc/lib -Isrc/http \
			src/lib src/cli src/server src/http tools tests/unit tests/fuzz || return 1
	done
}

shell_scripts() {
	find . \( -path ./build -o -path ./.git \) -prune -o -type f -name '*.sh' -print
	echo .ci/run
}

step analyzer analyzer
step clang build_with build/clang clang
step cppcheck cppcheck_all
# shellcheck disable=SC2046 # the paths have no spaces
step shellcheck shellcheck $(shell_scripts | sort)
step pyflakes pyflakes3 src/py python tools bench tests examples
step mypy mypy --strict --cache-dir build/mypy-cache src/py
step mypy-client mypy --strict --cache-dir build/mypy-cache python/sandcell
step mypy-harness mypy --strict --cache-dir build/mypy-cache tests/harness.py tests/conftest.py

if [ -n "$failed" ]; then
	echo "lint: FAILED:$failed ($(($(date +%s) - start)) s)" >&2
	exit 1
fi
echo "lint: all clean ($(($(date +%s) - start)) s)"
