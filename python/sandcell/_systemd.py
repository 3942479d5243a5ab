"""Full isolation for unprivileged callers without setting up cgroups by hand.

An unprivileged caller needs a delegated cgroup for the memory and pids
limits (docs/client.md, "Unprivileged callers").  On a cgroup v2 host, v2's
rule that a cgroup handing controllers down holds no processes itself means
the caller must live in a leaf *below* the cgroup its runs are created in.
A systemd host gives exactly that to anyone, as rootless podman uses it: a
transient scope of the user's own service manager with ``Delegate=yes``
(``systemd-run --user --scope -p Delegate=yes``) is a cgroup the user owns,
with the controllers the user manager has (memory and pids, on Debian 12).
Inside it, :data:`SCOPE_SCRIPT` moves itself into a leaf ``supervisor`` and
runs sandcell with the scope as ``SANDCELL_CGROUP_PARENT``.

:func:`decide` is pure (facts in, plan out) so that its logic is tested
without a systemd host; :func:`host_facts` reads the facts.
"""
from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from typing import List, Mapping, Optional

__all__ = ["HostFacts", "Plan", "decide", "host_facts", "scope_argv", "SCOPE_SCRIPT",
           "SCOPE_ENV", "CGROUP_ROOT"]

CGROUP_ROOT = "/sys/fs/cgroup"
#: Set inside the scope, so that a run there never asks for another one.
SCOPE_ENV = "SANDCELL_IN_SCOPE"


@dataclass(frozen=True)
class HostFacts:
    euid: int
    #: cgroup_parent= or $SANDCELL_CGROUP_PARENT given: the caller chose.
    parent_given: bool
    #: /sys/fs/cgroup is cgroup2 (no v1 hierarchies; v1 and hybrid hosts
    #: need per-hierarchy delegation, which systemd does not offer).
    cgroup2_only: bool
    #: Our own v2 cgroup ("0::PATH" in /proc/self/cgroup), or None.
    own_cgroup: Optional[str]
    #: The parent of our own cgroup is delegated to us: owned by our uid,
    #: memory and pids in its cgroup.controllers, and we are in a leaf.
    parent_delegated: bool
    #: systemd-run's path, when present.
    systemd_run: Optional[str]
    #: The user's service manager answers ($XDG_RUNTIME_DIR/systemd/private
    #: or the user bus exists, and systemd is the init system).
    user_manager: bool
    #: Already inside a scope this client made.
    in_scope: bool


@dataclass(frozen=True)
class Plan:
    #: "none": run as is (root, the caller chose a parent, or not a v2
    #: host: sandcell's own message then says what to delegate);
    #: "parent": run with ``cgroup_parent`` (the delegated parent of our
    #: leaf); "scope": run inside a transient delegated systemd user scope.
    action: str
    cgroup_parent: Optional[str] = None
    why: str = ""


def decide(f: HostFacts) -> Plan:
    if f.euid == 0:
        return Plan("none", why="root: runs go under /sandcell")
    if f.parent_given:
        return Plan("none", why="the caller named a cgroup parent")
    if not f.cgroup2_only:
        return Plan("none", why="not a cgroup v2 host: delegation is per hierarchy")
    if f.parent_delegated and f.own_cgroup:
        parent = os.path.dirname(f.own_cgroup.rstrip("/")) or "/"
        return Plan("parent", cgroup_parent=parent, why="our leaf's parent is delegated to us")
    if f.in_scope:
        return Plan("none", why="inside a sandcell scope already, without delegated controllers")
    if f.systemd_run and f.user_manager:
        return Plan("scope", why="a systemd user manager can delegate a scope")
    return Plan("none", why="no delegated cgroup and no systemd user manager")


def _read(path: str, cap: int = 1 << 16) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(cap)
    except OSError:
        return ""


def _cgroup2_only(mountinfo: str) -> bool:
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and fields[4] == CGROUP_ROOT:
            return right.split()[:1] == ["cgroup2"]
    return False


def _parent_delegated(own: str, euid: int) -> bool:
    leaf = CGROUP_ROOT + own.rstrip("/")
    parent = os.path.dirname(leaf)
    if own in ("", "/") or not parent.startswith(CGROUP_ROOT + "/"):
        return False
    try:
        st = os.stat(parent)
        leaf_children = [e for e in os.scandir(leaf) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return False
    ctl = _read(os.path.join(parent, "cgroup.controllers")).split()
    return (st.st_uid == euid and stat.S_ISDIR(st.st_mode) and not leaf_children
            and "memory" in ctl and "pids" in ctl
            and os.access(os.path.join(parent, "cgroup.subtree_control"), os.W_OK)
            and os.access(os.path.join(parent, "cgroup.procs"), os.W_OK))


def host_facts(cgroup_parent: Optional[str], env: Mapping[str, str]) -> HostFacts:
    euid = os.geteuid()
    own = None
    for line in _read("/proc/self/cgroup").splitlines():
        if line.startswith("0::"):
            own = line[3:]
    # A host with many mounts has a long mountinfo: read all of it.
    v2 = _cgroup2_only(_read("/proc/self/mountinfo", 1 << 24))
    rt = env.get("XDG_RUNTIME_DIR", "")
    manager = os.path.isdir("/run/systemd/system") and bool(rt) and (
        os.path.exists(os.path.join(rt, "systemd", "private"))
        or os.path.exists(os.path.join(rt, "bus")))
    return HostFacts(
        euid=euid,
        parent_given=bool(cgroup_parent) or bool(env.get("SANDCELL_CGROUP_PARENT")),
        cgroup2_only=v2,
        own_cgroup=own,
        parent_delegated=bool(v2 and own and euid != 0 and _parent_delegated(own, euid)),
        systemd_run=shutil.which("systemd-run"),
        user_manager=manager,
        in_scope=env.get(SCOPE_ENV) == "1",
    )


#: Runs inside the new scope: moves itself into the scope's leaf, then
#: execs the command with the scope as the cgroup parent.  Any failure
#: here is before the code runs, and says what failed.
SCOPE_SCRIPT = r"""
cg=
while IFS= read -r line; do
	case $line in 0::*) cg=${line#0::} ;; esac
done < /proc/self/cgroup
if [ -z "$cg" ] || [ "$cg" = / ]; then
	echo "sandcell: the systemd scope has no cgroup v2 path of its own" >&2
	exit 126
fi
if ! mkdir -p "/sys/fs/cgroup$cg/supervisor" ||
   ! echo $$ > "/sys/fs/cgroup$cg/supervisor/cgroup.procs"; then
	echo "sandcell: cannot move into a leaf of the delegated scope /sys/fs/cgroup$cg" >&2
	exit 126
fi
SANDCELL_CGROUP_PARENT=$cg SANDCELL_IN_SCOPE=1 exec "$@"
"""


def scope_argv(systemd_run: str, argv: List[str]) -> List[str]:
    """``argv`` run inside a transient delegated scope of the user manager."""
    return [systemd_run, "--user", "--scope", "--quiet", "--collect", "-p", "Delegate=yes",
            "--", "/bin/sh", "-c", SCOPE_SCRIPT, "sandcell-scope"] + list(argv)
