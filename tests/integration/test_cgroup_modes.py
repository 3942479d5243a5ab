"""A cgroup v2-only host whose v2 hierarchy offers no memory or pids
controller (none delegated): sandcell must refuse to run (G10, fail
closed), and with --allow-reduced run with its namespaces but say, in the
report and on stderr, that the cgroup limits do not hold.

This host is hybrid (memory and pids on v1), so the test builds that host
in a private mount namespace: the unified hierarchy, which has no
controllers here, is bind-mounted over /sys/fs/cgroup, so sandcell sees a
v2-only host and takes its pure-v2 path.
"""
import os
import shutil

import pytest

from harness import BIN, IS_ROOT, SERVER, host_uid_of, load_report, register_run, run_cmd

UNIFIED = "/sys/fs/cgroup/unified"

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="building the v2-only view needs root"),
    pytest.mark.skipif(bool(SERVER), reason="the cgroup view is the supervisor's: a cold run"),
    pytest.mark.skipif(not os.path.exists(UNIFIED + "/cgroup.procs"), reason="no hybrid v2 mount"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare"),
]


def controllers():
    with open(UNIFIED + "/cgroup.controllers") as f:
        return f.read().split()


def run_v2_only(tmp_path, *opts):
    rpath = tmp_path / "report.json"
    script = 'mount --bind %s /sys/fs/cgroup && exec "$@"' % UNIFIED
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", BIN, "run",
           "--report", str(rpath)] + list(opts) + ["-c", "print('the code ran')"]
    # unshare and sh exec: the supervisor is the process started here
    p = run_cmd(cmd, stdin=None)
    rep = load_report(rpath)
    register_run(p.pid, host_uid_of(rep))
    return p, rep


def test_v2_only_host_without_controllers_fails_closed(tmp_path, host_postconditions):
    if "memory" in controllers() or "pids" in controllers():
        pytest.skip("this host's v2 hierarchy has controllers")
    p, rep = run_v2_only(tmp_path)
    assert p.rc == 126, p
    assert b"the code ran" not in p.stdout
    assert rep["status"] == "sandbox-error" and rep["script"]["started"] is False, rep
    assert "no memory or pids controller" in rep["error"] and "--allow-reduced" in rep["error"], rep
    assert rep["isolation"]["mode"] == "none" and rep["left_behind"] == [], rep
    assert b"--allow-reduced" in p.stderr


def test_v2_only_host_allow_reduced_says_what_does_not_hold(tmp_path, host_postconditions):
    if "memory" in controllers() or "pids" in controllers():
        pytest.skip("this host's v2 hierarchy has controllers")
    p, rep = run_v2_only(tmp_path, "--allow-reduced")
    assert p.rc == 0 and p.stdout == b"the code ran\n", p
    iso = rep["isolation"]
    # The namespaces hold; the cgroup limits do not, and both the report
    # and stderr say so.
    assert all(iso["namespaces"][k] for k in ("user", "pid", "mount", "net", "ipc", "uts")), iso
    assert iso["cgroup"] == {"version": "none", "memory": False, "pids": False, "cpu": False,
                            "swap": "none"}, iso
    assert iso["mode"] == "reduced", iso
    assert any("memory limit" in s for s in iso["not_held"]), iso
    assert any("pids limit" in s for s in iso["not_held"]), iso
    assert b"REDUCED mode" in p.stderr
    for s in iso["not_held"]:
        assert s.encode() in p.stderr, (s, p.stderr)
