#!/bin/sh
# Installs the Debian 12 packages sandcell needs, as root; as any other user
# it only names what is missing and fails.
#
#   sh tools/install-deps.sh          everything: build, demo and every test tier
#   sh tools/install-deps.sh demo     what `make demo` needs
#   sh tools/install-deps.sh build    only what `make` needs to compile and link
#
# The Makefile runs this before anything else (make, make demo, make check),
# so that no compiler starts before the headers it includes are installed.
set -eu
# To compile and link build/sandcell, build/sandcell-warm and build/sandcell-http.
BUILD_PKGS="build-essential libseccomp-dev libjansson-dev libmd-dev python3 python3-dev libmicrohttpd-dev pkg-config"
# What the demo's notebook uses (make demo), in the sandbox and on the host;
# IPython's input transformer runs the notebook syntax of cells (magics).
DEMO_PKGS="python3-numpy python3-pandas python3-matplotlib python3-nbformat python3-ipython"
# The test tiers' tools (ASan, fuzzing, lint, bench, the unprivileged-user
# run, the Jupyter kernel against ipykernel with nbclient, the browser
# test, HAProxy in front of several servers and the Kubernetes API models
# the manifests are validated against: make scaleout-check), the throwaway
# root of tools/fresh-check.sh and the container image (podman; runc for
# hosts with hybrid cgroups, which crun refuses).
MORE_PKGS="clang libclang-rt-14-dev pkg-config seccomp python3-pytest python3-hypothesis
bubblewrap util-linux strace cppcheck shellcheck pyflakes3 mypy hyperfine procps debootstrap groff-base
python3-ipykernel python3-jupyter-client python3-nbclient jupyter-notebook chromium
haproxy python3-kubernetes python3-yaml podman runc"
case "${1:-all}" in
build) PKGS=$BUILD_PKGS ;;
demo) PKGS="$BUILD_PKGS $DEMO_PKGS" ;;
all) PKGS="$BUILD_PKGS $DEMO_PKGS $MORE_PKGS" ;;
*) echo "usage: sh tools/install-deps.sh [build|demo|all]" >&2; exit 2 ;;
esac
# One dpkg-query for all of them: this runs on every `make`.  A package
# dpkg has never heard of prints nothing and so counts as missing.
# shellcheck disable=SC2086 # lists of package names
installed=" $(dpkg-query -W -f='${Package} ${db:Status-Status}\n' $PKGS 2>/dev/null |
	awk '$2 == "installed" { printf "%s ", $1 }') "
missing=""
for p in $PKGS; do
	case "$installed" in
	*" $p "*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "sandcell: missing Debian packages:$missing" >&2
	echo "sandcell: install them as root (make deps, or apt-get install$missing), then run make again" >&2
	exit 1
fi
echo "sandcell: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one argument per package
apt-get install -y -q --no-install-recommends $missing
