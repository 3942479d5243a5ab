#!/bin/sh
# Installs the Debian 12 packages sandcell needs to build and test.  As a
# non-root user it only reports what is missing.
set -eu
PKGS="build-essential clang libclang-rt-14-dev pkg-config libseccomp-dev seccomp libjansson-dev libmd-dev
python3 python3-dev python3-pytest python3-numpy python3-pandas python3-matplotlib bubblewrap util-linux
strace cppcheck shellcheck pyflakes3 mypy hyperfine procps"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "sandcell: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
echo "sandcell: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086 # one argument per package
apt-get install -y -q --no-install-recommends $missing
