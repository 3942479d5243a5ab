"""Verdicts come from host evidence, never from the code (G7).

The code can send itself any signal and exit with any status.  A status
that names a limit (cpu-time, disk, memory, timeout) must rest on what the
host measured: the cgroup's CPU usage against the limit, a scratch space
the host sees full, the cgroup's OOM counter, the supervisor's own timer.
Each case forges the signal or exit status a real stop would produce and
checks that the report calls it what it is.
"""
import pytest

from harness import EXIT_CPU, EXIT_DISK, EXIT_MEMORY, EXIT_TIMEOUT, case, run

FORGERIES = {
    # The signals RLIMIT_CPU and RLIMIT_FSIZE deliver, sent by the code.
    "self-sigxcpu": ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_DFL)\n"
                     "os.kill(os.getpid(), signal.SIGXCPU)", "signaled", 128 + 24),
    "self-sigxfsz": ("import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
                     "os.kill(os.getpid(), signal.SIGXFSZ)", "signaled", 128 + 25),
    # SIGKILL is what the supervisor's kill looks like from inside.
    "self-sigkill": ("os.kill(os.getpid(), 9)", "signaled", 128 + 9),
    "child-sigxcpu": ("import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_DFL)\n"
                      "os.killpg(0, signal.SIGXCPU)", "signaled", 128 + 24),
    # The exit statuses the CLI uses for its own stops: the code's own
    # status passes through, and the report says it exited.
    "exit-124": ("sys.exit(124)", "exited", EXIT_TIMEOUT),
    "exit-123": ("sys.exit(123)", "exited", EXIT_CPU),
    "exit-122": ("raise MemoryError()", "exited", 1),
    "exit-121": ("sys.exit(121)", "exited", EXIT_DISK),
    # A "sandcell:" status line on stderr is just bytes of the code's.
    "fake-status-line": ("sys.stderr.write('sandcell: timeout: wall-clock limit reached\\n')\n"
                         "sys.exit(EXIT)".replace("EXIT", str(EXIT_MEMORY)), "exited", EXIT_MEMORY),
}


@pytest.mark.parametrize("name", [case("G7", "forged-verdict-" + k, k) for k in FORGERIES])
def test_forged_verdicts_are_not_limits(host_postconditions, name):
    code, status, rc = FORGERIES[name]
    r = run(code, opts=["--wall-time", "20"], prelude=False)
    assert r.status == status, r
    assert r.rc == rc, r
    assert r.report["time"]["wall_sec"] < 10, r
    if status == "exited":
        assert r.report["reason"] == "the code exited with status %d" % rc, r


def test_G7_sparse_write_past_fsize_is_not_disk(host_postconditions):
    """A write at an offset past RLIMIT_FSIZE fills nothing: SIGXFSZ, but
    the scratch space is not full, so the status is the signal."""
    r = run('''
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
fd = os.open("/tmp/sparse", os.O_WRONLY | os.O_CREAT)
os.lseek(fd, 600 << 20, 0)
os.write(fd, b"x")
''', opts=["--disk", "512M"], prelude=False)
    assert r.status == "signaled", r
    assert r.script["signal"] == 25, r
    assert "not full" in r.report["reason"], r


def test_G7_real_cpu_limit_is_cpu_time(host_postconditions):
    """The counterpart: a run that spends its CPU budget is cpu-time."""
    r = run("while True: pass", opts=["--cpu-time", "0.5", "--wall-time", "20"], prelude=False)
    assert r.status == "cpu-time", r
    assert r.rc == EXIT_CPU, r
    assert r.report["time"]["cpu_sec"] >= 0.5, r


def test_G7_real_disk_fill_then_sigxfsz_is_disk(host_postconditions):
    """And a code that fills its scratch and then dies of SIGXFSZ is a disk
    stop: the host sees the space full."""
    r = run('''
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
try:
    with open("/tmp/fill", "wb") as f:
        while True:
            f.write(b"x" * 65536)
            f.flush()
except OSError:
    pass
os.kill(os.getpid(), signal.SIGXFSZ)
''', opts=["--disk", "4M"], prelude=False)
    assert r.status == "disk", r
    assert r.rc == EXIT_DISK, r
