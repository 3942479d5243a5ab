"""What the warm server does for speed, and that none of it shows where it
must not (docs/warm.md, "Performance").

- The template's heap is on transparent huge pages when the kernel offers
  them: its Python objects come from glibc's malloc, tuned through
  GLIBC_TUNABLES, which the template sets for itself and re-executes.
  Neither that variable nor PYTHONMALLOC may reach a run's environment.
- The report is sent as soon as every process of the run is reaped,
  before the run's cgroups are removed; the removal continues after it,
  off the client's path.
"""
import json
import os
import subprocess
import time

import pytest

import harness
from harness import BIN, IS_ROOT, WarmServer, descendants, host_uid_of, run_cgroup_supervisor, run_cgroups, \
    sandbox_survivors


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return "unavailable"
    return text[text.index("[") + 1:text.index("]")] if "[" in text else "unavailable"


@pytest.fixture(scope="module")
def srv():
    s = WarmServer(opts=["--slots", "2"])
    yield s
    s.stop()


ENV_PROBE = r'''
import ctypes, json, os, sys
libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
print(json.dumps({
    "os.environ": sorted(os.environ),
    "getenv": {k: (libc.getenv(k.encode()) or b"").decode() for k in ("GLIBC_TUNABLES", "PYTHONMALLOC")},
    "allocated_blocks": sys.getallocatedblocks(),
}))
'''


def test_code_environment_holds_no_allocator_settings(srv):
    """Neither GLIBC_TUNABLES nor PYTHONMALLOC is in the code's
    environment (os.environ, or the C environment libc reads); the
    environment's keys are a cold run's."""
    warm = srv.run(ENV_PROBE)
    assert warm.status == "ok", warm
    w = warm.json()
    cold = subprocess.run([BIN, "run", "-c", ENV_PROBE], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=120)
    assert cold.returncode == 0, cold
    c = json.loads(cold.stdout.decode().strip().splitlines()[-1])
    for k in ("GLIBC_TUNABLES", "PYTHONMALLOC"):
        assert k not in w["os.environ"], w
        assert w["getenv"][k] == "", w
    assert w["os.environ"] == c["os.environ"]
    # The allocator is observable, as documented: glibc's malloc keeps no
    # count of Python's blocks.
    if _thp_mode() in ("always", "madvise"):
        assert w["allocated_blocks"] == 0, w
    else:
        assert w["allocated_blocks"] > 0, w


@pytest.mark.skipif(harness.ASAN, reason=harness.ASAN_SKIP["heap"])
def test_template_heap_is_on_huge_pages(srv):
    """With THP available, most of the template's heap is in huge pages
    (a fork then copies a PMD per 2 MiB instead of 512 PTEs)."""
    mode = _thp_mode()
    if mode not in ("always", "madvise"):
        pytest.skip("transparent huge pages are %s on this kernel" % mode)
    with open("/proc/%d/smaps_rollup" % srv.pid) as f:
        fields = {line.split(":")[0]: int(line.split()[1]) for line in f if line.rstrip().endswith("kB")}
    huge_mib = fields["AnonHugePages"] / 1024
    anon_mib = fields["Anonymous"] / 1024
    assert huge_mib >= 16, fields
    assert huge_mib >= anon_mib / 2, fields


WAIT_FOR_GO = r'''
import sys
print("READY", flush=True)
sys.stdin.readline()
print("done")
'''


@pytest.mark.skipif(not IS_ROOT, reason="needs root: the test makes cgroups inside the run's")
def test_report_comes_before_the_cgroups_are_removed(tmp_path):
    """A cgroup the test makes inside each of the run's cgroups while the
    code runs keeps them from being removed (rmdir: EBUSY).  The report
    must come back at once, with an empty left_behind, and the server's
    log must name those cgroups as left behind after the report: only a
    report sent before the removal was tried gets both (a report made
    after it names them in left_behind, and on cgroup v1 only after
    retrying for 10 s).  No process of the run is left when it comes."""
    s = WarmServer(opts=["--slots", "1", "--spares", "0"])
    made, dirs = [], []
    try:
        rpath = str(tmp_path / "report.json")
        p = subprocess.Popen([BIN, "run", "--server", s.sock, "--report", rpath, "-c", WAIT_FOR_GO],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout.readline() == b"READY\n"
        workers = set(descendants(s.pid))
        dirs = [d for d in run_cgroups() if run_cgroup_supervisor(d) in workers]
        assert dirs, "the run's cgroups were not found"
        for d in dirs:
            os.mkdir(os.path.join(d, "pin"))
            made.append(os.path.join(d, "pin"))
        t0 = time.monotonic()
        out, err = p.communicate(b"go\n", timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 0, (out, err)
        assert out == b"done\n"
        with open(rpath) as f:
            rep = json.load(f)
        assert rep["status"] == "ok" and rep["left_behind"] == [], rep
        assert sandbox_survivors(host_uid_of(rep)) == []
        assert took < 5, took
        deadline = time.monotonic() + 30
        while not all(("left behind after its report: %s" % d) in s.log_text() for d in dirs):
            assert time.monotonic() < deadline, s.log_text()
            time.sleep(0.1)
    finally:
        for d in made:
            os.rmdir(d)
        for d in dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
        s.stop()
