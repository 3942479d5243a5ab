#!/bin/sh
# Static checks: the tree builds warning-free with clang too, and cppcheck
# finds nothing in the library or the CLI.
set -eu
make --no-print-directory BUILD=build/clang CC=clang build/clang/sandcell >/dev/null
cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
	--inline-suppr -D_GNU_SOURCE -Iinclude -Isrc/lib --suppress=missingIncludeSystem \
	src/lib src/cli
echo "lint: clang build and cppcheck clean"
