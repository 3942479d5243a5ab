"""What tests/harness.py knows of sandcell's private naming holds: it finds
a live run's cgroups and processes by the supervisor's pid (the names
src/lib/cgroup.c gives run cgroups) and, as root, knows the run's host uid
(src/lib/userns.c).  If either naming changes, this fails instead of the
host post-conditions of every other test silently finding nothing.

A cold run (the supervisor is the CLI process), also under run-warm.sh.
"""
import os
import subprocess

import harness as H

CODE = "import sys\nprint('ready', flush=True)\nsys.stdin.read()\n"


def _cgroup_lines(pid):
    """{hierarchy (id:controllers): path} of /proc/PID/cgroup."""
    with open("/proc/%d/cgroup" % pid) as f:
        return dict(line.rstrip("\n").rsplit(":", 1) for line in f)


def test_harness_finds_a_live_runs_cgroups_processes_and_uid(tmp_path, host_postconditions):
    rpath = str(tmp_path / "report.json")
    cmd = H.sandcell_cmd(CODE, report=rpath, server=None)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        below = H.descendants(p.pid)
        assert below, "no sandbox process below the supervisor"
        # The run's cgroups, as the kernel says: where the sandbox's
        # processes are and the supervisor is not.
        own = _cgroup_lines(p.pid)
        truth = {path for q in below for h, path in _cgroup_lines(q).items() if own.get(h) != path}
        assert truth, "the run's processes share every cgroup with the supervisor"
        found = H.run_cgroups(p.pid)
        assert sorted({os.path.basename(c) for c in found}) == sorted({os.path.basename(t) for t in truth})
        assert all(any(c.endswith(t) for c in found) for t in truth), (found, truth)
        assert {H.run_cgroup_supervisor(c) for c in found} == {p.pid}
        assert set(below) <= set(H.pids_in_run_cgroups([p.pid])), below
        assert set(below) <= set(H.sandbox_survivors(None, p.pid)), below
        if H.IS_ROOT:  # the code runs as the run's own host uid
            mine = H.pids_of_uids([H.sandbox_host_uid(p.pid)])
            assert mine and set(mine) <= set(below), (mine, below)
        p.stdin.close()
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    rep = H.load_report(rpath)
    H.register_run(p.pid, H.host_uid_of(rep))
    assert rep["status"] == "ok" and rep["left_behind"] == [], rep
    assert H.run_cgroups(p.pid) == [] and H.pids_in_run_cgroups([p.pid]) == []
    if H.IS_ROOT:
        assert rep["isolation"]["host_uid"] == H.sandbox_host_uid(p.pid), rep["isolation"]
