"""Unprivileged callers on systemd hosts: when the client asks systemd for
a delegated scope (decide(), from host facts), the scope's command line,
and the script that moves itself into the scope's leaf.  This host has no
systemd user manager, so the decision is tested on facts, the wiring with a
stand-in systemd-run, and the script for real in a private cgroup v2 view."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import client_util
from client_util import IS_ROOT, sandcell

# The shared fixtures, by assignment (pytest finds them by name).
server, runner, no_leftover_dirs = client_util.server, client_util.runner, client_util.no_leftover_dirs
from sandcell import _cold, _systemd
from sandcell._systemd import HostFacts, Plan, decide

BASE = HostFacts(euid=1000, parent_given=False, cgroup2_only=True,
                 own_cgroup="/user.slice/user-1000.slice/session-2.scope",
                 parent_delegated=False, systemd_run="/usr/bin/systemd-run",
                 user_manager=True, in_scope=False)


def facts(**kw: object) -> HostFacts:
    return HostFacts(**{**BASE.__dict__, **kw})


@pytest.mark.parametrize("kw, action", [
    ({}, "scope"),                                      # the case systemd is for
    ({"euid": 0}, "none"),                              # root makes /sandcell
    ({"parent_given": True}, "none"),                   # the caller chose
    ({"cgroup2_only": False}, "none"),                  # v1/hybrid: per hierarchy
    ({"systemd_run": None}, "none"),                    # no systemd-run
    ({"user_manager": False}, "none"),                  # no user manager
    ({"in_scope": True}, "none"),                       # never a scope in a scope
    ({"parent_delegated": True}, "parent"),             # already delegated
    ({"parent_delegated": True, "euid": 0}, "none"),
    ({"parent_delegated": True, "parent_given": True}, "none"),
])
def test_decide(kw, action):
    plan = decide(facts(**kw))
    assert isinstance(plan, Plan) and plan.action == action, plan
    assert plan.why


def test_decide_parent_is_the_leafs_parent():
    plan = decide(facts(parent_delegated=True, own_cgroup="/a/b/leaf"))
    assert plan == Plan("parent", cgroup_parent="/a/b", why=plan.why)


@pytest.mark.parametrize("mountinfo, v2", [
    ("30 24 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n", True),
    ("30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
     "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", False),
    ("31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n", False),
    ("", False),
])
def test_cgroup2_only(mountinfo, v2):
    assert _systemd._cgroup2_only(mountinfo) is v2


def test_host_facts_here():
    with open("/proc/self/mountinfo") as f:
        v2 = _systemd._cgroup2_only(f.read())
    f_ = _systemd.host_facts(None, {"SANDCELL_CGROUP_PARENT": "/x"})
    assert f_.euid == os.geteuid() and f_.parent_given and f_.cgroup2_only is v2
    assert _systemd.host_facts("/y", {}).parent_given
    assert not _systemd.host_facts(None, {}).parent_given
    assert _systemd.host_facts(None, {_systemd.SCOPE_ENV: "1"}).in_scope
    # No systemd as init on this host: no user manager, whatever the env.
    if not os.path.isdir("/run/systemd/system"):
        assert not _systemd.host_facts(None, {"XDG_RUNTIME_DIR": "/run/user/0"}).user_manager


def test_scope_argv():
    argv = _systemd.scope_argv("/usr/bin/systemd-run", ["/bin/sandcell", "run", "x.py"])
    assert argv[:8] == ["/usr/bin/systemd-run", "--user", "--scope", "--quiet", "--collect",
                        "-p", "Delegate=yes", "--"]
    assert argv[8:10] == ["/bin/sh", "-c"] and argv[10] == _systemd.SCOPE_SCRIPT
    assert argv[11:] == ["sandcell-scope", "/bin/sandcell", "run", "x.py"]


def test_cold_run_goes_through_the_scope(tmp_path, monkeypatch, no_leftover_dirs):
    """With facts that call for a scope, the CLI is started by systemd-run
    with the scope's options, through the leaf script; here a stand-in
    systemd-run records its arguments and runs the command, and the script
    (on a host without a v2 cgroup of its own) refuses with its message."""
    log = tmp_path / "args"
    fake = tmp_path / "systemd-run"
    fake.write_text('#!/bin/sh\nprintf "%%s\\0" "$@" > %s\nwhile [ "$1" != -- ]; do shift; done\n'
                    'shift\nexec "$@"\n' % log)
    fake.chmod(0o755)
    monkeypatch.setattr(_cold, "host_facts",
                        lambda parent, env: facts(systemd_run=str(fake)))
    with open("/proc/self/cgroup") as f:
        own_v2 = [ln[3:].strip() for ln in f if ln.startswith("0::")]
    if own_v2 and own_v2[0] != "/":
        pytest.skip("this process has a v2 cgroup of its own: the script would move it")
    with pytest.raises(sandcell.SandboxError, match="no cgroup v2 path of its own"):
        sandcell.run("print(1)")
    args = log.read_text().split("\0")
    assert args[:7] == ["--user", "--scope", "--quiet", "--collect", "-p", "Delegate=yes", "--"]
    assert args[7:9] == ["/bin/sh", "-c"] and args[9] == _systemd.SCOPE_SCRIPT
    assert args[10] == "sandcell-scope" and args[12] == "run" and args[13] == "--quiet"


@pytest.mark.skipif(not IS_ROOT, reason="builds a cgroup v2 view and moves processes")
def test_scope_script_moves_into_a_leaf(tmp_path):
    """The script for real: in a private mount namespace whose
    /sys/fs/cgroup is a cgroup2 hierarchy, started in a cgroup of its own
    (standing for the scope), it moves into SCOPE/supervisor and runs the
    command with SANDCELL_CGROUP_PARENT=SCOPE."""
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        v2root = "/sys/fs/cgroup"
    elif os.path.exists("/sys/fs/cgroup/unified/cgroup.procs"):
        v2root = "/sys/fs/cgroup/unified"
    else:
        pytest.skip("no cgroup v2 hierarchy")
    name = "sandcell-client-scope-test-%d" % os.getpid()
    scope = os.path.join(v2root, name)
    os.mkdir(scope)
    try:
        outer = ('mount --bind %s /sys/fs/cgroup && echo $$ > /sys/fs/cgroup/%s/cgroup.procs && '
                 'exec /bin/sh -c "$0" sandcell-scope /bin/sh -c '
                 '\'echo "parent=$SANDCELL_CGROUP_PARENT in_scope=$SANDCELL_IN_SCOPE"; '
                 'grep ^0:: /proc/self/cgroup\'' % (v2root, name))
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", outer,
                            _systemd.SCOPE_SCRIPT], capture_output=True, timeout=60)
        assert p.returncode == 0, p
        assert p.stdout.decode().splitlines() == [
            "parent=/%s in_scope=1" % name, "0::/%s/supervisor" % name], p
    finally:
        if os.path.isdir(os.path.join(scope, "supervisor")):
            os.rmdir(os.path.join(scope, "supervisor"))
        os.rmdir(scope)
