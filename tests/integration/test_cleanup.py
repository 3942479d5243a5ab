"""Run cgroups are removed (G8): after every run, and, for runs whose
supervisor died before it could remove them, by the next run.

A run's cgroups are named run-PID-SEQ-NSEC after the supervisor's PID.
sandcell removes its own at the end of a run, waiting for the killed tasks
to leave (`left_behind` in the report lists any it still could not
remove), and removes entries whose PID no longer exists when it creates
the next ones under the same parent.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from harness import BIN, run_cgroup_name, run_cgroup_supervisor, run_cli

# Above the largest pid_max Linux allows (2^22): never a live process.
DEAD_PID = (1 << 22) + 17


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_cgroups_left_behind_are_reported_then_collected(tmp_path, host_postconditions):
    """When rmdir keeps failing (strace makes every rmdir of the supervisor
    fail with EACCES), the run still ends with its own verdict and the
    report names every cgroup it left on the host.  Its supervisor is then
    dead, as after a SIGKILL: the next run removes those cgroups and any
    other run-PID-... entry whose PID does not exist, and leaves alone a
    live PID's entry, anything not named like a run, and an entry made in
    the last two minutes (its PID may be one of another pid namespace)."""
    rpath = tmp_path / "report.json"
    # Without -f only the supervisor is traced: the sandbox's own setup
    # (which also calls rmdir) is untouched.
    p = subprocess.run(["strace", "-qq", "-o", "/dev/null", "-e", "trace=rmdir",
                        "-e", "inject=rmdir:error=EACCES", BIN, "run", "--report", str(rpath),
                        "-c", "print('ran')"], capture_output=True, timeout=120)
    rep = json.loads(rpath.read_text())
    left = rep["left_behind"]
    made = []
    try:
        assert p.returncode == 0 and rep["status"] == "ok" and b"ran" in p.stdout, (p, rep)
        assert left and rep["isolation"]["cgroup"]["version"] != "none", rep
        for c in left:
            assert run_cgroup_supervisor(c) is not None, c
            with open(os.path.join(c, "cgroup.procs")) as f:
                assert f.read() == "", "a listed cgroup still has processes"
        parents = sorted({os.path.dirname(c) for c in left})
        decoys_dead = [os.path.join(d, run_cgroup_name(DEAD_PID, 0, 1)) for d in parents]
        decoys_live = [os.path.join(d, run_cgroup_name(os.getpid(), 0, 2)) for d in parents]
        decoys_other = [os.path.join(d, "not-a-run-%d" % DEAD_PID) for d in parents]
        # Just made, for a PID this process cannot see: a supervisor in
        # another pid namespace between mkdir and its clone into it.
        decoys_young = [os.path.join(d, run_cgroup_name(DEAD_PID, 1, 3)) for d in parents]
        for c in decoys_dead + decoys_live + decoys_other + decoys_young:
            os.mkdir(c)
            made.append(c)
        # Older than the grace period cgroup.c gives a fresh entry.
        old = time.time() - 600
        for c in left + decoys_dead + decoys_live + decoys_other:
            os.utime(c, (old, old))
        r = run_cli("pass", report=False, server=None)
        assert r.rc == 0, r
        assert [c for c in left + decoys_dead if os.path.exists(c)] == [], \
            "run cgroups of dead supervisors not removed"
        assert all(os.path.isdir(c) for c in decoys_live), "a live supervisor's cgroup was removed"
        assert all(os.path.isdir(c) for c in decoys_other), "a cgroup not named like a run was removed"
        assert all(os.path.isdir(c) for c in decoys_young), "a fresh cgroup of an unseen PID was removed"
    finally:
        for c in made + left:
            if os.path.isdir(c):
                os.rmdir(c)
