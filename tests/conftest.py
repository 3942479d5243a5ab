"""Shared fixtures for the black-box tiers (integration, attack).

The binary under test is $SANDCELL_BIN (default build/sandcell).  Tests run
as root and, through tests/run-as-user.sh, as an unprivileged user; they
must pass both ways.
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SANDCELL_BIN", os.path.join(ROOT, "build", "sandcell"))
# Warm mode (tests/warm/run-warm.sh): every run of the fixture goes through
# this `sandcell serve` socket (`sandcell run --server PATH ...`).
SERVER = os.environ.get("SANDCELL_SERVER") or None
IS_ROOT = os.geteuid() == 0

# Documented exit codes (include/sandcell.h, docs/report.md).
EXIT_DISK, EXIT_MEMORY, EXIT_CPU, EXIT_TIMEOUT, EXIT_USAGE, EXIT_SANDBOX = 121, 122, 123, 124, 125, 126


class Run:
    def __init__(self, proc, report):
        self.proc = proc
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = report

    @property
    def status(self):
        return self.report["status"] if self.report else None

    @property
    def out(self):
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self):
        return self.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "Run(rc=%r, status=%r, stdout=%r, stderr=%r, error=%r)" % (
            self.rc, self.status, self.stdout[-2000:], self.stderr[-2000:],
            self.report and self.report.get("error"))


# Every run made through the fixture: (supervisor pid, host uid).  The
# post-conditions look at these runs only, so suites running at the same
# time on one host do not see each other's live sandboxes.
RUNS = []


@pytest.fixture
def sandcell(tmp_path):
    """sandcell(code=..., file=..., args=[...], opts=[...], stdin=bytes) -> Run.

    Always asks for a report; .report is the parsed JSON (None if the run
    was refused before one could be written, e.g. a usage error)."""
    counter = [0]

    def run(code=None, file=None, args=(), opts=(), stdin=b"", timeout=120, report=True):
        counter[0] += 1
        rpath = tmp_path / ("report-%d.json" % counter[0])
        cmd = [BIN, "run"] + (["--server", SERVER] if SERVER else [])
        if report:
            cmd += ["--report", str(rpath)]
        cmd += list(opts)
        if code is not None:
            cmd += ["-c", code]
        elif file is not None:
            cmd += [str(file)]
        cmd += list(args)
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise
        proc = subprocess.CompletedProcess(cmd, p.returncode, out, err)
        rep = None
        if report and rpath.exists() and rpath.stat().st_size:
            rep = json.loads(rpath.read_text())
        host_uid = rep["isolation"]["host_uid"] if rep and rep.get("isolation") else None
        RUNS.append((p.pid, host_uid))
        return Run(proc, rep)

    return run


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sandbox_host_pids(uids=None):
    """Processes running as a sandbox host uid (root mode: >= 2000000000),
    or as one of the given uids."""
    pids = []
    for st in glob.glob("/proc/[0-9]*/status"):
        try:
            with open(st) as f:
                for line in f:
                    if line.startswith("Uid:"):
                        uid = int(line.split()[1])
                        if (uid in uids) if uids is not None else uid >= 2000000000:
                            pids.append(st.split("/")[2])
                        break
        except OSError:
            pass
    return pids


def _run_cgroups(pids=None):
    found = sorted(glob.glob("/sys/fs/cgroup/*/sandcell*/run-*") +
                   glob.glob("/sys/fs/cgroup/sandcell*/run-*"))
    if pids is not None:
        found = [c for c in found if any(os.path.basename(c).startswith("run-%d-" % p) for p in pids)]
    return found


def _mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(l.split()[3:5]) for l in f)


RUNTIME_CANARIES = [os.path.realpath(sys.executable), "/usr/lib/python3/dist-packages/numpy/__init__.py",
                    "/etc/passwd"]


@pytest.fixture
def host_postconditions(tmp_path):
    """Checks after a test that nothing escaped (threat model 4.6): no
    surviving sandbox process, no run cgroup left behind, no new host mount,
    runtime canaries byte-identical."""
    before_sha = {p: _sha(p) for p in RUNTIME_CANARIES if os.path.exists(p)}
    before_mounts = _mounts()
    first = len(RUNS)
    yield
    mine = RUNS[first:]
    # Root runs have their own host uid; unprivileged ones share the
    # caller's, so there the pid namespace and cgroup checks carry it.
    uids = {u for _, u in mine if u is not None and u >= 2000000000}
    assert _sandbox_host_pids(uids) == [], "sandbox processes survived the run"
    assert _run_cgroups([p for p, _ in mine]) == [], "run cgroups left behind"
    assert _mounts() == before_mounts, "host mount table changed"
    for p, h in before_sha.items():
        assert _sha(p) == h, "runtime file changed: " + p
