"""Attack rows G1r-G15r and X2 (G7 resource bounds, G8 complete
termination): every exhaustion attempt is bounded by the declared limit,
the verdict comes from host evidence, and nothing of the run survives it.
"""
import errno
import time

import pytest

from harness import EXIT_CPU, EXIT_DISK, EXIT_MEMORY, EXIT_TIMEOUT, case, probe, run

E = errno


def test_G7_fork_bomb_bounded_by_pids(host_postconditions):
    """G1r: forks stop with EAGAIN below --pids (init and the code count)."""
    r, res = probe(r'''
import time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except BlockingIOError as e:
    emit({"forked": n, "errno": e.errno})
''', opts=["--pids", "16"])
    assert r.status == "ok", r
    assert r.result()["errno"] == E.EAGAIN
    assert 8 <= r.result()["forked"] <= 14, r.result()


def test_G7_unbounded_fork_bomb_is_contained(host_postconditions):
    """G1r: a real fork bomb (every process forks forever) ends at the
    wall clock with every process killed."""
    r = run('''
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
''', opts=["--pids", "32", "--wall-time", "1.5"], timeout=60)
    assert r.status in ("timeout", "cpu-time"), r
    assert r.report["time"]["wall_sec"] < 10, r


def test_G7_thread_bomb_bounded_by_pids(host_postconditions):
    """G2r: threads count against --pids too."""
    r, res = probe(r'''
import threading
ev = threading.Event()
n = 0
try:
    while True:
        threading.Thread(target=ev.wait, daemon=True).start()
        n += 1
except RuntimeError as e:
    emit({"threads": n, "msg": str(e)})
ev.set()
''', opts=["--pids", "16"])
    assert r.status == "ok", r
    assert 8 <= r.result()["threads"] <= 14, r.result()


def test_G7_zombie_farm_bounded_and_reaped(host_postconditions):
    """G11r: children that are never reaped stay bounded by --pids and
    are gone after the run."""
    r, res = probe(r'''
n = 0
try:
    while True:
        if os.fork() == 0:
            os._exit(0)
        n += 1
except BlockingIOError:
    emit({"zombies": n})
''', opts=["--pids", "16"])
    assert r.status == "ok", r
    assert r.result()["zombies"] <= 14


MEMORY_BOMBS = {
    "bytes-multiply": "s = b'x' * (512 << 20)",
    "touch-every-page": "b = bytearray(512 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1",
    "mmap-populate": ("import mmap\nm = mmap.mmap(-1, 512 << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS"
                      " | getattr(mmap, 'MAP_POPULATE', 0x8000))\nm.write(b'x' * (512 << 20))"),
    "tmpfs-dev-shm-fill": ("f = open('/dev/shm/fill', 'wb')\nchunk = b'x' * (1 << 20)\n"
                           "for _ in range(400): f.write(chunk); f.flush()"),
    "in-forked-children": ("import time\nkids = []\nfor _ in range(4):\n    if os.fork() == 0:\n"
                           "        s = b'x' * (40 << 20)\n        time.sleep(30)\n        os._exit(0)\n"
                           "time.sleep(30)"),
}


@pytest.mark.parametrize("code", [case("G7", "memory-" + k, v) for k, v in MEMORY_BOMBS.items()])
def test_memory_bomb_reported_as_memory(host_postconditions, code):
    """G3r: the OOM kill in the run's cgroup (tmpfs pages included) gives
    status "memory" and exit 122, from the cgroup's counters."""
    r = run(code, opts=["--memory", "64M", "--disk", "512M", "--wall-time", "8"], timeout=60)
    assert r.status == "memory", r
    assert r.rc == EXIT_MEMORY, r
    # G7: "on any breach the whole run is killed" (memory.oom.group=1):
    # the run ends at the OOM kill, not at the wall clock.
    assert r.report["time"]["wall_sec"] < 6, r


DISK_BOMBS = {
    "fill-tmp": "f = open('/tmp/fill', 'wb')\nwhile True: f.write(b'x' * 65536); f.flush()",
    "fill-output": "f = open('/output/fill', 'wb')\nwhile True: f.write(b'x' * 65536); f.flush()",
    "fill-dev-shm": "f = open('/dev/shm/fill', 'wb')\nwhile True: f.write(b'x' * 65536); f.flush()",
    "inode-exhaustion": "i = 0\nwhile True:\n    open('/tmp/f%d' % i, 'w').close()\n    i += 1",
    "inode-exhaustion-dirs-symlinks": ("i = 0\nwhile True:\n    os.mkdir('/tmp/d%d' % i)\n"
                                       "    os.symlink('/etc/passwd', '/tmp/s%d' % i)\n    i += 1"),
}


