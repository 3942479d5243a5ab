"""Cancellation (docs/report.md, "Statuses"): SIGINT, SIGTERM or SIGHUP to
`sandcell run` kills the run, collects what /output holds so far and
writes the report, status cancelled, exit 119; cold and, when
SANDCELL_SERVER is set, through a warm server (the CLI half-closes its
connection, the server cancels and still answers)."""
import re
import signal
import subprocess
import textwrap
import time

import pytest

from harness import EXIT_CANCELLED, host_uid_of, load_report, register_run, sandcell_cmd
from .test_report_schema import check_schema

WAITS = textwrap.dedent("""
    import os, sys, time
    os.makedirs("/output/sub")
    open("/output/sub/before.txt", "w").write("written before the cancel")
    open("/output/a.txt", "w").write("a")
    print("ready", flush=True)
    time.sleep(60)
    open("/output/after.txt", "w").write("never")
""")


def start(tmp_path, code, opts=(), **kw):
    """`sandcell run` (through SANDCELL_SERVER when set) with a report, as
    a process we can signal; returns (Popen, report path, output dir)."""
    rpath = tmp_path / "report.json"
    out = tmp_path / "out"
    cmd = sandcell_cmd(code, opts=["--output", str(out), "--wall-time", "60"] + list(opts),
                       report=str(rpath))
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         **kw)
    return p, rpath, out


def finish(p, rpath, timeout=60):
    out, err = p.communicate(timeout=timeout)
    rep = load_report(rpath)
    register_run(p.pid, host_uid_of(rep))
    return out, err, rep


