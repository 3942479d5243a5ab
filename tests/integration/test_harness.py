"""What tests/harness.py knows of sandcell's naming holds: it finds a live
run's cgroups and processes by the supervisor's pid (the names
src/lib/cgroup.c gives run cgroups) and, as root, the run's host uid lies
in the range of src/lib/userns.c.  If either changes, this fails instead
of the host post-conditions of every other test silently finding nothing.

A cold run (the supervisor is the CLI process), also under run-warm.sh.
"""
import os

import harness as H

CODE = "import sys\nprint('ready', flush=True)\nsys.stdin.read()\n"


def _cgroup_lines(pid):
    """{hierarchy (id:controllers): path} of /proc/PID/cgroup."""
    with open("/proc/%d/cgroup" % pid) as f:
        return dict(line.rstrip("\n").rsplit(":", 1) for line in f)


def test_harness_finds_a_live_runs_cgroups_processes_and_uid(host_postconditions):
    with H.LiveRun(CODE, server=None) as live:
        sup = live.p.pid
        assert live.first_line == "ready\n", live.finish()
        below = H.descendants(sup)
        assert below, "no sandbox process below the supervisor"
        # The run's cgroups, as the kernel says: where the sandbox's
        # processes are and the supervisor is not.
        own = _cgroup_lines(sup)
        truth = {path for q in below for h, path in _cgroup_lines(q).items() if own.get(h) != path}
        assert truth, "the run's processes share every cgroup with the supervisor"
        found = H.run_cgroups(sup)
        assert sorted({os.path.basename(c) for c in found}) == sorted({os.path.basename(t) for t in truth})
        assert all(any(c.endswith(t) for c in found) for t in truth), (found, truth)
        assert {H.run_cgroup_supervisor(c) for c in found} == {sup}
        assert set(below) <= set(H.pids_in_run_cgroups([sup])), below
        assert set(below) <= set(H.sandbox_survivors(None, sup)), below
        uids = {H.proc_uid(q) for q in below} - {0, os.geteuid()}
        run = live.finish()
    assert run.rc == 0 and run.status == "ok" and run.report["left_behind"] == [], run
    assert H.run_cgroups(sup) == [] and H.pids_in_run_cgroups([sup]) == []
    if H.IS_ROOT:
        uid = run.report["isolation"]["host_uid"]
        # the code ran as the run's own uid, from the range the harness knows
        assert uids == {uid} and H.SANDBOX_UID_MIN <= uid < H.SANDBOX_UID_MIN + H.SANDBOX_UID_SPAN, (uids, uid)