@pytest.mark.parametrize("code", [case("G7", "disk-" + k, v) for k, v in DISK_BOMBS.items()])
def test_disk_bomb_reported_as_disk(host_postconditions, code):
    """G4r/G5r: ENOSPC at the scratch size or inode count; the code dies of
    it and the verdict is "disk" (exit 121)."""
    r = run(code, opts=["--disk", "8M", "--memory", "256M"], timeout=60, prelude=False)
    assert r.status == "disk", r
    assert r.rc == EXIT_DISK, r
    assert "No space left on device" in r.err or "File too large" in r.err, r


def test_G7_fallocate_beyond_disk_refused(host_postconditions):
    """G4r: posix_fallocate of more than the scratch space fails (EFBIG
    from RLIMIT_FSIZE or ENOSPC from the tmpfs size) without filling it."""
    r, res = probe(r'''
fd = os.open("/tmp/big", os.O_RDWR | os.O_CREAT)
emit({"errno": oserr(os.posix_fallocate, fd, 0, 64 << 20),
      "errno_small": oserr(os.posix_fallocate, fd, 0, 1 << 20)})
''', opts=["--disk", "8M"])
    assert r.status == "ok", r
    assert r.result()["errno"] in (E.EFBIG, E.ENOSPC)
    assert r.result()["errno_small"] == 0


def test_G7_file_size_limit_sigxfsz(host_postconditions):
    """G6r: growing a file past RLIMIT_FSIZE (= --disk) raises SIGXFSZ;
    with the default action restored it kills the code.  A sparse file
    fills nothing, so the verdict is the signal, not "disk" (which only a
    scratch space the host sees full can give)."""
    r = run('''
import signal
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
open("/tmp/sparse", "wb").close()
os.truncate("/tmp/sparse", 1 << 40)
print("SURVIVED")
''', opts=["--disk", "8M"])
    assert r.status == "signaled", r
    assert r.rc == 128 + 25, r
    assert r.script["signal"] == 25, r
    assert "not full" in r.report["reason"], r
    assert b"SURVIVED" not in r.stdout


RLIMITS = [("NOFILE", 7), ("CORE", 4), ("FSIZE", 1), ("CPU", 0), ("MEMLOCK", 8),
           ("MSGQUEUE", 12), ("RTPRIO", 14), ("SIGPENDING", 11)]


@pytest.fixture(scope="module")
def rlimits():
    r, res = probe(r'''
import struct, resource
res = {}
for name, n in %r:
    soft, hard = resource.getrlimit(n)
    res[name + "-hard"] = hard
    new = ctypes.create_string_buffer(struct.pack("QQ", hard + 1, hard + 1), 16)
    res[name + "-raise"] = err_of(sc(302, 0, n, new, 0))
    try:
        resource.setrlimit(n, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        res[name + "-inf-py"] = "raised"
    except ValueError:
        res[name + "-inf-py"] = "ValueError"
    # the sandbox init is the same uid: raising its limits is refused too
    res[name + "-raise-init"] = err_of(sc(302, 1, n, new, 0))
emit(res)
''' % (RLIMITS,))
    assert r.status == "ok", r
    return res


@pytest.mark.parametrize("name", [case("G7", "setrlimit-raise-" + n, n) for n, _ in RLIMITS])
def test_rlimit_cannot_be_raised(host_postconditions, rlimits, name):
    """G12r: hard == soft and no CAP_SYS_RESOURCE: prlimit(raise) gives
    EPERM, for the code itself and for the sandbox init; Python's
    setrlimit to infinity raises ValueError."""
    assert rlimits[name + "-raise"] == E.EPERM
    assert rlimits[name + "-raise-init"] == E.EPERM
    assert rlimits[name + "-inf-py"] == "ValueError"


def test_G7_rlimit_core_is_zero_and_no_core_written(host_postconditions):
    """X2: an aborting child in /output leaves no core file."""
    r, res = probe(r'''
import resource
os.chdir("/output")
st = in_child(lambda: os.abort())
emit({"core": resource.getrlimit(resource.RLIMIT_CORE), "child": st,
      "files": os.listdir("/output")})
''')
    assert r.status == "ok", r
    assert r.result() == {"core": [0, 0], "child": {"signal": 6}, "files": []}