def catches(pid, sig):
    """Whether the process has a handler for sig (SigCgt in its status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


def wait_armed(p):
    """Until the CLI handles SIGTERM (its cancel handler is armed)."""
    deadline = time.monotonic() + 30
    while not catches(p.pid, signal.SIGTERM):
        assert p.poll() is None and time.monotonic() < deadline
        time.sleep(0.0005)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_cancels_with_report_and_outputs(host_postconditions, tmp_path, sig):
    p, rpath, out = start(tmp_path, WAITS)
    assert p.stdout.readline() == b"ready\n"
    t0 = time.monotonic()
    p.send_signal(sig)
    stdout, err, rep = finish(p, rpath)
    took = time.monotonic() - t0
    assert p.returncode == EXIT_CANCELLED, (p.returncode, err)
    assert rep is not None, err
    check_schema(rep)
    assert rep["status"] == "cancelled" and rep["exit_code"] == EXIT_CANCELLED, rep
    assert "cancelled" in rep["reason"], rep
    assert rep["error"] is None, rep
    # The code ran and was killed by the supervisor, not by the signal.
    assert rep["script"] == {"started": True, "exit_code": None, "signal": 9,
                             "signal_name": "SIGKILL"}, rep
    assert rep["isolation"]["mode"] == "full"
    # What /output held at the cancel is collected and listed.
    o = rep["outputs"]
    assert o["collected"] is True
    assert sorted(f["path"] for f in o["files"]) == ["a.txt", "sub/before.txt"], o
    assert (out / "sub" / "before.txt").read_text() == "written before the cancel"
    assert not (out / "after.txt").exists()
    assert took < 20, took
    assert rep["time"]["wall_sec"] < 30, rep["time"]
    assert b"sandcell: cancelled: " in err, err


def test_repeated_signals_give_one_report(host_postconditions, tmp_path):
    """Ctrl-C in a terminal reaches the client and the CLI together, and
    impatient users press it again: still one cancel, one report."""
    p, rpath, out = start(tmp_path, WAITS)
    assert p.stdout.readline() == b"ready\n"
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGINT):
        p.send_signal(sig)
    stdout, err, rep = finish(p, rpath)
    assert p.returncode == EXIT_CANCELLED, (p.returncode, err)
    check_schema(rep)
    assert rep["status"] == "cancelled", rep
    assert len(rep["outputs"]["files"]) == 2, rep["outputs"]


def test_signal_as_soon_as_handled(host_postconditions, tmp_path):
    """A signal as early as the CLI handles it (possibly before the
    sandbox exists or the code starts) still cancels with a full report."""
    p, rpath, out = start(tmp_path, "print('ran')")
    wait_armed(p)
    p.send_signal(signal.SIGTERM)
    stdout, err, rep = finish(p, rpath)
    assert p.returncode == EXIT_CANCELLED, (p.returncode, stdout, err)
    check_schema(rep)
    assert rep["status"] == "cancelled", rep
    if not rep["script"]["started"]:
        assert rep["isolation"]["mode"] == "none" and rep["outputs"]["collected"] is False, rep
        assert stdout == b""


def test_ignored_sigint_stays_ignored(host_postconditions, tmp_path):
    """A SIGINT the caller had us ignore (a shell's background job, nohup)
    does not cancel: the run goes on to its own end."""
    code = "import sys\nprint('ready', flush=True)\nsys.stdin.read()\nprint('done')\n"
    p, rpath, out = start(tmp_path, code,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    p.stdin.close()
    p.stdin = None
    stdout, err, rep = finish(p, rpath)
    assert p.returncode == 0, (p.returncode, err)
    assert rep["status"] == "ok" and stdout == b"done\n", rep



def test_cancel_says_where_the_code_was(host_postconditions, tmp_path):
    """A cancelled cell: before the kill the code is asked where it is
    (docs/report.md, "Stopped runs"); the cell's outputs end with an error
    output naming the cancel."""
    # "ready" is printed inside wait(): the cancel may reach the code
    # before print() has returned, and it is in wait() either way.
    code = textwrap.dedent("""
        import time
        def wait():
            print("ready", flush=True)
            while True:
                time.sleep(0.01)
        wait()
    """)
    p, rpath, out = start(tmp_path, code, opts=["--cell"])
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    stdout, err, rep = finish(p, rpath)
    check_schema(rep)
    assert rep["status"] == "cancelled" and p.returncode == EXIT_CANCELLED, (rep, err)
    assert rep["script"]["signal_name"] == "SIGKILL", rep["script"]
    text = "\n".join(rep["stopped_at"]["traceback"])
    assert re.search(r'File "<cell>", line [456], in wait', text) and \
        ("time.sleep(0.01)" in text or 'print("ready", flush=True)' in text), text
    outs = rep["cell"]["outputs"]
    assert [o["output_type"] for o in outs] == ["stream", "error"], outs
    assert outs[1]["ename"] == "SandcellStopped" and outs[1]["evalue"] == rep["reason"]


def test_a_signal_at_any_moment_cancels_or_lets_the_run_end(host_postconditions, tmp_path):
    """A signal reaches the CLI at a moment spread over a whole short run
    (parsing, the sandbox's setup and handshakes, the code, the
    collection): each run is cancelled, or had ended already; a setup
    step interrupted by the handler never turns into a sandbox error."""
    # A cold run, from the handler's arming to its exit (measured once).
    p, rpath, _ = start(tmp_path, "print('ran')")
    wait_armed(p)
    t0 = time.monotonic()
    finish(p, rpath)
    span = time.monotonic() - t0
    steps = 40
    for i in range(steps):
        d = tmp_path / str(i)
        d.mkdir()
        p, rpath, out = start(d, "print('ran')")
        wait_armed(p)
        armed = time.monotonic()
        while time.monotonic() - armed < span * i / steps:
            pass
        p.send_signal(signal.SIGTERM)
        stdout, err, rep = finish(p, rpath)
        assert p.returncode in (0, EXIT_CANCELLED), (i, p.returncode, stdout, err)
        check_schema(rep)
        assert rep["status"] == ("ok" if p.returncode == 0 else "cancelled"), (i, rep)