def test_G7_fd_exhaustion_bounded(host_postconditions):
    """G7r: EMFILE at --files."""
    r, res = probe(r'''
fds = []
try:
    while True:
        fds.append(os.open("/dev/null", os.O_RDONLY))
except OSError as e:
    emit({"n": len(fds), "errno": e.errno})
''', opts=["--files", "100"])
    assert r.result()["errno"] == E.EMFILE
    assert r.result()["n"] <= 100 - 4


@pytest.mark.parametrize("stream", [case("G7", "stdout-no-newline", "stdout"),
                                    case("G7", "stderr-no-newline", "stderr")])
def test_huge_stream_capped(host_postconditions, stream):
    """G13r: 64 MiB without a newline: the host receives at most the cap
    (plus the one-line truncation marker), the report flags it, and the
    supervisor finishes promptly."""
    r = run('''
import sys
out = sys.%s.buffer
chunk = b"A" * (1 << 20)
for _ in range(64):
    out.write(chunk)
out.flush()
''' % stream, opts=["--stdout-limit", "64K"], prelude=False)
    data = r.stdout if stream == "stdout" else r.stderr
    assert r.status == "ok", r
    assert len(data) <= 64 * 1024 + 200
    assert data.count(b"A") == 64 * 1024
    assert r.report["streams"][stream]["truncated"] is True
    assert stream in r.report["truncations"]
    assert r.report["time"]["wall_sec"] < 20


def test_G7_busy_threads_and_processes_hit_cpu_time(host_postconditions):
    """G8r: busy loops in several processes (each with threads) are
    summed over the whole tree: verdict cpu-time (123) well before the
    wall clock."""
    r = run('''
import os, threading
for _ in range(3):
    if os.fork() == 0:
        break
def spin():
    while True:
        pass
for _ in range(4):
    threading.Thread(target=spin, daemon=True).start()
spin()
''', opts=["--cpu-time", "1", "--wall-time", "30"], prelude=False, timeout=60)
    assert r.status == "cpu-time", r
    assert r.rc == EXIT_CPU
    assert r.report["time"]["wall_sec"] < 15, r


TIMEOUTS = {
    "sigstop-self-all-signals-blocked": ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                         "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\n"
                                         "os.kill(os.getpid(), signal.SIGSTOP)"),
    "sleep-forever-signals-ignored": ("import signal, time\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
                                      "    signal.signal(s, signal.SIG_IGN)\n"
                                      "signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.Signals))\ntime.sleep(1e9)"),
    "child-stops-parent": ("import signal, time\nif os.fork() == 0:\n    os.kill(os.getppid(), signal.SIGSTOP)\n"
                           "    os.kill(os.getpid(), signal.SIGSTOP)\ntime.sleep(1e9)"),
    "blocked-in-read-of-own-pipe": "r, w = os.pipe()\nos.read(r, 1)",
}


@pytest.mark.parametrize("code", [case("G8", "timeout-" + k, v) for k, v in TIMEOUTS.items()])
def test_unkillable_looking_code_times_out(host_postconditions, code):
    """G9r: stopped or signal-blocking code is killed (cgroup.kill / pid
    namespace) at the wall clock: verdict timeout (124)."""
    t0 = time.monotonic()
    r = run(code, opts=["--wall-time", "1"], prelude=False, timeout=60)
    assert r.status == "timeout", r
    assert r.rc == EXIT_TIMEOUT
    assert time.monotonic() - t0 < 10


def test_G8_double_fork_daemon_dies_with_the_run(host_postconditions, tmp_path):
    """G10r: a setsid'd grandchild keeps appending to /output/log after the
    code exits.  It must die with the run: nothing survives, the run ends
    promptly, and the collected log stops growing (it is collected only
    after the tree is dead)."""
    out = tmp_path / "out"
    r = run(r'''
import time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open("/output/log", "ab", buffering=0) as f:
            while True:
                f.write(b"tick\n")
                time.sleep(0.005)
    os._exit(0)
time.sleep(0.3)
''', opts=["--output", str(out), "--wall-time", "20"], prelude=False)
    assert r.status == "ok", r
    assert r.report["time"]["wall_sec"] < 5, r
    log = out / "log"
    assert log.exists()
    size = log.stat().st_size
    assert size > 0
    time.sleep(0.5)
    assert log.stat().st_size == size
    collected = {f["path"]: f["size"] for f in r.report["outputs"]["files"]}
    assert collected["log"] == size
